"""tuner: measure how to deploy a model on this machine, then apply it.

The heavy parts (engine, benchmark, TUI) live in subpackages and are imported on demand,
so ``import tuner`` and ``import tuner.runtime`` stay light.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
