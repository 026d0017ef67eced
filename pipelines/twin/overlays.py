"""Things burned into twin videos: subtitles timed to the speech and a visible "AI-generated" label.

What it does: finds a font that can draw the text (Chinese needs a CJK font, e.g. Debian's
``fonts-wqy-microhei``), splits a script into subtitle cues timed by the voice engine's timings (or,
without timings, spread over the audio by length), renders each cue once as an RGBA patch, and blends
the patches onto frames (cheap: only the patch's pixels are touched).
Placement: the label goes in the corner asked for (``label_corner``), subtitles at the bottom; when a
face is given, neither ever covers the mouth (with room for the jaw to open and the head to move):
the label moves to the nearest free corner, subtitles move below the mouth or to the top.
What it does not: soft subtitle tracks, or any styling beyond white text with a dark outline.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

CJK_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian/Ubuntu: apt-get install fonts-wqy-microhei
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/PingFang.ttc",  # macOS
    "C:/Windows/Fonts/msyh.ttc",  # Windows
)
LATIN_FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                         "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text or ""))


@lru_cache(maxsize=None)
def cjk_font_path() -> str | None:
    for path in CJK_FONT_CANDIDATES:
        if Path(path).is_file():
            return path
    try:  # fontconfig knows fonts installed anywhere else
        out = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=5).stdout
        files = [line.split(":")[0].strip() for line in out.splitlines() if line.strip()]
        return files[0] if files else None
    except (OSError, subprocess.SubprocessError):
        return None


def load_font(size: int, need_cjk: bool):
    """A TrueType font of ``size`` px; None when the text needs CJK glyphs and no such font exists."""
    from PIL import ImageFont

    for path in ([cjk_font_path()] if need_cjk else [*LATIN_FONT_CANDIDATES, cjk_font_path()]):
        if path and Path(path).is_file():
            return ImageFont.truetype(path, size)
    return None if need_cjk else ImageFont.load_default(size=size)


# ---------------------------------------------------------------- cues


@dataclass
class Cue:
    start: float
    end: float
    text: str


def split_script(text: str, max_chars: int) -> list[str]:
    """Sentences, then lines of at most ``max_chars`` (CJK text counts characters, others words)."""
    pieces = [p.strip() for p in re.split(r"(?<=[.!?。！？；;])\s*", text or "") if p.strip()]
    lines: list[str] = []
    for piece in pieces:
        if has_cjk(piece):
            lines += [piece[i:i + max_chars] for i in range(0, len(piece), max_chars)]
            continue
        current = ""
        for word in piece.split():
            if current and len(current) + 1 + len(word) > max_chars:
                lines.append(current)
                current = word
            else:
                current = f"{current} {word}".strip()
        if current:
            lines.append(current)
    return lines


def subtitle_cues(script: str, duration: float, timings: Sequence = (), voiced: tuple[float, float] | None = None,
                  max_chars: int = 40) -> list[Cue]:
    """Cues showing ``script``'s own text (timings may drop punctuation or characters), timed by the speech.

    English with word timings: lines of words, each shown while its words are spoken. Otherwise each
    sentence (by sentence timings when they match the script) or the whole voiced span is shared by the
    lines in proportion to their length.
    """
    cjk = has_cjk(script)
    if cjk:
        max_chars = max(8, max_chars // 2)
    words = [t for t in timings if getattr(t, "kind", "") == "word" and str(t.text).strip()]
    if words and not cjk and len(words) == len(script.split()):
        cues, current = [], []
        for w, written in zip(words, script.split()):
            w = Cue(w.start, w.end, written)
            if current and (len(" ".join(x.text for x in current + [w])) > max_chars
                            or re.search(r"[.!?]$", current[-1].text)):
                cues.append(_cue_of(current))
                current = []
            current.append(w)
        if current:
            cues.append(_cue_of(current))
        return cues
    sentences = [t for t in timings if getattr(t, "kind", "") == "sentence" and str(t.text).strip()]
    written = [p.strip() for p in re.split(r"(?<=[.!?。！？])\s*", script or "") if p.strip()]
    if sentences and len(sentences) == len(written):
        cues = []
        for s, text in zip(sentences, written):
            cues += _spread(split_script(text, max_chars), s.start, s.end)
        return cues
    if words or sentences or any(getattr(t, "kind", "") == "phoneme" for t in timings):
        start = min(t.start for t in timings)
        end = max(t.end for t in timings)
    else:
        start, end = voiced or (0.0, duration)
    return _spread(split_script(script, max_chars), start, end)


def _cue_of(words) -> Cue:
    joiner = "" if has_cjk(words[0].text) else " "
    return Cue(words[0].start, words[-1].end, joiner.join(w.text.strip() for w in words))


def _spread(lines: list[str], start: float, end: float) -> list[Cue]:
    total = sum(len(line) for line in lines) or 1
    cues, t = [], start
    for line in lines:
        span = (end - start) * len(line) / total
        cues.append(Cue(t, t + span, line))
        t += span
    return cues


def voiced_span(loudness: np.ndarray, fps: float) -> tuple[float, float] | None:
    """First and last moment the audio is clearly above its noise floor (for timing-free subtitles)."""
    if loudness.size == 0 or loudness.max() <= 1e-4:
        return None
    on = np.nonzero(loudness > 0.1 * np.percentile(loudness, 95))[0]
    return (on[0] / fps, (on[-1] + 1) / fps) if on.size else None


# ---------------------------------------------------------------- patches and blending


@dataclass
class Patch:
    x: int
    y: int
    rgb: np.ndarray  # h x w x 3 float32
    alpha: np.ndarray  # h x w x 1 float32


LABEL_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def text_patch(text: str, frame_w: int, frame_h: int, *, size_ratio: float = 0.045, y_ratio: float = 0.93,
               box: bool = False, align: str = "center") -> Patch | None:
    """White text with a dark outline (or on a dark box), wrapped to the frame; None if no font can draw it."""
    from PIL import Image, ImageDraw

    size = max(12, int(frame_h * size_ratio))
    font = load_font(size, has_cjk(text))
    if font is None:
        return None
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    lines = _wrap(text, font, measure, int(frame_w * 0.9))
    stroke = max(1, size // 12)
    pad = stroke + (size // 4 if box else 0)
    boxes = [measure.textbbox((0, 0), line, font=font, stroke_width=stroke) for line in lines]
    line_h = int(size * 1.25)
    width = max(b[2] - b[0] for b in boxes) + 2 * pad
    height = line_h * len(lines) + 2 * pad
    img = Image.new("RGBA", (width, height), (0, 0, 0, 150 if box else 0))
    draw = ImageDraw.Draw(img)
    for i, (line, b) in enumerate(zip(lines, boxes)):
        x = pad + (width - 2 * pad - (b[2] - b[0])) // 2 - b[0]
        draw.text((x, pad + i * line_h), line, font=font, fill=(255, 255, 255, 255),
                  stroke_width=0 if box else stroke, stroke_fill=(0, 0, 0, 255))
    arr = np.asarray(img).astype(np.float32)
    width, height = min(width, frame_w), min(height, frame_h)
    arr = arr[:height, :width]
    if align == "center":
        x0 = (frame_w - width) // 2
        y0 = min(max(0, int(frame_h * y_ratio) - height), frame_h - height)
    else:  # a corner label: align is one of LABEL_CORNERS ("left" = top-left, as before)
        x0, y0 = _corner_position(align, width, height, frame_w, frame_h)
    return Patch(x0, y0, arr[..., :3], arr[..., 3:] / 255.0)


def _corner_position(corner: str, width: int, height: int, frame_w: int, frame_h: int) -> tuple[int, int]:
    margin = max(4, int(frame_h * 0.02))
    x0 = frame_w - width - margin if corner.endswith("right") else margin
    y0 = frame_h - height - margin if corner.startswith("bottom") else margin
    return max(0, min(x0, frame_w - width)), max(0, min(y0, frame_h - height))


# ---------------------------------------------------------------- keeping the mouth clear
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)


def mouth_box(face, frame_w: int, frame_h: int) -> Box | None:
    """Where the mouth may be during the video: the lips' box, widened for the jaw opening and the head's
    movement. ``face`` is a FaceLandmarks in frame pixels (None: no constraint)."""
    if face is None:
        return None
    from ..face.landmarks import LIPS_OUTER_LOWER, LIPS_OUTER_UPPER

    lips = np.asarray(face.points)[LIPS_OUTER_UPPER + LIPS_OUTER_LOWER]
    (x0, y0), (x1, y1) = lips.min(axis=0), lips.max(axis=0)
    span = max(x1 - x0, 1.0)
    move = 0.04 * max(frame_w, frame_h)  # head sway of the animation
    box = (x0 - 0.3 * span - move, y0 - 0.25 * span - move, x1 + 0.3 * span + move, y1 + 0.6 * span + move)
    return (max(0, int(box[0])), max(0, int(box[1])), min(frame_w, int(np.ceil(box[2]))),
            min(frame_h, int(np.ceil(box[3]))))


def _patch_box(patch: Patch) -> Box:
    h, w = patch.alpha.shape[:2]
    return patch.x, patch.y, patch.x + w, patch.y + h


def overlaps(a: Box | None, b: Box | None) -> bool:
    return a is not None and b is not None and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_label(patch: Patch, corner: str, frame_w: int, frame_h: int, mouth: Box | None) -> Patch:
    """The label in ``corner``, or the nearest corner that leaves the mouth clear (same side first)."""
    h, w = patch.alpha.shape[:2]
    flip_v = ("bottom" if corner.startswith("top") else "top") + corner[corner.index("-"):]
    flip_h = corner[:corner.index("-")] + ("-left" if corner.endswith("right") else "-right")
    opposite = flip_v[:flip_v.index("-")] + flip_h[flip_h.index("-"):]
    for candidate in (corner, flip_v, flip_h, opposite):
        x0, y0 = _corner_position(candidate, w, h, frame_w, frame_h)
        if not overlaps((x0, y0, x0 + w, y0 + h), mouth):
            return Patch(x0, y0, patch.rgb, patch.alpha)
    # the mouth fills the frame's width and height: the corner farthest from the mouth's centre
    cx, cy = (mouth[0] + mouth[2]) / 2, (mouth[1] + mouth[3]) / 2
    x0, y0 = _corner_position(("top" if cy > frame_h / 2 else "bottom") + ("-left" if cx > frame_w / 2 else "-right"),
                              w, h, frame_w, frame_h)
    return Patch(x0, y0, patch.rgb, patch.alpha)


def place_subtitle(patch: Patch, frame_w: int, frame_h: int, avoid: list[Box | None]) -> Patch:
    """Subtitles at the bottom, or just below the mouth, or at the top, or just above the mouth: the first
    place that covers neither the mouth nor the label (``avoid``)."""
    h, w = patch.alpha.shape[:2]
    margin = max(4, int(frame_h * 0.02))
    mouth = avoid[0] if avoid else None
    candidates = [patch.y]
    if mouth is not None:
        candidates += [mouth[3] + margin // 2, margin, mouth[1] - h - margin // 2]
    else:
        candidates += [margin]
    for y0 in candidates:
        y0 = int(y0)
        if 0 <= y0 <= frame_h - h and not any(overlaps((patch.x, y0, patch.x + w, y0 + h), box) for box in avoid):
            return Patch(patch.x, y0, patch.rgb, patch.alpha)
    for y0 in candidates:  # nothing is free of both: at least keep the mouth clear
        y0 = int(y0)
        if 0 <= y0 <= frame_h - h and not overlaps((patch.x, y0, patch.x + w, y0 + h), mouth):
            return Patch(patch.x, y0, patch.rgb, patch.alpha)
    return patch


def _wrap(text: str, font, draw, max_width: int) -> list[str]:
    tokens = list(text) if has_cjk(text) else text.split()
    joiner = "" if has_cjk(text) else " "
    lines, current = [], ""
    for tok in tokens:
        trial = f"{current}{joiner}{tok}" if current else tok
        if current and draw.textlength(trial, font=font) > max_width:
            lines.append(current)
            current = tok
        else:
            current = trial
    return (lines + [current]) if current else lines or [""]


def blend(frame: np.ndarray, patch: Patch) -> None:
    h, w = patch.alpha.shape[:2]
    roi = frame[patch.y:patch.y + h, patch.x:patch.x + w].astype(np.float32)
    frame[patch.y:patch.y + h, patch.x:patch.x + w] = (roi * (1 - patch.alpha) + patch.rgb * patch.alpha).astype(np.uint8)


class Overlays:
    """Per-frame overlays for one video: patches are made once, on first use, and reused.

    ``label_corner``: one of LABEL_CORNERS; ``face``: the face's landmarks in frame pixels, so that the
    label and the subtitles keep clear of the mouth."""

    def __init__(self, width: int, height: int, fps: float, cues: Sequence[Cue] = (), label: str | None = None,
                 *, label_corner: str = "top-left", face=None):
        if label_corner not in LABEL_CORNERS:
            raise ValueError(f"label_corner must be one of {LABEL_CORNERS}, not {label_corner!r}")
        self.width, self.height, self.fps = width, height, fps
        self.cues = list(cues)
        self._patches: dict[int, Patch | None] = {}
        self.mouth = mouth_box(face, width, height)
        self.label = text_patch(label, width, height, size_ratio=0.032, box=True, align=label_corner) if label else None
        if self.label is not None:
            self.label = place_label(self.label, label_corner, width, height, self.mouth)
        self.missing_font = any(has_cjk(c.text) for c in self.cues) and cjk_font_path() is None

    def apply(self, frame: np.ndarray, index: int) -> np.ndarray:
        t = (index + 0.5) / self.fps
        for i, cue in enumerate(self.cues):
            if cue.start <= t < cue.end:
                if i not in self._patches:
                    patch = text_patch(cue.text, self.width, self.height)
                    avoid = [self.mouth, _patch_box(self.label) if self.label is not None else None]
                    self._patches[i] = place_subtitle(patch, self.width, self.height, avoid) if patch else None
                if self._patches[i] is not None:
                    blend(frame, self._patches[i])
                break
        if self.label is not None:
            blend(frame, self.label)
        return frame
