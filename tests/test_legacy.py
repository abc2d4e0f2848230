"""Legacy code beside greendill: cancellation of foreign waits, deadline_scope,
sockets handed over both ways, OS threads, and the import-order check.

The suite runs twice (tox's plain and patched environments). Under
`-p greendill.testing.patched` the legacy calls are the standard library's
own names, made cooperative by gevent.monkey.patch_all(). In the plain run
the same tests use gevent's modules directly (gevent.socket, gevent.sleep,
gevent.select, gevent.queue, gevent.subprocess), which are what patching
installs; the standard library's names would block the thread there. The
import-order tests start fresh interpreters, so they run in both.
"""

from __future__ import annotations

import errno
import os
import queue
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

import gevent
import gevent.queue
import gevent.select
import gevent.socket
import gevent.subprocess
import pytest
from gevent.monkey import get_original
from helpers import (
    SAFETY_MS,
    greendill_and_plain_socket,
    no_fd_left,
    raises_errno,
    recv_exactly,
    skip_unless_patch_all_works,
)

import greendill as dill
from greendill.testing import monkeypatched, run_in_os_thread

REPO = Path(__file__).resolve().parent.parent


class Legacy:
    """The blocking calls legacy code makes, as this run has them cooperative."""

    def __init__(self) -> None:
        if monkeypatched():
            self.sleep: Callable[[float], None] = time.sleep
            self.socket: Any = socket
            self.select: Any = select.select
            self.Queue: Any = queue.Queue
            self.subprocess: Any = subprocess
        else:
            self.sleep = gevent.sleep
            self.socket = gevent.socket
            self.select = gevent.select.select
            self.Queue = gevent.queue.Queue
            self.subprocess = gevent.subprocess


legacy = Legacy()


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


def cancel_while_blocked(
    fn: Callable[[], Any], ready: Callable[[], bool] = lambda: True
) -> list[Any]:
    """Run fn in a coroutine, hclose it once it waits; return what it ended with.

    ready tells when fn has reached the wait that the test is about (on a
    loaded machine, what comes before it may wait too).
    """
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)
            raise

    h = dill.go(body)
    deadline = dill.now() + SAFETY_MS
    dill.msleep(dill.now() + 30)  # it is waiting by now, in legacy code
    while not ready() and dill.now() < deadline:
        dill.msleep(dill.now() + 10)
    assert out == []
    dill.hclose(h)
    return out


# Legacy calls in a coroutine: hclose interrupts them -------------------------------


@pytest.fixture
def listening() -> Iterator[Any]:
    srv = legacy.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    yield srv
    srv.close()


def test_hclose_interrupts_a_legacy_recv_and_its_socket_is_closed(listening: Any) -> None:
    port = listening.getsockname()[1]
    made: list[Any] = []

    def client() -> bytes:
        with legacy.socket.create_connection(("127.0.0.1", port)) as conn:
            made.append(conn)
            return conn.recv(10)  # type: ignore[no-any-return]

    out = cancel_while_blocked(client, ready=lambda: bool(made))
    assert isinstance(out[0], dill.Canceled) and out[0].errno == errno.ECANCELED
    assert made[0].fileno() == -1  # its with statement closed it on the way out
    peer, _ = listening.accept()
    with peer:
        assert peer.recv(1) == b""  # the server sees it gone


def test_hclose_interrupts_a_legacy_sleep() -> None:
    out = cancel_while_blocked(lambda: legacy.sleep(SAFETY_MS / 1000))
    assert isinstance(out[0], dill.Canceled)


def test_hclose_interrupts_a_legacy_select() -> None:
    a, b = legacy.socket.socketpair()
    with a, b:
        out = cancel_while_blocked(lambda: legacy.select([a], [], [], SAFETY_MS / 1000))
        assert isinstance(out[0], dill.Canceled)
        # The select left nothing behind: the socket is as good as before.
        b.sendall(b"x")
        assert legacy.select([a], [], [], SAFETY_MS / 1000)[0] == [a]


def test_hclose_interrupts_a_legacy_queue_get_and_the_queue_still_works() -> None:
    q = legacy.Queue()
    out = cancel_while_blocked(q.get)
    assert isinstance(out[0], dill.Canceled)
    q.put("after")
    assert q.get(timeout=SAFETY_MS / 1000) == "after"


@pytest.mark.greendill_patched_only(
    "gevent.subprocess in an unpatched process makes libev reap every child of the"
    " process (gevent's caveat), so later standard-library waits in this test process"
    " would find their children gone; patched, subprocess is gevent's throughout"
)
def test_hclose_interrupts_a_subprocess_wait_and_the_finally_reaps_the_child() -> None:
    # hclose cannot know the child: code that starts one kills it when
    # canceled (a plain `with Popen(...)` would wait in __exit__ for it
    # to end by itself, and hclose with it). Canceled inside Popen() itself,
    # which waits for the exec, would leave the child running (as a
    # gevent.Timeout would): the test cancels once Popen() has returned.
    children: list[Any] = []

    def run_child() -> int:
        child = legacy.subprocess.Popen(["sleep", "60"])
        children.append(child)
        try:
            return child.wait()  # type: ignore[no-any-return]
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    out = cancel_while_blocked(run_child, ready=lambda: bool(children))
    assert isinstance(out[0], dill.Canceled)
    child = children[0]
    assert child.returncode == -9
    # Reaped: no zombie left. (The kernel's waitpid: gevent's patched one
    # answers from what its SIGCHLD watcher collected.)
    with pytest.raises(ChildProcessError):
        get_original("os", "waitpid")(child.pid, os.WNOHANG)


def test_a_canceled_coroutine_cannot_wait_in_greendill_but_legacy_cleanup_still_runs() -> None:
    # After Canceled, greendill's calls fail at once (libdill's rule), while
    # the legacy cleanup in the finally clause runs to its end.
    seen: list[Any] = []

    def body() -> None:
        try:
            legacy.sleep(SAFETY_MS / 1000)
        finally:
            legacy.sleep(0.001)  # a short legacy wait is allowed
            seen.append("cleanup done")
            try:
                dill.msleep(dill.now() + 1)
            except dill.Canceled:
                seen.append("msleep canceled")

    h = dill.go(body)
    dill.msleep(dill.now() + 20)
    dill.hclose(h)
    assert seen == ["cleanup done", "msleep canceled"]


@pytest.mark.greendill_patched_only("the standard library's names are gevent's only when patched")
def test_the_standard_library_is_cooperative_in_the_patched_run() -> None:
    assert time.sleep is gevent.sleep
    assert socket.socket is gevent.socket.socket
    assert select.select is gevent.select.select
    assert queue.Queue is gevent.queue.Queue


# deadline_scope ----------------------------------------------------------------------


def test_deadline_scope_raises_timeout_error_not_before_its_deadline() -> None:
    deadline = dill.now() + 50
    with pytest.raises(TimeoutError) as info, dill.deadline_scope(deadline) as scope:
        legacy.sleep(SAFETY_MS / 1000)
    assert info.value.errno == errno.ETIMEDOUT
    assert "deadline_scope" in str(info.value)
    assert dill.now() >= deadline
    assert scope.expired


def test_deadline_scope_that_is_not_reached_changes_nothing() -> None:
    with dill.deadline_scope(dill.now() + SAFETY_MS) as scope:
        legacy.sleep(0.001)
        dill.msleep(dill.now() + 1)
    assert not scope.expired
    with dill.deadline_scope(-1) as scope:  # no deadline: no timer at all
        legacy.sleep(0.001)
    assert not scope.expired
    # Nothing fires later either.
    legacy.sleep(0.02)


def test_deadline_scope_0_lets_what_does_not_wait_finish_and_stops_the_first_wait() -> None:
    with dill.deadline_scope(0):
        total = sum(range(1000))
    assert total == 499500
    with pytest.raises(TimeoutError), dill.deadline_scope(0):
        legacy.sleep(SAFETY_MS / 1000)
    with pytest.raises(TimeoutError), dill.deadline_scope(dill.now() - 1000):
        dill.msleep(-1)


def test_deadline_scope_bounds_a_blocking_legacy_client_of_a_silent_server(
    listening: Any,
) -> None:
    port = listening.getsockname()[1]
    before = open_fds()
    with pytest.raises(TimeoutError):  # noqa: SIM117 (the order is the point)
        with dill.deadline_scope(dill.now() + 50):
            with legacy.socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                conn.recv(100)  # the server never answers
    assert open_fds() <= before  # the connection was closed on the way out
    peer, _ = listening.accept()
    peer.close()


def test_deadline_scope_is_not_swallowed_by_legacy_except_exception() -> None:
    caught: list[BaseException] = []
    with pytest.raises(TimeoutError), dill.deadline_scope(dill.now() + 20):
        try:
            legacy.sleep(SAFETY_MS / 1000)
        except Exception as exc:  # what legacy code often does
            caught.append(exc)
    assert caught == []


def test_deadline_scope_that_the_block_swallows_ends_normally() -> None:
    with dill.deadline_scope(dill.now() + 10) as scope, suppress(BaseException):
        legacy.sleep(SAFETY_MS / 1000)
    assert scope.expired


def test_deadline_scopes_nest_each_raising_for_its_own_deadline() -> None:
    # Inner first: the inner scope raises, the outer one goes on.
    with dill.deadline_scope(dill.now() + SAFETY_MS) as outer:
        with pytest.raises(TimeoutError), dill.deadline_scope(dill.now() + 20) as inner:
            legacy.sleep(SAFETY_MS / 1000)
        assert inner.expired
        legacy.sleep(0.001)
    assert not outer.expired
    # Outer first: its expiry passes through the inner scope, which stays quiet.
    with (
        pytest.raises(TimeoutError),
        dill.deadline_scope(dill.now() + 20) as outer,
        dill.deadline_scope(dill.now() + SAFETY_MS) as inner,
    ):
        legacy.sleep(SAFETY_MS / 1000)
    assert outer.expired
    assert not inner.expired


def test_deadline_scope_lets_an_outer_gevent_timeout_through() -> None:
    timeout = gevent.Timeout(0.02)
    with (
        pytest.raises(gevent.Timeout) as info,
        timeout,
        dill.deadline_scope(dill.now() + SAFETY_MS) as scope,
    ):
        legacy.sleep(SAFETY_MS / 1000)
    assert info.value is timeout
    assert not scope.expired


def test_deadline_scope_lets_canceled_through() -> None:
    seen: list[Any] = []

    def body() -> None:
        try:
            with dill.deadline_scope(dill.now() + SAFETY_MS):
                legacy.sleep(SAFETY_MS / 1000)
        except BaseException as exc:
            seen.append(exc)
            raise

    h = dill.go(body)
    dill.msleep(dill.now() + 20)
    dill.hclose(h)
    assert len(seen) == 1 and type(seen[0]) is dill.Canceled


def test_deadline_scope_around_a_greendill_call_breaks_its_direction() -> None:
    a, b = dill.ipc_pair()
    try:
        with pytest.raises(TimeoutError), dill.deadline_scope(dill.now() + 20):
            dill.brecv(a, 1)  # no deadline of its own
        # As a brecv with a deadline: the receiving side is broken now.
        with raises_errno(errno.ECONNRESET):
            dill.brecv(a, 1, 0)
        dill.bsend(a, b"still sends")
        assert dill.brecv(b, 11, dill.now() + SAFETY_MS) == b"still sends"
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_deadline_scope_argument_errors() -> None:
    with pytest.raises(TypeError):
        dill.deadline_scope(1.5)  # type: ignore[arg-type]
    scope = dill.deadline_scope(dill.now() + SAFETY_MS)
    with scope, pytest.raises(RuntimeError), scope:
        pass


# The fromfd calls take socket objects -----------------------------------------------


def socket_classes() -> list[Any]:
    """The socket classes legacy code may hand over: the standard one and gevent's."""
    return [get_original("socket", "socket"), gevent.socket.socket]


@contextmanager
def tcp_pair(cls: Any) -> Iterator[tuple[Any, socket.socket]]:
    """A connected pair: the first of class cls, the second a standard socket."""
    stdlib = get_original("socket", "socket")
    with stdlib(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        mine = cls(socket.AF_INET, socket.SOCK_STREAM)
        mine.connect(srv.getsockname())
        theirs, _ = srv.accept()
    try:
        yield mine, theirs
    finally:
        mine.close()
        theirs.close()


@pytest.mark.parametrize("cls", socket_classes(), ids=["stdlib", "gevent"])
def test_tcp_fromfd_takes_a_socket_object_and_closes_it(cls: Any) -> None:
    with tcp_pair(cls) as (mine, theirs):
        s = dill.tcp_fromfd(mine)
        try:
            assert mine.fileno() == -1  # the object is closed; the handle owns the socket
            dill.bsend(s, b"hello")
            assert recv_exactly(theirs, 5) == b"hello"
            theirs.sendall(b"world")
            assert dill.brecv(s, 5, dill.now() + SAFETY_MS) == b"world"
        finally:
            dill.hclose(s)


@pytest.mark.parametrize("cls", socket_classes(), ids=["stdlib", "gevent"])
def test_tcp_listener_fromfd_takes_a_socket_object(cls: Any) -> None:
    srv = cls(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    ls = dill.tcp_listener_fromfd(srv)
    assert srv.fileno() == -1
    try:
        client = get_original("socket", "socket")(socket.AF_INET, socket.SOCK_STREAM)
        with client:
            client.connect(("127.0.0.1", port))
            s = dill.tcp_accept(ls, dill.now() + SAFETY_MS)
            dill.hclose(s)
    finally:
        dill.hclose(ls)


def test_ipc_fromfd_and_listener_fromfd_take_socket_objects(tmp_path: Path) -> None:
    mine, theirs = legacy.socket.socketpair()
    s = dill.ipc_fromfd(mine)
    assert mine.fileno() == -1
    dill.bsend(s, b"ipc")
    assert theirs.recv(3) == b"ipc"
    dill.hclose(s)
    theirs.close()
    srv = legacy.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "l"))
    srv.listen(1)
    ls = dill.ipc_listener_fromfd(srv)
    assert srv.fileno() == -1
    c = dill.ipc_connect(tmp_path / "l", dill.now() + SAFETY_MS)
    a = dill.ipc_accept(ls, dill.now() + SAFETY_MS)
    for h in (a, c, ls):
        dill.hclose(h)


def test_fromfd_of_a_wrong_socket_object_leaves_it_open() -> None:
    udp = legacy.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unconnected = legacy.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with udp, unconnected:
        for call in (dill.tcp_fromfd, dill.tcp_listener_fromfd, dill.ipc_fromfd):
            for sock in (udp, unconnected):
                with raises_errno(errno.EINVAL):
                    call(sock)
                assert sock.fileno() >= 0  # still the caller's


def test_fromfd_of_a_closed_socket_object_is_ebadf_and_of_other_objects_a_type_error() -> None:
    sock = legacy.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.close()
    for call in (dill.tcp_fromfd, dill.tcp_listener_fromfd, dill.ipc_fromfd):
        with raises_errno(errno.EBADF):
            call(sock)
        with pytest.raises(TypeError):
            call(object())  # type: ignore[arg-type]


# tcp_tosocket and ipc_tosocket -------------------------------------------------------


@contextmanager
def dill_tcp_pair() -> Iterator[tuple[int, socket.socket]]:
    """A greendill TCP connection and its standard-library peer."""
    addr = dill.ipaddr_local("127.0.0.1", 0, dill.IPADDR_IPV4)
    ls = dill.tcp_listen(addr, 1)
    try:
        peer = get_original("socket", "socket")(socket.AF_INET, socket.SOCK_STREAM)
        peer.connect(("127.0.0.1", dill.ipaddr_port(addr)))
        s = dill.tcp_accept(ls, dill.now() + SAFETY_MS)
    finally:
        dill.hclose(ls)
    try:
        yield s, peer
    finally:
        peer.close()
        with suppress(OSError):
            dill.hclose(s)


def test_tcp_tosocket_hands_the_connection_over_with_its_unread_bytes() -> None:
    with dill_tcp_pair() as (s, peer):
        peer.sendall(b"headbody")
        assert dill.brecv(s, 4, dill.now() + SAFETY_MS) == b"head"
        sock = dill.tcp_tosocket(s)
        with sock:
            with raises_errno(errno.EBADF):
                dill.hquery(s, dill.bsock_type)  # the handle is gone
            assert isinstance(sock, socket.socket)  # gevent's class when patched
            assert sock.gettimeout() is None
            if not monkeypatched():
                assert os.get_blocking(sock.fileno())  # a plain blocking socket now
            assert recv_exactly(sock, 4) == b"body"  # greendill kept no buffer
            sock.sendall(b"reply")
            assert recv_exactly(peer, 5) == b"reply"
        assert peer.recv(1) == b""  # the object's close closes the connection


def test_tcp_tosocket_after_tcp_done_keeps_the_half_close() -> None:
    with dill_tcp_pair() as (s, peer):
        dill.tcp_done(s)
        sock = dill.tcp_tosocket(s)
        with sock:
            assert peer.recv(1) == b""  # FIN was sent, and only that
            peer.sendall(b"late")
            assert recv_exactly(sock, 4) == b"late"
            with pytest.raises(BrokenPipeError):
                sock.sendall(b"x")


def test_tcp_tosocket_share_keeps_the_handle_working() -> None:
    with dill_tcp_pair() as (s, peer):
        sock = dill.tcp_tosocket(s, share=True)
        with sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert sock.getpeername() == peer.getsockname()
            if not monkeypatched():
                assert sock.gettimeout() == 0.0  # the shared fd is non-blocking
        # Closing the shared object closed its duplicate only.
        dill.bsend(s, b"still")
        assert recv_exactly(peer, 5) == b"still"


def test_tcp_tosocket_of_a_listener_accepts() -> None:
    addr = dill.ipaddr_local("127.0.0.1", 0, dill.IPADDR_IPV4)
    ls = dill.tcp_listen(addr, 1)
    srv = dill.tcp_tosocket(ls)
    with srv:
        srv.settimeout(SAFETY_MS / 1000)
        client = legacy.socket.create_connection(("127.0.0.1", dill.ipaddr_port(addr)))
        with client:
            conn, _ = srv.accept()
            conn.close()


def test_ipc_tosocket_hands_a_pair_end_over() -> None:
    a, b = dill.ipc_pair()
    try:
        sock = dill.ipc_tosocket(a)
        with sock:
            assert sock.family == socket.AF_UNIX
            dill.bsend(b, b"ping")
            assert recv_exactly(sock, 4) == b"ping"
            sock.sendall(b"pong")
            assert dill.brecv(b, 4, dill.now() + SAFETY_MS) == b"pong"
        shared = dill.ipc_tosocket(b, share=True)
        shared.close()
        dill.hquery(b, dill.bsock_type)  # still open
    finally:
        dill.hclose(b)


@contextmanager
def dill_ipc_pair() -> Iterator[tuple[int, socket.socket]]:
    """A greendill IPC connection and its standard-library peer."""
    with greendill_and_plain_socket() as (s, peer):
        try:
            yield s, peer
        finally:
            with suppress(OSError):
                dill.hclose(s)


#: Per transport: a connection and its peer, and the name of its tosocket call.
TRANSPORTS: dict[str, tuple[Callable[[], Any], str]] = {
    "tcp": (dill_tcp_pair, "tcp_tosocket"),
    "ipc": (dill_ipc_pair, "ipc_tosocket"),
}


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_tosocket_ebusy_while_a_coroutine_waits_on_the_handle(transport: str) -> None:
    connection, name = TRANSPORTS[transport]
    tosocket = getattr(dill, name)
    with connection() as (s, _):
        h = dill.go(lambda: dill.brecv(s, 1))
        try:
            with raises_errno(errno.EBUSY):
                tosocket(s)
            tosocket(s, share=True).close()  # sharing is fine
        finally:
            dill.hclose(h)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_tosocket_econnreset_for_a_broken_connection_and_the_handle_is_closed(
    transport: str,
) -> None:
    connection, name = TRANSPORTS[transport]
    with connection() as (s, _):
        with raises_errno(errno.ETIMEDOUT):
            dill.brecv(s, 1, dill.now() + 10)
        with raises_errno(errno.ECONNRESET):
            getattr(dill, name)(s)
        with raises_errno(errno.EBADF):
            dill.hclose(s)


def test_tosocket_enotsup_and_ebadf() -> None:
    a, b = dill.ipc_pair()
    ch0, ch1 = dill.chmake()
    try:
        for h in (a, ch0):
            with raises_errno(errno.ENOTSUP):
                dill.tcp_tosocket(h)
        with raises_errno(errno.ENOTSUP):
            dill.ipc_tosocket(ch0)
    finally:
        for h in (a, b, ch0, ch1):
            dill.hclose(h)
    for call in (dill.tcp_tosocket, dill.ipc_tosocket):
        with raises_errno(errno.EBADF):
            call(a)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_tosocket_share_emfile(transport: str) -> None:
    connection, name = TRANSPORTS[transport]
    with connection() as (s, _):
        with no_fd_left(), raises_errno(errno.EMFILE):
            getattr(dill, name)(s, share=True)
        dill.hquery(s, dill.bsock_type)  # the handle is untouched


@pytest.mark.skip(reason="ENFILE: the system-wide file table cannot be exhausted safely")
def test_tosocket_share_enfile() -> None:
    pass  # pragma: no cover


@pytest.mark.greendill_patched_only("a handed-over socket waits cooperatively only when patched")
def test_a_handed_over_socket_in_a_coroutine_is_canceled_by_hclose() -> None:
    with dill_tcp_pair() as (s, peer):
        sock = dill.tcp_tosocket(s)
        with sock:
            out = cancel_while_blocked(lambda: sock.recv(1))
            assert isinstance(out[0], dill.Canceled)
            peer.sendall(b"z")
            assert sock.recv(1) == b"z"  # the socket itself is fine


# OS threads: a hub and a handle table each ---------------------------------------------


def echo_in_this_thread(tag: str) -> tuple[str, int]:
    """Coroutines and a socket pair in the calling thread; return (echoed, its first handle)."""
    a, b = dill.ipc_pair()

    def echo() -> None:
        dill.bsend(b, dill.brecv(b, len(tag)))

    h = dill.go(echo)
    try:
        dill.bsend(a, tag.encode())
        got = dill.brecv(a, len(tag), dill.now() + SAFETY_MS).decode()
        dill.bundle_wait(h, dill.now() + SAFETY_MS)
        return got, a
    finally:
        for x in (h, a, b):
            dill.hclose(x)


def test_two_os_threads_run_coroutines_and_sockets_with_their_own_handles() -> None:
    mine = dill.hmake(Thing())
    try:
        results: dict[str, Any] = {}
        ready = get_original("threading", "Event")()

        def other() -> None:
            with raises_errno(errno.EBADF):
                dill.hquery(mine, None)  # the main thread's handle is not ours
            results["other"] = echo_in_this_thread("other thread")
            ready.set()

        # Both threads run their coroutines at the same time.
        h = dill.go(lambda: results.setdefault("main", echo_in_this_thread("main thread")))
        run_in_os_thread(other)
        dill.bundle_wait(h, dill.now() + SAFETY_MS)
        dill.hclose(h)
        assert ready.is_set()
        assert results["main"][0] == "main thread"
        assert results["other"][0] == "other thread"
    finally:
        dill.hclose(mine)


class Thing:
    def query(self, type_: object) -> Any:
        return self

    def close(self) -> None:
        pass


@pytest.mark.greendill_patched_only("under patching threading.Thread makes a greenlet")
def test_a_patched_thread_is_a_greenlet_of_this_thread_and_shares_its_handles() -> None:
    mine = dill.hmake(Thing())
    seen: list[Any] = []

    def body() -> None:
        seen.append(dill.hquery(mine, None))  # the same table: the handle is valid
        seen.append(echo_in_this_thread("greenlet thread")[0])

    t = threading.Thread(target=body)
    t.start()
    t.join(SAFETY_MS / 1000)
    dill.hclose(mine)
    assert len(seen) == 2 and seen[1] == "greenlet thread"


@pytest.mark.greendill_unpatched_only("without patching threading.Thread is an OS thread")
def test_a_plain_thread_has_its_own_handles() -> None:
    mine = dill.hmake(Thing())
    seen: list[Any] = []

    def body() -> None:
        try:
            dill.hquery(mine, None)
        except OSError as exc:
            seen.append(exc.errno)
        seen.append(echo_in_this_thread("os thread")[0])
        gevent.get_hub().destroy(destroy_loop=True)

    t = threading.Thread(target=body)
    t.start()
    t.join(SAFETY_MS / 1000)
    dill.hclose(mine)
    assert seen == [errno.EBADF, "os thread"]


# The import-order check ------------------------------------------------------------------


def run_python(code: str, patches: bool = True) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter that imports the greendill under test."""
    if patches:
        skip_unless_patch_all_works()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *sys.path]))
    return get_original("subprocess", "run")(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=SAFETY_MS / 1000 * 3,
        check=False,
    )


# What each fresh interpreter does once patched: legacy calls in coroutines,
# canceled; a deadline_scope; then it prints OK.
SCENARIO = """
import socket, time, greendill as dill
out = []
def body():
    a, b = socket.socketpair()
    with a, b:
        try:
            a.recv(1)
        except dill.Canceled:
            out.append("canceled")
            raise
h = dill.go(body)
dill.msleep(dill.now() + 20)
dill.hclose(h)
try:
    with dill.deadline_scope(dill.now() + 20):
        time.sleep(5)
except TimeoutError:
    out.append("timeout")
assert out == ["canceled", "timeout"], out
print("OK")
"""


def test_patch_first_then_greendill_no_warning() -> None:
    proc = run_python("from gevent import monkey; monkey.patch_all()\n" + SCENARIO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"
    assert "MonkeyPatchWarning" not in proc.stderr


def test_greendill_first_then_patch_works_the_same() -> None:
    proc = run_python(
        "import greendill as dill\n"
        "dill.hclose(dill.go(dill.msleep, -1))\n"  # greendill in use before patching
        "from gevent import monkey; monkey.patch_all()\n" + SCENARIO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "OK"
    assert "MonkeyPatchWarning" not in proc.stderr


def test_names_taken_before_patching_are_named_in_a_warning_at_import() -> None:
    proc = run_python(
        """
        from time import sleep
        import queue, threading
        JOBS = queue.Queue()
        STOP = threading.Event()
        from gevent import monkey; monkey.patch_all()
        import greendill
        print(len(greendill.check_monkey_patching()))
        """
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "greendill.MonkeyPatchWarning" in err or "MonkeyPatchWarning" in err
    assert "__main__.sleep (time.sleep)" in err
    assert "__main__.JOBS (a queue.Queue made before patching)" in err
    assert "__main__.STOP (a threading.Event made before patching)" in err
    assert "gevent.monkey.patch_all() first" in err  # the fix
    assert "<string>:7" in err  # points at `import greendill`
    assert proc.stdout.strip() == "3"


def test_names_taken_before_patching_are_named_when_patch_all_runs_after_greendill() -> None:
    proc = run_python(
        """
        import greendill
        from select import select
        from gevent import monkey; monkey.patch_all()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "__main__.select (select.select)" in proc.stderr
    assert "<string>:4" in proc.stderr  # points at patch_all()


def test_unpatched_process_is_not_checked() -> None:
    proc = run_python(
        """
        from time import sleep
        import greendill
        print(greendill.check_monkey_patching())
        """,
        patches=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert "Warning" not in proc.stderr


@pytest.mark.greendill_patched_only("the check looks only in a patched process")
def test_check_monkey_patching_finds_a_module_that_kept_the_real_sleep() -> None:
    fake = types.ModuleType("legacy_fake_module")
    fake.sleep = get_original("time", "sleep")  # type: ignore[attr-defined]
    fake.popen = get_original("subprocess", "Popen")  # type: ignore[attr-defined]
    sys.modules[fake.__name__] = fake
    try:
        with pytest.warns(dill.MonkeyPatchWarning, match="legacy_fake_module.sleep"):
            found = dill.check_monkey_patching()
    finally:
        del sys.modules[fake.__name__]
    assert "legacy_fake_module.sleep (time.sleep)" in found
    assert "legacy_fake_module.popen (subprocess.Popen)" in found
    assert issubclass(dill.MonkeyPatchWarning, gevent.monkey.MonkeyPatchWarning)


@pytest.mark.greendill_unpatched_only("checks that a plain process is left alone")
def test_check_monkey_patching_in_a_plain_process_returns_nothing() -> None:
    assert dill.check_monkey_patching() == []
