"""A stand-in for D-ID's REST API on 127.0.0.1, built from D-ID's documented shapes (docs.d-id.com and its
OpenAPI description), for tests of the studio's D-ID client and engine. It shares no code with the studio.

What it does like D-ID: ``Authorization: Basic API_USERNAME:API_PASSWORD`` (or the standard base64 form);
``GET /credits`` -> ``{"credits": [...], "remaining", "total"}``; ``POST /images`` / ``POST /audios``
(multipart ``image`` / ``audio``) -> 201 ``{"id", "url": "s3://..."}``; ``POST /talks`` -> 201 ``{"id":
"tlk_...", "object": "talk", "created_by", "created_at", "status": "created"}`` and 402 without credits;
``GET /talks/{id}`` goes created -> started -> done after a few polls, with ``result_url`` (a pre-signed
link on another path that needs no Authorization) and ``duration``; ``rejected`` and ``error`` talks;
``DELETE /talks/{id}`` -> 409 NotReadyError while rendering; errors as ``{"kind", "description"}``.

Test hooks: accounts by key (credits, always 429, always 500), ``fail_next(route, status)`` for transient
errors, and script words that steer a talk: ``REJECT`` (rejected), ``FACELESS`` (FaceError), ``ECHO`` (a
400 whose description repeats the Authorization header, as a careless server might).
The finished video is the uploaded photo with a magenta square in its top-left corner, so a test can tell
D-ID's frames from the studio's; its audio is a tone as long as the text needs (or the uploaded audio).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import math
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse

MAGENTA = (255, 0, 255)
MARK = 24  # the square's side in pixels
VOICES = {"en-US-JennyNeural", "en-US-GuyNeural", "zh-CN-XiaoxiaoNeural", "zh-CN-YunxiNeural"}


@dataclass
class Account:
    credits: float = 100.0
    behaviour: str = "ok"  # ok | rate_limited (always 429) | down (always 500)
    user_id: str = field(default_factory=lambda: f"google-oauth2|{secrets.randbelow(10**12)}")


@dataclass
class FakeTalk:
    id: str
    owner: str  # the account's key (internal only; answers carry the account's user_id)
    script: dict
    source: bytes
    created_at: str
    polls: int = 0
    status: str = "created"
    video: Path | None = None
    duration: float = 0.0
    error: dict | None = None


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None


@dataclass
class FakeDID:
    accounts: dict[str, Account]
    polls_to_start: int = 1
    polls_to_finish: int = 3
    requests: list[Seen] = field(default_factory=list)
    downloads: list[Seen] = field(default_factory=list)
    talks: dict[str, FakeTalk] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    _uploads: dict[str, bytes] = field(default_factory=dict)
    _failures: dict[str, list[int]] = field(default_factory=dict)
    _folder: tempfile.TemporaryDirectory = field(default_factory=lambda: tempfile.TemporaryDirectory(prefix="fake-did-"))

    def fail_next(self, route: str, status: int, times: int = 1) -> None:
        """The next ``times`` requests to ``route`` ("GET /credits", "POST /talks"...) answer ``status``."""
        self._failures.setdefault(route, []).extend([status] * times)

    # ---------------------------------------------------------------- the app
    def app(self):
        app = FastAPI()

        def error(status: int, kind: str, description: str) -> JSONResponse:
            return JSONResponse({"kind": kind, "description": description}, status_code=status)

        def account_of(request: Request, route: str):
            """(owner, account) or an error response, after the route's injected failures."""
            header = request.headers.get("authorization")
            self.requests.append(Seen(request.method, request.url.path, header))
            owner = _owner(header, self.accounts)
            if owner is None:
                return None, error(401, "AuthorizationError", "user unauthenticated")
            failures = self._failures.get(route)
            if failures:
                status = failures.pop(0)
                return None, error(status, {402: "InsufficientCreditsError", 429: "TooManyRequests"}.get(
                    status, "InternalServerError" if status >= 500 else "BadRequestError"), "injected failure")
            account = self.accounts[owner]
            if account.behaviour == "rate_limited":
                return None, JSONResponse({"message": "Too Many Requests"}, status_code=429)
            if account.behaviour == "down":
                return None, JSONResponse({"message": "Internal server error"}, status_code=500)
            return owner, None

        @app.get("/credits")
        def credits(request: Request):
            owner, failed = account_of(request, "GET /credits")
            if failed:
                return failed
            left = self.accounts[owner].credits
            item = {"owner_id": self.accounts[owner].user_id, "remaining": left, "total": 100.0, "created_at": _now(),
                    "modified_at": _now(), "expire_at": "2099-01-01T00:00:00.000Z"}
            return {"credits": [item], "remaining": left, "total": 100.0}

        async def upload(request: Request, route: str, field_name: str, prefix: str, suffix: str):
            owner, failed = account_of(request, route)
            if failed:
                return failed
            form = await request.form()
            part = form.get(field_name)
            if part is None or isinstance(part, str):
                return error(400, "BadRequestError", f"missing {field_name}")
            upload_id = prefix + secrets.token_hex(8)
            url = f"s3://d-id-{field_name}s-prod/{self.accounts[owner].user_id}/{upload_id}/{field_name}{suffix}"
            self._uploads[url] = await part.read()
            return JSONResponse({"id": upload_id, "url": url}, status_code=201)

        @app.post("/images")
        async def images(request: Request):
            return await upload(request, "POST /images", "image", "", ".png")

        @app.post("/audios")
        async def audios(request: Request):
            return await upload(request, "POST /audios", "audio", "", ".wav")

        @app.post("/talks")
        async def create_talk(request: Request):
            owner, failed = account_of(request, "POST /talks")
            if failed:
                return failed
            body = await request.json()
            unknown = set(body) - {"source_url", "script", "config", "user_data", "name", "webhook", "result_url"}
            script = body.get("script") or {}
            if unknown or script.get("type") not in ("text", "audio"):
                return error(400, "ValidationError", "invalid talk request")
            if script["type"] == "text":
                provider = script.get("provider") or {}
                if provider.get("type") != "microsoft" or provider.get("voice_id") not in VOICES:
                    return error(400, "BadRequestError", "invalid voice")
                if "ECHO" in script.get("input", ""):
                    return error(400, "BadRequestError", f"cannot parse request from {request.headers.get('authorization')}")
            elif script.get("audio_url") not in self._uploads:
                return error(400, "BadRequestError", "invalid audio_url")
            source = self._uploads.get(body.get("source_url", ""))
            if source is None:
                return error(400, "BadRequestError", "invalid actor url")
            if self.accounts[owner].credits <= 0:
                return error(402, "InsufficientCreditsError", "not enough credits")
            talk = FakeTalk("tlk_" + secrets.token_urlsafe(9), owner, script, source, _now())
            self.talks[talk.id] = talk
            user = self.accounts[owner].user_id
            return JSONResponse({"id": talk.id, "object": "talk", "created_by": user, "created_at": talk.created_at,
                                 "status": "created"}, status_code=201)

        @app.get("/talks/{talk_id}")
        def get_talk(talk_id: str, request: Request):
            owner, failed = account_of(request, "GET /talks/{id}")
            if failed:
                return failed
            talk = self.talks.get(talk_id)
            if talk is None or talk.owner != owner:
                return error(404, "NotFoundError", "not found")
            self._advance(talk)
            user = self.accounts[owner].user_id
            answer = {"id": talk.id, "object": "talk", "user_id": user, "created_by": user,
                      "created_at": talk.created_at, "modified_at": _now(), "status": talk.status,
                      "source_url": "s3://d-id-talks-prod/source.png"}
            if talk.status == "done":
                base = str(request.base_url).rstrip("/")
                answer.update(result_url=f"{base}/s3/{talk.id}.mp4?AWSAccessKeyId=FAKE&Signature=x",
                              duration=talk.duration)
            if talk.error:
                answer["error"] = talk.error
            return answer

        @app.delete("/talks/{talk_id}")
        def delete_talk(talk_id: str, request: Request):
            owner, failed = account_of(request, "DELETE /talks/{id}")
            if failed:
                return failed
            talk = self.talks.get(talk_id)
            if talk is None or talk.owner != owner:
                return error(404, "NotFoundError", "not found")
            if talk.status in ("created", "started"):
                self._advance(talk)  # the render goes on while the client waits to delete it
                return error(409, "NotReadyError", "talk is in process, try again later")
            del self.talks[talk_id]
            self.deleted.append(talk_id)
            return JSONResponse(None)

        @app.get("/s3/{talk_id}.mp4")
        def result(talk_id: str, request: Request):
            self.downloads.append(Seen("GET", request.url.path, request.headers.get("authorization")))
            talk = self.talks.get(talk_id)
            if talk is None or talk.video is None:
                return JSONResponse({"message": "NoSuchKey"}, status_code=404)
            return FileResponse(talk.video, media_type="video/mp4")

        return app

    def _advance(self, talk: FakeTalk) -> None:
        talk.polls += 1
        if talk.status in ("done", "error", "rejected"):
            return
        text = talk.script.get("input", "")
        if talk.polls >= self.polls_to_finish:
            if "REJECT" in text:
                talk.status = "rejected"
            elif "FACELESS" in text:
                talk.status, talk.error = "error", {"kind": "FaceError", "description": "No valid face detected"}
            else:
                talk.video, talk.duration = self._render(talk)
                talk.status = "done"
        elif talk.polls >= self.polls_to_start:
            talk.status = "started"

    def _render(self, talk: FakeTalk) -> tuple[Path, float]:
        import imageio_ffmpeg
        import soundfile as sf
        from PIL import Image

        image = Image.open(io.BytesIO(talk.source)).convert("RGB")
        image = image.resize((image.width // 2 * 2, image.height // 2 * 2))
        frame = np.asarray(image).copy()
        frame[:MARK, :MARK] = MAGENTA
        folder = Path(self._folder.name)
        wav = folder / f"{talk.id}.wav"
        if talk.script["type"] == "audio":
            wav.write_bytes(self._uploads[talk.script["audio_url"]])
            seconds = sf.info(str(wav)).duration
        else:
            seconds = max(1.0, 0.06 * len(talk.script["input"]))
            t = np.arange(int(seconds * 16000)) / 16000
            tone = 0.3 * np.sin(2 * math.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * math.pi * 3 * t))
            sf.write(str(wav), tone.astype(np.float32), 16000)
        video = folder / f"{talk.id}.mp4"
        h, w = frame.shape[:2]
        n = int(math.ceil(seconds * 25))
        proc = subprocess.Popen([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo",
                                 "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-i", str(wav),
                                 "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                                 "-shortest", str(video)], stdin=subprocess.PIPE)
        for _ in range(n):
            proc.stdin.write(frame.tobytes())
        proc.stdin.close()
        assert proc.wait() == 0
        return video, round(seconds, 3)

    # ---------------------------------------------------------------- serving
    def start(self) -> str:
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app(), host="127.0.0.1", port=port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            assert time.monotonic() < deadline, "the fake D-ID server did not start"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._folder.cleanup()


def _owner(header: str | None, accounts: dict[str, Account]) -> str | None:
    """The account a Basic header names: D-ID's ``Basic USER:PASSWORD`` (the key as given) or base64 of it."""
    scheme, _, value = (header or "").partition(" ")
    if scheme != "Basic" or not value:
        return None
    if value in accounts:
        return value
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded if decoded in accounts else None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
