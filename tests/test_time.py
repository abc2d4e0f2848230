"""now, msleep, and deadlines (reference sections 0 and 2)."""

from __future__ import annotations

import errno
import time

import gevent
import pytest

import greendill as dill


def test_now_is_monotonic_ms() -> None:
    a = dill.now()
    time.sleep(0.005)
    b = dill.now()
    assert isinstance(a, int) and a not in (0, -1)
    assert b - a >= 5


def test_msleep_sleeps_at_least_until_deadline() -> None:
    for delay in (0, 1, 2, 5, 13):
        deadline = dill.now() + delay
        dill.msleep(deadline)
        assert dill.now() >= deadline


def test_timeouts_never_fire_early() -> None:
    ch0, ch1 = dill.chmake()
    for delay in range(1, 12):
        deadline = dill.now() + delay
        with pytest.raises(TimeoutError):
            dill.chrecv(ch0, deadline)
        assert dill.now() >= deadline
    dill.hclose(ch0)
    dill.hclose(ch1)


def test_msleep_in_the_past_yields_once() -> None:
    log: list[str] = []

    def other() -> None:
        dill.yield_()
        log.append("other ran")

    h = dill.go(other)
    dill.msleep(dill.now() - 1000)
    assert log == ["other ran"]
    dill.hclose(h)


def test_msleep_forever_until_canceled() -> None:
    log: list[str] = []

    def sleeper() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            log.append("canceled")
            raise

    h = dill.go(sleeper)
    dill.msleep(dill.now() + 5)
    assert log == []
    dill.hclose(h)
    assert log == ["canceled"]


def test_msleep_ecanceled() -> None:
    result: list[int] = []

    def worker() -> None:
        try:
            dill.msleep(dill.now() + 10_000)
        except OSError as exc:
            result.append(exc.errno)

    dill.hclose(dill.go(worker))
    assert result == [errno.ECANCELED]


def test_deadline_of_wrong_type_is_typeerror() -> None:
    with pytest.raises(TypeError):
        dill.msleep(1.5)  # type: ignore[arg-type]


def test_user_gevent_timeout_works_around_a_greendill_call() -> None:
    ch0, ch1 = dill.chmake()
    timeout = gevent.Timeout(0.01)
    with pytest.raises(gevent.Timeout) as info, timeout:
        dill.chrecv(ch0)
    assert info.value is timeout
    # The interrupted receive left nothing queued: a sender finds no receiver.
    with pytest.raises(TimeoutError):
        dill.chsend(ch1, "x", 0)
    dill.hclose(ch0)
    dill.hclose(ch1)


def test_gevent_timeout_raised_in_coroutine() -> None:
    caught: list[str] = []

    def worker() -> None:
        try:
            with gevent.Timeout(0.005):
                dill.msleep(-1)
        except gevent.Timeout:
            caught.append("timeout")

    h = dill.go(worker)
    dill.bundle_wait(h)
    assert caught == ["timeout"]
    dill.hclose(h)
