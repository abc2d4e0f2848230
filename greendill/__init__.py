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
from ._happyeyeballs import happyeyeballs_connect as happyeyeballs_connect
from ._http import http_attach as http_attach
from ._http import http_attach_mem as http_attach_mem
from ._http import http_detach as http_detach
from ._http import http_done as http_done
from ._http import http_recvfield as http_recvfield
from ._http import http_recvrequest as http_recvrequest
from ._http import http_recvstatus as http_recvstatus
from ._http import http_sendfield as http_sendfield
from ._http import http_sendrequest as http_sendrequest
from ._http import http_sendstatus as http_sendstatus
from ._http import http_storage as http_storage
from ._iface import brecv as brecv
from ._iface import brecv_into as brecv_into
from ._iface import brecvl as brecvl
from ._iface import bsend as bsend
from ._iface import bsendl as bsendl
from ._iface import bsock_type as bsock_type
from ._iface import bsock_vfs as bsock_vfs
from ._iface import mrecv as mrecv
from ._iface import mrecv_into as mrecv_into
from ._iface import mrecvl as mrecvl
from ._iface import msend as msend
from ._iface import msendl as msendl
from ._iface import msock_type as msock_type
from ._iface import msock_vfs as msock_vfs
from ._ipaddr import IPADDR_IPV4 as IPADDR_IPV4
from ._ipaddr import IPADDR_IPV6 as IPADDR_IPV6
from ._ipaddr import IPADDR_MAXSTRLEN as IPADDR_MAXSTRLEN
from ._ipaddr import IPADDR_PREF_IPV4 as IPADDR_PREF_IPV4
from ._ipaddr import IPADDR_PREF_IPV6 as IPADDR_PREF_IPV6
from ._ipaddr import ipaddr as ipaddr
from ._ipaddr import ipaddr_equal as ipaddr_equal
from ._ipaddr import ipaddr_family as ipaddr_family
from ._ipaddr import ipaddr_len as ipaddr_len
from ._ipaddr import ipaddr_local as ipaddr_local
from ._ipaddr import ipaddr_port as ipaddr_port
from ._ipaddr import ipaddr_remote as ipaddr_remote
from ._ipaddr import ipaddr_remotes as ipaddr_remotes
from ._ipaddr import ipaddr_setport as ipaddr_setport
from ._ipaddr import ipaddr_sockaddr as ipaddr_sockaddr
from ._ipaddr import ipaddr_str as ipaddr_str
from ._ipc import ipc_accept as ipc_accept
from ._ipc import ipc_accept_mem as ipc_accept_mem
from ._ipc import ipc_close as ipc_close
from ._ipc import ipc_connect as ipc_connect
from ._ipc import ipc_connect_mem as ipc_connect_mem
from ._ipc import ipc_done as ipc_done
from ._ipc import ipc_fromfd as ipc_fromfd
from ._ipc import ipc_fromfd_mem as ipc_fromfd_mem
from ._ipc import ipc_listen as ipc_listen
from ._ipc import ipc_listen_mem as ipc_listen_mem
from ._ipc import ipc_listener_fromfd as ipc_listener_fromfd
from ._ipc import ipc_listener_fromfd_mem as ipc_listener_fromfd_mem
from ._ipc import ipc_listener_storage as ipc_listener_storage
from ._ipc import ipc_pair as ipc_pair
from ._ipc import ipc_pair_mem as ipc_pair_mem
from ._ipc import ipc_pair_storage as ipc_pair_storage
from ._ipc import ipc_recvfd as ipc_recvfd
from ._ipc import ipc_sendfd as ipc_sendfd
from ._ipc import ipc_storage as ipc_storage
from ._legacy import MonkeyPatchWarning as MonkeyPatchWarning
from ._legacy import check_monkey_patching as check_monkey_patching
from ._legacy import deadline_scope as deadline_scope
from ._legacy import install_check as _install_check
from ._legacy import ipc_tosocket as ipc_tosocket
from ._legacy import tcp_tosocket as tcp_tosocket
from ._mmipc import MSG_CTRUNC as MSG_CTRUNC
from ._mmipc import MSG_TRUNC as MSG_TRUNC
from ._mmipc import ipc_seqpacket_recvmsg as ipc_seqpacket_recvmsg
from ._mmipc import ipc_seqpacket_sendmsg as ipc_seqpacket_sendmsg
from ._mmipc import mm_close as mm_close
from ._mmipc import mm_ipc_connect as mm_ipc_connect
from ._mmipc import mm_ipc_connected_pair as mm_ipc_connected_pair
from ._mmipc import mm_ipc_msg as mm_ipc_msg
from ._mmipc import mm_ipc_recvmsg as mm_ipc_recvmsg
from ._mmipc import mm_ipc_sendmsg as mm_ipc_sendmsg
from ._mmipc import mm_ipc_srv as mm_ipc_srv
from ._mmipc import mm_ipc_srv_accept as mm_ipc_srv_accept
from ._mmipc import mm_ipc_srv_create as mm_ipc_srv_create
from ._mmipc import mm_ipc_srv_destroy as mm_ipc_srv_destroy
from ._prefix import PREFIX_BIG_ENDIAN as PREFIX_BIG_ENDIAN
from ._prefix import PREFIX_LITTLE_ENDIAN as PREFIX_LITTLE_ENDIAN
from ._prefix import prefix_attach as prefix_attach
from ._prefix import prefix_attach_mem as prefix_attach_mem
from ._prefix import prefix_detach as prefix_detach
from ._prefix import prefix_storage as prefix_storage
from ._readahead import ReadAhead as ReadAhead
from ._seqpacket import ipc_seqpacket_accept as ipc_seqpacket_accept
from ._seqpacket import ipc_seqpacket_accept_mem as ipc_seqpacket_accept_mem
from ._seqpacket import ipc_seqpacket_close as ipc_seqpacket_close
from ._seqpacket import ipc_seqpacket_connect as ipc_seqpacket_connect
from ._seqpacket import ipc_seqpacket_connect_mem as ipc_seqpacket_connect_mem
from ._seqpacket import ipc_seqpacket_done as ipc_seqpacket_done
from ._seqpacket import ipc_seqpacket_fromfd as ipc_seqpacket_fromfd
from ._seqpacket import ipc_seqpacket_fromfd_mem as ipc_seqpacket_fromfd_mem
from ._seqpacket import ipc_seqpacket_listen as ipc_seqpacket_listen
from ._seqpacket import ipc_seqpacket_listen_mem as ipc_seqpacket_listen_mem
from ._seqpacket import ipc_seqpacket_listener_fromfd as ipc_seqpacket_listener_fromfd
from ._seqpacket import ipc_seqpacket_listener_fromfd_mem as ipc_seqpacket_listener_fromfd_mem
from ._seqpacket import ipc_seqpacket_listener_storage as ipc_seqpacket_listener_storage
from ._seqpacket import ipc_seqpacket_pair as ipc_seqpacket_pair
from ._seqpacket import ipc_seqpacket_pair_mem as ipc_seqpacket_pair_mem
from ._seqpacket import ipc_seqpacket_pair_storage as ipc_seqpacket_pair_storage
from ._seqpacket import ipc_seqpacket_storage as ipc_seqpacket_storage
from ._socks5 import SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED as SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED
from ._socks5 import SOCKS5_BIND as SOCKS5_BIND
from ._socks5 import SOCKS5_COMMAND_NOT_SUPPORTED as SOCKS5_COMMAND_NOT_SUPPORTED
from ._socks5 import SOCKS5_CONNECT as SOCKS5_CONNECT
from ._socks5 import SOCKS5_CONNECTION_NOT_ALLOWED as SOCKS5_CONNECTION_NOT_ALLOWED
from ._socks5 import SOCKS5_CONNECTION_REFUSED as SOCKS5_CONNECTION_REFUSED
from ._socks5 import SOCKS5_GENERAL_FAILURE as SOCKS5_GENERAL_FAILURE
from ._socks5 import SOCKS5_HOST_UNREACHABLE as SOCKS5_HOST_UNREACHABLE
from ._socks5 import SOCKS5_NETWORK_UNREACHABLE as SOCKS5_NETWORK_UNREACHABLE
from ._socks5 import SOCKS5_SUCCESS as SOCKS5_SUCCESS
from ._socks5 import SOCKS5_TTL_EXPIRED as SOCKS5_TTL_EXPIRED
from ._socks5 import SOCKS5_UDP_ASSOCIATE as SOCKS5_UDP_ASSOCIATE
from ._socks5 import socks5_client_connect as socks5_client_connect
from ._socks5 import socks5_client_connectbyname as socks5_client_connectbyname
from ._socks5 import socks5_proxy_auth as socks5_proxy_auth
from ._socks5 import socks5_proxy_recvcommand as socks5_proxy_recvcommand
from ._socks5 import socks5_proxy_recvcommandbyname as socks5_proxy_recvcommandbyname
from ._socks5 import socks5_proxy_sendreply as socks5_proxy_sendreply
from ._suffix import suffix_attach as suffix_attach
from ._suffix import suffix_attach_mem as suffix_attach_mem
from ._suffix import suffix_detach as suffix_detach
from ._suffix import suffix_storage as suffix_storage
from ._tcp import tcp_accept as tcp_accept
from ._tcp import tcp_accept_mem as tcp_accept_mem
from ._tcp import tcp_close as tcp_close
from ._tcp import tcp_connect as tcp_connect
from ._tcp import tcp_connect_mem as tcp_connect_mem
from ._tcp import tcp_done as tcp_done
from ._tcp import tcp_fromfd as tcp_fromfd
from ._tcp import tcp_fromfd_mem as tcp_fromfd_mem
from ._tcp import tcp_listen as tcp_listen
from ._tcp import tcp_listen_mem as tcp_listen_mem
from ._tcp import tcp_listener_fromfd as tcp_listener_fromfd
from ._tcp import tcp_listener_fromfd_mem as tcp_listener_fromfd_mem
from ._tcp import tcp_listener_storage as tcp_listener_storage
from ._tcp import tcp_storage as tcp_storage
from ._term import term_attach as term_attach
from ._term import term_attach_mem as term_attach_mem
from ._term import term_detach as term_detach
from ._term import term_done as term_done
from ._term import term_storage as term_storage
from ._time import msleep as msleep
from ._time import now as now
from ._tls import dtls_attach_client as dtls_attach_client
from ._tls import dtls_attach_client_mem as dtls_attach_client_mem
from ._tls import dtls_attach_server as dtls_attach_server
from ._tls import dtls_attach_server_mem as dtls_attach_server_mem
from ._tls import dtls_detach as dtls_detach
from ._tls import dtls_done as dtls_done
from ._tls import dtls_storage as dtls_storage
from ._tls import tls_attach_client as tls_attach_client
from ._tls import tls_attach_client_mem as tls_attach_client_mem
from ._tls import tls_attach_server as tls_attach_server
from ._tls import tls_attach_server_mem as tls_attach_server_mem
from ._tls import tls_detach as tls_detach
from ._tls import tls_done as tls_done
from ._tls import tls_storage as tls_storage
from ._udp import udp_open as udp_open
from ._udp import udp_open_mem as udp_open_mem
from ._udp import udp_recv as udp_recv
from ._udp import udp_recv_into as udp_recv_into
from ._udp import udp_recvl as udp_recvl
from ._udp import udp_send as udp_send
from ._udp import udp_sendl as udp_sendl
from ._udp import udp_storage as udp_storage
from ._ws import WS_BINARY as WS_BINARY
from ._ws import WS_KEY_SIZE as WS_KEY_SIZE
from ._ws import WS_NOHTTP as WS_NOHTTP
from ._ws import WS_TEXT as WS_TEXT
from ._ws import ws_attach_client as ws_attach_client
from ._ws import ws_attach_client_mem as ws_attach_client_mem
from ._ws import ws_attach_server as ws_attach_server
from ._ws import ws_attach_server_mem as ws_attach_server_mem
from ._ws import ws_detach as ws_detach
from ._ws import ws_done as ws_done
from ._ws import ws_recv as ws_recv
from ._ws import ws_recvl as ws_recvl
from ._ws import ws_request_key as ws_request_key
from ._ws import ws_response_key as ws_response_key
from ._ws import ws_send as ws_send
from ._ws import ws_sendl as ws_sendl
from ._ws import ws_status as ws_status
from ._ws import ws_storage as ws_storage

__version__ = "0.1.0"

__all__ = [
    "CHRECV",
    "CHSEND",
    "IPADDR_IPV4",
    "IPADDR_IPV6",
    "IPADDR_MAXSTRLEN",
    "IPADDR_PREF_IPV4",
    "IPADDR_PREF_IPV6",
    "MSG_CTRUNC",
    "MSG_TRUNC",
    "PREFIX_BIG_ENDIAN",
    "PREFIX_LITTLE_ENDIAN",
    "SOCKS5_ADDRESS_TYPE_NOT_SUPPORTED",
    "SOCKS5_BIND",
    "SOCKS5_COMMAND_NOT_SUPPORTED",
    "SOCKS5_CONNECT",
    "SOCKS5_CONNECTION_NOT_ALLOWED",
    "SOCKS5_CONNECTION_REFUSED",
    "SOCKS5_GENERAL_FAILURE",
    "SOCKS5_HOST_UNREACHABLE",
    "SOCKS5_NETWORK_UNREACHABLE",
    "SOCKS5_SUCCESS",
    "SOCKS5_TTL_EXPIRED",
    "SOCKS5_UDP_ASSOCIATE",
    "WS_BINARY",
    "WS_KEY_SIZE",
    "WS_NOHTTP",
    "WS_TEXT",
    "Canceled",
    "MonkeyPatchWarning",
    "ReadAhead",
    "brecv",
    "brecv_into",
    "brecvl",
    "bsend",
    "bsendl",
    "bsock_type",
    "bsock_vfs",
    "bundle",
    "bundle_go",
    "bundle_go_mem",
    "bundle_mem",
    "bundle_storage",
    "bundle_wait",
    "chclause",
    "chdone",
    "check_monkey_patching",
    "chmake",
    "chmake_mem",
    "choose",
    "chrecv",
    "chsend",
    "chstorage",
    "deadline_scope",
    "dtls_attach_client",
    "dtls_attach_client_mem",
    "dtls_attach_server",
    "dtls_attach_server_mem",
    "dtls_detach",
    "dtls_done",
    "dtls_storage",
    "fdclean",
    "fdin",
    "fdout",
    "go",
    "go_mem",
    "go_storage",
    "happyeyeballs_connect",
    "hclose",
    "hmake",
    "hown",
    "hquery",
    "http_attach",
    "http_attach_mem",
    "http_detach",
    "http_done",
    "http_recvfield",
    "http_recvrequest",
    "http_recvstatus",
    "http_sendfield",
    "http_sendrequest",
    "http_sendstatus",
    "http_storage",
    "hvfs",
    "ipaddr",
    "ipaddr_equal",
    "ipaddr_family",
    "ipaddr_len",
    "ipaddr_local",
    "ipaddr_port",
    "ipaddr_remote",
    "ipaddr_remotes",
    "ipaddr_setport",
    "ipaddr_sockaddr",
    "ipaddr_str",
    "ipc_accept",
    "ipc_accept_mem",
    "ipc_close",
    "ipc_connect",
    "ipc_connect_mem",
    "ipc_done",
    "ipc_fromfd",
    "ipc_fromfd_mem",
    "ipc_listen",
    "ipc_listen_mem",
    "ipc_listener_fromfd",
    "ipc_listener_fromfd_mem",
    "ipc_listener_storage",
    "ipc_pair",
    "ipc_pair_mem",
    "ipc_pair_storage",
    "ipc_recvfd",
    "ipc_sendfd",
    "ipc_seqpacket_accept",
    "ipc_seqpacket_accept_mem",
    "ipc_seqpacket_close",
    "ipc_seqpacket_connect",
    "ipc_seqpacket_connect_mem",
    "ipc_seqpacket_done",
    "ipc_seqpacket_fromfd",
    "ipc_seqpacket_fromfd_mem",
    "ipc_seqpacket_listen",
    "ipc_seqpacket_listen_mem",
    "ipc_seqpacket_listener_fromfd",
    "ipc_seqpacket_listener_fromfd_mem",
    "ipc_seqpacket_listener_storage",
    "ipc_seqpacket_pair",
    "ipc_seqpacket_pair_mem",
    "ipc_seqpacket_pair_storage",
    "ipc_seqpacket_recvmsg",
    "ipc_seqpacket_sendmsg",
    "ipc_seqpacket_storage",
    "ipc_storage",
    "ipc_tosocket",
    "mm_close",
    "mm_ipc_connect",
    "mm_ipc_connected_pair",
    "mm_ipc_msg",
    "mm_ipc_recvmsg",
    "mm_ipc_sendmsg",
    "mm_ipc_srv",
    "mm_ipc_srv_accept",
    "mm_ipc_srv_create",
    "mm_ipc_srv_destroy",
    "mrecv",
    "mrecv_into",
    "mrecvl",
    "msend",
    "msendl",
    "msleep",
    "msock_type",
    "msock_vfs",
    "now",
    "prefix_attach",
    "prefix_attach_mem",
    "prefix_detach",
    "prefix_storage",
    "socks5_client_connect",
    "socks5_client_connectbyname",
    "socks5_proxy_auth",
    "socks5_proxy_recvcommand",
    "socks5_proxy_recvcommandbyname",
    "socks5_proxy_sendreply",
    "suffix_attach",
    "suffix_attach_mem",
    "suffix_detach",
    "suffix_storage",
    "tcp_accept",
    "tcp_accept_mem",
    "tcp_close",
    "tcp_connect",
    "tcp_connect_mem",
    "tcp_done",
    "tcp_fromfd",
    "tcp_fromfd_mem",
    "tcp_listen",
    "tcp_listen_mem",
    "tcp_listener_fromfd",
    "tcp_listener_fromfd_mem",
    "tcp_listener_storage",
    "tcp_storage",
    "tcp_tosocket",
    "term_attach",
    "term_attach_mem",
    "term_detach",
    "term_done",
    "term_storage",
    "tls_attach_client",
    "tls_attach_client_mem",
    "tls_attach_server",
    "tls_attach_server_mem",
    "tls_detach",
    "tls_done",
    "tls_storage",
    "udp_open",
    "udp_open_mem",
    "udp_recv",
    "udp_recv_into",
    "udp_recvl",
    "udp_send",
    "udp_sendl",
    "udp_storage",
    "ws_attach_client",
    "ws_attach_client_mem",
    "ws_attach_server",
    "ws_attach_server_mem",
    "ws_detach",
    "ws_done",
    "ws_recv",
    "ws_recvl",
    "ws_request_key",
    "ws_response_key",
    "ws_send",
    "ws_sendl",
    "ws_status",
    "ws_storage",
    "yield_",
]


def _fix_module_names() -> None:
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("greendill."):
            obj.__module__ = "greendill"


_fix_module_names()
del _fix_module_names

# Beside gevent's monkeypatching: warn now if this process was patched too
# late for some module, and check again if patch_all() runs later.
_install_check()
