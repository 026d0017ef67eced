"""Provenance: an invisible watermark and Content Credentials (C2PA) on every output, and a checker.

What lives here:
- ``payload``: the 64 bits every watermark carries (studio mark + output id + CRC-16);
- ``image_watermark``: images and video frames, on ``invisible-watermark``'s DWT-DCT-SVD block method
  with tiling and grid synchronisation (survives JPEG, 50 % resize, crops, H.264 re-encoding);
- ``audio_watermark``: speech, quantisation-index modulation of spectral energy ratios (survives MP3);
- ``credentials``: signing and reading Content Credentials with ``c2pa-python`` (key made on first use);
- ``marking``: the one call each pipeline makes where it writes a file (``provenance=False`` turns it off);
- ``checker``: ``check_file(path) -> ProvenanceReport`` and ``python -m pipelines.provenance check FILE``.

Nothing here imports gradio or torch.
"""
from .checker import ProvenanceReport, check_file
from .marking import audio_with_watermark, mark_audio_file, save_png, sign_output, video_frame_marker

__all__ = ["ProvenanceReport", "audio_with_watermark", "check_file", "mark_audio_file", "save_png", "sign_output",
           "video_frame_marker"]
