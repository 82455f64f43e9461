"""Checks of the arguments users pass to handle methods, before anything is sent. No I/O here.

Each raises PolicyViolation (the caller's mistake: a value the policy refuses, or an argument
of the wrong kind), with a message that shows at most 80 characters of the bad value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from toolkit.errors import PolicyViolation, brief
from toolkit.policy.durations import parse_duration
from toolkit.policy.model import Namespace

INT64 = (-(2**63), 2**63 - 1)
RESERVED_FIELDS = frozenset({"\x00toolkit:none\x00", "\x00toolkit:empty\x00"})
"""Hash fields the engine uses as markers (a cached "not found", a cached empty hash)."""


def ttl_ms(ns: Namespace, ttl: object) -> int:
    """An explicit TTL in milliseconds, checked against the namespace's tier.

    Seconds (int or float), a ``datetime.timedelta`` or a policy duration (``"90s"``, ``"5m"``).
    """
    if isinstance(ttl, bool):
        raise PolicyViolation(f"namespace {ns.name!r}: ttl must be seconds, a timedelta or a duration like '90s', got a bool")
    if isinstance(ttl, timedelta):
        ttl = ttl.total_seconds()
    if isinstance(ttl, (int, float)):
        if (isinstance(ttl, float) and not math.isfinite(ttl)) or ttl <= 0:
            raise PolicyViolation(f"namespace {ns.name!r}: ttl must be a finite number of seconds above zero, got {brief(ttl)}")
        if ttl > 10**12:
            raise PolicyViolation(f"namespace {ns.name!r}: ttl {brief(ttl)} seconds is beyond what Redis can store")
        ms = round(ttl * 1000)
    elif isinstance(ttl, str):
        try:
            ms = parse_duration(ttl)
        except ValueError as exc:
            reason = str(exc) if "maximum" in str(exc) else "not a duration like 500ms, 90s, 5m, 1h, 1d"
            raise PolicyViolation(f"namespace {ns.name!r}: ttl {brief(ttl)}: {reason}") from None
        if ms <= 0:
            raise PolicyViolation(f"namespace {ns.name!r}: ttl must be above zero, got {brief(ttl)}")
    else:
        raise PolicyViolation(f"namespace {ns.name!r}: ttl must be seconds (int or float), a timedelta or a duration "
                              f"like '90s', got {type(ttl).__name__}")
    ns.check_ttl(ms)
    return ms


def field(ns: Namespace, name: object) -> str:
    """A hash field name: text that round-trips through UTF-8 (ints become their digits, bytes must be UTF-8)."""
    if type(name) is str:
        text = name
    elif isinstance(name, (bytes, bytearray)):
        try:
            text = bytes(name).decode()
        except UnicodeDecodeError:
            raise PolicyViolation(f"namespace {ns.name!r}: hash field name {brief(name)} is not UTF-8 text") from None
    elif isinstance(name, int) and not isinstance(name, bool):
        return str(name)
    elif isinstance(name, str):
        text = str(name)
    else:
        raise PolicyViolation(f"namespace {ns.name!r}: hash field names are text, got {type(name).__name__}")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise PolicyViolation(f"namespace {ns.name!r}: hash field name {brief(text)} cannot be encoded as UTF-8 "
                              "(a lone surrogate)") from None
    if text in RESERVED_FIELDS:
        raise PolicyViolation(f"namespace {ns.name!r}: hash field name {brief(text)} is reserved by the toolkit")
    return text


def fields(ns: Namespace, names: Iterable[object], method: str) -> list[str]:
    """A non-empty list of field names; a lone string is refused (it would be read character by character)."""
    if isinstance(names, (str, bytes, bytearray)) or not isinstance(names, Iterable):
        raise PolicyViolation(f"{method} on {ns.name!r} takes a list of field names, got {type(names).__name__}")
    checked = [field(ns, f) for f in names]
    if not checked:
        raise PolicyViolation(f"{method} on {ns.name!r} needs at least one field")
    return checked


def integer(ns: Namespace, method: str, name: str, value: object, low: int = INT64[0], high: int = INT64[1]) -> int:
    """A whole number argument inside [low, high] (Redis integers are signed 64-bit)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyViolation(f"{method} on {ns.name!r}: {name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise PolicyViolation(f"{method} on {ns.name!r}: {name} {brief(value)} is outside {low} to {high}")
    return value


def params_list(ns: Namespace, items: Iterable[object], method: str) -> list[Mapping[str, Any]]:
    """The key parameters of several keys: one mapping per key."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise PolicyViolation(f"{method} on {ns.name!r} takes a list of parameter mappings, e.g. [{{'user_id': 1}}], "
                        f"got {type(items).__name__}")
    listed = list(items)
    for item in listed:
        if not isinstance(item, Mapping):
            raise PolicyViolation(f"{method} on {ns.name!r}: each item is a mapping of key parameters, got {type(item).__name__}")
    return listed  # type: ignore[return-value]
