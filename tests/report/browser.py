"""Headless Chromium for the report's tests, driven by Playwright's Python API.

The browser is Debian's ``chromium`` package (``apt-get install chromium``; ``make test`` installs
it when run as root), never one Playwright downloads: ``executable_path`` points at it. Override the
path with ``TUNER_CHROMIUM``. :func:`skip_reason` says in one line why the browser tests cannot run.

:func:`observe` opens pages, collects what a reader would see as plain data (console messages,
charts with their axis labels and points, the recommendation's figures, table rows, render time),
closes the browser and returns the data: a test module calls it once in a module-scoped fixture, so
no browser process outlives the fixture (the suite's ``no_leaks`` check runs after every test).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The network is closed here and in CI: without these Chromium keeps trying to reach Google.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LAUNCH_TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    """Debian's chromium (or ``TUNER_CHROMIUM``), None when there is none."""
    env = os.environ.get("TUNER_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, in one line; None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "no chromium here (apt-get install chromium; make test does it as root)"
    return None


# Everything a reader would see, read in the page (works with the page's JavaScript off too:
# Playwright evaluates in its own world).
_READ = """() => {
  const charts = [...document.querySelectorAll("figure[data-chart]")].map(f => {
    const svg = f.querySelector("svg.chart");
    const vb = svg.viewBox.baseVal, box = svg.getBoundingClientRect();
    const cut = [...svg.querySelectorAll("text")].filter(t => {
      const b = t.getBoundingClientRect();  // on screen: transforms (a rotated axis label) applied
      return b.width > 0 && (b.left < box.left - 0.5 || b.top < box.top - 0.5 || b.right > box.right + 0.5 || b.bottom > box.bottom + 0.5);
    }).map(t => t.textContent);
    return {
      id: f.dataset.chart,
      axes: Object.fromEntries([...svg.querySelectorAll(".axis-label")].map(t => [t.dataset.axis, t.textContent])),
      points: [...svg.querySelectorAll("g.pt")].map(g => ({x: +g.dataset.x, y: g.dataset.y === undefined ? null : +g.dataset.y,
        key: g.dataset.key || "", series: g.dataset.series || (g.closest("g.series") || {dataset: {}}).dataset.series || "",
        visible: g.getBoundingClientRect().width > 0})),
      legend: [...f.querySelectorAll("ul.legend li")].map(li => li.textContent.trim()),
      caption: (f.querySelector("figcaption") || {}).textContent || "",
      width: box.width, height: box.height, cut,
      markFill: (() => { const m = svg.querySelector("g.pt path.mk:not(.hollow)"); return m ? getComputedStyle(m).fill : null; })(),
    };
  });
  const fields = Object.fromEntries([...document.querySelectorAll("[data-field]")].map(x => [x.dataset.field, {value: x.dataset.value, text: x.textContent}]));
  const rows = sel => [...document.querySelectorAll(sel)].map(r => ({...r.dataset, cells: [...r.cells].map(c => c.textContent.trim())}));
  const nav = performance.getEntriesByType("navigation")[0];
  return {
    title: document.title, charts, fields,
    trials: rows("table.trials tbody tr"), changes: rows("table.changes tbody tr"), pairs: rows("table.pairs tbody tr"),
    hosts: (document.querySelector("[data-hosts]") || {dataset: {}}).dataset.hosts || null,
    sections: [...document.querySelectorAll("section[id]")].map(s => s.id),
    sortButtons: document.querySelectorAll("table.sortable th button").length,
    bodyColor: getComputedStyle(document.body).color, bodyBackground: getComputedStyle(document.body).backgroundColor,
    minFontPx: Math.min(...[...document.querySelectorAll("p, li, td, th, svg text")].filter(e => e.getClientRects().length)
      .map(e => parseFloat(getComputedStyle(e).fontSize) * (e instanceof SVGElement ? e.ownerSVGElement.getBoundingClientRect().width / e.ownerSVGElement.viewBox.baseVal.width : 1))),
    scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
    renderMs: nav ? nav.loadEventEnd - nav.startTime : null,
    text: document.body.innerText,
  };
}"""


@dataclass
class Visit:
    """One page to open and how."""

    path: Path
    javascript: bool = True
    scheme: str = "light"  # prefers-color-scheme
    width: int = 1100
    screenshot: Path | None = None
    pdf: Path | None = None  # print it to A4 as well
    click_sort: str | None = None  # click this column header of the trials table, then read again


@dataclass
class Seen:
    """What the browser showed for one :class:`Visit`."""

    page: dict[str, Any]
    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text)
    errors: list[str] = field(default_factory=list)  # uncaught exceptions
    requests: list[str] = field(default_factory=list)  # anything fetched besides the file itself
    after_sort: dict[str, Any] | None = None
    print_page: dict[str, Any] | None = None  # read with print media at A4's printable width


def observe(visits: list[Visit]) -> list[Seen]:
    """Open every visit in one headless Chromium, read each page, close the browser."""
    from playwright.sync_api import sync_playwright

    out: list[Seen] = []
    with tempfile.TemporaryDirectory(prefix="tuner-chromium-") as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), args=FLAGS, headless=True, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            for v in visits:
                out.append(_visit(browser, v))
        finally:
            browser.close()
    return out


def _visit(context: Any, v: Visit) -> Seen:
    page = context.new_page()
    seen = Seen(page={})
    page.on("console", lambda m: seen.console.append((m.type, m.text)))
    page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
    url = v.path.resolve().as_uri()
    page.on("request", lambda r: seen.requests.append(r.url) if r.url != url else None)
    try:
        page.set_viewport_size({"width": v.width, "height": 900})
        page.emulate_media(color_scheme=v.scheme)  # type: ignore[arg-type]
        if not v.javascript:
            # Script execution off for this page (the CDP switch behind java_script_enabled=False).
            page.context.new_cdp_session(page).send("Emulation.setScriptExecutionDisabled", {"value": True})
        page.goto(url, wait_until="load")
        seen.page = page.evaluate(_READ)
        if v.screenshot is not None:
            page.screenshot(path=str(v.screenshot), full_page=True)
        if v.click_sort:
            page.get_by_role("button", name=v.click_sort, exact=True).click()
            seen.after_sort = page.evaluate(_READ)
        if v.pdf is not None:
            page.emulate_media(media="print", color_scheme=v.scheme)  # type: ignore[arg-type]
            page.set_viewport_size(
                {"width": 703, "height": 1000}
            )  # A4 less 12 mm margins: 186 mm at 96 px/inch
            seen.print_page = page.evaluate(_READ)
            page.pdf(path=str(v.pdf), format="A4", print_background=True)
    finally:
        page.close()
    return seen
