"""scikit-learn: ``model.skops`` (skops, the safe format), ``model.joblib`` and ``model.pkl``.

A pickle (``.joblib``, ``.pkl``) runs code when it is loaded, so it loads only with the user's
explicit consent: ``--allow-pickle`` on the command line, ``allow_pickle: true`` in the profile (the
runtime asks for it again, so a profile never silently turns into code execution). A skops file
loads without running code; types skops does not trust by default (``skops.io.get_untrusted_types``,
e.g. ``sklearn.tree._tree.Tree`` of a forest) need the same consent, and are named.

Threads: threadpoolctl limits BLAS and OpenMP (the worker sets them, and ``OMP_NUM_THREADS`` for
the OpenMP runtime scikit-learn loads with the model); an estimator's own ``n_jobs`` is forced to 1
in every worker — tuner's workers are the parallelism, and joblib processes inside them would
multiply it (nested parallelism) — and the note says which were changed.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

from tuner.errors import ModelSpecError
from tuner.models.formats.base import (
    InputSpec,
    Loaded,
    Options,
    framework_version,
    import_framework,
    one_line,
)

NAME = "sklearn"
FRAMEWORK = "scikit-learn"
EXTRA = "sklearn"
POOL_NOTE = "BLAS and OpenMP pools (threadpoolctl, OMP_NUM_THREADS); estimators' n_jobs forced to 1"
THREADS = "BLAS"
METHODS = ("predict", "predict_proba", "transform", "decision_function")
PICKLES = (".joblib", ".pkl", ".pickle")


@dataclass(frozen=True)
class Knobs:
    """scikit-learn's knobs tuner sets: BLAS/OpenMP threads (n_jobs is always 1)."""

    threads: int | None = 1


DIMENSIONS: dict[str, tuple[Any, ...]] = {}


def version() -> str | None:
    """The installed scikit-learn's version (None: not installed)."""
    return framework_version("scikit-learn")


def pools(knobs: Knobs) -> dict[str, int | None]:
    """The pools the knobs size (None: the library's default)."""
    return {"BLAS / OpenMP": knobs.threads}


def consent_message(where: str) -> str:
    """Why a pickle does not load without consent, and how to give it."""
    return (
        f"{where}: a pickle runs code when it is loaded; if you trust this file pass --allow-pickle "
        "(allow_pickle: true in a profile), or save the model with skops.io.dump and use the .skops file"
    )


def _read(path: str, options: Options) -> Any:
    where = os.path.basename(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in PICKLES:
        if not options.allow_pickle:
            raise ModelSpecError(consent_message(where))
        import_framework("sklearn", path, "scikit-learn", EXTRA)
        if not os.path.isfile(path):
            raise ModelSpecError(f"{where}: file not found: {path}")
        try:
            import joblib

            return joblib.load(path)
        except Exception as e:
            raise ModelSpecError(f"{where}: not a pickle that loads ({one_line(e)})") from None
    sio = import_framework("skops.io", path, "skops", EXTRA)
    import_framework("sklearn", path, "scikit-learn", EXTRA)
    if not os.path.isfile(path):
        raise ModelSpecError(f"{where}: file not found: {path}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:
        raise ModelSpecError(f"{where}: not a skops file ({one_line(e)})") from None
    if untrusted and not options.allow_pickle:
        raise ModelSpecError(
            f"{where}: holds types skops does not trust by default ({', '.join(untrusted)}); loading them may "
            "run their code: if you trust this file pass --allow-pickle (allow_pickle: true in a profile)"
        )
    try:
        return sio.load(path, trusted=untrusted or None)
    except Exception as e:
        raise ModelSpecError(f"{where}: not a skops file that loads ({one_line(e)})") from None


def _single_jobs(est: Any) -> list[str]:
    """Set every n_jobs in the estimator (and its parts) to 1; the keys that were changed."""
    changed: list[str] = []
    try:
        params = est.get_params(deep=True)
    except Exception:
        return changed
    for key, value in params.items():
        if (key == "n_jobs" or key.endswith("__n_jobs")) and value not in (None, 1):
            try:
                est.set_params(**{key: 1})
                changed.append(f"{key}={value}")
            except Exception:
                pass
    return changed


def running(knobs: Knobs) -> int:
    """Threads a worker computes with at once: one BLAS or OpenMP pool at a time (the caller included)."""
    return knobs.threads or os.cpu_count() or 1


def load(path: str, knobs: Knobs, options: Options) -> Loaded:
    """The estimator's ``options.method`` as the batch function; n_jobs forced to 1."""
    where = os.path.basename(path)
    if options.method not in METHODS:
        raise ModelSpecError(f"{where}: method {options.method!r}: choose from {', '.join(METHODS)}")
    est = _read(path, options)
    fn = getattr(est, options.method, None)
    if not callable(fn):
        raise ModelSpecError(f"{where}: {type(est).__name__} has no method {options.method}")
    notes = []
    changed = _single_jobs(est)
    if changed:
        notes.append(
            f"n_jobs forced to 1 in each worker (was {', '.join(changed)}): the workers are the parallelism"
        )
    n = getattr(est, "n_features_in_", None)
    inputs = []
    if isinstance(n, int) and n > 0:
        inputs = [InputSpec("X", options.input_dtype or "float64", (None, n))]
    elif options.input_shape is not None:
        inputs = [InputSpec("X", options.input_dtype or "float64", (None, *options.input_shape))]
    import numpy as np

    def run(partition: Any) -> Any:
        x = partition if hasattr(partition, "dtype") else np.asarray(list(partition))
        with warnings.catch_warnings():
            # Fitted on a DataFrame, fed arrays: sklearn warns on every call about feature names.
            warnings.simplefilter("ignore", UserWarning)
            return fn(x)

    import sklearn

    return Loaded(
        run=run,
        inputs=inputs,
        outputs=[options.method],
        framework=FRAMEWORK,
        version=str(sklearn.__version__),
        notes=notes,
        description=f"scikit-learn {type(est).__name__}.{options.method}",
        handle=est,
    )
