"""The "did" engine: the talking head is rendered by D-ID's cloud service with the user's own API key.

How: the framed photo is uploaded (``POST /images``); the talk is made either from the script with one of
D-ID's voices (then D-ID speaks it and its video carries the audio: :meth:`DIDEngine.speak`) or from our
audio, a recording or our own synthesised voice (``POST /audios``); D-ID is polled until the video is done;
the video is downloaded and its frames, resampled to the job's size and frame rate, are yielded, so the
pipeline's own subtitles, label and metadata apply unchanged. Stop deletes the talk on D-ID.

The photo (and the audio or script) leave this computer; the key comes from :mod:`pipelines.twin.did_keys`.
What it does not: keep the key (each job asks for the current one) or keep D-ID's video after decoding it.
"""
from __future__ import annotations

import io
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ...core.errors import Stopped
from ...core.jobs import StopToken, check_stop, report
from .. import did_client, did_keys
from . import AnimationJob, EngineSpeech, TalkingHeadEngine, register_engine

log = logging.getLogger(__name__)

# stitch: D-ID animates the whole uploaded image (not only a crop around the face), so its video has our frame's
# proportions and scales back to it exactly.
TALK_CONFIG = {"result_format": "mp4", "stitch": True}


@dataclass
class RenderedTalk:
    """A finished D-ID talk on this computer: its id (to delete it on Stop) and its video, in a temp folder."""

    talk_id: str
    video: Path
    client: did_client.DIDClient = field(repr=False)
    _folder: tempfile.TemporaryDirectory = field(repr=False, default=None)

    def cleanup(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()


class DIDEngine(TalkingHeadEngine):
    name = "did"

    def __init__(self, spec=None, runtime=None):
        self.spec, self.runtime = spec, runtime

    def client(self) -> did_client.DIDClient:
        """A client for the current render's key (never stored on the engine, which renders are sharing)."""
        return did_client.DIDClient(did_keys.current_key())

    # ---- D-ID speaks the script with its own voice
    def speaks(self, voice: str | None) -> bool:
        return voice in (None, "", "auto") or did_client.is_did_voice(voice)

    def speak(self, image: np.ndarray, face, script: str, voice: str | None, *, fps: int,
              stop: StopToken | None = None, on_progress=None) -> EngineSpeech:
        from ...core.media import load_audio

        voice_id = did_client.did_voice_for(voice, script)
        script_spec = {"type": "text", "input": script, "provider": {"type": "microsoft", "voice_id": voice_id}}
        talk = self._render(image, script_spec, stop=stop, on_progress=on_progress)
        try:
            audio, rate = load_audio(talk.video, sample_rate=24000)
        except BaseException:
            talk.cleanup()
            raise
        return EngineSpeech(audio=audio, sample_rate=rate, voice=f"D-ID {voice_id}",
                            language="zh" if voice_id.startswith("zh") else "en", rendered=talk)

    # ---- frames
    def animate(self, job: AnimationJob, *, stop: StopToken | None = None) -> Iterator[np.ndarray]:
        from ...core.media import iter_video_frames

        talk = job.rendered if isinstance(job.rendered, RenderedTalk) else self._render_audio(job, stop)
        h, w = job.image.shape[:2]
        try:
            for frame in iter_video_frames(talk.video, w, h, job.options.fps, job.n_frames):
                check_stop(stop)
                yield frame
        except Stopped:
            talk.client.delete_talk_soon(talk.talk_id)
            raise
        finally:
            talk.cleanup()

    def _render_audio(self, job: AnimationJob, stop: StopToken | None) -> RenderedTalk:
        """The talk driven by our audio (a recording, or our own synthesised voice)."""
        from ...core.media import write_wav

        with tempfile.TemporaryDirectory(prefix="did-audio-") as folder:
            wav = write_wav(Path(folder) / "voice.wav", job.audio, job.sample_rate)
            data = wav.read_bytes()
        client = self.client()
        audio_url = client.upload_audio(data)
        return self._render(job.image, {"type": "audio", "audio_url": audio_url}, stop=stop, client=client)

    def _render(self, image: np.ndarray, script: dict, *, stop: StopToken | None, on_progress=None,
                client: did_client.DIDClient | None = None) -> RenderedTalk:
        client = client or self.client()
        check_stop(stop)
        source_url = client.upload_image(_png(image))
        check_stop(stop)
        talk_id = client.create_talk(source_url, script, TALK_CONFIG)
        log.info("D-ID talk %s created", talk_id)
        folder = tempfile.TemporaryDirectory(prefix="did-talk-")
        try:
            talk = client.wait_for_talk(talk_id, stop=stop, on_progress=_scaled(on_progress, 0.05, 0.12))
            video = client.download(talk["result_url"], Path(folder.name) / "talk.mp4", stop=stop)
            report(on_progress, 0.13, "D-ID: downloaded")
        except Stopped:
            folder.cleanup()
            client.delete_talk_soon(talk_id)  # Stop deletes the talk (once D-ID lets us: 409 while it renders)
            raise
        except BaseException:
            folder.cleanup()
            raise
        return RenderedTalk(talk_id, video, client, folder)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _scaled(on_progress, start: float, end: float):
    """Map the client's 0..1 progress into the pipeline's [start, end] slice."""
    if on_progress is None:
        return None
    return lambda fraction, text: on_progress(start + (end - start) * fraction, text)


register_engine("did", DIDEngine)
