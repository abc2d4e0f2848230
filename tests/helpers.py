"""Helpers that the socket test modules share."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import random
import resource
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Callable

import pytest
from gevent.monkey import get_original

import greendill as dill

#: os.close at once. Under monkeypatching gevent defers os.close to the loop's
#: next iteration, and a test that needs a closed fd number needs it closed now.
close_fd = get_original("os", "close")

# A bound for waits that must end long before it (never asserted as an upper
# bound of time: it only keeps a broken test from hanging).
SAFETY_MS = 10_000


@contextmanager
def raises_errno(code: int) -> Iterator[Any]:
    """Expect an OSError with errno code (greendill's only way to fail)."""
    with pytest.raises(OSError) as info:
        yield info
    assert info.value.errno == code, f"{info.value!r}: expected {errno.errorcode[code]}"


def spawn(fn: Callable[..., Any], *args: Any) -> tuple[int, list[Any]]:
    """Run fn(*args) in a coroutine; its result or OSError lands in the list."""
    out: list[Any] = []

    def body() -> None:
        try:
            out.append(fn(*args))
        except Exception as exc:  # the test asserts which one
            out.append(exc)

    return dill.go(body), out


def finish(h: int) -> None:
    """Wait for the coroutine(s) of bundle h to end, then close it."""
    dill.bundle_wait(h, dill.now() + SAFETY_MS)
    dill.hclose(h)


def close_results(result: Any) -> None:
    """Close whatever handles a call that should have failed returned."""
    if isinstance(result, int):
        dill.hclose(result)
    elif isinstance(result, tuple):
        for h in result:
            dill.hclose(h)


def in_canceled_coroutine(fn: Callable[[], Any]) -> Any:
    """Call fn in a coroutine that was canceled already; return its result or OSError."""
    out: list[Any] = []

    def body() -> None:
        with suppress(dill.Canceled):
            dill.msleep(-1)
        try:
            out.append(fn())
        except OSError as exc:
            out.append(exc)

    h = dill.go(body)
    dill.hclose(h)
    assert len(out) == 1
    return out[0]


def assert_canceled(result: Any) -> None:
    close_results(result)
    assert isinstance(result, dill.Canceled), f"expected ECANCELED, got {result!r}"
    assert result.errno == errno.ECANCELED


def sha(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


def randbytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"end of stream after {len(data)} of {n} bytes")
        data += chunk
    return data


def tcp_pair(host: str = "127.0.0.1") -> tuple[int, int]:
    """Two connected TCP connections on loopback: (the client's, the server's)."""
    addr = dill.ipaddr_local(host, 0)
    ls = dill.tcp_listen(addr, 1)  # fills in the port
    try:
        c = dill.tcp_connect(addr, dill.now() + SAFETY_MS)
        a = dill.tcp_accept(ls, dill.now() + SAFETY_MS)
    finally:
        dill.hclose(ls)
    return c, a


class PlainStream(dill.bsock_vfs):
    """A user's byte stream over a greendill one, with no bunrecv.

    Layers above it cannot read ahead.
    """

    def __init__(self, s: int) -> None:
        self.s = s
        self.lower = dill.hquery(s, dill.bsock_type)

    def query(self, type: object) -> Any:
        return self if type is dill.bsock_type else None

    def close(self) -> None:
        dill.hclose(self.s)

    def bsendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self.lower.bsendl(buffers, deadline)

    def brecvl(self, buffers: Sequence[Any], deadline: int) -> None:
        self.lower.brecvl(buffers, deadline)


def soon() -> int:
    """A deadline that only keeps a broken test from hanging."""
    return dill.now() + SAFETY_MS


def plain(s: int) -> int:
    """s wrapped in a PlainStream handle (which owns s)."""
    return dill.hmake(PlainStream(s))


def byte_stream_pair(kind: str) -> tuple[int, int]:
    """Two connected byte streams: "ipc", "tcp", or "plain" (PlainStreams over IPC)."""
    if kind == "tcp":
        return tcp_pair()
    a, b = dill.ipc_pair()
    if kind == "plain":
        return plain(a), plain(b)
    return a, b


@contextmanager
def greendill_and_plain_socket() -> Iterator[tuple[int, socket.socket]]:
    """An IPC handle (the test closes it) connected to a standard-library socket."""
    left, right = socket.socketpair()
    h = dill.ipc_fromfd(left.detach())
    try:
        yield h, right
    finally:
        right.close()


def end_stream(u: int) -> None:
    """End the sending side of byte stream u in order: its peer then reads EPIPE."""
    for done in (dill.tcp_done, dill.ipc_done):
        try:
            done(u)
            return
        except OSError as exc:
            if exc.errno != errno.ENOTSUP:
                raise
    dill.hclose(u)  # a user's stream over IPC: closing it ends it


@functools.cache
def patch_all_failure() -> str:
    """Why gevent.monkey.patch_all() cannot run in a fresh interpreter here ("" if it can).

    gevent 20.12 (the oldest supported) loads its patch plugins through
    setuptools' pkg_resources, which fails in an environment without a
    working one: the tests that patch a fresh interpreter skip there.
    """
    proc = subprocess.run(
        [sys.executable, "-c", "from gevent import monkey; monkey.patch_all()"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode == 0:
        return ""
    return proc.stderr.strip().splitlines()[-1]


def skip_unless_patch_all_works() -> None:
    failure = patch_all_failure()
    if failure:
        pytest.skip(f"gevent's patch_all() fails in this environment: {failure}")


def open_fds() -> dict[int, str]:
    """The process's open fds and what they are (not the one listdir used)."""
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        with suppress(OSError):
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return fds


@contextmanager
def no_fd_left() -> Iterator[None]:
    """Make the process's next new fd fail with EMFILE (RLIMIT_NOFILE lowered).

    The soft limit goes down to just above the highest open fd and every
    free number below it is taken; all is undone on the way out.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(open_fds()) + 1, hard))
    try:
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield
    finally:
        for fd in fillers:
            close_fd(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def fd_is_open(fd: int) -> bool:
    """Whether fd is an open file descriptor."""
    try:
        os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
        return False
    return True
