"""Benchmark runner: greendill against raw gevent and its peers (asyncio, uvloop, trio).

Usage:

    python benchmarks/run.py [--quick] [--only SCENARIO ...] [--repeat N] [--json FILE]

Every (scenario, implementation) pair is a function registered with `@bench`. The runner
starts a fresh child process for every single run (`python benchmarks/run.py --child
SCENARIO IMPL N`); the child runs the function once with a small size as a warm-up, then
with the real size, and prints one number: the rate in operations per second. Runs of the
implementations of a scenario alternate (the order rotates every round), and the table
shows the median of the runs and its ratio to raw gevent's median in the same invocation.

Adding a scenario: add it to SCENARIOS, then write one `@bench(scenario, impl)` function per
implementation. The function does its own setup, times only the part being measured with
`perf_counter`, checks that the work was really done (raise on a wrong result, `_warn` on a
suspicious one), cleans up, and returns the elapsed seconds for n operations. It imports
what it uses itself, so that a child imports only the implementation it runs.

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
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable

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


@dataclass(frozen=True)
class Bench:
    scenario: str
    impl: str
    body: Callable[[int], float]  # runs n operations, returns the elapsed seconds
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
    )
}

BENCHES: dict[tuple[str, str], Bench] = {}


def bench(
    scenario: str, impl: str, *, requires: tuple[str, ...] = (), note: str = ""
) -> Callable[[Callable[[int], float]], Callable[[int], float]]:
    """Register fn as the body of (scenario, impl)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")

    def register(fn: Callable[[int], float]) -> Callable[[int], float]:
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
    minimum: float  # met when numerator's rate / denominator's rate >= minimum
    strict: bool = False  # met only when the ratio is > minimum


#: The performance targets of the issue, checked at the end (never a failure).
TARGETS = (
    Target("spawn-cancel", "greendill >= 4.5x gevent spawn+kill", "greendill", "gevent", 4.5),
    Target("channel-pingpong", "greendill >= 3x gevent.queue.Channel", "greendill", "gevent", 3.0),
    Target(
        "channel-pingpong", "greendill ahead of asyncio on uvloop", "greendill", "uvloop", 1.0, True
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


# --------------------------------------------------------------------------- child side


def warmup_size(n: int) -> int:
    return max(1, min(200, n // 50))


def child_main(scenario: str, impl: str, n: int) -> int:
    """Run one measurement and print the rate (operations per second)."""
    b = BENCHES[(scenario, impl)]
    b.body(warmup_size(n))  # first-use costs: lazy imports, the hub, greendill's context
    gc.collect()  # every implementation starts its timed part with empty GC generations
    elapsed = b.body(n)
    print(repr(n / elapsed), flush=True)
    return 0


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", "?"))


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

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None


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


def fmt_per_op(rate: float) -> str:
    us = 1e6 / rate
    return f"{us:.2f} µs" if us < 100 else f"{us:.0f} µs"


def build_table(rows: list[Row]) -> tuple[list[str], dict[tuple[str, str], float]]:
    """The Markdown result table, and the ratios against the baseline."""
    medians = {(r.scenario, r.impl): r.median for r in rows if r.median is not None}
    ratios: dict[tuple[str, str], float] = {}
    lines = [
        "| scenario | implementation | N | median rate | per op | ratio vs gevent | spread"
        " | runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        unit = SCENARIOS[r.scenario].unit
        base = medians.get((r.scenario, BASELINE))
        med = r.median
        if r.status == "not installed":
            cells = ["not installed", "", "", "", "0"]
        elif med is None:
            cells = [f"error ({len(r.errors)} failed runs)", "", "", "", "0"]
        else:
            ratio = ""
            if base:
                ratios[(r.scenario, r.impl)] = med / base
                ratio = f"{med / base:.2f}x"
            spread = (max(r.rates) - min(r.rates)) / med * 100
            failed = f" ({len(r.errors)} failed)" if r.errors else ""
            cells = [
                f"{fmt_rate(med)} {unit}",
                fmt_per_op(med),
                ratio,
                f"±{spread / 2:.0f}%",
                f"{len(r.rates)}{failed}",
            ]
        lines.append(f"| {r.scenario} | {r.impl} | {r.n:,} | " + " | ".join(cells) + " |")
    return lines, ratios


def check_targets(rows: list[Row]) -> list[dict[str, Any]]:
    medians = {(r.scenario, r.impl): r.median for r in rows}
    status = {(r.scenario, r.impl): r.status for r in rows}
    out = []
    for t in TARGETS:
        num = medians.get((t.scenario, t.numerator))
        den = medians.get((t.scenario, t.denominator))
        value: float | None = None
        if num is not None and den:
            value = num / den
            met = value > t.minimum if t.strict else value >= t.minimum
            verdict = "met" if met else "NOT met"
        elif status.get((t.scenario, t.denominator)) == "not installed":
            verdict = f"not measured ({t.denominator} not installed)"
        elif (t.scenario, t.numerator) not in status:
            verdict = "not measured (scenario not run)"
        else:
            verdict = "not measured (a run failed)"
        out.append(
            {
                "scenario": t.scenario,
                "target": t.text,
                "ratio": value,
                "ratio_of": f"{t.numerator} / {t.denominator}",
                "minimum": t.minimum,
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
    targets = check_targets(rows)
    lines = [*header]
    if load_before and load_after:
        lines.append(
            f"- load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}"
        )
    lines.append(f"- wall time of this invocation: {elapsed:.0f} s")
    lines += ["", *table, "", "Targets:", "", "| target | measured | verdict |", "|---|---:|---|"]
    for t in targets:
        measured = f"{t['ratio']:.2f}x ({t['ratio_of']})" if t["ratio"] is not None else "-"
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
        f"- greendill {info['greendill']} from {info.get('greendill_path', '?')}",
        f"- uvloop {opt('uvloop')}, trio {opt('trio')}",
        f"- CPUs: {info['cpu_count']} (usable by this process: {info['cpu_affinity']})",
        f"- median of {repeat} run{'s' if repeat != 1 else ''}, each in a fresh process,"
        " implementations alternating;"
        f" cyclic GC on; ratio = median rate / {BASELINE}'s median rate in this invocation",
    ]


def run_one(row: Row, env: dict[str, str], timeout: float, r: int, repeat: int) -> None:
    tag = f"[{r + 1}/{repeat}] {row.scenario} {row.impl}"
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
    if rc == 0:
        try:
            rate = float(out.split()[-1])
        except (IndexError, ValueError):
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
    print(f"{tag}: {fmt_rate(rate)} {row.unit}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
