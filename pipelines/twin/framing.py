"""Framing: where the twin video's frame comes from in the photo.

- "face": a 512 px square around the face. The crop is chosen inside the photo: the largest square,
  up to twice the face's size, that keeps the face well placed (centred, a little above the middle,
  with room around it). Only when the face is so near the photo's edge that no such square exists is
  the frame extended beyond the photo, and then with a plausible fill (the photo mirrored at its
  edge, blurred more the further it lies outside), never with replicated edge pixels (those show
  as streaks).
- "photo": the whole photo, fitted in 1920x1080.

Also :func:`smeared_fraction`, the streak measure the tests and the benchmark use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..face import landmarks as fl

FACE_CROP_SIZE = 512
IDEAL_SCALE = 2.0  # the frame is ideally twice the face's size (head, hair, a little neck)
MIN_SCALE = 1.35  # below this the face fills the frame too tightly: extend the photo instead
PLACEMENT_TOLERANCE = 0.1  # how far (fraction of the frame) the face may sit from its ideal place
DROP = 0.1  # the ideal centre is this fraction of the face's height below the face's centre (chin, neck)


@dataclass
class Framing:
    image: np.ndarray  # the video frame, RGB uint8
    face: fl.FaceLandmarks  # the face in the frame's pixels
    crop: tuple[float, float, float, float]  # the frame's area in photo pixels (x0, y0, x1, y1)
    filled: float  # fraction of the frame lying outside the photo (filled in), 0..1


def choose_crop(photo_size: tuple[int, int], face_bbox: tuple[float, float, float, float]) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square face crop, in photo pixels.

    The largest side from IDEAL_SCALE down to MIN_SCALE times the face's size whose square fits in
    the photo with the face within PLACEMENT_TOLERANCE of its ideal place; if none fits, a square of
    about 1.5x the face as close to the photo as the tolerance lets it move (the rest is filled in).
    """
    w, h = photo_size
    x0, y0, x1, y1 = face_bbox
    face = max(x1 - x0, y1 - y0, 1.0)
    ideal = ((x0 + x1) / 2, (y0 + y1) / 2 + DROP * (y1 - y0))
    for side in np.linspace(IDEAL_SCALE * face, MIN_SCALE * face, 33):
        centre = [_fit_axis(ideal[0], side, w, x0, x1), _fit_axis(ideal[1], side, h, y0, y1)]
        if None not in centre:
            return float(centre[0]), float(centre[1]), float(side)
    side = max(MIN_SCALE * face, min(1.5 * face, float(min(w, h))))
    tol = PLACEMENT_TOLERANCE * side
    cx = float(np.clip(np.clip(ideal[0], side / 2, w - side / 2), ideal[0] - tol, ideal[0] + tol))
    cy = float(np.clip(np.clip(ideal[1], side / 2, h - side / 2), ideal[1] - tol, ideal[1] + tol))
    return cx, cy, float(side)


def _fit_axis(ideal: float, side: float, length: int, lo: float, hi: float) -> float | None:
    """A centre on one axis for a crop of ``side`` that stays inside [0, length], keeps the face
    [lo, hi] inside with a small margin, and lies within the tolerance of ``ideal``; None if none does."""
    margin = 0.05 * side
    low = max(side / 2, ideal - PLACEMENT_TOLERANCE * side, hi + margin - side / 2)
    high = min(length - side / 2, ideal + PLACEMENT_TOLERANCE * side, lo - margin + side / 2)
    if low > high + 1e-6:
        return None
    return float(np.clip(ideal, low, high))


def frame_face(photo: np.ndarray, face: fl.FaceLandmarks, output_size: str = "face") -> Framing:
    """The video frame (a 512 px face crop, or the photo fitted in 1920x1080) and the face in its pixels."""
    import cv2

    h, w = photo.shape[:2]
    if output_size == "face":
        cx, cy, side = choose_crop((w, h), face.bbox)
        scale = FACE_CROP_SIZE / side
        matrix = np.array([[scale, 0, FACE_CROP_SIZE / 2 - cx * scale], [0, scale, FACE_CROP_SIZE / 2 - cy * scale]])
        size = (FACE_CROP_SIZE, FACE_CROP_SIZE)
        crop = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    else:
        scale = min(1.0, 1920 / max(w, h), 1080 / min(w, h))
        size = (max(2, int(w * scale) // 2 * 2), max(2, int(h * scale) // 2 * 2))  # yuv420p: even sides
        matrix = np.array([[size[0] / w, 0, 0], [0, size[1] / h, 0]])
        crop = (0.0, 0.0, float(w), float(h))
    interp = cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_CUBIC
    canvas = cv2.warpAffine(photo, matrix, size, flags=interp, borderMode=cv2.BORDER_REFLECT_101)
    inside = cv2.warpAffine(np.full((h, w), 255, np.uint8), matrix, size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    outside = inside < 128
    if outside.any():
        canvas = _soften_outside(canvas, inside)
    return Framing(canvas, face.transformed(matrix.astype(np.float32), size), crop, float(outside.mean()))


def frame_photo(photo: np.ndarray, face: fl.FaceLandmarks, output_size: str) -> tuple[np.ndarray, fl.FaceLandmarks]:
    """(frame, face in the frame's pixels): :func:`frame_face` without the details."""
    framing = frame_face(photo, face, output_size)
    return framing.image, framing.face


def _soften_outside(canvas: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Blur the mirrored fill more the further it lies from the photo: a soft, out-of-focus extension
    instead of a sharp mirror image (a mirrored half face would look like a second person)."""
    import cv2

    size = max(canvas.shape[:2])
    distance = cv2.distanceTransform((inside < 128).astype(np.uint8), cv2.DIST_L2, 5)  # px outside the photo
    light = cv2.GaussianBlur(canvas, (0, 0), size / 60)
    heavy = cv2.GaussianBlur(canvas, (0, 0), size / 25)
    near = np.clip(distance / (size / 100), 0, 1)[..., None]  # sharp at the edge -> blurred within a few pixels
    far = np.clip((distance - size / 100) / (size / 25), 0, 1)[..., None]  # -> heavily blurred further out
    out = canvas * (1 - near) + light * near
    out = out * (1 - far) + heavy * far
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def smeared_fraction(image: np.ndarray, band: int = 24, tolerance: float = 3.0) -> dict[str, float]:
    """Per frame edge ("top", "bottom", "left", "right"): the fraction of lines perpendicular to the
    edge, in a ``band``-pixel border band, that are smeared: constant along the line (replicated edge
    pixels) while their neighbouring lines differ from them."""
    img = np.asarray(image, np.float32)
    bands = {"top": img[:band], "bottom": img[-band:][::-1], "left": img[:, :band].transpose(1, 0, 2),
             "right": img[:, -band:][:, ::-1].transpose(1, 0, 2)}
    out = {}
    for edge, strip in bands.items():  # strip: (band, lines, 3): axis 0 runs along each line
        constant = (strip.max(axis=0) - strip.min(axis=0)).max(axis=-1) <= tolerance
        mean = strip.mean(axis=0)  # (lines, 3)
        step = np.abs(np.diff(mean, axis=0)).max(axis=-1)  # difference between neighbouring lines
        differs = np.zeros(len(mean), bool)
        differs[:-1] |= step > tolerance
        differs[1:] |= step > tolerance
        out[edge] = float(np.mean(constant & differs))
    return out
