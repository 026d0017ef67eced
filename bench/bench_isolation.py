"""Many people on one studio at once (issue 18): isolation and cancel under load, on loopback.

- Load: eight clients make twin videos and eight generate text, all at once, each a gradio_client session
  of its own. Targets: all complete, zero errors, every MP4 decodes (every frame, ffmpeg), each person's
  history holds their own video only. Figures: p50/p95 latency per tab, peak memory (RSS) of the process.
  Reference in the same run: one twin video and one text alone; the ratios say what sharing costs.
- Cancel: one client starts a long render and cancels it mid-render while fifteen others wait in the
  queues. Target: its slot is free within a second (its work stopped, the next video job started) and it
  keeps no file; the others all complete. Also reported: how long the cancel took to reach the job's
  StopToken (Gradio's side).

Bounded: short scripts, 24 new tokens, one long render cancelled after its first frames; a few minutes on
two shared CPU cores. The figures are noisy there: read the ratios, take absolutes as scale.

    python -m bench.bench_isolation
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import psutil  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402

from bench.memory import PeakMemory  # noqa: E402
from pipelines.core.settings import ASSETS_DIR, AppConfig  # noqa: E402

PHOTO = ASSETS_DIR / "astronaut.jpg"
CLIENTS_PER_TAB = 8
SCRIPTS = ["Hello, I am number {n}.", "Good morning from client {n}!", "This is twin {n}, speaking."]
PROMPTS = ["Name a colour. ({n})", "Say hello in one word. ({n})", "What is two plus {n}?"]
LONG_SCRIPT = "This long script keeps the renderer busy until it is cancelled. " * 30
TEXT_MODEL = "smollm2-135m-instruct"
SLOT_TARGET_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def twin_job(client: Client, n: int) -> str:
    return client.predict(handle_file(str(PHOTO)), SCRIPTS[n % len(SCRIPTS)].format(n=n), "auto", None, "classic",
                          api_name="/create_twin_video")


def text_job(client: Client, n: int) -> str:
    return client.predict(PROMPTS[n % len(PROMPTS)].format(n=n), TEXT_MODEL, 24, 0.0, 0.9, n,
                          api_name="/generate_text")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 2) if ordered else 0.0


def run_together(url: str, start_gate: threading.Event | None = None) -> dict:
    """Eight twin and eight text clients, all at once; returns latencies, errors and the videos made."""
    jobs = [("twin", n) for n in range(CLIENTS_PER_TAB)] + [("text", n) for n in range(CLIENTS_PER_TAB)]
    clients = {job: Client(url, verbose=False) for job in jobs}
    results: dict = {}
    barrier = threading.Barrier(len(jobs))

    def one(job):
        tab, n = job
        barrier.wait()
        if start_gate is not None:
            start_gate.wait()
        started = time.perf_counter()
        try:
            value = (twin_job if tab == "twin" else text_job)(clients[job], n)
            results[job] = {"seconds": time.perf_counter() - started, "value": value}
        except Exception as exc:  # noqa: BLE001 - counted as an error
            results[job] = {"seconds": time.perf_counter() - started, "error": f"{type(exc).__name__}: {exc}"[:300]}

    threads = [threading.Thread(target=one, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    return {"threads": threads, "results": results, "clients": clients}


def summarise(batch: dict) -> dict:
    from pipelines.core.media import probe_video

    for thread in batch["threads"]:
        thread.join(timeout=900)
    results, clients = batch["results"], batch["clients"]
    errors = [f"{tab} {n}: {r['error']}" for (tab, n), r in results.items() if "error" in r]
    decoded, own_history = 0, 0
    for (tab, n), r in results.items():
        if tab != "twin" or "error" in r:
            continue
        info = probe_video(Path(r["value"]))
        decoded += int(info.frames > 0 and info.video_codec == "h264")
        history = clients[(tab, n)].predict(api_name="/twin_history")
        own_history += int(len(history) == 1 and Path(history[0]).name == Path(r["value"]).name)
    latency = {tab: [r["seconds"] for (t, _), r in results.items() if t == tab and "error" not in r]
               for tab in ("twin", "text")}
    return {
        "completed": sum(1 for r in results.values() if "error" not in r),
        "jobs": len(results),
        "errors": errors,
        "mp4_decoded": decoded,
        "history_holds_only_own_video": own_history,
        "latency_s": {tab: {"p50": percentile(v, 0.5), "p95": percentile(v, 0.95), "max": round(max(v), 2)}
                      for tab, v in latency.items() if v},
    }


def cancel_under_load(demo, url: str, outputs: Path) -> dict:
    """One long render starts, fifteen jobs queue behind it, the render is cancelled: how long until its
    work has stopped and the next video job has started?"""
    registry = demo.studio_context.jobs
    canceller = Client(url, verbose=False)
    job = canceller.submit(handle_file(str(PHOTO)), LONG_SCRIPT, "auto", None, "classic",
                           api_name="/create_twin_video")
    deadline = time.time() + 300
    while not [p for p in outputs.rglob("*.partial.*") if p.name.endswith(".mp4")]:  # it is rendering
        if time.time() > deadline:
            raise RuntimeError("the long render never started")
        time.sleep(0.02)
    batch = run_together(url)
    time.sleep(2.0)  # the others are queued behind it

    def tokens() -> dict:
        with registry._lock:
            return {id(t): (tab, t) for (_session, tab), ts in registry._tokens.items() for t in ts}

    before = tokens()
    render = [t for tab, t in before.values() if tab == "twin"]
    seen: dict = {}

    def watch():  # on a thread of its own: job.cancel() itself waits until the work has stopped
        while time.perf_counter() - cancelled_at < 30 and len(seen) < 3:
            now, elapsed = tokens(), time.perf_counter() - cancelled_at
            if all(t.stopped for t in render):
                seen.setdefault("signalled", elapsed)  # the render's StopToken is set
            if not any(id(t) in now for t in render):
                seen.setdefault("stopped", elapsed)  # the render's work has ended (its job left the registry)
            if any(tab == "twin" and key not in before for key, (tab, _t) in now.items()):
                seen.setdefault("next", elapsed)  # the next video job holds the slot
            time.sleep(0.005)

    cancelled_at = time.perf_counter()
    watcher = threading.Thread(target=watch)
    watcher.start()
    job.cancel()
    watcher.join()
    signalled, stopped, next_started = seen.get("signalled"), seen.get("stopped"), seen.get("next")
    summary = summarise(batch)
    leftovers = [str(p) for p in outputs.rglob("*") if p.is_file() and ".partial." in p.name]
    own = canceller.predict(api_name="/twin_history")
    return {"stop_signalled_s": round(signalled, 3) if signalled is not None else None,
            "work_stopped_s": round(stopped, 3) if stopped is not None else None,
            "next_job_started_s": round(next_started, 3) if next_started is not None else None,
            "cancelled_client_videos": len(own), "partial_files_left": leftovers, "others": summary}


def run() -> dict:
    from aigc_ui.app import build_app, launch_kwargs, queue_kwargs

    root = Path(tempfile.mkdtemp(prefix="bench-isolation-"))
    config = AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", port=free_port())
    demo = build_app(config)
    demo.queue(**queue_kwargs(config)).launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(config))
    url = f"http://127.0.0.1:{config.port}/"
    try:
        # Reference: each tab alone (after a first call loads its models)
        alone = Client(url, verbose=False)
        twin_job(alone, 0), text_job(alone, 0)
        started = time.perf_counter()
        twin_job(alone, 1)
        reference_twin = time.perf_counter() - started
        started = time.perf_counter()
        text_job(alone, 1)
        reference_text = time.perf_counter() - started

        with PeakMemory() as memory:
            baseline = psutil.Process().memory_info().rss
            load = summarise(run_together(url))
            cancel = cancel_under_load(demo, url, config.outputs_dir)
        load["latency_vs_alone"] = {
            "twin_p50": round(load["latency_s"]["twin"]["p50"] / reference_twin, 2) if "twin" in load["latency_s"] else None,
            "text_p50": round(load["latency_s"]["text"]["p50"] / reference_text, 2) if "text" in load["latency_s"] else None,
        }
        all_done = (load["completed"] == load["jobs"] and not load["errors"]
                    and load["mp4_decoded"] == CLIENTS_PER_TAB == load["history_holds_only_own_video"])
        others = cancel["others"]
        cancel_ok = (cancel["work_stopped_s"] is not None and cancel["work_stopped_s"] <= SLOT_TARGET_S
                     and cancel["next_job_started_s"] is not None and cancel["next_job_started_s"] <= SLOT_TARGET_S
                     and cancel["cancelled_client_videos"] == 0 and not cancel["partial_files_left"]
                     and others["completed"] == others["jobs"] and not others["errors"]
                     and others["mp4_decoded"] == CLIENTS_PER_TAB)
        return {
            "benchmark": "isolation",
            "clients": {"twin": CLIENTS_PER_TAB, "text": CLIENTS_PER_TAB},
            "heavy_concurrency": config.heavy_concurrency,
            "reference_alone_s": {"twin": round(reference_twin, 2), "text": round(reference_text, 2)},
            "load": load,
            "cancel": cancel,
            "peak_rss_mb": round(memory.peak / 2**20, 1),
            "rss_before_load_mb": round(baseline / 2**20, 1),
            "targets": {"all_complete_zero_errors_all_mp4_decode": True, "slot_free_within_s": SLOT_TARGET_S},
            "passed": bool(all_done and cancel_ok),
        }
    finally:
        demo.close()


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
