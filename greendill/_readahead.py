"""Reading ahead of message boundaries on a byte stream, and giving the rest back.

A layer that finds messages in a byte stream (prefix, suffix) wants to
receive in large pieces: one system call then brings several messages, or a
header and its body together. What it reads past the last message it hands
up belongs to the stream below: when the layer is detached, it goes back
with the stream's bunrecv, so that no byte is lost (see _iface). A stream
below without bunrecv is never read ahead of: the layer then asks for
exactly the bytes it knows it needs, and loses nothing either.

This module uses only the byte-stream interface's public methods, so a
user's layer can do what greendill's layers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ReadAhead"]

#: What one read asks for when reading ahead; a buffer grows beyond it only
#: for a message that needs more.
CHUNK = 16384


class ReadAhead:
    """The bytes received from a byte stream and not yet used, in buf[start:end]."""

    __slots__ = ("buf", "end", "lower", "readahead", "start")

    def __init__(self, lower: Any) -> None:
        self.lower = lower
        #: Whether lower takes back bytes (bunrecv), so that reading ahead
        #: of what is needed is safe.
        self.readahead = callable(getattr(lower, "bunrecv", None))
        # Allocated at the first read: an idle connection costs no buffer.
        self.buf = bytearray()
        self.start = self.end = 0

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
            else:
                view = item[: min(item.nbytes, size)]
                n = view.nbytes
                here = self.take_into(view)
                if n > here:
                    lower.brecv_into(view[here:], deadline)
            size -= n

    def skip(self, size: int) -> None:
        """Drop the first size available bytes."""
        self.start += size
        if self.start == self.end:
            self.start = self.end = 0

    def give_back(self) -> None:
        """Return the unused bytes to the stream below (the layer is being detached)."""
        if self.end > self.start:
            self.lower.bunrecv(bytes(self.buf[self.start : self.end]))
        self.buf = bytearray()
        self.start = self.end = 0
