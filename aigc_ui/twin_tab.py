"""My digital twin tab: a wizard (photo -> script -> voice -> animate -> profiles & history) over
``pipelines.twin.pipeline``. Each step is a tab of its own, so people who know the way jump straight to it;
Back/Next walk the others through. API: ``/create_twin_video`` (photo, script, voice, audio) -> MP4.
"""
from __future__ import annotations

import logging

import gradio as gr
import numpy as np

from pipelines.twin import pipeline as twin
from pipelines.twin import profiles
from pipelines.core.errors import UserError
from pipelines.core.settings import ASSETS_DIR

from .hosting import zero_gpu
from .common import StudioContext, TabHandles, friendly_errors, language_of, progress_callback
from .i18n import add_strings, say, t

log = logging.getLogger(__name__)
TAB = "twin"
STEPS = ("photo", "script", "voice", "animate", "profiles")

add_strings(
    en={
        "twin.intro": "Make a video of a photo speaking your script: pick a photo, write or generate a script, choose a voice (or record your own), then animate. Everything runs on this computer.",
        "twin.step_photo": "1. Photo",
        "twin.step_script": "2. Script",
        "twin.step_voice": "3. Voice",
        "twin.step_animate": "4. Animate",
        "twin.step_profiles": "5. Profiles & history",
        "twin.back": "← Back",
        "twin.next": "Next →",
        "twin.photo": "Photo with a face (upload, webcam, or a sample below)",
        "twin.samples": "Public-domain samples",
        "twin.faces": "Faces found",
        "twin.face_choice": "Face to animate",
        "twin.consent": "I have the right to animate this face (it is me, or I have the person's permission)",
        "twin.script": "Script (English or Chinese; optional when you use your own recording)",
        "twin.writer": "Write the script for me",
        "twin.persona": "Persona (who is speaking)",
        "twin.topic": "Topic",
        "twin.seconds": "Length (seconds)",
        "twin.language": "Language",
        "twin.write": "Write script",
        "twin.voice": "Voice",
        "twin.recording": "Or your own recording (it then drives the video; the script becomes optional)",
        "twin.size": "Output size",
        "twin.size_face": "512 px face crop",
        "twin.size_photo": "The photo's own size (up to 1080p)",
        "twin.expression": "Expression intensity",
        "twin.still": "Still mode (only the mouth moves)",
        "twin.subtitles": "Burn in subtitles",
        "twin.ai_label": "Show an \"AI-generated\" label",
        "twin.create": "Create video",
        "twin.video": "Your twin",
        "twin.download": "Download",
        "twin.profile_name": "Profile name",
        "twin.save_profile": "Save photo + voice + persona as a profile",
        "twin.profiles": "Saved profiles",
        "twin.load_profile": "Load profile",
        "twin.delete_profile": "Delete profile",
        "twin.history": "Your twin videos (newest first)",
        "twin.refresh": "Refresh",
        "twin.face_label": "Face {n}",
        "twin.face_largest": "Face 1 (largest)",
        "twin.no_face_yet": "Choose a photo to see its faces.",
        "twin.found": "{n} face(s) found.",
        "twin.done": "Done: {seconds:.1f} s of video, {frames} frames at {width}x{height}, voice {voice}, seed {seed} (reuse it to repeat the motion), made in {took} s.",
        "twin.need_consent": "Please tick the consent box in step 1 (you must have the right to animate this face).",
        "twin.saved": "Saved profile \"{name}\".",
        "twin.loaded": "Loaded profile \"{name}\".",
        "twin.deleted": "Deleted profile \"{name}\".",
        "twin.no_voices": "Voice synthesis is not installed in this build: use your own recording.",
    },
    zh={
        "twin.intro": "让照片开口说出你的脚本：选择照片，输入或生成脚本，选择声音（或录制你自己的声音），然后生成动画。全部在本机完成。",
        "twin.step_photo": "1. 照片",
        "twin.step_script": "2. 脚本",
        "twin.step_voice": "3. 声音",
        "twin.step_animate": "4. 生成动画",
        "twin.step_profiles": "5. 档案与历史",
        "twin.back": "← 上一步",
        "twin.next": "下一步 →",
        "twin.photo": "有人脸的照片（上传、摄像头，或使用下方示例）",
        "twin.samples": "公有领域示例照片",
        "twin.faces": "找到的人脸",
        "twin.face_choice": "要驱动的人脸",
        "twin.consent": "我有权让这张脸动起来（是我本人，或已获得本人许可）",
        "twin.script": "脚本（中文或英文；使用自己的录音时可不填）",
        "twin.writer": "帮我写脚本",
        "twin.persona": "人设（谁在说话）",
        "twin.topic": "主题",
        "twin.seconds": "时长（秒）",
        "twin.language": "语言",
        "twin.write": "生成脚本",
        "twin.voice": "声音",
        "twin.recording": "或使用你自己的录音（将由录音驱动视频，脚本可不填）",
        "twin.size": "输出尺寸",
        "twin.size_face": "512 像素人脸裁剪",
        "twin.size_photo": "照片原尺寸（最高 1080p）",
        "twin.expression": "表情强度",
        "twin.still": "静止模式（只有嘴动）",
        "twin.subtitles": "烧录字幕",
        "twin.ai_label": "显示“AI 生成”标识",
        "twin.create": "生成视频",
        "twin.video": "你的数字分身",
        "twin.download": "下载",
        "twin.profile_name": "档案名称",
        "twin.save_profile": "将照片、声音和人设保存为档案",
        "twin.profiles": "已保存的档案",
        "twin.load_profile": "载入档案",
        "twin.delete_profile": "删除档案",
        "twin.history": "你的分身视频（最新在前）",
        "twin.refresh": "刷新",
        "twin.face_label": "人脸 {n}",
        "twin.face_largest": "人脸 1（最大）",
        "twin.no_face_yet": "请选择照片以查看其中的人脸。",
        "twin.found": "找到 {n} 张人脸。",
        "twin.done": "完成：视频 {seconds:.1f} 秒，共 {frames} 帧，{width}x{height}，声音 {voice}，随机种子 {seed}（重复使用可得到相同的动作），用时 {took} 秒。",
        "twin.need_consent": "请在第 1 步勾选同意框（你必须有权让这张脸动起来）。",
        "twin.saved": "已保存档案“{name}”。",
        "twin.loaded": "已载入档案“{name}”。",
        "twin.deleted": "已删除档案“{name}”。",
        "twin.no_voices": "此版本未安装语音合成：请使用你自己的录音。",
    },
)


def sample_photos() -> list[str]:
    return [str(p) for p in sorted(ASSETS_DIR.glob("*.jpg")) + sorted(ASSETS_DIR.glob("*.png"))]


def voice_choices(runtime) -> list[str]:
    try:
        from pipelines.voice.synthesis import list_voices
    except ImportError:
        return ["auto"]
    try:
        names = list(list_voices(runtime=runtime))
    except Exception:  # noqa: BLE001 - a broken voice list must not break the tab
        log.exception("could not list voices")
        names = []
    return ["auto"] + [n for n in names if n != "auto"]


def annotate_faces(image: np.ndarray, faces) -> np.ndarray:
    """The photo with a numbered box around each face (1 = largest)."""
    import cv2

    out = image.copy()
    thick = max(2, image.shape[1] // 300)
    for i, face in enumerate(faces):
        x0, y0, x1, y1 = (int(v) for v in face.bbox)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 200, 0) if i else (0, 220, 90), thick)
        cv2.putText(out, str(i + 1), (x0 + thick, max(y0 - 2 * thick, 12 * thick)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, (255, 255, 255), thick)
    return out


def build_tab(ctx: StudioContext) -> TabHandles:
    runtime = ctx.runtime
    gr.Markdown(t("twin.intro"))
    with gr.Tabs(selected="photo") as steps:
        # ---- 1. photo
        with gr.Tab(t("twin.step_photo"), id="photo"):
            with gr.Row():
                with gr.Column():
                    photo = gr.Image(label=t("twin.photo"), type="filepath", sources=["upload", "webcam", "clipboard"],
                                     height=360)
                    if sample_photos():
                        gr.Examples(sample_photos(), inputs=[photo], label=t("twin.samples"))
                with gr.Column():
                    faces_view = gr.Image(label=t("twin.faces"), interactive=False, height=360)
                    face_choice = gr.Dropdown(label=t("twin.face_choice"), choices=[], value=None, type="value")
                    faces_info = gr.Markdown(t("twin.no_face_yet"))
            consent = gr.Checkbox(label=t("twin.consent"), value=False)
            next_1 = gr.Button(t("twin.next"))
        # ---- 2. script
        with gr.Tab(t("twin.step_script"), id="script"):
            script = gr.Textbox(label=t("twin.script"), lines=5)
            with gr.Accordion(t("twin.writer"), open=False):
                with gr.Row():
                    persona = gr.Textbox(label=t("twin.persona"), value="a friendly science teacher")
                    topic = gr.Textbox(label=t("twin.topic"), value="why the sky is blue")
                with gr.Row():
                    seconds = gr.Slider(5, 60, value=15, step=5, label=t("twin.seconds"))
                    language = gr.Radio([("English", "en"), ("中文", "zh")], value="en", label=t("twin.language"))
                write = gr.Button(t("twin.write"))
            with gr.Row():
                back_2, next_2 = gr.Button(t("twin.back")), gr.Button(t("twin.next"))
        # ---- 3. voice
        with gr.Tab(t("twin.step_voice"), id="voice"):
            voice = gr.Dropdown(label=t("twin.voice"), choices=["auto"], value="auto", allow_custom_value=True)
            recording = gr.Audio(label=t("twin.recording"), sources=["microphone", "upload"], type="filepath")
            with gr.Row():
                back_3, next_3 = gr.Button(t("twin.back")), gr.Button(t("twin.next"))
        # ---- 4. animate
        with gr.Tab(t("twin.step_animate"), id="animate"):
            with gr.Row():
                with gr.Column():
                    size = gr.Radio([(t("twin.size_face"), "face"), (t("twin.size_photo"), "photo")], value="face",
                                    label=t("twin.size"))
                    expression = gr.Slider(0, 2, value=1.0, step=0.1, label=t("twin.expression"))
                    with gr.Row():
                        still = gr.Checkbox(label=t("twin.still"), value=False)
                        subtitles = gr.Checkbox(label=t("twin.subtitles"), value=False)
                        ai_label = gr.Checkbox(label=t("twin.ai_label"), value=True)
                    seed = gr.Number(label=t("common.seed"), value=-1, precision=0)
                    with gr.Row():
                        create = gr.Button(t("twin.create"), variant="primary")
                        stop = gr.Button(t("common.stop"), variant="stop")
                    back_4 = gr.Button(t("twin.back"))
                with gr.Column():
                    video = gr.Video(label=t("twin.video"), interactive=False)
                    download = gr.File(label=t("twin.download"), interactive=False)
                    info = gr.Markdown()
        # ---- 5. profiles and history
        with gr.Tab(t("twin.step_profiles"), id="profiles"):
            with gr.Row():
                profile_name = gr.Textbox(label=t("twin.profile_name"))
                save = gr.Button(t("twin.save_profile"))
            with gr.Row():
                profile_list = gr.Dropdown(label=t("twin.profiles"), choices=[], value=None)
                load = gr.Button(t("twin.load_profile"))
                delete = gr.Button(t("twin.delete_profile"), variant="stop")
            profile_info = gr.Markdown()
            history = gr.File(label=t("twin.history"), file_count="multiple", interactive=False)
            refresh = gr.Button(t("twin.refresh"))
            back_5 = gr.Button(t("twin.back"))
    # The /create_twin_video endpoint has inputs of its own: plain files, so that our pipeline (not the
    # component's preprocessing) checks them and answers a bad file with a clear message.
    with gr.Group(visible=False):
        api_trigger = gr.Button()
        api_photo, api_audio = gr.File(type="filepath"), gr.File(type="filepath")
        api_script, api_voice = gr.Textbox(), gr.Textbox()

    # ---- navigation
    for button, target in ((next_1, "script"), (back_2, "photo"), (next_2, "voice"), (back_3, "script"),
                           (next_3, "animate"), (back_4, "voice"), (back_5, "animate")):
        button.click(lambda target=target: gr.Tabs(selected=target), None, steps, queue=False,
                     api_visibility="private")

    # ---- handlers
    @friendly_errors
    def find_faces(photo_value, request: gr.Request):
        if not photo_value:
            return None, gr.Dropdown(choices=[], value=None), say("twin.no_face_yet", language_of(request))
        lang = language_of(request)
        image = twin.load_photo(photo_value)
        from pipelines.face.landmarks import detect_faces

        faces = detect_faces(image, runtime=runtime)
        twin.choose_face(faces, 0)  # no face or a tiny one: say why now, not after the render
        choices = [(say("twin.face_largest", lang) if i == 0 else say("twin.face_label", lang, n=i + 1), i)
                   for i in range(len(faces))]
        return annotate_faces(image, faces), gr.Dropdown(choices=choices, value=0), say("twin.found", lang, n=len(faces))

    photo.change(find_faces, photo, [faces_view, face_choice, faces_info], api_visibility="private")

    @friendly_errors
    def write_script(persona_value, topic_value, seconds_value, language_value, request: gr.Request,
                     progress=gr.Progress()):
        from pipelines.text.generation import write_twin_script

        with ctx.jobs.running(request, TAB) as token:
            result = write_twin_script(persona_value, topic_value, seconds=float(seconds_value),
                                       language=language_value, runtime=runtime, stop=token)
        for warning in result.warnings:
            gr.Warning(warning)
        return result.text

    write.click(write_script, [persona, topic, seconds, language], script, api_visibility="private", **ctx.heavy())

    def render(photo_value, script_value, voice_value, audio_value, *, consent_value, face_index, size_value,
               expression_value, still_value, subtitles_value, label_value, seed_value_, request, progress):
        lang = language_of(request)
        if not consent_value:
            raise UserError(say("twin.need_consent", "en"), zh=say("twin.need_consent", "zh"))
        with ctx.jobs.running(request, TAB) as token:
            result = twin.create_twin_video(
                photo_value, script=script_value or "", voice=None if voice_value in (None, "", "auto") else voice_value,
                audio=audio_value or None, output_size=size_value or "face",
                face_index=int(face_index) if face_index not in (None, "") else None,
                expression=float(expression_value), still=bool(still_value), subtitles=bool(subtitles_value),
                ai_label=bool(label_value), seed=int(seed_value_ if seed_value_ is not None else -1),
                consent=True, runtime=runtime, stop=token, on_progress=progress_callback(progress))
        for note in result.notices:
            (gr.Info if note.level == "info" else gr.Warning)(note.text(lang))
        message = say("twin.done", lang, seconds=result.seconds, frames=result.frames, width=result.width,
                      height=result.height, voice=result.voice, seed=result.seed,
                      took=result.params.get("render_seconds", "?"))
        return result, message

    @zero_gpu(300)
    @friendly_errors
    def create_video(photo_value, script_value, voice_value, audio_value, consent_value, face_index, size_value,
                     expression_value, still_value, subtitles_value, label_value, seed_value_,
                     request: gr.Request, progress=gr.Progress()):
        result, message = render(photo_value, script_value, voice_value, audio_value, consent_value=consent_value,
                                 face_index=face_index, size_value=size_value, expression_value=expression_value,
                                 still_value=still_value, subtitles_value=subtitles_value, label_value=label_value,
                                 seed_value_=seed_value_, request=request, progress=progress)
        return str(result.path), str(result.path), message, result.seed, _history()

    create.click(create_video, [photo, script, voice, recording, consent, face_choice, size, expression, still,
                                subtitles, ai_label, seed], [video, download, info, seed, history],
                 api_visibility="private", **ctx.heavy())

    @zero_gpu(300)
    @friendly_errors
    def create_twin_video(photo, script, voice, audio, request: gr.Request, progress=gr.Progress()):
        """Calling this endpoint declares that you have the right to animate the face in `photo`; every video
        it makes carries a visible "AI-generated" label. photo: image file; script: text to speak (optional
        with audio); voice: a voice name or "auto"; audio: a recording that drives the video instead."""
        result, _ = render(photo, script, voice, audio, consent_value=True, face_index=None, size_value="face",
                           expression_value=1.0, still_value=False, subtitles_value=False, label_value=True,
                           seed_value_=-1, request=request, progress=progress)
        return str(result.path)

    api_trigger.click(create_twin_video, [api_photo, api_script, api_voice, api_audio], video, api_name="create_twin_video",
                      api_description="photo + script + voice (or a voice recording as audio) -> talking-head MP4. "
                                      "Calling it declares you have the right to animate the face; videos carry an "
                                      "'AI-generated' label.", **ctx.heavy())
    def stop_rendering(request: gr.Request) -> None:
        ctx.jobs.stop(request, TAB)  # the pipeline stops at its next frame; the unfinished video is discarded

    stop.click(stop_rendering, None, None, queue=False, api_visibility="private")

    # ---- profiles and history
    def _history():
        return [str(p) for p in twin.list_twin_videos(runtime)] or None

    @friendly_errors
    def save_profile(name, photo_value, voice_value, audio_value, persona_value, request: gr.Request):
        profiles.save_profile(name, photo=photo_value, voice=voice_value, recording=audio_value or None,
                              persona=persona_value or "", runtime=runtime)
        return gr.Dropdown(choices=profiles.list_profiles(runtime), value=name.strip()), \
            say("twin.saved", language_of(request), name=name.strip())

    @friendly_errors
    def load_profile(name, request: gr.Request):
        if not name:
            raise UserError("Choose a profile first.", zh="请先选择一个档案。")
        p = profiles.load_profile(name, runtime)
        return (str(p.photo), p.voice or "auto", str(p.recording) if p.recording else None, p.persona,
                p.name, say("twin.loaded", language_of(request), name=p.name))

    @friendly_errors
    def delete_profile(name, request: gr.Request):
        if name:
            profiles.delete_profile(name, runtime)
        return gr.Dropdown(choices=profiles.list_profiles(runtime), value=None), \
            say("twin.deleted", language_of(request), name=name or "")

    save.click(save_profile, [profile_name, photo, voice, recording, persona], [profile_list, profile_info],
               api_visibility="private")
    load.click(load_profile, profile_list, [photo, voice, recording, persona, profile_name, profile_info],
               api_visibility="private")
    delete.click(delete_profile, profile_list, [profile_list, profile_info], api_visibility="private")
    refresh.click(_history, None, history, api_visibility="private")

    def on_open():
        names = voice_choices(runtime)
        return (gr.Dropdown(choices=names), gr.Dropdown(choices=profiles.list_profiles(runtime)), _history())

    return TabHandles(photo_target=photo, audio_target=recording, script_target=script,
                      on_open=(on_open, [voice, profile_list, history]))
