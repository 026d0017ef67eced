"""Unit tests of the classic talking-head engine: visemes and coarticulation, pauses, motion tracks,
the warp and its inversion, the lip model, the mouth interior, the 2.5D head turn and the blink."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from pipelines.twin import driving
from pipelines.twin import engines
from pipelines.twin.engines import classic
from pipelines.twin.render import eyes, head, mouth, warp


@dataclass
class T:  # a Timing as the voice pipeline gives it
    start: float
    end: float
    text: str
    kind: str


# ---------------------------------------------------------------- visemes and coarticulation


@pytest.mark.parametrize("symbol, shape", [
    ("m", "PP"), ("b", "PP"), ("p", "PP"), ("f", "FF"), ("v", "FF"), ("θ", "TH"), ("t", "DD"), ("l", "DD"),
    ("k", "KK"), ("ʃ", "CH"), ("s", "SS"), ("ɹ", "RR"),
    ("o", "OO"), ("u", "UU"), ("w", "UU"), ("oʊ", "OO"), ("uː", "UU"),
    ("i", "II"), ("ɪ", "II"), ("e", "EE"), ("ɛ", "EE"),
    ("a", "AA"), ("ɑː", "AA"), ("æ", "AA"), ("ˈa", "AA"), ("ə", "ER"),
    ("", "HH"), ("你", "HH"), ("?", "HH"), ("th", "TH"), ("ee", "II"),
])
def test_viseme_for_phonemes_and_letters(symbol, shape):
    assert driving.viseme_for(symbol) == shape


def _segments(*items, step=0.2):
    return [T(i * step, (i + 1) * step, s, "phoneme") for i, s in enumerate(items)]


def test_phonemes_shape_the_lips_not_only_the_jaw():
    fps = 25
    pose = driving.coarticulate(driving.viseme_segments(_segments("m", "a", "u", "i", "f")), 25, fps)
    m, a, u, i, f = (slice(1, 4), slice(6, 9), slice(11, 14), slice(17, 20), slice(21, 24))
    assert pose["gap"][m].mean() < 0.02 < pose["gap"][a].mean()  # pressed on m, open on a
    assert pose["gap"][a].mean() > pose["gap"][u].mean() and pose["jaw"][a].mean() > pose["jaw"][i].mean()
    assert pose["width"][u].mean() < -0.12 and pose["pucker"][u].mean() > 0.6  # round and forward
    assert pose["width"][i].mean() > 0.06 and pose["pucker"][i].mean() < 0.1  # spread
    assert pose["gap"][f].mean() < 0.03 and pose["upper"][f].mean() > 0.01  # lower lip to the upper teeth


def test_coarticulation_anticipates_rounding_and_still_closes_for_m():
    fps = 50
    pose = driving.coarticulate(driving.viseme_segments(_segments("s", "t", "u", step=0.1)), 15, fps)
    # the lips already round during the consonants before "u" (dominance reaches back in time)
    assert pose["width"][8:10].mean() < -0.05
    # m between two open vowels still (nearly) closes the lips: its dominance on the lips is strong
    pose = driving.coarticulate(driving.viseme_segments(_segments("a", "m", "a", step=0.1)), 15, fps)
    assert pose["gap"][6:9].min() < 0.25 * pose["gap"][1:4].mean()
    # and the lips never snap from closed to fully open from one 20 ms frame to the next
    steps = np.abs(np.diff(pose["gap"]))
    assert steps.max() < 0.75 * np.ptp(pose["gap"])


def test_word_timings_are_spread_over_letters():
    segments = driving.viseme_segments([T(0.0, 1.0, "moo", "word")])
    assert [s[2] for s in segments] == ["PP", "UU"]
    pose = driving.coarticulate(segments, 25, 25)
    assert pose["gap"][:4].mean() < pose["gap"][15:].mean() and pose["width"][15:].mean() < -0.1


def _bursts(pattern, sr=16000):
    """Audio from (seconds, loud?) pieces: a 200 Hz tone or silence."""
    pieces = []
    for seconds, loud in pattern:
        t = np.arange(int(seconds * sr)) / sr
        pieces.append((0.3 * np.sin(2 * np.pi * 200 * t)) if loud else np.zeros_like(t))
    return np.concatenate(pieces).astype(np.float32), sr


def test_pauses_close_the_mouth_within_two_frames_and_speech_onset_is_not_late():
    fps = 25
    audio, sr = _bursts([(1.0, True), (0.4, False), (1.0, True), (1.5, False), (1.0, True)])
    n = int(len(audio) / sr * fps)
    track, loud = driving.mouth_track(audio, sr, n, fps)
    assert track.rest[27:34].min() == 1.0  # the short pause: back to the photo's mouth ...
    assert track.rest[26] >= 0.7  # ... within ~2 frames (80 ms) of the silence
    assert track.rest[61:96].min() == 1.0  # the long one, and it stays
    assert track.rest[10:20].max() == 0.0
    onset = 35  # the sound comes back at 1.4 s = frame 35: the lips leave the rest shape a frame before
    assert track.rest[onset - 1] < 1.0 and track.rest[onset] == 0.0
    silent, _ = driving.mouth_track(np.zeros(sr, np.float32), sr, 25, fps)
    assert silent.rest.min() == 1.0


def test_no_timings_leave_loudness_to_open_the_mouth():
    audio, sr = _bursts([(0.5, True), (0.5, False)] * 2)
    track, loud = driving.mouth_track(audio, sr, 50, 25)
    assert np.corrcoef(track.gap, loud)[0, 1] > 0.8
    assert np.allclose(track.width, 0) and np.allclose(track.pucker, 0)


def test_motion_tracks_are_seeded_bounded_and_nods_follow_the_speech():
    a = driving.blink_track(500, 25, np.random.default_rng(1))
    b = driving.blink_track(500, 25, np.random.default_rng(1))
    assert np.array_equal(a, b) and a.max() == 1.0
    blinks = np.count_nonzero(np.diff((a > 0.5).astype(int)) == 1)
    assert 2 <= blinks <= 12  # 20 s: a blink every 2-6 s
    assert np.count_nonzero(a > 0) / blinks <= 6  # each lasts a few frames (~180 ms)
    gaze = driving.gaze_track(500, 25, np.random.default_rng(1))
    assert np.abs(gaze).max() < 0.1 and np.abs(gaze).max() > 0.01  # small eye movements
    audio, sr = _bursts([(0.3, True), (0.7, False)] * 8)
    loud = driving.loudness_envelope(audio, sr, 200, 25)
    pose = driving.head_motion_track(200, 25, np.random.default_rng(1), loud)
    assert np.abs(pose[:, :3]).max() < np.radians(6)  # a few degrees of yaw, pitch, roll
    calm = driving.head_motion_track(200, 25, np.random.default_rng(1))
    nod = pose[:, 1] - calm[:, 1]
    # pitch (nodding down) rises in the ~0.3 s after each burst
    after = np.concatenate([np.arange(k * 25 + 5, k * 25 + 12) for k in range(8)])
    before = np.concatenate([np.arange(k * 25 + 18, k * 25 + 25) for k in range(8)])
    assert nod[after].mean() > nod[before].mean() + 0.005


def test_still_mode_has_no_head_motion_or_blinks():
    audio, sr = _bursts([(1.0, True)])
    perf = driving.performance(audio, sr, 25, 25, still=True)
    assert not perf.blink.any() and not perf.head.any() and not perf.gaze.any()


# ---------------------------------------------------------------- the warp


def test_tps_interpolates_its_control_points():
    rng = np.random.default_rng(0)
    controls = rng.uniform(0, 100, (12, 2)).astype(np.float32)
    matrix = warp.tps_matrix(controls, controls, regularization=1e-7)
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
    fw = warp.FaceWarp(img, controls, region=(40, 40, 160, 160))
    still = fw.warp(np.zeros((5, 2), np.float32))
    assert np.abs(still.astype(int) - img[40:160, 40:160].astype(int)).max() <= 1  # no motion, no change
    moved = fw.warp(np.tile(np.float32([6, -4]), (5, 1)))
    cx, cy = _dot_center(moved)
    assert cx - 60 == pytest.approx(6, abs=1.0) and cy - 60 == pytest.approx(-4, abs=1.0)
    border = np.concatenate([moved[0], moved[-1], moved[:, 0], moved[:, -1]]).astype(int)
    original = img[40:160, 40:160]
    ref = np.concatenate([original[0], original[-1], original[:, 0], original[:, -1]]).astype(int)
    assert np.abs(border - ref).max() <= 2  # pasted back without a seam


def test_inverse_field_holds_where_the_skin_stretches_twofold():
    """An eyelid or lip edge moving down while the skin above stays: the sampled source must be exact."""
    controls = np.array([(100, 80), (100, 100), (80, 100), (120, 100)], np.float32)
    fw = warp.FaceWarp(np.zeros((200, 200, 3), np.uint8), controls, region=(40, 40, 160, 160), grid_step=4)
    d = np.array([(0, 0), (0, 16), (0, 14), (0, 14)], np.float32)  # 20 px of skin becomes 36
    map_y = fw.maps(d)[..., 1]
    # the output pixel where the moved edge lands samples the edge's own source pixel
    assert map_y[116 - 40, 100 - 40] == pytest.approx(100, abs=1.0)
    assert map_y[80 - 40, 100 - 40] == pytest.approx(80, abs=1.0)


# ---------------------------------------------------------------- the mouth


def _synthetic_face(gap: float = 0.0):
    """Landmark-like points for the lip model: a mouth 60 px wide under eyes 100 px apart."""
    from pipelines.face import landmarks as fl

    pts = np.zeros((478, 2), np.float32)
    pts[:] = (100, 60)
    pts[33], pts[263] = (50, 60), (150, 60)
    pts[234], pts[454] = (30, 100), (170, 100)
    pts[152] = (100, 190)

    def line(idx, y0, sag, x0=70, x1=130):
        xs = np.linspace(x0, x1, len(idx))
        u = (xs - 100) / 30
        for p, x, uu in zip(idx, xs, u):
            pts[p] = (x, y0 + sag * (1 - uu ** 2))

    line(fl.LIPS_INNER_UPPER, 150, 0)
    line(fl.LIPS_INNER_LOWER, 150, gap * 100, 73, 127)
    line(fl.LIPS_OUTER_UPPER, 142, -4, 68, 132)
    line(fl.LIPS_OUTER_LOWER, 158, gap * 100 + 4, 72, 128)
    pts[61], pts[291], pts[78], pts[308] = (68, 150), (132, 150), (70, 150), (130, 150)
    for p in mouth.MID_UPPER:
        pts[p] = pts[13] + (0, -4)
    for p in mouth.MID_LOWER:
        pts[p] = pts[14] + (0, 4)
    depth = np.full(478, 0.0, np.float32)
    depth[[234, 454]] = 60.0
    depth[172] = 45.0  # the jaw's side, well behind the chin
    pts[172] = (45, 160)
    return pts, depth


def _moved(model, pose, index):
    w = model.weights(index)
    return model.pts[index] + model.displacement(w, pose)


def test_lip_model_rounds_spreads_presses_and_drops_the_jaw_by_its_depth():
    pts, depth = _synthetic_face(gap=0.0)
    model = mouth.LipModel(pts, depth, 100.0)
    index = sorted(set(mouth.LIP_POINTS + [152, 172]))
    at = {p: i for i, p in enumerate(index)}

    def inner_width(pose):
        m = _moved(model, pose, index)
        return m[at[308], 0] - m[at[78], 0]

    def gap(pose):
        m = _moved(model, pose, index)
        return m[at[14], 1] - m[at[13], 1]

    rest = inner_width(mouth.MouthPose())
    assert inner_width(mouth.MouthPose(width=-0.22, pucker=1, jaw=0.04, gap=0.07)) < 0.85 * rest
    assert inner_width(mouth.MouthPose(width=0.12, jaw=0.04, gap=0.07)) > 1.05 * rest
    assert gap(mouth.MouthPose(jaw=0.12, gap=0.2)) == pytest.approx(20, abs=1.5)  # eye distances -> px
    assert abs(gap(mouth.MouthPose(jaw=0.03, gap=0.0))) < 0.5  # m/b/p: pressed together
    open_jaw = _moved(model, mouth.MouthPose(jaw=0.12, gap=0.2), index) - pts[index]
    assert open_jaw[at[152], 1] > 10 and open_jaw[at[172], 1] < 0.5 * open_jaw[at[152], 1]  # chin > jaw's side
    # a photo with parted lips closes them for m/b/p too
    parted, depth = _synthetic_face(gap=0.12)
    model = mouth.LipModel(parted, depth, 100.0)
    assert abs(gap(mouth.MouthPose(jaw=0.02, gap=0.0))) < 0.5
    assert model.rest_gap == pytest.approx(12, abs=0.5)


def _colours(teeth=None):
    from pipelines.twin.render.analysis import FaceColours

    return FaceColours(sclera=np.float32([235, 228, 220]), lips=np.float32([190, 110, 110]),
                       skin=np.float32([200, 160, 140]), teeth=teeth)


def test_synthesised_teeth_are_a_row_of_individual_teeth_with_a_shaded_cavity():
    pts, _ = _synthetic_face(gap=0.0)
    interior = mouth.MouthInterior(np.full((220, 200, 3), 180, np.uint8), pts, 100.0, _colours(), blur=0.8,
                                   noise=0.0)
    frame = np.full((220, 200, 3), 180, np.uint8)
    upper = pts[mouth.INNER_UPPER] + (0, -2)  # the upper lip rises a little, the jaw drops 12 px
    lower = pts[mouth.INNER_LOWER] + (0, 16)
    interior.render(frame, upper, lower, np.float32([[1, 0, 0], [0, 1, 0]]), jaw_px=12.0)
    luma = frame.astype(float) @ [0.299, 0.587, 0.114]
    teeth_row = luma[151, 80:121]  # just under the upper lip, across the front teeth
    assert teeth_row.mean() > 140  # light teeth in the photo's light
    # individual teeth: darker gaps between brighter crowns along the row, not a flat band
    assert teeth_row.max() - teeth_row.min() > 15
    gaps = np.flatnonzero((teeth_row[1:-1] < teeth_row[:-2]) & (teeth_row[1:-1] < teeth_row[2:]))
    assert len(gaps) >= 3
    column = luma[148:166, 100]
    # front to back: the teeth's edge, the dark cavity behind it, the tongue lower down (lit from the front)
    teeth, cavity, tongue = column[1:4].mean(), column[5:8].mean(), column[11:15].mean()
    assert teeth > cavity + 30 and tongue > cavity + 10
    assert (frame[10, 10] == 180).all() and (frame[200, 100] == 180).all()  # nothing outside the mouth changes


def test_photo_teeth_stay_with_the_upper_jaw():
    pts, _ = _synthetic_face(gap=0.12)
    photo = np.full((220, 200, 3), 180, np.uint8)
    photo[150:162, 72:128] = (245, 240, 230)  # the photo's teeth between the lips
    photo[150:162, 72:128:8] = (200, 195, 185)  # with gaps
    interior = mouth.MouthInterior(photo, pts, 100.0, _colours(teeth=np.float32([245, 240, 230])), blur=0.5,
                                   noise=0.0)
    assert interior.photo_teeth
    frame = photo.copy()
    upper = pts[mouth.INNER_UPPER]
    lower = pts[mouth.INNER_LOWER] + (0, 14)  # the jaw drops: the gap grows below the teeth
    interior.render(frame, upper, lower, np.float32([[1, 0, 0], [0, 1, 0]]), jaw_px=14.0)
    # the upper part of the opening is still the photo's teeth, pixel for pixel
    assert np.abs(frame[151:158, 80:120].astype(int) - photo[151:158, 80:120].astype(int)).mean() < 12
    # below them the mouth is darker (cavity, tongue), where the photo had teeth or lip before
    assert frame[166:170, 95:105].mean() < photo[151:158, 80:120].mean() - 60


# ---------------------------------------------------------------- the head and the eyes


def test_rotation_is_orthonormal_and_nods_chin_down():
    r = head.rotation(0.05, 0.03, -0.02)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-6)
    nose = np.array([0.0, 0.0, -50.0])  # in front of the pivot
    assert (head.rotation(0, 0.05, 0) @ nose)[1] > 0  # positive pitch: the front of the face goes down


def test_head_turn_is_25d_the_nose_swings_more_than_the_outline():
    pts, depth = _synthetic_face()
    pts[1], depth[1] = (100, 110), -40.0  # the nose tip stands out
    turn = head.HeadTurn(pts, depth, 100.0)
    xy = pts[[1, 234, 454]]
    z = depth[[1, 234, 454]]
    assert np.allclose(turn.move(xy, z, np.zeros(5)), xy)
    moved = turn.move(xy, z, np.array([0.06, 0, 0, 0, 0])) - xy  # ~3.4 degrees of yaw
    assert abs(moved[0, 0]) > 2 * max(abs(moved[1, 0]), abs(moved[2, 0]))
    a = turn.affine(xy, z, np.array([0.0, 0.0, 0.03, 0.01, 0.0]))
    assert a.shape == (2, 3) and np.allclose(a[:, :2], [[1, -0.03], [0.03, 1]], atol=0.01)


def test_blink_slides_the_lid_skin_over_the_eye():
    from pipelines.face import landmarks as fl

    pts = np.zeros((478, 2), np.float32)
    for i, p in enumerate(fl.EYE_A_UPPER):
        pts[p] = (40 + 5 * (i + 1), 50 - 6 * np.sin(np.pi * (i + 1) / 8))
    for i, p in enumerate(fl.EYE_A_LOWER):
        pts[p] = (40 + 5 * i, 50 + 4 * np.sin(np.pi * i / 8))
    pts[33], pts[133] = (40, 50), (80, 50)
    blink = eyes.Blink(pts, fl.EYE_A_UPPER, fl.EYE_A_LOWER, (33, 133), 100.0)
    assert not blink.field(0.0).any()
    field = blink.field(1.0)
    x0, y0 = blink.box[:2]
    col = 60 - x0
    # at full closure the pixel just above where the lids meet samples the lid's edge (lashes) ...
    meet = int(blink.meet[col])
    assert meet - 1 + field[meet - 1 - y0, col] == pytest.approx(blink.edge[col], abs=1.5)
    # ... higher up it samples lid skin from above, and far above nothing moves
    assert field[meet - 8 - y0, col] < -3
    assert field[0, col] == 0.0
    assert field[meet + 3 - y0, col] == 0.0  # below the lid the eye (lower lid) stays


# ---------------------------------------------------------------- the engine


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


@pytest.fixture(scope="module")
def astronaut():
    from PIL import Image

    from pipelines.core.settings import ASSETS_DIR
    from pipelines.face import landmarks as fl

    image = np.asarray(Image.open(ASSETS_DIR / "astronaut.jpg").convert("RGB"))
    return image, fl.detect_faces(image)[0]


@pytest.mark.slow
def test_rig_on_a_real_face_opens_the_mouth_and_keeps_the_rest(astronaut):
    from pipelines.face import landmarks as fl

    image, face = astronaut
    rig = classic.FaceRig(image, face)
    assert rig.depth_source == "face mesh" and rig.shows_teeth
    rest = rig.render()
    assert np.array_equal(rest, image)  # the photo's own pose is the photo
    wide = rig.render(classic.FramePose(mouth=classic.MouthPose(jaw=0.12, gap=0.25)))
    assert fl.detect_faces(wide)[0].mouth_opening() > face.mouth_opening() + 0.04
    x0, y0, x1, y1 = rig.region
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (wide[outside] == image[outside]).all()  # only the face region is touched
    closed_eyes = rig.render(classic.FramePose(blink=1.0))
    assert np.abs(closed_eyes.astype(int) - image.astype(int)).sum() > 0


@pytest.mark.slow
def test_posed_frames_say_where_every_landmark_went(astronaut):
    """Engines built on the classic motion (a neural mouth) place their crop from these points."""
    from pipelines.face import landmarks as fl

    image, face = astronaut
    pose = classic.FramePose(mouth=classic.MouthPose(jaw=0.1, gap=0.2),
                             head=np.array([0.05, 0.04, 0.03, 0.06, 0.02], np.float32))
    posed = classic.FaceRig(image, face).render_posed(pose)
    assert posed.points.shape == face.points.shape
    measured = fl.detect_faces(posed.image)[0].points
    predicted_error = np.abs(measured - posed.points).mean() / face.eye_distance
    unmoved_error = np.abs(measured - face.points).mean() / face.eye_distance
    assert predicted_error < 0.6 * unmoved_error and predicted_error < 0.03


# ---------------------------------------------------------------- frames made ahead, two at a time


def test_frames_made_ahead_come_in_order_and_errors_reach_the_caller():
    import threading
    import time

    def make(i):
        time.sleep(0.002 * (i % 3))  # later items sometimes finish first
        if i == 7:
            raise ValueError("frame 7 failed")
        return i * i, threading.current_thread().name

    made = classic._made_ahead(make, range(7))
    results = list(made)
    assert [r[0] for r in results] == [i * i for i in range(7)]
    assert len({name for _, name in results}) == 2  # two frame threads did the work
    with pytest.raises(ValueError, match="frame 7 failed"):
        list(classic._made_ahead(make, range(10)))


def test_frames_made_ahead_stop_when_the_caller_stops():
    import threading

    asked = []

    def make(i):
        asked.append(i)
        return i

    made = classic._made_ahead(make, iter(range(10_000)))
    assert [next(made) for _ in range(3)] == [0, 1, 2]
    made.close()  # the caller stops (a Stop, an error, a closed stream)
    assert len(asked) <= 6  # at most a few ahead, never the rest
    assert not [t for t in threading.enumerate() if t.name.startswith("twin-frames")]


def test_single_thread_kernels_overlap_and_restore_once_the_last_user_leaves():
    import cv2

    from pipelines.core import cpu

    before = cv2.getNumThreads()
    first, second = cpu.single_thread_kernels(), cpu.single_thread_kernels()
    first.__enter__()
    second.__enter__()
    assert cv2.getNumThreads() == 1
    first.__exit__(None, None, None)  # the first user leaves while the second still renders
    assert cv2.getNumThreads() == 1
    second.__exit__(None, None, None)
    assert cv2.getNumThreads() == before
