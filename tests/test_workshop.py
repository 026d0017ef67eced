"""Workshop capacity: each kind of work has its own queue sized to the machine (no timing here: speed
lives in bench/bench_workshop.py), and the Batch tab's handlers on the real pipelines."""
from __future__ import annotations

import csv
import shutil
import zipfile

import gradio as gr
import pytest

from aigc_ui.capacity import concurrency_limits, machine_limits
from pipelines.core.settings import ASSETS_DIR, REPO_ROOT, AppConfig, parse_args
from tests.test_ui_handlers import EN, ZH, make_context


def test_limits_are_sized_to_the_machine_and_flags_override_them(tmp_path):
    config = AppConfig(models_dir=tmp_path / "m", outputs_dir=tmp_path / "o", device="cpu")
    assert concurrency_limits(config, cpus=2, gpu=False) == {"video": 1, "text": 1, "voice": 2, "image": 1,
                                                             "face": 2, "batch": 1}
    big = concurrency_limits(config, cpus=16, gpu=True)
    assert big["video"] == 8 and big["text"] == 2 and big["image"] == 1
    assert machine_limits(1, False)["video"] == 1  # never 0
    flagged = parse_args(["--max-videos", "3", "--max-text", "2", "--max-voice", "4", "--max-images", "2",
                          "--max-faces", "5", "--max-batches", "2", "--device", "cpu"])
    assert concurrency_limits(flagged, cpus=2, gpu=False) == {"video": 3, "text": 2, "voice": 4, "image": 2,
                                                              "face": 5, "batch": 2}


def test_limits_come_from_environment_variables_too(monkeypatch):
    monkeypatch.setenv("AIGC_MAX_VIDEOS", "6")
    assert parse_args([]).max_videos == 6
    assert parse_args(["--max-videos", "2"]).max_videos == 2  # a flag wins over the environment


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    """Every event of the built studio by its function name, with --max-videos 3."""
    from aigc_ui.app import build_app

    root = tmp_path_factory.mktemp("workshop")
    demo = build_app(AppConfig(models_dir=root / "m", outputs_dir=root / "o", max_videos=3, max_text=2))
    return {fn.name: fn for fn in demo.fns.values()}


@pytest.mark.parametrize("name, kind, limit", [
    ("create_video", "video", 3), ("create_twin_video", "video", 3),
    ("generate_text_stream", "text", 2), ("generate_text", "text", 2), ("write_script", "text", 2),
    ("speak", "voice", 2), ("generate_faces", "face", 2), ("reroll_face", "face", 2),
    ("interpolate_faces", "face", 2), ("generate_image", "image", 1), ("run_batch_job", "batch", 1),
])
def test_each_kind_of_work_has_its_own_queue_and_limit(events, name, kind, limit):
    fn = events[name]
    assert (fn.concurrency_id, fn.concurrency_limit) == (kind, limit)
    assert fn.queue  # queued: the browser shows the queue position and the expected wait


def test_no_light_event_shares_a_queue_with_heavy_work(events):
    heavy = {"video", "text", "voice", "image", "face", "batch"}
    text_and_voice = {fn.name for fn in events.values() if fn.concurrency_id in ("text", "voice")}
    assert text_and_voice == {"generate_text_stream", "generate_text", "write_script", "speak"}
    for fn in events.values():
        if fn.concurrency_id in heavy and fn.api_name not in ("generate_text",):  # gr.api has no widget
            assert fn.show_progress in ("full", "minimal"), fn.name  # position and wait are shown
    assert "accelerator" not in {fn.concurrency_id for fn in events.values()}


# ---------------------------------------------------------------- the Batch tab


@pytest.fixture
def uploads(tmp_path):
    """What a browser uploads: a spreadsheet and the photos it names, each in its own temp folder."""
    folder = tmp_path / "uploads"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    shutil.copy(ASSETS_DIR / "astronaut.jpg", folder / "a" / "me.jpg")
    sheet = folder / "b" / "jobs.csv"
    with open(sheet, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["照片", "脚本", "语音", "名称"])  # Chinese column names
        writer.writerow(["me.jpg", "Hello.", "espeak-ng:en-us", "hello"])
        writer.writerow(["missing.jpg", "Hi.", "espeak-ng:en-us", "missing"])
    return sheet, [str(folder / "a" / "me.jpg")]


@pytest.fixture
def batch_ctx(tmp_path):
    import aigc_ui.app  # noqa: F401 - registers every tab's strings

    return make_context(tmp_path / "studio")


@pytest.mark.slow
def test_batch_tab_makes_the_videos_and_offers_the_zip(batch_ctx, uploads):
    from aigc_ui import batch_tab

    sheet, photos = uploads
    steps = list(batch_tab.run_batch_job(batch_ctx, str(sheet), photos, True, request=ZH))
    assert len(steps) == 3  # one update per row, then the final one
    rows, message, archive = steps[-1]
    assert [(r[0], r[1], r[2]) for r in rows] == [(2, "hello", "完成"), (3, "missing", "失败")]
    assert "找不到照片文件" in rows[1][5]  # the row's reason, in the user's language
    assert message.startswith("完成") and "失败 1 行" in message
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted(["summary.csv", rows[0][4]])
    # Each run has its own folder under batch/, in the caller's own outputs folder
    assert str(batch_ctx.runtime_for(ZH).outputs_dir / "batch") in archive


def test_batch_tab_refuses_without_consent_or_spreadsheet_in_the_users_language(batch_ctx, uploads):
    from aigc_ui import batch_tab

    sheet, photos = uploads
    with pytest.raises(gr.Error, match="consent box"):
        list(batch_tab.run_batch_job(batch_ctx, str(sheet), photos, False, request=EN))
    with pytest.raises(gr.Error, match="请添加一个表格"):
        list(batch_tab.run_batch_job(batch_ctx, None, photos, True, request=ZH))
    with pytest.raises(gr.Error, match="not a spreadsheet"):
        list(batch_tab.run_batch_job(batch_ctx, photos[0], [], True, request=EN))


def test_batch_tab_reports_a_bad_file_as_a_message(batch_ctx, tmp_path):
    from aigc_ui import batch_tab

    sheet = tmp_path / "bad.csv"
    sheet.write_text("name,script\nx,Hi\n", encoding="utf-8")
    with pytest.raises(gr.Error, match=r"lacks the column\(s\) photo"):
        list(batch_tab.run_batch_job(batch_ctx, str(sheet), [], True, request=EN))
    batch_tab.stop_batch(batch_ctx, EN)  # nothing running: a no-op


def test_video_work_runs_at_a_lower_priority_than_quick_answers(tmp_path):
    """A twin video yields the CPU to text and voice answers: its frames thread and its encoder are niced,
    the thread that asked (a Gradio worker) is not."""
    import os
    import threading
    import time

    import numpy as np
    import psutil

    from pipelines.core.cpu import BACKGROUND_NICENESS, lower_this_threads_priority
    from pipelines.core.media import Mp4Writer

    seen = {}

    def worker():
        lower_this_threads_priority()
        seen["worker"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["worker"] == BACKGROUND_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0  # the caller's thread is untouched
    with Mp4Writer(tmp_path / "bg.mp4", 64, 64, 25, background=True) as writer:
        writer.write(np.zeros((64, 64, 3), np.uint8))
        for _ in range(100):  # `nice` execs the encoder: wait until it has (a fresh look each time)
            encoder = psutil.Process(writer._proc.pid)
            if "ffmpeg" in encoder.name():
                break
            time.sleep(0.02)
        assert "ffmpeg" in encoder.name() and encoder.nice() == BACKGROUND_NICENESS
    with Mp4Writer(tmp_path / "fg.mp4", 64, 64, 25) as writer:
        assert psutil.Process(writer._proc.pid).nice() == 0


def test_the_blas_scan_happens_in_the_main_thread_only():
    """threadpoolctl's library scan deadlocks against an extension import in another thread, so a worker
    thread that first imports the renderer (a studio's first twin video) must not scan; the main thread
    (the studio's start, a command-line tool) does."""
    import subprocess
    import sys

    code = """
import threading
from pipelines.core import cpu
thread = threading.Thread(target=lambda: __import__("pipelines.twin.render.rig"))
thread.start(); thread.join()
print("worker", cpu._blas is None)
cpu.prepare_blas_control()
print("main", bool(cpu._blas))
with cpu.single_thread_kernels():
    with cpu.single_thread_kernels():  # overlapping users (two frame threads)
        pass
    print("limited", cpu._blas.info()[0]["num_threads"] if cpu._blas.info() else 1)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-1500:]
    assert "worker True" in out.stdout and "main True" in out.stdout and "limited 1" in out.stdout
