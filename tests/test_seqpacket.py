"""IPC message sockets (ipc_seqpacket_*): SOCK_SEQPACKET connections as greendill handles.

The message-socket contract (msend, mrecv, msendl, mrecvl: latching, EBUSY,
EPIPE at the end, EMSGSIZE), adopting mm_ipc_* fds and stdlib sockets,
listening on paths and abstract names, passing fds on a handle, and
coroutines composed over it. Also the accept fix in _stream.Watched (a
second waiting accept is EBUSY, for ipc_accept too).
"""

from __future__ import annotations

import errno
import os
import socket
import uuid
from pathlib import Path

import pytest
from helpers import (
    SAFETY_MS,
    assert_canceled,
    close_fd,
    finish,
    in_canceled_coroutine,
    no_fd_left,
    raises_errno,
    spawn,
)

import greendill as dill


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
