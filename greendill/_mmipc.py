"""mmlib's IPC API (mmsysio.h): datagram connections between local processes, passing fds.

mmlib's mm_ipc_* functions, function by function, green: connections are
AF_UNIX SOCK_SEQPACKET sockets, and servers listen in the Linux abstract
namespace exactly as mmlib's do, so greendill and mmlib programs on one
machine reach each other by the same name. The wire is the kernel's: one
datagram per mm_ipc_sendmsg, fds as SCM_RIGHTS.

From C to Python (docs/api-conventions.md's rules, and these):

- Connections are plain int fds, as in mmlib, not handles: any code can use
  them, and mm_close closes them. A server (struct mm_ipc_srv*) is an
  mm_ipc_srv object. mm_ipc_connected_pair returns the two fds.
- struct mm_ipc_msg is the class mm_ipc_msg: iov is a list of buffers
  (num_iov is its length), fds a list of ints (num_fds its length),
  num_fds_max and flags as in C; mm_ipc_recvmsg puts the received fds in a
  new list in msg.fds and the message flags (MSG_TRUNC, MSG_CTRUNC) in
  msg.flags. There is no `reserved`.
- -1 and errno become OSError; every call that can block (accept, connect,
  sendmsg, recvmsg) takes deadline=-1 last, yields to other coroutines while
  it waits, and raises Canceled when its coroutine is canceled (hclose).

Addresses. mmlib binds and connects with the whole struct sockaddr_un: the
name after a NUL byte, padded with NULs to the full 108-byte sun_path. The
kernel compares abstract addresses with their length, so the padded name is
another address than Python's b"\\0name"; greendill uses mmlib's form. A name
is a str or bytes of at most 107 bytes (ENAMETOOLONG beyond), with no NUL.

Decisions (where mmlib's documentation and its code disagree, or C says
nothing):

- mm_ipc_connect waits for a server to appear, as mmlib documents, until its
  deadline (ETIMEDOUT). mmlib's POSIX code fails at once with ECONNREFUSED;
  greendill follows the documentation because the port should behave as
  documented. Nothing signals a new abstract name (inotify sees only files),
  so it tries again after pauses that grow from 2 ms to at most 100 ms: a
  server that appears is reached within about 100 ms, and a waiting connect
  costs a few system calls a second. A full backlog (EAGAIN) waits the same
  way.
- Fds are close-on-exec. They stay in blocking mode, as mmlib's are (each
  call uses MSG_DONTWAIT), so blocking code may be handed them unchanged.
- The end of a connection: mm_ipc_recvmsg raises EPIPE (mmlib fails with
  error number 0). An empty datagram is returned as size 0; how greendill
  tells the two apart, and the one case where it cannot, is in _datagrams.py
  (an empty datagram sent just before the peer closed may read as the end).
- Sending once the peer has closed is EPIPE, also where the kernel says
  ECONNRESET (the peer closed with datagrams of ours unread).
- greendill keeps per-thread state for each fd it waits on (its watchers). It
  is made when mm_ipc_* makes the fd or first uses one made elsewhere, and
  forgotten by mm_close: close these fds with mm_close, not os.close, or a
  later fd with the same number may inherit stale state. One coroutine at a
  time may wait to send, and one to receive, on an fd (EBUSY otherwise).
"""

from __future__ import annotations

import errno
import os
import socket
from _socket import socket as _socket
from _socket import socketpair as _socketpair
from typing import Any, Optional, Union

from greenlet import getcurrent

from ._datagrams import (
    FLAGS_MASK,
    MSG_CTRUNC,
    MSG_TRUNC,
    RECV_FLAGS,
    SEND_FLAGS,
    BorrowedSocket,
    Datagrams,
    at_end,
    drop_endpoint,
    endpoints,
    fd_space,
    fd_spaces,
    rights,
    take_fds,
    writable_error,
)
from ._errors import error
from ._handles import lookup
from ._ipc import pause
from ._scheduler import cannot_block, check_can_block, context, thread_local
from ._seqpacket import ipc_seqpacket_type
from ._stream import Watched, accept_fd, close_fd, syscall_error
from ._time import now

__all__ = [
    "MSG_CTRUNC",
    "MSG_TRUNC",
    "ipc_seqpacket_recvmsg",
    "ipc_seqpacket_sendmsg",
    "mm_close",
    "mm_ipc_connect",
    "mm_ipc_connected_pair",
    "mm_ipc_msg",
    "mm_ipc_recvmsg",
    "mm_ipc_sendmsg",
    "mm_ipc_srv",
    "mm_ipc_srv_accept",
    "mm_ipc_srv_create",
    "mm_ipc_srv_destroy",
]

Name = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# sun_path's size on Linux; an abstract name takes all but its leading NUL.
_SUN_PATH = 108
# mmlib's listen() backlog.
_BACKLOG = 5
# How many receives after one that had to wait wait for readiness first.
_PREDICTED = 15
# mm_ipc_connect's pauses while no server listens (ms): doubling, capped.
_FIRST_PAUSE = 2
_LONGEST_PAUSE = 100


class mm_ipc_msg:
    """A datagram to send or receive (mmlib's struct mm_ipc_msg).

    The fields of C's struct, in Python:

    - iov, num_iov: iov is a list of buffers, bytes-like to send and writable
      (bytearray, memoryview) to receive into; num_iov is len(iov).
    - fds, num_fds: fds is a list of fds; mm_ipc_sendmsg passes them (the
      receiver gets duplicates, the caller keeps its own), mm_ipc_recvmsg
      stores the received ones there (a new list); num_fds is len(fds).
    - num_fds_max: how many received fds mm_ipc_recvmsg keeps; more are
      closed, and MSG_CTRUNC set in flags.
    - flags: set by mm_ipc_recvmsg to the message flags: MSG_TRUNC when the
      datagram was longer than the buffers, MSG_CTRUNC when fds were dropped.
      mm_ipc_sendmsg does not read it.
    - reserved: none.
    """

    __slots__ = ("fds", "flags", "iov", "num_fds_max")

    def __init__(
        self,
        iov: Optional[list[Any]] = None,
        fds: Optional[list[int]] = None,
        num_fds_max: int = 0,
        flags: int = 0,
    ) -> None:
        self.iov: list[Any] = [] if iov is None else iov
        self.fds: list[int] = [] if fds is None else fds
        self.num_fds_max = num_fds_max
        self.flags = flags

    @property
    def num_iov(self) -> int:
        """len(iov), C's num_iov."""
        return len(self.iov)

    @property
    def num_fds(self) -> int:
        """len(fds), C's num_fds."""
        return len(self.fds)

    def __repr__(self) -> str:
        return (
            f"mm_ipc_msg(iov=<{len(self.iov)} buffers>, fds={self.fds!r},"
            f" num_fds_max={self.num_fds_max}, flags={self.flags:#x})"
        )


class mm_ipc_srv(Watched):
    """An mm IPC server (mmlib's struct mm_ipc_srv): made by mm_ipc_srv_create."""

    __slots__ = ("name",)

    def __init__(self) -> None:
        super().__init__()
        self.name = b""

    def __repr__(self) -> str:
        state = "listening" if self.is_open else "destroyed"
        return f"<mm_ipc_srv {os.fsdecode(self.name)!r} {state}>"


def _address(addr: Any, function: str) -> bytes:
    # mmlib's abstract address: NUL, the name, NULs up to the whole sun_path.
    if addr is None:
        raise error(errno.EINVAL, function)
    name = os.fsencode(os.fspath(addr))
    if b"\0" in name:
        raise error(errno.EINVAL, function)  # no C string holds one
    if len(name) > _SUN_PATH - 1:
        raise error(errno.ENAMETOOLONG, function, os.fsdecode(name))
    return b"\0" + name + bytes(_SUN_PATH - 1 - len(name))


def _register(fd: int) -> int:
    """Make greendill's state for a new fd that mm_ipc_* made (it is not yet known)."""
    c = context()
    table = endpoints()
    if fd in table:
        # A stale entry: its fd was closed without mm_close and the number reused.
        drop_endpoint(c, fd)
    ep = Datagrams()
    ep.attach(c, BorrowedSocket(socket.AF_UNIX, socket.SOCK_SEQPACKET, 0, fd))
    table[fd] = ep
    return fd


def _endpoint(fd: Any, function: str) -> Datagrams:
    """greendill's state for fd, made on first use of an fd from elsewhere."""
    if not isinstance(fd, int):
        raise TypeError(f"{function}: fd is an int, not {type(fd).__name__}")
    ep = endpoints().get(fd)
    if ep is not None:
        return ep
    if fd < 0:
        raise error(errno.EBADF, function)
    try:
        sock = BorrowedSocket(fileno=fd)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
        sock.detach()
        raise error(errno.EINVAL, function)
    ep = Datagrams()
    ep.attach(context(), sock)
    endpoints()[fd] = ep
    return ep


def _may_block() -> bool:
    # Whether the caller may block (it is not canceled, nor in a close
    # callback); one that may not must try first. The thread's counter of
    # such greenlets keeps this cheap (_scheduler).
    c = thread_local.context  # there is one: the fd's state was made with it
    return not c.nonblocking or not cannot_block(c, getcurrent())


def _message(msg: Any, function: str) -> mm_ipc_msg:
    if msg is None:
        raise error(errno.EINVAL, function)
    if not isinstance(msg, mm_ipc_msg):
        raise TypeError(f"{function}: msg is an mm_ipc_msg, not {type(msg).__name__}")
    return msg


def _send_error(exc: BaseException, function: str) -> BaseException:
    # The peer gone is EPIPE, whichever of the two the kernel said.
    if isinstance(exc, OSError) and exc.errno:
        if exc.errno == errno.ECONNRESET:
            return error(errno.EPIPE, function)
        return error(exc.errno, function)
    return exc


# Servers --------------------------------------------------------------------------------


def mm_ipc_srv_create(addr: Name) -> mm_ipc_srv:
    """Create an IPC server listening on an abstract name.

    The server listens in the Linux abstract namespace, with mmlib's padded
    address (see the module's docstring), and a backlog of 5, as mmlib does.
    Only one server at a time may listen on a name; once it is destroyed the
    name is free again.

    Parameters:
        addr: the server's name: a str or bytes (a path's syntax, no file is
            made) of at most 107 bytes.
    Returns: the server, for mm_ipc_srv_accept and mm_ipc_srv_destroy.
    Errors:
        EADDRINUSE: another server listens on addr.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: addr is None or holds a NUL character.
        EMFILE: the process has no file descriptor left.
        ENAMETOOLONG: addr is longer than 107 bytes.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    address = _address(addr, "mm_ipc_srv_create")
    c = context()
    check_can_block(c, "mm_ipc_srv_create")
    try:
        sock = _socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError as exc:
        raise syscall_error(exc, "mm_ipc_srv_create") from None
    try:
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise syscall_error(exc, "mm_ipc_srv_create", address[1:].rstrip(b"\0")) from None
    srv = mm_ipc_srv()
    srv.name = address[1:].rstrip(b"\0")
    srv.adopt(c, sock)
    return srv


def mm_ipc_srv_destroy(srv: Optional[mm_ipc_srv]) -> None:
    """Stop a server: its name is free again.

    Connections not yet accepted are dropped (their clients see the end of
    the connection: EPIPE); accepted ones live on until they are closed. A
    coroutine waiting in mm_ipc_srv_accept on it gets EBADF. None, or a
    server destroyed already, is accepted and nothing is done.

    Parameters:
        srv: the server, or None.
    Returns: None.
    Errors: none.
    """
    if srv is None:
        return
    if not isinstance(srv, mm_ipc_srv):
        raise TypeError(f"mm_ipc_srv_destroy: srv is an mm_ipc_srv, not {type(srv).__name__}")
    if srv.is_open:
        srv.forget(context())


def mm_ipc_srv_accept(srv: mm_ipc_srv, deadline: int = -1) -> int:
    """Accept a connection on a server: the first pending one, or wait for one.

    Parameters:
        srv: the server.
        deadline: a point in time in ms (see now()); -1 for never, 0 to take
            only a connection that is already waiting.
    Returns: the new connection's fd (lowest free number), to close with mm_close.
    Errors:
        EBADF: srv was destroyed, or was destroyed while waiting.
        EBUSY: another coroutine is already waiting in mm_ipc_srv_accept on srv.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: srv is None.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
        ETIMEDOUT: the deadline passed before a connection came.
    """
    if srv is None:
        raise error(errno.EINVAL, "mm_ipc_srv_accept")
    if not isinstance(srv, mm_ipc_srv):
        raise TypeError(f"mm_ipc_srv_accept: srv is an mm_ipc_srv, not {type(srv).__name__}")
    if not srv.is_open:
        raise error(errno.EBADF, "mm_ipc_srv_accept")
    check_can_block(context(), "mm_ipc_srv_accept")
    fd, _ = accept_fd(srv, deadline, "mm_ipc_srv_accept")
    return _register(fd)


# Connecting ---------------------------------------------------------------------------


def mm_ipc_connect(addr: Name, deadline: int = -1) -> int:
    """Connect to the server listening on an abstract name; wait for one to appear.

    As mmlib documents: while no server listens on addr, mm_ipc_connect
    waits for one, trying again after pauses that grow from 2 ms to 100 ms,
    until the deadline. (mmlib's POSIX code fails at once with ECONNREFUSED
    instead; with deadline 0, greendill tries once and raises ETIMEDOUT.)

    Parameters:
        addr: the server's name, as mm_ipc_srv_create takes it.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the new connection's fd, to close with mm_close.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EINVAL: addr is None or holds a NUL character.
        EMFILE: the process has no file descriptor left.
        ENAMETOOLONG: addr is longer than 107 bytes.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
        ETIMEDOUT: no server accepted the connection before the deadline.
        (A stream socket listening on the same name does not count: Linux
        keeps abstract names apart by socket type.)
    """
    address = _address(addr, "mm_ipc_connect")
    c = context()
    check_can_block(c, "mm_ipc_connect")
    try:
        sock = _socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError as exc:
        raise syscall_error(exc, "mm_ipc_connect") from None
    try:
        sock.setblocking(False)
        wait = _FIRST_PAUSE
        while True:
            code = sock.connect_ex(address)
            if code == 0:
                break
            if code not in (errno.ECONNREFUSED, errno.EAGAIN):
                raise error(code, "mm_ipc_connect", os.fsdecode(address[1:].rstrip(b"\0")))
            # No server yet (or its backlog is full): nothing signals one.
            pause(c, now() + wait, deadline, "mm_ipc_connect")
            wait = min(wait * 2, _LONGEST_PAUSE)
        sock.setblocking(True)  # as mmlib's fds are; every call uses MSG_DONTWAIT
    except BaseException:
        sock.close()
        raise
    return _register(sock.detach())


def mm_ipc_connected_pair() -> tuple[int, int]:
    """Make two connected IPC endpoints (socketpair, SOCK_SEQPACKET).

    C's int fds[2] is the returned pair.

    Parameters: none.
    Returns: the two fds, each the other's peer, to close with mm_close.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    check_can_block(context(), "mm_ipc_connected_pair")
    try:
        a, b = _socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError as exc:
        raise syscall_error(exc, "mm_ipc_connected_pair") from None
    return _register(a.detach()), _register(b.detach())


# Sending and receiving -------------------------------------------------------------


def mm_ipc_sendmsg(fd: int, msg: mm_ipc_msg, deadline: int = -1) -> int:
    """Send one datagram, gathered from msg.iov, with the fds of msg.fds.

    All or nothing: the datagram is sent whole or not at all, and waits for
    room when the peer's queue is full. The receiver gets duplicates of the
    fds; the caller keeps its own. Sending never splits a datagram, so one
    longer than the socket's send buffer allows is EMSGSIZE.

    Parameters:
        fd: a connected IPC endpoint (mm_ipc_connect, mm_ipc_srv_accept,
            mm_ipc_connected_pair, or any UNIX SEQPACKET socket).
        msg: the mm_ipc_msg to send (iov, fds; flags is not read).
        deadline: a point in time in ms (see now()); -1 for never, 0 to send
            only if there is room at once.
    Returns: the number of bytes sent.
    Errors:
        EBADF: fd is not open, an fd in msg.fds is not open, or fd was closed
            with mm_close while waiting.
        EBUSY: another coroutine is already waiting to send on fd.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        EINVAL: msg is None; fd is not a UNIX SEQPACKET socket; or msg.fds
            holds more than 253 fds.
        EMSGSIZE: the datagram is too long for the socket.
        ENOTCONN: fd is not connected.
        ENOTSOCK: fd is not a socket.
        EPIPE: the peer has closed the connection.
        ETIMEDOUT: the deadline passed before there was room.
    """
    try:
        ep = thread_local.mm_fds[fd] if fd.__class__ is int else _endpoint(fd, "mm_ipc_sendmsg")
    except (AttributeError, KeyError):
        ep = _endpoint(fd, "mm_ipc_sendmsg")
    if msg.__class__ is not mm_ipc_msg:
        msg = _message(msg, "mm_ipc_sendmsg")
    iov = msg.iov
    fds = msg.fds
    ancillary = rights(fds) if fds else ()
    sendmsg = ep.sock.sendmsg
    try:
        while True:
            try:
                return sendmsg(iov, ancillary, SEND_FLAGS)  # type: ignore[no-any-return]
            except BlockingIOError:
                ep._wait(False, deadline, "mm_ipc_sendmsg")
    except OSError as exc:
        raise _send_error(exc, "mm_ipc_sendmsg") from None


def mm_ipc_recvmsg(fd: int, msg: mm_ipc_msg, deadline: int = -1) -> int:
    """Receive one datagram into msg.iov, and the fds that came with it into msg.fds.

    A datagram longer than the buffers is cut: the rest is dropped and
    MSG_TRUNC set in msg.flags. At most msg.num_fds_max fds are kept
    (close-on-exec, the caller's to close); more are closed and MSG_CTRUNC
    set. An empty datagram returns 0; the end of the connection is EPIPE
    (see the module's docstring for how they are told apart).

    Parameters:
        fd: a connected IPC endpoint.
        msg: the mm_ipc_msg to fill: iov (writable buffers) and num_fds_max
            are read; fds and flags are written.
        deadline: a point in time in ms (see now()); -1 for never, 0 to take
            only a datagram that is already there.
    Returns: the number of bytes stored in the buffers.
    Errors:
        EBADF: fd is not open, or was closed with mm_close while waiting.
        EBUSY: another coroutine is already waiting to receive on fd.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        EINVAL: msg is None, a buffer of msg.iov is read-only,
            msg.num_fds_max is negative, or fd is not a UNIX SEQPACKET socket.
        ENOTCONN: fd is not connected.
        ENOTSOCK: fd is not a socket.
        EPIPE: the peer closed the connection: no more datagrams.
        ETIMEDOUT: the deadline passed before a datagram came.
    """
    try:
        ep = thread_local.mm_fds[fd] if fd.__class__ is int else _endpoint(fd, "mm_ipc_recvmsg")
    except (AttributeError, KeyError):
        ep = _endpoint(fd, "mm_ipc_recvmsg")
    if msg.__class__ is not mm_ipc_msg:
        msg = _message(msg, "mm_ipc_recvmsg")
    iov = msg.iov
    num_fds_max = msg.num_fds_max
    space = fd_spaces.get(num_fds_max)
    if space is None:
        space = fd_space(num_fds_max, "mm_ipc_recvmsg")
    recvmsg_into = ep.sock.recvmsg_into
    try:
        if ep.rpredict and deadline != 0 and ep.reader is None and _may_block():
            # The prediction: a receive that had to wait is likely to be
            # followed by others that must (a conversation), so the next
            # _PREDICTED wait for readiness before they try, which saves a
            # system call that fails with EAGAIN. What is there already is
            # still received (readiness shows at once, after one pass of
            # the loop). A deadline of 0, a canceled coroutine and a second
            # receiver always try first.
            ep.rpredict -= 1
            ep._wait(True, deadline, "mm_ipc_recvmsg")
        # Datagrams.recv_rest, written out: this is every receive's path.
        while True:
            try:
                n, ancillary, flags, _ = recvmsg_into(iov, space, RECV_FLAGS)
                break
            except BlockingIOError:
                ep.rpredict = _PREDICTED
                ep._wait(True, deadline, "mm_ipc_recvmsg")
            except ConnectionResetError:
                pass  # the peer closed: what it sent before is still there
    except TypeError as exc:
        raise writable_error(iov, exc, "mm_ipc_recvmsg") from None
    except OSError as exc:
        raise error(exc.errno or errno.EIO, "mm_ipc_recvmsg") from None
    flags &= FLAGS_MASK
    if ancillary:
        msg.fds, msg.flags = take_fds(ancillary, num_fds_max, flags)
        return n  # type: ignore[no-any-return]
    if n == 0 and not flags:
        try:
            if at_end(ep.sock):
                raise error(errno.EPIPE, "mm_ipc_recvmsg")
        except OSError as exc:
            raise error(exc.errno or errno.EIO, "mm_ipc_recvmsg") from None
    msg.fds = []
    msg.flags = flags
    return n  # type: ignore[no-any-return]


def mm_close(fd: int) -> None:
    """Close an fd made by mm_ipc_* (or any fd), and forget greendill's state for it.

    A coroutine waiting on fd in mm_ipc_sendmsg or mm_ipc_recvmsg gets EBADF.

    Parameters:
        fd: the fd.
    Returns: None.
    Errors:
        EBADF: fd is not an open file descriptor.
    """
    if not isinstance(fd, int):
        raise TypeError(f"mm_close: fd is an int, not {type(fd).__name__}")
    ep = endpoints().pop(fd, None)
    try:
        if ep is not None and ep.is_open:
            ep.forget(context())
        else:
            close_fd(fd)
    except OSError as exc:
        raise error(exc.errno or errno.EIO, "mm_close") from None


# The same calls on a greendill handle ------------------------------------------------


def _seqpacket(s: int, function: str) -> Any:
    obj = lookup(context(), s, function)
    conn = obj.query(ipc_seqpacket_type)
    if conn is None:
        raise error(errno.ENOTSUP, function)
    return conn


def ipc_seqpacket_sendmsg(s: int, msg: mm_ipc_msg, deadline: int = -1) -> int:
    """Send one datagram with fds on an IPC message socket: mm_ipc_sendmsg on a handle.

    The message-socket rules of the handle apply (ipc_seqpacket_fromfd): a
    failure breaks sending, except when the kernel refuses the datagram as it
    stands (EMSGSIZE, EBADF for a bad fd in msg.fds, EINVAL for too many).

    Parameters:
        s: an IPC message socket (ipc_seqpacket_*).
        msg: the mm_ipc_msg to send (iov, fds).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the number of bytes sent.
    Errors:
        EBADF: s is not an open handle, or an fd in msg.fds is not open.
        EBUSY: another coroutine is already sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken: the peer closed, or an earlier
            send failed.
        EINVAL: msg is None, or msg.fds holds more than 253 fds.
        EMSGSIZE: the datagram is too long for the socket.
        ENOTSUP: s is not an IPC message socket.
        ETIMEDOUT: the deadline passed before there was room.
    """
    conn = _seqpacket(s, "ipc_seqpacket_sendmsg")
    msg = _message(msg, "ipc_seqpacket_sendmsg")
    ancillary = rights(msg.fds)
    return conn.send(msg.iov, ancillary, deadline, "ipc_seqpacket_sendmsg")  # type: ignore[no-any-return]


def ipc_seqpacket_recvmsg(s: int, msg: mm_ipc_msg, deadline: int = -1) -> int:
    """Receive one datagram and its fds on an IPC message socket: mm_ipc_recvmsg on a handle.

    As mm_ipc_recvmsg: a datagram longer than the buffers is cut (MSG_TRUNC
    in msg.flags, not an error), fds beyond msg.num_fds_max are closed
    (MSG_CTRUNC). The handle's rules apply otherwise: the end of the
    connection is EPIPE for good, other failures break receiving.

    Parameters:
        s: an IPC message socket.
        msg: the mm_ipc_msg to fill.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the number of bytes stored in the buffers.
    Errors:
        EBADF: s is not an open handle, or it was closed while waiting.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier receive failed: receiving is broken.
        EINVAL: msg is None, a buffer of msg.iov is read-only, or
            msg.num_fds_max is negative.
        ENOTSUP: s is not an IPC message socket.
        EPIPE: the peer closed the connection: no more datagrams.
        ETIMEDOUT: the deadline passed before a datagram came.
    """
    conn = _seqpacket(s, "ipc_seqpacket_recvmsg")
    msg = _message(msg, "ipc_seqpacket_recvmsg")
    num_fds_max = msg.num_fds_max
    space = fd_space(num_fds_max, "ipc_seqpacket_recvmsg")
    n, ancillary, flags = conn.recv(msg.iov, space, RECV_FLAGS, deadline, "ipc_seqpacket_recvmsg")
    if ancillary:
        msg.fds, msg.flags = take_fds(ancillary, num_fds_max, flags)
    else:
        msg.fds, msg.flags = [], flags
    return n  # type: ignore[no-any-return]
