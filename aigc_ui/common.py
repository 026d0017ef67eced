"""What every tab gets from the app (StudioContext) and gives back to it (TabHandles), plus the
shared habits of handlers: friendly errors, Stop, progress, and the accelerator queue."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
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
from .sessions import Sessions

log = logging.getLogger(__name__)


# The StopToken of the job running in this context: set by ``cancellable`` (so that a cancelled event
# reaches the pipeline), picked up by ``JobRegistry.running`` in the worker thread (contexts are copied).
_job_token: contextvars.ContextVar[StopToken | None] = contextvars.ContextVar("aigc_job_token", default=None)
STOP_GRACE_SECONDS = 5.0  # how long a cancelled event waits for its work to notice before letting go
_WORKERS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="aigc-job")


class JobRegistry:
    """Running jobs by (browser session, tab), so a Stop click stops that user's own job only."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], set[StopToken]] = {}

    @contextlib.contextmanager
    def running(self, request: gr.Request | None, tab: str) -> Iterator[StopToken]:
        key = (_session(request), tab)
        token = _job_token.get() or StopToken()
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

    def cancel_session(self, request: gr.Request | None) -> int:
        """The session is gone (its browser tab closed): cancel all its jobs, keeping nothing."""
        session = _session(request)
        with self._lock:
            tokens = [t for (owner, _tab), ts in self._tokens.items() if owner == session for t in ts]
        for token in tokens:
            token.cancel()
        return len(tokens)

    def running_count(self) -> int:
        with self._lock:
            return sum(len(ts) for ts in self._tokens.values())


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "local"


@dataclass
class StudioContext:
    """Everything a tab needs: settings, the one model cache, the catalog, running jobs, and who owns what.

    Work done for a person goes through ``runtime_for(request)``: the same cache and catalog, writing into
    that person's own outputs folder (see sessions.py)."""

    config: AppConfig
    runtime: Runtime  # cache, catalog, device, outputs: pass it to pipeline calls
    jobs: JobRegistry = field(default_factory=JobRegistry)
    limits: dict[str, int] = field(default_factory=dict)  # jobs at once per kind (capacity.py); {} = from config
    sessions: Sessions | None = None

    def __post_init__(self):
        if not self.limits:
            from .capacity import concurrency_limits

            self.limits = concurrency_limits(self.config)
        if self.sessions is None:
            self.sessions = Sessions(self.config)

    def runtime_for(self, request: gr.Request | None) -> Runtime:
        """The runtime for this request's owner: their outputs folder, the shared cache and catalog."""
        return self.sessions.runtime_for(self.runtime, request)

    def require_host(self, request: gr.Request | None) -> None:
        """Admin actions (unloading models) are for the studio's host only."""
        if not self.sessions.is_host(request):
            raise UserError("Only the studio's host can do this (on the studio's own computer, or signed in as an "
                            "--admin-user).", zh="只有工作室的主机管理员可以执行此操作（在运行工作室的电脑上，或以 --admin-user 登录）。")

    @property
    def cache(self) -> ModelCache:
        return self.runtime.cache

    @property
    def catalog(self) -> Catalog:
        return self.runtime.catalog

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


def cancellable(handler: Callable) -> Callable:
    """``handler`` (a plain or generator function) as an async event function whose work runs in a worker
    thread, so that when Gradio cancels the event (a client's ``job.cancel()``, a closed tab) the job's
    StopToken is cancelled at once: the pipeline stops at its next check and keeps nothing, and the event
    lets go of its concurrency slot when the work has stopped (at most STOP_GRACE_SECONDS later).

    The handler finds that token through ``ctx.jobs.running(request, tab)``. Gradio still sees the
    handler's own signature (``request``, ``progress``...).
    """
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        async def stream(*args, **kwargs):
            token = StopToken()
            reset = _job_token.set(token)
            steps = _Steps(handler(*args, **kwargs))  # runs nothing yet
            # Gradio may cancel the event while this generator waits between two results (not inside an
            # await of ours): the end of the event's task is the signal that always comes.
            task = asyncio.current_task()
            if task is not None:
                task.add_done_callback(lambda _task: steps.finished or steps.abandon(token))
            step = None
            try:
                while True:
                    step = _in_worker(steps.next)
                    item = await asyncio.shield(step)
                    if item is _DONE:
                        return
                    yield item
            except (asyncio.CancelledError, GeneratorExit):
                steps.abandon(token)
                await _wind_down(step)
                raise
            finally:
                with contextlib.suppress(ValueError):  # closed from another context (garbage collection)
                    _job_token.reset(reset)
        return stream

    @functools.wraps(handler)
    async def run(*args, **kwargs):
        token = StopToken()
        reset = _job_token.set(token)
        work = _in_worker(handler, *args, **kwargs)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            token.cancel()
            await _wind_down(work)
            raise
        finally:
            _job_token.reset(reset)
    return run


_DONE = object()


class _Steps:
    """A handler's generator, stepped on worker threads one step at a time; ``abandon`` cancels the job and
    closes the generator (after the step in progress), so its own clean-up runs and nothing is kept."""

    def __init__(self, generator):
        self.generator = generator
        self.lock = threading.Lock()
        self.finished = False

    def next(self):
        with self.lock:
            try:
                return next(self.generator)
            except StopIteration:
                self.finished = True
                return _DONE

    def abandon(self, token: StopToken) -> None:
        if self.finished:
            return
        token.cancel()

        def close():
            with self.lock, contextlib.suppress(Exception):
                self.generator.close()

        _WORKERS.submit(contextvars.copy_context().run, close)


def _in_worker(fn: Callable, *args, **kwargs) -> asyncio.Future:
    """``fn`` on a worker thread, in a copy of this context (Gradio's request, progress and our token)."""
    context = contextvars.copy_context()
    return asyncio.get_running_loop().run_in_executor(_WORKERS, functools.partial(context.run, fn, *args, **kwargs))


async def _wind_down(work: asyncio.Future | None) -> None:
    """Wait (bounded) for cancelled work to notice its StopToken and finish."""
    if work is None:
        return
    done, _ = await asyncio.wait({work}, timeout=STOP_GRACE_SECONDS)
    if not done:
        log.warning("a cancelled job is still running after %.0f s", STOP_GRACE_SECONDS)
    work.add_done_callback(lambda f: f.cancelled() or f.exception())  # its outcome is not wanted


def photo_input(**kwargs) -> gr.Image:
    """gr.Image for a photo that the pipeline reads itself: the upload is handed over as a file path (no
    conversion here: the pipeline honours EXIF and converts), and an image too big to open gets a clear
    message instead of Pillow's DecompressionBombError naming a temporary file.

    (The instance's preprocess is wrapped rather than gr.Image subclassed: Gradio writes a .pyi stub
    beside any module that defines a component class.)"""
    from PIL import Image

    image = gr.Image(**{"type": "filepath", "image_mode": None, **kwargs})
    convert = image.preprocess

    def preprocess(payload):
        try:
            return convert(payload)
        except Image.DecompressionBombError:
            raise gr.Error("The photo is too large; please use one under 100 megapixels. / "
                           "照片太大，请使用小于 1 亿像素的照片。", print_exception=False) from None
        except (OSError, SyntaxError):
            raise gr.Error("This file is not an image I can read. / 无法识别此文件为图片。",
                           print_exception=False) from None

    image.preprocess = preprocess
    return image


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
