"""Invisible watermark for images and video frames, built on ``invisible-watermark``'s DWT-DCT-SVD method.

Embedding (per block, the library's own ``EmbedDwtDctSvd.diffuse_dct_svd``; for video frames the same
rule batched in numpy, which tests check against the library): the image's U (blue-
difference) plane, one Haar DWT level, 4x4 blocks of the low band; the largest singular value of each
block's DCT is quantised (step 36) to carry one bit. What we add around it, measured against the
required attacks (bench/bench_provenance.py), and why:

- the library lays bits out row by row over the whole image, so a crop (a new width) scrambles them,
  and it refuses images under 256x256. We lay them out in 8x8-block tiles instead: each tile holds the
  whole 64-bit payload once, bits shuffled by a fixed permutation; every tile votes (soft decision).
- a 50 % resize halves the blocks the library reads. We embed on the image downscaled by 2 (for
  sides >= 256) and add the upscaled change, so the mark lives in coarse, robust frequencies; the
  detector reads at 1/2 scale (original size) and at full scale (an image already halved).
- a crop shifts the block grid by an unknown amount. The detector finds it: quantised blocks have
  singular values near 1/4 or 3/4 of a step, so it tries the 64 pixel phases of the 8 px grid, keeps
  the ones where that holds best, then tries the 64 tile origins, and accepts only a read whose studio
  mark and CRC match (see payload.py).
- the plain library also swaps two detail bands when it rebuilds the image (a visible change beyond
  the mark); computing the change ourselves avoids it. Only U changes (Y and V are kept), so the
  picture's brightness is untouched.
- ``dwtDct`` (the library's default, SDXL's choice) moves the largest AC coefficient, which JPEG and
  H.264 quantise away and a 50 % resize removes; the singular value tracks the block's energy and
  survives them (measured in the bench).

Video: the twin's background is still, so the change computed on the first frame is added to every
frame (two saturating byte additions per frame, far under the 10 % cost budget), and the detector
averages a few decoded frames before reading.

What it does not: survive rotation, heavy scaling other than 1x and 1/2, or a deliberate attack by
someone who knows the method; nor prove that an unmarked file is not AI-generated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .payload import BITS, Payload, parse_bits

STEP = 36.0  # quantisation step of the block's largest singular value (the library's default strength)
BLOCK = 4  # low-band block side (= 8 working pixels)
TILE = 8  # blocks per tile side: 64 cells = the 64 payload bits once
GRID = 2 * BLOCK  # pixel period of the block grid at working scale
MIN_SIDE_FOR_HALF_SCALE = 256
MAX_READ_SIDE = 768  # working pixels read per scale (12 x 12 tiles, each with the whole payload)
FIT_SIDE = 264  # working pixels used to find the grid's phase (33 x 33 blocks)
# RGB change for a U change that keeps Y and V (BT.601 YUV, as OpenCV's BGR2YUV)
U_TO_RGB = np.array([0.0, -0.39465, 2.03211], np.float32)
_CELL_BIT = np.random.default_rng(0xA16C).permutation(BITS).reshape(TILE, TILE)


def _u_plane(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.float32)
    return -0.14713 * rgb[..., 0] - 0.28886 * rgb[..., 1] + 0.436 * rgb[..., 2] + 128.0


def working_factor(height: int, width: int) -> float:
    return 0.5 if min(height, width) >= MIN_SIDE_FOR_HALF_SCALE else 1.0


def _resize(array: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    if factor == 1.0:
        return array
    h, w = array.shape[:2]
    size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def as_rgb(image) -> np.ndarray:
    """uint8 H x W x 3 from a PIL image or an array (grey and RGBA accepted)."""
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.shape[2] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return array


# ---------------------------------------------------------------- embedding
def _library_blocks(low: np.ndarray, bits: np.ndarray) -> None:
    """Quantise every block of ``low`` in place with the library's own per-block function."""
    try:
        from imwatermark.dwtDctSvd import EmbedDwtDctSvd
    except ImportError as exc:
        from ..core.errors import ModelLoadError

        raise ModelLoadError("The invisible watermark needs invisible-watermark: pip install --no-deps -r "
                             "requirements-nodeps.txt (or turn provenance off).",
                             zh="隐形水印需要 invisible-watermark：pip install --no-deps -r requirements-nodeps.txt"
                                "（或关闭溯源标记）。") from exc
    embed = EmbedDwtDctSvd(watermarks=list(bits), wmLen=BITS)
    for i in range(low.shape[0] // BLOCK):
        for j in range(low.shape[1] // BLOCK):
            block = low[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK]
            block[...] = embed.diffuse_dct_svd(block, int(bits[_CELL_BIT[i % TILE, j % TILE]]), STEP)


def _dct_matrix(n: int = BLOCK) -> np.ndarray:
    """The orthonormal DCT-II matrix (what cv2.dct applies to a block: dct(B) = C @ B @ C.T)."""
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    matrix[0] /= np.sqrt(2.0)
    return matrix


def _batched_blocks(low: np.ndarray, bits: np.ndarray) -> None:
    """The same rule as the library's ``diffuse_dct_svd``, on all blocks at once (numpy's batched SVD).
    The library loops in Python, ~65 ms for a 512 px frame on these cores, which alone would use most
    of the twin's 10 % budget; tests check that both give the same blocks."""
    rows, cols = low.shape[0] // BLOCK, low.shape[1] // BLOCK
    view = low[:rows * BLOCK, :cols * BLOCK]
    blocks = view.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3).astype(np.float64)
    c = _dct_matrix()
    u, s, vh = np.linalg.svd(c @ blocks @ c.T)
    cell_bits = bits[_CELL_BIT[np.arange(rows)[:, None] % TILE, np.arange(cols)[None, :] % TILE]]
    s[..., 0] = (s[..., 0] // STEP + 0.25 + 0.5 * cell_bits) * STEP
    marked = c.T @ ((u * s[..., None, :]) @ vh) @ c
    view[...] = marked.transpose(0, 2, 1, 3).reshape(rows * BLOCK, cols * BLOCK)


def watermark_change(rgb: np.ndarray, payload: Payload, *, batched: bool = False) -> np.ndarray:
    """The change to the U plane (float32, H x W) that writes ``payload`` into ``rgb``. ``batched``: the
    library's block rule vectorised (for video frames); otherwise the library's function itself."""
    import pywt

    h, w = rgb.shape[:2]
    factor = working_factor(h, w)
    u = _u_plane(_resize(rgb, factor))
    hh, ww = u.shape[0] // GRID * GRID, u.shape[1] // GRID * GRID
    change = np.zeros_like(u)
    if hh and ww:
        low, details = pywt.dwt2(u[:hh, :ww], "haar")
        (_batched_blocks if batched else _library_blocks)(low, payload.to_bits())
        change[:hh, :ww] = pywt.idwt2((low, details), "haar") - u[:hh, :ww]
    if factor == 1.0:
        return change
    import cv2

    return cv2.resize(change, (w, h), interpolation=cv2.INTER_LINEAR)  # exactly the image's size, odd sides too


class ChangeApplier:
    """Adds a precomputed change to frames with two saturating byte operations (cheap per video frame)."""

    def __init__(self, change: np.ndarray):
        import cv2  # noqa: F401 - fail early if OpenCV is missing

        delta = np.rint(change[..., None] * U_TO_RGB)
        self.up = np.clip(delta, 0, 255).astype(np.uint8)
        self.down = np.clip(-delta, 0, 255).astype(np.uint8)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.subtract(cv2.add(frame, self.up), self.down)


def embed_watermark(image, payload: Payload) -> np.ndarray:
    """``image`` (PIL or array) with ``payload`` written invisibly; returns uint8 RGB."""
    rgb = as_rgb(image)
    return ChangeApplier(watermark_change(rgb, payload))(np.ascontiguousarray(rgb))


class FrameMarker:
    """Marks the frames of one video: the change is computed on the first frame and reused."""

    def __init__(self, payload: Payload):
        self.payload = payload
        self._apply: ChangeApplier | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self._apply is None:
            self._apply = ChangeApplier(watermark_change(frame, self.payload, batched=True))
        return self._apply(frame)


# ---------------------------------------------------------------- detection
@dataclass
class ImageDetection:
    found: bool
    payload: Payload | None = None
    strength: float = 0.0  # mean soft vote of the accepted read (1 = every block agrees)
    scale: float = 0.0  # working scale that read it: 0.5 = original size, 1.0 = image was halved


def _block_reads(u: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, float]:
    """Per-block soft bits (+1 = bit 1) at grid phase (dy, dx), and how well the grid fits (1 = perfectly)."""
    part = u[dy:, dx:]
    hh, ww = part.shape[0] // GRID * GRID, part.shape[1] // GRID * GRID
    if hh == 0 or ww == 0:
        return np.zeros((0, 0), np.float32), 0.0
    part = part[:hh, :ww]
    low = (part[0::2, 0::2] + part[1::2, 0::2] + part[0::2, 1::2] + part[1::2, 1::2]) / 2  # Haar low band
    blocks = low.reshape(hh // GRID, BLOCK, ww // GRID, BLOCK).transpose(0, 2, 1, 3)
    # the DCT is orthonormal, so the block's singular values are the DCT block's (what the library quantises)
    top = np.linalg.svd(blocks.astype(np.float64), compute_uv=False)[..., 0]
    phase = 2 * np.pi * (top % STEP) / STEP
    return -np.sin(phase), float(np.mean(-np.cos(2 * phase)))


def _reads_at_phase(soft: np.ndarray):
    """Yield (soft bits, strength) for each of the 64 tile origins."""
    sums = np.zeros((TILE, TILE))
    rows, cols = np.indices(soft.shape)
    np.add.at(sums, (rows % TILE, cols % TILE), soft)
    counts = np.zeros((TILE, TILE))
    np.add.at(counts, (rows % TILE, cols % TILE), 1)
    for oy in range(TILE):
        for ox in range(TILE):
            cells = np.roll(sums, (oy, ox), axis=(0, 1))
            weights = np.roll(counts, (oy, ox), axis=(0, 1))
            bits = np.zeros(BITS)
            bits[_CELL_BIT.ravel()] = cells.ravel()
            n = np.zeros(BITS)
            n[_CELL_BIT.ravel()] = weights.ravel()
            yield bits, float(np.mean(np.abs(bits) / np.maximum(n, 1)))


def _central(plane: np.ndarray, side: int) -> np.ndarray:
    """At most ``side`` x ``side`` from the middle: every tile holds the whole payload, so a big photo
    needs no more than this, and reading time stays bounded."""
    h, w = plane.shape
    y, x = max(0, (h - side) // 2) // GRID * GRID, max(0, (w - side) // 2) // GRID * GRID  # keeps the grid's phase
    return plane[y:y + side, x:x + side]


def detect_watermark(image, *, phases_to_try: int = 3) -> ImageDetection:
    """Look for our watermark in ``image`` (PIL or array, any size, possibly cropped/resized/re-encoded)."""
    rgb = as_rgb(image)
    h, w = rgb.shape[:2]
    scales = [0.5, 1.0] if min(h, w) >= 2 * GRID * TILE else [1.0]
    if min(h, w) < MIN_SIDE_FOR_HALF_SCALE:
        scales.append(2.0)  # a small output halved again
    best = ImageDetection(False)
    for scale in scales:
        u = _central(_u_plane(_resize(rgb, scale)), MAX_READ_SIDE)
        probe = _central(u, FIT_SIDE)  # the grid's phase is the same everywhere: find it on a smaller piece
        fits = sorted(((_block_reads(probe, dy, dx)[1], dy, dx) for dy in range(GRID) for dx in range(GRID)),
                      reverse=True)
        for _fit, dy, dx in fits[:phases_to_try]:
            soft, _ = _block_reads(u, dy, dx)
            if soft.size == 0:
                continue
            for bits, strength in _reads_at_phase(soft):
                payload = parse_bits((bits > 0).astype(np.uint8))
                if payload is not None and strength > best.strength:
                    best = ImageDetection(True, payload, strength, scale)
        if best.found:
            return best
    return best
