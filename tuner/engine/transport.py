"""Moving partitions to workers and waiting for their answers.

Small partitions are pickled through a socket, large numpy ones go through shared memory, and the
supervisor waits on every worker's socket and process sentinel at once with a :class:`Poller`.

Pickling a 100 MiB array through a pipe took ~800 ms here against ~40 ms through shared memory.
The parent keeps a small pool of reusable segments (created once, grown by powers of two, unlinked
at close), copies a partition in, and sends only ``(name, shape, dtype)``; the worker maps each
segment once and views the rows without a copy. Segments are named ``tuner_<pid>_<n>`` so a test
can tell ours from anyone else's.

On Python < 3.13 attaching to a segment registers it with the resource tracker, and a worker with a
tracker of its own would unlink our segments when it exits: :func:`ensure_tracker` starts the
parent's tracker before any worker, so every worker shares it (and it unlinks whatever is left if
the parent is killed).
"""

from __future__ import annotations

import itertools
import os
import pickle
import select
import socket
import struct
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from multiprocessing import resource_tracker, shared_memory
from multiprocessing.connection import wait
from typing import Any

#: numpy partitions of at least this many bytes travel through shared memory.
SHM_THRESHOLD = 64 * 1024
#: segments are at least this large (rounded up to a power of two) so they can be reused.
MIN_SEGMENT = 1 << 20
#: how many segments a worker keeps mapped.
WORKER_CACHE = 16

PICKLED = 0
SHARED = 1

_counter = itertools.count()


def ensure_tracker() -> None:
    """Start the shared resource tracker before workers start (see module docstring).

    The tracker is handed ``sys.stderr``'s file descriptor; inside a Textual app ``sys.stderr`` is a
    capture object without a real one, so the process's original stderr is lent for the call.
    """
    if sys.platform == "win32":
        return
    current = sys.stderr
    if sys.__stderr__ is None or current is sys.__stderr__:
        resource_tracker.ensure_running()
        return
    sys.stderr = sys.__stderr__
    try:
        resource_tracker.ensure_running()
    finally:
        sys.stderr = current


def _round_up(n: int) -> int:
    return max(MIN_SEGMENT, 1 << (max(n, 1) - 1).bit_length())


class SegmentPool:
    """Parent-side reusable shared-memory segments. Used only from the supervisor thread."""

    def __init__(self) -> None:
        self._free: list[shared_memory.SharedMemory] = []
        self._all: list[shared_memory.SharedMemory] = []

    def pack(self, partition: Any) -> tuple[int, Any, shared_memory.SharedMemory | None]:
        """``(kind, payload, segment)`` for a partition; segment is None when pickled."""
        nbytes = getattr(partition, "nbytes", 0)
        if nbytes < SHM_THRESHOLD or getattr(partition, "dtype", None) is None or partition.dtype.hasobject:
            return PICKLED, partition, None
        seg = self._acquire(nbytes)
        import numpy as np

        view: Any = np.ndarray(partition.shape, dtype=partition.dtype, buffer=seg.buf)
        view[...] = partition
        del view  # no exported buffer may outlive the copy, or the segment could not close
        return SHARED, (seg.name, partition.shape, partition.dtype.str), seg

    def _acquire(self, nbytes: int) -> shared_memory.SharedMemory:
        for i, seg in enumerate(self._free):
            if seg.size >= nbytes:
                return self._free.pop(i)
        name = f"tuner_{os.getpid()}_{next(_counter)}"
        seg = shared_memory.SharedMemory(name=name, create=True, size=_round_up(nbytes))
        self._all.append(seg)
        return seg

    def release(self, seg: shared_memory.SharedMemory | None) -> None:
        if seg is not None:
            self._free.append(seg)

    def close(self) -> None:
        for seg in self._all:
            try:
                seg.close()
            except BufferError:  # pragma: no cover - a view escaped; unlink anyway
                pass
            try:
                seg.unlink()
            except FileNotFoundError:
                pass
        self._all.clear()
        self._free.clear()


class Attachments:
    """Worker-side: segments mapped once and kept (LRU), rows viewed without a copy."""

    def __init__(self) -> None:
        self._maps: OrderedDict[str, shared_memory.SharedMemory] = OrderedDict()

    def view(self, payload: tuple[str, tuple[int, ...], str]) -> Any:
        import numpy as np

        name, shape, dtype = payload
        seg = self._maps.get(name)
        if seg is None:
            seg = _attach(name)
            self._maps[name] = seg
            while len(self._maps) > WORKER_CACHE:
                _, old = self._maps.popitem(last=False)
                try:
                    old.close()
                except BufferError:  # a model kept a view of its input; the mapping goes with the process
                    pass
        else:
            self._maps.move_to_end(name)
        return np.ndarray(shape, dtype=np.dtype(dtype), buffer=seg.buf)


def _attach(name: str) -> shared_memory.SharedMemory:
    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)  # type: ignore[call-arg,unused-ignore]
    return shared_memory.SharedMemory(name=name)


# -- framed messages over a socket pair ---------------------------------------------------------------
# multiprocessing.Connection costs one syscall per message each way (two to receive: header, body).
# With tiny partitions that is the engine's whole cost, and every syscall hands the GIL to the
# caller's thread and back. Frames (8-byte length + pickle) let the supervisor send every partition
# queued for a worker in one write and take every result waiting in one read; its socket is
# non-blocking, so a worker busy with a long partition can never stall the supervisor.
_HEADER = struct.Struct("!Q")
_READ_CHUNK = 1 << 18


def encode(msg: Any) -> bytes:
    data = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _decode_frames(buf: bytearray, out: list[Any]) -> None:
    """Move every complete frame at the head of ``buf`` into ``out`` (decoded)."""
    pos = 0
    size = len(buf)
    with memoryview(buf) as view:
        while size - pos >= 8:
            (n,) = _HEADER.unpack_from(buf, pos)
            if size - pos - 8 < n:
                break
            out.append(pickle.loads(view[pos + 8 : pos + 8 + n]))
            pos += 8 + n
    if pos:
        del buf[:pos]


class Channel:
    """The supervisor's end of a worker's socket: buffered, non-blocking, batched."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._out = bytearray()
        self._in = bytearray()

    def fileno(self) -> int:
        return self.sock.fileno()

    def queue(self, msg: Any) -> None:
        """Add a message to the next flush."""
        self._out += encode(msg)

    @property
    def pending(self) -> bool:
        return bool(self._out)

    def flush(self) -> bool:
        """Write what the socket takes now; True when nothing is left. Raises OSError if the peer is gone."""
        out = self._out
        while out:
            try:
                n = self.sock.send(out)
            except BlockingIOError:
                return False
            del out[:n]
        return True

    def receive(self) -> list[Any]:
        """Every complete message available now (maybe none). Raises EOFError when the peer closed."""
        while True:
            try:
                chunk = self.sock.recv(_READ_CHUNK)
            except BlockingIOError:
                break
            except ConnectionResetError:
                raise EOFError from None
            if not chunk:
                if self._in:
                    break  # deliver what is complete first; EOF shows again on the next read
                raise EOFError
            self._in += chunk
            if len(chunk) < _READ_CHUNK:
                break
        msgs: list[Any] = []
        _decode_frames(self._in, msgs)
        return msgs

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class WorkerChannel:
    """The worker's end: blocking reads of whole frames; results of tiny partitions sent in batches.

    A result may wait (``defer``) only while more partitions are already queued here and for at most
    ``BATCH_RESULTS_S``: the parent then wakes once for several results instead of once per result.
    """

    BATCH_RESULTS_S = 0.001

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock
        self._in = bytearray()
        self._ready: deque[Any] = deque()
        self._out = bytearray()
        self._out_since = 0.0

    def recv(self) -> Any:
        if not self._ready and self._out:
            self.flush()  # about to block: nothing may wait behind us
        while not self._ready:
            chunk = self.sock.recv(_READ_CHUNK)
            if not chunk:
                raise EOFError
            self._in += chunk
            msgs: list[Any] = []
            _decode_frames(self._in, msgs)
            self._ready.extend(msgs)
        return self._ready.popleft()

    def send(self, msg: Any, defer: bool = False) -> None:
        if not self._out:
            self._out_since = time.perf_counter()
        self._out += encode(msg)
        if (
            not defer
            or not self._ready
            or len(self._out) > _READ_CHUNK
            or time.perf_counter() - self._out_since > self.BATCH_RESULTS_S
        ):
            self.flush()

    def flush(self) -> None:
        if self._out:
            self.sock.sendall(self._out)
            self._out.clear()


# -- waiting ------------------------------------------------------------------------------------------
class Poller:
    """Waits on the supervisor's sockets and sentinels: a persistent poll set where the OS has poll()
    (multiprocessing.connection.wait builds a new selector on every call — a cost per partition),
    else connection.wait (Windows: sockets and process handles).

    :meth:`assign` takes ``(waitable, what)`` pairs — a waitable is an int fd or has ``fileno()`` —
    and :meth:`wait` returns the ``what`` of each ready one. The fds are read once, at assign: a
    waitable closed later (a dead worker's socket) is never asked for its fd again, it is only
    dropped at the next assign.
    """

    def __init__(self) -> None:
        self._entries: list[tuple[Any, Any]] = []
        self._by_fd: dict[int, Any] = {}
        self._fd_of: dict[int, int] = {}  # id(waitable) -> fd, for want_write
        self._poll = select.poll() if hasattr(select, "poll") else None
        self._writers: frozenset[int] = frozenset()

    def assign(self, entries: Iterable[tuple[Any, Any]]) -> None:
        """Wait on exactly these from now on (replaces the previous set)."""
        self._entries = list(entries)
        if self._poll is None:
            return
        for fd in self._by_fd:
            self._poll.unregister(fd)
        self._by_fd = {}
        self._fd_of = {}
        for obj, what in self._entries:
            fd = obj if isinstance(obj, int) else obj.fileno()
            self._by_fd[fd] = what
            self._fd_of[id(obj)] = fd
            self._poll.register(fd, select.POLLIN | (select.POLLOUT if fd in self._writers else 0))

    def want_write(self, waitables: Iterable[Any]) -> None:
        """Also wake when these (assigned) waitables can take more output (a worker's socket was full)."""
        fds = frozenset(self._fd_of[id(o)] for o in waitables if id(o) in self._fd_of)
        if fds == self._writers:
            return
        changed = fds ^ self._writers
        self._writers = fds
        if self._poll is not None:
            for fd in changed:
                if fd in self._by_fd:
                    self._poll.modify(fd, select.POLLIN | (select.POLLOUT if fd in fds else 0))

    def wait(self, timeout: float | None) -> list[Any]:
        """The ``what`` of every waitable ready within ``timeout`` seconds (None: no limit)."""
        if self._poll is None:
            whats = {id(o): w for o, w in self._entries}
            return [whats[id(o)] for o in wait([o for o, _ in self._entries], timeout) if id(o) in whats]
        ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
        by_fd = self._by_fd
        return [by_fd[fd] for fd, _ in self._poll.poll(ms) if fd in by_fd]
