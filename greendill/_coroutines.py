"""Coroutines and bundles: go, bundle_go, bundle_wait, yield_.

A coroutine is a function running in a greenlet of its own, started at once
by go() (libdill's order: the child runs first, the caller resumes after the
coroutines that were ready before it). Every coroutine belongs to a bundle,
and the bundle is the handle: go() makes a bundle of one. hclose on a bundle
cancels its coroutines, in the order they were launched, and returns once
they have all ended; bundle_wait waits for them to end by themselves.

Beyond libdill: an exception that escapes a coroutine is never lost. The hub
reports it with its traceback when it happens, and the next bundle_wait on
its bundle raises it (several become an ExceptionGroup). Canceled raised by
the cancellation itself is how a canceled coroutine ends, not a failure.
"""

from __future__ import annotations

import errno
import sys
from typing import Any, Callable, Optional

from greenlet import getcurrent

from ._errors import error
from ._handles import SPARE_HANDLES, hclose, lookup, new_handle
from ._scheduler import (
    CANCEL,
    TIMEOUT,
    Context,
    Coroutine,
    Waiter,
    block,
    cancel,
    cannot_block,
    check_can_block,
    context,
    give_way,
    interrupt,
    launch,
    new_coroutine,
    start,
    thread_local,
    waiter_for,
    wake,
)
from ._time import check_deadline, expired

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:
    from exceptiongroup import BaseExceptionGroup

__all__ = [
    "bundle",
    "bundle_go",
    "bundle_go_mem",
    "bundle_mem",
    "bundle_storage",
    "bundle_wait",
    "go",
    "go_mem",
    "go_storage",
    "yield_",
]


class bundle_storage:
    """Memory for a bundle, for bundle_mem (libdill's struct bundle_storage).

    The bundle lives in this object; it can be used again once the bundle's
    handle is closed.
    """

    __slots__ = ("closing", "failures", "is_open", "members", "waiter")

    def __init__(self) -> None:
        # Insertion order is launch order, the order hclose cancels in.
        self.members: dict[Coroutine, None] = {}
        self.failures: Optional[list[BaseException]] = None
        self.waiter: Optional[Waiter] = None
        self.is_open = False
        self.closing = False

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        return None

    def close(self) -> None:
        try:
            c = thread_local.context
        except AttributeError:
            c = context()
        cur = getcurrent()
        if self.closing:
            raise error(errno.EBADF, "hclose")
        if isinstance(cur, Coroutine) and cur.bundle is self:
            raise error(errno.EDEADLK, "hclose")
        self.closing = True
        members = list(self.members)
        for co in members:
            cancel(c, co)
        pending: Optional[BaseException] = None
        for co in members:
            if not co.dead:
                exc = interrupt(c, cur, co)
                if pending is None:
                    pending = exc
        w = self.waiter
        if w is not None and not w.done:
            wake(c, w, errno.EBADF)
        # The hub has reported them; nobody can wait for them any more.
        self.failures = None
        self.closing = False
        self.is_open = False
        if pending is not None:
            raise pending

    # What the scheduler tells a coroutine's bundle.

    def finished(self, co: Coroutine, failure: Optional[BaseException]) -> None:
        del self.members[co]
        if self.closing:
            return  # close() tells the waiter, with EBADF
        if failure is not None:
            if self.failures is None:
                self.failures = []
            self.failures.append(failure)
        w = self.waiter
        if not self.members and w is not None and not w.done:
            wake(co.ctx, w, None)


class go_storage(bundle_storage):
    """Memory for a coroutine, for go_mem and bundle_go_mem.

    libdill puts the coroutine's stack (and, for go_mem, its bundle) in
    caller memory. A Python greenlet's stack cannot live there, so this
    object carries the bundle of go_mem, and it keeps libdill's rule that
    one storage serves one coroutine at a time: it can be used again once
    the coroutine has ended and, for go_mem, its handle is closed.
    """

    __slots__ = ("coroutine_running",)

    def __init__(self) -> None:
        super().__init__()
        self.coroutine_running = False


def _bundle_of(c: Context, b: int, function: str) -> bundle_storage:
    obj = lookup(c, b, function)
    if obj.__class__ is Coroutine:
        if obj.closer is not None and not obj.dead:
            raise error(errno.ECANCELED, function)  # being closed
        return promote(c, b, obj)
    if not isinstance(obj, bundle_storage):
        raise error(errno.ENOTSUP, function)
    if obj.closing:
        # Being closed: anything launched in it would be canceled at once.
        raise error(errno.ECANCELED, function)
    return obj


def promote(c: Context, b: int, co: Coroutine) -> bundle_storage:
    """Turn go()'s handle b, whose object is the coroutine co, into a real bundle.

    go() makes no bundle object (the coroutine is its own handle object): the
    first bundle_go or bundle_wait on its handle makes one, with co as its
    member (if co still runs) and co's failure, if one escaped it.
    """
    obj = bundle_storage()
    obj.is_open = True
    if co.failure is not None:
        obj.failures = [co.failure]
        co.failure = None
    if not co.dead:
        obj.members[co] = None
        co.bundle = obj
    c.handles[b] = obj
    return obj


def _check_callable(fn: object, function: str) -> None:
    if not callable(fn):
        raise TypeError(f"{function}: {type(fn).__name__} object is not callable")


def _open_bundle(c: Context, mem: bundle_storage) -> int:
    mem.is_open = True
    return new_handle(c, mem)


def go(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Launch fn(*args, **kwargs) as a coroutine, in a bundle of its own.

    The coroutine runs at once, inside this call, until it blocks or ends;
    the caller then resumes after the coroutines that were already ready.
    fn's return value is discarded; an exception that escapes fn is reported
    with its traceback and raised by bundle_wait on the returned handle.
    hclose on the handle cancels the coroutine and waits for it to end.

    Parameters:
        fn: the function to run.
        args, kwargs: its arguments.
    Returns: the handle of the new bundle; it stays valid after the
        coroutine has ended, until hclose.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EMFILE, ENFILE, ENOMEM: never raised (Python raises MemoryError).
    """
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    if c.nonblocking:  # saves the call on every go while nothing is canceled
        check_can_block(c, "go")
    _check_callable(fn, "go")
    # The coroutine is its own handle object, a bundle of one (see promote).
    co = new_coroutine(c, None)
    # new_handle(c, co), written out: go+hclose is the hot pair of structured code.
    free = c.free_handles
    h: int
    if len(free) > SPARE_HANDLES:
        h = free.popleft()
    else:
        h = c.next_handle
        c.next_handle = h + 1
    c.handles[h] = co
    try:
        start(c, co, fn, args, kwargs)
    except BaseException:
        # Interrupted before the caller could learn the handle: cancel the child.
        hclose(h)
        raise
    return h


def _go(c: Context, mem: bundle_storage, fn: Callable[..., Any], args: Any, kwargs: Any) -> int:
    h = _open_bundle(c, mem)
    try:
        launch(c, mem, fn, args, kwargs)
    except BaseException:
        # Interrupted before the caller could learn the handle: cancel the child.
        hclose(h)
        raise
    return h


def go_mem(mem: go_storage, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Launch a coroutine, as go does, with its bundle in mem.

    Parameters:
        mem: a go_storage() not in use.
        fn: the function to run.
        args, kwargs: its arguments.
    Returns: the handle of the new bundle, which lives in mem.
    Errors:
        EBUSY: mem still holds a bundle or coroutine that has not ended.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: mem is None.
        EMFILE, ENFILE, ENOMEM: never raised (Python raises MemoryError).
    """
    mem = _check_storage(mem, go_storage, "go_mem")
    if mem.is_open or mem.coroutine_running:
        raise error(errno.EBUSY, "go_mem")
    c = context()
    check_can_block(c, "go_mem")
    _check_callable(fn, "go_mem")
    return _go(c, mem, fn, args, kwargs)


def _check_storage(mem: Any, cls: type, function: str) -> Any:
    if mem is None:
        raise error(errno.EINVAL, function)
    if not isinstance(mem, cls):
        raise TypeError(f"{function}: mem is a {cls.__name__}(), not {type(mem).__name__}")
    return mem


def bundle() -> int:
    """Create an empty bundle, for launching coroutines with bundle_go.

    Parameters: none.
    Returns: the handle of the bundle.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EMFILE, ENFILE, ENOMEM: never raised (Python raises MemoryError).
    """
    c = context()
    check_can_block(c, "bundle")
    return _open_bundle(c, bundle_storage())


def bundle_mem(mem: bundle_storage) -> int:
    """Create an empty bundle that lives in mem.

    Parameters:
        mem: a bundle_storage() (or go_storage()) not in use.
    Returns: the handle of the bundle.
    Errors:
        EBUSY: mem holds a bundle whose handle is still open.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: mem is None.
        EMFILE, ENFILE, ENOMEM: never raised (Python raises MemoryError).
    """
    mem = _check_storage(mem, bundle_storage, "bundle_mem")
    if mem.is_open or (isinstance(mem, go_storage) and mem.coroutine_running):
        raise error(errno.EBUSY, "bundle_mem")
    c = context()
    check_can_block(c, "bundle_mem")
    return _open_bundle(c, mem)


def bundle_go(b: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Launch fn(*args, **kwargs) as a coroutine in bundle b.

    It runs at once, as with go. b may be a handle returned by go.

    Parameters:
        b: the bundle.
        fn: the function to run.
        args, kwargs: its arguments.
    Returns: None.
    Errors:
        EBADF: b is not an open handle.
        ECANCELED: the calling coroutine was canceled, or b is being closed.
        ENOMEM: never raised (Python raises MemoryError).
        ENOTSUP: b is not a bundle.
    """
    c = context()
    check_can_block(c, "bundle_go")
    obj = _bundle_of(c, b, "bundle_go")
    _check_callable(fn, "bundle_go")
    launch(c, obj, fn, args, kwargs)


def bundle_go_mem(
    b: int, mem: go_storage, fn: Callable[..., Any], *args: Any, **kwargs: Any
) -> None:
    """Launch a coroutine in bundle b, as bundle_go does, using mem.

    Parameters:
        b: the bundle.
        mem: a go_storage() not in use; it is free again once the coroutine ends.
        fn: the function to run.
        args, kwargs: its arguments.
    Returns: None.
    Errors:
        EBADF: b is not an open handle.
        EBUSY: mem still holds a bundle or coroutine that has not ended.
        ECANCELED: the calling coroutine was canceled, or b is being closed.
        EINVAL: mem is None.
        ENOTSUP: b is not a bundle.
    """
    mem = _check_storage(mem, go_storage, "bundle_go_mem")
    c = context()
    check_can_block(c, "bundle_go_mem")
    obj = _bundle_of(c, b, "bundle_go_mem")
    if mem.is_open or mem.coroutine_running:
        raise error(errno.EBUSY, "bundle_go_mem")
    _check_callable(fn, "bundle_go_mem")

    def run_in_storage() -> None:
        try:
            fn(*args, **kwargs)
        finally:
            mem.coroutine_running = False

    mem.coroutine_running = True
    try:
        launch(c, obj, run_in_storage, (), {})
    except BaseException:
        mem.coroutine_running = False
        raise


def bundle_wait(b: int, deadline: int = -1) -> None:
    """Wait until every coroutine of bundle b has ended.

    On a deadline nothing is canceled: the coroutines run on, and
    bundle_wait can be called again. Once all have ended, the exceptions
    that escaped them since the last bundle_wait are raised: one as itself,
    several as an ExceptionGroup.

    Parameters:
        b: the bundle.
        deadline: a point in time in ms (see now()); -1 for never, 0 to
            check without waiting.
    Returns: None.
    Errors:
        EBADF: b is not an open handle, or it was closed while waiting.
        EBUSY: another greenlet already waits for b (libdill lets the second
            waiter replace the first; greendill refuses it).
        ECANCELED: the calling coroutine was canceled.
        ENOTSUP: b is not a bundle.
        ETIMEDOUT: the deadline passed before every coroutine ended.
    """
    c = context()
    cur = getcurrent()
    if c.nonblocking and cannot_block(c, cur):
        raise error(errno.ECANCELED, "bundle_wait")
    obj = lookup(c, b, "bundle_wait")
    if obj.__class__ is Coroutine:
        if obj.closer is not None and not obj.dead:
            raise error(errno.EBADF, "bundle_wait")  # being closed
        obj = promote(c, b, obj)
    if not isinstance(obj, bundle_storage):
        raise error(errno.ENOTSUP, "bundle_wait")
    if obj.waiter is not None:
        raise error(errno.EBUSY, "bundle_wait")
    if obj.closing:
        raise error(errno.EBADF, "bundle_wait")
    if obj.members:
        check_deadline(deadline, "bundle_wait")
        if expired(deadline):
            raise error(errno.ETIMEDOUT, "bundle_wait")
        w = obj.waiter = waiter_for(cur)
        try:
            outcome = block(c, w, deadline)
        finally:
            obj.waiter = None
        if outcome is TIMEOUT:
            raise error(errno.ETIMEDOUT, "bundle_wait")
        if outcome is CANCEL:
            raise error(errno.ECANCELED, "bundle_wait")
        if outcome is not None:
            raise error(outcome, "bundle_wait")
    failures = obj.failures
    if failures:
        obj.failures = None
        if len(failures) == 1:
            raise failures[0]
        raise BaseExceptionGroup(f"bundle_wait: {len(failures)} coroutines failed", failures)


def yield_() -> None:
    """Let the other ready coroutines run, then resume (libdill's yield).

    The calling coroutine goes to the tail of the ready queue. Every 64
    switches greendill also lets gevent's hub poll for I/O and run timers
    and gevent greenlets, so a loop of yield_ cannot starve them.

    Parameters: none.
    Returns: None.
    Errors:
        ECANCELED: the calling coroutine was canceled.
    """
    c = context()
    cur = getcurrent()
    if c.nonblocking and cannot_block(c, cur):
        raise error(errno.ECANCELED, "yield_")
    give_way(c, cur)
