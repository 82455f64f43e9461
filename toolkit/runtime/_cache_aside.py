"""Cache-aside with stampede protection: single-flight, an optional Redis lock, XFetch early refresh.

- Single-flight: concurrent callers of one key in one process share one loader call
  (``Flight``: threads on the sync engine, tasks on the asyncio engine).
- ``lock: true``: a short Redis lock (SET NX PX with a random token, released only by its
  owner) makes other processes wait a bounded time for the value instead of loading too.
- Early refresh (XFetch, Vattani et al., PVLDB 2015): a hit refreshes when
  ``-delta * beta * ln(rand()) >= remaining TTL``, delta being the namespace's measured load
  time (an in-process moving average: the cached value itself is stored unchanged).
- Loader exceptions are never cached; ``negative_ttl`` caches a loader's None briefly.

The whole of it is one flow (see ``_flows``): both engines drive it, neither rewrites it.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from toolkit.policy.published import RESERVED_PREFIX
from toolkit.runtime import _scripts
from toolkit.runtime._flows import BUSY, Batch, Flight, Flow, Load, Send, Sleep
from toolkit.runtime._ops import DATA_MISS, ONCE, OTHER, Op, op
from toolkit.runtime._stats import Stats
from toolkit.runtime._telemetry import Telemetry, annotate

if TYPE_CHECKING:
    from toolkit.runtime._handles import Handle

LOCK_PREFIX = RESERVED_PREFIX + "lock:"
_UNREACHABLE = object()
_MISS = (False, None)
"""What a cached read gives when Redis fails on a fail-open namespace, or holds data the codec cannot read."""


class Read(NamedTuple):
    key: str
    op: Op
    at: float
    """``time.monotonic()`` just before the read: a load that finished after it already has the value."""


_new_read = tuple.__new__  # as ``op()``: no NamedTuple __new__ on the hot path
_monotonic = time.monotonic


class CacheAside:
    """The flows of ``get_or_load``, and the one piece of state they keep: each namespace's load time."""

    def __init__(self, stats: Stats, namespaces: list[str], telemetry: Telemetry):
        self._stats = stats
        self._telemetry = telemetry
        self._hits = {name: stats.counter(name, "hits") for name in namespaces}
        self._load_ms: dict[str, float] = {}

    def plain_read(self, handle: Handle, params: dict[str, Any]) -> Read | None:
        """The one read that decides a hit, when the namespace does not refresh early (which needs the TTL too).

        The engines send it directly, without a flow: a hit is the hot path of every cached call.
        """
        if handle.ns.cache_aside.early_refresh_beta is not None:
            return None
        key = handle._build(params)
        return _new_read(Read, (key, op(handle.ns, (handle._read_command, key), handle._cached, OTHER | DATA_MISS, _MISS),
                                _monotonic()))

    def hit(self, handle: Handle, value: Any) -> Any:
        next(self._hits[handle.ns.name])
        return value

    def miss(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any], read: Read) -> Flight:
        """After ``plain_read`` missed: the request that loads once per key in the process (the engine performs it)."""
        self._stats.add(handle.ns.name, "misses")
        annotate("toolkit.cache.hit", False)
        return Flight(read.key, self._fill(handle, read.key, params, loader), since=read.at)

    def get_or_load(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Flow:
        """The whole of it for namespaces with ``early_refresh``: GET and PTTL, then XFetch's decision."""
        key = handle._build(params)
        ns = handle.ns
        stats = self._stats
        beta = ns.cache_aside.early_refresh_beta
        read_at = time.monotonic()
        (found, value), remaining_ms = yield Batch([
            op(ns, (handle._read_command, key), handle._cached, OTHER | DATA_MISS, _MISS),
            op(ns, ("PTTL", key), None, OTHER, -2)])
        if found:
            if beta is None or not self._refresh_now(ns.name, remaining_ms, beta):
                stats.add(ns.name, "hits")
                return value
            stats.add(ns.name, "early_refreshes")
            annotate("toolkit.cache.early_refresh", True)
            try:
                fresh = yield Flight(key, self._load(handle, key, params, loader), wait=False)
            except Exception:  # noqa: BLE001
                return value  # the cached value is still valid: a failed early refresh is not the caller's problem
            return value if fresh is BUSY else fresh
        stats.add(ns.name, "misses")
        annotate("toolkit.cache.hit", False)
        return (yield Flight(key, self._fill(handle, key, params, loader), since=read_at))

    def _read(self, handle: Handle, key: str) -> Flow:
        found, value = yield Send(op(handle.ns, (handle._read_command, key), handle._cached, OTHER | DATA_MISS, _MISS))
        return found, value

    def _refresh_now(self, namespace: str, remaining_ms: int, beta: float) -> bool:
        delta = self._load_ms.get(namespace)
        if delta is None or remaining_ms < 0:
            return False
        return -delta * beta * math.log(1.0 - random.random()) >= remaining_ms

    def _fill(self, handle: Handle, key: str, params: dict[str, Any], loader: Callable[[], Any]) -> Flow:
        """Load after a miss, under the namespace's Redis lock when it asks for one."""
        ns = handle.ns
        options = ns.cache_aside
        if not options.lock:
            return (yield from self._load(handle, key, params, loader))
        lock_key = LOCK_PREFIX + key
        token = os.urandom(16).hex()
        acquired = yield Send(op(ns, ("SET", lock_key, token, "NX", "PX", options.lock_timeout_ms), None, OTHER | ONCE,
                                 _UNREACHABLE))
        if acquired is _UNREACHABLE:
            return (yield from self._load(handle, key, params, loader))
        if acquired:
            try:
                found, value = yield from self._read(handle, key)  # filled between our miss and the lock?
                return value if found else (yield from self._load(handle, key, params, loader))
            finally:
                yield Send(op(ns, ("EVALSHA", _scripts.LOCK_RELEASE.sha, 1, lock_key, token), None, OTHER, 0))
        self._stats.add(ns.name, "lock_waits")
        annotate("toolkit.cache.lock_waited", True)
        deadline = time.monotonic() + options.wait_timeout_ms / 1000
        delay = 0.005
        while time.monotonic() < deadline:
            yield Sleep(delay)
            delay = min(delay * 2, 0.05)
            # The lock first, then the value: an owner stores before it releases, so a lock seen
            # gone means a value we will read, unless the owner gave up (its loader failed).
            held = yield Send(op(ns, ("EXISTS", lock_key), None, OTHER, 0))
            found, value = yield from self._read(handle, key)
            if found:
                return value
            if not held:
                break  # the owner gave up: load ourselves rather than wait out the timeout
        return (yield from self._load(handle, key, params, loader))

    def _load(self, handle: Handle, key: str, params: dict[str, Any], loader: Callable[[], Any]) -> Flow:
        ns = handle.ns
        stats = self._stats
        started = time.perf_counter()
        try:
            value = yield Load(loader)
        except Exception:
            stats.add(ns.name, "load_errors")
            self._telemetry.loaded(ns.name, time.perf_counter() - started, failed=True)
            raise
        elapsed_ms = (time.perf_counter() - started) * 1000
        stats.add(ns.name, "loads")
        self._telemetry.loaded(ns.name, elapsed_ms / 1000, failed=False)
        annotate("toolkit.cache.loaded", True)
        previous = self._load_ms.get(ns.name)
        self._load_ms[ns.name] = elapsed_ms if previous is None else 0.8 * previous + 0.2 * elapsed_ms
        if value is None:
            negative_ms = ns.cache_aside.negative_ttl_ms
            if negative_ms:
                yield Send(handle._store(key, params, None, negative_ms)[0])
            return None
        store, as_read = handle._store(key, params, value, handle._ttl_ms(None))
        yield Send(store)
        return as_read  # what the next hit will return, whatever the loader's types were
