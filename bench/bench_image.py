"""Benchmark: seconds per denoising step through generate_images vs a raw diffusers pipeline call, on the
same tiny Stable Diffusion, same settings and seed. Target: raw / ours >= 0.95 (our wrapper costs < 5 %).

Both are timed after a warm-up, alternately, in this process (the machine is shared and noisy); the
best of a few rounds of each is compared.   python -m bench.bench_image
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

STEPS, SIZE, SEED, ROUNDS, TARGET = 10, 64, 7, 5, 0.95


def run() -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from diffusers import AutoPipelineForText2Image

    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import AppConfig
    from pipelines.image.text_to_image import generate_images
    from tests.tiny_models import build_tiny_stable_diffusion

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_tiny_stable_diffusion(root / "models" / "image" / "tiny-sd")
        runtime = Runtime.from_config(AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", device="cpu"))
        raw = AutoPipelineForText2Image.from_pretrained(root / "models" / "image" / "tiny-sd", local_files_only=True)
        raw.set_progress_bar_config(disable=True)
        settings = dict(num_inference_steps=STEPS, guidance_scale=7.5, width=SIZE, height=SIZE)

        def raw_call():
            raw(prompt="a red fox", generator=torch.Generator("cpu").manual_seed(SEED), **settings)

        def our_call():
            generate_images("a red fox", model="tiny-sd", steps=STEPS, guidance=7.5, width=SIZE, height=SIZE,
                            seed=SEED, runtime=runtime, provenance=False)  # marking: bench_provenance

        raw_call(), our_call()  # warm-up (and model load into the cache)
        raw_times, our_times = [], []
        for _ in range(ROUNDS):
            for call, times in ((raw_call, raw_times), (our_call, our_times)):
                started = time.perf_counter()
                call()
                times.append(time.perf_counter() - started)
        shutil.rmtree(root / "outputs", ignore_errors=True)
    raw_step, our_step = min(raw_times) / STEPS, min(our_times) / STEPS
    ratio = raw_step / our_step
    return {"name": "text_to_image", "model": "tiny random SD (UNet 32/64)", "steps": STEPS, "size": SIZE,
            "raw_seconds_per_step": round(raw_step, 5), "pipeline_seconds_per_step": round(our_step, 5),
            "raw_runs_s": [round(t, 3) for t in raw_times], "pipeline_runs_s": [round(t, 3) for t in our_times],
            "ratio": round(ratio, 3), "target": TARGET, "passed": ratio >= TARGET}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
