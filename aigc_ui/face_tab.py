"""Face synthesis tab: a grid of faces from seeds, pick one, re-roll a tile, morph between two seeds,
and send the chosen face to the twin wizard. Wires widgets to pipelines.face.synthesis only.

API: ``/generate_faces`` (model, count, seed, truncation), ``/reroll_face``, ``/interpolate_faces``.
The handlers are the top-level functions below; ``build_tab`` only lays out and wires.
"""
from __future__ import annotations

import gradio as gr

from pipelines.core.errors import UserError
from pipelines.face import synthesis as faces
from pipelines.face.synthesis import DEFAULT_MODEL, MAX_COUNT

from .common import (StudioContext, TabHandles, bind, clear_errors_on_success, friendly_errors, language_of,
                     pass_through, progress_callback, provenance_checkbox, show_notices)
from .hosting import zero_gpu
from .i18n import add_strings, say, t

TAB = "face"

add_strings(
    en={
        "face.intro": "Make faces from seeds: face *i* of the grid uses seed *s + i*, so any face can be made "
                      "again. Click a face to pick it, then re-roll it, morph it into another, or use it as your "
                      "twin's photo. The default model is a small **64 px** GAN: its faces are enlarged for display "
                      "and look soft. Trained StyleGAN checkpoints (models/faces/*.safetensors) appear in the list.",
        "face.count": "Number of faces",
        "face.truncation": "Truncation psi (GANs: 1 = full variety, smaller = more average, cleaner faces)",
        "face.gallery": "Faces (click one to pick it)",
        "face.picked": "Picked face",
        "face.picked_seed": "Seed of the picked face",
        "face.reroll": "Re-roll this tile",
        "face.morph": "Morph between two seeds",
        "face.seed_a": "From seed",
        "face.seed_b": "To seed",
        "face.frames": "Frames",
        "face.make_morph": "Make animation",
        "face.gif": "Animation (GIF)",
        "face.mp4": "Animation (MP4)",
        "face.refresh": "Refresh models",
        "face.pick_first": "Generate faces and click one first.",
        "face.tile": "seed {seed}",
        "face.seeds_used": "Seeds used: {first} to {last}. Type {first} in Seed to make the same faces again.",
        "face.model_status": "Cannot run here: {reason}",
        "face.research_only": "⚠ Licence: {licence}: not for commercial use.",
        "face.train_hint": "Train your own: `python -m pipelines.face_synthesis train --images DIR --name NAME --size 32` "
                           "(CPU: 16-64 px; larger needs a GPU). The checkpoint appears here as NAME.",
    },
    zh={
        "face.intro": "用随机种子生成人脸：网格中第 *i* 张使用种子 *s + i*，因此任何一张都能重新生成。点击一张人脸选中它，"
                      "然后可以重新生成该格、在两张脸之间做变形动画，或用作分身照片。默认模型是一个小型 **64 像素** GAN："
                      "显示时会放大，画面偏柔和。你训练的 StyleGAN 检查点（models/faces/*.safetensors）会出现在列表中。",
        "face.count": "人脸数量",
        "face.truncation": "截断系数 psi（GAN：1 = 最大多样性，越小越接近平均脸、越干净）",
        "face.gallery": "人脸（点击选中）",
        "face.picked": "选中的人脸",
        "face.picked_seed": "选中人脸的种子",
        "face.reroll": "重新生成此格",
        "face.morph": "两个种子之间的变形动画",
        "face.seed_a": "起始种子",
        "face.seed_b": "目标种子",
        "face.frames": "帧数",
        "face.make_morph": "生成动画",
        "face.gif": "动画（GIF）",
        "face.mp4": "动画（MP4）",
        "face.refresh": "刷新模型列表",
        "face.pick_first": "请先生成人脸并点击其中一张。",
        "face.tile": "种子 {seed}",
        "face.seeds_used": "使用的种子：{first} 到 {last}。在“随机种子”中输入 {first} 即可再次生成相同的人脸。",
        "face.model_status": "无法在此运行：{reason}",
        "face.research_only": "⚠ 许可：{licence}：不可用于商业用途。",
        "face.train_hint": "训练你自己的模型：`python -m pipelines.face_synthesis train --images 文件夹 --name 名称 --size 32`"
                           "（CPU：16-64 像素；更大尺寸需要 GPU）。训练好的检查点会以该名称出现在这里。",
    },
)


EMPTY_GRID = {"seeds": [], "paths": [], "picked": None}  # one browser session's grid (a gr.State)


def _lang(ctx: StudioContext, request) -> str:
    return language_of(request, ctx.config.language)


def _tiles(paths, seeds, lang: str) -> list[tuple[str, str]]:
    return [(str(p), say("face.tile", lang, seed=s)) for p, s in zip(paths, seeds)]


def model_choices(ctx: StudioContext, lang: str = "en") -> list[tuple[str, str]]:
    """(label, name): models that cannot run here are marked, so users see why before they click."""
    choices = []
    for spec in ctx.catalog.models("face"):
        state = faces.model_availability(spec, ctx.runtime)
        reason = (state.reason_zh or state.reason) if lang == "zh" else state.reason
        choices.append((spec.name if state.ok else f"{spec.name} ✗ ({reason})", spec.name))
    return choices


# ---------------------------------------------------------------- handlers
def describe_model(ctx: StudioContext, name: str, request: gr.Request) -> str:
    language = _lang(ctx, request)
    try:
        spec = ctx.catalog.get("face", name or DEFAULT_MODEL)
    except UserError as exc:
        return exc.text(language)
    lines = [spec.description_text(language)]
    state = faces.model_availability(spec, ctx.runtime)
    if not state.ok:
        lines.append(say("face.model_status", language, reason=(state.reason_zh or state.reason)
                         if language == "zh" else state.reason))
    if not spec.commercial_use:  # the one place the licence is shown
        lines.append(say("face.research_only", language, licence=spec.licence_text(language)))
    return "  \n".join(lines)


@friendly_errors
def generate_faces(ctx: StudioContext, model, count, seed, truncation, provenance: bool = True,
                   request: gr.Request = None, progress=gr.Progress()):
    """A grid of faces; the first one is picked. The parameter names are the API's (``provenance``: the
    saved PNGs get an invisible watermark and Content Credentials)."""
    language = _lang(ctx, request)
    with ctx.jobs.running(request, TAB) as token:
        result = faces.generate_faces(model=model or DEFAULT_MODEL, count=count, seed=seed,
                                      truncation=truncation, save=True, provenance=bool(provenance),
                                      runtime=ctx.runtime_for(request), stop=token,
                                      on_progress=progress_callback(progress, language))
    show_notices(result.notices, language)
    text = say("face.seeds_used", language, first=result.seeds[0], last=result.seeds[-1])
    state = {"seeds": result.seeds, "paths": [str(p) for p in result.paths], "picked": 0}
    return _tiles(result.paths, result.seeds, language), text, state, str(result.paths[0]), result.seeds[0]


def pick_face(state: dict, evt: gr.SelectData):
    """A click on a tile: it becomes the picked face (shown, its seed shown)."""
    index = evt.index if isinstance(evt.index, int) else evt.index[0]
    if not state["paths"] or index >= len(state["paths"]):
        return state, None, None
    state = {**state, "picked": index}
    return state, state["paths"][index], state["seeds"][index]


@friendly_errors
def reroll_face(ctx: StudioContext, model, truncation, state, provenance: bool = True, request: gr.Request = None,
                progress=gr.Progress()):
    """Replace the picked tile with a face from a new random seed; the other tiles stay."""
    state = state or EMPTY_GRID
    if state.get("picked") is None or not state["paths"]:
        raise UserError(say("face.pick_first", "en"), zh=say("face.pick_first", "zh"))
    index, language = state["picked"], _lang(ctx, request)
    with ctx.jobs.running(request, TAB) as token:
        result = faces.generate_faces(model=model or DEFAULT_MODEL, count=1, seed=-1, truncation=truncation,
                                      save=True, provenance=bool(provenance),
                                      runtime=ctx.runtime_for(request), stop=token,
                                      on_progress=progress_callback(progress, language))
    show_notices([n for n in result.notices if n.level == "warning"], language)  # not the same info again
    seeds, paths = list(state["seeds"]), list(state["paths"])
    seeds[index], paths[index] = result.seeds[0], str(result.paths[0])
    state = {"seeds": seeds, "paths": paths, "picked": index}
    return _tiles(paths, seeds, language), state, paths[index], seeds[index]


@friendly_errors
def interpolate_faces(ctx: StudioContext, model, seed_a, seed_b, frames, truncation, provenance: bool = True,
                      request: gr.Request = None, progress=gr.Progress()):
    """A morph from one seed's face to another's: an animated GIF and an MP4 (``provenance``: signed, and
    the MP4's frames watermarked)."""
    with ctx.jobs.running(request, TAB) as token:
        result = faces.interpolate_faces(model=model or DEFAULT_MODEL, seed_a=seed_a, seed_b=seed_b,
                                         frames=frames, truncation=truncation, provenance=bool(provenance),
                                         runtime=ctx.runtime_for(request),
                                         stop=token, on_progress=progress_callback(progress, _lang(ctx, request)))
    return str(result.gif), str(result.mp4) if result.mp4 else None


def stop_jobs(ctx: StudioContext, request: gr.Request) -> None:
    ctx.jobs.stop(request, TAB)


def refresh_models(ctx: StudioContext, current: str, request: gr.Request):
    choices = model_choices(ctx, _lang(ctx, request))
    names = [value for _, value in choices]
    return gr.Dropdown(choices=choices, value=current if current in names else DEFAULT_MODEL)


def on_open(ctx: StudioContext, request: gr.Request):
    """Trained checkpoints appear when the tab is opened; the model the user picked stays."""
    return gr.Dropdown(choices=model_choices(ctx, _lang(ctx, request)))


def on_load(ctx: StudioContext, request: gr.Request):
    """When the page loads: the default model's description in the page's language."""
    return describe_model(ctx, DEFAULT_MODEL, request)


# ---------------------------------------------------------------- layout and wiring
def build_tab(ctx: StudioContext) -> TabHandles:
    gr.Markdown(t("face.intro"))
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            # plain names at build time; availability (which may look at the network) is shown when the tab opens
            model = gr.Dropdown(label=t("common.model"), value=DEFAULT_MODEL, allow_custom_value=True,
                                choices=[s.name for s in ctx.catalog.models("face")])
            model_info = gr.Markdown()  # the description in the page's language: on_load
            count = gr.Slider(1, MAX_COUNT, value=8, step=1, label=t("face.count"))
            seed = gr.Number(label=t("common.seed"), value=-1, precision=0)
            truncation = gr.Slider(0.0, 1.5, value=1.0, step=0.05, label=t("face.truncation"))
            mark = provenance_checkbox()
            with gr.Row():
                generate = gr.Button(t("common.generate"), variant="primary")
                stop = gr.Button(t("common.stop"), variant="stop")
            refresh = gr.Button(t("face.refresh"), size="sm")
            gr.Markdown(t("face.train_hint"), elem_classes=["footnote"])
        with gr.Column(scale=2):
            gallery = gr.Gallery(label=t("face.gallery"), columns=4, height="auto", object_fit="contain",
                                 allow_preview=False, type="filepath")
            notes = gr.Markdown()
            with gr.Row():
                picked = gr.Image(label=t("face.picked"), type="filepath", interactive=False, height=256)
                with gr.Column():
                    picked_seed = gr.Number(label=t("face.picked_seed"), precision=0, interactive=False)
                    reroll = gr.Button(t("face.reroll"))
                    send = gr.Button(t("common.send_to_twin"), variant="secondary")
            with gr.Accordion(t("face.morph"), open=False):
                with gr.Row():
                    seed_a = gr.Number(label=t("face.seed_a"), value=1, precision=0)
                    seed_b = gr.Number(label=t("face.seed_b"), value=2, precision=0)
                    frames = gr.Slider(4, 120, value=36, step=1, label=t("face.frames"))
                morph = gr.Button(t("face.make_morph"))
                with gr.Row():
                    gif = gr.Image(label=t("face.gif"), type="filepath", interactive=False)
                    mp4 = gr.Video(label=t("face.mp4"), interactive=False)
    grid = gr.State(dict(EMPTY_GRID))
    mark_state = gr.State(True)  # off the API signature: API calls are always marked

    private = dict(queue=False, api_visibility="private")
    model.change(bind(describe_model, ctx), model, model_info, **private)
    mark.change(pass_through, mark, mark_state, **private)
    generated = generate.click(zero_gpu(120)(bind(generate_faces, ctx)), [model, count, seed, truncation, mark_state],
                   [gallery, notes, grid, picked, picked_seed], api_name="generate_faces", show_progress_on=gallery,
                   **ctx.concurrency("face"))
    gallery.select(pick_face, grid, [grid, picked, picked_seed], **private)
    rerolled = reroll.click(zero_gpu(60)(bind(reroll_face, ctx)), [model, truncation, grid, mark_state], [gallery, grid, picked, picked_seed],
                 api_name="reroll_face", show_progress_on=picked, **ctx.concurrency("face"))
    picked_seed.change(pass_through, picked_seed, seed_b, **private)  # morph from the last face to the picked one
    morphed = morph.click(zero_gpu(120)(bind(interpolate_faces, ctx)), [model, seed_a, seed_b, frames, truncation, mark_state],
                          [gif, mp4],
                api_name="interpolate_faces", show_progress_on=gif, **ctx.concurrency("face"))
    clear_errors_on_success(generated, rerolled, morphed)
    stop.click(bind(stop_jobs, ctx), None, None, **private)
    refresh.click(bind(refresh_models, ctx), model, model, **private).then(
        bind(describe_model, ctx), model, model_info, **private)

    return TabHandles(photo_source=picked, send_photo=send, on_open=(bind(on_open, ctx), [model]),
                      on_load=(bind(on_load, ctx), [model_info]))
