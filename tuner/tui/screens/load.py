"""Load an existing profile to compare this sweep against it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tuner.errors import TunerError
from tuner.profile import load_profile


class LoadProfileScreen(ModalScreen[tuple[Path, Any] | None]):
    """Asks for a path; dismisses with ``(path, profile)`` once it loads, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: str = "profiles/") -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="load-dialog"):
            yield Static("[b]Load a profile to compare against[/b]", classes="dialog-title")
            with Horizontal(classes="dialog-row"):
                yield Label("profile", classes="field-label")
                yield Input(self.default, id="load-path", compact=True)
            yield Static("", id="load-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Load  enter", id="load-ok", variant="primary", compact=True)
                yield Button("Cancel  esc", id="load-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#load-path", Input).focus()

    @on(Input.Submitted, "#load-path")
    @on(Button.Pressed, "#load-ok")
    def load(self) -> None:
        path = Path(self.query_one("#load-path", Input).value.strip())
        try:
            profile = load_profile(path)
        except TunerError as e:
            self.query_one("#load-error", Static).update(str(e))
            return
        self.dismiss((path, profile))

    @on(Button.Pressed, "#load-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
