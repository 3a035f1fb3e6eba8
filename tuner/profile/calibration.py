"""The host's measured speed (``host.calibration``) and the model's nature (``model.nature``).

Both are written by every sweep since issue 23 and read by the gate (:mod:`tuner.bench.hostspeed`):
the calibration is :meth:`tuner.calibrate.Calibration.to_dict` as it is, the nature
:meth:`tuner.bench.hostspeed.Nature.to_dict`. Profiles from before have neither; the gate then says
so and falls back to comparing throughput as measured.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuner.calibrate import Calibration
from tuner.profile.base import Count, Interval, Model, NonNeg, NonNegInt, Positive, Str


class KernelScoreRecord(Model):
    """One reference kernel in one mode (one runner, or one per usable core)."""

    score: Positive = Field(description="Work per second in the kernel's unit: the median of the clean reps.")
    ci: Interval = Field(description="Bootstrap 95% confidence interval of that median.")
    reps: NonNegInt = Field(description="Clean reps the score is over.")
    discarded: NonNegInt = Field(description="Reps the noise guard called busy (not counted).")
    stable: bool = Field(description="The last 3 clean reps agreed within 2%.")
    busy: bool = Field(
        default=False,
        description="Too few clean reps, or no more clean reps than busy ones: the score may read low "
        "and the gate does not compare it.",
    )
    outside: NonNeg = Field(
        default=0.0, description="Mean outside load over the clean reps (share of the usable cores)."
    )


class KernelRecord(Model):
    """A reference kernel, single and on all usable cores."""

    unit: Str = Field(description="The kernel's unit: 'Mloop/s', 'GFLOP/s' or 'GB/s'.")
    single: KernelScoreRecord | None = Field(default=None, description="One runner.")
    all: KernelScoreRecord | None = Field(
        default=None, description="One runner per usable core (null on a 1-core host)."
    )


class CalibrationRecord(Model):
    """The host's speed on fixed reference kernels, measured at the start of the sweep (``tuner.calibrate``)."""

    version: Count = Field(description="The kernels' definition: scores of different versions never compare.")
    cores: Count = Field(description="Runners in 'all' mode: the usable cores.")
    budget_s: NonNeg = Field(description="Seconds the calibration was allowed.")
    elapsed_s: NonNeg = Field(description="Seconds it took, set-up included.")
    start_s: NonNeg = Field(default=0.0, description="Seconds to start the Python kernel's runner processes.")
    setup_s: NonNeg = Field(default=0.0, description="Seconds of set-up (runners, arrays touched).")
    outside_load: NonNeg = Field(default=0.0, description="Mean outside load over every rep.")
    outside_load_max: NonNeg = Field(default=0.0, description="The busiest rep's outside load.")
    kernels: dict[Str, KernelRecord] = Field(
        description="Per kernel: 'python' (interpreter), 'blas' (float32 matmul), 'memory' (copy bandwidth)."
    )

    @classmethod
    def of(cls, cal: Calibration) -> CalibrationRecord:
        return cls.model_validate(cal.to_dict())

    def calibration(self) -> Calibration:
        """The record as :class:`tuner.calibrate.Calibration` (what the gate compares)."""
        return Calibration.from_dict(self.model_dump(mode="json"))


class NatureRecord(Model):
    """Which reference kernel speaks for the model's speed, read from the sweep's own trials."""

    kernel: Literal["python", "blas", "memory", "io", "unclear"] = Field(
        description="python: GIL-bound; blas: native code in parallel; memory: a shared resource "
        "saturates; io: mostly waits; unclear: the trials cannot tell (the gate asks every kernel)."
    )
    evidence: list[Str] = Field(default_factory=list, description="The trials that say so, in words.")
