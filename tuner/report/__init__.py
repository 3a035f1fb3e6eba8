"""``tuner report``: one self-contained HTML page per sweep, or two runs compared.

The page holds everything it needs (charts are inline SVG, one stylesheet, one small script that
only sorts the trials table): it opens from disk with JavaScript off, prints to A4, and follows the
browser's light or dark scheme.

For the bench command (``tuner bench --report FILE``, and the gate's report), call these with the
objects it already has, then write the text atomically::

    from tuner.data import atomic_write_text
    from tuner.report import render_comparison, render_report

    # after a sweep that wrote a profile (the one passed to save_profile, with_online applied):
    text = render_report(profile, results, command=shlex.join(["tuner", *argv]), plan=None)
    # after the gate (tuner bench --baseline P --report FILE):
    text = render_comparison(baseline_profile, None, results_b=results, host_b=sweep.host,
                             verdict=verdict.line, command=shlex.join(["tuner", *argv]))
    atomic_write_text(args.report, text, parents=True)

``results`` is the sweep's ``TrialResult`` list (resumed trials included; a confirmed winner's two
lines are kept once, the merged one); for the gate, its repeats of the baseline's configuration,
pooled as the gate pools them. ``sweep.host`` is the ``tuner.hardware.Host`` it measured on.
A sweep that ended without a profile (interrupted, nothing feasible) has nothing to report here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["render_comparison", "render_report"]


def render_report(
    profile: Any,
    results: list[Any] | None = None,
    *,
    command: str | None = None,
    plan: Any = None,
    sources: list[str] | None = None,
    page_command: str | None = None,
) -> str:
    """The report of one sweep as an HTML document.

    ``profile``: a ``ScalingProfile`` (``tuner.profile.load_profile`` or the one the sweep built);
    ``results``: the sweep's ``TrialResult`` list (``tuner.bench.session.load_results``), or None to
    chart only what the profile names; ``command``: the exact command that ran the sweep (without
    it, one is reconstructed from the profile and said to be so); ``plan``: a ``tuner.plan.Plan``
    to show a capacity plan; ``sources`` and ``page_command``: the files and the ``tuner report``
    command the page was made from, shown in it.
    """
    from tuner.report.data import run_from_profile
    from tuner.report.page import render

    run = run_from_profile(profile, results, command=command, plan=plan, sources=sources)
    return render(run, page_command=page_command)


def render_comparison(
    a: Any,
    b: Any = None,
    results_a: list[Any] | None = None,
    results_b: list[Any] | None = None,
    *,
    host_b: Any = None,
    verdict: str | None = None,
    command: str | None = None,
    page_command: str | None = None,
) -> str:
    """Two runs compared as an HTML document: overlaid charts, what changed beyond the CIs, and
    whether the hosts were alike.

    ``a``: the first profile (the baseline); ``b``: the second profile, or None when the second run
    is only trials (the regression gate's new measurement: give ``results_b``, ``host_b`` — a
    ``tuner.hardware.Host`` — and the gate's ``verdict`` line). ``results_a``/``results_b``: each
    sweep's ``TrialResult`` list when at hand. ``command``: the command that made the second run.
    """
    from tuner.errors import BadInput
    from tuner.report.compare import render
    from tuner.report.data import run_from_profile, run_from_results

    run_a = run_from_profile(a, results_a)
    if b is not None:
        run_b = run_from_profile(b, results_b, command=command)
    elif results_b:
        run_b = run_from_results(
            results_b, name="new measurement", model=run_a.model, host=host_b, command=command
        )
    else:
        raise BadInput("a comparison needs a second profile or the second run's results")
    run_b.verdict = verdict
    return render(run_a, run_b, page_command=page_command)
