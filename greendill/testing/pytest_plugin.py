"""pytest plugin: every test must close the handles and fds it opens.

Enable it with `pytest_plugins = ["greendill.testing.pytest_plugin"]`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._scheduler import context
from ._leaks import check_no_leaks, snapshot


def pytest_configure(config: pytest.Config) -> None:
    """Register the greendill_leaks_ok marker, and make the hub before any test."""
    config.addinivalue_line(
        "markers", "greendill_leaks_ok: the test may leave greendill handles or fds open"
    )
    # The hub and its loop open fds of their own on first use: make them now,
    # not inside the first test.
    context()


@pytest.fixture(autouse=True)
def greendill_no_leaks(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves greendill handles or file descriptors open."""
    if request.node.get_closest_marker("greendill_leaks_ok"):
        yield
        return
    before = snapshot()
    yield
    problems = check_no_leaks(before)
    if problems:
        pytest.fail("leaked:\n  " + "\n  ".join(problems), pytrace=False)
