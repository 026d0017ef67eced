"""What the twin does with what users give it: their own recording (mouth shapes from the words Whisper
hears, or from the sound alone), photos that are not a person or not frontal, faces at the photo's edge,
and the rest of the "bad input" list. The real pipeline throughout (Face Mesh, Whisper tiny.en, eSpeak,
Piper, the classic engine, ffmpeg); test inputs are made here from the bundled sample photos."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipelines.core.errors import UserError
from pipelines.core.media import write_wav
from pipelines.core.settings import ASSETS_DIR
from pipelines.face import landmarks as fl
from pipelines.twin import framing
from pipelines.twin import pipeline as twin
from pipelines.twin.alignment import align_recording, phonemes_from_sound

PHOTO = ASSETS_DIR / "astronaut.jpg"
ROUNDED = "Who knew you would move to the blue room too soon? Do choose the blue boots, Lou."
SPREAD = "We see the green trees each evening. Please keep each sheet neat, Steve."


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime

    root = tmp_path_factory.mktemp("inputs")
    return Runtime(cache=ModelCache(budget_bytes=2**31), catalog=Catalog(root / "models"), outputs_dir=root / "outputs")


@pytest.fixture(scope="module")
def photo():
    return twin.load_photo(PHOTO)


def _speech(text, voice, runtime):
    from pipelines.voice.synthesis import synthesize_speech

    speech = synthesize_speech(text, voice=voice, runtime=runtime)
    return np.asarray(speech.audio, np.float32).reshape(-1), int(speech.sample_rate)


@pytest.fixture(scope="module")
def piper_recordings(runtime, tmp_path_factory):
    """Two Piper recordings written as WAV files, as a user would upload them: full of o/u, full of i/e."""
    folder = tmp_path_factory.mktemp("recordings")
    out = {}
    for name, text in (("rounded", ROUNDED), ("spread", SPREAD)):
        audio, rate = _speech(text, "piper-joe-en", runtime)
        out[name] = write_wav(folder / f"{name}.wav", audio, rate)
    return out


def _mean_width(timings, audio, rate, fps=25):
    """The renderer's lip-width track (relative: -0.22 rounded .. +0.12 spread) averaged over the frames
    that are sounding."""
    from pipelines.twin.driving import coarticulate, loudness_envelope, speech_level, viseme_segments

    n = int(len(audio) / rate * fps)
    width = coarticulate(viseme_segments(timings), n, fps)["width"]
    loudness = loudness_envelope(audio, rate, n, fps)
    sounding = loudness > 0.5 * speech_level(loudness)
    return float(width[sounding].mean())


# ---------------------------------------------------------------- speech recognition


def test_whisper_hears_a_piper_sentence_with_word_timings(runtime, piper_recordings):
    from pipelines.core.media import load_audio
    from pipelines.voice.recognition import transcribe

    audio, rate = load_audio(piper_recordings["spread"])
    result = transcribe(audio, rate, runtime=runtime)
    assert result.language == "en" and result.mean_probability > 0.8
    heard = {w.text.strip(".,?!").lower() for w in result.words}
    assert {"green", "trees", "evening", "keep"} <= heard
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and 0 <= starts[0] and result.words[-1].end <= len(audio) / rate + 0.1
    assert all(t.kind == "word" for t in result.word_timings())


def test_a_long_recording_is_heard_a_minute_at_a_time_cut_between_words(runtime, piper_recordings):
    from pipelines.core.media import load_audio
    from pipelines.voice.audio_dsp import resample
    from pipelines.voice.recognition import quiet_cuts, transcribe

    audio, rate = load_audio(piper_recordings["spread"])
    gap = np.zeros(int(0.4 * rate), np.float32)
    take = np.concatenate([audio, gap])
    long = np.tile(take, int(np.ceil(75 * rate / len(take))))[: 75 * rate]  # 75 s: two pieces
    spans = quiet_cuts(resample(long, rate, 16000), 16000)
    assert len(spans) == 2 and spans[0][0] == 0 and spans[0][1] == spans[1][0] and spans[1][1] == 75 * 16000
    assert 45 * 16000 <= spans[0][1] <= 60 * 16000
    cut = spans[0][1] / 16000
    assert np.abs(long[int((cut - 0.01) * rate): int((cut + 0.01) * rate)]).max() < 0.01  # in a silence
    result = transcribe(long, rate, runtime=runtime)
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and starts[-1] > 65  # the second minute's words keep their own times
    heard_late = {w.text.strip(".,?!").lower() for w in result.words if w.start > cut}
    assert {"green", "trees"} <= heard_late and result.duration == pytest.approx(75, abs=0.01)


def test_english_only_whisper_refuses_other_languages_and_catalog_lists_models(runtime, tmp_path):
    from pipelines.core.catalog import Catalog
    from pipelines.voice.recognition import knows_language, transcribe

    with pytest.raises(UserError, match="English only"):
        transcribe(np.zeros(16000, np.float32), 16000, language="zh", runtime=runtime)
    assert knows_language("en", runtime=runtime) and not knows_language("zh", runtime=runtime)
    names = {s.name: s for s in runtime.catalog.models("asr")}
    assert names["whisper-tiny-en"].source_kind == "package" and "*" in names["faster-whisper-small"].languages
    # A CTranslate2 Whisper folder in models/asr/ is found, and tiny.en is recognised as English-only.
    from pipelines.voice.recognition import bundled_whisper_folder

    (tmp_path / "asr").mkdir()
    (tmp_path / "asr" / "my-whisper").symlink_to(bundled_whisper_folder(), target_is_directory=True)
    # (a link to outside the models folder: used only when the host allows it)
    assert "my-whisper" not in {s.name for s in Catalog(tmp_path).models("asr")}
    local = {s.name: s for s in Catalog(tmp_path, follow_outside_links=True).models("asr")}["my-whisper"]
    assert local.source_kind == "local" and local.backend == "faster_whisper" and local.languages == ("en",)


# ---------------------------------------------------------------- recording -> phonemes


def test_recording_gets_phonemes_from_whisper_words_and_espeak(runtime, piper_recordings):
    from pipelines.core.media import load_audio

    audio, rate = load_audio(piper_recordings["rounded"])
    result = align_recording(audio, rate, runtime=runtime)
    assert result.method == "words" and "blue" in result.text.lower()
    assert "words Whisper heard" in result.notices[0].en and result.notices[0].zh
    words = [t for t in result.timings if t.kind == "word"]
    phonemes = result.phonemes
    assert len(words) >= 12 and len(phonemes) > 2 * len(words)
    assert {"uː", "b", "m"} <= {p.text for p in phonemes}  # IPA from eSpeak, stress marks removed
    assert not any("ˈ" in p.text for p in phonemes)
    for p in phonemes:  # every phoneme lies inside a word's span, in order
        assert any(w.start - 1e-6 <= p.start and p.end <= w.end + 1e-6 for w in words)
        assert p.end > p.start


def test_mouth_shapes_follow_a_rounded_or_spread_recording(runtime, piper_recordings, photo):
    """The real pipeline with the recording as the voice: the timings are Whisper+eSpeak phonemes and
    the lip-width track is round for o/u and wide for i/e."""
    from pipelines.core.media import load_audio
    from pipelines.core.media import probe_video

    widths = {}
    for name, path in piper_recordings.items():
        result = twin.create_twin_video(PHOTO, audio=str(path), subtitles=True, seed=1, runtime=runtime)
        assert result.params["mouth_shapes"] == "words" and result.params["subtitles"]  # subtitles from the words
        assert any("words Whisper heard" in n.en for n in result.notices)
        info = probe_video(result.path)
        assert abs(info.video_seconds - info.audio_seconds) <= 0.1
        audio, rate = load_audio(path)
        aligned = align_recording(audio, rate, runtime=runtime)
        widths[name] = _mean_width(aligned.timings, audio, rate)
    assert widths["rounded"] < -0.08 and widths["spread"] > 0.02, widths


def test_other_languages_fall_back_to_sound_colour(runtime):
    """Mandarin (which the bundled English Whisper cannot hear): vowel pseudo-phonemes from the formants."""
    audio, rate = _speech("你好，我是你的数字分身。今天天气很好，我们一起去公园吧。", "espeak-ng:cmn", runtime)
    result = align_recording(audio, rate, runtime=runtime)
    assert result.method == "sound" and "sound colour" in result.notices[0].en and result.notices[0].zh
    assert {p.text for p in result.phonemes} <= {"i", "e", "a", "o", "u", "ə", "s"}
    assert len(result.phonemes) > 10
    # Asking for a language the recogniser lacks skips it entirely.
    assert align_recording(audio, rate, language="zh", runtime=runtime).method == "sound"


def test_sound_fallback_tells_rounded_from_spread(runtime):
    """Without any words: German eSpeak reading the o/u and i/e scripts gets round vs wide lips."""
    widths = {}
    for name, text in (("rounded", "Du musst nur zu Ruth und Uwe gehen, ohne Mut, so gut und ruhig."),
                       ("spread", "Sie liest die Briefe hier, wie immer, mit Liebe; Lisa sieht Ihn nie.")):
        audio, rate = _speech(text, "espeak-ng:de", runtime)
        widths[name] = _mean_width(phonemes_from_sound(audio, rate), audio, rate)
    assert widths["rounded"] < widths["spread"] - 0.1, widths


# ---------------------------------------------------------------- recordings from the bad-input list


def _silence(seconds, rate):
    return np.zeros(int(seconds * rate), np.float32)


def test_long_silences_keep_the_mouth_at_rest(runtime, tmp_path):
    a, rate = _speech("Hello, this is the first part.", "piper-joe-en", runtime)
    b, _ = _speech("And after a long pause, the second part.", "piper-joe-en", runtime)
    audio = np.concatenate([_silence(1.0, rate), a, _silence(3.0, rate), b, _silence(1.0, rate)])
    path = write_wav(tmp_path / "pauses.wav", audio, rate)
    aligned = align_recording(audio, rate, runtime=runtime)
    pause = (1.0 + len(a) / rate + 0.1, 1.0 + len(a) / rate + 2.9)
    assert not [p for p in aligned.phonemes if p.end > pause[0] and p.start < pause[1]]  # nothing in the pause
    result = twin.create_twin_video(PHOTO, audio=str(path), still=True, seed=2, runtime=runtime)
    openings = fl.mouth_openings_in_video(result.path, runtime=runtime)
    rest = fl.detect_faces(twin.load_photo(PHOTO), runtime=runtime)[0].mouth_opening()
    during = [o for i, o in enumerate(openings) if o is not None and pause[0] + 0.25 < i / result.fps < pause[1] - 0.25]
    speaking = [o for o in openings if o is not None]
    assert len(during) > 40 and abs(float(np.median(during)) - rest) < 0.03
    assert max(speaking) > rest + 0.05  # while the mouth does open when speaking


def test_music_and_silence_still_make_sensible_videos(runtime, tmp_path):
    rate = 22050
    t = np.arange(4 * rate) / rate
    music = np.zeros_like(t)
    for i, chord in enumerate([(261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7)]):
        part = (t >= i) & (t < i + 1)
        for f in chord:
            music[part] += 0.12 * np.sin(2 * np.pi * f * t[part]) * np.exp(-2 * (t[part] - i))
    path = write_wav(tmp_path / "music.wav", music.astype(np.float32), rate)
    result = twin.create_twin_video(PHOTO, audio=str(path), seed=3, runtime=runtime)
    assert result.params["mouth_shapes"] == "sound" and result.frames == 100
    assert any("sound colour" in n.en for n in result.notices)
    quiet = write_wav(tmp_path / "silence.wav", _silence(1.5, rate), rate)
    result = twin.create_twin_video(PHOTO, audio=str(quiet), seed=3, runtime=runtime)
    assert result.params["mouth_shapes"] == "silent" and any("silent" in n.en for n in result.notices)


# ---------------------------------------------------------------- not a human face, not frontal, covered


def _shirt_with_logo(kind: str) -> np.ndarray:
    """A T-shirt with a printed logo: a skull (the mesh lands on it misplaced) or a drawn cartoon face."""
    image = Image.new("RGB", (640, 640), (225, 225, 220))
    draw = ImageDraw.Draw(image)
    draw.polygon([(120, 640), (150, 200), (230, 140), (410, 140), (490, 200), (520, 640)], fill=(30, 60, 140))
    cx, cy, r = 320, 380, 120
    if kind == "skull":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r * 0.8), fill=(240, 240, 240))
        for sx in (-1, 1):
            ex = cx + sx * r * 0.4
            draw.ellipse((ex - r * 0.25, cy - r * 0.3, ex + r * 0.25, cy + r * 0.15), fill=(0, 0, 0))
        draw.polygon([(cx, cy + r * 0.2), (cx - r * 0.12, cy + r * 0.45), (cx + r * 0.12, cy + r * 0.45)], fill=(0, 0, 0))
        draw.rectangle((cx - r * 0.45, cy + r * 0.6, cx + r * 0.45, cy + r * 0.95), fill=(240, 240, 240))
    else:
        draw.ellipse((cx - r, cy - r * 1.1, cx + r, cy + r * 1.1), fill=(255, 220, 180), outline=(0, 0, 0), width=3)
        for sx in (-1, 1):
            ex = cx + sx * r * 0.38
            draw.ellipse((ex - r * 0.16, cy - r * 0.35, ex + r * 0.16, cy - r * 0.12), fill=(255, 255, 255),
                         outline=(0, 0, 0), width=2)
            draw.ellipse((ex - r * 0.06, cy - r * 0.29, ex + r * 0.06, cy - r * 0.17), fill=(0, 0, 0))
        draw.line((cx, cy - r * 0.1, cx - r * 0.08, cy + r * 0.25, cx + r * 0.06, cy + r * 0.25), fill=(0, 0, 0), width=2)
        draw.arc((cx - r * 0.4, cy + r * 0.2, cx + r * 0.4, cy + r * 0.6), 20, 160, fill=(160, 0, 0), width=4)
    return np.asarray(image)


def test_a_cat_is_refused_at_the_photo_step_and_at_the_render(runtime, tmp_path):
    import skimage.data

    cat = skimage.data.chelsea()
    faces = fl.detect_faces(cat, runtime=runtime)
    assert faces, "Face Mesh finds a 'face' on the cat: the checks are what refuse it"
    assert fl.check_human_face(faces[0]).problem == "not_human"
    with pytest.raises(UserError, match="does not look like a person's face") as refused:
        twin.choose_face(faces, 0)
    assert "不像人脸" in refused.value.zh
    path = tmp_path / "cat.png"
    Image.fromarray(cat).save(path)
    with pytest.raises(UserError, match="does not look like a person's face"):
        twin.create_twin_video(path, script="Meow.", voice="espeak-ng:en-us", runtime=runtime)


@pytest.mark.parametrize("name", ["coffee", "rocket", "astronaut_landscape"])
def test_pictures_without_a_face_are_refused(runtime, name):
    import skimage.data

    image = skimage.data.coffee() if name == "coffee" else skimage.data.rocket()
    if name == "astronaut_landscape":  # a landscape: clouds of the photo's backdrop, no person
        image = np.ascontiguousarray(np.asarray(Image.open(PHOTO).convert("RGB"))[300:, 300:])
        image = np.asarray(Image.fromarray(image).resize((512, 384)))
    faces = fl.detect_faces(image, runtime=runtime)
    with pytest.raises(UserError, match="No face|does not look like"):
        twin.choose_face(faces, 0)


def test_a_logo_the_mesh_misplaces_is_refused_but_a_drawn_face_is_kept(runtime):
    skull = fl.detect_faces(_shirt_with_logo("skull"), runtime=runtime)
    assert skull and not skull[0].check.ok
    with pytest.raises(UserError, match="does not look like a person's face"):
        twin.choose_face(skull, 0)
    cartoon = fl.detect_faces(_shirt_with_logo("cartoon"), runtime=runtime)
    assert cartoon and cartoon[0].check.ok, cartoon[0].check
    twin.choose_face(cartoon, 0)


def _turned(photo: np.ndarray, degrees: float, runtime) -> np.ndarray:
    """The photo's face turned about a vertical axis by a 2.5D warp of its Face Mesh triangles (the
    closest thing to a profile photo that can be made from a frontal one)."""
    import cv2
    from scipy.spatial import Delaunay

    face = fl.detect_faces(photo, runtime=runtime)[0]
    points = np.column_stack([face.points, face.depth]).astype(np.float64)[:468]
    pivot = points.mean(axis=0)
    pivot[2] = np.median(points[:, 2]) + 0.6 * np.ptp(points[:, 0])  # behind the face: about the head's centre
    t = np.radians(degrees)
    rotation = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    moved = (points - pivot) @ rotation.T + pivot
    h, w = photo.shape[:2]
    hull = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points[:, :2].astype(np.int32)), 255)
    out = cv2.inpaint(photo, cv2.dilate(hull, np.ones((9, 9), np.uint8)), 5, cv2.INPAINT_TELEA)
    triangles = Delaunay(points[:, :2]).simplices
    for k in np.argsort([moved[s, 2].mean() for s in triangles])[::-1]:  # far ones first
        src, dst = points[triangles[k], :2].astype(np.float32), moved[triangles[k], :2].astype(np.float32)
        if np.cross(dst[1] - dst[0], dst[2] - dst[0]) * np.cross(src[1] - src[0], src[2] - src[0]) <= 0:
            continue  # turned away from the camera
        x, y, bw, bh = cv2.boundingRect(dst)
        if bw < 1 or bh < 1 or x < 0 or y < 0 or x + bw > w or y + bh > h:
            continue
        matrix = cv2.getAffineTransform(src, dst - np.float32([x, y]))
        patch = cv2.warpAffine(photo, matrix, (bw, bh), borderMode=cv2.BORDER_REFLECT)
        mask = np.zeros((bh, bw), np.uint8)
        cv2.fillConvexPoly(mask, (dst - [x, y]).astype(np.int32), 1)
        out[y:y + bh, x:x + bw][mask > 0] = patch[mask > 0]
    return out


def test_a_face_turned_far_to_the_side_asks_for_a_frontal_photo(runtime, photo):
    slightly = fl.detect_faces(_turned(photo, 20, runtime), runtime=runtime)[0]
    assert slightly.check.ok and 5 < abs(slightly.check.yaw) < fl.MAX_YAW_DEGREES
    far = fl.detect_faces(_turned(photo, 65, runtime), runtime=runtime)
    assert far and far[0].check.problem == "turned"
    with pytest.raises(UserError, match="more frontal photo") as refused:
        twin.choose_face(far, 0)
    assert "正面" in refused.value.zh
    assert abs(fl.detect_faces(photo, runtime=runtime)[0].check.yaw) < 5  # the frontal photo itself


def test_yaw_is_measured_from_depth_and_without_it(photo, runtime):
    face = fl.detect_faces(photo, runtime=runtime)[0]
    mirrored = fl.detect_faces(np.ascontiguousarray(_turned(photo, 50, runtime)[:, ::-1]), runtime=runtime)[0]
    turned = fl.detect_faces(_turned(photo, 50, runtime), runtime=runtime)[0]
    assert np.sign(turned.check.yaw) == -np.sign(mirrored.check.yaw) and abs(turned.check.yaw) > 15
    flat = fl.FaceLandmarks(turned.points, turned.image_size)  # no depth: from the nose's offset instead
    assert abs(fl.face_yaw(flat)) > 10 and abs(fl.face_yaw(fl.FaceLandmarks(face.points, face.image_size))) < 5


def test_a_covered_mouth_is_refused_with_its_own_message(runtime, photo):
    masked = Image.fromarray(photo.copy())
    ImageDraw.Draw(masked).polygon([(183, 128), (228, 118), (268, 128), (262, 170), (228, 186), (192, 170)],
                                   fill=(150, 190, 220))
    faces = fl.detect_faces(np.asarray(masked), runtime=runtime)
    assert faces and faces[0].check.problem == "mouth_hidden"
    with pytest.raises(UserError, match="mouth is covered"):
        twin.choose_face(faces, 0)


# ---------------------------------------------------------------- framing


def _replicated_frame(photo, face):
    """The old framing (edge pixels replicated outside the photo), to show the measure sees streaks."""
    import cv2

    x0, y0, x1, y1 = face.bbox
    side = 2.0 * max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0)
    s = 512 / side
    matrix = np.array([[s, 0, 256 - cx * s], [0, s, 256 - cy * s]])
    return cv2.warpAffine(photo, matrix, (512, 512), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("corner", ["top_left", "bottom_right", "touching_left"])
def test_no_streaks_for_a_face_near_a_corner(runtime, photo, corner):
    cut = {"top_left": photo[40:, 150:], "bottom_right": photo[:200, :290], "touching_left": photo[60:400, 180:]}[corner]
    cut = np.ascontiguousarray(cut)
    face = twin.choose_face(fl.detect_faces(cut, runtime=runtime), 0)[0]
    before = framing.smeared_fraction(_replicated_frame(cut, face))
    after = framing.frame_face(cut, face, "face")
    smeared = framing.smeared_fraction(after.image)
    assert max(before.values()) > 0.15  # the measure sees the old streaks
    assert max(smeared.values()) <= 0.05, smeared
    # and the face is still whole and well placed in the frame
    x0, y0, x1, y1 = after.face.bbox
    assert 0 <= x0 and 0 <= y0 and x1 <= 512 and y1 <= 512 and x1 - x0 > 512 / 2.1
    assert abs((x0 + x1) / 2 - 256) < 0.15 * 512


def test_crop_choice():
    # room all around: twice the face, centred a little below the face's centre
    cx, cy, side = framing.choose_crop((2000, 2000), (900, 900, 1100, 1100))
    assert side == pytest.approx(400) and cx == pytest.approx(1000) and cy == pytest.approx(1020)
    # near the top-left corner: the largest square that fits, face still inside with room
    cx, cy, side = framing.choose_crop((600, 800), (20, 30, 220, 250))
    assert cx - side / 2 >= 0 and cy - side / 2 >= 0 and cx + side / 2 <= 600 and cy + side / 2 <= 800
    assert cx - side / 2 < 20 and cy - side / 2 < 30 and cx + side / 2 > 220 and cy + side / 2 > 250
    assert side >= framing.MIN_SCALE * 220
    # the face touches the edge: no crop fits, so the frame reaches out (to be filled), by as little as it may
    cx, cy, side = framing.choose_crop((600, 800), (-10, 300, 190, 500))
    assert cx - side / 2 < 0 and side == pytest.approx(1.5 * 200)
    # a photo that is all face: the frame keeps the face and extends beyond the photo
    cx, cy, side = framing.choose_crop((200, 220), (10, 10, 190, 210))
    assert side >= framing.MIN_SCALE * 200


def test_the_fill_beyond_the_photo_is_soft_not_streaked(runtime, photo):
    cut = np.ascontiguousarray(photo[70:, 182:])  # the forehead and the face's left side at the edges
    face = fl.detect_faces(cut, runtime=runtime)[0]
    result = framing.frame_face(cut, face, "face")
    assert result.filled > 0.01
    assert max(framing.smeared_fraction(result.image).values()) <= 0.05
    outside = result.image[:, :int(512 * 0.02)].astype(np.float32)  # the filled strip at the left edge
    assert outside.std(axis=0).mean() > 2  # it varies down the frame: not one colour smeared sideways


# ---------------------------------------------------------------- photos from the bad-input list


def _variants(photo):
    """Photos made from the sample: black-and-white, glasses drawn on, a beard, a big 4000x3000 picture with
    a ~300 px face, the face touching the photo's edge."""
    gray = np.asarray(Image.fromarray(photo).convert("L").convert("RGB"))
    glasses = Image.fromarray(photo.copy())
    draw = ImageDraw.Draw(glasses)
    draw.ellipse((188, 100, 225, 128), outline=(10, 10, 10), width=4)
    draw.ellipse((232, 100, 269, 128), outline=(10, 10, 10), width=4)
    draw.line((225, 112, 232, 112), fill=(10, 10, 10), width=3)
    beard = photo.astype(np.float32)
    yy, xx = np.mgrid[:512, :512]
    region = (((xx - 225) / 48) ** 2 + ((yy - 168) / 30) ** 2 < 1) & (yy > 150)
    noise = np.random.default_rng(0).normal(0, 25, (512, 512, 1))
    beard[region] = (np.array([70, 50, 35]) + noise[region]).clip(0, 255)
    big = np.full((3000, 4000, 3), (120, 130, 140), np.uint8)
    big[1000:2650, 1200:2850] = np.asarray(Image.fromarray(photo).resize((1650, 1650)))  # face ~300 px wide
    return {"gray": gray, "glasses": np.asarray(glasses), "beard": beard.astype(np.uint8), "big": big,
            "edge": np.ascontiguousarray(photo[70:, 182:])}


@pytest.mark.parametrize("name", ["gray", "glasses", "beard", "big", "edge"])
def test_hard_but_human_photos_make_a_video(runtime, photo, tmp_path, name):
    image = _variants(photo)[name]
    path = tmp_path / f"{name}.png"
    Image.fromarray(image).save(path)
    result = twin.create_twin_video(path, script="Hello, this is me.", voice="espeak-ng:en-us", seed=4,
                                    runtime=runtime)
    assert (result.width, result.height) == (512, 512) and result.frames > 10
    openings = [o for o in fl.mouth_openings_in_video(result.path, runtime=runtime) if o is not None]
    assert len(openings) > 0.9 * result.frames and max(openings) > min(openings) + 0.03  # a face that talks
    if name == "edge":
        assert any("close to the photo's edge" in n.en for n in result.notices)


def test_a_photo_with_the_mouth_wide_open_makes_a_video(runtime, tmp_path):
    """The photo itself shows an open mouth: the most open frame of a first render becomes the photo."""
    import imageio_ffmpeg

    first = twin.create_twin_video(PHOTO, script="Ah! Wow, that is so large!", voice="espeak-ng:en-us", still=True,
                                   ai_label=False, seed=5, runtime=runtime)
    openings = fl.mouth_openings_in_video(first.path, runtime=runtime)
    widest = int(np.nanargmax([o if o is not None else np.nan for o in openings]))
    reader = imageio_ffmpeg.read_frames(str(first.path))
    w, h = next(reader)["size"]
    frame = [np.frombuffer(raw, np.uint8).reshape(h, w, 3) for raw in reader][widest]
    path = tmp_path / "open.png"
    Image.fromarray(frame).save(path)
    rest = fl.detect_faces(twin.load_photo(PHOTO), runtime=runtime)[0].mouth_opening()
    assert fl.detect_faces(frame, runtime=runtime)[0].mouth_opening() > rest + 0.05
    result = twin.create_twin_video(path, script="Hello there.", voice="espeak-ng:en-us", seed=5, runtime=runtime)
    assert result.frames > 10 and result.path.is_file()
