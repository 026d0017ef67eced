"""A StyleGAN-style face generator written for this project, its discriminator, and a trainer.

What it has (after StyleGAN / StyleGAN2, written from the papers' ideas, not copied code):
- a mapping network z -> w (pixel norm, MLP with a lower learning rate);
- style-modulated 3x3 convolutions with weight demodulation (StyleGAN2's replacement for AdaIN),
  a learned 4x4 constant input, per-layer noise with a learned per-channel strength, skip-style
  to-RGB outputs at every resolution;
- the truncation trick (w -> w_avg + psi (w - w_avg), w_avg tracked while training) and style
  mixing (coarse layers from one latent, fine layers from another);
- a residual discriminator with a minibatch standard deviation layer;
- training with the non-saturating logistic loss, lazy R1 regularisation, style-mixing
  regularisation, horizontal flips, and an exponential moving average (EMA) of the generator,
  which is the one used to make faces;
- resumable checkpoints in ONE safetensors file (generator, EMA generator, discriminator, both
  Adam states; the settings and step in the file's metadata).

What it does not do: progressive growing (the skip architecture trains all resolutions at once),
adaptive augmentation, path-length regularisation, or loading NVIDIA's pickled StyleGAN weights.
Small sizes (16-64 px) train on CPU in minutes to hours; 128 px and up want a GPU.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..core.errors import ModelLoadError, Stopped, UserError
from ..core.jobs import ProgressFn, StopToken, check_stop, report

CHECKPOINT_FORMAT = "aigc-stylegan-1"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass
class StyleGANConfig:
    """The network's shape; stored in every checkpoint so it rebuilds itself."""

    size: int = 64  # output resolution, a power of two from 8 to 1024
    style_dim: int = 256  # length of z and w
    mapping_layers: int = 4
    channel_base: int = 4096  # channels at resolution r: min(channel_max, channel_base // r)
    channel_max: int = 256

    def channels(self, resolution: int) -> int:
        return max(8, min(self.channel_max, self.channel_base // resolution))

    def check(self) -> None:
        if self.size < 8 or self.size > 1024 or self.size & (self.size - 1):
            raise UserError(f"Image size must be a power of two from 8 to 1024, not {self.size}.",
                            zh=f"图像尺寸必须是 8 到 1024 之间的 2 的幂，而不是 {self.size}。")


@dataclass
class TrainOptions:
    steps: int = 2000  # total steps (a resumed run continues up to this number)
    batch_size: int = 8
    lr: float = 0.002
    r1_gamma: float = 1.0  # gradient penalty on real images; larger for bigger images
    r1_every: int = 4  # lazy regularisation: the penalty every few steps, scaled up to match
    mixing_prob: float = 0.9  # style-mixing regularisation
    ema_kimg: float = 10.0  # EMA half-life, thousands of images (ramped up over the first steps)
    sample_every: int = 200
    checkpoint_every: int = 500
    seed: int = 0


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    losses: list[dict] = field(default_factory=list)  # {"step", "d_loss", "g_loss", "r1"} per logged step
    samples: list[Path] = field(default_factory=list)  # sample grids written during this run
    images_used: int = 0
    images_skipped: list[str] = field(default_factory=list)  # unreadable files in the folder
    resumed_from: int = 0
    stopped: bool = False
    seconds: float = 0.0


# ---------------------------------------------------------------- building blocks
def _modules():
    """The network classes, defined on first use so that importing this module never imports torch."""
    global _MODULES
    if _MODULES is None:
        _MODULES = _define_modules()
    return _MODULES


_MODULES = None


def _define_modules():
    import torch
    import torch.nn.functional as F
    from torch import nn

    sqrt2 = math.sqrt(2)

    def lrelu(x):
        # gain sqrt(2) keeps the activations' scale with equalised learning rates
        return F.leaky_relu(x, 0.2) * sqrt2

    class EqualLinear(nn.Module):
        """Linear layer with weights scaled at run time (equalised learning rate)."""

        def __init__(self, in_dim, out_dim, bias_init=0.0, lr_mul=1.0, activate=False):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
            self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
            self.scale = lr_mul / math.sqrt(in_dim)
            self.lr_mul = lr_mul
            self.activate = activate

        def forward(self, x):
            out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
            return lrelu(out) if self.activate else out

    class EqualConv2d(nn.Module):
        def __init__(self, in_ch, out_ch, kernel, bias=True):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
            self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
            self.scale = 1 / math.sqrt(in_ch * kernel * kernel)

        def forward(self, x):
            return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)

    class MappingNetwork(nn.Module):
        def __init__(self, style_dim, layers):
            super().__init__()
            self.net = nn.Sequential(*[EqualLinear(style_dim, style_dim, lr_mul=0.01, activate=True)
                                       for _ in range(layers)])

        def forward(self, z):
            z = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # pixel norm
            return self.net(z)

    class ModulatedConv2d(nn.Module):
        """A convolution whose weights are scaled per input channel by the style, then demodulated.

        All samples of a batch run as one grouped convolution (one group per sample).
        """

        def __init__(self, in_ch, out_ch, kernel, style_dim, demodulate=True, upsample=False):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel))
            self.scale = 1 / math.sqrt(in_ch * kernel * kernel)
            self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
            self.demodulate = demodulate
            self.upsample = upsample

        def forward(self, x, w):
            batch, in_ch, height, width = x.shape
            style = self.modulation(w).view(batch, 1, in_ch, 1, 1)
            weight = self.scale * self.weight * style
            if self.demodulate:
                weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
            if self.upsample:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
                height, width = height * 2, width * 2
            out_ch, kernel = weight.shape[1], weight.shape[-1]
            out = F.conv2d(x.reshape(1, batch * in_ch, height, width),
                           weight.reshape(batch * out_ch, in_ch, kernel, kernel),
                           padding=kernel // 2, groups=batch)
            return out.view(batch, out_ch, height, width)

    class StyledConv(nn.Module):
        def __init__(self, in_ch, out_ch, style_dim, upsample=False):
            super().__init__()
            self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
            self.noise_strength = nn.Parameter(torch.zeros(1, out_ch, 1, 1))  # learned per channel
            self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

        def forward(self, x, w, noise):
            x = self.conv(x, w)
            return lrelu(x + self.noise_strength * noise + self.bias)

    class ToRGB(nn.Module):
        def __init__(self, in_ch, style_dim):
            super().__init__()
            self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
            self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

        def forward(self, x, w, skip=None):
            rgb = self.conv(x, w) + self.bias
            if skip is not None:
                rgb = rgb + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
            return rgb

    class StyleGenerator(nn.Module):
        """z -> w -> image in [-1, 1]. ``num_ws`` styles: one per convolution plus the last to-RGB."""

        def __init__(self, config: StyleGANConfig):
            super().__init__()
            config.check()
            self.config = config
            self.mapping = MappingNetwork(config.style_dim, config.mapping_layers)
            self.const = nn.Parameter(torch.randn(1, config.channels(4), 4, 4))
            self.resolutions = [2 ** i for i in range(2, int(math.log2(config.size)) + 1)]
            self.convs = nn.ModuleList([StyledConv(config.channels(4), config.channels(4), config.style_dim)])
            self.to_rgbs = nn.ModuleList([ToRGB(config.channels(4), config.style_dim)])
            for res in self.resolutions[1:]:
                in_ch, out_ch = config.channels(res // 2), config.channels(res)
                self.convs.append(StyledConv(in_ch, out_ch, config.style_dim, upsample=True))
                self.convs.append(StyledConv(out_ch, out_ch, config.style_dim))
                self.to_rgbs.append(ToRGB(out_ch, config.style_dim))
            self.num_ws = len(self.convs) + 1
            self.register_buffer("w_avg", torch.zeros(config.style_dim))

        def noise_shapes(self) -> list[tuple[int, int]]:
            return [(self.resolutions[(i + 1) // 2],) * 2 for i in range(len(self.convs))]

        def make_noise(self, batch: int, generator=None, device=None) -> list:
            # drawn on the CPU (seeded generators live there), then moved: same noise on every device
            return [torch.randn(batch, 1, h, w, generator=generator).to(device or self.const.device)
                    for h, w in self.noise_shapes()]

        def truncate(self, w, psi: float):
            return w if psi == 1.0 else self.w_avg + psi * (w - self.w_avg)

        def styles(self, z, psi: float = 1.0, mix_z=None, crossover: int | None = None):
            """Per-layer styles (batch, num_ws, style_dim); with ``mix_z``, layers from ``crossover`` on
            take the second latent's style (style mixing)."""
            ws = self.truncate(self.mapping(z), psi).unsqueeze(1).repeat(1, self.num_ws, 1)
            if mix_z is not None:
                cut = self.num_ws // 2 if crossover is None else max(0, min(self.num_ws, crossover))
                ws[:, cut:] = self.truncate(self.mapping(mix_z), psi).unsqueeze(1)
            return ws

        def synthesis(self, ws, noise: list | None = None):
            batch = ws.shape[0]
            noise = noise or self.make_noise(batch, device=ws.device)
            x = self.const.expand(batch, -1, -1, -1)
            x = self.convs[0](x, ws[:, 0], noise[0])
            rgb = self.to_rgbs[0](x, ws[:, 1])
            for level in range(1, len(self.resolutions)):
                i = 2 * level - 1  # this resolution's two convolutions
                x = self.convs[i](x, ws[:, i], noise[i])
                x = self.convs[i + 1](x, ws[:, i + 1], noise[i + 1])
                rgb = self.to_rgbs[level](x, ws[:, i + 2], skip=rgb)
            return rgb

        def forward(self, z, psi: float = 1.0, mix_z=None, crossover=None, noise=None):
            return self.synthesis(self.styles(z, psi, mix_z, crossover), noise)

    class ResBlock(nn.Module):
        def __init__(self, in_ch, out_ch):
            super().__init__()
            self.conv1 = EqualConv2d(in_ch, in_ch, 3)
            self.conv2 = EqualConv2d(in_ch, out_ch, 3)
            self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)

        def forward(self, x):
            out = F.avg_pool2d(lrelu(self.conv2(lrelu(self.conv1(x)))), 2)
            return (out + self.skip(F.avg_pool2d(x, 2))) / sqrt2

    class Discriminator(nn.Module):
        def __init__(self, config: StyleGANConfig):
            super().__init__()
            res = config.size
            self.from_rgb = EqualConv2d(3, config.channels(res), 1)
            blocks = []
            while res > 4:
                blocks.append(ResBlock(config.channels(res), config.channels(res // 2)))
                res //= 2
            self.blocks = nn.Sequential(*blocks)
            ch = config.channels(4)
            self.final_conv = EqualConv2d(ch + 1, ch, 3)
            self.final_linear = nn.Sequential(EqualLinear(ch * 16, ch, activate=True), EqualLinear(ch, 1))

        def forward(self, image):
            x = self.blocks(lrelu(self.from_rgb(image)))
            # minibatch standard deviation: lets the critic see a lack of variety (mode collapse)
            batch, ch, h, w = x.shape
            group = math.gcd(batch, 4)
            std = x.view(group, -1, ch, h, w).var(dim=0, unbiased=False).add(1e-8).sqrt()
            std = std.mean(dim=(1, 2, 3)).view(-1, 1, 1, 1).repeat(group, 1, h, w)
            x = lrelu(self.final_conv(torch.cat([x, std], dim=1)))
            return self.final_linear(x.flatten(1))

    return {"StyleGenerator": StyleGenerator, "Discriminator": Discriminator}


def build_generator(config: StyleGANConfig):
    return _modules()["StyleGenerator"](config)


def build_discriminator(config: StyleGANConfig):
    return _modules()["Discriminator"](config)


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, *, config: StyleGANConfig, generator, generator_ema, discriminator=None,
                    optimizers: dict | None = None, step: int = 0, options: TrainOptions | None = None,
                    losses: list[dict] | None = None) -> Path:
    """One safetensors file: g./g_ema./d. weights, opt_<name>. Adam states; settings in the metadata.

    Written to a temporary name and renamed, so a crash or Stop never leaves half a checkpoint."""
    from safetensors.torch import save_file

    from ..core.outputs import atomic_path

    tensors = {f"g_ema.{k}": v for k, v in generator_ema.state_dict().items()}
    tensors.update({f"g.{k}": v for k, v in generator.state_dict().items()})
    if discriminator is not None:
        tensors.update({f"d.{k}": v for k, v in discriminator.state_dict().items()})
    groups = {}
    for name, optimizer in (optimizers or {}).items():
        state = optimizer.state_dict()
        groups[name] = state["param_groups"]
        for index, values in state["state"].items():
            for key, value in values.items():
                tensors[f"opt_{name}.{index}.{key}"] = value
    metadata = {"format": CHECKPOINT_FORMAT, "config": json.dumps(asdict(config)), "step": str(step),
                "param_groups": json.dumps(groups), "options": json.dumps(asdict(options) if options else {}),
                "losses": json.dumps((losses or [])[-200:])}
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}  # no shared storage
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a checkpoint written by :func:`save_checkpoint`; clear errors otherwise."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"No checkpoint at {path}.", zh=f"{path} 处没有检查点。")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{path.name} is not a readable safetensors file: {exc}",
                             zh=f"{path.name} 不是可读取的 safetensors 文件：{exc}") from exc
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path.name} is not a StyleGAN checkpoint trained by this studio.",
                             zh=f"{path.name} 不是本工作室训练的 StyleGAN 检查点。")
    return tensors, metadata


def _part(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_generator(path: Path, device: str = "cpu"):
    """The EMA generator of a checkpoint, in eval mode (the one that makes the best faces)."""
    tensors, metadata = read_checkpoint(path)
    generator = build_generator(StyleGANConfig(**json.loads(metadata["config"])))
    generator.load_state_dict(_part(tensors, "g_ema."))
    generator.trained_steps = int(metadata.get("step", 0))
    return generator.eval().requires_grad_(False).to(device)


# ---------------------------------------------------------------- data
def load_image_folder(folder: Path, size: int, limit: int = 100_000):
    """Every readable image under ``folder`` (recursively), centre-cropped to a square and resized:
    a uint8 tensor (N, 3, size, size) and the names of files that could not be read."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"Training folder not found: {folder}", zh=f"找不到训练文件夹：{folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())[:limit]
    if not files:
        raise UserError(f"No images (.png, .jpg, .webp, .bmp) in {folder}.",
                        zh=f"{folder} 中没有图片（.png、.jpg、.webp、.bmp）。")
    arrays, skipped = [], []
    for file in files:
        try:
            with Image.open(file) as image:
                image = image.convert("RGB")
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                image = image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
                arrays.append(np.asarray(image, dtype=np.uint8))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            skipped.append(file.name)
    if not arrays:
        raise UserError(f"None of the {len(files)} images in {folder} could be read (corrupt or not images).",
                        zh=f"{folder} 中的 {len(files)} 张图片都无法读取（已损坏或不是图片）。")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), skipped


def image_grid(images, columns: int | None = None):
    """A PIL grid of a batch in [-1, 1] (N, 3, H, W)."""
    import numpy as np
    from PIL import Image

    count = images.shape[0]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    h, w = pixels.shape[1:3]
    grid = np.zeros((rows * h, columns * w, 3), dtype=np.uint8)
    for i, tile in enumerate(pixels):
        r, c = divmod(i, columns)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = tile
    return Image.fromarray(grid)


# ---------------------------------------------------------------- training
def train_stylegan(*, images: Path, checkpoint: Path, config: StyleGANConfig | None = None,
                   options: TrainOptions | None = None, samples_dir: Path | None = None, resume: bool = True,
                   device: str = "cpu", stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                   log: Callable[[str], None] | None = None) -> TrainResult:
    """Train (or resume) a StyleGAN-style generator on a folder of images; returns where it was saved."""
    import torch
    import torch.nn.functional as F

    started = time.perf_counter()
    options = options or TrainOptions()
    checkpoint = Path(checkpoint)
    # 1. Check inputs before any heavy work.
    if options.steps < 1 or options.batch_size < 2:
        raise UserError("Training needs steps >= 1 and a batch size of at least 2.",
                        zh="训练需要步数 >= 1，批大小至少为 2。")
    saved = read_checkpoint(checkpoint) if resume and checkpoint.is_file() else None
    if saved is not None:
        config = StyleGANConfig(**json.loads(saved[1]["config"]))
    config = config or StyleGANConfig()
    config.check()
    data, skipped = load_image_folder(images, config.size)
    samples_dir = Path(samples_dir) if samples_dir else checkpoint.with_name(checkpoint.stem + "-samples")

    # 2. Networks, optimisers (Adam betas of StyleGAN2, learning rates adjusted for lazy R1).
    torch.manual_seed(options.seed)
    generator, discriminator = build_generator(config).to(device), build_discriminator(config).to(device)
    generator_ema = build_generator(config).to(device).eval().requires_grad_(False)
    generator_ema.load_state_dict(generator.state_dict())
    d_ratio = options.r1_every / (options.r1_every + 1)
    opt_g = torch.optim.Adam(generator.parameters(), lr=options.lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=options.lr * d_ratio,
                             betas=(0.0, 0.99 ** d_ratio))
    step, losses = 0, []
    if saved is not None:  # 3. Resume: weights, EMA, Adam states and the step count.
        tensors, metadata = saved
        generator.load_state_dict(_part(tensors, "g."))
        generator_ema.load_state_dict(_part(tensors, "g_ema."))
        discriminator.load_state_dict(_part(tensors, "d."))
        groups = json.loads(metadata.get("param_groups", "{}"))
        for name, optimizer in (("g", opt_g), ("d", opt_d)):
            if name in groups:
                state: dict = {}
                for key, value in _part(tensors, f"opt_{name}.").items():
                    index, field_name = key.split(".", 1)
                    state.setdefault(int(index), {})[field_name] = value.to(device)
                optimizer.load_state_dict({"state": state, "param_groups": groups[name]})
        step = int(metadata.get("step", 0))
        losses = json.loads(metadata.get("losses", "[]"))
    resumed_from = step
    result = TrainResult(checkpoint=checkpoint, step=step, losses=losses, images_used=len(data),
                         images_skipped=skipped, resumed_from=resumed_from)
    sample_z = torch.randn(min(16, max(4, options.batch_size)), config.style_dim,
                           generator=torch.Generator().manual_seed(options.seed)).to(device)
    batch_gen = torch.Generator().manual_seed(options.seed + step)

    def save():
        save_checkpoint(checkpoint, config=config, generator=generator, generator_ema=generator_ema,
                        discriminator=discriminator, optimizers={"g": opt_g, "d": opt_d}, step=step,
                        options=options, losses=losses)

    def real_batch():
        index = torch.randint(len(data), (options.batch_size,), generator=batch_gen)
        batch = data[index].float().div(127.5).sub(1.0)
        flip = torch.rand(options.batch_size, generator=batch_gen) < 0.5
        batch[flip] = batch[flip].flip(-1)
        return batch.to(device)

    def latents():
        z = torch.randn(options.batch_size, config.style_dim, device=device)
        mix = torch.randn_like(z) if torch.rand(()) < options.mixing_prob else None
        crossover = int(torch.randint(1, generator.num_ws, ())) if mix is not None else None
        return z, mix, crossover

    # 4. The training loop: D step (+ lazy R1), G step, EMA, w_avg, samples and checkpoints.
    try:
        while step < options.steps:
            check_stop(stop)
            real = real_batch()
            z, mix, crossover = latents()
            with torch.no_grad():
                fake = generator(z, mix_z=mix, crossover=crossover)
            d_loss = F.softplus(discriminator(fake)).mean() + F.softplus(-discriminator(real)).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            r1_value = None
            if step % options.r1_every == 0:
                real.requires_grad_(True)
                (grad,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
                r1 = grad.pow(2).sum(dim=(1, 2, 3)).mean()
                opt_d.zero_grad(set_to_none=True)
                (options.r1_gamma / 2 * r1 * options.r1_every).backward()
                opt_d.step()
                r1_value = float(r1.detach())

            z, mix, crossover = latents()
            g_loss = F.softplus(-discriminator(generator(z, mix_z=mix, crossover=crossover))).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            step += 1

            with torch.no_grad():
                # EMA half-life in images, ramped up so that short runs are not dominated by the start
                ema_images = min(options.ema_kimg * 1000, step * options.batch_size * 0.05)
                beta = 0.5 ** (options.batch_size / max(ema_images, 1e-8))
                for p_ema, p in zip(generator_ema.parameters(), generator.parameters()):
                    p_ema.lerp_(p, 1 - beta)
                generator.w_avg.lerp_(generator.mapping(z).mean(0), 0.005)
                generator_ema.w_avg.copy_(generator.w_avg)

            entry = {"step": step, "d_loss": round(d_loss.item(), 5), "g_loss": round(g_loss.item(), 5)}
            if r1_value is not None:
                entry["r1"] = round(r1_value, 5)
            losses.append(entry)
            report(on_progress, step / options.steps, f"step {step}/{options.steps}  D {entry['d_loss']:.3f}"
                   f"  G {entry['g_loss']:.3f}")
            if log and (step % 10 == 0 or step == options.steps):
                log(f"step {step}/{options.steps}  D loss {entry['d_loss']:.4f}  G loss {entry['g_loss']:.4f}")
            if options.sample_every and step % options.sample_every == 0:
                result.samples.append(_write_samples(generator_ema, sample_z, samples_dir, step))
            if options.checkpoint_every and step % options.checkpoint_every == 0:
                save()
    except Stopped:
        result.stopped = True  # keep what was learnt so far: save below, then tell the caller
    # 5. Final checkpoint and sample grid.
    if step > resumed_from or not checkpoint.is_file():
        save()
        if not result.samples or not result.samples[-1].stem.endswith(f"{step:06d}"):
            result.samples.append(_write_samples(generator_ema, sample_z, samples_dir, step))
    result.step, result.losses, result.seconds = step, losses, time.perf_counter() - started
    return result


def _write_samples(generator_ema, z, folder: Path, step: int) -> Path:
    import torch

    from ..core.outputs import atomic_path

    with torch.no_grad():
        noise = generator_ema.make_noise(z.shape[0], torch.Generator().manual_seed(0), z.device)
        grid = image_grid(generator_ema(z, noise=noise))
    path = Path(folder) / f"step-{step:06d}.png"
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    return path
