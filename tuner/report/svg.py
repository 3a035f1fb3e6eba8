"""Charts as inline SVG, written by hand: no library, no script, nothing fetched.

Why hand-written: the page must open from disk with JavaScript off and print to A4, so the charts
must be markup, not drawn at load time; a charting library inlined (Chart.js, Plotly, ECharts: 200 KB
to 3.5 MB minified) would draw nothing without JavaScript, and matplotlib's SVG output is a
dependency, a large file per chart and fixed colours that cannot follow the browser's dark scheme.
Two chart kinds cover the report: :class:`XYChart` (points, lines, error bars, reference lines,
log or linear axes) and :class:`DotChart` (one row per item, a dot per figure: latency percentiles
per trial, throughput with and without faults).

Colours come from CSS classes (``c0`` … ``c7``, the Okabe–Ito palette, with lighter variants in
the dark scheme), never from attributes, so one stylesheet switches them. Colour is never the only
carrier of meaning: each series has its own marker shape, the legend names both, a second run of a
comparison is drawn hollow with dashed lines, and reference lines carry text labels.

Every data point is a ``<g class="pt">`` with ``data-x``/``data-y`` (and ``data-key`` naming the
trial) and a ``<title>`` tooltip: the tests count them against the input, a reader hovers them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH = 720
SHAPES = ("circle", "square", "triangle", "diamond", "down", "cross", "plus", "star")
LEFT, RIGHT, TOP, BOTTOM = 72, 24, 20, 52  # margins of the plot area, SVG units


def _a(text: str) -> str:
    return escape(str(text), quote=True)


def _n(x: float) -> str:
    """A coordinate, short: 123.4."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def marker(shape: str, x: float, y: float, r: float = 4.5) -> str:
    """The SVG path of a marker centred on (x, y)."""
    if shape == "circle":
        return (
            f"M{_n(x - r)} {_n(y)}a{_n(r)} {_n(r)} 0 1 0 {_n(2 * r)} 0a{_n(r)} {_n(r)} 0 1 0 {_n(-2 * r)} 0Z"
        )
    if shape == "square":
        s = r * 0.9
        return f"M{_n(x - s)} {_n(y - s)}h{_n(2 * s)}v{_n(2 * s)}h{_n(-2 * s)}Z"
    if shape in ("triangle", "down"):
        d = 1 if shape == "triangle" else -1
        return f"M{_n(x)} {_n(y - d * r * 1.2)}L{_n(x + r * 1.1)} {_n(y + d * r * 0.8)}L{_n(x - r * 1.1)} {_n(y + d * r * 0.8)}Z"
    if shape == "diamond":
        s = r * 1.25
        return f"M{_n(x)} {_n(y - s)}L{_n(x + s)} {_n(y)}L{_n(x)} {_n(y + s)}L{_n(x - s)} {_n(y)}Z"
    if shape in ("cross", "plus"):
        s = r * (0.9 if shape == "cross" else 1.2)
        if shape == "cross":
            return f"M{_n(x - s)} {_n(y - s)}L{_n(x + s)} {_n(y + s)}M{_n(x - s)} {_n(y + s)}L{_n(x + s)} {_n(y - s)}"
        return f"M{_n(x - s)} {_n(y)}H{_n(x + s)}M{_n(x)} {_n(y - s)}V{_n(y + s)}"
    pts = []  # a five-pointed star
    for i in range(10):
        rad = r * (1.6 if i % 2 == 0 else 0.7)
        ang = -math.pi / 2 + i * math.pi / 5
        pts.append(f"{_n(x + rad * math.cos(ang))} {_n(y + rad * math.sin(ang))}")
    return "M" + "L".join(pts) + "Z"


def swatch(color: int, shape: str, *, hollow: bool = False, dashed: bool = False) -> str:
    """A small inline SVG of a series' marker and line, for a legend written in HTML."""
    line = f'<path class="ln{" dash" if dashed else ""}" d="M1 8H27"/>'
    cls = f"mk{' hollow' if hollow else ''}"
    return (
        f'<svg class="swatch c{color % 8}" width="28" height="16" viewBox="0 0 28 16" aria-hidden="true">'
        f'{line}<path class="{cls}" d="{marker(shape, 14, 8, 4)}"/></svg>'
    )


# -- scales and ticks -------------------------------------------------------------------------------


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 × a power of ten apart)."""
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks between lo and hi (> 0), or powers of ten when that gives too many."""
    out: list[float] = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10**e
            if lo * 0.999 <= v <= hi * 1.001:
                out.append(float(v))
    if len(out) > 9:
        out = [v for v in out if math.log10(v).is_integer()]
    return out or [lo, hi]


def short(x: float) -> str:
    """A tick label: 0, 250, 2.5k, 1.2M, 0.05 (the report's own: tuner's formatters print figures,
    not axis ticks)."""
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:g}M"
    if a >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


@dataclass
class Axis:
    """One axis: its label, its range, linear or log, and how ticks read."""

    label: str
    lo: float = 0.0
    hi: float = 1.0
    log: bool = False
    ticks: list[float] | None = None
    fmt: Callable[[float], str] = short

    def fit(self, values: Sequence[float], *, zero: bool = True, pad: float = 0.06) -> None:
        """Set the range to cover ``values`` (from zero when ``zero``), with a little room."""
        vals = [v for v in values if math.isfinite(v) and (v > 0 or not self.log)]
        if not vals:
            self.lo, self.hi = (1.0, 10.0) if self.log else (0.0, 1.0)
            return
        lo, hi = min(vals), max(vals)
        if self.log:
            self.lo, self.hi = lo / (1 + pad * 3), hi * (1 + pad * 3)
            if self.hi / self.lo < 10:  # a log axis needs a decade to show a tick or two
                mid = math.sqrt(lo * hi)
                self.lo, self.hi = min(self.lo, mid / 3.2), max(self.hi, mid * 3.2)
            return
        lo = min(lo, 0.0) if zero else lo
        span = (hi - lo) or (abs(hi) or 1.0)
        self.lo, self.hi = (lo if zero else lo - span * pad), hi + span * pad

    def tick_values(self) -> list[float]:
        if self.ticks is not None:
            return [t for t in self.ticks if self.lo <= t <= self.hi]
        if self.log:
            return log_ticks(self.lo, self.hi)
        return [t for t in nice_ticks(self.lo, self.hi) if self.lo - 1e-9 <= t <= self.hi + 1e-9]

    def to(self, v: float, a: float, b: float) -> float:
        """The coordinate of ``v`` on a span from ``a`` (at lo) to ``b`` (at hi)."""
        if self.log:
            v = max(v, self.lo)
            f = (math.log(v) - math.log(self.lo)) / ((math.log(self.hi) - math.log(self.lo)) or 1.0)
        else:
            f = (v - self.lo) / ((self.hi - self.lo) or 1.0)
        return a + f * (b - a)


# -- the XY chart -----------------------------------------------------------------------------------


@dataclass
class Point:
    """One data point; ``lo``/``hi`` an interval on y (a 95% CI) drawn as an error bar."""

    x: float
    y: float
    lo: float | None = None
    hi: float | None = None
    tip: str = ""
    key: str = ""
    hollow: bool = False
    shape: str | None = None  # this point's own marker (e.g. a cross for a step that failed)


@dataclass
class Series:
    """Points drawn with one colour, one marker shape and (optionally) a line through them."""

    name: str
    points: list[Point]
    color: int = 0
    shape: str = "circle"
    line: bool = True
    second: bool = False  # the second run of a comparison: hollow markers, dashed line
    step: bool = False  # a staircase (a Pareto front) instead of straight segments
    markers: bool = True  # False: a line only (a fitted curve), no data points


@dataclass
class Ref:
    """A reference line with its label: an objective (``axis='y'``) or a knee (``axis='x'``)."""

    axis: str
    value: float
    label: str
    kind: str = "objective"  # CSS class: objective | knee | fit


@dataclass
class Callout:
    """A marked point with a text label (the recommendation's star)."""

    x: float
    y: float
    label: str
    second: bool = False


@dataclass
class XYChart:
    """Series over two numeric axes, with reference lines and callouts."""

    x: Axis
    y: Axis
    series: list[Series] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    callouts: list[Callout] = field(default_factory=list)
    height: int = 360
    title: str = ""

    def render(self) -> str:
        """The ``<svg>`` element."""
        w, h = WIDTH, self.height
        x0, x1, y0, y1 = LEFT, w - RIGHT, h - BOTTOM, TOP
        body = [
            _grid_and_axes(self.x, self.y, (x0, x1, y0, y1)),
            *(_ref(r, self.x, self.y, (x0, x1, y0, y1)) for r in self.refs),
            *(_series(s, i, self.x, self.y, (x0, x1, y0, y1)) for i, s in enumerate(self.series)),
            *(_callout(c, self.x, self.y, (x0, x1, y0, y1)) for c in self.callouts),
        ]
        return _svg(w, h, self.title, "".join(body))


def _svg(w: int, h: int, title: str, body: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
        f'aria-label="{_a(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>'
    )


def _grid_and_axes(xa: Axis, ya: Axis, box: tuple[float, float, float, float]) -> str:
    x0, x1, y0, y1 = box
    out = ['<g class="grid">']
    for t in ya.tick_values():
        y = ya.to(t, y0, y1)
        out.append(f'<path d="M{_n(x0)} {_n(y)}H{_n(x1)}"/>')
    for t in xa.tick_values():
        x = xa.to(t, x0, x1)
        out.append(f'<path d="M{_n(x)} {_n(y0)}V{_n(y1)}"/>')
    out.append("</g>")
    out.append(f'<path class="axis-line" d="M{_n(x0)} {_n(y1)}V{_n(y0)}H{_n(x1)}"/>')
    out.append('<g class="ticks x">')
    for t in xa.tick_values():
        out.append(
            f'<text x="{_n(xa.to(t, x0, x1))}" y="{_n(y0 + 18)}" text-anchor="middle">{_a(xa.fmt(t))}</text>'
        )
    out.append('</g><g class="ticks y">')
    for t in ya.tick_values():
        out.append(
            f'<text x="{_n(x0 - 8)}" y="{_n(ya.to(t, y0, y1) + 4.5)}" text-anchor="end">{_a(ya.fmt(t))}</text>'
        )
    out.append("</g>")
    out.append(
        f'<text class="axis-label" data-axis="x" x="{_n((x0 + x1) / 2)}" y="{_n(y0 + 42)}" '
        f'text-anchor="middle">{_a(xa.label)}</text>'
    )
    cy = (y0 + y1) / 2
    out.append(
        f'<text class="axis-label" data-axis="y" x="16" y="{_n(cy)}" text-anchor="middle" '
        f'transform="rotate(-90 16 {_n(cy)})">{_a(ya.label)}</text>'
    )
    return "".join(out)


def _ref(r: Ref, xa: Axis, ya: Axis, box: tuple[float, float, float, float]) -> str:
    x0, x1, y0, y1 = box
    if r.axis == "y":
        if not ya.lo <= r.value <= ya.hi:
            return ""
        y = ya.to(r.value, y0, y1)
        return (
            f'<g class="ref {r.kind}"><path d="M{_n(x0)} {_n(y)}H{_n(x1)}"/>'
            f'<text x="{_n(x0 + 6)}" y="{_n(y - 6)}">{_a(r.label)}</text></g>'
        )
    if not xa.lo <= r.value <= xa.hi:
        return ""
    x = xa.to(r.value, x0, x1)
    anchor, dx = ("end", -6) if x > (x0 + x1) / 2 else ("start", 6)
    return (
        f'<g class="ref {r.kind}"><path d="M{_n(x)} {_n(y0)}V{_n(y1)}"/>'
        f'<text x="{_n(x + dx)}" y="{_n(y1 + 14)}" text-anchor="{anchor}">{_a(r.label)}</text></g>'
    )


def _series(s: Series, index: int, xa: Axis, ya: Axis, box: tuple[float, float, float, float]) -> str:
    x0, x1, y0, y1 = box
    cls = f"series c{s.color % 8}{' second' if s.second else ''}"
    out = [f'<g class="{cls}" data-series="{_a(s.name)}">']
    xy = [(xa.to(p.x, x0, x1), ya.to(p.y, y0, y1)) for p in s.points]
    if s.line and len(xy) > 1:
        order = sorted(xy)
        if s.step:  # a front: from each point, across then down to the next
            d = f"M{_n(order[0][0])} {_n(order[0][1])}"
            for (_, py), (qx, qy) in itertools.pairwise(order):
                d += f"H{_n(qx)}V{_n(qy)}" if qy >= py else f"V{_n(qy)}H{_n(qx)}"
        else:
            d = "M" + "L".join(f"{_n(px)} {_n(py)}" for px, py in order)
        out.append(f'<path class="ln{" dash" if s.second else ""}" d="{d}"/>')
    for p, (px, py) in zip(s.points, xy, strict=True):
        if s.markers:
            out.append(_point(p, px, py, p.shape or s.shape, s.second, ya, (y0, y1)))
    out.append("</g>")
    return "".join(out)


def _point(
    p: Point, px: float, py: float, shape: str, second: bool, ya: Axis, span: tuple[float, float]
) -> str:
    err = ""
    if p.lo is not None and p.hi is not None and p.hi > p.lo:
        lo, hi = ya.to(p.lo, *span), ya.to(p.hi, *span)
        err = f'<path class="err" d="M{_n(px)} {_n(lo)}V{_n(hi)}M{_n(px - 3)} {_n(lo)}h6M{_n(px - 3)} {_n(hi)}h6"/>'
    hollow = " hollow" if (p.hollow or second) else ""
    key = f' data-key="{_a(p.key)}"' if p.key else ""
    tip = f"<title>{escape(p.tip)}</title>" if p.tip else ""
    return (
        f'<g class="pt" data-x="{float(p.x)!r}" data-y="{float(p.y)!r}"{key}>{tip}{err}'
        f'<path class="mk{hollow}" d="{marker(shape, px, py)}"/></g>'
    )


def _callout(c: Callout, xa: Axis, ya: Axis, box: tuple[float, float, float, float]) -> str:
    x0, x1, y0, y1 = box
    px, py = xa.to(c.x, x0, x1), ya.to(c.y, y0, y1)
    right = px > x0 + (x1 - x0) * 0.6
    anchor, dx = ("end", -14) if right else ("start", 14)
    dy = 20 if py < y1 + 40 else -12
    if c.second:  # a second run's label goes one line further, so two callouts on one point both read
        dy += 16 if dy > 0 else -16
    hollow = " hollow" if c.second else ""
    return (
        f'<g class="callout"><path class="star{hollow}" d="{marker("star", px, py, 6)}"/>'
        f'<text x="{_n(px + dx)}" y="{_n(py + dy)}" text-anchor="{anchor}">{_a(c.label)}</text></g>'
    )


# -- the dot chart ----------------------------------------------------------------------------------


@dataclass
class Dot:
    """What one key of a :class:`DotChart` is: its name, colour and marker."""

    key: str
    name: str
    color: int
    shape: str


@dataclass
class DotRow:
    """One row: a label and a value per key (with an optional interval per key)."""

    label: str
    values: dict[str, float]
    cis: dict[str, tuple[float, float]] = field(default_factory=dict)
    key: str = ""
    marked: bool = False  # the recommendation: a star before its label
    second: bool = False  # the second run of a comparison: hollow markers


@dataclass
class DotChart:
    """One row per item, one marker per key on a shared x axis, a line from the smallest to the
    largest value of a row (e.g. a trial's p50 … p99)."""

    x: Axis
    dots: list[Dot]
    rows: list[DotRow]
    refs: list[Ref] = field(default_factory=list)
    title: str = ""
    row_height: int = 22
    y_label: str = ""
    _pitch: float = field(default=22.0, init=False, repr=False)

    def render(self) -> str:
        """The ``<svg>`` element."""
        longest = max((len(r.label) for r in self.rows), default=10)
        left = min(340, max(130, int(longest * 7.0) + 44))
        # rows spread out so the rotated y label fits beside a few of them
        self._pitch = max(float(self.row_height), (len(self.y_label) * 8 + 16) / max(1, len(self.rows)))
        h = round(TOP + self._pitch * max(1, len(self.rows)) + BOTTOM)
        box = (left, WIDTH - RIGHT, h - BOTTOM, TOP)
        y_axis = Axis(self.y_label, lo=-0.5, hi=len(self.rows) - 0.5, ticks=[])
        body = [_grid_and_axes(self.x, y_axis, box)]
        body += [_ref(r, self.x, y_axis, box) for r in self.refs]
        body += [self._row(i, r, box) for i, r in enumerate(self.rows)]
        return _svg(WIDTH, h, self.title, "".join(body))

    def _row(self, i: int, row: DotRow, box: tuple[float, float, float, float]) -> str:
        x0, x1, _, _ = box
        y = TOP + self._pitch * (i + 0.5)
        label = ("★ " if row.marked else "") + row.label
        cls = "row marked" if row.marked else "row"
        out = [
            f'<g class="{cls}" data-row="{_a(row.key or row.label)}">',
            f'<text class="row-label" x="{_n(x0 - 8)}" y="{_n(y + 4.5)}" text-anchor="end">{_a(label)}</text>',
        ]
        xs = [self.x.to(v, x0, x1) for v in row.values.values() if math.isfinite(v)]
        if len(xs) > 1:
            out.append(f'<path class="span" d="M{_n(min(xs))} {_n(y)}H{_n(max(xs))}"/>')
        for d in self.dots:
            v = row.values.get(d.key)
            if v is None or not math.isfinite(v):
                continue
            ci = row.cis.get(d.key)
            out.append(self._dot(d, v, ci, y, row, (x0, x1)))
        out.append("</g>")
        return "".join(out)

    def _dot(
        self,
        d: Dot,
        v: float,
        ci: tuple[float, float] | None,
        y: float,
        row: DotRow,
        span: tuple[float, float],
    ) -> str:
        px = self.x.to(v, *span)
        err = ""
        if ci is not None and ci[1] > ci[0]:
            lo, hi = self.x.to(ci[0], *span), self.x.to(ci[1], *span)
            err = f'<path class="err" d="M{_n(lo)} {_n(y)}H{_n(hi)}M{_n(lo)} {_n(y - 3)}v6M{_n(hi)} {_n(y - 3)}v6"/>'
        hollow = " hollow" if row.second else ""
        tip = f"{row.label}: {d.name} {self.x.fmt(v)}"
        return (
            f'<g class="pt c{d.color % 8}" data-x="{float(v)!r}" data-series="{_a(d.key)}" '
            f'data-key="{_a(row.key)}"><title>{escape(tip)}</title>{err}'
            f'<path class="mk{hollow}" d="{marker(d.shape, px, y)}"/></g>'
        )
