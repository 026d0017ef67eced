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
    depth: np.ndarray | None = None  # (478,) Face Mesh z in pixels (same scale as x; smaller = nearer)
    check: "FaceCheck | None" = None  # is it a usable human face? (set by detect_faces)

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
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        depth = None if self.depth is None else (self.depth * scale).astype(np.float32)
        return FaceLandmarks(pts.astype(np.float32), image_size, depth, self.check)


def mouth_opening(points: np.ndarray) -> float:
    """Inner-lip gap divided by the distance between the outer eye corners (so it ignores scale)."""
    gap = np.mean([np.linalg.norm(points[lo] - points[up]) for up, lo in INNER_LIP_PAIRS])
    a, b = OUTER_EYE_CORNERS
    return float(gap / max(np.linalg.norm(points[a] - points[b]), 1e-6))


# ---------------------------------------------------------------- is it a human face we can animate?

# Mean face-detector score over four framings (see FaceMesh.detector_confidence): photos 0.8-0.95, drawn
# cartoons ~0.8, blurry generated faces down to 0.65; the cat 0.13, skull logos 0.42-0.60.
MIN_DETECTOR_CONFIDENCE = 0.6
# Calibrated by eye: generated faces in three-quarter view (about 45 degrees) measure 33-40 and ones
# turned about 25-30 degrees measure ~21; the sample photo turned by a flat 2.5D warp measures low
# (13, 19, 29, 40 for 20, 35, 50, 65 degrees: a flat photo keeps its frontal shading).
MAX_YAW_DEGREES = 32.0


@dataclass(frozen=True)
class FaceCheck:
    """Whether a found face is a usable human face (or a drawing that lands like one), and why not."""

    confidence: float  # the face detector's mean score where the mesh found the face, 0..1
    yaw: float  # degrees the face is turned left/right (0 = frontal), from the mesh's depth
    problem: str = ""  # "" | "not_human" | "turned" | "mouth_hidden"
    detail: str = ""  # which check failed, for logs and tests

    @property
    def ok(self) -> bool:
        return not self.problem

    def error(self) -> UserError | None:
        """The message for the user (both languages), or None when the face is fine."""
        if self.problem == "not_human":
            return UserError(
                "This does not look like a person's face (an animal, an object or a logo?): the eyes, nose "
                "and mouth are not where a human face has them. Please use a clear photo of a person.",
                zh="这看起来不像人脸（动物、物体或图案？）：眼睛、鼻子和嘴的位置不像人脸。请使用一张清晰的人像照片。")
        if self.problem == "turned":
            return UserError(
                f"The face is turned too far to the side (about {abs(self.yaw):.0f} degrees as measured). "
                "Please use a more frontal photo, looking towards the camera.",
                zh=f"人脸侧转过多（测得约 {abs(self.yaw):.0f} 度）。请使用更正面、面向镜头的照片。")
        if self.problem == "mouth_hidden":
            return UserError("The mouth is covered (a mask or a hand?), so it cannot be animated. "
                             "Please use a photo where the mouth is visible.",
                             zh="嘴部被遮挡（口罩或手？），无法驱动。请使用能看到嘴巴的照片。")
        return None


def face_yaw(face: "FaceLandmarks") -> float:
    """Left/right turn in degrees (sign: positive when the face's right-hand side of the image is further away).

    From the mesh's depth: the angle of the outer eye corners' and the cheek edges' lines out of the
    image plane. Without depth (landmarks made elsewhere), from how far the nose tip sits off-centre
    between the cheek edges.
    """
    p = face.points
    if face.depth is not None:
        angles = [np.degrees(np.arctan2(face.depth[b] - face.depth[a], p[b, 0] - p[a, 0]))
                  for a, b in (OUTER_EYE_CORNERS, (234, 454))]
        return float(np.mean(angles))
    left, right = np.linalg.norm(p[1] - p[234]), np.linalg.norm(p[1] - p[454])
    return float(np.degrees(np.arctan((left - right) / max(left + right, 1e-6) / 0.9)))


def _face_frame(points: np.ndarray) -> np.ndarray:
    """Landmarks with the roll removed and scaled so that the outer eye corners sit at (-0.5, 0), (0.5, 0)."""
    a, b = points[OUTER_EYE_CORNERS[0]].astype(np.float64), points[OUTER_EYE_CORNERS[1]].astype(np.float64)
    angle = np.arctan2(b[1] - a[1], b[0] - a[0])
    c, s = np.cos(-angle), np.sin(-angle)
    return (points - (a + b) / 2) @ np.array([[c, -s], [s, c]]).T / max(np.linalg.norm(b - a), 1e-6)


def proportions_problem(face: "FaceLandmarks") -> str:
    """'' when eyes, nose, mouth and chin are in human order and proportions, else which check failed.

    Ranges are wide (every frontal and turned photo, cartoon and generated face we tried passes); they
    catch meshes squashed or thrown onto something else."""
    q = _face_frame(face.points)
    nose, mouth, chin = q[1], (q[13] + q[14]) / 2, q[152]
    eyes_to_width = face.eye_distance / max(face.width, 1e-6)
    checks = {
        "eye distance / face width": 0.4 <= eyes_to_width <= 0.9,
        "nose below the eyes": 0.15 <= nose[1] <= 1.0,
        "mouth below the nose": nose[1] + 0.05 <= mouth[1] <= 1.6,
        # every photo and generated face: chin >= 1.04 eye spans below the eyes; squashed logo meshes 0.88-0.92
        "chin below the mouth": max(0.97, mouth[1] + 0.15) <= chin[1] <= 2.3,
        "nose and mouth between the eyes": abs(nose[0]) <= 0.6 and abs(mouth[0]) <= 0.6,
    }
    return ", ".join(name for name, ok in checks.items() if not ok)


def mouth_hidden(image: np.ndarray, face: "FaceLandmarks") -> bool:
    """True when the lips and the skin around them are one flat, uniform area of a colour unlike the
    upper face: a mask (or a hand) over the mouth. A drawn mouth, a beard or a gray photo keep structure there."""
    import cv2

    p = face.points
    eye = max(face.eye_distance, 1.0)
    lips = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(lips, [p[LIPS_OUTER_UPPER + LIPS_OUTER_LOWER[::-1]].astype(np.int32)], 1)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(0.12 * eye) + 1,) * 2)
    around = cv2.dilate(lips, grow) > 0
    upper = np.zeros_like(lips)
    cv2.fillPoly(upper, [p[[117, 118, 50, 205, 187, 147, 123]].astype(np.int32),
                         p[[346, 347, 280, 425, 411, 376, 352]].astype(np.int32)], 1)  # both cheeks
    lab = cv2.cvtColor(np.ascontiguousarray(image[..., :3], dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    if around.sum() < 20 or upper.sum() < 20:
        return False
    flat = float(lab[around][:, 0].std()) < 6.0
    unlike_skin = float(np.linalg.norm(lab[around].mean(axis=0) - lab[upper > 0].mean(axis=0))) > 15.0
    return flat and unlike_skin


def assess_face(image: np.ndarray, face: "FaceLandmarks", confidence: float) -> FaceCheck:
    """The human-face checks for one face found in ``image`` (see FaceCheck)."""
    yaw = face_yaw(face)
    if confidence < MIN_DETECTOR_CONFIDENCE:
        turned = confidence >= 0.4 and abs(yaw) > MAX_YAW_DEGREES  # a real face, turned, loses some score
        return FaceCheck(confidence, yaw, "turned" if turned else "not_human",
                         f"face detector confidence {confidence:.2f}")
    if abs(yaw) > MAX_YAW_DEGREES:  # before the proportions: a turned face's look squeezed from the front
        return FaceCheck(confidence, yaw, "turned", f"yaw {yaw:.0f} degrees")
    odd = proportions_problem(face)
    if odd:
        return FaceCheck(confidence, yaw, "not_human", f"proportions: {odd}")
    if mouth_hidden(image, face):
        return FaceCheck(confidence, yaw, "mouth_hidden", "uniform area over the mouth")
    return FaceCheck(confidence, yaw)


def check_human_face(face: "FaceLandmarks", image: np.ndarray | None = None, *,
                     runtime: Runtime | None = None) -> FaceCheck:
    """Is ``face`` a human face we can animate? Faces from :func:`detect_faces` carry the answer already;
    for others give the ``image`` they were found in (the face detector looks at it again)."""
    if face.check is not None:
        return face.check
    if image is None:
        raise ValueError("check_human_face needs the image for a face that detect_faces did not find")
    with load_face_mesh(runtime) as mesh:
        face.check = assess_face(image, face, mesh.detector_confidence(image, face))
    return face.check


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
        # The short-range face detector alone, for a second opinion on what the mesh found (check_human_face)
        self._detector = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.05)
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
                        moved = FaceLandmarks(face.points + np.float32([x, y]), (w, h), face.depth)
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
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], dtype=np.float32)
            faces.append(FaceLandmarks(pts[:, :2].copy(), (w, h), pts[:, 2].copy()))
        return faces

    def detector_confidence(self, rgb: np.ndarray, face: FaceLandmarks) -> float:
        """How sure the face detector is that a face sits where the mesh put this one: its mean score on
        square crops of 1.6 to 3 times the face's size (0 for a crop where it finds nothing there).

        The mesh's own detector, run on tiles and with a low bar, lets a cat or a logo through now and
        then; over four framings a real or drawn face keeps scoring (~0.65-0.95), those do not (< 0.6).
        """
        import cv2

        x0, y0, x1, y1 = face.bbox
        cx, cy, size = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0, 1.0)
        scores = []
        for k in (1.6, 2.0, 2.5, 3.0):
            zoom = 256 / (k * size)
            matrix = np.float32([[zoom, 0, 128 - cx * zoom], [0, zoom, 128 - cy * zoom]])
            crop = cv2.warpAffine(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), matrix, (256, 256),
                                  borderMode=cv2.BORDER_REFLECT_101)
            with self._lock:
                result = self._detector.process(crop)
            best = 0.0
            for detection in result.detections or []:
                box = detection.location_data.relative_bounding_box
                bx, by = (box.xmin + box.width / 2) * 256, (box.ymin + box.height / 2) * 256
                if abs(bx - 128) < 64 and abs(by - 128) < 64:  # the same face, not a neighbour
                    best = max(best, float(detection.score[0]))
            scores.append(best)
        return float(np.mean(scores))

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()


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
        faces = mesh.detect(image)
        for face in faces:
            face.check = assess_face(image, face, mesh.detector_confidence(image, face))
        return faces


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
