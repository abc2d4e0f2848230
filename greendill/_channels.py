"""Channels: unbuffered rendezvous between coroutines, with two ends.

chmake gives two handles, the two ends of one channel. A value sent on one
end is received on the other, never on the same one, and only when a sender
and a receiver meet: nothing is buffered. A sender that finds a receiver
waiting hands it the value and goes on without blocking; otherwise it waits
in line (FIFO) for one, and the same holds for receivers. Values are any
Python objects.

chdone(end) says "end sends no more": later sends on it and receives on the
other end fail with EPIPE, and those waiting now are woken with EPIPE; the
other direction goes on working. Closing one end wakes nobody; once both are
closed, everyone still waiting on the channel gets EPIPE.

choose waits on several clauses at once: it performs the first clause (in
list order) that can be done at once, or blocks on all and performs the one
whose peer comes first.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Sequence
from typing import Any, NoReturn

from greenlet import getcurrent

from ._errors import error
from ._handles import lookup, new_handle
from ._scheduler import (
    CANCEL,
    TIMEOUT,
    Context,
    Waiter,
    block,
    cannot_block,
    check_can_block,
    context,
    drain,
    leave,
    park,
    thread_local,
    waiter_for,
    wake,
)
from ._time import check_deadline, expired

__all__ = [
    "CHRECV",
    "CHSEND",
    "chclause",
    "chdone",
    "chmake",
    "chmake_mem",
    "choose",
    "chrecv",
    "chsend",
    "chstorage",
]

#: choose clause operation: send a value.
CHSEND = 1
#: choose clause operation: receive a value.
CHRECV = 2


class _Entry(Waiter):
    """One greenlet waiting in one channel queue: its own waiter.

    Made without __init__, its fields set by the caller: one is made on
    every wait of chsend and chrecv (always this class, never a Coroutine
    as its own entry: the interpreter's attribute caches work for one
    class per site, and mixing two cost more than the allocation saved).
    value is the value to send, or the value received (set by the sender
    before it wakes the receiver).
    """

    __slots__ = ("value",)
    __init__ = object.__init__
    value: Any


class _ChoiceEntry:
    """One clause of a blocked choose, in one channel queue.

    All the clauses of one choose share one waiter (group), so that the
    first peer to come wakes it and the others skip it. A peer tells a
    choice from a plain entry by its class (see _waiter_of), and wakes the
    group with the clause's index.
    """

    __slots__ = ("group", "index", "value")
    group: Waiter
    index: int
    value: Any


def _waiter_of(entry: Any) -> Any:
    """The waiter a peer wakes for entry (the hot paths write this out)."""
    return entry.group if entry.__class__ is _ChoiceEntry else entry


class _Direction:
    """Values going one way through a channel, from one end to the other.

    senders wait for a receiver, receivers for a sender; at most one of the
    two queues is non-empty. done is set by chdone on the sending end.
    """

    __slots__ = ("done", "receivers", "senders")

    def __init__(self) -> None:
        self.done = False
        self.senders: deque[Any] = deque()
        self.receivers: deque[Any] = deque()

    def fail_all(self, c: Context) -> None:
        """Wake everyone waiting in this direction with EPIPE."""
        for queue in (self.senders, self.receivers):
            while queue:
                entry = queue.popleft()
                w = _waiter_of(entry)
                if not w.done:
                    wake(c, w, (entry.index if w is not entry else 0, errno.EPIPE))


class chstorage:
    """Memory for a channel, for chmake_mem (libdill's struct chstorage).

    The channel and both its ends live in this object; it can be used again
    once both ends are closed.
    """

    __slots__ = ("directions", "ends", "open_ends")

    def __init__(self) -> None:
        self.directions = (_Direction(), _Direction())
        self.open_ends = 0
        # End i sends in direction i and receives from direction 1-i.
        self.ends = (
            _End(self, self.directions[0], self.directions[1]),
            _End(self, self.directions[1], self.directions[0]),
        )


class _End:
    """One end of a channel: the object behind its handle."""

    __slots__ = ("channel", "incoming", "outgoing")

    def __init__(self, channel: chstorage, outgoing: _Direction, incoming: _Direction) -> None:
        self.channel = channel
        self.outgoing = outgoing
        self.incoming = incoming

    def query(self, type: object) -> Any:
        return None

    def close(self) -> None:
        ch = self.channel
        ch.open_ends -= 1
        if ch.open_ends == 0:
            c = context()
            for direction in ch.directions:
                direction.fail_all(c)
                direction.done = False


def _end(c: Context, h: int, function: str) -> _End:
    """Return the channel end of handle h (EBADF, ENOTSUP otherwise)."""
    obj = lookup(c, h, function)
    if obj.__class__ is not _End:
        raise error(errno.ENOTSUP, function)
    return obj  # type: ignore[no-any-return]


def chmake() -> tuple[int, int]:
    """Create a channel.

    Parameters: none.
    Returns: the handles of its two ends, (ch0, ch1): a value sent on ch0 is
        received on ch1 and the other way round.
    Errors:
        ECANCELED: the calling coroutine was canceled.
        EMFILE, ENFILE, ENOMEM: never raised (Python raises MemoryError).
    """
    return _chmake(chstorage(), "chmake")


def chmake_mem(mem: chstorage) -> tuple[int, int]:
    """Create a channel that lives in mem.

    Parameters:
        mem: a chstorage() whose ends are both closed (or never opened).
    Returns: the handles of its two ends, as chmake.
    Errors:
        EBUSY: an end of the channel in mem is still open.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: mem is None.
        EMFILE, ENFILE, ENOMEM: never raised (Python raises MemoryError).
    """
    if mem is None:
        raise error(errno.EINVAL, "chmake_mem")
    if not isinstance(mem, chstorage):
        raise TypeError(f"chmake_mem: mem is a chstorage(), not {type(mem).__name__}")
    if mem.open_ends:
        raise error(errno.EBUSY, "chmake_mem")
    return _chmake(mem, "chmake_mem")


def _chmake(mem: chstorage, function: str) -> tuple[int, int]:
    c = context()
    check_can_block(c, function)
    mem.open_ends = 2
    return new_handle(c, mem.ends[0]), new_handle(c, mem.ends[1])


def chsend(ch: int, val: Any, deadline: int = -1) -> None:
    """Send val to a receiver on the other end of the channel.

    If a receiver is waiting, val is handed to it and chsend returns at once;
    otherwise chsend waits for one. Nothing is buffered.

    Parameters:
        ch: an end of a channel.
        val: any object.
        deadline: a point in time in ms (see now()); -1 for never, 0 to send
            only to a receiver that is already waiting.
    Returns: None.
    Errors:
        EBADF: ch is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: never raised (C's NULL buffer has no Python counterpart).
        EMSGSIZE: never raised: values are objects, not fixed-size buffers.
        ENOTSUP: ch is not a channel end.
        EPIPE: chdone was called on ch, or both ends were closed while waiting.
        ETIMEDOUT: the deadline passed before a receiver came.
    """
    # chsend and chrecv are the channel ping-pong path: the context, the
    # handle lookup and wake() are written out here to save their calls,
    # and the current greenlet is only looked at when the call must wait
    # or some greenlet of this thread cannot block. The table is indexed
    # rather than searched with get(), and ch's type checked only after
    # (1.0 and True find handle 1; _end sorts them out): 4-8% of a round
    # trip on 3.11.
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    if c.nonblocking and cannot_block(c, getcurrent()):
        raise error(errno.ECANCELED, "chsend")
    try:
        end: Any = c.handles[ch]
    except (KeyError, TypeError):
        end = None
    if end.__class__ is not _End or ch.__class__ is not int:
        end = _end(c, ch, "chsend")
    direction = end.outgoing
    if direction.done:
        raise error(errno.EPIPE, "chsend")
    receivers = direction.receivers
    while receivers:
        entry = receivers.popleft()
        # _waiter_of(entry), and the index choose wants, written out.
        if entry.__class__ is _ChoiceEntry:
            w = entry.group
            index = entry.index
        else:
            w = entry
            index = 0
        if not w.done:
            entry.value = val
            w.done = True
            c.ready.append((w.g, index))
            if not c.drain_pending:
                c.drain_pending = True
                c.run_callback(drain, c)
            return
    if deadline != -1:
        check_deadline(deadline, "chsend")
        if expired(deadline):
            raise error(errno.ETIMEDOUT, "chsend")
    mine = _Entry()
    mine.g = getcurrent()
    mine.done = False
    mine.value = val
    if deadline < 0:
        outcome = park(c, mine, direction.senders)
    else:
        outcome = block(c, mine, deadline, direction.senders)
    if outcome.__class__ is not int:
        _raise_outcome(outcome, "chsend")


def chrecv(ch: int, deadline: int = -1) -> Any:
    """Receive a value sent on the other end of the channel.

    Parameters:
        ch: an end of a channel.
        deadline: a point in time in ms (see now()); -1 for never, 0 to take
            a value only from a sender that is already waiting.
    Returns: the value.
    Errors:
        EBADF: ch is not an open handle.
        ECANCELED: the calling coroutine was canceled.
        EINVAL: never raised (C's NULL buffer has no Python counterpart).
        EMSGSIZE: never raised: values are objects, not fixed-size buffers.
        ENOTSUP: ch is not a channel end.
        EPIPE: chdone was called on the other end, or both ends were closed
            while waiting.
        ETIMEDOUT: the deadline passed before a sender came.
    """
    try:
        c = thread_local.context
    except AttributeError:
        c = context()
    if c.nonblocking and cannot_block(c, getcurrent()):
        raise error(errno.ECANCELED, "chrecv")
    try:
        end: Any = c.handles[ch]
    except (KeyError, TypeError):
        end = None
    if end.__class__ is not _End or ch.__class__ is not int:
        end = _end(c, ch, "chrecv")
    direction = end.incoming
    if direction.done:
        raise error(errno.EPIPE, "chrecv")
    senders = direction.senders
    while senders:
        entry = senders.popleft()
        if entry.__class__ is _ChoiceEntry:
            w = entry.group
            index = entry.index
        else:
            w = entry
            index = 0
        if not w.done:
            w.done = True
            c.ready.append((w.g, index))
            if not c.drain_pending:
                c.drain_pending = True
                c.run_callback(drain, c)
            return entry.value
    if deadline != -1:
        check_deadline(deadline, "chrecv")
        if expired(deadline):
            raise error(errno.ETIMEDOUT, "chrecv")
    mine = _Entry()
    mine.g = getcurrent()
    mine.done = False
    if deadline < 0:
        outcome = park(c, mine, direction.receivers)
    else:
        outcome = block(c, mine, deadline, direction.receivers)
    if outcome.__class__ is not int:
        _raise_outcome(outcome, "chrecv")
    return mine.value


def _raise_outcome(outcome: Any, function: str) -> NoReturn:
    if outcome is TIMEOUT:
        raise error(errno.ETIMEDOUT, function)
    if outcome is CANCEL:
        raise error(errno.ECANCELED, function)
    raise error(outcome[1], function)


def chdone(ch: int) -> None:
    """Say that no more values will be sent on ch (half-close).

    Later chsend on ch, and chrecv on the other end, fail with EPIPE, and so
    do those that wait now. The other direction keeps working.

    Parameters:
        ch: an end of a channel.
    Returns: None.
    Errors:
        EBADF: ch is not an open handle.
        ENOTSUP: ch is not a channel end.
        EPIPE: chdone was already called on ch.
    """
    c = context()
    direction = _end(c, ch, "chdone").outgoing
    if direction.done:
        raise error(errno.EPIPE, "chdone")
    direction.done = True
    direction.fail_all(c)


class chclause:
    """One clause of choose: an operation on a channel end.

    op is CHSEND or CHRECV; ch the channel end; val the value to send (for
    CHSEND). After choose performs a CHRECV clause, val holds the value
    received, as libdill leaves it in the clause's buffer.
    """

    __slots__ = ("ch", "op", "val")

    def __init__(self, op: int, ch: int, val: Any = None) -> None:
        self.op = op
        self.ch = ch
        self.val = val

    def __repr__(self) -> str:
        name = {CHSEND: "CHSEND", CHRECV: "CHRECV"}.get(self.op, repr(self.op))
        return f"chclause({name}, {self.ch!r}, {self.val!r})"


def _clause_error(code: int, index: int) -> OSError:
    exc = error(code, f"choose: clause {index}")
    exc.index = index  # type: ignore[attr-defined]
    return exc


def choose(clauses: list[chclause], deadline: int = -1) -> int:
    """Perform one of several channel operations.

    The clauses are scanned in order and the first one that can be performed
    at once is; otherwise choose waits on all of them, and performs the one
    whose peer comes first. A clause that fails (a bad handle, a done
    channel) is reported only if the scan reaches it.

    Parameters:
        clauses: a list of chclause; an empty list waits for the deadline.
        deadline: a point in time in ms (see now()); -1 for never, 0 to
            perform a clause only if one can be performed at once.
    Returns: the index of the clause performed; a CHRECV clause's val holds
        the value received.
    Errors (these carry the failing clause's index in an `index` attribute):
        EBADF: the clause's ch is not an open handle.
        EINVAL: the clause's op is neither CHSEND nor CHRECV.
        EMSGSIZE: never raised: values are objects, not fixed-size buffers.
        ENOTSUP: the clause's ch is not a channel end.
        EPIPE: the clause's channel is done in its direction, or both its
            ends were closed while waiting.
    Errors (no index):
        ECANCELED: the calling coroutine was canceled.
        EINVAL: clauses is None.
        ETIMEDOUT: the deadline passed before any clause could be performed.
    """
    c = context()
    cur = getcurrent()
    if c.nonblocking and cannot_block(c, cur):
        raise error(errno.ECANCELED, "choose")
    if clauses is None:
        raise error(errno.EINVAL, "choose")
    plan: list[tuple[deque[Any], Any]] = []
    for index, clause in enumerate(clauses):
        if not isinstance(clause, chclause):
            raise TypeError(f"choose: clause {index} is a {type(clause).__name__}, not a chclause")
        op = clause.op
        if op not in (CHSEND, CHRECV):
            raise _clause_error(errno.EINVAL, index)
        try:
            end = _end(c, clause.ch, "choose")
        except OSError as exc:
            raise _clause_error(exc.errno or errno.EBADF, index) from None
        if op == CHSEND:
            direction = end.outgoing
            if direction.done:
                raise _clause_error(errno.EPIPE, index)
            peers = direction.receivers
            while peers:
                entry = peers.popleft()
                w = _waiter_of(entry)
                if not w.done:
                    entry.value = clause.val
                    wake(c, w, entry.index if w is not entry else 0)
                    return index
            plan.append((direction.senders, clause.val))
        else:
            direction = end.incoming
            if direction.done:
                raise _clause_error(errno.EPIPE, index)
            peers = direction.senders
            while peers:
                entry = peers.popleft()
                w = _waiter_of(entry)
                if not w.done:
                    clause.val = entry.value
                    entry.value = None
                    wake(c, w, entry.index if w is not entry else 0)
                    return index
            plan.append((direction.receivers, None))
    if expired(deadline):
        raise error(errno.ETIMEDOUT, "choose")
    check_deadline(deadline, "choose")
    group = waiter_for(cur)
    entries = [_choice_entry(group, index, value) for index, (_, value) in enumerate(plan)]
    for (queue, _), entry in zip(plan, entries):
        queue.append(entry)
    try:
        outcome = block(c, group, deadline)
    except BaseException:
        _remove_all(plan, entries, -1)
        raise
    if outcome.__class__ is int:
        _remove_all(plan, entries, outcome)
        clause = clauses[outcome]
        if clause.op == CHRECV:
            clause.val = entries[outcome].value
        return outcome  # type: ignore[no-any-return]
    if outcome is TIMEOUT or outcome is CANCEL:
        _remove_all(plan, entries, -1)
        _raise_outcome(outcome, "choose")
    _remove_all(plan, entries, outcome[0])
    raise _clause_error(outcome[1], outcome[0])


def _choice_entry(group: Waiter, index: int, value: Any) -> _ChoiceEntry:
    entry = _ChoiceEntry()
    entry.group = group
    entry.index = index
    entry.value = value
    return entry


def _remove_all(plan: list[tuple[deque[Any], Any]], entries: Sequence[Any], taken: int) -> None:
    # The entry of clause taken was popped by the peer; the others are still queued.
    for index, ((queue, _), entry) in enumerate(zip(plan, entries)):
        if index != taken:
            leave(queue, entry)
