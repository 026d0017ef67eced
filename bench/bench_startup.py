"""Cold start and idle memory of the studio (issue 2): ``python app.py`` to the first HTTP 200, and the
server's RSS once idle. Reference in the same run: a one-textbox Gradio app started the same way, so the
ratio shows what the studio adds on top of Gradio itself. Targets: <= 8 s, <= 1 GB."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
HELLO = "import gradio as gr\nwith gr.Blocks() as d: gr.Textbox()\nd.launch(server_port={port})\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss(pid: int) -> int:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)])


def time_to_200(cmd: list[str], port: int, env: dict) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        elapsed = time.perf_counter() - started
        time.sleep(3)  # idle
        return elapsed, tree_rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


def run() -> dict:
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        port = free_port()
        hello.write_text(HELLO.format(port=port))
        ref_s, ref_rss = time_to_200([sys.executable, str(hello)], port, env)
        port = free_port()
        studio_s, studio_rss = time_to_200(
            [sys.executable, "app.py", "--port", str(port), "--outputs-dir", str(Path(tmp) / "out")], port, env)
    return {
        "cold_start_s": round(studio_s, 2),
        "idle_rss_mb": round(studio_rss / 2**20),
        "reference_gradio_hello_start_s": round(ref_s, 2),
        "reference_gradio_hello_rss_mb": round(ref_rss / 2**20),
        "start_ratio_vs_hello": round(studio_s / ref_s, 2),
        "target": "cold start <= 8 s, idle RSS <= 1024 MB",
        "passed": studio_s <= 8 and studio_rss <= 2**30,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
