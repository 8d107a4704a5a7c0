"""Screenshots of every web page, per role, at 1280 px (laptop) and 768 px (tablet).

    .venv/bin/python scripts/screenshots.py --out screenshots

The pages and the sample data are in tests/browser/screenshots.py (also runnable as
`.venv/bin/python -m tests.browser.screenshots OUTDIR`); add a role's pages to its PAGES.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.screenshots import main as take  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", help="folder for <role>/<page>-<width>.png")
    raise SystemExit(take([parser.parse_args().out]))


if __name__ == "__main__":
    main()
