"""Where a mouth-redrawing network looks and how its drawing goes back into the frame, from Face Mesh
points alone (no face-parsing model).

- ``crop_box``: MuseTalk's face crop, placed from the landmarks: the face's width, the nose bridge on
  the horizontal midline (so the masked lower half holds the mouth and jaw), a small margin under
  the chin. Axis-aligned, like the crops the network was trained on; resized to a square.
- ``blend_mask``: the lower face (jaw line up to the nostrils), shrunk and feathered so the seam lies
  on skin, inside the face outline and below the nose.
- ``paste_mouth``: the drawing, colour-matched to the frame on the seam, blended through the mask;
  every pixel where the mask is zero stays exactly as it was.
"""
from __future__ import annotations

import numpy as np

from ...face import landmarks as fl

NOSE_BRIDGE = (195, 5)  # the crop's midline: a little above the nose tip (MuseTalk uses the same spot)
CHIN = 152
# The blend region: the face outline from cheek to cheek around the chin, closed under the nose.
LOWER_FACE = [132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361,
              411, 426, 327, 2, 98, 206, 187]
MAX_COLOUR_SHIFT = 40.0  # levels: a network gone wrong should not repaint the whole face's tone


def crop_box(points: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in frame pixels (may reach outside the frame)."""
    oval = points[fl.FACE_OVAL]
    nose_y = float(points[list(NOSE_BRIDGE), 1].mean())
    chin_y = float(points[CHIN, 1])
    half = max(chin_y - nose_y, 4.0)
    x0, x1 = float(oval[:, 0].min()), float(oval[:, 0].max())
    y0, y1 = nose_y - half, chin_y + 0.08 * half
    return int(round(x0)), int(round(y0)), max(int(round(x1)), int(round(x0)) + 4), max(int(round(y1)), int(round(y0)) + 4)


def cut_crop(image: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The box's pixels resized to size x size; parts outside the frame repeat its edge."""
    import cv2

    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    pad = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    region = image[max(y0, 0): min(y1, h), max(x0, 0): min(x1, w)]
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_REPLICATE)
    shrink = (x1 - x0) > size or (y1 - y0) > size
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LANCZOS4)


def blend_mask(points: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Float32 weights (box height, box width) in 0..1: 1 on the mouth and jaw, 0 outside the face."""
    import cv2

    x0, y0, x1, y1 = box
    width = x1 - x0
    mask = np.zeros((y1 - y0, width), np.uint8)
    polygon = np.round((points[LOWER_FACE] - (x0, y0)) * 4).astype(np.int32)
    cv2.fillPoly(mask, [polygon], 255, cv2.LINE_AA, shift=2)
    outline = mask.astype(np.float32) / 255.0
    # shrink by about the blur's reach, so the feathered edge ends on the face outline, not beyond it
    shrink = max(1, int(round(0.06 * width)))
    mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink + 1, 2 * shrink + 1)))
    sigma = max(1.0, 0.025 * width)
    mask = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma) * outline
    mask[mask < 1.0 / 255.0] = 0.0  # the blur's faint tail would nudge pixels it has no business with
    return mask


def paste_mouth(frame: np.ndarray, drawing: np.ndarray, box: tuple[int, int, int, int],
                points: np.ndarray) -> np.ndarray:
    """``frame`` with ``drawing`` (the network's square crop of ``box``) blended in over the lower face."""
    import cv2

    x0, y0, x1, y1 = box
    h, w = frame.shape[:2]
    drawn = cv2.resize(drawing, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    mask = blend_mask(points, box)
    # the part of the box inside the frame
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return frame
    inner = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
    drawn, mask = drawn[inner], mask[inner]
    if not mask.any():
        return frame
    original = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    # colour match on the seam, where both should show the same skin
    seam = (mask > 0.05) & (mask < 0.6)
    if seam.sum() >= 20:
        shift = original[seam].mean(axis=0) - drawn[seam].mean(axis=0)
        drawn = drawn + np.clip(shift, -MAX_COLOUR_SHIFT, MAX_COLOUR_SHIFT)
    weight = mask[..., None]
    blended = np.clip(original * (1.0 - weight) + drawn * weight, 0, 255).round().astype(np.uint8)
    out = frame.copy()
    region = out[fy0:fy1, fx0:fx1]
    inside = mask > 0
    region[inside] = blended[inside]
    return out
