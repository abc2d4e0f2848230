"""PREFIX: messages framed by a length field, over a byte stream.

Each message goes on the wire as its size in an unsigned field of hdrlen
bytes (big-endian, network order, unless PREFIX_LITTLE_ENDIAN), then its
bytes; nothing else, and no handshake: libdill's layout, byte for byte.
prefix_detach puts nothing on the wire either; the bytes read ahead of the
last message received go back to the byte stream it returns.

Beyond libdill: a message too long for the field is EMSGSIZE at the sender,
which sends nothing and stays usable (C truncates the size silently and the
peer reads garbage). Like libdill, every other failure breaks its direction
for good: a failed msend makes later ones fail with ECONNRESET, and a failed
mrecv (EMSGSIZE, a timeout, the end of the stream in the middle of a
message...) later mrecvs. The end of the stream between two messages is the
peer's orderly end, not a failure: mrecv fails with EPIPE from then on, as
TCP's brecv does, and prefix_detach still gives the stream back, so that it
can be closed in order (libdill latches it as a failure: ECONNRESET).
"""

from __future__ import annotations

import errno
import struct
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
from ._readahead import CHUNK, FramingLayer, detach_framing
from ._scheduler import check_can_block, context

__all__ = [
    "PREFIX_BIG_ENDIAN",
    "PREFIX_LITTLE_ENDIAN",
    "decode_prefixed",
    "prefix_attach",
    "prefix_attach_mem",
    "prefix_detach",
    "prefix_header",
    "prefix_size",
    "prefix_storage",
    "prefix_type",
]

#: The size field is big-endian (network order): libdill's default.
PREFIX_BIG_ENDIAN = 0
#: The size field is little-endian.
PREFIX_LITTLE_ENDIAN = 1

#: The type id of a prefix socket, for hquery.
prefix_type = type("prefix_type", (), {"__repr__": lambda self: "prefix_type"})()

# Messages up to this size are joined to their header and sent with one
# bsend: cheaper than building an iolist for the stream below.
_JOIN_BELOW = 4096


# The codec: no sockets here. ---------------------------------------------------


def prefix_header(size: int, hdrlen: int, flags: int) -> bytes:
    """The size field of a message of size bytes; EMSGSIZE if it does not fit hdrlen bytes."""
    try:
        return size.to_bytes(hdrlen, "little" if flags & PREFIX_LITTLE_ENDIAN else "big")
    except OverflowError:
        raise error(errno.EMSGSIZE, "msend") from None


def prefix_size(buffer: Any, offset: int, hdrlen: int, flags: int) -> int:
    """The size that the field at buffer[offset:offset + hdrlen] gives."""
    field = buffer[offset : offset + hdrlen]
    return int.from_bytes(field, "little" if flags & PREFIX_LITTLE_ENDIAN else "big")


def decode_prefixed(buffer: bytearray, hdrlen: int, flags: int, maxlen: int) -> Optional[bytes]:
    """Take the first whole message off the front of buffer (h11's reader contract).

    Returns None, leaving buffer as it is, while the message is incomplete;
    raises EMSGSIZE when its size field says more than maxlen.
    """
    if len(buffer) < hdrlen:
        return None
    size = prefix_size(buffer, 0, hdrlen, flags)
    if size > maxlen:
        raise error(errno.EMSGSIZE, "mrecv")
    if len(buffer) < hdrlen + size:
        return None
    message = bytes(buffer[hdrlen : hdrlen + size])
    del buffer[: hdrlen + size]
    return message


# The socket. -------------------------------------------------------------------


class prefix_storage(FramingLayer):
    """A prefix socket; also its storage for prefix_attach_mem (libdill's struct prefix_storage)."""

    __slots__ = ("flags", "hdrlen", "unpack")

    def open(self, u: int, lower: Any, hdrlen: int, flags: int) -> None:
        """Become the prefix socket over handle u, whose byte-stream interface is lower."""
        self.open_over(u, lower)
        self.hdrlen = hdrlen
        self.flags = flags
        # The usual sizes decode with struct, the rest with int.from_bytes.
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}.get(hdrlen)
        order = "<" if flags & PREFIX_LITTLE_ENDIAN else ">"
        self.unpack: Any = struct.Struct(order + fmt).unpack_from if fmt else None

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is msock_type or type is prefix_type:
            return self
        return None

    # Sending.

    def msend(self, data: Any, deadline: int) -> None:
        if self.sbusy or self.outerr:
            self.begin_send("msend")
        size = len(data) if data.__class__ is bytes else memoryview(data).nbytes
        header = prefix_header(size, self.hdrlen, self.flags)
        self.sbusy = True
        generation = self.generation
        try:
            if size <= _JOIN_BELOW:
                self.lower.bsend(header + data, deadline)
            else:
                self.lower.bsendl((header, data), deadline)
        except BaseException:
            if self.generation == generation:
                self.outerr = True
            raise
        finally:
            if self.generation == generation:
                self.sbusy = False

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self.begin_send("msendl")
        size = sum(memoryview(b).nbytes for b in buffers)
        header = prefix_header(size, self.hdrlen, self.flags)
        self.sbusy = True
        generation = self.generation
        try:
            self.lower.bsendl([header, *buffers], deadline)
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
            reader = self.reader
            size = self._recv_size(maxlen, deadline, "mrecv")
            if size <= CHUNK:
                reader.fill(size, deadline)
                return reader.take(size)
            message = bytearray(size)
            got = reader.take_into(memoryview(message))
            if got < size:
                self.lower.brecv_into(memoryview(message)[got:], deadline)
            return bytes(message)
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
        # An empty list drops one message, whatever its size.
        room = sum(i if isinstance(i, int) else i.nbytes for i in items) if items else -1
        self.rbusy = True
        generation = self.generation
        mark = self.reader.taken
        try:
            size = self._recv_size(room, deadline, function)
            if size <= CHUNK:
                self.reader.fill(size, deadline)
            self.reader.scatter(items, size, deadline)
            return size
        except BaseException as exc:
            if self.generation == generation:
                self.recv_failed(exc, mark)
            raise
        finally:
            if self.generation == generation:
                self.rbusy = False

    def _recv_size(self, room: int, deadline: int, function: str) -> int:
        # Read the size field; EMSGSIZE if the message needs more than room
        # bytes (room -1: no limit).
        reader = self.reader
        hdrlen = self.hdrlen
        reader.fill(hdrlen, deadline)
        if self.unpack is not None:
            size: int = self.unpack(reader.buf, reader.start)[0]
        else:
            size = prefix_size(reader.buf, reader.start, hdrlen, self.flags)
        reader.skip(hdrlen)
        if 0 <= room < size:
            raise error(errno.EMSGSIZE, function)
        return size


# The functions. ------------------------------------------------------------------


def prefix_attach_mem(s: int, hdrlen: int, flags: int, mem: prefix_storage) -> int:
    """Put length-prefixed message framing on a byte-stream socket, in caller's storage.

    Does what prefix_attach does, in mem (made by prefix_storage()), which
    can be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        hdrlen: size of the length field in bytes, at least 1.
        flags: PREFIX_BIG_ENDIAN (0) or PREFIX_LITTLE_ENDIAN (1).
        mem: a prefix_storage() not in use.
    Returns: the handle of the new message socket; prefix_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: hdrlen is less than 1, flags is not one of the two, or mem is None.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket.
    """
    return _attach(s, hdrlen, flags, mem, "prefix_attach_mem")


def prefix_attach(s: int, hdrlen: int, flags: int = PREFIX_BIG_ENDIAN) -> int:
    """Put length-prefixed message framing on a byte-stream socket.

    Each message follows a size field of hdrlen bytes, big-endian unless
    flags is PREFIX_LITTLE_ENDIAN; there is no handshake. The new handle
    owns s: s is invalid from now on, and closed if this fails, whatever
    the reason (as in libdill). Closing the new handle closes s too.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        hdrlen: size of the length field in bytes, at least 1.
        flags: PREFIX_BIG_ENDIAN (0, the default) or PREFIX_LITTLE_ENDIAN (1).
    Returns: the handle of the new message socket; prefix_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: hdrlen is less than 1, or flags is not one of the two.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket.
    """
    return _attach(s, hdrlen, flags, prefix_storage(), "prefix_attach")


def _attach(s: int, hdrlen: int, flags: int, mem: Any, function: str) -> int:
    c = context()
    try:
        if hdrlen.__class__ is not int and not isinstance(hdrlen, int):
            raise TypeError(f"{function}: hdrlen is an int, not {type(hdrlen).__name__}")
        if hdrlen < 1 or flags not in (PREFIX_BIG_ENDIAN, PREFIX_LITTLE_ENDIAN):
            raise error(errno.EINVAL, function)
        check_storage(mem, prefix_storage, function)
        check_can_block(c, function)
    except BaseException:
        close_quietly(s)
        raise
    u = hown(s)
    lower = query_below(u, bsock_type, function)
    mem.open(u, lower, hdrlen, flags)
    return new_handle(c, mem)


def prefix_detach(s: int) -> int:
    """Take the prefix layer off a socket and return the byte stream below.

    Nothing goes on the wire. Bytes received ahead of the last message
    (the start of the next one) stay readable on the returned socket. The
    prefix handle is invalid afterwards, even when this fails. (libdill's
    man page gives this a deadline and a terminal handshake; its code has
    neither, and greendill follows the code.)

    Parameters:
        s: handle of a prefix socket.
    Returns: the handle of the byte-stream socket below.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending or receiving on s (s stays open).
        ECANCELED: never raised: nothing waits.
        ECONNRESET: an earlier send or receive failed; s and the stack below
            are closed.
        ENOTSUP: s is not a prefix socket.
        ETIMEDOUT: never raised: nothing waits.
    """
    return detach_framing(s, prefix_type, "prefix_detach")
