"""`tuner hw`: show the hardware as tuner sees it (a table, or ``--json`` for scripts).

With ``--ray-address`` it shows the Ray cluster instead: each node's CPUs and memory, Ray's version.
"""

from __future__ import annotations

import argparse
import json
import sys

from tuner.hardware import GIB, Host, probe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tuner hw``."""
    parser.add_argument(
        "--json", action="store_true", help="print the host record as JSON on stdout (nothing else)"
    )
    from tuner.options import non_blank, typed

    parser.add_argument(
        "--ray-address",
        type=typed(non_blank, "--ray-address", what="auto, local or ray://host:port"),
        metavar="ADDRESS",
        help="show this Ray cluster instead: auto, local (a head on loopback for this command) or ray://host:port",
    )


def _rows(host: Host) -> list[tuple[str, str]]:
    quota = "none" if host.cgroup_quota is None else f"{host.cgroup_quota:g} CPUs"
    freq = "unknown" if host.cpu_freq_mhz is None else f"{host.cpu_freq_mhz:.0f} MHz"
    if host.blas:
        blas = "\n".join(
            f"{b.get('internal_api')} {b.get('version')} · {b.get('num_threads')} threads"
            f" · {b.get('threading_layer')} · {b.get('architecture')}"
            for b in host.blas
        )
    else:
        blas = "none found"
    return [
        ("usable cores", f"{host.usable_cores}  (min of affinity and container quota, rounded up)"),
        ("logical cores", str(host.logical_cores)),
        ("physical cores", str(host.physical_cores)),
        ("affinity", f"{host.affinity_cores} cores"),
        ("container CPU quota", quota),
        ("CPU", host.cpu_model),
        ("CPU frequency", freq),
        ("memory total", f"{host.memory_total_bytes / GIB:.1f} GiB"),
        ("memory available", f"{host.memory_available_bytes / GIB:.1f} GiB"),
        ("platform", f"{host.platform} {host.machine}"),
        ("Python", host.python),
        ("numpy", host.numpy),
        ("BLAS", blas),
        ("GPUs", "\n".join(host.gpus) if host.gpus else "none"),
        ("model frameworks", _frameworks(host)),
        ("fingerprint", host.fingerprint()),
    ]


def _providers() -> list[str]:
    """ONNX Runtime's execution providers here (imports onnxruntime; [] when absent)."""
    from tuner.models.formats.onnxrt import providers

    return providers()


def _frameworks(host: Host) -> str:
    """``onnxruntime 1.32.0 (providers: CPUExecutionProvider) · torch 2.13.0`` or how to get them."""
    if not host.frameworks:
        return "none (pip install 'tuner[onnx]', 'tuner[torch]' or 'tuner[sklearn]' to tune model files)"
    parts = []
    for name, version in host.frameworks.items():
        text = f"{name} {version}"
        if name == "onnxruntime":
            text += (
                f" (providers: {', '.join(_providers()) or 'none'}; a GPU one is used only when asked for)"
            )
        parts.append(text)
    return "\n".join(parts)


def _show_cluster(address: str, as_json: bool) -> int:
    from tuner.cluster import address_kind, connect

    address_kind(address)  # a bad address is one line before anything starts
    with connect(address) as conn:
        info = conn.info()
    if as_json:
        sys.stdout.write(json.dumps(info.to_dict(), indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(info.summary(), markup=False, highlight=False, soft_wrap=True)
    table = Table(box=None, pad_edge=False)
    for col in ("node", "address", "CPUs", "memory", ""):
        table.add_column(col)
    for n in info.nodes:
        table.add_row(
            n.node_id[:12],
            n.address,
            f"{n.cpus:g}",
            f"{n.memory_bytes / GIB:.1f} GiB",
            "head" if n.head else "",
        )
    console.print(table)
    return 0


def run(args: argparse.Namespace) -> int:
    """Probe this machine (or the Ray cluster) and print what was found; exit 0."""
    if getattr(args, "ray_address", None) is not None:
        return _show_cluster(args.ray_address, args.json)
    host = probe()
    if args.json:
        record = host.to_dict()
        if "onnxruntime" in host.frameworks:
            record["onnxruntime_providers"] = _providers()
        sys.stdout.write(json.dumps(record, indent=2) + "\n")
        return 0

    # rich only here: `tuner hw --json` and `import tuner.hardware` never pay for it.
    from rich.console import Console
    from rich.table import Table

    console = Console()
    # soft_wrap: the summary stays one line (a person greps it, a test looks for it).
    console.print(host.summary(), markup=False, highlight=False, soft_wrap=True)
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in _rows(host):
        table.add_row(name, value)
    console.print(table)
    return 0
