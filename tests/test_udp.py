"""UDP (reference sections 0, 5, 9 and 19), over real sockets on 127.0.0.1 and ::1.

Every errno of the reference's UDP rows that Linux can produce: udp_open
(EADDRINUSE, EADDRNOTAVAIL, EINVAL, EMFILE, plus greendill's ECANCELED and
bind's EACCES), udp_send / udp_sendl (EBADF, EINVAL, EMSGSIZE, ENOTSUP),
udp_recv / udp_recv_into / udp_recvl (EBADF, EBUSY, ECANCELED, EINVAL,
ENOTSUP, ETIMEDOUT, and EBADF when the socket is closed under a waiting
receive); then the remote filter, truncation, the message calls (msend,
mrecv, ... with EMSGSIZE), iolists with skips, the _mem rules, and peers no
one here wrote: the standard library's socket module and socat. A
hypothesis test sends lists of datagrams over loopback.

Not produced: ENFILE (the system-wide file table cannot be exhausted safely
on a shared machine), ENOMEM (Python raises MemoryError), and udp_recv's
EMSGSIZE (greendill keeps libdill's truncation there; the message calls
raise it, and are tested). Nothing is ever sent to a non-loopback address:
the EADDRNOTAVAIL test only binds.
"""

from __future__ import annotations

import errno
import os
import pwd
import random
import socket
import subprocess
from _socket import socket as _socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import no_fd_left
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greendill as dill

# A bound for waits that must end long before it (never asserted as an upper
# bound of time: it only keeps a broken test from hanging).
SAFETY_MS = 10_000
SAFETY_S = SAFETY_MS / 1000

IPV4 = dill.IPADDR_IPV4
IPV6 = dill.IPADDR_IPV6
HOSTS = {IPV4: "127.0.0.1", IPV6: "::1"}
STD_FAMILY = {IPV4: socket.AF_INET, IPV6: socket.AF_INET6}
# The longest datagrams that fit (65535 less the IP and UDP headers; IPv6's
# header is not counted in its payload length).
MAX_PAYLOAD = {IPV4: 65507, IPV6: 65527}


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAVE_IPV6 = _ipv6_loopback()
needs_ipv6 = pytest.mark.skipif(not HAVE_IPV6, reason="::1 cannot be bound here")
MODES = [
    pytest.param(IPV4, id="ipv4"),
    pytest.param(IPV6, id="ipv6", marks=needs_ipv6),
]


# Helpers ----------------------------------------------------------------------


@contextmanager
def raises_errno(code: int) -> Iterator[Any]:
    """Expect an OSError with errno code (greendill's only way to fail)."""
    with pytest.raises(OSError) as info:
        yield info
    assert info.value.errno == code, f"{info.value!r}: expected {errno.errorcode[code]}"


def loopback(mode: int = IPV4, port: int = 0) -> dill.ipaddr:
    """The loopback address of mode's family, with port (0: ephemeral)."""
    return dill.ipaddr_local(HOSTS[mode], port, mode)


@contextmanager
def udp(local: Any = None, remote: Any = None) -> Iterator[int]:
    """A UDP socket, closed on the way out."""
    s = dill.udp_open(local, remote)
    try:
        yield s
    finally:
        dill.hclose(s)


@contextmanager
def stdlib_udp(mode: int = IPV4) -> Iterator[socket.socket]:
    """A standard-library UDP socket bound to loopback, blocking with a timeout."""
    sock = socket.socket(STD_FAMILY[mode], socket.SOCK_DGRAM)
    try:
        sock.bind((HOSTS[mode], 0))
        sock.settimeout(SAFETY_S)
        yield sock
    finally:
        sock.close()


def address_of(sock: socket.socket, mode: int = IPV4) -> dill.ipaddr:
    """A stdlib socket's address as an ipaddr."""
    return loopback(mode, sock.getsockname()[1])


def later(ms: int = SAFETY_MS) -> int:
    return dill.now() + ms


def spawn(fn: Callable[..., Any], *args: Any) -> tuple[int, list[Any]]:
    """Run fn(*args) in a coroutine; its result or OSError lands in the list."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn(*args))
        except Exception as exc:  # the test asserts which one
            out.append(exc)

    return dill.go(body), out


def finish(h: int) -> None:
    """Wait for the coroutine of bundle h to end, then close it."""
    dill.bundle_wait(h, later())
    dill.hclose(h)


def in_canceled_coroutine(fn: Callable[[], Any]) -> Any:
    """Call fn in a coroutine that was canceled already; return its result or OSError."""
    out: list[Any] = []

    def body() -> None:
        with suppress(dill.Canceled):
            dill.msleep(-1)
        try:
            out.append(fn())
        except OSError as exc:
            out.append(exc)

    h = dill.go(body)
    dill.hclose(h)
    assert len(out) == 1
    return out[0]


def randbytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# Opening: addresses, ports, families ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_open_writes_the_ephemeral_port_back(mode: int) -> None:
    local = loopback(mode)
    with udp(local) as s, stdlib_udp(mode) as peer:
        port = dill.ipaddr_port(local)
        assert port > 0
        # The port really is the socket's: a datagram sent to it arrives.
        peer.sendto(b"to the port", (HOSTS[mode], port))
        assert dill.udp_recv(s, 100, later()) == b"to the port"


def test_open_with_a_given_port_keeps_it() -> None:
    with stdlib_udp() as probe:
        port = probe.getsockname()[1]  # free a moment ago
    local = loopback(IPV4, port)
    with udp(local) as s, stdlib_udp() as peer:
        assert dill.ipaddr_port(local) == port
        peer.sendto(b"to the port", ("127.0.0.1", port))
        assert dill.udp_recv(s, 100, later()) == b"to the port"


def test_open_mem_writes_the_port_back_too() -> None:
    local = loopback()
    mem = dill.udp_storage()
    s = dill.udp_open_mem(local, None, mem)
    try:
        assert dill.ipaddr_port(local) > 0
    finally:
        dill.hclose(s)


def test_a_failed_open_writes_nothing_back() -> None:
    local = dill.ipaddr_local("192.0.2.1", 0, IPV4)
    _skip_if_local("192.0.2.1")
    with raises_errno(errno.EADDRNOTAVAIL):
        dill.udp_open(local, None)
    assert dill.ipaddr_port(local) == 0


def test_socket_without_local_binds_at_its_first_send() -> None:
    # Family AF_INET by default; the system picks a port when it first sends,
    # and replies to it arrive.
    with udp() as s, stdlib_udp() as peer:
        dill.udp_send(s, address_of(peer), b"ping")
        data, source = peer.recvfrom(100)
        assert data == b"ping"
        peer.sendto(b"pong", source)
        src = dill.ipaddr()
        assert dill.udp_recv(s, 100, later(), addr=src) == b"pong"
        assert dill.ipaddr_equal(src, address_of(peer), 0)


def test_default_family_is_ipv4() -> None:
    with udp() as s, raises_errno(errno.EINVAL):
        dill.udp_send(s, dill.ipaddr_remote("::1", 9, IPV6), b"")


@needs_ipv6
def test_family_is_remotes_else_locals() -> None:
    with stdlib_udp(IPV6) as peer:
        # remote's family (no local): an IPv6 socket, which reaches ::1.
        with udp(None, address_of(peer, IPV6)) as s:
            dill.msend(s, b"by remote")
            assert peer.recv(100) == b"by remote"
        # local's family (no remote).
        with udp(loopback(IPV6)) as s:
            dill.udp_send(s, address_of(peer, IPV6), b"by local")
            assert peer.recv(100) == b"by local"


@needs_ipv6
def test_an_ipv4_destination_on_an_ipv6_socket_is_mapped() -> None:
    try:
        with open("/proc/sys/net/ipv6/bindv6only") as f:
            if f.read().strip() != "0":
                pytest.skip("IPv6 sockets are IPv6-only here")
    except OSError:
        pytest.skip("cannot tell whether IPv6 sockets are dual-stack")
    wildcard = dill.ipaddr_local(None, 0, IPV6)
    with udp(wildcard) as s, stdlib_udp(IPV4) as peer:
        dill.udp_send(s, address_of(peer), b"mapped")
        data, source = peer.recvfrom(100)
        assert data == b"mapped"
        peer.sendto(b"back", source)
        src = dill.ipaddr()
        assert dill.udp_recv(s, 100, later(), addr=src) == b"back"
        # The sender as the IPv6 socket sees it: the IPv4-mapped address.
        assert dill.ipaddr_family(src) == socket.AF_INET6
        assert dill.ipaddr_str(src) == "::ffff:127.0.0.1"
        assert dill.ipaddr_port(src) == peer.getsockname()[1]


# udp_open's errors ------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_open_eaddrinuse_on_a_bound_port(mode: int) -> None:
    local = loopback(mode)
    with udp(local):
        with raises_errno(errno.EADDRINUSE):
            dill.udp_open(loopback(mode, dill.ipaddr_port(local)), None)
        mem = dill.udp_storage()
        with raises_errno(errno.EADDRINUSE):
            dill.udp_open_mem(loopback(mode, dill.ipaddr_port(local)), None, mem)
    # A port a socket of the standard library holds: the same.
    with stdlib_udp(mode) as peer, raises_errno(errno.EADDRINUSE):
        dill.udp_open(address_of(peer, mode), None)


def _skip_if_local(host: str) -> None:
    # Binding only (nothing is sent): tells whether host is this machine's.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return
    pytest.skip(f"{host} is an address of this machine")


def test_open_eaddrnotavail() -> None:
    _skip_if_local("192.0.2.1")
    with raises_errno(errno.EADDRNOTAVAIL):
        dill.udp_open(dill.ipaddr_local("192.0.2.1", 0, IPV4), None)
    with raises_errno(errno.EADDRNOTAVAIL):
        dill.udp_open_mem(dill.ipaddr_local("192.0.2.1", 0, IPV4), None, dill.udp_storage())


def test_open_einval_when_local_and_remote_families_differ() -> None:
    v4 = loopback(IPV4)
    v6 = dill.ipaddr_remote("::1", 9, IPV6)
    for local, remote in ((v4, v6), (v6, v4)):
        with raises_errno(errno.EINVAL):
            dill.udp_open(local, remote)
        with raises_errno(errno.EINVAL):
            dill.udp_open_mem(local, remote, dill.udp_storage())
    assert dill.ipaddr_port(v4) == 0  # nothing was bound


def test_open_type_errors() -> None:
    with pytest.raises(TypeError):
        dill.udp_open("127.0.0.1", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.udp_open(None, ("127.0.0.1", 9))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.udp_open_mem(None, None, dill.tcp_storage())  # type: ignore[arg-type]


def _nobody() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


def test_open_eacces_on_a_privileged_port() -> None:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            if int(f.read()) <= 1:
                pytest.skip("every port is unprivileged here")
    except OSError:
        pass
    dropped = False
    if os.geteuid() == 0:
        try:
            os.seteuid(_nobody())  # drops CAP_NET_BIND_SERVICE from the effective set
        except OSError as exc:
            pytest.skip(f"running as root and cannot drop privileges: {exc}")
        dropped = True
    try:
        with raises_errno(errno.EACCES):
            dill.udp_open(loopback(IPV4, 1), None)
    finally:
        if dropped:
            os.seteuid(0)


def test_open_emfile() -> None:
    with no_fd_left():
        with raises_errno(errno.EMFILE):
            dill.udp_open(loopback(), None)
        with raises_errno(errno.EMFILE):
            dill.udp_open_mem(loopback(), None, dill.udp_storage())


def test_open_enfile() -> None:
    pytest.skip("ENFILE needs the system-wide file table exhausted: not done on a shared machine")


def test_open_in_a_canceled_coroutine_fails_first() -> None:
    # udp_open makes a handle: it checks first, even though it could succeed.
    result = in_canceled_coroutine(lambda: dill.udp_open(loopback(), None))
    if isinstance(result, int):
        dill.hclose(result)
    assert isinstance(result, dill.Canceled)
    mem = dill.udp_storage()
    result = in_canceled_coroutine(lambda: dill.udp_open_mem(None, None, mem))
    if isinstance(result, int):
        dill.hclose(result)
    assert isinstance(result, dill.Canceled)
    assert not mem.is_open


# The _mem rules -----------------------------------------------------------------


def test_open_mem_ebusy_einval_and_reuse() -> None:
    mem = dill.udp_storage()
    with raises_errno(errno.EINVAL):
        dill.udp_open_mem(loopback(), None, None)  # type: ignore[arg-type]
    s = dill.udp_open_mem(loopback(), None, mem)
    try:
        with raises_errno(errno.EBUSY):
            dill.udp_open_mem(loopback(), None, mem)
        dill.hquery(s, dill.msock_type)  # it answers the message interface
    finally:
        dill.hclose(s)
    # Closed: the storage can hold a new socket, with a new remote or none.
    local, other = loopback(), loopback()
    with udp(other):
        s = dill.udp_open_mem(local, other, mem)
        try:
            dill.msend(s, b"again")
            with raises_errno(errno.EBUSY):
                dill.udp_open_mem(None, None, mem)
        finally:
            dill.hclose(s)
    s = dill.udp_open_mem(None, None, mem)
    try:
        with raises_errno(errno.EINVAL):
            dill.msend(s, b"no remote any more")
    finally:
        dill.hclose(s)


def test_storage_reused_while_an_old_waiter_wakes() -> None:
    mem = dill.udp_storage()
    s = dill.udp_open_mem(loopback(), None, mem)
    h_old, out_old = spawn(dill.udp_recv, s, 100, later())
    dill.hclose(s)  # the waiter is woken (EBADF) but has not run yet
    local = loopback()
    s2 = dill.udp_open_mem(local, None, mem)
    try:
        h_new, out_new = spawn(dill.udp_recv, s2, 100, later())
        finish(h_old)
        assert isinstance(out_old[0], OSError) and out_old[0].errno == errno.EBADF
        # The old waiter's exit left the new socket alone: still busy with
        # the new waiter, which gets its datagram.
        with raises_errno(errno.EBUSY):
            dill.udp_recv(s2, 100, 0)
        with udp() as sender:
            dill.udp_send(sender, local, b"new")
            finish(h_new)
        assert out_new == [b"new"]
    finally:
        dill.hclose(s2)


# Sending and receiving ----------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_udp_send_and_recv_with_the_senders_address(mode: int) -> None:
    a, b = loopback(mode), loopback(mode)
    with udp(a) as sa, udp(b) as sb:
        dill.udp_send(sb, a, b"hello")
        src = dill.ipaddr()
        assert dill.udp_recv(sa, 100, later(), addr=src) == b"hello"
        assert dill.ipaddr_equal(src, b, 0)
        dill.udp_send(sa, src, memoryview(b"reply"))
        buf = bytearray(100)
        src2 = dill.ipaddr()
        n = dill.udp_recv_into(sb, buf, later(), addr=src2)
        assert buf[:n] == b"reply"
        assert dill.ipaddr_equal(src2, a, 0)


def test_empty_datagrams() -> None:
    a = loopback()
    with udp(a) as sa, udp() as sb:
        dill.udp_send(sb, a, b"")
        assert dill.udp_recv(sa, 100, later()) == b""
        dill.udp_send(sb, a, b"x")
        assert dill.udp_recv(sa, 0, later()) == b""  # maxlen 0: cut to nothing


@pytest.mark.parametrize("mode", MODES)
def test_the_longest_datagram_goes_whole_and_one_more_byte_is_emsgsize(mode: int) -> None:
    a = loopback(mode)
    biggest = randbytes(MAX_PAYLOAD[mode], seed=1)
    with udp(a) as sa, udp(loopback(mode), a) as sb:
        dill.udp_send(sb, a, biggest)
        assert dill.udp_recv(sa, 70000, later()) == biggest
        too_big = biggest + b"!"
        with raises_errno(errno.EMSGSIZE):
            dill.udp_send(sb, a, too_big)
        with raises_errno(errno.EMSGSIZE):
            dill.udp_sendl(sb, None, [too_big[:10], too_big[10:]])
        with raises_errno(errno.EMSGSIZE):
            dill.msend(sb, too_big)
        with raises_errno(errno.EMSGSIZE):
            dill.msendl(sb, [too_big])
        # Nothing was sent, nothing latched.
        with raises_errno(errno.ETIMEDOUT):
            dill.udp_recv(sa, 100, 0)
        dill.msend(sb, b"fine")
        assert dill.udp_recv(sa, 100, later()) == b"fine"


def test_udp_send_einval_without_address_or_remote() -> None:
    with udp(loopback()) as s:
        with raises_errno(errno.EINVAL):
            dill.udp_send(s, None, b"where to?")
        with raises_errno(errno.EINVAL):
            dill.udp_sendl(s, None, [b"where", b"to?"])
        with raises_errno(errno.EINVAL):
            dill.msend(s, b"where to?")
        with raises_errno(errno.EINVAL):
            dill.msendl(s, [b"where to?"])


def test_udp_send_einval_for_an_ipv6_address_on_an_ipv4_socket() -> None:
    with udp(loopback()) as s:
        v6 = dill.ipaddr_remote("::1", 9, IPV6)
        with raises_errno(errno.EINVAL):
            dill.udp_send(s, v6, b"x")
        with raises_errno(errno.EINVAL):
            dill.udp_sendl(s, v6, [b"x"])


def test_udp_sendl_einval_for_an_empty_list() -> None:
    a = loopback()
    with udp(a) as s:
        with raises_errno(errno.EINVAL):
            dill.udp_sendl(s, a, [])
        with raises_errno(errno.EINVAL):
            dill.udp_sendl(s, a, None)  # type: ignore[arg-type]
        with raises_errno(errno.EINVAL):
            dill.msendl(s, [])


def test_udp_send_type_errors() -> None:
    with udp(loopback()) as s:
        with pytest.raises(TypeError):
            dill.udp_send(s, ("127.0.0.1", 9), b"x")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            dill.udp_send(s, loopback(IPV4, 9), "not bytes")


def test_send_drops_the_datagram_when_the_kernel_would_block() -> None:
    # Loopback never makes a UDP send wait, so the kernel's answer is
    # simulated: the storage's socket is swapped for one that says EAGAIN.
    class Full(_socket):
        def sendto(self, *args: Any) -> int:
            raise BlockingIOError(errno.EAGAIN, "no room")

        def sendmsg(self, *args: Any) -> int:
            raise BlockingIOError(errno.EAGAIN, "no room")

    a = loopback()
    mem = dill.udp_storage()
    with udp(a) as receiver:
        s = dill.udp_open_mem(loopback(), a, mem)
        try:
            real = mem.sock
            mem.sock = Full(real.family, real.type, real.proto, real.detach())
            assert dill.udp_send(s, a, b"dropped") is None
            assert dill.udp_sendl(s, None, [b"drop", b"ped"]) is None
            assert dill.msend(s, b"dropped", 0) is None
            assert dill.msendl(s, [b"dropped"], 0) is None
        finally:
            dill.hclose(s)
        with raises_errno(errno.ETIMEDOUT):
            dill.udp_recv(receiver, 100, 0)


def test_sending_never_waits_and_works_in_a_canceled_coroutine() -> None:
    a = loopback()
    with udp(a) as receiver, udp(loopback(), a) as s:
        assert in_canceled_coroutine(lambda: dill.udp_send(s, None, b"one")) is None
        assert in_canceled_coroutine(lambda: dill.msend(s, b"two", 0)) is None
        assert dill.udp_recv(receiver, 10, later()) == b"one"
        assert dill.udp_recv(receiver, 10, later()) == b"two"


def test_hclose_is_a_plain_close_sent_datagrams_arrive() -> None:
    a = loopback()
    with udp(a) as receiver:
        s = dill.udp_open(None, a)
        for i in range(5):
            dill.msend(s, b"%d" % i)
        dill.hclose(s)
        assert [dill.udp_recv(receiver, 10, later()) for _ in range(5)] == [
            b"0",
            b"1",
            b"2",
            b"3",
            b"4",
        ]


# The remote address ------------------------------------------------------------------


def test_msend_and_mrecv_use_the_remote_address() -> None:
    a, b = loopback(), loopback()
    with udp(a) as sa, udp(b, a) as sb:
        dill.msend(sb, b"to a")
        src = dill.ipaddr()
        assert dill.udp_recv(sa, 100, later(), addr=src) == b"to a"
        assert dill.ipaddr_equal(src, b, 0)
        dill.udp_send(sa, b, b"to b")
        assert dill.mrecv(sb, 100, later()) == b"to b"
        # udp_send with None: the remote too.
        dill.udp_send(sb, None, b"none")
        assert dill.mrecv(sa, 100, later()) == b"none"  # mrecv without remote: anyone


def test_the_remote_is_copied() -> None:
    a = loopback()
    with udp(a) as sa, udp(loopback()) as decoy:
        remote = loopback(IPV4, dill.ipaddr_port(a))
        with udp(None, remote) as s:
            dill.ipaddr_setport(remote, 9)  # changing the caller's object changes nothing
            dill.msend(s, b"still to a")
            assert dill.udp_recv(sa, 100, later()) == b"still to a"
        with raises_errno(errno.ETIMEDOUT):
            dill.udp_recv(decoy, 100, 0)


@pytest.mark.parametrize("mode", MODES)
def test_datagrams_from_other_addresses_are_dropped(mode: int) -> None:
    a, b = loopback(mode), loopback(mode)
    with (
        udp(a) as sa,
        udp(b, a) as sb,
        udp(loopback(mode)) as intruder,
        stdlib_udp(mode) as std,
    ):
        # Same address as the remote, other ports: dropped, by every receive.
        receives: list[Callable[[], Any]] = [
            lambda: dill.mrecv(sb, 100, later()),
            lambda: dill.udp_recv(sb, 100, later()),
            lambda: bytes(_recv_into(sb)),
            lambda: _mrecv_into(sb),
            lambda: _recvl(dill.udp_recvl, sb),
            lambda: _recvl(dill.mrecvl, sb),
        ]
        for i, receive in enumerate(receives):
            dill.udp_send(intruder, b, b"intruder")
            std.sendto(b"stdlib intruder", (HOSTS[mode], dill.ipaddr_port(b)))
            dill.udp_send(sa, b, b"remote %d" % i)
            assert receive() == b"remote %d" % i
        # Only a stranger's datagram waiting: dropped, then the deadline.
        dill.udp_send(intruder, b, b"intruder")
        with raises_errno(errno.ETIMEDOUT):
            dill.mrecv(sb, 100, 0)
        with raises_errno(errno.ETIMEDOUT):
            dill.udp_recv(sb, 100, 0)
        # The filter does not hold up sending elsewhere.
        dill.udp_send(sb, address_of(std, mode), b"elsewhere")
        assert std.recv(100) == b"elsewhere"


def _recv_into(s: int) -> bytearray:
    buf = bytearray(100)
    del buf[dill.udp_recv_into(s, buf, later()) :]
    return buf


def _mrecv_into(s: int) -> bytes:
    buf = bytearray(100)
    return bytes(buf[: dill.mrecv_into(s, buf, later())])


def _recvl(recvl: Callable[..., int], s: int) -> bytes:
    head, tail = bytearray(2), bytearray(98)
    n = recvl(s, [head, tail], later())
    return bytes((head + tail)[:n])


def test_the_remote_filter_lets_a_waiting_receive_wait_on() -> None:
    a, b = loopback(), loopback()
    with udp(a) as sa, udp(b, a) as sb, udp(loopback()) as intruder:
        h, out = spawn(dill.mrecv, sb, 100, later())
        dill.udp_send(intruder, b, b"intruder")
        dill.msleep(dill.now() + 20)
        assert out == []  # dropped, still waiting
        dill.udp_send(sa, b, b"the one")
        finish(h)
        assert out == [b"the one"]


# Truncation and EMSGSIZE ---------------------------------------------------------------


def test_udp_receives_cut_a_long_datagram_as_libdill_does() -> None:
    a = loopback()
    with udp(a) as sa, udp(None, a) as sb:
        for _ in range(3):
            dill.msend(sb, b"0123456789")
        assert dill.udp_recv(sa, 4, later()) == b"0123"
        buf = bytearray(4)
        assert dill.udp_recv_into(sa, buf, later()) == 4
        assert buf == b"0123"
        one, two = bytearray(2), bytearray(3)
        assert dill.udp_recvl(sa, [one, 1, two], later()) == 6
        assert (one, two) == (b"01", b"345")
        # The next datagram is whole.
        dill.msend(sb, b"next")
        assert dill.udp_recv(sa, 100, later()) == b"next"


def test_message_receives_raise_emsgsize_and_drop_the_datagram() -> None:
    a = loopback()
    with udp(a) as sa, udp(None, a) as sb:
        for _ in range(3):
            dill.msend(sb, b"0123456789")
        with raises_errno(errno.EMSGSIZE):
            dill.mrecv(sa, 9, later())
        with raises_errno(errno.EMSGSIZE):
            dill.mrecv_into(sa, bytearray(4), later())
        with raises_errno(errno.EMSGSIZE):
            dill.mrecvl(sa, [bytearray(3), 6], later())
        # Nothing latches: the socket goes on working, exact fits included.
        dill.msend(sb, b"0123456789")
        assert dill.mrecv(sa, 10, later()) == b"0123456789"
        dill.msend(sb, b"0123456789")
        buf = bytearray(3)
        assert dill.mrecvl(sa, [buf, 7], later()) == 10
        assert buf == b"012"


# Iolists ---------------------------------------------------------------------------


def test_udp_sendl_and_recvl_with_skips() -> None:
    a = loopback()
    with udp(a) as sa, udp(None, a) as sb:
        dill.udp_sendl(sb, a, [b"abc", bytearray(b""), memoryview(b"defgh"), b"ij"])
        head, tail = bytearray(2), memoryview(bytearray(4))
        src = dill.ipaddr()
        n = dill.udp_recvl(sa, [head, 3, bytearray(0), tail, 100], later(), addr=src)
        assert n == 10
        assert (head, bytes(tail)) == (b"ab", b"fghi")
        assert dill.ipaddr_port(src) > 0
        # msendl / mrecvl: the same over the message interface.
        dill.msendl(sb, [b"12", b"34", b"56"])
        mid = bytearray(2)
        assert dill.mrecvl(sa, [2, mid, 2], later()) == 6
        assert mid == b"34"
        # A skip longer than any datagram, then a buffer nothing reaches.
        dill.msend(sb, b"xyz")
        never = bytearray(b"untouched")
        assert dill.udp_recvl(sa, [1 << 20, never], later()) == 3
        assert never == b"untouched"


def test_recvl_of_an_empty_list_drops_one_datagram_and_gives_its_size() -> None:
    a, b = loopback(), loopback()
    with udp(a) as sa, udp(b, a) as sb:
        dill.msend(sb, b"dropped, 19 bytes..")
        dill.msend(sb, b"also dropped")
        dill.msend(sb, b"kept")
        src = dill.ipaddr()
        assert dill.udp_recvl(sa, [], later(), addr=src) == 19
        assert dill.ipaddr_equal(src, b, 0)
        assert dill.mrecvl(sa, [], later()) == 12
        assert dill.udp_recv(sa, 100, later()) == b"kept"


def test_lists_longer_than_iov_max() -> None:
    a = loopback()
    data = randbytes(3000, seed=2)
    with udp(a) as sa, udp(None, a) as sb:
        dill.udp_sendl(sb, a, [data[i : i + 1] for i in range(len(data))])
        bufs = [bytearray(1) for _ in range(2000)]
        assert dill.udp_recvl(sa, [*bufs, 500, bytearray(600)], later()) == 3000
        assert b"".join(bufs) == data[:2000]
        # Over the message interface, a skip among many buffers.
        dill.msendl(sb, [data[i : i + 2] for i in range(0, len(data), 2)])
        bufs = [bytearray(1) for _ in range(1500)]
        last = bytearray(1000)
        assert dill.mrecvl(sa, [*bufs, 500, last], later()) == 3000
        assert b"".join(bufs) == data[:1500]
        assert last == data[2000:]
        dill.msend(sb, data)
        with raises_errno(errno.EMSGSIZE):
            dill.mrecvl(sa, [bytearray(1) for _ in range(2999)], later())
        dill.msend(sb, data)
        bufs = [bytearray(1) for _ in range(2000)]
        assert dill.udp_recvl(sa, bufs, later()) == 2000  # cut to fit
        assert b"".join(bufs) == data[:2000]


def test_receive_einval() -> None:
    with udp(loopback()) as s:
        with raises_errno(errno.EINVAL):
            dill.udp_recv(s, -1, 0)
        with raises_errno(errno.EINVAL):
            dill.udp_recv_into(s, b"read-only", 0)
        with raises_errno(errno.EINVAL):
            dill.udp_recvl(s, None, 0)  # type: ignore[arg-type]
        with raises_errno(errno.EINVAL):
            dill.udp_recvl(s, [bytearray(2), -1], 0)
        with raises_errno(errno.EINVAL):
            dill.udp_recvl(s, [b"read-only"], 0)  # type: ignore[list-item]
        with raises_errno(errno.EINVAL):
            dill.mrecvl(s, [bytearray(2), -1], 0)
        with raises_errno(errno.EINVAL):
            dill.mrecv(s, -1, 0)


# Waiting: deadlines, cancellation, EBUSY, closing ---------------------------------------


def test_recv_etimedout_after_the_deadline() -> None:
    with udp(loopback()) as s:
        for receive in (
            lambda dl: dill.udp_recv(s, 10, dl),
            lambda dl: dill.udp_recv_into(s, bytearray(10), dl),
            lambda dl: dill.udp_recvl(s, [bytearray(10)], dl),
            lambda dl: dill.mrecv(s, 10, dl),
            lambda dl: dill.mrecvl(s, [bytearray(10)], dl),
        ):
            deadline = dill.now() + 30
            with raises_errno(errno.ETIMEDOUT):
                receive(deadline)
            assert dill.now() >= deadline
            with raises_errno(errno.ETIMEDOUT):
                receive(0)
            with raises_errno(errno.ETIMEDOUT):
                receive(dill.now() - 1000)  # a deadline in the past is 0


def test_a_waiting_datagram_is_taken_whatever_the_deadline() -> None:
    a = loopback()
    with udp(a) as sa, udp(None, a) as sb:
        dill.msend(sb, b"here")
        assert dill.udp_recv(sa, 10, 0) == b"here"
        dill.msend(sb, b"here")
        assert dill.mrecv(sa, 10, dill.now() - 5) == b"here"


def test_recv_waits_for_a_datagram() -> None:
    a = loopback()
    with udp(a) as sa, udp(None, a) as sb:
        h, out = spawn(dill.udp_recv, sa, 100, later())
        assert out == []
        dill.msleep(dill.now() + 10)
        dill.msend(sb, b"came later")
        finish(h)
        assert out == [b"came later"]


@pytest.mark.parametrize(
    "receive",
    [
        lambda s: dill.udp_recv(s, 100, -1),
        lambda s: dill.udp_recv_into(s, bytearray(100), -1),
        lambda s: dill.udp_recvl(s, [bytearray(100)], -1),
    ],
    ids=["udp_recv", "udp_recv_into", "udp_recvl"],
)
def test_recv_canceled_while_waiting(receive: Callable[[int], Any]) -> None:
    with udp(loopback()) as s:
        h, out = spawn(receive, s)
        dill.hclose(h)
        assert len(out) == 1
        assert isinstance(out[0], dill.Canceled)
        assert out[0].errno == errno.ECANCELED
        # Not busy afterwards.
        with raises_errno(errno.ETIMEDOUT):
            dill.udp_recv(s, 100, 0)


def test_recv_in_a_canceled_coroutine_takes_a_waiting_datagram_else_ecanceled() -> None:
    a = loopback()
    with udp(a) as sa, udp(None, a) as sb:
        dill.msend(sb, b"ready")
        assert in_canceled_coroutine(lambda: dill.udp_recv(sa, 10, -1)) == b"ready"
        dill.msend(sb, b"ready")
        assert in_canceled_coroutine(lambda: dill.mrecv(sa, 10, -1)) == b"ready"
        for receive in (
            lambda: dill.udp_recv(sa, 10, -1),
            lambda: dill.udp_recv_into(sa, bytearray(10), -1),
            lambda: dill.udp_recvl(sa, [bytearray(10)], later()),
            lambda: dill.mrecv(sa, 10, later()),
        ):
            result = in_canceled_coroutine(receive)
            assert isinstance(result, dill.Canceled), result


def test_a_second_receiver_gets_ebusy_and_breaks_nothing() -> None:
    a = loopback()
    with udp(a) as sa, udp(None, a) as sb:
        h, out = spawn(dill.udp_recv, sa, 100, later())
        for receive in (
            lambda: dill.udp_recv(sa, 10, 0),
            lambda: dill.udp_recv_into(sa, bytearray(10), later()),
            lambda: dill.udp_recvl(sa, [bytearray(10)], later()),
            lambda: dill.mrecv(sa, 10, -1),
            lambda: dill.mrecv_into(sa, bytearray(10), -1),
            lambda: dill.mrecvl(sa, [], -1),
        ):
            with raises_errno(errno.EBUSY):
                receive()
        # Sending is never busy, even on the socket that is receiving.
        dill.udp_send(sa, loopback(IPV4, dill.ipaddr_port(a)), b"to myself")
        finish(h)
        assert out == [b"to myself"]
        dill.msend(sb, b"free again")
        assert dill.udp_recv(sa, 100, later()) == b"free again"


@pytest.mark.parametrize(
    "receive",
    [
        pytest.param(lambda s: dill.udp_recv(s, 10, -1), id="udp_recv"),
        pytest.param(lambda s: dill.udp_recvl(s, [bytearray(10)], -1), id="udp_recvl"),
        pytest.param(lambda s: dill.mrecv(s, 10, -1), id="mrecv"),
    ],
)
def test_closing_the_socket_wakes_a_waiting_receive_with_ebadf(
    receive: Callable[[int], Any],
) -> None:
    s = dill.udp_open(loopback(), None)
    h, out = spawn(receive, s)
    dill.hclose(s)
    finish(h)
    assert len(out) == 1
    assert isinstance(out[0], OSError) and out[0].errno == errno.EBADF


# EBADF and ENOTSUP ------------------------------------------------------------------


def _every_call(s: int) -> list[Callable[[], Any]]:
    a = loopback(IPV4, 9)
    return [
        lambda: dill.udp_send(s, a, b"x"),
        lambda: dill.udp_sendl(s, a, [b"x"]),
        lambda: dill.udp_recv(s, 10, 0),
        lambda: dill.udp_recv_into(s, bytearray(10), 0),
        lambda: dill.udp_recvl(s, [bytearray(10)], 0),
    ]


def test_ebadf() -> None:
    s = dill.udp_open(loopback(), None)
    dill.hclose(s)
    for bad in (s, 1_000_000):
        for call in _every_call(bad):
            with raises_errno(errno.EBADF):
                call()
        with raises_errno(errno.EBADF):
            dill.msend(bad, b"x")
        with raises_errno(errno.EBADF):
            dill.mrecv(bad, 10, 0)
        with raises_errno(errno.EBADF):
            dill.hclose(bad)


def test_enotsup_for_other_handles_and_for_byte_stream_calls() -> None:
    a, b = dill.ipc_pair()
    ls = dill.tcp_listen(loopback(), 1)
    ch0, ch1 = dill.chmake()
    try:
        for other in (a, ls, ch0):
            for call in _every_call(other):
                with raises_errno(errno.ENOTSUP):
                    call()
    finally:
        for h in (a, b, ls, ch0, ch1):
            dill.hclose(h)
    with udp(loopback()) as s:
        with raises_errno(errno.ENOTSUP):
            dill.bsend(s, b"x")
        with raises_errno(errno.ENOTSUP):
            dill.bsendl(s, [b"x"])
        with raises_errno(errno.ENOTSUP):
            dill.brecv(s, 1, 0)
        with raises_errno(errno.ENOTSUP):
            dill.brecvl(s, [bytearray(1)], 0)
        with raises_errno(errno.ENOTSUP):
            dill.hquery(s, dill.bsock_type)
        with raises_errno(errno.ENOTSUP):
            dill.tcp_close(s)  # and it stays open
        dill.hquery(s, dill.msock_type)


# Peers no one here wrote: the standard library, socat ------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_stdlib_peer_both_ways(mode: int) -> None:
    local = loopback(mode)
    with stdlib_udp(mode) as std, udp(local, address_of(std, mode)) as s:
        payloads = [b"", b"x", randbytes(1000, seed=3), randbytes(MAX_PAYLOAD[mode], seed=4)]
        for p in payloads:
            dill.msend(s, p)
            data, source = std.recvfrom(70000)
            assert data == p
            assert source[1] == dill.ipaddr_port(local)
            std.sendto(p[::-1], source)
            assert dill.mrecv(s, 70000, later()) == p[::-1]
        # A stdlib socket that is not the remote is ignored.
        with stdlib_udp(mode) as stranger:
            stranger.sendto(b"stranger", (HOSTS[mode], dill.ipaddr_port(local)))
            std.sendto(b"known", (HOSTS[mode], dill.ipaddr_port(local)))
            assert dill.mrecv(s, 100, later()) == b"known"


def wait_for_exit(proc: subprocess.Popen[bytes]) -> int:
    deadline = later()
    while proc.poll() is None:
        if dill.now() >= deadline:
            pytest.fail("socat did not end in time")
        dill.msleep(dill.now() + 5)
    return proc.returncode


@contextmanager
def terminating(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """End proc (by its own Popen object) whatever happens."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_greendill_echo_server_with_a_socat_client(socat: str, tmp_path: Path) -> None:
    # socat reads its stdin (a regular file) in blocks of 1000 bytes and sends
    # each as a datagram; what comes back goes to its stdout.
    data = randbytes(3500, seed=5)
    (tmp_path / "in").write_bytes(data)
    local = loopback()
    with udp(local) as s:
        with (
            (tmp_path / "in").open("rb") as stdin,
            (tmp_path / "out").open("wb") as stdout,
            (tmp_path / "err").open("wb") as stderr,
        ):
            proc = subprocess.Popen(
                [
                    socat,
                    "-b",
                    "1000",
                    "-t",
                    "1",
                    "-",
                    f"UDP4-DATAGRAM:127.0.0.1:{dill.ipaddr_port(local)}",
                ],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
            )
        with terminating(proc):
            sizes = []
            src = dill.ipaddr()
            while sum(sizes) < len(data):
                datagram = dill.udp_recv(s, 65535, later(), addr=src)
                sizes.append(len(datagram))
                dill.udp_send(s, src, datagram)
            assert sizes == [1000, 1000, 1000, 500]
            assert wait_for_exit(proc) == 0, (tmp_path / "err").read_text()
    assert (tmp_path / "out").read_bytes() == data


def _udp_bound(port: int) -> bool:
    # Whether some socket has bound 127.0.0.1:port (socat is ready).
    with open("/proc/net/udp") as f:
        return any(line.split()[1] == f"0100007F:{port:04X}" for line in f.readlines()[1:])


def test_greendill_client_with_a_socat_echo_server(socat: str, tmp_path: Path) -> None:
    with stdlib_udp() as probe:
        port = probe.getsockname()[1]  # free a moment ago: socat takes it
    with (tmp_path / "err").open("wb") as stderr:
        proc = subprocess.Popen(
            [socat, "-b", "65536", f"UDP4-LISTEN:{port},bind=127.0.0.1", "EXEC:cat"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    with terminating(proc):
        deadline = later()
        while not _udp_bound(port):
            if proc.poll() is not None:
                pytest.fail(f"socat ended: {(tmp_path / 'err').read_text()}")
            if dill.now() >= deadline:
                pytest.fail("socat did not bind in time")
            dill.msleep(dill.now() + 5)
        server = loopback(IPV4, port)
        with udp(loopback()) as s:
            for i, size in enumerate((1, 100, 1000, 5000)):
                payload = randbytes(size, seed=10 + i)
                dill.udp_send(s, server, payload)
                # cat may hand the bytes back in pieces: each piece is a datagram.
                got = b""
                while len(got) < size:
                    got += dill.udp_recv(s, 65535, later())
                assert got == payload


# Property: datagrams arrive whole --------------------------------------------------------


SENDS = ["udp_send", "udp_sendl", "msend", "msendl"]
RECEIVES = ["udp_recv", "udp_recv_into", "udp_recvl", "mrecv", "mrecv_into", "mrecvl"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.binary(max_size=4096), max_size=8), st.data())
def test_datagrams_arrive_whole(datagrams: list[bytes], data: st.DataObject) -> None:
    a, b = loopback(), loopback()
    sa = dill.udp_open(a, None)
    try:
        sb = dill.udp_open(b, a)
        try:
            for d in datagrams:
                # One at a time: each is received before the next is sent.
                how = data.draw(st.sampled_from(SENDS))
                cuts = sorted(data.draw(st.lists(st.integers(0, len(d)), max_size=4)))
                pieces = [d[i:j] for i, j in zip([0, *cuts], [*cuts, len(d)])]
                if how == "udp_send":
                    dill.udp_send(sb, a, d)
                elif how == "udp_sendl":
                    dill.udp_sendl(sb, None, pieces)
                elif how == "msend":
                    dill.msend(sb, d)
                else:
                    dill.msendl(sb, pieces)
                assert _receive(sa, data.draw(st.sampled_from(RECEIVES)), len(d), b) == d
            with raises_errno(errno.ETIMEDOUT):
                dill.udp_recv(sa, 65535, 0)  # nothing more, nothing twice
        finally:
            dill.hclose(sb)
    finally:
        dill.hclose(sa)


def _receive(s: int, how: str, size: int, sender: dill.ipaddr) -> bytes:
    src = dill.ipaddr()
    if how == "udp_recv":
        got = dill.udp_recv(s, 65535, later(), addr=src)
        assert dill.ipaddr_equal(src, sender, 0)
        return got
    if how == "mrecv":
        return dill.mrecv(s, 65535, later())
    buf = bytearray(65535)
    if how == "udp_recv_into":
        n = dill.udp_recv_into(s, buf, later(), addr=src)
        assert dill.ipaddr_equal(src, sender, 0)
    elif how == "mrecv_into":
        n = dill.mrecv_into(s, buf, later())
    else:
        # Split the buffer in two around the middle of the datagram.
        half = size // 2
        first, second = bytearray(half), bytearray(65535 - half)
        if how == "udp_recvl":
            n = dill.udp_recvl(s, [first, second], later())
        else:
            n = dill.mrecvl(s, [first, second], later())
        return bytes((first + second)[:n])
    return bytes(buf[:n])
