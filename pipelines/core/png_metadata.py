"""Generation parameters inside PNG files: written as text chunks, read back to restore the controls.

Two chunks are written:
- ``parameters``: the AUTOMATIC1111 text layout (prompt, ``Negative prompt: ...``, ``Steps: 20, Sampler: ...``),
  so other tools (A1111, Fooocus, civitai) read our images, and we read theirs;
- ``aigc_studio``: the exact parameters as JSON, for a lossless round trip.

This module does not generate anything and does not import torch or gradio.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

JSON_CHUNK = "aigc_studio"
A1111_CHUNK = "parameters"

# A1111 labels <-> our parameter names (the ones generate_images takes)
_A1111_FIELDS = {"Steps": "steps", "Sampler": "scheduler", "CFG scale": "guidance", "Seed": "seed",
                 "Model": "model"}


def to_a1111_text(params: dict[str, Any]) -> str:
    """The AUTOMATIC1111 "parameters" text for ``params``."""
    lines = [str(params.get("prompt", ""))]
    if params.get("negative_prompt"):
        lines.append(f"Negative prompt: {params['negative_prompt']}")
    fields = []
    for label, key in _A1111_FIELDS.items():
        if params.get(key) not in (None, ""):
            fields.append(f"{label}: {_quote(params[key])}")
    if params.get("width") and params.get("height"):
        fields.append(f"Size: {params['width']}x{params['height']}")
    lines.append(", ".join(fields))
    return "\n".join(lines)


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if ("," in text or ":" in text or "\n" in text) else text


def parse_a1111_text(text: str) -> dict[str, Any]:
    """Parse an A1111 "parameters" text (ours or another tool's) into our parameter names."""
    lines = text.strip().split("\n")
    settings_line = lines[-1] if len(lines) > 1 and re.search(r"(^|, )Steps: ", lines[-1]) else ""
    body = lines[:-1] if settings_line else lines
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in body:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    params: dict[str, Any] = {"prompt": "\n".join(prompt_lines).strip(),
                              "negative_prompt": "\n".join(negative_lines).strip()}
    # key: value pairs; values may be quoted when they contain commas
    for key, value in re.findall(r'\s*([\w .]+?):\s*("(?:\\.|[^"\\])*"|[^,]*)(?:,|$)', settings_line):
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                value = value.strip('"')
        key = key.strip()
        if key == "Size" and "x" in value:
            width, _, height = value.partition("x")
            params["width"], params["height"] = _number(width), _number(height)
        elif key in _A1111_FIELDS:
            params[_A1111_FIELDS[key]] = _number(value) if key in ("Steps", "CFG scale", "Seed") else value
    return params


def _number(text: str):
    text = str(text).strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def png_info(params: dict[str, Any]):
    """A PIL PngInfo holding both chunks, for ``image.save(path, pnginfo=...)``."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_itxt(A1111_CHUNK, to_a1111_text(params))  # iTXt: UTF-8, so Chinese prompts survive
    info.add_itxt(JSON_CHUNK, json.dumps(params, ensure_ascii=False, default=str))
    return info


def read_png_parameters(image_or_path) -> dict[str, Any]:
    """The generation parameters stored in a PNG (ours, or A1111's); {} when it holds none."""
    from PIL import Image

    if isinstance(image_or_path, (str, Path)):
        with Image.open(image_or_path) as image:
            image.load()
            text_chunks = dict(getattr(image, "text", {}) or image.info)
    else:
        text_chunks = dict(getattr(image_or_path, "text", None) or getattr(image_or_path, "info", {}) or {})
    if JSON_CHUNK in text_chunks:
        try:
            return json.loads(text_chunks[JSON_CHUNK])
        except ValueError:
            pass  # damaged: fall back to the A1111 text
    if A1111_CHUNK in text_chunks:
        return parse_a1111_text(str(text_chunks[A1111_CHUNK]))
    return {}
