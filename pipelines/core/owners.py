"""Whose files are whose: every person's profiles, recordings, videos and texts live in a folder of their own,
``outputs/users/<owner>/``, named so that nobody can guess another person's folder.

An owner is one of:
- a private profile key the person holds (``k-…``): kept by their browser, or sent by a script as the
  ``X-Profile-Key`` header; the same key on another device opens the same folder;
- a signed-in user name when the studio runs with ``--auth`` (``u-…``);
- an anonymous session (``a-…``): its folder expires after ``--anonymous-ttl-hours``;
- ``shared``: everyone, when the host opted in to a shared gallery (``--shared-gallery``).

Folder names are HMAC-SHA256 digests of the key (or user name, or session) under a secret kept in
``outputs/.studio-secret``: they reveal nothing and cannot be derived without that secret.
This module knows nothing of HTTP or Gradio (``aigc_ui/sessions.py`` maps requests to owners).
"""
from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

USERS_FOLDER = "users"
SECRET_FILE = ".studio-secret"
SHARED = "shared"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-]{20,128}$")  # what new_key makes: 32 URL-safe characters
OWNER_PATTERN = re.compile(r"^(shared|[kua]-[0-9a-f]{32})$")


def new_key() -> str:
    """A fresh private profile key (192 random bits)."""
    return secrets.token_urlsafe(24)


def valid_key(key: str | None) -> bool:
    return bool(key) and KEY_PATTERN.fullmatch(key.strip()) is not None


def load_secret(outputs_dir: Path) -> bytes:
    """The studio's secret (created on first start, readable only by the studio's user)."""
    path = Path(outputs_dir) / SECRET_FILE
    with contextlib.suppress(OSError):
        value = path.read_bytes().strip()
        if len(value) >= 32:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    tmp = path.with_name(f".{path.name}.partial.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    try:
        os.link(tmp, path)  # never replaces a secret another process wrote first
    except FileExistsError:
        value = path.read_bytes().strip()
    finally:
        tmp.unlink()
    return value


def owner_id(secret: bytes, kind: str, value: str) -> str:
    """``kind``: "k" (profile key), "u" (user name) or "a" (anonymous session)."""
    if kind not in ("k", "u", "a"):
        raise ValueError(f"unknown owner kind {kind!r}")
    digest = hmac.new(secret, f"{kind}:{value}".encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:32]}"


def owner_dir(outputs_dir: Path, owner: str) -> Path:
    if not OWNER_PATTERN.fullmatch(owner):
        raise ValueError(f"not an owner id: {owner!r}")
    return Path(outputs_dir) / USERS_FOLDER / owner


def owner_of_path(outputs_dir: Path, path: str | Path) -> str | None:
    """The owner whose folder holds ``path`` (after resolving ``..`` and links); None when it is in no
    owner's folder (elsewhere under outputs/, or outside it)."""
    root = (Path(outputs_dir) / USERS_FOLDER).resolve()
    try:
        parts = Path(os.path.realpath(path)).relative_to(root).parts
    except (ValueError, OSError):
        return None
    return parts[0] if len(parts) >= 2 and OWNER_PATTERN.fullmatch(parts[0]) else None


def inside(folder: Path, path: str | Path) -> bool:
    """Is ``path`` (resolved) inside ``folder`` (resolved)?"""
    try:
        Path(os.path.realpath(path)).relative_to(Path(folder).resolve())
        return True
    except (ValueError, OSError):
        return False


def delete_owner_data(outputs_dir: Path, owner: str) -> int:
    """Delete everything an owner made; returns how many files went."""
    folder = owner_dir(outputs_dir, owner)
    if not folder.is_dir():
        return 0
    count = sum(1 for p in folder.rglob("*") if p.is_file())
    # Move it aside first (one rename): a listing running at the same time sees all or nothing
    doomed = folder.with_name(f".{owner}.partial.{secrets.token_hex(4)}")
    os.replace(folder, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return count


def last_activity(folder: Path) -> float:
    """The newest modification time of the folder or anything in it."""
    newest = folder.stat().st_mtime
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, path.stat().st_mtime)
    return newest


def expire_anonymous(outputs_dir: Path, ttl_seconds: float, now: float | None = None,
                     keep: set[str] | frozenset = frozenset()) -> list[str]:
    """Delete the folders of anonymous sessions idle for longer than ``ttl_seconds`` (except ``keep``:
    owners with a job running). Returns the owners removed."""
    root = Path(outputs_dir) / USERS_FOLDER
    if ttl_seconds <= 0 or not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for folder in root.glob("a-*"):
        if folder.name in keep or not OWNER_PATTERN.fullmatch(folder.name):
            continue
        with contextlib.suppress(OSError):
            if now - last_activity(folder) > ttl_seconds:
                delete_owner_data(outputs_dir, folder.name)
                removed.append(folder.name)
    if removed:
        log.info("expired the outputs of %d anonymous session(s)", len(removed))
    return removed
