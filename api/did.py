"""A D-ID-compatible REST API served by the studio under ``/did/``: code written for D-ID's API runs against a
local studio by changing its base URL (``https://api.d-id.com/talks`` -> ``http://127.0.0.1:7860/did/talks``).

Endpoints, with D-ID's request and response shapes and status codes: ``POST /images`` and ``POST /audios``
(multipart uploads), ``POST /talks`` (``source_url`` as an http(s) URL, a ``data:`` URL or an image id/url
from ``POST /images``; ``script`` as text with a voice or as audio from ``POST /audios``), ``GET /talks/{id}``
(created -> started -> done | error, ``result_url``, ``duration``), ``GET /talks`` (paginated, the caller's
own), ``DELETE /talks/{id}``, ``GET /credits``. Errors are ``{"kind": ..., "description": ...}``.

Talks are rendered by the studio's twin pipeline (engine "classic" unless the request names another) on a
bounded background worker (one render at a time by default), never on the server's event loop.

Access: with ``--auth user:password`` those are the Basic-auth credentials (D-ID's ``Basic USER:PASSWORD``
or the standard base64 form). Without ``--auth`` the API answers this computer only (unless ``--host`` opened
the studio to others on purpose). Each caller (each set of credentials) sees only their own talks and files.
Remote URLs are fetched only when every address they resolve to is public (no loopback, private or
link-local addresses: the studio itself is reached by its own image/audio URLs, never fetched).

Why a package of its own: this is neither Gradio (``aigc_ui/`` holds the Gradio UI only) nor model code
(``pipelines/`` never serves HTTP); like the UI, it is an adapter that turns requests into pipeline calls.
Mounted on the Gradio app by ``aigc_ui.app.launch_kwargs`` (``mount(config)``).
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import io
import ipaddress
import json
import logging
import queue
import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union
from urllib.parse import unquote_to_bytes, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from pipelines.core.errors import Stopped, UserError
from pipelines.core.jobs import StopToken
from pipelines.core.outputs import atomic_path, write_json_atomic
from pipelines.core.settings import AppConfig

log = logging.getLogger(__name__)

PREFIX = "/did"
MAX_IMAGE_BYTES = 10 * 2**20  # D-ID: "the image size is limited to 10 MB"
MAX_AUDIO_BYTES = 15 * 2**20  # D-ID: "File size is limited to 15MB"
MAX_JSON_BYTES = 16 * 2**20  # a talk with a data: URL photo
MAX_IMAGE_PIXELS = 36_000_000  # 6000 x 6000; a bigger (or decompression-bomb) image is refused
MIN_SCRIPT_CHARS, MAX_SCRIPT_CHARS = 3, 5000  # D-ID's minimum; our maximum keeps a talk under ~5 minutes
MAX_AUDIO_SECONDS = 300.0
MAX_PENDING = 16  # talks waiting for the worker; more are refused with 429
FETCH_TIMEOUT = 15.0
DEFAULT_ENGINE = "classic"
IMAGE_TYPES = {"image/jpeg", "image/jpg", "image/png"}


class ApiError(Exception):
    """An answer in D-ID's error shape."""

    def __init__(self, status: int, kind: str, description: str, details: Any = None):
        super().__init__(description)
        self.status, self.kind, self.description, self.details = status, kind, description, details

    def response(self) -> JSONResponse:
        body = {"kind": self.kind, "description": self.description}
        if self.details is not None:
            body["details"] = self.details
        headers = {"WWW-Authenticate": 'Basic realm="did"'} if self.status == 401 else None
        return JSONResponse(body, status_code=self.status, headers=headers)


def bad_request(description: str, details: Any = None, kind: str = "BadRequestError") -> ApiError:
    return ApiError(400, kind, description, details)


# ---------------------------------------------------------------- request bodies (D-ID's shapes)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provider(_Strict):
    type: Literal["microsoft"]
    voice_id: str
    voice_config: dict | None = None
    language: str | None = None


class TextScript(_Strict):
    type: Literal["text"]
    input: str
    provider: Provider | None = None
    ssml: bool = False
    subtitles: bool = False


class AudioScript(_Strict):
    type: Literal["audio"]
    audio_url: str
    subtitles: bool = False


class TalkConfig(_Strict):
    result_format: Literal["mp4"] = "mp4"
    stitch: bool = False  # D-ID: animate the whole image (True) or a crop around the face (False)
    fluent: bool = False
    pad_audio: float = Field(0.0, ge=0, le=60)


class CreateTalk(_Strict):
    source_url: str
    script: Union[TextScript, AudioScript] = Field(discriminator="type")
    config: TalkConfig = Field(default_factory=TalkConfig)
    user_data: str | None = Field(None, min_length=1, max_length=1000)
    name: str | None = Field(None, max_length=200)
    webhook: str | None = None
    result_url: str | None = None
    engine: str | None = None  # studio extension: which twin engine renders (default "classic")


def _validation_error(exc: ValidationError) -> ApiError:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("function-", "tagged-union")))
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}" if where else message)
    return bad_request("Invalid request: " + "; ".join(problems[:5]), details=problems)


# ---------------------------------------------------------------- who is calling


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """Credentials from ``Basic <base64(user:password)>``, D-ID's ``Basic USER:PASSWORD``, or ``Basic TOKEN``."""
    scheme, _, value = (header or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
        if ":" in decoded:
            user, _, password = decoded.partition(":")
            return user, password
    except (binascii.Error, ValueError, UnicodeDecodeError):
        pass
    user, _, password = value.partition(":")
    return user, password


def is_loopback_host(host: str | None) -> bool:
    """Is this client or URL host this computer (127.0.0.0/8, ::1, localhost)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address((host or "").strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Caller:
    owner: str  # a stable id derived from the credentials (never the credentials themselves)


# ---------------------------------------------------------------- talks and files on disk


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"


_ID = re.compile(r"^(tlk|img|aud)_[A-Za-z0-9]{8,32}$")


@dataclass
class Talk:
    record: dict  # exactly what GET /talks/{id} answers, less result_url (added per request)
    owner: str
    folder: Path
    token: str  # the secret in result_url (a pre-signed link, like D-ID's S3 links)
    job: dict = field(default_factory=dict)  # what the worker needs (paths, script, voice, engine)
    stop: StopToken = field(default_factory=StopToken)
    deleted: bool = False

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def video(self) -> Path:
        return self.folder / "results" / f"{self.id}.mp4"

    def save(self) -> None:
        write_json_atomic(self.folder / "talks" / f"{self.id}.json",
                          {"record": self.record, "token": self.token, "job": self.job})


class TalkStore:
    """Talks by owner, in memory and as JSON under ``outputs/did/<owner>/`` (written atomically)."""

    def __init__(self, root: Path):
        self.root = root
        self._lock = threading.RLock()
        self._talks: dict[str, Talk] = {}
        self._loaded: set[str] = set()

    def folder(self, owner: str) -> Path:
        return self.root / owner

    def _load(self, owner: str) -> None:
        if owner in self._loaded:
            return
        self._loaded.add(owner)
        for path in sorted((self.folder(owner) / "talks").glob("tlk_*.json")):
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
                talk = Talk(saved["record"], owner, self.folder(owner), saved["token"], saved.get("job", {}))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("skipping unreadable talk file %s", path.name)
                continue
            if talk.record.get("status") in ("created", "started"):  # the studio stopped while it waited
                talk.record.update(status="error", modified_at=_now(),
                                   error={"kind": "UnknownError", "description": "the studio restarted before "
                                                                                 "this talk was rendered"})
                talk.save()
            self._talks[talk.id] = talk

    def add(self, talk: Talk) -> None:
        with self._lock:
            self._load(talk.owner)
            self._talks[talk.id] = talk
            talk.save()

    def get(self, owner: str, talk_id: str) -> Talk:
        with self._lock:
            self._load(owner)
            talk = self._talks.get(talk_id)
        if talk is None or talk.owner != owner or talk.deleted:
            raise ApiError(404, "NotFoundError", f"talk {talk_id} not found")
        return talk

    def list(self, owner: str) -> list[Talk]:
        with self._lock:
            self._load(owner)
            talks = [t for t in self._talks.values() if t.owner == owner and not t.deleted]
        return sorted(talks, key=lambda t: t.record["created_at"], reverse=True)

    def delete(self, talk: Talk) -> None:
        with self._lock:
            talk.deleted = True
            self._talks.pop(talk.id, None)
        for path in (talk.folder / "talks" / f"{talk.id}.json", talk.video,
                     talk.video.with_name(talk.video.name + ".json")):
            path.unlink(missing_ok=True)


class RenderWorker:
    """A bounded queue and ``threads`` daemon threads (started on first use) that run renders in order."""

    def __init__(self, threads: int = 1, max_pending: int = MAX_PENDING):
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._threads = max(1, int(threads))
        self._started = False
        self._lock = threading.Lock()

    def submit(self, fn) -> None:
        with self._lock:
            if not self._started:
                for i in range(self._threads):
                    threading.Thread(target=self._run, name=f"did-render-{i}", daemon=True).start()
                self._started = True
        try:
            self._queue.put_nowait(fn)
        except queue.Full:
            raise ApiError(429, "TooManyRequestsError",
                           f"{MAX_PENDING} talks are already waiting to be rendered; try again later") from None

    def _run(self) -> None:
        while True:
            fn = self._queue.get()
            try:
                fn()
            except Exception:  # noqa: BLE001 - one failed render must not stop the worker
                log.exception("D-ID API render failed")


# ---------------------------------------------------------------- fetching what a talk points at


def _public_address(host: str, port: int) -> str:
    """The address to connect to for ``host``; refuses hosts that resolve to this computer, a private
    network, link-local or other non-public addresses (every address the name has must be public)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise bad_request(f"source host {host!r} could not be resolved") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise bad_request(f"source_url points at a non-public address ({address}); this studio only fetches "
                              "public http(s) URLs (use POST /images for local files)")
    return infos[0][4][0].split("%")[0]


def _fetch(url: str, max_bytes: int) -> bytes:
    """GET a public http(s) URL: no redirects followed, size and time bounded.

    The connection goes to the very address that was checked (the name is resolved once): a name that
    answers a public address for the check and a private one for the connection (DNS rebinding) cannot
    steer the request inside. For https the certificate is still checked against the name."""
    import urllib3

    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    address = _public_address(parts.hostname or "", port)
    timeout = urllib3.Timeout(connect=FETCH_TIMEOUT, read=FETCH_TIMEOUT)
    if https:
        pool = urllib3.HTTPSConnectionPool(address, port, timeout=timeout, retries=False, cert_reqs="CERT_REQUIRED",
                                           ca_certs=_ca_bundle(), server_hostname=parts.hostname,
                                           assert_hostname=parts.hostname)
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        response = pool.urlopen("GET", target, headers={"Host": parts.netloc, "User-Agent": "aigc-studio"},
                                redirect=False, preload_content=False)
        try:
            if response.status != 200:
                raise bad_request(f"fetching {parts.netloc} answered HTTP {response.status}")
            data = b""
            for chunk in response.stream(1 << 16):
                data += chunk
                if len(data) > max_bytes:
                    raise bad_request(f"the file at {parts.netloc} is larger than {max_bytes >> 20} MB",
                                      kind="InvalidFileSizeError")
            return data
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError:
        raise bad_request(f"could not fetch the file from {parts.netloc}") from None
    finally:
        pool.close()


def _ca_bundle() -> str:
    """The certificates to trust: the ones ``requests`` would use (its environment variables, then certifi's)."""
    import os

    import certifi

    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where()


def _data_url(url: str, max_bytes: int) -> tuple[bytes, str]:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise bad_request("malformed data: URL")
    mime = header.split(";")[0].lower() or "text/plain"
    if len(payload) > max_bytes * 4 // 3 + 8:
        raise bad_request(f"the data: URL holds more than {max_bytes >> 20} MB", kind="InvalidFileSizeError")
    try:
        data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        raise bad_request("the data: URL is not valid base64") from None
    return data, mime


# ---------------------------------------------------------------- the API


class DidApi:
    """The FastAPI app and everything behind it; ``runtime`` is the studio's (shared model cache)."""

    def __init__(self, config: AppConfig, runtime=None):
        from pipelines.core.runtime import Runtime

        self.config = config
        self.runtime = runtime or Runtime.from_config(config, strict=True)
        self.store = TalkStore(self.runtime.outputs_dir / "did")
        self.worker = RenderWorker(config.heavy_concurrency)
        self.open_to_others = bool(config.auth) or not is_loopback_host(config.host)
        if not config.auth and self.open_to_others:
            log.warning("The D-ID API under /did answers other computers without a password (--host %s, no --auth).",
                        config.host)
        self.app = self._build()

    # ---- access
    def caller(self, request: Request) -> Caller:
        client = request.client.host if request.client else None
        if not self.open_to_others and not is_loopback_host(client):
            raise ApiError(403, "PermissionError", "this studio's D-ID API answers this computer only; start the "
                                                   "studio with --auth user:password to open it to others")
        credentials = parse_basic(request.headers.get("authorization"))
        if self.config.auth:
            for user, password in self.config.credentials:  # --auth may name several users
                if credentials is not None and secrets.compare_digest(credentials[0].encode(), user.encode()) \
                        and secrets.compare_digest(credentials[1].encode(), password.encode()):
                    return Caller("u_" + hashlib.sha256(user.encode()).hexdigest()[:16])
            raise ApiError(401, "AuthorizationError", "user unauthenticated")
        if credentials is None:
            return Caller("anonymous")
        return Caller("k_" + hashlib.sha256(":".join(credentials).encode()).hexdigest()[:16])

    # ---- files
    def _store_image(self, owner: str, data: bytes, mime: str) -> tuple[str, Path, list]:
        """Check and keep an uploaded image (re-encoded as PNG, EXIF rotation applied); returns (id, path, size)."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        if len(data) > MAX_IMAGE_BYTES:
            raise bad_request(f"the image is larger than {MAX_IMAGE_BYTES >> 20} MB", kind="InvalidFileSizeError")
        if mime and mime.lower() not in IMAGE_TYPES:
            raise ApiError(415, "UnsupportedMimeTypeError", "The provided mime type is not supported",
                           {"received": mime, "supported": ["image/jpeg", "image/png"]})
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise bad_request(f"the image is {image.width}x{image.height}; at most {MAX_IMAGE_PIXELS // 10**6} "
                                  "megapixels are accepted", kind="InvalidImageResolutionError")
            if image.format not in ("JPEG", "PNG"):
                raise ApiError(415, "UnsupportedMimeTypeError", "The provided mime type is not supported",
                               {"received": (image.format or "unknown").lower(), "supported": ["image/jpeg", "image/png"]})
            image = ImageOps.exif_transpose(image).convert("RGB")
        except Image.DecompressionBombError:
            raise bad_request(f"the image has more than {MAX_IMAGE_PIXELS // 10**6} megapixels",
                              kind="InvalidImageResolutionError") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise bad_request("invalid image: not a JPEG or PNG that can be read") from None
        if min(image.size) < 64:
            raise bad_request(f"the image is {image.width}x{image.height}; at least 64 px on each side are needed",
                              kind="InvalidImageResolutionError")
        image_id = _new_id("img")
        path = self.store.folder(owner) / "images" / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            image.save(tmp, format="PNG")
        return image_id, path, list(image.size)

    def _store_audio(self, owner: str, data: bytes, mime: str) -> tuple[str, Path, float]:
        import tempfile

        from pipelines.core.media import load_audio, write_wav

        if len(data) > MAX_AUDIO_BYTES:
            raise bad_request(f"the audio is larger than {MAX_AUDIO_BYTES >> 20} MB", kind="InvalidFileSizeError")
        if mime and not mime.lower().startswith(("audio/", "video/")) and mime.lower() != "application/octet-stream":
            raise ApiError(415, "UnsupportedMimeTypeError", "The provided mime type is not supported",
                           {"received": mime, "supported": ["audio/*", "video/*"]})
        with tempfile.TemporaryDirectory(prefix="did-upload-") as folder:
            raw = Path(folder) / "upload"
            raw.write_bytes(data)
            try:
                samples, rate = load_audio(raw, sample_rate=16000)  # D-ID keeps uploads as 16 kHz WAV
            except UserError:
                raise bad_request("invalid audio: not a sound file that can be decoded") from None
        seconds = len(samples) / rate
        if seconds < 0.2 or seconds > MAX_AUDIO_SECONDS:
            raise bad_request(f"the audio is {seconds:.1f} s long; between 0.2 s and {MAX_AUDIO_SECONDS / 60:.0f} "
                              "minutes are accepted", kind="InvalidAudioDurationError")
        audio_id = _new_id("aud")
        path = self.store.folder(owner) / "audios" / f"{audio_id}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            write_wav(tmp, samples, rate)
        return audio_id, path, round(seconds, 3)

    def _own_file(self, owner: str, kind: str, ref: str, request: Request) -> Path | None:
        """The owner's uploaded file that ``ref`` names (an id, or this studio's URL for it); None if none."""
        folder, suffix, prefix = {"image": ("images", ".png", "img"), "audio": ("audios", ".wav", "aud")}[kind]
        name = ref
        if "://" in ref:
            parts = urlsplit(ref)
            match = re.fullmatch(rf"{re.escape(PREFIX)}/{folder}/({prefix}_[A-Za-z0-9]+){re.escape(suffix)}", parts.path)
            if not match or not self._is_this_studio(parts, request):
                return None
            name = match.group(1)
        if not _ID.match(name) or not name.startswith(prefix):
            return None
        path = self.store.folder(owner) / folder / f"{name}{suffix}"
        if not path.is_file():
            where = "source_url" if kind == "image" else "script.audio_url"
            raise bad_request(f"{where}: {kind} {name} not found (uploads are kept for this caller only)")
        return path

    def _is_this_studio(self, parts, request: Request) -> bool:
        here = request.url
        return parts.netloc == here.netloc or (is_loopback_host(parts.hostname) and (parts.port or 80) == here.port)

    def _resolve_source(self, owner: str, source_url: str, request: Request) -> Path:
        own = self._own_file(owner, "image", source_url, request)
        if own is not None:
            return own
        if source_url.startswith("data:"):
            data, mime = _data_url(source_url, MAX_IMAGE_BYTES)
            return self._store_image(owner, data, mime)[1]
        parts = urlsplit(source_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad_request("source_url must be an http(s) URL, a data: URL, or an image id/url from POST /images "
                              "(file paths and other schemes are not accepted)")
        if self._is_this_studio(parts, request) or is_loopback_host(parts.hostname):
            raise bad_request("source_url points at this studio but not at an image uploaded with POST /images")
        return self._store_image(owner, _fetch(source_url, MAX_IMAGE_BYTES), "")[1]

    def _resolve_audio(self, owner: str, audio_url: str, request: Request) -> Path:
        own = self._own_file(owner, "audio", audio_url, request)
        if own is not None:
            return own
        parts = urlsplit(audio_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or is_loopback_host(parts.hostname) \
                or self._is_this_studio(parts, request):
            raise bad_request("script.audio_url must be a url/id from POST /audios or a public http(s) URL")
        return self._store_audio(owner, _fetch(audio_url, MAX_AUDIO_BYTES), "")[1]

    def _voice(self, provider: Provider | None) -> str | None:
        """The studio voice for a D-ID voice id (None: "auto", the language of the script picks)."""
        from pipelines.twin.did_client import DID_VOICES

        if provider is None or provider.voice_id in (v for voices in DID_VOICES.values() for v in voices):
            return None
        from pipelines.voice.synthesis import list_voices

        if provider.voice_id in list_voices(self.runtime):
            return provider.voice_id
        known = ", ".join(v for voices in DID_VOICES.values() for v in voices)
        raise bad_request(f"unknown voice_id {provider.voice_id!r}; voices: {known} (or a studio voice name)")

    # ---- a talk
    def _create_talk(self, caller: Caller, body: CreateTalk, request: Request) -> dict:
        # 1. Everything that needs no file or network first, so a bad request leaves nothing behind
        if body.webhook is not None:
            raise bad_request("webhook is not supported by this studio: poll GET /talks/{id} instead")
        if body.result_url is not None:
            raise bad_request("result_url is not supported by this studio: the video is kept here")
        engine = body.engine or DEFAULT_ENGINE
        if engine == "did":
            raise bad_request("engine 'did' renders on D-ID itself; call D-ID for that")
        engines = [spec.name for spec in self.runtime.catalog.models("twin") if spec.name != "did"]
        if engine not in engines:
            raise bad_request(f"unknown engine {engine!r}; engines: {', '.join(engines)}")
        script, job = body.script, {"engine": engine, "output_size": "photo" if body.config.stitch else "face"}
        if isinstance(script, TextScript):
            text = script.input.strip()
            if script.ssml:
                raise bad_request("script.ssml is not supported: send plain text")
            if not MIN_SCRIPT_CHARS <= len(text) <= MAX_SCRIPT_CHARS:
                raise bad_request(f"script.input must be {MIN_SCRIPT_CHARS} to {MAX_SCRIPT_CHARS} characters long "
                                  f"(got {len(text)})")
            job.update(script=text, voice=self._voice(script.provider), subtitles=script.subtitles)
        else:
            job.update(script="", audio=str(self._resolve_audio(caller.owner, script.audio_url, request)),
                       subtitles=False)
        # 2. The photo (uploaded, inline or fetched)
        job["photo"] = str(self._resolve_source(caller.owner, body.source_url, request))
        # 3. The talk, queued for the worker
        now = _now()
        record = {"id": _new_id("tlk"), "object": "talk", "user_id": caller.owner, "created_by": caller.owner,
                  "created_at": now, "modified_at": now, "status": "created",
                  "source_url": body.source_url if not body.source_url.startswith("data:") else "data:",
                  "config": body.config.model_dump(), "engine": engine}
        if isinstance(script, AudioScript):
            record["audio_url"] = script.audio_url
        record.update({k: v for k, v in (("user_data", body.user_data), ("name", body.name)) if v is not None})
        talk = Talk(record, caller.owner, self.store.folder(caller.owner), secrets.token_urlsafe(24), job)
        self.store.add(talk)
        try:
            self.worker.submit(lambda: self._render(talk))
        except ApiError:
            self.store.delete(talk)
            raise
        return {k: record[k] for k in ("id", "object", "created_by", "created_at", "status")}

    def _render(self, talk: Talk) -> None:
        from pipelines.face.landmarks import detect_faces
        from pipelines.twin import pipeline as twin

        if talk.deleted:
            return
        job = talk.job
        talk.record.update(status="started", started_at=_now(), modified_at=_now())
        talk.save()
        error = None
        try:
            try:  # D-ID reports a photo without a usable face as a FaceError
                twin.choose_face(detect_faces(twin.load_photo(job["photo"]), runtime=self.runtime), None)
            except UserError as exc:
                raise _TalkFailed("FaceError", exc.message) from None
            talk.video.parent.mkdir(parents=True, exist_ok=True)
            result = twin.create_twin_video(
                job["photo"], script=job.get("script", ""), voice=job.get("voice"), audio=job.get("audio"),
                output_size=job["output_size"], subtitles=bool(job.get("subtitles")), ai_label=True,
                engine=job["engine"], consent=True, out=talk.video, runtime=self.runtime, stop=talk.stop)
        except Stopped:
            return  # deleted while rendering: DELETE already removed the record; the partial video is gone
        except _TalkFailed as exc:
            error = {"kind": exc.kind, "description": exc.description}
        except UserError as exc:
            error = {"kind": "BadRequestError", "description": exc.message}
        except Exception:  # noqa: BLE001 - reported on the talk; the details go to the log only
            log.exception("D-ID API talk %s failed", talk.id)
            error = {"kind": "UnknownError", "description": "internal error while rendering"}
        if talk.deleted:
            self.store.delete(talk)
            return
        if error:
            talk.record.update(status="error", error=error, modified_at=_now())
        else:
            talk.record.update(status="done", modified_at=_now(), duration=round(result.seconds, 3),
                               metadata={"resolution": [result.width, result.height], "num_frames": result.frames,
                                         "fps": result.fps, "size_kib": round(talk.video.stat().st_size / 1024, 1)})
        talk.save()

    def _public(self, talk: Talk, request: Request) -> dict:
        record = dict(talk.record)
        if record["status"] == "done":
            base = str(request.base_url).rstrip("/")
            record["result_url"] = f"{base}{PREFIX}/results/{talk.owner}/{talk.id}.mp4?token={talk.token}"
        return record

    # ---- routes
    def _build(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="D-ID-compatible API")

        @app.exception_handler(ApiError)
        async def api_error(request, exc: ApiError):
            return exc.response()

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request, exc: StarletteHTTPException):
            kind = {404: "NotFoundError", 405: "MethodNotAllowedError"}.get(exc.status_code, "BadRequestError")
            return ApiError(exc.status_code, kind, str(exc.detail).lower()).response()

        @app.exception_handler(Exception)
        async def internal_error(request, exc: Exception):
            log.exception("D-ID API error")
            return ApiError(500, "InternalServerError", "internal error").response()

        @app.middleware("http")
        async def body_limit(request: Request, call_next):
            length = request.headers.get("content-length", "")
            limit = MAX_JSON_BYTES + 2**20
            if request.method in ("POST", "PUT", "PATCH") and not length.isdigit():
                return bad_request("a Content-Length header is required").response()  # bounded bodies only
            if length.isdigit() and int(length) > limit:
                return bad_request(f"the request is larger than {limit >> 20} MB", kind="InvalidFileSizeError").response()
            return await call_next(request)

        async def read_upload(request: Request, field_name: str) -> tuple[bytes, str]:
            try:
                form = await request.form(max_files=1, max_fields=8)
            except Exception:  # noqa: BLE001 - anything the multipart parser refuses is a bad request
                raise bad_request(f"expected a multipart/form-data body with a '{field_name}' file") from None
            upload = form.get(field_name)
            if upload is None or isinstance(upload, str):
                raise bad_request(f"missing the '{field_name}' file (multipart/form-data)")
            data = await upload.read()
            return data, upload.content_type or ""

        @app.post("/images", status_code=201)
        async def upload_image(request: Request):
            caller = self.caller(request)
            data, mime = await read_upload(request, "image")
            image_id, _path, size = await run_in_threadpool(self._store_image, caller.owner, data, mime)
            base = str(request.base_url).rstrip("/")
            return JSONResponse({"id": image_id, "url": f"{base}{PREFIX}/images/{image_id}.png"}, status_code=201)

        @app.post("/audios", status_code=201)
        async def upload_audio(request: Request):
            caller = self.caller(request)
            data, mime = await read_upload(request, "audio")
            audio_id, _path, seconds = await run_in_threadpool(self._store_audio, caller.owner, data, mime)
            base = str(request.base_url).rstrip("/")
            return JSONResponse({"id": audio_id, "url": f"{base}{PREFIX}/audios/{audio_id}.wav", "duration": seconds},
                                status_code=201)

        @app.post("/talks", status_code=201)
        async def create_talk(request: Request):
            caller = self.caller(request)
            raw = await request.body()
            try:
                payload = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise bad_request("the request body is not valid JSON") from None
            if not isinstance(payload, dict):
                raise bad_request("the request body must be a JSON object")
            try:
                body = CreateTalk.model_validate(payload)
            except ValidationError as exc:
                raise _validation_error(exc) from None
            created = await run_in_threadpool(self._create_talk, caller, body, request)
            return JSONResponse(created, status_code=201)

        @app.get("/talks")
        def list_talks(request: Request, limit: str = "100", token: str | None = None):
            caller = self.caller(request)
            try:
                count = int(float(limit))
                start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
            except (ValueError, binascii.Error, UnicodeDecodeError):
                raise bad_request("limit must be a number and token one returned by GET /talks") from None
            if not 1 <= count <= 100 or start < 0:
                raise bad_request("limit must be between 1 and 100")
            talks = self.store.list(caller.owner)
            page = talks[start:start + count]
            body: dict = {"talks": [self._public(t, request) for t in page]}
            if start + count < len(talks):
                body["token"] = base64.urlsafe_b64encode(str(start + count).encode()).decode()
            return body

        @app.get("/talks/{talk_id}")
        def get_talk(talk_id: str, request: Request):
            caller = self.caller(request)
            return self._public(self.store.get(caller.owner, talk_id), request)

        @app.delete("/talks/{talk_id}")
        def delete_talk(talk_id: str, request: Request):
            caller = self.caller(request)
            talk = self.store.get(caller.owner, talk_id)
            talk.stop.stop()  # a render in progress stops at its next frame and discards the partial video
            self.store.delete(talk)
            return {}

        @app.get("/results/{owner}/{talk_id}.mp4")
        def result(owner: str, talk_id: str, request: Request, token: str = ""):
            """A pre-signed link (like D-ID's S3 links): the secret token in it is the permission."""
            client = request.client.host if request.client else None
            if not self.open_to_others and not is_loopback_host(client):
                raise ApiError(403, "PermissionError", "this studio's D-ID API answers this computer only")
            if not re.fullmatch(r"(u|k)_[0-9a-f]{16}|anonymous", owner) or not _ID.match(talk_id):
                raise ApiError(404, "NotFoundError", "not found")
            talk = self.store.get(owner, talk_id)
            if not secrets.compare_digest(token.encode(), talk.token.encode()) \
                    or talk.record["status"] != "done" or not talk.video.is_file():
                raise ApiError(404, "NotFoundError", "not found")
            return FileResponse(talk.video, media_type="video/mp4", filename=f"{talk.id}.mp4")

        @app.get("/credits")
        def credits(request: Request):
            self.caller(request)
            # Renders here cost nothing: report a large constant balance in D-ID's shape.
            return {"credits": [], "remaining": 1e6, "total": 1e6}

        return app


class _TalkFailed(Exception):
    def __init__(self, kind: str, description: str):
        super().__init__(description)
        self.kind, self.description = kind, description


# ---------------------------------------------------------------- mounting on the studio


class _MountedOnStudio:
    """The ASGI app at ``/did``: built on first request, sharing the runtime (model cache) of the Gradio
    app it is mounted on, which only exists once ``launch()`` has made it."""

    def __init__(self, config: AppConfig):
        self.config = config
        self.api: DidApi | None = None
        self._lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if self.api is None:
            with self._lock:
                if self.api is None:
                    self.api = DidApi(self.config, _studio_runtime(scope.get("app")))
        await self.api.app(scope, receive, send)


def _studio_runtime(app):
    with contextlib.suppress(Exception):
        return app.get_blocks().studio_context.runtime
    return None


def mount(config: AppConfig) -> Mount:
    """The route to add to the studio's FastAPI app: ``app_kwargs={"routes": [mount(config)]}``."""
    return Mount(PREFIX, app=_MountedOnStudio(config))
