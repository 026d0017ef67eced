"""Who is asking, and what is theirs: each browser session and API client gets an owner
(``pipelines.core.owners``) and works only in that owner's outputs folder.

- Browsers: on the first visit a private profile key is made and kept in the browser
  (``gr.BrowserState``); the "Your data" panel shows it, to copy to another device and paste back.
- Scripts: send a key of their own as the ``X-Profile-Key`` header (gradio_client:
  ``Client(url, headers={"X-Profile-Key": key})``); without one, a client is an anonymous session,
  recognised by the ``aigc-session`` cookie the studio sets (gradio_client keeps it).
- With ``--auth``, the signed-in user name is the owner; with ``--shared-gallery`` everyone shares one.

Files: outputs in owners' folders are served in place (``gr.set_static_paths``), and ``SessionMiddleware``
answers a request for one of them only when it comes from its owner (the session cookie, or the key header);
nothing else under outputs/ is served directly (other tabs' results reach the page as copies in Gradio's
cache, under unguessable names). Files sent back as inputs are checked the same way (``check_input``).
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
import threading
import weakref
from dataclasses import replace
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import unquote

from pipelines.core import owners
from pipelines.core.errors import UserError
from pipelines.core.runtime import Runtime
from pipelines.core.settings import AppConfig

log = logging.getLogger(__name__)

COOKIE = "aigc-session"
KEY_HEADER = "x-profile-key"
BROWSER_KEY_STORAGE = "aigc-studio-profile-key"
MAX_BINDINGS = 100_000  # sessions remembered in memory (oldest forgotten first)


def _header(request, name: str) -> str:
    headers = getattr(request, "headers", None)
    if headers is None:
        return ""
    with contextlib.suppress(Exception):
        return (headers.get(name) or headers.get(name.title()) or "").strip()
    return ""


def _cookie(cookie_header: str, name: str = COOKIE) -> str:
    with contextlib.suppress(Exception):
        jar = SimpleCookie()
        jar.load(cookie_header or "")
        if name in jar:
            value = jar[name].value
            return value if 16 <= len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum() else ""
    return ""


class Sessions:
    """Maps requests to owners; keeps which key each browser session holds (in memory: a browser sends its
    key again on every page load)."""

    def __init__(self, config: AppConfig):
        self.config = config
        self.outputs_dir = Path(config.outputs_dir)
        self.secret = owners.load_secret(self.outputs_dir)
        self._bound: dict[str, str] = {}  # session reference -> owner id, insertion-ordered
        self._lock = threading.Lock()

    # ---- who
    @property
    def mode(self) -> str:
        """How owners are told apart here: "shared", "user" (--auth) or "key"."""
        if self.config.shared_gallery:
            return "shared"
        return "user" if self.config.auth else "key"

    def browser_secret(self) -> str:
        """For gr.BrowserState: stable across restarts (so a browser's key survives them), derived from the
        studio's secret without revealing it (the page itself holds this value)."""
        return hmac.new(self.secret, b"browser-state", hashlib.sha256).hexdigest()[:32]

    def session_ref(self, request) -> str:
        """This browser (or client) session: its cookie, else Gradio's session hash."""
        token = _cookie(_header(request, "cookie"))
        if token:
            return "c:" + token
        session = getattr(request, "session_hash", None)
        return f"s:{session}" if session else "local"

    def owner(self, request) -> str:
        """The owner whose files this request may see and change."""
        if self.config.shared_gallery:
            return owners.SHARED
        username = getattr(request, "username", None)
        if self.config.auth and username:
            owner = owners.owner_id(self.secret, "u", username)
            self._bind(request, owner)  # so that this session's file requests are recognised as the user's
            return owner
        key = _header(request, KEY_HEADER)
        if key:
            if not owners.valid_key(key):
                raise UserError("The profile key is not valid: it has 20 to 128 letters, digits, - or _.",
                                zh="档案密钥无效：应为 20 到 128 个字母、数字、- 或 _。")
            return owners.owner_id(self.secret, "k", key.strip())
        ref = self.session_ref(request)
        with self._lock:
            bound = self._bound.get(ref)
        return bound or owners.owner_id(self.secret, "a", ref)

    def is_anonymous(self, request) -> bool:
        return self.owner(request).startswith("a-")

    def bind_key(self, request, key: str) -> str:
        """This session now acts as the holder of ``key`` (a browser restoring or pasting its key)."""
        if not owners.valid_key(key):
            raise UserError("This is not a profile key: it has 20 to 128 letters, digits, - or _.",
                            zh="这不是有效的档案密钥：应为 20 到 128 个字母、数字、- 或 _。")
        owner = owners.owner_id(self.secret, "k", key.strip())
        self._bind(request, owner)
        return owner

    def bind_user(self, request) -> None:
        """With --auth: remember which user this session is, for its file requests."""
        self.owner(request)

    def _bind(self, request, owner: str) -> None:
        ref = self.session_ref(request)
        with self._lock:
            self._bound.pop(ref, None)
            self._bound[ref] = owner
            while len(self._bound) > MAX_BINDINGS:
                self._bound.pop(next(iter(self._bound)))

    def file_owners(self, cookie_header: str, key_header: str) -> set[str]:
        """The owners a plain HTTP request (a file download) speaks for."""
        if self.config.shared_gallery:
            return {owners.SHARED}
        found = set()
        if owners.valid_key(key_header):
            found.add(owners.owner_id(self.secret, "k", key_header.strip()))
        token = _cookie(cookie_header)
        if token:
            ref = "c:" + token
            found.add(owners.owner_id(self.secret, "a", ref))
            with self._lock:
                if ref in self._bound:
                    found.add(self._bound[ref])
        return found

    # ---- where
    def folder(self, request) -> Path:
        folder = owners.owner_dir(self.outputs_dir, self.owner(request))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def runtime_for(self, runtime: Runtime, request) -> Runtime:
        """``runtime`` writing into this request's owner folder (same model cache and catalog)."""
        return replace(runtime, outputs_dir=self.folder(request))

    def check_input(self, request, *paths) -> None:
        """A file sent as an input must not be another person's: uploads and the studio's assets are fine,
        files under outputs/ only when they are in the caller's own folder. Refused files get the same
        answer as a missing one."""
        mine = owners.owner_dir(self.outputs_dir, self.owner(request))
        for path in paths:
            if not path or not isinstance(path, (str, os.PathLike)):
                continue
            if owners.inside(self.outputs_dir, path) and not owners.inside(mine, path):
                raise UserError(f"File not found: {Path(str(path)).name}", zh=f"找不到文件：{Path(str(path)).name}")

    def delete_everything(self, request) -> int:
        """Delete all this owner made; returns how many files went (nothing for a shared gallery)."""
        owner = self.owner(request)
        if owner == owners.SHARED:
            raise UserError("This studio keeps one shared gallery: delete profiles and videos one by one.",
                            zh="本工作室使用共享画廊：请逐个删除档案和视频。")
        return owners.delete_owner_data(self.outputs_dir, owner)

    # ---- who may administer
    def is_host(self, request) -> bool:
        """The studio's host: an --admin-user, or a browser on the studio's own computer (not through a
        share link or a proxy, which make everyone look local)."""
        username = getattr(request, "username", None)
        if username and username in self.config.admin_users:
            return True
        if self.config.share or _header(request, "x-forwarded-for") or _header(request, "forwarded"):
            return False
        from api.did import is_loopback_host  # the one loopback test (the D-ID API's too)

        client = getattr(request, "client", None)
        return is_loopback_host(getattr(client, "host", None))

    # ---- clean-up
    def expire_anonymous(self) -> list[str]:
        return owners.expire_anonymous(self.outputs_dir, self.config.anonymous_ttl_hours * 3600)

    def start_expiry(self) -> None:
        """Expire anonymous outputs now and then periodically (every quarter of the TTL, at most hourly)."""
        ttl = self.config.anonymous_ttl_hours * 3600
        if ttl <= 0:
            return
        self.expire_anonymous()
        interval = max(60.0, min(ttl / 4, 3600.0))
        ref = weakref.ref(self)

        def loop():
            stop = threading.Event()
            while not stop.wait(interval):
                sessions = ref()
                if sessions is None:
                    return  # the studio is gone
                with contextlib.suppress(Exception):
                    sessions.expire_anonymous()
                del sessions

        threading.Thread(target=loop, name="aigc-expire-anonymous", daemon=True).start()


# ---------------------------------------------------------------- HTTP: session cookie and file checks
FILE_ROUTE_MARKERS = ("/file=", "/file/")


class SessionMiddleware:
    """Gives every client a session cookie, and refuses file requests for outputs that are not the
    requester's. (Pure ASGI: streaming responses pass through untouched.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        cookie_header = headers.get(b"cookie", b"").decode("latin-1")
        sessions = _sessions_of(scope.get("app"))
        if sessions is not None:
            target = _requested_file(scope.get("path", ""))
            if target is not None and owners.inside(sessions.outputs_dir, target):
                key = headers.get(KEY_HEADER.encode(), b"").decode("latin-1")
                owner = owners.owner_of_path(sessions.outputs_dir, target)
                if owner is None or owner not in sessions.file_owners(cookie_header, key):
                    await _forbidden(send)
                    return
        session_hash = _heartbeat_session(scope.get("path", ""))
        if session_hash is not None:
            await _watch_heartbeat(self.app, scope, receive, send, session_hash)
            return
        if _cookie(cookie_header):
            await self.app(scope, receive, send)
            return
        token = secrets.token_urlsafe(24)
        # The request itself already speaks for the new session, so a client's first call is consistent
        cookie = f"{cookie_header}; {COOKIE}={token}" if cookie_header else f"{COOKIE}={token}"
        scope = dict(scope, headers=[(k, v) for k, v in scope.get("headers", []) if k.lower() != b"cookie"]
                     + [(b"cookie", cookie.encode("latin-1"))])
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        set_cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{secure}".encode()

        async def with_cookie(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"set-cookie", set_cookie)])
            await send(message)

        await self.app(scope, receive, with_cookie)


def _heartbeat_session(path: str) -> str | None:
    """The session of a browser tab's heartbeat stream (``/gradio_api/heartbeat/SESSION``)."""
    marker = "/heartbeat/"
    at = path.find(marker)
    session = path[at + len(marker):].strip("/") if at >= 0 else ""
    return session if session and "/" not in session else None


async def _watch_heartbeat(app, scope, receive, send, session_hash: str) -> None:
    """A tab keeps its heartbeat stream open while it lives. Gradio notices a closed stream only when it next
    writes to it (every 15 s), so watch for the disconnect here: when the tab goes, its jobs are cancelled at
    once (they stop within a second and keep nothing). Gradio's own unload events still follow."""
    messages: asyncio.Queue = asyncio.Queue()

    async def watch():
        while True:
            message = await receive()
            await messages.put(message)
            if message["type"] == "http.disconnect":
                context = _studio_context(scope.get("app"))
                if context is not None:
                    context.jobs.cancel_session(_SessionOnly(session_hash))
                return

    watcher = asyncio.create_task(watch())
    try:
        await app(scope, messages.get, send)
    finally:
        watcher.cancel()


class _SessionOnly:
    """What JobRegistry needs of a request: its session."""

    def __init__(self, session_hash: str):
        self.session_hash = session_hash


def _requested_file(path: str) -> str | None:
    """The file a Gradio file route asks for (``/gradio_api/file=PATH``, ``/gradio_api/file/PATH``)."""
    for marker in FILE_ROUTE_MARKERS:
        at = path.find(marker)
        if at >= 0:
            target = unquote(path[at + len(marker):])
            if target and not target.startswith(("http://", "https://")):
                return target
    return None


async def _forbidden(send) -> None:
    body = b'{"detail": "File not allowed."}'
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _studio_context(app):
    with contextlib.suppress(Exception):
        return app.get_blocks().studio_context
    return None


def _sessions_of(app) -> Sessions | None:
    context = _studio_context(app)
    return getattr(context, "sessions", None)
