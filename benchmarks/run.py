"""Benchmark runner: greendill against raw gevent and its peers (asyncio, uvloop, trio).

Usage:

    python benchmarks/run.py [--quick] [--only SCENARIO ...] [--repeat N] [--json FILE]

Every (scenario, implementation) pair is a function registered with `@bench`. The runner
starts a fresh child process for every single run (`python benchmarks/run.py --child
SCENARIO IMPL N`); the child runs the function once with a small size as a warm-up, then
with the real size, and prints one JSON line: the rate in operations per second, the
operations done and any extra metrics (RSS per connection). Runs of the implementations of
a scenario alternate (the order rotates every round), and the table shows the median of
the runs, its ratio to raw gevent's median in the same invocation, and the median of the
per-round ratios (each run against gevent's run of the same round).

Adding a scenario: add it to SCENARIOS, then write one `@bench(scenario, impl)` function per
implementation. The function does its own setup, times only the part being measured with
`perf_counter`, checks that the work was really done (raise on a wrong result, `_warn` on a
suspicious one), cleans up, and returns the elapsed seconds for n operations (or a
Measured, with the operations really done and extra metrics). It imports what it uses
itself, so that a child imports only the implementation it runs.

Only the standard library is imported at the top: gevent, greendill, uvloop and trio are
imported by the children. uvloop and trio are optional: a missing one gives "not
installed" rows, not a failure. The runner exits 0 whether the targets are met or not; it
exits non-zero only when a run failed (1) or on a usage or environment error (2).
"""

# Imports inside the benchmark bodies are deliberate: a child imports only what it runs.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

if TYPE_CHECKING:
    from collections.abc import Awaitable, Coroutine

HERE = Path(__file__).resolve()
REPO_ROOT = HERE.parent.parent

#: The implementation that every ratio is taken against.
BASELINE = "gevent"


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Scenario:
    name: str
    unit: str  # what one operation is, for the table ("tasks/s", "round trips/s", ...)
    size: int  # operations per run, full mode
    quick_size: int  # operations per run, --quick
    summary: str
    warmup: Optional[int] = None  # size of the warm-up run (default: warmup_size(n))
    size_unit: str = ""  # what N counts, when not operations ("MiB")
    scale: float = 1.0  # shown rate = operations/s * scale (MiB/s -> MB/s)
    per: str = ""  # the "per op" column shows µs per this ("MiB"); "" = per operation


@dataclass
class Measured:
    """What a body returns when a bare elapsed time is not enough."""

    elapsed: float  # seconds for `ops` operations
    ops: Optional[int] = None  # operations really done, when fewer than the n asked for
    metrics: dict[str, float] = field(default_factory=dict)  # see METRICS


@dataclass(frozen=True)
class Metric:
    """A number a body reports besides its rate (Measured.metrics), shown in its own table."""

    label: str
    unit: str
    lower_is_better: bool


METRICS: dict[str, Metric] = {
    "rss_per_connection": Metric("RSS per open connection", "bytes", lower_is_better=True),
}

#: What a benchmark body returns: the elapsed seconds for n operations, or a Measured.
Body = Union[float, Measured]


@dataclass(frozen=True)
class Bench:
    scenario: str
    impl: str
    body: Callable[[int], Body]  # runs n operations, returns the elapsed seconds
    requires: tuple[str, ...]  # modules that must be importable, else "not installed"
    note: str  # what exactly this row measures (shown with --list and in the README)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "spawn-cancel",
            "tasks/s",
            20_000,
            5_000,
            "start N coroutines that block forever, then cancel them all, waiting for each",
        ),
        Scenario(
            "channel-pingpong",
            "round trips/s",
            50_000,
            10_000,
            "N round trips between the main task and one echo coroutine over unbuffered channels",
        ),
        Scenario(
            "yield",
            "yields/s",
            100_000,
            20_000,
            "N yields of the main task while one other coroutine yields in a loop",
        ),
        Scenario(
            "deadline-pingpong",
            "round trips/s",
            50_000,
            10_000,
            "channel-pingpong with a 5 s deadline/timeout on every waiting call",
        ),
        Scenario(
            "pingpong-ipc",
            "round trips/s",
            50_000,
            10_000,
            "N 1-byte round trips over a UNIX stream socket pair, main task <-> echo coroutine",
        ),
        Scenario(
            "pingpong-tcp",
            "round trips/s",
            30_000,
            10_000,
            "pingpong-ipc over a TCP loopback connection (127.0.0.1), TCP_NODELAY on both ends",
        ),
        Scenario(
            "deadline-pingpong-ipc",
            "round trips/s",
            30_000,
            10_000,
            "pingpong-ipc with a 5 s deadline/timeout on every call (peers: on every receive)",
        ),
        Scenario(
            "bulk-ipc",
            "MB/s",
            512,
            64,
            "N MiB over a UNIX stream socket pair in 64 KiB writes, received into one"
            " preallocated 64 KiB buffer",
            warmup=8,
            size_unit="MiB",
            scale=1.048576,
            per="MiB",
        ),
        Scenario(
            "connections-ipc",
            "connections/s",
            5_000,
            500,
            "N concurrent IPC connections (all open at once), 10 round trips of 16 bytes each"
            " with a server-side coroutine; also RSS per open connection",
            warmup=20,
        ),
        Scenario(
            "prefix-stream-ipc",
            "messages/s",
            200_000,
            40_000,
            "N 64-byte messages with a 4-byte size field (prefix framing) over a UNIX stream"
            " socket pair, from a sender coroutine to the main task",
        ),
        Scenario(
            "prefix-pingpong-ipc",
            "round trips/s",
            50_000,
            10_000,
            "N round trips of a 64-byte prefix-framed message over a UNIX stream socket pair,"
            " main task <-> echo coroutine",
        ),
        Scenario(
            "pingpong-mmipc",
            "round trips/s",
            50_000,
            10_000,
            "N round trips of a 1-byte datagram over a UNIX SEQPACKET pair (mmlib's IPC API),"
            " main task <-> echo coroutine",
        ),
        Scenario(
            "pingpong-mmipc-2proc",
            "round trips/s",
            30_000,
            10_000,
            "pingpong-mmipc between two processes: the echo side runs in a child process"
            " (the same implementation), over one end of a SEQPACKET pair passed to it",
        ),
        Scenario(
            "fdpass-mmipc",
            "round trips/s",
            30_000,
            10_000,
            "N round trips over a UNIX SEQPACKET pair, each datagram carrying one fd (SCM_RIGHTS),"
            " which the echo side passes back and both sides close",
        ),
        Scenario(
            "ws-pingpong-tcp",
            "round trips/s",
            30_000,
            10_000,
            "N round trips of a 64-byte binary WebSocket message over TCP loopback, client (main"
            " task) <-> echo server (a coroutine/task of the same process); no compression",
        ),
        Scenario(
            "ws-stream-tcp",
            "messages/s",
            100_000,
            20_000,
            "N 64-byte binary WebSocket messages from a client to a server over TCP loopback"
            " (masked, as clients must), in one process; no compression",
        ),
        Scenario(
            "bulk-tls",
            "MB/s",
            64,
            16,
            "N MiB through TLS (1.3, the default contexts, a trustme certificate) over a UNIX"
            " stream socket pair in 64 KiB writes, received into one preallocated 64 KiB buffer;"
            " handshakes not timed",
            warmup=4,
            size_unit="MiB",
            scale=1.048576,
            per="MiB",
        ),
    )
}

BENCHES: dict[tuple[str, str], Bench] = {}


def bench(
    scenario: str, impl: str, *, requires: tuple[str, ...] = (), note: str = ""
) -> Callable[[Callable[[int], Body]], Callable[[int], Body]]:
    """Register fn as the body of (scenario, impl)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")

    def register(fn: Callable[[int], Body]) -> Callable[[int], Body]:
        key = (scenario, impl)
        if key in BENCHES:
            raise ValueError(f"{key} registered twice")
        BENCHES[key] = Bench(scenario, impl, fn, requires, note)
        return fn

    return register


@dataclass(frozen=True)
class Target:
    scenario: str
    text: str
    numerator: str
    denominator: str
    bound: float  # the ratio numerator / denominator must be >= bound (<= with at_most)
    strict: bool = False  # > (or <) instead of >= (<=)
    metric: str = "rate"  # "rate", or the name of a metric in METRICS
    at_most: bool = False  # met when the ratio is at most bound (for lower-is-better metrics)


#: The performance targets of the issue, checked at the end (never a failure).
TARGETS = (
    Target("spawn-cancel", "greendill >= 4.5x gevent spawn+kill", "greendill", "gevent", 4.5),
    Target("channel-pingpong", "greendill >= 3x gevent.queue.Channel", "greendill", "gevent", 3.0),
    Target(
        "channel-pingpong", "greendill ahead of asyncio on uvloop", "greendill", "uvloop", 1.0, True
    ),
    Target("pingpong-ipc", "greendill >= 1.4x raw gevent", "greendill", "gevent", 1.4),
    Target("pingpong-tcp", "greendill >= 1.3x raw gevent", "greendill", "gevent", 1.3),
    Target(
        "deadline-pingpong-ipc",
        "greendill >= 1.8x gevent with gevent.Timeout",
        "greendill",
        "gevent",
        1.8,
    ),
    *(
        Target("deadline-pingpong-ipc", f"greendill ahead of {peer}", "greendill", peer, 1.0, True)
        for peer in ("asyncio", "uvloop", "trio")
    ),
    Target("bulk-ipc", "greendill >= 1.25x raw gevent", "greendill", "gevent", 1.25),
    Target("prefix-stream-ipc", "greendill >= 1.0x framing by hand", "greendill", "gevent", 1.0),
    Target("prefix-pingpong-ipc", "greendill >= 1.0x framing by hand", "greendill", "gevent", 1.0),
    Target("pingpong-mmipc", "greendill >= 1.3x raw gevent", "greendill", "gevent", 1.3),
    Target("fdpass-mmipc", "greendill >= 1.3x raw gevent", "greendill", "gevent", 1.3),
    Target("pingpong-mmipc-2proc", "greendill >= 1.3x raw gevent", "greendill", "gevent", 1.3),
    Target("ws-pingpong-tcp", "greendill >= 1.0x websockets", "greendill", "websockets", 1.0),
    Target("ws-stream-tcp", "greendill >= 1.0x websockets", "greendill", "websockets", 1.0),
    Target("bulk-tls", "greendill >= 1.0x gevent.ssl", "greendill", "gevent", 1.0),
    Target(
        "connections-ipc",
        "greendill RSS per connection <= 0.8x raw gevent's",
        "greendill",
        "gevent",
        0.8,
        metric="rss_per_connection",
        at_most=True,
    ),
)


# --------------------------------------------------------------------------- child helpers


def _warn(message: str) -> None:
    """Report something suspicious: the run still counts, the runner lists it at the end."""
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def _check(condition: bool, message: str) -> None:
    """Fail the run when its result is wrong (work not done, wrong value)."""
    if not condition:
        raise AssertionError(message)


def _greendill_snapshot() -> Any:
    from greendill.testing import snapshot

    return snapshot()


def _greendill_check_clean(before: Any, what: str) -> None:
    """Warn about handles, fds, ready entries or coroutines left over by a greendill run."""
    from greendill.testing import check_no_leaks

    problems = check_no_leaks(before)
    try:
        from greendill._scheduler import Coroutine, context
    except ImportError:  # internals moved: skip the deeper checks
        pass
    else:
        c = context()
        if c.handles:
            # Every run starts with no handle and must close all it made.
            problems.append(
                f"handle table not empty at the end: {len(c.handles)} handles"
                f" ({sorted(c.handles)[:10]})"
            )
        if c.ready:
            problems.append(f"{len(c.ready)} entries left in the ready queue")
        if c.nonblocking:
            problems.append(f"nonblocking counter is {c.nonblocking}, not 0")
        gc.collect()
        alive = sum(1 for o in gc.get_objects() if type(o) is Coroutine)
        if alive:
            problems.append(f"{alive} coroutine objects still reachable after gc.collect()")
    for p in problems[:5]:
        _warn(f"{what}: {p}")
    if len(problems) > 5:
        _warn(f"{what}: ... and {len(problems) - 5} more leftovers")


def _run_asyncio(main: Callable[[], Coroutine[Any, Any, float]], use_uvloop: bool) -> float:
    """Run main() on a new asyncio (or uvloop) event loop; return its result."""
    import asyncio

    loop: asyncio.AbstractEventLoop
    if use_uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _asyncio_timeout_get(get: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[int]]:
    """Wrap get() in a 5 s timeout: asyncio.timeout (3.11+), else asyncio.wait_for."""
    import asyncio

    if hasattr(asyncio, "timeout"):

        async def timed() -> int:
            async with asyncio.timeout(5):
                return await get()

        return timed

    async def timed_wait_for() -> int:
        return await asyncio.wait_for(get(), 5)

    return timed_wait_for


# --------------------------------------------------------------------------- spawn-cancel


@bench(
    "spawn-cancel",
    "greendill",
    note="hs = [go(msleep, -1) ...] (eager start), then hclose(h) for each",
)
def greendill_spawn_cancel(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    t0 = perf_counter()
    hs = [dill.go(dill.msleep, -1) for _ in range(n)]
    for h in hs:
        dill.hclose(h)
    elapsed = perf_counter() - t0
    _check(len(set(hs)) == n, "go() returned duplicate handles")
    del hs
    _greendill_check_clean(before, "spawn-cancel")
    return elapsed


def _gevent_spawn_cancel(n: int, killall: bool) -> float:
    import gevent

    t0 = perf_counter()
    gs = [gevent.spawn(gevent.sleep, 3600) for _ in range(n)]
    # gevent.spawn starts lazily, and killing a greenlet that never ran just cancels its
    # start: one pass through the hub makes all of them run and block in sleep(3600).
    gevent.sleep(0)
    _check(bool(gs[-1]), "the gevent greenlets did not start")
    if killall:
        gevent.killall(gs)
    else:
        for g in gs:
            g.kill(block=True)
    elapsed = perf_counter() - t0
    _check(all(g.dead for g in gs), "a gevent greenlet survived kill")
    return elapsed


@bench(
    "spawn-cancel",
    "gevent",
    note="gevent.spawn(gevent.sleep, 3600) xN, sleep(0) so they start, then g.kill(block=True)"
    " each (the ratio baseline)",
)
def gevent_spawn_cancel(n: int) -> float:
    return _gevent_spawn_cancel(n, killall=False)


@bench(
    "spawn-cancel",
    "gevent-killall",
    note="same spawn, then one gevent.killall(gs)",
)
def gevent_killall_spawn_cancel(n: int) -> float:
    return _gevent_spawn_cancel(n, killall=True)


def _asyncio_spawn_cancel(n: int, use_uvloop: bool) -> float:
    import asyncio

    async def main() -> float:
        t0 = perf_counter()
        tasks = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(n)]
        await asyncio.sleep(0)  # one loop iteration: every task starts and blocks
        for t in tasks:
            t.cancel()
            try:  # noqa: SIM105 - contextlib.suppress would add its cost to the timed loop
                await t
            except asyncio.CancelledError:
                pass
        elapsed = perf_counter() - t0
        _check(all(t.cancelled() for t in tasks), "an asyncio task was not cancelled")
        return elapsed

    return _run_asyncio(main, use_uvloop)


@bench(
    "spawn-cancel",
    "asyncio",
    note="create_task(asyncio.sleep(3600)) xN, sleep(0) so they start, then t.cancel(); await t"
    " each",
)
def asyncio_spawn_cancel(n: int) -> float:
    return _asyncio_spawn_cancel(n, use_uvloop=False)


@bench("spawn-cancel", "uvloop", requires=("uvloop",), note="the asyncio code on uvloop's loop")
def uvloop_spawn_cancel(n: int) -> float:
    return _asyncio_spawn_cancel(n, use_uvloop=True)


@bench(
    "spawn-cancel",
    "trio",
    requires=("trio",),
    note="per task: await nursery.start() of a task that hands back its own CancelScope"
    " (eager start, like go); then per task: scope.cancel() and await its done Event",
)
def trio_spawn_cancel(n: int) -> float:
    import trio

    async def sleeper(done: trio.Event, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with trio.CancelScope() as scope:
                task_status.started(scope)
                await trio.sleep_forever()
        finally:
            done.set()

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            t0 = perf_counter()
            tasks = []
            for _ in range(n):
                done = trio.Event()
                scope = await nursery.start(sleeper, done)
                tasks.append((scope, done))
            for scope, done in tasks:
                scope.cancel()
                await done.wait()
            elapsed = perf_counter() - t0
        _check(all(d.is_set() for _, d in tasks), "a trio task did not end")
        return elapsed

    return trio.run(main)


@bench(
    "spawn-cancel",
    "trio-bulk",
    requires=("trio",),
    note="nursery.start_soon(trio.sleep_forever) xN, wait_all_tasks_blocked(), then one"
    " nursery.cancel_scope.cancel() and the nursery's exit",
)
def trio_bulk_spawn_cancel(n: int) -> float:
    import trio
    import trio.testing

    async def main() -> float:
        t0 = perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(n):
                nursery.start_soon(trio.sleep_forever)
            await trio.testing.wait_all_tasks_blocked()
            _check(len(nursery.child_tasks) == n, "the trio tasks did not start")
            nursery.cancel_scope.cancel()
        return perf_counter() - t0

    return trio.run(main)


# --------------------------------------------------------------------------- channel ping-pong


def _greendill_pingpong(n: int, deadlines: bool) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    ch0, ch1 = dill.chmake()

    if deadlines:

        def echo(ch: int) -> None:
            while True:
                v = dill.chrecv(ch, dill.now() + 5000)
                dill.chsend(ch, v + 1, dill.now() + 5000)

    else:

        def echo(ch: int) -> None:
            while True:
                v = dill.chrecv(ch)
                dill.chsend(ch, v + 1)

    h = dill.go(echo, ch1)  # runs at once and waits in chrecv
    v = 0
    if deadlines:
        t0 = perf_counter()
        for _ in range(n):
            dill.chsend(ch0, v, dill.now() + 5000)
            v = dill.chrecv(ch0, dill.now() + 5000)
        elapsed = perf_counter() - t0
    else:
        t0 = perf_counter()
        for _ in range(n):
            dill.chsend(ch0, v)
            v = dill.chrecv(ch0)
        elapsed = perf_counter() - t0
    dill.hclose(h)
    dill.hclose(ch0)
    dill.hclose(ch1)
    _check(v == n, f"ping-pong ended with {v}, expected {n}")
    _greendill_check_clean(before, "deadline-pingpong" if deadlines else "channel-pingpong")
    return elapsed


def _gevent_pingpong(n: int, timeouts: bool) -> float:
    import gevent
    from gevent.queue import Channel

    c0: Any = Channel()
    c1: Any = Channel()

    if timeouts:

        def echo() -> None:
            while True:
                with gevent.Timeout(5):
                    v = c0.get()
                c1.put(v + 1)

    else:

        def echo() -> None:
            while True:
                v = c0.get()
                c1.put(v + 1)

    g = gevent.spawn(echo)
    gevent.sleep(0)  # the echo greenlet starts and waits in get, as greendill's does
    v = 0
    if timeouts:
        t0 = perf_counter()
        for _ in range(n):
            c0.put(v)
            with gevent.Timeout(5):
                v = c1.get()
        elapsed = perf_counter() - t0
    else:
        t0 = perf_counter()
        for _ in range(n):
            c0.put(v)
            v = c1.get()
        elapsed = perf_counter() - t0
    g.kill()
    _check(v == n, f"ping-pong ended with {v}, expected {n}")
    return elapsed


def _asyncio_pingpong(n: int, use_uvloop: bool, timeouts: bool) -> float:
    import asyncio

    async def main() -> float:
        # Queue(maxsize=1): in a strict ping-pong the slot is always free when put is
        # called, so put never waits and get waits for the peer, as with a rendezvous.
        q0: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        q1: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        get0 = _asyncio_timeout_get(q0.get) if timeouts else q0.get
        get1 = _asyncio_timeout_get(q1.get) if timeouts else q1.get

        async def echo() -> None:
            while True:
                v = await get0()
                await q1.put(v + 1)

        task = asyncio.create_task(echo())
        await asyncio.sleep(0)  # the echo task starts and waits in get
        v = 0
        t0 = perf_counter()
        for _ in range(n):
            await q0.put(v)
            v = await get1()
        elapsed = perf_counter() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _check(v == n, f"ping-pong ended with {v}, expected {n}")
        return elapsed

    return _run_asyncio(main, use_uvloop)


def _trio_pingpong(n: int, timeouts: bool) -> float:
    import trio
    import trio.testing

    async def main() -> float:
        s0, r0 = trio.open_memory_channel[int](0)
        s1, r1 = trio.open_memory_channel[int](0)

        if timeouts:

            async def echo() -> None:
                while True:
                    with trio.fail_after(5):
                        v = await r0.receive()
                    await s1.send(v + 1)

        else:

            async def echo() -> None:
                while True:
                    v = await r0.receive()
                    await s1.send(v + 1)

        v = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            await trio.testing.wait_all_tasks_blocked()  # echo waits in receive
            if timeouts:
                t0 = perf_counter()
                for _ in range(n):
                    await s0.send(v)
                    with trio.fail_after(5):
                        v = await r1.receive()
                elapsed = perf_counter() - t0
            else:
                t0 = perf_counter()
                for _ in range(n):
                    await s0.send(v)
                    v = await r1.receive()
                elapsed = perf_counter() - t0
            nursery.cancel_scope.cancel()
        _check(v == n, f"ping-pong ended with {v}, expected {n}")
        return elapsed

    return trio.run(main)


@bench(
    "channel-pingpong",
    "greendill",
    note="chmake(); echo coroutine: chrecv(ch1), chsend(ch1, v+1); main: chsend(ch0, v),"
    " v = chrecv(ch0)",
)
def greendill_channel_pingpong(n: int) -> float:
    return _greendill_pingpong(n, deadlines=False)


@bench(
    "channel-pingpong",
    "gevent",
    note="two gevent.queue.Channel (one per direction), same shape with put/get",
)
def gevent_channel_pingpong(n: int) -> float:
    return _gevent_pingpong(n, timeouts=False)


@bench(
    "channel-pingpong",
    "asyncio",
    note="two asyncio.Queue(maxsize=1): put never waits in a strict ping-pong, get waits",
)
def asyncio_channel_pingpong(n: int) -> float:
    return _asyncio_pingpong(n, use_uvloop=False, timeouts=False)


@bench("channel-pingpong", "uvloop", requires=("uvloop",), note="the asyncio code on uvloop")
def uvloop_channel_pingpong(n: int) -> float:
    return _asyncio_pingpong(n, use_uvloop=True, timeouts=False)


@bench(
    "channel-pingpong",
    "trio",
    requires=("trio",),
    note="two trio.open_memory_channel(0) (unbuffered); every send/receive is a checkpoint",
)
def trio_channel_pingpong(n: int) -> float:
    return _trio_pingpong(n, timeouts=False)


# --------------------------------------------------------------------------- yield


@bench(
    "yield",
    "greendill",
    note="main: yield_() xN; one coroutine started with go() does yield_() in a loop",
)
def greendill_yield(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    count = [0]

    def other() -> None:
        while True:
            count[0] += 1
            dill.yield_()

    h = dill.go(other)
    t0 = perf_counter()
    for _ in range(n):
        dill.yield_()
    elapsed = perf_counter() - t0
    dill.hclose(h)
    _check(count[0] >= n, f"the other coroutine yielded {count[0]} times, main {n}")
    _greendill_check_clean(before, "yield")
    return elapsed


@bench(
    "yield",
    "gevent",
    note="main: gevent.sleep(0) xN; one other greenlet does gevent.sleep(0) in a loop",
)
def gevent_yield(n: int) -> float:
    import gevent

    count = [0]

    def other() -> None:
        while True:
            count[0] += 1
            gevent.sleep(0)

    g = gevent.spawn(other)
    gevent.sleep(0)  # the other greenlet starts
    t0 = perf_counter()
    for _ in range(n):
        gevent.sleep(0)
    elapsed = perf_counter() - t0
    g.kill()
    _check(count[0] >= n, f"the other greenlet yielded {count[0]} times, main {n}")
    return elapsed


def _asyncio_yield(n: int, use_uvloop: bool) -> float:
    import asyncio

    async def main() -> float:
        count = [0]

        async def other() -> None:
            while True:
                count[0] += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        await asyncio.sleep(0)  # the other task starts
        t0 = perf_counter()
        for _ in range(n):
            await asyncio.sleep(0)
        elapsed = perf_counter() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        _check(count[0] >= n, f"the other task yielded {count[0]} times, main {n}")
        return elapsed

    return _run_asyncio(main, use_uvloop)


@bench("yield", "asyncio", note="await asyncio.sleep(0), with one other task doing the same")
def asyncio_yield(n: int) -> float:
    return _asyncio_yield(n, use_uvloop=False)


@bench("yield", "uvloop", requires=("uvloop",), note="the asyncio code on uvloop")
def uvloop_yield(n: int) -> float:
    return _asyncio_yield(n, use_uvloop=True)


@bench(
    "yield",
    "trio",
    requires=("trio",),
    note="await trio.sleep(0) (a full checkpoint: cancel check + schedule point), with one"
    " other task doing the same",
)
def trio_yield(n: int) -> float:
    import trio
    import trio.testing

    async def main() -> float:
        count = [0]

        async def other() -> None:
            while True:
                count[0] += 1
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(other)
            await trio.sleep(0)
            t0 = perf_counter()
            for _ in range(n):
                await trio.sleep(0)
            elapsed = perf_counter() - t0
            nursery.cancel_scope.cancel()
        # trio shuffles each scheduling batch, so the two tasks do not strictly alternate.
        _check(count[0] >= n // 2, f"the other task yielded {count[0]} times, main {n}")
        return elapsed

    return trio.run(main)


# --------------------------------------------------------------------------- deadline ping-pong


@bench(
    "deadline-pingpong",
    "greendill",
    note="channel-pingpong with dill.now() + 5000 as the deadline of every chsend/chrecv",
)
def greendill_deadline_pingpong(n: int) -> float:
    return _greendill_pingpong(n, deadlines=True)


@bench(
    "deadline-pingpong",
    "gevent",
    note="channel-pingpong with every get in `with gevent.Timeout(5):`",
)
def gevent_deadline_pingpong(n: int) -> float:
    return _gevent_pingpong(n, timeouts=True)


@bench(
    "deadline-pingpong",
    "asyncio",
    note="every get in `async with asyncio.timeout(5):` (asyncio.wait_for before 3.11)",
)
def asyncio_deadline_pingpong(n: int) -> float:
    return _asyncio_pingpong(n, use_uvloop=False, timeouts=True)


@bench("deadline-pingpong", "uvloop", requires=("uvloop",), note="the asyncio code on uvloop")
def uvloop_deadline_pingpong(n: int) -> float:
    return _asyncio_pingpong(n, use_uvloop=True, timeouts=True)


@bench(
    "deadline-pingpong",
    "trio",
    requires=("trio",),
    note="every receive in `with trio.fail_after(5):`",
)
def trio_deadline_pingpong(n: int) -> float:
    return _trio_pingpong(n, timeouts=True)


# --------------------------------------------------------------------------- socket helpers

#: The ping-pong payloads: main sends BYTES[k], the echo side answers NEXT_BYTE[BYTES[k]] =
#: BYTES[k + 1 mod 256] and main sends that back, so after n round trips main holds
#: BYTES[n % 256]: every byte of every round trip is checked by the chain.
BYTES = [bytes([i]) for i in range(256)]
NEXT_BYTE = {BYTES[i]: BYTES[(i + 1) & 255] for i in range(256)}

#: bulk-ipc: the size of every write, and the data written (the same chunk every time).
BULK_CHUNK = 64 * 1024
#: connections-ipc: round trips per connection, the message size, connections started
#: before waiting for them all to be connected and served (a batch stays well inside
#: the listener's backlog: net.core.somaxconn caps it, 4096 by default, and an AF_UNIX
#: connect to a full backlog fails with EAGAIN, which asyncio and trio take for
#: "in progress"), and the listen backlog asked for.
CONN_ROUNDS = 10
CONN_MSG = 16
CONN_BATCH = 1000
CONN_BACKLOG = 4096
#: connections-ipc: fds per connection (both ends) and a margin for everything else.
FDS_PER_CONNECTION = 2
FD_MARGIN = 64


def _bulk_chunk() -> bytes:
    return bytes(range(256)) * (BULK_CHUNK // 256)


def _check_bulk_tail(buf: Any, got: int, total: int, chunk: bytes) -> None:
    """Check the last fragment received (buf[:got], ending at byte `total` of the stream)."""
    offset = (total - got) % len(chunk)
    expected = (chunk + chunk)[offset : offset + got]
    _check(bytes(buf[:got]) == expected, "bulk: the last bytes received are not the ones sent")


def _conn_messages() -> list[bytes]:
    return [bytes([i]) * CONN_MSG for i in range(256)]


def _rss_bytes() -> Optional[int]:
    """The resident set size of this process now (Linux: VmRSS), or None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rss_metrics(rss0: Optional[int], rss1: Optional[int], n: int) -> dict[str, float]:
    if rss0 is None or rss1 is None:
        return {}
    return {"rss_per_connection": (rss1 - rss0) / n}


def _fd_room(n: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return how many connections fit."""
    import resource

    need = FDS_PER_CONNECTION * n + FD_MARGIN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = resource.RLIM_INFINITY
    if soft != infinity and soft < need:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == infinity or soft >= need:
        return n
    fit = max(1, (soft - FD_MARGIN) // FDS_PER_CONNECTION)
    _warn(
        f"RLIMIT_NOFILE is {soft} (hard limit {hard}): {n} connections need ~{need} fds,"
        f" so this run used {fit} connections"
    )
    return fit


class _ConnState:
    """connections-ipc: what the clients and handlers have done so far."""

    __slots__ = ("connected", "finished", "handlers_done", "served", "serving", "target", "wake")

    def __init__(self) -> None:
        self.target = 0  # connections of the batches started so far
        self.connected = 0  # clients connected (and about to wait at the barrier)
        self.serving = 0  # handlers started (and about to wait for the first message)
        self.finished = 0  # clients that did all their round trips
        self.served = 0  # handlers that did all their round trips
        self.handlers_done = 0  # handlers that closed their connection
        self.wake: Any = None  # the main task's wake-up for the current batch

    def all_ready(self) -> bool:
        return self.connected == self.target and self.serving == self.target

    def check(self, n: int) -> None:
        _check(self.connected == n, f"{self.connected} clients connected, expected {n}")
        _check(self.serving == n, f"{self.serving} connections were served, expected {n}")
        _check(self.finished == n, f"{self.finished} clients did all round trips, expected {n}")
        _check(self.served == n, f"{self.served} handlers did all round trips, expected {n}")


def _temp_socket_path() -> tuple[str, str]:
    """A new directory and a path for a UNIX socket in it (remove it with shutil.rmtree)."""
    import tempfile

    tmp = tempfile.mkdtemp(prefix="greendill-bench-")
    return tmp, os.path.join(tmp, "listener")


def _greendill_sock(h: int) -> Any:
    """The OS socket under a greendill connection handle (internals), or None."""
    try:
        from greendill._scheduler import context

        return context().handles[h].sock
    except (ImportError, KeyError, AttributeError):
        return None


def _check_nodelay(socks: list[Any], what: str) -> None:
    import socket

    for sock in socks:
        if sock is None:
            _warn(f"{what}: could not check TCP_NODELAY (no socket object)")
            continue
        _check(
            bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)),
            f"{what}: TCP_NODELAY is off on a connection",
        )


# --------------------------------------------------------------------------- socket ping-pong


def _greendill_socket_pingpong(n: int, tcp: bool, deadlines: bool) -> float:
    import greendill as dill

    scenario = "pingpong-tcp" if tcp else ("deadline-pingpong-ipc" if deadlines else "pingpong-ipc")
    before = _greendill_snapshot()
    bsend, brecv, now = dill.bsend, dill.brecv, dill.now
    listener = None
    if tcp:
        addr = dill.ipaddr_local("127.0.0.1", 0)
        listener = dill.tcp_listen(addr, 16)
        accepted: list[int] = []
        acc = dill.go(lambda: accepted.append(dill.tcp_accept(listener)))
        a = dill.tcp_connect(dill.ipaddr_remote("127.0.0.1", dill.ipaddr_port(addr)))
        dill.bundle_wait(acc)
        dill.hclose(acc)
        b = accepted[0]
        _check_nodelay([_greendill_sock(a), _greendill_sock(b)], scenario)  # greendill's own
    else:
        a, b = dill.ipc_pair()

    if deadlines:

        def echo(s: int) -> None:
            while True:
                bsend(s, NEXT_BYTE[brecv(s, 1, now() + 5000)], now() + 5000)

    else:

        def echo(s: int) -> None:
            while True:
                bsend(s, NEXT_BYTE[brecv(s, 1)])

    h = dill.go(echo, b)  # runs at once and waits in brecv
    v = BYTES[0]
    if deadlines:
        t0 = perf_counter()
        for _ in range(n):
            bsend(a, v, now() + 5000)
            v = brecv(a, 1, now() + 5000)
        elapsed = perf_counter() - t0
    else:
        t0 = perf_counter()
        for _ in range(n):
            bsend(a, v)
            v = brecv(a, 1)
        elapsed = perf_counter() - t0
    dill.hclose(h)
    dill.hclose(a)
    dill.hclose(b)
    if listener is not None:
        dill.hclose(listener)
    _check(v == BYTES[n & 255], f"ping-pong ended with {v!r}, expected {BYTES[n & 255]!r}")
    _greendill_check_clean(before, scenario)
    return elapsed


def _gevent_socket_pair(tcp: bool) -> tuple[Any, Any]:
    import socket

    from gevent import socket as gsocket

    if not tcp:
        return gsocket.socketpair()
    ls = gsocket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    a = gsocket.create_connection(ls.getsockname())
    b, _ = ls.accept()
    ls.close()
    for s in (a, b):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return a, b


def _gevent_socket_pingpong(n: int, tcp: bool, timeouts: bool, sendall: bool = True) -> float:
    import gevent

    a, b = _gevent_socket_pair(tcp)
    if tcp:
        _check_nodelay([a, b], "gevent")
    # sendall: gevent's all-or-nothing send, the counterpart of bsend (it asks the kernel
    # for SO_SNDBUF on every call); send: one send(2), enough for 1 byte.
    send_a, send_b = (a.sendall, b.sendall) if sendall else (a.send, b.send)
    recv_a, recv_b = a.recv, b.recv
    Timeout = gevent.Timeout

    if timeouts:

        def echo() -> None:
            while True:
                with Timeout(5):
                    d = recv_b(1)
                send_b(NEXT_BYTE[d])

    else:

        def echo() -> None:
            while True:
                send_b(NEXT_BYTE[recv_b(1)])

    g = gevent.spawn(echo)
    gevent.sleep(0)  # the echo greenlet starts and waits in recv
    v = BYTES[0]
    if timeouts:
        t0 = perf_counter()
        for _ in range(n):
            send_a(v)
            with Timeout(5):
                v = recv_a(1)
        elapsed = perf_counter() - t0
    else:
        t0 = perf_counter()
        for _ in range(n):
            send_a(v)
            v = recv_a(1)
        elapsed = perf_counter() - t0
    g.kill()
    a.close()
    b.close()
    _check(v == BYTES[n & 255], f"ping-pong ended with {v!r}, expected {BYTES[n & 255]!r}")
    return elapsed


def _asyncio_socket_pingpong(n: int, use_uvloop: bool, tcp: bool, timeouts: bool) -> float:
    import asyncio
    import socket
    from functools import partial

    async def main() -> float:
        server = None
        if tcp:
            accepted: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

            async def on_connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                accepted.set_result((r, w))

            server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            ra, wa = await asyncio.open_connection("127.0.0.1", port)
            rb, wb = await accepted
            socks = [w.get_extra_info("socket") for w in (wa, wb)]
            for s in socks:  # asyncio and uvloop set it already; say it anyway
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _check_nodelay(socks, "asyncio")
        else:
            sa, sb = socket.socketpair()
            ra, wa = await asyncio.open_unix_connection(sock=sa)
            rb, wb = await asyncio.open_unix_connection(sock=sb)
        recv_a: Callable[[], Awaitable[bytes]] = partial(ra.readexactly, 1)
        recv_b: Callable[[], Awaitable[bytes]] = partial(rb.readexactly, 1)
        if timeouts:
            recv_a = _asyncio_timeout_get(recv_a)  # type: ignore[arg-type]
            recv_b = _asyncio_timeout_get(recv_b)  # type: ignore[arg-type]

        async def echo() -> None:
            while True:
                wb.write(NEXT_BYTE[await recv_b()])
                await wb.drain()

        task = asyncio.create_task(echo())
        await asyncio.sleep(0)  # the echo task starts and waits in readexactly
        v = BYTES[0]
        t0 = perf_counter()
        for _ in range(n):
            wa.write(v)
            await wa.drain()
            v = await recv_a()
        elapsed = perf_counter() - t0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for w in (wa, wb):
            w.close()
        for w in (wa, wb):
            with contextlib.suppress(OSError):
                await w.wait_closed()
        if server is not None:
            server.close()
            await server.wait_closed()
        _check(v == BYTES[n & 255], f"ping-pong ended with {v!r}, expected {BYTES[n & 255]!r}")
        return elapsed

    return _run_asyncio(main, use_uvloop)


def _trio_socket_pingpong(n: int, tcp: bool, timeouts: bool) -> float:
    import socket

    import trio
    import trio.testing

    async def main() -> float:
        if tcp:
            ls = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            await ls.bind(("127.0.0.1", 0))
            ls.listen(16)
            listener = trio.SocketListener(ls)
            a = await trio.open_tcp_stream("127.0.0.1", ls.getsockname()[1])
            b = await listener.accept()
            await listener.aclose()
            for st in (a, b):  # trio's SocketStream sets it already; say it anyway
                st.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            _check_nodelay([a.socket, b.socket], "trio")
        else:
            sa, sb = trio.socket.socketpair()
            a, b = trio.SocketStream(sa), trio.SocketStream(sb)

        if timeouts:

            async def echo() -> None:
                while True:
                    with trio.fail_after(5):
                        d = await b.receive_some(1)
                    await b.send_all(NEXT_BYTE[d])

        else:

            async def echo() -> None:
                while True:
                    await b.send_all(NEXT_BYTE[await b.receive_some(1)])

        v = BYTES[0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(echo)
            await trio.testing.wait_all_tasks_blocked()  # echo waits in receive_some
            if timeouts:
                t0 = perf_counter()
                for _ in range(n):
                    await a.send_all(v)
                    with trio.fail_after(5):
                        v = await a.receive_some(1)
                elapsed = perf_counter() - t0
            else:
                t0 = perf_counter()
                for _ in range(n):
                    await a.send_all(v)
                    v = await a.receive_some(1)
                elapsed = perf_counter() - t0
            nursery.cancel_scope.cancel()
        await a.aclose()
        await b.aclose()
        _check(v == BYTES[n & 255], f"ping-pong ended with {v!r}, expected {BYTES[n & 255]!r}")
        return elapsed

    return trio.run(main)


for _tcp, _scenario in ((False, "pingpong-ipc"), (True, "pingpong-tcp")):
    _what = "tcp_listen/tcp_accept/tcp_connect on 127.0.0.1" if _tcp else "ipc_pair()"

    bench(
        _scenario,
        "greendill",
        note=f"{_what}; echo coroutine (go): bsend(s, brecv(s, 1)); main: bsend(a, v),"
        " v = brecv(a, 1)",
    )(partial(_greendill_socket_pingpong, tcp=_tcp, deadlines=False))
    bench(
        _scenario,
        "gevent",
        note=(
            "gevent.socket create_connection/accept, TCP_NODELAY set"
            if _tcp
            else "gevent.socket.socketpair()"
        )
        + "; echo greenlet: sendall(recv(1)); main: sendall(v), v = recv(1) (the ratio"
        " baseline)",
    )(partial(_gevent_socket_pingpong, tcp=_tcp, timeouts=False))
    bench(
        _scenario,
        "gevent-send",
        note="the gevent code with send instead of sendall (1 byte always goes in one send)",
    )(partial(_gevent_socket_pingpong, tcp=_tcp, timeouts=False, sendall=False))
    bench(
        _scenario,
        "asyncio",
        note=(
            "asyncio.start_server/open_connection (TCP_NODELAY: asyncio's default, set again)"
            if _tcp
            else "socket.socketpair() wrapped by asyncio.open_unix_connection(sock=...)"
        )
        + "; streams: w.write(v); await w.drain(); v = await r.readexactly(1)",
    )(partial(_asyncio_socket_pingpong, use_uvloop=False, tcp=_tcp, timeouts=False))
    bench(_scenario, "uvloop", requires=("uvloop",), note="the asyncio code on uvloop")(
        partial(_asyncio_socket_pingpong, use_uvloop=True, tcp=_tcp, timeouts=False)
    )
    bench(
        _scenario,
        "trio",
        requires=("trio",),
        note=(
            "trio.open_tcp_stream + SocketListener.accept (SocketStream sets TCP_NODELAY)"
            if _tcp
            else "trio.SocketStream over trio.socket.socketpair()"
        )
        + "; await send_all(v); v = await receive_some(1)",
    )(partial(_trio_socket_pingpong, tcp=_tcp, timeouts=False))

bench(
    "deadline-pingpong-ipc",
    "greendill",
    note="pingpong-ipc with now() + 5000 as the deadline of every bsend and brecv, both sides",
)(partial(_greendill_socket_pingpong, tcp=False, deadlines=True))
bench(
    "deadline-pingpong-ipc",
    "gevent",
    note="pingpong-ipc (sendall) with every recv in `with gevent.Timeout(5):`, both sides",
)(partial(_gevent_socket_pingpong, tcp=False, timeouts=True))
bench(
    "deadline-pingpong-ipc",
    "asyncio",
    note="every readexactly in `async with asyncio.timeout(5):` (wait_for before 3.11)",
)(partial(_asyncio_socket_pingpong, use_uvloop=False, tcp=False, timeouts=True))
bench("deadline-pingpong-ipc", "uvloop", requires=("uvloop",), note="the asyncio code on uvloop")(
    partial(_asyncio_socket_pingpong, use_uvloop=True, tcp=False, timeouts=True)
)
bench(
    "deadline-pingpong-ipc",
    "trio",
    requires=("trio",),
    note="every receive_some in `with trio.fail_after(5):`",
)(partial(_trio_socket_pingpong, tcp=False, timeouts=True))


# --------------------------------------------------------------------------- bulk


@bench(
    "bulk-ipc",
    "greendill",
    note="ipc_pair(); sender coroutine: bsend(s, chunk) per 64 KiB; main: brecv_into(s, buf)"
    " with one preallocated 64 KiB bytearray (exact size, all or nothing)",
)
def greendill_bulk(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    count = n * 1024 * 1024 // BULK_CHUNK
    chunk = _bulk_chunk()
    buf = bytearray(BULK_CHUNK)
    bsend, brecv_into = dill.bsend, dill.brecv_into
    a, b = dill.ipc_pair()
    sent = [0]

    def sender(s: int) -> None:
        for _ in range(count):
            bsend(s, chunk)
        sent[0] = count

    got = 0
    t0 = perf_counter()
    h = dill.go(sender, a)  # runs at once: it fills the socket buffer, then blocks
    for _ in range(count):
        got += brecv_into(b, buf)
    elapsed = perf_counter() - t0
    dill.bundle_wait(h)
    for x in (h, a, b):
        dill.hclose(x)
    _check(sent[0] == count, "bulk: the sender did not finish")
    _check(got == count * BULK_CHUNK, f"bulk: received {got} bytes, expected {count * BULK_CHUNK}")
    _check(buf == chunk, "bulk: the last buffer received is not the chunk sent")
    _greendill_check_clean(before, "bulk-ipc")
    return elapsed


@bench(
    "bulk-ipc",
    "gevent",
    note="gevent.socket.socketpair(); sender greenlet: sendall(chunk) per 64 KiB; main:"
    " recv_into(buf) (whatever is there, up to 64 KiB) until all has come (the ratio baseline)",
)
def gevent_bulk(n: int) -> float:
    import gevent
    from gevent import socket as gsocket

    nbytes = n * 1024 * 1024
    count = nbytes // BULK_CHUNK
    chunk = _bulk_chunk()
    buf = bytearray(BULK_CHUNK)
    a, b = gsocket.socketpair()

    def sender() -> None:
        for _ in range(count):
            a.sendall(chunk)

    recv_into = b.recv_into
    total = got = 0
    t0 = perf_counter()
    g = gevent.spawn(sender)
    while total < nbytes:
        got = recv_into(buf)
        if not got:
            raise AssertionError("bulk: end of stream before all data came")
        total += got
    elapsed = perf_counter() - t0
    g.join()
    a.close()
    b.close()
    _check(g.successful(), "bulk: the sender failed")
    _check(total == nbytes, f"bulk: received {total} bytes, expected {nbytes}")
    _check_bulk_tail(buf, got, total, chunk)
    return elapsed


def _asyncio_bulk(n: int, use_uvloop: bool) -> float:
    import asyncio
    import socket

    async def main() -> float:
        loop = asyncio.get_running_loop()
        nbytes = n * 1024 * 1024
        count = nbytes // BULK_CHUNK
        chunk = _bulk_chunk()
        buf = bytearray(BULK_CHUNK)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)

        async def sender() -> None:
            for _ in range(count):
                await loop.sock_sendall(a, chunk)

        recv_into = loop.sock_recv_into
        total = got = 0
        t0 = perf_counter()
        task = asyncio.create_task(sender())
        while total < nbytes:
            got = await recv_into(b, buf)
            if not got:
                raise AssertionError("bulk: end of stream before all data came")
            total += got
        elapsed = perf_counter() - t0
        await task
        a.close()
        b.close()
        _check(total == nbytes, f"bulk: received {total} bytes, expected {nbytes}")
        _check_bulk_tail(buf, got, total, chunk)
        return elapsed

    return _run_asyncio(main, use_uvloop)


@bench(
    "bulk-ipc",
    "asyncio",
    note="socket.socketpair(); sender task: await loop.sock_sendall(a, chunk); main:"
    " await loop.sock_recv_into(b, buf) until all has come (streams have no readinto)",
)
def asyncio_bulk(n: int) -> float:
    return _asyncio_bulk(n, use_uvloop=False)


@bench("bulk-ipc", "uvloop", requires=("uvloop",), note="the asyncio code on uvloop")
def uvloop_bulk(n: int) -> float:
    return _asyncio_bulk(n, use_uvloop=True)


@bench(
    "bulk-ipc",
    "trio",
    requires=("trio",),
    note="trio.SocketStream over a socketpair; sender task: await send_all(chunk); main:"
    " await receive_some(65536) (a new bytes object each time: streams have no receive_into)",
)
def trio_bulk(n: int) -> float:
    import trio

    async def main() -> float:
        nbytes = n * 1024 * 1024
        count = nbytes // BULK_CHUNK
        chunk = _bulk_chunk()
        sa, sb = trio.socket.socketpair()
        a, b = trio.SocketStream(sa), trio.SocketStream(sb)

        async def sender() -> None:
            for _ in range(count):
                await a.send_all(chunk)

        receive_some = b.receive_some
        total = 0
        data = b""
        async with trio.open_nursery() as nursery:
            t0 = perf_counter()
            nursery.start_soon(sender)
            while total < nbytes:
                data = await receive_some(BULK_CHUNK)
                if not data:
                    raise AssertionError("bulk: end of stream before all data came")
                total += len(data)
            elapsed = perf_counter() - t0
        await a.aclose()
        await b.aclose()
        _check(total == nbytes, f"bulk: received {total} bytes, expected {nbytes}")
        _check_bulk_tail(data, len(data), total, chunk)
        return elapsed

    return trio.run(main)


# --------------------------------------------------------------------------- connections


@bench(
    "connections-ipc",
    "greendill",
    note="ipc_listen; acceptor coroutine: ipc_accept, bundle_go(servers, handler, s); clients"
    " in a bundle: ipc_connect, wait at a barrier (chrecv until chdone), 10 x bsend+brecv,"
    " hclose; handlers: 10 x bsend(s, brecv(s, 16)), hclose",
)
def greendill_connections(n: int) -> Measured:
    import errno
    import shutil

    import greendill as dill

    n = _fd_room(n)
    before = _greendill_snapshot()
    tmp, path = _temp_socket_path()
    msgs = _conn_messages()
    bsend, brecv = dill.bsend, dill.brecv
    st = _ConnState()
    wake0, wake1 = dill.chmake()  # the last one of a batch to be ready wakes main
    gate0, gate1 = dill.chmake()  # the barrier: chdone(gate0) fails every chrecv(gate1)
    ls = dill.ipc_listen(path, CONN_BACKLOG)
    servers = dill.bundle()
    clients = dill.bundle()

    def ready() -> None:
        if st.all_ready():
            dill.chsend(wake1, None)

    def handler(s: int) -> None:
        try:
            st.serving += 1
            ready()
            for _ in range(CONN_ROUNDS):
                bsend(s, brecv(s, CONN_MSG))
            st.served += 1
        finally:
            dill.hclose(s)
            st.handlers_done += 1

    def acceptor() -> None:
        while True:
            dill.bundle_go(servers, handler, dill.ipc_accept(ls))

    def client(i: int) -> None:
        s = dill.ipc_connect(path)
        try:
            st.connected += 1
            ready()
            try:
                dill.chrecv(gate1)
            except OSError as exc:
                if exc.errno != errno.EPIPE:
                    raise
            msg = msgs[i & 255]
            for _ in range(CONN_ROUNDS):
                bsend(s, msg)
                if brecv(s, CONN_MSG) != msg:
                    raise AssertionError("connections: wrong echo")
            st.finished += 1
        finally:
            dill.hclose(s)

    acc = dill.go(acceptor)  # waits in ipc_accept
    rss0 = _rss_bytes()
    t0 = perf_counter()
    for start in range(0, n, CONN_BATCH):
        st.target = min(n, start + CONN_BATCH)
        for i in range(start, st.target):
            dill.bundle_go(clients, client, i)
        dill.chrecv(wake0)
    rss1 = _rss_bytes()  # all n connected, both ends waiting
    dill.chdone(gate0)
    dill.bundle_wait(clients)
    dill.bundle_wait(servers)
    elapsed = perf_counter() - t0
    for h in (acc, clients, servers, ls, wake0, wake1, gate0, gate1):
        dill.hclose(h)
    shutil.rmtree(tmp)
    st.check(n)
    _check(st.handlers_done == n, f"{st.handlers_done} handlers ended, expected {n}")
    _greendill_check_clean(before, "connections-ipc")
    return Measured(elapsed, n, _rss_metrics(rss0, rss1, n))


def _gevent_recv_exact(sock: Any, size: int) -> bytes:
    data: bytes = sock.recv(size)
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise EOFError("end of stream")
        data += more
    return data


@bench(
    "connections-ipc",
    "gevent",
    note="gevent.socket AF_UNIX listener; acceptor greenlet: accept(), spawn(handler); clients:"
    " spawn, connect, Event().wait() barrier, 10 x sendall + recv (exact 16), close;"
    " handlers: 10 x sendall(recv exact 16), close; joinall (the ratio baseline)",
)
def gevent_connections(n: int) -> Measured:
    import shutil
    import socket

    import gevent
    from gevent import socket as gsocket
    from gevent.event import Event

    n = _fd_room(n)
    tmp, path = _temp_socket_path()
    msgs = _conn_messages()
    st = _ConnState()
    gate = Event()
    ls = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(CONN_BACKLOG)
    servers: list[Any] = []

    def ready() -> None:
        if st.all_ready():
            st.wake.set()

    def handler(conn: Any) -> None:
        try:
            st.serving += 1
            ready()
            for _ in range(CONN_ROUNDS):
                conn.sendall(_gevent_recv_exact(conn, CONN_MSG))
            st.served += 1
        finally:
            conn.close()
            st.handlers_done += 1

    def acceptor() -> None:
        while True:
            conn, _ = ls.accept()
            servers.append(gevent.spawn(handler, conn))

    def client(i: int) -> None:
        c = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            c.connect(path)
            st.connected += 1
            ready()
            gate.wait()
            msg = msgs[i & 255]
            for _ in range(CONN_ROUNDS):
                c.sendall(msg)
                if _gevent_recv_exact(c, CONN_MSG) != msg:
                    raise AssertionError("connections: wrong echo")
            st.finished += 1
        finally:
            c.close()

    acc = gevent.spawn(acceptor)
    gevent.sleep(0)  # the acceptor waits in accept
    clients: list[Any] = []
    rss0 = _rss_bytes()
    t0 = perf_counter()
    for start in range(0, n, CONN_BATCH):
        st.target = min(n, start + CONN_BATCH)
        st.wake = Event()
        clients.extend(gevent.spawn(client, i) for i in range(start, st.target))
        st.wake.wait()
    rss1 = _rss_bytes()
    gate.set()
    gevent.joinall(clients)
    gevent.joinall(servers)
    elapsed = perf_counter() - t0
    acc.kill()
    ls.close()
    shutil.rmtree(tmp)
    _check(all(g.successful() for g in clients + servers), "connections: a greenlet failed")
    st.check(n)
    return Measured(elapsed, n, _rss_metrics(rss0, rss1, n))


def _asyncio_connections(n: int, use_uvloop: bool) -> Measured:
    import asyncio
    import shutil

    n = _fd_room(n)
    tmp, path = _temp_socket_path()
    msgs = _conn_messages()

    async def main() -> Measured:
        st = _ConnState()
        gate = asyncio.Event()
        all_done = asyncio.Event()

        def ready() -> None:
            if st.all_ready():
                st.wake.set()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                st.serving += 1
                ready()
                for _ in range(CONN_ROUNDS):
                    writer.write(await reader.readexactly(CONN_MSG))
                    await writer.drain()
                st.served += 1
            finally:
                writer.close()
                await writer.wait_closed()
                st.handlers_done += 1
                if st.handlers_done == n:
                    all_done.set()

        async def client(i: int) -> None:
            reader, writer = await asyncio.open_unix_connection(path)
            try:
                st.connected += 1
                ready()
                await gate.wait()
                msg = msgs[i & 255]
                for _ in range(CONN_ROUNDS):
                    writer.write(msg)
                    await writer.drain()
                    if await reader.readexactly(CONN_MSG) != msg:
                        raise AssertionError("connections: wrong echo")
                st.finished += 1
            finally:
                writer.close()
                await writer.wait_closed()

        server = await asyncio.start_unix_server(handler, path, backlog=CONN_BACKLOG)
        tasks: list[asyncio.Task[None]] = []
        rss0 = _rss_bytes()
        t0 = perf_counter()
        for start in range(0, n, CONN_BATCH):
            st.target = min(n, start + CONN_BATCH)
            st.wake = asyncio.Event()
            tasks.extend(asyncio.create_task(client(i)) for i in range(start, st.target))
            await st.wake.wait()
        rss1 = _rss_bytes()
        gate.set()
        await asyncio.gather(*tasks)
        await all_done.wait()
        elapsed = perf_counter() - t0
        server.close()
        await server.wait_closed()
        st.check(n)
        return Measured(elapsed, n, _rss_metrics(rss0, rss1, n))

    try:
        return _run_asyncio(main, use_uvloop)  # type: ignore[arg-type,return-value]
    finally:
        shutil.rmtree(tmp)


@bench(
    "connections-ipc",
    "asyncio",
    note="asyncio.start_unix_server(handler) + asyncio.open_unix_connection per client task;"
    " asyncio.Event barrier; streams write+drain / readexactly(16); close + wait_closed",
)
def asyncio_connections(n: int) -> Measured:
    return _asyncio_connections(n, use_uvloop=False)


@bench("connections-ipc", "uvloop", requires=("uvloop",), note="the asyncio code on uvloop")
def uvloop_connections(n: int) -> Measured:
    return _asyncio_connections(n, use_uvloop=True)


async def _trio_recv_exact(stream: Any, size: int) -> bytes:
    data: bytes = await stream.receive_some(size)
    while len(data) < size:
        more = await stream.receive_some(size - len(data))
        if not more:
            raise EOFError("end of stream")
        data += more
    return data


@bench(
    "connections-ipc",
    "trio",
    requires=("trio",),
    note="trio.socket AF_UNIX listener + SocketListener; acceptor task: accept(),"
    " start_soon(handler) in the servers' nursery; clients: trio.open_unix_socket, trio.Event"
    " barrier, send_all + receive_some (exact 16), aclose",
)
def trio_connections(n: int) -> Measured:
    import shutil
    import socket

    import trio
    import trio.testing

    n = _fd_room(n)
    tmp, path = _temp_socket_path()
    msgs = _conn_messages()

    async def main() -> Measured:
        st = _ConnState()
        gate = trio.Event()
        all_done = trio.Event()
        ls = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await ls.bind(path)
        ls.listen(CONN_BACKLOG)
        listener = trio.SocketListener(ls)

        def ready() -> None:
            if st.all_ready():
                st.wake.set()

        async def handler(stream: trio.SocketStream) -> None:
            try:
                st.serving += 1
                ready()
                for _ in range(CONN_ROUNDS):
                    await stream.send_all(await _trio_recv_exact(stream, CONN_MSG))
                st.served += 1
            finally:
                await stream.aclose()
                st.handlers_done += 1
                if st.handlers_done == n:
                    all_done.set()

        async def acceptor(nursery: trio.Nursery) -> None:
            while True:
                nursery.start_soon(handler, await listener.accept())

        async def client(i: int) -> None:
            stream = await trio.open_unix_socket(path)
            try:
                st.connected += 1
                ready()
                await gate.wait()
                msg = msgs[i & 255]
                for _ in range(CONN_ROUNDS):
                    await stream.send_all(msg)
                    if await _trio_recv_exact(stream, CONN_MSG) != msg:
                        raise AssertionError("connections: wrong echo")
                st.finished += 1
            finally:
                await stream.aclose()

        async with trio.open_nursery() as servers:
            servers.start_soon(acceptor, servers)
            await trio.testing.wait_all_tasks_blocked()  # the acceptor waits in accept
            rss0 = _rss_bytes()
            t0 = perf_counter()
            async with trio.open_nursery() as clients:
                for start in range(0, n, CONN_BATCH):
                    st.target = min(n, start + CONN_BATCH)
                    st.wake = trio.Event()
                    for i in range(start, st.target):
                        clients.start_soon(client, i)
                    await st.wake.wait()
                rss1 = _rss_bytes()
                gate.set()
            await all_done.wait()
            elapsed = perf_counter() - t0
            servers.cancel_scope.cancel()
        await listener.aclose()
        st.check(n)
        return Measured(elapsed, n, _rss_metrics(rss0, rss1, n))

    try:
        return trio.run(main)
    finally:
        shutil.rmtree(tmp)


# --------------------------------------------------------------------------- prefix framing


def _greendill_messages_stream(n: int, a: int, b: int, payload: bytes, scenario: str) -> float:
    """n messages of payload from a sender coroutine on a to the main task on b; closes both."""
    import greendill as dill

    msend, mrecv = dill.msend, dill.mrecv

    def sender() -> None:
        for _ in range(n):
            msend(a, payload)

    t0 = perf_counter()
    h = dill.go(sender)
    got = 0
    for _ in range(n):
        got += len(mrecv(b, len(payload)))
    elapsed = perf_counter() - t0
    dill.bundle_wait(h)
    dill.hclose(h)
    dill.hclose(a)
    dill.hclose(b)
    _check(
        got == len(payload) * n, f"{scenario}: received {got} bytes, expected {len(payload) * n}"
    )
    return elapsed


def _greendill_messages_pingpong(n: int, a: int, b: int, payload: bytes, scenario: str) -> float:
    """n round trips of payload between the main task on a and an echo coroutine on b."""
    import greendill as dill

    msend, mrecv = dill.msend, dill.mrecv

    def echo() -> None:
        while True:
            msend(b, mrecv(b, len(payload)))

    h = dill.go(echo)
    message = payload
    t0 = perf_counter()
    for _ in range(n):
        msend(a, message)
        message = mrecv(a, len(payload))
    elapsed = perf_counter() - t0
    dill.hclose(h)
    dill.hclose(a)
    dill.hclose(b)
    _check(message == payload, f"{scenario}: the message came back changed")
    return elapsed


_PREFIX_PAYLOAD = bytes(range(64))


@bench(
    "prefix-stream-ipc",
    "greendill",
    note="prefix_attach(s, 4) on both ends of ipc_pair(); msend / mrecv(s, 64)",
)
def greendill_prefix_stream(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    a, b = dill.ipc_pair()
    a, b = dill.prefix_attach(a, 4), dill.prefix_attach(b, 4)
    elapsed = _greendill_messages_stream(n, a, b, _PREFIX_PAYLOAD, "prefix-stream-ipc")
    _greendill_check_clean(before, "prefix-stream-ipc")
    return elapsed


def _gevent_recv_exactly(sock: Any, view: memoryview) -> None:
    while view:
        got = sock.recv_into(view)
        if not got:
            raise EOFError
        view = view[got:]


@bench(
    "prefix-stream-ipc",
    "gevent",
    note="gevent socketpair; sendall(struct header + payload), recv_into header then payload",
)
def gevent_prefix_stream(n: int) -> float:
    import struct

    import gevent

    a, b = _gevent_socket_pair(False)
    pack, unpack_from = struct.Struct(">I").pack, struct.Struct(">I").unpack_from

    def sender() -> None:
        for _ in range(n):
            a.sendall(pack(len(_PREFIX_PAYLOAD)) + _PREFIX_PAYLOAD)

    header = bytearray(4)
    body = bytearray(65536)
    hview, bview = memoryview(header), memoryview(body)
    t0 = perf_counter()
    g = gevent.spawn(sender)
    got = 0
    for _ in range(n):
        _gevent_recv_exactly(b, hview)
        (size,) = unpack_from(header)
        _gevent_recv_exactly(b, bview[:size])
        got += len(bytes(bview[:size]))
    elapsed = perf_counter() - t0
    g.join()
    a.close()
    b.close()
    _check(got == 64 * n, f"received {got} bytes, expected {64 * n}")
    return elapsed


@bench(
    "prefix-pingpong-ipc",
    "greendill",
    note="prefix_attach(s, 4) on both ends of ipc_pair(); msend / mrecv(s, 64) both ways",
)
def greendill_prefix_pingpong(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    a, b = dill.ipc_pair()
    elapsed = _greendill_messages_pingpong(
        n,
        dill.prefix_attach(a, 4),
        dill.prefix_attach(b, 4),
        _PREFIX_PAYLOAD,
        "prefix-pingpong-ipc",
    )
    _greendill_check_clean(before, "prefix-pingpong-ipc")
    return elapsed


@bench(
    "prefix-pingpong-ipc",
    "gevent",
    note="gevent socketpair; sendall(struct header + payload), recv_into header then payload",
)
def gevent_prefix_pingpong(n: int) -> float:
    import struct

    import gevent

    a, b = _gevent_socket_pair(False)
    pack, unpack_from = struct.Struct(">I").pack, struct.Struct(">I").unpack_from

    def recv_message(sock: Any, header: memoryview, body: memoryview) -> bytes:
        _gevent_recv_exactly(sock, header)
        (size,) = unpack_from(header)
        _gevent_recv_exactly(sock, body[:size])
        return bytes(body[:size])

    def echo() -> None:
        header, body = memoryview(bytearray(4)), memoryview(bytearray(65536))
        while True:
            message = recv_message(b, header, body)
            b.sendall(pack(len(message)) + message)

    g = gevent.spawn(echo)
    gevent.sleep(0)
    header, body = memoryview(bytearray(4)), memoryview(bytearray(65536))
    message = _PREFIX_PAYLOAD
    t0 = perf_counter()
    for _ in range(n):
        a.sendall(pack(len(message)) + message)
        message = recv_message(a, header, body)
    elapsed = perf_counter() - t0
    g.kill()
    a.close()
    b.close()
    _check(message == _PREFIX_PAYLOAD, "the message came back changed")
    return elapsed


# --------------------------------------------------------------------------- TLS


def _tls_contexts() -> tuple[Any, Any, Any]:
    """A trustme CA and certificate: (server context, client context, the certificate)."""
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client, (ca, cert)


@bench(
    "bulk-tls",
    "greendill",
    requires=("trustme",),
    note="tls_attach_server/tls_attach_client(context=...) on the ends of ipc_pair(); sender"
    " coroutine: bsend(s, chunk) per 64 KiB; main: brecv_into(s, buf), exact 64 KiB",
)
def greendill_bulk_tls(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    server_ctx, client_ctx, _ = _tls_contexts()
    count = n * 1024 * 1024 // BULK_CHUNK
    chunk = _bulk_chunk()
    buf = bytearray(BULK_CHUNK)
    bsend, brecv_into = dill.bsend, dill.brecv_into
    a, b = dill.ipc_pair()
    accepted: list[int] = []
    h = dill.go(lambda: accepted.append(dill.tls_attach_server(b, None, None, context=server_ctx)))
    c = dill.tls_attach_client(a, server_hostname="localhost", context=client_ctx)
    dill.bundle_wait(h)
    dill.hclose(h)
    s = accepted[0]
    sent = [0]

    def sender() -> None:
        for _ in range(count):
            bsend(c, chunk)
        sent[0] = count

    got = 0
    t0 = perf_counter()
    h = dill.go(sender)
    for _ in range(count):
        got += brecv_into(s, buf)
    elapsed = perf_counter() - t0
    dill.bundle_wait(h)
    for x in (h, c, s):
        dill.hclose(x)
    _check(sent[0] == count, "bulk-tls: the sender did not finish")
    _check(got == count * BULK_CHUNK, f"bulk-tls: received {got} bytes")
    _check(buf == chunk, "bulk-tls: the last buffer received is not the chunk sent")
    _greendill_check_clean(before, "bulk-tls")
    return elapsed


@bench(
    "bulk-tls",
    "gevent",
    requires=("trustme",),
    note="gevent.ssl SSLSocket (wrap_socket, same contexts) over gevent.socket.socketpair();"
    " sender greenlet: sendall(chunk) per 64 KiB; main: recv_into(buf) until all has come"
    " (the ratio baseline)",
)
def gevent_bulk_tls(n: int) -> float:
    import ssl

    import gevent
    import gevent.ssl
    from gevent import socket as gsocket

    _, _, (ca, cert) = _tls_contexts()
    server_ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server_ctx)
    client_ctx = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_ctx)
    nbytes = n * 1024 * 1024
    count = nbytes // BULK_CHUNK
    chunk = _bulk_chunk()
    buf = bytearray(BULK_CHUNK)
    a, b = gsocket.socketpair()
    accepted: list[Any] = []
    g = gevent.spawn(lambda: accepted.append(server_ctx.wrap_socket(b, server_side=True)))
    c = client_ctx.wrap_socket(a, server_hostname="localhost")
    g.join()
    _check(g.successful(), "bulk-tls: the server handshake failed")
    s = accepted[0]

    def sender() -> None:
        for _ in range(count):
            c.sendall(chunk)

    recv_into = s.recv_into
    total = got = 0
    t0 = perf_counter()
    g = gevent.spawn(sender)
    while total < nbytes:
        got = recv_into(buf)
        if not got:
            raise AssertionError("bulk-tls: end of stream before all data came")
        total += got
    elapsed = perf_counter() - t0
    g.join()
    c.close()
    s.close()
    _check(g.successful(), "bulk-tls: the sender failed")
    _check(total == nbytes, f"bulk-tls: received {total} bytes, expected {nbytes}")
    _check_bulk_tail(buf, got, total, chunk)
    return elapsed


# --------------------------------------------------------------------------- mmlib's IPC API

# The echo side answers byte k with byte k + 1 (mod 256), indexed by the byte's value.
NEXT_BY_INT = [BYTES[(i + 1) & 255] for i in range(256)]


def _fd_of(ancillary: list[Any]) -> int:
    """The one fd of a receive's SCM_RIGHTS data (what the gevent code parses itself)."""
    import array
    import socket

    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    _check(len(fds) == 1, f"expected one fd, got {len(fds)}")
    return fds[0]


@bench(
    "pingpong-mmipc",
    "greendill",
    note="a, b = mm_ipc_connected_pair(); echo coroutine: mm_ipc_recvmsg(b, m) into a 16-byte"
    " buffer, mm_ipc_sendmsg(b, reply); main: mm_ipc_sendmsg(a, ...), mm_ipc_recvmsg(a, ...)",
)
def greendill_pingpong_mmipc(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    send, recv = dill.mm_ipc_sendmsg, dill.mm_ipc_recvmsg
    a, b = dill.mm_ipc_connected_pair()

    def echo() -> None:
        buf = bytearray(16)
        m = dill.mm_ipc_msg([buf])
        reply = dill.mm_ipc_msg([b""])
        iov = reply.iov
        while True:
            recv(b, m)
            iov[0] = NEXT_BY_INT[buf[0]]
            send(b, reply)

    h = dill.go(echo)  # runs at once and waits in mm_ipc_recvmsg
    buf = bytearray(16)
    out = dill.mm_ipc_msg([BYTES[0]])
    inbox = dill.mm_ipc_msg([buf])
    iov = out.iov
    t0 = perf_counter()
    for _ in range(n):
        send(a, out)
        recv(a, inbox)
        iov[0] = BYTES[buf[0]]
    elapsed = perf_counter() - t0
    dill.hclose(h)
    dill.mm_close(a)
    dill.mm_close(b)
    _check(buf[0] == n & 255, f"ping-pong ended with {buf[0]}, expected {n & 255}")
    _greendill_check_clean(before, "pingpong-mmipc")
    return elapsed


@bench(
    "pingpong-mmipc",
    "gevent",
    note="gevent.socket.socketpair(AF_UNIX, SOCK_SEQPACKET); echo greenlet: recvmsg_into([buf])"
    " then sendmsg([reply]); main: sendmsg([v]), recvmsg_into([buf]) (the ratio baseline)",
)
def gevent_pingpong_mmipc(n: int) -> float:
    import socket

    import gevent
    from gevent import socket as gsocket

    a, b = gsocket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)

    def echo() -> None:
        buf = bytearray(16)
        iov = [buf]
        while True:
            b.recvmsg_into(iov)
            b.sendmsg([NEXT_BY_INT[buf[0]]])

    g = gevent.spawn(echo)
    gevent.sleep(0)  # the echo greenlet starts and waits in recvmsg_into
    buf = bytearray(16)
    iov = [buf]
    v = BYTES[0]
    sendmsg, recvmsg_into = a.sendmsg, a.recvmsg_into
    t0 = perf_counter()
    for _ in range(n):
        sendmsg([v])
        recvmsg_into(iov)
        v = BYTES[buf[0]]
    elapsed = perf_counter() - t0
    g.kill()
    a.close()
    b.close()
    _check(buf[0] == n & 255, f"ping-pong ended with {buf[0]}, expected {n & 255}")
    return elapsed


@bench(
    "fdpass-mmipc",
    "greendill",
    note="mm_ipc_connected_pair(); main: mm_ipc_sendmsg with fds=[pipe end], mm_ipc_recvmsg"
    " (num_fds_max=1), os.close(the fd back); echo coroutine: mm_ipc_recvmsg, mm_ipc_sendmsg"
    " of the received fd, os.close(it)",
)
def greendill_fdpass_mmipc(n: int) -> float:
    import os

    import greendill as dill

    before = _greendill_snapshot()
    send, recv = dill.mm_ipc_sendmsg, dill.mm_ipc_recvmsg
    r, w = os.pipe()
    a, b = dill.mm_ipc_connected_pair()

    def echo() -> None:
        buf = bytearray(16)
        m = dill.mm_ipc_msg([buf], num_fds_max=1)
        reply = dill.mm_ipc_msg([b"\x01"])
        while True:
            recv(b, m)
            reply.fds = fds = m.fds
            send(b, reply)
            os.close(fds[0])

    h = dill.go(echo)
    buf = bytearray(16)
    out = dill.mm_ipc_msg([b"\x00"], [w])
    inbox = dill.mm_ipc_msg([buf], num_fds_max=1)
    received = 0
    t0 = perf_counter()
    for _ in range(n):
        send(a, out)
        recv(a, inbox)
        fds = inbox.fds
        received += len(fds)
        os.close(fds[0])
    elapsed = perf_counter() - t0
    # The last fd really was the pipe: pass it once more and write through it.
    send(a, out)
    recv(a, inbox)
    os.write(inbox.fds[0], b"!")
    os.close(inbox.fds[0])
    _check(os.read(r, 1) == b"!", "the passed fd is not the pipe")
    dill.hclose(h)
    dill.mm_close(a)
    dill.mm_close(b)
    os.close(r)
    os.close(w)
    _check(received == n, f"{received} fds came back, expected {n}")
    _greendill_check_clean(before, "fdpass-mmipc")
    return elapsed


@bench(
    "fdpass-mmipc",
    "gevent",
    note="gevent.socket SEQPACKET pair; sendmsg with SCM_RIGHTS, recvmsg_into with"
    " CMSG_SPACE(4) and MSG_CMSG_CLOEXEC, the fd parsed from the ancillary data, os.close"
    " (the ratio baseline)",
)
def gevent_fdpass_mmipc(n: int) -> float:
    import array
    import os
    import socket

    import gevent
    from gevent import socket as gsocket

    r, w = os.pipe()
    a, b = gsocket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    space = socket.CMSG_SPACE(array.array("i").itemsize)
    flags = socket.MSG_CMSG_CLOEXEC
    SOL_SOCKET, SCM_RIGHTS = socket.SOL_SOCKET, socket.SCM_RIGHTS

    def echo() -> None:
        buf = bytearray(16)
        iov = [buf]
        reply = [b"\x01"]
        while True:
            _, ancillary, _, _ = b.recvmsg_into(iov, space, flags)
            fd = _fd_of(ancillary)
            b.sendmsg(reply, [(SOL_SOCKET, SCM_RIGHTS, array.array("i", [fd]))])
            os.close(fd)

    g = gevent.spawn(echo)
    gevent.sleep(0)
    buf = bytearray(16)
    iov = [buf]
    out = [b"\x00"]
    rights = [(SOL_SOCKET, SCM_RIGHTS, array.array("i", [w]))]
    sendmsg, recvmsg_into = a.sendmsg, a.recvmsg_into
    received = 0
    t0 = perf_counter()
    for _ in range(n):
        sendmsg(out, rights)
        _, ancillary, _, _ = recvmsg_into(iov, space, flags)
        fd = _fd_of(ancillary)
        received += 1
        os.close(fd)
    elapsed = perf_counter() - t0
    sendmsg(out, rights)
    _, ancillary, _, _ = recvmsg_into(iov, space, flags)
    fd = _fd_of(ancillary)
    os.write(fd, b"!")
    os.close(fd)
    _check(os.read(r, 1) == b"!", "the passed fd is not the pipe")
    g.kill()
    a.close()
    b.close()
    os.close(r)
    os.close(w)
    _check(received == n, f"{received} fds came back, expected {n}")
    return elapsed


# The echo side of pingpong-mmipc-2proc, run by `python -c` in a child process that
# inherits one end of the pair as fd argv[2]: byte k back as k + 1 until the end of the
# connection, then it prints how many it answered.
_GREENDILL_ECHO_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
import greendill as dill
fd = int(sys.argv[2])
buf = bytearray(16)
m = dill.mm_ipc_msg([buf])
reply = dill.mm_ipc_msg([b""])
nxt = [bytes([(i + 1) & 255]) for i in range(256)]
count = 0
try:
    while True:
        dill.mm_ipc_recvmsg(fd, m)
        reply.iov[0] = nxt[buf[0]]
        dill.mm_ipc_sendmsg(fd, reply)
        count += 1
except BrokenPipeError:
    pass
dill.mm_close(fd)
print(count)
"""

_GEVENT_ECHO_CHILD = """
import socket, sys
from gevent import socket as gsocket
s = gsocket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=int(sys.argv[2]))
buf = bytearray(16)
iov = [buf]
nxt = [bytes([(i + 1) & 255]) for i in range(256)]
count = 0
while True:
    n, _, _, _ = s.recvmsg_into(iov)
    if n == 0:
        break  # the end of the connection (no empty datagrams in this conversation)
    s.sendmsg([nxt[buf[0]]])
    count += 1
s.close()
print(count)
"""


def _echo_child(source: str, fd: int) -> subprocess.Popen[str]:
    """Start a child process that echoes on fd (inherited), with this tree's greendill."""
    return subprocess.Popen(
        [sys.executable, "-c", source, str(REPO_ROOT), str(fd)],
        pass_fds=[fd],
        stdout=subprocess.PIPE,
        text=True,
    )


def _echo_child_count(child: subprocess.Popen[str]) -> int:
    out, _ = child.communicate(timeout=60)
    _check(child.returncode == 0, f"the echo child exited with {child.returncode}")
    return int(out.strip())


#: Round trips before the timer starts: the child has started and is answering.
_CHILD_WARMUP = 200


@bench(
    "pingpong-mmipc-2proc",
    "greendill",
    note="mm_ipc_connected_pair(); the child: mm_ipc_recvmsg / mm_ipc_sendmsg in a loop on its"
    " end; main: mm_ipc_sendmsg, mm_ipc_recvmsg (reused mm_ipc_msgs)",
)
def greendill_pingpong_mmipc_2proc(n: int) -> float:
    import greendill as dill

    before = _greendill_snapshot()
    send, recv = dill.mm_ipc_sendmsg, dill.mm_ipc_recvmsg
    a, b = dill.mm_ipc_connected_pair()
    child = _echo_child(_GREENDILL_ECHO_CHILD, b)
    dill.mm_close(b)
    buf = bytearray(16)
    out = dill.mm_ipc_msg([BYTES[0]])
    inbox = dill.mm_ipc_msg([buf])
    iov = out.iov
    for _ in range(_CHILD_WARMUP):
        send(a, out)
        recv(a, inbox)
        iov[0] = BYTES[buf[0]]
    t0 = perf_counter()
    for _ in range(n):
        send(a, out)
        recv(a, inbox)
        iov[0] = BYTES[buf[0]]
    elapsed = perf_counter() - t0
    dill.mm_close(a)
    answered = _echo_child_count(child)
    total = n + _CHILD_WARMUP
    _check(buf[0] == total & 255, f"ping-pong ended with {buf[0]}, expected {total & 255}")
    _check(answered == total, f"the child answered {answered} datagrams, expected {total}")
    _greendill_check_clean(before, "pingpong-mmipc-2proc")
    return elapsed


@bench(
    "pingpong-mmipc-2proc",
    "gevent",
    note="gevent.socket.socketpair(AF_UNIX, SOCK_SEQPACKET); the child: recvmsg_into([buf]),"
    " sendmsg([reply]) in a loop on its end; main: sendmsg([v]), recvmsg_into([buf])",
)
def gevent_pingpong_mmipc_2proc(n: int) -> float:
    import socket

    from gevent import socket as gsocket

    a, b = gsocket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = _echo_child(_GEVENT_ECHO_CHILD, b.fileno())
    b.close()
    buf = bytearray(16)
    iov = [buf]
    v = BYTES[0]
    sendmsg, recvmsg_into = a.sendmsg, a.recvmsg_into
    for _ in range(_CHILD_WARMUP):
        sendmsg([v])
        recvmsg_into(iov)
        v = BYTES[buf[0]]
    t0 = perf_counter()
    for _ in range(n):
        sendmsg([v])
        recvmsg_into(iov)
        v = BYTES[buf[0]]
    elapsed = perf_counter() - t0
    a.close()
    answered = _echo_child_count(child)
    total = n + _CHILD_WARMUP
    _check(buf[0] == total & 255, f"ping-pong ended with {buf[0]}, expected {total & 255}")
    _check(answered == total, f"the child answered {answered} datagrams, expected {total}")
    return elapsed


# --------------------------------------------------------------------------- WebSocket

_WS_PAYLOAD = bytes(range(64))


def _greendill_ws_pair() -> tuple[int, int]:
    """(client, server): WebSockets upgraded over a TCP loopback connection."""
    import greendill as dill

    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls = dill.tcp_listen(addr, 1)
    c = dill.tcp_connect(addr)
    s = dill.tcp_accept(ls)
    dill.hclose(ls)
    client: list[int] = []
    co = dill.go(lambda: client.append(dill.ws_attach_client(c, 0, "/bench", "127.0.0.1")))
    server, _, _ = dill.ws_attach_server(s, 0)
    dill.bundle_wait(co)
    dill.hclose(co)
    return client[0], server


@bench(
    "ws-pingpong-tcp",
    "greendill",
    note="ws_attach_client/ws_attach_server over tcp_connect/tcp_accept; msend / mrecv(s, 64)",
)
def greendill_ws_pingpong(n: int) -> float:
    before = _greendill_snapshot()
    c, s = _greendill_ws_pair()
    elapsed = _greendill_messages_pingpong(n, c, s, _WS_PAYLOAD, "ws-pingpong-tcp")
    _greendill_check_clean(before, "ws-pingpong-tcp")
    return elapsed


@bench(
    "ws-stream-tcp",
    "greendill",
    note="ws_attach_client/ws_attach_server over TCP; a sender coroutine msends, main mrecv(s, 64)",
)
def greendill_ws_stream(n: int) -> float:
    before = _greendill_snapshot()
    c, s = _greendill_ws_pair()
    elapsed = _greendill_messages_stream(n, c, s, _WS_PAYLOAD, "ws-stream-tcp")
    _greendill_check_clean(before, "ws-stream-tcp")
    return elapsed


def _websockets_run(n: int, stream: bool) -> float:
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def main() -> float:
        received = 0
        finished = asyncio.get_running_loop().create_future()

        async def handler(ws: Any) -> None:
            nonlocal received
            if stream:
                async for message in ws:
                    received += len(message)
                    if received == 64 * n:
                        finished.set_result(None)
            else:
                async for message in ws:
                    await ws.send(message)

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/bench", compression=None) as ws:
                message = _WS_PAYLOAD
                t0 = perf_counter()
                if stream:
                    for _ in range(n):
                        await ws.send(_WS_PAYLOAD)
                    await finished
                else:
                    for _ in range(n):
                        await ws.send(message)
                        message = await ws.recv()
                elapsed = perf_counter() - t0
        if stream:
            _check(received == 64 * n, f"received {received} bytes, expected {64 * n}")
        else:
            _check(message == _WS_PAYLOAD, "the message came back changed")
        return elapsed

    return asyncio.run(main())


@bench(
    "ws-pingpong-tcp",
    "websockets",
    requires=("websockets",),
    note="the websockets package (asyncio, its C speedups): connect / serve, send / recv",
)
def websockets_pingpong(n: int) -> float:
    return _websockets_run(n, stream=False)


@bench(
    "ws-stream-tcp",
    "websockets",
    requires=("websockets",),
    note="the websockets package (asyncio): the client sends, the server's handler counts",
)
def websockets_stream(n: int) -> float:
    return _websockets_run(n, stream=True)


# --------------------------------------------------------------------------- child side


def warmup_size(n: int) -> int:
    return max(1, min(200, n // 50))


def child_main(scenario: str, impl: str, n: int) -> int:
    """Run one measurement; print the rate (operations per second) and metrics as JSON."""
    b = BENCHES[(scenario, impl)]
    sc = SCENARIOS[scenario]
    # First-use costs: lazy imports, the hub, greendill's context.
    b.body(sc.warmup if sc.warmup is not None else warmup_size(n))
    gc.collect()  # every implementation starts its timed part with empty GC generations
    result = b.body(n)
    m = result if isinstance(result, Measured) else Measured(result)
    ops = n if m.ops is None else m.ops
    print(json.dumps({"rate": ops / m.elapsed, "ops": ops, "metrics": m.metrics}), flush=True)
    return 0


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", "?"))


def _git_commit(where: Path) -> str | None:
    """The commit of the git tree `where` is in, "+ changes" if greendill/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head} + uncommitted changes" if dirty else head


def probe_main() -> int:
    """Print what the children will run with, as JSON."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "gc_enabled": gc.isenabled(),
    }
    optional = sorted({m for b in BENCHES.values() for m in b.requires})
    for name in ("gevent", "greenlet", "greendill", *optional):
        info[name] = _version(name)
    if info["gevent"]:
        import gevent

        info["gevent_loop"] = type(gevent.get_hub().loop).__module__
    if info["greendill"]:
        import greendill

        info["greendill_path"] = str(Path(greendill.__file__).parent)
        info["greendill_commit"] = _git_commit(Path(greendill.__file__).parent)
    print(json.dumps(info))
    return 0


# --------------------------------------------------------------------------- parent side


@dataclass
class Row:
    scenario: str
    impl: str
    n: int
    unit: str
    status: str = "ok"  # ok | not installed | error
    rates: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ops: set[int] = field(default_factory=set)  # operations really done per run
    by_round: dict[int, float] = field(default_factory=dict)  # round -> rate of that run
    metrics: dict[str, list[float]] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None

    def metric_median(self, name: str) -> float | None:
        values = self.metrics.get(name)
        return statistics.median(values) if values else None


def child_env() -> dict[str, str]:
    """The environment of the children: greendill importable, from this tree if it has it."""
    env = dict(os.environ)
    if (REPO_ROOT / "greendill" / "__init__.py").is_file():
        where: str | None = str(REPO_ROOT)
    else:
        spec = importlib.util.find_spec("greendill")
        origin = spec.origin if spec is not None else None
        where = str(Path(origin).parent.parent) if origin else None
    if where is not None:
        old = env.get("PYTHONPATH")
        env["PYTHONPATH"] = where + (os.pathsep + old if old else "")
    return env


def run_child(args: list[str], env: dict[str, str], timeout: float) -> tuple[str, str, int]:
    proc = subprocess.run(
        [sys.executable, str(HERE), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc.stdout, proc.stderr, proc.returncode


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}"


def fmt_per_op(rate: float, per: str = "") -> str:
    us = 1e6 / rate
    text = f"{us:.2f} µs" if us < 100 else f"{us:,.0f} µs"
    return f"{text}/{per}" if per else text


def fmt_n(r: Row) -> str:
    """The N column: the size asked for, and the size really used if a run used less."""
    sc = SCENARIOS[r.scenario]
    unit = f" {sc.size_unit}" if sc.size_unit else ""
    used = sorted(r.ops - {r.n})
    if used:
        return f"{r.n:,}{unit} (used {', '.join(f'{u:,}' for u in used)})"
    return f"{r.n:,}{unit}"


def paired_ratio(row: Row, base: Optional[Row]) -> float | None:
    """The median over rounds of row's rate / the baseline's rate in the same round."""
    if base is None:
        return None
    ratios = [rate / base.by_round[k] for k, rate in row.by_round.items() if k in base.by_round]
    return statistics.median(ratios) if ratios else None


def build_table(rows: list[Row]) -> tuple[list[str], dict[tuple[str, str], float]]:
    """The Markdown result table, and the ratios against the baseline."""
    medians = {(r.scenario, r.impl): r.median for r in rows if r.median is not None}
    bases = {r.scenario: r for r in rows if r.impl == BASELINE}
    ratios: dict[tuple[str, str], float] = {}
    lines = [
        "| scenario | implementation | N | median rate | per op | ratio vs gevent"
        " | round-paired ratio | spread | runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        sc = SCENARIOS[r.scenario]
        base = medians.get((r.scenario, BASELINE))
        med = r.median
        if r.status == "not installed":
            cells = ["not installed", "", "", "", "", "0"]
        elif med is None:
            cells = [f"error ({len(r.errors)} failed runs)", "", "", "", "", "0"]
        else:
            ratio = ""
            if base:
                ratios[(r.scenario, r.impl)] = med / base
                ratio = f"{med / base:.2f}x"
            paired = paired_ratio(r, bases.get(r.scenario))
            spread = (max(r.rates) - min(r.rates)) / med * 100
            failed = f" ({len(r.errors)} failed)" if r.errors else ""
            cells = [
                f"{fmt_rate(med * sc.scale)} {sc.unit}",
                fmt_per_op(med, sc.per),
                ratio,
                f"{paired:.2f}x" if paired is not None else "",
                f"±{spread / 2:.0f}%",
                f"{len(r.rates)}{failed}",
            ]
        lines.append(f"| {r.scenario} | {r.impl} | {fmt_n(r)} | " + " | ".join(cells) + " |")
    return lines, ratios


def build_metric_tables(rows: list[Row]) -> tuple[list[str], dict[tuple[str, str, str], float]]:
    """One Markdown table per metric that some run reported (empty if none did)."""
    lines: list[str] = []
    ratios: dict[tuple[str, str, str], float] = {}
    for name, metric in METRICS.items():
        measured = [r for r in rows if r.metrics.get(name)]
        if not measured:
            continue
        better = "lower" if metric.lower_is_better else "higher"
        lines += [
            "",
            f"{metric.label} ({metric.unit}; {better} is better; ratio = implementation /"
            f" {BASELINE} in the same invocation):",
            "",
            f"| scenario | implementation | median {metric.unit} | ratio vs {BASELINE} | range |",
            "|---|---|---:|---:|---:|",
        ]
        for r in measured:
            med = r.metric_median(name)
            base = next(
                (
                    b.metric_median(name)
                    for b in measured
                    if (b.scenario, b.impl) == (r.scenario, BASELINE)
                ),
                None,
            )
            ratio = ""
            if med is not None and base:
                ratios[(name, r.scenario, r.impl)] = med / base
                ratio = f"{med / base:.2f}x"
            values = r.metrics[name]
            lines.append(
                f"| {r.scenario} | {r.impl} | {med:,.0f} | {ratio} |"
                f" {min(values):,.0f} - {max(values):,.0f} |"
            )
    return lines, ratios


def check_targets(rows: list[Row]) -> list[dict[str, Any]]:
    status = {(r.scenario, r.impl): r.status for r in rows}
    by_key = {(r.scenario, r.impl): r for r in rows}
    out = []
    for t in TARGETS:

        def value_of(impl: str, t: Target = t) -> float | None:
            row = by_key.get((t.scenario, impl))
            if row is None:
                return None
            return row.median if t.metric == "rate" else row.metric_median(t.metric)

        num = value_of(t.numerator)
        den = value_of(t.denominator)
        value: float | None = None
        paired: float | None = None
        if t.metric == "rate" and (t.scenario, t.numerator) in by_key:
            paired = paired_ratio(
                by_key[(t.scenario, t.numerator)], by_key.get((t.scenario, t.denominator))
            )
        if num is not None and den:
            value = num / den
            if t.at_most:
                met = value < t.bound if t.strict else value <= t.bound
            else:
                met = value > t.bound if t.strict else value >= t.bound
            verdict = "met" if met else "NOT met"
        elif status.get((t.scenario, t.denominator)) == "not installed":
            verdict = f"not measured ({t.denominator} not installed)"
        elif (t.scenario, t.numerator) not in status:
            verdict = "not measured (scenario not run)"
        else:
            verdict = "not measured (a run failed)"
        what = "" if t.metric == "rate" else f" {t.metric}"
        out.append(
            {
                "scenario": t.scenario,
                "target": t.text,
                "ratio": value,
                "ratio_of": f"{t.numerator} / {t.denominator}{what}",
                "paired_ratio": paired,
                "bound": t.bound,
                "at_most": t.at_most,
                "verdict": verdict,
            }
        )
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark greendill against raw gevent, asyncio, uvloop and trio.",
    )
    p.add_argument("--quick", action="store_true", help="3 runs and smaller sizes")
    p.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"scenarios to run ({', '.join(SCENARIOS)})"
    )
    p.add_argument(
        "--impl",
        nargs="+",
        metavar="IMPL",
        help=f"implementations to run ({BASELINE} always runs: it is the ratio baseline)",
    )
    p.add_argument("--repeat", type=int, help="runs per (scenario, implementation); default 5")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument(
        "--timeout", type=float, default=600.0, help="seconds allowed for one run (default 600)"
    )
    p.add_argument("--list", action="store_true", help="list scenarios and implementations")
    p.add_argument("--child", nargs=3, metavar=("SCENARIO", "IMPL", "N"), help=argparse.SUPPRESS)
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def list_benches() -> None:
    for s in SCENARIOS.values():
        print(f"{s.name} (N={s.size:,}, --quick {s.quick_size:,}; {s.unit}): {s.summary}")
        for (scenario, impl), b in BENCHES.items():
            if scenario == s.name:
                extra = f" [needs {', '.join(b.requires)}]" if b.requires else ""
                print(f"    {impl}: {b.note}{extra}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        scenario, impl, n = args.child
        return child_main(scenario, impl, int(n))
    if args.probe:
        return probe_main()
    if args.list:
        list_benches()
        return 0

    started = time.monotonic()
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    if repeat < 1:
        print("error: --repeat must be at least 1", file=sys.stderr)
        return 2
    scenarios = list(SCENARIOS)
    if args.only:
        unknown = [s for s in args.only if s not in SCENARIOS]
        if unknown:
            print(f"error: unknown scenario(s) {unknown}; known: {scenarios}", file=sys.stderr)
            return 2
        scenarios = [s for s in scenarios if s in args.only]
    known_impls = {impl for _, impl in BENCHES}
    if args.impl:
        unknown = [i for i in args.impl if i not in known_impls]
        if unknown:
            print(f"error: unknown implementation(s) {unknown}", file=sys.stderr)
            return 2

    env = child_env()
    out, err, rc = run_child(["--probe"], env, 120.0)
    if rc != 0:
        print(f"error: the probe child failed:\n{err}", file=sys.stderr)
        return 2
    info: dict[str, Any] = json.loads(out)
    for required in ("gevent", "greenlet", "greendill"):
        if not info.get(required):
            print(f"error: {required} is not importable in the children", file=sys.stderr)
            return 2

    rows: list[Row] = []
    for s in scenarios:
        sc = SCENARIOS[s]
        for (scenario, impl), b in BENCHES.items():
            if scenario != s or (args.impl and impl not in args.impl and impl != BASELINE):
                continue
            row = Row(s, impl, sc.quick_size if args.quick else sc.size, sc.unit)
            if not all(info.get(m) for m in b.requires):
                row.status = "not installed"
            rows.append(row)

    header = environment_lines(info, repeat, args.quick)
    for line in header:
        print(line, file=sys.stderr)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    # Round r runs every (scenario, implementation) once; the implementations of a scenario
    # run back to back, in an order that rotates every round.
    for r in range(repeat):
        for s in scenarios:
            todo = [row for row in rows if row.scenario == s and row.status != "not installed"]
            if not todo:
                continue
            shift = r % len(todo)
            for row in todo[shift:] + todo[:shift]:
                run_one(row, env, args.timeout, r, repeat)

    for row in rows:
        if row.errors and not row.rates:
            row.status = "error"
    elapsed = time.monotonic() - started
    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None

    table, ratios = build_table(rows)
    metric_table, metric_ratios = build_metric_tables(rows)
    targets = check_targets(rows)
    lines = [*header]
    if load_before and load_after:
        lines.append(
            f"- load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}"
        )
    lines.append(f"- wall time of this invocation: {elapsed:.0f} s")
    lines += ["", *table, *metric_table]
    lines += ["", "Targets:", "", "| target | measured | verdict |", "|---|---:|---|"]
    for t in targets:
        measured = f"{t['ratio']:.2f}x ({t['ratio_of']})" if t["ratio"] is not None else "-"
        if t["paired_ratio"] is not None:
            measured += f"; round-paired {t['paired_ratio']:.2f}x"
        lines.append(f"| {t['scenario']}: {t['target']} | {measured} | {t['verdict']} |")
    notes = []
    for row in rows:
        for e in row.errors:
            notes.append(f"- ERROR {row.scenario}/{row.impl}: {e}")
        for w in sorted(set(row.warnings)):
            notes.append(f"- {row.scenario}/{row.impl}: {w}")
    if notes:
        lines += ["", "Problems seen in the runs:", "", *notes]
    print("\n".join(lines))

    if args.json:
        result = {
            "environment": info,
            "config": {"quick": args.quick, "repeat": repeat, "baseline": BASELINE},
            "wall_time_s": elapsed,
            "loadavg_before_after": [load_before, load_after],
            "results": [
                {
                    "scenario": r.scenario,
                    "implementation": r.impl,
                    "n": r.n,
                    "unit": r.unit,
                    "status": r.status,
                    "rates": r.rates,
                    "median": r.median,
                    "ratio": ratios.get((r.scenario, r.impl)),
                    "paired_ratio": paired_ratio(
                        r,
                        next(
                            (b for b in rows if (b.scenario, b.impl) == (r.scenario, BASELINE)),
                            None,
                        ),
                    ),
                    "rates_by_round": r.by_round,
                    "rate_scale": SCENARIOS[r.scenario].scale,
                    "ops": sorted(r.ops),
                    "metrics": r.metrics,
                    "metric_medians": {m: r.metric_median(m) for m in r.metrics},
                    "metric_ratios": {
                        m: metric_ratios.get((m, r.scenario, r.impl)) for m in r.metrics
                    },
                    "errors": r.errors,
                    "warnings": sorted(set(r.warnings)),
                }
                for r in rows
            ],
            "targets": targets,
        }
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if any(row.errors for row in rows) else 0


def environment_lines(info: dict[str, Any], repeat: int, quick: bool) -> list[str]:
    def opt(name: str) -> str:
        return info.get(name) or "not installed"

    return [
        "# greendill benchmarks" + (" (--quick)" if quick else ""),
        "",
        f"- Python {info['python']} ({info['implementation']}), {info['platform']}",
        f"- gevent {info['gevent']} ({info.get('gevent_loop', '?')}), greenlet {info['greenlet']}",
        f"- greendill {info['greendill']} from {info.get('greendill_path', '?')}"
        + (f" (git {info['greendill_commit']})" if info.get("greendill_commit") else ""),
        f"- uvloop {opt('uvloop')}, trio {opt('trio')}",
        f"- CPUs: {info['cpu_count']} (usable by this process: {info['cpu_affinity']})",
        f"- median of {repeat} run{'s' if repeat != 1 else ''}, each in a fresh process,"
        " implementations alternating;"
        f" cyclic GC on; ratio = median rate / {BASELINE}'s median rate in this invocation",
    ]


def run_one(row: Row, env: dict[str, str], timeout: float, r: int, repeat: int) -> None:
    tag = f"[{r + 1}/{repeat}] {row.scenario} {row.impl}"
    started = time.monotonic()
    try:
        out, err, rc = run_child(["--child", row.scenario, row.impl, str(row.n)], env, timeout)
    except subprocess.TimeoutExpired:
        row.errors.append(f"run {r + 1}: timed out after {timeout:g} s")
        print(f"{tag}: TIMEOUT", file=sys.stderr, flush=True)
        return
    for line in err.splitlines():
        if line.startswith("WARNING: "):
            row.warnings.append(line[len("WARNING: ") :])
    rate: float | None = None
    result: dict[str, Any] = {}
    if rc == 0:
        try:
            result = json.loads(out.strip().splitlines()[-1])
            rate = float(result["rate"])
        except (IndexError, ValueError, KeyError, TypeError):
            rate = None
    if rate is None:
        last = "; ".join(err.strip().splitlines()[-3:]) or out.strip() or "no output"
        row.errors.append(f"run {r + 1}: exit code {rc}: {last}")
        print(f"{tag}: FAILED (exit {rc}): {last}", file=sys.stderr, flush=True)
        return
    if rc == 0 and err.strip() and not all(x.startswith("WARNING: ") for x in err.splitlines()):
        # e.g. a traceback printed by gevent's hub for a coroutine that failed
        row.warnings.append("unexpected stderr: " + "; ".join(err.strip().splitlines()[-2:]))
    row.rates.append(rate)
    row.by_round[r] = rate
    row.ops.add(int(result.get("ops", row.n)))
    extra = ""
    for name, value in (result.get("metrics") or {}).items():
        row.metrics.setdefault(name, []).append(float(value))
        extra += f", {name} {value:,.0f}"
    scale = SCENARIOS[row.scenario].scale
    took = time.monotonic() - started
    print(
        f"{tag}: {fmt_rate(rate * scale)} {row.unit}{extra} (child: {took:.1f} s)",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
