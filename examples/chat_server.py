"""A TCP chat server: clients' lines fan out to the others through channels and choose.

What it shows:

- One coroutine owns the room's state (who is in it); every other coroutine
  talks to it through channels, so nothing is shared and nothing is locked.
  The room waits on three channels at once with choose: a client joins, a
  client says a line, a client leaves.
- Fan-out through choose: a line goes to every other client's inbox
  channel, whichever inbox is ready first taking it first. A client whose
  writer does not take it within a second (its connection is stuck) misses
  that line, and the room goes on: one slow client cannot stall the chat.
- Per client, two coroutines: the reader (lines from the socket to the
  room) and the writer (lines from its inbox to the socket), closed
  together when the client leaves.
- Structured shutdown on SIGTERM or Ctrl-C: hclose of the accept loop, of
  the room, of the clients' bundle; every coroutine is canceled and every
  handle closed before the process exits.

Run it, then connect a few clients from other terminals:

    python examples/chat_server.py --port 7001
    nc 127.0.0.1 7001        (the first line you type is your name)

The server prints "listening on HOST:PORT" first (--port 0: the system picks).
Clients see "* NAME joined", "NAME: text" and "* NAME left" lines.
"""

from __future__ import annotations

import argparse
import signal
import sys
from contextlib import suppress
from typing import Any, Optional

import gevent

import greendill as dill

MAX_LINE = 4096
FAN_OUT_MS = 1000  # how long a line waits for a slow client's writer


def recv_line(lines: int) -> str:
    """Read one line from a suffix socket (EMSGSIZE beyond MAX_LINE bytes)."""
    return dill.mrecv(lines, MAX_LINE).decode("utf-8", "replace").rstrip("\r")


# The room: the one coroutine that knows who is in the chat -------------------------


def room(join: int, say: int, leave: int) -> None:
    members: dict[int, str] = {}  # a client's inbox (sending end) -> its name
    clauses = [dill.chclause(dill.CHRECV, ch) for ch in (join, say, leave)]
    while True:
        chosen = dill.choose(clauses)
        if chosen == 0:
            inbox, name = clauses[0].val
            members[inbox] = name
            fan_out(members, f"* {name} joined")
        elif chosen == 1:
            inbox, text = clauses[1].val
            fan_out(members, f"{members[inbox]}: {text}", skip=inbox)
        else:
            inbox = clauses[2].val
            name = members.pop(inbox)
            fan_out(members, f"* {name} left")


def fan_out(members: dict[int, str], line: str, skip: Optional[int] = None) -> None:
    """Offer line to every inbox at once; each ready one takes it; give up at the deadline."""
    pending = [inbox for inbox in members if inbox != skip]
    deadline = dill.now() + FAN_OUT_MS
    while pending:
        clauses = [dill.chclause(dill.CHSEND, inbox, line) for inbox in pending]
        try:
            chosen = dill.choose(clauses, deadline)
        except TimeoutError:
            for inbox in pending:
                print(f"{members[inbox]} is too slow: missed a line", flush=True)
            return
        del pending[chosen]


# A client: a reader and a writer coroutine ---------------------------------------------


def writer(lines: int, inbox: int) -> None:
    """Send the lines of inbox to the client; after a failure, keep taking them."""
    try:
        while True:
            dill.msend(lines, dill.chrecv(inbox).encode())
    except dill.Canceled:
        raise
    except OSError:
        while True:  # the connection is gone: the room must not wait for us
            dill.chrecv(inbox)


def client(s: int, join: int, say: int, leave: int) -> None:
    """Read the client's name, then its lines, until it leaves."""
    # Messages are lines: the suffix layer frames them, both ways.
    lines = dill.suffix_attach(s, b"\n")
    inbox_recv, inbox_send = dill.chmake()
    writing = dill.go(writer, lines, inbox_recv)
    joined = False
    try:
        name = recv_line(lines).strip() or "anonymous"
        dill.chsend(join, (inbox_send, name))
        joined = True
        while True:
            dill.chsend(say, (inbox_send, recv_line(lines)))
    except dill.Canceled:
        raise  # the server is stopping
    except OSError:
        pass  # the client left (EPIPE), its connection broke, or its line was too long
    finally:
        if joined:
            # The writer still takes lines meanwhile, so the room never waits on us.
            with suppress(dill.Canceled):
                dill.chsend(leave, inbox_send)
        dill.hclose(writing)
        dill.hclose(inbox_send)
        dill.hclose(inbox_recv)
        dill.hclose(lines)  # and the connection below


def accept_loop(ls: int, clients: int, channels: tuple[int, int, int]) -> None:
    while True:
        s = dill.tcp_accept(ls)
        dill.bundle_go(clients, client, s, *channels)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7001)
    args = parser.parse_args(argv)

    addr = dill.ipaddr_local(args.host, args.port)
    ls = dill.tcp_listen(addr, 128)
    print(f"listening on {args.host}:{dill.ipaddr_port(addr)}", flush=True)

    # Each channel: the room receives on the first end, clients send on the second.
    join_r, join_s = dill.chmake()
    say_r, say_s = dill.chmake()
    leave_r, leave_s = dill.chmake()
    stop_r, stop_s = dill.chmake()
    handlers = [
        gevent.signal_handler(signum, dill.chdone, stop_s)
        for signum in (signal.SIGTERM, signal.SIGINT)
    ]
    handles: list[Any] = []
    try:
        clients = dill.bundle()
        handles.append(clients)
        handles.append(dill.go(room, join_r, say_r, leave_r))
        handles.append(dill.go(accept_loop, ls, clients, (join_s, say_s, leave_s)))
        with suppress(BrokenPipeError):
            dill.chrecv(stop_r)  # EPIPE once a signal did chdone
        print("stopping", flush=True)
    finally:
        # In reverse order of starting: no new clients, then the room (it
        # must not be offering a line to an inbox a client is closing), then
        # the clients, then the channels.
        for h in reversed(handles):
            dill.hclose(h)
        for h in (ls, join_r, join_s, say_r, say_s, leave_r, leave_s, stop_r, stop_s):
            dill.hclose(h)
        for handler in handlers:
            handler.cancel()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
