"""The live conversation's picture and sound on their way out: short MP4 segments for a streaming player,
and the recording of the whole conversation as one MP4.

- :class:`SegmentStream` is a frame sink: it groups the frames (each with its slice of audio) into
  segments of a second, cut early right after an answer's first few frames so that the answer leaves
  as soon as it exists, and encodes them on its own
  thread as they come (H.264 + PCM in an MP4, what Gradio's streaming ``gr.Video`` takes). The consumer
  calls :meth:`SegmentStream.next` and, once a segment has gone out, :meth:`SegmentStream.sent`.
- :class:`ConversationRecorder` is a frame sink too: frames go through ``Mp4Writer`` and the sound to a
  WAV file as they come; ``finish`` joins them into one MP4 carrying the twin videos' metadata.

What it does not: decide what is shown (``conversation.py`` does) or know about Gradio.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.media import Mp4Writer, ffmpeg_exe

log = logging.getLogger(__name__)


@dataclass
class AvFrame:
    """One video frame of the conversation and the sound that plays during it."""

    index: int  # on the conversation's timeline (frame 0 = when it started)
    image: np.ndarray  # RGB uint8
    audio: np.ndarray  # float32 mono samples for this frame's duration
    kind: str  # "idle" (listening) | "answer" (speaking)
    turn: int | None = None  # the turn this answer frame belongs to
    made: float = 0.0  # time.perf_counter() when the frame was rendered


@dataclass
class Segment:
    path: Path
    number: int
    first_frame: int
    frames: int
    seconds: float
    has_audio: bool
    answer_turns: set[int] = field(default_factory=set)  # turns whose first answer frame is in it
    closed_at: float = 0.0  # perf_counter: the last frame arrived
    encoded_at: float = 0.0  # perf_counter: the file is ready to go
    sent_at: float | None = None  # perf_counter: the consumer says it went out


class SegmentStream:
    """Frames in (call it with each :class:`AvFrame`), MP4 segments out (:meth:`next`).

    Each frame goes to the encoder as it arrives (its own thread and ffmpeg), so when a segment closes
    only its last frame and the sound remain to be written: the answer's first segment leaves about as
    soon as its frames exist.
    """

    def __init__(self, fps: int, sample_rate: int, *, segment_seconds: float = 1.0, first_answer_frames: int = 3,
                 folder: Path | None = None, on_sent: Callable[[Segment], None] | None = None):
        self.fps, self.sample_rate = fps, sample_rate
        self.segment_frames = max(1, round(segment_seconds * fps))
        self.first_answer_frames = first_answer_frames
        self.folder = Path(folder or tempfile.mkdtemp(prefix="aigc-chat-segments-"))
        self.on_sent = on_sent
        # Idle segments are never held back while the twin thinks: a segment held even half a second longer
        # is late for a player with a second of buffer. (Sending one costs ~0.05 s, so an answer rarely
        # waits behind one.)
        self._frames: list[AvFrame] = []
        self._new_turns: set[int] = set()  # turns that start in the segment being filled
        self._seen_turns: set[int] = set()
        self._number = 0
        self._to_encode: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        self._gone: list[Segment] = []
        self.closed = False
        self._encoder = threading.Thread(target=self._encode_loop, name="chat-segments", daemon=True)
        self._encoder.start()

    # ------------------------------------------------------------------ producer side (the stage thread)
    def __call__(self, frame: AvFrame) -> None:
        if self.closed:
            return
        self._frames.append(frame)
        self._to_encode.put(frame)
        if frame.kind == "answer" and frame.turn is not None and frame.turn not in self._seen_turns:
            self._seen_turns.add(frame.turn)
            self._new_turns.add(frame.turn)
        answer_frames = sum(1 for f in self._frames if f.kind == "answer" and f.turn in self._new_turns)
        if self._new_turns and answer_frames >= self.first_answer_frames:
            self._close_segment()
        elif len(self._frames) >= self.segment_frames:
            self._close_segment()

    def _close_segment(self) -> None:
        frames, self._frames = self._frames, []
        turns, self._new_turns = self._new_turns, set()
        # The first segment always carries sound (a streaming player fixes its tracks on it); later silent
        # ones need none, which spares the player's side decoding a track of zeros.
        has_audio = self._number == 0 or any(f.kind == "answer" for f in frames)
        segment = Segment(self.folder / f"segment-{self._number:06d}.mp4", self._number, frames[0].index, len(frames),
                          len(frames) / self.fps, has_audio, turns, closed_at=time.perf_counter())
        self._number += 1
        audio = np.concatenate([f.audio for f in frames]).astype(np.float32) if has_audio else None
        self._to_encode.put((segment, audio))

    # ------------------------------------------------------------------ consumer side
    def next(self, timeout: float | None = None) -> Segment | None:
        """The next encoded segment, or None after ``timeout`` seconds (or once closed and drained)."""
        try:
            return self._ready.get(timeout=timeout)
        except queue.Empty:
            return None

    def sent(self, segment: Segment) -> None:
        """The consumer has sent ``segment``: note when, and delete files no longer needed."""
        segment.sent_at = time.perf_counter()
        if self.on_sent is not None:
            self.on_sent(segment)
        self._gone.append(segment)
        while len(self._gone) > 2:  # keep the last two: a player may still be reading the latest
            self._gone.pop(0).path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._to_encode.put(None)
        self._encoder.join(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ encoding
    def _encode_loop(self) -> None:
        video: Mp4Writer | None = None
        while True:
            item = self._to_encode.get()
            if item is None or self.closed:
                if video is not None:
                    video.abort()
                if item is None:
                    self._ready.put(None)
                    return
                continue
            try:
                if isinstance(item, AvFrame):
                    if video is None:
                        h, w = item.image.shape[:2]
                        # one segment's picture, encoded as the frames come: fast, no look-ahead
                        video = Mp4Writer(self.folder / f"video-{time.monotonic_ns()}.mp4", w, h, self.fps,
                                          preset="ultrafast", crf=23, tune="zerolatency")
                    video.write(item.image)
                    continue
                segment, audio = item
                if video is None:
                    continue
                finished, video = video, None
                finished.close()
                if audio is None:
                    finished.path.replace(segment.path)
                else:
                    add_sound(finished.path, audio, self.sample_rate, segment.path)
                segment.encoded_at = time.perf_counter()
                self._ready.put(segment)
            except Exception:  # noqa: BLE001 - one bad segment must not end the conversation
                log.exception("could not encode a segment")
                if video is not None:
                    video.abort()
                    video = None


def add_sound(video: Path, audio: np.ndarray, sample_rate: int, out: Path) -> None:
    """``video`` with ``audio`` as 16-bit PCM (a muxer copies it exactly: no codec delay to line up) -> ``out``."""
    pcm = video.with_suffix(".f32")
    pcm.write_bytes(np.clip(audio, -1, 1).astype(np.float32).tobytes())
    try:
        proc = subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-i", str(video), "-f", "f32le", "-ar", str(sample_rate),
                               "-ac", "1", "-i", str(pcm), "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                               "-c:a", "pcm_s16le", "-movflags", "+faststart", "-f", "mp4", str(out)],
                              capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not add the sound: {proc.stderr.decode(errors='replace')[-400:]}")
    finally:
        pcm.unlink(missing_ok=True)
        video.unlink(missing_ok=True)


class ConversationRecorder:
    """Records the frames it is given, with their sound, into one MP4 (``finish``). Thread-safe sink:
    frames queue up and a thread of its own encodes them, so the live picture never waits on it."""

    def __init__(self, final: Path, width: int, height: int, fps: int, sample_rate: int, *,
                 metadata: dict[str, str], accept: Callable[[AvFrame], bool] | None = None,
                 output_id: str | None = None):
        """``output_id``: the id the frames are already marked with (the conversation marks every frame it
        shows); the sound gets the same mark and the file is signed with it. None: no marking."""
        import soundfile as sf

        self.final, self.fps, self.sample_rate = Path(final), fps, sample_rate
        self.output_id = output_id
        self.metadata = metadata
        self.accept = accept or (lambda frame: True)
        self._tmp = Path(tempfile.mkdtemp(prefix="aigc-chat-recording-"))
        self._video = Mp4Writer(self._tmp / "video.mp4", width, height, fps, preset="veryfast")
        self._audio = sf.SoundFile(str(self._tmp / "audio.wav"), mode="w", samplerate=sample_rate, channels=1,
                                   subtype="PCM_16")
        self._queue: queue.Queue = queue.Queue(maxsize=250)  # 10 s at 25 fps: bounded memory if encoding lags
        self.frames = 0
        self._thread = threading.Thread(target=self._write_loop, name="chat-recorder", daemon=True)
        self._thread.start()
        self._error: BaseException | None = None

    def __call__(self, frame: AvFrame) -> None:
        if self.accept(frame):
            self._queue.put(frame)

    def _write_loop(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            try:
                self._video.write(frame.image)
                self._audio.write(np.clip(frame.audio, -1, 1))
                self.frames += 1
            except BaseException as exc:  # noqa: BLE001 - reported by finish()
                self._error = exc

    def finish(self, params: dict | None = None) -> Path | None:
        """Close the recording and write the MP4 (None when no frame was recorded)."""
        from ..core.outputs import atomic_path, write_params
        from ..provenance import sign_output
        from ..provenance.marking import watermark_audio_file
        from ..provenance.payload import Payload

        self._queue.put(None)
        self._thread.join()
        self._audio.close()
        try:
            if self._error is not None:
                raise self._error
            if self.frames == 0:
                self._video.abort()
                return None
            self._video.close()
            if self.output_id:
                watermark_audio_file(self._tmp / "audio.wav", Payload(self.output_id))
            cmd = [ffmpeg_exe(), "-y", "-v", "error", "-i", str(self._tmp / "video.mp4"), "-i", str(self._tmp / "audio.wav"),
                   "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-shortest",
                   "-movflags", "+faststart+use_metadata_tags"]
            for key, value in self.metadata.items():
                cmd += ["-metadata", f"{key}={value}"]
            with atomic_path(self.final) as tmp:
                proc = subprocess.run(cmd + ["-f", "mp4", str(tmp)], capture_output=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"ffmpeg could not write the recording: {proc.stderr.decode(errors='replace')[-400:]}")
                sign_output(tmp, model=str((params or {}).get("engine", "classic")), engine="twin chat",
                            output_id=self.output_id,
                            parameters={**(params or {}), "output_id": self.output_id}, provenance=bool(self.output_id))
            if params is not None:
                params = {**params, "output_id": self.output_id}
                write_params(self.final, params)
            return self.final
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def abort(self) -> None:
        self._queue.put(None)
        self._thread.join()
        with contextlib.suppress(Exception):
            self._audio.close()
        with contextlib.suppress(Exception):
            self._video.abort()
        shutil.rmtree(self._tmp, ignore_errors=True)
