"""The public API as a whole: names, exports, types and man-page docstrings.

Modelled on trio's test_exports: the names come from a checked-in list
(api_names.txt) drawn from libdill's and mmlib's references.
"""

from __future__ import annotations

import errno
import inspect
import pathlib
import re
import typing

import pytest

import greendill
from greendill import (
    _channels,
    _coroutines,
    _errors,
    _fd,
    _handles,
    _happyeyeballs,
    _http,
    _iface,
    _ipaddr,
    _ipc,
    _legacy,
    _mmipc,
    _prefix,
    _seqpacket,
    _socks5,
    _suffix,
    _tcp,
    _term,
    _time,
    _tls,
    _udp,
    _ws,
)

# Sections of api_names.txt that greendill implements so far.
IMPLEMENTED = {
    "core",
    "happyeyeballs",
    "http",
    "iface",
    "ipaddr",
    "ipc",
    "mmipc",
    "prefix",
    "seqpacket",
    "socks5",
    "suffix",
    "tcp",
    "term",
    "udp",
    "legacy",
    "ws",
    "tls",
    "dtls",
}
PRIVATE_MODULES = [
    _channels,
    _coroutines,
    _errors,
    _fd,
    _handles,
    _iface,
    _ipaddr,
    _ipc,
    _mmipc,
    _prefix,
    _seqpacket,
    _legacy,
    _suffix,
    _tcp,
    _term,
    _time,
    _udp,
    # Issue 7.
    _happyeyeballs,
    _http,
    _socks5,
    _ws,
    _tls,
]


def _read_names() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (pathlib.Path(__file__).parent / "api_names.txt").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        name, _, errnos = line.partition(":")
        current[name.strip()] = errnos.split()
    return sections


SECTIONS = _read_names()
NAMES = {name: errnos for section in IMPLEMENTED for name, errnos in SECTIONS[section].items()}
FUNCTIONS = sorted(name for name in NAMES if inspect.isfunction(getattr(greendill, name, None)))


@pytest.mark.parametrize("name", sorted(NAMES))
def test_name_is_exported_from_greendill(name: str) -> None:
    assert name in greendill.__all__
    obj = getattr(greendill, name)
    if inspect.isfunction(obj) or inspect.isclass(obj):
        assert obj.__module__ == "greendill"


def test_unimplemented_sections_are_not_exported_yet() -> None:
    for section, names in SECTIONS.items():
        if section not in IMPLEMENTED:
            assert not set(names) & set(greendill.__all__), (
                f"section {section} is implemented: list it"
            )


def test_every_private_public_name_is_exported_exactly_once() -> None:
    exported: dict[str, str] = {}
    for module in PRIVATE_MODULES:
        for name in module.__all__:
            if name in NAMES:
                assert name not in exported, f"{name} in {module.__name__} and {exported[name]}"
                exported[name] = module.__name__
    assert set(exported) == set(NAMES)
    assert len(greendill.__all__) == len(set(greendill.__all__))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_is_fully_annotated(name: str) -> None:
    fn = getattr(greendill, name)
    hints = typing.get_type_hints(fn)
    for param in inspect.signature(fn).parameters.values():
        assert param.name in hints, f"{name}: parameter {param.name} has no annotation"
    assert "return" in hints, f"{name}: no return annotation"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_docstring_reads_like_a_man_page(name: str) -> None:
    doc = inspect.getdoc(getattr(greendill, name)) or ""
    for section in ("Parameters:", "Returns:", "Errors"):
        assert section in doc, f"{name}: docstring has no {section} section"
    errors = doc[doc.index("Errors") :]
    documented = set(re.findall(r"\bE[A-Z]+\b", errors))
    missing = set(NAMES[name]) - documented
    assert not missing, f"{name}: docstring does not document {sorted(missing)}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_blocking_call_ends_with_deadline_minus_one(name: str) -> None:
    params = list(inspect.signature(getattr(greendill, name)).parameters.values())
    if "deadline" in [p.name for p in params]:
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert positional[-1].name == "deadline", (
            f"{name}: deadline is not the last positional parameter"
        )
        assert positional[-1].default == -1


def test_canceled_is_an_oserror_with_ecanceled() -> None:
    exc = _errors.error(errno.ECANCELED, "msleep")
    assert type(exc) is greendill.Canceled
    assert isinstance(exc, OSError)
    assert exc.errno == errno.ECANCELED
    assert str(exc) == "[Errno 125] msleep: Operation canceled"


def test_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", greendill.__version__)
