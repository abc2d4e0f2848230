"""TCP: byte streams over IPv4 and IPv6.

A TCP connection is a byte stream (bsock_type) with the rules of _stream.py:
all or nothing, error latching per direction, tcp_done to half-close
(FIN), tcp_close to close in order, hclose to close at once: the socket is
closed with SO_LINGER 0, so unsent data is dropped and the peer sees a reset
(ECONNRESET), as libdill does.

tcp_listen sets SO_REUSEADDR; with port 0 the port the system chose is
written back into the ipaddr. Connections get TCP_NODELAY (greendill's
choice: a request/response exchange of small writes otherwise stalls on
Nagle's algorithm and delayed ACKs; bsend hands over whole buffers anyway).
"""

from __future__ import annotations

import errno
import socket
from _socket import socket as _socket
from typing import Any, Optional

from ._errors import error
from ._handles import lookup, new_handle
from ._ipaddr import ipaddr
from ._scheduler import Context, check_can_block, context
from ._stream import (
    FdOrSocket,
    StreamSocket,
    Watched,
    accept_fd,
    check_storage,
    close_stream,
    done_stream,
    handle_from_fd,
    register_fast_bsock,
    syscall_error,
)

__all__ = [
    "tcp_accept",
    "tcp_accept_mem",
    "tcp_close",
    "tcp_connect",
    "tcp_connect_mem",
    "tcp_done",
    "tcp_fromfd",
    "tcp_fromfd_mem",
    "tcp_listen",
    "tcp_listen_mem",
    "tcp_listener_fromfd",
    "tcp_listener_fromfd_mem",
    "tcp_listener_storage",
    "tcp_storage",
]

# The type ids of TCP connections and listeners, for hquery.
tcp_type = type("tcp_type", (), {"__repr__": lambda self: "tcp_type"})()
tcp_listener_type = type("tcp_listener_type", (), {"__repr__": lambda self: "tcp_listener_type"})()

# The address families tcp_fromfd and tcp_listener_fromfd accept.
_FAMILIES = (socket.AF_INET, socket.AF_INET6)


@register_fast_bsock
class tcp_storage(StreamSocket):
    """Memory for a TCP connection (libdill's struct tcp_storage).

    For tcp_accept_mem, tcp_connect_mem and tcp_fromfd_mem: the connection
    lives in this object, which can be used again once it is closed.
    """

    __slots__ = ()
    type_id = tcp_type
    hard_close_resets = True

    def open(self, c: Context, sock: Any) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().open(c, sock)


class tcp_listener_storage(Watched):
    """Memory for a TCP listener (libdill's struct tcp_listener_storage)."""

    __slots__ = ()

    def query(self, type: object) -> Any:
        return self if type is tcp_listener_type else None

    def close(self) -> None:
        self.forget(context())


def _check_ipaddr(a: Any, function: str) -> ipaddr:
    if a is None:
        raise error(errno.EINVAL, function)
    if not isinstance(a, ipaddr):
        raise TypeError(f"{function}: the address is an ipaddr, not {type(a).__name__}")
    return a


# Listeners ----------------------------------------------------------------


def tcp_listen(addr: ipaddr, backlog: int) -> int:
    """Start listening for TCP connections on a local address.

    The socket has SO_REUSEADDR. If addr's port is 0, the system chooses one
    and it is written back into addr (ipaddr_port(addr) tells it).

    Parameters:
        addr: the local address (see ipaddr_local).
        backlog: how many connections may wait to be accepted.
    Returns: the handle of the listener.
    Errors:
        EADDRINUSE: another socket listens on the address.
        EADDRNOTAVAIL: the address is not one of this machine's.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: addr is None, or backlog is negative.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return _listen(addr, backlog, tcp_listener_storage(), "tcp_listen")


def tcp_listen_mem(addr: ipaddr, backlog: int, mem: tcp_listener_storage) -> int:
    """Start listening, as tcp_listen does, with the listener in mem.

    Parameters:
        addr: the local address.
        backlog: how many connections may wait to be accepted.
        mem: a tcp_listener_storage() not in use.
    Returns: the handle of the listener.
    Errors:
        EADDRINUSE, EADDRNOTAVAIL, ECANCELED, EMFILE, ENFILE: as tcp_listen.
        EBUSY: mem holds a listener that is still open.
        EINVAL: mem or addr is None, or backlog is negative.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, tcp_listener_storage, "tcp_listen_mem")
    return _listen(addr, backlog, mem, "tcp_listen_mem")


def _listen(addr: Any, backlog: int, mem: tcp_listener_storage, function: str) -> int:
    addr = _check_ipaddr(addr, function)
    if not isinstance(backlog, int):
        raise TypeError(f"{function}: backlog is an int, not {type(backlog).__name__}")
    if backlog < 0:
        raise error(errno.EINVAL, function)
    c = context()
    check_can_block(c, function)
    try:
        sock = _socket(addr.family, socket.SOCK_STREAM)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr.sockaddr())
        sock.listen(backlog)
        if addr.port == 0:
            addr.port = sock.getsockname()[1]
    except OSError as exc:
        sock.close()
        raise syscall_error(exc, function, addr) from None
    mem.adopt(c, sock)
    return new_handle(c, mem)


def tcp_accept(ls: int, deadline: int = -1, *, addr: Optional[ipaddr] = None) -> int:
    """Accept a connection on a TCP listener.

    Connections that were aborted before they could be accepted are skipped.

    Parameters:
        ls: the listener.
        deadline: a point in time in ms (see now()); -1 for never, 0 to take
            only a connection that is already waiting.
        addr: an ipaddr to fill with the peer's address (C's out-parameter),
            or None.
    Returns: the handle of the new connection.
    Errors:
        EBADF: ls is not an open handle, or it was closed while waiting.
        EBUSY: another coroutine is already waiting in an accept on ls.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
        ENOTSUP: ls is not a TCP listener.
        ETIMEDOUT: the deadline passed before a connection came.
    """
    return _accept(ls, tcp_storage(), deadline, addr, "tcp_accept")


def tcp_accept_mem(
    ls: int, mem: tcp_storage, deadline: int = -1, *, addr: Optional[ipaddr] = None
) -> int:
    """Accept a connection, as tcp_accept does, with the connection in mem.

    Parameters:
        ls: the listener.
        mem: a tcp_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
        addr: an ipaddr to fill with the peer's address, or None.
    Returns: the handle of the new connection.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE, ENOTSUP, ETIMEDOUT: as tcp_accept.
        EBUSY: mem holds a connection that is still open, or another coroutine
            is already waiting in an accept on ls.
        EINVAL: mem is None.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, tcp_storage, "tcp_accept_mem")
    return _accept(ls, mem, deadline, addr, "tcp_accept_mem")


def _accept(ls: int, mem: tcp_storage, deadline: int, addr: Any, function: str) -> int:
    if addr is not None:
        _check_ipaddr(addr, function)
    c = context()
    listener = lookup(c, ls, function)
    if listener.query(tcp_listener_type) is None:
        raise error(errno.ENOTSUP, function)
    check_can_block(c, function)  # it makes a handle: libdill checks first
    fd, peer = accept_fd(listener, deadline, function)
    sock = _socket(listener.sock.family, socket.SOCK_STREAM, 0, fd)
    if addr is not None:
        addr.set_sockaddr(sock.family, peer)
    mem.open(c, sock)
    return new_handle(c, mem)


# Connecting ------------------------------------------------------------------


def tcp_connect(addr: ipaddr, deadline: int = -1) -> int:
    """Connect to a TCP listener.

    Parameters:
        addr: the remote address (see ipaddr_remote).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection.
    Errors:
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNREFUSED: nothing listens at the address.
        ECONNRESET: the peer reset the connection while it was being made.
        EHOSTUNREACH: no route to the host.
        EINVAL: addr is None.
        EMFILE: the process has no file descriptor left.
        ENETDOWN: the network is down.
        ENETUNREACH: no route to the network.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
        ETIMEDOUT: the deadline passed before the connection was made.
    """
    return _connect(addr, tcp_storage(), deadline, "tcp_connect")


def tcp_connect_mem(addr: ipaddr, mem: tcp_storage, deadline: int = -1) -> int:
    """Connect, as tcp_connect does, with the connection in mem.

    Parameters:
        addr: the remote address.
        mem: a tcp_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the new connection.
    Errors:
        ECANCELED, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, EMFILE, ENETDOWN,
        ENETUNREACH, ENFILE, ETIMEDOUT: as tcp_connect.
        EBUSY: mem holds a connection that is still open.
        EINVAL: mem or addr is None.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, tcp_storage, "tcp_connect_mem")
    return _connect(addr, mem, deadline, "tcp_connect_mem")


def _connect(addr: Any, mem: tcp_storage, deadline: int, function: str) -> int:
    addr = _check_ipaddr(addr, function)
    c = context()
    check_can_block(c, function)
    try:
        sock = _socket(addr.family, socket.SOCK_STREAM)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    # The connection waits on its own watchers: it is adopted before it connects.
    mem.open(c, sock)
    try:
        code = sock.connect_ex(addr.sockaddr())
        if code == errno.EINPROGRESS:
            mem.wait_writable(deadline, function)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise error(code, function, repr(addr))
    except BaseException:
        mem.forget(c)
        raise
    return new_handle(c, mem)


# Adopting existing sockets --------------------------------------------------------


def tcp_fromfd(fd: FdOrSocket) -> int:
    """Make a TCP connection of an existing connected TCP socket.

    The connection takes the socket over: fd itself is closed, and the
    handle owns a duplicate of it. fd may also be a socket object
    (socket.socket, gevent's socket under monkeypatching): the object is
    closed (its fileno() becomes -1) and the handle owns a duplicate of its
    socket. If the call fails, fd is left open, number or object.

    Parameters:
        fd: a connected AF_INET or AF_INET6 SOCK_STREAM socket's
            file descriptor, or a socket object of one.
    Returns: the handle of the connection.
    Errors:
        EBADF: fd is not an open file descriptor (or a closed socket object).
        ECANCELED: the calling coroutine was canceled.
        EINVAL: fd is not a connected TCP socket.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return handle_from_fd(fd, tcp_storage(), _FAMILIES, "tcp_fromfd")


def tcp_fromfd_mem(fd: FdOrSocket, mem: tcp_storage) -> int:
    """Make a TCP connection of fd, as tcp_fromfd does, in mem.

    Parameters:
        fd: a connected TCP socket's file descriptor, or a socket object of one.
        mem: a tcp_storage() not in use.
    Returns: the handle of the connection.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE: as tcp_fromfd.
        EBUSY: mem holds a connection that is still open.
        EINVAL: mem is None, or fd is not a connected TCP socket.
        ENOMEM: never raised.
    """
    return handle_from_fd(
        fd, check_storage(mem, tcp_storage, "tcp_fromfd_mem"), _FAMILIES, "tcp_fromfd_mem"
    )


def tcp_listener_fromfd(fd: FdOrSocket) -> int:
    """Make a TCP listener of an existing listening TCP socket.

    The listener takes the socket over: fd itself is closed. fd may also be
    a socket object (socket.socket, gevent's socket under monkeypatching):
    the object is closed and the listener owns a duplicate of its socket.
    If the call fails, fd is left open, number or object.

    Parameters:
        fd: a listening AF_INET or AF_INET6 SOCK_STREAM socket's
            file descriptor, or a socket object of one.
    Returns: the handle of the listener.
    Errors:
        EBADF: fd is not an open file descriptor (or a closed socket object).
        ECANCELED: the calling coroutine was canceled.
        EINVAL: fd is not a listening TCP socket.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return handle_from_fd(fd, tcp_listener_storage(), _FAMILIES, "tcp_listener_fromfd")


def tcp_listener_fromfd_mem(fd: FdOrSocket, mem: tcp_listener_storage) -> int:
    """Make a TCP listener of fd, as tcp_listener_fromfd does, in mem.

    Parameters:
        fd: a listening TCP socket's file descriptor, or a socket object of one.
        mem: a tcp_listener_storage() not in use.
    Returns: the handle of the listener.
    Errors:
        EBADF, ECANCELED, EMFILE, ENFILE: as tcp_listener_fromfd.
        EBUSY: mem holds a listener that is still open.
        EINVAL: mem is None, or fd is not a listening TCP socket.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, tcp_listener_storage, "tcp_listener_fromfd_mem")
    return handle_from_fd(fd, mem, _FAMILIES, "tcp_listener_fromfd_mem")


# Half-close and orderly close ------------------------------------------------------


def tcp_done(s: int, deadline: int = -1) -> None:
    """Half-close a TCP connection: send FIN, no more sending.

    The peer receives everything sent before, then EPIPE. Receiving goes on
    working. tcp_done does not block; the deadline is there for libdill's
    signature.

    Parameters:
        s: the connection.
        deadline: unused.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        ECONNRESET: sending failed earlier: the connection is broken.
        ENOTSUP: s is not a TCP connection.
        EPIPE: tcp_done was called already.
        ETIMEDOUT: never raised: tcp_done does not block.
    """
    done_stream(s, tcp_type, "tcp_done")


def tcp_close(s: int, deadline: int = -1) -> None:
    """Close a TCP connection in order, or a listener.

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
        ENOTSUP: s is neither a TCP connection nor a TCP listener (the handle
            is not closed then).
        ETIMEDOUT: the peer did not close its side before the deadline.
    """
    close_stream(s, tcp_type, tcp_listener_type, deadline, "tcp_close")
