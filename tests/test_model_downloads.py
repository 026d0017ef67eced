"""The model manager against a fake hub on 127.0.0.1 (tests/fake_hub.py) serving tiny models built here:
what is fetched, progress, resume, checks, gated models, disk space, bad input, the CLI, the Models tab.

Network traffic stays on loopback; every wait is bounded.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from pipelines.core.catalog import Catalog
from pipelines.core.downloads import DownloadPlan, HubFiles, download, local_state
from pipelines.core.errors import Stopped, UserError
from pipelines.core.jobs import StopToken
from pipelines.core.model_downloads import (PLANS, better_text_model_hint, download_model, find_plan, model_entries,
                                            remove_model)
from tests.fake_hub import FakeHub

ROOT = Path(__file__).resolve().parent.parent
GPT2_DECOYS = {"flax_model.msgpack": b"\x01" * 5000, "pytorch_model.bin": b"\x02" * 3000,
               "tf_model.h5": b"\x03" * 2000, "onnx/decoder_model.onnx": b"\x04" * 2000, "README.md": b"# gpt2\n"}
BIG = 4 * 2**20  # several 1 MB reads, so a dropped connection leaves whole reads to keep


@pytest.fixture
def hub(monkeypatch, tiny_gpt2_dir):
    """The fake hub, with HF_ENDPOINT pointed at it and offline mode off for this test."""
    from huggingface_hub import constants

    fake = FakeHub().start()
    fake.add_folder("openai-community/gpt2", tiny_gpt2_dir, extra=GPT2_DECOYS)
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def models_dir(tmp_path) -> Path:
    return tmp_path / "models"


def big_gguf_plan(name: str = "big-gguf", repo: str = "acme/big-gguf") -> DownloadPlan:
    return DownloadPlan(name, (HubFiles(repo, ("weights.gguf", "config.json"), "text/big", required=("weights.gguf",)),),
                        target="text/big", size_mb=BIG / 1e6)


def add_big_repo(hub: FakeHub, repo: str = "acme/big-gguf", gated: bool = False) -> bytes:
    data = hashlib.sha256(b"seed").digest() * (BIG // 32)
    hub.add_repo(repo, {"weights.gguf": data, "config.json": b'{"kind": "test"}', "other.gguf": b"\x05" * 4000},
                 gated=gated)
    return data


def runtime_for(models_dir: Path, tmp_path: Path):
    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import AppConfig

    return Runtime.from_config(AppConfig(models_dir=models_dir, outputs_dir=tmp_path / "outputs"))


# ---------------------------------------------------------------------------------------- downloads
def test_download_fetches_only_needed_files_reports_progress_and_loads_in_its_tab(hub, models_dir, tmp_path):
    events = []
    result = download_model("gpt2", models_dir, on_progress=events.append)

    folder = models_dir / "text" / "gpt2"
    assert result.path == folder and (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    for decoy in GPT2_DECOYS:  # never asked for, neither HEAD nor GET
        assert not any(path.endswith(decoy) for path in hub.fetched("resolve") + hub.fetched("cdn")), decoy
        assert not (folder / decoy).exists()
    assert any("/tree/" in path for path in hub.fetched()) and any("/cdn/" in path for path in hub.fetched())
    # progress: bytes only go up, end at the total, then the check and the install are reported
    downloading = [e for e in events if e.phase == "downloading"]
    assert [e.done_bytes for e in downloading] == sorted(e.done_bytes for e in downloading)
    assert downloading[-1].done_bytes == downloading[-1].total_bytes == result.total_bytes
    assert [e.phase for e in events][-2:] == ["checking", "installing"]
    assert "/" in downloading[-1].text() and "kB" in downloading[-1].text()
    # nothing left behind but the record of what was installed
    assert not (models_dir / ".downloads").exists()
    assert local_state(PLANS["gpt2"], models_dir).downloaded_here

    # the catalog's own "gpt2" entry now loads from models/, with no restart and no duplicate entry
    runtime = runtime_for(models_dir, tmp_path)
    specs = [s for s in runtime.catalog.models("text") if s.source == str(folder)]
    assert [(s.name, s.source_kind, s.licence) for s in specs] == [("gpt2", "local", "MIT")]
    assert runtime.catalog.get("text", "openai-community/gpt2").source == str(folder)
    from pipelines.text.generation import generate_text

    text = generate_text("The quick brown fox", model="gpt2", max_new_tokens=5, seed=1, runtime=runtime)
    assert text.new_tokens > 0 and text.model == "gpt2"


def test_a_dropped_connection_resumes_with_a_range_request(hub, models_dir):
    data = add_big_repo(hub)
    hub.drop_once.add("acme/big-gguf/weights.gguf")
    download(big_gguf_plan(), models_dir)

    body_requests = [r for r in hub.requests if r.path.endswith("/cdn/acme/big-gguf/weights.gguf")]
    assert [r.range for r in body_requests][0] is None
    assert body_requests[1].range is not None and int(body_requests[1].range.split("=")[1].rstrip("-")) > 0
    installed = models_dir / "text" / "big" / "weights.gguf"
    assert hashlib.sha256(installed.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert not any("other.gguf" in path for path in hub.fetched())


def test_speed_and_time_left_are_reported(hub, models_dir):
    hub.add_repo("acme/slow", {"w.gguf": b"\x07" * (6 * 2**20)})
    hub.chunk_delay_s = 0.01  # 96 pieces of 64 kB: the transfer lasts long enough to measure
    plan = DownloadPlan("slow", (HubFiles("acme/slow", ("w.gguf",), "text"),), "text/w.gguf", 6)
    events = []
    download(plan, models_dir, on_progress=events.append)
    moving = [e for e in events if e.phase == "downloading" and e.bytes_per_second > 0]
    assert moving and any(e.seconds_left is not None and e.seconds_left > 0 for e in moving)
    assert "/s" in moving[0].text() and "left" in moving[0].text() and "约剩" in moving[0].text("zh")


def test_a_file_that_fails_its_hash_is_refused_then_fetched_again(hub, models_dir):
    hub.corrupt.add("openai-community/gpt2/model.safetensors")
    with pytest.raises(UserError, match="does not match") as refused:
        download_model("gpt2", models_dir)
    assert "没有安装" in refused.value.text("zh")
    assert not (models_dir / "text" / "gpt2").exists()
    kept = local_state(PLANS["gpt2"], models_dir).partial_bytes
    assert kept > 0  # the good files wait for the next try; the bad one was deleted

    hub.corrupt.clear()
    before = len(hub.requests)
    download_model("gpt2", models_dir)
    again = [r.path for r in hub.requests[before:] if r.method == "GET" and ("/resolve/" in r.path or "/cdn/" in r.path)]
    assert again == ["/cdn/openai-community/gpt2/model.safetensors"]  # only the bad file came again
    assert (models_dir / "text" / "gpt2" / "model.safetensors").is_file()


def test_a_file_of_the_wrong_size_is_refused(hub, models_dir):
    add_big_repo(hub)
    hub.truncate.add("acme/big-gguf/weights.gguf")
    with pytest.raises(UserError, match="wrong size"):
        download(big_gguf_plan(), models_dir)
    assert not (models_dir / "text" / "big").exists()
    assert not list((models_dir / ".downloads").rglob("*.incomplete"))  # no half file kept


def test_a_gated_model_needs_a_token_which_is_never_stored(hub, models_dir, caplog):
    add_big_repo(hub, "acme/gated", gated=True)
    plan = big_gguf_plan("gated-model", "acme/gated")
    with pytest.raises(UserError, match="gated") as refused:
        download(plan, models_dir)
    assert "token" in refused.value.message and "令牌" in refused.value.text("zh")
    assert not (models_dir / "text" / "big").exists()

    with pytest.raises(UserError, match="does not open"):
        download(plan, models_dir, token="hf_wrong")

    caplog.set_level("DEBUG")
    download(plan, models_dir, token=hub.token)
    assert any(r.authorized for r in hub.requests if "/resolve/" in r.path)
    secret = hub.token.encode()
    assert not [p for p in models_dir.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert hub.token not in caplog.text


def test_a_full_disk_is_refused_before_anything_is_fetched(hub, models_dir):
    with pytest.raises(UserError, match="Not enough free disk space"):
        download_model("gpt2", models_dir, free_bytes=lambda folder: 1000)
    assert not hub.fetched("resolve") and not hub.fetched("cdn")
    assert not models_dir.exists()


def test_no_connection_says_so_and_writes_nothing(monkeypatch, models_dir, tmp_path):
    from huggingface_hub import constants

    with pytest.raises(UserError, match="no connection to the model hub"):
        download_model("gpt2", models_dir)  # the test session runs with HF_HUB_OFFLINE=1
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    from tests.conftest import free_port

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nobody listens there
    with pytest.raises(UserError, match="No connection to the model hub") as refused:
        download_model("gpt2", models_dir)
    assert "无法连接模型中心" in refused.value.text("zh")
    assert not models_dir.exists()


def test_cancel_keeps_whole_files_and_the_next_download_goes_on(hub, models_dir):
    add_big_repo(hub)
    hub.chunk_delay_s = 0.02  # about 1.3 s for the big file: Cancel comes in the middle of it
    stop = StopToken()

    def cancel_midway(progress):
        if progress.file == "weights.gguf" and progress.done_bytes > BIG // 4:
            stop.stop()

    with pytest.raises(Stopped):
        download(big_gguf_plan(), models_dir, stop=stop, on_progress=cancel_midway)
    work = models_dir / ".downloads" / "big-gguf"
    assert not list(work.rglob("*.incomplete"))  # the half file is gone
    assert not (models_dir / "text" / "big").exists()
    assert local_state(big_gguf_plan(), models_dir).partial_bytes == len(b'{"kind": "test"}')  # config.json kept

    hub.chunk_delay_s = 0.0
    before = len(hub.requests)
    download(big_gguf_plan(), models_dir)
    fetched_again = [r.path for r in hub.requests[before:] if r.method == "GET"]
    assert not any("config.json" in path for path in fetched_again)  # kept from the first try
    assert any("weights.gguf" in path for path in fetched_again)  # the half file starts over
    assert (models_dir / "text" / "big" / "weights.gguf").stat().st_size == BIG


def test_after_a_crash_a_stale_half_file_is_removed(hub, models_dir):
    stale = models_dir / ".downloads" / "gpt2" / "hub" / "openai-community--gpt2" / ".cache" / "huggingface" / \
        "download" / "model.safetensors.abc.1234.incomplete"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a file")
    download_model("gpt2", models_dir)
    assert not stale.exists() and not (models_dir / ".downloads").exists()


def test_two_downloads_of_one_model_at_once(hub, models_dir):
    hub.hold = threading.Event()
    outcome = {}

    def first():
        try:
            outcome["first"] = download_model("gpt2", models_dir)
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["first"] = exc

    worker = threading.Thread(target=first)
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not any(r.method == "GET" and "/resolve/" in r.path for r in hub.requests):
            assert time.monotonic() < deadline, "the first download never started"
            time.sleep(0.02)
        assert local_state(PLANS["gpt2"], models_dir).downloading
        with pytest.raises(UserError, match="already being downloaded"):
            download_model("gpt2", models_dir)
        with pytest.raises(UserError, match="Cancel it first"):
            remove_model("gpt2", models_dir)
    finally:
        hub.hold.set()
        worker.join(timeout=30)
    assert not isinstance(outcome["first"], Exception), outcome["first"]


# ---------------------------------------------------------------------------------------- bad input
def test_names_that_are_not_in_the_list(models_dir):
    catalog = Catalog(models_dir)
    for name, message in (("not-a-model", "not in the list"), ("../x", "not a model name"),
                          ("/etc/passwd", "not a model name"), ("", "Pick a model"),
                          ("bark-small", "not offered for download")):
        with pytest.raises(UserError, match=message):
            find_plan(name, catalog)
    assert find_plan("Qwen/Qwen2.5-0.5B-Instruct-GGUF", catalog).name == "qwen2.5-0.5b-instruct-gguf"
    assert find_plan("stabilityai/sd-turbo", catalog).name == "sd-turbo"


def test_a_repo_that_does_not_exist(hub, models_dir):
    plan = DownloadPlan("ghost", (HubFiles("nobody/does-not-exist", ("*.gguf",), "text"),), "text/x.gguf", 1)
    with pytest.raises(UserError, match="has no repository nobody/does-not-exist"):
        download(plan, models_dir)
    assert not models_dir.exists()


def test_installed_twice_and_remove(hub, models_dir):
    download_model("gpt2", models_dir)
    with pytest.raises(UserError, match="already installed"):
        download_model("gpt2", models_dir)
    assert remove_model("gpt2", models_dir) == ["text/gpt2"]
    assert not (models_dir / "text" / "gpt2").exists()
    with pytest.raises(UserError, match="not downloaded"):
        remove_model("gpt2", models_dir)
    by_hand = models_dir / "text" / "gpt2"
    by_hand.mkdir(parents=True)
    (by_hand / "config.json").write_text("{}")
    with pytest.raises(UserError, match="by hand"):
        remove_model("gpt2", models_dir)
    assert by_hand.is_dir()  # a model the user put there is never deleted


def test_a_plan_whose_files_left_the_hub_says_so(hub, models_dir):
    plan = DownloadPlan("gone", (HubFiles("openai-community/gpt2", ("model.safetensors", "weights.gguf"), "text/g",
                                          required=("weights.gguf",)),), "text/g", 1)
    with pytest.raises(UserError, match="no longer has weights.gguf"):
        download(plan, models_dir)


# ---------------------------------------------------------------------------------------- curated list
def test_curated_layouts_match_what_the_scanners_expect():
    assert {"qwen2.5-0.5b-instruct-gguf", "qwen2.5-1.5b-instruct-gguf", "sd-turbo", "sdxl-turbo",
            "ddpm-celebahq-256", "musetalk", "faster-whisper-small"} <= set(PLANS)
    musetalk = PLANS["musetalk"]
    destinations = {part.repo_id: part.destination("x") for part in musetalk.parts}
    assert destinations == {"TMElyralab/MuseTalk": "twin/musetalk/x", "stabilityai/sd-vae-ft-mse": "twin/musetalk/sd-vae/x",
                            "openai/whisper-tiny": "twin/musetalk/whisper/x"}
    assert musetalk.parts[0].destination("musetalkV15/unet.pth") == "twin/musetalk/musetalkV15/unet.pth"
    sd = PLANS["sd-turbo"].parts[0]
    assert sd.destination("unet/diffusion_pytorch_model.fp16.safetensors") == \
        "image/sd-turbo/unet/diffusion_pytorch_model.safetensors"
    huayan = PLANS["zh_CN-huayan-medium"].parts[0]
    assert huayan.destination("zh/zh_CN/huayan/medium/zh_CN-huayan-medium.onnx.json") == \
        "voices/zh_CN-huayan-medium.onnx.json"
    assert PLANS["faster-whisper-small"].target == "asr/faster-whisper-small"
    for plan in PLANS.values():
        assert plan.size_mb > 0 and all(part.destination("f").startswith(plan.target.split("/")[0]) for part in plan.parts)


def test_sd_turbo_fp16_files_install_as_a_pipeline_the_image_tab_loads(hub, models_dir, tiny_sd_dir, tmp_path):
    files = {}
    for path in sorted(tiny_sd_dir.rglob("*")):
        if path.is_file():
            name = path.relative_to(tiny_sd_dir).as_posix()
            files[name] = path.read_bytes()  # the fp32 copies: decoys here
            if name.endswith(".safetensors"):
                files[name.replace(".safetensors", ".fp16.safetensors")] = path.read_bytes()
    hub.add_repo("stabilityai/sd-turbo", files)
    download_model("sd-turbo", models_dir)
    assert not any(r.path.endswith("/diffusion_pytorch_model.safetensors") or r.path.endswith("/model.safetensors")
                   for r in hub.requests)
    folder = models_dir / "image" / "sd-turbo"
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    from pipelines.image.text_to_image import generate_images

    runtime = runtime_for(models_dir, tmp_path)
    assert runtime.catalog.get("image", "sd-turbo").source_kind == "local"
    result = generate_images("a red apple", model="sd-turbo", steps=1, width=64, height=64, seed=3, runtime=runtime)
    assert len(result.images) == 1


def test_the_text_tab_hint_points_to_a_better_model(models_dir, tmp_path):
    runtime = runtime_for(models_dir, tmp_path)
    hint = better_text_model_hint(runtime)
    assert hint is not None and "Models tab" in hint.en and "qwen2.5-0.5b-instruct-gguf" in hint.en
    assert "模型" in hint.zh
    assert better_text_model_hint(runtime, "qwen2.5-0.5b-instruct-gguf") is None
    target = PLANS["qwen2.5-0.5b-instruct-gguf"].target_path(models_dir)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF")
    assert "pick it" in better_text_model_hint(runtime, "smollm2-135m-instruct").en


def test_every_entry_has_chinese_text(models_dir):
    """Names and licence ids may stay as they are; any sentence is in Chinese."""
    import re

    name_only = re.compile(r"[A-Za-z0-9 .+\-]*")
    for entry in model_entries(Catalog(models_dir)):
        spec = entry.spec
        for english, chinese in ((spec.description, spec.description_text("zh")), (spec.licence, spec.licence_text("zh"))):
            assert name_only.fullmatch(english) or (chinese != english and re.search(r"[\u3000-\u9fff\uff00-\uffef]", chinese)), (spec.name, chinese)


# ---------------------------------------------------------------------------------------- command line
def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.models", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_command_line_download_list_remove(hub, models_dir):
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
    got = run_cli("download", "openai-community/gpt2", "--models-dir", str(models_dir), env=env)
    assert got.returncode == 0, got.stderr
    assert "Downloaded gpt2" in got.stdout and (models_dir / "text" / "gpt2" / "config.json").is_file()
    listed = run_cli("--models-dir", str(models_dir), "list", env=env)
    assert any(line.startswith("gpt2 ") and "downloaded" in line for line in listed.stdout.splitlines())
    assert str(models_dir) not in listed.stdout  # no internal paths
    bad = run_cli("download", "../x", "--models-dir", str(models_dir), env=env)
    assert bad.returncode == 2 and "not a model name" in bad.stderr and "Traceback" not in bad.stderr
    gone = run_cli("remove", "gpt2", "--models-dir", str(models_dir), env=env)
    assert gone.returncode == 0 and "removed models/text/gpt2" in gone.stdout


# ---------------------------------------------------------------------------------------- the Models tab
class FakeRequest:
    def __init__(self, lang: str = "en"):
        self.headers = {"cookie": f"aigc-lang={lang}", "accept-language": lang}
        self.session_hash = "test-session"
        self.client = types.SimpleNamespace(host="127.0.0.1")  # the host: downloads and removals are theirs


@pytest.fixture
def ctx(models_dir, tmp_path):
    from aigc_ui.common import StudioContext
    from pipelines.core.settings import AppConfig

    config = AppConfig(models_dir=models_dir, outputs_dir=tmp_path / "outputs")
    return StudioContext(config=config, runtime=runtime_for(models_dir, tmp_path))


def test_models_tab_rows_show_no_internal_paths_and_speak_chinese(ctx, models_dir):
    from aigc_ui.models_tab import catalog_rows, details_text, entry_named

    target = models_dir / "image" / "my-own"
    target.mkdir(parents=True)
    (target / "model_index.json").write_text("{}")
    for lang in ("en", "zh"):
        rows = catalog_rows(ctx, lang)
        assert len(rows) >= len(PLANS) and all(len(row) == 8 for row in rows)
        cells = " ".join(str(c) for row in rows for c in row)
        assert str(models_dir) not in cells and str(ROOT) not in cells
    zh = {row[1]: row for row in catalog_rows(ctx, "zh")}
    assert zh["sd-turbo"][0] == "图像" and zh["sd-turbo"][7] == "未下载" and zh["sd-turbo"][4] == "⚠ 否"
    assert zh["my-own"][3] == "见模型自带的许可证"
    qwen = entry_named(ctx, "qwen2.5-0.5b-instruct-gguf")
    details = details_text(qwen, "zh")
    assert qwen.spec.description_zh and qwen.spec.description_zh in details
    assert "models/text/qwen2.5-0.5b-instruct-q4_k_m.gguf" in details
    assert str(models_dir) not in details


def test_models_tab_download_offline_says_no_connection(ctx):
    from aigc_ui.models_tab import cancel_download, download_selected

    status, token, table, details, download_button, remove_button = download_selected(
        ctx, "gpt2", "hf_secret", FakeRequest("zh"))
    assert "无法连接模型中心" in status and token == ""  # the token is cleared from the page
    assert not (ctx.config.models_dir / "text" / "gpt2").exists()
    assert cancel_download(ctx, FakeRequest("en")) == "No download is running."


def test_models_tab_download_and_remove(hub, ctx):
    from aigc_ui.models_tab import download_selected, pick_model, remove_selected

    status, *_ = download_selected(ctx, "gpt2", "", FakeRequest("en"))
    assert status.startswith("✓ gpt2 is downloaded")
    details, download_button, remove_button = pick_model(ctx, "gpt2", FakeRequest("en"))
    assert "downloaded ✓" in details
    assert download_button.interactive is False and remove_button.interactive is True
    status, *_ = remove_selected(ctx, "gpt2", FakeRequest("zh"))
    assert status == "已移除 gpt2。"


@pytest.mark.browser
def test_models_tab_fits_1280_pixels_and_shows_no_paths(studio):
    """Every column readable at 1280 px: nothing scrolls sideways or is cut off, in either language."""
    import shutil

    from tests.test_browser import ARGS, CHROMIUM

    assert shutil.which(CHROMIUM), "Debian's chromium is required: apt-get install chromium"
    from playwright.sync_api import sync_playwright

    _, url, config = studio
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            for lang, tab in (("en", "Models"), ("zh", "模型")):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{url}?lang={lang}", wait_until="load")
                page.get_by_role("tab", name=tab).click()
                page.locator("#models-catalog").get_by_text("sd-turbo", exact=True).first.wait_for(timeout=60000)
                # Readable = nothing scrolls sideways, and no word has to be broken in the middle to fit
                # its column (lines may break at spaces, hyphens, commas, or between Chinese characters).
                check = r"""() => {
                    const wrap = document.querySelector('#models-catalog [role=grid]');
                    const pen = document.createElement('canvas').getContext('2d');
                    const cells = [...document.querySelectorAll(
                        '#models-catalog [role=gridcell], #models-catalog [role=columnheader], #models-catalog th')];
                    if (cells.length < 20) return {sideways: 0, cut: ['only ' + cells.length + ' cells found']};
                    const broken = cells.filter(c => c.innerText.trim()).filter(c => {
                        const style = getComputedStyle(c);
                        pen.font = style.font;
                        const room = c.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
                        const words = c.innerText.replace(/([\u3000-\u9fff\uff00-\uffef])/g, ' $1 ')
                                                  .split(/\s+|(?<=[-,;\/])/);
                        return Math.max(...words.map(w => pen.measureText(w).width)) > room + 1;
                    });
                    return {sideways: wrap.scrollWidth - wrap.clientWidth, cut: broken.map(c => c.innerText)};
                }"""
                clipped = {"sideways": 0, "cut": []}
                viewport = page.locator("#models-catalog .virtual-table-viewport")
                for _ in range(30):  # the table draws only the rows in view: scroll through them all
                    seen = page.evaluate(check)
                    clipped = {"sideways": max(clipped["sideways"], seen["sideways"]), "cut": clipped["cut"] + seen["cut"]}
                    at_end = viewport.evaluate("v => v.scrollTop + v.clientHeight >= v.scrollHeight - 2")
                    if at_end:
                        break
                    viewport.evaluate("v => { v.scrollTop += v.clientHeight * 0.8; }")
                    page.wait_for_timeout(150)
                assert at_end and page.locator("#models-catalog").get_by_text("musetalk", exact=True).first.is_visible()
                assert clipped["sideways"] <= 1 and clipped["cut"] == [], (lang, clipped)
                text = page.locator("[role=tabpanel]:visible").first.inner_text()
                assert str(config.models_dir) not in text and str(ROOT) not in text
                page.close()
        finally:
            browser.close()
