"""greendill: libdill's structured concurrency and sockets for Python, on gevent.

This module holds no logic. Each concern lives in a private module of its own
(`_handles`, `_coroutines`, `_channels`, ...), as libdill keeps one file per
protocol; the public names are re-exported here, and their `__module__` is set
to "greendill" so that tracebacks, reprs and docs show them where users find
them. Read the functions' docstrings as libdill's man pages.
"""

from __future__ import annotations

from ._channels import CHRECV as CHRECV
from ._channels import CHSEND as CHSEND
from ._channels import chclause as chclause
from ._channels import chdone as chdone
from ._channels import chmake as chmake
from ._channels import chmake_mem as chmake_mem
from ._channels import choose as choose
from ._channels import chrecv as chrecv
from ._channels import chsend as chsend
from ._channels import chstorage as chstorage
from ._coroutines import bundle as bundle
from ._coroutines import bundle_go as bundle_go
from ._coroutines import bundle_go_mem as bundle_go_mem
from ._coroutines import bundle_mem as bundle_mem
from ._coroutines import bundle_storage as bundle_storage
from ._coroutines import bundle_wait as bundle_wait
from ._coroutines import go as go
from ._coroutines import go_mem as go_mem
from ._coroutines import go_storage as go_storage
from ._coroutines import yield_ as yield_
from ._errors import Canceled as Canceled
from ._fd import fdclean as fdclean
from ._fd import fdin as fdin
from ._fd import fdout as fdout
from ._handles import hclose as hclose
from ._handles import hmake as hmake
from ._handles import hown as hown
from ._handles import hquery as hquery
from ._handles import hvfs as hvfs
from ._time import msleep as msleep
from ._time import now as now

__version__ = "0.1.0"

__all__ = [
    "CHRECV",
    "CHSEND",
    "Canceled",
    "bundle",
    "bundle_go",
    "bundle_go_mem",
    "bundle_mem",
    "bundle_storage",
    "bundle_wait",
    "chclause",
    "chdone",
    "chmake",
    "chmake_mem",
    "choose",
    "chrecv",
    "chsend",
    "chstorage",
    "fdclean",
    "fdin",
    "fdout",
    "go",
    "go_mem",
    "go_storage",
    "hclose",
    "hmake",
    "hown",
    "hquery",
    "hvfs",
    "msleep",
    "now",
    "yield_",
]


def _fix_module_names() -> None:
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("greendill."):
            obj.__module__ = "greendill"


_fix_module_names()
del _fix_module_names
