"""Stop and progress for long work, without any UI: pipelines take a StopToken and a progress callback.

    def render(..., stop: StopToken | None = None, on_progress: ProgressFn | None = None): ...
        for i in range(n):
            check_stop(stop)                     # raises Stopped after the user pressed Stop
            report(on_progress, i / n, "frame")  # (fraction 0..1, short text)
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

from .errors import Stopped

ProgressFn = Callable[[float, str], None]


class StopToken:
    """Set by the UI and checked by the pipeline between steps.

    ``stop()``: the user pressed Stop; work ends early and may keep what it made (a speech file with the
    sentences spoken so far). ``cancel()``: the caller is gone (a client's cancel, a closed browser tab);
    work ends as soon as it can and keeps nothing (``discard`` is True).
    """

    def __init__(self):
        self._event = threading.Event()
        self.discard = False

    def stop(self) -> None:
        self._event.set()

    def cancel(self) -> None:
        self.discard = True
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()


def check_stop(stop: Optional[StopToken]) -> None:
    if stop is not None and stop.stopped:
        raise Stopped()


def report(on_progress: Optional[ProgressFn], fraction: float, text: str = "") -> None:
    if on_progress is not None:
        on_progress(max(0.0, min(1.0, fraction)), text)
