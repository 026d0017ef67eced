"""Streamed text -> sentences to speak, as soon as each is complete (the voice starts on the first
sentence while the model is still writing the second).

What it does: splits at sentence ends (. ! ? and Chinese 。！？；), lets the very first piece end at a
comma, semicolon or colon once it holds four words or eight Chinese characters, or just before a joining
word ("and", "but", "because", 但是, 因为 ...) once it holds six words or ten Chinese characters (the first
sound comes sooner, and a clause still ends where a speaker would pause: never mid-phrase), and drops what
should not be read aloud (markdown marks, a "Assistant:" prefix). What it does not: fix grammar or translate.
"""
from __future__ import annotations

import re

_END = re.compile(r"([.!?]+[\"')\]]*\s+|[。！？；]+)")  # a sentence end and the space after it
_CLAUSE = re.compile(r"[,;:，：]\s*")
# a joining word that a new clause starts with, with the next word begun (so "and" is not the start of "android");
# not "so", which as often means "very" ("it is so lovely")
_JOIN = re.compile(r"\s+(?=(?:and|but|because|which|who|where|when|while|or)\s+\S)|(?=(?:但是|因为|所以|而且|并且|然后).)",
                   re.I)
_MARKUP = re.compile(r"[*_#`~>|]+|\[[^\]]*\]\([^)]*\)")
_ROLE = re.compile(r"^\s*(assistant|twin|ai)\s*:\s*", re.I)


def speakable(text: str) -> str:
    """The words of ``text`` without markdown marks, role prefixes or extra spaces."""
    text = _ROLE.sub("", _MARKUP.sub("", text or ""))
    return re.sub(r"\s+", " ", text).strip()


class SentenceSplitter:
    """``feed(piece)`` -> the sentences completed by it; ``flush()`` -> what is left at the end."""

    def __init__(self, first_clause_words: int = 4):
        self.first_clause_words = first_clause_words
        self._buffer = ""
        self._given = 0  # sentences handed out so far

    def feed(self, piece: str) -> list[str]:
        self._buffer += piece or ""
        out: list[str] = []
        while True:
            match = _END.search(self._buffer)
            cut = match.end() if match else None
            if cut is None and self._given == 0:
                cut = self._first_clause_end()
            if cut is None:
                return out
            sentence, self._buffer = speakable(self._buffer[:cut]), self._buffer[cut:]
            if sentence and re.search(r"\w", sentence):
                out.append(sentence)
                self._given += 1

    def flush(self) -> list[str]:
        rest, self._buffer = speakable(self._buffer), ""
        if rest and re.search(r"\w", rest):
            self._given += 1
            return [rest]
        return []

    def _first_clause_end(self) -> int | None:
        ends = [(match.end(), match.start(), self.first_clause_words, 8) for match in _CLAUSE.finditer(self._buffer)]
        ends += [(match.start(), match.start(), self.first_clause_words + 2, 10) for match in _JOIN.finditer(self._buffer)]
        for cut, head_end, words, characters in sorted(ends):
            head = self._buffer[:head_end]
            if len(head.split()) >= words or len(re.findall(r"[\u4e00-\u9fff]", head)) >= characters:
                return cut
        return None
