"""The batch driver: stream the spreadsheet, plan each row, skip what is done, render the rest, write
the summary as rows finish, zip the results.

    from pipelines.batch import BatchConfig, run_batch
    result = run_batch(BatchConfig("jobs.csv", out_dir="videos"), on_progress=print)
    print(result.done, result.failed, result.summary_path, result.zip_path)
"""
from __future__ import annotations

import csv
import logging
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.jobs import ProgressFn, StopToken, report
from ..core.notices import Notice
from ..core.outputs import atomic_path
from ..core.runtime import Runtime
from .backends import Backend, InlineBackend, PoolBackend, RayBackend, RayTarget
from .plan import Planner, RenderOptions, RowJob, RowProblem
from .spreadsheet import count_rows, open_sheet
from .worker import RowOutcome

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("row", "name", "status", "duration", "render_seconds", "output", "error")
SUMMARY_NAME = "summary.csv"
ZIP_NAME = "results.zip"
LOCAL_RAY = "local"


@dataclass
class BatchConfig:
    """One batch: the spreadsheet, where the videos go, and where they render."""

    spreadsheet: Path
    out_dir: Path
    workers: int | None = None  # local worker processes; None = one per core; 0 = in this process
    ray_address: str | None = None  # None: no Ray; "local": start one here; "auto"; "ray://HOST:10001"
    shared_folder: bool = False  # Ray: inputs and out_dir are at the same paths on every node
    input_folders: tuple[Path, ...] = ()  # besides the spreadsheet's folder, where photos/recordings may be
    encoding: str | None = None  # CSV text encoding; None = detect
    options: RenderOptions = field(default_factory=RenderOptions)
    make_zip: bool = True
    language: str = "en"  # of the messages in the summary
    max_retries: int = 3  # per row, when its worker is lost
    models_dir: Path | None = None  # the workers' models folder (default: the runtime's)

    def __post_init__(self):
        self.spreadsheet = Path(self.spreadsheet)
        self.out_dir = Path(self.out_dir)
        self.input_folders = tuple(Path(p) for p in self.input_folders)


@dataclass
class RowResult:
    row: int
    name: str
    status: str  # done | skipped (done before, same inputs) | failed | stopped
    output: Path | None = None
    duration: float = 0.0  # the video's length, s
    render_seconds: float = 0.0
    error: str = ""
    notices: list[Notice] = field(default_factory=list)


@dataclass
class BatchResult:
    rows: list[RowResult]
    out_dir: Path
    summary_path: Path
    zip_path: Path | None
    total_rows: int
    seconds: float
    stopped: bool = False
    notices: list[Notice] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.rows)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")


def _backend(config: BatchConfig, runtime: Runtime, stop: StopToken | None) -> Backend:
    models_dir = config.models_dir or runtime.catalog.models_dir
    if config.ray_address:
        target = RayTarget(address=config.ray_address, num_cpus=config.workers or None,
                           shared_folder=config.shared_folder)
        return RayBackend(target, models_dir, max_retries=config.max_retries)
    workers = (os.cpu_count() or 1) if config.workers is None else config.workers
    if workers <= 0:
        return InlineBackend(runtime, stop)
    return PoolBackend(workers, models_dir, max_retries=config.max_retries)


def run_batch(config: BatchConfig, *, runtime: Runtime | None = None, stop: StopToken | None = None,
              on_progress: ProgressFn | None = None,
              on_row: Callable[[RowResult], None] | None = None) -> BatchResult:
    """Render every row of ``config.spreadsheet`` into ``config.out_dir``; file-level problems raise UserError.

    Running a batch declares that you have the right to animate every face in it (as the twin CLI does);
    every video carries the visible "AI-generated" label.
    """
    runtime = runtime or Runtime.default()
    started = time.perf_counter()
    sheet = open_sheet(config.spreadsheet, config.encoding)  # the header is checked before any work
    total = count_rows(config.spreadsheet, config.encoding)
    planner = Planner(config.spreadsheet.parent, config.input_folders, options=config.options, runtime=runtime)
    out_dir = config.out_dir
    summary_path = out_dir / SUMMARY_NAME
    results: list[RowResult] = []

    def stop_requested() -> bool:
        return stop is not None and stop.stopped

    def record(result: RowResult) -> None:
        results.append(result)
        summary.write(result)
        report(on_progress, len(results) / max(1, total),
               f"row {result.row} {result.status} ({len(results)}/{total})")
        if on_row is not None:
            on_row(result)

    def finished(job: RowJob, outcome: RowOutcome) -> RowResult:
        error = outcome.error_zh if config.language.startswith("zh") else outcome.error_en
        return RowResult(job.row, job.name, outcome.status,
                         output=out_dir / job.output_name if outcome.status == "done" else None,
                         duration=round(outcome.video_seconds, 2), render_seconds=round(outcome.render_seconds, 2),
                         error=error, notices=job.notices + outcome.notices)

    report(on_progress, 0.0, f"0/{total}")
    backend = _backend(config, runtime, stop)  # before any file is written: a cluster out of reach says so first
    out_dir.mkdir(parents=True, exist_ok=True)
    with SummaryWriter(summary_path) as summary:
        try:
            for sheet_row in sheet.rows:
                if stop_requested():
                    break
                item = planner.plan(sheet_row)
                if isinstance(item, RowProblem):
                    record(RowResult(item.row, item.name, "failed", error=item.error.text(config.language)))
                    continue
                output = out_dir / item.output_name
                if output.is_file():
                    record(RowResult(item.row, item.name, "skipped", output=output, notices=item.notices))
                    continue
                while backend.in_flight >= backend.capacity:
                    record(finished(*backend.next_outcome()))
                if stop_requested():
                    break  # not submitted: the next run picks this row up
                backend.submit(item, output)
            if stop_requested():
                for job, outcome in backend.stop():
                    record(finished(job, outcome))
            else:
                while backend.in_flight:
                    record(finished(*backend.next_outcome()))
            stopped = stop_requested() or any(r.status == "stopped" for r in results)
        finally:
            backend.close()
    results.sort(key=lambda r: r.row)
    write_summary(summary_path, results)  # again, in row order
    zip_path = make_zip(out_dir, results) if config.make_zip and not stopped else None
    notices = list(sheet.notices)
    if stopped:
        notices.append(Notice("Stopped. Run the batch again to continue: finished rows are skipped.",
                              "已停止。再次运行即可继续：已完成的行会被跳过。"))
    report(on_progress, 1.0, "done")
    return BatchResult(results, out_dir, summary_path, zip_path, total, round(time.perf_counter() - started, 2),
                       stopped, notices)


# ---------------------------------------------------------------- summary and zip


def _cell(value) -> str:
    """A summary cell; text that a spreadsheet would run as a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _summary_row(result: RowResult) -> list[str]:
    output = result.output.name if result.output else ""
    return [_cell(v) for v in (result.row, result.name, result.status, result.duration or "",
                               result.render_seconds or "", output, result.error)]


class SummaryWriter:
    """summary.csv written as rows finish (so an interrupted batch still says what it did)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "SummaryWriter":
        self.file = open(self.path, "w", encoding="utf-8-sig", newline="")  # the BOM makes Excel read UTF-8
        self.writer = csv.writer(self.file)
        self.writer.writerow(SUMMARY_COLUMNS)
        self.file.flush()
        return self

    def write(self, result: RowResult) -> None:
        self.writer.writerow(_summary_row(result))
        self.file.flush()

    def __exit__(self, *exc) -> None:
        self.file.close()


def write_summary(path: Path, results: list[RowResult]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(SUMMARY_COLUMNS)
            writer.writerows(_summary_row(r) for r in results)


def read_summary(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def make_zip(out_dir: Path, results: list[RowResult]) -> Path:
    """results.zip: the summary and every finished video (stored, not recompressed: MP4 is compressed)."""
    path = out_dir / ZIP_NAME
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.write(out_dir / SUMMARY_NAME, SUMMARY_NAME)
            for result in results:
                if result.output is not None and result.output.is_file():
                    archive.write(result.output, result.output.name)
    return path
