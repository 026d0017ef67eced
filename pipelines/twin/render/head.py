"""The head's own motion: a small 3D turn (yaw, pitch, roll) of the landmarks with their depth, and
a still background behind it.

``HeadTurn`` rotates points (x, y, depth) about a pivot at the top of the neck, behind the face, and
projects them back with a weak perspective: the nose swings further than the cheeks and the face's
outline, which is what makes a 2D warp read as a head turning rather than a picture sliding.

``StillBackground`` uses the person mask: hair points ride with the head, points just outside the
person's outline are pinned, and along the outline the frame is re-composited from the moved person
(premultiplied by its mask) over a background plate whose hidden part is filled in from its
surroundings (``cv2.inpaint``), so what the head uncovers is background, not smeared hair.
"""
from __future__ import annotations

import numpy as np

from ...face import landmarks as fl


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """3x3 rotation for x right, y down, z away from the camera; positive pitch nods the chin down."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return (r_roll @ r_pitch @ r_yaw).astype(np.float32)


class HeadTurn:
    """2.5D head motion from landmark depth: ``move(xy, z, pose)`` gives where points go."""

    def __init__(self, pts: np.ndarray, depth: np.ndarray, eye_distance: float):
        s = self.s = float(eye_distance)
        sides = pts[[234, 454]]
        self.pivot = np.float32([sides[:, 0].mean(), sides[:, 1].mean() + 0.35 * s,
                                 float(depth[[234, 454]].mean()) + 0.3 * s])
        self.focal = 12.0 * s  # weak perspective: a camera about an arm's length away

    def move(self, xy: np.ndarray, z: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """``pose`` = (yaw, pitch, roll, dx, dy), angles in radians, shifts in eye distances."""
        yaw, pitch, roll, dx, dy = (float(v) for v in pose[:5])
        if not (yaw or pitch or roll or dx or dy):
            return xy.astype(np.float32)
        rel = np.column_stack([xy - self.pivot[:2], z - self.pivot[2]]).astype(np.float32)
        turned = rel @ rotation(yaw, pitch, roll).T
        scale = (self.focal + rel[:, 2]) / (self.focal + turned[:, 2])
        out = turned[:, :2] * scale[:, None] + self.pivot[:2] + np.float32([dx, dy]) * self.s
        return out.astype(np.float32)

    def affine(self, xy: np.ndarray, z: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """2x3 affine that best matches ``move`` on these points (for textures fixed to the skull)."""
        return self.affine_fit(xy)(z, pose)

    def affine_fit(self, xy: np.ndarray):
        """``affine`` for points fixed once: the least-squares solve is done here, a frame costs one product."""
        fit = np.linalg.pinv(np.column_stack([xy, np.ones(len(xy))]).astype(np.float64))  # (3, n)

        def affine(z: np.ndarray, pose: np.ndarray) -> np.ndarray:
            return (fit @ self.move(xy, z, pose).astype(np.float64)).T.astype(np.float32)

        return affine


def hair_points(pts: np.ndarray, depth: np.ndarray, pivot_z: float, mask_at) -> tuple[np.ndarray, np.ndarray]:
    """Points on the hair and the top of the head (scaled copies of the face outline above the jaw),
    kept where the person mask says "person"; with a depth that runs back toward the head's middle."""
    oval = np.array(fl.FACE_OVAL)
    center = pts[oval].mean(axis=0)
    jaw_y = pts[[58, 288]][:, 1].mean() if len(pts) > 288 else center[1]
    upper = oval[pts[oval][:, 1] < jaw_y]
    found_xy, found_z = [], []
    for scale, back in ((1.18, 0.6), (1.4, 0.9), (1.65, 1.0)):
        for p in upper:
            xy = center + (pts[p] - center) * scale
            if mask_at(xy) > 0.75:
                found_xy.append(xy)
                found_z.append(depth[p] + back * (pivot_z - depth[p]))
    if not found_xy:
        return np.zeros((0, 2), np.float32), np.zeros(0, np.float32)
    return np.array(found_xy, np.float32), np.array(found_z, np.float32)


class StillBackground:
    """Keeps the background still around a moving person inside the warped region.

    ``mask``: person probability over the region (float32, region-sized). ``pinned``: points just
    outside the person to hold still. ``composite(region_rgb, map_xy, origin)`` fixes the outline band.
    """

    def __init__(self, region_rgb: np.ndarray, mask: np.ndarray, eye_distance: float, band_width: float,
                 still_below: float | None = None, moving: np.ndarray | None = None):
        import cv2

        s = float(eye_distance)
        h, w = mask.shape
        m = np.clip((mask - 0.5) * 2.5 + 0.5, 0, 1).astype(np.float32)  # a firmer edge than the raw mask
        person = (m > 0.5).astype(np.uint8)
        self.ok = bool(0.02 < person.mean() < 0.995)
        if not self.ok:
            return
        outside = cv2.distanceTransform(1 - person, cv2.DIST_L2, 5)
        inside = cv2.distanceTransform(person, cv2.DIST_L2, 5)
        band = (outside <= band_width) & (inside <= band_width + 2)
        self.far = outside > band_width  # background clear of the outline: held still outright
        if still_below is not None:  # below the neck nothing moves: no band needed there
            band[max(int(still_below), 0):] = False
        if moving is not None and len(moving):  # only near the points that move (not along the shoulders)
            near = np.zeros((h, w), np.uint8)
            for x, y in np.round(moving).astype(int):
                cv2.circle(near, (int(x), int(y)), int(0.3 * s), 1, -1)
            band &= near.astype(bool)
        # pinned points: on the line band_width * 0.75 outside the person, every ~0.09 eye distances
        ring = (outside <= 0.75 * band_width).astype(np.uint8)
        contours, _ = cv2.findContours(ring, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        step = max(4, int(0.09 * s))
        pinned = []
        for contour in contours:
            c = contour.reshape(-1, 2)
            for x, y in c[::step]:
                if 3 <= x < w - 3 and 3 <= y < h - 3:
                    pinned.append((x, y))
        self.pinned_local = np.array(pinned, np.float32).reshape(-1, 2)
        # the plate: the person's outline band filled in from the background around it
        fill = ((m > 0.01) & (inside <= band_width + 3)).astype(np.uint8)
        small = 0.5 if max(h, w) > 300 else 1.0
        src = cv2.resize(region_rgb, None, fx=small, fy=small, interpolation=cv2.INTER_AREA) if small < 1 else region_rgb
        fill_small = cv2.resize(fill, (src.shape[1], src.shape[0]), interpolation=cv2.INTER_NEAREST) if small < 1 else fill
        fill_small = cv2.dilate(fill_small, np.ones((3, 3), np.uint8))
        filled = cv2.inpaint(np.ascontiguousarray(src), fill_small, 5, cv2.INPAINT_TELEA)
        if small < 1:
            filled = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
        # the plate differs from the photo only where the person clearly is: at the soft outline the
        # unmixed person (below) stays smooth
        plate = np.where((fill[..., None] > 0) & (m[..., None] > 0.5), filled, region_rgb).astype(np.float32)
        # the person premultiplied by its mask: person * m = photo - plate * (1 - m) (exact at rest)
        fore = region_rgb.astype(np.float32) - plate * (1 - m[..., None])
        self.source = np.dstack([fore, m]).astype(np.float32)
        self.band_index = np.flatnonzero(band.ravel())
        self.band_plate = plate.reshape(-1, 3)[self.band_index]

    def composite(self, warped: np.ndarray, map_xy: np.ndarray, origin: tuple[int, int]) -> None:
        """Re-do the outline band of ``warped`` (region-sized uint8 RGB, in place): moved person over plate.
        ``map_xy``: the region's sampling map in frame coordinates; ``origin``: the region's corner."""
        import cv2

        if not self.ok or not len(self.band_index):
            return
        n = len(self.band_index)
        cols = 1024  # cv2.remap takes maps narrower than 32767: lay the band's pixels out in rows
        rows = -(-n // cols)
        band_map = np.zeros((rows * cols, 2), np.float32)
        # both coordinates of a pixel in one 8-byte gather (much faster than gathering rows of two)
        band_map.view(np.uint64)[:n, 0] = np.ascontiguousarray(map_xy).view(np.uint64).reshape(-1)[self.band_index]
        band_map[:n] -= np.float32(origin)
        sampled = cv2.remap(self.source, band_map.reshape(rows, cols, 2), None, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE).reshape(-1, 4)[:n]
        out = sampled[:, :3] + self.band_plate * (1 - sampled[:, 3:4])
        flat = warped.reshape(-1, 3)
        flat[self.band_index] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
