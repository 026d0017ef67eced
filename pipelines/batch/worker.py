"""Rendering one row, in whichever process runs it (this one, a pool worker or a Ray worker).

Each worker process builds one Runtime the first time it renders (its own model cache), so the face
model and the voices load once per worker and stay loaded for every later row it gets.
A bad row (no face, an empty recording...) comes back as a failed outcome with its reason; it never
takes the worker or the batch down.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import Stopped, UserError
from ..core.jobs import StopToken
from ..core.notices import Notice
from ..core.runtime import Runtime
from .plan import RowJob

log = logging.getLogger(__name__)

_RUNTIME: Runtime | None = None  # this worker process's runtime (pool and Ray workers)


@dataclass
class RowOutcome:
    """What a worker sends back for one row."""

    row: int
    status: str  # "done" | "failed" | "stopped"
    render_seconds: float
    video_seconds: float = 0.0
    error_en: str = ""
    error_zh: str = ""
    notices: list[Notice] = field(default_factory=list)
    files: dict[str, bytes] | None = None  # the video and its params, when the driver cannot see the worker's disk


def init_worker(models_dir: str | None = None) -> None:
    """Process-pool initializer (and lazy Ray setup): one Runtime, one model cache, per worker process."""
    global _RUNTIME
    if _RUNTIME is None:
        from ..core.cache import ModelCache
        from ..core.catalog import Catalog
        from ..core.settings import REPO_ROOT

        scratch = Path(tempfile.mkdtemp(prefix="aigc-batch-worker-"))  # the voice's side files go here
        _RUNTIME = Runtime(cache=ModelCache(), catalog=Catalog(Path(models_dir) if models_dir else REPO_ROOT / "models"),
                           outputs_dir=scratch)


def worker_runtime(models_dir: str | None = None) -> Runtime:
    init_worker(models_dir)
    assert _RUNTIME is not None
    return _RUNTIME


def render_row(job: RowJob, out_path: Path, *, photo: Path | None = None, audio: Path | None = None,
               runtime: Runtime | None = None, stop: StopToken | None = None) -> RowOutcome:
    """Render ``job`` to ``out_path`` (photo/audio default to the job's own paths)."""
    from ..twin.pipeline import create_twin_video

    runtime = runtime or worker_runtime()
    started = time.perf_counter()
    try:
        video = create_twin_video(
            photo or job.photo, script=job.script, voice=job.voice, audio=audio or job.audio,
            output_size=job.options.output_size, expression=job.options.expression, subtitles=job.subtitles,
            ai_label=True, fps=job.options.fps, seed=job.seed, engine=job.options.engine, consent=True,
            out=out_path, runtime=runtime, stop=stop)
    except Stopped:
        return RowOutcome(job.row, "stopped", time.perf_counter() - started)
    except UserError as exc:
        return RowOutcome(job.row, "failed", time.perf_counter() - started, error_en=exc.message, error_zh=exc.zh)
    except Exception as exc:  # noqa: BLE001 - a bug on one row must not end the batch; it is logged
        log.exception("row %s failed", job.row)
        text = f"Internal error: {type(exc).__name__}: {str(exc)[:300]}"
        return RowOutcome(job.row, "failed", time.perf_counter() - started, error_en=text,
                          error_zh=f"内部错误：{type(exc).__name__}: {str(exc)[:300]}")
    return RowOutcome(job.row, "done", time.perf_counter() - started, video_seconds=video.seconds,
                      notices=list(video.notices))


def render_row_in_pool(job: RowJob, out_path: str) -> RowOutcome:
    """The process-pool task: same disk as the driver, so paths go in and the video is written in place."""
    return render_row(job, Path(out_path))


def render_row_shipped(job: RowJob, photo_bytes: bytes, audio_bytes: bytes | None,
                       models_dir: str | None) -> RowOutcome:
    """The Ray task: the inputs arrive as bytes and the video (with its params) goes back as bytes."""
    runtime = worker_runtime(models_dir)
    with tempfile.TemporaryDirectory(prefix="aigc-batch-row-") as tmp:
        folder = Path(tmp)
        photo = folder / ("photo" + job.photo.suffix.lower())
        photo.write_bytes(photo_bytes)
        audio = None
        if audio_bytes is not None and job.audio is not None:
            audio = folder / ("audio" + job.audio.suffix.lower())
            audio.write_bytes(audio_bytes)
        out_path = folder / job.output_name
        outcome = render_row(job, out_path, photo=photo, audio=audio, runtime=runtime)
        if outcome.status == "done":
            sidecar = out_path.with_name(out_path.name + ".json")
            outcome.files = {job.output_name: out_path.read_bytes()}
            if sidecar.is_file():
                outcome.files[sidecar.name] = sidecar.read_bytes()
        return outcome


def render_row_shared(job: RowJob, models_dir: str | None, out_path: str) -> RowOutcome:
    """The Ray task with a shared folder: every node sees the inputs and the output folder at the same paths."""
    return render_row(job, Path(out_path), runtime=worker_runtime(models_dir))
