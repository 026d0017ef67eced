"""A live conversation with a digital twin: the user speaks (or types), the twin answers with its voice
and its face, streamed, offline on a CPU.

One :class:`Conversation` per user. Its stages run on threads joined by queues, so each works while
the next one is busy:

    feed_audio() -> VAD (in the caller's thread) -> questions
    ears thread:  speech recognition, started as soon as the speaker pauses (before the VAD is sure)
    turn thread:  (the recognised words) -> the text model, streamed -> sentences
    voice thread: each sentence -> speech (while the model writes the next one)
    stage thread: the face, frame by frame in real time: idle (blinks, small head motion, mouth
                  closed) while listening, the answer's frames as each sentence's sound arrives
                  -> sinks (a SegmentStream for the browser, a ConversationRecorder, a test's list)

The photo's setup (face detection, framing, the engine's rig) happens once, in :meth:`start`.
Barge-in: when the user starts speaking (or types) the turn in flight is stopped and the twin goes
quiet at the next frame. Each turn keeps its timings (end of speech, VAD end, ASR done, first
sentence, first speech, first frame, first segment sent).

What it does not: transport media to a browser (the UI does, with media.SegmentStream), or keep
anything after :meth:`close` except the files it was asked to save.
"""
from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.errors import ModelLoadError, Stopped, UserError
from ..core.jobs import StopToken
from ..core.notices import Notice
from ..core.runtime import Runtime
from .media import AvFrame, ConversationRecorder, Segment
from .sentences import SentenceSplitter
from .vad import VAD_RATE, VadConfig, VadEvent, VoiceActivityDetector

log = logging.getLogger(__name__)

AI_LABEL = "AI-generated · AI 生成"
AI_LABEL_EN = "AI-generated"
# What Whisper writes for noise, music or breathing: not a question.
NOT_SPEECH = {"", "you", "thank you.", "thanks for watching!", "[music]", "(music)", "[blank_audio]", "...", "."}


@dataclass
class ChatConfig:
    language: str = "en"  # what the user speaks: "en", "zh", ... or "auto" (a multilingual Whisper detects it)
    asr_model: str | None = None  # None: Whisper tiny.en for English, an installed multilingual one otherwise
    text_model: str | None = None  # None: the best offline model for the language (bundled SmolLM2)
    engine: str = "classic"
    fps: int = 25
    sample_rate: int = 22050  # the output sound (Piper's own rate: no resampling on the common path)
    max_answer_tokens: int = 70  # two or three spoken sentences
    temperature: float = 0.2  # low: a small model strays at higher temperatures
    history_turns: int = 4  # earlier turns the model sees: this many to twice as many (dropped in blocks)
    expression: float = 1.0
    seed: int = 0  # head motion and blinks; the answers' sampling
    ai_label: bool = True
    provenance: bool = True  # an invisible watermark in every frame shown; recordings: in their sound too, signed
    vad: VadConfig = field(default_factory=VadConfig)
    lead_seconds: float = 0.12  # how far the stage may run ahead of the clock
    first_answer_frames: int = 3  # sent at once when an answer starts (a short first segment)
    pause_after_sentence: float = 0.12  # seconds of silence between spoken sentences


@dataclass
class ChatTwin:
    """What the conversation animates: a photo, a voice, a persona."""

    photo: Any  # a path, PIL image or RGB array
    voice: str | None = None  # a voice name of the voice synthesis pipeline (None: by language)
    persona: str = ""
    name: str = ""  # the profile's name, when it came from one

    @classmethod
    def from_profile(cls, name: str, runtime: Runtime | None = None) -> "ChatTwin":
        from ..twin import profiles

        profile = profiles.load_profile(name, runtime)
        if not Path(profile.photo).is_file():
            raise UserError(f"The photo of the profile \"{profile.name}\" was deleted. Choose a photo, or save the "
                            "profile again in the twin wizard.",
                            zh=f"档案“{profile.name}”的照片已被删除。请选择一张照片，或在数字分身向导中重新保存该档案。")
        return cls(photo=profile.photo, voice=profile.voice, persona=profile.persona, name=profile.name)


@dataclass
class TurnTimings:
    """perf_counter() instants; :meth:`seconds` gives them relative to the end of the user's speech."""

    speech_end: float = 0.0  # the last voiced sound reached us (typed: the question was sent)
    vad_end: float | None = None
    asr_done: float | None = None
    first_token: float | None = None
    first_sentence: float | None = None
    first_speech: float | None = None
    first_frame: float | None = None
    first_segment: float | None = None  # the segment with the first answer frame (and sound) is encoded
    first_sent: float | None = None  # ... and has left the server
    done: float | None = None

    def seconds(self) -> dict[str, float | None]:
        return {name: (None if value is None else round(value - self.speech_end, 3))
                for name, value in self.__dict__.items() if name != "speech_end"}


@dataclass
class Turn:
    number: int
    question: str = ""
    answer: str = ""
    language: str = ""
    typed: bool = False
    timings: TurnTimings = field(default_factory=TurnTimings)
    stop: StopToken = field(default_factory=StopToken)
    interrupted: bool = False
    dropped: bool = False  # nothing understandable was heard
    sentences: list[str] = field(default_factory=list)
    answer_seconds: float = 0.0
    answer_frames: int = 0
    written: str = ""  # the answer as the model wrote it (what it reads back as history)
    first_voiced: threading.Event = field(default_factory=threading.Event)  # the first sentence is spoken


@dataclass
class TranscriptLine:
    role: str  # "user" | "twin"
    text: str
    turn: int
    at: float  # seconds since the conversation started
    interrupted: bool = False


@dataclass
class _Question:
    text: str | None = None
    audio: np.ndarray | None = None  # 16 kHz
    speech_end: float = 0.0
    vad_end: float | None = None
    cut: bool = False
    early: Future | None = None  # its words, already being recognised since the speaker paused


@dataclass
class _Speech:
    turn: Turn
    audio: np.ndarray | None  # None: the end of the turn's answer
    timings: list = field(default_factory=list)


class _Clip:
    """Frames being shown: an idle stretch or one spoken sentence, rendered lazily frame by frame."""

    def __init__(self, kind: str, frames, audio: np.ndarray, first: int, count: int, turn: Turn | None):
        self.kind, self.frames, self.audio, self.first, self.count, self.turn = kind, frames, audio, first, count, turn
        self.shown = 0

    @property
    def done(self) -> bool:
        return self.shown >= self.count

    def close(self) -> None:
        self.frames.close()


class Conversation:
    """A live conversation with one twin. ``start()``, then feed audio / ask, read frames through sinks."""

    IDLE_CLIP_SECONDS = 1.0

    def __init__(self, twin: ChatTwin, config: ChatConfig | None = None, runtime: Runtime | None = None):
        self.twin = twin
        self.config = config or ChatConfig()
        self.runtime = runtime or Runtime.default()
        self.turns: list[Turn] = []
        self.transcript: list[TranscriptLine] = []
        self.transcript_version = 0  # bumped on every change, so a UI redraws only when needed
        self.status = "starting"  # starting | listening | hearing | thinking | speaking | closed
        self.notices: list[Notice] = []  # everything said to the user, in order (read with take_notices)
        self._notice_cursor = 0
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._wake = threading.Event()  # the stage, waiting for a frame's moment, has sound to show (or must stop)
        self._ready = threading.Event()
        self._sinks: list[Callable[[AvFrame], None]] = []
        self._questions: queue.Queue = queue.Queue()
        self._sentences: queue.Queue = queue.Queue()
        self._speech: collections.deque[_Speech] = collections.deque()
        self._current: Turn | None = None
        self._threads: list[threading.Thread] = []
        self._arrivals: collections.deque[tuple[int, float]] = collections.deque(maxlen=400)
        self._samples_in = 0
        self._vad = None
        self._vad_lock = threading.Lock()
        self._heard = False  # speech since the microphone (re)started (push-to-talk)
        self._told_loading = False
        self._recorder: ConversationRecorder | None = None
        # Recognition starts when the speaker pauses, while the VAD waits to be sure they are done:
        # (speech end sample, its transcript's future), used if the end confirms that pause.
        self._ears = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-ears")
        self._early: tuple[int, Future] | None = None
        self.started_at = time.perf_counter()
        self.frame_index = 0

    # ================================================================== setup
    def start(self) -> "Conversation":
        """Prepare the photo (face, framing, the engine's rig), warm the models, start the threads.

        Raises UserError (no face, missing photo, no model...) before any thread starts.
        """
        from ..face import landmarks as fl
        from ..twin.engines import load_engine
        from ..twin.framing import frame_face
        from ..twin.overlays import Overlays, cjk_font_path
        from ..twin.pipeline import choose_face, load_photo

        cfg = self.config
        if not 10 <= int(cfg.fps) <= 60:
            raise UserError("The frame rate must be between 10 and 60.", zh="帧率必须在 10 到 60 之间。")
        # 1. The photo, once per conversation: face, framing, the engine (its rig is built on the first clip)
        image = load_photo(self.twin.photo)
        face, _ = choose_face(fl.detect_faces(image, runtime=self.runtime), 0)
        framing = frame_face(image, face, "face")
        self.canvas, self.face = framing.image, framing.face
        self.height, self.width = self.canvas.shape[:2]
        label = (AI_LABEL if cjk_font_path() else AI_LABEL_EN) if cfg.ai_label else None
        self._overlays = Overlays(self.width, self.height, cfg.fps, (), label)
        # every frame the twin shows carries one mark for the conversation: the live stream and recordings alike
        from ..provenance import video_frame_marker

        self._mark, self.output_id = video_frame_marker(cfg.provenance)
        self._mark(self.canvas)  # the mark's pattern is worked out now, not on the first frame of the stream
        key, loader, label_name = load_engine(cfg.engine, self.runtime)
        self._held = contextlib.ExitStack()  # the engine stays pinned in the cache for the whole conversation
        self.engine = self._held.enter_context(self.runtime.cache.use(key, loader, label=label_name, device="cpu"))
        # 2. Who hears, who thinks, who speaks
        self.asr_model = pick_recognizer(cfg.language, self.runtime, cfg.asr_model)
        if self.asr_model is None:
            self._notify(Notice(
                "No speech recognition model for this language is installed, so the microphone is off: type "
                "your questions. (Put a multilingual Whisper in models/asr/ to talk in Chinese and other languages.)",
                "没有安装这种语言的语音识别模型，麦克风已关闭：请输入文字提问。（把多语言 Whisper 放入 models/asr/ 即可用中文等语言交谈。）"))
        self._system = system_prompt(self.twin.persona, self.twin.name, cfg.language)
        self._vad = VoiceActivityDetector(cfg.vad)
        self._warm_up()
        if self._closed.is_set():  # closed while it was getting ready (the user left, or another tab took over)
            self._held.close()
            raise Stopped()
        # 3. The threads
        for target, name in ((self._turn_loop, "chat-turns"), (self._voice_loop, "chat-voice"),
                             (self._stage_loop, "chat-stage")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.status = "listening"
        self._ready.set()
        return self

    def _warm_up(self) -> None:
        """Load every model now (seconds, once), not on the first question (where it would count)."""
        from ..text.generation import stream_text
        from ..voice.recognition import transcribe
        from ..voice.synthesis import synthesize_speech

        if self.asr_model:
            transcribe(np.zeros(VAD_RATE // 2, np.float32), VAD_RATE, model=self.asr_model, runtime=self.runtime,
                       language=None if self.config.language == "auto" else self.config.language)
        # the model reads the instructions now; each turn then reads only its own words (the prompt cache)
        stream_text("Hi", model=self.config.text_model, system=self._system, max_new_tokens=1, runtime=self.runtime,
                    keep_prompt_cache=True).result()
        synthesize_speech("Hello.", voice=self.twin.voice, runtime=self.runtime, save=False)
        _to_16k(np.zeros(480, np.float32), 48_000)  # imports the resampler (scipy) now, not mid-turn

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._closed.is_set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop every thread and release the engine. Safe to call twice, from any thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        self.status = "closed"
        with self._lock:
            if self._current is not None:
                self._current.stop.stop()
                self._current.first_voiced.set()
        self._questions.put(None)
        self._sentences.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=15)
        self._ears.shutdown(wait=True, cancel_futures=True)
        if self._recorder is not None:
            self._recorder.abort()
            self._recorder = None
        if hasattr(self, "_held"):
            self._held.close()

    def alive_threads(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]

    # ================================================================== sinks and notices
    def add_sink(self, sink: Callable[[AvFrame], None]) -> None:
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: Callable[[AvFrame], None]) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def take_notices(self) -> list[Notice]:
        """Notices not taken yet (each is given out once)."""
        with self._lock:
            new = self.notices[self._notice_cursor:]
            self._notice_cursor = len(self.notices)
            return new

    def _notify(self, notice: Notice) -> None:
        with self._lock:
            self.notices.append(notice)

    def segment_sent(self, segment: Segment) -> None:
        """A transport says a segment went out: the turns whose answer starts in it note when."""
        with self._lock:
            for turn in self.turns:
                if turn.number in segment.answer_turns:
                    turn.timings.first_segment = turn.timings.first_segment or segment.encoded_at
                    turn.timings.first_sent = turn.timings.first_sent or segment.sent_at

    # ================================================================== input
    def feed_audio(self, samples: np.ndarray, sample_rate: int) -> None:
        """Microphone audio as it arrives (any rate; int or float samples; mono or (n, channels))."""
        if not self._ready_for_speech():
            return
        audio16k = _to_16k(samples, sample_rate)
        with self._vad_lock:
            self._samples_in += len(audio16k)
            self._arrivals.append((self._samples_in, time.perf_counter()))
            events = self._vad.feed(audio16k)
        for event in events:
            self._on_vad(event)

    def hear(self, samples: np.ndarray, sample_rate: int) -> bool:
        """A whole recording (push-to-talk): the speech in it is the question. False when it holds none."""
        if not self._ready_for_speech():
            return False
        arrived = time.perf_counter()
        detector = VoiceActivityDetector(VadConfig(end_silence=1.0, max_utterance=self.config.vad.max_utterance))
        events = detector.feed(_to_16k(samples, sample_rate)) + detector.finish()
        said = [e for e in events if e.kind in ("end", "cut")]
        if not said:
            self._notify(Notice("I heard nothing. Is the microphone muted, or too far away?",
                                "我什么也没听到。麦克风是否静音，或离得太远？", "info"))
            return False
        self.interrupt()
        if any(e.kind == "cut" for e in said):
            self._notify(self._cut_notice())
        speech = np.concatenate([e.audio for e in said if e.audio is not None])
        self._questions.put(_Question(audio=speech, speech_end=arrived, vad_end=time.perf_counter(),
                                      cut=any(e.kind == "cut" for e in said)))
        return True

    def _ready_for_speech(self) -> bool:
        if self.ready:
            return True
        if not self._closed.is_set() and not self._told_loading:
            self._told_loading = True
            self._notify(Notice("Your twin is still getting ready: please say that again in a moment.",
                                "你的数字分身还在准备中：请稍后再说一遍。"))
        return False

    def _cut_notice(self) -> Notice:
        limit = self.config.vad.max_utterance
        return Notice(f"You spoke for more than {limit:.0f} seconds: I answer the first {limit:.0f} seconds. "
                      "Shorter questions get quicker answers.",
                      f"你说了超过 {limit:.0f} 秒：我只回答前 {limit:.0f} 秒的内容。问题越短，回答越快。")

    def start_listening(self) -> None:
        """The microphone (re)started, e.g. push-to-talk pressed: the twin stops talking and listens."""
        with self._vad_lock:
            if self._vad is not None:
                self._vad.reset()
            self._samples_in = 0
            self._arrivals.clear()
        self._heard = False
        self.interrupt()

    def end_of_speech(self) -> None:
        """Push-to-talk released (or the recording stopped): whatever was said is the question."""
        if not self.ready:
            return
        with self._vad_lock:
            events = self._vad.finish()
        for event in events:
            self._on_vad(event)
        if not events and not self._heard:
            self._notify(Notice("I heard nothing. Is the microphone muted, or too far away?",
                                "我什么也没听到。麦克风是否静音，或离得太远？", "info"))

    def ask(self, text: str) -> None:
        """A typed question: the twin stops whatever it was saying and answers this."""
        text = (text or "").strip()
        if not text:
            return
        if not self.ready:
            raise UserError("Your twin is not ready yet: wait a moment.", zh="你的数字分身还没准备好：请稍等。")
        self.interrupt()
        self._questions.put(_Question(text=text[:2000], speech_end=time.perf_counter()))

    def interrupt(self) -> None:
        """Barge-in: stop the turn in flight; the twin is quiet from its next frame."""
        with self._lock:
            turn = self._current
            if turn is not None and not turn.stop.stopped:
                turn.stop.stop()
                turn.first_voiced.set()  # the model is not kept waiting for a voice that will not come
                turn.interrupted = True
                for line in self.transcript:
                    if line.turn == turn.number and line.role == "twin":
                        line.interrupted = True
                self.transcript_version += 1
            self._current = None

    def _on_vad(self, event: VadEvent) -> None:
        now = time.perf_counter()
        if event.kind == "pause":
            if self.asr_model is not None and not self._closed.is_set():
                if self._early is not None:
                    self._early[1].cancel()  # the speaker went on after that pause: not needed if not begun
                self._early = (event.speech_end, self._ears.submit(self._recognise, event.audio, None))
            return
        if event.kind == "start":
            self._heard = True
            self.interrupt()
            self.status = "hearing"
            return
        if self.asr_model is None:
            self.status = "listening"
            self._notify(Notice("I cannot understand speech in this language here: please type your question.",
                                "这里无法识别这种语言的语音：请输入文字提问。"))
            return
        if event.kind == "cut":
            self._notify(self._cut_notice())
        early = self._early[1] if self._early and self._early[0] == event.speech_end else None
        if self._early is not None and early is None:
            self._early[1].cancel()  # heard up to an earlier pause only
        self._early = None
        self._questions.put(_Question(audio=event.audio, speech_end=self._arrival_of(event.speech_end), vad_end=now,
                                      cut=event.kind == "cut", early=early))

    def _arrival_of(self, sample: int) -> float:
        """When the audio up to ``sample`` (16 kHz, since the stream began) reached us."""
        with self._vad_lock:
            for end, at in self._arrivals:
                if end >= sample:
                    return at
        return time.perf_counter()

    # ================================================================== the turn thread: hear, think
    def _turn_loop(self) -> None:
        while not self._closed.is_set():
            question = self._questions.get()
            if question is None:
                return
            with self._lock:
                turn = Turn(number=len(self.turns) + 1, typed=question.text is not None)
                turn.timings.speech_end, turn.timings.vad_end = question.speech_end, question.vad_end
                self.turns.append(turn)
                self._current = turn
            self.status = "thinking"
            try:
                self._answer(turn, question)
            except Stopped:
                turn.interrupted = True
            except UserError as exc:
                self._notify(Notice(exc.message, exc.zh))
            except Exception as exc:  # noqa: BLE001 - a failed turn must not end the conversation
                log.exception("turn %s failed", turn.number)
                self._notify(Notice(f"Something went wrong with that answer ({type(exc).__name__}). Please ask again.",
                                    f"这次回答出了问题（{type(exc).__name__}）。请再问一次。"))
            finally:
                self._sentences.put((turn, None))  # the voice thread passes the end on to the stage
                if turn.dropped or (not turn.sentences and self.status == "thinking"):
                    self.status = "listening"

    def _answer(self, turn: Turn, question: _Question) -> None:
        from ..text.generation import stream_text

        # 1. Hear: the words of the utterance (recognised since the speaker paused, if that pause was the end)
        if question.audio is not None:
            heard, turn.timings.asr_done = None, None
            if question.early is not None:
                try:
                    heard, turn.timings.asr_done = question.early.result()
                except Exception:  # noqa: BLE001 - cancelled or failed: recognise it again below
                    heard = None
            if heard is None:
                heard, turn.timings.asr_done = self._recognise(question.audio, turn.stop)
            text = heard.text.strip()
            if text.lower() in NOT_SPEECH or heard.mean_probability < 0.3:
                turn.dropped = True
                self._notify(Notice("I didn't catch that. Could you say it again?", "我没听清，请再说一遍好吗？", "info"))
                return
            turn.language = heard.language
        else:
            text = question.text or ""
        turn.question = text
        self._add_line("user", text, turn)
        self._add_line("twin", "", turn)
        # 2. Think: the answer, streamed; each finished sentence goes to the voice thread at once
        stream = stream_text(text, model=self.config.text_model, system=self._system, history=self._history(turn),
                             max_new_tokens=self.config.max_answer_tokens, temperature=self.config.temperature,
                             repetition_penalty=1.1, seed=self.config.seed + turn.number, runtime=self.runtime,
                             stop=turn.stop, keep_prompt_cache=True)
        splitter = SentenceSplitter()
        for piece in stream:
            if turn.timings.first_token is None:
                turn.timings.first_token = time.perf_counter()
            for sentence in splitter.feed(piece.text):
                self._say(turn, sentence)
                if len(turn.sentences) == 1:
                    # The first sentence's voice is what the user waits for: on two cores, the model
                    # writing on meanwhile would slow it down, so it pauses until that sound exists.
                    turn.first_voiced.wait(timeout=5.0)
        for sentence in splitter.flush():
            self._say(turn, sentence)
        for notice in stream.notices:
            if notice not in self.notices:
                self._notify(notice)
        if turn.stop.stopped:
            raise Stopped()
        if not turn.sentences:  # the model wrote nothing speakable: still answer
            self._say(turn, "Sorry, I have no answer to that." if not _is_chinese(self.config.language)
                      else "抱歉，这个问题我答不上来。")
        turn.answer = " ".join(turn.sentences)
        turn.written = stream.texts[0].strip() if stream.texts and stream.texts[0].strip() else turn.answer

    def _recognise(self, audio: np.ndarray, stop: StopToken | None):
        """(transcript, when it was done) of 16 kHz ``audio``."""
        from ..voice.recognition import transcribe

        language = None if self.config.language == "auto" else self.config.language
        heard = transcribe(audio, VAD_RATE, language=language, model=self.asr_model, runtime=self.runtime, stop=stop)
        return heard, time.perf_counter()

    def _say(self, turn: Turn, sentence: str) -> None:
        if turn.stop.stopped:
            return
        if turn.timings.first_sentence is None:
            turn.timings.first_sentence = time.perf_counter()
        turn.sentences.append(sentence)
        self._set_answer_line(turn)
        self._sentences.put((turn, sentence))

    def _history(self, turn: Turn) -> list[tuple[str, str]]:
        """The earlier turns the model sees: between history_turns and twice that, dropped in blocks, so that
        consecutive prompts start the same and the model re-reads only the new turn (its prompt cache)."""
        done = [t for t in self.turns if t is not turn and t.question and t.written and not t.interrupted]
        keep = self.config.history_turns
        start = max(0, (len(done) - keep) // keep * keep) if keep else len(done)
        return [(t.question, t.written) for t in done[start:]]

    def _add_line(self, role: str, text: str, turn: Turn) -> None:
        with self._lock:
            self.transcript.append(TranscriptLine(role, text, turn.number, round(time.perf_counter() - self.started_at, 2)))
            self.transcript_version += 1

    def _set_answer_line(self, turn: Turn) -> None:
        with self._lock:
            for line in reversed(self.transcript):
                if line.turn == turn.number and line.role == "twin":
                    line.text = " ".join(turn.sentences)
                    break
            self.transcript_version += 1

    # ================================================================== the voice thread: speak
    def _voice_loop(self) -> None:
        from ..voice.audio_dsp import resample, silence
        from ..voice.synthesis import synthesize_speech

        rate = self.config.sample_rate
        while not self._closed.is_set():
            item = self._sentences.get()
            if item is None:
                return
            turn, sentence = item
            if sentence is None:
                self._queue_speech(_Speech(turn, None))
                continue
            if turn.stop.stopped:
                turn.first_voiced.set()
                continue
            try:
                speech = synthesize_speech(sentence, voice=self.twin.voice, runtime=self.runtime, stop=turn.stop,
                                           save=False, sentence_pause=0.0)
            except Stopped:
                turn.first_voiced.set()
                continue
            except UserError as exc:  # nothing speakable in it (only symbols), or a voice problem
                log.info("sentence not spoken: %s", exc)
                turn.first_voiced.set()
                continue
            except Exception as exc:  # noqa: BLE001 - one sentence lost, not the conversation's voice
                log.exception("could not speak a sentence")
                self._notify(Notice(f"A sentence could not be spoken ({type(exc).__name__}).",
                                    f"有一句话没能说出来（{type(exc).__name__}）。"))
                turn.first_voiced.set()
                continue
            for notice in speech.notices:
                if notice not in self.notices:
                    self._notify(notice)
            audio = np.concatenate([resample(np.asarray(speech.audio, np.float32), speech.sample_rate, rate),
                                    silence(self.config.pause_after_sentence, rate)])
            if turn.timings.first_speech is None:
                turn.timings.first_speech = time.perf_counter()
            self._queue_speech(_Speech(turn, audio, list(speech.timings)))
            turn.first_voiced.set()

    def _queue_speech(self, speech: _Speech) -> None:
        with self._lock:
            self._speech.append(speech)
        self._wake.set()

    # ================================================================== the stage thread: the face, in real time
    def _stage_loop(self) -> None:
        try:
            self._run_stage()
        except Exception:  # noqa: BLE001
            log.exception("the conversation's stage stopped")
            self._notify(Notice("The twin's video stopped because of an error; start the conversation again.",
                                "由于出错，数字分身的视频已停止；请重新开始对话。"))

    def _run_stage(self) -> None:
        cfg = self.config
        fps = cfg.fps
        started = time.perf_counter()
        burst_until = 0  # frames before this index go out without waiting for the clock
        clip: _Clip | None = None
        k = 0
        while not self._closed.is_set():
            # 1. What to show: the answer's next sentence as soon as it is there, else listen (idle)
            if clip is not None and clip.kind == "answer" and clip.turn.stop.stopped:
                clip.close()
                clip = None  # barge-in: quiet from this frame
            if clip is None or clip.done or clip.kind == "idle":
                speech = self._next_speech()
                if speech is not None:
                    if clip is not None:
                        clip.close()
                    if not speech.turn.answer_frames:
                        burst_until = k + cfg.first_answer_frames
                        self.status = "speaking"
                    clip = self._answer_clip(speech, k)
                elif clip is None or clip.done:
                    clip = self._idle_clip(k)
            # 2. Keep time: a frame is made no earlier than its moment minus the lead
            if k >= burst_until:
                wait = started + k / fps - cfg.lead_seconds - time.perf_counter()
                if wait > 0:
                    woken = self._wake.wait(wait)
                    self._wake.clear()
                    if self._closed.is_set():
                        break
                    if woken:
                        continue  # an answer's sound arrived: it starts at this frame, not after it
            # 3. The frame and its slice of sound
            image = next(clip.frames)
            a, b = self._sample_span(clip.first, clip.shown)
            audio = clip.audio[a:b]
            clip.shown += 1
            frame = AvFrame(k, self._mark(self._overlays.apply(image, k)), audio, clip.kind,
                            clip.turn.number if clip.turn else None, time.perf_counter())
            if clip.kind == "answer":
                turn = clip.turn
                if turn.timings.first_frame is None:
                    turn.timings.first_frame = frame.made
                turn.answer_frames += 1
                turn.answer_seconds = turn.answer_frames / fps
            self.frame_index = k
            for sink in list(self._sinks):
                sink(frame)
            k += 1

    def _next_speech(self) -> _Speech | None:
        """The next sentence's sound to show, skipping those of stopped turns; ends of turns handled here."""
        with self._lock:
            while self._speech:
                speech = self._speech.popleft()
                if speech.audio is None:  # the turn's answer has been shown in full
                    speech.turn.timings.done = time.perf_counter()
                    if self._current is speech.turn:
                        self._current = None
                    if self._current is None and self.status in ("speaking", "thinking"):
                        self.status = "listening"
                    continue
                if not speech.turn.stop.stopped:
                    return speech
        return None

    def _sample_span(self, clip_first: int, shown: int) -> tuple[int, int]:
        """Samples of the clip's audio that play during its frame ``shown`` (exact over any length)."""
        per_frame = self.config.sample_rate / self.config.fps
        base = round(clip_first * per_frame)
        return round((clip_first + shown) * per_frame) - base, round((clip_first + shown + 1) * per_frame) - base

    def _clip_samples(self, first: int, count: int) -> int:
        per_frame = self.config.sample_rate / self.config.fps
        return round((first + count) * per_frame) - round(first * per_frame)

    def _answer_clip(self, speech: _Speech, first: int) -> _Clip:
        per_frame = self.config.sample_rate / self.config.fps
        count = max(1, math.ceil(len(speech.audio) / per_frame))
        audio = np.zeros(self._clip_samples(first, count), np.float32)
        audio[: min(len(audio), len(speech.audio))] = speech.audio[: len(audio)]
        return _Clip("answer", self._render(audio, count, first, speech.timings), audio, first, count, speech.turn)

    def _idle_clip(self, first: int) -> _Clip:
        count = max(1, round(self.IDLE_CLIP_SECONDS * self.config.fps))
        audio = np.zeros(self._clip_samples(first, count), np.float32)
        return _Clip("idle", self._render(audio, count, first, ()), audio, first, count, None)

    def _render(self, audio: np.ndarray, count: int, first: int, timings):
        from ..twin.engines import AnimationJob, AnimationOptions

        job = AnimationJob(image=self.canvas, face=self.face, audio=audio, sample_rate=self.config.sample_rate,
                           n_frames=count, timings=timings,
                           options=AnimationOptions(fps=self.config.fps, expression=self.config.expression,
                                                    seed=self.config.seed, start_frame=first))
        return self.engine.animate(job)

    # ================================================================== saving
    def transcript_text(self, language: str = "en") -> str:
        you, twin = ("你", self.twin.name or "数字分身") if _is_chinese(language) else ("You", self.twin.name or "Twin")
        cut = "（被打断）" if _is_chinese(language) else " (interrupted)"
        lines = []
        with self._lock:
            for line in self.transcript:
                if line.text:
                    who = you if line.role == "user" else twin
                    lines.append(f"[{line.at:7.1f} s] {who}: {line.text}{cut if line.interrupted else ''}")
        return "\n".join(lines)

    def save_transcript(self, path: Path | None = None, language: str = "en") -> Path:
        """The transcript as text (and every turn's timings as JSON beside it); under outputs/chat/ by default."""
        from ..core.outputs import atomic_path, new_output_path, write_params

        final = Path(path) if path else new_output_path(self.runtime.outputs_dir, "chat", ".txt", "transcript")
        with atomic_path(final) as tmp:
            tmp.write_text(self.transcript_text(language) + "\n", encoding="utf-8")
        write_params(final, self.params())
        return final

    def params(self) -> dict:
        with self._lock:
            turns = [{"turn": t.number, "question": t.question, "answer": t.answer, "typed": t.typed,
                      "interrupted": t.interrupted, "dropped": t.dropped, "timings_s": t.timings.seconds()}
                     for t in self.turns]
        return {"task": "twin_chat", "profile": self.twin.name, "voice": self.twin.voice, "persona": self.twin.persona,
                "language": self.config.language, "asr_model": getattr(self, "asr_model", None),
                "text_model": self.config.text_model or "default", "engine": self.config.engine,
                "fps": self.config.fps, "seed": self.config.seed, "ai_generated": True, "turns": turns}

    def start_recording(self, path: Path | None = None, accept: Callable[[AvFrame], bool] | None = None) -> Path:
        """Record what the twin shows and says from now on (``accept`` may keep only some frames)."""
        from ..core.outputs import new_output_path

        if not self.ready:
            raise UserError("Start the conversation first.", zh="请先开始对话。")
        with self._lock:
            if self._recorder is not None:
                return self._recorder.final
            final = Path(path) if path else new_output_path(self.runtime.outputs_dir, "twin", ".mp4", "conversation")
            self._recorder = ConversationRecorder(final, self.width, self.height, self.config.fps,
                                                  self.config.sample_rate, metadata=self._metadata(), accept=accept,
                                                  output_id=self.output_id)
            self._sinks.append(self._recorder)
            return final

    def stop_recording(self) -> Path | None:
        """Finish the recording: the MP4 (with its parameters as JSON beside it), or None if it was empty."""
        with self._lock:
            recorder, self._recorder = self._recorder, None
            if recorder is None:
                return None
            if recorder in self._sinks:
                self._sinks.remove(recorder)
        return recorder.finish(self.params())

    @property
    def recording(self) -> bool:
        return self._recorder is not None

    def _metadata(self) -> dict[str, str]:
        params = {k: v for k, v in self.params().items() if k != "turns"}
        return {"title": "AI-generated digital twin conversation", "comment": json.dumps(params, ensure_ascii=False),
                "description": f"AI-generated (AIGC Digital-Twin Studio, live conversation, engine: {self.config.engine})"}


# ====================================================================== helpers
def _to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Any microphone audio (int or float, mono or (n, channels)) as 16 kHz mono float32."""
    from ..voice.audio_dsp import resample

    audio = np.asarray(samples)
    if audio.dtype.kind in "iu":
        audio = audio / float(np.iinfo(audio.dtype).max)
    audio = audio.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return resample(audio.reshape(-1), int(sample_rate), VAD_RATE)


def _is_chinese(language: str | None) -> bool:
    return (language or "").lower().startswith("zh")


def system_prompt(persona: str, name: str, language: str) -> str:
    """Instructions for the text model: short spoken answers, in the persona's voice."""
    persona = (persona or "").strip()
    if _is_chinese(language):
        who = f"你扮演{persona}。" if persona else ""
        return f"你是一个乐于助人的 AI 助手。{who}这是一段语音对话：用一两句简短的中文口语回答，不要列表，不要表情符号。"
    who = f" You speak as {persona}." if persona else ""
    return ("You are a helpful AI assistant. Answer clearly and concisely, in one or two short sentences of "
            f"spoken English, with no lists and no emoji.{who}")


def pick_recognizer(language: str, runtime: Runtime, wanted: str | None = None) -> str | None:
    """The speech recognition model for ``language``: the one asked for, Whisper tiny.en for English, an
    installed multilingual Whisper otherwise; None when none can run here (typing still works)."""
    from ..core.catalog import availability

    if wanted:
        spec = runtime.catalog.get("asr", wanted)
        state = availability(spec, check_network=False)
        if not state.ok:
            raise ModelLoadError(f"The speech recognition model {spec.name} cannot run here: {state.reason}.",
                                 zh=f"语音识别模型 {spec.name} 无法在此运行：{state.reason_zh or state.reason}。")
        return spec.name
    base = (language or "en").split("-")[0].lower()
    usable = [spec for spec, state in runtime.catalog.available("asr", check_network=False) if state.ok]
    english_only = [spec.name for spec in usable if spec.languages == ("en",)]
    # the user's own models (models/asr/) before the hub's
    multilingual = [spec.name for spec in sorted(usable, key=lambda s: s.source_kind != "local")
                    if "*" in spec.languages or base in spec.languages and spec.languages != ("en",)]
    if base == "en":
        return (english_only + multilingual or [None])[0]  # tiny.en first: the fastest
    if base == "auto":
        return (multilingual + english_only or [None])[0]
    return (multilingual or [None])[0]
