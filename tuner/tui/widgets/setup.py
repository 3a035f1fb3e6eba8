"""The setup form: model, input, sweep ranges, strategy and budget, objective, fault rates.

``SetupForm.read()`` turns the fields into a :class:`FormValues` or raises ``BadInput`` naming the
field, with the same rules and words as the CLI's options (:mod:`tuner.options`: finite
numbers in a stated range); the driver builds the sweep's request from it. Empty range fields mean
"auto" (the search's default space for this host and model).

The form checks the model as it is typed (debounced, in a thread worker: loading a model can take
seconds) and says how it went under the field; Start stays disabled while the spec is bad or a
sweep runs (the app sets ``running``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import var
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Select, Static
from textual.worker import get_current_worker

from tuner.backends import BACKENDS
from tuner.engine.faults import FaultPlan
from tuner.errors import BadInput, TunerError
from tuner.options import MIN_WINDOW_S, choice_list, finite, int_list, integer
from tuner.tui.messages import ModelChecked

T = TypeVar("T")
VALIDATE_DEBOUNCE_S = 0.4  # a pause in typing this long checks the model

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
    # model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl)
    dims: tuple[str, ...] = ()  # the adapter's own dimensions to sweep
    allow_pickle: bool = False
    method: str | None = None  # scikit-learn
    input_shape: tuple[int, ...] | None = None  # a file that records none (TorchScript)

    def model_options(self) -> dict[str, Any]:
        """What the form says about a model file, as SweepSpec.model_options takes it."""
        return {
            k: v
            for k, v in (
                ("allow_pickle", True if self.allow_pickle else None),
                ("method", self.method),
                ("input_shape", self.input_shape),
            )
            if v is not None
        }


def _unless_auto(text: str, parse: Callable[[str], T]) -> T | None:
    """Empty, 'auto' or 'none' leave a field to its default; anything else must parse."""
    return None if text.strip().lower() in ("", "auto", "none") else parse(text)


def fault_rate(label: str, text: str) -> float:
    """One fault rate field: empty is 0; otherwise a finite number from 0 to 1."""
    return finite(f"{label} rate", text or "0", ge=0, le=1, what="a rate")


def _row(label: str, widget: Input | Select[str], tip: str = "") -> ComposeResult:
    lab = Label(label, classes="field-label")
    if tip:
        lab.tooltip = tip
        widget.tooltip = tip
    yield lab
    yield widget


class SetupForm(VerticalScroll):
    """Everything a sweep needs, validated as the user types (the model in a thread worker)."""

    @dataclass
    class FaultsApplied(Message):
        """The user applied the fault fields' rates (the Apply faults button)."""

        plan: FaultPlan

    running: var[bool] = var(False)
    """A sweep is running (the app says so): Start waits for it, Stop stops it."""

    def __init__(
        self,
        model: str = "builtin:mlp",
        budget_s: float = 150.0,
        window_s: float = 1.0,
        validator: Callable[[Any], Any] | None = None,
    ) -> None:
        """``validator`` loads a model spec and describes it (None: every spec is taken as good)."""
        super().__init__(id="setup")
        self._model = model
        self._budget = budget_s
        self._window = window_s
        self._validator = validator
        self._debounce: Timer | None = None
        self.model_spec = model  # the spec being checked, or checked last
        self.model_error: str | None = None  # what is wrong with it (None: nothing, or not checked yet)
        self.model_info: Any = None  # what the check found (tuner.models.ModelInfo)

    def compose(self) -> ComposeResult:
        yield Static("Model", classes="section")
        with Horizontal(id="model-row"):
            yield Label("model spec", classes="field-label")
            yield Input(
                self._model,
                id="model",
                compact=True,
                tooltip="builtin:mlp | builtin:pyloop | builtin:sleep | pkg.mod:fn | file.py:fn | "
                "a model file: model.onnx, model.pt, model.pt2, model.skops, model.joblib",
            )
        yield Static("", id="model-status")
        with Grid(classes="form-grid"):
            yield from _row(
                "input",
                Input(placeholder="model's own generator", id="input", compact=True),
                "a .npy, .jsonl or .csv file; empty = the model's seeded generator",
            )
            yield from _row("items", Input("8192", id="items", compact=True, type="integer"))
            yield from _row(
                "model dims",
                Input(placeholder="none", id="dims", compact=True),
                "a model file's own sweep dimensions, e.g. execution_mode,spinning (ONNX Runtime); "
                "empty = its defaults",
            )
            yield from _row(
                "allow pickle",
                Select([("no", "no"), ("yes", "yes")], value="no", allow_blank=False, id="allow-pickle", compact=True),
                "load a .joblib/.pkl (or a skops file with types it does not trust): runs the file's code",
            )
            yield from _row(
                "method",
                Select(
                    [(m, m) for m in ("predict", "predict_proba", "transform", "decision_function")],
                    value="predict",
                    allow_blank=False,
                    id="method",
                    compact=True,
                ),
                "scikit-learn: the estimator method to run",
            )
            yield from _row(
                "input shape",
                Input(placeholder="from the file", id="input-shape", compact=True),
                "one item's shape when the file records none (TorchScript), e.g. 3x224x224",
            )
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

    def on_mount(self) -> None:
        self.check_model(self.model_spec)

    # -- the buttons ---------------------------------------------------------------------------------
    def watch_running(self) -> None:
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.query_one("#start", Button).disabled = self.model_error is not None or self.running
        self.query_one("#stop", Button).disabled = not self.running

    @on(Button.Pressed, "#apply-faults")
    def _apply_faults(self, event: Button.Pressed) -> None:
        event.stop()
        try:
            plan = self.read_faults()
        except BadInput as e:
            self.show_error(str(e))
            return
        self.post_message(self.FaultsApplied(plan))

    def show_error(self, text: str | None) -> None:
        """One line beside the buttons about the field that is wrong (None clears it)."""
        self.query_one("#form-error", Static).update(Text(text, style="bold red") if text else "")

    # -- checking the model as it is typed -------------------------------------------------------------
    @on(Input.Changed, "#model")
    def _model_changed(self, event: Input.Changed) -> None:
        self._cancel_debounce()
        spec = event.value.strip()
        if spec == self.model_spec and self.model_error is None and self.model_info is not None:
            return
        self._recheck(spec)

    @on(Select.Changed, "#allow-pickle")
    @on(Select.Changed, "#method")
    @on(Input.Changed, "#input-shape")
    def _model_options_changed(self) -> None:
        # A model file's options change what loads (a pickle with consent, another method): check again.
        self._cancel_debounce()
        from tuner.models.formats import format_of

        if format_of(self.model_spec):
            self._recheck(self.model_spec)

    def _cancel_debounce(self) -> None:
        if self._debounce is not None:
            self._debounce.stop()

    def _recheck(self, spec: str) -> None:
        self.model_spec = spec
        self.query_one("#model-status", Static).update(Text("checking…", style="dim"))
        # Debounced: loading a model on every keystroke would be wasteful.
        self._debounce = self.set_timer(VALIDATE_DEBOUNCE_S, lambda: self.check_model(spec))

    def check_model(self, spec: str) -> None:
        """Check ``spec`` with the form's model options, in a thread worker; ModelChecked says how."""
        if self._validator is None:
            self.post_message(ModelChecked(spec, None, None))
            return
        try:
            options = self.model_options()
        except TunerError as e:
            self.post_message(ModelChecked(spec, str(e)))
            return
        self._validate(spec, options)

    @work(thread=True, exclusive=True, exit_on_error=False, group="validate")
    def _validate(self, spec: str, options: dict[str, Any]) -> None:
        assert self._validator is not None
        try:
            if options:
                from tuner.models import parse_spec

                info = self._validator(parse_spec(spec).with_options(**options))
            else:
                info = self._validator(spec)
        except TunerError as e:
            self.post_message(ModelChecked(spec, str(e)))
            return
        except Exception as e:  # a model that breaks in an unexpected way is still one line
            self.post_message(ModelChecked(spec, f"{spec}: {type(e).__name__}: {e}"))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(ModelChecked(spec, None, info))

    def on_model_checked(self, msg: ModelChecked) -> None:
        msg.stop()
        if msg.spec != self.model_spec:
            return  # an older check finished after the user typed more
        self.model_error, self.model_info = msg.error, msg.info
        status = self.query_one("#model-status", Static)
        if msg.error:
            status.update(Text("✗ " + msg.error, style="bold red"))
        elif msg.info is not None:
            text, placeholder = model_words(msg.info)
            status.update(Text(text, style="green"))
            self.query_one("#dims", Input).placeholder = placeholder
        else:
            status.update(Text("✓", style="green"))
        self._sync_buttons()

    # -- reading ---------------------------------------------------------------------------------
    def _text(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value

    def read_faults(self) -> FaultPlan:
        """The fault plan the five rate fields describe (BadInput naming a bad field)."""
        rates: dict[str, float] = {}
        for key, label in FAULT_FIELDS:
            rates[key] = fault_rate(label, self._text(f"fault-{key}"))
        return FaultPlan().with_rates(**rates)

    def set_faults(self, plan: FaultPlan) -> None:
        for key, _ in FAULT_FIELDS:
            self.query_one(f"#fault-{key}", Input).value = f"{getattr(plan, key):g}"

    def read(self) -> FormValues:
        """All fields parsed with the CLI's own rules (tuner.options); BadInput names the first bad one."""
        t = self._text
        strategy = self.query_one("#strategy", Select).value
        goal = self.query_one("#goal", Select).value
        return FormValues(
            model=t("model").strip(),
            input_path=t("input").strip() or None,
            n_items=integer("items", t("items"), ge=1),
            backends=_unless_auto(t("backends"), lambda x: choice_list("backends", x, BACKENDS)),
            workers=_unless_auto(t("workers"), lambda x: int_list("workers", x)),
            threads=_unless_auto(t("threads"), lambda x: int_list("threads/worker", x)),
            partitions=_unless_auto(t("partitions"), lambda x: int_list("partitions", x)),
            strategy=str(strategy),
            budget_s=finite("budget", t("budget"), gt=0, what="seconds"),
            max_trials=_unless_auto(t("max-trials"), lambda x: integer("max trials", x, ge=1)),
            window_s=finite("window", t("window"), ge=MIN_WINDOW_S, what="seconds"),
            goal=str(goal),
            p99_budget_ms=_unless_auto(
                t("p99"), lambda x: finite("p99 budget", x, gt=0, what="milliseconds")
            ),
            memory_budget_mb=_unless_auto(
                t("memory"), lambda x: finite("memory budget", x, gt=0, what="megabytes")
            ),
            faults=self.read_faults(),
            dims=tuple(d.strip() for d in t("dims").split(",") if d.strip()),
            allow_pickle=self.query_one("#allow-pickle", Select).value == "yes",
            method=_method(t("model"), str(self.query_one("#method", Select).value)),
            input_shape=_unless_auto(t("input-shape"), lambda x: _shape("input shape", x)),
        )

    def model_options(self) -> dict[str, Any]:
        """The model-file options as they stand (for the model check), without parsing the rest."""
        shape = self._text("input-shape").strip()
        opts: dict[str, Any] = {}
        if self.query_one("#allow-pickle", Select).value == "yes":
            opts["allow_pickle"] = True
        method = _method(self._text("model"), str(self.query_one("#method", Select).value))
        if method is not None:
            opts["method"] = method
        if shape and shape.lower() not in ("auto", "none"):
            opts["input_shape"] = _shape("input shape", shape)
        return opts


def model_words(info: Any) -> tuple[str, str]:
    """What a good model check says under the field, and the placeholder of the dims field."""
    if getattr(info, "framework", None):
        # A model file: its format, framework and version, its input signature, its notes.
        offered = list(getattr(info, "dimensions", None) or {})
        text = (
            f"✓ {info.format} · {info.framework} {info.framework_version} · inputs {info.inputs or '?'}"
            + (f" · outputs {', '.join(info.outputs)}" if info.outputs else "")
            + f" · loads in {info.load_s * 1000:.0f} ms"
        )
        for note in info.notes:
            text += f"\n  {note}"
        return text, f"none; offers {', '.join(offered)}" if offered else "none"
    text = f"✓ {info.description} · {info.item} items · {info.bound}-bound · loads in {info.load_s * 1000:.0f} ms"
    return text, "none"


def _method(model: str, method: str) -> str | None:
    """The scikit-learn method, for scikit-learn files only (None elsewhere, and for the default)."""
    from tuner.models.formats import format_of

    return method if format_of(model.strip()) == "scikit" and method != "predict" else None


def _shape(name: str, text: str) -> tuple[int, ...]:
    from tuner.options import shape as parse_shape

    return parse_shape(name, text)
