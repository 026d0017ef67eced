"""Hosting glue: on Hugging Face ZeroGPU Spaces, GPU-bound handlers are wrapped in ``spaces.GPU``.

Everything works unchanged elsewhere (the decorator is then a no-op).
"""
from __future__ import annotations

import functools
import importlib.util
import os


def on_zero_gpu() -> bool:
    return bool(os.environ.get("SPACES_ZERO_GPU")) and importlib.util.find_spec("spaces") is not None


def zero_gpu(duration: int = 60):
    """Decorator: on Hugging Face ZeroGPU hardware wrap the function in spaces.GPU; else a no-op.

    Video work asks for a longer duration (the twin renderer uses 300 s).
    """
    def wrap(fn):
        if not on_zero_gpu():
            return fn
        import spaces  # only present on Spaces

        return functools.wraps(fn)(spaces.GPU(duration=duration)(fn))

    return wrap
