"""TERM: a terminal message that ends a conversation, over a message socket.

Messages pass through unchanged. One message, chosen at attach (0 to 32
bytes; empty is allowed and is then the empty message), means "I will send
no more": term_done sends it, and a peer that receives it gets EPIPE from
then on. term_detach is the closing handshake: it sends the terminal
message if term_done has not, drops what the peer still sends until the
peer's terminal message, and returns the message socket below, now free of
both conversations' messages.

Beyond libdill (whose code leaves a TODO here): msend of a message equal to
the terminal message is EINVAL, since the peer would take it for the end;
msend after term_done is EPIPE, and so is every mrecv after the peer's
terminal message (C sends and receives on, past its own handshake).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from typing import Any

from ._errors import error
from ._handles import (
    check_storage,
    close_quietly,
    hclose,
    hown,
    layer_object,
    new_handle,
    query_below,
    release,
)
from ._iface import RecvItem, msock_type, msock_vfs, recv_items
from ._scheduler import check_can_block, context

__all__ = [
    "is_terminal",
    "term_attach",
    "term_attach_mem",
    "term_detach",
    "term_done",
    "term_storage",
    "term_type",
]

#: The longest terminal message libdill allows.
MAX_TERMINAL = 32

#: The type id of a term socket, for hquery.
term_type = type("term_type", (), {"__repr__": lambda self: "term_type"})()


# The codec: no sockets here. ---------------------------------------------------


def is_terminal(message: Any, size: int, terminal: bytes) -> bool:
    """Whether a received message of size bytes, starting with message, is the terminal one."""
    return size == len(terminal) and message[:size] == terminal


# The socket. -------------------------------------------------------------------


class term_storage(msock_vfs):
    """A term socket; also its storage for term_attach_mem (libdill's struct term_storage)."""

    __slots__ = ("indone", "is_open", "lower", "outdone", "terminal", "u")

    def __init__(self) -> None:
        self.is_open = False
        self.u = -1

    def open(self, u: int, lower: Any, terminal: bytes) -> None:
        """Become the term socket over handle u, whose message interface is lower."""
        self.u = u
        self.lower = lower
        self.terminal = terminal
        self.indone = self.outdone = False
        self.is_open = True

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is msock_type or type is term_type:
            return self
        return None

    def close(self) -> None:
        """Close the term socket and the stack below it."""
        self.is_open = False
        u, self.u = self.u, -1
        hclose(u)

    # Sending.

    def msend(self, data: Any, deadline: int) -> None:
        self._check_send(data, "msend")
        self.lower.msend(data, deadline)

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        if sum(memoryview(b).nbytes for b in buffers) == len(self.terminal):
            self._check_send(b"".join(buffers), "msendl")
        elif self.outdone:
            raise error(errno.EPIPE, "msendl")
        self.lower.msendl(buffers, deadline)

    def _check_send(self, data: Any, function: str) -> None:
        if self.outdone:
            raise error(errno.EPIPE, function)
        if data == self.terminal:
            raise error(errno.EINVAL, function)

    # Receiving.

    def mrecv(self, maxlen: int, deadline: int) -> bytes:
        if self.indone:
            raise error(errno.EPIPE, "mrecv")
        message = self.lower.mrecv(max(maxlen, len(self.terminal)), deadline)
        if is_terminal(message, len(message), self.terminal):
            self.indone = True
            raise error(errno.EPIPE, "mrecv")
        if len(message) > maxlen:
            raise error(errno.EMSGSIZE, "mrecv")
        return bytes(message)

    def mrecv_into(self, buffer: Any, deadline: int) -> int:
        view = memoryview(buffer)
        if view.nbytes < len(self.terminal) or self.indone:
            return self.mrecvl((buffer,), deadline, "mrecv_into")
        size = int(self.lower.mrecv_into(buffer, deadline))
        if is_terminal(view.cast("B"), size, self.terminal):
            self.indone = True
            raise error(errno.EPIPE, "mrecv_into")
        return size

    def mrecvl(self, buffers: Sequence[RecvItem], deadline: int, function: str = "mrecvl") -> int:
        if self.indone:
            raise error(errno.EPIPE, function)
        items = recv_items(buffers, function)
        terminal = self.terminal
        if not terminal:
            size = int(self.lower.mrecvl(items, deadline))
            if size == 0:
                self.indone = True
                raise error(errno.EPIPE, function)
            return size
        # The first len(terminal) bytes come into a buffer of ours, so that
        # the caller's buffers get only real messages. No buffers: drop a
        # message of any size (an int item's bytes are dropped).
        head = bytearray(len(terminal))
        room = sum(i if isinstance(i, int) else i.nbytes for i in items) if items else sys.maxsize
        rest = _after(items, len(head)) if items else [sys.maxsize]
        size = int(self.lower.mrecvl([head, *rest], deadline))
        if is_terminal(head, size, terminal):
            self.indone = True
            raise error(errno.EPIPE, function)
        if size > room:
            raise error(errno.EMSGSIZE, function)
        _copy_into(items, memoryview(head)[: min(size, len(head))])
        return size


def _after(items: list[Any], skip: int) -> list[Any]:
    # items without their first skip bytes of room.
    rest = []
    for item in items:
        n = item if isinstance(item, int) else item.nbytes
        if skip >= n:
            skip -= n
            continue
        rest.append(item - skip if isinstance(item, int) else item[skip:])
        skip = 0
    return rest


def _copy_into(items: list[Any], data: memoryview) -> None:
    # Scatter data over the front of items (an int's bytes are dropped).
    for item in items:
        if not data:
            return
        n = min(item if isinstance(item, int) else item.nbytes, data.nbytes)
        if not isinstance(item, int):
            item[:n] = data[:n]
        data = data[n:]


# The functions. ------------------------------------------------------------------


def term_attach_mem(s: int, buf: Any, mem: term_storage) -> int:
    """Put a terminal-message handshake on a message socket, in caller's storage.

    Does what term_attach does, in mem (made by term_storage()), which can
    be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a message socket (one that answers msock_type).
        buf: the terminal message, 0 to 32 bytes (None: the empty message).
        mem: a term_storage() not in use.
    Returns: the handle of the new message socket; term_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: buf is longer than 32 bytes, or mem is None.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a message socket is EPROTO).
        EPROTO: s is not a message socket.
        ETIMEDOUT: never raised: attaching sends nothing.
    """
    return _attach(s, buf, mem, "term_attach_mem")


def term_attach(s: int, buf: Any) -> int:
    """Put a terminal-message handshake on a message socket.

    Messages pass through unchanged; buf is the message that ends the
    conversation (see term_done and term_detach). Nothing goes on the wire
    now. The new handle owns s: s is invalid from now on, and closed if this
    fails, whatever the reason. Closing the new handle closes s too.
    (libdill's man page gives this a deadline; its code has none.)

    Parameters:
        s: handle of a message socket (one that answers msock_type).
        buf: the terminal message, 0 to 32 bytes (None: the empty message,
            as C's NULL with length 0).
    Returns: the handle of the new message socket; term_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: buf is longer than 32 bytes.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a message socket is EPROTO).
        EPROTO: s is not a message socket.
        ETIMEDOUT: never raised: attaching sends nothing.
    """
    return _attach(s, buf, term_storage(), "term_attach")


def _attach(s: int, buf: Any, mem: Any, function: str) -> int:
    c = context()
    try:
        terminal = b"" if buf is None else bytes(memoryview(buf))
        if len(terminal) > MAX_TERMINAL:
            raise error(errno.EINVAL, function)
        check_storage(mem, term_storage, function)
        check_can_block(c, function)
    except BaseException:
        close_quietly(s)
        raise
    u = hown(s)
    lower = query_below(u, msock_type, function)
    mem.open(u, lower, terminal)
    return new_handle(c, mem)


def term_done(s: int, deadline: int = -1) -> None:
    """Send the terminal message: this side will send no more.

    The peer's receives fail with EPIPE once they reach it. Receiving goes
    on here until the peer's own terminal message.

    Parameters:
        s: handle of a term socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ENOTSUP: s is not a term socket.
        EPIPE: the terminal message was sent already.
        ETIMEDOUT: the deadline passed before the message was sent.
        (A failure of the socket below passes through: ECONNRESET, ...)
    """
    obj: term_storage = layer_object(context(), s, term_type, "term_done")
    if obj.outdone:
        raise error(errno.EPIPE, "term_done")
    obj.lower.msend(obj.terminal, deadline)
    obj.outdone = True


def term_detach(s: int, deadline: int = -1) -> int:
    """End the conversation with the terminal handshake and return the socket below.

    Sends the terminal message unless term_done did, then receives and drops
    the peer's messages until its terminal message (or the end of the
    socket below, as in libdill). On success the term handle is gone and the
    message socket below is the caller's; on failure both are closed.

    Parameters:
        s: handle of a term socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the message socket below.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ENOTSUP: s is not a term socket.
        ETIMEDOUT: the deadline passed before the peer's terminal message came.
        (A failure of the socket below passes through, and closes s: ECONNRESET, ...)
    """
    c = context()
    obj: term_storage = layer_object(c, s, term_type, "term_detach")
    try:
        if not obj.outdone:
            term_done(s, deadline)
        while not obj.indone:
            try:
                obj.mrecvl((), deadline)
            except OSError as exc:
                if exc.errno != errno.EPIPE:
                    raise
                break
    except BaseException:
        close_quietly(s)
        raise
    u, obj.u = obj.u, -1
    obj.is_open = False
    release(c, s)
    return u
