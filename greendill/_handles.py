"""Handles: small integers naming objects, in a table per OS thread.

Everything greendill makes (coroutine bundles, channel ends, sockets, protocol
layers) is an object in the calling thread's handle table, named by a small
non-negative int, as in libdill. The object answers libdill's hvfs protocol:
`query(type)` returns its interface for an opaque type id (or None: ENOTSUP),
`close()` releases it. A user's own object becomes a handle with hmake and is
then as good as greendill's: this is how protocols stack.

Numbers are reused oldest-first, and only once more than eight are free, so
that a stale number is more likely to fail with EBADF than to name a new
object, as libdill's free list does.
"""

from __future__ import annotations

import errno
from contextlib import suppress
from typing import Any, Optional, Protocol, runtime_checkable

from greenlet import getcurrent

from ._errors import error
from ._scheduler import Context, check_can_block, context, thread_local

__all__ = ["hclose", "hmake", "hown", "hquery", "hvfs"]

#: How many free numbers wait before the oldest is used again.
SPARE_HANDLES = 8


@runtime_checkable
class hvfs(Protocol):
    """What an object must answer to become a handle (libdill's struct hvfs).

    query(type): return the object's interface for the opaque id type (any
    object compared by identity, such as bsock_type), or None when the object
    has no such interface; hquery then fails with ENOTSUP. It may also raise
    OSError with an errno of its own.

    close(): release the object, and everything it owns (the handle below a
    protocol layer). It must not block: blocking calls made inside it fail
    with ECANCELED. It may refuse to close by raising OSError, and the
    handle then stays open; any other exception propagates from hclose
    after the handle is released.
    """

    def query(self, type: object) -> Any: ...

    def close(self) -> None: ...


def new_handle(c: Context, obj: Any) -> int:
    """Put obj in c's table and return its number (no checks: for greendill's own objects)."""
    free = c.free_handles
    if len(free) > SPARE_HANDLES:
        h = free.popleft()
    else:
        h = c.next_handle
        c.next_handle = h + 1
    c.handles[h] = obj
    return h


def lookup(c: Context, h: int, function: str) -> Any:
    """Return the object of handle h, or raise EBADF (TypeError for a non-int)."""
    if h.__class__ is not int and not isinstance(h, int):
        # Checked first: 1.0 hashes like 1 and would find handle 1.
        raise TypeError(f"{function}: a handle is an int, not {type(h).__name__}")
    obj = c.handles.get(h)
    if obj is None:
        raise error(errno.EBADF, function)
    return obj


def release(c: Context, h: int) -> None:
    """Forget handle h; its object is the caller's to close."""
    del c.handles[h]
    c.free_handles.append(h)


def hmake(obj: hvfs) -> int:
    """Make a handle for a user object (libdill's hmake, the extension API).

    The object is what libdill calls the hvfs: it answers `query(type)` with
    its interface for the opaque type id (None when it has none) and
    releases itself in `close()`. Its handle then works with hquery, hclose
    and hown like any of greendill's own.

    Parameters:
        obj: an object with callable `query` and `close` attributes.
    Returns: the new handle.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EINVAL: obj is None, or does not have callable query and close.
        ENOMEM: never raised (Python raises MemoryError).
    """
    if obj is None or not (
        callable(getattr(obj, "query", None)) and callable(getattr(obj, "close", None))
    ):
        raise error(errno.EINVAL, "hmake")
    c = context()
    check_can_block(c, "hmake")
    return new_handle(c, obj)


def hquery(h: int, type: object) -> Any:
    """Return the interface of handle h for the opaque type id type.

    A protocol layer asks the handle below it for the interface it needs
    (bsock_type, msock_type or its own) and talks to it only through that.

    Parameters:
        h: the handle.
        type: the opaque type id, compared by identity.
    Returns: what the object's query returned for type.
    Errors:
        EBADF: h is not an open handle.
        ENOTSUP: the object has no interface for type.
    """
    c = context()
    iface = lookup(c, h, "hquery").query(type)
    if iface is None:
        raise error(errno.ENOTSUP, "hquery")
    return iface


def hclose(h: int) -> None:
    """Close handle h.

    A coroutine bundle (the handle of go) is canceled: every blocking call of
    its coroutines raises Canceled, and hclose returns once they have all
    ended. A socket is closed at once, without flushing (the protocol's own
    close, such as tcp_close, is the orderly one), and with it everything
    stacked below it. A channel end is closed; once both ends are, every
    coroutine still blocked on the channel gets EPIPE. hclose works in a
    canceled coroutine. The handle number is invalid afterwards.

    Parameters:
        h: the handle.
    Returns: None.
    Errors:
        EBADF: h is not an open handle.
        EDEADLK: h is the bundle the calling coroutine runs in (libdill
            aborts the process here).
        ENOTSUP: never raised: every handle can be closed.
    """
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    obj = c.handles.get(h) if h.__class__ is int else None
    if obj is None:
        obj = lookup(c, h, "hclose")
    cur = getcurrent()
    c.closing.append(cur)
    c.nonblocking += 1
    try:
        obj.close()
    except OSError:
        raise  # refused: the handle stays open
    except BaseException:
        _release_if_same(c, h, obj)
        raise
    finally:
        c.closing.remove(cur)
        c.nonblocking -= 1
    # _release_if_same, written out: this is every close's path.
    if c.handles.get(h) is obj:
        del c.handles[h]
        c.free_handles.append(h)


def _release_if_same(c: Context, h: int, obj: Any) -> None:
    # close() may have closed h through another path (hown, a nested hclose).
    if c.handles.get(h) is obj:
        release(c, h)


def hown(h: int) -> int:
    """Move the object of handle h to a new handle number.

    A function that takes ownership of a handle calls this, so that the
    caller's number stops working (EBADF) and cannot be used by mistake.

    Parameters:
        h: the handle.
    Returns: the object's new handle; h is invalid from now on.
    Errors:
        EBADF: h is not an open handle.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
    """
    c = context()
    obj = lookup(c, h, "hown")
    release(c, h)
    return new_handle(c, obj)


def open_handles(c: Optional[Context] = None) -> int:
    """The number of open handles in the calling thread (for leak checks)."""
    return len((c or context()).handles)


def check_storage(mem: Any, cls: type[Any], function: str) -> Any:
    """Check a _mem call's storage (an object with is_open): EINVAL for None, EBUSY while in use."""
    if mem is None:
        raise error(errno.EINVAL, function)
    if not isinstance(mem, cls):
        raise TypeError(f"{function}: mem is a {cls.__name__}(), not {type(mem).__name__}")
    if mem.is_open:
        raise error(errno.EBUSY, function)
    return mem


# What protocol layers' attach and detach share. -----------------------------


def close_quietly(s: int) -> None:
    """Close handle s if it is one: an attach that fails owns and closes its socket."""
    with suppress(OSError, TypeError):
        hclose(s)


def query_below(u: int, type: object, function: str) -> Any:
    """The interface type of the socket u that a layer is attached to; EPROTO if it has none.

    u is closed if this fails.
    """
    try:
        return hquery(u, type)
    except BaseException as exc:
        close_quietly(u)
        if isinstance(exc, OSError) and exc.errno == errno.ENOTSUP:
            raise error(errno.EPROTO, function) from None
        raise


def layer_object(c: Any, s: int, type: object, function: str) -> Any:
    """The object of layer handle s; EBADF if s is none, ENOTSUP if it is not of that layer."""
    obj = lookup(c, s, function).query(type)
    if obj is None:
        raise error(errno.ENOTSUP, function)
    return obj
