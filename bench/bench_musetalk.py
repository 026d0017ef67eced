"""MuseTalk engine on a CPU: what the plumbing costs around the networks (issue 11).

- Tiny random networks of the release's classes and layout (tests/tiny_models.py), loaded through the
  catalog from a temporary models/twin/musetalk/: frames/s of ``MuseTalkEngine.animate`` on the
  astronaut at 512x512 (256 px face crop), against the classic engine alone on the same job in the
  same process (the motion underneath). The ratio is musetalk / classic. The time inside the
  networks (VAE encode, UNet, VAE decode) is measured apart, so the rest is the plumbing: Whisper
  features, crops, masks, colour match and paste.
- ``--real-size``: the networks at the release's sizes (UNet from musetalk.json's shape, an
  sd-vae-ft-mse-shaped VAE, a Whisper-tiny-shaped encoder) with random weights, a few frames: the
  seconds per frame a CPU user should expect, compared with ``estimate_seconds``. Needs ~5 GB RAM.

The CUDA path (fp16, batch size from free memory) has not run here: there is no GPU on this machine.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FRAMES = 50  # 2 s at 25 fps
ROUNDS = 3


def _job(n_frames: int):
    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import ASSETS_DIR
    from pipelines.face import landmarks as fl
    from pipelines.twin import pipeline as twin
    from pipelines.twin.engines import AnimationJob, AnimationOptions

    image = twin.load_photo(ASSETS_DIR / "astronaut.jpg")
    canvas, face = twin.frame_photo(image, fl.detect_faces(image, runtime=Runtime.default())[0], "face")
    rate = 16000
    t = np.arange(int(n_frames / 25 * rate)) / rate
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * ((t % 0.4) < 0.2)).astype(np.float32)
    return AnimationJob(image=canvas, face=face, audio=audio, sample_rate=rate, n_frames=n_frames,
                        options=AnimationOptions(fps=25, seed=1))


class NetworkTimer:
    """Wraps the model's redraw (the three networks' work on a batch) and adds up its time."""

    def __init__(self, model):
        self.seconds, self._redraw = 0.0, model.redraw
        model.redraw = self

    def __call__(self, *args):
        started = time.perf_counter()
        try:
            return self._redraw(*args)
        finally:
            self.seconds += time.perf_counter() - started


def tiny() -> dict:
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime
    from pipelines.twin.engines import load_engine
    from pipelines.twin.engines.classic import ClassicEngine
    from tests.tiny_models import build_tiny_musetalk

    job = _job(FRAMES)
    with tempfile.TemporaryDirectory(prefix="bench-musetalk-") as tmp:
        root = Path(tmp)
        build_tiny_musetalk(root / "models" / "twin" / "musetalk")
        runtime = Runtime(cache=ModelCache(), catalog=Catalog(root / "models"), outputs_dir=root / "out",
                          device_preference="cpu")
        key, loader, _ = load_engine("musetalk", runtime)
        started = time.perf_counter()
        engine = runtime.cache.get(key, loader)
        load_s = time.perf_counter() - started
        timer = NetworkTimer(engine.model)
        list(engine.animate(_job(8)))  # warm-up: first-call allocations

        classic_s, neural_s, network_s = [], [], []
        for _ in range(ROUNDS):  # alternate, so that load from other work hits both sides alike
            started = time.perf_counter()
            assert len(list(ClassicEngine().animate(job))) == FRAMES
            classic_s.append(time.perf_counter() - started)
            timer.seconds = 0.0
            started = time.perf_counter()
            assert len(list(engine.animate(job))) == FRAMES
            neural_s.append(time.perf_counter() - started)
            network_s.append(timer.seconds)
    classic_fps = FRAMES / statistics.median(classic_s)
    neural_fps = FRAMES / statistics.median(neural_s)
    plumbing = [(n - w - c) / FRAMES for n, w, c in zip(neural_s, network_s, classic_s)]
    return {
        "tiny_musetalk_frames_per_s": round(neural_fps, 2),
        "classic_alone_frames_per_s": round(classic_fps, 1),
        "ratio_musetalk_to_classic": round(neural_fps / classic_fps, 4),
        "tiny_networks_ms_per_frame": round(1000 * statistics.median(network_s) / FRAMES, 1),
        "plumbing_ms_per_frame": round(1000 * statistics.median(plumbing), 1),
        "load_s": round(load_s, 2),
        "unet_parameters": engine.model.unet_parameters,
    }


def real_size(frames: int = 4) -> dict:
    """The release's network sizes with random weights: seconds per frame on this CPU."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from pipelines.twin.engines.musetalk import MuseTalkEngine, estimate_seconds
    from pipelines.twin.engines.musetalk_model import MuseTalkModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        in_channels=8, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        attention_head_dim=8, cross_attention_dim=384, norm_num_groups=32, sample_size=64,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3).eval()
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=256).eval()
    encoder = WhisperEncoder(WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6,
                                           encoder_ffn_dim=1536, num_mel_bins=80)).eval()
    model = MuseTalkModel(unet, vae, encoder, WhisperFeatureExtractor(feature_size=80), "cpu", torch.float32)
    engine = MuseTalkEngine(model, batch_size=1)
    job = _job(frames)
    list(engine.animate(_job(1)))  # warm-up
    started = time.perf_counter()
    assert len(list(engine.animate(job))) == frames
    per_frame = (time.perf_counter() - started) / frames
    estimate = estimate_seconds(1, "cpu", model.unet_parameters)
    return {"real_size_unet_parameters": model.unet_parameters, "real_size_cpu_threads": torch.get_num_threads(),
            "real_size_s_per_frame": round(per_frame, 2), "estimate_s_per_frame": round(estimate, 2),
            "ratio_measured_to_estimate": round(per_frame / estimate, 3)}


def run(with_real_size: bool = False) -> dict:
    import torch

    # One thread, as bench_faces: on a shared 2-core machine a second torch thread spins against other
    # jobs and makes every figure an order of magnitude noisier. Both sides get the same setting.
    torch.set_num_threads(1)
    result = {"benchmark": "MuseTalk engine on CPU: tiny random networks vs the classic engine alone",
              "torch_threads": 1, "frames": FRAMES, "size": "512x512 frame, 256 px face crop", "device": "cpu", **tiny()}
    if with_real_size:
        result.update(real_size())
    result["cuda"] = "not run: no GPU on this machine"
    result["note"] = ("2 shared CPU cores: absolute figures are scale only. The ratio shows what the neural "
                      "path adds on top of the classic motion even with near-free networks.")
    result["passed"] = result["tiny_musetalk_frames_per_s"] > 0
    return result


if __name__ == "__main__":
    print(json.dumps(run(with_real_size="--real-size" in sys.argv[1:]), indent=2))
