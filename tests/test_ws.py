"""WS: WebSocket (RFC 6455) over a byte stream (reference sections 0, 16 and 19).

The codec first (hypothesis: frames survive any split and masking, the
parsers take arbitrary bytes and raise only their documented errnos), then
the wire against plain sockets of the standard library, message assembly
from any fragments with pings between them, the close handshake, each errno
in the reference's order, fuzzing the socket with arbitrary bytes, the
`websockets` package as client and as server, and WS over IPC and TCP.
WS over TLS over TCP waits for greendill's TLS layer (written in parallel):
that stack is not tested here yet.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from helpers import (
    SAFETY_MS,
    byte_stream_pair,
    finish,
    greendill_and_plain_socket,
    in_canceled_coroutine,
    plain,
    raises_errno,
    randbytes,
    recv_exactly,
    soon,
    spawn,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greendill as dill
from greendill._ws_codec import (
    MAX_HEAD,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_request,
    close_payload,
    encode_frame,
    frame_header,
    head_safe_read,
    next_frame,
    parse_close,
    parse_frame_header,
    parse_request,
    parse_response,
    request_key,
    response_key,
    server_response,
    split_head,
    xor_mask,
)
from greendill.testing import check_msock

REPO = Path(__file__).resolve().parent.parent
MASK = b"\x37\xfa\x21\x3d"
NOHTTP = dill.WS_NOHTTP


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


def decode_all(data: bytes, masked: bool) -> list[tuple[bool, int, bytes]]:
    buffer = bytearray(data)
    frames = []
    while (frame := next_frame(buffer, masked)) is not None:
        frames.append(tuple(frame))
    assert buffer == b"", "bytes left after the last frame"
    return frames  # type: ignore[return-value]


def read_frame(peer: socket.socket, masked: bool) -> tuple[bool, int, bytes]:
    """One frame from a plain socket (masked: the greendill side is a client)."""
    head = recv_exactly(peer, 2)
    extra = {126: 2, 127: 8}.get(head[1] & 0x7F, 0) + (4 if masked else 0)
    head += recv_exactly(peer, extra)
    header = parse_frame_header(head, 0, len(head), masked)
    assert header is not None
    buffer = bytearray(head + recv_exactly(peer, header.size))
    frame = next_frame(buffer, masked)
    assert frame is not None
    return tuple(frame)  # type: ignore[return-value]


def in_thread(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Run fn in an OS thread; the returned call waits for it (green) and gives its result."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the test
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def wait() -> Any:
        deadline = dill.now() + SAFETY_MS
        while thread.is_alive() and dill.now() < deadline:
            dill.msleep(dill.now() + 5)
        thread.join(0.1)
        assert not thread.is_alive(), "the thread did not finish"
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    return wait


# The codec: frames -----------------------------------------------------------------

frames_strategy = st.lists(
    st.tuples(
        st.sampled_from([OP_CONT, OP_TEXT, OP_BINARY, OP_PING, OP_PONG, OP_CLOSE]),
        st.binary(max_size=300),
        st.booleans(),
    ),
    max_size=10,
)


@given(frames_strategy, st.booleans(), st.data())
def test_codec_frames_survive_any_split_masked_or_not(
    frames: list[tuple[int, bytes, bool]], masked: bool, data: st.DataObject
) -> None:
    # Control frames are final and short, as the RFC wants.
    frames = [(op, p[:125] if op >= 8 else p, fin or op >= 8) for op, p, fin in frames]
    wire = b"".join(
        encode_frame(op, p, os.urandom(4) if masked else None, fin) for op, p, fin in frames
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    buffer = bytearray()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)]):
        buffer += wire[start:end]
        while (frame := next_frame(buffer, masked)) is not None:
            decoded.append((frame.opcode, frame.payload, frame.fin))
    assert decoded == frames
    assert buffer == b""


@given(st.binary(max_size=200), st.binary(min_size=4, max_size=4), st.integers(0, 3))
def test_codec_masking_is_its_own_inverse_and_keeps_its_phase(
    data: bytes, mask: bytes, cut: int
) -> None:
    masked = xor_mask(data, mask)
    assert len(masked) == len(data)
    assert xor_mask(masked, mask) == data
    assert all(masked[i] == data[i] ^ mask[i % 4] for i in range(len(data)))
    # Unmasking a frame's payload in pieces: each piece starts at its phase.
    k = min(cut, len(data))
    assert xor_mask(masked[k:], mask, k % 4) == data[k:]


@pytest.mark.parametrize(
    ("size", "header_length"),
    [(0, 2), (125, 2), (126, 4), (0xFFFF, 4), (0x10000, 10), (1 << 40, 10)],
)
def test_codec_header_picks_the_shortest_length_field(size: int, header_length: int) -> None:
    for mask, extra in ((None, 0), (MASK, 4)):
        head = frame_header(OP_BINARY, size, mask)
        assert len(head) == header_length + extra
        assert head[0] == 0x80 | OP_BINARY
        header = parse_frame_header(head, 0, len(head), mask is not None)
        assert header is not None
        assert (header.fin, header.opcode, header.size, header.mask) == (
            True,
            OP_BINARY,
            size,
            mask,
        )
        assert header.length == len(head)
        # One byte short of the header: None, "more", as h11's readers say.
        assert parse_frame_header(head, 0, len(head) - 1, mask is not None) is None


@pytest.mark.parametrize(
    "head",
    [
        bytes((0x80 | 0x40 | OP_BINARY, 0)),  # RSV1
        bytes((0x80 | 0x20 | OP_BINARY, 0)),  # RSV2
        bytes((0x80 | 0x10 | OP_BINARY, 0)),  # RSV3
        *(bytes((0x80 | op, 0)) for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)),
        bytes((0x80 | OP_PING, 126, 0, 126)),  # a control frame over 125 bytes
        bytes((OP_PING, 0)),  # a fragmented control frame
        bytes((0x80 | OP_BINARY, 127)) + struct.pack(">Q", 1 << 63),  # top bit of 64
        bytes((0x80 | OP_BINARY, 0x80)),  # masked, from a server
    ],
)
def test_codec_bad_frame_headers_are_eproto(head: bytes) -> None:
    with raises_errno(errno.EPROTO):
        parse_frame_header(head + bytes(12), 0, len(head) + 12, False)


def test_codec_unmasked_frame_from_a_client_is_eproto() -> None:
    with raises_errno(errno.EPROTO):
        parse_frame_header(bytes((0x82, 5)) + b"hello", 0, 7, True)


def test_codec_frame_over_max_frame_is_emsgsize_once_the_header_is_in() -> None:
    wire = bytearray(frame_header(OP_BINARY, 1000, None))
    with raises_errno(errno.EMSGSIZE):
        next_frame(wire, False, 999)
    assert next_frame(wire, False, 1000) is None


@settings(max_examples=500)
@given(st.binary(max_size=64), st.booleans(), st.integers(-1, 100))
def test_fuzz_the_frame_parser_takes_any_bytes(data: bytes, masked: bool, limit: int) -> None:
    buffer = bytearray(data)
    try:
        while (frame := next_frame(buffer, masked, limit)) is not None:
            assert frame.opcode in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)
            assert 0 <= limit < 0 or len(frame.payload) <= limit or limit < 0
    except OSError as exc:
        assert exc.errno in (errno.EPROTO, errno.EMSGSIZE)
    assert len(buffer) <= len(data)


def test_codec_close_payload_rules() -> None:
    assert close_payload(0, b"") == b""
    assert close_payload(1000, b"bye") == b"\x03\xe8bye"
    assert close_payload(4999, bytes(123)) == b"\x13\x87" + bytes(123)
    for status, reason in ((999, b""), (5000, b""), (1000, bytes(124)), (0, b"why"), (-1, b"")):
        with raises_errno(errno.EINVAL):
            close_payload(status, reason)
    assert parse_close(b"") == (0, b"")
    assert parse_close(b"\x03\xe9going") == (1001, b"going")
    for payload in (b"\x03", b"\x03\xe7", b"\x13\x88"):
        with raises_errno(errno.EPROTO):
            parse_close(payload)


@given(st.integers(1000, 4999), st.binary(max_size=123))
def test_codec_close_payload_round_trips(status: int, reason: bytes) -> None:
    assert parse_close(close_payload(status, reason)) == (status, reason)


# The codec: keys and the upgrade ---------------------------------------------------


def test_response_key_of_the_rfc_sample() -> None:
    assert dill.ws_response_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_request_keys_are_fresh_base64_of_16_bytes() -> None:
    keys = {dill.ws_request_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert len(key) == 24 < dill.WS_KEY_SIZE
        assert len(base64.b64decode(key, validate=True)) == 16
        assert len(dill.ws_response_key(key)) == 28


@pytest.mark.parametrize("key", ["", "abc", "dGhlIHNhbXBsZQ==", "dGhlIHNhbXBsZSBub25jZQ=!", "é"])
def test_response_key_eproto_for_a_key_that_is_not_16_bytes_of_base64(key: str) -> None:
    with raises_errno(errno.EPROTO):
        dill.ws_response_key(key)


def test_response_key_einval_for_none_and_typeerror_for_bytes() -> None:
    with raises_errno(errno.EINVAL):
        dill.ws_response_key(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ws_response_key(b"dGhlIHNhbXBsZSBub25jZQ==")  # type: ignore[arg-type]


resources = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)
hosts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1).map(str.strip)


@given(resources, hosts.filter(bool))
def test_codec_request_and_response_round_trip(resource: str, host: str) -> None:
    key = request_key()
    head = client_request(resource, host, key)
    assert split_head(head, 0, len(head)) == len(head)
    assert parse_request(head) == (resource, host, key)
    parse_response(server_response(key), key)


@pytest.mark.parametrize(
    ("resource", "host"),
    [("", "h"), ("/", ""), ("/a b", "h"), ("/a\tb", "h"), ("/\n", "h"), ("/", "h\r\nX: y"),
     ("/é", "h"), ("/", "hé")],
)  # fmt: skip
def test_codec_client_request_einval(resource: str, host: str) -> None:
    with raises_errno(errno.EINVAL):
        client_request(resource, host, request_key())


KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
GOOD_REQUEST = (
    b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: " + KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)
GOOD_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n\r\n"
)


def test_codec_accepts_what_browsers_send() -> None:
    # Firefox: "Connection: keep-alive, Upgrade"; any case; more fields.
    head = GOOD_REQUEST.replace(b"Connection: Upgrade", b"connection: keep-alive, Upgrade")
    head = head.replace(b"Upgrade: websocket", b"UPGRADE:   WebSocket  ")
    head = head.replace(b"\r\n\r\n", b"\r\nUser-Agent: x\r\nOrigin: http://a\r\n\r\n")
    assert parse_request(head) == ("/chat", "server.example.com", KEY)
    assert parse_request(GOOD_REQUEST.replace(b"Host: server.example.com\r\n", b"")) == (
        "/chat",
        None,
        KEY,
    )
    parse_response(GOOD_RESPONSE, KEY)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"GET ", b"POST "),
        (b"HTTP/1.1\r\n", b"HTTP/1.0\r\n"),
        (b"/chat ", b"/chat junk "),
        (b"Upgrade: websocket\r\n", b""),
        (b"Upgrade: websocket", b"Upgrade: h2c"),
        (b"Connection: Upgrade\r\n", b""),
        (b"Connection: Upgrade", b"Connection: close"),
        (b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n", b""),
        (b"Sec-WebSocket-Key: " + KEY.encode(), b"Sec-WebSocket-Key: short"),
        (b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8"),
        (b"Sec-WebSocket-Version: 13\r\n", b""),
        (b"Host: server", b"Host: a\r\nHost: server"),
        (b"Upgrade: websocket", b"Upgrade: websocket\r\nUpgrade: websocket"),
        (b"Connection: Upgrade", b"Connection: Upgrade\r\nconnection: upgrade"),
        (b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13"),
        (b"Host: server", b"Host server"),
        (b"Host: server", b" Host: server"),  # a folded line
        (b"\r\n\r\n", b"\r\n\r\r\n\r\n"),
    ],
)
def test_codec_request_eproto(old: bytes, new: bytes) -> None:
    assert old in GOOD_REQUEST
    with raises_errno(errno.EPROTO):
        parse_request(GOOD_REQUEST.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"101 Switching", b"200 OK"),
        (b"HTTP/1.1 101", b"HTTP/1.0 101"),
        (b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1"),
        (b"Upgrade: websocket\r\n", b""),
        (b"Connection: Upgrade\r\n", b""),
        (ACCEPT.encode(), ACCEPT.encode().lower()),
        (b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n", b""),
        (b"Upgrade: websocket", b"Upgrade: websocket\r\nUpgrade: websocket"),
        (b"Connection: Upgrade", b"Connection: Upgrade\r\nConnection: Upgrade"),
        (b"Sec-WebSocket", b"Sec-WebSocket-Accept: x\r\nSec-WebSocket"),
        (b"Connection: Upgrade", b"Connection Upgrade"),
    ],
)
def test_codec_response_eproto(old: bytes, new: bytes) -> None:
    assert old in GOOD_RESPONSE
    with raises_errno(errno.EPROTO):
        parse_response(GOOD_RESPONSE.replace(old, new, 1), KEY)


def test_codec_head_limits_are_emsgsize() -> None:
    many = GOOD_REQUEST.replace(b"\r\n\r\n", b"\r\n" + b"X-A: b\r\n" * 100 + b"\r\n")
    with raises_errno(errno.EMSGSIZE):
        parse_request(many)
    long = b"GET /" + b"a" * MAX_HEAD
    with raises_errno(errno.EMSGSIZE):
        split_head(long, 0, len(long))
    assert split_head(long[: MAX_HEAD - 1], 0, MAX_HEAD - 1) == -1


@given(st.binary(max_size=8), st.binary(max_size=8))
def test_head_safe_read_never_reads_past_the_end_of_a_head(tail: bytes, more: bytes) -> None:
    # Whatever came before (no end of head in it), reading head_safe_read
    # more bytes never reads past an end of head that those bytes complete.
    if b"\r\n\r\n" in tail:
        return
    n = head_safe_read(tail)
    assert 1 <= n <= 4
    wire = tail + more[:n]
    at = wire.find(b"\r\n\r\n")
    assert at < 0 or at + 4 == len(wire)


@settings(max_examples=500)
@given(st.binary(max_size=300), st.booleans())
def test_fuzz_the_head_parsers_take_any_bytes(data: bytes, end_it: bool) -> None:
    head = data + b"\r\n\r\n" if end_it else data
    for parse in (parse_request, lambda h: parse_response(h, KEY)):
        try:
            parse(head)
        except OSError as exc:
            assert exc.errno in (errno.EPROTO, errno.EMSGSIZE)


@settings(max_examples=300)
@given(st.lists(st.sampled_from(GOOD_REQUEST.split(b"\r\n")), max_size=10), st.binary(max_size=20))
def test_fuzz_the_request_parser_with_shuffled_good_lines(lines: list[bytes], junk: bytes) -> None:
    try:
        parse_request(b"\r\n".join(lines) + junk + b"\r\n\r\n")
    except OSError as exc:
        assert exc.errno in (errno.EPROTO, errno.EMSGSIZE)


# Pairs of WebSockets ---------------------------------------------------------------


@pytest.fixture(params=["ipc", "tcp", "plain"])
def kind(request: pytest.FixtureRequest) -> str:
    """The byte streams below: IPC, TCP, or a user's stream (no bunrecv) over IPC."""
    return str(request.param)


def ws_pair(kind: str, flags: int = 0, **limits: Any) -> tuple[int, int]:
    """A connected (client, server) pair of WebSockets, upgraded over HTTP unless NOHTTP."""
    a, b = byte_stream_pair(kind)
    h, out = spawn(lambda: dill.ws_attach_client(a, flags, "/test", "localhost", soon(), **limits))
    try:
        server, resource, host = dill.ws_attach_server(b, flags, soon(), **limits)
    finally:
        finish(h)
    client = out[0]
    if isinstance(client, Exception):
        raise client
    if not flags & NOHTTP:
        assert (resource, host) == ("/test", "localhost")
    else:
        assert (resource, host) == (None, None)
    return client, server


@pytest.mark.parametrize("flags", [0, dill.WS_TEXT, NOHTTP, NOHTTP | dill.WS_TEXT])
def test_messages_both_ways_keep_boundaries_and_order(kind: str, flags: int) -> None:
    c, s = ws_pair(kind, flags)
    try:
        messages = [randbytes(n, n) for n in (0, 1, 125, 126, 127, 300, 65535, 65536, 100000, 7)]
        for a, b in ((c, s), (s, c)):
            sender, out = spawn(lambda a=a: [dill.msend(a, m) for m in messages])
            assert [dill.mrecv(b, 1 << 20, soon()) for _ in messages] == messages
            finish(sender)
            assert not isinstance(out[0], Exception)
    finally:
        close_all(c, s)


def test_ws_send_and_ws_recv_carry_the_type(kind: str) -> None:
    c, s = ws_pair(kind)
    try:
        dill.ws_send(c, dill.WS_TEXT, "héllo".encode())
        dill.ws_send(c, dill.WS_BINARY, b"\x00\xff")
        dill.ws_sendl(s, dill.WS_TEXT, [b"a", bytearray(b"b"), memoryview(b"c")])
        assert dill.ws_recv(s, 100, soon()) == ("héllo".encode(), dill.WS_TEXT)
        assert dill.ws_recv(s, 100, soon()) == (b"\x00\xff", dill.WS_BINARY)
        buffer = bytearray(10)
        assert dill.ws_recvl(c, [buffer], soon()) == (3, dill.WS_TEXT)
        assert buffer[:3] == b"abc"
    finally:
        close_all(c, s)


def test_mrecv_of_the_other_type_is_eproto_and_breaks_nothing(kind: str) -> None:
    c, s = ws_pair(kind, dill.WS_TEXT)
    try:
        dill.ws_send(c, dill.WS_BINARY, b"binary")
        dill.msend(c, b"text")
        with raises_errno(errno.EPROTO):
            dill.mrecv(s, 100, soon())
        assert dill.mrecv(s, 100, soon()) == b"text"
        dill.ws_send(s, dill.WS_BINARY, b"bin")
        with raises_errno(errno.EPROTO):
            dill.mrecvl(c, [bytearray(10)], soon())
        dill.msend(s, b"ok")
        assert dill.mrecv(c, 100, soon()) == b"ok"
    finally:
        close_all(c, s)


def test_mrecvl_scatters_drops_and_skips(kind: str) -> None:
    c, s = ws_pair(kind)
    try:
        for a, b in ((c, s), (s, c)):  # masked one way, not the other
            dill.msendl(a, [b"abc", b"", b"defgh"])
            dill.msend(a, b"dropped message")
            dill.msend(a, b"0123456789")
            big = randbytes(200_000, 3)
            dill.msend(a, big)
            first, second = bytearray(2), bytearray(10)
            assert dill.mrecvl(b, [first, second], soon()) == 8
            assert (bytes(first), bytes(second[:6])) == (b"ab", b"cdefgh")
            assert dill.mrecvl(b, [], soon()) == len(b"dropped message")
            head, tail = bytearray(3), bytearray(5)
            assert dill.mrecvl(b, [head, 2, tail], soon()) == 10
            assert (head, tail) == (bytearray(b"012"), bytearray(b"56789"))
            parts = [bytearray(70_000), 60_000, bytearray(70_000)]
            assert dill.mrecvl(b, parts, soon()) == len(big)
            assert bytes(parts[0]) == big[:70_000]
            assert bytes(parts[2]) == big[130_000:]
            buffer = bytearray(100)
            dill.msend(a, b"into")
            assert dill.mrecv_into(b, buffer, soon()) == 4
            assert buffer[:4] == b"into"
    finally:
        close_all(c, s)


# The wire against plain sockets ------------------------------------------------------


def test_wire_a_client_sends_the_upgrade_and_masked_frames() -> None:
    with greendill_and_plain_socket() as (h, peer):
        co, out = spawn(lambda: dill.ws_attach_client(h, 0, "/path?q=1", "example.com:80", soon()))
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += peer.recv(1)
        resource, host, key = parse_request(request)
        assert (resource, host) == ("/path?q=1", "example.com:80")
        # The first frame comes with the 101 answer, in the same segment.
        peer.sendall(server_response(key) + encode_frame(OP_BINARY, b"early", None))
        finish(co)
        c = out[0]
        try:
            assert dill.mrecv(c, 10, soon()) == b"early"
            dill.msend(c, b"hello")
            dill.msend(c, b"hello")
            for _ in range(2):
                head = recv_exactly(peer, 6)
                assert head[:2] == b"\x82\x85"  # FIN, binary; MASK, 5 bytes
                assert xor_mask(recv_exactly(peer, 5), head[2:6]) == b"hello"
            # Two frames of the same message have different masks (most likely).
            dill.msend(c, bytes(100))
            dill.msend(c, bytes(100))
            masks = {recv_exactly(peer, 106)[2:6] for _ in range(2)}
            assert len(masks) == 2
        finally:
            dill.hclose(c)


def test_wire_a_server_answers_the_upgrade_and_sends_plain_frames() -> None:
    with greendill_and_plain_socket() as (h, peer):
        peer.sendall(GOOD_REQUEST + encode_frame(OP_TEXT, b"first", MASK))
        s, resource, host = dill.ws_attach_server(h, dill.WS_TEXT, soon())
        try:
            assert (resource, host) == ("/chat", "server.example.com")
            assert recv_exactly(peer, len(GOOD_RESPONSE)) == GOOD_RESPONSE
            assert dill.mrecv(s, 10, soon()) == b"first"
            dill.msend(s, b"x" * 300)
            assert recv_exactly(peer, 304) == b"\x81\x7e\x01\x2c" + b"x" * 300
        finally:
            dill.hclose(s)


def test_wire_without_bunrecv_the_server_reads_no_byte_past_the_head() -> None:
    with greendill_and_plain_socket() as (h, peer):
        peer.sendall(GOOD_REQUEST + b"\x88\x80" + MASK)
        s, _, _ = dill.ws_attach_server(plain(h), 0, soon())
        try:
            with raises_errno(errno.EPIPE):
                dill.mrecv(s, 10, soon())
            assert dill.ws_status(s) == (0, b"")
        finally:
            dill.hclose(s)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[tuple[int, bytes]], bytes, list[bytes]]:
    """Messages, the wire that carries them (fragmented, pings between), the pings' payloads."""
    messages = draw(
        st.lists(
            st.tuples(st.sampled_from([OP_TEXT, OP_BINARY]), st.binary(max_size=400)), max_size=6
        )
    )
    wire = b""
    pings = []
    for opcode, payload in messages:
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        for i, piece in enumerate(pieces):
            if draw(st.booleans()):
                ping = draw(st.binary(max_size=125))
                pings.append(ping)
                wire += encode_frame(OP_PING, ping, MASK)
            if draw(st.booleans()):
                wire += encode_frame(OP_PONG, b"unasked", MASK)
            wire += encode_frame(
                opcode if i == 0 else OP_CONT, piece, os.urandom(4), i == len(pieces) - 1
            )
    return messages, wire, pings


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(conversations(), st.booleans(), st.data())
def test_messages_from_any_fragments_with_pings_between(
    conversation: tuple[list[tuple[int, bytes]], bytes, list[bytes]],
    readahead: bool,
    data: st.DataObject,
) -> None:
    messages, wire, pings = conversation
    wire += encode_frame(OP_CLOSE, close_payload(1000, b"done"), MASK) + b"raw bytes after"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    scatter = data.draw(st.booleans())
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h if readahead else plain(h), NOHTTP, soon())
        for start, end in zip([0, *cuts], [*cuts, len(wire)]):
            peer.sendall(wire[start:end])
        got = []
        for _ in messages:
            if scatter:
                a, b = bytearray(100), bytearray(400)
                size, flags = dill.ws_recvl(s, [a, b], soon())
                got.append((flags, bytes((a + b)[:size])))
            else:
                payload, flags = dill.ws_recv(s, 400, soon())
                got.append((flags, payload))
        with raises_errno(errno.EPIPE):
            dill.ws_recv(s, 400, soon())
        assert dill.ws_status(s) == (1000, b"done")
        u = dill.ws_detach(s, 1000, None, soon())
        assert dill.brecv(u, 15, soon()) == b"raw bytes after"
        dill.hclose(u)
        answers = [read_frame(peer, False) for _ in pings]
        assert answers == [(True, OP_PONG, ping) for ping in pings[: len(answers)]]
        assert read_frame(peer, False) == (True, OP_CLOSE, close_payload(1000, b""))
    assert got == [(dill.WS_TEXT if op == OP_TEXT else dill.WS_BINARY, p) for op, p in messages]


def test_a_ping_that_comes_while_another_coroutine_sends_is_answered_after_it() -> None:
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h, NOHTTP, soon())
        big = randbytes(4 << 20, 5)
        sender, out = spawn(dill.msend, s, big, soon())  # blocks: nobody reads yet
        peer.sendall(encode_frame(OP_PING, b"are you there", MASK))
        peer.sendall(encode_frame(OP_BINARY, b"then this", MASK))
        assert dill.mrecv(s, 100, soon()) == b"then this"
        # The peer reads in a thread of its own: its blocking reads must not
        # stop greendill's sender.
        frames = in_thread(lambda: [read_frame(peer, False) for _ in range(2)])
        finish(sender)
        assert out == [None]
        assert frames() == [(True, OP_BINARY, big), (True, OP_PONG, b"are you there")]
        dill.hclose(s)


def test_no_pong_after_this_side_sent_its_close_frame() -> None:
    with greendill_and_plain_socket() as (h, peer):
        c = dill.ws_attach_client(h, NOHTTP, None, None)
        dill.ws_done(c, 1000, b"", soon())
        peer.sendall(encode_frame(OP_PING, b"p", None) + encode_frame(OP_CLOSE, b"", None))
        u = dill.ws_detach(c, 0, None, soon())
        assert read_frame(peer, True) == (True, OP_CLOSE, close_payload(1000, b""))
        peer.shutdown(socket.SHUT_WR)
        dill.hclose(u)
        assert peer.recv(10) == b""


# The close handshake --------------------------------------------------------------


def test_close_handshake_done_then_detach_both_sides(kind: str) -> None:
    c, s = ws_pair(kind)
    dill.msend(c, b"before close")
    dill.ws_done(c, 4000, b"client leaves", soon())
    with raises_errno(errno.EPIPE):
        dill.msend(c, b"after done")
    with raises_errno(errno.EPIPE):
        dill.ws_done(c, 1000, b"", soon())
    with raises_errno(errno.EAGAIN):
        dill.ws_status(s)
    assert dill.mrecv(s, 100, soon()) == b"before close"
    with raises_errno(errno.EPIPE):
        dill.mrecv(s, 100, soon())
    with raises_errno(errno.EPIPE):  # sticky
        dill.ws_recvl(s, [bytearray(5)], soon())
    assert dill.ws_status(s) == (4000, b"client leaves")
    dill.msend(s, b"the server still sends")  # until its own close
    assert dill.mrecv(c, 100, soon()) == b"the server still sends"
    u, out = spawn(dill.ws_detach, c, 0, None, soon())
    v = dill.ws_detach(s, 1000, b"see you", soon())
    finish(u)
    cu = out[0]
    assert isinstance(cu, int)
    # The raw streams below work and are empty.
    dill.bsend(cu, b"raw")
    assert dill.brecv(v, 3, soon()) == b"raw"
    close_all(cu, v)


def test_detach_drops_messages_until_the_close_frame_and_gives_back_what_follows(
    kind: str,
) -> None:
    a, b = byte_stream_pair(kind)
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    s, _, _ = dill.ws_attach_server(b, NOHTTP)

    def server() -> int:
        for i in range(5):
            dill.msend(s, randbytes(i * 30_000, i))
        dill.ws_done(s, 1001, b"bye", soon())
        u = dill.ws_detach(s, 0, None, soon())
        dill.bsend(u, b"after the websocket")
        return u

    # The client drops the five messages, then the server detaches once the
    # client's close frame is in, and its raw bytes reach the client's stream.
    su, out = spawn(server)
    cu = dill.ws_detach(c, 1000, b"", soon())
    assert dill.brecv(cu, 19, soon()) == b"after the websocket"
    finish(su)
    close_all(cu, out[0])


def test_status_zero_sends_a_close_frame_without_status() -> None:
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h, NOHTTP)
        dill.ws_done(s, 0, None, soon())
        assert recv_exactly(peer, 2) == b"\x88\x00"
        dill.hclose(s)


def test_hclose_closes_the_whole_stack() -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    with raises_errno(errno.EBADF):
        dill.bsend(a, b"x")  # attach owns a
    dill.hclose(c)
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, soon())
    dill.hclose(b)


def test_storage_is_reusable_after_close_and_detach() -> None:
    mem, mem2 = dill.ws_storage(), dill.ws_storage()
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client_mem(a, NOHTTP, None, None, mem)
    s, _, _ = dill.ws_attach_server_mem(b, NOHTTP, mem2)
    dill.ws_done(s, 1000, None, soon())
    u = dill.ws_detach(c, 1000, None, soon())
    c = dill.ws_attach_client_mem(u, NOHTTP, None, None, mem)  # again, on the same stream
    dill.hclose(s)
    dill.hclose(c)
    x, y = dill.ipc_pair()
    s, _, _ = dill.ws_attach_server_mem(x, NOHTTP, mem2)
    close_all(s, y)


# Errors, in the reference's order: ws_attach_client ---------------------------------


@contextmanager
def tcp_to_plain() -> Iterator[tuple[int, socket.socket]]:
    """A greendill TCP connection to a standard-library socket (the test closes the handle)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        h = dill.tcp_connect(dill.ipaddr_local("127.0.0.1", listener.getsockname()[1]), soon())
        peer, _ = listener.accept()
    finally:
        listener.close()
    try:
        yield h, peer
    finally:
        peer.close()


def assert_closed(h: int) -> None:
    with raises_errno(errno.EBADF):
        dill.hclose(h)


@pytest.fixture(params=["plain", "mem"])
def variant(request: pytest.FixtureRequest) -> str:
    """Which attach calls an errors test makes: ws_attach_client/server, or their _mem variants."""
    return str(request.param)


@pytest.fixture
def attach_client(variant: str) -> Iterator[Callable[..., int]]:
    """ws_attach_client, or ws_attach_client_mem taking the same arguments.

    The _mem variant uses one storage for the whole test, and no socket the
    test attaches stays open: each failed attach must leave the storage free
    (not EBUSY) for the next, and for a last attach after the test.
    """
    if variant == "plain":
        yield dill.ws_attach_client
        return
    mem = dill.ws_storage()
    yield lambda s, flags, resource, host, *args, **kwargs: dill.ws_attach_client_mem(
        s, flags, resource, host, mem, *args, **kwargs
    )
    with raises_errno(errno.EBADF):
        dill.ws_attach_client_mem(12345, NOHTTP, None, None, mem)


@pytest.fixture
def attach_server(variant: str) -> Iterator[Callable[..., Any]]:
    """ws_attach_server, or ws_attach_server_mem taking the same arguments (as attach_client)."""
    if variant == "plain":
        yield dill.ws_attach_server
        return
    mem = dill.ws_storage()
    yield lambda s, flags, *args, **kwargs: dill.ws_attach_server_mem(
        s, flags, mem, *args, **kwargs
    )
    with raises_errno(errno.EBADF):
        dill.ws_attach_server_mem(12345, NOHTTP, mem)


def client_attach_against(
    attach: Callable[..., int], answer: Optional[bytes], deadline: int
) -> Any:
    """attach (a client) against a plain server that answers its request with answer(key)."""
    with greendill_and_plain_socket() as (h, peer):
        co, out = spawn(attach, h, 0, "/", "host", deadline)
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += peer.recv(1)
        key = parse_request(request)[2]
        if answer is not None:
            peer.sendall(answer.replace(b"{accept}", response_key(key).encode()))
        finish(co)
        assert_closed(h)
    return out[0]


def test_attach_client_ebadf_for_a_number_that_is_no_handle(
    attach_client: Callable[..., int],
) -> None:
    with raises_errno(errno.EBADF):
        attach_client(12345, 0, "/", "host")


def test_attach_client_ecanceled_in_a_canceled_coroutine_closes_the_socket(
    attach_client: Callable[..., int],
) -> None:
    a, b = dill.ipc_pair()
    result = in_canceled_coroutine(lambda: attach_client(a, NOHTTP, None, None))
    assert isinstance(result, dill.Canceled)
    assert_closed(a)
    dill.hclose(b)


def test_attach_client_ecanceled_while_waiting_for_the_answer(
    attach_client: Callable[..., int],
) -> None:
    with greendill_and_plain_socket() as (h, peer):
        co, out = spawn(attach_client, h, 0, "/", "host")
        dill.yield_()
        dill.hclose(co)
        assert isinstance(out[0], dill.Canceled)
        assert_closed(h)
        assert peer.recv(1000).startswith(b"GET / HTTP/1.1\r\n")


def test_attach_client_econnreset_when_the_server_resets(
    attach_client: Callable[..., int],
) -> None:
    with tcp_to_plain() as (h, peer):
        co, out = spawn(attach_client, h, 0, "/", "host", soon())
        assert peer.recv(1000).endswith(b"\r\n\r\n")
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        finish(co)
        assert isinstance(out[0], OSError)
        assert out[0].errno == errno.ECONNRESET
        assert_closed(h)


@pytest.mark.parametrize(
    ("flags", "resource", "host", "limits"),
    [
        (4, "/", "h", {}),
        (-1, "/", "h", {}),
        (dill.WS_TEXT | 8, "/", "h", {}),
        (0, None, "h", {}),
        (0, "/", None, {}),
        (0, "", "h", {}),
        (0, "/a b", "h", {}),
        (0, "/", "h\n", {}),
        (NOHTTP, None, None, {"max_frame": -1}),
        (NOHTTP, None, None, {"max_message": -5}),
    ],
)
def test_attach_client_einval_closes_the_socket(
    attach_client: Callable[..., int],
    flags: int,
    resource: Optional[str],
    host: Optional[str],
    limits: dict[str, int],
) -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        attach_client(a, flags, resource, host, soon(), **limits)
    assert_closed(a)
    dill.hclose(b)


def test_attach_client_typeerror_closes_the_socket() -> None:
    for args in ((1.0, "/", "h"), (0, b"/", "h"), (0, "/", b"h")):
        a, b = dill.ipc_pair()
        with pytest.raises(TypeError):
            dill.ws_attach_client(a, *args)  # type: ignore[arg-type]
        assert_closed(a)
        dill.hclose(b)
    a, b = dill.ipc_pair()
    with pytest.raises(TypeError):
        dill.ws_attach_client(a, NOHTTP, None, None, max_frame=1.5)  # type: ignore[arg-type]
    assert_closed(a)
    dill.hclose(b)


def test_attach_client_enotsup_when_underlying_is_no_byte_stream(
    attach_client: Callable[..., int], attach_server: Callable[..., Any]
) -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.ENOTSUP):
        attach_client(p, 0, "/", "host")
    assert_closed(p)
    ch = dill.chmake()
    with raises_errno(errno.ENOTSUP):
        attach_server(ch[0], NOHTTP)
    assert_closed(ch[0])
    close_all(ch[1], b)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",  # another key's
        b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: {accept}\r\n\r\n",
        b"not http at all\r\n\r\n",
    ],
)
def test_attach_client_eproto_when_the_server_does_not_accept(
    attach_client: Callable[..., int], answer: bytes
) -> None:
    result = client_attach_against(attach_client, answer, soon())
    assert isinstance(result, OSError)
    assert result.errno == errno.EPROTO


def test_attach_client_accepts_a_good_answer_from_a_plain_server() -> None:
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nCONNECTION: upgrade\r\n"
        b"Sec-WebSocket-Accept: {accept}\r\nServer: plain\r\n\r\n"
    )
    with greendill_and_plain_socket() as (h, peer):
        co, out = spawn(dill.ws_attach_client, h, 0, "/", "host", soon())
        request = recv_exactly(peer, len(client_request("/", "host", KEY)))
        key = parse_request(request)[2]
        peer.sendall(answer.replace(b"{accept}", response_key(key).encode()))
        finish(co)
        dill.hclose(out[0])


def test_attach_client_etimedout_when_the_server_does_not_answer(
    attach_client: Callable[..., int],
) -> None:
    result = client_attach_against(attach_client, None, dill.now() + 50)
    assert isinstance(result, OSError)
    assert result.errno == errno.ETIMEDOUT


def test_attach_client_emsgsize_for_an_endless_head_and_epipe_for_a_short_one(
    attach_client: Callable[..., int],
) -> None:
    endless = b"HTTP/1.1 101 OK\r\nX: " + b"y" * MAX_HEAD
    result = client_attach_against(attach_client, endless, soon())
    assert isinstance(result, OSError)
    assert result.errno == errno.EMSGSIZE
    with greendill_and_plain_socket() as (h, peer):
        co, out = spawn(attach_client, h, 0, "/", "host", soon())
        peer.sendall(b"HTTP/1.1 101 OK\r\n")
        peer.shutdown(socket.SHUT_WR)
        finish(co)
        assert isinstance(out[0], OSError)
        assert out[0].errno == errno.EPIPE


def test_attach_client_mem_storage_rules() -> None:
    mem = dill.ws_storage()
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client_mem(a, NOHTTP, None, None, mem)
    x, y = dill.ipc_pair()
    with raises_errno(errno.EBUSY):
        dill.ws_attach_client_mem(x, NOHTTP, None, None, mem)
    assert_closed(x)
    with raises_errno(errno.EBUSY):
        dill.ws_attach_server_mem(y, NOHTTP, mem)
    assert_closed(y)
    x, y = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        dill.ws_attach_client_mem(x, NOHTTP, None, None, None)  # type: ignore[arg-type]
    assert_closed(x)
    with pytest.raises(TypeError):
        dill.ws_attach_server_mem(y, NOHTTP, dill.prefix_storage())  # type: ignore[arg-type]
    assert_closed(y)
    close_all(c, b)


# ws_attach_server -------------------------------------------------------------------


def server_attach_with(
    attach: Callable[..., Any], request: bytes, deadline: int, end: bool = True
) -> tuple[Any, bytes]:
    """attach (a server) on what a plain client sends; its result and the client's answer."""
    with greendill_and_plain_socket() as (h, peer):
        peer.sendall(request)
        if end:
            peer.shutdown(socket.SHUT_WR)
        try:
            result: Any = attach(h, 0, deadline)
        except OSError as exc:
            result = exc
            assert_closed(h)
        else:
            dill.hclose(result[0])
        peer.settimeout(5)
        answer = b""
        with suppress(OSError):
            while chunk := peer.recv(4096):
                answer += chunk
    return result, answer


def test_attach_server_ebadf_for_a_number_that_is_no_handle(
    attach_server: Callable[..., Any],
) -> None:
    with raises_errno(errno.EBADF):
        attach_server(12345, 0)


def test_attach_server_ecanceled_in_a_canceled_coroutine_and_while_waiting(
    attach_server: Callable[..., Any],
) -> None:
    a, b = dill.ipc_pair()
    assert isinstance(in_canceled_coroutine(lambda: attach_server(a, 0)), dill.Canceled)
    assert_closed(a)
    a, c = dill.ipc_pair()
    co, out = spawn(attach_server, a, 0)
    dill.bsend(c, GOOD_REQUEST[:30])
    dill.yield_()
    dill.hclose(co)
    assert isinstance(out[0], dill.Canceled)
    assert_closed(a)
    close_all(b, c)


def test_attach_server_econnreset_when_the_client_resets(
    attach_server: Callable[..., Any],
) -> None:
    with tcp_to_plain() as (h, peer):
        peer.sendall(GOOD_REQUEST[:20])
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        peer.close()
        with raises_errno(errno.ECONNRESET):
            attach_server(h, 0, soon())
        assert_closed(h)


@pytest.mark.parametrize("flags", [4, -1, 255])
def test_attach_server_einval_closes_the_socket(
    attach_server: Callable[..., Any], flags: int
) -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        attach_server(a, flags)
    assert_closed(a)
    dill.hclose(b)


def test_attach_server_emsgsize_for_a_long_head_or_too_many_fields(
    attach_server: Callable[..., Any],
) -> None:
    long = b"GET /" + b"a" * MAX_HEAD + b" HTTP/1.1\r\n\r\n"
    many = GOOD_REQUEST.replace(b"\r\n\r\n", b"\r\n" + b"X-A: b\r\n" * 100 + b"\r\n")
    for request in (long, many):
        result, _ = server_attach_with(attach_server, request, soon(), end=False)
        assert isinstance(result, OSError)
        assert result.errno == errno.EMSGSIZE


@pytest.mark.parametrize(
    ("old", "new"),
    [(b"GET", b"PUT"), (b"Version: 13", b"Version: 12"), (b"Upgrade: websocket\r\n", b"")],
)
def test_attach_server_eproto_answers_400_and_closes(
    attach_server: Callable[..., Any], old: bytes, new: bytes
) -> None:
    result, answer = server_attach_with(attach_server, GOOD_REQUEST.replace(old, new), soon())
    assert isinstance(result, OSError)
    assert result.errno == errno.EPROTO
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b"\r\n\r\n")


def test_attach_server_etimedout_and_epipe(attach_server: Callable[..., Any]) -> None:
    result, _ = server_attach_with(attach_server, GOOD_REQUEST[:-2], dill.now() + 50, end=False)
    assert isinstance(result, OSError)
    assert result.errno == errno.ETIMEDOUT
    result, _ = server_attach_with(attach_server, GOOD_REQUEST[:-2], soon())
    assert isinstance(result, OSError)
    assert result.errno == errno.EPIPE


def test_attach_server_answers_101_with_the_right_key() -> None:
    result, answer = server_attach_with(dill.ws_attach_server, GOOD_REQUEST, soon())
    assert result[1:] == ("/chat", "server.example.com")
    assert answer == GOOD_RESPONSE


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([b"", b"\r\n\r\n", GOOD_REQUEST]))
def test_fuzz_the_server_upgrade_takes_any_bytes(data: bytes, tail: bytes) -> None:
    result, _ = server_attach_with(dill.ws_attach_server, data + tail, soon())
    if isinstance(result, OSError):
        assert result.errno in (errno.EPROTO, errno.EMSGSIZE, errno.EPIPE)


# ws_send, ws_sendl, msend -------------------------------------------------------------


@contextmanager
def clogged_server() -> Iterator[tuple[int, socket.socket]]:
    """A greendill WebSocket server whose peer does not read (the test closes the handle)."""
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h, NOHTTP)
        yield s, peer


BIG = bytes(8 << 20)

# ws_send, and ws_sendl of the same bytes in two buffers: the same rules.
send_variants = pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda s, data, *deadline: dill.ws_send(s, 0, data, *deadline), id="ws_send"),
        pytest.param(
            lambda s, data, *deadline: dill.ws_sendl(s, 0, [data[:1], data[1:]], *deadline),
            id="ws_sendl",
        ),
    ],
)


def test_send_ebadf_enotsup_einval() -> None:
    with raises_errno(errno.EBADF):
        dill.ws_send(12345, 0, b"x")
    with raises_errno(errno.EBADF):
        dill.ws_sendl(12345, 0, [b"x"])
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ws_send(a, 0, b"x")
    with raises_errno(errno.ENOTSUP):
        dill.ws_sendl(a, 0, [b"x"])
    s, _, _ = dill.ws_attach_server(b, NOHTTP)
    for flags in (NOHTTP, 4, -1):
        with raises_errno(errno.EINVAL):
            dill.ws_send(s, flags, b"x")
    with raises_errno(errno.EINVAL):
        dill.ws_sendl(s, 0, [])
    with raises_errno(errno.EINVAL):
        dill.msendl(s, [])
    with raises_errno(errno.ENOTSUP):
        dill.bsend(s, b"a WebSocket is no byte stream")
    with pytest.raises(TypeError):
        dill.ws_send(s, 0, "str is no bytes-like object")
    dill.ws_send(s, 0, b"nothing broke")
    close_all(s, a)


@send_variants
def test_send_ebusy_ecanceled_then_econnreset(send: Callable[..., None]) -> None:
    with clogged_server() as (s, _):
        h, out = spawn(send, s, BIG)
        dill.yield_()
        with raises_errno(errno.EBUSY):
            send(s, b"second sender")
        with raises_errno(errno.EBUSY):
            dill.ws_done(s, 1000, None)
        with raises_errno(errno.EBUSY):
            dill.ws_detach(s, 1000, None)
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.ECONNRESET):
            send(s, b"after a failed send")
        with raises_errno(errno.ECONNRESET):
            dill.msend(s, b"after a failed send")
        with raises_errno(errno.ECONNRESET):
            dill.ws_done(s, 1000, None)
        with raises_errno(errno.ECONNRESET):
            dill.ws_detach(s, 1000, None)
        assert_closed(s)


@send_variants
def test_send_epipe_after_done_and_etimedout_when_clogged(send: Callable[..., None]) -> None:
    with clogged_server() as (s, _):
        dill.ws_done(s, 1000, None)
        with raises_errno(errno.EPIPE):
            send(s, b"xy")
        with raises_errno(errno.EPIPE):
            dill.msendl(s, [b"x"])
        dill.hclose(s)
    with clogged_server() as (s, _):
        with raises_errno(errno.ETIMEDOUT):
            send(s, BIG, dill.now() + 20)
        with raises_errno(errno.ECONNRESET):
            send(s, b"xy")
        dill.hclose(s)


@send_variants
def test_send_econnreset_when_the_peer_is_gone(send: Callable[..., None]) -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET):
        send(c, b"to nobody")
    with raises_errno(errno.ECONNRESET):
        dill.msend(c, b"again")
    dill.hclose(c)


# ws_recv, ws_recvl, mrecv -------------------------------------------------------------


def ws_recvl_bytes(s: int, maxlen: int, deadline: int = -1) -> bytes:
    """ws_recvl into one buffer of maxlen bytes; the message's bytes."""
    buffer = bytearray(maxlen)
    size, _ = dill.ws_recvl(s, [buffer], deadline)
    return bytes(buffer[:size])


# The three ways to receive a message, each as (s, maxlen, deadline) -> bytes.
recv_variants = pytest.mark.parametrize(
    "receive",
    [
        pytest.param(
            lambda s, maxlen, *deadline: dill.ws_recv(s, maxlen, *deadline)[0], id="ws_recv"
        ),
        pytest.param(ws_recvl_bytes, id="ws_recvl"),
        pytest.param(dill.mrecv, id="mrecv"),
    ],
)


def test_recv_ebadf_enotsup_einval() -> None:
    with raises_errno(errno.EBADF):
        dill.ws_recv(12345, 10)
    with raises_errno(errno.EBADF):
        dill.ws_recvl(12345, [bytearray(10)])
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ws_recv(a, 10)
    with raises_errno(errno.ENOTSUP):
        dill.ws_recvl(a, [bytearray(1)])
    s, _, _ = dill.ws_attach_server(b, NOHTTP)
    with raises_errno(errno.EINVAL):
        dill.ws_recv(s, -1)
    with raises_errno(errno.EINVAL):
        dill.ws_recvl(s, None)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ws_recvl(s, [b"read-only"])
    with raises_errno(errno.EINVAL):
        dill.mrecvl(s, [bytearray(2), -1])
    with raises_errno(errno.EINVAL):
        dill.mrecv(s, -1)
    close_all(s, a)


@recv_variants
def test_recv_ebusy_ecanceled_then_econnreset(kind: str, receive: Callable[..., bytes]) -> None:
    c, s = ws_pair(kind)
    try:
        h, out = spawn(receive, s, 10)
        dill.yield_()
        with raises_errno(errno.EBUSY):
            receive(s, 10, soon())
        with raises_errno(errno.EBUSY):
            dill.mrecv(s, 10, soon())
        with raises_errno(errno.EBUSY):
            dill.ws_detach(s, 1000, None, soon())
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.ECONNRESET):
            receive(s, 10, 0)
        with raises_errno(errno.ECONNRESET):
            dill.ws_recv(s, 10, 0)
        dill.msend(s, b"sending still works")
        assert dill.mrecv(c, 100, soon()) == b"sending still works"
    finally:
        close_all(c, s)


@recv_variants
def test_recv_etimedout_latches_receiving_not_sending(
    kind: str, receive: Callable[..., bytes]
) -> None:
    c, s = ws_pair(kind)
    try:
        with raises_errno(errno.ETIMEDOUT):
            receive(c, 10, dill.now() + 20)
        dill.msend(s, b"late")
        with raises_errno(errno.ECONNRESET):
            receive(c, 10, soon())
        dill.msend(c, b"still sends")
        assert dill.mrecv(s, 100, soon()) == b"still sends"
    finally:
        close_all(c, s)


def test_deadline_zero_succeeds_when_the_message_is_there(kind: str) -> None:
    c, s = ws_pair(kind)
    try:
        dill.msend(c, b"ready")
        dill.msend(c, bytes(1000))
        dill.yield_()
        assert dill.mrecv(s, 10, 0) == b"ready"
        assert dill.ws_recv(s, 1000, 0) == (bytes(1000), 0)
    finally:
        close_all(c, s)


@pytest.mark.parametrize(
    ("limits", "maxlen", "size"),
    [
        ({}, 9, 10),  # the caller's room, fast path
        ({}, 199, 200),  # the caller's room, 16-bit length
        ({"max_frame": 99}, 1000, 100),
        ({"max_message": 99}, 1000, 100),
        ({"max_message": 150_000}, 1 << 20, 150_001),
    ],
)
@recv_variants
def test_recv_emsgsize_latches_the_receiving_side(
    receive: Callable[..., bytes], limits: dict[str, int], maxlen: int, size: int
) -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    s, _, _ = dill.ws_attach_server(b, NOHTTP, **limits)
    sender, _ = spawn(dill.msend, c, bytes(size), soon())
    with raises_errno(errno.EMSGSIZE):
        receive(s, maxlen, soon())
    with raises_errno(errno.ECONNRESET):
        receive(s, maxlen, soon())
    finish(sender)
    dill.msend(s, b"sending still works")
    assert dill.mrecv(c, 100, soon()) == b"sending still works"
    close_all(c, s)


def test_recv_emsgsize_for_a_fragmented_message_over_the_limit() -> None:
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h, NOHTTP, max_message=100, max_frame=60)
        peer.sendall(
            encode_frame(OP_BINARY, bytes(60), MASK, False)
            + encode_frame(OP_CONT, bytes(40), MASK, True)
            + encode_frame(OP_BINARY, bytes(60), MASK, False)
            + encode_frame(OP_CONT, bytes(41), MASK, True)
        )
        assert dill.mrecv(s, 1000, soon()) == bytes(100)
        with raises_errno(errno.EMSGSIZE):
            dill.mrecvl(s, [bytearray(1000)], soon())
        dill.hclose(s)


def test_limits_none_and_drops_take_any_size() -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None, max_frame=None, max_message=None)
    s, _, _ = dill.ws_attach_server(b, NOHTTP, max_frame=10, max_message=10)
    dill.msend(s, bytes(100_000))
    assert dill.mrecv(c, 1 << 20, soon()) == bytes(100_000)
    sender, _ = spawn(dill.msend, c, bytes(100_000), soon())
    assert dill.mrecvl(s, [], soon()) == 100_000  # dropping keeps nothing: no limit
    finish(sender)
    close_all(c, s)


def test_recv_epipe_at_the_end_of_the_stream_then_econnreset() -> None:
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h, NOHTTP)
        peer.sendall(
            encode_frame(OP_BINARY, b"last", MASK) + encode_frame(OP_BINARY, b"cut", MASK)[:5]
        )
        peer.shutdown(socket.SHUT_WR)
        assert dill.mrecv(s, 10, soon()) == b"last"
        with raises_errno(errno.EPIPE):
            dill.mrecv(s, 10, soon())
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(s, 10, soon())
        with raises_errno(errno.EAGAIN):
            dill.ws_status(s)  # no close frame came
        dill.hclose(s)


@pytest.mark.parametrize(
    "wire",
    [
        encode_frame(OP_BINARY, b"unmasked", None),  # from a client
        bytes((0xC2, 0x80)) + MASK,  # RSV1
        encode_frame(3, b"", MASK),  # a reserved opcode
        encode_frame(OP_CONT, b"no start", MASK),
        encode_frame(OP_BINARY, b"a", MASK, False) + encode_frame(OP_TEXT, b"b", MASK),
        encode_frame(OP_CLOSE, b"\x03", MASK),
        encode_frame(OP_CLOSE, b"\x03\xe7", MASK),  # status 999
        encode_frame(OP_PING, b"x", MASK, False),
        bytes((0x89, 0xFE, 0, 126)) + MASK + bytes(126),
    ],
)
def test_recv_eproto_for_a_peer_that_breaks_the_protocol(wire: bytes) -> None:
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h, NOHTTP)
        peer.sendall(wire)
        with raises_errno(errno.EPROTO):
            dill.ws_recv(s, 100, soon())
        with raises_errno(errno.ECONNRESET):
            dill.ws_recv(s, 100, soon())
        dill.hclose(s)


def test_recv_eproto_for_a_masked_frame_from_a_server() -> None:
    with greendill_and_plain_socket() as (h, peer):
        c = dill.ws_attach_client(h, NOHTTP, None, None)
        peer.sendall(encode_frame(OP_BINARY, b"masked", MASK))
        with raises_errno(errno.EPROTO):
            dill.mrecv(c, 100, soon())
        dill.hclose(c)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans(), st.booleans())
def test_fuzz_the_socket_takes_any_bytes(data: bytes, server: bool, scatter: bool) -> None:
    # Whatever the peer sends before it ends the stream, receiving ends with
    # a documented error (never a hang: ETIMEDOUT is not among them).
    with greendill_and_plain_socket() as (h, peer):
        if server:
            s, _, _ = dill.ws_attach_server(h, NOHTTP, max_frame=200, max_message=250)
        else:
            s = dill.ws_attach_client(h, NOHTTP, None, None, max_frame=200, max_message=250)
        peer.sendall(data)
        peer.shutdown(socket.SHUT_WR)
        with pytest.raises(OSError) as info:
            for _ in range(len(data) + 1):
                if scatter:
                    dill.ws_recvl(s, [bytearray(100), 50, bytearray(100)], soon())
                else:
                    dill.ws_recv(s, 250, soon())
        assert info.value.errno in (errno.EPROTO, errno.EPIPE, errno.EMSGSIZE)
        dill.hclose(s)


# ws_done --------------------------------------------------------------------------


def test_done_ebadf_enotsup_einval() -> None:
    with raises_errno(errno.EBADF):
        dill.ws_done(12345, 1000, None)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ws_done(a, 1000, None)
    s, _, _ = dill.ws_attach_server(b, NOHTTP)
    for status, reason in ((999, None), (5000, None), (1000, bytes(124)), (0, b"reason")):
        with raises_errno(errno.EINVAL):
            dill.ws_done(s, status, reason)
    with pytest.raises(TypeError):
        dill.ws_done(s, 1000.0, None)  # type: ignore[arg-type]
    dill.ws_done(s, 1000, bytes(123))  # the longest, and nothing broke before
    with raises_errno(errno.EPIPE):
        dill.ws_done(s, 1000, None)
    close_all(s, a)


class Cloggable(dill.bsock_vfs):
    """A byte stream over IPC whose sending can be made to block (a full stream, on cue)."""

    def __init__(self, s: int) -> None:
        self.s = s
        self.lower = dill.hquery(s, dill.bsock_type)
        self.clogged = False

    def query(self, type: object) -> Any:
        return self if type is dill.bsock_type else None

    def close(self) -> None:
        dill.hclose(self.s)

    def bsendl(self, buffers: Any, deadline: int) -> None:
        if self.clogged:
            dill.msleep(deadline)  # Canceled when the coroutine is
            raise OSError(errno.ETIMEDOUT, "bsendl: clogged")
        self.lower.bsendl(buffers, deadline)

    def brecvl(self, buffers: Any, deadline: int) -> None:
        self.lower.brecvl(buffers, deadline)


@contextmanager
def cloggable_client() -> Iterator[tuple[int, Cloggable, int]]:
    """A WebSocket client over a Cloggable stream, and its peer's raw stream (both closed after)."""
    a, b = dill.ipc_pair()
    stream = Cloggable(a)
    c = dill.ws_attach_client(dill.hmake(stream), NOHTTP, None, None)
    try:
        yield c, stream, b
    finally:
        dill.hclose(b)
        with suppress(OSError):
            dill.hclose(c)


def test_done_etimedout_and_ecanceled_when_the_stream_below_blocks() -> None:
    with cloggable_client() as (c, stream, _):
        stream.clogged = True
        with raises_errno(errno.ETIMEDOUT):
            dill.ws_done(c, 1000, b"", dill.now() + 20)
        with raises_errno(errno.ECONNRESET):
            dill.ws_done(c, 1000, b"", dill.now() + 20)
    with cloggable_client() as (c, stream, _):
        stream.clogged = True
        co, out = spawn(dill.ws_done, c, 1000, b"")
        dill.yield_()
        dill.hclose(co)
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.ECONNRESET):
            dill.ws_send(c, 0, b"x")


def test_a_pong_that_cannot_be_sent_breaks_sending_too() -> None:
    with cloggable_client() as (c, stream, b):
        stream.clogged = True
        dill.bsend(b, encode_frame(OP_PING, b"?", None))
        with raises_errno(errno.ETIMEDOUT):
            dill.mrecv(c, 10, dill.now() + 20)
        with raises_errno(errno.ECONNRESET):
            dill.msend(c, b"x")


# ws_detach --------------------------------------------------------------------------


def test_detach_ebadf_enotsup() -> None:
    with raises_errno(errno.EBADF):
        dill.ws_detach(12345, 1000, None)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ws_detach(a, 1000, None)
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.ENOTSUP):
        dill.ws_detach(p, 1000, None)
    close_all(p, b)


def test_detach_etimedout_and_ecanceled_close_the_stack() -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    with raises_errno(errno.ETIMEDOUT):
        dill.ws_detach(c, 1000, None, dill.now() + 20)
    assert_closed(c)
    dill.hclose(b)
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    co, out = spawn(dill.ws_detach, c, 1000, None)
    dill.yield_()
    dill.hclose(co)
    assert isinstance(out[0], dill.Canceled)
    assert_closed(c)
    dill.hclose(b)


def test_detach_econnreset_after_a_failed_receive_closes_the_stack() -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    with raises_errno(errno.ETIMEDOUT):
        dill.mrecv(c, 10, 0)
    with raises_errno(errno.ECONNRESET):
        dill.ws_detach(c, 1000, None)
    assert_closed(c)
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, soon())
    dill.hclose(b)


def test_detach_einval_for_a_bad_status_closes_the_stack() -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    with raises_errno(errno.EINVAL):
        dill.ws_detach(c, 42, None)
    assert_closed(c)
    dill.hclose(b)


def test_detach_returns_at_the_end_of_the_stream_below_as_libdill() -> None:
    with greendill_and_plain_socket() as (h, peer):
        s, _, _ = dill.ws_attach_server(h, NOHTTP)
        peer.shutdown(socket.SHUT_WR)
        u = dill.ws_detach(s, 1000, None, soon())
        assert read_frame(peer, False) == (True, OP_CLOSE, close_payload(1000, b""))
        dill.hclose(u)


def test_the_detached_handle_is_ebadf() -> None:
    a, b = dill.ipc_pair()
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    s, _, _ = dill.ws_attach_server(b, NOHTTP)
    dill.ws_done(s, 1000, None)
    u = dill.ws_detach(c, 1000, None, soon())
    with raises_errno(errno.EBADF):
        dill.msend(c, b"x")
    with raises_errno(errno.EBADF):
        dill.ws_status(c)
    close_all(u, s)


# ws_status --------------------------------------------------------------------------


def test_status_eagain_ebadf_einval_emsgsize_enotsup() -> None:
    with raises_errno(errno.EBADF):
        dill.ws_status(12345)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ws_status(a)
    c = dill.ws_attach_client(a, NOHTTP, None, None)
    s, _, _ = dill.ws_attach_server(b, NOHTTP)
    with raises_errno(errno.EAGAIN):
        dill.ws_status(s)
    dill.ws_done(c, 1001, b"going away", soon())
    with raises_errno(errno.EPIPE):
        dill.mrecv(s, 10, soon())
    with raises_errno(errno.EINVAL):
        dill.ws_status(s, -1)
    with raises_errno(errno.EMSGSIZE):
        dill.ws_status(s, 9)
    assert dill.ws_status(s, 10) == (1001, b"going away")
    assert dill.ws_status(s) == (1001, b"going away")
    close_all(c, s)


# The websockets package as a real peer -------------------------------------------------


@pytest.fixture
def websockets_package() -> Any:
    """The websockets package (asyncio implementation), the real peer of these tests.

    Missing, it skips the test on a developer's machine and fails it in CI,
    where the test extra installs it.
    """
    try:
        import websockets.asyncio.client  # noqa: PLC0415
        import websockets.asyncio.server  # noqa: PLC0415
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the websockets package is not installed (setup.cfg's test extra)")
        pytest.skip("the websockets package is not installed")
    return websockets


def listen_tcp() -> tuple[int, int]:
    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls = dill.tcp_listen(addr, 1)
    return ls, dill.ipaddr_port(addr)


def serve_one_echo(ls: int, close_first: bool = False) -> tuple[Optional[str], Optional[str]]:
    """Accept one WebSocket and echo it until its close; answer the close with its status."""
    s = dill.tcp_accept(ls, soon())
    h, resource, host = dill.ws_attach_server(s, 0, soon())
    if close_first:
        data, flags = dill.ws_recv(h, 1 << 20, soon())
        dill.ws_send(h, flags, data)
        dill.ws_done(h, 1000, b"server done", soon())
    while True:
        try:
            data, flags = dill.ws_recv(h, 1 << 20, soon())
        except OSError as exc:
            assert exc.errno == errno.EPIPE
            break
        dill.ws_send(h, flags, data)
    status, reason = dill.ws_status(h)
    u = dill.ws_detach(h, status, reason + b" (echoed)" if status else None, soon())
    dill.tcp_close(u, soon())
    return resource, host


def test_websockets_client_against_a_greendill_server(websockets_package: Any) -> None:
    from websockets.asyncio.client import connect  # noqa: PLC0415

    ls, port = listen_tcp()

    async def client() -> list[Any]:
        got: list[Any] = []
        async with connect(f"ws://127.0.0.1:{port}/room?x=1", max_size=None) as ws:
            await ws.send("text é")
            got.append(await ws.recv())
            await ws.send(bytes(300_000))
            got.append(await ws.recv())
            await ws.send(["frag", "ments"])  # one text message in two frames
            got.append(await ws.recv())
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.close(4001, "client bye")
            got.append((ws.close_code, ws.close_reason))
        return got

    wait = in_thread(lambda: asyncio.run(client()))
    try:
        resource, host = serve_one_echo(ls)
    finally:
        dill.hclose(ls)
    assert wait() == ["text é", bytes(300_000), "fragments", (4001, "client bye (echoed)")]
    assert (resource, host) == ("/room?x=1", f"127.0.0.1:{port}")


def test_websockets_client_sees_a_greendill_server_close_first(websockets_package: Any) -> None:
    from websockets.asyncio.client import connect  # noqa: PLC0415
    from websockets.exceptions import ConnectionClosedOK  # noqa: PLC0415

    ls, port = listen_tcp()

    async def client() -> list[Any]:
        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(b"one")
            got: list[Any] = [await ws.recv()]
            try:
                await ws.recv()
            except ConnectionClosedOK:
                got.append((ws.close_code, ws.close_reason))
        return got

    wait = in_thread(lambda: asyncio.run(client()))
    try:
        serve_one_echo(ls, close_first=True)
    finally:
        dill.hclose(ls)
    assert wait() == [b"one", (1000, "server done")]


@contextmanager
def websockets_server(handler: Callable[[Any], Any]) -> Iterator[int]:
    """A websockets asyncio server on 127.0.0.1, in a thread, for one connection; its port."""
    from websockets.asyncio.server import serve  # noqa: PLC0415

    ports: list[int] = []
    started = threading.Event()

    async def main() -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def one(ws: Any) -> None:
            try:
                done.set_result(await handler(ws))
            except BaseException as exc:
                done.set_exception(exc)
                raise

        async with serve(one, "127.0.0.1", 0, max_size=None) as server:
            ports.append(server.sockets[0].getsockname()[1])
            started.set()
            return await asyncio.wait_for(done, SAFETY_MS / 1000)

    wait = in_thread(lambda: asyncio.run(main()))
    started.wait(SAFETY_MS / 1000)
    yield ports[0]
    wait()


def test_greendill_client_against_a_websockets_server(websockets_package: Any) -> None:
    async def handler(ws: Any) -> None:
        assert ws.request.path == "/echo"
        await ws.send("hello from websockets")
        pong = await ws.ping(b"server ping")  # greendill answers inside mrecv
        await asyncio.wait_for(pong, 5)
        await ws.send(["frag", "mented"])
        async for message in ws:
            await ws.send(message)

    with websockets_server(handler) as port:
        s = dill.tcp_connect(dill.ipaddr_local("127.0.0.1", port), soon())
        c = dill.ws_attach_client(s, dill.WS_TEXT, "/echo", f"127.0.0.1:{port}", soon())
        assert dill.mrecv(c, 100, soon()) == b"hello from websockets"
        assert dill.mrecv(c, 100, soon()) == b"fragmented"
        for size in (0, 125, 126, 65536, 1 << 20):
            message = randbytes(size, size)
            dill.ws_send(c, dill.WS_BINARY, message)
            assert dill.ws_recv(c, 1 << 20, soon()) == (message, dill.WS_BINARY)
        dill.msend(c, "text é".encode())
        assert dill.ws_recv(c, 100, soon()) == ("text é".encode(), dill.WS_TEXT)
        u = dill.ws_detach(c, 1000, b"bye", soon())
        with raises_errno(errno.EPIPE):  # the server closes TCP after the handshake
            dill.brecv(u, 1, soon())
        dill.hclose(u)


def test_greendill_client_sees_a_websockets_server_close_first(websockets_package: Any) -> None:
    async def handler(ws: Any) -> Any:
        await ws.send(b"only message")
        await ws.close(4000, "bye")
        return ws.close_code, ws.close_reason

    with websockets_server(handler) as port:
        s = dill.tcp_connect(dill.ipaddr_local("127.0.0.1", port), soon())
        c = dill.ws_attach_client(s, 0, "/", "localhost", soon())
        assert dill.mrecv(c, 100, soon()) == b"only message"
        with raises_errno(errno.EPIPE):
            dill.mrecv(c, 100, soon())
        assert dill.ws_status(c) == (4000, b"bye")
        u = dill.ws_detach(c, 4000, b"ok", soon())
        dill.tcp_close(u, soon())


# The example ------------------------------------------------------------------------


def test_the_echo_example_runs() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "ws_echo.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in ("alice", "bob", "carol"):
        assert f"{name}: 3 text messages and 102400 binary bytes came back" in result.stdout
        assert f"server: the client closed with 1000 '{name} is done'" in result.stdout
        assert f"{name}: the server answered the close with 1000 '{name} is done'" in result.stdout
    assert result.stdout.endswith("all clients done\n")


# The conformance kit. ------------------------------------------------------------


@pytest.mark.parametrize("flags", [0, NOHTTP], ids=["http", "nohttp"])
def test_ws_keeps_the_message_contract(flags: int) -> None:
    # ws_done and ws_detach send a close frame with a status: 1000, no reason.
    check_msock(
        lambda: ws_pair("ipc", flags),
        done=lambda s, deadline: dill.ws_done(s, 1000, b"", deadline),
        detach=lambda s: dill.ws_detach(s, 1000, b"", dill.now() + 5000),
    )
