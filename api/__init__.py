"""HTTP APIs the studio serves besides Gradio's own (see ``did.py``)."""
