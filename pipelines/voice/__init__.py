"""Voice synthesis: text -> speech with word/phoneme timings (Piper, eSpeak NG, transformers TTS),
number reading (``text_normalize``), audio signal processing (``audio_dsp``), "my voice" recordings.
Entry points: ``synthesis.synthesize_speech``, ``synthesis.stream_speech``; engines in ``engines.py``.
CLI: ``python -m pipelines.voice_synthesis``.
"""
