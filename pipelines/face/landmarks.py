"""Face detection and 478-point landmarks with MediaPipe Face Mesh (bundled in ``mediapipe==0.10.21``).

What it does: finds every face in an RGB image (largest first), gives their landmarks in pixels, and
measures the mouth opening the same way on a source photo and on rendered video frames.
What it does not: track faces across frames (the twin engine detects once, on the photo) or
recognise who a face is.

The Face Mesh graph loads through the shared model cache (key ``twin:face_mesh``). MediaPipe graphs
are not thread-safe, so each loaded mesh serialises its calls with a lock.

    python -m pipelines.face_landmarks photo.jpg     # prints the faces found
"""
from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ModelLoadError, UserError
from ..core.native_logs import quiet_native_logs
from ..core.runtime import Runtime

quiet_native_logs()  # before mediapipe is imported: its C++ log lines stay out of what people read

MAX_FACES = 5
CACHE_KEY = "twin:face_mesh"

# MediaPipe Face Mesh indices (canonical 468-point topology; 468-477 are the irises).
LIPS_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_OUTER_LOWER = [146, 91, 181, 84, 17, 314, 405, 321, 375]
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [95, 88, 178, 87, 14, 317, 402, 318, 324]
MOUTH_CORNERS = [61, 291, 78, 308]
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
EYE_A_UPPER = [246, 161, 160, 159, 158, 157, 173]
EYE_A_LOWER = [33, 7, 163, 144, 145, 153, 154, 155, 133]
EYE_B_UPPER = [466, 388, 387, 386, 385, 384, 398]
EYE_B_LOWER = [263, 249, 390, 373, 374, 380, 381, 382, 362]
BROWS = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300]
NOSE = [1, 4, 5, 6, 168, 197, 195, 98, 327, 2]
CHEEKS = [205, 425, 50, 280, 187, 411, 214, 434, 116, 345]
CHIN_AREA = [152, 175, 199, 200, 18, 83, 313, 32, 262, 208, 428]
OUTER_EYE_CORNERS = (33, 263)
# Inner-lip pairs (upper, lower) averaged for a mouth-opening measure that ignores one noisy point.
INNER_LIP_PAIRS = [(82, 87), (13, 14), (312, 317)]


@dataclass
class FaceLandmarks:
    """One face: ``points`` (478, 2) in pixels of the image it was found in, x then y."""

    points: np.ndarray
    image_size: tuple[int, int]  # (width, height)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def width(self) -> float:
        x0, _, x1, _ = self.bbox
        return x1 - x0

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return (x1 - x0) * (y1 - y0)

    @property
    def eye_distance(self) -> float:
        a, b = OUTER_EYE_CORNERS
        return float(np.linalg.norm(self.points[a] - self.points[b]))

    def mouth_opening(self) -> float:
        return mouth_opening(self.points)

    def transformed(self, matrix: np.ndarray, image_size: tuple[int, int]) -> "FaceLandmarks":
        """The same landmarks after a 2x3 affine image transform (crop, resize)."""
        pts = self.points @ matrix[:, :2].T + matrix[:, 2]
        return FaceLandmarks(pts.astype(np.float32), image_size)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap divided by the distance between the outer eye corners (so it ignores scale)."""
    gap = np.mean([np.linalg.norm(points[lo] - points[up]) for up, lo in INNER_LIP_PAIRS])
    a, b = OUTER_EYE_CORNERS
    return float(gap / max(np.linalg.norm(points[a] - points[b]), 1e-6))


class FaceMesh:
    """A loaded MediaPipe Face Mesh (static-image mode: every call detects afresh)."""

    size_bytes = 4 * 2**20

    def __init__(self, max_faces: int = MAX_FACES):
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise ModelLoadError("Face landmarks need mediapipe: pip install mediapipe==0.10.21",
                                 zh="人脸关键点需要 mediapipe：pip install mediapipe==0.10.21") from exc
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True,
            min_detection_confidence=0.5)
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray, search_tiles: bool = True) -> list[FaceLandmarks]:
        """Faces in ``rgb``, largest first. The mesh's detector is short-range (faces filling a good part
        of the picture); when it finds none, overlapping tiles (2x2, then 3x3) are searched so that the
        smaller faces of group photos are found too."""
        faces = self._detect(rgb)
        h, w = rgb.shape[:2]
        for n in ((2, 3) if search_tiles and not faces else ()):  # both sizes: small faces show in 3x3 only
            tile_w, tile_h = int(w / n * 1.4), int(h / n * 1.4)  # 40 % overlap: a face on a seam is whole in one tile
            for y in np.linspace(0, h - tile_h, n).astype(int):
                for x in np.linspace(0, w - tile_w, n).astype(int):
                    for face in self._detect(rgb[y:y + tile_h, x:x + tile_w]):
                        moved = FaceLandmarks(face.points + np.float32([x, y]), (w, h))
                        center = moved.points.mean(axis=0)
                        if not any(_inside(center, f.bbox) for f in faces):
                            faces.append(moved)
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def _detect(self, rgb: np.ndarray) -> list[FaceLandmarks]:
        h, w = rgb.shape[:2]
        with self._lock:
            result = self._mesh.process(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8))
        faces = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h) for p in face.landmark], dtype=np.float32)
            faces.append(FaceLandmarks(pts, (w, h)))
        return faces

    def close(self) -> None:
        self._mesh.close()


def _inside(point, bbox) -> bool:
    x0, y0, x1, y1 = bbox
    return x0 <= point[0] <= x1 and y0 <= point[1] <= y1


def load_face_mesh(runtime: Runtime | None = None):
    """A context manager giving the cached Face Mesh, pinned while in use."""
    runtime = runtime or Runtime.default()
    return runtime.cache.use(CACHE_KEY, FaceMesh, label="MediaPipe Face Mesh", device="cpu",
                             size_hint=FaceMesh.size_bytes)


def detect_faces(image: np.ndarray, *, runtime: Runtime | None = None) -> list[FaceLandmarks]:
    """Every face in an RGB uint8 image, largest first (empty list when there is none)."""
    if image.ndim != 3 or image.shape[2] < 3:
        raise UserError("The image must be a colour (RGB) picture.", zh="图片必须是彩色（RGB）图像。")
    with load_face_mesh(runtime) as mesh:
        return mesh.detect(image)


def mouth_openings_in_video(path: Path, *, runtime: Runtime | None = None) -> list[float | None]:
    """Mouth opening of the largest face in every frame of a video (None where no face was found).

    Used by tests and the benchmark to check a rendered twin with the same landmark model.
    """
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    openings: list[float | None] = []
    with load_face_mesh(runtime) as mesh:
        for raw in reader:
            frame = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
            faces = mesh.detect(frame, search_tiles=False)
            openings.append(faces[0].mouth_opening() if faces else None)
    return openings


def main(argv: list[str] | None = None) -> int:
    import argparse

    from PIL import Image, ImageOps

    parser = argparse.ArgumentParser(description="Find faces and their 478 landmarks in a photo.")
    parser.add_argument("photo")
    args = parser.parse_args(argv)
    try:
        rgb = np.asarray(ImageOps.exif_transpose(Image.open(args.photo)).convert("RGB"))
        faces = detect_faces(rgb)
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for i, f in enumerate(faces):
        print(f"face {i}: bbox={tuple(round(v) for v in f.bbox)} points={len(f.points)} "
              f"mouth_opening={f.mouth_opening():.3f}")
    if not faces:
        print("no face found", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
