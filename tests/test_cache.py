"""The shared model cache: lazy and single loads, LRU eviction that frees memory, failed loads."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pipelines.core.cache import ModelCache, process_rss
from pipelines.core.errors import ModelLoadError, UserError

MB = 2**20


class FakeWeights:
    """Stands in for a model: a real block of memory of a known size, with a close() like llama.cpp's."""

    def __init__(self, megabytes: int):
        self.array = np.ones(megabytes * MB, dtype=np.uint8)  # touched, so it is really resident
        self.closed = False

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def close(self):
        self.closed = True


def test_loads_lazily_and_once():
    cache = ModelCache(budget_bytes=100 * MB)
    calls = []
    loader = lambda: calls.append(1) or FakeWeights(1)  # noqa: E731
    assert "a" not in cache and calls == []
    first = cache.get("a", loader)
    second = cache.get("a", loader)
    assert first is second and len(calls) == 1
    assert [i.key for i in cache.loaded()] == ["a"]
    assert cache.loaded()[0].size_bytes == 1 * MB


def test_concurrent_requests_load_once():
    cache = ModelCache(budget_bytes=100 * MB)
    calls = []
    started = threading.Event()

    def slow_loader():
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return FakeWeights(1)

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("m", slow_loader))) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(calls) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_lru_eviction_under_budget_closes_and_frees_memory():
    cache = ModelCache(budget_bytes=250 * MB)
    a = cache.get("a", lambda: FakeWeights(100))
    cache.get("b", lambda: FakeWeights(100))
    cache.get("a", lambda: FakeWeights(100))  # a is now the most recently used
    rss_before = process_rss()
    cache.get("c", lambda: FakeWeights(100))  # over budget: b (least recent) goes
    keys = {i.key for i in cache.loaded()}
    assert keys == {"a", "c"}
    assert cache.used_bytes() <= 250 * MB
    assert not a.closed
    del a
    cache.clear()
    assert cache.loaded() == [] and cache.used_bytes() == 0
    # 300 MB were loaded at the peak; after clear the process gave (most of) it back.
    assert process_rss() < rss_before - 100 * MB


def test_in_use_model_is_not_freed_until_released():
    cache = ModelCache(budget_bytes=150 * MB)
    with cache.use("a", lambda: FakeWeights(100)) as a:
        cache.get("b", lambda: FakeWeights(100))  # pushes a out of the cache...
        assert "a" not in cache
        assert not a.closed  # ...but not from under its user
    assert a.closed  # freed once released


def test_failed_load_is_reported_and_not_cached():
    cache = ModelCache(budget_bytes=100 * MB)
    attempts = []

    def broken():
        attempts.append(1)
        raise OSError("file is truncated")

    with pytest.raises(ModelLoadError, match="truncated") as info:
        cache.get("x", broken, label="Broken model")
    assert "Broken model" in info.value.message and "Broken model" in info.value.zh
    assert "x" not in cache
    with pytest.raises(ModelLoadError):
        cache.get("x", broken)
    assert len(attempts) == 2  # tried again, not a cached failure
    assert cache.get("x", lambda: FakeWeights(1)).nbytes == MB  # and can succeed later


def test_user_errors_pass_through_unchanged():
    cache = ModelCache(budget_bytes=100 * MB)
    err = UserError("Put the model in models/text/", zh="请把模型放进 models/text/")

    def missing():
        raise err

    with pytest.raises(UserError) as info:
        cache.get("y", missing)
    assert info.value is err


def test_waiters_get_the_owners_error():
    """Requests that arrive while a load runs wait for it; when it fails they get its error, with no
    second load (the failure is not cached either: the next request tries again)."""
    cache = ModelCache(budget_bytes=100 * MB)
    gate, loading = threading.Event(), threading.Event()
    loads = []

    def failing():
        loads.append(threading.current_thread().name)
        loading.set()
        gate.wait(10)
        raise RuntimeError("boom")

    errors = []

    def worker():
        try:
            cache.get("z", failing)
        except ModelLoadError as e:
            errors.append(e)

    owner = threading.Thread(target=worker, name="owner")
    owner.start()
    assert loading.wait(10)
    waiters = [threading.Thread(target=worker, name=f"waiter-{i}") for i in range(2)]
    for th in waiters:
        th.start()
    wait_until_waiting_for_a_load(waiters)
    gate.set()
    for th in [owner, *waiters]:
        th.join(10)
    assert loads == ["owner"]
    assert len(errors) == 3 and errors[0] is errors[1] is errors[2] and "boom" in str(errors[0])
    assert cache.get("z", lambda: FakeWeights(1)) is not None  # not cached: the next request loads


def wait_until_waiting_for_a_load(threads, timeout: float = 10.0) -> None:
    """Until each thread is blocked in the cache, waiting for another thread's load to finish."""
    import sys

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frames = sys._current_frames()
        if all(_waits_in_acquire(frames.get(th.ident)) for th in threads):
            return
        time.sleep(0.005)
    raise AssertionError("the requests never started waiting for the load")


def _waits_in_acquire(frame) -> bool:
    """The thread sits in threading's Event.wait, called straight from ModelCache._acquire."""
    while frame is not None:
        if frame.f_code.co_name == "wait" and frame.f_back is not None and \
                frame.f_back.f_code.co_name == "_acquire":
            return True
        frame = frame.f_back
    return False


def test_torch_module_size_is_measured():
    import torch

    cache = ModelCache(budget_bytes=100 * MB)
    cache.get("lin", lambda: torch.nn.Linear(1024, 256))
    assert cache.loaded()[0].size_bytes == (1024 * 256 + 256) * 4


def test_lowering_the_budget_evicts():
    cache = ModelCache(budget_bytes=100 * MB)
    cache.get("a", lambda: FakeWeights(40))
    cache.get("b", lambda: FakeWeights(40))
    cache.budget_bytes = 50 * MB
    assert [i.key for i in cache.loaded()] == ["b"]


def test_a_model_that_chose_its_device_is_listed_there():
    """A twin engine picks its device when it loads (MuseTalk on a GPU); the Models tab shows that one."""
    from types import SimpleNamespace

    cache = ModelCache(budget_bytes=2**30)
    cache.get("twin:musetalk", lambda: SimpleNamespace(device="cuda:0"), label="MuseTalk", device="cpu")
    cache.get("text:x", lambda: SimpleNamespace(device=None), label="X", device="cpu")  # no device of its own
    devices = {info.label: info.device for info in cache.loaded()}
    assert devices == {"MuseTalk": "cuda:0", "X": "cpu"}
