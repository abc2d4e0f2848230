"""The byte-stream and message interfaces, and the generic socket calls on them.

libdill sockets are handles whose object answers hquery for one of two
interfaces. A byte stream (bsock_type) moves bytes with no boundaries: bsend
sends all of them or fails, brecv receives exactly the size asked for or
fails. A message socket (msock_type) moves whole messages. Every protocol,
greendill's and a user's alike, implements one of them on its object and
talks to the socket below only through the one that socket implements: this
is how protocols stack.

An implementation subclasses bsock_vfs or msock_vfs (libdill's struct
bsock_vfs and msock_vfs) and writes the two iolist methods, the only ones
libdill has; the single-buffer methods that the generic calls use come with
the base class, and a fast implementation overrides them too. An iolist is a
list of buffers: bytes-like objects to send; writable buffers to receive
into, or an int to receive and drop that many bytes.

Two more byte-stream methods serve layers that frame messages on a byte
stream (prefix, suffix, a user's): brecv_some returns whatever has arrived,
so that a layer can read ahead of a message boundary; bunrecv takes back
what a layer read ahead and did not use, so that detaching the layer loses
no byte. bunrecv is optional: a layer reads ahead only when the stream below
has it, and otherwise asks for exactly the bytes it knows it needs.

Which errno each failure gets is the implementation's: the generic calls add
only EBADF (no such handle), ENOTSUP (no such interface) and EINVAL (an
empty iolist).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any, Union

from ._errors import error
from ._handles import lookup
from ._scheduler import context, thread_local

__all__ = [
    "brecv",
    "brecv_into",
    "brecvl",
    "bsend",
    "bsendl",
    "bsock_type",
    "bsock_vfs",
    "byte_view",
    "fast_bsocks",
    "mrecv",
    "mrecv_into",
    "mrecvl",
    "msend",
    "msendl",
    "msock_type",
    "msock_vfs",
    "recv_items",
]

#: The type id of the byte-stream interface, for hquery.
bsock_type = type("bsock_type", (), {"__repr__": lambda self: "bsock_type"})()
#: The type id of the message interface, for hquery.
msock_type = type("msock_type", (), {"__repr__": lambda self: "msock_type"})()

#: What the receiving calls take in an iolist: a writable buffer, or an int
#: for that many bytes to drop (C's iol_base == NULL).
RecvItem = Union[int, bytearray, memoryview]


class bsock_vfs:
    """The byte-stream interface (libdill's struct bsock_vfs).

    Subclass it and implement bsendl and brecvl; bsend, brecv_into and brecv
    come with it, built on those, and a fast implementation overrides them too.
    """

    __slots__ = ()

    def bsendl(self, buffers: Sequence[Any], deadline: int) -> None:
        """Send every byte of the buffers, in order, or fail (raise OSError)."""
        raise NotImplementedError

    def brecvl(self, buffers: Sequence[RecvItem], deadline: int) -> None:
        """Fill every buffer (drop int-many bytes), in order, or fail."""
        raise NotImplementedError

    def bsend(self, data: Any, deadline: int) -> None:
        """Send every byte of data or fail."""
        self.bsendl((data,), deadline)

    def brecv_into(self, buffer: Any, deadline: int) -> None:
        """Fill buffer completely or fail."""
        self.brecvl((buffer,), deadline)

    def brecv(self, size: int, deadline: int) -> bytes:
        """Receive exactly size bytes or fail."""
        buffer = bytearray(size)
        self.brecv_into(buffer, deadline)
        return bytes(buffer)

    def brecv_some(self, buffer: Any, deadline: int) -> int:
        """Receive at least one byte (none for an empty buffer), at most len(buffer).

        Returns how many bytes it put at the start of buffer. It fails as
        brecv does: EPIPE at the end of the stream. This default receives
        exactly one byte, which is right on any byte stream; a stream that
        can do better overrides it.
        """
        view = memoryview(buffer).cast("B")
        if not view.nbytes:
            return 0
        self.brecv_into(view[:1], deadline)
        return 1

    # def bunrecv(self, data: bytes) -> None: optional (see the module's
    # docstring): put data back in front of the receiving side, so that the
    # next receive returns it first, before anything else. A class that
    # defines it promises that brecv_some may be asked for more than the
    # caller needs.


class msock_vfs:
    """The message interface (libdill's struct msock_vfs).

    Subclass it and implement msendl and mrecvl; msend, mrecv_into and mrecv
    come with it, built on those, and a fast implementation overrides them too.
    In mrecvl's list, an int stands for that many bytes of room whose
    bytes are dropped.
    """

    __slots__ = ()

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        """Send the buffers, joined, as one message, or fail."""
        raise NotImplementedError

    def mrecvl(self, buffers: Sequence[RecvItem], deadline: int) -> int:
        """Receive one message scattered over the buffers and return its size.

        An empty sequence drops one message (and still returns its size).
        A message longer than the buffers fails with EMSGSIZE.
        """
        raise NotImplementedError

    def msend(self, data: Any, deadline: int) -> None:
        """Send data as one message."""
        self.msendl((data,), deadline)

    def mrecv_into(self, buffer: Any, deadline: int) -> int:
        """Receive one message into buffer and return its size."""
        return self.mrecvl((buffer,), deadline)

    def mrecv(self, maxlen: int, deadline: int) -> bytes:
        """Receive one message of at most maxlen bytes and return it."""
        buffer = bytearray(maxlen)
        size = self.mrecv_into(buffer, deadline)
        del buffer[size:]
        return bytes(buffer)


#: Classes whose query(bsock_type) is the object itself (greendill's own
#: sockets register here): the generic calls then skip the query call.
fast_bsocks: set[type] = set()


def _bsock(s: int, function: str) -> Any:
    # _interface(s, bsock_type, function), written out: every byte-stream
    # call starts here.
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    try:
        obj = c.handles[s]
    except (KeyError, TypeError):
        return _interface(s, bsock_type, function)
    if obj.__class__ in fast_bsocks and s.__class__ is int:
        return obj
    return _interface(s, bsock_type, function)


def _interface(s: int, type: object, function: str) -> Any:
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    obj = c.handles.get(s) if s.__class__ is int else None
    if obj is None:
        obj = lookup(c, s, function)
    iface = obj.query(type)
    if iface is None:
        raise error(errno.ENOTSUP, function)
    return iface


def _check_iolist(buffers: Any, function: str) -> None:
    if buffers is None or len(buffers) == 0:
        raise error(errno.EINVAL, function)


def byte_view(data: Any, function: str) -> memoryview:
    """A flat byte view of data to send, or TypeError.

    For implementations of bsend and bsendl: checked before any I/O, so that
    a bad argument breaks nothing (it does not latch the sending side).
    """
    try:
        view = memoryview(data)
        if view.c_contiguous:
            return view.cast("B") if view.format != "B" or view.ndim != 1 else view
    except TypeError:
        pass
    raise TypeError(
        f"{function}: data is a C-contiguous bytes-like object, not {type(data).__name__}"
    )


def recv_items(buffers: Sequence[RecvItem], function: str) -> list[Any]:
    """A receiving iolist checked: flat byte views of the buffers, and the ints.

    For implementations of brecvl and mrecvl. EINVAL for a read-only
    buffer or a negative int.
    """
    items: list[Any] = []
    for item in buffers:
        if isinstance(item, int):
            if item < 0:
                raise error(errno.EINVAL, function)
            items.append(item)
        else:
            view = memoryview(item)
            if view.readonly:
                raise error(errno.EINVAL, function)
            items.append(view.cast("B") if view.format != "B" or view.ndim != 1 else view)
    return items


def bsend(s: int, data: Any, deadline: int = -1) -> None:
    """Send data on a byte-stream socket: every byte, or fail.

    On failure some of the bytes may have been sent; the socket's sending
    side is then broken (see the protocol's page).

    Parameters:
        s: a byte-stream socket.
        data: a bytes-like object.
        deadline: a point in time in ms (see now()); -1 for never, 0 to send
            only what can be sent at once.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken (reset by the peer, or an earlier
            send failed).
        EINVAL: never raised by greendill's byte streams (TCP, IPC, TLS):
            libdill's EINVAL is a malformed iolist, and bsend's one buffer
            cannot be one (libdill's bsend cannot raise it either); data
            that is not bytes-like raises TypeError. A user's bsock_vfs may
            raise it.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the sending side was closed (done) earlier.
        ETIMEDOUT: the deadline passed before every byte was sent.
    """
    # _bsock(s, "bsend"), written out: bsend and brecv are every byte
    # stream's hot path, and the call is 5% of a socket ping-pong. The
    # table is indexed rather than searched with get(), and s's type checked
    # after (1.0 and True find handle 1; _interface sorts them out).
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    try:
        obj: Any = c.handles[s]
    except (KeyError, TypeError):
        obj = None
    if obj.__class__ not in fast_bsocks or s.__class__ is not int:
        obj = _interface(s, bsock_type, "bsend")
    obj.bsend(data, deadline)


def bsendl(s: int, buffers: Sequence[Any], deadline: int = -1) -> None:
    """Send a list of buffers on a byte-stream socket, in order: every byte, or fail.

    Parameters:
        s: a byte-stream socket.
        buffers: a non-empty sequence of bytes-like objects (C's iolist).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        EINVAL: buffers is empty or None.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the sending side was closed (done) earlier.
        ETIMEDOUT: the deadline passed before every byte was sent.
    """
    _check_iolist(buffers, "bsendl")
    _interface(s, bsock_type, "bsendl").bsendl(buffers, deadline)


def brecv(s: int, size: int, deadline: int = -1) -> bytes:
    """Receive exactly size bytes from a byte-stream socket, or fail.

    Bytes received before a failure are lost.

    Parameters:
        s: a byte-stream socket.
        size: how many bytes to receive.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the size bytes.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken (an earlier receive failed).
        EINVAL: size is negative.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the peer closed its side before size bytes came.
        ETIMEDOUT: the deadline passed before size bytes came.
    """
    if size < 0:
        raise error(errno.EINVAL, "brecv")
    # _bsock(s, "brecv"), written out (see bsend).
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    try:
        obj: Any = c.handles[s]
    except (KeyError, TypeError):
        obj = None
    if obj.__class__ not in fast_bsocks or s.__class__ is not int:
        obj = _interface(s, bsock_type, "brecv")
    data = obj.brecv(size, deadline)
    return data if data.__class__ is bytes else bytes(data)


def brecv_into(s: int, buffer: Any, deadline: int = -1) -> int:
    """Fill buffer from a byte-stream socket, or fail (no copy).

    Parameters:
        s: a byte-stream socket.
        buffer: a writable bytes-like object (bytearray, memoryview, ...).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: len(buffer) in bytes.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken (an earlier receive failed).
        EINVAL: buffer is not writable.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the peer closed its side before the buffer was full.
        ETIMEDOUT: the deadline passed before the buffer was full.
    """
    # _bsock(s, "brecv_into"), written out (see bsend).
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    try:
        obj: Any = c.handles[s]
    except (KeyError, TypeError):
        obj = None
    if obj.__class__ not in fast_bsocks or s.__class__ is not int:
        obj = _interface(s, bsock_type, "brecv_into")
    obj.brecv_into(buffer, deadline)
    if buffer.__class__ is bytearray:
        return len(buffer)  # saves making a memoryview for the common case
    return memoryview(buffer).nbytes


def brecvl(s: int, buffers: Sequence[RecvItem], deadline: int = -1) -> None:
    """Fill a list of buffers from a byte-stream socket, in order, or fail.

    An int in the list receives and drops that many bytes (C's NULL base).

    Parameters:
        s: a byte-stream socket.
        buffers: a non-empty sequence of writable buffers and ints.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken (an earlier receive failed).
        EINVAL: buffers is empty or None, or holds a negative int.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the peer closed its side before every buffer was full.
        ETIMEDOUT: the deadline passed before every buffer was full.
    """
    _check_iolist(buffers, "brecvl")
    _interface(s, bsock_type, "brecvl").brecvl(buffers, deadline)


def msend(s: int, data: Any, deadline: int = -1) -> None:
    """Send data as one message on a message socket.

    Parameters:
        s: a message socket.
        data: a bytes-like object.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        EINVAL: data is not valid for the protocol.
        EMSGSIZE: the message is too long for the protocol.
        ENOTSUP: s is not a message socket.
        EPIPE: the sending side was closed (done) earlier.
        ETIMEDOUT: the deadline passed before the message was sent.
    """
    _interface(s, msock_type, "msend").msend(data, deadline)


def msendl(s: int, buffers: Sequence[Any], deadline: int = -1) -> None:
    """Send a list of buffers, joined, as one message on a message socket.

    Parameters:
        s: a message socket.
        buffers: a non-empty sequence of bytes-like objects.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        EINVAL: buffers is empty or None.
        EMSGSIZE: the message is too long for the protocol.
        ENOTSUP: s is not a message socket.
        EPIPE: the sending side was closed (done) earlier.
        ETIMEDOUT: the deadline passed before the message was sent.
    """
    _check_iolist(buffers, "msendl")
    _interface(s, msock_type, "msendl").msendl(buffers, deadline)


def mrecv(s: int, maxlen: int, deadline: int = -1) -> bytes:
    """Receive one message of at most maxlen bytes from a message socket.

    Parameters:
        s: a message socket.
        maxlen: the longest message accepted.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the message.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        EINVAL: maxlen is negative.
        EMSGSIZE: the message is longer than maxlen.
        ENOTSUP: s is not a message socket.
        EPIPE: the peer closed its side (done) before a message came.
        ETIMEDOUT: the deadline passed before a message came.
    """
    if maxlen < 0:
        raise error(errno.EINVAL, "mrecv")
    data = _interface(s, msock_type, "mrecv").mrecv(maxlen, deadline)
    return data if data.__class__ is bytes else bytes(data)


def mrecv_into(s: int, buffer: Any, deadline: int = -1) -> int:
    """Receive one message into buffer (no copy) and return its size.

    Parameters:
        s: a message socket.
        buffer: a writable bytes-like object.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the size of the message, at most len(buffer).
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        EINVAL: buffer is not writable.
        EMSGSIZE: the message is longer than buffer.
        ENOTSUP: s is not a message socket.
        EPIPE: the peer closed its side (done) before a message came.
        ETIMEDOUT: the deadline passed before a message came.
    """
    return int(_interface(s, msock_type, "mrecv_into").mrecv_into(buffer, deadline))


def mrecvl(s: int, buffers: Sequence[RecvItem], deadline: int = -1) -> int:
    """Receive one message scattered over a list of buffers; return its size.

    An int in the list receives and drops that many bytes. An empty list
    drops one whole message (C's NULL iolist) and returns its size.

    Parameters:
        s: a message socket.
        buffers: a sequence of writable buffers and ints, or empty.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the size of the message.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection is broken.
        EINVAL: buffers is None, or holds a negative int.
        EMSGSIZE: the message is longer than the buffers.
        ENOTSUP: s is not a message socket.
        EPIPE: the peer closed its side (done) before a message came.
        ETIMEDOUT: the deadline passed before a message came.
    """
    if buffers is None:
        raise error(errno.EINVAL, "mrecvl")
    return int(_interface(s, msock_type, "mrecvl").mrecvl(buffers, deadline))
