"""SOCKS5: the client's and the proxy's side of RFC 1928's handshake, over a byte stream.

No layer is attached: these functions talk SOCKS5 on the caller's byte
stream, and once the handshake is over the same stream carries the proxied
connection. The client offers its methods (no authentication, and RFC
1929's username and password when it has both), authenticates if the proxy
chose that, then asks to CONNECT to an address or a name and reads the
proxy's reply. The proxy reads the offer and chooses (socks5_proxy_auth),
reads the command (socks5_proxy_recvcommand*), does what it asks, and sends
a reply (socks5_proxy_sendreply). All of it is libdill's wire layout, byte
for byte.

Every message says its own length, so it is received with exact reads, and
none of the proxied stream is read ahead. The codec below follows a reader
contract made for that: a reader takes the bytes of a message received so
far and returns either how many more it needs at least (an int), or the
message (a tuple) when they are all of it; it raises EPROTO as soon as they
cannot be the start of one. It never asks for a byte past the message.

Names and credentials are str on the Python side and UTF-8 on the wire;
received bytes that are not UTF-8 decode with surrogateescape, so that
encoding them back gives the same bytes.

Beyond libdill (whose code asserts or reads past its buffers here): a proxy
that chooses a method the client did not offer is EPROTO; an empty host
name is EINVAL; socks5_proxy_auth reports a refused client as EACCES (C
returns -1 with no meaningful errno); None for an address is EINVAL.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Callable, Optional, Union

from ._errors import error
from ._handles import hquery
from ._iface import brecv, bsend, bsock_type
from ._ipaddr import IPADDR_PREF_IPV4, ipaddr, ipaddr_remote

__all__ = [
    "SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED",
    "SOCKS5_BIND",
    "SOCKS5_COMMAND_NOT_SUPPORTED",
    "SOCKS5_CONNECT",
    "SOCKS5_CONNECTION_NOT_ALLOWED",
    "SOCKS5_CONNECTION_REFUSED",
    "SOCKS5_GENERAL_FAILURE",
    "SOCKS5_HOST_UNREACHABLE",
    "SOCKS5_NETWORK_UNREACHABLE",
    "SOCKS5_SUCCESS",
    "SOCKS5_TTL_EXPIRED",
    "SOCKS5_UDP_ASSOCIATE",
    "encode_command",
    "encode_greeting",
    "encode_userpass",
    "read_command",
    "read_greeting",
    "read_method",
    "read_userpass",
    "read_userpass_status",
    "socks5_client_connect",
    "socks5_client_connectbyname",
    "socks5_proxy_auth",
    "socks5_proxy_recvcommand",
    "socks5_proxy_recvcommandbyname",
    "socks5_proxy_sendreply",
]

#: Command: connect to the address (the only one libdill's client sends).
SOCKS5_CONNECT = 0x01
#: Command: accept a connection for the client.
SOCKS5_BIND = 0x02
#: Command: relay UDP datagrams.
SOCKS5_UDP_ASSOCIATE = 0x03

#: Reply: succeeded.
SOCKS5_SUCCESS = 0x00
#: Reply: general SOCKS server failure (the client gets EIO).
SOCKS5_GENERAL_FAILURE = 0x01
#: Reply: connection not allowed by ruleset (EACCES).
SOCKS5_CONNECTION_NOT_ALLOWED = 0x02
#: Reply: network unreachable (ENETUNREACH).
SOCKS5_NETWORK_UNREACHABLE = 0x03
#: Reply: host unreachable (EHOSTUNREACH).
SOCKS5_HOST_UNREACHABLE = 0x04
#: Reply: connection refused (ECONNREFUSED).
SOCKS5_CONNECTION_REFUSED = 0x05
#: Reply: TTL expired (ETIMEDOUT).
SOCKS5_TTL_EXPIRED = 0x06
#: Reply: command not supported (EOPNOTSUPP, which is ENOTSUP on Linux).
SOCKS5_COMMAND_NOT_SUPPORTED = 0x07
#: Reply: address type not supported (EAFNOSUPPORT).
SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED = 0x08

#: The auth callback of socks5_proxy_auth: (username, password) -> accept?
AuthFunction = Callable[[str, str], Any]


# The codec: no sockets here. ---------------------------------------------------

VERSION = 0x05  # RFC 1928
USERPASS_VERSION = 0x01  # RFC 1929
NOAUTH = 0x00
USERPASS = 0x02
NO_ACCEPTABLE_METHOD = 0xFF

ATYP_IPV4 = 1
ATYP_NAME = 3
ATYP_IPV6 = 4
_ADDRESS_SIZE = {ATYP_IPV4: 4, ATYP_IPV6: 16}

# A reply code to the errno the client raises (libdill's mapping).
REPLY_ERRNO = {
    SOCKS5_GENERAL_FAILURE: errno.EIO,
    SOCKS5_CONNECTION_NOT_ALLOWED: errno.EACCES,
    SOCKS5_NETWORK_UNREACHABLE: errno.ENETUNREACH,
    SOCKS5_HOST_UNREACHABLE: errno.EHOSTUNREACH,
    SOCKS5_CONNECTION_REFUSED: errno.ECONNREFUSED,
    SOCKS5_TTL_EXPIRED: errno.ETIMEDOUT,
    SOCKS5_COMMAND_NOT_SUPPORTED: errno.EOPNOTSUPP,
    SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED: errno.EAFNOSUPPORT,
}

#: What a reader returns: the bytes it still needs, or the message.
Read = Union[int, tuple[Any, ...]]


def encode_greeting(methods: bytes) -> bytes:
    """The client's offer: VER, NMETHODS, METHODS."""
    return bytes((VERSION, len(methods))) + methods


def read_greeting(buf: bytes, function: str = "socks5_proxy_auth") -> Read:
    """The client's offer: (methods,) as bytes."""
    if len(buf) < 2:
        return 2 - len(buf)
    if buf[0] != VERSION:
        raise error(errno.EPROTO, function)
    size = 2 + buf[1]
    if len(buf) < size:
        return size - len(buf)
    return (bytes(buf[2:size]),)


def read_method(buf: bytes, function: str) -> Read:
    """The proxy's choice of method: (method,)."""
    if len(buf) < 2:
        return 2 - len(buf)
    if buf[0] != VERSION:
        raise error(errno.EPROTO, function)
    return (buf[1],)


def encode_userpass(username: bytes, password: bytes) -> bytes:
    """RFC 1929's request: VER 1, ULEN, UNAME, PLEN, PASSWD (each at most 255 bytes)."""
    return bytes((USERPASS_VERSION, len(username))) + username + bytes((len(password),)) + password


def read_userpass(buf: bytes, function: str = "socks5_proxy_auth") -> Read:
    """RFC 1929's request: (username, password) as bytes."""
    if len(buf) < 2:
        return 2 - len(buf)
    if buf[0] != USERPASS_VERSION:
        raise error(errno.EPROTO, function)
    ulen = buf[1]
    if len(buf) < 3 + ulen:
        return 3 + ulen - len(buf)
    size = 3 + ulen + buf[2 + ulen]
    if len(buf) < size:
        return size - len(buf)
    return bytes(buf[2 : 2 + ulen]), bytes(buf[3 + ulen : size])


def read_userpass_status(buf: bytes, function: str) -> Read:
    """RFC 1929's answer: (status,), 0 for accepted."""
    if len(buf) < 2:
        return 2 - len(buf)
    if buf[0] != USERPASS_VERSION:
        raise error(errno.EPROTO, function)
    return (buf[1],)


def encode_command(code: int, atyp: int, address: bytes, port: int) -> bytes:
    """A request (code = command) or a reply (code = reply): VER, code, RSV, ATYP, address, port.

    address is 4 or 16 bytes, or a name of at most 255 bytes for ATYP_NAME.
    """
    if atyp == ATYP_NAME:
        address = bytes((len(address),)) + address
    return bytes((VERSION, code, 0, atyp)) + address + port.to_bytes(2, "big")


def read_command(buf: bytes, function: str) -> Read:
    """A request or a reply: (code, atyp, address, port), address as encode_command takes it.

    EPROTO for a version other than 5, a reserved byte other than 0 or an
    unknown address type; the code is not checked here.
    """
    if len(buf) < 4:
        return 4 - len(buf)
    if buf[0] != VERSION or buf[2] != 0:
        raise error(errno.EPROTO, function)
    atyp = buf[3]
    if atyp == ATYP_NAME:
        if len(buf) < 5:
            return 1
        start, end = 5, 5 + buf[4]
    elif atyp in _ADDRESS_SIZE:
        start, end = 4, 4 + _ADDRESS_SIZE[atyp]
    else:
        raise error(errno.EPROTO, function)
    if len(buf) < end + 2:
        return end + 2 - len(buf)
    return buf[1], atyp, bytes(buf[start:end]), int.from_bytes(buf[end : end + 2], "big")


# I/O. ------------------------------------------------------------------------------


def _receive(s: int, reader: Callable[[bytes, str], Read], deadline: int, function: str) -> Any:
    # Exact reads, as many as the reader asks for: nothing past the message.
    buf = b""
    while True:
        got = reader(buf, function)
        if not isinstance(got, int):
            return got
        buf += brecv(s, got, deadline)


def _credential(text: Optional[str], function: str) -> Optional[bytes]:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"{function}: a credential is a str, not {type(text).__name__}")
    data = text.encode("utf-8", "surrogateescape")
    if len(data) > 255:
        raise error(errno.EINVAL, function)
    return data


def _check_stream(s: int, function: str) -> None:
    # EBADF or ENOTSUP before anything else, as in C, named after the caller.
    try:
        hquery(s, bsock_type)
    except OSError as exc:
        raise error(exc.errno or errno.EBADF, function) from None


def _client_auth(
    s: int, username: Optional[str], password: Optional[str], deadline: int, function: str
) -> None:
    user = _credential(username, function)
    word = _credential(password, function)
    offer = bytes((NOAUTH,)) if user is None or word is None else bytes((NOAUTH, USERPASS))
    bsend(s, encode_greeting(offer), deadline)
    (method,) = _receive(s, read_method, deadline, function)
    if method == NO_ACCEPTABLE_METHOD:
        raise error(errno.EACCES, function)
    if method not in offer:
        raise error(errno.EPROTO, function)  # C asserts
    if method == USERPASS:
        assert user is not None and word is not None
        bsend(s, encode_userpass(user, word), deadline)
        (status,) = _receive(s, read_userpass_status, deadline, function)
        if status != 0:
            raise error(errno.EACCES, function)


def _client_request(
    s: int, atyp: int, address: bytes, port: int, deadline: int, function: str
) -> None:
    bsend(s, encode_command(SOCKS5_CONNECT, atyp, address, port), deadline)
    reply = _receive(s, read_command, deadline, function)[0]
    if reply != SOCKS5_SUCCESS:
        raise error(REPLY_ERRNO.get(reply, errno.EPROTO), function)


def _atyp_of(addr: Any, function: str) -> int:
    if addr is None:
        raise error(errno.EINVAL, function)
    if not isinstance(addr, ipaddr):
        raise TypeError(f"{function}: address is an ipaddr, not {type(addr).__name__}")
    return ATYP_IPV4 if addr.family == socket.AF_INET else ATYP_IPV6


def socks5_client_connect(
    s: int, username: Optional[str], password: Optional[str], addr: ipaddr, deadline: int = -1
) -> None:
    """Ask a SOCKS5 proxy, over byte stream s, to connect to an IP address.

    Offers "no authentication", and also username and password when both
    are given; authenticates if the proxy chooses that; then sends CONNECT
    with addr (ATYP 1 or 4) and reads the reply. On success s carries the
    proxied connection. s stays the caller's on failure too.

    Parameters:
        s: handle of a byte-stream socket connected to the proxy.
        username: the username, or None (then no password is offered).
        password: the password, or None.
        addr: the address and port to connect to.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EACCES: the proxy accepts none of the methods offered, refused the
            password, or refuses the connection by its rules (reply 2).
        EAFNOSUPPORT: reply 8 (address type not supported).
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNREFUSED: reply 5 (connection refused).
        ECONNRESET: the connection to the proxy broke.
        EHOSTUNREACH: reply 4 (host unreachable).
        EINVAL: username or password is longer than 255 bytes, or addr is None.
        EIO: reply 1 (general SOCKS server failure).
        ENETUNREACH: reply 3 (network unreachable).
        ENOTSUP: s is not a byte-stream socket; or reply 7 (command not
            supported: EOPNOTSUPP, the same number on Linux).
        EPIPE: the proxy closed the connection during the handshake.
        EPROTO: the proxy broke the protocol (a bad version, reserved byte
            or address type, an unknown reply, a method not offered).
        ETIMEDOUT: the deadline passed; or reply 6 (TTL expired).
    """
    function = "socks5_client_connect"
    _check_stream(s, function)
    atyp = _atyp_of(addr, function)
    _client_auth(s, username, password, deadline, function)
    _client_request(s, atyp, addr.packed, addr.port, deadline, function)


def socks5_client_connectbyname(
    s: int,
    username: Optional[str],
    password: Optional[str],
    hostname: str,
    port: int,
    deadline: int = -1,
) -> None:
    """Ask a SOCKS5 proxy, over byte stream s, to connect to a host by name.

    As socks5_client_connect, but the proxy resolves the name: an IPv4 or
    IPv6 literal is sent as an address (ATYP 1 or 4), anything else as a
    domain name (ATYP 3).

    Parameters:
        s: handle of a byte-stream socket connected to the proxy.
        username: the username, or None (then no password is offered).
        password: the password, or None.
        hostname: the host name or IP literal, 1 to 255 bytes in UTF-8.
        port: the port, 1..65535.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EACCES: the proxy accepts none of the methods offered, refused the
            password, or refuses the connection by its rules (reply 2).
        EAFNOSUPPORT: reply 8 (address type not supported).
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNREFUSED: reply 5 (connection refused).
        ECONNRESET: the connection to the proxy broke.
        EHOSTUNREACH: reply 4 (host unreachable).
        EINVAL: hostname is None, empty or longer than 255 bytes, port is
            outside 1..65535, or username or password is longer than 255 bytes.
        EIO: reply 1 (general SOCKS server failure).
        ENETUNREACH: reply 3 (network unreachable).
        ENOTSUP: s is not a byte-stream socket; or reply 7 (command not
            supported).
        EPIPE: the proxy closed the connection during the handshake.
        EPROTO: the proxy broke the protocol.
        ETIMEDOUT: the deadline passed; or reply 6 (TTL expired).
    """
    function = "socks5_client_connectbyname"
    _check_stream(s, function)
    if hostname is None:
        raise error(errno.EINVAL, function)
    if not isinstance(hostname, str):
        raise TypeError(f"{function}: hostname is a str, not {type(hostname).__name__}")
    if not isinstance(port, int):
        raise TypeError(f"{function}: port is an int, not {type(port).__name__}")
    name = hostname.encode("utf-8", "surrogateescape")
    if not 1 <= len(name) <= 255 or not 1 <= port <= 65535:
        raise error(errno.EINVAL, function)
    atyp, address = ATYP_NAME, name
    for family, literal_atyp in ((socket.AF_INET, ATYP_IPV4), (socket.AF_INET6, ATYP_IPV6)):
        try:
            address = socket.inet_pton(family, hostname)
        except (OSError, ValueError):
            continue
        atyp = literal_atyp
        break
    _client_auth(s, username, password, deadline, function)
    _client_request(s, atyp, address, port, deadline, function)


def socks5_proxy_auth(s: int, auth: Optional[AuthFunction], deadline: int = -1) -> None:
    """The proxy's side of the method choice and authentication, over byte stream s.

    Reads the client's offer. Without auth, the client must offer "no
    authentication", and is accepted. With auth, the client must offer
    username and password ("no authentication" is then refused, as in
    libdill); they are received and auth(username, password) decides: a
    true result accepts the client. Refusal is sent to the client, and
    raised as EACCES. An exception from auth propagates, with nothing sent.

    Parameters:
        s: handle of a byte-stream socket from a client.
        auth: None, or a callable (username: str, password: str) -> bool
            (C's socks5_auth_function, nonzero to accept).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None: the client is authenticated.
    Errors:
        EACCES: the client offered no acceptable method, or auth refused
            its username and password (C returns -1 with no meaningful errno).
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection broke.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the client closed the connection during the handshake.
        EPROTO: the client broke the protocol (a bad version).
        ETIMEDOUT: the deadline passed.
    """
    function = "socks5_proxy_auth"
    _check_stream(s, function)
    if auth is not None and not callable(auth):
        raise TypeError(f"{function}: auth is a callable or None, not {type(auth).__name__}")
    (methods,) = _receive(s, read_greeting, deadline, function)
    if auth is None and NOAUTH in methods:
        bsend(s, bytes((VERSION, NOAUTH)), deadline)
        return
    if auth is None or USERPASS not in methods:
        bsend(s, bytes((VERSION, NO_ACCEPTABLE_METHOD)), deadline)
        raise error(errno.EACCES, function)
    bsend(s, bytes((VERSION, USERPASS)), deadline)
    user, word = _receive(s, read_userpass, deadline, function)
    accepted = auth(
        user.decode("utf-8", "surrogateescape"), word.decode("utf-8", "surrogateescape")
    )
    bsend(s, bytes((USERPASS_VERSION, 0 if accepted else 0xFF)), deadline)
    if not accepted:
        raise error(errno.EACCES, function)


def _recv_request(s: int, deadline: int, function: str) -> tuple[int, int, bytes, int]:
    _check_stream(s, function)
    command, atyp, address, port = _receive(s, read_command, deadline, function)
    if not SOCKS5_CONNECT <= command <= SOCKS5_UDP_ASSOCIATE:
        raise error(errno.EPROTO, function)
    return command, atyp, address, port


def _host_text(atyp: int, address: bytes) -> str:
    if atyp == ATYP_NAME:
        return address.decode("utf-8", "surrogateescape")
    return socket.inet_ntop(socket.AF_INET if atyp == ATYP_IPV4 else socket.AF_INET6, address)


def socks5_proxy_recvcommand(s: int, deadline: int = -1) -> tuple[int, ipaddr]:
    """Receive the client's request, with a domain name resolved to an address.

    A name is resolved as ipaddr_remote(name, port, IPADDR_PREF_IPV4)
    does. C fills the caller's struct ipaddr and returns the command;
    Python returns both.

    Parameters:
        s: handle of a byte-stream socket from an authenticated client.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: (command, addr): SOCKS5_CONNECT, SOCKS5_BIND or
        SOCKS5_UDP_ASSOCIATE, and the address and port asked for.
    Errors:
        EADDRNOTAVAIL: the name resolves to no address.
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection broke.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the client closed the connection.
        EPROTO: the client broke the protocol (a bad version, reserved byte,
            address type, or a command other than 1..3).
        ETIMEDOUT: the deadline passed (receiving, or resolving the name).
    """
    function = "socks5_proxy_recvcommand"
    command, atyp, address, port = _recv_request(s, deadline, function)
    host = _host_text(atyp, address)
    try:
        addr = ipaddr_remote(host, port, IPADDR_PREF_IPV4, deadline)
    except OSError as exc:
        raise error(exc.errno or errno.EADDRNOTAVAIL, function, host) from exc
    return command, addr


def socks5_proxy_recvcommandbyname(s: int, deadline: int = -1) -> tuple[int, str, int]:
    """Receive the client's request as it came: the command, the host as text, the port.

    An address (ATYP 1 or 4) comes as its text ("127.0.0.1", "::1"), a
    domain name as the name. C fills the caller's buffers and returns the
    command; Python returns all three.

    Parameters:
        s: handle of a byte-stream socket from an authenticated client.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: (command, host, port).
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection broke.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the client closed the connection.
        EPROTO: the client broke the protocol (a bad version, reserved byte,
            address type, or a command other than 1..3).
        ETIMEDOUT: the deadline passed.
    """
    function = "socks5_proxy_recvcommandbyname"
    command, atyp, address, port = _recv_request(s, deadline, function)
    return command, _host_text(atyp, address), port


def socks5_proxy_sendreply(s: int, reply: int, addr: ipaddr, deadline: int = -1) -> None:
    """Send the proxy's reply to the client's request, with the address it bound.

    After SOCKS5_SUCCESS the stream carries the proxied connection.

    Parameters:
        s: handle of a byte-stream socket from a client.
        reply: SOCKS5_SUCCESS .. SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED (0..8).
        addr: the proxy's bound address and port (ipaddr() for 0.0.0.0:0).
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: the connection broke.
        EINVAL: reply is not in 0..8, or addr is None.
        ENOTSUP: s is not a byte-stream socket.
        EPIPE: the sending side of s was closed (done) earlier.
        ETIMEDOUT: the deadline passed.
    """
    function = "socks5_proxy_sendreply"
    if not isinstance(reply, int):
        raise TypeError(f"{function}: reply is an int, not {type(reply).__name__}")
    _check_stream(s, function)
    if not SOCKS5_SUCCESS <= reply <= SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED:
        raise error(errno.EINVAL, function)
    atyp = _atyp_of(addr, function)
    bsend(s, encode_command(reply, atyp, addr.packed, addr.port), deadline)
