"""Peak memory of a block of benchmark code, shared by the benchmarks that report it."""
from __future__ import annotations

import threading
import time

import psutil


class PeakMemory:
    """Highest RSS while the block runs, sampled in a thread; ``children``: add child processes
    (ffmpeg encoders, worker processes) to this process's own RSS."""

    def __init__(self, children: bool = False, interval_s: float = 0.02):
        self.children, self.interval_s, self.peak = children, interval_s, 0

    def _total(self, proc: psutil.Process) -> int:
        rss = proc.memory_info().rss
        for child in proc.children(recursive=True) if self.children else ():
            try:
                rss += child.memory_info().rss
            except psutil.Error:  # the child ended between listing and reading
                pass
        return rss

    def __enter__(self):
        self.peak, self._stop, proc = 0, threading.Event(), psutil.Process()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, self._total(proc))
                time.sleep(self.interval_s)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
