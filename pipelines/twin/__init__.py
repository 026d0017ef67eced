"""My digital twin: photo + script (or a recording) -> talking-head MP4.

``pipeline.create_twin_video`` orchestrates; ``driving`` turns audio into mouth and head signals;
``engines/`` holds the talking-head engines behind one interface (``classic`` built in);
``overlays`` draws subtitles and the label; ``profiles`` keeps photo + voice + persona.
CLI: ``python -m pipelines.digital_twin``.
"""
