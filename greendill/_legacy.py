"""Beside legacy code: deadlines for blocks of it, sockets handed over, patching checked.

Old blocking code (the standard library's socket, time.sleep, select,
queue, subprocess, socketserver, http.server, urllib, third-party clients)
becomes cooperative under gevent's `monkey.patch_all()`, and greendill
governs it where it runs in a coroutine: hclose of the coroutine throws
Canceled into whatever gevent wait the code is in (see _scheduler.interrupt),
as gevent's own Timeout would be thrown. This module adds what that leaves
out:

- deadline_scope bounds a block of code, legacy or greendill, by a libdill
  deadline, and raises TimeoutError (ETIMEDOUT) when it passes.
- tcp_tosocket and ipc_tosocket give legacy code a socket object for a
  greendill connection or listener (the fromfd calls go the other way, and
  take socket objects as well as fds).
- The import-order check: a module that took `sleep`, `socket`, `select`,
  `Popen`, `Event`, ... from the standard library before `patch_all()` ran,
  or made an Event, Condition, Semaphore or Queue then, keeps the blocking
  original, and calling it in a coroutine stops every coroutine of the
  thread. greendill looks for such leftovers when it is imported into a
  patched process and when `patch_all()` runs after it was imported, and
  says which module holds what, with the fix: patch first.

This module is a thin Pythonic layer: it only uses the libdill-named calls'
machinery and adds no state to the handles.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import warnings
from time import monotonic_ns
from types import TracebackType
from typing import Any, Optional

from gevent import monkey
from greenlet import getcurrent

from ._errors import error
from ._handles import lookup
from ._ipc import ipc_listener_type, ipc_type
from ._scheduler import context
from ._stream import StreamSocket, close_fd, close_in_order, syscall_error
from ._tcp import tcp_listener_type, tcp_type

__all__ = [
    "MonkeyPatchWarning",
    "check_monkey_patching",
    "deadline_scope",
    "install_check",
    "ipc_tosocket",
    "tcp_tosocket",
]


# deadline_scope -------------------------------------------------------------------


class _DeadlinePassed(BaseException):
    """Thrown into the block when its deadline passes.

    A BaseException, as gevent.Timeout is: legacy code's `except Exception`
    must not swallow it. deadline_scope turns it into TimeoutError.
    """


class deadline_scope:
    """Bound a block of code, legacy or greendill, by a libdill deadline.

        with dill.deadline_scope(dill.now() + 2000):
            body = urllib.request.urlopen(url).read()

    When the deadline passes while the block waits (in a greendill call, or
    in code that monkeypatching made cooperative), the wait is interrupted
    and the with statement raises TimeoutError (errno ETIMEDOUT). What the
    block was doing is cut short as a gevent.Timeout would cut it: a
    greendill socket the block was using breaks the direction it was in, and
    the block's `finally` clauses and `with` statements run. Code that never
    waits is never interrupted, so with a deadline of 0 or in the past the
    block runs until its first wait (libdill's "only if it can be done at
    once"). -1 means no deadline.

    Scopes nest: each one raises TimeoutError for its own deadline only, and
    lets anything else through unchanged: an outer scope's expiry, Canceled
    (the coroutine was canceled), a gevent.Timeout of the caller's. The block
    sees the expiry as a BaseException, as gevent.Timeout is, so that an
    `except Exception` in legacy code does not swallow it; a block that
    swallows it anyway (`except BaseException`) runs on, and the scope then
    ends normally.

    The timer is armed on entering, only for a deadline other than -1, and it
    never fires before the deadline. A scope is a context manager for one
    with statement of the greenlet that enters it.

    Parameters:
        deadline: a point in time in ms (see now()); -1 for never, 0 for
            "until the block's first wait".
    Returns: the scope object itself, from __enter__ (its .deadline, its
        .expired: whether this scope's deadline interrupted the block).
    Errors:
        ETIMEDOUT: the deadline passed while the block waited.
    """

    __slots__ = ("_expiry", "_greenlet", "_timer", "deadline", "expired")

    def __init__(self, deadline: int = -1) -> None:
        if not isinstance(deadline, int):
            raise TypeError(
                f"deadline_scope: deadline is an int (ms from now()), not {type(deadline).__name__}"
            )
        self.deadline = deadline
        self.expired = False
        self._timer: Any = None
        self._greenlet: Any = None
        self._expiry: Optional[_DeadlinePassed] = None

    def __enter__(self) -> deadline_scope:
        if self._timer is not None:
            raise RuntimeError("deadline_scope: this scope is in use already")
        self.expired = False
        if self.deadline >= 0:
            self._greenlet = getcurrent()
            self._expiry = _DeadlinePassed()
            self._start(context().loop)
        return self

    def _start(self, loop: Any) -> None:
        delay = (self.deadline * 1_000_000 - monotonic_ns()) / 1e9
        self._timer = loop.timer(delay if delay > 0.0 else 0.0, 0.0)
        # update=True: libev's cached loop time would fire the timer early.
        self._timer.start(self._fire, loop, update=True)

    def _fire(self, loop: Any) -> None:
        # Runs in the hub.
        self._timer.close()
        self._timer = None
        if monotonic_ns() < self.deadline * 1_000_000:
            self._start(loop)  # early by a rounding: wait for the rest
            return
        self.expired = True
        self._greenlet.throw(self._expiry)

    def __exit__(
        self,
        type_: Optional[type[BaseException]],
        value: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.stop()
            timer.close()
        expiry, self._expiry = self._expiry, None
        self._greenlet = None
        if value is not None and value is expiry:
            raise error(errno.ETIMEDOUT, "deadline_scope") from None


# Handing a greendill socket over to legacy code -------------------------------------


def tcp_tosocket(s: int, *, share: bool = False) -> socket.socket:
    """Give legacy code a socket object for a TCP connection or listener.

    By default the socket is handed over: the handle is closed, without
    touching the connection (no FIN, no reset; tcp_done's half-close, if
    it was done, stays done), and the returned object owns the socket. It is
    of the class socket.socket is when the call is made: gevent's
    cooperative socket under monkeypatching (its waits let the coroutines
    run, and hclose of a coroutine waiting in it raises Canceled there), the
    standard blocking one otherwise (a wait in it stops the whole thread:
    give it to a thread of its own). Its timeout is socket.getdefaulttimeout().

    greendill keeps no receive buffer: every byte that brecv had not
    returned is still in the kernel, and the object reads it next. (A brecv
    that failed lost what it had read, as always.) A connection whose
    sending or receiving side is broken (an earlier failure latched it) is
    not handed over: ECONNRESET, and the handle is closed, as libdill's
    detach calls do.

    With share=True, the handle stays open and the object gets a duplicate
    of its fd: both are the same connection, and whatever one reads the
    other does not. Use it for options (getsockopt, setsockopt), addresses,
    or one side of the traffic. The duplicate shares the O_NONBLOCK flag
    that greendill needs: the standard socket object is then left
    non-blocking (timeout 0.0); gevent's waits cooperatively as usual. The
    object's close() closes its duplicate only; greendill's latched errors
    and done state stay with the handle.

    Parameters:
        s: a TCP connection (tcp_connect, tcp_accept, tcp_fromfd) or
            listener (tcp_listen, tcp_listener_fromfd).
        share: keep the handle and give a duplicate (default: hand over).
    Returns: the socket object.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: a coroutine is waiting on s (hand-over only).
        ECONNRESET: the connection is broken (hand-over only; s is closed).
        EMFILE: the process has no file descriptor left (share only).
        ENFILE: the system has no file descriptor left (share only).
        ENOTSUP: s is neither a TCP connection nor a TCP listener.
    """
    return _tosocket(s, tcp_type, tcp_listener_type, share, "tcp_tosocket")


def ipc_tosocket(s: int, *, share: bool = False) -> socket.socket:
    """Give legacy code a socket object for an IPC connection or listener.

    The same as tcp_tosocket, for AF_UNIX stream sockets (ipc_connect,
    ipc_accept, ipc_pair, ipc_fromfd, ipc_listen, ipc_listener_fromfd).
    Handing a listener over does not remove its file: nothing in greendill
    does, as in libdill.

    Parameters:
        s: an IPC connection or listener.
        share: keep the handle and give a duplicate (default: hand over).
    Returns: the socket object.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: a coroutine is waiting on s (hand-over only).
        ECONNRESET: the connection is broken (hand-over only; s is closed).
        EMFILE: the process has no file descriptor left (share only).
        ENFILE: the system has no file descriptor left (share only).
        ENOTSUP: s is neither an IPC connection nor an IPC listener.
    """
    return _tosocket(s, ipc_type, ipc_listener_type, share, "ipc_tosocket")


def _tosocket(
    s: int, conn_type: object, listener_type: object, share: bool, function: str
) -> socket.socket:
    c = context()
    obj = lookup(c, s, function)
    if obj.query(conn_type) is None and obj.query(listener_type) is None:
        raise error(errno.ENOTSUP, function)
    if share:
        try:
            fd = os.dup(obj.sock.fileno())
        except OSError as exc:
            raise syscall_error(exc, function) from None
        return _socket_object(fd, shared=True)
    if obj.reader is not None or obj.writer is not None:
        raise error(errno.EBUSY, function)
    if isinstance(obj, StreamSocket) and (obj.inerr or obj.outerr):
        close_in_order(c, s, obj)
        raise error(errno.ECONNRESET, function)
    fd = obj.sock.detach()
    close_in_order(c, s, obj)  # stops the watchers; the socket, detached, stays open
    return _socket_object(fd, shared=False)


def _socket_object(fd: int, shared: bool) -> socket.socket:
    # socket.socket as it is now: gevent's class under monkeypatching.
    try:
        sock = socket.socket(fileno=fd)
    except BaseException:
        close_fd(fd)
        raise
    if isinstance(sock, _STDLIB_SOCKET) and shared:
        sock.settimeout(0.0)  # the fd is non-blocking, and must stay so
    else:
        # Clears O_NONBLOCK for a standard socket with no default timeout;
        # gevent's keeps its fd non-blocking and waits cooperatively.
        sock.settimeout(socket.getdefaulttimeout())
    return sock


_STDLIB_SOCKET: type = monkey.get_original("socket", "socket")


# The import-order check -------------------------------------------------------------


class MonkeyPatchWarning(monkey.MonkeyPatchWarning):
    """Something in the process still blocks although gevent's monkeypatching ran.

    A subclass of gevent's MonkeyPatchWarning: a filter for gevent's
    warnings applies to greendill's too.
    """


# Blocking originals that a module may have taken for itself before
# patch_all() (`from time import sleep`). Not Lock and RLock: many modules
# keep one for short critical sections, which cannot block a coroutine for
# long, and warning about each would drown the rest.
_FUNCTIONS = (
    ("time", "sleep"),
    ("socket", "socket"),
    ("socket", "create_connection"),
    ("select", "select"),
    ("select", "poll"),
    ("subprocess", "Popen"),
    ("threading", "Event"),
    ("ssl", "SSLContext"),
)
# Where the originals live, and gevent and greendill, which hold them on purpose.
_EXEMPT = frozenset(
    {
        "_socket",
        "_ssl",
        "_thread",
        "gevent",
        "greendill",
        "os",
        "queue",
        "select",
        "selectors",
        "socket",
        "ssl",
        "subprocess",
        "threading",
        "time",
    }
)


def check_monkey_patching() -> list[str]:
    """Warn about what monkeypatching could not reach; return the findings.

    Once gevent's monkeypatching has replaced the socket module, look
    through every imported module's globals for blocking objects left over
    from before: a standard-library function or class it imported by name
    (`from time import sleep`, `from socket import socket`, `from subprocess
    import Popen`, ...), and Event, Condition, Semaphore and queue.Queue
    objects made before threading was patched, whose waits block the whole
    thread. Each finding names the module and the global. If there are any,
    a greendill.MonkeyPatchWarning names them and the fix: call
    gevent.monkey.patch_all() first thing, before those modules are
    imported (the first lines of the main module, or `python -m
    gevent.monkey your_script.py`).

    greendill runs this check when it is imported into a patched process,
    and when patch_all() runs after greendill was imported (through gevent's
    patch events); call it again after importing more modules if need be.

    Parameters: none.
    Returns: the findings, "module.global (what it is)" each; empty when
        nothing was found or the process is not patched.
    Errors: none (it warns).
    """
    if not monkey.is_module_patched("socket"):
        return []
    findings = _leftovers()
    if findings:
        warnings.warn(
            "greendill: these still block the whole thread although gevent's "
            "monkeypatching ran, because they were imported or made before it: "
            + "; ".join(findings)
            + ". A greendill coroutine that calls them stops every coroutine of the "
            "thread, and hclose cannot interrupt it. Fix: call "
            "gevent.monkey.patch_all() first, before importing anything else (the "
            "first lines of the main module, or run `python -m gevent.monkey "
            "your_script.py`).",
            MonkeyPatchWarning,
            stacklevel=_user_stacklevel(),
        )
    return findings


def _leftovers() -> list[str]:
    originals: dict[int, str] = {}
    for module, name in _FUNCTIONS:
        if module not in sys.modules or not monkey.is_module_patched(module):
            continue
        original = monkey.get_original(module, name)
        if original is not getattr(sys.modules[module], name, None):
            originals[id(original)] = f"{module}.{name}"
    lockers = _lock_holders()
    findings = []
    for module_name, imported in list(sys.modules.items()):
        if imported is None or module_name.partition(".")[0] in _EXEMPT:
            continue
        namespace = getattr(imported, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for name, value in list(namespace.items()):
            what = originals.get(id(value))
            if what is None:
                # type(), not isinstance: a proxy object's __class__ may raise.
                where = lockers.get(type(value))
                if where is None:
                    continue
                what, path = where
                lock: Any = value
                for attribute in path:
                    lock = getattr(lock, attribute, None)
                if not isinstance(lock, _REAL_LOCKS):
                    continue
                what = f"a {what} made before patching"
            findings.append(f"{module_name}.{name} ({what})")
    return findings


def _lock_holders() -> dict[type, tuple[str, tuple[str, ...]]]:
    # The classes whose objects wait on a lock made when they were, and where
    # that lock is: made before threading was patched, it is a real one.
    if "threading" not in sys.modules or not monkey.is_module_patched("threading"):
        return {}
    threading = sys.modules["threading"]
    holders: dict[type, tuple[str, tuple[str, ...]]] = {
        monkey.get_original("threading", "Event"): ("threading.Event", ("_cond", "_lock")),
        threading.Condition: ("threading.Condition", ("_lock",)),
        threading.Semaphore: ("threading.Semaphore", ("_cond", "_lock")),
        threading.BoundedSemaphore: ("threading.BoundedSemaphore", ("_cond", "_lock")),
    }
    if "queue" in sys.modules:
        # patch_all replaces queue.Queue with gevent's: the original is the blocking one.
        for name in ("Queue", "LifoQueue", "PriorityQueue"):
            original = monkey.get_original("queue", name)
            if isinstance(original, type):
                holders[original] = (f"queue.{name}", ("mutex",))
    return holders


_REAL_LOCKS = (
    type(monkey.get_original("_thread", "allocate_lock")()),
    monkey.get_original("_thread", "RLock"),
)


def _user_stacklevel() -> int:
    # Point the warning at the first frame outside gevent, greendill and the
    # import machinery: the import of greendill, or the call of patch_all().
    # warnings itself skips the import machinery's frames: they do not count.
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.partition(".")[0] == "importlib":
            frame = frame.f_back
            continue
        if name.partition(".")[0] not in ("gevent", "greendill", "zope"):
            return level
        frame = frame.f_back
        level += 1
    return 1


def _patched_all(event: object) -> None:
    # A gevent.events subscriber: patch_all() has just run.
    from gevent.events import GeventDidPatchAllEvent  # noqa: PLC0415 (see install_check)

    if isinstance(event, GeventDidPatchAllEvent):
        check_monkey_patching()


def install_check() -> None:
    """Run the check now if the process is patched, and whenever patch_all() runs later."""
    try:
        # Imported here: gevent before 21 imports setuptools' pkg_resources in
        # gevent.events, and greendill must import without it. (patch_all
        # itself needs it there, so nothing is missed.)
        from gevent import events  # noqa: PLC0415
    except ImportError:
        pass
    else:
        if _patched_all not in events.subscribers:
            events.subscribers.append(_patched_all)
    check_monkey_patching()
