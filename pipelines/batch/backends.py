"""Where rows render: in this process, in a local process pool (one worker per core), or on a Ray cluster.

All three take a job, keep a bounded number in flight (the driver streams the spreadsheet, so a
10,000-row batch never has 10,000 tasks queued) and hand back outcomes as rows finish. Scheduling is
the pool's or Ray's own; the driver only stops submitting when enough rows are in flight.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..core.errors import UserError
from ..core.jobs import StopToken
from ..core.outputs import atomic_path
from ..core.runtime import Runtime
from . import worker
from .plan import RowJob
from .worker import RowOutcome

LOST_WORKER_EN = "The worker rendering this row was lost {n} time(s) (out of memory, or its machine left the cluster)."
LOST_WORKER_ZH = "渲染这一行的工作进程丢失了 {n} 次（内存不足，或其所在机器离开了集群）。"


class Backend(Protocol):
    capacity: int  # how many rows may be in flight at once

    @property
    def in_flight(self) -> int: ...

    def submit(self, job: RowJob, out_path: Path) -> None: ...

    def next_outcome(self) -> tuple[RowJob, RowOutcome]:
        """Block until a row finishes (rows come back in the order they finish)."""

    def stop(self) -> list[tuple[RowJob, RowOutcome]]:
        """Stop what can be stopped; the outcomes of every row still in flight."""

    def close(self) -> None: ...


# ---------------------------------------------------------------- in this process


class InlineBackend:
    """Rows one after another in this process, with the caller's runtime (the app's shared cache)."""

    capacity = 1

    def __init__(self, runtime: Runtime, stop: StopToken | None = None):
        self.runtime, self.stop_token = runtime, stop
        self._queued: list[tuple[RowJob, Path]] = []

    @property
    def in_flight(self) -> int:
        return len(self._queued)

    def submit(self, job: RowJob, out_path: Path) -> None:
        self._queued.append((job, out_path))

    def next_outcome(self) -> tuple[RowJob, RowOutcome]:
        job, out_path = self._queued.pop(0)
        return job, worker.render_row(job, out_path, runtime=self.runtime, stop=self.stop_token)

    def stop(self) -> list[tuple[RowJob, RowOutcome]]:
        queued, self._queued = self._queued, []
        return [(job, RowOutcome(job.row, "stopped", 0.0)) for job, _ in queued]

    def close(self) -> None:
        self._queued.clear()


# ---------------------------------------------------------------- local process pool


class PoolBackend:
    """A process pool: each worker builds one Runtime in its initializer and keeps its models loaded.

    Workers are started with "spawn" (a fresh interpreter): forking a process that runs threads (the
    web server, the model cache) can deadlock. A worker that dies (e.g. killed for memory) breaks the
    pool: it is rebuilt and that worker's rows are tried again, up to ``max_retries`` times each.
    """

    def __init__(self, workers: int, models_dir: Path | None, max_retries: int = 2):
        self.workers, self.models_dir, self.max_retries = workers, models_dir, max_retries
        self.capacity = 2 * workers  # one running and one waiting per worker: no idle gap between rows
        self._pool = self._new_pool()
        self._futures: dict[cf.Future, tuple[RowJob, Path]] = {}
        self._attempts: dict[int, int] = {}
        self._failed: list[tuple[RowJob, RowOutcome]] = []  # rows given up after too many lost workers

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=worker.init_worker,
                                      initargs=(str(self.models_dir) if self.models_dir else None,))

    @property
    def in_flight(self) -> int:
        return len(self._futures) + len(self._failed)

    def submit(self, job: RowJob, out_path: Path) -> None:
        try:
            future = self._pool.submit(worker.render_row_in_pool, job, str(out_path))
        except cf.process.BrokenProcessPool:  # a worker died since the last look: a new pool first
            self._rebuild()
            future = self._pool.submit(worker.render_row_in_pool, job, str(out_path))
        self._futures[future] = (job, out_path)

    def next_outcome(self) -> tuple[RowJob, RowOutcome]:
        while True:
            if self._failed:
                return self._failed.pop(0)
            done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
            future = next(iter(done))
            job, out_path = self._futures.pop(future)
            try:
                return job, future.result()
            except cf.process.BrokenProcessPool:
                self._rebuild()
                self._retry(job, out_path)

    def _retry(self, job: RowJob, out_path: Path) -> None:
        """Try a lost row again, or give up on it after ``max_retries`` with the reason."""
        attempts = self._attempts.get(job.row, 0) + 1
        self._attempts[job.row] = attempts
        if attempts > self.max_retries:
            self._failed.append((job, RowOutcome(job.row, "failed", 0.0, error_en=LOST_WORKER_EN.format(n=attempts),
                                                 error_zh=LOST_WORKER_ZH.format(n=attempts))))
        else:
            self.submit(job, out_path)

    def _rebuild(self) -> None:
        """After a worker died: a new pool, and every row the broken one held tried again on it."""
        if not getattr(self._pool, "_broken", False):
            return  # already rebuilt
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        lost = [(f, item) for f, item in self._futures.items() if not f.done() or f.exception() is not None]
        for future, (job, out_path) in lost:
            del self._futures[future]
            self._retry(job, out_path)

    def stop(self) -> list[tuple[RowJob, RowOutcome]]:
        """Rows not started are dropped; rows being rendered finish (and are kept)."""
        results = []
        for future, (job, _) in list(self._futures.items()):
            if future.cancel():
                del self._futures[future]
                results.append((job, RowOutcome(job.row, "stopped", 0.0)))
        while self._futures:
            results.append(self.next_outcome())
        return results

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- Ray


@dataclass
class RayTarget:
    """Which cluster, and what the nodes share."""

    address: str | None  # None/"local": start a Ray instance here; "auto"; "ray://HOST:10001"
    num_cpus: int | None = None  # for a local instance
    shared_folder: bool = False  # the inputs and the output folder are at the same paths on every node


class RayBackend:
    """Ray Core tasks, one per row. Ray schedules them over the cluster's CPUs, reuses worker processes
    (so each keeps its models loaded), and reruns a task whose worker or node was lost (``max_retries``).

    Without a shared folder the photo and recording travel as bytes with the task, and the video comes
    back as bytes; with one, only paths travel and the worker writes the video in place.
    """

    def __init__(self, target: RayTarget, models_dir: Path | None, max_retries: int = 3):
        import ray

        self.ray = ray
        self.target = target
        self.models_dir = str(models_dir) if models_dir else None
        self.started_here = False
        if not ray.is_initialized():
            try:
                if target.address in (None, "", "local"):
                    # "local": a new instance even if another cluster on this machine was the last one started
                    ray.init(address="local", num_cpus=target.num_cpus or os.cpu_count() or 1,
                             include_dashboard=False, object_store_memory=512 * 2**20, log_to_driver=False)
                else:
                    # The project's code travels with the job; its packages must be installed on every node.
                    ray.init(address=target.address, log_to_driver=False,
                             runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})
            except Exception as exc:  # noqa: BLE001 - a connection error, a refused token... said plainly
                raise UserError(
                    f"Cannot start or reach Ray at '{target.address or 'local'}': {type(exc).__name__}: {str(exc)[:200]}. "
                    "Is the cluster started (ray start --head)? With token authentication, set RAY_AUTH_MODE=token "
                    "and the cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token) here too.",
                    zh=f"无法启动或连接 Ray（{target.address or 'local'}）：{type(exc).__name__}: {str(exc)[:200]}。"
                       "集群是否已启动（ray start --head）？若启用了令牌认证，请在本机也设置 RAY_AUTH_MODE=token "
                       "和集群的令牌（RAY_AUTH_TOKEN 或 ~/.ray/auth_token）。") from exc
            self.started_here = True
        options = dict(num_cpus=1, max_retries=max_retries)
        self._task = ray.remote(**options)(worker.render_row_shared if target.shared_folder else worker.render_row_shipped)
        self.capacity = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        self._refs: dict = {}
        self.max_retries = max_retries

    @property
    def in_flight(self) -> int:
        return len(self._refs)

    def submit(self, job: RowJob, out_path: Path) -> None:
        if self.target.shared_folder:
            ref = self._task.remote(job, self.models_dir, str(out_path))
        else:
            audio = job.audio.read_bytes() if job.audio else None
            ref = self._task.remote(job, job.photo.read_bytes(), audio, self.models_dir)
        self._refs[ref] = (job, out_path)

    def next_outcome(self) -> tuple[RowJob, RowOutcome]:
        ready, _ = self.ray.wait(list(self._refs), num_returns=1)
        ref = ready[0]
        job, out_path = self._refs.pop(ref)
        return job, self._result(ref, job, out_path)

    def _result(self, ref, job: RowJob, out_path: Path) -> RowOutcome:
        from ray import exceptions as rex

        try:
            outcome: RowOutcome = self.ray.get(ref)
        except rex.TaskCancelledError:
            return RowOutcome(job.row, "stopped", 0.0)
        except rex.RayError as exc:  # workers or nodes lost more often than Ray retries, or the cluster broke
            n = self.max_retries + 1
            return RowOutcome(job.row, "failed", 0.0, error_en=LOST_WORKER_EN.format(n=n) + f" ({type(exc).__name__})",
                              error_zh=LOST_WORKER_ZH.format(n=n) + f"（{type(exc).__name__}）")
        if outcome.files:
            for name, data in outcome.files.items():  # the video and its params, written atomically here
                with atomic_path(out_path.with_name(name)) as tmp:
                    tmp.write_bytes(data)
            outcome.files = None
        return outcome

    def stop(self) -> list[tuple[RowJob, RowOutcome]]:
        for ref in self._refs:
            self.ray.cancel(ref)
        results = []
        while self._refs:
            results.append(self.next_outcome())
        return results

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
