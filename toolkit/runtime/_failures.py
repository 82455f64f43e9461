"""The failure table: what each kind of failure means, counts and does to the breaker. No I/O here.

Every failed call is first named by a *reason*; the reason alone decides the stats counter,
whether the breaker hears of it, whether the call may be resent, and what a fail-closed caller
is told. Both the engine and its pipelines (and the asyncio engine to come) read this one table.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from redis import exceptions as rx

from toolkit.errors import CacheUnavailable, DataViolation, ToolkitError

UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
BREAKER_OPEN = "breaker-open"
POOL_EXHAUSTED = "pool-exhausted"
AUTH = "auth"
OOM = "oom"
READONLY = "readonly"
NOPERM = "noperm"
BUSY = "busy"
DATA = "data"


class Reason(NamedTuple):
    counter: str
    """The ``engine.stats()`` counter a failure of this reason increments."""
    outage: bool | None
    """True: the breaker counts a failure; False: the server answered (the breaker closes); None: neither."""
    resend: bool
    """An idempotent command may be sent again at once (the connection broke before an answer)."""
    meaning: str


TABLE: dict[str, Reason] = {
    UNREACHABLE: Reason("errors", True, True, "Redis cannot be reached (connection refused, reset or lost)"),
    TIMEOUT: Reason("errors", True, False, "Redis did not answer within socket_timeout"),
    BREAKER_OPEN: Reason("errors", None, False, "the circuit breaker is open after repeated connection failures"),
    POOL_EXHAUSTED: Reason("pool_timeouts", None, False, "no pooled connection became free within pool_timeout"),
    AUTH: Reason("refused", False, False, "Redis refused the credentials (wrong access key, rejected token)"),
    OOM: Reason("refused", False, False, "Redis is at maxmemory and refuses writes (OOM)"),
    READONLY: Reason("refused", False, False, "the server is a read-only replica (a failover in progress)"),
    NOPERM: Reason("refused", False, False, "the ACL user may not run this command or touch this key (NOPERM)"),
    BUSY: Reason("refused", False, False, "Redis is loading its dataset or busy running a script"),
    DATA: Reason("data_errors", False, False, "the key holds data its namespace cannot read"),
}

_DATA_REPLIES = ("WRONGTYPE", "not an integer", "would overflow", "out of range")
"""Replies about the data a key holds (redis-py strips the leading ``ERR``; scripts prefix their own text)."""


def reason_of(exc: BaseException) -> str | None:
    """The failure table's reason for an exception from redis-py, or None when it is not one (a bug: re-raise)."""
    if isinstance(exc, rx.ResponseError):
        text = f"{getattr(exc, 'status_code', None) or ''} {exc}"
        if isinstance(exc, rx.OutOfMemoryError):
            return OOM
        if isinstance(exc, rx.ReadOnlyError):
            return READONLY
        if isinstance(exc, rx.NoPermissionError):
            return NOPERM
        if isinstance(exc, rx.ClusterDownError):  # CLUSTERDOWN, MASTERDOWN: the shard has no reachable primary
            return UNREACHABLE
        if any(marker in text for marker in _DATA_REPLIES):
            return DATA
        if "NOAUTH" in text or "WRONGPASS" in text:
            return AUTH
        if any(marker in text for marker in ("BUSY", "LOADING", "TRYAGAIN")):
            return BUSY
        return None
    if isinstance(exc, rx.TimeoutError):
        return TIMEOUT
    if isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError)):
        return AUTH
    if isinstance(exc, rx.BusyLoadingError):
        return BUSY
    if isinstance(exc, rx.MaxConnectionsError) or (isinstance(exc, rx.ConnectionError)
                                                    and str(exc) == "No connection available."):
        return POOL_EXHAUSTED
    if isinstance(exc, rx.ConnectionError):
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text or "invalid password" in text or "invalid username" in text:
            return AUTH
        return UNREACHABLE
    return None


_SCRIPT_CONTEXT = re.compile(r"^Error running script \(call to \w+\): @\w+:\d+: |\s*script: \w+, on @\w+:\d+\.?$")
"""Where a script failed (Redis 6 prefixes it, Redis 7 appends it): ours, not the caller's business."""


def reply_text(exc: BaseException) -> str:
    """An error reply's first line, without the script context Redis wraps around errors inside Lua."""
    return _SCRIPT_CONTEXT.sub("", str(exc).splitlines()[0] if str(exc) else "")[:160]


def describe(exc: BaseException | None, reason: str) -> str:
    """One line for logs, ``health()`` and CacheUnavailable: the reason and the error's kind, never a value.

    redis-py's connection messages name the host (which may come from a secret ``${VAR}``), so
    only the exception's type and, for server replies, its first line are shown.
    """
    if exc is None:
        return TABLE[reason].meaning
    if isinstance(exc, DataViolation):
        return f"key {exc.key!r}: {exc.reason}"
    if isinstance(exc, ToolkitError):
        return str(exc)
    if isinstance(exc, rx.ResponseError):
        return f"{TABLE[reason].meaning}: {reply_text(exc)}"
    errno_text = _errno_text(exc)
    return f"{TABLE[reason].meaning} ({type(exc).__name__}{': ' + errno_text if errno_text else ''})"


def _errno_text(exc: BaseException) -> str:
    """The operating system's words for a socket error (``Connection refused``), found on the cause chain.

    From the errno, never the error's own text: asyncio's says "Connect call failed ('host', port)".
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return ""


def unavailable(namespace: str, reason: str, exc: BaseException | None, target: str | None) -> ToolkitError:
    """What a fail-closed caller gets: DataViolation for data, CacheUnavailable naming target and reason otherwise."""
    if isinstance(exc, DataViolation):
        return exc
    where = f" on target {target!r}" if target else ""
    return CacheUnavailable(f"namespace {namespace!r} is fail-closed and Redis{where} cannot serve it "
                            f"[{reason}]: {describe(exc, reason)}", reason)
