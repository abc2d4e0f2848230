"""TLS: an encrypted, authenticated byte stream over any byte stream.

The layer is the standard library's ssl.SSLObject between two memory BIOs:
OpenSSL reads the records the layer feeds it from the byte stream below and
writes the records the layer then sends, so TLS stacks on anything that
answers bsock_type (TCP, IPC, a user's byte stream, another TLS). The
handshake happens inside the attach call; the TLS socket is itself a byte
stream, with brecv_some and bunrecv, so that framing layers read ahead over it
and detach losslessly. tls_done sends close_notify (this side sends no more,
the peer reads EPIPE); tls_detach exchanges close_notify both ways and gives
back the stream below, plaintext from then on; bytes that came after the
peer's close_notify stay readable on it (the layer gives them back with the
stream's bunrecv; over a stream without bunrecv it reads record by record,
by the record's length field, and never reads past close_notify at all).

Beyond libdill (which verifies nothing): the client verifies the server's
certificate and name by default (ssl.create_default_context() and the
server_hostname keyword); a context keyword takes any ssl.SSLContext;
unverified TLS only with verify=False, by name. libdill's OpenSSL errors
become EFAULT; greendill maps them as _failure() says: EPROTO for a failed
handshake (a certificate that does not verify included), EPIPE for
close_notify, ECONNRESET for everything that breaks an established
connection. Errors latch per direction as on TCP.
"""

from __future__ import annotations

import errno
import os
import ssl
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, NoReturn, Optional, Union

from ._errors import error
from ._handles import (
    check_storage,
    close_quietly,
    hclose,
    hown,
    layer_object,
    lookup,
    new_handle,
    query_below,
    release,
)
from ._iface import RecvItem, bsock_type, bsock_vfs, byte_view, fast_bsocks, recv_items
from ._scheduler import check_can_block
from ._scheduler import context as current_context

__all__ = [
    "RECORD_HEADER",
    "dtls_attach_client",
    "dtls_attach_client_mem",
    "dtls_attach_server",
    "dtls_attach_server_mem",
    "dtls_detach",
    "dtls_done",
    "dtls_storage",
    "record_size",
    "tls_attach_client",
    "tls_attach_client_mem",
    "tls_attach_server",
    "tls_attach_server_mem",
    "tls_detach",
    "tls_done",
    "tls_storage",
    "tls_type",
]

#: A PEM file's path.
PemPath = Union[str, "os.PathLike[str]"]

#: The type id of a TLS socket, for hquery.
tls_type = type("tls_type", (), {"__repr__": lambda self: "tls_type"})()

#: A TLS record's header: content type (1 byte), legacy version (2), length (2).
RECORD_HEADER = 5

# The read-ahead buffer: room for one whole record at first (16 KiB of
# plaintext and TLS 1.2's largest expansion), doubled each time one read from
# the stream below fills it, up to _READ_MAX: a bulk transfer then takes
# several records per system call, an idle or chatty connection keeps little.
_READ_MIN = 16384 + 2048 + RECORD_HEADER
_READ_MAX = 262144
# Plaintext encrypted per ssl.write before the records go below: bounds the
# memory a large bsend takes, and keeps every send one call below.
_WRITE_SIZE = 65536


# The codec: no sockets here. ---------------------------------------------------


def record_size(header: Any, first_server_record: bool = False) -> int:
    """How many bytes of a TLS record follow its 5-byte header (RFC 8446, 5.1).

    This is what OpenSSL, which reads a header and then exactly the rest of
    the record, asks for next. A server's first record may be an SSLv2-format
    ClientHello (RFC 5246, E.2: a 2-byte header whose first bit is set, and
    message type 1), whose length is 15 bits of its first two bytes; OpenSSL
    reads it that way before it rejects it.
    """
    if first_server_record and header[0] & 0x80 and header[2] == 1:
        return max(0, int(((header[0] & 0x7F) << 8) | header[1]) + 2 - RECORD_HEADER)
    return int((header[3] << 8) | header[4])


# Errors: the one place where ssl's exceptions become errnos. -----------------


class _CloseNotify(Exception):
    """The peer's close_notify came (a read of 0 bytes)."""


class _Truncated(Exception):
    """The stream below ended while TLS needed more: no close_notify came."""


def _failure(exc: BaseException, function: str, handshake: bool) -> Optional[OSError]:
    """The error to raise for exc, a failure inside the TLS layer; None: exc passes unchanged.

    - close_notify from the peer (a read of 0 bytes, SSLZeroReturnError):
      EPIPE, sticky; during the handshake ECONNRESET (the peer gave up).
    - The stream below ended without close_notify, or ssl saw an EOF that
      breaks the protocol: ECONNRESET (the data may have been cut short: a
      truncation attack looks like this).
    - The certificate did not verify (unknown issuer, wrong name, expired):
      EPROTO, like every failed handshake (libdill's man page: EPROTO for
      protocol errors). The ssl exception stays as __cause__, and its
      reason is in the message, for who must tell them apart.
    - Any other TLS error (the peer does not speak TLS, has no version or
      cipher in common, sent an alert, a record failed its MAC): EPROTO
      during the handshake, ECONNRESET after it (the connection is broken).
    - Whatever the stream below raised (ETIMEDOUT, ECANCELED, ECONNRESET,
      ...), gevent's Timeout, GreenletExit: unchanged.
    """
    if isinstance(exc, (_CloseNotify, ssl.SSLZeroReturnError)):
        code = errno.ECONNRESET if handshake else errno.EPIPE
        return error(code, function)
    if isinstance(exc, (_Truncated, ssl.SSLEOFError)):
        return _described(errno.ECONNRESET, function, "the peer closed without close_notify")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = f"certificate verify failed: {exc.verify_message or exc.reason}"
        return _described(errno.EPROTO, function, reason)
    if isinstance(exc, ssl.SSLError):
        code = errno.EPROTO if handshake else errno.ECONNRESET
        return _described(code, function, exc.reason or str(exc))
    return None


def _described(code: int, function: str, reason: str) -> OSError:
    return OSError(code, f"{function}: {os.strerror(code)} ({reason})")


# The socket. -------------------------------------------------------------------


class tls_storage(bsock_vfs):
    """A TLS socket; also its storage for the _mem calls (libdill's struct tls_storage)."""

    __slots__ = (
        "exact",
        "first_record",
        "generation",
        "incoming",
        "indone",
        "inerr",
        "is_open",
        "lower",
        "outdone",
        "outerr",
        "outgoing",
        "pending",
        "raw",
        "rbuf",
        "rbusy",
        "record_left",
        "sbusy",
        "ssl",
        "u",
    )

    def __init__(self) -> None:
        self.is_open = False
        self.u = -1
        # Changes whenever the storage stops being a connection: a call woken
        # after hclose must not latch flags on what may be a new connection.
        self.generation = 0

    def open(
        self,
        u: int,
        lower: Any,
        sslobj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool,
    ) -> None:
        """Become the TLS socket over handle u, whose byte-stream interface is lower."""
        self.u = u
        # The interface below, found once: every record goes straight to it.
        self.lower = lower
        self.ssl: Any = sslobj
        # The C object under SSLObject's read and write, which only pass
        # their arguments on: calling it saves a Python frame per record.
        self.raw: Any = getattr(sslobj, "_sslobj", sslobj)
        # ssl reads the records fed to incoming and writes its own to outgoing.
        self.incoming: Any = incoming
        self.outgoing: Any = outgoing
        # Without bunrecv below, no byte past a record may be read: the next
        # one may be the first plaintext byte after close_notify.
        self.exact = not callable(getattr(lower, "bunrecv", None))
        self.first_record = server_side
        self.record_left = 0
        # The read-ahead buffer, allocated at the first read.
        self.rbuf: Optional[memoryview] = None
        # Plaintext given back (bunrecv), or drained by tls_done: read first.
        self.pending: Optional[bytes] = None
        self.indone = self.outdone = self.inerr = self.outerr = False
        self.rbusy = self.sbusy = False
        self.generation += 1
        self.is_open = True

    def forget(self) -> None:
        """Stop being a connection (the attach failed, or the layer came off).

        ssl's objects stay until the storage is opened again: a call woken
        after hclose (by a user's stream below that wakes through the ready
        queue) may still touch them before it sees its error.
        """
        self.is_open = False
        self.generation += 1
        self.rbuf = self.pending = None

    # The hvfs protocol.

    def query(self, type: object) -> Any:
        if type is bsock_type or type is tls_type:
            return self
        return None

    def close(self) -> None:
        """Close the TLS socket and the stack below it, at once (no close_notify)."""
        self.forget()
        u, self.u = self.u, -1
        hclose(u)

    # Moving records between ssl and the stream below.

    def handshake(self, deadline: int, function: str) -> None:
        """Run the handshake to its end, or raise what _failure says."""
        do_handshake = self.ssl.do_handshake
        try:
            while True:
                try:
                    do_handshake()
                    break
                except ssl.SSLWantReadError:
                    self._flush(deadline)
                    self._feed(deadline)
            # The last flight (the client's Finished, the server's tickets).
            self._flush(deadline)
        except BaseException as exc:
            self._failed(exc, function, handshake=True)

    def _flush(self, deadline: int) -> None:
        # Send every record ssl has written.
        outgoing, lower = self.outgoing, self.lower
        while outgoing.pending:
            lower.bsend(outgoing.read(), deadline)

    def _feed(self, deadline: int) -> None:
        # Give ssl more of the stream below: as much as has come when the
        # stream takes bytes back, else the rest of the current record.
        rbuf = self.rbuf
        if rbuf is None:
            rbuf = self.rbuf = memoryview(bytearray(_READ_MIN))
        try:
            if not self.exact:
                got = self.lower.brecv_some(rbuf, deadline)
                self.incoming.write(rbuf[:got])
                if got == rbuf.nbytes and got < _READ_MAX:
                    self.rbuf = memoryview(bytearray(2 * got))
            elif self.record_left:
                size = min(self.record_left, rbuf.nbytes)
                self.lower.brecv_into(rbuf[:size], deadline)
                self.incoming.write(rbuf[:size])
                self.record_left -= size
            else:
                header = rbuf[:RECORD_HEADER]
                self.lower.brecv_into(header, deadline)
                self.incoming.write(header)
                self.record_left = record_size(header, self.first_record)
                self.first_record = False
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise _Truncated() from exc
            raise

    def _wait_for_records(self, deadline: int) -> None:
        # ssl wants more: first send what reading made it write (a KeyUpdate
        # answer) unless a sender is at work, which sends it after its own.
        if self.outgoing.pending and not self.sbusy:
            self.sbusy = True
            generation = self.generation
            try:
                self._flush(deadline)
            except BaseException:
                if self.generation == generation:
                    self.outerr = True
                raise
            finally:
                if self.generation == generation:
                    self.sbusy = False
        self._feed(deadline)

    def _send_alert(self) -> None:
        # After a TLS error ssl has written an alert: tell the peer why, if
        # that can be done at once. The connection is broken either way.
        if not self.outgoing.pending or self.sbusy:
            return
        with suppress(OSError):
            self._flush(0)

    def _failed(self, exc: BaseException, function: str, handshake: bool = False) -> NoReturn:
        # Raise the error for exc (see _failure).
        if isinstance(exc, ssl.SSLError):
            self._send_alert()
        failure = _failure(exc, function, handshake)
        if failure is None:
            raise exc
        if isinstance(exc, _CloseNotify):
            raise failure from None
        raise failure from exc

    # Sending.

    def _begin_send(self, function: str) -> None:
        if self.sbusy:
            raise error(errno.EBUSY, function)
        if self.outdone:
            raise error(errno.EPIPE, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)

    def bsend(self, data: Any, deadline: int) -> None:
        if self.sbusy or self.outdone or self.outerr:
            self._begin_send("bsend")
        if data.__class__ is not bytes:
            data = byte_view(data, "bsend")  # a bad argument breaks nothing
        self.sbusy = True
        generation = self.generation
        try:
            if data.__class__ is bytes and 0 < len(data) <= _WRITE_SIZE:
                # _write and _flush, written out: every small bsend is this.
                self.raw.write(data)
                outgoing, lower = self.outgoing, self.lower
                while outgoing.pending:
                    lower.bsend(outgoing.read(), deadline)
            else:
                self._write(data, deadline)
                self._flush(deadline)
        except BaseException as exc:
            self._send_failed(exc, generation, "bsend")
        finally:
            if self.generation == generation:
                self.sbusy = False

    def bsendl(self, buffers: Sequence[Any], deadline: int) -> None:
        self._begin_send("bsendl")
        views = [byte_view(b, "bsendl") for b in buffers]
        self.sbusy = True
        generation = self.generation
        try:
            for data in views:
                self._write(data, deadline)
            self._flush(deadline)
        except BaseException as exc:
            self._send_failed(exc, generation, "bsendl")
        finally:
            if self.generation == generation:
                self.sbusy = False

    def _write(self, data: Any, deadline: int) -> None:
        # Encrypt data; the records go below once a _WRITE_SIZE of them waits.
        size = len(data) if data.__class__ is bytes else memoryview(data).nbytes
        if size <= _WRITE_SIZE:
            if size:
                self.raw.write(data)
                if self.outgoing.pending >= _WRITE_SIZE:
                    self._flush(deadline)
            return
        view = memoryview(data).cast("B")
        write = self.raw.write
        for start in range(0, size, _WRITE_SIZE):
            write(view[start : start + _WRITE_SIZE])
            self._flush(deadline)

    def _send_failed(self, exc: BaseException, generation: int, function: str) -> NoReturn:
        if self.generation != generation:
            raise exc  # closed meanwhile: the storage is not ours to mark
        self.outerr = True
        self._failed(exc, function)

    # Receiving.

    def _begin_recv(self, function: str) -> None:
        if self.rbusy:
            raise error(errno.EBUSY, function)
        if self.pending:
            return  # plaintext to read before the end or the error
        if self.indone:
            raise error(errno.EPIPE, function)
        if self.inerr:
            raise error(errno.ECONNRESET, function)

    def _read(self, view: memoryview, deadline: int) -> int:
        # Decrypt at least one byte into view (not empty); return how many.
        read = self.raw.read
        while True:
            try:
                got: int = read(view.nbytes, view)
            except ssl.SSLWantReadError:
                self._wait_for_records(deadline)
                continue
            if got:
                return got
            raise _CloseNotify()

    def brecv_into(self, buffer: Any, deadline: int) -> None:
        if self.rbusy or self.indone or self.inerr or self.pending:
            return self.brecvl((buffer,), deadline, "brecv")
        view = memoryview(buffer)
        if view.readonly:
            raise error(errno.EINVAL, "brecv")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        size = view.nbytes
        self.rbusy = True
        generation = self.generation
        try:
            got = 0
            read = self.raw.read
            while got < size:
                try:
                    n = read(size - got, view[got:])
                except ssl.SSLWantReadError:
                    self._wait_for_records(deadline)
                    continue
                if not n:
                    raise _CloseNotify()
                got += n
        except BaseException as exc:
            self._recv_failed(exc, generation, "brecv")
        finally:
            if self.generation == generation:
                self.rbusy = False

    def brecvl(self, buffers: Sequence[RecvItem], deadline: int, function: str = "brecvl") -> None:
        self._begin_recv(function)
        items = recv_items(buffers, function)
        self.rbusy = True
        generation = self.generation
        try:
            for item in items:
                if isinstance(item, int):
                    self._skip(item, deadline)
                    continue
                got, size = 0, item.nbytes
                while got < size:
                    got += self._read_some(item[got:], deadline)
        except BaseException as exc:
            self._recv_failed(exc, generation, function)
        finally:
            if self.generation == generation:
                self.rbusy = False

    def _read_some(self, view: memoryview, deadline: int) -> int:
        # _read, after the plaintext given back, and the latches behind it.
        if self.pending:
            return self._take_pending(view)
        if self.indone:
            raise _CloseNotify()
        if self.inerr:
            raise error(errno.ECONNRESET, "brecv")
        return self._read(view, deadline)

    def _skip(self, size: int, deadline: int) -> None:
        scratch = memoryview(bytearray(min(size, _READ_MIN)))
        while size:
            size -= self._read_some(scratch[: min(size, scratch.nbytes)], deadline)

    def brecv_some(self, buffer: Any, deadline: int) -> int:
        self._begin_recv("brecv_some")
        view = memoryview(buffer)
        if view.readonly:
            raise error(errno.EINVAL, "brecv_some")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if not view.nbytes:
            return 0
        if self.pending:
            return self._take_pending(view)
        self.rbusy = True
        generation = self.generation
        try:
            return self._read(view, deadline)
        except BaseException as exc:
            self._recv_failed(exc, generation, "brecv_some")
        finally:
            if self.generation == generation:
                self.rbusy = False

    def bunrecv(self, data: Any) -> None:
        """Put plaintext back in front of the receiving side (see _iface)."""
        if len(data):
            self.pending = bytes(data) + (self.pending or b"")

    def _take_pending(self, view: memoryview) -> int:
        pending = self.pending
        assert pending is not None
        n = min(len(pending), view.nbytes)
        view[:n] = pending[:n]
        self.pending = pending[n:] or None
        return n

    def _recv_failed(self, exc: BaseException, generation: int, function: str) -> NoReturn:
        if self.generation != generation:
            raise exc  # closed meanwhile: the storage is not ours to mark
        if isinstance(exc, (_CloseNotify, ssl.SSLZeroReturnError)):
            self.indone = True
        else:
            self.inerr = True
        self._failed(exc, function)

    # Closing in order.

    def done(self, deadline: int, function: str) -> None:
        """Send close_notify: this side sends no more (tls_done)."""
        if self.sbusy:
            raise error(errno.EBUSY, function)
        if self.outerr:
            raise error(errno.ECONNRESET, function)
        if self.outdone:
            raise error(errno.EPIPE, function)
        self.sbusy = True
        generation = self.generation
        try:
            self._write_close_notify()
            self._flush(deadline)
            self.outdone = True
        except BaseException as exc:
            self._send_failed(exc, generation, function)
        finally:
            if self.generation == generation:
                self.sbusy = False

    def _write_close_notify(self) -> None:
        # ssl's unwrap (SSL_shutdown) writes close_notify, then tries once to
        # read the peer's, and fails for good (APPLICATION_DATA_AFTER_CLOSE_
        # NOTIFY) if it finds application data instead: data the peer may
        # still send, and this side may still read. So it must find nothing:
        # the plaintext ssl holds moves to pending, and the records not yet
        # read leave incoming while unwrap runs.
        sslobj = self.ssl
        held = sslobj.pending()
        if held:
            self.pending = (self.pending or b"") + sslobj.read(held)
        unread = self.incoming.read()
        try:
            sslobj.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify written; the peer's has not come yet
        finally:
            if unread:
                self.incoming.write(unread)

    def drain(self, deadline: int, function: str) -> None:
        """Drop what the peer sends until its close_notify (tls_detach)."""
        self.pending = None
        if self.indone:
            return
        self.rbusy = True
        generation = self.generation
        try:
            scratch = memoryview(bytearray(_READ_MIN))
            while True:
                self._read(scratch, deadline)
        except (_CloseNotify, ssl.SSLZeroReturnError):
            self.indone = True
        except BaseException as exc:
            self._recv_failed(exc, generation, function)
        finally:
            if self.generation == generation:
                self.rbusy = False

    def give_back(self) -> None:
        """Return the bytes that came after the peer's close_notify to the stream below."""
        rest = self.incoming.read()
        if rest and not self.exact:
            self.lower.bunrecv(rest)
        # Over a stream without bunrecv, the layer read record by record and
        # nothing can be left (only a peer that broke the record layer can
        # leave a piece, and then the handshake or a read has failed).


# query(bsock_type) is the object itself: the generic calls may skip it.
fast_bsocks.add(tls_storage)


# Contexts. ---------------------------------------------------------------------

# The contexts greendill makes, made once: loading the system's CA store, or
# a certificate and its key, costs more than a handshake.
_client_contexts: dict[bool, ssl.SSLContext] = {}
_server_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
_SERVER_CONTEXTS_KEPT = 16


def _client_context(given: Optional[ssl.SSLContext], verify: bool, function: str) -> ssl.SSLContext:
    if given is not None:
        if not isinstance(given, ssl.SSLContext):
            raise TypeError(f"{function}: context is an ssl.SSLContext, not {type(given).__name__}")
        if not verify:
            # The context says what is verified; verify=False beside it
            # would mean two answers to one question.
            raise _described(errno.EINVAL, function, "verify=False and a context: give one")
        if given.protocol == ssl.PROTOCOL_TLS_SERVER:
            # (ssl's wrap_bio refuses it from Python 3.10 on, not before.)
            raise _described(errno.EINVAL, function, "a server-side context")
        return given
    verify = bool(verify)
    made = _client_contexts.get(verify)
    if made is None:
        made = ssl.create_default_context()
        if not verify:
            made.check_hostname = False
            made.verify_mode = ssl.CERT_NONE
        _client_contexts[verify] = made
    return made


def _no_password() -> bytes:
    # An encrypted key would make OpenSSL prompt on the terminal: a server
    # must not wait for that. An empty password fails instead (EINVAL).
    return b""


def _server_context(
    cert: Optional[PemPath], key: Optional[PemPath], given: Optional[ssl.SSLContext], function: str
) -> ssl.SSLContext:
    if given is not None:
        if not isinstance(given, ssl.SSLContext):
            raise TypeError(f"{function}: context is an ssl.SSLContext, not {type(given).__name__}")
        if cert is not None or key is not None:
            raise _described(errno.EINVAL, function, "cert and key, or a context: give one")
        if given.protocol == ssl.PROTOCOL_TLS_CLIENT:
            raise _described(errno.EINVAL, function, "a client-side context")
        return given
    if cert is None or key is None:
        raise _described(errno.EINVAL, function, "no certificate or key")
    cert_path, key_path = os.fspath(cert), os.fspath(key)
    try:
        stamp = (cert_path, key_path, *_file_stamp(cert_path), *_file_stamp(key_path))
    except OSError as exc:
        raise _described(errno.EINVAL, function, f"{exc.filename}: {exc.strerror}") from exc
    made = _server_contexts.get(stamp)
    if made is None:
        made = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            made.load_cert_chain(cert_path, key_path, password=_no_password)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            raise _described(errno.EINVAL, function, f"{cert_path}, {key_path}: {reason}") from exc
        if len(_server_contexts) >= _SERVER_CONTEXTS_KEPT:
            _server_contexts.clear()
        _server_contexts[stamp] = made
    return made


def _file_stamp(path: str) -> tuple[int, int, int]:
    # A file changed in place (a renewed certificate) is loaded again.
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


# The functions. ------------------------------------------------------------------


def tls_attach_client_mem(
    s: int,
    mem: tls_storage,
    deadline: int = -1,
    *,
    server_hostname: Optional[str] = None,
    context: Optional[ssl.SSLContext] = None,
    verify: bool = True,
) -> int:
    """Start TLS as the client on a byte-stream socket, in caller's storage.

    Does what tls_attach_client does, in mem (made by tls_storage()), which
    can be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        mem: a tls_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
        server_hostname: the server's name (or IP address) to verify and to
            send in SNI; needed unless verify is False or the context does
            not check names.
        context: an ssl.SSLContext to use instead of greendill's default.
        verify: False for no verification at all (greendill's default
            context, unverified). Not with context.
    Returns: the handle of the new byte-stream socket; tls_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled.
        ECONNRESET: the server closed or reset the connection during the handshake.
        EINVAL: mem is None; server_hostname is missing while names are
            checked, or invalid; verify is False beside a context.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket; the handshake failed: the
            certificate did not verify, or the peer does not speak TLS, or
            has nothing in common with this side, or refused it.
        ETIMEDOUT: the deadline passed before the handshake ended.
    """
    return _attach_client(
        s, mem, deadline, server_hostname, context, verify, "tls_attach_client_mem"
    )


def tls_attach_client(
    s: int,
    deadline: int = -1,
    *,
    server_hostname: Optional[str] = None,
    context: Optional[ssl.SSLContext] = None,
    verify: bool = True,
) -> int:
    """Start TLS as the client on a byte-stream socket.

    Runs the whole handshake before it returns. The server's certificate is
    verified against the system's CAs and server_hostname (beyond libdill,
    which verifies nothing: a C call tls_attach_client(s, dl) becomes
    tls_attach_client(s, dl, server_hostname="name")); context=... gives
    any ssl.SSLContext instead (private CAs, client certificates, pinned
    versions); verify=False turns verification off, and must be asked for
    by name. The new handle owns s: s is invalid from now on, and closed if
    this fails, whatever the reason. Closing the new handle closes s too,
    at once: tls_done and tls_detach close in order.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        deadline: a point in time in ms (see now()); -1 for never.
        server_hostname: the server's name (or IP address) to verify and to
            send in SNI; needed unless verify is False or the context does
            not check names.
        context: an ssl.SSLContext to use instead of greendill's default.
        verify: False for no verification at all (greendill's default
            context, unverified). Not with context.
    Returns: the handle of the new byte-stream socket; tls_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        ECONNRESET: the server closed or reset the connection during the handshake.
        EINVAL: server_hostname is missing while names are checked, or
            invalid; verify is False beside a context.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket; the handshake failed: the
            certificate did not verify, or the peer does not speak TLS, or
            has nothing in common with this side, or refused it.
        ETIMEDOUT: the deadline passed before the handshake ended.
    """
    return _attach_client(
        s, tls_storage(), deadline, server_hostname, context, verify, "tls_attach_client"
    )


def _attach_client(
    s: int,
    mem: Any,
    deadline: int,
    server_hostname: Optional[str],
    given: Optional[ssl.SSLContext],
    verify: bool,
    function: str,
) -> int:
    c = current_context()
    try:
        check_storage(mem, tls_storage, function)
        check_can_block(c, function)
        ctx = _client_context(given, verify, function)
        if ctx.check_hostname and not server_hostname:
            # wrap_socket refuses this; wrap_bio does not, and OpenSSL would
            # then verify the chain and accept any name in it.
            raise _described(errno.EINVAL, function, "no server_hostname to check")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            sslobj = ctx.wrap_bio(
                incoming, outgoing, server_side=False, server_hostname=server_hostname
            )
        except (ValueError, ssl.SSLError) as exc:  # a bad name, a server-only context
            raise _described(errno.EINVAL, function, str(exc)) from exc
    except BaseException:
        close_quietly(s)
        raise
    return _attach(c, s, mem, sslobj, incoming, outgoing, False, deadline, function)


def tls_attach_server_mem(
    s: int,
    cert: Optional[PemPath],
    key: Optional[PemPath],
    mem: tls_storage,
    deadline: int = -1,
    *,
    context: Optional[ssl.SSLContext] = None,
) -> int:
    """Start TLS as the server on a byte-stream socket, in caller's storage.

    Does what tls_attach_server does, in mem (made by tls_storage()), which
    can be used again once the new socket is closed or detached.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        cert: path of the PEM file with the certificate (and its chain);
            None with context.
        key: path of the PEM file with the private key (not encrypted);
            None with context.
        mem: a tls_storage() not in use.
        deadline: a point in time in ms (see now()); -1 for never.
        context: an ssl.SSLContext (server side, with its certificate) to use
            instead of cert and key.
    Returns: the handle of the new byte-stream socket; tls_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: mem is in use by an open socket.
        ECANCELED: the calling coroutine was canceled.
        ECONNRESET: the client closed or reset the connection during the handshake.
        EINVAL: mem is None; cert or key is None, unreadable, not PEM, or
            they do not match; cert or key beside a context.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket; the handshake failed: the
            peer does not speak TLS, or has nothing in common with this side,
            or refused it (or its certificate, when the context asks for one).
        ETIMEDOUT: the deadline passed before the handshake ended.
    """
    return _attach_server(s, cert, key, mem, deadline, context, "tls_attach_server_mem")


def tls_attach_server(
    s: int,
    cert: Optional[PemPath],
    key: Optional[PemPath],
    deadline: int = -1,
    *,
    context: Optional[ssl.SSLContext] = None,
) -> int:
    """Start TLS as the server on a byte-stream socket.

    Runs the whole handshake before it returns, with the certificate and key
    in the PEM files cert and key (read once and kept while the files do
    not change), in ssl.create_default_context(Purpose.CLIENT_AUTH): clients
    are not asked for certificates. context=... gives any server-side
    ssl.SSLContext instead (cert and key are then None). The new handle owns
    s: s is invalid from now on, and closed if this fails, whatever the
    reason. Closing the new handle closes s too.

    Parameters:
        s: handle of a byte-stream socket (one that answers bsock_type).
        cert: path of the PEM file with the certificate (and its chain);
            None with context.
        key: path of the PEM file with the private key (not encrypted);
            None with context.
        deadline: a point in time in ms (see now()); -1 for never.
        context: an ssl.SSLContext (server side, with its certificate) to use
            instead of cert and key.
    Returns: the handle of the new byte-stream socket; tls_detach gives s back.
    Errors:
        EBADF: s is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        ECONNRESET: the client closed or reset the connection during the handshake.
        EINVAL: cert or key is None, unreadable, not PEM, or they do not
            match (libdill's code says EFAULT, its man page EINVAL); cert or
            key beside a context.
        EMFILE, ENFILE, ENOMEM: never raised: greendill's table has no limit.
        ENOTSUP: never raised for s (a socket that is not a byte stream is EPROTO).
        EPROTO: s is not a byte-stream socket; the handshake failed: the
            peer does not speak TLS, or has nothing in common with this side,
            or refused it (or its certificate, when the context asks for one).
        ETIMEDOUT: the deadline passed before the handshake ended.
    """
    return _attach_server(s, cert, key, tls_storage(), deadline, context, "tls_attach_server")


def _attach_server(
    s: int,
    cert: Optional[PemPath],
    key: Optional[PemPath],
    mem: Any,
    deadline: int,
    given: Optional[ssl.SSLContext],
    function: str,
) -> int:
    c = current_context()
    try:
        check_storage(mem, tls_storage, function)
        check_can_block(c, function)
        ctx = _server_context(cert, key, given, function)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            sslobj = ctx.wrap_bio(incoming, outgoing, server_side=True)
        except (ValueError, ssl.SSLError) as exc:  # a client-only context
            raise _described(errno.EINVAL, function, str(exc)) from exc
    except BaseException:
        close_quietly(s)
        raise
    return _attach(c, s, mem, sslobj, incoming, outgoing, True, deadline, function)


def _attach(
    c: Any,
    s: int,
    mem: tls_storage,
    sslobj: ssl.SSLObject,
    incoming: ssl.MemoryBIO,
    outgoing: ssl.MemoryBIO,
    server_side: bool,
    deadline: int,
    function: str,
) -> int:
    u = hown(s)
    lower = query_below(u, bsock_type, function)
    mem.open(u, lower, sslobj, incoming, outgoing, server_side)
    try:
        mem.handshake(deadline, function)
    except BaseException:
        mem.forget()
        mem.u = -1
        close_quietly(u)
        raise
    return new_handle(c, mem)


def tls_done(s: int, deadline: int = -1) -> None:
    """Send close_notify: this side of the TLS connection sends no more.

    The peer's receives fail with EPIPE once they reach it; later bsends here
    fail with EPIPE. Receiving goes on until the peer's close_notify. The
    stream below stays open (tls_detach gives it back).

    Parameters:
        s: handle of a TLS socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: None.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending on s.
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send failed: the connection is broken (as
            libdill's code does).
        ENOTSUP: s is not a TLS socket.
        EPIPE: tls_done was called already.
        ETIMEDOUT: the deadline passed before close_notify was sent.
    """
    obj: tls_storage = layer_object(current_context(), s, tls_type, "tls_done")
    obj.done(deadline, "tls_done")


def tls_detach(s: int, deadline: int = -1) -> int:
    """End TLS in order and return the byte stream below, for plaintext.

    Sends close_notify unless tls_done did, then drops what the peer still
    sends until its close_notify. Bytes that came after the peer's
    close_notify stay readable on the returned socket. On success the TLS
    handle is gone and the stream below is the caller's; on failure both
    are closed (except EBUSY).

    Parameters:
        s: handle of a TLS socket.
        deadline: a point in time in ms (see now()); -1 for never.
    Returns: the handle of the byte-stream socket below.
    Errors:
        EBADF: s is not an open handle.
        EBUSY: another coroutine is sending or receiving on s (s stays open).
        ECANCELED: the calling coroutine was canceled while it had to wait.
        ECONNRESET: an earlier send or receive failed, or the peer closed
            without close_notify, or broke TLS.
        ENOTSUP: s is not a TLS socket.
        ETIMEDOUT: the deadline passed before the peer's close_notify came.
    """
    c = current_context()
    obj: tls_storage = layer_object(c, s, tls_type, "tls_detach")
    if obj.rbusy or obj.sbusy:
        raise error(errno.EBUSY, "tls_detach")
    if obj.inerr or obj.outerr:
        hclose(s)
        raise error(errno.ECONNRESET, "tls_detach")
    try:
        if not obj.outdone:
            obj.done(deadline, "tls_detach")
        obj.drain(deadline, "tls_detach")
        obj.give_back()
    except BaseException:
        close_quietly(s)
        raise
    u, obj.u = obj.u, -1
    obj.forget()
    release(c, s)
    return u


# DTLS: declared in libdill.h, implemented nowhere. ----------------------------


class dtls_storage:
    """Storage for the dtls_*_mem calls (libdill's struct dtls_storage).

    libdill declares DTLS but does not implement it (no source, no symbol,
    no man page): every dtls_* call fails with ENOTSUP.
    """

    __slots__ = ()


def _no_dtls(s: int, function: str) -> NoReturn:
    close_quietly(s)  # an attach owns s, and closes it when it fails
    raise error(errno.ENOTSUP, function)


def dtls_attach_client(s: int, deadline: int = -1) -> int:
    """DTLS client over a message socket: not implemented (libdill declares it only).

    Closes s, as every failed attach does.

    Parameters:
        s: handle of a message socket.
        deadline: unused.
    Returns: never returns.
    Errors:
        ENOTSUP: always: libdill declares DTLS in libdill.h and implements none of it.
    """
    _no_dtls(s, "dtls_attach_client")


def dtls_attach_client_mem(s: int, mem: dtls_storage, deadline: int = -1) -> int:
    """DTLS client in caller's storage: not implemented (libdill declares it only).

    Closes s, as every failed attach does.

    Parameters:
        s: handle of a message socket.
        mem: a dtls_storage().
        deadline: unused.
    Returns: never returns.
    Errors:
        ENOTSUP: always: libdill declares DTLS in libdill.h and implements none of it.
    """
    _no_dtls(s, "dtls_attach_client_mem")


def dtls_attach_server(
    s: int, cert: Optional[PemPath], key: Optional[PemPath], deadline: int = -1
) -> int:
    """DTLS server over a message socket: not implemented (libdill declares it only).

    Closes s, as every failed attach does.

    Parameters:
        s: handle of a message socket.
        cert: path of a PEM certificate.
        key: path of a PEM private key.
        deadline: unused.
    Returns: never returns.
    Errors:
        ENOTSUP: always: libdill declares DTLS in libdill.h and implements none of it.
    """
    _no_dtls(s, "dtls_attach_server")


def dtls_attach_server_mem(
    s: int,
    cert: Optional[PemPath],
    key: Optional[PemPath],
    mem: dtls_storage,
    deadline: int = -1,
) -> int:
    """DTLS server in caller's storage: not implemented (libdill declares it only).

    Closes s, as every failed attach does.

    Parameters:
        s: handle of a message socket.
        cert: path of a PEM certificate.
        key: path of a PEM private key.
        mem: a dtls_storage().
        deadline: unused.
    Returns: never returns.
    Errors:
        ENOTSUP: always: libdill declares DTLS in libdill.h and implements none of it.
    """
    _no_dtls(s, "dtls_attach_server_mem")


def dtls_done(s: int, deadline: int = -1) -> None:
    """End a DTLS conversation: not implemented (there are no DTLS sockets).

    Parameters:
        s: a handle.
        deadline: unused.
    Returns: never returns.
    Errors:
        EBADF: s is not an open handle.
        ENOTSUP: s is not a DTLS socket (none can exist).
    """
    lookup(current_context(), s, "dtls_done")
    raise error(errno.ENOTSUP, "dtls_done")


def dtls_detach(s: int, deadline: int = -1) -> int:
    """Take DTLS off a socket: not implemented (there are no DTLS sockets).

    Parameters:
        s: a handle.
        deadline: unused.
    Returns: never returns.
    Errors:
        EBADF: s is not an open handle.
        ENOTSUP: s is not a DTLS socket (none can exist).
    """
    lookup(current_context(), s, "dtls_detach")
    raise error(errno.ENOTSUP, "dtls_detach")
