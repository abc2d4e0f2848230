"""IPC: UNIX domain stream sockets (reference sections 0 and 8).

Every errno of the seed pages where Linux can produce it: ipc_connect
(EACCES, ECANCELED, ECONNREFUSED, EINVAL, ELOOP, EMFILE, ENAMETOOLONG,
ENFILE, ENOENT, ENOTDIR, ETIMEDOUT), ipc_listen (EACCES,
EADDRINUSE, EINVAL, ELOOP, EMFILE, ENAMETOOLONG, ENOENT, ENOTDIR) and
ipc_done (EBADF, ECANCELED, ENOTSUP, EPIPE); then accept, the orderly and the
hard close, the _mem variants, ipc_pair, ipc_fromfd / ipc_listener_fromfd,
ipc_sendfd / ipc_recvfd, and real peers: sockets of the standard library (in
threads, and socket.send_fds / recv_fds) and socat in a subprocess.

ENFILE cannot be produced safely (the system-wide file table would have to be
exhausted on a shared machine): its tests skip with the reason. ipc_connect
never raises ECONNRESET on Linux (its docstring gives the evidence): a
listener that goes while ipc_connect waits is ECONNREFUSED, and the reset of
a pending connection whose listener closes shows on the connection instead;
both are tested.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers import (
    assert_canceled,
    close_fd,
    close_results,
    fd_is_open,
    finish,
    in_canceled_coroutine,
    no_fd_left,
    open_fds,
    raises_errno,
    randbytes,
    recv_exactly,
    sha,
    spawn,
)

import greendill as dill

MiB = 1 << 20
# A bound for waits that must end long before it (never asserted as an upper
# bound of time: it only keeps a broken test from hanging).
SAFETY_MS = 10_000


# Helpers ----------------------------------------------------------------------


def stuffed_connection() -> tuple[int, socket.socket]:
    """An IPC connection whose send buffer is full, and its stdlib peer.

    The buffer is filled through the plain socket before greendill adopts it,
    so no greendill call failed (nothing latched).
    """
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.setblocking(False)
    for size in (65536, 1):
        while True:
            try:
                a.send(b"\0" * size)
            except BlockingIOError:
                break
    return dill.ipc_fromfd(a.detach()), b


def _nobody() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return 65534


@pytest.fixture
def perm_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for permission tests, searchable by the user of permission_checks().

    As root, tmp_path's parents are private to root, so a fresh directory
    that everybody may search is made instead.
    """
    if os.geteuid() != 0:
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="greendill-test-"))
    try:
        d.chmod(0o755)
        yield d
    finally:
        for sub in d.iterdir():  # undo the tests' chmods before removing
            if sub.is_dir() and not sub.is_symlink():
                sub.chmod(0o700)
        shutil.rmtree(d)


@contextmanager
def permission_checks(base: Path) -> Iterator[None]:
    """Run the block with file permission checks in force.

    root bypasses them (CAP_DAC_OVERRIDE), so as root the block runs with
    the effective uid of nobody (which drops the capability from the
    effective set) and gets root back afterwards. base must be searchable
    by that user: checked here, or the test skips.
    """
    if os.geteuid() != 0:
        yield
        return
    try:
        os.seteuid(_nobody())
    except OSError as exc:
        pytest.skip(f"running as root and cannot drop privileges to test EACCES: {exc}")
    try:
        if not os.access(base, os.X_OK, effective_ids=True):
            pytest.skip(f"{base} is not searchable by nobody")
        yield
    finally:
        os.seteuid(0)


def wait_for_listener(path: Path, proc: subprocess.Popen[bytes]) -> int:
    """Connect to a listener that another process is starting; return the connection."""
    deadline = dill.now() + SAFETY_MS
    while True:
        try:
            return dill.ipc_connect(path, deadline)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ECONNREFUSED):
                raise
        if proc.poll() is not None:
            pytest.fail(f"socat ended ({proc.returncode}) before it listened")
        if dill.now() >= deadline:
            pytest.fail("socat did not listen in time")
        dill.msleep(dill.now() + 5)


def wait_for_exit(proc: subprocess.Popen[bytes]) -> int:
    deadline = dill.now() + SAFETY_MS
    while proc.poll() is None:
        if dill.now() >= deadline:
            pytest.fail("socat did not end in time")
        dill.msleep(dill.now() + 5)
    return proc.returncode


@contextmanager
def terminating(proc: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """End proc (by its own Popen object) whatever happens."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# Each call and its _mem twin (with a fresh storage), for the tests that run both.


def accept(ls: int, deadline: int = -1) -> int:
    return dill.ipc_accept(ls, deadline)


def accept_mem(ls: int, deadline: int = -1) -> int:
    return dill.ipc_accept_mem(ls, dill.ipc_storage(), deadline)


def connect(path: Any, deadline: int = -1) -> int:
    return dill.ipc_connect(path, deadline)


def connect_mem(path: Any, deadline: int = -1) -> int:
    return dill.ipc_connect_mem(path, dill.ipc_storage(), deadline)


def listen(path: Any, backlog: int) -> int:
    return dill.ipc_listen(path, backlog)


def listen_mem(path: Any, backlog: int) -> int:
    return dill.ipc_listen_mem(path, backlog, dill.ipc_listener_storage())


def fromfd(fd: int) -> int:
    return dill.ipc_fromfd(fd)


def fromfd_mem(fd: int) -> int:
    return dill.ipc_fromfd_mem(fd, dill.ipc_storage())


def listener_fromfd(fd: int) -> int:
    return dill.ipc_listener_fromfd(fd)


def listener_fromfd_mem(fd: int) -> int:
    return dill.ipc_listener_fromfd_mem(fd, dill.ipc_listener_storage())


def both(name: str, plain: Callable[..., int], mem: Callable[..., int]) -> Any:
    """Parametrize a test over a call (argument name) and its _mem variant."""
    return pytest.mark.parametrize(name, [plain, mem], ids=["plain", "mem"])


# Listening, connecting, accepting ------------------------------------------------


def test_listen_connect_accept_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    ls = dill.ipc_listen(path, 10)
    c = dill.ipc_connect(path, dill.now() + SAFETY_MS)
    a = dill.ipc_accept(ls, dill.now() + SAFETY_MS)
    dill.bsend(c, b"ping")
    assert dill.brecv(a, 4) == b"ping"
    dill.bsend(a, b"pong")
    assert dill.brecv(c, 4) == b"pong"
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    for h in (a, c, ls):
        dill.hclose(h)


@pytest.mark.parametrize("kind", ["pathlib", "bytes", "str"])
def test_paths_may_be_str_bytes_or_pathlike(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "s"
    path: Any = {"pathlib": p, "bytes": os.fsencode(p), "str": str(p)}[kind]
    ls = dill.ipc_listen(path, 1)
    c = dill.ipc_connect(path, 0)
    a = dill.ipc_accept(ls, 0)
    for h in (a, c, ls):
        dill.hclose(h)


def test_abstract_address_leaves_no_file() -> None:
    name = f"\0greendill-test-{uuid.uuid4().hex}"
    ls = dill.ipc_listen(name, 1)
    c = dill.ipc_connect(name, 0)
    a = dill.ipc_accept(ls, 0)
    dill.bsend(a, b"hi")
    assert dill.brecv(c, 2) == b"hi"
    for h in (a, c, ls):
        dill.hclose(h)
    # Nothing was left behind: the name can be listened on at once.
    dill.hclose(dill.ipc_listen(name, 1))


@both("accept", accept, accept_mem)
def test_accept_deadline_zero_and_etimedout(tmp_path: Path, accept: Callable[..., int]) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 1)
    with raises_errno(errno.ETIMEDOUT):
        accept(ls, 0)
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT) as info:
        accept(ls, deadline)
    assert isinstance(info.value, TimeoutError)
    assert dill.now() >= deadline
    # The listener still works.
    c = dill.ipc_connect(tmp_path / "s", 0)
    a = accept(ls, 0)
    for h in (a, c, ls):
        dill.hclose(h)


def test_accept_waits_for_a_connection(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 1)

    def client() -> None:
        dill.msleep(dill.now() + 10)
        c = dill.ipc_connect(path, dill.now() + SAFETY_MS)
        dill.bsend(c, b"late")
        dill.ipc_close(c, dill.now() + SAFETY_MS)

    h = dill.go(client)
    a = dill.ipc_accept(ls, dill.now() + SAFETY_MS)
    assert dill.brecv(a, 4, dill.now() + SAFETY_MS) == b"late"
    dill.ipc_close(a, dill.now() + SAFETY_MS)
    finish(h)
    dill.hclose(ls)


@both("accept", accept, accept_mem)
def test_accept_ebadf_and_enotsup(tmp_path: Path, accept: Callable[..., int]) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 1)
    c = dill.ipc_connect(tmp_path / "s", 0)
    a = dill.ipc_accept(ls, 0)
    ch0, ch1 = dill.chmake()
    for h in (c, a, ch0):
        with raises_errno(errno.ENOTSUP):
            accept(h, 0)
    for h in (a, c, ls, ch0, ch1):
        dill.hclose(h)
    with raises_errno(errno.EBADF):
        accept(ls, 0)
    with raises_errno(errno.EBADF):
        accept(1_000_000, 0)


def test_accept_canceled_while_waiting(tmp_path: Path) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 1)
    h, out = spawn(dill.ipc_accept, ls)
    dill.hclose(h)
    assert_canceled(out[0])
    # The listener is intact.
    c = dill.ipc_connect(tmp_path / "s", 0)
    a = dill.ipc_accept(ls, 0)
    for x in (a, c, ls):
        dill.hclose(x)


def test_accept_in_a_canceled_coroutine_fails_first(tmp_path: Path) -> None:
    # It makes a handle: like every handle-creating call (section 0: in C,
    # via hmake), it fails with ECANCELED even when a connection is waiting.
    ls = dill.ipc_listen(tmp_path / "s", 1)
    c = dill.ipc_connect(tmp_path / "s", 0)
    try:
        assert_canceled(in_canceled_coroutine(lambda: dill.ipc_accept(ls, 0)))
        assert_canceled(in_canceled_coroutine(lambda: dill.ipc_accept_mem(ls, dill.ipc_storage())))
    finally:
        dill.hclose(c)
        dill.hclose(ls)


@both("accept", accept, accept_mem)
def test_closing_the_listener_wakes_a_blocked_accept_with_ebadf(
    tmp_path: Path, accept: Callable[..., int]
) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 1)
    h, out = spawn(accept, ls)
    dill.hclose(ls)
    dill.yield_()  # woken at once: one turn is enough
    assert len(out) == 1, "the blocked coroutine was not woken"
    assert out[0].errno == errno.EBADF
    finish(h)


@both("accept", accept, accept_mem)
def test_accept_emfile_then_the_connection_still_waits(
    tmp_path: Path, accept: Callable[..., int]
) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 1)
    c = dill.ipc_connect(tmp_path / "s", 0)
    with no_fd_left(), raises_errno(errno.EMFILE):
        accept(ls, 0)
    a = accept(ls, 0)
    for h in (a, c, ls):
        dill.hclose(h)


# ipc_connect's errnos ------------------------------------------------------------


@both("connect", connect, connect_mem)
def test_connect_enoent(tmp_path: Path, connect: Callable[..., int]) -> None:
    with raises_errno(errno.ENOENT) as info:
        connect(tmp_path / "missing", 0)
    assert isinstance(info.value, FileNotFoundError)
    with raises_errno(errno.ENOENT):
        connect(tmp_path / "no-dir" / "s", 0)


@both("connect", connect, connect_mem)
def test_connect_econnrefused_on_a_stale_socket_file(
    tmp_path: Path, connect: Callable[..., int]
) -> None:
    path = tmp_path / "s"
    dill.hclose(dill.ipc_listen(path, 1))
    assert path.exists()  # a closed listener leaves its file
    with raises_errno(errno.ECONNREFUSED) as info:
        connect(path, dill.now() + SAFETY_MS)
    assert isinstance(info.value, ConnectionRefusedError)


@both("connect", connect, connect_mem)
def test_connect_econnrefused_on_a_regular_file(
    tmp_path: Path, connect: Callable[..., int]
) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"")
    with raises_errno(errno.ECONNREFUSED):
        connect(path, 0)


def test_connect_einval(tmp_path: Path) -> None:
    with raises_errno(errno.EINVAL):
        dill.ipc_connect(None)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_connect_mem(None, dill.ipc_storage())  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_connect_mem(tmp_path / "s", None)  # type: ignore[arg-type]


@both("connect", connect, connect_mem)
def test_connect_eloop(tmp_path: Path, connect: Callable[..., int]) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with raises_errno(errno.ELOOP):
        connect(loop / "s", 0)
    with raises_errno(errno.ELOOP):
        connect(loop, 0)


@both("connect", connect, connect_mem)
def test_connect_enotdir(tmp_path: Path, connect: Callable[..., int]) -> None:
    (tmp_path / "file").write_bytes(b"")
    with raises_errno(errno.ENOTDIR) as info:
        connect(tmp_path / "file" / "s", 0)
    assert isinstance(info.value, NotADirectoryError)


def test_connect_enametoolong(tmp_path: Path) -> None:
    path = tmp_path / ("x" * 200)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_connect(path, 0)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_connect_mem(path, dill.ipc_storage(), 0)


def test_connect_emfile(tmp_path: Path) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 5)
    try:
        with no_fd_left():
            with raises_errno(errno.EMFILE):
                dill.ipc_connect(tmp_path / "s", 0)
            with raises_errno(errno.EMFILE):
                dill.ipc_connect_mem(tmp_path / "s", dill.ipc_storage(), 0)
        # Nothing was left half made: the listener has no connection waiting.
        with raises_errno(errno.ETIMEDOUT):
            dill.ipc_accept(ls, 0)
    finally:
        dill.hclose(ls)


def test_connect_enfile() -> None:
    # ENFILE needs the system-wide file table full: that cannot be done
    # safely on a shared machine (it would break every other process).
    pytest.skip("ENFILE: the system-wide file table cannot be exhausted safely")


def test_connect_eacces_search_permission(perm_dir: Path) -> None:
    locked = perm_dir / "locked"
    locked.mkdir()
    ls = dill.ipc_listen(locked / "s", 1)
    locked.chmod(0)
    try:
        with permission_checks(perm_dir):
            # Control: the directory above is reachable, so the EACCES below
            # is about the locked directory.
            with raises_errno(errno.ENOENT):
                dill.ipc_connect(perm_dir / "missing", 0)
            with raises_errno(errno.EACCES) as info:
                dill.ipc_connect(locked / "s", 0)
            assert isinstance(info.value, PermissionError)
            with raises_errno(errno.EACCES):
                dill.ipc_connect_mem(locked / "s", dill.ipc_storage(), 0)
    finally:
        locked.chmod(0o700)
        dill.hclose(ls)


def test_connect_eacces_no_write_permission_on_the_socket(perm_dir: Path) -> None:
    path = perm_dir / "s"
    ls = dill.ipc_listen(path, 1)
    path.chmod(0o500 if os.geteuid() != 0 else 0o700)  # not writable by the tester
    try:
        with permission_checks(perm_dir), raises_errno(errno.EACCES):
            dill.ipc_connect(path, 0)
    finally:
        dill.hclose(ls)


@contextmanager
def full_backlog(path: Path) -> Iterator[int]:
    """A listener at path whose backlog is full; yields it, closes everything after."""
    ls = dill.ipc_listen(path, 0)  # Linux: room for one waiting connection
    waiting: list[int] = []
    try:
        while True:  # fill it, whatever the kernel's count is
            try:
                waiting.append(dill.ipc_connect(path, 0))
            except OSError as exc:
                assert exc.errno == errno.ETIMEDOUT, repr(exc)  # never EAGAIN
                break
            assert len(waiting) < 100, "the backlog never filled"
        yield ls
    finally:
        for h in waiting:
            dill.hclose(h)
        with suppress(OSError):  # the test may have closed it
            dill.hclose(ls)


def test_connect_waits_for_room_in_a_full_backlog(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with full_backlog(path) as ls:
        h, out = spawn(dill.ipc_connect, path, dill.now() + SAFETY_MS)
        accepted = []
        try:
            dill.msleep(dill.now() + 20)
            assert out == []  # still waiting: not EAGAIN
            accepted.append(dill.ipc_accept(ls, 0))  # makes room
            dill.bundle_wait(h, dill.now() + SAFETY_MS)
            assert len(out) == 1
            assert isinstance(out[0], int), out[0]
            accepted.append(out[0])
            # It is the last one in the queue: accept them all, it answers.
            dill.bsend(out[0], b"!")
            while True:
                a = dill.ipc_accept(ls, 0)
                accepted.append(a)
                with suppress(TimeoutError):
                    if dill.brecv(a, 1, 0) == b"!":
                        break
        finally:
            dill.hclose(h)
            for x in accepted:
                dill.hclose(x)


def test_connect_to_a_full_backlog_etimedout_never_eagain(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with full_backlog(path):
        with raises_errno(errno.ETIMEDOUT):
            dill.ipc_connect(path, 0)
        deadline = dill.now() + 30
        with raises_errno(errno.ETIMEDOUT) as info:
            dill.ipc_connect(path, deadline)
        assert isinstance(info.value, TimeoutError)
        assert dill.now() >= deadline
        deadline = dill.now() + 10
        with raises_errno(errno.ETIMEDOUT):
            dill.ipc_connect_mem(path, dill.ipc_storage(), deadline)
        assert dill.now() >= deadline


def test_connect_canceled_while_waiting_for_room(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with full_backlog(path):
        h, out = spawn(dill.ipc_connect, path)
        dill.msleep(dill.now() + 5)
        assert out == []
        dill.hclose(h)
        assert_canceled(out[0])


def test_connect_in_a_canceled_coroutine_fails_first(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 5)  # room: it could complete
    try:
        assert_canceled(in_canceled_coroutine(lambda: dill.ipc_connect(path, 0)))
        assert_canceled(
            in_canceled_coroutine(lambda: dill.ipc_connect_mem(path, dill.ipc_storage(), 0))
        )
        with raises_errno(errno.ETIMEDOUT):
            dill.ipc_accept(ls, 0)  # and nothing connected
    finally:
        dill.hclose(ls)


def test_connect_waiting_for_room_when_the_listener_closes_is_econnrefused(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    with full_backlog(path) as ls:
        h, out = spawn(dill.ipc_connect, path, dill.now() + SAFETY_MS)
        dill.msleep(dill.now() + 5)
        assert out == []
        dill.hclose(ls)
        finish(h)
        close_results(out[0])
        assert isinstance(out[0], OSError)
        assert out[0].errno == errno.ECONNREFUSED


def test_pending_connection_is_reset_when_the_listener_closes(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 5)
    c = dill.ipc_connect(path, 0)
    dill.hclose(ls)  # never accepted
    with raises_errno(errno.ECONNRESET) as info:
        dill.brecv(c, 1, dill.now() + SAFETY_MS)
    assert isinstance(info.value, ConnectionResetError)
    with raises_errno(errno.ECONNRESET):
        dill.bsend(c, b"x", dill.now() + SAFETY_MS)
    dill.hclose(c)


# ipc_listen's errnos -------------------------------------------------------------


def test_listen_eaddrinuse_stale_file_live_listener_and_other_files(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 1)
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_listen(path, 1)  # a live listener
    dill.hclose(ls)
    assert path.exists()  # the listener's file stays
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_listen(path, 1)  # its stale file: never unlinked
    (tmp_path / "file").write_bytes(b"keep me")
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_listen(tmp_path / "file", 1)
    assert (tmp_path / "file").read_bytes() == b"keep me"
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_listen(tmp_path, 1)  # a directory
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_listen_mem(path, 1, dill.ipc_listener_storage())


def test_listen_eaddrinuse_abstract_name() -> None:
    name = f"\0greendill-test-{uuid.uuid4().hex}"
    ls = dill.ipc_listen(name, 1)
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_listen(name, 1)
    dill.hclose(ls)


def test_listen_einval(tmp_path: Path) -> None:
    with raises_errno(errno.EINVAL):
        dill.ipc_listen(None, 1)  # type: ignore[arg-type]
    with raises_errno(errno.EINVAL):
        dill.ipc_listen(tmp_path / "s", -1)
    with raises_errno(errno.EINVAL):
        dill.ipc_listen_mem(tmp_path / "s", 1, None)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()


@both("listen", listen, listen_mem)
def test_listen_eloop(tmp_path: Path, listen: Callable[..., int]) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with raises_errno(errno.ELOOP):
        listen(loop / "s", 1)


@both("listen", listen, listen_mem)
def test_listen_enoent(tmp_path: Path, listen: Callable[..., int]) -> None:
    with raises_errno(errno.ENOENT):
        listen(tmp_path / "no-dir" / "s", 1)


@both("listen", listen, listen_mem)
def test_listen_enotdir(tmp_path: Path, listen: Callable[..., int]) -> None:
    (tmp_path / "file").write_bytes(b"")
    with raises_errno(errno.ENOTDIR):
        listen(tmp_path / "file" / "s", 1)


def test_listen_enametoolong(tmp_path: Path) -> None:
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_listen(tmp_path / ("x" * 200), 1)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_listen_mem(tmp_path / ("x" * 200), 1, dill.ipc_listener_storage())


def test_address_length_limits(tmp_path: Path) -> None:
    # sun_path is 108 bytes: a path needs its NUL (107 bytes fit), an
    # abstract name does not (108 fit).
    room = 107 - len(os.fsencode(tmp_path)) - 1
    if room < 1:
        pytest.skip("tmp_path is too long for the boundary test")
    fits = tmp_path / ("p" * room)
    assert len(os.fsencode(fits)) == 107
    ls = dill.ipc_listen(fits, 1)
    c = dill.ipc_connect(fits, 0)
    dill.hclose(c)
    dill.hclose(ls)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_listen(tmp_path / ("p" * (room + 1)), 1)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_connect(tmp_path / ("p" * (room + 1)), 0)
    name = "\0" + uuid.uuid4().hex
    name += "a" * (108 - len(name))
    ls = dill.ipc_listen(name, 1)
    dill.hclose(dill.ipc_connect(name, 0))
    dill.hclose(ls)
    with raises_errno(errno.ENAMETOOLONG):
        dill.ipc_listen(name + "a", 1)


def test_listen_emfile(tmp_path: Path) -> None:
    with no_fd_left():
        with raises_errno(errno.EMFILE):
            dill.ipc_listen(tmp_path / "s", 1)
        with raises_errno(errno.EMFILE):
            dill.ipc_listen_mem(tmp_path / "s", 1, dill.ipc_listener_storage())
    dill.hclose(dill.ipc_listen(tmp_path / "s", 1))  # nothing was left behind


def test_listen_enfile() -> None:
    # See test_connect_enfile: not producible safely.
    pytest.skip("ENFILE: the system-wide file table cannot be exhausted safely")


def test_listen_eacces_search_permission(perm_dir: Path) -> None:
    locked = perm_dir / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with permission_checks(perm_dir):
            with raises_errno(errno.EACCES) as info:
                dill.ipc_listen(locked / "s", 1)
            assert isinstance(info.value, PermissionError)
            with raises_errno(errno.EACCES):
                dill.ipc_listen_mem(locked / "s", 1, dill.ipc_listener_storage())
    finally:
        locked.chmod(0o700)
    assert not (locked / "s").exists()


def test_listen_eacces_directory_not_writable(perm_dir: Path) -> None:
    readonly = perm_dir / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    try:
        with permission_checks(perm_dir), raises_errno(errno.EACCES):
            dill.ipc_listen(readonly / "s", 1)
    finally:
        readonly.chmod(0o700)


def test_listen_in_a_canceled_coroutine_fails_first(tmp_path: Path) -> None:
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_listen(tmp_path / "s", 1)))
    assert_canceled(
        in_canceled_coroutine(
            lambda: dill.ipc_listen_mem(tmp_path / "s", 1, dill.ipc_listener_storage())
        )
    )
    assert not (tmp_path / "s").exists()


# ipc_done --------------------------------------------------------------------------


def test_done_half_closes(tmp_path: Path) -> None:
    a, b = dill.ipc_pair()
    dill.bsend(a, b"last words")
    dill.ipc_done(a)
    # The peer reads every byte, then EPIPE.
    assert dill.brecv(b, 10) == b"last words"
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1)
    # Our sending is over; receiving goes on, and the peer may still send.
    with raises_errno(errno.EPIPE):
        dill.bsend(a, b"x")
    dill.bsend(b, b"reply")
    assert dill.brecv(a, 5) == b"reply"
    dill.ipc_done(b)
    with raises_errno(errno.EPIPE):
        dill.brecv(a, 1)
    dill.hclose(a)
    dill.hclose(b)


def test_second_done_is_epipe() -> None:
    a, b = dill.ipc_pair()
    dill.ipc_done(a)
    with raises_errno(errno.EPIPE) as info:
        dill.ipc_done(a)
    assert isinstance(info.value, BrokenPipeError)
    dill.hclose(a)
    dill.hclose(b)


def test_done_does_not_wait() -> None:
    s, peer = stuffed_connection()  # its send buffer is full
    dill.ipc_done(s, 0)
    dill.hclose(s)
    peer.close()


def test_done_after_a_failed_send_is_econnreset() -> None:
    a, b = dill.ipc_pair()
    with raises_errno(errno.ETIMEDOUT):
        dill.bsend(a, bytes(8 * MiB), 0)
    with raises_errno(errno.ECONNRESET):
        dill.ipc_done(a)
    dill.hclose(a)
    dill.hclose(b)


def test_done_ebadf(tmp_path: Path) -> None:
    a, b = dill.ipc_pair()
    dill.hclose(a)
    dill.hclose(b)
    for h in (a, b, 1_000_000):
        with raises_errno(errno.EBADF):
            dill.ipc_done(h)


def test_done_enotsup(tmp_path: Path) -> None:
    ls = dill.ipc_listen(tmp_path / "s", 1)
    ch0, ch1 = dill.chmake()
    bun = dill.bundle()
    for h in (ls, ch0, bun):
        with raises_errno(errno.ENOTSUP):
            dill.ipc_done(h)
    for h in (ls, ch0, ch1, bun):
        dill.hclose(h)


def test_done_in_a_canceled_coroutine_is_ecanceled() -> None:
    # ipc_done's seed page lists ECANCELED: it never waits, so the only way
    # to give it is to check first, as the handle-making calls do.
    a, b = dill.ipc_pair()
    try:
        assert_canceled(in_canceled_coroutine(lambda: dill.ipc_done(a)))
        # Having failed, it did nothing: the connection is not half-closed.
        dill.bsend(a, b"x")
        assert dill.brecv(b, 1) == b"x"
    finally:
        dill.hclose(a)
        dill.hclose(b)


# ipc_close, the orderly close; hclose, the hard one ------------------------------


def test_close_in_order_the_peer_gets_every_byte() -> None:
    a, b = dill.ipc_pair()
    data = randbytes(3 * MiB, seed=10)

    def sender() -> None:
        dill.bsend(a, data)
        dill.ipc_close(a, dill.now() + SAFETY_MS)  # waits for b's end of stream

    h = dill.go(sender)
    got = bytearray(len(data))
    dill.brecv_into(b, got, dill.now() + SAFETY_MS)
    assert sha(got) == sha(data)
    dill.ipc_close(b, dill.now() + SAFETY_MS)
    finish(h)
    for s in (a, b):
        with raises_errno(errno.EBADF):
            dill.hclose(s)


def test_close_drops_unread_data_and_is_not_an_error() -> None:
    a, b = dill.ipc_pair()
    dill.bsend(b, b"never read" * 1000)
    dill.ipc_done(b)
    dill.ipc_close(a, dill.now() + SAFETY_MS)
    dill.hclose(b)


def test_close_after_end_of_stream_does_not_wait() -> None:
    a, b = dill.ipc_pair()
    dill.ipc_done(b)
    with raises_errno(errno.EPIPE):
        dill.brecv(a, 1)
    dill.ipc_close(a, 0)
    dill.hclose(b)


def test_close_etimedout_when_the_peer_never_closes() -> None:
    a, b = dill.ipc_pair()
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_close(a, deadline)
    assert dill.now() >= deadline
    with raises_errno(errno.EBADF):  # closed all the same
        dill.hclose(a)
    with raises_errno(errno.EPIPE):  # and the peer sees the end of stream
        dill.brecv(b, 1, dill.now() + SAFETY_MS)
    dill.hclose(b)


def test_close_etimedout_when_the_peer_keeps_sending() -> None:
    a, b = dill.ipc_pair()

    def chatter() -> None:
        with suppress(OSError):
            while True:
                dill.bsend(b, b"more" * 1000)
                dill.msleep(dill.now() + 1)

    h = dill.go(chatter)
    deadline = dill.now() + 30
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_close(a, deadline)
    assert dill.now() >= deadline
    dill.hclose(h)
    dill.hclose(b)


def test_close_succeeds_when_the_peer_hard_closes() -> None:
    a, b = dill.ipc_pair()

    def peer() -> None:
        dill.msleep(dill.now() + 5)
        dill.hclose(b)

    h = dill.go(peer)
    dill.ipc_close(a, dill.now() + SAFETY_MS)  # hclose of IPC is an end of stream
    finish(h)


def test_close_econnreset_when_the_peer_drops_our_data() -> None:
    # A UNIX socket closed with unread data resets its peer.
    a, b = dill.ipc_pair()
    dill.bsend(a, b"unread")
    dill.hclose(b)
    with raises_errno(errno.ECONNRESET):
        dill.ipc_close(a, dill.now() + SAFETY_MS)
    with raises_errno(errno.EBADF):
        dill.hclose(a)


@pytest.mark.parametrize("broken", ["receive", "send"])
def test_close_with_a_latched_error_is_econnreset_and_closes(broken: str) -> None:
    a, b = dill.ipc_pair()
    if broken == "receive":
        with raises_errno(errno.ETIMEDOUT):
            dill.brecv(a, 1, 0)
    else:
        with raises_errno(errno.ETIMEDOUT):
            dill.bsend(a, bytes(8 * MiB), 0)
    dill.ipc_done(b)  # the peer's end of stream would otherwise make it succeed
    with raises_errno(errno.ECONNRESET):
        dill.ipc_close(a, dill.now() + SAFETY_MS)
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    dill.hclose(b)


def test_close_canceled_while_waiting_closes_the_handle() -> None:
    a, b = dill.ipc_pair()
    h, out = spawn(dill.ipc_close, a)
    dill.hclose(h)
    assert_canceled(out[0])
    with raises_errno(errno.EBADF):
        dill.hclose(a)
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, dill.now() + SAFETY_MS)
    dill.hclose(b)


def test_close_enotsup_leaves_the_handle_open() -> None:
    ch0, ch1 = dill.chmake()
    with raises_errno(errno.ENOTSUP):
        dill.ipc_close(ch0)
    dill.hclose(ch0)  # still open
    dill.hclose(ch1)


def test_close_ebadf() -> None:
    a, b = dill.ipc_pair()
    dill.hclose(a)
    with raises_errno(errno.EBADF):
        dill.ipc_close(a)
    with raises_errno(errno.EBADF):
        dill.ipc_close(1_000_000)
    dill.hclose(b)


def test_close_of_a_listener_is_hclose_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 1)
    dill.ipc_close(ls, 0)
    with raises_errno(errno.EBADF):
        dill.hclose(ls)
    assert stat.S_ISSOCK(path.lstat().st_mode)
    with raises_errno(errno.EADDRINUSE):
        dill.ipc_listen(path, 1)


def test_hclose_of_a_blocked_ipc_close_wakes_it_with_ebadf() -> None:
    a, b = dill.ipc_pair()
    h, out = spawn(dill.ipc_close, a)
    try:
        dill.hclose(a)
        dill.yield_()
        assert len(out) == 1, "the blocked coroutine was not woken"
        assert isinstance(out[0], OSError), repr(out[0])
        assert out[0].errno == errno.EBADF
    finally:
        finish(h)
        dill.hclose(b)


def test_a_woken_ipc_close_leaves_a_reused_handle_number_alone() -> None:
    # ipc_close, woken by hclose of its handle, must not release the handle
    # number again: by then it may name another object.
    a, b = dill.ipc_pair()
    later = [dill.hmake(_Inert()) for _ in range(9)]
    h, out = spawn(dill.ipc_close, a)
    dill.hclose(a)  # wakes the coroutine; it runs when this one waits
    for x in later:  # freed after a: a is not among the 8 kept spare
        dill.hclose(x)
    # Make handles until the number a is given out again (free numbers are
    # reused oldest first).
    made: list[int] = []
    while a not in made and len(made) < 100_000:
        made.append(dill.hmake(_Inert()))
    try:
        assert a in made
        dill.bundle_wait(h, dill.now() + SAFETY_MS)
        lost = []
        for m in made:
            try:
                dill.hquery(m, _Inert.TYPE)
            except OSError:
                lost.append(m)
        assert lost == [], f"the woken ipc_close released other objects' handles {lost}"
        assert isinstance(out[0], OSError), repr(out[0])
        assert out[0].errno == errno.EBADF
    finally:
        dill.hclose(h)
        for m in made:
            with suppress(OSError):
                dill.hclose(m)
        dill.hclose(b)


class _Inert:
    """A user handle that does nothing (hmake)."""

    TYPE = object()

    def query(self, type: object) -> Any:
        return self if type is _Inert.TYPE else None

    def close(self) -> None:
        pass


def test_hclose_is_at_once_and_the_peer_sees_end_of_stream() -> None:
    a, b = dill.ipc_pair()
    dill.bsend(a, b"sent before")
    dill.hclose(a)
    with raises_errno(errno.EBADF):
        dill.bsend(a, b"x")
    # IPC has no send buffer of its own: what was sent is in b's queue.
    assert dill.brecv(b, 11) == b"sent before"
    with raises_errno(errno.EPIPE):
        dill.brecv(b, 1, dill.now() + SAFETY_MS)
    with raises_errno(errno.ECONNRESET):  # the kernel's EPIPE, as libdill maps it
        dill.bsend(b, b"x", dill.now() + SAFETY_MS)
    dill.hclose(b)


def test_hclose_wakes_blocked_receiver_and_sender_with_ebadf() -> None:
    s, peer = stuffed_connection()
    try:
        hr, rout = spawn(dill.brecv, s, 1)
        hs, sout = spawn(dill.bsend, s, b"blocked")
        assert rout == [] and sout == []
        dill.hclose(s)
        dill.yield_()
        assert len(rout) == 1 and len(sout) == 1, "not woken at once"
        assert rout[0].errno == errno.EBADF
        assert sout[0].errno == errno.EBADF
        finish(hr)
        finish(hs)
    finally:
        peer.close()


def test_storage_reused_while_an_old_waiter_wakes(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 5)
    mem = dill.ipc_storage()
    s = dill.ipc_connect_mem(path, mem, 0)
    a1 = dill.ipc_accept(ls, 0)
    h, out = spawn(dill.brecv, s, 1)
    dill.hclose(s)  # wakes the waiter, which has not run yet...
    s2 = dill.ipc_connect_mem(path, mem, 0)  # ...when mem is a new connection
    finish(h)
    assert out[0].errno == errno.EBADF
    a2 = dill.ipc_accept(ls, 0)
    dill.bsend(a2, b"new")
    assert dill.brecv(s2, 3, 0) == b"new"  # not EBUSY, not latched
    dill.bsend(s2, b"back")
    assert dill.brecv(a2, 4, 0) == b"back"
    for x in (s2, a1, a2, ls):
        dill.hclose(x)


# The _mem variants -----------------------------------------------------------------


def test_listen_mem_reuse_ebusy_einval(tmp_path: Path) -> None:
    mem = dill.ipc_listener_storage()
    ls = dill.ipc_listen_mem(tmp_path / "one", 1, mem)
    with raises_errno(errno.EBUSY):
        dill.ipc_listen_mem(tmp_path / "two", 1, mem)
    assert not (tmp_path / "two").exists()
    c = dill.ipc_connect(tmp_path / "one", 0)
    a = dill.ipc_accept(ls, 0)
    dill.hclose(ls)
    ls = dill.ipc_listen_mem(tmp_path / "two", 1, mem)  # reusable once closed
    c2 = dill.ipc_connect(tmp_path / "two", 0)
    a2 = dill.ipc_accept(ls, 0)
    with raises_errno(errno.EINVAL):
        dill.ipc_listen_mem(tmp_path / "three", 1, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipc_listen_mem(tmp_path / "three", 1, dill.ipc_storage())  # type: ignore[arg-type]
    for h in (a, c, a2, c2, ls):
        dill.hclose(h)


def test_connect_and_accept_mem_reuse_ebusy_einval(tmp_path: Path) -> None:
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 5)
    cmem, amem = dill.ipc_storage(), dill.ipc_storage()
    for _ in range(3):  # each storage serves again once closed
        c = dill.ipc_connect_mem(path, cmem, 0)
        a = dill.ipc_accept_mem(ls, amem, 0)
        with raises_errno(errno.EBUSY):
            dill.ipc_connect_mem(path, cmem, 0)
        with raises_errno(errno.EBUSY):
            dill.ipc_accept_mem(ls, amem, 0)
        with raises_errno(errno.EBUSY):
            dill.ipc_fromfd_mem(0, cmem)
        dill.bsend(c, b"hey")
        assert dill.brecv(a, 3) == b"hey"
        dill.ipc_done(a)
        dill.ipc_close(c, dill.now() + SAFETY_MS)
        dill.hclose(a)
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_accept(ls, 0)  # the EBUSY connect made no connection
    with raises_errno(errno.EINVAL):
        dill.ipc_accept_mem(ls, None, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dill.ipc_connect_mem(path, dill.ipc_listener_storage(), 0)  # type: ignore[arg-type]
    dill.hclose(ls)


def test_pair_mem_reuse_ebusy_einval() -> None:
    mem = dill.ipc_pair_storage()
    a, b = dill.ipc_pair_mem(mem)
    dill.bsend(a, b"x")
    assert dill.brecv(b, 1) == b"x"
    with raises_errno(errno.EBUSY):
        dill.ipc_pair_mem(mem)
    dill.hclose(a)
    with raises_errno(errno.EBUSY):  # one end still open
        dill.ipc_pair_mem(mem)
    dill.hclose(b)
    a, b = dill.ipc_pair_mem(mem)
    dill.bsend(b, b"y")
    assert dill.brecv(a, 1) == b"y"
    dill.hclose(a)
    dill.hclose(b)
    with raises_errno(errno.EINVAL):
        dill.ipc_pair_mem(None)  # type: ignore[arg-type]


# ipc_pair ---------------------------------------------------------------------------


def test_pair_is_connected_both_ways() -> None:
    a, b = dill.ipc_pair()
    assert a != b
    dill.bsend(a, b"a->b")
    dill.bsend(b, b"b->a")
    assert dill.brecv(b, 4) == b"a->b"
    assert dill.brecv(a, 4) == b"b->a"
    dill.ipc_done(a)
    dill.ipc_close(b, dill.now() + SAFETY_MS)
    dill.ipc_close(a, dill.now() + SAFETY_MS)


def test_pair_emfile() -> None:
    with no_fd_left():
        with raises_errno(errno.EMFILE):
            dill.ipc_pair()
        with raises_errno(errno.EMFILE):
            dill.ipc_pair_mem(dill.ipc_pair_storage())


def test_pair_in_a_canceled_coroutine_fails_first() -> None:
    assert_canceled(in_canceled_coroutine(dill.ipc_pair))
    assert_canceled(in_canceled_coroutine(lambda: dill.ipc_pair_mem(dill.ipc_pair_storage())))


# ipc_fromfd, ipc_listener_fromfd ----------------------------------------------------


def test_fromfd_adopts_a_stdlib_socket_and_closes_the_original_fd() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.settimeout(SAFETY_MS / 1000)
    fd = mine.detach()
    s = dill.ipc_fromfd(fd)
    assert not fd_is_open(fd)
    try:
        dill.bsend(s, b"to stdlib")
        assert recv_exactly(theirs, 9) == b"to stdlib"
        theirs.sendall(b"to greendill")
        assert dill.brecv(s, 12, dill.now() + SAFETY_MS) == b"to greendill"
        theirs.shutdown(socket.SHUT_WR)
        dill.ipc_close(s, dill.now() + SAFETY_MS)
        assert theirs.recv(1) == b""  # our done reached it
    finally:
        theirs.close()


def test_fromfd_mem_reuse_ebusy_einval() -> None:
    mem = dill.ipc_storage()
    with raises_errno(errno.EINVAL):
        dill.ipc_fromfd_mem(0, None)  # type: ignore[arg-type]
    for _ in range(2):
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        s = dill.ipc_fromfd_mem(mine.detach(), mem)
        other, other_peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with raises_errno(errno.EBUSY):
            dill.ipc_fromfd_mem(other.fileno(), mem)
        assert fd_is_open(other.fileno())  # not taken over
        other.close()
        other_peer.close()
        theirs.sendall(b"x")
        assert dill.brecv(s, 1, dill.now() + SAFETY_MS) == b"x"
        dill.hclose(s)
        theirs.close()


@contextmanager
def wrong_fd(kind: str, tmp_path: Path) -> Iterator[int]:
    """An fd that ipc_fromfd must refuse; closed afterwards unless adopted."""
    keep: list[Any] = []  # sockets and pipe fds to close at the end
    if kind == "pipe":
        r, w = os.pipe()
        keep += [r, w]
        fd = r
    else:
        if kind == "listening":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(str(tmp_path / "s"))
            sock.listen(1)
        elif kind == "unconnected":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        elif kind == "datagram":
            sock, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            keep.append(peer)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        keep.append(sock)
        fd = sock.fileno()
    try:
        yield fd
    finally:
        for x in keep:
            if isinstance(x, int):
                os.close(x)
            elif x.fileno() == fd and not fd_is_open(fd):
                x.detach()  # wrongly adopted: greendill closed it already
            else:
                x.close()


def try_call(fn: Callable[[], Any]) -> Any:
    """fn's result or OSError; handles it wrongly made are closed at once."""
    try:
        result = fn()
    except OSError as exc:
        return exc
    close_results(result)
    return result


@pytest.mark.parametrize("kind", ["listening", "unconnected", "datagram", "tcp", "pipe"])
def test_fromfd_einval_for_a_wrong_socket(tmp_path: Path, kind: str) -> None:
    # The docstring: EINVAL when fd is not a connected UNIX stream socket.
    with wrong_fd(kind, tmp_path) as fd:
        result = try_call(lambda: dill.ipc_fromfd(fd))
        assert isinstance(result, OSError), f"{kind}: adopted as handle {result}"
        assert result.errno == errno.EINVAL, repr(result)
        assert fd_is_open(fd)  # a failed call does not take the fd over
        result = try_call(lambda: dill.ipc_fromfd_mem(fd, dill.ipc_storage()))
        assert isinstance(result, OSError), f"{kind}: adopted as handle {result}"
        assert result.errno == errno.EINVAL, repr(result)
        assert fd_is_open(fd)


def test_fromfd_of_a_non_socket_leaks_no_fd() -> None:
    r, w = os.pipe()
    try:
        before = open_fds()
        with pytest.raises(OSError):
            dill.ipc_fromfd(r)
        with pytest.raises(OSError):
            dill.ipc_listener_fromfd(r)
        assert open_fds() == before
    finally:
        os.close(r)
        os.close(w)


def test_fromfd_ebadf() -> None:
    r, w = os.pipe()
    close_fd(r)
    close_fd(w)
    with raises_errno(errno.EBADF):
        dill.ipc_fromfd(r)
    with raises_errno(errno.EBADF):
        dill.ipc_listener_fromfd(r)
    with raises_errno(errno.EBADF):
        dill.ipc_fromfd(-1)


@both("fromfd", fromfd, fromfd_mem)
def test_fromfd_emfile(fromfd: Callable[[int], int]) -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with no_fd_left(), raises_errno(errno.EMFILE):
            fromfd(mine.fileno())
        assert fd_is_open(mine.fileno())
    finally:
        mine.close()
        theirs.close()


@both("listener_fromfd", listener_fromfd, listener_fromfd_mem)
def test_listener_fromfd_emfile(tmp_path: Path, listener_fromfd: Callable[[int], int]) -> None:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(str(tmp_path / "s"))
        srv.listen(1)
        with no_fd_left(), raises_errno(errno.EMFILE):
            listener_fromfd(srv.fileno())
        assert fd_is_open(srv.fileno())
        # srv still listens: the failure took nothing from it.
        c = dill.ipc_connect(tmp_path / "s", 0)
        dill.hclose(c)
    finally:
        srv.close()


def test_fromfd_in_a_canceled_coroutine_fails_first(tmp_path: Path) -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "s"))
    srv.listen(1)
    try:
        assert_canceled(in_canceled_coroutine(lambda: dill.ipc_fromfd(mine.fileno())))
        assert fd_is_open(mine.fileno())
        assert_canceled(in_canceled_coroutine(lambda: dill.ipc_listener_fromfd(srv.fileno())))
        assert fd_is_open(srv.fileno())
    finally:
        for sock in (mine, theirs, srv):
            sock.close()


def test_listener_fromfd_adopts_a_stdlib_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    fd = srv.detach()
    ls = dill.ipc_listener_fromfd(fd)
    assert not fd_is_open(fd)
    c = dill.ipc_connect(path, 0)
    a = dill.ipc_accept(ls, dill.now() + SAFETY_MS)
    dill.bsend(c, b"adopted")
    assert dill.brecv(a, 7) == b"adopted"
    for h in (a, c, ls):
        dill.hclose(h)


@pytest.mark.parametrize("kind", ["connected", "unbound", "datagram"])
def test_listener_fromfd_einval(kind: str) -> None:
    socks: list[socket.socket]
    if kind == "connected":
        socks = list(socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
    elif kind == "unbound":
        socks = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)]
    else:
        socks = [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)]
    try:
        with raises_errno(errno.EINVAL):
            dill.ipc_listener_fromfd(socks[0].fileno())
        with raises_errno(errno.EINVAL):
            dill.ipc_listener_fromfd_mem(socks[0].fileno(), dill.ipc_listener_storage())
        assert fd_is_open(socks[0].fileno())
    finally:
        for sock in socks:
            sock.close()


def test_listener_fromfd_mem_reuse_ebusy_einval(tmp_path: Path) -> None:
    mem = dill.ipc_listener_storage()
    with raises_errno(errno.EINVAL):
        dill.ipc_listener_fromfd_mem(0, None)  # type: ignore[arg-type]
    for name in ("one", "two"):
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(tmp_path / name))
        srv.listen(1)
        ls = dill.ipc_listener_fromfd_mem(srv.detach(), mem)
        with raises_errno(errno.EBUSY):
            dill.ipc_listener_fromfd_mem(0, mem)
        c = dill.ipc_connect(tmp_path / name, 0)
        a = dill.ipc_accept(ls, 0)
        for h in (a, c, ls):
            dill.hclose(h)


# ipc_sendfd, ipc_recvfd --------------------------------------------------------------


@contextmanager
def a_pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    try:
        yield r, w
    finally:
        os.close(r)
        os.close(w)


def same_file(fd1: int, fd2: int) -> bool:
    s1, s2 = os.fstat(fd1), os.fstat(fd2)
    return (s1.st_dev, s1.st_ino) == (s2.st_dev, s2.st_ino)


def test_sendfd_recvfd_in_order_with_the_data_around() -> None:
    a, b = dill.ipc_pair()
    with a_pipe() as (r, w):
        dill.bsend(a, b"before")
        dill.ipc_sendfd(a, w)
        dill.bsend(a, b"middle")
        dill.ipc_sendfd(a, r)
        dill.bsend(a, b"after")
        assert dill.brecv(b, 6) == b"before"
        got_w = dill.ipc_recvfd(b, dill.now() + SAFETY_MS)
        assert dill.brecv(b, 6) == b"middle"
        got_r = dill.ipc_recvfd(b, dill.now() + SAFETY_MS)
        assert dill.brecv(b, 5) == b"after"
        try:
            assert got_w not in (r, w) and got_r not in (r, w)
            assert same_file(got_w, w) and same_file(got_r, r)
            assert not os.get_inheritable(got_w)  # close-on-exec
            os.write(got_w, b"through the passed fd")
            assert os.read(r, 100) == b"through the passed fd"
        finally:
            os.close(got_w)
            os.close(got_r)
    dill.hclose(a)
    dill.hclose(b)


def test_recvfd_waits_for_the_fd() -> None:
    a, b = dill.ipc_pair()
    with a_pipe() as (_, w):

        def sender() -> None:
            dill.msleep(dill.now() + 5)
            dill.ipc_sendfd(a, w)

        h = dill.go(sender)
        fd = dill.ipc_recvfd(b, dill.now() + SAFETY_MS)
        assert same_file(fd, w)
        os.close(fd)
        finish(h)
    dill.hclose(a)
    dill.hclose(b)


def test_recvfd_from_stdlib_send_fds() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    s = dill.ipc_fromfd(mine.detach())
    try:
        with a_pipe() as (r, w):
            theirs.sendall(b"before")
            socket.send_fds(theirs, [b"\xcc"], [w])
            theirs.sendall(b"after")
            assert dill.brecv(s, 6) == b"before"
            fd = dill.ipc_recvfd(s, dill.now() + SAFETY_MS)
            try:
                assert same_file(fd, w)
                os.write(fd, b"hello")
                assert os.read(r, 5) == b"hello"
            finally:
                os.close(fd)
            assert dill.brecv(s, 5) == b"after"
    finally:
        dill.hclose(s)
        theirs.close()


def test_recvfd_closes_extra_fds_carried_by_the_byte() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    s = dill.ipc_fromfd(mine.detach())
    try:
        with a_pipe() as (r, w):
            socket.send_fds(theirs, [b"\xcc"], [r, w, r])
            fd = dill.ipc_recvfd(s, dill.now() + SAFETY_MS)
            assert same_file(fd, r)
            os.close(fd)
        # The other two were closed by ipc_recvfd: the leak check sees to it.
    finally:
        dill.hclose(s)
        theirs.close()


def test_sendfd_to_stdlib_recv_fds() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.settimeout(SAFETY_MS / 1000)
    s = dill.ipc_fromfd(mine.detach())
    try:
        with a_pipe() as (r, w):
            dill.bsend(s, b"before")
            dill.ipc_sendfd(s, r)
            dill.bsend(s, b"after")
            assert recv_exactly(theirs, 6) == b"before"
            msg, fds, _, _ = socket.recv_fds(theirs, 1, 4)
            try:
                assert msg == b"\xcc"
                assert len(fds) == 1
                assert same_file(fds[0], r)
                os.write(w, b"ping")
                assert os.read(fds[0], 4) == b"ping"
            finally:
                for fd in fds:
                    os.close(fd)
            assert recv_exactly(theirs, 5) == b"after"
    finally:
        dill.hclose(s)
        theirs.close()


def test_recvfd_eproto_then_the_receive_side_is_latched() -> None:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    s = dill.ipc_fromfd(mine.detach())
    try:
        theirs.sendall(b"\xccplain data")
        with raises_errno(errno.EPROTO):
            dill.ipc_recvfd(s, dill.now() + SAFETY_MS)
        with raises_errno(errno.ECONNRESET):
            dill.brecv(s, 1, 0)
        with raises_errno(errno.ECONNRESET):
            dill.ipc_recvfd(s, 0)
        dill.bsend(s, b"send side fine")
        assert recv_exactly(theirs, 14) == b"send side fine"
    finally:
        dill.hclose(s)
        theirs.close()


def test_recvfd_epipe_at_end_of_stream_and_sticky() -> None:
    a, b = dill.ipc_pair()
    try:
        dill.ipc_done(a)
        with raises_errno(errno.EPIPE):
            dill.ipc_recvfd(b, dill.now() + SAFETY_MS)
        with raises_errno(errno.EPIPE):
            dill.ipc_recvfd(b, 0)
        with raises_errno(errno.EPIPE):
            dill.brecv(b, 1, 0)
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_recvfd_etimedout_then_latched() -> None:
    a, b = dill.ipc_pair()
    deadline = dill.now() + 20
    with raises_errno(errno.ETIMEDOUT):
        dill.ipc_recvfd(b, deadline)
    assert dill.now() >= deadline
    dill.bsend(a, b"x")
    with raises_errno(errno.ECONNRESET):
        dill.brecv(b, 1, 0)
    dill.hclose(a)
    dill.hclose(b)


def test_recvfd_ebusy_canceled_and_ebadf_when_closed() -> None:
    a, b = dill.ipc_pair()
    h, out = spawn(dill.ipc_recvfd, b)
    with raises_errno(errno.EBUSY):
        dill.ipc_recvfd(b, 0)
    with raises_errno(errno.EBUSY):
        dill.brecv(b, 1, 0)
    dill.hclose(h)
    assert_canceled(out[0])
    h, out = spawn(dill.brecv, a, 1)
    h2, out2 = spawn(dill.ipc_recvfd, a)
    assert out2[0].errno == errno.EBUSY
    dill.hclose(h2)
    dill.hclose(h)
    c, d = dill.ipc_pair()
    h, out = spawn(dill.ipc_recvfd, d)
    dill.hclose(d)
    dill.yield_()
    assert len(out) == 1 and out[0].errno == errno.EBADF
    finish(h)
    for x in (a, b, c):
        dill.hclose(x)


def test_sendfd_einval_ebadf_enotsup(tmp_path: Path) -> None:
    a, b = dill.ipc_pair()
    ls = dill.ipc_listen(tmp_path / "s", 1)
    ch0, ch1 = dill.chmake()
    with a_pipe() as (r, w):
        with raises_errno(errno.EINVAL):
            dill.ipc_sendfd(a, -1)
        closed = os.dup(w)  # a number that is not open any more
        close_fd(closed)
        with raises_errno(errno.EBADF):
            dill.ipc_sendfd(a, closed)
        for h in (ls, ch0):
            with raises_errno(errno.ENOTSUP):
                dill.ipc_sendfd(h, w)
            with raises_errno(errno.ENOTSUP):
                dill.ipc_recvfd(h, 0)
        for h in (ls, ch0, ch1):
            dill.hclose(h)
        dill.hclose(b)
        dill.hclose(a)
        with raises_errno(errno.EBADF):
            dill.ipc_sendfd(a, w)
        with raises_errno(errno.EBADF):
            dill.ipc_recvfd(a, 0)
        assert fd_is_open(r)


def test_sendfd_epipe_after_done_and_econnreset_after_failure() -> None:
    a, b = dill.ipc_pair()
    with a_pipe() as (r, _):
        dill.ipc_done(a)
        with raises_errno(errno.EPIPE):
            dill.ipc_sendfd(a, r)
        with raises_errno(errno.ETIMEDOUT):
            dill.bsend(b, bytes(8 * MiB), 0)
        with raises_errno(errno.ECONNRESET):
            dill.ipc_sendfd(b, r)
    dill.hclose(a)
    dill.hclose(b)


def test_sendfd_to_a_closed_peer_is_econnreset() -> None:
    a, b = dill.ipc_pair()
    dill.hclose(b)
    with a_pipe() as (r, _), raises_errno(errno.ECONNRESET):
        dill.ipc_sendfd(a, r, dill.now() + SAFETY_MS)
    dill.hclose(a)


def test_sendfd_waits_etimedout_ebusy_canceled_ebadf() -> None:
    with a_pipe() as (r, _):
        # Waits for room, then goes through.
        s, peer = stuffed_connection()
        h, out = spawn(dill.ipc_sendfd, s, r, dill.now() + SAFETY_MS)
        with raises_errno(errno.EBUSY):
            dill.ipc_sendfd(s, r, 0)
        with raises_errno(errno.EBUSY):
            dill.bsend(s, b"x", 0)
        peer.setblocking(False)
        deadline = dill.now() + SAFETY_MS
        fds: list[int] = []
        while not out and dill.now() < deadline:
            try:
                while True:
                    _, more, _, _ = socket.recv_fds(peer, 1 << 16, 1)
                    fds += more
            except BlockingIOError:
                dill.msleep(dill.now() + 1)
        finish(h)
        assert out == [None]
        with suppress(BlockingIOError):
            while len(fds) < 1:
                _, more, _, _ = socket.recv_fds(peer, 1 << 16, 1)
                fds += more
        assert len(fds) == 1 and same_file(fds[0], r)
        os.close(fds[0])
        dill.hclose(s)
        peer.close()
        # ETIMEDOUT, then the send side is latched.
        s, peer = stuffed_connection()
        deadline = dill.now() + 20
        with raises_errno(errno.ETIMEDOUT):
            dill.ipc_sendfd(s, r, deadline)
        assert dill.now() >= deadline
        with raises_errno(errno.ECONNRESET):
            dill.bsend(s, b"x", 0)
        dill.hclose(s)
        peer.close()
        # ECANCELED while waiting.
        s, peer = stuffed_connection()
        h, out = spawn(dill.ipc_sendfd, s, r)
        dill.hclose(h)
        assert_canceled(out[0])
        dill.hclose(s)
        peer.close()
        # EBADF when the handle is closed meanwhile.
        s, peer = stuffed_connection()
        h, out = spawn(dill.ipc_sendfd, s, r)
        dill.hclose(s)
        dill.yield_()
        assert len(out) == 1 and out[0].errno == errno.EBADF
        finish(h)
        peer.close()


# Real peers: the standard library in a thread ---------------------------------------


def run_in_thread(fn: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, failures


def test_connect_to_a_stdlib_server_in_a_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.settimeout(SAFETY_MS / 1000)
    srv.bind(path)
    srv.listen(1)
    data = randbytes(2 * MiB, seed=20)

    def server() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(SAFETY_MS / 1000)
            got = recv_exactly(conn, len(data))
            conn.sendall(hashlib.sha256(got).digest())
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(1) == b""  # greendill's done

    thread, failures = run_in_thread(server)
    try:
        s = dill.ipc_connect(path, dill.now() + SAFETY_MS)
        h = dill.go(dill.bsend, s, data)
        assert dill.brecv(s, 32, dill.now() + SAFETY_MS) == hashlib.sha256(data).digest()
        with raises_errno(errno.EPIPE):
            dill.brecv(s, 1, dill.now() + SAFETY_MS)
        finish(h)
        dill.ipc_close(s, dill.now() + SAFETY_MS)
    finally:
        thread.join(SAFETY_MS / 1000)
        srv.close()
    assert not thread.is_alive()
    assert failures == []


def test_accept_a_stdlib_client_in_a_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    ls = dill.ipc_listen(path, 1)
    replies: list[bytes] = []

    def client() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.settimeout(SAFETY_MS / 1000)
            c.connect(path)
            c.sendall(b"question")
            c.shutdown(socket.SHUT_WR)
            replies.append(recv_exactly(c, 6))
            assert c.recv(1) == b""

    thread, failures = run_in_thread(client)
    try:
        a = dill.ipc_accept(ls, dill.now() + SAFETY_MS)
        assert dill.brecv(a, 8, dill.now() + SAFETY_MS) == b"question"
        with raises_errno(errno.EPIPE):
            dill.brecv(a, 1, dill.now() + SAFETY_MS)
        dill.bsend(a, b"answer")
        dill.ipc_close(a, dill.now() + SAFETY_MS)
    finally:
        thread.join(SAFETY_MS / 1000)
        dill.hclose(ls)
    assert not thread.is_alive()
    assert failures == []
    assert replies == [b"answer"]


# Real peers: socat ----------------------------------------------------------------


def test_greendill_echo_server_with_socat_client(socat: str, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    data = randbytes(MiB + 123, seed=30)
    (tmp_path / "in").write_bytes(data)
    ls = dill.ipc_listen(path, 1)
    try:
        with (
            (tmp_path / "in").open("rb") as stdin,
            (tmp_path / "out").open("wb") as stdout,
            (tmp_path / "err").open("wb") as stderr,
        ):
            proc = subprocess.Popen(
                [socat, "-t", "10", "-", f"UNIX-CONNECT:{path}"],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
            )
        with terminating(proc):
            s = dill.ipc_accept(ls, dill.now() + SAFETY_MS)
            buf = bytearray(65536)
            view = memoryview(buf)
            left = len(data)
            while left:
                n = min(left, len(buf))
                dill.brecv_into(s, view[:n], dill.now() + SAFETY_MS)
                dill.bsend(s, view[:n], dill.now() + SAFETY_MS)
                left -= n
            # socat shuts its side down at the end of its stdin.
            with raises_errno(errno.EPIPE):
                dill.brecv(s, 1, dill.now() + SAFETY_MS)
            dill.ipc_close(s, dill.now() + SAFETY_MS)
            assert wait_for_exit(proc) == 0, (tmp_path / "err").read_text()
        assert sha((tmp_path / "out").read_bytes()) == sha(data)
    finally:
        dill.hclose(ls)


def test_greendill_client_with_socat_echo_server(socat: str, tmp_path: Path) -> None:
    path = tmp_path / "echo.sock"
    data = randbytes(4 * MiB, seed=31)
    with (tmp_path / "err").open("wb") as stderr:
        proc = subprocess.Popen(
            # Not PIPE: socat writes to its own unnamed pipe blocking, and
            # with 8 KiB writes into a nearly full pipe it deadlocks itself.
            [socat, "-t", "10", f"UNIX-LISTEN:{path}", "EXEC:cat"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    with terminating(proc):
        s = wait_for_listener(path, proc)

        def sender() -> None:  # concurrently: socat echoes while we send
            dill.bsend(s, data, dill.now() + SAFETY_MS)
            dill.ipc_done(s)

        h = dill.go(sender)
        got = bytearray(len(data))
        dill.brecv_into(s, got, dill.now() + SAFETY_MS)
        finish(h)
        assert sha(got) == sha(data)
        # Our done went through cat and came back as socat's.
        with raises_errno(errno.EPIPE):
            dill.brecv(s, 1, dill.now() + SAFETY_MS)
        dill.ipc_close(s, dill.now() + SAFETY_MS)
        assert wait_for_exit(proc) == 0, (tmp_path / "err").read_text()


def test_socat_peer_closing_early_gives_epipe_then_close_succeeds(
    socat: str, tmp_path: Path
) -> None:
    # socat sends a few bytes and ends: fewer than asked is EPIPE.
    path = tmp_path / "s"
    ls = dill.ipc_listen(path, 1)
    try:
        with (tmp_path / "err").open("wb") as stderr:
            proc = subprocess.Popen(
                [socat, "-u", "SYSTEM:printf short", f"UNIX-CONNECT:{path}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        with terminating(proc):
            s = dill.ipc_accept(ls, dill.now() + SAFETY_MS)
            with raises_errno(errno.EPIPE):
                dill.brecv(s, 100, dill.now() + SAFETY_MS)
            dill.ipc_close(s, dill.now() + SAFETY_MS)
            assert wait_for_exit(proc) == 0, (tmp_path / "err").read_text()
    finally:
        dill.hclose(ls)


# A receive right after a send waits before its first try once such tries failed --


def _guessing_pair() -> tuple[int, int]:
    """An IPC pair whose end a has seen receives after sends fail at the first try."""
    a, b = dill.ipc_pair()

    def echo_three() -> None:
        for _ in range(3):
            dill.bsend(b, dill.brecv(b, 1))

    h = dill.go(echo_three)
    for _ in range(3):
        dill.bsend(a, b"x")
        assert dill.brecv(a, 1) == b"x"  # the echo answers only after a has tried
    finish(h)
    return a, b


@pytest.mark.parametrize("into", [False, True], ids=["brecv", "brecv_into"])
def test_a_guessed_receive_with_deadline_zero_still_tries_at_once(into: bool) -> None:
    a, b = _guessing_pair()
    try:
        dill.bsend(a, b"q")  # a's next receive follows a send
        dill.bsend(b, b"z")  # and its data is there already
        if into:
            buf = bytearray(1)
            dill.brecv_into(a, buf, 0)
            assert buf == b"z"
        else:
            assert dill.brecv(a, 1, 0) == b"z"
        dill.bsend(a, b"q")
        with raises_errno(errno.ETIMEDOUT):
            dill.brecv(a, 1, 0)  # nothing there: at once, without waiting
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_a_guessed_receive_with_an_expired_deadline_gets_data_that_is_there() -> None:
    a, b = _guessing_pair()
    try:
        dill.bsend(a, b"q")
        dill.bsend(b, b"z")
        assert dill.brecv(a, 1, dill.now() - 1) == b"z"  # readiness wins
        dill.bsend(a, b"q")
        with raises_errno(errno.ETIMEDOUT):
            dill.brecv(a, 1, dill.now() - 1)
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_a_guessed_receive_in_a_canceled_coroutine_gets_data_that_is_there() -> None:
    a, b = _guessing_pair()
    try:
        dill.bsend(a, b"q")
        dill.bsend(b, b"z")
        assert in_canceled_coroutine(lambda: dill.brecv(a, 1)) == b"z"
        dill.bsend(a, b"q")
        assert_canceled(in_canceled_coroutine(lambda: dill.brecv(a, 1)))
    finally:
        dill.hclose(a)
        dill.hclose(b)


def test_the_guess_stops_once_the_data_is_always_there() -> None:
    # While the guess holds, a receive waits first and so lets ready coroutines
    # run even if its data is there; once a try shows the data there, it no
    # longer does. Every receive gets its data either way.
    a, b = _guessing_pair()
    turns: list[int] = []

    def busy() -> None:
        while True:
            turns.append(1)
            dill.yield_()

    h = dill.go(busy)
    try:
        let_run = []
        for i in range(40):
            dill.bsend(b, bytes([i]))
            dill.bsend(a, b"q")
            before = len(turns)
            assert dill.brecv(a, 1, dill.now() + SAFETY_MS) == bytes([i])
            let_run.append(len(turns) != before)
        assert let_run[0]  # the guess held at first
        assert not any(let_run[-20:])  # and was dropped within 16 receives
    finally:
        dill.hclose(h)
        dill.hclose(a)
        dill.hclose(b)
