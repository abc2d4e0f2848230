"""IP addresses: ipaddr_local, ipaddr_remote(s) and the accessors (reference section 6).

No test needs a network: names come from /etc/hosts ("localhost"), from a
name under the reserved .invalid TLD, or from a fake resolver. What
"localhost" maps to is asked of the system's resolver first, so the tests
adapt to a hosts file with or without ::1.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import ipaddress
import socket
import time
from typing import Any, Callable, Optional, Union

import gevent
import pytest
from gevent.monkey import get_original
from hypothesis import given
from hypothesis import strategies as st

import greendill as dill
from greendill._ipaddr import ipaddr_from_sockaddr
from greendill._scheduler import context

V4 = socket.AF_INET
V6 = socket.AF_INET6
UNKNOWN = "no-such-host.greendill-test.invalid"  # RFC 6761: never a real name


def errno_of(call: Callable[[], Any]) -> int:
    with pytest.raises(OSError) as info:
        call()
    assert info.value.errno is not None
    return info.value.errno


def system_addresses(name: str, family: int) -> list[str]:
    """What the system's resolver has for name in family (the expectation)."""
    try:
        infos = socket.getaddrinfo(name, 0, family, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return [str(info[4][0]) for info in infos]


LOCALHOST_V4 = system_addresses("localhost", V4)
LOCALHOST_V6 = system_addresses("localhost", V6)


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(V6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def slow_system_resolver(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make every getaddrinfo of the OS take `seconds` longer (blocking its thread)."""
    original = _socket.getaddrinfo
    # The real sleep: under monkeypatching time.sleep would make a hub in
    # the resolver's thread (and a loop whose fds outlive the test).
    sleep = get_original("time", "sleep")

    def slow(*args: Any, **kwargs: Any) -> Any:
        sleep(seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(_socket, "getaddrinfo", slow)


class FakeResolver:
    """A resolver for the hub that answers from a list, as getaddrinfo would."""

    def __init__(
        self, answer: list[tuple[int, tuple[Any, ...]]], raises: Optional[BaseException] = None
    ) -> None:
        self.answer = answer
        self.raises = raises
        self.queries: list[tuple[Any, ...]] = []

    def getaddrinfo(self, host: str, port: int, family: int = 0, type: int = 0) -> Any:
        self.queries.append((host, port, family, type))
        if self.raises is not None:
            raise self.raises
        found = [
            (f, socket.SOCK_STREAM, 6, "", sockaddr)
            for f, sockaddr in self.answer
            if family in (0, f)
        ]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return found


@pytest.fixture
def fake_resolver(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeResolver]:
    def install(
        answer: list[tuple[int, tuple[Any, ...]]], raises: Optional[BaseException] = None
    ) -> FakeResolver:
        fake = FakeResolver(answer, raises)
        monkeypatch.setattr(context().hub, "resolver", fake)
        return fake

    return install


MIXED = [
    (V6, ("2001:db8::1", 0, 0, 0)),
    (V4, ("192.0.2.1", 0)),
    (V6, ("fe80::2", 0, 0, 7)),
    (V4, ("192.0.2.2", 0)),
]


# Constants and the ipaddr object ------------------------------------------------


def test_constants_have_libdill_values() -> None:
    assert dill.IPADDR_IPV4 == 1
    assert dill.IPADDR_IPV6 == 2
    assert dill.IPADDR_PREF_IPV4 == 3
    assert dill.IPADDR_PREF_IPV6 == 4
    assert dill.IPADDR_MAXSTRLEN == 46


def test_ipaddr_default_is_ipv4_any_port_0() -> None:
    a = dill.ipaddr()
    assert dill.ipaddr_family(a) == V4
    assert dill.ipaddr_str(a) == "0.0.0.0"
    assert dill.ipaddr_port(a) == 0
    assert dill.ipaddr_len(a) == 16
    assert dill.ipaddr_sockaddr(a) == ("0.0.0.0", 0)


def test_ipaddr_has_slots_and_repr() -> None:
    a = dill.ipaddr_local("127.0.0.1", 5555)
    assert not hasattr(a, "__dict__")
    assert repr(a) == "ipaddr('127.0.0.1', 5555)"
    assert repr(dill.ipaddr_local("::1", 80)) == "ipaddr('::1', 80)"
    scoped = ipaddr_from_sockaddr(V6, ("fe80::1%lo", 80, 3, 1))
    assert repr(scoped) == "ipaddr('fe80::1', 80, flowinfo=3, scope_id=1)"


def test_ipaddr_compares_by_identity() -> None:
    # Mutable (ipaddr_setport): equality is ipaddr_equal's job.
    a = dill.ipaddr_local("127.0.0.1", 80)
    b = dill.ipaddr_local("127.0.0.1", 80)
    assert a != b
    assert a == a
    assert len({a, b}) == 2


def test_sockaddr_helpers_round_trip() -> None:
    a = ipaddr_from_sockaddr(V4, ("10.1.2.3", 99))
    assert a.sockaddr() == ("10.1.2.3", 99)
    b = ipaddr_from_sockaddr(V6, ("fe80::1%lo", 80, 5, 1))
    assert b.sockaddr() == ("fe80::1", 80, 5, 1)
    a.set_sockaddr(V6, ("::1", 7, 0, 0))  # in place, even across families
    assert (dill.ipaddr_family(a), dill.ipaddr_str(a), dill.ipaddr_port(a)) == (V6, "::1", 7)
    a.set_sockaddr(V4, ("1.2.3.4", 8))
    assert a.sockaddr() == ("1.2.3.4", 8)
    assert (a.flowinfo, a.scope_id) == (0, 0)
    with pytest.raises(ValueError):
        ipaddr_from_sockaddr(socket.AF_UNIX, ("/tmp/x", 0))


def test_sockaddr_binds_a_real_socket_and_takes_the_ephemeral_port_back() -> None:
    families = [("127.0.0.1", V4)] + ([("::1", V6)] if has_ipv6_loopback() else [])
    for literal, family in families:
        a = dill.ipaddr_local(literal, 0)
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind(dill.ipaddr_sockaddr(a))
            a.set_sockaddr(family, s.getsockname())
        assert dill.ipaddr_str(a) == literal
        assert dill.ipaddr_port(a) > 0


# ipaddr_local ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0, "0.0.0.0"),
        (dill.IPADDR_IPV4, "0.0.0.0"),
        (dill.IPADDR_PREF_IPV4, "0.0.0.0"),
        (dill.IPADDR_IPV6, "::"),
        (dill.IPADDR_PREF_IPV6, "::"),
    ],
)
def test_ipaddr_local_none_is_the_wildcard_of_the_mode(mode: int, expected: str) -> None:
    a = dill.ipaddr_local(None, 5555, mode)
    assert dill.ipaddr_str(a) == expected
    assert dill.ipaddr_family(a) == (V4 if expected == "0.0.0.0" else V6)
    assert dill.ipaddr_port(a) == 5555


@pytest.mark.parametrize(
    ("literal", "family", "text"),
    [
        ("127.0.0.1", V4, "127.0.0.1"),
        ("0.0.0.0", V4, "0.0.0.0"),
        ("255.255.255.255", V4, "255.255.255.255"),
        ("::", V6, "::"),
        ("::1", V6, "::1"),
        ("::ffff:1.2.3.4", V6, "::ffff:1.2.3.4"),
        ("::FFFF:0102:0304", V6, "::ffff:1.2.3.4"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", V6, "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", V6, "2001:db8::1:0:0:1"),  # the first longest run
        ("2001:db8:0:1:1:1:1:1", V6, "2001:db8:0:1:1:1:1:1"),  # one zero group stays
    ],
)
def test_ipaddr_local_parses_literals(literal: str, family: int, text: str) -> None:
    for mode in (0, dill.IPADDR_PREF_IPV4, dill.IPADDR_PREF_IPV6):
        a = dill.ipaddr_local(literal, 80, mode)
        assert dill.ipaddr_family(a) == family
        assert dill.ipaddr_str(a) == text
        assert dill.ipaddr_port(a) == 80
    strict = dill.IPADDR_IPV4 if family == V4 else dill.IPADDR_IPV6
    assert dill.ipaddr_str(dill.ipaddr_local(literal, 80, strict)) == text


def test_ipaddr_local_strict_mode_rejects_the_other_family_enodev() -> None:
    assert errno_of(lambda: dill.ipaddr_local("::1", 80, dill.IPADDR_IPV4)) == errno.ENODEV
    assert errno_of(lambda: dill.ipaddr_local("127.0.0.1", 80, dill.IPADDR_IPV6)) == errno.ENODEV


def test_ipaddr_local_interface_name() -> None:
    # libdill: "lo" -> 127.0.0.1 (the first IPv4 address getifaddrs lists).
    for mode in (0, dill.IPADDR_IPV4, dill.IPADDR_PREF_IPV4):
        a = dill.ipaddr_local("lo", 8080, mode)
        assert (dill.ipaddr_str(a), dill.ipaddr_port(a)) == ("127.0.0.1", 8080)
    if has_ipv6_loopback():
        for mode in (dill.IPADDR_IPV6, dill.IPADDR_PREF_IPV6):
            a = dill.ipaddr_local("lo", 8080, mode)
            assert (dill.ipaddr_str(a), dill.ipaddr_port(a)) == ("::1", 8080)
    else:  # PREF_IPV6 falls back to IPv4; IPV6 has nothing
        a = dill.ipaddr_local("lo", 8080, dill.IPADDR_PREF_IPV6)
        assert dill.ipaddr_str(a) == "127.0.0.1"
        assert errno_of(lambda: dill.ipaddr_local("lo", 80, dill.IPADDR_IPV6)) == errno.ENODEV


@pytest.mark.parametrize("name", ["nosuchif0", "", "x" * 40, "a\x00b", "localhost"])
def test_ipaddr_local_unknown_interface_enodev(name: str) -> None:
    # Not a literal and not an interface; host names are never resolved.
    with pytest.raises(OSError) as info:
        dill.ipaddr_local(name, 80)
    assert info.value.errno == errno.ENODEV
    assert "ipaddr_local" in str(info.value)


@pytest.mark.parametrize("name", [None, "127.0.0.1", "::1", "lo"])
@pytest.mark.parametrize("port", [-1, 65536, 1 << 40])
def test_ipaddr_local_bad_port_einval(name: Optional[str], port: int) -> None:
    # libdill: EINVAL with no name, ENODEV with a literal (a fall-through), and
    # a silently truncated port with an interface: greendill says EINVAL.
    assert errno_of(lambda: dill.ipaddr_local(name, port)) == errno.EINVAL


def test_ipaddr_local_accepts_ports_0_and_65535() -> None:
    assert dill.ipaddr_port(dill.ipaddr_local(None, 0)) == 0
    assert dill.ipaddr_port(dill.ipaddr_local("::1", 65535)) == 65535


@pytest.mark.parametrize("mode", [-1, 5, 100])
def test_ipaddr_local_unknown_mode_einval(mode: int) -> None:
    assert errno_of(lambda: dill.ipaddr_local(None, 80, mode)) == errno.EINVAL
    assert errno_of(lambda: dill.ipaddr_local("127.0.0.1", 80, mode)) == errno.EINVAL


def test_ipaddr_local_wrong_types_typeerror() -> None:
    with pytest.raises(TypeError):
        dill.ipaddr_local(b"127.0.0.1", 80)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipaddr_local("127.0.0.1", "80")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipaddr_local("127.0.0.1", 80.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipaddr_local("127.0.0.1", 80, None)  # type: ignore[arg-type]


# ipaddr_remote / ipaddr_remotes: literals ------------------------------------------


@pytest.mark.parametrize("literal", ["127.0.0.1", "0.0.0.0", "::1", "::", "::ffff:1.2.3.4"])
def test_ipaddr_remote_literal_needs_no_wait(literal: str) -> None:
    for deadline in (0, dill.now() - 1000, -1):
        a = dill.ipaddr_remote(literal, 443, 0, deadline)
        assert ipaddress.ip_address(dill.ipaddr_str(a)) == ipaddress.ip_address(literal)
        assert dill.ipaddr_port(a) == 443
        assert [dill.ipaddr_str(b) for b in dill.ipaddr_remotes(5, literal, 443, 0, 0)] == [
            dill.ipaddr_str(a)
        ]


def test_ipaddr_remote_pref_modes_take_both_literal_families() -> None:
    for mode in (dill.IPADDR_PREF_IPV4, dill.IPADDR_PREF_IPV6):
        assert dill.ipaddr_family(dill.ipaddr_remote("127.0.0.1", 1, mode)) == V4
        assert dill.ipaddr_family(dill.ipaddr_remote("::1", 1, mode)) == V6


def test_ipaddr_remote_strict_mode_other_family_literal_finds_nothing() -> None:
    # Reference: not parsed as a literal; the resolver has nothing for it.
    cases = [("::1", dill.IPADDR_IPV4), ("127.0.0.1", dill.IPADDR_IPV6)]
    for literal, mode in cases:
        with pytest.raises(OSError) as info:
            dill.ipaddr_remote(literal, 80, mode)
        assert info.value.errno == errno.EADDRNOTAVAIL
        assert dill.ipaddr_remotes(4, literal, 80, mode) == []
        assert dill.ipaddr_remotes(4, literal, 80, mode, 0) == []  # without any wait


# ipaddr_remote / ipaddr_remotes: names ------------------------------------------------


def test_ipaddr_remote_localhost_from_etc_hosts() -> None:
    assert LOCALHOST_V4, "this machine's resolver has no IPv4 address for localhost"
    for mode in (0, dill.IPADDR_IPV4, dill.IPADDR_PREF_IPV4):
        a = dill.ipaddr_remote("localhost", 5555, mode)
        assert (dill.ipaddr_str(a), dill.ipaddr_port(a)) == (LOCALHOST_V4[0], 5555)


def test_ipaddr_remote_pref_ipv6_falls_back_to_ipv4() -> None:
    a = dill.ipaddr_remote("localhost", 80, dill.IPADDR_PREF_IPV6)
    expected = LOCALHOST_V6[0] if LOCALHOST_V6 else LOCALHOST_V4[0]
    assert dill.ipaddr_str(a) == expected


def test_ipaddr_remote_ipv6_mode_takes_only_ipv6() -> None:
    if LOCALHOST_V6:
        a = dill.ipaddr_remote("localhost", 80, dill.IPADDR_IPV6)
        assert (dill.ipaddr_family(a), dill.ipaddr_str(a)) == (V6, LOCALHOST_V6[0])
    else:
        with pytest.raises(OSError) as info:
            dill.ipaddr_remote("localhost", 80, dill.IPADDR_IPV6)
        assert info.value.errno == errno.EADDRNOTAVAIL
        assert dill.ipaddr_remotes(3, "localhost", 80, dill.IPADDR_IPV6) == []


def test_ipaddr_remotes_localhost_prefers_the_family_of_the_mode() -> None:
    for mode, first, second in (
        (dill.IPADDR_PREF_IPV4, LOCALHOST_V4, LOCALHOST_V6),
        (dill.IPADDR_PREF_IPV6, LOCALHOST_V6, LOCALHOST_V4),
    ):
        found = dill.ipaddr_remotes(10, "localhost", 7, mode)
        assert [dill.ipaddr_str(a) for a in found] == (first + second)[:10]
        assert all(dill.ipaddr_port(a) == 7 for a in found)
    assert len(dill.ipaddr_remotes(1, "localhost", 7)) == 1


def test_ipaddr_remotes_orders_families_and_stops_at_n(
    fake_resolver: Callable[..., FakeResolver],
) -> None:
    fake = fake_resolver(MIXED)

    def strs(n: int, mode: int) -> list[str]:
        return [dill.ipaddr_str(a) for a in dill.ipaddr_remotes(n, "mixed.test", 9, mode)]

    assert strs(10, dill.IPADDR_PREF_IPV4) == ["192.0.2.1", "192.0.2.2", "2001:db8::1", "fe80::2"]
    assert strs(10, 0) == strs(10, dill.IPADDR_PREF_IPV4)
    assert strs(10, dill.IPADDR_PREF_IPV6) == ["2001:db8::1", "fe80::2", "192.0.2.1", "192.0.2.2"]
    assert strs(3, dill.IPADDR_PREF_IPV6) == ["2001:db8::1", "fe80::2", "192.0.2.1"]
    assert strs(1, dill.IPADDR_PREF_IPV4) == ["192.0.2.1"]
    assert strs(10, dill.IPADDR_IPV4) == ["192.0.2.1", "192.0.2.2"]
    assert strs(10, dill.IPADDR_IPV6) == ["2001:db8::1", "fe80::2"]
    # One query per call; a strict mode asks for its family only.
    assert [q[2] for q in fake.queries[-2:]] == [V4, V6]
    scoped = dill.ipaddr_remotes(10, "mixed.test", 9, dill.IPADDR_IPV6)[1]
    assert dill.ipaddr_sockaddr(scoped) == ("fe80::2", 9, 0, 7)  # the scope is kept


def test_ipaddr_remote_unknown_name_eaddrnotavail() -> None:
    # .invalid never exists (RFC 6761); the deadline bounds a resolver that hangs.
    deadline = dill.now() + 5000
    with pytest.raises(OSError) as info:
        dill.ipaddr_remote(UNKNOWN, 80, 0, deadline)
    if info.value.errno == errno.ETIMEDOUT:
        pytest.skip("this machine's resolver does not answer for .invalid names")
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert not isinstance(info.value, socket.gaierror)
    assert UNKNOWN in str(info.value)
    assert dill.ipaddr_remotes(4, UNKNOWN, 80, 0, deadline) == []


def test_ipaddr_remote_name_that_cannot_exist_eaddrnotavail() -> None:
    # A 64-character label: IDNA refuses it before any query is sent.
    name = "a" * 64 + ".invalid"
    assert errno_of(lambda: dill.ipaddr_remote(name, 80)) == errno.EADDRNOTAVAIL
    assert dill.ipaddr_remotes(2, name, 80) == []


@pytest.mark.parametrize(
    "failure",
    [
        socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
        socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure in name resolution"),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    ],
)
def test_ipaddr_remote_every_resolver_failure_is_eaddrnotavail(
    fake_resolver: Callable[..., FakeResolver], failure: BaseException
) -> None:
    fake_resolver([], raises=failure)
    with pytest.raises(OSError) as info:
        dill.ipaddr_remote("example.test", 80)
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert not isinstance(info.value, socket.gaierror)
    assert dill.ipaddr_remotes(3, "example.test", 80) == []


# Waiting: green, with deadlines, cancelable ---------------------------------------------


def test_ipaddr_remote_does_not_block_other_coroutines(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_system_resolver(monkeypatch, 0.3)
    ticks: list[int] = []

    def ticker() -> None:
        while True:
            dill.msleep(dill.now() + 10)
            ticks.append(1)

    h = dill.go(ticker)
    start = time.monotonic()
    a = dill.ipaddr_remote("localhost", 80)
    elapsed = time.monotonic() - start
    dill.hclose(h)
    assert dill.ipaddr_str(a) == LOCALHOST_V4[0]
    assert elapsed >= 0.3  # the slow resolver was really used
    # A blocking lookup would have let the ticker run at most once.
    assert len(ticks) >= 10


def test_ipaddr_remote_deadline_0_for_a_name_etimedout() -> None:
    for deadline in (0, dill.now() - 1):
        with pytest.raises(TimeoutError) as info:
            dill.ipaddr_remote("localhost", 80, 0, deadline)
        assert info.value.errno == errno.ETIMEDOUT
        assert errno_of(lambda d=deadline: dill.ipaddr_remotes(2, "localhost", 80, 0, d)) == (
            errno.ETIMEDOUT
        )


def test_ipaddr_remote_deadline_passes_while_resolving_etimedout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow_system_resolver(monkeypatch, 0.5)
    start = dill.now()
    with pytest.raises(OSError) as info:
        dill.ipaddr_remote("localhost", 80, 0, start + 50)
    elapsed = dill.now() - start
    assert info.value.errno == errno.ETIMEDOUT
    assert 45 <= elapsed < 400
    with pytest.raises(OSError) as info:
        dill.ipaddr_remotes(3, "localhost", 80, dill.IPADDR_PREF_IPV6, dill.now() + 50)
    assert info.value.errno == errno.ETIMEDOUT


def test_ipaddr_remote_deadline_in_time_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_system_resolver(monkeypatch, 0.05)
    a = dill.ipaddr_remote("localhost", 80, 0, dill.now() + 5000)
    assert dill.ipaddr_str(a) == LOCALHOST_V4[0]


def test_ipaddr_remote_lets_a_callers_gevent_timeout_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow_system_resolver(monkeypatch, 0.5)
    mine = gevent.Timeout(0.05)
    with pytest.raises(gevent.Timeout) as info, mine:
        dill.ipaddr_remote("localhost", 80, 0, dill.now() + 5000)
    assert info.value is mine


def test_ipaddr_remote_in_canceled_coroutine_ecanceled() -> None:
    log: list[object] = []

    def worker() -> None:
        with contextlib.suppress(dill.Canceled):
            dill.msleep(-1)
        for call in (
            lambda: dill.ipaddr_remote("localhost", 80),
            lambda: dill.ipaddr_remote("localhost", 80, 0, 0),  # ECANCELED comes first
            lambda: dill.ipaddr_remotes(3, "localhost", 80),
        ):
            try:
                call()
            except dill.Canceled as exc:
                log.append(exc.errno)
        # A literal needs no wait: it works even now, as in libdill.
        log.append(dill.ipaddr_str(dill.ipaddr_remote("127.0.0.1", 80)))

    h = dill.go(worker)
    dill.hclose(h)
    assert log == [errno.ECANCELED] * 3 + ["127.0.0.1"]


def test_ipaddr_remote_canceled_while_resolving(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_system_resolver(monkeypatch, 0.5)
    log: list[object] = []

    def worker() -> None:
        try:
            dill.ipaddr_remote("localhost", 80)
        except dill.Canceled as exc:
            log.append(exc.errno)
            raise

    h = dill.go(worker)
    dill.msleep(dill.now() + 20)
    start = time.monotonic()
    dill.hclose(h)
    assert time.monotonic() - start < 0.3  # did not wait for the lookup
    assert log == [errno.ECANCELED]


# Argument errors ------------------------------------------------------------------------


def test_ipaddr_remote_einval() -> None:
    calls: list[Callable[[], object]] = [
        lambda: dill.ipaddr_remote(None, 80),  # type: ignore[arg-type]
        lambda: dill.ipaddr_remote("localhost", 80, 5),
        lambda: dill.ipaddr_remote("localhost", 80, -1),
        lambda: dill.ipaddr_remote("127.0.0.1", -1),
        lambda: dill.ipaddr_remote("127.0.0.1", 65536),
        lambda: dill.ipaddr_remote("localhost", 65536),
        lambda: dill.ipaddr_remotes(0, "localhost", 80),
        lambda: dill.ipaddr_remotes(-1, "127.0.0.1", 80),
        lambda: dill.ipaddr_remotes(1, None, 80),  # type: ignore[arg-type]
        lambda: dill.ipaddr_remotes(1, "localhost", 80, 7),
        lambda: dill.ipaddr_remotes(1, "localhost", 1 << 16),
    ]
    for call in calls:
        assert errno_of(call) == errno.EINVAL


def test_ipaddr_remote_wrong_types_typeerror() -> None:
    calls: list[Callable[[], object]] = [
        lambda: dill.ipaddr_remote(b"localhost", 80),  # type: ignore[arg-type]
        lambda: dill.ipaddr_remote("localhost", "80"),  # type: ignore[arg-type]
        lambda: dill.ipaddr_remote("localhost", 80, "0"),  # type: ignore[arg-type]
        lambda: dill.ipaddr_remote("localhost", 80, 0, 1.5),  # type: ignore[arg-type]
        lambda: dill.ipaddr_remotes("1", "localhost", 80),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(TypeError):
            call()


# Accessors ------------------------------------------------------------------------------


def test_ipaddr_family_len_sockaddr() -> None:
    a4 = dill.ipaddr_local("1.2.3.4", 80)
    a6 = dill.ipaddr_local("2001:db8::5", 81)
    assert (dill.ipaddr_family(a4), dill.ipaddr_len(a4)) == (V4, 16)
    assert (dill.ipaddr_family(a6), dill.ipaddr_len(a6)) == (V6, 28)
    assert dill.ipaddr_sockaddr(a4) == ("1.2.3.4", 80)
    assert dill.ipaddr_sockaddr(a6) == ("2001:db8::5", 81, 0, 0)
    longest = dill.ipaddr_local("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", 0)
    assert len(dill.ipaddr_str(longest)) < dill.IPADDR_MAXSTRLEN


def test_ipaddr_setport_and_port_round_trip() -> None:
    for literal in ("127.0.0.1", "::1"):
        a = dill.ipaddr_local(literal, 1)
        for port in (0, 1, 80, 65535):
            dill.ipaddr_setport(a, port)
            assert dill.ipaddr_port(a) == port
            assert dill.ipaddr_sockaddr(a)[1] == port
        assert dill.ipaddr_str(a) == literal


def test_ipaddr_setport_out_of_range_einval() -> None:
    a = dill.ipaddr_local("127.0.0.1", 80)
    for port in (-1, 65536):
        assert errno_of(lambda p=port: dill.ipaddr_setport(a, p)) == errno.EINVAL
    assert dill.ipaddr_port(a) == 80


def test_ipaddr_equal() -> None:
    a = dill.ipaddr_local("127.0.0.1", 80)
    assert dill.ipaddr_equal(a, dill.ipaddr_local("127.0.0.1", 80), 0) == 1
    assert dill.ipaddr_equal(a, dill.ipaddr_local("127.0.0.1", 81), 0) == 0
    assert dill.ipaddr_equal(a, dill.ipaddr_local("127.0.0.1", 81), 1) == 1
    assert dill.ipaddr_equal(a, dill.ipaddr_local("127.0.0.2", 80), 1) == 0
    # IPv4 vs its IPv4-mapped IPv6 form: different families, so 0 (libdill *obs*).
    mapped = dill.ipaddr_local("::ffff:127.0.0.1", 80)
    assert dill.ipaddr_equal(a, mapped, 1) == 0
    # flowinfo and scope_id are not compared.
    b = ipaddr_from_sockaddr(V6, ("fe80::1", 80, 0, 0))
    c = ipaddr_from_sockaddr(V6, ("fe80::1%lo", 80, 9, 1))
    assert dill.ipaddr_equal(b, c, 0) == 1
    assert dill.ipaddr_equal(dill.ipaddr_local(None, 0), dill.ipaddr(), 0) == 1


def test_accessors_reject_non_ipaddr_typeerror() -> None:
    fake: Any = ("127.0.0.1", 80)
    a = dill.ipaddr()
    for call in (
        lambda: dill.ipaddr_str(fake),
        lambda: dill.ipaddr_family(fake),
        lambda: dill.ipaddr_len(fake),
        lambda: dill.ipaddr_sockaddr(fake),
        lambda: dill.ipaddr_port(fake),
        lambda: dill.ipaddr_setport(fake, 80),
        lambda: dill.ipaddr_setport(a, "80"),
        lambda: dill.ipaddr_equal(a, fake, 0),
        lambda: dill.ipaddr_equal(fake, a, 0),
        lambda: dill.ipaddr_equal(a, a, None),
    ):
        with pytest.raises(TypeError):
            call()


# Property --------------------------------------------------------------------------------


@given(st.ip_addresses(), st.integers(0, 65535))
def test_ipaddr_local_round_trips_any_address(
    addr: Union[ipaddress.IPv4Address, ipaddress.IPv6Address], port: int
) -> None:
    a = dill.ipaddr_local(str(addr), port)
    family = V4 if addr.version == 4 else V6
    text = dill.ipaddr_str(a)
    assert ipaddress.ip_address(text) == addr
    assert socket.inet_pton(family, text) == addr.packed
    assert dill.ipaddr_port(a) == port
    assert dill.ipaddr_family(a) == family
    assert dill.ipaddr_len(a) == (16 if family == V4 else 28)
    assert dill.ipaddr_sockaddr(a) == ((text, port) if family == V4 else (text, port, 0, 0))
    assert dill.ipaddr_equal(a, a, 0) == 1
    assert dill.ipaddr_equal(a, dill.ipaddr_remote(str(addr), port, 0, 0), 0) == 1
    assert dill.ipaddr_equal(a, ipaddr_from_sockaddr(family, dill.ipaddr_sockaddr(a)), 0) == 1
