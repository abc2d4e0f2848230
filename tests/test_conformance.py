"""The conformance kit (greendill.testing.check_bsock/check_msock) on every socket.

First the kit runs on greendill's transports and layers, alone and stacked:
IPC, TCP (IPv4 and IPv6), UDP, PREFIX (both byte orders, several header
sizes), SUFFIX, TERM over PREFIX, SUFFIX and UDP, and user layers (the toys
below, built on the public API only) over and under greendill's. Then it
must bite: toy layers with a planted bug each, for which the kit must
report the rule they break.
"""

from __future__ import annotations

import errno
import pathlib
import re
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from typing import Any, Callable

import pytest

import greendill as dill
from greendill.testing import (
    LATCH_ANY,
    LATCH_DIRECTION,
    LATCH_NONE,
    check_bsock,
    check_msock,
    snapshot,
)
from greendill.testing._check_sockets import _RULES

SAFETY_MS = 10_000
Maker = Callable[[], "tuple[int, int]"]


# Pairs. -------------------------------------------------------------------------


def tcp_pair(host: str = "127.0.0.1") -> tuple[int, int]:
    """A connected pair of TCP connections (the listener is closed again)."""
    addr = dill.ipaddr_local(host, 0, 0)
    ls = dill.tcp_listen(addr, 1)
    try:
        a = dill.tcp_connect(addr, dill.now() + SAFETY_MS)
        try:
            b = dill.tcp_accept(ls, dill.now() + SAFETY_MS)
        except BaseException:
            dill.hclose(a)
            raise
    finally:
        dill.hclose(ls)
    return a, b


def udp_pair() -> tuple[int, int]:
    """Two UDP sockets on 127.0.0.1, each the other's remote address.

    A socket learns its port when it is opened, so the first is opened to
    learn one, closed, and opened again on that port with the second's
    address as remote.
    """
    for _ in range(10):
        la = dill.ipaddr_local("127.0.0.1", 0, 0)
        dill.hclose(dill.udp_open(la, None))
        lb = dill.ipaddr_local("127.0.0.1", 0, 0)
        b = dill.udp_open(lb, la)
        try:
            return dill.udp_open(la, lb), b
        except OSError as exc:
            dill.hclose(b)
            if exc.errno != errno.EADDRINUSE:  # taken meanwhile: try another
                raise
    raise AssertionError("no free UDP port pair")


def stacked(make: Maker, *layers: Callable[[int], int]) -> Maker:
    """A maker of pairs with layers attached, bottom first, to both ends."""

    def maker() -> tuple[int, int]:
        a, b = make()
        for attach in layers:
            a = attach(a)
            b = attach(b)
        return a, b

    return maker


def later() -> int:
    return dill.now() + SAFETY_MS


# A user's layers, built on the public API only (the kit's test subjects). -----


def _error(code: int, function: str) -> OSError:
    return OSError(code, f"{function}: {errno.errorcode[code]}")


toy_type = type("toy_type", (), {})()


class ToyXor(dill.bsock_vfs):
    """A byte stream that XORs every byte with a key, over a byte stream.

    done is the half-close of the stream below (ipc_done, tcp_done), which
    toy_done calls. Bugs to plant: partial_send (bsend drops the last
    byte), shared_busy (no EBUSY of its own: the lower's EBUSY latches this
    layer), close_waits (close waits for 10 ms, "to flush"),
    latch_bad_argument (a send of something not bytes-like breaks sending).
    """

    def __init__(self, u: int, lower: Any, done: Any = None, **bugs: bool) -> None:
        self.u, self.lower, self.done, self.bugs = u, lower, done, bugs
        self.rbusy = self.sbusy = self.inerr = self.outerr = False
        self.indone = self.outdone = False
        self.table = bytes(i ^ 0x5A for i in range(256))

    def query(self, type: object) -> Any:
        return self if type is dill.bsock_type or type is toy_type else None

    def close(self) -> None:
        if self.bugs.get("close_waits"):
            dill.msleep(dill.now() + 10)
        u, self.u = self.u, -1
        if u >= 0:
            dill.hclose(u)

    def bsendl(self, buffers: Sequence[Any], deadline: int) -> None:
        if self.sbusy:
            raise _error(errno.EBUSY, "bsend")
        if self.outdone:
            raise _error(errno.EPIPE, "bsend")
        if self.outerr:
            raise _error(errno.ECONNRESET, "bsend")
        try:
            data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers).translate(self.table)
        except TypeError:
            if self.bugs.get("latch_bad_argument"):
                self.outerr = True
            raise
        if self.bugs.get("partial_send") and len(data) > 1:
            data = data[:-1]
        self.sbusy = True
        try:
            self.lower.bsend(data, deadline)
        except BaseException:
            self.outerr = True
            raise
        finally:
            self.sbusy = False

    def brecvl(self, buffers: Sequence[Any], deadline: int) -> None:
        items = [i if isinstance(i, int) else memoryview(i).cast("B") for i in buffers]
        if any(not isinstance(i, int) and i.readonly for i in items):
            raise _error(errno.EINVAL, "brecv")

        def body() -> None:
            self.lower.brecvl(items, deadline)
            for item in items:
                if not isinstance(item, int):
                    item[:] = bytes(item).translate(self.table)

        self._recv(body)

    def brecv_into(self, buffer: Any, deadline: int) -> None:
        self.brecvl((buffer,), deadline)

    def _recv(self, body: Callable[[], Any]) -> Any:
        # Latching as TCP's: EPIPE stays EPIPE, any other failure ECONNRESET.
        if self.rbusy and not self.bugs.get("shared_busy"):
            raise _error(errno.EBUSY, "brecv")
        if self.indone:
            raise _error(errno.EPIPE, "brecv")
        if self.inerr:
            raise _error(errno.ECONNRESET, "brecv")
        self.rbusy = True
        try:
            return body()
        except BaseException as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
                self.indone = True
            else:
                self.inerr = True
            raise
        finally:
            self.rbusy = False


class ToyXorAhead(ToyXor):
    """ToyXor that passes read-ahead through: brecv_some and bunrecv (see _iface)."""

    def brecv_some(self, buffer: Any, deadline: int) -> int:
        view = memoryview(buffer).cast("B")

        def body() -> int:
            got = int(self.lower.brecv_some(view, deadline))
            view[:got] = bytes(view[:got]).translate(self.table)
            return got

        return int(self._recv(body))

    def bunrecv(self, data: Any) -> None:
        self.lower.bunrecv(bytes(data).translate(self.table))


def toy_done(s: int, deadline: int = -1) -> None:
    """ToyXor's half-close: that of the stream below."""
    obj = dill.hquery(s, toy_type)
    if obj.outdone:
        raise _error(errno.EPIPE, "toy_done")
    obj.done(obj.u, deadline)
    obj.outdone = True


toy_frames_type = type("toy_frames_type", (), {})()


class ToyFrames(dill.msock_vfs):
    """Messages after a 1-byte length, over a byte stream (latching as PREFIX's).

    Bugs to plant: no_latch (failures break nothing), shared_busy,
    leak_below (close forgets the socket below), truncate (a message too
    long is cut to fit, as C's SUFFIX does, instead of EMSGSIZE),
    lose_ahead (reads ahead with brecv_some, and detach drops what it read
    ahead), cancel_is_timeout (Canceled becomes ETIMEDOUT).
    """

    def __init__(self, u: int, lower: Any, **bugs: bool) -> None:
        self.u, self.lower, self.bugs = u, lower, bugs
        self.rbusy = self.sbusy = self.inerr = self.outerr = False
        self.ahead = bytearray()

    def query(self, type: object) -> Any:
        return self if type is dill.msock_type or type is toy_frames_type else None

    def close(self) -> None:
        u, self.u = self.u, -1
        if u >= 0 and not self.bugs.get("leak_below"):
            dill.hclose(u)

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        if self.sbusy:
            raise _error(errno.EBUSY, "msend")
        if self.outerr:
            raise _error(errno.ECONNRESET, "msend")
        data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)
        if len(data) > 255:
            raise _error(errno.EMSGSIZE, "msend")
        self.sbusy = True
        try:
            self.lower.bsend(bytes([len(data)]) + data, deadline)
        except BaseException:
            self.outerr = not self.bugs.get("no_latch")
            raise
        finally:
            self.sbusy = False

    def mrecvl(self, buffers: Sequence[Any], deadline: int) -> int:
        items = [i if isinstance(i, int) else memoryview(i).cast("B") for i in buffers]
        if any(not isinstance(i, int) and i.readonly for i in items):
            raise _error(errno.EINVAL, "mrecvl")
        if self.rbusy and not self.bugs.get("shared_busy"):
            raise _error(errno.EBUSY, "mrecv")
        if self.inerr:
            raise _error(errno.ECONNRESET, "mrecv")
        self.rbusy = True
        try:
            size = self._take(1, deadline)[0]
            room = sum(i if isinstance(i, int) else i.nbytes for i in items) if items else size
            if size > room and not self.bugs.get("truncate"):
                raise _error(errno.EMSGSIZE, "mrecv")
            data = self._take(size, deadline)
            for item in items:
                n = min(item if isinstance(item, int) else item.nbytes, len(data))
                if not isinstance(item, int):
                    item[:n] = data[:n]
                data = data[n:]
            return min(size, room)
        except dill.Canceled:
            self.inerr = not self.bugs.get("no_latch")
            if self.bugs.get("cancel_is_timeout"):
                raise _error(errno.ETIMEDOUT, "mrecv") from None
            raise
        except BaseException:
            self.inerr = not self.bugs.get("no_latch")
            raise
        finally:
            self.rbusy = False

    def _take(self, n: int, deadline: int) -> bytes:
        if not self.bugs.get("lose_ahead"):
            return self.lower.brecv(n, deadline)  # type: ignore[no-any-return]
        while len(self.ahead) < n:
            chunk = bytearray(4096)
            self.ahead += chunk[: self.lower.brecv_some(chunk, deadline)]
        data = bytes(self.ahead[:n])
        del self.ahead[:n]
        return data


def toy_frames_detach(s: int) -> int:
    """ToyFrames off: the byte stream below (lose_ahead: without the bytes read ahead)."""
    obj = dill.hquery(s, toy_frames_type)
    if obj.inerr or obj.outerr:
        dill.hclose(s)
        raise _error(errno.ECONNRESET, "toy_frames_detach")
    u, obj.u = obj.u, -1
    dill.hclose(s)
    return u


def toy_attach(cls: Callable[..., Any], s: int, **options: Any) -> int:
    """Put a toy layer on byte stream s, libdill's way: own s, ask once for its interface."""
    u = dill.hown(s)
    try:
        return dill.hmake(cls(u, dill.hquery(u, dill.bsock_type), **options))
    except BaseException:
        dill.hclose(u)
        raise


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _has_ipv6_loopback()

#: Connected byte-stream pairs, and their half-close.
STREAMS: dict[str, tuple[Maker, Callable[[int, int], None]]] = {
    "ipc": (dill.ipc_pair, dill.ipc_done),
    "tcp": (tcp_pair, dill.tcp_done),
    "tcp6": (partial(tcp_pair, "::1"), dill.tcp_done),
}


def stream(name: str) -> Maker:
    if name == "tcp6" and not HAS_IPV6:
        pytest.skip("this machine has no IPv6 loopback (::1)")
    return STREAMS[name][0]


def reusing(
    attach_mem: Callable[[int, Any], int], storage: Callable[[], Any]
) -> Callable[[int], int]:
    """An attach that takes its storage from a pool, the first free one, as a server may.

    The kit's hclose rule then makes a pair on the storages it has just
    freed, while the calls that hclose woke have not run yet.
    """
    pool: list[Any] = []

    def attach(s: int) -> int:
        mem = next((m for m in pool if not m.is_open), None)
        if mem is None:
            mem = storage()
            pool.append(mem)
        return attach_mem(s, mem)

    return attach


def without(reserved: bytes) -> bytes:
    """Every byte value but those in reserved: the alphabet of messages over SUFFIX."""
    return bytes(c for c in range(256) if c not in reserved)


def term_options(terminal: bytes) -> dict[str, Any]:
    """check_msock's options for a TERM socket with that terminal message."""
    return {
        "done": dill.term_done,
        "detach": lambda s: dill.term_detach(s, later()),
        "reattach": lambda s: dill.term_attach(s, terminal),
        "detach_drains": True,
        "min_message": 0 if terminal else 1,  # the empty message is the terminal one
    }


# greendill's sockets. ---------------------------------------------------------


@pytest.mark.parametrize("name", ["ipc", "tcp", "tcp6"])
def test_transports_keep_the_byte_stream_contract(name: str) -> None:
    check_bsock(stream(name), done=STREAMS[name][1], latching=LATCH_DIRECTION)


def test_ipc_seqpacket_keeps_the_message_contract() -> None:
    check_msock(dill.ipc_seqpacket_pair, latching=LATCH_DIRECTION, max_message=65536)


def test_term_over_ipc_seqpacket_keeps_the_message_contract() -> None:
    check_msock(
        stacked(dill.ipc_seqpacket_pair, lambda s: dill.term_attach(s, b"STOP")),
        latching=LATCH_DIRECTION,
        max_message=65536,
        **term_options(b"STOP"),
    )


def test_udp_keeps_the_message_contract() -> None:
    check_msock(
        udp_pair, latching=LATCH_NONE, send_blocks=False, peer_close_seen=False, max_message=8192
    )


@pytest.mark.parametrize("hdrlen", [1, 2, 3, 4, 8])
@pytest.mark.parametrize(
    "flags", [dill.PREFIX_BIG_ENDIAN, dill.PREFIX_LITTLE_ENDIAN], ids=["big", "little"]
)
@pytest.mark.parametrize("below", ["ipc", "tcp"])
def test_prefix_keeps_the_message_contract(below: str, flags: int, hdrlen: int) -> None:
    def attach(s: int) -> int:
        return dill.prefix_attach(s, hdrlen, flags)

    check_msock(
        stacked(stream(below), attach),
        detach=dill.prefix_detach,
        reattach=attach,
        latching=LATCH_ANY,
        max_message=min(256**hdrlen - 1, 1 << 20),
    )


@pytest.mark.parametrize(
    "suffix", [b"\r\n", b"\x00", b"</message>", bytes(range(32))], ids=["crlf", "nul", "10", "32"]
)
@pytest.mark.parametrize("below", ["ipc", "tcp"])
def test_suffix_keeps_the_message_contract(below: str, suffix: bytes) -> None:
    def attach(s: int) -> int:
        return dill.suffix_attach(s, suffix)

    check_msock(
        stacked(stream(below), attach),
        detach=lambda s: dill.suffix_detach(s, later()),
        reattach=attach,
        latching=LATCH_ANY,
        alphabet=without(suffix),
    )


@pytest.mark.parametrize("terminal", [b"", b"STOP"], ids=["empty", "STOP"])
@pytest.mark.parametrize("below", ["prefix-ipc", "suffix-tcp"])
def test_term_keeps_the_message_contract(below: str, terminal: bytes) -> None:
    # TERM latches nothing itself; the PREFIX or SUFFIX below it does, but
    # its own end (EPIPE at the terminal message) stays EPIPE.
    if below == "prefix-ipc":
        base = stacked(dill.ipc_pair, lambda s: dill.prefix_attach(s, 4))
        alphabet = None
    else:
        base = stacked(tcp_pair, lambda s: dill.suffix_attach(s, b"\r\n"))
        alphabet = without(b"\r\n")
    check_msock(
        stacked(base, lambda s: dill.term_attach(s, terminal)),
        latching=LATCH_DIRECTION,
        alphabet=alphabet,
        **term_options(terminal),
    )


@pytest.mark.parametrize("terminal", [b"", b"STOP"], ids=["empty", "STOP"])
def test_term_over_udp_latches_nothing(terminal: bytes) -> None:
    check_msock(
        stacked(udp_pair, lambda s: dill.term_attach(s, terminal)),
        latching=LATCH_NONE,
        send_blocks=False,
        peer_close_seen=False,
        max_message=8192,
        **term_options(terminal),
    )


# A call woken by hclose (EBADF) runs after hclose returned, when the storage
# may be a new socket's already: it must leave that socket's flags alone.
@pytest.mark.parametrize("layer", ["prefix", "suffix", "term"])
def test_layer_storage_serves_a_new_socket_at_once_after_hclose(layer: str) -> None:
    if layer == "prefix":
        attach = reusing(lambda s, mem: dill.prefix_attach_mem(s, 2, 0, mem), dill.prefix_storage)
        maker = stacked(dill.ipc_pair, attach)
    elif layer == "suffix":
        attach = reusing(lambda s, mem: dill.suffix_attach_mem(s, b"\n", mem), dill.suffix_storage)
        maker = stacked(dill.ipc_pair, attach)
    else:
        attach = reusing(lambda s, mem: dill.term_attach_mem(s, b"STOP", mem), dill.term_storage)
        maker = stacked(dill.ipc_pair, lambda s: dill.prefix_attach(s, 2), attach)
    check_msock(maker, only=["hclose"], alphabet=without(b"\n"), max_message=65535)


def test_transport_storage_serves_a_new_socket_at_once_after_hclose() -> None:
    pool: list[Any] = []

    def maker() -> tuple[int, int]:
        mem = next((m for m in pool if not m.ends[0].is_open and not m.ends[1].is_open), None)
        if mem is None:
            mem = dill.ipc_pair_storage()
            pool.append(mem)
        return dill.ipc_pair_mem(mem)

    check_bsock(maker, only=["hclose"])


# A user's layers, over and under greendill's. --------------------------------


@pytest.mark.parametrize("cls", [ToyXor, ToyXorAhead])
@pytest.mark.parametrize("below", ["ipc", "tcp"])
def test_user_byte_stream_layer_keeps_the_contract(below: str, cls: type) -> None:
    make, done = STREAMS[below]
    check_bsock(stacked(make, partial(toy_attach, cls, done=done)), done=toy_done)


@pytest.mark.parametrize(
    ("below", "layer", "cls"),
    [
        ("ipc", "prefix", ToyXor),
        ("tcp", "prefix", ToyXor),
        ("ipc", "suffix", ToyXor),
        ("ipc", "prefix", ToyXorAhead),
        ("tcp", "prefix", ToyXorAhead),
        ("ipc", "suffix", ToyXorAhead),
        ("tcp", "suffix", ToyXorAhead),
    ],
)
def test_greendill_layers_over_a_user_byte_stream(below: str, layer: str, cls: type) -> None:
    # Over ToyXor, which has no bunrecv, PREFIX and SUFFIX must not read
    # ahead; over ToyXorAhead they do, and detach gives the bytes back
    # through it. (SUFFIX reads at most a suffix's length at a time from a
    # stream that cannot take bytes back: draining a full TCP connection so
    # takes seconds, and IPC shows the same.)
    def attach(s: int) -> int:
        return dill.prefix_attach(s, 2) if layer == "prefix" else dill.suffix_attach(s, b"\r\n")

    check_msock(
        stacked(STREAMS[below][0], partial(toy_attach, cls), attach),
        detach=dill.prefix_detach if layer == "prefix" else dill.suffix_detach,
        reattach=attach,
        latching=LATCH_ANY,
        max_message=65535,
        alphabet=without(b"\r\n") if layer == "suffix" else None,
        volume=64 << 10 if (layer, cls) == ("suffix", ToyXor) else 2 << 20,
    )


def test_user_message_layer_keeps_the_contract() -> None:
    def attach(s: int) -> int:
        return toy_attach(ToyFrames, s)

    check_msock(
        stacked(dill.ipc_pair, attach),
        detach=toy_frames_detach,
        reattach=attach,
        latching=LATCH_ANY,
        max_message=255,
    )


# The kit bites: a planted bug, and the rule it breaks. ----------------------


@contextmanager
def reports(*rules: str) -> Iterator[None]:
    """Expect the kit to report each of rules broken, by id and wording."""
    with pytest.raises(AssertionError) as info:
        yield
    message = str(info.value)
    assert "contract broken" in message, message
    for rule in rules:
        assert re.search(rf"^\[{rule}\] \w+", message, re.MULTILINE), f"{rule} not in {message}"


@contextmanager
def leftovers_closed() -> Iterator[None]:
    """Close what a layer with a leak leaves open, after the check that reports it."""
    before = snapshot().handles
    try:
        yield
    finally:
        left = sorted(set(snapshot().handles) - set(before))
        toys = [h for h in left if _answers(h, toy_type) or _answers(h, toy_frames_type)]
        # The layers first: their close closes the socket below.
        for h in toys + [h for h in left if h not in toys]:
            with suppress(OSError):
                dill.hquery(h, toy_type).bugs.clear()  # a close that waits no more
            with suppress(OSError):
                dill.hclose(h)


def _answers(h: int, type: object) -> bool:
    try:
        dill.hquery(h, type)
    except OSError:
        return False
    return True


def bsock_toy(**bugs: bool) -> Maker:
    return stacked(dill.ipc_pair, partial(toy_attach, ToyXor, done=dill.ipc_done, **bugs))


def msock_toy(**bugs: bool) -> Maker:
    return stacked(dill.ipc_pair, partial(toy_attach, ToyFrames, **bugs))


def check_toy_frames(maker: Maker, **options: Any) -> None:
    check_msock(maker, latching=LATCH_ANY, max_message=255, patience=500, **options)


def test_kit_reports_a_byte_stream_that_sends_only_part() -> None:
    with reports("transfer", "bulk"):
        check_bsock(bsock_toy(partial_send=True), done=toy_done, patience=300)


def test_kit_reports_a_byte_stream_whose_ebusy_breaks_it() -> None:
    with reports("recv-busy"):
        check_bsock(bsock_toy(shared_busy=True), done=toy_done)


def test_kit_reports_a_bad_argument_that_breaks_sending() -> None:
    with reports("bad-argument"):
        check_bsock(bsock_toy(latch_bad_argument=True), only=["bad-argument"])


def test_kit_reports_an_hclose_that_waits() -> None:
    with leftovers_closed(), reports("hclose"):
        check_bsock(bsock_toy(close_waits=True), only=["hclose"])


def test_kit_reports_a_message_socket_that_does_not_latch() -> None:
    # A timeout or a cancel latches the IPC stream below, and the stack with
    # it; EMSGSIZE is the layer's own failure, which it alone must latch.
    with reports("emsgsize"):
        check_toy_frames(msock_toy(no_latch=True))


def test_kit_reports_a_message_socket_that_truncates() -> None:
    with reports("emsgsize"):
        check_toy_frames(msock_toy(truncate=True))


def test_kit_reports_a_close_that_leaves_the_stack_open() -> None:
    with leftovers_closed(), reports("hclose"):
        check_toy_frames(msock_toy(leak_below=True), only=["hclose"])


def test_kit_reports_a_detach_that_loses_what_it_read_ahead() -> None:
    attach = partial(toy_attach, ToyFrames, lose_ahead=True)
    with reports("detach"):
        check_toy_frames(stacked(dill.ipc_pair, attach), detach=toy_frames_detach, reattach=attach)


def test_kit_reports_a_cancel_that_becomes_a_timeout() -> None:
    with reports("recv-cancel"):
        check_toy_frames(msock_toy(cancel_is_timeout=True))


def test_kit_reports_latching_other_than_declared() -> None:
    # PREFIX latches: declared as latching nothing, the kit says where not.
    maker = stacked(dill.ipc_pair, lambda s: dill.prefix_attach(s, 2))
    with reports("recv-timeout-latching", "recv-cancel", "emsgsize"):
        check_msock(maker, latching=LATCH_NONE, max_message=65535)


def test_kit_reports_a_send_that_never_blocks_when_sends_should() -> None:
    with reports("send-timeout", "send-busy"):
        check_msock(
            udp_pair,
            latching=LATCH_NONE,
            peer_close_seen=False,
            max_message=8192,
            only=["send-timeout", "send-busy"],
        )


def test_kit_runs_only_and_skips_rules_by_id() -> None:
    ran = []

    def maker() -> tuple[int, int]:
        ran.append(1)
        return dill.ipc_pair()

    check_bsock(maker, only=["transfer"])
    assert len(ran) == 1
    check_bsock(bsock_toy(shared_busy=True), skip=["recv-busy"], done=toy_done)


def test_kit_refuses_unknown_rules_and_options() -> None:
    with pytest.raises(ValueError, match="no such bsock rule"):
        check_bsock(dill.ipc_pair, only=["no-such-rule"])
    with pytest.raises(ValueError, match="no such msock rule"):
        check_msock(dill.ipc_pair, skip=["done", "x"])
    with pytest.raises(ValueError, match="latching"):
        check_bsock(dill.ipc_pair, latching="sometimes")
    with pytest.raises(ValueError, match="alphabet"):
        check_msock(dill.ipc_pair, alphabet=b"")


def test_kit_reports_a_maker_that_returns_no_pair() -> None:
    a, b = dill.ipc_pair()
    try:
        with reports("transfer"):
            check_bsock(lambda: a, only=["transfer"])  # type: ignore[arg-type,return-value]
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_udp_mrecv_takes_any_maxlen() -> None:
    # A fix found by the kit: UDP's mrecv allocated maxlen bytes first
    # (msock_vfs's default), so mrecv(s, huge) failed with OverflowError.
    a, b = udp_pair()
    try:
        dill.msend(a, b"datagram", later())
        assert dill.mrecv(b, sys.maxsize, later()) == b"datagram"
        dill.msend(a, b"datagram", later())
        with pytest.raises(OSError) as info:
            dill.mrecv(b, 7, later())
        assert info.value.errno == errno.EMSGSIZE
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_the_guide_lists_every_rule() -> None:
    guide = (pathlib.Path(__file__).parent.parent / "docs" / "layers.md").read_text()
    for rule in _RULES:
        assert f"| `{rule.id}` |" in guide, f"docs/layers.md does not list the rule {rule.id}"
