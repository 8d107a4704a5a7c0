"""Sorted, paged lists over SQL: the sort key is checked against the list's own columns, the page is
cut by the database (LIMIT/OFFSET), and the total is a COUNT of the same query. No page loads a whole
table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlmodel import Session

from audit.errors import InvalidInput
from audit.policy.scope import ReadScope

MAX_PAGE_SIZE = 200
MAX_PAGE = 100_000


@dataclass(frozen=True)
class PageRequest:
    sort: str | None = None
    desc: bool | None = None
    page: int = 1
    size: int = 25

    def checked(self, sortable: Sequence[str]) -> PageRequest:
        """Refuse (422, naming the field) what no list can serve."""
        if self.sort is not None and self.sort not in sortable:
            raise InvalidInput("sort", f"sort must be one of: {', '.join(sortable)}")
        if not 1 <= self.page <= MAX_PAGE:
            raise InvalidInput("page", f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise InvalidInput("size", f"size must be between 1 and {MAX_PAGE_SIZE}")
        return self


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    sortable: bool = True


@dataclass
class Page:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    total: int
    page: int
    size: int
    sort: str
    desc: bool

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


Query = Callable[[Session, ReadScope, date], Select[Any]]
Shape = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Listing:
    """One list: its columns (each a labelled column of `query`'s SELECT), default order, and how to
    finish a row in Python (e.g. a reason read from the event's payload)."""

    key: str
    title: str
    columns: tuple[Column, ...]
    query: Query
    default_sort: str
    default_desc: bool = True
    tiebreak: str | None = None
    shape: Shape | None = None
    # sort keys that order by another column: "days" since the date of service is the date reversed
    sort_alias: dict[str, tuple[str, bool]] = field(default_factory=dict)

    @property
    def sortable(self) -> list[str]:
        return [c.key for c in self.columns if c.sortable]

    def count(self, session: Session, scope: ReadScope, today: date) -> int:
        stmt = self.query(session, scope, today)
        return int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())

    def page(self, session: Session, scope: ReadScope, today: date, req: PageRequest) -> Page:
        req = req.checked(self.sortable)
        sort = req.sort or self.default_sort
        desc = self.default_desc if req.desc is None else req.desc
        stmt = self.query(session, scope, today)
        order_key, flip = self.sort_alias.get(sort, (sort, False))
        by: ColumnElement[Any] = stmt.selected_columns[order_key]
        ordering = [by.desc() if desc != flip else by.asc()]
        if self.tiebreak and self.tiebreak != order_key:
            tie = stmt.selected_columns[self.tiebreak]
            ordering.append(tie.desc() if desc != flip else tie.asc())
        total = int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
        result = session.execute(stmt.order_by(*ordering).limit(req.size).offset((req.page - 1) * req.size))
        rows = [dict(r) for r in result.mappings()]
        if self.shape is not None:
            rows = [self.shape(r) for r in rows]
        return Page(self.key, self.title, list(self.columns), rows, total, req.page, req.size, sort, desc)
