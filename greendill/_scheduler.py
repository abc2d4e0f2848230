"""The scheduler of one OS thread: ready queue, direct switching, the one way to wait.

libdill gives every OS thread a scheduler of its own: a FIFO queue of ready
coroutines, and a poller that is asked for events when nothing is ready.
greendill keeps that shape on top of gevent. gevent's hub is the poller (its
libev loop runs I/O watchers and timers), and greendill keeps its own queue
of ready greenlets, the `Context.ready` deque.

Switching. A greenlet that blocks in greendill switches straight to the head
of the ready queue, without a pass through the hub, as libdill jumps from
coroutine to coroutine. Only when the queue is empty, or after BUDGET direct
switches in a row (libdill polls every 103), does it switch to the hub, so
that I/O and timers are never starved. Whenever the queue is not empty, a
drain callback is scheduled in the hub: whatever way control reaches the hub
(a gevent greenlet dying, a coroutine blocking in gevent code), the queue is
served.

Waiting. Every blocking call is a Waiter: it is woken once, by whichever
comes first of a peer (through the ready queue), its timer, its I/O watcher,
or hclose canceling the coroutine. `Waiter.done` is the latch that makes the
others lose. `block` (and `park`, its no-deadline twin) is the only place
that suspends a greenlet to wait.

Cancellation. A coroutine canceled while it waits in greendill is switched
into with CANCEL, which makes the call it is in raise Canceled; one that is
ready (woken, not yet running) is only marked, and fails at its next blocking
call; one suspended in foreign code (gevent, monkeypatched modules) gets
Canceled thrown in, as gevent's own Timeout would.
"""

from __future__ import annotations

import errno
from collections import deque
from contextlib import suppress
from time import monotonic_ns
from types import MethodType
from typing import Any, Callable, Optional

import gevent
from gevent.exceptions import BlockingSwitchOutError
from gevent.monkey import get_original
from greenlet import GreenletExit, getcurrent, greenlet

from ._errors import Canceled, error

__all__ = [
    "BUDGET",
    "CANCEL",
    "QUEUED",
    "TIMEOUT",
    "Context",
    "Coroutine",
    "Waiter",
    "block",
    "cancel",
    "cannot_block",
    "check_can_block",
    "context",
    "drain",
    "give_way",
    "interrupt",
    "launch",
    "leave",
    "new_coroutine",
    "park",
    "start",
    "suspend",
    "thread_local",
    "waiter_for",
    "wake",
]

#: Direct switches between two passes through the hub.
BUDGET = 64

#: greenlet.switch as a plain function: `switch(g, value)` costs less than
#: `g.switch(value)` where g is sometimes a Coroutine and sometimes another
#: greenlet (the interpreter's method cache works for one class at a site).
switch = greenlet.switch


class _Signal:
    """A value switched into a waiting greenlet that is not a result."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<greendill {self.name}>"


#: The wait is over because the coroutine was canceled.
CANCEL = _Signal("CANCEL")
#: The wait is over because its deadline passed.
TIMEOUT = _Signal("TIMEOUT")


class Context:
    """Everything greendill keeps per OS thread (libdill's dill_ctx)."""

    __slots__ = (
        "budget",
        "closing",
        "drain_pending",
        "fds",
        "free_handles",
        "handles",
        "hub",
        "hub_switch",
        "loop",
        "next_handle",
        "nonblocking",
        "ready",
        "run_callback",
    )

    def __init__(self) -> None:
        hub = gevent.get_hub()
        self.hub = hub
        self.loop = hub.loop
        self.run_callback = hub.loop.run_callback
        # Hub.switch does a getattr for switch_out on every call; the raw
        # greenlet switch does not, and greendill never needs it.
        self.hub_switch: Callable[[], Any] = MethodType(greenlet.switch, hub)
        self.ready: deque[tuple[greenlet, object]] = deque()
        self.budget = BUDGET
        self.drain_pending = False
        self.handles: dict[int, Any] = {}
        self.free_handles: deque[int] = deque()
        self.next_handle = 0
        self.fds: dict[int, Any] = {}
        # Greenlets inside a close callback, where libdill forbids blocking.
        self.closing: list[greenlet] = []
        # How many greenlets cannot block: canceled coroutines that have not
        # ended, and greenlets in self.closing. While it is 0, no call needs
        # to look at the current greenlet to know that it may block.
        self.nonblocking = 0


# Handles are per OS thread, as in libdill. Under monkey.patch_all(),
# threading.local becomes greenlet-local, so the original is used: every
# greenlet of the thread must see the same table.
thread_local = get_original("threading", "local")()


def context() -> Context:
    """Return the calling OS thread's context, made on first use.

    Hot paths read `thread_local.context` themselves and call this only
    when that fails: it saves a function call on every operation.
    """
    try:
        return thread_local.context  # type: ignore[no-any-return]
    except AttributeError:
        c = thread_local.context = Context()
        return c


class Waiter:
    """One blocking call of one greenlet: woken at most once."""

    __slots__ = ("done", "g")

    def __init__(self, g: Any) -> None:
        self.g = g
        self.done = False

    def timed_out(self) -> None:
        # Runs in the hub when the timer fires.
        if not self.done:
            self.done = True
            self.g.switch(TIMEOUT)


def waiter_for(g: Any) -> Any:
    """Return a waiter for g's next wait: a coroutine is its own, reused."""
    if g.__class__ is Coroutine:
        g.done = False
        return g
    return Waiter(g)


def wake(c: Context, w: Waiter, value: object) -> None:
    """Make w's greenlet ready: it resumes with value once its turn comes.

    The caller checks that w is not done yet.
    """
    w.done = True
    _make_ready(c, w.g, value)


def _make_ready(c: Context, g: greenlet, value: object) -> None:
    c.ready.append((g, value))
    if not c.drain_pending:
        c.drain_pending = True
        c.run_callback(drain, c)


def drain(c: Context) -> None:
    """Serve the ready queue from the hub (the callback scheduled when it fills).

    It serves as many greenlets as were ready when it began, so that
    greenlets readying each other cannot keep the hub from polling.
    """
    c.drain_pending = False
    ready = c.ready
    for _ in range(len(ready)):
        if not ready:
            break
        g, value = ready.popleft()
        g.switch(value)
    if ready and not c.drain_pending:
        c.drain_pending = True
        c.run_callback(drain, c)


def suspend(c: Context) -> Any:
    """Switch to the next ready greenlet, or to the hub; return what we are resumed with."""
    if c.budget and c.ready:
        c.budget -= 1
        g, value = c.ready.popleft()
        return g.switch(value)
    c.budget = BUDGET
    return c.hub_switch()


def _unready(c: Context, g: greenlet) -> None:
    # g was woken but will not consume its wake-up: forget it.
    keep = [entry for entry in c.ready if entry[0] is not g]
    c.ready.clear()
    c.ready.extend(keep)


def block(c: Context, w: Waiter, deadline: int, line: Optional[deque[Any]] = None) -> Any:
    """Suspend w's greenlet (the current one) until it is woken.

    Returns the value it was woken with: TIMEOUT once deadline (ms on the
    now() clock; negative = never) has passed, CANCEL when its coroutine was
    canceled, or what the waker passed. The timer is armed only here, that
    is only when the call really waits.

    line, if given, is the queue where peers find w (a channel's senders or
    receivers): w waits at its tail. A peer that wakes w takes it out of the
    line; a timeout, a cancel or an exception takes it out here.

    A foreign exception thrown into the waiting greenlet (gevent.Timeout,
    GreenletExit) propagates, and w is then done: nobody can wake it any more.
    """
    g = w.g
    if g is c.hub:
        raise BlockingSwitchOutError(
            "greendill cannot block inside the hub (an event loop callback)"
        )
    if c.nonblocking and cannot_block(c, g):
        raise error(errno.ECANCELED, "blocking call in a canceled coroutine or close callback")
    timer = None
    if deadline >= 0:
        delay = (deadline * 1_000_000 - monotonic_ns()) / 1e9
        timer = c.loop.timer(delay if delay > 0.0 else 0.0, 0.0)
        # update=True: libev's cached loop time would fire the timer early.
        timer.start(w.timed_out, update=True)
    co = g if g.__class__ is Coroutine else None
    if co is not None:
        co.waiter = w
    if line is not None:
        line.append(w)
    try:
        # suspend(c), written out: this is every wait's path.
        if c.budget and c.ready:
            c.budget -= 1
            nxt, value = c.ready.popleft()
            value = switch(nxt, value)
        else:
            c.budget = BUDGET
            value = c.hub_switch()
        if line is not None and (value is TIMEOUT or value is CANCEL):
            leave(line, w)
        return value
    except BaseException:
        if w.done:
            _unready(c, g)
        w.done = True
        if line is not None:
            leave(line, w)
        raise
    finally:
        if co is not None:
            co.waiter = None
        if timer is not None:
            timer.stop()


def park(c: Context, w: Waiter, line: Optional[deque[Any]] = None) -> Any:
    """block(c, w, -1, line): wait with no deadline, the most common wait.

    The same as block without a timer to arm or stop, written apart because
    every channel, socket and msleep(-1) wait takes this path (block's checks
    for the deadline and its call cost about 5% of a channel round trip).
    """
    g = w.g
    if g is c.hub or c.nonblocking:
        return block(c, w, -1, line)  # it raises what it must
    if line is not None:
        line.append(w)
    is_coroutine = g.__class__ is Coroutine
    if is_coroutine:
        g.waiter = w
    try:
        # suspend(c), written out.
        if c.budget and c.ready:
            c.budget -= 1
            nxt, value = c.ready.popleft()
            value = switch(nxt, value)
        else:
            c.budget = BUDGET
            value = c.hub_switch()
    except BaseException:
        if w.done:
            _unready(c, g)
        w.done = True
        if line is not None:
            leave(line, w)
        raise
    finally:
        if is_coroutine:
            g.waiter = None
    if value.__class__ is _Signal and line is not None:
        leave(line, w)  # canceled: no peer took it out
    return value


def leave(line: deque[Any], w: Waiter) -> None:
    """Take w out of line, unless a peer took it out already."""
    with suppress(ValueError):
        line.remove(w)


#: The waiter of a coroutine that sits in the ready queue (go, yield_) or
#: waits in hclose for another to end: a cancel must not interrupt it.
QUEUED = Waiter(None)
QUEUED.done = True


class Coroutine(greenlet):
    """The greenlet of one greendill coroutine, and the handle object of go().

    bundle is the object that owns it: the coroutine is a key of its
    `members` dict while it runs, and its `finished(co, failure)` is called
    when the coroutine's function has returned. A coroutine started by go()
    has no bundle (None): it is itself the object behind go()'s handle, a
    bundle of one, which saves go+hclose a bundle object and its dict (they
    are most of what a go() allocates). bundle_go and bundle_wait on such a
    handle first turn it into a real bundle (see _coroutines.promote);
    until then an exception that escaped it waits in failure. waiter is the
    Waiter it is blocked on, QUEUED while it sits in the ready queue, None
    while it runs or is suspended in foreign code; closer is the greenlet
    that waits in hclose for it to end. g and done make it a Waiter of its own.
    """

    def timed_out(self) -> None:
        # Waiter.timed_out, for a coroutine that is its own waiter.
        if not self.done:
            self.done = True
            self.switch(TIMEOUT)

    __slots__ = (
        "bundle",
        "canceled",
        "closer",
        "ctx",
        "done",
        "failure",
        "g",
        "job",
        "waiter",
    )
    bundle: Any
    canceled: bool
    closer: Optional[greenlet]
    failure: Optional[BaseException]
    # A coroutine is its own Waiter (see waiter_for): its waits allocate nothing.
    done: bool
    g: Optional[Coroutine]
    ctx: Context
    # (fn, args, kwargs or None) from start() until _body takes it.
    job: Optional[tuple[Callable[..., Any], tuple[Any, ...], Optional[dict[str, Any]]]]
    waiter: Optional[Waiter]

    # The hvfs protocol, for the handle of go() (a bundle of one).

    def query(self, type: object) -> Any:
        return None

    def close(self) -> None:
        """Cancel the coroutine and return once it has ended (bundle_storage.close's twin)."""
        cur = getcurrent()
        if cur is self:
            raise error(errno.EDEADLK, "hclose")
        self.failure = None  # the hub has reported it; nobody can wait for it any more
        if self.dead:
            return
        if self.closer is not None:
            raise error(errno.EBADF, "hclose")  # another hclose is ending it
        c = self.ctx
        if not self.canceled:  # cancel(c, self), written out
            self.canceled = True
            c.nonblocking += 1
        pending = interrupt(c, cur, self)
        if pending is not None:
            raise pending

    def __repr__(self) -> str:
        state = "dead" if self.dead else ("canceled" if self.canceled else "alive")
        return f"<greendill coroutine at {id(self):#x} {state}>"


def _body() -> Any:
    """What every Coroutine runs (its greenlet run): the job start() gave it, then the end.

    A plain function rather than a `run` method, and a job kept in a slot
    rather than passed to switch(): greenlet would otherwise allocate a bound
    method and keep an argument tuple for the coroutine's whole life, and
    each of them is one more object for the cyclic GC to track per
    coroutine (with go()'s handle being the coroutine, go+hclose went from
    16.2 to 12.8 us; see benchmarks/README.md).
    """
    self: Any = getcurrent()
    fn, args, kwargs = self.job
    self.job = None
    failure: Optional[BaseException] = None
    try:
        # fn(*args) is a call from C to C in the interpreter, and the frame
        # it adds stays on the C stack that greenlet saves for a parked
        # coroutine; fn() and fn(a) are not (about 400 bytes per parked
        # coroutine on 3.11, see benchmarks/README.md). And fn(a) lets the
        # args tuple go first: one object less for the GC to visit while
        # the coroutine lives (go+hclose 3-5% faster).
        if kwargs:
            fn(*args, **kwargs)
        elif not args:
            fn()
        elif len(args) == 1:
            arg = args[0]
            args = ()
            fn(arg)
        else:
            fn(*args)
    except GreenletExit:
        pass
    except Canceled as exc:
        # Canceled that the cancellation itself caused is how a canceled
        # coroutine ends, not a failure.
        if not self.canceled:
            failure = exc
    except BaseException as exc:
        failure = exc
    c = self.ctx
    self.g = None  # it referred to itself
    if self.canceled:
        c.nonblocking -= 1
    if failure is not None:
        c.hub.handle_error(self, type(failure), failure, failure.__traceback__)
    b = self.bundle
    if b is not None:
        b.finished(self, failure)
    elif failure is not None and self.closer is None:
        self.failure = failure  # for a bundle_wait on go()'s handle
    failure = None
    if self.closer is not None:
        return None  # our parent is the closer: dying switches to it
    if c.budget and c.ready:
        # Die into the next ready greenlet instead of passing through the hub.
        g, value = c.ready.popleft()
        try:
            self.parent = g
        except ValueError:  # g descends from us; let the hub serve it
            c.ready.appendleft((g, value))
            return None
        c.budget -= 1
        return value
    c.budget = BUDGET
    return None


def new_coroutine(c: Context, bundle: Any) -> Coroutine:
    """Make a coroutine of bundle (None: go()'s bundle of one), not started yet."""
    co = Coroutine(_body, c.hub)
    co.ctx = c
    co.bundle = bundle
    co.canceled = False
    co.closer = None
    co.failure = None
    co.waiter = None
    co.g = co
    co.done = False
    if bundle is not None:
        bundle.members[co] = None
    return co


def launch(
    c: Context,
    bundle: Any,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Coroutine:
    """Start fn(*args, **kwargs) as a coroutine of bundle, at once, as libdill's go does."""
    co = new_coroutine(c, bundle)
    start(c, co, fn, args, kwargs)
    return co


def start(
    c: Context,
    co: Coroutine,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Run co (from new_coroutine) at once, until it blocks or ends.

    The caller goes to the tail of the ready queue and the child runs until
    it blocks or ends; the caller resumes after the greenlets that were ready
    before it.
    """
    co.job = (fn, args, kwargs or None)
    cur: Any = getcurrent()
    if not c.hub and not c.hub.dead and cur is not c.hub:
        _start_hub(c, cur)
    if cur is c.hub:
        # A callback of the hub: it resumes when the child's chain of
        # switches reaches the hub.
        co.switch()
        return
    # give_way's queueing, with a switch to the child instead of suspend.
    c.ready.append((cur, None))
    if not c.drain_pending:
        c.drain_pending = True
        c.run_callback(drain, c)
    if cur.__class__ is Coroutine:
        cur.waiter = QUEUED
        try:
            co.switch()
        except BaseException:
            _unready(c, cur)
            raise
        finally:
            cur.waiter = None
    else:
        try:
            co.switch()
        except BaseException:
            _unready(c, cur)
            raise


def _start_hub(c: Context, cur: Any) -> None:
    # A coroutine that ends returns to its parent, the hub, handing it a
    # value; a hub that has never run would take the value as an argument
    # of Hub.run() and fail (TypeError). So the hub is started before the
    # first coroutine runs, as gevent.sleep(0) starts it: it runs its
    # loop once and switches back.
    c.loop.run_callback(cur.switch)
    c.hub_switch()


def give_way(c: Context, cur: Any) -> None:
    """Put cur at the tail of the ready queue and run the others first (libdill's yield)."""
    if cur is c.hub:
        raise BlockingSwitchOutError(
            "greendill cannot yield inside the hub (an event loop callback)"
        )
    _make_ready(c, cur, None)
    is_coroutine = cur.__class__ is Coroutine
    if is_coroutine:
        cur.waiter = QUEUED
    try:
        suspend(c)
    except BaseException:
        _unready(c, cur)
        raise
    finally:
        if is_coroutine:
            cur.waiter = None


def interrupt(c: Context, closer: Any, co: Coroutine) -> Optional[BaseException]:
    """Cancel co and return once it has ended (the core of hclose on a bundle).

    co is already marked canceled. Its death switches straight to closer.
    An exception thrown into closer meanwhile (a gevent.Timeout around
    hclose) cannot stop the wait, because co's death must find closer
    waiting; it is returned, for the caller to raise once all is done.
    """
    pending: Optional[BaseException] = None
    closer_is_coroutine = closer.__class__ is Coroutine
    if closer_is_coroutine:
        closer.waiter = QUEUED
    co.closer = closer
    co.parent = closer
    w = co.waiter
    try:
        if w is None:
            # Suspended in foreign code (or not a greendill wait at all).
            co.throw(error(errno.ECANCELED, "hclose"))
        elif not w.done:
            w.done = True
            co.switch(CANCEL)
        # else: co is ready and runs on to its next blocking call.
    except BaseException as exc:
        pending = exc
    while not co.dead:
        try:
            suspend(c)
        except BaseException as exc:
            if pending is None:
                pending = exc
    if closer_is_coroutine:
        closer.waiter = None
    return pending


def cancel(c: Context, co: Coroutine) -> None:
    """Mark co canceled: from now on, every blocking call in it raises Canceled."""
    if not co.canceled and not co.dead:
        co.canceled = True
        c.nonblocking += 1


def check_can_block(c: Context, function: str) -> None:
    """Raise ECANCELED if the calling greenlet may not block (calls that check first)."""
    if c.nonblocking and cannot_block(c, getcurrent()):
        raise error(errno.ECANCELED, function)


def cannot_block(c: Context, g: greenlet) -> bool:
    """Whether g may not block: a canceled coroutine, or inside a close callback.

    Calls that check first (libdill's dill_canblock) raise Canceled when this
    is true, even if they could complete at once.
    """
    return (isinstance(g, Coroutine) and g.canceled) or g in c.closing
