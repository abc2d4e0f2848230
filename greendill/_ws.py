"""WS: WebSocket (RFC 6455) messages over a byte stream.

ws_attach_client sends the HTTP/1.1 upgrade request and checks the server's
101 answer; ws_attach_server reads the request, answers it and returns the
resource and host the client asked for (WS_NOHTTP skips the upgrade: both
sides then start framing at once). From then on each message goes on the
wire as one frame, text or binary, masked by the client and not by the
server (the codec, _ws_codec.py, has the byte layout). A received message
may come in fragments, which are put back together. The socket is a message
socket: msend and mrecv carry the type given at attach (WS_TEXT or
WS_BINARY), ws_send and ws_recv any type.

Closing is RFC 6455's handshake. ws_done sends a close frame (a status and
a reason) and nothing may be sent after it; a peer's close frame makes
every later receive fail with EPIPE, and ws_status gives its status and
reason. ws_detach sends the close frame if ws_done has not, drops messages
until the peer's close frame, and returns the byte stream below; bytes read
ahead of the close frame go back to it.

Beyond libdill (whose code leaves these as TODOs): pings are answered with
pongs and pongs are dropped (libdill fails with EPROTO on both); a received
frame or message longer than the socket's limits (max_frame, max_message
keywords at attach) is EMSGSIZE, so a peer cannot make the receiver
allocate without bound; a close frame longer than 125 bytes is EINVAL at
the sender (libdill sends it and the peer fails). Like prefix, a failed
send breaks sending (ECONNRESET from then on), and a failed receive breaks
receiving, because it may have stopped in the middle of a frame; a message
of the other type (mrecv) is EPROTO and breaks nothing, as in libdill.

The upgrade is done by the codec on the byte stream, not on greendill's
HTTP layer: the same bytes, and one place that reads the head with limits.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Optional

from ._errors import error
from ._handles import (
    check_storage,
    close_quietly,
    hclose,
    hown,
    hquery,
    layer_object,
    new_handle,
    release,
)
from ._iface import RecvItem, bsock_type, msock_type, msock_vfs, recv_items
from ._readahead import CHUNK, ReadAhead
from ._scheduler import check_can_block, context
from ._ws_codec import (
    MAX_CONTROL,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameHeader,
    client_request,
    close_payload,
    frame_header,
    head_safe_read,
    mask_key,
    parse_close,
    parse_frame_header,
    parse_request,
    parse_response,
    rejection,
    request_key,
    response_key,
    server_response,
    split_head,
    xor_mask,
)

__all__ = [
    "WS_BINARY",
    "WS_DEFAULT_MAX_FRAME",
    "WS_DEFAULT_MAX_MESSAGE",
    "WS_KEY_SIZE",
    "WS_NOHTTP",
    "WS_TEXT",
    "ws_attach_client",
    "ws_attach_client_mem",
    "ws_attach_server",
    "ws_attach_server_mem",
    "ws_detach",
    "ws_done",
    "ws_recv",
    "ws_recvl",
    "ws_request_key",
    "ws_response_key",
    "ws_send",
    "ws_sendl",
    "ws_status",
    "ws_storage",
    "ws_type",
]

#: Binary messages (the default).
WS_BINARY = 0
#: Text messages.
WS_TEXT = 1
#: No HTTP upgrade: framing starts at once (combine with a type flag).
WS_NOHTTP = 2
#: The size of C's key buffers (a key is 24 or 28 characters and a NUL);
#: greendill's keys are str, and the constant is kept for ported code.
WS_KEY_SIZE = 32

#: The default limit of a received frame's payload, in bytes.
WS_DEFAULT_MAX_FRAME = 16 << 20
#: The default limit of a received message, in bytes.
WS_DEFAULT_MAX_MESSAGE = 16 << 20

#: The type id of a WebSocket socket, for hquery.
ws_type = type("ws_type", (), {"__repr__": lambda self: "ws_type"})()

_ALL_FLAGS = WS_TEXT | WS_NOHTTP
# Messages up to this size are joined to their header and sent with one bsend.
_JOIN_BELOW = 4096
# The limits stand in for "no limit" as this.
_UNLIMITED = 1 << 64


def _flags_of(opcode: int) -> int:
    return WS_TEXT if opcode == OP_TEXT else WS_BINARY


# The socket. -------------------------------------------------------------------


class ws_storage(msock_vfs):
    """A WebSocket socket; also its storage for the _mem attach calls (libdill's ws_storage)."""

    __slots__ = (
        "close_reason",
        "close_status",
        "fast_b0",
        "fast_max",
        "indone",
        "inerr",
        "is_open",
        "lower",
        "max_frame",
        "max_message",
        "opcode",
        "outdone",
        "outerr",
        "pending_pong",
        "rbusy",
        "reader",
        "sbusy",
        "server",
        "u",
    )

    def __init__(self) -> None:
        self.is_open = False
        self.u = -1

    def open(
        self,
        u: int,
        lower: Any,
        reader: ReadAhead,
        flags: int,
        server: bool,
        max_frame: int,
        max_message: int,
    ) -> None:
        """Become the WebSocket over handle u, whose byte-stream interface is lower."""
        self.u = u
        # The interface below, found once: every frame goes straight to it.
        self.lower = lower
        # It may already hold the first frames (they can follow the upgrade's head).
        self.reader = reader
        self.server = server
        self.opcode = OP_TEXT if flags & WS_TEXT else OP_BINARY
        self.max_frame = max_frame
        self.max_message = max_message
        # mrecv's fast path: a whole message in one small frame of the
        # socket's type begins with this byte and fits within fast_max.
        self.fast_b0 = 0x80 | self.opcode
        self.fast_max = min(max_frame, max_message)
        self.indone = self.outdone = self.inerr = self.outerr = False
        self.rbusy = self.sbusy = False
        self.pending_pong: Optional[bytes] = None
        self.close_status = 0
        self.close_reason = b""
        self.is_open = True

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is msock_type or type is ws_type:
            return self
        return None

    def close(self) -> None:
        """Close the WebSocket and the stack below it (no close frame is sent)."""
        self.is_open = False
        self.reader.buf = bytearray()
        u, self.u = self.u, -1
        hclose(u)

    # Sending.

    def msend(self, data: Any, deadline: int) -> None:
        self.send(self.opcode, data, deadline, "msend")

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self.send(self.opcode, b"".join(buffers), deadline, "msendl")

    def send(self, opcode: int, data: Any, deadline: int, function: str) -> None:
        """Send data as one message of this opcode."""
        if self.sbusy or self.outdone or self.outerr:
            self._begin_send(function)
        if data.__class__ is not bytes:
            # A TypeError for what is no bytes-like object breaks nothing.
            data = memoryview(data)
            if data.format != "B" or data.ndim != 1:
                data = data.cast("B")
        self.sbusy = True
        try:
            self._send_frame(opcode, data, deadline)
            if self.pending_pong is not None:
                pong, self.pending_pong = self.pending_pong, None
                self._send_frame(OP_PONG, pong, deadline)
        except BaseException:
            self.outerr = True
            raise
        finally:
            self.sbusy = False

    def _begin_send(self, function: str) -> None:
        # libdill's order: busy, then done, then broken.
        if self.sbusy:
            raise error(errno.EBUSY, function)
        if self.outdone:
            raise error(errno.EPIPE, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)

    def _send_frame(self, opcode: int, data: Any, deadline: int) -> None:
        # data is bytes, or a flat memoryview of bytes.
        if self.server:
            size = len(data)
            header = frame_header(opcode, size, None)
            if size <= _JOIN_BELOW:
                self.lower.bsend(header + data, deadline)
            else:
                self.lower.bsendl((header, data), deadline)
        else:
            mask = mask_key()
            self.lower.bsend(frame_header(opcode, len(data), mask) + xor_mask(data, mask), deadline)

    def send_close(self, payload: bytes, deadline: int) -> None:
        """Send a close frame: nothing is sent after it (ws_done)."""
        self._begin_send("ws_done")
        self.sbusy = True
        try:
            self._send_frame(OP_CLOSE, payload, deadline)
        except BaseException:
            self.outerr = True
            raise
        finally:
            self.sbusy = False
        self.outdone = True

    def _answer_ping(self, payload: bytes, deadline: int) -> None:
        # A pong goes out at once, or after the message being sent by another
        # coroutine (only the latest ping is answered then, as RFC 6455
        # allows). Nothing is answered once this side has sent its close.
        if self.outdone or self.outerr:
            return
        if self.sbusy:
            self.pending_pong = payload
            return
        self.sbusy = True
        try:
            self._send_frame(OP_PONG, payload, deadline)
        except BaseException:
            self.outerr = True
            raise
        finally:
            self.sbusy = False

    # Receiving.

    def mrecv(self, maxlen: int, deadline: int) -> bytes:
        data, opcode = self.recv(maxlen, deadline, "mrecv")
        if opcode != self.opcode:
            raise error(errno.EPROTO, "mrecv")
        return data

    def mrecv_into(self, buffer: Any, deadline: int) -> int:
        return self.mrecvl((buffer,), deadline, "mrecv_into")

    def mrecvl(self, buffers: Sequence[RecvItem], deadline: int, function: str = "mrecvl") -> int:
        size, opcode = self.recvl(buffers, deadline, function)
        if opcode != self.opcode:
            raise error(errno.EPROTO, function)
        return size

    def recv(self, maxlen: int, deadline: int, function: str) -> tuple[bytes, int]:
        """Receive one message of at most maxlen bytes: its bytes and its opcode."""
        if self.rbusy or self.indone or self.inerr:
            self._begin_recv(function)
        self.rbusy = True
        try:
            reader = self.reader
            if reader.end - reader.start < 2:
                reader.fill(2, deadline)
            # The fast path: a whole message of the socket's type in one
            # frame of up to 125 bytes.
            buf, start = reader.buf, reader.start
            b1 = buf[start + 1]
            size = b1 & 0x7F
            if (
                buf[start] == self.fast_b0
                and size < 126
                and size <= maxlen
                and size <= self.fast_max
                and (b1 >> 7) == self.server
            ):
                hlen = 6 if self.server else 2
                if reader.end - start < hlen + size:
                    reader.fill(hlen + size, deadline)
                    buf, start = reader.buf, reader.start
                data = bytes(buf[start + hlen : start + hlen + size])
                if self.server:
                    data = xor_mask(data, bytes(buf[start + 2 : start + 6]))
                reader.skip(hlen + size)
                return data, self.opcode
            return self._recv_frames(maxlen, deadline, function)
        except BaseException:
            if not self.indone:
                self.inerr = True
            raise
        finally:
            self.rbusy = False

    def _recv_frames(self, maxlen: int, deadline: int, function: str) -> tuple[bytes, int]:
        # The general case: any frame sizes, fragments, control frames between.
        reader = self.reader
        parts: list[bytes] = []
        size = 0
        opcode = -1
        while True:
            header = self._data_header(deadline, function)
            opcode = self._check_frame(header, opcode, size, maxlen, function)
            n = header.size
            if n <= CHUNK:
                reader.fill(n, deadline)
                data = reader.take(n)
            else:
                message = bytearray(n)
                view = memoryview(message)
                got = reader.take_into(view)
                if got < n:
                    self.lower.brecv_into(view[got:], deadline)
                data = bytes(message)
            if header.mask is not None:
                data = xor_mask(data, header.mask)
            size += n
            if header.fin:
                if parts:
                    parts.append(data)
                    return b"".join(parts), opcode
                return data, opcode
            parts.append(data)

    def recvl(self, buffers: Sequence[RecvItem], deadline: int, function: str) -> tuple[int, int]:
        """Receive one message scattered over buffers: its size and its opcode.

        An empty sequence drops one message of any size (the limits do not
        apply: nothing is kept).
        """
        if self.rbusy or self.indone or self.inerr:
            self._begin_recv(function)
        items = recv_items(buffers, function)
        room = sum(i if isinstance(i, int) else i.nbytes for i in items) if items else -1
        self.rbusy = True
        try:
            reader = self.reader
            size = 0
            opcode = -1
            while True:
                header = self._data_header(deadline, function)
                opcode = self._check_frame(header, opcode, size, room, function)
                n = header.size
                if items:
                    segments = _slice(items, size, n)
                    if n <= CHUNK:
                        reader.fill(n, deadline)
                    reader.scatter(segments, n, deadline)
                    if header.mask is not None:
                        _unmask_segments(segments, header.mask)
                else:
                    reader.scatter((), n, deadline)
                size += n
                if header.fin:
                    return size, opcode
        except BaseException:
            if not self.indone:
                self.inerr = True
            raise
        finally:
            self.rbusy = False

    def _begin_recv(self, function: str) -> None:
        if self.rbusy:
            raise error(errno.EBUSY, function)
        if self.indone:
            raise error(errno.EPIPE, function)
        if self.inerr:
            raise error(errno.ECONNRESET, function)

    def _data_header(self, deadline: int, function: str) -> FrameHeader:
        # The header of the next data frame, taken off the stream; control
        # frames before it are handled here. The peer's close frame ends
        # receiving: EPIPE, from now on.
        reader = self.reader
        masked = self.server
        while True:
            if reader.end - reader.start < 2:
                reader.fill(2, deadline)
            header = parse_frame_header(reader.buf, reader.start, reader.end, masked)
            if header is None:
                b1 = reader.buf[reader.start + 1]
                extended = {126: 2, 127: 8}.get(b1 & 0x7F, 0)
                reader.fill(2 + extended + (4 if masked else 0), deadline)
                header = parse_frame_header(reader.buf, reader.start, reader.end, masked)
                assert header is not None
            reader.skip(header.length)
            if header.opcode < OP_CLOSE:
                return header
            reader.fill(header.size, deadline)
            payload = reader.take(header.size)
            if header.mask is not None:
                payload = xor_mask(payload, header.mask)
            if header.opcode == OP_PING:
                self._answer_ping(payload, deadline)
            elif header.opcode == OP_CLOSE:
                self.close_status, self.close_reason = parse_close(payload)
                self.indone = True
                raise error(errno.EPIPE, function)
            # A pong (an answer to a ping greendill never sends) is dropped.
            assert header.opcode in (OP_PING, OP_PONG)

    def _check_frame(
        self, header: FrameHeader, opcode: int, size: int, room: int, function: str
    ) -> int:
        # The opcode of the message that this data frame belongs to (opcode
        # -1: none begun yet); EPROTO for a frame out of order, EMSGSIZE for
        # one over the limits or the caller's room (-1: no room limit, the
        # message is dropped).
        if header.opcode == OP_CONT:
            if opcode < 0:
                raise error(errno.EPROTO, function)
        elif opcode >= 0:
            raise error(errno.EPROTO, function)
        else:
            opcode = header.opcode
        if room >= 0:
            total = size + header.size
            if header.size > self.max_frame or total > self.max_message or total > room:
                raise error(errno.EMSGSIZE, function)
        return opcode


def _slice(items: list[Any], offset: int, size: int) -> list[Any]:
    # The part of items (views and ints) from byte offset, size bytes long.
    out: list[Any] = []
    for item in items:
        if size <= 0:
            break
        n = item if isinstance(item, int) else item.nbytes
        if offset >= n:
            offset -= n
            continue
        take = min(n - offset, size)
        out.append(take if isinstance(item, int) else item[offset : offset + take])
        offset = 0
        size -= take
    return out


def _unmask_segments(segments: list[Any], mask: bytes) -> None:
    # Unmask a frame's payload scattered over segments, in place.
    phase = 0
    for segment in segments:
        if isinstance(segment, int):
            phase = (phase + segment) % 4
            continue
        segment[:] = xor_mask(segment, mask, phase)
        phase = (phase + segment.nbytes) % 4


# The upgrade. ----------------------------------------------------------------------


def _read_head(reader: ReadAhead, deadline: int, function: str) -> bytes:
    # Receive until the HTTP head has ended and take it off the reader; what
    # follows stays there (the first frames).
    scanned = 0
    while True:
        end = split_head(reader.buf, reader.start, reader.end, scanned, function)
        if end >= 0:
            return reader.take(end - reader.start)
        available = reader.available()
        scanned = max(0, available - 3)
        if reader.readahead:
            reader.fill(available + 1, deadline)
        else:
            tail = reader.buf[max(reader.start, reader.end - 3) : reader.end]
            reader.fill(available + head_safe_read(tail), deadline)


def _client_handshake(
    lower: Any, reader: ReadAhead, resource: str, host: str, deadline: int
) -> None:
    key = request_key()
    lower.bsend(client_request(resource, host, key), deadline)
    parse_response(_read_head(reader, deadline, "ws_attach_client"), key)


def _server_handshake(lower: Any, reader: ReadAhead, deadline: int) -> tuple[str, Optional[str]]:
    head = _read_head(reader, deadline, "ws_attach_server")
    try:
        resource, host, key = parse_request(head)
    except OSError:
        # Tell the client why before the socket is closed, if that can be
        # done at once.
        with suppress(OSError):
            lower.bsend(rejection(), 0)
        raise
    lower.bsend(server_response(key), deadline)
    return resource, host


# The functions. ------------------------------------------------------------------


def _limit(value: Optional[int], function: str) -> int:
    if value is None:
        return _UNLIMITED
    if value.__class__ is not int and not isinstance(value, int):
        raise TypeError(f"{function}: a limit is an int or None, not {type(value).__name__}")
    if value < 0:
        raise error(errno.EINVAL, function)
    return value


def _attach(
    s: int,
    flags: int,
    server: bool,
    resource: Optional[str],
    host: Optional[str],
    mem: Any,
    deadline: int,
    max_frame: Optional[int],
    max_message: Optional[int],
    function: str,
) -> tuple[int, Optional[str], Optional[str]]:
    c = context()
    try:
        if flags.__class__ is not int and not isinstance(flags, int):
            raise TypeError(f"{function}: flags is an int, not {type(flags).__name__}")
        if flags & ~_ALL_FLAGS or flags < 0:
            raise error(errno.EINVAL, function)
        http = not flags & WS_NOHTTP
        if http and not server:
            if resource is None or host is None:
                raise error(errno.EINVAL, function)
            if not isinstance(resource, str) or not isinstance(host, str):
                raise TypeError(f"{function}: resource and host are str")
        frame_limit = _limit(max_frame, function)
        message_limit = _limit(max_message, function)
        check_storage(mem, ws_storage, function)
        check_can_block(c, function)
    except BaseException:
        close_quietly(s)
        raise
    u = hown(s)
    try:
        # libdill passes the byte-stream query's ENOTSUP through (prefix
        # turns it into EPROTO).
        lower = hquery(u, bsock_type)
        reader = ReadAhead(lower)
        if http and server:
            resource, host = _server_handshake(lower, reader, deadline)
        elif http:
            assert resource is not None and host is not None
            _client_handshake(lower, reader, resource, host, deadline)
        else:
            resource = host = None
    except BaseException as exc:
        close_quietly(u)
        if isinstance(exc, OSError) and exc.errno == errno.ENOTSUP:
            raise error(errno.ENOTSUP, function) from None
        raise
    mem.open(u, lower, reader, flags, server, frame_limit, message_limit)
    return new_handle(c, mem), resource, host


def ws_attach_client_mem(
    s: int,
    flags: int,
    resource: Optional[str],
    host: Optional[str],
    mem: ws_storage,
    deadline: int = -1,
    *,
    max_frame: Optional[int] = WS_DEFAULT_MAX_FRAME,
    max_message: Optional[int] = WS_DEFAULT_MAX_MESSAGE,
) -> int:
    """Start a WebSocket client on a byte-stream socket, in caller's storage.

    Does what ws_attach_client does, in mem (made by ws_storage()), which
    can be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        flags: WS_BINARY (0) or WS_TEXT, with WS_NOHTTP or-ed in for no upgrade.
        resource: the resource asked for. Unused (may be None) with WS_NOHTTP.
        host: the Host field's value. Unused with WS_NOHTTP.
        mem: a ws_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
        max_frame: the longest frame payload accepted (None: no limit).
        max_message: the longest message accepted (None: no limit).
    Returns: the handle of the new message socket.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled (before or while it had to wait).
        ECONNRESET: the connection below broke during the upgrade.
        EINVAL: flags has bits other than WS_TEXT and WS_NOHTTP, a limit is
            negative, resource or host is None, empty or holds a character it
            may not, or mem is None.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        EMSGSIZE: the server's HTTP head is over 16 KiB or has over 100 fields.
        ENOTSUP: s is not a byte-stream socket.
        EPROTO: the server did not accept the upgrade (not 101, a wrong
            Sec-WebSocket-Accept, a missing or repeated field).
        ETIMEDOUT: the deadline passed before the upgrade was done.
        (A failure of the socket below passes through: EPIPE when it ended
        during the upgrade.) On every failure s is closed.
    """
    handle, _, _ = _attach(
        s,
        flags,
        False,
        resource,
        host,
        mem,
        deadline,
        max_frame,
        max_message,
        "ws_attach_client_mem",
    )
    return handle


def ws_attach_client(
    s: int,
    flags: int,
    resource: Optional[str],
    host: Optional[str],
    deadline: int = -1,
    *,
    max_frame: Optional[int] = WS_DEFAULT_MAX_FRAME,
    max_message: Optional[int] = WS_DEFAULT_MAX_MESSAGE,
) -> int:
    """Start a WebSocket client on a byte-stream socket.

    Unless flags has WS_NOHTTP, sends the HTTP/1.1 upgrade request for
    resource on host (a fresh Sec-WebSocket-Key, version 13) and waits for
    the server's 101 answer, which must accept that key. Then every message
    is one frame, masked as a client must. The new handle owns s: s is
    invalid from now on, and closed if this fails, whatever the reason.
    Closing the new handle closes s too; ws_detach gives it back.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        flags: WS_BINARY (0) or WS_TEXT, the type of msend and mrecv's
            messages; with WS_NOHTTP (or-ed in) there is no upgrade.
        resource: the resource asked for ("/chat"): ASCII, no spaces or
            control characters. Unused (may be None) with WS_NOHTTP.
        host: the Host field's value ("example.com:8000"). Unused with WS_NOHTTP.
        deadline: a point in time in ms (see now()); -1 for never.
        max_frame: the longest frame payload accepted from the server, in
            bytes (EMSGSIZE beyond); None for no limit. Default 16 MiB.
        max_message: the longest message accepted, in bytes; None for no
            limit. Default 16 MiB.
    Returns: the handle of the new message socket.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled (before or while it had to wait).
        ECONNRESET: the connection below broke during the upgrade.
        EINVAL: flags has bits other than WS_TEXT and WS_NOHTTP, a limit is
            negative, or resource or host is None, empty or holds a
            character it may not.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        EMSGSIZE: the server's HTTP head is over 16 KiB or has over 100 fields.
        ENOTSUP: s is not a byte-stream socket (libdill's errno; prefix's is EPROTO).
        EPROTO: the server did not accept the upgrade (not 101, a wrong
            Sec-WebSocket-Accept, a missing or repeated field).
        ETIMEDOUT: the deadline passed before the upgrade was done.
        (A failure of the socket below passes through: EPIPE when it ended
        during the upgrade.) On every failure s is closed.
    """
    handle, _, _ = _attach(
        s,
        flags,
        False,
        resource,
        host,
        ws_storage(),
        deadline,
        max_frame,
        max_message,
        "ws_attach_client",
    )
    return handle


def ws_attach_server_mem(
    s: int,
    flags: int,
    mem: ws_storage,
    deadline: int = -1,
    *,
    max_frame: Optional[int] = WS_DEFAULT_MAX_FRAME,
    max_message: Optional[int] = WS_DEFAULT_MAX_MESSAGE,
) -> tuple[int, Optional[str], Optional[str]]:
    """Start a WebSocket server on a byte-stream socket, in caller's storage.

    Does what ws_attach_server does, in mem (made by ws_storage()), which
    can be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        flags: WS_BINARY (0) or WS_TEXT, with WS_NOHTTP or-ed in for no upgrade.
        mem: a ws_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
        max_frame: the longest frame payload accepted (None: no limit).
        max_message: the longest message accepted (None: no limit).
    Returns: (handle, resource, host), as ws_attach_server.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled (before or while it had to wait).
        ECONNRESET: the connection below broke during the upgrade.
        EINVAL: flags has bits other than WS_TEXT and WS_NOHTTP, a limit is
            negative, or mem is None.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        EMSGSIZE: the client's HTTP head is over 16 KiB or has over 100 fields.
        ENOTSUP: s is not a byte-stream socket.
        EPROTO: the client's head is not a WebSocket upgrade request.
        ETIMEDOUT: the deadline passed before the upgrade was done.
        (A failure of the socket below passes through.) On every failure s is closed.
    """
    return _attach(
        s, flags, True, None, None, mem, deadline, max_frame, max_message, "ws_attach_server_mem"
    )


def ws_attach_server(
    s: int,
    flags: int,
    deadline: int = -1,
    *,
    max_frame: Optional[int] = WS_DEFAULT_MAX_FRAME,
    max_message: Optional[int] = WS_DEFAULT_MAX_MESSAGE,
) -> tuple[int, Optional[str], Optional[str]]:
    """Start a WebSocket server on a byte-stream socket.

    Unless flags has WS_NOHTTP, receives the client's HTTP/1.1 upgrade
    request (GET, with Upgrade: websocket, Connection: Upgrade, a
    Sec-WebSocket-Key and Sec-WebSocket-Version: 13, at most one of each
    and of Host) and answers it with 101 Switching Protocols; a request it
    refuses gets a 400 answer, if that can be sent at once, before s is
    closed. Then every message is one unmasked frame, and the client's must
    be masked. The new handle owns s: s is invalid from now on, and closed
    if this fails, whatever the reason.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        flags: WS_BINARY (0) or WS_TEXT, the type of msend and mrecv's
            messages; with WS_NOHTTP (or-ed in) there is no upgrade.
        deadline: a point in time in ms (see now()); -1 for never.
        max_frame: the longest frame payload accepted from the client, in
            bytes (EMSGSIZE beyond); None for no limit. Default 16 MiB.
        max_message: the longest message accepted, in bytes; None for no
            limit. Default 16 MiB.
    Returns: (handle, resource, host): the new message socket, the resource
        the client asked for and its Host field (None when it sent none);
        both None with WS_NOHTTP. (libdill copies them into the caller's
        buffers, and fails with EMSGSIZE when they do not fit.)
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled (before or while it had to wait).
        ECONNRESET: the connection below broke during the upgrade.
        EINVAL: flags has bits other than WS_TEXT and WS_NOHTTP, or a limit is negative.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        EMSGSIZE: the client's HTTP head is over 16 KiB or has over 100 fields.
        ENOTSUP: s is not a byte-stream socket (libdill's errno; prefix's is EPROTO).
        EPROTO: the client's head is not a WebSocket upgrade request (not
            GET, a missing, wrong or repeated field).
        ETIMEDOUT: the deadline passed before the upgrade was done.
        (A failure of the socket below passes through: EPIPE when it ended
        during the upgrade.) On every failure s is closed.
    """
    return _attach(
        s,
        flags,
        True,
        None,
        None,
        ws_storage(),
        deadline,
        max_frame,
        max_message,
        "ws_attach_server",
    )


def _socket(s: int, function: str) -> ws_storage:
    obj: ws_storage = layer_object(context(), s, ws_type, function)
    return obj


def _opcode(flags: int, function: str) -> int:
    if flags.__class__ is not int and not isinstance(flags, int):
        raise TypeError(f"{function}: flags is an int, not {type(flags).__name__}")
    if flags & ~WS_TEXT or flags < 0:
        raise error(errno.EINVAL, function)
    return OP_TEXT if flags & WS_TEXT else OP_BINARY


def ws_send(s: int, flags: int, data: Any, deadline: int = -1) -> None:
    """Send one message of the type flags gives.

    The message goes as one frame (masked on a client). msend on the same
    socket sends the type given at attach.

    Parameters:
        s: handle of a WebSocket socket.
        flags: WS_BINARY (0) or WS_TEXT. A text message should be UTF-8
            (RFC 6455); greendill sends the bytes as they are.
        data: a bytes-like object.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s (or the coroutine receiving
            on s is answering a ping, which takes a moment).
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send failed (the sending side is broken).
        EINVAL: flags is neither WS_BINARY nor WS_TEXT.
        ENOTSUP: s is not a WebSocket socket.
        EPIPE: ws_done was called (a close frame was sent).
        ETIMEDOUT: the deadline passed before the message was sent; the
            sending side is then broken.
    """
    _socket(s, "ws_send").send(_opcode(flags, "ws_send"), data, deadline, "ws_send")


def ws_sendl(s: int, flags: int, buffers: Sequence[Any], deadline: int = -1) -> None:
    """Send a list of buffers, joined, as one message of the type flags gives.

    Parameters:
        s: handle of a WebSocket socket.
        flags: WS_BINARY (0) or WS_TEXT.
        buffers: a non-empty sequence of bytes-like objects.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send failed (the sending side is broken).
        EINVAL: flags is neither WS_BINARY nor WS_TEXT, or buffers is empty or None.
        ENOTSUP: s is not a WebSocket socket.
        EPIPE: ws_done was called (a close frame was sent).
        ETIMEDOUT: the deadline passed before the message was sent.
    """
    obj = _socket(s, "ws_sendl")
    opcode = _opcode(flags, "ws_sendl")
    if not buffers:
        raise error(errno.EINVAL, "ws_sendl")
    obj.send(opcode, b"".join(buffers), deadline, "ws_sendl")


def ws_recv(s: int, maxlen: int, deadline: int = -1) -> tuple[bytes, int]:
    """Receive one message, of either type.

    Pings that come first are answered with pongs, pongs dropped. A close
    frame from the peer ends receiving: this and every later receive fails
    with EPIPE, and ws_status tells the peer's status and reason. Answer it
    with ws_done or ws_detach (RFC 6455 wants the answer soon). A text
    message comes as the bytes that were sent, not checked for UTF-8.

    Parameters:
        s: handle of a WebSocket socket.
        maxlen: the longest message accepted, in bytes (the socket's
            max_message limit applies too).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: (data, flags): the message, and WS_TEXT or WS_BINARY.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier receive failed (the receiving side is broken).
        EINVAL: maxlen is negative.
        EMSGSIZE: the message is longer than maxlen, or a frame or the
            message is over the socket's limits; the receiving side is broken.
        ENOTSUP: s is not a WebSocket socket.
        EPIPE: the peer's close frame came (now or before).
        EPROTO: the peer broke the protocol (a bad frame, a bad close
            frame); the receiving side is broken.
        ETIMEDOUT: the deadline passed before a whole message came; the
            receiving side is then broken.
        (A failure of the socket below passes through, and breaks receiving.)
    """
    obj = _socket(s, "ws_recv")
    if maxlen < 0:
        raise error(errno.EINVAL, "ws_recv")
    data, opcode = obj.recv(maxlen, deadline, "ws_recv")
    return data, _flags_of(opcode)


def ws_recvl(s: int, buffers: Sequence[RecvItem], deadline: int = -1) -> tuple[int, int]:
    """Receive one message, of either type, scattered over a list of buffers.

    An int in the list receives and drops that many bytes; an empty list
    drops one whole message, whatever its size.

    Parameters:
        s: handle of a WebSocket socket.
        buffers: a sequence of writable buffers and ints, or empty.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: (size, flags): the message's size, and WS_TEXT or WS_BINARY.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier receive failed (the receiving side is broken).
        EINVAL: buffers is None, holds a read-only buffer or a negative int.
        EMSGSIZE: the message is longer than the buffers, or a frame or the
            message is over the socket's limits; the receiving side is broken.
        ENOTSUP: s is not a WebSocket socket.
        EPIPE: the peer's close frame came (now or before).
        EPROTO: the peer broke the protocol; the receiving side is broken.
        ETIMEDOUT: the deadline passed before a whole message came.
    """
    obj = _socket(s, "ws_recvl")
    if buffers is None:
        raise error(errno.EINVAL, "ws_recvl")
    size, opcode = obj.recvl(buffers, deadline, "ws_recvl")
    return size, _flags_of(opcode)


def _close_payload(status: int, buf: Any, function: str) -> bytes:
    if status.__class__ is not int and not isinstance(status, int):
        raise TypeError(f"{function}: status is an int, not {type(status).__name__}")
    reason = b"" if buf is None else bytes(memoryview(buf))
    try:
        return close_payload(status, reason)
    except OSError:
        raise error(errno.EINVAL, function) from None


def ws_done(s: int, status: int, buf: Any, deadline: int = -1) -> None:
    """Send a close frame: this side will send no more.

    The frame carries status and the reason buf (RFC 6455: UTF-8 text); the
    peer's receives fail with EPIPE once they reach it, and its ws_status
    tells both. Receiving goes on here until the peer's close frame.

    Parameters:
        s: handle of a WebSocket socket.
        status: 1000 to 4999 (1000 is a normal closure), or 0 for none.
        buf: the reason, a bytes-like object (None: none); with the status,
            at most 125 bytes, and none without a status.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send failed (the sending side is broken).
        EINVAL: status is neither 0 nor in 1000..4999, or the reason is too
            long (libdill sends it, and the peer fails with EPROTO).
        ENOTSUP: s is not a WebSocket socket.
        EPIPE: the close frame was sent already.
        ETIMEDOUT: the deadline passed before the frame was sent.
    """
    payload = _close_payload(status, buf, "ws_done")
    _socket(s, "ws_done").send_close(payload, deadline)


def ws_detach(s: int, status: int, buf: Any, deadline: int = -1) -> int:
    """End the WebSocket with the closing handshake and return the byte stream below.

    Sends a close frame with status and reason buf unless ws_done did, then
    receives and drops messages until the peer's close frame (at once if it
    came already) or, as in libdill, the end of the stream below. Bytes
    that came after it stay readable on the returned socket. On success
    the WebSocket handle is gone and the byte stream is the caller's; on
    failure both are closed.

    Parameters:
        s: handle of a WebSocket socket.
        status: as for ws_done (unused if ws_done was called).
        buf: as for ws_done.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the byte-stream socket below.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending or receiving on s (s stays open).
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send or receive failed.
        EINVAL: status or buf is invalid (see ws_done).
        ENOTSUP: s is not a WebSocket socket.
        ETIMEDOUT: the deadline passed before the peer's close frame came.
        (A failure of the socket below passes through: EPROTO, EPIPE, ...)
    """
    c = context()
    obj: ws_storage = layer_object(c, s, ws_type, "ws_detach")
    if obj.rbusy or obj.sbusy:
        raise error(errno.EBUSY, "ws_detach")
    try:
        if obj.inerr or obj.outerr:
            raise error(errno.ECONNRESET, "ws_detach")
        if not obj.outdone:
            obj.send_close(_close_payload(status, buf, "ws_detach"), deadline)
        while not obj.indone:
            try:
                obj.recvl((), deadline, "ws_detach")
            except OSError as exc:
                # The peer's close frame, or (as in libdill) the end of
                # the stream below.
                if exc.errno != errno.EPIPE:
                    raise
                break
    except BaseException:
        close_quietly(s)
        raise
    obj.reader.give_back()
    u, obj.u = obj.u, -1
    obj.is_open = False
    release(c, s)
    return u


def ws_status(s: int, maxlen: int = MAX_CONTROL) -> tuple[int, bytes]:
    """The status and reason of the peer's close frame.

    Parameters:
        s: handle of a WebSocket socket.
        maxlen: the longest reason accepted (default 125: any).
    Returns: (status, reason): 0 and b"" when the close frame had no status.
    Errors:
        EAGAIN: no close frame has come yet.
        EBADF: s is not an open handle.
        EINVAL: maxlen is negative.
        EMSGSIZE: the reason is longer than maxlen.
        ENOTSUP: s is not a WebSocket socket.
    """
    obj = _socket(s, "ws_status")
    if maxlen < 0:
        raise error(errno.EINVAL, "ws_status")
    if not obj.indone:
        raise error(errno.EAGAIN, "ws_status")
    if len(obj.close_reason) > maxlen:
        raise error(errno.EMSGSIZE, "ws_status")
    return obj.close_status, obj.close_reason


def ws_request_key() -> str:
    """A fresh Sec-WebSocket-Key: the base64 of 16 random bytes.

    Parameters: none.
    Returns: the key, 24 characters.
    Errors:
        EINVAL: never raised (libdill's for a NULL buffer).
    """
    return request_key()


def ws_response_key(key: str) -> str:
    """The Sec-WebSocket-Accept value that answers a Sec-WebSocket-Key.

    base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).

    Parameters:
        key: the client's key.
    Returns: the answer, 28 characters.
    Errors:
        EINVAL: key is None.
        EPROTO: key is not the base64 of 16 bytes.
    """
    if key is None:
        raise error(errno.EINVAL, "ws_response_key")
    if not isinstance(key, str):
        raise TypeError(f"ws_response_key: key is a str, not {type(key).__name__}")
    return response_key(key)
