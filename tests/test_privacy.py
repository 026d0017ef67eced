"""Issue 18: each person's faces, voices and videos are theirs. One test (or a few) per numbered item of the
issue, each through the public API with separate gradio_client sessions (each Client is one person: its own
session cookie, or its own X-Profile-Key), against the in-process studio or a studio in a subprocess.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from gradio_client import Client, handle_file

from pipelines.core import owners
from pipelines.core.settings import ASSETS_DIR
from tests.conftest import free_port, launched_studio

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ASSETS_DIR / "astronaut.jpg"
SEED_MESSAGE = "The seed must be a whole number from 0 to 2147483647, or -1 for a random one."
LONG_SCRIPT = ("Hello, I am a digital twin made from a single photo, and I can read any script you write for me "
               "in a clear voice, right here on this computer. ") * 12


def person(url: str, key: str | None = None, **kwargs) -> Client:
    """A new person: a gradio_client session of their own (and their own key, when given)."""
    headers = {"X-Profile-Key": key} if key else None
    return Client(url, verbose=False, headers=headers, **kwargs)


def error_of(call) -> str:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        return str(exc)
    raise AssertionError("the call was expected to fail")


def tone(path: Path, seconds: float = 2.0, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             rate)
    return path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(f"*{'.partial.'}*")] if folder.is_dir() else []


def fetch(url: str, client: Client | None = None, headers: dict | None = None) -> int:
    cookies = client.cookies if client is not None else None
    return requests.get(url, cookies=cookies, headers=headers, timeout=30).status_code


def wait_until(condition, timeout: float = 120.0, every: float = 0.05):
    """Poll ``condition`` until it is true (a bounded wait, not a timing assertion)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true after {timeout} s: {condition}")


def fn_index(demo, name: str) -> int:
    return next(i for i, fn in demo.fns.items() if getattr(fn.fn, "__name__", "") == name)


def raw_event(url: str, session: requests.Session, index: int, data: list) -> dict:
    """Call an event of the page the way the browser does (queue/join, then the event stream); returns the
    final message. For the page's own events, which gradio_client does not offer."""
    session_hash = uuid.uuid4().hex[:11]
    joined = session.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": index,
                                                               "session_hash": session_hash, "event_data": None,
                                                               "trigger_id": None}, timeout=30)
    joined.raise_for_status()
    with session.get(url + "gradio_api/queue/data", params={"session_hash": session_hash}, stream=True,
                     timeout=300) as stream:
        for line in stream.iter_lines():
            if line.startswith(b"data:"):
                message = json.loads(line[5:])
                if message.get("msg") in ("process_completed", "unexpected_error"):
                    return message
    raise AssertionError("the event stream ended without a result")


def upload(url: str, session: requests.Session, name: str, content: bytes) -> dict:
    answer = session.post(url + "gradio_api/upload", files={"files": (name, content)}, timeout=30)
    answer.raise_for_status()
    return {"path": answer.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return tone(tmp_path_factory.mktemp("rec") / "me.wav")


# ================================================================ 1. no separation between users
def test_1_each_session_sees_loads_and_deletes_only_its_own_profiles(studio, recording):
    url = studio[1]
    alice, bob = person(url), person(url)
    assert alice.predict("alice", handle_file(str(PHOTO)), "auto", handle_file(str(recording)), "a teacher",
                         api_name="/save_profile") == "alice"
    assert alice.predict(api_name="/list_profiles") == ["alice"]
    assert bob.predict(api_name="/list_profiles") == []
    assert "No saved profile called 'alice'" in error_of(lambda: bob.predict("alice", api_name="/load_profile"))
    assert bob.predict("alice", api_name="/delete_profile") is False
    photo, voice, audio, persona = alice.predict("alice", api_name="/load_profile")
    assert Path(photo).is_file() and Path(audio).is_file() and (voice, persona) == ("auto", "a teacher")
    # Bob's own "alice" is his; Alice's stays hers
    assert bob.predict("alice", handle_file(str(PHOTO)), "auto", None, "bob's", api_name="/save_profile") == "alice"
    assert alice.predict("alice", api_name="/load_profile")[3] == "a teacher"
    assert alice.predict("alice", api_name="/delete_profile") is True
    assert bob.predict("alice", api_name="/load_profile")[3] == "bob's"


def test_1_profile_names_never_collide_and_overwrite_is_asked_for(studio, recording):
    url = studio[1]
    alice = person(url)
    alice.predict("alice", handle_file(str(PHOTO)), "auto", handle_file(str(recording)), "first",
                  api_name="/save_profile")
    # "alice!" cleans up to the same folder name as "alice": it must be a profile of its own
    alice.predict("alice!", handle_file(str(PHOTO)), "auto", None, "second", api_name="/save_profile")
    assert sorted(alice.predict(api_name="/list_profiles")) == ["alice", "alice!"]
    first = alice.predict("alice", api_name="/load_profile")
    assert first[3] == "first" and first[2] is not None  # its recording survived
    message = error_of(lambda: alice.predict("alice", handle_file(str(PHOTO)), "auto", None, "third",
                                             api_name="/save_profile"))
    assert 'A profile called "alice" already exists' in message
    assert alice.predict("alice", api_name="/load_profile")[3] == "first"  # unchanged
    alice.predict("alice", handle_file(str(PHOTO)), "auto", None, "third", True, api_name="/save_profile")
    replaced = alice.predict("alice", api_name="/load_profile")
    assert replaced[3] == "third" and replaced[2] is None
    assert alice.predict("alice!", api_name="/load_profile")[3] == "second"


def test_1_a_profile_key_opens_the_same_things_on_another_device(studio):
    url = studio[1]
    key = owners.new_key()
    laptop, phone, stranger = person(url, key), person(url, key), person(url)
    laptop.predict("travel", handle_file(str(PHOTO)), "auto", None, "me", api_name="/save_profile")
    assert phone.predict(api_name="/list_profiles") == ["travel"]
    assert stranger.predict(api_name="/list_profiles") == []
    assert "profile key is not valid" in error_of(lambda: person(url, "short").predict(api_name="/list_profiles"))


def test_1_history_recordings_and_their_urls_are_the_owners_only(studio, recording):
    demo, url, config = studio
    alice = person(url, download_files=False)
    bob = person(url)
    video = alice.predict(handle_file(str(PHOTO)), "Hello there.", "auto", None, "classic",
                          api_name="/create_twin_video")
    server_path = Path(video["video"]["path"] if "video" in video else video["path"])
    assert server_path.is_file() and (server_path.parent / (server_path.name + ".json")).is_file()
    history = alice.predict(api_name="/twin_history")
    assert [Path(h["path"]).name for h in history] == [server_path.name]
    assert bob.predict(api_name="/twin_history") == []
    # the URLs of the video, its .json (with the script) and a profile's recording: the owner only
    alice.predict("me", handle_file(str(PHOTO)), "auto", handle_file(str(recording)), "", api_name="/save_profile")
    kept = alice.predict("me", api_name="/load_profile")[2]
    base = url + "gradio_api/file="
    for path in (server_path, server_path.with_name(server_path.name + ".json"), Path(kept["path"])):
        assert fetch(base + str(path), alice) == 200, path
        assert fetch(base + str(path), bob) == 403, path
        assert fetch(base + str(path)) == 403, path
    # the owner folder's name cannot be guessed: an HMAC under the studio's secret
    assert owners.OWNER_PATTERN.fullmatch(server_path.relative_to(config.outputs_dir / "users").parts[0])


def test_1_my_voice_is_kept_per_person_and_never_overwritten(studio, tmp_path):
    url = studio[1]
    alice, bob = person(url), person(url)
    mine = alice.predict(handle_file(str(tone(tmp_path / "a.wav", 2.0))), "my-voice", api_name="/save_my_voice")
    theirs = bob.predict(handle_file(str(tone(tmp_path / "b.wav", 3.0))), "my-voice", api_name="/save_my_voice")
    assert sf.info(mine[0]).duration < 2.5 and sf.info(theirs[0]).duration > 2.5
    again = alice.predict(handle_file(str(tone(tmp_path / "c.wav", 3.0))), "my-voice", api_name="/save_my_voice")
    assert Path(again[0]).name == "my-voice-2.wav"
    # the list of kept recordings: names only (no server path), and only one's own
    assert set(again[3]["choices"][i][1] for i in range(len(again[3]["choices"]))) == {"my-voice", "my-voice-2"}
    assert all("/" not in str(choice) for pair in again[3]["choices"] for choice in pair)


def test_1_one_click_deletes_everything_a_person_made(studio, recording):
    url = studio[1]
    key = owners.new_key()
    alice, bob = person(url, key), person(url)
    alice.predict("alice", handle_file(str(PHOTO)), "auto", handle_file(str(recording)), "", api_name="/save_profile")
    alice.predict(handle_file(str(recording)), "my-voice", api_name="/save_my_voice")
    bob.predict("bob", handle_file(str(PHOTO)), "auto", None, "", api_name="/save_profile")
    folder = owners.owner_dir(studio[2].outputs_dir, owners.owner_id(studio[0].studio_context.sessions.secret, "k", key))
    assert len(files_under(folder)) >= 4
    assert "Deleted everything you made" in alice.predict(api_name="/delete_my_data")
    assert not folder.exists() and alice.predict(api_name="/list_profiles") == []
    assert bob.predict(api_name="/list_profiles") == ["bob"]


def test_1_anonymous_outputs_expire_and_keyed_ones_stay(studio):
    demo, url, config = studio
    anonymous, keyed = person(url), person(url, owners.new_key())
    for who in (anonymous, keyed):
        who.predict("old", handle_file(str(PHOTO)), "auto", None, "", api_name="/save_profile")
    users = config.outputs_dir / "users"
    day_old = time.time() - 25 * 3600
    for path in users.rglob("*"):
        os.utime(path, (day_old, day_old))
    for folder in users.iterdir():
        os.utime(folder, (day_old, day_old))
    removed = demo.studio_context.sessions.expire_anonymous()  # what start-up and the hourly pass do
    assert removed and all(owner.startswith("a-") for owner in removed)
    assert anonymous.predict(api_name="/list_profiles") == []
    assert keyed.predict(api_name="/list_profiles") == ["old"]
    from pipelines.core.settings import parse_args

    assert parse_args(["--anonymous-ttl-hours", "2"]).anonymous_ttl_hours == 2


def test_1_browser_key_is_restored_on_the_next_visit(studio):
    """The page's load event with the key the browser kept: the same owner as the key's holder."""
    demo, url, _ = studio
    key = owners.new_key()
    person(url, key).predict("kept", handle_file(str(PHOTO)), "auto", None, "", api_name="/save_profile")
    browser = requests.Session()
    browser.get(url, timeout=30)  # the page sets the session cookie
    index = fn_index(demo, "restore_key")
    answer = browser.post(url + "gradio_api/run/predict", json={"data": [key], "fn_index": index,
                                                                "session_hash": uuid.uuid4().hex[:11]}, timeout=30)
    assert answer.json()["data"][1] == key
    # the browser's own requests (its cookie) now see the key's things, files included
    client = person(url)
    client.cookies = dict(browser.cookies)
    assert client.predict(api_name="/list_profiles") == ["kept"]
    # a first visit gets a fresh key
    fresh = requests.Session()
    fresh.get(url, timeout=30)
    made = fresh.post(url + "gradio_api/run/predict", json={"data": [None], "fn_index": index,
                                                            "session_hash": uuid.uuid4().hex[:11]}, timeout=30)
    assert owners.valid_key(made.json()["data"][0]) and made.json()["data"][0] != key


# ================================================================ 2. model and voice parameters are not paths
def test_2_model_and_voice_accept_catalog_names_only(studio, tmp_path):
    _, url, config = studio
    caller = person(url)
    session = requests.Session()
    junk = upload(url, session, "junk.gguf", b"GGUF" + os.urandom(64))["path"]
    names = ["/etc/shadow", "/etc/no-such-file", "../../../etc/passwd", junk]
    answers = {name: error_of(lambda name=name: caller.predict("hi", name, 8, 0.7, 0.9, 1, api_name="/generate_text"))
               for name in names}

    def shown(name):  # long names are shortened in the message
        return name if len(name) <= 80 else name[:77] + "..."

    shapes = {answer.replace(shown(name), "NAME") for name, answer in answers.items()}
    assert len(shapes) == 1 and shapes.pop().startswith("Unknown model 'NAME'."), answers
    voices = {name: error_of(lambda name=name: caller.predict("Hello.", name, 1.0, api_name="/synthesize_speech"))
              for name in names}
    assert len({answer.replace(shown(name), "NAME") for name, answer in voices.items()}) == 1
    assert all(answer.startswith(f"Unknown model '{shown(name)}'") for name, answer in voices.items())
    twin = error_of(lambda: caller.predict(handle_file(str(PHOTO)), "Hello.", "/etc/passwd", None, "classic",
                                           api_name="/create_twin_video"))
    assert twin.startswith("Unknown model '/etc/passwd'")
    # a link in models/ that leads outside it is not followed (unless the host allows it)
    link = config.models_dir / "text" / "outside.gguf"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(junk)
    try:
        assert error_of(lambda: caller.predict("hi", "outside", 8, 0.7, 0.9, 1, api_name="/generate_text")) \
            .startswith("Unknown model 'outside'")
    finally:
        link.unlink()


# ================================================================ 3. limits are checked before the work
def test_3_a_too_long_script_or_recording_is_refused_before_any_speech(studio, tmp_path):
    _, url, config = studio
    caller = person(url)
    before = files_under(config.outputs_dir)
    script = ("This is a sentence of a very long script. " * 460)[:19_500]
    message = error_of(lambda: caller.predict(handle_file(str(PHOTO)), script, "auto", None, "classic",
                                              api_name="/create_twin_video"))
    assert "The script is too long" in message and "the limit is 5 minutes" in message
    # a 6-minute recording (8 kHz, 8-bit: small to upload): refused from its header
    long_recording = tmp_path / "six-minutes.wav"
    sf.write(str(long_recording), np.zeros(6 * 60 * 8000, np.float32), 8000, subtype="PCM_U8")
    message = error_of(lambda: caller.predict(handle_file(str(PHOTO)), "", "auto", handle_file(str(long_recording)),
                                              "classic", api_name="/create_twin_video"))
    assert "The recording is too long" in message
    assert files_under(config.outputs_dir) - before <= {owners.SECRET_FILE}  # nothing was written


# ================================================================ 4. cancel and closed tabs stop the work
def _own_files(config, before: set[str]) -> set[str]:
    return {p for p in files_under(config.outputs_dir) - before if not p.endswith(owners.SECRET_FILE)}


def test_4_cancel_stops_the_render_keeps_nothing_and_frees_the_slot(studio):
    demo, url, config = studio
    jobs = demo.studio_context.jobs
    alice, bob = person(url), person(url)
    before = files_under(config.outputs_dir)
    job = alice.submit(handle_file(str(PHOTO)), LONG_SCRIPT, "auto", None, "classic", api_name="/create_twin_video")
    wait_until(lambda: [p for p in partial_files(config.outputs_dir) if p.name.endswith(".mp4")])  # rendering
    waiting = bob.submit(handle_file(str(PHOTO)), "Next, please.", "auto", None, "classic",
                         api_name="/create_twin_video")
    assert job.cancel()
    wait_until(lambda: jobs.running_count() <= 1 and not partial_files(config.outputs_dir), timeout=30)
    result = waiting.result(timeout=300)  # the next job ran
    assert Path(result).is_file()
    mine = [p for p in _own_files(config, before)]
    assert len(mine) == 2 and all(p.endswith((".mp4", ".mp4.json")) for p in mine)  # bob's video and .json only
    assert not any(p.endswith(".wav") for p in mine)


def test_4_a_cancelled_speech_keeps_no_file(studio):
    demo, url, config = studio
    jobs = demo.studio_context.jobs
    caller = person(url)
    before = files_under(config.outputs_dir)
    job = caller.submit("This is one sentence of many. " * 300, "espeak-ng:en-us", 1.0, api_name="/synthesize_speech")
    wait_until(lambda: partial_files(config.outputs_dir))  # speaking, writing its file
    assert job.cancel()
    wait_until(lambda: jobs.running_count() == 0 and not partial_files(config.outputs_dir), timeout=30)
    time.sleep(0.5)
    assert _own_files(config, before) == set()


def test_4_a_closed_browser_tab_stops_its_render(studio):
    """A browser keeps a heartbeat stream open; when the tab closes the stream ends, and its job stops."""
    demo, url, config = studio
    jobs = demo.studio_context.jobs
    tab = person(url)
    heartbeat = socket.create_connection(("127.0.0.1", config.port))  # the tab's heartbeat stream
    heartbeat.sendall(f"GET /gradio_api/heartbeat/{tab.session_hash} HTTP/1.1\r\nHost: studio\r\n\r\n".encode())
    assert b"200 OK" in heartbeat.recv(4096)  # the tab is open
    before = files_under(config.outputs_dir)
    job = tab.submit(handle_file(str(PHOTO)), LONG_SCRIPT, "auto", None, "classic", api_name="/create_twin_video")
    wait_until(lambda: [p for p in partial_files(config.outputs_dir) if p.name.endswith(".mp4")])
    heartbeat.close()  # the tab is closed
    wait_until(lambda: jobs.running_count() == 0 and not partial_files(config.outputs_dir), timeout=60)
    wait_until(job.done, timeout=60)
    assert _own_files(config, before) == set()


# ================================================================ 5. seeds out of range: one clear message
def test_5_a_huge_seed_gets_the_same_clear_message_everywhere(studio):
    demo, url, _ = studio
    caller = person(url)
    assert SEED_MESSAGE in error_of(lambda: caller.predict("hi", "", 4, 0.7, 0.9, 1e30, api_name="/generate_text"))
    assert SEED_MESSAGE in error_of(lambda: caller.predict(model="dcgan-faces-64", count=1, seed=1e30,
                                                           truncation=1.0, api_name="/generate_faces"))
    # the twin wizard's Create video, as the page sends it
    session = requests.Session()
    session.get(url, timeout=30)
    photo = upload(url, session, "photo.jpg", PHOTO.read_bytes())
    message = raw_event(url, session, fn_index(demo, "create_video"),
                        [photo, "Hello.", "auto", None, True, None, "face", 1.0, False, False, True, 1e30, "classic",
                         None, "top-left", True])
    assert message["success"] is False and message["output"]["error"] == SEED_MESSAGE, message


# ================================================================ 6. crash leftovers and a full disk
def start_studio(models: Path, outputs: Path, port: int, *, prefix: list[str] | None = None, preexec=None,
                 extra: list[str] | None = None) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    command = (prefix or []) + [sys.executable, "app.py", "--port", str(port), "--models-dir", str(models),
                                "--outputs-dir", str(outputs)] + (extra or [])
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=preexec)
    url = f"http://127.0.0.1:{port}/"

    def up():
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode(errors="replace")[-3000:])
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    wait_until(up, timeout=180, every=0.5)
    return proc


def stop_studio(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_6_kill_9_during_a_render_leaves_no_partial_file_and_intact_profiles(tmp_path, recording):
    models, outputs, port = tmp_path / "models", tmp_path / "outputs", free_port()
    url = f"http://127.0.0.1:{port}/"
    key = owners.new_key()
    server = start_studio(models, outputs, port)
    try:
        me = person(url, key)
        me.predict("Ms Collins", handle_file(str(PHOTO)), "auto", handle_file(str(recording)), "an astronaut",
                   api_name="/save_profile")
        me.submit(handle_file(str(PHOTO)), LONG_SCRIPT, "auto", None, "classic", api_name="/create_twin_video")
        wait_until(lambda: [p for p in partial_files(outputs) if p.name.endswith(".mp4")])
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        assert partial_files(outputs)  # the crash left a half-written video
    finally:
        stop_studio(server)
    server = start_studio(models, outputs, port)
    try:
        assert partial_files(outputs) == []  # start-up cleared it
        again = person(url, key)
        assert again.predict(api_name="/list_profiles") == ["Ms Collins"]
        photo, voice, audio, persona = again.predict("Ms Collins", api_name="/load_profile")
        assert Path(photo).stat().st_size > 0 and sf.info(audio).duration > 1.0 and persona == "an astronaut"
        assert again.predict(api_name="/twin_history") == []  # no video from the killed render
    finally:
        stop_studio(server)


def small_disk(outputs: Path, size_kb: int):
    """How to start a studio whose outputs folder can hold only ``size_kb``: a tmpfs of that size in a private
    mount namespace (unshare), or, where that is not allowed, a file-size limit (ulimit -f). Returns
    (command prefix, preexec_fn, folder where the test sees the studio's outputs: a function of its pid)."""
    outputs.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {outputs}"],
                           capture_output=True)
    if probe.returncode == 0:
        prefix = ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size={size_kb}k tmpfs "{outputs}" && exec "$@"',
                  "sh"]
        return prefix, None, lambda pid: Path(f"/proc/{pid}/root") / outputs.relative_to("/")

    def limit_file_size():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_kb * 512, size_kb * 512))

    return None, limit_file_size, lambda pid: outputs


@pytest.mark.slow
def test_6_a_full_disk_gives_a_clear_message_and_leaves_no_half_written_pair(tmp_path, recording):
    from PIL import Image

    models, outputs, port = tmp_path / "models", tmp_path / "outputs", free_port()
    url = f"http://127.0.0.1:{port}/"
    small_photo = tmp_path / "small.png"
    Image.open(PHOTO).convert("RGB").resize((256, 256)).save(small_photo)
    prefix, preexec, view = small_disk(outputs, 400)
    server = start_studio(models, outputs, port, prefix=prefix, preexec=preexec)
    try:
        seen = view(server.pid)
        me = person(url, owners.new_key())
        me.predict("kept", handle_file(str(small_photo)), "auto", None, "first", api_name="/save_profile")
        full = "The disk is full, so nothing was saved."
        # an overwrite that does not fit: the old profile stays whole
        assert full in error_of(lambda: me.predict("kept", handle_file(str(PHOTO)), "auto", handle_file(str(recording)),
                                                   "second", True, api_name="/save_profile"))
        assert me.predict("kept", api_name="/load_profile")[3] == "first"
        # a new profile that does not fit: no folder at all
        assert full in error_of(lambda: me.predict("big", handle_file(str(PHOTO)), "auto", None, "",
                                                   api_name="/save_profile"))
        assert me.predict(api_name="/list_profiles") == ["kept"]
        # speech too long for the room left: no WAV, no .json
        assert full in error_of(lambda: me.predict("This sentence is spoken again and again. " * 40, "espeak-ng:en-us",
                                                   1.0, api_name="/synthesize_speech"))
        names = files_under(seen)
        assert not [n for n in names if n.endswith((".wav", ".wav.json")) or ".partial." in n], names
        profile_folders = [p for p in seen.rglob("twin_profiles/*") if p.is_dir()]
        assert len(profile_folders) == 1 and (profile_folders[0] / "profile.json").is_file()
    finally:
        stop_studio(server)


# ================================================================ 7. smaller
def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A tiny PNG whose header claims 400 megapixels (Pillow refuses to open more than ~179)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_7_an_oversized_photo_in_the_page_gets_a_clear_message(studio):
    demo, url, _ = studio
    session = requests.Session()
    session.get(url, timeout=30)
    bomb = upload(url, session, "huge.png", bomb_png())
    message = raw_event(url, session, fn_index(demo, "find_faces"), [bomb])
    error = message["output"]["error"]
    assert message["success"] is False and "The photo is too large" in error
    assert "DecompressionBomb" not in error and "/tmp" not in error and "preprocess" not in error


def test_7_only_the_host_may_unload_models(studio):
    demo, url, _ = studio
    visitor = person(url)
    visitor.headers["X-Forwarded-For"] = "203.0.113.7"  # another computer, through a proxy on the host
    for name, args in (("/unload_all_models", ()), ("/unload_model", (None,))):
        assert "Only the studio's host" in error_of(lambda: visitor.predict(*args, api_name=name))
    host = person(url)  # this computer
    host.predict(api_name="/unload_all_models")


def test_7_readme_flags_exist_and_allow_pickle_reaches_the_runtime():
    import re

    from pipelines.core.runtime import Runtime
    from pipelines.core.settings import build_parser, parse_args

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    options = readme.split("## Options", 1)[1].split("\n## ", 1)[0]
    flags = set(re.findall(r"`(--[a-z][a-z-]+)", options))
    known = {option for action in build_parser()._actions for option in action.option_strings}
    assert {"--allow-pickle", "--shared-gallery", "--anonymous-ttl-hours"} <= flags
    assert flags <= known, flags - known
    config = parse_args(["--allow-pickle", "--auth", "ana:pw1", "--auth", "ben:pw2", "--admin-user", "ana"])
    assert Runtime.from_config(config).allow_pickle is True
    assert config.credentials == [("ana", "pw1"), ("ben", "pw2")] and config.admin_users == ("ana",)


# ================================================================ the browser keeps its key
@pytest.mark.browser
def test_1_the_browser_keeps_its_key_and_another_device_can_use_it(studio):
    import shutil

    from playwright.sync_api import sync_playwright

    from tests.conftest import ARTIFACTS

    _, url, _ = studio
    assert shutil.which("/usr/bin/chromium"), "Debian's chromium is required"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])

        def open_panel(page):
            page.goto(url + "?lang=en", wait_until="load")
            page.get_by_text("Your data on this studio").click()
            box = page.locator("#profile-key textarea, #profile-key input").first
            wait_until(lambda: box.input_value(), timeout=60)
            return box

        laptop = browser.new_context(locale="en-US")
        page = laptop.new_page()
        key = open_panel(page).input_value()
        assert owners.valid_key(key)
        person(url, key).predict("from my laptop", handle_file(str(PHOTO)), "auto", None, "",
                                 api_name="/save_profile")
        assert open_panel(page).input_value() == key  # a reload keeps it
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "my-data-panel.png"), full_page=True)

        phone = browser.new_context(locale="en-US")
        other = phone.new_page()
        assert open_panel(other).input_value() != key  # another device: a key of its own
        other.get_by_label("Use a key from another device").fill(key)
        other.get_by_role("button", name="Use this key").click()
        wait_until(lambda: open_panel_value(other) == key, timeout=30)
        # that browser's requests (its session cookie) now see the laptop's profile
        client = person(url)
        client.cookies = {c["name"]: c["value"] for c in phone.cookies() if c["name"] == "aigc-session"}
        assert client.predict(api_name="/list_profiles") == ["from my laptop"]
        browser.close()


def open_panel_value(page) -> str:
    return page.locator("#profile-key textarea, #profile-key input").first.input_value()


# ================================================================ with --auth: each user their own
@pytest.fixture(scope="module")
def signed_in_studio(tmp_path_factory):
    from pipelines.core.settings import AppConfig

    root = tmp_path_factory.mktemp("auth-studio")
    with launched_studio(AppConfig(models_dir=root / "models", outputs_dir=root / "outputs", port=free_port(),
                                   auth=[("ana", "pw-ana"), ("ben", "pw-ben")], admin_users=("ana",))) as studio:
        yield studio


def test_1_signed_in_users_keep_their_own_things_and_only_the_admin_unloads(signed_in_studio):
    _, url, _ = signed_in_studio
    ana = Client(url, auth=("ana", "pw-ana"), verbose=False, download_files=False)
    ben = Client(url, auth=("ben", "pw-ben"), verbose=False)
    ana.predict("ana's", handle_file(str(PHOTO)), "auto", None, "", api_name="/save_profile")
    assert ben.predict(api_name="/list_profiles") == []
    again = Client(url, auth=("ana", "pw-ana"), verbose=False)  # another visit: the user name is the owner
    assert again.predict(api_name="/list_profiles") == ["ana's"]
    photo = ana.predict("ana's", api_name="/load_profile")[0]["path"]
    base = url + "gradio_api/file="
    assert fetch(base + photo, ana) == 200 and fetch(base + photo, ben) == 403
    for who in (ana, ben):
        who.headers["X-Forwarded-For"] = "203.0.113.9"  # both from other computers
    assert "Only the studio's host" in error_of(lambda: ben.predict(api_name="/unload_all_models"))
    ana.predict(api_name="/unload_all_models")  # the --admin-user may
