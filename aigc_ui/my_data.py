"""The "Your data" panel under the tabs: the private profile key that keeps a person's twin across visits
(made on the first visit, kept in this browser, shown so it can be copied to another device and pasted
back there), and one button that deletes everything the person made.

API: ``/delete_my_data()`` deletes everything the caller made (profiles, recordings, videos, texts).
The handlers are the top-level functions below; ``build_panel`` lays out and wires (see sessions.py for
how requests map to owners).
"""
from __future__ import annotations

import gradio as gr

from pipelines.core import owners
from pipelines.core.errors import UserError

from .common import StudioContext, bind, friendly_errors, language_of
from .i18n import add_strings, say, t
from .sessions import BROWSER_KEY_STORAGE

add_strings(
    en={
        "data.title": "Your data on this studio",
        "data.intro_key": "Your photos, recordings, profiles and videos are visible to you only. This browser keeps them under the **private key** below: copy it to open your twin on another device (paste it there), and keep it to yourself: whoever has it sees your things. Videos made without a key (for example by scripts that send none) are deleted after {hours:g} hours.",
        "data.intro_user": "Your photos, recordings, profiles and videos are visible to you only: they are kept under your user name, **{user}**.",
        "data.intro_shared": "This studio keeps **one shared gallery**: everyone using it sees, loads and deletes everyone's profiles and videos.",
        "data.key": "Your private key (copy it)",
        "data.paste": "Use a key from another device",
        "data.use": "Use this key",
        "data.delete_all": "Delete everything I made (profiles, recordings, videos)",
        "data.using": "This browser now uses the key you pasted: you see what was made with it.",
        "data.deleted": "Deleted everything you made ({n} files).",
    },
    zh={
        "data.title": "你在本工作室的数据",
        "data.intro_key": "你的照片、录音、档案和视频只有你能看到。本浏览器用下面的**私人密钥**保存它们：复制密钥后在另一台设备上粘贴，即可打开你的数字分身；请妥善保管，拥有密钥的人都能看到你的内容。没有密钥时生成的视频（例如未发送密钥的脚本）会在 {hours:g} 小时后删除。",
        "data.intro_user": "你的照片、录音、档案和视频只有你能看到：它们保存在你的用户名 **{user}** 下。",
        "data.intro_shared": "本工作室使用**一个共享画廊**：所有使用者都能看到、载入和删除所有人的档案和视频。",
        "data.key": "你的私人密钥（请复制）",
        "data.paste": "使用来自另一台设备的密钥",
        "data.use": "使用此密钥",
        "data.delete_all": "删除我生成的全部内容（档案、录音、视频）",
        "data.using": "本浏览器已改用你粘贴的密钥：你会看到用它生成的内容。",
        "data.deleted": "已删除你生成的全部内容（{n} 个文件）。",
    },
)


def intro(ctx: StudioContext, request: gr.Request) -> str:
    lang = language_of(request)
    mode = ctx.sessions.mode
    if mode == "shared":
        return say("data.intro_shared", lang)
    if mode == "user":
        return say("data.intro_user", lang, user=getattr(request, "username", "") or "?")
    return say("data.intro_key", lang, hours=ctx.config.anonymous_ttl_hours)


def restore_key(ctx: StudioContext, stored_key, request: gr.Request):
    """Page load: this browser's key (made now on a first visit) names its owner from here on.
    Returns (the key for the browser to keep, the key shown, the panel's text)."""
    if ctx.sessions.mode == "user":
        ctx.sessions.bind_user(request)  # its file requests are recognised too
        return gr.skip(), gr.skip(), intro(ctx, request)
    if ctx.sessions.mode == "shared":
        return gr.skip(), gr.skip(), intro(ctx, request)
    key = stored_key if owners.valid_key(stored_key) else owners.new_key()
    ctx.sessions.bind_key(request, key)
    return key, key, intro(ctx, request)


@friendly_errors
def use_key(ctx: StudioContext, pasted: str, request: gr.Request):
    """Paste a key from another device: this browser keeps it and works with its things from now on."""
    if ctx.sessions.mode != "key":
        raise UserError("Profile keys are not used on this studio.", zh="本工作室不使用档案密钥。")
    key = (pasted or "").strip()
    ctx.sessions.bind_key(request, key)  # not a key: a clear message
    return key, key, "", say("data.using", language_of(request))


@friendly_errors
def delete_my_data(ctx: StudioContext, request: gr.Request) -> str:
    """Delete everything you made on this studio: profiles, recordings, videos, texts. Returns what happened."""
    ctx.jobs.cancel_session(request)  # a job still running would write into the folder again
    count = ctx.sessions.delete_everything(request)
    return say("data.deleted", language_of(request), n=count)


def end_session(ctx: StudioContext, request: gr.Request) -> None:
    """The browser tab was closed: its running jobs stop and keep nothing."""
    ctx.jobs.cancel_session(request)


def build_panel(ctx: StudioContext, demo: gr.Blocks) -> None:
    with gr.Accordion(t("data.title"), open=False, elem_id="my-data"):
        text = gr.Markdown()
        with gr.Group(visible=ctx.sessions.mode == "key"):
            key_box = gr.Textbox(label=t("data.key"), interactive=False, buttons=["copy"], elem_id="profile-key")
            with gr.Row():
                pasted = gr.Textbox(label=t("data.paste"), type="password", scale=3)
                use = gr.Button(t("data.use"), scale=1)
        delete = gr.Button(t("data.delete_all"), variant="stop", size="sm", visible=ctx.sessions.mode != "shared")
        status = gr.Markdown()
    browser_key = gr.BrowserState(None, storage_key=BROWSER_KEY_STORAGE, secret=ctx.sessions.browser_secret())

    private = dict(api_visibility="private")
    demo.load(bind(restore_key, ctx), browser_key, [browser_key, key_box, text], queue=False, **private)
    use.click(bind(use_key, ctx), pasted, [browser_key, key_box, pasted, status], queue=False, **private)
    delete.click(bind(delete_my_data, ctx), None, status, api_name="delete_my_data",
                 api_description=delete_my_data.__doc__)
    demo.unload(bind(end_session, ctx))
