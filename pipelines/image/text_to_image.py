"""Text-to-image with the Stable Diffusion family through diffusers.

Does: hub ids and local diffusers folders (SD 1.x, SD-Turbo, SDXL, SDXL-Turbo) through
AutoPipelineForText2Image; single-file ``.safetensors`` checkpoints (A1111 style) through
``from_single_file``; A1111-style schedulers; seeds (a batch uses seed, seed+1, ...); progress, preview
and Stop between denoising steps; memory savers (fp16 and CPU offload on GPUs, attention slicing,
VAE tiling); NaN/black image detection; PNGs saved under outputs/image/ with their parameters inside.

Does not: img2img, inpainting, LoRA, upscaling; unpickle ``.ckpt`` files unless the caller allows it
(``allow_pickle=True``, ``--allow-pickle`` or AIGC_ALLOW_PICKLE=1).

    python -m pipelines.text_to_image --prompt "a red fox" --model sd-turbo --out fox.png
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core.catalog import TASK_FOLDERS, ModelSpec, availability, hub_reachable
from ..core.errors import ModelLoadError, Stopped, UserError
from ..core.jobs import ProgressFn, StopToken, check_stop, report
from ..core.notices import Notice
from ..core.seeds import resolve_seed
from ..core.outputs import atomic_path, new_output_path
from ..core.png_metadata import png_info

TASK = "image"
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_STEPS, MAX_BATCH = 150, 8
DEFAULT_SCHEDULER = "Default"  # the scheduler the model ships with

# A1111 sampler names -> diffusers scheduler class and its settings
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {}),
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++"}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "PNDM": ("PNDMScheduler", {"skip_prk_steps": True}),
}
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")

# SD latents -> RGB, a fixed linear map good enough for a live preview (no VAE decode per step)
_PREVIEW_RGB = ((0.298, 0.207, 0.208), (0.187, 0.286, 0.173), (-0.158, 0.189, 0.264), (-0.184, -0.271, -0.473))


@dataclass
class ImageResult:
    images: list  # PIL images
    paths: list[Path]  # saved PNGs (parameters inside)
    seeds: list[int]
    params: dict  # what was asked, after defaults and rounding (seed = the first image's)
    notices: list[Notice] = field(default_factory=list)
    stopped: bool = False  # Stop was pressed: only the images finished before it are here


@dataclass
class LoadedPipeline:
    """A diffusers pipeline in the cache, with a lock: a pipeline call keeps state on the object."""

    pipe: Any
    memory_notes: list[tuple[str, str]]  # memory savers turned on: (English, Chinese)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size_bytes(self) -> int:
        import torch

        modules = [c for c in self.pipe.components.values() if isinstance(c, torch.nn.Module)]
        return sum(p.numel() * p.element_size() for m in modules for p in m.parameters()) or 1

    def close(self) -> None:
        self.pipe = None


class _Notes(list):
    """The run's notices, added as (English, Chinese) pairs."""

    def add(self, en: str, zh: str, level: str = "warning") -> None:
        self.append(Notice(en, zh, level))


# ---------------------------------------------------------------- model defaults and loading
def model_defaults(spec: ModelSpec) -> dict:
    """steps, guidance, size (native side in px) and whether it is SDXL, without loading weights."""
    defaults = {"steps": 25, "guidance": 7.5, "size": 512, "xl": False}
    source = Path(spec.source)
    if spec.source_kind == "local" and source.is_dir():
        index = _read_json(source / "model_index.json")
        defaults["xl"] = "XL" in str(index.get("_class_name", ""))
        unet = _read_json(source / "unet" / "config.json")
        vae = _read_json(source / "vae" / "config.json")
        if unet.get("sample_size") and vae.get("block_out_channels"):
            defaults["size"] = int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
        if defaults["xl"]:
            defaults.update(steps=30, guidance=6.0)
    if "turbo" in spec.name.lower() or "turbo" in spec.source.lower():
        defaults.update(steps=1, guidance=0.0, size=512)
    defaults.update({k: v for k, v in spec.options.items() if k in ("steps", "guidance", "size")})
    return defaults


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def size_limit(spec: ModelSpec) -> int:
    """Largest side allowed for a model: twice its native size, at least 1024, at most MAX_SIDE."""
    return min(MAX_SIDE, max(1024, 2 * model_defaults(spec)["size"]))


def _source_kind(spec: ModelSpec) -> str:
    """diffusers (hub id or folder) | single_file | pickle."""
    path = Path(spec.source)
    if spec.source_kind == "hub":
        return "diffusers"
    if path.is_file():
        return "pickle" if path.suffix.lower() in PICKLE_SUFFIXES else "single_file"
    return "diffusers"


def single_file_config(path: Path, spec: ModelSpec | None = None) -> Path | None:
    """The diffusers config folder for a single-file checkpoint: models/image/<name>.config/ next to it."""
    candidates = [Path(spec.options["config"])] if spec and spec.options.get("config") else []
    candidates.append(path.with_name(path.stem + ".config"))
    return next((c for c in candidates if (c / "model_index.json").is_file()), None)


def _is_sdxl_checkpoint(path: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return any(k.startswith("conditioner.embedders.1") for k in f.keys())


def _load_pipeline(spec: ModelSpec, device: str, dtype) -> LoadedPipeline:
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline, StableDiffusionXLPipeline

    kind = _source_kind(spec)
    offline = not hub_reachable()
    if kind == "diffusers":
        kwargs = dict(dtype=dtype, use_safetensors=True, local_files_only=offline or spec.source_kind == "local")
        try:
            pipe = AutoPipelineForText2Image.from_pretrained(spec.source, **kwargs)
        except (OSError, ValueError) as exc:
            raise _load_error(spec, exc, offline) from exc
    else:
        path = Path(spec.source)
        cls = StableDiffusionXLPipeline if kind == "single_file" and _is_sdxl_checkpoint(path) else StableDiffusionPipeline
        config = single_file_config(path, spec)
        kwargs = dict(dtype=dtype, local_files_only=offline or config is not None)
        if config is not None:
            kwargs["config"] = str(config)
        try:
            pipe = cls.from_single_file(str(path), **kwargs)
        except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds here; all mean "cannot load"
            if config is None and offline:
                raise ModelLoadError(
                    f"{path.name} needs its base model's configuration (model_index.json, component configs, "
                    f"tokenizer), which diffusers downloads from the hub, and there is no network. Put it in "
                    f"models/image/{path.stem}.config/ (a diffusers folder of the same family, weights not needed).",
                    zh=f"{path.name} 需要其基础模型的配置文件（model_index.json、各组件配置、分词器），diffusers 会从 Hub 下载，"
                       f"但当前没有网络。请将其放入 models/image/{path.stem}.config/（同系列的 diffusers 文件夹，无需权重）。"
                ) from exc
            raise _load_error(spec, exc, offline) from exc
    pipe.set_progress_bar_config(disable=True)
    notes = _place_on_device(pipe, device)
    return LoadedPipeline(pipe=pipe, memory_notes=notes)


def _load_error(spec: ModelSpec, exc: BaseException, offline: bool) -> ModelLoadError:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    where = " (no network: put the model in models/image/)" if offline else ""
    return ModelLoadError(f"Could not load {spec.name}: {first_line}{where}",
                          zh=f"无法加载 {spec.name}：{first_line}" + ("（无网络：请把模型放入 models/image/）" if offline else ""))


def _place_on_device(pipe, device: str) -> list[tuple[str, str]]:
    """fp16 was chosen by the caller; here: GPU placement or CPU offload, and attention slicing if short."""
    import psutil

    from ..core.devices import gpu_memory_bytes

    weights = LoadedPipeline(pipe, []).size_bytes
    notes = []
    if device.startswith("cuda"):
        total = gpu_memory_bytes(device) or 0
        if total and total < 2 * weights + 2 * 2**30:  # weights + activations would not fit: offload
            pipe.enable_model_cpu_offload(device=device)
            notes.append(("model CPU offload", "模型 CPU 卸载"))
        else:
            pipe.to(device)
    elif device != "cpu":
        pipe.to(device)
        pipe.enable_attention_slicing()  # diffusers' advice for Apple's MPS
        notes.append(("attention slicing", "注意力切片"))
    elif psutil.virtual_memory().available < 2 * weights + 2**30:
        pipe.enable_attention_slicing()
        notes.append(("attention slicing", "注意力切片"))
    return notes


def _make_scheduler(pipe, name: str):
    import diffusers

    if name == DEFAULT_SCHEDULER:
        return type(pipe.scheduler).from_config(pipe.scheduler.config)  # fresh: schedulers keep state
    class_name, settings = SCHEDULERS[name]
    return getattr(diffusers, class_name).from_config(pipe.scheduler.config, **settings)


# ---------------------------------------------------------------- the main function
@dataclass
class ImageRequest:
    """The checked inputs of one call: the model's defaults filled in, sizes rounded, the seed resolved."""

    prompt: str
    negative_prompt: str
    spec: ModelSpec
    kind: str  # diffusers | single_file | pickle
    steps: int
    guidance: float
    width: int
    height: int
    seed: int  # the first image's; image i uses seed + i
    batch_size: int
    scheduler: str
    notices: list[Notice] = field(default_factory=list)  # what was changed (a size rounded to 8 px...)


def check_inputs(prompt: str, *, negative_prompt: str = "", model: str, steps=None, guidance=None, width=None,
                 height=None, seed=-1, batch_size=1, scheduler: str | None = None, runtime=None,
                 allow_pickle: bool = False) -> ImageRequest:
    """Every check that needs no weights, with a clear UserError (both languages) for the first problem."""
    from ..core.runtime import Runtime

    runtime = runtime or Runtime.default()
    notes = _Notes()
    prompt = (prompt or "").strip()
    if not prompt:
        raise UserError("Please write a prompt: what should the image show?", zh="请输入提示词：图片里应该有什么？")
    if not model:
        folder = TASK_FOLDERS[TASK]
        raise UserError(f"Please choose a model. If the list has none that can run, put a diffusers folder or a "
                        f".safetensors file in models/{folder}/ (see the Text-to-image tab).",
                        zh=f"请选择一个模型。若列表中没有可运行的模型，请把 diffusers 文件夹或 .safetensors 文件放入 "
                           f"models/{folder}/（见“文生图”页）。")
    spec = runtime.catalog.get(TASK, str(model))
    defaults = model_defaults(spec)
    steps = int(defaults["steps"] if steps in (None, "") else _finite(steps, "steps", "步数"))
    guidance = float(defaults["guidance"] if guidance in (None, "") else _finite(guidance, "guidance", "引导系数"))
    if not 1 <= steps <= MAX_STEPS:
        raise UserError(f"Steps must be between 1 and {MAX_STEPS} (got {steps}).",
                        zh=f"步数必须在 1 到 {MAX_STEPS} 之间（当前为 {steps}）。")
    if not 0 <= guidance <= 30:
        raise UserError(f"Guidance must be between 0 and 30 (got {guidance}).", zh=f"引导系数必须在 0 到 30 之间（当前为 {guidance}）。")
    width = _checked_side(width, defaults["size"], size_limit(spec), "width", "宽度", notes)
    height = _checked_side(height, defaults["size"], size_limit(spec), "height", "高度", notes)
    batch_size = int(_finite(batch_size, "batch size", "批量大小"))
    if not 1 <= batch_size <= MAX_BATCH:
        raise UserError(f"Batch size must be between 1 and {MAX_BATCH}.", zh=f"批量大小必须在 1 到 {MAX_BATCH} 之间。")
    scheduler = scheduler or DEFAULT_SCHEDULER
    if scheduler != DEFAULT_SCHEDULER and scheduler not in SCHEDULERS:
        raise UserError(f"Unknown scheduler '{scheduler}'. Choose one of: {', '.join(SCHEDULERS)}.",
                        zh=f"未知的采样器“{scheduler}”。可选：{', '.join(SCHEDULERS)}。")
    seed = resolve_seed(seed, span=batch_size)  # -1 = random; image i uses seed + i
    kind = _source_kind(spec)
    allow_pickle = allow_pickle or runtime.allow_pickle or os.environ.get("AIGC_ALLOW_PICKLE", "") in ("1", "true")
    if kind == "pickle" and not allow_pickle:
        raise UserError(f"{Path(spec.source).name} is a pickled checkpoint, which can run code when loaded. "
                        "Use a .safetensors file, or allow it explicitly (--allow-pickle / AIGC_ALLOW_PICKLE=1).",
                        zh=f"{Path(spec.source).name} 是 pickle 格式的检查点，加载时可能执行代码。请使用 .safetensors 文件，"
                           "或明确允许（--allow-pickle / AIGC_ALLOW_PICKLE=1）。")
    ready = availability(spec)
    if not ready.ok:
        folder = TASK_FOLDERS[TASK]
        raise ModelLoadError(
            f"{spec.name} cannot run here: {ready.reason}. With internet, download it in the Models tab "
            f"(`python -m pipelines.models download {spec.name}`), or put a diffusers folder or a .safetensors "
            f"file in models/{folder}/.",
            zh=f"{spec.name} 无法在此运行：{ready.reason_zh}。联网时可在“模型”页下载（`python -m pipelines.models "
               f"download {spec.name}`），或将 diffusers 文件夹或 .safetensors 文件放入 models/{folder}/。")
    return ImageRequest(prompt=prompt, negative_prompt=negative_prompt or "", spec=spec, kind=kind, steps=steps,
                        guidance=guidance, width=width, height=height, seed=seed, batch_size=batch_size,
                        scheduler=scheduler, notices=list(notes))


def generate_images(prompt: str, *, negative_prompt: str = "", model: str, steps: int | None = None,
                    guidance: float | None = None, width: int | None = None, height: int | None = None,
                    seed: int = -1, batch_size: int = 1, scheduler: str | None = None, runtime=None,
                    stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                    on_preview: Callable[[Any], None] | None = None, allow_pickle: bool = False,
                    provenance: bool = True) -> ImageResult:
    """Generate ``batch_size`` images (seeds seed, seed+1, ...) and save them under outputs/image/.

    ``provenance`` puts an invisible watermark and Content Credentials on the saved PNGs (the returned
    images stay the model's exact pixels, so a seed reproduces them)."""
    from ..core.runtime import Runtime

    runtime = runtime or Runtime.default()

    # 1. Check inputs (before any weight is loaded)
    ask = check_inputs(prompt, negative_prompt=negative_prompt, model=model, steps=steps, guidance=guidance,
                       width=width, height=height, seed=seed, batch_size=batch_size, scheduler=scheduler,
                       runtime=runtime, allow_pickle=allow_pickle)
    notes = _Notes(ask.notices)
    spec, kind, prompt, negative_prompt = ask.spec, ask.kind, ask.prompt, ask.negative_prompt
    steps, guidance, width, height, seed = ask.steps, ask.guidance, ask.width, ask.height, ask.seed
    batch_size, scheduler = ask.batch_size, ask.scheduler
    check_stop(stop)

    # 2. Load the model through the shared cache (once; reused by later calls)
    device, dtype = runtime.device, runtime.dtype()
    key = f"image:{kind}:{spec.source}:{device}"
    report(on_progress, 0.0, "loading model")
    with runtime.cache.use(key, lambda: _load_pipeline(spec, device, dtype), label=spec.name, device=device,
                           size_hint=int(spec.size_mb * 2**20) or None) as loaded, loaded.lock:
        pipe = loaded.pipe
        for en, zh in loaded.memory_notes:
            notes.add(f"Memory saver on: {en}.", f"已启用省内存选项：{zh}。", "info")

        # 3. Prompt length: CLIP reads 77 tokens; the rest is cut off, and the user should know
        _note_truncation(pipe, prompt, "prompt", "提示词", notes)
        if negative_prompt:
            _note_truncation(pipe, negative_prompt, "negative prompt", "反向提示词", notes)

        # 4. Per-call settings: a fresh scheduler, VAE tiling for big images
        pipe.scheduler = _make_scheduler(pipe, scheduler)
        if hasattr(pipe, "vae") and hasattr(pipe.vae, "enable_tiling"):
            if width * height > 1024 * 1024:
                pipe.vae.enable_tiling()
                notes.add("Memory saver on: VAE tiling.", "已启用省内存选项：VAE 分块解码。", "info")
            else:
                pipe.vae.disable_tiling()

        params = dict(prompt=prompt, negative_prompt=negative_prompt or "", model=spec.name, steps=steps,
                      guidance=guidance, width=width, height=height, seed=seed, batch_size=batch_size,
                      scheduler=scheduler)

        # 5. Denoise, one image per seed (so seed s+i gives the same image as a single run with s+i)
        images, paths, seeds, stopped = [], [], [], False
        for index in range(batch_size):
            image_seed = seed + index
            array, flagged = _denoise(pipe, prompt, negative_prompt, steps, guidance, width, height, image_seed,
                                      index, batch_size, stop, on_progress, on_preview)
            if array is None:  # Stop pressed during this image: drop the half-denoised one
                stopped = True
                break

            # 6. Check the image: NaN or black means the model (or fp16) failed, or the safety filter hid it
            problem = _image_problem(array, flagged)
            if problem:
                notes.add(f"Image with seed {image_seed} was {problem[0]}; not saved.",
                          f"种子 {image_seed} 的图片{problem[1]}，未保存。")
                continue

            # 7. Save with the parameters inside the PNG
            image = _to_pil(array)
            image_params = dict(params, seed=image_seed, batch_index=index)
            paths.append(_save_png(image, image_params, runtime.outputs_dir, provenance))
            images.append(image)
            seeds.append(image_seed)

    if stopped and not images:
        raise Stopped()
    if stopped:
        notes.add(f"Stopped: {len(images)} of {batch_size} images were finished.", f"已停止：完成了 {len(images)}/{batch_size} 张。")
    if not images:
        raise UserError("The model produced no usable image: " + " ".join(n.en for n in notes),
                        zh="模型没有生成可用的图片：" + "".join(n.zh for n in notes))
    report(on_progress, 1.0, "done")
    return ImageResult(images=images, paths=paths, seeds=seeds, params=params, notices=list(notes),
                       stopped=stopped)


def _finite(value, name: str, name_zh: str) -> float:
    import math

    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise UserError(f"The {name} must be a number (got {value!r}).", zh=f"{name_zh}必须是数字（当前为 {value!r}）。")
    return number


def _checked_side(value, default: int, limit: int, name: str, name_zh: str, notes: _Notes) -> int:
    side = int(round(_finite(default if value in (None, "") else value, name, name_zh)))
    rounded = int(side / 8 + 0.5) * 8  # nearest multiple of 8 (halves up): the VAE works on 8x8 blocks
    if not MIN_SIDE <= rounded <= limit:
        raise UserError(f"The {name} must be between {MIN_SIDE} and {limit} px for this model (got {side}).",
                        zh=f"此模型的{name_zh}必须在 {MIN_SIDE} 到 {limit} 像素之间（当前为 {side}）。")
    if rounded != side:
        notes.add(f"The {name} was rounded from {side} to {rounded} px (a multiple of 8).",
                  f"{name_zh}已从 {side} 调整为 {rounded} 像素（8 的倍数）。")
    return rounded


def _note_truncation(pipe, text: str, what: str, what_zh: str, notes: _Notes) -> None:
    tokenizer = getattr(pipe, "tokenizer", None) or getattr(pipe, "tokenizer_2", None)
    if tokenizer is None:
        return
    limit = tokenizer.model_max_length
    ids = tokenizer(text, truncation=False).input_ids
    if len(ids) > limit:
        dropped = tokenizer.decode(ids[limit - 1:-1]).strip()
        notes.add(f"The {what} is {len(ids) - 2} tokens; the model reads the first {limit - 2}, so this end was "
                  f"ignored: \"{dropped[:120]}\".",
                  f"{what_zh}共 {len(ids) - 2} 个词元，模型只读取前 {limit - 2} 个，以下结尾被忽略：“{dropped[:120]}”。")


def _denoise(pipe, prompt, negative_prompt, steps, guidance, width, height, seed, index, batch_size,
             stop, on_progress, on_preview):
    """One image; returns (float array HxWx3 in 0..1, safety-flagged) or (None, False) when stopped."""
    import torch

    def on_step_end(pipeline, step, timestep, tensors):
        total = max(getattr(pipeline, "_num_timesteps", steps) or steps, 1)
        report(on_progress, (index + (step + 1) / total) / batch_size,
               f"image {index + 1}/{batch_size} · step {step + 1}/{total}")
        if on_preview is not None:
            on_preview(latents_preview(tensors["latents"]))
        if stop is not None and stop.stopped:
            pipeline._interrupt = True  # diffusers skips the remaining steps
        return {}

    generator = torch.Generator(device="cpu").manual_seed(seed)  # CPU noise: same image on any device
    output = pipe(prompt=prompt, negative_prompt=negative_prompt or None, num_inference_steps=steps,
                  guidance_scale=guidance, width=width, height=height, generator=generator, output_type="np",
                  callback_on_step_end=on_step_end)
    if stop is not None and stop.stopped:
        return None, False
    flagged = bool((getattr(output, "nsfw_content_detected", None) or [False])[0])
    return output.images[0], flagged


def _image_problem(array, flagged: bool) -> tuple[str, str] | None:
    import numpy as np

    if np.isnan(array).any() or np.isinf(array).any():
        return ("NaN (the model's numbers overflowed; try the CPU or fp32)", "含 NaN（数值溢出；请尝试 CPU 或 fp32）")
    if flagged:
        return ("hidden by the model's safety checker", "被模型的安全检查器遮挡")
    if float(np.max(array)) < 2 / 255:
        return ("completely black", "全黑")
    return None


def _to_pil(array):
    import numpy as np
    from PIL import Image

    return Image.fromarray((np.clip(array, 0, 1) * 255).round().astype("uint8"))


def latents_preview(latents):
    """A small RGB picture of the current latents (first image), by a fixed linear map."""
    import torch
    from PIL import Image

    latent = latents[0].float().cpu()
    if latent.shape[0] != 4:
        latent = latent[:4]
    rgb = torch.einsum("chw,cr->hwr", latent, torch.tensor(_PREVIEW_RGB))
    rgb = ((rgb + 1) / 2).clamp(0, 1).mul(255).byte().numpy()
    return Image.fromarray(rgb).resize((rgb.shape[1] * 8, rgb.shape[0] * 8), Image.NEAREST)


def _save_png(image, params: dict, outputs_dir: Path, provenance: bool = True) -> Path:
    """Save with the parameters inside the PNG, the watermark and Content Credentials."""
    from ..provenance import save_png

    path = new_output_path(outputs_dir, TASK, ".png", stem=str(params["seed"]))
    with atomic_path(path) as tmp:
        save_png(image, tmp, model=str(params.get("model", "")), engine="text-to-image (diffusers)",
                 provenance=provenance, pnginfo=png_info(params), parameters=params)
    return path


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    p = argparse.ArgumentParser(description="Generate images with a Stable Diffusion model.")
    p.add_argument("--prompt", required=True)
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--model", required=True, help="catalog name, hub id, diffusers folder or .safetensors file")
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--seed", type=int, default=-1)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--scheduler", choices=[DEFAULT_SCHEDULER, *SCHEDULERS], default=DEFAULT_SCHEDULER)
    p.add_argument("--allow-pickle", action="store_true", help="allow pickled .ckpt files (they can run code)")
    p.add_argument("--out", required=True, help="output PNG; a batch writes NAME-1.png, NAME-2.png, ...")
    args = p.parse_args(argv)
    try:
        result = generate_images(args.prompt, negative_prompt=args.negative_prompt, model=args.model,
                                 steps=args.steps, guidance=args.guidance, width=args.width, height=args.height,
                                 seed=args.seed, batch_size=args.batch_size, scheduler=args.scheduler,
                                 allow_pickle=args.allow_pickle)
    except (UserError, Stopped) as exc:
        print(f"error: {exc or 'stopped'}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for i, (image, seed) in enumerate(zip(result.images, result.seeds)):
        target = out if len(result.images) == 1 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
        with atomic_path(target) as tmp:
            from ..provenance import save_png

            save_png(image, tmp, model=result.params["model"], engine="text-to-image (diffusers)",
                     pnginfo=png_info(dict(result.params, seed=seed)), parameters=dict(result.params, seed=seed))
        print(f"{target}  seed={seed}")
    for notice in result.notices:
        print(f"note: {notice.en}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
