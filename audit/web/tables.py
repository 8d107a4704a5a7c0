"""Sort and page parameters of the tables on the compliance, auditor and admin pages, and paging of a
report section that the report service already computed (reports are bounded by their scope).

Several tables can share a page: each reads `<prefix>sort`, `<prefix>dir`, `<prefix>page`,
`<prefix>per`. A hostile value is a 422 naming the parameter."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams

from audit.errors import InvalidInput
from audit.report.listing import Column, Page, PageRequest
from audit.report.render import SHORT_ID, UUID, _redundant_id, heading, is_id
from audit.report.schemas import Section

PER_PAGE = (10, 25, 50, 100)
MAX_PAGE = 100_000


def page_request(
    q: QueryParams, prefix: str = "", per: int = 25, sortable: list[str] | None = None
) -> PageRequest:
    sort = q.get(prefix + "sort")
    if sort is not None and sortable is not None and sort not in sortable:
        raise InvalidInput(prefix + "sort", f"{prefix}sort must be one of: {', '.join(sortable)}")
    direction = q.get(prefix + "dir")
    if direction not in (None, "asc", "desc"):
        raise InvalidInput(prefix + "dir", f"{prefix}dir must be asc or desc")
    page = _int(q.get(prefix + "page", "1"), prefix + "page", MAX_PAGE)
    size = _int(q.get(prefix + "per", str(per)), prefix + "per", 100)
    if size not in PER_PAGE:
        raise InvalidInput(prefix + "per", f"{prefix}per must be one of {', '.join(map(str, PER_PAGE))}")
    return PageRequest(sort, None if direction is None else direction == "desc", page, size)


def _int(value: str, field: str, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= high:
        raise InvalidInput(field, f"{field} must be a whole number from 1 to {high}")
    return int(value)


def shown_columns(columns: list[str]) -> list[str]:
    """Names, not ids: a page drops the id columns (the CSV keeps them; `encounter_id` links rows)."""
    return [c for c in columns if not is_id(c) and not _redundant_id(c, columns)]


def _key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (2, "")
    if isinstance(value, bool | int | float):
        return (0, value)
    return (1, str(value))


def section_page(section: Section, q: QueryParams, prefix: str = "", title: str = "") -> Page:
    """One page of a computed report section, sorted by any shown column."""
    shown = shown_columns(section.columns)
    req = page_request(q, prefix, sortable=shown).checked(shown)
    rows = [dict(zip(section.columns, r, strict=True)) for r in section.rows]
    sort = req.sort or ""
    desc = bool(req.desc)
    if sort:
        rows.sort(key=lambda r: _key(r.get(sort)), reverse=desc)
    start = (req.page - 1) * req.size
    columns = [Column(c, heading(c)) for c in shown]
    page_rows = [
        {k: v if is_id(k) else short_ids(v) for k, v in r.items()} for r in rows[start : start + req.size]
    ]
    return Page(prefix or section.key, title or section.heading, columns, page_rows,
                len(rows), req.page, req.size, sort, desc)  # fmt: skip


def short_ids(value: Any) -> Any:
    """Ids inside text (an event's subject, a digest) shortened as in the PDFs: people read names; the
    CSV has every id whole. Row keys such as `encounter_id` (links) are kept whole."""
    if isinstance(value, str) and len(value) > SHORT_ID:
        value = UUID.sub(lambda m: m.group(0)[:SHORT_ID], value)
        if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
            return value[:16] + "…"
    return value
