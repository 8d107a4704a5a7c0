"""The demo's dates of service fall inside the built-in code sets, so its codes are really checked."""

from __future__ import annotations

from datetime import date, timedelta

from audit.codesets.releases import CodeSetIndex
from audit.demo import VISITS, last_demo_day


def test_the_demo_ends_on_the_last_built_in_day_when_today_is_later() -> None:
    assert last_demo_day(date(2026, 11, 29)) == date(2026, 9, 30)
    assert last_demo_day(date(2026, 5, 1)) == date(2026, 5, 1)


def test_every_demo_diagnosis_is_valid_on_its_date_of_service() -> None:
    index = CodeSetIndex()
    for today in (date(2026, 11, 29), date(2026, 2, 10), date.today()):
        last = last_demo_day(today)
        for _, _, days_before, lines in VISITS:
            dos = last - timedelta(days=days_before)
            for system, code, _, _ in lines:
                if system == "ICD-10-CM":
                    result = index.check(system, code, dos)
                    assert result.status == "valid", (code, dos, result.message)
