"""The greendill command: `greendill demo` (also `python -m greendill demo`).

The demo needs no set-up. It runs a small structured-concurrency program:
a producer, a pool of workers fed through a channel, a collector that takes
results and progress ticks with choose, a deadline on the whole run, and
cancellation of everything that is left when it ends. It prints progress
while it runs and the numbers at the end.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Optional

import greendill as dill


def _producer(jobs: int, count: int) -> None:
    for n in range(count):
        dill.chsend(jobs, n)
    dill.chdone(jobs)


def _worker(jobs: int, results: int) -> None:
    while True:
        try:
            n = dill.chrecv(jobs)
        except BrokenPipeError:
            return  # the producer is done
        dill.msleep(dill.now() + n % 3)  # pretend to work for 0-2 ms
        dill.chsend(results, n * n)


def _ticker(ticks: int, period: int) -> None:
    while True:
        dill.msleep(dill.now() + period)
        dill.chsend(ticks, dill.now())


def demo(count: int = 2000, workers: int = 50, out: Optional[list[str]] = None) -> int:
    """Run the demo; return the number of results collected."""

    def say(line: str) -> None:
        if out is not None:
            out.append(line)
        print(line, flush=True)

    start = dill.now()
    jobs_in, jobs_out = dill.chmake()
    results_in, results_out = dill.chmake()
    ticks_in, ticks_out = dill.chmake()
    pool = dill.bundle()
    producer = ticker = -1
    try:
        producer = dill.go(_producer, jobs_in, count)
        for _ in range(workers):
            dill.bundle_go(pool, _worker, jobs_out, results_in)
        ticker = dill.go(_ticker, ticks_in, 100)
        say(f"greendill demo: {count} jobs, {workers} worker coroutines, one channel each way")
        clauses = [dill.chclause(dill.CHRECV, results_out), dill.chclause(dill.CHRECV, ticks_out)]
        collected = total = 0
        while collected < count:
            if dill.choose(clauses, start + 30_000) == 0:
                collected += 1
                total += clauses[0].val
            else:
                say(f"  {collected}/{count} results after {dill.now() - start} ms")
        elapsed = max(dill.now() - start, 1)
        rate = collected * 1000 // elapsed
        say(f"done: {collected} results (sum {total}) in {elapsed} ms, {rate} jobs/s")
        return collected
    finally:
        # Structured concurrency: nothing outlives the demo.
        for h in (ticker, pool, producer):
            if h >= 0:
                dill.hclose(h)
        for h in (jobs_in, jobs_out, results_in, results_out, ticks_in, ticks_out):
            dill.hclose(h)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the greendill command."""
    parser = argparse.ArgumentParser(prog="greendill", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_demo = commands.add_parser("demo", help="run the self-contained demo")
    run_demo.add_argument("--jobs", type=int, default=2000)
    run_demo.add_argument("--workers", type=int, default=50)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.jobs, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
