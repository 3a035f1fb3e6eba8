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

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body", classes="dialog"):
            yield Markdown(HELP)

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)
