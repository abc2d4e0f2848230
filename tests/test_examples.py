"""The examples in examples/, each run as a user runs it: a subprocess on loopback.

Each test starts the example, talks to it with standard-library sockets,
stops it (with SIGTERM, sent to the pid the test started, for the servers;
legacy_http.py stops by itself) and checks what it printed and its exit
status. A test that fails kills the process it started.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import trustme
from helpers import skip_unless_patch_all_works

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# Generous: only a hung example trips it. Nothing here asserts speed.
TIMEOUT = 30.0


class Example:
    """One example running in a subprocess, and its output so far."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.out = b""

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Read the output until a line matches pattern; fail after TIMEOUT."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        compiled = re.compile(pattern, re.MULTILINE)
        while True:
            m = compiled.search(self.out.decode())
            if m is not None:
                return m
            if not select.select([fd], [], [], TIMEOUT)[0]:
                pytest.fail(f"no {pattern!r} in time; output:\n{self.out.decode()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(
                    f"the example ended before {pattern!r}; output:\n{self.out.decode()}"
                    f"\nstderr:\n{self.stderr.read_text()}"
                )
            self.out += chunk

    def port(self) -> int:
        return int(self.wait_for(r"^listening on [^ ]+:(\d+)$").group(1))

    def finish(self) -> tuple[int, str]:
        """Wait for the exit: (status, the whole output); stderr must be empty."""
        rest, _ = self.proc.communicate(timeout=TIMEOUT)
        stderr = self.stderr.read_text()
        assert stderr == "", stderr
        return self.proc.returncode, (self.out + rest).decode()


@contextmanager
def example(name: str, *args: str, tmp_path: Path) -> Iterator[Example]:
    env = dict(os.environ)
    # The example imports the greendill under test, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    stderr_path = tmp_path / f"{name}.err"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
    with proc:
        try:
            yield Example(proc, stderr_path)
        finally:
            if proc.returncode is None and proc.poll() is None:
                proc.kill()  # the test failed first: leave nothing behind
                proc.wait(TIMEOUT)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.settimeout(TIMEOUT)
    return sock


def read_line(sock: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError(f"end of stream after {line!r}")
        line += chunk
    return line


def test_every_example_is_listed_in_the_readme_and_says_how_to_run_it() -> None:
    readme = (ROOT / "README.md").read_text()
    names = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert "echo_server.py" in names
    for name in names:
        assert f"examples/{name}" in readme, f"{name} is not listed in the README"
        text = (EXAMPLES / name).read_text()
        assert f"python examples/{name}" in text, f"{name}'s docstring does not say how to run it"


# echo_server.py ------------------------------------------------------------------------


def test_echo_server_echoes_and_shuts_down_gracefully_on_sigterm(tmp_path: Path) -> None:
    with example("echo_server.py", "--port", "0", "--grace-ms", "1000", tmp_path=tmp_path) as ex:
        port = ex.port()
        busy = connect(port)
        idle = connect(port)
        with busy, idle:
            busy.sendall(b"hello\nworld\n")
            assert read_line(busy) == b"hello\n"
            assert read_line(busy) == b"world\n"
            ex.wait_for(r"connected[\s\S]*connected")

            ex.proc.send_signal(signal.SIGTERM)
            ex.wait_for(r"^stopping: 2 connection\(s\) open$")
            # 1. No new connections.
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            # 2. An open connection can still finish within the grace period...
            busy.sendall(b"last words\n")
            assert read_line(busy) == b"last words\n"
            busy.shutdown(socket.SHUT_WR)
            assert busy.recv(1) == b""  # ...and is closed in order.
            # 3. The idle one is canceled when the grace period is over.
            with suppress(ConnectionResetError):
                assert idle.recv(1) == b""
        status, out = ex.finish()
    assert status == 0
    assert re.search(r": finished$", out, re.MULTILINE)
    assert "grace period over: canceling 1 connection(s)" in out
    assert re.search(r": canceled at shutdown$", out, re.MULTILINE)
    assert out.rstrip().endswith("stopped")


def test_echo_server_whose_clients_all_finish_in_time(tmp_path: Path) -> None:
    with example("echo_server.py", "--port", "0", tmp_path=tmp_path) as ex:
        port = ex.port()
        with connect(port) as client:
            client.sendall(b"one\n")
            assert read_line(client) == b"one\n"
            ex.proc.send_signal(signal.SIGTERM)
            ex.wait_for("^stopping")
            client.shutdown(socket.SHUT_WR)
            assert client.recv(1) == b""
        status, out = ex.finish()
    assert status == 0
    assert "every connection finished in time" in out


# chat_server.py ------------------------------------------------------------------------


def test_chat_server_fans_lines_out_to_the_other_clients(tmp_path: Path) -> None:
    with example("chat_server.py", "--port", "0", tmp_path=tmp_path) as ex:
        port = ex.port()
        clients = {}
        try:
            for name in ("alice", "bob", "carol"):
                sock = clients[name] = connect(port)
                sock.sendall(name.encode() + b"\n")
                # Everyone in the room, the newcomer too, hears of it.
                for other in clients.values():
                    assert read_line(other) == f"* {name} joined\n".encode()
            clients["alice"].sendall(b"hi all\n")
            assert read_line(clients["bob"]) == b"alice: hi all\n"
            assert read_line(clients["carol"]) == b"alice: hi all\n"
            clients["bob"].sendall(b"hello alice\n")
            # Alice's next line is Bob's: her own line did not come back to her.
            assert read_line(clients["alice"]) == b"bob: hello alice\n"
            assert read_line(clients["carol"]) == b"bob: hello alice\n"
            clients.pop("carol").close()
            assert read_line(clients["alice"]) == b"* carol left\n"
            assert read_line(clients["bob"]) == b"* carol left\n"
            ex.proc.send_signal(signal.SIGTERM)
            status, out = ex.finish()
            for sock in clients.values():  # closed by the server's shutdown
                with suppress(ConnectionResetError):
                    assert sock.recv(1) == b""
        finally:
            for sock in clients.values():
                sock.close()
    assert status == 0
    assert out.rstrip().endswith("stopping\nstopped")


# legacy_http.py ------------------------------------------------------------------------


def test_legacy_http_fetches_under_deadlines_and_cancels_stuck_requests(tmp_path: Path) -> None:
    skip_unless_patch_all_works()
    with example("legacy_http.py", tmp_path=tmp_path) as ex:
        status, out = ex.finish()  # it stops by itself; no warning on stderr either
    assert status == 0, out
    lines = out.splitlines()
    assert re.fullmatch(r"serving on http://127\.0\.0\.1:\d+", lines[0])
    assert lines[1:6] == [
        "GET /hello -> hello from http.server",
        lines[2],  # its time is checked below
        "GET /stuck -> gave up at the deadline (deadline_scope: Connection timed out)",
        "GET /stuck -> canceled by hclose",
        "GET /hello -> hello from http.server",
    ]
    assert re.fullmatch(r"5 x GET /slow at once -> 5 answers in \d+\.\d s", lines[2])
    # Both stuck handlers were canceled when the server closed.
    assert lines[6:] == ["server: a handler of /stuck was canceled"] * 2 + ["stopped"]


# prefork.py ----------------------------------------------------------------------------


def workers_of(ex: Example, n: int) -> list[int]:
    ready = ex.wait_for(r"(?:^worker \d+ ready\n[\s\S]*){%d}" % n)  # noqa: UP031
    return [int(pid) for pid in re.findall(r"^worker (\d+) ready$", ready.group(0), re.M)]


def answered_by(port: int) -> int:
    with connect(port) as sock:
        first = read_line(sock)
        sock.sendall(b"ping\n")
        assert read_line(sock) == first.rstrip(b"\n") + b": ping\n"
    return int(first.split()[1])


def test_prefork_workers_share_one_listener(tmp_path: Path) -> None:
    with example("prefork.py", "--port", "0", "--workers", "2", tmp_path=tmp_path) as ex:
        port = ex.port()
        workers = workers_of(ex, 2)
        assert len(set(workers)) == 2 and ex.proc.pid not in workers
        # Each worker accepts from the shared socket: with the other one
        # stopped (SIGSTOP, to a pid of the example's), it takes them all.
        for running, stopped in (workers, workers[::-1]):
            os.kill(stopped, signal.SIGSTOP)
            try:
                assert {answered_by(port) for _ in range(3)} == {running}
            finally:
                os.kill(stopped, signal.SIGCONT)
        # Both at once: every connection is answered by one of them.
        served = Counter(answered_by(port) for _ in range(20))
        assert set(served) <= set(workers)
        ex.proc.send_signal(signal.SIGTERM)
        status, out = ex.finish()
    assert status == 0
    assert "stopped: 2 workers, 0 failed" in out


def test_prefork_with_reuseport_spreads_connections_over_every_worker(tmp_path: Path) -> None:
    args = ("--port", "0", "--workers", "2", "--reuseport")
    with example("prefork.py", *args, tmp_path=tmp_path) as ex:
        port = ex.port()
        workers = workers_of(ex, 2)
        # The kernel hashes each connection (its source port differs) onto
        # one of the listeners: 64 all on one worker has odds of 2**-63.
        served = Counter(answered_by(port) for _ in range(64))
        assert set(served) == set(workers)
        ex.proc.send_signal(signal.SIGTERM)
        status, out = ex.finish()
    assert status == 0
    assert "stopped: 2 workers, 0 failed" in out


# https_server.py -------------------------------------------------------------------


def test_https_server_answers_curl_and_the_ssl_module(curl: str, tmp_path: Path) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    args = ("--port", "0", "--cert", str(cert), "--key", str(key))
    with example("https_server.py", *args, tmp_path=tmp_path) as ex:
        port = ex.port()
        done = subprocess.run(
            [
                curl,
                "--silent",
                "--show-error",
                "--max-time",
                "30",
                "--cacert",
                str(ca_file),
                "--header",
                "X-Test: 1",
                f"https://localhost:{port}/hello",
            ],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(b"GET /hello: hello over TLS; you sent ")
        ex.wait_for(r"answered$")
        # The ssl module as the client, verifying the server; HTTP written by hand.
        context = ssl.create_default_context(cafile=str(ca_file))
        with context.wrap_socket(connect(port), server_hostname="localhost") as tls:
            tls.sendall(b"HEAD /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body == b"HEAD /x: hello over TLS; you sent 1 fields\n"
        ex.wait_for(r"answered\n.*answered$")
        ex.proc.terminate()
        assert ex.proc.wait(TIMEOUT) == -signal.SIGTERM
    assert (tmp_path / "https_server.py.err").read_text() == ""
