"""HTTP: the head of a request or response, line by line (reference sections 0, 13 and 19).

The line codec first (round trips, and hypothesis on arbitrary bytes: a
result or EPROTO, nothing else), then the layer fuzzed through a real
socket, then the wire layout against plain sockets, then each errno in the
reference's order, then the stack coming apart (HTTP, then detach, then raw
bytes, over streams that take bytes back and one that cannot), and last the
real peers: curl and the standard library's http.client and urllib as
clients of a greendill server, and http.server as the server of a
greendill client.
"""

from __future__ import annotations

import errno
import http.client
import http.server
import socket
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import (
    SAFETY_MS,
    byte_stream_pair,
    finish,
    greendill_and_plain_socket,
    in_canceled_coroutine,
    raises_errno,
    randbytes,
    soon,
    spawn,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greendill as dill
from greendill._http import (
    encode_field,
    encode_request,
    encode_status,
    parse_field,
    parse_request,
    parse_status,
)

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Characters a line may carry: latin-1 without CR, LF and NUL.
LINE_CHARS = st.characters(max_codepoint=0xFF, blacklist_characters="\r\n\0")


def tokens(min_size: int = 1) -> st.SearchStrategy[str]:
    return st.text(TOKEN_CHARS, min_size=min_size, max_size=20)


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


def read_fields(h: int, deadline: int = -1) -> list[tuple[str, str]]:
    """Every field of the head, until the blank line (EPIPE)."""
    fields = []
    while True:
        try:
            fields.append(dill.http_recvfield(h, deadline))
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            return fields


@contextmanager
def http_and_plain_socket(**limits: int) -> Iterator[tuple[int, socket.socket]]:
    """An HTTP socket over IPC (closed after) and the plain socket at the other end."""
    with greendill_and_plain_socket() as (s, peer):
        h = dill.http_attach(s, **limits)
        try:
            yield h, peer
        finally:
            with suppress(OSError):  # the test may have detached or closed it
                dill.hclose(h)


def recv_all(peer: socket.socket, size: int) -> bytes:
    data = b""
    peer.settimeout(SAFETY_MS / 1000)
    while len(data) < size:
        chunk = peer.recv(size - len(data))
        assert chunk, f"end of stream after {data!r}"
        data += chunk
    return data


# The codec -------------------------------------------------------------------------


@given(tokens(), st.text(LINE_CHARS.filter(lambda c: c not in " \t"), min_size=1, max_size=40))
def test_codec_request_line_round_trips(command: str, resource: str) -> None:
    line = encode_request(command, resource)
    assert line == f"{command} {resource} HTTP/1.1".encode("latin-1")
    assert parse_request(line) == (command, resource)


@given(st.integers(100, 599), st.text(LINE_CHARS, max_size=40))
def test_codec_status_line_round_trips(status: int, reason: str) -> None:
    line = encode_status(status, reason)
    assert line == f"HTTP/1.1 {status} {reason}".encode("latin-1")
    # Spaces between the code and the reason are a separator, as in C.
    assert parse_status(line) == (status, reason.lstrip(" "))


@given(tokens(), st.text(LINE_CHARS, min_size=1, max_size=40).filter(lambda v: v.strip(" \t")))
def test_codec_field_round_trips_with_the_value_trimmed(name: str, value: str) -> None:
    trimmed = value.strip(" \t")
    assert encode_field(name, value) == f"{name}: {trimmed}".encode("latin-1")
    assert parse_field(encode_field(name, value)) == (name, trimmed)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_codec_parsers_on_arbitrary_bytes_return_or_raise_eproto(line: bytes) -> None:
    for parse in (parse_request, parse_status, parse_field):
        try:
            result = parse(line)
        except OSError as exc:
            assert exc.errno == errno.EPROTO, repr(exc)
        else:
            assert all(isinstance(x, (str, int)) for x in result)


def test_codec_tolerates_what_libdill_tolerates() -> None:
    assert parse_request(b"  GET   /x   HTTP/1.0  ") == ("GET", "/x")
    assert parse_status(b"HTTP/1.1   404   Not  Found ") == (404, "Not  Found ")
    assert parse_status(b"HTTP/1.1 200") == (200, "")  # beyond C: no reason phrase
    assert parse_field(b"  Host :  example.org  ") == ("Host", "example.org")
    assert parse_field(b"X-Empty:") == ("X-Empty", "")
    assert parse_field(b"X-Tab:\tv\t") == ("X-Tab", "v")


@pytest.mark.parametrize(
    "line",
    [
        b"GET / HTTP/1.1 extra",
        b"GET /",
        b"GET / FOOBARXX",  # C accepts any 8-character protocol token
        b"GET / HTTP/1.1\0",
        b"GET / HTTP/1\r.1",
        b"GET /a\nb HTTP/1.1",
        b"",
    ],
)
def test_codec_bad_request_lines_are_eproto(line: bytes) -> None:
    with raises_errno(errno.EPROTO):
        parse_request(line)


@pytest.mark.parametrize(
    "line", [b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 2x0 OK", b"HTTX/1.1 200 OK", b""]
)
def test_codec_bad_status_lines_are_eproto(line: bytes) -> None:
    with raises_errno(errno.EPROTO):
        parse_status(line)


@pytest.mark.parametrize("line", [b"no colon", b": no name", b"a b: two words", b"x\0: y"])
def test_codec_bad_field_lines_are_eproto(line: bytes) -> None:
    with raises_errno(errno.EPROTO):
        parse_field(line)


# The layer, fuzzed through a real socket ----------------------------------------------


@given(st.binary(max_size=400), st.integers(1, 64), st.integers(1, 4))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_layer_on_arbitrary_bytes_ends_with_a_documented_errno(
    wire: bytes, max_line: int, max_fields: int
) -> None:
    # The peer sends anything and closes: the server reads a request and
    # fields until a failure. It never hangs and never raises anything else.
    with http_and_plain_socket(max_line=max_line, max_fields=max_fields) as (h, peer):
        peer.sendall(wire)
        peer.shutdown(socket.SHUT_WR)
        expected = {errno.EPROTO, errno.EMSGSIZE, errno.EPIPE, errno.ECONNRESET}
        recv: Callable[[int, int], Any] = dill.http_recvrequest
        for _ in range(len(wire) + 2):
            try:
                result = recv(h, soon())
            except OSError as exc:
                assert exc.errno in expected, repr(exc)
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    return
                recv = dill.http_recvfield
                continue
            assert all(isinstance(x, str) for x in result)
            recv = dill.http_recvfield
        pytest.fail("more results than lines")


def test_libdill_http_test_ported() -> None:
    # libdill's tests/http.c, line for line.
    a, b = dill.ipc_pair()
    p0, p1 = dill.http_attach(a), dill.http_attach(b)
    dill.http_sendrequest(p0, "GET", "/a/b/c")
    assert dill.http_recvrequest(p1) == ("GET", "/a/b/c")
    for name, value in [("foo", "bar"), ("baz", "quux"), ("Date", "Tue, 15 Nov 1994 08:12:31 GMT")]:
        dill.http_sendfield(p0, name, value)
        assert dill.http_recvfield(p1) == (name, value)
    with raises_errno(errno.EINVAL):
        dill.http_sendfield(p0, "invalid field name ", "bar")
    for value in ("  rpad", "lpad  ", "  both pad  "):
        dill.http_sendfield(p0, "valid-field-name", value)
        assert dill.http_recvfield(p1) == ("valid-field-name", value.strip())
    dill.http_done(p0)
    with raises_errno(errno.EPIPE):
        dill.http_recvfield(p1)
    dill.http_sendstatus(p1, 200, "OK")
    dill.http_sendfield(p1, "one", "two")
    dill.http_done(p1)
    assert dill.http_recvstatus(p0) == (200, "OK")
    assert dill.http_recvfield(p0) == ("one", "two")
    with raises_errno(errno.EPIPE):
        dill.http_recvfield(p0)
    close_all(dill.http_detach(p1), dill.http_detach(p0))


# The wire layout (libdill's, byte for byte) -------------------------------------------


def test_wire_layout_of_a_request_head() -> None:
    with http_and_plain_socket() as (h, peer):
        dill.http_sendrequest(h, "GET", "/index.html", soon())
        dill.http_sendfield(h, "Host", "  example.org  ", soon())
        dill.http_sendfield(h, "X-Spaces", "a  b", soon())
        dill.http_done(h, soon())
        wire = b"GET /index.html HTTP/1.1\r\nHost: example.org\r\nX-Spaces: a  b\r\n\r\n"
        assert recv_all(peer, len(wire)) == wire


def test_wire_layout_of_a_response_head() -> None:
    with http_and_plain_socket() as (h, peer):
        dill.http_sendstatus(h, 404, "Not Found", soon())
        dill.http_sendstatus(h, 200, "", soon())
        dill.http_done(h, soon())
        wire = b"HTTP/1.1 404 Not Found\r\nHTTP/1.1 200 \r\n\r\n"
        assert recv_all(peer, len(wire)) == wire


def test_receiving_a_head_sent_in_pieces() -> None:
    with http_and_plain_socket() as (h, peer):
        wire = b"POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
        for i in range(len(wire)):
            peer.sendall(wire[i : i + 1])
        assert dill.http_recvrequest(h, soon()) == ("POST", "/form")
        assert read_fields(h, soon()) == [("Host", "a"), ("Content-Length", "0")]
        with raises_errno(errno.EPIPE):  # sticky
            dill.http_recvfield(h, soon())


def test_non_ascii_text_is_latin_1_on_the_wire() -> None:
    with http_and_plain_socket() as (h, peer):
        dill.http_sendfield(h, "X-Name", "caf\xe9", soon())
        assert recv_all(peer, 14) == b"X-Name: caf\xe9\r\n"
        peer.sendall(b"X-Raw: \xff\xfe\r\n")
        assert dill.http_recvfield(h, soon()) == ("X-Raw", "\xff\xfe")


# Errors, in the reference's order ---------------------------------------------------


ATTACH: dict[str, Callable[[int], int]] = {
    "http_attach": dill.http_attach,
    "http_attach_mem": lambda s: dill.http_attach_mem(s, dill.http_storage()),
}


@pytest.mark.parametrize("attach", sorted(ATTACH))
def test_attach_ebadf_for_a_number_that_is_no_handle(attach: str) -> None:
    with raises_errno(errno.EBADF):
        ATTACH[attach](12345)


@pytest.mark.parametrize("attach", sorted(ATTACH))
def test_attach_enotsup_when_underlying_is_a_message_socket_closes_it(attach: str) -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.ENOTSUP):  # libdill's code; its man page says EPROTO
        ATTACH[attach](p)
    with raises_errno(errno.EBADF):
        dill.hclose(p)
    dill.hclose(b)


@pytest.mark.parametrize("limits", [{"max_line": 0}, {"max_fields": 0}])
def test_attach_einval_for_a_limit_below_one_closes_the_socket(limits: dict[str, int]) -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        dill.http_attach(a, **limits)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


def test_attach_ecanceled_in_a_canceled_coroutine_closes_the_socket() -> None:
    a, b = dill.ipc_pair()
    assert isinstance(in_canceled_coroutine(lambda: dill.http_attach(a)), dill.Canceled)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


def test_attach_takes_ownership() -> None:
    a, b = dill.ipc_pair()
    h = dill.http_attach(a)
    with raises_errno(errno.EBADF):
        dill.bsend(a, b"x")
    close_all(h, b)  # closing h closed a


def test_attach_mem_storage_rules() -> None:
    mem = dill.http_storage()
    a, b = dill.ipc_pair()
    h = dill.http_attach_mem(a, mem)
    c, d = dill.ipc_pair()
    with raises_errno(errno.EBUSY):
        dill.http_attach_mem(c, mem)
    with raises_errno(errno.EBADF):
        dill.hclose(c)
    with raises_errno(errno.EINVAL):
        dill.http_attach_mem(d, None)  # type: ignore[arg-type]
    dill.hclose(h)
    h = dill.http_attach_mem(b, mem, max_line=10)  # reusable once closed
    dill.hclose(h)
    # and once detached
    e, f = dill.ipc_pair()
    he, hf = dill.http_attach_mem(e, mem), dill.http_attach(f)
    dill.http_done(hf)
    dill.http_done(he)
    ue = dill.http_detach(he, soon())
    h = dill.http_attach_mem(ue, mem)
    close_all(h, hf)


@pytest.mark.parametrize(
    "function",
    [
        lambda h: dill.http_sendrequest(h, "GET", "/", soon()),
        lambda h: dill.http_recvrequest(h, soon()),
        lambda h: dill.http_sendstatus(h, 200, "OK", soon()),
        lambda h: dill.http_recvstatus(h, soon()),
        lambda h: dill.http_sendfield(h, "A", "b", soon()),
        lambda h: dill.http_recvfield(h, soon()),
        lambda h: dill.http_done(h, soon()),
        lambda h: dill.http_detach(h, soon()),
    ],
)
def test_every_function_ebadf_and_enotsup(function: Callable[[int], Any]) -> None:
    with raises_errno(errno.EBADF):
        function(12345)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        function(a)
    close_all(a, b)


@pytest.mark.parametrize(
    ("command", "resource"),
    [
        ("GE T", "/"),
        ("GET", "/a b"),
        ("GET", "/a\tb"),
        ("GET", "/a\nb"),
        ("GET", "/a\rb"),
        ("GET", "/a\0b"),
        ("", "/"),
        ("GET", ""),
        ("GET", "/\u20ac"),
    ],
)
def test_sendrequest_einval_sends_nothing(command: str, resource: str) -> None:
    with http_and_plain_socket() as (h, peer):
        with raises_errno(errno.EINVAL):
            dill.http_sendrequest(h, command, resource, soon())
        dill.http_sendrequest(h, "GET", "/", soon())  # still usable
        assert recv_all(peer, 16) == b"GET / HTTP/1.1\r\n"


@contextmanager
def clogged_http() -> Iterator[int]:
    """An HTTP socket over IPC whose kernel send buffer is full."""
    mine, peer = socket.socketpair()
    filler = mine.dup()
    filler.setblocking(False)
    with suppress(BlockingIOError):
        while True:
            filler.send(bytes(65536))
    filler.close()
    h = dill.http_attach(dill.ipc_fromfd(mine.detach()))
    try:
        yield h
    finally:
        dill.hclose(h)
        peer.close()


SENDERS: list[Callable[[int, int], None]] = [
    lambda h, dl: dill.http_sendrequest(h, "GET", "/", dl),
    lambda h, dl: dill.http_sendstatus(h, 200, "OK", dl),
    lambda h, dl: dill.http_sendfield(h, "A", "b", dl),
    dill.http_done,
]


@pytest.mark.parametrize("send", SENDERS)
def test_send_etimedout_then_econnreset(send: Callable[[int, int], None]) -> None:
    with clogged_http() as h:
        with raises_errno(errno.ETIMEDOUT):
            send(h, dill.now() + 20)
        for later in SENDERS:
            with raises_errno(errno.ECONNRESET):  # the sending side is broken
                later(h, 0)


@pytest.mark.parametrize("send", SENDERS)
def test_send_ecanceled_when_it_must_wait(send: Callable[[int, int], None]) -> None:
    with clogged_http() as h:
        co, out = spawn(send, h, -1)
        dill.yield_()
        dill.hclose(co)
        assert isinstance(out[0], dill.Canceled)


def test_send_econnreset_when_the_peer_is_gone() -> None:
    a, b = dill.ipc_pair()
    h = dill.http_attach(a)
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET):
        dill.http_sendrequest(h, "GET", "/", soon())
    dill.hclose(h)


def test_send_ebusy_while_another_coroutine_sends() -> None:
    with clogged_http() as h:
        co, _ = spawn(dill.http_sendfield, h, "A", "b", -1)
        dill.yield_()
        with raises_errno(errno.EBUSY):
            dill.http_sendfield(h, "C", "d", 0)
        with raises_errno(errno.EBUSY):
            dill.http_done(h, 0)
        dill.hclose(co)


def test_sends_after_done_are_epipe() -> None:
    with http_and_plain_socket() as (h, peer):
        dill.http_done(h, soon())
        for send in SENDERS:
            with raises_errno(errno.EPIPE):
                send(h, soon())
        assert recv_all(peer, 2) == b"\r\n"


RECEIVERS: list[Callable[[int, int], Any]] = [
    dill.http_recvrequest,
    dill.http_recvstatus,
    dill.http_recvfield,
]


@pytest.mark.parametrize("recv", RECEIVERS)
def test_recv_emsgsize_for_a_line_over_max_line_then_econnreset(
    recv: Callable[[int, int], Any],
) -> None:
    with http_and_plain_socket(max_line=20) as (h, peer):
        peer.sendall(b"x" * 21 + b"\r\nA: b\r\n")
        with raises_errno(errno.EMSGSIZE):
            recv(h, soon())
        with raises_errno(errno.ECONNRESET):
            dill.http_recvfield(h, soon())


def test_recv_emsgsize_does_not_wait_for_the_end_of_a_long_line() -> None:
    # The receiver never holds more than max_line bytes of a line.
    with http_and_plain_socket(max_line=100) as (h, peer):
        peer.sendall(b"y" * 5000)  # and no CRLF ever
        with raises_errno(errno.EMSGSIZE):
            dill.http_recvrequest(h, soon())


def test_line_of_exactly_max_line_bytes_is_received() -> None:
    with http_and_plain_socket(max_line=20) as (h, peer):
        peer.sendall(b"X: " + b"v" * 17 + b"\r\n")
        assert dill.http_recvfield(h, soon()) == ("X", "v" * 17)


def test_default_limit_is_8192_bytes() -> None:
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"X: " + b"v" * 8189 + b"\r\n" + b"Y: " + b"v" * 8190 + b"\r\n")
        assert dill.http_recvfield(h, soon()) == ("X", "v" * 8189)
        with raises_errno(errno.EMSGSIZE):
            dill.http_recvfield(h, soon())


@pytest.mark.parametrize("recv", RECEIVERS)
def test_recv_eproto_for_a_malformed_line_is_not_latched(recv: Callable[[int, int], Any]) -> None:
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"\x01\x02\x03\r\nA: b\r\n")
        with raises_errno(errno.EPROTO):
            recv(h, soon())
        assert dill.http_recvfield(h, soon()) == ("A", "b")


@pytest.mark.parametrize("recv", RECEIVERS)
def test_recv_etimedout_then_econnreset(recv: Callable[[int, int], Any]) -> None:
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"GET / HT")  # half a line
        with raises_errno(errno.ETIMEDOUT):
            recv(h, dill.now() + 20)
        peer.sendall(b"TP/1.1\r\n")
        for later in RECEIVERS:
            with raises_errno(errno.ECONNRESET):  # the half line is lost: receiving is broken
                later(h, soon())


@pytest.mark.parametrize("recv", RECEIVERS)
def test_recv_ecanceled_when_it_must_wait(recv: Callable[[int, int], Any]) -> None:
    with http_and_plain_socket() as (h, _peer):
        co, out = spawn(recv, h, -1)
        dill.yield_()
        dill.hclose(co)
        assert isinstance(out[0], dill.Canceled)


@pytest.mark.parametrize("recv", RECEIVERS)
def test_recv_epipe_at_the_blank_line_and_at_the_end_of_the_stream(
    recv: Callable[[int, int], Any],
) -> None:
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"\r\n")
        with raises_errno(errno.EPIPE):
            recv(h, soon())
    with http_and_plain_socket() as (h, peer):
        peer.shutdown(socket.SHUT_WR)
        with raises_errno(errno.EPIPE):
            recv(h, soon())


def test_recv_ebusy_while_another_coroutine_receives() -> None:
    with http_and_plain_socket() as (h, peer):
        co, out = spawn(dill.http_recvrequest, h, soon())
        dill.yield_()
        with raises_errno(errno.EBUSY):
            dill.http_recvfield(h, 0)
        with raises_errno(errno.EBUSY):
            dill.http_detach(h, 0)  # h stays open
        peer.sendall(b"GET / HTTP/1.1\r\n")
        finish(co)
        assert out == [("GET", "/")]


@pytest.mark.parametrize("status", [99, 600, -1, 1000])
def test_sendstatus_einval_outside_100_to_599(status: int) -> None:
    with http_and_plain_socket() as (h, peer):
        with raises_errno(errno.EINVAL):
            dill.http_sendstatus(h, status, "OK", soon())
        for reason in ("a\r\nX-Injected: 1", "a\nb", "a\0b", "\u20ac"):
            with raises_errno(errno.EINVAL):
                dill.http_sendstatus(h, 200, reason, soon())
        dill.http_sendstatus(h, 100, "Continue", soon())
        dill.http_sendstatus(h, 599, "", soon())
        wire = b"HTTP/1.1 100 Continue\r\nHTTP/1.1 599 \r\n"
        assert recv_all(peer, len(wire)) == wire


@pytest.mark.parametrize(
    "name",
    ["", "a b", "a\tb", "a:b", "a\nb", *'(),/;<=>?@[\\]{}"', "\x01", "\x7f", "\xe9"],
)
def test_sendfield_einval_for_a_name_that_is_not_a_token(name: str) -> None:
    with http_and_plain_socket() as (h, _peer), raises_errno(errno.EINVAL):
        dill.http_sendfield(h, name, "v", soon())


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\0b", "\u20ac"])
def test_sendfield_einval_for_a_value_that_would_change_the_head(value: str) -> None:
    with http_and_plain_socket() as (h, _peer), raises_errno(errno.EINVAL):
        dill.http_sendfield(h, "X", value, soon())


@pytest.mark.parametrize("value", ["", "   ", " \t "])
def test_sendfield_eproto_for_an_empty_value(value: str) -> None:
    with http_and_plain_socket() as (h, peer):
        with raises_errno(errno.EPROTO):  # libdill's errno for it
            dill.http_sendfield(h, "X", value, soon())
        dill.http_sendfield(h, "X", "y", soon())  # nothing was sent, h is usable
        assert recv_all(peer, 6) == b"X: y\r\n"


def test_recvfield_emsgsize_past_max_fields_then_econnreset() -> None:
    with http_and_plain_socket(max_fields=3) as (h, peer):
        peer.sendall(b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n")
        assert [dill.http_recvfield(h, soon()) for _ in range(3)] == [
            ("A", "1"),
            ("B", "2"),
            ("C", "3"),
        ]
        with raises_errno(errno.EMSGSIZE):
            dill.http_recvfield(h, soon())
        with raises_errno(errno.ECONNRESET):
            dill.http_recvfield(h, soon())
        with raises_errno(errno.ECONNRESET):  # and detach refuses it, closing it
            dill.http_detach(h, soon())
        with raises_errno(errno.EBADF):
            dill.hclose(h)


def test_default_field_limit_is_100() -> None:
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"".join(b"F%d: v\r\n" % i for i in range(101)))
        assert len([dill.http_recvfield(h, soon()) for _ in range(100)]) == 100
        with raises_errno(errno.EMSGSIZE):
            dill.http_recvfield(h, soon())


def test_done_epipe_the_second_time() -> None:
    with http_and_plain_socket() as (h, peer):
        dill.http_done(h, soon())
        with raises_errno(errno.EPIPE):
            dill.http_done(h, soon())
        assert recv_all(peer, 2) == b"\r\n"


def test_detach_etimedout_closes_the_stack() -> None:
    with http_and_plain_socket() as (h, peer):
        with raises_errno(errno.ETIMEDOUT):
            dill.http_detach(h, dill.now() + 20)  # the peer never sends its blank line
        with raises_errno(errno.EBADF):
            dill.hclose(h)
        peer.settimeout(SAFETY_MS / 1000)
        assert peer.recv(100) == b"\r\n"  # our blank line went out
        assert peer.recv(100) == b""  # then everything was closed


def test_detach_ecanceled_closes_the_stack() -> None:
    with http_and_plain_socket() as (h, _peer):
        co, out = spawn(dill.http_detach, h, -1)
        dill.yield_()
        dill.hclose(co)
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.EBADF):
            dill.hclose(h)


def test_detach_when_the_stream_ends_before_the_blank_line() -> None:
    # The end came between two lines: the peer's orderly end, so the stream
    # comes back (at its end) to be closed in order. (libdill: ECONNRESET.)
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"GET / HTTP/1.1\r\n")
        peer.shutdown(socket.SHUT_WR)
        u = dill.http_detach(h, soon())
        with raises_errno(errno.EPIPE):
            dill.brecv(u, 1, soon())
        with raises_errno(errno.EBADF):
            dill.hclose(h)
        dill.hclose(u)


def test_detach_econnreset_when_the_stream_ends_in_the_middle_of_a_line() -> None:
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"GET / HTTP/1.1\r\nHost: exa")
        peer.shutdown(socket.SHUT_WR)
        with raises_errno(errno.ECONNRESET):  # the suffix layer saw a broken line
            dill.http_detach(h, soon())
        with raises_errno(errno.EBADF):
            dill.hclose(h)


def test_detach_drops_the_rest_of_the_peers_head() -> None:
    with http_and_plain_socket() as (h, peer):
        peer.sendall(b"GET / HTTP/1.1\r\nA: b\r\n" + b"x" * 100_000 + b"\r\n\r\nbody")
        assert dill.http_recvrequest(h, soon()) == ("GET", "/")
        u = dill.http_detach(h, soon())  # the long line is dropped, not refused
        try:
            assert dill.brecv(u, 4, soon()) == b"body"
        finally:
            dill.hclose(u)


# The stack comes apart: HTTP, then detach, then raw bytes --------------------------


@pytest.mark.parametrize("kind", ["tcp", "ipc", "plain"])
def test_http_then_detach_then_raw_bytes(kind: str) -> None:
    # Over TCP and IPC the suffix layer reads ahead and gives the bytes back;
    # over a user's stream without bunrecv it reads exactly. Either way the
    # body sent right behind the head arrives whole.
    a, b = byte_stream_pair(kind)
    client, server = dill.http_attach(a), dill.http_attach(b)
    body = randbytes(100_000, seed=7)
    request_body = randbytes(50_000, seed=8)

    def serve() -> tuple[Any, ...]:
        command, resource = dill.http_recvrequest(server, soon())
        fields = read_fields(server, soon())
        dill.http_sendstatus(server, 200, "OK", soon())
        dill.http_sendfield(server, "Content-Length", str(len(body)), soon())
        u = dill.http_detach(server, soon())
        got = dill.brecv(u, int(dict(fields)["Content-Length"]), soon())
        dill.bsend(u, body, soon())
        return command, resource, got, u

    co, out = spawn(serve)
    dill.http_sendrequest(client, "PUT", "/data", soon())
    dill.http_sendfield(client, "Content-Length", str(len(request_body)), soon())
    dill.http_done(client, soon())
    u = dill.http_detach(client, soon())  # waits for the server's blank line
    dill.bsend(u, request_body, soon())
    assert dill.brecv(u, len(body), soon()) == body
    finish(co)
    command, resource, got, v = out[0]
    assert (command, resource, got) == ("PUT", "/data", request_body)
    close_all(u, v)


def test_head_and_body_in_one_write_over_tcp() -> None:
    a, b = byte_stream_pair("tcp")
    server = dill.http_attach(b)
    dill.bsend(a, b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello and more")
    assert dill.http_recvrequest(server, soon()) == ("POST", "/x")
    assert read_fields(server, soon()) == [("Content-Length", "5")]
    dill.http_done(server, soon())
    u = dill.http_detach(server, soon())
    assert dill.brecv(u, 14, soon()) == b"hello and more"
    assert dill.brecv(a, 2, soon()) == b"\r\n"  # our blank line
    close_all(a, u)


# Real peers ----------------------------------------------------------------------------


def listen() -> tuple[int, int]:
    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls = dill.tcp_listen(addr, 8)
    return ls, dill.ipaddr_port(addr)


def serve_one(ls: int, reply: bytes) -> dict[str, Any]:
    """Serve one request on a greendill HTTP socket; return what came."""
    s = dill.tcp_accept(ls, soon())
    h = dill.http_attach(s)
    command, resource = dill.http_recvrequest(h, soon())
    fields = read_fields(h, soon())
    lowered = {name.lower(): value for name, value in fields}
    dill.http_sendstatus(h, 200, "OK", soon())
    dill.http_sendfield(h, "Content-Type", "application/octet-stream", soon())
    dill.http_sendfield(h, "Content-Length", str(len(reply)), soon())
    dill.http_sendfield(h, "Connection", "close", soon())
    # The peer's head is over already: detach sends our blank line and returns.
    u = dill.http_detach(h, soon())
    body = dill.brecv(u, int(lowered.get("content-length", "0")), soon())
    dill.bsend(u, reply, soon())
    dill.tcp_close(u, soon())  # done, then wait for the client to close
    return {"command": command, "resource": resource, "fields": fields, "body": body}


def wait_for_exit(proc: subprocess.Popen[bytes]) -> int:
    deadline = dill.now() + SAFETY_MS
    while proc.poll() is None:
        if dill.now() >= deadline:
            proc.kill()
            proc.wait()
            pytest.fail("the subprocess did not end in time")
        dill.msleep(dill.now() + 5)
    return proc.returncode


def test_curl_client_of_a_greendill_server(curl: str, tmp_path: Path) -> None:
    ls, port = listen()
    reply = randbytes(300_000, seed=1)
    upload = randbytes(70_000, seed=2)
    (tmp_path / "upload").write_bytes(upload)
    try:
        with (tmp_path / "err").open("wb") as stderr:
            proc = subprocess.Popen(
                [
                    curl,
                    "--silent",
                    "--show-error",
                    "--max-time",
                    str(SAFETY_MS // 1000),
                    "--dump-header",
                    str(tmp_path / "head"),
                    "--output",
                    str(tmp_path / "body"),
                    "--header",
                    "X-Test:   spaced value  ",
                    "--header",
                    "Expect:",  # no 100-continue round
                    "--data-binary",
                    f"@{tmp_path / 'upload'}",
                    f"http://127.0.0.1:{port}/upload?x=1",
                ],
                stdin=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            got = serve_one(ls, reply)
        finally:
            assert wait_for_exit(proc) == 0, (tmp_path / "err").read_text()
    finally:
        dill.hclose(ls)
    assert (got["command"], got["resource"]) == ("POST", "/upload?x=1")
    fields = {name.lower(): value for name, value in got["fields"]}
    assert fields["x-test"] == "spaced value"
    assert fields["host"] == f"127.0.0.1:{port}"
    assert fields["content-length"] == str(len(upload))
    assert got["body"] == upload
    head = (tmp_path / "head").read_bytes()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 300000\r\n" in head
    assert (tmp_path / "body").read_bytes() == reply


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # reported by the test
            out.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def test_stdlib_http_client_of_a_greendill_server() -> None:
    ls, port = listen()
    reply = b"answer " * 1000

    def client() -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SAFETY_MS / 1000)
        try:
            conn.request("PUT", "/thing", body=b"payload", headers={"X-A": "b"})
            response = conn.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            conn.close()

    thread, out = in_thread(client)
    try:
        got = serve_one(ls, reply)
    finally:
        thread.join(SAFETY_MS / 1000)
        dill.hclose(ls)
    assert (got["command"], got["resource"], got["body"]) == ("PUT", "/thing", b"payload")
    assert ("X-A", "b") in got["fields"]
    status, reason, headers, body = out[0]
    assert (status, reason, body) == (200, "OK", reply)
    assert ("Content-Length", str(len(reply))) in headers


def test_stdlib_urllib_client_of_a_greendill_server() -> None:
    ls, port = listen()

    def client() -> tuple[int, bytes]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/page", timeout=SAFETY_MS / 1000
        ) as response:
            return response.status, response.read()

    thread, out = in_thread(client)
    try:
        got = serve_one(ls, b"<html></html>")
    finally:
        thread.join(SAFETY_MS / 1000)
        dill.hclose(ls)
    assert (got["command"], got["resource"]) == ("GET", "/page")
    assert out == [(200, b"<html></html>")]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"you asked for {self.path} with {self.headers['X-Ask']}".encode()
        self.send_response(203, "Custom Reason")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Empty", "")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_greendill_client_of_a_stdlib_http_server() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        addr = dill.ipaddr_remote("127.0.0.1", server.server_address[1])
        h = dill.http_attach(dill.tcp_connect(addr, soon()))
        dill.http_sendrequest(h, "GET", "/x", soon())
        dill.http_sendfield(h, "Host", "127.0.0.1", soon())
        dill.http_sendfield(h, "X-Ask", "please", soon())
        dill.http_sendfield(h, "Connection", "close", soon())
        dill.http_done(h, soon())
        assert dill.http_recvstatus(h, soon()) == (203, "Custom Reason")
        fields = dict(read_fields(h, soon()))
        assert fields["X-Empty"] == ""
        u = dill.http_detach(h, soon())
        body = dill.brecv(u, int(fields["Content-Length"]), soon())
        assert body == b"you asked for /x with please"
        dill.tcp_close(u, soon())
    finally:
        server.shutdown()
        server.server_close()
        thread.join(SAFETY_MS / 1000)
