"""The mouth: lip shapes (a pose -> how each landmark moves) and what shows between the lips.

``LipModel`` turns a mouth pose (jaw drop, lip gap, width, protrusion, upper-lip raise, smile relax)
into landmark displacements. The jaw rotates about the jaw joints, so with Face Mesh depth the chin
and lower lip drop fully while the jaw's sides near the ears barely move; the lips then add their own
motion on top (pressed together for m/b/p, tucked for f/v, rounded and narrowed for o/u, spread for i/e).

``MouthInterior`` paints the inside of the mouth for a frame, front to back: upper teeth (the photo's
own when it shows them, else a synthesised row matched to the photo's white balance, blur and grain),
lower teeth riding on the jaw, the tongue, and a cavity that darkens with depth; soft shadows under the
lips; anti-aliased edges. Textures are made once per photo; each frame costs a few small affine
resamplings on the mouth's bounding box.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...face import landmarks as fl

INNER_UPPER = fl.LIPS_INNER_UPPER  # 78 ... 308, corners included
INNER_LOWER = fl.LIPS_INNER_LOWER  # 95 ... 324
OUTER_UPPER = fl.LIPS_OUTER_UPPER  # 61 ... 291, corners included
OUTER_LOWER = fl.LIPS_OUTER_LOWER  # 146 ... 375
# The rows of points between the inner and outer lip lines, so the lips' bodies move as one piece
MID_UPPER = [184, 74, 73, 72, 11, 302, 303, 304, 408, 183, 42, 41, 38, 12, 268, 271, 272, 407]
MID_LOWER = [77, 90, 180, 85, 16, 315, 404, 320, 307, 96, 89, 179, 86, 15, 316, 403, 319, 325]
LIP_POINTS = sorted(set(INNER_UPPER + INNER_LOWER + OUTER_UPPER + OUTER_LOWER + MID_UPPER + MID_LOWER))
# Points of the lower face that the jaw carries (how much depends on their depth and height)
JAW_POINTS = sorted(set(fl.CHIN_AREA + [172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 58,
                                         182, 406, 106, 335, 204, 424, 194, 418, 32, 262, 140, 369, 171, 396,
                                         201, 421, 57, 287, 43, 273, 214, 434, 212, 432, 202, 422, 210, 430,
                                         169, 394, 135, 364, 138, 367]))
MOUTH_PAIRS = fl.INNER_LIP_PAIRS  # the pairs the opening is measured on


_T = np.linspace(0, 1, 6, endpoint=False)[None, :, None]
_CR = (lambda t: (-0.5 * t ** 3 + t ** 2 - 0.5 * t, 1.5 * t ** 3 - 2.5 * t ** 2 + 1,
                  -1.5 * t ** 3 + 2 * t ** 2 + 0.5 * t, 0.5 * t ** 3 - 0.5 * t ** 2))(_T)


def _interp_curve(xs: np.ndarray, points: np.ndarray) -> np.ndarray:
    """y of a lip line at ``xs``: a Catmull-Rom curve through the points (no polygon corners)."""
    order = np.argsort(points[:, 0], kind="stable")
    p = points[order].astype(np.float32)
    if len(p) >= 3:
        ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
        k = len(ext) - 3  # segments
        dense = (_CR[0] * ext[:k, None] + _CR[1] * ext[1:k + 1, None] + _CR[2] * ext[2:k + 2, None]
                 + _CR[3] * ext[3:k + 3, None]).reshape(-1, 2)
        p = np.vstack([dense, p[-1:]])
        p = p[np.argsort(p[:, 0], kind="stable")]
    return np.interp(xs, p[:, 0], p[:, 1]).astype(np.float32)


curve_y = _interp_curve


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class MouthPose:
    """One frame's mouth, in eye distances (see ``pipelines.twin.driving.Viseme``)."""

    jaw: float = 0.0
    gap: float | None = None  # None: the photo's own gap
    width: float = 0.0
    pucker: float = 0.0
    upper: float = 0.0
    tongue: float = 0.0
    relax: float = 0.0  # 0..1: how much of the photo's smile is let go


class LipModel:
    """Per-photo geometry that maps a ``MouthPose`` to displacements of landmark points."""

    def __init__(self, pts: np.ndarray, depth: np.ndarray, eye_distance: float):
        self.pts, self.depth, self.s = pts, depth, float(eye_distance)
        s = self.s
        left, right = pts[61], pts[291]
        self.center = np.float32([(left[0] + right[0]) / 2, pts[[13, 14]][:, 1].mean()])
        self.half_width = max(abs(right[0] - left[0]) / 2, 1.0)
        self.rest_gap = float(np.mean([pts[lo, 1] - pts[up, 1] for up, lo in MOUTH_PAIRS]))
        # how much the photo smiles: corners above the lips' middle line, in eye distances
        middle_y = (pts[0, 1] + pts[17, 1]) / 2
        self.smile = float(np.clip((middle_y - (left[1] + right[1]) / 2) / s, 0.0, 0.25))
        # jaw: rotation about the jaw joints (in front of the ears); a point drops in proportion to how far
        # in front of the joints it is (Face Mesh depth), and only if it sits on the lower jaw
        joint_z = float(depth[[234, 454]].mean()) + 0.1 * s
        chin_lever = max(joint_z - float(depth[14]), 0.2 * s)
        self._joint_z, self._chin_lever = joint_z, chin_lever

    # -- per-point weights, computed once for a list of landmark indices
    def weights(self, index: list[int]) -> dict[str, np.ndarray]:
        pts, s = self.pts[index], self.s
        u = np.clip((pts[:, 0] - self.center[0]) / self.half_width, -1.3, 1.3)
        upper_in = _interp_curve(pts[:, 0], self.pts[INNER_UPPER])
        upper_out = _interp_curve(pts[:, 0], self.pts[OUTER_UPPER])
        lower_in = _interp_curve(pts[:, 0], self.pts[INNER_LOWER + [78, 308]])
        lower_out = _interp_curve(pts[:, 0], self.pts[OUTER_LOWER + [61, 291]])
        is_upper = np.isin(index, INNER_UPPER + OUTER_UPPER + MID_UPPER) & ~np.isin(index, [61, 291, 78, 308])
        is_lower = np.isin(index, INNER_LOWER + OUTER_LOWER + MID_LOWER)
        # f: 0 on the inner lip line, 1 on the outer one
        f_up = np.clip((upper_in - pts[:, 1]) / np.maximum(upper_in - upper_out, 1.0), 0, 1)
        f_low = np.clip((pts[:, 1] - lower_in) / np.maximum(lower_out - lower_in, 1.0), 0, 1)
        lip = is_upper | is_lower | np.isin(index, [61, 291, 78, 308])
        # on the lower jaw: below a line through the mouth corners that rises toward the ears
        side = np.maximum(np.abs(pts[:, 0] - self.center[0]) - self.half_width, 0)
        line_y = (self.pts[61, 1] + self.pts[291, 1]) / 2 - 0.55 * side
        on_jaw = _smoothstep((pts[:, 1] - line_y) / (0.1 * s) + 0.35)
        profile = np.clip(1 - np.abs(u) ** 2, 0, 1) ** 0.9  # a lens: the lips part most in the middle
        on_jaw[is_upper] = 0.0
        corners = np.isin(index, [61, 291, 78, 308])
        on_jaw[corners] = 0.3
        # the lower lip rides on the jaw, less toward the corners (they hinge on the upper lip)
        on_jaw[is_lower] = 0.3 + 0.7 * np.clip(1 - np.abs(u[is_lower]) ** 2, 0, 1)
        lever = np.clip((self._joint_z - self.depth[index]) / self._chin_lever, 0.0, 1.25)
        lever[lip] = np.clip(lever[lip], 0.9, 1.1)  # the lips ride on the incisors' arc
        f_corner = np.where(np.isin(index, [78, 308]), 0.0, 1.0).astype(np.float32)  # inner vs outer corners
        return {"u": u.astype(np.float32), "upper": is_upper, "lower": is_lower, "lip": lip, "f_corner": f_corner,
                "rest_gap": np.clip(lower_in - upper_in, 0, None).astype(np.float32),
                "lower_jaw": (0.3 + 0.7 * np.clip(1 - u ** 2, 0, 1)).astype(np.float32),
                "f_up": f_up.astype(np.float32), "f_low": f_low.astype(np.float32),
                "jaw": (on_jaw * lever).astype(np.float32), "profile": profile.astype(np.float32),
                "dx": (pts[:, 0] - self.center[0]).astype(np.float32), "corner_w": np.clip(np.abs(u), 0, 1) ** 2}

    def lip_split(self, pose: MouthPose) -> tuple[float, float, float]:
        """(jaw drop, upper lip dy, lower lip's own dy) in pixels at the mouth's middle for ``pose``."""
        s = self.s
        jaw = max(pose.jaw, 0.0) * s
        upper_dy = -max(pose.upper, 0.0) * s
        target = self.rest_gap if pose.gap is None else max(pose.gap, 0.0) * s
        deficit = target - (self.rest_gap + jaw - upper_dy)
        if deficit >= 0:  # open more than the jaw does: both lips part
            upper_dy -= 0.3 * deficit
            lower_own = 0.7 * deficit
        else:  # close more (m, b, p, f, v; a smiling photo's parted lips): the lower lip rises most
            upper_dy += 0.35 * -deficit
            lower_own = -0.65 * -deficit
        return jaw, upper_dy, lower_own

    def displacement(self, w: dict[str, np.ndarray], pose: MouthPose) -> np.ndarray:
        """(len(points), 2) pixel displacements for points whose ``weights`` are ``w``."""
        s = self.s
        jaw, upper_dy, lower_own = self.lip_split(pose)
        prof = w["profile"]
        pucker = float(np.clip(pose.pucker, 0, 1))
        d = np.zeros((len(prof), 2), np.float32)
        d[:, 1] = jaw * w["jaw"]
        up, lo = w["upper"], w["lower"]
        # vertical: the middle of each lip moves most; the outer line follows the inner one less;
        # protruded lips look fuller (outer lines move apart)
        d[up, 1] += prof[up] * (upper_dy * (1 - 0.25 * w["f_up"][up]) - pucker * 0.02 * s * w["f_up"][up])
        d[lo, 1] += prof[lo] * (lower_own * (1 - 0.2 * w["f_low"][lo]) + pucker * 0.02 * s * w["f_low"][lo])
        # rounding: the lips close in from the corners, so the opening becomes a small round hole; each
        # lip point near a corner moves toward where the two lips meet (no lip slides over another)
        rounding = float(np.clip(max(-pose.width / 0.2, pucker), 0, 1))
        if rounding > 0:
            u_abs = np.abs(w["u"])
            start = 1 - 0.9 * rounding
            closing = rounding * _smoothstep((u_abs - start) / max(1 - start, 1e-3) * 1.4)
            gap_here = w["rest_gap"] + jaw * w["lower_jaw"] + prof * (lower_own - upper_dy)
            half = 0.5 * closing * np.clip(gap_here, 0, None)
            d[up, 1] += half[up] * (1 - 0.4 * w["f_up"][up])
            d[lo, 1] -= half[lo] * (1 - 0.4 * w["f_low"][lo])
        # horizontal: spread or narrow, the opening (inner line) a little more than the outer line
        width_out = pose.width - 0.25 * max(pose.jaw, 0.0)
        width_in = width_out + 0.25 * min(pose.width, 0.0) - 0.05 * pucker
        f = np.where(up, w["f_up"], np.where(lo, w["f_low"], w["f_corner"]))
        lip = w["lip"]
        d[lip, 0] += w["dx"][lip] * (width_in * (1 - f[lip]) + width_out * f[lip])
        # spread lips pull the corners up a little; a relaxed smile lets them down and in
        cw = w["corner_w"]
        d[lip, 1] -= max(pose.width, 0.0) * 0.12 * s * cw[lip]
        relax = float(np.clip(pose.relax, 0, 1))
        if relax and self.smile > 0:
            d[lip, 1] += relax * 0.55 * self.smile * s * cw[lip]
            d[lip, 0] -= relax * 0.12 * self.smile * s * np.sign(w["u"][lip]) * cw[lip]
        return d


# ---------------------------------------------------------------- the inside of the mouth


@dataclass
class _Layer:
    rgb: np.ndarray  # float32 H x W x 3
    alpha: np.ndarray  # float32 H x W
    _rgba: np.ndarray | None = None  # both packed for one resampling per frame


class MouthInterior:
    """Paints the mouth's inside between the inner lip lines of a frame. Textures are in "rest"
    coordinates (the photo's own pixels around the mouth), moved per frame by the head's affine
    transform (and, for the lower teeth and tongue, the jaw's drop)."""

    def __init__(self, image: np.ndarray, pts: np.ndarray, eye_distance: float, colours, blur: float,
                 noise: float, seed: int = 0):
        s = self.s = float(eye_distance)
        self.blur, self.noise = float(blur), float(noise)
        h, w = image.shape[:2]
        corners = pts[[78, 308, 61, 291]]
        x0 = int(np.floor(corners[:, 0].min() - 0.12 * s))
        x1 = int(np.ceil(corners[:, 0].max() + 0.12 * s))
        y0 = int(np.floor(pts[INNER_UPPER][:, 1].min() - 0.14 * s))
        y1 = int(np.ceil(pts[INNER_LOWER][:, 1].max() + 0.4 * s))
        self.origin = np.float32([x0, y0])
        self.size = (x1 - x0, y1 - y0)
        self.center_x = float(pts[[13, 14]][:, 0].mean())
        xs = np.arange(x0, x1, dtype=np.float32)
        self.upper_rest = _interp_curve(xs, pts[INNER_UPPER])
        self.lower_rest = _interp_curve(xs, pts[INNER_LOWER + [78, 308]])
        self.left_x, self.right_x = float(pts[78, 0]), float(pts[308, 0])
        self.photo_teeth = colours.teeth is not None
        self.lip_rgb = colours.lips.astype(np.float32)
        teeth_rgb = colours.teeth if colours.teeth is not None else self._teeth_colour(colours)
        self.teeth_rgb = np.asarray(teeth_rgb, np.float32)
        rng = np.random.default_rng(seed)
        if self.photo_teeth:
            self.upper = self._photo_upper_teeth(image, xs)
            lower_top = self.lower_rest - 0.03 * s  # lower incisors' tips just behind the photo's lower lip
        else:
            edge = self.upper_rest + 0.04 * s * (1 - 0.45 * self._u(xs) ** 2)
            self.upper = self._synth_teeth(xs, edge, upper=True)
            lower_top = edge - 0.016 * s
        self.lower = self._synth_teeth(xs, lower_top, upper=False)
        self.tongue = self._tongue(xs, lower_top)
        self.back_rgb = self.lip_rgb * np.float32([0.26, 0.14, 0.14])  # deep in the mouth
        self.edge_rgb = self.lip_rgb * np.float32([0.62, 0.45, 0.45])  # the wet inner lips in shade
        self.grain = rng.normal(0.0, 1.0, (self.size[1], self.size[0])).astype(np.float32)
        if self.blur > 0.6:
            import cv2

            self.grain = cv2.GaussianBlur(self.grain, (0, 0), 0.5 * self.blur)
            self.grain /= max(float(self.grain.std()), 1e-3)

    # -- photo facts
    def _u(self, xs: np.ndarray) -> np.ndarray:
        half = max((self.right_x - self.left_x) / 2, 1.0)
        return np.clip((xs - self.center_x) / half, -1.6, 1.6)

    @staticmethod
    def _teeth_colour(colours) -> np.ndarray:
        """Teeth under the photo's light: the sclera's colour, a touch warmer and darker."""
        sclera = colours.sclera.astype(np.float32)
        neutral = 0.65 * sclera + 0.35 * sclera.mean()  # less of the sclera's warm cast
        return np.clip(neutral * np.float32([0.98, 0.97, 0.94]), 0, 255)

    def _finish(self, rgb: np.ndarray, alpha: np.ndarray, supersample: int) -> _Layer:
        """Downsample a supersampled layer (anti-aliasing), then match the photo's blur."""
        import cv2

        if supersample > 1:
            size = (rgb.shape[1] // supersample, rgb.shape[0] // supersample)
            premul = cv2.resize(rgb * alpha[..., None], size, interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
            rgb = premul / np.maximum(alpha[..., None], 1e-4)
        if self.blur > 0.5:
            sigma = float(np.sqrt(max(self.blur ** 2 - 0.25, 0.01)))
            premul = cv2.GaussianBlur(rgb * alpha[..., None], (0, 0), sigma)
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)
            rgb = premul / np.maximum(alpha[..., None], 1e-4)
        return _Layer(np.clip(rgb, 0, 255).astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32))

    def _photo_upper_teeth(self, image: np.ndarray, xs: np.ndarray) -> _Layer:
        """The photo's own teeth, extended above the upper lip (mirrored, in shadow) for when it rises."""
        w, h = self.size
        x0, y0 = self.origin.astype(int)
        H, W = image.shape[:2]
        patch = np.zeros((h, w, 3), np.float32)
        sy0, sy1, sx0, sx1 = max(y0, 0), min(y0 + h, H), max(x0, 0), min(x0 + w, W)
        patch[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = image[sy0:sy1, sx0:sx1]
        rows = np.arange(h, dtype=np.float32)[:, None] + y0
        top, bottom = self.upper_rest[None, :].copy(), self.lower_rest[None, :].copy()
        # columns outside the corners: copies of the last column inside, darker (the cheeks' shadow)
        inside_cols = (xs >= self.left_x + 1) & (xs <= self.right_x - 1)
        if inside_cols.any():
            first, last = np.flatnonzero(inside_cols)[[0, -1]]
            for j in range(w):
                if not inside_cols[j]:
                    src = first if j < first else last
                    patch[:, j] = patch[:, src] * 0.55
                    top[0, j], bottom[0, j] = top[0, src], max(bottom[0, src], top[0, src] + 1)
        # above the upper lip line: the rows below it mirrored, fading into shadow
        k = np.clip(top - rows, 0, None)  # distance above the line
        src_rows = np.clip(np.round(top + k - y0).astype(int), 0, h - 1)
        mirrored = patch[src_rows, np.arange(w)[None, :]]
        above = rows < top
        fade = np.exp(-k / (0.05 * self.s))[..., None]
        patch = np.where(above[..., None], mirrored * (0.45 + 0.55 * fade), patch)
        alpha = np.clip(bottom - rows + 0.5, 0, 1)  # down to the photo's lower lip line
        return _Layer(patch, alpha.astype(np.float32))

    def _synth_teeth(self, xs: np.ndarray, edge: np.ndarray, upper: bool) -> _Layer:
        """A row of individual teeth: incisal edge at ``edge`` (upper) or top at ``edge`` (lower)."""
        k = 3  # supersampling for anti-aliased tooth outlines
        w, h = self.size
        s = self.s
        x0, y0 = self.origin
        X = x0 + (np.arange(w * k, dtype=np.float32) + 0.5) / k - 0.5
        Y = y0 + (np.arange(h * k, dtype=np.float32) + 0.5) / k - 0.5
        edge_x = np.interp(X, xs, edge)
        u = self._u(X)
        dist = np.abs(X - self.center_x) / s  # along the arch as seen from the front, in eye distances
        widths = (np.array([0.088, 0.066, 0.056, 0.042, 0.036, 0.03, 0.03]) if upper
                  else np.array([0.058, 0.056, 0.052, 0.042, 0.036, 0.03, 0.03]))
        bounds = np.concatenate([[0.0], np.cumsum(widths)])
        tooth = np.clip(np.searchsorted(bounds, dist, side="right") - 1, 0, len(widths) - 1)
        v = np.clip((dist - bounds[tooth]) / widths[tooth], 0, 1)  # 0..1 across the tooth
        width_px = widths[tooth] * s
        # rounded corners at the biting edge; canines come to a point
        corner = np.minimum(v, 1 - v)
        radius = 0.28
        rounding = np.where(corner < radius, 1 - np.sqrt(np.clip(1 - ((radius - corner) / radius) ** 2, 0, 1)), 0.0)
        lift = rounding * 0.22 * width_px
        cusp = np.where(tooth == 2, (1 - np.abs(2 * v - 1)) * 0.012 * s, 0.0)
        if upper:
            tip = edge_x - lift + cusp  # incisal edge (lowest y of the tooth)
            inside = _smoothstep((tip[None, :] - Y[:, None]) * k / 1.5 + 0.5)
            from_edge = (tip[None, :] - Y[:, None]) / s  # eye distances up from the edge
        else:
            tip = edge_x + lift - cusp
            inside = _smoothstep((Y[:, None] - tip[None, :]) * k / 1.5 + 0.5)
            from_edge = (Y[:, None] - tip[None, :]) / s
        # shading: a convex front (lighter in the middle of each tooth), darker further back along the arch,
        # dark gaps between teeth, a slightly translucent, greyer biting edge
        convex = 0.80 + 0.20 * np.sin(np.pi * v)
        depth_shade = 1 - 0.55 * np.clip(np.abs(u), 0, 1.4) ** 1.6
        gap_px = corner * width_px
        gaps = 1 - 0.32 * np.exp(-(gap_px / 0.55) ** 2)
        # no two teeth quite alike: a little brightness and length variation, the same on both sides
        variation = np.random.default_rng(7).uniform(-0.05, 0.05, len(widths))[tooth]
        shade = (convex * depth_shade * gaps * (1 + variation))[None, :] * np.ones_like(Y)[:, None]
        translucent = np.exp(-np.clip(from_edge, 0, None) / 0.012)
        base = self.teeth_rgb * (1.0 if upper else 0.95)
        edge_tint = base * np.float32([0.84, 0.84, 0.86])
        rgb = base[None, None, :] * (1 - 0.2 * translucent[..., None]) + edge_tint * 0.2 * translucent[..., None]
        rgb = rgb * shade[..., None]
        # gums beyond the crowns (only seen if a lip moves far)
        gum = _smoothstep((from_edge - 0.11) / 0.01)
        rgb = rgb * (1 - gum[..., None]) + (self.lip_rgb * 0.8)[None, None, :] * gum[..., None]
        return self._finish(rgb.astype(np.float32), inside.astype(np.float32), k)

    def _tongue(self, xs: np.ndarray, lower_top: np.ndarray) -> _Layer:
        """The tongue's back, low behind the lower teeth; darker deeper in, a faint middle groove."""
        w, h = self.size
        s = self.s
        x0, y0 = self.origin
        X = x0 + np.arange(w, dtype=np.float32)
        Y = y0 + np.arange(h, dtype=np.float32)
        top_c = float(np.interp(self.center_x, xs, lower_top)) - 0.05 * s  # the back rises well above the teeth
        half_w, half_h = 0.25 * s, 0.12 * s
        cy = top_c + half_h
        dx = (X[None, :] - self.center_x) / half_w
        dy = (Y[:, None] - cy) / half_h
        r = np.sqrt(dx ** 2 + dy ** 2)
        alpha = np.clip((1 - r) * half_h * 0.5 + 0.5, 0, 1)
        from_top = np.clip((Y[:, None] - top_c) / (2 * half_h), 0, 1)
        # lit toward the front (lower in the picture), in shadow at the back and the sides
        shade = (0.55 + 0.45 * _smoothstep(from_top * 4.0)) * (1 - 0.45 * np.abs(dx) ** 2.5)
        groove = 1 - 0.18 * np.exp(-(dx * half_w / (0.014 * s)) ** 2)
        colour = np.clip(self.lip_rgb * np.float32([1.02, 0.78, 0.80]) + np.float32([14, 0, 4]), 0, 255)
        rgb = colour[None, None, :] * (shade * groove)[..., None]
        return self._finish(rgb.astype(np.float32), alpha.astype(np.float32), 1)

    @staticmethod
    def _rgba(layer: _Layer) -> np.ndarray:
        if getattr(layer, "_rgba", None) is None:
            layer._rgba = np.ascontiguousarray(np.dstack([layer.rgb, layer.alpha]).astype(np.float32))
        return layer._rgba

    # -- per frame
    def render(self, frame: np.ndarray, upper: np.ndarray, lower: np.ndarray, affine: np.ndarray,
               jaw_px: float, tongue_up: float = 0.0) -> None:
        """Paint the inside of the mouth into ``frame`` (in place).

        ``upper``/``lower``: the frame's inner lip points (corners in ``upper``); ``affine``: 2x3 map
        from photo (rest) coordinates to the frame for things fixed to the skull; ``jaw_px``: how far
        the lower teeth and tongue have dropped, in photo pixels.
        """
        import cv2

        H, W = frame.shape[:2]
        pts = np.vstack([upper, lower])
        x0 = max(int(np.floor(pts[:, 0].min())) - 1, 0)
        x1 = min(int(np.ceil(pts[:, 0].max())) + 2, W)
        y0 = max(int(np.floor(pts[:, 1].min())) - 1, 0)
        y1 = min(int(np.ceil(pts[:, 1].max())) + 2, H)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        xs = np.arange(x0, x1, dtype=np.float32)
        ys = np.arange(y0, y1, dtype=np.float32)[:, None]
        corners = upper[[0, -1]]
        top = _interp_curve(xs, upper)
        bottom = _interp_curve(xs, np.vstack([lower, corners]))
        inside_x = (xs > corners[:, 0].min()) & (xs < corners[:, 0].max())
        bottom = np.where(inside_x, np.maximum(bottom, top), top)
        if float((bottom - top).max()) < 0.35:
            return
        feather = max(0.7, 0.6 * self.blur)
        alpha = _smoothstep((ys - top[None, :]) / (2 * feather) + 0.5) * _smoothstep((bottom[None, :] - ys) / (2 * feather) + 0.5)
        if float(alpha.max()) <= 0.01:
            return
        s = self.s
        # the cavity: lit near the lips, dark deeper in, darker toward the corners (the cheeks' shadow)
        depth = np.clip(np.minimum(ys - top[None, :], bottom[None, :] - ys), 0, None)
        mid_x = (corners[0, 0] + corners[1, 0]) / 2
        half = max(abs(corners[1, 0] - corners[0, 0]) / 2, 1.0)
        side = np.clip(np.abs(xs - mid_x) / half, 0, 1)[None, :]
        near = np.exp(-depth / (0.028 * s))[..., None]
        img = self.back_rgb + (self.edge_rgb - self.back_rgb) * near
        img = img * (1 - 0.45 * side[..., None] ** 3)
        # layers from the back: tongue, lower teeth (both on the jaw), upper teeth (on the skull)
        inv = cv2.invertAffineTransform(affine.astype(np.float64))
        to_rest = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        base = np.vstack([inv, [0, 0, 1]]) @ to_rest  # frame ROI pixel -> photo pixel
        size = (x1 - x0, y1 - y0)
        # soft shadows: under the upper lip (strong), above the lower lip (weak); the photo's own teeth
        # already carry the photo's shadows, so they are laid on after the shadow
        below_top = np.clip(ys - top[None, :], 0, None)
        above_bottom = np.clip(bottom[None, :] - ys, 0, None)
        shadow = (1 - 0.35 * np.exp(-below_top / (0.016 * s))) * (1 - 0.15 * np.exp(-above_bottom / (0.01 * s)))
        layers = ((self.tongue, jaw_px * 0.9 - tongue_up * 0.045 * s), (self.lower, jaw_px), (self.upper, 0.0))
        for n, (layer, drop) in enumerate(layers):
            if n == 2 and self.photo_teeth:
                img = img * shadow[..., None]
            m = base.copy()
            m[0, 2] -= self.origin[0]
            m[1, 2] -= self.origin[1] + drop
            rgba = self._rgba(layer)
            sampled = cv2.warpAffine(rgba, m[:2], size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            a = sampled[..., 3:4]
            img = img * (1 - a) + sampled[..., :3] * a
        if not self.photo_teeth:
            img = img * shadow[..., None]
        # light gets in through the opening: a mouth barely open is dark inside (a thin dark line where
        # the lips meet, not the teeth shining through)
        opening = float((bottom - top).max()) / (0.06 * s)
        img = img * (0.3 + 0.7 * float(_smoothstep(np.array(opening))))
        if self.noise > 0.3:
            gx0, gy0 = x0 - int(self.origin[0]), y0 - int(self.origin[1])
            grain = self.grain[max(gy0, 0): max(gy0, 0) + size[1], max(gx0, 0): max(gx0, 0) + size[0]]
            if grain.shape == alpha.shape:
                img = img + (self.noise * grain)[..., None]
        roi = frame[y0:y1, x0:x1].astype(np.float32)
        a = alpha[..., None]
        frame[y0:y1, x0:x1] = np.clip(roi * (1 - a) + img * a + 0.5, 0, 255).astype(np.uint8)
