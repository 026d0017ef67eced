"""D-ID: the client and the "did" engine against a fake D-ID server built from D-ID's documented API, the key
kept secret and stored safely, and the studio's own D-ID-compatible API under /did used as D-ID's docs show
(``requests`` with Basic auth). Everything runs on 127.0.0.1; every wait is bounded."""
from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from pipelines.core.errors import Stopped, UserError
from pipelines.core.jobs import StopToken
from pipelines.core.settings import ASSETS_DIR, REPO_ROOT
from pipelines.twin import did_client, did_keys
from pipelines.twin import pipeline as twin
from tests.conftest import free_port
from tests.fake_did import MAGENTA, MARK, Account, FakeDID

PHOTO = ASSETS_DIR / "astronaut.jpg"
GOOD = "Z29vZEBleGFtcGxlLmNvbQ:sEcReTpAsSwOrD42"  # D-ID Studio's form: base64(email):password
POOR, BUSY, DOWN = "cG9vcg:nocredits1", "YnVzeQ:ratelimited1", "ZG93bg:serverdown1"
SCRIPT = "Hello! This video was rendered by a cloud service from one photo."


def secrets_of(key: str) -> list[str]:
    return [key, base64.b64encode(key.encode()).decode(), key.split(":")[1]]


def wait_until(condition, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def fake():
    server = FakeDID({GOOD: Account(), POOR: Account(credits=0), BUSY: Account(behaviour="rate_limited"),
                      DOWN: Account(behaviour="down")})
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def quick_and_isolated(monkeypatch, tmp_path):
    """Short polls and retries; D-ID settings only from the test; config directory in tmp."""
    monkeypatch.setattr(did_client, "POLL_START", 0.05)
    monkeypatch.setattr(did_client, "POLL_MAX", 0.2)
    monkeypatch.setattr(did_client, "RETRY_DELAY", 0.01)
    monkeypatch.delenv(did_client.API_KEY_ENV, raising=False)
    monkeypatch.delenv(did_client.API_URL_ENV, raising=False)
    monkeypatch.setenv(did_keys.CONFIG_DIR_ENV, str(tmp_path / "config"))


@pytest.fixture(scope="module")
def wide_photo(tmp_path_factory) -> Path:
    """The astronaut on a 768 x 512 canvas: "the photo's own size" differs from the 512 px face crop."""
    from PIL import Image

    canvas = Image.new("RGB", (768, 512), (90, 90, 110))
    canvas.paste(Image.open(PHOTO), (128, 0))
    path = tmp_path_factory.mktemp("wide") / "wide.jpg"
    canvas.save(path, quality=95)
    return path


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    from pipelines.core.cache import ModelCache
    from pipelines.core.catalog import Catalog
    from pipelines.core.runtime import Runtime

    root = tmp_path_factory.mktemp("did")
    return Runtime(cache=ModelCache(budget_bytes=2**31), catalog=Catalog(root / "models"), outputs_dir=root / "outputs")


# ---------------------------------------------------------------- the key


def test_key_forms_header_and_masking():
    key = did_client.ApiKey(GOOD)
    assert key.form == "user:password" and key.authorization() == f"Basic {GOOD}"  # as D-ID documents it
    token = base64.b64encode(GOOD.encode()).decode()
    assert did_client.ApiKey(token).form == "token" and did_client.ApiKey(token).authorization() == f"Basic {token}"
    assert did_client.ApiKey(f"  Basic {GOOD} ").authorization() == f"Basic {GOOD}"  # pasted with the scheme
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert all(s not in text for s in secrets_of(GOOD))
    assert "***" in key.redact(f"echo {GOOD} and {secrets_of(GOOD)[1]}") and GOOD not in key.redact(GOOD)
    for bad in ("", "   ", "has space:x", "ключ:значение"):
        with pytest.raises(UserError) as err:
            did_client.ApiKey(bad)
        assert bad.strip() == "" or bad not in str(err.value)


def test_check_key_reports_credits_with_either_key_form(fake):
    for key in (GOOD, base64.b64encode(GOOD.encode()).decode()):
        credits = did_client.DIDClient(key, fake.url).check_key()
        assert credits == did_client.Credits(100.0, 100.0)
    assert fake.requests[-1].path == "/credits"


@pytest.mark.parametrize("key, inject, status, words_en, words_zh", [
    ("wrong:key-123456", None, 401, "refused the API key", "拒绝了该 API 密钥"),
    (POOR, None, 402, "no credits left", "没有剩余额度"),
    (GOOD, 402, 402, "no credits left", "没有剩余额度"),
    (BUSY, None, 429, "rate limiting", "限制"),
    (DOWN, None, 500, "down or failing", "暂时不可用"),
    (GOOD, 503, 503, "down or failing", "暂时不可用"),
])
def test_check_key_maps_every_error_to_its_message(fake, key, inject, status, words_en, words_zh):
    if inject:
        fake.fail_next("GET /credits", inject, times=10)
    try:
        with pytest.raises(did_client.DIDError) as err:
            did_client.DIDClient(key, fake.url, retries=1).check_key()
    finally:
        fake._failures.clear()
    assert err.value.status == status
    assert words_en in err.value.text("en") and words_zh in err.value.text("zh")
    assert all(s not in err.value.text("en") + err.value.text("zh") for s in secrets_of(key))


def test_transient_errors_are_retried_a_bounded_number_of_times(fake):
    client = did_client.DIDClient(GOOD, fake.url, retries=2)
    fake.fail_next("GET /credits", 503, times=2)
    assert client.check_key().remaining == 100.0  # two 503s, then an answer
    before = len(fake.requests)
    fake.fail_next("GET /credits", 429, times=5)
    with pytest.raises(did_client.DIDError):
        client.check_key()
    assert len(fake.requests) - before == 3  # 1 + 2 retries, not more
    fake._failures.clear()


def test_no_server_is_a_clear_message():
    with pytest.raises(did_client.DIDError) as err:
        did_client.DIDClient(GOOD, f"http://127.0.0.1:{free_port()}", retries=0).check_key()
    assert "Could not reach D-ID" in err.value.text("en") and "无法连接" in err.value.text("zh")


def test_a_server_echoing_the_key_does_not_leak_it(fake):
    client = did_client.DIDClient(GOOD, fake.url)
    image_url = client.upload_image((PHOTO).read_bytes(), "a.jpg", "image/jpeg")
    script = {"type": "text", "input": "ECHO this", "provider": {"type": "microsoft", "voice_id": "en-US-JennyNeural"}}
    with pytest.raises(did_client.DIDError) as err:
        client.create_talk(image_url, script)
    message = err.value.text("en") + err.value.text("zh") + repr(err.value)
    assert "cannot parse request from" in message and "***" in message
    assert all(s not in message for s in secrets_of(GOOD))


# ---------------------------------------------------------------- the engine


def _magenta_corner(path: Path) -> bool:
    """Does the video's first frame carry the fake D-ID's mark (so its frames came from D-ID)?"""
    from pipelines.core.media import iter_video_frames, probe_video

    info = probe_video(path)
    frame = next(iter_video_frames(path, info.width, info.height, info.fps, 1))
    corner = frame[2:MARK // 2, 2:MARK // 2].reshape(-1, 3).mean(axis=0)
    return bool(np.abs(corner - np.array(MAGENTA)).max() < 60)


def test_engine_renders_through_did_with_a_did_voice(fake, runtime, tmp_path, monkeypatch, caplog):
    from pipelines.core.media import probe_video

    monkeypatch.setenv(did_client.API_URL_ENV, fake.url)
    caplog.set_level(logging.DEBUG)
    seen_before = len(fake.requests)
    progress: list[str] = []
    with did_keys.use_key(did_client.ApiKey(GOOD)):
        result = twin.create_twin_video(PHOTO, script=SCRIPT, engine="did", subtitles=True, seed=3, runtime=runtime,
                                        out=tmp_path / "did.mp4", on_progress=lambda f, text: progress.append(text))
    info = probe_video(result.path)
    assert (info.video_codec, info.audio_codec, info.pixel_format) == ("h264", "aac", "yuv420p")
    assert (info.width, info.height) == (512, 512) and info.frames == result.frames
    expected = max(1.0, 0.06 * len(SCRIPT))  # the fake speaks this long: the audio came from D-ID's video
    assert abs(result.seconds - expected) < 0.15 and abs(info.audio_seconds - result.seconds) < 0.15
    assert _magenta_corner(result.path)  # the frames are D-ID's
    params = json.loads(info.tags["comment"])
    assert params["engine"] == "did" and params["voice"] == "D-ID en-US-JennyNeural" and params["subtitles"]
    assert "engine: did" in info.tags["description"]
    calls = [(s.method, s.path) for s in fake.requests[seen_before:]]
    assert calls[:2] == [("POST", "/images"), ("POST", "/talks")] and ("GET", "/talks/" + calls[2][1][7:]) in calls
    assert all(s.authorization is None for s in fake.downloads)  # the pre-signed result link gets no key
    assert any("D-ID: started" in p for p in progress) and any("D-ID: done" in p for p in progress)
    _assert_no_secret(GOOD, caplog.text, result.path, result.params_path)


def test_engine_renders_our_own_audio(fake, runtime, wide_photo, tmp_path, monkeypatch, caplog):
    import soundfile as sf

    from pipelines.core.media import probe_video

    monkeypatch.setenv(did_client.API_URL_ENV, fake.url)
    caplog.set_level(logging.DEBUG)
    t = np.arange(int(2.0 * 16000)) / 16000
    sf.write(str(tmp_path / "voice.wav"), (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32), 16000)
    seen_before = len(fake.requests)
    with did_keys.use_key(did_client.ApiKey(GOOD)):
        result = twin.create_twin_video(wide_photo, audio=str(tmp_path / "voice.wav"), engine="did", output_size="photo",
                                        runtime=runtime, out=tmp_path / "audio.mp4")
    info = probe_video(result.path)
    assert abs(result.seconds - 2.0) < 0.05 and info.frames == result.frames == 50
    assert (info.width, info.height) == (result.width, result.height) == (768, 512)  # the photo's own size
    assert _magenta_corner(result.path)
    talk_post = [s for s in fake.requests[seen_before:] if s.path == "/audios"]
    assert talk_post, "the recording was uploaded with POST /audios"
    talk = next(t for t in fake.talks.values() if t.script.get("type") == "audio")
    assert talk.script["audio_url"].startswith("s3://")
    _assert_no_secret(GOOD, caplog.text, result.path, result.params_path)


@pytest.mark.parametrize("word, message", [("REJECT", "rejected this talk"), ("FACELESS", "found no face")])
def test_rejected_and_failed_talks_are_explained(fake, runtime, tmp_path, monkeypatch, word, message):
    monkeypatch.setenv(did_client.API_URL_ENV, fake.url)
    with did_keys.use_key(did_client.ApiKey(GOOD)), pytest.raises(did_client.DIDError) as err:
        twin.create_twin_video(PHOTO, script=f"{word} this one please", engine="did", runtime=runtime,
                               out=tmp_path / "x.mp4")
    assert message in err.value.text("en") and err.value.text("zh") != err.value.text("en")
    assert not list(tmp_path.iterdir())  # nothing half written


def test_no_credits_when_creating_the_talk(fake, runtime, tmp_path, monkeypatch):
    monkeypatch.setenv(did_client.API_URL_ENV, fake.url)
    with did_keys.use_key(did_client.ApiKey(POOR)), pytest.raises(did_client.DIDError) as err:
        twin.create_twin_video(PHOTO, script=SCRIPT, engine="did", runtime=runtime, out=tmp_path / "x.mp4")
    assert err.value.status == 402 and not list(tmp_path.iterdir())


def test_stop_deletes_the_talk(fake, runtime, tmp_path, monkeypatch):
    monkeypatch.setenv(did_client.API_URL_ENV, fake.url)
    token = StopToken()
    known = set(fake.talks) | set(fake.deleted)

    def stop_once_started(fraction, text):
        if "started" in text:
            token.stop()

    with did_keys.use_key(did_client.ApiKey(GOOD)), pytest.raises(Stopped):
        twin.create_twin_video(PHOTO, script=SCRIPT, engine="did", runtime=runtime, out=tmp_path / "x.mp4",
                               stop=token, on_progress=stop_once_started)
    (stopped,) = (set(fake.talks) | set(fake.deleted)) - known
    # D-ID answers 409 while it renders; the engine deletes the talk as soon as D-ID allows it
    assert wait_until(lambda: stopped in fake.deleted)
    assert stopped not in fake.talks and not list(tmp_path.iterdir())


def test_without_a_key_the_engine_says_how_to_get_one(runtime, tmp_path):
    with pytest.raises(UserError) as err:
        twin.create_twin_video(PHOTO, script=SCRIPT, engine="did", runtime=runtime, out=tmp_path / "x.mp4")
    assert "D-ID API key" in err.value.text("en") and "D-ID API 密钥" in err.value.text("zh")


def test_cli_renders_with_engine_did(fake, tmp_path):
    env = {**os.environ, did_client.API_KEY_ENV: GOOD, did_client.API_URL_ENV: fake.url,
           "AIGC_OUTPUTS_DIR": str(tmp_path / "outputs"), "AIGC_MODELS_DIR": str(tmp_path / "models")}
    out = tmp_path / "cli.mp4"
    proc = subprocess.run([sys.executable, "-m", "pipelines.digital_twin", "--photo", str(PHOTO), "--text", SCRIPT,
                           "--engine", "did", "--out", str(out)], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.is_file() and _magenta_corner(out)
    _assert_no_secret(GOOD, proc.stdout + proc.stderr, out, out.with_name(out.name + ".json"))


def _assert_no_secret(key: str, text: str, *files: Path) -> None:
    for secret in secrets_of(key):
        assert secret not in text, "the key appeared in the logs"
        for path in files:
            assert secret.encode() not in Path(path).read_bytes(), f"the key appeared in {Path(path).name}"


# ---------------------------------------------------------------- storing the key


def test_remembered_key_is_private_to_its_owner(tmp_path):
    key = did_client.ApiKey(GOOD)
    path = did_keys.remember_key(key)
    assert path.parent.parent == tmp_path / "config" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert did_keys.remembered_key() == key and did_keys.key_configured()
    assert did_keys.remembered_key("someone-else") is None
    os.chmod(path, 0o644)  # someone loosened it: not trusted any more
    assert did_keys.remembered_key() is None
    assert did_keys.forget_key() and not did_keys.key_configured()


def test_session_keys_and_render_keys_stay_apart():
    sessions = did_keys.SessionKeys()
    sessions.set("a", did_client.ApiKey(GOOD))
    assert sessions.get("b") is None and sessions.get("a") == did_client.ApiKey(GOOD)
    seen = {}

    def render(name, key):
        with did_keys.use_key(key):
            time.sleep(0.05)
            try:
                seen[name] = did_keys.current_key()
            except UserError:
                seen[name] = None

    threads = [threading.Thread(target=render, args=("a", did_client.ApiKey(GOOD))),
               threading.Thread(target=render, args=("b", None))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": did_client.ApiKey(GOOD), "b": None}  # "b" has no key: nobody else's is used


def test_catalog_lists_did_and_says_it_needs_a_key(monkeypatch, tmp_path):
    from pipelines.core.catalog import Catalog, availability

    spec = Catalog(tmp_path / "models").get("twin", "did")
    assert spec.source_kind == "cloud" and spec.backend == "did"
    state = availability(spec)
    assert not state.ok and state.reason == "needs a D-ID API key" and state.reason_zh == "需要 D-ID API 密钥"
    monkeypatch.setenv(did_client.API_KEY_ENV, GOOD)
    assert availability(spec).ok


# ---------------------------------------------------------------- the studio's D-ID-compatible API


@pytest.fixture(scope="module")
def studio_api(tmp_path_factory):
    """The whole studio launched in-process (no --auth: open to this computer); yields (base url, outputs dir)."""
    from aigc_ui.app import build_app, launch_kwargs, queue_kwargs
    from pipelines.core.settings import AppConfig

    root = tmp_path_factory.mktemp("studio-did")
    config = AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", port=free_port())
    demo = build_app(config)
    demo.queue(**queue_kwargs(config)).launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(config))
    try:
        yield f"http://127.0.0.1:{config.port}/did", config.outputs_dir
    finally:
        demo.close()


ALICE = {"Authorization": "Basic alice:alice-password"}  # D-ID's documented header form
BOB = ("bob", "bob-password")  # requests' auth=(user, password): the standard base64 form


def poll(base: str, talk_id: str, headers=None, auth=None, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        talk = requests.get(f"{base}/talks/{talk_id}", headers=headers, auth=auth, timeout=10).json()
        if talk["status"] in ("done", "error", "rejected"):
            return talk
        time.sleep(0.5)
    raise AssertionError(f"talk {talk_id} did not finish in {seconds} s")


def test_api_create_poll_download_list_delete(studio_api, wide_photo, tmp_path):
    from pipelines.core.media import probe_video

    base, _ = studio_api
    with open(wide_photo, "rb") as f:
        image = requests.post(f"{base}/images", headers=ALICE, files={"image": ("me.jpg", f, "image/jpeg")}).json()
    assert image["id"].startswith("img_") and image["url"].startswith(base + "/images/")
    created = requests.post(f"{base}/talks", headers=ALICE, json={
        "source_url": image["url"],
        "script": {"type": "text", "input": "Hello from the studio.",
                   "provider": {"type": "microsoft", "voice_id": "en-US-JennyNeural"}},
        "config": {"result_format": "mp4"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {"id", "object", "created_by", "created_at", "status"}
    assert body["id"].startswith("tlk_") and body["object"] == "talk" and body["status"] == "created"
    first = requests.get(f"{base}/talks/{body['id']}", headers=ALICE).json()
    assert first["status"] in ("created", "started", "done")
    talk = poll(base, body["id"], headers=ALICE)
    assert talk["status"] == "done", talk
    assert talk["created_at"].endswith("Z") and talk["duration"] > 0.5
    video = requests.get(talk["result_url"])  # a pre-signed link: no credentials needed
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (tmp_path / "talk.mp4").write_bytes(video.content)
    info = probe_video(tmp_path / "talk.mp4")
    assert info.video_codec == "h264" and abs(info.audio_seconds - talk["duration"]) < 0.15
    assert requests.get(talk["result_url"].replace("token=", "token=x")).status_code == 404

    # a second talk, from an uploaded recording, whole photo (stitch)
    wav = tmp_path / "voice.wav"
    import soundfile as sf
    sf.write(str(wav), (0.3 * np.sin(np.arange(24000) / 16000 * 2 * np.pi * 200)).astype(np.float32), 16000)
    with open(wav, "rb") as f:
        audio = requests.post(f"{base}/audios", headers=ALICE, files={"audio": ("v.wav", f, "audio/wav")}).json()
    assert audio["id"].startswith("aud_") and abs(audio["duration"] - 1.5) < 0.05
    second = requests.post(f"{base}/talks", headers=ALICE, json={
        "source_url": image["id"], "script": {"type": "audio", "audio_url": audio["url"]},
        "config": {"stitch": True}}).json()
    talk2 = poll(base, second["id"], headers=ALICE)
    assert talk2["status"] == "done" and abs(talk2["duration"] - 1.5) < 0.05
    assert talk2["metadata"]["resolution"] == [768, 512]  # stitch: the whole photo
    assert talk["metadata"]["resolution"] == [512, 512]  # no stitch: D-ID's crop around the face

    listed = requests.get(f"{base}/talks", headers=ALICE, params={"limit": 1}).json()
    assert [t["id"] for t in listed["talks"]] == [second["id"]] and listed["token"]
    rest = requests.get(f"{base}/talks", headers=ALICE, params={"limit": 1, "token": listed["token"]}).json()
    assert [t["id"] for t in rest["talks"]] == [body["id"]] and "token" not in rest

    assert requests.delete(f"{base}/talks/{body['id']}", headers=ALICE).status_code == 200
    gone = requests.get(f"{base}/talks/{body['id']}", headers=ALICE)
    assert gone.status_code == 404 and gone.json()["kind"] == "NotFoundError"
    assert requests.get(talk["result_url"]).status_code == 404


def test_api_callers_see_only_their_own_talks(studio_api):
    base, _ = studio_api
    with open(PHOTO, "rb") as f:
        image = requests.post(f"{base}/images", headers=ALICE, files={"image": ("me.jpg", f, "image/jpeg")}).json()
    mine = requests.get(f"{base}/talks", headers=ALICE).json()["talks"]
    theirs = requests.get(f"{base}/talks", auth=BOB).json()["talks"]
    assert not {t["id"] for t in mine} & {t["id"] for t in theirs}
    for talk in mine:
        assert requests.get(f"{base}/talks/{talk['id']}", auth=BOB).status_code == 404
        assert requests.delete(f"{base}/talks/{talk['id']}", auth=BOB).status_code == 404
    borrowed = requests.post(f"{base}/talks", auth=BOB, json={
        "source_url": image["id"], "script": {"type": "text", "input": "Not my photo."}})
    assert borrowed.status_code == 400 and "not found" in borrowed.json()["description"]


def _gray_png(size=(256, 256)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def _huge_dimensions_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (7000, 7000)).save(buffer, format="PNG")  # 49 megapixels in a few KB
    return buffer.getvalue()


TEXT = {"type": "text", "input": "Hello there, friend."}
BAD_TALKS = [
    ("malformed JSON", b"{not json", 400, "BadRequestError", "not valid JSON"),
    ("not an object", b"[1, 2]", 400, "BadRequestError", "JSON object"),
    ("unknown field", {"source_url": "x", "script": TEXT, "colour": "red"}, 400, "BadRequestError", "colour: unknown field"),
    ("no script", {"source_url": "x"}, 400, "BadRequestError", "script"),
    ("other provider", {"source_url": "x", "script": {**TEXT, "provider": {"type": "amazon", "voice_id": "Amy"}}},
     400, "BadRequestError", "microsoft"),
    ("unknown voice", {"source_url": "x", "script": {**TEXT, "provider": {"type": "microsoft", "voice_id": "xx-Nobody"}}},
     400, "BadRequestError", "unknown voice_id"),
    ("script too long", {"source_url": "x", "script": {"type": "text", "input": "word " * 2000}}, 400, "BadRequestError",
     "characters long"),
    ("script too short", {"source_url": "x", "script": {"type": "text", "input": "hi"}}, 400, "BadRequestError",
     "characters long"),
    ("ssml", {"source_url": "x", "script": {**TEXT, "ssml": True}}, 400, "BadRequestError", "ssml"),
    ("webhook", {"source_url": "x", "script": TEXT, "webhook": "https://example.com/hook"}, 400, "BadRequestError", "webhook"),
    ("mov", {"source_url": "x", "script": TEXT, "config": {"result_format": "mov"}}, 400, "BadRequestError", "mp4"),
    ("unknown engine", {"source_url": "x", "script": TEXT, "engine": "nope"}, 400, "BadRequestError", "unknown engine"),
    ("file path", {"source_url": "/etc/passwd", "script": TEXT}, 400, "BadRequestError", "file paths"),
    ("file URL", {"source_url": "file:///etc/passwd", "script": TEXT}, 400, "BadRequestError", "file paths"),
    ("loopback port", {"source_url": "http://127.0.0.1:22/x.png", "script": TEXT}, 400, "BadRequestError", "this studio"),
    ("ipv6 loopback", {"source_url": "http://[::1]:8080/x.png", "script": TEXT}, 400, "BadRequestError", "this studio"),
    ("private network", {"source_url": "http://10.1.2.3/x.png", "script": TEXT}, 400, "BadRequestError", "non-public"),
    ("link-local metadata", {"source_url": "http://169.254.169.254/latest/meta-data", "script": TEXT}, 400,
     "BadRequestError", "non-public"),
    ("bad data URL", {"source_url": "data:image/png;base64,@@@", "script": TEXT}, 400, "BadRequestError", "base64"),
    ("data URL not an image", {"source_url": "data:image/png;base64," + base64.b64encode(b"hello").decode(),
                               "script": TEXT}, 400, "BadRequestError", "invalid image"),
    ("audio not uploaded", {"source_url": "x", "script": {"type": "audio", "audio_url": "aud_doesnotexist1"}}, 400,
     "BadRequestError", "audio_url"),
]


def _files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


@pytest.mark.parametrize("name, payload, status, kind, words", BAD_TALKS, ids=[b[0] for b in BAD_TALKS])
def test_api_bad_talks_get_did_shaped_errors(studio_api, name, payload, status, kind, words):
    base, outputs = studio_api
    before = _files_under(outputs / "did")
    if isinstance(payload, bytes):
        answer = requests.post(f"{base}/talks", headers={**ALICE, "Content-Type": "application/json"}, data=payload)
    else:
        answer = requests.post(f"{base}/talks", headers=ALICE, json=payload)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["kind"] == kind and words in body["description"], body
    assert _files_under(outputs / "did") == before  # nothing half written
    assert requests.get(f"{base}/credits", headers=ALICE).status_code == 200  # the app stays up


BAD_UPLOADS = [
    ("images", "image", ("big.png", b"\x89PNG" + b"0" * (10 * 2**20 + 10), "image/png"), 400, "InvalidFileSizeError"),
    ("images", "image", ("wide.png", _huge_dimensions_png(), "image/png"), 400, "InvalidImageResolutionError"),
    ("images", "image", ("notes.txt", b"hello", "text/plain"), 415, "UnsupportedMimeTypeError"),
    ("images", "image", ("fake.png", b"not an image at all", "image/png"), 400, "BadRequestError"),
    ("images", "photo", ("me.png", _gray_png(), "image/png"), 400, "BadRequestError"),
    ("audios", "audio", ("noise.wav", b"RIFF....garbage", "audio/wav"), 400, "BadRequestError"),
    ("audios", "audio", ("pic.png", _gray_png(), "image/png"), 415, "UnsupportedMimeTypeError"),
]


@pytest.mark.parametrize("route, field_name, upload, status, kind", BAD_UPLOADS,
                         ids=[f"{b[0]}-{b[2][0]}" for b in BAD_UPLOADS])
def test_api_bad_uploads_get_did_shaped_errors(studio_api, route, field_name, upload, status, kind):
    base, outputs = studio_api
    before = _files_under(outputs / "did")
    answer = requests.post(f"{base}/{route}", headers=ALICE, files={field_name: upload})
    assert answer.status_code == status, answer.text
    assert answer.json()["kind"] == kind and answer.json()["description"]
    assert _files_under(outputs / "did") == before
    assert requests.get(f"{base}/credits", headers=ALICE).status_code == 200


def test_api_other_errors(studio_api):
    base, _ = studio_api
    missing = requests.get(f"{base}/talks/tlk_doesnotexist1", headers=ALICE)
    assert missing.status_code == 404 and missing.json() == {"kind": "NotFoundError",
                                                             "description": "talk tlk_doesnotexist1 not found"}
    for params in ({"limit": 0}, {"limit": "many"}, {"token": "!!"}):
        answer = requests.get(f"{base}/talks", headers=ALICE, params=params)
        assert answer.status_code == 400 and answer.json()["kind"] == "BadRequestError"
    assert requests.get(f"{base}/nowhere").json()["kind"] == "NotFoundError"


def test_api_photo_without_a_face_is_a_face_error(studio_api):
    base, _ = studio_api
    image = requests.post(f"{base}/images", headers=ALICE, files={"image": ("gray.png", _gray_png(), "image/png")}).json()
    created = requests.post(f"{base}/talks", headers=ALICE, json={"source_url": image["url"], "script": TEXT}).json()
    talk = poll(base, created["id"], headers=ALICE, seconds=60)
    assert talk["status"] == "error" and talk["error"]["kind"] == "FaceError" and "No face" in talk["error"]["description"]
    assert "result_url" not in talk


def test_api_refuses_other_computers_without_auth(tmp_path):
    """Without --auth the API answers loopback callers only; --host 0.0.0.0 opens it on purpose."""
    from starlette.requests import Request

    from api.did import ApiError, DidApi
    from pipelines.core.settings import AppConfig

    def request_from(host: str) -> Request:
        return Request({"type": "http", "method": "GET", "path": "/talks", "headers": [], "client": (host, 5000),
                        "query_string": b""})

    closed = DidApi(AppConfig(models_dir=tmp_path / "m", outputs_dir=tmp_path / "o"))
    assert closed.caller(request_from("127.0.0.1")).owner == "anonymous"
    with pytest.raises(ApiError) as err:
        closed.caller(request_from("203.0.113.9"))
    assert err.value.status == 403 and err.value.kind == "PermissionError"
    opened = DidApi(AppConfig(host="0.0.0.0", models_dir=tmp_path / "m", outputs_dir=tmp_path / "o"))
    assert opened.caller(request_from("203.0.113.9")).owner == "anonymous"


def test_api_with_auth_uses_the_studio_credentials(tmp_path):
    from aigc_ui.app import build_app, launch_kwargs, queue_kwargs
    from pipelines.core.settings import AppConfig

    config = AppConfig(models_dir=tmp_path / "models", outputs_dir=tmp_path / "outputs", port=free_port(),
                       auth=("studio", "s3cret-pass"))
    demo = build_app(config)
    demo.queue(**queue_kwargs(config)).launch(prevent_thread_lock=True, quiet=True, **launch_kwargs(config))
    try:
        base = f"http://127.0.0.1:{config.port}/did"
        for headers, auth in (({}, None), ({"Authorization": "Basic studio:wrong"}, None), ({}, ("studio", "nope"))):
            answer = requests.get(f"{base}/talks", headers=headers, auth=auth)
            assert answer.status_code == 401 and answer.json() == {"kind": "AuthorizationError",
                                                                   "description": "user unauthenticated"}
        assert requests.get(f"{base}/talks", headers={"Authorization": "Basic studio:s3cret-pass"}).status_code == 200
        assert requests.get(f"{base}/talks", auth=("studio", "s3cret-pass")).status_code == 200
    finally:
        demo.close()


def test_render_queue_is_bounded():
    from api.did import ApiError, RenderWorker

    release = threading.Event()
    worker = RenderWorker(threads=1, max_pending=1)
    worker.submit(release.wait)  # running
    assert wait_until(lambda: worker._queue.empty())
    worker.submit(lambda: None)  # waiting
    with pytest.raises(ApiError) as err:
        worker.submit(lambda: None)
    assert err.value.status == 429
    release.set()


def test_did_engine_renders_through_the_studios_own_api(studio_api, runtime, tmp_path, monkeypatch, caplog):
    """The two halves agree: the D-ID engine, pointed at the studio's D-ID-compatible API, makes a video."""
    from pipelines.core.media import probe_video

    base, _ = studio_api
    monkeypatch.setenv(did_client.API_URL_ENV, base)
    caplog.set_level(logging.DEBUG)
    key = "carol:carol-secret-key"
    with did_keys.use_key(did_client.ApiKey(key)):
        result = twin.create_twin_video(PHOTO, script="Hello from one studio to another.", engine="did",
                                        runtime=runtime, out=tmp_path / "loop.mp4")
    info = probe_video(result.path)
    assert info.frames == result.frames and info.audio_codec == "aac" and result.seconds > 0.5
    assert json.loads(info.tags["comment"])["engine"] == "did"
    carol = requests.get(f"{base}/talks", headers={"Authorization": f"Basic {key}"}).json()["talks"]
    assert len(carol) == 1 and carol[0]["status"] == "done"
    _assert_no_secret(key, caplog.text, result.path, result.params_path)


# ---------------------------------------------------------------- the twin tab's D-ID settings (handlers)


class FakeRequest:
    """What the handlers use of gr.Request: headers (language), session, client address, signed-in user."""

    def __init__(self, lang: str = "en", host: str = "127.0.0.1", username: str | None = None):
        self.headers = {"cookie": f"aigc-lang={lang}", "accept-language": "en-US" if lang == "en" else "zh-CN"}
        self.session_hash = f"session-{host}-{lang}"
        self.client = type("Client", (), {"host": host})()
        self.username = username


LOCAL, LOCAL_ZH, REMOTE = FakeRequest(), FakeRequest("zh"), FakeRequest(host="203.0.113.9")


@pytest.fixture(scope="module")
def ui_ctx(tmp_path_factory):
    import aigc_ui.app  # noqa: F401 - registers every tab's strings
    from aigc_ui.common import StudioContext
    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import AppConfig

    root = tmp_path_factory.mktemp("did-ui")
    config = AppConfig(models_dir=root / "models", outputs_dir=root / "outputs")
    config.ensure_dirs()
    return StudioContext(config=config, runtime=Runtime.from_config(config))


def test_ui_check_key_shows_credits_and_never_echoes_the_key(fake, ui_ctx, monkeypatch, tmp_path):
    from aigc_ui import twin_tab

    monkeypatch.setenv(did_client.API_URL_ENV, fake.url)
    key, box, status = twin_tab.check_did_key(ui_ctx, GOOD, False, None, LOCAL)
    assert key == did_client.ApiKey(GOOD) and box == ""  # kept on the server; the box is emptied
    assert "100 of 100 credits left" in status and "browser session only" in status
    assert not did_keys.key_file().exists()
    _, _, status = twin_tab.check_did_key(ui_ctx, GOOD, True, None, LOCAL)
    assert "remembered on this computer" in status
    assert stat.S_IMODE(did_keys.key_file().stat().st_mode) == 0o600
    _, _, status = twin_tab.check_did_key(ui_ctx, GOOD, True, None, REMOTE)  # another computer, not signed in
    assert "browser session only" in status and not did_keys.key_file("user-x").exists()
    kept, box, status = twin_tab.check_did_key(ui_ctx, "wrong:key-123456", False, None, LOCAL_ZH)
    assert kept is None and box == "" and status.startswith("⚠") and "拒绝了该 API 密钥" in status
    kept, _, status = twin_tab.check_did_key(ui_ctx, POOR, False, key, LOCAL)
    assert kept == key and "no credits left" in status  # the working session key stays
    kept, _, status = twin_tab.check_did_key(ui_ctx, "", False, None, FakeRequest(host="203.0.113.9"))
    assert kept is None and "No D-ID key yet" in status  # the remembered local key is not offered to others
    everything = repr(twin_tab.check_did_key(ui_ctx, GOOD, False, None, LOCAL))
    assert all(s not in everything for s in secrets_of(GOOD))


def test_ui_engine_settings_show_the_did_panel_and_its_consent_text(ui_ctx):
    from aigc_ui import twin_tab

    group, status, consent = twin_tab.engine_settings(ui_ctx, "did", True, None, LOCAL)
    assert group.visible is True and "No D-ID key yet" in status
    assert "D-ID" in consent.label and "leaves this computer" in consent.label and consent.value is False
    group, _, consent = twin_tab.engine_settings(ui_ctx, "did", True, None, LOCAL_ZH)
    assert "离开本机" in consent.label
    group, status, consent = twin_tab.engine_settings(ui_ctx, "classic", True, None, LOCAL)
    assert group.visible is False and status == "" and "D-ID" not in consent.label and consent.value is True
    _, status, _ = twin_tab.engine_settings(ui_ctx, "did", False, did_client.ApiKey(GOOD), LOCAL)
    assert "set for this browser session" in status


def test_ui_create_video_with_did_uses_this_sessions_key_only(fake, ui_ctx, monkeypatch):
    from aigc_ui import twin_tab

    monkeypatch.setenv(did_client.API_URL_ENV, fake.url)
    args = dict(photo=str(PHOTO), script=SCRIPT, voice="auto", recording=None, consent=True, face_index=None,
                size="face", expression=1.0, still=False, subtitles=False, ai_label=True, seed=-1, engine="did")
    video, download, message, history = twin_tab.create_video(ui_ctx, **args, did_key=did_client.ApiKey(GOOD),
                                                              request=LOCAL)
    assert video == download and _magenta_corner(Path(video)) and "voice D-ID en-US-JennyNeural" in message
    did_keys.remember_key(did_client.ApiKey(GOOD))  # remembered for this computer's own user...
    with pytest.raises(gr_error()) as err:  # ...but never used for someone on another computer
        twin_tab.create_video(ui_ctx, **args, did_key=None, request=REMOTE)
    assert "needs a D-ID API key" in str(err.value) or "D-ID API key" in str(err.value)
    video, *_ = twin_tab.create_video(ui_ctx, **args, did_key=None, request=LOCAL)  # the remembered one, here
    assert Path(video).is_file()


def test_ui_forget_key_forgets_session_and_computer(ui_ctx):
    from aigc_ui import twin_tab

    did_keys.remember_key(did_client.ApiKey(GOOD))
    key, box, status = twin_tab.forget_did_key(ui_ctx, LOCAL)
    assert key is None and box == "" and "forgotten" in status and not did_keys.key_file().exists()


def test_the_key_is_not_part_of_the_api_schema(tmp_path):
    from aigc_ui.app import build_app
    from pipelines.core.settings import AppConfig

    demo = build_app(AppConfig(models_dir=tmp_path / "m", outputs_dir=tmp_path / "o"))
    schema = json.dumps(demo.get_api_info(), default=str).lower()
    assert "/create_twin_video" in schema
    assert "did_key" not in schema and "api key" not in schema and "check_did_key" not in schema


def gr_error():
    import gradio as gr

    return gr.Error


# ---------------------------------------------------------------- fetching a source_url
class _Recorder:
    """A tiny HTTP server on loopback that serves the sample photo and notes every request it gets."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        seen = self.seen = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                seen.append((self.path, self.headers.get("Host")))
                body = (ASSETS_DIR / "astronaut.jpg").read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_a_fetch_connects_to_the_address_that_was_checked(monkeypatch):
    import socket

    from api import did

    server = _Recorder()
    try:
        # the checked address is the one connected to, with the URL's name as the Host
        monkeypatch.setattr(did, "_public_address", lambda host, port: "127.0.0.1")
        data = did._fetch(f"http://images.example:{server.port}/face.jpg?size=big", 10 << 20)
        assert data == (ASSETS_DIR / "astronaut.jpg").read_bytes()
        assert server.seen == [("/face.jpg?size=big", f"images.example:{server.port}")]
        monkeypatch.undo()
        # DNS rebinding: public for the check, this computer for a second lookup; nothing reaches loopback
        answers = iter(["93.184.216.34"] + ["127.0.0.1"] * 10)
        real_lookup = socket.getaddrinfo

        def rebinding_lookup(host, port, *args, **kwargs):
            if host != "rebind.example":  # an address is its own answer
                return real_lookup(host, port, *args, **kwargs)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding_lookup)
        monkeypatch.setattr(did, "FETCH_TIMEOUT", 1.0)
        try:  # whatever the public address answers (offline: nothing, a clear 400), it is not this computer
            fetched = did._fetch(f"http://rebind.example:{server.port}/face.jpg", 10 << 20)
        except did.ApiError:
            fetched = None
        assert fetched != (ASSETS_DIR / "astronaut.jpg").read_bytes()
        assert len(server.seen) == 1  # only the first, pinned fetch above
    finally:
        server.server.shutdown()
