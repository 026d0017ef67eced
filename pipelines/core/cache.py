"""The one shared model cache: lazy, thread-safe, least-recently-used eviction under a memory budget.

Every pipeline asks the cache for its model with a key and a loader function:

    with cache.use("text:smollm2", load_smollm2, label="SmolLM2-135M", device="cpu") as llm:
        ...

- Nothing loads until first use; two requests for the same key at once load it once (the second waits).
- A failed load is raised to every waiter and is *not* cached: the next request tries again.
- When the loaded models exceed the budget, the least recently used ones are unloaded. Models being
  used right now (inside ``use``) are never pulled from under their user: they are freed when released.
- Unloading really frees memory: ``close()`` where a model has one, garbage collection, CUDA cache
  release and glibc ``malloc_trim`` so the process RSS goes down.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import ModelLoadError, UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the UI shows about a loaded model."""

    key: str
    label: str
    device: str
    size_bytes: int
    loaded_at: float
    last_used: float
    in_use: int

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 2**20


@dataclass
class _Entry:
    key: str
    label: str
    device: str
    model: Any
    size_bytes: int
    loaded_at: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    users: int = 0
    evicted: bool = False  # removed from the cache while in use: free it when the last user leaves


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    entry: _Entry | None = None
    error: BaseException | None = None


def process_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def estimate_size(model: Any) -> int | None:
    """Bytes of weights held by a model, when the object can tell; None when it cannot."""
    for attr in ("size_bytes", "nbytes"):
        value = getattr(model, attr, None)
        if callable(value):
            value = value()
        if isinstance(value, int) and value > 0:
            return value
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(model, torch.nn.Module):
            tensors = list(model.parameters()) + list(model.buffers())
            return sum(t.numel() * t.element_size() for t in tensors) or None
        components = getattr(model, "components", None)  # diffusers pipelines
        if isinstance(components, dict):
            total = sum(estimate_size(c) or 0 for c in components.values() if isinstance(c, torch.nn.Module))
            return total or None
        inner = getattr(model, "model", None)  # transformers pipelines and our wrappers
        if isinstance(inner, torch.nn.Module):
            return estimate_size(inner)
    return None


def default_budget_bytes(device: str = "cpu") -> int:
    """60 % of the RAM free now (or 80 % of the GPU's memory): room for models, the rest for work."""
    if device.startswith("cuda"):
        from .devices import gpu_memory_bytes

        total = gpu_memory_bytes(device)
        if total:
            return int(total * 0.8)
    import psutil

    return int(psutil.virtual_memory().available * 0.6)


def release_memory() -> None:
    """Give freed memory back to the operating system (and the GPU driver)."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class ModelCache:
    def __init__(self, budget_bytes: int | None = None, device: str = "cpu"):
        self._budget = budget_bytes
        self._device = device
        self._lock = threading.RLock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # oldest use first
        self._pending: dict[str, _Pending] = {}

    # ----- budget -----
    @property
    def budget_bytes(self) -> int:
        if self._budget is None:
            self._budget = default_budget_bytes(self._device)
        return self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        with self._lock:
            self._budget = int(value)
            self._evict_over_budget(keep=None)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.size_bytes for e in self._entries.values())

    # ----- loading -----
    def get(self, key: str, loader: Callable[[], Any], *, label: str | None = None,
            device: str = "cpu", size_hint: int | None = None) -> Any:
        """Return the model for ``key``, loading it with ``loader()`` if needed (not pinned)."""
        with self.use(key, loader, label=label, device=device, size_hint=size_hint) as model:
            return model

    @contextlib.contextmanager
    def use(self, key: str, loader: Callable[[], Any], *, label: str | None = None,
            device: str = "cpu", size_hint: int | None = None) -> Iterator[Any]:
        """Pin the model for the duration of the ``with`` block, so eviction cannot free it mid-use."""
        entry = self._acquire(key, loader, label or key, device, size_hint)
        try:
            yield entry.model
        finally:
            self._release(entry)

    def _acquire(self, key, loader, label, device, size_hint) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.last_used = time.time()
                entry.users += 1
                return entry
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = _Pending()
        if not owner:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            with self._lock:
                pending.entry.users += 1
                return pending.entry
        try:
            entry = self._load(key, loader, label, device, size_hint)
        except BaseException as exc:
            error = exc if isinstance(exc, UserError) else ModelLoadError(
                f"Could not load {label}: {exc}", zh=f"无法加载模型 {label}：{exc}")
            pending.error = error
            with self._lock:
                del self._pending[key]
            pending.done.set()
            release_memory()
            if error is exc:
                raise
            raise error from exc
        with self._lock:
            entry.users += 1
            self._entries[key] = entry
            del self._pending[key]
            self._evict_over_budget(keep=key)
        pending.entry = entry
        pending.done.set()
        return entry

    def _load(self, key, loader, label, device, size_hint) -> _Entry:
        if size_hint:
            with self._lock:
                self._evict_over_budget(keep=None, incoming=size_hint)
        rss_before = process_rss()
        started = time.perf_counter()
        model = loader()
        size = estimate_size(model) or max(process_rss() - rss_before, 0) or size_hint or 0
        log.info("loaded %s (%.0f MB) in %.2f s", label, size / 2**20, time.perf_counter() - started)
        # a model that chose its own device when it loaded (a twin engine) says where it runs
        own = getattr(model, "device", None)
        device = own if isinstance(own, str) else device
        return _Entry(key=key, label=label, device=device, model=model, size_bytes=int(size))

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            entry.last_used = time.time()
            free_now = entry.evicted and entry.users == 0
        if free_now:
            self._free(entry)

    # ----- unloading -----
    def unload(self, key: str) -> bool:
        """Unload one model; True if it was loaded. In-use models are freed when released."""
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return False
            entry.evicted = True
            free_now = entry.users == 0
        if free_now:
            self._free(entry)
        return True

    def clear(self) -> None:
        for key in list(self._entries):
            self.unload(key)

    def _evict_over_budget(self, keep: str | None, incoming: int = 0) -> None:
        """Unload least recently used models until the loaded ones (plus ``incoming``) fit the budget."""
        budget = self.budget_bytes
        for key in list(self._entries):
            if self.used_bytes() + incoming <= budget:
                break
            entry = self._entries[key]
            if key == keep:
                continue
            log.info("evicting %s to stay under the %.0f MB budget", entry.label, budget / 2**20)
            self.unload(key)

    def _free(self, entry: _Entry) -> None:
        model, entry.model = entry.model, None
        close = getattr(model, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
        del model
        release_memory()

    # ----- inspection -----
    def loaded(self) -> list[ModelInfo]:
        with self._lock:
            return [ModelInfo(e.key, e.label, e.device, e.size_bytes, e.loaded_at, e.last_used, e.users)
                    for e in reversed(self._entries.values())]

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries
