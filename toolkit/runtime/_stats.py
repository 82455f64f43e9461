"""Per-namespace counters behind ``engine.stats()``.

Counters are ``itertools.count`` objects: ``next()`` on them is atomic under the GIL, so
concurrent callers never lose a count and the hot path takes no lock.
"""

from __future__ import annotations

import itertools

COUNTERS = ("hits", "misses", "loads", "load_errors", "errors", "refused", "data_errors", "pool_timeouts", "dropped_writes",
            "early_refreshes", "lock_waits", "local_hits", "local_evictions")
"""``errors``: Redis unreachable, timed out or breaker open; ``refused``: the server answered with a refusal (OOM,
READONLY, NOPERM, a rejected login, LOADING/BUSY); ``data_errors``: a value or type the namespace cannot read;
``pool_timeouts``: no pooled connection became free in time. See the failure table in docs/runtime.md.
``local_hits``: reads a near cache (``local_cache``) answered from process memory (also counted in hits or misses);
``local_evictions``: local copies dropped (an invalidation, the LRU bound, an expiry, a flush)."""


def _value(counter: itertools.count) -> int:
    """The next number a counter would give, without taking it: its repr is ``count(N)``.

    (Not ``__reduce__``: pickling support of itertools is deprecated since 3.12 and gone in 3.14.)
    """
    return int(repr(counter)[6:-1])


class Stats:
    def __init__(self, names: list[str]):
        self._by_ns = {name: {c: itertools.count() for c in COUNTERS} for name in names}

    def add(self, namespace: str, counter: str, n: int = 1) -> None:
        if n == 1:
            next(self._by_ns[namespace][counter])
        elif n > 1:
            next(itertools.islice(self._by_ns[namespace][counter], n - 1, n))

    def counter(self, namespace: str, counter: str) -> itertools.count:
        """The raw counter, for handles that bump it on every call."""
        return self._by_ns[namespace][counter]

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {name: {c: _value(v) for c, v in counters.items()} for name, counters in self._by_ns.items()}
