"""Model code of the studio. Nothing in this package imports gradio.

Every pipeline is usable from Python and as ``python -m pipelines.NAME``; models are loaded lazily
through the one shared :class:`pipelines.core.cache.ModelCache`.
"""
