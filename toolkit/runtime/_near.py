"""The near cache's policy core: process-local copies of near-cached keys and what keeps them honest. No I/O.

An entry is one key's raw replies (``GET``, ``HGETALL``, ``HGET f``...), decoded again on every
hit so that callers never share a mutable value. Coherence rests on four rules:

- Nothing is served or stored unless ``ready``: a tracking subscription covers every primary
  (``_tracking`` says so). Losing it, or a change of topology, flushes everything first.
- An invalidation (another client's write, an expiry, an eviction, a flush) drops the key.
- A read marks its key before it goes to Redis; an invalidation of a marked key, or a flush,
  makes that read's reply unfit to store. The reply is returned, never kept: a read that
  raced with a write cannot leave the old value behind.
- A copy never outlives ``local_cache.ttl`` nor the key's remaining TTL in Redis (PTTL read
  with the value), and each namespace keeps at most ``max_entries`` keys (least recently used
  first out).

Thread-safe: the tracking threads invalidate while engine threads read. A hit takes no lock
(dict reads are atomic under the GIL); stores and invalidations take one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolkit.policy.model import LocalCache
    from toolkit.runtime._stats import Stats

MISSING = object()
NEAR_READS = frozenset({"GET", "HGET", "HGETALL", "HMGET"})
"""Commands whose replies a near-cached namespace keeps (the first argument is the key)."""
_monotonic = time.monotonic


class NearCache:
    def __init__(self, specs: Mapping[str, LocalCache], stats: Stats):
        self._specs = dict(specs)
        self._entries: dict[str, OrderedDict[str, list[Any]]] = {name: OrderedDict() for name in specs}
        """namespace -> key -> [expires_at, {args: raw reply}], least recently used first."""
        self._stats = stats
        self._hits = {name: stats.counter(name, "local_hits") for name in specs}
        self._lock = threading.Lock()
        self._pending: dict[str, list[int]] = {}
        """key -> [reads in flight, invalidations seen since the first of them began]: a read whose key was
        invalidated after it began finds the count moved (readers that keep overlapping never block each other)."""
        self._generation = 0
        self.ready = False
        """True while invalidations flow from every primary: only then are copies served and stored."""

    # -- reads ------------------------------------------------------------------------------------

    def get(self, namespace: str, key: str, args: tuple) -> Any:
        """The raw reply kept for ``args``, or MISSING (the hot path: no lock)."""
        entries = self._entries[namespace]
        entry = entries.get(key)
        if entry is None or not self.ready:
            return MISSING
        if entry[0] <= _monotonic():
            self._drop(namespace, key)
            return MISSING
        raw = entry[1].get(args, MISSING)
        if raw is not MISSING:
            try:
                entries.move_to_end(key)
            except KeyError:  # invalidated meanwhile: this reply was read before, it is still the answer
                pass
            next(self._hits[namespace])
        return raw

    def begin(self, key: str) -> tuple[int, int] | None:
        """Mark ``key`` before its read goes to Redis; the token ``finish`` needs (None: not ready, nothing to keep)."""
        with self._lock:
            if not self.ready:
                return None
            mark = self._pending.get(key)
            if mark is None:
                mark = self._pending[key] = [0, 0]
            mark[0] += 1
            return self._generation, mark[1]

    def finish(self, token: tuple[int, int] | None, namespace: str, key: str, args: tuple, raw: Any, pttl_ms: Any) -> None:
        """End the read of ``begin``: keep ``raw`` unless the key was invalidated or everything flushed meanwhile.

        ``pttl_ms`` is the key's remaining TTL read with it (-1 none, -2 no key; anything else: keep nothing).
        """
        if token is None:
            return
        with self._lock:
            mark = self._pending[key]
            stale = mark[1] != token[1]
            mark[0] -= 1
            if not mark[0]:
                del self._pending[key]
            if stale or token[0] != self._generation or not self.ready or not isinstance(pttl_ms, int) or raw is MISSING:
                return
            spec = self._specs[namespace]
            ttl_ms = spec.ttl_ms if pttl_ms < 0 else min(spec.ttl_ms, pttl_ms)
            if ttl_ms <= 0:
                return
            expires = _monotonic() + ttl_ms / 1000
            entries = self._entries[namespace]
            entry = entries.get(key)
            if entry is None:
                entries[key] = [expires, {args: raw}]
                if len(entries) > spec.max_entries:
                    entries.popitem(last=False)
                    self._stats.add(namespace, "local_evictions")
            else:
                entry[0] = min(entry[0], expires)
                entry[1][args] = raw
                entries.move_to_end(key)

    # -- invalidation -----------------------------------------------------------------------------

    def invalidate(self, keys: Iterable[str]) -> None:
        """Drop these keys (a write anywhere, an expiry, an eviction), and spoil reads of them in flight."""
        with self._lock:
            for key in keys:
                mark = self._pending.get(key)
                if mark is not None:
                    mark[1] += 1
                for name, entries in self._entries.items():
                    if entries.pop(key, None) is not None:
                        self._stats.add(name, "local_evictions")

    def flush(self, *, ready: bool | None) -> None:
        """Drop everything and spoil every read in flight; ``ready`` says whether copies may be kept from now on
        (None: as before, decided under the same lock, so a flush never revives a feed that broke meanwhile)."""
        with self._lock:
            self._generation += 1  # every read in flight now holds an older generation: none is kept
            if ready is not None:
                self.ready = ready
            for name, entries in self._entries.items():
                self._stats.add(name, "local_evictions", len(entries))
                entries.clear()

    def _drop(self, namespace: str, key: str) -> None:
        with self._lock:
            if self._entries[namespace].pop(key, None) is not None:
                self._stats.add(namespace, "local_evictions")

    def size(self, namespace: str) -> int:
        return len(self._entries[namespace])


def prefixes(literals: Iterable[str]) -> list[str]:
    """The BCAST prefixes that cover these literal key prefixes: Redis refuses overlapping ones, so a prefix
    inside another is dropped; an empty one (a key that starts with a parameter) means every key: []."""
    found: list[str] = []
    for literal in sorted(set(literals)):
        if not literal:
            return []
        if not any(literal.startswith(p) for p in found):
            found.append(literal)
    return found
