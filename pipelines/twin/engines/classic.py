"""The built-in "classic" engine: landmark-driven warping of the photo, offline on a CPU.

The speech (phoneme timings and loudness) becomes mouth poses (``pipelines.twin.driving``); blinks,
eye movements, brow lifts and a 2.5D head turn with nods are seeded, so a seed repeats a video. The
renderer (``pipelines.twin.render``) prepares the photo once (depth, person mask, textures, spline
matrices) and then makes each frame with one warp of the face region and a painted mouth interior.
Frames are yielded one at a time; nothing holds the whole clip. A clip can also be one piece of a
longer timeline (``AnimationOptions.start_frame``: a live conversation), and then the photo's rig is
built once and reused.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numpy as np

from ...core.jobs import StopToken, check_stop
from ...core.cpu import lower_this_threads_priority
from ..driving import Performance, performance, speech_level
from ..render.mouth import MouthPose
from ..render.rig import FaceRig, FramePose
from ..render.warp import FaceWarp, tps_matrix  # noqa: F401 - kept importable from here
from . import AnimationJob, PosedFrame, TalkingHeadEngine, register_engine

__all__ = ["ClassicEngine", "FaceRig", "FramePose", "FaceWarp", "MouthPose", "tps_matrix", "frame_poses"]


def frame_poses(perf: Performance, rest_gap: float) -> Iterator[FramePose]:
    """Per-frame poses from a performance; ``rest_gap`` is the photo's own lip gap (eye distances)."""
    m = perf.mouth
    gain = perf.expression
    level = speech_level(perf.loudness)
    loud = np.clip(perf.loudness / level, 0.0, 1.3) if level > 1e-4 else np.zeros(len(m), np.float32)
    k = 0.35 + 0.65 * gain  # 0: the lips barely move, 1: natural, 2: exaggerated
    shape = min(gain, 1.4)
    for i in range(len(m)):
        r = float(m.rest[i])
        speaking = float(m.speaking[i])
        # a photo with parted lips (a smile showing teeth) keeps that parting on open sounds (a little
        # less when quiet); closing sounds (m, b, p, f, v) close the lips all the same
        opens = min(float(m.gap[i]) / 0.05, 1.0)
        # (parted lips also open a little wider on loud vowels, so that speech spans above and below the rest)
        speech_gap = float(m.gap[i]) * (1 + 1.5 * rest_gap) + rest_gap * opens * (0.6 + 0.4 * min(loud[i], 1.0))
        speech_gap = rest_gap + k * (speech_gap - rest_gap)
        # in a pause while talking the lips come together; once the talk is over (``speaking`` fades) the
        # photo's own mouth comes back, parted or not
        pause_gap = rest_gap * (1.0 - speaking)
        mouth = MouthPose(jaw=(1 - r) * k * float(m.jaw[i]),
                          gap=(1 - r) * speech_gap + r * pause_gap,
                          width=(1 - r) * shape * float(m.width[i]),
                          pucker=(1 - r) * shape * float(m.pucker[i]),
                          upper=(1 - r) * k * float(m.upper[i]),
                          tongue=(1 - r) * float(m.tongue[i]),
                          relax=0.5 * min(gain, 1.5) * speaking)
        yield FramePose(mouth=mouth, blink=float(perf.blink[i]), gaze=perf.gaze[i], brow=float(perf.brows[i]),
                        head=perf.head[i])


def _made_ahead(make: Callable, items: Iterable, workers: int = 2, background: bool = False) -> Iterator:
    """``make(item)`` for each item, in order, by ``workers`` threads working ahead of the consumer (at most
    ``workers + 1`` results held). Much of a frame's work is OpenCV and numpy, which let go of the GIL, so
    a second frame thread takes the CPU time the encoder leaves free. The threads stop when the consumer
    stops (a Stop, an error, the generator closed); their errors reach the consumer. ``background``: the
    threads run at a lower CPU priority."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="twin-frames",
                              initializer=lower_this_threads_priority if background else None)
    pending: deque = deque()
    try:
        for item in items:
            pending.append(pool.submit(make, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


class ClassicEngine(TalkingHeadEngine):
    """Audio-driven landmark warping: offline, no weights beyond MediaPipe's, faster than real time."""

    name = "classic"
    size_bytes = 1  # no weights of its own

    KEPT_RIGS = 6  # photos whose rig is kept for reuse (one per live conversation)

    def __init__(self, runtime=None):
        self.runtime = runtime  # for the MediaPipe graphs the renderer loads (depth, person mask)
        self._rigs: OrderedDict[tuple, tuple[np.ndarray, object, FaceRig]] = OrderedDict()
        self._rigs_lock = threading.Lock()

    def animate(self, job: AnimationJob, *, stop: StopToken | None = None) -> Iterator[np.ndarray]:
        for posed in self.animate_posed(job, stop=stop):
            yield posed.image

    def animate_posed(self, job: AnimationJob, *, stop: StopToken | None = None) -> Iterator[PosedFrame]:
        """Like ``animate``, with every landmark's position in each frame (for engines built on top).

        Frames are made ahead by two worker threads, so that making the next frames overlaps with
        whatever the caller does with this one (encoding it, mostly); at most three are held.
        """
        opts = job.options
        if opts.start_frame is None:  # a clip of its own
            rig = FaceRig(job.image, job.face, self.runtime, seed=opts.seed, still=opts.still)
        else:  # one of many short clips of one photo (a live conversation): its rig is reused
            rig = self._rig_for(job.image, job.face, opts.seed, opts.still)
        perf = performance(job.audio, job.sample_rate, job.n_frames, opts.fps, job.timings,
                           expression=opts.expression, still=opts.still, seed=opts.seed,
                           start_frame=opts.start_frame)
        for posed in _made_ahead(rig.render_posed, frame_poses(perf, rig.rest_gap), background=opts.background):
            check_stop(stop)
            yield posed

    def _rig_for(self, image: np.ndarray, face, seed: int, still: bool) -> FaceRig:
        """The photo's rig, built once and reused while the same image and face objects come back.
        A few are kept, as sessions share the engine; a rig is tens of MB for a 512 px frame."""
        key = (id(image), id(face), seed, still)
        with self._rigs_lock:
            kept = self._rigs.get(key)
            if kept is not None and kept[0] is image and kept[1] is face:
                self._rigs.move_to_end(key)
                return kept[2]
        rig = FaceRig(image, face, self.runtime, seed=seed, still=still)
        with self._rigs_lock:
            self._rigs[key] = (image, face, rig)  # holding the objects keeps their ids from being reused
            while len(self._rigs) > self.KEPT_RIGS:
                self._rigs.popitem(last=False)
        return rig


register_engine("classic", lambda spec, runtime: ClassicEngine(runtime))
