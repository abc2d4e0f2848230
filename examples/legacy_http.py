"""The standard library's http.server and urllib, monkeypatched, governed by greendill.

What it shows:

- gevent.monkey.patch_all() first thing, before anything else is imported:
  from then on the standard library's blocking code (socketserver,
  http.server, urllib, time.sleep) waits cooperatively.
- http.server serving beside greendill coroutines: each request is handled
  by a coroutine in a bundle (instead of a thread), and the server's own
  loop, serve_forever, runs in a coroutine too, so hclose stops it.
- urllib fetching under a libdill deadline: `with dill.deadline_scope(...)`
  bounds a block of legacy code, and raises TimeoutError when it passes.
- A stuck request cancelled two ways: the client of /stuck gives up at its
  deadline; another is canceled with hclose of its coroutine. On the
  server's side, the handlers of /stuck (asleep in time.sleep) are canceled
  when the server closes: hclose of the requests' bundle raises Canceled in
  their time.sleep, and their sockets are closed on the way out.

Run it (it serves on a free port of 127.0.0.1, prints what happens, and
stops by itself):

    python examples/legacy_http.py
"""

from gevent import monkey

monkey.patch_all()  # before anything else, so that nothing keeps a blocking original

import argparse  # noqa: E402 (after patching, on purpose)
import http.server  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from typing import Any, Optional  # noqa: E402

import greendill as dill  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    """/hello answers at once, /slow after 200 ms, /stuck never."""

    def do_GET(self) -> None:
        if self.path == "/stuck":
            try:
                time.sleep(3600)  # patched: a cooperative wait that hclose can interrupt
            except dill.Canceled:
                print("server: a handler of /stuck was canceled", flush=True)
                raise
        if self.path == "/slow":
            time.sleep(0.2)
        if self.path not in ("/hello", "/slow"):
            self.send_error(404)
            return
        body = f"{self.path[1:]} from http.server\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the example prints what matters itself


class CoroutineHTTPServer(http.server.HTTPServer):
    """http.server with a greendill coroutine per request, in one bundle."""

    def server_activate(self) -> None:
        super().server_activate()
        self.requests = dill.bundle()

    def process_request(self, request: Any, client_address: Any) -> None:
        dill.bundle_go(self.requests, self.serve_one, request, client_address)

    def serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except dill.Canceled:
            raise  # the server is closing: how a canceled coroutine ends
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        dill.hclose(self.requests)  # cancels the requests still being served


def fetch(url: str, deadline: int = -1) -> str:
    """GET url with urllib, bounded by a libdill deadline."""
    with dill.deadline_scope(deadline), urllib.request.urlopen(url) as response:
        return response.read().decode().strip()  # type: ignore[no-any-return]


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    server = CoroutineHTTPServer(("127.0.0.1", args.port), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"serving on {url}", flush=True)
    serving = dill.go(server.serve_forever)
    try:
        # A plain fetch, under a deadline.
        print("GET /hello ->", fetch(url + "/hello", dill.now() + 2000), flush=True)

        # Several clients at once, in coroutines: /slow takes 200 ms each, and
        # they all take about that long together.
        results: list[str] = []
        start = time.monotonic()
        clients = dill.bundle()
        for _ in range(5):
            dill.bundle_go(clients, lambda: results.append(fetch(url + "/slow")))
        dill.bundle_wait(clients, dill.now() + 5000)
        dill.hclose(clients)
        took = time.monotonic() - start
        print(f"5 x GET /slow at once -> {len(results)} answers in {took:.1f} s", flush=True)

        # A stuck request: the client gives up at its deadline.
        try:
            fetch(url + "/stuck", dill.now() + 300)
        except TimeoutError as exc:
            print(f"GET /stuck -> gave up at the deadline ({exc.strerror})", flush=True)

        # Another stuck request, in a coroutine that is canceled.
        outcome: list[str] = []

        def stuck_client() -> None:
            try:
                fetch(url + "/stuck")
            except dill.Canceled:
                outcome.append("canceled by hclose")
                raise

        h = dill.go(stuck_client)
        dill.msleep(dill.now() + 100)
        dill.hclose(h)
        print("GET /stuck ->", *outcome, flush=True)

        # The server is still fine.
        print("GET /hello ->", fetch(url + "/hello", dill.now() + 2000), flush=True)
    finally:
        dill.hclose(serving)  # serve_forever's wait raises Canceled: no new requests
        server.server_close()  # and the handlers still asleep in /stuck are canceled
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
