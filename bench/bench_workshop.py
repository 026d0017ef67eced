"""A workshop on one studio (issue 17): 30 simulated users on loopback against an in-process studio.

10 users make twin videos (2 each: photo + a short script, eSpeak voice), 10 ask for text answers
(3 each, SmolLM2, 32 tokens) and 10 for speech (3 each, the "auto" voice = Piper for English), all at
once, each through its own gradio_client session (bounded: a fixed number of calls, each with a
time limit). Measured: completions, errors (target 0), p50/p95 latency per tab, the peak memory of the
server process and its children (ffmpeg).

Reference, in the same process with the same (already warm) models: the same load on the old setup,
where every heavy job shared one "accelerator" queue of 1. Target: text and voice p95 latency under
load lower with a queue per kind (heavy jobs no longer starve light ones), and no errors.
The 2 CPU cores are shared with other work while this runs: read the ratios, take absolutes as scale.
"""
from __future__ import annotations

import json
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil

from pipelines.core.cache import ModelCache
from pipelines.core.settings import ASSETS_DIR, AppConfig

PHOTO = ASSETS_DIR / "astronaut.jpg"
SMOLLM = "smollm2-135m-instruct"
USERS = {"video": 10, "text": 10, "voice": 10}
CALLS = {"video": 2, "text": 3, "voice": 3}
CALL_TIMEOUT_S = 240
DEADLINE_S = 420  # the whole load, whatever happens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PeakMemory:
    """Highest RSS of this process plus its children (ffmpeg encoders) while the block runs."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        proc = psutil.Process()

        def total() -> int:
            rss = proc.memory_info().rss
            for child in proc.children(recursive=True):
                try:
                    rss += child.memory_info().rss
                except psutil.Error:
                    pass
            return rss

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, total())
                time.sleep(0.05)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def call(client, kind: str, i: int):
    from gradio_client import handle_file

    if kind == "video":
        return client.submit(handle_file(str(PHOTO)), f"Hello, guest {i}.", "espeak-ng:en-us", None, "classic",
                             api_name="/create_twin_video")
    if kind == "text":
        return client.submit(f"Greet workshop guest number {i} in one sentence.", SMOLLM, 32, 0.7, 0.9, i,
                             api_name="/generate_text")
    return client.submit(f"Welcome to the workshop, guest number {i}.", "auto", 1.0, api_name="/synthesize_speech")


def start_studio(root: Path, cache: ModelCache, single_queue: bool):
    from aigc_ui import common
    from aigc_ui.app import build_app, launch_kwargs, queue_kwargs

    config = AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", port=free_port())
    if single_queue:  # the old setup: one "accelerator" queue of 1 for every heavy job
        limits = {kind: 1 for kind in ("video", "text", "voice", "image", "face", "batch")}
        original = common.StudioContext.concurrency
        common.StudioContext.concurrency = lambda self, kind: {"concurrency_id": "accelerator", "concurrency_limit": 1}
        try:
            demo = build_app(config, cache)
        finally:
            common.StudioContext.concurrency = original
        demo.studio_context.limits = limits
    else:
        demo = build_app(config, cache)
    demo.queue(**queue_kwargs(config)).launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(config))
    return demo, f"http://127.0.0.1:{config.port}/"


def load(url: str) -> dict:
    """Every user at once; each makes its calls one after another."""
    from gradio_client import Client

    latencies: dict[str, list[float]] = {kind: [] for kind in USERS}
    errors: list[str] = []
    lock = threading.Lock()
    users = [(kind, n) for kind, count in USERS.items() for n in range(count)]
    ready = threading.Barrier(len(users))
    deadline = time.monotonic() + DEADLINE_S

    def user(kind: str, n: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as exc:  # noqa: BLE001 - counted, not fatal
            with lock:
                errors.append(f"{kind}: connect: {exc}")
            ready.wait()
            return
        ready.wait()
        for k in range(CALLS[kind]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                with lock:
                    errors.append(f"{kind}: deadline")
                return
            started = time.perf_counter()
            try:
                result = call(client, kind, 100 * n + k).result(timeout=min(CALL_TIMEOUT_S, remaining))
                assert result, "empty result"
            except Exception as exc:  # noqa: BLE001
                with lock:
                    errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            with lock:
                latencies[kind].append(time.perf_counter() - started)
        close = getattr(client, "close", None)
        if close is not None:
            close()

    threads = [threading.Thread(target=user, args=u, daemon=True) for u in users]
    started = time.perf_counter()
    with PeakMemory() as memory:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
    wall = time.perf_counter() - started

    def pct(values: list[float], q: float) -> float | None:
        if not values:
            return None
        ordered = sorted(values)
        return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 2)

    return {
        "completions": {k: len(v) for k, v in latencies.items()},
        "expected": {k: USERS[k] * CALLS[k] for k in USERS},
        "errors": len(errors),
        "error_samples": errors[:5],
        "p50_s": {k: pct(v, 0.5) for k, v in latencies.items()},
        "p95_s": {k: pct(v, 0.95) for k, v in latencies.items()},
        "mean_s": {k: round(statistics.mean(v), 2) if v else None for k, v in latencies.items()},
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(memory.peak / 2**20),
    }


def warm_up(url: str) -> dict:
    """One call of each kind on an idle server (loads the models; the idle latencies are the scale)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    idle = {}
    for kind in USERS:
        call(client, kind, 0).result(timeout=CALL_TIMEOUT_S)  # loads the model
        started = time.perf_counter()
        call(client, kind, 1).result(timeout=CALL_TIMEOUT_S)
        idle[kind] = round(time.perf_counter() - started, 2)
    return idle


def run() -> dict:
    cache = ModelCache(budget_bytes=4 * 2**30)  # shared by both studios: the models load once
    with tempfile.TemporaryDirectory(prefix="bench-workshop-") as tmp:
        root = Path(tmp)
        demo, url = start_studio(root / "per-kind", cache, single_queue=False)
        try:
            idle = warm_up(url)
            limits = dict(demo.studio_context.limits)
            per_kind = load(url)
        finally:
            demo.close()
        demo, url = start_studio(root / "single", cache, single_queue=True)
        try:
            single = load(url)
        finally:
            demo.close()

    def ratio(kind: str) -> float | None:
        new, old = per_kind["p95_s"][kind], single["p95_s"][kind]
        return round(new / old, 3) if new and old else None

    result = {
        "users": USERS, "calls_per_user": CALLS, "limits": limits,
        "idle_latency_s": idle,
        "per_kind_queues": per_kind,
        "reference_single_queue": single,
        "p95_ratio_per_kind_over_single": {k: ratio(k) for k in USERS},
        "target": "0 errors; text and voice p95 lower than with one shared queue (ratio < 1)",
        "note": "2 shared CPU cores: absolute figures are scale only; compare the ratios",
    }
    light_ok = all((ratio(k) or 9) < 1 for k in ("text", "voice"))
    complete = per_kind["completions"] == per_kind["expected"]
    result["passed"] = bool(per_kind["errors"] == 0 and complete and light_ok)
    return result


if __name__ == "__main__":
    print(json.dumps(run()))
