"""Fault rates, changeable at any moment; a running sweep applies them from its next trial."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tuner.engine.faults import FaultPlan
from tuner.errors import BadInput
from tuner.tui.widgets.setup import FAULT_FIELDS, fault_rate


class FaultsScreen(ModalScreen[FaultPlan | None]):
    """Five rates (0–1 per partition attempt); dismisses with the new plan or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, plan: FaultPlan, running: bool) -> None:
        super().__init__()
        self.plan = plan
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="faults-dialog"):
            yield Static("[b]Inject faults[/b]", classes="dialog-title")
            when = "from the next trial of this sweep" if self.running else "to the next sweep"
            yield Static(f"Rates per partition attempt, 0–1; applied {when}.", classes="dim")
            with Grid(id="faults-grid"):
                for key, label in FAULT_FIELDS:
                    yield Label(label, classes="field-label")
                    yield Input(f"{getattr(self.plan, key):g}", id=f"rate-{key}", compact=True)
            yield Static("", id="faults-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply  enter", id="faults-ok", variant="warning", compact=True)
                yield Button("Cancel  esc", id="faults-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#rate-crash", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#faults-ok")
    def apply(self) -> None:
        rates: dict[str, float] = {}
        try:
            for key, label in FAULT_FIELDS:
                rates[key] = fault_rate(label, self.query_one(f"#rate-{key}", Input).value.strip())
        except BadInput as e:
            self.query_one("#faults-error", Static).update(str(e))
            return
        self.dismiss(self.plan.with_rates(**rates))

    @on(Button.Pressed, "#faults-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
