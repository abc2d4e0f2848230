"""The WebSocket codec (RFC 6455): frames and the HTTP/1.1 upgrade, with no I/O.

Everything here is pure code on bytes: no handles, no gevent. _ws.py moves
the bytes; this module says what they mean, so hypothesis can test it on any
input (tests/test_ws.py).

Frames. A frame is two bytes (FIN, three RSV bits that must be 0 without an
extension, the opcode; the MASK bit and a 7-bit length), then a 16-bit
(length 126) or 64-bit (length 127) extended length, then the 4-byte masking
key if MASK is set, then the payload. A client masks every frame it sends
(each payload byte XORed with the key, byte i with key[i % 4]) and a server
masks none; a frame with the wrong MASK bit is a protocol error. Opcodes: 0
continues a fragmented message, 1 starts a text message, 2 a binary one, 8
is close, 9 ping, 10 pong; control frames (8 and up) are never fragmented and
carry at most 125 bytes. A close frame's payload is empty, or a 2-byte
big-endian status and a reason.

The upgrade. The client sends `GET <resource> HTTP/1.1` with Host, Upgrade:
websocket, Connection: Upgrade, Sec-WebSocket-Key (base64 of 16 random
bytes) and Sec-WebSocket-Version: 13; the server answers `HTTP/1.1 101
Switching Protocols` with Upgrade, Connection and Sec-WebSocket-Accept, the
base64 of SHA-1(key + the RFC's GUID). libdill's rules, with two
relaxations that browsers need: Connection and Upgrade are token lists that
must contain the token (libdill wants the value alone).

Errors are raised as greendill's OSErrors: EPROTO for bytes that break the
protocol, EMSGSIZE for a head over the limits, EINVAL for values a caller
must not send.

Why a codec of our own rather than wsproto (with h11 for the upgrade):
libdill's semantics need control at every byte (which errno for which
fault, a message type checked against the socket's, the payload streamed
into the caller's buffers, bytes after the close frame given back to the
stream below on detach), and wsproto buffers what it is fed and hands out
events, so greendill would copy every payload once more and could not give
back unread bytes. The framing is a page of code, and greendill then needs
no runtime dependency for it.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import re
import struct
from typing import Any, NamedTuple, Optional

from ._errors import error

__all__ = [
    "GUID",
    "MAX_CONTROL",
    "MAX_FIELDS",
    "MAX_HEAD",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONT",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "Frame",
    "FrameHeader",
    "client_request",
    "close_payload",
    "encode_frame",
    "frame_header",
    "head_safe_read",
    "mask_key",
    "next_frame",
    "parse_close",
    "parse_frame_header",
    "parse_request",
    "parse_response",
    "rejection",
    "request_key",
    "response_key",
    "server_response",
    "split_head",
    "xor_mask",
]

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

#: The largest payload of a control frame (close, ping, pong).
MAX_CONTROL = 125

#: The GUID that RFC 6455 appends to the client's key.
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: The longest HTTP head (request or response) accepted, in bytes: EMSGSIZE beyond.
MAX_HEAD = 16384
#: The most header fields accepted in a head: EMSGSIZE beyond.
MAX_FIELDS = 100

_DATA_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
_LEN16 = struct.Struct(">H")
_LEN64 = struct.Struct(">Q")


# Keys. ------------------------------------------------------------------------


def request_key() -> str:
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes (24 characters)."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def response_key(key: str) -> str:
    """The Sec-WebSocket-Accept answering key; EPROTO if key is not base64 of 16 bytes."""
    try:
        raw = key.encode("ascii")
        nonce = base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise error(errno.EPROTO, "ws_response_key") from None
    if len(nonce) != 16:
        raise error(errno.EPROTO, "ws_response_key")
    return base64.b64encode(hashlib.sha1(raw + GUID).digest()).decode("ascii")


# Masking. ---------------------------------------------------------------------

# Masking keys come from the OS's strong source (RFC 6455 section 10.3 wants
# them unpredictable), drawn 4 KiB at a time: one system call per 1024 frames.
_pool = b""
_pool_at = 0


def mask_key() -> bytes:
    """Four unpredictable bytes: the masking key of one client frame."""
    global _pool, _pool_at  # noqa: PLW0603 (a module-wide pool, one per process)
    at = _pool_at
    if at >= len(_pool):
        _pool, at = os.urandom(4096), 0
    _pool_at = at + 4
    return _pool[at : at + 4]


def xor_mask(data: Any, mask: bytes, phase: int = 0) -> bytes:
    """data XORed with the repeated mask, starting at byte phase (0..3) of the mask.

    Masking and unmasking are the same operation. The XOR is done on one
    Python integer: linear time, with no loop in Python.
    """
    n = len(data)
    if phase:
        mask = mask[phase:] + mask[:phase]
    key = mask * (n // 4 + 1)
    value = int.from_bytes(data, "little") ^ int.from_bytes(key[:n], "little")
    return value.to_bytes(n, "little")


# Frames. ----------------------------------------------------------------------


def frame_header(opcode: int, size: int, mask: Optional[bytes]) -> bytes:
    """The header of a final (FIN) frame with this opcode and payload size, masked by mask."""
    if size <= 125:
        head = bytes((0x80 | opcode, size | (0x80 if mask else 0)))
    elif size <= 0xFFFF:
        head = bytes((0x80 | opcode, 126 | (0x80 if mask else 0))) + _LEN16.pack(size)
    else:
        head = bytes((0x80 | opcode, 127 | (0x80 if mask else 0))) + _LEN64.pack(size)
    return head + mask if mask else head


def encode_frame(opcode: int, payload: Any, mask: Optional[bytes], fin: bool = True) -> bytes:
    """A whole frame: header and payload, masked when mask is given.

    fin=False makes a fragment that a continuation frame (OP_CONT) goes on
    (greendill sends every message as one frame; tests and peers fragment).
    """
    payload = bytes(payload)
    head = frame_header(opcode, len(payload), mask)
    if not fin:
        head = bytes((head[0] & 0x7F,)) + head[1:]
    return head + (xor_mask(payload, mask) if mask else payload)


class FrameHeader(NamedTuple):
    """A parsed frame header: its fields, and how many bytes it took on the wire."""

    fin: bool
    opcode: int
    size: int
    mask: Optional[bytes]
    length: int


def parse_frame_header(
    buffer: Any, start: int, end: int, masked: bool, function: str = "mrecv"
) -> Optional[FrameHeader]:
    """The header of the frame at buffer[start:end] (h11's reader contract).

    Returns None while the header is incomplete, consuming nothing. masked
    says whether the peer must mask its frames (it is a client). EPROTO for
    RSV bits, an unknown opcode, the wrong MASK bit, a fragmented or
    oversized control frame, or a 64-bit length with its top bit set.
    """
    if end - start < 2:
        return None
    b0, b1 = buffer[start], buffer[start + 1]
    opcode = b0 & 0x0F
    if b0 & 0x70 or not (opcode in _DATA_OPCODES or opcode in _CONTROL_OPCODES):
        raise error(errno.EPROTO, function)
    if bool(b1 & 0x80) is not masked:
        raise error(errno.EPROTO, function)
    size = b1 & 0x7F
    length = 2
    if size == 126:
        if end - start < 4:
            return None
        size = _LEN16.unpack_from(buffer, start + 2)[0]
        length = 4
    elif size == 127:
        if end - start < 10:
            return None
        size = _LEN64.unpack_from(buffer, start + 2)[0]
        if size >> 63:
            raise error(errno.EPROTO, function)
        length = 10
    fin = bool(b0 & 0x80)
    if opcode >= OP_CLOSE and (size > MAX_CONTROL or not fin):
        raise error(errno.EPROTO, function)
    mask = None
    if masked:
        if end - start < length + 4:
            return None
        mask = bytes(buffer[start + length : start + length + 4])
        length += 4
    return FrameHeader(fin, opcode, size, mask, length)


class Frame(NamedTuple):
    """A whole frame, its payload unmasked."""

    fin: bool
    opcode: int
    payload: bytes


def next_frame(buffer: bytearray, masked: bool, max_frame: int = -1) -> Optional[Frame]:
    """Take the first whole frame off the front of buffer (h11's reader contract).

    Returns None, leaving buffer as it is, while the frame is incomplete.
    Raises what parse_frame_header raises, and EMSGSIZE for a frame
    longer than max_frame (-1: no limit), as soon as its header is in.
    """
    header = parse_frame_header(buffer, 0, len(buffer), masked)
    if header is None:
        return None
    if 0 <= max_frame < header.size:
        raise error(errno.EMSGSIZE, "mrecv")
    end = header.length + header.size
    if len(buffer) < end:
        return None
    payload = bytes(buffer[header.length : end])
    del buffer[:end]
    if header.mask is not None:
        payload = xor_mask(payload, header.mask)
    return Frame(header.fin, header.opcode, payload)


def close_payload(status: int, reason: bytes) -> bytes:
    """The payload of a close frame; EINVAL for a bad status or a payload over 125 bytes.

    status 0 sends no status (and then no reason is allowed, as the RFC says).
    """
    if status == 0:
        if reason:
            raise error(errno.EINVAL, "ws_done")
        return b""
    if not 1000 <= status <= 4999 or 2 + len(reason) > MAX_CONTROL:
        raise error(errno.EINVAL, "ws_done")
    return _LEN16.pack(status) + reason


def parse_close(payload: bytes) -> tuple[int, bytes]:
    """The status (0 for none) and reason of a close frame's payload.

    EPROTO for a 1-byte payload or a status outside 1000..4999 (libdill's rule).
    """
    if not payload:
        return 0, b""
    if len(payload) == 1:
        raise error(errno.EPROTO, "mrecv")
    status = _LEN16.unpack_from(payload)[0]
    if not 1000 <= status <= 4999:
        raise error(errno.EPROTO, "mrecv")
    return status, payload[2:]


# The HTTP upgrade. ---------------------------------------------------------------

# A token (RFC 7230): the characters a header name may have.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What a resource or a host sent by the client must not contain (libdill's
# http_sendrequest refuses space, tab and LF; CR and NUL break a head too).
_BAD_IN_LINE = re.compile(r"[\x00-\x20\x7f]")
_BAD_IN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def split_head(buffer: Any, start: int, end: int, scanned: int = 0, function: str = "") -> int:
    """Where the HTTP head at buffer[start:end] ends: the index after its blank line, or -1.

    scanned: how many bytes from start are known to hold no end of head
    (the search starts there). EMSGSIZE when no head has ended within
    MAX_HEAD bytes.
    """
    at = buffer.find(b"\r\n\r\n", start + scanned, min(end, start + MAX_HEAD))
    if at >= 0:
        return int(at) + 4
    if end - start >= MAX_HEAD:
        raise error(errno.EMSGSIZE, function or "ws_attach")
    return -1


def head_safe_read(tail: Any) -> int:
    """How many bytes can be read without passing the end of a head that may end in them.

    tail: the last bytes received, in which no head ends. A stream below
    that cannot take bytes back is read no further than the earliest
    possible end of the head, so that no byte of the first frame is taken.
    """
    for k in (3, 2, 1):
        if len(tail) >= k and bytes(tail[len(tail) - k :]) == b"\r\n\r\n"[:k]:
            return 4 - k
    return 4


def _fields(lines: list[bytes], function: str) -> list[tuple[str, str]]:
    # The header fields of a head, names lower-cased; EPROTO for a line
    # that is not `name: value`, EMSGSIZE for too many.
    if len(lines) > MAX_FIELDS:
        raise error(errno.EMSGSIZE, function)
    fields = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise error(errno.EPROTO, function)
        fields.append((name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")))
    return fields


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",")]


def _head_lines(head: bytes, function: str) -> list[bytes]:
    if not head.endswith(b"\r\n\r\n"):
        raise error(errno.EPROTO, function)
    return head[:-4].split(b"\r\n")


def client_request(resource: str, host: str, key: str) -> bytes:
    """The client's upgrade request; EINVAL for an empty resource or host, or one it would break.

    The resource may not contain spaces or control characters, the host no
    control characters; both must be ASCII.
    """
    if not resource or not host or _BAD_IN_LINE.search(resource) or _BAD_IN_VALUE.search(host):
        raise error(errno.EINVAL, "ws_attach_client")
    try:
        return (
            f"GET {resource} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        ).encode("ascii")
    except UnicodeEncodeError:
        raise error(errno.EINVAL, "ws_attach_client") from None


def parse_response(head: bytes, key: str) -> None:
    """Check the server's answer to the request that sent key; EPROTO unless it accepts.

    It must be `HTTP/1.1 101 ...` with exactly one Upgrade (holding the
    token websocket), one Connection (holding upgrade) and one
    Sec-WebSocket-Accept that answers key.
    """
    function = "ws_attach_client"
    lines = _head_lines(head, function)
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[0] != b"HTTP/1.1" or status[1] != b"101":
        raise error(errno.EPROTO, function)
    seen: dict[str, str] = {}
    for name, value in _fields(lines[1:], function):
        if name in ("upgrade", "connection", "sec-websocket-accept"):
            if name in seen:
                raise error(errno.EPROTO, function)
            seen[name] = value
    if (
        "websocket" not in _tokens(seen.get("upgrade", ""))
        or "upgrade" not in _tokens(seen.get("connection", ""))
        or seen.get("sec-websocket-accept") != response_key(key)
    ):
        raise error(errno.EPROTO, function)


def parse_request(head: bytes) -> tuple[str, Optional[str], str]:
    """The resource, host (None if absent) and key of a client's upgrade request.

    EPROTO unless it is `GET <resource> HTTP/1.1` with exactly one Upgrade
    (holding websocket), Connection (holding upgrade), a valid
    Sec-WebSocket-Key and Sec-WebSocket-Version 13, and at most one Host;
    EMSGSIZE for too many header fields.
    """
    function = "ws_attach_server"
    lines = _head_lines(head, function)
    parts = lines[0].split()
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] != b"HTTP/1.1":
        raise error(errno.EPROTO, function)
    seen: dict[str, str] = {}
    for name, value in _fields(lines[1:], function):
        if name in ("host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version"):
            if name in seen:
                raise error(errno.EPROTO, function)
            seen[name] = value
    key = seen.get("sec-websocket-key", "")
    if (
        "websocket" not in _tokens(seen.get("upgrade", ""))
        or "upgrade" not in _tokens(seen.get("connection", ""))
        or seen.get("sec-websocket-version") != "13"
    ):
        raise error(errno.EPROTO, function)
    try:
        response_key(key)
    except OSError:
        raise error(errno.EPROTO, function) from None
    return parts[1].decode("latin-1"), seen.get("host"), key


def server_response(key: str) -> bytes:
    """The server's 101 answer to a request that sent key."""
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {response_key(key)}\r\n"
        "\r\n"
    ).encode("ascii")


def rejection() -> bytes:
    """What a server sends a client whose upgrade request it refuses, before closing."""
    return (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Sec-WebSocket-Version: 13\r\n"
        b"Content-Length: 0\r\n"
        b"Connection: close\r\n"
        b"\r\n"
    )
