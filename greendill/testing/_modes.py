"""The two runs of a suite, plain and monkeypatched, and real OS threads in both."""

from __future__ import annotations

from typing import Any, Callable

import gevent
from gevent.hub import Waiter
from gevent.monkey import get_original, is_module_patched

__all__ = ["monkeypatched", "run_in_os_thread"]

# Under monkey.patch_all(), threading.Thread and _thread.start_new_thread
# make greenlets: the originals make OS threads.
_start_new_thread = get_original("_thread", "start_new_thread")


def monkeypatched() -> bool:
    """Whether gevent's monkeypatching has replaced the socket module (patch_all does)."""
    return bool(is_module_patched("socket"))


def run_in_os_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Call fn(*args) in a new OS thread; return its result or raise its exception.

    The calling greenlet waits without blocking its thread: the other
    greenlets and coroutines of this thread go on running (they may be fn's
    peers). Before the new thread ends, its gevent hub is destroyed with its
    loop, so that the loop's fds do not outlive the thread (gevent keeps a
    thread's hub until then).
    """
    outcome: list[tuple[bool, Any]] = []
    hub = gevent.get_hub()
    finished = hub.loop.async_()
    waiter = Waiter()  # type: ignore[var-annotated]
    # Started before the thread is: libev forgets a send to a stopped watcher.
    finished.start(waiter.switch, None)

    def body() -> None:
        try:
            outcome.append((True, fn(*args)))
        except BaseException as exc:
            outcome.append((False, exc))
        finally:
            gevent.get_hub().destroy(destroy_loop=True)
            finished.send()

    try:
        _start_new_thread(body, ())
        waiter.get()
    finally:
        finished.stop()
        finished.close()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value
