"""The compact form of a built-in code-set release (``audit/codesets/data/*.txt.gz``).

Pure: bytes in, entries out (and back, for ``scripts/build_codesets.py``). A release is a gzip of
sorted text lines, one code a line, each front-coded against the line before:

    <k><rest>[ <flag>]...

``k`` is one digit, the number of leading characters shared with the previous code; ``rest`` is the
remainder of the code in its normal form (ICD-10-CM dotted). Flags: ``h`` a header (not billable),
``+YYYYMMDD`` the first valid day, ``-YYYYMMDD`` the last valid day, ``x`` removed from the base
release (only in a release derived from another). A whole ICD-10-CM year (98,000 codes) is ~20 KB.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterable, Mapping
from datetime import date

# code -> (billable, first valid day, last valid day); see audit.codesets.releases.CodeEntry
Entry = tuple[bool, date | None, date | None]
BILLABLE: Entry = (True, None, None)
HEADER: Entry = (False, None, None)


class PackedFormatError(ValueError):
    """A built-in data file does not follow the format above (a build or packaging defect)."""


def _day(text: str, line: int) -> date:
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        raise PackedFormatError(f"line {line}: {text!r} is not a YYYYMMDD date")
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _entry(flags: list[str], line: int) -> Entry | None:
    """The entry the flags describe; ``None`` for ``x`` (removed)."""
    if not flags:
        return BILLABLE
    if flags == ["h"]:
        return HEADER
    if flags == ["x"]:
        return None
    billable, added, terminated = True, None, None
    for flag in flags:
        if flag == "h":
            billable = False
        elif flag[:1] == "+":
            added = _day(flag[1:], line)
        elif flag[:1] == "-":
            terminated = _day(flag[1:], line)
        else:
            raise PackedFormatError(f"line {line}: unknown flag {flag!r}")
    return billable, added, terminated


def decode(data: bytes) -> tuple[dict[str, Entry], set[str]]:
    """gzip bytes -> (code -> entry, codes removed from the base). Codes are interned, so releases
    that share most of their codes (one fiscal year and the next) share the strings too."""
    entries: dict[str, Entry] = {}
    removed: set[str] = set()
    previous = ""
    intern = sys.intern
    # One line at a time (not a list of them all): the temporaries are freed as they go, so
    # loading a release leaves the process no larger than the release itself.
    for n, raw in enumerate(io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(data)), "ascii"), start=1):
        raw = raw.rstrip("\n")
        head, _, tail = raw.partition(" ")
        if not head or not head[0].isdigit():
            raise PackedFormatError(f"line {n}: expected a shared-prefix digit, got {raw!r}")
        code = intern(previous[: int(head[0])] + head[1:])
        previous = code
        entry = _entry(tail.split() if tail else [], n)
        if entry is None:
            removed.add(code)
        else:
            entries[code] = entry
    return entries, removed


def _flags(entry: Entry) -> str:
    billable, added, terminated = entry
    out = [] if billable else ["h"]
    if added is not None:
        out.append(f"+{added:%Y%m%d}")
    if terminated is not None:
        out.append(f"-{terminated:%Y%m%d}")
    return " ".join(out)


def encode(entries: Mapping[str, Entry], removed: Iterable[str] = ()) -> bytes:
    """Entries (and removals) -> reproducible gzip bytes (no timestamp in the header)."""
    rows = {code: _flags(entry) for code, entry in entries.items()}
    rows.update({code: "x" for code in removed})
    lines = []
    previous = ""
    for code in sorted(rows):
        if not code.isascii() or " " in code or not 0 < len(code) <= 9:
            raise PackedFormatError(f"code {code!r} cannot be packed")
        shared, limit = 0, min(len(previous), len(code), 9)
        while shared < limit and previous[shared] == code[shared]:
            shared += 1
        flags = rows[code]
        lines.append(f"{shared}{code[shared:]}{' ' + flags if flags else ''}")
        previous = code
    return gzip.compress(("\n".join(lines) + "\n").encode("ascii"), compresslevel=9, mtime=0)
