"""Durations as policy files write them: ``500ms``, ``90s``, ``5m``, ``1h``, ``1d`` or integer seconds.

Internally every duration is an integer number of milliseconds, so that sub-second
tiers (the seed's 5 s temporary value, an ``ephemeral`` tier) stay exact.
"""

from __future__ import annotations

import math
import re

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^\s*([0-9]+)\s*(ms|s|m|h|d)\s*$")

MAX_DURATION_MS = 36_500 * _UNITS_MS["d"]
"""100 years (``36500d``): far above any sensible TTL or timeout, far below what PEXPIRE takes (2**63 - 1 ms minus now),
so no sum of durations the toolkit makes (ttl + jitter, now + ttl) can overflow in Redis or anywhere else."""
MAX_DURATION = "36500d (100 years)"


class DurationTooLong(ValueError):
    """A well-formed duration longer than MAX_DURATION_MS."""


def parse_duration(value: object) -> int:
    """Return milliseconds for a policy duration; raise ValueError with a readable reason.

    A float that is a whole number (``90.0``) counts as integer seconds; any other float is refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 5m, 1h, got {value!r}")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        ms = value * 1000
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        digits = match.group(1).lstrip("0")
        if len(digits) > len(str(MAX_DURATION_MS)):  # before int(): a 5000-digit text is no number Python reads
            raise DurationTooLong(f"longer than the maximum duration, {MAX_DURATION}")
        ms = int(digits or "0") * _UNITS_MS[match.group(2)]
    else:
        raise ValueError(f"expected a duration like 500ms, 90s, 5m, 1h, 1d or integer seconds, got {value!r}")
    if ms > MAX_DURATION_MS:
        raise DurationTooLong(f"longer than the maximum duration, {MAX_DURATION}")
    return ms


def format_duration(ms: int) -> str:
    """Render milliseconds in the largest unit that divides them exactly (``3600000`` -> ``1h``)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
