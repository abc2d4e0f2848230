"""TLS: an encrypted byte stream over any byte stream (reference sections 0, 14, 15, 19).

The record codec first, then TLS between two greendill ends over IPC, TCP
and a user's byte stream that cannot take bytes back (the layer then reads
record by record), in TLS 1.2 and 1.3; then real peers: the standard
library's ssl sockets in threads, and openssl s_server / s_client
subprocesses, over TCP and IPC; then verification; then each errno in the
reference's order; then closing in order (tls_done, tls_detach, raw bytes
after close_notify); then stacks (prefix over TLS over TCP, TLS over TLS);
then hypothesis: arbitrary bytes where a handshake or a record should be
give a documented OSError, never a hang. Certificates come from trustme.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from helpers import (
    SAFETY_MS,
    byte_stream_pair,
    finish,
    greendill_and_plain_socket,
    in_canceled_coroutine,
    plain,
    raises_errno,
    randbytes,
    soon,
    spawn,
    tcp_pair,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greendill as dill
from greendill._tls import RECORD_HEADER, record_size
from greendill.testing import check_bsock

# Hypothesis runs examples in one function-scoped fixture's life: fine here,
# where the fixtures are certificates and the kind of stream.
FIXTURE = HealthCheck.function_scoped_fixture
# Seconds a peer thread or subprocess may take before the test fails.
PEER_TIMEOUT = 10


# Certificates and contexts --------------------------------------------------------


class PKI:
    """A private CA, a server certificate for localhost, and their files."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("localhost", "127.0.0.1", "::1")
        self.ca_file = str(directory / "ca.pem")
        self.cert_file = str(directory / "cert.pem")
        self.key_file = str(directory / "key.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.server.private_key_pem.write_to_path(self.key_file)
        Path(self.cert_file).write_bytes(b"".join(p.bytes() for p in self.server.cert_chain_pems))
        other = trustme.CA().issue_cert("localhost")
        self.other_key_file = str(directory / "other-key.pem")
        other.private_key_pem.write_to_path(self.other_key_file)

    def client_context(self, version: Optional[ssl.TLSVersion] = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.configure_cert(ctx)
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def openssl() -> str:
    """The path of the openssl command, a real peer (see conftest's socat)."""
    path = shutil.which("openssl")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("openssl is not installed (.ci/run installs it)")
        pytest.skip("openssl is not installed")
    return path


# Helpers ---------------------------------------------------------------------------


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


def verified_client(pki: PKI, s: int) -> int:
    """TLS as the client on s, verifying the server as localhost against the private CA."""
    return dill.tls_attach_client(
        s, soon(), server_hostname="localhost", context=pki.client_context()
    )


def attach_pair(
    pki: PKI, a: int, b: int, version: Optional[ssl.TLSVersion] = None
) -> tuple[int, int]:
    """TLS on two connected byte streams: (client over a, server over b)."""
    server, out = spawn(dill.tls_attach_server, b, pki.cert_file, pki.key_file, soon())
    try:
        client = dill.tls_attach_client(
            a, soon(), server_hostname="localhost", context=pki.client_context(version)
        )
    finally:
        finish(server)
    if isinstance(out[0], Exception):
        dill.hclose(client)
        raise out[0]
    return client, out[0]


@pytest.fixture(params=["ipc", "tcp", "plain"])
def kind(request: pytest.FixtureRequest) -> str:
    """The byte stream below: IPC, TCP, or a user's stream without bunrecv (over IPC)."""
    return str(request.param)


@pytest.fixture
def tls(pki: PKI, kind: str) -> tuple[int, int]:
    """Two connected TLS sockets (client, server); the test closes them."""
    return attach_pair(pki, *byte_stream_pair(kind))


class PeerThread(threading.Thread):
    """Runs fn in a thread; join_checked() re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.result: Any = None
        self.exc: Optional[BaseException] = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # re-raised by join_checked
            self.exc = exc

    def join_checked(self) -> Any:
        # Wait in greendill's way: the hub must keep serving this thread's
        # sockets while the peer finishes.
        deadline = dill.now() + SAFETY_MS
        while self.is_alive() and dill.now() < deadline:
            dill.msleep(dill.now() + 5)
        assert not self.is_alive(), "the peer thread did not finish"
        if self.exc is not None:
            raise self.exc
        return self.result


@contextmanager
def stdlib_peer(fn: Callable[[socket.socket], Any]) -> Iterator[tuple[int, PeerThread]]:
    """An IPC handle whose peer, a blocking stdlib socket, runs fn in a thread."""
    left, right = socket.socketpair()
    right.settimeout(PEER_TIMEOUT)

    def run() -> Any:
        with right:
            return fn(right)

    h = dill.ipc_fromfd(left.detach())
    thread = PeerThread(run)
    thread.start()
    try:
        yield h, thread
    finally:
        if thread.is_alive():
            thread.join_checked()


@contextmanager
def clogged_pair(pki: PKI) -> Iterator[tuple[int, int, Callable[[], None]]]:
    """TLS over an IPC pair, and a call that fills the client's send buffer with junk.

    The junk goes in through a dup of the client's fd (the fromfd calls dup
    and close the fd they are given), so that sends below TLS must wait.
    The test closes the two handles.
    """
    left, right = socket.socketpair()
    spare = socket.socket(fileno=os.dup(left.fileno()))
    spare.setblocking(False)

    def clog() -> None:
        size = 65536
        while size:
            try:
                spare.send(bytes(size))
            except BlockingIOError:
                size //= 2  # a smaller write may still fit

    try:
        a, b = dill.ipc_fromfd(left.detach()), dill.ipc_fromfd(right.detach())
        client, server = attach_pair(pki, a, b)
        yield client, server, clog
    finally:
        spare.close()


# The codec ---------------------------------------------------------------------------


@given(
    st.integers(20, 24),
    st.sampled_from([b"\x03\x01", b"\x03\x03", b"\x03\x04"]),
    st.integers(0, 65535),
)
def test_record_size_is_the_length_field(content_type: int, version: bytes, length: int) -> None:
    header = bytes([content_type]) + version + length.to_bytes(2, "big")
    assert len(header) == RECORD_HEADER
    assert record_size(header) == length
    assert record_size(header, first_server_record=True) == length


@given(st.integers(0, 0x7FFF), st.binary(min_size=2, max_size=2))
def test_record_size_of_an_sslv2_client_hello_counts_its_15_bit_length(
    length: int, rest: bytes
) -> None:
    header = bytes([0x80 | (length >> 8), length & 0xFF, 1]) + rest
    assert record_size(header, first_server_record=True) == max(0, length + 2 - RECORD_HEADER)
    # Anywhere else the same bytes are a TLS header.
    assert record_size(header) == int.from_bytes(rest, "big")


# Two greendill ends ----------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_bytes_cross_both_ways_in_order(pki: PKI, kind: str, version: ssl.TLSVersion) -> None:
    client, server = attach_pair(pki, *byte_stream_pair(kind), version)
    try:
        sizes = [0, 1, 100, 16384, 16385, 70000, 1 << 20]
        data = [randbytes(n, n) for n in sizes]
        sender, out = spawn(lambda: [dill.bsend(client, d, soon()) for d in data])
        for d in data:
            assert dill.brecv(server, len(d), soon()) == d
        finish(sender)
        assert not isinstance(out[0], Exception)
        dill.bsendl(server, [b"abc", b"", memoryview(b"defgh"), bytearray(b"!")], soon())
        assert dill.brecv(client, 9, soon()) == b"abcdefgh!"
    finally:
        close_all(client, server)


def test_brecvl_brecv_into_and_brecv_some(tls: tuple[int, int]) -> None:
    client, server = tls
    try:
        dill.bsend(client, b"0123456789abcdefghij", soon())
        head, tail = bytearray(3), bytearray(4)
        dill.brecvl(server, [head, 5, tail], soon())
        assert (head, tail) == (b"012", b"89ab")
        buffer = bytearray(2)
        assert dill.brecv_into(server, memoryview(buffer), soon()) == 2
        assert buffer == b"cd"
        iface = dill.hquery(server, dill.bsock_type)
        some = bytearray(100)
        n = iface.brecv_some(some, soon())
        assert 1 <= n <= 6
        assert some[:n] == b"efghij"[:n]
        assert iface.brecv_some(bytearray(0), soon()) == 0
    finally:
        close_all(client, server)


def test_mem_variants_and_storage_rules(pki: PKI) -> None:
    mem_c, mem_s = dill.tls_storage(), dill.tls_storage()
    a, b = dill.ipc_pair()
    server, out = spawn(dill.tls_attach_server_mem, b, pki.cert_file, pki.key_file, mem_s, soon())
    client = dill.tls_attach_client_mem(
        a, mem_c, soon(), server_hostname="localhost", context=pki.client_context()
    )
    finish(server)
    server_h = out[0]
    c, d = dill.ipc_pair()
    with raises_errno(errno.EBUSY):
        dill.tls_attach_client_mem(c, mem_c, soon(), verify=False)
    with raises_errno(errno.EBADF):
        dill.hclose(c)  # closed by the failed attach
    with raises_errno(errno.EBUSY):
        dill.tls_attach_server_mem(d, pki.cert_file, pki.key_file, mem_s, soon())
    with raises_errno(errno.EBADF):
        dill.hclose(d)
    e, f = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        dill.tls_attach_client_mem(e, None, soon(), verify=False)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.tls_attach_server_mem(f, pki.cert_file, pki.key_file, None, soon())  # type: ignore[arg-type]
    g, h = dill.ipc_pair()
    with pytest.raises(TypeError):
        dill.tls_attach_client_mem(g, dill.prefix_storage(), soon())  # type: ignore[arg-type]
    dill.hclose(h)
    dill.bsend(client, b"mem", soon())
    assert dill.brecv(server_h, 3, soon()) == b"mem"
    close_all(client, server_h)
    # Reusable once closed.
    a, b = dill.ipc_pair()
    server, out = spawn(
        lambda: dill.tls_attach_server_mem(
            b, None, None, mem_s, soon(), context=pki.server_context()
        )
    )
    client = dill.tls_attach_client_mem(
        a, mem_c, soon(), server_hostname="localhost", context=pki.client_context()
    )
    finish(server)
    close_all(client, out[0])


# Real peers: the standard library's ssl ------------------------------------------


def test_stdlib_ssl_server_in_a_thread(pki: PKI) -> None:
    def serve(sock: socket.socket) -> bytes:
        with pki.server_context().wrap_socket(sock, server_side=True) as tls:
            got = b""
            while not got.endswith(b"\n"):
                got += tls.recv(100)
            tls.sendall(got.upper())
            assert tls.recv(100) == b""  # our close_notify
            tls.unwrap()  # answers it
            return got

    with stdlib_peer(serve) as (h, thread):
        s = verified_client(pki, h)
        dill.bsend(s, b"hello, stdlib\n", soon())
        assert dill.brecv(s, 14, soon()) == b"HELLO, STDLIB\n"
        u = dill.tls_detach(s, soon())
        assert thread.join_checked() == b"hello, stdlib\n"
        with raises_errno(errno.EPIPE):
            dill.brecv(u, 1, soon())
        dill.hclose(u)


def test_stdlib_ssl_client_over_tcp_verifies_greendill(pki: PKI) -> None:
    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls = dill.tcp_listen(addr, 1)
    port = dill.ipaddr_port(addr)

    def client() -> bytes:
        ctx = pki.client_context()
        raw = socket.create_connection(("127.0.0.1", port), timeout=PEER_TIMEOUT)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"ping")
            got = b""
            while len(got) < 4:
                got += tls.recv(4 - len(got))
            assert tls.recv(10) == b""  # greendill's close_notify
            return got

    thread = PeerThread(client)
    thread.start()
    try:
        conn = dill.tcp_accept(ls, soon())
        s = dill.tls_attach_server(conn, pki.cert_file, pki.key_file, soon())
        assert dill.brecv(s, 4, soon()) == b"ping"
        dill.bsend(s, b"pong", soon())
        dill.tls_done(s, soon())
        assert thread.join_checked() == b"pong"
        dill.hclose(s)
    finally:
        dill.hclose(ls)


def test_detach_then_raw_bytes_with_a_stdlib_peer(pki: PKI) -> None:
    # The peer answers close_notify with its own and the raw bytes at once:
    # they may come in one read, and must still come out of the stream below.
    def serve(sock: socket.socket) -> bytes:
        tls = pki.server_context().wrap_socket(sock, server_side=True)
        tls.sendall(b"encrypted")
        raw = tls.unwrap()
        raw.sendall(b"raw after close_notify")
        got = b""
        while len(got) < 11:
            got += raw.recv(100)
        return got

    with stdlib_peer(serve) as (h, thread):
        s = verified_client(pki, h)
        assert dill.brecv(s, 9, soon()) == b"encrypted"
        u = dill.tls_detach(s, soon())
        assert dill.brecv(u, 22, soon()) == b"raw after close_notify"
        dill.bsend(u, b"raw answer!", soon())
        assert thread.join_checked() == b"raw answer!"
        dill.hclose(u)


# Real peers: openssl s_server and s_client -------------------------------------------


@contextmanager
def s_server(openssl: str, pki: PKI, accept: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    """openssl s_server -rev (answers each line reversed), for one connection."""
    proc = subprocess.Popen(
        [
            *(openssl, "s_server", *accept, "-cert", pki.cert_file, "-key", pki.key_file),
            *("-naccept", "1", "-rev"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            proc.kill()
        proc.wait(PEER_TIMEOUT)
        assert proc.stdout is not None
        proc.stdout.close()


def accept_line(proc: subprocess.Popen[bytes]) -> str:
    """Read s_server's output up to its ACCEPT line; return the address ("" for -unix)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(b"ACCEPT"):
            return line[len(b"ACCEPT") :].strip().decode()
    raise AssertionError("s_server ended without accepting")


def test_openssl_s_server_over_tcp(openssl: str, pki: PKI) -> None:
    with s_server(openssl, pki, ["-accept", "127.0.0.1:0"]) as proc:
        port = int(accept_line(proc).rsplit(":", 1)[1])
        conn = dill.tcp_connect(dill.ipaddr_remote("127.0.0.1", port), soon())
        s = verified_client(pki, conn)
        dill.bsend(s, b"hello, openssl\n", soon())
        assert dill.brecv(s, 15, soon()) == b"lssnepo ,olleh\n"
        dill.hclose(s)


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory with a short path: s_server fails to name a long AF_UNIX one."""
    path = tempfile.mkdtemp(prefix="gd")
    try:
        yield path
    finally:
        shutil.rmtree(path)


def test_openssl_s_server_over_ipc(openssl: str, pki: PKI, short_dir: str) -> None:
    path = os.path.join(short_dir, "s")
    with s_server(openssl, pki, ["-unix", path]) as proc:
        accept_line(proc)
        conn = dill.ipc_connect(path, soon())
        s = verified_client(pki, conn)
        for line in (b"over IPC\n", b"twice\n"):
            dill.bsend(s, line, soon())
            assert dill.brecv(s, len(line), soon()) == line[-2::-1] + b"\n"
        dill.hclose(s)


def test_openssl_s_client_against_greendill_server(openssl: str, pki: PKI) -> None:
    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls = dill.tcp_listen(addr, 1)
    proc = subprocess.Popen(
        [
            *(openssl, "s_client", "-connect", f"127.0.0.1:{dill.ipaddr_port(addr)}"),
            *("-CAfile", pki.ca_file, "-verify_return_error", "-servername", "localhost"),
            *("-verify_hostname", "localhost", "-quiet"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        conn = dill.tcp_accept(ls, soon())
        s = dill.tls_attach_server(conn, pki.cert_file, pki.key_file, soon())
        assert proc.stdin is not None
        proc.stdin.write(b"ping from s_client\n")
        proc.stdin.flush()
        assert dill.brecv(s, 19, soon()) == b"ping from s_client\n"
        dill.bsend(s, b"pong from greendill\n", soon())
        # Our close_notify ends s_client, which answers it with its own.
        u = dill.tls_detach(s, soon())
        out, err = proc.communicate(timeout=PEER_TIMEOUT)
        assert out == b"pong from greendill\n", err
        assert proc.returncode == 0, err
        dill.hclose(u)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=PEER_TIMEOUT)
        dill.hclose(ls)


# Verification ----------------------------------------------------------------------


def test_default_client_verifies_against_the_system_cas(pki: PKI) -> None:
    # The private CA is not among the system's: the handshake fails, EPROTO,
    # with ssl's verdict as the cause.
    a, b = dill.ipc_pair()
    server, out = spawn(dill.tls_attach_server, b, pki.cert_file, pki.key_file, soon())
    with raises_errno(errno.EPROTO) as info:
        dill.tls_attach_client(a, soon(), server_hostname="localhost")
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    assert "certificate verify failed" in str(info.value)
    finish(server)
    assert isinstance(out[0], OSError)
    assert out[0].errno in (errno.EPROTO, errno.ECONNRESET)
    with raises_errno(errno.EBADF):
        dill.hclose(a)


def test_a_name_the_certificate_does_not_have_is_eproto(pki: PKI) -> None:
    a, b = dill.ipc_pair()
    server, out = spawn(dill.tls_attach_server, b, pki.cert_file, pki.key_file, soon())
    with raises_errno(errno.EPROTO) as info:
        dill.tls_attach_client(
            a, soon(), server_hostname="example.org", context=pki.client_context()
        )
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
    finish(server)
    assert isinstance(out[0], OSError)


def test_verify_false_is_unverified_tls_by_name(pki: PKI) -> None:
    a, b = dill.ipc_pair()
    server, out = spawn(dill.tls_attach_server, b, pki.cert_file, pki.key_file, soon())
    client = dill.tls_attach_client(a, soon(), verify=False)
    finish(server)
    dill.bsend(client, b"unverified but encrypted", soon())
    assert dill.brecv(out[0], 24, soon()) == b"unverified but encrypted"
    close_all(client, out[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # names are checked, and there is no name
        {"server_hostname": ""},
        {"verify": False, "context": "client"},  # two answers to one question
        {"server_hostname": "localhost", "context": "server"},  # a server-only context
    ],
)
def test_attach_client_einval_closes_the_socket(pki: PKI, kwargs: dict[str, Any]) -> None:
    if kwargs.get("context") == "client":
        kwargs = {**kwargs, "context": pki.client_context()}
    elif kwargs.get("context") == "server":
        kwargs = {**kwargs, "context": ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)}
    a, b = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        dill.tls_attach_client(a, soon(), **kwargs)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, soon())
    dill.hclose(b)


def test_a_context_that_checks_no_names_needs_none(pki: PKI) -> None:
    ctx = pki.client_context()
    ctx.check_hostname = False  # the chain is still verified
    client, server = attach_pair_with(pki, ctx)
    close_all(client, server)


def attach_pair_with(pki: PKI, ctx: ssl.SSLContext) -> tuple[int, int]:
    a, b = dill.ipc_pair()
    server, out = spawn(dill.tls_attach_server, b, pki.cert_file, pki.key_file, soon())
    client = dill.tls_attach_client(a, soon(), context=ctx)
    finish(server)
    return client, out[0]


def test_a_context_that_is_no_context_is_typeerror(pki: PKI) -> None:
    a, b = dill.ipc_pair()
    with pytest.raises(TypeError):
        dill.tls_attach_client(a, soon(), context="default")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.tls_attach_server(b, None, None, soon(), context=object())  # type: ignore[arg-type]
    for h in (a, b):
        with raises_errno(errno.EBADF):
            dill.hclose(h)


def test_client_certificates_through_a_server_context(pki: PKI) -> None:
    # What a context can ask for: the server requires a client certificate.
    client_cert = pki.ca.issue_cert("client@example.org")
    sctx = pki.server_context()
    sctx.verify_mode = ssl.CERT_REQUIRED
    pki.ca.configure_trust(sctx)
    cctx = pki.client_context()
    client_cert.configure_cert(cctx)
    a, b = dill.ipc_pair()
    server, out = spawn(lambda: dill.tls_attach_server(b, None, None, soon(), context=sctx))
    client = dill.tls_attach_client(a, soon(), server_hostname="localhost", context=cctx)
    finish(server)
    dill.bsend(client, b"with a certificate", soon())
    assert dill.brecv(out[0], 18, soon()) == b"with a certificate"
    close_all(client, out[0])
    # Without one, the server fails the handshake (EPROTO); the client, done
    # before the server's verdict in TLS 1.3, reads the alert: ECONNRESET.
    a, b = dill.ipc_pair()
    server, out = spawn(lambda: dill.tls_attach_server(b, None, None, soon(), context=sctx))
    client = verified_client(pki, a)
    finish(server)
    assert isinstance(out[0], OSError) and out[0].errno == errno.EPROTO
    with raises_errno(errno.ECONNRESET):
        dill.brecv(client, 1, soon())
    dill.hclose(client)


# tls_attach_client / tls_attach_server errors, in the reference's order ----------------


@pytest.fixture(params=["plain", "mem"])
def variant(request: pytest.FixtureRequest) -> str:
    """Which attach calls an errors test makes: tls_attach_client/server, or their _mem variants."""
    return str(request.param)


@pytest.fixture
def attach_client(variant: str) -> Iterator[Callable[..., int]]:
    """tls_attach_client, or tls_attach_client_mem taking the same arguments.

    The _mem variant uses one storage for the whole test, and every attach
    of these tests fails: each must leave the storage free (not EBUSY) for
    the next, and for a last attach after the test.
    """
    if variant == "plain":
        yield dill.tls_attach_client
        return
    mem = dill.tls_storage()
    yield lambda s, *args, **kwargs: dill.tls_attach_client_mem(s, mem, *args, **kwargs)
    with raises_errno(errno.EBADF):
        dill.tls_attach_client_mem(12345, mem, verify=False)


@pytest.fixture
def attach_server(variant: str, pki: PKI) -> Iterator[Callable[..., int]]:
    """tls_attach_server, or tls_attach_server_mem taking the same arguments (as attach_client)."""
    if variant == "plain":
        yield dill.tls_attach_server
        return
    mem = dill.tls_storage()
    yield lambda s, cert, key, *args, **kwargs: dill.tls_attach_server_mem(
        s, cert, key, mem, *args, **kwargs
    )
    with raises_errno(errno.EBADF):
        dill.tls_attach_server_mem(12345, pki.cert_file, pki.key_file, mem)


def test_attach_ebadf_for_a_number_that_is_no_handle(
    pki: PKI, attach_client: Callable[..., int], attach_server: Callable[..., int]
) -> None:
    with raises_errno(errno.EBADF):
        attach_client(12345, soon(), verify=False)
    with raises_errno(errno.EBADF):
        attach_server(12345, pki.cert_file, pki.key_file, soon())


def test_attach_ecanceled_in_a_canceled_coroutine_closes_the_socket(
    pki: PKI, attach_client: Callable[..., int], attach_server: Callable[..., int]
) -> None:
    a, b = dill.ipc_pair()
    result = in_canceled_coroutine(lambda: attach_client(a, soon(), verify=False))
    assert isinstance(result, dill.Canceled)
    result = in_canceled_coroutine(lambda: attach_server(b, pki.cert_file, pki.key_file, soon()))
    assert isinstance(result, dill.Canceled)
    for h in (a, b):
        with raises_errno(errno.EBADF):
            dill.hclose(h)


def test_attach_ecanceled_while_the_handshake_waits(
    pki: PKI, attach_client: Callable[..., int], attach_server: Callable[..., int]
) -> None:
    a, b = dill.ipc_pair()
    h, out = spawn(lambda: attach_client(a, -1, verify=False))
    dill.yield_()
    dill.hclose(h)
    assert isinstance(out[0], dill.Canceled)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    # The client's hello had gone: the server sees the end of the stream.
    with raises_errno(errno.ECONNRESET):
        attach_server(b, pki.cert_file, pki.key_file, soon())


def test_attach_econnreset_when_the_peer_leaves_during_the_handshake(
    pki: PKI, attach_client: Callable[..., int], attach_server: Callable[..., int]
) -> None:
    def leave_after_the_hello(sock: socket.socket) -> bytes:
        return sock.recv(5)  # then the socket closes

    with stdlib_peer(leave_after_the_hello) as (h, thread):
        with raises_errno(errno.ECONNRESET):
            attach_client(h, soon(), verify=False)
        assert thread.join_checked()[:1] == b"\x16"  # a handshake record
    with stdlib_peer(lambda sock: sock.shutdown(socket.SHUT_WR)) as (h, thread):
        with raises_errno(errno.ECONNRESET):
            attach_server(h, pki.cert_file, pki.key_file, soon())
        thread.join_checked()


def test_attach_eproto_when_underlying_is_not_a_byte_stream(
    pki: PKI, attach_client: Callable[..., int], attach_server: Callable[..., int]
) -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.EPROTO):
        attach_client(p, soon(), verify=False)
    with raises_errno(errno.EBADF):
        dill.hclose(p)
    ch = dill.chmake()
    with raises_errno(errno.EPROTO):
        attach_server(ch[0], pki.cert_file, pki.key_file, soon())
    with raises_errno(errno.EBADF):
        dill.hclose(ch[0])
    close_all(ch[1], b)


@pytest.mark.parametrize("server_side", [False, True])
def test_attach_eproto_when_the_peer_does_not_speak_tls(
    pki: PKI,
    server_side: bool,
    attach_client: Callable[..., int],
    attach_server: Callable[..., int],
) -> None:
    def http(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        with suppress(OSError):
            sock.recv(1000)

    with stdlib_peer(http) as (h, thread):
        with raises_errno(errno.EPROTO) as info:
            if server_side:
                attach_server(h, pki.cert_file, pki.key_file, soon())
            else:
                attach_client(h, soon(), verify=False)
        assert isinstance(info.value.__cause__, ssl.SSLError)
        thread.join_checked()


def test_attach_etimedout_when_the_peer_is_silent(
    pki: PKI, attach_client: Callable[..., int], attach_server: Callable[..., int]
) -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.ETIMEDOUT):
        attach_client(a, dill.now() + 50, verify=False)
    dill.hclose(b)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ETIMEDOUT):
        attach_server(b, pki.cert_file, pki.key_file, dill.now() + 50)
    dill.hclose(a)


def test_attach_server_einval_for_certificates_it_cannot_use(pki: PKI, tmp_path: Path) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    # An encrypted key: OpenSSL would ask for its password on the terminal.
    locked = tmp_path / "locked.pem"
    key = serialization.load_pem_private_key(Path(pki.key_file).read_bytes(), None)
    locked.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases: list[tuple[Any, Any, Any]] = [
        (None, pki.key_file, None),
        (pki.cert_file, None, None),
        (str(tmp_path / "missing.pem"), pki.key_file, None),
        (pki.cert_file, str(tmp_path / "missing.pem"), None),
        (str(not_pem), pki.key_file, None),
        (pki.cert_file, pki.other_key_file, None),  # a key of another certificate
        (pki.cert_file, str(locked), None),
        (pki.cert_file, pki.key_file, pki.server_context()),  # both ways at once
        (None, None, ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)),  # a client-only context
    ]
    for cert, key, ctx in cases:
        a, b = dill.ipc_pair()
        with raises_errno(errno.EINVAL):
            dill.tls_attach_server(a, cert, key, soon(), context=ctx)
        with raises_errno(errno.EBADF):
            dill.hclose(a)
        dill.hclose(b)


def test_attach_server_takes_path_objects_and_reloads_a_changed_file(
    pki: PKI, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(pki.cert_file, cert)
    shutil.copy(pki.other_key_file, key)
    a, b = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        dill.tls_attach_server(a, cert, key, soon())
    dill.hclose(b)
    shutil.copy(pki.key_file, key)  # the right key now
    a, b = dill.ipc_pair()
    server, out = spawn(dill.tls_attach_server, b, cert, key, soon())
    client = verified_client(pki, a)
    finish(server)
    close_all(client, out[0])


# The byte-stream calls on a TLS socket ----------------------------------------------


def test_concurrent_calls_get_ebusy_without_latching(tls: tuple[int, int]) -> None:
    client, server = tls
    try:
        h, out = spawn(dill.brecv, server, 5)
        dill.yield_()
        with raises_errno(errno.EBUSY):
            dill.brecv(server, 5, soon())
        with raises_errno(errno.EBUSY):
            dill.tls_detach(server, soon())
        dill.bsend(client, b"first", soon())
        finish(h)
        assert out == [b"first"]
        dill.bsend(client, b"again", soon())
        assert dill.brecv(server, 5, soon()) == b"again"
    finally:
        close_all(client, server)


def test_bsend_ebusy_and_tls_done_ebusy_while_a_send_waits(pki: PKI) -> None:
    with clogged_pair(pki) as (client, server, clog):
        clog()
        h, out = spawn(dill.bsend, client, b"waits for room")
        dill.yield_()
        with raises_errno(errno.EBUSY):
            dill.bsend(client, b"x", soon())
        with raises_errno(errno.EBUSY):
            dill.tls_done(client, soon())
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)
        close_all(client, server)


def test_epipe_after_tls_done_and_after_the_peers_close_notify(tls: tuple[int, int]) -> None:
    client, server = tls
    try:
        dill.bsend(client, b"last words", soon())
        dill.tls_done(client, soon())
        with raises_errno(errno.EPIPE):
            dill.bsend(client, b"more", soon())
        with raises_errno(errno.EPIPE):
            dill.tls_done(client, soon())
        assert dill.brecv(server, 10, soon()) == b"last words"
        for _ in range(2):  # sticky
            with raises_errno(errno.EPIPE):
                dill.brecv(server, 1, soon())
        # The other direction goes on (TLS 1.3 half-close).
        dill.bsend(server, b"answer", soon())
        assert dill.brecv(client, 6, soon()) == b"answer"
    finally:
        close_all(client, server)


def test_tls_done_with_unread_data_loses_none_of_it(tls: tuple[int, int]) -> None:
    # ssl's unwrap fails for good if it finds application data while it
    # sends close_notify; what the peer sent before must stay readable.
    client, server = tls
    try:
        dill.bsend(client, b"x" * 100, soon())
        dill.bsend(client, b"y" * 50, soon())
        assert dill.brecv(server, 10, soon()) == b"x" * 10
        dill.tls_done(server, soon())
        assert dill.brecv(server, 140, soon()) == b"x" * 90 + b"y" * 50
        with raises_errno(errno.EPIPE):
            dill.brecv(client, 1, soon())
        dill.bsend(client, b"after", soon())
        assert dill.brecv(server, 5, soon()) == b"after"
    finally:
        close_all(client, server)


def test_econnreset_when_the_peer_leaves_without_close_notify(pki: PKI) -> None:
    def leave(sock: socket.socket) -> None:
        tls = pki.server_context().wrap_socket(sock, server_side=True)
        tls.sendall(b"cut")
        os.close(tls.detach())  # the socket closes with no close_notify

    with stdlib_peer(leave) as (h, thread):
        s = verified_client(pki, h)
        thread.join_checked()
        assert dill.brecv(s, 3, soon()) == b"cut"
        with raises_errno(errno.ECONNRESET) as info:
            dill.brecv(s, 1, soon())
        assert "close_notify" in str(info.value)
        with raises_errno(errno.ECONNRESET):  # latched
            dill.brecv(s, 1, soon())
        with raises_errno(errno.ECONNRESET):
            dill.tls_detach(s, soon())
        with raises_errno(errno.EBADF):
            dill.hclose(s)


def test_econnreset_for_a_forged_record(pki: PKI) -> None:
    def forge(sock: socket.socket) -> None:
        tls = pki.server_context().wrap_socket(sock, server_side=True)
        tls.sendall(b"genuine")
        # An application-data record that fails its MAC.
        os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + bytes(32))
        with suppress(OSError):
            tls.recv(100)  # the alert
        tls.close()

    with stdlib_peer(forge) as (h, thread):
        s = verified_client(pki, h)
        assert dill.brecv(s, 7, soon()) == b"genuine"
        with raises_errno(errno.ECONNRESET) as info:
            dill.brecv(s, 1, soon())
        assert isinstance(info.value.__cause__, ssl.SSLError)
        thread.join_checked()
        dill.hclose(s)


def test_brecv_etimedout_latches_receiving_not_sending(tls: tuple[int, int]) -> None:
    client, server = tls
    try:
        with raises_errno(errno.ETIMEDOUT):
            dill.brecv(server, 1, dill.now() + 20)
        dill.bsend(client, b"late", soon())
        with raises_errno(errno.ECONNRESET):
            dill.brecv(server, 4, soon())
        dill.bsend(server, b"still sends", soon())
        assert dill.brecv(client, 11, soon()) == b"still sends"
    finally:
        close_all(client, server)


def test_deadline_zero_succeeds_when_the_bytes_are_there(tls: tuple[int, int]) -> None:
    client, server = tls
    try:
        dill.bsend(client, b"ready", soon())
        dill.msleep(dill.now() + 10)
        assert dill.brecv(server, 5, 0) == b"ready"
    finally:
        close_all(client, server)


def test_brecv_ecanceled_when_the_coroutine_is_closed(tls: tuple[int, int]) -> None:
    client, server = tls
    try:
        h, out = spawn(dill.brecv, server, 10)
        dill.yield_()
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.ECONNRESET):
            dill.brecv(server, 10, 0)
    finally:
        close_all(client, server)


def test_bsend_failure_latches_the_sending_side(pki: PKI) -> None:
    a, b = dill.ipc_pair()
    client, server = attach_pair(pki, a, b)
    dill.hclose(server)
    with raises_errno(errno.ECONNRESET):
        dill.bsend(client, bytes(1 << 20), soon())
    with raises_errno(errno.ECONNRESET):
        dill.bsend(client, b"again", soon())
    with raises_errno(errno.ECONNRESET):
        dill.tls_done(client, soon())
    dill.hclose(client)


def test_generic_calls_on_a_tls_socket(tls: tuple[int, int]) -> None:
    client, server = tls
    try:
        with raises_errno(errno.ENOTSUP):
            dill.msend(client, b"a TLS socket is not a message socket")
        with raises_errno(errno.EINVAL):
            dill.brecv(server, -1, soon())
        with raises_errno(errno.EINVAL):
            dill.bsendl(client, [])
        with raises_errno(errno.EINVAL):
            dill.brecvl(server, [bytearray(2), -1], soon())
        with raises_errno(errno.EINVAL):
            dill.brecv_into(server, b"read-only", soon())
        dill.bsend(client, b"", soon())  # nothing to send is no error
    finally:
        close_all(client, server)


# tls_done and tls_detach errors -------------------------------------------------------


def test_done_and_detach_ebadf_and_enotsup() -> None:
    for call in (dill.tls_done, dill.tls_detach):
        with raises_errno(errno.EBADF):
            call(12345, soon())
        a, b = dill.ipc_pair()
        with raises_errno(errno.ENOTSUP):
            call(a, soon())
        close_all(a, b)


def test_done_etimedout_and_ecanceled_when_close_notify_cannot_go(pki: PKI) -> None:
    with clogged_pair(pki) as (client, server, clog):
        clog()
        with raises_errno(errno.ETIMEDOUT):
            dill.tls_done(client, dill.now() + 20)
        with raises_errno(errno.ECONNRESET):  # the sending side broke
            dill.tls_done(client, soon())
        close_all(client, server)
    with clogged_pair(pki) as (client, server, clog):
        clog()
        h, out = spawn(dill.tls_done, client)
        dill.yield_()
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)
        close_all(client, server)


def test_detach_etimedout_while_the_peers_close_notify_is_awaited(tls: tuple[int, int]) -> None:
    client, server = tls
    with raises_errno(errno.ETIMEDOUT):
        dill.tls_detach(client, dill.now() + 20)
    with raises_errno(errno.EBADF):
        dill.hclose(client)  # closed by the failed detach
    dill.hclose(server)


def test_detach_ecanceled_while_the_peers_close_notify_is_awaited(tls: tuple[int, int]) -> None:
    client, server = tls
    h, out = spawn(dill.tls_detach, server)
    dill.yield_()
    dill.hclose(h)
    assert isinstance(out[0], dill.Canceled)
    with raises_errno(errno.EBADF):
        dill.hclose(server)
    dill.hclose(client)


def test_detach_econnreset_after_an_error_and_closes_the_stack(tls: tuple[int, int]) -> None:
    client, server = tls
    with raises_errno(errno.ETIMEDOUT):
        dill.brecv(server, 1, 0)
    with raises_errno(errno.ECONNRESET):
        dill.tls_detach(server, soon())
    with raises_errno(errno.EBADF):
        dill.hclose(server)
    dill.hclose(client)


def test_detach_drops_data_until_close_notify_and_the_handle_is_gone(
    tls: tuple[int, int],
) -> None:
    client, server = tls
    dill.bsend(server, b"never read", soon())
    dill.bsend(client, b"read in part", soon())
    assert dill.brecv(server, 4, soon()) == b"read"
    peer, out = spawn(dill.tls_detach, server, soon())
    u = dill.tls_detach(client, soon())
    finish(peer)
    v = out[0]
    for h in (client, server):
        with raises_errno(errno.EBADF):
            dill.bsend(h, b"x")
    dill.bsend(u, b"plain", soon())
    assert dill.brecv(v, 5, soon()) == b"plain"
    close_all(u, v)


# Raw bytes after TLS, stacks ---------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=[FIXTURE])
@given(
    tls_bytes=st.binary(max_size=40000),
    raw=st.binary(min_size=1, max_size=40000),
    client_first=st.booleans(),
    version=st.sampled_from([ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]),
)
def test_tls_then_detach_then_raw_bytes_lose_nothing(
    pki: PKI, kind: str, tls_bytes: bytes, raw: bytes, client_first: bool, version: Any
) -> None:
    # Each side detaches and sends raw bytes at once: they may arrive with
    # the close_notify, in one read, and must come out of the stream below.
    client, server = attach_pair(pki, *byte_stream_pair(kind), version)

    def side(s: int, send: bytes, expect: bytes) -> bytes:
        dill.bsend(s, send, soon())
        got = dill.brecv(s, len(expect), soon())
        u = dill.tls_detach(s, soon())
        dill.bsend(u, raw, soon())
        got_raw = dill.brecv(u, len(raw), soon())
        dill.hclose(u)
        return got + got_raw

    first, second = (client, server) if client_first else (server, client)
    h, out = spawn(side, first, tls_bytes, tls_bytes[::-1])
    assert side(second, tls_bytes[::-1], tls_bytes) == tls_bytes + raw
    finish(h)
    assert out == [tls_bytes[::-1] + raw]


def test_prefix_over_tls_over_tcp_and_apart_in_order(pki: PKI) -> None:
    client, server = attach_pair(pki, *tcp_pair())
    a, b = dill.prefix_attach(client, 4), dill.prefix_attach(server, 4)
    messages = [randbytes(n, n) for n in (0, 5, 300, 20000, 100000)]
    sender, _ = spawn(lambda: [dill.msend(a, m, soon()) for m in messages])
    assert [dill.mrecv(b, 1 << 20, soon()) for _ in messages] == messages
    finish(sender)
    # Messages and raw TLS bytes in one go: prefix reads ahead over TLS,
    # and gives back what it read past its last message.
    dill.msend(a, b"framed")
    tls_a = dill.prefix_detach(a)
    dill.bsend(tls_a, b"then plaintext in TLS")
    assert dill.mrecv(b, 100, soon()) == b"framed"
    tls_b = dill.prefix_detach(b)
    assert dill.brecv(tls_b, 21, soon()) == b"then plaintext in TLS"
    peer, out = spawn(dill.tls_detach, tls_a, soon())
    raw_b = dill.tls_detach(tls_b, soon())
    finish(peer)
    dill.bsend(out[0], b"raw TCP")
    assert dill.brecv(raw_b, 7, soon()) == b"raw TCP"
    close_all(out[0], raw_b)


def test_tls_over_tls_over_ipc(pki: PKI) -> None:
    outer_c, outer_s = attach_pair(pki, *dill.ipc_pair())
    inner_c, inner_s = attach_pair(pki, outer_c, outer_s, ssl.TLSVersion.TLSv1_2)
    try:
        data = randbytes(200_000, 7)
        sender, _ = spawn(dill.bsend, inner_c, data, soon())
        assert dill.brecv(inner_s, len(data), soon()) == data
        finish(sender)
    finally:
        close_all(inner_c, inner_s)


# Hypothesis: what is not TLS -----------------------------------------------------------


FUZZ_ERRNOS = (errno.EPROTO, errno.ECONNRESET)


@settings(max_examples=60, deadline=None, suppress_health_check=[FIXTURE])
@given(junk=st.binary(max_size=3000), server_side=st.booleans(), readahead=st.booleans())
def test_arbitrary_bytes_instead_of_a_handshake_are_a_documented_oserror(
    pki: PKI, junk: bytes, server_side: bool, readahead: bool
) -> None:
    with greendill_and_plain_socket() as (h, peer):
        below = h if readahead else plain(h)
        peer.sendall(junk)
        peer.shutdown(socket.SHUT_WR)
        with pytest.raises(OSError) as info:
            if server_side:
                s = dill.tls_attach_server(below, pki.cert_file, pki.key_file, soon())
            else:
                s = dill.tls_attach_client(below, soon(), verify=False)
            dill.hclose(s)
        assert info.value.errno in FUZZ_ERRNOS, info.value


@settings(max_examples=30, deadline=None, suppress_health_check=[FIXTURE])
@given(junk=st.binary(min_size=1, max_size=3000))
def test_arbitrary_bytes_instead_of_a_record_are_a_documented_oserror(
    pki: PKI, junk: bytes
) -> None:
    def serve(sock: socket.socket) -> None:
        tls = pki.server_context().wrap_socket(sock, server_side=True)
        os.write(tls.fileno(), junk)
        tls.shutdown(socket.SHUT_WR)  # no close_notify
        with suppress(OSError):
            tls.recv(100)
        tls.close()

    with stdlib_peer(serve) as (h, thread):
        s = verified_client(pki, h)
        with pytest.raises(OSError) as info:
            dill.brecv(s, 1 << 16, soon())
        assert info.value.errno in FUZZ_ERRNOS, info.value
        dill.hclose(s)
        thread.join_checked()


# DTLS: declared by libdill, implemented by none ------------------------------------------


def test_dtls_calls_are_enotsup_and_attach_closes_the_socket(pki: PKI) -> None:
    attaches: list[Callable[[int], Any]] = [
        lambda s: dill.dtls_attach_client(s, soon()),
        lambda s: dill.dtls_attach_client_mem(s, dill.dtls_storage(), soon()),
        lambda s: dill.dtls_attach_server(s, pki.cert_file, pki.key_file, soon()),
        lambda s: dill.dtls_attach_server_mem(
            s, pki.cert_file, pki.key_file, dill.dtls_storage(), soon()
        ),
    ]
    for attach in attaches:
        a, b = dill.ipc_pair()
        with raises_errno(errno.ENOTSUP):
            attach(a)
        with raises_errno(errno.EBADF):
            dill.hclose(a)
        dill.hclose(b)
    a, b = dill.ipc_pair()
    for call in (dill.dtls_done, dill.dtls_detach):
        with raises_errno(errno.ENOTSUP):
            call(a, soon())
        with raises_errno(errno.EBADF):
            call(12345, soon())
    close_all(a, b)


def test_websocket_over_tls_over_tcp_and_apart_in_order(pki: PKI) -> None:
    # The issue's stack: WebSocket over TLS over TCP, both ends greendill's,
    # the client verifying the server; then each layer taken off in turn.
    a, b = tcp_pair()

    def client_side() -> int:
        return dill.ws_attach_client(verified_client(pki, a), 0, "/chat", "localhost", soon())

    h, out = spawn(client_side)
    server_tls = dill.tls_attach_server(b, pki.cert_file, pki.key_file, soon())
    server, resource, host = dill.ws_attach_server(server_tls, 0, soon())
    finish(h)
    client = out[0]
    assert isinstance(client, int), client
    assert (resource, host) == ("/chat", "localhost")
    messages = [randbytes(n, n) for n in (0, 1, 126, 70000)]
    for m in messages:
        dill.msend(client, m)
        assert dill.mrecv(server, 1 << 20, soon()) == m
        dill.msend(server, m[::-1])
        assert dill.mrecv(client, 1 << 20, soon()) == m[::-1]
    h, out = spawn(dill.ws_detach, server, 1000, b"bye", soon())
    client_tls = dill.ws_detach(client, 1000, b"bye", soon())
    finish(h)
    server_tls = out[0]
    assert isinstance(server_tls, int), server_tls
    dill.bsend(client_tls, b"raw TLS after the WebSocket")
    assert dill.brecv(server_tls, 27, soon()) == b"raw TLS after the WebSocket"
    h, out = spawn(dill.tls_detach, server_tls, soon())
    client_tcp = dill.tls_detach(client_tls, soon())
    finish(h)
    server_tcp = out[0]
    assert isinstance(server_tcp, int), server_tcp
    dill.bsend(server_tcp, b"plain TCP")
    assert dill.brecv(client_tcp, 9, soon()) == b"plain TCP"
    close_all(client_tcp, server_tcp)


# The conformance kit. ------------------------------------------------------------


@pytest.mark.parametrize("below", ["ipc", "tcp"])
def test_tls_keeps_the_byte_stream_contract(pki: PKI, below: str) -> None:
    # TLS latches per direction (a failed receive breaks receiving, a failed
    # send sending), as the transports do; tls_done is its half-close.
    check_bsock(
        lambda: attach_pair(pki, *byte_stream_pair(below)),
        done=dill.tls_done,
        detach=dill.tls_detach,
    )
