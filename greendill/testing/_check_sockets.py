"""Conformance checks for byte-stream and message sockets: greendill's, and yours.

check_bsock and check_msock take a maker, a function that returns a new
connected pair of handles, and run every rule of the socket contract (the
docstrings of bsock_vfs, msock_vfs and the generic calls, and
docs/design.md) on fresh pairs: all or nothing, message boundaries,
deadlines, EBUSY, cancellation, error latching, half-close, the peer's
close, wrong handles, hclose, detach. Options say what the pair has (a done
function, a detach function) and which latching rule its protocol follows.

Each rule runs on pairs of its own, and the kit closes them, and every
coroutine it started, whatever happens. Every rule runs even when an
earlier one fails; at the end one AssertionError lists each broken rule by
its id and wording, and what was seen. A wait that should end is bounded
by `patience`, so that a broken socket fails the check instead of hanging
it.

The kit uses only greendill's public API, as a user's test would. It runs
where a greendill call may block (a test's main greenlet, or a coroutine).
"""

from __future__ import annotations

import errno
import random
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Callable, NamedTuple, Optional

import greendill as dill

from ._leaks import check_no_leaks, snapshot

__all__ = ["LATCH_ANY", "LATCH_DIRECTION", "LATCH_NONE", "check_bsock", "check_msock"]

#: Latching as TCP and IPC do it: a failed call breaks its direction for
#: good (later calls in that direction fail with ECONNRESET), except the end
#: of the stream, whose EPIPE stays EPIPE. The other direction goes on.
LATCH_DIRECTION = "direction"
#: Latching as PREFIX and SUFFIX do it: every failed call breaks its
#: direction, EMSGSIZE included (later calls in that direction fail with
#: ECONNRESET), except the end of the stream between two messages, whose
#: EPIPE stays EPIPE.
LATCH_ANY = "any"
#: No latching, as UDP and TERM (over a socket that does not latch): a
#: failed call leaves the socket as it was, and the next one is tried afresh.
LATCH_NONE = "none"

Maker = Callable[[], "tuple[int, int]"]

# Sends stop after this many bytes when checking that a send blocks: no
# socket buffers that much on a peer that does not read.
_CLOG_LIMIT = 64 << 20
# The fill and bulk chunks.
_CHUNK = 65536
# The bulk transfer's largest volume for sockets whose sends never wait
# (datagrams: the peer's buffer must hold it all).
_BULK_UNBLOCKING = 32 << 10


class _Rule(NamedTuple):
    id: str
    text: str
    check: Callable[[_Kit], None]
    kinds: tuple[str, ...]
    applies: Callable[[_Kit], bool]


_RULES: list[_Rule] = []


def _rule(
    id: str,
    text: str,
    kinds: tuple[str, ...] = ("bsock", "msock"),
    applies: Callable[[_Kit], bool] = lambda kit: True,
) -> Callable[[Callable[[_Kit], None]], Callable[[_Kit], None]]:
    def register(check: Callable[[_Kit], None]) -> Callable[[_Kit], None]:
        _RULES.append(_Rule(id, text, check, kinds, applies))
        return check

    return register


def _names(codes: Collection[int]) -> str:
    return " or ".join(errno.errorcode.get(code, str(code)) for code in sorted(codes))


def _short(value: Any) -> str:
    # What was seen, cut short enough for a message.
    text = repr(value)
    if len(text) <= 80:
        return text
    size = f" ({len(value)} bytes)" if isinstance(value, (bytes, bytearray)) else ""
    return f"{text[:60]}...{size}"


class _Pair:
    """The two handles of a pair the kit uses: None once closed or handed on."""

    __slots__ = ("a", "b")

    def __init__(self, a: Optional[int], b: Optional[int]) -> None:
        self.a = a
        self.b = b


class _Task:
    """fn(*args) in a coroutine of its own; what it returns or raises is kept."""

    __slots__ = ("error", "finished", "h", "value")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.finished = False
        self.value: Any = None
        self.error: Optional[Exception] = None
        self.h: Optional[int] = None
        # go runs the coroutine at once, until it blocks or ends.
        self.h = dill.go(self._body, fn, args)

    def _body(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self.value = fn(*args)
        except Exception as exc:  # kept for the rule to judge
            self.error = exc
        finally:
            self.finished = True

    def join(self, deadline: int, what: str) -> None:
        """Wait until the coroutine ends (AssertionError if it does not by deadline)."""
        h = self.h
        if h is None:
            return
        try:
            dill.bundle_wait(h, deadline)
        except OSError as exc:
            if exc.errno != errno.ETIMEDOUT:
                raise
            raise AssertionError(f"{what} did not end in time: it hangs") from None
        finally:
            self.close()

    def close(self) -> None:
        """Cancel the coroutine if it still runs, and close its handle."""
        h, self.h = self.h, None
        if h is not None:
            dill.hclose(h)


class _Fill:
    """What a filler coroutine has sent, and whether it should stop."""

    __slots__ = ("sent", "stop")

    def __init__(self) -> None:
        self.sent = 0
        self.stop = False


class _Kit:
    """The options of one check_bsock/check_msock call, and what its rules share."""

    def __init__(self, kind: str, maker: Maker, **options: Any) -> None:
        self.kind = kind
        self.maker = maker
        self.done: Optional[Callable[[int, int], None]] = options["done"]
        self.detach: Optional[Callable[[int], int]] = options["detach"]
        self.reattach: Optional[Callable[[int], int]] = options["reattach"]
        self.detach_drains: bool = options.get("detach_drains", False)
        self.latching: str = options["latching"]
        self.send_blocks: bool = options["send_blocks"]
        self.peer_close_seen: bool = options["peer_close_seen"]
        self.max_message: int = options.get("max_message", 1 << 20)
        self.min_message: int = options.get("min_message", 0)
        if self.max_message < 64 or not 0 <= self.min_message <= 16:
            raise ValueError("the kit needs max_message >= 64 and 0 <= min_message <= 16")
        self.patience: int = options["patience"]
        self.volume: int = options["volume"]
        self.settle: int = options["settle"]
        alphabet = options.get("alphabet")
        self.table: Optional[bytes] = None
        if alphabet is not None:
            alphabet = bytes(alphabet)
            if not alphabet:
                raise ValueError("alphabet is empty")
            self.table = bytes(alphabet[i % len(alphabet)] for i in range(256))
        self.pairs: list[_Pair] = []
        self.tasks: list[_Task] = []

    # Resources, all closed by cleanup() after each rule.

    def pair(self) -> _Pair:
        """A new pair from the maker."""
        handles = self.maker()
        if not (isinstance(handles, tuple) and len(handles) == 2):
            raise AssertionError(f"the maker returned {handles!r}, not a pair of handles")
        return self.pair_of(*handles)

    def pair_of(self, a: Optional[int], b: Optional[int]) -> _Pair:
        """Two handles that cleanup closes."""
        p = _Pair(a, b)
        self.pairs.append(p)
        return p

    def go(self, fn: Callable[..., Any], *args: Any) -> _Task:
        task = _Task(fn, *args)
        self.tasks.append(task)
        return task

    def cleanup(self) -> None:
        # Coroutines first: closing a socket under one would wake it.
        for task in self.tasks:
            task.close()
        for p in self.pairs:
            for h in (p.a, p.b):
                if h is not None:
                    with suppress(OSError):
                        dill.hclose(h)
            p.a = p.b = None
        self.tasks.clear()
        self.pairs.clear()

    # Time.

    def later(self) -> int:
        """The deadline of a wait that must end: now plus patience."""
        return dill.now() + self.patience

    def pause(self) -> None:
        """Give what was just sent time to reach the peer."""
        dill.msleep(dill.now() + self.settle)

    # Data.

    def payload(self, size: int, seed: int) -> bytes:
        """size bytes, different for each seed, from the alphabet."""
        data = random.Random(seed).randbytes(size)
        return data.translate(self.table) if self.table is not None else data

    def sizes(self, *wanted: int) -> list[int]:
        """The wanted message sizes that the pair can carry."""
        return [max(self.min_message, min(size, self.max_message)) for size in wanted]

    # The calls, whichever the kind.

    def send(self, h: int, data: Any, deadline: int) -> None:
        if self.kind == "bsock":
            dill.bsend(h, data, deadline)
        else:
            dill.msend(h, data, deadline)

    def recv(self, h: int, size: int, deadline: int) -> bytes:
        """bsock: exactly size bytes; msock: one message of at most size bytes."""
        if self.kind == "bsock":
            return dill.brecv(h, size, deadline)
        return dill.mrecv(h, size, deadline)

    def room(self, data: bytes) -> int:
        """What to ask a receive for to get data: its size, or more room for a message."""
        return len(data) if self.kind == "bsock" else len(data) + 64

    def expect(self, h: int, data: bytes, deadline: int, what: str) -> None:
        """Receive data (msock: as one message), or fail naming what."""
        try:
            got = self.recv(h, self.room(data), deadline)
        except OSError as exc:
            raise AssertionError(f"{what}: expected {_short(data)}, got {exc!r}") from None
        if got != data:
            unit = "bytes" if self.kind == "bsock" else "a message"
            raise AssertionError(f"{what}: expected {unit} {_short(data)}, got {_short(got)}")

    def fails(self, codes: Collection[int], what: str, fn: Callable[..., Any], *args: Any) -> None:
        """fn(*args) must raise OSError with one of codes."""
        try:
            result = fn(*args)
        except OSError as exc:
            if exc.errno in codes:
                return
            raise AssertionError(f"{what}: expected {_names(codes)}, got {exc!r}") from None
        raise AssertionError(f"{what}: expected {_names(codes)}, but it returned {_short(result)}")

    def unit(self) -> int:
        """How much one fill send carries."""
        return _CHUNK if self.kind == "bsock" else min(self.max_message, _CHUNK)

    def fill(self, h: int, when: int) -> tuple[OSError, int]:
        """Send until a send fails (the peer does not read); return its error and deadline.

        when: 0 for deadline 0, else each send's deadline is now() + when
        (in the past for a negative when).
        """
        chunk = self.payload(self.unit(), 1)
        sent = 0
        while sent < _CLOG_LIMIT:
            deadline = dill.now() + when if when else 0
            try:
                self.send(h, chunk, deadline)
            except OSError as exc:
                return exc, deadline
            sent += len(chunk) or 1
        raise AssertionError(
            f"{sent} bytes went out to a peer that does not read, and no send blocked"
            " (a socket whose sends never wait is checked with send_blocks=False)"
        )

    def start_filler(self, h: int) -> tuple[_Task, _Fill]:
        """A coroutine that sends until a send blocks (it runs until then), and on until stopped."""
        chunk = self.payload(self.unit(), 1)
        fill = _Fill()

        def filler() -> None:
            while not fill.stop and fill.sent * len(chunk) < _CLOG_LIMIT:
                self.send(h, chunk, -1)
                fill.sent += 1

        task = self.go(filler)
        if task.finished:
            if task.error is not None:
                raise AssertionError(f"a send failed while filling the socket: {task.error!r}")
            raise AssertionError(
                f"{fill.sent * len(chunk)} bytes went out to a peer that does not read,"
                " and no send blocked"
            )
        return task, fill

    def drain_filler(self, task: _Task, fill: _Fill, h: int) -> None:
        """Stop a blocked filler, receive everything it sent on h, check it, and wait for it."""
        fill.stop = True
        chunk = self.payload(self.unit(), 1)
        got = 0
        # The filler's blocked send completes while this receives; then it
        # stops. Until it has, more may come.
        while not (task.finished and got == fill.sent):
            self.expect(h, chunk, self.later(), f"the data of send number {got + 1}")
            got += 1
        task.join(self.later(), "the sending coroutine")
        if task.error is not None:
            raise AssertionError(f"the blocked send failed once the peer read: {task.error!r}")

    def latched(self, direction: str, what: str, fn: Callable[..., Any], *args: Any) -> None:
        """After a failure in direction ("send"/"receive") of a latching socket, fn must fail."""
        self.fails(
            {errno.ECONNRESET},
            f"{what} (latching '{self.latching}': a failed {direction} breaks the direction)",
            fn,
            *args,
        )


@contextmanager
def _wrapped(what: str) -> Iterator[None]:
    # An unexpected OSError in a step that must work becomes an assertion
    # naming the step.
    try:
        yield
    except OSError as exc:
        raise AssertionError(f"{what}: unexpected {exc!r}") from None


# The rules. ---------------------------------------------------------------------
#
# Each rule makes its own pairs with kit.pair() and coroutines with kit.go();
# the runner closes them afterwards.


@_rule("transfer", "what is sent arrives whole, in order and unchanged, both ways", ("bsock",))
def _transfer_bytes(kit: _Kit) -> None:
    p = kit.pair()
    for src, dst, seed in ((p.a, p.b, 10), (p.b, p.a, 20)):
        assert src is not None and dst is not None
        data = kit.payload(300, seed)
        with _wrapped("bsend of bytes, bytearray, memoryviews, empty bytes; bsendl"):
            dill.bsend(src, data[:10], kit.later())
            dill.bsend(src, bytearray(data[10:20]), kit.later())
            dill.bsend(src, b"", kit.later())
            dill.bsend(src, memoryview(data)[20:60], kit.later())
            dill.bsend(src, memoryview(data[60:100]).cast("H"), kit.later())  # 20 items
            dill.bsendl(src, [data[100:150], bytearray(data[150:151]), memoryview(data)[151:300]])
        # Received in other pieces than sent: a byte stream has no boundaries.
        kit.expect(dst, data[:1], kit.later(), "brecv of 1 byte")
        kit.expect(dst, data[1:15], kit.later(), "brecv across two sends")
        with _wrapped("brecv of 0 bytes"):
            empty = dill.brecv(dst, 0, kit.later())
        assert empty == b"", f"brecv of 0 bytes returned {empty!r}"
        buffer = bytearray(35)
        with _wrapped("brecv_into"):
            size = dill.brecv_into(dst, memoryview(buffer), kit.later())
        assert size == 35, f"brecv_into returned {size}, not the buffer's size 35"
        assert buffer == data[15:50], "brecv_into: wrong bytes"
        first, second = bytearray(25), bytearray(50)
        with _wrapped("brecvl with a skip"):
            dill.brecvl(dst, [first, 25, memoryview(second)], kit.later())
        assert first == data[50:75], "brecvl: wrong bytes in the first buffer"
        assert second == data[100:150], "brecvl: the int item did not skip exactly its bytes"
        kit.expect(dst, data[150:], kit.later(), "brecv of the rest")


@_rule(
    "transfer",
    "each message arrives whole, in order and unchanged, boundaries kept, both ways",
    ("msock",),
)
def _transfer_messages(kit: _Kit) -> None:
    p = kit.pair()
    for src, dst, seed in ((p.a, p.b, 10), (p.b, p.a, 20)):
        assert src is not None and dst is not None
        sizes = kit.sizes(0, 1, 2, 3, 200, 1000, 64)
        messages = [kit.payload(n, seed + i) for i, n in enumerate(sizes)]
        m4, m5, m6 = messages[4:]
        with _wrapped("msend of bytes, bytearray, memoryviews; msendl"):
            dill.msend(src, messages[0], kit.later())
            dill.msend(src, bytearray(messages[1]), kit.later())
            dill.msend(src, memoryview(messages[2]), kit.later())
            dill.msend(src, messages[3], kit.later())
            dill.msendl(src, [m4[:5], bytearray(m4[5:6]), memoryview(m4)[6:]], kit.later())
            dill.msend(src, m5, kit.later())
            dill.msend(src, memoryview(m6).cast("H"), kit.later())
        kit.expect(dst, messages[0], kit.later(), "mrecv of the first message")
        for i, extra in ((1, 0), (2, 10)):  # a buffer of the message's size, and a larger one
            buffer = bytearray(len(messages[i]) + extra)
            with _wrapped("mrecv_into"):
                size = dill.mrecv_into(dst, buffer, kit.later())
            assert size == len(messages[i]), f"mrecv_into returned {size}, not {len(messages[i])}"
            assert buffer[:size] == messages[i], "mrecv_into: wrong bytes"
        kit.expect(dst, messages[3], kit.later(), "mrecv of the fourth message")
        half = len(m4) // 2
        first, rest = bytearray(half), bytearray(len(m4) - half + 8)
        with _wrapped("mrecvl of msendl's message"):
            size = dill.mrecvl(dst, [first, 0, memoryview(rest)], kit.later())
        assert size == len(m4), f"mrecvl returned {size}: msendl's buffers are not one message"
        assert first + rest[: size - half] == m4, "mrecvl: wrong bytes"
        head, tail = bytearray(3), bytearray(len(m5))
        with _wrapped("mrecvl with a skip"):
            size = dill.mrecvl(dst, [head, 5, tail], kit.later())
        assert size == len(m5), f"mrecvl returned {size}, not {len(m5)}"
        assert head == m5[:3], "mrecvl: wrong bytes in the first buffer"
        assert tail[: size - 8] == m5[8:], "mrecvl: the int item did not skip exactly its bytes"
        kit.expect(dst, m6, kit.later(), "mrecv of a message sent from a memoryview of shorts")


@_rule(
    "bulk",
    "a volume larger than the socket buffers arrives whole while the peer receives",
)
def _bulk(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    rng = random.Random(7)
    total = kit.volume if kit.send_blocks else min(kit.volume, _BULK_UNBLOCKING)
    top = kit.unit() if kit.send_blocks else min(kit.max_message, 1024)
    pieces: list[bytes] = []
    while total > 0:
        n = max(kit.min_message, min(rng.randint(1, top), total))
        pieces.append(kit.payload(n, len(pieces)))
        total -= max(n, 1)
    if kit.kind == "msock" and kit.send_blocks and kit.max_message > top:
        pieces.append(kit.payload(min(kit.max_message, 1 << 20), 99))  # the largest
    a = p.a

    def sender() -> None:
        for i, piece in enumerate(pieces):
            if i % 3 == 2 and kit.kind == "bsock":
                dill.bsendl(a, [piece[:7], piece[7:]], kit.later())
            else:
                kit.send(a, piece, kit.later())

    task = kit.go(sender)
    if kit.kind == "bsock":
        # Received in pieces of other sizes than sent, some with a skip.
        stream = b"".join(pieces)
        at = 0
        while at < len(stream):
            n = min(rng.randint(1, 3 * _CHUNK), len(stream) - at)
            if n > 10 and rng.random() < 0.3:
                head = bytearray(10)
                with _wrapped(f"brecvl of bytes {at} to {at + n}, all but 10 skipped"):
                    dill.brecvl(p.b, [head, n - 10], kit.later())
                assert head == stream[at : at + 10], f"brecvl: wrong bytes at {at}"
            else:
                kit.expect(p.b, stream[at : at + n], kit.later(), f"bytes {at} to {at + n}")
            at += n
    else:
        for i, piece in enumerate(pieces):
            kit.expect(p.b, piece, kit.later(), f"message {i} of {len(pieces)}")
    task.join(kit.later(), "the sending coroutine")
    assert task.error is None, f"a send failed: {task.error!r}"


@_rule(
    "bad-argument",
    "a send of something that is not bytes-like (None, a str) fails with TypeError or EINVAL"
    " before any I/O and breaks nothing: the next send and receive work",
)
def _bad_argument(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    sendl = dill.bsendl if kit.kind == "bsock" else dill.msendl
    whole = kit.payload(kit.sizes(8)[0], 80)
    for bad in (None, "text"):
        for what, call, args in (
            ("a send", kit.send, (p.a, bad, kit.later())),
            ("an iolist send", sendl, (p.a, [whole, bad], kit.later())),
        ):
            try:
                call(*args)
            except TypeError:
                pass
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise AssertionError(
                        f"{what} of {type(bad).__name__}: expected TypeError or EINVAL, got {exc!r}"
                    ) from None
            else:
                raise AssertionError(f"{what} of {type(bad).__name__} did not fail")
    with _wrapped("a send after the bad arguments (they must not latch)"):
        kit.send(p.a, whole, kit.later())
    kit.expect(p.b, whole, kit.later(), "what was sent after the bad arguments")


@_rule(
    "ready-now",
    "a call that can complete at once succeeds whatever the deadline: 0, or one in the past",
)
def _ready_now(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    first, second, third = (kit.payload(n, 30 + n) for n in kit.sizes(5, 6, 7))
    with _wrapped("a send with deadline 0 on a socket with room"):
        kit.send(p.a, first, 0)
    with _wrapped("a send with a deadline in the past on a socket with room"):
        kit.send(p.a, second, dill.now() - 1000)
        kit.send(p.a, third, -1)
    kit.expect(p.b, first, kit.later(), "the first data")
    kit.pause()  # the rest has surely arrived now
    kit.expect(p.b, second, 0, "a receive with deadline 0 of data already there")
    past = dill.now() - 1000
    kit.expect(p.b, third, past, "a receive with a past deadline of data already there")


@_rule(
    "recv-timeout",
    "a receive with nothing to receive fails with ETIMEDOUT: at once for deadline 0 or one in"
    " the past, and not before a deadline in the future",
)
def _recv_timeout(kit: _Kit) -> None:
    for deadline in (0, dill.now() - 1000, dill.now() + 50):
        p = kit.pair()
        assert p.b is not None
        what = f"a receive with deadline {deadline}"
        kit.fails({errno.ETIMEDOUT}, what, kit.recv, p.b, 64, deadline)
        if deadline > 0:
            assert dill.now() >= deadline, f"ETIMEDOUT came at {dill.now()}, before {deadline}"


@_rule(
    "recv-timeout-latching",
    "after a receive times out, later receives fail with ECONNRESET (latching) or work (no"
    " latching); sending is not affected",
)
def _recv_timeout_latching(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    kit.fails({errno.ETIMEDOUT}, "receive with deadline 0", kit.recv, p.b, 64, 0)
    data, back = kit.payload(kit.sizes(9)[0], 40), kit.payload(kit.sizes(11)[0], 41)
    with _wrapped("a send to the side whose receive timed out"):
        kit.send(p.a, data, kit.later())
    if kit.latching == LATCH_NONE:
        kit.expect(p.b, data, kit.later(), "a receive after a timed-out one (no latching)")
    else:
        room = kit.room(data)
        kit.latched("receive", "a receive after a timed-out one", kit.recv, p.b, room, kit.later())
        kit.latched("receive", "a second receive after it", kit.recv, p.b, room, kit.later())
    with _wrapped("a send from the side whose receive timed out"):
        kit.send(p.b, back, kit.later())
    kit.expect(p.a, back, kit.later(), "the other direction after a receive timed out")


@_rule(
    "send-timeout",
    "a send that cannot complete (the peer does not read) fails with ETIMEDOUT: at once for"
    " deadline 0 or one in the past, and not before a deadline in the future",
    applies=lambda kit: kit.send_blocks,
)
def _send_timeout(kit: _Kit) -> None:
    for when in (0, -1000, 50):
        p = kit.pair()
        assert p.a is not None
        exc, deadline = kit.fill(p.a, when)
        if exc.errno != errno.ETIMEDOUT:
            raise AssertionError(
                f"a send with deadline {deadline} that cannot complete:"
                f" expected ETIMEDOUT, got {exc!r}"
            )
        if deadline > 0:
            assert dill.now() >= deadline, f"ETIMEDOUT came at {dill.now()}, before {deadline}"


@_rule(
    "send-timeout-latching",
    "after a send times out, later sends fail with ECONNRESET; receiving is not affected",
    applies=lambda kit: kit.send_blocks and kit.latching != LATCH_NONE,
)
def _send_timeout_latching(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    exc, _ = kit.fill(p.a, 0)
    assert exc.errno == errno.ETIMEDOUT, f"a send that cannot complete raised {exc!r}"
    small = kit.payload(kit.sizes(3)[0], 50)
    kit.latched("send", "a send after a timed-out one", kit.send, p.a, small, 0)
    back = kit.payload(kit.sizes(12)[0], 51)
    with _wrapped("a send towards the side whose send timed out"):
        kit.send(p.b, back, kit.later())
    kit.expect(p.a, back, kit.later(), "receiving on the side whose send timed out")


@_rule(
    "recv-busy",
    "a receive while another coroutine receives on the socket fails with EBUSY at once and"
    " breaks nothing: the waiting receive gets the next data, later ones work, sending works",
)
def _recv_busy(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    first, second, back = (kit.payload(n, 60 + n) for n in kit.sizes(4, 5, 6))
    waiting = kit.go(kit.recv, p.b, kit.room(first), kit.later())
    assert not waiting.finished, f"a receive with nothing sent ended: {waiting.error!r}"
    kit.fails({errno.EBUSY}, "a second receive while one waits", kit.recv, p.b, 64, 0)
    with _wrapped("a send from the side with a waiting receive"):
        kit.send(p.b, back, kit.later())
    kit.expect(p.a, back, kit.later(), "the other direction while a receive waits")
    with _wrapped("a send to the waiting receive"):
        kit.send(p.a, first, kit.later())
    waiting.join(kit.later(), "the waiting receive")
    if waiting.error is not None:
        raise AssertionError(f"the waiting receive failed after the EBUSY: {waiting.error!r}")
    assert waiting.value == first, f"the waiting receive got {_short(waiting.value)}"
    with _wrapped("a send after the EBUSY"):
        kit.send(p.a, second, kit.later())
    kit.expect(p.b, second, kit.later(), "a receive after the EBUSY (EBUSY must not latch)")


@_rule(
    "send-busy",
    "a send while another coroutine's send waits fails with EBUSY at once and breaks nothing:"
    " the waiting send completes once the peer reads, later sends work",
    applies=lambda kit: kit.send_blocks,
)
def _send_busy(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    filler, fill = kit.start_filler(p.a)
    small = kit.payload(kit.sizes(3)[0], 70)
    kit.fails({errno.EBUSY}, "a second send while one waits", kit.send, p.a, small, 0)
    kit.drain_filler(filler, fill, p.b)
    with _wrapped("a send after the EBUSY (EBUSY must not latch)"):
        kit.send(p.a, small, kit.later())
    kit.expect(p.b, small, kit.later(), "the data of the send after the EBUSY")


@_rule(
    "recv-cancel",
    "hclose of a coroutine waiting in a receive makes the receive raise Canceled (ECANCELED);"
    " later receives then fail with ECONNRESET (latching) or work (no latching)",
)
def _recv_cancel(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    waiting = kit.go(kit.recv, p.b, 64, kit.later())
    assert not waiting.finished, f"a receive with nothing sent ended: {waiting.error!r}"
    waiting.close()
    exc = waiting.error
    if not (isinstance(exc, dill.Canceled) and exc.errno == errno.ECANCELED):
        raise AssertionError(f"the canceled receive raised {exc!r}, not Canceled")
    data = kit.payload(kit.sizes(8)[0], 80)
    with _wrapped("a send to the side whose receive was canceled"):
        kit.send(p.a, data, kit.later())
    if kit.latching == LATCH_NONE:
        kit.expect(p.b, data, kit.later(), "a receive after a canceled one (no latching)")
    else:
        room = kit.room(data)
        kit.latched("receive", "a receive after a canceled one", kit.recv, p.b, room, kit.later())


@_rule(
    "send-cancel",
    "hclose of a coroutine waiting in a send makes the send raise Canceled (ECANCELED); later"
    " sends then fail with ECONNRESET (latching)",
    applies=lambda kit: kit.send_blocks,
)
def _send_cancel(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None
    filler, _ = kit.start_filler(p.a)
    filler.close()
    exc = filler.error
    if not (isinstance(exc, dill.Canceled) and exc.errno == errno.ECANCELED):
        raise AssertionError(f"the canceled send raised {exc!r}, not Canceled")
    if kit.latching != LATCH_NONE:
        small = kit.payload(kit.sizes(3)[0], 90)
        kit.latched("send", "a send after a canceled one", kit.send, p.a, small, 0)


@_rule(
    "ready-when-canceled",
    "in a canceled coroutine, a send or receive that can complete at once still succeeds; one"
    " that has to wait raises Canceled",
)
def _ready_when_canceled(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    a, b = p.a, p.b
    data, out = kit.payload(kit.sizes(10)[0], 100), kit.payload(kit.sizes(11)[0], 101)
    with _wrapped("a send"):
        kit.send(a, data, kit.later())
    kit.pause()
    steps: list[Any] = []

    def canceled() -> None:
        with suppress(dill.Canceled):
            dill.msleep(-1)  # until hclose cancels this coroutine
        for step in (
            lambda: kit.recv(b, kit.room(data), kit.later()),
            lambda: kit.send(b, out, kit.later()),
            lambda: kit.recv(b, 64, kit.later()),
        ):
            try:
                steps.append(step())
            except OSError as exc:
                steps.append(exc)

    kit.go(canceled).close()
    received, sent, waited = steps
    if received != data:
        raise AssertionError(f"a receive of data already there, canceled: got {_short(received)}")
    if isinstance(sent, OSError):
        raise AssertionError(f"a send with room, in a canceled coroutine: {sent!r}")
    if not (isinstance(waited, dill.Canceled) and waited.errno == errno.ECANCELED):
        raise AssertionError(f"a receive that has to wait, canceled: got {_short(waited)}")
    kit.expect(a, out, kit.later(), "the data sent in the canceled coroutine")


@_rule(
    "done",
    "after done, sends and a second done fail with EPIPE; the peer receives everything sent"
    " before, then EPIPE for good; the other direction works on",
    applies=lambda kit: kit.done is not None,
)
def _done(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None and kit.done is not None
    first, second, back = (kit.payload(n, 110 + n) for n in kit.sizes(7, 3000, 9))
    with _wrapped("sends before done"):
        kit.send(p.a, first, kit.later())
        kit.send(p.a, second, kit.later())
    with _wrapped("done"):
        kit.done(p.a, kit.later())
    kit.fails({errno.EPIPE}, "a send after done", kit.send, p.a, first, kit.later())
    kit.fails({errno.EPIPE}, "a second done", kit.done, p.a, kit.later())
    kit.expect(p.b, first, kit.later(), "the first data sent before done")
    if kit.kind == "bsock":
        # All or nothing: the stream ends before the bytes asked for.
        kit.expect(p.b, second[:1000], kit.later(), "a part of the data sent before done")
        kit.fails(
            {errno.EPIPE},
            "a receive of more bytes than remain before the end",
            kit.recv,
            p.b,
            len(second),
            kit.later(),
        )
    else:
        kit.expect(p.b, second, kit.later(), "the last data sent before done")
        kit.fails({errno.EPIPE}, "a receive after the peer's done", kit.recv, p.b, 64, kit.later())
    kit.fails({errno.EPIPE}, "a later receive after the end", kit.recv, p.b, 64, kit.later())
    with _wrapped("a send towards the side that is done"):
        kit.send(p.b, back, kit.later())
    kit.expect(p.a, back, kit.later(), "receiving on the side that is done (half-close)")


@_rule(
    "peer-close",
    "once the peer's handle is closed, a waiting receive and every later one fail with EPIPE or"
    " ECONNRESET, and sends fail with ECONNRESET or EPIPE before long",
    applies=lambda kit: kit.peer_close_seen,
)
def _peer_close(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    ended = {errno.EPIPE, errno.ECONNRESET}
    waiting = kit.go(kit.recv, p.b, 64, kit.later())
    dill.hclose(p.a)
    p.a = None
    waiting.join(kit.later(), "a receive waiting when the peer closed")
    if not (isinstance(waiting.error, OSError) and waiting.error.errno in ended):
        raise AssertionError(
            f"a receive waiting when the peer closed: expected {_names(ended)},"
            f" got {waiting.error or _short(waiting.value)!r}"
        )
    kit.fails(ended, "a receive after the peer closed", kit.recv, p.b, 64, 0)
    chunk = kit.payload(kit.unit(), 120)
    for _ in range(_CLOG_LIMIT // len(chunk)):
        try:
            kit.send(p.b, chunk, kit.later())
        except OSError as exc:
            if exc.errno not in ended:
                raise AssertionError(
                    f"a send to a closed peer: expected {_names(ended)}, got {exc!r}"
                ) from None
            return
    raise AssertionError("sends to a closed peer go on succeeding")


@_rule(
    "wrong-handles",
    "every call on a closed handle fails with EBADF; a call of the other interface, and done"
    " or detach on a handle that is not of the protocol, fail with ENOTSUP",
)
def _wrong_handles(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None
    a = p.a
    if kit.kind == "bsock":
        kit.fails({errno.ENOTSUP}, "msend on a byte stream", dill.msend, a, b"x", 0)
        kit.fails({errno.ENOTSUP}, "mrecv on a byte stream", dill.mrecv, a, 1, 0)
        kit.fails({errno.ENOTSUP}, "hquery(msock_type)", dill.hquery, a, dill.msock_type)
    else:
        kit.fails({errno.ENOTSUP}, "bsend on a message socket", dill.bsend, a, b"x", 0)
        kit.fails({errno.ENOTSUP}, "brecv on a message socket", dill.brecv, a, 1, 0)
        kit.fails({errno.ENOTSUP}, "hquery(bsock_type)", dill.hquery, a, dill.bsock_type)
    ch = dill.chmake()
    try:
        if kit.done is not None:
            kit.fails({errno.ENOTSUP}, "done on a channel", kit.done, ch[0], kit.later())
        if kit.detach is not None:
            kit.fails({errno.ENOTSUP}, "detach on a channel", kit.detach, ch[0])
    finally:
        for h in ch:
            with suppress(OSError):
                dill.hclose(h)
    dill.hclose(a)
    p.a = None
    # a's number is free now, and nothing opens a handle before these calls.
    kit.fails({errno.EBADF}, "a send on a closed handle", kit.send, a, b"x", 0)
    kit.fails({errno.EBADF}, "a receive on a closed handle", kit.recv, a, 1, 0)
    kit.fails({errno.EBADF}, "hclose of a closed handle", dill.hclose, a)
    if kit.done is not None:
        kit.fails({errno.EBADF}, "done on a closed handle", kit.done, a, 0)
    if kit.detach is not None:
        kit.fails({errno.EBADF}, "detach of a closed handle", kit.detach, a)


@_rule(
    "einval",
    "receiving into a read-only buffer fails with EINVAL, and breaks nothing",
)
def _einval(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    if kit.kind == "bsock":
        kit.fails({errno.EINVAL}, "brecv_into(bytes)", dill.brecv_into, p.b, b"xx", 0)
        kit.fails({errno.EINVAL}, "brecvl([bytes])", dill.brecvl, p.b, [b"xx"], 0)
    else:
        kit.fails({errno.EINVAL}, "mrecv_into(bytes)", dill.mrecv_into, p.b, b"xx", 0)
        kit.fails({errno.EINVAL}, "mrecvl([bytes])", dill.mrecvl, p.b, [b"xx"], 0)
    data = kit.payload(kit.sizes(5)[0], 125)
    with _wrapped("a send"):
        kit.send(p.a, data, kit.later())
    kit.expect(p.b, data, kit.later(), "a receive after EINVAL")


@_rule(
    "hclose",
    "hclose never blocks (no other coroutine runs inside it), wakes a coroutine waiting on the"
    " handle with EBADF (which then touches nothing: a storage freed may serve a new socket"
    " already), and closes the whole stack below (no handle or fd left open)",
)
def _hclose(kit: _Kit) -> None:
    before = snapshot()
    p = kit.pair()
    assert p.a is not None and p.b is not None
    with _wrapped("a send left unread"):
        kit.send(p.b, kit.payload(kit.sizes(100)[0], 130), kit.later())
    waiting = kit.go(kit.recv, p.b, 64, kit.later())
    ran = [False]

    def bystander() -> None:
        dill.yield_()  # ready from now on: it runs as soon as anything waits
        ran[0] = True

    # On the other end, with send_blocks, a coroutine waits in a send.
    sending = kit.start_filler(p.a)[0] if kit.send_blocks else None
    other = kit.go(bystander)
    # Both ends closed before anything can run: the sender is not woken by
    # the peer's close first.
    for h in (p.b, p.a):
        assert h is not None
        try:
            dill.hclose(h)
        except OSError as exc:
            raise AssertionError(
                f"hclose raised {exc!r}: it must close at once (a blocking call inside"
                " close fails with ECANCELED, and an OSError from close leaves it open)"
            ) from None
        if ran[0]:
            raise AssertionError("another coroutine ran inside hclose: hclose waited")
    b, p.a, p.b = p.b, None, None
    kit.fails({errno.EBADF}, "hquery of a closed handle", dill.hquery, b, dill.bsock_type)
    # A new pair, before the woken calls run: a maker that reuses storages
    # (the _mem calls) gives it the storages just freed, which those calls
    # must then leave alone.
    fresh = kit.pair()
    for task, what in ((waiting, "a receive"), (sending, "a send")):
        if task is None:
            continue
        task.join(kit.later(), f"{what} waiting on a handle closed")
        error = task.error
        if not (isinstance(error, OSError) and error.errno == errno.EBADF):
            raise AssertionError(f"{what} waiting on a handle closed: got {error!r}, not EBADF")
    other.join(kit.later(), "a coroutine that yields")
    assert fresh.a is not None and fresh.b is not None
    for src, dst, seed in ((fresh.a, fresh.b, 135), (fresh.b, fresh.a, 136)):
        data = kit.payload(kit.sizes(6)[0], seed)
        with _wrapped("a send on a pair made after the hclose"):
            kit.send(src, data, kit.later())
        kit.expect(dst, data, kit.later(), "a pair made after the hclose, once the woken calls ran")
    for h in (fresh.a, fresh.b):
        dill.hclose(h)
    fresh.a = fresh.b = None
    problems = check_no_leaks(before)
    assert not problems, "after hclose of both ends: " + "; ".join(problems)


@_rule(
    "emsgsize",
    "a message longer than the receiving buffers fails with EMSGSIZE (mrecv, mrecv_into,"
    " mrecvl); then the receiving side is broken (latching) or the message is dropped and the"
    " next one arrives (no latching)",
    ("msock",),
)
def _emsgsize(kit: _Kit) -> None:
    size = 40
    for call, args in (
        ("mrecv", (size - 1,)),
        ("mrecv_into", (bytearray(size - 1),)),
        ("mrecvl", ([bytearray(1), size - 2],)),
    ):
        p = kit.pair()
        assert p.a is not None and p.b is not None
        big, after = kit.payload(size, 140), kit.payload(kit.sizes(5)[0], 141)
        with _wrapped("sends"):
            kit.send(p.a, big, kit.later())
            kit.send(p.a, after, kit.later())
        what = f"{call} with room for {size - 1} bytes of a {size}-byte message"
        kit.fails({errno.EMSGSIZE}, what, getattr(dill, call), p.b, *args, kit.later())
        if kit.latching == LATCH_NONE:
            kit.expect(p.b, after, kit.later(), f"the message after {call}'s EMSGSIZE")
        else:
            room = kit.room(after)
            what = f"a receive after {call}'s EMSGSIZE"
            kit.latched("receive", what, kit.recv, p.b, room, kit.later())


@_rule(
    "drop-message",
    "mrecvl with an empty list drops one whole message and returns its size; so does an int"
    " item of any size",
    ("msock",),
)
def _drop_message(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None
    dropped, also, kept = (kit.payload(n, 150 + n) for n in kit.sizes(300, 20, 4))
    with _wrapped("sends"):
        kit.send(p.a, dropped, kit.later())
        kit.send(p.a, also, kit.later())
        kit.send(p.a, kept, kit.later())
    with _wrapped("mrecvl([])"):
        size = dill.mrecvl(p.b, [], kit.later())
    assert size == len(dropped), f"mrecvl([]) returned {size}, not the size {len(dropped)}"
    with _wrapped("mrecvl([sys.maxsize])"):
        size = dill.mrecvl(p.b, [sys.maxsize], kit.later())
    assert size == len(also), f"mrecvl([sys.maxsize]) returned {size}, not {len(also)}"
    kit.expect(p.b, kept, kit.later(), "the message after the dropped ones")


@_rule(
    "detach",
    "detach returns the socket below and invalidates the handle; nothing is lost: what was sent"
    " and not yet received arrives in order over the socket below (reattached), unless the"
    " protocol's detach drains it",
    applies=lambda kit: kit.detach is not None,
)
def _detach(kit: _Kit) -> None:
    p = kit.pair()
    assert p.a is not None and p.b is not None and kit.detach is not None
    detach = kit.detach
    # The second is larger than a read-ahead buffer (16 KiB in greendill's
    # layers): the part read ahead must go back below, and the rest follow it.
    sent = [kit.payload(n, 160 + i) for i, n in enumerate(kit.sizes(20, 40000, 5, 7))]
    back = [kit.payload(n, 170 + i) for i, n in enumerate(kit.sizes(6, 8))]
    with _wrapped("sends before detaching"):
        for data in sent[:3]:
            kit.send(p.a, data, kit.later())
        kit.send(p.b, back[0], kit.later())
    # The receiver reads the first: a layer that reads ahead has the rest
    # in its buffer now, and must give it back.
    kit.expect(p.b, sent[0], kit.later(), "the first data")
    kit.pause()

    def take_apart(h: int) -> int:
        below = detach(h)
        if below != h:
            kit.fails({errno.EBADF}, "a send on the detached handle", kit.send, h, b"x", 0)
        return below

    # Both at once: a detach with a closing handshake waits for the peer's.
    ends = [kit.go(take_apart, p.a), kit.go(take_apart, p.b)]
    p.a = p.b = None
    low = kit.pair_of(None, None)  # the sockets below, for cleanup to close
    for end in ends:
        end.join(kit.later(), "detach")
    low.a, low.b = (end.value if isinstance(end.value, int) else None for end in ends)
    for end in ends:
        if end.error is not None:
            raise AssertionError(f"detach failed: {end.error!r}")
    a, b = ends[0].value, ends[1].value
    for h in (a, b):
        if not (_answers(h, dill.bsock_type) or _answers(h, dill.msock_type)):
            raise AssertionError(f"detach returned {h!r}, not the handle of a socket")
    if kit.reattach is None:
        return
    low.a = low.b = None  # reattaching takes them over
    a = low.a = kit.reattach(a)
    b = low.b = kit.reattach(b)
    if not kit.detach_drains:
        for i, data in enumerate(sent[1:3]):
            kit.expect(b, data, kit.later(), f"data number {i + 2}, sent before detaching")
        kit.expect(a, back[0], kit.later(), "the data sent the other way before detaching")
    with _wrapped("sends after reattaching"):
        kit.send(a, sent[3], kit.later())
        kit.send(b, back[1], kit.later())
    kit.expect(b, sent[3], kit.later(), "data sent after reattaching")
    kit.expect(a, back[1], kit.later(), "data sent the other way after reattaching")


def _answers(h: int, type: object) -> bool:
    try:
        dill.hquery(h, type)
    except OSError:
        return False
    return True


@_rule(
    "detach-latched",
    "detach of a socket whose receiving side is broken fails with ECONNRESET and closes it, with"
    " the stack below",
    applies=lambda kit: kit.detach is not None and kit.latching != LATCH_NONE,
)
def _detach_latched(kit: _Kit) -> None:
    before = snapshot()
    p = kit.pair()
    assert p.a is not None and p.b is not None and kit.detach is not None
    kit.fails({errno.ETIMEDOUT}, "a receive with deadline 0", kit.recv, p.b, 64, 0)
    b, p.b = p.b, None
    kit.fails({errno.ECONNRESET}, "detach after a receive timed out", kit.detach, b)
    kit.fails({errno.EBADF}, "hquery after the failed detach", dill.hquery, b, dill.msock_type)
    a, p.a = p.a, None
    dill.hclose(a)
    problems = check_no_leaks(before)
    assert not problems, "after the failed detach and hclose of the peer: " + "; ".join(problems)


# The entry points. --------------------------------------------------------------


def _run(kit: _Kit, only: Optional[Collection[str]], skip: Collection[str]) -> None:
    rules = [r for r in _RULES if kit.kind in r.kinds]
    known = {r.id for r in rules}
    unknown = (set(only or ()) | set(skip)) - known
    if unknown:
        raise ValueError(f"no such {kit.kind} rule: {sorted(unknown)}; the rules: {sorted(known)}")
    if kit.latching not in (LATCH_ANY, LATCH_DIRECTION, LATCH_NONE):
        raise ValueError(
            f"latching is one of LATCH_ANY, LATCH_DIRECTION, LATCH_NONE: {kit.latching!r}"
        )
    failures = []
    for r in rules:
        if (only is not None and r.id not in only) or r.id in skip or not r.applies(kit):
            continue
        try:
            r.check(kit)
        except AssertionError as exc:
            failures.append(f"[{r.id}] {r.text}:\n    {exc}")
        except Exception as exc:  # any other failure is the rule's too
            failures.append(f"[{r.id}] {r.text}:\n    unexpected {exc!r}")
        finally:
            kit.cleanup()
    if failures:
        raise AssertionError(
            f"{kit.kind} contract broken ({len(failures)} rules):\n" + "\n".join(failures)
        )


def check_bsock(
    maker: Maker,
    *,
    done: Optional[Callable[[int, int], None]] = None,
    detach: Optional[Callable[[int], int]] = None,
    reattach: Optional[Callable[[int], int]] = None,
    latching: str = LATCH_DIRECTION,
    send_blocks: bool = True,
    peer_close_seen: bool = True,
    volume: int = 2 << 20,
    patience: int = 5000,
    settle: int = 20,
    only: Optional[Collection[str]] = None,
    skip: Collection[str] = (),
) -> None:
    """Check that a pair of byte-stream sockets keeps the byte-stream contract.

    Runs every rule that applies on fresh pairs from maker, and closes them:
    transfer, bulk, ready-now, recv-timeout, recv-timeout-latching,
    send-timeout, send-timeout-latching, recv-busy, send-busy, recv-cancel,
    send-cancel, ready-when-canceled, done, peer-close, wrong-handles,
    einval, hclose, detach, detach-latched (docs/layers.md words each).

    Parameters:
        maker: returns a new connected pair of byte-stream handles (a, b).
            It must leave nothing else open: the hclose rule checks that
            closing a and b closes every handle and fd made since.
        done: the protocol's half-close, called as done(s, deadline)
            (ipc_done, tcp_done); None if it has none.
        detach: takes the protocol off a socket and returns the socket
            below, called as detach(s); None if it has none.
        reattach: puts the protocol back on a socket that detach returned
            (reattach(s) -> handle), so that the kit can check that nothing
            sent before detaching is lost.
        latching: LATCH_DIRECTION (TCP, IPC), LATCH_ANY or LATCH_NONE.
        send_blocks: whether a send waits when the peer does not read
            (False skips the rules that need a blocked send).
        peer_close_seen: whether closing one end fails the other's calls.
        volume: how many bytes the bulk rule moves.
        patience: ms that a wait which must end may take.
        settle: ms after which data sent is known to have arrived.
        only: run only these rules (by id).
        skip: skip these rules (by id), for a known bug.
    Returns: None.
    Errors:
        AssertionError: a rule is broken; the message names every broken
            rule and what was seen.
        ValueError: an unknown rule id or latching.
    """
    kit = _Kit(
        "bsock",
        maker,
        done=done,
        detach=detach,
        reattach=reattach,
        latching=latching,
        send_blocks=send_blocks,
        peer_close_seen=peer_close_seen,
        volume=volume,
        patience=patience,
        settle=settle,
    )
    _run(kit, only, skip)


def check_msock(
    maker: Maker,
    *,
    done: Optional[Callable[[int, int], None]] = None,
    detach: Optional[Callable[[int], int]] = None,
    reattach: Optional[Callable[[int], int]] = None,
    detach_drains: bool = False,
    latching: str = LATCH_DIRECTION,
    send_blocks: bool = True,
    peer_close_seen: bool = True,
    max_message: int = 1 << 20,
    min_message: int = 0,
    alphabet: Optional[bytes] = None,
    volume: int = 2 << 20,
    patience: int = 5000,
    settle: int = 20,
    only: Optional[Collection[str]] = None,
    skip: Collection[str] = (),
) -> None:
    """Check that a pair of message sockets keeps the message contract.

    Runs every rule that applies on fresh pairs from maker, and closes them:
    the byte-stream rules (see check_bsock) with messages, and emsgsize and
    drop-message.

    Parameters:
        maker: returns a new connected pair of message-socket handles (a, b);
            it must leave nothing else open.
        done: the protocol's "no more messages" call, done(s, deadline)
            (term_done); None if it has none.
        detach: takes the protocol off a socket and returns the socket
            below, detach(s); None if it has none.
        reattach: puts the protocol back on what detach returned.
        detach_drains: whether detach drops the messages still on their way
            (TERM's closing handshake) rather than leaving them below.
        latching: LATCH_DIRECTION (TERM over PREFIX), LATCH_ANY (PREFIX,
            SUFFIX) or LATCH_NONE (UDP).
        send_blocks: whether a send waits when the peer does not read
            (False for datagrams: the rules that need a blocked send are
            skipped, and the bulk transfer is small).
        peer_close_seen: whether closing one end fails the other's calls
            (False for UDP).
        volume: how many bytes the bulk rule moves (at most 32 KiB when
            sends do not block).
        max_message: the longest message the pair carries (the kit sends
            messages up to it, capped at 1 MiB).
        min_message: the shortest (1 where the empty message is reserved).
        alphabet: the bytes messages may hold (None: any), for a protocol
            that reserves some (SUFFIX's delimiter).
        patience: ms that a wait which must end may take.
        settle: ms after which data sent is known to have arrived.
        only: run only these rules (by id).
        skip: skip these rules (by id), for a known bug.
    Returns: None.
    Errors:
        AssertionError: a rule is broken; the message names every broken
            rule and what was seen.
        ValueError: an unknown rule id or latching, or an empty alphabet.
    """
    kit = _Kit(
        "msock",
        maker,
        done=done,
        detach=detach,
        reattach=reattach,
        detach_drains=detach_drains,
        latching=latching,
        send_blocks=send_blocks,
        peer_close_seen=peer_close_seen,
        max_message=max_message,
        min_message=min_message,
        alphabet=alphabet,
        volume=volume,
        patience=patience,
        settle=settle,
    )
    _run(kit, only, skip)
