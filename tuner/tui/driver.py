"""How the app reaches the benchmark: a request from the form, the sweep pipeline's stages, a profile.

The app talks to this small object instead of importing ``tuner.bench`` directly, so tests and
snapshots can drive the UI with a seeded fake sweep while the real app uses the real one. The
real driver imports the benchmark lazily: opening the TUI does not pay for it up front.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tuner.bench.request import SweepRequest
from tuner.bench.types import Objective, SweepCallback, TrialResult
from tuner.tui.widgets.setup import FormValues


class Driver(Protocol):
    """What the app needs of the benchmark."""

    def make_sweep(
        self, values: FormValues, on_message: SweepCallback, host: Any, info: Any
    ) -> tuple[Any, Any]:
        """``(sweep, spec)``; raises BadInput (ModelSpecError, DataError) with one line."""
        ...

    def recommend(self, results: list[TrialResult], objective: Objective, host: Any) -> Any: ...

    # An online search (tuner.bench.online) is optional for a driver: the app asks for it with
    # getattr(driver, "make_online", None) and says so when a driver has none.

    def build_profile(self, rec: Any, name: str, request: Any, host: Any, info: Any, online: Any = None) -> Any: ...


def objective_of(values: FormValues) -> Objective:
    """The objective and constraints the form asks for."""
    return Objective(
        goal=values.goal, p99_budget_ms=values.p99_budget_ms, memory_budget_mb=values.memory_budget_mb
    )


class BenchDriver:
    """The real benchmark: the sweep pipeline (:mod:`tuner.bench.pipeline`) ``tuner bench`` runs."""

    def __init__(
        self,
        results_path: Path | None = Path(".tuner/last-sweep.jsonl"),
        settings_hook: Callable[[Any], Any] | None = None,
        in_process: bool = False,
    ) -> None:
        self.results_path = results_path
        self._settings_hook = settings_hook
        # By default the sweep runs in a child process (tuner.tui.remote): the UI then neither slows
        # the measurement nor is slowed by it. in_process=True keeps it in this process (debugging).
        self.in_process = in_process
        # What the threads knob sizes for the model of the last sweep made (the headline's words).
        self._threads_word = "BLAS"

    def request(self, values: FormValues) -> SweepRequest:
        """The sweep's request from the form (the TUI does not confirm the winner: ``confirm`` off)."""
        from tuner.bench.measure import MeasureSettings
        from tuner.bench.request import SpaceRequest

        # The cap in proportion to the window, as `tuner bench` has it: on a busy host a trial
        # waits for clean windows up to its cap (tuner.hostload), and 12 s of 0.2 s windows is long.
        settings = MeasureSettings.for_window(values.window_s)
        if self._settings_hook is not None:
            settings = self._settings_hook(settings)
        return SweepRequest(
            model=values.model,
            model_options=values.model_options(),
            dims=values.dims,
            input_path=values.input_path,
            n_items=values.n_items,
            space=SpaceRequest(
                backends=values.backends,
                workers=values.workers,
                threads=values.threads,
                partition_sizes=values.partitions,
            ),
            strategy=values.strategy,
            budget_s=values.budget_s,
            max_trials=values.max_trials,
            objective=objective_of(values),
            faults=values.faults if values.faults.active else None,
            settings=settings,
            results_path=str(self.results_path) if self.results_path else None,
            # The sweep measures in a child of this (UI) process: the UI is tuner, not outside load.
            own_pids=() if self.in_process else (os.getpid(),),
        )

    def make_sweep(
        self, values: FormValues, on_message: SweepCallback, host: Any = None, info: Any = None
    ) -> tuple[Any, Any]:
        """``(sweep, request)``: the pipeline's closed-loop stage, prepared (a bad spec raises here)."""
        from tuner.errors import ModelSpecError
        from tuner.models import parse_spec

        if self.results_path is not None:
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._threads_word = parse_spec(values.model).threads_word
        except ModelSpecError:
            self._threads_word = "BLAS"  # the sweep itself says what is wrong with the spec
        request = self.request(values)
        if self.in_process:
            return LocalStage(request, on_message), request
        from tuner.tui.remote import RemoteSweep

        return RemoteSweep(request, on_message=on_message), request

    def recommend(
        self, results: list[TrialResult], objective: Objective, host: Any, prefer: Any = None
    ) -> Any:
        from tuner.bench.recommend import recommend

        return recommend(results, objective, host, prefer=prefer, threads_word=self._threads_word)

    def make_online(
        self,
        values: FormValues,
        configs: list[Any],
        objective_ms: float,
        on_message: Any,
        *,
        step_s: float = 1.0,
        budget_s: float | None = None,
        closed_loop: list[Any] | None = None,
    ) -> tuple[Any, Any]:
        """``(online sweep, OnlineRequest)`` over ``configs`` ((TrialConfig, items/s), best first): the
        same code ``tuner bench --online`` runs, in a child process like the closed-loop sweep."""
        from dataclasses import replace

        from tuner.bench.request import OnlineRequest

        online = OnlineRequest(
            objective_ms=objective_ms, step_s=step_s, budget_s=budget_s if budget_s is not None else values.budget_s
        )
        request = replace(self.request(values), online=online, results_path=None)
        if self.in_process:
            return LocalStage(request, on_message, configs=configs, closed_loop=closed_loop), online
        from tuner.tui.remote import RemoteSweep

        return RemoteSweep(request, on_message=on_message, configs=configs, closed_loop=closed_loop), online

    def build_profile(self, rec: Any, name: str, request: Any, host: Any, info: Any, online: Any = None) -> Any:
        from tuner.bench.profiles import build_profile

        return build_profile(rec, name=name, request=request, host=host, info=info, online=online)


class LocalStage:
    """A stage of the sweep pipeline in this process: the closed-loop sweep, or with ``configs`` the
    online search on them. The interface :class:`tuner.tui.remote.RemoteSweep` has in a child."""

    def __init__(
        self,
        request: SweepRequest,
        on_message: Any,
        configs: list[Any] | None = None,
        closed_loop: list[Any] | None = None,
    ) -> None:
        from tuner.bench.pipeline import SweepPipeline

        self.pipeline = SweepPipeline(request, on_message)
        self.configs = configs
        self.closed_loop = closed_loop
        p = self.pipeline.prepare()
        self.host, self.info, self.space = p.host, p.info, p.space

    def set_faults(self, plan: Any) -> None:
        self.pipeline.set_faults(plan)

    def run(self, cancel: threading.Event | None = None) -> list[Any]:
        try:
            if self.configs is not None:
                return self.pipeline.online(cancel, configs=self.configs, closed_loop=self.closed_loop).results
            return self.pipeline.sweep(cancel)
        finally:
            self.pipeline.close()


def space_text(space: Any) -> str:
    """``workers 1,2 · threads 1,2 · partitions 16,64,256 · process`` for whatever Space holds."""
    if space is None:
        return ""
    parts = []
    for attr, label in (
        ("backends", ""),
        ("workers", "workers "),
        ("threads", "threads "),
        ("partition_sizes", "partitions "),
    ):
        v = getattr(space, attr, None)
        if v:
            parts.append(label + ",".join(str(x) for x in v))
    return " · ".join(parts)
