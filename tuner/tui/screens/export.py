"""Export: build the session's profile, show its YAML, ask where, write it atomically, say where it went."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from tuner.errors import TunerError
from tuner.profile import dump_profile_text, save_profile
from tuner.tui.format import profile_name
from tuner.tui.session import online_section

if TYPE_CHECKING:
    from tuner.tui.session import Session


class ExportScreen(ModalScreen[Path | None]):
    """Dismisses with the path written, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, profile: Any, default_path: Path) -> None:
        super().__init__()
        self.profile = profile
        self.default_path = default_path

    @classmethod
    def of(cls, session: Session, folder: Path) -> ExportScreen | None:
        """The dialog for the session's recommendation, suggesting ``folder/<name>.yaml``: None when
        there is nothing to export yet; TunerError (one line) when the profile cannot be built."""
        rec = session.recommendation
        if rec is None or getattr(rec, "best", None) is None:
            return None
        name = profile_name(session.model_spec)
        online = online_section(session.online_outcome, session.results)
        host, info = session.measured_host, session.measured_info
        profile = session.driver.build_profile(rec, name, session.spec, host, info, online=online)
        return cls(profile, folder / f"{name}.yaml")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="export-dialog"):
            yield Static(f"[b]Export profile[/b] · {self.profile.name}", classes="dialog-title")
            yield TextArea(
                dump_profile_text(self.profile),
                language=None,
                read_only=True,
                id="export-yaml",
                show_line_numbers=False,
            )
            with Horizontal(classes="dialog-row"):
                yield Label("write to", classes="field-label")
                yield Input(str(self.default_path), id="export-path", compact=True)
            yield Static("", id="export-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Write  enter", id="export-write", variant="success", compact=True)
                yield Button("Cancel  esc", id="export-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(Input.Submitted, "#export-path")
    @on(Button.Pressed, "#export-write")
    def write(self) -> None:
        text = self.query_one("#export-path", Input).value.strip()
        if not text:
            self.query_one("#export-error", Static).update("a path is needed")
            return
        try:
            path = save_profile(self.profile, Path(text))
        except (TunerError, OSError) as e:
            # One line, beside the field: the dialog stays open to fix the path.
            self.query_one("#export-error", Static).update(f"cannot write {text}: {e}")
            return
        self.dismiss(path)

    @on(Button.Pressed, "#export-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
