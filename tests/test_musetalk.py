"""The MuseTalk engine on tiny random networks of the release's classes and layout (tests/tiny_models.py),
loaded through the real catalog path from a temporary models/twin/musetalk/: the video it makes, what
it changes and what it leaves alone, the audio layout, bad or missing weights, batching under memory
pressure, and the CLI. The CUDA path cannot run here (no GPU); its batch logic is tested on the CPU."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipelines.core.cache import ModelCache
from pipelines.core.catalog import Catalog, availability
from pipelines.core.errors import ModelLoadError, Stopped, UserError
from pipelines.core.jobs import StopToken
from pipelines.core.runtime import Runtime
from pipelines.core.settings import ASSETS_DIR
from pipelines.face import landmarks as fl
from pipelines.twin import pipeline as twin
from pipelines.twin.engines import AnimationJob, AnimationOptions, load_engine
from pipelines.twin.engines import musetalk as mt
from pipelines.twin.engines import musetalk_model as mm
from pipelines.twin.engines.classic import ClassicEngine
from pipelines.twin.engines.mouth_paste import blend_mask, crop_box, cut_crop, paste_mouth
from tests.tiny_models import build_tiny_musetalk

PHOTO = ASSETS_DIR / "astronaut.jpg"
ROOT = Path(__file__).resolve().parent.parent


def make_runtime(root) -> Runtime:
    return Runtime(cache=ModelCache(budget_bytes=2**31), catalog=Catalog(root / "models"),
                   outputs_dir=root / "outputs", device_preference="cpu")


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    """A studio folder whose models/twin/musetalk/ holds the tiny release."""
    root = tmp_path_factory.mktemp("musetalk")
    build_tiny_musetalk(root / "models" / "twin" / "musetalk")
    return root


@pytest.fixture(scope="module")
def runtime(models_root):
    return make_runtime(models_root)


@pytest.fixture(scope="module")
def engine(runtime):
    key, loader, _label = load_engine("musetalk", runtime)
    return runtime.cache.get(key, loader)


def load_engine_model(runtime) -> mm.MuseTalkModel:
    key, loader, _label = load_engine("musetalk", runtime)
    return runtime.cache.get(key, loader).model


@pytest.fixture(scope="module")
def face_canvas(runtime):
    image = twin.load_photo(PHOTO)
    face = fl.detect_faces(image, runtime=runtime)[0]
    return twin.frame_photo(image, face, "face")


def speech_like(seconds: float, rate: int = 16000) -> np.ndarray:
    """A voiced buzz in 0.2 s bursts: loud enough to open the classic mouth, simple enough to reason about."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * ((t % 0.4) < 0.2)).astype(np.float32)


def make_job(face_canvas, n_frames=8, seed=3, fps=25) -> AnimationJob:
    canvas, face = face_canvas
    audio = speech_like(n_frames / fps)
    return AnimationJob(image=canvas, face=face, audio=audio, sample_rate=16000, n_frames=n_frames,
                        options=AnimationOptions(fps=fps, seed=seed))


# ---------------------------------------------------------------- catalog and loading


def test_the_catalog_finds_the_release_folder_and_prefers_it_to_the_hub(runtime, models_root):
    twins = [s for s in runtime.catalog.models("twin") if s.name == "musetalk"]
    assert len(twins) == 1 and twins[0].source_kind == "local" and twins[0].backend == "musetalk"
    assert twins[0].source == str(models_root / "models" / "twin" / "musetalk")
    assert "GPU recommended" in twins[0].description and not twins[0].needs_gpu
    assert "commercial" in twins[0].licence and twins[0].commercial_use
    assert availability(twins[0]).ok


def test_the_engine_loads_through_the_cache_with_the_release_classes(engine, runtime):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    assert isinstance(engine, mt.MuseTalkEngine)
    model = engine.model
    assert isinstance(model.unet, UNet2DConditionModel) and isinstance(model.vae, AutoencoderKL)
    assert isinstance(model.whisper, WhisperEncoder)
    assert (model.unet.config.in_channels, model.unet.config.out_channels) == (8, 4)
    assert model.scaling == pytest.approx(0.18215)
    assert model.device == "cpu" and model.dtype == torch.float32
    assert any(info.key.startswith("twin:musetalk") and info.size_bytes == model.size_bytes()
               for info in runtime.cache.loaded())


def test_the_layout_of_musetalks_own_download_script_loads_too(tmp_path):
    """openai/whisper-tiny is a WhisperForConditionalGeneration (only its encoder is kept), and MuseTalk's
    script downloads the VAE and Whisper as pickled .bin files (read with weights_only=True)."""
    folder = build_tiny_musetalk(tmp_path / "musetalk", full_whisper=True, bin_weights=True)
    assert (folder / "whisper" / "pytorch_model.bin").is_file() and not (folder / "whisper" / "model.safetensors").exists()
    model = mm.load_musetalk(mm.local_files(folder))
    features = model.audio_features(speech_like(1.0), 16000)
    assert tuple(features.shape) == (50, 3, 16)  # 50 encoder frames/s; embeddings + 2 layers; d_model 16


# ---------------------------------------------------------------- the video


@pytest.mark.slow
def test_create_twin_video_with_musetalk_gives_the_classic_kind_of_file(runtime, tmp_path):
    from pipelines.core.media import probe_video, write_wav

    wav = write_wav(tmp_path / "voice.wav", speech_like(1.2, 22050), 22050)
    progress = []
    result = twin.create_twin_video(PHOTO, script="Hello there.", audio=str(wav), subtitles=True, seed=5,
                                    engine="musetalk", runtime=runtime, on_progress=lambda f, text: progress.append(text))
    info = probe_video(result.path)
    assert (info.video_codec, info.pixel_format, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert (info.width, info.height) == (512, 512) and info.fps == 25
    assert info.frames == result.frames == 30
    assert abs(info.video_seconds - 1.2) <= 0.1 and abs(info.audio_seconds - 1.2) <= 0.1
    params = json.loads(info.tags["comment"])
    assert params["engine"] == "musetalk" and params["subtitles"] is True and params["seed"] == 5
    assert "engine: musetalk" in info.tags["description"]
    assert params["label"] == "AI-generated" and params["ai_label"] is True  # the burned-in label, as classic
    assert any("CPU" in n.en and "slow" in n.en and n.zh for n in result.notices)
    # the estimate is said before the first frame is drawn
    said = next(i for i, text in enumerate(progress) if "slow" in text and "seconds" in text)
    assert said < next(i for i, text in enumerate(progress) if text.startswith("frame "))


def test_same_seed_same_frames(engine, face_canvas):
    a = list(engine.animate(make_job(face_canvas, seed=3)))
    b = list(engine.animate(make_job(face_canvas, seed=3)))
    assert len(a) == 8 and all(np.array_equal(x, y) for x, y in zip(a, b))
    c = list(engine.animate(make_job(face_canvas, seed=4)))  # other head motion and blinks
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_the_mouth_is_redrawn_and_the_rest_is_the_classic_frame(engine, face_canvas):
    job = make_job(face_canvas)
    neural = list(engine.animate(job))
    posed = list(ClassicEngine().animate_posed(job))
    assert len(neural) == len(posed) == job.n_frames
    for frame, classic in zip(neural, posed):
        assert frame.shape == classic.image.shape and frame.dtype == np.uint8
        x0, y0, x1, y1 = box = crop_box(classic.points)
        weights = np.zeros(frame.shape[:2], np.float32)
        weights[max(y0, 0):y1, max(x0, 0):x1] = blend_mask(classic.points, box)[max(-y0, 0):, max(-x0, 0):]
        outside = weights == 0
        assert np.array_equal(frame[outside], classic.image[outside])  # not one pixel changed off the mask
        mouth = np.zeros(frame.shape[:2], np.uint8)
        lips = classic.points[fl.LIPS_OUTER_UPPER + fl.LIPS_OUTER_LOWER[::-1]]
        cv2.fillPoly(mouth, [np.round(lips).astype(np.int32)], 1)
        changed = np.abs(frame.astype(int) - classic.image.astype(int)).sum(-1)
        assert changed[mouth > 0].mean() > 10  # the (random) network's drawing is there
        # the mask follows the lower face: eyes and nose bridge stay the classic engine's, nothing below the chin
        rows = np.nonzero(weights.any(axis=1))[0]
        assert rows.min() > classic.points[[195, 5], 1].mean() and rows.max() <= classic.points[152, 1] + 1


@pytest.mark.parametrize("cast", [0, -20])
def test_a_faithful_drawing_pastes_back_without_a_seam_even_with_a_colour_cast(face_canvas, cast):
    """Crop placement and paste-back line up: a drawing equal to the crop (here with a colour cast,
    which the colour match removes) gives back the frame up to resampling, with no box edge.
    (A drawing one crop pixel off gives a 99th percentile of ~30 levels here.)"""
    canvas, face = face_canvas
    box = crop_box(face.points)
    drawing = np.clip(cut_crop(canvas, box, mm.CROP_SIZE).astype(int) + (cast, cast // 2, cast), 0, 255)
    pasted = paste_mouth(canvas, drawing.astype(np.uint8), box, face.points)
    diff = np.abs(pasted.astype(int) - canvas.astype(int)).max(axis=-1)
    assert diff.mean() < 0.2 and np.percentile(diff[diff > 0], 99) < 10
    x0, y0, x1, y1 = box
    edges = np.concatenate([diff[y0:y1, x0], diff[y0:y1, x1 - 1], diff[y0, x0:x1], diff[y1 - 1, x0:x1]])
    assert edges.max() == 0  # the crop's border is never part of the blend


def test_a_crop_reaching_outside_the_frame_still_fits(face_canvas):
    canvas, face = face_canvas
    top = int(face.points[[195, 5], 1].mean())  # cut the frame at the nose: the crop's upper half is outside
    frame, points = np.ascontiguousarray(canvas[top:]), face.points - (0, top)
    box = crop_box(points)
    assert box[1] < 0
    crop = cut_crop(frame, box, mm.CROP_SIZE)
    assert crop.shape == (mm.CROP_SIZE, mm.CROP_SIZE, 3)
    pasted = paste_mouth(frame, crop, box, points)
    assert pasted.shape == frame.shape
    assert np.abs(pasted.astype(int) - frame.astype(int)).mean() < 0.5


def test_stop_ends_the_work_between_batches(runtime, face_canvas):
    engine = mt.MuseTalkEngine(load_engine_model(runtime), batch_size=2)
    stop = StopToken()
    frames = engine.animate(make_job(face_canvas, n_frames=10), stop=stop)
    next(frames)
    stop.stop()
    got = 1
    with pytest.raises(Stopped):
        for _ in frames:
            got += 1
    assert got <= 2  # the rest of the batch in hand, then nothing


# ---------------------------------------------------------------- audio layout


def test_audio_windows_are_time_major_with_zeros_outside_the_track(engine):
    assert list(mm.window_starts(5, 25)) == [-4, -2, 0, 2, 4]  # 2 encoder frames per video frame, 80 ms lead
    assert list(mm.window_starts(3, 50)) == [-4, -3, -2]
    total, layers, dim = 12, 3, 16
    features = torch.arange(total * layers, dtype=torch.float32).reshape(total, layers, 1).repeat(1, 1, dim)
    tokens = engine.model.audio_windows(features, np.array([-2, 8]))
    assert tuple(tokens.shape) == (2, mm.WINDOW_FRAMES * layers, dim)
    raw = tokens - mm.position_encoding(mm.WINDOW_FRAMES * layers, dim)[None]
    values = raw[..., 0].reshape(2, mm.WINDOW_FRAMES, layers)
    assert torch.allclose(values[0, :2], torch.zeros(2, layers), atol=1e-5)  # before the start: silence
    assert torch.allclose(values[0, 2], features[0, :, 0], atol=1e-5)  # then frame 0, every layer in order
    assert torch.allclose(values[1, 3], features[11, :, 0], atol=1e-5)  # the last frame of the track...
    assert torch.allclose(values[1, 4:], torch.zeros(6, layers), atol=1e-5)  # ...then silence


def test_audio_features_cover_the_track_at_50_frames_per_second(engine):
    features = engine.model.audio_features(speech_like(0.5, 22050), 22050)  # resampled to 16 kHz first
    assert tuple(features.shape) == (25, 3, 16)
    long = engine.model.audio_features(speech_like(31.0), 16000)  # two Whisper windows of 30 s
    assert long.shape[0] == 1550


# ---------------------------------------------------------------- bad or missing weights


@pytest.fixture
def release_copy(models_root, tmp_path):
    """A fresh studio folder holding a copy of the tiny release, to break."""
    shutil.copytree(models_root / "models", tmp_path / "models")
    return tmp_path, tmp_path / "models" / "twin" / "musetalk"


def load_from(root):
    runtime = make_runtime(root)
    key, loader, _label = load_engine("musetalk", runtime)
    return runtime.cache.get(key, loader)


@pytest.mark.parametrize("part, named", [
    ("musetalkV15/unet.pth", "musetalkV15/unet.pth"),
    ("musetalkV15/musetalk.json", "musetalkV15/musetalk.json"),
    ("sd-vae", "sd-vae/"),
    ("whisper", "whisper/"),
    ("whisper/preprocessor_config.json", "whisper/preprocessor_config.json"),
])
def test_a_missing_part_is_named(release_copy, part, named):
    root, folder = release_copy
    target = folder / part
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ModelLoadError, match="incomplete") as info:
        load_from(root)
    assert named in info.value.message and "sd-vae/" in info.value.message  # and the whole layout is shown
    assert "缺少" in info.value.zh


def test_corrupt_weights_are_reported(release_copy):
    root, folder = release_copy
    (folder / "musetalkV15" / "unet.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match="could not be read"):
        load_from(root)


def test_a_truncated_download_is_reported(release_copy):
    root, folder = release_copy
    weights = folder / "musetalkV15" / "unet.pth"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt or incomplete"):
        load_from(root)


class NotAWeight:  # anything torch.load would have to run code to rebuild
    pass


def test_pickled_code_is_refused(release_copy):
    root, folder = release_copy
    torch.save({"conv_in.weight": torch.zeros(1), "extra": NotAWeight()}, folder / "musetalkV15" / "unet.pth")
    with pytest.raises(ModelLoadError, match="refused for safety") as info:
        load_from(root)
    assert "NotAWeight" in info.value.message


def test_weights_of_another_config_are_reported(release_copy):
    root, folder = release_copy
    config = json.loads((folder / "musetalkV15" / "musetalk.json").read_text())
    config["block_out_channels"] = [32, 64]
    config["in_channels"] = 4
    (folder / "musetalkV15" / "musetalk.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not match") as info:
        load_from(root)
    assert "wrong shape" in info.value.message and "conv_in.weight" in info.value.message


def test_parts_that_do_not_fit_together_are_reported(release_copy, tmp_path):
    root, folder = release_copy
    other = build_tiny_musetalk(tmp_path / "other", whisper_dim=24)  # a UNet listening to 24-d audio
    shutil.rmtree(folder / "musetalkV15")
    shutil.copytree(other / "musetalkV15", folder / "musetalkV15")
    with pytest.raises(ModelLoadError, match="do not fit together") as info:
        load_from(root)
    assert "24-d audio" in info.value.message and "16" in info.value.message


def test_offline_hub_id_says_where_to_put_the_weights(tmp_path):
    runtime = make_runtime(tmp_path)  # empty models/: the catalog's entry is the hub id
    spec = runtime.catalog.get("twin", "musetalk")
    assert spec.source_kind == "hub" and spec.source == "TMElyralab/MuseTalk"
    assert "models/twin/" in availability(spec).reason
    with pytest.raises(ModelLoadError, match="models/twin/musetalk/") as info:
        load_from(tmp_path)
    assert "musetalkV15/unet.pth" in info.value.message and "openai/whisper-tiny" in info.value.message
    assert "models/twin/musetalk/" in info.value.zh


# ---------------------------------------------------------------- batches, memory, time


def test_batch_size_follows_free_gpu_memory():
    assert mt.choose_batch_size("cpu") == mt.CPU_BATCH
    assert mt.choose_batch_size("cuda", free_bytes=0) == 1
    assert mt.choose_batch_size("cuda", free_bytes=4 * 2**30) == 7  # 70 % of 4 GiB at 400 MiB a frame
    assert mt.choose_batch_size("cuda:1", free_bytes=80 * 2**30) == mt.MAX_GPU_BATCH


def oom_above(limit: int, forward, seen: list):
    """``forward``, except that a batch bigger than ``limit`` runs out of memory like CUDA does."""
    def run(items, *more):
        seen.append(len(items))
        if len(items) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(items, *more)
    return run


def test_out_of_memory_halves_the_batch_and_keeps_the_smaller_size():
    seen, released = [], []
    batches = mt.HalvingBatches(8, release=lambda: released.append(1))
    assert batches.run(list(range(10)), oom_above(2, lambda xs: [x * x for x in xs], seen)) == [x * x for x in range(10)]
    assert seen[:3] == [8, 4, 2] and set(seen[3:]) == {2} and batches.size == 2 and len(released) == 2
    seen.clear()
    assert batches.run([1, 2, 3], oom_above(2, lambda xs: list(xs), seen)) == [1, 2, 3]
    assert seen == [2, 1]  # the next batch starts at the size that worked


def test_out_of_memory_at_one_frame_is_a_clear_error_and_other_errors_pass():
    with pytest.raises(UserError, match="Out of GPU memory even one frame at a time") as info:
        mt.HalvingBatches(4, release=lambda: None).run([1, 2], oom_above(0, list, []))
    assert "classic" in info.value.message and "显存" in info.value.zh
    mps_style = RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)")
    assert mt.is_out_of_memory(mps_style) and not mt.is_out_of_memory(ValueError("out of memory"))

    def broken(items):
        raise ValueError("a real bug")
    with pytest.raises(ValueError, match="a real bug"):
        mt.HalvingBatches(4, release=lambda: None).run([1], broken)


def test_the_engine_survives_running_out_of_memory(runtime, face_canvas):
    model = load_engine_model(runtime)
    job = make_job(face_canvas, n_frames=6)
    plain = list(mt.MuseTalkEngine(model, batch_size=6).animate(job))
    seen = []
    squeezed = mt.MuseTalkModel(model.unet, model.vae, model.whisper, model.features, model.device, model.dtype)
    squeezed.redraw = oom_above(2, model.redraw, seen)  # the real forward, failing on big batches
    frames = list(mt.MuseTalkEngine(squeezed, batch_size=6).animate(job))
    assert seen[:3] == [6, 3, 1] and set(seen[3:]) == {1}  # halved twice, then kept at the size that fits
    assert len(frames) == 6
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(plain, frames)) <= 2


def test_cpu_time_is_estimated_before_starting(engine, face_canvas):
    full_cpu = mt.estimate_seconds(250, "cpu", cpu_threads=2)
    assert 250 * 5 < full_cpu < 250 * 10  # ~7.3 s a frame on 2 threads for the release's sizes
    assert mt.estimate_seconds(500, "cpu", cpu_threads=2) == pytest.approx(2 * full_cpu)
    assert mt.estimate_seconds(250, "cuda") < full_cpu / 50
    notices = engine.notices(make_job(face_canvas, n_frames=250))
    assert len(notices) == 1 and "slow" in notices[0].en and "GPU" in notices[0].en and "250" in notices[0].zh


# ---------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_engine_flag(models_root, tmp_path, monkeypatch, capsys):
    from pipelines.core.media import probe_video, write_wav

    monkeypatch.setenv("AIGC_MODELS_DIR", str(models_root / "models"))
    monkeypatch.setenv("AIGC_OUTPUTS_DIR", str(tmp_path / "outputs"))
    monkeypatch.setenv("AIGC_DEVICE", "cpu")
    wav = write_wav(tmp_path / "voice.wav", speech_like(0.6), 16000)
    out = tmp_path / "cli.mp4"
    assert twin.main(["--photo", str(PHOTO), "--audio", str(wav), "--out", str(out), "--engine", "musetalk"]) == 0
    assert json.loads(probe_video(out).tags["comment"])["engine"] == "musetalk"
    assert twin.main(["--photo", str(PHOTO), "--audio", str(wav), "--out", str(out), "--engine", "nope"]) == 2
    assert "Unknown model 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- audit of issue 11: what the tests above left out


def test_the_backend_is_registered_through_talking_head_and_the_hub_entry_is_described():
    import pipelines.talking_head as talking_head
    from pipelines.twin import engines

    assert talking_head.register_engine is engines.register_engine
    assert "musetalk" in talking_head.engine_backends()
    assert engines._ENGINES["musetalk"] is mt.load_musetalk_engine
    hub = next(s for s in Catalog(ASSETS_DIR / "no-such-models-dir").models("twin") if s.name == "musetalk")
    assert hub.source_kind == "hub" and hub.size_mb == 3900 and "GPU recommended" in hub.description
    assert "commercial" in hub.licence and "GPU" in hub.description_zh and hub.licence_zh


def test_the_reference_is_encoded_once_and_each_frame_once_masked(runtime, face_canvas):
    """The VAE sees the photo's crop once (unmasked) per video, then every frame's crop once, masked."""
    model = load_engine_model(runtime)
    calls = []
    real_encode = model.vae.encode

    def counting_encode(x, *args, **kwargs):
        calls.append((x.shape[0], bool((x[:, :, x.shape[2] // 2:, :] == -1).all())))
        return real_encode(x, *args, **kwargs)

    model.vae.encode = counting_encode  # the engine's own VAE, counted on its way through
    try:
        frames = list(mt.MuseTalkEngine(model, batch_size=3).animate(make_job(face_canvas, n_frames=7)))
    finally:
        del model.vae.encode
    assert len(frames) == 7
    assert calls[0] == (1, False)  # the reference, unmasked, first
    assert calls[1:] == [(3, True), (3, True), (1, True)]  # then the frames, in batches, lower half masked


def test_fp16_runs_every_network_in_half_precision(models_root, face_canvas):
    """What CUDA gets (runtime.dtype() is fp16 there), run on the CPU through the real catalog path."""
    from pipelines.core.devices import default_dtype

    assert default_dtype("cuda") == torch.float16 and default_dtype("cuda:1") == torch.float16
    assert default_dtype("cpu") == torch.float32

    class HalfPrecision(Runtime):
        def dtype(self):
            return torch.float16

    half_runtime = HalfPrecision(cache=ModelCache(budget_bytes=2**31), catalog=Catalog(models_root / "models"),
                                 outputs_dir=models_root / "outputs-fp16", device_preference="cpu")
    key, loader, _label = load_engine("musetalk", half_runtime)
    half = half_runtime.cache.get(key, loader)
    model = half.model
    assert model.dtype == torch.float16
    assert {p.dtype for m in (model.unet, model.vae, model.whisper) for p in m.parameters()} == {torch.float16}
    job = make_job(face_canvas, n_frames=4)
    canvas = job.image
    assert model.encode(cut_crop(canvas, crop_box(job.face.points), mm.CROP_SIZE)[None]).dtype == torch.float16
    assert model.audio_windows(model.audio_features(job.audio, 16000), np.array([0])).dtype == torch.float16
    frames = list(half.animate(job))
    full = list(mt.MuseTalkEngine(mm.load_musetalk(mm.local_files(models_root / "models" / "twin" / "musetalk")))
                .animate(job))
    assert len(frames) == 4 and all(f.dtype == np.uint8 and f.shape == canvas.shape for f in frames)
    # the same drawing up to half precision's rounding
    assert max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(frames, full)) < 1.0


def test_out_of_memory_before_the_first_batch_is_a_clear_error(runtime, face_canvas):
    """The reference encode and the audio features have nothing to halve: the same clear message."""
    model = load_engine_model(runtime)
    squeezed = mt.MuseTalkModel(model.unet, model.vae, model.whisper, model.features, model.device, model.dtype)

    def whisper_out_of_memory(audio, sample_rate):
        torch.zeros(4)  # a real (small) computation, then the error CUDA raises
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    squeezed.audio_features = whisper_out_of_memory
    with pytest.raises(UserError, match="Out of GPU memory for the reference face and the audio") as info:
        list(mt.MuseTalkEngine(squeezed, batch_size=2).animate(make_job(face_canvas, n_frames=4)))
    assert "classic" in info.value.message and "显存" in info.value.zh


@pytest.mark.slow
def test_out_of_memory_ends_the_video_cleanly_and_the_studio_goes_on(models_root, tmp_path):
    """A GPU too small even for one frame: a clear error, no file left behind, and the next video is made."""
    from pipelines.core.media import probe_video, write_wav

    studio = make_runtime(models_root)
    studio.outputs_dir = tmp_path / "outputs"
    key, loader, _label = load_engine("musetalk", studio)
    model = studio.cache.get(key, loader).model
    tries = []

    def redraw_out_of_memory(crops, reference, tokens):
        tries.append(len(crops))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.redraw = redraw_out_of_memory  # the engine in the studio's cache, on a GPU that is too small
    wav = write_wav(tmp_path / "voice.wav", speech_like(0.6), 16000)
    with pytest.raises(UserError, match="Out of GPU memory even one frame at a time"):
        twin.create_twin_video(PHOTO, audio=str(wav), engine="musetalk", runtime=studio)
    assert tries == [4, 2, 1]  # halved and retried before giving up
    assert not any((tmp_path / "outputs").rglob("*.mp4")) and not any((tmp_path / "outputs").rglob("*.json"))
    assert all(info.in_use == 0 for info in studio.cache.loaded())  # nothing left held
    del model.redraw  # memory is back: the same studio makes the next video
    result = twin.create_twin_video(PHOTO, audio=str(wav), engine="musetalk", seed=1, runtime=studio)
    assert probe_video(result.path).frames == result.frames == 15


def _bad_inputs(tmp_path):
    from PIL import Image

    from pipelines.core.media import write_wav

    (tmp_path / "notes.jpg").write_text("not an image")
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(tmp_path / "black.png")
    long = write_wav(tmp_path / "long.wav", np.full(8000 * 600, 0.1, np.float32), 8000)
    return {
        "no script": dict(script="   "),
        "no consent": dict(consent=False),
        "expression": dict(expression=3.0),
        "fps": dict(fps=5),
        "size": dict(output_size="poster"),
        "not a photo": dict(photo=tmp_path / "notes.jpg"),
        "no face": dict(photo=tmp_path / "black.png"),
        "too long": dict(script="", audio=str(long)),
    }


def test_what_the_classic_engine_refuses_musetalk_refuses_the_same_way(models_root, tmp_path):
    """One set of checks before any engine runs: the same error, word for word, and MuseTalk never loaded."""
    studio = make_runtime(models_root)
    for case, bad in _bad_inputs(tmp_path).items():
        args = {"photo": PHOTO, "script": "Hello.", **bad}
        refused = {}
        for engine in ("classic", "musetalk"):
            with pytest.raises(UserError) as info:
                twin.create_twin_video(engine=engine, runtime=studio, out=tmp_path / f"{engine}.mp4", **args)
            refused[engine] = (info.value.message, info.value.zh)
        assert refused["classic"] == refused["musetalk"], case
    assert not any(info.key.startswith("twin:musetalk") for info in studio.cache.loaded())
    assert not (tmp_path / "musetalk.mp4").exists()


def test_pickled_code_in_the_vae_or_whisper_files_is_refused_and_never_runs(tmp_path):
    """MuseTalk's own download script fetches the VAE and Whisper as pickled .bin files: they are read
    with weights_only=True too, and a file that would run code is refused with its part named."""
    marker = tmp_path / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for part, file_name, named in (("sd-vae", "diffusion_pytorch_model.bin", "VAE"),
                                   ("whisper", "pytorch_model.bin", "Whisper encoder")):
        folder = build_tiny_musetalk(tmp_path / part, bin_weights=True)
        state = torch.load(folder / part / file_name, weights_only=True)
        state["extra"] = RunsCode()
        torch.save(state, folder / part / file_name)
        with pytest.raises(ModelLoadError, match="refused for safety") as info:
            mm.load_musetalk(mm.local_files(folder))
        assert named in info.value.message and "open" in info.value.message and "拒绝" in info.value.zh
        assert "\n" not in info.value.message  # one readable line, not torch's whole explanation
    assert not marker.exists()


def test_a_half_installed_folder_is_not_offered_as_runnable(release_copy):
    """The twin tab lists an incomplete models/twin/musetalk/ as not runnable, saying what is missing."""
    root, folder = release_copy
    (folder / "whisper" / "preprocessor_config.json").unlink()
    spec = make_runtime(root).catalog.get("twin", "musetalk")
    state = availability(spec, check_network=False)
    assert not state.ok and "whisper/preprocessor_config.json" in state.reason
    assert "whisper/preprocessor_config.json" in state.reason_zh and "缺少" in state.reason_zh


def test_the_offline_hub_entry_names_its_own_folder(tmp_path):
    spec = make_runtime(tmp_path).catalog.get("twin", "musetalk")
    state = availability(spec, check_network=False)
    assert not state.ok and "models/twin/musetalk/" in state.reason and "models/twin/musetalk/" in state.reason_zh


@pytest.mark.parametrize("lang, reason", [("en", "put it in models/twin/musetalk/"), ("zh", "请放入 models/twin/musetalk/")])
def test_the_engine_choice_lists_musetalk_last_with_its_reason(tmp_path, lang, reason):
    """What the twin tab's Engine dropdown offers with no MuseTalk installed, in each language (the
    browser test checks that such an entry is greyed)."""
    from aigc_ui import twin_tab
    from tests.test_ui_handlers import make_context

    ctx = make_context(tmp_path, Catalog(tmp_path / "models"))
    choices = twin_tab.engine_choices(ctx, lang)
    assert choices[0] == ("classic", "classic")
    label, value = next(c for c in choices if c[1] == "musetalk")
    assert label.startswith("musetalk" + twin_tab.CANNOT_RUN_SEPARATOR) and reason in label
    installed = make_context(tmp_path / "installed", Catalog(tmp_path / "installed" / "models"))
    build_tiny_musetalk(tmp_path / "installed" / "models" / "twin" / "musetalk")
    assert ("musetalk", "musetalk") in twin_tab.engine_choices(installed, lang)  # installed: its bare name


HUB_LOAD = """
import json, sys
from pathlib import Path
from pipelines.core.cache import ModelCache
from pipelines.core.catalog import Catalog, availability, hub_reachable
from pipelines.core.runtime import Runtime
from pipelines.twin.engines import load_engine

root = Path(sys.argv[1])
runtime = Runtime(cache=ModelCache(budget_bytes=2**31), catalog=Catalog(root / "models"), outputs_dir=root / "out",
                  device_preference="cpu")
spec = runtime.catalog.get("twin", "musetalk")
state = availability(spec)
key, loader, _ = load_engine("musetalk", runtime)
model = runtime.cache.get(key, loader).model
print(json.dumps({"source": spec.source_kind + ":" + spec.source, "ok": state.ok, "reason": state.reason,
                  "online": hub_reachable(), "unet": type(model.unet).__name__, "vae": type(model.vae).__name__,
                  "in_channels": model.unet.config.in_channels}))
"""


@pytest.mark.slow
def test_the_hub_id_downloads_when_online_then_loads_offline_from_the_hub_cache(models_root, tmp_path):
    """No models/twin/musetalk/: the catalog's hub entry fetches the UNet's two files from
    TMElyralab/MuseTalk and loads the VAE and Whisper by their hub ids (a local stand-in for the hub,
    tests/fake_hub.py, reached through HF_ENDPOINT); later, offline, the same entry loads from the hub cache."""
    import os
    import subprocess
    import sys

    from tests.fake_hub import FakeHub

    release = models_root / "models" / "twin" / "musetalk"
    hub = FakeHub().start()
    try:
        hub.add_repo("TMElyralab/MuseTalk", {f"musetalkV15/{name}": (release / "musetalkV15" / name).read_bytes()
                                             for name in ("musetalk.json", "unet.pth")})
        hub.add_folder("stabilityai/sd-vae-ft-mse", release / "sd-vae")
        hub.add_folder("openai/whisper-tiny", release / "whisper")
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
               "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"), "PYTHONPATH": str(ROOT)}
        env.pop("TRANSFORMERS_OFFLINE", None)
        env.pop("HF_DATASETS_OFFLINE", None)

        def load(**more):
            done = subprocess.run([sys.executable, "-c", HUB_LOAD, str(tmp_path / "studio")], env={**env, **more},
                                  cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            return json.loads(done.stdout.strip().splitlines()[-1])

        online = load()
        assert online == {"source": "hub:TMElyralab/MuseTalk", "ok": True, "reason": "downloads on first use",
                          "online": True, "unet": "UNet2DConditionModel", "vae": "AutoencoderKL", "in_channels": 8}
        fetched = [r.path for r in hub.requests if r.method == "GET"]
        assert any(p.startswith("/TMElyralab/MuseTalk/resolve/") and p.endswith("/musetalkV15/musetalk.json")
                   for p in fetched)
        assert any(p.endswith("/musetalkV15/unet.pth") for p in fetched)  # through the "CDN", as LFS files go
        assert any(r.path.startswith("/stabilityai/sd-vae-ft-mse/") for r in hub.requests)
        assert any(r.path.startswith("/openai/whisper-tiny/") for r in hub.requests)
    finally:
        hub.stop()
    offline = load(HF_HUB_OFFLINE="1")  # the hub is gone: the cache serves
    assert offline["ok"] and not offline["online"] and offline["unet"] == "UNet2DConditionModel"
