"""SUFFIX: messages ended by a delimiter, over a byte stream.

Each message goes on the wire as its bytes followed by the suffix, a
delimiter of 1 to 32 bytes chosen at attach ("\\r\\n" for text lines):
libdill's layout, byte for byte, with no handshake. A message ends where
the suffix first appears. suffix_detach puts nothing on the wire; the bytes
read ahead of the last message received go back to the byte stream it
returns.

Beyond libdill: a message longer than the receiver's room is EMSGSIZE (C
truncates it silently and returns the full size), and a message that would
not come out whole at the other end, because the suffix appears in it, or
its end and the suffix form one earlier, is EINVAL at the sender, which
sends nothing and stays usable (C sends it, and the peer reads it in
pieces). Every other failure breaks its direction for good, as in libdill,
but for the end of the stream between two messages: the peer's orderly end,
EPIPE from then on, after which suffix_detach still gives the stream back
(as prefix does; libdill latches it as a failure).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any, Optional

from ._errors import error
from ._handles import (
    check_storage,
    close_quietly,
    hown,
    new_handle,
    query_below,
)
from ._iface import RecvItem, bsock_type, msock_type, recv_items
from ._readahead import FramingLayer, detach_framing
from ._scheduler import check_can_block, context

__all__ = [
    "decode_suffixed",
    "encode_suffixed",
    "safe_read_size",
    "suffix_attach",
    "suffix_attach_mem",
    "suffix_detach",
    "suffix_storage",
    "suffix_type",
]

#: The longest suffix libdill allows.
MAX_SUFFIX = 32

#: The type id of a suffix socket, for hquery.
suffix_type = type("suffix_type", (), {"__repr__": lambda self: "suffix_type"})()


# The codec: no sockets here. ---------------------------------------------------


def encode_suffixed(message: bytes, suffix: bytes) -> bytes:
    """message + suffix, or EINVAL if the receiver would find the suffix earlier."""
    wire = message + suffix
    if wire.find(suffix) != len(message):
        raise error(errno.EINVAL, "msend")
    return wire


def decode_suffixed(buffer: bytearray, suffix: bytes, maxlen: int) -> Optional[bytes]:
    """Take the first whole message off the front of buffer (h11's reader contract).

    Returns None, leaving buffer as it is, while no suffix has come; raises
    EMSGSIZE as soon as the message is known to be longer than maxlen.
    """
    end = buffer.find(suffix)
    if end < 0:
        if len(buffer) - len(suffix) >= maxlen:
            raise error(errno.EMSGSIZE, "mrecv")
        return None
    if end > maxlen:
        raise error(errno.EMSGSIZE, "mrecv")
    message = bytes(buffer[:end])
    del buffer[: end + len(suffix)]
    return message


def safe_read_size(tail: Any, suffix: bytes) -> int:
    """How many more bytes can be read without passing a suffix that may end in them.

    tail: the last received bytes (at least len(suffix) - 1 of them when
    there are), in which no suffix ends. When they end with the first k bytes
    of the suffix, the earliest a suffix can end is len(suffix) - k bytes on.
    """
    length = len(suffix)
    for k in range(min(length - 1, len(tail)), 0, -1):
        if tail[len(tail) - k :] == suffix[:k]:
            return length - k
    return length


# The socket. -------------------------------------------------------------------


class suffix_storage(FramingLayer):
    """A suffix socket; also its storage for suffix_attach_mem (libdill's struct suffix_storage)."""

    __slots__ = ("suffix",)

    def open(self, u: int, lower: Any, suffix: bytes) -> None:
        """Become the suffix socket over handle u, whose byte-stream interface is lower."""
        self.open_over(u, lower)
        self.suffix = suffix

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is msock_type or type is suffix_type:
            return self
        return None

    # Sending.

    def msend(self, data: Any, deadline: int) -> None:
        self._send(bytes(memoryview(data)), deadline, "msend")

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self._send(b"".join(buffers), deadline, "msendl")

    def _send(self, message: bytes, deadline: int, function: str) -> None:
        self.begin_send(function)
        wire = encode_suffixed(message, self.suffix)
        self.sbusy = True
        generation = self.generation
        try:
            self.lower.bsend(wire, deadline)
        except BaseException:
            if self.generation == generation:
                self.outerr = True
            raise
        finally:
            if self.generation == generation:
                self.sbusy = False

    # Receiving.

    def mrecv(self, maxlen: int, deadline: int) -> bytes:
        self.begin_recv("mrecv")
        self.rbusy = True
        generation = self.generation
        mark = self.reader.taken
        try:
            size = self._find_end(maxlen, deadline, "mrecv")
            message = self.reader.take(size)
            self.reader.skip(len(self.suffix))
            return message
        except BaseException as exc:
            if self.generation == generation:
                self.recv_failed(exc, mark)
            raise
        finally:
            if self.generation == generation:
                self.rbusy = False

    def mrecv_into(self, buffer: Any, deadline: int) -> int:
        return self.mrecvl((buffer,), deadline, "mrecv_into")

    def mrecvl(self, buffers: Sequence[RecvItem], deadline: int, function: str = "mrecvl") -> int:
        self.begin_recv(function)
        items = recv_items(buffers, function)
        self.rbusy = True
        generation = self.generation
        mark = self.reader.taken
        try:
            if not items:
                return self._drop(deadline)
            room = sum(i if isinstance(i, int) else i.nbytes for i in items)
            size = self._find_end(room, deadline, function)
            self.reader.scatter(items, size, deadline)
            self.reader.skip(len(self.suffix))
            return size
        except BaseException as exc:
            if self.generation == generation:
                self.recv_failed(exc, mark)
            raise
        finally:
            if self.generation == generation:
                self.rbusy = False

    def _find_end(self, room: int, deadline: int, function: str) -> int:
        # Receive until the suffix is in the buffer; return the size of the
        # message before it. EMSGSIZE once the message cannot fit room.
        reader, suffix = self.reader, self.suffix
        scanned = 0  # bytes of the buffer known to hold no whole suffix
        while True:
            end = reader.buf.find(suffix, reader.start + scanned, reader.end)
            if end >= 0:
                size = end - reader.start
                if size > room:
                    raise error(errno.EMSGSIZE, function)
                return size
            available = reader.available()
            scanned = max(0, available - len(suffix) + 1)
            if scanned > room:
                raise error(errno.EMSGSIZE, function)
            reader.fill(available + self._next_read(), deadline)

    def _drop(self, deadline: int) -> int:
        # mrecvl with no buffers: drop a message of any size, keeping no
        # more of it than a suffix could span.
        reader, suffix = self.reader, self.suffix
        dropped = 0
        while True:
            end = reader.buf.find(suffix, reader.start, reader.end)
            if end >= 0:
                size = end - reader.start
                reader.skip(size + len(suffix))
                return dropped + size
            keep = min(reader.available(), len(suffix) - 1)
            dropped += reader.available() - keep
            reader.skip(reader.available() - keep)
            reader.fill(keep + self._next_read(), deadline)

    def _next_read(self) -> int:
        # With no way to give bytes back below, read no further than the
        # earliest possible end of a suffix.
        reader = self.reader
        if reader.readahead:
            return 1
        return safe_read_size(reader.buf[reader.start : reader.end], self.suffix)


# The functions. ------------------------------------------------------------------


def suffix_attach_mem(s: int, suffix: Any, mem: suffix_storage) -> int:
    """Put delimiter-ended message framing on a byte-stream socket, in caller's storage.

    Does what suffix_attach does, in mem (made by suffix_storage()), which
    can be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        suffix: the delimiter, 1 to 32 bytes (a bytes-like object).
        mem: a suffix_storage() not in use.
    Returns: the handle of the new message socket; suffix_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: suffix is None, empty or longer than 32 bytes, or mem is None.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket.
    """
    return _attach(s, suffix, mem, "suffix_attach_mem")


def suffix_attach(s: int, suffix: Any) -> int:
    """Put delimiter-ended message framing on a byte-stream socket.

    Each message is followed by suffix on the wire; there is no handshake.
    A message ends where the suffix first appears, so msend refuses one
    that the peer would not read back whole. The new handle owns s: s is
    invalid from now on, and closed if this fails, whatever the reason (as
    in libdill). Closing the new handle closes s too.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        suffix: the delimiter, 1 to 32 bytes (a bytes-like object).
    Returns: the handle of the new message socket; suffix_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: suffix is None, empty or longer than 32 bytes.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket.
    """
    return _attach(s, suffix, suffix_storage(), "suffix_attach")


def _attach(s: int, suffix: Any, mem: Any, function: str) -> int:
    c = context()
    try:
        if suffix is None:
            raise error(errno.EINVAL, function)
        delimiter = bytes(memoryview(suffix))
        if not 1 <= len(delimiter) <= MAX_SUFFIX:
            raise error(errno.EINVAL, function)
        check_storage(mem, suffix_storage, function)
        check_can_block(c, function)
    except BaseException:
        close_quietly(s)
        raise
    u = hown(s)
    lower = query_below(u, bsock_type, function)
    mem.open(u, lower, delimiter)
    return new_handle(c, mem)


def suffix_detach(s: int, deadline: int = -1) -> int:
    """Take the suffix layer off a socket and return the byte stream below.

    Nothing goes on the wire, so nothing waits and the deadline is not
    used (libdill takes one too). Bytes received ahead of the last message
    stay readable on the returned socket. The suffix handle is invalid
    afterwards, even when this fails.

    Parameters:
        s: handle of a suffix socket.
        deadline: a point in time in ms (see now()); -1 for never. Unused.
    Returns: the handle of the byte-stream socket below.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending or receiving on s (s stays open).
        ECANCELED: never raised: nothing waits.
        ECONNRESET: an earlier send or receive failed; s and the stack below
            are closed.
        ENOTSUP: s is not a suffix socket.
        ETIMEDOUT: never raised: nothing waits.
    """
    return detach_framing(s, suffix_type, "suffix_detach")
