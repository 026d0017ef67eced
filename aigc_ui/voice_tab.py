"""Voice synthesis tab: text -> speech with a chosen voice, streamed sentence by sentence, plus
"my voice" (upload or record, cleaned and kept for the twin wizard). Wires widgets to
pipelines.voice.synthesis by named arguments; no model code here.

API: ``/synthesize_speech`` (text, voice, speed), ``/save_my_voice`` (recording, name). The handlers
are the top-level functions below; ``build_tab`` only lays out and wires.
"""
from __future__ import annotations

import functools
import shutil

import gradio as gr

from pipelines.voice import synthesis as speech

from .common import (StudioContext, TabHandles, bind, cancellable, clear_errors_on_success, friendly_errors,
                     language_of, pass_through, progress_callback, provenance_checkbox, show_notices)
from .hosting import zero_gpu
from .i18n import add_strings, say, t

TAB = "voice"
DEFAULT_SETTINGS = {"pitch": 0.0, "normalize": True, "pause": 0.35, "format": "wav", "provenance": True}

add_strings(
    en={
        "voice.intro": "Type a text and pick a voice. **auto** sends Chinese to a Mandarin voice and other text to the best voice for its language; mixed text is split and each part spoken by a fitting voice. Numbers and dates are read as words. Long texts are spoken sentence by sentence: the first sentence plays while the rest is made.",
        "voice.text": "Text to speak",
        "voice.text_placeholder": "Hello! 你好！ Today is 2024-05-01 and it is 21°C.",
        "voice.voice": "Voice",
        "voice.speed": "Speed (1 = normal)",
        "voice.more": "More controls",
        "voice.pitch": "Pitch (semitones)",
        "voice.normalize": "Normalise loudness",
        "voice.pause": "Pause between sentences (seconds)",
        "voice.format": "File format",
        "voice.speak": "Speak",
        "voice.live": "Listen as it is made",
        "voice.first_sentence": "First sentence (preview)",
        "voice.result": "Speech (play or download)",
        "voice.status": "Status",
        "voice.for_twin": "Audio for the twin (the last speech or cleaned recording)",
        "voice.send_to_twin": "Use as twin voice",
        "voice.my_voice": "My voice",
        "voice.my_voice_intro": "Upload or record your own voice (at most 10 minutes). It is cleaned (silence trimmed, loudness normalised, 22.05 kHz mono) and kept for the digital-twin wizard.",
        "voice.recording": "Your recording",
        "voice.my_name": "Name for this recording",
        "voice.save_my_voice": "Clean and keep",
        "voice.cleaned": "Cleaned recording",
        "voice.kept": "My kept recordings",
        "voice.refresh": "Refresh lists",
        "voice.progress": "Speaking {done}/{total}: {text}",
        "voice.done": "Done: {seconds:.1f} s of speech, voice **{voice}**, {count} sentences. Saved as `{file}`.",
        "voice.stopped_at": "Stopped after {count} sentences; the file keeps what was spoken: `{file}`.",
        "voice.saved": "Kept as `{file}` ({seconds:.1f} s). The twin wizard lists it under your recordings.",
        "voice.cloning_available": "Voice-cloning models you can use: {names}.",
    },
    zh={
        "voice.intro": "输入文本并选择语音。**auto** 会把中文交给普通话语音、其他文字交给该语言最合适的语音；中英混合的文本会被拆开，每一段由合适的语音朗读。数字和日期会读成文字。长文本逐句合成：第一句播放时其余部分仍在生成。",
        "voice.text": "要朗读的文本",
        "voice.text_placeholder": "你好！Hello! 今天是2024年5月1日，气温21℃。",
        "voice.voice": "语音",
        "voice.speed": "语速（1 = 正常）",
        "voice.more": "更多设置",
        "voice.pitch": "音高（半音）",
        "voice.normalize": "响度归一化",
        "voice.pause": "句间停顿（秒）",
        "voice.format": "文件格式",
        "voice.speak": "朗读",
        "voice.live": "边生成边听",
        "voice.first_sentence": "第一句（预览）",
        "voice.result": "语音（播放或下载）",
        "voice.status": "状态",
        "voice.for_twin": "用于数字分身的音频（最近一次的语音或清理后的录音）",
        "voice.send_to_twin": "用作分身声音",
        "voice.my_voice": "我的声音",
        "voice.my_voice_intro": "上传或录制你自己的声音（最多 10 分钟）。录音会被清理（去除首尾静音、响度归一化、22.05 kHz 单声道），并保存给数字分身向导使用。",
        "voice.recording": "你的录音",
        "voice.my_name": "录音名称",
        "voice.save_my_voice": "清理并保存",
        "voice.cleaned": "清理后的录音",
        "voice.kept": "我保存的录音",
        "voice.refresh": "刷新列表",
        "voice.progress": "正在朗读 {done}/{total}：{text}",
        "voice.done": "完成：{seconds:.1f} 秒语音，语音 **{voice}**，共 {count} 句。已保存为 `{file}`。",
        "voice.stopped_at": "已在第 {count} 句后停止；文件保留了已朗读的部分：`{file}`。",
        "voice.saved": "已保存为 `{file}`（{seconds:.1f} 秒）。数字分身向导会在你的录音中列出它。",
        "voice.cloning_available": "可用的声音克隆模型：{names}。",
    },
)


def streaming_playable() -> bool:
    """Gradio's live audio stream is encoded by ffmpeg (and probed by ffprobe); without both, the
    tab plays the first sentence as soon as it is made and the whole speech when it is done."""
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def dropdown_choices(ctx: StudioContext, lang: str = "en") -> list[tuple[str, str]]:
    return [(f"{name} — {label}", name) for name, _ready, label in speech.voice_choices(ctx.runtime, lang)]


def kept_recordings(ctx: StudioContext, request) -> list[str]:
    """The names of the caller's own kept recordings (names only: no server path leaves the studio)."""
    return [p.stem for p in speech.list_my_voices(ctx.runtime_for(request))]


def kept_recording(ctx: StudioContext, name: str, request: gr.Request):
    """A kept recording was picked: it becomes the audio for the twin (looked up in the caller's folder)."""
    for path in speech.list_my_voices(ctx.runtime_for(request)):
        if path.stem == name:
            return str(path)
    return None


# ---------------------------------------------------------------- handlers
def remember_setting(key: str, value, current: dict) -> dict:
    """Settings that are not API parameters (pitch, pause...) live in the session's State."""
    return {**(current or DEFAULT_SETTINGS), key: value}


@friendly_errors
def speak(ctx: StudioContext, text: str, voice: str, speed: float, settings: dict, request: gr.Request,
          progress=gr.Progress()):
    """Speak the text; yields (file, live audio, status). Where the player can stream, every sentence
    goes to it as it is made, else only the first one is played early."""
    lang = language_of(request)
    live_stream = streaming_playable()  # the same answer build_tab got
    options = {**DEFAULT_SETTINGS, **(settings or {})}
    runtime = ctx.runtime_for(request)  # the speech file goes into this person's own folder
    with ctx.jobs.running(request, TAB) as stop:
        stream = speech.stream_speech(text=text, voice=voice, speed=speed, runtime=runtime, stop=stop,
                                      on_progress=progress_callback(progress, lang), pitch=options["pitch"],
                                      normalize=options["normalize"], sentence_pause=options["pause"],
                                      output_format=options["format"], save=True,
                                      provenance=bool(options["provenance"]))
        count = 0  # pieces spoken
        for count, chunk in enumerate(stream, start=1):
            pcm = (chunk.sample_rate, (chunk.audio * 32767).astype("int16"))  # what players expect
            message = say("voice.progress", lang, done=chunk.index + 1, total=chunk.total, text=chunk.text[:80])
            yield gr.skip(), pcm if live_stream or chunk.index == 0 else gr.skip(), message
        result = stream.result()
    show_notices(result.notices, lang)
    key = "voice.stopped_at" if result.stopped else "voice.done"
    yield (str(result.path) if result.path else None, gr.skip(),
           say(key, lang, seconds=result.duration, voice=", ".join(result.voices_used), count=count,
               file=result.path.name if result.path else "-"))


def stop_speaking(ctx: StudioContext, request: gr.Request) -> None:
    ctx.jobs.stop(request, TAB)


@friendly_errors
def save_my_voice(ctx: StudioContext, recording: str, name: str, request: gr.Request):
    """Clean and keep a recording; it becomes the audio for the twin. The parameter names are the API's."""
    import soundfile as sf

    ctx.sessions.check_input(request, recording)
    saved = speech.save_my_voice(path=recording, name=name, runtime=ctx.runtime_for(request))
    seconds = sf.info(str(saved)).duration
    return (str(saved), str(saved), say("voice.saved", language_of(request), file=saved.name, seconds=seconds),
            gr.Dropdown(choices=kept_recordings(ctx, request), value=saved.stem))


def refresh_lists(ctx: StudioContext, request: gr.Request):
    """Voices, kept recordings and the voice-cloning notice, as they are now."""
    lang = language_of(request)
    names = speech.cloning_models(ctx.runtime)
    notice = say("voice.cloning_available", lang, names=", ".join(names)) if names else \
        speech.VOICE_CLONING_HELP["zh" if lang == "zh" else "en"]
    return gr.Dropdown(choices=dropdown_choices(ctx, lang)), gr.Dropdown(choices=kept_recordings(ctx, request)), notice


# ---------------------------------------------------------------- layout and wiring
def build_tab(ctx: StudioContext) -> TabHandles:
    live_stream = streaming_playable()
    gr.Markdown(t("voice.intro"))
    with gr.Row():
        with gr.Column(scale=3):
            text = gr.Textbox(label=t("voice.text"), placeholder=t("voice.text_placeholder"), lines=6,
                              max_length=20_000)
            with gr.Row():
                voice = gr.Dropdown(label=t("voice.voice"), choices=[("auto", "auto")], value="auto",
                                    allow_custom_value=True, filterable=True, scale=2)
                speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label=t("voice.speed"), scale=1)
            with gr.Accordion(t("voice.more"), open=False):
                pitch = gr.Slider(-12, 12, value=0, step=0.5, label=t("voice.pitch"))
                normalize = gr.Checkbox(value=True, label=t("voice.normalize"))
                pause = gr.Slider(0.0, 2.0, value=0.35, step=0.05, label=t("voice.pause"))
                file_format = gr.Radio(["wav", "mp3"], value="wav", label=t("voice.format"))
                mark = provenance_checkbox()
            settings = gr.State(dict(DEFAULT_SETTINGS))  # not an API parameter: the API takes text, voice, speed
            with gr.Row():
                speak_button = gr.Button(t("voice.speak"), variant="primary")
                stop_button = gr.Button(t("common.stop"), variant="stop")
        with gr.Column(scale=2):
            if live_stream:
                live = gr.Audio(label=t("voice.live"), streaming=True, autoplay=True, interactive=False)
            else:
                live = gr.Audio(label=t("voice.first_sentence"), type="numpy", autoplay=True, interactive=False)
            result = gr.Audio(label=t("voice.result"), type="filepath", interactive=False,
                              buttons=["download"])
            status = gr.Markdown(label=t("voice.status"))
            for_twin = gr.Audio(label=t("voice.for_twin"), type="filepath", interactive=False)
            send_audio = gr.Button(t("voice.send_to_twin"))

    with gr.Accordion(t("voice.my_voice"), open=False):
        gr.Markdown(t("voice.my_voice_intro"))
        cloning_notice = gr.Markdown()
        with gr.Row():
            recording = gr.Audio(label=t("voice.recording"), sources=["upload", "microphone"], type="filepath")
            with gr.Column():
                my_name = gr.Textbox(label=t("voice.my_name"), value="my-voice", max_length=60)
                save_button = gr.Button(t("voice.save_my_voice"), variant="primary")
                cleaned = gr.Audio(label=t("voice.cleaned"), type="filepath", interactive=False)
                my_status = gr.Markdown()
        kept = gr.Dropdown(label=t("voice.kept"), choices=[], allow_custom_value=False)
        refresh = gr.Button(t("voice.refresh"), size="sm")

    private = dict(queue=False, api_visibility="private")
    for key, control in (("pitch", pitch), ("normalize", normalize), ("pause", pause), ("format", file_format),
                         ("provenance", mark)):
        control.change(functools.partial(remember_setting, key), [control, settings], settings, **private)
    # transformers voices (Bark, SpeechT5) use the GPU on ZeroGPU Spaces
    speak_event = speak_button.click(cancellable(zero_gpu(120)(bind(speak, ctx))), [text, voice, speed, settings],
                                     [result, live, status], api_name="synthesize_speech", show_progress_on=result,
                                     **ctx.concurrency("voice"))
    speak_event.success(pass_through, result, for_twin, **private)
    stop_button.click(bind(stop_speaking, ctx), None, None, **private)
    kept_voice = save_button.click(bind(save_my_voice, ctx), [recording, my_name], [cleaned, for_twin, my_status, kept],
                                   api_name="save_my_voice", show_progress_on=cleaned)
    clear_errors_on_success(speak_event, kept_voice)
    kept.input(bind(kept_recording, ctx), kept, for_twin, **private)
    refresh.click(bind(refresh_lists, ctx), None, [voice, kept, cloning_notice], **private)

    return TabHandles(audio_source=for_twin, send_audio=send_audio,
                      on_open=(bind(refresh_lists, ctx), [voice, kept, cloning_notice]))
