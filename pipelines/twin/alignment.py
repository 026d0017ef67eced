"""A voice recording -> phoneme timings, so that a user's own recording gets mouth shapes, not only
loudness.

Two ways, the best that works:
- ``words``: Whisper (``pipelines.voice.recognition``) hears the words and when each is said; eSpeak NG
  gives each word's phonemes and their relative lengths; the phonemes are spread over the voiced part
  of the word's time span. For English with the bundled Whisper tiny.en; for any language eSpeak
  knows when a multilingual Whisper is chosen.
- ``sound``: for other languages, or when Whisper hears no confident words (music, mumbling, a
  language it does not know), each voiced 10 ms frame gets a vowel class from its formants (F1, F2
  by linear prediction, normalised per recording), and hissing frames an "s"; those become vowel
  pseudo-phonemes.

The result is ``pipelines.voice.engines.Timing`` objects (kind "phoneme", IPA symbol; plus "word"),
exactly what the synthesized voices give, so a renderer consumes it unchanged. It also says which way
was used (``Alignment.method``) and has a Notice for the user.

    python -m pipelines.twin.alignment my_voice.wav
"""
from __future__ import annotations

import functools
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.errors import ModelLoadError, UserError
from ..core.jobs import StopToken, check_stop
from ..core.notices import Notice
from ..core.runtime import Runtime
from ..voice.engines import EspeakEngine, Timing

HOP = 0.01  # analysis frames every 10 ms
MIN_WORD_CONFIDENCE = 0.6  # Whisper's mean word probability: ~0.9 on clear English, ~0.3-0.5 on Mandarin heard by tiny.en
_STRESS = "ˈˌ"


@dataclass
class Alignment:
    timings: list[Timing]  # phonemes (and words when heard), seconds from the start of the recording
    method: str  # "words" | "sound" | "silent"
    language: str = ""  # the language heard ("" when unknown)
    text: str = ""  # what Whisper heard (empty for the "sound" method)
    reason: str = ""  # why the words were not used (English, for logs and params)
    seconds_taken: float = 0.0
    notices: list[Notice] = field(default_factory=list)

    @property
    def phonemes(self) -> list[Timing]:
        return [t for t in self.timings if t.kind == "phoneme"]


def align_recording(audio: np.ndarray, sample_rate: int, *, language: str | None = None,
                    model: str | None = None, runtime: Runtime | None = None,
                    stop: StopToken | None = None) -> Alignment:
    """Phoneme timings for a recording; ``language`` (e.g. "en", "zh") when known, else detected/assumed."""
    from ..voice import recognition

    started = time.perf_counter()
    runtime = runtime or Runtime.default()
    model = model or recognition.DEFAULT_MODEL
    samples = np.asarray(audio, np.float32).reshape(-1)
    if samples.size == 0 or float(np.max(np.abs(samples))) < 1e-3:
        return Alignment([], "silent", language or "", seconds_taken=time.perf_counter() - started)

    reason = ""
    if recognition.knows_language(language, model, runtime):
        try:
            transcript = recognition.transcribe(samples, sample_rate, language=language, model=model,
                                                runtime=runtime, stop=stop)
            voice = _espeak_voice(transcript.language, runtime)
            confident = [w for w in transcript.words if w.probability >= 0.4]
            if transcript.mean_probability < MIN_WORD_CONFIDENCE or not confident:
                reason = f"no confident words (mean word probability {transcript.mean_probability:.2f})"
            elif voice is None:
                reason = f"eSpeak NG has no voice for '{transcript.language}'"
            else:
                timings = phonemes_from_words(transcript.words, samples, sample_rate, voice, runtime)
                if timings:
                    return Alignment(timings, "words", transcript.language, transcript.text,
                                     seconds_taken=time.perf_counter() - started, notices=[_WORDS_NOTICE])
                reason = "the words heard fall in silence"
        except ModelLoadError as exc:  # no Whisper installed: the video is still made, with the fallback
            reason = f"speech recognition unavailable: {exc}"
    else:
        reason = f"the speech recognition model does not know '{language}'"
    check_stop(stop)
    timings = phonemes_from_sound(samples, sample_rate)
    return Alignment(timings, "sound", language or "", reason=reason,
                     seconds_taken=time.perf_counter() - started, notices=[_SOUND_NOTICE])


_WORDS_NOTICE = Notice("Mouth shapes from the words Whisper heard in your recording.",
                       "口型来自 Whisper 在你的录音中听到的词语。", "info")
_SOUND_NOTICE = Notice("Mouth shapes from loudness and sound colour only: no words were recognised in this "
                       "recording (the offline speech recogniser knows English only).",
                       "口型仅来自音量和音色：未能识别这段录音中的词语（离线语音识别只支持英语）。", "info")


def _espeak_voice(language: str, runtime: Runtime) -> str | None:
    engine = _espeak(runtime)
    return engine.voice_for((language or "en").split("-")[0])


def _espeak(runtime: Runtime) -> EspeakEngine:
    # The same cache key as the voice synthesis pipeline: one eSpeak per process either way.
    return runtime.cache.get("voice:espeak", EspeakEngine, label="eSpeak NG", device="cpu")


# ---------------------------------------------------------------- words -> phonemes


def phonemes_from_words(words: Sequence, audio: np.ndarray, sample_rate: int, espeak_voice: str,
                        runtime: Runtime | None = None) -> list[Timing]:
    """Word timings (objects with .start .end .text) -> word and phoneme Timings.

    Each word's phonemes (eSpeak NG) keep their relative lengths and fill the voiced part of the
    word's span: Whisper's spans often include a little silence, which would make the mouth lag.
    """
    runtime = runtime or Runtime.default()
    engine = _espeak(runtime)
    voiced = voiced_frames(audio, sample_rate)
    out: list[Timing] = []
    for i, word in enumerate(words):
        text = _clean_word(word.text)
        if not text:
            continue
        start, end = float(word.start), float(word.end)
        if end - start < 0.05:  # Whisper sometimes gives a word no length: borrow from the gap after it
            following = float(words[i + 1].start) if i + 1 < len(words) else end + 0.3
            end = max(end, min(following, start + 0.25))
        span = _voiced_span(voiced, start, end)
        if span is None:
            continue  # a word heard in silence (Whisper invents "Thank you." in long pauses)
        start, end = span
        phonemes = _word_phonemes(engine, text, espeak_voice)
        out.append(Timing(start, end, word.text.strip(), "word"))
        total = sum(d for _, d in phonemes) or 1.0
        t = start
        for symbol, duration in phonemes:
            step = (end - start) * duration / total
            out.append(Timing(round(t, 4), round(t + step, 4), symbol, "phoneme"))
            t += step
    return sorted(out, key=lambda x: (x.start, x.kind != "word"))


def _clean_word(text: str) -> str:
    return re.sub(r"[^\w'’-]+", " ", text or "").strip(" '-")


@functools.lru_cache(maxsize=4096)
def _phonemes_of(engine: EspeakEngine, text: str, voice: str) -> tuple[tuple[str, float], ...]:
    spoken = engine.speak(text, voice=voice)
    items = [(t.text.strip(_STRESS), t.end - t.start) for t in spoken.timings if t.kind == "phoneme"]
    return tuple((s, d) for s, d in items if s and d > 0)


def _word_phonemes(engine: EspeakEngine, text: str, voice: str) -> tuple[tuple[str, float], ...]:
    return _phonemes_of(engine, text.lower(), voice) or ((text[0].lower(), 1.0),)


def voiced_frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """True for each 10 ms frame loud enough to be speech (within 35 dB of the loud end of the clip)."""
    hop = max(1, int(round(sample_rate * HOP)))
    n = len(audio) // hop
    if n == 0:
        return np.zeros(0, bool)
    frames = np.asarray(audio[: n * hop], np.float64).reshape(n, hop)
    level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    return level > max(float(np.percentile(level, 95)) - 35.0, -70.0)


def _voiced_span(voiced: np.ndarray, start: float, end: float) -> tuple[float, float] | None:
    a, b = int(start / HOP), max(int(np.ceil(end / HOP)), int(start / HOP) + 1)
    inside = np.flatnonzero(voiced[a:b])
    if inside.size == 0:
        return None
    return (a + inside[0]) * HOP, (a + inside[-1] + 1) * HOP


# ---------------------------------------------------------------- sound -> vowel pseudo-phonemes

# Vowel classes by their first two formants (Hz) for an adult male voice (after the classic
# American English charts; "u" a little fronted, as in "you", "new"). High F1 = open jaw, high
# F2 = spread lips, low F2 = rounded lips. Other voices are scaled to it by their pitch.
VOWEL_FORMANTS = {"i": (280, 2250), "e": (480, 1850), "a": (700, 1250), "o": (520, 900), "u": (320, 1100),
                  "ə": (500, 1450)}
FORMANT_RATE = 8000  # F1 and F2 lie below 3 kHz: 8 kHz sampling is enough and keeps the LPC small
LPC_ORDER = 10
MIN_SEGMENT = 0.04  # seconds: shorter runs join a neighbour (no 10 ms flicker)


def phonemes_from_sound(audio: np.ndarray, sample_rate: int) -> list[Timing]:
    """Vowel pseudo-phonemes ("i", "e", "a", "o", "u", "ə") and "s" for hissing, from the audio alone."""
    from ..voice.audio_dsp import resample

    samples = np.asarray(audio, np.float32).reshape(-1)
    low = resample(samples, int(sample_rate), FORMANT_RATE)
    hop = int(FORMANT_RATE * HOP)
    n = min(len(low) // hop, len(voiced_frames(samples, sample_rate)))
    if n < 3:
        return []
    loud = voiced_frames(samples, sample_rate)[:n]
    hiss = _hiss_frames(samples, sample_rate)[:n]
    f1, f2, pitch = _formant_tracks(low, n)
    periodic = pitch > 0
    vowel = loud & periodic & np.isfinite(f1) & np.isfinite(f2)
    labels = np.array([""] * n, dtype=object)
    labels[loud & hiss & ~periodic] = "s"
    if vowel.sum() >= 3:
        # Higher voices have shorter vocal tracts: formants ~ pitch^0.3 (men ~120 Hz, women ~210 Hz: +18 %).
        scale = float(np.clip((np.median(pitch[vowel]) / 120.0) ** 0.3, 0.9, 1.4))
        names = list(VOWEL_FORMANTS)
        centres = np.log(np.array([VOWEL_FORMANTS[k] for k in names], float))
        l1, l2 = np.log(f1[vowel] / scale), np.log(f2[vowel] / scale)
        distance = (l1[:, None] - centres[:, 0]) ** 2 + (l2[:, None] - centres[:, 1]) ** 2
        labels[vowel] = np.array(names, dtype=object)[np.argmin(distance, axis=1)]
    labels[loud & (labels == "")] = "ə"  # voiced but no clear formants: a neutral open mouth
    return _segments(_median_labels(labels, 5))


def _formant_tracks(low: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F1, F2 (Hz, NaN when not found) and pitch (Hz, 0 when not a voiced sound) per 10 ms frame."""
    from scipy.linalg import solve_toeplitz

    hop, width = int(FORMANT_RATE * HOP), int(FORMANT_RATE * 0.025)
    window = np.hamming(width)
    emphasised = np.append(low[0], low[1:] - 0.97 * low[:-1])  # flatten the spectral tilt before LPC
    padded = np.pad(emphasised, (width // 2, width))
    raw = np.pad(low, (width // 2, width))
    f1, f2 = np.full(n, np.nan), np.full(n, np.nan)
    pitch = np.zeros(n)
    lag_lo, lag_hi = FORMANT_RATE // 400, FORMANT_RATE // 70  # pitch 70..400 Hz
    for i in range(n):
        chunk = raw[i * hop: i * hop + width]
        ac = np.correlate(chunk, chunk, "full")[width - 1:]
        if ac[0] <= 1e-9:
            continue
        lag = lag_lo + int(np.argmax(ac[lag_lo:lag_hi]))
        if ac[lag] / ac[0] < 0.35:
            continue  # not periodic: silence, noise or a hiss
        pitch[i] = FORMANT_RATE / lag
        frame = padded[i * hop: i * hop + width] * window
        r = np.correlate(frame, frame, "full")[width - 1: width + LPC_ORDER]
        if r[0] <= 1e-9:
            continue
        try:
            a = solve_toeplitz(r[:LPC_ORDER], -r[1:LPC_ORDER + 1])
        except np.linalg.LinAlgError:
            continue
        roots = np.roots(np.concatenate(([1.0], a)))
        roots = roots[np.imag(roots) > 0]
        freqs = np.angle(roots) * FORMANT_RATE / (2 * np.pi)
        bandwidths = -np.log(np.abs(roots) + 1e-12) * FORMANT_RATE / np.pi
        candidates = np.sort(freqs[(freqs > 200) & (freqs < 3500) & (bandwidths < 500)])
        if len(candidates) >= 2:
            f1[i], f2[i] = candidates[0], candidates[1]
    return f1, f2, pitch


def _hiss_frames(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Frames whose energy is mostly above 3 kHz (s, sh, f, th): a high zero-crossing rate."""
    hop = max(1, int(round(sample_rate * HOP)))
    n = len(samples) // hop
    frames = samples[: n * hop].reshape(n, hop)
    crossings = np.mean(np.abs(np.diff(np.signbit(frames), axis=1)), axis=1)
    return crossings * sample_rate / 2 > 2500  # crossings per second / 2 ~ dominant frequency


def _median_labels(labels: np.ndarray, width: int) -> np.ndarray:
    """The most common label in a window around each frame (a mode filter on categories)."""
    half = width // 2
    out = labels.copy()
    for i in range(len(labels)):
        window = [x for x in labels[max(0, i - half): i + half + 1]]
        if labels[i] == "":
            continue
        values, counts = np.unique([x for x in window if x != ""], return_counts=True)
        if len(values):
            out[i] = values[np.argmax(counts)]
    return out


def _segments(labels: np.ndarray) -> list[Timing]:
    runs: list[list] = []  # [label, first frame, end frame]
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label and runs[-1][2] == i:
            runs[-1][2] = i + 1
        else:
            runs.append([label, i, i + 1])
    min_frames = int(round(MIN_SEGMENT / HOP))
    merged: list[list] = []
    for run in runs:
        if run[0] and merged and merged[-1][0] and (run[2] - run[1] < min_frames) and merged[-1][2] == run[1]:
            merged[-1][2] = run[2]  # too short: part of the sound before it
        else:
            merged.append(run)
    return [Timing(round(a * HOP, 4), round(b * HOP, 4), label, "phoneme") for label, a, b in merged if label]


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ..core.media import load_audio

    parser = argparse.ArgumentParser(description="Phoneme timings of a voice recording (for lip-sync).")
    parser.add_argument("audio")
    parser.add_argument("--language", default=None, help="e.g. en, zh (default: assume the recogniser's)")
    args = parser.parse_args(argv)
    try:
        samples, rate = load_audio(args.audio)
        result = align_recording(samples, rate, language=args.language)
    except (UserError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"method: {result.method} ({result.reason or 'words heard'}); language {result.language or '?'}; "
          f"{result.seconds_taken:.2f} s")
    if result.text:
        print(result.text)
    print(" ".join(f"{t.text}@{t.start:.2f}" for t in result.phonemes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
