"""Reaching a Ray cluster: connect, describe, disconnect — and stop only what tuner started.

``--ray-address`` takes three kinds of address:

=====================  ======================================================================
``auto``               the cluster this machine already belongs to (``ray start``, RAY_ADDRESS)
``local``              a Ray head started for this run only, bound to loopback (127.0.0.1), its
                       files in a temporary folder; stopped, with every process it started, on
                       close — on a normal exit, an error, Ctrl-C or SIGTERM
``ray://host:port``    Ray Client to a remote cluster
=====================  ======================================================================

A profile records only the kind (``auto``, ``local`` or ``client``), never a host or a token; a
``client`` profile is run with the address given again (``--ray-address``) or in RAY_ADDRESS.

tuner never stops a cluster it connected to (``auto``, ``ray://``): :meth:`Connection.close`
disconnects. If the process is already connected (the caller ran ``ray.init`` itself), the
connection is used as it is and left open.

Ray is optional (``pip install 'tuner[ray]'``) and imported only by :func:`connect`; without it,
one line says how to install it. This module is light otherwise: the runtime imports it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from tuner.errors import ConfigError

#: what a profile records of an address
ADDRESS_KINDS = ("auto", "local", "client")
RAY_MISSING = "the ray backend needs Ray: pip install 'tuner[ray]'"
GIB = 1024**3


def address_kind(address: str) -> str:
    """``auto`` | ``local`` | ``client`` (for ``ray://host:port``); ConfigError for anything else."""
    a = address.strip()
    if a in ("auto", "local"):
        return a
    if a.startswith("ray://"):
        host, _, port = a[len("ray://") :].rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return "client"
    raise ConfigError(f"--ray-address {address!r}: use auto, local or ray://host:port")


def import_ray() -> Any:
    """The ``ray`` module, or ConfigError with the one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


@dataclass(frozen=True)
class Node:
    """One live node of the cluster, as Ray reports it."""

    node_id: str
    address: str
    hostname: str
    cpus: float
    memory_bytes: int
    head: bool

    @property
    def shape(self) -> str:
        """``4 CPUs``: what a node offers, for comparing clusters. CPUs only: Ray's ``memory`` is
        what was free when the node started, and moves by gigabytes between two nodes of the same
        machine (``tuner hw --ray-address`` shows it)."""
        return f"{self.cpus:g} CPU{'s' if self.cpus != 1 else ''}"


@dataclass(frozen=True)
class ClusterShape:
    """The cluster as tuner sees it now: its live nodes and Ray's version (the profile records it as a
    :class:`tuner.profile.ClusterInfo`)."""

    kind: str
    ray_version: str
    nodes: tuple[Node, ...]

    @property
    def total_cpus(self) -> float:
        return sum(n.cpus for n in self.nodes)

    def shapes(self) -> list[str]:
        """Each node's shape, sorted (order of nodes does not matter when comparing)."""
        return sorted(n.shape for n in self.nodes)

    def summary(self) -> str:
        """One line: nodes, CPUs, memory, Ray version."""
        mem = sum(n.memory_bytes for n in self.nodes) / GIB
        n = len(self.nodes)
        return (
            f"Ray {self.ray_version} cluster ({self.kind}): {n} node{'s' if n != 1 else ''}, "
            f"{self.total_cpus:g} CPUs, {mem:.1f} GiB"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: kind, Ray version, nodes (and totals)."""
        return {
            "kind": self.kind,
            "ray_version": self.ray_version,
            "total_cpus": self.total_cpus,
            "nodes": [asdict(n) for n in self.nodes],
        }


def describe(ray: Any, kind: str) -> ClusterShape:
    """The live nodes of the cluster this process is connected to (``ray.nodes()``), head first."""
    nodes = []
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        res = n.get("Resources", {})
        nodes.append(
            Node(
                node_id=n["NodeID"],
                address=n.get("NodeManagerAddress", ""),
                hostname=n.get("NodeManagerHostname", ""),
                cpus=float(res.get("CPU", 0.0)),
                memory_bytes=int(res.get("memory", 0)),
                head="node:__internal_head__" in res,
            )
        )
    nodes.sort(key=lambda x: (not x.head, x.node_id))
    return ClusterShape(kind=kind, ray_version=ray.__version__, nodes=tuple(nodes))


class Connection:
    """This process's connection to a Ray cluster. ``close()`` disconnects; for ``local`` it also
    stops the head this connection started and every process of it, and removes its folder."""

    def __init__(self, ray: Any, kind: str, owned: bool, temp_dir: str | None = None) -> None:
        self.ray = ray
        self.kind = kind
        self.owned = owned  # we called ray.init (else the caller did, and keeps it)
        self.temp_dir = temp_dir  # the local head's folder
        self.started: list[Any] = []  # psutil.Process of each process the local head started
        self._closed = False
        self._lock = threading.Lock()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def info(self) -> ClusterShape:
        """The cluster's live nodes, CPUs, memory and Ray version."""
        return describe(self.ray, self.kind)

    def close(self) -> None:
        """Disconnect; a local head goes with every process it started (and none other)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _open.discard(self)
        if not self.owned:
            return
        try:
            from tuner.engine import live

            # no engine may be using the cluster when the driver disconnects
            live.close_where(lambda engine: engine.config.kind.needs_cluster)
            self.ray.shutdown()  # a head started by ray.init is stopped by it, processes and all
        finally:
            if self.started:
                _end(self.started)
            if self.temp_dir is not None:
                shutil.rmtree(self.temp_dir, ignore_errors=True)


_open: set[Connection] = set()


@atexit.register
def _close_all() -> None:
    for conn in list(_open):
        conn.close()


def connect(address: str, *, num_cpus: int | None = None) -> Connection:
    """Connect to the cluster at ``address`` (see the module docstring); ConfigError if it cannot.

    ``num_cpus``: the CPUs a ``local`` head offers (default: this machine's usable cores).
    """
    kind = address_kind(address)
    if kind == "local":
        _loopback_only()
    ray = import_ray()
    if ray.is_initialized():
        # The caller connected (ray.init) before us: theirs to keep, ours to use.
        return Connection(ray, kind, owned=False)
    opts: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    temp_dir = None
    if kind == "local":
        from tuner.hardware import probe

        # A short folder: Ray's unix sockets live 60-odd characters under it (107 at most).
        temp_dir = tempfile.mkdtemp(prefix="tuner-ray-")
        opts.update(
            address="local",
            num_cpus=num_cpus or probe().usable_cores,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=temp_dir,
        )
    else:
        opts["address"] = address.strip()
    before = {p.pid for p in _children()}
    handlers = _signal_handlers()
    try:
        with warnings.catch_warnings():
            # Ray Client says why it could not connect in a UserWarning of two lines; tuner says it in one.
            warnings.simplefilter("ignore", UserWarning)
            ray.init(**opts)
    except Exception as e:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--ray-address {address}: cannot connect to Ray ({first})") from None
    _restore(handlers)
    conn = Connection(ray, kind, owned=True, temp_dir=temp_dir)
    if kind == "local":
        conn.started = [p for p in _children() if p.pid not in before]
    _open.add(conn)
    return conn


def _signal_handlers() -> dict[int, Any]:
    """This process's SIGTERM and SIGINT handlers (main thread only: elsewhere none can be set)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(handlers: dict[int, Any]) -> None:
    """Put back the handlers ray.init replaced. Ray's driver installs a C-level failure handler for
    SIGTERM that prints a stack and aborts (exit by SIGABRT): the caller's own handler (tuner's CLI
    turns SIGTERM into a clean stop, exit 130, and a local head stopped) must stay in charge."""
    import signal

    for sig, handler in handlers.items():
        if handler is not None:
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):
                pass


def _loopback_only() -> None:
    """Make Ray take this node's address to be 127.0.0.1, so a local head is reached on loopback.

    Without it a driver rewrites ``127.0.0.1:port`` to the machine's interface address (Ray's
    ``resolve_ip_for_localhost``). RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's own switch for a
    single-machine Ray; it is read when ``ray`` is imported, hence set before that (and, if ``ray``
    was imported already, on the constant it became).
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    consts = sys.modules.get("ray._private.ray_constants")
    if consts is not None:
        consts.ENABLE_RAY_CLUSTER = False  # type: ignore[attr-defined]


def _children() -> list[Any]:
    import psutil

    try:
        return list(psutil.Process().children(recursive=True))
    except psutil.Error:
        return []


def _end(procs: list[Any], grace_s: float = 5.0) -> None:
    """SIGKILL what is left of ``procs`` after ``grace_s`` (ray.shutdown stops them; this is the
    net). psutil.Process objects, not pids: a pid reused since is not ours to kill."""
    import psutil

    deadline = time.monotonic() + grace_s
    alive = [p for p in procs if _alive(p)]
    while alive and time.monotonic() < deadline:
        psutil.wait_procs(alive, timeout=0.1)
        alive = [p for p in alive if _alive(p)]
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass


def _alive(p: Any) -> bool:
    import psutil

    try:
        return bool(p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
