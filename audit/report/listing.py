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
Group = tuple[ColumnElement[bool], int]
Groups = Callable[[Session, ReadScope, str, bool], list[Group] | None]
"""For a sort key whose value is shared by whole groups of rows (a provider's name by each of their
encounters): the groups in page order, each as the clause that selects its rows and their number, or
None when they are not known cheaply. A page then sorts only the groups it covers."""


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
    # a narrower SELECT with the same rows, to count them (without the joins that only add columns)
    counter: Query | None = None
    groups: Groups | None = None

    @property
    def sortable(self) -> list[str]:
        return [c.key for c in self.columns if c.sortable]

    def count(self, session: Session, scope: ReadScope, today: date) -> int:
        stmt = (self.counter or self.query)(session, scope, today)
        return int(session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())

    def page(
        self, session: Session, scope: ReadScope, today: date, req: PageRequest, *, total: int | None = None
    ) -> Page:
        """One sorted page, and the number of rows (`total`, when the caller already knows it)."""
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
        groups = self.groups(session, scope, sort, desc) if self.groups else None
        if groups is not None:
            rows, total = _walk(session, stmt.order_by(*ordering), groups, req), sum(n for _, n in groups)
        else:
            if total is None:
                total = self.count(session, scope, today)
            result = session.execute(
                stmt.order_by(*ordering).limit(req.size).offset((req.page - 1) * req.size)
            )
            rows = [dict(r) for r in result.mappings()]
        if self.shape is not None:
            rows = [self.shape(r) for r in rows]
        return Page(self.key, self.title, list(self.columns), rows, total, req.page, req.size, sort, desc)


def _walk(
    session: Session, ordered: Select[Any], groups: Sequence[Group], req: PageRequest
) -> list[dict[str, Any]]:
    """The page's rows from the groups it covers, each group's rows in the list's order: the same rows
    as one ORDER BY over every group, without sorting the groups before the page."""
    skip, need, rows = (req.page - 1) * req.size, req.size, []
    for clause, n in groups:
        if skip >= n:
            skip -= n
            continue
        found = session.execute(ordered.where(clause).limit(need).offset(skip)).mappings()
        rows += [dict(r) for r in found]
        skip, need = 0, req.size - len(rows)
        if need <= 0:
            break
    return rows
