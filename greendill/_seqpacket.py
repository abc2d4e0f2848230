"""IPC message sockets: ipc_seqpacket_*, UNIX SOCK_SEQPACKET connections as message-socket handles.

A SEQPACKET connection keeps message boundaries, so it is a greendill message
socket (msock_type): msend/mrecv/msendl/mrecvl with deadlines, so that
coroutines and message protocols compose with it. The family matches
libdill's ipc_* one call for call: listen/accept/connect/pair/fromfd/
listener_fromfd, each with its _mem variant and storages
(ipc_seqpacket_storage() is the connection object itself, reusable once
closed), done and the orderly close. ipc_seqpacket_fromfd makes such a handle
of any connected SEQPACKET fd, an mm_ipc_* fd included.

What these handles share with mmlib's IPC API (_mmipc.py), and the rules of
both (MSG_DONTWAIT, the end of a connection, the kernel's one-time
ECONNRESET, close-on-exec fds), are in _datagrams.py.

The handle follows the message-socket contract (_iface.py) with latching per
direction, as _stream.py does for byte streams: a second coroutine in the same
direction gets EBUSY, the end of the connection makes every later receive fail
with EPIPE, and any other failed call breaks its direction (later calls:
ECONNRESET). Two failures break nothing because nothing was sent or lost: a
datagram the kernel refuses as it stands (EMSGSIZE; for ipc_seqpacket_sendmsg
in _mmipc.py also a bad fd to pass, EBADF, or too many, EINVAL), and the
argument checks. A received datagram longer than the buffers is dropped, is
EMSGSIZE and breaks receiving, since a message of the conversation is lost.
fds that reach a handle's mrecv are closed by the kernel (no control buffer).

ipc_seqpacket_done shuts the sending side down, as ipc_done does: the peer
receives every datagram sent before, then the end (EPIPE); later sends and a
second done are EPIPE. ipc_seqpacket_close is ipc_close's orderly close: done,
then drop datagrams until the peer's end, so that the peer is known to have
had everything. A peer that closed with datagrams of ours unread did not: the
kernel's one-time ECONNRESET, which receives step over, is remembered
(peer_reset) and ipc_seqpacket_close reports it.
"""

from __future__ import annotations

import errno
import socket
from _socket import socket as _socket
from collections.abc import Sequence
from typing import Any, Optional

from ._datagrams import (
    FLAGS_MASK,
    SEND_FLAGS,
    Datagrams,
    at_end,
    drop_endpoint,
    writable_error,
)
from ._errors import error
from ._handles import check_storage, hclose, lookup, new_handle, release
from ._iface import RecvItem, msock_type, msock_vfs
from ._ipc import PairStorage, Path, connect_unix, listen_unix, pair_unix
from ._scheduler import Context, check_can_block, context, wake
from ._stream import FdOrSocket, Watched, accept_fd, adopt_fd, close_fd
from ._time import expired

__all__ = [
    "ipc_seqpacket_accept",
    "ipc_seqpacket_accept_mem",
    "ipc_seqpacket_close",
    "ipc_seqpacket_connect",
    "ipc_seqpacket_connect_mem",
    "ipc_seqpacket_done",
    "ipc_seqpacket_fromfd",
    "ipc_seqpacket_fromfd_mem",
    "ipc_seqpacket_listen",
    "ipc_seqpacket_listen_mem",
    "ipc_seqpacket_listener_fromfd",
    "ipc_seqpacket_listener_fromfd_mem",
    "ipc_seqpacket_listener_storage",
    "ipc_seqpacket_pair",
    "ipc_seqpacket_pair_mem",
    "ipc_seqpacket_pair_storage",
    "ipc_seqpacket_storage",
]

# The type ids of SEQPACKET connections and listeners, for hquery.
ipc_seqpacket_type = type(
    "ipc_seqpacket_type", (), {"__repr__": lambda self: "ipc_seqpacket_type"}
)()
ipc_seqpacket_listener_type = type(
    "ipc_seqpacket_listener_type", (), {"__repr__": lambda self: "ipc_seqpacket_listener_type"}
)()

_PEEK = int(socket.MSG_PEEK)
_TRUNC_FLAGS = int(socket.MSG_DONTWAIT | socket.MSG_TRUNC)
# ipc_seqpacket_close checks its deadline after dropping this many datagrams in a
# row, against a peer process that sends as fast as it drops. Far more than a
# queue holds (about 280 with the default buffer), so that a close that can drop
# everything queued and meet the end at once does so, whatever the deadline.
_DRAIN_CHECK = 4096


# The message-socket handle -------------------------------------------------------------


class _EndOfConnection(Exception):
    """The peer closed its side: no more datagrams."""


class ipc_seqpacket_storage(Datagrams, msock_vfs):
    """Memory for an IPC message connection (as libdill's struct ipc_storage is for ipc_*).

    The object behind every ipc_seqpacket_* connection handle: a SEQPACKET
    connection as a greendill message socket (msock_type), with latching.
    For ipc_seqpacket_accept_mem, ipc_seqpacket_connect_mem and
    ipc_seqpacket_fromfd_mem: the connection lives in this object, which
    can be used again once it is closed.
    """

    __slots__ = ("indone", "inerr", "outdone", "outerr", "rbusy", "sbusy", "scratch")

    def __init__(self) -> None:
        super().__init__()
        self.indone = self.inerr = self.outdone = self.outerr = False
        self.rbusy = self.sbusy = False
        self.scratch: Optional[bytearray] = None

    def open(self, c: Context, sock: _socket) -> None:
        """Start being the connection over sock."""
        self.indone = self.inerr = self.outdone = self.outerr = False
        self.rbusy = self.sbusy = False
        self.attach(c, sock)

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is msock_type or type is ipc_seqpacket_type:
            return self
        return None

    def close(self) -> None:
        """At once: the peer sees the end of the connection after what was sent."""
        self.forget(context())

    # Sending.

    def _begin_send(self, function: str) -> None:
        # libdill's order: busy, done, broken.
        if self.sbusy:
            raise error(errno.EBUSY, function)
        if self.outdone:
            raise error(errno.EPIPE, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)

    def send(self, buffers: Any, ancillary: Any, deadline: int, function: str) -> int:
        """Send one datagram of buffers with ancillary: the handle's every send."""
        if self.sbusy or self.outdone or self.outerr:
            self._begin_send(function)
        self.sbusy = True
        generation = self.generation
        try:
            try:
                return self.sock.sendmsg(buffers, ancillary, SEND_FLAGS)  # type: ignore[no-any-return]
            except OSError as exc:
                return self.send_rest(exc, buffers, ancillary, deadline, function)
        except BaseException as exc:
            if self.generation == generation and self.outdone:
                # done came while this send waited, and woke it (EPIPE).
                raise error(errno.EPIPE, function) from None
            failure = _handle_send_error(exc, function)
            if self.generation == generation and not _refused(failure):
                self.outerr = True
            raise failure from None
        finally:
            if self.generation == generation:
                self.sbusy = False

    def msend(self, data: Any, deadline: int) -> None:
        self.send((data,), (), deadline, "msend")

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self.send(buffers, (), deadline, "msendl")

    # Receiving.

    def _begin_recv(self, function: str) -> None:
        if self.rbusy:
            raise error(errno.EBUSY, function)
        if self.indone:
            raise error(errno.EPIPE, function)
        if self.inerr:
            raise error(errno.ECONNRESET, function)

    def recv(
        self, buffers: Any, space: int, flags: int, deadline: int, function: str
    ) -> tuple[int, list[Any], int]:
        """Receive one datagram: recvmsg_into's size, ancillary data and flags.

        The end of the connection is EPIPE (and latches); other failures latch
        ECONNRESET.
        """
        if self.rbusy or self.indone or self.inerr:
            self._begin_recv(function)
        self.rbusy = True
        generation = self.generation
        try:
            try:
                n, ancillary, msg_flags, _ = self.sock.recvmsg_into(buffers, space, flags)
            except OSError as exc:
                n, ancillary, msg_flags = self.recv_rest(
                    exc, buffers, space, flags, deadline, function
                )
            msg_flags &= FLAGS_MASK
            if n == 0 and not ancillary and not msg_flags and at_end(self.sock, self):
                raise _EndOfConnection()
            return n, ancillary, msg_flags
        except TypeError as exc:  # a buffer that cannot be written to: nothing received
            raise writable_error(buffers, exc, function) from None
        except BaseException as exc:
            end = isinstance(exc, _EndOfConnection)
            if self.generation == generation:
                if end:
                    self.indone = True
                else:
                    self.inerr = True
            if end:
                raise error(errno.EPIPE, function) from None
            raise _handle_recv_error(exc, function) from None
        finally:
            if self.generation == generation:
                self.rbusy = False

    def mrecv_into(self, buffer: Any, deadline: int) -> int:
        view = _writable(buffer, "mrecv")
        size, _, _ = self.recv((view,), 0, _TRUNC_FLAGS, deadline, "mrecv")
        if size > view.nbytes:
            self.inerr = True
            raise error(errno.EMSGSIZE, "mrecv")
        return size

    def mrecvl(self, buffers: Sequence[RecvItem], deadline: int) -> int:
        items: list[Any] = []
        capacity = 0
        skips = False
        for item in buffers:
            if isinstance(item, int):
                if item < 0:
                    raise error(errno.EINVAL, "mrecvl")
                skips = True
                capacity += item
                items.append(item)
            else:
                view = _writable(item, "mrecvl")
                capacity += view.nbytes
                items.append(view)
        if not items:
            # C's NULL iolist: drop one datagram, return its size.
            size, _, _ = self.recv([], 0, _TRUNC_FLAGS, deadline, "mrecvl")
            return size
        iov = items
        if skips:
            # The skipped bytes go to scratch space; the datagram's size
            # (peeked) bounds how much of it is needed.
            iov = self._iovecs(items, self._peek_size(deadline))
        size, _, _ = self.recv(iov, 0, _TRUNC_FLAGS, deadline, "mrecvl")
        if size > capacity:
            self.inerr = True
            raise error(errno.EMSGSIZE, "mrecvl")
        return size

    def _peek_size(self, deadline: int) -> int:
        # The size of the next datagram, which stays queued (this coroutine
        # is the only receiver: rbusy). The end of the connection peeks as 0.
        size, _, _ = self.recv([], 0, _TRUNC_FLAGS | _PEEK, deadline, "mrecvl")
        return size

    def _iovecs(self, items: list[Any], size: int) -> list[Any]:
        # An int item becomes a piece of scratch space: every skip may share
        # the same bytes, since they are dropped.
        if self.scratch is None or len(self.scratch) < size:
            self.scratch = bytearray(size)
        scratch = memoryview(self.scratch)
        iov: list[Any] = []
        left = size
        for item in items:
            if left <= 0:
                break
            if isinstance(item, int):
                iov.append(scratch[: min(item, left)])
                left -= item
            else:
                iov.append(item)
                left -= item.nbytes
        return iov

    # Half-close and orderly close.

    def done(self, function: str) -> None:
        """Shut the sending side down (ipc_seqpacket_done): the peer gets EPIPE after our last."""
        if self.outdone:
            raise error(errno.EPIPE, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self.outerr = True
            raise _handle_send_error(exc, function) from None
        self.outdone = True
        # A send waiting for room would wait on (a shut-down side never
        # polls writable) and then fail: it fails now.
        w = self.writer
        if w is not None and not w.done:
            wake(self.ctx, w, errno.EPIPE)

    def drain(self, deadline: int, function: str) -> None:
        """The orderly close's first part: done, then drop datagrams until the peer's end.

        Raises ECONNRESET if an error was latched or the peer reset the
        connection (it closed with datagrams of ours unread: it did not get
        everything), ETIMEDOUT or ECANCELED if the end does not come in
        time. Datagrams are dropped in the kernel (no buffer: MSG_TRUNC), fds
        with them (no control buffer). The caller closes the socket whatever
        happens.
        """
        if self.inerr or self.outerr or self.peer_reset:
            raise error(errno.ECONNRESET, function)
        if not self.outdone:
            self.done(function)
        if self.indone:
            return
        recvmsg_into = self.sock.recvmsg_into
        dropped = 0
        while True:
            try:
                n, _, flags, _ = recvmsg_into((), 0, _TRUNC_FLAGS)
            except BlockingIOError:
                self.wait_readable(deadline, function)
                continue
            except ConnectionResetError:
                raise error(errno.ECONNRESET, function) from None
            except OSError as exc:
                raise _handle_recv_error(exc, function) from None
            if n == 0 and not flags and at_end(self.sock, self):
                self.indone = True
                if self.peer_reset:
                    raise error(errno.ECONNRESET, function)
                return
            # The deadline is checked on waits; a peer in another process
            # that sends as fast as this drops never lets it wait.
            dropped += 1
            if not dropped % _DRAIN_CHECK and deadline >= 0 and expired(deadline):
                raise error(errno.ETIMEDOUT, function)


def _writable(buffer: Any, function: str) -> memoryview:
    view = memoryview(buffer)
    if view.readonly:
        raise error(errno.EINVAL, function)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _refused(exc: BaseException) -> bool:
    # A send refused as it stands, by the kernel or by sendmsg's argument
    # checks (not bytes-like: TypeError): nothing sent, nothing broken.
    if isinstance(exc, TypeError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EMSGSIZE, errno.EINVAL, errno.EBADF)


def _handle_send_error(exc: BaseException, function: str) -> BaseException:
    # The peer gone (EPIPE, ECONNRESET) is libdill's ECONNRESET; greendill's
    # own errors (ETIMEDOUT, ECANCELED, EBADF from a wait) come out the same.
    if isinstance(exc, OSError) and exc.errno:
        if exc.errno in (errno.EPIPE, errno.ECONNRESET):
            return error(errno.ECONNRESET, function)
        return error(exc.errno, function)
    return exc


def _handle_recv_error(exc: BaseException, function: str) -> BaseException:
    if isinstance(exc, OSError) and exc.errno:
        return error(exc.errno, function)
    return exc


class ipc_seqpacket_listener_storage(Watched):
    """Memory for an IPC message listener (as libdill's struct ipc_listener_storage).

    The object behind every ipc_seqpacket_* listener handle; for
    ipc_seqpacket_listen_mem and ipc_seqpacket_listener_fromfd_mem, reusable
    once closed.
    """

    __slots__ = ()

    def query(self, type: object) -> Any:
        return self if type is ipc_seqpacket_listener_type else None

    def close(self) -> None:
        self.forget(context())


class ipc_seqpacket_pair_storage(PairStorage):
    """Memory for both ends of an IPC message pair (as libdill's struct ipc_pair_storage)."""

    __slots__ = ()

    def __init__(self) -> None:
        self.ends = (ipc_seqpacket_storage(), ipc_seqpacket_storage())


# Listeners ------------------------------------------------------------------------


def ipc_seqpacket_listen(path: Path, backlog: int) -> int:
    """Start listening for IPC message connections (SOCK_SEQPACKET) at a path or abstract name.

    The same addresses and rules as ipc_listen: a path that exists is
    EADDRINUSE, and a name that begins with "\\0" is a Linux abstract address
    of that exact length (Python's form; mmlib's servers use another, see
    mm_ipc_srv_create). Connections accepted on it are message sockets.

    Parameters:
        path: where to listen.
        backlog: how many connections may wait to be accepted.
    Returns: the handle of the listener.
    Errors:
        EADDRINUSE: the path exists.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: path is None or empty, or backlog is negative.
        EMFILE: the process has no file descriptor left.
        ENAMETOOLONG: the path does not fit a UNIX socket address (107 bytes).
        ENFILE: the system has no file descriptor left.
        ENOENT: a directory of the path does not exist.
        ENOMEM: never raised (Python raises MemoryError).
        Other errors of bind(2) (EACCES, ELOOP, ENOTDIR) come with their errno.
    """
    mem = ipc_seqpacket_listener_storage()
    return listen_unix(path, backlog, socket.SOCK_SEQPACKET, mem, "ipc_seqpacket_listen")


def ipc_seqpacket_listen_mem(path: Path, backlog: int, mem: ipc_seqpacket_listener_storage) -> int:
    """Start listening, as ipc_seqpacket_listen does, with the listener in mem.

    Parameters:
        path: where to listen.
        backlog: how many connections may wait to be accepted.
        mem: an ipc_seqpacket_listener_storage() not in use.
    Returns: the handle of the listener.
    Errors:
        EADDRINUSE, ECANCELED, EMFILE, ENAMETOOLONG, ENFILE, ENOENT: as
        ipc_seqpacket_listen.
        EBUSY: mem holds a listener that is still open.
        EINVAL: mem or path is None, or backlog is negative.
        ENOMEM: never raised.
    """
    function = "ipc_seqpacket_listen_mem"
    mem = check_storage(mem, ipc_seqpacket_listener_storage, function)
    return listen_unix(path, backlog, socket.SOCK_SEQPACKET, mem, function)


def _listener(c: Context, ls: int, function: str) -> ipc_seqpacket_listener_storage:
    obj = lookup(c, ls, function)
    if obj.query(ipc_seqpacket_listener_type) is None:
        raise error(errno.ENOTSUP, function)
    return obj  # type: ignore[no-any-return]


def ipc_seqpacket_accept(ls: int, deadline: int = -1) -> int:
    """Accept a connection on an IPC message listener.

    Parameters:
        ls: the listener (from ipc_seqpacket_listen).
        deadline: a point in time in ms (see now()); -1 for never, 0 to take
            only a connection that is already waiting.
    Returns: the handle of the new connection, a message socket.
    Errors:
        EBADF: ls is not an open handle, or it was closed while waiting.
        EBUSY: another coroutine is already waiting in an accept on ls.
        ECANCELED: the calling coroutine was canceled.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
        ENOTSUP: ls is not an IPC message listener.
        ETIMEDOUT: the deadline passed before a connection came.
    """
    return _accept(ls, ipc_seqpacket_storage(), deadline, "ipc_seqpacket_accept")


def ipc_seqpacket_accept_mem(ls: int, mem: ipc_seqpacket_storage, deadline: int = -1) -> int:
    """Accept a connection, as ipc_seqpacket_accept does, with the connection in mem.

    Parameters:
        ls: the listener.
        mem: an ipc_seqpacket_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection, a message socket.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE, ENOTSUP, ETIMEDOUT: as
        ipc_seqpacket_accept.
        EBUSY: mem holds a connection that is still open, or another coroutine
            is already waiting in an accept on ls.
        EINVAL: mem is None.
        ENOMEM: never raised.
    """
    function = "ipc_seqpacket_accept_mem"
    return _accept(ls, check_storage(mem, ipc_seqpacket_storage, function), deadline, function)


def _accept(ls: int, mem: ipc_seqpacket_storage, deadline: int, function: str) -> int:
    c = context()
    listener = _listener(c, ls, function)
    check_can_block(c, function)  # it makes a handle: libdill checks first
    fd, _ = accept_fd(listener, deadline, function)
    mem.open(c, _socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, fd))
    return new_handle(c, mem)


# Connecting ------------------------------------------------------------------


def ipc_seqpacket_connect(path: Path, deadline: int = -1) -> int:
    """Connect to an IPC message listener (SOCK_SEQPACKET).

    Nothing listening at the path fails at once (ECONNREFUSED, ENOENT), as
    ipc_connect does; a listener whose backlog is full makes it wait for
    room, until the deadline. (mm_ipc_connect, by contrast, waits for a
    server to appear.)

    Parameters:
        path: the listener's path (or abstract name, as ipc_seqpacket_listen).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection, a message socket.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        ECONNREFUSED: nothing listens at the path.
        EINVAL: path is None or empty.
        EMFILE: the process has no file descriptor left.
        ENAMETOOLONG: the path does not fit a UNIX socket address (107 bytes).
        ENFILE: the system has no file descriptor left.
        ENOENT: the path does not exist.
        ENOMEM: never raised (Python raises MemoryError).
        EPROTOTYPE: the listener at the path is not a SEQPACKET one.
        ETIMEDOUT: the deadline passed while the listener's backlog was full.
        Other errors of connect(2) (EACCES, ELOOP, ENOTDIR) come with their errno.
    """
    mem = ipc_seqpacket_storage()
    return connect_unix(path, socket.SOCK_SEQPACKET, mem, deadline, "ipc_seqpacket_connect")


def ipc_seqpacket_connect_mem(path: Path, mem: ipc_seqpacket_storage, deadline: int = -1) -> int:
    """Connect, as ipc_seqpacket_connect does, with the connection in mem.

    Parameters:
        path: the listener's path (or abstract name).
        mem: an ipc_seqpacket_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection, a message socket.
    Errors:
        ECANCELED, ECONNREFUSED, EMFILE, ENAMETOOLONG, ENFILE, ENOENT,
        EPROTOTYPE, ETIMEDOUT: as ipc_seqpacket_connect.
        EBUSY: mem holds a connection that is still open.
        EINVAL: mem or path is None.
        ENOMEM: never raised.
    """
    function = "ipc_seqpacket_connect_mem"
    mem = check_storage(mem, ipc_seqpacket_storage, function)
    return connect_unix(path, socket.SOCK_SEQPACKET, mem, deadline, function)


def ipc_seqpacket_pair() -> tuple[int, int]:
    """Make two IPC message sockets connected to each other (socketpair, SOCK_SEQPACKET).

    Parameters: none.
    Returns: the handles of the two connections.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return pair_unix(ipc_seqpacket_pair_storage(), socket.SOCK_SEQPACKET, "ipc_seqpacket_pair")


def ipc_seqpacket_pair_mem(mem: ipc_seqpacket_pair_storage) -> tuple[int, int]:
    """Make a connected pair, as ipc_seqpacket_pair does, with both connections in mem.

    Parameters:
        mem: an ipc_seqpacket_pair_storage() whose connections are both closed.
    Returns: the handles of the two connections.
    Errors:
        EBUSY: a connection in mem is still open.
        ECANCELED, EMFILE, ENFILE: as ipc_seqpacket_pair.
        EINVAL: mem is None.
        ENOMEM: never raised.
    """
    function = "ipc_seqpacket_pair_mem"
    mem = check_storage(mem, ipc_seqpacket_pair_storage, function)
    return pair_unix(mem, socket.SOCK_SEQPACKET, function)


# Adopting existing sockets --------------------------------------------------------


def ipc_seqpacket_fromfd(fd: FdOrSocket) -> int:
    """Make a message socket of a connected UNIX SOCK_SEQPACKET socket: an mm_ipc_* fd, or any.

    This is how an mm IPC connection (mm_ipc_connect, mm_ipc_srv_accept,
    mm_ipc_connected_pair) becomes a greendill handle: msend, mrecv, msendl
    and mrecvl with deadlines, protocols stacked on it, and fds passed with
    ipc_seqpacket_sendmsg / ipc_seqpacket_recvmsg. The handle takes the
    socket over, as ipc_fromfd does: fd itself is closed (do not mm_close
    it), and the handle owns a duplicate; a coroutine waiting on fd in an
    mm_ipc_* call gets EBADF. fd may also be a socket object (socket.socket,
    gevent's socket under monkeypatching): the object is closed and the
    handle owns a duplicate of its socket. If the call fails, fd is left
    open, number or object.

    Parameters:
        fd: a connected AF_UNIX SOCK_SEQPACKET socket's file descriptor, or a
            socket object of one.
    Returns: the handle of the connection.
    Errors:
        EBADF: fd is not an open file descriptor (or a closed socket object).
        ECANCELED: the calling coroutine was canceled.
        EINVAL: fd is not a connected UNIX SEQPACKET socket.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return _from_fd(fd, ipc_seqpacket_storage(), "ipc_seqpacket_fromfd")


def ipc_seqpacket_fromfd_mem(fd: FdOrSocket, mem: ipc_seqpacket_storage) -> int:
    """Make a message socket of fd, as ipc_seqpacket_fromfd does, in mem.

    Parameters:
        fd: a connected AF_UNIX SOCK_SEQPACKET socket's file descriptor, or a
            socket object of one.
        mem: an ipc_seqpacket_storage() not in use.
    Returns: the handle of the connection.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE: as ipc_seqpacket_fromfd.
        EBUSY: mem holds a connection that is still open.
        EINVAL: mem is None, or fd is not a connected UNIX SEQPACKET socket.
        ENOMEM: never raised.
    """
    function = "ipc_seqpacket_fromfd_mem"
    return _from_fd(fd, check_storage(mem, ipc_seqpacket_storage, function), function)


def ipc_seqpacket_listener_fromfd(fd: FdOrSocket) -> int:
    """Make an IPC message listener of a listening UNIX SOCK_SEQPACKET socket.

    The listener takes the socket over, as ipc_listener_fromfd does: fd
    itself is closed, and the listener owns a duplicate. fd may also be a
    socket object (socket.socket, gevent's socket under monkeypatching): the
    object is closed and the listener owns a duplicate of its socket. If the
    call fails, fd is left open, number or object. Connections accepted on
    it (ipc_seqpacket_accept) are message sockets.

    Parameters:
        fd: a listening AF_UNIX SOCK_SEQPACKET socket's file descriptor, or a
            socket object of one.
    Returns: the handle of the listener.
    Errors:
        EBADF: fd is not an open file descriptor (or a closed socket object).
        ECANCELED: the calling coroutine was canceled.
        EINVAL: fd is not a listening UNIX SEQPACKET socket.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return _from_fd(fd, ipc_seqpacket_listener_storage(), "ipc_seqpacket_listener_fromfd")


def ipc_seqpacket_listener_fromfd_mem(fd: FdOrSocket, mem: ipc_seqpacket_listener_storage) -> int:
    """Make an IPC message listener of fd, as ipc_seqpacket_listener_fromfd does, in mem.

    Parameters:
        fd: a listening AF_UNIX SOCK_SEQPACKET socket's file descriptor, or a
            socket object of one.
        mem: an ipc_seqpacket_listener_storage() not in use.
    Returns: the handle of the listener.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE: as ipc_seqpacket_listener_fromfd.
        EBUSY: mem holds a listener that is still open.
        EINVAL: mem is None, or fd is not a listening UNIX SEQPACKET socket.
        ENOMEM: never raised.
    """
    function = "ipc_seqpacket_listener_fromfd_mem"
    return _from_fd(fd, check_storage(mem, ipc_seqpacket_listener_storage, function), function)


def _from_fd(fd: FdOrSocket, mem: Watched, function: str) -> int:
    # _stream.handle_from_fd's work for SEQPACKET sockets. A listener storage
    # takes a listening socket, a connection storage a connected one.
    c = context()
    check_can_block(c, function)
    listening = isinstance(mem, ipc_seqpacket_listener_storage)

    def release(number: int) -> None:
        drop_endpoint(c, number)  # an mm_ipc_* fd: its waiters get EBADF
        close_fd(number)

    unix = (socket.AF_UNIX,)
    sock = adopt_fd(fd, unix, listening, function, socket.SOCK_SEQPACKET, release)
    if listening:
        mem.adopt(c, sock)
    else:
        mem.open(c, sock)  # type: ignore[attr-defined]
    return new_handle(c, mem)


# Half-close, orderly close ---------------------------------------------------------


def ipc_seqpacket_done(s: int, deadline: int = -1) -> None:
    """Half-close an IPC message connection: no more sending.

    The connection's sending side is shut down (shutdown(2), SHUT_WR): the
    peer receives every message sent before, then EPIPE. Receiving goes on
    working, and the peer may still send. ipc_seqpacket_done does not block;
    the deadline is there for libdill's signature.

    Parameters:
        s: the connection.
        deadline: unused.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        ECONNRESET: sending failed earlier: the connection is broken.
        ENOTSUP: s is not an IPC message connection.
        EPIPE: ipc_seqpacket_done was called already.
        ETIMEDOUT: never raised: ipc_seqpacket_done does not block.
    """
    function = "ipc_seqpacket_done"
    c = context()
    conn = lookup(c, s, function).query(ipc_seqpacket_type)
    if conn is None:
        raise error(errno.ENOTSUP, function)
    check_can_block(c, function)
    conn.done(function)


def ipc_seqpacket_close(s: int, deadline: int = -1) -> None:
    """Close an IPC message connection in order, or a listener.

    For a connection: half-close it (unless done already), then receive and
    drop whatever messages come (and fds with them) until the peer closes
    too, so that the peer is known to have received everything. The handle
    is closed whatever happens. For a listener, the same as hclose.

    Parameters:
        s: the connection or listener.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection was broken (an earlier failure), or the
            peer reset it (it closed with messages of ours unread).
        ENOTSUP: s is neither an IPC message connection nor an IPC message
            listener (the handle is not closed then).
        ETIMEDOUT: the peer did not close its side before the deadline.
    """
    function = "ipc_seqpacket_close"
    c = context()
    obj = lookup(c, s, function)
    if obj.query(ipc_seqpacket_listener_type) is not None:
        hclose(s)
        return
    conn = obj.query(ipc_seqpacket_type)
    if conn is None:
        raise error(errno.ENOTSUP, function)
    generation = conn.generation
    try:
        conn.drain(deadline, function)
    finally:
        # Someone may have closed s while drain waited (drain then raised
        # EBADF): the number, or the storage, may be another's by now.
        if c.handles.get(s) is obj and conn.generation == generation:
            release(c, s)
            conn.forget(c)
