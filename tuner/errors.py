"""One error tree and one place that maps an error to an exit code.

Every error a user can cause (a bad model spec, profile, data file, fault string, argument) is a
``BadInput`` and its message is one line naming what is wrong and where. The CLI prints
``tuner: <message>`` and exits with :func:`exit_code_for`; no traceback reaches the user.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of every ``tuner`` command (documented in the README)."""

    OK = 0
    FAILED = 1  # a regression past tolerance, or items that failed for good
    BAD_INPUT = 2  # bad model spec, profile, data file or argument
    INCONCLUSIVE = 3  # the regression gate could not measure cleanly (host busy): neither pass nor fail
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class TunerError(Exception):
    """Base of every error tuner raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


class BadInput(TunerError):
    """Something the user gave us is wrong; the message names what and where."""

    exit_code = ExitCode.BAD_INPUT


class ModelSpecError(BadInput):
    """A model spec that cannot be resolved, loaded or called as promised."""


class ProfileError(BadInput):
    """A profile YAML that is unreadable or breaks the schema."""


class DataError(BadInput):
    """An input or output data file that cannot be read or written."""


class FaultSpecError(BadInput):
    """A malformed fault-plan string."""


class ConfigError(BadInput):
    """An impossible engine or sweep setting (workers < 1, timeout <= 0, ...)."""


class EngineClosed(TunerError):
    """The engine was used after close()."""


class EngineFailed(TunerError):
    """A bug inside tuner's own engine (not the user's model or input); its traceback is logged."""


class Overloaded(TunerError):
    """The runtime refused work: ``max_pending`` items are already in flight (the service's 503)."""


class ItemFailed(TunerError):
    """An item failed for good; raised by the runtime's ``map`` when failures raise."""

    def __init__(self, index: int, failure: object) -> None:
        super().__init__(f"item {index} failed: {failure}")
        self.index = index
        self.failure = failure


class Regression(TunerError):
    """The regression gate found throughput or p99 beyond tolerance."""

    exit_code = ExitCode.FAILED


class Inconclusive(TunerError):
    """The regression gate could not get a clean measurement (the host was busy): no verdict."""

    exit_code = ExitCode.INCONCLUSIVE


def exit_code_for(error: BaseException) -> int:
    """The process exit code for an error that ended a command."""
    if isinstance(error, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED)
    if isinstance(error, TunerError):
        return int(error.exit_code)
    return int(ExitCode.FAILED)
