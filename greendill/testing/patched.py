"""pytest plugin: run a test suite in a monkeypatched process.

    python -m pytest -p greendill.testing.patched

`gevent.monkey.patch_all()` runs when pytest imports this plugin: `-p`
plugins are imported while pytest parses its command line, before any
conftest.py or test module, so every test and every module it imports sees
the patched socket, time, select, threading, subprocess, queue, ... pytest
itself has imported socket, select, threading and subprocess by then; gevent
patches those modules in place (a program should still patch first thing:
see docs/design.md, "Beside gevent's monkeypatching"). greendill is imported just
before patching here (this module is inside it), which is one of the two
orders greendill supports; tests/test_legacy.py runs both in subprocesses.

With the plugin, `greendill.testing.monkeypatched()` is true, and tests
marked `greendill_unpatched_only` are skipped (see pytest_plugin).
"""

from __future__ import annotations

import warnings

import pytest
from gevent import monkey

# pytest has imported its own modules by now, and one of them keeps the real
# time.sleep on purpose (_pytest.timing): greendill's check warns about it.
# What patching found goes into the report header instead of every run's
# warnings summary.
with warnings.catch_warnings(record=True) as _found:
    warnings.simplefilter("always")
    monkey.patch_all()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say in the header that the suite runs monkeypatched, and what patching found."""
    lines = ["greendill: gevent.monkey.patch_all() ran before the tests (patched mode)"]
    lines += [f"  at patch time: {w.category.__name__}: {w.message}" for w in _found]
    return lines
