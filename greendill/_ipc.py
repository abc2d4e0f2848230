"""IPC: byte streams over UNIX domain stream sockets.

An IPC connection is a byte stream (bsock_type) with the rules of _stream.py:
all or nothing, error latching per direction, ipc_done to half-close,
ipc_close to close in order, hclose to close at once (the peer sees end of
stream). Addresses are filesystem paths; a path that begins with a NUL
character is a Linux abstract address, as in Python's socket module.

ipc_listen never unlinks: an existing path, even the stale file of a closed
listener, is EADDRINUSE, and closing a listener leaves its file. ipc_connect
to a listener whose backlog is full waits for room until its deadline.
ipc_sendfd passes a file descriptor (SCM_RIGHTS) with one byte, 0xCC, in
the stream, so fds and data arrive in the order they were sent.
"""

from __future__ import annotations

import array
import errno
import os
import socket
from _socket import socket as _socket
from _socket import socketpair as _socketpair
from typing import Any, Union

from greenlet import getcurrent

from ._errors import error
from ._handles import lookup, new_handle
from ._scheduler import (
    CANCEL,
    Context,
    block,
    check_can_block,
    context,
    waiter_for,
)
from ._stream import (
    FdOrSocket,
    StreamSocket,
    Watched,
    accept_fd,
    check_storage,
    close_fd,
    close_stream,
    done_stream,
    handle_from_fd,
    recv_error,
    register_fast_bsock,
    send_error,
    syscall_error,
)
from ._time import check_deadline, expired, now

__all__ = [
    "PairStorage",
    "connect_unix",
    "ipc_accept",
    "ipc_accept_mem",
    "ipc_close",
    "ipc_connect",
    "ipc_connect_mem",
    "ipc_done",
    "ipc_fromfd",
    "ipc_fromfd_mem",
    "ipc_listen",
    "ipc_listen_mem",
    "ipc_listener_fromfd",
    "ipc_listener_fromfd_mem",
    "ipc_listener_storage",
    "ipc_pair",
    "ipc_pair_mem",
    "ipc_pair_storage",
    "ipc_recvfd",
    "ipc_sendfd",
    "ipc_storage",
    "listen_unix",
    "pair_unix",
    "pause",
]

Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# The type ids of IPC connections and listeners, for hquery.
ipc_type = type("ipc_type", (), {"__repr__": lambda self: "ipc_type"})()
ipc_listener_type = type("ipc_listener_type", (), {"__repr__": lambda self: "ipc_listener_type"})()

# sun_path is 108 bytes: a path needs its terminating NUL, an abstract name does not.
_SUN_PATH = 108
# The byte that carries a passed file descriptor (libdill's choice).
_FD_BYTE = b"\xcc"
# The address families ipc_fromfd and ipc_listener_fromfd accept.
_FAMILIES = (socket.AF_UNIX,)
# ipc_connect's waits for room in a full backlog: they double up to this, in ms.
_MAX_BACKOFF = 32


@register_fast_bsock
class ipc_storage(StreamSocket):
    """Memory for an IPC connection (libdill's struct ipc_storage).

    For ipc_accept_mem, ipc_connect_mem and ipc_fromfd_mem: the connection
    lives in this object, which can be used again once it is closed.
    """

    __slots__ = ()
    type_id = ipc_type


class ipc_listener_storage(Watched):
    """Memory for an IPC listener (libdill's struct ipc_listener_storage)."""

    __slots__ = ()

    def query(self, type: object) -> Any:
        return self if type is ipc_listener_type else None

    def close(self) -> None:
        self.forget(context())


class PairStorage:
    """Memory for both ends of a pair: in use while either end is open (check_storage)."""

    __slots__ = ("ends",)
    ends: tuple[Any, Any]

    @property
    def is_open(self) -> bool:
        return bool(self.ends[0].is_open or self.ends[1].is_open)


class ipc_pair_storage(PairStorage):
    """Memory for both ends of an IPC pair (libdill's struct ipc_pair_storage)."""

    __slots__ = ()

    def __init__(self) -> None:
        self.ends = (ipc_storage(), ipc_storage())


def _address(path: Any, function: str) -> Union[str, bytes]:
    if path is None:
        raise error(errno.EINVAL, function)
    address: Union[str, bytes] = os.fspath(path)
    encoded = os.fsencode(address)
    if not encoded:
        # bind would pick an abstract name nobody can learn; connect fails.
        raise error(errno.EINVAL, function)
    limit = _SUN_PATH if encoded[:1] == b"\0" else _SUN_PATH - 1
    if len(encoded) > limit:
        raise error(errno.ENAMETOOLONG, function, os.fsdecode(address))
    return address


# Listeners ----------------------------------------------------------------


def ipc_listen(path: Path, backlog: int) -> int:
    """Start listening for IPC connections at a filesystem path (or abstract name).

    The path must not exist: an existing file, even one left by a closed
    listener, is EADDRINUSE (greendill never unlinks it), and closing the
    listener leaves the file behind.

    Parameters:
        path: where to listen; a name that begins with "\\0" is a Linux
            abstract address, which leaves no file.
        backlog: how many connections may wait to be accepted.
    Returns: the handle of the listener.
    Errors:
        EACCES: the path's directory does not allow it.
        EADDRINUSE: the path exists.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: path is None, or backlog is negative.
        ELOOP: too many symbolic links in the path.
        EMFILE: the process has no file descriptor left.
        ENAMETOOLONG: the path does not fit a UNIX socket address (107 bytes).
        ENFILE: the system has no file descriptor left.
        ENOENT: a directory of the path does not exist.
        ENOMEM: never raised (Python raises MemoryError).
        ENOTDIR: a component of the path is not a directory.
    """
    return listen_unix(path, backlog, socket.SOCK_STREAM, ipc_listener_storage(), "ipc_listen")


def ipc_listen_mem(path: Path, backlog: int, mem: ipc_listener_storage) -> int:
    """Start listening, as ipc_listen does, with the listener in mem.

    Parameters:
        path: where to listen.
        backlog: how many connections may wait to be accepted.
        mem: an ipc_listener_storage() not in use.
    Returns: the handle of the listener.
    Errors:
        EACCES, EADDRINUSE, ECANCELED, ELOOP, EMFILE, ENAMETOOLONG, ENFILE,
        ENOENT, ENOTDIR: as ipc_listen.
        EBUSY: mem holds a listener that is still open.
        EINVAL: mem or path is None, or backlog is negative.
        ENOMEM: never raised.
    """
    function = "ipc_listen_mem"
    mem = check_storage(mem, ipc_listener_storage, function)
    return listen_unix(path, backlog, socket.SOCK_STREAM, mem, function)


def listen_unix(path: Any, backlog: int, kind: int, mem: Watched, function: str) -> int:
    """Listen on a UNIX socket of kind (SOCK_STREAM, SOCK_SEQPACKET) in mem: ipc_listen's work."""
    address = _address(path, function)
    if not isinstance(backlog, int):
        raise TypeError(f"{function}: backlog is an int, not {type(backlog).__name__}")
    if backlog < 0:
        raise error(errno.EINVAL, function)
    c = context()
    check_can_block(c, function)
    try:
        sock = _socket(socket.AF_UNIX, kind)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise syscall_error(exc, function, address) from None
    mem.adopt(c, sock)
    return new_handle(c, mem)


def _listener(c: Context, ls: int, function: str) -> ipc_listener_storage:
    obj = lookup(c, ls, function)
    if obj.query(ipc_listener_type) is None:
        raise error(errno.ENOTSUP, function)
    return obj  # type: ignore[no-any-return]


def ipc_accept(ls: int, deadline: int = -1) -> int:
    """Accept a connection on an IPC listener.

    Parameters:
        ls: the listener.
        deadline: a point in time in ms (see now()); -1 for never, 0 to take
            only a connection that is already waiting.
    Returns: the handle of the new connection.
    Errors:
        EBADF: ls is not an open handle, or it was closed while waiting.
        EBUSY: another coroutine is already waiting in an accept on ls.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
        ENOTSUP: ls is not an IPC listener.
        ETIMEDOUT: the deadline passed before a connection came.
    """
    return _accept(ls, ipc_storage(), deadline, "ipc_accept")


def ipc_accept_mem(ls: int, mem: ipc_storage, deadline: int = -1) -> int:
    """Accept a connection, as ipc_accept does, with the connection in mem.

    Parameters:
        ls: the listener.
        mem: an ipc_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE, ENOTSUP, ETIMEDOUT: as ipc_accept.
        EBUSY: mem holds a connection that is still open, or another coroutine
            is already waiting in an accept on ls.
        EINVAL: mem is None.
        ENOMEM: never raised.
    """
    return _accept(
        ls, check_storage(mem, ipc_storage, "ipc_accept_mem"), deadline, "ipc_accept_mem"
    )


def _accept(ls: int, mem: ipc_storage, deadline: int, function: str) -> int:
    c = context()
    listener = _listener(c, ls, function)
    check_can_block(c, function)  # it makes a handle: libdill checks first
    fd, _ = accept_fd(listener, deadline, function)
    mem.open(c, _socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd))
    return new_handle(c, mem)


# Connecting ------------------------------------------------------------------


def ipc_connect(path: Path, deadline: int = -1) -> int:
    """Connect to an IPC listener.

    A listener whose backlog is full makes ipc_connect wait for room, until
    the deadline.

    Parameters:
        path: the listener's path (or abstract name).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection.
    Errors:
        EACCES: the path does not allow it.
        ECANCELED: the calling coroutine was canceled.
        ECONNREFUSED: nothing listens at the path (a file with no listener).
        ECONNRESET: never raised on Linux: its connect() on a UNIX stream
            socket has no reset (net/unix/af_unix.c, unix_stream_connect: a
            listener that is gone, or goes while ipc_connect waits for room, is
            ECONNREFUSED, and a pending connection whose listener closes is
            reset after ipc_connect returned, on the connection). libdill's
            page lists it; libdill's ipc_connect cannot produce it on Linux
            either.
        EINVAL: path is None.
        ELOOP: too many symbolic links in the path.
        EMFILE: the process has no file descriptor left.
        ENAMETOOLONG: the path does not fit a UNIX socket address (107 bytes).
        ENFILE: the system has no file descriptor left.
        ENOENT: the path does not exist.
        ENOMEM: never raised (Python raises MemoryError).
        ENOTDIR: a component of the path is not a directory.
        ETIMEDOUT: the deadline passed while the listener's backlog was full.
    """
    return connect_unix(path, socket.SOCK_STREAM, ipc_storage(), deadline, "ipc_connect")


def ipc_connect_mem(path: Path, mem: ipc_storage, deadline: int = -1) -> int:
    """Connect, as ipc_connect does, with the connection in mem.

    Parameters:
        path: the listener's path (or abstract name).
        mem: an ipc_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection.
    Errors:
        EACCES, ECANCELED, ECONNREFUSED, ELOOP, EMFILE, ENAMETOOLONG, ENFILE,
        ENOENT, ENOTDIR, ETIMEDOUT: as ipc_connect.
        EBUSY: mem holds a connection that is still open.
        ECONNRESET: never raised on Linux, as ipc_connect.
        EINVAL: mem or path is None.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, ipc_storage, "ipc_connect_mem")
    return connect_unix(path, socket.SOCK_STREAM, mem, deadline, "ipc_connect_mem")


def connect_unix(path: Any, kind: int, mem: Any, deadline: int, function: str) -> int:
    """ipc_connect's work for a UNIX socket of kind, in mem (a connection storage)."""
    address = _address(path, function)
    c = context()
    check_can_block(c, function)
    try:
        sock = _socket(socket.AF_UNIX, kind)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    try:
        sock.setblocking(False)
        backoff = 1
        while True:
            code = sock.connect_ex(address)
            if code == 0:
                break
            if code != errno.EAGAIN:
                raise error(code, function, os.fsdecode(address))
            # The backlog is full, and nothing tells when room is made:
            # try again after a pause that grows, until the deadline.
            pause(c, now() + backoff, deadline, function)
            backoff = min(backoff * 2, _MAX_BACKOFF)
    except BaseException:
        sock.close()
        raise
    mem.open(c, sock)
    return new_handle(c, mem)


def pause(c: Context, until: int, deadline: int, function: str) -> None:
    """Sleep until `until` (a retry's pause), failing at deadline (ETIMEDOUT) or on cancel."""
    if deadline >= 0:
        check_deadline(deadline, function)
        if expired(deadline):
            raise error(errno.ETIMEDOUT, function)
        until = min(until, deadline)
    if block(c, waiter_for(getcurrent()), until) is CANCEL:
        raise error(errno.ECANCELED, function)


def ipc_pair() -> tuple[int, int]:
    """Make two IPC connections connected to each other (socketpair).

    Parameters: none.
    Returns: the handles of the two connections.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return pair_unix(ipc_pair_storage(), socket.SOCK_STREAM, "ipc_pair")


def ipc_pair_mem(mem: ipc_pair_storage) -> tuple[int, int]:
    """Make a connected pair, as ipc_pair does, with both connections in mem.

    Parameters:
        mem: an ipc_pair_storage() whose connections are both closed.
    Returns: the handles of the two connections.
    Errors:
        EBUSY: a connection in mem is still open.
        ECANCELED, EMFILE, ENFILE: as ipc_pair.
        EINVAL: mem is None.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, ipc_pair_storage, "ipc_pair_mem")
    return pair_unix(mem, socket.SOCK_STREAM, "ipc_pair_mem")


def pair_unix(mem: Any, kind: int, function: str) -> tuple[int, int]:
    """ipc_pair's work for a UNIX socket pair of kind, in mem (a pair storage: its .ends)."""
    c = context()
    check_can_block(c, function)
    try:
        a, b = _socketpair(socket.AF_UNIX, kind)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    mem.ends[0].open(c, a)
    mem.ends[1].open(c, b)
    return new_handle(c, mem.ends[0]), new_handle(c, mem.ends[1])


# Adopting existing sockets --------------------------------------------------------


def ipc_fromfd(fd: FdOrSocket) -> int:
    """Make an IPC connection of an existing connected UNIX stream socket.

    The connection takes the socket over: fd itself is closed, and the
    handle owns a duplicate of it. fd may also be a socket object
    (socket.socket, gevent's socket under monkeypatching): the object is
    closed (its fileno() becomes -1) and the handle owns a duplicate of its
    socket. If the call fails, fd is left open, number or object.

    Parameters:
        fd: a connected AF_UNIX SOCK_STREAM socket's file descriptor, or a socket object of one.
    Returns: the handle of the connection.
    Errors:
        EBADF: fd is not an open file descriptor (or a closed socket object).
        ECANCELED: the calling coroutine was canceled.
        EINVAL: fd is not a connected UNIX stream socket.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return handle_from_fd(fd, ipc_storage(), _FAMILIES, "ipc_fromfd")


def ipc_fromfd_mem(fd: FdOrSocket, mem: ipc_storage) -> int:
    """Make an IPC connection of fd, as ipc_fromfd does, in mem.

    Parameters:
        fd: a connected AF_UNIX SOCK_STREAM socket's file descriptor, or a socket object of one.
        mem: an ipc_storage() not in use.
    Returns: the handle of the connection.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE: as ipc_fromfd.
        EBUSY: mem holds a connection that is still open.
        EINVAL: mem is None, or fd is not a connected UNIX stream socket.
        ENOMEM: never raised.
    """
    return handle_from_fd(
        fd, check_storage(mem, ipc_storage, "ipc_fromfd_mem"), _FAMILIES, "ipc_fromfd_mem"
    )


def ipc_listener_fromfd(fd: FdOrSocket) -> int:
    """Make an IPC listener of an existing listening UNIX stream socket.

    The listener takes the socket over: fd itself is closed. fd may also be
    a socket object (socket.socket, gevent's socket under monkeypatching):
    the object is closed and the listener owns a duplicate of its socket.
    If the call fails, fd is left open, number or object.

    Parameters:
        fd: a listening AF_UNIX SOCK_STREAM socket's file descriptor, or a socket object of one.
    Returns: the handle of the listener.
    Errors:
        EBADF: fd is not an open file descriptor (or a closed socket object).
        ECANCELED: the calling coroutine was canceled.
        EINVAL: fd is not a listening UNIX stream socket.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return handle_from_fd(fd, ipc_listener_storage(), _FAMILIES, "ipc_listener_fromfd")


def ipc_listener_fromfd_mem(fd: FdOrSocket, mem: ipc_listener_storage) -> int:
    """Make an IPC listener of fd, as ipc_listener_fromfd does, in mem.

    Parameters:
        fd: a listening AF_UNIX SOCK_STREAM socket's file descriptor, or a socket object of one.
        mem: an ipc_listener_storage() not in use.
    Returns: the handle of the listener.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE: as ipc_listener_fromfd.
        EBUSY: mem holds a listener that is still open.
        EINVAL: mem is None, or fd is not a listening UNIX stream socket.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, ipc_listener_storage, "ipc_listener_fromfd_mem")
    return handle_from_fd(fd, mem, _FAMILIES, "ipc_listener_fromfd_mem")


# Half-close, orderly close, passing fds ------------------------------------------------


def _connection(c: Context, s: int, function: str) -> ipc_storage:
    obj = lookup(c, s, function)
    if obj.query(ipc_type) is None:
        raise error(errno.ENOTSUP, function)
    return obj  # type: ignore[no-any-return]


def ipc_done(s: int, deadline: int = -1) -> None:
    """Half-close an IPC connection: no more sending.

    The peer receives everything sent before, then EPIPE. Receiving goes on
    working. ipc_done does not block; the deadline is there for libdill's
    signature.

    Parameters:
        s: the connection.
        deadline: unused.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        ECONNRESET: sending failed earlier: the connection is broken.
        ENOTSUP: s is not an IPC connection.
        EPIPE: ipc_done was called already.
        ETIMEDOUT: never raised: ipc_done does not block.
    """
    done_stream(s, ipc_type, "ipc_done")


def ipc_close(s: int, deadline: int = -1) -> None:
    """Close an IPC connection in order, or a listener.

    For a connection: half-close it (unless done already), then receive and
    drop whatever comes until the peer closes too, so that the peer is known
    to have received everything. The handle is closed whatever happens. For
    a listener, the same as hclose.

    Parameters:
        s: the connection or listener.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection was broken (an earlier failure, or the peer
            reset it).
        ENOTSUP: s is neither an IPC connection nor an IPC listener (the
            handle is not closed then).
        ETIMEDOUT: the peer did not close its side before the deadline.
    """
    close_stream(s, ipc_type, ipc_listener_type, deadline, "ipc_close")


def ipc_sendfd(s: int, fd: int, deadline: int = -1) -> None:
    """Pass a file descriptor over an IPC connection.

    A duplicate of fd arrives on the other side (ipc_recvfd), in order with
    the data sent around it; fd stays open here.

    Parameters:
        s: the connection.
        fd: the file descriptor to pass.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle, or fd is not an open file descriptor.
        EBUSY: another coroutine is already sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        EINVAL: fd is negative.
        ENOTSUP: s is not an IPC connection.
        EPIPE: ipc_done was called on s.
        ETIMEDOUT: the deadline passed first.
    """
    c = context()
    conn = _connection(c, s, "ipc_sendfd")
    if not isinstance(fd, int):
        raise TypeError(f"ipc_sendfd: fd is an int, not {type(fd).__name__}")
    if fd < 0:
        raise error(errno.EINVAL, "ipc_sendfd")
    conn._begin_send("ipc_sendfd")
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    conn.sbusy = True
    generation = conn.generation
    try:
        while True:
            try:
                if conn.sock.sendmsg([_FD_BYTE], rights) == 1:
                    return
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    # fd, not the connection: nothing was sent.
                    raise error(errno.EBADF, "ipc_sendfd") from None
                raise
            conn.wait_writable(deadline, "ipc_sendfd")
    except BaseException as exc:
        if conn.generation == generation and not (
            isinstance(exc, OSError) and exc.errno == errno.EBADF
        ):
            conn.outerr = True
        raise send_error(exc, "ipc_sendfd") from None
    finally:
        if conn.generation == generation:
            conn.sbusy = False


def ipc_recvfd(s: int, deadline: int = -1) -> int:
    """Receive a file descriptor passed with ipc_sendfd.

    The new fd is close-on-exec, and the caller's to close.

    Parameters:
        s: the connection.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the new file descriptor.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        ENOTSUP: s is not an IPC connection.
        EPIPE: the peer closed its side first.
        EPROTO: the next byte in the stream carried no file descriptor (the
            receiving side is broken afterwards).
        ETIMEDOUT: the deadline passed first.
    """
    c = context()
    conn = _connection(c, s, "ipc_recvfd")
    conn._begin_recv("ipc_recvfd")
    space = socket.CMSG_SPACE(array.array("i").itemsize * 4)
    conn.rbusy = True
    generation = conn.generation
    try:
        while True:
            try:
                data, ancillary, _, _ = conn.sock.recvmsg(1, space, socket.MSG_CMSG_CLOEXEC)
                break
            except BlockingIOError:
                pass
            conn.wait_readable(deadline, "ipc_recvfd")
        fds = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not data:
            if conn.generation == generation:
                conn.indone = True
            for extra in fds:
                close_fd(extra)
            raise error(errno.EPIPE, "ipc_recvfd")
        if not fds:
            raise error(errno.EPROTO, "ipc_recvfd")
        for extra in fds[1:]:
            close_fd(extra)  # more than one: not what ipc_sendfd sends
        return fds[0]
    except BaseException as exc:
        if conn.generation == generation and not conn.indone:
            conn.inerr = True
        raise recv_error(exc, "ipc_recvfd") from None
    finally:
        if conn.generation == generation:
            conn.rbusy = False
