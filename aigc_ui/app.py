"""Assemble the studio: one Blocks, one tab per module, one shared model cache, cross-tab buttons.

Building the UI loads no model: models load lazily, through the cache, when a tab first needs one.
"""
from __future__ import annotations

import functools
import logging

import gradio as gr
from starlette.middleware import Middleware

from api import did as did_api
from pipelines.core import cpu, media, owners
from pipelines.core.cache import ModelCache
from pipelines.core.outputs import remove_partial_files
from pipelines.core.runtime import Runtime
from pipelines.core.settings import ASSETS_DIR, AppConfig

from . import (batch_tab, chat_tab, face_tab, image_tab, models_tab, my_data, provenance_tab, text_tab, twin_tab,
               voice_tab)
from .common import StudioContext, TabHandles
from .i18n import t, translations
from .language import PageLanguageMiddleware
from .sessions import SessionMiddleware

# (tab id, label key, module) in the order users see them
TABS = (
    ("text", "tab.text", text_tab),
    ("face", "tab.face", face_tab),
    ("image", "tab.image", image_tab),
    ("voice", "tab.voice", voice_tab),
    ("twin", "tab.twin", twin_tab),
    ("chat", "tab.chat", chat_tab),
    ("batch", "tab.batch", batch_tab),
    ("provenance", "tab.provenance", provenance_tab),
    ("models", "tab.models", models_tab),
)

# Plain links (same tab): the page reloads in the chosen language, remembered by the browser.
LANGUAGE_LINKS = ('Language / 语言: <a href="?lang=en" target="_self">English</a> · '
                  '<a href="?lang=zh" target="_self">中文</a>')

CSS = (ASSETS_DIR / "studio.css").read_text(encoding="utf-8") if (ASSETS_DIR / "studio.css").is_file() else ""


def build_app(config: AppConfig, cache: ModelCache | None = None) -> gr.Blocks:
    config.ensure_dirs()
    cpu.prepare_blas_control()  # now, in the main thread: never from a worker thread (see pipelines/core/cpu.py)
    media.bundled_ffmpeg_first_on_path()  # Gradio's streaming runs `ffmpeg` per segment: the quick-starting one
    # Requests name models by catalog name only (strict): never a path or a hub id
    ctx = StudioContext(config=config, runtime=Runtime.from_config(config, cache, strict=True))
    prepare_outputs(ctx)
    handles: dict[str, TabHandles] = {}
    with gr.Blocks(title="AIGC Digital-Twin Studio", analytics_enabled=False) as demo:
        gr.Markdown(t("app.title"), elem_id="studio-title")
        gr.Markdown(t("app.subtitle"))
        with gr.Tabs() as tabs:
            for tab_id, label, module in TABS:
                with gr.Tab(t(label), id=tab_id) as tab:
                    handles[tab_id] = module.build_tab(ctx)
                if handles[tab_id].on_open:
                    handler, inputs, outputs = _event_parts(handles[tab_id].on_open)
                    tab.select(handler, inputs, outputs, queue=False, api_visibility="private")
        my_data.build_panel(ctx, demo)
        gr.HTML(LANGUAGE_LINKS, elem_classes=["footnote"])
        _wire_cross_tab(handles, tabs)
        for tab_handles in handles.values():
            if tab_handles.on_load:
                handler, inputs, outputs = _event_parts(tab_handles.on_load)
                demo.load(handler, inputs, outputs, queue=False, api_visibility="private")
    demo.studio_context = ctx  # for tests and benchmarks: the cache this app uses
    return demo


def _event_parts(event: tuple) -> tuple:
    """(handler, outputs) or (handler, inputs, outputs) -> (handler, inputs or None, outputs)."""
    return (event[0], None, event[1]) if len(event) == 2 else event


def prepare_outputs(ctx: StudioContext) -> None:
    """Start-up: clear what a crash left half-written, expire old anonymous outputs (now and periodically),
    and serve the owners' folders in place, where SessionMiddleware checks each request's owner."""
    outputs = ctx.config.outputs_dir
    remove_partial_files(outputs)
    ctx.sessions.start_expiry()
    users = outputs / owners.USERS_FOLDER
    users.mkdir(parents=True, exist_ok=True)
    gr.set_static_paths([users])


# Which wizard step shows a value sent from another tab
WIZARD_STEPS = {"photo": "photo", "audio": "voice", "script": "script"}


def send_to_twin(value, step: str):
    """"Use as twin photo/voice/script": the value goes into the wizard, which opens on the step that shows it."""
    return value, gr.Tabs(selected="twin"), gr.Tabs(selected=step)


def _wire_cross_tab(handles: dict[str, TabHandles], tabs: gr.Tabs) -> None:
    twin = handles["twin"]
    for h in handles.values():
        for kind, button, source, target in (("photo", h.send_photo, h.photo_source, twin.photo_target),
                                             ("audio", h.send_audio, h.audio_source, twin.audio_target),
                                             ("script", h.send_script, h.script_source, twin.script_target)):
            if button is not None and source is not None and target is not None:
                button.click(functools.partial(send_to_twin, step=WIZARD_STEPS[kind]), source,
                             [target, tabs, twin.wizard], api_visibility="private")
        # "Use the twin wizard's photo, voice and persona" (Talk to my twin)
        wizard = [twin.photo_target, twin.voice_target, twin.persona_target]
        if h.wizard_choices_button is not None and None not in wizard:
            h.wizard_choices_button.click(chat_tab.pass_wizard_choices, wizard, h.wizard_choices_targets,
                                          api_visibility="private")


def launch_kwargs(config: AppConfig) -> dict:
    """Server options: what may be served, upload limits, auth, language."""
    return dict(
        server_name=config.host,
        server_port=config.port,
        share=config.share,
        auth=config.credentials or None,
        max_file_size=f"{config.max_upload_mb}mb",
        # Only our outputs and assets may be fetched; models/ and everything else stay private. Under outputs/,
        # SessionMiddleware serves a person's folder to that person only, and nothing else directly.
        allowed_paths=[str(config.outputs_dir), str(ASSETS_DIR)],
        blocked_paths=[str(config.models_dir), str(config.outputs_dir / owners.SECRET_FILE)],
        i18n=translations(),
        css=CSS,
        show_error=True,
        app_kwargs={"middleware": [Middleware(PageLanguageMiddleware, default=config.language),
                                   Middleware(SessionMiddleware)],
                    "routes": [did_api.mount(config)]},  # the D-ID-compatible REST API under /did/
    )


def queue_kwargs(config: AppConfig) -> dict:
    # Light events (lists, metadata) run many at once; each kind of heavy work has its own queue and
    # limit (StudioContext.concurrency, sized in capacity.py), so text never waits behind videos.
    return dict(default_concurrency_limit=4, max_size=64)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
