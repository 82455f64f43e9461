"""Cache-aside with stampede protection: single-flight, an optional Redis lock, XFetch early refresh.

- Single-flight: concurrent callers of one key in one process share one loader call.
- ``lock: true``: a short Redis lock (SET NX PX with a random token, released only by its
  owner) makes other processes wait a bounded time for the value instead of loading too.
- Early refresh (XFetch, Vattani et al., PVLDB 2015): a hit refreshes when
  ``-delta * beta * ln(rand()) >= remaining TTL``, delta being the namespace's measured load
  time (an in-process moving average: the cached value itself is stored unchanged).
- Loader exceptions are never cached; ``negative_ttl`` caches a loader's None briefly.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from toolkit.policy.published import RESERVED_PREFIX
from toolkit.runtime import _scripts
from toolkit.runtime._ops import ONCE, OTHER, op

if TYPE_CHECKING:
    from toolkit.runtime._engine import Engine
    from toolkit.runtime._handles import Handle

LOCK_PREFIX = RESERVED_PREFIX + "lock:"
_UNREACHABLE = object()
_BUSY = object()
_MISS = (False, None)
"""What a cached read gives when Redis fails on a fail-open namespace, or holds data the codec cannot read."""


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class SingleFlight:
    """One call per key at a time in this process; the others wait for its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def do(self, key: str, fn: Callable[[], Any], *, wait: bool = True) -> Any:
        """Run ``fn`` once for concurrent callers of ``key``; with ``wait=False`` a follower gets _BUSY at once."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            if not wait:
                return _BUSY
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = fn()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.value


class CacheAside:
    def __init__(self, engine: "Engine"):
        self._engine = engine
        self._flights = SingleFlight()
        self._load_ms: dict[str, float] = {}

    def get_or_load(self, handle: "Handle", loader: Callable[[], Any], params: dict[str, Any]) -> Any:
        key = handle._build(params)
        ns = handle.ns
        stats = self._engine._stats
        beta = ns.cache_aside.early_refresh_beta
        found, value, remaining_ms = self._read(handle, key, with_ttl=beta is not None)
        if found:
            if beta is None or not self._refresh_now(ns.name, remaining_ms, beta):
                stats.add(ns.name, "hits")
                return value
            stats.add(ns.name, "early_refreshes")
            try:
                fresh = self._flights.do(key, lambda: self._load(handle, key, params, loader), wait=False)
            except Exception:
                return value  # the cached value is still valid: a failed early refresh is not the caller's problem
            return value if fresh is _BUSY else fresh
        stats.add(ns.name, "misses")
        return self._flights.do(key, lambda: self._fill(handle, key, params, loader))

    def _read(self, handle: "Handle", key: str, *, with_ttl: bool) -> tuple[bool, Any, int]:
        ns = handle.ns
        read = op(ns, (handle._read_command, key), handle._cached, OTHER, _MISS)
        if with_ttl:
            (found, value), pttl = self._engine._send_batch([read, op(ns, ("PTTL", key), None, OTHER, -2)], False)
        else:
            (found, value), pttl = self._engine.run(read), -1
        return found, value, pttl

    def _refresh_now(self, namespace: str, remaining_ms: int, beta: float) -> bool:
        delta = self._load_ms.get(namespace)
        if delta is None or remaining_ms < 0:
            return False
        return -delta * beta * math.log(1.0 - random.random()) >= remaining_ms

    def _fill(self, handle: "Handle", key: str, params: dict[str, Any], loader: Callable[[], Any]) -> Any:
        """Load after a miss, under the namespace's Redis lock when it asks for one."""
        ns = handle.ns
        options = ns.cache_aside
        if not options.lock:
            return self._load(handle, key, params, loader)
        engine = self._engine
        lock_key = LOCK_PREFIX + key
        token = os.urandom(16).hex()
        acquired = engine.run(op(ns, ("SET", lock_key, token, "NX", "PX", options.lock_timeout_ms), None, OTHER | ONCE,
                                 _UNREACHABLE))
        if acquired is _UNREACHABLE:
            return self._load(handle, key, params, loader)
        if acquired:
            try:
                found, value, _ = self._read(handle, key, with_ttl=False)  # filled between our miss and the lock?
                return value if found else self._load(handle, key, params, loader)
            finally:
                engine.run(op(ns, ("EVALSHA", _scripts.LOCK_RELEASE.sha, 1, lock_key, token), None, OTHER, 0))
        engine._stats.add(ns.name, "lock_waits")
        deadline = time.monotonic() + options.wait_timeout_ms / 1000
        delay = 0.005
        while time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            # The lock first, then the value: an owner stores before it releases, so a lock seen
            # gone means a value we will read, unless the owner gave up (its loader failed).
            held = engine.run(op(ns, ("EXISTS", lock_key), None, OTHER, 0))
            found, value, _ = self._read(handle, key, with_ttl=False)
            if found:
                return value
            if not held:
                break  # the owner gave up: load ourselves rather than wait out the timeout
        return self._load(handle, key, params, loader)

    def _load(self, handle: "Handle", key: str, params: dict[str, Any], loader: Callable[[], Any]) -> Any:
        ns = handle.ns
        stats = self._engine._stats
        started = time.perf_counter()
        try:
            value = loader()
        except Exception:
            stats.add(ns.name, "load_errors")
            raise
        elapsed_ms = (time.perf_counter() - started) * 1000
        stats.add(ns.name, "loads")
        previous = self._load_ms.get(ns.name)
        self._load_ms[ns.name] = elapsed_ms if previous is None else 0.8 * previous + 0.2 * elapsed_ms
        if value is None:
            negative_ms = ns.cache_aside.negative_ttl_ms
            if negative_ms:
                self._engine.run(handle._store(key, params, None, negative_ms)[0])
            return None
        store, as_read = handle._store(key, params, value, handle._ttl_ms(None))
        self._engine.run(store)
        return as_read  # what the next hit will return, whatever the loader's types were
