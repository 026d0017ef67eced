"""Face synthesis: grids of faces from seeds, interpolation videos, and training your own face GAN.

Does:
- GAN faces: the bundled 64x64 DCGAN (``dcgan-faces-64``, offline; see :mod:`pipelines.face.dcgan`) and
  StyleGAN-style checkpoints trained by this studio (:mod:`pipelines.face.stylegan`, ``models/faces/*.safetensors``),
  with truncation psi;
- diffusion faces: unconditional DDPM / LDM pipelines (``google/ddpm-celebahq-256``,
  ``CompVis/ldm-celebahq-256``, or such folders in ``models/faces/``) through diffusers, with our own
  denoising loop so Stop and progress work between steps;
- ``portrait``: a portrait prompt through the text-to-image pipeline's model;
- face i of a grid uses seed ``seed + i``, so any face can be made again alone (re-roll one tile);
- interpolation between two seeds as an animated GIF and an MP4 (GAN models);
- ``python -m pipelines.face_synthesis train --images DIR``: train a StyleGAN-style generator.

Does not: edit or encode real photos into a GAN (no inversion), or upscale with a neural network:
small outputs are enlarged with a Lanczos filter for display and say so.

    python -m pipelines.face_synthesis --count 8 --seed 42 --out faces/
    python -m pipelines.face_synthesis interpolate --seed-a 1 --seed-b 2 --out morph/
    python -m pipelines.face_synthesis train --images my_faces/ --name my-faces --size 32 --steps 2000
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.catalog import TASK_FOLDERS, Availability, ModelSpec, availability
from ..core.errors import ModelLoadError, Stopped, UserError
from ..core.jobs import ProgressFn, StopToken, check_stop, report
from ..core.notices import Notice
from ..core.seeds import check_seed, resolve_seed
from ..core.outputs import atomic_path, new_output_path, write_params
from ..core.runtime import Runtime

DEFAULT_MODEL = "dcgan-faces-64"
PORTRAIT = "portrait"
MAX_COUNT = 64
DISPLAY_SIZE = 256  # small GAN faces are enlarged to this for display and saving
GAN_BACKENDS = ("dcgan", "stylegan")
DIFFUSION_BACKENDS = ("ddpm", "ldm", "diffusers")
PORTRAIT_PROMPT = ("studio portrait photo of a person, face centred, looking at the camera, neutral background, "
                   "soft light, sharp focus, detailed skin")
PORTRAIT_NEGATIVE = "cartoon, drawing, deformed, blurry, several people, text, watermark"


@dataclass
class FaceResult:
    images: list  # PIL images at the size shown and saved (small models upscaled to DISPLAY_SIZE)
    seeds: list[int]  # seed of each image: pass one back with count=1 to make that face again
    model: str
    native_size: int  # what the model itself makes (64 for the bundled DCGAN)
    paths: list[Path] = field(default_factory=list)  # saved PNGs (parameters in <png>.json beside them)
    params: dict = field(default_factory=dict)  # "licence" says what the faces may be used for
    notices: list[Notice] = field(default_factory=list)
    stopped: bool = False  # Stop was pressed: only the faces finished before it are here


@dataclass
class InterpolationResult:
    gif: Path
    mp4: Path | None
    frames: int
    seeds: tuple[int, int]
    model: str


# ---------------------------------------------------------------- models
def resolve_backend(spec: ModelSpec) -> str:
    """Which loader handles a model; paths and hub ids given directly ('auto') are recognised here."""
    if spec.backend != "auto":
        return spec.backend
    path = Path(spec.source)
    if path.suffix == ".safetensors":
        return "stylegan"
    return "diffusers"  # a diffusers folder or hub id: DiffusionPipeline reads model_index.json


def model_availability(spec: ModelSpec, runtime: Runtime) -> Availability:
    """The catalog's answer, except for ``portrait``, which can run only if a text-to-image model can."""
    if spec.backend == "portrait":
        if runtime.catalog.runnable_names("image"):
            return Availability(True)
        return Availability(False, "no text-to-image model can run here (see the Text-to-image tab)",
                            "这里没有可运行的文生图模型（见“文生图”页）")
    return availability(spec)


def _check_runnable(spec: ModelSpec, runtime: Runtime) -> None:
    state = model_availability(spec, runtime)
    if not state.ok:
        raise ModelLoadError(f"Model '{spec.name}' cannot run here: {state.reason}.",
                             zh=f"模型“{spec.name}”无法在此运行：{state.reason_zh or state.reason}。")


def _load_model(spec: ModelSpec, backend: str, runtime: Runtime):
    """Through the shared cache: loaded once, pinned while used."""
    device = runtime.device
    if backend == "dcgan":
        from .dcgan import load_dcgan

        loader = lambda: load_dcgan(spec, runtime.catalog.models_dir, device)  # noqa: E731
    elif backend == "stylegan":
        from .stylegan import load_generator

        loader = lambda: load_generator(Path(spec.source), device)  # noqa: E731
    else:
        loader = lambda: _load_diffusion(spec, device, runtime.dtype())  # noqa: E731
    return runtime.cache.use(f"face:{backend}:{spec.source}", loader, label=spec.name, device=device,
                             size_hint=int(spec.size_mb * 2**20) or None)


def _load_diffusion(spec: ModelSpec, device: str, dtype):
    from diffusers import DiffusionPipeline

    local = spec.source_kind == "local"
    try:
        pipe = DiffusionPipeline.from_pretrained(spec.source, dtype=dtype, local_files_only=local)
    except Exception as exc:  # noqa: BLE001 - a missing or broken model must read as a load error
        folder = TASK_FOLDERS["face"]
        raise ModelLoadError(
            f"Could not load {spec.name} ({exc.__class__.__name__}: {str(exc)[:200]}). With no network, put the "
            f"model folder in models/{folder}/.",
            zh=f"无法加载 {spec.name}（{exc.__class__.__name__}）。没有网络时，请把模型文件夹放入 models/{folder}/。") from exc
    if not hasattr(pipe, "unet") or pipe.unet.config.get("cross_attention_dim") is not None:
        raise ModelLoadError(f"{spec.name} is not an unconditional DDPM/LDM pipeline.",
                             zh=f"{spec.name} 不是无条件 DDPM/LDM 管线。")
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


# ---------------------------------------------------------------- generation
def check_inputs(count: int, seed: int, truncation: float) -> None:
    if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise UserError(f"Number of faces must be from 1 to {MAX_COUNT}, not {count}.",
                        zh=f"人脸数量必须在 1 到 {MAX_COUNT} 之间，而不是 {count}。")
    check_seed(seed, span=count)  # faces use seed .. seed + count - 1
    if not (isinstance(truncation, (int, float)) and math.isfinite(truncation) and 0.0 <= truncation <= 2.0):
        raise UserError("Truncation psi must be from 0 to 2 (1 = no truncation, smaller = more average faces).",
                        zh="截断系数 psi 必须在 0 到 2 之间（1 = 不截断，越小越接近平均脸）。")


def generate_faces(*, model: str = DEFAULT_MODEL, count: int = 8, seed: int = -1, truncation: float = 1.0,
                   steps: int | None = None, display_size: int | None = DISPLAY_SIZE, save: bool = False,
                   out_dir: Path | None = None, image_model: str | None = None, runtime: Runtime | None = None,
                   stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                   provenance: bool = True) -> FaceResult:
    """Faces for seeds ``seed .. seed+count-1`` (seed -1 = a random start, returned in ``seeds``).

    ``display_size`` enlarges smaller outputs (Lanczos) and None keeps the model's size; ``save`` writes
    PNGs under outputs/faces/ (or ``out_dir``); ``steps`` is for diffusion models; ``image_model`` picks
    the text-to-image model of the ``portrait`` preset; ``provenance`` puts an invisible watermark and
    Content Credentials on the saved PNGs (the returned images stay the model's exact pixels).
    """
    runtime = runtime or Runtime.default()
    # 1. Check inputs before any heavy work.
    count = _as_int(count, "count", "数量")
    truncation = float(truncation) if isinstance(truncation, (int, float)) else truncation
    check_inputs(count, seed, truncation)
    spec = runtime.catalog.get("face", model)  # unknown names raise a clear ModelLoadError
    _check_runnable(spec, runtime)
    seed = resolve_seed(seed, span=count)  # -1 = random; returned in ``seeds``
    seeds = list(range(seed, seed + count))
    backend = resolve_backend(spec)
    notices: list[Notice] = []

    # 2. Run the model.
    stopped = False
    try:
        if backend in GAN_BACKENDS:
            with _load_model(spec, backend, runtime) as generator:
                pixels = gan_faces(generator, seeds, truncation, stop=stop, on_progress=on_progress)
            images = to_pil(pixels)
        elif backend == "portrait":
            images = _portrait_faces(seeds, image_model, steps, runtime, stop, on_progress, notices)
        else:
            with _load_model(spec, backend, runtime) as pipe:
                images = _diffusion_faces(pipe, seeds, steps, stop, on_progress)
        if backend not in GAN_BACKENDS and truncation != 1.0:
            notices.append(Notice("Truncation applies to GAN models only; it was ignored.",
                                  "截断系数只适用于 GAN 模型，已忽略。"))
    except Stopped as exc:
        images, stopped = list(getattr(exc, "partial", []) or []), True
        if not images:
            raise
        seeds = seeds[:len(images)]
    native = images[0].width if images else 0

    # 3. Enlarge small outputs for display, say so.
    if display_size and native and native < display_size:
        images = [upscale(image, display_size) for image in images]
        notices.append(Notice(f"This model makes {native} px faces; they are enlarged to {display_size} px "
                              "(Lanczos filter) and look soft.",
                              f"该模型生成 {native} 像素的人脸，已放大到 {display_size} 像素（Lanczos 滤波），画面会偏柔和。",
                              "info"))

    # 4. Save (one PNG per face, parameters beside it).
    params = {"task": "faces", "model": spec.name, "seeds": seeds, "truncation": truncation, "steps": steps,
              "native_size": native, "display_size": images[0].width if images else 0, "licence": spec.licence}
    paths = _save_faces(images, seeds, params, spec, runtime, out_dir, provenance) if (save or out_dir) else []
    return FaceResult(images=images, seeds=seeds, model=spec.name, native_size=native, paths=paths, params=params,
                      notices=notices, stopped=stopped)


def _as_int(value, name: str, name_zh: str) -> int:
    try:
        number = float(value)
        if not math.isfinite(number) or number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a whole number, not {value!r}.",
                        zh=f"{name_zh}必须是整数，而不是 {value!r}。") from None


def gan_latents(generator, seeds: list[int], truncation: float = 1.0):
    """One latent per seed, each from its own seeded generator: a face depends on its seed only."""
    import torch

    dim = getattr(generator, "latent_dim", None) or generator.config.style_dim
    z = torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    if hasattr(generator, "latent_dim"):  # DCGAN: truncate toward the prior's mean, zero
        z = z * truncation
    return z


def gan_faces(generator, seeds: list[int], truncation: float = 1.0, batch: int = 64,
              stop: StopToken | None = None, on_progress: ProgressFn | None = None):
    """uint8 pixels (N, H, W, 3) for the seeds, in batches (Stop is checked between batches)."""
    import numpy as np
    import torch

    device = next(generator.parameters()).device
    chunks = []
    for start in range(0, len(seeds), batch):
        check_stop(stop)
        part = seeds[start:start + batch]
        z = gan_latents(generator, part, truncation).to(device)
        with torch.inference_mode():
            if hasattr(generator, "latent_dim"):
                images = generator(z)
            else:  # StyleGAN: truncation in w space, per-layer noise from each face's own seed
                noise = _stylegan_noise(generator, part)
                images = generator(z, psi=truncation, noise=noise)
        chunks.append(_to_uint8(images))
        report(on_progress, (start + len(part)) / len(seeds), f"{start + len(part)}/{len(seeds)} faces")
    return np.concatenate(chunks)


def _stylegan_noise(generator, seeds: list[int]) -> list:
    import torch

    per_face = [generator.make_noise(1, torch.Generator().manual_seed(s + 1)) for s in seeds]
    return [torch.cat(layer) for layer in zip(*per_face)]


def _to_uint8(images):
    """[-1, 1] (N, 3, H, W) -> contiguous uint8 (N, H, W, 3); in place where it can (this is hot)."""
    import torch

    pixels = images.float().clamp(-1, 1)
    pixels.add_(1).mul_(127.5).round_()
    return pixels.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def to_pil(pixels) -> list:
    from PIL import Image

    # frombuffer on contiguous rows: no per-image copy (PIL keeps the array alive)
    return [Image.frombuffer("RGB", (p.shape[1], p.shape[0]), p, "raw", "RGB", 0, 1) for p in pixels]


def upscale(image, size: int):
    """Enlarge a small face with a Lanczos filter (sharp edges, few ringing artefacts at 4x)."""
    from PIL import Image

    return image.resize((size, size), Image.LANCZOS)


def _diffusion_faces(pipe, seeds, steps, stop, on_progress) -> list:
    """Unconditional DDPM / LDM sampling, one face per seed, Stop and progress between steps."""
    import torch
    from diffusers import DDIMScheduler, DDPMScheduler

    steps = steps or 50
    if not 1 <= steps <= 1000:
        raise UserError("Steps must be from 1 to 1000.", zh="步数必须在 1 到 1000 之间。")
    scheduler = pipe.scheduler
    if isinstance(scheduler, DDPMScheduler) and steps < scheduler.config.num_train_timesteps:
        # DDPM needs every training step; DDIM samples the same model well in 50-100 steps
        scheduler = DDIMScheduler.from_config(scheduler.config)
    unet, decoder = pipe.unet, getattr(pipe, "vqvae", None) or getattr(pipe, "vae", None)
    size = unet.config.sample_size
    size = size if isinstance(size, int) else size[0]
    images = []
    for index, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(seed)
        sample = torch.randn(1, unet.config.in_channels, size, size, generator=generator)
        sample = (sample * scheduler.init_noise_sigma).to(unet.device, unet.dtype)
        scheduler.set_timesteps(steps)
        with torch.inference_mode():
            for i, t in enumerate(scheduler.timesteps):
                if stop is not None and stop.stopped:
                    error = Stopped()
                    error.partial = images
                    raise error
                noise_pred = unet(scheduler.scale_model_input(sample, t), t).sample
                sample = scheduler.step(noise_pred, t, sample, generator=generator).prev_sample
                report(on_progress, (index + (i + 1) / steps) / len(seeds), f"face {index + 1}/{len(seeds)}, "
                       f"step {i + 1}/{steps}")
            if decoder is not None:  # latent diffusion: decode the latents to pixels
                scaling = getattr(decoder.config, "scaling_factor", 1.0) or 1.0
                sample = decoder.decode(sample / scaling).sample
        images += to_pil(_to_uint8(sample))
    return images


def _portrait_faces(seeds, image_model, steps, runtime, stop, on_progress, notices) -> list:
    from ..image.text_to_image import generate_images

    names = runtime.catalog.runnable_names("image")
    model = image_model or (names[0] if names else None)
    if model is None:
        raise ModelLoadError("The portrait preset needs a text-to-image model, and none can run here. "
                             "Add one in models/image/ (see the Text-to-image tab).",
                             zh="“肖像”预设需要文生图模型，但这里没有可运行的。请放入 models/image/（见“文生图”页）。")
    images = []
    for index, seed in enumerate(seeds):
        check_stop(stop)
        part = (lambda f, text, i=index: report(on_progress, (i + f) / len(seeds), text)) if on_progress else None
        result = generate_images(PORTRAIT_PROMPT, negative_prompt=PORTRAIT_NEGATIVE, model=model, steps=steps,
                                 seed=seed, batch_size=1, runtime=runtime, stop=stop, on_progress=part)
        images += result.images
        notices.extend(n for n in result.notices if n not in notices)
        if getattr(result, "stopped", False):
            error = Stopped()
            error.partial = images
            raise error
    notices.insert(0, Notice(f"Portrait preset: made with the text-to-image model {model}.",
                             f"肖像预设：由文生图模型 {model} 生成。", "info"))
    return images


def _save_faces(images, seeds, params, spec, runtime, out_dir, provenance: bool = True) -> list[Path]:
    from ..provenance import save_png

    paths = []
    for image, seed in zip(images, seeds):
        if out_dir is not None:
            path = Path(out_dir) / f"{spec.name}-seed{seed}.png"
        else:
            path = new_output_path(runtime.outputs_dir, "faces", ".png", stem=f"{spec.name}-seed{seed}")
        with atomic_path(path) as tmp:
            save_png(image, tmp, model=spec.name, engine="face synthesis", provenance=provenance,
                     parameters={**params, "seed": seed, "seeds": None})
        write_params(path, {**params, "seed": seed, "seeds": None})
        paths.append(path)
    return paths


# ---------------------------------------------------------------- interpolation
def interpolate_faces(*, model: str = DEFAULT_MODEL, seed_a: int, seed_b: int, frames: int = 36,
                      truncation: float = 1.0, fps: int = 12, display_size: int = DISPLAY_SIZE,
                      mp4: bool = True, out_dir: Path | None = None, runtime: Runtime | None = None,
                      stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                      provenance: bool = True) -> InterpolationResult:
    """A morph from face ``seed_a`` to face ``seed_b`` (GAN models): spherical interpolation of the latents
    (DCGAN), linear in w space with fixed noise (StyleGAN). Saved as an animated GIF, and an MP4.

    ``provenance``: Content Credentials on both files and an invisible watermark in every MP4 frame (a GIF's
    256-colour palette wipes out an invisible mark, so the GIF carries the credentials only)."""
    import numpy as np
    import torch

    runtime = runtime or Runtime.default()
    # 1. Check inputs.
    frames, fps = _as_int(frames, "frames", "帧数"), _as_int(fps, "fps", "帧率")
    check_inputs(1, seed_a, float(truncation))
    check_inputs(1, seed_b, float(truncation))
    seed_a, seed_b = resolve_seed(seed_a), resolve_seed(seed_b)  # -1 = random, as everywhere
    if not 2 <= frames <= 240 or not 1 <= fps <= 60:
        raise UserError("Frames must be from 2 to 240 and fps from 1 to 60.", zh="帧数必须在 2 到 240 之间，帧率在 1 到 60 之间。")
    spec = runtime.catalog.get("face", model)
    backend = resolve_backend(spec)
    if backend not in GAN_BACKENDS:
        raise UserError("Interpolation works with GAN models (the DCGAN or your trained StyleGAN).",
                        zh="插值动画只支持 GAN 模型（DCGAN 或你训练的 StyleGAN）。")
    _check_runnable(spec, runtime)

    # 2. Latents along the path, rendered in batches.
    with _load_model(spec, backend, runtime) as generator:
        z_a, z_b = gan_latents(generator, [seed_a, seed_b], 1.0)
        weights = torch.linspace(0, 1, frames)
        pixels = []
        with torch.inference_mode():
            device = next(generator.parameters()).device
            if backend == "dcgan":
                z = torch.stack([slerp(z_a, z_b, float(w)) for w in weights]) * truncation
                for start in range(0, frames, 32):
                    check_stop(stop)
                    pixels.append(_to_uint8(generator(z[start:start + 32].to(device))))
                    report(on_progress, min(1.0, (start + 32) / frames) * 0.8, "frames")
            else:
                w_a, w_b = generator.truncate(generator.mapping(torch.stack([z_a, z_b]).to(device)), truncation)
                noise = _stylegan_noise(generator, [seed_a])
                for start in range(0, frames, 32):
                    check_stop(stop)
                    w = torch.stack([torch.lerp(w_a, w_b, float(x)) for x in weights[start:start + 32]])
                    ws = w.unsqueeze(1).repeat(1, generator.num_ws, 1)
                    pixels.append(_to_uint8(generator.synthesis(ws, [n.expand(len(w), -1, -1, -1) for n in noise])))
                    report(on_progress, min(1.0, (start + 32) / frames) * 0.8, "frames")
    images = to_pil(np.concatenate(pixels))
    if display_size and images[0].width < display_size:
        images = [upscale(image, display_size) for image in images]

    # 3. Write the GIF (and the MP4) atomically, signed before they move into place.
    from ..provenance import sign_output
    from ..provenance.payload import new_output_id

    stem = f"{spec.name}-{seed_a}-to-{seed_b}"
    gif = Path(out_dir) / f"{stem}.gif" if out_dir else new_output_path(runtime.outputs_dir, "faces", ".gif", stem)
    output_id = new_output_id() if provenance else None
    params = {"task": "faces/interpolation", "model": spec.name, "seed_a": seed_a, "seed_b": seed_b,
              "frames": frames, "fps": fps, "truncation": truncation, "licence": spec.licence,
              "output_id": output_id}
    signing = dict(model=spec.name, engine="face interpolation", output_id=output_id, parameters=params,
                   provenance=provenance)
    with atomic_path(gif) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        sign_output(tmp, **signing)
    video = None
    if mp4:
        from ..core.media import Mp4Writer
        from ..provenance.image_watermark import embed_watermark
        from ..provenance.payload import Payload

        video = gif.with_suffix(".mp4")
        width, height = images[0].size
        with atomic_path(video) as tmp:
            with Mp4Writer(tmp, width, height, fps, metadata={"comment": json.dumps(params)}) as writer:
                for image in images:  # each frame marked on its own: the face changes from frame to frame
                    rgb = np.asarray(image.convert("RGB"))
                    writer.write(embed_watermark(rgb, Payload(output_id)) if output_id else rgb)
            sign_output(tmp, **signing)
    write_params(gif, params)
    report(on_progress, 1.0, "done")
    return InterpolationResult(gif=gif, mp4=video, frames=frames, seeds=(seed_a, seed_b), model=spec.name)


def slerp(a, b, t: float):
    """Spherical interpolation: Gaussian latents keep their typical length along the path."""
    import torch

    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


# ---------------------------------------------------------------- training
def train_face_model(*, images: Path, name: str = "my-faces", size: int = 64, steps: int = 2000,
                     batch_size: int = 8, lr: float = 0.002, style_dim: int | None = None,
                     channel_max: int | None = None, sample_every: int = 200, checkpoint_every: int = 500,
                     resume: bool = True, out: Path | None = None, seed: int = 0, runtime: Runtime | None = None,
                     stop: StopToken | None = None, on_progress: ProgressFn | None = None, log=None):
    """Train a StyleGAN-style generator on a folder of images; the checkpoint lands in models/faces/NAME.safetensors
    (so the Face synthesis tab lists it) unless ``out`` says otherwise. Returns :class:`stylegan.TrainResult`."""
    from .stylegan import StyleGANConfig, TrainOptions, train_stylegan

    runtime = runtime or Runtime.default()
    if not name or any(c in name for c in "/\\:") or name.startswith("."):
        raise UserError("The model name must be a plain file name (no slashes).", zh="模型名称必须是简单的文件名（不含斜杠）。")
    checkpoint = Path(out) if out else runtime.catalog.models_dir / TASK_FOLDERS["face"] / f"{name}.safetensors"
    # Small images get a small network, so that 32-64 px train on a CPU.
    small = size <= 64
    config = StyleGANConfig(size=size, style_dim=style_dim or (128 if small else 512),
                            channel_base=4096 if small else 16384, channel_max=channel_max or (64 if size <= 32 else 128 if small else 512))
    options = TrainOptions(steps=steps, batch_size=batch_size, lr=lr, sample_every=sample_every,
                           checkpoint_every=checkpoint_every, seed=seed, r1_gamma=0.1 * (size / 32) ** 2 if small
                           else 10.0)
    return train_stylegan(images=Path(images), checkpoint=checkpoint, config=config, options=options,
                          resume=resume, device=runtime.device, stop=stop, on_progress=on_progress, log=log)


# ---------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in ("train", "interpolate", "generate") else "generate"
    parser = argparse.ArgumentParser(prog=f"python -m pipelines.face_synthesis {command}")
    if command == "generate":
        parser.add_argument("--model", default=DEFAULT_MODEL)
        parser.add_argument("--count", type=int, default=8)
        parser.add_argument("--seed", type=int, default=-1)
        parser.add_argument("--truncation", type=float, default=1.0)
        parser.add_argument("--steps", type=int, default=None, help="diffusion models only")
        parser.add_argument("--size", type=int, default=DISPLAY_SIZE, help="enlarge smaller faces to this (0: keep)")
        parser.add_argument("--out", type=Path, required=True)
    elif command == "interpolate":
        parser.add_argument("--model", default=DEFAULT_MODEL)
        parser.add_argument("--seed-a", type=int, required=True)
        parser.add_argument("--seed-b", type=int, required=True)
        parser.add_argument("--frames", type=int, default=36)
        parser.add_argument("--fps", type=int, default=12)
        parser.add_argument("--truncation", type=float, default=1.0)
        parser.add_argument("--out", type=Path, required=True)
    else:
        parser.add_argument("--images", type=Path, required=True, help="folder of face images (searched recursively)")
        parser.add_argument("--name", default="my-faces", help="saved as models/faces/NAME.safetensors")
        parser.add_argument("--out", type=Path, default=None, help="checkpoint path instead of models/faces/NAME")
        parser.add_argument("--size", type=int, default=64)
        parser.add_argument("--steps", type=int, default=2000)
        parser.add_argument("--batch-size", type=int, default=8)
        parser.add_argument("--lr", type=float, default=0.002)
        parser.add_argument("--sample-every", type=int, default=200)
        parser.add_argument("--checkpoint-every", type=int, default=500)
        parser.add_argument("--no-resume", action="store_true", help="start again even if the checkpoint exists")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--threads", type=int, default=0,
                            help="CPU threads for torch (1 is often fastest on a busy machine; 0: torch's choice)")
    args = parser.parse_args(argv)
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)
    runtime = Runtime.default()
    try:
        if command == "generate":
            result = generate_faces(model=args.model, count=args.count, seed=args.seed, truncation=args.truncation,
                                    steps=args.steps, display_size=args.size or None, out_dir=args.out,
                                    runtime=runtime)
            for path, seed in zip(result.paths, result.seeds):
                print(f"{path}\tseed {seed}")
            for notice in result.notices:
                print(f"note: {notice.en}", file=sys.stderr)
            spec = runtime.catalog.get("face", result.model)
            if not spec.commercial_use:
                print(f"note: licence {spec.licence}: not for commercial use", file=sys.stderr)
        elif command == "interpolate":
            result = interpolate_faces(model=args.model, seed_a=args.seed_a, seed_b=args.seed_b, frames=args.frames,
                                       fps=args.fps, truncation=args.truncation, out_dir=args.out, runtime=runtime)
            print(result.gif)
            if result.mp4:
                print(result.mp4)
        else:
            started = time.perf_counter()
            result = train_face_model(images=args.images, name=args.name, out=args.out, size=args.size,
                                      steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                      sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                                      resume=not args.no_resume, seed=args.seed, runtime=runtime,
                                      log=lambda line: print(line, file=sys.stderr, flush=True))
            if result.images_skipped:
                print(f"skipped {len(result.images_skipped)} unreadable files: {', '.join(result.images_skipped[:10])}",
                      file=sys.stderr)
            print(f"{result.checkpoint}\tstep {result.step}\t{time.perf_counter() - started:.0f} s")
            for sample in result.samples[-1:]:
                print(f"samples: {sample}")
    except (UserError, Stopped) as exc:
        message = exc.message if isinstance(exc, UserError) else "stopped"
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
