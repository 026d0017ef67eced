"""Talk to my twin: a live conversation with a digital twin (photo + voice + persona from a saved profile
or the twin wizard), by voice or by typing, answered with its voice and face, over
``pipelines.chat.Conversation``.

Transport: Gradio's own streaming. Hands-free, the microphone is a streaming ``gr.Audio`` (0.1 s chunks to
the server, where Silero VAD listens; a streamed input keeps only the newest chunk while the server is
busy, so an overloaded machine loses parts of the voice: that is measured and the user is told to use
push-to-talk, a plain recording uploaded whole when released); the twin comes back through one streaming ``gr.Video`` fed by a
generator that yields short MP4 segments (H.264 + sound: picture and voice stay in sync because they
travel together), played by the browser as HLS. Why not fastrtc (WebRTC), the field's real-time tool:
fastrtc 0.0.34 requires gradio<6 and its WebRTC component is built for Gradio 5's frontend, while the
studio runs Gradio 6.31, so it cannot be installed here; Gradio's streaming meets the server-side
target (bench/bench_chat.py measures it). The price: the player buffers about one segment (~1 s), on
top of the server's latency.

Sessions: the conversation lives in a ``gr.State`` of the browser session; a small per-app registry
(by session hash) closes it when the tab closes (``unload``), lets a second tab of the same browser
take over (the first is told), and caps how many run at once on this machine.
The event handlers are the top-level functions below (the desk first); ``build_tab`` lays out and wires.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from pipelines.chat.conversation import ChatConfig, ChatTwin, Conversation
from pipelines.chat.media import SegmentStream
from pipelines.core.errors import UserError
from pipelines.core.notices import Notice
from pipelines.twin import profiles

from .common import StudioContext, TabHandles, bind, friendly_errors, language_of
from .live_video import LiveVideo
from .i18n import add_strings, say, t

log = logging.getLogger(__name__)
MAX_CONVERSATIONS = 4  # at once on this machine: each renders 25 frames/s and runs its own models' turns
MAX_MINUTES = 20  # a conversation's length: the browser's stream keeps every segment until it ends
MIC_EVERY = 0.1  # seconds per microphone chunk (what Gradio's audio component sends anyway)

add_strings(
    en={
        "tab.chat": "Talk to my twin",
        "chat.intro": "Talk with your digital twin: it listens, thinks and answers with its own voice and face, live, on this computer. Pick a saved profile (or take the photo, voice and persona from the twin wizard), press **Start**, then press the microphone's record button and just talk — or type. Speak while it talks to interrupt it.",
        "chat.twin": "Your twin",
        "chat.profile": "Saved profile",
        "chat.use_wizard": "Use the twin wizard's photo, voice and persona",
        "chat.photo": "Photo",
        "chat.voice": "Voice",
        "chat.persona": "Persona (who your twin is)",
        "chat.persona_default": "a friendly digital twin",
        "chat.language": "You speak",
        "chat.language_auto": "Detect (needs a multilingual Whisper)",
        "chat.mode": "How you talk",
        "chat.mode_hands_free": "Hands-free (it hears when you stop)",
        "chat.mode_push": "Push to talk (record, speak, stop)",
        "chat.mode_typing": "Typing only",
        "chat.record": "Record the conversation (MP4)",
        "chat.start": "Start",
        "chat.end": "End conversation",
        "chat.video": "Your twin, live",
        "chat.mic": "Microphone (hands-free: press record once, then just talk)",
        "chat.ptt": "Push to talk: press record, speak, press stop",
        "chat.mic_lossy": "This computer is too busy to receive every part of your voice while hands-free, so some words may be missed. Push to talk is more reliable right now.",
        "chat.question": "Or type here and press Enter",
        "chat.send": "Send",
        "chat.transcript": "Transcript",
        "chat.save_transcript": "Save transcript",
        "chat.files": "Saved files",
        "chat.status_starting": "Getting your twin ready (the photo, then the models; the first time takes longer)…",
        "chat.status_listening": "🎙️ Listening — speak, or type a question.",
        "chat.status_hearing": "👂 Hearing you…",
        "chat.status_thinking": "💭 Thinking…",
        "chat.status_speaking": "🗣️ Speaking — talk to interrupt.",
        "chat.status_closed": "The conversation has ended.",
        "chat.status_moved": "This conversation continues in another tab of this browser.",
        "chat.started": "Your twin is ready. {how}",
        "chat.how_hands_free": "Press the microphone's record button and talk; pause to let it answer.",
        "chat.how_push": "Press record, say your question, press stop.",
        "chat.how_typing": "Type a question and press Enter.",
        "chat.mic_denied": "The browser blocked the microphone. To allow it, click the lock (or camera) icon at the left of the address bar, set Microphone to Allow, then press Start again. You can type your questions meanwhile.",
        "chat.mic_insecure": "The microphone only works on a secure page: open the studio over https:// or as http://localhost on this computer. You can type your questions meanwhile.",
        "chat.mic_missing": "No microphone was found. Plug one in and press Start again; you can type your questions meanwhile.",
        "chat.mic_error": "The microphone could not be opened ({detail}). You can type your questions meanwhile.",
        "chat.full": "All {count} conversation places on this computer are in use. Please try again in a minute.",
        "chat.no_photo": "Choose a saved profile, or a photo with a face (or use the twin wizard's choices).",
        "chat.not_started": "Press Start first.",
        "chat.took_over": "This conversation moved to another tab of this browser; this tab is no longer listening.",
        "chat.recording_saved": "The recording is saved: {file}",
        "chat.transcript_saved": "The transcript is saved: {file}",
        "chat.nothing_to_save": "Nothing has been said yet.",
        "chat.too_long": "Conversations last at most {minutes} minutes: this one has ended. Press Start to talk again.",
    },
    zh={
        "tab.chat": "和我的分身对话",
        "chat.intro": "和你的数字分身对话：它会倾听、思考，并用自己的声音和面孔实时回答，全部在本机完成。选择一个已保存的档案（或使用数字分身向导中的照片、声音和人设），点 **开始**，然后按下麦克风的录音按钮直接说话——也可以打字。在它说话时开口即可打断它。",
        "chat.twin": "你的分身",
        "chat.profile": "已保存的档案",
        "chat.use_wizard": "使用数字分身向导中的照片、声音和人设",
        "chat.photo": "照片",
        "chat.voice": "声音",
        "chat.persona": "人设（你的分身是谁）",
        "chat.persona_default": "一个友好的数字分身",
        "chat.language": "你说的语言",
        "chat.language_auto": "自动识别（需要多语言 Whisper）",
        "chat.mode": "对话方式",
        "chat.mode_hands_free": "免按键（你停下来它就听懂了）",
        "chat.mode_push": "按键说话（录音、说话、停止）",
        "chat.mode_typing": "只打字",
        "chat.record": "录制这段对话（MP4）",
        "chat.start": "开始",
        "chat.end": "结束对话",
        "chat.video": "你的分身（实时）",
        "chat.mic": "麦克风（免按键：按一次录音，然后直接说话）",
        "chat.ptt": "按键说话：按下录音，说话，再按停止",
        "chat.mic_lossy": "这台电脑太忙，免按键模式下收不全你的声音，可能会漏掉一些词。现在用“按键说话”更可靠。",
        "chat.question": "或在这里输入，按回车发送",
        "chat.send": "发送",
        "chat.transcript": "对话记录",
        "chat.save_transcript": "保存对话记录",
        "chat.files": "已保存的文件",
        "chat.status_starting": "正在准备你的分身（先处理照片，再加载模型；第一次会慢一些）…",
        "chat.status_listening": "🎙️ 正在听——请说话，或输入问题。",
        "chat.status_hearing": "👂 正在听你说…",
        "chat.status_thinking": "💭 正在思考…",
        "chat.status_speaking": "🗣️ 正在说话——开口即可打断。",
        "chat.status_closed": "对话已结束。",
        "chat.status_moved": "这段对话已在本浏览器的另一个标签页中继续。",
        "chat.started": "你的分身准备好了。{how}",
        "chat.how_hands_free": "按下麦克风的录音按钮直接说话；停顿一下它就会回答。",
        "chat.how_push": "按下录音，说出问题，再按停止。",
        "chat.how_typing": "输入问题后按回车。",
        "chat.mic_denied": "浏览器阻止了麦克风。要允许使用：点击地址栏左侧的锁形（或摄像头）图标，把“麦克风”设为“允许”，然后再点一次“开始”。在此期间你可以打字提问。",
        "chat.mic_insecure": "麦克风只能在安全页面上使用：请通过 https:// 打开工作室，或在本机用 http://localhost 打开。在此期间你可以打字提问。",
        "chat.mic_missing": "没有找到麦克风。请接上麦克风后再点“开始”；在此期间你可以打字提问。",
        "chat.mic_error": "无法打开麦克风（{detail}）。在此期间你可以打字提问。",
        "chat.full": "本机的 {count} 个对话名额都已占用。请一分钟后再试。",
        "chat.no_photo": "请选择一个已保存的档案，或一张有人脸的照片（或使用数字分身向导中的选择）。",
        "chat.not_started": "请先点“开始”。",
        "chat.took_over": "这段对话已转到本浏览器的另一个标签页；此标签页不再收听。",
        "chat.recording_saved": "录像已保存：{file}",
        "chat.transcript_saved": "对话记录已保存：{file}",
        "chat.nothing_to_save": "还没有任何对话内容。",
        "chat.too_long": "每段对话最长 {minutes} 分钟：这段对话已结束。点“开始”可以再次对话。",
    },
)

# Run in the browser when Start is pressed: can the page use the microphone, and which browser is this
# (a random id kept in localStorage, shared by the tabs of one browser)? Both go to the server as inputs.
START_JS = """
async (...args) => {
  const mode = args[args.length - 5];  // inputs: ..., mode, record, mic status, browser id, state
  let mic = "ok";
  if (mode !== "typing") {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      mic = "insecure";
    } else {
      try {
        const stream = await navigator.mediaDevices.getUserMedia({audio: true});
        stream.getTracks().forEach((track) => track.stop());
      } catch (e) {
        const name = (e && e.name) || "Error";
        mic = (name === "NotAllowedError" || name === "SecurityError") ? "denied"
            : (name === "NotFoundError" || name === "OverconstrainedError") ? "missing" : "error:" + name;
      }
    }
  }
  let id = "";
  try {
    id = localStorage.getItem("aigc-chat-browser") || "";
    if (!id) {
      id = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : String(Math.random()).slice(2);
      localStorage.setItem("aigc-chat-browser", id);
    }
  } catch (e) { id = ""; }
  args[args.length - 3] = mic;
  args[args.length - 2] = id;
  return args;
}
"""


# ---------------------------------------------------------------- sessions
class MicrophoneMeter:
    """How much of the hands-free microphone's audio reaches the server. A streamed input keeps only
    the newest chunk while the server is busy, so on an overloaded machine parts of the voice are lost;
    this notices it (once) so the user can switch to push-to-talk, which sends the whole recording."""

    WINDOW = 4.0  # seconds of wall time judged at once
    ENOUGH = 0.7  # the fraction of the audio that must arrive

    def __init__(self):
        self.start()

    def start(self) -> None:
        self._since, self._seconds, self._warned = time.monotonic(), 0.0, False

    def heard(self, seconds: float) -> bool:
        """Count ``seconds`` of audio arrived; True (once) when too much has been going missing."""
        self._seconds += seconds
        elapsed = time.monotonic() - self._since
        if elapsed < self.WINDOW:
            return False
        lossy = self._seconds < self.ENOUGH * elapsed and not self._warned
        self._warned = self._warned or lossy
        self._since, self._seconds = time.monotonic(), 0.0
        return lossy


@dataclass
class LiveChat:
    """One browser session's conversation and the stream that carries it to the browser."""

    conversation: Conversation
    segments: SegmentStream
    session: str
    browser: str  # the browser (or signed-in user) it belongs to, for the second-tab rule
    mode: str
    moved: bool = False  # a newer tab of the same browser took over
    microphone: MicrophoneMeter = field(default_factory=MicrophoneMeter)

    def close(self) -> None:
        self.conversation.close()
        self.segments.close()


class ChatSeats:
    """The conversations running in this app, by browser session: at most ``limit``; one per browser."""

    def __init__(self, limit: int = MAX_CONVERSATIONS):
        self.limit = limit
        self._lock = threading.Lock()
        self._by_session: dict[str, LiveChat | None] = {}  # None: being set up

    def reserve(self, session: str, browser: str) -> list[LiveChat]:
        """Hold a place for ``session``; returns the conversations it replaces (the same session's
        earlier one, and another tab's of the same browser), for the caller to close."""
        with self._lock:
            replaced = [live for key, live in self._by_session.items()
                        if live is not None and (key == session or (browser and live.browser == browser))]
            for live in replaced:
                self._by_session.pop(live.session, None)
                live.moved = live.session != session
            if session not in self._by_session and len(self._by_session) >= self.limit:
                raise UserError(say("chat.full", "en", count=self.limit), zh=say("chat.full", "zh", count=self.limit))
            self._by_session[session] = None
            return replaced

    def settle(self, session: str, live: LiveChat) -> None:
        with self._lock:
            self._by_session[session] = live

    def release(self, session: str, live: LiveChat | None = None) -> LiveChat | None:
        """Forget ``session`` (only if it still holds ``live``, when given); returns what it held."""
        with self._lock:
            held = self._by_session.get(session)
            if live is not None and held is not live:
                return None
            return self._by_session.pop(session, None)

    def get(self, session: str) -> LiveChat | None:
        with self._lock:
            return self._by_session.get(session)

    def count(self) -> int:
        with self._lock:
            return len(self._by_session)


@dataclass
class ChatDesk:
    """What the chat handlers get: the studio's context and this app's conversations."""

    studio: StudioContext
    seats: ChatSeats = field(default_factory=ChatSeats)


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


def _show(notices: list[Notice], lang: str) -> None:
    for notice in notices:
        (gr.Info if notice.level == "info" else gr.Warning)(notice.text(lang), duration=8)


def status_text(live: LiveChat | None, lang: str) -> str:
    if live is None:
        return ""
    if live.moved:
        return say("chat.status_moved", lang)
    return say(f"chat.status_{live.conversation.status}", lang)


def transcript_messages(conversation: Conversation, lang: str) -> list[dict]:
    cut = "（被打断）" if lang.startswith("zh") else " (interrupted)"
    return [{"role": "user" if line.role == "user" else "assistant",
             "content": line.text + (cut if line.interrupted else "")}
            for line in list(conversation.transcript) if line.text]


# ---------------------------------------------------------------- handlers
def on_open(desk: ChatDesk, persona: str, request: gr.Request):
    """When the tab is opened: this person's saved profiles, the voices there are now, and the default
    persona in the page's language (a persona the person wrote stays)."""
    from .twin_tab import voice_choices

    runtime = desk.studio.runtime_for(request)
    defaults = ("", say("chat.persona_default", "en"), say("chat.persona_default", "zh"))
    persona = say("chat.persona_default", language_of(request)) if (persona or "").strip() in defaults else gr.skip()
    return (gr.Dropdown(choices=profiles.list_profiles(runtime)), gr.Dropdown(choices=voice_choices(runtime)),
            persona)


@friendly_errors
def load_chat_profile(desk: ChatDesk, name, request: gr.Request):
    """A profile picked: its photo, voice and persona fill the fields (a deleted photo says so now)."""
    if not name:
        return gr.skip(), gr.skip(), gr.skip()
    twin = ChatTwin.from_profile(name, desk.studio.runtime_for(request))  # only this person's profiles
    return str(twin.photo), twin.voice or "auto", twin.persona


def pass_wizard_choices(photo, voice, persona):
    """The twin wizard's photo, voice and persona, copied into this tab (the cross-tab button)."""
    return photo, voice or "auto", persona or ""


@friendly_errors
def start_conversation(desk: ChatDesk, photo, voice, persona, language, mode, record, mic_status, browser,
                       live: LiveChat | None, request: gr.Request):
    """Start: close this session's earlier conversation, take the place of another tab of this browser,
    prepare the twin (photo, models), and start streaming. Returns the session's LiveChat."""
    lang = language_of(request)
    session = _session(request)
    if not photo:
        raise UserError(say("chat.no_photo", "en"), zh=say("chat.no_photo", "zh"))
    desk.studio.sessions.check_input(request, photo)  # never another person's photo by its path
    browser = getattr(request, "username", None) or (browser or "").strip()
    for old in desk.seats.reserve(session, browser) + ([live] if live is not None else []):
        old.close()
    new = None
    try:
        config = ChatConfig(language=language or "en")
        conversation = Conversation(ChatTwin(photo, voice=None if voice in (None, "", "auto") else voice,
                                             persona=persona or ""), config,
                                    desk.studio.runtime_for(request))  # recordings go to this person's folder
        segments = SegmentStream(config.fps, config.sample_rate, first_answer_frames=config.first_answer_frames,
                                 on_sent=conversation.segment_sent)
        new = LiveChat(conversation, segments, session, browser, mode or "hands_free")
        desk.seats.settle(session, new)  # the microphone finds it while it loads ("say that again in a moment")
        conversation.start()
        conversation.add_sink(segments)
        if record:
            conversation.start_recording()
    except BaseException:
        desk.seats.release(session)
        if new is not None:
            new.close()
        raise
    _show(conversation.take_notices(), lang)
    if new.mode != "typing" and mic_status and mic_status != "ok":
        key = mic_status if mic_status in ("denied", "insecure", "missing") else "error"
        gr.Warning(say(f"chat.mic_{key}", lang, detail=mic_status.partition(":")[2] or mic_status), duration=20)
    how = say(f"chat.how_{new.mode}", lang)
    return new, say("chat.started", lang, how=how), []


def converse(desk: ChatDesk, live: LiveChat | None, request: gr.Request):
    """The twin, live: yields each video segment (picture + voice) as it is made, with the transcript
    and the status, until the conversation ends. Runs for as long as the conversation does."""
    if live is None:
        return
    lang = language_of(request)
    conversation = live.conversation
    shown_version = -1
    ends = time.monotonic() + MAX_MINUTES * 60
    while not conversation.closed:
        if time.monotonic() > ends:
            gr.Info(say("chat.too_long", lang, minutes=MAX_MINUTES), duration=20)
            desk.seats.release(live.session, live)
            live.close()
            break
        segment = live.segments.next(timeout=1.0)
        _show(conversation.take_notices(), lang)
        if segment is None:
            continue
        version = conversation.transcript_version
        transcript = transcript_messages(conversation, lang) if version != shown_version else gr.skip()
        shown_version = version
        LiveVideo.expect(segment, live.segments.sample_rate)
        yield str(segment.path), transcript, status_text(live, lang)
        LiveVideo.forget(segment)  # already taken, unless the stream ended meanwhile
        live.segments.sent(segment)  # the generator resumes once Gradio has sent the segment out
    if live.moved:
        gr.Warning(say("chat.took_over", lang), duration=20)
    yield gr.skip(), transcript_messages(conversation, lang), status_text(live, lang)


async def hear_microphone(desk: ChatDesk, chunk, live: LiveChat | None, request: gr.Request) -> None:
    """A piece of microphone audio (0.1 s, as the browser sends it) goes to the twin's ears.

    Async and without Gradio's audio decoding on purpose: a streamed input keeps only its newest
    chunk while the server is busy with the previous one, so this must return as fast as it can.
    """
    path = (chunk or {}).get("path") if isinstance(chunk, dict) else getattr(chunk, "path", None)
    if not path:
        return
    live = live or desk.seats.get(_session(request))  # still being set up: it says "say that again"
    if live is None or live.moved or live.mode == "typing":
        return
    rate, samples = read_wav_chunk(path)
    live.conversation.feed_audio(samples, rate)
    if not live.conversation.ready:  # spoke while the twin loads: say so now (nothing else shows it yet)
        _show(live.conversation.take_notices(), language_of(request))
    elif live.microphone.heard(len(samples) / rate):
        gr.Warning(say("chat.mic_lossy", language_of(request)), duration=20)


def read_wav_chunk(path: str) -> tuple[int, np.ndarray]:
    """(rate, samples) of a streamed WAV chunk: the browser reuses the first chunk's header, whose
    data length is wrong for the others, so the samples are simply everything after the header."""
    data = Path(path).read_bytes()
    channels = int.from_bytes(data[22:24], "little") or 1
    rate = int.from_bytes(data[24:28], "little") or 48000
    bits = int.from_bytes(data[34:36], "little")
    start = data.find(b"data")
    body = data[start + 8:] if start >= 0 else data[44:]
    if bits == 32:
        samples = np.frombuffer(body[: len(body) // 4 * 4], np.float32)
    else:
        samples = np.frombuffer(body[: len(body) // 2 * 2], np.int16)
    return rate, samples.reshape(-1, channels) if channels > 1 else samples


def microphone_started(desk: ChatDesk, live: LiveChat | None) -> None:
    """Record pressed (either microphone): the twin stops talking and listens from now."""
    if live is not None and live.conversation.ready and live.mode != "typing":
        live.microphone.start()
        live.conversation.start_listening()


def microphone_stopped(desk: ChatDesk, live: LiveChat | None) -> None:
    """Hands-free recording stopped: whatever was being said is the question."""
    if live is not None and live.conversation.ready and live.mode == "hands_free":
        live.conversation.end_of_speech()


@friendly_errors
def push_to_talk_done(desk: ChatDesk, recording, live: LiveChat | None, request: gr.Request):
    """Push-to-talk released: the whole recording (uploaded at once, nothing lost) is the question."""
    from pipelines.core.media import load_audio

    if not recording:
        return None
    live = live or desk.seats.get(_session(request))
    if live is None or live.conversation.closed:
        raise UserError(say("chat.not_started", "en"), zh=say("chat.not_started", "zh"))
    samples, rate = load_audio(recording)
    live.conversation.hear(samples, rate)
    _show(live.conversation.take_notices(), language_of(request))
    return None  # clear the recorder for the next question


def show_microphone(mode: str):
    """Hands-free shows the streaming microphone, push-to-talk the recorder, typing neither."""
    return gr.update(visible=mode == "hands_free"), gr.update(visible=mode == "push")


@friendly_errors
def ask_typed(desk: ChatDesk, text, live: LiveChat | None, request: gr.Request):
    if not (text or "").strip():
        return gr.skip()
    if live is None or live.conversation.closed:
        raise UserError(say("chat.not_started", "en"), zh=say("chat.not_started", "zh"))
    live.conversation.ask(text)
    return ""


@friendly_errors
def end_conversation(desk: ChatDesk, live: LiveChat | None, files, request: gr.Request):
    """End: the recording (if any) is finished and offered with the other saved files."""
    lang = language_of(request)
    if live is None:
        return None, files, ""
    saved = list(files or [])
    path = live.conversation.stop_recording() if live.conversation.ready else None
    if path is not None:
        saved.append(str(path))
        gr.Info(say("chat.recording_saved", lang, file=path.name))
    desk.seats.release(live.session, live)
    live.close()
    return None, saved or None, say("chat.status_closed", lang)


@friendly_errors
def set_recording(desk: ChatDesk, record, live: LiveChat | None, files, request: gr.Request):
    """The Record box ticked (start recording now) or cleared (finish the MP4 and offer it)."""
    if live is None or not live.conversation.ready:
        return gr.skip()
    if record:
        live.conversation.start_recording()
        return gr.skip()
    path = live.conversation.stop_recording()
    if path is None:
        return gr.skip()
    gr.Info(say("chat.recording_saved", language_of(request), file=path.name))
    return list(files or []) + [str(path)]


@friendly_errors
def save_transcript(desk: ChatDesk, live: LiveChat | None, files, request: gr.Request):
    lang = language_of(request)
    if live is None or not live.conversation.transcript:
        raise UserError(say("chat.nothing_to_save", "en"), zh=say("chat.nothing_to_save", "zh"))
    path = live.conversation.save_transcript(language=lang)
    gr.Info(say("chat.transcript_saved", lang, file=path.name))
    return list(files or []) + [str(path)]


def close_session(desk: ChatDesk, request: gr.Request) -> None:
    """The browser tab closed (or reloaded): stop its conversation's threads now, not an hour later."""
    live = desk.seats.release(_session(request))
    if live is not None:
        live.close()


def forget_conversation(live: LiveChat | None) -> None:
    """gr.State's delete callback: the last safety net when a session's state is dropped."""
    if live is not None:
        live.close()


# ---------------------------------------------------------------- layout and wiring
def build_tab(ctx: StudioContext) -> TabHandles:
    desk = ChatDesk(ctx)
    private = dict(api_visibility="private")
    gr.Markdown(t("chat.intro"))
    live = gr.State(None, delete_callback=forget_conversation)
    with gr.Row():
        with gr.Column(scale=2):
            with gr.Accordion(t("chat.twin"), open=True):
                profile = gr.Dropdown(label=t("chat.profile"), choices=[], value=None)
                use_wizard = gr.Button(t("chat.use_wizard"), size="sm")
                photo = gr.Image(label=t("chat.photo"), type="filepath", sources=["upload", "clipboard"], height=220)
                voice = gr.Dropdown(label=t("chat.voice"), choices=["auto"], value="auto",  # filled on open
                                    allow_custom_value=True)
                persona = gr.Textbox(label=t("chat.persona"), value=say("chat.persona_default", "en"))
            language = gr.Radio([("English", "en"), ("中文", "zh"), (t("chat.language_auto"), "auto")], value="en",
                                label=t("chat.language"))
            mode = gr.Radio([(t("chat.mode_hands_free"), "hands_free"), (t("chat.mode_push"), "push"),
                             (t("chat.mode_typing"), "typing")], value="hands_free", label=t("chat.mode"))
            record = gr.Checkbox(label=t("chat.record"), value=False)
            with gr.Row():
                start = gr.Button(t("chat.start"), variant="primary", elem_id="chat-start")
                end = gr.Button(t("chat.end"), variant="stop")
            status = gr.Markdown(elem_id="chat-status")
        with gr.Column(scale=3):
            video = LiveVideo(label=t("chat.video"), streaming=True, autoplay=True, interactive=False,
                             elem_id="chat-video", height=420)
            mic = gr.Audio(label=t("chat.mic"), sources=["microphone"], streaming=True, type="numpy",
                           elem_id="chat-mic")
            push = gr.Audio(label=t("chat.ptt"), sources=["microphone"], type="filepath", visible=False,
                            elem_id="chat-push")
            with gr.Row():
                question = gr.Textbox(label=t("chat.question"), scale=5, elem_id="chat-question")
                send = gr.Button(t("chat.send"), scale=1)
            transcript = gr.Chatbot(label=t("chat.transcript"), height=300, elem_id="chat-transcript")
            with gr.Row():
                save = gr.Button(t("chat.save_transcript"), size="sm")
            files = gr.File(label=t("chat.files"), file_count="multiple", interactive=False)
    with gr.Group(visible=False):
        mic_status, browser = gr.Textbox(), gr.Textbox()

    profile.change(bind(load_chat_profile, desk), profile, [photo, voice, persona], **private)
    started = start.click(bind(start_conversation, desk),
                          [photo, voice, persona, language, mode, record, mic_status, browser, live],
                          [live, status, transcript], js=START_JS, concurrency_limit=2, concurrency_id="chat-start",
                          **private)
    started.success(bind(converse, desk), live, [video, transcript, status], concurrency_limit=None,
                                show_progress="hidden", **private)
    mic.stream(bind(hear_microphone, desk), [mic, live], None, stream_every=MIC_EVERY, time_limit=None,
               concurrency_limit=None, show_progress="hidden", preprocess=False, **private)
    mic.start_recording(bind(microphone_started, desk), live, None, queue=False, **private)
    mic.stop_recording(bind(microphone_stopped, desk), live, None, queue=False, **private)
    push.start_recording(bind(microphone_started, desk), live, None, queue=False, **private)
    push.stop_recording(bind(push_to_talk_done, desk), [push, live], push, **private)
    mode.change(show_microphone, mode, [mic, push], queue=False, **private)
    for trigger in (question.submit, send.click):
        trigger(bind(ask_typed, desk), [question, live], question, queue=False, **private)
    end.click(bind(end_conversation, desk), [live, files], [live, files, status], **private)
    record.input(bind(set_recording, desk), [record, live, files], files, **private)
    save.click(bind(save_transcript, desk), [live, files], files, **private)
    root = gr.context.Context.root_block
    if root is not None:
        root.unload(bind(close_session, desk))

    return TabHandles(wizard_choices_button=use_wizard, wizard_choices_targets=[photo, voice, persona],
                      on_open=(bind(on_open, desk), [persona], [profile, voice, persona]))
