"""Things burned into twin videos: subtitles timed to the speech and a visible "AI-generated" label.

What it does: finds a font that can draw the text (Chinese needs a CJK font, e.g. Debian's
``fonts-wqy-microhei``), splits a script into subtitle cues timed by the voice engine's timings (or,
without timings, spread over the audio by length), renders each cue once as an RGBA patch, and blends
the patches onto frames (cheap: only the patch's pixels are touched).
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
    else:  # top-left corner label
        x0 = y0 = max(4, int(frame_h * 0.02))
        x0, y0 = min(x0, frame_w - width), min(y0, frame_h - height)
    return Patch(x0, y0, arr[..., :3], arr[..., 3:] / 255.0)


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
    """Per-frame overlays for one video: patches are made once, on first use, and reused."""

    def __init__(self, width: int, height: int, fps: float, cues: Sequence[Cue] = (), label: str | None = None):
        self.width, self.height, self.fps = width, height, fps
        self.cues = list(cues)
        self._patches: dict[int, Patch | None] = {}
        self.label = text_patch(label, width, height, size_ratio=0.032, box=True, align="left") if label else None
        self.missing_font = any(has_cjk(c.text) for c in self.cues) and cjk_font_path() is None

    def apply(self, frame: np.ndarray, index: int) -> np.ndarray:
        t = (index + 0.5) / self.fps
        for i, cue in enumerate(self.cues):
            if cue.start <= t < cue.end:
                if i not in self._patches:
                    self._patches[i] = text_patch(cue.text, self.width, self.height)
                if self._patches[i] is not None:
                    blend(frame, self._patches[i])
                break
        if self.label is not None:
            blend(frame, self.label)
        return frame
