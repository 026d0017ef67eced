"""What the renderer learns from a photo once, before the first frame.

- ``landmark_depth``: each landmark's depth (Face Mesh z, in pixels; smaller = nearer the camera), for
  the 2.5D head turn; a fitted ellipsoid when Face Mesh cannot be run again.
- ``person_mask``: the person/background mask of MediaPipe's selfie segmentation (bundled with
  mediapipe 0.10.21), so the background stays put while the head moves.
- ``blur_sigma`` / ``noise_sigma``: how soft and how grainy the photo is, so that synthesised pixels
  (teeth, tongue, mouth cavity) match it.
- ``face_colours``: sclera (the photo's white balance), lips, skin and visible teeth.

The MediaPipe graphs are loaded through the model cache when a runtime is given (keys
``twin:face_depth`` and ``twin:segmentation``), else kept once per process.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ...face import landmarks as fl

_LOCAL_MODELS: dict[str, object] = {}
_LOCAL_LOCK = threading.Lock()


class _Graph:
    """A MediaPipe solution with a lock (graphs are not thread-safe)."""

    size_bytes = 4 * 2**20

    def __init__(self, make):
        self.graph = make()
        self.lock = threading.Lock()

    def process(self, rgb: np.ndarray):
        with self.lock:
            return self.graph.process(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))


def _make_mesh():
    import mediapipe as mp

    return _Graph(lambda: mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=3,
                                                          refine_landmarks=True, min_detection_confidence=0.3))


def _make_segmentation():
    import mediapipe as mp

    return _Graph(lambda: mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0))


def _model(key: str, loader, runtime):
    if runtime is not None:
        return runtime.cache.get(f"twin:{key}", loader, label=f"MediaPipe {key}", device="cpu",
                                 size_hint=_Graph.size_bytes)
    with _LOCAL_LOCK:
        if key not in _LOCAL_MODELS:
            _LOCAL_MODELS[key] = loader()
        return _LOCAL_MODELS[key]


# ---------------------------------------------------------------- depth


def landmark_depth(image: np.ndarray, face: fl.FaceLandmarks, runtime=None) -> tuple[np.ndarray, str]:
    """(478,) depth per landmark in pixels and where it came from ("face mesh" or "ellipsoid")."""
    depth = getattr(face, "depth", None)
    if depth is not None and len(depth) == len(face.points):
        return np.asarray(depth, np.float32), "face mesh"
    try:
        depth = _mesh_depth(image, face, runtime)
    except Exception:  # noqa: BLE001 - mediapipe missing or failing: the ellipsoid still gives a 3D turn
        depth = None
    if depth is not None:
        return depth, "face mesh"
    return ellipsoid_depth(face.points), "ellipsoid"


def _mesh_depth(image: np.ndarray, face: fl.FaceLandmarks, runtime) -> np.ndarray | None:
    """Run Face Mesh on a crop around the face and keep z of the face that matches ``face``."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = face.bbox
    pad = 0.6 * max(x1 - x0, y1 - y0)
    cx0, cy0 = int(max(0, x0 - pad)), int(max(0, y0 - pad))
    cx1, cy1 = int(min(w, x1 + pad)), int(min(h, y1 + pad))
    crop = image[cy0:cy1, cx0:cx1]
    result = _model("face_depth", _make_mesh, runtime).process(crop)
    best, best_err = None, np.inf
    for found in result.multi_face_landmarks or []:
        xyz = np.array([(p.x, p.y, p.z) for p in found.landmark], np.float64)
        pts = xyz[:, :2] * (crop.shape[1], crop.shape[0]) + (cx0, cy0)
        err = float(np.mean(np.linalg.norm(pts - face.points[: len(pts)], axis=1)))
        if err < best_err:
            best, best_err = xyz[:, 2] * crop.shape[1], err
    if best is None or best_err > 0.12 * face.eye_distance or len(best) != len(face.points):
        return None
    return best.astype(np.float32)


def ellipsoid_depth(points: np.ndarray) -> np.ndarray:
    """A face-shaped guess: an ellipsoid over the landmarks' extent with the nose standing out."""
    c = points.mean(axis=0)
    half = np.ptp(points, axis=0) / 2 + 1e-6
    r2 = np.clip(((points - c) / half) ** 2, 0, None).sum(axis=1)
    depth = -0.55 * half[0] * np.sqrt(np.clip(1 - 0.8 * r2, 0, 1))
    nose = points[4] if len(points) > 4 else c
    depth -= 0.25 * half[0] * np.exp(-((points - nose) ** 2).sum(axis=1) / (0.12 * half[0]) ** 2)
    return depth.astype(np.float32)


# ---------------------------------------------------------------- person mask


def person_mask(image: np.ndarray, box: tuple[int, int, int, int], runtime=None) -> np.ndarray | None:
    """Person probability 0..1 (float32) inside ``box`` (x0, y0, x1, y1); None when segmentation fails."""
    import cv2

    x0, y0, x1, y1 = box
    crop = image[y0:y1, x0:x1]
    try:
        mask = _model("segmentation", _make_segmentation, runtime).process(crop).segmentation_mask
    except Exception:  # noqa: BLE001 - no mask: the renderer warps the region as one piece
        return None
    if mask is None:
        return None
    mask = np.asarray(mask, np.float32)
    if mask.shape != crop.shape[:2]:
        mask = cv2.resize(mask, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(mask, 0.0, 1.0)


# ---------------------------------------------------------------- blur, noise, colours


def blur_sigma(gray: np.ndarray) -> float:
    """How soft the picture is, as the sigma (pixels) of a Gaussian blur that would make a sharp image so.

    For a blurred step of height H the steepest gradient is H / (sigma * sqrt(2 pi)): measured on the
    strongest edges (eyes, lips, hair line) and taken as the median.
    """
    import cv2

    if gray.size < 100:
        return 1.0
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    mag = np.sqrt(gx * gx + gy * gy)
    kernel = np.ones((13, 13), np.uint8)
    contrast = cv2.dilate(g, kernel) - cv2.erode(g, kernel)
    strong = mag > np.percentile(mag, 98.5)
    strong &= contrast > 25
    if strong.sum() < 20:
        return 1.0
    sigma = contrast[strong] / (np.sqrt(2 * np.pi) * np.maximum(mag[strong], 1e-3))
    return float(np.clip(np.median(sigma) * 0.8, 0.4, 6.0))  # 0.8: the window also spans unrelated edges


def noise_sigma(gray: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Grain of the picture: robust spread of what a 3x3 median filter removes (skin areas if a mask is given)."""
    import cv2

    if gray.size < 100:
        return 0.0
    g = gray.astype(np.uint8)
    residual = g.astype(np.float32) - cv2.medianBlur(g, 3).astype(np.float32)
    values = residual[mask] if mask is not None and mask.any() else residual.ravel()
    mad = float(np.median(np.abs(values - np.median(values))))
    return float(np.clip(1.4826 * mad, 0.0, 12.0))


@dataclass
class FaceColours:
    sclera: np.ndarray  # RGB float32: the whitest part of the face under the photo's light
    lips: np.ndarray
    skin: np.ndarray
    teeth: np.ndarray | None  # the photo's own teeth when it shows them


def _pixels_in(image: np.ndarray, polygon: np.ndarray, exclude: np.ndarray | None = None,
               hole: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """(N, 3) float32 pixels inside ``polygon``, minus those inside ``exclude`` and a circular ``hole``."""
    import cv2

    h, w = image.shape[:2]
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 3), np.float32)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon - (x0, y0)).astype(np.int32)], 1)
    if exclude is not None:
        cv2.fillPoly(mask, [np.round(exclude - (x0, y0)).astype(np.int32)], 0)
    if hole is not None:
        centre, radius = hole
        cv2.circle(mask, tuple(int(v) for v in np.round(centre - (x0, y0))), int(np.ceil(radius)), 0, -1)
    return image[y0:y1, x0:x1][mask.astype(bool)].astype(np.float32)


def face_colours(image: np.ndarray, pts: np.ndarray) -> FaceColours:
    luma = np.float32([0.299, 0.587, 0.114])
    # sclera: inside the eye outlines, away from the iris, the brighter half
    sclera_pixels = []
    for upper, lower, iris in ((fl.EYE_A_UPPER, fl.EYE_A_LOWER, list(range(468, 473))),
                               (fl.EYE_B_UPPER, fl.EYE_B_LOWER, list(range(473, 478)))):
        hole = None
        if len(pts) > 477:
            ring = pts[iris]
            hole = (ring[0], float(np.mean(np.linalg.norm(ring[1:] - ring[0], axis=1))) * 1.15)
        sclera_pixels.append(_pixels_in(image, np.vstack([pts[lower], pts[upper][::-1]]), hole=hole))
    sclera_all = np.vstack(sclera_pixels)
    inner_polygon = np.vstack([pts[fl.LIPS_INNER_UPPER], pts[fl.LIPS_INNER_LOWER][::-1]])
    lips = _pixels_in(image, np.vstack([pts[fl.LIPS_OUTER_UPPER], pts[fl.LIPS_OUTER_LOWER][::-1]]),
                      exclude=inner_polygon)
    img = image
    skin_pixels = []
    for p in (205, 425, 50, 280, 151, 9):
        if p < len(pts):
            x, y = np.round(pts[p]).astype(int)
            r = 3
            patch = img[max(0, y - r): y + r + 1, max(0, x - r): x + r + 1].reshape(-1, 3).astype(np.float32)
            skin_pixels.append(patch)
    skin = np.median(np.vstack(skin_pixels), axis=0) if skin_pixels else np.float32([190, 150, 130])
    lip_colour = np.median(lips, axis=0) if len(lips) else skin * np.float32([0.85, 0.6, 0.6])
    if len(sclera_all) >= 6:
        bright = sclera_all[np.argsort(sclera_all @ luma)[len(sclera_all) // 2:]]
        sclera = np.median(bright, axis=0)
    else:
        sclera = np.clip(skin * 1.25 + 30, 0, 255)
    # a sclera darker than the skin (deep shadow, small eyes): lift it to a plausible white
    if sclera.mean() < skin.mean():
        sclera = np.clip(sclera * 0.3 + (skin * 1.2 + 25) * 0.7, 0, 255)
    teeth = None
    inside = _pixels_in(image, inner_polygon)
    if len(inside) >= 20 and fl.mouth_opening(pts) >= 0.035:  # teeth show only between parted lips
        lip_lum = float(np.median(lips @ luma)) if len(lips) else 128.0
        inside_lum = inside @ luma
        chroma = inside.max(axis=1) - inside.min(axis=1)
        bright = inside[(inside_lum > lip_lum * 1.12) & (chroma < 0.45 * np.maximum(inside_lum, 1))]
        if len(bright) >= 0.25 * len(inside):
            teeth = np.median(bright, axis=0)
    return FaceColours(sclera.astype(np.float32), lip_colour.astype(np.float32), skin.astype(np.float32),
                       None if teeth is None else teeth.astype(np.float32))
