"""What every tab gets from the app (StudioContext) and gives back to it (TabHandles), plus the
shared habits of handlers: friendly errors, Stop, progress, and the accelerator queue."""
from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import gradio as gr

from pipelines.core.cache import ModelCache
from pipelines.core.catalog import Catalog
from pipelines.core.errors import Stopped, UserError
from pipelines.core.jobs import ProgressFn, StopToken
from pipelines.core.notices import Notice
from pipelines.core.runtime import Runtime
from pipelines.core.settings import AppConfig

from .i18n import say

log = logging.getLogger(__name__)


class JobRegistry:
    """Running jobs by (browser session, tab), so a Stop click stops that user's own job only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], set[StopToken]] = {}

    @contextlib.contextmanager
    def running(self, request: gr.Request | None, tab: str) -> Iterator[StopToken]:
        key = (_session(request), tab)
        token = StopToken()
        with self._lock:
            self._tokens.setdefault(key, set()).add(token)
        try:
            yield token
        finally:
            with self._lock:
                self._tokens.get(key, set()).discard(token)

    def stop(self, request: gr.Request | None, tab: str) -> int:
        with self._lock:
            tokens = list(self._tokens.get((_session(request), tab), ()))
        for token in tokens:
            token.stop()
        return len(tokens)


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


@dataclass
class StudioContext:
    """Everything a tab needs: settings, the one model cache, the catalog, running jobs."""

    config: AppConfig
    runtime: Runtime  # cache, catalog, device, outputs: pass it to pipeline calls
    jobs: JobRegistry = field(default_factory=JobRegistry)
    limits: dict[str, int] = field(default_factory=dict)  # jobs at once per kind (capacity.py); {} = from config

    @property
    def cache(self) -> ModelCache:
        return self.runtime.cache

    @property
    def catalog(self) -> Catalog:
        return self.runtime.catalog

    def __post_init__(self):
        if not self.limits:
            from .capacity import concurrency_limits

            self.limits = concurrency_limits(self.config)

    def concurrency(self, kind: str) -> dict:
        """Event options for one kind of work ("video", "text", "voice", "image", "face", "batch"): its own
        queue (concurrency id) and limit, so one kind's jobs never wait behind another's."""
        return {"concurrency_id": kind, "concurrency_limit": self.limits[kind]}

    def heavy(self) -> dict:
        """Kept for tabs not yet moved to ``concurrency(kind)``: the image queue (the heaviest kind)."""
        return self.concurrency("image")


@dataclass
class TabHandles:
    """Components a tab offers to the others; app.py wires the cross-tab buttons."""

    photo_source: gr.components.Component | None = None  # an image value to send to the twin wizard
    send_photo: gr.Button | None = None
    audio_source: gr.components.Component | None = None  # a voice recording to send to the twin wizard
    send_audio: gr.Button | None = None
    script_source: gr.components.Component | None = None  # a text to send as the twin's script
    send_script: gr.Button | None = None
    photo_target: gr.components.Component | None = None  # twin wizard inputs
    audio_target: gr.components.Component | None = None
    script_target: gr.components.Component | None = None
    voice_target: gr.components.Component | None = None  # the twin wizard's voice and persona
    persona_target: gr.components.Component | None = None
    wizard: gr.Tabs | None = None  # the twin wizard's steps: a sent value opens the step that shows it
    wizard_choices_button: gr.Button | None = None  # "use the wizard's photo, voice and persona" (chat tab)
    wizard_choices_targets: list | None = None  # where those three go: [photo, voice, persona]
    # (handler, outputs) or (handler, inputs, outputs): run when the tab is selected (lists that may have
    # changed) / when the page loads (defaults in the user's language: a script language, a persona...)
    on_open: tuple | None = None
    on_load: tuple | None = None


def provenance_checkbox() -> gr.Checkbox:
    """The per-tab setting for the invisible watermark and Content Credentials (on by default)."""
    from .i18n import t

    return gr.Checkbox(value=True, label=t("common.provenance"), info=t("common.provenance_info"))


def language_of(request: gr.Request | None, default: str = "auto") -> str:
    """The user's language for server-made messages: the page's choice (cookie set by language.py),
    then the browser's Accept-Language, else the default."""
    default = "en" if default == "auto" else default
    if request is None:
        return default
    with contextlib.suppress(Exception):
        for part in (request.headers.get("cookie", "") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "aigc-lang" and value in ("en", "zh"):
                return value
    header = ""
    with contextlib.suppress(Exception):
        header = request.headers.get("accept-language", "") or ""
    first = header.split(",")[0].strip().lower()
    if first.startswith("zh"):
        return "zh"
    if first:
        return "en"
    return default


def show_notices(notices: Iterable[Notice], lang: str) -> None:
    """A pipeline's notices as toasts in the user's language: info -> gr.Info, warning -> gr.Warning."""
    for notice in notices:
        (gr.Info if notice.level == "info" else gr.Warning)(notice.text(lang))


def progress_callback(progress: gr.Progress | None, lang: str = "en") -> ProgressFn | None:
    """A pipeline's progress reports -> Gradio's progress bar, the text in the user's language."""
    if progress is None:
        return None
    from .i18n import progress_text

    return lambda fraction, text: progress(fraction, desc=progress_text(text, lang))


def friendly_errors(fn: Callable) -> Callable:
    """Turn pipeline errors into a clear message in the user's language; never a traceback.

    UserError -> its text; Stopped -> ends quietly (a generator keeps what it already yielded);
    anything else -> logged with its traceback on the server, a short message in the UI.
    The wrapped function may take a ``request`` parameter (gr.Request) to pick the language.
    """

    signature = inspect.signature(fn)

    def language(args, kwargs) -> str:
        try:
            request = signature.bind_partial(*args, **kwargs).arguments.get("request")
        except TypeError:
            request = None
        return language_of(request)

    def convert(exc: BaseException, args, kwargs) -> gr.Error:
        lang = language(args, kwargs)
        if isinstance(exc, UserError):
            return gr.Error(exc.text(lang), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(say("common.error_unexpected", lang, error=type(exc).__name__ + ": " + str(exc)[:200]),
                        print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Stopped:
                gr.Info(say("common.stopped", language(args, kwargs)))
            except gr.Error:
                raise
            except Exception as exc:  # noqa: BLE001 - every error becomes a message
                raise convert(exc, args, kwargs) from None
        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Stopped:
            raise gr.Error(say("common.stopped", language(args, kwargs)), print_exception=False) from None
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001
            raise convert(exc, args, kwargs) from None
    return wrapper


def not_available_notice() -> gr.Markdown:
    from .i18n import t

    return gr.Markdown(t("common.not_available"), elem_classes=["notice"])


def bind(handler: Callable, ctx: "StudioContext") -> Callable:
    """``handler(ctx, ...)`` as an event function: ``ctx`` filled in, every other parameter unchanged.

    Like ``functools.partial(handler, ctx)``, but Gradio still sees the parameters' type hints, which
    is how it knows to pass ``request: gr.Request`` (a partial hides them), a generator handler
    stays a generator function (so its results stream) and an async one stays async.
    """
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def bound(*args, **kwargs):
            yield from handler(ctx, *args, **kwargs)
    elif inspect.iscoroutinefunction(handler):  # runs on the event loop: no thread hop
        @functools.wraps(handler)
        async def bound(*args, **kwargs):
            return await handler(ctx, *args, **kwargs)
    else:
        @functools.wraps(handler)
        def bound(*args, **kwargs):
            return handler(ctx, *args, **kwargs)
    signature = inspect.signature(handler)
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return bound


def pass_through(value: Any) -> Any:
    """Copy a value from one component to another."""
    return value


# Gradio clears an "Error" badge when the component's next event succeeds; the error toast stays for its
# ten seconds. This closes it as soon as the next action succeeds, so the page never shows both.
CLOSE_ERROR_TOASTS_JS = """() => { document.querySelectorAll('[data-testid="toast-body"].error [data-testid="toast-close"]')
    .forEach((button) => button.click()); }"""


def clear_errors_on_success(*events) -> None:
    """After each of these events succeeds, close the error toasts still on the page."""
    for event in events:
        event.success(None, None, None, js=CLOSE_ERROR_TOASTS_JS, queue=False, api_visibility="private")
