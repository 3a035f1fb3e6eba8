"""Screenshots of the report, taken by headless Chromium: ``screenshots/report*.png``.

Run: ``.venv/bin/python tests/report/screenshots.py`` (needs Debian's chromium and Playwright, as
the browser tests do). From the recorded sweeps in ``tests/report/fixtures``: the online sweep's
report in the light and the dark scheme, the faults sweep's report, and a comparison of the plain
sweep with the faults sweep; each the whole page at 1000 px wide.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))

from report.browser import Visit, observe, skip_reason  # noqa: E402


def main() -> int:
    why = skip_reason()
    if why is not None:
        print(f"no screenshots: {why}", file=sys.stderr)
        return 2
    from tuner.bench.session import load_results
    from tuner.profile import load_profile
    from tuner.report import render_comparison, render_report

    fx = HERE / "fixtures"

    def both(name: str) -> tuple[Any, list[Any]]:
        return load_profile(fx / f"{name}.yaml"), load_results(fx / f"{name}.jsonl")

    (online, online_r), (plain, plain_r), (faults, faults_r) = both("online"), both("plain"), both("faults")
    pages = {
        "report": render_report(online, online_r),
        "report-faults": render_report(faults, faults_r),
        "report-compare": render_comparison(plain, faults, plain_r, faults_r),
    }
    out = REPO / "screenshots"
    with tempfile.TemporaryDirectory() as tmp:
        visits = []
        for name, text in pages.items():
            path = Path(tmp) / f"{name}.html"
            path.write_text(text, encoding="utf-8")
            visits.append(Visit(path, width=1000, screenshot=out / f"{name}.png"))
        visits.append(
            Visit(Path(tmp) / "report.html", width=1000, scheme="dark", screenshot=out / "report-dark.png")
        )
        for v, seen in zip(visits, observe(visits), strict=True):
            problems = seen.errors + [t for kind, t in seen.console if kind == "error"]
            print(f"{v.screenshot}: {'; '.join(problems) or 'no console errors'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
