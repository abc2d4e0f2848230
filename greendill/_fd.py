"""Waiting on raw file descriptors: fdin, fdout, fdclean.

libdill's poller keeps state per fd; greendill keeps, per fd and per OS
thread, one gevent read watcher and one write watcher, made on first use and
reused by every wait on that fd until fdclean forgets them. One greenlet at a
time may wait for each direction of an fd (EBUSY otherwise), as in libdill.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any, Optional

from gevent.monkey import get_original
from greenlet import getcurrent

from ._errors import error
from ._scheduler import CANCEL, TIMEOUT, Context, Waiter, block, cannot_block, context, waiter_for
from ._time import check_deadline, expired

__all__ = ["fdclean", "fdin", "fdout", "ready_callback", "ready_now"]

_READ = 1  # libev's EV_READ
_WRITE = 2  # libev's EV_WRITE

# The real poll, for deadline 0: gevent's monkeypatching removes select.poll.
_poll = get_original("select", "poll")
_POLLIN = 0x001
_POLLOUT = 0x004
_POLLERRORS = 0x008 | 0x010 | 0x020  # POLLERR, POLLHUP, POLLNVAL


class _FdState:
    """What greendill knows of one fd: its watchers and who waits on them."""

    __slots__ = ("fd", "readers", "watchers", "writers")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.watchers: list[Any] = [None, None, None]  # indexed by _READ, _WRITE
        self.readers: Optional[Waiter] = None
        self.writers: Optional[Waiter] = None

    def watcher(self, c: Context, events: int) -> Any:
        watcher = self.watchers[events]
        if watcher is None:
            watcher = self.watchers[events] = c.loop.io(self.fd, events)
        return watcher


def _state(c: Context, fd: int, function: str) -> _FdState:
    state = c.fds.get(fd)
    if state is None:
        if not isinstance(fd, int):
            raise TypeError(f"{function}: fd is an int, not {type(fd).__name__}")
        if fd < 0:
            raise error(errno.EBADF, function)
        try:
            mode = os.fstat(fd).st_mode
        except OSError as exc:
            raise error(exc.errno or errno.EBADF, function) from None
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            # epoll cannot watch files: they are always ready.
            raise error(errno.ENOTSUP, function)
        state = c.fds[fd] = _FdState(fd)
    return state


def ready_now(fd: int, events: int) -> bool:
    """Whether fd is readable (events 1) or writable (2) this instant: poll(0)."""
    poller = _poll()
    poller.register(fd, _POLLIN if events == _READ else _POLLOUT)
    return bool(poller.poll(0))


def _wait(fd: int, events: int, deadline: int, function: str) -> None:
    c = context()
    cur = getcurrent()
    if c.nonblocking and cannot_block(c, cur):
        raise error(errno.ECANCELED, function)
    state = _state(c, fd, function)
    if (state.readers if events == _READ else state.writers) is not None:
        raise error(errno.EBUSY, function)
    check_deadline(deadline, function)
    if expired(deadline):
        if ready_now(fd, events):
            return
        raise error(errno.ETIMEDOUT, function)
    w = waiter_for(cur)
    watcher = state.watcher(c, events)
    if events == _READ:
        state.readers = w
    else:
        state.writers = w
    watcher.start(ready_callback, w)
    try:
        outcome = block(c, w, deadline)
    finally:
        watcher.stop()
        if events == _READ:
            state.readers = None
        else:
            state.writers = None
    if outcome is TIMEOUT:
        raise error(errno.ETIMEDOUT, function)
    if outcome is CANCEL:
        raise error(errno.ECANCELED, function)


def ready_callback(w: Waiter) -> None:
    """Wake w (a watcher's callback: runs in the hub when the watcher fires)."""
    if not w.done:
        w.done = True
        w.g.switch(None)


def fdin(fd: int, deadline: int = -1) -> None:
    """Wait until fd can be read from (or is in an error or hang-up state).

    Before closing fd, call fdclean(fd) so greendill forgets its state.

    Parameters:
        fd: an OS file descriptor (a socket, pipe, terminal, ...).
        deadline: a point in time in ms (see now()); -1 for never, 0 to
            check without waiting.
    Returns: None.
    Errors:
        EBADF: fd is not an open file descriptor.
        EBUSY: another greenlet already waits for fd to be readable.
        ECANCELED: the calling coroutine was canceled.
        ENOTSUP: fd is a regular file or directory, which epoll cannot watch.
        ETIMEDOUT: the deadline passed first.
    """
    _wait(fd, _READ, deadline, "fdin")


def fdout(fd: int, deadline: int = -1) -> None:
    """Wait until fd can be written to (or is in an error or hang-up state).

    Parameters:
        fd: an OS file descriptor.
        deadline: a point in time in ms (see now()); -1 for never, 0 to
            check without waiting.
    Returns: None.
    Errors:
        EBADF: fd is not an open file descriptor.
        EBUSY: another greenlet already waits for fd to be writable.
        ECANCELED: the calling coroutine was canceled.
        ENOTSUP: fd is a regular file or directory, which epoll cannot watch.
        ETIMEDOUT: the deadline passed first.
    """
    _wait(fd, _WRITE, deadline, "fdout")


def fdclean(fd: int) -> None:
    """Forget what greendill knows of fd; call it before closing fd.

    An fd number that is closed and then reused by the OS must not inherit
    the watchers of the old one. Cleaning an fd greendill never watched does
    nothing.

    Parameters:
        fd: an OS file descriptor.
    Returns: None.
    Errors:
        EBUSY: a greenlet is waiting on fd (libdill asserts here).
    """
    c = context()
    state = c.fds.get(fd)
    if state is None:
        if not isinstance(fd, int):
            raise TypeError(f"fdclean: fd is an int, not {type(fd).__name__}")
        return
    if state.readers is not None or state.writers is not None:
        raise error(errno.EBUSY, "fdclean")
    del c.fds[fd]
    for watcher in state.watchers:
        if watcher is not None:
            watcher.close()
