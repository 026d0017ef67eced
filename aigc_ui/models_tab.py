"""The Models tab: the catalog (what exists, can it run here, licence) and the loaded models."""
from __future__ import annotations

import gradio as gr

from pipelines.core.catalog import TASKS, availability

from .common import StudioContext, TabHandles, friendly_errors, language_of
from .i18n import say, t


def catalog_rows(ctx: StudioContext, language: str = "en") -> list[list]:
    rows = []
    for task in TASKS:
        for spec in ctx.catalog.models(task):
            state = availability(spec)
            status = say("models.ready", language) if state.ok and not state.reason else (
                state.reason_zh if language == "zh" else state.reason)
            licence = spec.licence if spec.commercial_use else "⚠ " + spec.licence_label
            rows.append([task, spec.name, f"{spec.source_kind}: {spec.source}", licence,
                         ", ".join(spec.languages), spec.size_mb, status])
    return rows


def loaded_rows(ctx: StudioContext) -> list[list]:
    return [[info.label, info.key, info.device, round(info.size_mb, 1)] for info in ctx.cache.loaded()]


CATALOG_COLUMNS = ("models.col_task", "models.col_name", "models.col_source", "models.col_licence",
                   "models.col_languages", "models.col_size", "models.col_status")
LOADED_COLUMNS = ("models.col_name", "models.col_key", "models.col_device", "models.col_size")


def headers(keys, language: str) -> list[str]:
    # Dataframe headers cannot take gr.I18n keys, so they are translated on the server.
    return [say(k, language) for k in keys]


def build_tab(ctx: StudioContext) -> TabHandles:
    with gr.Accordion(t("models.loaded"), open=True):
        budget = gr.Markdown()
        loaded = gr.Dataframe(headers=headers(LOADED_COLUMNS, "en"), interactive=False, wrap=True)
        with gr.Row():
            which = gr.Dropdown(label=t("models.which"), choices=[], scale=3)
            unload = gr.Button(t("models.unload"), scale=1)
            unload_all = gr.Button(t("models.unload_all"), variant="stop", scale=1)
            refresh = gr.Button(t("models.refresh"), scale=1)
    gr.Markdown(t("models.catalog_info"))
    catalog = gr.Dataframe(headers=headers(CATALOG_COLUMNS, "en"), interactive=False, wrap=True,
                           label=t("models.catalog"), max_height=600)

    def show_loaded(request: gr.Request):
        lang = language_of(request, ctx.config.language)
        rows = loaded_rows(ctx)
        used = ctx.cache.used_bytes() / 2**30
        text = f"**{say('models.budget', lang)}:** {used:.2f} / {ctx.cache.budget_bytes / 2**30:.1f} GB"
        if not rows:
            text += "  \n" + say("models.none_loaded", lang)
        return (text, {"headers": headers(LOADED_COLUMNS, lang), "data": rows},
                gr.Dropdown(choices=[(r[0], r[1]) for r in rows], value=None))

    @friendly_errors
    def do_unload(key, request: gr.Request):
        ctx.require_host(request)  # unloading slows everyone down: the host's call
        if key:
            ctx.cache.unload(key)
            gr.Info(say("models.unloaded", language_of(request, ctx.config.language), name=key))
        return show_loaded(request)

    @friendly_errors
    def do_unload_all(request: gr.Request):
        ctx.require_host(request)
        ctx.cache.clear()
        return show_loaded(request)

    def show_catalog(request: gr.Request):
        lang = language_of(request, ctx.config.language)
        return {"headers": headers(CATALOG_COLUMNS, lang), "data": catalog_rows(ctx, lang)}

    def show_all(request: gr.Request):
        return *show_loaded(request), show_catalog(request)

    outputs = [budget, loaded, which]
    refresh.click(show_all, None, outputs + [catalog], api_name="loaded_models")
    unload.click(do_unload, which, outputs, api_name="unload_model")
    unload_all.click(do_unload_all, None, outputs, api_name="unload_all_models")
    # The lists are filled when the tab is opened (the catalog looks at the network and the hub cache).
    return TabHandles(on_open=(show_all, outputs + [catalog]))
