"""HTTP: the head of an HTTP/1.1 request or response, line by line, over a byte stream.

libdill's HTTP layer moves the head only: the request line or the status
line, the header fields, and the blank line that ends them. Each line goes
on the wire ended by CRLF; the blank line is an empty one. The layer is
libdill's stack, built from the public functions of the layers below in
storages embedded in this one (as http.c does): the byte stream, then
SUFFIX with the delimiter "\\r\\n" (each line a message), then TERM with the
empty message as the terminal one (the blank line ends the head). http_done
sends the blank line; receiving the peer's gives EPIPE. http_detach runs
TERM's closing handshake (the blank line both ways) and takes both layers
off again: the byte stream it returns is at the first byte after the peer's
head (SUFFIX gives back what it read ahead), ready for a body or anything
else.

Why not h11: h11 is a well-kept HTTP/1.1 codec, but it parses a head as a
whole (an event once the blank line has come) and brings HTTP's message
semantics with it (a Host field required, bodies framed by Content-Length
or chunking, keep-alive states). libdill's API is a line at a time, to any
command and any field, and hands the stream back raw after the head, which
is exactly what suffix and term already do. h11 would add a runtime
dependency, a second buffer above SUFFIX's, and refusals that libdill's
users do not expect, for the three small line parsers below.

Text is str, each character one byte on the wire (ISO-8859-1, HTTP/1.1's
historical charset): every received line decodes, and a character above
U+00FF cannot be sent (EINVAL).

Beyond libdill:
- Limits: a line longer than max_line bytes (8192 by default; libdill's
  buffer holds 1023 and C overflows it) and more than max_fields header
  fields (100 by default; libdill has no limit) are EMSGSIZE, and break the
  receiving side for good (ECONNRESET afterwards), so that a peer never
  makes the receiver hold unbounded memory or loop forever.
- What is sent is checked for what would change its meaning on the wire:
  CR, LF and NUL anywhere (header injection), an empty command, resource or
  field name, a field name that is not an RFC 9110 token (libdill checks a
  list of separators). The value is trimmed of spaces and tabs (C: spaces).
- What is received is parsed as libdill parses it (runs of spaces between
  tokens, leading spaces tolerated), and also refuses with EPROTO: a line
  holding NUL, CR or LF; a protocol token other than HTTP/d.d (C accepts
  any 8-character token); an empty or non-token field name. A status line
  without a reason phrase ("HTTP/1.1 200") is accepted (RFC 9112 asks
  clients to; C refuses it).
- Sending a field after http_done is EPIPE (TERM's rule; C sends it).
"""

from __future__ import annotations

import errno
import re
from typing import Any

from ._errors import error
from ._handles import (
    check_storage,
    close_quietly,
    hclose,
    hquery,
    layer_object,
    new_handle,
    release,
)
from ._iface import bsock_type, mrecv, msend
from ._scheduler import check_can_block, context
from ._suffix import suffix_attach_mem, suffix_detach, suffix_storage
from ._term import term_attach_mem, term_detach, term_done, term_storage

__all__ = [
    "MAX_FIELDS",
    "MAX_LINE",
    "encode_field",
    "encode_request",
    "encode_status",
    "http_attach",
    "http_attach_mem",
    "http_detach",
    "http_done",
    "http_recvfield",
    "http_recvrequest",
    "http_recvstatus",
    "http_sendfield",
    "http_sendrequest",
    "http_sendstatus",
    "http_storage",
    "http_type",
    "parse_field",
    "parse_request",
    "parse_status",
]

#: The longest line received by default, in bytes without its CRLF.
MAX_LINE = 8192
#: The most header fields received by default, per head.
MAX_FIELDS = 100

#: The type id of an HTTP socket, for hquery.
http_type = type("http_type", (), {"__repr__": lambda self: "http_type"})()


# The codec: no sockets here. ---------------------------------------------------

# RFC 9110's token: the characters of a method or a field name.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# libdill accepts any 8-character protocol token; HTTP has only these.
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
# What no line may hold, sent or received: it would end or split the line
# for some reader (NUL ends a C string).
_FORBIDDEN = re.compile(rb"[\r\n\0]")
# Optional white space around a field value.
_OWS = b" \t"


def _encode(text: Any, function: str) -> bytes:
    # A str to its bytes, one per character; EINVAL for what cannot be on a line.
    if not isinstance(text, str):
        raise TypeError(f"{function}: expected a str, not {type(text).__name__}")
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError:
        raise error(errno.EINVAL, function) from None
    if _FORBIDDEN.search(data):
        raise error(errno.EINVAL, function)
    return data


def encode_request(command: str, resource: str) -> bytes:
    """The request line "<command> <resource> HTTP/1.1", without its CRLF.

    EINVAL if either is empty or holds a space, a tab, CR, LF, NUL or a
    character above U+00FF.
    """
    cmd = _encode(command, "http_sendrequest")
    res = _encode(resource, "http_sendrequest")
    for token in (cmd, res):
        if not token or b" " in token or b"\t" in token:
            raise error(errno.EINVAL, "http_sendrequest")
    return b"%s %s HTTP/1.1" % (cmd, res)


def encode_status(status: int, reason: str) -> bytes:
    """The status line "HTTP/1.1 <status> <reason>", without its CRLF.

    EINVAL if status is not in 100..599, or reason holds CR, LF, NUL or a
    character above U+00FF.
    """
    if not isinstance(status, int):
        raise TypeError(f"http_sendstatus: status is an int, not {type(status).__name__}")
    if not 100 <= status <= 599:
        raise error(errno.EINVAL, "http_sendstatus")
    return b"HTTP/1.1 %d %s" % (status, _encode(reason, "http_sendstatus"))


def encode_field(name: str, value: str) -> bytes:
    """The field line "<name>: <value>", without its CRLF, the value trimmed.

    EINVAL if name is not a token or either holds CR, LF, NUL or a
    character above U+00FF; EPROTO if the value is empty once trimmed (as
    libdill).
    """
    raw_name = _encode(name, "http_sendfield")
    raw_value = _encode(value, "http_sendfield").strip(_OWS)
    if not _TOKEN.fullmatch(raw_name):
        raise error(errno.EINVAL, "http_sendfield")
    if not raw_value:
        raise error(errno.EPROTO, "http_sendfield")
    return b"%s: %s" % (raw_name, raw_value)


def _check_line(line: bytes, function: str) -> None:
    if _FORBIDDEN.search(line):
        raise error(errno.EPROTO, function)


def parse_request(line: bytes) -> tuple[str, str]:
    """(command, resource) from a request line without its CRLF; EPROTO if it is not one.

    Tokens are separated by runs of spaces, and spaces may lead and trail;
    there must be three, the last HTTP/d.d.
    """
    _check_line(line, "http_recvrequest")
    tokens = [t for t in line.split(b" ") if t]  # not split(): tabs are no separator
    if len(tokens) != 3 or not _VERSION.fullmatch(tokens[2]):
        raise error(errno.EPROTO, "http_recvrequest")
    return tokens[0].decode("latin-1"), tokens[1].decode("latin-1")


def parse_status(line: bytes) -> tuple[int, str]:
    """(status, reason) from a status line without its CRLF; EPROTO if it is not one.

    "HTTP/d.d", spaces, three digits, then optionally spaces and the reason
    (everything up to the end of the line, which may be empty).
    """
    _check_line(line, "http_recvstatus")
    rest = line.lstrip(b" ")
    version, _, rest = rest.partition(b" ")
    if not _VERSION.fullmatch(version):
        raise error(errno.EPROTO, "http_recvstatus")
    rest = rest.lstrip(b" ")
    code, _, reason = rest.partition(b" ")
    if len(code) != 3 or not code.isdigit():
        raise error(errno.EPROTO, "http_recvstatus")
    return int(code), reason.lstrip(b" ").decode("latin-1")


def parse_field(line: bytes) -> tuple[str, str]:
    """(name, value) from a field line without its CRLF; EPROTO if it is not one.

    "name : value": spaces may surround the name and the colon, white space
    (spaces and tabs) is trimmed off the value, which may be empty.
    """
    _check_line(line, "http_recvfield")
    name, colon, value = line.partition(b":")
    name = name.strip(b" ")
    if not colon or not _TOKEN.fullmatch(name):
        raise error(errno.EPROTO, "http_recvfield")
    return name.decode("latin-1"), value.strip(_OWS).decode("latin-1")


# The socket. -------------------------------------------------------------------


class http_storage:
    """An HTTP socket; also its storage for http_attach_mem (libdill's struct http_storage).

    It holds the storages of the SUFFIX and TERM layers it stacks on the
    byte stream, so that attaching in it makes no new object.
    """

    __slots__ = (
        "fields",
        "inerr",
        "is_open",
        "max_fields",
        "max_line",
        "rbusy",
        "sbusy",
        "suffix_mem",
        "term_mem",
        "u",
    )

    def __init__(self) -> None:
        self.is_open = False
        self.u = -1
        self.suffix_mem = suffix_storage()
        self.term_mem = term_storage()

    def open(self, u: int, max_line: int, max_fields: int) -> None:
        """Become the HTTP socket over u, the TERM handle on top of its stack."""
        self.u = u
        self.max_line = max_line
        self.max_fields = max_fields
        self.fields = 0  # header fields received so far
        self.inerr = self.rbusy = self.sbusy = False
        self.is_open = True

    # The hvfs protocol: only HTTP's own functions use an HTTP socket (as in C).

    def query(self, type: object) -> Any:
        return self if type is http_type else None

    def close(self) -> None:
        """Close the HTTP socket and the stack below it."""
        self.is_open = False
        u, self.u = self.u, -1
        hclose(u)

    # Lines, one message of the TERM socket each.

    def send_line(self, line: bytes, deadline: int, function: str) -> None:
        if self.sbusy:
            raise error(errno.EBUSY, function)
        self.sbusy = True
        try:
            msend(self.u, line, deadline)
        finally:
            self.sbusy = False

    def recv_line(self, deadline: int, function: str) -> bytes:
        if self.rbusy:
            raise error(errno.EBUSY, function)
        if self.inerr:
            raise error(errno.ECONNRESET, function)
        self.rbusy = True
        try:
            return mrecv(self.u, self.max_line, deadline)
        finally:
            self.rbusy = False


def _socket(s: int, function: str) -> http_storage:
    obj: http_storage = layer_object(context(), s, http_type, function)
    return obj


# The functions. ------------------------------------------------------------------


def http_attach_mem(
    s: int, mem: http_storage, *, max_line: int = MAX_LINE, max_fields: int = MAX_FIELDS
) -> int:
    """Put the HTTP layer on a byte-stream socket, in caller's storage.

    Does what http_attach does, in mem (made by http_storage()), which can
    be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        mem: an http_storage() not in use.
        max_line: keyword-only: the longest line received, in bytes.
        max_fields: keyword-only: the most header fields received.
    Returns: the handle of the new HTTP socket; http_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: mem is None, or max_line or max_fields is below 1.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: s is not a byte-stream socket.
        EPROTO: never raised (libdill's man page lists it; its code gives ENOTSUP).
    """
    return _attach(s, mem, max_line, max_fields, "http_attach_mem")


def http_attach(s: int, *, max_line: int = MAX_LINE, max_fields: int = MAX_FIELDS) -> int:
    """Put the HTTP layer on a byte-stream socket: send and receive the head of HTTP/1.1.

    The new socket sends and receives the lines of an HTTP head (see
    http_sendrequest, http_recvfield, ...); it answers none of the generic
    socket calls. Nothing goes on the wire now. The new handle owns s: s is
    invalid from now on, and closed if this fails, whatever the reason (as
    in libdill). Closing the new handle closes s too.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        max_line: keyword-only: the longest line received, in bytes without
            its CRLF (8192 by default); a longer one is EMSGSIZE.
        max_fields: keyword-only: the most header fields received in a head
            (100 by default); one more is EMSGSIZE.
    Returns: the handle of the new HTTP socket; http_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: max_line or max_fields is below 1.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: s is not a byte-stream socket (as libdill's code; its man
            page says EPROTO).
        EPROTO: never raised (see ENOTSUP).
    """
    return _attach(s, http_storage(), max_line, max_fields, "http_attach")


def _attach(s: int, mem: Any, max_line: int, max_fields: int, function: str) -> int:
    c = context()
    try:
        for limit in (max_line, max_fields):
            if not isinstance(limit, int):
                raise TypeError(f"{function}: a limit is an int, not {type(limit).__name__}")
            if limit < 1:
                raise error(errno.EINVAL, function)
        check_storage(mem, http_storage, function)
        check_can_block(c, function)
        hquery(s, bsock_type)  # EBADF, or ENOTSUP: not a byte stream
    except BaseException:
        close_quietly(s)
        raise
    u = suffix_attach_mem(s, b"\r\n", mem.suffix_mem)
    u = term_attach_mem(u, b"", mem.term_mem)
    mem.open(u, max_line, max_fields)
    return new_handle(c, mem)


def http_sendrequest(s: int, command: str, resource: str, deadline: int = -1) -> None:
    """Send the request line: "<command> <resource> HTTP/1.1" and CRLF.

    The first line of a request; header fields (http_sendfield) and the
    blank line (http_done) follow.

    Parameters:
        s: handle of an HTTP socket.
        command: the method ("GET", "POST", ...), not empty.
        resource: the request target ("/index.html"), not empty.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send failed, or the peer reset the connection.
        EINVAL: command or resource is empty or holds a space, a tab, CR, LF,
            NUL or a character above U+00FF; nothing is sent.
        ENOTSUP: s is not an HTTP socket.
        EPIPE: http_done was called.
        ETIMEDOUT: the deadline passed before the line was sent.
    """
    obj = _socket(s, "http_sendrequest")
    obj.send_line(encode_request(command, resource), deadline, "http_sendrequest")


def http_recvrequest(s: int, deadline: int = -1) -> tuple[str, str]:
    """Receive the request line; return its command and resource.

    C copies them into buffers of the caller's sizes; Python returns them.
    The protocol version is checked (HTTP/d.d) and not returned, as in C.

    Parameters:
        s: handle of an HTTP socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: (command, resource), such as ("GET", "/").
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier receive failed (receiving is broken).
        EINVAL: never raised (C: a buffer too small for its terminator).
        EMSGSIZE: the line is longer than max_line (receiving is then broken).
        ENOTSUP: s is not an HTTP socket.
        EPIPE: the line was blank (the peer's head had ended), or the
            connection ended.
        EPROTO: the line is not a request line (not three tokens, a bad
            protocol token, NUL, CR or LF in it); the line is consumed.
        ETIMEDOUT: the deadline passed before a whole line came (receiving is
            then broken).
    """
    obj = _socket(s, "http_recvrequest")
    return parse_request(obj.recv_line(deadline, "http_recvrequest"))


def http_sendstatus(s: int, status: int, reason: str, deadline: int = -1) -> None:
    """Send the status line: "HTTP/1.1 <status> <reason>" and CRLF.

    The first line of a response; header fields (http_sendfield) and the
    blank line (http_done) follow.

    Parameters:
        s: handle of an HTTP socket.
        status: the status code, 100..599.
        reason: the reason phrase ("OK"); may be empty.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send failed, or the peer reset the connection.
        EINVAL: status is not in 100..599, or reason holds CR, LF, NUL or a
            character above U+00FF; nothing is sent.
        ENOTSUP: s is not an HTTP socket.
        EPIPE: http_done was called.
        ETIMEDOUT: the deadline passed before the line was sent.
    """
    obj = _socket(s, "http_sendstatus")
    obj.send_line(encode_status(status, reason), deadline, "http_sendstatus")


def http_recvstatus(s: int, deadline: int = -1) -> tuple[int, str]:
    """Receive the status line; return its status code and reason phrase.

    C returns the status and copies the reason into the caller's buffer;
    Python returns both.

    Parameters:
        s: handle of an HTTP socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: (status, reason), such as (200, "OK").
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier receive failed (receiving is broken).
        EINVAL: never raised (C: a buffer too small for its terminator).
        EMSGSIZE: the line is longer than max_line (receiving is then broken).
        ENOTSUP: s is not an HTTP socket.
        EPIPE: the line was blank, or the connection ended.
        EPROTO: the line is not a status line (a bad protocol token, a code
            other than three digits, NUL, CR or LF in it); the line is
            consumed.
        ETIMEDOUT: the deadline passed before a whole line came (receiving is
            then broken).
    """
    obj = _socket(s, "http_recvstatus")
    return parse_status(obj.recv_line(deadline, "http_recvstatus"))


def http_sendfield(s: int, name: str, value: str, deadline: int = -1) -> None:
    """Send a header field: "<name>: <value>" and CRLF.

    The value goes without the spaces and tabs around it.

    Parameters:
        s: handle of an HTTP socket.
        name: the field name, a token ("Content-Length").
        value: the field value, not empty once trimmed.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send failed, or the peer reset the connection.
        EINVAL: name is not a token (empty, or holding a separator such as
            ":" or a space, a control character or non-ASCII), or value
            holds CR, LF, NUL or a character above U+00FF; nothing is sent.
        ENOTSUP: s is not an HTTP socket.
        EPIPE: http_done was called (C sends the field anyway).
        EPROTO: value is empty or only white space (as libdill).
        ETIMEDOUT: the deadline passed before the line was sent.
    """
    obj = _socket(s, "http_sendfield")
    obj.send_line(encode_field(name, value), deadline, "http_sendfield")


def http_recvfield(s: int, deadline: int = -1) -> tuple[str, str]:
    """Receive a header field; return its name and value. EPIPE at the blank line.

    Call it until it raises EPIPE: the blank line ends the head, and every
    later call raises EPIPE again. Names are returned as they came (HTTP
    compares them without case).

    Parameters:
        s: handle of an HTTP socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: (name, value), the value trimmed of spaces and tabs.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is receiving on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier receive failed (receiving is broken).
        EINVAL: never raised (C: a buffer too small for its terminator).
        EMSGSIZE: the line is longer than max_line, or the head has more than
            max_fields fields (receiving is then broken).
        ENOTSUP: s is not an HTTP socket.
        EPIPE: the blank line came: the head is over (or the connection
            ended).
        EPROTO: the line is not a field (no colon, a name that is not a
            token, NUL, CR or LF in it); the line is consumed.
        ETIMEDOUT: the deadline passed before a whole line came (receiving is
            then broken).
    """
    obj = _socket(s, "http_recvfield")
    line = obj.recv_line(deadline, "http_recvfield")
    if obj.fields >= obj.max_fields:
        obj.inerr = True
        raise error(errno.EMSGSIZE, "http_recvfield")
    field = parse_field(line)
    obj.fields += 1
    return field


def http_done(s: int, deadline: int = -1) -> None:
    """Send the blank line that ends the head: this side sends no more lines.

    Parameters:
        s: handle of an HTTP socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ENOTSUP: s is not an HTTP socket.
        EPIPE: the blank line was sent already.
        ETIMEDOUT: the deadline passed before the line was sent.
        (A failure of the socket below passes through: ECONNRESET, ...)
    """
    obj = _socket(s, "http_done")
    if obj.sbusy:
        raise error(errno.EBUSY, "http_done")
    obj.sbusy = True
    try:
        term_done(obj.u, deadline)
    finally:
        obj.sbusy = False


def http_detach(s: int, deadline: int = -1) -> int:
    """End both heads and take the HTTP layer off; return the byte stream below.

    Sends the blank line unless http_done did, then receives and drops the
    peer's lines until its blank line (at once if it came already). The
    returned byte stream starts right after the peer's head: a body, or
    anything else the two sides agree on. The HTTP handle is invalid
    afterwards, even when this fails; on failure the byte stream is closed
    too.

    Parameters:
        s: handle of an HTTP socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the byte-stream socket below.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending or receiving on s (s stays open).
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send or receive failed, or the connection
            ended before the peer's blank line.
        ENOTSUP: s is not an HTTP socket.
        ETIMEDOUT: the deadline passed before the peer's blank line came.
    """
    c = context()
    obj: http_storage = layer_object(c, s, http_type, "http_detach")
    if obj.rbusy or obj.sbusy:
        raise error(errno.EBUSY, "http_detach")
    if obj.inerr:
        hclose(s)
        raise error(errno.ECONNRESET, "http_detach")
    # The HTTP handle goes first: whatever happens below, it is gone.
    u, obj.u = obj.u, -1
    obj.is_open = False
    release(c, s)
    # term_detach and suffix_detach close what they were given if they fail.
    return suffix_detach(term_detach(u, deadline), deadline)
