"""Reading ahead of message boundaries on a byte stream, and giving the rest back.

A layer that finds messages in a byte stream (prefix, suffix) wants to
receive in large pieces: one system call then brings several messages, or a
header and its body together. What it reads past the last message it hands
up belongs to the stream below: when the layer is detached, it goes back
with the stream's bunrecv, so that no byte is lost (see _iface). A stream
below without bunrecv is never read ahead of: the layer then asks for
exactly the bytes it knows it needs, and loses nothing either.

This module uses only the byte-stream interface's public methods, so a
user's layer can do what greendill's layers do. FramingLayer is what the
message layers over a byte stream (prefix, suffix) share: the socket below,
the read-ahead buffer, libdill's latching flags, and detach.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any

from ._errors import error
from ._handles import hclose, layer_object, release
from ._iface import msock_vfs
from ._scheduler import context

__all__ = ["FramingLayer", "ReadAhead", "detach_framing"]

#: What one read asks for when reading ahead; a buffer grows beyond it only
#: for a message that needs more.
CHUNK = 16384


class ReadAhead:
    """The bytes received from a byte stream and not yet used, in buf[start:end].

    For framing layers over a byte stream, greendill's and users' (see
    docs/layers.md): it reads ahead only over a stream with bunrecv, and
    give_back returns what the layer did not use.
    """

    __slots__ = ("buf", "end", "lower", "readahead", "start", "taken")

    def __init__(self, lower: Any) -> None:
        self.lower = lower
        #: Whether lower takes back bytes (bunrecv), so that reading ahead
        #: of what is needed is safe.
        self.readahead = callable(getattr(lower, "bunrecv", None))
        # Allocated at the first read: an idle connection costs no buffer.
        self.buf = bytearray()
        self.start = self.end = 0
        #: How many bytes the layer has used so far (taken, skipped, or
        #: scattered): a layer compares it to tell whether a failure came
        #: between two messages or in the middle of one.
        self.taken = 0

    def at_boundary(self, mark: int) -> bool:
        """Whether nothing was used since taken was mark, and nothing waits to be."""
        return self.taken == mark and self.end == self.start

    def available(self) -> int:
        """How many received bytes wait to be used."""
        return self.end - self.start

    def fill(self, need: int, deadline: int) -> None:
        """Receive until at least need bytes are available, or fail as the stream below does."""
        while self.end - self.start < need:
            missing = need - (self.end - self.start)
            self._make_room(missing)
            view = memoryview(self.buf)
            if self.readahead:
                got = self.lower.brecv_some(view[self.end :], deadline)
            else:
                self.lower.brecv_into(view[self.end : self.end + missing], deadline)
                got = missing
            self.end += got

    def _make_room(self, missing: int) -> None:
        # Room for at least `missing` bytes after end, and for a full CHUNK
        # when reading ahead. A new buffer replaces a grown one rather than
        # resizing it: a memoryview of the old one may still be alive (in a
        # traceback), and a bytearray with views cannot be resized.
        want = max(missing, CHUNK) if self.readahead else missing
        buf = self.buf
        if len(buf) - self.end >= want:
            return
        size = self.end - self.start
        if len(buf) >= size + want:
            buf[:size] = buf[self.start : self.end]
        else:
            grown = bytearray(size + want)
            grown[:size] = buf[self.start : self.end]
            self.buf = grown
        self.start, self.end = 0, size

    def take(self, size: int) -> bytes:
        """Remove the first size available bytes and return them."""
        start = self.start
        self.start = start + size
        self.taken += size
        data = bytes(self.buf[start : start + size])
        if self.start == self.end:
            self.start = self.end = 0
        return data

    def take_into(self, view: memoryview) -> int:
        """Move available bytes into view; return how many."""
        size = min(view.nbytes, self.end - self.start)
        start = self.start
        view[:size] = self.buf[start : start + size]
        self.start = start + size
        self.taken += size
        if self.start == self.end:
            self.start = self.end = 0
        return size

    def scatter(self, items: Sequence[Any], size: int, deadline: int) -> None:
        """Move the next size bytes into items, reading from below what is not here yet.

        items are writable byte views to fill and ints (that many bytes to
        drop), with room for size bytes at least; an empty sequence drops size
        bytes. A large message goes from the stream below straight into the
        caller's buffers, without passing through this one.
        """
        lower = self.lower
        for item in items or (size,):
            if not size:
                return
            if isinstance(item, int):
                n = min(item, size)
                here = min(n, self.end - self.start)
                self.skip(here)
                if n > here:
                    lower.brecvl((n - here,), deadline)
                    self.taken += n - here
            else:
                view = item[: min(item.nbytes, size)]
                n = view.nbytes
                here = self.take_into(view)
                if n > here:
                    lower.brecv_into(view[here:], deadline)
                    self.taken += n - here
            size -= n

    def skip(self, size: int) -> None:
        """Drop the first size available bytes."""
        self.start += size
        self.taken += size
        if self.start == self.end:
            self.start = self.end = 0

    def give_back(self) -> None:
        """Return the unused bytes to the stream below (the layer is being detached)."""
        if self.end > self.start:
            self.lower.bunrecv(bytes(self.buf[self.start : self.end]))
        self.buf = bytearray()
        self.start = self.end = 0


class FramingLayer(msock_vfs):
    """A message socket that frames messages on a byte stream (prefix, suffix)."""

    __slots__ = (
        "generation",
        "indone",
        "inerr",
        "is_open",
        "lower",
        "outerr",
        "rbusy",
        "reader",
        "sbusy",
        "u",
    )

    def __init__(self) -> None:
        self.is_open = False
        self.u = -1
        # Bumped whenever the storage stops being a socket: a call that was
        # woken by hclose (EBADF) and runs after the storage became another
        # socket compares it and leaves that socket's flags alone.
        self.generation = 0

    def open_over(self, u: int, lower: Any) -> None:
        """Become a socket over handle u, whose byte-stream interface is lower."""
        self.u = u
        # The interface below, found once (as suffix.c caches it): every
        # message goes straight to it.
        self.lower = lower
        self.reader = ReadAhead(lower)
        # libdill's flags: a call in progress (EBUSY), the peer's end seen
        # (EPIPE), a broken direction (ECONNRESET).
        self.indone = self.inerr = self.outerr = self.rbusy = self.sbusy = False
        self.generation += 1
        self.is_open = True

    def close(self) -> None:
        """Close the socket and the stack below it."""
        self.is_open = False
        self.generation += 1
        self.reader.buf = bytearray()
        u, self.u = self.u, -1
        hclose(u)

    def begin_send(self, function: str) -> None:
        """The guards of a send, in libdill's order."""
        if self.sbusy:
            raise error(errno.EBUSY, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)

    def begin_recv(self, function: str) -> None:
        """The guards of a receive, in libdill's order."""
        if self.rbusy:
            raise error(errno.EBUSY, function)
        if self.indone:
            raise error(errno.EPIPE, function)
        if self.inerr:
            raise error(errno.ECONNRESET, function)

    def recv_failed(self, exc: BaseException, mark: int) -> None:
        """Latch the receiving side after a receive that began with reader.taken == mark failed.

        The end of the stream between two messages is the peer's orderly
        end: EPIPE from now on, as TCP's, and detach is still allowed (so
        that the connection below can be closed in order). Any other
        failure, the end in the middle of a message included, breaks the
        receiving side: ECONNRESET from now on.
        """
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE and self.reader.at_boundary(mark):
            self.indone = True
        else:
            self.inerr = True


def detach_framing(s: int, type: object, function: str) -> int:
    """prefix_detach and suffix_detach: give back the bytes read ahead, and the socket below.

    EBUSY (s stays open) while a call is in progress; ECONNRESET, closing
    the whole stack, if a direction is broken (the peer's orderly end is
    not a break).
    """
    c = context()
    obj: FramingLayer = layer_object(c, s, type, function)
    if obj.rbusy or obj.sbusy:
        raise error(errno.EBUSY, function)
    if obj.inerr or obj.outerr:
        hclose(s)
        raise error(errno.ECONNRESET, function)
    obj.reader.give_back()
    u, obj.u = obj.u, -1
    obj.is_open = False
    obj.generation += 1
    release(c, s)
    return u
