"""SOCKS5: the client's and the proxy's handshake (reference section 17).

The codec first (every message read back with the exact reads the I/O
side makes, whatever the split; hypothesis on arbitrary bytes: a message,
a need for more, or EPROTO), then the proxy functions fuzzed through a real
socket, then the wire layout against plain sockets, then each errno, then
greendill on both ends, and last the real peer: curl through
examples/socks5_proxy.py to an HTTP server of greendill's on loopback.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import (
    SAFETY_MS,
    finish,
    greendill_and_plain_socket,
    raises_errno,
    soon,
    spawn,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greendill as dill
from greendill._socks5 import (
    ATYP_IPV4,
    ATYP_IPV6,
    ATYP_NAME,
    encode_command,
    encode_greeting,
    encode_userpass,
    read_command,
    read_greeting,
    read_method,
    read_userpass,
    read_userpass_status,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "socks5_proxy.py"
LOOPBACK = socket.inet_aton("127.0.0.1")


def read_exactly(reader: Callable[[bytes, str], Any], wire: bytes) -> tuple[Any, int]:
    """Feed wire to reader as the I/O side does; return the message and the bytes used."""
    buf = b""
    while True:
        got = reader(buf, "test")
        if not isinstance(got, int):
            return got, len(buf)
        assert got > 0
        assert len(buf) + got <= len(wire), "the reader asked for bytes past the message"
        buf += wire[len(buf) : len(buf) + got]


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


# The codec -------------------------------------------------------------------------

addresses = st.one_of(
    st.tuples(st.just(ATYP_IPV4), st.binary(min_size=4, max_size=4)),
    st.tuples(st.just(ATYP_IPV6), st.binary(min_size=16, max_size=16)),
    st.tuples(st.just(ATYP_NAME), st.binary(max_size=255)),
)


@given(st.integers(0, 255), addresses, st.integers(0, 65535), st.binary(max_size=20))
def test_codec_command_read_back_exactly_with_bytes_after_it(
    code: int, address: tuple[int, bytes], port: int, after: bytes
) -> None:
    atyp, raw = address
    wire = encode_command(code, atyp, raw, port)
    assert read_exactly(read_command, wire + after) == ((code, atyp, raw, port), len(wire))


@given(st.binary(max_size=255), st.binary(max_size=20))
def test_codec_greeting_read_back_exactly(methods: bytes, after: bytes) -> None:
    wire = encode_greeting(methods)
    assert read_exactly(read_greeting, wire + after) == ((methods,), len(wire))


@given(st.binary(max_size=255), st.binary(max_size=255), st.binary(max_size=20))
def test_codec_userpass_read_back_exactly(user: bytes, password: bytes, after: bytes) -> None:
    wire = encode_userpass(user, password)
    assert read_exactly(read_userpass, wire + after) == ((user, password), len(wire))


READERS = [read_greeting, read_method, read_userpass, read_userpass_status, read_command]


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_codec_readers_on_arbitrary_bytes(wire: bytes) -> None:
    # A message, a count of bytes still needed, or EPROTO: nothing else.
    for reader in READERS:
        buf = b""
        while True:
            try:
                got = reader(buf, "test")
            except OSError as exc:
                assert exc.errno == errno.EPROTO
                break
            if not isinstance(got, int):
                assert isinstance(got, tuple)
                break
            assert got > 0
            if len(buf) + got > len(wire):
                break  # the peer would have to send more: EPIPE at its end
            buf = wire[: len(buf) + got]


def test_codec_wire_layouts() -> None:
    assert encode_greeting(b"\x00\x02") == b"\x05\x02\x00\x02"
    assert encode_userpass(b"u", b"pw") == b"\x01\x01u\x02pw"
    assert encode_command(1, ATYP_IPV4, LOOPBACK, 80) == b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"
    assert encode_command(0, ATYP_NAME, b"ab", 443) == b"\x05\x00\x00\x03\x02ab\x01\xbb"


# The proxy functions, fuzzed through a real socket --------------------------------------


@given(st.binary(max_size=300), st.booleans())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_proxy_on_arbitrary_bytes_ends_with_a_documented_errno(
    wire: bytes, with_auth: bool
) -> None:
    with greendill_and_plain_socket() as (s, peer):
        try:
            peer.sendall(wire)
            peer.shutdown(socket.SHUT_WR)
            auth = (lambda user, password: user == "u") if with_auth else None
            expected = {errno.EPROTO, errno.EPIPE, errno.EACCES, errno.ECONNRESET}
            try:
                dill.socks5_proxy_auth(s, auth, soon())
                command, host, port = dill.socks5_proxy_recvcommandbyname(s, soon())
            except OSError as exc:
                assert exc.errno in expected, repr(exc)
            else:
                assert command in (1, 2, 3)
                assert isinstance(host, str)
                assert 0 <= port <= 65535
        finally:
            dill.hclose(s)


# The wire layout, against plain sockets ------------------------------------------------


def test_client_wire_layout_without_credentials() -> None:
    with greendill_and_plain_socket() as (s, peer):
        # The proxy's answers can be there before they are asked for: the
        # client reads exactly what each one takes.
        peer.sendall(b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6) + b"after")
        dill.socks5_client_connect(s, None, None, dill.ipaddr_remote("10.1.2.3", 8080), soon())
        assert dill.brecv(s, 5, soon()) == b"after"  # nothing was read ahead
        assert peer.recv(100) == b"\x05\x01\x00" + b"\x05\x01\x00\x01\x0a\x01\x02\x03\x1f\x90"
        dill.hclose(s)


def test_client_wire_layout_with_credentials_and_a_name() -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x02" + b"\x01\x00" + b"\x05\x00\x00\x03\x03abc\x00\x01")
        dill.socks5_client_connectbyname(s, "user", "pass", "example.org", 443, soon())
        expected = (
            b"\x05\x02\x00\x02"
            + b"\x01\x04user\x04pass"
            + b"\x05\x01\x00\x03\x0bexample.org\x01\xbb"
        )
        assert peer.recv(100) == expected
        dill.hclose(s)


@pytest.mark.parametrize(
    ("host", "encoded"),
    [
        ("127.0.0.1", b"\x01\x7f\x00\x00\x01"),
        ("::1", b"\x04" + bytes(15) + b"\x01"),
        ("caf\xe9.example", b"\x03\x0dcaf\xc3\xa9.example"),
    ],
)
def test_client_connectbyname_sends_literals_as_addresses(host: str, encoded: bytes) -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6))
        dill.socks5_client_connectbyname(s, None, None, host, 80, soon())
        assert peer.recv(100) == b"\x05\x01\x00" + b"\x05\x01\x00" + encoded + b"\x00\x50"
        dill.hclose(s)


def test_proxy_wire_layout() -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x03\x01\x02\x00")  # offers three methods, NOAUTH among them
        peer.sendall(b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x16")
        dill.socks5_proxy_auth(s, None, soon())
        command, addr = dill.socks5_proxy_recvcommand(s, soon())
        assert (command, dill.ipaddr_str(addr), dill.ipaddr_port(addr)) == (1, "::1", 22)
        dill.socks5_proxy_sendreply(s, dill.SOCKS5_SUCCESS, dill.ipaddr_local("10.0.0.1", 99))
        dill.socks5_proxy_sendreply(s, dill.SOCKS5_TTL_EXPIRED, dill.ipaddr_local("::2", 1))
        expected = (
            b"\x05\x00"
            + b"\x05\x00\x00\x01\x0a\x00\x00\x01\x00\x63"
            + b"\x05\x06\x00\x04"
            + bytes(15)
            + b"\x02\x00\x01"
        )
        assert peer.recv(100) == expected
        dill.hclose(s)


def test_proxy_auth_with_a_password() -> None:
    seen = []

    def auth(user: str, password: str) -> bool:
        seen.append((user, password))
        return password == "right"

    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x02\x00\x02" + b"\x01\x02me\x05right")
        dill.socks5_proxy_auth(s, auth, soon())
        assert peer.recv(100) == b"\x05\x02\x01\x00"
        dill.hclose(s)
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x01\x02" + b"\x01\x02me\x05wrong")
        with raises_errno(errno.EACCES):
            dill.socks5_proxy_auth(s, auth, soon())
        assert peer.recv(100) == b"\x05\x02\x01\xff"
        dill.hclose(s)
    assert seen == [("me", "right"), ("me", "wrong")]


def test_proxy_recvcommand_resolves_a_name() -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x01\x00\x03\x09localhost\x1f\x90")
        command, addr = dill.socks5_proxy_recvcommand(s, soon())
        assert command == dill.SOCKS5_CONNECT
        assert dill.ipaddr_port(addr) == 8080
        assert dill.ipaddr_str(addr) in ("127.0.0.1", "::1")
        dill.hclose(s)


# Errors -----------------------------------------------------------------------------------

CLIENT_CALLS: list[Callable[[int, int], None]] = [
    lambda s, dl: dill.socks5_client_connect(s, "u", "p", dill.ipaddr_remote("::1", 1), dl),
    lambda s, dl: dill.socks5_client_connectbyname(s, "u", "p", "host", 1, dl),
]
PROXY_CALLS: list[Callable[[int, int], Any]] = [
    lambda s, dl: dill.socks5_proxy_auth(s, None, dl),
    dill.socks5_proxy_recvcommand,
    dill.socks5_proxy_recvcommandbyname,
    lambda s, dl: dill.socks5_proxy_sendreply(s, 0, dill.ipaddr(), dl),
]


@pytest.mark.parametrize("call", CLIENT_CALLS + PROXY_CALLS)
def test_every_function_ebadf_and_enotsup(call: Callable[[int, int], Any]) -> None:
    with raises_errno(errno.EBADF):
        call(12345, soon())
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 2)  # a message socket
    with raises_errno(errno.ENOTSUP):
        call(p, soon())
    close_all(p, b)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: dill.socks5_client_connect(s, "u" * 256, "p", dill.ipaddr(), soon()),
        lambda s: dill.socks5_client_connect(s, "u", "\xe9" * 128, dill.ipaddr(), soon()),
        lambda s: dill.socks5_client_connect(s, "u", "p", None, soon()),  # type: ignore[arg-type]
        lambda s: dill.socks5_client_connectbyname(s, None, None, None, 80, soon()),  # type: ignore[arg-type]
        lambda s: dill.socks5_client_connectbyname(s, None, None, "", 80, soon()),
        lambda s: dill.socks5_client_connectbyname(s, None, None, "h" * 256, 80, soon()),
        lambda s: dill.socks5_client_connectbyname(s, None, None, "h", 0, soon()),
        lambda s: dill.socks5_client_connectbyname(s, None, None, "h", 65536, soon()),
        lambda s: dill.socks5_client_connectbyname(s, "u" * 256, None, "h", 80, soon()),
        lambda s: dill.socks5_proxy_sendreply(s, -1, dill.ipaddr(), soon()),
        lambda s: dill.socks5_proxy_sendreply(s, 9, dill.ipaddr(), soon()),
        lambda s: dill.socks5_proxy_sendreply(s, 0, None, soon()),  # type: ignore[arg-type]
    ],
)
def test_einval_sends_nothing(call: Callable[[int], None]) -> None:
    with greendill_and_plain_socket() as (s, peer):
        with raises_errno(errno.EINVAL):
            call(s)
        dill.bsend(s, b"!")
        assert peer.recv(10) == b"!"
        dill.hclose(s)


def test_a_name_of_255_bytes_is_sent() -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6))
        dill.socks5_client_connectbyname(s, None, None, "h" * 255, 80, soon())
        assert len(peer.recv(1000)) == 3 + 7 + 255
        dill.hclose(s)


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        (b"\x05\xff", errno.EACCES),  # no acceptable method
        (b"\x05\x02\x01\x01", errno.EACCES),  # password refused
        (b"\x04\x00", errno.EPROTO),  # not version 5
        (b"\x05\x01", errno.EPROTO),  # GSSAPI: not offered
        (b"\x05\x02\x02\x00", errno.EPROTO),  # RFC 1929 answer of another version
        (b"\x05\x00\x05\x00\x01\x01" + bytes(6), errno.EPROTO),  # reserved byte not 0
        (b"\x05\x00\x05\x00\x00\x02" + bytes(6), errno.EPROTO),  # unknown address type
        (b"\x05\x00\x04\x00\x00\x01" + bytes(6), errno.EPROTO),  # reply not version 5
        (b"\x05\x00\x05\x09\x00\x01" + bytes(6), errno.EPROTO),  # unknown reply
        (b"\x05\x00\x05\x01\x00\x01" + bytes(6), errno.EIO),
        (b"\x05\x00\x05\x02\x00\x01" + bytes(6), errno.EACCES),
        (b"\x05\x00\x05\x03\x00\x01" + bytes(6), errno.ENETUNREACH),
        (b"\x05\x00\x05\x04\x00\x01" + bytes(6), errno.EHOSTUNREACH),
        (b"\x05\x00\x05\x05\x00\x01" + bytes(6), errno.ECONNREFUSED),
        (b"\x05\x00\x05\x06\x00\x01" + bytes(6), errno.ETIMEDOUT),
        (b"\x05\x00\x05\x07\x00\x01" + bytes(6), errno.EOPNOTSUPP),
        (b"\x05\x00\x05\x08\x00\x01" + bytes(6), errno.EAFNOSUPPORT),
        (b"\x05\x00\x05\x00\x00\x03\x05ab", errno.EPIPE),  # the proxy left mid-reply
        (b"", errno.EPIPE),
    ],
)
def test_client_errors_from_the_proxys_answers(answers: bytes, code: int) -> None:
    for call in CLIENT_CALLS:
        with greendill_and_plain_socket() as (s, peer):
            peer.sendall(answers)
            peer.shutdown(socket.SHUT_WR)
            with raises_errno(code):
                call(s, soon())
            dill.hclose(s)


def test_client_without_credentials_eproto_when_the_proxy_asks_for_a_password() -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x02")
        with raises_errno(errno.EPROTO):  # C asserts here
            dill.socks5_client_connect(s, "u", None, dill.ipaddr(), soon())
        assert peer.recv(10) == b"\x05\x01\x00"  # only NOAUTH was offered
        dill.hclose(s)


def test_client_etimedout_then_econnreset_and_ecanceled() -> None:
    for call in CLIENT_CALLS:
        with greendill_and_plain_socket() as (s, _peer):
            with raises_errno(errno.ETIMEDOUT):
                call(s, dill.now() + 20)
            with raises_errno(errno.ECONNRESET):  # the stream's receiving side is broken
                call(s, dill.now() + 20)
            dill.hclose(s)
        with greendill_and_plain_socket() as (s, _peer):
            co, out = spawn(call, s, -1)
            dill.yield_()
            dill.hclose(co)
            assert isinstance(out[0], dill.Canceled)
            dill.hclose(s)


@pytest.mark.parametrize(
    ("offer", "auth"),
    [
        (b"\x05\x01\x02", None),  # only a password, and the proxy takes none
        (b"\x05\x01\x00", lambda u, p: True),  # no password, and the proxy wants one
        (b"\x05\x00", None),  # no method at all
    ],
)
def test_proxy_auth_eacces_for_no_acceptable_method(offer: bytes, auth: Any) -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(offer)
        with raises_errno(errno.EACCES):
            dill.socks5_proxy_auth(s, auth, soon())
        assert peer.recv(10) == b"\x05\xff"
        dill.hclose(s)


@pytest.mark.parametrize(
    ("wire", "auth"),
    [(b"\x04\x01\x00", None), (b"\x05\x01\x02\x05\x01u\x01p", lambda u, p: True)],
)
def test_proxy_auth_eproto(wire: bytes, auth: Any) -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(wire)
        with raises_errno(errno.EPROTO):
            dill.socks5_proxy_auth(s, auth, soon())
        dill.hclose(s)


def test_proxy_auth_callback_exception_propagates() -> None:
    def auth(user: str, password: str) -> bool:
        raise LookupError(user)

    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x01\x02\x01\x01u\x01p")
        with pytest.raises(LookupError):
            dill.socks5_proxy_auth(s, auth, soon())
        dill.hclose(s)


@pytest.mark.parametrize(
    "recv", [dill.socks5_proxy_recvcommand, dill.socks5_proxy_recvcommandbyname]
)
@pytest.mark.parametrize(
    "wire",
    [
        b"\x05\x00\x00\x01" + bytes(6),  # command 0
        b"\x05\x04\x00\x01" + bytes(6),  # command 4
        b"\x04\x01\x00\x01" + bytes(6),  # version
        b"\x05\x01\x01\x01" + bytes(6),  # reserved byte
        b"\x05\x01\x00\x05" + bytes(6),  # address type
    ],
)
def test_proxy_recvcommand_eproto(recv: Callable[[int, int], Any], wire: bytes) -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(wire)
        with raises_errno(errno.EPROTO):
            recv(s, soon())
        dill.hclose(s)


def test_proxy_recvcommand_eaddrnotavail_for_a_name_without_address() -> None:
    with greendill_and_plain_socket() as (s, peer):
        peer.sendall(b"\x05\x01\x00\x03\x14no-such-host.invalid\x00\x50")
        with raises_errno(errno.EADDRNOTAVAIL):
            dill.socks5_proxy_recvcommand(s, soon())
        dill.hclose(s)


@pytest.mark.parametrize("call", PROXY_CALLS[:3])
def test_proxy_etimedout_epipe_ecanceled(call: Callable[[int, int], Any]) -> None:
    with greendill_and_plain_socket() as (s, _peer):
        with raises_errno(errno.ETIMEDOUT):
            call(s, dill.now() + 20)
        dill.hclose(s)
    with greendill_and_plain_socket() as (s, peer):
        peer.shutdown(socket.SHUT_WR)
        with raises_errno(errno.EPIPE):
            call(s, soon())
        dill.hclose(s)
    with greendill_and_plain_socket() as (s, _peer):
        co, out = spawn(call, s, -1)
        dill.yield_()
        dill.hclose(co)
        assert isinstance(out[0], dill.Canceled)
        dill.hclose(s)


def test_sendreply_econnreset_and_epipe() -> None:
    a, b = dill.ipc_pair()
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET):
        dill.socks5_proxy_sendreply(a, 0, dill.ipaddr(), soon())
    dill.hclose(a)
    a, b = dill.ipc_pair()
    dill.ipc_done(a)
    with raises_errno(errno.EPIPE):
        dill.socks5_proxy_sendreply(a, 0, dill.ipaddr(), soon())
    close_all(a, b)


# greendill on both ends ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "shown"),
    [("10.9.8.7", "10.9.8.7"), ("2001:db8::1", "2001:db8::1"), ("example.org", "example.org")],
)
@pytest.mark.parametrize("credentials", [(None, None), ("user", "secret")])
def test_greendill_client_and_proxy(host: str, shown: str, credentials: tuple[Any, Any]) -> None:
    client, proxy = dill.ipc_pair()

    def serve() -> tuple[int, str, int]:
        auth = None if credentials[0] is None else (lambda u, p: (u, p) == credentials)
        dill.socks5_proxy_auth(proxy, auth, soon())
        got = dill.socks5_proxy_recvcommandbyname(proxy, soon())
        dill.socks5_proxy_sendreply(proxy, dill.SOCKS5_SUCCESS, dill.ipaddr(), soon())
        dill.bsend(proxy, b"proxied", soon())
        return got

    co, out = spawn(serve)
    dill.socks5_client_connectbyname(client, *credentials, host, 4321, soon())
    assert dill.brecv(client, 7, soon()) == b"proxied"
    finish(co)
    assert out == [(dill.SOCKS5_CONNECT, shown, 4321)]
    close_all(client, proxy)


def test_greendill_client_refused_by_a_greendill_proxy() -> None:
    client, proxy = dill.ipc_pair()
    co, out = spawn(dill.socks5_proxy_auth, proxy, lambda u, p: False, soon())
    with raises_errno(errno.EACCES):
        dill.socks5_client_connect(client, "u", "p", dill.ipaddr(), soon())
    finish(co)
    assert isinstance(out[0], OSError)
    assert out[0].errno == errno.EACCES
    close_all(client, proxy)


@pytest.mark.parametrize("reply", range(1, 9))
def test_every_reply_reaches_a_greendill_client(reply: int) -> None:
    client, proxy = dill.ipc_pair()

    def serve() -> None:
        dill.socks5_proxy_auth(proxy, None, soon())
        dill.socks5_proxy_recvcommand(proxy, soon())
        dill.socks5_proxy_sendreply(proxy, reply, dill.ipaddr(), soon())

    co, _ = spawn(serve)
    with pytest.raises(OSError) as info:
        dill.socks5_client_connect(client, None, None, dill.ipaddr_remote("1.2.3.4", 5), soon())
    finish(co)
    expected = [
        errno.EIO,
        errno.EACCES,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.ECONNREFUSED,
        errno.ETIMEDOUT,
        errno.EOPNOTSUPP,
        errno.EAFNOSUPPORT,
    ]
    assert info.value.errno == expected[reply - 1]
    close_all(client, proxy)


# The real peer: curl through examples/socks5_proxy.py ------------------------------------


@contextmanager
def example_proxy(*args: str) -> Iterator[int]:
    """Run examples/socks5_proxy.py on an ephemeral loopback port; yield the port."""
    env = dict(os.environ)
    root = str(EXAMPLE.parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], SAFETY_MS / 1000)
        assert ready, "the proxy did not start in time"
        line = proc.stdout.readline().decode()
        assert line.startswith("listening on 127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        try:
            proc.wait(SAFETY_MS / 1000)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def run_curl(curl: str, tmp_path: Path, proxy_args: list[str], url: str) -> subprocess.Popen[bytes]:
    with (tmp_path / "err").open("wb") as stderr:
        return subprocess.Popen(
            [
                curl,
                "--silent",
                "--show-error",
                "--max-time",
                str(SAFETY_MS // 1000),
                "--output",
                str(tmp_path / "body"),
                *proxy_args,
                url,
            ],
            stdin=subprocess.DEVNULL,
            stderr=stderr,
        )


def serve_http(ls: int, body: bytes) -> tuple[str, str, dict[str, str]]:
    """Answer one request with body on a greendill HTTP socket."""
    h = dill.http_attach(dill.tcp_accept(ls, soon()))
    command, resource = dill.http_recvrequest(h, soon())
    fields = {}
    while True:
        try:
            name, value = dill.http_recvfield(h, soon())
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            break
        fields[name.lower()] = value
    dill.http_sendstatus(h, 200, "OK", soon())
    dill.http_sendfield(h, "Content-Length", str(len(body)), soon())
    dill.http_sendfield(h, "Connection", "close", soon())
    u = dill.http_detach(h, soon())
    dill.bsend(u, body, soon())
    dill.tcp_close(u, soon())
    return command, resource, fields


def wait_for_exit(proc: subprocess.Popen[bytes]) -> int:
    deadline = dill.now() + SAFETY_MS
    while proc.poll() is None:
        if dill.now() >= deadline:
            proc.kill()
            proc.wait()
            pytest.fail("curl did not end in time")
        dill.msleep(dill.now() + 5)
    return proc.returncode


@pytest.mark.parametrize(
    ("credentials", "form"),
    [(None, "--socks5-hostname"), ("user:secret", "--proxy socks5h://")],
)
def test_curl_through_the_example_proxy(
    curl: str, tmp_path: Path, credentials: Any, form: str
) -> None:
    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls = dill.tcp_listen(addr, 8)
    body = os.urandom(200_000)
    proxy_args = ["--user", "user", "--password", "secret"] if credentials else []
    try:
        with example_proxy(*proxy_args) as port:
            if form == "--socks5-hostname":
                args = ["--socks5-hostname", f"127.0.0.1:{port}"]
            else:
                args = ["--proxy", f"socks5h://{credentials}@127.0.0.1:{port}"]
            # "localhost" goes to the proxy as a name (ATYP 3); the proxy
            # resolves it and connects with happyeyeballs_connect.
            url = f"http://localhost:{dill.ipaddr_port(addr)}/via/proxy"
            proc = run_curl(curl, tmp_path, args, url)
            try:
                command, resource, fields = serve_http(ls, body)
            finally:
                assert wait_for_exit(proc) == 0, (tmp_path / "err").read_text()
    finally:
        dill.hclose(ls)
    assert (command, resource) == ("GET", "/via/proxy")
    assert fields["host"] == f"localhost:{dill.ipaddr_port(addr)}"
    assert (tmp_path / "body").read_bytes() == body


def test_curl_with_a_wrong_password_is_refused_by_the_example_proxy(
    curl: str, tmp_path: Path
) -> None:
    with example_proxy("--user", "user", "--password", "secret") as port:
        proc = run_curl(
            curl, tmp_path, ["--proxy", f"socks5h://user:wrong@127.0.0.1:{port}"], "http://x/"
        )
        assert wait_for_exit(proc) == 97  # curl: proxy handshake error
    assert b"rejected" in (tmp_path / "err").read_bytes()


def test_curl_to_a_closed_port_gets_connection_refused_from_the_example_proxy(
    curl: str, tmp_path: Path
) -> None:
    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls = dill.tcp_listen(addr, 1)
    port = dill.ipaddr_port(addr)
    dill.hclose(ls)  # nobody listens there now
    with example_proxy() as proxy_port:
        proc = run_curl(
            curl,
            tmp_path,
            ["--socks5-hostname", f"127.0.0.1:{proxy_port}"],
            f"http://localhost:{port}/",
        )
        assert wait_for_exit(proc) == 97
    assert b"(5)" in (tmp_path / "err").read_bytes()  # SOCKS5_CONNECTION_REFUSED
