"""One call per output file: write the invisible watermark and sign Content Credentials.

The pipelines call these where they write a file (``provenance=False`` turns both off):

- :func:`save_png` - an image (faces, text-to-image): watermark, save, sign;
- :func:`video_frame_marker` + :func:`sign_output` - twin videos: mark each frame before encoding,
  sign the finished MP4;
- :func:`mark_audio_file` - synthesised speech (WAV or MP3): watermark the samples, sign.

Every output gets a fresh output id; the watermark carries it, the Content Credentials repeat it, so
the checker can tell that the two belong together. Signing failures never lose the user's output: the
file stays (watermarked) and the error is logged.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .credentials import sign_file
from .payload import Payload, new_output_id

log = logging.getLogger(__name__)


def _sign_quietly(path: Path, **claims) -> bool:
    try:
        sign_file(path, **claims)
        return True
    except Exception:  # noqa: BLE001 - a missing/broken c2pa must not cost the user the file itself
        log.exception("could not sign Content Credentials for %s", path)
        return False


def save_png(image, path: str | Path, *, model: str, engine: str, provenance: bool = True, pnginfo=None,
             parameters: dict[str, Any] | None = None) -> str | None:
    """Save ``image`` (PIL) as a PNG at ``path``: watermarked and signed when ``provenance``.
    Returns the output id (None when provenance is off). ``image`` itself is not changed: the
    model's exact pixels stay reproducible from a seed; show users the saved file."""
    from PIL import Image

    path = Path(path)
    if not provenance:
        image.save(path, format="PNG", pnginfo=pnginfo)
        return None
    from .image_watermark import embed_watermark

    output_id = new_output_id()
    marked = Image.fromarray(embed_watermark(image, Payload(output_id)))
    if image.mode == "RGBA":  # keep the transparency; the mark lives in the colour
        marked.putalpha(image.getchannel("A"))
    marked.save(path, format="PNG", pnginfo=pnginfo)
    _sign_quietly(path, model=model, engine=engine, output_id=output_id, parameters=parameters)
    return output_id


def video_frame_marker(provenance: bool = True) -> tuple[Callable[[np.ndarray], np.ndarray], str | None]:
    """(function that marks one RGB frame, output id); the identity and None when provenance is off."""
    if not provenance:
        return (lambda frame: frame), None
    from .image_watermark import FrameMarker

    output_id = new_output_id()
    return FrameMarker(Payload(output_id)), output_id


def sign_output(path: str | Path, *, model: str, engine: str, output_id: str | None = None,
                consent: str | None = None, parameters: dict[str, Any] | None = None,
                provenance: bool = True) -> bool:
    """Sign Content Credentials into a finished file (MP4, WAV, PNG, JPEG, MP3); False if not signed."""
    if not provenance:
        return False
    return _sign_quietly(Path(path), model=model, engine=engine, output_id=output_id, consent=consent,
                         parameters=parameters)


def audio_with_watermark(audio: np.ndarray, sample_rate: int, output_id: str) -> np.ndarray:
    """Mono speech samples with the watermark for ``output_id`` in them (a video's sound track)."""
    from .audio_watermark import embed_audio_watermark

    return embed_audio_watermark(audio, sample_rate, Payload(output_id))


def watermark_audio_file(path: str | Path, payload: Payload) -> None:
    """Write ``payload`` into the speech of a WAV/MP3 file in place, stretch by stretch, so memory stays
    flat however long the file is."""
    import os

    import soundfile as sf

    from .audio_watermark import span_plan, watermark_span

    path = Path(path)
    marked = path.with_name(f".{path.stem}.marking{path.suffix}")
    try:
        with sf.SoundFile(str(path)) as source:
            with sf.SoundFile(str(marked), "w", samplerate=source.samplerate, channels=source.channels,
                              format=source.format, subtype=source.subtype) as target:
                for start, end, read_from, read_to, first_group in span_plan(source.frames, source.samplerate):
                    source.seek(read_from)
                    piece = source.read(read_to - read_from, dtype="float32", always_2d=True)
                    change = watermark_span(piece.mean(axis=1), source.samplerate, payload, first_group)
                    keep = slice(start - read_from, end - read_from)
                    target.write(np.clip(piece[keep] + change[keep, None], -1.0, 1.0).astype(np.float32))
        os.replace(marked, path)
    finally:
        marked.unlink(missing_ok=True)


def mark_audio_file(path: str | Path, *, model: str, engine: str, parameters: dict[str, Any] | None = None,
                    provenance: bool = True) -> str | None:
    """Watermark the speech in a WAV/MP3 file in place and sign it; returns the output id.
    (Signing passes the file through c2pa, which holds its audio data once in memory.)"""
    if not provenance:
        return None
    output_id = new_output_id()
    watermark_audio_file(path, Payload(output_id))
    _sign_quietly(Path(path), model=model, engine=engine, output_id=output_id, parameters=parameters)
    return output_id
