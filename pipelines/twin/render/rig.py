"""One photo prepared for animation, and one frame rendered from a pose.

Per photo (once): landmark depth, person mask, control points (lips, jaw, eyelids, irises, brows, the
hair around the face, still points on the nose and forehead), the thin-plate-spline matrices, the
background plate and the mouth's textures. Per frame: the pose's landmark displacements (lips and jaw,
eyes, then the 2.5D head turn), one warp of the face region, the outline band re-composited over the
still background, and the mouth interior painted between the moved lips.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...core import cpu
from ...face import landmarks as fl
from ..engines import PosedFrame
from . import analysis
from .eyes import EYE_POINTS, EyeModel
from .head import HeadTurn, StillBackground, hair_points
from .mouth import INNER_LOWER, INNER_UPPER, JAW_POINTS, LIP_POINTS, MID_LOWER, MID_UPPER, OUTER_LOWER, OUTER_UPPER, \
    LipModel, MouthInterior, MouthPose, curve_y
from .warp import FaceWarp

cpu.prepare_blas_control()  # a command-line tool imports the renderer in its main thread: scan now

# Points that the face's own expressions leave in place (they still move with the head)
STATIC_POINTS = sorted(set(fl.NOSE + [164, 167, 393, 33, 133, 263, 362, 151, 9, 108, 337, 69, 299, 10, 338, 297,
                                      332, 284, 251, 389, 356, 127, 162, 21, 54, 103, 67, 109, 205, 425, 50, 280,
                                      187, 411, 116, 345, 123, 352, 234, 454, 93, 323,
                                      # just below the lower lids: hold the cheeks still under a blinking lid
                                      130, 25, 110, 24, 23, 22, 26, 112, 243, 359, 255, 339, 254, 253, 252, 256,
                                      341, 463]))
SKULL_POINTS = [61, 291, 0, 164, 2, 98, 327]  # around the upper teeth: for the upper teeth's placement


@dataclass
class FramePose:
    """Everything that moves in one frame."""

    mouth: MouthPose = field(default_factory=MouthPose)
    blink: float = 0.0
    gaze: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))  # eye widths
    brow: float = 0.0
    head: np.ndarray = field(default_factory=lambda: np.zeros(5, np.float32))  # yaw, pitch, roll, dx, dy


class FaceRig:
    """A photo ready to animate: ``render_posed(FramePose(...))`` gives a frame and its landmarks."""

    def __init__(self, image: np.ndarray, face: fl.FaceLandmarks, runtime=None, *, seed: int = 0,
                 still: bool = False):
        import cv2

        self.image = np.ascontiguousarray(image[..., :3])
        h, w = self.image.shape[:2]
        pts = self.pts = face.points.astype(np.float32)
        n_pts = len(pts)
        s = self.s = float(face.eye_distance)
        depth, self.depth_source = analysis.landmark_depth(self.image, face, runtime)
        self.depth = depth
        # The warped region: the face with room for hair, jaw and neck; clipped to the frame
        x0, y0, x1, y1 = face.bbox
        fw, fh = x1 - x0, y1 - y0
        # (down to a little below the neck line, where everything is held still)
        neck_y = float(pts[152, 1]) + 0.5 * s
        if still:  # only the mouth and jaw move: nothing above the nose is touched
            jaw = pts[JAW_POINTS]
            self.region = (max(0, int(jaw[:, 0].min() - 0.15 * s)), max(0, int(pts[1, 1] - 0.05 * s)),
                           min(w, int(jaw[:, 0].max() + 0.15 * s) + 1), min(h, int(pts[152, 1] + 0.35 * s) + 1))
        else:
            self.region = (max(0, int(x0 - 0.6 * fw)), max(0, int(y0 - 0.8 * fh)),
                           min(w, int(x1 + 0.6 * fw) + 1), min(h, int(min(y1 + 0.6 * fh, neck_y + 0.15 * s)) + 1))
        rx0, ry0, rx1, ry1 = self.region
        mask = None if still else analysis.person_mask(self.image, self.region, runtime)

        def mask_at(xy: np.ndarray) -> float:
            if mask is None:
                return 0.0
            x, y = int(round(xy[0])) - rx0, int(round(xy[1])) - ry0
            return float(mask[y, x]) if 0 <= x < mask.shape[1] and 0 <= y < mask.shape[0] else 0.0

        # Models of the parts
        self.lips = LipModel(pts, depth, s)
        self.eyes = EyeModel(pts, s)
        self.head = HeadTurn(pts, depth, s)
        mouth_idx = [p for p in sorted(set(LIP_POINTS + JAW_POINTS)) if p < n_pts]
        eye_idx = [p for p in EYE_POINTS if p < n_pts and p not in mouth_idx]
        static_idx = [p for p in STATIC_POINTS if p < n_pts and p not in mouth_idx and p not in eye_idx]
        self.index = mouth_idx + eye_idx + static_idx
        hair_xy, hair_z = hair_points(pts, depth, float(self.head.pivot[2]), mask_at)
        inside = (hair_xy[:, 0] > rx0 + 3) & (hair_xy[:, 0] < rx1 - 4) & (hair_xy[:, 1] > ry0 + 3) & (hair_xy[:, 1] < ry1 - 4)
        hair_xy, hair_z = hair_xy[inside], hair_z[inside]
        self.controls = np.vstack([pts[self.index], hair_xy]).astype(np.float32)
        self.control_depth = np.concatenate([depth[self.index], hair_z]).astype(np.float32)
        self.n_landmark_controls = len(self.index)
        rows = {p: i for i, p in enumerate(self.index)}
        self.mouth_rows = np.array([rows[p] for p in mouth_idx], np.int64)
        self.eye_rows = np.array([rows[p] for p in eye_idx], np.int64)
        self.inner_upper_rows = np.array([rows[p] for p in INNER_UPPER], np.int64)
        self.inner_lower_rows = np.array([rows[p] for p in INNER_LOWER], np.int64)
        self.mouth_weights = self.lips.weights(mouth_idx)
        self.eye_weights = self.eyes.weights(eye_idx)
        self.skull_z = depth[SKULL_POINTS]
        self.skull_affine = self.head.affine_fit(pts[SKULL_POINTS])
        # Still background: pinned points just outside the person, a plate behind the outline
        region_rgb = self.image[ry0:ry1, rx0:rx1]
        self.background = None
        pinned = np.zeros((0, 2), np.float32)
        if mask is not None:
            background = StillBackground(region_rgb, mask, s, band_width=0.065 * s, still_below=neck_y - ry0,
                                         moving=self.controls - np.float32([rx0, ry0]))
            if background.ok:
                self.background = background
                pinned = background.pinned_local + np.float32([rx0, ry0])
                # hold the neck and shoulders: a row of still points well below the chin
                if neck_y < ry1 - 4:
                    xs = np.arange(rx0 + 4, rx1 - 4, max(6, int(0.15 * s)), dtype=np.float32)
                    row = np.column_stack([xs, np.full_like(xs, neck_y)])
                    pinned = np.vstack([pinned, row])
        if len(pinned):
            nearest = np.min(np.linalg.norm(pinned[:, None, :] - self.controls[None, :, :], axis=2), axis=1)
            pinned = pinned[nearest > 0.07 * s]
        # Fields: the main one without the lower lip; an overlay for the lower lip and jaw (below the line
        # between the lips), and finer copies of the main field over the eyes and the lips
        n_moving = len(self.controls)
        lower_lip = set(INNER_LOWER + OUTER_LOWER + MID_LOWER)
        upper_lip = set(INNER_UPPER + OUTER_UPPER + MID_UPPER) - {61, 291, 78, 308}
        landmark_of_row = self.index + [-1] * (n_moving - len(self.index))
        main_rows = np.array([i for i, p in enumerate(landmark_of_row) if p not in lower_lip])
        # The warp moves lips, never teeth: in its source the inside of the mouth is filled with the lips'
        # own colours, so no sliver of the photo's teeth can be dragged along by a moving lip
        self.warp_source = _without_mouth_inside(self.image, pts, s)
        # the main field is smooth (head, jaw, cheeks): a coarse grid, finer ones where lips and eyes move
        self.warp = FaceWarp(self.warp_source, self.controls, self.region, pinned=pinned, main_rows=main_rows,
                             grid_step=max(8, int(round(0.12 * s))), main_newton_steps=1)
        if self.background is not None:
            self.warp.hold_still(self.background.far)
        m = pts[LIP_POINTS]
        lip_step = max(3, int(round(0.045 * s)))
        self.warp.add_overlay("lips", main_rows, (m[:, 0].min() - 0.15 * s, m[:, 1].min() - 0.15 * s,
                                                  m[:, 0].max() + 0.15 * s, m[:, 1].max() + 0.12 * s),
                              grid_step=lip_step, feather=0.2)
        lower_rows = np.array([i for i, p in enumerate(landmark_of_row) if p >= 0 and p not in upper_lip])
        self.mouth_box = self.warp.add_overlay(
            "mouth", lower_rows, (pts[[61, 291], 0].min() - 0.45 * s, m[:, 1].min() - 0.06 * s,
                                  pts[[61, 291], 0].max() + 0.45 * s, pts[152, 1] + 0.3 * s), grid_step=lip_step)
        # the jaw's outline from one jaw corner to the other, under the chin
        self.jaw_line_rows = np.array([rows[p] for p in (58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379,
                                                         365, 397, 288) if p in rows], np.int64)
        eye_corner_rows = {p: rows[p] for p in (33, 133, 263, 362)}
        self.blink_anchor_rows = [np.array([eye_corner_rows[33], eye_corner_rows[133]]),
                                  np.array([eye_corner_rows[263], eye_corner_rows[362]])]
        # controls near the region's edge (a face at the photo's border) move less: no fold against the edge
        edge_dist = np.minimum.reduce([self.controls[:, 0] - rx0, rx1 - 1 - self.controls[:, 0],
                                       self.controls[:, 1] - ry0, ry1 - 1 - self.controls[:, 1]])
        self.room = _smooth01(edge_dist / (0.15 * s)).astype(np.float32)
        # where every landmark goes, from the control displacements (one small product per frame)
        # (each landmark through the field that moves it: the lower lip and jaw through the lower one)
        self.point_matrix = np.zeros((len(pts), self.warp.n_moving), np.float32)
        main = self.warp.main
        self.point_matrix[:, main.rows] = main.spline.matrix(pts)[:, : len(main.rows)]
        if self.mouth_box is not None:
            lower = self.warp.overlays["mouth"]
            below = np.array([p for p in range(len(pts)) if p in lower_lip or p in set(JAW_POINTS)
                              or pts[p, 1] > pts[[61, 291], 1].mean() + 0.1 * s])
            self.point_matrix[below] = 0.0
            self.point_matrix[np.ix_(below, lower.rows)] = lower.spline.matrix(pts[below])[:, : len(lower.rows)]
        gray = cv2.cvtColor(self.image, cv2.COLOR_RGB2GRAY)
        fx0, fy0 = max(int(x0), 0), max(int(y0), 0)
        face_gray = gray[fy0:max(int(y1), fy0 + 1), fx0:max(int(x1), fx0 + 1)]
        self.blur = analysis.blur_sigma(face_gray)
        self.noise = analysis.noise_sigma(face_gray)
        self.colours = analysis.face_colours(self.image, pts)
        self.interior = MouthInterior(self.image, pts, s, self.colours, self.blur, self.noise, seed=seed)

    @property
    def rest_gap(self) -> float:
        """The photo's own inner-lip gap at the middle, in eye distances."""
        return self.lips.rest_gap / self.s

    @property
    def shows_teeth(self) -> bool:
        return self.interior.photo_teeth

    def displacement(self, pose: FramePose) -> np.ndarray:
        """(n moving controls, 2) pixel displacements for ``pose``."""
        local = np.zeros((self.warp.n_moving, 2), np.float32)
        local[self.mouth_rows] = self.lips.displacement(self.mouth_weights, pose.mouth)
        if len(self.eye_rows):
            local[self.eye_rows] = self.eyes.displacement(self.eye_weights, pose.brow)
        moved = self.head.move(self.controls + local, self.control_depth, pose.head)
        return (moved - self.controls) * self.room[:, None]

    def render(self, pose: FramePose | None = None) -> np.ndarray:
        return self.render_posed(pose).image

    def render_posed(self, pose: FramePose | None = None) -> PosedFrame:
        """The whole frame with the face posed as asked, and every landmark's position in it."""
        with cpu.single_thread_kernels():  # per-frame work is small: extra threads only fight for the cores
            return self._render_posed(pose or FramePose())

    def _render_posed(self, pose: FramePose) -> PosedFrame:
        import cv2

        d = self.displacement(pose)
        frame = self.image.copy()
        glance = pose.gaze is not None and bool(np.any(np.abs(pose.gaze) > 1e-4))
        if float(np.abs(d).max()) <= 0.02 and pose.blink <= 0.01 and not glance:  # the photo itself
            return PosedFrame(frame, self.pts.copy())
        rx0, ry0, rx1, ry1 = self.region
        moved = self.controls + d
        map_xy = self.warp.maps(d, self._overlay_weights(moved))
        self._neck_stays(map_xy, moved)
        if pose.blink > 0.01 or glance:
            self._eyes(map_xy, moved, pose.blink, pose.gaze if glance else None)
        region = cv2.remap(self.warp_source, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if self.background is not None:
            self.background.composite(region, map_xy, (rx0, ry0))
        frame[ry0:ry1, rx0:rx1] = region
        jaw_px, _, _ = self.lips.lip_split(pose.mouth)
        affine = self.skull_affine(self.skull_z, pose.head)
        self.interior.render(frame, moved[self.inner_upper_rows], moved[self.inner_lower_rows], affine,
                             jaw_px * 0.95, pose.mouth.tongue)
        points = self.pts + self.point_matrix @ d
        return PosedFrame(frame, points.astype(np.float32))

    def _eyes(self, map_xy: np.ndarray, moved: np.ndarray, closure: float, gaze: np.ndarray | None) -> None:
        """Compose each eye's lid slide and glance (defined on the photo) onto the map, in place."""
        import cv2

        rx0, ry0, rx1, ry1 = self.region
        for blink, anchors in zip(self.eyes.blinks, self.blink_anchor_rows):
            bx0, by0, bx1, by1 = blink.box
            # the output pixels whose source falls in this eye's box: the box moved as the eye corners moved
            shift = (moved[anchors] - self.controls[anchors]).mean(axis=0)
            pad = 3
            ox0, oy0 = max(int(bx0 + shift[0]) - pad, rx0), max(int(by0 + shift[1]) - pad, ry0)
            ox1, oy1 = min(int(bx1 + shift[0]) + pad + 1, rx1), min(int(by1 + shift[1]) + pad + 1, ry1)
            if ox1 <= ox0 or oy1 <= oy0:
                continue
            sub_x = map_xy[oy0 - ry0: oy1 - ry0, ox0 - rx0: ox1 - rx0, 0]
            sub_y = map_xy[oy0 - ry0: oy1 - ry0, ox0 - rx0: ox1 - rx0, 1]
            if closure > 0.01:  # first the lid: where it covers the eye, the lid's own skin shows
                sub_y += cv2.remap(blink.field(closure), sub_x - bx0, sub_y - by0, cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if gaze is not None:  # then the glance moves what is seen of the eye itself
                g = cv2.remap(blink.gaze_field(gaze), sub_x - bx0, sub_y - by0, cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                sub_x += g[..., 0]
                sub_y += g[..., 1]

    def _neck_stays(self, map_xy: np.ndarray, moved: np.ndarray) -> None:
        """Below the jaw's outline the neck does not move: the chin slides over it, in place."""
        rx0, ry0, rx1, ry1 = self.region
        line = moved[self.jaw_line_rows]
        x0, x1 = int(max(line[:, 0].min(), rx0)), int(min(line[:, 0].max() + 1, rx1))
        y0 = int(max(line[:, 1].min() - 2, ry0))
        y1 = int(min(line[:, 1].max() + 0.35 * self.s, ry1))
        if x1 - x0 < 3 or y1 - y0 < 3:
            return
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        edge = curve_y(xs, line)
        # fade out toward the jaw's corners (under the ears), where head and neck meet more gently
        ends = _smooth01(np.minimum(xs - line[:, 0].min(), line[:, 0].max() - xs) / (0.25 * self.s))
        weight = (_smooth01((ys - edge[None, :]) / 2.0 + 0.5) * ends[None, :]).astype(np.float32)
        box = map_xy[y0 - ry0: y1 - ry0, x0 - rx0: x1 - rx0]
        back = self.warp.base_xy[y0 - ry0: y1 - ry0, x0 - rx0: x1 - rx0] - box
        back *= weight[..., None]
        box += back

    def _overlay_weights(self, moved: np.ndarray) -> dict[str, np.ndarray]:
        """Where the lower-lip overlay shows in this frame: below the line between the lips; soft beyond
        the mouth's corners so the fields meet without a seam."""
        weights = {}
        upper, lower = moved[self.inner_upper_rows], moved[self.inner_lower_rows]
        if self.mouth_box is not None:
            bx0, by0, bx1, by1 = self.mouth_box
            xs = np.arange(bx0, bx1, dtype=np.float32)
            ys = np.arange(by0, by1, dtype=np.float32)[:, None]
            corners = upper[[0, -1]]
            left, right = corners[:, 0].min(), corners[:, 0].max()
            split = (curve_y(xs, upper) + curve_y(xs, np.vstack([lower, corners]))) / 2
            # beyond the corners the line runs on at the corners' height, and the overlay fades out
            corner_y = np.where(xs < left, corners[np.argmin(corners[:, 0]), 1], corners[np.argmax(corners[:, 0]), 1])
            outside = (xs < left) | (xs > right)
            split = np.where(outside, corner_y, split)
            reach = np.clip(np.maximum(left - xs, xs - right) / (0.3 * self.s), 0, 1)
            fade_x = 1 - _smooth01(reach)
            fade_bottom = 1 - _smooth01((ys - (by1 - 0.12 * self.s)) / (0.12 * self.s))
            # a sharp switch: a soft one would mix one lip with what lies behind the other
            weights["mouth"] = (_smooth01((ys - split[None, :]) / 0.8 + 0.5) * fade_x[None, :] * fade_bottom).astype(np.float32)
        return weights


def _without_mouth_inside(image: np.ndarray, pts: np.ndarray, eye_distance: float) -> np.ndarray:
    """The photo with the region between the inner lips painted over from the lips around it."""
    out = image.copy()
    _fill_from_around(out, np.vstack([pts[INNER_UPPER], pts[INNER_LOWER][::-1]]), eye_distance, image)
    return out


def _fill_from_around(out: np.ndarray, polygon: np.ndarray, eye_distance: float, image: np.ndarray) -> None:
    """Paint ``polygon`` (and a pixel around it) over from its surroundings (``cv2.inpaint``), in place."""
    import cv2

    pad = int(0.1 * eye_distance) + 4
    h, w = image.shape[:2]
    x0, y0 = np.maximum(np.floor(polygon.min(axis=0)).astype(int) - pad, 0)
    x1, y1 = np.minimum(np.ceil(polygon.max(axis=0)).astype(int) + pad, (w, h))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
    mask = cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
    out[y0:y1, x0:x1] = cv2.inpaint(np.ascontiguousarray(out[y0:y1, x0:x1]), mask, 3, cv2.INPAINT_TELEA)


def _smooth01(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)
