"""Downloads from the Hugging Face hub into models/, for the model manager (the Models tab and
``python -m pipelines.models``). No UI here: progress goes to a typed callback, Cancel is a StopToken.

How one download goes (:func:`download`):

1. the hub says which commit is current and lists the repo's files with their sizes and hashes
   (``/api/models/{repo}/revision/{rev}``, then ``/api/models/{repo}/tree/{commit}``); only the files
   the plan names are kept (``allow_patterns``), so decoys such as ``flax_model.msgpack`` never come;
2. the free disk space is checked before anything is written;
3. each file comes through ``huggingface_hub.hf_hub_download`` into ``models/.downloads/<name>/``
   (plain HTTP: a dropped connection is resumed by the library with a Range request, and Cancel
   stops between chunks);
4. every file is checked against the listing: its size, and its SHA-256 (LFS files) or git blob SHA-1;
5. only then is the model moved into ``models/<task>/...`` (a rename on the same disk), where the
   catalog finds it on its next look, without a restart. ``models/.downloaded/<name>.json`` records
   what was installed, so Remove deletes exactly that.

After a Cancel, a lost connection or a crash, whole files stay in ``models/.downloads/<name>/`` and the
next download of the same model goes on from there; a half-written file is never kept (the library
deletes its temporary file; stale ones are removed before starting). A token (gated models) goes to
the hub with this one download's requests and is never written anywhere.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator
from urllib.parse import urlparse

from .errors import Stopped, UserError
from .jobs import StopToken, check_stop

DEFAULT_ENDPOINT = "https://huggingface.co"
UNFINISHED_FOLDER = ".downloads"  # models/.downloads/<name>/: downloads under way or interrupted
MANIFEST_FOLDER = ".downloaded"  # models/.downloaded/<name>.json: what a finished download installed
DISK_MARGIN_BYTES = 64 * 2**20  # keep some room free beyond the download itself
CONNECT_TIMEOUT_S = 5.0
PROGRESS_EVERY_S = 0.25


# ---------------------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class HubFiles:
    """Some files of one hub repo, and where they go under models/."""

    repo_id: str
    patterns: tuple[str, ...]  # which files: shell patterns on the repo path (``*`` also crosses "/")
    into: str  # folder under models/ ("image/sd-turbo"; "text" for a single GGUF file)
    revision: str = "main"
    rename: tuple[tuple[str, str], ...] = ()  # (old, new) replaced in each repo path, in order
    required: tuple[str, ...] = ()  # patterns that must each match a file, or the plan is out of date

    def destination(self, repo_path: str) -> str:
        for old, new in self.rename:
            repo_path = repo_path.replace(old, new)
        return str(PurePosixPath(self.into) / repo_path)


@dataclass(frozen=True)
class DownloadPlan:
    """One model the manager can download: one or more repos' files into one place under models/."""

    name: str  # the catalog name
    parts: tuple[HubFiles, ...]
    target: str  # the file or folder under models/ that is the model once installed
    size_mb: float  # what the hub listed when the plan was written; downloads use the live listing

    @property
    def repo_id(self) -> str:
        return self.parts[0].repo_id

    def target_path(self, models_dir: Path) -> Path:
        return Path(models_dir) / self.target

    def installed(self, models_dir: Path) -> bool:
        return self.target_path(models_dir).exists()


@dataclass(frozen=True)
class RemoteFile:
    """A file as the hub lists it: what to fetch and what it must hash to."""

    part: HubFiles
    commit: str
    path: str  # in the repo
    size: int
    sha256: str | None  # LFS files
    blob_id: str  # git blob SHA-1 (what regular files are checked against)

    @property
    def destination(self) -> str:
        return self.part.destination(self.path)


# ---------------------------------------------------------------------------------------- progress
@dataclass(frozen=True)
class DownloadProgress:
    name: str
    done_bytes: int
    total_bytes: int
    bytes_per_second: float = 0.0
    seconds_left: float | None = None
    phase: str = "downloading"  # downloading | checking | installing
    file: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 0.0

    def text(self, language: str = "en") -> str:
        zh = language.startswith("zh")
        if self.phase == "checking":
            return "正在校验文件……" if zh else "Checking the files…"
        if self.phase == "installing":
            return "正在安装……" if zh else "Installing…"
        parts = [f"{human_size(self.done_bytes)} / {human_size(self.total_bytes)}"]
        if self.bytes_per_second > 0:
            parts.append(f"{human_size(self.bytes_per_second)}/s")
        if self.seconds_left is not None:
            parts.append(("约剩 " if zh else "about ") + human_duration(self.seconds_left, language)
                         + ("" if zh else " left"))
        return " · ".join(parts)


ProgressCallback = Callable[[DownloadProgress], None]


def human_size(n: float) -> str:
    """Decimal units, as the hub shows sizes."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e8:
        return f"{n / 1e6:.0f} MB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.0f} kB"


def human_duration(seconds: float, language: str = "en") -> str:
    zh = language.startswith("zh")
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} 小时 {minutes} 分钟" if zh else f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} 分 {secs} 秒" if zh else f"{minutes} min {secs} s"
    return f"{secs} 秒" if zh else f"{secs} s"


class _Tracker:
    """Adds up the bytes huggingface_hub reports, works out speed and time left, and stops on Cancel."""

    def __init__(self, name: str, total: int, done: int, on_progress: ProgressCallback | None,
                 stop: StopToken | None):
        self.name, self.total, self.done = name, total, done
        self.on_progress, self.stop = on_progress, stop
        self.samples: deque[tuple[float, int]] = deque([(time.monotonic(), done)])
        self.last_emit = 0.0
        self.file = ""
        self.fetched = 0  # bytes that came over the network in this run

    def advance(self, n: int) -> None:
        if self.stop is not None and self.stop.stopped:
            raise Stopped()  # raised inside the library's read loop: it deletes its partial file
        self.done += n
        self.fetched += n
        self.emit()

    def set_done(self, done: int) -> None:
        self.done = done
        self.emit(force=True)

    def emit(self, force: bool = False, phase: str = "downloading") -> None:
        now = time.monotonic()
        if self.on_progress is None or (not force and now - self.last_emit < PROGRESS_EVERY_S):
            return
        self.last_emit = now
        self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[0][0] > 5.0:  # speed over the last ~5 s
            self.samples.popleft()
        t0, d0 = self.samples[0]
        speed = (self.done - d0) / (now - t0) if now - t0 > 0.2 and self.done > d0 else 0.0
        left = (self.total - self.done) / speed if speed > 0 else None
        self.on_progress(DownloadProgress(self.name, self.done, self.total, speed, left, phase, self.file))

    def bar_class(self) -> type:
        """A stand-in for tqdm that huggingface_hub creates per file and reports bytes to."""
        tracker = self

        class _Bar:
            def __init__(self, *args, **kwargs):
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def update(self, n=1):
                tracker.advance(int(n or 0))

            def close(self):
                pass

            def refresh(self, *args, **kwargs):
                pass

            def set_postfix_str(self, *args, **kwargs):
                pass

            def set_description(self, *args, **kwargs):
                pass

        return _Bar


# ---------------------------------------------------------------------------------------- local state
@dataclass(frozen=True)
class LocalState:
    installed: bool  # the model is in models/ (downloaded here or put there by hand)
    downloaded_here: bool  # installed by the manager: Remove may delete it
    partial_bytes: int  # whole files of an unfinished download waiting in models/.downloads/
    downloading: bool  # a download of it is running in this process


_running: set[str] = set()
_running_lock = threading.Lock()


def unfinished_dir(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / UNFINISHED_FOLDER / name


def manifest_path(models_dir: Path, name: str) -> Path:
    return Path(models_dir) / MANIFEST_FOLDER / f"{name}.json"


def local_state(plan: DownloadPlan, models_dir: Path) -> LocalState:
    work = unfinished_dir(models_dir, plan.name)
    partial = sum(f.stat().st_size for f in work.rglob("*") if f.is_file() and ".cache" not in f.parts
                  and not f.name.endswith(".incomplete")) if work.is_dir() else 0
    with _running_lock:
        running = plan.name in _running
    return LocalState(plan.installed(models_dir), manifest_path(models_dir, plan.name).is_file(), partial, running)


# ---------------------------------------------------------------------------------------- the hub
def hub_endpoint(endpoint: str | None = None) -> str:
    """The hub to use: the argument, else HF_ENDPOINT (a mirror), else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline_mode() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return flag in ("1", "true", "yes", "on") or (flag == "" and constants.HF_HUB_OFFLINE)


def no_connection_error(endpoint: str) -> UserError:
    host = urlparse(endpoint).hostname or endpoint
    return UserError(
        f"No connection to the model hub ({host}). Check the internet connection (or HF_ENDPOINT); "
        "nothing was downloaded or changed.",
        zh=f"无法连接模型中心（{host}）。请检查网络连接（或 HF_ENDPOINT）；没有下载或改动任何文件。")


def check_connection(endpoint: str) -> None:
    """Fail fast, with a clear message, when the hub cannot be reached (no long library retries)."""
    if _offline_mode():
        raise UserError("Offline mode is on (HF_HUB_OFFLINE=1): no connection to the model hub. "
                        "Nothing was downloaded.",
                        zh="离线模式已开启（HF_HUB_OFFLINE=1）：无法连接模型中心。没有下载任何文件。")
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError:
        raise no_connection_error(endpoint) from None


def list_files(plan: DownloadPlan, endpoint: str, token: str | None = None) -> list[RemoteFile]:
    """The files the plan needs, as the hub lists them now (commit, size, hashes)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import filter_repo_objects

    api = HfApi(endpoint=endpoint, token=token or None)
    files: list[RemoteFile] = []
    for part in plan.parts:
        with _explained(part, token, endpoint):
            commit = api.model_info(part.repo_id, revision=part.revision).sha
            tree = [e for e in api.list_repo_tree(part.repo_id, revision=commit, recursive=True)
                    if isinstance(e, RepoFile)]
        wanted = _prefer_safetensors(list(filter_repo_objects(tree, allow_patterns=list(part.patterns),
                                                              key=lambda e: e.path)))
        missing = [p for p in part.required if not any(fnmatchcase(e.path, p) for e in wanted)]
        if missing or not wanted:
            raise UserError(
                f"{part.repo_id} on the hub no longer has {', '.join(missing) or 'the files this list names'}: "
                "this model's download entry needs an update. Nothing was downloaded.",
                zh=f"模型中心上的 {part.repo_id} 已没有 {', '.join(missing) or '清单列出的文件'}：此模型的下载条目需要更新。"
                   "没有下载任何文件。")
        files += [RemoteFile(part, commit, e.path, int(e.size), e.lfs.sha256 if e.lfs else None, e.blob_id)
                  for e in wanted]
    return files


def _prefer_safetensors(entries: list) -> list:
    """When a folder has the weights as .safetensors, skip the pickled copies (.bin/.pth/.ckpt) beside them."""
    folders_with_safetensors = {PurePosixPath(e.path).parent for e in entries if e.path.endswith(".safetensors")}
    return [e for e in entries if not (PurePosixPath(e.path).suffix in (".bin", ".pth", ".ckpt")
                                       and PurePosixPath(e.path).parent in folders_with_safetensors)]


@contextlib.contextmanager
def _explained(part: HubFiles, token: str | None, endpoint: str, path: str = "") -> Iterator[None]:
    """Turn what huggingface_hub and the network raise into one clear message (English and Chinese)."""
    import httpx2
    from huggingface_hub import errors

    repo = part.repo_id
    page = f"{DEFAULT_ENDPOINT}/{repo}"
    try:
        yield
    except (Stopped, UserError):
        raise
    except errors.GatedRepoError:
        raise _token_error(repo, page, token) from None
    except errors.RepositoryNotFoundError:
        raise UserError(f"The model hub has no repository {repo} (or it is private). Nothing was downloaded.",
                        zh=f"模型中心没有仓库 {repo}（或它是私有的）。没有下载任何文件。") from None
    except errors.RevisionNotFoundError:
        raise UserError(f"{repo} has no revision '{part.revision}'. Nothing was downloaded.",
                        zh=f"{repo} 没有版本“{part.revision}”。没有下载任何文件。") from None
    except errors.RemoteEntryNotFoundError:
        raise UserError(f"{path} is gone from {repo}: this model's download entry needs an update.",
                        zh=f"{repo} 中已没有 {path}：此模型的下载条目需要更新。") from None
    except errors.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else 0
        if status in (401, 403):
            raise _token_error(repo, page, token) from None
        raise UserError(f"The model hub answered with an error (HTTP {status}) for {repo}. Try again later; "
                        "whole files already fetched are kept.",
                        zh=f"模型中心对 {repo} 返回错误（HTTP {status}）。请稍后再试；已完整下载的文件会保留。") from None
    except (httpx2.TransportError, errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled):
        raise UserError(
            "Lost the connection to the model hub. Whole files already fetched are kept: Download again to "
            "continue. Nothing was installed.",
            zh="与模型中心的连接已断开。已完整下载的文件会保留：再次点击下载即可继续。没有安装任何内容。") from None
    except OSError as exc:
        if "Consistency check failed" in str(exc):  # the library's own size check
            raise UserError(f"{path} arrived with the wrong size; nothing was installed. Download again.",
                            zh=f"{path} 下载后的大小不对；没有安装任何内容。请重新下载。") from None
        if getattr(exc, "errno", None) == 28:  # ENOSPC
            raise UserError("The disk is full; nothing was installed. Free some space, then Download again.",
                            zh="磁盘已满；没有安装任何内容。请腾出空间后重新下载。") from None
        raise


def _token_error(repo: str, page: str, token: str | None) -> UserError:
    if token:
        return UserError(
            f"The access token does not open {repo}. Sign in on {page} with the account the token belongs to, "
            "accept the model's terms, and check that the token may read gated repositories.",
            zh=f"该访问令牌无法访问 {repo}。请用令牌所属的账号登录 {page}，接受模型条款，并确认令牌有读取受限仓库的权限。")
    return UserError(
        f"{repo} is a gated model: accept its terms on {page}, then paste an access token "
        "(huggingface.co/settings/tokens) in the token field. The token is used for this download only "
        "and never saved.",
        zh=f"{repo} 是受限模型：请先在 {page} 接受其条款，然后在令牌栏粘贴访问令牌"
           "（huggingface.co/settings/tokens）。令牌只用于这次下载，不会被保存。")


_switch_lock = threading.Lock()
_switch_users = 0
_switch_saved: tuple = ()
READ_SIZE = 2**20  # bytes per read: progress moves (and a dropped connection resumes) in 1 MB steps, not 10


@contextlib.contextmanager
def _plain_http() -> Iterator[None]:
    """Plain HTTP in 1 MB reads while our downloads run. The Xet path reports progress from native
    threads and cannot be stopped between chunks; HTTP can, and resumes with a Range request. The hub
    serves every file over HTTP too. (Process-wide settings of huggingface_hub, restored when the last
    of our downloads ends.)"""
    global _switch_users, _switch_saved
    from huggingface_hub import constants

    with _switch_lock:
        if _switch_users == 0:
            _switch_saved = (constants.HF_HUB_DISABLE_XET, constants.DOWNLOAD_CHUNK_SIZE)
            constants.HF_HUB_DISABLE_XET, constants.DOWNLOAD_CHUNK_SIZE = True, READ_SIZE
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                constants.HF_HUB_DISABLE_XET, constants.DOWNLOAD_CHUNK_SIZE = _switch_saved


# ---------------------------------------------------------------------------------------- download
@dataclass
class DownloadResult:
    name: str
    path: Path  # the installed file or folder
    files: list[str]  # installed, relative to models/
    total_bytes: int
    fetched_bytes: int  # came over the network in this run (the rest was kept from an earlier run)
    seconds: float
    commits: dict[str, str] = field(default_factory=dict)  # repo -> commit downloaded


def free_disk_bytes(folder: Path) -> int:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _already_installed(plan: DownloadPlan) -> UserError:
    return UserError(f"{plan.name} is already installed (models/{plan.target}). Remove it first to download it again.",
                     zh=f"{plan.name} 已安装（models/{plan.target}）。如需重新下载，请先移除。")


def download(plan: DownloadPlan, models_dir: Path, *, token: str | None = None, stop: StopToken | None = None,
             on_progress: ProgressCallback | None = None, endpoint: str | None = None,
             free_bytes: Callable[[Path], int] = free_disk_bytes) -> DownloadResult:
    """Download ``plan`` from the hub and install it under ``models_dir`` (see the module docstring).

    Raises UserError with a clear message (already installed, already downloading, no connection,
    gated, not enough disk space, a file that fails its check...), or Stopped after a Cancel.
    """
    from filelock import FileLock, Timeout

    models_dir = Path(models_dir)
    if plan.installed(models_dir):
        raise _already_installed(plan)
    with _running_lock:
        if plan.name in _running:
            raise _already_downloading(plan)
        _running.add(plan.name)
    try:
        endpoint = hub_endpoint(endpoint)
        check_connection(endpoint)
        files = list_files(plan, endpoint, token)  # network only: nothing is written before this works
        work = unfinished_dir(models_dir, plan.name)
        total = sum(f.size for f in files)
        kept = sum(f.size for f in files if _whole(work, f))
        need, free = total - kept + DISK_MARGIN_BYTES, free_bytes(models_dir)
        if need > free:
            raise UserError(
                f"Not enough free disk space for {plan.name}: it needs {human_size(need)} "
                f"(with a little room to spare), and {human_size(free)} is free. Nothing was downloaded.",
                zh=f"磁盘空间不足，无法下载 {plan.name}：需要 {human_size(need)}（含少量余量），"
                   f"当前可用 {human_size(free)}。没有下载任何文件。")
        work.mkdir(parents=True, exist_ok=True)
        lock_file = work.parent / f"{plan.name}.lock"
        lock = FileLock(str(lock_file))  # another process (the CLI) may try too
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise _already_downloading(plan) from None
        try:
            if plan.installed(models_dir):  # finished by another process meanwhile
                raise _already_installed(plan)
            with _plain_http():
                result = _download(plan, files, models_dir, work, token, stop, on_progress, endpoint, total, kept)
        finally:
            lock.release()
        lock_file.unlink(missing_ok=True)  # done: nothing of this download is left in .downloads/
        with contextlib.suppress(OSError):
            work.parent.rmdir()  # when no other download is under way
        return result
    finally:
        with _running_lock:
            _running.discard(plan.name)


def _already_downloading(plan: DownloadPlan) -> UserError:
    return UserError(f"{plan.name} is already being downloaded. Wait for it to finish, or Cancel it first.",
                     zh=f"{plan.name} 正在下载中。请等待完成，或先取消。")


def _part_dir(work: Path, part: HubFiles) -> Path:
    return work / "hub" / part.repo_id.replace("/", "--")


def _local(work: Path, f: RemoteFile) -> Path:
    return _part_dir(work, f.part) / f.path


def _whole(work: Path, f: RemoteFile) -> bool:
    path = _local(work, f)
    return path.is_file() and path.stat().st_size == f.size


def _download(plan: DownloadPlan, files: list[RemoteFile], models_dir: Path, work: Path, token: str | None,
              stop: StopToken | None, on_progress: ProgressCallback | None, endpoint: str,
              total: int, kept: int) -> DownloadResult:
    from huggingface_hub import hf_hub_download

    started = time.monotonic()
    for stale in work.rglob("*.incomplete"):  # left by a process that was killed mid-file
        stale.unlink(missing_ok=True)
    shutil.rmtree(work / "staged", ignore_errors=True)
    tracker = _Tracker(plan.name, total, kept, on_progress, stop)
    tracker.set_done(kept)
    done = kept
    for f in files:
        check_stop(stop)
        if _whole(work, f):
            continue
        tracker.file = f.path
        with _explained(f.part, token, endpoint, f.path):
            hf_hub_download(f.part.repo_id, f.path, revision=f.commit, local_dir=_part_dir(work, f.part),
                            endpoint=endpoint, token=token or None, tqdm_class=tracker.bar_class())
        done += f.size
        tracker.set_done(done)  # exact, whatever the library reported (a copy from the hub cache reports nothing)
    tracker.emit(force=True, phase="checking")
    _verify(files, work)
    check_stop(stop)
    tracker.emit(force=True, phase="installing")
    installed = _install(plan, files, models_dir, work)
    commits = {f.part.repo_id: f.commit for f in files}
    _write_manifest(models_dir, plan, installed, commits, total)
    shutil.rmtree(work, ignore_errors=True)
    return DownloadResult(plan.name, plan.target_path(models_dir), installed, total, tracker.fetched,
                          time.monotonic() - started, commits)


def _verify(files: list[RemoteFile], work: Path) -> None:
    """Every file against the hub's listing; a bad one is deleted (the next try fetches it again)."""
    from huggingface_hub.utils.sha import git_hash, sha_fileobj

    for f in files:
        path = _local(work, f)
        size = path.stat().st_size if path.is_file() else -1
        if size != f.size:
            actual, expected = f"{size} bytes", f"{f.size} bytes"
        elif f.sha256:
            with path.open("rb") as stream:
                actual, expected = sha_fileobj(stream).hex(), f.sha256.lower()
        else:
            actual, expected = git_hash(path.read_bytes()), f.blob_id.lower()
        if actual != expected:
            path.unlink(missing_ok=True)
            raise UserError(
                f"{f.path} from {f.part.repo_id} does not match what the hub lists (expected {expected}, got {actual}). "
                "It was deleted and nothing was installed: Download again.",
                zh=f"来自 {f.part.repo_id} 的 {f.path} 与模型中心列出的不一致（应为 {expected}，实际 {actual}）。"
                   "该文件已删除，没有安装任何内容：请重新下载。")


def _install(plan: DownloadPlan, files: list[RemoteFile], models_dir: Path, work: Path) -> list[str]:
    """Arrange the files as the model's folder layout, then move it into models/ in one rename
    (files beside the target, such as a voice's .onnx.json, go first)."""
    staged = work / "staged"
    for f in files:
        dest = staged / f.destination
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(_local(work, f), dest)
    target = staged / plan.target
    if not target.exists():
        raise UserError(f"The download entry of {plan.name} puts nothing at models/{plan.target}; it needs fixing.",
                        zh=f"{plan.name} 的下载条目没有把文件放到 models/{plan.target}，需要修正。")
    installed = []
    beside = [p for p in sorted(staged.rglob("*")) if p.is_file() and p != target and target not in p.parents]
    for item in beside + [target]:
        relative = item.relative_to(staged).as_posix()
        dest = models_dir / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(item, dest)
        installed.append(relative)
    return installed


def _write_manifest(models_dir: Path, plan: DownloadPlan, installed: list[str], commits: dict[str, str],
                    total: int) -> None:
    path = manifest_path(models_dir, plan.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"name": plan.name, "installed": installed, "commits": commits, "bytes": total,
              "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------- remove
def remove(plan: DownloadPlan, models_dir: Path) -> list[str]:
    """Delete what the manager installed for ``plan`` (or its unfinished download). Returns what went,
    relative to models/. Models put in models/ by hand are left alone."""
    models_dir = Path(models_dir)
    with _running_lock:
        if plan.name in _running:
            raise UserError(f"{plan.name} is being downloaded: Cancel it first.",
                            zh=f"{plan.name} 正在下载：请先取消。")
    removed: list[str] = []
    manifest = manifest_path(models_dir, plan.name)
    if manifest.is_file():
        root = models_dir.resolve()
        for relative in json.loads(manifest.read_text(encoding="utf-8")).get("installed", []):
            path = (models_dir / relative).resolve()
            if root not in path.parents:  # never delete outside models/, whatever the file says
                continue
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            removed.append(relative)
        _remove_empty_parents(models_dir, plan.target)
        manifest.unlink()
    work = unfinished_dir(models_dir, plan.name)
    if work.is_dir():
        shutil.rmtree(work)
        removed.append(f"{UNFINISHED_FOLDER}/{plan.name}")
    if not removed:
        if plan.installed(models_dir):
            raise UserError(f"{plan.name} was put in models/{plan.target} by hand, not downloaded here: "
                            "delete it there yourself if you want it gone.",
                            zh=f"{plan.name} 是手动放入 models/{plan.target} 的，不是在这里下载的："
                               "如需删除，请自行在该位置删除。")
        raise UserError(f"{plan.name} is not downloaded.", zh=f"{plan.name} 尚未下载。")
    return removed


def _remove_empty_parents(models_dir: Path, target: str) -> None:
    """After a bundle (twin/musetalk/...) goes, drop folders it left empty, up to the task folder."""
    parent = (models_dir / target).parent
    while parent != models_dir and len(parent.relative_to(models_dir).parts) > 1:
        with contextlib.suppress(OSError):
            parent.rmdir()
        parent = parent.parent
