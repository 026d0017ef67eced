"""Text-to-image: a tiny random Stable Diffusion saved to a temp models/image/ folder and loaded through the
user's own paths (diffusers folder, single .safetensors file), 2 steps at 64x64."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.errors import ModelLoadError, Stopped, UserError
from pipelines.core.jobs import StopToken
from pipelines.core.png_metadata import parse_a1111_text, read_png_parameters

REPO = Path(__file__).resolve().parent.parent
FAST = dict(steps=2, width=64, height=64)


@pytest.fixture
def runtime(tmp_path, tiny_sd_dir):
    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import AppConfig

    shutil.copytree(tiny_sd_dir, tmp_path / "models" / "image" / "tiny-sd")
    return Runtime.from_config(AppConfig(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs"))


def generate(runtime, prompt="a red fox in the snow", **kw):
    from pipelines.image.text_to_image import generate_images

    return generate_images(prompt, **{"model": "tiny-sd", **FAST, **kw}, runtime=runtime)


def pixels(image) -> np.ndarray:
    return np.asarray(image).astype(int)


@pytest.mark.slow
def test_folder_model_sizes_and_seeds(runtime):
    batch = generate(runtime, seed=3, batch_size=2)
    assert batch.seeds == [3, 4]
    assert [im.size for im in batch.images] == [(64, 64), (64, 64)]
    assert all(p.is_file() and p.parent == runtime.outputs_dir / "image" for p in batch.paths)
    again = generate(runtime, seed=3)
    assert np.array_equal(pixels(again.images[0]), pixels(batch.images[0]))  # same seed, same image
    second = generate(runtime, seed=4)
    assert np.array_equal(pixels(second.images[0]), pixels(batch.images[1]))  # batch = seed, seed+1
    assert np.abs(pixels(batch.images[0]) - pixels(batch.images[1])).mean() > 1  # different seed, different image
    wide = generate(runtime, seed=3, width=96)
    assert wide.images[0].size == (96, 64)


@pytest.mark.slow
def test_single_file_checkpoint_needs_config_offline_then_matches_folder(runtime, tiny_sd_dir):
    from tests.tiny_models import save_stable_diffusion_single_file

    image_dir = runtime.catalog.models_dir / "image"
    save_stable_diffusion_single_file(tiny_sd_dir, image_dir / "tiny-single.safetensors")
    with pytest.raises(ModelLoadError, match=r"tiny-single\.config"):
        generate(runtime, model="tiny-single", seed=1)
    # the config folder (no weights) is what a user copies from the base model; it is not listed as a model
    shutil.copytree(tiny_sd_dir, image_dir / "tiny-single.config", ignore=shutil.ignore_patterns("*.safetensors"))
    names = [s.name for s in runtime.catalog.models("image")]
    assert "tiny-single" in names and "tiny-single.config" not in names
    single = generate(runtime, model="tiny-single", seed=1)
    folder = generate(runtime, seed=1)
    assert np.array_equal(pixels(single.images[0]), pixels(folder.images[0]))


@pytest.mark.slow
def test_png_metadata_round_trip(runtime):
    result = generate(runtime, prompt="一只红狐狸, watercolor", negative_prompt="blurry, dark", seed=11,
                      scheduler="Euler a", guidance=5.5)
    stored = read_png_parameters(result.paths[0])
    expected = dict(prompt="一只红狐狸, watercolor", negative_prompt="blurry, dark", model="tiny-sd", steps=2,
                    guidance=5.5, width=64, height=64, seed=11, scheduler="Euler a")
    assert {k: stored[k] for k in expected} == expected
    # the A1111-style chunk alone restores the same controls (what other tools read and write)
    from PIL import Image

    with Image.open(result.paths[0]) as image:
        a1111 = parse_a1111_text(image.text["parameters"])
    assert {k: a1111[k] for k in expected} == expected
    # and the same seed from the restored parameters gives the same image back
    restored = generate(runtime, **{k: stored[k] for k in ("prompt", "negative_prompt", "steps", "guidance",
                                                           "width", "height", "seed", "scheduler")})
    assert np.array_equal(pixels(restored.images[0]), pixels(result.images[0]))


def test_parse_foreign_a1111_text():
    text = ("masterpiece, a castle\nat night\nNegative prompt: lowres, bad anatomy\n"
            'Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 512x768, '
            'Model hash: abc123, Model: "my, model", Clip skip: 2')
    params = parse_a1111_text(text)
    assert params == dict(prompt="masterpiece, a castle\nat night", negative_prompt="lowres, bad anatomy", steps=30,
                          scheduler="DPM++ 2M Karras", guidance=6.5, seed=1234, width=512, height=768,
                          model="my, model")


@pytest.mark.slow
def test_stop_in_the_middle_keeps_finished_images_only(runtime):
    from pipelines.image.text_to_image import generate_images

    stop = StopToken()
    seen = []

    def press_stop_in_second_image(fraction, text):
        seen.append(text)
        if text.startswith("image 2/3 · step 1/"):
            stop.stop()

    result = generate_images("a fox", model="tiny-sd", steps=3, width=64, height=64, seed=5, batch_size=3,
                             runtime=runtime, stop=stop, on_progress=press_stop_in_second_image)
    assert result.stopped and result.seeds == [5] and len(result.paths) == 1
    assert "image 2/3 · step 2/3" not in seen  # interrupted between steps
    assert sorted(p.name for p in (runtime.outputs_dir / "image").iterdir()) == [result.paths[0].name]

    stop_now = StopToken()
    with pytest.raises(Stopped):
        generate_images("a fox", model="tiny-sd", **FAST, runtime=runtime, stop=stop_now,
                        on_progress=lambda f, text: text.startswith("image") and stop_now.stop())
    assert len(list((runtime.outputs_dir / "image").iterdir())) == 1  # nothing half-written


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt="  "), "prompt"),
    (dict(width=5000), "between 64 and"),
    (dict(height=16), "between 64 and"),
    (dict(steps=0), "Steps"),
    (dict(batch_size=9), "Batch size"),
    (dict(guidance=float("nan")), "number"),
    (dict(scheduler="Warp drive"), "Unknown scheduler"),
    (dict(model="nope-model"), "Unknown model"),
])
def test_bad_inputs_refused_before_loading(runtime, kwargs, message):
    with pytest.raises(UserError, match=message) as info:
        generate(runtime, **kwargs)
    assert info.value.zh and info.value.zh != info.value.message  # Chinese text too
    assert "image:" not in " ".join(m.key for m in runtime.cache.loaded())


def test_offline_hub_model_and_pickled_checkpoint_explained(runtime):
    with pytest.raises(ModelLoadError, match=r"Models tab \(`python -m pipelines.models download sd-turbo`\)"):
        generate(runtime, model="sd-turbo")
    ckpt = runtime.catalog.models_dir / "image" / "old.ckpt"
    ckpt.write_bytes(b"not really a pickle")
    with pytest.raises(UserError, match="pickled checkpoint"):
        generate(runtime, model="old")


@pytest.mark.slow
def test_rounding_long_prompt_and_schedulers(runtime):
    from pipelines.image.text_to_image import SCHEDULERS

    result = generate(runtime, prompt="a very long prompt " * 10, width=100, seed=2)
    assert result.images[0].size == (104, 64)
    assert any("rounded from 100 to 104" in n.en and "104 像素" in n.zh for n in result.notices)
    assert any("the model reads the first 75" in n.en and "前 75 个" in n.zh for n in result.notices)
    for name in SCHEDULERS:
        assert generate(runtime, scheduler=name, seed=2).images[0].size == (64, 64), name


@pytest.mark.slow
def test_nan_image_detected_and_reported(runtime):
    from safetensors.torch import load_file, save_file

    broken = runtime.catalog.models_dir / "image" / "tiny-broken"
    shutil.copytree(runtime.catalog.models_dir / "image" / "tiny-sd", broken)
    weights_file = broken / "vae" / "diffusion_pytorch_model.safetensors"
    weights = load_file(weights_file)
    weights["decoder.conv_out.bias"][:] = float("nan")  # what an fp16 overflow looks like
    save_file(weights, str(weights_file))
    with pytest.raises(UserError, match="NaN"):
        generate(runtime, model="tiny-broken", seed=1)
    assert not (runtime.outputs_dir / "image").exists() or not list((runtime.outputs_dir / "image").iterdir())


@pytest.mark.slow
def test_cli_writes_png_and_fails_in_one_line(runtime, tmp_path):
    env = dict(os.environ, AIGC_MODELS_DIR=str(runtime.catalog.models_dir), AIGC_OUTPUTS_DIR=str(tmp_path / "o"),
               HF_HUB_OFFLINE="1")
    out = tmp_path / "fox.png"
    ok = subprocess.run([sys.executable, "-m", "pipelines.text_to_image", "--prompt", "a fox", "--model", "tiny-sd",
                         "--steps", "2", "--width", "64", "--height", "64", "--seed", "9", "--out", str(out)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert read_png_parameters(out)["seed"] == 9
    bad = subprocess.run([sys.executable, "-m", "pipelines.text_to_image", "--prompt", "a fox", "--model",
                          str(tmp_path / "missing-folder" / "x.safetensors"), "--out", str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


@pytest.mark.slow
def test_generate_image_api(client, studio, tiny_sd_dir):
    _, _, config = studio
    target = config.models_dir / "image" / "tiny-sd"
    if not target.exists():
        shutil.copytree(tiny_sd_dir, target)
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate_image"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == [
        "prompt", "negative_prompt", "model", "steps", "guidance", "width", "height", "seed"]
    files = client.predict("a fox", "blurry", "tiny-sd", 2, 7.5, 64, 64, 21, api_name="/generate_image")
    assert len(files) == 1
    params = read_png_parameters(files[0])
    assert (params["seed"], params["width"], params["model"]) == (21, 64, "tiny-sd")
    with pytest.raises(Exception, match="Please write a prompt"):
        client.predict("", "", "tiny-sd", 2, 7.5, 64, 64, 21, api_name="/generate_image")
