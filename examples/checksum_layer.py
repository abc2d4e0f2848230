"""CHECKSUM: a message layer that guards each message with a CRC32 (a worked example).

Each message goes on the wire, over any message socket (prefix, suffix,
UDP, TERM, ...), as its bytes followed by the CRC32 of those bytes
(zlib.crc32), 4 bytes big-endian. The receiver checks it: a message whose
checksum does not match, or that is too short to hold one, fails mrecv
with EPROTO. There is no handshake; checksum_detach puts nothing on the
wire and returns the message socket below.

Like PREFIX, every failure breaks its direction for good: after a failed
msend later ones fail with ECONNRESET, and after a failed mrecv (EPROTO,
EMSGSIZE, a timeout, the end of the stream...) later mrecvs do.

The layer is built only on greendill's public names, as a user's layer
is: the hvfs protocol (query and close), hmake, hown, hquery, hclose,
msock_type and msock_vfs. docs/layers.md walks through it. Run it to see
it at work over an IPC pair:

    python examples/checksum_layer.py
"""

from __future__ import annotations

import errno
import os
import zlib
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import greendill as dill

__all__ = [
    "checksum_attach",
    "checksum_attach_mem",
    "checksum_decode",
    "checksum_detach",
    "checksum_encode",
    "checksum_storage",
    "checksum_type",
]

#: The type id of a checksum socket, for hquery: compared by identity, so
#: any unique object serves.
checksum_type = type("checksum_type", (), {"__repr__": lambda self: "checksum_type"})()

#: The size of the checksum that follows each message.
CRC_SIZE = 4


def _error(code: int, function: str) -> OSError:
    # As greendill builds its errors: OSError(code, message) picks the
    # built-in subclass (BrokenPipeError, ...), and the message names the call.
    return OSError(code, f"{function}: {os.strerror(code)}")


# The codec: pure functions, no sockets. --------------------------------------


def checksum_encode(message: Any) -> bytes:
    """The message as it goes on the wire: its bytes, then their CRC32."""
    data = bytes(message)
    return data + zlib.crc32(data).to_bytes(CRC_SIZE, "big")


def checksum_decode(wire: Any) -> bytes:
    """The message in what one message of the wire holds; EPROTO if its CRC32 does not match."""
    view = memoryview(wire).cast("B")
    if view.nbytes < CRC_SIZE:
        raise _error(errno.EPROTO, "mrecv")
    size = view.nbytes - CRC_SIZE
    if zlib.crc32(view[:size]) != int.from_bytes(view[size:], "big"):
        raise _error(errno.EPROTO, "mrecv")
    return bytes(view[:size])


# The socket. -------------------------------------------------------------------


class checksum_storage(dill.msock_vfs):
    """A checksum socket; also its storage for checksum_attach_mem.

    The object is the handle's hvfs (query, close) and its message
    interface (msock_vfs) at once, as greendill's own layers are.
    """

    __slots__ = ("generation", "inerr", "is_open", "lower", "outerr", "rbusy", "sbusy", "u")

    def __init__(self) -> None:
        self.is_open = False
        self.u = -1
        self.generation = 0

    def open(self, u: int, lower: Any) -> None:
        """Become the checksum socket over handle u, whose message interface is lower."""
        self.u = u
        # The interface below, asked for once, at attach: every call goes
        # straight to it without looking the handle up again.
        self.lower = lower
        # Flags in libdill's manner: a call in progress per direction
        # (EBUSY), a direction broken by a failure (ECONNRESET).
        self.rbusy = self.sbusy = self.inerr = self.outerr = False
        self.is_open = True
        # Which socket this storage is now. hclose wakes a call waiting
        # below with EBADF, and it runs after hclose has returned, when the
        # storage may be a new socket's already: a call whose generation is
        # gone leaves the flags alone.
        self.generation += 1

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        # The message interface, and the layer's own id (checksum_detach
        # finds its object by it); None for anything else: ENOTSUP.
        if type is dill.msock_type or type is checksum_type:
            return self
        return None

    def close(self) -> None:
        """Close the socket, and the stack below it (hclose of the top closes all)."""
        self.is_open = False
        u, self.u = self.u, -1
        if u >= 0:  # -1: detached, the socket below is the caller's now
            dill.hclose(u)

    # Sending.

    def msend(self, data: Any, deadline: int) -> None:
        self.msendl((data,), deadline)

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        # Guards first, in libdill's order; they break nothing.
        if self.sbusy:
            raise _error(errno.EBUSY, "msend")
        if self.outerr:
            raise _error(errno.ECONNRESET, "msend")
        crc = 0
        for buffer in buffers:
            crc = zlib.crc32(buffer, crc)
        self.sbusy = True
        generation = self.generation
        try:
            # One message below: the caller's buffers and the checksum,
            # joined by the layer below without a copy here.
            self.lower.msendl([*buffers, crc.to_bytes(CRC_SIZE, "big")], deadline)
        except BaseException:
            # Whatever it was (a timeout, Canceled, a gevent.Timeout of the
            # caller's), part of the message may be on the wire.
            if self.generation == generation:
                self.outerr = True
            raise
        finally:
            if self.generation == generation:
                self.sbusy = False

    # Receiving.

    def mrecv(self, maxlen: int, deadline: int) -> bytes:
        generation = self._begin_recv()
        try:
            return self._recv(maxlen, deadline)
        except BaseException:
            self._recv_failed(generation)
            raise
        finally:
            self._end_recv(generation)

    def mrecv_into(self, buffer: Any, deadline: int) -> int:
        return self.mrecvl((buffer,), deadline)

    def mrecvl(self, buffers: Sequence[Any], deadline: int) -> int:
        items = _receiving_items(buffers)  # EINVAL before anything: it breaks nothing
        generation = self._begin_recv()
        try:
            if not items:
                # No buffers: drop one message, unchecked, and return its size.
                size = int(self.lower.mrecvl((), deadline))
                if size < CRC_SIZE:
                    raise _error(errno.EPROTO, "mrecvl")
                return size - CRC_SIZE
            room = sum(i if isinstance(i, int) else i.nbytes for i in items)
            message = self._recv(room, deadline)
            _scatter(message, items)
            return len(message)
        except BaseException:
            self._recv_failed(generation)
            raise
        finally:
            self._end_recv(generation)

    def _begin_recv(self) -> int:
        # The guards, in libdill's order; they break nothing.
        if self.rbusy:
            raise _error(errno.EBUSY, "mrecv")
        if self.inerr:
            raise _error(errno.ECONNRESET, "mrecv")
        self.rbusy = True
        return self.generation

    def _recv_failed(self, generation: int) -> None:
        if self.generation == generation:
            self.inerr = True

    def _end_recv(self, generation: int) -> None:
        if self.generation == generation:
            self.rbusy = False

    def _recv(self, room: int, deadline: int) -> bytes:
        # The checksum covers every byte, those of int items too, and its
        # place in the caller's buffers is not known before the size is: the
        # message comes whole, with room for the checksum, so that the layer
        # below reports EMSGSIZE for a message too long. (Not into a buffer
        # of room bytes: room may be huge, as an int item can be; greendill's
        # sockets allocate only what arrives.)
        return checksum_decode(self.lower.mrecv(room + CRC_SIZE, deadline))


def _receiving_items(buffers: Sequence[Any]) -> list[Any]:
    # The receiving iolist checked as the generic calls promise: a writable
    # buffer (as a flat byte view) or a non-negative int; EINVAL otherwise.
    items: list[Any] = []
    for item in buffers:
        if isinstance(item, int):
            if item < 0:
                raise _error(errno.EINVAL, "mrecv")
            items.append(item)
            continue
        view = memoryview(item)
        if view.readonly:
            raise _error(errno.EINVAL, "mrecv")
        items.append(view.cast("B"))
    return items


def _scatter(message: bytes, items: list[Any]) -> None:
    # Copy message over the buffers, in order; an int skips that many bytes.
    at = 0
    for item in items:
        if at >= len(message):
            return
        if isinstance(item, int):
            at += item
            continue
        n = min(item.nbytes, len(message) - at)
        item[:n] = message[at : at + n]
        at += n


# The functions. ------------------------------------------------------------------


def checksum_attach_mem(s: int, mem: checksum_storage) -> int:
    """Put CRC32-checked messages on top of a message socket, in caller's storage.

    Does what checksum_attach does, in mem (made by checksum_storage()),
    which can be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a message socket (one that answers msock_type).
        mem: a checksum_storage() not in use.
    Returns: the handle of the new message socket; checksum_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: mem is None.
        EPROTO: s is not a message socket.
    """
    # Attach takes ownership of s even when it fails, as libdill's do:
    # every failure closes it.
    try:
        if mem is None:
            raise _error(errno.EINVAL, "checksum_attach_mem")
        if not isinstance(mem, checksum_storage):
            raise TypeError(f"checksum_attach_mem: mem is a checksum_storage(), not {mem!r}")
        if mem.is_open:
            raise _error(errno.EBUSY, "checksum_attach_mem")
    except BaseException:
        with suppress(OSError, TypeError):
            dill.hclose(s)
        raise
    # A new number for s: the caller's stops working (EBADF), so that it
    # cannot be used beside the layer by mistake.
    u = dill.hown(s)
    try:
        # The interface below, once. A socket without it is the caller's
        # protocol error (EPROTO), not an unsupported call (ENOTSUP).
        try:
            lower = dill.hquery(u, dill.msock_type)
        except OSError as exc:
            if exc.errno == errno.ENOTSUP:
                raise _error(errno.EPROTO, "checksum_attach_mem") from None
            raise
        mem.open(u, lower)
        return dill.hmake(mem)  # ECANCELED in a canceled coroutine
    except BaseException:
        mem.is_open = False
        with suppress(OSError):
            dill.hclose(u)
        raise


def checksum_attach(s: int) -> int:
    """Put CRC32-checked messages on top of a message socket.

    Each message is sent with the CRC32 of its bytes after it, and checked
    on receipt. There is no handshake. The new handle owns s: s is invalid
    from now on, and closed if this fails, whatever the reason. Closing the
    new handle closes s too.

    Parameters:
        s: handle of a message socket (one that answers msock_type).
    Returns: the handle of the new message socket; checksum_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        EPROTO: s is not a message socket.
    """
    return checksum_attach_mem(s, checksum_storage())


def checksum_detach(s: int) -> int:
    """Take the checksum layer off a socket and return the message socket below.

    Nothing goes on the wire. The checksum handle is invalid afterwards,
    even when this fails, except with EBUSY.

    Parameters:
        s: handle of a checksum socket.
    Returns: the handle of the message socket below.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending or receiving on s (s stays open).
        ECONNRESET: an earlier send or receive failed; s and the stack below
            are closed.
        ENOTSUP: s is not a checksum socket.
    """
    obj: checksum_storage = dill.hquery(s, checksum_type)  # EBADF, ENOTSUP
    if obj.rbusy or obj.sbusy:
        raise _error(errno.EBUSY, "checksum_detach")
    if obj.inerr or obj.outerr:
        dill.hclose(s)
        raise _error(errno.ECONNRESET, "checksum_detach")
    # hclose releases the handle; with u taken out first, close() leaves
    # the socket below open, and it is the caller's.
    u, obj.u = obj.u, -1
    dill.hclose(s)
    return u


# The demonstration. --------------------------------------------------------------


def main() -> None:
    """Two checksum sockets over prefix over an IPC pair: messages, then a corrupt one."""
    a, b = dill.ipc_pair()
    a = checksum_attach(dill.prefix_attach(a, 4))
    b = checksum_attach(dill.prefix_attach(b, 4))
    try:
        for text in (b"hello", b"checked", b"messages"):
            dill.msend(a, text, dill.now() + 1000)
            print("received:", dill.mrecv(b, 100, dill.now() + 1000).decode())
        # Take the layer off the sending side and send, with the prefix
        # socket below, a message whose checksum is wrong.
        raw = checksum_detach(a)
        a = raw
        wire = bytearray(checksum_encode(b"tampered"))
        wire[0] ^= 0x20
        dill.msend(raw, wire, dill.now() + 1000)
        try:
            dill.mrecv(b, 100, dill.now() + 1000)
        except OSError as exc:
            print("a corrupt message:", errno.errorcode[exc.errno or 0], "-", exc.strerror)
        try:
            dill.mrecv(b, 100, dill.now() + 1000)
        except OSError as exc:
            print("the next receive: ", errno.errorcode[exc.errno or 0], "(the side is broken)")
    finally:
        dill.hclose(a)
        dill.hclose(b)


if __name__ == "__main__":
    main()
