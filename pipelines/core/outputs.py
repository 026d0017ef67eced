"""Where generated files go: unique names under outputs/<task>/, written atomically (a crash or a
Stop never leaves a half-written file behind), with the generation parameters beside them."""
from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Iterator


def new_output_path(outputs_dir: Path, task: str, suffix: str, stem: str = "") -> Path:
    folder = Path(outputs_dir) / task
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{stem + '-' if stem else ''}{uuid.uuid4().hex[:6]}{suffix}"
    return folder / name


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; it becomes ``final`` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_json_atomic(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


def write_params(output: Path, params: dict) -> Path:
    """Save generation parameters as ``<output>.json`` (for formats that cannot carry them inside)."""
    sidecar = output.with_name(output.name + ".json")
    write_json_atomic(sidecar, params)
    return sidecar
