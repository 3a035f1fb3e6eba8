"""A real Ray cluster on this machine, one per test module (Ray takes seconds to start).

Everything stays on loopback and inside the module's temporary folder:

- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray resolve "this node" to 127.0.0.1 (otherwise a
  driver rewrites ``127.0.0.1:port`` to the machine's interface address and never reaches a head
  bound to loopback); it is read when ``ray`` is first imported, so it is set here, at collection;
- ``RAY_AUTH_MODE=disabled``: no token file is written into the home folder;
- ``RAY_TMPDIR`` and ``temp_dir`` put sessions, sockets, logs and the address file in the module's
  folder (``temp_dir`` is the name RayParams accepts for a Cluster's nodes in this Ray version).

The autouse leak fixture (tests/conftest.py) tolerates, between tests, the processes of the module's
cluster — those whose environment (or an ancestor's) names the module's ``RAY_TMPDIR`` — and this
fixture checks, after ``ray.shutdown()`` and ``cluster.shutdown()``, that this process has no child
left at all and that Ray wrote nothing outside the folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

#: where Ray writes when no folder is given: nothing may appear there
DEFAULT_RAY_DIR = Path(tempfile.gettempdir()) / "ray"


def descendants() -> list[psutil.Process]:
    """This process's live descendants but the forkserver and resource tracker (which live for the
    session). pytest is a child subreaper (tests/conftest.py): orphans of a dead raylet count too."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "forkserver" not in cmd and "resource_tracker" not in cmd:
            out.append(p)
    return out


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """Head (1 CPU) + 2 nodes (2 CPUs each) on loopback; the driver is connected to it."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'tuner[ray]')")
    from ray.cluster_utils import Cluster

    # A short path: Ray's unix sockets live under it, 60-odd characters deep, and a socket path
    # has 107 characters at most; pytest's own folders are too deep. Removed after the module.
    folder = tempfile.mkdtemp(prefix="tuner-ray-")
    default_existed = DEFAULT_RAY_DIR.exists()
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = folder
    cluster = None
    try:
        cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": 1,
                "temp_dir": f"{folder}/ray",
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
            },
        )
        cluster.extra_nodes = [cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1") for _ in range(2)]
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        for n in ray.nodes():  # nothing leaves the machine
            assert n["NodeManagerAddress"] == "127.0.0.1", n["NodeManagerAddress"]
        cluster.folder = folder
        yield cluster
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        deadline = time.monotonic() + 20.0
        left = descendants()
        while left and time.monotonic() < deadline:
            psutil.wait_procs(left, timeout=0.5)
            left = descendants()
        described = []
        for p in left:
            try:
                described.append((p.pid, p.name()))
            except psutil.Error:
                pass
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        if old is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = old
        shutil.rmtree(folder, ignore_errors=True)
        assert not described, f"Ray processes left after the module: {described}"
        assert default_existed or not DEFAULT_RAY_DIR.exists(), f"Ray wrote to {DEFAULT_RAY_DIR}"
