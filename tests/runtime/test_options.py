"""``Runtime(...)`` and ``Runtime.from_profile(...)`` take the same options where they mean something."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tuner.errors import ConfigError
from tuner.hardware import Host
from tuner.runtime import Runtime

from .helpers import host_info, write_profile

#: from_profile's own: the profile's path, and how strictly to hold this host to it
PROFILE_ONLY = {"path", "strict"}


def test_both_doors_take_the_same_keywords() -> None:
    direct = set(inspect.signature(Runtime).parameters) - {"options", "deployment", "settings"}
    from_profile = set(inspect.signature(Runtime.from_profile).parameters) - {"overrides"} - PROFILE_ONLY
    assert from_profile <= direct, from_profile - direct


@pytest.mark.timeout(10)
def test_ray_address_is_refused_for_a_backend_on_no_cluster() -> None:
    with pytest.raises(ConfigError, match=r"ray_address='auto': the thread backend runs on no cluster \(ray_address is for ray\)"):
        Runtime("builtin:sleep", backend="thread", ray_address="auto")


@pytest.mark.timeout(10)
def test_a_malformed_ray_address_is_one_line_before_anything_starts() -> None:
    with pytest.raises(ConfigError, match=r"--ray-address 'ray://nohost': use auto, local or ray://host:port"):
        Runtime("builtin:sleep", backend="ray", ray_address="ray://nohost")


@pytest.mark.timeout(30)
def test_check_input_is_taken_by_both(tmp_path: Path, this_host: Host) -> None:
    path = write_profile(tmp_path / "p.yaml", host_info(this_host))
    assert Runtime.from_profile(path, check_input=False).check_input is False
    assert Runtime("builtin:sleep", backend="thread", check_input=False).check_input is False
    assert Runtime("builtin:sleep", backend="thread").check_input is True
