"""The built-in "classic" engine: landmark-driven warping of the face region, offline on a CPU.

A sparse set of control points (lips, jaw, eyelids, head outline, a fixed border ring) gets its
displacement per frame; a thin-plate spline, precomputed once per photo, spreads it to a coarse grid;
the grid is inverted, upsampled and applied with ``cv2.remap``. A mouth interior (dark cavity, teeth)
is drawn where the lips part. Blinks, subtle head motion and breathing are seeded, so a seed repeats
a video. Frames are yielded one at a time; nothing holds the whole clip.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from ...core.jobs import StopToken, check_stop
from ...face import landmarks as fl
from ..driving import blink_track, driving_signal, head_motion_track
from . import AnimationJob, PosedFrame, TalkingHeadEngine, register_engine

# ---------------------------------------------------------------- thin-plate spline on a coarse grid


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        k = 0.5 * r2 * np.log(r2)
    return np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0)


def tps_matrix(controls: np.ndarray, targets: np.ndarray, regularization: float = 1e-3) -> np.ndarray:
    """Matrix M (len(targets) x len(controls)): displacement at targets = M @ displacement at controls.

    Solved once per photo; each frame then costs one small matrix product.
    """
    n = len(controls)
    scale = float(np.ptp(controls, axis=0).max()) or 1.0
    c, g = controls / scale, targets / scale
    K = _tps_kernel(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1)) + regularization * np.eye(n)
    P = np.hstack([np.ones((n, 1)), c])
    L = np.zeros((n + 3, n + 3))
    L[:n, :n], L[:n, n:], L[n:, :n] = K, P, P.T
    solve = np.linalg.solve(L, np.vstack([np.eye(n), np.zeros((3, n))]))  # (n+3, n)
    Kg = _tps_kernel(((g[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    Pg = np.hstack([np.ones((len(g), 1)), g])
    return (np.hstack([Kg, Pg]) @ solve).astype(np.float32)


class FaceWarp:
    """Warps a rectangular region of an image so that control points move by given displacements.

    The region's border is pinned (zero displacement), so the warped region pastes back seamlessly.
    """

    def __init__(self, image: np.ndarray, controls: np.ndarray, region: tuple[int, int, int, int],
                 grid_step: int = 8):
        x0, y0, x1, y1 = region
        self.image, self.region = image, region
        ring = _border_ring(region, per_side=10)
        self.controls = np.vstack([controls, ring]).astype(np.float32)
        self.n_moving = len(controls)
        self.grid_w = max(2, math.ceil((x1 - x0) / grid_step) + 1)
        self.grid_h = max(2, math.ceil((y1 - y0) / grid_step) + 1)
        gx = np.linspace(x0, x1 - 1, self.grid_w, dtype=np.float32)
        gy = np.linspace(y0, y1 - 1, self.grid_h, dtype=np.float32)
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        self.matrix = tps_matrix(self.controls, grid)[:, : self.n_moving]  # the ring never moves
        self.size = (x1 - x0, y1 - y0)
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        self.base_x, self.base_y = xs, ys
        self._grid_scale = np.array([(self.grid_w - 1) / max(x1 - 1 - x0, 1), (self.grid_h - 1) / max(y1 - 1 - y0, 1)],
                                    np.float32)

    def backward_field(self, displacement: np.ndarray) -> np.ndarray:
        """Coarse (grid_h, grid_w, 2) field: for each output grid point, how far back to sample from.

        The forward field d moves source p to p + d(p); sampling needs its inverse, found by two
        fixed-point steps b(x) = d(x - b(x)) on the coarse grid (cheap: the grid is small).
        """
        import cv2

        forward = (self.matrix @ displacement).reshape(self.grid_h, self.grid_w, 2)
        gy, gx = np.mgrid[0: self.grid_h, 0: self.grid_w].astype(np.float32)
        back = forward
        for _ in range(2):
            sx = gx - back[..., 0] * self._grid_scale[0]
            sy = gy - back[..., 1] * self._grid_scale[1]
            back = cv2.remap(forward, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return back

    def warp(self, displacement: np.ndarray, source: np.ndarray | None = None) -> np.ndarray:
        """The warped region (H x W x 3), given (n_moving, 2) control displacements in pixels."""
        import cv2

        back = self.backward_field(displacement.astype(np.float32))
        w, h = self.size
        dense = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR)
        map_x = self.base_x - dense[..., 0]
        map_y = self.base_y - dense[..., 1]
        src = self.image if source is None else source
        return cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _border_ring(region, per_side: int) -> np.ndarray:
    x0, y0, x1, y1 = region
    xs = np.linspace(x0, x1 - 1, per_side)
    ys = np.linspace(y0, y1 - 1, per_side)
    pts = [(x, y0) for x in xs] + [(x, y1 - 1) for x in xs] + [(x0, y) for y in ys[1:-1]] + [(x1 - 1, y) for y in ys[1:-1]]
    return np.array(pts, np.float32)


# ---------------------------------------------------------------- the classic engine

_STATIC = sorted(set(fl.NOSE + fl.BROWS + [33, 133, 263, 362] + [10, 338, 297, 332, 284, 109, 67, 103, 54, 21]))
_UPPER_LIP = fl.LIPS_OUTER_UPPER[1:-1] + fl.LIPS_INNER_UPPER[1:-1]
_LOWER_LIP = fl.LIPS_OUTER_LOWER + fl.LIPS_INNER_LOWER
_CORNERS = fl.MOUTH_CORNERS
_JAW = sorted(set(fl.FACE_OVAL + fl.CHIN_AREA + fl.CHEEKS) - set(_STATIC))
_UPPER_LIDS = fl.EYE_A_UPPER + fl.EYE_B_UPPER
_LOWER_LIDS = [p for p in fl.EYE_A_LOWER + fl.EYE_B_LOWER if p not in (33, 133, 263, 362)]


class ClassicEngine(TalkingHeadEngine):
    """Audio-driven landmark warping: offline, no weights beyond MediaPipe's, faster than real time."""

    name = "classic"
    size_bytes = 1  # no weights of its own

    # Largest lower-lip drop and upper-lip lift, in eye distances (the outer eye corners' distance).
    JAW_DROP = 0.22
    UPPER_LIFT = 0.05
    CORNER_SPREAD = 0.07

    def animate(self, job: AnimationJob, *, stop: StopToken | None = None) -> Iterator[np.ndarray]:
        for posed in self.animate_posed(job, stop=stop):
            yield posed.image

    def animate_posed(self, job: AnimationJob, *, stop: StopToken | None = None) -> Iterator[PosedFrame]:
        """Like ``animate``, with every landmark's position in each frame (for engines built on top)."""
        rig = FaceRig(job.image, job.face)
        opts = job.options
        rng = np.random.default_rng(opts.seed)
        fps = opts.fps
        signal = driving_signal(job.audio, job.sample_rate, job.n_frames, fps, job.timings)
        gain = float(np.clip(opts.expression, 0.0, 2.0))
        blinks = np.zeros(job.n_frames, np.float32) if opts.still else blink_track(job.n_frames, fps, rng)
        head = np.zeros((job.n_frames, 3), np.float32) if opts.still else head_motion_track(job.n_frames, fps, rng)
        head *= 0.5 + 0.5 * min(gain, 1.5)
        for i in range(job.n_frames):
            check_stop(stop)
            yield rig.render_posed(opening=float(signal.opening[i]) * (0.35 + 0.65 * gain),
                                   width=float(signal.width[i]) * min(gain, 1.0),
                                   blink=float(blinks[i]), head=head[i])


register_engine("classic", lambda spec, runtime: ClassicEngine())


class FaceRig:
    """One photo prepared for animation: control points, the precomputed warp, the mouth geometry."""

    def __init__(self, image: np.ndarray, face: fl.FaceLandmarks):
        self.image = np.ascontiguousarray(image[..., :3])
        pts = face.points.astype(np.float32)
        self.pts = pts
        self.s = face.eye_distance
        h, w = image.shape[:2]
        x0, y0, x1, y1 = face.bbox
        fw, fh = x1 - x0, y1 - y0
        # The warped region: the face plus room for the jaw, neck and hair to stretch; clipped to the frame.
        self.region = (max(0, int(x0 - 0.3 * fw)), max(0, int(y0 - 0.2 * fh)),
                       min(w, int(x1 + 0.3 * fw) + 1), min(h, int(y1 + 0.45 * fh) + 1))
        self.groups = {
            "static": _STATIC, "upper": _UPPER_LIP, "lower": _LOWER_LIP, "corners": _CORNERS,
            "jaw": _JAW, "upper_lids": _UPPER_LIDS, "lower_lids": _LOWER_LIDS,
        }
        self.index = sorted(set(sum(self.groups.values(), [])))
        self.row = {p: i for i, p in enumerate(self.index)}
        self.controls = pts[self.index]
        self.warp = FaceWarp(self.image, self.controls, self.region)
        # where every landmark goes, from the control displacements (one small product per frame)
        self.point_matrix = tps_matrix(self.warp.controls, pts)[:, : self.warp.n_moving]
        self._precompute_weights()

    def _precompute_weights(self) -> None:
        pts, rows = self.pts, self.row
        n = len(self.index)
        mouth_y = pts[[61, 291]][:, 1].mean()
        chin_y = pts[152, 1]
        self.mouth_center = pts[[13, 14]].mean(axis=0)
        half_width = max(abs(pts[291, 0] - pts[61, 0]) / 2, 1.0)
        # jaw: vertical drop per unit of opening, in pixels (0 above the mouth corners, full at the chin)
        drop = np.zeros(n, np.float32)
        lift = np.zeros(n, np.float32)
        spread = np.zeros(n, np.float32)
        for p in self.groups["jaw"]:
            t = np.clip((pts[p, 1] - mouth_y) / max(chin_y - mouth_y, 1.0), 0.0, 1.0)
            drop[rows[p]] = 0.85 * t
        for p in self.groups["lower"]:
            drop[rows[p]] = 1.0
        for p in self.groups["upper"]:
            lift[rows[p]] = 1.0
        for p in self.groups["corners"]:
            drop[rows[p]] = 0.4
        for p in self.groups["upper"] + self.groups["lower"] + self.groups["corners"]:
            spread[rows[p]] = np.clip((pts[p, 0] - self.mouth_center[0]) / half_width, -1.0, 1.0)
        self.drop, self.lift, self.spread = drop * self.s * ClassicEngine.JAW_DROP, lift * self.s * ClassicEngine.UPPER_LIFT, spread
        # eyelids: how far each upper-lid point travels to meet the lower lid
        self.lid_travel = np.zeros(n, np.float32)
        for upper, lower in ((fl.EYE_A_UPPER, fl.EYE_A_LOWER), (fl.EYE_B_UPPER, fl.EYE_B_LOWER)):
            lower_y = pts[lower][:, 1]
            lower_x = pts[lower][:, 0]
            for p in upper:
                nearest = lower_y[np.argmin(np.abs(lower_x - pts[p, 0]))]
                self.lid_travel[rows[p]] = 0.9 * max(nearest - pts[p, 1], 0.0)
        self.head_pivot = pts[[1, 152]].mean(axis=0)
        self.face_rows = np.array([rows[p] for p in self.index], np.int64)
        self.inner_upper = [rows[p] for p in fl.LIPS_INNER_UPPER]
        self.inner_lower = [rows[p] for p in fl.LIPS_INNER_LOWER]
        self.teeth_color = _visible_teeth_color(self.image, pts)

    def displacement(self, opening: float, width: float, blink: float, head: np.ndarray) -> np.ndarray:
        d = np.zeros((len(self.index), 2), np.float32)
        d[:, 1] = self.drop * opening - self.lift * opening
        # corners: out for a wide mouth, in for a round one; an opening mouth also narrows a little
        d[:, 0] = self.spread * self.s * (ClassicEngine.CORNER_SPREAD * width - 0.03 * opening)
        d[:, 1] += self.lid_travel * blink
        roll, dx, dy = float(head[0]), float(head[1]) * self.s, float(head[2]) * self.s
        if roll or dx or dy:
            c, s = math.cos(roll), math.sin(roll)
            rel = self.controls + d - self.head_pivot
            rotated = np.stack([c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]], -1)
            d = rotated + self.head_pivot + (dx, dy) - self.controls
        return d

    def render(self, opening: float, width: float = 0.0, blink: float = 0.0,
               head: np.ndarray | None = None) -> np.ndarray:
        """One RGB frame of the whole image with the face posed as asked."""
        return self.render_posed(opening, width, blink, head).image

    def render_posed(self, opening: float, width: float = 0.0, blink: float = 0.0,
                     head: np.ndarray | None = None) -> PosedFrame:
        """The frame and every landmark's position in it."""
        head = np.zeros(3, np.float32) if head is None else head
        d = self.displacement(opening, width, blink, head)
        region = self.warp.warp(d)
        x0, y0, x1, y1 = self.region
        frame = self.image.copy()
        frame[y0:y1, x0:x1] = region
        moved = self.controls + d
        lip_gap = float(np.mean(moved[self.inner_lower[3:6], 1] - moved[self.inner_upper[4:7], 1]))
        base_gap = float(np.mean(self.controls[self.inner_lower[3:6], 1] - self.controls[self.inner_upper[4:7], 1]))
        if lip_gap - base_gap > 0.5:
            draw_mouth_interior(frame, moved[self.inner_upper], moved[self.inner_lower], lip_gap, self.s,
                                strength=min(1.0, (lip_gap - base_gap) / (0.04 * self.s)),
                                teeth_color=self.teeth_color)
        return PosedFrame(frame, self.pts + self.point_matrix @ d)


def _visible_teeth_color(image: np.ndarray, pts: np.ndarray) -> np.ndarray | None:
    """The colour of the teeth when the photo shows them (a smile); None when the lips are closed."""
    import cv2

    polygon = np.vstack([pts[fl.LIPS_INNER_UPPER], pts[fl.LIPS_INNER_LOWER][::-1]])
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
    inside = image[mask > 0]
    if len(inside) < 20:
        return None
    bright = inside[inside.mean(axis=1) > 140]
    if len(bright) < 0.3 * len(inside):
        return None
    return np.median(bright, axis=0) * 0.92  # a touch darker: teeth sit in the mouth's shadow


def draw_mouth_interior(frame: np.ndarray, upper: np.ndarray, lower: np.ndarray, gap: float, eye_distance: float,
                        strength: float = 1.0, teeth_color: np.ndarray | None = None) -> None:
    """Paint a dark cavity between the inner lips, with upper (and, wide open, lower) teeth. In place."""
    import cv2

    polygon = np.vstack([upper, lower[::-1]]).astype(np.float32)
    pad = 3
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + pad
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    origin = np.array([x0, y0], np.float32)
    scale = 4  # cv2 fills integer vertices: shift=2 gives quarter-pixel polygon edges

    def fill(points: np.ndarray, value: int, mask: np.ndarray) -> None:
        cv2.fillPoly(mask, [np.round((points - origin) * scale).astype(np.int32)], value, cv2.LINE_AA, shift=2)

    cavity = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fill(polygon, 255, cavity)
    teeth = np.zeros_like(cavity)
    tooth_h = min(0.07 * eye_distance, 0.35 * gap)
    fill(np.vstack([upper, (upper + (0, tooth_h))[::-1]]), 255, teeth)
    if gap > 0.18 * eye_distance:  # lower teeth show only when the mouth is wide open
        fill(np.vstack([lower - (0, 0.3 * tooth_h), lower[::-1]]), 170, teeth)
    cavity_a = cv2.GaussianBlur(cavity, (3, 3), 0).astype(np.float32)[..., None] / 255.0 * strength
    # teeth fade out toward the corners of the mouth, where the cheeks hide them
    left, right = float(polygon[:, 0].min()) - x0, float(polygon[:, 0].max()) - x0
    xs = (np.arange(x1 - x0, dtype=np.float32) - (left + right) / 2) / max((right - left) / 2, 1.0)
    side_fade = np.clip(1.2 - np.abs(xs) ** 3, 0, 1)[None, :, None]
    teeth_a = np.minimum(teeth, cavity).astype(np.float32)[..., None] / 255.0 * side_fade
    ys = np.linspace(0, 1, y1 - y0, dtype=np.float32)[:, None, None]
    dark = np.array([58, 24, 28], np.float32) * (0.8 + 0.4 * ys)  # deeper in the throat at the top
    ivory = np.array([215, 208, 195], np.float32) if teeth_color is None else teeth_color.astype(np.float32)
    inside = dark * (1 - teeth_a) + ivory * (0.75 + 0.25 * side_fade) * teeth_a
    roi = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(roi * (1 - cavity_a) + inside * cavity_a, 0, 255).astype(np.uint8)

