"""Bounded readers for uploaded corpus files: .jsonl, .json, .csv, .parquet, .txt and .md.

An upload comes from anyone who can reach the page, so every reader checks its bounds before
a parser or library sees the data, and counts as it goes: file size, JSON nesting depth and
container count (from a fast scan of the bytes), rows, columns, characters per value and in
all. Parquet, which can hide any amount of text behind a small file (dictionary encoding,
compression), is judged from its metadata first and then read a few thousand rows at a time,
with each batch's decoded size computed from the encoded data before any Python string is made.

File names are only ever opened, never interpreted (no globbing, no URLs), and messages name
the visitor's file by its base name, never by the server path it was saved under.

The readers yield records {"id", "title", "text"} for `corpus.build_corpus`; every problem a
visitor can fix is a `CorpusError` that says what is wrong and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence, TypeVar

import numpy as np

from ..errors import CorpusError
from ..inputs import clean_text

# -- limits ---------------------------------------------------------------------------------------
# Gradio refuses larger uploads; the readers check again (the command line calls them directly).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Records are flat ({"text": ..., "title": ...}, perhaps inside {"data": [...]} and with a little
# metadata); deep nesting only serves to exhaust a parser's stack (libarrow segfaulted at 10,000).
MAX_JSON_DEPTH = 20
# Every JSON object or array becomes a Python object of 60-250 bytes: with at most 5 per row at
# MAX_ROWS, a 20 MB file of "{}" cannot turn into hundreds of MB before its rows are counted.
MAX_JSON_CONTAINERS = 1_000_000
# More rows than a corpus of MAX_UPLOAD_PASSAGES passages could need, with room for duplicates
# and empty rows; it bounds the work done on rows that produce nothing.
MAX_ROWS = 200_000
# Wide exports are fine; thousands of columns are not a passage table.
MAX_COLUMNS = 1_000
# One value (a text, title or id): a long article is well under this; split books into rows.
MAX_TEXT_CHARS = 1_000_000
# All values read, in all: about three times what a 20 MB text file can hold, so honest files
# never meet it; it is what stops compressed or dictionary-encoded Parquet from expanding.
MAX_DECODED_CHARS = 64_000_000
# Parquet columns read, uncompressed as the file's metadata states it: bounds the pages pyarrow
# decompresses; a file within it still holds MAX_DECODED_CHARS of plain ASCII text.
MAX_PARQUET_DATA_BYTES = 64 * 1024 * 1024
# Parquet rows per batch: small enough that a batch is cheap to measure before it is decoded.
PARQUET_BATCH_ROWS = 4096
# Passages kept from one upload (the first ones); the corpus name says when some were cut.
MAX_UPLOAD_PASSAGES = 20_000

UPLOAD_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt", ".md")
TEXT_COLUMNS = ("text", "passage", "content", "body", "context", "document", "paragraph")
TITLE_COLUMNS = ("title", "heading", "name", "subject")
JSON_SHAPES = (
    'a list of objects ([{"text": ...}, ...]), an object with one key holding such a list '
    '({"data": [...]}), or an object of equal-length lists ({"text": [...], "title": [...]})'
)

Row = tuple[str, Mapping[str, object]]  # (where it is, for messages: "line 3" / "row 3"; its values)
# What a caller picks from a table's columns (names, None for one it does without): `Columns` for corpora.
ChosenColumns = TypeVar("ChosenColumns", bound=Sequence["str | None"])


class Columns(NamedTuple):
    """The file's columns that hold each record's text, title and id (None: not in the file)."""

    text: str
    title: str | None
    id: str | None


# -- entry point ------------------------------------------------------------------------------------
def display_name(path: Path, name: str | None = None) -> str:
    """The name messages use: the visitor's file name when given, else the file's; base name only."""
    shown = clean_text(name or "").replace("\\", "/").rsplit("/", 1)[-1].strip() or clean_text(path.name)
    return shown[:200]


def upload_records(
    path: Path,
    *,
    shown: str,
    title_column: str | None = None,
    text_column: str | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Iterator[dict[str, object]]:
    """Records {"id", "title", "text"} of an uploaded file, every bound checked.

    Table formats are read lazily where they can be (Parquet batch by batch), so a consumer
    that stops early (a passage cap) stops the reading too. Raises CorpusError.
    """
    suffix = check_file(path, shown, max_bytes)
    if suffix in (".txt", ".md"):
        text = read_bytes(path, shown, max_bytes).decode("utf-8", errors="replace")
        return markdown_records(text, Path(shown).stem, shown)
    if suffix == ".parquet":
        columns, rows = parquet_rows(path, shown, title_column, text_column)
    else:
        data = read_bytes(path, shown, max_bytes)
        if suffix == ".csv":
            columns, rows = csv_rows(decode_utf8(data, shown), shown, title_column, text_column)
        else:
            columns, rows = json_rows(data, shown, title_column, text_column, lines=suffix == ".jsonl")
    return checked_records(rows, columns, shown)


TABLE_SUFFIXES = (".jsonl", ".json", ".csv")


def table_rows(
    path: Path, shown: str, choose: Callable[[list[str]], ChosenColumns], *, max_bytes: int = MAX_UPLOAD_BYTES
) -> tuple[ChosenColumns, list[Row]]:
    """The columns `choose` picks from a .jsonl/.json/.csv upload's columns, and its rows, with the
    same bounds as a corpus upload (size, nesting, rows, columns); for tables other than passages
    (QA sets). The values are not checked here: the caller knows what each column must hold.
    Raises CorpusError."""
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise CorpusError(
            f"{shown}: unsupported file type {suffix or '(none)'}; use one of {', '.join(TABLE_SUFFIXES)}."
        )
    check_file(path, shown, max_bytes)
    data = read_bytes(path, shown, max_bytes)
    if suffix == ".csv":
        return csv_table(decode_utf8(data, shown), shown, choose)
    columns, rows = json_table(data, shown, lines=suffix == ".jsonl")  # at most MAX_COLUMNS columns
    return choose(columns), rows


# -- the file itself --------------------------------------------------------------------------------
def check_file(path: Path, shown: str, max_bytes: int) -> str:
    """The file's (lower-case) suffix, once its type, size and first bytes look right."""
    suffix = path.suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise CorpusError(
            f"{shown}: unsupported file type {suffix or '(none)'}; use one of {', '.join(UPLOAD_SUFFIXES)}."
        )
    try:
        size = path.stat().st_size
    except OSError as exc:  # a path typed on the command line may not exist; say so without a traceback
        raise CorpusError(f"{shown} cannot be read: {exc.strerror or type(exc).__name__}.") from exc
    if size > max_bytes:
        raise CorpusError(f"{shown} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.")
    if size == 0:
        raise CorpusError(f"{shown} is empty.")
    with open(path, "rb") as f:
        head = f.read(8192)
    if suffix == ".parquet":
        if not head.startswith(b"PAR1"):
            raise CorpusError(f"{shown} is not a Parquet file.")
    elif b"\0" in head:
        raise CorpusError(f"{shown} looks like a binary file, not {suffix} text.")
    else:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not merely a character cut at the 8 KiB boundary
                raise CorpusError(f"{shown} is not UTF-8 text; save it as UTF-8 and upload it again.") from exc
    return suffix


def read_bytes(path: Path, shown: str, max_bytes: int) -> bytes:
    """The file's bytes, reading no more than `max_bytes` (it may have grown since it was checked)."""
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CorpusError(f"{shown} is larger than the limit of {max_bytes / 1e6:.0f} MB.")
    return data


def decode_utf8(data: bytes, shown: str) -> str:
    """UTF-8 text, a leading byte-order mark dropped (spreadsheet programs write one)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{shown} is not UTF-8 text (byte {exc.start:,}); save it as UTF-8 and upload it again."
        ) from exc


def markdown_records(text: str, default_title: str, shown: str = "the document") -> Iterator[dict[str, str]]:
    """Paragraphs of a text/Markdown document, one at a time; a '# heading' titles the paragraphs
    under them. Paragraphs are counted against MAX_ROWS like table rows (20 MB of "a\n\n" is
    seven million of them)."""
    title, count, start = default_title, 0, 0
    for end in _paragraph_ends(text):
        lines = text[start : end[0]].strip().splitlines()
        start = end[1]
        while lines and lines[0].lstrip().startswith("#"):
            title = lines.pop(0).lstrip("# ").strip() or title
        if lines:
            count += 1
            if count > MAX_ROWS:
                raise CorpusError(f"{shown} has more than {MAX_ROWS:,} paragraphs; split it into smaller files.")
            yield {"title": title, "text": " ".join(lines)}


def _paragraph_ends(text: str) -> Iterator[tuple[int, int]]:
    """(end of a paragraph, start of the next) for each blank-line break, then the text's end."""
    for m in re.finditer(r"\n\s*\n", text):
        yield m.start(), m.end()
    yield len(text), len(text)


# -- columns and values -------------------------------------------------------------------------------
def columns_for_message(columns: list[str]) -> str:
    """A column list short enough for a message, however many (and however long) the names."""
    shown = [c if len(c) <= 60 else c[:57] + "..." for c in columns[:20]]
    more = f" and {len(columns) - 20} more" if len(columns) > 20 else ""
    return f"{shown}{more}"


def pick_column(
    columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, required: bool
) -> str | None:
    """The column named `wanted`, else the first of `candidates` present (any case), else None or an error."""
    if wanted:
        if wanted not in columns:
            raise CorpusError(
                f"The {what} column {wanted!r} is not in the file; its columns are {columns_for_message(columns)}."
            )
        return wanted
    lowered = {c.lower(): c for c in columns}
    for c in candidates:
        if c in lowered:
            return lowered[c]
    if required:
        raise CorpusError(
            f"No {what} column found (looked for {list(candidates)}); the file's columns are "
            f"{columns_for_message(columns)}. Name the column to use."
        )
    return None


def choose_columns(columns: list[str], shown: str, title_column: str | None, text_column: str | None) -> Columns:
    """The text, title and id columns of a table with these columns (checked against MAX_COLUMNS)."""
    if len(columns) > MAX_COLUMNS:
        raise CorpusError(
            f"{shown} has {len(columns):,} columns; the limit is {MAX_COLUMNS:,}. Keep only the columns with "
            "the text and title."
        )
    text = pick_column(columns, text_column, TEXT_COLUMNS, "text", required=True)
    title = pick_column(columns, title_column, TITLE_COLUMNS, "title", required=False)
    return Columns(text, title, "id" if "id" in columns else None)


def json_kind(value: object) -> str:
    """A value's type in the words of JSON, for messages."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    kinds = {str: "a string", dict: "an object", list: "a list"}
    return next((word for t, word in kinds.items() if isinstance(value, t)), type(value).__name__)


def checked_records(rows: Iterable[Row], columns: Columns, shown: str) -> Iterator[dict[str, object]]:
    """Records {"id", "title", "text"} from rows, refusing more than MAX_ROWS rows, values that are
    not strings or numbers, a value over MAX_TEXT_CHARS, or more than MAX_DECODED_CHARS in all."""
    total = 0
    for count, (where, row) in enumerate(rows, start=1):
        if count > MAX_ROWS:
            raise CorpusError(f"{shown} has more than {MAX_ROWS:,} rows; split it into smaller files.")
        record: dict[str, object] = {}
        for key, column in zip(("text", "title", "id"), columns):
            value = row.get(column) if column else None
            if isinstance(value, bool) or not isinstance(value, (str, int, float, type(None))):
                raise CorpusError(
                    f"{shown}: {where} has {json_kind(value)} in the {column!r} column; "
                    "text, title and id values must be strings or numbers."
                )
            if isinstance(value, str):
                if len(value) > MAX_TEXT_CHARS:
                    raise CorpusError(
                        f"{shown}: {where} has {len(value):,} characters in the {column!r} column; the limit is "
                        f"{MAX_TEXT_CHARS:,} per value. Split long documents into several rows."
                    )
                total += len(value)
            record[key] = value
        if total > MAX_DECODED_CHARS:
            raise CorpusError(too_much_text(shown))
        yield record


def too_much_text(shown: str) -> str:
    return f"{shown} holds more than {MAX_DECODED_CHARS:,} characters of text; split it into smaller files."


# -- JSON and JSON lines --------------------------------------------------------------------------------
_QUOTE, _NEWLINE = ord('"'), ord("\n")
_STEP = np.zeros(256, np.int8)  # +1 where a byte opens an array or object, -1 where it closes one
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1
_SCAN_CHUNK = 1 << 20  # bytes per numpy step: keeps the scan's own memory to about 20 MB


class JsonNesting(NamedTuple):
    depth: int  # deepest nesting of arrays and objects (per line for JSON lines)
    containers: int  # arrays and objects in all


def json_nesting(data: bytes, *, per_line: bool) -> JsonNesting:
    """Nesting depth and container count of JSON text, brackets inside strings ignored, without parsing.

    Escapes are neutralised first, with two C-speed replaces: pairing backslashes from the left
    ("\\\\" -> "__") is how JSON reads a run of them, after which a backslash left before a quote
    escapes it. Then every '"' opens or closes a string, and cumulative sums over the bytes give
    the quote parity and the nesting level, brackets counted outside strings only. `per_line`
    (JSON lines) starts each line afresh, so a malformed line is reported as such by the parser
    rather than skewing the lines after it. For text a JSON parser accepts, the scan sees exactly
    the brackets the parser would. Arrays are chunk-local int32 (fast cumsums); totals carry over.
    """
    plain = data.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    codes = np.frombuffer(plain, np.uint8)
    deepest = containers = 0
    quotes = level = 0  # totals before this chunk
    line_quotes = line_level = 0  # totals where the current line began
    for start in range(0, len(codes), _SCAN_CHUNK):
        chunk = codes[start : start + _SCAN_CHUNK]
        q = np.cumsum(chunk == _QUOTE, dtype=np.int32)  # quotes so far in this chunk
        if per_line:
            newlines = np.flatnonzero(chunk == _NEWLINE)
            # Quotes where each byte's line began, relative to this chunk (q never decreases, so a
            # running maximum carries the count at the last newline forward).
            began = np.full(len(chunk), line_quotes - quotes, dtype=np.int32)
            began[newlines] = q[newlines]
            outside = ((q - np.maximum.accumulate(began)) & 1) == 0
        else:
            outside = ((q + (quotes & 1)) & 1) == 0
        step = np.where(outside, np.take(_STEP, chunk), np.int8(0))
        levels = np.cumsum(step, dtype=np.int32)  # nesting level relative to this chunk's start
        if per_line:
            # Each line's deepest level less its level at the start: one segment per line.
            starts = np.concatenate(([0], newlines + 1))
            bases = np.concatenate(([line_level - level], levels[newlines]))
            keep = starts < len(chunk)  # a newline that ends the chunk starts no segment here
            deepest = max(deepest, int((np.maximum.reduceat(levels, starts[keep]) - bases[keep]).max()))
            if len(newlines):
                line_quotes, line_level = quotes + int(q[newlines[-1]]), level + int(levels[newlines[-1]])
        else:
            deepest = max(deepest, level + int(levels.max()))
        containers += int(np.count_nonzero(step == 1))
        quotes, level = quotes + int(q[-1]), level + int(levels[-1])
    return JsonNesting(deepest, containers)


def check_json_nesting(data: bytes, shown: str, *, per_line: bool) -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH or with more than MAX_JSON_CONTAINERS arrays and objects."""
    nesting = json_nesting(data, per_line=per_line)
    if nesting.depth > MAX_JSON_DEPTH:
        raise CorpusError(
            f"{shown} nests arrays or objects {nesting.depth:,} deep; the limit is {MAX_JSON_DEPTH}. "
            'Upload flat records such as {"title": ..., "text": ...}.'
        )
    if nesting.containers > MAX_JSON_CONTAINERS:
        raise CorpusError(
            f"{shown} holds {nesting.containers:,} JSON objects and arrays; the limit is {MAX_JSON_CONTAINERS:,}. "
            "Split it into smaller files."
        )


def parse_json_lines(lines: Iterable[str], shown: str) -> list[dict]:
    """Records of JSON lines; malformed lines (and lines that are not objects) are reported by number."""
    records, bad = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack
            bad.append(number)
            continue
        if not isinstance(value, dict):
            bad.append(number)
            continue
        records.append(value)
    if bad:
        listed = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise CorpusError(f"{shown}: line(s) {listed} are not JSON objects; fix or remove them.")
    return records


_JSON_LINES = object()  # what `_parse_json_document` returns for JSON lines saved as .json


def _parse_json_document(text: str, shown: str) -> object:
    """The parsed value of a whole JSON document, or _JSON_LINES when it is JSON lines instead."""
    try:
        return json.loads(text)
    except RecursionError as exc:  # only if the depth scan and the parser ever disagree
        raise CorpusError(f"{shown} is nested too deeply; the limit is {MAX_JSON_DEPTH}.") from exc
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            return _JSON_LINES  # {...}\n{...}: JSON lines saved as .json, which people do
        raise CorpusError(f"{shown} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise CorpusError(f"{shown} is not valid JSON ({str(exc)[:200]}).") from exc


def _json_shape(value: object) -> str:
    """What a parsed JSON document is, in a few words, for the message that refuses it."""
    if isinstance(value, dict):
        return f"an object with keys {columns_for_message(list(value))}"
    return json_kind(value)


def _table_from_json(value: object, shown: str) -> tuple[list[str], list[Row]]:
    """Columns and rows of a parsed .json document in one of the accepted shapes (JSON_SHAPES)."""
    if isinstance(value, dict) and len(value) == 1:
        (only,) = value.values()
        if isinstance(only, list) and only and all(isinstance(item, dict) for item in only):
            value = only  # {"data": [{...}, ...]}
    if isinstance(value, list):
        if len(value) > MAX_ROWS:
            raise CorpusError(
                f"{shown} has {len(value):,} rows; the limit is {MAX_ROWS:,}. Split it into smaller files."
            )
        for n, item in enumerate(value, start=1):
            if not isinstance(item, dict):
                raise CorpusError(
                    f"{shown}: item {n} is {json_kind(item)}, not an object. A .json upload must be {JSON_SHAPES}."
                )
        return _union_of_keys(value, shown), [(f"item {n}", item) for n, item in enumerate(value, start=1)]
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        lengths = {len(v) for v in value.values()}
        if len(lengths) > 1:
            sizes = ", ".join(f"{k!r}: {len(v):,}" for k, v in list(value.items())[:10])
            raise CorpusError(f"{shown}: the lists of a column-wise .json must be of equal length ({sizes}).")
        columns = list(value)
        if len(columns) > MAX_COLUMNS:
            raise CorpusError(f"{shown} has {len(columns):,} columns; the limit is {MAX_COLUMNS:,}.")
        rows = lengths.pop()
        if rows > MAX_ROWS:
            raise CorpusError(f"{shown} has {rows:,} rows; the limit is {MAX_ROWS:,}. Split it into smaller files.")
        return columns, [(f"row {i + 1}", {c: value[c][i] for c in columns}) for i in range(rows)]
    raise CorpusError(f"{shown} is {_json_shape(value)}; a .json upload must be {JSON_SHAPES}.")


def _union_of_keys(records: list[dict], shown: str) -> list[str]:
    """Every key of the records, in order of first appearance, refusing more than MAX_COLUMNS."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
        if len(columns) > MAX_COLUMNS:
            raise CorpusError(
                f"{shown}'s records use more than {MAX_COLUMNS:,} different keys; keep only the text and title."
            )
    return list(columns)


def json_rows(
    data: bytes, shown: str, title_column: str | None, text_column: str | None, *, lines: bool
) -> tuple[Columns, list[Row]]:
    """Columns and rows of a .jsonl (`lines`) or .json upload, nesting checked before parsing."""
    columns, rows = json_table(data, shown, lines=lines)
    return choose_columns(columns, shown, title_column, text_column), rows


def json_table(data: bytes, shown: str, *, lines: bool) -> tuple[list[str], list[Row]]:
    """Every column and the rows of a .jsonl (`lines`) or .json upload, nesting checked before parsing."""
    check_json_nesting(data, shown, per_line=lines)
    text = decode_utf8(data, shown)
    value = _JSON_LINES if lines else _parse_json_document(text, shown)
    if value is _JSON_LINES:  # by name or by content
        records = parse_json_lines(text.split("\n"), shown)
        if len(records) > MAX_ROWS:
            raise CorpusError(
                f"{shown} has {len(records):,} rows; the limit is {MAX_ROWS:,}. Split it into smaller files."
            )
        columns = _union_of_keys(records, shown)
        rows = [(f"line {n}", r) for n, r in zip(_nonblank_line_numbers(text), records)]
    else:
        columns, rows = _table_from_json(value, shown)
    return columns, rows


def _nonblank_line_numbers(text: str) -> Iterator[int]:
    """Numbers of the lines that hold something: the lines the records of `parse_json_lines` came from."""
    return (n for n, line in enumerate(text.split("\n"), start=1) if line.strip())


# -- CSV ------------------------------------------------------------------------------------------------
_CSV_LIMIT_LOCK = threading.Lock()


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """csv's field size limit is process-wide: set it for one read, under a lock, and put it back."""
    with _CSV_LIMIT_LOCK:
        previous = csv.field_size_limit(limit)
        try:
            yield
        finally:
            csv.field_size_limit(previous)


def csv_rows(text: str, shown: str, title_column: str | None, text_column: str | None) -> tuple[Columns, list[Row]]:
    """Columns and rows of a .csv upload with a header row, keeping only the columns used."""
    return csv_table(text, shown, lambda header: choose_columns(header, shown, title_column, text_column))


def csv_table(text: str, shown: str, choose: Callable[[list[str]], ChosenColumns]) -> tuple[ChosenColumns, list[Row]]:
    """The columns `choose` picks from a .csv upload's header row, and the rows, holding only those.

    Read at once, under the field-size lock, so the process-wide limit is never left changed
    while the rows are consumed; only the columns used are kept, which bounds the memory.
    """
    with _csv_field_limit(MAX_TEXT_CHARS):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next((cells for cells in reader if cells), None)
            if header is None:
                raise CorpusError(f"{shown} has no header row; its first line must name the columns, e.g. title,text.")
            if len(header) > MAX_COLUMNS:
                raise CorpusError(
                    f"{shown} has {len(header):,} columns; the limit is {MAX_COLUMNS:,}. Keep only the columns used."
                )
            columns = choose(header)
            index = {name: header.index(name) for name in columns if name}
            rows: list[Row] = []
            for cells in reader:
                if not cells:
                    continue  # a blank line
                if len(rows) >= MAX_ROWS:
                    raise CorpusError(f"{shown} has more than {MAX_ROWS:,} rows; split it into smaller files.")
                if len(cells) > len(header):
                    raise CorpusError(
                        f"{shown}: line {reader.line_num} has {len(cells)} values but the header names "
                        f"{len(header)} columns; quote values that contain commas."
                    )
                rows.append(
                    (f"line {reader.line_num}", {name: cells[i] for name, i in index.items() if i < len(cells)})
                )
        except csv.Error as exc:
            if "field limit" in str(exc):
                raise CorpusError(
                    f"{shown}: a value near line {reader.line_num} is longer than {MAX_TEXT_CHARS:,} characters; "
                    "split long documents into several rows."
                ) from exc
            raise CorpusError(f"{shown} could not be read as CSV (line {reader.line_num}: {exc}).") from exc
    return columns, rows


# -- Parquet --------------------------------------------------------------------------------------------
def is_text_type(t) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return is_text_type(t.value_type)
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_number_type(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)


def library_error(exc: Exception, path: Path, shown: str) -> str:
    """The first line of a library's message, the server path replaced by the visitor's file name."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for server_path in (str(path.resolve()), str(path), str(path.parent)):
        line = line.replace(server_path, shown)
    return line[:300]


def parquet_rows(
    path: Path, shown: str, title_column: str | None, text_column: str | None
) -> tuple[Columns, Iterator[Row]]:
    """Columns and (lazily read) rows of a .parquet upload, refused from its metadata when over a bound."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pa.OSFile(os.fspath(path)) as f:  # opened by us: the name is never parsed as a URI or pattern
            parquet = pq.ParquetFile(f)
            meta, schema = parquet.metadata, parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise CorpusError(f"{shown} could not be read as Parquet: {library_error(exc, path, shown)}") from exc
    if meta.num_rows > MAX_ROWS:
        raise CorpusError(
            f"{shown} has {meta.num_rows:,} rows; the limit is {MAX_ROWS:,}. Split it into smaller files."
        )
    if max(meta.num_columns, len(schema.names)) > MAX_COLUMNS:
        raise CorpusError(
            f"{shown} has {max(meta.num_columns, len(schema.names)):,} columns; the limit is {MAX_COLUMNS:,}. "
            "Keep only the columns with the text and title."
        )
    columns = choose_columns(schema.names, shown, title_column, text_column)
    _check_parquet_types(schema, columns, shown)
    check_parquet_stored_size(meta, shown)
    texts = [name for name in dict.fromkeys(columns) if name and is_text_type(schema.field(name).type)]
    return columns, _parquet_batches(path, shown, columns, texts)


def _check_parquet_types(schema, columns: Columns, shown: str) -> None:
    """The text column must hold strings; title and id strings or numbers."""
    for role, name in zip(("text", "title", "id"), columns):
        if name is None:
            continue
        t = schema.field(name).type
        if not (is_text_type(t) or (role != "text" and _is_number_type(t))):
            allowed = "strings" if role == "text" else "strings or numbers"
            raise CorpusError(
                f"{shown}: the {role} column {name!r} holds {t} values; it must hold {allowed}. "
                "Name another column, or convert this one."
            )


def check_parquet_stored_size(meta, shown: str) -> None:
    """Refuse a file whose columns are, uncompressed, over MAX_PARQUET_DATA_BYTES (a compression bomb)."""
    stored = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if group.num_rows > MAX_ROWS:  # in case the row groups disagree with the total
            raise CorpusError(f"{shown} has a row group of {group.num_rows:,} rows; the limit is {MAX_ROWS:,}.")
        # Every column counts: matching names to column paths is ambiguous (a column may be
        # called "t.x"), and a bound on the whole file is a bound on the columns read.
        stored += sum(group.column(c).total_uncompressed_size for c in range(group.num_columns))
    if stored > MAX_PARQUET_DATA_BYTES:
        raise CorpusError(
            f"{shown} takes {stored / 1e6:,.0f} MB uncompressed; the limit is "
            f"{MAX_PARQUET_DATA_BYTES / 1e6:,.0f} MB. Split it into smaller files."
        )


def encoded_text_size(column) -> tuple[int, int]:
    """(all, longest) UTF-8 byte length of a string column's values, computed without decoding them.

    Bytes are an upper bound on characters, and cheap: a dictionary column's lengths are the
    lengths of its dictionary's values (from their offsets), taken by its indices.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):
        lengths = pc.take(pc.binary_length(column.dictionary), column.indices)
    else:
        lengths = pc.binary_length(column)
    return int(pc.sum(lengths).as_py() or 0), int(pc.max(lengths).as_py() or 0)


def _parquet_batches(path: Path, shown: str, columns: Columns, texts: list[str]) -> Iterator[Row]:
    """Rows of the used columns, PARQUET_BATCH_ROWS at a time, each batch measured before it is decoded.

    The string columns (`texts`) are read as dictionaries whatever their encoding in the file, so
    a batch is never expanded to one string per row before its size is known.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = list(dict.fromkeys(name for name in columns if name))
    total, row = 0, 0
    try:
        with pa.OSFile(os.fspath(path)) as f:
            parquet = pq.ParquetFile(f, read_dictionary=texts)
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted, use_threads=False):
                for name in texts:
                    size, longest = encoded_text_size(batch.column(name))
                    if longest > MAX_TEXT_CHARS:
                        raise CorpusError(
                            f"{shown}: a value in the {name!r} column near row {row + 1:,} is {longest:,} bytes long; "
                            f"the limit is {MAX_TEXT_CHARS:,} per value. Split long documents into several rows."
                        )
                    total += size
                if total > MAX_DECODED_CHARS:
                    raise CorpusError(too_much_text(shown))
                values = {name: batch.column(name).to_pylist() for name in wanted}
                for i in range(batch.num_rows):
                    row += 1
                    yield f"row {row:,}", {name: values[name][i] for name in wanted}
    except (pa.ArrowException, OSError) as exc:
        raise CorpusError(f"{shown} could not be read as Parquet: {library_error(exc, path, shown)}") from exc
