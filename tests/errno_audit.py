"""The errno audit: every errno the reference lists for a function comes out of it in some test.

tests/api_names.txt lists, for every public function, the errnos that
libdill's and mmlib's references give it. With --errno-audit, every public
function of greendill is wrapped for the run, and the errno of every OSError
that leaves it is noted. At the end of a whole-suite run, each listed
(function, errno) must have been seen, or be one the function never raises
(its docstring says so on that errno's line: "ENOMEM: never raised ..."), or be
in tests/errno_unreachable.txt with the reason this machine cannot produce it.
Anything else fails the run, with the list. A context manager
(deadline_scope) is watched through its __enter__ and __exit__.

Only a whole run is judged: with -k, -m, deselected tests, test paths of its
own, or failures, the audit says it did not judge and why.
"""

from __future__ import annotations

import errno
import functools
import inspect
import pathlib
import re
from typing import Any, Callable

import pytest

import greendill

HERE = pathlib.Path(__file__).parent
API_NAMES = HERE / "api_names.txt"
UNREACHABLE = HERE / "errno_unreachable.txt"

_seen: set[tuple[str, str]] = set()
_deselected: list[pytest.Item] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--errno-audit",
        action="store_true",
        help="fail a whole-suite run unless every errno of tests/api_names.txt comes out of its"
        " function in some test (or is documented never raised, or listed unreachable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--errno-audit"):
        return
    # Before collection: test modules that import names from greendill get the wrappers.
    for name in listed_functions():
        function = getattr(greendill, name, None)
        if inspect.isfunction(function):
            setattr(greendill, name, _noting(name, function))
        elif inspect.isclass(function) and hasattr(function, "__exit__"):
            # A context manager (deadline_scope): its errors leave the with
            # statement, through __enter__ or __exit__.
            for method in ("__enter__", "__exit__"):
                setattr(function, method, _noting(name, getattr(function, method)))


def _noting(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def noting(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            _seen.add((name, errno.errorcode.get(exc.errno or 0, str(exc.errno))))
            raise

    return noting


def pytest_deselected(items: list[pytest.Item]) -> None:
    _deselected.extend(items)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not config.getoption("--errno-audit"):
        return
    write = terminalreporter.write_line
    partial = _partial_run(config, exitstatus)
    if partial:
        write(f"errno audit: not judged ({partial})")
        return
    gaps = missing()
    if not gaps:
        write("errno audit: every listed errno was seen, is never raised, or is unreachable here")
        return
    write(f"errno audit: {len(gaps)} listed errnos never came out of their function in a test:")
    for name, code in gaps:
        write(f"  {name}: {code}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if config.getoption("--errno-audit") and not _partial_run(config, exitstatus) and missing():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _partial_run(config: pytest.Config, exitstatus: int) -> str:
    if exitstatus != 0:
        return "the run failed"
    if config.getoption("keyword") or config.getoption("markexpr"):
        return "-k or -m chose the tests"
    if _deselected:
        return f"{len(_deselected)} tests were deselected"
    if config.args and [pathlib.Path(a).resolve() for a in config.args] != [HERE.resolve()]:
        return "the run was given test paths of its own"
    return ""


def listed() -> list[tuple[str, str]]:
    """The (function, errno) pairs of api_names.txt."""
    pairs = []
    for line in API_NAMES.read_text().splitlines():
        if not line.strip() or line.startswith(("#", "[")):
            continue
        name, _, codes = line.partition(":")
        pairs.extend((name.strip(), code) for code in codes.split())
    return pairs


def listed_functions() -> set[str]:
    """Every name of api_names.txt, with errnos listed or not."""
    return {
        line.partition(":")[0].strip()
        for line in API_NAMES.read_text().splitlines()
        if line.strip() and not line.startswith(("#", "["))
    }


def unreachable() -> set[tuple[str, str]]:
    """The pairs of errno_unreachable.txt ("function: ERRNO ...  # why")."""
    pairs = set()
    for line in UNREACHABLE.read_text().splitlines():
        text = line.partition("#")[0].strip()
        if text:
            name, _, codes = text.partition(":")
            pairs.update((name.strip(), code) for code in codes.split())
    return pairs


def never_raised(name: str, code: str) -> bool:
    """Whether the function's docstring says, on code's line, that it never raises it."""
    doc = inspect.getdoc(getattr(greendill, name, None)) or ""
    return re.search(rf"\b{code}\b[^\n]*\bnever\b", doc) is not None


def missing() -> list[tuple[str, str]]:
    allowed = unreachable()
    return [
        (name, code)
        for name, code in listed()
        if (name, code) not in _seen
        and (name, code) not in allowed
        and not never_raised(name, code)
    ]
