"""Pass an open file from one process to another with mmlib's IPC API.

The parent opens a temporary file (it has no name: nothing else can open
it), writes a line, and hands the open file to a child process as an fd in
a datagram. The child reads the line through the fd, appends one of its own
and says so; the parent then reads the whole file.

The child starts first and connects before the server exists:
mm_ipc_connect waits for the server to appear. Run it with

    python examples/pass_file.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid

import greendill as dill


def parent() -> None:
    name = f"greendill-example-{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, __file__, "--child", name])
    try:
        with tempfile.TemporaryFile() as f:
            f.write(b"written by the parent\n")
            f.flush()
            dill.msleep(dill.now() + 100)  # the child is waiting in mm_ipc_connect
            srv = dill.mm_ipc_srv_create(name)
            try:
                s = dill.mm_ipc_srv_accept(srv, dill.now() + 10_000)
            finally:
                dill.mm_ipc_srv_destroy(srv)
            try:
                # The fd travels with the datagram; the child gets its own copy.
                dill.mm_ipc_sendmsg(s, dill.mm_ipc_msg([b"here is a file"], [f.fileno()]))
                reply = bytearray(64)
                n = dill.mm_ipc_recvmsg(s, dill.mm_ipc_msg([reply]), dill.now() + 10_000)
                print(f"parent: the child says {bytes(reply[:n]).decode()!r}")
            finally:
                dill.mm_close(s)
            f.seek(0)
            print(f"parent: the file now holds {f.read().decode()!r}")
    finally:
        if child.wait(10) != 0:
            raise SystemExit(f"the child failed ({child.returncode})")


def child(name: str) -> None:
    c = dill.mm_ipc_connect(name, dill.now() + 10_000)  # waits for the server
    try:
        text = bytearray(64)
        msg = dill.mm_ipc_msg([text], num_fds_max=1)
        n = dill.mm_ipc_recvmsg(c, msg, dill.now() + 10_000)
        (fd,) = msg.fds
        try:
            print(f"child: got {bytes(text[:n]).decode()!r} and fd {fd}")
            print(f"child: read {os.pread(fd, 100, 0).decode()!r}")
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, b"appended by the child\n")
        finally:
            os.close(fd)
        dill.mm_ipc_sendmsg(c, dill.mm_ipc_msg([b"done"]))
    finally:
        dill.mm_close(c)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2])
    else:
        parent()
