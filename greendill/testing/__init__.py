"""Tools for testing code that uses greendill (and greendill itself).

`leaks` takes a snapshot of the calling thread's open handles and of the
process's open file descriptors, and `check_no_leaks` compares a later state
against it. The pytest plugin `greendill.testing.pytest_plugin` runs that
check around every test; enable it with

    pytest_plugins = ["greendill.testing.pytest_plugin"]

in a conftest.py. A test that means to leave something open is marked
`@pytest.mark.greendill_leaks_ok`.

A suite that must work with and without gevent's monkeypatching runs twice:
plainly, and with `-p greendill.testing.patched`, which patches before any
test module is imported. `monkeypatched()` tells a test which run it is in,
and the markers `greendill_patched_only(reason)` and
`greendill_unpatched_only(reason)` skip a test that makes sense in one run
only. `run_in_os_thread` runs a function in a real OS thread in both runs
(under patching, `threading.Thread` makes a greenlet, not a thread).
"""

from __future__ import annotations

from ._leaks import Snapshot, check_no_leaks, snapshot
from ._modes import monkeypatched, run_in_os_thread

__all__ = ["Snapshot", "check_no_leaks", "monkeypatched", "run_in_os_thread", "snapshot"]
