"""Audio in, video out, with the ffmpeg binary that ``imageio-ffmpeg`` ships (no system ffmpeg needed).

What it does: the one audio loader (any file ffmpeg reads -> mono float32, too-long files refused
from their header before decoding); the one MP4 writer (RGB frames streamed into H.264 yuv420p + AAC
as they are made, so memory does not grow with the clip's length); reads back what a video holds
(codecs, pixel format, frame count, audio length) for tests and benchmarks; puts the bundled ffmpeg
first on the PATH for libraries that call ``ffmpeg`` by name (Gradio's streaming).
What it does not: edit or cut videos, or hold a clip in memory.
"""
from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cpu import BACKGROUND_NICENESS
from .errors import UserError


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_path_folder: str | None = None


def bundled_ffmpeg_first_on_path() -> None:
    """Make ``ffmpeg`` on the PATH the bundled one, for this process (and what it starts) from now on.

    Gradio's streaming runs ``ffmpeg`` by name two or three times per streamed segment. Debian's ffmpeg
    loads about 200 shared libraries and takes about 0.1 s to start, imageio-ffmpeg's static build about
    0.01 s (a full build: the same encoders and muxers, newer). The live conversation sends a segment every
    second and waits for the first one, so that start-up is latency. ``ffprobe`` stays the system's (none
    is bundled). Idempotent; nothing happens if the bundled binary is missing."""
    global _path_folder
    if _path_folder is not None:
        return
    try:
        exe = Path(ffmpeg_exe())
    except Exception:  # noqa: BLE001 - imageio-ffmpeg missing or without a binary: keep the system's
        return
    if not exe.is_file():
        return
    folder = tempfile.mkdtemp(prefix="aigc-ffmpeg-")
    (Path(folder) / "ffmpeg").symlink_to(exe)
    atexit.register(shutil.rmtree, folder, True)
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
    _path_folder = folder


# ---------------------------------------------------------------- audio
@dataclass
class AudioHeader:
    """What a file's header says, read without decoding the sound."""

    seconds: float | None  # None when the container does not say (a live stream...)
    sample_rate: int | None


def read_audio_header(path: Path) -> AudioHeader:
    """Length and rate from the header: libsndfile for the formats it knows, else ffmpeg's summary
    (``ffmpeg -i`` reads the container, not the sound; imageio-ffmpeg ships no ffprobe)."""
    try:
        import soundfile as sf

        info = sf.info(str(path))
        if info.samplerate > 0 and info.frames > 0:
            return AudioHeader(info.frames / info.samplerate, int(info.samplerate))
    except Exception:  # noqa: BLE001 - not a format libsndfile knows
        pass
    summary = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                             capture_output=True, text=True, timeout=60).stderr
    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", summary)
    rate = re.search(r"Audio: .*?(\d+) Hz", summary)
    seconds = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)) if duration else None
    return AudioHeader(seconds, int(rate.group(1)) if rate else None)


def load_audio(path: str | Path, sample_rate: int | None = None, *,
               max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and their rate, from any audio (or video) file ffmpeg reads.

    ``sample_rate``: resample to it (default: the file's own rate). ``max_seconds``: refuse longer
    files, judged from the header before any decoding (and decoding stops just past it when the
    header does not say), so a two-hour upload costs nothing. Empty, damaged or silent-less files
    are refused with a clear message.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Audio file not found: {path.name}", zh=f"找不到音频文件：{path.name}")
    if path.stat().st_size == 0:
        raise UserError("The audio file is empty.", zh="音频文件是空的。")
    # 1. The length, from the header
    header = read_audio_header(path)
    if max_seconds is not None and header.seconds is not None and header.seconds > max_seconds:
        raise _too_long(header.seconds, max_seconds)
    # 2. Decode: libsndfile in-process for wav/flac/ogg/mp3 at their own rate, else ffmpeg
    samples, rate = None, None
    if sample_rate in (None, header.sample_rate):
        try:
            import soundfile as sf

            audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
            samples = audio.mean(axis=1)
        except Exception:  # noqa: BLE001 - not a format libsndfile knows: let ffmpeg try
            samples = None
    if samples is None:
        rate = sample_rate or header.sample_rate or 22050
        cmd = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path)]
        if max_seconds is not None:
            cmd += ["-t", str(max_seconds + 1)]  # the header did not say: stop just past the limit
        proc = subprocess.run(cmd + ["-vn", "-ac", "1", "-ar", str(rate), "-f", "f32le", "-"], capture_output=True,
                              timeout=600)
        if proc.returncode != 0 or not proc.stdout:
            raise UserError(f"Could not read the audio file {path.name}: it is damaged or not audio.",
                            zh=f"无法读取音频文件 {path.name}：文件已损坏或不是音频。")
        samples = np.frombuffer(proc.stdout, np.float32)
    # 3. Check what came out
    if max_seconds is not None and len(samples) / rate > max_seconds:
        raise _too_long(len(samples) / rate, max_seconds)
    if len(samples) == 0 or not np.isfinite(samples).all():
        raise UserError("The audio file has no usable sound.", zh="音频文件中没有可用的声音。")
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)


def _too_long(seconds: float, limit: float) -> UserError:
    return UserError(f"The recording is too long ({seconds / 60:.1f} minutes); the limit is {limit / 60:g} minutes. "
                     "Please cut it.",
                     zh=f"录音太长（{seconds / 60:.1f} 分钟），上限为 {limit / 60:g} 分钟。请剪短后再试。")


def audio_duration(path: str | Path) -> float | None:
    """Seconds of audio in a file, from its header (nothing is decoded); None when it cannot be told."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        import soundfile as sf

        info = sf.info(str(path))
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - not a format soundfile knows: ask ffmpeg
        pass
    try:
        proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(rb"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", proc.stderr)
    if not found:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1, 1).astype(np.float32), sample_rate, subtype="PCM_16")
    return path


# ---------------------------------------------------------------- video out
class Mp4Writer:
    """Pipe raw RGB frames to ffmpeg: H.264 yuv420p, AAC audio, +faststart, metadata tags.

    ``with Mp4Writer(path, 512, 512, 25, audio=(samples, rate)) as w: w.write(frame)``; on an
    exception inside the block the ffmpeg process is killed and the partial file removed.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, *,
                 audio: tuple[np.ndarray, int] | None = None, metadata: dict[str, str] | None = None,
                 preset: str = "veryfast", crf: int = 20, tune: str | None = None, background: bool = False):
        """``tune``: x264's tuning (``zerolatency`` for live segments). ``background``: encode at a lower CPU
        priority (``nice``), so that quick work sharing the machine (a text or voice answer) goes first; alone
        on the machine it is just as fast."""
        if width % 2 or height % 2:
            raise ValueError("yuv420p needs even width and height")
        self.path, self.width, self.height, self.fps = Path(path), width, height, fps
        self.frames_written = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="twin-audio-")
        # frames go in as RGB: ffmpeg's own conversion to 4:2:0 keeps the frame watermark (which lives in the
        # colour planes) readable; a plain 2x2 mean of the colour made here read back less often (14 of 16)
        cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
        if audio is not None:
            wav = write_wav(Path(self._tmp.name) / "audio.wav", *audio)
            cmd += ["-i", str(wav)]
        cmd += ["-map", "0:v"] + (["-map", "1:a", "-c:a", "aac", "-b:a", "128k"] if audio is not None else [])
        cmd += ["-c:v", "libx264", "-preset", preset] + (["-tune", tune] if tune else [])
        cmd += ["-crf", str(crf), "-pix_fmt", "yuv420p",
                "-movflags", "+faststart+use_metadata_tags"]
        for key, value in (metadata or {}).items():
            cmd += ["-metadata", f"{key}={value}"]
        cmd += ["-f", "mp4", str(self.path)]
        if background and shutil.which("nice"):
            cmd = [shutil.which("nice"), "-n", str(BACKGROUND_NICENESS)] + cmd
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {(self.height, self.width, 3)}, got {frame.dtype} {frame.shape}")
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(frame)))
        except BrokenPipeError:
            raise RuntimeError("ffmpeg stopped: " + self._proc.stderr.read().decode(errors="replace")[-500:])
        self.frames_written += 1

    def close(self) -> None:
        self._proc.stdin.close()
        err = self._proc.stderr.read().decode(errors="replace")
        code = self._proc.wait()
        self._tmp.cleanup()
        if code != 0:
            raise RuntimeError(f"ffmpeg failed ({code}): {err[-500:]}")

    def abort(self) -> None:
        self._proc.kill()
        self._proc.wait()
        self._tmp.cleanup()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


# ---------------------------------------------------------------- reading back
def read_tags(path: Path) -> dict[str, str]:
    """The file's metadata tags, whole (ffmpeg's stream summary cuts long values)."""
    text = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"],
                          capture_output=True, text=True).stdout
    tags = {}
    for line in text.splitlines()[1:]:  # the first line is ";FFMETADATA1"
        key, sep, value = line.partition("=")
        if sep:
            tags[key] = re.sub(r"\\(.)", r"\1", value)  # ffmetadata escapes = ; # \\ and newlines
    return tags


@dataclass
class VideoInfo:
    video_codec: str
    pixel_format: str
    width: int
    height: int
    fps: float
    frames: int
    audio_codec: str | None
    audio_seconds: float
    tags: dict[str, str]

    @property
    def video_seconds(self) -> float:
        return self.frames / self.fps


def probe_video(path: Path) -> VideoInfo:
    """Codecs and tags from ffmpeg's stream summary; frames and audio length by decoding (exact)."""
    exe = ffmpeg_exe()
    summary = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    video = re.search(r"Video: (\w+).*?, (\w+)(?:\(.*?\))?, (\d+)x(\d+).*?([\d.]+) fps", summary)
    if not video:
        raise ValueError(f"no video stream in {path}: {summary[-300:]}")
    audio = re.search(r"Audio: (\w+)", summary)
    tags = read_tags(path)
    decoded = subprocess.run([exe, "-v", "error", "-i", str(path), "-map", "0:v", "-f", "null", "-",
                              "-progress", "pipe:1"], capture_output=True, text=True).stdout
    frames = int(re.findall(r"frame=(\d+)", decoded)[-1])
    seconds = 0.0
    if audio:
        pcm = subprocess.run([exe, "-v", "error", "-i", str(path), "-map", "0:a", "-ac", "1", "-ar", "16000",
                              "-f", "s16le", "-"], capture_output=True).stdout
        seconds = len(pcm) / 2 / 16000
    return VideoInfo(video.group(1), video.group(2), int(video.group(3)), int(video.group(4)),
                     float(video.group(5)), frames, audio.group(1) if audio else None, seconds, tags)


# ---------------------------------------------------------------- video in
def iter_video_frames(path: Path, width: int, height: int, fps: float, n_frames: int):
    """Exactly ``n_frames`` RGB uint8 frames of a video, resampled to ``fps`` and scaled to ``width`` x ``height``.

    For engines that get a finished video back (cloud services): the pipeline's own post-processing then
    applies to their frames. A video shorter than ``n_frames`` repeats its last frame; a longer one is cut.
    """
    frame_bytes = width * height * 3
    proc = subprocess.Popen([ffmpeg_exe(), "-v", "error", "-i", str(path), "-an", "-vf",
                             f"fps={fps},scale={width}:{height}:flags=bicubic", "-pix_fmt", "rgb24",
                             "-f", "rawvideo", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    last = None
    try:
        for _ in range(n_frames):
            data = proc.stdout.read(frame_bytes)  # b"" once the video has ended
            if len(data) == frame_bytes:
                last = np.frombuffer(data, np.uint8).reshape(height, width, 3).copy()
            elif last is None:
                raise UserError(f"The video {Path(path).name} has no frames that can be read.",
                                zh=f"无法读取视频 {Path(path).name} 中的画面。")
            yield last
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
