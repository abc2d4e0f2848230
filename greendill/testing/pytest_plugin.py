"""pytest plugin: every test must close the handles and fds it opens.

Enable it with `pytest_plugins = ["greendill.testing.pytest_plugin"]`.

It also knows the two runs of a suite (see greendill.testing): a test marked
`greendill_patched_only(reason)` runs only under `-p greendill.testing.patched`,
one marked `greendill_unpatched_only(reason)` only without it; the skip
gives the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._scheduler import context
from ._leaks import check_no_leaks, snapshot
from ._modes import monkeypatched


def pytest_configure(config: pytest.Config) -> None:
    """Register greendill's markers, and make the hub before any test."""
    config.addinivalue_line(
        "markers", "greendill_leaks_ok: the test may leave greendill handles or fds open"
    )
    config.addinivalue_line(
        "markers",
        "greendill_patched_only(reason): the test makes sense only under monkeypatching",
    )
    config.addinivalue_line(
        "markers",
        "greendill_unpatched_only(reason): the test makes sense only without monkeypatching",
    )
    # The hub and its loop open fds of their own on first use: make them now,
    # not inside the first test.
    context()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked for the other run, with its reason."""
    wrong_run = "greendill_unpatched_only" if monkeypatched() else "greendill_patched_only"
    marker = item.get_closest_marker(wrong_run)
    if marker is not None:
        why = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
        run = "monkeypatched" if monkeypatched() else "plain"
        pytest.skip(f"not for the {run} run: {why}")


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
