"""Reads a bulk import may reuse within one batch (one transaction), instead of once per row.

Inside `batch_reads()`, `remembered(key, read)` runs `read` once per key and returns the same result
for the rest of the block. Only reads whose answer cannot change under the batch's own writes use it
(the code-set releases, a coder's delegations from a provider): the batch writes neither, and on SQLite
the batch's transaction holds the write lock, so no one else does either. On PostgreSQL another
transaction may revoke a delegation meanwhile; the batch then sees it at its next batch (seconds),
as a request that started just before the revocation would have.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")
_memo: ContextVar[dict[Hashable, object] | None] = ContextVar("audit_batch_reads", default=None)


@contextmanager
def batch_reads() -> Iterator[None]:
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def remembered(key: Hashable, read: Callable[[], T]) -> T:
    memo = _memo.get()
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return memo[key]  # type: ignore[return-value]
