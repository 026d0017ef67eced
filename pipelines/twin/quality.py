"""How real a rendered twin looks, measured on its output frames with Face Mesh (the same landmark
model the renderer starts from). Used by the tests and ``bench/bench_twin.py``; the definitions follow
issue 10 so that an independent check measures the same things.

- mouth opening: mean inner-lip gap of the pairs (13, 14), (82, 87), (312, 317) divided by the outer
  eye corners' distance (33, 263);
- inner mouth width: distance 78-308 divided by the same eye distance;
- pause closure: (speech p90 - pause median) / (speech p90 - rest), rest measured on the photo itself,
  the pause's first and last ``margin`` seconds ignored;
- interior structure, on the most open 20 % of frames: the share of the inner-lip region brighter than
  the lips (teeth), and the share of its lit pixels that sit in flat 3x3 patches (a painted fill);
- audio/video offset: the lag (frames) that best lines the mouth opening up with the loudness.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..face import landmarks as fl

LIT_LUMA = 25  # darker pixels are the cavity's shadow, not "lit"
FLAT_RANGE = 2  # a 3x3 patch whose luma varies by at most this much is flat (a painted fill)


@dataclass
class FrameFace:
    """One output frame's face: landmarks (None where Face Mesh found no face)."""

    points: np.ndarray | None

    @property
    def found(self) -> bool:
        return self.points is not None

    @property
    def opening(self) -> float:
        return fl.mouth_opening(self.points) if self.points is not None else float("nan")

    @property
    def inner_width(self) -> float:
        if self.points is None:
            return float("nan")
        a, b = fl.OUTER_EYE_CORNERS
        eye = float(np.linalg.norm(self.points[a] - self.points[b]))
        return float(np.linalg.norm(self.points[78] - self.points[308])) / max(eye, 1e-6)


def read_frames(path: Path) -> Iterable[np.ndarray]:
    """RGB frames of a video, one at a time."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    for raw in reader:
        yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def track_faces(frames: Iterable[np.ndarray], runtime=None, keep_frames: Sequence[int] | None = None
                ) -> tuple[list[FrameFace], dict[int, np.ndarray]]:
    """Face Mesh on every frame (the largest face), and copies of the frames whose index is in ``keep_frames``."""
    keep = set(keep_frames or [])
    faces, kept = [], {}
    with fl.load_face_mesh(runtime) as mesh:
        for i, frame in enumerate(frames):
            found = mesh.detect(frame, search_tiles=False)
            faces.append(FrameFace(found[0].points if found else None))
            if i in keep:
                kept[i] = frame.copy()
    return faces, kept


def pause_closure(openings: np.ndarray, fps: float, speech: np.ndarray, pause: tuple[float, float],
                  rest: float, margin: float = 0.25) -> float:
    """(speech p90 - pause median) / (speech p90 - rest) for the pause (start, end) in seconds."""
    start, end = pause
    a, b = int(np.ceil((start + margin) * fps)), int(np.floor((end - margin) * fps))
    inside = openings[a:b]
    inside = inside[np.isfinite(inside)]
    spoken = openings[speech & np.isfinite(openings)]
    if not len(inside) or not len(spoken):
        return float("nan")
    p90 = float(np.percentile(spoken, 90))
    return (p90 - float(np.median(inside))) / max(p90 - rest, 1e-6)


def _polygon_mask(shape, polygon: np.ndarray) -> np.ndarray:
    import cv2

    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


def interior_structure(frame: np.ndarray, points: np.ndarray) -> tuple[float, float, int]:
    """(share of the inner-lip region brighter than the lips, share of its lit pixels in flat 3x3
    patches, pixels in the region) for one frame and its landmarks."""
    import cv2

    luma = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.int16)
    inner = _polygon_mask(frame.shape, np.vstack([points[fl.LIPS_INNER_UPPER], points[fl.LIPS_INNER_LOWER][::-1]]))
    inner = cv2.erode(inner.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # off the lip edge
    outer = _polygon_mask(frame.shape, np.vstack([points[fl.LIPS_OUTER_UPPER], points[fl.LIPS_OUTER_LOWER][::-1]]))
    lips = outer & ~_polygon_mask(frame.shape, np.vstack([points[fl.LIPS_INNER_UPPER], points[fl.LIPS_INNER_LOWER][::-1]]))
    n = int(inner.sum())
    if n < 10 or not lips.any():
        return float("nan"), float("nan"), n
    lip_level = float(np.median(luma[lips]))
    brighter = float(np.mean(luma[inner] > lip_level))
    kernel = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(luma.astype(np.uint8), kernel).astype(np.int16) - cv2.erode(luma.astype(np.uint8), kernel)
    lit = inner & (luma >= LIT_LUMA)
    flat = float(np.mean(spread[lit] <= FLAT_RANGE)) if lit.any() else 0.0
    return brighter, flat, n


def most_open(openings: np.ndarray, share: float = 0.2) -> np.ndarray:
    """Indices of the most open ``share`` of the frames where a face was found."""
    valid = np.flatnonzero(np.isfinite(openings))
    if not len(valid):
        return valid
    k = max(1, int(round(share * len(valid))))
    return valid[np.argsort(openings[valid])[::-1][:k]]


def av_offset(openings: np.ndarray, loudness: np.ndarray, max_lag: int = 4) -> int:
    """Lag in frames (positive: the mouth moves after the sound) that best correlates the two."""
    ok = np.isfinite(openings)
    best, best_r = 0, -2.0
    for lag in range(-max_lag, max_lag + 1):
        a = openings[max(lag, 0): len(openings) + min(lag, 0)]
        b = loudness[max(-lag, 0): len(loudness) + min(-lag, 0)]
        m = ok[max(lag, 0): len(openings) + min(lag, 0)]
        if m.sum() < 10:
            continue
        r = float(np.corrcoef(a[m], b[m])[0, 1])
        if r > best_r:
            best, best_r = lag, r
    return best
