"""Small audio tools for speech, in numpy/scipy: resampling, tempo and pitch change, loudness,
silence trimming.

What it does not: any synthesis (see engines.py), reading files (``core.media.load_audio`` does), or
noise removal beyond trimming silence.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

TARGET_RMS_DBFS = -20.0  # speech loudness after normalisation (broadcast speech sits near -20..-16)
PEAK_LIMIT = 0.97


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(max(0, int(round(seconds * sample_rate))), dtype=np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (band-limited, no aliasing); a no-op when the rates match."""
    if from_rate == to_rate or len(audio) == 0:
        return audio.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(to_rate, from_rate).limit_denominator(1000)
    return resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def time_stretch(audio: np.ndarray, rate: float, sample_rate: int) -> np.ndarray:
    """Change tempo without changing pitch (WSOLA): rate 2.0 = twice as fast.

    Used for engines with no speed control of their own (SpeechT5, Bark) and for pitch shifting.
    """
    if abs(rate - 1.0) < 1e-3 or len(audio) < sample_rate // 20:
        return audio.astype(np.float32, copy=False)
    frame = int(0.03 * sample_rate)  # 30 ms frames, half overlap
    hop_out = frame // 2
    hop_in = hop_out * rate
    tolerance = int(0.008 * sample_rate)  # how far a frame may slide to line up with the last one
    window = np.hanning(frame).astype(np.float32)
    n_out = int(len(audio) / rate)
    padded = np.pad(audio.astype(np.float32), (tolerance, frame + 2 * tolerance + int(hop_in) + hop_out))
    out = np.zeros(n_out + frame, dtype=np.float32)
    weight = np.zeros(n_out + frame, dtype=np.float32)
    previous = 0  # where the last frame was taken from (in padded coordinates, minus tolerance)
    for k in range(n_out // hop_out + 1):
        nominal = int(k * hop_in)
        if k == 0:
            start = nominal
        else:
            # The natural continuation of the previous frame, and the best match to it near nominal.
            follow = padded[previous + tolerance + hop_out: previous + tolerance + hop_out + frame]
            region = padded[nominal: nominal + frame + 2 * tolerance]
            if len(follow) < frame or len(region) < frame + 2 * tolerance:
                break
            score = np.correlate(region, follow, mode="valid")
            start = nominal + int(np.argmax(score)) - tolerance
        start = max(0, start)
        piece = padded[start + tolerance: start + tolerance + frame]
        if len(piece) < frame:
            break
        at = k * hop_out
        out[at:at + frame] += piece * window
        weight[at:at + frame] += window
        previous = start
    return (out[:n_out] / np.maximum(weight[:n_out], 1e-3)).astype(np.float32)


def pitch_shift(audio: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """Raise or lower pitch by ``semitones`` keeping the duration (stretch, then resample)."""
    if abs(semitones) < 0.05 or len(audio) == 0:
        return audio
    factor = 2.0 ** (semitones / 12.0)
    stretched = time_stretch(audio, 1.0 / factor, sample_rate)
    ratio = Fraction(factor).limit_denominator(200)
    from scipy.signal import resample_poly

    return resample_poly(stretched, ratio.denominator, ratio.numerator).astype(np.float32)


def normalize_loudness(audio: np.ndarray, target_dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    """Scale speech to a target loudness (RMS of the voiced part), never clipping."""
    if len(audio) == 0:
        return audio
    peak = float(np.max(np.abs(audio)))
    if peak < 1e-5:
        return audio  # silence stays silence
    voiced = audio[np.abs(audio) > peak * 0.05]  # ignore pauses so they do not lower the average
    rms = float(np.sqrt(np.mean(voiced.astype(np.float64) ** 2))) if len(voiced) else peak
    gain = 10 ** (target_dbfs / 20) / max(rms, 1e-6)
    gain = min(gain, PEAK_LIMIT / peak)
    return (audio * gain).astype(np.float32)


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                 margin: float = 0.15) -> np.ndarray:
    """Cut leading and trailing silence (frames quieter than ``threshold_db`` below the loudest)."""
    if len(audio) == 0:
        return audio
    frame = max(1, int(0.02 * sample_rate))
    n = len(audio) // frame
    if n == 0:
        return audio
    energy = np.sqrt(np.mean(audio[:n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    loud = np.nonzero(energy > energy.max() * 10 ** (threshold_db / 20))[0]
    if len(loud) == 0:
        return audio[:0]
    pad = int(margin * sample_rate)
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:end]
