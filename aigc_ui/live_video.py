"""The twin's live video out: Gradio's streaming ``gr.Video``, told what each of the conversation's
segments holds instead of probing it (see :class:`LiveVideo`).

A module of its own because Gradio writes a type stub (``live_video.pyi``, ignored by git) beside any
module that subclasses one of its components.
"""
from __future__ import annotations

import threading

import gradio as gr

from pipelines.chat.media import Segment


class LiveVideo(gr.Video):
    """The twin's streaming ``gr.Video``, told what each segment holds instead of asking ffprobe.

    For every streamed segment Gradio runs ffprobe (its length, its sound's rate), then ffmpeg to take
    the sound out and ffmpeg to mux the MPEG-TS: about 0.25 s before the segment leaves, most of it
    starting Debian's ffmpeg and ffprobe. The conversation's segments are its own: their length and
    sound are known (:meth:`expect`, called before a segment is handed over) and are exactly what
    ffprobe reports (tests/test_chat.py checks). The two ffmpeg runs go to the bundled, quicker-starting
    ffmpeg (``bundled_ffmpeg_first_on_path``, at the studio's start). Anything not announced is probed.
    """

    _expected: dict[str, dict] = {}  # segment path -> what ffprobe would say (one app-wide table)
    _lock = threading.Lock()

    @classmethod
    def expect(cls, segment: Segment, sample_rate: int) -> None:
        with cls._lock:
            cls._expected[str(segment.path)] = {
                "duration": segment.seconds, "video_start": 0.0, "video_codec": "h264",
                "sample_rate": sample_rate if segment.has_audio else None, "channels": 1 if segment.has_audio else None}

    @classmethod
    def forget(cls, segment: Segment) -> None:
        with cls._lock:
            cls._expected.pop(str(segment.path), None)

    def get_block_name(self) -> str:
        return "video"  # the page draws it with gr.Video's own frontend

    @staticmethod
    def probe_chunk(path: str) -> dict:
        with LiveVideo._lock:
            known = LiveVideo._expected.pop(str(path), None)
        return known if known is not None else gr.Video.probe_chunk(path)
