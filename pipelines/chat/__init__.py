"""Talk to my twin: a live, streamed conversation with a digital twin, offline on a CPU.

One turn: voice activity detection (Silero, bundled with faster-whisper) -> speech recognition
(Whisper tiny.en for English; an installed multilingual Whisper for Chinese and others; typing always
works) -> the text pipeline with the twin's persona and the conversation so far (bundled SmolLM2 by
default) -> speech sentence by sentence -> the twin engine rendering frames as each sentence's sound
arrives -> out, in real time. Everything after the question is streamed: the twin starts speaking
while the model is still writing.

- ``conversation.py``: :class:`Conversation` (the stages on threads, barge-in, transcript, timings,
  recording), :class:`ChatTwin`, :class:`ChatConfig`.
- ``vad.py``: streaming voice activity detection. ``sentences.py``: streamed text -> sentences.
- ``media.py``: frames -> MP4 segments for a streaming player; the conversation's recording.
- ``cli.py``: one question from a terminal (``python -m pipelines.twin_chat``).

What it does not: carry media to a browser (``aigc_ui/chat_tab.py`` does, with Gradio's streaming),
clone a voice, or keep a conversation after it is closed unless asked to save it.
"""
from .conversation import ChatConfig, ChatTwin, Conversation, Turn, TurnTimings  # noqa: F401
