"""A blocking-style TCP echo server: a coroutine per connection, graceful shutdown on SIGTERM.

What it shows:

- Straight-line, blocking-style code: each connection is served by a plain
  loop (read a line, send it back) in a coroutine of its own, started with
  bundle_go into one bundle that holds every connection. Lines are messages
  of the suffix layer over the TCP connection.
- Graceful shutdown in libdill's structured way. On SIGTERM (or Ctrl-C):
  1. stop accepting: the accept loop is canceled and the listener closed,
     so new clients are refused;
  2. give the open connections a deadline to finish (bundle_wait with
     now() + --grace-ms): a client that closes in time ends normally;
  3. cancel the rest (hclose of the bundle): the mrecv each of them waits
     in raises Canceled, its handler closes its connection at once (hclose:
     the client sees a reset, as with libdill), and hclose of the bundle
     returns once every one has ended.

Run it, then talk to it from other terminals:

    python examples/echo_server.py --port 7000
    nc 127.0.0.1 7000              (type lines: they come back)
    kill -TERM <pid>               (or Ctrl-C in the server's terminal)

It prints "listening on HOST:PORT" first (with --port 0 the system picks the
port), a line per connection, and what the shutdown did.
"""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import suppress
from typing import Optional

import gevent

import greendill as dill

MAX_LINE = 64 * 1024


def serve(s: int, who: str, active: set[str]) -> None:
    """Echo lines until the client closes its side; then close in order."""
    active.add(who)
    # Messages are lines: the suffix layer frames them (EMSGSIZE past MAX_LINE).
    lines = top = dill.suffix_attach(s, b"\n")
    try:
        while True:
            try:
                line = dill.mrecv(lines, MAX_LINE)
            except BrokenPipeError:  # EPIPE: the client has closed its side
                break
            dill.msend(lines, line)
        top = dill.suffix_detach(lines)
        dill.tcp_close(top, dill.now() + 1000)  # done, then the client's close
        print(f"{who}: finished", flush=True)
    except dill.Canceled:
        print(f"{who}: canceled at shutdown", flush=True)
        dill.hclose(top)
        raise  # how a canceled coroutine ends
    except OSError as exc:
        print(f"{who}: {exc}", flush=True)
        with suppress(OSError):  # tcp_close closes even when it fails
            dill.hclose(top)
    finally:
        active.discard(who)


def accept_loop(ls: int, connections: int, active: set[str]) -> None:
    while True:
        peer = dill.ipaddr()
        s = dill.tcp_accept(ls, addr=peer)
        who = dill.ipaddr_str(peer) + f":{dill.ipaddr_port(peer)}"
        print(f"{who}: connected", flush=True)
        dill.bundle_go(connections, serve, s, who, active)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument("--grace-ms", type=int, default=2000)
    args = parser.parse_args(argv)

    addr = dill.ipaddr_local(args.host, args.port)
    ls = dill.tcp_listen(addr, 128)
    print(f"listening on {args.host}:{dill.ipaddr_port(addr)}", flush=True)

    # A signal closes the sending side of a channel; main waits on the other.
    stop_recv, stop_send = dill.chmake()
    handlers = [
        gevent.signal_handler(signum, dill.chdone, stop_send)
        for signum in (signal.SIGTERM, signal.SIGINT)
    ]
    connections = dill.bundle()
    active: set[str] = set()
    acceptor = dill.go(accept_loop, ls, connections, active)
    try:
        with suppress(BrokenPipeError):
            dill.chrecv(stop_recv)  # EPIPE once a signal did chdone
        # 1. No new connections.
        dill.hclose(acceptor)
        dill.hclose(ls)
        print(f"stopping: {len(active)} connection(s) open", flush=True)
        # 2. The open ones get a deadline to finish by themselves.
        try:
            dill.bundle_wait(connections, dill.now() + args.grace_ms)
            print("every connection finished in time", flush=True)
        except TimeoutError:
            print(f"grace period over: canceling {len(active)} connection(s)", flush=True)
    finally:
        # 3. Cancel what is left (nothing, if they all finished).
        dill.hclose(connections)
        for handler in handlers:
            handler.cancel()
        dill.hclose(stop_send)
        dill.hclose(stop_recv)
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
