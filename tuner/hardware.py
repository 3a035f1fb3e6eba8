"""What this machine offers a model: ``probe() -> Host``.

``Host`` records cores (logical, physical, and *usable*: affinity and container CPU quota),
memory, platform, numpy's BLAS and GPUs. A profile stores the host it was measured on; the
runtime compares it with the host it runs on through :meth:`Host.fingerprint` and
:meth:`Host.differences`.

``probe()`` is cache-free and cheap (no benchmark, at most one short subprocess for
``nvidia-smi``), so it can run at startup. numpy and threadpoolctl are imported inside it, and
nothing of rich, Textual or plotext is imported here, so ``import tuner.hardware`` stays light.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform as _platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import psutil

from tuner.errors import BadInput

__all__ = [
    "CGROUP_ROOT",
    "Host",
    "cgroup_cpu_quota",
    "frameworks",
    "memory_class_gib",
    "probe",
    "usable_cores",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
NVIDIA_SMI_TIMEOUT_S = 2.0
GIB = 1024**3

# Directories under a cgroup v1 root where the cpu controller may be mounted, in the order
# distributions use them; the root itself comes last so a flat test directory also works.
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu", ".")

_BLAS_NAMES = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "accelerate": "Accelerate"}
_PLATFORM_NAMES = {"linux": "Linux", "darwin": "macOS", "windows": "Windows"}


# --- cgroup CPU quota -------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _self_cgroup_paths(proc_self_cgroup: Path) -> tuple[str, str]:
    """This process's cgroup path for v2 and for the v1 cpu controller ('/' when unknown)."""
    v2 = v1 = "/"
    text = _read(proc_self_cgroup) or ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path or "/"
        elif "cpu" in controllers.split(","):
            v1 = path or "/"
    return v2, v1


def _ancestors(base: Path, rel: str) -> list[Path]:
    """``base/rel`` and each of its parents up to ``base``: a quota on any ancestor applies too."""
    rel_parts = [p for p in rel.strip("/").split("/") if p and p != ".."]
    return [base.joinpath(*rel_parts[:n]) for n in range(len(rel_parts), -1, -1)]


def _v2_quota(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if not text:
        return None
    parts = text.split()
    if len(parts) < 1 or parts[0] == "max":
        return None
    try:
        quota = float(parts[0])
        period = float(parts[1]) if len(parts) > 1 else 100_000.0
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(directory: Path) -> float | None:
    quota_text = _read(directory / "cpu.cfs_quota_us")
    period_text = _read(directory / "cpu.cfs_period_us")
    if quota_text is None or period_text is None:
        return None
    try:
        quota, period = float(quota_text), float(period_text)
    except ValueError:
        return None
    # -1 is v1's "no quota".
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The container's CPU quota in CPUs (1.5 = one and a half), or None when there is none.

    Reads cgroup v2 ``cpu.max`` ("150000 100000" -> 1.5, "max 100000" -> None) and v1
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 -> None) under ``root``, for this process's
    cgroup and every ancestor; the tightest quota wins. Missing or unreadable files mean no quota.
    """
    v2_rel, v1_rel = _self_cgroup_paths(proc_self_cgroup)
    quotas: list[float] = []
    for d in _ancestors(root, v2_rel):
        q = _v2_quota(d)
        if q is not None:
            quotas.append(q)
    for sub in _V1_CPU_DIRS:
        for d in _ancestors(root / sub, v1_rel):
            q = _v1_quota(d)
            if q is not None:
                quotas.append(q)
    return min(quotas) if quotas else None


def usable_cores(affinity: int, quota: float | None) -> int:
    """Cores this process may really use: its affinity, capped by the quota rounded up; at least 1."""
    n = affinity
    if quota is not None:
        # Rounded up: a 1.5-CPU quota still lets two threads run, each for part of the period.
        n = min(n, math.ceil(quota - 1e-9))
    return max(1, n)


def memory_class_gib(total_bytes: int) -> int:
    """Total memory rounded to a class that stays put across boots, in GiB.

    Nearest 4 GiB (a "16 GiB" machine reports ~15.5 and a "24 GiB" one ~23.5, and the kernel's
    reservations move that by far less than 2 GiB). Below 8 GiB, nearest 1 GiB instead, so small
    machines don't collapse to 0 or all look alike. Powers of two were rejected: 24 and 48 GiB
    machines are common and would land on a boundary.
    """
    gib = total_bytes / GIB
    if gib < 8:
        return max(1, round(gib))
    return 4 * round(gib / 4)


# --- probing the parts -------------------------------------------------------------------


def _affinity_cores(logical: int) -> int:
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0))
        except OSError:
            pass
    try:  # Windows and FreeBSD: psutil knows the affinity; macOS has none to know.
        return len(psutil.Process().cpu_affinity() or []) or logical
    except (AttributeError, psutil.Error, OSError):
        return logical


def _cpu_model() -> str:
    text = _read(Path("/proc/cpuinfo"))
    if text:
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    if sys.platform == "darwin":
        # platform.processor() only says "arm" or "i386" on macOS.
        try:
            out = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=NVIDIA_SMI_TIMEOUT_S,
                check=False,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return _platform.processor() or _platform.machine() or "unknown"


def _cpu_freq_mhz() -> float | None:
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, AttributeError):
        return None
    if freq is None:
        return None
    # Many VMs report max=0; current is then the only figure there is.
    mhz = freq.max or freq.current
    return round(float(mhz), 1) if mhz else None


def _platform_name() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform.startswith("win"):
        return "windows"
    return sys.platform


def _blas() -> tuple[str, list[dict[str, Any]]]:
    """numpy's version and its BLAS libraries as threadpoolctl sees them."""
    # numpy must be imported first: threadpoolctl only lists libraries already loaded.
    import numpy
    from threadpoolctl import threadpool_info

    keep = ("internal_api", "version", "num_threads", "threading_layer", "architecture", "prefix")
    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    # numpy's own BLAS only: another package's (scipy's, loaded by scikit-learn) would make the
    # fingerprint depend on what the process happened to import. A numpy linked to a system BLAS has
    # none in its own folders: then every BLAS loaded (scipy links the same system library).
    home = os.path.dirname(os.path.abspath(numpy.__file__))
    own = [
        i for i in blas if str(i.get("filepath") or "").startswith((home + os.sep, home + ".libs" + os.sep))
    ]
    libs = [{k: info.get(k) for k in keep} for info in (own or blas)]
    return str(numpy.__version__), libs


def _gpus() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        # A driver that hangs or a broken install is "no GPU we can use", not a failed probe.
        return []
    if out.returncode != 0:
        return []
    gpus = []
    for line in out.stdout.splitlines():
        name, _, memory = line.partition(",")
        if name.strip():
            gpus.append(f"{name.strip()} ({memory.strip()})" if memory.strip() else name.strip())
    return gpus


# --- Host --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    """One machine as tuner sees it; ``probe()`` builds it, a profile stores it."""

    logical_cores: int
    physical_cores: int
    affinity_cores: int
    cgroup_quota: float | None  # in CPUs; None = no container quota
    usable_cores: int
    cpu_model: str
    cpu_freq_mhz: float | None
    memory_total_bytes: int
    memory_available_bytes: int
    platform: str  # linux | darwin | windows
    machine: str  # x86_64, arm64, ...
    python: str  # "3.11.7"
    numpy: str
    blas: list[dict[str, Any]] = field(default_factory=list)
    gpus: list[str] = field(default_factory=list)
    #: model-file frameworks installed, {distribution: version} (not in the fingerprint: a profile
    #: records the version its model ran on, and the runtime compares that one)
    frameworks: dict[str, str] = field(default_factory=dict)

    # -- identity --

    def _identity(self) -> dict[str, Any]:
        # What a profile's numbers depend on. Available memory and frequency change from one
        # minute to the next, so they are left out; so are Python/numpy versions and GPUs,
        # which the CPU-side measurements do not hinge on.
        return {
            "usable_cores": self.usable_cores,
            "physical_cores": self.physical_cores,
            "memory_class_gib": memory_class_gib(self.memory_total_bytes),
            "cpu_model": self.cpu_model,
            "blas": sorted(f"{b.get('internal_api')} {b.get('version')}" for b in self.blas),
            "platform": self.platform,
            "machine": self.machine,
        }

    def fingerprint(self) -> str:
        """16 hex chars that are the same on every probe of the same machine (and container)."""
        blob = json.dumps(self._identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def differences(self, other: Host | dict[str, Any]) -> list[str]:
        """What differs, in words, between ``self`` (the profile's host) and ``other`` (this host).

        Covers exactly what the fingerprint covers, so the list is empty iff fingerprints match.
        """
        here = other if isinstance(other, Host) else Host.from_dict(other)
        a, b = self._identity(), here._identity()
        out: list[str] = []
        if a["usable_cores"] != b["usable_cores"]:
            out.append(
                f"profile measured on {a['usable_cores']} usable cores, this host has {b['usable_cores']}"
            )
        if a["physical_cores"] != b["physical_cores"]:
            out.append(
                f"profile measured on {a['physical_cores']} physical cores, this host has {b['physical_cores']}"
            )
        if a["memory_class_gib"] != b["memory_class_gib"]:
            out.append(
                f"profile measured with ~{a['memory_class_gib']} GiB of memory, "
                f"this host has ~{b['memory_class_gib']} GiB"
            )
        if a["cpu_model"] != b["cpu_model"]:
            out.append(f"CPU {a['cpu_model']!r} vs {b['cpu_model']!r}")
        if a["blas"] != b["blas"]:
            out.append(f"BLAS {', '.join(a['blas']) or 'none'} vs {', '.join(b['blas']) or 'none'}")
        if a["platform"] != b["platform"]:
            out.append(f"platform {a['platform']} vs {b['platform']}")
        if a["machine"] != b["machine"]:
            out.append(f"machine {a['machine']} vs {b['machine']}")
        return out

    # -- for people --

    def summary(self) -> str:
        """One line a person can check at a glance."""
        details = [f"{self.logical_cores} logical", f"{self.physical_cores} physical"]
        limits = []
        if self.affinity_cores != self.logical_cores:
            limits.append(f"affinity {self.affinity_cores}")
        if self.cgroup_quota is None:
            limits.append("no container quota")
        else:
            limits.append(f"container quota {self.cgroup_quota:g} CPUs")
        cores = _plural(self.usable_cores, "usable core")
        cores += f" ({', '.join(details)}; {'; '.join(limits)})"

        memory = f"{self.memory_available_bytes / GIB:.1f} GiB free of {self.memory_total_bytes / GIB:.0f}"
        if self.blas:
            blas = "; ".join(
                f"{_BLAS_NAMES.get(str(b.get('internal_api')), str(b.get('internal_api')))} "
                f"{_short_version(b.get('version'))}, {_plural(b.get('num_threads'), 'thread')}"
                for b in self.blas
            )
        else:
            blas = "no BLAS found"
        plat = f"{_PLATFORM_NAMES.get(self.platform, self.platform)} {self.machine}"
        py = "Python " + ".".join(self.python.split(".")[:2])
        gpu = f"{_plural(len(self.gpus), 'GPU')}: {', '.join(self.gpus)}" if self.gpus else "no GPU"
        return " · ".join([cores, memory, blas, plat, py, gpu])

    # -- for files --

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record of every field, plus ``fingerprint`` and ``summary``."""
        d = asdict(self)
        d["fingerprint"] = self.fingerprint()
        d["summary"] = self.summary()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Host:
        """Rebuild a Host from :meth:`to_dict` output (``fingerprint``/``summary`` are recomputed).

        Raises BadInput naming the missing fields when the record is incomplete.
        """
        if not isinstance(d, dict):
            raise BadInput(f"host record must be a mapping, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        optional = {"blas", "gpus", "cpu_freq_mhz", "cgroup_quota", "frameworks"}
        missing = sorted(names - optional - d.keys())
        if missing:
            raise BadInput(f"host record is missing {', '.join(missing)}")
        kwargs = {k: v for k, v in d.items() if k in names}
        kwargs["blas"] = [dict(b) for b in kwargs.get("blas") or []]
        kwargs["gpus"] = [str(g) for g in kwargs.get("gpus") or []]
        kwargs["frameworks"] = {str(k): str(v) for k, v in (kwargs.get("frameworks") or {}).items()}
        kwargs.setdefault("cpu_freq_mhz", None)
        kwargs.setdefault("cgroup_quota", None)
        return cls(**kwargs)


def _plural(n: object, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _short_version(version: object) -> str:
    # numpy's wheels report OpenBLAS as "0.3.31.188.0"; people know it as 0.3.31.
    text = str(version) if version is not None else "?"
    return ".".join(text.split(".")[:3])


def frameworks() -> dict[str, str]:
    """The model-file frameworks installed here and their versions (read from package metadata:
    nothing is imported), e.g. {'onnxruntime': '1.32.0', 'torch': '2.13.0'}."""
    from tuner.models.formats import ADAPTERS, adapter_named

    out: dict[str, str] = {}
    for name in dict.fromkeys(ADAPTERS.values()):
        adapter = adapter_named(name)
        version = adapter.version()
        if version is not None:
            out[adapter.FRAMEWORK] = version
    return out


def probe() -> Host:
    """Look at this machine now (no cache): cores, quota, memory, platform, BLAS, GPUs."""
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    affinity = _affinity_cores(logical)
    quota = cgroup_cpu_quota() if sys.platform.startswith("linux") else None
    mem = psutil.virtual_memory()
    numpy_version, blas = _blas()
    return Host(
        logical_cores=logical,
        physical_cores=physical,
        affinity_cores=affinity,
        cgroup_quota=quota,
        usable_cores=usable_cores(affinity, quota),
        cpu_model=_cpu_model(),
        cpu_freq_mhz=_cpu_freq_mhz(),
        memory_total_bytes=int(mem.total),
        memory_available_bytes=int(mem.available),
        platform=_platform_name(),
        machine=_platform.machine(),
        python=_platform.python_version(),
        numpy=numpy_version,
        blas=blas,
        gpus=_gpus(),
        frameworks=frameworks(),
    )
