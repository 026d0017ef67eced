"""MuseTalk 1.5's networks on diffusers + transformers: finding and loading the weights safely, and the
one-pass mouth redraw.

The tensor layout follows the public MuseTalk 1.5 release (our own implementation of it):

- face crops are 256x256 RGB in [-1, 1]; the lower half of the current frame's crop is blacked out
  (-1) and VAE-encoded (``sd-vae-ft-mse``, mean of the latent distribution, times the VAE's
  ``scaling_factor``) into 4x32x32; the reference crop is encoded the same way without the mask;
- the UNet input is the two latents concatenated on the channel axis, masked first (8 channels);
  one ``UNet2DConditionModel`` pass at timestep 0 (no diffusion loop) predicts the 4-channel latent
  of the whole crop, which the VAE decodes;
- the cross-attention input is audio: every hidden state of the Whisper tiny encoder (the
  embeddings and each layer's output, 5 x 384 for tiny) at 50 encoder frames/s; each video frame
  gets a window of 10 encoder frames (0.2 s) starting 80 ms before the frame, flattened time-major
  to 50 tokens, plus a sinusoidal position encoding.

What it does not: decide where the crop is or paste it back (``musetalk.py`` does), or animate the
head (the classic engine does).
"""
from __future__ import annotations

import json
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import ModelLoadError

CROP_SIZE = 256
UNET_TIMESTEP = 0  # MuseTalk is trained as a single-step image-to-image network at t = 0
WHISPER_RATE = 16000
ENCODER_FPS = 50  # Whisper encoder frames per second of audio (10 ms mel hop, stride-2 convolution)
WINDOW_FRAMES = 10  # encoder frames of audio per video frame: 0.2 s
WINDOW_LEAD = 4  # the window starts this many encoder frames (80 ms) before the video frame's time

# The public release's folder layout (models/twin/musetalk/ as the download commands leave it)
UNET_CONFIG = "musetalkV15/musetalk.json"
UNET_WEIGHTS = ("musetalkV15/unet.safetensors", "musetalkV15/unet.pth")  # safetensors preferred
VAE_FOLDER = "sd-vae"
WHISPER_FOLDER = "whisper"
VAE_REPO = "stabilityai/sd-vae-ft-mse"
WHISPER_REPO = "openai/whisper-tiny"
LAYOUT_TEXT = ("musetalkV15/unet.pth + musetalkV15/musetalk.json (from TMElyralab/MuseTalk), "
               "sd-vae/ (stabilityai/sd-vae-ft-mse), whisper/ (openai/whisper-tiny)")


@dataclass(frozen=True)
class MuseTalkFiles:
    """Where each part comes from: local paths, or hub ids (strings) for the VAE and Whisper."""

    unet_config: Path
    unet_weights: Path
    vae: str
    whisper: str
    local_only: bool = True


# ---------------------------------------------------------------- finding the files


def missing_parts(folder: Path) -> list[str]:
    """What the release layout needs and ``folder`` lacks, as relative paths (empty: complete)."""
    folder = Path(folder)
    missing = []
    if not (folder / UNET_CONFIG).is_file():
        missing.append(UNET_CONFIG)
    if not any((folder / name).is_file() for name in UNET_WEIGHTS):
        missing.append(UNET_WEIGHTS[1])
    wanted = {VAE_FOLDER: ["config.json", ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")],
              WHISPER_FOLDER: ["config.json", "preprocessor_config.json", ("model.safetensors", "pytorch_model.bin")]}
    for sub, files in wanted.items():
        if not (folder / sub).is_dir():
            missing.append(sub + "/")
            continue
        for names in files:
            names = (names,) if isinstance(names, str) else names
            if not any((folder / sub / n).is_file() for n in names):
                missing.append(f"{sub}/{names[0]}")
    return missing


def install_problem(folder: Path) -> tuple[str, str] | None:
    """The catalog's question: why this folder cannot run yet (en, zh), or None when the layout is complete."""
    missing = missing_parts(folder)
    if not missing:
        return None
    return (f"incomplete: missing {', '.join(missing)} (see the README's MuseTalk section)",
            f"不完整：缺少 {', '.join(missing)}（见 README 的 MuseTalk 一节）")


def local_files(folder: Path) -> MuseTalkFiles:
    folder = Path(folder)
    missing = missing_parts(folder)
    if missing:
        raise ModelLoadError(
            f"MuseTalk in {folder} is incomplete: missing {', '.join(missing)}. The folder needs {LAYOUT_TEXT}.",
            zh=f"{folder} 中的 MuseTalk 不完整：缺少 {', '.join(missing)}。该文件夹需要 {LAYOUT_TEXT}。")
    weights = next(folder / n for n in UNET_WEIGHTS if (folder / n).is_file())
    return MuseTalkFiles(folder / UNET_CONFIG, weights, str(folder / VAE_FOLDER), str(folder / WHISPER_FOLDER))


def offline_message(models_dir: Path | None) -> ModelLoadError:
    where = f"models/twin/musetalk/ ({Path(models_dir) / 'twin' / 'musetalk'})" if models_dir else "models/twin/musetalk/"
    return ModelLoadError(
        f"MuseTalk's weights are not downloaded and the model hub cannot be reached. Put them in {where}: "
        f"{LAYOUT_TEXT}. The README's MuseTalk section has the download commands.",
        zh=f"MuseTalk 的权重尚未下载，且无法连接模型仓库。请把它们放入 {where}：{LAYOUT_TEXT}。"
           "下载命令见 README 的 MuseTalk 一节。")


def hub_files(repo_id: str, *, vae_repo: str = VAE_REPO, whisper_repo: str = WHISPER_REPO,
              online: bool = True, models_dir: Path | None = None) -> MuseTalkFiles:
    """Download (or find in the hub cache) the UNet's two files; the VAE and Whisper load by hub id."""
    from huggingface_hub import hf_hub_download

    try:
        config = hf_hub_download(repo_id, UNET_CONFIG, local_files_only=not online)
        weights = hf_hub_download(repo_id, UNET_WEIGHTS[1], local_files_only=not online)
    except Exception as exc:  # noqa: BLE001 - offline, a missing file and a network error all end here
        if not online:
            raise offline_message(models_dir) from exc
        raise ModelLoadError(f"Could not download MuseTalk from {repo_id}: {exc}",
                             zh=f"无法从 {repo_id} 下载 MuseTalk：{exc}") from exc
    return MuseTalkFiles(Path(config), Path(weights), vae_repo, whisper_repo, local_only=not online)


# ---------------------------------------------------------------- loading


def read_unet_config(path: Path) -> dict:
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{UNET_CONFIG} is not readable JSON: {exc}",
                             zh=f"{UNET_CONFIG} 不是可读取的 JSON：{exc}") from exc
    needed = ("in_channels", "out_channels", "cross_attention_dim", "block_out_channels")
    if not isinstance(config, dict) or any(k not in config for k in needed):
        raise ModelLoadError(f"{UNET_CONFIG} is not a UNet config (it needs {', '.join(needed)}).",
                             zh=f"{UNET_CONFIG} 不是 UNet 配置（需要 {', '.join(needed)}）。")
    return config


def read_unet_weights(path: Path) -> dict:
    """The UNet's state dict, read without running any pickled code."""
    import torch

    path = Path(path)
    name = f"musetalkV15/{path.name}"
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated zip, random bytes, pickled code...
        code = pickled_code(exc)
        if code:
            raise refused_for_safety(name, code) from exc
        first_line = _first_line(exc)
        raise ModelLoadError(f"{name} could not be read (corrupt or incomplete download?): {first_line}",
                             zh=f"无法读取 {name}（文件损坏或未下载完整？）：{first_line}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{name} does not hold a UNet state dict (name -> tensor).",
                             zh=f"{name} 不是 UNet 的权重字典（名称 -> 张量）。")
    return state


def pickled_code(exc: BaseException) -> str | None:
    """The global a ``weights_only`` load refused (pickled code, not plain weights), looking through the
    errors that diffusers and transformers wrap around torch's; None for any other error."""
    seen = 0
    while exc is not None and seen < 10:
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if isinstance(exc, pickle.UnpicklingError) and code:
            return code.group(1)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def refused_for_safety(name: str, code: str) -> ModelLoadError:
    return ModelLoadError(f"{name} holds more than plain weights ({code}), so it was refused for safety.",
                          zh=f"{name} 含有权重以外的内容（{code}），出于安全考虑拒绝加载。")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()


def check_weights_match(state: dict, expected: dict, file_name: str) -> None:
    """Raise a readable error when the weights do not fit the network the config describes."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or wrong):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unknown weights (e.g. {unexpected[0]})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: file {tuple(state[k].shape)}, "
                     f"config {tuple(expected[k].shape)})")
    detail = "; ".join(parts)
    raise ModelLoadError(f"{file_name} does not match {UNET_CONFIG}: {detail}. Use the two files of the same release.",
                         zh=f"{file_name} 与 {UNET_CONFIG} 不匹配：{detail}。请使用同一版本的两个文件。")


def build_unet(config: dict, state: dict, file_name: str):
    """A ``UNet2DConditionModel`` from MuseTalk's config holding the given weights (built empty: no random init)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    try:
        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(config)
    except Exception as exc:  # noqa: BLE001 - a config diffusers cannot build
        raise ModelLoadError(f"{UNET_CONFIG} describes a UNet that cannot be built: {exc}",
                             zh=f"{UNET_CONFIG} 描述的 UNet 无法构建：{exc}") from exc
    check_weights_match(state, unet.state_dict(), file_name)
    unet.load_state_dict(state, assign=True)
    leftover = [n for n, p in unet.named_parameters() if p.device == torch.device("meta")]
    if leftover:  # cannot happen after the match check; a clear message beats a crash on first use
        raise ModelLoadError(f"{file_name} left {leftover[0]} unset.", zh=f"{file_name} 未提供 {leftover[0]}。")
    return unet.eval().requires_grad_(False)


def _load_part(what: str, loader, source: str, local_only: bool):
    """One of the parts loaded by ``from_pretrained`` (which reads ``*.bin`` files with ``weights_only=True``)."""
    try:
        return loader(source, local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001 - from_pretrained raises many kinds of errors
        code = pickled_code(exc)
        if code:
            raise refused_for_safety(f"MuseTalk's {what} ({source})", code) from exc
        first_line = _first_line(exc)
        raise ModelLoadError(f"Could not load MuseTalk's {what} from {source}: {first_line}",
                             zh=f"无法从 {source} 加载 MuseTalk 的 {what}：{first_line}") from exc


def load_musetalk(files: MuseTalkFiles, device: str = "cpu", dtype: Any = None) -> "MuseTalkModel":
    """Load the three networks and check that they fit together."""
    import torch
    from diffusers import AutoencoderKL
    from transformers import WhisperFeatureExtractor, WhisperModel

    dtype = dtype or torch.float32
    config = read_unet_config(files.unet_config)
    unet = build_unet(config, read_unet_weights(files.unet_weights), f"musetalkV15/{Path(files.unet_weights).name}")
    vae = _load_part("VAE (sd-vae)", AutoencoderKL.from_pretrained, files.vae, files.local_only)
    whisper = _load_part("Whisper encoder", WhisperModel.from_pretrained, files.whisper, files.local_only)
    features = _load_part("Whisper feature extractor", WhisperFeatureExtractor.from_pretrained, files.whisper,
                          files.local_only)
    encoder = whisper.get_encoder()  # the decoder is never used: let it go
    del whisper
    latent = vae.config.latent_channels
    d_model = encoder.config.d_model
    problems = []
    if unet.config.in_channels != 2 * latent:
        problems.append(f"the UNet takes {unet.config.in_channels} channels, not 2 x the VAE's {latent}")
    if unet.config.out_channels != latent:
        problems.append(f"the UNet gives {unet.config.out_channels} channels, the VAE decodes {latent}")
    if unet.config.cross_attention_dim != d_model:
        problems.append(f"the UNet attends to {unet.config.cross_attention_dim}-d audio, Whisper gives {d_model}")
    if features.sampling_rate != WHISPER_RATE:
        problems.append(f"the Whisper feature extractor expects {features.sampling_rate} Hz, not {WHISPER_RATE}")
    if problems:
        raise ModelLoadError("MuseTalk's parts do not fit together: " + "; ".join(problems) + ".",
                             zh="MuseTalk 的各部分互不匹配：" + "；".join(problems) + "。")
    vae, encoder = vae.eval().requires_grad_(False), encoder.eval().requires_grad_(False)
    return MuseTalkModel(_place(unet, device, dtype), _place(vae, device, dtype), _place(encoder, device, dtype),
                         features, device, dtype)


def _place(module, device: str, dtype):
    module = module.to(device)
    return module if module.dtype == dtype else module.to(dtype=dtype)  # fp16 on GPUs; no-op cast avoided


# ---------------------------------------------------------------- running


def position_encoding(length: int, dim: int):
    """Sinusoidal position encoding (sin on even, cos on odd features), as (length, dim) float32."""
    import torch

    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table


def window_starts(n_frames: int, fps: float) -> np.ndarray:
    """Index of the first encoder frame of each video frame's audio window (may be negative: zeros)."""
    return np.floor(np.arange(n_frames) * ENCODER_FPS / fps).astype(np.int64) - WINDOW_LEAD


class MuseTalkModel:
    """The UNet, the VAE and the Whisper encoder on one device; every call is inference-only."""

    def __init__(self, unet, vae, whisper_encoder, feature_extractor, device: str, dtype):
        self.unet, self.vae, self.whisper, self.features = unet, vae, whisper_encoder, feature_extractor
        self.device, self.dtype = device, dtype
        self.scaling = float(vae.config.scaling_factor)

    @property
    def unet_parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    def size_bytes(self) -> int:
        modules = (self.unet, self.vae, self.whisper)
        return sum(t.numel() * t.element_size() for m in modules for t in list(m.parameters()) + list(m.buffers()))

    # ----- audio
    def audio_features(self, audio: np.ndarray, sample_rate: int):
        """Every encoder hidden state over the whole track: (encoder frames, layers + 1, d_model) float32 on CPU."""
        import torch

        from ...voice.audio_dsp import resample

        audio = resample(np.asarray(audio, np.float32).reshape(-1), int(sample_rate), WHISPER_RATE)
        chunk = int(self.features.n_samples)  # Whisper reads 30 s at a time
        pieces = []
        with torch.inference_mode():
            for start in range(0, max(len(audio), 1), chunk):
                part = audio[start: start + chunk]
                mel = self.features(part, sampling_rate=WHISPER_RATE, return_tensors="pt").input_features
                states = self.whisper(mel.to(self.device, self.dtype), output_hidden_states=True).hidden_states
                stacked = torch.stack(states, dim=2)[0]  # (encoder frames, layers + 1, d)
                keep = min(stacked.shape[0], math.ceil(len(part) / WHISPER_RATE * ENCODER_FPS))
                pieces.append(stacked[:keep].float().cpu())
        return torch.cat(pieces, 0)

    def audio_windows(self, features, starts: np.ndarray):
        """The cross-attention input for the frames whose windows start at ``starts``: (B, 10 x layers, d)."""
        import torch

        total, layers, dim = features.shape
        index = torch.as_tensor(starts)[:, None] + torch.arange(WINDOW_FRAMES)[None, :]
        inside = (index >= 0) & (index < total)
        picked = features[index.clamp(0, max(total - 1, 0))] * inside[..., None, None]  # zeros outside the track
        tokens = picked.reshape(len(starts), WINDOW_FRAMES * layers, dim)  # time-major, then layer
        tokens = tokens + position_encoding(WINDOW_FRAMES * layers, dim)[None]
        return tokens.to(self.device, self.dtype)

    # ----- images
    def _to_tensor(self, crops: np.ndarray):
        import torch

        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        return (x.permute(0, 3, 1, 2).to(self.dtype) / 127.5 - 1.0)

    def encode(self, crops: np.ndarray, mask_lower_half: bool = False):
        """Scaled VAE latents (B, 4, 32, 32) of uint8 RGB crops (B, 256, 256, 3)."""
        import torch

        x = self._to_tensor(crops)
        if mask_lower_half:
            x[:, :, x.shape[2] // 2:, :] = -1.0  # black, as the network was trained
        with torch.inference_mode():
            return self.vae.encode(x).latent_dist.mode() * self.scaling

    def redraw(self, crops: np.ndarray, reference_latents, audio_tokens) -> np.ndarray:
        """One UNet pass: the crops with their lower half drawn anew, as uint8 RGB (B, 256, 256, 3)."""
        import torch

        masked = self.encode(crops, mask_lower_half=True)
        reference = reference_latents.expand(masked.shape[0], -1, -1, -1)
        with torch.inference_mode():
            latents = self.unet(torch.cat([masked, reference], dim=1), UNET_TIMESTEP,
                                encoder_hidden_states=audio_tokens).sample
            images = self.vae.decode(latents / self.scaling).sample
        images = ((images.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return images.permute(0, 2, 3, 1).cpu().numpy()

    def close(self) -> None:
        self.unet = self.vae = self.whisper = None
