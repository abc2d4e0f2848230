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

A suite that must work with and without gevent's monkeypatching runs twice:
plainly, and with `-p greendill.testing.patched`, which patches before any
test module is imported. `monkeypatched()` tells a test which run it is in,
and the markers `greendill_patched_only(reason)` and
`greendill_unpatched_only(reason)` skip a test that makes sense in one run
only. `run_in_os_thread` runs a function in a real OS thread in both runs
(under patching, `threading.Thread` makes a greenlet, not a thread).
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
from ._modes import monkeypatched, run_in_os_thread

__all__ = [
    "LATCH_ANY",
    "LATCH_DIRECTION",
    "LATCH_NONE",
    "Snapshot",
    "check_bsock",
    "check_msock",
    "check_no_leaks",
    "monkeypatched",
    "run_in_os_thread",
    "snapshot",
]
