"""A small client for D-ID's REST API (https://docs.d-id.com): the calls the studio's ``did`` engine needs.

What it does: authenticates as D-ID documents it (``Authorization: Basic <API key>``; the key is
``API_USERNAME:API_PASSWORD`` as D-ID Studio shows it, or one token); checks a key by reading its credits;
uploads a photo (``POST /images``) and audio (``POST /audios``); creates a talk (``POST /talks``) from
text spoken by one of D-ID's Microsoft voices or from uploaded audio; polls ``GET /talks/{id}`` with
backoff until it is done; downloads ``result_url``; deletes talks (``DELETE /talks/{id}``). Every HTTP
error becomes a :class:`DIDError` (a ``UserError``) in English and Chinese. Timeouts and retries are bounded.
What it does not: decode video or know about the twin pipeline (``engines/did.py`` does).

The key never leaves this module except in the Authorization header sent to the API's own host: it is
held by :class:`ApiKey` (whose ``repr`` is masked), never logged, and scrubbed from any text a server
sends back before that text reaches an error message.

The base URL is ``AIGC_DID_API_URL`` (default ``https://api.d-id.com``), so the same code talks to the
studio's own D-ID-compatible API (``http://127.0.0.1:7860/did``) or to a test double.
"""
from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import Stopped, UserError
from ..core.jobs import ProgressFn, StopToken, report

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.d-id.com"
API_URL_ENV = "AIGC_DID_API_URL"
API_KEY_ENV = "AIGC_DID_API_KEY"

# D-ID's Microsoft voices (``provider.type "microsoft"``) offered for English and Chinese scripts; the first
# of each list is the default. Any other Microsoft voice id D-ID knows can be given by name.
DID_VOICES: dict[str, tuple[str, ...]] = {
    "en": ("en-US-JennyNeural", "en-US-GuyNeural", "en-US-AriaNeural", "en-US-DavisNeural",
           "en-GB-SoniaNeural", "en-GB-RyanNeural"),
    "zh": ("zh-CN-XiaoxiaoNeural", "zh-CN-YunxiNeural", "zh-CN-XiaoyiNeural", "zh-CN-YunjianNeural",
           "zh-CN-YunyangNeural", "zh-TW-HsiaoChenNeural"),
}
_MICROSOFT_VOICE = re.compile(r"^[a-z]{2,3}-[A-Za-z]{2,4}(-[A-Za-z]+)?-[A-Za-z0-9]+Neural$")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")

STATUSES = ("created", "started", "done", "error", "rejected")
# Bounded waiting: first poll after POLL_START s, then x1.5 up to POLL_MAX s; give up after TALK_TIMEOUT s.
POLL_START, POLL_MAX, TALK_TIMEOUT = 1.0, 5.0, 900.0
RETRIES = 3  # extra attempts on 429 / 5xx / connection errors (POST only where nothing can have been created)
RETRY_DELAY = 1.0  # seconds before the first retry, doubled each time (or D-ID's Retry-After, up to 10 s)
CONNECT_TIMEOUT, READ_TIMEOUT = 10.0, 60.0
MAX_DOWNLOAD_BYTES = 500 * 2**20


def is_did_voice(voice: str | None) -> bool:
    """True for D-ID's own (Microsoft) voice ids, written bare or as ``did:<voice id>``."""
    name = (voice or "").removeprefix("did:")
    return bool(_MICROSOFT_VOICE.match(name))


def did_voice_for(voice: str | None, script: str) -> str:
    """The D-ID voice id to use: the one asked for, else the default for the script's language."""
    if is_did_voice(voice):
        return str(voice).removeprefix("did:")
    return DID_VOICES["zh" if _CJK.search(script or "") else "en"][0]


# ---------------------------------------------------------------- the key


class ApiKey:
    """A D-ID API key. ``str()``/``repr()`` never show it; only :meth:`authorization` does, for the header."""

    def __init__(self, raw: str):
        key = (raw or "").strip()
        if key.lower().startswith("basic "):  # pasted with the header's scheme: keep the credentials only
            key = key[6:].strip()
        if not key:
            raise UserError("Enter your D-ID API key (D-ID Studio → Account settings → API key).",
                            zh="请输入你的 D-ID API 密钥（D-ID Studio → 账户设置 → API 密钥）。")
        if not key.isascii() or any(c.isspace() or not c.isprintable() for c in key):
            raise UserError("This does not look like a D-ID API key: it has spaces or characters a key never has.",
                            zh="这看起来不像 D-ID API 密钥：其中含有空格或密钥中不会出现的字符。")
        self._key = key

    @property
    def form(self) -> str:
        """``"user:password"`` (as D-ID Studio shows new keys) or ``"token"`` (one opaque string)."""
        return "user:password" if ":" in self._key else "token"

    def authorization(self) -> str:
        """The Authorization header value, as D-ID documents it: ``Basic API_USERNAME:API_PASSWORD``."""
        return f"Basic {self._key}"

    def secrets(self) -> list[str]:
        """Every form of the key that must never show up in text (the key, its parts, its base64)."""
        parts = [self._key, base64.b64encode(self._key.encode()).decode()]
        parts += [p for p in self._key.split(":") if len(p) >= 6]
        return parts

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return "ApiKey(***)"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, ApiKey) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)


# ---------------------------------------------------------------- errors


class DIDError(UserError):
    """An answer from D-ID (or no answer) explained for a person; ``status`` is the HTTP status (0: none)."""

    def __init__(self, message: str, zh: str, status: int = 0, kind: str = ""):
        super().__init__(message, zh=zh)
        self.status = status
        self.kind = kind


def error_for_status(status: int, kind: str = "", description: str = "", service: str = "D-ID") -> DIDError:
    """The message a person reads for an HTTP error answer (``description`` already scrubbed of the key)."""
    detail = f" ({kind}: {description})" if description else (f" ({kind})" if kind else "")
    if status == 401:
        return DIDError(f"{service} refused the API key (401): check that you copied the whole key from D-ID Studio "
                        "→ Account settings → API key.",
                        f"{service} 拒绝了该 API 密钥（401）：请确认你从 D-ID Studio → 账户设置 → API 密钥复制了完整的密钥。",
                        status, kind)
    if status == 402:
        return DIDError(f"Your {service} account has no credits left (402): buy credits or change plan at d-id.com, "
                        "or use the offline 'classic' engine.",
                        f"你的 {service} 账户没有剩余额度（402）：请在 d-id.com 购买额度或更换套餐，或使用离线的“classic”引擎。",
                        status, kind)
    if status == 403:
        return DIDError(f"{service} says this key may not do that (403){detail}.",
                        f"{service} 表示此密钥无权执行该操作（403）{detail}。", status, kind)
    if status == 429:
        return DIDError(f"{service} is rate limiting this key (429): wait a minute and try again.",
                        f"{service} 正在限制此密钥的请求频率（429）：请等一分钟再试。", status, kind)
    if status == 451:
        return DIDError(f"{service}'s automatic moderation refused this photo, text or audio (451){detail}.",
                        f"{service} 的自动审核拒绝了此照片、文本或音频（451）{detail}。", status, kind)
    if status == 404:
        return DIDError(f"{service} could not find that (404){detail}.", f"{service} 找不到该对象（404）{detail}。",
                        status, kind)
    if status == 413:
        return DIDError(f"{service} says the file is too large (413).", f"{service} 表示文件太大（413）。", status, kind)
    if status >= 500:
        return DIDError(f"{service}'s service is down or failing (HTTP {status}): try again later.",
                        f"{service} 服务暂时不可用或出错（HTTP {status}）：请稍后再试。", status, kind)
    return DIDError(f"{service} refused the request (HTTP {status}){detail}.",
                    f"{service} 拒绝了该请求（HTTP {status}）{detail}。", status, kind)


def _unreachable(host: str, timed_out: bool) -> DIDError:
    if timed_out:
        return DIDError(f"D-ID at {host} did not answer in time: check your connection and try again.",
                        f"{host} 上的 D-ID 没有及时响应：请检查网络连接后重试。")
    return DIDError(f"Could not reach D-ID at {host}: check your internet connection (or AIGC_DID_API_URL).",
                    f"无法连接到 {host} 上的 D-ID：请检查网络连接（或 AIGC_DID_API_URL 设置）。")


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class Credits:
    remaining: float
    total: float


def _sleep(seconds: float, stop: StopToken | None) -> None:
    """Sleep, but wake up early (raising Stopped) when the user presses Stop."""
    end = time.monotonic() + seconds
    while True:
        if stop is not None and stop.stopped:
            raise Stopped()
        left = end - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(left, 0.1))


class DIDClient:
    """``DIDClient(key).check_key()``; ``upload_image``, ``create_talk``, ``wait_for_talk``, ``download``..."""

    def __init__(self, key: ApiKey | str, base_url: str | None = None, *, retries: int = RETRIES,
                 session=None, service: str = "D-ID"):
        import requests

        self.key = key if isinstance(key, ApiKey) else ApiKey(key)
        self.base_url = (base_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL).rstrip("/")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise UserError(f"{API_URL_ENV} must be an http(s) URL.", zh=f"{API_URL_ENV} 必须是 http(s) 地址。")
        self.retries = max(0, int(retries))
        self.service = service
        self._session = session or requests.Session()
        if session is None and _is_loopback_url(self.base_url):
            self._session.trust_env = False  # a studio on this computer: no proxy from the environment

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    # ---- plumbing
    def _request(self, method: str, path: str, *, resend_safe: bool, stop: StopToken | None = None, **kwargs):
        """One API call with bounded retries. ``resend_safe``: sending it twice cannot do anything twice."""
        import requests

        url = self.base_url + path
        headers = {"Authorization": self.key.authorization(), "Accept": "application/json"}
        delay = RETRY_DELAY
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._session.request(method, url, headers=headers,
                                                 timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False,
                                                 **kwargs)
            except requests.ConnectionError as exc:
                # Never connected: nothing was sent, so even a POST may be tried again.
                if last or not (resend_safe or _never_connected(exc)):
                    raise _unreachable(self.host, isinstance(exc, requests.Timeout)) from None
                log.info("D-ID %s %s: no connection, retrying", method, path)
            except requests.Timeout:
                if last or not resend_safe:
                    raise _unreachable(self.host, True) from None
                log.info("D-ID %s %s: timed out, retrying", method, path)
            else:
                log.info("D-ID %s %s -> %s", method, path, response.status_code)
                retryable = response.status_code == 429 or (response.status_code >= 500 and resend_safe)
                if response.status_code < 400 or not retryable or last:
                    return response
                delay = max(delay, _retry_after(response))
            _sleep(min(delay, 10.0), stop)
            delay *= 2
        raise AssertionError("unreachable")  # the loop returns or raises

    def _json(self, response, expected: tuple[int, ...] = (200, 201)) -> Any:
        if response.status_code not in expected:
            raise self._error(response)
        try:
            return response.json()
        except ValueError:
            raise DIDError(f"{self.service} answered with something that is not JSON (HTTP {response.status_code}).",
                           f"{self.service} 返回的不是 JSON（HTTP {response.status_code}）。",
                           response.status_code) from None

    def _error(self, response) -> DIDError:
        kind = description = ""
        try:
            body = response.json()
            if isinstance(body, dict):
                kind = str(body.get("kind") or "")[:80]
                description = str(body.get("description") or body.get("message") or "")[:300]
        except ValueError:
            pass
        return error_for_status(response.status_code, self.key.redact(kind), self.key.redact(description), self.service)

    # ---- account
    def credits(self) -> Credits:
        response = self._request("GET", "/credits", resend_safe=True)
        if response.status_code == 404:  # D-ID: "no credits found for user"
            return Credits(0.0, 0.0)
        body = self._json(response)
        try:
            return Credits(float(body["remaining"]), float(body["total"]))
        except (KeyError, TypeError, ValueError):
            raise DIDError(f"{self.service} answered /credits in an unexpected shape.",
                           f"{self.service} 对 /credits 的回答格式不正确。") from None

    def check_key(self) -> Credits:
        """Is the key good? Returns its credits; raises DIDError (401, 402 or no credits left, 429, 5xx...)."""
        credits = self.credits()
        if credits.remaining <= 0:
            raise error_for_status(402, service=self.service)
        return credits

    # ---- uploads
    def upload_image(self, data: bytes, filename: str = "photo.png", content_type: str = "image/png") -> str:
        files = {"image": (filename, data, content_type)}
        body = self._json(self._request("POST", "/images", resend_safe=True, files=files))
        return _url_of(body, self.service)

    def upload_audio(self, data: bytes, filename: str = "voice.wav", content_type: str = "audio/wav") -> str:
        files = {"audio": (filename, data, content_type)}
        body = self._json(self._request("POST", "/audios", resend_safe=True, files=files))
        return _url_of(body, self.service)

    # ---- talks
    def create_talk(self, source_url: str, script: dict, config: dict | None = None) -> str:
        payload = {"source_url": source_url, "script": script}
        if config:
            payload["config"] = config
        # Not resend_safe: after an unanswered POST a second one could make (and bill) a second talk.
        body = self._json(self._request("POST", "/talks", resend_safe=False, json=payload), (200, 201))
        talk_id = body.get("id") if isinstance(body, dict) else None
        if not talk_id:
            raise DIDError(f"{self.service} did not return a talk id.", f"{self.service} 没有返回 talk id。")
        return str(talk_id)

    def get_talk(self, talk_id: str, stop: StopToken | None = None) -> dict:
        return self._json(self._request("GET", f"/talks/{talk_id}", resend_safe=True, stop=stop))

    def list_talks(self, limit: int = 100, token: str | None = None) -> dict:
        params = {"limit": limit} | ({"token": token} if token else {})
        return self._json(self._request("GET", "/talks", resend_safe=True, params=params))

    def delete_talk(self, talk_id: str) -> bool:
        """Delete a talk; False when D-ID says it is still being made (409: try again when it is done)."""
        response = self._request("DELETE", f"/talks/{talk_id}", resend_safe=True)
        if response.status_code == 409:
            return False
        if response.status_code not in (200, 204, 404):  # 404: already gone
            raise self._error(response)
        return True

    def delete_talk_soon(self, talk_id: str, timeout: float = TALK_TIMEOUT) -> threading.Thread:
        """Delete a talk now, or, while D-ID is still making it (409), as soon as it is finished (bounded)."""
        def run():
            deadline = time.monotonic() + timeout
            delay = POLL_START
            try:
                while not self.delete_talk(talk_id):
                    if time.monotonic() > deadline:
                        log.warning("D-ID talk %s: gave up deleting it after %.0f s", talk_id, timeout)
                        return
                    time.sleep(delay)
                    delay = min(delay * 1.5, POLL_MAX)
                log.info("D-ID talk %s deleted", talk_id)
            except UserError as exc:
                log.warning("D-ID talk %s could not be deleted: %s", talk_id, exc.message)

        thread = threading.Thread(target=run, name=f"did-delete-{talk_id}", daemon=True)
        thread.start()
        return thread

    def wait_for_talk(self, talk_id: str, *, stop: StopToken | None = None, on_progress: ProgressFn | None = None,
                      timeout: float | None = None) -> dict:
        """Poll until the talk is ``done`` (returned) or ``error``/``rejected`` (DIDError). Stop raises Stopped."""
        timeout = TALK_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + timeout
        delay = POLL_START
        while True:
            talk = self.get_talk(talk_id, stop=stop)
            status = str(talk.get("status", ""))
            report(on_progress, {"created": 0.1, "started": 0.5, "done": 1.0}.get(status, 0.0),
                   f"{self.service}: {status or 'waiting'}")
            if status == "done":
                if not talk.get("result_url"):
                    raise DIDError(f"{self.service} finished the talk but gave no result_url.",
                                   f"{self.service} 已完成视频，但没有给出 result_url。")
                return talk
            if status in ("error", "rejected"):
                raise self._talk_failed(talk)
            if time.monotonic() + delay > deadline:
                raise DIDError(f"{self.service} did not finish the video within {timeout / 60:.0f} minutes.",
                               f"{self.service} 在 {timeout / 60:.0f} 分钟内没有完成视频。")
            _sleep(delay, stop)
            delay = min(delay * 1.5, POLL_MAX)

    def _talk_failed(self, talk: dict) -> DIDError:
        error = talk.get("error") if isinstance(talk.get("error"), dict) else {}
        kind = self.key.redact(str(error.get("kind", "")))[:80]
        description = self.key.redact(str(error.get("description", "")))[:300]
        if talk.get("status") == "rejected":
            return DIDError(f"{self.service} rejected this talk (its moderation refused the photo, text or audio)"
                            + (f": {description}" if description else "."),
                            f"{self.service} 拒绝了此视频（其审核未通过照片、文本或音频）" + (f"：{description}" if description else "。"),
                            kind="rejected")
        if kind == "FaceError":
            return DIDError(f"{self.service} found no face it can animate in the photo ({description or kind}).",
                            f"{self.service} 在照片中没有找到可驱动的人脸（{description or kind}）。", kind=kind)
        return DIDError(f"{self.service} could not make the video ({kind or 'error'}: {description or 'no details'}).",
                        f"{self.service} 无法生成视频（{kind or 'error'}：{description or '无详细信息'}）。", kind=kind)

    def download(self, url: str, dest: Path, *, stop: StopToken | None = None,
                 max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
        """Fetch ``result_url`` (a pre-signed link: no Authorization header goes with it) into ``dest``."""
        import requests

        if urlsplit(url).scheme not in ("http", "https"):
            raise DIDError(f"{self.service} gave a result_url that is not an http(s) link.",
                           f"{self.service} 给出的 result_url 不是 http(s) 链接。")
        dest = Path(dest)
        size = 0
        try:
            with self._session.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT)) as response:
                if response.status_code != 200:
                    raise error_for_status(response.status_code, service=self.service)
                with open(dest, "wb") as f:
                    for chunk in response.iter_content(1 << 16):
                        size += len(chunk)
                        if size > max_bytes:
                            raise DIDError(f"The video from {self.service} is larger than {max_bytes >> 20} MB.",
                                           f"{self.service} 的视频大于 {max_bytes >> 20} MB。")
                        if stop is not None and stop.stopped:
                            raise Stopped()
                        f.write(chunk)
        except requests.RequestException as exc:
            dest.unlink(missing_ok=True)
            raise _unreachable(urlsplit(url).netloc, isinstance(exc, requests.Timeout)) from None
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return dest


def _url_of(body: Any, service: str) -> str:
    if not isinstance(body, dict) or not body.get("url"):
        raise DIDError(f"{service} did not return the uploaded file's url.", f"{service} 没有返回上传文件的 url。")
    return str(body["url"])


def _retry_after(response) -> float:
    try:
        return float(response.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0


def _never_connected(exc: Exception) -> bool:
    """Did the connection fail before any byte of the request was sent?"""
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _is_loopback_url(url: str) -> bool:
    import ipaddress

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
