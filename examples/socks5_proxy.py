"""A SOCKS5 proxy on greendill: CONNECT only, optionally with a username and password.

Each client gets a coroutine: it authenticates the client
(socks5_proxy_auth), reads its request by name (the proxy resolves names,
as curl's --socks5-hostname asks), connects with happyeyeballs_connect,
answers, and then relays bytes both ways until both sides have ended. Run
it with

    python examples/socks5_proxy.py --port 1080 [--user NAME --password WORD]

and try it with curl:

    curl --socks5-hostname 127.0.0.1:1080 http://example.org/
    curl --proxy socks5h://NAME:WORD@127.0.0.1:1080 http://example.org/

It prints "listening on HOST:PORT" once it listens (with --port 0 the port
is the one the kernel chose), and serves until it is interrupted.
"""

from __future__ import annotations

import argparse
import errno
import sys
from typing import Any, Callable, Optional

import greendill as dill

#: How long a client may take over the handshake, and a target to answer, in ms.
HANDSHAKE_MS = 10_000

# Why the connect failed, as the reply that tells the client.
REPLY_FOR_ERRNO = {
    errno.ECONNREFUSED: dill.SOCKS5_CONNECTION_REFUSED,
    errno.ENETUNREACH: dill.SOCKS5_NETWORK_UNREACHABLE,
    errno.EHOSTUNREACH: dill.SOCKS5_HOST_UNREACHABLE,
    errno.EADDRNOTAVAIL: dill.SOCKS5_HOST_UNREACHABLE,  # the name has no address
    errno.ETIMEDOUT: dill.SOCKS5_TTL_EXPIRED,
}


def relay(source: int, sink: int, report: int) -> None:
    """Copy what arrives on source to sink, at once, until source ends; then end sink.

    The outcome goes to the channel report: None, or the error that broke
    this direction (the whole connection then ends).
    """
    stream = dill.hquery(source, dill.bsock_type)
    buffer = bytearray(65536)
    view = memoryview(buffer)
    outcome: Optional[OSError] = None
    try:
        while True:
            # brecv_some: whatever has arrived (brecv would wait for a full buffer).
            got = stream.brecv_some(buffer, -1)
            dill.bsend(sink, view[:got], -1)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            outcome = exc
    if outcome is None:
        try:
            dill.tcp_done(sink)  # the other side of sink sees the end too
        except OSError as exc:
            outcome = exc
    dill.chsend(report, outcome)


def serve(conn: int, auth: Optional[Callable[[str, str], bool]]) -> None:
    """Serve one client: handshake, connect, reply, relay."""
    try:
        deadline = dill.now() + HANDSHAKE_MS
        dill.socks5_proxy_auth(conn, auth, deadline)
        command, host, port = dill.socks5_proxy_recvcommandbyname(conn, deadline)
        # The reply carries the address the proxy bound for the client; it
        # matters for BIND only, and 0.0.0.0:0 is what many proxies send.
        bound = dill.ipaddr()
        if command != dill.SOCKS5_CONNECT:
            dill.socks5_proxy_sendreply(conn, dill.SOCKS5_COMMAND_NOT_SUPPORTED, bound, deadline)
            return
        try:
            target = dill.happyeyeballs_connect(host, port, deadline)
        except OSError as exc:
            reply = REPLY_FOR_ERRNO.get(exc.errno or 0, dill.SOCKS5_GENERAL_FAILURE)
            dill.socks5_proxy_sendreply(conn, reply, bound, deadline)
            return
        try:
            dill.socks5_proxy_sendreply(conn, dill.SOCKS5_SUCCESS, bound, deadline)
            report, outcomes = dill.chmake()
            both = dill.bundle()
            try:
                dill.bundle_go(both, relay, conn, target, report)
                dill.bundle_go(both, relay, target, conn, report)
                # Both directions end in order, or one breaks and ends both.
                for _ in range(2):
                    failure = dill.chrecv(outcomes)
                    if failure is not None:
                        raise failure
            finally:
                dill.hclose(both)
                dill.hclose(report)
                dill.hclose(outcomes)
        finally:
            dill.hclose(target)
    except OSError as exc:
        # A client that goes away or breaks the protocol ends its own
        # coroutine only.
        print(f"client: {exc}", file=sys.stderr, flush=True)
    finally:
        dill.hclose(conn)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=1080, help="port (0: any free one)")
    parser.add_argument("--user", help="username the clients must give")
    parser.add_argument("--password", help="password the clients must give")
    args = parser.parse_args(argv)
    auth: Any = None
    if args.user is not None or args.password is not None:
        user, password = args.user or "", args.password or ""

        def auth(username: str, given: str) -> bool:
            return username == user and given == password

    addr = dill.ipaddr_local(args.host, args.port)
    listener = dill.tcp_listen(addr, 128)
    clients = dill.bundle()
    print(f"listening on {args.host}:{dill.ipaddr_port(addr)}", flush=True)
    try:
        while True:
            conn = dill.tcp_accept(listener)
            dill.bundle_go(clients, serve, conn, auth)
    except KeyboardInterrupt:
        pass
    finally:
        dill.hclose(clients)
        dill.hclose(listener)


if __name__ == "__main__":
    main()
