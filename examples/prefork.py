"""A pre-forked TCP server: N worker processes share one port, so a server uses every core.

What it shows:

- One process per core, each with its own greendill scheduler: a greendill
  program is single-threaded, and processes are how it scales out.
- Two ways to share the port:
  - (default) the parent opens the listening socket, forks the workers,
    and each worker makes a greendill listener of the inherited socket
    with tcp_listener_fromfd (which takes a socket object as well as an
    fd); the kernel hands each connection to whichever worker accepts first.
  - --reuseport: each worker opens its own listening socket on the same
    port with SO_REUSEPORT, and the kernel spreads connections among them.
- The parent never starts gevent's hub before it forks, so each worker
  starts a fresh one. The parent waits for its workers and, on SIGTERM or
  Ctrl-C, passes SIGTERM on to them; each worker then stops accepting,
  cancels its connections and exits.

Each connection gets "worker PID" as its first line, then its lines echoed
with that prefix. Run it:

    python examples/prefork.py --workers 4 --port 7002
    nc 127.0.0.1 7002           (several times: different workers answer)
    kill -TERM <parent pid>     (or Ctrl-C)

It prints "listening on HOST:PORT" first (--port 0: the system picks), then
"worker PID ready" for each worker.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
from contextlib import suppress
from typing import Optional

import gevent

import greendill as dill


def say(line: str) -> None:
    # One write per line: the workers share the parent's stdout, and print()
    # may write a line and its end separately, which other processes split.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def recv_line(s: int) -> bytes:
    line = bytearray()
    while not line.endswith(b"\n"):
        line += dill.brecv(s, 1)
    return bytes(line)


def serve(s: int, prefix: bytes) -> None:
    try:
        dill.bsend(s, prefix + b"\n")
        while True:
            dill.bsend(s, prefix + b": " + recv_line(s))
    except dill.Canceled:
        raise
    except OSError:
        pass  # the client closed (EPIPE) or reset the connection
    finally:
        dill.hclose(s)


def accept_loop(ls: int, connections: int, prefix: bytes) -> None:
    while True:
        s = dill.tcp_accept(ls)
        dill.bundle_go(connections, serve, s, prefix)


def worker(listener: socket.socket) -> int:
    """A worker process: a greendill accept loop on the shared listener, until SIGTERM."""
    # The socket object is taken over: closed here, owned by the handle.
    ls = dill.tcp_listener_fromfd(listener)
    stop_r, stop_s = dill.chmake()
    handlers = [
        gevent.signal_handler(signum, dill.chdone, stop_s)
        for signum in (signal.SIGTERM, signal.SIGINT)
    ]
    connections = dill.bundle()
    accepting = dill.go(accept_loop, ls, connections, f"worker {os.getpid()}".encode())
    say(f"worker {os.getpid()} ready")
    try:
        with suppress(BrokenPipeError):
            dill.chrecv(stop_r)
    finally:
        for h in (accepting, ls, connections, stop_r, stop_s):
            dill.hclose(h)
        for handler in handlers:
            handler.cancel()
    return 0


def listening_socket(host: str, port: int, reuseport: bool) -> socket.socket:
    return socket.create_server((host, port), backlog=128, reuse_port=reuseport)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7002)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reuseport", action="store_true")
    args = parser.parse_args(argv)

    if args.reuseport:
        # A bound socket that does not listen keeps the port for the workers'
        # own listeners (SO_REUSEPORT), and gets no connections itself.
        keeper = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        keeper.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        keeper.bind((args.host, args.port))
    else:
        keeper = listening_socket(args.host, args.port, reuseport=False)
    port = keeper.getsockname()[1]
    say(f"listening on {args.host}:{port}")

    workers = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                if args.reuseport:
                    keeper.close()
                    status = worker(listening_socket(args.host, port, reuseport=True))
                else:
                    status = worker(keeper)
            finally:
                os._exit(status)  # never return into the parent's code
        workers.append(pid)
    keeper.close()  # the workers have it

    def stop(signum: int, frame: object) -> None:
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = 0
    for pid in workers:
        _, status = os.waitpid(pid, 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    say(f"stopped: {len(workers)} workers, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
