"""Happy eyeballs: connect by name over IPv6 and IPv4 at once (RFC 8305), as libdill does.

happyeyeballs_connect looks the name up for both families in parallel, in
coroutines of its own (IPv6 started first), and starts a tcp_connect to each
address found, one at a time, letting earlier attempts run on. The first
connection made is returned; every other attempt and both lookups are then
canceled (an attempt that connected too late closes its connection). The
rules, and libdill's numbers for them:

- Resolution delay: the first address is taken from IPv6 if one comes
  within 50 ms, even when IPv4 answered first; after that, or once the IPv6
  lookup has ended, whichever comes first.
- Interleaving: the family preferred starts as IPv6 and changes to the other
  after each address taken from it; when the preferred family has nothing
  ready, the other one's address is taken and the preference stays.
- Connection attempt delay: the next attempt starts 300 ms after the
  coordinator began waiting for the previous address (so at once, on
  arrival, when that wait was longer); for the first address, after the
  resolution delay's wait. RFC 8305 recommends 250 ms.

Beyond libdill:
- When every attempt so far has failed, the next address is tried at once
  instead of after the rest of the 300 ms (as trio and asyncio do): nothing
  is then in flight, so no load is added, and a name whose first address
  refuses does not cost 300 ms.
- When both lookups have ended and every attempt has failed, the call fails
  at once with the error of the attempt that failed last (ECONNREFUSED for a
  port nobody listens on), or EADDRNOTAVAIL when the name had no address.
  libdill waits for the deadline instead (forever with -1) and then reports
  ETIMEDOUT, which hides why it failed.
- A port above 65535 is EINVAL (C truncates it).
"""

from __future__ import annotations

import errno
import socket
from collections import deque
from typing import Optional

from ._channels import chmake, chrecv, chsend
from ._coroutines import bundle, bundle_go
from ._errors import error
from ._handles import hclose
from ._ipaddr import IPADDR_IPV4, IPADDR_IPV6, ipaddr, ipaddr_remotes, ipaddr_str
from ._tcp import tcp_connect
from ._time import check_deadline, now

__all__ = [
    "ATTEMPT_DELAY",
    "MAX_ADDRESSES",
    "RESOLUTION_DELAY",
    "happyeyeballs_connect",
]

#: How long the first address waits for IPv6, in ms (libdill's and RFC 8305's).
RESOLUTION_DELAY = 50
#: The pause between the starts of two attempts, in ms (libdill's; RFC 8305: 250).
ATTEMPT_DELAY = 300
#: The most addresses used per family (libdill's).
MAX_ADDRESSES = 10

_V6: int = socket.AF_INET6
_V4: int = socket.AF_INET


def _other(family: int) -> int:
    return _V4 if family == _V6 else _V6


# The coroutines: each reports to the coordinator on one channel. ------------------


def _lookup(name: str, port: int, family: int, outbox: int) -> None:
    # Every address of one family, then the end of the lookup.
    mode = IPADDR_IPV6 if family == _V6 else IPADDR_IPV4
    try:
        found = ipaddr_remotes(MAX_ADDRESSES, name, port, mode, -1)
    except OSError as exc:
        if exc.errno == errno.ECANCELED:
            raise
        found = []
    for addr in found:
        chsend(outbox, ("address", addr), -1)
    chsend(outbox, ("resolved", family), -1)


def _attempt(addr: ipaddr, outbox: int) -> None:
    # One connect, its outcome reported; a connection nobody takes is closed.
    try:
        conn = tcp_connect(addr, -1)
    except OSError as exc:
        if exc.errno == errno.ECANCELED:
            raise
        chsend(outbox, ("failed", (addr, exc)), -1)
        return
    try:
        chsend(outbox, ("connected", conn), -1)
    except BaseException:
        hclose(conn)
        raise


class _Race:
    """The coordinator's state: addresses waiting per family, attempts in flight."""

    __slots__ = (
        "bundle",
        "failures",
        "inbox",
        "outbox",
        "queues",
        "resolving",
        "running",
        "winner",
    )

    def __init__(self, b: int, inbox: int, outbox: int) -> None:
        self.bundle = b
        self.inbox = inbox
        self.outbox = outbox
        self.queues: dict[int, deque[ipaddr]] = {_V6: deque(), _V4: deque()}
        self.resolving = {_V6, _V4}  # lookups not ended yet
        self.running = 0  # attempts in flight
        self.failures: list[tuple[ipaddr, OSError]] = []
        self.winner: Optional[int] = None

    def wait(self, until: int, deadline: int) -> None:
        """Handle the next report, waiting at most until `until` (-1: no limit).

        ETIMEDOUT when the caller's deadline passes first.
        """
        if deadline != -1 and (until == -1 or deadline <= until):
            try:
                kind, value = chrecv(self.inbox, deadline)
            except OSError as exc:
                if exc.errno != errno.ETIMEDOUT:
                    raise
                raise error(errno.ETIMEDOUT, "happyeyeballs_connect") from None
        else:
            try:
                kind, value = chrecv(self.inbox, until)
            except OSError as exc:
                if exc.errno != errno.ETIMEDOUT:
                    raise
                return
        if kind == "address":
            self.queues[value.family].append(value)
        elif kind == "resolved":
            self.resolving.discard(value)
        elif kind == "failed":
            self.running -= 1
            self.failures.append(value)
        else:
            self.running -= 1
            self.winner = value

    def run(self, name: str, port: int, deadline: int) -> int:
        start = now()
        bundle_go(self.bundle, _lookup, name, port, _V6, self.outbox)
        bundle_go(self.bundle, _lookup, name, port, _V4, self.outbox)
        prefer: int = _V6
        first = True
        while True:
            waiting_since = now()
            # Take an address.
            while True:
                if self.winner is not None:
                    return self.winner
                queues = self.queues
                if (
                    first
                    and _V6 in self.resolving
                    and not queues[_V6]
                    and now() < start + RESOLUTION_DELAY
                ):
                    self.wait(start + RESOLUTION_DELAY, deadline)
                    # libdill counts the first pause from the end of this wait.
                    waiting_since = now()
                    continue
                family = prefer if queues[prefer] else _other(prefer)
                if queues[family]:
                    break
                if not self.resolving and not self.running:
                    raise self.failure()
                self.wait(-1, deadline)
            addr = queues[family].popleft()
            if family == prefer:
                prefer = _other(prefer)
            first = False
            bundle_go(self.bundle, _attempt, addr, self.outbox)
            self.running += 1
            # Let it run alone for a while.
            until = waiting_since + ATTEMPT_DELAY
            while self.winner is None and self.running and now() < until:
                self.wait(until, deadline)

    def failure(self) -> OSError:
        """The error to raise once nothing is left to try."""
        if not self.failures:
            return error(errno.EADDRNOTAVAIL, "happyeyeballs_connect")
        addr, exc = self.failures[-1]
        host = ipaddr_str(addr)
        where = f"[{host}]:{addr.port}" if addr.family == _V6 else f"{host}:{addr.port}"
        return error(exc.errno or errno.EIO, "happyeyeballs_connect", where)


def happyeyeballs_connect(name: str, port: int, deadline: int = -1) -> int:
    """Connect to a host by name over TCP, trying its IPv6 and IPv4 addresses (RFC 8305).

    Looks the name up for both families at once and tries the addresses one
    after the other, alternating families, without waiting for an attempt
    to fail before starting the next (see the module's rules and delays).
    The first connection made is returned; the other attempts and the
    lookups are canceled. An IP literal works too (one address).

    Parameters:
        name: a host name or IP literal.
        port: the port, 1..65535.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of a TCP connection.
    Errors:
        EADDRNOTAVAIL: the name has no address (libdill waits for the deadline).
        ECANCELED: the calling coroutine was canceled.
        ECONNREFUSED: every address refused (more generally: every attempt
            failed, and the last one's error is raised: ENETUNREACH,
            EHOSTUNREACH, ...; libdill waits for the deadline).
        EINVAL: name is None, or port is outside 1..65535.
        EMFILE, ENFILE: no file descriptor was left for the last attempt.
        ENOMEM: never raised (Python raises MemoryError).
        ETIMEDOUT: the deadline passed before a connection was made.
    """
    function = "happyeyeballs_connect"
    if name is None:
        raise error(errno.EINVAL, function)
    if not isinstance(name, str):
        raise TypeError(f"{function}: name is a str, not {type(name).__name__}")
    if not isinstance(port, int):
        raise TypeError(f"{function}: port is an int, not {type(port).__name__}")
    if not 1 <= port <= 0xFFFF:
        raise error(errno.EINVAL, function)
    check_deadline(deadline, function)
    inbox, outbox = chmake()
    try:
        b = bundle()
        try:
            return _Race(b, inbox, outbox).run(name, port, deadline)
        finally:
            # Cancels the lookups and the attempts still running.
            hclose(b)
    finally:
        hclose(inbox)
        hclose(outbox)
