"""Text-to-image tab: Stable Diffusion controls, a gallery of this session's images, PNG info, and
"Use as twin photo". The work is done by pipelines.image.text_to_image.generate_images; this module only wires it.

API: ``/generate_image`` (prompt, negative_prompt, model, steps, guidance, width, height, seed) -> PNG files.
Batch size and scheduler come from the page (session state), so the API keeps exactly those eight parameters.
The handlers are the top-level functions below; ``build_tab`` only lays out and wires.
"""
from __future__ import annotations

import time

import gradio as gr

from pipelines.core.errors import UserError
from pipelines.core.png_metadata import read_png_parameters
from pipelines.image import text_to_image as t2i

from .common import (StudioContext, TabHandles, bind, clear_errors_on_success, friendly_errors, language_of,
                     pass_through, progress_callback, provenance_checkbox, show_notices)
from .hosting import zero_gpu
from .i18n import add_strings, say, t

TAB = "image"

add_strings(
    en={
        "image.prompt": "Prompt",
        "image.prompt_placeholder": "a watercolor portrait of a smiling astronaut, soft light",
        "image.negative": "Negative prompt",
        "image.negative_placeholder": "blurry, low quality, extra fingers",
        "image.steps": "Steps",
        "image.guidance": "Guidance (CFG scale)",
        "image.width": "Width",
        "image.height": "Height",
        "image.batch": "Batch size (seeds seed, seed+1, ...)",
        "image.scheduler": "Scheduler (sampler)",
        "image.scheduler_default": "Default (the model's own)",
        "image.random_seed": "🎲 Random",
        "image.reuse_seed": "♻️ Reuse last seed",
        "image.gallery": "This session's images (click one to select it)",
        "image.files": "Download (PNG, parameters inside)",
        "image.status": "Status",
        "image.selected": "Selected image",
        "image.png_info": "PNG info: read the parameters of an image",
        "image.png_upload": "Drop a PNG made here, by AUTOMATIC1111 or by Fooocus",
        "image.png_params": "Parameters found",
        "image.restore": "Send parameters to the controls",
        "image.refresh": "Refresh models",
        "image.no_model": (
            "**No text-to-image model can run here yet.** The rest of the studio works. To add one:\n\n"
            "- with internet: **Download** SD-Turbo (fast on a CPU) in the *Models* tab;\n"
            "- or a diffusers folder (with `model_index.json`) in `models/image/NAME/`;\n"
            "- or a single-file checkpoint `models/image/NAME.safetensors` (AUTOMATIC1111 style), with its base model's "
            "configs in `models/image/NAME.config/` when offline (a diffusers folder of the same family, weights not needed).\n\n"
            "Then press *Refresh models*."),
        "image.done": "Made {count} image(s) in {seconds:.1f} s. Seeds: {seeds}.",
        "image.no_params": "This image holds no generation parameters.",
        "image.select_first": "Generate or select an image first.",
        "image.unavailable": "not available",
    },
    zh={
        "image.prompt": "提示词",
        "image.prompt_placeholder": "一幅微笑宇航员的水彩肖像，柔和光线",
        "image.negative": "反向提示词",
        "image.negative_placeholder": "模糊，低质量，多余的手指",
        "image.steps": "步数",
        "image.guidance": "引导系数（CFG）",
        "image.width": "宽度",
        "image.height": "高度",
        "image.batch": "批量大小（种子依次为 seed, seed+1, ...）",
        "image.scheduler": "采样器",
        "image.scheduler_default": "默认（模型自带）",
        "image.random_seed": "🎲 随机",
        "image.reuse_seed": "♻️ 复用上次种子",
        "image.gallery": "本次会话的图片（点击选择）",
        "image.files": "下载（PNG，内含生成参数）",
        "image.status": "状态",
        "image.selected": "已选图片",
        "image.png_info": "PNG 信息：读取图片的生成参数",
        "image.png_upload": "拖入本工作室、AUTOMATIC1111 或 Fooocus 生成的 PNG",
        "image.png_params": "读取到的参数",
        "image.restore": "将参数填回控件",
        "image.refresh": "刷新模型列表",
        "image.no_model": (
            "**此处还没有可运行的文生图模型。** 工作室的其他功能不受影响。添加方法：\n\n"
            "- 联网时：在“模型”页**下载** SD-Turbo（在 CPU 上很快）；\n"
            "- 或把 diffusers 文件夹（含 `model_index.json`）放入 `models/image/名称/`；\n"
            "- 或放入单文件检查点 `models/image/名称.safetensors`（AUTOMATIC1111 格式）；离线时还需把同系列基础模型的配置"
            "放入 `models/image/名称.config/`（diffusers 文件夹，无需权重）。\n\n"
            "然后点击“刷新模型列表”。"),
        "image.done": "生成了 {count} 张图片，用时 {seconds:.1f} 秒。种子：{seeds}。",
        "image.no_params": "这张图片没有保存生成参数。",
        "image.select_first": "请先生成或选择一张图片。",
        "image.unavailable": "不可用",
    },
)


def model_choices(ctx: StudioContext, check_network: bool = True,
                  lang: str = "en") -> tuple[list[tuple[str, str]], str | None, bool]:
    """Dropdown choices (runnable models first, others labelled), the default, and whether any can run."""
    runnable, other = [], []
    for spec, ready in ctx.catalog.available(TAB, check_network=check_network):
        if ready.ok:
            runnable.append((spec.name, spec.name))
        else:
            reason = (ready.reason_zh or ready.reason) if lang == "zh" else ready.reason
            other.append((f"{spec.name} ({reason})", spec.name))
    default = runnable[0][1] if runnable else None
    return runnable + other, default, bool(runnable)


# ---------------------------------------------------------------- handlers
def list_models(ctx: StudioContext, request: gr.Request):
    """On opening the tab: new files in models/ appear; the choice is kept. With no model that can run,
    Generate is disabled and the notice above says how to add one."""
    choices, _, runnable = model_choices(ctx, lang=language_of(request, ctx.config.language))
    return gr.Dropdown(choices=choices), gr.Markdown(visible=not runnable), gr.Button(interactive=runnable)


def refresh_models(ctx: StudioContext, current: str, request: gr.Request):
    choices, default, runnable = model_choices(ctx, lang=language_of(request, ctx.config.language))
    keep = current if current in {value for _, value in choices} else default
    return (gr.Dropdown(choices=choices, value=keep), gr.Markdown(visible=not runnable),
            gr.Button(interactive=runnable))


def apply_model_defaults(ctx: StudioContext, name: str):
    """A model was picked: its own steps, guidance and size go to the sliders."""
    try:
        spec = ctx.catalog.get(TAB, name)
    except UserError:
        return gr.update(), gr.update(), gr.update(), gr.update()
    d = t2i.model_defaults(spec)
    return d["steps"], d["guidance"], d["size"], d["size"]


def random_seed() -> int:
    return -1


def reuse_seed(used):
    return -1 if used is None else used


@friendly_errors
def generate_image(ctx: StudioContext, prompt, negative_prompt, model, steps, guidance, width, height, seed,
                   batch_size, scheduler_name, provenance: bool = True, request: gr.Request = None,
                   progress=gr.Progress()):
    """Make the images; the parameter names are the API's: /generate_image(prompt, negative_prompt, model, ...).
    ``provenance``: the saved PNGs get an invisible watermark and Content Credentials."""
    started, lang = time.perf_counter(), language_of(request)
    with ctx.jobs.running(request, TAB) as token:
        result = t2i.generate_images(
            prompt, negative_prompt=negative_prompt or "", model=model, steps=steps, guidance=guidance,
            width=width, height=height, seed=-1 if seed in (None, "") else seed, batch_size=batch_size or 1,
            scheduler=scheduler_name, provenance=bool(provenance), runtime=ctx.runtime_for(request),
            stop=token, on_progress=progress_callback(progress, lang))
    show_notices(result.notices, lang)
    message = say("image.done", lang, count=len(result.paths), seconds=time.perf_counter() - started,
                  seeds=", ".join(map(str, result.seeds)))
    summary = {"paths": [str(p) for p in result.paths], "seeds": result.seeds, "text": message}
    return [str(p) for p in result.paths], summary


def show_result(result, session_paths):
    """After a run: add the new images to the session gallery and select the first one."""
    if not result:
        return gr.update(), session_paths, gr.update(), gr.update(), gr.update(), gr.update()
    paths = list(result["paths"]) + list(session_paths or [])
    first = result["paths"][0] if result["paths"] else None
    params = read_png_parameters(first) if first else None
    seed = result["seeds"][0] if result["seeds"] else None
    return paths, paths, result["text"], first, params, seed


def stop_generation(ctx: StudioContext, request: gr.Request) -> None:
    ctx.jobs.stop(request, TAB)


def select_image(paths, evt: gr.SelectData):
    if not paths or evt.index is None or evt.index >= len(paths):
        return gr.update(), gr.update()
    path = paths[evt.index]
    return path, read_png_parameters(path)


@friendly_errors
def read_png(path, request: gr.Request):
    if not path:
        return None
    params = read_png_parameters(path)
    if not params:
        gr.Info(say("image.no_params", language_of(request)))
    return params


def restore_controls(ctx: StudioContext, params):
    """PNG info -> the controls; values this studio does not know (a model not here...) are left as they are."""
    params = params or {}
    known_models = {value for _, value in model_choices(ctx)[0]}
    known_schedulers = {t2i.DEFAULT_SCHEDULER, *t2i.SCHEDULERS}

    def value(key, allowed=None):
        found = params.get(key)
        if found in (None, "") or (allowed is not None and found not in allowed):
            return gr.update()
        return found

    return (value("prompt"), value("negative_prompt"), value("model", known_models), value("steps"),
            value("guidance"), value("width"), value("height"), value("seed"),
            value("scheduler", known_schedulers), value("batch_size"))


# ---------------------------------------------------------------- layout and wiring
def build_tab(ctx: StudioContext) -> TabHandles:
    # No network check while the app starts; the list is checked again when the tab is opened.
    choices, default_model, any_runnable = model_choices(ctx, check_network=False)
    notice = gr.Markdown(t("image.no_model"), visible=not any_runnable, elem_classes=["notice"])
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            with gr.Row():
                model = gr.Dropdown(label=t("common.model"), choices=choices, value=default_model, scale=4,
                                    allow_custom_value=True)  # API callers may pass a hub id or a path
                refresh = gr.Button(t("image.refresh"), scale=1, size="sm")
            prompt = gr.Textbox(label=t("image.prompt"), lines=3, placeholder=t("image.prompt_placeholder"))
            negative = gr.Textbox(label=t("image.negative"), lines=2, placeholder=t("image.negative_placeholder"))
            with gr.Row():
                steps = gr.Slider(1, t2i.MAX_STEPS, value=25, step=1, label=t("image.steps"))
                guidance = gr.Slider(0, 30, value=7.5, step=0.5, label=t("image.guidance"))
            with gr.Row():
                width = gr.Slider(t2i.MIN_SIDE, t2i.MAX_SIDE, value=512, step=8, label=t("image.width"))
                height = gr.Slider(t2i.MIN_SIDE, t2i.MAX_SIDE, value=512, step=8, label=t("image.height"))
            with gr.Row():
                scheduler = gr.Dropdown(label=t("image.scheduler"), value=t2i.DEFAULT_SCHEDULER,
                                        choices=[(t("image.scheduler_default"), t2i.DEFAULT_SCHEDULER),
                                                 *((name, name) for name in t2i.SCHEDULERS)])
                batch = gr.Slider(1, t2i.MAX_BATCH, value=1, step=1, label=t("image.batch"))
            with gr.Row():
                seed = gr.Number(label=t("common.seed"), value=-1, precision=0, scale=3)
                random_seed_button = gr.Button(t("image.random_seed"), scale=1, size="sm")
                reuse_seed_button = gr.Button(t("image.reuse_seed"), scale=1, size="sm")
            mark = provenance_checkbox()
            with gr.Row():
                generate = gr.Button(t("common.generate"), variant="primary", scale=3, interactive=any_runnable)
                stop = gr.Button(t("common.stop"), variant="stop", scale=1)
        with gr.Column(scale=6):
            gallery = gr.Gallery(label=t("image.gallery"), columns=4, height=420, allow_preview=True)
            status = gr.Markdown()
            files = gr.File(label=t("image.files"), file_count="multiple", interactive=False)
            selected = gr.Image(label=t("image.selected"), type="filepath", interactive=False, height=240)
            send_photo = gr.Button(t("common.send_to_twin"))
    with gr.Accordion(t("image.png_info"), open=False):
        with gr.Row():
            png_file = gr.File(label=t("image.png_upload"), file_types=[".png"], type="filepath")
            png_params = gr.JSON(label=t("image.png_params"))
        restore = gr.Button(t("image.restore"))

    # Session state: batch size and scheduler stay off the API signature; the gallery keeps this session's files.
    batch_state = gr.State(1)
    scheduler_state = gr.State(t2i.DEFAULT_SCHEDULER)
    mark_state = gr.State(True)  # API calls are always marked
    gallery_state = gr.State([])
    result_state = gr.State(None)
    last_seed = gr.State(None)

    private = dict(queue=False, api_visibility="private")
    batch.change(pass_through, batch, batch_state, **private)
    mark.change(pass_through, mark, mark_state, **private)
    scheduler.change(pass_through, scheduler, scheduler_state, **private)
    refresh.click(bind(refresh_models, ctx), model, [model, notice, generate], **private)
    model.input(bind(apply_model_defaults, ctx), model, [steps, guidance, width, height], **private)
    random_seed_button.click(random_seed, None, seed, **private)
    reuse_seed_button.click(reuse_seed, last_seed, seed, **private)
    generated = generate.click(zero_gpu(180)(bind(generate_image, ctx)),
                   [prompt, negative, model, steps, guidance, width, height, seed, batch_state, scheduler_state, mark_state],
                   [files, result_state], api_name="generate_image", **ctx.concurrency("image")).success(
        show_result, [result_state, gallery_state], [gallery, gallery_state, status, selected, png_params, last_seed],
        **private)
    clear_errors_on_success(generated)
    stop.click(bind(stop_generation, ctx), None, None, **private)
    gallery.select(select_image, gallery_state, [selected, png_params], **private)
    png_file.change(read_png, png_file, png_params, **private)
    restore.click(bind(restore_controls, ctx), png_params,
                  [prompt, negative, model, steps, guidance, width, height, seed, scheduler, batch], **private)

    return TabHandles(photo_source=selected, send_photo=send_photo,
                      on_open=(bind(list_models, ctx), [model, notice, generate]))
