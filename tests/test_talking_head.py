"""Unit tests of the classic talking-head engine: mouth-shape mapping, loudness -> opening, the warp."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from pipelines.twin import driving
from pipelines.twin import engines
from pipelines.twin.engines import classic


@dataclass
class T:  # a Timing as the voice pipeline gives it
    start: float
    end: float
    text: str
    kind: str


# ---------------------------------------------------------------- mouth shapes


@pytest.mark.parametrize("symbol, shape", [
    ("m", "closed"), ("b", "closed"), ("p", "closed"), ("f", "fv"), ("v", "fv"),
    ("o", "round"), ("u", "round"), ("w", "round"), ("oʊ", "round"),
    ("i", "wide"), ("e", "wide"), ("s", "wide"), ("ɪ", "wide"),
    ("a", "open"), ("ɑː", "open"), ("æ", "open"), ("ˈa", "open"),
    ("", "neutral"), ("你", "neutral"), ("?", "neutral"),
])
def test_viseme_for_phonemes_and_letters(symbol, shape):
    assert driving.viseme_for(symbol) == shape


def test_phoneme_timings_shape_the_mouth():
    fps = 25
    timings = [T(0.0, 0.4, "m", "phoneme"), T(0.4, 0.8, "a", "phoneme"), T(0.8, 1.2, "u", "phoneme"),
               T(1.2, 1.6, "i", "phoneme")]
    opening, width = driving.mouth_shape_track(timings, n_frames=40, fps=fps)
    m, a, u, i = (slice(2, 8), slice(12, 18), slice(22, 28), slice(32, 38))
    assert opening[m].mean() < 0.2 < opening[a].mean()  # lips closed on m, open on a
    assert opening[a].mean() > opening[i].mean()
    assert width[u].mean() < -0.5 and width[i].mean() > 0.4  # round vs wide


def test_word_timings_are_spread_over_letters():
    opening, width = driving.mouth_shape_track([T(0.0, 1.0, "moo", "word")], n_frames=25, fps=25)
    assert opening[:5].mean() < opening[15:].mean()  # "m" first, then the round "oo"
    assert width[15:].mean() < -0.3


def test_sentence_timings_or_none_leave_loudness_alone():
    for timings in ([], [T(0, 1, "Hello there.", "sentence")]):
        opening, width = driving.mouth_shape_track(timings, n_frames=25, fps=25)
        assert np.allclose(opening, driving.VISEMES["neutral"][0]) and np.allclose(width, 0)


def test_opening_follows_loudness_and_silence_stays_closed():
    sr, fps = 16000, 25
    t = np.arange(sr * 2) / sr
    envelope = np.where((t % 0.5) < 0.25, 1.0, 0.0)  # 0.25 s bursts of sound, then silence
    audio = (0.3 * envelope * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    loud = driving.loudness_envelope(audio, sr, 50, fps)
    opening = driving.jaw_opening(loud)
    assert opening.max() == pytest.approx(1.0, abs=0.01)
    assert np.corrcoef(opening, loud)[0, 1] > 0.9
    assert opening[2:5].mean() > 0.8 and opening[8:12].mean() < 0.35  # open in a burst, closing after
    silent = driving.jaw_opening(driving.loudness_envelope(np.zeros(sr, np.float32), sr, 25, fps))
    assert not silent.any()


def test_blinks_and_head_motion_are_seeded_and_bounded():
    a = driving.blink_track(500, 25, np.random.default_rng(1))
    b = driving.blink_track(500, 25, np.random.default_rng(1))
    assert np.array_equal(a, b) and 0 < a.max() <= 1
    blinks = np.count_nonzero(np.diff((a > 0.5).astype(int)) == 1)
    assert 2 <= blinks <= 12  # 20 s: a blink every 2-6 s
    head = driving.head_motion_track(500, 25, np.random.default_rng(1))
    assert np.abs(head[:, 0]).max() < 0.05  # roll under 3 degrees: subtle


# ---------------------------------------------------------------- the warp


def test_tps_interpolates_its_control_points():
    rng = np.random.default_rng(0)
    controls = rng.uniform(0, 100, (12, 2)).astype(np.float32)
    matrix = classic.tps_matrix(controls, controls, regularization=1e-6)
    disp = rng.normal(0, 3, (12, 2)).astype(np.float32)
    assert np.allclose(matrix @ disp, disp, atol=0.05)


def _dot_image(center=(100, 100)):
    img = np.full((200, 200, 3), 200, np.uint8)
    y, x = np.mgrid[0:200, 0:200]
    img[(x - center[0]) ** 2 + (y - center[1]) ** 2 < 36] = (20, 40, 60)
    return img


def _dot_center(img):
    ys, xs = np.nonzero(img[..., 0] < 100)
    return xs.mean(), ys.mean()


def test_warp_moves_what_the_control_points_move_and_pins_the_border():
    img = _dot_image()
    controls = np.array([(100, 100), (90, 100), (110, 100), (100, 90), (100, 110)], np.float32)
    warp = classic.FaceWarp(img, controls, region=(40, 40, 160, 160))
    still = warp.warp(np.zeros((5, 2), np.float32))
    assert np.abs(still.astype(int) - img[40:160, 40:160].astype(int)).max() <= 1  # no motion, no change
    moved = warp.warp(np.tile(np.float32([6, -4]), (5, 1)))
    cx, cy = _dot_center(moved)
    assert cx - 60 == pytest.approx(6, abs=1.0) and cy - 60 == pytest.approx(-4, abs=1.0)
    border = np.concatenate([moved[0], moved[-1], moved[:, 0], moved[:, -1]]).astype(int)
    original = img[40:160, 40:160]
    ref = np.concatenate([original[0], original[-1], original[:, 0], original[:, -1]]).astype(int)
    assert np.abs(border - ref).max() <= 2  # pasted back without a seam


def test_mouth_interior_darkens_between_the_lips():
    frame = np.full((100, 100, 3), 180, np.uint8)
    upper = np.array([(30, 50), (50, 45), (70, 50)], np.float32)
    lower = np.array([(30, 50), (50, 65), (70, 50)], np.float32)
    classic.draw_mouth_interior(frame, upper, lower, gap=20, eye_distance=60)
    assert frame[58, 50].mean() < 90  # the cavity is dark
    assert frame[47, 50].mean() > frame[58, 50].mean()  # teeth under the upper lip are lighter
    assert (frame[10, 10] == 180).all()  # nothing outside the mouth changes


def test_engine_registry_resolves_the_classic_engine(tmp_path):
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.errors import ModelLoadError
    from pipelines.core.runtime import Runtime

    runtime = Runtime(cache=ModelCache(budget_bytes=2**30), catalog=Catalog(tmp_path), outputs_dir=tmp_path)
    key, loader, label = engines.load_engine("classic", runtime)
    assert key.startswith("twin:classic") and isinstance(loader(), classic.ClassicEngine)
    assert "classic" in engines.engine_backends()
    with pytest.raises(ModelLoadError):
        engines.load_engine("no-such-engine", runtime)


@pytest.mark.slow
def test_rig_on_a_real_face_opens_the_mouth_and_keeps_the_rest():
    from PIL import Image

    from pipelines.face import landmarks as fl
    from pipelines.core.settings import ASSETS_DIR

    image = np.asarray(Image.open(ASSETS_DIR / "astronaut.jpg").convert("RGB"))
    face = fl.detect_faces(image)[0]
    rig = classic.FaceRig(image, face)
    rest = rig.render(opening=0.0)
    assert np.abs(rest.astype(int) - image.astype(int)).mean() < 0.5  # at rest the photo is unchanged
    wide = rig.render(opening=1.0)
    measured = fl.detect_faces(wide)[0]
    assert measured.mouth_opening() > face.mouth_opening() + 0.1
    x0, y0, x1, y1 = rig.region
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (wide[outside] == image[outside]).all()  # only the face region is touched
    closed_eyes = rig.render(opening=0.0, blink=1.0)
    assert np.abs(closed_eyes.astype(int) - image.astype(int)).sum() > 0


@pytest.mark.slow
def test_posed_frames_say_where_every_landmark_went():
    """Engines built on the classic motion (a neural mouth) place their crop from these points."""
    from PIL import Image

    from pipelines.core.settings import ASSETS_DIR
    from pipelines.face import landmarks as fl

    image = np.asarray(Image.open(ASSETS_DIR / "astronaut.jpg").convert("RGB"))
    face = fl.detect_faces(image)[0]
    posed = classic.FaceRig(image, face).render_posed(opening=1.0, head=np.array([0.03, 0.06, 0.02], np.float32))
    assert posed.points.shape == face.points.shape
    measured = fl.detect_faces(posed.image)[0].points
    predicted_error = np.abs(measured - posed.points).mean() / face.eye_distance
    unmoved_error = np.abs(measured - face.points).mean() / face.eye_distance
    assert predicted_error < 0.6 * unmoved_error and predicted_error < 0.03
