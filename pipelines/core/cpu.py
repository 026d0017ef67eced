"""How work shares the CPU: a lower priority for videos rendered in the background, and one OpenCV and one
BLAS thread for the renderer's small operations.

BLAS control goes through threadpoolctl, whose scan of the loaded libraries (``dl_iterate_phdr``) calls
back into Python while it holds the dynamic loader's lock. Run from a worker thread while another thread
imports an extension module (``dlopen`` with the GIL held), the two wait on each other for ever. So the
scan is made once, from the main thread: at the studio's start (``prepare_blas_control`` in build_app) or
when a command-line tool first imports the renderer. A worker thread never scans; without a scan the
renderer simply keeps OpenBLAS's default threads.
"""
from __future__ import annotations

import contextlib
import os
import threading

BACKGROUND_NICENESS = 10  # videos rendered while people wait for quick answers: they yield the CPU first

_blas = None  # threadpoolctl's controller once scanned; False when threadpoolctl is not installed
_blas_lock = threading.Lock()


def lower_this_threads_priority() -> None:
    """This thread (not the process) runs at BACKGROUND_NICENESS from now on; Linux only, else nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)
    except (AttributeError, OSError):
        pass


def prepare_blas_control() -> None:
    """Scan the loaded BLAS libraries now, if this is the main thread and no scan was made yet."""
    global _blas
    if _blas is not None or threading.current_thread() is not threading.main_thread():
        return
    with _blas_lock:
        if _blas is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _blas = False
            else:
                _blas = ThreadpoolController()


_kernels_lock = threading.Lock()
_kernels_users = 0
_kernels_restore = None  # how to put the thread counts back, while anyone is inside


@contextlib.contextmanager
def single_thread_kernels():
    """A context in which OpenCV and BLAS each run on one thread. The renderer's per-frame work is many
    small operations, for which extra threads only spin and take the cores that the encoder and a second
    frame thread need. Counted: the first to enter sets it and the last to leave restores it, so frame
    threads and sessions that overlap never leave it set for everything else (BLAS: a no-op before any scan).
    """
    global _kernels_users, _kernels_restore
    with _kernels_lock:
        _kernels_users += 1
        if _kernels_users == 1:
            import cv2

            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            limiter = _blas.limit(limits=1, user_api="blas") if _blas else None

            def restore(threads=threads, limiter=limiter):
                cv2.setNumThreads(threads)
                if limiter is not None:
                    limiter.restore_original_limits()

            _kernels_restore = restore
    try:
        yield
    finally:
        with _kernels_lock:
            _kernels_users -= 1
            if _kernels_users == 0:
                _kernels_restore()
                _kernels_restore = None
