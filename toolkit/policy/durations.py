"""Durations as policy files write them: ``500ms``, ``90s``, ``5m``, ``1h``, ``1d`` or integer seconds.

Internally every duration is an integer number of milliseconds, so that sub-second
tiers (the seed's 5 s temporary value, an ``ephemeral`` tier) stay exact.
"""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: object) -> int:
    """Return milliseconds for a policy duration; raise ValueError with a readable reason."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 5m, 1h, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return value * 1000
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return int(match.group(1)) * _UNITS_MS[match.group(2)]
    raise ValueError(f"expected a duration like 500ms, 90s, 5m, 1h, 1d or integer seconds, got {value!r}")


def format_duration(ms: int) -> str:
    """Render milliseconds in the largest unit that divides them exactly (``3600000`` -> ``1h``)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
