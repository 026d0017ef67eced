"""My digital twin tab: a wizard (photo -> script -> voice -> animate -> profiles & history) over
``pipelines.twin.pipeline``. Each step is a tab of its own, so people who know the way jump straight to it;
Back/Next walk the others through. API: ``/create_twin_video`` (photo, script, voice, audio, engine) -> MP4.

The event handlers are the top-level functions below (context first, then UI values, then the request);
``build_tab`` only lays out the widgets and wires them.
"""
from __future__ import annotations

import functools
import logging
import re

import gradio as gr
import numpy as np

from pipelines.core.errors import UserError
from pipelines.core.seeds import check_seed
from pipelines.core.settings import ASSETS_DIR
from pipelines.twin import did_keys
from pipelines.twin import pipeline as twin
from pipelines.twin import profiles

from .common import (StudioContext, TabHandles, bind, cancellable, clear_errors_on_success, friendly_errors,
                     language_of, photo_input, progress_callback, provenance_checkbox, show_notices)
from .hosting import zero_gpu
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
        "twin.label_corner": "Label corner (it moves if it would cover the mouth)",
        "twin.corner_tl": "Top left",
        "twin.corner_tr": "Top right",
        "twin.corner_bl": "Bottom left",
        "twin.corner_br": "Bottom right",
        "twin.engine": "Engine (how the face is animated)",
        "twin.engine_cannot_run": "The engine \"{name}\" cannot run here: {reason}. Choose another engine, or install it and open this tab again.",
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
        "twin.choose_profile": "Choose a profile first.",
        "twin.overwrite": "Overwrite the profile of that name",
        "twin.profile_exists": "A profile called \"{name}\" already exists: tick \"Overwrite\" and save again to replace it, or choose another name.",
        "twin.consent_did": "I have the right to animate this face (it is me, or I have the person's permission), and to send this photo to D-ID: with the D-ID engine it leaves this computer",
        "twin.did_settings": "D-ID settings",
        "twin.did_privacy": "With the D-ID engine, the photo and the script (or the recording) are sent to D-ID's servers: they leave this computer, and D-ID's terms apply. D-ID bills each video against your plan's credits; trial videos carry D-ID's watermark.",
        "twin.did_key": "D-ID API key (D-ID Studio → Account settings → API key)",
        "twin.did_remember": "Remember on this computer (a file only you can read)",
        "twin.did_check": "Check key",
        "twin.did_forget": "Forget key",
        "twin.did_credits": "The key works: {remaining:g} of {total:g} credits left.",
        "twin.did_kept_session": "The key is kept for this browser session only.",
        "twin.did_kept_computer": "The key is remembered on this computer.",
        "twin.did_remember_refused": "Remembering a key is offered only on the computer the studio runs on (or when signed in): it is kept for this browser session only.",
        "twin.did_key_session": "A D-ID key is set for this browser session.",
        "twin.did_key_remembered": "A D-ID key is remembered on this computer.",
        "twin.did_key_env": "The studio's own D-ID key (AIGC_DID_API_KEY) will be used.",
        "twin.did_no_key": "No D-ID key yet: paste yours above and press Check key.",
        "twin.did_forgotten": "The D-ID key is forgotten (this browser session and this computer).",
        "twin.did_check_failed": "⚠ {error}",
        "twin.persona_default": "a friendly science teacher",
        "twin.topic_default": "why the sky is blue",
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
        "twin.label_corner": "标识位置（若会挡住嘴巴则自动移开）",
        "twin.corner_tl": "左上",
        "twin.corner_tr": "右上",
        "twin.corner_bl": "左下",
        "twin.corner_br": "右下",
        "twin.engine": "引擎（让人脸动起来的方式）",
        "twin.engine_cannot_run": "引擎“{name}”无法在此运行：{reason}。请选择其他引擎，或安装它后重新打开此页。",
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
        "twin.choose_profile": "请先选择一个档案。",
        "twin.overwrite": "覆盖同名档案",
        "twin.profile_exists": "名为“{name}”的档案已存在：如要替换，请勾选“覆盖”后再次保存，或换一个名字。",
        "twin.consent_did": "我有权让这张脸动起来（是我本人，或已获得本人许可），并同意把这张照片发送给 D-ID：使用 D-ID 引擎时照片会离开本机",
        "twin.did_settings": "D-ID 设置",
        "twin.did_privacy": "使用 D-ID 引擎时，照片和脚本（或录音）会发送到 D-ID 的服务器：它们会离开本机，并适用 D-ID 的条款。D-ID 按视频从你的套餐额度中扣费；试用账户的视频带有 D-ID 水印。",
        "twin.did_key": "D-ID API 密钥（D-ID Studio → 账户设置 → API 密钥）",
        "twin.did_remember": "在这台电脑上记住（保存为只有你能读取的文件）",
        "twin.did_check": "检查密钥",
        "twin.did_forget": "忘记密钥",
        "twin.did_credits": "密钥可用：剩余 {remaining:g} / {total:g} 额度。",
        "twin.did_kept_session": "密钥仅在本次浏览器会话中保留。",
        "twin.did_kept_computer": "密钥已记在这台电脑上。",
        "twin.did_remember_refused": "只有在运行工作室的这台电脑上（或登录后）才能记住密钥：密钥仅在本次浏览器会话中保留。",
        "twin.did_key_session": "本次浏览器会话已设置 D-ID 密钥。",
        "twin.did_key_remembered": "这台电脑上记有一个 D-ID 密钥。",
        "twin.did_key_env": "将使用工作室自己的 D-ID 密钥（AIGC_DID_API_KEY）。",
        "twin.did_no_key": "还没有 D-ID 密钥：请在上方粘贴你的密钥并点击“检查密钥”。",
        "twin.did_forgotten": "已忘记 D-ID 密钥（本次浏览器会话和这台电脑）。",
        "twin.did_check_failed": "⚠ {error}",
        "twin.persona_default": "一位友好的科学老师",
        "twin.topic_default": "天空为什么是蓝色的",
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


# An engine that cannot run here is listed as "name — reason"; assets/studio.css greys the options of
# #twin-engine whose label holds this separator (a runnable engine's label is its bare name).
CANNOT_RUN_SEPARATOR = " — "


def engine_choices(ctx: StudioContext, lang: str = "en") -> list[tuple[str, str]]:
    """(label, name) for every twin engine in the catalog: runnable ones first, the others with why not."""
    runnable, other = [], []
    for spec, state in ctx.catalog.available("twin", check_network=False):
        if state.ok:
            runnable.append((spec.name, spec.name))
        else:
            reason = state.reason_zh if lang == "zh" and state.reason_zh else state.reason
            other.append((f"{spec.name}{CANNOT_RUN_SEPARATOR}{reason}", spec.name))
    return runnable + other


def check_engine(ctx: StudioContext, name: str, key_supplied: bool = False) -> str:
    """The engine's name when it can run here; else a UserError that says why and what to do.
    ``key_supplied``: this browser session has the API key a cloud engine (D-ID) needs."""
    name = (name or "").strip() or "classic"
    spec = ctx.catalog.get("twin", name)  # unknown names: a clear error listing the known ones
    from pipelines.core.catalog import availability

    state = availability(spec, check_network=False)
    if not state.ok and not (spec.source_kind == "cloud" and key_supplied):
        raise UserError(say("twin.engine_cannot_run", "en", name=spec.name, reason=state.reason),
                        zh=say("twin.engine_cannot_run", "zh", name=spec.name, reason=state.reason_zh or state.reason))
    return spec.name


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


# ---------------------------------------------------------------- handlers: navigation and photo
def go_to_step(step: str):
    return gr.Tabs(selected=step)


@friendly_errors
def find_faces(ctx: StudioContext, photo_value, request: gr.Request):
    """A new photo: box and number its faces, offer them in the face list (say why now if none fits)."""
    lang = language_of(request)
    if not photo_value:
        return None, gr.Dropdown(choices=[], value=None), say("twin.no_face_yet", lang)
    from pipelines.face.landmarks import detect_faces

    ctx.sessions.check_input(request, photo_value)
    image = twin.load_photo(photo_value)
    faces = detect_faces(image, runtime=ctx.runtime)
    twin.choose_face(faces, 0)  # no face or a tiny one: say why now, not after the render
    choices = [(say("twin.face_largest", lang) if i == 0 else say("twin.face_label", lang, n=i + 1), i)
               for i in range(len(faces))]
    return annotate_faces(image, faces), gr.Dropdown(choices=choices, value=0), say("twin.found", lang, n=len(faces))


# ---------------------------------------------------------------- handlers: script
@friendly_errors
def write_script(ctx: StudioContext, persona: str, topic: str, seconds: float, language: str,
                 request: gr.Request):
    """"Write script": a script of about that length, in that language, as that persona."""
    from pipelines.text.generation import write_twin_script

    lang = language_of(request)
    with ctx.jobs.running(request, TAB) as token:
        result = write_twin_script(persona, topic, seconds=float(seconds), language=language,
                                   runtime=ctx.runtime, stop=token)
    show_notices(result.notices, lang)
    return result.text


# ---------------------------------------------------------------- handlers: animate
def warn_if_engine_cannot_run(ctx: StudioContext, engine: str, request: gr.Request) -> None:
    """Right when an engine is picked: say if it cannot run here (the Create button would refuse it).
    Cloud engines are left to their settings panel, which says what key they need."""
    try:
        check_engine(ctx, engine, key_supplied=(engine or "").strip() == "did")
    except UserError as exc:
        gr.Warning(exc.text(language_of(request)))


def render_twin(ctx: StudioContext, *, photo, script, voice, audio, consent: bool, face_index=None,
                output_size: str = "face", expression: float = 1.0, still: bool = False, subtitles: bool = False,
                ai_label: bool = True, seed=-1, engine: str = "classic", did_key=None, label_corner: str = "top-left",
                provenance: bool = True, request=None, progress=None):
    """The one way both the wizard and the API make a video: checks, the pipeline, notices shown.
    ``did_key``: this browser session's D-ID key (the D-ID engine uses it, else one this caller may use)."""
    lang = language_of(request)
    if not consent:
        raise UserError(say("twin.need_consent", "en"), zh=say("twin.need_consent", "zh"))
    check_seed(seed)  # out of range: the same message as every tab, before any work
    ctx.sessions.check_input(request, photo, audio)
    key = did_key_for(did_key, request)
    engine = check_engine(ctx, engine, key_supplied=key is not None)
    runtime = ctx.runtime_for(request)  # the video goes into this person's own folder
    with ctx.jobs.running(request, TAB) as token, did_keys.use_key(key):
        result = twin.create_twin_video(
            photo, script=script or "", voice=None if voice in (None, "", "auto") else voice,
            audio=audio or None, output_size=output_size or "face",
            face_index=int(face_index) if face_index not in (None, "") else None,
            expression=float(expression), still=bool(still), subtitles=bool(subtitles), ai_label=bool(ai_label),
            seed=-1 if seed in (None, "") else seed, engine=engine, language=lang, label_corner=label_corner or "top-left",
            provenance=bool(provenance), consent=True, runtime=runtime, stop=token,
            on_progress=progress_callback(progress, lang))
    show_notices(result.notices, lang)
    return result


def done_message(result, lang: str) -> str:
    return say("twin.done", lang, seconds=result.seconds, frames=result.frames, width=result.width,
               height=result.height, voice=result.voice, seed=result.seed,
               took=result.params.get("render_seconds", "?"))


@friendly_errors
def create_video(ctx: StudioContext, photo, script, voice, recording, consent, face_index, size, expression,
                 still, subtitles, ai_label, seed, engine, did_key=None, label_corner="top-left", provenance=True,
                 request: gr.Request = None, progress=gr.Progress()):
    """The wizard's Create button. The seed box keeps what the user typed (-1 stays -1); the seed used
    is in the message, to be reused. ``did_key``: the session's D-ID key (a gr.State, kept on the server)."""
    result = render_twin(ctx, photo=photo, script=script, voice=voice, audio=recording, consent=consent,
                         face_index=face_index, output_size=size, expression=expression, still=still,
                         subtitles=subtitles, ai_label=ai_label, seed=seed, engine=engine, did_key=did_key,
                         label_corner=label_corner, provenance=provenance, request=request, progress=progress)
    path = str(result.path)
    return path, path, done_message(result, language_of(request)), list_history(ctx, request)


@friendly_errors
def create_twin_video(ctx: StudioContext, photo, script, voice, audio, engine, request: gr.Request,
                      progress=gr.Progress()):
    """Calling this endpoint declares that you have the right to animate the face in `photo`; every video
    it makes carries a visible "AI-generated" label. photo: image file; script: text to speak (optional
    with audio); voice: a voice name or "auto"; audio: a recording that drives the video instead;
    engine: a twin engine of the catalog (default "classic")."""
    result = render_twin(ctx, photo=photo, script=script, voice=voice, audio=audio, consent=True,
                         engine=engine or "classic", request=request, progress=progress)
    return str(result.path)


def stop_rendering(ctx: StudioContext, request: gr.Request) -> None:
    ctx.jobs.stop(request, TAB)  # the pipeline stops at its next frame; the unfinished video is discarded


# ---------------------------------------------------------------- handlers: D-ID settings
# The key lives in a gr.State (this browser session, on the server, never sent back to the page) and, when
# "remember on this computer" is ticked, in a 0600 file (pipelines.twin.did_keys). No handler ever returns
# it to a component: the key box is emptied once the key is taken.
def did_owner(request) -> str | None:
    """Whose remembered key this browser may use: the signed-in user's, or "local" on the studio's own
    computer; None for anyone else (a remembered key is never offered to another user)."""
    from api.did import is_loopback_host

    username = getattr(request, "username", None)
    if username:
        return f"user-{username}"
    client = getattr(request, "client", None)
    return did_keys.LOCAL_OWNER if is_loopback_host(getattr(client, "host", None)) else None


def did_key_for(session_key, request):
    """The D-ID key for this caller: the session's, else the one remembered for them, else the studio's own
    (AIGC_DID_API_KEY); None when there is none."""
    if session_key is not None:
        return session_key
    owner = did_owner(request)
    return (did_keys.remembered_key(owner) if owner else None) or did_keys.environment_key()


def did_key_status(session_key, request) -> str:
    lang = language_of(request)
    if session_key is not None:
        return say("twin.did_key_session", lang)
    owner = did_owner(request)
    if owner and did_keys.remembered_key(owner) is not None:
        return say("twin.did_key_remembered", lang)
    if did_keys.environment_key() is not None:
        return say("twin.did_key_env", lang)
    return say("twin.did_no_key", lang)


def engine_settings(ctx: StudioContext, engine: str, consent: bool, session_key, request: gr.Request):
    """An engine was picked: show its settings (D-ID: key, credits, privacy) and the consent text that fits.
    Switching to D-ID unticks the consent box: the new text (the photo leaves this computer) needs a new yes."""
    lang = language_of(request)
    is_did = (engine or "").strip() == "did"
    label = say("twin.consent_did" if is_did else "twin.consent", lang)
    return (gr.Group(visible=is_did), did_key_status(session_key, request) if is_did else "",
            gr.Checkbox(label=label, value=False if is_did else consent))


def check_did_key(ctx: StudioContext, key_text: str, remember: bool, session_key, request: gr.Request):
    """Check key: the pasted key (or the one in use) against D-ID's credits. A good key is kept for this
    session, and on this computer when asked; the key box is emptied either way. Returns (session key,
    key box, status)."""
    from pipelines.twin.did_client import ApiKey, DIDClient, DIDError

    lang = language_of(request)
    try:
        key = ApiKey(key_text) if (key_text or "").strip() else did_key_for(session_key, request)
        if key is None:
            return session_key, "", say("twin.did_no_key", lang)
        credits = DIDClient(key).check_key()
    except DIDError as exc:
        keep = exc.status in (429,) or exc.status >= 500  # D-ID busy or down: the key may well be good
        kept = key if keep else session_key
        return kept, "", say("twin.did_check_failed", lang, error=exc.text(lang))
    except UserError as exc:
        return session_key, "", say("twin.did_check_failed", lang, error=exc.text(lang))
    message = say("twin.did_credits", lang, remaining=credits.remaining, total=credits.total)
    if remember:
        owner = did_owner(request)
        if owner is None:
            message += " " + say("twin.did_remember_refused", lang)
        else:
            did_keys.remember_key(key, owner)
            message += " " + say("twin.did_kept_computer", lang)
    else:
        message += " " + say("twin.did_kept_session", lang)
    return key, "", message


def forget_did_key(ctx: StudioContext, request: gr.Request):
    """Forget key: this session's, and the one remembered on this computer for this user."""
    owner = did_owner(request)
    if owner:
        did_keys.forget_key(owner)
    return None, "", say("twin.did_forgotten", language_of(request))


# ---------------------------------------------------------------- handlers: profiles and history
# Each person sees, loads, overwrites and deletes only their own profiles and videos: every handler works in
# ``ctx.runtime_for(request)``, the caller's own outputs folder (aigc_ui/sessions.py says whose is whose).
def list_history(ctx: StudioContext, request: gr.Request):
    return [str(p) for p in twin.list_twin_videos(ctx.runtime_for(request))] or None


def store_profile(ctx: StudioContext, request, name, photo, voice, recording, persona, overwrite: bool):
    """Save a profile in the caller's folder (checks first: whose files the inputs are, the name)."""
    ctx.sessions.check_input(request, photo, recording)
    voice = None if voice in (None, "", "auto") else str(voice)
    if voice is not None and not re.fullmatch(r"espeak-ng(:[\w\-]+)?", voice):
        ctx.catalog.get("voice", voice)  # a catalog voice only: the strict catalog says "unknown" to a path
    return profiles.save_profile(name, photo=photo, voice=voice, recording=recording or None,
                                 persona=persona or "", runtime=ctx.runtime_for(request), overwrite=bool(overwrite))


@friendly_errors
def save_profile(ctx: StudioContext, name, photo, voice, recording, persona, overwrite=False,
                 request: gr.Request = None):
    """Save photo + voice + persona; an existing profile of that name is replaced only when "Overwrite" is
    ticked (else the message says so and nothing changes)."""
    lang = language_of(request)
    try:
        profile = store_profile(ctx, request, name, photo, voice, recording, persona, overwrite)
    except profiles.ProfileExists as exc:
        return gr.Dropdown(), gr.Checkbox(visible=True), say("twin.profile_exists", lang, name=exc.name)
    return (gr.Dropdown(choices=profiles.list_profiles(ctx.runtime_for(request)), value=profile.name),
            gr.Checkbox(value=False), say("twin.saved", lang, name=profile.name))


@friendly_errors
def load_profile(ctx: StudioContext, name, request: gr.Request):
    if not name:
        raise UserError(say("twin.choose_profile", "en"), zh=say("twin.choose_profile", "zh"))
    p = profiles.load_profile(name, ctx.runtime_for(request))
    return (str(p.photo), p.voice or "auto", str(p.recording) if p.recording else None, p.persona,
            p.name, say("twin.loaded", language_of(request), name=p.name))


@friendly_errors
def delete_profile(ctx: StudioContext, name, request: gr.Request):
    runtime = ctx.runtime_for(request)
    if name:
        profiles.delete_profile(name, runtime)
    return (gr.Dropdown(choices=profiles.list_profiles(runtime), value=None),
            say("twin.deleted", language_of(request), name=name or ""))


def on_open(ctx: StudioContext, request: gr.Request):
    """When the tab is opened: the voices, engines, profiles and videos there are now."""
    lang = language_of(request)
    return (gr.Dropdown(choices=voice_choices(ctx.runtime)), gr.Dropdown(choices=engine_choices(ctx, lang)),
            gr.Dropdown(choices=profiles.list_profiles(ctx.runtime_for(request))), list_history(ctx, request))


# ---------------------------------------------------------------- API: profiles and history (the caller's own)
@friendly_errors
def save_profile_api(ctx: StudioContext, name, photo, voice, audio, persona, overwrite=False,
                     request: gr.Request = None) -> str:
    """Save photo + voice (a voice name) or audio (your recording) + persona as the profile `name`. A profile of
    that name is replaced only with overwrite=True; otherwise the call fails and says so. Returns the name."""
    return store_profile(ctx, request, name, photo, voice, audio, persona, overwrite).name


@friendly_errors
def list_profiles_api(ctx: StudioContext, request: gr.Request) -> list[str]:
    """The names of your saved profiles."""
    return profiles.list_profiles(ctx.runtime_for(request))


@friendly_errors
def load_profile_api(ctx: StudioContext, name, request: gr.Request):
    """Your profile `name`: (photo, voice, audio recording or None, persona)."""
    p = profiles.load_profile(name, ctx.runtime_for(request))
    return str(p.photo), p.voice or "auto", str(p.recording) if p.recording else None, p.persona


@friendly_errors
def delete_profile_api(ctx: StudioContext, name: str, request: gr.Request) -> bool:
    """Delete your profile `name`; False when you have none of that name."""
    return profiles.delete_profile(name, ctx.runtime_for(request))


@friendly_errors
def twin_history_api(ctx: StudioContext, request: gr.Request):
    """Your twin videos, newest first."""
    return list_history(ctx, request) or []


def on_load(ctx: StudioContext, request: gr.Request):
    """When the page loads: the script writer's defaults in the page's language."""
    lang = "zh" if language_of(request, ctx.config.language) == "zh" else "en"
    return lang, say("twin.persona_default", lang), say("twin.topic_default", lang)


# ---------------------------------------------------------------- layout and wiring
def build_tab(ctx: StudioContext) -> TabHandles:
    gr.Markdown(t("twin.intro"))
    with gr.Tabs(selected="photo") as steps:
        # ---- 1. photo
        with gr.Tab(t("twin.step_photo"), id="photo"):
            with gr.Row():
                with gr.Column():
                    photo = photo_input(label=t("twin.photo"), sources=["upload", "webcam", "clipboard"], height=360)
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
                    persona = gr.Textbox(label=t("twin.persona"))  # defaults in the page's language: on_load
                    topic = gr.Textbox(label=t("twin.topic"))
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
                    engine = gr.Dropdown(label=t("twin.engine"), choices=engine_choices(ctx), value="classic",
                                         allow_custom_value=True, elem_id="twin-engine")
                    with gr.Group(visible=False) as did_settings:
                        gr.Markdown(t("twin.did_privacy"))
                        did_key_box = gr.Textbox(label=t("twin.did_key"), type="password", value="")
                        did_remember = gr.Checkbox(label=t("twin.did_remember"), value=False)
                        with gr.Row():
                            did_check = gr.Button(t("twin.did_check"))
                            did_forget = gr.Button(t("twin.did_forget"))
                        did_status = gr.Markdown()
                    did_key = gr.State(None)  # this browser session's D-ID key, held on the server
                    size = gr.Radio([(t("twin.size_face"), "face"), (t("twin.size_photo"), "photo")], value="face",
                                    label=t("twin.size"))
                    expression = gr.Slider(0, 2, value=1.0, step=0.1, label=t("twin.expression"))
                    with gr.Row():
                        still = gr.Checkbox(label=t("twin.still"), value=False)
                        subtitles = gr.Checkbox(label=t("twin.subtitles"), value=False)
                        ai_label = gr.Checkbox(label=t("twin.ai_label"), value=True)
                    label_corner = gr.Radio([(t("twin.corner_tl"), "top-left"), (t("twin.corner_tr"), "top-right"),
                                             (t("twin.corner_bl"), "bottom-left"), (t("twin.corner_br"), "bottom-right")],
                                            value="top-left", label=t("twin.label_corner"))
                    mark = provenance_checkbox()
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
                profile_name = gr.Textbox(label=t("twin.profile_name"), max_length=60)
                overwrite = gr.Checkbox(label=t("twin.overwrite"), value=False, visible=False)
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
        api_engine = gr.Textbox(value="classic")
        # the profile endpoints' own inputs and outputs
        profile_trigger, load_trigger, history_trigger = gr.Button(), gr.Button(), gr.Button()
        api_profile_name, api_persona, api_overwrite = gr.Textbox(), gr.Textbox(), gr.Checkbox(value=False)
        api_saved = gr.Textbox()
        api_out_photo, api_out_audio = gr.File(), gr.File()
        api_out_voice, api_out_persona = gr.Textbox(), gr.Textbox()
        api_history = gr.File(file_count="multiple")

    # Profiles and history for scripts: each call acts on the caller's own data only. (Wired before the
    # page's own events, whose handlers share these names: the API keeps the plain names.)
    profile_trigger.click(bind(save_profile_api, ctx),
                          [api_profile_name, api_photo, api_voice, api_audio, api_persona, api_overwrite], api_saved,
                          api_name="save_profile", api_description=save_profile_api.__doc__)
    gr.api(bind(list_profiles_api, ctx), api_name="list_profiles", api_description=list_profiles_api.__doc__)
    load_trigger.click(bind(load_profile_api, ctx), api_profile_name,
                       [api_out_photo, api_out_voice, api_out_audio, api_out_persona],
                       api_name="load_profile", api_description=load_profile_api.__doc__)
    gr.api(bind(delete_profile_api, ctx), api_name="delete_profile", api_description=delete_profile_api.__doc__)
    history_trigger.click(bind(twin_history_api, ctx), None, api_history, api_name="twin_history",
                          api_description=twin_history_api.__doc__)

    private = dict(api_visibility="private")
    for button, target in ((next_1, "script"), (back_2, "photo"), (next_2, "voice"), (back_3, "script"),
                           (next_3, "animate"), (back_4, "voice"), (back_5, "animate")):
        button.click(functools.partial(go_to_step, target), None, steps, queue=False, **private)
    found = photo.change(bind(find_faces, ctx), photo, [faces_view, face_choice, faces_info],
                         show_progress_on=faces_view, **private)
    written = write.click(cancellable(bind(write_script, ctx)), [persona, topic, seconds, language], script, **private,
                          **ctx.concurrency("text"))
    engine.input(bind(warn_if_engine_cannot_run, ctx), engine, None, queue=False, **private)
    engine.change(bind(engine_settings, ctx), [engine, consent, did_key], [did_settings, did_status, consent],
                  queue=False, **private)
    did_check.click(bind(check_did_key, ctx), [did_key_box, did_remember, did_key], [did_key, did_key_box, did_status],
                    **private)
    did_forget.click(bind(forget_did_key, ctx), None, [did_key, did_key_box, did_status], queue=False, **private)
    created = create.click(cancellable(zero_gpu(300)(bind(create_video, ctx))),
                           [photo, script, voice, recording, consent, face_choice, size, expression, still, subtitles,
                            ai_label, seed, engine, did_key, label_corner, mark], [video, download, info, history],
                           show_progress_on=video, **private, **ctx.concurrency("video"))  # one progress bar
    api_trigger.click(cancellable(zero_gpu(300)(bind(create_twin_video, ctx))),
                      [api_photo, api_script, api_voice, api_audio, api_engine], video,
                      api_name="create_twin_video",
                      api_description="photo + script + voice (or a voice recording as audio) -> talking-head MP4, "
                                      "made by the engine named (default classic). Calling it declares you have "
                                      "the right to animate the face; videos carry an 'AI-generated' label.",
                      **ctx.concurrency("video"))
    stop.click(bind(stop_rendering, ctx), None, None, queue=False, **private)
    saved = save.click(bind(save_profile, ctx), [profile_name, photo, voice, recording, persona, overwrite],
                       [profile_list, overwrite, profile_info], **private)
    loaded = load.click(bind(load_profile, ctx), profile_list,
                        [photo, voice, recording, persona, profile_name, profile_info], **private)
    deleted = delete.click(bind(delete_profile, ctx), profile_list, [profile_list, profile_info], **private)
    clear_errors_on_success(found, written, created, saved, loaded, deleted)
    refresh.click(bind(list_history, ctx), None, history, **private)

    return TabHandles(photo_target=photo, audio_target=recording, script_target=script, wizard=steps,
                      voice_target=voice, persona_target=persona,
                      on_open=(bind(on_open, ctx), [voice, engine, profile_list, history]),
                      on_load=(bind(on_load, ctx), [language, persona, topic]))
