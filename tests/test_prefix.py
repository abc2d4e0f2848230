"""PREFIX: length-prefixed messages over a byte stream (reference sections 0, 10 and 19).

The codec first (hypothesis: any messages, any splits), then the wire layout
against plain sockets of the standard library, then each errno in the
reference's order, then detaching without losing a byte, over greendill's
transports (which take bytes back, so the layer reads ahead) and over a
user's byte stream that cannot (so the layer reads exactly).
"""

from __future__ import annotations

import errno
import socket
import struct
from contextlib import suppress
from typing import Callable

import pytest
from helpers import (
    SAFETY_MS,
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greendill as dill
from greendill._prefix import decode_prefixed, prefix_header, prefix_size

BIG, LITTLE = dill.PREFIX_BIG_ENDIAN, dill.PREFIX_LITTLE_ENDIAN


# Helpers ----------------------------------------------------------------------


def wire(messages: list[bytes], hdrlen: int, flags: int) -> bytes:
    return b"".join(prefix_header(len(m), hdrlen, flags) + m for m in messages)


# The codec -------------------------------------------------------------------


@given(
    st.lists(st.binary(max_size=300), max_size=12),
    st.integers(2, 8),
    st.sampled_from([BIG, LITTLE]),
    st.data(),
)
def test_codec_frames_survive_any_split(
    messages: list[bytes], hdrlen: int, flags: int, data: st.DataObject
) -> None:
    encoded = wire(messages, hdrlen, flags)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=10)))
    buffer = bytearray()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(encoded)]):
        buffer += encoded[start:end]
        while (message := decode_prefixed(buffer, hdrlen, flags, 1 << 20)) is not None:
            decoded.append(message)
    assert decoded == messages
    assert buffer == b""


@given(st.integers(1, 9), st.sampled_from([BIG, LITTLE]), st.data())
def test_codec_header_round_trips_every_size_that_fits(
    hdrlen: int, flags: int, data: st.DataObject
) -> None:
    size = data.draw(st.integers(0, 256**hdrlen - 1))
    header = prefix_header(size, hdrlen, flags)
    assert len(header) == hdrlen
    assert prefix_size(header, 0, hdrlen, flags) == size


def test_codec_size_too_large_for_the_field_is_emsgsize() -> None:
    assert prefix_header(255, 1, BIG) == b"\xff"
    with raises_errno(errno.EMSGSIZE):
        prefix_header(256, 1, BIG)
    with raises_errno(errno.EMSGSIZE):
        prefix_header(65536, 2, LITTLE)


def test_codec_message_over_maxlen_is_emsgsize_before_it_is_complete() -> None:
    buffer = bytearray(b"\x00\x0b" + b"hello")
    with raises_errno(errno.EMSGSIZE):
        decode_prefixed(buffer, 2, BIG, 10)
    assert decode_prefixed(buffer, 2, BIG, 11) is None


# The wire layout (libdill's, byte for byte) -----------------------------------


@pytest.mark.parametrize(
    ("hdrlen", "flags", "header"),
    [
        (1, BIG, b"\x05"),
        (2, BIG, b"\x00\x05"),
        (2, LITTLE, b"\x05\x00"),
        (3, BIG, b"\x00\x00\x05"),
        (4, BIG, struct.pack(">I", 5)),
        (8, LITTLE, struct.pack("<Q", 5)),
    ],
)
def test_wire_layout_is_the_size_field_then_the_bytes(
    hdrlen: int, flags: int, header: bytes
) -> None:
    with greendill_and_plain_socket() as (h, peer):
        s = dill.prefix_attach(h, hdrlen, flags)
        try:
            dill.msend(s, b"hello")
            dill.msendl(s, [b"", b"he", b"llo"])
            assert peer.recv(100) == (header + b"hello") * 2
            peer.sendall(header + b"world" + header[:-1])
            peer.sendall(header[-1:] + b"again")
            assert dill.mrecv(s, 5, soon()) == b"world"
            assert dill.mrecv(s, 5, soon()) == b"again"
        finally:
            dill.hclose(s)


def test_a_plain_socket_peer_framing_by_hand_is_read_and_answered() -> None:
    # What a libdill program does with prefix_attach(s, 4, 0), written by hand.
    with greendill_and_plain_socket() as (h, peer):
        s = dill.prefix_attach(h, 4)
        try:
            for size in (0, 1, 1000, 70000):
                payload = randbytes(size, size)
                peer.sendall(struct.pack(">I", size) + payload)
                got = dill.mrecv(s, 1 << 20, soon())
                assert got == payload
                dill.msend(s, got[::-1])
                header = b""
                while len(header) < 4:
                    header += peer.recv(4 - len(header))
                (n,) = struct.unpack(">I", header)
                answer = b""
                while len(answer) < n:
                    answer += peer.recv(n - len(answer))
                assert answer == payload[::-1]
        finally:
            dill.hclose(s)


# Over greendill's transports -------------------------------------------------


@pytest.fixture(params=["ipc", "tcp", "plain"])
def pair(request: pytest.FixtureRequest) -> tuple[int, int]:
    """Two connected byte streams (the test closes them, or what owns them)."""
    return byte_stream_pair(request.param)


def attach_both(pair: tuple[int, int], hdrlen: int = 4, flags: int = BIG) -> tuple[int, int]:
    return dill.prefix_attach(pair[0], hdrlen, flags), dill.prefix_attach(pair[1], hdrlen, flags)


def close_all(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


def test_messages_keep_their_boundaries_and_order(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
    try:
        messages = [randbytes(n, n) for n in (0, 1, 5, 300, 20000, 100000, 7)]
        sender, out = spawn(lambda: [dill.msend(a, m) for m in messages])
        assert [dill.mrecv(b, 1 << 20, soon()) for _ in messages] == messages
        finish(sender)
        assert not isinstance(out[0], Exception)
    finally:
        close_all(a, b)


@pytest.mark.parametrize(
    ("hdrlen", "flags"), [(1, BIG), (2, LITTLE), (3, BIG), (5, LITTLE), (8, BIG)]
)
def test_every_field_size_and_order(pair: tuple[int, int], hdrlen: int, flags: int) -> None:
    a, b = attach_both(pair, hdrlen, flags)
    try:
        largest = min(256**hdrlen - 1, 3000)
        for size in (0, 1, largest):
            dill.msend(a, randbytes(size, size))
            assert dill.mrecv(b, largest, soon()) == randbytes(size, size)
    finally:
        close_all(a, b)


def test_mrecvl_scatters_drops_and_skips(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
    try:
        dill.msendl(a, [b"abc", b"", b"defgh"])
        dill.msend(a, b"skipped message")
        dill.msend(a, b"0123456789")
        first, second = bytearray(2), bytearray(10)
        assert dill.mrecvl(b, [first, second], soon()) == 8
        assert (bytes(first), bytes(second[:6])) == (b"ab", b"cdefgh")
        assert dill.mrecvl(b, [], soon()) == len(b"skipped message")
        head = bytearray(3)
        assert dill.mrecvl(b, [head, 4, bytearray(5)], soon()) == 10
        assert head == b"012"
        buffer = bytearray(100)
        dill.msend(a, b"into")
        assert dill.mrecv_into(b, buffer, soon()) == 4
        assert buffer[:4] == b"into"
    finally:
        close_all(a, b)


def test_large_message_dropped_and_scattered(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
    try:
        big = randbytes(300_000, 1)
        sender, _ = spawn(lambda: [dill.msend(a, big) for _ in range(3)])
        assert dill.mrecvl(b, [], soon()) == len(big)
        parts = [bytearray(100_000), 50_000, bytearray(150_000)]
        assert dill.mrecvl(b, parts, soon()) == len(big)
        assert bytes(parts[0]) == big[:100_000]
        assert bytes(parts[2]) == big[150_000:]
        assert dill.mrecv(b, len(big), soon()) == big
        finish(sender)
    finally:
        close_all(a, b)


# Errors, in the reference's order ----------------------------------------------


# prefix_attach, and prefix_attach_mem in a fresh storage: the same rules.
attach_variants = pytest.mark.parametrize(
    "attach",
    [
        pytest.param(dill.prefix_attach, id="prefix_attach"),
        pytest.param(
            lambda s, hdrlen, flags=BIG: dill.prefix_attach_mem(
                s, hdrlen, flags, dill.prefix_storage()
            ),
            id="prefix_attach_mem",
        ),
    ],
)


@attach_variants
def test_attach_ebadf_for_a_number_that_is_no_handle(attach: Callable[..., int]) -> None:
    with raises_errno(errno.EBADF):
        attach(12345, 4)


@attach_variants
@pytest.mark.parametrize(("hdrlen", "flags"), [(0, BIG), (-1, BIG), (4, 2), (4, -1)])
def test_attach_einval_closes_the_socket(
    attach: Callable[..., int], hdrlen: int, flags: int
) -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.EINVAL):
        attach(a, hdrlen, flags)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, dill.now() + SAFETY_MS)
    dill.hclose(b)


def test_attach_typeerror_for_a_hdrlen_that_is_no_int_closes_the_socket() -> None:
    a, b = dill.ipc_pair()
    with pytest.raises(TypeError):
        dill.prefix_attach(a, 4.0, BIG)  # type: ignore[arg-type]
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


@attach_variants
def test_attach_eproto_when_underlying_is_msock(attach: Callable[..., int]) -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.EPROTO):
        attach(p, 4)
    with raises_errno(errno.EBADF):
        dill.hclose(p)
    ch = dill.chmake()
    with raises_errno(errno.EPROTO):
        attach(ch[0], 4)
    with raises_errno(errno.EBADF):
        dill.hclose(ch[0])
    close_all(ch[1], b)


@attach_variants
def test_attach_ecanceled_in_a_canceled_coroutine_closes_the_socket(
    attach: Callable[..., int],
) -> None:
    a, b = dill.ipc_pair()
    result = in_canceled_coroutine(lambda: attach(a, 4))
    assert isinstance(result, dill.Canceled)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


def test_attach_takes_ownership_the_old_number_is_ebadf() -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    with raises_errno(errno.EBADF):
        dill.bsend(a, b"x")
    dill.hclose(p)
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, dill.now() + SAFETY_MS)  # closing the top closed the stack
    dill.hclose(b)


def test_attach_mem_storage_rules() -> None:
    mem = dill.prefix_storage()
    a, b = dill.ipc_pair()
    p = dill.prefix_attach_mem(a, 2, BIG, mem)
    b2, c2 = dill.ipc_pair()
    with raises_errno(errno.EBUSY):
        dill.prefix_attach_mem(b2, 2, BIG, mem)
    with raises_errno(errno.EBADF):
        dill.hclose(b2)  # closed by the failed attach
    with raises_errno(errno.EINVAL):
        dill.prefix_attach_mem(c2, 2, BIG, None)  # type: ignore[arg-type]
    with raises_errno(errno.EBADF):
        dill.hclose(c2)
    d, e = dill.ipc_pair()
    with pytest.raises(TypeError):
        dill.prefix_attach_mem(d, 2, BIG, dill.suffix_storage())  # type: ignore[arg-type]
    u = dill.prefix_detach(p)
    p2 = dill.prefix_attach_mem(u, 2, LITTLE, mem)  # reusable once detached
    q = dill.prefix_attach(b, 2, LITTLE)
    dill.msend(p2, b"again")
    assert dill.mrecv(q, 10, soon()) == b"again"
    close_all(p2, q, e)
    f, g = dill.ipc_pair()
    p3 = dill.prefix_attach_mem(f, 1, BIG, mem)  # and once closed
    close_all(p3, g)


def test_msend_emsgsize_when_the_size_does_not_fit_and_nothing_breaks(
    pair: tuple[int, int],
) -> None:
    a, b = attach_both(pair, 1)
    try:
        with raises_errno(errno.EMSGSIZE):
            dill.msend(a, bytes(256))
        with raises_errno(errno.EMSGSIZE):
            dill.msendl(a, [bytes(200), bytes(56)])
        dill.msend(a, bytes(255))
        assert dill.mrecv(b, 1000, soon()) == bytes(255)
    finally:
        close_all(a, b)


def test_mrecv_emsgsize_latches_the_receiving_side(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
    try:
        dill.msend(a, b"0123456789")
        dill.msend(a, b"ok")
        with raises_errno(errno.EMSGSIZE):
            dill.mrecv(b, 9, soon())
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(b, 100, soon())
        dill.msend(b, b"sending still works")
        assert dill.mrecv(a, 100, soon()) == b"sending still works"
    finally:
        close_all(a, b)


def test_mrecv_epipe_at_the_end_stays_epipe_and_detach_gives_the_stream_back(
    pair: tuple[int, int],
) -> None:
    # The end between two messages is the peer's orderly end, not a failure
    # (libdill latches it: ECONNRESET, then detach refuses).
    a, b = attach_both(pair)
    dill.msend(a, b"last")
    u = dill.prefix_detach(a)
    end_stream(u)
    try:
        assert dill.mrecv(b, 10, soon()) == b"last"
        with raises_errno(errno.EPIPE):
            dill.mrecv(b, 10, soon())
        with raises_errno(errno.EPIPE):
            dill.mrecvl(b, [], soon())
        ub = dill.prefix_detach(b)
        with raises_errno(errno.EPIPE):
            dill.brecv(ub, 1, soon())
        dill.hclose(ub)
    finally:
        with suppress(OSError):
            dill.hclose(u)


@pytest.mark.parametrize("sent", [b"\x00\x00", struct.pack(">I", 10) + b"short"])
@pytest.mark.parametrize("readahead", [True, False])
def test_mrecv_epipe_in_the_middle_of_a_message_breaks_receiving(
    sent: bytes, readahead: bool
) -> None:
    with greendill_and_plain_socket() as (h, peer):
        s = dill.prefix_attach(h if readahead else plain(h), 4)
        peer.sendall(sent)
        peer.shutdown(socket.SHUT_WR)
        with raises_errno(errno.EPIPE):
            dill.mrecv(s, 100, soon())
        if readahead or len(sent) > 4:
            # (A stream without bunrecv loses a partial header in its own
            # brecv: the end then looks like one between messages.)
            with raises_errno(errno.ECONNRESET):
                dill.mrecv(s, 100, soon())
            with raises_errno(errno.ECONNRESET):
                dill.prefix_detach(s)
        else:
            dill.hclose(s)


def test_mrecv_etimedout_latches_receiving_not_sending(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
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


def test_deadline_zero_succeeds_when_the_message_is_there(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
    try:
        dill.msend(a, b"ready")
        dill.yield_()
        assert dill.mrecv(b, 10, 0) == b"ready"
    finally:
        close_all(a, b)


def test_mrecv_ecanceled_when_the_coroutine_is_closed(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
    try:
        h, out = spawn(dill.mrecv, b, 10)
        dill.yield_()
        dill.hclose(h)
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(b, 10, 0)
    finally:
        close_all(a, b)


def test_msend_failure_latches_the_sending_side() -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET):
        dill.msend(p, b"to nobody")
    with raises_errno(errno.ECONNRESET):
        dill.msend(p, b"again")
    with raises_errno(errno.ECONNRESET):
        dill.prefix_detach(p)
    with raises_errno(errno.EBADF):
        dill.hclose(p)  # detach closed it


def test_concurrent_receivers_get_ebusy_without_latching(pair: tuple[int, int]) -> None:
    a, b = attach_both(pair)
    try:
        h, out = spawn(dill.mrecv, b, 10)
        dill.yield_()
        with raises_errno(errno.EBUSY):
            dill.mrecv(b, 10, soon())
        with raises_errno(errno.EBUSY):
            dill.prefix_detach(b)
        dill.msend(a, b"first")
        finish(h)
        assert out == [b"first"]
    finally:
        close_all(a, b)


def test_generic_calls_on_a_prefix_socket() -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    try:
        with raises_errno(errno.ENOTSUP):
            dill.bsend(p, b"a prefix socket is not a byte stream")
        with raises_errno(errno.EINVAL):
            dill.mrecv(p, -1, soon())
        with raises_errno(errno.EINVAL):
            dill.msendl(p, [])
        with raises_errno(errno.EINVAL):
            dill.mrecvl(p, [bytearray(2), -1], soon())
        with raises_errno(errno.EINVAL):
            dill.mrecvl(p, [b"read-only"], soon())
    finally:
        close_all(p, b)


# Detach ------------------------------------------------------------------------------


def test_detach_ebadf_and_enotsup() -> None:
    with raises_errno(errno.EBADF):
        dill.prefix_detach(12345)
    a, b = dill.ipc_pair()
    with raises_errno(errno.ENOTSUP):
        dill.prefix_detach(a)
    s = dill.suffix_attach(a, b"\n")
    with raises_errno(errno.ENOTSUP):
        dill.prefix_detach(s)
    close_all(s, b)


def test_detach_never_raises_ecanceled_or_etimedout() -> None:
    # Nothing waits: a canceled coroutine detaches as well as any.
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    u = in_canceled_coroutine(lambda: dill.prefix_detach(p))
    assert isinstance(u, int)
    close_all(u, b)


def test_detach_after_a_failed_receive_is_econnreset_and_closes_the_stack(
    pair: tuple[int, int],
) -> None:
    a, b = attach_both(pair)
    with raises_errno(errno.ETIMEDOUT):
        dill.mrecv(b, 10, 0)
    with raises_errno(errno.ECONNRESET):
        dill.prefix_detach(b)
    with raises_errno(errno.EBADF):
        dill.hclose(b)
    dill.hclose(a)


def test_the_detached_handle_is_ebadf() -> None:
    a, b = dill.ipc_pair()
    p = dill.prefix_attach(a, 4)
    u = dill.prefix_detach(p)
    with raises_errno(errno.EBADF):
        dill.msend(p, b"x")
    close_all(u, b)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    messages=st.lists(st.binary(max_size=2000), min_size=1, max_size=8),
    trailer=st.binary(max_size=3000),
    readahead=st.booleans(),
    data=st.data(),
)
def test_detach_at_any_point_loses_nothing(
    messages: list[bytes], trailer: bytes, readahead: bool, data: st.DataObject
) -> None:
    # The peer writes messages, then raw bytes, in arbitrary pieces; the
    # receiver takes some messages, detaches, and reads the rest raw.
    taken = data.draw(st.integers(0, len(messages)))
    encoded = wire(messages, 3, LITTLE) + trailer
    cuts = sorted(data.draw(st.lists(st.integers(0, len(encoded)), max_size=6)))
    with greendill_and_plain_socket() as (h, peer):
        below = h if readahead else plain(h)
        s = dill.prefix_attach(below, 3, LITTLE)
        for start, end in zip([0, *cuts], [*cuts, len(encoded)]):
            peer.sendall(encoded[start:end])
        peer.shutdown(socket.SHUT_WR)
        got = [dill.mrecv(s, 2000, soon()) for _ in range(taken)]
        u = dill.prefix_detach(s)
        rest = len(encoded) - len(wire(messages[:taken], 3, LITTLE))
        tail = dill.brecv(u, rest, soon()) if rest else b""
        with raises_errno(errno.EPIPE):
            dill.brecv(u, 1, soon())
        dill.hclose(u)
    assert got == messages[:taken]
    assert tail == encoded[len(encoded) - rest :]


def test_detach_gives_back_bytes_to_brecvl_and_brecv_some(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, prefix_header(3, 2, BIG) + b"msg" + b"0123456789")
    p = dill.prefix_attach(b, 2)
    assert dill.mrecv(p, 10, soon()) == b"msg"
    u = dill.prefix_detach(p)
    head = bytearray(2)
    dill.brecvl(u, [head, 3, bytearray(1)], soon())
    assert head == b"01"
    iface = dill.hquery(u, dill.bsock_type)
    buffer = bytearray(10)
    n = iface.brecv_some(buffer, dill.now() + SAFETY_MS)
    assert buffer[:n] == b"6789"[:n]
    close_all(a, u)
