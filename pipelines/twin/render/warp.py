"""Thin-plate-spline warping on coarse grids: control points move, everything between follows smoothly.

One spline cannot slide one body over another: where the lips meet or an eyelid closes over the eye,
a single smooth field squashes everything between. So a warp has a main field (the whole region) and
optional overlay fields for what lies below a moving edge: the lower lip and jaw below the line
between the lips, the eyeball below the upper lid's edge. Each field uses only the controls of its
own body, and the frame takes, per pixel, the field of the body that shows there.

Each field's matrix is solved once per photo; a frame costs two matrix-vector products per field,
three fixed-point steps to invert the field on its coarse grid, an upsample and one ``cv2.remap``.
"""
from __future__ import annotations

import math

import numpy as np


def _tps_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r^2 / 2 between every point of ``a`` and of ``b`` (squared distances by one product)."""
    r2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(r2, 1e-20, out=r2)
    return 0.5 * r2 * np.log(r2)


class ThinPlate:
    """A thin-plate spline through fixed control points, solved once; ``matrix(targets)`` then gives
    M with displacement at targets = M @ displacement at controls. Fields over the same controls share one."""

    def __init__(self, controls: np.ndarray, regularization: float = 1e-5):
        n = len(controls)
        self.scale = float(np.ptp(controls, axis=0).max()) or 1.0
        self.origin = controls.mean(axis=0)
        self.c = (controls - self.origin).astype(np.float64) / self.scale
        K = _tps_kernel(self.c, self.c) + regularization * np.eye(n)
        P = np.hstack([np.ones((n, 1)), self.c])
        L = np.zeros((n + 3, n + 3))
        L[:n, :n], L[:n, n:], L[n:, :n] = K, P, P.T
        self.solve = np.linalg.solve(L, np.vstack([np.eye(n), np.zeros((3, n))]))  # (n+3, n)

    def basis(self, targets: np.ndarray) -> np.ndarray:
        """(len(targets), n + 3): the spline's kernel and affine terms at the targets."""
        g = (targets - self.origin).astype(np.float64) / self.scale
        return np.hstack([_tps_kernel(g, self.c), np.ones((len(g), 1)), g])

    def matrix(self, targets: np.ndarray) -> np.ndarray:
        return (self.basis(targets) @ self.solve).astype(np.float32)


def tps_matrix(controls: np.ndarray, targets: np.ndarray, regularization: float = 1e-5) -> np.ndarray:
    """Matrix M (len(targets) x len(controls)): displacement at targets = M @ displacement at controls."""
    return ThinPlate(controls, regularization).matrix(targets)


def border_ring(region, per_side: int) -> np.ndarray:
    x0, y0, x1, y1 = region
    xs = np.linspace(x0, x1 - 1, per_side)
    ys = np.linspace(y0, y1 - 1, per_side)
    pts = [(x, y0) for x in xs] + [(x, y1 - 1) for x in xs] + [(x0, y) for y in ys[1:-1]] + [(x1 - 1, y) for y in ys[1:-1]]
    return np.array(pts, np.float32)


class Field:
    """A backward displacement field over a box, from a subset (``rows``) of the moving controls.

    ``fixed`` points never move. ``dense(d)`` gives, for every pixel of the box, how far back to
    sample from (the inverse of the forward spline), as (h, w, 2) float32.
    """

    def __init__(self, controls: np.ndarray, rows: np.ndarray, fixed: np.ndarray, box: tuple[int, int, int, int],
                 grid_step: int, spline: ThinPlate | None = None, newton_steps: int = 2):
        x0, y0, x1, y1 = box
        self.newton_steps = newton_steps
        self.box, self.rows = box, np.asarray(rows, np.int64)
        used = np.vstack([controls[self.rows], fixed]).astype(np.float32)
        self.spline = spline or ThinPlate(used)
        self.grid_w = max(2, math.ceil((x1 - x0) / grid_step) + 1)
        self.grid_h = max(2, math.ceil((y1 - y0) / grid_step) + 1)
        gx = np.linspace(x0, x1 - 1, self.grid_w, dtype=np.float32)
        gy = np.linspace(y0, y1 - 1, self.grid_h, dtype=np.float32)
        grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
        # per frame: coefficients = solve @ d (small), field = basis @ coefficients (one pass over the grid)
        self.basis = np.ascontiguousarray(self.spline.basis(grid), np.float32)
        self.coefficients = np.ascontiguousarray(self.spline.solve[:, : len(self.rows)], np.float32)  # fixed add 0
        self.size = (x1 - x0, y1 - y0)
        self._grid_scale = np.array([(self.grid_w - 1) / max(x1 - 1 - x0, 1), (self.grid_h - 1) / max(y1 - 1 - y0, 1)],
                                    np.float32)
        gy_i, gx_i = np.mgrid[0: self.grid_h, 0: self.grid_w].astype(np.float32)
        self._grid_x, self._grid_y = gx_i, gy_i

    def backward(self, displacement: np.ndarray) -> np.ndarray:
        """Coarse (grid_h, grid_w, 2) inverse field: b(x) with b(x) = d(x - b(x)), by Newton steps.

        Newton (with the forward field's Jacobian) converges where an eyelid or a lip stretches the
        skin twofold, which plain fixed-point steps do not; near a fold it is damped.
        """
        import cv2

        coef = self.coefficients @ displacement[self.rows]
        # two matrix-vector products: much faster than one (n, 2) matrix product with OpenBLAS here
        forward = np.stack([self.basis @ coef[:, 0], self.basis @ coef[:, 1]], -1).reshape(self.grid_h, self.grid_w, 2)
        forward = np.ascontiguousarray(forward, np.float32)
        # Jacobian of the forward field, per pixel (grid spacing taken out)
        jac = np.empty((self.grid_h, self.grid_w, 4), np.float32)  # (ux, vx, uy, vy)
        jac[..., :2] = np.gradient(forward, axis=1) * self._grid_scale[0]
        jac[..., 2:] = np.gradient(forward, axis=0) * self._grid_scale[1]
        back = forward.copy()
        for _ in range(self.newton_steps):
            sx = self._grid_x - back[..., 0] * self._grid_scale[0]
            sy = self._grid_y - back[..., 1] * self._grid_scale[1]
            f = cv2.remap(forward, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            j = cv2.remap(jac, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            # solve (I + J) step = b - d(x - b)
            r0, r1 = back[..., 0] - f[..., 0], back[..., 1] - f[..., 1]
            a, b_, c, e = 1 + j[..., 0], j[..., 2], j[..., 1], 1 + j[..., 3]
            det = a * e - b_ * c
            det = np.where(np.abs(det) < 0.25, np.where(det < 0, -0.25, 0.25), det)
            back = (back - np.stack([(e * r0 - b_ * r1) / det, (a * r1 - c * r0) / det], -1)).astype(np.float32)
        return back

    def dense(self, displacement: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.resize(self.backward(displacement), self.size, interpolation=cv2.INTER_LINEAR)


class FaceWarp:
    """Warps a rectangular region of an image so that control points move by given displacements.

    ``pinned`` points (and the region's border) never move, so the region pastes back without a seam
    and whatever lies beyond the pinned points (the background) stays put. ``main_rows`` picks the
    controls of the main field (all by default); ``add_overlay`` adds a field for a body below an edge.
    """

    def __init__(self, image: np.ndarray, controls: np.ndarray, region: tuple[int, int, int, int],
                 grid_step: int = 8, pinned: np.ndarray | None = None, main_rows: np.ndarray | None = None,
                 main_newton_steps: int = 2):
        x0, y0, x1, y1 = region
        self.image, self.region = image, region
        fixed = [border_ring(region, per_side=10)]
        if pinned is not None and len(pinned):
            fixed.append(np.asarray(pinned, np.float32).reshape(-1, 2))
        self.fixed = np.vstack(fixed).astype(np.float32)
        self.controls = np.vstack([controls, self.fixed]).astype(np.float32)  # moving first, then fixed
        self.n_moving = len(controls)
        rows = np.arange(self.n_moving) if main_rows is None else np.asarray(main_rows)
        self.main = Field(controls, rows, self.fixed, region, grid_step, newton_steps=main_newton_steps)
        self.overlays: dict[str, Field] = {}
        self.size = (x1 - x0, y1 - y0)
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        self.base_xy = np.dstack([xs, ys])
        # motion fades to nothing over the last few pixels of the region: it pastes back exactly
        ramp = lambda n: np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / 4.0, 0, 1)  # noqa: E731
        self._set_damp((ramp(y1 - y0)[:, None] * ramp(x1 - x0)[None, :]).astype(np.float32))

    def _set_damp(self, damp: np.ndarray) -> None:
        self.damp = damp
        self.damp_xy = np.ascontiguousarray(np.repeat(damp[..., None], 2, axis=2))  # both channels: one product

    def hold_still(self, still: np.ndarray) -> None:
        """Mark region pixels (a bool mask, region-sized) that never move, such as the background."""
        self._set_damp(np.where(still, 0.0, self.damp).astype(np.float32))

    def add_overlay(self, name: str, rows: np.ndarray, box: tuple[int, int, int, int], grid_step: int,
                    anchors: np.ndarray | None = None, feather: float | None = None) -> tuple[int, int, int, int] | None:
        """A field for one body, used where the caller's weight says so (or everywhere in its box, fading
        out over ``feather`` of the box's size at its edges). The box is clipped to the region."""
        x0, y0, x1, y1 = self.region
        bx0, by0, bx1, by1 = (int(v) for v in box)
        bx0, by0, bx1, by1 = max(bx0, x0), max(by0, y0), min(bx1, x1), min(by1, y1)
        if bx1 - bx0 < 4 or by1 - by0 < 4:
            return None
        rows = np.asarray(rows, np.int64)
        same = anchors is None and np.array_equal(rows, self.main.rows)
        fixed = self.fixed if anchors is None else np.vstack([self.fixed, anchors]).astype(np.float32)
        field = Field(self.controls[: self.n_moving], rows, fixed, (bx0, by0, bx1, by1), grid_step,
                      spline=self.main.spline if same else None)
        field.weight = None
        if feather:
            def ramp(n: int) -> np.ndarray:
                t = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5) / max(feather * n, 1.0)
                t = np.clip(t, 0, 1)
                return (t * t * (3 - 2 * t)).astype(np.float32)

            field.weight = ramp(by1 - by0)[:, None] * ramp(bx1 - bx0)[None, :]
        self.overlays[name] = field
        return bx0, by0, bx1, by1

    def maps(self, displacement: np.ndarray, weights: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Dense sampling map (absolute source coordinates, (h, w, 2) float32) for the region, for
        ``cv2.remap`` (as its one two-channel map).

        ``weights[name]``: 0..1 over that overlay's box, how much its field replaces the main one.
        """
        import cv2

        d = displacement.astype(np.float32)
        dense = self.main.dense(d)
        weights = weights or {}
        rx0, ry0 = self.region[:2]
        for name, field in self.overlays.items():  # in the order they were added
            weight = weights.get(name, field.weight)
            if weight is None:
                continue
            rows = np.flatnonzero(weight.max(axis=1) > 0)  # only the rows the overlay shows in
            if not len(rows):
                continue
            r0, r1 = int(rows[0]), int(rows[-1]) + 1
            bx0, by0, bx1, by1 = field.box
            part = dense[by0 - ry0 + r0: by0 - ry0 + r1, bx0 - rx0: bx1 - rx0]
            over = field.dense(d)[r0:r1]
            over -= part
            over *= weight[r0:r1, :, None]
            part += over
        # motion fades to nothing at the region's edge and over the still background
        return cv2.subtract(self.base_xy, cv2.multiply(dense, self.damp_xy))

    def warp(self, displacement: np.ndarray, source: np.ndarray | None = None,
             weights: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The warped region (H x W x C), given (n_moving, 2) control displacements in pixels."""
        import cv2

        src = self.image if source is None else source
        return cv2.remap(src, self.maps(displacement, weights), None, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT101)
