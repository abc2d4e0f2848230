"""Tools for testing code that uses greendill (and greendill itself).

`leaks` takes a snapshot of the calling thread's open handles and of the
process's open file descriptors, and `check_no_leaks` compares a later state
against it. The pytest plugin `greendill.testing.pytest_plugin` runs that
check around every test; enable it with

    pytest_plugins = ["greendill.testing.pytest_plugin"]

in a conftest.py. A test that means to leave something open is marked
`@pytest.mark.greendill_leaks_ok`.

`check_bsock` and `check_msock` check that a pair of sockets keeps the
byte-stream or message contract: run them on your own protocol layer (see
docs/layers.md).
"""

from __future__ import annotations

from ._check_sockets import (
    LATCH_ANY,
    LATCH_DIRECTION,
    LATCH_NONE,
    check_bsock,
    check_msock,
)
from ._leaks import Snapshot, check_no_leaks, snapshot

__all__ = [
    "LATCH_ANY",
    "LATCH_DIRECTION",
    "LATCH_NONE",
    "Snapshot",
    "check_bsock",
    "check_msock",
    "check_no_leaks",
    "snapshot",
]
