"""What drives a talking head besides the photo: audio and timings -> per-frame mouth poses, and the
motion that does not come from the mouth (blinks, gaze, head turns and nods, the smile relaxing).
Pure numpy: no model, no image; the renderer turns these numbers into pixels.

Mouth poses come from phoneme timings (IPA, as eSpeak NG / Piper / the recording aligner give them):
each phoneme maps to a viseme (a mouth shape with jaw drop, lip gap, width, protrusion, upper-lip raise
and tongue tip), and neighbouring visemes are blended with dominance functions (Cohen & Massaro's
coarticulation model: every segment pulls each parameter toward its target with a strength that
decays with the distance in time, so rounding is anticipated and m/b/p still close the lips).
Loudness scales the opening, and silence longer than a stop consonant brings the mouth back to the
photo's own rest shape within two frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# ---------------------------------------------------------------- visemes


@dataclass(frozen=True)
class Viseme:
    """A mouth shape. Lengths are in eye distances (outer eye corners), the renderer's unit."""

    jaw: float  # lower teeth drop below the closed bite
    gap: float  # inner-lip gap at the middle of the mouth
    width: float  # relative change of the mouth's width: -0.3 rounded .. +0.12 spread
    pucker: float  # lips pushed forward 0..1 (fuller, rounder lips)
    upper: float  # upper lip raised to show the upper teeth
    tongue: float  # tongue tip up behind (or between) the teeth 0..1
    # dominance (how strongly the shape holds against its neighbours) for jaw, lips, lip shape, tongue
    dominance: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)


VISEMES: dict[str, Viseme] = {
    # Conversational speech: the gap is mostly a small fraction of the eye distance; "a" is the widest.
    "PP": Viseme(0.020, 0.000, 0.00, 0.15, 0.000, 0.0, (0.6, 25.0, 0.6, 0.3)),  # m b p: lips pressed
    "FF": Viseme(0.030, 0.012, 0.00, 0.00, 0.022, 0.0, (0.8, 15.0, 0.8, 0.3)),  # f v: lower lip to upper teeth
    "TH": Viseme(0.040, 0.045, 0.02, 0.00, 0.010, 1.0, (1.0, 1.5, 0.5, 3.0)),  # θ ð: tongue tip at the teeth
    "DD": Viseme(0.045, 0.055, 0.03, 0.00, 0.005, 1.0, (1.0, 0.8, 0.4, 3.0)),  # t d n l: tip up
    "KK": Viseme(0.060, 0.080, 0.00, 0.00, 0.000, 0.0, (0.8, 0.5, 0.3, 0.5)),  # k g ŋ
    "CH": Viseme(0.035, 0.050, -0.12, 0.60, 0.012, 0.3, (1.0, 1.5, 3.0, 0.5)),  # ʃ ʒ tʃ dʒ: flared forward
    "SS": Viseme(0.020, 0.040, 0.06, 0.00, 0.012, 0.4, (1.5, 1.5, 1.2, 0.5)),  # s z: teeth close, spread
    "RR": Viseme(0.040, 0.050, -0.10, 0.45, 0.000, 0.2, (0.8, 1.0, 1.8, 0.5)),  # ɹ r
    "AA": Viseme(0.120, 0.200, 0.02, 0.00, 0.010, 0.0, (2.0, 1.5, 1.0, 1.0)),  # a ɑ æ ʌ: open
    "EE": Viseme(0.080, 0.130, 0.06, 0.00, 0.010, 0.0, (2.0, 1.5, 1.2, 1.0)),  # e ɛ
    "II": Viseme(0.040, 0.070, 0.12, 0.00, 0.012, 0.0, (1.5, 1.2, 2.0, 1.0)),  # i ɪ j: spread
    "OO": Viseme(0.085, 0.130, -0.17, 0.80, 0.000, 0.0, (2.0, 1.5, 2.2, 1.0)),  # o ɔ: round
    "UU": Viseme(0.045, 0.075, -0.22, 1.00, 0.000, 0.0, (1.5, 1.2, 2.5, 1.0)),  # u ʊ w: round, forward
    "ER": Viseme(0.065, 0.100, 0.00, 0.00, 0.000, 0.0, (1.0, 1.0, 0.5, 0.5)),  # ə ɜ ɚ (neutral vowel)
    "HH": Viseme(0.050, 0.070, 0.00, 0.00, 0.000, 0.0, (0.3, 0.3, 0.2, 0.2)),  # h, unknown: takes neighbours
}
_VISEME_OF_SYMBOL = {
    **dict.fromkeys(["m", "b", "p", "ɱ"], "PP"),
    **dict.fromkeys(["f", "v"], "FF"),
    **dict.fromkeys(["θ", "ð"], "TH"),
    **dict.fromkeys(["t", "d", "n", "l", "ɾ", "ɫ", "ɬ", "ɲ", "c", "ɟ"], "DD"),
    **dict.fromkeys(["k", "ɡ", "g", "ŋ", "x", "ɣ", "q", "ʔ"], "KK"),
    **dict.fromkeys(["ʃ", "ʒ", "tʃ", "dʒ", "ɕ", "ʑ", "ʂ", "ʐ", "ç"], "CH"),
    **dict.fromkeys(["s", "z", "ts", "dz"], "SS"),
    **dict.fromkeys(["ɹ", "r", "ɻ", "ʁ", "ʀ"], "RR"),
    **dict.fromkeys(["a", "ɑ", "æ", "ʌ", "ɐ", "ɒ", "aɪ", "aʊ", "ɑː", "ɶ"], "AA"),
    **dict.fromkeys(["e", "ɛ", "eɪ", "ɛː", "eː"], "EE"),
    **dict.fromkeys(["i", "ɪ", "j", "iː", "ɨ", "y", "ʏ", "ʲ"], "II"),
    **dict.fromkeys(["o", "ɔ", "oʊ", "ɔː", "ɔɪ", "ɵ", "ø", "œ", "oː"], "OO"),
    **dict.fromkeys(["u", "ʊ", "w", "uː", "ɯ", "ʉ", "ɥ"], "UU"),
    **dict.fromkeys(["ə", "ɜ", "ɚ", "ɝ", "ɜː"], "ER"),
    **dict.fromkeys(["h", "ɦ"], "HH"),
}
# Written letters (word timings without phonemes): the closest viseme of each letter
_VISEME_OF_LETTER = {**dict.fromkeys("mbp", "PP"), **dict.fromkeys("fv", "FF"), **dict.fromkeys("tdnl", "DD"),
                     **dict.fromkeys("kgqxc", "KK"), **dict.fromkeys("sz", "SS"), "r": "RR", "j": "CH",
                     "a": "AA", "e": "EE", "i": "II", "y": "II", "o": "OO", "u": "UU", "w": "UU", "h": "HH"}
_LETTER_PAIRS = {"th": "TH", "sh": "CH", "ch": "CH", "ee": "II", "ea": "II", "oo": "UU", "ou": "OO", "ph": "FF"}


def viseme_for(symbol: str) -> str:
    """The viseme name of a phoneme (IPA) or a written letter group; anything unknown is "HH"."""
    s = (symbol or "").strip().strip("ˈˌˑ.,!?;:'\"").lower()
    s = s.rstrip("ː") or s
    if not s:
        return "HH"
    if s in _VISEME_OF_SYMBOL:
        return _VISEME_OF_SYMBOL[s]
    if s[:2] in _LETTER_PAIRS:
        return _LETTER_PAIRS[s[:2]]
    if s[:2] in _VISEME_OF_SYMBOL:
        return _VISEME_OF_SYMBOL[s[:2]]
    return _VISEME_OF_SYMBOL.get(s[0], _VISEME_OF_LETTER.get(s[0], "HH"))


def _letter_groups(word: str) -> list[str]:
    """Split a written word into rough sounds: vowel runs, "th"/"sh"/"ch"/"ph" and single consonants."""
    groups, word, i = [], "".join(ch for ch in word.lower() if ch.isalpha()), 0
    while i < len(word):
        if word[i:i + 2] in ("th", "sh", "ch", "ph"):
            groups.append(word[i:i + 2])
            i += 2
            continue
        j = i + 1
        if word[i] in "aeiouy":
            while j < len(word) and word[j] in "aeiouy":
                j += 1
        groups.append(word[i:j])
        i = j
    return groups


def viseme_segments(timings: Sequence) -> list[tuple[float, float, str]]:
    """(start, end, viseme) from phoneme timings, else from word timings spread over their letters."""
    phonemes = [t for t in timings if getattr(t, "kind", "") == "phoneme"]
    if phonemes:
        return [(float(t.start), max(float(t.end), float(t.start) + 0.02), viseme_for(t.text)) for t in phonemes]
    segments = []
    for t in (t for t in timings if getattr(t, "kind", "") == "word"):
        groups = _letter_groups(t.text) or ["a"]
        step = (float(t.end) - float(t.start)) / len(groups)
        segments += [(t.start + i * step, t.start + (i + 1) * step, viseme_for(g)) for i, g in enumerate(groups)]
    return segments


# ---------------------------------------------------------------- mouth poses over time

MOUTH_PARAMS = ("jaw", "gap", "width", "pucker", "upper", "tongue")
_GROUP_OF_PARAM = (0, 1, 2, 2, 1, 3)  # which dominance each parameter uses
# How far (seconds) a segment's pull reaches before and after it, per group: lip rounding is
# anticipated longest (it starts on the consonants before an "oo"), lip closure shortest.
_REACH_S = (0.060, 0.045, 0.100, 0.050)


@dataclass
class MouthTrack:
    """Per-frame mouth pose; every field is a float32 array of n_frames. Lengths in eye distances."""

    jaw: np.ndarray
    gap: np.ndarray
    width: np.ndarray
    pucker: np.ndarray
    upper: np.ndarray
    tongue: np.ndarray
    rest: np.ndarray  # 0..1: 1 = the photo's own mouth (silence); blends the pose above toward it
    speaking: np.ndarray  # 0..1, slow: how much the face is in "speaking" mode (the smile relaxes)

    def __len__(self) -> int:
        return len(self.rest)

    def frame(self, i: int) -> dict[str, float]:
        return {name: float(getattr(self, name)[i]) for name in MOUTH_PARAMS + ("rest", "speaking")}


def coarticulate(segments: Sequence[tuple[float, float, str]], n_frames: int, fps: float) -> dict[str, np.ndarray]:
    """Blend viseme targets with dominance functions; frames no segment reaches get a neutral pose."""
    times = (np.arange(n_frames, dtype=np.float64) + 0.5) / fps
    num = np.zeros((len(MOUTH_PARAMS), n_frames))
    den = np.zeros((len(MOUTH_PARAMS), n_frames))
    reach_max = 5 * max(_REACH_S)
    for start, end, name in segments:
        v = VISEMES[name]
        a = max(0, int((start - reach_max) * fps))
        b = min(n_frames, int((end + reach_max) * fps) + 1)
        if a >= b:
            continue
        t = times[a:b]
        # a shape is anticipated further ahead than it lingers after its sound
        outside = np.maximum(0.0, np.maximum(start - t, 2.0 * (t - end)))
        targets = (v.jaw, v.gap, v.width, v.pucker, v.upper, v.tongue)
        for k, target in enumerate(targets):
            g = _GROUP_OF_PARAM[k]
            # a strong shape (m, b, p closing the lips) holds its own span but does not spread further
            reach = _REACH_S[g] * min(1.0, (2.0 / v.dominance[g]) ** 0.5)
            dom = v.dominance[g] * np.exp(-outside / reach)
            num[k, a:b] += dom * target
            den[k, a:b] += dom
    neutral = VISEMES["ER"]
    floor = 1e-3  # where no segment reaches, the neutral vowel (the rest track closes the mouth there)
    base = np.array([neutral.jaw, neutral.gap, 0.0, 0.0, 0.0, 0.0])[:, None]
    out = (num + floor * base) / (den + floor)
    return {name: out[k].astype(np.float32) for k, name in enumerate(MOUTH_PARAMS)}


def loudness_envelope(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float) -> np.ndarray:
    """RMS of the audio in each video frame's time window (the quantity tests correlate against)."""
    audio = np.asarray(audio, np.float32).reshape(-1)
    hop = sample_rate / fps
    edges = np.minimum((np.arange(n_frames + 1) * hop).astype(np.int64), len(audio))
    env = np.zeros(n_frames, np.float64)
    step = 2048  # frames at a time: memory stays flat however long the clip is
    for a in range(0, n_frames, step):
        b = min(a + step, n_frames)
        lo, hi = edges[a], edges[b]
        if hi <= lo:
            continue
        chunk = audio[lo:hi].astype(np.float64)
        starts = edges[a:b] - lo
        sums = np.add.reduceat(chunk * chunk, np.minimum(starts, len(chunk) - 1))
        counts = np.diff(edges[a: b + 1])
        env[a:b] = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return np.sqrt(env).astype(np.float32)


def speech_level(envelope: np.ndarray) -> float:
    """A robust "loud speech" level: the 90th percentile of the frames that are not silent."""
    voiced = envelope[envelope > 0.02 * (float(envelope.max()) if envelope.size else 0.0)]
    return float(np.percentile(voiced, 90)) if voiced.size else 0.0


def pause_mask(envelope: np.ndarray, fps: float, min_pause_s: float = 0.14) -> np.ndarray:
    """Frames inside silences long enough to be pauses (longer than a stop consonant's closure)."""
    level = speech_level(envelope)
    if level < 1e-4:  # about -80 dBFS: nothing is spoken at all
        return np.ones(len(envelope), bool)
    silent = envelope < 0.07 * level
    pauses = np.zeros(len(envelope), bool)
    min_len = max(2, int(round(min_pause_s * fps)))
    i = 0
    while i < len(silent):
        if not silent[i]:
            i += 1
            continue
        j = i
        while j < len(silent) and silent[j]:
            j += 1
        if j - i >= min_len or i == 0 or j == len(silent):  # leading and trailing silence always count
            pauses[i:j] = True
        i = j
    return pauses


def rest_track(pauses: np.ndarray) -> np.ndarray:
    """1 inside pauses, easing in over the pause's first two frames (closed within ~80 ms at 25 fps)
    and out one frame before the sound comes back (the lips move before the voice is heard)."""
    rest = pauses.astype(np.float32)
    out = rest.copy()
    n = len(rest)
    for i in range(n):
        if not pauses[i]:
            continue
        if i > 0 and not pauses[i - 1]:  # first silent frame: most of the way already
            out[i] = 0.7
        if i + 1 < n and not pauses[i + 1]:  # last silent frame: the next sound's shape begins
            out[i] = min(out[i], 0.45)
    return out


def _follow(x: np.ndarray, fps: float, attack_s: float, release_s: float) -> np.ndarray:
    """A one-pole follower with separate rise and fall times."""
    up, down = 1 - np.exp(-1 / (attack_s * fps)), 1 - np.exp(-1 / (release_s * fps))
    out = np.zeros_like(x, dtype=np.float32)
    level = float(x[0]) if len(x) else 0.0
    for i, v in enumerate(x):
        level += (v - level) * (up if v > level else down)
        out[i] = level
    return out


def mouth_track(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float,
                timings: Sequence = ()) -> tuple[MouthTrack, np.ndarray]:
    """The mouth pose of every frame and the loudness envelope it was derived from."""
    loud = loudness_envelope(audio, sample_rate, n_frames, fps)
    level = speech_level(loud)
    norm = np.clip(loud / level, 0.0, 1.4) if level > 1e-4 else np.zeros_like(loud)
    segments = viseme_segments(timings)
    if segments:
        pose = coarticulate(segments, n_frames, fps)
        # loudness scales the opening: stressed, loud syllables open wider than weak ones
        scale = np.clip(0.1 + 1.1 * _smooth(norm, 1) ** 0.9, 0.1, 1.4).astype(np.float32)
        pose["jaw"] = pose["jaw"] * scale
        pose["gap"] = pose["gap"] * scale
    else:  # no timings: loudness alone opens a neutral mouth
        opening = _smooth(norm, 1) ** 0.8
        pose = {"jaw": 0.085 * opening, "gap": 0.13 * opening, "width": np.zeros(n_frames, np.float32),
                "pucker": np.zeros(n_frames, np.float32), "upper": 0.008 * opening,
                "tongue": np.zeros(n_frames, np.float32)}
    pauses = pause_mask(loud, fps)
    rest = rest_track(pauses)
    speaking = _follow(1.0 - pauses.astype(np.float32), fps, attack_s=0.35, release_s=0.6)
    track = MouthTrack(**{k: np.asarray(v, np.float32) for k, v in pose.items()}, rest=rest, speaking=speaking)
    return track, loud


def _smooth(x: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0 or len(x) < 3:
        return x.astype(np.float32)
    kernel = np.hanning(2 * radius + 3)[1:-1]
    kernel /= kernel.sum()
    return np.convolve(np.pad(x, radius, mode="edge"), kernel, mode="valid").astype(np.float32)


# ---------------------------------------------------------------- motion that does not come from the mouth


def blink_track(n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure 0..1 per frame: a blink every 2-6 s; the lid falls in ~70 ms and rises in ~110 ms."""
    closure = np.zeros(n_frames, np.float32)
    t = rng.uniform(0.8, 3.0)
    close_s, open_s = 0.07, 0.11
    times = np.arange(n_frames) / fps
    while t < n_frames / fps:
        falling = (times >= t - close_s) & (times <= t)
        rising = (times > t) & (times <= t + open_s)
        closure[falling] = np.maximum(closure[falling], 1 - (t - times[falling]) / close_s)
        closure[rising] = np.maximum(closure[rising], 1 - (times[rising] - t) / open_s)
        # at 25 fps a frame may miss the closed instant: the frame nearest to it is fully closed
        nearest = int(round(t * fps))
        if 0 <= nearest < n_frames:
            closure[nearest] = 1.0
        t += rng.uniform(2.0, 6.0)
    return closure


def gaze_track(n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) iris offsets in eye widths: mostly at the camera, with small quick glances (saccades)."""
    out = np.zeros((n_frames, 2), np.float32)
    t, target = 0.0, np.zeros(2, np.float32)
    while t * fps < n_frames:
        hold = rng.uniform(0.5, 2.2)
        a, b = int(t * fps), int((t + hold) * fps)
        out[a:b] = target
        t += hold
        target = np.zeros(2, np.float32) if rng.random() < 0.45 else \
            np.array([rng.uniform(-0.07, 0.07), rng.uniform(-0.035, 0.025)], np.float32)
    # a saccade takes ~40 ms: one frame of travel
    return _smooth_rows(out, np.array([0.25, 0.5, 0.25], np.float32))


def _smooth_rows(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    r = len(kernel) // 2
    padded = np.pad(x, ((r, r), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, k], kernel, mode="valid") for k in range(x.shape[1])], 1).astype(np.float32)


def head_motion_track(n_frames: int, fps: float, rng: np.random.Generator,
                      loudness: np.ndarray | None = None) -> np.ndarray:
    """(n, 5) rows of (yaw, pitch, roll in radians, dx, dy in eye distances).

    Slow sums of sines (a few degrees at most) plus breathing, and nods that follow the speech: a
    small downward nod on each loud, stressed stretch, which then eases back.
    """
    t = np.arange(n_frames) / fps
    out = np.zeros((n_frames, 5), np.float32)
    amplitudes = (0.035, 0.018, 0.016, 0.010, 0.006)  # ~2, 1, 0.9 degrees; small shifts
    for k, amp in enumerate(amplitudes):
        for freq in (0.09, 0.19, 0.31):
            out[:, k] += amp / 2.2 * np.sin(2 * np.pi * freq * rng.uniform(0.7, 1.3) * t + rng.uniform(0, 2 * np.pi))
    out[:, 4] += 0.004 * np.sin(2 * np.pi * 0.25 * t)  # breathing: ~15 breaths a minute
    if loudness is not None and len(loudness) == n_frames and loudness.max() > 0:
        level = speech_level(loudness) or float(loudness.max())
        envelope = _smooth(np.clip(loudness / level, 0, 1.5), 3)
        baseline = _smooth(envelope, int(fps * 0.6))
        emphasis = np.clip(envelope - baseline - 0.1, 0, None)
        # impulse response of a nod: down in ~0.15 s, back over ~0.4 s
        k = np.arange(int(0.8 * fps)) / fps
        tau = 0.15
        response = (k / tau) * np.exp(1 - k / tau)
        nods = np.convolve(emphasis, response, mode="full")[:n_frames]
        peak = float(np.percentile(nods, 99))
        if peak > 1e-6:
            out[:, 1] += 0.03 * np.clip(nods / peak, 0, 1.3)  # up to ~2 degrees down
        out[:, 0] += 0.25 * (out[:, 1] - _smooth(out[:, 1], int(fps)))  # a nod often carries a slight turn
    return out


def brow_track(loudness: np.ndarray, fps: float) -> np.ndarray:
    """0..1 per frame: brows lift a little on the loudest, stressed moments of speech."""
    if loudness.size == 0 or loudness.max() <= 0:
        return np.zeros_like(loudness)
    level = speech_level(loudness) or float(loudness.max())
    envelope = _smooth(np.clip(loudness / level, 0, 1.5), 2)
    baseline = _smooth(envelope, int(fps))
    lift = np.clip((envelope - baseline - 0.15) * 2.5, 0, 1)
    return _follow(lift, fps, attack_s=0.08, release_s=0.35)


@dataclass
class Performance:
    """Everything that moves, per frame: what the renderer needs besides the photo."""

    mouth: MouthTrack
    loudness: np.ndarray
    blink: np.ndarray
    gaze: np.ndarray  # (n, 2)
    head: np.ndarray  # (n, 5): yaw, pitch, roll, dx, dy
    brows: np.ndarray
    expression: float = 1.0
    extras: dict = field(default_factory=dict)


def performance(audio: np.ndarray, sample_rate: int, n_frames: int, fps: float, timings: Sequence = (), *,
                expression: float = 1.0, still: bool = False, seed: int = 0) -> Performance:
    """The whole performance for one clip: the mouth from the speech, the rest seeded (a seed repeats it)."""
    rng = np.random.default_rng(seed)
    mouth, loud = mouth_track(audio, sample_rate, n_frames, fps, timings)
    gain = float(np.clip(expression, 0.0, 2.0))
    if still:
        zeros = np.zeros(n_frames, np.float32)
        return Performance(mouth, loud, zeros, np.zeros((n_frames, 2), np.float32),
                           np.zeros((n_frames, 5), np.float32), zeros, gain)
    blinks = blink_track(n_frames, fps, rng)
    gaze = gaze_track(n_frames, fps, rng)
    head = head_motion_track(n_frames, fps, rng, loud) * (0.5 + 0.5 * min(gain, 1.6))
    brows = brow_track(loud, fps) * min(gain, 2.0)
    return Performance(mouth, loud, blinks, gaze, head, brows, gain)
