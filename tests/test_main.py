"""The greendill command, run as a user runs it: `greendill demo` and `greendill echo`."""

from __future__ import annotations

import configparser
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import greendill
import greendill as dill
import greendill.__main__ as cli

ROOT = Path(greendill.__file__).resolve().parent.parent
# Generous: only a hung command trips them. Nothing here asserts speed.
TIMEOUT = 60


def _env() -> dict[str, str]:
    # The subprocess imports the greendill under test, installed or not.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _randbytes(n: int, seed: int) -> bytes:
    return random.Random(seed).getrandbits(8 * n).to_bytes(n, "little")


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(n - len(got))
        assert chunk, f"end of stream after {len(got)} of {n} bytes"
        got += chunk
    return bytes(got)


# greendill demo -----------------------------------------------------------------------

_SUMMARY = re.compile(
    r"^  (ipc|tcp) +([\d,]+) +([\d,]+) +([\d.]+) +([\d.]+) +([\d,]+)$", re.MULTILINE
)


def _check_demo_output(stdout: str, bulk: bool) -> None:
    assert stdout.startswith("greendill demo: an IPC and a TCP echo server")
    tmp = re.search(r"ipc echo server on (\S+)/echo\.sock$", stdout, re.MULTILINE)
    assert tmp is not None, stdout
    assert re.search(r"tcp echo server on 127\.0\.0\.1:[1-9]\d*$", stdout, re.MULTILINE), stdout
    # Progress while it ran, for each transport.
    for name in ("ipc", "tcp"):
        progress = re.findall(rf"^  {name} +[\d.]+ s +([\d,]+) round trips$", stdout, re.MULTILINE)
        assert progress, stdout
        assert int(progress[-1].replace(",", "")) > 0
    rows = {m.group(1): m.groups()[1:] for m in _SUMMARY.finditer(stdout)}
    assert set(rows) == {"ipc", "tcp"}, stdout
    for name, (round_trips, per_second, mean, p99, mb_s) in rows.items():
        assert int(round_trips.replace(",", "")) > 0, name
        assert int(per_second.replace(",", "")) > 0, name
        assert float(mean) > 0, name
        assert float(p99) > 0, name
        if bulk:
            assert int(mb_s.replace(",", "")) > 0, name
            assert re.search(rf"^  {name} +[\d,]+ MB/s +\([\d.]+ s\)$", stdout, re.MULTILINE)
    assert re.search(r"^done in [\d.]+ s: .* removed$", stdout, re.MULTILINE), stdout
    assert not os.path.exists(tmp.group(1)), "the demo's temporary directory is still there"


DEMO_ARGS = ["--seconds", "0.5", "--clients", "3", "--size", "100", "--bulk", "4"]


def test_demo_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "greendill", "demo", *DEMO_ARGS],
        capture_output=True,
        encoding="utf-8",
        env=_env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "round trips of 100-byte messages, 3 clients, 0.5 s per transport" in done.stdout
    assert "bulk: 4 MiB echoed through one connection" in done.stdout
    _check_demo_output(done.stdout, bulk=True)


def test_console_script_entry_point() -> None:
    # What `pip install` makes the greendill command call.
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"].split("\n")
    assert "greendill = greendill.__main__:main" in [line.strip() for line in scripts]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from greendill.__main__ import main; "
            "sys.exit(main(['demo', '--seconds', '0.2', '--clients', '2', '--bulk', '0']))",
        ],
        capture_output=True,
        encoding="utf-8",
        env=_env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "bulk:" not in done.stdout
    _check_demo_output(done.stdout, bulk=False)


def test_demo_in_process_leaves_nothing_open() -> None:
    out: list[str] = []
    results = cli.demo(0.2, 2, 16, 1, out)
    assert [r.transport for r in results] == ["ipc", "tcp"]
    for r in results:
        assert r.round_trips > 0
        assert r.per_second > 0
        assert r.mean_us > 0
        assert r.p99_us > 0
        assert r.bulk_mb_s > 0
    assert out[-1].startswith("done in ")


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--seconds", "0"],
        ["demo", "--clients", "-1"],
        ["demo", "--size", "x"],
        ["echo"],
        ["echo", "--tcp", "127.0.0.1"],
        ["echo", "--tcp", "127.0.0.1:70000"],
        ["echo", "--ipc", "a", "--tcp", "127.0.0.1:0"],
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code == 2


def test_unknown_command_fails() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "greendill", "nonsense"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert "invalid choice" in done.stderr


# greendill echo, in process -------------------------------------------------------------


def test_echo_server_in_process_ends_every_kind_of_connection() -> None:
    # Orderly close, reset, a client still connected at stop, and a bad block
    # size: no traceback (stop() would raise it), nothing left open.
    lines: list[str] = []
    addr = dill.ipaddr_local("127.0.0.1", 0)
    ls, transport = cli.listen_tcp(addr)
    server = cli.EchoServer(ls, transport, cli._echo_bytes, grace_ms=2000, log=lines.append)
    stopped = False
    try:
        deadline = dill.now() + 10_000
        s = dill.tcp_connect(addr, deadline)
        dill.bsend(s, b"hello", deadline)
        assert dill.brecv(s, 5, deadline) == b"hello"
        dill.tcp_close(s, deadline)  # the server sees EPIPE and closes in order too

        s = dill.tcp_connect(addr, deadline)
        dill.bsend(s, b"x", deadline)
        assert dill.brecv(s, 1, deadline) == b"x"
        dill.hclose(s)  # TCP's hard close: a reset

        idle = dill.tcp_connect(addr, deadline)
        try:
            dill.bsend(idle, b"ping", deadline)
            assert dill.brecv(idle, 4, deadline) == b"ping"

            def client_that_closes_at_end_of_stream() -> None:
                try:
                    dill.brecv(idle, 1, deadline)
                except BrokenPipeError:
                    dill.tcp_close(idle, deadline)

            h = dill.go(client_that_closes_at_end_of_stream)
            try:
                stopped = True
                server.stop()
                dill.bundle_wait(h, deadline)
            finally:
                dill.hclose(h)
        finally:
            with pytest.raises(OSError):
                dill.hclose(idle)  # closed in order by the client already
    finally:
        if not stopped:
            server.stop()
    assert re.fullmatch(r"connection 1 from 127\.0\.0\.1:\d+: open", lines[0])
    assert lines[1] == "connection 1: closed, 5 bytes echoed"
    assert "connection 2: reset by the peer, 1 bytes echoed" in lines
    assert "connection 3: closed, 4 bytes echoed" in lines
    assert server.accepted == 3
    assert not server.failed


def test_echo_server_cancels_a_connection_that_outlives_the_grace_time(tmp_path: Path) -> None:
    lines: list[str] = []
    path = str(tmp_path / "s")
    ls, transport = cli.listen_ipc(path)
    server = cli.EchoServer(ls, transport, cli._echo_bytes, grace_ms=50, log=lines.append)
    s = -1
    try:
        s = dill.ipc_connect(path, dill.now() + 10_000)
        dill.bsend(s, b"abc")
        assert dill.brecv(s, 3, dill.now() + 10_000) == b"abc"
    finally:
        server.stop()  # s stays open: the server's grace time runs out
    try:
        # The half-close of stop(), then the hard close: end of stream either way.
        with pytest.raises(BrokenPipeError):
            dill.brecv(s, 1, dill.now() + 10_000)
    finally:
        dill.hclose(s)
    assert lines[-1] == "connection 1: closed by the server's shutdown, 3 bytes echoed"


def test_demo_server_drops_a_bad_block_size(tmp_path: Path) -> None:
    lines: list[str] = []
    path = str(tmp_path / "s")
    ls, transport = cli.listen_ipc(path)
    server = cli.EchoServer(ls, transport, cli._echo_blocks, log=lines.append)
    try:
        s = dill.ipc_connect(path, dill.now() + 10_000)
        try:
            dill.bsend(s, struct.pack("!I", 0))
            with pytest.raises(BrokenPipeError):
                dill.brecv(s, 1, dill.now() + 10_000)
        finally:
            dill.hclose(s)
    finally:
        server.stop()
    assert "connection 1: dropped: block size 0 is not in 1..16777216, 0 bytes echoed" in lines


# greendill echo, as a user runs it -------------------------------------------------------


class EchoProcess:
    """`python -m greendill echo ...` in a subprocess, and its output so far."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: Path) -> None:
        self.proc = proc
        self.stderr = stderr
        self.out = b""
        self._selector = selectors.DefaultSelector()
        assert proc.stdout is not None
        self._selector.register(proc.stdout, selectors.EVENT_READ)

    def close(self) -> None:
        self._selector.close()

    def wait_for(self, pattern: bytes) -> re.Match[bytes]:
        """Read the output until pattern matches a line of it; fail after TIMEOUT."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        compiled = re.compile(pattern, re.MULTILINE)
        while True:
            m = compiled.search(self.out)
            if m is not None:
                return m
            if not self._selector.select(TIMEOUT):
                pytest.fail(f"no {pattern!r} in time; output:\n{self.out.decode()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(
                    f"the server ended before {pattern!r}; output:\n{self.out.decode()}"
                    f"\nstderr:\n{self.stderr.read_text()}"
                )
            self.out += chunk

    def finish(self) -> tuple[int, str, str]:
        """Wait for the exit (the signal is sent already): (status, stdout, stderr)."""
        rest, _ = self.proc.communicate(timeout=TIMEOUT)
        return self.proc.returncode, (self.out + rest).decode(), self.stderr.read_text()


@contextmanager
def echo_server(args: list[str], tmp_path: Path) -> Iterator[EchoProcess]:
    stderr_path = tmp_path / "server.err"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "greendill", "echo", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=_env(),
        )
    server = EchoProcess(proc, stderr_path)
    try:
        with proc:
            try:
                yield server
            finally:
                if proc.poll() is None and proc.returncode is None:
                    # The test failed before its signal: do not leave the server behind.
                    proc.kill()
                    proc.wait(TIMEOUT)
    finally:
        server.close()


def _socat_echo(socat: str, address: str, data: bytes) -> None:
    # socat sends its stdin, shuts its side down at the end of it, and prints
    # what comes back until the server's end of stream.
    done = subprocess.run(
        [socat, "-t", "30", "-", address],
        input=data,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == data


def _talk(family: int, address: object, data: bytes) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        sock.sendall(b"hello\n")
        assert _recv_exactly(sock, 6) == b"hello\n"
        sock.sendall(data)
        assert _recv_exactly(sock, len(data)) == data
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""  # the server closes in order after us


def _connect_idle(family: int, address: object) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        sock.sendall(b"ping")
        assert _recv_exactly(sock, 4) == b"ping"  # served, not just queued
    except BaseException:
        sock.close()
        raise
    return sock


def _check_stop(server: EchoProcess, idle: socket.socket, signum: int) -> str:
    server.proc.send_signal(signum)
    # Shutdown half-closes the open connections: end of stream, then we close.
    assert idle.recv(1) == b""
    idle.close()
    status, out, err = server.finish()
    assert status == 0, err
    assert err == ""
    assert "stopping" in out
    assert "Traceback" not in out
    return out


def test_echo_tcp_with_socat_and_socket_then_sigterm(socat: str, tmp_path: Path) -> None:
    data = _randbytes(20_000, seed=1) + b"\n\0\r\n"
    with echo_server(["--tcp", "127.0.0.1:0"], tmp_path) as server:
        m = server.wait_for(rb"^greendill echo: listening on tcp 127\.0\.0\.1:(\d+)$")
        port = int(m.group(1))
        assert port > 0
        server.wait_for(rb"^  try: socat - TCP:127\.0\.0\.1:\d+ +or +nc 127\.0\.0\.1 \d+$")

        _socat_echo(socat, f"TCP:127.0.0.1:{port}", data)
        server.wait_for(rb"^connection 1: closed, 20004 bytes echoed$")
        _talk(socket.AF_INET, ("127.0.0.1", port), data[:5000])
        server.wait_for(rb"^connection 2: closed, 5006 bytes echoed$")

        # A peer that resets the connection.
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"x")
            assert _recv_exactly(sock, 1) == b"x"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        server.wait_for(rb"^connection 3: reset by the peer, 1 bytes echoed$")

        idle = _connect_idle(socket.AF_INET, ("127.0.0.1", port))
        out = _check_stop(server, idle, signal.SIGTERM)
    assert "connection 4: closed, 4 bytes echoed" in out
    assert out.rstrip().endswith("greendill echo: stopped after 4 connections")


def test_echo_ipc_with_socat_and_socket_then_sigint(socat: str, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    data = _randbytes(20_000, seed=2)
    with echo_server(["--ipc", str(path)], tmp_path) as server:
        server.wait_for(rb"^greendill echo: listening on ipc " + re.escape(bytes(path)) + rb"$")
        assert path.is_socket()

        _socat_echo(socat, f"UNIX-CONNECT:{path}", data)
        server.wait_for(rb"^connection 1: closed, 20000 bytes echoed$")
        _talk(socket.AF_UNIX, str(path), data[:3000])
        server.wait_for(rb"^connection 2: closed, 3006 bytes echoed$")

        # A peer that closes with echoed bytes unread: a reset on a UNIX socket.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(str(path))
            sock.sendall(b"abc")
            assert sock.recv(1) == b"a"
        server.wait_for(rb"^connection 3: reset by the peer, [0-3] bytes echoed$")

        idle = _connect_idle(socket.AF_UNIX, str(path))
        out = _check_stop(server, idle, signal.SIGINT)
    assert out.rstrip().endswith("greendill echo: stopped after 4 connections")
    assert not path.exists(), "the server left its socket file"


def test_echo_ipc_on_an_existing_path_fails_and_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_text("not ours")
    done = subprocess.run(
        [sys.executable, "-m", "greendill", "echo", "--ipc", str(path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot listen on" in done.stderr
    assert "Traceback" not in done.stderr
    assert path.read_text() == "not ours"


def test_echo_leaves_a_socket_file_that_is_not_its_own(tmp_path: Path) -> None:
    # The server removes its socket file, not whatever has replaced it.
    path = tmp_path / "echo.sock"
    with echo_server(["--ipc", str(path)], tmp_path) as server:
        server.wait_for(rb"^greendill echo: listening on ipc ")
        path.unlink()
        path.write_text("someone else's")
        server.proc.send_signal(signal.SIGTERM)
        status, _, err = server.finish()
    assert status == 0, err
    assert path.read_text() == "someone else's"
