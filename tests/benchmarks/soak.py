"""Soak: a Runtime serving a mixed stream with faults for N minutes; does anything grow or go missing?

Run: ``.venv/bin/python tests/benchmarks/soak.py --minutes 10`` (``--every 30`` seconds between lines)
Smoke: ``.venv/bin/python tests/benchmarks/soak.py --smoke`` — 6 s, a line every 2 s, 0.5 s of warm-up:
checks the script runs. Its growth figures mean nothing over 6 s and do not decide its exit status;
an item lost, duplicated or misplaced, an error or a stream thread left running still does.

What runs, for ``--minutes``:

* a Runtime (process backend, autoscale 1–2 workers, ``max_pending`` bound, timeout, memory limit, retries)
  with a fault plan of crashes, hangs, stragglers and memory spikes (``--faults``);
* a **map** thread mapping successive blocks of numpy rows (each partition large enough to travel by shared
  memory), every output checked against its input: none missing, none twice, none out of place;
* two **submit** threads sending rows one at a time in bursts, every future checked the same way;
* every 40 s all producers pause for 6 s: load falls, the pool scales down to 1 worker, then back up.

Every ``--every`` seconds one line: elapsed time, RSS of this process and of its children, open file
descriptors (and how many of them are on /dev/shm), tuner's /dev/shm segments (named ``tuner_<pid>_<n>`` by this process or one of its workers),
threads, child processes, items served, failed for good, retried, workers replaced, resizes. Samples are also
taken every 2 s for the verdict: after ``--warmup`` seconds, each resource's median over the first reporting
interval is compared with its median over the last one (medians, so a worker caught mid-replacement does not
count as growth). Target: every resource flat (<= 5% growth) and zero items lost or duplicated. Items that
fail for good after their retries are not lost — they come back as failure records, counted and shown.

The host is shared with other work while this runs: say so with any figure taken from it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
COLS = 128  # float64 rows of 1 KiB: a partition of 128 rows is 128 KiB, above the shm threshold
GROWTH = 0.05
SAMPLE_S = 2.0


def model(partition: Any) -> Any:
    """Twice each row's first column (its global index): an output that names its input."""
    time.sleep(0.002)
    return np.asarray(partition)[:, 0] * 2.0


def rows(start: int, n: int) -> Any:
    out = np.zeros((n, COLS))
    out[:, 0] = np.arange(start, start + n, dtype=float)
    return out


# ------------------------------------------------------------------------------- resources


def _shm_segments(pids: set[int]) -> int:
    d = Path("/dev/shm")
    if not d.is_dir():
        return 0
    n = 0
    for p in d.iterdir():
        parts = p.name.split("_")
        if len(parts) == 3 and parts[0] == "tuner" and parts[1].isdigit() and int(parts[1]) in pids:
            n += 1
    return n


def sample(pids: set[int]) -> dict[str, float]:
    import psutil

    me = psutil.Process()
    kids = []
    for k in me.children(recursive=True):
        try:
            if k.status() != psutil.STATUS_ZOMBIE:
                kids.append(k)
        except psutil.NoSuchProcess:
            pass
    kid_rss = 0
    for k in kids:
        pids.add(k.pid)
        try:
            kid_rss += k.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    on_shm = 0
    try:
        for fd in os.listdir(f"/proc/{me.pid}/fd"):
            try:
                if os.readlink(f"/proc/{me.pid}/fd/{fd}").startswith("/dev/shm/tuner_"):
                    on_shm += 1
            except OSError:
                pass
    except OSError:  # no /proc (macOS): not shown
        pass
    anon = 0.0
    try:  # the process's own heap, apart from shared memory it maps (a leaked segment counts there)
        for line in Path(f"/proc/{me.pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                anon = float(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return {
        "rss_mb": me.memory_info().rss / 1e6,
        "anon_mb": anon,
        "children_rss_mb": kid_rss / 1e6,
        "fds": float(me.num_fds()),
        "fds_shm": float(on_shm),
        "shm": float(_shm_segments(pids)),
        "threads": float(me.num_threads()),
        "children": float(len(kids)),
    }


# ------------------------------------------------------------------------------- the stream

#: Every LULL_EVERY_S, every producer pauses LULL_S: load falls, the pool scales down, then up again.
LULL_EVERY_S, LULL_S = 40.0, 6.0
T0 = time.monotonic()


def lull(stop: threading.Event) -> None:
    """Pause while the shared schedule says the stream is in a lull (load shaping, not synchronisation)."""
    phase = (time.monotonic() - T0) % LULL_EVERY_S
    if phase > LULL_EVERY_S - LULL_S:
        stop.wait(LULL_EVERY_S - phase)


class Ledger:
    """What was sent and what came back, per path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = 0
        self.failed = 0  # failure records: an outcome, not a loss
        self.wrong: list[str] = []  # lost, duplicated or misplaced
        self.errors: list[str] = []  # an exception where an outcome was due

    def bad(self, what: str) -> None:
        with self.lock:
            if len(self.wrong) < 20:
                self.wrong.append(what)
            else:
                self.wrong[-1] = f"... and more ({what})"


def map_loop(rt: Any, stop: threading.Event, ledger: Ledger, block: int) -> None:
    from tuner.engine import Failure

    start = 0
    while not stop.is_set():
        lull(stop)
        x = rows(start, block)
        got = 0
        ok = failed = 0
        for i, y in enumerate(rt.map(x, on_failure="yield")):
            got += 1
            if isinstance(y, Failure):
                failed += 1
            elif float(y) != 2.0 * (start + i):
                ledger.bad(f"map: item {start + i} came back as {float(y) / 2:g}")
            else:
                ok += 1
        if got != block:
            ledger.bad(f"map: {block} items in, {got} outcomes out")
        with ledger.lock:
            ledger.sent += block
            ledger.ok += ok
            ledger.failed += failed
        start += block


def submit_loop(rt: Any, stop: threading.Event, ledger: Ledger, base: int, burst: int) -> None:
    from tuner.errors import ItemFailed

    n = base
    while not stop.is_set():
        lull(stop)
        futures = []
        for _ in range(burst):
            futures.append((n, rt.submit(rows(n, 1)[0])))
            n += 1
        for i, f in futures:
            try:
                y = f.result(timeout=120)
            except ItemFailed:
                with ledger.lock:
                    ledger.failed += 1
                continue
            except Exception as e:  # a lost item shows up here (timeout) or as a wrong error
                with ledger.lock:
                    ledger.errors.append(f"submit: item {i}: {type(e).__name__}: {e}")
                continue
            if float(y) != 2.0 * i:
                ledger.bad(f"submit: item {i} came back as {float(y) / 2:g}")
            else:
                with ledger.lock:
                    ledger.ok += 1
        with ledger.lock:
            ledger.sent += burst


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between report lines")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the baseline")
    parser.add_argument(
        "--faults", default="crash=0.005,hang=0.002,slow=0.01x5,memory=0.002x300,seed=11", help="fault plan"
    )
    parser.add_argument("--block", type=int, default=4096, help="rows per map() call")
    parser.add_argument("--smoke", action="store_true", help="6 s: does it run? (growth not judged)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.minutes, args.every, args.warmup = 0.1, 2.0, 0.5

    from tuner.runtime import AutoscaleSettings, Runtime

    pids = {os.getpid()}
    events = {"pids": pids}

    def on_event(e: Any) -> None:
        pid = getattr(e, "pid", None)
        if pid:
            events["pids"].add(pid)

    rt = Runtime(
        f"{HERE}:model",
        backend="process",
        workers=2,
        partition_size=128,
        timeout_s=1.0,
        retries=4,
        memory_limit_mb=250.0,
        max_pending=4096,
        autoscale=AutoscaleSettings(
            min_workers=1, max_workers=2, target_backlog_per_worker=2.0, downscale_delay_s=2.0, interval_s=0.5
        ),
        faults=args.faults,
        on_event=on_event,
    )
    stop = threading.Event()
    ledger = Ledger()
    duration = args.minutes * 60.0
    print(
        f"soak {args.minutes:g} min · {rt.settings.describe()} · faults {args.faults} · "
        f"pid {os.getpid()} · {os.cpu_count()} CPUs (host shared with other work)",
        flush=True,
    )
    header = (
        f"{'t':>6} {'rss MB':>8} {'heap MB':>8} {'kids MB':>8} {'fds':>5} {'→shm':>5} {'shm':>4} {'thr':>4} {'kids':>4} "
        f"{'served':>9} {'failed':>6} {'retried':>7} {'replaced':>8} {'resizes':>7}"
    )
    print(header, flush=True)
    samples: list[tuple[float, dict[str, float]]] = []
    with rt:
        threads = [
            threading.Thread(target=map_loop, args=(rt, stop, ledger, args.block), daemon=True),
            threading.Thread(target=submit_loop, args=(rt, stop, ledger, 10**9, 256), daemon=True),
            threading.Thread(target=submit_loop, args=(rt, stop, ledger, 2 * 10**9, 64), daemon=True),
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        next_line = t0 + args.every
        while True:
            now = time.monotonic()
            if now - t0 >= duration:
                break
            stop.wait(min(SAMPLE_S, max(0.0, t0 + duration - now)))
            now = time.monotonic()
            s = sample(pids)
            samples.append((now - t0, s))
            if now >= next_line or now - t0 >= duration:
                next_line += args.every
                st = rt.stats()
                with ledger.lock:
                    served, failed = ledger.ok, ledger.failed
                print(
                    f"{now - t0:6.0f} {s['rss_mb']:8.1f} {s['anon_mb']:8.1f} {s['children_rss_mb']:8.1f} {s['fds']:5.0f} {s['fds_shm']:5.0f} "
                    f"{s['shm']:4.0f} {s['threads']:4.0f} {s['children']:4.0f} {served:9d} {failed:6d} "
                    f"{st.retries:7d} {st.replaced:8d} {len(rt.scaling_decisions):7d}",
                    flush=True,
                )
        stop.set()
        for t in threads:
            t.join(180)
        alive = [t.name for t in threads if t.is_alive()]
    after = sample(pids)

    # ---- verdict
    verdict_ok = True
    items_ok = True  # what a smoke run is judged on: nothing lost, nothing wrong, nothing left running
    lines = []
    first = [s for t, s in samples if args.warmup <= t < args.warmup + args.every]
    last = [s for t, s in samples if t >= samples[-1][0] - args.every] if samples else []
    if not first or not last or samples[-1][0] < args.warmup + 2 * args.every - SAMPLE_S:
        lines.append(
            f"too short to judge growth: need warm-up {args.warmup:g} s + 2 intervals of {args.every:g} s"
        )
        verdict_ok = False
    else:
        for key, label in (
            ("rss_mb", "RSS (this process)"),
            ("anon_mb", "  of which heap"),
            ("children_rss_mb", "RSS (workers)"),
            ("fds", "open fds"),
            ("shm", "/dev/shm segments"),
            ("threads", "threads"),
            ("children", "child processes"),
        ):
            a = statistics.median(s[key] for s in first)
            b = statistics.median(s[key] for s in last)
            grew = (b - a) / a if a > 0 else (0.0 if b <= 0 else float("inf"))
            ok = grew <= GROWTH
            verdict_ok &= ok
            lines.append(f"{label:<20} {a:8.1f} → {b:8.1f}  {grew:+6.1%}  {'flat' if ok else 'GREW'}")
    with ledger.lock:
        lost = ledger.sent - ledger.ok - ledger.failed - len(ledger.errors)
        lines.append(
            f"items: {ledger.sent} sent, {ledger.ok} correct, {ledger.failed} failed for good (records), "
            f"{len(ledger.errors)} errors, {len(ledger.wrong)} wrong/lost/duplicated, {lost} unaccounted"
        )
        if ledger.wrong or ledger.errors or lost or alive:
            verdict_ok = items_ok = False
            for w in [*ledger.wrong, *ledger.errors][:10]:
                lines.append(f"  {w}")
            if alive:
                lines.append(f"  stream threads still running after close: {alive}")
    lines.append(
        f"after close: {after['children']:.0f} child processes, {after['shm']:.0f} shm segments, "
        f"{after['threads']:.0f} threads"
    )
    print("\n".join(lines))
    print(f"verdict: {'PASS' if verdict_ok else 'FAIL'}", flush=True)
    if args.smoke:
        print(f"smoke run: growth not judged; items {'accounted for' if items_ok else 'NOT accounted for'}")
        return 0 if items_ok else 1
    return 0 if verdict_ok else 1


if __name__ == "__main__":
    sys.exit(main())
