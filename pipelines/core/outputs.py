"""Where generated files go: unique names under outputs/<task>/, written atomically (a crash, a full disk
or a Stop never leaves a half-written file behind), with the generation parameters beside them.

A file and its ``.json`` sidecar are one pair: both are written under temporary names (``.NAME.partial.*``)
and moved into place together only when both are complete, so a reader never finds one without the other.
``remove_partial_files`` clears what a crash (kill -9, power cut) left in the middle of a write.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

from .errors import Stopped, UserError

log = logging.getLogger(__name__)

PARTIAL_MARK = ".partial."  # in every temporary name: ``.NAME.partial.RANDOM.SUFFIX``
SIDECAR_SUFFIX = ".json"
# A sidecar "X.mp4.json" whose "X.mp4" is missing is an orphan (a crash between the two moves)
PAIRED_SUFFIXES = (".mp4", ".wav", ".mp3", ".txt", ".png", ".gif", ".jpg", ".webp")
_NO_ROOM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_ROOM_WORDS = ("no space left", "disk quota", "file too large")


class NoRoomError(UserError):
    """The disk (or the studio's file-size limit) is full: nothing was kept."""

    def __init__(self):
        super().__init__("The disk is full, so nothing was saved. Free some space (or ask the host to) and try again.",
                         zh="磁盘已满，因此没有保存任何内容。请腾出空间（或请主机管理员处理）后重试。")


def new_output_path(outputs_dir: Path, task: str, suffix: str, stem: str = "") -> Path:
    folder = Path(outputs_dir) / task
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{stem + '-' if stem else ''}{uuid.uuid4().hex[:12]}{suffix}"
    return folder / name


def partial_name(final: Path) -> Path:
    """A hidden temporary name beside ``final``, unique per writer: ``.NAME.partial.RANDOM.SUFFIX``."""
    final = Path(final)
    return final.with_name(f".{final.stem}{PARTIAL_MARK}{secrets.token_hex(4)}{final.suffix}")


def sidecar_of(output: Path) -> Path:
    return output.with_name(output.name + SIDECAR_SUFFIX)


@contextlib.contextmanager
def atomic_path(final: Path, params: dict | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; it becomes ``final`` only if the block succeeds.

    With ``params``, ``final``'s JSON sidecar is written too (the dict as it is when the block ends) and
    the two are moved into place together: the sidecar first, then the file (moves take no space, so a
    full disk fails before either). A full disk raises :class:`NoRoomError`; nothing is left behind.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(final)
    sidecar_tmp = partial_name(sidecar_of(final)) if params is not None else None
    try:
        yield tmp
        if sidecar_tmp is not None:
            _write_json(sidecar_tmp, params)
            os.replace(sidecar_tmp, sidecar_of(final))
        os.replace(tmp, final)
    except BaseException as exc:
        # A write that failed (not a Stop, not a bad input): was it for want of room?
        if isinstance(exc, Exception) and not isinstance(exc, (UserError, Stopped)) and \
                any(is_no_room(exc, final.parent, p) for p in (tmp, sidecar_tmp) if p is not None):
            raise NoRoomError() from exc
        raise
    finally:
        for path in (tmp, sidecar_tmp):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, ensure_ascii=False, indent=2, default=str))
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk (or the disk said no) before the rename


def write_json_atomic(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        _write_json(tmp, data)


def write_params(output: Path, params: dict) -> Path:
    """Save generation parameters as ``<output>.json`` (for formats that cannot carry them inside).
    Prefer ``atomic_path(output, params=...)``, which writes the file and its parameters as one pair."""
    sidecar = sidecar_of(output)
    write_json_atomic(sidecar, params)
    return sidecar


def is_no_room(exc: BaseException, folder: Path | None = None, path: Path | None = None) -> bool:
    """Did ``exc`` (or what caused it) happen because the disk, a quota or the file-size limit was full?

    Libraries say it in different ways: an OSError with ENOSPC, ffmpeg's "No space left on device" in a
    RuntimeError, libsndfile's bare "System error": then the free space on ``folder`` decides, or the
    size of the file being written (``path``) against the process's file-size limit (``ulimit -f``).
    Ask before deleting the unfinished file: it still takes the space it took.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, NoRoomError):
            return True
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM_ERRNOS:
            return True
        if any(word in str(exc).lower() for word in _NO_ROOM_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__
    if folder is not None:
        with contextlib.suppress(OSError):
            if shutil.disk_usage(folder).free < 1 << 20:
                return True
    return path is not None and _at_file_size_limit(Path(path))


def _at_file_size_limit(path: Path) -> bool:
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return limit != resource.RLIM_INFINITY and path.stat().st_size >= limit - (64 << 10)
    except (ImportError, OSError, ValueError):
        return False


def remove_partial_files(outputs_dir: Path) -> int:
    """Start-up clean-up after a crash: delete every ``.*.partial.*`` file or folder under ``outputs_dir``
    and sidecars whose file is missing. Returns how many were removed."""
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        return 0
    removed = 0
    for path in sorted(outputs_dir.rglob(f".*{PARTIAL_MARK}*"), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    for sidecar in outputs_dir.rglob("*" + SIDECAR_SUFFIX):
        main = sidecar.with_name(sidecar.name[: -len(SIDECAR_SUFFIX)])
        if main.suffix.lower() in PAIRED_SUFFIXES and not main.exists():
            with contextlib.suppress(OSError):
                sidecar.unlink()
                removed += 1
    if removed:
        log.info("removed %d unfinished file(s) left under %s by an interrupted job", removed, outputs_dir)
    return removed
