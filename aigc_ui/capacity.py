"""How many jobs of each kind the studio runs at once, sized to the machine.

Each kind of work has its own Gradio queue (a concurrency id), so a text answer never waits behind
twin videos: a queue only holds jobs of its own kind, and each shows its position and expected wait.
The limits follow what the pipelines can really do in parallel on this machine:

- videos: about one CPU core each for the animation plus ffmpeg's encoding: half the cores;
- text: one generation at a time per loaded model (llama.cpp and transformers are not thread-safe,
  the backends lock; llama.cpp already uses every core): 1, 2 with a GPU;
- voice: one run at a time per voice (Piper, eSpeak NG lock), light work: 2;
- images: diffusion fills the GPU or every core: 1;
- faces: a small generator, fast: 2;
- batches: a spreadsheet renders row after row with the app's models: 1.

A flag (``--max-videos`` ...) or its environment variable overrides each.
"""
from __future__ import annotations

import os
from pathlib import Path

from pipelines.core.settings import AppConfig

# kind -> the AppConfig field that overrides it
KINDS = {"video": "max_videos", "text": "max_text", "voice": "max_voice", "image": "max_images",
         "face": "max_faces", "batch": "max_batches"}


def has_gpu(config: AppConfig) -> bool:
    """A cheap guess (no torch import at start-up): the device asked for, or an NVIDIA device file."""
    device = (config.device or "auto").lower()
    if device == "cpu":
        return False
    if device.startswith(("cuda", "mps")):
        return True
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def machine_limits(cpus: int, gpu: bool) -> dict[str, int]:
    return {"video": max(1, cpus // 2), "text": 2 if gpu else 1, "voice": 2, "image": 1, "face": 2, "batch": 1}


def concurrency_limits(config: AppConfig, cpus: int | None = None, gpu: bool | None = None) -> dict[str, int]:
    """Jobs of each kind at once: the flags where given (at least 1), else sized to the machine."""
    sized = machine_limits(cpus or os.cpu_count() or 1, has_gpu(config) if gpu is None else gpu)
    limits = {}
    for kind, field_name in KINDS.items():
        chosen = getattr(config, field_name)
        limits[kind] = max(1, int(chosen)) if chosen else sized[kind]
    return limits
