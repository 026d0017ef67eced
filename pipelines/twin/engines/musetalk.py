"""The "musetalk" engine: MuseTalk 1.5 redraws the mouth of every frame of the classic engine's motion.

The classic engine supplies head motion, blinks and framing, and every landmark's position per frame
(``ClassicEngine.animate_posed``). For each frame a 256 px face crop is placed from those points, its
lower half is masked, and one UNet pass (conditioned on the photo's own crop, encoded once, and on
0.2 s of Whisper features around the frame) draws the mouth and jaw; the drawing is blended back
over the lower face (``mouth_paste``). Frames go through in batches: on CUDA in fp16, the batch size
chosen from free memory and halved when memory runs out; on a CPU it works, slowly, and says so first.

The networks load lazily through the shared model cache from ``models/twin/musetalk/`` (the public
release's layout) or from the hub (``musetalk_model``). Registered as backend ``musetalk``.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterator, Sequence

import numpy as np

from ...core.errors import UserError
from ...core.jobs import StopToken, check_stop
from ...core.notices import Notice
from . import AnimationJob, PosedFrame, TalkingHeadEngine, register_engine
from .classic import ClassicEngine
from .mouth_paste import crop_box, cut_crop, paste_mouth
from .musetalk_model import CROP_SIZE, MuseTalkModel, window_starts

log = logging.getLogger(__name__)

CPU_BATCH = 4  # frames per pass on a CPU: enough to amortise the call overhead, small in memory
MAX_GPU_BATCH = 32  # beyond this a bigger batch gains little
GPU_BYTES_PER_FRAME = 400 * 2**20  # fp16 activations of one frame (UNet at 32x32 + VAE at 256 px), with headroom
FULL_UNET_PARAMETERS = 850_000_000  # the released UNet (musetalk.json)
# Seconds per frame for the full-size networks. CPU: 14.6 core-seconds, measured here with random
# weights of the release's sizes (VAE encode 1.8 s + UNet 1.9 s + VAE decode 3.7 s on 2 threads).
# CUDA: MuseTalk's README reports 30 fps+ on a V100; not measured here (no GPU).
CPU_CORE_SECONDS_PER_FRAME = 14.6
GPU_SECONDS_PER_FRAME = 1 / 30
MPS_SECONDS_PER_FRAME = 0.5  # a guess between the two; not measured
CLASSIC_SECONDS_PER_FRAME = 0.01  # the motion underneath (bench_twin: ~130 frames/s with encoding)


def estimate_seconds(n_frames: int, device: str, unet_parameters: int = FULL_UNET_PARAMETERS,
                     cpu_threads: int | None = None) -> float:
    """Rough time to redraw ``n_frames`` on ``device`` (scaled by the UNet's size; the VAE and Whisper follow it)."""
    if device.startswith("cuda"):
        per_frame = GPU_SECONDS_PER_FRAME
    elif device == "mps":
        per_frame = MPS_SECONDS_PER_FRAME
    else:
        if cpu_threads is None:
            import torch

            cpu_threads = torch.get_num_threads()
        per_frame = CPU_CORE_SECONDS_PER_FRAME / max(1, cpu_threads)
    # smaller networks cost less, down to the fixed cost of crops, pastes and the VAE's 256 px images
    scale = max(unet_parameters / FULL_UNET_PARAMETERS, 0.02)
    return n_frames * (per_frame * scale + CLASSIC_SECONDS_PER_FRAME)


def choose_batch_size(device: str, free_bytes: int | None = None) -> int:
    """Frames per pass: from the free GPU memory on CUDA (asked of the driver unless given), else fixed."""
    if not device.startswith("cuda"):
        return CPU_BATCH
    if free_bytes is None:
        import torch

        free_bytes, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(max(1, min(MAX_GPU_BATCH, 0.7 * free_bytes // GPU_BYTES_PER_FRAME)))


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


class HalvingBatches:
    """Runs a function over a batch in pieces of ``size``; out of memory halves the size and retries.

    The size it settles on is kept for the next batches. One item at a time still out of memory ends
    with a clear error (the app stays up; the half-written video is discarded by the pipeline).
    """

    def __init__(self, size: int, release: Callable[[], None] | None = None):
        self.size = max(1, int(size))
        self.release = release or _release_memory
        self.halvings = 0

    def run(self, items: Sequence, forward: Callable[[Sequence], list]) -> list:
        results: list = []
        start = 0
        while start < len(items):
            piece = items[start: start + self.size]
            out_of_memory = False
            try:
                out = forward(piece)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled here
                if not is_out_of_memory(exc):
                    raise
                out_of_memory = True
            if out_of_memory:  # past the except block, the error's frames (and their tensors) are gone
                self.release()
                if self.size == 1:
                    raise out_of_memory_error("even one frame at a time", "即使一次只处理一帧，GPU 显存仍然不足")
                self.size = max(1, self.size // 2)
                self.halvings += 1
                log.warning("out of GPU memory: retrying with %d frames per batch", self.size)
                continue
            results.extend(out)
            start += len(piece)
        return results


def out_of_memory_error(when: str, what_happened_zh: str) -> UserError:
    """The clear message that ends a render which does not fit in the GPU's memory."""
    return UserError(f"Out of GPU memory {when}. Close other programs that use the GPU, or choose the classic engine.",
                     zh=f"{what_happened_zh}。请关闭其他占用 GPU 的程序，或改用 classic 引擎。")


def _release_memory() -> None:
    from ...core.cache import release_memory

    release_memory()


class MuseTalkEngine(TalkingHeadEngine):
    """MuseTalk 1.5 lip-sync drawn over the classic engine's head motion."""

    name = "musetalk"

    def __init__(self, model: MuseTalkModel, batch_size: int | None = None):
        self.model = model
        self.batch_size = batch_size

    @property
    def device(self) -> str:
        return self.model.device

    def size_bytes(self) -> int:
        return self.model.size_bytes()

    def estimate_seconds(self, n_frames: int) -> float:
        return estimate_seconds(n_frames, self.model.device, self.model.unet_parameters)

    def notices(self, job: AnimationJob) -> list[Notice]:
        if self.model.device.startswith(("cuda", "mps")):
            return []
        seconds = self.estimate_seconds(job.n_frames)
        minutes = seconds / 60
        when = f"about {minutes:.0f} minutes" if minutes >= 1.5 else f"about {seconds:.0f} seconds"
        when_zh = f"约 {minutes:.0f} 分钟" if minutes >= 1.5 else f"约 {seconds:.0f} 秒"
        return [Notice(f"MuseTalk is running on the CPU, which is slow: {when} for {job.n_frames} frames. "
                       "A GPU is recommended; the classic engine is faster than real time.",
                       f"MuseTalk 正在 CPU 上运行，速度很慢：{job.n_frames} 帧{when_zh}。建议使用 GPU；"
                       "classic 引擎比实时还快。")]

    def animate(self, job: AnimationJob, *, stop: StopToken | None = None) -> Iterator[np.ndarray]:
        model = self.model
        for notice in self.notices(job):
            log.warning(notice.en)
        # 1. The reference: the photo's own face crop, encoded once (one image: nothing to halve, so
        #    running out of memory here ends with the same clear message as a batch of one)
        # 2. Audio: Whisper features for the whole track; each frame reads its own window
        out_of_memory = False
        try:
            reference = model.encode(cut_crop(job.image, crop_box(job.face.points), CROP_SIZE)[None])
            features = model.audio_features(job.audio, job.sample_rate)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled here
            if not is_out_of_memory(exc):
                raise
            out_of_memory = True
        if out_of_memory:  # outside the except block, so the failed step's tensors are already gone
            _release_memory()
            raise out_of_memory_error("for the reference face and the audio features",
                                      "处理参考人脸和音频特征时 GPU 显存不足")
        starts = window_starts(job.n_frames, job.options.fps)
        batches = HalvingBatches(self.batch_size or choose_batch_size(model.device))

        def redraw(frames: Sequence[tuple[int, PosedFrame, tuple]]) -> list[np.ndarray]:
            crops = np.stack([cut_crop(posed.image, box, CROP_SIZE) for _, posed, box in frames])
            tokens = model.audio_windows(features, starts[[i for i, _, _ in frames]])
            return list(model.redraw(crops, reference, tokens))

        # 3. The classic motion, its mouth redrawn batch by batch (Stop is honoured between batches)
        def flush(pending: list) -> Iterator[np.ndarray]:
            check_stop(stop)
            for (_, posed, box), drawing in zip(pending, batches.run(pending, redraw)):
                yield paste_mouth(posed.image, drawing, box, posed.points)

        pending: list[tuple[int, PosedFrame, tuple]] = []
        for i, posed in enumerate(ClassicEngine().animate_posed(job, stop=stop)):
            pending.append((i, posed, crop_box(posed.points)))
            if len(pending) >= batches.size:
                yield from flush(pending)
                pending = []
        if pending:
            yield from flush(pending)

    def close(self) -> None:
        self.model.close()


def load_musetalk_engine(spec, runtime) -> MuseTalkEngine:
    """The catalog's entry -> the engine: the local release folder, else the hub (or a clear 'put it here')."""
    from ...core.catalog import hub_reachable
    from .musetalk_model import hub_files, load_musetalk, local_files

    models_dir = getattr(getattr(runtime, "catalog", None), "models_dir", None)
    if spec.source_kind == "local":
        files = local_files(spec.source)
    else:
        files = hub_files(spec.source, vae_repo=spec.options.get("vae_repo", "stabilityai/sd-vae-ft-mse"),
                          whisper_repo=spec.options.get("whisper_repo", "openai/whisper-tiny"),
                          online=hub_reachable(), models_dir=models_dir)
    return MuseTalkEngine(load_musetalk(files, device=runtime.device, dtype=runtime.dtype()))


register_engine("musetalk", load_musetalk_engine)
