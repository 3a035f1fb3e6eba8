"""``tuner report``: one self-contained HTML page per sweep, or two runs compared.

The page holds everything it needs (charts are inline SVG, one stylesheet, one small script that
only sorts the trials table): it opens from disk with JavaScript off, prints to A4, and follows the
browser's light or dark scheme.

The bench command (``tuner bench --report FILE``, and the gate's report: ``tuner.commands.bench``)
calls these with the objects it already has, then writes the text atomically::

    from tuner.data import atomic_write_text
    from tuner.report import render_comparison, render_report, render_trials

    # after a sweep (the profile it writes, or would have written):
    text = render_report(profile, results, command=shlex.join(["tuner", *argv]), plan=None)
    # a sweep with no profile to show (interrupted early, nothing feasible): its trials alone
    text = render_trials(results, model=spec, host=host, calibration=cal, warnings=[why])
    # after the gate (tuner bench --baseline P --report FILE):
    text = render_comparison(baseline_profile, None, results_b=results, host_b=sweep.host,
                             calibration_b=cal, verdict=verdict.line, command=...)
    atomic_write_text(args.report, text)

``results`` is the sweep's ``TrialResult`` list (resumed trials included; a confirmed winner's two
lines are kept once, the merged one); for the gate, its repeats of the baseline's configuration,
pooled as the gate pools them. ``sweep.host`` is the ``tuner.hardware.Host`` it measured on.
``cal`` is the sweep's ``tuner.calibrate.Calibration`` (the host-speed ratio of a comparison).
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_comparison", "render_report", "render_trials"]


def render_report(
    profile: Any,
    results: list[Any] | None = None,
    *,
    command: str | None = None,
    plan: Any = None,
    sources: list[str] | None = None,
    page_command: str | None = None,
    warnings: list[str] | None = None,
) -> str:
    """The report of one sweep as an HTML document.

    ``profile``: a ``ScalingProfile`` (``tuner.profile.load_profile`` or the one the sweep built);
    ``results``: the sweep's ``TrialResult`` list (``tuner.bench.session.load_results``), or None to
    chart only what the profile names; ``command``: the exact command that ran the sweep (without
    it, one is reconstructed from the profile and said to be so); ``plan``: a ``tuner.plan.Plan``
    to show a capacity plan; ``sources`` and ``page_command``: the files and the ``tuner report``
    command the page was made from, shown in it; ``warnings``: said at the top of the page.
    """
    from tuner.report.data import run_from_profile
    from tuner.report.page import render

    run = run_from_profile(profile, results, command=command, plan=plan, sources=sources, warnings=warnings)
    return render(run, page_command=page_command)


def render_trials(
    results: list[Any],
    *,
    model: str,
    host: Any = None,
    calibration: Any = None,
    command: str | None = None,
    warnings: list[str] | None = None,
    recommend: bool = True,
) -> str:
    """The report of a sweep that has no profile (interrupted before it could recommend, or nothing
    feasible): every trial, the host, the charts; the fastest feasible trial marked as the best so
    far unless ``recommend`` is False. ``warnings`` say at the top why there is no profile."""
    from tuner.report.data import run_from_results
    from tuner.report.page import render

    run = run_from_results(
        results, name="no profile", model=model, host=host, calibration=calibration, command=command,
        recommend=recommend, warnings=warnings,
    )  # fmt: skip
    return render(run)


def render_comparison(
    a: Any,
    b: Any = None,
    results_a: list[Any] | None = None,
    results_b: list[Any] | None = None,
    *,
    host_b: Any = None,
    calibration_b: Any = None,
    verdict: str | None = None,
    command: str | None = None,
    page_command: str | None = None,
    names: tuple[str, str] | None = None,
) -> str:
    """Two runs compared as an HTML document: overlaid charts, what changed beyond the CIs, and
    whether the hosts were alike.

    ``a``: the first profile (the baseline); ``b``: the second profile, or None when the second run
    is only trials (the regression gate's new measurement: give ``results_b``, ``host_b`` — a
    ``tuner.hardware.Host`` — and the gate's ``verdict`` line). ``results_a``/``results_b``: each
    sweep's ``TrialResult`` list when at hand. ``calibration_b``: the second host's calibration (a
    ``tuner.calibrate.Calibration``: a probed Host does not carry it), for the host-speed ratio.
    ``command``: the command that made the second run. ``a`` may be None too, with ``results_a``:
    two runs of trials alone (the side-by-side gate: the previous model and the current one, both
    measured now on ``host_b``); ``names`` then names them (A's, B's).
    """
    from tuner.errors import BadInput
    from tuner.report.compare import render
    from tuner.report.data import run_from_profile, run_from_results

    name_a, name_b = names or ("baseline", "new measurement")
    if a is not None:
        run_a = run_from_profile(a, results_a)
    elif results_a:
        run_a = run_from_results(results_a, name=name_a, model=name_a, host=host_b, calibration=calibration_b)
    else:
        raise BadInput("a comparison needs a first profile or the first run's results")
    if b is not None:
        run_b = run_from_profile(b, results_b, command=command)
    elif results_b:
        run_b = run_from_results(
            results_b, name=name_b, model=run_a.model if a is not None else name_b, host=host_b,
            command=command, calibration=calibration_b,
        )  # fmt: skip
    else:
        raise BadInput("a comparison needs a second profile or the second run's results")
    if a is None and b is None:
        run_a.host = run_b.host  # both measured now, on this host
    run_b.verdict = verdict
    return render(run_a, run_b, page_command=page_command)
