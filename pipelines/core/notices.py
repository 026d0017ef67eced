"""One shape for every message a pipeline hands back to a person: a :class:`Notice` in English and
Chinese with a level. Results carry ``notices: list[Notice]``; the UI shows ``notice.text(language)``.

Errors that stop the work are :class:`pipelines.core.errors.UserError` (same two languages).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["info", "warning"]


@dataclass(frozen=True)
class Notice:
    """Something the user should know about a result (a trimmed prompt, a missing font...)."""

    en: str
    zh: str
    level: Level = "warning"

    def text(self, language: str = "en") -> str:
        return self.zh if (language or "").startswith("zh") else self.en

    def __str__(self) -> str:
        return self.en


def info(en: str, zh: str) -> Notice:
    return Notice(en, zh, "info")


def warning(en: str, zh: str) -> Notice:
    return Notice(en, zh, "warning")
