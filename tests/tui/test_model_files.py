"""The TUI's Setup screen takes a model file: it shows the format, the framework and its version,
the input signature and the adapter's dimensions; a pickle is refused until 'allow pickle' is yes."""

from __future__ import annotations

from pathlib import Path

import pytest
from models.conftest import models, need, sklearn_models  # noqa: F401 - fixtures used here
from textual.widgets import Button, Input, Select, Static

from tui.conftest import make_app, wait_for
from tuner.tui.app import _validate_model

SIZE = (120, 40)


@pytest.mark.timeout(60)
async def test_setup_shows_a_model_file(sklearn_models: dict[str, Path]) -> None:  # noqa: F811
    ort = need("onnxruntime", "onnx")
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed (pip install 'tuner[onnx]')")
    app = make_app(validator=_validate_model)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()  # the first check (the default model) is over
        app.query_one("#model", Input).value = str(sklearn_models["onnx"])

        def status() -> str:
            return str(app.query_one("#model-status", Static).render())

        await wait_for(pilot, lambda: "onnx" in status() or "✗" in status(), what="the check")
        text = status()
        assert app.model_error is None, app.model_error
        assert f"✓ onnx · onnxruntime {ort.__version__} · inputs X: float32[8]" in text
        assert "outputs label, probabilities" in text
        assert app.query_one("#dims", Input).placeholder == "none; offers execution_mode, spinning"
        assert not app.query_one("#start", Button).disabled


@pytest.mark.timeout(60)
async def test_setup_pickle_needs_consent(sklearn_models: dict[str, Path]) -> None:  # noqa: F811
    app = make_app(validator=_validate_model)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        app.query_one("#model", Input).value = str(sklearn_models["joblib"])
        await wait_for(pilot, lambda: app.model_error is not None, what="the refusal")
        assert "a pickle runs code when it is loaded" in app.model_error
        assert app.query_one("#start", Button).disabled
        app.query_one("#allow-pickle", Select).value = "yes"
        await wait_for(
            pilot,
            lambda: app.model_error is None and getattr(app.model_info, "framework", None),
            what="the check",
        )
        assert "scikit-learn" in str(app.query_one("#model-status", Static).render())
        assert not app.query_one("#start", Button).disabled
