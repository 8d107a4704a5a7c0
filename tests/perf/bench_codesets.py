"""Benchmark: code-set checks per second and built-in ICD-10-CM load time, as ratios to baselines.

Run: /work/venv/bin/python tests/perf/bench_codesets.py
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audit.codesets.parsers import decode, parse_hcpcs
from audit.codesets.releases import CodeSetIndex, Release, builtin_icd10cm_release, release_from_records

HCPCS = Path(__file__).resolve().parents[3] / "shared/data/codesets/hcpcs/HCPC2020_ANWEB_w_disclaimer.txt"
N = 300_000


def main() -> None:
    t0 = time.perf_counter()
    builtin = builtin_icd10cm_release()
    assert builtin is not None
    icd = builtin.codes
    load_s = time.perf_counter() - t0
    # baseline for load: json.loads of an equal-size structure (same codes and entries)
    blob = json.dumps({k: [v[0], None, None] for k, v in icd.items()})
    t0 = time.perf_counter()
    json.loads(blob)
    json_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import simple_icd_10_cm"], check=True)
    lib_s = time.perf_counter() - t0

    rels: list[Release] = [builtin]
    if HCPCS.exists():
        recs = parse_hcpcs(decode(HCPCS.read_bytes()).splitlines())
        rows = [(r.code, r.billable, r.added, r.terminated, r.is_modifier) for r in recs]
        rels.append(release_from_records("HCPCS", "HCPCS 2020", date(2026, 1, 1), date(2026, 12, 31), rows))
    cpt = {f"{n:05d}": (True, None, None) for n in range(99202, 99500)}
    rels.append(Release("CPT", "CPT 2026", date(2026, 1, 1), date(2026, 12, 31), cpt, {}))
    idx = CodeSetIndex(rels, builtin_icd10cm=False)
    dos = date(2026, 5, 1)

    rnd = random.Random(7)
    icd_leaves = [c for c, e in icd.items() if e[0]]
    hc = [r for r in rels if r.system == "HCPCS"]
    hcpcs_codes = list(hc[0].codes) if hc else []
    mix: list[tuple[str, str]] = []
    for i in range(N):
        k = i % 3
        if k == 0 or not hcpcs_codes:
            c = rnd.choice(icd_leaves)
            mix.append(("ICD-10-CM", c.replace(".", "") if i % 2 else c))  # half undotted
        elif k == 1:
            mix.append(("HCPCS", rnd.choice(hcpcs_codes)))
        else:
            mix.append(("CPT", rnd.choice(list(cpt))))
    tables = {"ICD-10-CM": icd, "HCPCS": hc[0].codes if hc else {}, "CPT": cpt}

    t0 = time.perf_counter()
    hits = 0
    for system, code in mix:
        if tables[system].get(code) is not None:
            hits += 1
    base_s = time.perf_counter() - t0

    check = idx.check
    timings = []
    for _ in range(2):  # first pass cold (every result computed), second warm (dated-free ok results cached)
        t0 = time.perf_counter()
        ok = 0
        for system, code in mix:
            if check(system, code, dos).ok:
                ok += 1
        timings.append(time.perf_counter() - t0)
    check_s, warm_s = timings

    rate, base_rate = N / check_s, N / base_s
    print(f"checks: {N:,} mixed ICD-10-CM/HCPCS/CPT ({ok:,} ok) in {check_s:.3f}s = {rate:,.0f} checks/s")
    print(f"  warm pass: {N / warm_s:,.0f} checks/s")
    print(f"  baseline bare dict lookup loop: {base_rate:,.0f} lookups/s; ratio = {rate / base_rate:.3f}")
    print(f"  target >= 200,000 checks/s: {'PASS' if rate >= 200_000 else 'FAIL'}")
    print(f"built-in ICD-10-CM load ({len(icd):,} codes): {load_s:.3f}s")
    print(f"  baseline json.loads of equal-size structure: {json_s:.3f}s; ratio = {load_s / json_s:.2f}")
    print(
        f"  for reference, 'import simple_icd_10_cm' in a fresh interpreter: {lib_s:.2f}s "
        f"(ratio ours/import = {load_s / lib_s:.3f})"
    )
    print(f"  target < 3 s (and lazy): {'PASS' if load_s < 3 else 'FAIL'}")


if __name__ == "__main__":
    main()
