"""hmake, hquery, hclose, hown, and handles per OS thread (reference section 3)."""

from __future__ import annotations

import errno
from typing import Any

import pytest

import greendill as dill
from greendill.testing import run_in_os_thread

MY_TYPE = object()


class Thing:
    """A user object made a handle with hmake, as a protocol layer would be."""

    def __init__(self) -> None:
        self.closed = 0
        self.interface = object()

    def query(self, type: object) -> Any:
        return self.interface if type is MY_TYPE else None

    def close(self) -> None:
        self.closed += 1


def test_hmake_hquery_hclose_user_object() -> None:
    thing = Thing()
    h = dill.hmake(thing)
    assert isinstance(h, int) and h >= 0
    assert dill.hquery(h, MY_TYPE) is thing.interface
    dill.hclose(h)
    assert thing.closed == 1


def test_hvfs_protocol_is_runtime_checkable() -> None:
    assert isinstance(Thing(), dill.hvfs)
    assert not isinstance(object(), dill.hvfs)


def test_hquery_enotsup_for_unknown_type() -> None:
    h = dill.hmake(Thing())
    with pytest.raises(OSError) as info:
        dill.hquery(h, object())
    assert info.value.errno == errno.ENOTSUP
    dill.hclose(h)


def test_hquery_errno_raised_by_the_object() -> None:
    class Picky(Thing):
        def query(self, type: object) -> Any:
            raise OSError(errno.EPROTO, "picky")

    h = dill.hmake(Picky())
    with pytest.raises(OSError) as info:
        dill.hquery(h, MY_TYPE)
    assert info.value.errno == errno.EPROTO
    dill.hclose(h)


def test_hquery_ebadf() -> None:
    h = dill.hmake(Thing())
    dill.hclose(h)
    with pytest.raises(OSError) as info:
        dill.hquery(h, MY_TYPE)
    assert info.value.errno == errno.EBADF


@pytest.mark.parametrize(
    "bad", [None, object(), type("OnlyQuery", (), {"query": lambda self, t: None})()]
)
def test_hmake_einval(bad: Any) -> None:
    with pytest.raises(OSError) as info:
        dill.hmake(bad)
    assert info.value.errno == errno.EINVAL


def test_hmake_ecanceled() -> None:
    result: list[int] = []

    def worker() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            try:
                dill.hclose(dill.hmake(Thing()))
            except OSError as exc:
                result.append(exc.errno)
            raise

    dill.hclose(dill.go(worker))
    assert result == [errno.ECANCELED]


def test_hclose_ebadf_for_never_opened_negative_and_closed() -> None:
    h = dill.hmake(Thing())
    dill.hclose(h)
    for bad in (h, -1, 10**9):
        with pytest.raises(OSError) as info:
            dill.hclose(bad)
        assert info.value.errno == errno.EBADF


def test_handle_of_wrong_python_type_is_typeerror() -> None:
    with pytest.raises(TypeError):
        dill.hclose("3")  # type: ignore[arg-type]


def test_blocking_inside_close_callback_is_ecanceled() -> None:
    result: list[int] = []

    class Blocker(Thing):
        def close(self) -> None:
            try:
                dill.msleep(dill.now() + 1000)
            except OSError as exc:
                result.append(exc.errno)

    dill.hclose(dill.hmake(Blocker()))
    assert result == [errno.ECANCELED]


def test_close_that_refuses_with_oserror_keeps_the_handle() -> None:
    class Refuses(Thing):
        def close(self) -> None:
            self.closed += 1
            if self.closed == 1:
                raise OSError(errno.EBUSY, "not yet")

    h = dill.hmake(Refuses())
    with pytest.raises(OSError):
        dill.hclose(h)
    dill.hclose(h)  # still open, closes now


def test_hown_moves_the_object_to_a_new_number() -> None:
    thing = Thing()
    h = dill.hmake(thing)
    h2 = dill.hown(h)
    assert h2 != h
    with pytest.raises(OSError) as info:
        dill.hquery(h, MY_TYPE)
    assert info.value.errno == errno.EBADF
    assert dill.hquery(h2, MY_TYPE) is thing.interface
    dill.hclose(h2)
    assert thing.closed == 1


def test_hown_ebadf() -> None:
    with pytest.raises(OSError) as info:
        dill.hown(10**9)
    assert info.value.errno == errno.EBADF


def test_numbers_are_not_reused_at_once() -> None:
    first = dill.hmake(Thing())
    dill.hclose(first)
    opened = [dill.hmake(Thing()) for _ in range(8)]
    assert first not in opened
    for h in opened:
        dill.hclose(h)


def test_each_os_thread_has_its_own_handles() -> None:
    h = dill.hmake(Thing())
    seen: list[Any] = []

    def other_thread() -> None:
        try:
            dill.hquery(h, MY_TYPE)
        except OSError as exc:
            seen.append(exc.errno)
        # The thread runs coroutines and channels of its own.
        ch0, ch1 = dill.chmake()
        co = dill.go(lambda: dill.chsend(ch1, "hello"))
        seen.append(dill.chrecv(ch0))
        dill.hclose(co)
        dill.hclose(ch0)
        dill.hclose(ch1)

    # A real OS thread in both runs (patched, threading.Thread is a greenlet);
    # it destroys the thread's hub before the thread ends, as gevent asks.
    run_in_os_thread(other_thread)
    assert seen == [errno.EBADF, "hello"]
    dill.hclose(h)
