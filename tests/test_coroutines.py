"""go, bundles, bundle_wait, yield_ and cancellation (reference section 1)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from typing import Any, Callable

import gevent
import pytest

import greendill as dill

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


def closing(*handles: int) -> None:
    for h in handles:
        dill.hclose(h)


# Scheduling order ----------------------------------------------------------


def test_go_runs_child_at_once_and_caller_after_ready_ones() -> None:
    log: list[str] = []

    def child(name: str) -> None:
        log.append(name)
        dill.yield_()
        log.append(name + "'")

    a = dill.go(child, "a")
    log.append("caller")
    b = dill.go(child, "b")
    log.append("caller'")
    dill.yield_()
    log.append("caller''")
    # libdill: go(a) runs a until it yields; the caller resumes (a is ready
    # behind it); go(b) runs b; when b yields, a (queued first) runs, then the caller.
    assert log == ["a", "caller", "b", "a'", "caller'", "b'", "caller''"]
    closing(a, b)


def test_go_passes_args_and_kwargs() -> None:
    got: list[Any] = []
    h = dill.go(lambda x, *, y: got.append((x, y)), 1, y=2)
    assert got == [(1, 2)]
    dill.hclose(h)


def test_go_handle_stays_valid_after_coroutine_ended() -> None:
    h = dill.go(lambda: None)
    dill.bundle_wait(h, 0)
    dill.bundle_go(h, lambda: None)  # a go() handle is a bundle
    dill.hclose(h)
    with pytest.raises(OSError) as info:
        dill.bundle_wait(h, 0)
    assert info.value.errno == errno.EBADF


def test_go_rejects_non_callable() -> None:
    with pytest.raises(TypeError):
        dill.go(42)  # type: ignore[arg-type]


def test_yield_lets_the_others_run_in_fifo_order() -> None:
    log: list[int] = []

    start0, start1 = dill.chmake()

    def worker(n: int) -> None:
        dill.chrecv(start1)
        for _ in range(3):
            log.append(n)
            dill.yield_()

    b = dill.bundle()
    for n in range(3):
        dill.bundle_go(b, worker, n)
    for _ in range(3):
        dill.chsend(start0, None)  # wakes them in the order they waited
    dill.bundle_wait(b)
    assert log == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    closing(b, start0, start1)


def test_yield_alone_returns() -> None:
    dill.yield_()


def test_yield_does_not_starve_gevent() -> None:
    ran: list[bool] = []
    g = gevent.spawn(ran.append, True)
    for _ in range(200):
        if ran:
            break
        dill.yield_()
    assert ran == [True]
    g.join()


# hclose: cancellation --------------------------------------------------------


def test_hclose_cancels_blocked_coroutine_and_waits_for_it() -> None:
    log: list[str] = []

    def worker() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled as exc:
            assert exc.errno == errno.ECANCELED
            log.append("canceled")
            raise
        finally:
            log.append("finally")

    h = dill.go(worker)
    dill.hclose(h)
    assert log == ["canceled", "finally"]


def test_cancellation_is_sticky() -> None:
    log: list[str] = []

    def worker() -> None:
        for call in (
            lambda: dill.msleep(-1),
            lambda: dill.msleep(0),
            dill.yield_,
            dill.bundle,
            dill.chmake,
        ):
            try:
                call()
            except dill.Canceled:
                log.append("canceled")

    h = dill.go(worker)
    dill.hclose(h)
    assert log == ["canceled"] * 5


def test_hclose_works_inside_canceled_coroutine() -> None:
    log: list[str] = []

    def grandchild() -> None:
        try:
            dill.msleep(-1)
        finally:
            log.append("grandchild ended")

    def child() -> None:
        inner = dill.go(grandchild)
        try:
            dill.msleep(-1)
        finally:
            dill.hclose(inner)  # cleanup in a canceled coroutine
            log.append("child ended")

    h = dill.go(child)
    dill.hclose(h)
    assert log == ["grandchild ended", "child ended"]


def test_hclose_cancels_coroutine_suspended_in_gevent() -> None:
    log: list[str] = []

    def worker() -> None:
        try:
            gevent.sleep(3600)
        except dill.Canceled:
            log.append("canceled in gevent.sleep")
            raise

    h = dill.go(worker)
    dill.hclose(h)
    assert log == ["canceled in gevent.sleep"]


def test_ready_coroutine_is_not_interrupted_but_fails_at_next_block() -> None:
    log: list[str] = []

    def worker() -> None:
        dill.yield_()  # canceled while queued: this returns normally
        log.append("yield returned")
        try:
            dill.msleep(-1)
        except dill.Canceled:
            log.append("then canceled")
            raise

    h = dill.go(worker)
    dill.hclose(h)
    assert log == ["yield returned", "then canceled"]


def test_hclose_waits_for_busy_coroutine_to_return() -> None:
    log: list[int] = []

    def worker() -> None:
        dill.yield_()
        for i in range(5):  # never blocks again
            log.append(i)

    h = dill.go(worker)
    dill.hclose(h)
    assert log == [0, 1, 2, 3, 4]


def test_hclose_bundle_cancels_in_launch_order() -> None:
    log: list[int] = []

    def worker(n: int) -> None:
        try:
            dill.msleep(-1)
        finally:
            log.append(n)

    b = dill.bundle()
    for n in range(5):
        dill.bundle_go(b, worker, n)
    dill.hclose(b)
    assert log == [0, 1, 2, 3, 4]


def test_canceled_error_in_canceled_coroutine_is_not_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = dill.go(dill.msleep, -1)
    dill.hclose(h)
    assert "Canceled" not in capsys.readouterr().err


def test_hclose_own_bundle_is_edeadlk() -> None:
    errors: list[int] = []
    handle: list[int] = []

    def worker() -> None:
        try:
            dill.hclose(handle[0])
        except OSError as exc:
            errors.append(exc.errno)

    b = dill.bundle()
    handle.append(b)
    dill.bundle_go(b, worker)
    assert errors == [errno.EDEADLK]
    dill.hclose(b)  # still open: the refused close left it alone


def test_user_gevent_timeout_around_hclose_is_raised_after_close() -> None:
    log: list[str] = []

    def stubborn() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            gevent.sleep(0.05)  # cleanup that takes a while in foreign code
            log.append("cleanup done")
            raise

    h = dill.go(stubborn)
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.01):
        dill.hclose(h)
    assert log == ["cleanup done"]
    with pytest.raises(OSError):
        dill.bundle_wait(h, 0)  # the handle is gone


# Failures ------------------------------------------------------------------------


def boom(message: str = "boom") -> None:
    raise ValueError(message)


def test_failure_is_reported_and_raised_by_bundle_wait(capsys: pytest.CaptureFixture[str]) -> None:
    h = dill.go(boom)
    assert "ValueError: boom" in capsys.readouterr().err
    with pytest.raises(ValueError, match="boom"):
        dill.bundle_wait(h)
    dill.bundle_wait(h)  # raised once
    dill.hclose(h)


def test_several_failures_become_an_exception_group(capsys: pytest.CaptureFixture[str]) -> None:
    b = dill.bundle()
    dill.bundle_go(b, boom, "one")
    dill.bundle_go(b, boom, "two")
    with pytest.raises(BaseExceptionGroup) as info:
        dill.bundle_wait(b)
    assert sorted(str(e) for e in info.value.exceptions) == ["one", "two"]
    dill.hclose(b)
    capsys.readouterr()


def test_hclose_reports_but_does_not_raise_failures(capsys: pytest.CaptureFixture[str]) -> None:
    def fails_when_canceled() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            raise ValueError("in cleanup") from None

    h = dill.go(fails_when_canceled)
    dill.hclose(h)
    assert "ValueError: in cleanup" in capsys.readouterr().err


def test_canceled_raised_by_hand_in_uncanceled_coroutine_is_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def raises_canceled() -> None:
        raise dill.Canceled(errno.ECANCELED, "raised by hand")

    h = dill.go(raises_canceled)
    with pytest.raises(dill.Canceled):
        dill.bundle_wait(h)
    dill.hclose(h)
    capsys.readouterr()


# bundle_wait ---------------------------------------------------------------------


def test_bundle_wait_returns_at_once_for_empty_bundle() -> None:
    b = dill.bundle()
    dill.bundle_wait(b, 0)
    dill.hclose(b)


def test_bundle_wait_waits_for_all() -> None:
    log: list[int] = []
    b = dill.bundle()
    for n in (30, 10, 20):
        dill.bundle_go(b, lambda n=n: (dill.msleep(dill.now() + n), log.append(n)))
    dill.bundle_wait(b)
    assert sorted(log) == [10, 20, 30]
    dill.hclose(b)


def test_bundle_wait_etimedout_cancels_nothing_and_can_wait_again() -> None:
    log: list[str] = []
    h = dill.go(lambda: (dill.msleep(dill.now() + 30), log.append("done")))
    deadline = dill.now() + 5
    with pytest.raises(TimeoutError) as info:
        dill.bundle_wait(h, deadline)
    assert info.value.errno == errno.ETIMEDOUT
    assert dill.now() >= deadline
    with pytest.raises(TimeoutError):
        dill.bundle_wait(h, 0)
    dill.bundle_wait(h)
    assert log == ["done"]
    dill.hclose(h)


def test_bundle_wait_ebadf() -> None:
    b = dill.bundle()
    dill.hclose(b)
    with pytest.raises(OSError) as info:
        dill.bundle_wait(b)
    assert info.value.errno == errno.EBADF


def test_bundle_wait_ebadf_when_closed_while_waiting() -> None:
    target = dill.go(dill.msleep, -1)
    result: list[int] = []

    def waiter() -> None:
        try:
            dill.bundle_wait(target)
        except OSError as exc:
            result.append(exc.errno)

    w = dill.go(waiter)
    dill.hclose(target)
    dill.bundle_wait(w)
    assert result == [errno.EBADF]
    dill.hclose(w)


def test_bundle_wait_ecanceled() -> None:
    target = dill.go(dill.msleep, -1)
    result: list[int] = []

    def waiter() -> None:
        try:
            dill.bundle_wait(target)
        except OSError as exc:
            result.append(exc.errno)

    w = dill.go(waiter)
    dill.hclose(w)
    assert result == [errno.ECANCELED]
    dill.hclose(target)


def test_bundle_wait_enotsup() -> None:
    ch0, ch1 = dill.chmake()
    with pytest.raises(OSError) as info:
        dill.bundle_wait(ch0)
    assert info.value.errno == errno.ENOTSUP
    closing(ch0, ch1)


def test_bundle_wait_second_waiter_is_ebusy() -> None:
    target = dill.go(dill.msleep, -1)
    w = dill.go(dill.bundle_wait, target)
    with pytest.raises(OSError) as info:
        dill.bundle_wait(target)
    assert info.value.errno == errno.EBUSY
    dill.hclose(w)
    dill.hclose(target)


# bundle, bundle_go and the storages ------------------------------------------------


def test_bundle_ecanceled() -> None:
    assert _in_canceled_coroutine(dill.bundle) == errno.ECANCELED


def test_go_ecanceled() -> None:
    assert _in_canceled_coroutine(lambda: dill.go(lambda: None)) == errno.ECANCELED


def test_bundle_go_ecanceled() -> None:
    b = dill.bundle()
    assert _in_canceled_coroutine(lambda: dill.bundle_go(b, lambda: None)) == errno.ECANCELED
    dill.hclose(b)


def _in_canceled_coroutine(call: Callable[[], Any]) -> int:
    """Run call in a coroutine after it was canceled; return the errno it raised."""
    result: list[int] = []

    def worker() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            try:
                opened = call()
            except OSError as exc:
                result.append(exc.errno)
            else:
                if isinstance(opened, int):
                    dill.hclose(opened)
            raise

    h = dill.go(worker)
    dill.hclose(h)
    return result[0]


def test_bundle_go_ebadf() -> None:
    b = dill.bundle()
    dill.hclose(b)
    with pytest.raises(OSError) as info:
        dill.bundle_go(b, lambda: None)
    assert info.value.errno == errno.EBADF


def test_bundle_go_enotsup() -> None:
    ch0, ch1 = dill.chmake()
    with pytest.raises(OSError) as info:
        dill.bundle_go(ch0, lambda: None)
    assert info.value.errno == errno.ENOTSUP
    closing(ch0, ch1)


def test_bundle_go_into_bundle_being_closed_is_ecanceled() -> None:
    b = dill.bundle()
    result: list[int] = []

    def worker() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            # Another coroutine's attempt is simulated from cleanup here.
            try:
                dill.bundle_go(b, lambda: None)
            except OSError as exc:
                result.append(exc.errno)
            raise

    dill.bundle_go(b, worker)
    dill.hclose(b)
    assert result == [errno.ECANCELED]


# go()'s handle: a bundle of one until bundle_go or bundle_wait uses it ---------------


def test_bundle_go_into_a_go_handle_joins_its_bundle_and_hclose_cancels_both() -> None:
    log: list[str] = []

    def sleeper(name: str) -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            log.append(name)
            raise

    h = dill.go(sleeper, "first")
    dill.bundle_go(h, sleeper, "second")
    dill.bundle_go(h, sleeper, "third")
    dill.hclose(h)
    assert log == ["first", "second", "third"]  # launch order
    with pytest.raises(OSError) as info:
        dill.bundle_wait(h, 0)
    assert info.value.errno == errno.EBADF


def test_bundle_go_into_a_go_handle_whose_coroutine_ended() -> None:
    h = dill.go(lambda: None)
    ran: list[int] = []
    dill.bundle_go(h, ran.append, 1)
    dill.bundle_wait(h)
    assert ran == [1]
    dill.hclose(h)


def test_bundle_wait_on_a_go_handle_waits_for_its_coroutine() -> None:
    log: list[str] = []

    def worker() -> None:
        dill.msleep(dill.now() + 20)
        log.append("done")

    h = dill.go(worker)
    dill.bundle_wait(h)
    assert log == ["done"]
    dill.bundle_wait(h)  # nothing left: at once
    dill.hclose(h)


def test_bundle_wait_on_a_go_handle_times_out_and_the_coroutine_runs_on() -> None:
    h = dill.go(dill.msleep, dill.now() + 30)
    with pytest.raises(OSError) as info:
        dill.bundle_wait(h, dill.now() + 5)
    assert info.value.errno == errno.ETIMEDOUT
    dill.bundle_wait(h)
    dill.hclose(h)


def test_failure_of_a_go_coroutine_that_ended_later_is_raised_by_bundle_wait(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def late_boom() -> None:
        dill.msleep(dill.now() + 10)
        raise ValueError("late")

    h = dill.go(late_boom)
    dill.msleep(dill.now() + 40)  # it fails while nobody waits on h
    assert "ValueError: late" in capsys.readouterr().err
    dill.bundle_go(h, lambda: None)  # turns the handle into a bundle: the failure stays
    with pytest.raises(ValueError, match="late"):
        dill.bundle_wait(h)
    dill.hclose(h)


def test_go_handle_being_closed_refuses_bundle_go_and_bundle_wait() -> None:
    result: dict[str, int] = {}
    handle: list[int] = []

    def from_outside() -> None:
        # A gevent greenlet that runs while hclose waits for the coroutine's cleanup.
        for name, call in (
            ("bundle_go", lambda: dill.bundle_go(handle[0], lambda: None)),
            ("bundle_wait", lambda: dill.bundle_wait(handle[0], 0)),
        ):
            try:
                call()
            except OSError as exc:
                result[name] = exc.errno or 0

    def slow_cleanup() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            gevent.spawn(from_outside).join()  # foreign blocking is allowed here
            raise

    handle.append(dill.go(slow_cleanup))
    dill.hclose(handle[0])
    assert result == {"bundle_go": errno.ECANCELED, "bundle_wait": errno.EBADF}


def test_hclose_of_its_own_go_handle_is_edeadlk() -> None:
    errors: list[int] = []
    handle: list[int] = []

    def worker() -> None:
        dill.msleep(dill.now() + 5)
        try:
            dill.hclose(handle[0])
        except OSError as exc:
            errors.append(exc.errno)

    handle.append(dill.go(worker))
    dill.bundle_wait(handle[0])
    assert errors == [errno.EDEADLK]
    dill.hclose(handle[0])


def test_hown_moves_a_go_handle() -> None:
    h = dill.go(dill.msleep, -1)
    h2 = dill.hown(h)
    with pytest.raises(OSError) as info:
        dill.hclose(h)
    assert info.value.errno == errno.EBADF
    dill.bundle_go(h2, dill.msleep, -1)
    dill.hclose(h2)


def test_bundle_mem_einval_ebusy_and_reuse() -> None:
    with pytest.raises(OSError) as info:
        dill.bundle_mem(None)  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL
    with pytest.raises(TypeError):
        dill.bundle_mem(object())  # type: ignore[arg-type]
    mem = dill.bundle_storage()
    b = dill.bundle_mem(mem)
    with pytest.raises(OSError) as info:
        dill.bundle_mem(mem)
    assert info.value.errno == errno.EBUSY
    dill.bundle_go(b, lambda: None)
    dill.hclose(b)
    b = dill.bundle_mem(mem)  # reusable once closed
    dill.hclose(b)


def test_bundle_mem_ecanceled() -> None:
    assert _in_canceled_coroutine(lambda: dill.bundle_mem(dill.bundle_storage())) == errno.ECANCELED


def test_go_mem_and_storage_rules() -> None:
    with pytest.raises(OSError) as info:
        dill.go_mem(None, lambda: None)  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL
    mem = dill.go_storage()
    log: list[str] = []
    h = dill.go_mem(mem, lambda: (dill.msleep(-1), log.append("never")))
    with pytest.raises(OSError) as info:
        dill.go_mem(mem, lambda: None)
    assert info.value.errno == errno.EBUSY
    dill.hclose(h)
    h = dill.go_mem(mem, log.append, "again")
    assert log == ["again"]
    dill.hclose(h)
    assert (
        _in_canceled_coroutine(lambda: dill.go_mem(dill.go_storage(), lambda: None))
        == errno.ECANCELED
    )


def test_bundle_go_mem_storage_is_busy_until_the_coroutine_ends() -> None:
    b = dill.bundle()
    mem = dill.go_storage()
    ch0, ch1 = dill.chmake()
    dill.bundle_go_mem(b, mem, dill.chrecv, ch1)
    with pytest.raises(OSError) as info:
        dill.bundle_go_mem(b, mem, lambda: None)
    assert info.value.errno == errno.EBUSY
    dill.chsend(ch0, "go")
    dill.bundle_wait(b)
    dill.bundle_go_mem(b, mem, lambda: None)  # free again
    with pytest.raises(OSError) as info:
        dill.bundle_go_mem(b, None, lambda: None)  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL
    closing(b, ch0, ch1)


def test_bundle_go_mem_ebadf_enotsup_ecanceled() -> None:
    ch0, ch1 = dill.chmake()
    with pytest.raises(OSError) as info:
        dill.bundle_go_mem(ch0, dill.go_storage(), lambda: None)
    assert info.value.errno == errno.ENOTSUP
    dill.hclose(ch0)
    with pytest.raises(OSError) as info:
        dill.bundle_go_mem(ch0, dill.go_storage(), lambda: None)
    assert info.value.errno == errno.EBADF
    dill.hclose(ch1)
    b = dill.bundle()
    assert (
        _in_canceled_coroutine(lambda: dill.bundle_go_mem(b, dill.go_storage(), lambda: None))
        == errno.ECANCELED
    )
    dill.hclose(b)


# Many coroutines ------------------------------------------------------------------------


def test_many_coroutines_cancel_cleanly() -> None:
    b = dill.bundle()
    for i in range(2000):
        dill.bundle_go(b, dill.msleep, dill.now() + 10_000 + i)
    dill.hclose(b)


def test_gevent_greenlet_can_use_greendill() -> None:
    ch0, ch1 = dill.chmake()
    g = gevent.spawn(lambda: dill.chsend(ch1, "from gevent"))
    assert dill.chrecv(ch0) == "from gevent"
    g.join()
    closing(ch0, ch1)


_FIRST_COROUTINE_ENDS_BEFORE_THE_HUB_RAN = """
import greendill as dill
a, b = dill.chmake()
def f():
    dill.chsend(b, 1)
h = dill.go(f)
assert dill.chrecv(a) == 1  # f is woken; it ends with nothing else ready
dill.msleep(dill.now() + 10)
dill.hclose(h)
print("ok")
"""


def test_a_coroutine_can_end_before_the_hub_ever_ran() -> None:
    # A fresh process: the hub has never run. A coroutine that ends with
    # nothing ready returns to the hub; it used to hand the hub's first
    # start a value, and Hub.run() failed with TypeError.
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run(
        [sys.executable, "-c", _FIRST_COROUTINE_ENDS_BEFORE_THE_HUB_RAN],
        check=False,
        capture_output=True,
        timeout=60,
        env=env,
    )
    assert (done.returncode, done.stdout) == (0, b"ok\n"), done.stderr.decode()
