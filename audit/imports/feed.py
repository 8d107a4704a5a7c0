"""Reading a bulk charge feed (CSV with a header row, or NDJSON) as a stream of rows.

Pure: no database, no clock. The feed is read in chunks and hashed as it goes; only one physical
line is held at a time, and a line longer than MAX_LINE_BYTES is skipped (and rejected) without
being held, so memory stays flat whatever the file. A CSV record is one physical line (a charge
line has no line breaks in its values; a quoted line break is rejected as an unterminated record).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

REQUIRED = (
    "external_id", "patient_ref", "date_of_service", "rendering_npi", "entered_by",
    "system", "code", "modifiers", "units", "diagnosis_pointers", "line_ref",
)  # fmt: skip
OPTIONAL = ("reason", "source")
LISTS = ("modifiers", "diagnosis_pointers")  # `|`-separated in CSV; arrays or `|` text in NDJSON
MAX_LINE_BYTES = 64 * 1024
CHUNK_BYTES = 1 << 20
FORMATS = ("csv", "ndjson")


class FeedError(Exception):
    """The file as a whole cannot be read (its header, its format): nothing is imported."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class FeedRow:
    """One data line: its 1-based physical line number and its values by column name."""

    line_no: int
    values: dict[str, Any]


@dataclass(frozen=True)
class Rejection:
    line_no: int
    field: str
    reason: str


class Feed:
    """A feed being read: `rows()` yields FeedRow or Rejection in file order; `sha256`, `bytes_read`
    and `format` are known as reading goes (the digest is complete once `rows()` is exhausted)."""

    def __init__(self, stream: BinaryIO, fmt: str | None = None) -> None:
        if fmt is not None and fmt not in FORMATS:
            raise FeedError("format", f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self._stream = stream
        self.format = fmt
        self._digest = hashlib.sha256()
        self.bytes_read = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def rows(self) -> Iterator[FeedRow | Rejection]:
        header: list[str] | None = None
        for line_no, raw in self._lines():
            awaiting_header = header is None and self.format != "ndjson"
            problem = None
            if raw is None:
                problem = f"is longer than {MAX_LINE_BYTES} bytes"
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problem = f"is not UTF-8 (byte {exc.start}: 0x{raw[exc.start]:02x})"
            if problem is not None:
                if awaiting_header:  # without a header no row can be read
                    raise FeedError("header", f"line {line_no}, the first line (a CSV header), {problem}")
                yield Rejection(line_no, "line", problem)
                continue
            if line_no == 1:
                text = text.removeprefix("\ufeff")
            if not text.strip():
                continue
            if self.format is None:
                self.format = "ndjson" if text.lstrip().startswith("{") else "csv"
            if self.format == "csv" and header is None:
                header = _header(text, line_no)
                continue
            yield _csv_row(text, line_no, header) if header is not None else _json_row(text, line_no)

    def _lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(line number, bytes without the line break), or None for a line that was too long."""
        buffer = b""
        line_no = 0
        skipping = False
        while True:
            chunk = self._stream.read(CHUNK_BYTES)
            if not chunk:
                break
            self._digest.update(chunk)
            self.bytes_read += len(chunk)
            buffer += chunk
            start = 0
            while True:
                end = buffer.find(b"\n", start)
                if end < 0:
                    break
                line_no += 1
                if skipping:
                    skipping = False
                    yield line_no, None
                else:
                    yield line_no, _line_bytes(buffer, start, end)
                start = end + 1
            buffer = buffer[start:]
            if len(buffer) > MAX_LINE_BYTES:
                skipping, buffer = True, b""
        if skipping or buffer:
            line_no += 1
            yield line_no, None if skipping else _line_bytes(buffer, 0, len(buffer))


def _line_bytes(buffer: bytes, start: int, end: int) -> bytes | None:
    if end - start > MAX_LINE_BYTES:
        return None
    return buffer[start:end].removesuffix(b"\r")


def _header(text: str, line_no: int) -> list[str]:
    if "\x00" in text:
        raise FeedError("header", f"line {line_no}: the header holds a NUL character")
    try:
        names = [name.strip().lower() for name in next(csv.reader([text]))]
    except csv.Error as exc:
        raise FeedError("header", f"line {line_no}: not a CSV header ({exc})") from exc
    check_columns(names, where="header")
    return names


def check_columns(names: list[str], *, where: str) -> None:
    """Every required column, nothing unknown, nothing twice (FeedError naming them otherwise)."""
    missing = [c for c in REQUIRED if c not in names]
    unknown = [n for n in names if n not in REQUIRED and n not in OPTIONAL]
    twice = sorted({n for n in names if names.count(n) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        shown = ", ".join(repr(u[:40]) for u in unknown[:5])
        problems.append(f"unknown column(s) {shown}; expected {', '.join(REQUIRED + OPTIONAL)}")
    if twice:
        problems.append(f"column(s) named twice: {', '.join(twice)}")
    if problems:
        raise FeedError(where, "; ".join(problems))


def _csv_row(text: str, line_no: int, header: list[str]) -> FeedRow | Rejection:
    if "\x00" in text:
        return Rejection(line_no, _column_at(text, header), "holds a NUL character")
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return Rejection(line_no, "line", f"is not a CSV record ({exc})")
    if len(fields) != len(header):
        return Rejection(line_no, "line", f"has {len(fields)} fields; the header names {len(header)}")
    values: dict[str, Any] = dict(zip(header, fields, strict=True))
    for name in LISTS:
        values[name] = _split(values[name])
    return FeedRow(line_no, values)


def _column_at(text: str, header: list[str]) -> str:
    """The column a NUL falls in, counted by commas (good enough to name it in a rejection)."""
    index = text[: text.index("\x00")].count(",")
    return header[index] if index < len(header) else "line"


def _split(value: str) -> list[str]:
    value = value.strip()
    return [part.strip() for part in value.split("|")] if value else []


def _json_row(text: str, line_no: int) -> FeedRow | Rejection:
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return Rejection(line_no, "line", f"is not JSON ({str(exc)[:120]})")
    if not isinstance(obj, dict):
        return Rejection(line_no, "line", "is not a JSON object")
    try:
        check_columns(list(obj), where="line")
    except FeedError as exc:
        return Rejection(line_no, "line", exc.message)
    values: dict[str, Any] = {}
    for name, value in obj.items():
        if value is None:
            value = [] if name in LISTS else ""
        elif name in LISTS and isinstance(value, str):
            value = _split(value)
        elif isinstance(value, dict | list) and name not in LISTS:
            return Rejection(line_no, name, "must be text or a number, not an object or array")
        values[name] = value
    return FeedRow(line_no, values)
