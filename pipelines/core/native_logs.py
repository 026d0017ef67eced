"""Keep the C++ libraries' own log lines (MediaPipe, TensorFlow Lite, absl) out of what people read.

MediaPipe's graphs log through absl from native threads ("W0000 00:00:... inference_feedback_manager.cc:114]
...", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."): GLOG_minloglevel and
TF_CPP_MIN_LOG_LEVEL silence what still honours them, the rest is filtered at the file descriptor: fd 2
becomes a pipe whose lines are passed on to the real stderr, except those log lines. Everything else
(Python's own messages, tracebacks) passes unchanged and in order; the pipe is drained at exit.

``AIGC_NATIVE_LOGS=1`` keeps every line (for debugging MediaPipe itself).
"""
from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl/glog lines ("W0000 00:00:1795530650.493849   28443 file.cc:114] ...") and TF Lite's banners
NOISE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w./-]+:\d+\] "
                   rb"|INFO: Created TensorFlow Lite "
                   rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)")
# The start of a line that may still turn out to be one of those: held back until its end comes
MAYBE_NOISE = re.compile(rb"^(?:[IWEF][\d :.]*|I(?:N(?:F(?:O)?)?)?|W(?:A(?:R(?:N(?:I(?:N(?:G)?)?)?)?)?)?)(?::.*)?$",
                         re.DOTALL)

_lock = threading.Lock()
_installed = False


def quiet_native_logs() -> None:
    """Call before the native library is imported; installs the filter once per process."""
    global _installed
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _lock:
        if _installed or os.environ.get("AIGC_NATIVE_LOGS") == "1":
            return
        try:
            sys.stderr.flush()
            real = os.dup(2)
            read_end, write_end = os.pipe()
            os.dup2(write_end, 2)
            os.close(write_end)
        except (OSError, ValueError):
            return  # no usable fd 2 (an embedded interpreter...): leave it as it is
        pipe_inode = os.fstat(2).st_ino
        thread = threading.Thread(target=_forward, args=(read_end, real), name="native-log-filter", daemon=True)
        thread.start()
        atexit.register(_drain, real, pipe_inode, thread)
        _installed = True


def _forward(read_end: int, real: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
        if pending and not MAYBE_NOISE.match(pending):  # a prompt or a progress bar: show it now
            out, pending = out + pending, b""
        _write(real, out)
    if pending and not NOISE.match(pending):
        _write(real, pending)
    os.close(read_end)


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError:
            return


def _drain(real: int, pipe_inode: int, thread: threading.Thread) -> None:
    """At exit: give fd 2 back (the pipe then ends) and let the last lines through."""
    try:
        sys.stderr.flush()
        if os.fstat(2).st_ino == pipe_inode:  # still ours (a test runner may have swapped it since)
            os.dup2(real, 2)
    except (OSError, ValueError):
        return
    thread.join(timeout=5)
