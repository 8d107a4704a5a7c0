"""The code sets that ship inside the package (``audit/codesets/data``), loaded lazily.

``manifest.json`` lists each release (system, label, period, scope, its packed file with SHA-256, and
where the codes came from); ``scripts/build_codesets.py`` writes both. A release's codes are read the
first time a check needs them, checked against the manifest's SHA-256, and kept for the life of the
process (shared by every index, so rebuilding an index never reads them again).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from audit.codesets import packed
from audit.codesets.releases import CodeEntry, Release

DATA = Path(__file__).parent / "data"

_lock = threading.Lock()
_loaded: dict[str, dict[str, CodeEntry]] = {}


@dataclass(frozen=True)
class BuiltinRelease:
    """One manifest row."""

    id: str
    system: str
    label: str
    effective_from: date
    effective_until: date
    file: str
    sha256: str
    scope: tuple[str, ...] | None
    base: str | None
    counts: dict[str, int]
    sources: tuple[dict[str, str], ...]
    evidence: tuple[str, ...]

    @property
    def provenance(self) -> str:
        return ", ".join(f"{s['package']}:{s['path'].rsplit('/', 1)[-1]}" for s in self.sources)


@cache
def manifest() -> tuple[BuiltinRelease, ...]:
    doc: dict[str, Any] = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
    return tuple(
        BuiltinRelease(
            id=r["id"],
            system=r["system"],
            label=r["label"],
            effective_from=date.fromisoformat(r["effective_from"]),
            effective_until=date.fromisoformat(r["effective_until"]),
            file=r["file"],
            sha256=r["sha256"],
            scope=tuple(r["scope"]) if r["scope"] else None,
            base=r["base"],
            counts=dict(r["counts"]),
            sources=tuple(r["sources"]),
            evidence=tuple(r["evidence"]),
        )
        for r in doc["releases"]
    )


def _row(release_id: str) -> BuiltinRelease:
    return next(r for r in manifest() if r.id == release_id)


def _read(row: BuiltinRelease) -> dict[str, CodeEntry]:
    data = (DATA / row.file).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != row.sha256:
        raise packed.PackedFormatError(f"{row.file}: SHA-256 {digest} is not the manifest's {row.sha256}")
    entries, removed = packed.decode(data)
    if row.base is None:
        return entries
    merged = dict(codes(row.base))
    for code in removed:
        merged.pop(code, None)
    merged.update(entries)
    return merged


def codes(release_id: str) -> dict[str, CodeEntry]:
    """The codes of a built-in release (read once per process)."""
    with _lock:
        found = _loaded.get(release_id)
    if found is not None:
        return found
    built = _read(_row(release_id))
    with _lock:
        return _loaded.setdefault(release_id, built)


def builtin_releases() -> list[Release]:
    """Fresh ``Release`` objects (each index keeps its own caches); their codes load on first use."""
    return [
        Release(
            row.system,
            row.label,
            row.effective_from,
            row.effective_until,
            loader=lambda rid=row.id: codes(rid),  # type: ignore[misc]
            builtin=True,
            scope=row.scope,
            source=row.provenance,
        )
        for row in manifest()
    ]
