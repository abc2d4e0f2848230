"""SUFFIX: delimiter-ended messages over a byte stream (reference sections 0, 11 and 19).

The codec first (hypothesis: any messages, any splits, and reads that never
pass a message's end), then the wire layout against plain sockets, then each
errno, then detaching without losing a byte, with and without read-ahead.
"""

from __future__ import annotations

import errno
import socket
from contextlib import suppress
from typing import Callable

import pytest
from helpers import (
    byte_stream_pair,
    end_stream,
    finish,
    greendill_and_plain_socket,
    in_canceled_coroutine,
    plain,
    raises_errno,
    randbytes,
    soon,
    spawn,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import greendill as dill
from greendill._suffix import decode_suffixed, encode_suffixed, safe_read_size

CRLF = b"\r\n"


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


def frameable(message: bytes, suffix: bytes) -> bool:
    try:
        encode_suffixed(message, suffix)
    except OSError:
        return False
    return True


suffixes = st.binary(min_size=1, max_size=4)


# The codec -------------------------------------------------------------------


@given(suffixes, st.lists(st.binary(max_size=40), max_size=10), st.data())
def test_codec_frames_survive_any_split(
    suffix: bytes, messages: list[bytes], data: st.DataObject
) -> None:
    messages = [m for m in messages if frameable(m, suffix)]
    encoded = b"".join(encode_suffixed(m, suffix) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=10)))
    buffer = bytearray()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(encoded)]):
        buffer += encoded[start:end]
        while (message := decode_suffixed(buffer, suffix, 1000)) is not None:
            decoded.append(message)
    assert decoded == messages
    assert buffer == b""


@given(suffixes, st.binary(max_size=20))
def test_codec_refuses_exactly_the_messages_that_would_not_come_back_whole(
    suffix: bytes, message: bytes
) -> None:
    if frameable(message, suffix):
        assert decode_suffixed(bytearray(encode_suffixed(message, suffix)), suffix, 100) == message
    else:
        assert (message + suffix).find(suffix) < len(message)


def test_codec_einval_examples() -> None:
    with raises_errno(errno.EINVAL):
        encode_suffixed(b"one\r\ntwo", CRLF)
    with raises_errno(errno.EINVAL):
        encode_suffixed(b"xa", b"aa")  # "xaaa": the peer would read "x"
    assert encode_suffixed(b"abc\r", CRLF) == b"abc\r\r\n"


def test_codec_emsgsize_as_soon_as_the_message_cannot_fit() -> None:
    with raises_errno(errno.EMSGSIZE):
        decode_suffixed(bytearray(b"0123456789"), CRLF, 8)  # no suffix yet, 9 bytes known
    assert decode_suffixed(bytearray(b"0123456789"), CRLF, 9) is None
    with raises_errno(errno.EMSGSIZE):
        decode_suffixed(bytearray(b"0123\r\n"), CRLF, 3)


@given(suffixes, st.binary(max_size=12), st.binary(max_size=12))
def test_safe_read_size_never_reads_past_a_suffix(suffix: bytes, tail: bytes, more: bytes) -> None:
    assume(suffix not in tail)
    safe = safe_read_size(tail, suffix)
    assert 1 <= safe <= len(suffix)
    end = (tail + more).find(suffix)
    if end >= 0:
        assert end + len(suffix) >= len(tail) + safe


# The wire layout -------------------------------------------------------------------


def test_wire_layout_is_the_bytes_then_the_suffix() -> None:
    with greendill_and_plain_socket() as (h, peer):
        s = dill.suffix_attach(h, CRLF)
        try:
            dill.msend(s, b"hello")
            dill.msendl(s, [b"wo", b"", b"rld"])
            dill.msend(s, b"")
            assert peer.recv(100) == b"hello\r\nworld\r\n\r\n"
            peer.sendall(b"GET / HTTP/1.1\r")
            peer.sendall(b"\nHost: x\r\n\r\n")
            assert dill.mrecv(s, 100, soon()) == b"GET / HTTP/1.1"
            assert dill.mrecv(s, 100, soon()) == b"Host: x"
            assert dill.mrecv(s, 100, soon()) == b""
        finally:
            dill.hclose(s)


# Over greendill's transports -----------------------------------------------------


@pytest.fixture(params=["ipc", "tcp", "plain"])
def pair(request: pytest.FixtureRequest) -> tuple[int, int]:
    return byte_stream_pair(request.param)


@pytest.mark.parametrize("suffix", [b"\n", CRLF, b"\x00END\x00", bytes(range(32))])
def test_messages_keep_their_boundaries_and_order(pair: tuple[int, int], suffix: bytes) -> None:
    a, b = dill.suffix_attach(pair[0], suffix), dill.suffix_attach(pair[1], suffix)
    try:
        messages = [randbytes(n, n).replace(suffix[:1], b"") for n in (0, 1, 5, 300, 40000, 7)]
        sender, _ = spawn(lambda: [dill.msend(a, m) for m in messages])
        assert [dill.mrecv(b, 1 << 20, soon()) for _ in messages] == messages
        finish(sender)
    finally:
        close_all(a, b)


def test_mrecvl_scatters_drops_and_skips(pair: tuple[int, int]) -> None:
    a, b = dill.suffix_attach(pair[0], CRLF), dill.suffix_attach(pair[1], CRLF)
    try:
        big = b"x" * 100_000
        sender, _ = spawn(
            lambda: [dill.msend(a, m) for m in (b"abcdefgh", big, b"0123456789", b"into")]
        )
        first, second = bytearray(2), bytearray(10)
        assert dill.mrecvl(b, [first, second], soon()) == 8
        assert (bytes(first), bytes(second[:6])) == (b"ab", b"cdefgh")
        assert dill.mrecvl(b, [], soon()) == len(big)  # dropped with bounded memory
        head = bytearray(3)
        assert dill.mrecvl(b, [head, 4, bytearray(5)], soon()) == 10
        assert head == b"012"
        buffer = bytearray(100)
        assert dill.mrecv_into(b, buffer, soon()) == 4
        assert buffer[:4] == b"into"
        finish(sender)
    finally:
        close_all(a, b)


# Errors, in the reference's order -----------------------------------------------------


# suffix_attach, and suffix_attach_mem in a fresh storage: the same rules.
attach_variants = pytest.mark.parametrize(
    "attach",
    [
        pytest.param(dill.suffix_attach, id="suffix_attach"),
        pytest.param(
            lambda s, suffix: dill.suffix_attach_mem(s, suffix, dill.suffix_storage()),
            id="suffix_attach_mem",
        ),
    ],
)


@attach_variants
def test_attach_ebadf_for_a_number_that_is_no_handle(attach: Callable[..., int]) -> None:
    with raises_errno(errno.EBADF):
        attach(12345, CRLF)


@attach_variants
@pytest.mark.parametrize("suffix", [None, b"", bytes(33)])
def test_attach_einval_closes_the_socket(attach: Callable[..., int], suffix: bytes) -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        attach(a, suffix)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


@attach_variants
def test_attach_eproto_when_underlying_is_msock(attach: Callable[..., int]) -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.EPROTO):
        attach(p, CRLF)
    with raises_errno(errno.EBADF):
        dill.hclose(p)
    dill.hclose(b)


@attach_variants
def test_attach_ecanceled_in_a_canceled_coroutine_closes_the_socket(
    attach: Callable[..., int],
) -> None:
    a, b = dill.ipc_pair()
    assert isinstance(in_canceled_coroutine(lambda: attach(a, CRLF)), dill.Canceled)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


def test_attach_mem_storage_rules() -> None:
    mem = dill.suffix_storage()
    a, b = dill.ipc_pair()
    s = dill.suffix_attach_mem(a, CRLF, mem)
    c, d = dill.ipc_pair()
    with raises_errno(errno.EBUSY):
        dill.suffix_attach_mem(c, CRLF, mem)
    with raises_errno(errno.EINVAL):
        dill.suffix_attach_mem(d, CRLF, None)  # type: ignore[arg-type]
    for closed in (c, d):
        with raises_errno(errno.EBADF):
            dill.hclose(closed)
    u = dill.suffix_detach(s)
    s = dill.suffix_attach_mem(u, b"\n", mem)
    t = dill.suffix_attach(b, b"\n")
    dill.msend(s, b"reused")
    assert dill.mrecv(t, 10, soon()) == b"reused"
    close_all(s, t)


def test_msend_einval_for_a_message_holding_the_suffix_breaks_nothing(
    pair: tuple[int, int],
) -> None:
    a, b = dill.suffix_attach(pair[0], CRLF), dill.suffix_attach(pair[1], CRLF)
    try:
        with raises_errno(errno.EINVAL):
            dill.msend(a, b"two\r\nlines")
        with raises_errno(errno.EINVAL):
            dill.msendl(a, [b"split\r", b"\nsuffix"])
        dill.msend(a, b"fine")
        assert dill.mrecv(b, 10, soon()) == b"fine"
    finally:
        close_all(a, b)


@pytest.mark.parametrize("complete", [True, False])
def test_mrecv_emsgsize_latches_the_receiving_side(pair: tuple[int, int], complete: bool) -> None:
    a, b = dill.suffix_attach(pair[0], CRLF), dill.suffix_attach(pair[1], CRLF)
    try:
        # Complete: the suffix is there. Not: no suffix yet, too long already.
        dill.msend(a, b"0123456789" if complete else b"x" * 100)
        with raises_errno(errno.EMSGSIZE):
            dill.mrecv(b, 9 if complete else 50, soon())
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(b, 100, soon())
        with raises_errno(errno.ECONNRESET):
            dill.suffix_detach(b)
        with raises_errno(errno.EBADF):
            dill.hclose(b)
    finally:
        dill.hclose(a)


def test_mrecv_epipe_at_the_end_stays_epipe_and_detach_gives_the_stream_back(
    pair: tuple[int, int],
) -> None:
    a, b = dill.suffix_attach(pair[0], CRLF), dill.suffix_attach(pair[1], CRLF)
    dill.msend(a, b"last")
    u = dill.suffix_detach(a)
    end_stream(u)
    try:
        assert dill.mrecv(b, 10, soon()) == b"last"
        with raises_errno(errno.EPIPE):
            dill.mrecv(b, 10, soon())
        with raises_errno(errno.EPIPE):
            dill.mrecvl(b, [], soon())
        ub = dill.suffix_detach(b)
        with raises_errno(errno.EPIPE):
            dill.brecv(ub, 1, soon())
        dill.hclose(ub)
    finally:
        with suppress(OSError):
            dill.hclose(u)  # still open unless end_stream closed it


@pytest.mark.parametrize("drop", [False, True])
def test_mrecv_epipe_in_the_middle_of_a_message_breaks_receiving(drop: bool) -> None:
    with greendill_and_plain_socket() as (h, peer):
        s = dill.suffix_attach(h, CRLF)
        peer.sendall(b"no end in sight" * 1000)
        peer.shutdown(socket.SHUT_WR)
        with raises_errno(errno.EPIPE):
            if drop:
                dill.mrecvl(s, [], soon())
            else:
                dill.mrecv(s, 100_000, soon())
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(s, 100, soon())
        with raises_errno(errno.ECONNRESET):
            dill.suffix_detach(s)


def test_mrecv_etimedout_latches_receiving_not_sending(pair: tuple[int, int]) -> None:
    a, b = dill.suffix_attach(pair[0], CRLF), dill.suffix_attach(pair[1], CRLF)
    try:
        with raises_errno(errno.ETIMEDOUT):
            dill.mrecv(b, 10, dill.now() + 20)
        dill.msend(a, b"late")
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(b, 10, soon())
        dill.msend(b, b"still sends")
        assert dill.mrecv(a, 100, soon()) == b"still sends"
    finally:
        close_all(a, b)


def test_mrecv_ecanceled_then_latched_and_ebusy_meanwhile(pair: tuple[int, int]) -> None:
    a, b = dill.suffix_attach(pair[0], CRLF), dill.suffix_attach(pair[1], CRLF)
    try:
        h, out = spawn(dill.mrecv, b, 10)
        dill.yield_()
        with raises_errno(errno.EBUSY):
            dill.mrecv(b, 10, 0)
        with raises_errno(errno.EBUSY):
            dill.suffix_detach(b)
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(b, 10, 0)
    finally:
        close_all(a, b)


def test_msend_failure_latches_the_sending_side() -> None:
    a, b = dill.ipc_pair()
    s = dill.suffix_attach(a, CRLF)
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET):
        dill.msend(s, b"to nobody")
    with raises_errno(errno.ECONNRESET):
        dill.msend(s, b"again")
    with raises_errno(errno.ECONNRESET):
        dill.suffix_detach(s)


def test_detach_ebadf_enotsup_and_the_detached_handle() -> None:
    with raises_errno(errno.EBADF):
        dill.suffix_detach(12345)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.suffix_detach(a)
    s = dill.suffix_attach(a, CRLF)
    u = in_canceled_coroutine(lambda: dill.suffix_detach(s, 0))  # nothing waits
    assert isinstance(u, int)
    with raises_errno(errno.EBADF):
        dill.msend(s, b"x")
    close_all(u, b)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    suffix=st.sampled_from([b"\n", CRLF, b"abcab", b"\x00\x00\x00"]),
    messages=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    trailer=st.binary(max_size=300),
    readahead=st.booleans(),
    data=st.data(),
)
def test_detach_at_any_point_loses_nothing(
    suffix: bytes, messages: list[bytes], trailer: bytes, readahead: bool, data: st.DataObject
) -> None:
    messages = [m for m in messages if frameable(m, suffix)]
    taken = data.draw(st.integers(0, len(messages)))
    framed = [encode_suffixed(m, suffix) for m in messages]
    encoded = b"".join(framed) + trailer
    rest = len(encoded) - len(b"".join(framed[:taken]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=6)))
    with greendill_and_plain_socket() as (h, peer):
        s = dill.suffix_attach(h if readahead else plain(h), suffix)
        for start, end in zip([0, *cuts], [*cuts, len(encoded)]):
            peer.sendall(encoded[start:end])
        peer.shutdown(socket.SHUT_WR)
        got = [dill.mrecv(s, 300, soon()) for _ in range(taken)]
        u = dill.suffix_detach(s)
        tail = dill.brecv(u, rest, soon()) if rest else b""
        with raises_errno(errno.EPIPE):
            dill.brecv(u, 1, soon())
        dill.hclose(u)
    assert got == messages[:taken]
    assert tail == encoded[len(encoded) - rest :]
