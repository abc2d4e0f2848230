"""mmlib's IPC API (mm_ipc_*): servers, connections, datagrams, passing fds.

Real sockets in the Linux abstract namespace and real peers: sockets of the
standard library (socket.send_fds / recv_fds, bound and connected with
mmlib's padded address, which is how mmlib programs address each other), in
this process, in threads and in child processes. mmlib itself is not
installed here: its wire and addressing are the kernel's, and the stdlib
peers use them exactly as the reference describes.

Every errno the docstrings list is produced here, except ENFILE (the
system-wide file table cannot be exhausted safely on a shared machine) and
ENOMEM (Python raises MemoryError): those tests skip with the reason.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    SAFETY_MS,
    assert_canceled,
    close_fd,
    finish,
    in_canceled_coroutine,
    no_fd_left,
    open_fds,
    raises_errno,
    spawn,
)

import greendill as dill

REPO = Path(dill.__file__).resolve().parent.parent


# Helpers ----------------------------------------------------------------------


def unique_name() -> str:
    """An abstract name nobody else uses (other test runs share the namespace)."""
    return f"greendill-test-{uuid.uuid4().hex}"


def padded(name: str) -> bytes:
    """mmlib's address for name: NUL, the name, NULs up to the whole sun_path."""
    raw = b"\0" + name.encode()
    return raw + bytes(108 - len(raw))


@contextmanager
def server(name: str) -> Iterator[dill.mm_ipc_srv]:
    srv = dill.mm_ipc_srv_create(name)
    try:
        yield srv
    finally:
        dill.mm_ipc_srv_destroy(srv)


@contextmanager
def pair() -> Iterator[tuple[int, int]]:
    a, b = dill.mm_ipc_connected_pair()
    try:
        yield a, b
    finally:
        for fd in (a, b):
            with suppress(OSError):
                dill.mm_close(fd)


def connect_accept(srv: dill.mm_ipc_srv, name: str) -> tuple[int, int]:
    """A client fd and the server's fd for it."""
    c = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
    return c, dill.mm_ipc_srv_accept(srv, dill.now() + SAFETY_MS)


def send(fd: int, data: bytes, fds: Any = None, deadline: int = -1) -> int:
    return dill.mm_ipc_sendmsg(fd, dill.mm_ipc_msg([data], list(fds or [])), deadline)


def recv(fd: int, size: int = 256, deadline: int = -1, num_fds_max: int = 0) -> tuple[bytes, Any]:
    """One datagram: (its bytes, the mm_ipc_msg after the call)."""
    buf = bytearray(size)
    msg = dill.mm_ipc_msg([buf], num_fds_max=num_fds_max)
    n = dill.mm_ipc_recvmsg(fd, msg, deadline if deadline != -1 else dill.now() + SAFETY_MS)
    return bytes(buf[:n]), msg


def same_file(fd1: int, fd2: int) -> bool:
    s1, s2 = os.fstat(fd1), os.fstat(fd2)
    return (s1.st_dev, s1.st_ino) == (s2.st_dev, s2.st_ino)


def fill(fd: int) -> int:
    """Send datagrams on fd until the peer's queue is full; return how many."""
    count = 0
    with pytest.raises(TimeoutError):
        while True:
            send(fd, b"x" * 1000, deadline=0)
            count += 1
    return count


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_child(code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_child(proc: subprocess.Popen[bytes]) -> bytes:
    """Wait (greenly) for proc to end; fail with its stderr unless it exited 0."""
    deadline = dill.now() + 4 * SAFETY_MS
    while proc.poll() is None:
        if dill.now() >= deadline:
            proc.kill()
            proc.wait()
            pytest.fail("the child did not end in time")
        dill.msleep(dill.now() + 5)
    out, err = proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out


# Servers: names, the padded address, EADDRINUSE, ENAMETOOLONG ---------------------------


def test_server_client_round_trip_both_ways() -> None:
    name = unique_name()
    with server(name) as srv:
        c, s = connect_accept(srv, name)
        assert send(c, b"hello server") == 12
        assert recv(s)[0] == b"hello server"
        assert send(s, b"hello client") == 12
        assert recv(c)[0] == b"hello client"
        dill.mm_close(c)
        dill.mm_close(s)


def test_server_listens_on_mmlibs_padded_abstract_address() -> None:
    name = unique_name()
    with server(name) as srv:
        assert srv.sock.getsockname() == padded(name)
        # A peer that addresses the server as mmlib does gets through...
        peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        peer.connect(padded(name))
        s = dill.mm_ipc_srv_accept(srv, dill.now() + SAFETY_MS)
        peer.send(b"from a padded peer")
        assert recv(s)[0] == b"from a padded peer"
        # ...and one that uses Python's short form is another address.
        short = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        assert short.connect_ex(b"\0" + name.encode()) == errno.ECONNREFUSED
        for sock in (peer, short):
            sock.close()
        dill.mm_close(s)


def test_connect_reaches_a_server_bound_as_mmlib_binds() -> None:
    name = unique_name()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(padded(name))
    srv.listen(5)
    c = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
    peer, _ = srv.accept()
    send(c, b"to an mmlib-style server")
    assert peer.recv(100) == b"to an mmlib-style server"
    peer.send(b"and back")
    assert recv(c)[0] == b"and back"
    dill.mm_close(c)
    peer.close()
    srv.close()


@pytest.mark.parametrize("kind", ["str", "bytes", "pathlike"])
def test_names_may_be_str_bytes_or_pathlike(kind: str) -> None:
    name = unique_name()
    addr: Any = {"str": name, "bytes": name.encode(), "pathlike": Path(name)}[kind]
    with server(addr) as srv:
        c, s = connect_accept(srv, addr)
        dill.mm_close(c)
        dill.mm_close(s)


def test_srv_create_enametoolong_beyond_107_bytes() -> None:
    base = unique_name()
    longest = base + "x" * (107 - len(base))
    with server(longest) as srv:
        c, s = connect_accept(srv, longest)
        dill.mm_close(c)
        dill.mm_close(s)
    with raises_errno(errno.ENAMETOOLONG):
        dill.mm_ipc_srv_create(longest + "x")
    with raises_errno(errno.ENAMETOOLONG):
        dill.mm_ipc_connect(longest + "x", 0)


def test_srv_create_eaddrinuse_for_a_second_server() -> None:
    name = unique_name()
    with server(name), raises_errno(errno.EADDRINUSE):
        dill.mm_ipc_srv_create(name)
    # A stdlib socket bound as mmlib binds holds the name too.
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    holder.bind(padded(name))
    with raises_errno(errno.EADDRINUSE):
        dill.mm_ipc_srv_create(name)
    holder.close()


def test_srv_create_einval() -> None:
    with raises_errno(errno.EINVAL):
        dill.mm_ipc_srv_create(None)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.mm_ipc_srv_create("a\0b")
    with pytest.raises(TypeError):
        dill.mm_ipc_srv_create(42)  # type: ignore[arg-type]


def test_srv_create_emfile() -> None:
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.mm_ipc_srv_create(unique_name())


def test_srv_create_in_a_canceled_coroutine_fails_first() -> None:
    assert_canceled(in_canceled_coroutine(lambda: dill.mm_ipc_srv_create(unique_name())))


def test_enfile_and_enomem_cannot_be_produced() -> None:
    pytest.skip(
        "ENFILE needs the system-wide file table full (unsafe on a shared machine);"
        " ENOMEM is never raised (Python raises MemoryError)"
    )


def test_srv_destroy_none_and_twice_do_nothing() -> None:
    dill.mm_ipc_srv_destroy(None)
    srv = dill.mm_ipc_srv_create(unique_name())
    dill.mm_ipc_srv_destroy(srv)
    dill.mm_ipc_srv_destroy(srv)
    with pytest.raises(TypeError):
        dill.mm_ipc_srv_destroy(3)  # type: ignore[arg-type]


def test_srv_destroy_frees_the_name() -> None:
    name = unique_name()
    dill.mm_ipc_srv_destroy(dill.mm_ipc_srv_create(name))
    with server(name) as srv:
        c, s = connect_accept(srv, name)
        dill.mm_close(c)
        dill.mm_close(s)


def test_srv_destroy_drops_pending_connections_and_keeps_accepted_ones() -> None:
    name = unique_name()
    srv = dill.mm_ipc_srv_create(name)
    accepted_client, accepted = connect_accept(srv, name)
    pending = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
    dill.mm_ipc_srv_destroy(srv)
    # The pending client sees the end of the connection, both ways.
    with raises_errno(errno.EPIPE):
        recv(pending)
    with raises_errno(errno.EPIPE):
        send(pending, b"nobody")
    # The accepted connection lives on.
    send(accepted_client, b"still here")
    assert recv(accepted)[0] == b"still here"
    send(accepted, b"me too")
    assert recv(accepted_client)[0] == b"me too"
    for fd in (pending, accepted_client, accepted):
        dill.mm_close(fd)


def test_srv_repr() -> None:
    name = unique_name()
    srv = dill.mm_ipc_srv_create(name)
    assert name in repr(srv) and "listening" in repr(srv)
    dill.mm_ipc_srv_destroy(srv)
    assert "destroyed" in repr(srv)


# Accepting ----------------------------------------------------------------------


def test_accept_deadline_zero_etimedout_then_waits_for_a_client() -> None:
    name = unique_name()
    with server(name) as srv:
        with raises_errno(errno.ETIMEDOUT):
            dill.mm_ipc_srv_accept(srv, 0)
        with raises_errno(errno.ETIMEDOUT):
            dill.mm_ipc_srv_accept(srv, dill.now() + 20)
        h, out = spawn(dill.mm_ipc_srv_accept, srv, dill.now() + SAFETY_MS)
        assert out == []  # it waits
        c = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
        finish(h)
        (s,) = out
        assert isinstance(s, int)
        assert os.get_blocking(s) and not os.get_inheritable(s)
        dill.mm_close(c)
        dill.mm_close(s)


def test_accept_ebusy_for_a_second_waiter() -> None:
    name = unique_name()
    with server(name) as srv:
        h, out = spawn(dill.mm_ipc_srv_accept, srv, dill.now() + SAFETY_MS)
        with raises_errno(errno.EBUSY):
            dill.mm_ipc_srv_accept(srv, dill.now() + SAFETY_MS)
        c = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
        finish(h)
        dill.mm_close(out[0])
        dill.mm_close(c)


def test_accept_ebadf_when_destroyed_before_or_while_waiting() -> None:
    srv = dill.mm_ipc_srv_create(unique_name())
    h, out = spawn(dill.mm_ipc_srv_accept, srv, -1)
    dill.mm_ipc_srv_destroy(srv)
    finish(h)
    assert out[0].errno == errno.EBADF
    with raises_errno(errno.EBADF):
        dill.mm_ipc_srv_accept(srv, 0)


def test_accept_einval_for_none() -> None:
    with raises_errno(errno.EINVAL):
        dill.mm_ipc_srv_accept(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.mm_ipc_srv_accept(5)  # type: ignore[arg-type]


def test_accept_canceled_while_waiting_and_in_a_canceled_coroutine() -> None:
    name = unique_name()
    with server(name) as srv:
        h, out = spawn(dill.mm_ipc_srv_accept, srv, -1)
        dill.hclose(h)
        assert_canceled(out[0])
        # A canceled coroutine fails first, even with a client waiting.
        c = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
        assert_canceled(in_canceled_coroutine(lambda: dill.mm_ipc_srv_accept(srv, 0)))
        dill.mm_close(dill.mm_ipc_srv_accept(srv, 0))
        dill.mm_close(c)


def test_accept_emfile_then_the_client_still_waits() -> None:
    name = unique_name()
    with server(name) as srv:
        c = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
        with no_fd_left(), raises_errno(errno.EMFILE):
            dill.mm_ipc_srv_accept(srv, 0)
        dill.mm_close(dill.mm_ipc_srv_accept(srv, 0))
        dill.mm_close(c)


# Connecting: waiting for a server -------------------------------------------------------


def test_connect_waits_for_a_server_to_appear() -> None:
    name = unique_name()
    h, out = spawn(dill.mm_ipc_connect, name, dill.now() + SAFETY_MS)
    dill.msleep(dill.now() + 30)
    assert out == []  # still waiting: no server yet
    with server(name) as srv:
        finish(h)
        (c,) = out
        assert isinstance(c, int)
        s = dill.mm_ipc_srv_accept(srv, dill.now() + SAFETY_MS)
        send(c, b"late server")
        assert recv(s)[0] == b"late server"
        dill.mm_close(c)
        dill.mm_close(s)


def test_connect_waits_for_a_server_in_another_process() -> None:
    name = unique_name()
    proc = run_child(
        """
        import sys, time
        import greendill as dill
        time.sleep(0.2)
        srv = dill.mm_ipc_srv_create(sys.argv[1])
        s = dill.mm_ipc_srv_accept(srv, dill.now() + 10000)
        buf = bytearray(64)
        msg = dill.mm_ipc_msg([buf])
        n = dill.mm_ipc_recvmsg(s, msg, dill.now() + 10000)
        dill.mm_ipc_sendmsg(s, dill.mm_ipc_msg([bytes(buf[:n]).upper()]))
        dill.mm_close(s)
        dill.mm_ipc_srv_destroy(srv)
        """,
        name,
    )
    c = dill.mm_ipc_connect(name, dill.now() + 4 * SAFETY_MS)
    send(c, b"are you there")
    assert recv(c)[0] == b"ARE YOU THERE"
    dill.mm_close(c)
    wait_child(proc)


def test_connect_etimedout_without_a_server_and_with_deadline_zero() -> None:
    name = unique_name()
    with raises_errno(errno.ETIMEDOUT):
        dill.mm_ipc_connect(name, 0)
    start = dill.now()
    with raises_errno(errno.ETIMEDOUT):
        dill.mm_ipc_connect(name, start + 50)
    assert dill.now() >= start + 50  # never before its deadline


def test_connect_does_not_spin_while_it_waits() -> None:
    name = unique_name()
    cpu = time.process_time()
    wall = time.monotonic()
    with raises_errno(errno.ETIMEDOUT):
        dill.mm_ipc_connect(name, dill.now() + 400)
    used = time.process_time() - cpu
    waited = time.monotonic() - wall
    # A spinning wait would use about as much CPU time as it waited.
    assert used < waited / 4, f"{used:.3f} s of CPU in {waited:.3f} s"


def test_connect_canceled_while_waiting_and_in_a_canceled_coroutine() -> None:
    name = unique_name()
    h, out = spawn(dill.mm_ipc_connect, name, -1)
    dill.msleep(dill.now() + 10)
    dill.hclose(h)
    assert_canceled(out[0])
    with server(name):
        assert_canceled(in_canceled_coroutine(lambda: dill.mm_ipc_connect(name, 0)))


def test_connect_einval_enametoolong_emfile() -> None:
    with raises_errno(errno.EINVAL):
        dill.mm_ipc_connect(None, 0)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.mm_ipc_connect("a\0b", 0)
    with raises_errno(errno.ENAMETOOLONG):
        dill.mm_ipc_connect("x" * 108, 0)
    name = unique_name()
    with server(name), no_fd_left(), raises_errno(errno.EMFILE):
        dill.mm_ipc_connect(name, 0)


def test_a_stream_listener_on_the_name_is_not_a_server() -> None:
    # Linux keeps abstract names apart by socket type: a SOCK_STREAM
    # listener neither answers mm_ipc_connect nor keeps the name from a server.
    name = unique_name()
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        stream.bind(padded(name))
        stream.listen(1)
        with raises_errno(errno.ETIMEDOUT):
            dill.mm_ipc_connect(name, dill.now() + 20)
        with server(name) as srv:
            c, s = connect_accept(srv, name)
            dill.mm_close(c)
            dill.mm_close(s)
    finally:
        stream.close()


def test_connect_waits_for_room_in_a_full_backlog() -> None:
    name = unique_name()
    with server(name) as srv:
        clients = []
        for _ in range(50):  # more than the backlog of 5 (plus the kernel's slack)
            try:
                clients.append(dill.mm_ipc_connect(name, 0))
            except TimeoutError:
                break
        else:
            pytest.fail("the backlog never filled")
        h, out = spawn(dill.mm_ipc_connect, name, dill.now() + SAFETY_MS)
        dill.msleep(dill.now() + 20)
        assert out == []  # waiting for room
        accepted = [dill.mm_ipc_srv_accept(srv, 0)]
        finish(h)
        clients.append(out[0])
        while True:
            try:
                accepted.append(dill.mm_ipc_srv_accept(srv, 0))
            except TimeoutError:
                break
        assert len(accepted) == len(clients)
        for fd in clients + accepted:
            dill.mm_close(fd)


# Connected pairs -----------------------------------------------------------------------


def test_connected_pair_is_full_duplex_and_keeps_boundaries() -> None:
    with pair() as (a, b):
        for data in (b"one", b"two two", b"x" * 5000):
            send(a, data)
        send(b, b"back")
        assert [recv(b, 8000)[0] for _ in range(3)] == [b"one", b"two two", b"x" * 5000]
        assert recv(a)[0] == b"back"


def test_fds_are_blocking_close_on_exec_seqpacket_sockets() -> None:
    with pair() as (a, b):
        for fd in (a, b):
            assert os.get_blocking(fd)  # as mmlib's: calls use MSG_DONTWAIT
            assert not os.get_inheritable(fd)
            sock = socket.socket(fileno=os.dup(fd))
            assert (sock.family, sock.type) == (socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sock.close()


def test_connected_pair_emfile_and_canceled() -> None:
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.mm_ipc_connected_pair()
    assert_canceled(in_canceled_coroutine(dill.mm_ipc_connected_pair))


# Datagrams: gather, scatter, truncation, the end of a connection --------------------------


def test_sendmsg_gathers_and_recvmsg_scatters() -> None:
    with pair() as (a, b):
        assert (
            dill.mm_ipc_sendmsg(a, dill.mm_ipc_msg([b"ab", bytearray(b"cd"), memoryview(b"ef")]))
            == 6
        )
        one, two = bytearray(4), bytearray(4)
        msg = dill.mm_ipc_msg([one, two])
        assert msg.num_iov == 2
        assert dill.mm_ipc_recvmsg(b, msg, dill.now() + SAFETY_MS) == 6
        assert (bytes(one), bytes(two[:2])) == (b"abcd", b"ef")
        assert msg.flags == 0 and msg.fds == [] and msg.num_fds == 0


def test_recvmsg_truncates_and_sets_msg_trunc() -> None:
    with pair() as (a, b):
        send(a, b"0123456789")
        send(a, b"next")
        data, msg = recv(b, 4)
        assert data == b"0123"
        assert msg.flags & dill.MSG_TRUNC
        data, msg = recv(b, 4)
        assert data == b"next"  # the rest of the first one was dropped
        assert msg.flags == 0


def test_empty_datagram_is_size_zero_and_the_end_is_epipe() -> None:
    with pair() as (a, b):
        send(a, b"")
        assert recv(b, deadline=0)[0] == b""  # the peer is still there
        send(a, b"")
        send(a, b"after the empty one")
        assert recv(b)[0] == b""
        assert recv(b)[0] == b"after the empty one"
        with raises_errno(errno.ETIMEDOUT):
            recv(b, deadline=0)
        dill.mm_close(a)
        for _ in range(2):  # it stays the end
            with raises_errno(errno.EPIPE):
                recv(b)


def test_empty_datagrams_while_the_peer_lives_are_never_the_end() -> None:
    with pair() as (a, b):
        for _ in range(5):
            send(a, b"")
        for _ in range(5):
            assert recv(b, deadline=0)[0] == b""


def test_end_after_the_peer_shuts_its_sending_side_down() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = mine.detach()
    theirs.send(b"last words")
    theirs.shutdown(socket.SHUT_WR)
    assert recv(fd)[0] == b"last words"
    with raises_errno(errno.EPIPE):
        recv(fd)
    send(fd, b"we can still talk")  # the other direction is open
    assert theirs.recv(100) == b"we can still talk"
    theirs.close()
    dill.mm_close(fd)


def test_peer_closed_with_our_datagrams_unread_receive_goes_on_send_is_epipe() -> None:
    with pair() as (a, b):
        send(a, b"queued for b 1")
        send(a, b"queued for b 2")
        send(b, b"never read by a")
        dill.mm_close(a)  # the kernel's one-time ECONNRESET is pending on b
        assert recv(b)[0] == b"queued for b 1"
        assert recv(b)[0] == b"queued for b 2"
        with raises_errno(errno.EPIPE):
            recv(b)
    with pair() as (a, b):
        send(b, b"never read by a")
        dill.mm_close(a)
        with raises_errno(errno.EPIPE):  # the kernel says ECONNRESET this time
            send(b, b"to nobody")
        with raises_errno(errno.EPIPE):
            send(b, b"to nobody")


def test_sendmsg_to_a_closed_peer_is_epipe() -> None:
    with pair() as (a, b):
        dill.mm_close(b)
        with raises_errno(errno.EPIPE):
            send(a, b"gone")


# Waiting: deadlines, cancellation, EBUSY, closing ------------------------------------------


def test_recvmsg_waits_for_a_datagram() -> None:
    with pair() as (a, b):

        def sender() -> None:
            dill.msleep(dill.now() + 10)
            send(a, b"worth the wait")

        h = dill.go(sender)
        assert recv(b)[0] == b"worth the wait"
        finish(h)


def test_recvmsg_etimedout_and_the_next_datagram_still_comes() -> None:
    with pair() as (a, b):
        start = dill.now()
        with raises_errno(errno.ETIMEDOUT):
            recv(b, deadline=start + 20)
        assert dill.now() >= start + 20
        send(a, b"later")
        assert recv(b)[0] == b"later"  # nothing latched: mm fds have no state


def test_recvmsg_deadline_zero_takes_what_is_there() -> None:
    with pair() as (a, b):
        send(a, b"here already")
        assert recv(b, deadline=0)[0] == b"here already"


def test_recvmsg_after_waits_still_takes_what_is_there_at_once() -> None:
    # A conversation arms mm_ipc_recvmsg's prediction (wait for readiness
    # first); a datagram that is already there is still received, with a
    # deadline of 0 too, and in a canceled coroutine.
    with pair() as (a, b):

        def echo() -> None:
            while True:
                data, _ = recv(b)
                send(b, data)

        h = dill.go(echo)
        for i in range(20):
            send(a, b"%d" % i)
            assert recv(a)[0] == b"%d" % i
        finish_echo = h
        send(b, b"queued 1")
        send(b, b"queued 2")
        assert recv(a, deadline=dill.now() + SAFETY_MS)[0] == b"queued 1"
        assert recv(a, deadline=0)[0] == b"queued 2"
        for i in range(20):
            send(a, b"%d" % i)
            assert recv(a)[0] == b"%d" % i
        dill.hclose(finish_echo)
        send(b, b"for a canceled coroutine")
        assert in_canceled_coroutine(lambda: recv(a, deadline=-1)[0]) == (
            b"for a canceled coroutine"
        )


def test_recvmsg_canceled_while_waiting_and_in_a_canceled_coroutine() -> None:
    with pair() as (a, b):
        h, out = spawn(recv, b, 256, -1)
        dill.hclose(h)
        assert_canceled(out[0])
        assert_canceled(in_canceled_coroutine(lambda: recv(b, deadline=-1)))
        # With a datagram there, a canceled coroutine receives it (try first).
        send(a, b"there")
        assert in_canceled_coroutine(lambda: recv(b, deadline=-1)[0]) == b"there"


def test_recvmsg_ebusy_for_a_second_receiver_and_ebadf_when_closed_while_waiting() -> None:
    a, b = dill.mm_ipc_connected_pair()
    h, out = spawn(recv, b, 256, -1)
    with raises_errno(errno.EBUSY):
        recv(b, deadline=dill.now() + SAFETY_MS)
    dill.mm_close(b)
    finish(h)
    assert out[0].errno == errno.EBADF
    dill.mm_close(a)


def test_sendmsg_waits_for_room_etimedout_ebusy_canceled_ebadf() -> None:
    with pair() as (a, b):
        count = fill(a)
        assert count > 0
        with raises_errno(errno.ETIMEDOUT):
            send(a, b"no room", deadline=dill.now() + 20)
        h, out = spawn(send, a, b"waits", None, -1)
        assert out == []
        with raises_errno(errno.EBUSY):
            send(a, b"second", deadline=dill.now() + SAFETY_MS)
        # Room, as the kernel counts it for a waiting sender (as for a
        # blocking one in C): the queue drained below a quarter of the
        # send buffer. Drain it all.
        for _ in range(count):
            recv(b, 2000)
        finish(h)
        assert out == [5]
        assert recv(b)[0] == b"waits"
        fill(a)
        h, out = spawn(send, a, b"canceled", None, -1)
        dill.hclose(h)
        assert_canceled(out[0])
        assert_canceled(in_canceled_coroutine(lambda: send(a, b"x", deadline=-1)))
        h, out = spawn(send, a, b"closed under it", None, -1)
        dill.mm_close(a)
        finish(h)
        assert out[0].errno == errno.EBADF


def test_sendmsg_in_a_canceled_coroutine_sends_when_there_is_room() -> None:
    with pair() as (a, b):
        assert in_canceled_coroutine(lambda: send(a, b"room", deadline=-1)) == 4
        assert recv(b)[0] == b"room"


# Errnos of sendmsg and recvmsg -------------------------------------------------------------


def test_sendmsg_emsgsize() -> None:
    with pair() as (a, b):
        with raises_errno(errno.EMSGSIZE):
            send(a, b"x" * (4 << 20))
        send(a, b"small")  # nothing broken
        assert recv(b)[0] == b"small"


def test_einval_for_none_readonly_buffers_negative_max_and_too_many_fds() -> None:
    with pair() as (a, b):
        with raises_errno(errno.EINVAL):
            dill.mm_ipc_sendmsg(a, None)  # type: ignore[arg-type]
        with raises_errno(errno.EINVAL):
            dill.mm_ipc_recvmsg(b, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            dill.mm_ipc_sendmsg(a, b"not a msg")  # type: ignore[arg-type]
        send(a, b"data")
        with raises_errno(errno.EINVAL):
            dill.mm_ipc_recvmsg(b, dill.mm_ipc_msg([b"read-only"]), 0)
        with raises_errno(errno.EINVAL):
            dill.mm_ipc_recvmsg(b, dill.mm_ipc_msg([bytearray(8)], num_fds_max=-1), 0)
        assert recv(b, deadline=0)[0] == b"data"  # nothing was consumed
        r, w = os.pipe()
        with raises_errno(errno.EINVAL):  # SCM_MAX_FD is 253
            send(a, b"too many", [r] * 254)
        send(a, b"the most", [r] * 253)
        _, msg = recv(b, num_fds_max=253)
        assert len(msg.fds) == 253
        for fd in [*msg.fds, r, w]:
            close_fd(fd)


def test_einval_for_an_fd_that_is_not_a_seqpacket_socket() -> None:
    stream_a, stream_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with raises_errno(errno.EINVAL):
        send(stream_a.fileno(), b"x")
    with raises_errno(errno.EINVAL):
        recv(stream_a.fileno(), deadline=0)
    stream_a.close()
    stream_b.close()


def test_enotsock_ebadf_enotconn() -> None:
    r, w = os.pipe()
    with raises_errno(errno.ENOTSOCK):
        send(w, b"x")
    with raises_errno(errno.ENOTSOCK):
        recv(r, deadline=0)
    close_fd(r)
    close_fd(w)
    with raises_errno(errno.EBADF):
        send(r, b"x")  # closed
    with raises_errno(errno.EBADF):
        recv(-1, deadline=0)
    loose = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with raises_errno(errno.ENOTCONN):
        send(loose.fileno(), b"x")
    with raises_errno(errno.ENOTCONN):
        recv(loose.fileno(), deadline=0)
    dill.mm_close(loose.detach())
    with pair() as (a, _), raises_errno(errno.EBADF):  # a bad fd to pass
        send(a, b"x", [max(open_fds()) + 100])
    with pytest.raises(TypeError):
        send("3", b"x")  # type: ignore[arg-type]


def test_mm_close_ebadf_and_foreign_fds() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fa, fb = a.detach(), b.detach()
    send(fa, b"a stdlib pair used through mm_ipc_*")
    assert recv(fb)[0] == b"a stdlib pair used through mm_ipc_*"
    dill.mm_close(fa)
    dill.mm_close(fb)
    with raises_errno(errno.EBADF):
        dill.mm_close(fa)
    with pytest.raises(TypeError):
        dill.mm_close(None)  # type: ignore[arg-type]


def test_an_fd_closed_without_mm_close_and_reused_gets_fresh_state() -> None:
    a, b = dill.mm_ipc_connected_pair()
    close_fd(a)  # not mm_close: greendill's state for a is stale
    c, d = dill.mm_ipc_connected_pair()  # one of them likely reuses a's number
    send(c, b"fresh")
    assert recv(d)[0] == b"fresh"
    send(d, b"both ways")
    assert recv(c)[0] == b"both ways"
    for fd in (b, c, d):
        dill.mm_close(fd)


def test_mm_ipc_msg_fields() -> None:
    msg = dill.mm_ipc_msg()
    assert (msg.iov, msg.fds, msg.num_fds_max, msg.flags) == ([], [], 0, 0)
    assert (msg.num_iov, msg.num_fds) == (0, 0)
    msg = dill.mm_ipc_msg([b"a", b"b"], [1, 2, 3], num_fds_max=4, flags=dill.MSG_TRUNC)
    assert (msg.num_iov, msg.num_fds, msg.num_fds_max) == (2, 3, 4)
    assert "fds=[1, 2, 3]" in repr(msg)
    assert dill.MSG_TRUNC == socket.MSG_TRUNC and dill.MSG_CTRUNC == socket.MSG_CTRUNC
    assert type(dill.MSG_TRUNC) is int


# Passing fds -------------------------------------------------------------------------


def test_pass_a_pipe_end_a_file_and_an_ipc_endpoint_both_ways() -> None:
    with pair() as (a, b), tempfile.TemporaryFile() as f:
        r, w = os.pipe()
        f.write(b"temporary file contents")
        f.flush()
        e1, e2 = dill.mm_ipc_connected_pair()
        send(a, b"three fds", [w, f.fileno(), e1])
        data, msg = recv(b, num_fds_max=3)
        assert data == b"three fds" and msg.num_fds == 3 and msg.flags == 0
        pw, pf, pe = msg.fds
        assert all(not os.get_inheritable(fd) for fd in msg.fds)
        assert same_file(pw, w) and same_file(pf, f.fileno())
        os.write(pw, b"through the pipe")
        assert os.read(r, 100) == b"through the pipe"
        assert os.pread(pf, 100, 0) == b"temporary file contents"
        send(pe, b"through the passed endpoint")
        assert recv(e2)[0] == b"through the passed endpoint"
        # ...and back the other way: b passes what it received to a.
        send(b, b"back", [pe, pw])
        data, msg = recv(a, num_fds_max=2)
        assert data == b"back" and msg.num_fds == 2
        send(msg.fds[0], b"twice passed")
        assert recv(e2)[0] == b"twice passed"
        os.write(msg.fds[1], b"!")
        assert os.read(r, 1) == b"!"
        # The sender kept its own fds.
        os.write(w, b"mine")
        assert os.read(r, 4) == b"mine"
        for fd in [pw, pf, *msg.fds]:
            close_fd(fd)
        dill.mm_close(pe)
        for fd in (r, w, e1, e2):
            dill.mm_close(fd)


@pytest.mark.parametrize("num_fds_max", [0, 1, 2])
def test_fds_beyond_num_fds_max_are_closed_and_msg_ctrunc_set(num_fds_max: int) -> None:
    r, w = os.pipe()
    before = set(open_fds())
    with pair() as (a, b):
        before |= {a, b}
        send(a, b"five", [r, w, r, w, r])
        data, msg = recv(b, num_fds_max=num_fds_max)
        assert data == b"five"
        assert len(msg.fds) == num_fds_max
        assert msg.flags & dill.MSG_CTRUNC
        extra = set(open_fds()) - before
        assert extra == set(msg.fds)  # the others were closed
        for fd in msg.fds:
            close_fd(fd)
    close_fd(r)
    close_fd(w)


def test_fds_come_with_an_empty_datagram() -> None:
    r, w = os.pipe()
    with pair() as (a, b):
        send(a, b"", [w])
        data, msg = recv(b, num_fds_max=1)
        assert data == b"" and len(msg.fds) == 1
        close_fd(msg.fds[0])
    close_fd(r)
    close_fd(w)


def test_fds_to_and_from_stdlib_send_fds_recv_fds() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.settimeout(SAFETY_MS / 1000)
    fd = mine.detach()
    r, w = os.pipe()
    socket.send_fds(theirs, [b"from the stdlib"], [w])
    data, msg = recv(fd, num_fds_max=4)
    assert data == b"from the stdlib" and len(msg.fds) == 1
    os.write(msg.fds[0], b"1")
    assert os.read(r, 1) == b"1"
    close_fd(msg.fds[0])
    send(fd, b"to the stdlib", [r])
    got, fds, flags, _ = socket.recv_fds(theirs, 100, 4)
    assert got == b"to the stdlib" and len(fds) == 1 and flags == 0
    os.write(w, b"2")
    assert os.read(fds[0], 1) == b"2"
    for f in (*fds, r, w):
        close_fd(f)
    theirs.close()
    dill.mm_close(fd)


# Several clients: greenlets, threads of stdlib peers, child processes ------------------


def test_several_client_coroutines_keep_datagrams_whole_and_in_order() -> None:
    name = unique_name()
    clients, count = 5, 100
    with server(name) as srv:

        def client(k: int) -> None:
            c = dill.mm_ipc_connect(name, dill.now() + SAFETY_MS)
            try:
                for i in range(count):
                    send(c, (b"%d:%d:" % (k, i)) * (i % 50 + 1))
                    if i % 7 == 0:
                        dill.yield_()
                send(c, b"bye")
                assert recv(c)[0] == b"ok"
            finally:
                dill.mm_close(c)

        b = dill.bundle()
        for k in range(clients):
            dill.bundle_go(b, client, k)
        conns = [dill.mm_ipc_srv_accept(srv, dill.now() + SAFETY_MS) for _ in range(clients)]
        for s in conns:
            first, _ = recv(s, 1 << 16)
            k = int(first.split(b":")[0])
            got = [first]
            while True:
                data, msg = recv(s, 1 << 16)
                assert msg.flags == 0
                if data == b"bye":
                    break
                got.append(data)
            assert got == [(b"%d:%d:" % (k, i)) * (i % 50 + 1) for i in range(count)]
            send(s, b"ok")
        dill.bundle_wait(b, dill.now() + SAFETY_MS)
        dill.hclose(b)
        for s in conns:
            dill.mm_close(s)


def test_clients_in_child_processes_keep_datagrams_whole_and_in_order() -> None:
    name = unique_name()
    count = 200
    greendill_child = """
        import sys
        import greendill as dill
        name, k, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        c = dill.mm_ipc_connect(name, dill.now() + 20000)
        for i in range(count):
            dill.mm_ipc_sendmsg(c, dill.mm_ipc_msg([b"%d:%d:" % (k, i), b"." * (i % 300)]))
        buf = bytearray(8)
        dill.mm_ipc_recvmsg(c, dill.mm_ipc_msg([buf]), dill.now() + 20000)
        dill.mm_close(c)
        """
    # A child that knows nothing of greendill: a plain socket with mmlib's address.
    stdlib_child = """
        import socket, sys
        name, k, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
        raw = b"\\0" + name.encode()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(raw + bytes(108 - len(raw)))
        for i in range(count):
            s.sendmsg([b"%d:%d:" % (k, i), b"." * (i % 300)])
        s.recv(8)
        s.close()
        """
    with server(name) as srv:
        procs = [
            run_child(greendill_child if k % 2 else stdlib_child, name, str(k), str(count))
            for k in range(4)
        ]
        conns = [dill.mm_ipc_srv_accept(srv, dill.now() + 4 * SAFETY_MS) for _ in procs]
        seen = set()
        for s in conns:
            first, _ = recv(s, 4096, deadline=dill.now() + 4 * SAFETY_MS)
            k = int(first.split(b":")[0])
            seen.add(k)
            got = [first] + [recv(s, 4096)[0] for _ in range(count - 1)]
            assert got == [b"%d:%d:" % (k, i) + b"." * (i % 300) for i in range(count)]
            send(s, b"ok")
        assert seen == {0, 1, 2, 3}
        for proc in procs:
            wait_child(proc)
        for s in conns:
            dill.mm_close(s)


def test_a_stdlib_peer_in_a_thread_passes_fds() -> None:
    name = unique_name()
    r, w = os.pipe()
    failures: list[BaseException] = []

    def peer() -> None:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.settimeout(SAFETY_MS / 1000)
            s.connect(padded(name))
            socket.send_fds(s, [b"fd for you"], [w])
            msg, fds, _, _ = socket.recv_fds(s, 100, 2)
            assert msg == b"and one for you" and len(fds) == 1
            os.write(fds[0], b"T")
            close_fd(fds[0])
            s.close()
        except BaseException as exc:
            failures.append(exc)

    with server(name) as srv:
        thread = threading.Thread(target=peer, daemon=True)
        thread.start()
        s = dill.mm_ipc_srv_accept(srv, dill.now() + SAFETY_MS)
        data, msg = recv(s, num_fds_max=1)
        assert data == b"fd for you"
        send(s, b"and one for you", msg.fds)
        close_fd(msg.fds[0])
        while thread.is_alive():
            dill.msleep(dill.now() + 5)
        assert not failures, failures
        assert os.read(r, 1) == b"T"
        dill.mm_close(s)
    close_fd(r)
    close_fd(w)


# The example ----------------------------------------------------------------------------


def test_example_passes_an_open_file_between_two_processes() -> None:
    example = REPO / "examples" / "pass_file.py"
    proc = subprocess.run(
        [sys.executable, str(example)],
        env=child_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert "child: read 'written by the parent" in out
    assert "parent: the file now holds" in out
    assert "appended by the child" in out
