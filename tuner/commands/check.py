"""``tuner check PROFILE [PROFILE...]``: validate profiles, one line per file.

A valid file prints ``PATH: ok — process ×2 · 1 thread · partition 64 · timeout 0.25 s · autoscale 1–2 ·
outside load 2% of 2 cores`` on stdout (the last part: what other processes did while it was
measured, when the profile records it). A bad one is a :class:`~tuner.errors.ProfileError` whose one line names the file, the
line and the key path; the CLI prints it as ``tuner: <message>`` and exits 2. A profile whose
recommendation was measured on a busy host (too few clean windows: ``evidence.host_load.contaminated``)
says so instead of ``ok``; ``--require-clean`` makes that exit 3. ``--calibrate`` measures this
host on the reference kernels (:mod:`tuner.calibrate`) and says, under each profile, how its speed
compares with the host the profile was measured on.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

from tuner import fmt
from tuner.errors import ExitCode, ProfileError
from tuner.options import non_blank, typed

if TYPE_CHECKING:  # tuner.profile (pydantic) is imported only when the command runs
    from tuner.calibrate import Calibration
    from tuner.profile import ScalingProfile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``PROFILE [PROFILE...] [--require-clean] [--calibrate]``."""
    parser.add_argument(
        "profiles",
        nargs="+",
        type=typed(non_blank, "PROFILE", what="a profile file"),
        metavar="PROFILE",
        help="profile YAML file(s) to validate",
    )
    parser.add_argument(
        "--require-clean",
        action="store_true",
        help="exit 3 when a profile was measured on a busy host (its figures read low; re-measure it)",
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="measure this host on the reference kernels (at most 5 s) and say how its speed compares "
        "with the host each profile was measured on",
    )


def busy(profile: ScalingProfile) -> bool:
    """The recommendation was measured on a busy host: too few clean windows, its figures read low."""
    load = profile.evidence.host_load
    return bool(load is not None and load.contaminated)


def summary(profile: ScalingProfile) -> str:
    """One line saying what the runtime would apply (base ``recommended``, overrides named)."""
    rec, auto = profile.recommended, profile.autoscale
    timeout = f"timeout {rec.timeout_s:g} s" if rec.timeout_s is not None else "no timeout"
    parts = [
        f"{rec.backend} ×{rec.workers}",
        profile.deployment().threads_text(),
        f"partition {rec.partition_size}",
        timeout,
        f"autoscale {auto.min_workers}–{auto.max_workers}",
    ]
    if rec.hedge is not None:
        parts.append(f"hedge after {fmt.sig(rec.hedge.after_ms)} ms")
    if profile.platforms is not None:
        names = [p for p, o in profile.platforms if o is not None]
        if names:
            parts.append(f"overrides for {', '.join(names)}")
    if profile.evidence.host_load is not None:
        # What other processes did while it was measured: a profile from a busy host says so.
        parts.append(profile.evidence.host_load.words(profile.host.usable_cores))
    if profile.online is not None:  # measured under traffic: the runtime's batcher and bound come from it
        o = profile.online
        parts.append(
            f"online: batches ≤{o.max_batch_size} within {o.max_batch_delay_ms:g} ms, max pending "
            f"{o.max_pending} ({o.max_rate_at_slo:,.0f} requests/s at p99 ≤ {o.objective_p99_ms:g} ms)"
        )
    return " · ".join(parts)


def _calibrate() -> Calibration:
    """This host on the reference kernels, once for every profile checked (its line on stderr)."""
    from tuner.calibrate import calibrate
    from tuner.hardware import probe

    cal = calibrate(probe())
    _say(f"this host: {cal.describe()}", sys.stderr)
    return cal


def _host_speed(profile: ScalingProfile, here: Calibration) -> str:
    """How this host's speed compares with the profile's host, in one line."""
    from tuner.calibrate import compare

    if profile.host.calibration is None:
        return (
            "host speed: the profile records no host calibration (re-measure it with this version to compare)"
        )
    speed = compare(profile.host.calibration.calibration(), here)
    return f"host speed: {speed.describe()}"


def _say(line: str, out: TextIO) -> None:
    # The line holds '×', '·', '–'; on a terminal that cannot encode them, degrade, don't crash.
    try:
        out.write(line + "\n")
    except UnicodeEncodeError:
        ascii_line = line.replace("×", "x").replace("·", "|").replace("–", "-").replace("—", "-")
        out.write(ascii_line.encode("ascii", "replace").decode("ascii") + "\n")


def run(args: argparse.Namespace) -> int:
    """Validate every file; exit 0 if all are valid, else 2 with one ``tuner:`` line per bad file."""
    from tuner.profile import load_profile

    errors: list[ProfileError] = []
    contaminated = []
    here = None
    for path in args.profiles:
        try:
            profile = load_profile(path)
        except ProfileError as e:
            errors.append(e)
            continue
        status = "ok"
        if busy(profile):
            contaminated.append(path)
            status = "valid, but measured on a busy host (its figures read low: re-measure it)"
        _say(f"{path}: {status} — {summary(profile)}", sys.stdout)
        if args.calibrate:
            here = here or _calibrate()
            _say(f"  {_host_speed(profile, here)}", sys.stdout)
    if len(errors) == 1:
        raise errors[0]
    for err in errors:  # several bad files: report each, in the CLI's format
        _say(f"tuner: {err}", sys.stderr)
    if errors:
        return int(ExitCode.BAD_INPUT)
    if contaminated and args.require_clean:
        _say(f"tuner: measured on a busy host: {', '.join(contaminated)} (--require-clean)", sys.stderr)
        return int(ExitCode.INCONCLUSIVE)
    return int(ExitCode.OK)
