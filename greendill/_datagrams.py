"""IPC datagrams: what mm_ipc_* and the ipc_seqpacket_* handles share.

A SOCK_SEQPACKET connection is reliable and ordered, as a stream is, but keeps
message boundaries: every send is one datagram, all of it or nothing, and
every receive takes one whole datagram. File descriptors can travel with a
datagram (SCM_RIGHTS). greendill has two faces for such a connection:

- _seqpacket.py: ipc_seqpacket_*, a connection as a greendill message socket.
- _mmipc.py: mmlib's IPC API (mm_ipc_*), where connections are plain fds.

This module holds what both use: the socket object and its waits
(Datagrams), the codec of passed fds, the end-of-connection check, and the
table of mm_ipc_* fds.

Rules for both, and why:

- Every system call is made with MSG_DONTWAIT and tried first; only when it
  would block does the call wait, on the socket's own read or write watcher
  (_stream.Watched: deadlines, cancellation, EBADF when closed meanwhile,
  EBUSY for a second waiter). So the fd itself need not be non-blocking:
  mm_ipc_* fds stay in blocking mode, as mmlib's are, and can be handed to
  blocking code unchanged.
- End of connection. On Linux a receive returns 0 both for an empty datagram
  and at the end of the connection (the peer closed, or shut its sending side
  down), and no flag tells them apart (no MSG_EOR, nothing in FIONREAD or
  poll). greendill checks, and only when a receive brought 0 bytes, no fds
  and no flags (at_end): it peeks at the socket with SO_PASSCRED set for the
  duration of that one call, so that the kernel adds credentials to any
  datagram still queued. EAGAIN (nothing queued, no end) or a datagram queued
  means the 0 was an empty datagram, because the end, once reached, never
  goes away; the end now means it was the end. One case stays ambiguous: an
  empty datagram that the peer sent just before closing may be taken for the
  end. SO_PASSCRED is not left on: every datagram would then carry a control
  message, which other readers of the fd (mmlib's mm_ipc_recvmsg looks at the
  first control message only) would trip on.
- The kernel's one-time ECONNRESET: a peer that closes while it has datagrams
  of ours unread makes the next call on our end fail once with ECONNRESET,
  even a receive with datagrams of the peer's still queued. For a send it
  means the peer is gone (mm_ipc_sendmsg: EPIPE; msend: ECONNRESET); a
  receive ignores it and goes on with what the peer sent before closing, then
  reports the end.
- Received fds are close-on-exec (MSG_CMSG_CLOEXEC). Fds that a receive does
  not keep are closed: by the kernel when there is no room for them in the
  control buffer, by greendill when the kernel gave more than asked for.
"""

from __future__ import annotations

import array
import errno
import socket
import struct
from _socket import socket as _socket
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Optional

from ._errors import error
from ._scheduler import (
    Context,
    thread_local,
)
from ._stream import Watched, close_fd

__all__ = [
    "FLAGS_MASK",
    "MSG_CTRUNC",
    "MSG_TRUNC",
    "RECV_FLAGS",
    "SEND_FLAGS",
    "BorrowedSocket",
    "Datagrams",
    "at_end",
    "drop_endpoint",
    "endpoints",
    "fd_space",
    "fd_spaces",
    "rights",
    "take_fds",
    "writable_error",
]

_SOL_SOCKET = int(socket.SOL_SOCKET)
_SCM_RIGHTS = int(socket.SCM_RIGHTS)
_SO_PASSCRED = int(socket.SO_PASSCRED)
# Flags are plain ints: the socket module's are enum members, whose
# arithmetic costs a Python call each time.
#: A receive's message flag: the datagram was longer than the buffers.
MSG_TRUNC = int(socket.MSG_TRUNC)
#: A receive's message flag: fds (control data) were dropped.
MSG_CTRUNC = int(socket.MSG_CTRUNC)
#: Every send: never block, never raise SIGPIPE (EPIPE instead).
SEND_FLAGS = int(socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
#: Every receive that may take fds: never block, received fds close-on-exec.
RECV_FLAGS = int(socket.MSG_DONTWAIT | socket.MSG_CMSG_CLOEXEC)
#: The message flags a receive reports: the kernel echoes MSG_CMSG_CLOEXEC back.
FLAGS_MASK = ~int(socket.MSG_CMSG_CLOEXEC)
_PEEK_FLAGS = int(
    socket.MSG_DONTWAIT | socket.MSG_PEEK | socket.MSG_TRUNC | socket.MSG_CMSG_CLOEXEC
)
# Room for one SCM_CREDENTIALS message (struct ucred: pid, uid, gid) and no more.
_CRED_SPACE = socket.CMSG_SPACE(struct.calcsize("3i"))
_INT_SIZE = array.array("i").itemsize


# The codec of passed fds: no sockets, no waiting -----------------------------------


def rights(fds: Sequence[int]) -> Any:
    """The ancillary data that passes fds with a datagram (none for an empty list)."""
    if not fds:
        return ()
    return ((_SOL_SOCKET, _SCM_RIGHTS, array.array("i", fds)),)


#: fd_space's results for small counts (the receive path reads it first).
fd_spaces: dict[int, int] = {0: 0}


def fd_space(num_fds_max: int, function: str) -> int:
    """The control buffer size for receiving up to num_fds_max fds (0: none, no buffer)."""
    space = fd_spaces.get(num_fds_max)
    if space is None:
        if not isinstance(num_fds_max, int):
            raise TypeError(f"{function}: num_fds_max is an int, not {type(num_fds_max).__name__}")
        if num_fds_max < 0:
            raise error(errno.EINVAL, function)
        space = socket.CMSG_SPACE(num_fds_max * _INT_SIZE)
        if num_fds_max <= 256:
            fd_spaces[num_fds_max] = space
    return space


def take_fds(ancillary: list[Any], num_fds_max: int, flags: int) -> tuple[list[int], int]:
    """The fds of a receive's ancillary data, at most num_fds_max; the rest are closed.

    Returns the fds kept and the message flags, with MSG_CTRUNC added when
    fds were closed. (The kernel fills the control buffer up to its aligned
    size, which may hold one fd more than asked for.)
    """
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == _SOL_SOCKET and kind == _SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % _INT_SIZE])
    kept = fds.tolist()
    if len(kept) > num_fds_max:
        for extra in kept[num_fds_max:]:
            with suppress(OSError):
                close_fd(extra)
        del kept[num_fds_max:]
        flags |= MSG_CTRUNC
    return kept, flags


def at_end(sock: Any, owner: Optional[Datagrams] = None) -> bool:
    """After a receive that brought 0 bytes, no fds and no flags: was it the end of the connection?

    See the module's docstring: a peek with SO_PASSCRED on tells a queued
    datagram (credentials come with it) from the end (nothing comes). The
    kernel's one-time ECONNRESET, if it comes now, is noted in owner.
    """
    was_on = sock.getsockopt(_SOL_SOCKET, _SO_PASSCRED)
    if not was_on:
        sock.setsockopt(_SOL_SOCKET, _SO_PASSCRED, 1)
    try:
        while True:
            try:
                _, ancillary, flags, _ = sock.recvmsg_into([], _CRED_SPACE, _PEEK_FLAGS)
            except BlockingIOError:
                return False  # no end now, so none before: an empty datagram
            except ConnectionResetError:
                if owner is not None:
                    owner.peer_reset = True
                continue  # the peer closed meanwhile: look again
            # A datagram with fds: there is no room for them, but close any.
            take_fds(ancillary, 0, 0)
            return not ancillary and not flags & MSG_CTRUNC
    finally:
        if not was_on:
            sock.setsockopt(_SOL_SOCKET, _SO_PASSCRED, 0)


def writable_error(buffers: Any, exc: TypeError, function: str) -> BaseException:
    """What a receive's TypeError means: EINVAL for a read-only buffer, else the TypeError."""
    with suppress(TypeError):
        if any(memoryview(b).readonly for b in buffers):
            return error(errno.EINVAL, function)
    return exc


# The socket object ------------------------------------------------------------------


class BorrowedSocket(_socket):
    """A socket object over an fd that it does not own: being collected never closes the fd.

    close() still closes it; detach() lets it go.
    """

    __slots__ = ()

    def __del__(self) -> None:
        # No contextlib here: at interpreter exit module globals may be gone.
        try:  # noqa: SIM105
            self.detach()
        except OSError:
            pass


class Datagrams(Watched):
    """A connected SEQPACKET socket and its watchers: sending and receiving datagrams, waiting.

    No latching here (mm_ipc_* fds have none); the handle's class adds it.
    `rpredict` is mm_ipc_recvmsg's prediction (see there): how many more
    receives wait for readiness before trying. `peer_reset` tells that a
    receive took the kernel's one-time ECONNRESET (the peer closed with
    datagrams of ours unread) and went on: ipc_seqpacket_close reports it.
    """

    __slots__ = ("peer_reset", "rpredict")

    def __init__(self) -> None:
        super().__init__()
        self.rpredict = 0
        self.peer_reset = False

    def attach(self, c: Context, sock: _socket) -> None:
        """Take sock as it is: Watched.adopt without making it non-blocking (MSG_DONTWAIT does)."""
        self.rpredict = 0
        self.peer_reset = False
        self.sock = sock
        self.ctx = c
        self.is_open = True
        self.generation += 1

    def send_rest(
        self, exc: OSError, buffers: Any, ancillary: Any, deadline: int, function: str
    ) -> int:
        """The rest of a send whose first try failed with exc: wait for room and try again.

        Errors other than EAGAIN are raised as the kernel gave them.
        """
        sendmsg = self.sock.sendmsg
        while True:
            if exc.__class__ is not BlockingIOError:
                raise exc
            self.wait_writable(deadline, function)
            try:
                return sendmsg(buffers, ancillary, SEND_FLAGS)  # type: ignore[no-any-return]
            except OSError as again:
                exc = again

    def recv_rest(
        self, exc: OSError, buffers: Any, space: int, flags: int, deadline: int, function: str
    ) -> tuple[int, list[Any], int]:
        """The rest of a receive whose first try failed with exc: wait for a datagram.

        ECONNRESET is taken at once and the receive goes on (see the module's
        docstring). Returns recvmsg_into's size, ancillary data and flags.
        """
        recvmsg_into = self.sock.recvmsg_into
        while True:
            if exc.__class__ is BlockingIOError:
                self.wait_readable(deadline, function)
            elif exc.__class__ is ConnectionResetError:
                self.peer_reset = True
            else:
                raise exc
            try:
                n, ancillary, msg_flags, _ = recvmsg_into(buffers, space, flags)
                return n, ancillary, msg_flags
            except OSError as again:
                exc = again


# What the mm API shares: fds known to greendill, waiting without a handle ----------


def endpoints() -> dict[int, Datagrams]:
    """The calling thread's table of mm_ipc_* fds: fd -> its Datagrams object."""
    try:
        return thread_local.mm_fds  # type: ignore[no-any-return]
    except AttributeError:
        table: dict[int, Datagrams] = {}
        thread_local.mm_fds = table
        return table


def drop_endpoint(c: Context, fd: int) -> Optional[Datagrams]:
    """Forget what greendill knows of fd without closing it (waiters get EBADF)."""
    ep = endpoints().pop(fd, None)
    if ep is not None and ep.is_open:
        ep.sock.detach()
        ep.forget(c)
    return ep
