"""fdin, fdout, fdclean (reference section 2)."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Iterator

import pytest
from helpers import close_fd

import greendill as dill


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    for s in (a, b):
        dill.fdclean(s.fileno())
        s.close()


def fill_send_buffer(sock: socket.socket) -> None:
    """Send on non-blocking sock until its send buffer is full."""
    try:
        while True:
            sock.send(b"x" * 65536)
    except BlockingIOError:
        pass


def test_fdin_waits_until_readable(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    h = dill.go(lambda: (dill.msleep(dill.now() + 5), b.send(b"x")))
    dill.fdin(a.fileno())
    assert a.recv(1) == b"x"
    dill.hclose(h)


def test_fdin_deadline_zero(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with pytest.raises(TimeoutError):
        dill.fdin(a.fileno(), 0)
    b.send(b"x")
    dill.fdin(a.fileno(), 0)  # readiness wins over an expired deadline


def test_fdin_etimedout(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    deadline = dill.now() + 5
    with pytest.raises(TimeoutError) as info:
        dill.fdin(a.fileno(), deadline)
    assert info.value.errno == errno.ETIMEDOUT
    assert dill.now() >= deadline


def test_fdin_reports_hangup(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.shutdown(socket.SHUT_WR)
    dill.fdin(a.fileno(), dill.now() + 1000)


def test_fdout_ready_at_once(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    dill.fdout(a.fileno())
    dill.fdout(a.fileno(), 0)


def test_fdout_waits_for_room(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    fill_send_buffer(a)
    with pytest.raises(TimeoutError):
        dill.fdout(a.fileno(), 0)

    def drain() -> None:
        dill.msleep(dill.now() + 5)
        while True:
            try:
                b.recv(1 << 20)
            except BlockingIOError:
                return

    h = dill.go(drain)
    dill.fdout(a.fileno(), dill.now() + 5000)
    dill.hclose(h)


@pytest.mark.parametrize("wait", [dill.fdin, dill.fdout])
def test_fd_ebadf(wait: object) -> None:
    r, w = os.pipe()
    close_fd(r)
    close_fd(w)
    for fd in (r, -1):
        with pytest.raises(OSError) as info:
            wait(fd, 0)  # type: ignore[operator]
        assert info.value.errno == errno.EBADF


def test_fdin_ebusy(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    h = dill.go(dill.fdin, a.fileno())
    with pytest.raises(OSError) as info:
        dill.fdin(a.fileno(), 0)
    assert info.value.errno == errno.EBUSY
    with pytest.raises(OSError) as info:
        dill.fdclean(a.fileno())
    assert info.value.errno == errno.EBUSY
    dill.hclose(h)


def test_fdout_ebusy(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    fill_send_buffer(a)
    h = dill.go(dill.fdout, a.fileno())
    with pytest.raises(OSError) as info:
        dill.fdout(a.fileno(), 0)
    assert info.value.errno == errno.EBUSY
    with pytest.raises(OSError) as info:
        dill.fdclean(a.fileno())
    assert info.value.errno == errno.EBUSY
    with pytest.raises(TimeoutError):  # the read direction is free: not EBUSY
        dill.fdin(a.fileno(), 0)
    dill.hclose(h)


def test_fdout_ebusy_is_per_direction(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    h = dill.go(dill.fdin, a.fileno())
    dill.fdout(a.fileno(), 0)  # the write direction is free
    dill.hclose(h)


@pytest.mark.parametrize("wait", [dill.fdin, dill.fdout])
def test_fd_ecanceled(wait: object, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    result: list[int] = []

    def worker() -> None:
        try:
            dill.msleep(-1)
        except dill.Canceled:
            try:
                wait(a.fileno(), 0)  # type: ignore[operator]
            except OSError as exc:
                result.append(exc.errno)
            raise

    dill.hclose(dill.go(worker))
    assert result == [errno.ECANCELED]


def test_fdin_canceled_while_waiting(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    result: list[int] = []

    def worker() -> None:
        try:
            dill.fdin(a.fileno())
        except OSError as exc:
            result.append(exc.errno)

    dill.hclose(dill.go(worker))
    assert result == [errno.ECANCELED]
    # The watcher was stopped: a new wait works and finds nothing to read.
    with pytest.raises(TimeoutError):
        dill.fdin(a.fileno(), 0)


def test_fd_enotsup_for_regular_file() -> None:
    with tempfile.TemporaryFile() as f:
        for wait in (dill.fdin, dill.fdout):
            with pytest.raises(OSError) as info:
                wait(f.fileno(), 0)
            assert info.value.errno == errno.ENOTSUP


def test_fdclean_of_unknown_fd_does_nothing() -> None:
    dill.fdclean(12345)


def test_fdclean_lets_a_reused_fd_number_start_afresh() -> None:
    for _ in range(3):
        r, w = os.pipe()
        os.write(w, b"x")
        dill.fdin(r, 0)
        dill.fdclean(r)
        dill.fdclean(w)
        os.close(r)
        os.close(w)
