"""Tests of greendill's channels: chmake, chmake_mem, chsend, chrecv, chdone, choose.

The semantics are libdill's (reference section 4, Channels): unbuffered,
bidirectional rendezvous, FIFO service, chdone as a half-close, hclose of
both ends waking every waiter with EPIPE, choose with strict priority by
clause index. Every errno the reference lists is reached by a test that
names it, in the reference's order; the ones that cannot happen in Python
(EINVAL, EMSGSIZE for chsend/chrecv/choose; EMFILE, ENFILE, ENOMEM) have a
test that shows why.

Timing: deadlines are only ever checked from below (a call that times out
did not return before its deadline); no test asserts an upper bound on wall
time. Ordering is checked with logs, driven by the scheduler's FIFO ready
queue (dill.yield_), not by sleeping.

The last part is a hypothesis state machine that runs several coroutines
("actors") against one or two channels and compares every outcome with a
small model of libdill's channels.
"""

from __future__ import annotations

import contextlib
import errno
import time
from typing import Any, Callable, Optional

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

import greendill as dill
from greendill.testing import snapshot

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


class Handles:
    """What a test opened; closed at teardown (bundles first, then the rest).

    A test that closes a handle itself says so with close(), so that the
    teardown does not close the number again.
    """

    def __init__(self) -> None:
        self.bundles: list[int] = []
        self.others: list[int] = []

    def chmake(self) -> tuple[int, int]:
        ch0, ch1 = dill.chmake()
        self.others += [ch0, ch1]
        return ch0, ch1

    def chmake_mem(self, mem: dill.chstorage) -> tuple[int, int]:
        ch0, ch1 = dill.chmake_mem(mem)
        self.others += [ch0, ch1]
        return ch0, ch1

    def go(self, fn: Callable[..., Any], *args: Any) -> int:
        h = dill.go(fn, *args)
        self.bundles.append(h)
        return h

    def bundle(self) -> int:
        h = dill.bundle()
        self.bundles.append(h)
        return h

    def close(self, h: int) -> None:
        """hclose(h) in the test itself (it is then not closed at teardown)."""
        if h in self.bundles:
            self.bundles.remove(h)
        else:
            self.others.remove(h)
        dill.hclose(h)

    def close_all(self) -> None:
        for h in reversed(self.bundles):
            dill.hclose(h)
        for h in reversed(self.others):
            dill.hclose(h)
        self.bundles = []
        self.others = []


@pytest.fixture
def h() -> Any:
    handles = Handles()
    try:
        yield handles
    finally:
        handles.close_all()


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, ...]:
    """Call fn: ("ok", result), or ("err", errno, exception) for an OSError."""
    try:
        return ("ok", fn(*args))
    except OSError as exc:
        return ("err", exc.errno, exc)


def in_coroutine(h: Handles, log: list[Any], fn: Callable[..., Any], *args: Any) -> int:
    """Run fn(*args) in a new coroutine; its outcome() is appended to log."""

    def body() -> None:
        log.append(outcome(fn, *args))

    return h.go(body)


def settle(times: int = 4) -> None:
    """Let every ready coroutine run, and those they make ready (FIFO queue)."""
    for _ in range(times):
        dill.yield_()


def errnos(log: list[Any]) -> list[Any]:
    """The log with exceptions reduced to their errno."""
    return [entry[:2] if entry[0] == "err" else entry for entry in log]


class Obj:
    """A plain object, compared by identity."""


# ---------------------------------------------------------------------------
# 1. Basics
# ---------------------------------------------------------------------------


def test_value_sent_on_ch0_is_received_on_ch1(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch1)
    dill.chsend(ch0, "hello")
    settle()
    assert log == [("ok", "hello")]


def test_value_sent_on_ch1_is_received_on_ch0(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch0)
    dill.chsend(ch1, "hello")
    settle()
    assert log == [("ok", "hello")]


def test_value_is_never_received_on_the_sending_end(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chsend, ch0, "x")
    # A sender waits on ch0; a receiver on ch0 itself does not meet it.
    with pytest.raises(TimeoutError):
        dill.chrecv(ch0, 0)
    assert log == []
    assert dill.chrecv(ch1, 0) == "x"
    settle()
    assert log == [("ok", None)]


def test_a_sender_on_ch0_and_a_receiver_on_ch0_do_not_meet(h: Handles) -> None:
    ch0, _ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch0)
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "x", 0)
    settle()
    assert log == []  # the receiver on ch0 still waits


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        "",
        b"\x00" * 100_000,
        [1, [2]],
        {"a": 1},
        Obj(),
        ValueError("carried, not raised"),
        len,
    ],
    ids=[
        "None",
        "zero",
        "empty-str",
        "big-bytes",
        "list",
        "dict",
        "object",
        "exception",
        "function",
    ],
)
def test_any_python_object_is_carried_with_its_identity(h: Handles, value: Any) -> None:
    ch0, ch1 = h.chmake()
    got: list[Any] = []
    in_coroutine(h, got, dill.chrecv, ch1)
    dill.chsend(ch0, value)
    settle()
    assert got[0][0] == "ok"
    assert got[0][1] is value


def test_value_is_carried_with_its_identity_from_a_waiting_sender(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    value = Obj()
    h.go(dill.chsend, ch1, value)
    assert dill.chrecv(ch0) is value


def test_waiting_senders_are_served_fifo(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def sender(v: int) -> None:
        dill.chsend(ch0, v)
        log.append(("sent", v))

    for v in range(5):
        h.go(sender, v)
    assert [dill.chrecv(ch1, 0) for _ in range(5)] == [0, 1, 2, 3, 4]
    settle()
    assert log == [("sent", v) for v in range(5)]


def test_waiting_receivers_are_served_fifo(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def receiver(name: str) -> None:
        log.append((name, dill.chrecv(ch1)))

    for name in "abcde":
        h.go(receiver, name)
    for v in range(5):
        dill.chsend(ch0, v, 0)
    settle()
    assert log == [("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 4)]


def test_chsend_to_waiting_receiver_does_not_block_the_sender(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def receiver() -> None:
        log.append(("received", dill.chrecv(ch1)))

    h.go(receiver)
    log.append("sending")
    dill.chsend(ch0, "v")
    log.append("sent")  # before the receiver has run
    assert log == ["sending", "sent"]
    settle()
    assert log == ["sending", "sent", ("received", "v")]


def test_chsend_to_waiting_receiver_does_not_block_a_sending_coroutine(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def receiver() -> None:
        log.append(("received", dill.chrecv(ch1)))

    def sender() -> None:
        dill.chsend(ch0, "v")
        log.append("sender goes on")
        dill.yield_()
        log.append("sender after yield")

    h.go(receiver)
    h.go(sender)
    settle()
    assert log == ["sender goes on", ("received", "v"), "sender after yield"]


def test_chrecv_from_waiting_sender_does_not_block_the_receiver(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def sender() -> None:
        dill.chsend(ch0, "v")
        log.append("sender resumed")

    h.go(sender)
    assert dill.chrecv(ch1) == "v"
    log.append("receiver goes on")
    settle()
    assert log == ["receiver goes on", "sender resumed"]


@pytest.mark.parametrize("deadline", [0, "past"])
def test_chrecv_deadline_0_or_past_without_sender_etimedout_at_once(
    h: Handles, deadline: Any
) -> None:
    _ch0, ch1 = h.chmake()
    log: list[Any] = []

    def other() -> None:
        dill.yield_()
        log.append("other ran")

    h.go(other)  # ready: it would run if chrecv let others run
    dl = dill.now() - 1000 if deadline == "past" else 0
    with pytest.raises(TimeoutError) as info:
        dill.chrecv(ch1, dl)
    assert info.value.errno == errno.ETIMEDOUT
    assert log == []  # ETIMEDOUT at once, without giving way
    settle()
    assert log == ["other ran"]


@pytest.mark.parametrize("deadline", [0, "past"])
def test_chsend_deadline_0_or_past_without_receiver_etimedout_at_once(
    h: Handles, deadline: Any
) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def other() -> None:
        dill.yield_()
        log.append("other ran")

    h.go(other)
    dl = dill.now() - 1000 if deadline == "past" else 0
    with pytest.raises(TimeoutError) as info:
        dill.chsend(ch0, "x", dl)
    assert info.value.errno == errno.ETIMEDOUT
    assert log == []
    # Nothing was left behind: the value is not delivered later.
    with pytest.raises(TimeoutError):
        dill.chrecv(ch1, 0)
    settle()
    assert log == ["other ran"]


def test_deadline_in_the_past_still_succeeds_with_a_waiting_peer(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    h.go(dill.chsend, ch0, "a")
    assert dill.chrecv(ch1, dill.now() - 1000) == "a"
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch1)
    dill.chsend(ch0, "b", dill.now() - 1000)
    settle()
    assert log == [("ok", "b")]


def test_chrecv_future_deadline_times_out_not_before_it(h: Handles) -> None:
    _ch0, ch1 = h.chmake()
    deadline = dill.now() + 30
    with pytest.raises(TimeoutError):
        dill.chrecv(ch1, deadline)
    assert dill.now() >= deadline


def test_chsend_future_deadline_times_out_not_before_it(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    deadline = dill.now() + 30
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "x", deadline)
    assert dill.now() >= deadline
    # The timed-out send left nothing behind.
    with pytest.raises(TimeoutError):
        dill.chrecv(ch1, 0)


def test_future_deadline_in_a_coroutine_times_out_not_before_it(h: Handles) -> None:
    _ch0, ch1 = h.chmake()
    log: list[Any] = []
    deadline = dill.now() + 20

    def body() -> None:
        try:
            dill.chrecv(ch1, deadline)
        except TimeoutError:
            log.append(("timeout", dill.now() >= deadline))

    b = h.go(body)
    dill.bundle_wait(b, -1)
    assert log == [("timeout", True)]


def test_peer_before_future_deadline_completes_the_operation(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch1, dill.now() + 60_000)
    dill.chsend(ch0, "in time", 0)
    settle()
    assert log == [("ok", "in time")]


# ---------------------------------------------------------------------------
# 2. Errors, in the reference's order
# ---------------------------------------------------------------------------

# chmake / chmake_mem: EMFILE, ENFILE, ENOMEM (never raised: the docstring says
# Python raises MemoryError), EINVAL (NULL storage), ECANCELED; EBUSY (rule 12).


def test_chmake_gives_two_distinct_nonnegative_int_handles(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    assert type(ch0) is int and type(ch1) is int
    assert ch0 >= 0 and ch1 >= 0 and ch0 != ch1


def test_chmake_emfile_enfile_enomem_unreachable_many_channels(h: Handles) -> None:
    # greendill's handle table has no limit: no EMFILE/ENFILE, and memory
    # exhaustion is Python's MemoryError, not ENOMEM.
    for _ in range(300):
        h.chmake()


def test_chmake_mem_einval_for_none(h: Handles) -> None:
    with pytest.raises(OSError) as info:
        dill.chmake_mem(None)  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL


def test_chmake_ecanceled_in_a_canceled_coroutine(h: Handles) -> None:
    _ch0, ch1 = h.chmake()
    log: list[Any] = []

    def body() -> None:
        try:
            dill.chrecv(ch1)
        except dill.Canceled:
            log.append("canceled")
        log.append(outcome(dill.chmake))

    b = h.go(body)
    h.close(b)
    assert log[0] == "canceled"
    assert log[1][:2] == ("err", errno.ECANCELED)
    assert isinstance(log[1][2], dill.Canceled)


def test_chmake_mem_ecanceled_in_a_canceled_coroutine_leaves_storage_free(h: Handles) -> None:
    _ch0, ch1 = h.chmake()
    mem = dill.chstorage()
    log: list[Any] = []

    def body() -> None:
        with contextlib.suppress(dill.Canceled):
            dill.chrecv(ch1)
        log.append(outcome(dill.chmake_mem, mem))

    b = h.go(body)
    h.close(b)
    assert log[0][:2] == ("err", errno.ECANCELED)
    assert isinstance(log[0][2], dill.Canceled)
    h.chmake_mem(mem)  # not EBUSY: the failed call did not take it


def test_chmake_mem_ebusy_while_both_ends_are_open(h: Handles) -> None:
    mem = dill.chstorage()
    h.chmake_mem(mem)
    with pytest.raises(OSError) as info:
        dill.chmake_mem(mem)
    assert info.value.errno == errno.EBUSY


def test_chmake_mem_ebusy_while_one_end_is_still_open(h: Handles) -> None:
    mem = dill.chstorage()
    ch0, _ch1 = h.chmake_mem(mem)
    h.close(ch0)
    with pytest.raises(OSError) as info:
        dill.chmake_mem(mem)
    assert info.value.errno == errno.EBUSY


def test_chmake_mem_typeerror_for_wrong_type(h: Handles) -> None:
    with pytest.raises(TypeError):
        dill.chmake_mem(dill.bundle_storage())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.chmake_mem(144)  # type: ignore[arg-type]


def test_chmake_mem_reuse_after_both_ends_closed_gives_a_fresh_channel(h: Handles) -> None:
    mem = dill.chstorage()
    ch0, ch1 = h.chmake_mem(mem)
    dill.chdone(ch0)
    dill.chdone(ch1)
    h.close(ch0)
    h.close(ch1)
    ch0, ch1 = h.chmake_mem(mem)
    # Not done any more, in either direction, and it carries values.
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch1)
    in_coroutine(h, log, dill.chrecv, ch0)
    dill.chsend(ch0, "a", 0)
    dill.chsend(ch1, "b", 0)
    settle()
    assert log == [("ok", "a"), ("ok", "b")]


def test_chmake_mem_channel_works_like_chmake(h: Handles) -> None:
    ch0, ch1 = h.chmake_mem(dill.chstorage())
    h.go(dill.chsend, ch1, "x")
    assert dill.chrecv(ch0, 0) == "x"


# chsend / chrecv: EBADF, ECANCELED, EINVAL, EMSGSIZE, ENOTSUP, EPIPE, ETIMEDOUT.


@pytest.mark.parametrize("op", ["chsend", "chrecv"])
def test_chsend_chrecv_ebadf_for_a_closed_handle(h: Handles, op: str) -> None:
    ch0, _ch1 = h.chmake()
    h.close(ch0)
    with pytest.raises(OSError) as info:
        if op == "chsend":
            dill.chsend(ch0, "x", 0)
        else:
            dill.chrecv(ch0, 0)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize("op", ["chsend", "chrecv"])
def test_chsend_chrecv_ebadf_for_a_never_opened_number(h: Handles, op: str) -> None:
    for bad in (10**6, -1):
        with pytest.raises(OSError) as info:
            if op == "chsend":
                dill.chsend(bad, "x", 0)
            else:
                dill.chrecv(bad, 0)
        assert info.value.errno == errno.EBADF


def test_chsend_ecanceled_when_bundle_closed_while_blocked(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(h, log, dill.chsend, ch0, "x")
    h.close(b)
    assert log[0][:2] == ("err", errno.ECANCELED)
    assert isinstance(log[0][2], dill.Canceled)
    # The canceled sender offers nothing any more.
    with pytest.raises(TimeoutError):
        dill.chrecv(ch1, 0)


def test_chrecv_ecanceled_when_bundle_closed_while_blocked(h: Handles) -> None:
    ch0, _ch1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(h, log, dill.chrecv, ch0)
    h.close(b)
    assert log[0][:2] == ("err", errno.ECANCELED)
    assert isinstance(log[0][2], dill.Canceled)


def test_chsend_einval_unreachable_none_value_is_sent(h: Handles) -> None:
    # C's EINVAL is for val == NULL with len > 0; None is just a value.
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch1)
    dill.chsend(ch0, None, 0)
    settle()
    assert log == [("ok", None)]


def test_chsend_chrecv_emsgsize_unreachable_values_of_any_size_meet(h: Handles) -> None:
    # C fails both sides with EMSGSIZE when the sizes differ; objects have no size.
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    for _ in range(3):
        in_coroutine(h, log, dill.chrecv, ch1)
    for value in (b"", b"x" * 1000, ("a", 1, None)):
        dill.chsend(ch0, value, 0)
    settle()
    assert log == [("ok", b""), ("ok", b"x" * 1000), ("ok", ("a", 1, None))]


@pytest.mark.parametrize("op", ["chsend", "chrecv"])
def test_chsend_chrecv_enotsup_for_a_bundle_handle(h: Handles, op: str) -> None:
    b = h.bundle()
    with pytest.raises(OSError) as info:
        if op == "chsend":
            dill.chsend(b, "x", 0)
        else:
            dill.chrecv(b, 0)
    assert info.value.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)


def test_chsend_epipe_after_chdone_on_same_end(h: Handles) -> None:
    ch0, _ch1 = h.chmake()
    dill.chdone(ch0)
    for deadline in (0, -1):
        with pytest.raises(BrokenPipeError) as info:
            dill.chsend(ch0, "x", deadline)
        assert info.value.errno == errno.EPIPE


def test_chrecv_epipe_after_chdone_on_other_end(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    dill.chdone(ch0)
    for deadline in (0, -1):
        with pytest.raises(BrokenPipeError) as info:
            dill.chrecv(ch1, deadline)
        assert info.value.errno == errno.EPIPE


def test_chsend_epipe_even_with_a_waiting_receiver_on_the_other_direction(h: Handles) -> None:
    ch0, _ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch0)  # waits on the ch1 -> ch0 direction
    dill.chdone(ch0)
    with pytest.raises(BrokenPipeError):
        dill.chsend(ch0, "x", 0)
    settle()
    assert log == []  # untouched


@pytest.mark.parametrize("op", ["chsend", "chrecv"])
def test_chsend_chrecv_etimedout_with_deadline_0_and_no_peer(h: Handles, op: str) -> None:
    ch0, ch1 = h.chmake()
    with pytest.raises(TimeoutError) as info:
        if op == "chsend":
            dill.chsend(ch0, "x", 0)
        else:
            dill.chrecv(ch1, 0)
    assert info.value.errno == errno.ETIMEDOUT


@pytest.mark.parametrize("op", ["chsend", "chrecv"])
def test_chsend_chrecv_typeerror_for_a_non_int_handle(h: Handles, op: str) -> None:
    for bad in ("0", None, [0]):
        with pytest.raises(TypeError):
            if op == "chsend":
                dill.chsend(bad, "x", 0)  # type: ignore[arg-type]
            else:
                dill.chrecv(bad, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("op", ["chsend", "chrecv", "chdone"])
def test_typeerror_for_a_float_handle_equal_to_an_open_handle(h: Handles, op: str) -> None:
    # Rules 2 and 5: handles are ints; a float is the wrong type, even one
    # that compares equal to an open handle's number.
    ch0, ch1 = h.chmake()
    # A peer waits, so that a call that took the float for the int would succeed.
    if op == "chsend":
        h.go(dill.chrecv, ch1)
    elif op == "chrecv":
        h.go(dill.chsend, ch0, "x")
    with pytest.raises(TypeError):
        if op == "chsend":
            dill.chsend(float(ch0), "y", 0)  # type: ignore[arg-type]
        elif op == "chrecv":
            dill.chrecv(float(ch1), 0)  # type: ignore[arg-type]
        else:
            dill.chdone(float(ch0))  # type: ignore[arg-type]


def test_chdone_and_choose_typeerror_for_a_non_int_handle(h: Handles) -> None:
    with pytest.raises(TypeError):
        dill.chdone("0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.choose([dill.chclause(dill.CHRECV, "0")], 0)  # type: ignore[arg-type]


def test_errors_name_the_function_and_have_the_builtin_subclass(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    dill.chdone(ch0)
    cases = [
        (lambda: dill.chsend(ch1, "x", 0), "chsend", TimeoutError),
        (lambda: dill.chrecv(ch1, 0), "chrecv", BrokenPipeError),
        (lambda: dill.chdone(ch0), "chdone", BrokenPipeError),
        (lambda: dill.choose([], 0), "choose", TimeoutError),
        (lambda: dill.chmake_mem(None), "chmake_mem", OSError),  # type: ignore[arg-type]
    ]
    for call, function, cls in cases:
        with pytest.raises(cls) as info:
            call()
        assert function in str(info.value)


# chdone: EBADF, ENOTSUP, EPIPE.


def test_chdone_ebadf_for_a_closed_or_never_opened_handle(h: Handles) -> None:
    ch0, _ch1 = h.chmake()
    h.close(ch0)
    for bad in (ch0, 10**6):
        with pytest.raises(OSError) as info:
            dill.chdone(bad)
        assert info.value.errno == errno.EBADF


def test_chdone_enotsup_for_a_bundle_handle(h: Handles) -> None:
    b = h.bundle()
    with pytest.raises(OSError) as info:
        dill.chdone(b)
    assert info.value.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)


def test_chdone_epipe_on_second_call_on_same_end(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    dill.chdone(ch0)
    with pytest.raises(BrokenPipeError) as info:
        dill.chdone(ch0)
    assert info.value.errno == errno.EPIPE
    dill.chdone(ch1)  # the other end is independent


def test_chdone_wakes_blocked_senders_on_that_end_with_epipe(h: Handles) -> None:
    ch0, _ch1 = h.chmake()
    log: list[Any] = []
    for v in range(3):
        in_coroutine(h, log, dill.chsend, ch0, v)
    dill.chdone(ch0)
    settle()
    assert errnos(log) == [("err", errno.EPIPE)] * 3


def test_chdone_wakes_blocked_receivers_on_the_other_end_with_epipe(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    for _ in range(3):
        in_coroutine(h, log, dill.chrecv, ch1)
    dill.chdone(ch0)
    settle()
    assert errnos(log) == [("err", errno.EPIPE)] * 3
    assert all(isinstance(entry[2], BrokenPipeError) for entry in log)


def test_chdone_does_not_wake_receivers_of_the_other_direction(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, ch0)
    dill.chdone(ch0)
    settle()
    assert log == []
    dill.chsend(ch1, "still works", 0)
    settle()
    assert log == [("ok", "still works")]


def test_chdone_does_not_wake_senders_of_the_other_direction(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chsend, ch1, "still works")
    dill.chdone(ch0)
    settle()
    assert log == []
    assert dill.chrecv(ch0, 0) == "still works"
    settle()
    assert log == [("ok", None)]


def test_chdone_other_direction_keeps_working_and_just_times_out(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    dill.chdone(ch0)
    with pytest.raises(TimeoutError):
        dill.chsend(ch1, "x", 0)
    with pytest.raises(TimeoutError):
        dill.chrecv(ch0, 0)
    h.go(dill.chsend, ch1, "y")
    assert dill.chrecv(ch0, 0) == "y"


def test_chdone_works_in_a_canceled_coroutine(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def body() -> None:
        with contextlib.suppress(dill.Canceled):
            dill.chrecv(ch0)
        log.append(outcome(dill.chdone, ch0))

    b = h.go(body)
    h.close(b)
    assert log == [("ok", None)]
    with pytest.raises(BrokenPipeError):
        dill.chrecv(ch1, 0)


# hclose of channel ends.


def test_hclose_one_end_wakes_no_receiver_on_the_other_end(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    deadline = dill.now() + 20

    def body() -> None:
        try:
            log.append(("ok", dill.chrecv(ch1, deadline)))
        except OSError as exc:
            log.append(("err", exc.errno, dill.now() >= deadline))

    b = h.go(body)
    h.close(ch0)
    settle()
    assert log == []  # still blocked
    dill.bundle_wait(b, -1)
    assert log == [("err", errno.ETIMEDOUT, True)]


def test_hclose_one_end_wakes_no_waiter_on_that_same_end(h: Handles) -> None:
    ch0, _ch1 = h.chmake()
    log: list[Any] = []
    deadline = dill.now() + 20
    b1 = in_coroutine(h, log, dill.chrecv, ch0, deadline)
    b2 = in_coroutine(h, log, dill.chsend, ch0, "x", deadline)
    h.close(ch0)
    settle()
    assert log == []
    dill.bundle_wait(b1, -1)
    dill.bundle_wait(b2, -1)
    assert errnos(log) == [("err", errno.ETIMEDOUT)] * 2


def test_hclose_both_ends_wakes_every_waiter_with_epipe(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    # Direction ch0 -> ch1: two receivers on ch1. Direction ch1 -> ch0: two senders on ch1.
    in_coroutine(h, log, dill.chrecv, ch1)
    in_coroutine(h, log, dill.chrecv, ch1)
    in_coroutine(h, log, dill.chsend, ch1, "a")
    in_coroutine(h, log, dill.chsend, ch1, "b")
    chose: list[Any] = []
    in_coroutine(h, chose, dill.choose, [dill.chclause(dill.CHRECV, ch1)])
    settle()
    assert log == [] and chose == []
    h.close(ch0)
    settle()
    assert log == [] and chose == []
    h.close(ch1)
    settle()
    assert errnos(log) == [("err", errno.EPIPE)] * 4
    assert errnos(chose) == [("err", errno.EPIPE)]
    assert chose[0][2].index == 0  # the choose's failing clause


def test_hclose_both_ends_after_chdone_wakes_waiters_of_the_open_direction(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    dill.chdone(ch0)
    in_coroutine(h, log, dill.chrecv, ch0)  # the ch1 -> ch0 direction still works
    h.close(ch1)
    settle()
    assert log == []
    h.close(ch0)
    settle()
    assert errnos(log) == [("err", errno.EPIPE)]


def test_hclose_closed_end_ebadf_and_every_use_of_it_ebadf(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    h.close(ch0)
    for call in (
        lambda: dill.hclose(ch0),
        lambda: dill.chsend(ch0, "x", 0),
        lambda: dill.chrecv(ch0, 0),
        lambda: dill.chdone(ch0),
    ):
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        dill.choose([dill.chclause(dill.CHRECV, ch0)], 0)
    assert info.value.errno == errno.EBADF
    assert info.value.index == 0  # type: ignore[attr-defined]
    # The other end still works as far as it can: nobody is there.
    with pytest.raises(TimeoutError):
        dill.chsend(ch1, "x", 0)


# choose: behaviour first, then its errors: -1 with ECANCELED, EINVAL, ETIMEDOUT;
# index with EBADF, EINVAL, EMSGSIZE, ENOTSUP, EPIPE.


def test_choose_returns_index_of_first_ready_clause_in_list_order(h: Handles) -> None:
    a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    h.go(dill.chsend, a0, "from a")
    h.go(dill.chsend, b0, "from b")
    clauses = [dill.chclause(dill.CHRECV, b1), dill.chclause(dill.CHRECV, a1)]
    assert dill.choose(clauses, 0) == 0
    assert clauses[0].val == "from b"
    clauses = [dill.chclause(dill.CHRECV, b1), dill.chclause(dill.CHRECV, a1)]
    assert dill.choose(clauses, 0) == 1
    assert clauses[1].val == "from a"


def test_choose_first_ready_clause_wins_over_later_ready_ones(h: Handles) -> None:
    a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chrecv, a1)
    in_coroutine(h, log, dill.chrecv, b1)
    clauses = [
        dill.chclause(dill.CHRECV, a0),  # nobody sends on a1
        dill.chclause(dill.CHSEND, b0, "to b"),
        dill.chclause(dill.CHSEND, a0, "to a"),
    ]
    assert dill.choose(clauses, 0) == 1
    settle()
    assert log == [("ok", "to b")]  # the receiver on a1 still waits
    with pytest.raises(TimeoutError):
        dill.chrecv(b1, 0)


def test_choose_send_clause_to_a_waiting_receiver(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    value = Obj()
    in_coroutine(h, log, dill.chrecv, ch1)
    clause = dill.chclause(dill.CHSEND, ch0, value)
    assert dill.choose([clause], 0) == 0
    assert clause.val is value
    settle()
    assert log[0][1] is value


def test_choose_blocks_on_all_clauses_and_first_peer_wins(h: Handles) -> None:
    _a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    log: list[Any] = []
    clauses = [dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHRECV, b1)]
    in_coroutine(h, log, dill.choose, clauses)
    settle()
    assert log == []
    dill.chsend(b0, "b wins", 0)
    settle()
    assert errnos(log) == [("ok", 1)]
    assert clauses[1].val == "b wins"
    assert clauses[0].val is None


def test_choose_blocked_send_clause_is_taken_by_a_receiver(h: Handles) -> None:
    _a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    log: list[Any] = []
    value = Obj()
    in_coroutine(
        h, log, dill.choose, [dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, b0, value)]
    )
    assert dill.chrecv(b1, 0) is value
    settle()
    assert log == [("ok", 1)]


def test_choose_same_channel_twice_is_allowed(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    h.go(dill.chsend, ch0, "x")
    clauses = [dill.chclause(dill.CHRECV, ch1), dill.chclause(dill.CHRECV, ch1)]
    assert dill.choose(clauses, 0) == 0
    assert clauses[0].val == "x"


def test_choose_same_channel_twice_blocked_takes_one_value_only(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    clauses = [dill.chclause(dill.CHRECV, ch1), dill.chclause(dill.CHRECV, ch1)]
    in_coroutine(h, log, dill.choose, clauses)
    dill.chsend(ch0, "first", 0)
    # The choose's second clause on the same channel is stale already.
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "second", 0)
    settle()
    assert log == [("ok", 0)]
    assert clauses[0].val == "first"
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "third", 0)


def test_choose_send_and_receive_on_both_ends_of_one_channel(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    clauses = [dill.chclause(dill.CHSEND, ch0, "out"), dill.chclause(dill.CHRECV, ch0)]
    in_coroutine(h, log, dill.choose, clauses)
    # A choose never meets itself; a peer on ch1 takes its send clause.
    assert dill.chrecv(ch1, 0) == "out"
    settle()
    assert log == [("ok", 0)]
    with pytest.raises(TimeoutError):
        dill.chsend(ch1, "in", 0)


def test_choose_other_clauses_not_queued_after_it_returns(h: Handles) -> None:
    a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    log: list[Any] = []
    clauses = [
        dill.chclause(dill.CHRECV, a1),
        dill.chclause(dill.CHRECV, b1),
        dill.chclause(dill.CHSEND, b1, "s"),
    ]
    in_coroutine(h, log, dill.choose, clauses)
    dill.chsend(a0, "taken", 0)
    # Before the choose has run again: its clauses on b must not take anything.
    with pytest.raises(TimeoutError):
        dill.chsend(b0, "stale", 0)
    with pytest.raises(TimeoutError):
        dill.chrecv(b0, 0)
    settle()
    assert log == [("ok", 0)]
    assert clauses[0].val == "taken"
    assert clauses[1].val is None
    # And after it has run.
    with pytest.raises(TimeoutError):
        dill.chsend(b0, "stale", 0)
    with pytest.raises(TimeoutError):
        dill.chrecv(b0, 0)


def test_choose_faulty_clause_after_a_ready_clause_is_not_reported(h: Handles) -> None:
    a0, a1 = h.chmake()
    d0, _d1 = h.chmake()
    dill.chdone(d0)
    b = h.bundle()
    h.go(dill.chsend, a0, "ready")
    clauses = [
        dill.chclause(dill.CHRECV, a1),
        dill.chclause(99, a1),
        dill.chclause(dill.CHRECV, 10**6),
        dill.chclause(dill.CHRECV, b),
        dill.chclause(dill.CHSEND, d0, "x"),
    ]
    assert dill.choose(clauses, 0) == 0
    assert clauses[0].val == "ready"


def test_choose_faulty_clause_before_a_ready_clause_is_reported_and_nothing_done(
    h: Handles,
) -> None:
    a0, a1 = h.chmake()
    log: list[Any] = []
    in_coroutine(h, log, dill.chsend, a0, "ready")
    with pytest.raises(OSError) as info:
        dill.choose([dill.chclause(dill.CHRECV, 10**6), dill.chclause(dill.CHRECV, a1)], 0)
    assert info.value.errno == errno.EBADF
    assert info.value.index == 0  # type: ignore[attr-defined]
    settle()
    assert log == []  # the sender was not served
    assert dill.chrecv(a1, 0) == "ready"


def test_choose_ecanceled_when_bundle_closed_while_blocked(h: Handles) -> None:
    a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(
        h, log, dill.choose, [dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, b0, "x")]
    )
    h.close(b)
    assert errnos(log) == [("err", errno.ECANCELED)]
    assert isinstance(log[0][2], dill.Canceled)
    assert not hasattr(log[0][2], "index")
    # Its clauses are gone from both channels.
    with pytest.raises(TimeoutError):
        dill.chsend(a0, "y", 0)
    with pytest.raises(TimeoutError):
        dill.chrecv(b1, 0)


def test_choose_empty_list_forever_waits_until_canceled(h: Handles) -> None:
    log: list[Any] = []
    b = in_coroutine(h, log, dill.choose, [], -1)
    settle()
    assert log == []
    h.close(b)
    assert errnos(log) == [("err", errno.ECANCELED)]


def test_choose_einval_for_none(h: Handles) -> None:
    with pytest.raises(OSError) as info:
        dill.choose(None, 0)  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL
    assert not hasattr(info.value, "index")


def test_choose_deadline_0_tries_once_etimedout(h: Handles) -> None:
    a0, a1 = h.chmake()
    log: list[Any] = []

    def other() -> None:
        dill.yield_()
        log.append("other ran")

    h.go(other)
    with pytest.raises(TimeoutError) as info:
        dill.choose([dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, a0, "x")], 0)
    assert info.value.errno == errno.ETIMEDOUT
    assert not hasattr(info.value, "index")
    assert log == []
    settle()
    # Nothing left queued.
    with pytest.raises(TimeoutError):
        dill.chsend(a0, "y", 0)
    with pytest.raises(TimeoutError):
        dill.chrecv(a1, 0)


def test_choose_past_deadline_behaves_like_0(h: Handles) -> None:
    _a0, a1 = h.chmake()
    with pytest.raises(TimeoutError):
        dill.choose([dill.chclause(dill.CHRECV, a1)], dill.now() - 1000)


def test_choose_future_deadline_times_out_not_before_it(h: Handles) -> None:
    a0, a1 = h.chmake()
    deadline = dill.now() + 30
    with pytest.raises(TimeoutError) as info:
        dill.choose([dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, a1, "x")], deadline)
    assert dill.now() >= deadline
    assert info.value.errno == errno.ETIMEDOUT
    # The timed-out choose left nothing queued.
    with pytest.raises(TimeoutError):
        dill.chsend(a0, "y", 0)
    with pytest.raises(TimeoutError):
        dill.chrecv(a0, 0)


def test_choose_empty_list_waits_for_deadline_etimedout(h: Handles) -> None:
    deadline = dill.now() + 20
    with pytest.raises(TimeoutError):
        dill.choose([], deadline)
    assert dill.now() >= deadline


def test_choose_empty_list_deadline_0_etimedout_at_once(h: Handles) -> None:
    log: list[Any] = []

    def other() -> None:
        dill.yield_()
        log.append("other ran")

    h.go(other)
    with pytest.raises(TimeoutError):
        dill.choose([], 0)
    assert log == []
    settle()


def test_choose_etimedout_no_index(h: Handles) -> None:
    _a0, a1 = h.chmake()
    with pytest.raises(TimeoutError) as info:
        dill.choose([dill.chclause(dill.CHRECV, a1)], 0)
    assert not hasattr(info.value, "index")


def test_choose_ebadf_with_index_for_a_bad_handle(h: Handles) -> None:
    a0, a1 = h.chmake()
    c0, _c1 = h.chmake()
    h.close(c0)
    for bad in (c0, 10**6):
        with pytest.raises(OSError) as info:
            dill.choose([dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, bad, "x")], -1)
        assert info.value.errno == errno.EBADF
        assert info.value.index == 1  # type: ignore[attr-defined]
    # Nothing was queued by the failed choose.
    with pytest.raises(TimeoutError):
        dill.chsend(a0, "x", 0)


def test_choose_einval_with_index_for_a_bad_op(h: Handles) -> None:
    _a0, a1 = h.chmake()
    for bad_op in (0, 3, -1):
        with pytest.raises(OSError) as info:
            dill.choose([dill.chclause(dill.CHRECV, a1), dill.chclause(bad_op, a1)], -1)
        assert info.value.errno == errno.EINVAL
        assert info.value.index == 1  # type: ignore[attr-defined]


def test_choose_emsgsize_unreachable_values_of_any_size_meet(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    h.go(dill.chsend, ch0, b"x" * 10_000)
    clause = dill.chclause(dill.CHRECV, ch1, b"")
    assert dill.choose([clause], 0) == 0
    assert clause.val == b"x" * 10_000


def test_choose_enotsup_with_index_for_a_non_channel_handle(h: Handles) -> None:
    _a0, a1 = h.chmake()
    b = h.bundle()
    with pytest.raises(OSError) as info:
        dill.choose([dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHRECV, b)], -1)
    assert info.value.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)
    assert info.value.index == 1  # type: ignore[attr-defined]


def test_choose_epipe_with_index_found_during_the_scan(h: Handles) -> None:
    _a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    dill.chdone(b0)
    # A send on the done end.
    with pytest.raises(BrokenPipeError) as info:
        dill.choose([dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, b0, "x")], -1)
    assert info.value.index == 1  # type: ignore[attr-defined]
    # A receive on the other end of the done one.
    with pytest.raises(BrokenPipeError) as info:
        dill.choose([dill.chclause(dill.CHRECV, b1), dill.chclause(dill.CHRECV, a1)], -1)
    assert info.value.index == 0  # type: ignore[attr-defined]
    # The open direction of the done channel is fine.
    with pytest.raises(TimeoutError):
        dill.choose([dill.chclause(dill.CHSEND, b1, "x"), dill.chclause(dill.CHRECV, b0)], 0)


def test_choose_epipe_with_index_when_woken_later_by_chdone(h: Handles) -> None:
    a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    c0, _c1 = h.chmake()
    log: list[Any] = []
    # A receive clause on the other end of the done one, a send clause on the done end.
    in_coroutine(
        h, log, dill.choose, [dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHRECV, b1)]
    )
    in_coroutine(
        h, log, dill.choose, [dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, c0, "x")]
    )
    settle()
    assert log == []
    dill.chdone(b0)
    settle()
    assert errnos(log) == [("err", errno.EPIPE)]
    dill.chdone(c0)
    settle()
    assert errnos(log) == [("err", errno.EPIPE)] * 2
    assert [entry[2].index for entry in log] == [1, 1]
    # Their clauses on a are gone.
    with pytest.raises(TimeoutError):
        dill.chsend(a0, "y", 0)


def test_choose_epipe_with_index_when_woken_later_by_closing_both_ends(h: Handles) -> None:
    a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    log: list[Any] = []
    in_coroutine(
        h, log, dill.choose, [dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHSEND, b0, "x")]
    )
    h.close(b0)
    settle()
    assert log == []
    h.close(b1)
    settle()
    assert errnos(log) == [("err", errno.EPIPE)]
    assert log[0][2].index == 1
    with pytest.raises(TimeoutError):
        dill.chsend(a0, "y", 0)


def test_choose_typeerror_for_a_clause_that_is_not_a_chclause(h: Handles) -> None:
    _a0, a1 = h.chmake()
    with pytest.raises(TypeError):
        dill.choose([dill.chclause(dill.CHRECV, a1), (dill.CHRECV, a1)], 0)  # type: ignore[list-item]


# ---------------------------------------------------------------------------
# 3. Cancellation
# ---------------------------------------------------------------------------


def test_canceled_receiver_gets_nothing_later(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(h, log, dill.chrecv, ch1)
    h.close(b)
    assert errnos(log) == [("err", errno.ECANCELED)]
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "for nobody", 0)


def test_canceled_sender_offers_nothing_later(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(h, log, dill.chsend, ch0, "withdrawn")
    h.close(b)
    assert errnos(log) == [("err", errno.ECANCELED)]
    with pytest.raises(TimeoutError):
        dill.chrecv(ch1, 0)


def test_canceled_choose_gets_nothing_later(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(
        h, log, dill.choose, [dill.chclause(dill.CHRECV, ch1), dill.chclause(dill.CHSEND, ch1, "x")]
    )
    h.close(b)
    assert errnos(log) == [("err", errno.ECANCELED)]
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "for nobody", 0)
    with pytest.raises(TimeoutError):
        dill.chrecv(ch0, 0)


def test_canceled_receiver_among_others_keeps_fifo_for_the_rest(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def receiver(name: str) -> None:
        try:
            log.append((name, dill.chrecv(ch1)))
        except dill.Canceled:
            log.append((name, "canceled"))

    h.go(receiver, "a")
    b = h.go(receiver, "b")
    h.go(receiver, "c")
    h.close(b)
    dill.chsend(ch0, 1, 0)
    dill.chsend(ch0, 2, 0)
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, 3, 0)
    settle()
    assert log == [("b", "canceled"), ("a", 1), ("c", 2)]


@pytest.mark.parametrize("op", ["chsend", "chrecv", "choose-send", "choose-recv"])
def test_cancellation_is_sticky_even_with_a_ready_peer(h: Handles, op: str) -> None:
    p0, p1 = h.chmake()  # where a peer is ready for the second call
    _q0, q1 = h.chmake()  # where the first call blocks
    log: list[Any] = []
    if op in ("chsend", "choose-send"):
        in_coroutine(h, log, dill.chrecv, p1)  # a receiver waits on p1
    else:
        in_coroutine(h, log, dill.chsend, p0, "ready")  # a sender waits on p0

    def body() -> None:
        try:
            dill.chrecv(q1)
        except dill.Canceled:
            log.append("first call canceled")
        for _ in range(2):  # fails each time
            if op == "chsend":
                log.append(outcome(dill.chsend, p0, "x", 0))
            elif op == "chrecv":
                log.append(outcome(dill.chrecv, p1, 0))
            elif op == "choose-send":
                log.append(outcome(dill.choose, [dill.chclause(dill.CHSEND, p0, "x")], 0))
            else:
                log.append(outcome(dill.choose, [dill.chclause(dill.CHRECV, p1)], 0))

    b = h.go(body)
    h.close(b)
    assert errnos(log) == [
        "first call canceled",
        ("err", errno.ECANCELED),
        ("err", errno.ECANCELED),
    ]
    assert all(isinstance(entry[2], dill.Canceled) for entry in log[1:])
    # The peer was not served: it is still there for us.
    if op in ("chsend", "choose-send"):
        dill.chsend(p0, "mine", 0)
        settle()
        assert log[-1] == ("ok", "mine")
    else:
        assert dill.chrecv(p1, 0) == "ready"


def test_canceled_coroutine_can_still_hclose_its_channel_ends(h: Handles) -> None:
    log: list[Any] = []
    ends: list[int] = []

    def body() -> None:
        ends.extend(dill.chmake())
        with contextlib.suppress(dill.Canceled):
            dill.chrecv(ends[1])
        dill.hclose(ends[0])
        dill.hclose(ends[1])
        log.append("closed")

    b = h.go(body)
    h.close(b)
    assert log == ["closed"]
    with pytest.raises(OSError) as info:
        dill.chsend(ends[0], "x", 0)
    assert info.value.errno == errno.EBADF


# ---------------------------------------------------------------------------
# 4. A value is never lost or duplicated
# ---------------------------------------------------------------------------


def test_receiver_timed_out_with_deadline_0_does_not_swallow_the_value(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    with pytest.raises(TimeoutError):
        dill.chrecv(ch1, 0)
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "kept", 0)  # no receiver left behind by the timed-out one
    log: list[Any] = []
    in_coroutine(h, log, dill.chsend, ch0, "kept")
    assert dill.chrecv(ch1, 0) == "kept"
    settle()
    assert log == [("ok", None)]


def test_receiver_whose_timer_fired_does_not_take_a_later_value(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(h, log, dill.chrecv, ch1, dill.now() + 5)
    dill.bundle_wait(b, -1)  # it timed out
    assert errnos(log) == [("err", errno.ETIMEDOUT)]
    with pytest.raises(TimeoutError):
        dill.chsend(ch0, "kept", 0)


def test_receiver_past_its_deadline_but_not_yet_timed_out_never_loses_the_value(h: Handles) -> None:
    # Its deadline passes while nothing runs (the thread sleeps): either the
    # receiver still takes the value, or it times out and the send fails too.
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    value = Obj()
    b = in_coroutine(h, log, dill.chrecv, ch1, dill.now() + 5)
    time.sleep(0.02)
    sent = outcome(dill.chsend, ch0, value, 0)
    dill.bundle_wait(b, -1)
    if sent == ("ok", None):
        assert log[0][0] == "ok" and log[0][1] is value
    else:
        assert sent[:2] == ("err", errno.ETIMEDOUT)
        assert errnos(log) == [("err", errno.ETIMEDOUT)]


def test_receiver_woken_then_canceled_before_it_runs_gets_its_value(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    value = Obj()

    def receiver() -> None:
        log.append(outcome(dill.chrecv, ch1))
        log.append(outcome(dill.chrecv, ch1, 0))  # the next blocking call fails

    b = h.go(receiver)
    dill.chsend(ch0, value)  # wakes it; it has not run yet
    assert log == []
    h.close(b)
    assert log[0][0] == "ok" and log[0][1] is value
    assert log[1][:2] == ("err", errno.ECANCELED)


def test_sender_woken_then_canceled_before_it_runs_reports_success(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []

    def sender() -> None:
        log.append(outcome(dill.chsend, ch0, "v"))
        log.append(outcome(dill.chsend, ch0, "w", 0))

    b = h.go(sender)
    assert dill.chrecv(ch1) == "v"
    h.close(b)
    assert log[0] == ("ok", None)
    assert log[1][:2] == ("err", errno.ECANCELED)
    with pytest.raises(TimeoutError):
        dill.chrecv(ch1, 0)


def test_choose_woken_then_canceled_before_it_runs_gets_its_value(h: Handles) -> None:
    a0, a1 = h.chmake()
    b0, b1 = h.chmake()
    log: list[Any] = []
    value = Obj()
    clauses = [dill.chclause(dill.CHRECV, a1), dill.chclause(dill.CHRECV, b1)]
    b = in_coroutine(h, log, dill.choose, clauses)
    dill.chsend(b0, value)
    h.close(b)
    assert log == [("ok", 1)]
    assert clauses[1].val is value
    with pytest.raises(TimeoutError):
        dill.chsend(a0, "stale", 0)


def test_receiver_woken_with_epipe_then_canceled_gets_epipe(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    log: list[Any] = []
    b = in_coroutine(h, log, dill.chrecv, ch1)
    dill.chdone(ch0)
    h.close(b)
    assert errnos(log) == [("err", errno.EPIPE)]


def test_many_values_through_many_coroutines_each_received_exactly_once(h: Handles) -> None:
    ch0, ch1 = h.chmake()
    received: list[Any] = []
    n_senders, per_sender = 5, 40

    def sender(k: int) -> None:
        for i in range(per_sender):
            dill.chsend(ch0, (k, i))

    def receiver() -> None:
        while True:
            try:
                received.append(dill.chrecv(ch1))
            except dill.Canceled:
                return

    receivers = [h.go(receiver) for _ in range(3)]
    senders = [h.go(sender, k) for k in range(n_senders)]
    for s in senders:
        dill.bundle_wait(s, -1)
    for r in receivers:
        h.close(r)
    assert sorted(received) == [(k, i) for k in range(n_senders) for i in range(per_sender)]


# ---------------------------------------------------------------------------
# 5. State machine: actors against a model of channels
# ---------------------------------------------------------------------------

BAD_OP = 7  # neither CHSEND nor CHRECV
DRIVER = -1  # the model's name for the test's main greenlet


class Val:
    """A value to send: compared by identity, so duplicates would show."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __repr__(self) -> str:
        return f"Val({self.n})"


class AnyOf:
    """An expected choose index that may be any of several."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = frozenset(indices)

    def __repr__(self) -> str:
        return f"AnyOf({sorted(self.indices)})"


def result_matches(expected: tuple[Any, ...], actual: tuple[Any, ...]) -> bool:
    if len(expected) != len(actual) or expected[0] != actual[0]:
        return False
    for e, a in zip(expected[1:], actual[1:]):
        if isinstance(e, AnyOf):
            if a not in e.indices:
                return False
        elif isinstance(e, Val) or isinstance(a, Val):
            if e is not a:
                return False
        elif e != a:
            return False
    return True


class MEntry:
    """A blocked operation (or one clause of a blocked choose) in a model queue."""

    __slots__ = ("actor", "index", "value")

    def __init__(self, actor: int, index: Optional[int], value: Any) -> None:
        self.actor = actor
        self.index = index
        self.value = value

    def __repr__(self) -> str:
        return f"MEntry(actor={self.actor}, index={self.index}, value={self.value})"


class MDirection:
    def __init__(self) -> None:
        self.done = False
        self.senders: list[MEntry] = []
        self.receivers: list[MEntry] = []


class MChannel:
    """Model of one channel: direction i carries values sent on end i.

    The channel lives in a chstorage; once both its ends are closed, the
    driver makes a new channel in the same storage (chmake_mem reuse).
    """

    def __init__(self) -> None:
        self.mem = dill.chstorage()
        self.open()

    def open(self) -> None:
        self.ends = list(dill.chmake_mem(self.mem))
        self.is_open = [True, True]
        self.dirs = (MDirection(), MDirection())


class MActor:
    def __init__(self) -> None:
        self.state = "idle"  # "idle", "blocked" or "dead" (canceled, about to be replaced)
        self.short = False  # blocked with a short future deadline
        self.deadline = -1


DEADLINES = st.sampled_from(["forever", "forever", "zero", "past", "short"])
SHORT_MS = 2
CLAUSE = st.tuples(
    st.sampled_from([dill.CHSEND, dill.CHRECV] * 4 + [BAD_OP]),
    st.integers(0, 1),  # channel
    st.integers(0, 1),  # end
)


BURST_ITEM = st.tuples(
    st.sampled_from(["meet"] * 3 + ["chsend", "chrecv", "cancel"]),
    st.integers(0, 3),  # actor, for cancel
    st.integers(0, 7),  # peer, for meet
    st.integers(0, 1),  # channel
    st.integers(0, 1),  # end
)


class ChannelModelMachine(RuleBasedStateMachine):
    """Actors (coroutines) do channel operations on command; a model predicts each outcome.

    Each actor waits for its next command on a command channel of its own;
    the driver (the test's main greenlet) sends it one with deadline 0 and
    then yields until every coroutine made ready has run. Every outcome an
    actor reports is compared with the model's prediction. Operations with a
    short future deadline may time out at any later moment; a timeout an
    actor reports is applied to the model before the step's operation, which
    is a valid order: had the operation met that waiter, the waiter would
    not have timed out.
    """

    def __init__(self) -> None:
        super().__init__()
        self.channels: list[MChannel] = []
        self.actors: list[MActor] = []
        self.actor_bundles: list[Optional[int]] = []
        self.commands: list[tuple[int, int]] = []
        self.reports: list[tuple[int, tuple[Any, ...]]] = []
        self.seen = 0
        self.driver_expected: list[tuple[Any, ...]] = []
        self.counter = 0

    # -- the system under test -------------------------------------------

    def _actor(self, i: int, inbox: int) -> None:
        while True:
            try:
                command = dill.chrecv(inbox)
            except dill.Canceled:
                self.reports.append((i, ("exit",)))
                return
            self.reports.append((i, self._perform(command)))

    def _perform(self, command: tuple[Any, ...]) -> tuple[Any, ...]:
        kind = command[0]
        deadline = command[-1] if kind in ("send", "recv", "choose") else -1
        try:
            if kind == "send":
                dill.chsend(command[1], command[2], deadline)
                return ("ok", None)
            if kind == "recv":
                return ("ok", dill.chrecv(command[1], deadline))
            if kind == "done":
                dill.chdone(command[1])
                return ("ok", None)
            if kind == "close":
                dill.hclose(command[1])
                return ("ok", None)
            clauses = command[1]
            index = dill.choose(clauses, deadline)
            return ("chose", index, clauses[index].val)
        except OSError as exc:
            if exc.errno == errno.ETIMEDOUT and deadline > 0 and dill.now() < deadline:
                return ("timed out early", deadline, dill.now())
            return ("err", exc.errno, getattr(exc, "index", None))

    # -- the model -----------------------------------------------------------

    def _complete(self, a: int, result: tuple[Any, ...], expected: dict[int, list[Any]]) -> None:
        if a == DRIVER:  # the driver's own operation (deadline 0, never queued)
            self.driver_expected.append(result)
            return
        for ch in self.channels:
            for d in ch.dirs:
                d.senders = [e for e in d.senders if e.actor != a]
                d.receivers = [e for e in d.receivers if e.actor != a]
        actor = self.actors[a]
        actor.state = "idle"
        actor.short = False
        expected.setdefault(a, []).append(result)

    def _block(self, a: int, deadline: int) -> None:
        actor = self.actors[a]
        actor.state = "blocked"
        actor.deadline = deadline
        actor.short = deadline > 0

    def _meet(self, e: MEntry, received: Any, expected: dict[int, list[Any]]) -> None:
        """The waiting peer e is met: it was sending e.value, or receives `received`."""
        if e.index is None:
            self._complete(e.actor, ("ok", received), expected)
        else:
            self._complete(
                e.actor, ("chose", e.index, e.value if received is None else received), expected
            )

    def _fail(self, dirs: list[MDirection], expected: dict[int, list[Any]]) -> None:
        """Everybody waiting in dirs gets EPIPE."""
        hit: dict[int, list[Optional[int]]] = {}
        for d in dirs:
            for e in d.senders + d.receivers:
                hit.setdefault(e.actor, []).append(e.index)
        for a, indices in hit.items():
            if indices[0] is None:
                self._complete(a, ("err", errno.EPIPE, None), expected)
            else:
                self._complete(a, ("err", errno.EPIPE, AnyOf(indices)), expected)  # type: ignore[arg-type]

    def _model_send(
        self,
        a: int,
        ch: MChannel,
        end: int,
        v: Val,
        deadline: int,
        immediate: bool,
        ex: dict[int, list[Any]],
    ) -> None:
        if not ch.is_open[end]:
            return self._complete(a, ("err", errno.EBADF, None), ex)
        d = ch.dirs[end]
        if d.done:
            return self._complete(a, ("err", errno.EPIPE, None), ex)
        if d.receivers:
            self._meet(d.receivers[0], v, ex)
            return self._complete(a, ("ok", None), ex)
        if immediate:  # deadline 0 or in the past
            return self._complete(a, ("err", errno.ETIMEDOUT, None), ex)
        d.senders.append(MEntry(a, None, v))
        return self._block(a, deadline)

    def _model_recv(
        self,
        a: int,
        ch: MChannel,
        end: int,
        deadline: int,
        immediate: bool,
        ex: dict[int, list[Any]],
    ) -> None:
        if not ch.is_open[end]:
            return self._complete(a, ("err", errno.EBADF, None), ex)
        d = ch.dirs[1 - end]
        if d.done:
            return self._complete(a, ("err", errno.EPIPE, None), ex)
        if d.senders:
            e = d.senders[0]
            self._meet(e, None, ex)
            return self._complete(a, ("ok", e.value), ex)
        if immediate:
            return self._complete(a, ("err", errno.ETIMEDOUT, None), ex)
        d.receivers.append(MEntry(a, None, None))
        return self._block(a, deadline)

    def _model_done(self, a: int, ch: MChannel, end: int, ex: dict[int, list[Any]]) -> None:
        if not ch.is_open[end]:
            return self._complete(a, ("err", errno.EBADF, None), ex)
        d = ch.dirs[end]
        if d.done:
            return self._complete(a, ("err", errno.EPIPE, None), ex)
        d.done = True
        self._fail([d], ex)
        return self._complete(a, ("ok", None), ex)

    def _model_close(self, a: int, ch: MChannel, end: int, ex: dict[int, list[Any]]) -> None:
        if not ch.is_open[end]:
            return self._complete(a, ("err", errno.EBADF, None), ex)
        ch.is_open[end] = False
        if not any(ch.is_open):
            self._fail(list(ch.dirs), ex)
        return self._complete(a, ("ok", None), ex)

    def _model_choose(
        self,
        a: int,
        spec: list[tuple[int, MChannel, int, Any]],
        deadline: int,
        immediate: bool,
        ex: dict[int, list[Any]],
    ) -> None:
        for index, (op, ch, end, v) in enumerate(spec):
            if op == BAD_OP:
                return self._complete(a, ("err", errno.EINVAL, index), ex)
            if not ch.is_open[end]:
                return self._complete(a, ("err", errno.EBADF, index), ex)
            if op == dill.CHSEND:
                d = ch.dirs[end]
                if d.done:
                    return self._complete(a, ("err", errno.EPIPE, index), ex)
                if d.receivers:
                    self._meet(d.receivers[0], v, ex)
                    return self._complete(a, ("chose", index, v), ex)
            else:
                d = ch.dirs[1 - end]
                if d.done:
                    return self._complete(a, ("err", errno.EPIPE, index), ex)
                if d.senders:
                    e = d.senders[0]
                    self._meet(e, None, ex)
                    return self._complete(a, ("chose", index, e.value), ex)
        if immediate:
            return self._complete(a, ("err", errno.ETIMEDOUT, None), ex)
        for index, (op, ch, end, v) in enumerate(spec):
            if op == dill.CHSEND:
                ch.dirs[end].senders.append(MEntry(a, index, v))
            else:
                ch.dirs[1 - end].receivers.append(MEntry(a, index, None))
        return self._block(a, deadline)

    # -- driving a step --------------------------------------------------------

    def _new_reports(self) -> list[tuple[int, tuple[Any, ...]]]:
        new = self.reports[self.seen :]
        self.seen = len(self.reports)
        return new

    def _is_timeout(self, result: tuple[Any, ...]) -> bool:
        return result[0] == "err" and result[1] == errno.ETIMEDOUT

    def _check_step(
        self,
        model: Callable[[dict[int, list[Any]]], None],
        target: Optional[int],
        reports: list[tuple[int, tuple[Any, ...]]],
    ) -> None:
        actual: dict[int, list[Any]] = {}
        for a, result in reports:
            actual.setdefault(a, []).append(result)
        expected: dict[int, list[Any]] = {}
        # Timeouts of operations that were waiting before this step come first.
        for a, results in actual.items():
            actor = self.actors[a]
            if (
                a != target
                and actor.state == "blocked"
                and actor.short
                and self._is_timeout(results[0])
            ):
                self._complete(a, ("err", errno.ETIMEDOUT, None), expected)
        model(expected)
        # The step's own operation may have blocked with a short deadline and timed out already.
        if target is not None:
            actor = self.actors[target]
            results = actual.get(target, [])
            if (
                actor.state == "blocked"
                and actor.short
                and results
                and self._is_timeout(results[0])
            ):
                self._complete(target, ("err", errno.ETIMEDOUT, None), expected)
        ok = set(actual) == set(expected) and all(
            len(actual[a]) == len(expected[a]) and all(map(result_matches, expected[a], actual[a]))
            for a in actual
        )
        assert ok, f"expected {expected}, got {actual}"

    def _command(
        self, i: int, command: tuple[Any, ...], model: Callable[[dict[int, list[Any]]], None]
    ) -> None:
        assert self._new_reports() == []  # nothing happens between steps
        dill.chsend(self.commands[i][0], command, 0)  # the actor waits for it
        settle(6)
        self._check_step(model, i, self._new_reports())
        self._reopen_closed_channels()

    def _deadline(self, kind: str) -> tuple[int, bool]:
        """The deadline for kind, and whether it means "do not wait"."""
        if kind == "forever":
            return -1, False
        if kind == "zero":
            return 0, True
        if kind == "past":
            return max(1, dill.now() - 1000), True
        return dill.now() + SHORT_MS, False

    def _value(self) -> Val:
        self.counter += 1
        return Val(self.counter)

    def _idle(self) -> list[int]:
        return [i for i, actor in enumerate(self.actors) if actor.state == "idle"]

    def _pick_idle(self, who: int) -> int:
        idle = self._idle()
        return idle[who % len(idle)]

    # -- rules -----------------------------------------------------------------

    @initialize(n_actors=st.integers(3, 4), n_channels=st.integers(1, 2))
    def start(self, n_actors: int, n_channels: int) -> None:
        self.handles_before = set(snapshot().handles)
        for _ in range(n_channels):
            self.channels.append(MChannel())
        for i in range(n_actors):
            self.commands.append(dill.chmake())
            self.actors.append(MActor())
            self.actor_bundles.append(None)
            self._spawn(i)
        assert self._new_reports() == []

    def _spawn(self, i: int) -> None:
        """Start actor i (again): it waits for commands on its command channel."""
        self.actor_bundles[i] = dill.go(self._actor, i, self.commands[i][1])
        self.actors[i] = MActor()
        self._allocated(self.actor_bundles[i])

    def _allocated(self, *numbers: Optional[int]) -> None:
        """New handles got numbers: a closed end that had one of them is renamed.

        An operation on a closed end must still find no handle (EBADF), so
        it gets a number that is never open instead of a reused one.
        """
        for ch in self.channels:
            for end in (0, 1):
                if not ch.is_open[end] and ch.ends[end] in numbers:
                    ch.ends[end] = 10**9 + ch.ends[end]

    def _reopen_closed_channels(self) -> None:
        for ch in self.channels:
            if not any(ch.is_open):
                ch.open()
                self._allocated(*ch.ends)

    def _channel(self, n: int) -> MChannel:
        return self.channels[n % len(self.channels)]

    # Operations, each an equal share of one rule (hypothesis picks rules
    # uniformly, and a rule of its own for chdone or cancel would end most
    # runs after a few steps).
    OPERATIONS = (
        ["chsend"] * 6 + ["chrecv"] * 6 + ["choose"] * 5 + ["chdone", "hclose", "cancel", "wait"]
    )
    OPERATIONS += ["advance"] * 2 + ["renew"] * 2 + ["burst"] * 3

    # Every draw is made whatever the state, from a range that does not
    # depend on it, and mapped onto the state afterwards (modulo): the model's
    # state depends on timing (short deadlines), and hypothesis requires the
    # same choices to draw the same way.
    @rule(
        operation=st.sampled_from(OPERATIONS),
        who=st.integers(0, 3),
        meet=st.booleans(),
        peer=st.integers(0, 7),
        ch=st.integers(0, 1),
        end=st.integers(0, 1),
        dl=DEADLINES,
        clauses=st.lists(CLAUSE, min_size=0, max_size=3),
        position=st.integers(0, 3),
        fallback=st.sampled_from(["cancel", "renew"]),
        burst=st.lists(BURST_ITEM, min_size=1, max_size=3),
    )
    def step(
        self,
        operation: str,
        who: int,
        meet: bool,
        peer: int,
        ch: int,
        end: int,
        dl: str,
        clauses: list[tuple[int, int, int]],
        position: int,
        fallback: str,
        burst: list[tuple[str, int, int, int, int]],
    ) -> None:
        short = any(a.state == "blocked" and a.short for a in self.actors)
        if operation == "advance" and not short:
            operation = "wait"
        if operation in ("chsend", "chrecv", "choose", "chdone", "hclose") and not self._idle():
            # Nobody can take a command: let short deadlines pass, or cancel somebody.
            operation = "advance" if short else fallback
        if operation == "wait":
            return self.let_others_run()
        if operation == "advance":
            return self.let_short_deadlines_pass()
        if operation == "cancel":
            return self.cancel(who % len(self.actors))
        if operation == "renew":
            return self.renew(self._channel(ch))
        if operation == "burst":
            return self.burst(burst)
        i = self._pick_idle(who)
        # Half the time, aim at a waiting peer: random ends rarely meet.
        peers = self._peer_clauses()
        target = peers[peer % len(peers)] if meet and peers else None
        if operation == "choose":
            clauses = list(clauses)
            if target is not None:
                clauses.insert(position % (len(clauses) + 1), target)
                del clauses[3:]
            return self.choose(i, clauses, dl)
        if target is not None and operation in ("chsend", "chrecv"):
            operation = "chsend" if target[0] == dill.CHSEND else "chrecv"
            channel, end = self.channels[target[1]], target[2]
        else:
            channel = self._channel(ch)
        if operation == "chsend":
            return self.chsend(i, channel, end, dl)
        if operation == "chrecv":
            return self.chrecv(i, channel, end, dl)
        if operation == "chdone":
            return self.chdone(i, channel, end)
        return self.hclose_end(i, channel, end)

    def _peer_clauses(self) -> list[tuple[int, int, int]]:
        """(op, channel, end) of the operations that would meet a waiting actor now."""
        peers = []
        for n, ch in enumerate(self.channels):
            for d, direction in enumerate(ch.dirs):
                if direction.senders:
                    peers.append((dill.CHRECV, n, 1 - d))
                if direction.receivers:
                    peers.append((dill.CHSEND, n, d))
        return peers

    def chsend(self, i: int, c: MChannel, end: int, dl: str) -> None:
        v = self._value()
        deadline, now = self._deadline(dl)
        self._command(
            i,
            ("send", c.ends[end], v, deadline),
            lambda ex: self._model_send(i, c, end, v, deadline, now, ex),
        )

    def chrecv(self, i: int, c: MChannel, end: int, dl: str) -> None:
        deadline, now = self._deadline(dl)
        self._command(
            i,
            ("recv", c.ends[end], deadline),
            lambda ex: self._model_recv(i, c, end, deadline, now, ex),
        )

    def chdone(self, i: int, c: MChannel, end: int) -> None:
        self._command(i, ("done", c.ends[end]), lambda ex: self._model_done(i, c, end, ex))

    def hclose_end(self, i: int, c: MChannel, end: int) -> None:
        self._command(i, ("close", c.ends[end]), lambda ex: self._model_close(i, c, end, ex))

    def choose(self, i: int, clauses: list[tuple[int, int, int]], dl: str) -> None:
        deadline, now = self._deadline(dl)
        spec = []
        for op, ch, end in clauses:
            c = self._channel(ch)
            spec.append((op, c, end, self._value() if op == dill.CHSEND else None))
        real = [dill.chclause(op, c.ends[end], v) for op, c, end, v in spec]
        self._command(
            i, ("choose", real, deadline), lambda ex: self._model_choose(i, spec, deadline, now, ex)
        )

    def cancel(self, i: int) -> None:
        """hclose the actor's bundle: its blocked operation fails with ECANCELED, and it ends."""
        assert self._new_reports() == []
        b = self.actor_bundles[i]
        self.actor_bundles[i] = None
        assert b is not None
        dill.hclose(b)
        settle(6)

        def model(ex: dict[int, list[Any]]) -> None:
            if self.actors[i].state == "blocked":
                self._complete(i, ("err", errno.ECANCELED, None), ex)
            ex.setdefault(i, []).append(("exit",))
            self.actors[i].state = "dead"

        self._check_step(model, None, self._new_reports())
        self._spawn(i)  # a fresh actor takes its place

    def renew(self, ch: MChannel) -> None:
        """The driver closes the channel's open ends (waking its waiters), then makes it anew."""
        assert self._new_reports() == []
        ends = [end for end in (0, 1) if ch.is_open[end]]
        for end in ends:
            dill.hclose(ch.ends[end])
        settle(6)

        def model(ex: dict[int, list[Any]]) -> None:
            for end in ends:
                ch.is_open[end] = False
            self._fail(list(ch.dirs), ex)

        self._check_step(model, None, self._new_reports())
        self._reopen_closed_channels()

    def burst(self, items: list[tuple[str, int, int, int, int]]) -> None:
        """The driver does a few things back to back, before anybody it wakes has run.

        chsend and chrecv with deadline 0 (mostly aimed at a waiting actor),
        and hclose of an actor's bundle. This reaches the states between a
        wake-up and the woken actor running: its other choose clauses are
        still queued (they must not be taken), and a woken actor that is
        canceled still gets what it was woken with.
        """
        assert self._new_reports() == []
        peers = self._peer_clauses()  # as the burst begins: only a bias
        plan: list[tuple[Any, ...]] = []
        actual: list[tuple[Any, ...]] = []
        for item_kind, who, peer, item_n, item_end in items:
            kind, n, end = item_kind, item_n, item_end
            if kind == "cancel":
                i = who % len(self.actors)
                b = self.actor_bundles[i]
                if b is None:
                    continue  # canceled earlier in this burst
                self.actor_bundles[i] = None
                dill.hclose(b)
                plan.append(("cancel", i))
                continue
            if kind == "meet" and peers:
                op, n, end = peers[peer % len(peers)]
                kind = "chsend" if op == dill.CHSEND else "chrecv"
            elif kind == "meet":
                kind = "chsend"
            ch = self._channel(n)
            if kind == "chsend":
                v = self._value()
                plan.append(("chsend", ch, end, v))
                result = outcome(dill.chsend, ch.ends[end], v, 0)
            else:
                plan.append(("chrecv", ch, end))
                result = outcome(dill.chrecv, ch.ends[end], 0)
            actual.append((*result[:2], None) if result[0] == "err" else result)
        settle(6)

        def model(ex: dict[int, list[Any]]) -> None:
            self.driver_expected = []
            for step in plan:
                if step[0] == "cancel":
                    i = step[1]
                    if self.actors[i].state == "blocked":
                        self._complete(i, ("err", errno.ECANCELED, None), ex)
                    ex.setdefault(i, []).append(("exit",))
                    self.actors[i].state = "dead"
                elif step[0] == "chsend":
                    self._model_send(DRIVER, step[1], step[2], step[3], 0, True, ex)
                else:
                    self._model_recv(DRIVER, step[1], step[2], 0, True, ex)

        self._check_step(model, None, self._new_reports())
        assert len(actual) == len(self.driver_expected)
        for expected, got in zip(self.driver_expected, actual):
            assert result_matches(expected, got), (
                f"driver: expected {self.driver_expected}, got {actual}"
            )
        for step in plan:
            if step[0] == "cancel":
                self._spawn(step[1])

    def let_others_run(self) -> None:
        """Nothing happens but waiting: blocked actors stay blocked (bar short deadlines)."""
        assert self._new_reports() == []
        settle(6)
        self._check_step(lambda ex: None, None, self._new_reports())

    def let_short_deadlines_pass(self) -> None:
        """Sleep past every short deadline: those actors all time out."""
        assert self._new_reports() == []
        waiting = [i for i, a in enumerate(self.actors) if a.state == "blocked" and a.short]
        dill.msleep(max(self.actors[i].deadline for i in waiting) + 1)
        give_up = dill.now() + 2000
        while (
            not set(waiting) <= {a for a, _ in self.reports[self.seen :]} and dill.now() < give_up
        ):
            dill.msleep(dill.now() + 1)  # lets the hub run the timers that are due
        settle(6)
        self._check_step(lambda ex: None, None, self._new_reports())
        assert not any(a.state == "blocked" and a.short for a in self.actors)

    def teardown(self) -> None:
        try:
            for b in self.actor_bundles:
                if b is not None:
                    dill.hclose(b)
            for pair in self.commands:
                for h in pair:
                    dill.hclose(h)
            for ch in self.channels:
                for end in (0, 1):
                    if ch.is_open[end]:
                        dill.hclose(ch.ends[end])
        finally:
            # After a failed step the model may be wrong about what is open:
            # close whatever this run opened, so that the next run starts clean.
            before = getattr(self, "handles_before", None)
            if before is not None:
                for h in sorted(set(snapshot().handles) - before):
                    with contextlib.suppress(OSError):
                        dill.hclose(h)


TestChannelsMatchTheModel = ChannelModelMachine.TestCase
TestChannelsMatchTheModel.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
