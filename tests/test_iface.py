"""The generic socket calls (reference section 5) on IPC byte streams and PREFIX messages.

bsend, brecv, brecv_into, bsendl and brecvl on IPC connections: all or
nothing, error latching per direction (section 0), EBUSY, deadlines and
cancellation, byte integrity of large transfers (greendill and a plain
socket of the standard library as peers), and a property test of brecvl's
buffers and skips. msend, msendl, mrecv, mrecv_into and mrecvl on a PREFIX
socket over IPC: deadlines, cancellation, EBUSY, the end of the stream and
latching. Then the errors that the generic layer adds itself: EBADF,
ENOTSUP (a handle that is not a byte stream; the message calls on a byte
stream) and EINVAL.
"""

from __future__ import annotations

import errno
import hashlib
import random
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greendill as dill

MiB = 1 << 20
# A bound for waits that must end long before it (never asserted as an upper
# bound of time: it only keeps a broken test from hanging).
SAFETY_MS = 10_000


@contextmanager
def raises_errno(code: int) -> Iterator[Any]:
    """Expect an OSError with errno code (greendill's only way to fail)."""
    with pytest.raises(OSError) as info:
        yield info
    assert info.value.errno == code, f"{info.value!r}: expected {errno.errorcode[code]}"


def errno_of(fn: Callable[..., Any], *args: Any) -> str:
    """The errno name of the OSError that fn(*args) raises ("no error" if none)."""
    try:
        fn(*args)
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    return "no error"


def spawn(fn: Callable[..., Any], *args: Any) -> tuple[int, list[Any]]:
    """Run fn(*args) in a coroutine; its result or OSError lands in the list."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn(*args))
        except OSError as exc:
            out.append(exc)

    return dill.go(body), out


def finish(h: int) -> None:
    """Wait for the coroutine(s) of bundle h to end, then close it."""
    dill.bundle_wait(h, dill.now() + SAFETY_MS)
    dill.hclose(h)


def randbytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def sha(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def pair() -> Iterator[tuple[int, int]]:
    """Two connected IPC connections; closed afterwards unless the test closed them."""
    a, b = dill.ipc_pair()
    yield a, b
    for h in (a, b):
        try:
            dill.hclose(h)
        except OSError as exc:
            assert exc.errno == errno.EBADF


def stuffed_pair() -> tuple[int, socket.socket]:
    """An IPC connection whose send buffer is full, and its stdlib peer.

    The buffer is filled through the plain socket before greendill adopts it,
    so no greendill call failed (no send side latched).
    """
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.setblocking(False)
    chunk = b"\0" * 65536
    while True:
        try:
            a.send(chunk)
        except BlockingIOError:
            break
    while True:  # the last small room too
        try:
            a.send(b"\0")
        except BlockingIOError:
            break
    return dill.ipc_fromfd(a.detach()), b


def drain_until(peer: socket.socket, out: list[Any]) -> None:
    """Read and drop what peer receives until the coroutine's result is in out."""
    peer.setblocking(False)
    deadline = dill.now() + SAFETY_MS
    while not out and dill.now() < deadline:
        with suppress(BlockingIOError):
            while peer.recv(1 << 20):
                pass
        dill.msleep(dill.now() + 1)  # let the coroutine send more


# All or nothing --------------------------------------------------------------


def test_bsend_brecv_round_trip(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"hello")
    assert dill.brecv(b, 5) == b"hello"
    dill.bsend(b, bytearray(b"back"))
    dill.bsend(b, memoryview(b"--again--")[2:-2])
    assert dill.brecv(a, 4) == b"back"
    assert dill.brecv(a, 5) == b"again"


def test_brecv_returns_exactly_size_bytes_across_several_sends(pair: tuple[int, int]) -> None:
    a, b = pair

    def drip() -> None:
        for piece in (b"ab", b"c", b"defg"):
            dill.bsend(a, piece)
            dill.msleep(dill.now() + 2)

    h = dill.go(drip)
    assert dill.brecv(b, 3, dill.now() + SAFETY_MS) == b"abc"
    assert dill.brecv(b, 4, dill.now() + SAFETY_MS) == b"defg"
    finish(h)


def test_brecv_size_zero_returns_empty(pair: tuple[int, int]) -> None:
    _, b = pair
    assert dill.brecv(b, 0, 0) == b""


def test_deadline_zero_succeeds_when_data_is_there(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"now", 0)
    assert dill.brecv(b, 3, 0) == b"now"


def test_brecv_into_fills_the_buffer_and_returns_its_size(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"0123456789")
    buf = bytearray(4)
    assert dill.brecv_into(b, buf) == 4
    assert buf == b"0123"
    big = bytearray(b"xxxxxxxxxx")
    assert dill.brecv_into(b, memoryview(big)[2:8]) == 6
    assert big == b"xx456789xx"


def test_end_of_stream_before_size_is_epipe_and_sticky(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"abc")
    dill.ipc_done(a)
    with raises_errno(errno.EPIPE) as info:
        dill.brecv(b, 5, dill.now() + SAFETY_MS)
    assert isinstance(info.value, BrokenPipeError)
    # The 3 bytes read are lost, and the end of stream stays.
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, 0)
    with raises_errno(errno.EPIPE):
        dill.brecv_into(b, bytearray(1))
    with raises_errno(errno.EPIPE):
        dill.brecvl(b, [bytearray(1)])
    # The other direction still works.
    dill.bsend(b, b"still")
    assert dill.brecv(a, 5) == b"still"


def test_data_before_end_of_stream_is_received_then_epipe(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"all of it")
    dill.ipc_done(a)
    assert dill.brecv(b, 9) == b"all of it"
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1)


# Deadlines and latching ------------------------------------------------------


RECEIVE_5: dict[str, Callable[[int, int], Any]] = {
    "brecv": lambda s, deadline: dill.brecv(s, 5, deadline),
    "brecv_into": lambda s, deadline: dill.brecv_into(s, bytearray(5), deadline),
}


@pytest.mark.parametrize("call", sorted(RECEIVE_5))
def test_brecv_etimedout_then_latched_econnreset(pair: tuple[int, int], call: str) -> None:
    a, b = pair
    dill.bsend(a, b"abc")  # fewer than asked: lost on the timeout
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT) as info:
        RECEIVE_5[call](b, deadline)
    assert isinstance(info.value, TimeoutError)
    assert dill.now() >= deadline
    dill.bsend(a, b"more data")
    with raises_errno(errno.ECONNRESET):
        dill.brecv(b, 1, 0)
    with raises_errno(errno.ECONNRESET):
        dill.brecv_into(b, bytearray(1), 0)
    with raises_errno(errno.ECONNRESET):
        dill.brecvl(b, [bytearray(1)], 0)
    # A receive timeout does not break sending.
    dill.bsend(b, b"fine")
    assert dill.brecv(a, 4) == b"fine"


def test_brecv_deadline_zero_without_data_is_etimedout(pair: tuple[int, int]) -> None:
    _, b = pair
    with raises_errno(errno.ETIMEDOUT):
        dill.brecv(b, 1, 0)


SEND_8MIB: dict[str, Callable[[int, int], Any]] = {
    "bsend": lambda s, deadline: dill.bsend(s, bytes(8 * MiB), deadline),
    "bsendl": lambda s, deadline: dill.bsendl(s, [b"head", bytes(8 * MiB)], deadline),
}


@pytest.mark.parametrize("call", sorted(SEND_8MIB))
def test_bsend_etimedout_then_latched_econnreset(pair: tuple[int, int], call: str) -> None:
    a, b = pair
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT):
        SEND_8MIB[call](a, deadline)  # nobody reads
    assert dill.now() >= deadline
    with raises_errno(errno.ECONNRESET):
        dill.bsend(a, b"x", 0)
    with raises_errno(errno.ECONNRESET):
        dill.bsendl(a, [b"x"], 0)
    with raises_errno(errno.ECONNRESET):
        dill.ipc_done(a)
    # The directions are independent: receiving still works.
    dill.bsend(b, b"ok")
    assert dill.brecv(a, 2, dill.now() + SAFETY_MS) == b"ok"


def test_bsend_after_done_is_epipe_and_does_not_latch(pair: tuple[int, int]) -> None:
    a, _ = pair
    dill.ipc_done(a)
    with raises_errno(errno.EPIPE):
        dill.bsend(a, b"x")
    with raises_errno(errno.EPIPE):
        dill.bsendl(a, [b"x"])
    with raises_errno(errno.EPIPE):  # still EPIPE: it latched no ECONNRESET
        dill.bsend(a, b"x")


def test_bsend_to_closed_peer_is_econnreset(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET) as info:
        dill.bsend(a, b"x" * 100_000, dill.now() + SAFETY_MS)
    assert isinstance(info.value, ConnectionResetError)
    # The peer's hclose is an end of stream for receiving.
    with raises_errno(errno.EPIPE):
        dill.brecv(a, 1, dill.now() + SAFETY_MS)


# EBUSY, cancellation, closing while blocked ----------------------------------


def test_second_receiver_gets_ebusy_without_latching(pair: tuple[int, int]) -> None:
    a, b = pair
    h, out = spawn(dill.brecv, b, 3, dill.now() + SAFETY_MS)
    with raises_errno(errno.EBUSY):
        dill.brecv(b, 1, 0)
    with raises_errno(errno.EBUSY):
        dill.brecv_into(b, bytearray(1), 0)
    with raises_errno(errno.EBUSY):
        dill.brecvl(b, [1], 0)
    dill.bsend(a, b"abcd")
    finish(h)
    assert out == [b"abc"]
    assert dill.brecv(b, 1, 0) == b"d"  # EBUSY latched nothing


def test_second_sender_gets_ebusy_without_latching() -> None:
    s, peer = stuffed_pair()
    try:
        h, out = spawn(dill.bsend, s, b"tail", dill.now() + SAFETY_MS)
        with raises_errno(errno.EBUSY):
            dill.bsend(s, b"x", 0)
        with raises_errno(errno.EBUSY):
            dill.bsendl(s, [b"x"], 0)
        drain_until(peer, out)
        finish(h)
        assert out == [None]
        dill.bsend(s, b"!", 0)  # EBUSY latched nothing
    finally:
        dill.hclose(s)
        peer.close()


RECEIVE_1: dict[str, Callable[[int], Any]] = {
    "brecv": lambda s: dill.brecv(s, 1),
    "brecv_into": lambda s: dill.brecv_into(s, bytearray(1)),
    "brecvl": lambda s: dill.brecvl(s, [bytearray(1)]),
}


@pytest.mark.parametrize("call", sorted(RECEIVE_1))
def test_brecv_canceled_while_waiting_then_latched(pair: tuple[int, int], call: str) -> None:
    a, b = pair
    h, out = spawn(RECEIVE_1[call], b)
    dill.hclose(h)
    assert len(out) == 1
    assert isinstance(out[0], dill.Canceled)
    assert out[0].errno == errno.ECANCELED
    dill.bsend(a, b"x")
    with raises_errno(errno.ECONNRESET):
        dill.brecv(b, 1, 0)


SEND_MORE: dict[str, Callable[[int], Any]] = {
    "bsend": lambda s: dill.bsend(s, b"more"),
    "bsendl": lambda s: dill.bsendl(s, [b"mo", b"re"]),
}


@pytest.mark.parametrize("call", sorted(SEND_MORE))
def test_bsend_canceled_while_waiting_then_latched(call: str) -> None:
    s, peer = stuffed_pair()
    try:
        h, out = spawn(SEND_MORE[call], s)
        dill.hclose(h)
        assert len(out) == 1
        assert isinstance(out[0], dill.Canceled)
        with raises_errno(errno.ECONNRESET):
            dill.bsend(s, b"x", 0)
    finally:
        dill.hclose(s)
        peer.close()


def test_canceled_coroutine_still_moves_data_that_needs_no_wait(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"ready")
    out: list[Any] = []

    def body() -> None:
        with suppress(dill.Canceled):
            dill.msleep(-1)
        out.append(dill.brecv(b, 5))  # there already: goes through
        dill.bsend(b, b"sent")  # room in the buffer: goes through
        try:
            dill.brecv(b, 1)  # would have to wait
        except OSError as exc:
            out.append(exc)

    h = dill.go(body)
    dill.hclose(h)
    assert out[0] == b"ready"
    assert isinstance(out[1], dill.Canceled)
    assert dill.brecv(a, 4, 0) == b"sent"


@pytest.mark.parametrize("call", ["brecv", "brecv_into", "brecvl"])
def test_hclose_wakes_a_blocked_receiver_with_ebadf(pair: tuple[int, int], call: str) -> None:
    _, b = pair
    fns: dict[str, Callable[[], Any]] = {
        "brecv": lambda: dill.brecv(b, 1),
        "brecv_into": lambda: dill.brecv_into(b, bytearray(1)),
        "brecvl": lambda: dill.brecvl(b, [2, bytearray(1)]),
    }
    h, out = spawn(fns[call])
    dill.hclose(b)
    dill.yield_()  # it was woken at once: one turn is enough
    assert len(out) == 1, "the blocked coroutine was not woken"
    assert out[0].errno == errno.EBADF
    finish(h)


@pytest.mark.parametrize("call", ["bsend", "bsendl"])
def test_hclose_wakes_a_blocked_sender_with_ebadf(call: str) -> None:
    s, peer = stuffed_pair()
    try:
        fns: dict[str, Callable[[], Any]] = {
            "bsend": lambda: dill.bsend(s, b"blocked"),
            "bsendl": lambda: dill.bsendl(s, [b"blo", b"cked"]),
        }
        h, out = spawn(fns[call])
        assert out == []
        dill.hclose(s)
        dill.yield_()
        assert len(out) == 1, "the blocked coroutine was not woken"
        assert out[0].errno == errno.EBADF
        finish(h)
    finally:
        peer.close()


# Scatter/gather ------------------------------------------------------------------


def test_bsendl_sends_buffers_in_order(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsendl(a, [b"one", bytearray(b"-two-"), memoryview(b"three"), b""])
    assert dill.brecv(b, 13) == b"one-two-three"


def test_brecvl_fills_buffers_and_skips(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"HEAD....body!!tail")
    head, body, tail = bytearray(4), bytearray(4), bytearray(4)
    dill.brecvl(b, [head, 4, memoryview(body), 2, tail, 0])
    assert (head, body, tail) == (b"HEAD", b"body", b"tail")


def test_brecvl_skip_larger_than_a_chunk(pair: tuple[int, int]) -> None:
    a, b = pair
    data = randbytes(300_000, seed=7)
    h = dill.go(dill.bsend, a, data)
    last = bytearray(10)
    dill.brecvl(b, [len(data) - 10, last], dill.now() + SAFETY_MS)
    assert last == data[-10:]
    finish(h)


def test_brecvl_end_of_stream_is_epipe(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"12345")
    dill.ipc_done(a)
    with raises_errno(errno.EPIPE):
        dill.brecvl(b, [bytearray(2), 10])
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1)


def test_brecvl_etimedout_then_latched(pair: tuple[int, int]) -> None:
    a, b = pair
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT):
        dill.brecvl(b, [3], deadline)
    assert dill.now() >= deadline
    dill.bsend(a, b"xyz")
    with raises_errno(errno.ECONNRESET):
        dill.brecvl(b, [3], 0)


# The message calls on a message socket (PREFIX over IPC) -----------------------
#
# The generic message calls pass each failure of the socket through: waiting,
# deadlines, cancellation, EBUSY, the end of the stream, and the latched
# ECONNRESET after a failure (section 0's PREFIX row).


@pytest.fixture
def mpair() -> Iterator[tuple[int, int]]:
    """Two connected message sockets: PREFIX (a 4-byte size field) over an IPC pair."""
    a, b = dill.ipc_pair()
    ma = dill.prefix_attach(a, 4)
    mb = dill.prefix_attach(b, 4)
    yield ma, mb
    for h in (ma, mb):
        try:
            dill.hclose(h)
        except OSError as exc:
            assert exc.errno == errno.EBADF


MESSAGE_RECEIVE: dict[str, Callable[[int, int], Any]] = {
    "mrecv": lambda s, deadline: dill.mrecv(s, 10, deadline),
    "mrecv_into": lambda s, deadline: dill.mrecv_into(s, bytearray(10), deadline),
    "mrecvl": lambda s, deadline: dill.mrecvl(s, [bytearray(4), 6], deadline),
}

MESSAGE_SEND: dict[str, Callable[[int, int], Any]] = {
    "msend": lambda s, deadline: dill.msend(s, b"message", deadline),
    "msendl": lambda s, deadline: dill.msendl(s, [b"mess", b"age"], deadline),
}


@pytest.mark.parametrize(
    "attach",
    [lambda s: dill.prefix_attach(s, 4), lambda s: dill.suffix_attach(s, b"\n")],
    ids=["prefix", "suffix"],
)
@pytest.mark.parametrize("name", sorted(MESSAGE_RECEIVE))
def test_a_layers_own_error_names_the_call_made(attach: Callable[[int], int], name: str) -> None:
    # (A failure of the socket below passes through as it is, named by its call.)
    a, b = dill.ipc_pair()
    s, peer = attach(a), attach(b)
    try:
        dill.msend(peer, b"longer than ten bytes")
        with raises_errno(errno.EMSGSIZE) as info:
            MESSAGE_RECEIVE[name](s, dill.now() + 5000)
        assert str(info.value.strerror).startswith(f"{name}: "), info.value
    finally:
        dill.hclose(s)
        dill.hclose(peer)


def assert_receiving_latched(s: int) -> None:
    for receive in MESSAGE_RECEIVE.values():
        with raises_errno(errno.ECONNRESET):
            receive(s, 0)


def assert_sending_latched(s: int) -> None:
    for send in MESSAGE_SEND.values():
        with raises_errno(errno.ECONNRESET):
            send(s, 0)


@pytest.mark.parametrize("call", sorted(MESSAGE_RECEIVE))
def test_message_receive_etimedout_then_latched_econnreset(
    mpair: tuple[int, int], call: str
) -> None:
    a, b = mpair
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT):
        MESSAGE_RECEIVE[call](b, deadline)
    assert dill.now() >= deadline
    dill.msend(a, b"late")
    assert_receiving_latched(b)
    dill.msend(b, b"fine")  # the sending side is not broken
    assert dill.mrecv(a, 10, 0) == b"fine"


@pytest.mark.parametrize("call", sorted(MESSAGE_RECEIVE))
def test_message_receive_canceled_while_waiting_then_latched(
    mpair: tuple[int, int], call: str
) -> None:
    a, b = mpair
    h, out = spawn(MESSAGE_RECEIVE[call], b, -1)
    dill.hclose(h)
    assert len(out) == 1
    assert isinstance(out[0], dill.Canceled)
    dill.msend(a, b"late")
    assert_receiving_latched(b)


@pytest.mark.parametrize("call", sorted(MESSAGE_RECEIVE))
def test_message_receive_at_the_end_of_the_stream_is_epipe(
    mpair: tuple[int, int], call: str
) -> None:
    a, b = mpair
    dill.msend(a, b"last")
    dill.hclose(a)  # the IPC connection below ends between two messages
    got = MESSAGE_RECEIVE[call](b, dill.now() + SAFETY_MS)
    assert got == (b"last" if call == "mrecv" else 4)
    with raises_errno(errno.EPIPE) as info:
        MESSAGE_RECEIVE[call](b, dill.now() + SAFETY_MS)
    assert isinstance(info.value, BrokenPipeError)
    for receive in MESSAGE_RECEIVE.values():  # the orderly end stays
        with raises_errno(errno.EPIPE):
            receive(b, 0)


@pytest.mark.parametrize("call", sorted(MESSAGE_SEND))
def test_message_send_etimedout_then_latched_econnreset(call: str) -> None:
    s, peer = stuffed_pair()
    ms = dill.prefix_attach(s, 4)
    try:
        deadline = dill.now() + 20
        with raises_errno(errno.ETIMEDOUT):
            MESSAGE_SEND[call](ms, deadline)  # nobody reads
        assert dill.now() >= deadline
        assert_sending_latched(ms)
    finally:
        dill.hclose(ms)
        peer.close()


@pytest.mark.parametrize("call", sorted(MESSAGE_SEND))
def test_message_send_canceled_while_waiting_then_latched(call: str) -> None:
    s, peer = stuffed_pair()
    ms = dill.prefix_attach(s, 4)
    try:
        h, out = spawn(MESSAGE_SEND[call], ms, -1)
        dill.hclose(h)
        assert len(out) == 1
        assert isinstance(out[0], dill.Canceled)
        assert_sending_latched(ms)
    finally:
        dill.hclose(ms)
        peer.close()


def test_second_message_sender_gets_ebusy_without_latching() -> None:
    s, peer = stuffed_pair()
    ms = dill.prefix_attach(s, 4)
    try:
        h, out = spawn(dill.msend, ms, b"tail", dill.now() + SAFETY_MS)
        for send in MESSAGE_SEND.values():
            with raises_errno(errno.EBUSY):
                send(ms, 0)
        drain_until(peer, out)
        finish(h)
        assert out == [None]
        dill.msendl(ms, [b"!"], 0)  # EBUSY latched nothing
    finally:
        dill.hclose(ms)
        peer.close()


def test_message_sent_to_a_closed_peer_is_econnreset(mpair: tuple[int, int]) -> None:
    a, b = mpair
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET) as info:
        dill.msendl(a, [b"x" * 100_000, b"y"], dill.now() + SAFETY_MS)
    assert isinstance(info.value, ConnectionResetError)


# Byte integrity of large transfers ---------------------------------------------


def test_8mib_through_brecv_into_in_one_call(pair: tuple[int, int]) -> None:
    a, b = pair
    data = randbytes(8 * MiB, seed=1)

    def sender() -> None:
        dill.bsend(a, data)
        dill.ipc_done(a)

    h = dill.go(sender)
    buf = bytearray(8 * MiB)
    assert dill.brecv_into(b, buf, dill.now() + SAFETY_MS) == 8 * MiB
    assert sha(buf) == sha(data)
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, dill.now() + SAFETY_MS)
    finish(h)


def test_8mib_bsendl_to_brecv_into_in_uneven_pieces(pair: tuple[int, int]) -> None:
    a, b = pair
    data = randbytes(8 * MiB, seed=2)
    view = memoryview(data)
    cuts = [0, 1, 4097, 65536 * 3 + 5, 3 * MiB, 8 * MiB - 1, 8 * MiB]

    def sender() -> None:
        dill.bsendl(a, [view[i:j] for i, j in zip(cuts, cuts[1:])])
        dill.ipc_done(a)

    h = dill.go(sender)
    buf = bytearray(8 * MiB)
    out = memoryview(buf)
    rng = random.Random(3)
    pos = 0
    while pos < len(buf):
        n = min(rng.choice([1, 7, 4096, 65537, 1_000_003]), len(buf) - pos)
        dill.brecv_into(b, out[pos : pos + n], dill.now() + SAFETY_MS)
        pos += n
    assert sha(buf) == sha(data)
    finish(h)


def test_8mib_echo_through_a_stdlib_socket_in_a_thread() -> None:
    """The peer is a plain blocking socket of the standard library, in a thread."""
    data = randbytes(8 * MiB, seed=4)
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    s = dill.ipc_fromfd(mine.detach())
    theirs.settimeout(SAFETY_MS / 1000)
    failure: list[BaseException] = []

    def echo() -> None:
        try:
            while True:
                chunk = theirs.recv(1 << 16)
                if not chunk:
                    break
                theirs.sendall(chunk)
        except BaseException as exc:
            failure.append(exc)
        finally:
            theirs.close()

    thread = threading.Thread(target=echo)
    thread.start()
    try:

        def sender() -> None:
            dill.bsend(s, data)
            dill.ipc_done(s)

        h = dill.go(sender)
        buf = bytearray(8 * MiB)
        dill.brecv_into(s, buf, dill.now() + SAFETY_MS)
        assert sha(buf) == sha(data)
        with raises_errno(errno.EPIPE):
            dill.brecv(s, 1, dill.now() + SAFETY_MS)
        finish(h)
        dill.ipc_close(s, dill.now() + SAFETY_MS)  # both ends done: at once
    finally:
        thread.join(SAFETY_MS / 1000)
    assert not thread.is_alive()
    assert failure == []


# Property: brecvl delivers the slices of the stream -----------------------------


@st.composite
def stream_and_split(draw: Any) -> tuple[list[bytes], list[tuple[str, int]]]:
    """Chunks to send, and a split of their concatenation into receive items."""
    sizes = draw(
        st.lists(st.one_of(st.integers(0, 64), st.integers(0, 200_000)), min_size=1, max_size=8)
    )
    data = randbytes(sum(sizes), seed=draw(st.integers(0, 2**16)))
    chunks = []
    pos = 0
    for n in sizes:
        chunks.append(data[pos : pos + n])
        pos += n
    total = len(data)
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=10)))
    bounds = [0, *cuts, total]
    items = [
        (draw(st.sampled_from(["bytearray", "memoryview", "skip"])), j - i)
        for i, j in zip(bounds, bounds[1:])
    ]
    return chunks, items


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream_and_split())
def test_brecvl_delivers_the_slices_of_the_stream(
    case: tuple[list[bytes], list[tuple[str, int]]],
) -> None:
    chunks, items = case
    stream = b"".join(chunks)
    a, b = dill.ipc_pair()

    def sender() -> None:
        dill.bsendl(a, chunks)
        dill.ipc_done(a)

    h = dill.go(sender)
    try:
        buffers: list[Any] = []
        for kind, n in items:
            if kind == "skip":
                buffers.append(n)
            elif kind == "bytearray":
                buffers.append(bytearray(n))
            else:  # a window in a bigger buffer: the bytes around stay untouched
                buffers.append(memoryview(bytearray(b"#" * (n + 2)))[1 : n + 1])
        dill.brecvl(b, buffers, dill.now() + SAFETY_MS)
        pos = 0
        for (kind, n), buf in zip(items, buffers):
            if kind == "bytearray":
                assert buf == stream[pos : pos + n]
            elif kind == "memoryview":
                assert buf.tobytes() == stream[pos : pos + n]
                assert buf.obj[:1] == b"#" and buf.obj[-1:] == b"#"
            pos += n
        assert pos == len(stream)
        with raises_errno(errno.EPIPE):  # exactly the stream: nothing more
            dill.brecv(b, 1, dill.now() + SAFETY_MS)
        dill.bundle_wait(h, dill.now() + SAFETY_MS)  # raises the sender's failure
    finally:
        dill.hclose(h)
        dill.hclose(a)
        dill.hclose(b)


# Errors of the generic layer ------------------------------------------------


class _Plain:
    """A user object (hmake) that answers no interface."""

    def query(self, type: object) -> Any:
        return None

    def close(self) -> None:
        pass


@contextmanager
def non_socket_handles(tmp_path: Any) -> Iterator[dict[str, int]]:
    ch0, ch1 = dill.chmake()
    b = dill.bundle()
    ls = dill.ipc_listen(str(tmp_path / "listener"), 1)
    user = dill.hmake(_Plain())
    try:
        yield {"channel": ch0, "bundle": b, "ipc listener": ls, "hmake object": user}
    finally:
        for h in (ch0, ch1, b, ls, user):
            dill.hclose(h)


BYTE_CALLS: dict[str, Callable[[int], Any]] = {
    "bsend": lambda s: dill.bsend(s, b"x", 0),
    "bsendl": lambda s: dill.bsendl(s, [b"x"], 0),
    "brecv": lambda s: dill.brecv(s, 1, 0),
    "brecv_into": lambda s: dill.brecv_into(s, bytearray(1), 0),
    "brecvl": lambda s: dill.brecvl(s, [bytearray(1), 1], 0),
}

MESSAGE_CALLS: dict[str, Callable[[int], Any]] = {
    "msend": lambda s: dill.msend(s, b"x", 0),
    "msendl": lambda s: dill.msendl(s, [b"x"], 0),
    "mrecv": lambda s: dill.mrecv(s, 1, 0),
    "mrecv_into": lambda s: dill.mrecv_into(s, bytearray(1), 0),
    "mrecvl": lambda s: dill.mrecvl(s, [bytearray(1)], 0),
    "mrecvl (drop)": lambda s: dill.mrecvl(s, [], 0),
}


@pytest.mark.parametrize("call", sorted(BYTE_CALLS))
def test_byte_calls_on_non_socket_handles_are_enotsup(tmp_path: Any, call: str) -> None:
    with non_socket_handles(tmp_path) as handles:
        got = {kind: errno_of(BYTE_CALLS[call], h) for kind, h in handles.items()}
    assert got == dict.fromkeys(handles, "ENOTSUP")


@pytest.mark.parametrize("call", sorted(MESSAGE_CALLS))
def test_message_calls_on_a_byte_stream_are_enotsup(pair: tuple[int, int], call: str) -> None:
    a, b = pair
    dill.bsend(b, b"data")  # there is something to receive
    with raises_errno(errno.ENOTSUP):
        MESSAGE_CALLS[call](a)
    # Nothing was consumed or broken.
    assert dill.brecv(a, 4, 0) == b"data"
    dill.bsend(a, b"ok", 0)
    assert dill.brecv(b, 2, 0) == b"ok"


@pytest.mark.parametrize("call", sorted({**BYTE_CALLS, **MESSAGE_CALLS}))
def test_generic_calls_on_closed_or_unknown_handles_are_ebadf(call: str) -> None:
    fn = {**BYTE_CALLS, **MESSAGE_CALLS}[call]
    a, b = dill.ipc_pair()
    dill.hclose(a)
    dill.hclose(b)
    for h in (a, b, 1_000_000, -1):
        with raises_errno(errno.EBADF):
            fn(h)


def test_generic_calls_reject_a_non_int_handle() -> None:
    with pytest.raises(TypeError):
        dill.bsend("0", b"x")  # type: ignore[arg-type]


@pytest.mark.parametrize("buffers", [[], (), None], ids=["list", "tuple", "None"])
def test_empty_iolist_is_einval(pair: tuple[int, int], buffers: Any) -> None:
    a, b = pair
    with raises_errno(errno.EINVAL):
        dill.bsendl(a, buffers)
    with raises_errno(errno.EINVAL):
        dill.brecvl(b, buffers)
    # Argument errors found before any I/O break nothing.
    dill.bsend(a, b"ok", 0)
    assert dill.brecv(b, 2, 0) == b"ok"


def test_brecv_negative_size_is_einval(pair: tuple[int, int]) -> None:
    _, b = pair
    with raises_errno(errno.EINVAL):
        dill.brecv(b, -1)


def test_brecvl_negative_skip_is_einval(pair: tuple[int, int]) -> None:
    a, b = pair
    dill.bsend(a, b"abc")
    with raises_errno(errno.EINVAL):
        dill.brecvl(b, [bytearray(1), -1])
    assert dill.brecv(b, 3, 0) == b"abc"  # nothing was consumed


@pytest.mark.parametrize("readonly", [b"xx", memoryview(bytearray(2)).toreadonly()])
def test_receiving_into_a_read_only_buffer_is_einval(pair: tuple[int, int], readonly: Any) -> None:
    a, b = pair
    dill.bsend(a, b"ab")
    with raises_errno(errno.EINVAL):
        dill.brecv_into(b, readonly)
    with raises_errno(errno.EINVAL):
        dill.brecvl(b, [bytearray(1), readonly])
    assert dill.brecv(b, 2, 0) == b"ab"
