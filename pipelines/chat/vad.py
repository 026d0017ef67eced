"""Voice activity detection on a live microphone stream: Silero VAD (the ONNX model that faster-whisper
bundles, so nothing is downloaded) run on 32 ms windows, its state carried from one call to the next.

What it does: takes audio in pieces of any length, says when speech starts (after a short minimum, so
a cough or a click does not interrupt the twin), when it pauses (so recognition can start early) and
when it ends (after a stretch of silence), and hands over each utterance's audio with a little of what came before the onset; cuts an utterance that runs
past the length cap and ignores the rest of that monologue until the speaker pauses.
What it does not: recognise words, tell voices apart, or cancel the twin's own voice coming back
through the speakers (the browser's echo cancellation does that).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

VAD_RATE = 16000  # Silero hears 16 kHz mono
WINDOW = 512  # samples per decision: 32 ms
CONTEXT = 64  # samples of the previous window the model sees before each window


@dataclass
class VadConfig:
    threshold: float = 0.5  # speech probability that counts as speech
    # seconds of silence that end an utterance. Shorter would answer sooner, but cuts questions at their
    # commas: 0.35 ended 30 of 45 takes of three comma-paused questions early ("Well," / "So, um,"), 0.45 none.
    # It costs little: recognition, started at the pause below, usually ends after it anyway.
    end_silence: float = 0.45
    pause_silence: float = 0.064  # two windows of silence announce a possible end: recognition starts
    min_speech: float = 0.2  # seconds of speech before it counts as someone talking
    max_utterance: float = 20.0  # seconds: a longer monologue is cut here
    pre_roll: float = 0.3  # seconds kept from before the onset (the first syllable's attack)


@dataclass
class VadEvent:
    """``start``: someone began to speak. ``pause``: they fell silent, maybe for good; ``audio`` holds what
    they said so far (an ``end`` with the same ``speech_end`` follows if nobody speaks again).
    ``end``: they stopped; ``audio`` holds what they said.
    ``cut``: they spoke past the length cap; ``audio`` holds the part up to the cap."""

    kind: Literal["start", "pause", "end", "cut"]
    sample: int  # where it was decided, in 16 kHz samples since the stream began
    audio: np.ndarray | None = None
    speech_end: int = 0  # for end/cut: the sample where the last speech window ended


def _session():
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session  # one small ONNX session per process; runs are thread-safe


class VoiceActivityDetector:
    """Feed 16 kHz audio with :meth:`feed`; get :class:`VadEvent` lists back. One per audio stream."""

    def __init__(self, config: VadConfig | None = None):
        self.config = config or VadConfig()
        self._session = _session()
        self.reset()

    def reset(self) -> None:
        """Forget everything heard (a new stream, or the microphone restarted)."""
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._pending = np.zeros(0, np.float32)
        self.position = 0  # samples decided so far
        # Before speech is confirmed the windows wait here: the onset (which Silero often scores low, so
        # the speech run may take twice min_speech to build up) and pre_roll before it.
        held = self.config.pre_roll + 2 * self.config.min_speech
        self._before = deque(maxlen=max(1, int(held * VAD_RATE / WINDOW) + 1))
        self._utterance: list[np.ndarray] = []
        self._speech_run = 0  # consecutive speech windows while not yet speaking
        self._silence_run = 0  # consecutive quiet windows while speaking
        self._last_speech = 0
        self.speaking = False
        self._discarding = False  # after a cut: ignore the monologue's rest until a pause
        self._pause_windows = max(1, round(self.config.pause_silence * VAD_RATE / WINDOW))

    @property
    def heard_speech(self) -> bool:
        return self.speaking

    def feed(self, audio16k: np.ndarray) -> list[VadEvent]:
        samples = np.concatenate([self._pending, np.asarray(audio16k, np.float32).reshape(-1)])
        whole = len(samples) // WINDOW * WINDOW
        self._pending = samples[whole:]
        if not whole:
            return []
        windows = samples[:whole].reshape(-1, WINDOW)
        contexts = np.vstack([self._context[None], windows[:-1, -CONTEXT:]])
        probs, self._h, self._c = self._session.run(
            None, {"input": np.hstack([contexts, windows]).astype(np.float32), "h": self._h, "c": self._c})
        self._context = windows[-1, -CONTEXT:].copy()
        events: list[VadEvent] = []
        for window, prob in zip(windows, np.asarray(probs).reshape(-1)):
            events += self._step(window, float(prob))
        return events

    def finish(self) -> list[VadEvent]:
        """The speaker says they are done (push-to-talk released): end the utterance now, if any."""
        if self.speaking and not self._discarding:
            return [self._close("end")]
        self.speaking = self._discarding = False
        self._utterance.clear()
        return []

    # ------------------------------------------------------------------ one 32 ms window
    def _step(self, window: np.ndarray, prob: float) -> list[VadEvent]:
        cfg = self.config
        self.position += WINDOW
        speech = prob >= cfg.threshold
        quiet = prob < cfg.threshold - 0.15  # hysteresis: in between keeps the current state
        if not self.speaking:
            self._before.append(window)
            self._speech_run = self._speech_run + 1 if speech else (self._speech_run if not quiet else 0)
            if self._speech_run * WINDOW < cfg.min_speech * VAD_RATE:
                return []
            self.speaking, self._silence_run, self._last_speech = True, 0, self.position
            self._utterance = list(self._before)  # the onset and a little before it
            self._before.clear()
            return [] if self._discarding else [VadEvent("start", self.position)]
        self._utterance.append(window)
        if speech:
            self._silence_run, self._last_speech = 0, self.position
        elif quiet:
            self._silence_run += 1
            if not self._discarding and self._silence_run == self._pause_windows:
                return [VadEvent("pause", self.position, self._utterance_audio(), self._last_speech)]
        if self._silence_run * WINDOW >= cfg.end_silence * VAD_RATE:
            if self._discarding:  # the cut monologue has paused: listen again
                self._discarding = self.speaking = False
                self._utterance.clear()
                self._speech_run = 0
                return []
            return [self._close("end")]
        if not self._discarding and len(self._utterance) * WINDOW >= cfg.max_utterance * VAD_RATE:
            event = self._close("cut")
            self._discarding = self.speaking = True  # the rest of this monologue is not a new question
            return [event]
        return []

    def _utterance_audio(self) -> np.ndarray:
        """The utterance so far, up to a little after its last speech: as much as a pause has heard (at most
        0.1 s), so that a pause and the end that confirms it hand over the same audio."""
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        tail = min(int(0.1 * VAD_RATE), self._pause_windows * WINDOW)
        keep = len(audio) - (self.position - self._last_speech) + tail
        return audio[: max(0, min(len(audio), keep))]

    def _close(self, kind: Literal["end", "cut"]) -> VadEvent:
        audio = self._utterance_audio()
        self._utterance = []
        self.speaking = False
        self._speech_run = 0
        return VadEvent(kind, self.position, audio, self._last_speech)
