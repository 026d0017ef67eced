"""A stand-in for the Hugging Face hub on 127.0.0.1, serving repos built in the tests, with the hub's
URL layout and the headers huggingface_hub reads (see its file_download.py and hf_api.py):

- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: repo info (``sha``, ``siblings``, ``gated``);
- ``GET /api/models/{repo}/tree/{rev}?recursive=...``: the file listing (``oid``, ``size``, ``lfs.oid``
  = SHA-256), paginated with a ``Link: <...>; rel="next"`` header like the hub's cursor pages;
- ``HEAD/GET /{repo}/resolve/{rev}/{path}``: small files answer with ``X-Repo-Commit``, ``ETag`` (the git
  blob SHA-1) and ``Content-Length``; LFS files answer ``302`` to a "CDN" on another origin
  (``localhost`` instead of ``127.0.0.1``, still loopback) with ``X-Linked-Size`` and ``X-Linked-Etag``;
- the CDN serves bytes with ``Range`` support (``206`` + ``Content-Range``);
- errors as the hub sends them: ``401`` + ``X-Error-Code: RepoNotFound`` / ``GatedRepo``,
  ``404`` + ``RevisionNotFound`` / ``EntryNotFound``.

Knobs for failures: ``drop_once`` (close the connection halfway through a file, once), ``corrupt``
(serve other bytes of the same size), ``truncate`` (serve fewer bytes than listed), ``hold`` (file
bodies wait for an event). Every request is recorded in ``requests``.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".onnx", ".msgpack", ".h5", ".pth", ".ckpt", ".tflite", ".ot")
HOLD_TIMEOUT_S = 20  # a held body never waits longer than this


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class FakeRepo:
    repo_id: str
    files: dict[str, bytes]
    gated: bool = False
    commit: str = ""

    def __post_init__(self):
        self.commit = self.commit or hashlib.sha1(self.repo_id.encode()).hexdigest()

    def is_lfs(self, path: str) -> bool:
        return path.endswith(LFS_SUFFIXES)

    def tree(self) -> list[dict]:
        folders = sorted({str(p) for path in self.files for p in Path(path).parents if str(p) != "."})
        entries = [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f}
                   for f in folders]
        for path, data in sorted(self.files.items()):
            entry = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
            if self.is_lfs(path):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return sorted(entries, key=lambda e: e["path"])


@dataclass
class Request:
    method: str
    path: str
    range: str | None
    authorized: bool


@dataclass
class FakeHub:
    token: str = "hf_fake_token_for_tests"
    page_size: int = 3
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    drop_once: set[str] = field(default_factory=set)  # "repo/path"
    corrupt: set[str] = field(default_factory=set)
    truncate: set[str] = field(default_factory=set)
    hold: threading.Event | None = None
    chunk_delay_s: float = 0.0  # pause between 64 kB chunks (to see speed and time left)

    def add_repo(self, repo_id: str, files: dict[str, bytes], gated: bool = False) -> FakeRepo:
        self.repos[repo_id] = FakeRepo(repo_id, dict(files), gated)
        return self.repos[repo_id]

    def add_folder(self, repo_id: str, folder: Path, extra: dict[str, bytes] | None = None,
                   gated: bool = False) -> FakeRepo:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
                 if p.is_file()}
        return self.add_repo(repo_id, {**files, **(extra or {})}, gated)

    # ------------------------------------------------------------------ server
    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def cdn(self) -> str:
        return f"http://localhost:{self.port}"  # another origin, so the client treats it as a CDN

    def fetched(self, kind: str = "") -> list[str]:
        """Paths of resolve/cdn requests (``kind``: "resolve" or "cdn"), e.g. to check decoys were never asked."""
        return [r.path for r in self.requests if f"/{kind}" in r.path] if kind else [r.path for r in self.requests]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, *args):  # quiet
        pass

    # ------------------------------------------------------------------ routing
    def do_HEAD(self):
        self._route(head=True)

    def do_GET(self):
        self._route(head=False)

    def _route(self, head: bool):
        url = urlparse(self.path)
        path = unquote(url.path)
        authorized = self.headers.get("authorization", "") == f"Bearer {self.fake.token}"
        self.fake.requests.append(Request(self.command, path, self.headers.get("Range"), authorized))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = self._repo("/".join(parts[2:4]))
            if repo is None:
                return
            rest = parts[4:]
            if not rest:
                return self._info(repo, "main")
            if rest[0] == "revision" and len(rest) == 2:
                return self._info(repo, rest[1])
            if rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo, rest[1], parse_qs(url.query))
        elif parts[0] == "cdn" and len(parts) >= 4:
            repo = self.fake.repos.get("/".join(parts[1:3]))
            file_path = "/".join(parts[3:])
            if repo is not None and file_path in repo.files:
                return self._body(repo, file_path, head)
        elif len(parts) >= 5 and parts[2] == "resolve":
            repo = self._repo("/".join(parts[:2]))
            if repo is None:
                return
            return self._resolve(repo, parts[3], "/".join(parts[4:]), authorized, head)
        self._error(404, "EntryNotFound", "Not found")

    def _repo(self, repo_id: str) -> FakeRepo | None:
        repo = self.fake.repos.get(repo_id)
        if repo is None:  # the hub answers 401 for missing repos (it does not tell them from private ones)
            self._error(401, "RepoNotFound", "Repository not found")
        return repo

    def _revision_ok(self, repo: FakeRepo, revision: str) -> bool:
        if revision in ("main", repo.commit):
            return True
        self._error(404, "RevisionNotFound", "Invalid rev id: " + revision)
        return False

    # ------------------------------------------------------------------ api
    def _info(self, repo: FakeRepo, revision: str):
        if not self._revision_ok(repo, revision):
            return
        self._json({"_id": repo.commit[:24], "id": repo.repo_id, "modelId": repo.repo_id, "sha": repo.commit,
                    "private": False, "gated": "manual" if repo.gated else False, "disabled": False,
                    "downloads": 0, "likes": 0, "tags": [], "lastModified": "2024-09-19T00:00:00.000Z",
                    "siblings": [{"rfilename": p} for p in sorted(repo.files)]})

    def _tree(self, repo: FakeRepo, revision: str, query: dict):
        if not self._revision_ok(repo, revision):
            return
        entries = repo.tree()
        if query.get("recursive", ["False"])[0].lower() != "true":
            entries = [e for e in entries if "/" not in e["path"]]
        start = int(query.get("cursor", ["0"])[0])
        page = entries[start:start + self.fake.page_size]
        headers = {}
        if start + self.fake.page_size < len(entries):
            recursive = query.get("recursive", ["False"])[0]
            next_url = (f"{self.fake.url}/api/models/{repo.repo_id}/tree/{revision}"
                        f"?recursive={recursive}&expand=False&cursor={start + self.fake.page_size}")
            headers["Link"] = f'<{next_url}>; rel="next"'
        self._json(page, headers)

    # ------------------------------------------------------------------ files
    def _resolve(self, repo: FakeRepo, revision: str, file_path: str, authorized: bool, head: bool):
        if not self._revision_ok(repo, revision):
            return
        if repo.gated and not authorized:
            return self._error(401, "GatedRepo", f"Access to model {repo.repo_id} is restricted. You must have "
                                                 "access to it and be authenticated to access it. Please log in.")
        if file_path not in repo.files:
            return self._error(404, "EntryNotFound", f"{file_path} does not exist on \"{revision}\"")
        data = repo.files[file_path]
        if repo.is_lfs(file_path):
            sha = hashlib.sha256(data).hexdigest()
            self.send_response(302)
            for name, value in {"Location": f"{self.fake.cdn}/cdn/{repo.repo_id}/{quote(file_path)}",
                                "X-Repo-Commit": repo.commit, "X-Linked-Size": str(len(data)),
                                "X-Linked-Etag": f'"{sha}"', "ETag": f'"{git_blob_sha1(data)}"',
                                "Content-Length": "0"}.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._body(repo, file_path, head, {"X-Repo-Commit": repo.commit, "ETag": f'"{git_blob_sha1(data)}"'})

    def _body(self, repo: FakeRepo, file_path: str, head: bool, extra: dict | None = None):
        key = f"{repo.repo_id}/{file_path}"
        data = repo.files[file_path]
        if key in self.fake.corrupt:
            data = bytes(b ^ 0xFF for b in data)
        if key in self.fake.truncate:
            data = data[: len(data) // 2]
        start = 0
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes="):
            start = int(wanted[len("bytes="):].split("-")[0] or 0)
        self.send_response(206 if start else 200)
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes",
                   "Content-Length": str(len(data) - start),
                   "ETag": f'"{hashlib.sha256(repo.files[file_path]).hexdigest()}"', **(extra or {})}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if head:
            return
        if self.fake.hold is not None:
            self.fake.hold.wait(HOLD_TIMEOUT_S)
        body = data[start:]
        if key in self.fake.drop_once and not start:
            self.fake.drop_once.discard(key)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops halfway
            self.close_connection = True
            return
        for i in range(0, len(body), 65536):
            self.wfile.write(body[i:i + 65536])
            if self.fake.chunk_delay_s:
                self.wfile.flush()
                threading.Event().wait(self.fake.chunk_delay_s)

    # ------------------------------------------------------------------ helpers
    def _json(self, value, headers: dict | None = None):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, header in (headers or {}).items():
            self.send_header(name, header)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str):
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
