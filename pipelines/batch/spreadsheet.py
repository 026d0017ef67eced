"""Reading a batch spreadsheet (CSV or XLSX) one row at a time, never the whole file at once.

What it does: finds the header row's columns (English or Chinese names, any case), refuses a sheet
without the needed columns before any work; reads CSV in UTF-8, UTF-8 with a BOM, UTF-16 (with a BOM)
or GB18030 (the usual encoding of Chinese Excel exports), and says which; reads XLSX with openpyxl in
read-only (streaming) mode, taking a formula cell's saved value and saying so, and failing that row
with a reason when the formula was never calculated.
What it does not: check the values (``plan.py`` does), or keep rows: ``read_rows`` is a generator.
"""
from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..core.errors import UserError
from ..core.notices import Notice

COLUMNS = ("photo", "script", "audio", "voice", "language", "subtitles", "name")
# Header names people write, in either language; matched after trimming and lower-casing.
ALIASES = {
    "photo": "photo", "image": "photo", "profile": "photo", "照片": "photo", "图片": "photo", "档案": "photo",
    "script": "script", "text": "script", "脚本": "script", "文本": "script", "台词": "script",
    "audio": "audio", "recording": "audio", "录音": "audio", "音频": "audio",
    "voice": "voice", "语音": "voice", "声音": "voice",
    "language": "language", "lang": "language", "语言": "language",
    "subtitles": "subtitles", "subtitle": "subtitles", "字幕": "subtitles",
    "name": "name", "名称": "name", "名字": "name", "文件名": "name",
}
SPREADSHEET_SUFFIXES = (".csv", ".xlsx", ".xlsm")
SNIFF_BYTES = 64 * 1024  # the encoding is decided from the start of the file


@dataclass
class SheetRow:
    """One data row: its number as the spreadsheet shows it (the header is row 1) and its cells."""

    number: int
    cells: dict[str, str]
    error: UserError | None = None  # a problem found while reading this row (e.g. an uncalculated formula)
    notices: list[Notice] = field(default_factory=list)


@dataclass
class Sheet:
    """An opened spreadsheet: its columns, how it was read, and its rows as a generator."""

    path: Path
    columns: list[str]
    encoding: str  # "xlsx" for workbooks
    notices: list[Notice]
    rows: Iterator[SheetRow]


def open_sheet(path: str | Path, encoding: str | None = None) -> Sheet:
    """Open ``path`` and check its header; rows are read only as ``Sheet.rows`` is iterated."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Spreadsheet not found: {path.name}", zh=f"找不到表格文件：{path.name}")
    suffix = path.suffix.lower()
    if suffix not in SPREADSHEET_SUFFIXES:
        raise UserError(f"A batch needs a .csv or .xlsx file, not '{suffix or path.name}'.",
                        zh=f"批量任务需要 .csv 或 .xlsx 文件，而不是“{suffix or path.name}”。")
    if suffix == ".csv":
        return _open_csv(path, encoding)
    return _open_xlsx(path)


def count_rows(path: str | Path, encoding: str | None = None) -> int:
    """How many data rows the sheet has (one streaming pass; for the progress bar)."""
    return sum(1 for _ in open_sheet(path, encoding).rows)


# ---------------------------------------------------------------- header


def _columns(header: list, path: Path) -> tuple[list[str | None], list[Notice]]:
    """The column each header cell stands for (None = ignored), after checking the needed ones exist."""
    names: list[str | None] = []
    ignored: list[str] = []
    for cell in header:
        text = "" if cell is None else str(cell).strip().lstrip("\ufeff")
        column = ALIASES.get(text.lower())
        if column in names:
            raise UserError(f"The column '{column}' appears twice in {path.name}.",
                            zh=f"{path.name} 中“{column}”列出现了两次。")
        names.append(column)
        if column is None and text:
            ignored.append(text)
    found = set(names)
    missing = []
    if "photo" not in found:
        missing.append("photo")
    if not found & {"script", "audio"}:
        missing.append("script or audio")
    if missing:
        seen = ", ".join(str(c) for c in header if c not in (None, "")) or "nothing"
        raise UserError(
            f"{path.name} lacks the column(s) {' and '.join(missing)}. The first row must name the columns: "
            f"{', '.join(COLUMNS)} (photo and script or audio are needed); it has: {seen}.",
            zh=f"{path.name} 缺少列：{' 和 '.join(missing)}。第一行必须是列名：{', '.join(COLUMNS)}"
               f"（photo 以及 script 或 audio 为必需）；现有：{seen}。")
    notices = []
    if ignored:
        notices.append(Notice(f"Columns ignored (not known): {', '.join(ignored)}.",
                              f"已忽略未知的列：{', '.join(ignored)}。", "info"))
    return names, notices


def _cells(names: list[str | None], values: list) -> dict[str, str]:
    cells = {column: "" for column in COLUMNS}
    for column, value in zip(names, values):
        if column is not None and value is not None:
            cells[column] = str(value).strip()
    return cells


# ---------------------------------------------------------------- CSV


def detect_encoding(start: bytes) -> tuple[str, list[Notice]]:
    """The text encoding of a CSV from its first bytes: a BOM, else UTF-8, else GB18030; else a clear error."""
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", []
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", [Notice("Read as UTF-16 (Excel's 'Unicode text').", "已按 UTF-16 读取（Excel 的“Unicode 文本”）。", "info")]
    if start[:200].count(b"\x00") > len(start[:200]) // 4:
        # UTF-16 without a BOM: every other byte of Latin text is zero
        return ("utf-16-le" if start[1:2] == b"\x00" else "utf-16-be"), [
            Notice("Read as UTF-16 without a byte-order mark.", "已按无 BOM 的 UTF-16 读取。", "info")]
    try:
        codecs.getincrementaldecoder("utf-8")().decode(start, final=False)  # a character cut at the end is fine
        return "utf-8", []
    except UnicodeDecodeError:
        pass
    try:
        codecs.getincrementaldecoder("gb18030")().decode(start, final=False)
        return "gb18030", [Notice("The file is not UTF-8; it was read as GB18030 (Chinese Excel). If names look "
                                  "garbled, save it as 'CSV UTF-8' or give its encoding.",
                                  "文件不是 UTF-8，已按 GB18030（中文 Excel）读取。若文字乱码，请另存为“CSV UTF-8”或指定编码。")]
    except UnicodeDecodeError:
        raise UserError("The CSV is neither UTF-8, UTF-16 nor GB18030 text. Save it as 'CSV UTF-8' "
                        "(Excel: Save As > CSV UTF-8), or give its encoding (--encoding).",
                        zh="该 CSV 既不是 UTF-8、UTF-16，也不是 GB18030 文本。请另存为“CSV UTF-8”"
                           "（Excel：另存为 > CSV UTF-8），或指定其编码（--encoding）。") from None


def _open_csv(path: Path, encoding: str | None) -> Sheet:
    notices: list[Notice] = []
    if encoding is None:
        with open(path, "rb") as f:
            encoding, notices = detect_encoding(f.read(SNIFF_BYTES))
    else:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UserError(f"Unknown text encoding '{encoding}'.", zh=f"未知的文本编码“{encoding}”。") from None
    stream = open(path, "rb")
    try:
        reader = csv.reader(_decoded_lines(stream, encoding))
        header = next(reader, None)
    except (UnicodeDecodeError, csv.Error) as exc:
        stream.close()
        raise UserError(f"The first row of {path.name} cannot be read as {encoding}: {exc}.",
                        zh=f"{path.name} 的第一行无法按 {encoding} 读取：{exc}。") from None
    if not header:
        stream.close()
        raise UserError(f"{path.name} is empty.", zh=f"{path.name} 是空的。")
    try:
        names, more = _columns(header, path)
    except UserError:
        stream.close()
        raise
    return Sheet(path, [n for n in names if n], encoding, notices + more, _csv_rows(stream, reader, names, path, encoding))


def _decoded_lines(binary: io.BufferedReader, encoding: str) -> Iterator[str]:
    """Text lines decoded one at a time, so a bad byte is reported at its own row (a text file decodes
    8 KB blocks and would fail rows before it). UTF-8 and GB18030 never have a newline byte inside a
    character; UTF-16 does, so it goes through a text reader instead."""
    if encoding.startswith("utf-16"):
        yield from io.TextIOWrapper(binary, encoding=encoding, newline="")
        return
    decoder = codecs.getincrementaldecoder(encoding)()
    for raw in binary:
        yield decoder.decode(raw)
    decoder.decode(b"", final=True)


def _csv_rows(stream: io.BufferedReader, reader, names: list[str | None], path: Path, encoding: str) -> Iterator[SheetRow]:
    number = 1
    with stream:
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:
                # The rest of the file cannot be read: say where, as a row that fails (nothing silently lost)
                yield SheetRow(number + 1, _cells(names, []), UserError(
                    f"{path.name} cannot be read from row {number + 1} on as {encoding} ({exc}); "
                    "the rows after it were not read. Save the file as 'CSV UTF-8' and run the batch again.",
                    zh=f"{path.name} 从第 {number + 1} 行起无法按 {encoding} 读取（{exc}），其后的行未读取。"
                       "请将文件另存为“CSV UTF-8”后重新运行。"))
                return
            number += 1
            if not any(v.strip() for v in values):
                continue  # blank line
            yield SheetRow(number, _cells(names, values))


# ---------------------------------------------------------------- XLSX


def _open_xlsx(path: Path) -> Sheet:
    import zipfile

    from openpyxl import load_workbook

    try:
        # Two streaming readers in step: saved values, and the cells' formulas (to tell which are formulas)
        values_book = load_workbook(path, read_only=True, data_only=True)
        formula_book = load_workbook(path, read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise UserError(f"{path.name} is not an Excel workbook I can read ({type(exc).__name__}).",
                        zh=f"{path.name} 不是可读取的 Excel 工作簿（{type(exc).__name__}）。") from None
    values_rows = values_book.active.iter_rows(values_only=True)
    formula_rows = formula_book.active.iter_rows(values_only=True)
    header = next(values_rows, None)
    next(formula_rows, None)
    if not header:
        values_book.close()
        formula_book.close()
        raise UserError(f"{path.name} is empty.", zh=f"{path.name} 是空的。")
    try:
        names, notices = _columns(list(header), path)
    except UserError:
        values_book.close()
        formula_book.close()
        raise
    return Sheet(path, [n for n in names if n], "xlsx", notices,
                 _xlsx_rows(values_book, formula_book, values_rows, formula_rows, names))


def _xlsx_rows(values_book, formula_book, values_rows, formula_rows, names) -> Iterator[SheetRow]:
    from openpyxl.utils import get_column_letter

    try:
        for number, (values, formulas) in enumerate(zip(values_rows, formula_rows), start=2):
            if not any(v not in (None, "") for v in values) and not any(f not in (None, "") for f in formulas):
                continue
            row = SheetRow(number, _cells(names, list(values)))
            for index, (column, value, formula) in enumerate(zip(names, values, formulas), start=1):
                if column is None or not (isinstance(formula, str) and formula.startswith("=")):
                    continue
                cell = f"{get_column_letter(index)}{number}"
                if value is None:
                    row.error = UserError(
                        f"Cell {cell} ({column}) holds a formula that was never calculated, so it has no value. "
                        "Open the workbook in Excel or LibreOffice and save it, or type the value in.",
                        zh=f"单元格 {cell}（{column}）是从未计算过的公式，没有值。请用 Excel 或 LibreOffice 打开并保存，或直接填入值。")
                    break
                row.notices.append(Notice(f"Cell {cell} ({column}) is a formula; its saved value was used.",
                                          f"单元格 {cell}（{column}）是公式，已使用其保存的值。", "info"))
            yield row
    finally:
        values_book.close()
        formula_book.close()
