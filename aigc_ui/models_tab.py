"""The Models tab: every catalog model, installed or not (size, licence, commercial use, languages,
GPU), one-click downloads from the hub with progress and Cancel, Remove, and the loaded models.

Only wiring: the work is pipelines.core.model_downloads (the list, download, remove) and the model
cache. Handlers are top-level functions taking the StudioContext; ``build_tab`` lays out and wires.
API: /loaded_models -> (budget, loaded, which, catalog), /unload_model, /unload_all_models,
/download_model (name, token) -> status, /remove_model (name) -> status.
"""
from __future__ import annotations


import gradio as gr

from pipelines.core.catalog import availability
from pipelines.core.downloads import human_size
from pipelines.core.errors import Stopped, UserError
from pipelines.core.model_downloads import ModelEntry, download_model, model_entries, remove_model

from .common import StudioContext, TabHandles, bind, friendly_errors, language_of
from .i18n import add_strings, say, t

TAB = "models"

add_strings(
    en={
        "models.catalog": "Model catalog",
        "models.catalog_info": "Every model the studio knows, installed or not. **Download** fetches one from the "
                               "Hugging Face hub (or the mirror set in HF_ENDPOINT), checks every file, and its tab "
                               "can use it at once. ⚠ marks licences that do not allow commercial use.",
        "models.loaded": "Loaded models",
        "models.refresh": "Refresh",
        "models.unload": "Unload",
        "models.unload_all": "Unload all",
        "models.which": "Model to unload",
        "models.budget": "Memory budget for models",
        "models.none_loaded": "No model is loaded. Models load when a tab first needs them.",
        "models.unloaded": "Unloaded {name}.",
        "models.col_task": "Task",
        "models.col_name": "Model",
        "models.col_licence": "Licence",
        "models.col_commercial": "Commercial use",
        "models.col_languages": "Languages",
        "models.col_size": "Size",
        "models.col_gpu": "Needs GPU",
        "models.col_status": "Status",
        "models.col_device": "Device",
        "models.col_key": "Cache key",
        "models.ready": "ready",
        "models.yes": "yes",
        "models.no": "no",
        "models.task_text": "Text",
        "models.task_face": "Faces",
        "models.task_image": "Image",
        "models.task_voice": "Voice",
        "models.task_twin": "Twin",
        "models.task_asr": "Speech to text",
        "models.lang_en": "English",
        "models.lang_zh": "Chinese",
        "models.lang_any": "many",
        "models.state_downloaded": "downloaded ✓",
        "models.state_here": "in models/ ✓",
        "models.state_downloading": "downloading…",
        "models.state_partial": "partly downloaded ({size}): Download goes on",
        "models.state_not_downloaded": "not downloaded",
        "models.manage": "Download or remove",
        "models.pick": "Model",
        "models.pick_info": "Pick one here or click its row in the table.",
        "models.token": "Access token (gated models only)",
        "models.token_info": "Used for this one download and never saved. Create one at huggingface.co/settings/tokens.",
        "models.download": "Download",
        "models.cancel": "Cancel",
        "models.remove": "Remove",
        "models.details_size": "Size",
        "models.details_licence": "Licence",
        "models.details_from": "From the hub",
        "models.details_where": "Goes to",
        "models.details_status": "Status",
        "models.details_not_downloadable": "Not downloadable here: {status}.",
        "models.done": "✓ {name} is downloaded ({size} in {seconds}). Its tab can use it now.",
        "models.cancelled": "Download of {name} cancelled. Whole files are kept: Download goes on from there, "
                            "Remove discards them.",
        "models.cancel_sent": "Cancelling…",
        "models.nothing_to_cancel": "No download is running.",
        "models.removed": "Removed {name}.",
        "models.failed": "⚠ {message}",
    },
    zh={
        "models.catalog": "模型目录",
        "models.catalog_info": "工作室知道的所有模型，无论是否已安装。**下载** 会从 Hugging Face 模型中心"
                               "（或 HF_ENDPOINT 设置的镜像）获取模型，逐个校验文件，对应页面立即可用。"
                               "⚠ 表示许可证不允许商用。",
        "models.loaded": "已加载的模型",
        "models.refresh": "刷新",
        "models.unload": "卸载",
        "models.unload_all": "全部卸载",
        "models.which": "要卸载的模型",
        "models.budget": "模型内存预算",
        "models.none_loaded": "尚未加载任何模型。各页第一次需要时才会加载。",
        "models.unloaded": "已卸载 {name}。",
        "models.col_task": "任务",
        "models.col_name": "模型",
        "models.col_licence": "许可证",
        "models.col_commercial": "可商用",
        "models.col_languages": "语言",
        "models.col_size": "大小",
        "models.col_gpu": "需要 GPU",
        "models.col_status": "状态",
        "models.col_device": "设备",
        "models.col_key": "缓存键",
        "models.ready": "可用",
        "models.yes": "是",
        "models.no": "否",
        "models.task_text": "文本",
        "models.task_face": "人脸",
        "models.task_image": "图像",
        "models.task_voice": "语音",
        "models.task_twin": "数字分身",
        "models.task_asr": "语音识别",
        "models.lang_en": "英语",
        "models.lang_zh": "中文",
        "models.lang_any": "多语言",
        "models.state_downloaded": "已下载 ✓",
        "models.state_here": "已在 models/ 中 ✓",
        "models.state_downloading": "下载中……",
        "models.state_partial": "已下载一部分（{size}）：再次下载会继续",
        "models.state_not_downloaded": "未下载",
        "models.manage": "下载或移除",
        "models.pick": "模型",
        "models.pick_info": "在这里选择，或点击表格中的对应行。",
        "models.token": "访问令牌（仅受限模型需要）",
        "models.token_info": "只用于这一次下载，不会被保存。可在 huggingface.co/settings/tokens 创建。",
        "models.download": "下载",
        "models.cancel": "取消",
        "models.remove": "移除",
        "models.details_size": "大小",
        "models.details_licence": "许可证",
        "models.details_from": "来自模型中心",
        "models.details_where": "存放位置",
        "models.details_status": "状态",
        "models.details_not_downloadable": "这里不提供下载：{status}。",
        "models.done": "✓ {name} 已下载（{size}，用时 {seconds}）。对应页面现在就能使用。",
        "models.cancelled": "已取消 {name} 的下载。已完整下载的文件会保留：再次下载会接着进行，移除则会删除它们。",
        "models.cancel_sent": "正在取消……",
        "models.nothing_to_cancel": "没有正在进行的下载。",
        "models.removed": "已移除 {name}。",
        "models.failed": "⚠ {message}",
    },
)

CATALOG_COLUMNS = ("models.col_task", "models.col_name", "models.col_size", "models.col_licence",
                   "models.col_commercial", "models.col_languages", "models.col_gpu", "models.col_status")
# Fits 1280 px: the long texts (licence, status) get the room, and wrap.
CATALOG_WIDTHS = ["9%", "19%", "8%", "22%", "9%", "10%", "8%", "15%"]
LOADED_COLUMNS = ("models.col_name", "models.col_key", "models.col_device", "models.col_size")


def headers(keys, language: str) -> list[str]:
    # Dataframe headers cannot take gr.I18n keys, so they are translated on the server.
    return [say(k, language) for k in keys]


# ---------------------------------------------------------------------------------------- table text
def task_label(task: str, language: str) -> str:
    key = f"models.task_{task}"
    label = say(key, language)
    return task if label == key else label


def languages_label(codes, language: str) -> str:
    names = {"en": "models.lang_en", "zh": "models.lang_zh", "*": "models.lang_any"}
    return ", ".join(say(names[c], language) if c in names else c for c in codes)


def size_label(entry: ModelEntry) -> str:
    mb = entry.plan.size_mb if entry.plan else entry.spec.size_mb
    return human_size(mb * 1e6) if mb else "–"


def status_label(entry: ModelEntry, language: str) -> str:
    state = entry.state
    if state is not None:
        if state.downloading:
            return say("models.state_downloading", language)
        if state.installed:
            return say("models.state_downloaded" if state.downloaded_here else "models.state_here", language)
        if state.partial_bytes:
            return say("models.state_partial", language, size=human_size(state.partial_bytes))
        return say("models.state_not_downloaded", language)
    ready = availability(entry.spec)
    if ready.ok and not ready.reason:
        return say("models.ready", language)
    return ready.reason_zh if language.startswith("zh") and ready.reason_zh else ready.reason


def catalog_row(entry: ModelEntry, language: str) -> list[str]:
    spec = entry.spec
    yes, no = say("models.yes", language), say("models.no", language)
    return [task_label(spec.task, language), spec.name, size_label(entry), spec.licence_text(language),
            yes if spec.commercial_use else f"⚠ {no}", languages_label(spec.languages, language),
            yes if spec.needs_gpu else no, status_label(entry, language)]


def catalog_rows(ctx: StudioContext, language: str = "en") -> list[list[str]]:
    return [catalog_row(e, language) for e in model_entries(ctx.catalog)]


def catalog_table(ctx: StudioContext, language: str) -> dict:
    return {"headers": headers(CATALOG_COLUMNS, language), "data": catalog_rows(ctx, language)}


def entry_named(ctx: StudioContext, name: str | None) -> ModelEntry | None:
    return next((e for e in model_entries(ctx.catalog) if e.spec.name == name), None)


def details_text(entry: ModelEntry | None, language: str) -> str:
    if entry is None:
        return ""
    spec = entry.spec
    lines = [f"**{spec.name}** · {task_label(spec.task, language)} · {size_label(entry)}",
             spec.description_text(language),
             f"**{say('models.details_licence', language)}:** {spec.licence_text(language)}"
             + ("" if spec.commercial_use else " ⚠")]
    if entry.plan is not None:
        repos = ", ".join(dict.fromkeys(f"[{p.repo_id}](https://huggingface.co/{p.repo_id})" for p in entry.plan.parts))
        lines.append(f"**{say('models.details_from', language)}:** {repos}")
        lines.append(f"**{say('models.details_where', language)}:** models/{entry.plan.target}")
        lines.append(f"**{say('models.details_status', language)}:** {status_label(entry, language)}")
    else:
        lines.append(say("models.details_not_downloadable", language, status=status_label(entry, language)))
    return "  \n".join(line for line in lines if line)


def manage_choices(ctx: StudioContext) -> list[tuple[str, str]]:
    return [(f"{e.spec.name} · {size_label(e)}", e.spec.name) for e in model_entries(ctx.catalog) if e.plan]


def action_buttons(entry: ModelEntry | None) -> tuple[gr.Button, gr.Button]:
    state = entry.state if entry else None
    can_download = bool(state and not state.installed and not state.downloading)
    can_remove = bool(state and not state.downloading and (state.downloaded_here or state.partial_bytes))
    return gr.Button(interactive=can_download), gr.Button(interactive=can_remove)


# ---------------------------------------------------------------------------------------- handlers
def show_loaded(ctx: StudioContext, request: gr.Request):
    lang = language_of(request, ctx.config.language)
    rows = [[info.label, info.key, info.device, round(info.size_mb, 1)] for info in ctx.cache.loaded()]
    used = ctx.cache.used_bytes() / 2**30
    text = f"**{say('models.budget', lang)}:** {used:.2f} / {ctx.cache.budget_bytes / 2**30:.1f} GB"
    if not rows:
        text += "  \n" + say("models.none_loaded", lang)
    return (text, {"headers": headers(LOADED_COLUMNS, lang), "data": rows},
            gr.Dropdown(choices=[(r[0], r[1]) for r in rows], value=None))


@friendly_errors
def unload_model(ctx: StudioContext, key: str | None, request: gr.Request):
    ctx.require_host(request)  # changing what is loaded (or on disk) affects everyone: the host's call
    if key:
        ctx.cache.unload(key)
        gr.Info(say("models.unloaded", language_of(request, ctx.config.language), name=key))
    return show_loaded(ctx, request)


@friendly_errors
def unload_all_models(ctx: StudioContext, request: gr.Request):
    ctx.require_host(request)
    ctx.cache.clear()
    return show_loaded(ctx, request)


def show_lists(ctx: StudioContext, request: gr.Request):
    """Loaded models and the catalog (the /loaded_models API, and Refresh)."""
    return *show_loaded(ctx, request), catalog_table(ctx, language_of(request, ctx.config.language))


def show_everything(ctx: StudioContext, request: gr.Request):
    """On opening the tab: the lists, and the models that can be downloaded or removed."""
    return *show_lists(ctx, request), gr.Dropdown(choices=manage_choices(ctx))


def refresh_choices(ctx: StudioContext):
    return gr.Dropdown(choices=manage_choices(ctx))


def pick_model(ctx: StudioContext, name: str | None, request: gr.Request):
    """Details of the picked model, and which of Download / Remove apply to it."""
    entry = entry_named(ctx, name)
    return details_text(entry, language_of(request, ctx.config.language)), *action_buttons(entry)


def pick_row(ctx: StudioContext, evt: gr.SelectData):
    """A click on a catalog row picks that model (when it can be downloaded or removed)."""
    row = evt.row_value or []
    name = row[1] if len(row) > 1 else None
    return gr.Dropdown(value=name) if any(value == name for _, value in manage_choices(ctx)) else gr.Dropdown()


def _after_change(ctx: StudioContext, name: str | None, lang: str, message: str):
    """Outputs after a download or a removal: status, token cleared, fresh table, details, buttons."""
    entry = entry_named(ctx, name)
    return (message, "", catalog_table(ctx, lang), details_text(entry, lang), *action_buttons(entry))


@friendly_errors
def download_selected(ctx: StudioContext, name: str | None, token: str | None, request: gr.Request,
                      progress=gr.Progress()):
    """Download the picked model; progress shows bytes, speed and time left. The token is passed to
    this download only and cleared from the page afterwards."""
    ctx.require_host(request)
    lang = language_of(request, ctx.config.language)
    with ctx.jobs.running(request, TAB) as stop:
        try:
            result = download_model(name or "", ctx.config.models_dir, catalog=ctx.catalog,
                                    token=(token or "").strip() or None, stop=stop,
                                    on_progress=lambda p: progress(p.fraction, desc=p.text(lang)))
        except Stopped:
            return _after_change(ctx, name, lang, say("models.cancelled", lang, name=name))
        except UserError as exc:
            gr.Warning(exc.text(lang))
            return _after_change(ctx, name, lang, say("models.failed", lang, message=exc.text(lang)))
    seconds = f"{result.seconds:.0f} s" if lang == "en" else f"{result.seconds:.0f} 秒"
    message = say("models.done", lang, name=result.name, size=human_size(result.total_bytes), seconds=seconds)
    gr.Info(message)
    return _after_change(ctx, name, lang, message)


def cancel_download(ctx: StudioContext, request: gr.Request) -> str:
    lang = language_of(request, ctx.config.language)
    stopped = ctx.jobs.stop(request, TAB)
    return say("models.cancel_sent" if stopped else "models.nothing_to_cancel", lang)


@friendly_errors
def remove_selected(ctx: StudioContext, name: str | None, request: gr.Request):
    ctx.require_host(request)
    lang = language_of(request, ctx.config.language)
    entry = entry_named(ctx, name)
    if entry is not None and entry.plan is not None:  # let go of it first if a tab has it loaded
        folder = str(entry.plan.target_path(ctx.config.models_dir))
        for info in ctx.cache.loaded():
            if folder in info.key:
                ctx.cache.unload(info.key)
    try:
        remove_model(name or "", ctx.config.models_dir, ctx.catalog)
    except UserError as exc:
        return _after_change(ctx, name, lang, say("models.failed", lang, message=exc.text(lang)))
    return _after_change(ctx, name, lang, say("models.removed", lang, name=name))


# ---------------------------------------------------------------------------------------- layout
def build_tab(ctx: StudioContext) -> TabHandles:
    gr.Markdown(t("models.catalog_info"))
    catalog = gr.Dataframe(headers=headers(CATALOG_COLUMNS, "en"), interactive=False, wrap=True,
                           column_widths=CATALOG_WIDTHS, label=t("models.catalog"), max_height=520,
                           elem_id="models-catalog")
    with gr.Group():
        gr.Markdown(t("models.manage"), elem_classes=["section-title"])
        with gr.Row(equal_height=True):
            pick = gr.Dropdown(label=t("models.pick"), info=t("models.pick_info"), choices=[], scale=3,
                               elem_id="models-pick")
            token = gr.Textbox(label=t("models.token"), info=t("models.token_info"), type="password", scale=3)
        with gr.Row():
            download = gr.Button(t("models.download"), variant="primary", interactive=False, elem_id="models-download")
            cancel = gr.Button(t("models.cancel"), elem_id="models-cancel")
            remove = gr.Button(t("models.remove"), variant="stop", interactive=False, elem_id="models-remove")
        details = gr.Markdown()
        # Room for the progress bar (bytes, speed, time left) while a download runs.
        status = gr.Markdown(elem_id="models-status", min_height=64, padding=True)
    with gr.Accordion(t("models.loaded"), open=False):
        budget = gr.Markdown()
        loaded = gr.Dataframe(headers=headers(LOADED_COLUMNS, "en"), interactive=False, wrap=True)
        with gr.Row():
            which = gr.Dropdown(label=t("models.which"), choices=[], scale=3)
            unload = gr.Button(t("models.unload"), scale=1)
            unload_all = gr.Button(t("models.unload_all"), variant="stop", scale=1)
            refresh = gr.Button(t("models.refresh"), scale=1)

    loaded_outputs = [budget, loaded, which]
    everything = loaded_outputs + [catalog, pick]
    after_change = [status, token, catalog, details, download, remove]
    refresh.click(bind(show_lists, ctx), None, loaded_outputs + [catalog], api_name="loaded_models").then(
        bind(refresh_choices, ctx), None, pick, api_visibility="private")
    unload.click(bind(unload_model, ctx), which, loaded_outputs, api_name="unload_model")
    unload_all.click(bind(unload_all_models, ctx), None, loaded_outputs, api_name="unload_all_models")
    pick.change(bind(pick_model, ctx), pick, [details, download, remove], api_visibility="private")
    catalog.select(bind(pick_row, ctx), None, pick, api_visibility="private")
    download.click(bind(download_selected, ctx), [pick, token], after_change, api_name="download_model",
                   show_progress_on=[status], concurrency_id="downloads", concurrency_limit=2)
    cancel.click(bind(cancel_download, ctx), None, status, queue=False, api_visibility="private")
    remove.click(bind(remove_selected, ctx), pick, after_change, api_name="remove_model")
    # The lists are filled when the tab is opened (the catalog looks at the network and models/).
    return TabHandles(on_open=(bind(show_everything, ctx), everything))
