"""UDP: datagrams over IPv4 and IPv6.

A UDP socket is a message socket (msock_type): msend sends one datagram to
the socket's remote address, mrecv receives one datagram. udp_send and
udp_recv do the same with an address: the destination to send to, and an
ipaddr to fill with the sender's. There is no handshake and nothing to shut
down: hclose closes the socket at once (datagrams the kernel has queued still
go out), and udp_open's local port 0 asks the system for a port, which is
written back into the local ipaddr.

Sending never waits, as in libdill: a datagram the kernel cannot take at
once is dropped without an error, so udp_send has no deadline and msend's
is not used. Receiving waits on the socket's read watcher, one receiver at
a time. With a remote address, datagrams from any other address or port are
dropped, unseen, by every receive.

Where greendill differs from libdill's code (reference sections 9 and 19),
and the choices the reference leaves open:

- udp_open reports bind's errors (EADDRINUSE, EADDRNOTAVAIL, EACCES);
  libdill ignores them and opens an unbound socket.
- The remote filter is libdill's: every datagram is read, and dropped unless
  its address and port are the remote's (ipaddr_equal). The socket is not
  connect()ed, because a connected UDP socket reports ICMP errors: a
  datagram to a port where nobody listens would make the next call fail with
  ECONNREFUSED (and a send that meets the error is not sent), udp_open would
  fail for an address with no route, and a remote port of 0 would accept
  every port. A dropped datagram may have been written into the caller's
  buffers beyond the size that the call returns.
- A datagram longer than the buffers: udp_recv, udp_recv_into and udp_recvl
  keep libdill's behaviour, as socket.recvfrom does: the datagram is cut to
  fit and the call returns what fit (EMSGSIZE is never raised). The message
  calls (mrecv, mrecv_into, mrecvl) keep the message-socket contract of every
  greendill msock instead: EMSGSIZE, the datagram is dropped. No UDP error
  latches: the next call works.
- EBUSY: a second coroutine that tries to receive while one is receiving
  gets EBUSY, in every receive call (libdill only while the first waits, and
  its udp_recvl page lists no EBUSY). Sending is never busy: libdill's send
  fails with EBUSY while another coroutine waits to receive (one flag for
  both directions); that is not copied.
- An empty list is C's NULL iolist: udp_sendl([]) is EINVAL, as msendl([])
  is (libdill sends an empty datagram); udp_recvl([]) and mrecvl([]) drop
  one datagram and return its size.
- The destination's family: an IPv4 address on an IPv6 socket goes to the
  IPv4-mapped address, as Linux does with libdill's sockaddr_in; an IPv6
  address on an IPv4 socket is EINVAL (Linux: EAFNOSUPPORT).
- Closing the socket while a coroutine waits in a receive wakes it with
  EBADF (libdill asserts).

The object is also its own storage (udp_storage()): a closed one can be
opened again.
"""

from __future__ import annotations

import errno
import os
import socket
from _socket import socket as _socket
from collections.abc import Sequence
from typing import Any, Callable, Optional

from ._errors import error
from ._handles import lookup, new_handle
from ._iface import RecvItem, msock_type, msock_vfs
from ._ipaddr import ipaddr
from ._scheduler import Context, check_can_block, context, thread_local
from ._stream import Watched, check_storage, syscall_error

__all__ = [
    "udp_open",
    "udp_open_mem",
    "udp_recv",
    "udp_recv_into",
    "udp_recvl",
    "udp_send",
    "udp_sendl",
    "udp_storage",
]

# The type id of UDP sockets, for hquery.
udp_type = type("udp_type", (), {"__repr__": lambda self: "udp_type"})()

_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_MSG_TRUNC = socket.MSG_TRUNC
# No UDP datagram is longer: its length field has 16 bits and counts the header.
_MAX_DATAGRAM = 65535
# The most buffers one sendmsg/recvmsg takes; longer lists go through a copy.
try:
    _IOV_MAX = os.sysconf("SC_IOV_MAX")
except (OSError, ValueError):  # pragma: no cover - every Linux has it
    _IOV_MAX = 1024
if _IOV_MAX <= 0:  # pragma: no cover - "no limit"
    _IOV_MAX = 1024


class udp_storage(Watched, msock_vfs):
    """Memory for a UDP socket (libdill's struct udp_storage).

    For udp_open_mem: the socket lives in this object, which can be used
    again once it is closed.
    """

    __slots__ = ("dest", "peer", "rbusy", "scratch")

    def __init__(self) -> None:
        super().__init__()
        # The remote address: dest as sendto takes it, peer as (packed, port)
        # for the filter; None without a remote.
        self.dest: Any = None
        self.peer: Optional[tuple[bytes, int]] = None
        self.rbusy = False
        self.scratch: Optional[bytearray] = None

    def open(self, c: Context, sock: _socket, remote: Optional[ipaddr]) -> None:
        """Start being the UDP socket over sock (bound already), with remote copied."""
        if remote is None:
            self.dest = self.peer = None
        else:
            self.dest = remote.sockaddr()
            self.peer = (remote.packed, remote.port)
        self.rbusy = False
        self.adopt(c, sock)

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is msock_type or type is udp_type:
            return self
        return None

    def close(self) -> None:
        """A plain close: queued datagrams still go out."""
        self.forget(context())

    # Sending: never waits.

    def destination(self, addr: Any, function: str) -> Any:
        """Where a datagram goes: addr as sendto takes it, or the remote address."""
        if addr is None:
            if self.dest is None:
                raise error(errno.EINVAL, function)
            return self.dest
        if not isinstance(addr, ipaddr):
            raise TypeError(f"{function}: the address is an ipaddr, not {type(addr).__name__}")
        family = self.sock.family
        if addr.family == family:
            return addr.sockaddr()
        if family == _AF_INET6:
            # An IPv4 address on an IPv6 socket: what Linux makes of it.
            host = socket.inet_ntop(_AF_INET, addr.packed)
            return (f"::ffff:{host}", addr.port, 0, 0)
        raise error(errno.EINVAL, function, repr(addr))

    def send(self, addr: Any, data: Any, function: str) -> None:
        dest = self.destination(addr, function)
        try:
            self.sock.sendto(data, dest)
        except BlockingIOError:
            pass  # no room in the kernel: dropped, as libdill does
        except OSError as exc:
            raise syscall_error(exc, function, addr) from None

    def sendl(self, addr: Any, buffers: Sequence[Any], function: str) -> None:
        if buffers is None or len(buffers) == 0:
            raise error(errno.EINVAL, function)
        dest = self.destination(addr, function)
        try:
            if len(buffers) <= _IOV_MAX:
                self.sock.sendmsg(buffers, (), 0, dest)
            else:
                self.sock.sendto(b"".join(buffers), dest)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise syscall_error(exc, function, addr) from None

    def msend(self, data: Any, deadline: int) -> None:
        self.send(None, data, "msend")

    def msendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self.sendl(None, buffers, "msendl")

    # Receiving.

    def receive(
        self, attempt: Callable[..., Any], args: tuple[Any, ...], deadline: int, function: str
    ) -> Any:
        """Call attempt(*args), a non-blocking receive, until it brings an accepted datagram.

        attempt returns a tuple whose last item is the sender's address;
        datagrams from anyone but the remote address are dropped. Waits as
        every greendill call does (ETIMEDOUT, ECANCELED, EBADF on close).
        """
        if self.rbusy:
            raise error(errno.EBUSY, function)
        self.rbusy = True
        generation = self.generation
        try:
            while True:
                try:
                    result = attempt(*args)
                except BlockingIOError:
                    self.wait_readable(deadline, function)
                    continue
                except OSError as exc:
                    raise syscall_error(exc, function) from None
                if self.peer is None or self.from_peer(result[-1]):
                    return result
        finally:
            if self.generation == generation:
                self.rbusy = False

    def from_peer(self, source: Any) -> bool:
        """Whether source (a sockaddr as recvfrom gives it) is the remote address."""
        packed, port = self.peer  # type: ignore[misc]
        if source[1] != port:
            return False
        # Python writes a scoped IPv6 address as "fe80::1%eth0".
        host = source[0].partition("%")[0]
        return socket.inet_pton(self.sock.family, host) == packed

    def recv_bytes(self, maxlen: int, deadline: int, function: str) -> tuple[bytes, Any]:
        """A datagram cut to maxlen bytes, and its sender."""
        data, source = self.receive(
            self.sock.recvfrom, (min(maxlen, _MAX_DATAGRAM),), deadline, function
        )
        return data, source

    def recv_into(
        self, buffer: Any, truncate: bool, deadline: int, function: str
    ) -> tuple[int, Any]:
        """Receive into buffer: (size, sender). truncate: cut to fit, else EMSGSIZE."""
        view = _writable(buffer, function)
        size, source = self.receive(
            self.sock.recvfrom_into, (view, 0, _MSG_TRUNC), deadline, function
        )
        if size > view.nbytes:
            if not truncate:
                raise error(errno.EMSGSIZE, function)
            size = view.nbytes
        return size, source

    def recvl(
        self, buffers: Sequence[RecvItem], truncate: bool, deadline: int, function: str
    ) -> tuple[int, Any]:
        """Receive scattered over buffers (an int: drop that many bytes): (size, sender).

        An empty list drops one datagram and gives its size.
        """
        if buffers is None:
            raise error(errno.EINVAL, function)
        items: list[Any] = []
        capacity = 0
        for item in buffers:
            if isinstance(item, int):
                if item < 0:
                    raise error(errno.EINVAL, function)
                items.append(item)
                capacity += item
            else:
                view = _writable(item, function)
                items.append(view)
                capacity += view.nbytes
        if not items:
            size, _, _, source = self.receive(
                self.sock.recvmsg_into, ([], 0, _MSG_TRUNC), deadline, function
            )
            return size, source  # its whole size: nothing to cut
        iov = self.iovecs(items)
        if len(iov) <= _IOV_MAX:
            size, _, _, source = self.receive(
                self.sock.recvmsg_into, (iov, 0, _MSG_TRUNC), deadline, function
            )
        else:
            # Too many buffers for one system call: receive whole, then copy.
            whole = memoryview(self.scratch_space())
            size, source = self.receive(
                self.sock.recvfrom_into, (whole, 0, _MSG_TRUNC), deadline, function
            )
            _scatter(whole[: min(size, _MAX_DATAGRAM)], items)
        if size > capacity:
            if not truncate:
                raise error(errno.EMSGSIZE, function)
            size = capacity
        return size, source

    def iovecs(self, items: list[Any]) -> list[Any]:
        """The buffers for recvmsg_into: an int becomes a piece of scratch space.

        Buffers past the longest possible datagram are left out (they could
        never be reached), and so are empty ones.
        """
        iov: list[Any] = []
        total = 0
        for item in items:
            if total >= _MAX_DATAGRAM:
                break
            if isinstance(item, int):
                if item:
                    iov.append(memoryview(self.scratch_space())[: min(item, _MAX_DATAGRAM)])
                    total += item
            elif item.nbytes:
                iov.append(item)
                total += item.nbytes
        return iov

    def scratch_space(self) -> bytearray:
        """Room for one whole datagram, where dropped bytes go."""
        if self.scratch is None:
            self.scratch = bytearray(_MAX_DATAGRAM)
        return self.scratch

    def mrecv(self, maxlen: int, deadline: int) -> bytes:
        # Not msock_vfs's, which allocates maxlen bytes first: a datagram
        # is never longer than _MAX_DATAGRAM, whatever maxlen says.
        view = memoryview(self.scratch_space())[: min(maxlen, _MAX_DATAGRAM)]
        return bytes(view[: self.recv_into(view, False, deadline, "mrecv")[0]])

    def mrecv_into(self, buffer: Any, deadline: int) -> int:
        return self.recv_into(buffer, False, deadline, "mrecv")[0]

    def mrecvl(self, buffers: Sequence[RecvItem], deadline: int) -> int:
        return self.recvl(buffers, False, deadline, "mrecvl")[0]


def _writable(buffer: Any, function: str) -> memoryview:
    view = memoryview(buffer)
    if view.readonly:
        raise error(errno.EINVAL, function)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _scatter(data: memoryview, items: list[Any]) -> None:
    # Copy data over the buffers of items, in order; an int skips that many bytes.
    pos = 0
    end = data.nbytes
    for item in items:
        if pos >= end:
            return
        if isinstance(item, int):
            pos += item
            continue
        n = min(item.nbytes, end - pos)
        item[:n] = data[pos : pos + n]
        pos += n


def _check_ipaddr(a: Any, function: str) -> Optional[ipaddr]:
    if a is not None and not isinstance(a, ipaddr):
        raise TypeError(f"{function}: the address is an ipaddr or None, not {type(a).__name__}")
    return a


def _udp(s: int, function: str) -> udp_storage:
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    obj = c.handles.get(s) if s.__class__ is int else None
    if obj is None:
        obj = lookup(c, s, function)
    if obj.query(udp_type) is None:
        raise error(errno.ENOTSUP, function)
    return obj  # type: ignore[no-any-return]


def _fill(addr: Optional[ipaddr], obj: udp_storage, source: Any) -> None:
    if addr is not None:
        addr.set_sockaddr(obj.sock.family, source)


# Opening ------------------------------------------------------------------------


def udp_open(local: Optional[ipaddr], remote: Optional[ipaddr]) -> int:
    """Open a UDP socket.

    The socket is bound to local, if given; a local port of 0 asks the
    system for a port, which is written back into local. remote, if given, is
    where udp_send(s, None, ...) and msend send, and the only address (and
    port) datagrams are accepted from: the others are dropped. The socket's
    family is remote's, else local's, else IPv4. No SO_REUSEADDR: a port that
    another socket has bound is EADDRINUSE (libdill's code ignores the error).

    Parameters:
        local: the local address to bind to (see ipaddr_local), or None for
            none: the system binds an ephemeral port at the first send.
        remote: the default destination and only accepted sender (see
            ipaddr_remote), or None. It is copied: later changes to the object
            do not affect the socket.
    Returns: the handle of the socket, a message socket (msend and mrecv
        work on it; the byte-stream calls are ENOTSUP).
    Errors:
        EACCES: local's port is a privileged one (below 1024) and the process
            may not bind it.
        EADDRINUSE: another socket has bound local's address and port.
        EADDRNOTAVAIL: local's address is not one of this machine's.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: local and remote are of different families.
        EMFILE: the process has no file descriptor left.
        ENFILE: the system has no file descriptor left.
        ENOMEM: never raised (Python raises MemoryError).
    """
    return _open(local, remote, udp_storage(), "udp_open")


def udp_open_mem(local: Optional[ipaddr], remote: Optional[ipaddr], mem: udp_storage) -> int:
    """Open a UDP socket, as udp_open does, with the socket in mem.

    Parameters:
        local: the local address to bind to, or None.
        remote: the default destination and only accepted sender, or None.
        mem: a udp_storage() not in use.
    Returns: the handle of the socket.
    Errors:
        EACCES, EADDRINUSE, EADDRNOTAVAIL, ECANCELED, EMFILE, ENFILE: as udp_open.
        EBUSY: mem holds a socket that is still open.
        EINVAL: mem is None, or local and remote are of different families.
        ENOMEM: never raised.
    """
    mem = check_storage(mem, udp_storage, "udp_open_mem")
    return _open(local, remote, mem, "udp_open_mem")


def _open(local: Any, remote: Any, mem: udp_storage, function: str) -> int:
    local = _check_ipaddr(local, function)
    remote = _check_ipaddr(remote, function)
    if local is not None and remote is not None and local.family != remote.family:
        raise error(errno.EINVAL, function)
    c = context()
    check_can_block(c, function)  # it makes a handle: libdill checks first
    if remote is not None:
        family = remote.family
    elif local is not None:
        family = local.family
    else:
        family = _AF_INET
    try:
        sock = _socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        raise syscall_error(exc, function) from None
    if local is not None:
        try:
            sock.bind(local.sockaddr())
            if local.port == 0:
                local.port = sock.getsockname()[1]
        except OSError as exc:
            sock.close()
            raise syscall_error(exc, function, local) from None
    mem.open(c, sock, remote)
    return new_handle(c, mem)


# Sending ------------------------------------------------------------------------


def udp_send(s: int, addr: Optional[ipaddr], data: Any) -> None:
    """Send one datagram.

    It never waits: a datagram the kernel has no room for is dropped, with no
    error (UDP does not promise delivery anyway). Hence no deadline.

    Parameters:
        s: the UDP socket.
        addr: the destination, or None for the socket's remote address. An
            IPv4 address on an IPv6 socket goes to its IPv4-mapped address.
        data: a bytes-like object, the whole datagram.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EINVAL: addr is None and the socket has no remote address, or addr is
            an IPv6 address and the socket an IPv4 one.
        EMSGSIZE: the datagram is too long (over 65507 bytes on IPv4, 65527
            on IPv6).
        ENOTSUP: s is not a UDP socket.
        Other errnos of sendto(2) pass through (ENETUNREACH, EACCES for a
        broadcast address, ...).
    """
    _udp(s, "udp_send").send(addr, data, "udp_send")


def udp_sendl(s: int, addr: Optional[ipaddr], buffers: Sequence[Any]) -> None:
    """Send a list of buffers, joined, as one datagram.

    It never waits, as udp_send.

    Parameters:
        s: the UDP socket.
        addr: the destination, or None for the socket's remote address.
        buffers: a non-empty sequence of bytes-like objects (C's iolist).
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EINVAL: buffers is empty or None (libdill sends an empty datagram for
            a NULL list), addr is None and the socket has no remote address,
            or addr is an IPv6 address and the socket an IPv4 one.
        EMSGSIZE: the datagram is too long (over 65507 bytes on IPv4, 65527
            on IPv6).
        ENOTSUP: s is not a UDP socket.
    """
    _udp(s, "udp_sendl").sendl(addr, buffers, "udp_sendl")


# Receiving ----------------------------------------------------------------------


def udp_recv(s: int, maxlen: int, deadline: int = -1, *, addr: Optional[ipaddr] = None) -> bytes:
    """Receive one datagram.

    C's udp_recv(s, &addr, buf, len, deadline) is udp_recv(s, len,
    deadline, addr=addr) here, and returns the datagram (udp_recv_into fills
    a buffer of the caller's). A datagram longer than maxlen is cut to
    maxlen bytes, the rest lost, as libdill (and socket.recvfrom) does: no
    EMSGSIZE (mrecv gives EMSGSIZE instead). With a remote address, datagrams
    from anyone else are dropped.

    Parameters:
        s: the UDP socket.
        maxlen: the most bytes to return.
        deadline: a point in time in ms (see now()); -1 for never, 0 to take
            only a datagram that has arrived already.
        addr: an ipaddr to fill with the sender's address (C's out-parameter),
            or None.
    Returns: the datagram, at most maxlen bytes.
    Errors:
        EBADF: s is not an open handle, or it was closed while waiting.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        EINVAL: maxlen is negative.
        EMSGSIZE: never raised: a longer datagram is cut to maxlen.
        ENOTSUP: s is not a UDP socket.
        ETIMEDOUT: the deadline passed before a datagram came.
    """
    obj = _udp(s, "udp_recv")
    if maxlen < 0:
        raise error(errno.EINVAL, "udp_recv")
    data, source = obj.recv_bytes(maxlen, deadline, "udp_recv")
    _fill(addr, obj, source)
    return data


def udp_recv_into(s: int, buffer: Any, deadline: int = -1, *, addr: Optional[ipaddr] = None) -> int:
    """Receive one datagram into buffer (no copy) and return its size.

    A datagram longer than buffer is cut to fit, as in udp_recv.

    Parameters:
        s: the UDP socket.
        buffer: a writable bytes-like object.
        deadline: a point in time in ms (see now()); -1 for never.
        addr: an ipaddr to fill with the sender's address, or None.
    Returns: how many bytes were stored: the datagram's size, at most
        len(buffer).
    Errors:
        EBADF: s is not an open handle, or it was closed while waiting.
        EBUSY: another coroutine is already receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        EINVAL: buffer is not writable.
        EMSGSIZE: never raised: a longer datagram is cut to fit.
        ENOTSUP: s is not a UDP socket.
        ETIMEDOUT: the deadline passed before a datagram came.
    """
    obj = _udp(s, "udp_recv_into")
    size, source = obj.recv_into(buffer, True, deadline, "udp_recv_into")
    _fill(addr, obj, source)
    return size


def udp_recvl(
    s: int, buffers: Sequence[RecvItem], deadline: int = -1, *, addr: Optional[ipaddr] = None
) -> int:
    """Receive one datagram scattered over a list of buffers; return its size.

    An int in the list receives and drops that many bytes (C's NULL base). A
    datagram longer than the buffers is cut to fit, as in udp_recv. An empty
    list (C's NULL list) drops one datagram and returns its whole size.

    Parameters:
        s: the UDP socket.
        buffers: a sequence of writable buffers and ints, or empty.
        deadline: a point in time in ms (see now()); -1 for never.
        addr: an ipaddr to fill with the sender's address, or None.
    Returns: how many bytes the buffers took (the datagram's size, at most
        their total length).
    Errors:
        EBADF: s is not an open handle, or it was closed while waiting.
        EBUSY: another coroutine is already receiving on s (greendill's rule
            for every receive; libdill's page has no EBUSY here).
        ECANCELED: the calling coroutine was canceled while it had to wait.
        EINVAL: buffers is None, holds a negative int or a buffer that is not
            writable.
        EMSGSIZE: never raised: a longer datagram is cut to fit.
        ENOTSUP: s is not a UDP socket.
        ETIMEDOUT: the deadline passed before a datagram came.
    """
    obj = _udp(s, "udp_recvl")
    size, source = obj.recvl(buffers, True, deadline, "udp_recvl")
    _fill(addr, obj, source)
    return size
