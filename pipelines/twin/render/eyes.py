"""Eyes and brows: blinks, small eye movements and brow lifts.

A blink is a lid sliding over the eye: per column of the eye, the upper lid's edge (with its lashes)
moves down to the lower lid while the lid skin above it, up to the brow's fold, stretches to follow.
It is a vertical resampling of the photo's own lid (so the closed eye shows eyelid skin with the lashes
along the bottom, not a dark line), composed onto the face warp's maps, so it turns with the head.
Eye movements shift what lies inside the eye outline (iris and white), fading to nothing at the lids,
composed the same way; brows lift on stressed words (landmark displacements for the face warp).
"""
from __future__ import annotations

import numpy as np

from ...face import landmarks as fl

# The ring of points above each eye's lid edge (the lid fold), then the ring below the brow
LID_FOLD_A = [247, 30, 29, 27, 28, 56, 190]
LID_FOLD_B = [467, 260, 259, 257, 258, 286, 414]
LID_UPPER_SKIN_A = [113, 225, 224, 223, 222, 221, 189]
LID_UPPER_SKIN_B = [342, 445, 444, 443, 442, 441, 413]
LOWER_LIDS = [p for p in fl.EYE_A_LOWER + fl.EYE_B_LOWER if p not in (33, 133, 263, 362)]
IRIS_A = list(range(468, 473))
IRIS_B = list(range(473, 478))
BROW_POINTS = sorted(set(fl.BROWS + [46, 53, 52, 65, 55, 276, 283, 282, 295, 285]))
EYE_POINTS = sorted(set(fl.EYE_A_UPPER + fl.EYE_B_UPPER + LID_FOLD_A + LID_FOLD_B + LID_UPPER_SKIN_A
                        + LID_UPPER_SKIN_B + LOWER_LIDS + IRIS_A + IRIS_B + BROW_POINTS))


class EyeModel:
    """Per-photo eye geometry: the blinks of both eyes, and how points move for gaze and brow lifts."""

    def __init__(self, pts: np.ndarray, eye_distance: float):
        self.pts, self.s = pts, float(eye_distance)
        self.blinks = [Blink(pts, fl.EYE_A_UPPER, fl.EYE_A_LOWER, (33, 133), eye_distance),
                       Blink(pts, fl.EYE_B_UPPER, fl.EYE_B_LOWER, (263, 362), eye_distance)]

    def weights(self, index: list[int]) -> dict[str, np.ndarray]:
        brow = np.zeros(len(index), np.float32)
        pos = {p: i for i, p in enumerate(index)}
        for points, amount in ((BROW_POINTS, 1.0), (LID_FOLD_A + LID_FOLD_B, 0.35),
                               (LID_UPPER_SKIN_A + LID_UPPER_SKIN_B, 0.7)):
            for p in points:
                if p in pos:
                    brow[pos[p]] = amount
        return {"brow": brow}

    def displacement(self, w: dict[str, np.ndarray], brow: float) -> np.ndarray:
        d = np.zeros((len(w["brow"]), 2), np.float32)
        if brow:
            d[:, 1] -= w["brow"] * 0.035 * self.s * float(brow)
        return d


class Blink:
    """One eye's blink as a vertical displacement field over a box in photo coordinates."""

    def __init__(self, pts: np.ndarray, upper: list[int], lower: list[int], corners: tuple[int, int],
                 eye_distance: float):
        from .mouth import curve_y

        s = float(eye_distance)
        left, right = sorted(float(pts[c, 0]) for c in corners)
        self.box = (int(np.floor(left)) - 2, int(np.floor(min(pts[upper][:, 1].min(), pts[corners, 1].min()) - 0.22 * s)),
                    int(np.ceil(right)) + 3, int(np.ceil(pts[lower][:, 1].max() + 0.06 * s)))
        x0, y0, x1, y1 = self.box
        xs = np.arange(x0, x1, dtype=np.float32)
        edge_pts = pts[list(upper) + list(corners)]
        low_pts = pts[[p for p in lower if p not in corners] + list(corners)]
        self.edge = curve_y(xs, edge_pts)  # the upper lid's edge (lash line)
        # where the lids meet: just over the lower lid's wet edge, so no white of the eye is left
        self.meet = curve_y(xs, low_pts) + 0.02 * s
        taper = _smooth(np.minimum(xs - left, right - xs) / (0.015 * s))  # no step at the eye's corners
        self.travel = (np.clip(self.meet - self.edge, 0, None) * taper).astype(np.float32)
        # the lid skin that stretches reaches up to about the fold, short of the brow
        self.top = self.edge - 0.13 * s
        self.ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        # eye movements: how much of a glance each pixel follows (1 around the iris, 0 at the lids)
        self.width = right - left
        lower_edge = curve_y(xs, low_pts)
        height = np.maximum(lower_edge - self.edge, 1.0)[None, :]
        inside_v = np.clip(np.minimum(self.ys - self.edge[None, :], lower_edge[None, :] - self.ys) / (0.45 * height), 0, 1)
        inside_h = np.clip(np.minimum(xs - left, right - xs) / (0.22 * self.width), 0, 1)[None, :]
        self.follow = (_smooth(inside_v) * _smooth(inside_h)).astype(np.float32)

    def gaze_field(self, gaze: np.ndarray) -> np.ndarray:
        """(h, w, 2) backward displacement (photo pixels) that moves the eye's content by ``gaze`` eye widths."""
        shift = np.asarray(gaze, np.float32) * self.width
        return (-self.follow[..., None] * shift[None, None, :]).astype(np.float32)

    def field(self, closure: float) -> np.ndarray:
        """(h, w) vertical backward displacement (photo pixels; sample at y + field) for ``closure``."""
        c = float(np.clip(closure, 0, 1))
        travel = c * self.travel[None, :]
        edge, top = self.edge[None, :], self.top[None, :]
        moved = edge + travel
        y = self.ys
        # between the skin's top and the moved edge: the lashes slide down whole and the skin above them
        # stretches (smoothly: nothing moves at the top); below the moved edge the eye stays
        t = np.clip((y - top) / np.maximum(moved - top, 1.0), 0, 1)
        above = -travel * t * t * (3 - 2 * t)
        on_lid = _smooth((moved - y) + 0.5)  # 1 on the lid, 0 on the eye below it, 1 px anti-aliased
        return (above * on_lid).astype(np.float32)


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
