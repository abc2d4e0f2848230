"""Happy eyeballs: connecting by name over IPv6 and IPv4 (reference section 18, RFC 8305).

Real connections on loopback throughout. The name "localhost" goes through
the system's resolver; for names with several addresses of each family, a
test replaces the module's lookup with one that answers chosen loopback
addresses after chosen delays (the machine's /etc/hosts cannot be relied
on), and records every connect attempt as it passes it on to tcp_connect.
Addresses that do not answer are listeners whose backlog is full: Linux
then drops the SYN and the connect waits, as it would for a host that is
down. IPv6 has a single loopback address, so further IPv6 addresses are
IPv4-mapped ones (::ffff:127.0.0.x), which reach the IPv4 listeners.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from helpers import SAFETY_MS, in_canceled_coroutine, raises_errno, soon, spawn

import greendill as dill
from greendill import _happyeyeballs

V6, V4 = socket.AF_INET6, socket.AF_INET


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


def free_port_on(hosts: list[str]) -> int:
    """A port free on every host (IPv4-mapped hosts stand for their IPv4 address)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        probe.close()
        taken = []
        try:
            for host in hosts:
                family = V6 if ":" in host else V4
                s = socket.socket(family)
                taken.append(s)
                s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for s in taken:
                s.close()
    pytest.fail("no port free on every address")


@contextmanager
def listeners(answering: list[str], silent: list[str], port: int = 0) -> Iterator[int]:
    """Listeners on one port: those of `answering` accept, those of `silent` never answer.

    A silent listener's backlog is filled with connections that are never
    accepted, until a connect to it has to wait. Yields the port.
    """
    port = port or free_port_on(answering + silent)
    handles: list[int] = []
    try:
        for host in answering + silent:
            handles.append(
                dill.tcp_listen(dill.ipaddr_local(host, port), 0 if host in silent else 8)
            )
        for host in silent:
            addr = dill.ipaddr_remote(host, port)
            for _ in range(100):
                try:
                    handles.append(dill.tcp_connect(addr, dill.now() + 100))
                except OSError as exc:
                    assert exc.errno == errno.ETIMEDOUT, repr(exc)
                    break
            else:
                pytest.fail(f"the backlog of {host} never filled")
        yield port
    finally:
        close_all(*handles)


class Recorder:
    """Stands in for the lookup and for tcp_connect, recording what happens, when."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[int, tuple[int, list[str]]]):
        # answers: family -> (delay in ms, addresses)
        self.answers = answers
        self.start = dill.now()
        self.events: list[tuple[str, str, int]] = []  # (what, address, ms since start)
        monkeypatch.setattr(_happyeyeballs, "ipaddr_remotes", self.lookup)
        monkeypatch.setattr(_happyeyeballs, "tcp_connect", self.connect)
        monkeypatch.setattr(_happyeyeballs, "bundle_go", self.bundle_go)

    def note(self, what: str, where: str) -> None:
        self.events.append((what, where, dill.now() - self.start))

    def lookup(self, n: int, name: str, port: int, mode: int, deadline: int) -> list[dill.ipaddr]:
        family = V6 if mode == dill.IPADDR_IPV6 else V4
        delay, hosts = self.answers.get(family, (0, []))
        try:
            dill.msleep(self.start + delay)
        except dill.Canceled:
            self.note("lookup canceled", str(family))
            raise
        return [dill.ipaddr_remote(h, port) for h in hosts][:n]

    def connect(self, addr: dill.ipaddr, deadline: int) -> int:
        where = dill.ipaddr_str(addr)
        self.note("attempt", where)
        try:
            conn = dill.tcp_connect(addr, deadline)
        except dill.Canceled:
            self.note("canceled", where)
            raise
        except OSError as exc:
            self.note(errno.errorcode[exc.errno or 0], where)
            raise
        self.note("connected", where)
        return conn

    def bundle_go(self, b: int, fn: Any, *args: Any) -> None:
        # The moment the coordinator decides on an attempt, which is what
        # the rules govern (the attempt's coroutine runs a little later).
        if isinstance(args[0], dill.ipaddr):
            self.note("launch", dill.ipaddr_str(args[0]))
        dill.bundle_go(b, fn, *args)

    def attempts(self) -> list[tuple[str, int]]:
        """(address, ms) of each attempt launched, in order."""
        return [(where, ms) for what, where, ms in self.events if what == "launch"]


# Real names ---------------------------------------------------------------------------


def test_localhost_connects_to_a_listener_on_both_families() -> None:
    port = free_port_on(["127.0.0.1", "::1"])
    with listeners(["127.0.0.1", "::1"], [], port):
        conn = dill.happyeyeballs_connect("localhost", port, soon())
        dill.bsend(conn, b"x")
        dill.hclose(conn)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_ip_literals_connect(host: str) -> None:
    with listeners([host], []) as port:
        dill.hclose(dill.happyeyeballs_connect(host, port, soon()))


def test_localhost_with_a_listener_on_ipv4_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # With the pause between attempts made very long, the IPv4 attempt can
    # only start in time because the IPv6 one failed first.
    monkeypatch.setattr(_happyeyeballs, "ATTEMPT_DELAY", 10 * SAFETY_MS)
    with listeners(["127.0.0.1"], []) as port:
        rec = Recorder(monkeypatch, {V6: (0, ["::1"]), V4: (0, ["127.0.0.1"])})
        conn = dill.happyeyeballs_connect("localhost", port, soon())
        dill.hclose(conn)
    assert [e[:2] for e in rec.events if e[0] != "launch"] == [
        ("attempt", "::1"),
        ("ECONNREFUSED", "::1"),
        ("attempt", "127.0.0.1"),
        ("connected", "127.0.0.1"),
    ]


def test_localhost_with_a_listener_on_ipv6_only(monkeypatch: pytest.MonkeyPatch) -> None:
    with listeners(["::1"], []) as port:
        rec = Recorder(monkeypatch, {V6: (0, ["::1"]), V4: (0, ["127.0.0.1"])})
        conn = dill.happyeyeballs_connect("localhost", port, soon())
        dill.hclose(conn)
    assert rec.attempts()[0][0] == "::1"
    assert ("connected", "::1") in [e[:2] for e in rec.events]


def test_every_address_refusing_is_econnrefused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # libdill would wait for the deadline (here: forever).
    monkeypatch.setattr(_happyeyeballs, "ATTEMPT_DELAY", 10 * SAFETY_MS)
    rec = Recorder(monkeypatch, {V6: (0, ["::1"]), V4: (0, ["127.0.0.1", "127.0.0.2"])})
    port = free_port_on(["127.0.0.1", "127.0.0.2", "::1"])
    with raises_errno(errno.ECONNREFUSED) as info:
        dill.happyeyeballs_connect("localhost", port, -1)
    assert info.value.filename == f"127.0.0.2:{port}"  # the last attempt's address
    assert [where for where, _ in rec.attempts()] == ["::1", "127.0.0.1", "127.0.0.2"]


def test_every_address_refusing_with_the_real_resolver() -> None:
    port = free_port_on(["127.0.0.1", "::1"])
    with raises_errno(errno.ECONNREFUSED):
        dill.happyeyeballs_connect("localhost", port, -1)


def test_a_name_without_address_is_eaddrnotavail() -> None:
    with raises_errno(errno.EADDRNOTAVAIL):
        dill.happyeyeballs_connect("no-such-host.invalid", 80, soon())


# The RFC 8305 rules, with silent addresses ------------------------------------------------


def test_ipv6_answering_within_the_resolution_delay_goes_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with listeners([], ["::1", "127.0.0.2"]) as port, raises_errno(errno.ETIMEDOUT):
        rec = Recorder(monkeypatch, {V6: (10, ["::1"]), V4: (0, ["127.0.0.2"])})
        dill.happyeyeballs_connect("dual", port, rec.start + 400)
    (first, t1), (second, t2) = rec.attempts()
    assert (first, second) == ("::1", "127.0.0.2")
    assert t1 >= 10  # IPv4 answered at once, and still waited for IPv6
    assert t2 >= 10 + _happyeyeballs.ATTEMPT_DELAY


def test_ipv4_goes_first_once_the_resolution_delay_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with listeners([], ["::1", "127.0.0.2"]) as port, raises_errno(errno.ETIMEDOUT):
        rec = Recorder(monkeypatch, {V6: (150, ["::1"]), V4: (0, ["127.0.0.2"])})
        dill.happyeyeballs_connect("dual", port, rec.start + 500)
    (first, t1), (second, t2) = rec.attempts()
    assert (first, second) == ("127.0.0.2", "::1")
    assert t1 >= _happyeyeballs.RESOLUTION_DELAY
    # libdill counts the pause from the end of the resolution delay.
    assert t2 >= _happyeyeballs.RESOLUTION_DELAY + _happyeyeballs.ATTEMPT_DELAY


def test_families_alternate_and_attempts_are_spaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_happyeyeballs, "ATTEMPT_DELAY", 100)
    # Both families answer at once: a long resolution delay only keeps a
    # slow machine from taking IPv4 first.
    monkeypatch.setattr(_happyeyeballs, "RESOLUTION_DELAY", 1000)
    v6 = ["::1", "::ffff:127.0.0.2"]
    v4 = ["127.0.0.3", "127.0.0.4", "127.0.0.5"]
    silent = ["::1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    with listeners([], silent) as port, raises_errno(errno.ETIMEDOUT):
        rec = Recorder(monkeypatch, {V6: (0, v6), V4: (0, v4)})
        dill.happyeyeballs_connect("many", port, rec.start + 650)
    attempts = rec.attempts()
    assert [where for where, _ in attempts] == [
        "::1",
        "127.0.0.3",
        "::ffff:127.0.0.2",
        "127.0.0.4",
        "127.0.0.5",
    ]
    times = [ms for _, ms in attempts]
    # The pause is counted from the top of the coordinator's loop, as libdill
    # counts it, and an attempt notes its time a moment after that: a loaded
    # machine can stretch that moment by a few ms for one attempt and not for
    # the next (seen: [0, 100, 203, 301, 401]), and the clock counts whole ms.
    assert all(b - a >= 95 for a, b in zip(times, times[1:])), times
    # Every attempt was still running when the deadline came: all canceled.
    assert sorted(where for what, where, _ in rec.events if what == "canceled") == sorted(
        where for where, _ in attempts
    )


def test_the_other_family_fills_in_and_the_preference_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # IPv4 answers late: while it has nothing, IPv6 goes on, and IPv4 is
    # still the preferred family when its address comes (libdill's test11).
    # Attempts every 200 ms; IPv4 answers at 300, between the second and third.
    monkeypatch.setattr(_happyeyeballs, "ATTEMPT_DELAY", 200)
    monkeypatch.setattr(_happyeyeballs, "RESOLUTION_DELAY", 1000)
    v6 = ["::1", "::ffff:127.0.0.2", "::ffff:127.0.0.3"]
    silent = ["::1", "127.0.0.2", "127.0.0.3", "127.0.0.4"]
    with listeners([], silent) as port, raises_errno(errno.ETIMEDOUT):
        rec = Recorder(monkeypatch, {V6: (0, v6), V4: (300, ["127.0.0.4"])})
        dill.happyeyeballs_connect("late-v4", port, rec.start + 750)
    assert [where for where, _ in rec.attempts()] == [
        "::1",
        "::ffff:127.0.0.2",
        "127.0.0.4",
        "::ffff:127.0.0.3",
    ]


def test_the_winner_cancels_the_other_attempts_and_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_happyeyeballs, "ATTEMPT_DELAY", 100)
    monkeypatch.setattr(_happyeyeballs, "RESOLUTION_DELAY", 1000)
    # The IPv6 address does not answer, IPv4 does; a second IPv4 lookup
    # result never comes (the lookup hangs).
    port = free_port_on(["::1", "127.0.0.2"])
    with listeners(["127.0.0.2"], ["::1"], port):
        rec = Recorder(monkeypatch, {V6: (0, ["::1"]), V4: (20, ["127.0.0.2"])})
        conn = dill.happyeyeballs_connect("mixed", port, soon())
        dill.hclose(conn)
    whats = [e[:2] for e in rec.events]
    assert [where for where, _ in rec.attempts()] == ["::1", "127.0.0.2"]
    assert ("connected", "127.0.0.2") in whats
    assert ("canceled", "::1") in whats  # the silent attempt ended with the call


def test_a_pending_lookup_is_canceled_by_the_winner(monkeypatch: pytest.MonkeyPatch) -> None:
    with listeners(["::1"], []) as port:
        rec = Recorder(monkeypatch, {V6: (0, ["::1"]), V4: (10 * SAFETY_MS, ["127.0.0.1"])})
        dill.hclose(dill.happyeyeballs_connect("slow-v4", port, soon()))
    assert ("lookup canceled", str(V4)) in [e[:2] for e in rec.events]


# Errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "port"), [(None, 80), ("localhost", 0), ("localhost", -1)])
def test_einval(name: Any, port: int) -> None:
    with raises_errno(errno.EINVAL):
        dill.happyeyeballs_connect(name, port, soon())


def test_einval_for_a_port_above_65535() -> None:
    with raises_errno(errno.EINVAL):
        dill.happyeyeballs_connect("localhost", 65536, soon())


def test_etimedout_when_nothing_answers() -> None:
    with listeners([], ["127.0.0.1"]) as port:
        deadline = dill.now() + 200
        with raises_errno(errno.ETIMEDOUT):
            dill.happyeyeballs_connect("127.0.0.1", port, deadline)
        assert dill.now() >= deadline


def test_etimedout_with_deadline_zero() -> None:
    with listeners(["127.0.0.1"], []) as port, raises_errno(errno.ETIMEDOUT):
        dill.happyeyeballs_connect("127.0.0.1", port, 0)


def test_ecanceled_while_connecting() -> None:
    with listeners([], ["127.0.0.1"]) as port:
        co, out = spawn(dill.happyeyeballs_connect, "127.0.0.1", port, -1)
        dill.msleep(dill.now() + 20)
        dill.hclose(co)
        assert isinstance(out[0], dill.Canceled)


def test_ecanceled_in_a_canceled_coroutine() -> None:
    result = in_canceled_coroutine(lambda: dill.happyeyeballs_connect("127.0.0.1", 1, -1))
    assert isinstance(result, dill.Canceled)


def test_emfile_when_no_descriptor_is_left() -> None:
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with listeners(["127.0.0.1"], []) as port:
        fillers = []
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
            with suppress(OSError):
                while True:
                    fillers.append(socket.socket())
            with raises_errno(errno.EMFILE):
                dill.happyeyeballs_connect("127.0.0.1", port, soon())
        finally:
            for f in fillers:
                f.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_enfile() -> None:
    pytest.skip("ENFILE needs the system-wide file table exhausted: not done on a shared machine")


def test_enomem() -> None:
    pytest.skip("ENOMEM: never raised (Python raises MemoryError); not producible safely")
