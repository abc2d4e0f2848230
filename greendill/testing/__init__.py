"""Tools for testing code that uses greendill (and greendill itself).

`leaks` takes a snapshot of the calling thread's open handles and of the
process's open file descriptors, and `check_no_leaks` compares a later state
against it. The pytest plugin `greendill.testing.pytest_plugin` runs that
check around every test; enable it with

    pytest_plugins = ["greendill.testing.pytest_plugin"]

in a conftest.py. A test that means to leave something open is marked
`@pytest.mark.greendill_leaks_ok`.
"""

from __future__ import annotations

from ._leaks import Snapshot, check_no_leaks, snapshot

__all__ = ["Snapshot", "check_no_leaks", "snapshot"]
