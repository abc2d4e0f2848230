"""TERM: the terminal-message handshake over a message socket (reference sections 0, 12, 19).

Over prefix and suffix sockets, themselves over IPC and TCP (the stacks of
the issue: term over prefix over TCP, term over suffix over IPC), and over a
UDP socket. Each errno in the reference's order, the handshake in both
orders, and the stack coming apart in order: term_detach, then the framing
layer's detach, then the raw stream, with no byte lost.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Callable

import pytest
from helpers import (
    finish,
    in_canceled_coroutine,
    raises_errno,
    soon,
    spawn,
    tcp_pair,
)

import greendill as dill

BYE = b"\xffBYE\xff"


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


@pytest.fixture(params=["prefix-tcp", "suffix-ipc", "prefix-ipc"])
def msocks(request: pytest.FixtureRequest) -> Iterator[tuple[int, int]]:
    """Two connected message sockets (the test closes them, or what owns them)."""
    framing, transport = request.param.split("-")
    a, b = tcp_pair() if transport == "tcp" else dill.ipc_pair()
    if framing == "prefix":
        yield dill.prefix_attach(a, 4), dill.prefix_attach(b, 4)
    else:
        yield dill.suffix_attach(a, b"\r\n"), dill.suffix_attach(b, b"\r\n")


@pytest.mark.parametrize("terminal", [BYE, b"", None, bytes(32)])
def test_messages_pass_through_and_the_terminal_one_is_epipe(
    msocks: tuple[int, int], terminal: bytes
) -> None:
    if terminal is not None and b"\r\n" in terminal:
        pytest.skip("not a message suffix framing can carry")
    a, b = (dill.term_attach(s, terminal) for s in msocks)
    try:
        dill.msend(a, b"one")
        dill.msendl(a, [b"tw", b"o"])
        dill.term_done(a, soon())
        assert dill.mrecv(b, 10, soon()) == b"one"
        buffer = bytearray(10)
        assert dill.mrecv_into(b, buffer, soon()) == 3
        assert buffer[:3] == b"two"
        with raises_errno(errno.EPIPE):
            dill.mrecv(b, 10, soon())
        with raises_errno(errno.EPIPE):  # sticky
            dill.mrecvl(b, [bytearray(10)], soon())
        with raises_errno(errno.EPIPE):  # after term_done, this side sends no more
            dill.msend(a, b"more")
        dill.msend(b, b"the other way still works")
        assert dill.mrecv(a, 100, soon()) == b"the other way still works"
    finally:
        close_all(a, b)


def test_a_short_buffer_still_sees_the_terminal_message(msocks: tuple[int, int]) -> None:
    a, b = (dill.term_attach(s, BYE) for s in msocks)
    try:
        dill.msend(a, b"ab")
        dill.msend(a, b"abcd")
        dill.term_done(a, soon())
        small = bytearray(2)
        assert dill.mrecv_into(b, small, soon()) == 2  # a buffer shorter than BYE
        assert small == b"ab"
        with raises_errno(errno.EMSGSIZE):
            dill.mrecv_into(b, small, soon())
        with raises_errno(errno.EPIPE):
            dill.mrecvl(b, [small], soon())
    finally:
        close_all(a, b)


def test_mrecvl_scatters_and_drops(msocks: tuple[int, int]) -> None:
    a, b = (dill.term_attach(s, BYE) for s in msocks)
    try:
        dill.msend(a, b"0123456789")
        dill.msend(a, b"dropped")
        dill.msend(a, b"abcdef")
        head, tail = bytearray(3), bytearray(10)
        assert dill.mrecvl(b, [head, 2, tail], soon()) == 10
        assert (head, tail[:5]) == (b"012", b"56789")
        assert dill.mrecvl(b, [], soon()) == len(b"dropped")
        parts = [bytearray(1), bytearray(1), bytearray(10)]
        assert dill.mrecvl(b, parts, soon()) == 6
        assert b"".join(parts)[:6] == b"abcdef"
        dill.term_done(a, soon())
        with raises_errno(errno.EPIPE):
            dill.mrecvl(b, [], soon())
    finally:
        close_all(a, b)


def test_msend_of_the_terminal_message_is_einval(msocks: tuple[int, int]) -> None:
    a, b = (dill.term_attach(s, BYE) for s in msocks)
    try:
        with raises_errno(errno.EINVAL):
            dill.msend(a, BYE)
        with raises_errno(errno.EINVAL):
            dill.msendl(a, [BYE[:2], BYE[2:]])
        dill.msend(a, BYE + b"!")
        assert dill.mrecv(b, 10, soon()) == BYE + b"!"
    finally:
        close_all(a, b)


@pytest.mark.parametrize("order", ["one side first", "both at once"])
def test_detach_handshake_gives_back_the_socket_below_in_order(
    msocks: tuple[int, int], order: str
) -> None:
    a, b = (dill.term_attach(s, BYE) for s in msocks)
    dill.msend(a, b"unread by b")
    dill.msend(b, b"unread by a")
    if order == "one side first":
        dill.term_done(b, soon())
    h, out = spawn(dill.term_detach, b, soon())
    ua = dill.term_detach(a, soon())
    finish(h)
    ub = out[0]
    assert isinstance(ub, int), ub
    try:
        # Below the term layer, the conversation goes on with fresh messages.
        dill.msend(ua, b"after")
        assert dill.mrecv(ub, 10, soon()) == b"after"
        with raises_errno(errno.EBADF):
            dill.term_done(a, 0)
    finally:
        close_all(ua, ub)


def test_whole_stack_comes_apart_in_order_over_tcp() -> None:
    a, b = tcp_pair()
    ta = dill.term_attach(dill.prefix_attach(a, 2), b"")
    tb = dill.term_attach(dill.prefix_attach(b, 2), b"")
    dill.msend(ta, b"hello")
    assert dill.mrecv(tb, 10, soon()) == b"hello"
    h, out = spawn(dill.term_detach, tb, soon())
    pa = dill.term_detach(ta, soon())
    finish(h)
    pb = out[0]
    ra, rb = dill.prefix_detach(pa), dill.prefix_detach(pb)
    dill.bsend(ra, b"raw bytes")
    assert dill.brecv(rb, 9, soon()) == b"raw bytes"
    close_all(ra, rb)


def test_term_over_udp() -> None:
    # UDP is a message socket too; datagrams on loopback keep their order.
    receiver_addr = dill.ipaddr_local("127.0.0.1", 0)
    receiver = dill.term_attach(dill.udp_open(receiver_addr, None), BYE)
    remote = dill.ipaddr_remote("127.0.0.1", dill.ipaddr_port(receiver_addr), 0, -1)
    sender = dill.term_attach(dill.udp_open(dill.ipaddr_local("127.0.0.1", 0), remote), BYE)
    try:
        dill.msend(sender, b"datagram")
        dill.term_done(sender)
        assert dill.mrecv(receiver, 100, soon()) == b"datagram"
        with raises_errno(errno.EPIPE):
            dill.mrecv(receiver, 100, soon())
    finally:
        close_all(sender, receiver)


# Errors, in the reference's order --------------------------------------------------


# term_attach, and term_attach_mem in a fresh storage: the same rules.
attach_variants = pytest.mark.parametrize(
    "attach",
    [
        pytest.param(dill.term_attach, id="term_attach"),
        pytest.param(
            lambda s, buf: dill.term_attach_mem(s, buf, dill.term_storage()),
            id="term_attach_mem",
        ),
    ],
)


@attach_variants
def test_attach_ebadf_for_a_number_that_is_no_handle(attach: Callable[..., int]) -> None:
    with raises_errno(errno.EBADF):
        attach(12345, BYE)


@attach_variants
def test_attach_einval_for_a_terminal_message_over_32_bytes_closes_the_socket(
    attach: Callable[..., int],
) -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.EINVAL):
        attach(p, bytes(33))
    with raises_errno(errno.EBADF):
        dill.hclose(p)
    dill.hclose(b)


@attach_variants
def test_attach_eproto_when_underlying_is_a_byte_stream(attach: Callable[..., int]) -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.EPROTO):
        attach(a, BYE)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


@attach_variants
def test_attach_ecanceled_in_a_canceled_coroutine_closes_the_socket(
    attach: Callable[..., int],
) -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    assert isinstance(in_canceled_coroutine(lambda: attach(p, BYE)), dill.Canceled)
    with raises_errno(errno.EBADF):
        dill.hclose(p)
    dill.hclose(b)


def test_attach_mem_storage_rules() -> None:
    mem = dill.term_storage()
    a, b = dill.ipc_pair()
    t = dill.term_attach_mem(dill.prefix_attach(a, 4), BYE, mem)
    c, d = dill.ipc_pair()
    pc = dill.prefix_attach(c, 4)
    with raises_errno(errno.EBUSY):
        dill.term_attach_mem(pc, BYE, mem)
    with raises_errno(errno.EBADF):
        dill.hclose(pc)
    with raises_errno(errno.EINVAL):
        dill.term_attach_mem(dill.prefix_attach(d, 4), BYE, None)  # type: ignore[arg-type]
    dill.hclose(t)
    t = dill.term_attach_mem(dill.prefix_attach(b, 4), BYE, mem)  # reusable once closed
    dill.hclose(t)


def test_done_ebadf_enotsup_epipe() -> None:
    with raises_errno(errno.EBADF):
        dill.term_done(12345)
    a, b = dill.ipc_pair()
    pa, pb = dill.prefix_attach(a, 4), dill.prefix_attach(b, 4)
    with raises_errno(errno.ENOTSUP):
        dill.term_done(pa)
    ta = dill.term_attach(pa, BYE)
    dill.term_done(ta)
    with raises_errno(errno.EPIPE):
        dill.term_done(ta)
    assert dill.mrecv(pb, 10, soon()) == BYE  # what went on the wire
    close_all(ta, pb)


@contextmanager
def clogged_term() -> Iterator[int]:
    """A term socket over prefix over IPC whose kernel send buffer is full."""
    mine, peer = socket.socketpair()
    filler = mine.dup()
    filler.setblocking(False)
    with suppress(BlockingIOError):
        while True:
            filler.send(bytes(65536))
    filler.close()
    t = dill.term_attach(dill.prefix_attach(dill.ipc_fromfd(mine.detach()), 4), BYE)
    try:
        yield t
    finally:
        dill.hclose(t)
        peer.close()


def test_done_etimedout_when_sending_must_wait() -> None:
    with clogged_term() as t, raises_errno(errno.ETIMEDOUT):
        dill.term_done(t, dill.now() + 20)


def test_done_ecanceled_when_sending_must_wait() -> None:
    with clogged_term() as t:
        h, out = spawn(dill.term_done, t)
        dill.yield_()
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)


def test_detach_ebadf_enotsup() -> None:
    with raises_errno(errno.EBADF):
        dill.term_detach(12345)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.term_detach(a)
    close_all(a, b)


def test_detach_etimedout_closes_the_stack() -> None:
    a, b = dill.ipc_pair()
    ta = dill.term_attach(dill.prefix_attach(a, 4), BYE)
    pb = dill.prefix_attach(b, 4)
    with raises_errno(errno.ETIMEDOUT):
        dill.term_detach(ta, dill.now() + 20)  # the peer never answers
    with raises_errno(errno.EBADF):
        dill.hclose(ta)
    assert dill.mrecv(pb, 10, soon()) == BYE
    with raises_errno(errno.EPIPE):
        dill.mrecv(pb, 10, soon())
    dill.hclose(pb)


def test_detach_ecanceled_closes_the_stack() -> None:
    a, b = dill.ipc_pair()
    ta = dill.term_attach(dill.prefix_attach(a, 4), BYE)
    h, out = spawn(dill.term_detach, ta)
    dill.yield_()
    dill.hclose(h)
    assert isinstance(out[0], dill.Canceled)
    with raises_errno(errno.EBADF):
        dill.hclose(ta)
    dill.hclose(b)


def test_detach_in_a_canceled_coroutine_with_the_answer_there() -> None:
    # Nothing has to wait: the handshake completes even so.
    a, b = dill.ipc_pair()
    ta = dill.term_attach(dill.prefix_attach(a, 4), BYE)
    tb = dill.term_attach(dill.prefix_attach(b, 4), BYE)
    dill.term_done(tb)
    dill.yield_()
    pa = in_canceled_coroutine(lambda: dill.term_detach(ta, 0))
    assert isinstance(pa, int), pa
    close_all(pa, tb)
