"""The greendill command: a demo and an echo server, written with greendill's own API.

    greendill demo                   IPC and TCP echo servers and their clients, in one process
    greendill echo --ipc PATH        an echo server on a UNIX socket, for socat or nc
    greendill echo --tcp HOST:PORT   an echo server on TCP (port 0: the system picks one)

`python -m greendill ...` is the same command. Both are small greendill
programs in libdill's style: an accept loop per listener, one coroutine per
connection in a bundle, absolute deadlines, and structured shutdown, in which
every coroutine is canceled or has ended and every handle is closed before
the command returns.

The two echo servers differ in what they read. `greendill echo` echoes
whatever bytes arrive, so that a person at a terminal gets every line back at
once; the demo's servers echo fixed-size blocks, which is what makes them fast
(see _echo_bytes and _echo_blocks).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Callable, NamedTuple, Optional

import gevent

import greendill as dill

MiB = 1 << 20
# The demo's framing: a client first sends the block size, 4 bytes big-endian;
# the server then echoes blocks of exactly that size until end of stream.
_BLOCK_HEADER = struct.Struct("!I")
_MAX_BLOCK = 16 * MiB
_BULK_BLOCK = 64 * 1024
# accept() errors that pass: the server waits a little and accepts again.
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# Deadlines of the demo's calls: generous, so that only a broken server trips them.
_SAFETY_MS = 30_000


# Transports ---------------------------------------------------------------------------


class Transport(NamedTuple):
    """What an echo server and its clients need of IPC or TCP."""

    name: str
    #: The listening address, as a person reads it ("127.0.0.1:40123", a path).
    where: str
    #: Accept a connection on a listener (waits forever): (handle, the peer as text).
    accept: Callable[[int], tuple[int, str]]
    #: Connect to the listener, with a deadline.
    connect: Callable[[int], int]
    #: Half-close a connection (ipc_done, tcp_done).
    done: Callable[[int], None]
    #: Close a connection in order, with a deadline (ipc_close, tcp_close).
    close: Callable[[int, int], None]


def listen_ipc(path: str, backlog: int = 128) -> tuple[int, Transport]:
    """Listen at path (which must not exist); return the listener and its transport."""
    ls = dill.ipc_listen(path, backlog)

    def accept(ls: int) -> tuple[int, str]:
        return dill.ipc_accept(ls), "local"

    def connect(deadline: int) -> int:
        return dill.ipc_connect(path, deadline)

    return ls, Transport("ipc", path, accept, connect, dill.ipc_done, dill.ipc_close)


def listen_tcp(addr: dill.ipaddr, backlog: int = 128) -> tuple[int, Transport]:
    """Listen on addr (port 0: the system picks one); return the listener and its transport."""
    ls = dill.tcp_listen(addr, backlog)  # writes the port it got back into addr

    def accept(ls: int) -> tuple[int, str]:
        peer = dill.ipaddr()
        s = dill.tcp_accept(ls, addr=peer)
        return s, _host_port(peer)

    def connect(deadline: int) -> int:
        return dill.tcp_connect(addr, deadline)

    return ls, Transport("tcp", _host_port(addr), accept, connect, dill.tcp_done, dill.tcp_close)


def _host_port(a: dill.ipaddr) -> str:
    host = dill.ipaddr_str(a)
    if dill.ipaddr_family(a) == socket.AF_INET6:
        host = f"[{host}]"
    return f"{host}:{dill.ipaddr_port(a)}"


# Echo servers --------------------------------------------------------------------------


class _ProtocolError(Exception):
    """A demo client sent a block size the server does not accept."""


def _echo_bytes(s: int, conn: _Connection) -> None:
    """Echo whatever arrives, at once: the protocol of `greendill echo`.

    greendill's brecv, like libdill's, is all or nothing: it returns exactly
    the size asked for. The byte-stream interface's brecv_some, which the
    framing layers read ahead with, returns whatever has arrived (at least one
    byte), so the server echoes each piece as it comes, as a person typing
    into socat or nc expects, and as fast as a bulk sender sends.
    """
    stream = dill.hquery(s, dill.bsock_type)
    buffer = bytearray(65536)
    view = memoryview(buffer)
    while True:
        got = stream.brecv_some(buffer, -1)
        dill.bsend(s, view[:got])
        conn.echoed += got


def _echo_blocks(s: int, conn: _Connection) -> None:
    """Echo blocks of a size the client sends first: the protocol of the demo's servers.

    The client knows its message size, so it says it once, and each round trip
    is then one brecv_into of a whole block and one bsend of it.
    """
    (size,) = _BLOCK_HEADER.unpack(dill.brecv(s, _BLOCK_HEADER.size))
    if not 0 < size <= _MAX_BLOCK:
        raise _ProtocolError(f"block size {size} is not in 1..{_MAX_BLOCK}")
    block = bytearray(size)
    while True:
        dill.brecv_into(s, block)
        dill.bsend(s, block)
        conn.echoed += size


class _Connection:
    __slots__ = ("echoed", "number", "peer")

    def __init__(self, number: int, peer: str) -> None:
        self.number = number
        self.peer = peer
        self.echoed = 0


class EchoServer:
    """An echo server on one listener: an accept loop, one coroutine per connection.

    It starts at once and runs while the caller's coroutines run; stop() ends it.
    The connections' coroutines live in a bundle of their own, so that the
    server, not the accept loop, owns them: stop() first cancels the accept loop
    (no new connections), then asks every connection to end in order and gives
    them `grace_ms` to do so, then cancels what is left and closes the listener.

    A connection ends in one of these ways, none of which prints a traceback:
    - end of stream (EPIPE from brecv: the peer has sent everything, or stop()
      has half-closed it): the server closes in order (ipc_close, tcp_close), so
      that the peer gets every echoed byte and then end of stream;
    - reset (ECONNRESET: the peer reset the connection, or went away while the
      server was sending): the server just closes the handle;
    - cancellation by stop(), when the grace time is over: the handle is closed
      at once (hclose: a TCP peer sees a reset, as in libdill);
    - a block size out of range (the demo's protocol): dropped, as a reset.
    """

    def __init__(
        self,
        ls: int,
        transport: Transport,
        echo: Callable[[int, _Connection], None],
        *,
        grace_ms: int = 1000,
        log: Optional[Callable[[str], None]] = None,
        on_failure: Optional[Callable[[], None]] = None,
    ) -> None:
        """Serve on ls, which the server owns from now on (stop() closes it)."""
        self.ls = ls
        self.transport = transport
        self.echo = echo
        self.grace_ms = grace_ms
        self.log = log
        self.on_failure = on_failure
        self.failed = False
        self.accepted = 0
        # Open connections, by handle: what stop() half-closes.
        self.live: dict[int, _Connection] = {}
        self.accepter = -1
        try:
            self.conns = dill.bundle()
        except BaseException:
            dill.hclose(ls)
            raise
        try:
            self.accepter = dill.go(self._accept_loop)
        except BaseException:
            dill.hclose(self.conns)
            dill.hclose(ls)
            raise

    def _accept_loop(self) -> None:
        try:
            while True:
                try:
                    s, peer = self.transport.accept(self.ls)
                except dill.Canceled:
                    raise
                except OSError as exc:
                    if exc.errno not in _OUT_OF_RESOURCES:
                        raise
                    print(
                        f"greendill: accept: {exc.strerror}; trying again in 100 ms",
                        file=sys.stderr,
                    )
                    dill.msleep(dill.now() + 100)
                    continue
                self.accepted += 1
                conn = _Connection(self.accepted, peer)
                try:
                    dill.bundle_go(self.conns, self._serve, s, conn)
                except BaseException:
                    dill.hclose(s)
                    raise
        except dill.Canceled:
            raise
        except BaseException:
            # The hub prints the traceback; the owner learns that the server is dead.
            self.failed = True
            if self.on_failure is not None:
                self.on_failure()
            raise

    def _serve(self, s: int, conn: _Connection) -> None:
        self.live[s] = conn
        if self.log is not None:
            self.log(f"connection {conn.number} from {conn.peer}: open")
        how = "closed"
        closed = False
        try:
            self.echo(s, conn)
        except BrokenPipeError:
            # EPIPE: end of stream, or stop() half-closed s. Close in order: the
            # peer reads every byte echoed, then end of stream. ipc_close and
            # tcp_close close the handle whatever happens (an error here means
            # only that the goodbye was not orderly).
            closed = True
            try:
                self.transport.close(s, dill.now() + self.grace_ms)
            except OSError as exc:
                how = f"closed ({os.strerror(exc.errno or errno.EIO)} while closing)"
        except ConnectionResetError:
            how = "reset by the peer"
        except _ProtocolError as exc:
            how = f"dropped: {exc}"
        except dill.Canceled:
            how = "closed by the server's shutdown"
            raise
        finally:
            del self.live[s]
            if not closed:
                dill.hclose(s)
            if self.log is not None:
                self.log(f"connection {conn.number}: {how}, {conn.echoed} bytes echoed")

    def stop(self) -> None:
        """Stop accepting, end the connections (in order if they do in time), close all.

        Raises what escaped a connection's coroutine, if anything did (the
        hub has printed it already), once everything is closed.
        """
        try:
            dill.hclose(self.accepter)
            for s in list(self.live):
                # The peer sees end of stream after the last echoed byte; a
                # client that then closes its side makes the connection's brecv
                # fail with EPIPE, and it closes in order. done does not block.
                with suppress(OSError):
                    self.transport.done(s)
            with suppress(TimeoutError):
                dill.bundle_wait(self.conns, dill.now() + self.grace_ms)
        finally:
            dill.hclose(self.conns)  # cancels those that did not end in time
            dill.hclose(self.ls)


# greendill echo ------------------------------------------------------------------------


def _say(line: str) -> None:
    print(line, flush=True)


def parse_tcp_address(text: str) -> tuple[Optional[str], int]:
    """Split HOST:PORT ("127.0.0.1:7000", "[::1]:0", ":7000" for every address)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise argparse.ArgumentTypeError(f"not HOST:PORT with a port in 0..65535: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (host if host not in ("", "*") else None), int(port_text)


def _tcp_ipaddr(host: Optional[str], port: int) -> dill.ipaddr:
    try:
        # An IP literal or an interface name ("lo"), as libdill's ipaddr_local takes them.
        return dill.ipaddr_local(host, port)
    except OSError as exc:
        if host is None or exc.errno != errno.ENODEV:
            raise
    # A host name, such as localhost: resolve it.
    return dill.ipaddr_remote(host, port, 0, dill.now() + 10_000)


def echo(ipc: Optional[str] = None, tcp: Optional[str] = None, grace_ms: int = 1000) -> int:
    """Run `greendill echo` until SIGINT or SIGTERM; return the exit status.

    Exactly one of ipc (a path that must not exist) and tcp (HOST:PORT) is given.
    The server prints where it listens and one line per connection opened and
    closed. A signal stops it: no new connections; the open ones are half-closed
    and get grace_ms to close in order, then are closed at once; the listener is
    closed and the socket file it created is removed. Exit status 0 then, 1 if
    it cannot listen or the accept loop failed.
    """
    stop_in, stop_out = dill.chmake()

    def request_stop() -> None:
        # Runs in a greenlet that gevent starts for the signal. chdone does not
        # block, and wakes the main greenlet, waiting in chrecv, with EPIPE.
        with suppress(OSError):
            dill.chdone(stop_in)

    handlers = []
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            handlers.append(gevent.signal_handler(signum, request_stop))
        return _echo_until_stopped(ipc, tcp, grace_ms, stop_out, request_stop)
    finally:
        for handler in handlers:
            handler.cancel()
        dill.hclose(stop_in)
        dill.hclose(stop_out)


def _echo_until_stopped(
    ipc: Optional[str],
    tcp: Optional[str],
    grace_ms: int,
    stop_out: int,
    request_stop: Callable[[], None],
) -> int:
    if (ipc is None) == (tcp is None):
        raise ValueError("echo: give exactly one of ipc and tcp")
    created: Optional[tuple[int, int]] = None  # the socket file's (st_dev, st_ino)
    try:
        if ipc is not None:
            ls, transport = listen_ipc(ipc)
            if not ipc.startswith("\0"):  # an abstract name leaves no file
                st = os.stat(ipc)
                created = (st.st_dev, st.st_ino)
            hint = f"socat - UNIX-CONNECT:{ipc}   or   nc -U {ipc}"
        else:
            assert tcp is not None
            ls, transport = listen_tcp(_tcp_ipaddr(*parse_tcp_address(tcp)))
            host, _, port = transport.where.rpartition(":")
            # A client connects to the wildcard address through loopback.
            host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
            hint = f"socat - TCP:{host}:{port}   or   nc {host.strip('[]')} {port}"
    except OSError as exc:
        where = ipc if ipc is not None else tcp
        print(f"greendill echo: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        server = EchoServer(
            ls, transport, _echo_bytes, grace_ms=grace_ms, log=_say, on_failure=request_stop
        )
        try:
            _say(f"greendill echo: listening on {transport.name} {transport.where}")
            _say(f"  try: {hint}")
            _say("  Ctrl-C or SIGTERM stops the server")
            with suppress(BrokenPipeError):
                dill.chrecv(stop_out)  # until request_stop
            _say("greendill echo: stopping")
        finally:
            server.stop()
    finally:
        if created is not None and ipc is not None:
            _remove_own_socket(ipc, created)
    _say(f"greendill echo: stopped after {server.accepted} connections")
    return 1 if server.failed else 0


def _remove_own_socket(path: str, identity: tuple[int, int]) -> None:
    # ipc_listen never unlinks, and closing a listener leaves its file: remove
    # it, but only if it is still the socket this server made.
    with suppress(OSError):
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == identity:
            os.unlink(path)


# greendill demo ------------------------------------------------------------------------


class Result(NamedTuple):
    """One transport's numbers in the demo."""

    transport: str
    round_trips: int
    per_second: float
    mean_us: float
    p99_us: float
    #: Bulk echo throughput in MB/s (10**6 bytes), 0.0 if the bulk phase was skipped.
    bulk_mb_s: float


def _round_trips(
    transport: Transport, size: int, end: int, latencies: list[int], seed: int
) -> None:
    """A demo client: round trips of size-byte messages until the time end (ms)."""
    s = transport.connect(dill.now() + _SAFETY_MS)
    closed = False
    try:
        dill.bsend(s, _BLOCK_HEADER.pack(size))
        message = (seed.to_bytes(4, "big") * (size // 4 + 1))[:size]
        reply = bytearray(size)
        clock = time.perf_counter_ns
        deadline = end + _SAFETY_MS
        while dill.now() < end:
            start = clock()
            dill.bsend(s, message, deadline)
            dill.brecv_into(s, reply, deadline)
            latencies.append(clock() - start)
            if reply != message:
                raise AssertionError(f"{transport.name} echo: the reply differs from the message")
        closed = True
        transport.close(s, dill.now() + _SAFETY_MS)
    finally:
        if not closed:
            dill.hclose(s)


def _send_blocks(s: int, block: bytes, count: int) -> None:
    for _ in range(count):
        dill.bsend(s, block, dill.now() + _SAFETY_MS)


def _bulk(transport: Transport, total: int) -> float:
    """Echo total bytes through one connection; return the seconds it took.

    One coroutine sends while this one receives: the two directions of a
    connection are independent, and the server echoes block by block.
    """
    count = max(total // _BULK_BLOCK, 1)
    block = bytes(range(256)) * (_BULK_BLOCK // 256)
    s = transport.connect(dill.now() + _SAFETY_MS)
    closed = False
    try:
        dill.bsend(s, _BLOCK_HEADER.pack(_BULK_BLOCK))
        start = time.perf_counter()
        sender = dill.go(_send_blocks, s, block, count)
        try:
            received = bytearray(_BULK_BLOCK)
            for _ in range(count):
                dill.brecv_into(s, received, dill.now() + _SAFETY_MS)
                if received != block:
                    raise AssertionError(f"{transport.name} bulk: a block came back different")
            dill.bundle_wait(sender, dill.now() + _SAFETY_MS)  # raises what the sender raised
        finally:
            dill.hclose(sender)
        elapsed = time.perf_counter() - start
        closed = True
        transport.close(s, dill.now() + _SAFETY_MS)
        return elapsed
    finally:
        if not closed:
            dill.hclose(s)


def _round_trip_phase(
    transport: Transport, clients: int, size: int, total_ms: int, say: Callable[[str], None]
) -> tuple[list[int], float]:
    """Run the clients of one transport for total_ms; return the latencies (ns) and seconds."""
    latencies: list[int] = []
    tick = min(500, max(total_ms // 2, 1))
    group = dill.bundle()
    try:
        begin = dill.now()
        end = begin + total_ms
        start = time.perf_counter()
        for n in range(clients):
            dill.bundle_go(group, _round_trips, transport, size, end, latencies, n)
        # Progress, while the clients run: this greenlet sleeps, they do not.
        at = begin
        while at < end:
            at = min(at + tick, end)
            dill.msleep(at)
            seconds = (at - begin) / 1000
            say(f"  {transport.name}  {seconds:5.2f} s  {len(latencies):>10,} round trips")
        dill.bundle_wait(group, end + _SAFETY_MS)  # the clients end by themselves, closing in order
        return latencies, time.perf_counter() - start
    finally:
        dill.hclose(group)


def _micro() -> str:
    try:
        "µ".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return "us"
    return "µs"


def demo(
    seconds: float = 1.0,
    clients: int = 8,
    size: int = 64,
    bulk_mib: int = 64,
    out: Optional[list[str]] = None,
) -> list[Result]:
    """Run the demo; return each transport's numbers.

    An IPC echo server (in a new temporary directory) and a TCP echo server (on
    an ephemeral port of 127.0.0.1) run in this thread, with `clients` client
    coroutines doing round trips of `size`-byte messages for `seconds`, first
    over IPC, then over TCP; progress is printed every half second (more often
    in short runs). Then `bulk_mib` MiB are echoed through one connection per
    transport. Everything is closed and the directory removed
    before demo returns. Lines printed are also appended to out, if given.
    """

    def say(line: str) -> None:
        if out is not None:
            out.append(line)
        print(line, flush=True)

    started = time.perf_counter()
    us = _micro()
    say(
        f"greendill demo: an IPC and a TCP echo server, {clients} client coroutines "
        "per transport, all in one thread"
    )
    with tempfile.TemporaryDirectory(prefix="greendill-demo-") as tmp:
        servers: list[EchoServer] = []
        try:
            ls, ipc = listen_ipc(os.path.join(tmp, "echo.sock"))
            servers.append(EchoServer(ls, ipc, _echo_blocks))
            ls, tcp = listen_tcp(dill.ipaddr_local("127.0.0.1", 0))
            servers.append(EchoServer(ls, tcp, _echo_blocks))
            transports = (ipc, tcp)
            for t in transports:
                say(f"  {t.name} echo server on {t.where}")

            total_ms = max(int(seconds * 1000), 1)
            say(
                f"round trips of {size}-byte messages, {clients} clients, "
                f"{total_ms / 1000:g} s per transport:"
            )
            latencies: dict[str, list[int]] = {}
            elapsed: dict[str, float] = {}
            for t in transports:
                latencies[t.name], elapsed[t.name] = _round_trip_phase(
                    t, clients, size, total_ms, say
                )

            bulk: dict[str, float] = {}
            if bulk_mib > 0:
                say(f"bulk: {bulk_mib} MiB echoed through one connection, in 64 KiB blocks:")
                for t in transports:
                    took = _bulk(t, bulk_mib * MiB)
                    bulk[t.name] = bulk_mib * MiB / took / 1e6
                    say(f"  {t.name}   {bulk[t.name]:>8,.0f} MB/s   ({took:.3f} s)")

            results = []
            say(
                f"  {'':9}{'round trips':>12}{'per second':>13}"
                f"{'mean ' + us:>11}{'p99 ' + us:>10}{'bulk MB/s':>11}"
            )
            for t in transports:
                lat = sorted(latencies[t.name])
                n = len(lat)
                mean = sum(lat) / n / 1000 if n else 0.0
                p99 = lat[max(-(-99 * n // 100) - 1, 0)] / 1000 if n else 0.0
                r = Result(t.name, n, n / elapsed[t.name], mean, p99, bulk.get(t.name, 0.0))
                results.append(r)
                say(
                    f"  {t.name:9}{r.round_trips:>12,}{r.per_second:>13,.0f}"
                    f"{r.mean_us:>11.1f}{r.p99_us:>10.1f}{r.bulk_mb_s:>11,.0f}"
                )
        finally:
            # Structured concurrency: nothing outlives the demo.
            for server in servers:
                server.stop()
    say(
        f"done in {time.perf_counter() - started:.1f} s: servers stopped, "
        f"every handle closed, {tmp} removed"
    )
    return results


# The command -------------------------------------------------------------------------


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
        return value

    return check


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {text!r}")
    return int(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the greendill command (the console script and python -m greendill)."""
    parser = argparse.ArgumentParser(
        prog="greendill", description="greendill: libdill's concurrency and sockets on gevent."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_demo = commands.add_parser(
        "demo",
        help="echo servers and clients over IPC and TCP, in one process",
        description=demo.__doc__.splitlines()[0] if demo.__doc__ else None,
    )
    run_demo.add_argument(
        "--seconds",
        type=_positive(float),
        default=1.0,
        help="round trips for this long, per transport (1)",
    )
    run_demo.add_argument(
        "--clients", type=_positive(int), default=8, help="client coroutines per transport (8)"
    )
    run_demo.add_argument(
        "--size", type=_positive(int), default=64, help="bytes in a round trip's message (64)"
    )
    run_demo.add_argument(
        "--bulk",
        type=_non_negative_int,
        default=64,
        metavar="MIB",
        help="MiB to echo through one connection per transport, 0 for none (64)",
    )
    run_echo = commands.add_parser(
        "echo",
        help="an echo server for socat or nc, until Ctrl-C or SIGTERM",
        description=(
            "Echo every byte each client sends, until SIGINT (Ctrl-C) or SIGTERM. "
            "Bytes are echoed one at a time, at once: meant for a terminal, not for speed."
        ),
    )
    where = run_echo.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--ipc",
        metavar="PATH",
        help="a UNIX socket path that must not exist; it is removed when the server stops",
    )
    where.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="an IP address (or interface or host name) and a port, 0 for any free one",
    )
    run_echo.add_argument(
        "--grace",
        type=_positive(float),
        default=1.0,
        metavar="SECONDS",
        help="how long open connections get to close in order at shutdown (1)",
    )
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.size > _MAX_BLOCK:
            parser.error(f"--size: at most {_MAX_BLOCK}")
        demo(args.seconds, int(args.clients), int(args.size), args.bulk)
        return 0
    if args.tcp is not None:
        try:
            parse_tcp_address(args.tcp)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"--tcp: {exc}")
    return echo(args.ipc, args.tcp, max(int(args.grace * 1000), 1))


if __name__ == "__main__":
    sys.exit(main())
