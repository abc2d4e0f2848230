"""A WebSocket echo server and its clients, in one process and one thread.

The server accepts TCP connections on 127.0.0.1, upgrades each to a
WebSocket in a coroutine of its own, and sends every message back with its
type (text or binary) until the client's close frame; it then answers the
close frame with the same status (ws_detach) and closes the TCP connection
in order (tcp_close). Three clients talk to it at once, then close with a
status and a reason of their own. Run it with

    python examples/ws_echo.py

or keep just the server running, for a browser or another client:

    python examples/ws_echo.py --serve 8765
    python -m websockets ws://127.0.0.1:8765/     # in another terminal
"""

from __future__ import annotations

import argparse

import greendill as dill

DEADLINE_MS = 5000


def serve_connection(s: int) -> None:
    """Echo messages on one accepted TCP connection until the close handshake."""
    try:
        ws, resource, host = dill.ws_attach_server(s, dill.WS_TEXT, dill.now() + DEADLINE_MS)
    except OSError as exc:  # not a WebSocket client: attach has closed s
        print(f"server: refused a connection ({exc})")
        return
    print(f"server: {host} asked for {resource}")
    try:
        while True:
            try:
                data, flags = dill.ws_recv(ws, 1 << 20)
            except BrokenPipeError:  # EPIPE: the client's close frame
                break
            dill.ws_send(ws, flags, data)
        status, reason = dill.ws_status(ws)
        print(f"server: the client closed with {status} {reason.decode()!r}")
        # Answer with the same status; ws_detach returns the TCP connection.
        u = dill.ws_detach(ws, status, reason, dill.now() + DEADLINE_MS)
        ws = -1
        dill.tcp_close(u, dill.now() + DEADLINE_MS)
    finally:
        if ws >= 0:
            dill.hclose(ws)


def accept_loop(listener: int) -> None:
    """Accept connections, each served by a coroutine of the bundle."""
    b = dill.bundle()
    try:
        while True:
            s = dill.tcp_accept(listener)
            dill.bundle_go(b, serve_connection, s)
    finally:
        dill.hclose(b)  # cancels the connections still being served


def client(port: int, name: str) -> None:
    """Connect, upgrade, send a few messages, check their echoes, close."""
    deadline = dill.now() + DEADLINE_MS
    s = dill.tcp_connect(dill.ipaddr_local("127.0.0.1", port), deadline)
    ws = dill.ws_attach_client(s, dill.WS_TEXT, f"/echo/{name}", f"127.0.0.1:{port}", deadline)
    try:
        for i in range(3):
            text = f"{name} says hello #{i}".encode()
            dill.msend(ws, text)  # text: the type given at attach
            assert dill.mrecv(ws, 1000, deadline) == text
        blob = bytes(range(256)) * 400
        dill.ws_send(ws, dill.WS_BINARY, blob)
        data, flags = dill.ws_recv(ws, len(blob), deadline)
        assert (data, flags) == (blob, dill.WS_BINARY)
        print(f"{name}: 3 text messages and {len(blob)} binary bytes came back")
        # The closing handshake, step by step (ws_detach alone does it too).
        dill.ws_done(ws, 1000, f"{name} is done".encode(), deadline)
        try:
            dill.mrecv(ws, 1000, deadline)
        except BrokenPipeError:  # EPIPE: the server's close frame came
            status, reason = dill.ws_status(ws)
            print(f"{name}: the server answered the close with {status} {reason.decode()!r}")
        u = dill.ws_detach(ws, 0, None, deadline)
        ws = -1
        dill.tcp_close(u, deadline)
    finally:
        if ws >= 0:
            dill.hclose(ws)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", type=int, metavar="PORT", help="only serve, on this port")
    args = parser.parse_args()
    addr = dill.ipaddr_local("127.0.0.1", args.serve or 0)
    listener = dill.tcp_listen(addr, 10)
    port = dill.ipaddr_port(addr)
    server = dill.go(accept_loop, listener)
    try:
        if args.serve:
            print(f"serving ws://127.0.0.1:{port}/ (Ctrl-C stops)")
            dill.msleep(-1)
        clients = dill.bundle()
        for name in ("alice", "bob", "carol"):
            dill.bundle_go(clients, client, port, name)
        dill.bundle_wait(clients, dill.now() + 4 * DEADLINE_MS)
        dill.hclose(clients)
        print("all clients done")
    except KeyboardInterrupt:
        pass
    finally:
        dill.hclose(server)
        dill.hclose(listener)


if __name__ == "__main__":
    main()
