"""The greendill command, run as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys

import greendill.__main__ as cli


def test_demo_runs_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "greendill", "demo", "--jobs", "300", "--workers", "7"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "300 jobs, 7 worker coroutines" in done.stdout
    # sum of n*n for n < 300
    assert re.search(r"done: 300 results \(sum 8955050\) in \d+ ms", done.stdout)
    assert done.stderr == ""


def test_demo_in_process_leaves_nothing_open() -> None:
    out: list[str] = []
    assert cli.demo(100, 5, out) == 100
    assert out[-1].startswith("done: 100 results")


def test_unknown_command_fails() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "greendill", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "invalid choice" in done.stderr
