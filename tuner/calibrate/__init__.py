"""Host speed, measured: a short calibration of fixed reference kernels, and two hosts compared.

A fingerprint says which *kind* of machine this is; it cannot say how fast today's machine is. A
VM's CPU reads "AMD EPYC" whatever physical machine is behind it, and one instance type runs on
different hardware from day to day (issue 23: an unchanged build read −28% on a quiet host with the
profile's own fingerprint). So every sweep and every gate first measures the host on fixed work,
and the profile records the result beside the fingerprint (``host.calibration``).

**The kernels** — the same fixed work on every host, each *single* (one runner) and on *all*
usable cores (one runner per core):

=========  ==========  ======================================================================
kernel     unit        the work (one rep = ``units`` of it per runner)
=========  ==========  ======================================================================
python     Mloop/s     a pure-Python loop of integer arithmetic, a dict, str formatting — what
                       an interpreter-bound model does; one unit = 1000 iterations. Runs in
                       child interpreters (``python -I -S``): the GIL lets one thread run Python
                       at a time, so all cores need processes. Single mode runs in one of them
                       too, so both modes run the same interpreter in the same way.
blas       GFLOP/s     a float32 matmul of 384×384 matrices (float32: what ML models multiply;
                       384: ~1 ms, inside the L2/L3 caches, so it measures the cores' arithmetic),
                       BLAS limited to 1 thread per call (threadpoolctl), one Python thread per
                       runner (numpy releases the GIL inside BLAS).
memory     GB/s        ``numpy.copyto`` of a fixed 32 MiB float64 array into another (bytes read
                       + bytes written per second), a pair per runner, threads as for blas. 64 MiB
                       per runner is beyond the per-core share of the last-level cache of the
                       common cloud CPUs (an EPYC CCX has 32 MB); a host that reports a larger
                       shared L3 (the 2-core dev VM says 480 MB) measures a mix of cache and DRAM
                       — the size is fixed anyway, so two hosts always do the *same* work.
=========  ==========  ======================================================================

**The budget** (default 5 s, the whole call). Setup first: the python runners start (6-25 ms for
two, concurrently: ``-I -S`` skips site and every import) and the memory arrays are touched
(first-touch page faults: ~0.05 s for 128 MiB on a warm host, up to ~0.5 s on a fresh VM whose
memory the hypervisor backs lazily). Then each kernel × mode pair sizes its rep to :data:`REP_S`
(the sizing reps are its warm-up and are not counted; the rep is shorter when the budget cannot
give every pair :data:`MIN_REPS` + 2 of them), and the reps run **round-robin** over the pairs —
one rep of each pair in turn — until every pair is stable (at least :data:`MIN_REPS` clean reps,
the last :data:`STABLE_REPS` within :data:`STABLE_TOLERANCE`) or the next rep would pass the budget
less :data:`RESERVE_S`. Round-robin, because on a shared VM a core's speed drifts over seconds:
every pair samples the whole calibration, so a drift moves all kernels alike and shows in their
CIs instead of passing for one kernel's speed against another's. A pair that settles early
leaves its turns to the others.

**The noise guard.** Each rep is one window of :mod:`tuner.hostload` (outside CPU, steal, swap;
the runners count as tuner's own): a rep the rule calls busy is discarded and counted. A pair with
fewer than :data:`MIN_CLEAN` clean reps keeps every rep, and a pair with no more clean reps than
busy ones keeps its clean ones; both are marked ``busy`` — the host was busy throughout, the score
may read low, and :func:`compare` will not use it.

**The score** of a pair: work per second, the median of its clean reps, with a percentile-bootstrap
95% CI of that median (:func:`tuner.stats.bootstrap_ci`). With 5-8 reps that CI is close to the
reps' range. Between calibrations minutes apart on one host the scores move by more than one run's
CI (frequency, neighbours, SMT siblings, none of which the noise guard can read):
:func:`compare` counts each score as uncertain by at least its kernel's :data:`REPRODUCIBILITY`.

**Processes.** The python runners never outlive :func:`calibrate`: they are closed in a
``finally`` (stdin closed, then killed after :data:`STOP_GRACE_S`), on an exception or Ctrl-C
too; they ignore SIGINT (the caller handles Ctrl-C and stops them), and if the caller dies
outright their stdin reaches EOF and they exit on their own.

**Stored form** (:meth:`Calibration.to_dict`, the profile's ``host.calibration``)::

    version: 1                  # kernels' definition; scores of different versions never compare
    cores: 2                    # runners in "all" mode (the usable cores)
    budget_s: 5.0               # what the calibration was allowed
    elapsed_s: 4.93             # what it took, setup included
    start_s: 0.023              # starting the python runner processes (all, concurrently)
    setup_s: 0.057              # all setup: runners started, arrays touched, sampler ready
    outside_load: 0.27          # mean outside load over every rep (share of the usable cores)
    outside_load_max: 0.62      # the busiest rep
    kernels:
      python:
        unit: Mloop/s           # the kernel's unit (for people; fixed by the version)
        # score: median of the clean reps; ci: its bootstrap 95% CI; reps: clean reps;
        # discarded: reps the noise guard called busy; stable: the last 3 clean reps within 2%;
        # busy: too few clean reps (< 3) or no more clean than busy — not compared;
        # outside: mean outside load over the clean reps (it may have cost the score that share)
        single: {score: 4.42, ci: [4.309, 4.562], reps: 4, discarded: 3, stable: true, busy: false,
                 outside: 0.06}
        all: {...}              # null on a 1-core host (it would be single again)
      blas: {unit: GFLOP/s, single: {...}, all: {...}}
      memory: {unit: GB/s, single: {...}, all: {...}}

Importing this module costs the standard library only (numpy, psutil and threadpoolctl are
imported inside :func:`calibrate`), so the profile schema can read a calibration cheaply.
"""

from __future__ import annotations

from tuner.calibrate.record import (
    DEFAULT_BUDGET_S,
    KERNELS,
    KERNELS_VERSION,
    MODES,
    REPRODUCIBILITY,
    UNITS,
    Calibration,
    CalibrationError,
    KernelScore,
)
from tuner.calibrate.run import calibrate
from tuner.calibrate.speed import HostSpeed, SpeedRatio, compare

__all__ = [
    "DEFAULT_BUDGET_S",
    "KERNELS",
    "KERNELS_VERSION",
    "MODES",
    "REPRODUCIBILITY",
    "UNITS",
    "Calibration",
    "CalibrationError",
    "HostSpeed",
    "KernelScore",
    "SpeedRatio",
    "calibrate",
    "compare",
]
