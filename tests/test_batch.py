"""Batch videos from a spreadsheet: real renders (Face Mesh, eSpeak NG, the classic engine, ffmpeg) in a
local process pool and on a local Ray instance, resume after a Stop, and bad spreadsheets and rows."""
from __future__ import annotations

import csv
import inspect
import itertools
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.batch import BatchConfig, open_sheet, read_summary, run_batch
from pipelines.batch.plan import Planner, RowJob, RowProblem
from pipelines.batch.spreadsheet import detect_encoding
from pipelines.core.errors import UserError
from pipelines.core.jobs import StopToken
from pipelines.core.settings import ASSETS_DIR, REPO_ROOT

VOICE = "espeak-ng:en-us"  # the fastest offline voice: rows stay short on 2 cores
FOUR_ROWS = [
    {"photo": "astronaut.jpg", "script": "Hello Ann.", "voice": VOICE, "subtitles": "yes", "name": "Ann"},
    {"photo": "astronaut.jpg", "script": "Hello Bob.", "voice": VOICE, "subtitles": "no", "name": "Bob"},
    {"photo": "landscape.png", "script": "Hello hills.", "voice": VOICE, "subtitles": "no", "name": "Hills"},
    {"photo": "photos/astronaut.png", "script": "Hi Chen.", "voice": "", "subtitles": "", "name": "Chen"},
]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime

    root = tmp_path_factory.mktemp("batch-runtime")
    return Runtime(cache=ModelCache(budget_bytes=2**31), catalog=Catalog(root / "models"), outputs_dir=root / "outputs")


def write_csv(path: Path, rows: list[dict], columns=("photo", "script", "voice", "subtitles", "name"),
              encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def batch_folder(tmp_path) -> Path:
    """A spreadsheet's folder: the astronaut (twice, one in a subfolder) and a landscape with no face."""
    folder = tmp_path / "jobs"
    (folder / "photos").mkdir(parents=True)
    shutil.copy(ASSETS_DIR / "astronaut.jpg", folder / "astronaut.jpg")
    Image.open(ASSETS_DIR / "astronaut.jpg").save(folder / "photos" / "astronaut.png")
    sky_to_grass = np.linspace([90, 150, 230], [60, 140, 60], 240)[:, None, :].repeat(320, axis=1)
    Image.fromarray(sky_to_grass.astype(np.uint8)).save(folder / "landscape.png")
    write_csv(folder / "jobs.csv", FOUR_ROWS)
    return folder


def check_four_row_result(result, out: Path) -> dict[str, dict]:
    summary = {r["name"]: r for r in read_summary(result.summary_path)}
    assert [r["row"] for r in read_summary(result.summary_path)] == ["2", "3", "4", "5"]  # in row order
    assert {n: r["status"] for n, r in summary.items()} == {"Ann": "done", "Bob": "done", "Hills": "failed", "Chen": "done"}
    assert "No face was found" in summary["Hills"]["error"]  # the bad row fails alone, with its reason
    for name in ("Ann", "Bob", "Chen"):
        video = out / summary[name]["output"]
        assert video.is_file() and video.stat().st_size > 1000
        assert 0.3 < float(summary[name]["duration"]) < 3
    with zipfile.ZipFile(result.zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(["summary.csv"] + [summary[n]["output"] for n in ("Ann", "Bob", "Chen")])
    return summary


@pytest.mark.slow
def test_four_rows_in_a_local_process_pool(batch_folder, runtime, tmp_path):
    from pipelines.core.media import probe_video

    out = tmp_path / "out"
    progress = []
    result = run_batch(BatchConfig(batch_folder / "jobs.csv", out, workers=2), runtime=runtime,
                       on_progress=lambda fraction, text: progress.append(fraction))
    summary = check_four_row_result(result, out)
    assert (result.done, result.failed, result.total_rows) == (3, 1, 4)
    assert progress[0] == 0.0 and progress[-1] == 1.0 and progress == sorted(progress)
    info = probe_video(out / summary["Ann"]["output"])
    assert (info.video_codec, info.audio_codec, info.width) == ("h264", "aac", 512)
    assert re.fullmatch(r"Ann-[0-9a-f]{12}\.mp4", summary["Ann"]["output"])


@pytest.fixture
def local_ray():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_four_rows_on_a_local_ray_cluster(batch_folder, runtime, tmp_path, local_ray):
    out = tmp_path / "out"
    result = run_batch(BatchConfig(batch_folder / "jobs.csv", out, ray_address="auto"), runtime=runtime)
    summary = check_four_row_result(result, out)
    assert local_ray.is_initialized()  # the batch joined the cluster it found and left it running
    # Same inputs, same names as a local run: the output name is the hash of the row's inputs
    planner = Planner(batch_folder, runtime=runtime)
    sheet = open_sheet(batch_folder / "jobs.csv")
    planned = {job.name: job.output_name for job in map(planner.plan, sheet.rows) if job.name != "Hills"}
    assert planned == {n: summary[n]["output"] for n in ("Ann", "Bob", "Chen")}


@pytest.mark.slow
def test_ray_with_a_shared_folder_writes_the_videos_in_place(batch_folder, runtime, tmp_path, local_ray):
    sheet = write_csv(batch_folder / "two.csv", FOUR_ROWS[:2])
    result = run_batch(BatchConfig(sheet, tmp_path / "shared-out", ray_address="auto", shared_folder=True,
                                   make_zip=False), runtime=runtime)
    assert [r.status for r in result.rows] == ["done", "done"] and result.zip_path is None
    assert all(r.output.is_file() and r.output.with_name(r.output.name + ".json").is_file() for r in result.rows)


@pytest.mark.slow
def test_a_stopped_batch_resumes_and_skips_the_rows_already_done(batch_folder, runtime, tmp_path):
    rows = [dict(FOUR_ROWS[0], name=f"p{i}", script=f"Hello number {i}.") for i in range(5)]
    sheet = write_csv(batch_folder / "five.csv", rows)
    out = tmp_path / "out"
    stop = StopToken()

    def stop_after_two(result):
        if sum(1 for p in out.glob("*.mp4")) >= 2:
            stop.stop()

    first = run_batch(BatchConfig(sheet, out, workers=0), runtime=runtime, stop=stop, on_row=stop_after_two)
    assert first.stopped and first.done == 2 and first.zip_path is None
    assert [r.status for r in first.rows] == ["done", "done"]
    assert any("Run the batch again" in n.en for n in first.notices)
    done_before = {r.output.name for r in first.rows}

    second = run_batch(BatchConfig(sheet, out, workers=0), runtime=runtime)
    assert not second.stopped and (second.skipped, second.done, second.failed) == (2, 3, 0)
    assert {r.output.name for r in second.rows if r.status == "skipped"} == done_before
    assert [r["status"] for r in read_summary(second.summary_path)] == ["skipped"] * 2 + ["done"] * 3

    # A changed input (the photo's bytes) is a new video, not a skip
    Image.open(batch_folder / "astronaut.jpg").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(batch_folder / "astronaut.jpg")
    planner = Planner(batch_folder, runtime=runtime)
    job = planner.plan(next(open_sheet(sheet).rows))
    assert isinstance(job, RowJob) and job.output_name not in done_before


# ---------------------------------------------------------------- bad input


def plan_all(folder: Path, name: str, runtime, rows, columns=("photo", "script", "voice", "subtitles", "name")):
    sheet = open_sheet(write_csv(folder / name, rows, columns))
    planner = Planner(folder, runtime=runtime)
    return [planner.plan(r) for r in sheet.rows]


def test_missing_columns_are_refused_for_the_file_before_any_work(batch_folder, runtime, tmp_path):
    write_csv(batch_folder / "no_photo.csv", [{"script": "Hi", "name": "a"}], ("script", "name"))
    with pytest.raises(UserError, match=r"lacks the column\(s\) photo") as info:
        run_batch(BatchConfig(batch_folder / "no_photo.csv", tmp_path / "out", workers=0), runtime=runtime)
    assert "缺少列" in info.value.zh
    assert not (tmp_path / "out").exists()
    write_csv(batch_folder / "no_script.csv", [{"photo": "a.jpg", "name": "a"}], ("photo", "name"))
    with pytest.raises(UserError, match="script or audio"):
        open_sheet(batch_folder / "no_script.csv")
    with pytest.raises(UserError, match=".csv or .xlsx"):
        open_sheet(batch_folder / "astronaut.jpg")


def test_bad_rows_fail_alone_with_their_reason(batch_folder, runtime, tmp_path):
    outside = tmp_path / "outside.jpg"
    shutil.copy(ASSETS_DIR / "astronaut.jpg", outside)
    (batch_folder / "link.jpg").symlink_to(outside)  # a link pointing out of the folder is outside too
    rows = [
        {"photo": "../../etc/passwd", "script": "Hi.", "name": "escape"},
        {"photo": str(outside), "script": "Hi.", "name": "absolute"},
        {"photo": "link.jpg", "script": "Hi.", "name": "link"},
        {"photo": "astronaut.jpg", "script": "Hi.", "voice": "robot-9000", "name": "voice"},
        {"photo": "astronaut.jpg", "script": "Hi.", "subtitles": "maybe", "name": "flag"},
        {"photo": "astronaut.jpg", "script": "", "name": "empty"},
        {"photo": "nobody", "script": "Hi.", "name": "missing"},
        {"photo": "astronaut.jpg", "script": "Hi there.", "voice": VOICE, "name": "good/../name"},
    ]
    planned = plan_all(batch_folder, "bad.csv", runtime, rows)
    reasons = {p.name: p.error.message for p in planned if isinstance(p, RowProblem)}
    assert "outside the allowed folders" in reasons["escape"]
    assert "outside the allowed folders" in reasons["absolute"]
    assert "outside the allowed folders" in reasons["link"]
    assert "Unknown voice 'robot-9000'" in reasons["voice"]
    assert "subtitles must be yes or no" in reasons["flag"]
    assert "neither a script nor a recording" in reasons["empty"]
    assert "not found" in reasons["missing"]
    good = planned[-1]
    assert isinstance(good, RowJob) and good.name == "good_name" and good.photo == (batch_folder / "astronaut.jpg").resolve()
    # An input folder given to the batch makes the outside file allowed
    allowed = Planner(batch_folder, (tmp_path,), runtime=runtime).plan(next(open_sheet(batch_folder / "bad.csv").rows))
    assert isinstance(allowed, RowProblem)  # ../../etc/passwd is still outside both
    sheet = open_sheet(write_csv(batch_folder / "abs.csv", [rows[1]]))
    assert isinstance(Planner(batch_folder, (tmp_path,), runtime=runtime).plan(next(sheet.rows)), RowJob)


def test_a_profile_name_stands_for_its_photo_and_voice(batch_folder, runtime):
    from pipelines.twin.profiles import save_profile

    save_profile("Dr Lin", photo=batch_folder / "astronaut.jpg", voice=VOICE, runtime=runtime)
    planned = plan_all(batch_folder, "profile.csv", runtime,
                       [{"photo": "dr lin", "script": "Hello.", "name": "lin"}], ("photo", "script", "name"))
    job = planned[0]
    assert isinstance(job, RowJob) and job.voice == VOICE and job.photo.name.startswith("photo")
    assert job.photo.suffix == ".png" and job.photo.is_file()
    assert "twin_profiles" in str(job.photo)


def test_language_picks_the_voice_when_voice_is_auto(batch_folder, runtime):
    planned = plan_all(batch_folder, "lang.csv", runtime,
                       [{"photo": "astronaut.jpg", "script": "你好。", "language": "zh", "name": "zh"},
                        {"photo": "astronaut.jpg", "script": "Hi.", "language": "xx", "name": "xx"}],
                       ("photo", "script", "language", "name"))
    assert isinstance(planned[0], RowJob) and planned[0].voice == "espeak-ng:cmn"
    assert isinstance(planned[1], RowProblem) and "No installed voice speaks" in planned[1].error.message


def test_ten_thousand_rows_are_streamed_not_loaded(batch_folder, runtime):
    path = batch_folder / "big.csv"
    script = "Hello, this is a personalised greeting for a customer of ours, spoken by a digital twin. " * 2
    write_csv(path, ({"photo": "astronaut.jpg", "script": f"{script} {i}", "voice": VOICE, "name": f"c{i}"}
                     for i in range(10_000)))
    size = path.stat().st_size
    assert size > 1_500_000
    planner = Planner(batch_folder, runtime=runtime)
    planner.voices()  # the voice list is built once per batch, not per row: not part of the measure
    tracemalloc.start()
    sheet = open_sheet(path)
    assert inspect.isgenerator(sheet.rows)
    first = [planner.plan(row) for row in itertools.islice(sheet.rows, 3)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [j.row for j in first] == [2, 3, 4] and all(isinstance(j, RowJob) for j in first)
    assert peak < size / 4  # three rows planned without holding the 10,000
    from pipelines.batch.spreadsheet import count_rows

    assert count_rows(path) == 10_000


def test_csv_encodings_are_detected_or_refused_clearly(batch_folder, runtime):
    rows = [{"photo": "astronaut.jpg", "script": "你好，欢迎光临。", "voice": "", "subtitles": "是", "name": "王小明"}]
    for encoding, expected in (("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("gb18030", "gb18030"),
                               ("utf-8", "utf-8")):
        path = write_csv(batch_folder / f"{encoding}.csv", rows, encoding=encoding)
        sheet = open_sheet(path)
        assert sheet.encoding == expected
        job = Planner(batch_folder, runtime=runtime).plan(next(sheet.rows))
        assert isinstance(job, RowJob) and job.name == "王小明" and job.script == "你好，欢迎光临。" and job.subtitles
        if encoding == "gb18030":
            assert any("GB18030" in n.en for n in sheet.notices)
    with pytest.raises(UserError, match="neither UTF-8, UTF-16 nor GB18030"):
        detect_encoding(b"photo,script\n\x81\x20\xff\xff\xff")
    (batch_folder / "garbage.csv").write_bytes(b"photo,script\nastronaut.jpg,\x81\x20\xff\xff\n")
    with pytest.raises(UserError, match="CSV UTF-8"):
        open_sheet(batch_folder / "garbage.csv")


def test_a_bad_byte_late_in_the_file_fails_from_that_row_on_and_says_so(batch_folder, runtime):
    path = write_csv(batch_folder / "late.csv", [{"photo": "astronaut.jpg", "script": "Hello " * 20, "name": f"n{i}"}
                                                 for i in range(1000)])
    path.write_bytes(path.read_bytes() + b"astronaut.jpg,caf\xe9,,,late\n")  # Latin-1 after 100 KB of UTF-8
    rows = list(open_sheet(path).rows)
    assert len(rows) == 1001 and all(r.error is None for r in rows[:1000])
    assert "cannot be read from row 1002" in rows[-1].error.message


def _xlsx_with_cached_value(path: Path, cell: str, value: str) -> None:
    """openpyxl writes formulas without results; put a saved result in, as Excel does when it saves."""
    with zipfile.ZipFile(path) as src:
        items = {name: src.read(name) for name in src.namelist()}
    xml = items["xl/worksheets/sheet1.xml"].decode()
    xml = re.sub(rf'<c r="{cell}"><f>(.*?)</f><v ?/>(</v>)?</c>', rf'<c r="{cell}" t="str"><f>\1</f><v>{value}</v></c>', xml)
    items["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as dst:
        for name, data in items.items():
            dst.writestr(name, data)


def test_xlsx_formulas_use_their_saved_value_or_fail_that_row(batch_folder, runtime):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Photo", "Script", "Voice", "Name"])
    sheet.append(["astronaut.jpg", '="Hello "&"Ann"', VOICE, "Ann"])
    sheet.append(["astronaut.jpg", '="Hello "&"Bob"', VOICE, "Bob"])
    sheet.append(["astronaut.jpg", "Hello Chen.", VOICE, "Chen"])
    path = batch_folder / "formulas.xlsx"
    book.save(path)
    _xlsx_with_cached_value(path, "B2", "Hello Ann")
    opened = open_sheet(path)
    assert opened.encoding == "xlsx" and inspect.isgenerator(opened.rows)
    planner = Planner(batch_folder, runtime=runtime)
    ann, bob, chen = [planner.plan(r) for r in opened.rows]
    assert isinstance(ann, RowJob) and ann.script == "Hello Ann"
    assert any("B2" in n.en and "saved value" in n.en for n in ann.notices)
    assert isinstance(bob, RowProblem) and "B3" in bob.error.message and "never calculated" in bob.error.message
    assert isinstance(chen, RowJob) and chen.script == "Hello Chen."


def test_cli_refuses_a_bad_file_in_one_line(batch_folder, tmp_path):
    write_csv(batch_folder / "bad.csv", [{"script": "Hi", "name": "a"}], ("script", "name"))
    proc = subprocess.run([sys.executable, "-m", "pipelines.batch", str(batch_folder / "bad.csv"), "--out",
                           str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "photo" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_summary_cells_cannot_run_as_formulas(tmp_path):
    from pipelines.batch.run import RowResult, write_summary

    write_summary(tmp_path / "s.csv", [RowResult(2, "=HYPERLINK(1)", "failed", error="-bad")])
    row = read_summary(tmp_path / "s.csv")[0]
    assert row["name"] == "'=HYPERLINK(1)" and row["error"] == "'-bad"


# ---------------------------------------------------------------- lost workers


def kill_one_worker(is_worker) -> int | None:
    """SIGKILL one of this test's own worker processes (a descendant whose command line ``is_worker``)."""
    import signal

    import psutil

    for child in psutil.Process().children(recursive=True):
        try:
            if is_worker(" ".join(child.cmdline())):
                os.kill(child.pid, signal.SIGKILL)
                return child.pid
        except psutil.Error:
            continue
    return None


def six_rows(folder: Path) -> Path:
    rows = [dict(FOUR_ROWS[0], name=f"k{i}", script=f"Hello number {i}, nice to meet you.") for i in range(6)]
    return write_csv(folder / "six.csv", rows)


@pytest.mark.slow
def test_a_killed_pool_worker_costs_a_retry_not_the_rows(batch_folder, runtime, tmp_path):
    killed = []

    def kill_after_first(result):
        if not killed:
            killed.append(kill_one_worker(lambda cmd: "multiprocessing.spawn" in cmd and "resource_tracker" not in cmd))

    result = run_batch(BatchConfig(six_rows(batch_folder), tmp_path / "out", workers=2), runtime=runtime,
                       on_row=kill_after_first)
    assert killed[0] is not None  # a worker really died mid-batch
    assert [r.status for r in result.rows] == ["done"] * 6, [r.error for r in result.rows]


@pytest.mark.slow
def test_a_killed_ray_worker_is_retried_by_ray(batch_folder, runtime, tmp_path, local_ray):
    killed = []

    def kill_after_first(result):
        if not killed:
            killed.append(kill_one_worker(lambda cmd: cmd.startswith("ray::render_row")))  # a busy worker, by its title

    result = run_batch(BatchConfig(six_rows(batch_folder), tmp_path / "out", ray_address="auto"), runtime=runtime,
                       on_row=kill_after_first)
    assert killed[0] is not None
    assert [r.status for r in result.rows] == ["done"] * 6, [r.error for r in result.rows]


@pytest.mark.slow
def test_two_nodes_share_the_rows_and_a_lost_nodes_rows_are_run_again(batch_folder, runtime, tmp_path):
    """Two Ray nodes (Ray's own multi-node test cluster, two raylets on this machine): the batch joins the
    cluster, and when one node dies mid-batch (not gracefully, as a machine that leaves) every row still ends done."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        second = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        assert sum(node["Alive"] for node in ray.nodes()) == 2
        removed = []

        def remove_second_node(result):
            if not removed:
                cluster.remove_node(second, allow_graceful=False)
                removed.append(result.name)

        result = run_batch(BatchConfig(six_rows(batch_folder), tmp_path / "out", ray_address="auto"),
                           runtime=runtime, on_row=remove_second_node)
        assert removed and [r.status for r in result.rows] == ["done"] * 6, [r.error for r in result.rows]
    finally:
        ray.shutdown()
        cluster.shutdown()
