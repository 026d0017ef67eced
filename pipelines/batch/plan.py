"""From a spreadsheet row to a render job: values checked, files found, a key for resuming.

What it does: resolves the photo (a saved twin profile's name, or a file under the spreadsheet's
folder or a configured input folder; anything outside them, like ``../../etc/passwd``, is refused),
the recording (same rule), the voice (a known voice name; blank = the profile's voice or "auto", and
"auto" with a language picks that language's voice), the subtitles flag, the output name; and hashes
the inputs with the photo's and recording's bytes into the output name, so a row that was rendered
before for the same inputs is found and skipped.
What it does not: open the photo or look for a face (the worker does, and fails that row alone).
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import UserError
from ..core.notices import Notice
from ..core.runtime import Runtime
from .spreadsheet import SheetRow

TRUE_WORDS = {"1", "yes", "y", "true", "on", "x", "是", "有", "开"}
FALSE_WORDS = {"", "0", "no", "n", "false", "off", "否", "无", "关"}
KEY_LENGTH = 12  # hex digits of the input hash in the output name


@dataclass(frozen=True)
class RenderOptions:
    """Settings shared by every row of a batch (part of each row's key)."""

    output_size: str = "face"
    fps: int = 25
    engine: str = "classic"
    expression: float = 1.0


@dataclass
class RowJob:
    """One row, ready to render: checked values, absolute input paths, and where the video goes."""

    row: int
    name: str
    photo: Path
    script: str
    audio: Path | None
    voice: str
    subtitles: bool
    key: str
    seed: int  # from the key: the same inputs give the same video
    output_name: str
    options: RenderOptions
    notices: list[Notice] = field(default_factory=list)


@dataclass
class RowProblem:
    """A row refused before rendering, with its reason."""

    row: int
    name: str
    error: UserError


def output_stem(name: str, row: int) -> str:
    """A safe file name from the row's name (letters of any script, digits, - and _), else 'rowN'."""
    cleaned = re.sub(r"[^\w\-]+", "_", name or "", flags=re.UNICODE).strip("_.")[:60]
    return cleaned or f"row{row}"


class Planner:
    """Checks rows against the allowed folders, the known voices and the saved profiles."""

    def __init__(self, sheet_folder: Path, input_folders: tuple[Path, ...] = (), *,
                 options: RenderOptions = RenderOptions(), runtime: Runtime | None = None):
        self.runtime = runtime or Runtime.default()
        self.roots = [Path(p).resolve() for p in (sheet_folder, *input_folders)]
        self.options = options
        self._voices: dict[str, bool] | None = None
        self._profiles: dict[str, str] | None = None

    # ------------------------------------------------------------ public

    def plan(self, sheet_row: SheetRow) -> RowJob | RowProblem:
        cells = sheet_row.cells
        name = output_stem(cells["name"], sheet_row.number)
        if sheet_row.error is not None:
            return RowProblem(sheet_row.number, name, sheet_row.error)
        try:
            return self._plan(sheet_row, name)
        except UserError as exc:
            return RowProblem(sheet_row.number, name, exc)

    def _plan(self, sheet_row: SheetRow, name: str) -> RowJob:
        cells = sheet_row.cells
        photo, profile_voice, profile_recording = self._photo(cells["photo"])
        script = cells["script"]
        audio = self._file(cells["audio"], "recording") if cells["audio"] else None
        if audio is None and not script and profile_recording is not None:
            audio = profile_recording  # a profile with the person's own recording and no script
        if audio is None and not script:
            raise UserError("This row has neither a script nor a recording.", zh="这一行既没有脚本也没有录音。")
        voice = self._voice(cells["voice"] or profile_voice or "auto", cells["language"], needed=audio is None)
        subtitles = self._flag(cells["subtitles"])
        key = self._key(photo, script, audio, voice, cells["language"], subtitles)
        return RowJob(row=sheet_row.number, name=name, photo=photo, script=script, audio=audio, voice=voice,
                      subtitles=subtitles, key=key, seed=int(key[:8], 16) % 2**31,
                      output_name=f"{name}-{key[:KEY_LENGTH]}.mp4", options=self.options,
                      notices=list(sheet_row.notices))

    # ------------------------------------------------------------ photo, recording

    def _photo(self, value: str) -> tuple[Path, str | None, Path | None]:
        """(photo path, the profile's voice, the profile's recording) for a path or a profile name."""
        if not value:
            raise UserError("This row has no photo (a file or a saved profile's name).",
                            zh="这一行没有照片（照片文件或已保存档案的名字）。")
        profile_name = self.profiles().get(value.casefold())
        if profile_name is not None:
            from ..twin.profiles import load_profile

            profile = load_profile(profile_name, self.runtime)
            return profile.photo, profile.voice, profile.recording
        return self._file(value, "photo"), None, None

    def _file(self, value: str, what: str) -> Path:
        path = Path(value).expanduser()
        candidate = (path if path.is_absolute() else self.roots[0] / path).resolve()  # symlinks and .. resolved
        if not any(candidate.is_relative_to(root) for root in self.roots):
            raise UserError(
                f"The {what} '{value}' is outside the allowed folders. Files must be in the spreadsheet's folder"
                f" ({self.roots[0]}) or an input folder given to the batch"
                + (", or be a saved profile's name." if what == "photo" else "."),
                zh=f"{'照片' if what == 'photo' else '录音'}“{value}”不在允许的文件夹中。文件必须位于表格所在的文件夹"
                   f"（{self.roots[0]}）或为批量任务指定的输入文件夹中" + ("，或填写已保存档案的名字。" if what == "photo" else "。"))
        if not candidate.is_file():
            hint = " (and no saved profile has this name)" if what == "photo" else ""
            raise UserError(f"The {what} file '{value}' was not found{hint}.",
                            zh=f"找不到{'照片' if what == 'photo' else '录音'}文件“{value}”"
                               + ("（也没有这个名字的档案）。" if what == "photo" else "。"))
        return candidate

    def profiles(self) -> dict[str, str]:
        if self._profiles is None:
            from ..twin.profiles import list_profiles

            self._profiles = {n.casefold(): n for n in list_profiles(self.runtime)}
        return self._profiles

    # ------------------------------------------------------------ voice, flags

    def voices(self) -> dict[str, bool]:
        """Every known voice name -> whether it can run here."""
        if self._voices is None:
            from ..voice.synthesis import voice_choices

            self._voices = {name: ready for name, ready, _label in voice_choices(self.runtime)}
        return self._voices

    def _voice(self, voice: str, language: str, needed: bool) -> str:
        if not needed:
            return voice  # a recording speaks: the voice is not used
        voices = self.voices()
        if voice not in voices:
            examples = ", ".join(list(voices)[:6])
            raise UserError(f"Unknown voice '{voice}'. Use one of the voice list (e.g. {examples}; "
                            "'python -m pipelines.voice_synthesis --list-voices' shows all), or leave it blank.",
                            zh=f"未知的语音“{voice}”。请使用语音列表中的名字（例如 {examples}；"
                               "运行 python -m pipelines.voice_synthesis --list-voices 查看全部），或留空。")
        if not voices[voice]:
            raise UserError(f"The voice '{voice}' cannot run on this computer (its model is missing).",
                            zh=f"语音“{voice}”无法在这台电脑上运行（缺少模型）。")
        if voice == "auto" and language and language.lower() != "auto":
            from ..voice.synthesis import voice_for_language

            return voice_for_language(language, self.runtime)
        return voice

    @staticmethod
    def _flag(value: str) -> bool:
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise UserError(f"subtitles must be yes or no, not '{value}'.", zh=f"subtitles（字幕）必须是 是/否，而不是“{value}”。")

    # ------------------------------------------------------------ key

    def _key(self, photo: Path, script: str, audio: Path | None, voice: str, language: str, subtitles: bool) -> str:
        inputs = {"photo": file_digest(photo), "audio": file_digest(audio) if audio else None, "script": script,
                  "voice": voice, "language": language, "subtitles": subtitles,
                  "options": [self.options.output_size, self.options.fps, self.options.engine, self.options.expression]}
        return hashlib.sha256(json.dumps(inputs, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def file_digest(path: Path) -> str:
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=1024)  # the same presenter photo on many rows is read once
def _digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
