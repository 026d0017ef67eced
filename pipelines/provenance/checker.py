"""The checker: what a file says about where it came from (Content Credentials, our watermark, stored
parameters), for the UI's "Check a file" section and ``python -m pipelines.provenance check FILE``.

It reports what it finds and never concludes "not AI-generated": a missing mark or manifest proves
nothing (they are easy to strip, and other tools do not add them), and the summary says so.
Bad input (not a media file, empty, too big, a damaged video) raises UserError in English and Chinese.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UserError
from .credentials import Credentials, read_credentials

MAX_CHECK_BYTES = 1024 ** 3  # 1 GiB: refused from the file's size, before reading any of it
VIDEO_FRAMES_TO_AVERAGE = 16
MAX_IMAGE_PIXELS = 100_000_000


@dataclass
class ProvenanceReport:
    path: Path
    kind: str  # image | video | audio
    mime: str
    c2pa: str  # valid | tampered | invalid | absent
    credentials: Credentials
    watermark: bool
    payload: dict | None = None  # {"studio": ..., "output_id": ...} when our watermark was found
    parameters: dict[str, Any] = field(default_factory=dict)  # stored in the file, or in its sidecar JSON
    parameters_source: str = ""  # "png text", "mp4 tags", "sidecar json"
    watermark_in: tuple[str, ...] = ()  # where the mark was read: "image", "frames", "audio"

    def to_json(self) -> dict:
        """The one object ``--json`` prints."""
        return {"c2pa": self.c2pa, "watermark": self.watermark, "payload": self.payload,
                "parameters": self.parameters, "watermark_in": list(self.watermark_in)}

    @property
    def ids_match(self) -> bool | None:
        """True when the watermark's output id is the one the Content Credentials name."""
        claimed = self.credentials.generation.get("output_id")
        if not (self.payload and claimed):
            return None
        return self.payload["output_id"] == claimed

    def summary(self, language: str = "en") -> str:
        zh = (language or "").startswith("zh")
        lines = [_c2pa_line(self, zh), _watermark_line(self, zh)]
        if self.ids_match is True:
            lines.append("水印与内容凭证中的输出编号一致。" if zh else "The watermark and the Content Credentials name the same output id.")
        elif self.ids_match is False:
            lines.append("注意：水印与内容凭证中的输出编号不一致。" if zh
                         else "Note: the watermark and the Content Credentials name different output ids.")
        if self.parameters:
            source = {"png text": "PNG 文本块", "mp4 tags": "MP4 元数据", "sidecar json": "旁路 JSON 文件"}.get(
                self.parameters_source, self.parameters_source) if zh else self.parameters_source
            keys = ", ".join(list(self.parameters)[:8])
            lines.append(f"文件中存有生成参数（来自{source}）：{keys}" if zh
                         else f"Generation parameters are stored with the file ({source}): {keys}")
        else:
            lines.append("文件中没有生成参数。" if zh else "No generation parameters are stored with the file.")
        if self.c2pa != "valid" and not self.watermark:
            lines.append("没有找到标记并不能证明内容不是 AI 生成的：标记可以被去除，很多工具也根本不加标记。" if zh
                         else "Finding no mark does not show that this is not AI-generated: marks can be "
                              "removed, and many tools never add them.")
        return "\n".join(lines)


def _c2pa_line(report: ProvenanceReport, zh: bool) -> str:
    cred = report.credentials
    if report.c2pa == "absent":
        return "内容凭证（C2PA）：无。" if zh else "Content Credentials (C2PA): none."
    if report.c2pa == "tampered":
        return ("内容凭证（C2PA）：已被篡改——签名之后文件内容被改动过，凭证中的说法不再适用于现在的内容。" if zh
                else "Content Credentials (C2PA): TAMPERED - the content was changed after it was signed, so "
                     "the claims no longer describe what you see.")
    if report.c2pa == "invalid":
        return ("内容凭证（C2PA）：无效——凭证是伪造的或已损坏（签名或声明无法验证），请不要相信其中的说法。" if zh
                else "Content Credentials (C2PA): INVALID - the manifest is forged or damaged (its signature or "
                     "claims do not verify); do not trust what it says.")
    what = []
    if cred.ai_generated:
        what.append("由训练的 AI 模型生成" if zh else "created by a trained AI model")
    model, engine = cred.generation.get("model"), cred.generation.get("engine")
    if model or engine:
        what.append((f"模型 {model}，引擎 {engine}" if zh else f"model {model}, engine {engine}"))
    if cred.generation.get("consent"):
        what.append("声明已获得本人同意" if zh else f"consent: {cred.generation['consent']}")
    signer = cred.signer or "?"
    trust = ("（签名者在 C2PA 信任列表中）" if cred.trusted else "（自签名证书，不在任何信任列表中）") if zh else \
        (" (signer on a C2PA trust list)" if cred.trusted else " (self-signed: the signer is on no trust list)")
    if zh:
        return f"内容凭证（C2PA）：有效，由 {cred.claim_generator} 签发，签名者 {signer}{trust}；" + "；".join(what) + "。"
    return f"Content Credentials (C2PA): valid, issued by {cred.claim_generator}, signed by {signer}{trust}; " + \
        "; ".join(what) + "."


def _watermark_line(report: ProvenanceReport, zh: bool) -> str:
    if report.watermark:
        oid = report.payload["output_id"]
        where = ""
        if report.kind == "video":
            names = {"frames": ("画面", "the pictures"), "audio": ("声音", "the sound")}
            found = [names[w][0 if zh else 1] for w in report.watermark_in if w in names]
            where = ("（在" + "和".join(found) + "中）") if zh else " in " + " and ".join(found)
        return (f"隐形水印：找到本工作室的水印{where}（输出编号 {oid}）——此文件由本工作室的 AI 生成。" if zh
                else f"Invisible watermark: found this studio's mark{where} (output id {oid}) - this file was "
                     "generated by AI in this studio.")
    return "隐形水印：未找到本工作室的水印。" if zh else "Invisible watermark: this studio's mark was not found."


# ---------------------------------------------------------------- reading the file
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", 0, "image", "image/png"),
    (b"\xff\xd8\xff", 0, "image", "image/jpeg"),
    (b"GIF8", 0, "image", "image/gif"),
    (b"ID3", 0, "audio", "audio/mpeg"),
    (b"fLaC", 0, "audio", "audio/flac"),
    (b"OggS", 0, "audio", "audio/ogg"),
)


def sniff(head: bytes) -> tuple[str, str] | None:
    """(kind, mime) from a file's first bytes; None for anything that is not an image, video or audio."""
    for magic, offset, kind, mime in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return kind, mime
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", "audio/wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio", "audio/mp4"
        return "video", "video/quicktime" if brand == b"qt  " else "video/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:  # MPEG audio frame sync
        return "audio", "audio/mpeg"
    return None


def _check_input(path: Path) -> tuple[str, str]:
    if not path.exists():
        raise UserError(f"File not found: {path.name}", zh=f"找不到文件：{path.name}")
    if not path.is_file():
        raise UserError(f"{path.name} is not a file.", zh=f"{path.name} 不是文件。")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path.name} is empty (0 bytes): there is nothing to check.",
                        zh=f"{path.name} 是空文件（0 字节），没有可检查的内容。")
    if size > MAX_CHECK_BYTES:
        raise UserError(f"{path.name} is {size / 1024 ** 3:.1f} GB; the checker reads files up to "
                        f"{MAX_CHECK_BYTES // 1024 ** 3} GB. Trim or re-encode a shorter copy.",
                        zh=f"{path.name} 大小为 {size / 1024 ** 3:.1f} GB；检查器只读取不超过 "
                           f"{MAX_CHECK_BYTES // 1024 ** 3} GB 的文件。请剪短或重新编码一份较小的副本。")
    with open(path, "rb") as handle:
        head = handle.read(32)
    found = sniff(head)
    if found is None:
        raise UserError(f"{path.name} is not an image, video or audio file (PNG, JPEG, MP4, WAV, MP3...), "
                        "so there is nothing to check.",
                        zh=f"{path.name} 不是图片、视频或音频文件（PNG、JPEG、MP4、WAV、MP3 等），无法检查。")
    return found


def _image_watermark(path: Path):
    from PIL import Image, UnidentifiedImageError

    from .image_watermark import detect_watermark

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UserError("The image is too large to check (over 100 megapixels).",
                                zh="图片太大（超过 1 亿像素），无法检查。")
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path.name} looks like an image but cannot be decoded: it is damaged.",
                        zh=f"{path.name} 看起来是图片，但无法解码：文件已损坏。") from exc
    return detect_watermark(rgb)


def _probe(path: Path) -> str:
    """What ffmpeg says of the file's streams (its banner on stderr)."""
    from ..core.media import ffmpeg_exe

    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def sample_video_frames(path: Path, frames: int = VIDEO_FRAMES_TO_AVERAGE, probe: str | None = None) -> np.ndarray:
    """``frames`` frames spread over the video, (n, h, w, 3) uint8 (``probe``: :func:`_probe`'s text, when
    already read). Raises UserError when the video cannot be decoded."""
    from ..core.media import ffmpeg_exe

    damaged = UserError(f"{path.name} is a damaged or unreadable video: its frames cannot be decoded.",
                        zh=f"{path.name} 是损坏或无法读取的视频：无法解码其中的画面。")
    probe = _probe(path) if probe is None else probe
    import re

    size = re.search(r"Video: .*?(\d{2,5})x(\d{2,5})", probe)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", probe)
    if not size:
        raise damaged
    width, height = int(size.group(1)), int(size.group(2))
    seconds = (int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))) if duration else 0
    rate = max(frames / seconds, 0.1) if seconds > 0 else 25
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf", f"fps={rate:.4f}",
                           "-frames:v", str(frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, timeout=600)
    count = len(proc.stdout) // (width * height * 3)
    if count == 0:
        raise damaged
    return np.frombuffer(proc.stdout[:count * width * height * 3], np.uint8).reshape(count, height, width, 3)


def _video_watermark(path: Path) -> list[tuple[str, object]]:
    """The reads of the pictures and of the sound track (a twin video carries the mark in both)."""
    from .image_watermark import detect_watermark

    probe = _probe(path)
    frames = sample_video_frames(path, probe=probe)
    # the mean of the frames first: the mark of a talking head is the same in every frame, the coding noise
    # is not; then single frames, for videos whose every frame is a new picture (a face morph)
    read = detect_watermark(np.rint(frames.mean(axis=0)).astype(np.uint8))
    for frame in frames[::max(1, len(frames) // 4)] if not read.found else ():
        read = detect_watermark(frame)
        if read.found:
            break
    reads = [("frames", read)]
    if " Audio: " in probe:
        try:
            reads.append(("audio", _audio_watermark(path)))
        except UserError:  # a sound track ffmpeg cannot decode: the pictures still tell
            pass
    return reads


def _audio_watermark(path: Path):
    from ..core.media import load_audio
    from .audio_watermark import detect_audio_watermark

    try:
        audio, rate = load_audio(path)
    except UserError as exc:
        raise UserError(f"{path.name} is a damaged or unreadable audio file.",
                        zh=f"{path.name} 是损坏或无法读取的音频文件。") from exc
    return detect_audio_watermark(audio, rate)


def _parameters(path: Path, kind: str, mime: str) -> tuple[dict, str]:
    if mime == "image/png":
        from ..core.png_metadata import read_png_parameters

        try:
            params = read_png_parameters(path)
        except Exception:  # noqa: BLE001 - damaged text chunks: fall through to the sidecar
            params = {}
        if params:
            return params, "png text"
    if kind == "video":
        from ..core.media import read_tags

        comment = read_tags(path).get("comment", "")
        try:
            params = json.loads(comment) if comment.strip().startswith("{") else {}
        except ValueError:
            params = {}
        if params:
            return params, "mp4 tags"
    sidecar = path.with_name(path.name + ".json")
    if sidecar.is_file() and sidecar.stat().st_size < 1_000_000:
        try:
            params = json.loads(sidecar.read_text(encoding="utf-8"))
            if isinstance(params, dict):
                return params, "sidecar json"
        except (ValueError, UnicodeDecodeError):
            pass
    return {}, ""


def check_file(path: str | Path) -> ProvenanceReport:
    """Content Credentials, our watermark and the stored parameters of ``path``."""
    path = Path(path)
    kind, mime = _check_input(path)
    credentials = read_credentials(path, mime)
    if kind == "video":
        reads = _video_watermark(path)
    else:
        reads = [(kind, (_image_watermark if kind == "image" else _audio_watermark)(path))]
    found = [(where, read) for where, read in reads if read.found]
    payload = found[0][1].payload.as_dict() if found else None  # the pictures' read first
    parameters, source = _parameters(path, kind, mime)
    return ProvenanceReport(path=path, kind=kind, mime=mime, c2pa=credentials.status, credentials=credentials,
                            watermark=bool(found), payload=payload, parameters=parameters, parameters_source=source,
                            watermark_in=tuple(where for where, _ in found))
