"""IPC message sockets (ipc_seqpacket_*): SOCK_SEQPACKET connections as greendill handles.

The message-socket contract (msend, mrecv, msendl, mrecvl: latching, EBUSY,
EPIPE at the end, EMSGSIZE), adopting mm_ipc_* fds and stdlib sockets,
listening on paths and abstract names, passing fds on a handle, and
coroutines composed over it. Also the accept fix in _stream.Watched (a
second waiting accept is EBUSY, for ipc_accept too). Then the rest of the
ipc_* family's shape: the _mem variants and their storages (reuse, EBUSY,
the conformance kit on reused storages), ipc_seqpacket_listener_fromfd,
ipc_seqpacket_done and the orderly ipc_seqpacket_close, with greendill,
stdlib and child-process peers.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import (
    SAFETY_MS,
    assert_canceled,
    close_fd,
    fd_is_open,
    finish,
    in_canceled_coroutine,
    no_fd_left,
    open_fds,
    raises_errno,
    spawn,
)

import greendill as dill
from greendill.testing import LATCH_DIRECTION, check_msock


def abstract() -> str:
    return f"\0greendill-test-{uuid.uuid4().hex}"


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


# The message-socket contract ---------------------------------------------------


def test_pair_keeps_message_boundaries_both_ways() -> None:
    a, b = dill.ipc_seqpacket_pair()
    for m in (b"one", b"", b"three" * 1000):
        dill.msend(a, m, dill.now() + SAFETY_MS)
    dill.msend(b, b"back")
    assert dill.mrecv(b, 10_000) == b"one"
    assert dill.mrecv(b, 10_000) == b""  # an empty message, not the end
    assert dill.mrecv(b, 10_000) == b"three" * 1000
    assert dill.mrecv(a, 10) == b"back"
    assert dill.hquery(a, dill.msock_type) is not None
    with raises_errno(errno.ENOTSUP):
        dill.bsend(a, b"not a byte stream")
    close_all(a, b)


def test_msendl_gathers_mrecvl_scatters_skips_and_drops() -> None:
    a, b = dill.ipc_seqpacket_pair()
    dill.msendl(a, [b"head", b"-", b"tail"])
    one, two = bytearray(3), bytearray(10)
    assert dill.mrecvl(b, [one, 2, two]) == 9
    assert (bytes(one), bytes(two[:4])) == (b"hea", b"tail")
    dill.msend(a, b"dropped whole")
    assert dill.mrecvl(b, []) == 13  # C's NULL iolist: drop it, return its size
    dill.msend(a, b"x" * 100_000)
    assert dill.mrecvl(b, [99_990, bytearray(10)]) == 100_000
    dill.msend(a, b"into")
    buf = bytearray(10)
    assert dill.mrecv_into(b, buf) == 4 and buf[:4] == b"into"
    with raises_errno(errno.EINVAL):
        dill.msendl(a, [])
    with raises_errno(errno.EINVAL):
        dill.mrecvl(b, [-1])
    with raises_errno(errno.EINVAL):
        dill.mrecv_into(b, b"read-only", 0)
    close_all(a, b)


def test_emsgsize_on_receive_drops_the_message_and_breaks_receiving() -> None:
    a, b = dill.ipc_seqpacket_pair()
    dill.msend(a, b"too long for the buffer")
    dill.msend(a, b"next")
    with raises_errno(errno.EMSGSIZE):
        dill.mrecv(b, 4)
    with raises_errno(errno.ECONNRESET):
        dill.mrecv(b, 100, 0)
    dill.msend(a, b"x" * 10)
    a2, b2 = dill.ipc_seqpacket_pair()
    dill.msend(a2, b"x" * 10)
    with raises_errno(errno.EMSGSIZE):
        dill.mrecvl(b2, [4, bytearray(4)])
    dill.msend(b, b"sending still works")
    assert dill.mrecv(a, 100) == b"sending still works"
    close_all(a, b, a2, b2)


def test_emsgsize_on_send_breaks_nothing() -> None:
    a, b = dill.ipc_seqpacket_pair()
    with raises_errno(errno.EMSGSIZE):
        dill.msend(a, b"x" * (4 << 20))
    dill.msend(a, b"fine")
    assert dill.mrecv(b, 10) == b"fine"
    close_all(a, b)


def test_end_of_connection_is_epipe_and_stays() -> None:
    a, b = dill.ipc_seqpacket_pair()
    dill.msend(a, b"last")
    dill.msend(a, b"")
    dill.msend(a, b"really last")
    dill.hclose(a)
    assert dill.mrecv(b, 10) == b"last"
    assert dill.mrecv(b, 10) == b""
    assert dill.mrecv(b, 20) == b"really last"
    with raises_errno(errno.EPIPE):
        dill.mrecv(b, 10)
    with raises_errno(errno.EPIPE):
        dill.mrecvl(b, [bytearray(4)], 0)
    with raises_errno(errno.ECONNRESET):  # the peer is gone
        dill.msend(b, b"to nobody")
    with raises_errno(errno.ECONNRESET):  # and sending stays broken
        dill.msend(b, b"to nobody")
    dill.hclose(b)


def test_receive_timeout_breaks_receiving_only() -> None:
    a, b = dill.ipc_seqpacket_pair()
    with raises_errno(errno.ETIMEDOUT):
        dill.mrecv(b, 10, dill.now() + 10)
    dill.msend(a, b"too late")
    with raises_errno(errno.ECONNRESET):
        dill.mrecv(b, 10, 0)
    dill.msend(b, b"send side fine")
    assert dill.mrecv(a, 100) == b"send side fine"
    close_all(a, b)


def test_ebusy_canceled_and_ebadf_on_close() -> None:
    a, b = dill.ipc_seqpacket_pair()
    h, out = spawn(dill.mrecv, b, 10, -1)
    with raises_errno(errno.EBUSY):
        dill.mrecv(b, 10, 0)
    dill.hclose(h)
    assert_canceled(out[0])
    a2, b2 = dill.ipc_seqpacket_pair()
    h, out = spawn(dill.mrecv, b2, 10, -1)
    dill.hclose(b2)
    finish(h)
    assert out[0].errno == errno.EBADF
    with raises_errno(errno.ECONNRESET):  # the peer is gone
        dill.msend(a2, b"x")
    # A canceled coroutine takes what is there, and fails first otherwise.
    a3, b3 = dill.ipc_seqpacket_pair()
    dill.msend(a3, b"there")
    assert in_canceled_coroutine(lambda: dill.mrecv(b3, 10)) == b"there"
    assert_canceled(in_canceled_coroutine(lambda: dill.mrecv(b3, 10)))
    close_all(a, b, a2, a3, b3)


def test_send_waits_for_room_and_times_out_then_is_broken() -> None:
    a, b = dill.ipc_seqpacket_pair()
    sent = 0
    with raises_errno(errno.ETIMEDOUT):
        while True:
            dill.msend(a, b"x" * 1000, dill.now() + 20)
            sent += 1
    assert sent > 0
    with raises_errno(errno.ECONNRESET):
        dill.msend(a, b"broken now", 0)
    close_all(a, b)


def test_coroutines_compose_an_echo_server_over_handles() -> None:
    path = abstract()
    ls = dill.ipc_seqpacket_listen(path, 10)

    def serve(s: int) -> None:
        try:
            while True:
                dill.msend(s, dill.mrecv(s, 1000)[::-1])
        except BrokenPipeError:
            pass
        finally:
            dill.hclose(s)

    def acceptor() -> None:
        b = dill.bundle()
        try:
            while True:
                dill.bundle_go(b, serve, dill.ipc_seqpacket_accept(ls))
        finally:
            dill.hclose(b)

    h = dill.go(acceptor)
    clients = [dill.ipc_seqpacket_connect(path, dill.now() + SAFETY_MS) for _ in range(5)]
    for round_ in range(20):
        for k, c in enumerate(clients):
            dill.msend(c, b"%d-%d" % (k, round_))
        for k, c in enumerate(clients):
            assert dill.mrecv(c, 100, dill.now() + SAFETY_MS) == (b"%d-%d" % (k, round_))[::-1]
    close_all(*clients)
    dill.hclose(h)
    dill.hclose(ls)


# Adopting fds ------------------------------------------------------------------


def test_fromfd_adopts_an_mm_ipc_fd_and_talks_to_mm_calls() -> None:
    fd, other = dill.mm_ipc_connected_pair()
    s = dill.ipc_seqpacket_fromfd(fd)
    with raises_errno(errno.EBADF):
        os.fstat(fd)  # the number itself is closed: the handle owns a copy
    dill.msend(s, b"handle to fd")
    buf = bytearray(20)
    n = dill.mm_ipc_recvmsg(other, dill.mm_ipc_msg([buf]), dill.now() + SAFETY_MS)
    assert buf[:n] == b"handle to fd"
    dill.mm_ipc_sendmsg(other, dill.mm_ipc_msg([b"fd to handle"]))
    assert dill.mrecv(s, 20, dill.now() + SAFETY_MS) == b"fd to handle"
    dill.hclose(s)
    dill.mm_close(other)


def test_fromfd_wakes_an_mm_waiter_on_the_fd_with_ebadf() -> None:
    fd, other = dill.mm_ipc_connected_pair()
    h, out = spawn(dill.mm_ipc_recvmsg, fd, dill.mm_ipc_msg([bytearray(4)]), -1)
    s = dill.ipc_seqpacket_fromfd(fd)
    finish(h)
    assert out[0].errno == errno.EBADF
    close_all(s)
    dill.mm_close(other)


def test_fromfd_of_a_stdlib_socket_and_its_errnos(tmp_path: Path) -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s = dill.ipc_seqpacket_fromfd(mine.detach())
    theirs.send(b"stdlib")
    assert dill.mrecv(s, 10, dill.now() + SAFETY_MS) == b"stdlib"
    dill.hclose(s)
    theirs.close()
    stream_a, stream_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    unconnected = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listening.bind(str(tmp_path / "l"))
    listening.listen(1)
    r, w = os.pipe()
    for wrong in (stream_a, unconnected, listening):
        with raises_errno(errno.EINVAL):
            dill.ipc_seqpacket_fromfd(wrong.fileno())
        wrong.close()
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_fromfd(r)
    close_fd(r)
    close_fd(w)
    stream_b.close()
    with raises_errno(errno.EBADF):
        dill.ipc_seqpacket_fromfd(r)
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_fromfd("3")  # type: ignore[arg-type]


# Listening, accepting, connecting on paths ---------------------------------------------


@pytest.mark.parametrize("where", ["path", "abstract"])
def test_listen_accept_connect(tmp_path: Path, where: str) -> None:
    path = str(tmp_path / "s") if where == "path" else abstract()
    ls = dill.ipc_seqpacket_listen(path, 5)
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_seqpacket_accept(ls, 0)
    c = dill.ipc_seqpacket_connect(path, dill.now() + SAFETY_MS)
    s = dill.ipc_seqpacket_accept(ls, dill.now() + SAFETY_MS)
    dill.msend(c, b"over a listener")
    assert dill.mrecv(s, 100) == b"over a listener"
    # A stdlib SEQPACKET client reaches it too.
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    peer.connect(path)
    s2 = dill.ipc_seqpacket_accept(ls, dill.now() + SAFETY_MS)
    peer.send(b"stdlib client")
    assert dill.mrecv(s2, 100) == b"stdlib client"
    peer.close()
    close_all(c, s, s2, ls)


def test_listen_errnos(tmp_path: Path) -> None:
    ls = dill.ipc_seqpacket_listen(tmp_path / "s", 1)
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_seqpacket_listen(tmp_path / "s", 1)
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_listen(None, 1)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_listen(tmp_path / "t", -1)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_seqpacket_listen("/" + "x" * 107, 1)
    with raises_errno(errno.ENOENT):
        dill.ipc_seqpacket_listen(tmp_path / "missing" / "s", 1)
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_listen(tmp_path / "u", 1)
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_listen(tmp_path / "v", 1)))
    dill.hclose(ls)


def test_accept_errnos(tmp_path: Path) -> None:
    ls = dill.ipc_seqpacket_listen(tmp_path / "s", 1)
    h, out = spawn(dill.ipc_seqpacket_accept, ls, -1)
    with raises_errno(errno.EBUSY):
        dill.ipc_seqpacket_accept(ls, dill.now() + SAFETY_MS)
    dill.hclose(h)
    assert_canceled(out[0])
    c = dill.ipc_seqpacket_connect(tmp_path / "s", 0)
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_accept(ls, 0)
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_accept(ls, 0)))
    a, b = dill.ipc_seqpacket_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ipc_seqpacket_accept(a, 0)
    h, out = spawn(dill.ipc_seqpacket_accept, ls, -1)  # takes c's connection
    finish(h)
    close_all(out[0], c, a, b)
    h, out = spawn(dill.ipc_seqpacket_accept, ls, -1)
    dill.hclose(ls)
    finish(h)
    assert out[0].errno == errno.EBADF
    with raises_errno(errno.EBADF):
        dill.ipc_seqpacket_accept(ls, 0)


def test_connect_errnos(tmp_path: Path) -> None:
    with raises_errno(errno.ENOENT):
        dill.ipc_seqpacket_connect(tmp_path / "missing", 0)
    with raises_errno(errno.ECONNREFUSED):
        dill.ipc_seqpacket_connect(abstract(), 0)
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_connect(None, 0)  # type: ignore[arg-type]
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_seqpacket_connect("/" + "x" * 107, 0)
    stream = dill.ipc_listen(tmp_path / "stream", 1)
    with raises_errno(errno.EPROTOTYPE):
        dill.ipc_seqpacket_connect(tmp_path / "stream", 0)
    dill.hclose(stream)
    ls = dill.ipc_seqpacket_listen(tmp_path / "s", 1)
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_connect(tmp_path / "s", 0)
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_connect(tmp_path / "s", 0)))
    dill.hclose(ls)


def test_connect_waits_for_room_until_its_deadline(tmp_path: Path) -> None:
    ls = dill.ipc_seqpacket_listen(tmp_path / "s", 0)
    clients = []
    with raises_errno(errno.ETIMEDOUT):
        for _ in range(50):
            clients.append(dill.ipc_seqpacket_connect(tmp_path / "s", dill.now() + 20))
    h, out = spawn(dill.ipc_seqpacket_connect, tmp_path / "s", dill.now() + SAFETY_MS)
    accepted = [dill.ipc_seqpacket_accept(ls, 0)]
    finish(h)
    clients.append(out[0])
    while True:
        try:
            accepted.append(dill.ipc_seqpacket_accept(ls, 0))
        except TimeoutError:
            break
    close_all(*clients, *accepted, ls)


def test_pair_emfile_and_canceled() -> None:
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_pair()
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_fromfd(0)
    assert_canceled(in_canceled_coroutine(dill.ipc_seqpacket_pair))
    fd, other = dill.mm_ipc_connected_pair()
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_fromfd(fd)))
    dill.mm_close(fd)
    dill.mm_close(other)


# Passing fds on a handle ---------------------------------------------------------


def test_sendmsg_recvmsg_pass_fds_on_handles() -> None:
    a, b = dill.ipc_seqpacket_pair()
    r, w = os.pipe()
    assert dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"a pipe"], [w, r])) == 6
    buf = bytearray(3)
    msg = dill.mm_ipc_msg([buf], num_fds_max=1)
    assert dill.ipc_seqpacket_recvmsg(b, msg, dill.now() + SAFETY_MS) == 3
    assert buf == b"a p"
    assert msg.flags & dill.MSG_TRUNC and msg.flags & dill.MSG_CTRUNC
    (got,) = msg.fds
    assert not os.get_inheritable(got)
    os.write(got, b"ok")
    assert os.read(r, 2) == b"ok"
    close_fd(got)
    # Truncation is not an error here, and breaks nothing.
    dill.msend(a, b"plain")
    assert dill.mrecv(b, 10) == b"plain"
    with raises_errno(errno.EBADF):  # a bad fd to pass breaks nothing
        dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"x"], [r + 1000]))
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"x"], [r] * 254))
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_sendmsg(a, None)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_recvmsg(b, dill.mm_ipc_msg([b"read-only"]), 0)
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_recvmsg(b, dill.mm_ipc_msg([bytearray(1)], num_fds_max=-1), 0)
    dill.msend(a, b"still fine")
    assert dill.mrecv(b, 20) == b"still fine"
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_seqpacket_recvmsg(b, dill.mm_ipc_msg([bytearray(1)]), dill.now() + 10)
    with raises_errno(errno.ECONNRESET):  # latched by the timeout
        dill.ipc_seqpacket_recvmsg(b, dill.mm_ipc_msg([bytearray(1)]), 0)
    close_fd(r)
    close_fd(w)
    close_all(a, b)


def test_sendmsg_recvmsg_errnos_on_handles() -> None:
    s = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ipc_seqpacket_sendmsg(s[0], dill.mm_ipc_msg([b"x"]))
    with raises_errno(errno.ENOTSUP):
        dill.ipc_seqpacket_recvmsg(s[0], dill.mm_ipc_msg([bytearray(1)]))
    close_all(*s)
    with raises_errno(errno.EBADF):
        dill.ipc_seqpacket_sendmsg(s[0], dill.mm_ipc_msg([b"x"]))
    a, b = dill.ipc_seqpacket_pair()
    h, out = spawn(dill.ipc_seqpacket_recvmsg, b, dill.mm_ipc_msg([bytearray(1)]), -1)
    with raises_errno(errno.EBUSY):
        dill.ipc_seqpacket_recvmsg(b, dill.mm_ipc_msg([bytearray(1)]), 0)
    dill.hclose(h)
    assert_canceled(out[0])
    sent = 0
    with raises_errno(errno.ETIMEDOUT):
        while True:
            dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"x" * 1000]), dill.now() + 10)
            sent += 1
    with raises_errno(errno.ECONNRESET):
        dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"x"]), 0)
    with raises_errno(errno.EMSGSIZE):
        dill.ipc_seqpacket_sendmsg(b, dill.mm_ipc_msg([b"x" * (4 << 20)]))
    h, out = spawn(dill.ipc_seqpacket_sendmsg, b, dill.mm_ipc_msg([b"y"]), -1)
    finish(h)  # room at once: b's sending side is fine
    a2, b2 = dill.ipc_seqpacket_pair()
    assert_canceled(
        in_canceled_coroutine(lambda: dill.ipc_seqpacket_recvmsg(b2, dill.mm_ipc_msg(), -1))
    )
    with raises_errno(errno.ECONNRESET):  # the canceled receive broke receiving
        dill.ipc_seqpacket_recvmsg(b2, dill.mm_ipc_msg([bytearray(1)]), 0)
    a3, b3 = dill.ipc_seqpacket_pair()
    dill.hclose(a3)
    with raises_errno(errno.EPIPE):
        dill.ipc_seqpacket_recvmsg(b3, dill.mm_ipc_msg([bytearray(1)]))
    close_all(a, b, a2, b2, b3)


def stuffed_connection() -> tuple[int, socket.socket]:
    """A message connection whose peer's queue is full, and the stdlib peer.

    The queue is filled through the plain socket before greendill adopts it,
    so no greendill call failed (nothing latched).
    """
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mine.setblocking(False)
    with suppress(BlockingIOError):
        while True:
            mine.send(b"x" * 1000)
    return dill.ipc_seqpacket_fromfd(mine), theirs


def test_sendmsg_waiting_for_room_ebusy_canceled_and_recvmsg_ebadf() -> None:
    a, theirs = stuffed_connection()
    try:
        h, out = spawn(dill.ipc_seqpacket_sendmsg, a, dill.mm_ipc_msg([b"waits"]), -1)
        assert out == [], "the send did not wait for room"
        with raises_errno(errno.EBUSY):  # another coroutine is sending
            dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"second"]), 0)
        dill.hclose(h)
        assert_canceled(out[0])
        with raises_errno(errno.ECONNRESET):  # the canceled send broke sending
            dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"x"]), 0)
        # Neither failed send queued anything: only the stdlib's messages are there.
        theirs.setblocking(False)
        got = []
        with suppress(BlockingIOError):
            while True:
                got.append(theirs.recv(2000))
        assert got and set(got) == {b"x" * 1000}
    finally:
        dill.hclose(a)
        theirs.close()
    # EBADF: a receive woken by the close of its handle, then on the closed handle.
    a, b = dill.ipc_seqpacket_pair()
    h, out = spawn(dill.ipc_seqpacket_recvmsg, b, dill.mm_ipc_msg([bytearray(1)]), -1)
    assert out == []
    dill.hclose(b)
    finish(h)
    assert isinstance(out[0], OSError) and out[0].errno == errno.EBADF, out
    with raises_errno(errno.EBADF):
        dill.ipc_seqpacket_recvmsg(b, dill.mm_ipc_msg([bytearray(1)]), 0)
    dill.hclose(a)


# The accept fix in _stream.Watched (listeners of every kind) ---------------------------


def test_ipc_accept_second_waiter_is_ebusy_and_the_first_still_gets_its_connection(
    tmp_path: Path,
) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 5)
    h, out = spawn(dill.ipc_accept, ls, dill.now() + SAFETY_MS)
    with raises_errno(errno.EBUSY):
        dill.ipc_accept(ls, dill.now() + SAFETY_MS)
    c = dill.ipc_connect(tmp_path / "s", dill.now() + SAFETY_MS)
    finish(h)
    assert isinstance(out[0], int)
    close_all(out[0], c, ls)


def test_peer_closed_with_our_messages_unread_receive_drains_then_epipe() -> None:
    a, b = dill.ipc_seqpacket_pair()
    dill.msend(a, b"for b")
    dill.msend(b, b"never read by a")
    dill.hclose(a)  # the kernel's one-time ECONNRESET is pending on b
    assert dill.mrecv(b, 10) == b"for b"
    with raises_errno(errno.EPIPE):
        dill.mrecv(b, 10)
    dill.hclose(b)


# The _mem variants: the socket lives in the storage ----------------------------------


def first_free(pool: list[Any], make: Callable[[Any], Any], new: Callable[[], Any]) -> Any:
    """make(mem) with the first storage of pool that is not EBUSY, or a new one."""
    for mem in pool:
        try:
            return make(mem)
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
    pool.append(new())
    return make(pool[-1])


def test_storage_is_the_connection_object() -> None:
    mem = dill.ipc_seqpacket_storage()
    pair = dill.ipc_seqpacket_pair_storage()
    fd, other = dill.mm_ipc_connected_pair()
    s = dill.ipc_seqpacket_fromfd_mem(fd, mem)
    a, b = dill.ipc_seqpacket_pair_mem(pair)
    assert dill.hquery(s, dill.msock_type) is mem  # no object of its own
    assert {id(dill.hquery(h, dill.msock_type)) for h in (a, b)} == set(map(id, pair.ends))
    close_all(s, a, b)
    dill.mm_close(other)


def test_listen_mem_reuse_ebusy_einval_and_listen_errnos(tmp_path: Path) -> None:
    mem = dill.ipc_seqpacket_listener_storage()
    ls = dill.ipc_seqpacket_listen_mem(tmp_path / "one", 1, mem)
    with raises_errno(errno.EBUSY):
        dill.ipc_seqpacket_listen_mem(tmp_path / "two", 1, mem)
    assert not (tmp_path / "two").exists()  # nothing was bound
    c = dill.ipc_seqpacket_connect(tmp_path / "one", 0)
    a = dill.ipc_seqpacket_accept(ls, 0)
    dill.hclose(ls)
    ls = dill.ipc_seqpacket_listen_mem(tmp_path / "two", 1, mem)  # reusable once closed
    c2 = dill.ipc_seqpacket_connect(tmp_path / "two", 0)
    a2 = dill.ipc_seqpacket_accept(ls, 0)
    dill.msend(c2, b"through a reused listener")
    assert dill.mrecv(a2, 100) == b"through a reused listener"
    dill.hclose(ls)
    fresh = dill.ipc_seqpacket_listener_storage()
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_listen_mem(tmp_path / "three", 1, None)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_listen_mem(None, 1, fresh)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_listen_mem(tmp_path / "three", -1, fresh)
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_listen_mem(tmp_path / "three", 1, dill.ipc_listener_storage())  # type: ignore[arg-type]
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_seqpacket_listen_mem(tmp_path / "one", 1, fresh)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_seqpacket_listen_mem("/" + "x" * 107, 1, fresh)
    with raises_errno(errno.ENOENT):
        dill.ipc_seqpacket_listen_mem(tmp_path / "missing" / "s", 1, fresh)
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_listen_mem(tmp_path / "four", 1, fresh)
    assert_canceled(
        in_canceled_coroutine(lambda: dill.ipc_seqpacket_listen_mem(tmp_path / "five", 1, fresh))
    )
    ls = dill.ipc_seqpacket_listen_mem(abstract(), 1, fresh)  # none of that took it
    close_all(ls, a, c, a2, c2)


def test_connect_and_accept_mem_reuse_ebusy_einval(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_seqpacket_listen(path, 5)
    cmem, amem = dill.ipc_seqpacket_storage(), dill.ipc_seqpacket_storage()
    for round_ in range(3):  # each storage serves again once closed
        c = dill.ipc_seqpacket_connect_mem(path, cmem, 0)
        a = dill.ipc_seqpacket_accept_mem(ls, amem, 0)
        with raises_errno(errno.EBUSY):
            dill.ipc_seqpacket_connect_mem(path, cmem, 0)
        with raises_errno(errno.EBUSY):
            dill.ipc_seqpacket_accept_mem(ls, amem, 0)
        with raises_errno(errno.EBUSY):
            dill.ipc_seqpacket_fromfd_mem(0, cmem)
        dill.msend(c, b"round %d" % round_)
        assert dill.mrecv(a, 100) == b"round %d" % round_
        dill.ipc_seqpacket_done(a)
        dill.ipc_seqpacket_close(c, dill.now() + SAFETY_MS)
        dill.ipc_seqpacket_close(a, dill.now() + SAFETY_MS)
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_seqpacket_accept(ls, 0)  # the EBUSY connects made no connection
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_accept_mem(ls, None, 0)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_connect_mem(path, None, 0)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_connect_mem(None, cmem, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_connect_mem(path, dill.ipc_storage(), 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_accept_mem(ls, dill.ipc_seqpacket_pair_storage(), 0)  # type: ignore[arg-type]
    dill.hclose(ls)


def test_accept_mem_errnos(tmp_path: Path) -> None:
    ls = dill.ipc_seqpacket_listen(tmp_path / "s", 1)
    mem = dill.ipc_seqpacket_storage()
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_seqpacket_accept_mem(ls, mem, dill.now() + 10)
    h, out = spawn(dill.ipc_seqpacket_accept_mem, ls, dill.ipc_seqpacket_storage(), -1)
    with raises_errno(errno.EBUSY):  # another coroutine waits in an accept on ls
        dill.ipc_seqpacket_accept_mem(ls, mem, dill.now() + SAFETY_MS)
    dill.hclose(h)
    assert_canceled(out[0])
    c = dill.ipc_seqpacket_connect(tmp_path / "s", 0)
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_accept_mem(ls, mem, 0)
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_accept_mem(ls, mem, 0)))
    x, y = dill.ipc_seqpacket_pair()
    with raises_errno(errno.ENOTSUP):
        dill.ipc_seqpacket_accept_mem(x, mem, 0)
    stream_ls = dill.ipc_listen(tmp_path / "stream", 1)
    with raises_errno(errno.ENOTSUP):
        dill.ipc_seqpacket_accept_mem(stream_ls, mem, 0)
    a = dill.ipc_seqpacket_accept_mem(ls, mem, 0)  # c's connection waited all along
    h, out = spawn(dill.ipc_seqpacket_accept_mem, ls, dill.ipc_seqpacket_storage(), -1)
    dill.hclose(ls)
    finish(h)
    assert out[0].errno == errno.EBADF  # closed while waiting
    with raises_errno(errno.EBADF):
        dill.ipc_seqpacket_accept_mem(ls, dill.ipc_seqpacket_storage(), 0)
    close_all(a, c, x, y, stream_ls)


def test_connect_mem_errnos(tmp_path: Path) -> None:
    mem = dill.ipc_seqpacket_storage()
    with raises_errno(errno.ENOENT):
        dill.ipc_seqpacket_connect_mem(tmp_path / "missing", mem, 0)
    with raises_errno(errno.ECONNREFUSED):
        dill.ipc_seqpacket_connect_mem(abstract(), mem, 0)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_seqpacket_connect_mem("/" + "x" * 107, mem, 0)
    stream = dill.ipc_listen(tmp_path / "stream", 1)
    with raises_errno(errno.EPROTOTYPE):
        dill.ipc_seqpacket_connect_mem(tmp_path / "stream", mem, 0)
    dill.hclose(stream)
    ls = dill.ipc_seqpacket_listen(tmp_path / "s", 0)
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_connect_mem(tmp_path / "s", mem, 0)
    assert_canceled(
        in_canceled_coroutine(lambda: dill.ipc_seqpacket_connect_mem(tmp_path / "s", mem, 0))
    )
    # A full backlog: the connect waits for room until its deadline.
    clients = []
    with raises_errno(errno.ETIMEDOUT):
        for _ in range(50):
            clients.append(dill.ipc_seqpacket_connect(tmp_path / "s", dill.now() + 20))
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_seqpacket_connect_mem(tmp_path / "s", mem, dill.now() + 20)
    accepted = []
    while True:
        try:
            accepted.append(dill.ipc_seqpacket_accept(ls, 0))
        except TimeoutError:
            break
    c = dill.ipc_seqpacket_connect_mem(tmp_path / "s", mem, dill.now() + SAFETY_MS)
    close_all(c, *clients, *accepted, ls)


def test_pair_mem_reuse_ebusy_einval_emfile_canceled() -> None:
    mem = dill.ipc_seqpacket_pair_storage()
    a, b = dill.ipc_seqpacket_pair_mem(mem)
    dill.msend(a, b"x")
    assert dill.mrecv(b, 1) == b"x"
    with raises_errno(errno.EBUSY):
        dill.ipc_seqpacket_pair_mem(mem)
    dill.hclose(a)
    with raises_errno(errno.EBUSY):  # one end still open
        dill.ipc_seqpacket_pair_mem(mem)
    dill.hclose(b)
    a, b = dill.ipc_seqpacket_pair_mem(mem)
    dill.msend(b, b"y")
    assert dill.mrecv(a, 1) == b"y"
    close_all(a, b)
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_pair_mem(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_pair_mem(dill.ipc_pair_storage())  # type: ignore[arg-type]
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_pair_mem(mem)
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_pair_mem(mem)))
    close_all(*dill.ipc_seqpacket_pair_mem(mem))  # none of that took it


def test_fromfd_mem_reuse_ebusy_einval_ebadf_emfile_canceled() -> None:
    mem = dill.ipc_seqpacket_storage()
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_fromfd_mem(0, None)  # type: ignore[arg-type]
    for _ in range(2):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s = dill.ipc_seqpacket_fromfd_mem(mine, mem)  # a socket object this time
        assert mine.fileno() == -1  # the object is closed; the handle owns a copy
        other, other_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with raises_errno(errno.EBUSY):
            dill.ipc_seqpacket_fromfd_mem(other.fileno(), mem)
        assert fd_is_open(other.fileno())  # not taken over
        other.close()
        other_peer.close()
        theirs.send(b"stdlib")
        assert dill.mrecv(s, 10, dill.now() + SAFETY_MS) == b"stdlib"
        dill.hclose(s)
        theirs.close()
    stream_a, stream_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_fromfd_mem(stream_a.fileno(), mem)
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_fromfd_mem(stream_a, mem)
    assert stream_a.fileno() != -1  # a refused object is left open
    stream_a.close()
    stream_b.close()
    with raises_errno(errno.EBADF):
        dill.ipc_seqpacket_fromfd_mem(stream_a, mem)  # a closed socket object
    fd, other_fd = dill.mm_ipc_connected_pair()
    with no_fd_left(), raises_errno(errno.EMFILE):
        dill.ipc_seqpacket_fromfd_mem(fd, mem)
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_fromfd_mem(fd, mem)))
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_fromfd_mem(fd, dill.ipc_storage())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_fromfd_mem(str(fd), mem)  # type: ignore[arg-type]
    s = dill.ipc_seqpacket_fromfd_mem(fd, mem)
    assert not fd_is_open(fd)
    close_all(s)
    dill.mm_close(other_fd)


def test_storage_reused_while_an_old_waiter_wakes(tmp_path: Path) -> None:
    mem = dill.ipc_seqpacket_pair_storage()
    a, b = dill.ipc_seqpacket_pair_mem(mem)
    h, out = spawn(dill.mrecv, a, 10, -1)
    close_all(a, b)  # wakes the waiter, which has not run yet...
    a2, b2 = dill.ipc_seqpacket_pair_mem(mem)  # ...when mem holds a new pair
    finish(h)
    assert out[0].errno == errno.EBADF
    dill.msend(b2, b"new")
    assert dill.mrecv(a2, 3, 0) == b"new"  # not EBUSY, not latched
    dill.msend(a2, b"back")
    assert dill.mrecv(b2, 4, 0) == b"back"
    close_all(a2, b2)


def test_conformance_kit_on_pairs_in_reused_storages() -> None:
    pool: list[Any] = []
    made = [0]

    def pair_mem() -> tuple[int, int]:
        made[0] += 1
        pair: tuple[int, int] = first_free(
            pool, dill.ipc_seqpacket_pair_mem, dill.ipc_seqpacket_pair_storage
        )
        return pair

    check_msock(pair_mem, done=dill.ipc_seqpacket_done, latching=LATCH_DIRECTION, max_message=65536)
    assert made[0] > 2 * len(pool)  # the storages served again and again


def test_conformance_kit_on_connections_in_reused_storages() -> None:
    path = abstract()
    ls = dill.ipc_seqpacket_listen_mem(path, 5, dill.ipc_seqpacket_listener_storage())
    pool: list[Any] = []
    made = [0]

    def connect_accept_mem() -> tuple[int, int]:
        made[0] += 1
        c = first_free(
            pool,
            lambda mem: dill.ipc_seqpacket_connect_mem(path, mem, dill.now() + SAFETY_MS),
            dill.ipc_seqpacket_storage,
        )
        a = first_free(
            pool,
            lambda mem: dill.ipc_seqpacket_accept_mem(ls, mem, dill.now() + SAFETY_MS),
            dill.ipc_seqpacket_storage,
        )
        return c, a

    try:
        check_msock(
            connect_accept_mem,
            done=dill.ipc_seqpacket_done,
            latching=LATCH_DIRECTION,
            max_message=65536,
        )
    finally:
        dill.hclose(ls)
    assert made[0] > len(pool)  # the storages served again


# ipc_seqpacket_listener_fromfd --------------------------------------------------------


def stdlib_listener(path: str) -> socket.socket:
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ls.bind(path)
    ls.listen(5)
    return ls


@pytest.mark.parametrize("given", ["fd", "object"])
def test_listener_fromfd_adopts_a_stdlib_listener(tmp_path: Path, given: str) -> None:
    path = str(tmp_path / "s")
    std = stdlib_listener(path)
    if given == "fd":
        fd = std.detach()
        ls = dill.ipc_seqpacket_listener_fromfd(fd)
        assert not fd_is_open(fd)  # the number itself is closed: the handle owns a copy
    else:
        ls = dill.ipc_seqpacket_listener_fromfd(std)
        assert std.fileno() == -1
    c = dill.ipc_seqpacket_connect(path, dill.now() + SAFETY_MS)
    s = dill.ipc_seqpacket_accept(ls, dill.now() + SAFETY_MS)
    dill.msend(c, b"via an adopted listener")
    assert dill.mrecv(s, 100) == b"via an adopted listener"
    client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.connect(path)
    s2 = dill.ipc_seqpacket_accept(ls, dill.now() + SAFETY_MS)
    client.send(b"")
    client.send(b"stdlib client")
    assert dill.mrecv(s2, 100) == b""
    assert dill.mrecv(s2, 100) == b"stdlib client"
    client.close()
    with raises_errno(errno.EPIPE):
        dill.mrecv(s2, 100)
    dill.ipc_seqpacket_close(ls, 0)  # a listener's close is hclose
    with raises_errno(errno.EBADF):
        dill.hclose(ls)
    close_all(c, s, s2)


@pytest.mark.parametrize("kind", ["connected", "unbound", "bound", "stream", "datagram", "pipe"])
def test_listener_fromfd_einval_leaves_the_fd_open(tmp_path: Path, kind: str) -> None:
    keep: list[Any] = []
    if kind == "connected":
        keep = list(socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET))
    elif kind == "unbound":
        keep = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)]
    elif kind == "bound":  # bound, not listening
        keep = [socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)]
        keep[0].bind(str(tmp_path / "b"))
    elif kind == "stream":  # a listener, of the wrong type
        keep = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)]
        keep[0].bind(str(tmp_path / "b"))
        keep[0].listen(1)
    elif kind == "datagram":
        keep = [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)]
    try:
        if kind == "pipe":
            r, w = os.pipe()
            with raises_errno(errno.EINVAL):
                dill.ipc_seqpacket_listener_fromfd(r)
            assert fd_is_open(r)
            close_fd(r)
            close_fd(w)
            return
        before = open_fds()
        with raises_errno(errno.EINVAL):
            dill.ipc_seqpacket_listener_fromfd(keep[0].fileno())
        with raises_errno(errno.EINVAL):
            dill.ipc_seqpacket_listener_fromfd_mem(keep[0], dill.ipc_seqpacket_listener_storage())
        assert keep[0].fileno() != -1 and open_fds() == before
    finally:
        for sock in keep:
            sock.close()


def listener_fromfd_mem(fd: Any) -> int:
    return dill.ipc_seqpacket_listener_fromfd_mem(fd, dill.ipc_seqpacket_listener_storage())


@pytest.mark.parametrize(
    "listener_fromfd",
    [dill.ipc_seqpacket_listener_fromfd, listener_fromfd_mem],
    ids=["plain", "mem"],
)
def test_listener_fromfd_ebadf_emfile_canceled_typeerror(
    tmp_path: Path, listener_fromfd: Callable[[Any], int]
) -> None:
    r, w = os.pipe()
    close_fd(r)
    close_fd(w)
    with raises_errno(errno.EBADF):
        listener_fromfd(r)
    std = stdlib_listener(str(tmp_path / "s"))
    try:
        with no_fd_left(), raises_errno(errno.EMFILE):
            listener_fromfd(std)
        assert_canceled(in_canceled_coroutine(lambda: listener_fromfd(std)))
        with pytest.raises(TypeError):
            listener_fromfd(str(std.fileno()))
        assert std.fileno() != -1  # every failure left it
    finally:
        std.close()
    with raises_errno(errno.EBADF):
        listener_fromfd(std)  # a closed socket object


def test_listener_fromfd_mem_reuse_ebusy_einval(tmp_path: Path) -> None:
    mem = dill.ipc_seqpacket_listener_storage()
    with raises_errno(errno.EINVAL):
        dill.ipc_seqpacket_listener_fromfd_mem(0, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipc_seqpacket_listener_fromfd_mem(0, dill.ipc_seqpacket_storage())  # type: ignore[arg-type]
    for k in range(2):
        path = str(tmp_path / f"s{k}")
        ls = dill.ipc_seqpacket_listener_fromfd_mem(stdlib_listener(path), mem)
        other = stdlib_listener(str(tmp_path / f"other{k}"))
        with raises_errno(errno.EBUSY):
            dill.ipc_seqpacket_listener_fromfd_mem(other, mem)
        assert other.fileno() != -1  # not taken over
        other.close()
        with raises_errno(errno.EBUSY):
            dill.ipc_seqpacket_listen_mem(abstract(), 1, mem)
        c = dill.ipc_seqpacket_connect(path, dill.now() + SAFETY_MS)
        s = dill.ipc_seqpacket_accept(ls, dill.now() + SAFETY_MS)
        dill.msend(s, b"%d" % k)
        assert dill.mrecv(c, 10) == b"%d" % k
        close_all(c, s, ls)


# ipc_seqpacket_done ------------------------------------------------------------------


def test_done_half_closes_and_the_peer_gets_every_message_then_epipe() -> None:
    a, b = dill.ipc_seqpacket_pair()
    sent = [b"one", b"", b"three" * 1000]  # (an empty last one would read as the end)
    for m in sent:
        dill.msend(a, m)
    dill.ipc_seqpacket_done(a)
    assert [dill.mrecv(b, 10_000) for _ in sent] == sent  # empty messages too
    for _ in range(2):  # and the end stays
        with raises_errno(errno.EPIPE):
            dill.mrecv(b, 10, dill.now() + SAFETY_MS)
    # No more sending on a, by any call...
    with raises_errno(errno.EPIPE):
        dill.msend(a, b"x")
    with raises_errno(errno.EPIPE):
        dill.msendl(a, [b"x"])
    with raises_errno(errno.EPIPE):
        dill.ipc_seqpacket_sendmsg(a, dill.mm_ipc_msg([b"x"]))
    with raises_errno(errno.EPIPE) as info:
        dill.ipc_seqpacket_done(a)
    assert isinstance(info.value, BrokenPipeError)
    # ...but receiving goes on, and the peer may still send.
    dill.msend(b, b"reply")
    assert dill.mrecv(a, 10) == b"reply"
    dill.ipc_seqpacket_done(b)
    with raises_errno(errno.EPIPE):
        dill.mrecv(a, 10)
    close_all(a, b)


def test_done_with_a_stdlib_peer() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s = dill.ipc_seqpacket_fromfd(mine)
    try:
        dill.msend(s, b"before done")
        dill.ipc_seqpacket_done(s, 0)
        theirs.setblocking(False)
        assert theirs.recv(100) == b"before done"
        assert theirs.recv(100) == b""  # the end of the connection
        assert theirs.recv(100) == b""  # stays
        theirs.send(b"the peer still sends")
        assert dill.mrecv(s, 100, dill.now() + SAFETY_MS) == b"the peer still sends"
    finally:
        theirs.close()
        dill.hclose(s)


def test_done_wakes_a_blocked_sender_with_epipe() -> None:
    a, b = dill.ipc_seqpacket_pair()
    sent = 0
    with raises_errno(errno.ETIMEDOUT):  # fill the queue, with a spare pair's latch
        while True:
            dill.msend(a, b"x" * 1000, 0)
            sent += 1
    close_all(a, b)
    a, b = dill.ipc_seqpacket_pair()
    for _ in range(sent):
        dill.msend(a, b"x" * 1000, 0)
    h, out = spawn(dill.msend, a, b"blocked", -1)
    dill.yield_()
    assert out == []  # waiting for room
    dill.ipc_seqpacket_done(a)
    finish(h)
    assert out[0].errno == errno.EPIPE  # at once: no room ever comes now
    for _ in range(sent):
        assert dill.mrecv(b, 1000) == b"x" * 1000
    with raises_errno(errno.EPIPE):  # "blocked" was never sent
        dill.mrecv(b, 1000)
    close_all(a, b)


def test_done_errnos(tmp_path: Path) -> None:
    a, b = dill.ipc_seqpacket_pair()
    with raises_errno(errno.ETIMEDOUT):
        while True:
            dill.msend(a, b"x" * 1000, 0)
    with raises_errno(errno.ECONNRESET):  # the failed send broke sending
        dill.ipc_seqpacket_done(a)
    # A canceled coroutine: ECANCELED, and done did nothing.
    a2, b2 = dill.ipc_seqpacket_pair()
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_done(a2)))
    dill.msend(a2, b"not done")
    assert dill.mrecv(b2, 10) == b"not done"
    ls = dill.ipc_seqpacket_listen(tmp_path / "s", 1)
    stream = dill.ipc_pair()
    ch = dill.chmake()
    for h in (ls, stream[0], ch[0]):
        with raises_errno(errno.ENOTSUP):
            dill.ipc_seqpacket_done(h)
    close_all(a, b, a2, b2, ls, *stream, *ch)
    for h in (a, 1_000_000):
        with raises_errno(errno.EBADF):
            dill.ipc_seqpacket_done(h)


# ipc_seqpacket_close, the orderly close ---------------------------------------------


def test_close_in_order_the_peer_gets_every_message() -> None:
    a, b = dill.ipc_seqpacket_pair()
    messages = [b"%d" % k * (k % 50) for k in range(500)]  # more than a queue holds

    def sender() -> None:
        for m in messages:
            dill.msend(a, m, dill.now() + SAFETY_MS)
        dill.ipc_seqpacket_close(a, dill.now() + SAFETY_MS)  # waits for b's end

    h = dill.go(sender)
    got = [dill.mrecv(b, 1000, dill.now() + SAFETY_MS) for _ in messages]
    assert got == messages
    with raises_errno(errno.EPIPE):
        dill.mrecv(b, 1000, dill.now() + SAFETY_MS)
    dill.ipc_seqpacket_close(b, dill.now() + SAFETY_MS)
    finish(h)
    for s in (a, b):
        with raises_errno(errno.EBADF):
            dill.hclose(s)


def test_close_with_a_stdlib_peer_drops_its_messages_and_their_fds() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.setblocking(False)
    s = dill.ipc_seqpacket_fromfd(mine)
    r, w = os.pipe()
    try:
        dill.msend(s, b"for the peer")
        socket.send_fds(theirs, [b"dropped, with an fd"], [w])
        close_fd(w)  # the only copy left travels in the message
        theirs.send(b"")
        theirs.send(b"dropped too")

        def peer_ends_later() -> None:
            dill.msleep(dill.now() + 10)
            theirs.shutdown(socket.SHUT_WR)

        h = dill.go(peer_ends_later)
        dill.ipc_seqpacket_close(s, dill.now() + SAFETY_MS)
        finish(h)
        assert theirs.recv(100) == b"for the peer"
        assert theirs.recv(100) == b""  # our done
        assert os.read(r, 1) == b""  # the dropped fd was closed: no writer is left
    finally:
        close_fd(r)
        theirs.close()
    with raises_errno(errno.EBADF):
        dill.hclose(s)


def test_close_after_the_end_does_not_wait() -> None:
    a, b = dill.ipc_seqpacket_pair()
    dill.msend(b, b"unread, not an error")
    dill.ipc_seqpacket_done(b)
    dill.ipc_seqpacket_close(a, 0)  # drops the message, meets the end at once
    a2, b2 = dill.ipc_seqpacket_pair()
    dill.hclose(b2)
    with raises_errno(errno.EPIPE):
        dill.mrecv(a2, 1)
    assert in_canceled_coroutine(lambda: dill.ipc_seqpacket_close(a2, 0)) is None
    dill.hclose(b)
    for s in (a, a2):
        with raises_errno(errno.EBADF):
            dill.hclose(s)


def test_close_drops_a_full_queue_and_meets_the_end_whatever_the_deadline() -> None:
    a, b = dill.ipc_seqpacket_pair()
    queued = 0
    with raises_errno(errno.ETIMEDOUT):  # b's sending side is full (and broken)
        while True:
            dill.msend(b, b"queued", 0)
            queued += 1
    assert queued > 100
    dill.hclose(b)  # the end, after all of them
    dill.ipc_seqpacket_close(a, 0)  # it can all be done at once: no ETIMEDOUT


def test_close_succeeds_when_the_peer_hard_closes() -> None:
    a, b = dill.ipc_seqpacket_pair()

    def peer() -> None:
        dill.msleep(dill.now() + 5)
        dill.hclose(b)

    h = dill.go(peer)
    dill.ipc_seqpacket_close(a, dill.now() + SAFETY_MS)
    finish(h)


def test_close_etimedout_when_the_peer_never_closes() -> None:
    a, b = dill.ipc_seqpacket_pair()
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_seqpacket_close(a, deadline)
    assert dill.now() >= deadline
    with raises_errno(errno.EBADF):  # closed all the same
        dill.hclose(a)
    with raises_errno(errno.EPIPE):  # and the peer sees the end
        dill.mrecv(b, 1, dill.now() + SAFETY_MS)
    dill.hclose(b)


def test_close_etimedout_when_the_peer_keeps_sending() -> None:
    a, b = dill.ipc_seqpacket_pair()
    sent = [0]

    def chatter() -> None:
        with suppress(OSError):
            while True:
                dill.msend(b, b"more")
                sent[0] += 1
                dill.msleep(dill.now() + 1)

    h = dill.go(chatter)
    deadline = dill.now() + 30
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_seqpacket_close(a, deadline)
    assert dill.now() >= deadline
    assert sent[0] > 1  # it did keep sending while close dropped
    dill.hclose(h)
    dill.hclose(b)


def test_close_etimedout_when_a_peer_process_floods() -> None:
    # A peer in another process that sends as fast as close drops.
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    flood = (
        "import socket, sys\n"
        "s = socket.socket(fileno=int(sys.argv[1]))\n"
        "s.setblocking(True)  # gevent's socketpair (patched runs) made it non-blocking\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    while True:\n"
        "        s.send(b'flood')\n"
        "except OSError:\n"
        "    pass\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", flood, str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        stdout=subprocess.PIPE,
    )
    theirs.close()
    s = dill.ipc_seqpacket_fromfd(mine)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        deadline = dill.now() + 50
        with raises_errno(errno.ETIMEDOUT):
            dill.ipc_seqpacket_close(s, deadline)
        assert dill.now() >= deadline
        assert proc.wait(SAFETY_MS / 1000) == 0  # its send failed: we are gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_close_econnreset_when_the_peer_dropped_our_messages() -> None:
    # Met while closing.
    a, b = dill.ipc_seqpacket_pair()
    dill.msend(a, b"unread")
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET):
        dill.ipc_seqpacket_close(a, dill.now() + SAFETY_MS)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    # Met by a receive before, which stepped over it to the peer's messages.
    a, b = dill.ipc_seqpacket_pair()
    dill.msend(a, b"unread")
    dill.msend(b, b"last words")
    dill.hclose(b)
    assert dill.mrecv(a, 100) == b"last words"
    with raises_errno(errno.EPIPE):
        dill.mrecv(a, 100)
    with raises_errno(errno.ECONNRESET):  # the peer did not get everything
        dill.ipc_seqpacket_close(a, dill.now() + SAFETY_MS)
    with raises_errno(errno.EBADF):
        dill.hclose(a)


@pytest.mark.parametrize("broken", ["receive", "send"])
def test_close_with_a_latched_error_is_econnreset_and_closes(broken: str) -> None:
    a, b = dill.ipc_seqpacket_pair()
    with raises_errno(errno.ETIMEDOUT):
        if broken == "receive":
            dill.mrecv(a, 1, 0)
        else:
            while True:
                dill.msend(a, b"x" * 1000, 0)
    dill.ipc_seqpacket_done(b)  # the peer's end would otherwise make it succeed
    with raises_errno(errno.ECONNRESET):
        dill.ipc_seqpacket_close(a, dill.now() + SAFETY_MS)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


def test_close_canceled_while_waiting_closes_the_handle() -> None:
    a, b = dill.ipc_seqpacket_pair()
    h, out = spawn(dill.ipc_seqpacket_close, a, -1)
    dill.hclose(h)
    assert_canceled(out[0])
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    with raises_errno(errno.EPIPE):
        dill.mrecv(b, 1, dill.now() + SAFETY_MS)
    a2, b2 = dill.ipc_seqpacket_pair()
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_seqpacket_close(a2, -1)))
    with raises_errno(errno.EBADF):
        dill.hclose(a2)
    close_all(b, b2)


def test_close_enotsup_leaves_the_handle_open_and_ebadf() -> None:
    stream = dill.ipc_pair()
    ch = dill.chmake()
    for h in (stream[0], ch[0]):
        with raises_errno(errno.ENOTSUP):
            dill.ipc_seqpacket_close(h)
    close_all(*stream, *ch)  # still open
    for h in (stream[0], 1_000_000):
        with raises_errno(errno.EBADF):
            dill.ipc_seqpacket_close(h)


def test_close_of_a_listener_is_hclose_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_seqpacket_listen(path, 1)
    dill.ipc_seqpacket_close(ls, 0)
    with raises_errno(errno.EBADF):
        dill.hclose(ls)
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_seqpacket_listen(path, 1)


def test_a_woken_close_leaves_the_reused_storage_alone() -> None:
    # ipc_seqpacket_close, woken by hclose of its handle, must close neither
    # the handle number nor the storage again: both may hold another
    # connection by the time it runs.
    mem = dill.ipc_seqpacket_pair_storage()
    a, b = dill.ipc_seqpacket_pair_mem(mem)
    h, out = spawn(dill.ipc_seqpacket_close, a, -1)
    dill.yield_()
    close_all(a, b)  # wakes the close, which runs when this coroutine waits
    a2, b2 = dill.ipc_seqpacket_pair_mem(mem)
    finish(h)
    assert out[0].errno == errno.EBADF
    dill.msend(a2, b"still open")
    assert dill.mrecv(b2, 20) == b"still open"
    close_all(a2, b2)
