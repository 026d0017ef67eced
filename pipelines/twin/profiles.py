"""Twin profiles: a photo + a voice (a voice name or the user's own recording) + a persona, saved under a
name in ``<outputs>/twin_profiles/`` so they survive restarts and can be loaded next time. (The studio gives
each person an outputs folder of their own: see ``pipelines/core/owners.py``.)

What it does: save, list, load and delete profiles. Files are copied in (a profile never points at a
temporary upload). Each name gets its own folder (``alice`` and ``alice!`` never share one), and saving
over an existing profile needs ``overwrite=True``. A profile is written as one piece: a new one is built in
a hidden ``.NAME.partial.*`` folder and renamed into place; an overwrite writes new files beside the old
ones and switches ``profile.json`` to them in one rename. A crash or a full disk leaves the old profile (or
none), never half of one.
What it does not: store anything outside the outputs folder, or check the photo for a face (the twin
pipeline does that when it renders).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..core.errors import UserError
from ..core.outputs import NoRoomError, atomic_path, is_no_room, partial_name, write_json_atomic
from ..core.runtime import Runtime

FOLDER = "twin_profiles"
PROFILE_FILE = "profile.json"
MAX_NAME_CHARS = 60


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


class ProfileExists(UserError):
    """Saving would replace a profile of that name: the caller must say so (``overwrite=True``)."""

    def __init__(self, name: str):
        super().__init__(f"A profile called \"{name}\" already exists. Save again with \"overwrite\" to replace it, "
                         "or choose another name.",
                         zh=f"名为“{name}”的档案已存在。如要替换，请勾选“覆盖”后再次保存，或换一个名字。")
        self.name = name


def _folder(runtime: Runtime) -> Path:
    return Path(runtime.outputs_dir) / FOLDER


def display_name(name: str) -> str:
    """The name as shown and compared: trimmed, Unicode-normalised (NFC), at most 60 characters."""
    name = unicodedata.normalize("NFC", str(name or "").strip())
    if not name or not re.search(r"\w", name, flags=re.UNICODE):
        raise UserError("Please give the profile a name.", zh="请为档案起一个名字。")
    if len(name) > MAX_NAME_CHARS:
        raise UserError(f"The profile name is too long (at most {MAX_NAME_CHARS} characters).",
                        zh=f"档案名称太长（最多 {MAX_NAME_CHARS} 个字符）。")
    return name


def safe_name(name: str) -> str:
    """A readable folder-name part from the profile name: letters (any script), digits, - and _ only."""
    cleaned = re.sub(r"[^\w\-]+", "_", (name or "").strip(), flags=re.UNICODE).strip("_.")[:60]
    if not cleaned:
        raise UserError("Please give the profile a name.", zh="请为档案起一个名字。")
    return cleaned


def folder_name(name: str) -> str:
    """The folder of the profile ``name``: readable, and unique to the exact name (a digest of it), so
    names that clean up the same ("alice", "alice!") never share a folder."""
    exact = display_name(name)
    digest = hashlib.sha256(exact.encode("utf-8")).hexdigest()[:10]
    readable = re.sub(r"[^\w\-]+", "_", exact, flags=re.UNICODE).strip("_.")[:40] or "profile"
    return f"{readable}-{digest}"


def _find(name: str, runtime: Runtime) -> Path | None:
    """The folder holding the profile called exactly ``name`` (also one saved by an older version)."""
    exact = display_name(name)
    folder = _folder(runtime) / folder_name(exact)
    if (folder / PROFILE_FILE).is_file():
        return folder
    with contextlib.suppress(UserError):  # older versions: the folder was the cleaned name alone
        legacy = _folder(runtime) / safe_name(exact)
        if _read(legacy).get("name") == exact:
            return legacy
    return None


def _read(folder: Path) -> dict:
    try:
        return json.loads((folder / PROFILE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def save_profile(name: str, *, photo: Any, voice: str | None = None, recording: str | Path | None = None,
                 persona: str = "", runtime: Runtime | None = None, overwrite: bool = False) -> TwinProfile:
    """Save the profile ``name``; returns it with the paths of the stored copies. An existing profile of
    that name is replaced only with ``overwrite=True`` (else ProfileExists)."""
    from PIL import Image

    from .pipeline import load_photo

    runtime = runtime or Runtime.default()
    exact = display_name(name)
    # 1. Check inputs before writing anything
    existing = _find(exact, runtime)
    if existing is not None and not overwrite:
        raise ProfileExists(exact)
    image = Image.fromarray(load_photo(photo))
    if recording is not None and not Path(recording).is_file():
        raise UserError("The voice recording file is missing.", zh="找不到录音文件。")
    # 2. Write: new files under new names, then the description that points at them (the commit)
    version = secrets.token_hex(4)
    photo_name = f"photo-{version}.png"
    recording_name = f"recording-{version}{Path(recording).suffix.lower() or '.wav'}" if recording else None
    data = {"name": exact, "photo": photo_name, "voice": voice, "recording": recording_name,
            "persona": persona or ""}

    def write_files(folder: Path) -> None:
        with atomic_path(folder / photo_name) as tmp:
            image.save(tmp, format="PNG")
        if recording is not None:
            with atomic_path(folder / recording_name) as tmp:
                shutil.copyfile(recording, tmp)
        write_json_atomic(folder / PROFILE_FILE, data)

    if existing is None:
        folder = _folder(runtime) / folder_name(exact)
        building = partial_name(folder)  # a hidden folder, renamed into place when complete
        try:
            building.mkdir(parents=True)
            write_files(building)
            os.rename(building, folder)
        except BaseException as exc:
            no_room = isinstance(exc, Exception) and not isinstance(exc, UserError) and is_no_room(exc, folder.parent)
            shutil.rmtree(building, ignore_errors=True)
            if no_room:
                raise NoRoomError() from exc
            if isinstance(exc, OSError) and folder.exists():
                raise ProfileExists(exact) from None  # saved by another request at the same moment
            raise
    else:
        folder = existing
        old = _read(folder)
        try:
            write_files(folder)
        except BaseException:
            for leftover in (photo_name, recording_name):
                if leftover:
                    with contextlib.suppress(FileNotFoundError):
                        (folder / leftover).unlink()
            raise
        for stale in {old.get("photo"), old.get("recording")} - {photo_name, recording_name, None}:
            with contextlib.suppress(OSError):
                (folder / Path(stale).name).unlink()
    return _profile(folder, data)


def _profile(folder: Path, data: dict) -> TwinProfile:
    recording = folder / Path(data["recording"]).name if data.get("recording") else None
    return TwinProfile(name=data["name"], photo=folder / Path(data["photo"]).name, voice=data.get("voice"),
                       recording=recording if recording and recording.is_file() else None,
                       persona=data.get("persona", ""))


def list_profiles(runtime: Runtime | None = None) -> list[str]:
    runtime = runtime or Runtime.default()
    folder = _folder(runtime)
    names = []
    for meta in sorted(folder.glob(f"*/{PROFILE_FILE}")) if folder.is_dir() else []:
        if meta.parent.name.startswith("."):
            continue  # being written, or being deleted
        name = _read(meta.parent).get("name")
        if name:  # a damaged profile is skipped, not fatal
            names.append(name)
    return sorted(names, key=str.casefold)


def load_profile(name: str, runtime: Runtime | None = None) -> TwinProfile:
    runtime = runtime or Runtime.default()
    folder = _find(name, runtime)
    data = _read(folder) if folder is not None else {}
    if not data.get("photo"):
        shown = str(name or "").strip()
        raise UserError(f"No saved profile called '{shown}'.", zh=f"没有名为“{shown}”的档案。")
    return _profile(folder, data)


def delete_profile(name: str, runtime: Runtime | None = None) -> bool:
    runtime = runtime or Runtime.default()
    folder = _find(name, runtime)
    if folder is None:
        return False
    doomed = partial_name(folder)
    os.replace(folder, doomed)  # gone from the list at once; the files follow
    shutil.rmtree(doomed, ignore_errors=True)
    return True


if __name__ == "__main__":  # python -m pipelines.twin.profiles: list the saved profiles
    for profile_name in list_profiles():
        print(profile_name)
    sys.exit(0)
