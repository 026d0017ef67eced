"""The digital twin end to end: the real pipeline (MediaPipe Face Mesh, Piper speech, the classic engine,
ffmpeg) on the public-domain astronaut photo, bad inputs, profiles, the CLI and the /create_twin_video API."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pipelines.twin import pipeline as twin
from pipelines.face import landmarks as fl
from pipelines.core.errors import UserError
from pipelines.core.settings import ASSETS_DIR, REPO_ROOT

PHOTO = ASSETS_DIR / "astronaut.jpg"
SCRIPT = "Hello! I am your digital twin. I was made from one photo, and I can read any script you write for me."


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime

    root = tmp_path_factory.mktemp("twin")
    return Runtime(cache=ModelCache(budget_bytes=2**31), catalog=Catalog(root / "models"), outputs_dir=root / "outputs")


@pytest.fixture(scope="module")
def rendered(runtime):
    """One real render: the astronaut speaking SCRIPT with the Piper voice."""
    return twin.create_twin_video(PHOTO, script=SCRIPT, voice="piper-joe-en", subtitles=True, seed=7,
                                  runtime=runtime)


def _audio_track(path, fps, n_frames):
    """The audio the MP4 really holds, decoded, as RMS per video frame (the loudness envelope)."""
    from pipelines.twin.driving import loudness_envelope
    from pipelines.core.media import load_audio

    audio, rate = load_audio(path, sample_rate=16000)
    return loudness_envelope(audio, rate, n_frames, fps)


@pytest.mark.slow
def test_video_decodes_in_every_browser_and_durations_match(rendered):
    from pipelines.core.media import probe_video

    info = probe_video(rendered.path)
    assert (info.video_codec, info.pixel_format, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert (info.width, info.height) == (512, 512) and info.fps == 25
    assert info.frames == rendered.frames
    assert abs(info.video_seconds - rendered.seconds) <= 0.1
    assert abs(info.audio_seconds - rendered.seconds) <= 0.1
    params = json.loads(info.tags["comment"])  # the generation parameters travel inside the file
    assert params["seed"] == 7 and params["ai_generated"] is True and params["script"] == SCRIPT
    assert json.loads(rendered.params_path.read_text())["seed"] == 7


@pytest.mark.slow
def test_mouth_opening_follows_loudness_on_the_output_frames(rendered, runtime):
    openings = fl.mouth_openings_in_video(rendered.path, runtime=runtime)
    found = np.array([o is not None for o in openings])
    assert found.mean() > 0.95  # the same person's face stays detectable in every frame
    mouth = np.array([o if o is not None else np.nan for o in openings])
    loudness = _audio_track(rendered.path, rendered.fps, len(openings))
    r = np.corrcoef(mouth[found], loudness[found])[0, 1]
    assert r >= 0.6, f"mouth/loudness correlation {r:.2f}"


@pytest.mark.slow
def test_closed_mouth_frames_keep_the_face_of_the_photo(rendered, runtime):
    import imageio_ffmpeg

    image = twin.load_photo(PHOTO)
    source_face = fl.detect_faces(image, runtime=runtime)[0]
    canvas, _ = twin.frame_photo(image, source_face, "face")
    reference = fl.detect_faces(canvas, runtime=runtime)[0]
    keep = [i for i in range(478) if i not in set(fl.LIPS_INNER_UPPER + fl.LIPS_INNER_LOWER + fl.LIPS_OUTER_LOWER)]
    reader = imageio_ffmpeg.read_frames(str(rendered.path))
    w, h = next(reader)["size"]
    drifts = []
    for raw in reader:
        face = fl.detect_faces(np.frombuffer(raw, np.uint8).reshape(h, w, 3), runtime=runtime)
        if face and face[0].mouth_opening() < reference.mouth_opening() + 0.05:
            drifts.append(np.linalg.norm(face[0].points[keep] - reference.points[keep], axis=1).mean())
    assert len(drifts) >= 5
    assert np.median(drifts) / reference.eye_distance < 0.06  # a few pixels: the same face, subtly moving


@pytest.mark.slow
def test_a_recording_drives_the_video_and_silence_keeps_the_mouth_closed(runtime, tmp_path):
    from pipelines.core.media import probe_video, write_wav

    silent = write_wav(tmp_path / "silence.wav", np.zeros(16000 * 2, np.float32), 16000)
    result = twin.create_twin_video(PHOTO, audio=str(silent), output_size="photo", still=True, runtime=runtime)
    assert any("silent" in n.en for n in result.notices)
    info = probe_video(result.path)
    assert (info.width, info.height) == (512, 512)  # the astronaut photo's own size
    assert abs(info.video_seconds - 2.0) <= 0.1
    openings = [o for o in fl.mouth_openings_in_video(result.path, runtime=runtime) if o is not None]
    rest = fl.detect_faces(twin.load_photo(PHOTO), runtime=runtime)[0].mouth_opening()
    assert max(openings) < rest + 0.03


def test_no_face_black_and_noise_images_are_refused(runtime, tmp_path):
    for name, pixels in (("black.png", np.zeros((256, 256, 3), np.uint8)),
                         ("noise.png", np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))):
        Image.fromarray(pixels).save(tmp_path / name)
        with pytest.raises(UserError, match="No face"):
            twin.create_twin_video(tmp_path / name, script="Hello.", runtime=runtime)


def test_bad_photos_are_refused_with_a_reason(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(UserError, match="not an image"):
        twin.load_photo(tmp_path / "notes.jpg")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(UserError, match="too small"):
        twin.load_photo(tmp_path / "dot.png")
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png")  # 400 megapixels, a tiny file
    with pytest.raises(UserError, match="too large"):
        twin.load_photo(tmp_path / "huge.png")
    big = twin.load_photo(Image.new("RGB", (4000, 3000), (90, 90, 90)))
    assert max(big.shape[:2]) == 2048  # big photos are downscaled


def test_exif_rotation_is_honoured(tmp_path):
    img = Image.new("RGB", (300, 200), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert twin.load_photo(tmp_path / "rotated.jpg").shape[:2] == (300, 200)


def test_inputs_are_checked_before_any_work(runtime, tmp_path):
    with pytest.raises(UserError, match="script"):
        twin.create_twin_video(PHOTO, script="   ", runtime=runtime)
    with pytest.raises(UserError, match="right to animate"):
        twin.create_twin_video(PHOTO, script="Hello.", consent=False, runtime=runtime)


def test_ten_minutes_of_audio_is_refused_before_rendering(runtime, tmp_path):
    from pipelines.core.media import write_wav

    long = write_wav(tmp_path / "long.wav", np.full(8000 * 600, 0.1, np.float32), 8000)
    with pytest.raises(UserError, match="limit is 5 minutes"):
        twin.create_twin_video(PHOTO, audio=str(long), runtime=runtime)
    assert not list((runtime.outputs_dir / "twin").glob(".*partial*"))  # nothing half-written


def test_tiny_face_is_refused(runtime):
    small = Image.open(PHOTO).resize((220, 220))  # the face becomes ~40 px wide: found, but too small
    canvas = Image.new("RGB", (600, 600), (200, 200, 200))
    canvas.paste(small, (190, 190))
    faces = fl.detect_faces(np.asarray(canvas), runtime=runtime)
    assert len(faces) == 1 and faces[0].width < twin.MIN_FACE_WIDTH
    with pytest.raises(UserError, match="too small"):
        twin.choose_face(faces, None)
    with pytest.raises(UserError, match="No face"):  # and none at all says so
        twin.choose_face([], None)


def test_several_faces_largest_first_and_a_choice(runtime):
    head = Image.open(PHOTO).crop((120, 10, 330, 260))  # 210 x 250 around the face
    canvas = Image.new("RGB", (640, 400), (200, 200, 200))
    canvas.paste(head.resize((315, 375)), (0, 10))  # the bigger face on the left
    canvas.paste(head, (380, 80))
    faces = fl.detect_faces(np.asarray(canvas), runtime=runtime)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    assert twin.choose_face(faces, None)[1] == 0 and twin.choose_face(faces, 1)[1] == 1
    with pytest.raises(UserError, match="does not exist"):
        twin.choose_face(faces, 5)


def test_subtitles_draw_chinese_with_a_cjk_font():
    from pipelines.twin import overlays as ov

    if not ov.cjk_font_path():
        pytest.skip("the optional CJK font is not installed (apt-get install fonts-wqy-microhei); "
                    "without it the twin leaves Chinese subtitles out and says so")
    patch = ov.text_patch("你好，我是你的数字分身。", 512, 512)
    assert patch is not None and patch.alpha.max() > 0.9
    cues = ov.subtitle_cues("第一句话。第二句话！", 4.0, voiced=(0.5, 3.5))
    assert [c.text for c in cues] == ["第一句话。", "第二句话！"]
    assert cues[0].start == 0.5 and cues[-1].end == pytest.approx(3.5)


def test_profiles_survive_a_new_runtime(runtime):
    from pipelines.twin import profiles
    from pipelines.core.cache import ModelCache
    from pipelines.core.runtime import Runtime

    profiles.save_profile("Ms Collins 数字", photo=PHOTO, voice="piper-joe-en", persona="an astronaut", runtime=runtime)
    again = Runtime(cache=ModelCache(), catalog=runtime.catalog, outputs_dir=runtime.outputs_dir)  # "a restart"
    assert "Ms Collins 数字" in profiles.list_profiles(again)
    loaded = profiles.load_profile("Ms Collins 数字", again)
    assert loaded.voice == "piper-joe-en" and loaded.persona == "an astronaut" and loaded.photo.is_file()
    assert profiles.delete_profile("Ms Collins 数字", again)
    with pytest.raises(UserError):
        profiles.load_profile("Ms Collins 数字", again)


def test_cli_says_one_line_and_fails_on_bad_input(tmp_path):
    (tmp_path / "x.jpg").write_text("nope")
    proc = subprocess.run([sys.executable, "-m", "pipelines.digital_twin", "--photo", str(tmp_path / "x.jpg"),
                           "--text", "Hello", "--out", str(tmp_path / "o.mp4")], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "not an image" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.slow
def test_api_create_twin_video(client, tmp_path):
    from gradio_client import handle_file

    from pipelines.core.media import probe_video, write_wav

    sr = 16000
    t = np.arange(sr * 2) / sr
    voice = write_wav(tmp_path / "voice.wav", (0.3 * np.sin(2 * np.pi * 3 * t) ** 2 * np.sin(2 * np.pi * 220 * t))
                      .astype(np.float32), sr)
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/create_twin_video"]
    parameters = [(p["parameter_name"], p.get("parameter_default")) for p in endpoint["parameters"]]
    assert [name for name, _ in parameters] == ["photo", "script", "voice", "audio", "engine"]  # engine added last
    assert parameters[-1][1] == "classic"
    out = client.predict(photo=handle_file(str(PHOTO)), script="", voice="auto", audio=handle_file(str(voice)),
                         api_name="/create_twin_video")
    path = out["video"] if isinstance(out, dict) else out
    info = probe_video(path)
    assert (info.video_codec, info.pixel_format, info.audio_codec) == ("h264", "yuv420p", "aac")
    assert abs(info.video_seconds - 2.0) <= 0.1
    (tmp_path / "notes.txt").write_text("not a photo")
    with pytest.raises(Exception, match="not an image"):
        client.predict(photo=handle_file(str(tmp_path / "notes.txt")), script="Hello.", voice="auto", audio=None,
                       api_name="/create_twin_video")
    with pytest.raises(Exception, match="script"):  # the app stays up and answers clearly
        client.predict(photo=handle_file(str(PHOTO)), script="", voice="auto", audio=None,
                       api_name="/create_twin_video")
    with pytest.raises(Exception, match="Unknown model 'nope'"):
        client.predict(handle_file(str(PHOTO)), "Hello.", "auto", None, "nope", api_name="/create_twin_video")


def test_stop_ends_the_render_and_leaves_no_half_written_file(runtime, tmp_path):
    from pipelines.core.errors import Stopped
    from pipelines.core.jobs import StopToken
    from pipelines.core.media import write_wav

    voice = write_wav(tmp_path / "tone.wav", (0.2 * np.sin(np.arange(16000 * 3) / 8)).astype(np.float32), 16000)
    token = StopToken()
    seen = []

    def progress(fraction, text):
        seen.append(text)
        if text.startswith("frame 20"):
            token.stop()

    out = tmp_path / "stopped.mp4"
    with pytest.raises(Stopped):
        twin.create_twin_video(PHOTO, audio=str(voice), out=out, runtime=runtime, stop=token, on_progress=progress)
    assert "frame 20/75" in seen
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_small_faces_of_a_wide_group_photo_are_found_by_tiles(runtime):
    photo = Image.open(PHOTO)
    canvas = Image.new("RGB", (1024, 512), (200, 200, 200))  # faces ~9 % and ~7 % of the width
    canvas.paste(photo, (0, 0))
    canvas.paste(photo.resize((384, 384)), (600, 64))
    faces = fl.detect_faces(np.asarray(canvas), runtime=runtime)
    assert len(faces) == 2 and faces[0].bbox[0] < 300 < faces[1].bbox[0]


@pytest.mark.slow
def test_a_cartoon_face_is_animated_sensibly(runtime, tmp_path):
    """A drawn cartoon face (no photo) is found and its mouth opens with the speech."""
    from PIL import ImageDraw

    from pipelines.core.media import probe_video

    cartoon = Image.new("RGB", (512, 512), (120, 180, 240))
    draw = ImageDraw.Draw(cartoon)
    draw.ellipse((136, 96, 376, 376), fill=(255, 220, 180), outline=(0, 0, 0), width=4)
    for x in (190, 282):  # eyes with pupils
        draw.ellipse((x, 180, x + 40, 220), fill=(255, 255, 255), outline=(0, 0, 0), width=3)
        draw.ellipse((x + 14, 194, x + 28, 208), fill=(0, 0, 0))
    draw.line((256, 220, 246, 270, 262, 270), fill=(0, 0, 0), width=3)
    draw.arc((206, 260, 306, 330), 20, 160, fill=(160, 0, 0), width=5)
    path = tmp_path / "cartoon.png"
    cartoon.save(path)
    result = twin.create_twin_video(path, script="Hello, I am a cartoon and I can talk.", voice="espeak-ng:en-us",
                                    seed=3, runtime=runtime)
    info = probe_video(result.path)
    assert abs(info.video_seconds - info.audio_seconds) <= 0.1
    openings = [o for o in fl.mouth_openings_in_video(result.path, runtime=runtime) if o is not None]
    assert len(openings) > 0.8 * result.frames  # the face stays found in the frames
    assert max(openings) > min(openings) + 0.03  # and its mouth moves
