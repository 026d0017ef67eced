"""Provenance on real outputs of each tab: the invisible watermark and Content Credentials are written,
the checker reads them back, survive re-encoding, and tampering, forgeries and bad input are reported
clearly. Real models throughout (tiny SD, tiny DDPM, Piper, MediaPipe + the classic twin engine)."""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.core.errors import UserError
from pipelines.core.media import ffmpeg_exe
from pipelines.core.settings import ASSETS_DIR, REPO_ROOT
from pipelines.provenance import check_file
from pipelines.provenance.image_watermark import detect_watermark, embed_watermark
from pipelines.provenance.payload import Payload, parse_bits, parse_soft

PHOTO = ASSETS_DIR / "astronaut.jpg"
# About 10 s of speech: the sound's mark repeats every 0.8 s, and Piper's takes cannot be seeded; on ~5 s takes
# a mark read back from MP3 failed now and then (the bench reads back 98 % of MP3 files)
SPEECH = ("The weather today is bright and clear, with a light breeze coming in from the sea. "
          "Tomorrow brings a little rain in the morning and sunshine again by the afternoon.")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, tiny_sd_dir):
    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import AppConfig
    from tests.tiny_models import build_tiny_ddpm

    root = tmp_path_factory.mktemp("provenance")
    shutil.copytree(tiny_sd_dir, root / "models" / "image" / "tiny-sd")
    build_tiny_ddpm(root / "models" / "faces" / "tiny-ddpm")
    return Runtime.from_config(AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", device="cpu"))


def ffmpeg(*args):
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", *map(str, args)], check=True)


def assert_ours(report, c2pa="valid"):
    assert report.c2pa == c2pa
    assert report.watermark and report.payload["studio"] == "AIGC Digital-Twin Studio"
    if c2pa == "valid":
        assert report.credentials.digital_source_type.endswith("trainedAlgorithmicMedia")
        assert report.credentials.actions[0]["action"] == "c2pa.created"
        assert report.credentials.claim_generator.startswith("AIGC Digital-Twin Studio")
        assert report.ids_match is True  # the watermark and the manifest name the same output


# ---------------------------------------------------------------- images (text-to-image, faces)
@pytest.fixture(scope="module")
def t2i_png(runtime):
    from pipelines.image.text_to_image import generate_images

    result = generate_images("a red fox in the snow", model="tiny-sd", steps=2, width=256, height=256, seed=5,
                             runtime=runtime)
    return result


@pytest.mark.slow
def test_text_to_image_png_is_marked_signed_and_keeps_its_parameters(t2i_png):
    report = check_file(t2i_png.paths[0])
    assert_ours(report)
    assert report.credentials.generation["model"] == "tiny-sd"
    assert report.parameters["prompt"] == "a red fox in the snow" and report.parameters["seed"] == 5
    assert report.parameters_source == "png text"
    # the returned image is the model's exact pixels (a seed reproduces it); the file is marked
    assert not detect_watermark(t2i_png.images[0]).found


def test_face_morph_mp4_is_marked_and_both_files_are_signed(runtime, tmp_path):
    from pipelines.face.synthesis import interpolate_faces

    morph = interpolate_faces(seed_a=3, seed_b=4, frames=8, fps=8, out_dir=tmp_path, runtime=runtime)
    video = check_file(morph.mp4)
    assert_ours(video)
    assert video.watermark_in == ("frames",) and video.parameters["seed_b"] == 4
    gif = check_file(morph.gif)  # a GIF's palette wipes out an invisible mark: the credentials say it
    assert gif.c2pa == "valid" and gif.credentials.generation["output_id"] == video.payload["output_id"]
    plain = interpolate_faces(seed_a=3, seed_b=4, frames=8, fps=8, out_dir=tmp_path / "off", runtime=runtime,
                              provenance=False)
    assert (check_file(plain.mp4).watermark, check_file(plain.mp4).c2pa, check_file(plain.gif).c2pa) == (
        False, "absent", "absent")


@pytest.mark.slow
def test_marking_can_be_turned_off(runtime):
    from pipelines.image.text_to_image import generate_images

    result = generate_images("a red fox in the snow", model="tiny-sd", steps=2, width=64, height=64, seed=5,
                             runtime=runtime, provenance=False)
    report = check_file(result.paths[0])
    assert report.c2pa == "absent" and not report.watermark and report.parameters["seed"] == 5


@pytest.fixture(scope="module")
def face_png(runtime):
    from pipelines.face.synthesis import generate_faces

    return generate_faces(model="tiny-ddpm", count=2, seed=3, steps=2, save=True, runtime=runtime).paths


@pytest.mark.slow
def test_faces_are_marked_and_signed(face_png):
    for path in face_png:
        report = check_file(path)
        assert_ours(report)
        assert report.credentials.generation["model"] == "tiny-ddpm"
        assert report.parameters_source == "sidecar json" and report.parameters["task"] == "faces"


@pytest.fixture(scope="module")
def natural_png(tmp_path_factory):
    """A photo-like output saved the way every image tab saves (tiny random models draw saturated noise,
    which no chroma watermark survives JPEG on; the bench measures 50+ natural images)."""
    from pipelines.provenance import save_png

    path = tmp_path_factory.mktemp("natural") / "portrait.png"
    save_png(Image.open(PHOTO).convert("RGB"), path, model="photo", engine="test")
    return path


def test_the_mark_survives_jpeg_resize_and_crop(natural_png, tmp_path):
    marked = Image.open(natural_png).convert("RGB")
    w, h = marked.size
    marked.save(tmp_path / "q75.jpg", quality=75)
    marked.resize((w // 2, h // 2), Image.BICUBIC).save(tmp_path / "half.png")
    marked.crop((int(w * 0.05) + 1, int(h * 0.05) + 3, w - int(w * 0.05), h - int(h * 0.05))).save(tmp_path / "crop.png")
    original = check_file(natural_png)
    assert_ours(original)
    for name in ("q75.jpg", "half.png", "crop.png"):
        report = check_file(tmp_path / name)
        assert report.watermark and report.payload == original.payload, name
        assert report.c2pa == "absent"  # re-saving drops the manifest; the watermark is what survives


def test_jpeg_outputs_can_be_signed_and_read(natural_png, tmp_path):
    from pipelines.provenance import sign_output

    jpeg = tmp_path / "face.jpg"
    Image.open(natural_png).convert("RGB").save(jpeg, quality=90)
    assert sign_output(jpeg, model="tiny-ddpm", engine="face synthesis", output_id="0badcafe")
    report = check_file(jpeg)
    assert report.c2pa == "valid" and report.credentials.generation["output_id"] == "0badcafe"
    assert report.watermark  # the face's own mark survived the JPEG


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return chunks


def _png_bytes(chunks) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, body in chunks:
        out += struct.pack(">I4s", len(body), kind) + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return out


@pytest.mark.slow
def test_pixels_changed_after_signing_are_reported_as_tampered(t2i_png, tmp_path):
    signed = t2i_png.paths[0].read_bytes()
    pixels = np.asarray(Image.open(io.BytesIO(signed)).convert("RGB")).copy()
    pixels[100:140, 100:140] = 255 - pixels[100:140, 100:140]  # someone edits the picture...
    edited = io.BytesIO()
    Image.fromarray(pixels).save(edited, format="PNG")
    new_idat = [body for kind, body in _png_chunks(edited.getvalue()) if kind == b"IDAT"]
    chunks, spliced = [], False  # ...and keeps every other chunk, the manifest included
    for kind, body in _png_chunks(signed):
        if kind == b"IDAT":
            if not spliced:
                chunks += [(b"IDAT", b) for b in new_idat]
                spliced = True
            continue
        chunks.append((kind, body))
    tampered = tmp_path / "tampered.png"
    tampered.write_bytes(_png_bytes(chunks))
    report = check_file(tampered)
    assert report.c2pa == "tampered"
    assert "TAMPERED" in report.summary("en") and "篡改" in report.summary("zh")


@pytest.mark.slow
def test_a_forged_manifest_is_reported_as_invalid(t2i_png, tmp_path):
    signed = t2i_png.paths[0].read_bytes()
    chunks = []
    for kind, body in _png_chunks(signed):
        if kind == b"caBX":  # the C2PA manifest: claim another model without re-signing
            assert b"tiny-sd" in body
            body = body.replace(b"tiny-sd", b"fake-sd")
        chunks.append((kind, body))
    forged = tmp_path / "forged.png"
    forged.write_bytes(_png_bytes(chunks))
    report = check_file(forged)
    assert report.c2pa == "invalid"
    assert "INVALID" in report.summary("en") and "伪造" in report.summary("zh")


# ---------------------------------------------------------------- the unmarked, and bad input
def test_an_unmarked_photo_has_no_mark_and_the_checker_never_says_not_ai():
    report = check_file(PHOTO)
    assert (report.c2pa, report.watermark, report.payload) == ("absent", False, None)
    english, chinese = report.summary("en"), report.summary("zh")
    assert "does not show that this is not AI-generated" in english and "并不能证明" in chinese
    assert "not AI" not in english.replace("not AI-generated", "")


def test_watermark_payload_needs_mark_and_crc():
    bits = Payload("1234abcd").to_bits()
    assert parse_bits(bits) == Payload("1234abcd")
    for i in (0, 20, 60):  # any single flipped bit is caught
        flipped = bits.copy()
        flipped[i] ^= 1
        assert parse_bits(flipped) is None
    votes = bits * 2.0 - 1
    votes[7] = -0.01  # one weak, wrong vote: the Chase pass repairs it
    assert parse_soft(votes) is None and parse_soft(votes, flips=1) == Payload("1234abcd")
    rng = np.random.default_rng(0)
    assert sum(parse_bits(rng.integers(0, 2, 64)) is not None for _ in range(2000)) == 0


def test_small_and_odd_images_round_trip():
    rng = np.random.default_rng(1)
    for shape in ((64, 64, 3), (96, 150, 3), (300, 200, 3), (301, 257, 3)):
        image = rng.integers(0, 256, shape).astype(np.uint8)
        image = np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BOX))
        found = detect_watermark(embed_watermark(image, Payload("00c0ffee")))
        assert found.found and found.payload == Payload("00c0ffee"), shape


def test_batched_embedding_is_the_library_rule():
    from pipelines.provenance import image_watermark as iw

    rng = np.random.default_rng(2)
    image = np.asarray(Image.open(PHOTO).convert("RGB").resize((320, 256)))
    assert np.allclose(iw.watermark_change(image, Payload("5eed5eed")),
                       iw.watermark_change(image, Payload("5eed5eed"), batched=True), atol=1e-3)
    low = rng.normal(300, 60, (32, 48))
    a, b = low.copy(), low.copy()
    bits = Payload("abcdef01").to_bits()
    iw._library_blocks(a, bits)
    iw._batched_blocks(b, bits)
    assert np.allclose(a, b, atol=1e-6) and not np.allclose(a, low)


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("just some notes, not a picture\n"), ("not an image, video or audio", "不是图片")),
    (lambda p: p.write_bytes(b""), ("empty", "空文件")),
    (lambda p: _sparse(p, 2 * 1024 ** 3), ("2.0 GB", "2.0 GB")),
    (lambda p: p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000)), ("damaged", "损坏")),
])
def test_bad_input_gets_a_clear_message_in_both_languages(tmp_path, make, words):
    path = tmp_path / "input.mp4"
    make(path)
    with pytest.raises(UserError) as error:
        check_file(path)
    assert words[0] in error.value.text("en") and words[1] in error.value.text("zh")


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as handle:  # 2 GB that take no disk space: the checker must refuse by size alone
        handle.truncate(size)


def test_cli_prints_one_json_object_and_fails_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    ok = subprocess.run([sys.executable, "-m", "pipelines.provenance", "check", str(PHOTO), "--json"],
                        capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    assert ok.returncode == 0
    assert json.loads(ok.stdout) == {"c2pa": "absent", "watermark": False, "payload": None, "parameters": {},
                                     "watermark_in": []}
    (tmp_path / "notes.txt").write_text("hello")
    bad = subprocess.run([sys.executable, "-m", "pipelines.provenance", "check", str(tmp_path / "notes.txt"),
                          "--language", "zh"], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and "不是图片" in bad.stderr


def test_signing_key_is_made_once_with_owner_only_permissions(tmp_path, monkeypatch):
    from pipelines.provenance import credentials

    monkeypatch.setenv(credentials.KEY_DIR_ENV, str(tmp_path / "keys"))
    monkeypatch.delenv(credentials.CERT_ENV, raising=False)
    chain, key = credentials.signing_identity()
    assert key.parent == tmp_path / "keys"
    assert oct(key.stat().st_mode & 0o777) == "0o600" and oct(chain.stat().st_mode & 0o777) == "0o600"
    first = key.read_bytes()
    assert credentials.signing_identity() == (chain, key) and key.read_bytes() == first  # reused, not remade


# ---------------------------------------------------------------- speech
@pytest.fixture(scope="module")
def speech(runtime):
    from pipelines.voice.synthesis import synthesize_speech

    return synthesize_speech(SPEECH, voice="piper-joe-en", runtime=runtime)


@pytest.mark.slow
def test_speech_wav_is_marked_signed_and_survives_mp3(speech, runtime, tmp_path):
    report = check_file(speech.path)
    assert_ours(report)
    assert report.parameters["text"] == SPEECH and report.parameters_source == "sidecar json"
    ffmpeg("-i", speech.path, "-b:a", "128k", tmp_path / "speech.mp3")
    again = check_file(tmp_path / "speech.mp3")
    assert again.watermark and again.payload == report.payload


@pytest.mark.slow
def test_speech_mp3_output_is_marked_and_signed(runtime):
    from pipelines.voice.synthesis import synthesize_speech

    result = synthesize_speech(SPEECH, voice="piper-joe-en", runtime=runtime, output_format="mp3")
    assert_ours(check_file(result.path))


def test_long_speech_is_marked_with_flat_memory(tmp_path):
    import tracemalloc

    import soundfile as sf

    from pipelines.provenance.audio_watermark import detect_audio_watermark
    from pipelines.provenance.marking import watermark_audio_file

    rate = 22050
    t = np.arange(rate * 200) / rate  # 200 s of a voice-like signal: 200 Hz buzz at a syllable rhythm
    voice = 0.2 * np.sign(np.sin(2 * np.pi * 200 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) ** 2
    path = tmp_path / "long.wav"
    sf.write(str(path), voice.astype(np.float32), rate, subtype="PCM_16")
    short = tmp_path / "short.wav"
    sf.write(str(short), voice[:rate * 3].astype(np.float32), rate, subtype="PCM_16")
    watermark_audio_file(short, Payload("0000abcd"))  # imports and filters ready before measuring
    tracemalloc.start()
    watermark_audio_file(path, Payload("1234abcd"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    whole = len(voice) * 4
    assert peak < whole / 4, f"peak {peak / 2**20:.1f} MB for {whole / 2**20:.1f} MB of audio"
    audio, rate = sf.read(str(path), dtype="float32")
    for start in (0, 70 * rate):  # the mark is everywhere, not just at the start
        found = detect_audio_watermark(audio[start:start + 10 * rate], rate)
        assert found.found and found.payload == Payload("1234abcd")


@pytest.mark.slow
def test_changed_samples_are_reported_as_tampered(speech, tmp_path):
    data = bytearray(speech.path.read_bytes())
    start = data.index(b"data") + 8 + 20000
    data[start:start + 2000] = bytes(2000)  # silence a stretch of the speech
    tampered = tmp_path / "tampered.wav"
    tampered.write_bytes(bytes(data))
    assert check_file(tampered).c2pa == "tampered"


# ---------------------------------------------------------------- twin videos
@pytest.fixture(scope="module")
def twin_video(runtime):
    from pipelines.twin.pipeline import create_twin_video

    return create_twin_video(PHOTO, script="Hello! I am your digital twin, made from one photo.",
                             voice="piper-joe-en", subtitles=True, seed=7, runtime=runtime, label_corner="bottom-right")


@pytest.mark.slow
def test_twin_video_frames_are_marked_and_the_mp4_is_signed_with_consent(twin_video, tmp_path):
    report = check_file(twin_video.path)
    assert_ours(report)
    assert report.credentials.generation["consent"] == "confirmed by the caller"
    assert report.parameters_source == "mp4 tags" and report.parameters["seed"] == 7
    assert json.loads(twin_video.params_path.read_text())["output_id"] == report.payload["output_id"]
    ffmpeg("-i", twin_video.path, "-c:v", "libx264", "-crf", "28", "-c:a", "copy", tmp_path / "crf28.mp4")
    again = check_file(tmp_path / "crf28.mp4")
    assert again.watermark and again.payload == report.payload and again.c2pa == "absent"


@pytest.mark.slow
def test_twin_video_sound_carries_the_same_mark(twin_video, tmp_path):
    report = check_file(twin_video.path)
    assert report.watermark_in == ("frames", "audio")
    assert "in the pictures and the sound" in report.summary("en") and "在画面和声音中" in report.summary("zh")
    ffmpeg("-i", twin_video.path, "-vn", "-c:a", "libmp3lame", "-b:a", "128k", tmp_path / "sound.mp3")
    sound = check_file(tmp_path / "sound.mp3")  # the voice taken out of the video and re-encoded
    assert sound.watermark and sound.payload == report.payload


@pytest.mark.slow
def test_twin_video_edited_after_signing_is_tampered(twin_video, tmp_path):
    data = bytearray(twin_video.path.read_bytes())
    start = data.index(b"mdat") + 5000
    data[start:start + 64] = bytes(64)
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    assert check_file(tampered).c2pa == "tampered"


@pytest.mark.slow
def test_unmarked_twin_video_has_no_mark(runtime):
    from pipelines.twin.pipeline import create_twin_video

    video = create_twin_video(PHOTO, script="Hello there.", voice="piper-joe-en", seed=7, runtime=runtime,
                              provenance=False)
    report = check_file(video.path)
    assert (report.c2pa, report.watermark) == ("absent", False)
    assert report.parameters["seed"] == 7  # the stored parameters still say what made it


# ---------------------------------------------------------------- the visible label and the mouth
def _face_with_mouth_at(cx: float, cy: float, size: int = 512):
    from pipelines.face import landmarks as fl

    points = np.zeros((478, 2), np.float32)
    points[:] = (cx, cy - 120)  # the rest of the face, above the mouth
    lips = fl.LIPS_OUTER_UPPER + fl.LIPS_OUTER_LOWER
    angles = np.linspace(0, 2 * np.pi, len(lips), endpoint=False)
    points[lips] = np.stack([cx + 40 * np.cos(angles), cy + 12 * np.sin(angles)], axis=1)
    return fl.FaceLandmarks(points, (size, size))


@pytest.mark.parametrize("corner", ["top-left", "top-right", "bottom-left", "bottom-right"])
def test_label_goes_to_its_corner_and_never_covers_the_mouth(corner):
    from pipelines.twin.overlays import LABEL_CORNERS, Overlays, _patch_box, overlaps

    assert corner in LABEL_CORNERS
    free = Overlays(512, 512, 25, label="AI-generated", label_corner=corner, face=_face_with_mouth_at(256, 300))
    x0, y0, x1, y1 = _patch_box(free.label)
    assert (x0 < 256) == corner.endswith("left") and (y0 < 256) == corner.startswith("top")
    # a mouth right in that corner: the label moves to another corner instead of covering it
    mx = 60 if corner.endswith("left") else 452
    my = 40 if corner.startswith("top") else 470
    crowded = Overlays(512, 512, 25, label="AI-generated", label_corner=corner, face=_face_with_mouth_at(mx, my))
    assert crowded.mouth is not None and not overlaps(_patch_box(crowded.label), crowded.mouth)


def test_subtitles_move_off_the_mouth():
    from pipelines.twin.overlays import Cue, Overlays, overlaps

    low_mouth = _face_with_mouth_at(256, 450)  # a face low in the frame: the usual subtitle line is on the lips
    overlays = Overlays(512, 512, 25, [Cue(0, 1, "This line must not cover the mouth")], label="AI-generated",
                        label_corner="bottom-left", face=low_mouth)
    frame = np.zeros((512, 512, 3), np.uint8)
    overlays.apply(frame, 0)
    subtitle = overlays._patches[0]
    h, w = subtitle.alpha.shape[:2]
    assert not overlaps((subtitle.x, subtitle.y, subtitle.x + w, subtitle.y + h), overlays.mouth)
    assert not overlaps(overlays.mouth, (overlays.label.x, overlays.label.y, overlays.label.x + overlays.label.alpha.shape[1],
                                         overlays.label.y + overlays.label.alpha.shape[0]))


def test_the_video_writer_keeps_the_frame_mark(tmp_path):
    """The mark lives in the colour planes: what the writer does to colour (4:2:0) must leave it readable."""
    import cv2

    from pipelines.core.media import Mp4Writer
    from pipelines.provenance import check_file, video_frame_marker
    from pipelines.twin import quality as q

    photo = cv2.cvtColor(cv2.imread(str(ASSETS_DIR / "astronaut.jpg")), cv2.COLOR_BGR2RGB)
    for size in (256, 512):
        picture = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
        for _ in range(3):  # each id is a different pattern
            mark, output_id = video_frame_marker(True)
            with Mp4Writer(tmp_path / "marked.mp4", size, size, 25) as writer:
                for _ in range(25):
                    writer.write(mark(picture))
            decoded = next(iter(q.read_frames(tmp_path / "marked.mp4")))
            assert np.abs(decoded.astype(int) - picture).mean() < 4  # H.264 at CRF 20: close to the source
            report = check_file(tmp_path / "marked.mp4")
            assert "frames" in report.watermark_in and report.payload["output_id"] == output_id
