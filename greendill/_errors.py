"""Errors: libdill's -1 and errno become an OSError carrying that errno.

Every failure in greendill is raised through `error`, so the message always
names the function (and the address, where there is one) and Python picks the
built-in subclass for the errno (TimeoutError for ETIMEDOUT, BrokenPipeError
for EPIPE, ...). ECANCELED is the one errno with a class of its own, because
cancellation is how structured concurrency ends work and callers often want
to tell it apart from real failures.
"""

from __future__ import annotations

import errno
import os
from typing import Optional

__all__ = ["Canceled", "error"]


class Canceled(OSError):
    """The coroutine was canceled: errno ECANCELED.

    Raised by every blocking call in a coroutine whose bundle is being
    closed with hclose, and by every later one: cancellation is sticky.
    It is an OSError so that code written for libdill's -1/errno
    convention handles it like any other failure. greendill raises it as
    Canceled(errno.ECANCELED, message); make your own the same way.
    (No __init__ of its own: it is raised on every cancel, and a
    Python-level __init__ would double the cost of making it.)
    """


_messages: dict[tuple[int, str], str] = {}
# ECANCELED's messages by function alone: every cancel raises one, and a
# lookup by string costs half of one by (code, function) tuple.
_canceled_messages: dict[str, str] = {}
_ECANCELED = errno.ECANCELED


def error(code: int, function: str, address: Optional[str] = None) -> OSError:
    """Make the exception for libdill's errno code raised by function."""
    if code == _ECANCELED:
        message = _canceled_messages.get(function)
        if message is None:
            message = _canceled_messages[function] = f"{function}: {os.strerror(code)}"
        return Canceled(code, message)
    message = _messages.get((code, function))
    if message is None:
        message = _messages[code, function] = f"{function}: {os.strerror(code)}"
    if address is None:
        return OSError(code, message)
    return OSError(code, message, address)
