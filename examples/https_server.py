"""An HTTPS server on greendill: HTTP over TLS over TCP, a coroutine per connection.

What it shows: protocols stacked and taken apart in libdill's way. Each
connection is a TCP socket; tls_attach_server puts TLS on it (a byte stream
again), http_attach puts HTTP on that, and the head of the request is read
line by line (http_recvrequest, http_recvfield until EPIPE). The answer's head
goes out the same way; http_detach then hands back the TLS stream for the
body, and the stack comes apart in order: tls_done (close_notify), then
tcp_close. One request per connection (the answer says Connection: close).

Run it with a certificate and its key (PEM files), then ask it with curl:

    python examples/https_server.py --port 8443 --cert cert.pem --key key.pem
    curl --cacert ca.pem https://localhost:8443/hello

(trustme, in the test extra, makes such files: `python -m trustme` writes
server.pem, server.key and client.pem, the CA, into the current directory.)
It prints "listening on HOST:PORT" once it listens (with --port 0 the port is
the one the kernel chose), and serves until it is interrupted.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import suppress
from typing import Optional

import greendill as dill

#: How long a client may take over its request, and over the answer, in ms.
REQUEST_MS = 10_000


def read_request(request: int, deadline: int) -> bytes:
    """Read one request's head from an HTTP socket; return the body of the answer."""
    command, resource = dill.http_recvrequest(request, deadline)
    fields = []
    while True:
        try:
            fields.append(dill.http_recvfield(request, deadline))
        except BrokenPipeError:  # EPIPE: the blank line that ends the head
            break
    return f"{command} {resource}: hello over TLS; you sent {len(fields)} fields\n".encode()


def serve(conn: int, cert: str, key: str, who: str) -> None:
    """Serve one connection: TLS on TCP, HTTP on TLS, then the stack taken apart in order."""
    deadline = dill.now() + REQUEST_MS
    top = conn  # the top of the stack: what to close if something fails
    try:
        top = dill.tls_attach_server(top, cert, key, deadline)  # owns conn now
        top = dill.http_attach(top)  # owns the TLS socket
        body = read_request(top, deadline)
        dill.http_sendstatus(top, 200, "OK", deadline)
        dill.http_sendfield(top, "Content-Type", "text/plain; charset=utf-8", deadline)
        dill.http_sendfield(top, "Content-Length", str(len(body)), deadline)
        dill.http_sendfield(top, "Connection", "close", deadline)
        dill.http_done(top, deadline)
        top = dill.http_detach(top, deadline)  # the TLS stream again, for the body
        dill.bsend(top, body, deadline)
        dill.tls_done(top, deadline)  # close_notify: the body is complete
        try:
            top = dill.tls_detach(top, deadline)  # the client's close_notify
            dill.tcp_close(top, deadline)  # done, then the client's end of the stream
        except ConnectionResetError:
            # The client went before the end of the closing handshake, as curl
            # may once it has the whole body; what failed has closed the stack.
            pass
        print(f"{who}: answered", flush=True)
    except OSError as exc:
        print(f"{who}: {exc}", file=sys.stderr, flush=True)
        # A failed attach or detach has closed what it owned already.
        with suppress(OSError):
            dill.hclose(top)


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8443, help="port (0: any free one)")
    parser.add_argument("--cert", required=True, help="the server's certificate (PEM)")
    parser.add_argument("--key", required=True, help="its private key (PEM)")
    args = parser.parse_args(argv)
    addr = dill.ipaddr_local(args.host, args.port)
    listener = dill.tcp_listen(addr, 128)
    connections = dill.bundle()
    print(f"listening on {args.host}:{dill.ipaddr_port(addr)}", flush=True)
    try:
        while True:
            peer = dill.ipaddr()
            conn = dill.tcp_accept(listener, addr=peer)
            who = f"{dill.ipaddr_str(peer)}:{dill.ipaddr_port(peer)}"
            dill.bundle_go(connections, serve, conn, args.cert, args.key, who)
    except KeyboardInterrupt:
        pass
    finally:
        dill.hclose(connections)
        dill.hclose(listener)


if __name__ == "__main__":
    main()
