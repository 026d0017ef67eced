"""Text preparation for speech: language runs, sentences, and numbers/dates read as words.

What it does: splits text into runs by writing system (Chinese characters -> "zh", Latin letters ->
the Latin language, Cyrillic -> "ru", ...), splits runs into sentences (long ones at commas), and
rewrites numbers, dates, times, money and percentages as words in English (num2words) and Chinese
(cn2an), so every voice reads them naturally.

What it does not: tell English from French (both are Latin script: the voice's language decides),
or synthesize anything (see tts_engines.py).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

# Sentences longer than this are cut at commas (or spaces) so each synthesis call stays small.
MAX_SENTENCE_CHARS = 250

# Scripts whose language is unambiguous; Latin is decided by the caller (the voice's language).
_SCRIPT_LANGUAGES = {
    "CJK": "zh", "CYRILLIC": "ru", "GREEK": "el", "ARABIC": "ar", "HEBREW": "he", "HANGUL": "ko",
    "HIRAGANA": "ja", "KATAKANA": "ja", "DEVANAGARI": "hi", "THAI": "th", "BENGALI": "bn",
    "TAMIL": "ta", "ARMENIAN": "hy", "GEORGIAN": "ka",
}


@dataclass(frozen=True)
class Segment:
    """A piece of text in one language; a pause follows it where it ends a sentence or paragraph."""

    text: str
    language: str
    sentence_end: bool = True
    paragraph_end: bool = False


# ---------------------------------------------------------------- what can be spoken
def is_chinese_char(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF


def has_speakable_content(text: str) -> bool:
    """True when the text has at least one letter or digit (not just punctuation, emoji or spaces)."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def strip_unspeakable(text: str) -> str:
    """Drop emoji, pictographs and control characters: voices either skip them or spell their names."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("So", "Cs", "Co", "Cn") or (category == "Cc" and ch not in "\n\t"):
            continue
        if ch in "\u200d\ufe0f":  # emoji joiners and variation selectors
            continue
        kept.append(ch)
    return "".join(kept)


def script_language(ch: str, latin_language: str = "en") -> str | None:
    """The language a letter's script implies; None for digits, punctuation and spaces."""
    if is_chinese_char(ch):
        return "zh"
    if unicodedata.category(ch)[0] != "L":
        return None
    name = unicodedata.name(ch, "")
    if name.startswith("LATIN") or name.startswith("FULLWIDTH LATIN"):
        return latin_language
    for prefix, language in _SCRIPT_LANGUAGES.items():
        if name.startswith(prefix):
            return language
    return latin_language


# ---------------------------------------------------------------- language runs
def split_by_language(text: str, latin_language: str = "en") -> list[Segment]:
    """Cut text where the writing system changes: "我喜欢 Python 编程" -> zh, en, zh.

    Digits, spaces and punctuation between two runs are shared out at the last space: the part
    before it stays with the run before, the rest (e.g. "2024" in "in 2024年") joins the next run.
    """
    runs: list[list] = []  # [language, text]
    pending = ""
    for ch in text:
        language = script_language(ch, latin_language)
        if language is None:
            pending += ch
            continue
        if runs and runs[-1][0] == language:
            runs[-1][1] += pending + ch
        else:
            cut = max(pending.rfind(" "), pending.rfind("\n")) + 1
            if runs:
                runs[-1][1] += pending[:cut]
                runs.append([language, pending[cut:] + ch])
            else:
                runs.append([language, pending + ch])
        pending = ""
    if runs:
        runs[-1][1] += pending
    elif has_speakable_content(pending):  # digits only: read in the Latin language
        runs.append([latin_language, pending])
    return [Segment(t, lang) for lang, t in runs if t.strip()]


# ---------------------------------------------------------------- sentences
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "fig",
                  "inc", "ltd", "co", "mt", "u.s", "approx", "dept", "est"}
# End of a sentence: Western terminators followed by a space, or CJK terminators anywhere.
_SENTENCE_END = re.compile(r"([.!?…]+[\"'”’)\]]*)(\s+)|([。！？；!?]+[”’」』）]*)")


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences in order; abbreviations ("Dr.") and decimals ("3.5") do not end one."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1) if match.group(1) else match.end(3)
        if match.group(1) and match.group(1) == ".":
            word = re.search(r"([\w.]+)$", text[start:match.start(1)])
            if word and (word.group(1).lower() in _ABBREVIATIONS or len(word.group(1)) == 1):
                continue  # "Dr. Smith", "J. R. R. Tolkien"
        sentences.append(text[start:end])
        start = match.end()
    sentences.append(text[start:])
    out: list[str] = []
    for sentence in sentences:
        out.extend(_cut_long(sentence.strip(), max_chars))
    return [s for s in out if has_speakable_content(s)]


def _cut_long(sentence: str, max_chars: int) -> list[str]:
    """Cut an over-long sentence at clause marks (,;:，、), else at spaces, else anywhere."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    rest = sentence
    while len(rest) > max_chars:
        window = rest[:max_chars]
        cut = max(window.rfind(mark) for mark in ",;:，、；：")
        if cut < max_chars // 3:
            cut = window.rfind(" ")
        if cut < max_chars // 3:
            cut = max_chars - 1
        pieces.append(rest[:cut + 1].strip())
        rest = rest[cut + 1:]
    pieces.append(rest.strip())
    return [p for p in pieces if p]


def split_paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def plan_segments(text: str, latin_language: str = "en", split_languages: bool = True) -> list[Segment]:
    """Paragraphs -> sentences -> language runs, in reading order, numbers already spelled out."""
    text = strip_unspeakable(text)
    segments: list[Segment] = []
    for paragraph in split_paragraphs(text):
        paragraph_segments: list[Segment] = []
        for sentence in split_sentences(paragraph.replace("\n", " ")):
            runs = split_by_language(sentence, latin_language) if split_languages else [
                Segment(sentence, dominant_language(sentence, latin_language))]
            spoken_runs = [Segment(normalize_numbers(run.text.strip(), run.language), run.language, False)
                           for run in runs]
            spoken_runs = [run for run in spoken_runs if has_speakable_content(run.text)]
            if spoken_runs:
                spoken_runs[-1] = replace(spoken_runs[-1], sentence_end=True)
            paragraph_segments.extend(spoken_runs)
        if paragraph_segments:
            paragraph_segments[-1] = replace(paragraph_segments[-1], paragraph_end=True)
        segments.extend(paragraph_segments)
    return segments


def dominant_language(text: str, latin_language: str = "en") -> str:
    """The language with the most letters in the text (Chinese characters count double: denser)."""
    counts: dict[str, int] = {}
    for ch in text:
        language = script_language(ch, latin_language)
        if language:
            counts[language] = counts.get(language, 0) + (2 if language == "zh" else 1)
    return max(counts, key=counts.get) if counts else latin_language


# ---------------------------------------------------------------- numbers and dates
def normalize_numbers(text: str, language: str) -> str:
    """Spell numbers, dates, times, money and percentages as words (English and Chinese).

    Other languages are left as they are: eSpeak NG reads digits in each of its languages.
    """
    if language == "zh":
        return _normalize_chinese(text)
    if language == "en":
        return _normalize_english(text)
    return text


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}


def _normalize_english(text: str) -> str:
    from num2words import num2words

    def words(value: str, to: str = "cardinal") -> str:
        return num2words(float(value) if "." in value else int(value), lang="en", to=to)

    def iso_date(m: re.Match) -> str:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return m.group(0)
        return f"{_MONTHS[month - 1]} {num2words(day, lang='en', to='ordinal')}, {num2words(year, lang='en', to='year')}"

    def slash_date(m: re.Match) -> str:  # US order: month/day/year
        month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return m.group(0)
        return f"{_MONTHS[month - 1]} {num2words(day, lang='en', to='ordinal')}, {num2words(year, lang='en', to='year')}"

    def clock(m: re.Match) -> str:
        hours, minutes = int(m.group(1)), int(m.group(2))
        if hours > 24 or minutes > 59:
            return m.group(0)
        spoken = num2words(hours, lang="en")
        if minutes == 0:
            spoken += " o'clock" if not m.group(3) else ""
        elif minutes < 10:
            spoken += " oh " + num2words(minutes, lang="en")
        else:
            spoken += " " + num2words(minutes, lang="en")
        if m.group(3):
            spoken += " " + " ".join(m.group(3).replace(".", "").upper())
        return spoken

    def money(m: re.Match) -> str:
        amount = m.group(2).replace(",", "")
        try:
            return num2words(float(amount), lang="en", to="currency", currency=_CURRENCIES[m.group(1)])
        except NotImplementedError:
            return words(amount)

    def year_or_number(m: re.Match) -> str:
        value = m.group(0)
        if len(value) == 4 and 1100 <= int(value) <= 2099 and not value.endswith("00"):
            return num2words(int(value), lang="en", to="year")
        return words(value)

    text = re.sub(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", iso_date, text)
    text = re.sub(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b", slash_date, text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})\s*([ap]\.?m\.?)?(?![\w:])", clock, text, flags=re.IGNORECASE)
    text = re.sub(r"([$€£¥])\s?(\d[\d,]*(?:\.\d+)?)", money, text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s?%", lambda m: words(m.group(1)) + " percent", text)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: words(m.group(1), "ordinal"), text, flags=re.IGNORECASE)
    text = re.sub(r"\b\d{1,3}(?:,\d{3})+(?:\.\d+)?\b", lambda m: words(m.group(0).replace(",", "")), text)
    text = re.sub(r"(?<![\d.])-(\d+(?:\.\d+)?)\b", lambda m: "minus " + words(m.group(1)), text)
    text = re.sub(r"\b\d+\.\d+\b", lambda m: words(m.group(0)), text)
    text = re.sub(r"\b\d+\b", year_or_number, text)
    return text


def _normalize_chinese(text: str) -> str:
    import cn2an

    # ISO dates and clock times first: cn2an reads "2024年3月5日" and plain numbers, not these forms.
    text = re.sub(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", lambda m: f"{m.group(1)}年{int(m.group(2))}月{int(m.group(3))}日", text)
    text = re.sub(r"(\d{1,2}):(\d{2})(?!\d)", lambda m: f"{int(m.group(1))}点" + (f"{int(m.group(2))}分" if int(m.group(2)) else "整"), text)
    text = re.sub(r"[$¥￥](\d+(?:\.\d+)?)", lambda m: m.group(1) + ("美元" if m.group(0)[0] == "$" else "元"), text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,234 -> 1234
    return cn2an.transform(text, "an2cn")
