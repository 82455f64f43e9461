"""OpenTelemetry metrics and traces of both engines (the optional ``otel`` extra: opentelemetry-api).

Counters cost nothing on the hot path, with or without a MeterProvider: they are *observable*
counters whose callbacks read the engines' own ``stats()`` counters when a reader collects
(every engine of the process, summed per target and namespace; a closed engine's last counts
are kept, so the sums never go down). Histograms are recorded where time is spent anyway (a
loader call, an invalidation). Spans exist only when an SDK TracerProvider is configured when
the engine is built: otherwise ``tracer`` is None and the hot path tests one attribute.

Key parameter values are never recorded, unless the namespace sets ``trace_params: true``
(they may be personal data).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit import __version__

if TYPE_CHECKING:
    from toolkit.runtime._breaker import CircuitBreaker
    from toolkit.runtime._handles import Handle
    from toolkit.runtime._stats import Stats

try:
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed: everything here is a no-op
    _metrics = _trace = None  # type: ignore[assignment]

SCOPE = "toolkit"
NAMESPACE, TARGET, RULE, ENGINE, ERROR_TYPE = "toolkit.namespace", "toolkit.target", "toolkit.rule", "toolkit.engine", "error.type"
COUNTERS: Mapping[str, tuple[str, str, str]] = {
    # instrument: (stats counter, unit, description)
    "toolkit.cache.hits": ("hits", "{hit}", "Reads that found a value (get, hget..., get_or_load hits)."),
    "toolkit.cache.misses": ("misses", "{miss}", "Reads that found nothing, or read as a miss because Redis failed."),
    "toolkit.cache.loads": ("loads", "{load}", "get_or_load loader calls that returned."),
    "toolkit.cache.load_errors": ("load_errors", "{error}", "get_or_load loader calls that raised."),
    "toolkit.cache.dropped_writes": ("dropped_writes", "{write}", "Writes dropped on fail-open namespaces because Redis failed."),
    "toolkit.cache.local_hits": ("local_hits", "{hit}", "Reads a near cache (local_cache) answered from process memory."),
    "toolkit.cache.local_evictions": ("local_evictions", "{entry}",
                                      "Near-cache copies dropped: an invalidation, the LRU bound, an expiry or a flush."),
}
ERRORS: Mapping[str, str] = {"errors": "unavailable", "refused": "refused", "data_errors": "data", "pool_timeouts": "pool_timeout"}
"""``toolkit.cache.errors`` by ``error.type``: the stats counter behind each value (see docs/runtime.md, failures)."""

_lock = threading.Lock()
_live: dict[int, _Registered] = {}
_retired: dict[tuple[str, str, str], int] = {}
_instruments: Any = None
_ids = itertools.count(1)


@dataclass(frozen=True)
class _Registered:
    target: str
    engine: str
    stats: Stats
    breaker: CircuitBreaker


def _configured_tracer() -> Any:
    """A tracer when an SDK (or any real) TracerProvider is set; None for the API's default no-op proxy."""
    if _trace is None:
        return None
    provider = _trace.get_tracer_provider()
    if isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)):
        return None
    return provider.get_tracer(SCOPE, __version__)


class _Instruments:
    """The process's instruments, made once on the global meter (a proxy until a MeterProvider is set)."""

    def __init__(self) -> None:
        meter = _metrics.get_meter(SCOPE, __version__)
        for name, (counter, unit, description) in COUNTERS.items():
            meter.create_observable_counter(name, [_observer(counter)], unit=unit, description=description)
        meter.create_observable_counter("toolkit.cache.errors", [_observe_errors], unit="{error}",
                                        description="Calls Redis could not serve, by error.type (unavailable: unreachable, "
                                                    "timeout or breaker open; refused; data; pool_timeout).")
        meter.create_observable_gauge("toolkit.breaker.open", [_observe_breakers], unit="1",
                                      description="1 while the engine's circuit breaker is open (calls fail at once), else 0.")
        self.load_duration = meter.create_histogram("toolkit.cache.load.duration", unit="s",
                                                    description="Duration of get_or_load loader calls.")
        self.invalidation_duration = meter.create_histogram("toolkit.invalidation.duration", unit="s",
                                                            description="Duration of engine.invalidate calls.")
        self.invalidation_keys = meter.create_counter("toolkit.invalidation.keys", unit="{key}",
                                                      description="Keys deleted by invalidation rules.")


def _totals(counter: str) -> dict[tuple[str, str], int]:
    with _lock:
        totals = {(t, n): v for (t, n, c), v in _retired.items() if c == counter}
        live = list(_live.values())
    for reg in live:
        for ns, counters in reg.stats.snapshot().items():
            totals[(reg.target, ns)] = totals.get((reg.target, ns), 0) + counters[counter]
    return totals


def _attributes(target: str, namespace: str) -> dict[str, str]:
    return {NAMESPACE: namespace, TARGET: target} if target else {NAMESPACE: namespace}


def _observer(counter: str) -> Any:
    def observe(options: Any) -> Iterator[Any]:
        for (target, ns), value in _totals(counter).items():
            yield _metrics.Observation(value, _attributes(target, ns))
    return observe


def _observe_errors(options: Any) -> Iterator[Any]:
    for counter, kind in ERRORS.items():
        for (target, ns), value in _totals(counter).items():
            yield _metrics.Observation(value, {**_attributes(target, ns), ERROR_TYPE: kind})


def _observe_breakers(options: Any) -> Iterator[Any]:
    with _lock:
        live = list(_live.values())
    for reg in live:
        attributes = {ENGINE: reg.engine, TARGET: reg.target} if reg.target else {ENGINE: reg.engine}
        yield _metrics.Observation(0 if reg.breaker.state == "closed" else 1, attributes)


def _retire(key: int) -> None:
    """Keep an engine's last counts (closed or collected), so the observed sums never go down."""
    with _lock:
        reg = _live.pop(key, None)
        if reg is None:
            return
        for ns, counters in reg.stats.snapshot().items():
            for counter, value in counters.items():
                _retired[(reg.target, ns, counter)] = _retired.get((reg.target, ns, counter), 0) + value


class Telemetry:
    """One engine's side of it: registered for the observable instruments, its spans and histograms."""

    def __init__(self, owner: object, kind: str, target: str | None, stats: Stats, breaker: CircuitBreaker):
        global _instruments
        self.tracer = _configured_tracer()
        self.target = target or ""
        self._instruments: Any = None
        if _metrics is None:
            return
        with _lock:
            if _instruments is None:
                _instruments = _Instruments()
            self._instruments = _instruments
            self._key = next(_ids)
            _live[self._key] = _Registered(self.target, f"{kind}-{self._key}", stats, breaker)
        weakref.finalize(owner, _retire, self._key)

    def close(self) -> None:
        if self._instruments is not None:
            _retire(self._key)

    def loaded(self, namespace: str, seconds: float, failed: bool) -> None:
        if self._instruments is not None:
            attributes = _attributes(self.target, namespace)
            if failed:
                attributes[ERROR_TYPE] = "loader"
            self._instruments.load_duration.record(seconds, attributes)

    def invalidated(self, rule: str, keys: int, seconds: float, failed: bool) -> None:
        if self._instruments is not None:
            attributes = {RULE: rule, TARGET: self.target} if self.target else {RULE: rule}
            self._instruments.invalidation_keys.add(keys, attributes)  # 0 too: the series exists from the first call
            self._instruments.invalidation_duration.record(
                seconds, {**attributes, ERROR_TYPE: "unavailable"} if failed else attributes)

    @contextmanager
    def span(self, name: str, attributes: dict[str, Any]) -> Iterator[Any]:
        """A span made current (what the caller does inside, a loader's database call, nests under it);
        ``annotate`` inside reaches it, and only it."""
        assert self.tracer is not None
        if self.target:
            attributes[TARGET] = self.target
        with self.tracer.start_as_current_span(name, attributes=attributes, record_exception=True,
                                               set_status_on_exception=True) as span:
            token = _CURRENT.set(span)
            try:
                yield span
            finally:
                _CURRENT.reset(token)

    def get_or_load_span(self, handle: Handle, params: Mapping[str, Any]) -> Any:
        """``toolkit.cache.hit`` starts true; the flows annotate a miss, and add ``toolkit.cache.loaded``,
        ``lock_waited`` and ``early_refresh`` (true) when they happen: each attribute costs the SDK about 1 µs."""
        ns = handle.ns
        attributes: dict[str, Any] = {NAMESPACE: ns.name, "db.system.name": "redis", "toolkit.cache.hit": True}
        if ns.trace_params:
            attributes.update({f"toolkit.param.{k}": str(v) for k, v in params.items()})
        return self.span(f"get_or_load {ns.name}", attributes)

    def invalidate_span(self, rule: str, strategy: str) -> Any:
        return self.span(f"invalidate {rule}", {RULE: rule, "toolkit.invalidation.strategy": strategy,
                                                "db.system.name": "redis"})


_CURRENT: ContextVar[Any] = ContextVar("toolkit_span", default=None)
"""The engine span the current code runs in: annotations never land on an application's own spans."""


def annotate(key: str, value: Any) -> None:
    """Set an attribute on the current get_or_load/invalidate span; nothing when there is none (one ContextVar read)."""
    span = _CURRENT.get()
    if span is not None:
        span.set_attribute(key, value)
