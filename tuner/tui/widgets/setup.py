"""The setup form: model, input, sweep ranges, strategy and budget, objective, fault rates.

``SetupForm.read()`` turns the fields into a :class:`FormValues` or raises ``BadInput`` naming the
field; the app builds the ``SweepSpec`` from it. Empty range fields mean "auto" (the search's
default space for this host and model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from tuner.engine.faults import FaultPlan
from tuner.errors import BadInput

FAULT_FIELDS = (
    ("crash", "crash"),
    ("exception", "exception"),
    ("hang", "hang"),
    ("slow", "straggler"),
    ("memory", "memory"),
)


@dataclass
class FormValues:
    """What the form says, parsed."""

    model: str
    input_path: str | None = None
    n_items: int = 8192
    backends: tuple[str, ...] | None = None
    workers: tuple[int, ...] | None = None
    threads: tuple[int, ...] | None = None
    partitions: tuple[int, ...] | None = None
    strategy: str = "adaptive"
    budget_s: float = 150.0
    max_trials: int | None = None
    window_s: float = 1.0
    goal: str = "throughput"
    p99_budget_ms: float | None = None
    memory_budget_mb: float | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)


def parse_ints(name: str, text: str) -> tuple[int, ...] | None:
    """``'1,2,4'`` or ``'1-4'`` (or a mix); empty or 'auto' -> None."""
    text = text.strip()
    if text in ("", "auto"):
        return None
    out: list[int] = []
    try:
        for part in text.replace(" ", ",").split(","):
            if not part:
                continue
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise BadInput(f"{name}: '{text}' is not a list like 1,2,4 or a range like 1-4") from None
    if not out or min(out) < 1:
        raise BadInput(f"{name}: values must be >= 1 (got '{text}')")
    return tuple(sorted(set(out)))


def _num(
    name: str, text: str, *, optional: bool = False, integer: bool = False, positive: bool = True
) -> float | None:
    text = text.strip()
    if text in ("", "none", "auto"):
        if optional:
            return None
        raise BadInput(f"{name}: a number is needed")
    try:
        v = float(int(text)) if integer else float(text)
    except ValueError:
        raise BadInput(f"{name}: '{text}' is not {'an integer' if integer else 'a number'}") from None
    if positive and v <= 0:
        raise BadInput(f"{name}: must be > 0 (got {text})")
    return v


def _row(label: str, widget: Input | Select[str], tip: str = "") -> ComposeResult:
    lab = Label(label, classes="field-label")
    if tip:
        lab.tooltip = tip
        widget.tooltip = tip
    yield lab
    yield widget


class SetupForm(VerticalScroll):
    """Everything a sweep needs, validated as the user types (the model in a thread worker)."""

    def __init__(self, model: str = "builtin:mlp", budget_s: float = 150.0, window_s: float = 1.0) -> None:
        super().__init__(id="setup")
        self._model = model
        self._budget = budget_s
        self._window = window_s

    def compose(self) -> ComposeResult:
        yield Static("Model", classes="section")
        with Horizontal(id="model-row"):
            yield Label("model spec", classes="field-label")
            yield Input(
                self._model,
                id="model",
                compact=True,
                tooltip="builtin:mlp | builtin:pyloop | builtin:sleep | pkg.mod:fn | file.py:fn | model.onnx",
            )
        yield Static("", id="model-status")
        with Grid(classes="form-grid"):
            yield from _row(
                "input",
                Input(placeholder="model's own generator", id="input", compact=True),
                "a .npy, .jsonl or .csv file; empty = the model's seeded generator",
            )
            yield from _row("items", Input("8192", id="items", compact=True, type="integer"))
        yield Static("Sweep", classes="section")
        with Grid(classes="form-grid"):
            yield from _row(
                "backends", Input(placeholder="auto", id="backends", compact=True), "process,thread,inline"
            )
            yield from _row(
                "workers", Input(placeholder="auto", id="workers", compact=True), "e.g. 1-4 or 1,2,4"
            )
            yield from _row(
                "threads/worker",
                Input(placeholder="auto", id="threads", compact=True),
                "BLAS threads per worker",
            )
            yield from _row(
                "partitions", Input(placeholder="auto", id="partitions", compact=True), "e.g. 16,64,256"
            )
            yield from _row(
                "strategy",
                Select(
                    [("adaptive", "adaptive"), ("grid", "grid")],
                    value="adaptive",
                    allow_blank=False,
                    id="strategy",
                    compact=True,
                ),
            )
            yield from _row("budget s", Input(f"{self._budget:g}", id="budget", compact=True))
            yield from _row("max trials", Input(placeholder="no limit", id="max-trials", compact=True))
            yield from _row(
                "window s",
                Input(f"{self._window:g}", id="window", compact=True),
                "measurement window; a trial is stable when 3 windows agree within 5%",
            )
        yield Static("Objective", classes="section")
        with Grid(classes="form-grid"):
            yield from _row(
                "goal",
                Select(
                    [("most items/s", "throughput"), ("lowest p99", "p99")],
                    value="throughput",
                    allow_blank=False,
                    id="goal",
                    compact=True,
                ),
            )
            yield from _row("p99 budget ms", Input(placeholder="none", id="p99", compact=True))
            yield from _row("memory MB", Input(placeholder="none", id="memory", compact=True))
            yield Label("")
            yield Label("")
        yield Static(
            "Faults  (rates 0–1 per partition; change them mid-sweep with f, applied from the next trial)",
            classes="section",
        )
        with Grid(classes="form-grid", id="fault-grid"):
            for key, label in FAULT_FIELDS:
                yield from _row(label, Input("0", id=f"fault-{key}", compact=True))
            yield Button("Apply faults", id="apply-faults", compact=True)
        with Horizontal(id="setup-buttons"):
            yield Button("Start  s", id="start", variant="success", compact=True)
            yield Button("Stop  x", id="stop", variant="error", compact=True, disabled=True)
            yield Static("", id="form-error")

    # -- reading ---------------------------------------------------------------------------------
    def _text(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value

    def read_faults(self) -> FaultPlan:
        """The fault plan the five rate fields describe (BadInput naming a bad field)."""
        rates: dict[str, float] = {}
        for key, label in FAULT_FIELDS:
            v = _num(f"{label} rate", self._text(f"fault-{key}") or "0", positive=False)
            assert v is not None
            if not 0 <= v <= 1:
                raise BadInput(f"{label} rate: must be between 0 and 1 (got {v:g})")
            rates[key] = v
        return FaultPlan().with_rates(**rates)

    def set_faults(self, plan: FaultPlan) -> None:
        for key, _ in FAULT_FIELDS:
            self.query_one(f"#fault-{key}", Input).value = f"{getattr(plan, key):g}"

    def read(self) -> FormValues:
        """All fields parsed; BadInput names the first bad one."""
        backends_text = self._text("backends").strip()
        backends = None
        if backends_text not in ("", "auto"):
            backends = tuple(b.strip() for b in backends_text.split(",") if b.strip())
            bad = [b for b in backends if b not in ("process", "thread", "inline")]
            if bad:
                raise BadInput(f"backends: unknown '{bad[0]}' (choose from process, thread, inline)")
        max_trials = _num("max trials", self._text("max-trials"), optional=True, integer=True)
        strategy = self.query_one("#strategy", Select).value
        goal = self.query_one("#goal", Select).value
        return FormValues(
            model=self._text("model").strip(),
            input_path=self._text("input").strip() or None,
            n_items=int(_num("items", self._text("items"), integer=True) or 8192),
            backends=backends,
            workers=parse_ints("workers", self._text("workers")),
            threads=parse_ints("threads/worker", self._text("threads")),
            partitions=parse_ints("partitions", self._text("partitions")),
            strategy=str(strategy),
            budget_s=float(_num("budget", self._text("budget")) or 150.0),
            max_trials=int(max_trials) if max_trials else None,
            window_s=float(_num("window", self._text("window")) or 1.0),
            goal=str(goal),
            p99_budget_ms=_num("p99 budget", self._text("p99"), optional=True),
            memory_budget_mb=_num("memory budget", self._text("memory"), optional=True),
            faults=self.read_faults(),
        )
