"""Errors a user should read: raised by pipelines, shown by the UI in the user's language.

Anything else that escapes a pipeline is a bug; the UI logs it and shows a short generic message.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input or a missing model, explained in plain words (English, and Chinese when given)."""

    def __init__(self, message: str, zh: str | None = None):
        super().__init__(message)
        self.message = message
        self.zh = zh or message

    def text(self, language: str = "en") -> str:
        return self.zh if language.startswith("zh") else self.message


class ModelLoadError(UserError):
    """A model could not be loaded (missing package, no network, broken files...)."""


class Stopped(Exception):
    """The user pressed Stop; work ended early on purpose."""
