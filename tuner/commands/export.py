"""``tuner export PROFILE --to TARGET [--out DIR|FILE]``: a profile as another system's config.

Targets: ``ray-serve`` (a Serve config), ``kubernetes`` (ConfigMap, Deployment, Service and an HPA or
a KEDA ScaledObject), ``kserve`` (an InferenceService), ``dockerfile`` (the image the manifests
run). The config goes to ``--out`` (a file, or a folder that gets the target's usual file name;
written atomically) or to stdout. Every option's value is checked while the arguments are parsed,
and everything is derived before anything is written: bad input is one line, exit 2, no file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tuner.errors import BadInput
from tuner.options import choice, finite, integer, non_blank, typed

TARGET_NAMES = ("ray-serve", "kubernetes", "kserve", "dockerfile")


def _image(name: str, text: str) -> str:
    value = non_blank(name, text, what="an image reference, e.g. registry.example/tuner-mlp:1")
    if any(c.isspace() for c in value):
        raise BadInput(f"{name} {text!r}: an image reference has no spaces")
    return value


def _namespace(name: str, text: str) -> str:
    from tuner.export.kubernetes import check_namespace

    non_blank(name, text, what="a Kubernetes namespace", default="default")
    return check_namespace(text.strip())


def _url(name: str, text: str) -> str:
    value = non_blank(name, text, what="an http(s) URL").strip()
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise BadInput(f"{name} {text!r}: not an http(s) URL (e.g. http://prometheus.monitoring:9090)")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``PROFILE --to TARGET [--out DIR|FILE]`` and each target's options."""
    parser.epilog = "exit codes: 0 written; 2 bad input (one line; nothing written)"
    a = parser.add_argument
    a("profile", type=typed(non_blank, "PROFILE", what="a profile file"), metavar="PROFILE")
    a(
        "--to",
        required=True,
        type=typed(non_blank, "--to", what=", ".join(TARGET_NAMES)),
        metavar="TARGET",
        help="ray-serve (Serve config), kubernetes (Deployment, Service, HPA | KEDA), kserve "
        "(InferenceService), dockerfile (the image they run)",
    )
    a(
        "--out",
        type=typed(non_blank, "--out", what="a file or a folder"),
        metavar="DIR|FILE",
        help="write here; a folder gets serve.yaml, kubernetes.yaml, kserve.yaml or Dockerfile (default: stdout)",
    )
    a(
        "--import-path",
        type=typed(non_blank, "--import-path", what="MODULE:ATTR"),
        default=None,
        metavar="MODULE:ATTR",
        help="ray-serve: the Serve application (default tuner.export.ray_app:app, tuner's own, which runs "
        "the profile in each replica)",
    )
    _add_k8s_arguments(parser.add_argument_group("kubernetes, kserve and dockerfile"))


def _add_k8s_arguments(group: argparse._ArgumentGroup) -> None:
    """The options of the kubernetes, kserve and dockerfile targets."""
    k = group.add_argument
    k(
        "--image",
        type=typed(_image, "--image"),
        metavar="IMAGE",
        help="the image (default tuner-NAME:VERSION)",
    )
    k(
        "--rate",
        type=typed(finite, "--rate", gt=0, what="requests/s"),
        metavar="R",
        help="peak requests/s to serve: the autoscaler's replicas come from tuner plan at this rate",
    )
    k(
        "--namespace",
        type=typed(_namespace, "--namespace"),
        default="default",
        metavar="NS",
        help="default: default",
    )
    k(
        "--autoscaler",
        type=typed(choice, "--autoscaler", choices=("hpa", "keda", "none")),
        default="hpa",
        metavar="hpa|keda|none",
        help="a HorizontalPodAutoscaler on CPU (default), a KEDA ScaledObject on tuner's request rate, or none",
    )
    k(
        "--headroom",
        type=typed(finite, "--headroom", ge=0, le=95, what="a percentage"),
        default=30.0,
        metavar="PCT",
        help="keep each pod this far below its measured max rate (default 30)",
    )
    k(
        "--node-cpus",
        type=typed(integer, "--node-cpus", ge=1, what="CPUs"),
        metavar="N",
        help="the CPUs a pod can have on the target nodes (their allocatable), when unlike the measured host",
    )
    k(
        "--node-memory-gb",
        type=typed(finite, "--node-memory-gb", gt=0, what="GB"),
        metavar="M",
        help="the memory a pod can have on the target nodes, GB",
    )
    k(
        "--cpu-target",
        type=typed(finite, "--cpu-target", gt=0, le=100, what="a percentage of the CPU request"),
        metavar="PCT",
        help="the HPA's CPU utilisation target, when the profile records no CPU at its max rate",
    )
    k(
        "--prometheus-url",
        type=typed(_url, "--prometheus-url"),
        metavar="URL",
        help="keda: the Prometheus that scrapes the pods' /metrics",
    )
    k(
        "--prestop-s",
        type=typed(finite, "--prestop-s", ge=0, le=600, what="seconds"),
        default=5.0,
        metavar="S",
        help="seconds before SIGTERM for your cluster to drop a terminating pod from every proxy (default 5)",
    )
    k(
        "--server-memory-mb",
        type=typed(finite, "--server-memory-mb", gt=0, what="MB"),
        metavar="MB",
        help="process backend: the serving process's own RSS (the profile measures the workers only)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the profile (one line if bad), render the target, write it; exit 0."""
    from tuner.export import DEFAULT_NAMES, TARGETS, ExportOptions
    from tuner.export.ray_serve import DEFAULT_IMPORT_PATH
    from tuner.profile import load_profile

    target = choice("--to", args.to, tuple(TARGETS))
    import_path = args.import_path if args.import_path is not None else DEFAULT_IMPORT_PATH
    if ":" not in import_path or import_path.startswith(":") or import_path.endswith(":"):
        raise BadInput(f"--import-path {import_path!r}: use MODULE:ATTR, e.g. app:app")
    profile = load_profile(args.profile)
    opts = ExportOptions(
        source=args.profile,
        # The ConfigMap holds the file as it is (comments and all): what tuner serve will read.
        profile_text=Path(args.profile).read_text(encoding="utf-8"),
        import_path=import_path,
        image=args.image,
        rate=args.rate,
        namespace=args.namespace,
        autoscaler=args.autoscaler,
        headroom_pct=args.headroom,
        node_cpus=args.node_cpus,
        node_memory_gb=args.node_memory_gb,
        cpu_target_pct=args.cpu_target,
        prometheus_url=args.prometheus_url,
        prestop_s=args.prestop_s,
        server_memory_mb=args.server_memory_mb,
    )
    text = TARGETS[target](profile, opts)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    from tuner.data import atomic_write_text

    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", "\\")):
        out = out / DEFAULT_NAMES[target]
    atomic_write_text(out, text, parents=True)
    print(f"{target} config written to {out}", file=sys.stderr)
    return 0
