"""Leak checks: handles and file descriptors back to where they were."""

from __future__ import annotations

import os
from typing import NamedTuple

import gevent

from .._scheduler import context

__all__ = ["Snapshot", "check_no_leaks", "snapshot"]

_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class Snapshot(NamedTuple):
    """Open handles (number -> object) of this thread, and open fds of the process."""

    handles: dict[int, object]
    fds: dict[int, str]


def _fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        try:
            fds[fd] = os.readlink(os.path.join(_FD_DIR, name))
        except OSError:
            continue  # the fd of the listdir itself, closed by now
    return fds


def snapshot() -> Snapshot:
    """Take a snapshot of the open handles and file descriptors."""
    return Snapshot(dict(context().handles), _fds())


def check_no_leaks(before: Snapshot, settle: int = 3) -> list[str]:
    """Return what is open now that was not open in before (empty: no leak).

    Closing is synchronous in greendill, but a test may leave gevent work
    pending (a watcher being closed, a callback): the hub gets `settle`
    passes first. Under monkey.patch_all(), gevent (25.8.1 and later) defers
    os.close to a check watcher, which runs only once the loop really polls:
    what still looks open gets a few such iterations before it counts. And
    a canceled name lookup (getaddrinfo in the hub's thread pool: it cannot
    be stopped) may still hold libc's socket: while the pool has work, the
    check waits for it, a few seconds at most.
    """
    for _ in range(settle):
        gevent.sleep(0)
    problems = _compare(before, snapshot())
    for _ in range(_POLLING_PASSES):
        if not problems:
            break
        gevent.sleep(_POLLING_PASS_SECONDS)
        problems = _compare(before, snapshot())
    waited = 0.0
    while problems and _threadpool_busy() and waited < _THREADPOOL_PATIENCE:
        gevent.sleep(_POLLING_PASS_SECONDS)
        waited += _POLLING_PASS_SECONDS
        problems = _compare(before, snapshot())
    return problems


def _threadpool_busy() -> bool:
    # The hub's pool, if it has one (the property would make one).
    pool = getattr(gevent.get_hub(), "_threadpool", None)
    return bool(getattr(getattr(pool, "task_queue", None), "unfinished_tasks", 0))


# How long deferred closes get: a few loop iterations that poll.
_POLLING_PASSES = 5
_POLLING_PASS_SECONDS = 0.002
# How long work left in the hub's thread pool gets (seconds).
_THREADPOOL_PATIENCE = 5.0


def _compare(before: Snapshot, after: Snapshot) -> list[str]:
    problems = []
    for h, obj in sorted(after.handles.items()):
        if before.handles.get(h) is not obj:
            problems.append(f"handle {h} left open: {obj!r}")
    for fd, target in sorted(after.fds.items()):
        if before.fds.get(fd) != target:
            problems.append(f"fd {fd} left open: {target}")
    return problems
