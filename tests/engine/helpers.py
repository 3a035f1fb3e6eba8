from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def spec(name: str) -> str:
    """A file spec for a model in engmodels.py."""
    return f"{HERE / 'engmodels.py'}:{name}"
