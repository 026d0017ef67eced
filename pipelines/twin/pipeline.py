"""My digital twin: a photo + a script (or a voice recording) -> a talking-head MP4, offline on a CPU.

What it does, step by step: checks the inputs; loads the photo (EXIF rotation honoured, big photos
downscaled); finds the face with MediaPipe Face Mesh (the largest, or the one asked for); speaks the
script with the voice synthesis pipeline unless a recording is given; animates the face with a
talking-head engine (the built-in "classic" one by default); streams the frames, with optional
subtitles and a visible "AI-generated" label, into an H.264 yuv420p + AAC MP4 whose metadata holds
the generation parameters (also saved beside it as JSON).
What it does not: write the script (``text_generation.write_twin_script`` does), or keep frames in
memory (they go to the encoder as they are made). A Stop discards the unfinished video.

Consent: the caller confirms it has the right to animate the face. The UI asks with a checkbox; the
Python function takes ``consent`` (False is refused); the CLI and the HTTP API treat the call itself
as that declaration (documented in their help), and their videos always carry the "AI-generated" label.

    python -m pipelines.digital_twin --photo assets/astronaut.jpg --text "Hello!" --out hello.mp4
    python -m pipelines.digital_twin --photo me.jpg --audio my_voice.wav --out me.mp4
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..face import landmarks as fl
from ..core.errors import ModelLoadError, UserError
from ..core.jobs import ProgressFn, StopToken, check_stop, report
from ..core.notices import Notice
from ..core.seeds import resolve_seed
from ..core.outputs import atomic_path, new_output_path, sidecar_of
from ..core.runtime import Runtime
from .framing import FACE_CROP_SIZE, frame_face, frame_photo  # noqa: F401 - scripts call frame_photo from here

MAX_SECONDS = 300.0  # 5 minutes: longer clips are refused with a reason, not rendered for an hour
MAX_PHOTO_SIDE = 2048  # bigger photos are downscaled first
MAX_PHOTO_PIXELS = 100_000_000  # refuse to even decode more than this (a 20000 x 20000 image is 400 MP)
MIN_PHOTO_SIDE = 64
MIN_FACE_WIDTH = 60  # pixels across the face in the (downscaled) photo
OUTPUT_SIZES = ("face", "photo")  # a 512 px face crop, or the photo's own size up to 1080p
AI_LABELS = {"en": "AI-generated", "zh": "AI 生成"}  # the burned-in label, in the language asked for


@dataclass
class TwinVideo:
    path: Path
    params_path: Path
    seconds: float
    frames: int
    fps: int
    width: int
    height: int
    seed: int
    voice: str  # the voice(s) that spoke, comma-separated, or "recording"
    faces_found: int
    face_index: int
    notices: list[Notice] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- 1. inputs


def load_photo(photo: Any) -> np.ndarray:
    """RGB uint8 array from a path, PIL image or array; EXIF rotation applied; downscaled to 2048 px."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if photo is None or (isinstance(photo, str) and not photo.strip()):
        raise UserError("Please choose a photo with a face.", zh="请选择一张有人脸的照片。")
    if isinstance(photo, np.ndarray):
        image = Image.fromarray(photo.astype(np.uint8) if photo.dtype != np.uint8 else photo)
    elif isinstance(photo, Image.Image):
        image = photo
    else:
        path = Path(str(photo))
        if not path.is_file():
            raise UserError(f"Photo not found: {path.name}", zh=f"找不到照片：{path.name}")
        try:
            image = Image.open(path)  # lazy: reads the header only, so the size check below costs nothing
            w, h = image.size
            if w * h > MAX_PHOTO_PIXELS:
                raise UserError(f"The photo is too large ({w}x{h}); please use one under 100 megapixels.",
                                zh=f"照片太大（{w}x{h}），请使用小于 1 亿像素的照片。")
            image.draft("RGB", (MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))  # JPEG: decode at a reduced size directly
            image.load()
        except UserError:
            raise
        except Image.DecompressionBombError as exc:
            raise UserError("The photo is too large; please use one under 100 megapixels.",
                            zh="照片太大，请使用小于 1 亿像素的照片。") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"This file is not an image I can read ({path.suffix or 'no extension'}).",
                            zh=f"无法识别此文件为图片（{path.suffix or '无扩展名'}）。") from exc
    image = ImageOps.exif_transpose(image)
    w, h = image.size
    if w * h > MAX_PHOTO_PIXELS:
        raise UserError(f"The photo is too large ({w}x{h}); please use one under 100 megapixels.",
                        zh=f"照片太大（{w}x{h}），请使用小于 1 亿像素的照片。")
    if min(w, h) < MIN_PHOTO_SIDE:
        raise UserError(f"The photo is too small ({w}x{h}); it needs at least {MIN_PHOTO_SIDE} px on each side.",
                        zh=f"照片太小（{w}x{h}），每边至少需要 {MIN_PHOTO_SIDE} 像素。")
    image = image.convert("RGB")
    if max(w, h) > MAX_PHOTO_SIDE:
        image.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image).copy()


def choose_face(faces: list[fl.FaceLandmarks], face_index: int | None) -> tuple[fl.FaceLandmarks, int]:
    if not faces:
        raise UserError("No face was found in this photo. Use a clear, front-facing photo of one person "
                        "(real faces work best; drawings and cartoons are often not recognised).",
                        zh="照片中没有找到人脸。请使用一张清晰的正面人像照片（真人照片效果最好，漫画和绘画通常无法识别）。")
    index = 0 if face_index is None else int(face_index)
    if not 0 <= index < len(faces):
        raise UserError(f"Face {index + 1} does not exist: the photo has {len(faces)} face(s).",
                        zh=f"不存在第 {index + 1} 张脸：照片中只有 {len(faces)} 张脸。")
    face = faces[index]
    if face.width < MIN_FACE_WIDTH:
        raise UserError(f"The face is too small ({face.width:.0f} px wide; at least {MIN_FACE_WIDTH} px needed) "
                        "to animate well. Use a closer photo or crop it around the face.",
                        zh=f"人脸太小（宽 {face.width:.0f} 像素，至少需要 {MIN_FACE_WIDTH} 像素），无法很好地驱动。"
                           "请使用更近的照片，或把照片裁剪到脸部附近。")
    # Not a person (a cat, a logo), turned too far, or the mouth covered: the same checks, and the same
    # message, at the photo step and at the render (faces from detect_faces carry their check).
    problem = face.check.error() if face.check is not None else None
    if problem is not None:
        raise problem
    return face, index


def _check_inputs(script: str, audio: Any, expression: float, fps: int, output_size: str, consent: bool) -> None:
    if not consent:
        raise UserError("Please confirm that you have the right to animate this face (the consent box).",
                        zh="请先确认你有权让这张脸动起来（勾选同意框）。")
    if not (script or "").strip() and not audio:
        raise UserError("Write a script (or let the script writer make one), or give a voice recording.",
                        zh="请输入脚本（或用脚本生成器写一段），或提供一段录音。")
    if output_size not in OUTPUT_SIZES:
        raise UserError(f"Output size must be one of {OUTPUT_SIZES}.", zh=f"输出尺寸必须是 {OUTPUT_SIZES} 之一。")
    if not 0 <= float(expression) <= 2:
        raise UserError("Expression intensity must be between 0 and 2.", zh="表情强度必须在 0 到 2 之间。")
    if not 10 <= int(fps) <= 60:
        raise UserError("Frame rate must be between 10 and 60.", zh="帧率必须在 10 到 60 之间。")


def _check_length(script: str, voice: str | None, audio: Any, max_seconds: float, runtime: Runtime) -> None:
    """Refuse a job whose speech would be longer than ``max_seconds`` before any of it is made: a script by
    the least time it can take to speak (its length and the voice's speaking rate), a recording by its
    header. (The exact length is checked again once the speech exists.)"""
    if audio is not None and not isinstance(audio, tuple):
        from ..core.media import audio_duration

        seconds = audio_duration(audio)
    elif audio is None and (script or "").strip():
        try:
            from ..voice.synthesis import min_speech_seconds
        except ImportError:
            return
        seconds = min_speech_seconds(script, voice=voice, runtime=runtime)
    else:
        return
    if seconds is not None and seconds > max_seconds:
        kind = "recording" if audio is not None else "script"
        zh_kind = "录音" if audio is not None else "脚本"
        raise UserError(f"The {kind} is too long: at least {seconds / 60:.1f} minutes of speech; the limit is "
                        f"{max_seconds / 60:.0f} minutes. Please shorten the script or trim the recording.",
                        zh=f"{zh_kind}太长：至少 {seconds / 60:.1f} 分钟的语音，上限为 {max_seconds / 60:.0f} 分钟。"
                           "请缩短脚本或剪短录音。")


# ---------------------------------------------------------------- 3. voice


@dataclass
class _Voice:
    audio: np.ndarray
    sample_rate: int
    timings: list
    name: str
    language: str = ""
    mouth_shapes: str = "voice"  # where the phoneme timings come from: voice | words | sound | silent
    transcript: str = ""  # what speech recognition heard in a recording
    notices: list[Notice] = field(default_factory=list)
    rendered: Any = None  # what the engine made when it spoke the script itself (see _engine_speech)


def _speak(script: str, voice: str | None, runtime: Runtime, stop: StopToken | None,
           provenance: bool = True) -> _Voice:
    try:
        from ..voice.synthesis import synthesize_speech
    except ImportError as exc:
        raise ModelLoadError("Voice synthesis is not installed in this build; give a voice recording instead.",
                             zh="此版本未安装语音合成；请改用一段录音。") from exc
    # save=False: the video carries the speech; a side file would outlive a refused or stopped job
    speech = synthesize_speech(script, voice=voice, runtime=runtime, stop=stop, save=False, provenance=provenance)
    return _Voice(np.asarray(speech.audio, np.float32).reshape(-1), int(speech.sample_rate),
                  list(speech.timings or []), ", ".join(speech.voices_used), str(getattr(speech, "language", "")))


def _engine_speech(engine, runtime: Runtime, canvas: np.ndarray, face: fl.FaceLandmarks, script: str,
                   voice: str | None, fps: int, stop: StopToken | None, on_progress: ProgressFn | None) -> _Voice | None:
    """The script spoken by the engine itself, when it has voices of its own (a cloud service renders the whole
    talk now: the audio comes from its video); None when our voice pipeline speaks instead."""
    key, loader, label = engine
    with runtime.cache.use(key, loader, label=label, device="cpu") as animator:
        if not animator.speaks(voice):
            return None
        speech = animator.speak(canvas, face, script, voice, fps=fps, stop=stop, on_progress=on_progress)
    return _Voice(np.asarray(speech.audio, np.float32).reshape(-1), int(speech.sample_rate), [], speech.voice,
                  speech.language, rendered=speech.rendered)


def _recording(audio: Any, runtime: Runtime, stop: StopToken | None, max_seconds: float = MAX_SECONDS) -> _Voice:
    """A user's recording, with phoneme timings found in it (alignment.py) so the lips take shapes."""
    from ..core.media import load_audio
    from .alignment import align_recording

    if isinstance(audio, tuple):  # (sample_rate, samples) as gr.Audio(type="numpy") gives it
        rate, samples = audio
        samples = np.asarray(samples)
        if samples.dtype.kind == "i":
            samples = samples / float(np.iinfo(samples.dtype).max)
        samples = (samples.mean(axis=1) if samples.ndim == 2 else samples).astype(np.float32)
    else:
        samples, rate = load_audio(audio, max_seconds=max_seconds)  # too long: refused before decoding
    rate = int(rate)
    if not 0.2 <= len(samples) / max(rate, 1) <= max_seconds:  # the caller says why; no need to listen first
        return _Voice(samples, rate, [], "recording")
    aligned = align_recording(samples, rate, runtime=runtime, stop=stop)
    return _Voice(samples, rate, aligned.timings, "recording", aligned.language, aligned.method, aligned.text,
                  list(aligned.notices))


# ---------------------------------------------------------------- the pipeline


def create_twin_video(photo: Any, *, script: str = "", voice: str | None = None, audio: Any = None,
                      output_size: str = "face", face_index: int | None = None, expression: float = 1.0,
                      still: bool = False, subtitles: bool = False, ai_label: bool = True, fps: int = 25,
                      seed: int = -1, engine: str = "classic", language: str = "en", consent: bool = True,
                      out: str | Path | None = None,
                      max_seconds: float = MAX_SECONDS, runtime: Runtime | None = None,
                      stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                      label_corner: str = "top-left", provenance: bool = True) -> TwinVideo:
    """Animate ``photo`` speaking ``script`` in ``voice`` (or lip-syncing ``audio``) into an MP4.

    ``language`` ("en" or "zh") is the language of the burned-in "AI-generated" label; ``label_corner``
    where it goes (top-left, top-right, bottom-left, bottom-right; it never covers the mouth).
    ``provenance``: an invisible watermark in every frame and Content Credentials (with the consent) on
    the MP4."""
    from .driving import loudness_envelope
    from .engines import AnimationJob, AnimationOptions, load_engine
    from .overlays import Overlays, cjk_font_path, subtitle_cues, voiced_span
    from ..core.media import Mp4Writer

    runtime = runtime or Runtime.default()
    started = time.perf_counter()
    notices: list[Notice] = []
    # 1. Check inputs (cheap checks first: the length of the speech from the script's length or the
    #    recording's header, before any speech is made or decoded), then read the photo
    _check_inputs(script, audio, expression, fps, output_size, consent)
    seed = resolve_seed(seed)  # -1 = random; the seed used is returned
    _check_length(script, voice, audio, max_seconds, runtime)
    image = load_photo(photo)
    report(on_progress, 0.02, "photo")

    # 2. Find the face and frame the video
    faces = fl.detect_faces(image, runtime=runtime)
    face, face_index = choose_face(faces, face_index)
    if len(faces) > 1:
        notices.append(Notice(f"{len(faces)} faces found; animating face {face_index + 1} (the largest is 1).",
                              f"找到 {len(faces)} 张人脸；正在驱动第 {face_index + 1} 张（1 为最大的一张）。", "info"))
    framing = frame_face(image, face, output_size)
    canvas, canvas_face = framing.image, framing.face
    if framing.filled > 0.01:
        notices.append(Notice("The face is close to the photo's edge: the frame was extended beyond the photo "
                              "(softly blurred). A photo with more room around the face looks better.",
                              "人脸离照片边缘太近：画面超出照片的部分已用柔和的模糊填充。脸部周围留有更多空间的照片效果更好。",
                              "info"))
    check_stop(stop)
    report(on_progress, 0.05, "face")

    # 3. The voice: the recording drives the video when there is one (Whisper listens for the words
    #    first: a few seconds per minute), else the script is spoken (by the engine itself when the voice
    #    is one of its own, e.g. a cloud service's; else by our voice pipeline)
    engine_loader = load_engine(engine, runtime)
    report(on_progress, 0.06, "listening to the recording" if audio else "speaking the script")
    spoken = _recording(audio, runtime, stop, max_seconds) if audio else (
        _engine_speech(engine_loader, runtime, canvas, canvas_face, script.strip(), voice, fps, stop, on_progress)
        or _speak(script.strip(), voice, runtime, stop, provenance))
    notices.extend(spoken.notices)
    seconds = len(spoken.audio) / spoken.sample_rate
    if seconds < 0.2:
        raise UserError("The audio is empty or shorter than 0.2 s.", zh="音频为空或短于 0.2 秒。")
    if seconds > max_seconds:
        raise UserError(f"The audio is {seconds / 60:.1f} minutes long; the limit is {max_seconds / 60:.0f} minutes. "
                        "Please shorten the script or trim the recording.",
                        zh=f"音频长 {seconds / 60:.1f} 分钟，上限为 {max_seconds / 60:.0f} 分钟。请缩短脚本或剪短录音。")
    n_frames = max(1, int(round(seconds * fps)))
    loudness = loudness_envelope(spoken.audio, spoken.sample_rate, n_frames, fps)
    if float(np.max(np.abs(spoken.audio))) < 1e-3:
        notices.append(Notice("The audio is silent: the mouth stays closed.", "音频是静音的：嘴巴保持闭合。"))
    check_stop(stop)
    report(on_progress, 0.15, "voice")

    # 4. Overlays: subtitles timed to the speech, the AI-generated label
    h, w = canvas.shape[:2]
    shown = script.strip() or spoken.transcript  # a recording with no script: subtitle what Whisper heard
    cues = subtitle_cues(shown, seconds, spoken.timings, voiced_span(loudness, fps)) if subtitles and shown else []
    zh_label = language.startswith("zh") and cjk_font_path() is not None  # Chinese needs a CJK font
    label = AI_LABELS["zh" if zh_label else "en"] if ai_label else None
    if ai_label and language.startswith("zh") and not zh_label:
        notices.append(Notice("No Chinese font found, so the AI-generated label is in English: install "
                              "fonts-wqy-microhei.", "没有找到中文字体，因此“AI 生成”标识以英文显示：请安装 fonts-wqy-microhei。"))
    overlays = Overlays(w, h, fps, cues, label, label_corner=label_corner, face=canvas_face)
    if overlays.missing_font:
        notices.append(Notice("No Chinese font found, so the subtitles are left out: install fonts-wqy-microhei.",
                              "没有找到中文字体，因此未加字幕：请安装 fonts-wqy-microhei。"))
    if subtitles and not shown:
        notices.append(Notice("Subtitles need a script; none was given.", "字幕需要脚本，但没有提供脚本。"))

    params = {"task": "digital_twin", "engine": engine, "script": script, "voice": spoken.name,
              "audio": "recording" if audio else "synthesized", "mouth_shapes": spoken.mouth_shapes,
              "transcript": spoken.transcript, "output_size": output_size,
              "face_index": face_index, "faces_found": len(faces), "expression": float(expression),
              "still": bool(still), "subtitles": bool(cues), "ai_label": bool(ai_label), "fps": int(fps),
              "seed": seed, "seconds": round(seconds, 3), "size": [w, h], "ai_generated": True,
              "label": label,
              "consent": "confirmed by the caller"}
    final = Path(out) if out else new_output_path(runtime.outputs_dir, "twin", ".mp4")
    metadata = {"title": "AI-generated digital twin video", "comment": json.dumps(params, ensure_ascii=False),
                "description": "AI-generated (AIGC Digital-Twin Studio, engine: %s)" % engine}

    # 5. Animate and encode, frame by frame
    key, loader, label_name = engine_loader
    job = AnimationJob(image=canvas, face=canvas_face, audio=spoken.audio, sample_rate=spoken.sample_rate,
                       n_frames=n_frames, timings=spoken.timings, rendered=spoken.rendered,
                       options=AnimationOptions(fps=fps, expression=float(expression), still=bool(still), seed=seed,
                                                background=True))
    from ..provenance import audio_with_watermark, sign_output, video_frame_marker

    mark, output_id = video_frame_marker(provenance)
    # the voice carries the same mark as the pictures: a sound track taken out of the video stays marked
    track = spoken.audio if output_id is None else audio_with_watermark(spoken.audio, spoken.sample_rate, output_id)
    # The MP4 and its .json appear together, once both are complete (never one without the other)
    with runtime.cache.use(key, loader, label=label_name, device="cpu") as animator, \
            atomic_path(final, params=params) as tmp:
        for notice in animator.notices(job):  # said before the first frame (e.g. a slow device)
            notices.append(notice)
            report(on_progress, 0.15, notice.en)
        with Mp4Writer(tmp, w, h, fps, audio=(track, spoken.sample_rate), metadata=metadata,
                       background=True) as writer:
            for i, frame in enumerate(animator.animate(job, stop=stop)):
                writer.write(mark(overlays.apply(frame, i)))
                if i % 10 == 0:
                    report(on_progress, 0.15 + 0.85 * i / n_frames, f"frame {i}/{n_frames}")
        check_stop(stop)  # a Stop during the last frames: still nothing kept
        sign_output(tmp, model=label_name, engine=engine, output_id=output_id, consent=params["consent"],
                    parameters=params, provenance=provenance)
        params["render_seconds"] = round(time.perf_counter() - started, 2)
        params["output_id"] = output_id  # the id in the watermark and the Content Credentials (None: provenance off)
    report(on_progress, 1.0, "done")
    return TwinVideo(path=final, params_path=sidecar_of(final), seconds=seconds, frames=n_frames, fps=fps, width=w,
                     height=h, seed=seed, voice=spoken.name, faces_found=len(faces), face_index=face_index,
                     notices=notices, params=params)


def list_twin_videos(runtime: Runtime | None = None, limit: int = 50) -> list[Path]:
    """The twin videos made so far, newest first."""
    runtime = runtime or Runtime.default()
    folder = runtime.outputs_dir / "twin"
    videos = [p for p in folder.glob("*.mp4") if not p.name.startswith(".")] if folder.is_dir() else []
    return sorted(videos, key=lambda p: p.stat().st_mtime, reverse=True)[:limit]


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Make a talking-head video of a photo. Running it declares that you have the right to "
                    "animate this face; the video carries a visible 'AI-generated' label.")
    parser.add_argument("--photo", required=True, help="a photo with a face (JPEG, PNG, ...)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the script to speak")
    source.add_argument("--audio", help="a voice recording that drives the video instead of a script")
    parser.add_argument("--voice", default=None, help="voice name of the voice synthesis pipeline (default: auto)")
    parser.add_argument("--out", required=True, help="where to write the MP4")
    parser.add_argument("--size", choices=OUTPUT_SIZES, default="face", help="512 px face crop, or the photo's size up to 1080p")
    parser.add_argument("--face", type=int, default=1, help="which face when there are several (1 = the largest)")
    parser.add_argument("--expression", type=float, default=1.0, help="0..2")
    parser.add_argument("--still", action="store_true", help="only the mouth moves")
    parser.add_argument("--subtitles", action="store_true")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=-1)
    parser.add_argument("--engine", default="classic",
                        help="talking-head engine from the catalog: classic (offline, CPU), musetalk (GPU recommended), "
                             "did (D-ID's cloud, key in AIGC_DID_API_KEY)")
    parser.add_argument("--language", choices=("en", "zh"), default="en", help="language of the AI-generated label")
    args = parser.parse_args(argv)
    try:
        result = create_twin_video(args.photo, script=args.text or "", voice=args.voice, audio=args.audio,
                                   output_size=args.size, face_index=args.face - 1, expression=args.expression,
                                   still=args.still, subtitles=args.subtitles, ai_label=True, fps=args.fps,
                                   seed=args.seed, engine=args.engine, language=args.language, out=args.out)
    except (UserError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in result.notices:
        print(f"note: {note}", file=sys.stderr)
    print(f"{result.path} ({result.seconds:.2f} s, {result.frames} frames, {result.width}x{result.height}, "
          f"voice {result.voice}, seed {result.seed}, {result.params['render_seconds']} s to make)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
