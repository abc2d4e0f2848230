"""IP addresses: ipaddr_local, ipaddr_remote, ipaddr_remotes and the accessors.

libdill's struct ipaddr is 32 opaque bytes holding a sockaddr_in or a
sockaddr_in6. greendill's `ipaddr` holds the same fields as Python values: the
family (AF_INET or AF_INET6), the packed address (4 or 16 bytes), the port
and, for IPv6, flowinfo and scope_id. It is mutable, as the C struct is:
tcp_listen and udp_open write the ephemeral port they got back into it, and
tcp_accept(..., addr=a) and udp_recv(..., addr=a) fill it in place.

Three ways make an address. ipaddr_local is for binding: no name means the
wildcard address, else an IP literal, else the name of a local network
interface. ipaddr_remote and ipaddr_remotes are for connecting: an IP
literal is parsed at once; any other name is resolved by gevent's resolver
(the hub's, by default a thread running the system's getaddrinfo, so
/etc/hosts, /etc/resolv.conf and nsswitch.conf apply), which never blocks
the other coroutines, under a gevent.Timeout armed only when the deadline
asks for one. A mode picks the family: IPADDR_IPV4 and IPADDR_IPV6 take
only their own, IPADDR_PREF_IPV4 (the default, mode 0) and IPADDR_PREF_IPV6
put one family first and fall back to the other.

Where greendill differs from libdill's code (reference section 6):

- A port outside 0..65535 is EINVAL in every call. libdill's ipaddr_local
  reports ENODEV for a bad port with a literal (the failed literal parse falls
  through to the interface lookup) and truncates it to 16 bits with an
  interface name; ipaddr_setport truncates too.
- An unknown mode is EINVAL in ipaddr_local too (C asserts).
- In a strict mode (IPADDR_IPV4, IPADDR_IPV6) a literal of the other family
  is not a literal: libdill sends it to its resolver, which finds nothing.
  greendill finds nothing at once, without asking the resolver (so no wait,
  no ECANCELED, no ETIMEDOUT for it).
- libdill resolves with a DNS client of its own and a PREF mode makes two
  queries; greendill asks the resolver once, for both families, and orders
  the answer. Every resolver failure (socket.gaierror, a name IDNA cannot
  encode) means "nothing found", as libdill's DNS errors do.
"""

from __future__ import annotations

import ctypes
import errno
import socket
import sys
from time import monotonic_ns
from typing import Optional, Union

import gevent
from gevent.exceptions import BlockingSwitchOutError
from greenlet import getcurrent

from ._errors import error
from ._scheduler import Context, cannot_block, context, thread_local
from ._time import check_deadline, expired

__all__ = [
    "IPADDR_IPV4",
    "IPADDR_IPV6",
    "IPADDR_MAXSTRLEN",
    "IPADDR_PREF_IPV4",
    "IPADDR_PREF_IPV6",
    "ipaddr",
    "ipaddr_equal",
    "ipaddr_family",
    "ipaddr_len",
    "ipaddr_local",
    "ipaddr_port",
    "ipaddr_remote",
    "ipaddr_remotes",
    "ipaddr_setport",
    "ipaddr_sockaddr",
    "ipaddr_str",
]

#: Mode: IPv4 addresses only.
IPADDR_IPV4 = 1
#: Mode: IPv6 addresses only.
IPADDR_IPV6 = 2
#: Mode: IPv4 first, IPv6 if there is no IPv4 address (the default, mode 0).
IPADDR_PREF_IPV4 = 3
#: Mode: IPv6 first, IPv4 if there is no IPv6 address.
IPADDR_PREF_IPV6 = 4
#: The longest string ipaddr_str returns, plus one (C's buffer size with its NUL).
IPADDR_MAXSTRLEN = 46

_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6

#: A sockaddr as Python's socket module takes and gives it.
Sockaddr = Union[tuple[str, int], tuple[str, int, int, int]]

# The families a mode accepts, the preferred one first.
_FAMILIES: dict[int, tuple[int, ...]] = {
    IPADDR_IPV4: (_AF_INET,),
    IPADDR_IPV6: (_AF_INET6,),
    IPADDR_PREF_IPV4: (_AF_INET, _AF_INET6),
    IPADDR_PREF_IPV6: (_AF_INET6, _AF_INET),
}
_FAMILIES[0] = _FAMILIES[IPADDR_PREF_IPV4]

# What the resolver is asked for, per mode.
_QUERY = {
    IPADDR_IPV4: _AF_INET,
    IPADDR_IPV6: _AF_INET6,
    IPADDR_PREF_IPV4: socket.AF_UNSPEC,
    IPADDR_PREF_IPV6: socket.AF_UNSPEC,
}
_QUERY[0] = _QUERY[IPADDR_PREF_IPV4]

_ANY4 = bytes(4)
_ANY6 = bytes(16)


class ipaddr:
    """An IP address and port (libdill's struct ipaddr).

    ipaddr() is 0.0.0.0 port 0, an object for a call to fill (C's
    uninitialised struct); ipaddr_local, ipaddr_remote and ipaddr_remotes
    make filled ones. Read it with the ipaddr_* functions. It is mutable
    (ipaddr_setport, and calls that write an address back), so it compares
    and hashes by identity: ipaddr_equal compares addresses, as in C.

    The attributes are the fields of the C sockaddr: family (AF_INET or
    AF_INET6), packed (the address, 4 or 16 bytes in network order), port,
    and flowinfo and scope_id (IPv6 only; 0 for IPv4).
    """

    __slots__ = ("family", "flowinfo", "packed", "port", "scope_id")

    family: int
    packed: bytes
    port: int
    flowinfo: int
    scope_id: int

    def __init__(self) -> None:
        self.family = _AF_INET
        self.packed = _ANY4
        self.port = 0
        self.flowinfo = 0
        self.scope_id = 0

    def __repr__(self) -> str:
        text = f"ipaddr({socket.inet_ntop(self.family, self.packed)!r}, {self.port}"
        if self.flowinfo:
            text += f", flowinfo={self.flowinfo}"
        if self.scope_id:
            text += f", scope_id={self.scope_id}"
        return text + ")"

    def sockaddr(self) -> Sockaddr:
        """Return the address as socket.bind/connect/sendto take it.

        ('1.2.3.4', port) for IPv4, ('::1', port, flowinfo, scope_id) for IPv6.
        """
        host = socket.inet_ntop(self.family, self.packed)
        if self.family == _AF_INET:
            return (host, self.port)
        return (host, self.port, self.flowinfo, self.scope_id)

    def set_sockaddr(self, family: int, sockaddr: Sockaddr) -> None:
        """Fill this object in place from a sockaddr as the socket module gives it.

        family is AF_INET or AF_INET6 (ValueError otherwise); sockaddr is what
        getsockname, accept or recvfrom return for it. Used to write back an
        ephemeral port and to fill an addr= out-parameter.
        """
        host = sockaddr[0]
        if family == _AF_INET:
            self.packed = socket.inet_pton(_AF_INET, host)
            self.family = _AF_INET
            self.port = sockaddr[1]
            self.flowinfo = 0
            self.scope_id = 0
        elif family == _AF_INET6:
            # Python writes a scoped address as "fe80::1%eth0": the scope is
            # sockaddr[3] already.
            self.packed = socket.inet_pton(_AF_INET6, host.partition("%")[0])
            self.family = _AF_INET6
            self.port = sockaddr[1]
            self.flowinfo = sockaddr[2]  # type: ignore[misc]
            self.scope_id = sockaddr[3]  # type: ignore[misc]
        else:
            raise ValueError(f"not an IP address family: {family!r}")


def ipaddr_from_sockaddr(family: int, sockaddr: Sockaddr) -> ipaddr:
    """Return a new ipaddr made from a sockaddr as the socket module gives it.

    family is AF_INET or AF_INET6 (ValueError otherwise). See
    ipaddr.set_sockaddr.
    """
    a = ipaddr()
    a.set_sockaddr(family, sockaddr)
    return a


# Argument checks -------------------------------------------------------------


def _check_addr(a: object, function: str) -> None:
    if not isinstance(a, ipaddr):
        raise TypeError(f"{function}: address is an ipaddr, not {type(a).__name__}")


def _check_port(port: object, function: str) -> None:
    if not isinstance(port, int):
        raise TypeError(f"{function}: port is an int, not {type(port).__name__}")
    if port < 0 or port > 0xFFFF:
        raise error(errno.EINVAL, function)


def _check_mode(mode: object, function: str) -> None:
    if not isinstance(mode, int):
        raise TypeError(f"{function}: mode is an int, not {type(mode).__name__}")
    if mode not in _FAMILIES:
        raise error(errno.EINVAL, function)


def _check_name(name: object, function: str) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{function}: name is a str, not {type(name).__name__}")


# Literals and interfaces -------------------------------------------------------


def _parse(family: int, name: str) -> Optional[bytes]:
    """name as a packed address of family, or None if it is not such a literal."""
    try:
        return socket.inet_pton(family, name)
    except (OSError, ValueError):  # ValueError: NUL or unencodable characters
        return None


def _literal(name: str, port: int, families: tuple[int, ...]) -> Optional[ipaddr]:
    for family in families:
        packed = _parse(family, name)
        if packed is not None:
            a = ipaddr()
            a.family = family
            a.packed = packed
            a.port = port
            return a
    return None


# Interfaces: libdill calls getifaddrs(3) and takes, under the name, the first
# address of each family; greendill does the same through ctypes, so it finds
# the same address (an IPv4 alias is listed under its label, "eth0:1").

_SA_LEN = sys.platform == "darwin" or "bsd" in sys.platform


class _sockaddr(ctypes.Structure):
    # BSD and macOS put a length byte before a one-byte family.
    _fields_ = (
        [("sa_len", ctypes.c_ubyte), ("sa_family", ctypes.c_ubyte)]
        if _SA_LEN
        else [("sa_family", ctypes.c_ushort)]
    )


class _ifaddrs(ctypes.Structure):
    pass


_ifaddrs._fields_ = [
    ("ifa_next", ctypes.POINTER(_ifaddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.POINTER(_sockaddr)),
    # ifa_netmask, ifa_ifu (ifa_dstaddr), ifa_data follow: not read.
]


def _interface_addresses() -> list[tuple[bytes, int, bytes, int]]:
    """(interface name, family, packed address, scope id) for each address, in getifaddrs order.

    Empty where there is no getifaddrs (Windows) or it fails.
    """
    try:
        libc = ctypes.CDLL(None)
        getifaddrs = libc.getifaddrs
        freeifaddrs = libc.freeifaddrs
    except (OSError, AttributeError, TypeError):
        return []
    head = ctypes.POINTER(_ifaddrs)()
    if getifaddrs(ctypes.byref(head)) != 0:
        return []
    found = []
    try:
        it = head
        while it:
            entry = it.contents
            if entry.ifa_addr:
                family = entry.ifa_addr.contents.sa_family
                if family == _AF_INET:
                    raw = ctypes.string_at(entry.ifa_addr, 16)  # struct sockaddr_in
                    found.append((entry.ifa_name, family, raw[4:8], 0))
                elif family == _AF_INET6:
                    raw = ctypes.string_at(entry.ifa_addr, 28)  # struct sockaddr_in6
                    scope_id = int.from_bytes(raw[24:28], sys.byteorder)
                    found.append((entry.ifa_name, family, raw[8:24], scope_id))
            it = entry.ifa_next
    finally:
        freeifaddrs(head)
    return found


def _interface(name: str, port: int, mode: int) -> Optional[ipaddr]:
    try:
        raw = name.encode(sys.getfilesystemencoding(), "surrogateescape")
    except UnicodeError:
        return None
    if not raw or b"\0" in raw:
        return None  # no interface has this name
    first: dict[int, tuple[bytes, int]] = {}
    for ifname, family, packed, scope_id in _interface_addresses():
        if ifname == raw and family not in first:
            first[family] = (packed, scope_id)
    for family in _FAMILIES[mode]:
        if family in first:
            a = ipaddr()
            a.family = family
            a.packed, a.scope_id = first[family]
            a.port = port
            return a
    return None


# Resolution --------------------------------------------------------------------


def _resolve(
    c: Context, name: str, port: int, mode: int, n: int, deadline: int, function: str
) -> list[ipaddr]:
    """Up to n addresses of name, ordered by mode, from gevent's resolver."""
    cur = getcurrent()
    if c.nonblocking and cannot_block(c, cur):
        raise error(errno.ECANCELED, function)
    if cur is c.hub:
        raise BlockingSwitchOutError(
            "greendill cannot resolve a name inside the hub (an event loop callback)"
        )
    if expired(deadline):
        raise error(errno.ETIMEDOUT, function, name)
    timeout = None
    if deadline >= 0:
        delay = (deadline * 1_000_000 - monotonic_ns()) / 1e9
        timeout = gevent.Timeout(delay if delay > 0.0 else 0.0)
        c.loop.update_now()  # libev's cached loop time would fire it early
        timeout.start()
    try:
        infos = c.hub.resolver.getaddrinfo(name, 0, _QUERY[mode], socket.SOCK_STREAM)
    except gevent.Timeout as exc:
        if exc is not timeout:
            raise  # someone else's
        raise error(errno.ETIMEDOUT, function, name) from None
    except (socket.gaierror, UnicodeError):
        # Not found, or a name that cannot exist (IDNA refuses it).
        infos = []
    finally:
        if timeout is not None:
            timeout.close()
    found: list[ipaddr] = []
    for family in _FAMILIES[mode]:
        for info in infos:
            if info[0] == family:
                a = ipaddr_from_sockaddr(family, info[4])
                a.port = port
                found.append(a)
                if len(found) == n:
                    return found
    return found


def _remotes(
    n: int, name: Optional[str], port: int, mode: int, deadline: int, function: str
) -> list[ipaddr]:
    if not isinstance(n, int):
        raise TypeError(f"{function}: n is an int, not {type(n).__name__}")
    if name is not None:
        _check_name(name, function)
    _check_mode(mode, function)
    _check_port(port, function)
    check_deadline(deadline, function)
    if n <= 0 or name is None:
        raise error(errno.EINVAL, function)
    a = _literal(name, port, _FAMILIES[mode])
    if a is not None:
        return [a]
    if mode in (IPADDR_IPV4, IPADDR_IPV6):
        other = _AF_INET6 if mode == IPADDR_IPV4 else _AF_INET
        if _parse(other, name) is not None:
            return []  # a literal of the other family: no address of this one
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    return _resolve(c, name, port, mode, n, deadline, function)


# Public functions, in man-page order ---------------------------------------------


def ipaddr_local(name: Optional[str], port: int, mode: int = 0) -> ipaddr:
    """Make a local IP address, for binding a socket.

    With name None, the address is the wildcard: 0.0.0.0 for modes 0,
    IPADDR_IPV4 and IPADDR_PREF_IPV4, :: for IPADDR_IPV6 and
    IPADDR_PREF_IPV6. Else name is an IP literal ("127.0.0.1", "::1") of a
    family the mode accepts, or else the name of a local network interface
    ("lo", "eth0", an IPv4 alias label such as "eth0:1"): the first address
    that getifaddrs(3) lists for that name in the family the mode chooses,
    as libdill does (a link-local IPv6 address comes with the interface's
    index as scope_id). Without getifaddrs (Windows) interface names always
    give ENODEV. This never blocks and never resolves a host name.

    Parameters:
        name: an IP literal, an interface name, or None for any address.
        port: 0..65535; 0 asks the kernel for an ephemeral port when the
            address is bound (libdill's code accepts 0, its man page says
            1..65535).
        mode: IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6,
            or 0 for IPADDR_PREF_IPV4. A strict mode rejects the other
            family; a PREF mode takes its family if the name has it, else the
            other.
    Returns: a new ipaddr.
    Errors:
        EINVAL: port is outside 0..65535, or mode is unknown (libdill: a bad
            port with a literal gives ENODEV, an unknown mode asserts).
        ENODEV: name is neither an IP literal of an accepted family nor the
            name of a local interface with an address of an accepted family.
    """
    _check_mode(mode, "ipaddr_local")
    _check_port(port, "ipaddr_local")
    if name is None:
        a = ipaddr()
        if mode in (IPADDR_IPV6, IPADDR_PREF_IPV6):
            a.family = _AF_INET6
            a.packed = _ANY6
        a.port = port
        return a
    _check_name(name, "ipaddr_local")
    a_or_none = _literal(name, port, _FAMILIES[mode])
    if a_or_none is None:
        a_or_none = _interface(name, port, mode)
        if a_or_none is None:
            raise error(errno.ENODEV, "ipaddr_local", name)
    return a_or_none


def ipaddr_remote(name: str, port: int, mode: int = 0, deadline: int = -1) -> ipaddr:
    """Make the IP address of a remote host, for connecting or sending to it.

    An IP literal of a family the mode accepts is parsed at once: it needs no
    wait, so it succeeds whatever the deadline and even in a canceled
    coroutine. Any other name is resolved by gevent's resolver (the hub's;
    by default the system's getaddrinfo in a thread, so /etc/hosts applies),
    while the other coroutines run on; the first address of the answer that
    the mode accepts is returned (see ipaddr_remotes for the order). A
    canceled coroutine that is resolving gets Canceled thrown in.

    Parameters:
        name: an IP literal or a host name (not None: EINVAL, as C's NULL).
        port: 0..65535, stored in the address.
        mode: IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6,
            or 0 for IPADDR_PREF_IPV4. In a strict mode a literal of the
            other family finds nothing (EADDRNOTAVAIL).
        deadline: a point in time in ms (see now()); -1 for never; 0 resolves
            a host name only if that can be done at once, which it never can.
    Returns: a new ipaddr.
    Errors:
        EADDRNOTAVAIL: no address of an accepted family was found (unknown
            name, resolver failure, or a literal of the wrong family).
        ECANCELED: the calling coroutine was canceled (host names only).
        EINVAL: name is None, port is outside 0..65535, or mode is unknown.
        ENOENT: never raised (libdill: /etc/resolv.conf could not be read;
            greendill uses the system's resolver, which copes without it).
        ETIMEDOUT: the deadline passed before the name was resolved.
    """
    found = _remotes(1, name, port, mode, deadline, "ipaddr_remote")
    if not found:
        raise error(errno.EADDRNOTAVAIL, "ipaddr_remote", name)
    return found[0]


def ipaddr_remotes(n: int, name: str, port: int, mode: int = 0, deadline: int = -1) -> list[ipaddr]:
    """Make up to n IP addresses of a remote host.

    As ipaddr_remote, but returns every address found, up to n, instead of
    the first (C fills an array of n and returns the count: the list is the
    filled part). In a PREF mode the preferred family's addresses come first,
    then the other family's fill the remaining places; within a family the
    resolver's order is kept. A literal gives one address. Finding nothing
    is not an error: the list is empty.

    Parameters:
        n: the most addresses to return, at least 1.
        name: an IP literal or a host name (not None: EINVAL, as C's NULL).
        port: 0..65535, stored in every address.
        mode: IPADDR_IPV4, IPADDR_IPV6, IPADDR_PREF_IPV4, IPADDR_PREF_IPV6,
            or 0 for IPADDR_PREF_IPV4. In a strict mode a literal of the
            other family finds nothing.
        deadline: a point in time in ms (see now()); -1 for never; 0 resolves
            a host name only if that can be done at once, which it never can.
    Returns: a list of 0 to n new ipaddr objects.
    Errors:
        ECANCELED: the calling coroutine was canceled (host names only).
        EINVAL: n is 0 or less, name is None, port is outside 0..65535, or
            mode is unknown.
        ETIMEDOUT: the deadline passed before the name was resolved.
    """
    return _remotes(n, name, port, mode, deadline, "ipaddr_remotes")


def ipaddr_str(a: ipaddr) -> str:
    """Format the address of an ipaddr as text (inet_ntop).

    "1.2.3.4", "::1", "2001:db8::1" (RFC 5952: lower case, the longest run
    of zero groups compressed), "::ffff:1.2.3.4". The port, brackets and
    the IPv6 scope are not part of it. C fills a buffer of IPADDR_MAXSTRLEN
    bytes; Python returns the string.

    Parameters:
        a: the address.
    Returns: the address as a str of at most IPADDR_MAXSTRLEN - 1 characters.
    Errors: none.
    """
    _check_addr(a, "ipaddr_str")
    return socket.inet_ntop(a.family, a.packed)


def ipaddr_family(a: ipaddr) -> int:
    """Return the address family of an ipaddr.

    Parameters:
        a: the address.
    Returns: socket.AF_INET or socket.AF_INET6.
    Errors: none.
    """
    _check_addr(a, "ipaddr_family")
    return a.family


def ipaddr_len(a: ipaddr) -> int:
    """Return the size of the C sockaddr an ipaddr stands for.

    Parameters:
        a: the address.
    Returns: 16 (sizeof(struct sockaddr_in)) for IPv4, 28
        (sizeof(struct sockaddr_in6)) for IPv6.
    Errors: none.
    """
    _check_addr(a, "ipaddr_len")
    return 16 if a.family == _AF_INET else 28


def ipaddr_sockaddr(a: ipaddr) -> Sockaddr:
    """Return an ipaddr as a sockaddr for Python's socket module.

    C returns a pointer to the embedded struct sockaddr; Python's socket
    calls take a tuple instead, so this returns the tuple they take:
    (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6, host
    as ipaddr_str gives it. The tuple is a copy: changing the ipaddr later
    does not change it.

    Parameters:
        a: the address.
    Returns: ('1.2.3.4', port) or ('::1', port, flowinfo, scope_id).
    Errors: none.
    """
    _check_addr(a, "ipaddr_sockaddr")
    return a.sockaddr()


def ipaddr_port(a: ipaddr) -> int:
    """Return the port of an ipaddr.

    Parameters:
        a: the address.
    Returns: the port, 0..65535 (host byte order).
    Errors: none.
    """
    _check_addr(a, "ipaddr_port")
    return a.port


def ipaddr_setport(a: ipaddr, port: int) -> None:
    """Change the port of an ipaddr, in place.

    Parameters:
        a: the address.
        port: the new port, 0..65535.
    Returns: None.
    Errors:
        EINVAL: port is outside 0..65535 (beyond libdill, whose
            ipaddr_setport returns nothing and keeps the low 16 bits).
    """
    _check_addr(a, "ipaddr_setport")
    _check_port(port, "ipaddr_setport")
    a.port = port


def ipaddr_equal(a1: ipaddr, a2: ipaddr, ignore_port: int) -> int:
    """Compare two IP addresses.

    They are equal if they have the same family and the same address bytes
    and, unless ignore_port is true, the same port. IPv6 flowinfo and
    scope_id are not compared; an IPv4 address and its IPv4-mapped IPv6
    form (1.2.3.4 and ::ffff:1.2.3.4) are different (different families).

    Parameters:
        a1, a2: the addresses.
        ignore_port: non-zero (true) to compare the addresses only.
    Returns: 1 if they are equal, else 0.
    Errors: none.
    """
    _check_addr(a1, "ipaddr_equal")
    _check_addr(a2, "ipaddr_equal")
    if not isinstance(ignore_port, int):
        raise TypeError(f"ipaddr_equal: ignore_port is an int, not {type(ignore_port).__name__}")
    if a1.family != a2.family or a1.packed != a2.packed:
        return 0
    if not ignore_port and a1.port != a2.port:
        return 0
    return 1
