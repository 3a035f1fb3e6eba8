"""What a sweep is asked to do, as plain data: the request the CLI and the TUI both build.

A :class:`SweepRequest` names the model, the input, the space to search (as overrides of the
default space), the strategy, the budget, the objective, the fault plan, how to measure, the
online search and the cluster — nothing probed, loaded or run. It pickles (the TUI sends it to
the process that measures) and it is what :class:`tuner.bench.pipeline.SweepPipeline` runs. The
command line and the TUI's form differ only in the options they set here (the CLI confirms the
winner: ``confirm=True``; the TUI does not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuner.bench.measure import MeasureSettings
from tuner.bench.online.schedule import RequestSize, Trace
from tuner.bench.online.search import SearchSettings
from tuner.bench.types import Objective
from tuner.engine.faults import FaultPlan

__all__ = [
    "CALIBRATION_ENV",
    "DEFAULT_DELAYS_MS",
    "DEFAULT_DELAY_MS",
    "OnlineRequest",
    "SpaceRequest",
    "SweepRequest",
    "calibration_budget",
]

#: The runtime's default batch delay before it was measured: always among the online candidates,
#: so the measured setting is compared with it in the same run.
DEFAULT_DELAY_MS = 5.0
DEFAULT_DELAYS_MS: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class SpaceRequest:
    """What to sweep, as overrides of the default space (``None``: the default for this host and model)."""

    backends: tuple[str, ...] | None = None
    workers: tuple[int, ...] | None = None
    threads: tuple[int | None, ...] | None = None  # None in it: the framework's own pool
    partition_sizes: tuple[int, ...] | None = None
    placements: tuple[str, ...] | None = None
    oversubscribe: bool = False
    #: a model file adapter's dimensions with the values to try, e.g. (("execution_mode", ("parallel",)),)
    knobs: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def overrides(self) -> dict[str, Any]:
        """The dimensions given (for ``dataclasses.replace`` of the default space)."""
        given = {
            "backends": self.backends,
            "workers": self.workers,
            "threads": self.threads,
            "partition_sizes": self.partition_sizes,
            "placements": self.placements,
        }
        return {k: v for k, v in given.items() if v is not None}


@dataclass(frozen=True)
class OnlineRequest:
    """The open-loop search after the closed-loop sweep: the highest request rate within a p99 objective."""

    objective_ms: float
    arrivals: str | Trace = "poisson"
    request_size: RequestSize = field(default_factory=RequestSize)
    step_s: float = 2.0
    budget_s: float = 150.0
    delays_ms: tuple[float, ...] = DEFAULT_DELAYS_MS
    batch_sizes: tuple[int, ...] | None = None  # None: each configuration's closed-loop partition size
    configs: int = 2  # closed-loop configurations to search, best first
    search: SearchSettings = field(default_factory=SearchSettings)
    drain_timeout_s: float = 10.0

    @property
    def arrivals_text(self) -> str:
        return str(self.arrivals) if isinstance(self.arrivals, Trace) else self.arrivals


@dataclass
class SweepRequest:
    """Everything a sweep needs: what to run, on what, how to search, how to measure, what else to do."""

    model: str = "builtin:mlp"
    #: what the user says about a model file (allow_pickle, method, provider, input_shape, input_dtype)
    model_options: dict[str, Any] = field(default_factory=dict)
    dims: tuple[str, ...] = ()  # a model file adapter's own dimensions to sweep too
    input_path: str | None = None
    n_items: int = 8192
    seed: int = 0
    space: SpaceRequest = field(default_factory=SpaceRequest)
    strategy: str = "adaptive"
    budget_s: float | None = 150.0
    max_trials: int | None = None
    objective: Objective = field(default_factory=Objective)
    faults: FaultPlan | None = None
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    results_path: str | None = None  # one JSON line per trial, written as each ends
    resume: bool = False  # continue the sweep in results_path, skipping measured configurations
    #: measure the winner once more and merge the two trials (against the winner's curse); the
    #: confirmation arrives as one more TrialStarted/TrialFinished pair for a config already shown
    confirm: bool = False
    #: measure the deployment a user writes without tuner first, the baseline of every claim
    #: (tuner.bench.defaults); off only where one configuration is re-measured (the gate)
    measure_default: bool = True
    #: start the recommendation once in a fresh interpreter for the profile's cold start
    measure_cold_start: bool = True
    #: processes besides the measuring one that are tuner's, not outside load (the TUI's UI process)
    own_pids: tuple[int, ...] = ()
    ray_address: str | None = None  # the cluster of the ray backend (auto, local, ray://host:port)
    online: OnlineRequest | None = None
    #: seconds of host calibration before the trials (tuner.calibrate; the profile's host.calibration,
    #: what the gate adjusts for); 0: none; None: $TUNER_CALIBRATION_S, else 5
    calibration_s: float | None = None

    def calibration_budget(self) -> float:
        """The calibration's budget in seconds (0: none); BadInput for a bad $TUNER_CALIBRATION_S."""
        return calibration_budget(self.calibration_s)


#: the environment variable that sets the calibration budget when the request does not
CALIBRATION_ENV = "TUNER_CALIBRATION_S"


def calibration_budget(given: float | None, where: str = "--calibration") -> float:
    """``given``, else $TUNER_CALIBRATION_S, else the calibration's default: 0 (none) or >= 1 s."""
    import math
    import os

    from tuner.calibrate import DEFAULT_BUDGET_S
    from tuner.calibrate.record import MIN_BUDGET_S
    from tuner.errors import BadInput

    value: Any = given
    if value is None:
        text = os.environ.get(CALIBRATION_ENV, "").strip()
        if not text:
            return DEFAULT_BUDGET_S
        where = f"${CALIBRATION_ENV}"
        try:
            value = float(text)
        except ValueError:
            raise BadInput(f"{where}={text!r}: not a number of seconds (0: no calibration)") from None
    if not math.isfinite(value) or not (value == 0 or value >= MIN_BUDGET_S):
        raise BadInput(f"{where} {value!r}: 0 (no calibration) or at least {MIN_BUDGET_S:g} seconds")
    return float(value)
