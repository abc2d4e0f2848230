"""examples/checksum_layer.py: a user's message layer on greendill's public API.

Its demonstration runs; the conformance kit passes it stacked over and under
greendill's layers (over PREFIX over TCP, over UDP, under TERM over SUFFIX,
over TERM over PREFIX); its codec gets property tests; then its errnos,
in the order its docstrings list them.
"""

from __future__ import annotations

import errno
import importlib.util
import pathlib
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_conformance import reusing, stacked, tcp_pair, udp_pair, without

import greendill as dill
from greendill.testing import LATCH_ANY, LATCH_DIRECTION, check_msock, check_no_leaks, snapshot

SAFETY_MS = 10_000


def _load() -> ModuleType:
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "checksum_layer.py"
    spec = importlib.util.spec_from_file_location("checksum_layer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["checksum_layer"] = module
    spec.loader.exec_module(module)
    return module


checksum = _load()


def later() -> int:
    return dill.now() + SAFETY_MS


@contextmanager
def raises_errno(code: int) -> Iterator[Any]:
    with pytest.raises(OSError) as info:
        yield info
    assert info.value.errno == code, f"{info.value!r}: expected {errno.errorcode[code]}"


@contextmanager
def checked_pair(hdrlen: int = 4) -> Iterator[tuple[int, int]]:
    """Two checksum sockets over PREFIX over an IPC pair, closed afterwards."""
    a, b = dill.ipc_pair()
    pair = [checksum.checksum_attach(dill.prefix_attach(a, hdrlen)), 0]
    pair[1] = checksum.checksum_attach(dill.prefix_attach(b, hdrlen))
    try:
        yield pair[0], pair[1]
    finally:
        for h in pair:
            with suppress(OSError):
                dill.hclose(h)


def is_open(h: int) -> bool:
    try:
        dill.hquery(h, dill.msock_type)
    except OSError as exc:
        assert exc.errno in (errno.EBADF, errno.ENOTSUP)
        return exc.errno != errno.EBADF
    return True


# The demonstration. ---------------------------------------------------------


def test_main_shows_messages_then_a_corrupt_one(capsys: pytest.CaptureFixture[str]) -> None:
    checksum.main()
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "received: hello",
        "received: checked",
        "received: messages",
        "a corrupt message: EPROTO - mrecv: Protocol error",
        "the next receive:  ECONNRESET (the side is broken)",
    ]


def test_the_example_imports_no_private_greendill_module() -> None:
    source = pathlib.Path(checksum.__file__).read_text()
    assert "greendill._" not in source
    assert "from greendill" not in source  # only `import greendill as dill`


# The conformance kit, stacked over and under greendill's layers. -------------


def test_checksum_over_prefix_over_tcp() -> None:
    check_msock(
        stacked(tcp_pair, lambda s: dill.prefix_attach(s, 4), checksum.checksum_attach),
        detach=checksum.checksum_detach,
        reattach=checksum.checksum_attach,
        latching=LATCH_ANY,
    )


def test_checksum_over_udp() -> None:
    # The checksum layer latches every failure, even over a socket that
    # latches nothing.
    check_msock(
        stacked(udp_pair, checksum.checksum_attach),
        detach=checksum.checksum_detach,
        reattach=checksum.checksum_attach,
        latching=LATCH_ANY,
        send_blocks=False,
        peer_close_seen=False,
        max_message=8192,
    )


def test_term_over_checksum_over_suffix() -> None:
    # The checksum may hold any byte. With a suffix that no message byte can
    # be part of (the alphabet leaves its bytes out) and that does not
    # overlap itself, no checksum can end a message early.
    suffix = b"<<END>>\n"

    def attach_term(s: int) -> int:
        return dill.term_attach(s, b"END")

    check_msock(
        stacked(
            dill.ipc_pair,
            lambda s: dill.suffix_attach(s, suffix),
            checksum.checksum_attach,
            attach_term,
        ),
        done=dill.term_done,
        detach=lambda s: dill.term_detach(s, later()),
        reattach=attach_term,
        detach_drains=True,
        latching=LATCH_DIRECTION,
        alphabet=without(suffix),
    )


def test_checksum_over_term_over_prefix() -> None:
    check_msock(
        stacked(
            dill.ipc_pair,
            lambda s: dill.prefix_attach(s, 2),
            lambda s: dill.term_attach(s, b"STOP"),
            checksum.checksum_attach,
        ),
        detach=checksum.checksum_detach,
        reattach=checksum.checksum_attach,
        latching=LATCH_ANY,
        max_message=65535 - checksum.CRC_SIZE,
    )


def test_checksum_storage_serves_a_new_socket_at_once_after_hclose() -> None:
    # The generation check: a call that hclose woke leaves the storage alone.
    attach = reusing(checksum.checksum_attach_mem, checksum.checksum_storage)
    check_msock(
        stacked(dill.ipc_pair, lambda s: dill.prefix_attach(s, 4), attach),
        latching=LATCH_ANY,
        only=["hclose"],
    )


# The codec. -----------------------------------------------------------------


@given(st.binary(max_size=4096))
def test_decode_gives_back_what_encode_wrapped(message: bytes) -> None:
    wire = checksum.checksum_encode(message)
    assert len(wire) == len(message) + checksum.CRC_SIZE
    assert checksum.checksum_decode(wire) == message
    assert checksum.checksum_decode(bytearray(wire)) == message
    assert checksum.checksum_decode(memoryview(wire)) == message


@given(st.binary(max_size=1024), st.data())
def test_any_burst_of_up_to_32_bits_is_found(message: bytes, data: st.DataObject) -> None:
    # CRC32 finds every error burst no longer than 32 bits, anywhere in
    # message and checksum alike.
    wire = bytearray(checksum.checksum_encode(message))
    bits = len(wire) * 8
    length = data.draw(st.integers(1, min(32, bits)))
    start = data.draw(st.integers(0, bits - length))
    pattern = data.draw(st.integers(0, (1 << length) - 1)) | 1 | (1 << (length - 1))
    for i in range(length):
        if pattern >> i & 1:
            bit = start + i
            wire[bit // 8] ^= 0x80 >> (bit % 8)
    with raises_errno(errno.EPROTO):
        checksum.checksum_decode(wire)


@given(st.binary(max_size=3))
def test_a_message_shorter_than_a_checksum_is_eproto(wire: bytes) -> None:
    with raises_errno(errno.EPROTO):
        checksum.checksum_decode(wire)


# The socket's behaviour beyond the kit. -------------------------------------


def test_a_corrupt_message_is_eproto_and_breaks_receiving() -> None:
    with checked_pair() as (a, b):
        below = checksum.checksum_detach(a)
        wire = bytearray(checksum.checksum_encode(b"message"))
        wire[-1] ^= 1
        dill.msend(below, wire, later())
        dill.msend(below, checksum.checksum_encode(b"next"), later())
        with raises_errno(errno.EPROTO):
            dill.mrecv(b, 100, later())
        with raises_errno(errno.ECONNRESET):
            dill.mrecv(b, 100, later())
        dill.msend(b, b"sending still works", later())  # the other direction is fine
        assert checksum.checksum_decode(dill.mrecv(below, 100, later())) == b"sending still works"
        dill.hclose(below)


def test_a_message_too_short_for_a_checksum_is_eproto_even_when_dropped() -> None:
    with checked_pair() as (a, b):
        below = checksum.checksum_detach(a)
        dill.msend(below, b"abc", later())
        with raises_errno(errno.EPROTO):
            dill.mrecvl(b, [], later())
        dill.hclose(below)


def test_the_wire_is_the_message_then_its_crc32_big_endian() -> None:
    a, b = dill.ipc_pair()
    a = checksum.checksum_attach(dill.prefix_attach(a, 4))
    try:
        dill.msendl(a, [b"two ", bytearray(b"parts")], later())
        # Read with PREFIX alone on the other side: the bytes on the wire.
        b = dill.prefix_attach(b, 4)
        wire = dill.mrecv(b, 100, later())
        assert wire == b"two parts" + zlib.crc32(b"two parts").to_bytes(4, "big")
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_mrecv_into_and_mrecvl_scatter_the_checked_message() -> None:
    with checked_pair() as (a, b):
        dill.msend(a, b"0123456789", later())
        dill.msend(a, b"abcdef", later())
        buf = bytearray(20)
        assert dill.mrecv_into(b, buf, later()) == 10
        assert buf[:10] == b"0123456789"
        first, last = bytearray(2), bytearray(10)
        assert dill.mrecvl(b, [first, 2, last], later()) == 6
        assert (first, last[:2]) == (b"ab", b"ef")


# Errors, in the docstrings' order. -------------------------------------------


def test_attach_ebadf_when_s_is_not_open() -> None:
    h, other = dill.ipc_pair()
    dill.hclose(h)
    dill.hclose(other)
    with raises_errno(errno.EBADF):
        checksum.checksum_attach(h)


def test_attach_mem_ebusy_when_the_storage_is_in_use() -> None:
    mem = checksum.checksum_storage()
    a, b = dill.ipc_pair()
    s = checksum.checksum_attach_mem(dill.prefix_attach(a, 1), mem)
    t = dill.prefix_attach(b, 1)
    try:
        with raises_errno(errno.EBUSY):
            checksum.checksum_attach_mem(t, mem)
        assert not is_open(t)  # attach owns s, and closes it when it fails
    finally:
        dill.hclose(s)
    # Closed, the storage serves again.
    a, b = dill.ipc_pair()
    s = checksum.checksum_attach_mem(dill.prefix_attach(a, 1), mem)
    dill.hclose(s)
    dill.hclose(b)


def test_attach_ecanceled_in_a_canceled_coroutine_closes_everything() -> None:
    a, b = dill.ipc_pair()
    s = dill.prefix_attach(a, 2)
    out: list[Any] = []

    def canceled() -> None:
        with suppress(dill.Canceled):
            dill.msleep(-1)
        try:
            out.append(checksum.checksum_attach(s))
        except OSError as exc:
            out.append(exc)

    dill.hclose(dill.go(canceled))
    try:
        assert isinstance(out[0], dill.Canceled)
        assert not is_open(s)
    finally:
        dill.hclose(b)


def test_attach_mem_einval_when_mem_is_none() -> None:
    a, b = dill.ipc_pair()
    s = dill.prefix_attach(a, 2)
    with raises_errno(errno.EINVAL):
        checksum.checksum_attach_mem(s, None)
    assert not is_open(s)
    with pytest.raises(TypeError):
        checksum.checksum_attach_mem(b, object())
    assert not is_open(b)


def test_attach_eproto_when_s_is_a_byte_stream() -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.EPROTO):
        checksum.checksum_attach(a)
    assert not is_open(a)
    dill.hclose(b)


def test_attach_takes_the_number_of_s() -> None:
    a, b = dill.ipc_pair()
    s = dill.prefix_attach(a, 2)
    h = checksum.checksum_attach(s)
    try:
        assert not is_open(s) or s == h  # hown: s is EBADF, unless h got its number
    finally:
        dill.hclose(h)
        dill.hclose(b)


def test_detach_ebadf_enotsup() -> None:
    with checked_pair() as (a, _):
        below = checksum.checksum_detach(a)
        with raises_errno(errno.EBADF):
            checksum.checksum_detach(a if a != below else 10_000)
        with raises_errno(errno.ENOTSUP):
            checksum.checksum_detach(below)  # a prefix socket: not a checksum one
        assert is_open(below)
        dill.hclose(below)


def test_detach_ebusy_while_receiving_leaves_it_open() -> None:
    with checked_pair() as (a, b):
        out: list[Any] = []

        def receive() -> None:
            try:
                out.append(dill.mrecv(b, 100, later()))
            except OSError as exc:
                out.append(exc)

        h = dill.go(receive)
        with raises_errno(errno.EBUSY):
            checksum.checksum_detach(b)
        dill.msend(a, b"still open", later())
        dill.bundle_wait(h, later())
        dill.hclose(h)
        assert out == [b"still open"]


def test_detach_econnreset_after_a_failure_closes_the_stack() -> None:
    before = snapshot()
    with checked_pair() as (_, b):
        with raises_errno(errno.ETIMEDOUT):
            dill.mrecv(b, 100, 0)
        with raises_errno(errno.ECONNRESET):
            checksum.checksum_detach(b)
        assert not is_open(b)
    assert check_no_leaks(before) == []


def test_detach_gives_back_the_message_socket_below_in_order() -> None:
    mem = checksum.checksum_storage()
    a, b = dill.ipc_pair()
    a = checksum.checksum_attach(dill.prefix_attach(a, 2))
    b = checksum.checksum_attach_mem(dill.prefix_attach(b, 2), mem)
    try:
        dill.msend(a, b"first", later())
        dill.msend(a, b"second", later())
        assert dill.mrecv(b, 100, later()) == b"first"
        b = checksum.checksum_detach(b)
        assert checksum.checksum_decode(dill.mrecv(b, 100, later())) == b"second"
        b = checksum.checksum_attach_mem(b, mem)  # the storage is free again
        dill.msend(a, b"third", later())
        assert dill.mrecv(b, 100, later()) == b"third"
    finally:
        dill.hclose(a)
        dill.hclose(b)
