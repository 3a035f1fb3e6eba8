"""The help screen (``?``): what each key does and how to read the views."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# tuner — keys

| key | does |
|---|---|
| `s` | start a sweep with the setup's values (Start button) |
| `x` | stop the sweep; completed trials are kept |
| `r` | restart: stop, then start again with the current setup |
| `f` | change fault rates (crash, exception, hang, straggler, memory); applied from the next trial |
| `1` `2` `3` `4` | Setup · Run · Results · Online |
| `o` / `O` | in the trials table: sort by the next column / reverse |
| `e` | export the recommendation as a profile (shows the YAML, asks where) |
| `l` | load an existing profile to compare against |
| `t` | dark / light theme |
| `ctrl+p` | command palette |
| `?` | this help · `q` quit (stops the sweep, leaves no worker) |

Inside a text field, letters type: press `escape` or `tab` away first, or use the buttons.

# Reading the run

* **throughput**: items/s per measurement window of the current trial. Grey is warm-up
  (workers starting, model loading), excluded from the figures; a trial is *stable* when its
  last 3 windows agree within the tolerance.
* **latency**: p50 / p95 / p99 item latency, from submitting a partition to getting its outcome back.
* **trials**: items/s against workers, one line per partition size; the table has every trial,
  ★ the best feasible one. *unstable* never settled before the time cap; *infeasible* broke a
  constraint (p99 or memory budget). With faults injected, the figure in brackets is the same
  configuration measured clean.
* **events**: injected faults, worker deaths, retries and recoveries, as they happen.

# Reading the online view (4)

After a sweep, *Start online* sends requests on a schedule (Poisson arrivals, not when a worker frees
up) through the runtime's dynamic batcher, on the sweep's best configurations and batch delays, and
finds the highest rate whose p99 stays within the objective.

* **latency vs offered rate**: p50 and p99 per step, the objective as a line, the knee (the highest
  sustainable rate) marked. Latency counts from each request's *intended* send time, so a stall
  shows in every request scheduled during it.
* **this step, live**: the running step's p99 over the last second and the items in flight.
* **steps**: each step's verdict: *sustainable* when achieved >= 99% of offered, the queue is not
  growing and p99 is within the objective; otherwise the reasons.
* **capacity plan**: type a target rate: workers and hosts like this one, from the max rate and the
  scalability fit (what `tuner plan` prints).
"""


class HelpScreen(ModalScreen[None]):
    """Keys and how to read the views."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss", "Close"),
    ]

    def __init__(self, text: str = HELP) -> None:
        super().__init__()
        self._text = text

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body", classes="dialog"):
            yield Markdown(self._text)

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


WATCH_HELP = """\
# tuner watch — keys

| key | does |
|---|---|
| `t` | dark / light theme |
| `ctrl+p` | command palette |
| `?` | this help · `q` quit (closes the view; the server goes on serving) |

# Reading the Live view

It reads the server's `GET /metrics` once a second (and `GET /v1/profile` when it connects), and never
sends it a request of its own: what it shows is what the server's clients cause.

* **requests/s**: requests answered per second, every outcome (a refused request is load too); errors/s
  in red when there are any. The orange line is the profile's promise: the highest request rate it
  measured within its p99 objective (`tuner bench --online`).
* **item latency**: p50 and p99 per second, estimated from the latency histogram's bucket counts between
  two scrapes (interpolated inside a bucket, as Prometheus' `histogram_quantile`); the orange line is the
  profile's p99 objective.
* **in flight · workers**: items accepted and not yet answered (left axis), workers loaded (right axis);
  a grey line where the autoscaler resized the pool.
* **p99 vs requests/s**: the profile's measured curve (red) and its confidence band (grey), the objective
  and the max rate (orange), and the last minute's live points on it: a service as profiled sits on
  the curve.
* **drift from the profile**: the server's own verdicts (`tuner_profile_drift`: a sequential test over
  5-s windows, not a threshold), each dimension with the time this view first saw it drift; the
  outside load on the server's host (other processes, share of its usable cores).

A server that does not answer, or is not a tuner server, is said in one line at the top; the view tries
again every second and the charts keep what they had.
"""
