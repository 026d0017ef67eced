"""The studio as a whole: starts without loading models, serves only what it should, talks to clients."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY_LIBRARIES = ("torch", "diffusers", "transformers", "llama_cpp", "piper", "mediapipe", "cv2")


def test_building_the_app_loads_no_model_library():
    """Start-up stays fast and small: no heavy library is imported until a tab needs it."""
    code = ("import sys; from aigc_ui.app import build_app; from pipelines.core.settings import AppConfig; "
            "import tempfile; d=tempfile.mkdtemp(); "
            "build_app(AppConfig(models_dir=d+'/m', outputs_dir=d+'/o')); "
            f"print([m for m in {HEAVY_LIBRARIES!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_page_serves_with_every_tab(studio):
    demo, url, _ = studio
    assert get(url) == 200
    labels = {getattr(b, "id", None) for b in demo.blocks.values()}
    for tab in ("text", "face", "image", "voice", "twin", "chat", "batch", "provenance", "models"):
        assert tab in labels


def test_a_new_studio_has_no_model_loaded(app_config):
    from aigc_ui.app import build_app

    demo = build_app(app_config)
    assert demo.studio_context.cache.loaded() == []


def test_api_names_of_every_tab(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name in ("/loaded_models", "/unload_model", "/generate_text", "/synthesize_speech", "/generate_image",
                 "/generate_faces", "/create_twin_video"):
        assert name in api, f"{name} missing from the API"


def test_loaded_models_endpoint_reports_the_cache(studio, client):
    demo = studio[0]
    cache = demo.studio_context.cache
    cache.clear()  # other tests share this studio and may have loaded models
    import numpy as np

    class Weights:
        array = np.zeros(3 * 2**20, dtype=np.uint8)
        nbytes = 3 * 2**20

    cache.get("test:weights", Weights, label="Test weights", device="cpu")
    try:
        budget_text, table, _which, catalog = client.predict(api_name="/loaded_models")
        assert [row[:3] for row in table["data"]] == [["Test weights", "test:weights", "cpu"]]
        assert any(row[1] == "smollm2-135m-instruct" for row in catalog["data"])
        client.predict("test:weights", api_name="/unload_model")
        assert cache.loaded() == []
    finally:
        cache.clear()


def test_files_outside_outputs_and_assets_cannot_be_fetched(studio, tmp_path):
    from pipelines.core import owners

    demo, url, config = studio
    secret = config.models_dir / "secret.safetensors"
    secret.write_bytes(b"weights")
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    key = owners.new_key()  # a person's outputs: served to that person only
    folder = owners.owner_dir(config.outputs_dir, owners.owner_id(demo.studio_context.sessions.secret, "k", key))
    folder.mkdir(parents=True, exist_ok=True)
    produced = folder / "hello.txt"
    produced.write_text("an output")
    unowned = config.outputs_dir / "hello.txt"  # under outputs/ but nobody's: never served directly
    unowned.write_text("an output")
    base = url + "gradio_api/file="
    assert get_with(base + str(produced), {"X-Profile-Key": key}) == 200
    assert get(base + str(produced)) == 403
    assert get(base + str(ROOT / "assets" / "studio.css")) == 200
    for path in (secret, outside, unowned, config.outputs_dir / owners.SECRET_FILE, Path("/etc/passwd"),
                 ROOT / "app.py"):
        assert get(base + str(path)) in (403, 404), path


def get_with(url: str, headers: dict) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_uploads_over_the_limit_are_refused(studio):
    _, url, config = studio
    import requests

    too_big = b"\0" * ((config.max_upload_mb + 1) * 2**20)
    small = requests.post(url + "gradio_api/upload", files={"files": ("ok.bin", b"\0" * 1000)}, timeout=30)
    big = requests.post(url + "gradio_api/upload", files={"files": ("big.bin", too_big)}, timeout=30)
    assert small.status_code == 200
    assert big.status_code == 413


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_ui_string_exists_in_both_languages(lang):
    import aigc_ui.app  # noqa: F401 - registers every tab's strings
    from aigc_ui.i18n import all_strings

    en, zh = all_strings()
    table = en if lang == "en" else zh
    assert set(en) == set(zh)
    assert all(value.strip() for value in table.values())
    if lang == "zh":
        assert zh["tab.twin"] != en["tab.twin"]


def test_server_messages_follow_the_page_language():
    from aigc_ui.common import language_of

    class Request:
        def __init__(self, headers):
            self.headers = headers

    assert language_of(Request({"cookie": "x=1; aigc-lang=zh", "accept-language": "en-US"})) == "zh"
    assert language_of(Request({"accept-language": "zh-CN,zh;q=0.9"})) == "zh"
    assert language_of(Request({"accept-language": "fr-FR"})) == "en"
    assert language_of(Request({}), default="zh") == "zh"
    assert language_of(None) == "en"


def test_progress_texts_read_in_the_users_language():
    from aigc_ui.i18n import progress_text

    assert progress_text("frame 20/75", "zh") == "第 20/75 帧"
    assert progress_text("frame 20/75", "en") == "Frame 20 of 75"
    assert progress_text("image 1/2 · step 3/25", "zh") == "图片 1/2，第 3/25 步"
    assert progress_text("loading model", "zh") == "加载模型"
    assert progress_text("something new", "zh") == "something new"  # unknown texts are shown as they are
