"""Twin profiles: a photo + a voice (a voice name or the user's own recording) + a persona, saved under a
name in ``outputs/twin_profiles/<name>/`` so they survive restarts and can be loaded next time.

What it does: save, list, load and delete profiles; files are copied in (the profile never points at
a temporary upload) and written atomically.
What it does not: store anything outside the outputs folder, or check the photo for a face (the twin
pipeline does that when it renders).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.outputs import atomic_path, write_json_atomic
from ..core.runtime import Runtime

FOLDER = "twin_profiles"


@dataclass
class TwinProfile:
    name: str
    photo: Path
    voice: str | None = None  # a voice name of the voice synthesis pipeline
    recording: Path | None = None  # the user's own recording, used instead of a synthetic voice
    persona: str = ""

    def to_json(self) -> dict:
        data = asdict(self)
        data["photo"] = self.photo.name
        data["recording"] = self.recording.name if self.recording else None
        return data


def _folder(runtime: Runtime) -> Path:
    return Path(runtime.outputs_dir) / FOLDER


def safe_name(name: str) -> str:
    """A folder name from the user's profile name: letters (any script), digits, - and _ only."""
    cleaned = re.sub(r"[^\w\-]+", "_", (name or "").strip(), flags=re.UNICODE).strip("_.")[:60]
    if not cleaned:
        raise UserError("Please give the profile a name.", zh="请为档案起一个名字。")
    return cleaned


def save_profile(name: str, *, photo: Any, voice: str | None = None, recording: str | Path | None = None,
                 persona: str = "", runtime: Runtime | None = None) -> TwinProfile:
    """Save (or overwrite) the profile ``name``; returns it with the paths of the stored copies."""
    from PIL import Image

    from .pipeline import load_photo

    runtime = runtime or Runtime.default()
    folder = _folder(runtime) / safe_name(name)
    # 1. Check inputs before writing anything
    image = Image.fromarray(load_photo(photo))
    if recording is not None and not Path(recording).is_file():
        raise UserError("The voice recording file is missing.", zh="找不到录音文件。")
    folder.mkdir(parents=True, exist_ok=True)
    # 2. Copy the files in
    photo_path = folder / "photo.png"
    with atomic_path(photo_path) as tmp:
        image.save(tmp, format="PNG")
    stored_recording = None
    if recording is not None:
        stored_recording = folder / ("recording" + (Path(recording).suffix.lower() or ".wav"))
        for old in folder.glob("recording.*"):
            old.unlink()
        with atomic_path(stored_recording) as tmp:
            shutil.copyfile(recording, tmp)
    else:
        for old in folder.glob("recording.*"):
            old.unlink()
    profile = TwinProfile(name=name.strip(), photo=photo_path, voice=voice, recording=stored_recording,
                          persona=persona or "")
    # 3. The description last: a profile is listed only once it is complete
    write_json_atomic(folder / "profile.json", profile.to_json())
    return profile


def list_profiles(runtime: Runtime | None = None) -> list[str]:
    runtime = runtime or Runtime.default()
    folder = _folder(runtime)
    names = []
    for meta in sorted(folder.glob("*/profile.json")) if folder.is_dir() else []:
        try:
            names.append(json.loads(meta.read_text(encoding="utf-8"))["name"])
        except (OSError, ValueError, KeyError):
            continue  # a damaged profile is skipped, not fatal
    return names


def load_profile(name: str, runtime: Runtime | None = None) -> TwinProfile:
    runtime = runtime or Runtime.default()
    folder = _folder(runtime) / safe_name(name)
    try:
        data = json.loads((folder / "profile.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"No saved profile called '{name}'.", zh=f"没有名为“{name}”的档案。") from exc
    recording = folder / data["recording"] if data.get("recording") else None
    return TwinProfile(name=data["name"], photo=folder / data["photo"], voice=data.get("voice"),
                       recording=recording if recording and recording.is_file() else None,
                       persona=data.get("persona", ""))


def delete_profile(name: str, runtime: Runtime | None = None) -> bool:
    runtime = runtime or Runtime.default()
    folder = _folder(runtime) / safe_name(name)
    if not (folder / "profile.json").is_file():
        return False
    shutil.rmtree(folder)
    return True


if __name__ == "__main__":  # python -m pipelines.twin.profiles: list the saved profiles
    for profile_name in list_profiles():
        print(profile_name)
    sys.exit(0)
