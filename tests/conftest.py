"""Shared fixtures; the leak-check plugin runs around every test."""

from __future__ import annotations

import os
import shutil

import pytest

pytest_plugins = ["greendill.testing.pytest_plugin", "errno_audit"]


@pytest.fixture
def socat() -> str:
    """The path of socat, the real peer of the socket tests.

    Missing socat skips the test on a developer's machine, and fails it in CI
    (CI=true), where .ci/run installs it: a peer test must never silently
    not run there.
    """
    path = shutil.which("socat")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("socat is not installed (.ci/run installs it)")
        pytest.skip("socat is not installed")
    return path


@pytest.fixture
def curl() -> str:
    """The path of curl, the real HTTP and SOCKS5 client of the protocol tests.

    Skipped on a developer's machine without it, failed in CI (CI=true),
    where .ci/run installs it.
    """
    path = shutil.which("curl")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("curl is not installed (.ci/run installs it)")
        pytest.skip("curl is not installed")
    return path
