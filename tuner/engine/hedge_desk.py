"""Hedging at work: the supervisor's side of :mod:`tuner.engine.hedging` (which stays pure).

The :class:`~tuner.engine.hedging.Hedger` decides *which* straggler gets a second copy and keeps the
budget; the desk sends the copy to an idle worker, settles the race when one copy ends, and — with
``hedge_cancel="kill"`` — ends the losing straggler's worker. It runs on the supervisor's thread,
called from its loop: nothing here is locked.
"""

from __future__ import annotations

from collections.abc import Callable

from tuner.engine import events as ev
from tuner.engine.handles import WorkerHandle
from tuner.engine.hedging import Hedger
from tuner.engine.ledger import Ledger, Part
from tuner.engine.workers import WorkerManager

__all__ = ["HedgeDesk"]


class HedgeDesk:
    """Second copies of stragglers, sent and settled (see the module docstring)."""

    def __init__(
        self,
        hedger: Hedger,
        workers: WorkerManager,
        ledger: Ledger,
        cancel: str,
        emitter: ev.Emitter,
        send: Callable[[WorkerHandle, Part], None],
    ) -> None:
        self.hedger = hedger
        self.workers = workers
        self.ledger = ledger
        self.cancel = cancel
        self._listener = emitter.listener
        self._emit = emitter.emit
        self._send = send  # the supervisor's: a partition onto a worker's queue

    def send_copies(self, now: float) -> None:
        """Send a second copy of the longest-running straggler(s) to idle workers, within the budget."""
        hedger = self.hedger
        assert hedger is not None
        idle = self.workers.idle()
        if not idle:
            return
        running = self.workers.running()
        while idle:
            choice = hedger.pick(running, now)
            if choice is None:
                return
            original, part = choice
            target = idle.pop()
            hedger.sent_copy(part, original, target)
            part.copy = 1  # read by the handle as it sends: the worker draws faults as a hedge copy
            try:
                self._send(target, part)
            finally:
                part.copy = 0
            if self._listener is not None:
                self._emit(
                    ev.PartitionHedged(
                        now,
                        part.id,
                        target.wid,
                        original.wid,
                        part.attempt + 1,
                        part.n,
                        now - original.t_head,
                        hedger.sent,
                        hedger.completed,
                    )
                )

    def ended(self, w: WorkerHandle, part: Part, decided: bool, now: float) -> None:
        """A copy of a hedged part ended on ``w``; when it won, the loser is cancelled."""
        hedger = self.hedger
        assert hedger is not None
        settled = hedger.ended(part, w, decided)
        if settled is None:
            return
        loser = settled.loser
        # "kill" ends only a losing first copy, the straggler: a losing hedge copy started a moment
        # ago and ends about as soon as a replacement worker could load the model.
        killed = (
            loser is not None
            and settled.hedge_won
            and self.cancel == "kill"
            and self._kill_loser(loser, part, now)
        )
        if self._listener is not None:
            self._emit(
                ev.HedgeSettled(
                    now, part.id, w.wid, loser.wid if loser is not None else -1, settled.hedge_won, killed
                )
            )

    def _kill_loser(self, w: WorkerHandle, part: Part, now: float) -> bool:
        """hedge_cancel="kill": end the loser's worker now and replace it; what it held goes back.
        A worker that cannot be killed (a thread) finishes instead."""
        if not w.can_kill or w.cause is not None or not w.inflight or w.inflight[0] is not part:
            return False
        self.workers.kill(w, "hedged", now)
        w.inflight.popleft()
        self.ledger.failed(part, "hedged", "a hedge copy won", now)  # ignored: it has its outcome
        assert self.hedger is not None
        self.hedger.ended(part, w, False, killed=True)
        while w.inflight:  # what it held besides never started: back to the queue, no attempt
            queued = w.inflight.pop()
            self.ledger.put_back(queued)
            if self.hedger.hedged(queued):
                self.ended(w, queued, False, now)
        self.workers.replace(w, counted=False)  # a hedge's loser is no failure
        return True
