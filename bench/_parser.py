"""Which RESP parser redis-py uses in a run: hiredis when installed, or (``--no-hiredis``) its pure-Python one.

redis-py decides once, when ``redis.utils`` is imported (``HIREDIS_AVAILABLE``: hiredis >= 3.2
importable), and binds the result where changing ``DefaultParser`` afterwards no longer reaches:
as the default value of ``parser_class`` in ``AbstractConnection.__init__`` (sync and asyncio;
``redis.Redis`` never passes a parser, so every pool's connections take that default), and, for
the sync client only, in the choice of the command packer (``hiredis.pack_command`` or Python,
read from ``redis.connection.HIREDIS_AVAILABLE`` when a connection is built). ``disable_hiredis``
changes all of these, in this process, for every connection built afterwards: the bench's
clients, the engines' and the libraries' it compares. A Python subprocess (the audit workload's
``toolkit audit``) is started through ``module_command``, which hides hiredis from it before
redis-py is imported, exactly as if it were not installed.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.connection as async_connection
import redis.connection as sync_connection
import redis.utils
from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser, _HiredisParser, _RESP2Parser

_WITHOUT_HIREDIS = ("import runpy, sys\n"
                    "sys.modules['hiredis'] = None  # import hiredis fails: redis-py takes its own parsers\n"
                    "runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n")


def enabled() -> bool:
    """Whether connections built from now on use hiredis."""
    return bool(sync_connection.HIREDIS_AVAILABLE) and _default_parser(sync_connection.AbstractConnection) is _HiredisParser


def _default_parser(cls: type) -> Any:
    init = inspect.unwrap(vars(cls)["__init__"])  # the function under redis-py's @deprecated_args
    return inspect.signature(init).parameters["parser_class"].default


def _replace_default(cls: type, old: type, new: type) -> None:
    """Replace the default ``parser_class=old`` of ``cls.__init__`` with ``new``."""
    init = inspect.unwrap(vars(cls)["__init__"])
    replaced = 0
    if init.__defaults__:
        replaced += sum(d is old for d in init.__defaults__)
        init.__defaults__ = tuple(new if d is old else d for d in init.__defaults__)
    if init.__kwdefaults__:
        replaced += sum(d is old for d in init.__kwdefaults__.values())
        init.__kwdefaults__ = {k: new if d is old else d for k, d in init.__kwdefaults__.items()}
    if replaced != 1 or _default_parser(cls) is not new:
        raise RuntimeError(f"--no-hiredis: redis-py {redis.__version__} no longer takes {cls.__module__}.{cls.__name__}'s "
                           f"default parser from parser_class={old.__name__}; see bench/_parser.py")


def disable_hiredis() -> None:
    """Every connection built from now on, sync or asyncio, parses replies (and packs commands) in Python.

    Call before any client is created (a connection already built keeps its parser).
    """
    if not redis.utils.HIREDIS_AVAILABLE:
        return  # hiredis not installed (or < 3.2): redis-py already uses its own parsers
    _replace_default(sync_connection.AbstractConnection, _HiredisParser, _RESP2Parser)  # RESP3 picks _RESP3Parser itself
    _replace_default(async_connection.AbstractConnection, _AsyncHiredisParser, _AsyncRESP3Parser)  # switched to RESP2 by protocol
    sync_connection.DefaultParser = _RESP2Parser
    async_connection.DefaultParser = _AsyncRESP3Parser
    sync_connection.HIREDIS_AVAILABLE = False  # the sync command packer: PythonRespSerializer, not hiredis.pack_command
    redis.utils.HIREDIS_AVAILABLE = False


def module_command(module: str, *args: str, hiredis: bool) -> list[str]:
    """``python -m module args``; without hiredis the same module run after hiding hiredis from the subprocess."""
    if hiredis:
        return [sys.executable, "-m", module, *args]
    return [sys.executable, "-c", _WITHOUT_HIREDIS.format(module=module), *args]


def describe(client: redis.Redis, port: int) -> dict[str, str]:
    """The parser (and packer) classes of a real connection of ``client`` and of a new asyncio connection."""
    conn = client.connection_pool.get_connection()
    try:
        inner = getattr(conn, "_conn", conn)  # a CacheProxyConnection wraps the connection
        sync = {"sync_parser": type(inner._parser).__name__, "sync_packer": type(inner._command_packer).__name__}
    finally:
        client.connection_pool.release(conn)
    aio = redis.asyncio.Redis(port=port).connection_pool.make_connection()  # built as the pool builds it, not connected
    return {**sync, "asyncio_parser": type(aio._parser).__name__}


def check(parsers: dict[str, str], hiredis: bool) -> None:
    """Fail the run if its connections do not use the parser it claims to measure."""
    hiredis_used = {"Hiredis" in name for name in parsers.values()}
    if hiredis_used != {hiredis}:
        raise RuntimeError(f"bench: expected {'hiredis' if hiredis else 'the pure-Python parser'} everywhere, got {parsers}")
