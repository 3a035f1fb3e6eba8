"""Model files tuned directly: one adapter module per format, chosen by the file's suffix.

==============  ==============  ===================================  ================
suffix          adapter         framework (load)                     extra
==============  ==============  ===================================  ================
``.onnx``       ``onnxrt``      onnxruntime ``InferenceSession``     ``tuner[onnx]``
``.pt``         ``pytorch``     ``torch.jit.load`` (TorchScript)     ``tuner[torch]``
``.pt2``        ``pytorch``     ``torch.export.load``                ``tuner[torch]``
``.skops``      ``scikit``      ``skops.io.load`` (no code runs)     ``tuner[sklearn]``
``.joblib``     ``scikit``      ``joblib.load`` (a pickle: consent)  ``tuner[sklearn]``
``.pkl``        ``scikit``      ``pickle`` (consent)                 ``tuner[sklearn]``
==============  ==============  ===================================  ================

Every adapter is one module with the same few names (see :mod:`tuner.models.formats.base`): a
dataclass of its framework's knobs with their defaults (``Knobs``, recorded in the profile), the
extra sweep dimensions it declares (``DIMENSIONS``), ``load(path, knobs, options)`` that returns a
:class:`~tuner.models.formats.base.Loaded` (the batch function, the input signature, the output
names, notes) and ``version()``. Adding a format is adding one module and one line to ``ADAPTERS``.

Light on purpose: this package imports no framework; an adapter imports its own when it loads.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["ADAPTERS", "adapter_for", "adapter_named", "format_of"]

#: suffix -> adapter module name (in this package)
ADAPTERS: dict[str, str] = {
    ".onnx": "onnxrt",
    ".pt": "pytorch",
    ".pt2": "pytorch",
    ".skops": "scikit",
    ".joblib": "scikit",
    ".pkl": "scikit",
    ".pickle": "scikit",
}


def format_of(path: str) -> str | None:
    """The adapter module name for a model file's suffix, or None if it is no model file."""
    return ADAPTERS.get(os.path.splitext(path)[1].lower())


def adapter_named(name: str) -> ModuleType:
    """The adapter module (imports no framework)."""
    return importlib.import_module(f"tuner.models.formats.{name}")


def adapter_for(path: str) -> ModuleType | None:
    """The adapter module for a model file, or None."""
    name = format_of(path)
    return adapter_named(name) if name is not None else None
