"""Where a D-ID API key lives while the studio uses it, and (only when asked) on disk.

- A browser session's key is kept in memory (:class:`SessionKeys`), per session: it is gone when the
  studio stops, and one session never sees another's.
- "Remember on this computer" writes it to the user's config directory (``AIGC_CONFIG_DIR``, else the
  platform's, e.g. ``~/.config/aigc-studio``) in a file only its owner may read (mode 0600), one file per
  studio user (``local`` when the studio has no login).
- Scripts and the CLI use ``AIGC_DID_API_KEY``, else the remembered ``local`` key.

A render is given its key with ``with use_key(key): create_twin_video(..., engine="did")``: a context
variable, so a key set by one request is never seen by another thread's or another session's render.
What it does not: talk to D-ID (``did_client`` does) or show anything (the twin tab does).
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import stat
import threading
from pathlib import Path
from typing import Iterator

from ..core.errors import UserError
from .did_client import API_KEY_ENV, ApiKey

log = logging.getLogger(__name__)

CONFIG_DIR_ENV = "AIGC_CONFIG_DIR"
LOCAL_OWNER = "local"
_UNSET = object()
_current: contextvars.ContextVar = contextvars.ContextVar("did_api_key", default=_UNSET)


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("aigc-studio", appauthor=False))


def key_file(owner: str = LOCAL_OWNER) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", owner or LOCAL_OWNER)[:64].lstrip(".") or LOCAL_OWNER
    return config_dir() / "did" / f"{safe}.key"


# ---------------------------------------------------------------- remembered on this computer


def remember_key(key: ApiKey, owner: str = LOCAL_OWNER) -> Path:
    """Store the key for ``owner`` in a file only its owner can read (created 0600, replaced atomically)."""
    path = key_file(owner)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(key.authorization().removeprefix("Basic ") + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def remembered_key(owner: str = LOCAL_OWNER) -> ApiKey | None:
    path = key_file(owner)
    try:
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("Ignoring the remembered D-ID key: %s is readable by other users (chmod 600 it).", path)
            return None
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return ApiKey(text) if text else None
    except UserError:
        return None


def forget_key(owner: str = LOCAL_OWNER) -> bool:
    try:
        key_file(owner).unlink()
        return True
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------- one browser session's key, in memory


class SessionKeys:
    """Keys by browser session, in memory only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}

    def set(self, session: str, key: ApiKey | None) -> None:
        with self._lock:
            if key is None:
                self._keys.pop(session, None)
            else:
                self._keys[session] = key

    def get(self, session: str) -> ApiKey | None:
        with self._lock:
            return self._keys.get(session)


# ---------------------------------------------------------------- the key a render uses


@contextlib.contextmanager
def use_key(key: ApiKey | None) -> Iterator[None]:
    """Renders inside the block use ``key`` (None: this caller has none; nothing else is tried)."""
    token = _current.set(key)
    try:
        yield
    finally:
        _current.reset(token)


def environment_key() -> ApiKey | None:
    """The studio's own key, ``AIGC_DID_API_KEY`` (set by whoever runs it), if any."""
    env = os.environ.get(API_KEY_ENV, "").strip()
    if env:
        try:
            return ApiKey(env)
        except UserError:
            log.warning("%s is set but is not a usable key.", API_KEY_ENV)
    return None


def default_key() -> ApiKey | None:
    """For scripts: ``AIGC_DID_API_KEY``, else the key remembered for ``local``."""
    return environment_key() or remembered_key(LOCAL_OWNER)


def current_key() -> ApiKey:
    """The key for the render running now: the one given with :func:`use_key`, else :func:`default_key`."""
    key = _current.get()
    if key is _UNSET:
        key = default_key()
    if key is None:
        raise UserError("The D-ID engine needs your D-ID API key: enter it in the engine settings (or set "
                        f"{API_KEY_ENV}). Get one at D-ID Studio → Account settings → API key.",
                        zh="D-ID 引擎需要你的 D-ID API 密钥：请在引擎设置中输入（或设置 "
                           f"{API_KEY_ENV}）。可在 D-ID Studio → 账户设置 → API 密钥获取。")
    return key


def key_configured() -> bool:
    """Is a key available without asking anyone (environment or remembered)? For the catalog's availability."""
    return bool(os.environ.get(API_KEY_ENV, "").strip()) or key_file(LOCAL_OWNER).is_file()
