"""Text generation: language models on llama.cpp (GGUF) and transformers, streaming, the twin-script
writer. Entry points: ``generation.stream_text``, ``generation.generate_text``,
``generation.write_twin_script``; backends in ``backends.py``.
CLI: ``python -m pipelines.text_generation``.
"""
