"""Time: now() in milliseconds, and msleep.

Every blocking call takes an absolute deadline in ms on the now() clock: -1
(any negative number) waits forever, 0 or a moment already past means "only
if it can be done at once". The clock is the monotonic one that gevent's
libev loop uses too, so a deadline and the loop's timer agree.
"""

from __future__ import annotations

import errno
from time import monotonic_ns
from typing import Any

from greenlet import getcurrent

from ._errors import error
from ._scheduler import (
    CANCEL,
    Coroutine,
    Waiter,
    block,
    cannot_block,
    context,
    give_way,
    park,
    thread_local,
)

__all__ = ["check_deadline", "expired", "msleep", "now"]


def now() -> int:
    """Return the current time in milliseconds, for computing deadlines.

    The clock is monotonic (not wall-clock time): it only serves to build
    deadlines such as `now() + 1000`. It never returns 0 or -1.

    Parameters: none.
    Returns: milliseconds on the monotonic clock.
    Errors: none.
    """
    return monotonic_ns() // 1_000_000


def expired(deadline: int) -> bool:
    """Whether a deadline of 0 or one in the past means "do not wait"."""
    return deadline == 0 or (deadline > 0 and deadline * 1_000_000 <= monotonic_ns())


def check_deadline(deadline: object, function: str) -> None:
    """Raise TypeError unless deadline is an int (checked when a call must wait)."""
    if not isinstance(deadline, int):
        raise TypeError(
            f"{function}: deadline is an int (ms from now()), not {type(deadline).__name__}"
        )


def msleep(deadline: int = -1) -> None:
    """Sleep until deadline.

    With a deadline of 0 or in the past, the calling coroutine gives way to
    the coroutines that are ready (as yield_ does) and returns. With -1 it
    sleeps until it is canceled.

    Parameters:
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        ECANCELED: the calling coroutine was canceled.
    """
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    cur = getcurrent()
    if c.nonblocking and cannot_block(c, cur):
        raise error(errno.ECANCELED, "msleep")
    if deadline != -1:
        check_deadline(deadline, "msleep")
        if expired(deadline):
            give_way(c, cur)
            return
    w: Any
    if cur.__class__ is Coroutine:  # waiter_for(cur), written out
        w = cur
        w.done = False
    else:
        w = Waiter(cur)
    if (park(c, w) if deadline < 0 else block(c, w, deadline)) is CANCEL:
        raise error(errno.ECANCELED, "msleep")
