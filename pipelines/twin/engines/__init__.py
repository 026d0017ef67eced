"""Talking-head engines behind one interface: one photo (with its face landmarks) and a voice track in,
video frames out.

- ``TalkingHeadEngine.animate(job) -> frames`` is the interface; ``register_engine(backend, factory)``
  makes a backend usable by catalog entries with ``task="twin", backend=<backend>``.
- Built-in backends live in this package, one module each (``classic.py``: the offline landmark-warp
  renderer; ``did.py``: D-ID's cloud service); a backend not registered yet is imported from here by name
  on first use, so engines cost nothing until someone picks them.
- An engine with voices of its own (a cloud service) says so with ``speaks(voice)``; the pipeline then
  lets it ``speak()`` the script, and the video's audio and length come from what it rendered.

What it does not: encode video, detect faces or synthesise speech (``pipelines.twin.pipeline`` does).
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ...core.errors import ModelLoadError
from ...core.jobs import StopToken
from ...face import landmarks as fl

@dataclass
class AnimationOptions:
    fps: int = 25
    expression: float = 1.0  # 0 = lips barely move, 1 = natural, 2 = exaggerated
    still: bool = False  # True: only the mouth moves (no head motion, breathing or blinks)
    seed: int = 0
    # None: the clip stands alone (today's behaviour). An int: the clip is frames [start_frame,
    # start_frame + n_frames) of a longer timeline (a live conversation rendered clip by clip), and
    # blinks, head motion and breathing depend only on the seed and the frame's place on that
    # timeline, so consecutive clips join without a jump.
    start_frame: int | None = None
    # True: frames are made at a lower CPU priority (a video in the queue of a shared studio must not
    # slow the quick text and voice answers); a live conversation keeps False, it runs to the clock
    background: bool = False


@dataclass
class AnimationJob:
    """Everything an engine gets: the frame to animate (the video's own size) and what drives it."""

    image: np.ndarray  # RGB uint8, H x W x 3, both even
    face: fl.FaceLandmarks  # in ``image`` pixels
    audio: np.ndarray  # mono float32
    sample_rate: int
    n_frames: int
    timings: Sequence = ()  # objects with .start .end .text .kind ("word" | "phoneme" | "sentence")
    options: AnimationOptions = field(default_factory=AnimationOptions)
    rendered: Any = None  # EngineSpeech.rendered, handed back to the engine that spoke the script


@dataclass
class EngineSpeech:
    """The script spoken by the engine itself: the audio the video will carry, and what the engine made
    while speaking (e.g. a cloud service's finished video), which comes back to it as ``job.rendered``."""

    audio: np.ndarray  # mono float32
    sample_rate: int
    voice: str
    language: str = ""
    rendered: Any = None


@dataclass
class PosedFrame:
    """One frame and where the face is in it: every Face Mesh landmark after this frame's motion.

    Engines that redraw part of the face (a neural mouth) on top of another engine's motion use the
    points to place their crop and blend mask.
    """

    image: np.ndarray  # RGB uint8, the job image's size
    points: np.ndarray  # (478, 2) float32, ``job.face.points`` moved as this frame shows them


class TalkingHeadEngine(ABC):
    name = "engine"
    device = "cpu"  # where it runs, as the Models tab shows it (an engine on a GPU says which)

    @abstractmethod
    def animate(self, job: AnimationJob, *, stop: StopToken | None = None) -> Iterator[np.ndarray]:
        """Yield exactly ``job.n_frames`` RGB frames of ``job.image``'s size."""

    def speaks(self, voice: str | None) -> bool:
        """Does this engine speak scripts itself in ``voice`` (None: the default voice)? Most engines don't."""
        return False

    def speak(self, image: np.ndarray, face: fl.FaceLandmarks, script: str, voice: str | None, *, fps: int,
              stop: StopToken | None = None, on_progress=None) -> EngineSpeech:
        """Render ``script`` spoken in ``voice`` for this image; called only when ``speaks(voice)``."""
        raise NotImplementedError

    def notices(self, job: AnimationJob) -> list:
        """What the user should know before ``job`` runs (a slow device, the time it will take): Notices."""
        return []


EngineFactory = Callable[["object", "object"], TalkingHeadEngine]  # (ModelSpec, Runtime) -> engine
_ENGINES: dict[str, EngineFactory] = {}


def register_engine(backend: str, factory: EngineFactory) -> None:
    """Make a backend usable: catalog entries with ``task="twin", backend=<backend>`` then load through it."""
    _ENGINES[backend] = factory


def _import_builtin(backend: str) -> None:
    """Built-in engines register themselves when their module (``engines/<backend>.py``) is imported."""
    if backend not in _ENGINES and backend.isidentifier():
        try:
            importlib.import_module(f"{__name__}.{backend}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{backend}":
                raise  # the engine exists but a package it needs is missing: say which


def engine_backends() -> list[str]:
    _import_builtin("classic")
    return sorted(_ENGINES)


def load_engine(name: str, runtime) -> tuple[str, Callable[[], TalkingHeadEngine], str]:
    """(cache key, loader, label) for the twin engine called ``name`` in the catalog."""
    spec = runtime.catalog.get("twin", name)
    _import_builtin(spec.backend)
    factory = _ENGINES.get(spec.backend)
    if factory is None:
        raise ModelLoadError(
            f"No engine backend '{spec.backend}' is installed for '{spec.name}'. Installed: {', '.join(engine_backends())}.",
            zh=f"模型“{spec.name}”所需的引擎后端“{spec.backend}”未安装。已安装：{', '.join(engine_backends())}。")
    return f"twin:{spec.backend}:{spec.source}", (lambda: factory(spec, runtime)), spec.name


