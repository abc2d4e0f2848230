"""A connected byte-stream socket over an OS fd: what TCP and IPC connections share.

Both are libdill byte streams (bsock_type) over a non-blocking stream socket,
with the same rules (reference section 0):

- All or nothing: bsend sends every byte or fails; brecv fills the whole
  buffer or fails, and what it had received is lost.
- Every call first tries the system call, and waits only when it would
  block: what can complete at once succeeds whatever the deadline and even in
  a canceled coroutine. A wait uses the socket's own read or write watcher,
  made once, and arms a timer only when there is a deadline.
- Errors latch per direction. A failed send (timed out, canceled, broken, or
  interrupted by a foreign exception such as gevent.Timeout) breaks sending:
  later sends and done fail with ECONNRESET. End of stream makes every later
  receive fail with EPIPE; any other failed receive makes them fail with
  ECONNRESET. A receive timeout does not break sending. Check order: EBUSY
  (another coroutine is in the same direction; it does not latch), EPIPE
  (done, or end of stream seen), ECONNRESET (latched).
- done shuts the sending side down (the peer reads everything, then EPIPE).
  The orderly close (tcp_close, ipc_close) is done, then reading until the
  peer's end of stream; hclose is the hard close, at once.
- Closing the handle while a coroutine waits on it wakes that coroutine with
  EBADF (libdill asserts here).

The object is also its own storage (tcp_storage(), ipc_storage()): a closed
one can be opened again; `generation` tells a woken waiter whether the
object it was using is still the same connection.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from _socket import socket as _socket
from collections.abc import Sequence
from contextlib import suppress
from time import monotonic_ns
from typing import Any, Callable, Optional, Protocol, Union

from gevent.monkey import get_original
from greenlet import getcurrent

from ._errors import error
from ._fd import ready_now
from ._handles import check_storage, hclose, lookup, new_handle, release
from ._iface import RecvItem, bsock_type, bsock_vfs, byte_view, fast_bsocks
from ._scheduler import (
    CANCEL,
    TIMEOUT,
    Context,
    Coroutine,
    Waiter,
    cannot_block,
    check_can_block,
    context,
    park,
    switch,
    wake,
)
from ._time import check_deadline

__all__ = [
    "FdOrSocket",
    "SocketLike",
    "StreamSocket",
    "Watched",
    "accept_fd",
    "adopt_fd",
    "check_storage",
    "close_fd",
    "close_in_order",
    "close_stream",
    "done_stream",
    "handle_from_fd",
    "recv_error",
    "register_fast_bsock",
    "send_error",
    "syscall_error",
]

_EV_READ = 1
_EV_WRITE = 2
# SO_LINGER on, timeout 0: close() sends a reset and drops unsent data.
_LINGER_RESET = struct.pack("ii", 1, 0)
# Received and dropped in chunks of at most this many bytes (brecvl's skips).
_SKIP_CHUNK = 65536
# Receives after a send that wait before their first try, once one such try
# failed (see StreamSocket._skip_try).
_SKIPS = 15

#: os.close as the kernel does it. Under monkey.patch_all(), gevent (25.8.1 and
#: later) defers os.close to the loop's next iteration, and the fd number stays
#: valid until then; libdill's rule is that an fd handed over is closed by the
#: time the call returns.
close_fd = get_original("os", "close")


class Watched:
    """An fd with its read and write watchers, and who waits on them.

    Base of every greendill object over an OS socket (connections and
    listeners): `wait_readable`/`wait_writable` are the only way they wait,
    and `forget` wakes the waiters with EBADF before the fd goes.
    """

    __slots__ = (
        "ctx",
        "generation",
        "is_open",
        "rdeadline",
        "reader",
        "rtimer",
        "rtimer_at",
        "rwaiter",
        "rwatcher",
        "sock",
        "wdeadline",
        "writer",
        "wtimer",
        "wtimer_at",
        "wwaiter",
        "wwatcher",
    )

    def __init__(self) -> None:
        self.sock: Any = None
        # The context of the thread whose handle table holds this object.
        self.ctx: Any = None
        self.is_open = False
        self.generation = 0
        # The read and write watchers, made on the first wait in their
        # direction: an idle connection, or one that never fills the send
        # buffer, costs no watcher (about 120 bytes each).
        self.rwatcher: Any = None
        self.wwatcher: Any = None
        self.reader: Optional[Waiter] = None
        self.writer: Optional[Waiter] = None
        # One reusable waiter per direction for greenlets that are not
        # coroutines (a coroutine is its own), made when first needed: EBUSY
        # allows one at a time.
        self.rwaiter: Optional[Waiter] = None
        self.wwaiter: Optional[Waiter] = None
        # Deadlines use one lazy timer per direction (see _wait): the deadline
        # of the current wait, the timer, and the deadline it is armed for
        # (-1: not armed).
        self.rdeadline = self.wdeadline = -1
        self.rtimer: Any = None
        self.wtimer: Any = None
        self.rtimer_at = self.wtimer_at = -1

    def adopt(self, c: Context, sock: _socket) -> None:
        """Take ownership of sock (non-blocking from now on)."""
        sock.setblocking(False)
        self.sock = sock
        self.ctx = c
        self.is_open = True
        self.generation += 1

    def forget(self, c: Context) -> None:
        """Wake the waiters with EBADF, stop the watchers, close the socket."""
        for w in (self.reader, self.writer):
            if w is not None and not w.done:
                wake(c, w, errno.EBADF)
        self.reader = self.writer = None
        for watcher in (self.rwatcher, self.wwatcher, self.rtimer, self.wtimer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self.rwatcher = self.wwatcher = self.rtimer = self.wtimer = None
        self.rtimer_at = self.wtimer_at = -1
        self.is_open = False
        self.generation += 1
        sock, self.sock = self.sock, None
        sock.close()

    def wait_readable(self, deadline: int, function: str) -> None:
        """Wait until the socket is readable; raise ETIMEDOUT, ECANCELED, EBADF or EBUSY."""
        self._wait(True, deadline, function)

    def wait_writable(self, deadline: int, function: str) -> None:
        """Wait until the socket is writable; raise ETIMEDOUT, ECANCELED, EBADF or EBUSY."""
        self._wait(False, deadline, function)

    def _wait(self, reading: bool, deadline: int, function: str) -> None:
        c = self.ctx
        cur: Any = getcurrent()
        if c.nonblocking and cannot_block(c, cur):
            raise error(errno.ECANCELED, function)
        if (self.reader if reading else self.writer) is not None:
            # One waiter per direction (libdill's fdin: EBUSY). Connections
            # check their rbusy/sbusy first; this guards the listeners, whose
            # second accept would otherwise take over the watcher and strand
            # the first one for good.
            raise error(errno.EBUSY, function)
        if deadline == -1:
            if reading:
                self.rdeadline = -1
            else:
                self.wdeadline = -1
        elif deadline < 0:  # any other negative number also waits forever
            check_deadline(deadline, function)
            if reading:
                self.rdeadline = -1
            else:
                self.wdeadline = -1
        else:
            if deadline.__class__ is not int:
                check_deadline(deadline, function)
            # expired(deadline), written out: every call with a deadline passes here.
            if deadline == 0 or deadline * 1_000_000 <= monotonic_ns():
                # Readiness wins over an expired deadline (libdill polls
                # with a zero timeout): a loopback connect completes so.
                if ready_now(self.sock.fileno(), _EV_READ if reading else _EV_WRITE):
                    return
                raise error(errno.ETIMEDOUT, function)
            # The lazy timer: armed only when this wait's deadline is earlier
            # than the one it is armed for, and left armed when the wait ends
            # (ref=False, so it keeps no loop alive). When it fires it checks
            # the deadline of the wait in progress, if any, and re-arms for it
            # (_timer_fired): a stream of calls with ever later deadlines costs
            # no timer calls.
            if reading:
                self.rdeadline = deadline
                if not 0 <= self.rtimer_at <= deadline:
                    _start_timer(c, self, True, deadline)
            else:
                self.wdeadline = deadline
                if not 0 <= self.wtimer_at <= deadline:
                    _start_timer(c, self, False, deadline)
        w: Any
        if cur.__class__ is Coroutine:
            w = cur
        else:
            w = self.rwaiter if reading else self.wwaiter
            if w is None:
                w = Waiter(cur)
                if reading:
                    self.rwaiter = w
                else:
                    self.wwaiter = w
            w.g = cur
        w.done = False
        generation = self.generation
        if reading:
            self.reader = w
            watcher = self.rwatcher
            if watcher is None:
                watcher = self.rwatcher = c.loop.io(self.sock.fileno(), _EV_READ)
        else:
            self.writer = w
            watcher = self.wwatcher
            if watcher is None:
                watcher = self.wwatcher = c.loop.io(self.sock.fileno(), _EV_WRITE)
        # The watcher switches straight into the waiting greenlet: nothing
        # else can end this wait once it fires, since whatever else does
        # (the timer, hclose's EBADF, a cancel) stops the watcher first or
        # latches w.done before it resumes.
        watcher.start(switch, cur, None)  # switch(cur, None): no bound method to make
        try:
            outcome = park(c, w)
        finally:
            if self.generation == generation:
                watcher.stop()
                if reading:
                    self.reader = None
                else:
                    self.writer = None
        if outcome is None:
            return
        if outcome is TIMEOUT:
            raise error(errno.ETIMEDOUT, function)
        if outcome is CANCEL:
            raise error(errno.ECANCELED, function)
        raise error(outcome, function)  # EBADF: closed while waiting


def _start_timer(c: Context, owner: Watched, reading: bool, deadline: int) -> None:
    # A libev timer's delay is fixed when it is made: a new one each time.
    old = owner.rtimer if reading else owner.wtimer
    if old is not None:
        old.stop()
    delay = (deadline * 1_000_000 - monotonic_ns()) / 1e9
    timer = c.loop.timer(delay if delay > 0.0 else 0.0, 0.0, ref=False)
    # update=True: libev's cached loop time would fire the timer early.
    timer.start(_timer_fired, c, owner, reading, update=True)
    if reading:
        owner.rtimer, owner.rtimer_at = timer, deadline
    else:
        owner.wtimer, owner.wtimer_at = timer, deadline


def _timer_fired(c: Context, owner: Watched, reading: bool) -> None:
    # Runs in the hub.
    if reading:
        owner.rtimer_at = -1
        w, deadline = owner.reader, owner.rdeadline
    else:
        owner.wtimer_at = -1
        w, deadline = owner.writer, owner.wdeadline
    if w is None or w.done or deadline < 0:
        return
    if monotonic_ns() >= deadline * 1_000_000:
        w.done = True
        w.g.switch(TIMEOUT)
    else:
        _start_timer(c, owner, reading, deadline)


class StreamSocket(Watched, bsock_vfs):
    """A connected stream socket: the byte-stream object of TCP and IPC connections."""

    __slots__ = (
        "indone",
        "inerr",
        "outdone",
        "outerr",
        "pending",
        "rbusy",
        "sbusy",
        "scratch",
        "sent",
        "skips",
    )

    #: The type id a subclass answers besides bsock_type (tcp_type, ipc_type).
    type_id: object = None
    #: Whether hclose resets the connection (TCP) rather than just closing it.
    hard_close_resets = False

    def __init__(self) -> None:
        super().__init__()
        self.reset_state()
        self.scratch: Optional[bytearray] = None

    def reset_state(self) -> None:
        self.inerr = self.indone = self.outerr = self.outdone = False
        self.rbusy = self.sbusy = False
        # Bytes a layer above read ahead and gave back (bunrecv): every
        # receive takes them first.
        self.pending: Optional[bytes] = None
        # The guess of _skip_try: whether the last call was a send, and for
        # how many more receives after a send to skip the first try.
        self.sent = False
        self.skips = 0

    def open(self, c: Context, sock: _socket) -> None:
        """Start being the connection over sock."""
        self.reset_state()
        self.adopt(c, sock)

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is bsock_type or type is self.type_id:
            return self
        return None

    def close(self) -> None:
        """The hard close: at once, unsent data dropped (TCP peers see a reset)."""
        if self.hard_close_resets:
            with suppress(OSError):  # already broken: nothing left to reset
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.forget(context())

    # Sending.

    def _begin_send(self, function: str) -> None:
        if self.sbusy:
            raise error(errno.EBUSY, function)
        if self.outdone:
            raise error(errno.EPIPE, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)

    def bsend(self, data: Any, deadline: int) -> None:
        if self.sbusy or self.outdone or self.outerr:
            self._begin_send("bsend")
        if data.__class__ is not bytes and data.__class__ is not bytearray:
            data = byte_view(data, "bsend")
        self.sbusy = True
        self.sent = True
        generation = self.generation
        try:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent != len(data):
                self._send_rest(memoryview(data)[sent:], deadline, "bsend")
        except BaseException as exc:
            if self.generation == generation:
                self.outerr = True
            raise send_error(exc, "bsend") from None
        finally:
            if self.generation == generation:
                self.sbusy = False

    def _send_rest(self, view: memoryview, deadline: int, function: str) -> None:
        send = self.sock.send
        while view:
            self._wait(False, deadline, function)
            try:
                sent = send(view)
            except BlockingIOError:
                continue
            view = view[sent:]

    def bsendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self._begin_send("bsendl")
        views = [byte_view(b, "bsendl") for b in buffers]
        self.sbusy = True
        generation = self.generation
        try:
            total = sum(v.nbytes for v in views)
            try:
                sent = self.sock.sendmsg(views)
            except BlockingIOError:
                sent = 0
            while sent < total:
                views = _advance(views, sent)
                total -= sent
                self.wait_writable(deadline, "bsendl")
                try:
                    sent = self.sock.sendmsg(views)
                except BlockingIOError:
                    sent = 0
        except BaseException as exc:
            if self.generation == generation:
                self.outerr = True
            raise send_error(exc, "bsendl") from None
        finally:
            if self.generation == generation:
                self.sbusy = False

    # Receiving.

    def _begin_recv(self, function: str) -> None:
        if self.rbusy:
            raise error(errno.EBUSY, function)
        if self.pending:
            return  # given back before the end of stream or an error: still to be read
        if self.indone:
            raise error(errno.EPIPE, function)
        if self.inerr:
            raise error(errno.ECONNRESET, function)

    def _skip_try(self, deadline: int) -> bool:
        """Whether a receive right after a send should wait before its first try.

        The first try of a receive that follows a send (a request, then its
        response) usually fails: the peer has not answered yet, and the
        failure costs a system call and a BlockingIOError, 15-20% of a
        ping-pong round trip. Once such a try has failed, the next _SKIPS
        receives after a send wait for readiness first, then the next one
        tries again, to notice when the guess stops being right. Never with
        deadline 0, nor while a greenlet of the thread is canceled: those
        calls must succeed if the data is there, without waiting. (Data that
        is there anyway costs one pass through the hub, and an expired
        deadline still polls: readiness wins.)
        """
        if self.skips and deadline and not self.ctx.nonblocking:
            self.sent = False
            self.skips -= 1
            return True
        return False

    def _tried(self, failed: bool) -> None:
        # The first try of a receive after a send: remember how it went.
        self.sent = False
        self.skips = _SKIPS if failed else 0

    def brecv_into(self, buffer: Any, deadline: int) -> None:
        if self.rbusy or self.indone or self.inerr or self.pending:
            self._begin_recv("brecv")
        # recv_into takes a bytearray as it is: a view is made and released
        # only for what a first receive leaves to fill, not on every call.
        view: Any = buffer if buffer.__class__ is bytearray else _writable(buffer, "brecv")
        if self.pending:
            view = _writable(view, "brecv")
            view = view[self._take_pending(view) :]
            if not view:
                return
            if self.indone or self.inerr:
                self._begin_recv("brecv")
        self.rbusy = True
        generation = self.generation
        try:
            if self.sent and self._skip_try(deadline):
                got = -1
            else:
                try:
                    got = self.sock.recv_into(view)
                except BlockingIOError:
                    got = -1
                if self.sent:
                    self._tried(got == -1)
            if got != len(view):
                self._recv_rest(memoryview(view), got, deadline, "brecv")
        except BaseException as exc:
            self._recv_failed(exc, generation)
            raise recv_error(exc, "brecv") from None
        finally:
            if self.generation == generation:
                self.rbusy = False

    def brecv(self, size: int, deadline: int) -> bytes:
        # recv(size) returns the bytes themselves: no buffer, no copy. (Only
        # up to _SKIP_CHUNK: recv(n) allocates n bytes on every call.)
        if size > _SKIP_CHUNK or self.pending:
            return bsock_vfs.brecv(self, size, deadline)
        if self.rbusy or self.indone or self.inerr:
            self._begin_recv("brecv")
        self.rbusy = True
        generation = self.generation
        try:
            if self.sent and self._skip_try(deadline):
                data = None
            else:
                try:
                    data = self.sock.recv(size)
                except BlockingIOError:
                    data = None
                if self.sent:
                    self._tried(data is None)
                if data is not None and len(data) == size:
                    return data  # type: ignore[no-any-return]
            # The rest of the call, where it waits: pieces until size bytes.
            chunks = None
            if data is not None:
                if not data:
                    raise _EndOfStream()
                chunks = [data]
                size -= len(data)
            recv = self.sock.recv
            while True:
                self._wait(True, deadline, "brecv")
                try:
                    data = recv(size)
                except BlockingIOError:
                    continue
                if not data:
                    raise _EndOfStream()
                if len(data) == size:
                    if chunks is None:
                        return data  # type: ignore[no-any-return]
                    chunks.append(data)
                    return b"".join(chunks)
                if chunks is None:
                    chunks = [data]
                else:
                    chunks.append(data)
                size -= len(data)
        except BaseException as exc:
            self._recv_failed(exc, generation)
            raise recv_error(exc, "brecv") from None
        finally:
            if self.generation == generation:
                self.rbusy = False

    def _recv_rest(self, view: memoryview, got: int, deadline: int, function: str) -> None:
        # got: what the first recv_into returned, -1 when it would have blocked.
        recv_into = self.sock.recv_into
        while True:
            if got == 0 and view.nbytes:
                raise _EndOfStream()
            if got > 0:
                view = view[got:]
                if not view:
                    return
            self.wait_readable(deadline, function)
            try:
                got = recv_into(view)
            except BlockingIOError:
                got = -1

    def brecvl(self, buffers: Sequence[RecvItem], deadline: int) -> None:
        self._begin_recv("brecvl")
        self.sent = False  # a receive, so the next one does not follow a send
        views: list[Any] = []
        for item in buffers:
            if isinstance(item, int):
                if item < 0:
                    raise error(errno.EINVAL, "brecvl")
                views.append(item)
            else:
                views.append(_writable(item, "brecvl"))
        if self.pending:
            views = self._fill_from_pending(views)
            if views and (self.indone or self.inerr):
                self._begin_recv("brecvl")
        self.rbusy = True
        generation = self.generation
        try:
            for item in views:
                if isinstance(item, int):
                    self._skip(item, deadline)
                elif item.nbytes:
                    self._recv_rest(item, self._try_recv(item), deadline, "brecvl")
        except BaseException as exc:
            self._recv_failed(exc, generation)
            raise recv_error(exc, "brecvl") from None
        finally:
            if self.generation == generation:
                self.rbusy = False

    def brecv_some(self, buffer: Any, deadline: int) -> int:
        self._begin_recv("brecv_some")
        view = _writable(buffer, "brecv_some")
        if not view.nbytes:
            return 0
        if self.pending:
            return self._take_pending(view)
        self.sent = False  # a receive, so the next one does not follow a send
        self.rbusy = True
        generation = self.generation
        try:
            while True:
                try:
                    got = self.sock.recv_into(view)
                except BlockingIOError:
                    self._wait(True, deadline, "brecv_some")
                    continue
                if not got:
                    raise _EndOfStream()
                return int(got)
        except BaseException as exc:
            self._recv_failed(exc, generation)
            raise recv_error(exc, "brecv_some") from None
        finally:
            if self.generation == generation:
                self.rbusy = False

    def bunrecv(self, data: Any) -> None:
        """Put data back in front of the receiving side (see _iface)."""
        if len(data):
            self.pending = bytes(data) + (self.pending or b"")

    def _take_pending(self, view: memoryview) -> int:
        # Move what fits of the given-back bytes into view; return how many.
        pending = self.pending
        assert pending is not None
        n = min(len(pending), view.nbytes)
        view[:n] = pending[:n]
        self.pending = pending[n:] or None
        return n

    def _fill_from_pending(self, items: list[Any]) -> list[Any]:
        # brecvl's items (views, and ints to drop) with the given-back bytes
        # taken off their front.
        while items and self.pending:
            item = items[0]
            if isinstance(item, int):
                dropped = min(item, len(self.pending))
                self.pending = self.pending[dropped:] or None
                rest: Any = item - dropped
            else:
                rest = item[self._take_pending(item) :]
            if rest:
                items[0] = rest
            else:
                items.pop(0)
        return items

    def _try_recv(self, view: memoryview) -> int:
        try:
            return int(self.sock.recv_into(view))
        except BlockingIOError:
            return -1

    def _skip(self, size: int, deadline: int) -> None:
        if self.scratch is None:
            self.scratch = bytearray(_SKIP_CHUNK)
        scratch = memoryview(self.scratch)
        while size:
            chunk = scratch[: min(size, _SKIP_CHUNK)]
            self._recv_rest(chunk, self._try_recv(chunk), deadline, "brecvl")
            size -= chunk.nbytes

    def _recv_failed(self, exc: BaseException, generation: int) -> None:
        if self.generation != generation:
            return  # closed meanwhile: the object is not ours to mark
        if isinstance(exc, _EndOfStream):
            self.indone = True
        else:
            self.inerr = True

    # Half-close and orderly close.

    def done(self, function: str) -> None:
        """Shut the sending side down (tcp_done, ipc_done)."""
        if self.outdone:
            raise error(errno.EPIPE, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.outerr = True
            raise send_error(exc, function) from None
        self.outdone = True

    def drain(self, deadline: int, function: str) -> None:
        """The orderly close's first part: done, then read until the peer's end of stream.

        Raises ECONNRESET if an error was latched or the peer resets,
        ETIMEDOUT or ECANCELED if the end of stream does not come in time.
        The caller closes the socket whatever happens.
        """
        if self.inerr or self.outerr:
            raise error(errno.ECONNRESET, function)
        if not self.outdone:
            self.done(function)
        self.pending = None
        if self.indone:
            return
        if self.scratch is None:
            self.scratch = bytearray(_SKIP_CHUNK)
        recv_into = self.sock.recv_into
        scratch = self.scratch
        while True:
            try:
                if recv_into(scratch) == 0:
                    self.indone = True
                    return
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                raise recv_error(exc, function) from None
            self.wait_readable(deadline, function)


# TCP's and IPC's connection classes answer query(bsock_type) with themselves.
def register_fast_bsock(cls: type) -> type:
    """Class decorator: the generic byte-stream calls may skip cls's query."""
    fast_bsocks.add(cls)
    return cls


class _EndOfStream(Exception):
    """The peer closed its sending side before the buffer was full."""


def _writable(buffer: Any, function: str) -> memoryview:
    view = memoryview(buffer)
    if view.readonly:
        raise error(errno.EINVAL, function)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _advance(views: list[memoryview], sent: int) -> list[memoryview]:
    # Drop the first sent bytes of views.
    while sent:
        head = views[0]
        if sent >= head.nbytes:
            sent -= head.nbytes
            views.pop(0)
        else:
            views[0] = head[sent:]
            sent = 0
    return views


def send_error(exc: BaseException, function: str) -> BaseException:
    """Translate a failed send: the peer gone (EPIPE, ENOTCONN) is libdill's ECONNRESET."""
    if isinstance(exc, OSError) and not isinstance(exc, BlockingIOError):
        code = exc.errno
        if code in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
            return error(errno.ECONNRESET, function)
    return exc


def recv_error(exc: BaseException, function: str) -> BaseException:
    """Translate a failed receive: end of stream is EPIPE, a reset ECONNRESET."""
    if isinstance(exc, _EndOfStream):
        return error(errno.EPIPE, function)
    # (No EPIPE here: receiving never gets it from the kernel, and
    # greendill's own EPIPE, end of stream, must stay what it is.)
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.ENOTCONN):
        return error(errno.ECONNRESET, function)
    return exc


def close_in_order(c: Context, s: int, obj: StreamSocket) -> None:
    """Release handle s and close obj without a reset: the orderly close's end."""
    release(c, s)
    obj.forget(c)


# What the transports (_ipc, _tcp) share ------------------------------------------


def syscall_error(exc: OSError, function: str, address: Any = None) -> OSError:
    """The OSError of a failed system call, as greendill raises it."""
    return error(exc.errno or errno.EIO, function, None if address is None else _name(address))


def _name(address: Any) -> str:
    # What an error shows as the address: a path as it is, an ipaddr as its repr.
    if isinstance(address, (str, bytes)):
        return os.fsdecode(address)
    return repr(address)


def accept_fd(listener: Watched, deadline: int, function: str) -> tuple[int, Any]:
    """Accept a connection on listener: (fd, peer address), waiting if need be.

    Connections aborted before they were accepted are skipped, as in libdill.
    """
    while True:
        try:
            return listener.sock._accept()  # type: ignore[no-any-return]
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno != errno.ECONNABORTED:
                raise syscall_error(exc, function) from None
            continue
        listener.wait_readable(deadline, function)


class SocketLike(Protocol):
    """A socket object that tcp_fromfd and its kin take over, as they take an fd.

    socket.socket (gevent's, under monkeypatching), _socket.socket, or any
    object with these two methods.
    """

    def fileno(self) -> int: ...  # pragma: no cover (a protocol)

    def close(self) -> None: ...  # pragma: no cover


#: What the fromfd calls accept: an fd number or a socket object.
FdOrSocket = Union[int, SocketLike]


def adopt_fd(
    fd: FdOrSocket,
    families: tuple[int, ...],
    listening: bool,
    function: str,
    kind: int = socket.SOCK_STREAM,
    release: Callable[[int], None] = close_fd,
) -> Any:
    """Check that fd is a socket of families and kind in the right state; return it.

    The socket is dup()ed and, once it passed the checks, the caller's is
    closed (libdill's rule): the new handle owns the socket. An fd number is
    let go at once, by release (close_fd; the mm_ipc_* fds also drop the
    state greendill keeps for them); a socket object through its close(),
    which leaves it closed (fileno() -1), wakes whoever waits on it
    (gevent's socket), and leaves the socket itself open for as long as a
    makefile() object of it is. When a check fails, the caller's fd or
    object is left as it was.
    """
    owner: Optional[SocketLike] = None
    if isinstance(fd, int):
        number = fd
    elif callable(getattr(fd, "fileno", None)) and callable(getattr(fd, "close", None)):
        owner = fd
        number = fd.fileno()
    else:
        raise TypeError(f"{function}: fd is an int or a socket object, not {type(fd).__name__}")
    try:
        copy = os.dup(number)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    try:
        probe = _socket(fileno=copy)
    except OSError as exc:
        close_fd(copy)
        if exc.errno == errno.ENOTSOCK:
            raise error(errno.EINVAL, function) from None
        raise syscall_error(exc, function) from None
    try:
        accepting = bool(probe.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
        right_kind = probe.family in families and probe.type == kind
        if not right_kind or accepting != listening:
            raise error(errno.EINVAL, function)
        if not listening:
            try:
                probe.getpeername()
            except OSError:
                raise error(errno.EINVAL, function) from None  # not connected
    except BaseException:
        probe.close()
        raise
    if owner is None:
        release(number)
    else:
        owner.close()
    return probe


def handle_from_fd(fd: FdOrSocket, mem: Watched, families: tuple[int, ...], function: str) -> int:
    """tcp_fromfd, ipc_listener_fromfd, ...: adopt fd (see adopt_fd) into mem, make its handle.

    A listener storage takes a listening socket, a connection storage a connected one.
    """
    c = context()
    check_can_block(c, function)
    listening = not isinstance(mem, StreamSocket)
    sock = adopt_fd(fd, families, listening, function)
    if listening:
        mem.adopt(c, sock)
    else:
        mem.open(c, sock)  # type: ignore[attr-defined]
    return new_handle(c, mem)


def done_stream(s: int, conn_type: object, function: str) -> None:
    """tcp_done and ipc_done: shut the sending side of connection s down.

    ENOTSUP for a handle that is not a conn_type connection.
    """
    c = context()
    conn = lookup(c, s, function)
    if conn.query(conn_type) is None:
        raise error(errno.ENOTSUP, function)
    check_can_block(c, function)
    conn.done(function)


def close_stream(
    s: int, conn_type: object, listener_type: object, deadline: int, function: str
) -> None:
    """tcp_close and ipc_close: the orderly close of a connection, or a listener's close.

    A handle that is neither (an IPC socket given to tcp_close) is ENOTSUP
    and stays open, as in libdill.
    """
    c = context()
    obj = lookup(c, s, function)
    if obj.query(listener_type) is not None:
        hclose(s)
        return
    if obj.query(conn_type) is None:
        raise error(errno.ENOTSUP, function)
    generation = obj.generation
    try:
        obj.drain(deadline, function)
    finally:
        # Someone may have closed s while drain waited (drain then raised
        # EBADF): the number, or obj, may be another's by now.
        if c.handles.get(s) is obj and obj.generation == generation:
            close_in_order(c, s, obj)
