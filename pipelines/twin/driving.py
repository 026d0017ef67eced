"""What drives a talking head besides the photo: audio -> per-frame mouth signals (loudness, opening,
lip shape from phoneme or word timings), and the motion that does not come from speech (blinks,
head motion, breathing). Pure numpy: no model, no image.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


# Mouth shapes: (opening factor, width: -1 round/narrow .. +1 wide)
VISEMES: dict[str, tuple[float, float]] = {
    "closed": (0.05, 0.0),  # m b p
    "fv": (0.3, 0.15),  # f v: lower lip to the teeth
    "round": (0.8, -0.7),  # o u w
    "wide": (0.6, 0.6),  # i e s z t d n
    "open": (1.0, 0.2),  # a
    "neutral": (0.7, 0.0),
}
_VISEME_OF_SYMBOL = {
    **dict.fromkeys(list("mbp") + ["ɱ"], "closed"),
    **dict.fromkeys(list("fv"), "fv"),
    **dict.fromkeys(list("ouwqyʊɔɒɵøœɯ") + ["oʊ", "uː", "ɔː", "aʊ"], "round"),
    **dict.fromkeys(list("ieɪɛszcjtdnlxʃʒθðçɨ") + ["eɪ", "iː", "tʃ", "dʒ"], "wide"),
    **dict.fromkeys(list("aæɑʌɐəɜ") + ["aɪ", "ɑː", "ɚ"], "open"),
}


def viseme_for(symbol: str) -> str:
    """The mouth shape of a phoneme (IPA) or a letter; anything unknown is neutral."""
    s = (symbol or "").strip().lower().strip("ˈˌːˑ.,!?;:'\"")
    if not s:
        return "neutral"
    if s in _VISEME_OF_SYMBOL:
        return _VISEME_OF_SYMBOL[s]
    return _VISEME_OF_SYMBOL.get(s[0], "neutral")


def _letter_groups(word: str) -> list[str]:
    """Split a written word into rough sounds: vowel runs and single consonants ("ee", "th" -> one)."""
    groups, current = [], ""
    for ch in word.lower():
        if not ch.isalpha():
            continue
        if current and (ch in "aeiouy") == (current[-1] in "aeiouy") and ch in "aeiouy":
            current += ch
            continue
        if current:
            groups.append(current)
        current = ch
    if current:
        groups.append(current)
    return groups


def mouth_shape_track(timings: Sequence, n_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (opening factor 0..1, width -1..1) from phoneme or word timings.

    Phonemes map directly; words are split into letter groups spread evenly over the word. Sentence
    timings (or none) carry no mouth shape: the result is then neutral (loudness alone drives the lips).
    """
    opening = np.full(n_frames, VISEMES["neutral"][0], np.float32)
    width = np.zeros(n_frames, np.float32)
    phonemes = [t for t in timings if getattr(t, "kind", "") == "phoneme"]
    units: list[tuple[float, float, str]] = []
    if phonemes:
        units = [(t.start, t.end, viseme_for(t.text)) for t in phonemes]
    else:
        for t in (t for t in timings if getattr(t, "kind", "") == "word"):
            groups = _letter_groups(t.text) or [t.text]
            step = (t.end - t.start) / len(groups)
            units += [(t.start + i * step, t.start + (i + 1) * step, viseme_for(g)) for i, g in enumerate(groups)]
    for start, end, name in units:
        a, b = int(round(start * fps)), max(int(round(end * fps)), int(round(start * fps)) + 1)
        opening[a:b], width[a:b] = VISEMES[name]
    if units:  # coarticulation: the lips never jump from one shape to the next in one frame
        kernel = np.array([0.25, 0.5, 0.25], np.float32)
        opening = np.convolve(np.pad(opening, 1, mode="edge"), kernel, mode="valid")
        width = np.convolve(np.pad(width, 1, mode="edge"), kernel, mode="valid")
    return opening.astype(np.float32), width.astype(np.float32)


def loudness_envelope(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> np.ndarray:
    """RMS of the audio in each video frame's time window (the quantity tests correlate against)."""
    hop = sample_rate / fps
    env = np.zeros(n_frames, np.float32)
    for i in range(n_frames):
        chunk = audio[int(i * hop): int((i + 1) * hop)]
        env[i] = float(np.sqrt(np.mean(np.square(chunk, dtype=np.float64)))) if chunk.size else 0.0
    return env


def jaw_opening(envelope: np.ndarray) -> np.ndarray:
    """Loudness -> opening 0..1: quiet frames closed, the loud end of speech fully open, light smoothing."""
    if envelope.size == 0:
        return envelope
    reference = float(np.percentile(envelope, 95))
    if reference < 1e-4:  # silence (about -80 dBFS): keep the mouth closed
        return np.zeros_like(envelope)
    floor = 0.12 * reference
    opening = np.clip((envelope - floor) / (reference - floor), 0.0, 1.0) ** 0.8
    # fast attack, slower release: real jaws close more slowly than they open
    smoothed = opening.copy()
    for i in range(1, len(smoothed)):
        smoothed[i] = max(opening[i], 0.55 * smoothed[i - 1] + 0.45 * opening[i])
    return smoothed.astype(np.float32)


@dataclass
class DrivingSignal:
    loudness: np.ndarray  # raw RMS per frame
    opening: np.ndarray  # 0..1 per frame: jaw and lip opening
    width: np.ndarray  # -1..1 per frame: round .. wide


def driving_signal(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float,
                   timings: Sequence = ()) -> DrivingSignal:
    loud = loudness_envelope(audio, sample_rate, n_frames, fps)
    jaw = jaw_opening(loud)
    shape_open, width = mouth_shape_track(timings, n_frames, fps)
    # Loudness leads (it is what the viewer hears); the shape modulates it.
    has_shapes = any(getattr(t, "kind", "") in ("phoneme", "word") for t in timings)
    opening = jaw * (0.55 + 0.45 * shape_open) if has_shapes else jaw
    return DrivingSignal(loud, opening.astype(np.float32), width * np.minimum(1.0, jaw * 3))


# ---------------------------------------------------------------- motion that does not come from speech


def blink_track(n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure 0..1 per frame: a blink every 2-6 s, lasting about 0.2 s."""
    closure = np.zeros(n_frames, np.float32)
    t = rng.uniform(0.8, 3.0)
    while t * fps < n_frames:
        center, half = t * fps, max(1.5, 0.1 * fps)
        for i in range(int(center - half), int(center + half) + 1):
            if 0 <= i < n_frames:
                closure[i] = max(closure[i], 1.0 - abs(i - center) / half)
        t += rng.uniform(2.0, 6.0)
    return closure


def head_motion_track(n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) rows of (roll in radians, dx, dy in eye-distance units): slow sums of sines + breathing."""
    t = np.arange(n_frames) / fps
    out = np.zeros((n_frames, 3), np.float32)
    amplitudes = (0.012, 0.018, 0.012)
    for k, amp in enumerate(amplitudes):
        for freq in (0.11, 0.23, 0.37):
            out[:, k] += amp / 3 * np.sin(2 * np.pi * freq * rng.uniform(0.7, 1.3) * t + rng.uniform(0, 2 * np.pi))
    out[:, 2] += 0.006 * np.sin(2 * np.pi * 0.25 * t)  # breathing: ~15 breaths a minute
    return out


