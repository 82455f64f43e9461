"""The policy core both engines share: everything but sending, written once and free of I/O.

``EngineCore`` holds the policy, the stats, the breaker, the health record and the per-key
flows; it turns replies and failures into what the caller gets (the failure table), decides
resends, and hands multi-step flows to the engine's driver. ``Engine`` (blocking redis-py) and
``AsyncEngine`` (``redis.asyncio``) add only how a command, a batch and a flow step are sent:
methods here that call ``run``, ``_send_batch`` or ``_drive`` return the value on the sync
engine and an awaitable on the asyncio one.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import MaxConnectionsError, RedisError

from toolkit.errors import (
    ConfigurationError,
    DataViolation,
    PipelineError,
    PolicyMismatch,
    PolicyViolation,
    ToolkitError,
    brief,
)
from toolkit.policy.model import ClientOptions, PolicySet
from toolkit.policy.published import POLICY_KEY, decode_published
from toolkit.runtime import _scripts
from toolkit.runtime._breaker import CircuitBreaker
from toolkit.runtime._cache_aside import CacheAside
from toolkit.runtime._failures import BREAKER_OPEN, DATA, POOL_EXHAUSTED, TABLE, describe, reason_of, reply_text, unavailable
from toolkit.runtime._flows import Batch, Call, Exec, Flight, Flow, Load, Scan, ScanNext, Send, Sleep
from toolkit.runtime._handles import Handle, handle_for
from toolkit.runtime._health import Health
from toolkit.runtime._invalidate import invalidate_flow, observed
from toolkit.runtime._near import MISSING, NearCache, prefixes
from toolkit.runtime._ops import DATA_MISS, ONCE, OTHER, READ, WRITE, Op, op_key
from toolkit.runtime._ops import op as _op
from toolkit.runtime._pipeline import Pipeline
from toolkit.runtime._stats import Stats
from toolkit.runtime._telemetry import Telemetry
from toolkit.runtime._tracking import Tracker

F = TypeVar("F", bound=Callable[..., Any])
_UNDECODABLE = (ValueError, TypeError, UnicodeDecodeError)
_FAILED = object()
"""The fallback of a near-cached read's raw Op: Redis failed (the real fallback is the caller's Op's)."""


class _NearRunner:
    """The runner of near-cached namespaces' handles: their ``run`` is the engine's ``_near_run``."""

    __slots__ = ("run",)

    def __init__(self, run: Callable[[Op], Any]):
        self.run = run
"""What a codec raises on bytes it cannot read (json.JSONDecodeError is a ValueError)."""
_monotonic = time.monotonic


def _data_violation(o: Op, exc: BaseException) -> DataViolation:
    if isinstance(exc, DataViolation):
        return exc
    if isinstance(exc, RedisError):
        detail = reply_text(exc)
        if "WRONGTYPE" in detail:
            detail = f"the key holds another Redis type than {o.ns.type} ({detail})"
    elif o.ns.type == "counter":
        detail = "the value is not an integer in the signed 64-bit range"
    elif isinstance(exc, UnicodeDecodeError):
        detail = f"the value is not UTF-8 text (codec {o.ns.codec})"
    else:
        detail = f"the value cannot be decoded by codec {o.ns.codec} ({type(exc).__name__})"
    return DataViolation(o.ns.name, op_key(o), detail + "; 'toolkit audit' lists such keys")


def _index_plan(policy: PolicySet, cluster: bool) -> dict[str, tuple]:
    """Namespace -> ((rule, indexed parameter), ...) for rules with ``index:``."""
    plan: dict[str, list] = {}
    for rule in policy.rules.values():
        if rule.index is None:
            continue
        if cluster and rule.hash_tag != rule.index:
            raise ConfigurationError(f"rule {rule.name!r} indexes {rule.index!r}: on a cluster its namespaces and the rule need "
                                     f"hash_tag: {rule.index} so that an entity's keys and its index share one slot")
        for name in rule.indexed:
            plan.setdefault(name, []).append((rule, policy.namespaces[name].params[rule.index]))
    return {name: tuple(entries) for name, entries in plan.items()}


def _finished(results: list[Any], errors: dict[int, BaseException], keep_results: bool) -> list[Any]:
    """A batch's results, or what its errors make of it: PipelineError with every result (pipelines), else the first."""
    if errors:
        if keep_results:
            raise PipelineError(results, errors)
        raise next(iter(errors.values()))
    return results


def _batch_failure(raws: list[Any]) -> tuple[str, BaseException] | None:
    """The first per-command failure of a batch that means an outage (a cluster node it could not reach)."""
    for raw in raws:
        if isinstance(raw, Exception):
            reason = reason_of(raw)
            if reason is not None and TABLE[reason].outage:
                return reason, raw
    return None


class EngineCore:
    """What ``Engine`` and ``AsyncEngine`` share. Not used on its own."""

    def __init__(self, policy: PolicySet, client: Any, options: ClientOptions = ClientOptions(), *, owns_client: bool = False,
                 target: str | None = None):
        from toolkit.runtime._client import is_cluster

        if inspect.iscoroutinefunction(getattr(client, "execute_command", None)) != self._is_async:
            wanted, other = ("redis.asyncio", "toolkit.connect") if self._is_async else ("blocking redis-py", "toolkit.aio.connect")
            raise ConfigurationError(f"{type(self).__name__} takes a {wanted} client, got {type(client).__name__} "
                                     f"(use {other} for it)")
        self.policy = policy
        self.client = client
        self.cluster = is_cluster(client)
        self._owns_client = owns_client
        self._breaker = CircuitBreaker(options.breaker_threshold, options.breaker_cooldown_ms / 1000)
        self._retries = options.retries
        self._pool_timeout = options.pool_timeout_ms / 1000
        self._backoff = ExponentialWithJitterBackoff(cap=1.0, base=0.02)
        self._health = Health(target)
        self._last_ok: float | None = None
        """``time.monotonic()`` of the last call Redis answered: set on every success, read by ``health()``."""
        self._stats = Stats(list(policy.namespaces))
        # (hits, misses) counters per namespace, indexed by "was it a miss" on the hot path.
        self._read_counters = {n: (self._stats.counter(n, "hits"), self._stats.counter(n, "misses")) for n in policy.namespaces}
        self._handles: dict[str, Handle] = {}
        self._handles_lock = threading.Lock()
        self._telemetry = Telemetry(self, "async" if self._is_async else "sync", target, self._stats, self._breaker)
        self._cache_aside = CacheAside(self._stats, list(policy.namespaces), self._telemetry)
        if self._telemetry.tracer is not None:  # spans cost only engines built once a TracerProvider is set
            self._get_or_load = self._traced_get_or_load  # type: ignore[method-assign]
        near = {name: ns.local_cache for name, ns in policy.namespaces.items() if ns.local_cache is not None}
        self._near: NearCache | None = NearCache(near, self._stats) if near else None
        self._near_runner = _NearRunner(self._near_run)
        """Handles of near-cached namespaces send through it: the others never pay for the near cache."""
        self._tracker: Tracker | None = None
        self._indexes = _index_plan(policy, self.cluster)
        kwargs = getattr(client, "get_connection_kwargs", None)
        decoding = (kwargs() if kwargs is not None else {}).get("decode_responses", False)
        if decoding and any(ns.codec == "bytes" for ns in policy.namespaces.values()):
            raise ConfigurationError("the client decodes responses (decode_responses=True) but namespaces with codec "
                                     "bytes need raw bytes: pass a client without decode_responses")
        if self._near is not None:  # last: an engine that failed to build leaves no feed behind
            self._tracker = Tracker(self._near, client, prefixes(policy.namespaces[n].literal_prefix for n in near),
                                    socket_timeout=options.socket_timeout_ms / 1000)

    # -- public API (the same on both engines) ------------------------------------------------------

    def pipeline(self, *, transaction: bool = False) -> Pipeline:
        """Queue operations of any namespaces and send them in one round trip (see docs/runtime.md, Pipelines)."""
        if not isinstance(transaction, bool):
            raise TypeError(f"transaction must be True or False, got {brief(transaction)}")
        return Pipeline(self, transaction=transaction)

    def namespace(self, name: str) -> Any:
        """The typed handle of a namespace (cached: cheap to call on every request)."""
        return self._handle(name)

    def _handle(self, name: str) -> Handle:
        handle = self._handles.get(name)
        if handle is None:
            with self._handles_lock:
                ns = self.policy.namespace(name)
                runner: Any = self._near_runner if self._near is not None and ns.local_cache is not None else self
                handle = self._handles.get(name) or handle_for(ns, runner, self)
                self._handles[name] = handle
        return handle

    def invalidate(self, rule: str, **params: Any) -> Any:
        """Run an invalidation rule; the number of keys deleted. CacheUnavailable when Redis cannot run it."""
        dropped = self._near_dropped if self._near is not None else None
        return self._drive(observed(invalidate_flow(self.policy, rule, params, dropped), self.policy, rule, self._telemetry))

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-namespace counters since the engine was built (see docs/runtime.md, Stats)."""
        return self._stats.snapshot()

    @property
    def breaker_state(self) -> str:
        """``closed`` (calls go to Redis), ``open`` (calls fail at once) or ``half-open`` (a probe may go)."""
        return self._breaker.state

    def health(self) -> dict[str, Any]:
        """``status`` (ok, degraded, down), ``breaker``, ``last_error`` (reason, message, at) and ``last_success_at``.

        Times are Unix timestamps. Meant for a readiness endpoint: fail-open namespaces keep
        serving misses while Redis fails, so this is where an outage or a refused login shows.
        """
        snapshot = self._health.snapshot(self._breaker.state, self._last_ok)
        if self._tracker is not None:
            snapshot["near_cache"] = self._tracker.state
        return snapshot

    def verify(self, *, raise_on_mismatch: bool = True) -> Any:
        """Compare the local policy digest with the one ``toolkit apply`` published on the instance."""
        return self._drive(self._verify_flow(raise_on_mismatch))

    def _verify_flow(self, raise_on_mismatch: bool) -> Flow:
        published = decode_published((yield Call("hgetall", (POLICY_KEY,))))
        if published is not None and published.get("digest") == self.policy.digest:
            return True
        if published is None:
            message = "no policy was published on this instance: run 'toolkit apply' for it"
        else:
            message = (f"the instance runs policy {published.get('digest', '?')[:12]} (applied {published.get('applied_at', '?')} "
                       f"by {published.get('applied_by', '?')}), the local files are {self.policy.digest[:12]}")
        if raise_on_mismatch:
            raise PolicyMismatch(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        return False

    def cached(self, namespace: str, *, params: Callable[..., Mapping[str, Any]] | None = None) -> Callable[[F], F]:
        """Decorate a loader: calls go through ``get_or_load`` of ``namespace``, its policy deciding TTL, codec, lock.

        The function's parameters are the namespace's key parameters, passed by keyword or
        position; ``params=`` maps the call's arguments to them instead (for functions with
        other arguments). Sync functions on ``Engine``, coroutine functions on ``AsyncEngine``.
        """
        handle = self._handle(namespace)
        if params is not None and not callable(params):
            raise PolicyViolation(f"cached({namespace!r}): params= takes a function mapping a call's arguments to the key's")
        if handle.ns.type not in ("string", "hash"):
            raise PolicyViolation(f"namespace {namespace!r} is a {handle.ns.type}: only string and hash namespaces cache loaders")

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn) != self._is_async:
                wanted = "coroutine functions (async def)" if self._is_async else "plain functions, not async def"
                raise PolicyViolation(f"{type(self).__name__}.cached decorates {wanted}: {fn.__qualname__}")
            key_params = params or _key_binder(fn, handle)
            wrapper = self._cached_wrapper(fn, handle, key_params)
            return cast(F, functools.wraps(fn)(wrapper))

        return decorate

    # -- one Op: replies and the failure table ----------------------------------------------------

    def _answer(self, op: Op, raw: Any) -> Any:
        """A reply arrived: tell the breaker if it was failing, note the success, decode."""
        if self._breaker._failures or self._breaker._opened_at is not None:
            self._answered()
        self._last_ok = _monotonic()
        return self._reply(op, raw)

    def _reply(self, op: Op, raw: Any) -> Any:
        """Decode a reply and count the read; bytes the codec cannot read are a data failure."""
        if op.decode is not None:
            try:
                value = op.decode(raw)
            except _UNDECODABLE as exc:
                return self._fail(op, DATA, _data_violation(op, exc), answered=True)
        else:
            value = raw
        if op.kind == READ:
            next(self._read_counters[op.ns.name][not raw and raw != b""])
        return value

    def _resend_flow(self, op: Op, exc: RedisError) -> Flow:
        """A failed send: resend an idempotent Op after a broken connection, else apply the failure table."""
        reason = reason_of(exc)
        attempt = 0
        pool_deadline = _monotonic() + self._pool_timeout
        while reason is not None and self._may_resend(op, reason, exc, attempt, pool_deadline):
            if reason == POOL_EXHAUSTED:
                yield Sleep(0.002)  # a node's connections are all busy and nothing was sent: wait for one
            else:
                yield Sleep(self._backoff.compute(attempt))
                attempt += 1
            try:
                raw = yield Send(op, raw=True)
            except RedisError as again:
                exc, reason = again, reason_of(again)
                continue
            return self._answer(op, raw)
        if reason is None:
            raise exc  # not a failure the table knows (a bug in a command): never hidden
        return self._fail(op, reason, exc)

    def _may_resend(self, op: Op, reason: str, exc: BaseException, attempt: int, pool_deadline: float) -> bool:
        if reason == POOL_EXHAUSTED:  # a pool that fails at once (redis.asyncio's cluster nodes): wait up to pool_timeout
            return isinstance(exc, MaxConnectionsError) and _monotonic() < pool_deadline
        return TABLE[reason].resend and not op.kind & ONCE and attempt < self._retries

    def _answered(self) -> None:
        """The server answered: reset the breaker, and say so when that closes it."""
        if self._breaker.success():
            self._health.breaker_closed()

    def _outage(self, reason: str, exc: BaseException | None) -> None:
        if self._breaker.failure():
            self._health.breaker_opened(describe(exc, reason))

    def _fail(self, op: Op, reason: str, exc: BaseException | None, *, answered: bool = False) -> Any:
        """The failure table for one immediate Op: tell the breaker, then return the fallback or raise."""
        outage = TABLE[reason].outage
        if outage:
            self._outage(reason, exc)
        elif outage is False and not answered:
            self._answered()
        value, error = self._absorb(op, reason, exc)
        if error is not None:
            # No chain: redis-py's connection messages name the host, which may come from a secret
            # ${VAR}; the message already says the reason and the error's kind.
            raise error from None
        return value

    def _absorb(self, op: Op, reason: str, exc: BaseException | None) -> tuple[Any, ToolkitError | None]:
        """Count and log a failed Op; (fallback, None) on fail-open, (None, the error to raise) on fail-closed."""
        ns = op.ns
        stats = self._stats
        if reason == DATA and exc is not None:
            exc = _data_violation(op, exc)
        stats.add(ns.name, TABLE[reason].counter)
        closed = ns.on_error == "fail-closed" and not (reason == DATA and op.kind & DATA_MISS)
        dropped = bool(op.kind & WRITE) and not closed
        self._health.failed(ns.name, reason, describe(exc, reason), dropped=dropped)
        if closed:
            return None, unavailable(ns.name, reason, exc, self._health.target)
        if dropped:
            stats.add(ns.name, "dropped_writes")
        elif op.kind == READ:
            stats.add(ns.name, "misses")
        return op.fallback, None

    # -- batches ----------------------------------------------------------------------------------

    def _send_batch(self, ops: list[Op], transaction: bool, *, keep_results: bool = False) -> Any:
        """Send Ops in one round trip (split by slot on a cluster), each reply through the failure table."""
        return self._drive(self._batch_flow(ops, transaction, keep_results))

    def _batch_flow(self, ops: list[Op], transaction: bool, keep_results: bool) -> Flow:
        """Scripts go as EVAL with their source: a NOSCRIPT reply in the middle of a batch (after a restart
        or failover) could only be resent out of order, and inside MULTI it would abort the transaction."""
        if not ops:
            return []
        if not self._breaker.allow():
            return self._settle(ops, BREAKER_OPEN, None, keep_results)
        commands = [("EVAL", _scripts.ALL[o.args[1]].source, *o.args[2:]) if o.args[0] == "EVALSHA" else o.args
                     for o in ops]
        try:
            raws = yield Exec(commands, transaction)
        except RedisError as exc:
            return self._batch_failed(ops, exc, keep_results)
        finally:
            if self._near is not None:
                self._near_written(ops)
        return self._batch_replies(ops, raws, keep_results)

    def _batch_failed(self, ops: list[Op], exc: RedisError, keep_results: bool) -> list[Any]:
        """The whole round trip failed: each Op through the failure table (see ``_settle``)."""
        reason = reason_of(exc)
        if reason is None:
            raise exc
        outage = TABLE[reason].outage
        if outage:
            self._outage(reason, exc)
        elif outage is False:
            self._answered()
        return self._settle(ops, reason, exc, keep_results)

    def _settle(self, ops: list[Op], reason: str, exc: BaseException | None, keep_results: bool) -> list[Any]:
        """Every Op of a batch failed for one reason: fallbacks for fail-open Ops; each fail-closed one
        leaves its error in place (PipelineError with ``keep_results``, else the first error is raised)."""
        results = []
        errors: dict[int, BaseException] = {}
        for i, o in enumerate(ops):
            value, error = self._absorb(o, reason, exc)
            if error is not None:
                errors[i] = value = error
            results.append(value)
        return _finished(results, errors, keep_results)

    def _batch_replies(self, ops: list[Op], raws: list[Any], keep_results: bool) -> list[Any]:
        """Each reply of a batch through the failure table on its own.

        What a fail-closed command (or an unknown server error) leaves is raised after every
        reply was read: ``keep_results`` (pipelines) raises PipelineError with all results in
        order, else the first error. A batch is never resent: it may hold commands that are not
        idempotent.
        """
        self._last_ok = _monotonic()
        outage = _batch_failure(raws)  # a cluster pipeline reports a node it cannot reach per command
        if outage is not None:
            self._outage(*outage)
        elif self._breaker._failures or self._breaker._opened_at is not None:
            self._answered()
        results: list[Any] = []
        errors: dict[int, BaseException] = {}
        reply = self._reply
        for i, (o, raw) in enumerate(zip(ops, raws)):
            if not isinstance(raw, Exception):
                try:
                    value = reply(o, raw)
                except DataViolation as exc:  # a fail-closed value its codec cannot read: kept in its place
                    errors[i] = value = exc
            elif (reason := reason_of(raw)) is None:
                errors[i] = value = raw
            else:
                value, error = self._absorb(o, reason, raw)
                if error is not None:
                    errors[i] = value = error
            results.append(value)
        return _finished(results, errors, keep_results)

    # -- the near cache ---------------------------------------------------------------------------

    def _near_fill(self, op: Op) -> Flow:
        """A near-cached read that missed locally: the value and its remaining TTL in one round trip, the raw
        reply kept (unless the key changed meanwhile), then decoded and counted as any reply."""
        near = self._near
        assert near is not None
        key = op.args[1]
        token = near.begin(key)
        raw: Any = _FAILED
        pttl: Any = None
        try:
            raw, pttl = yield Batch([op._replace(decode=None, kind=op.kind & ~READ, fallback=_FAILED),
                                     _op(op.ns, ("PTTL", key), None, OTHER, None)])
            if raw is _FAILED:  # Redis failed on a fail-open namespace: as run() would answer
                if op.kind == READ:
                    self._stats.add(op.ns.name, "misses")
                return op.fallback
            try:
                if op.decode is not None:
                    op.decode(raw)
            except _UNDECODABLE:
                raw = _FAILED  # a value the codec cannot read is never kept
        finally:
            near.finish(token, op.ns.name, key, op.args, MISSING if raw is _FAILED else raw, pttl)
        return self._reply(op, raw)

    def _near_dropped(self, keys: Iterable[str] | None) -> None:
        """An invalidation deleted these keys (None: keys it cannot list, an index): drop the local copies now."""
        near = self._near
        assert near is not None
        if keys is None:
            near.flush(ready=None)
        else:
            near.invalidate(keys)

    def _near_written(self, ops: Iterable[Op]) -> None:
        """After writes of near-cached keys: drop the local copies now (the invalidation messages follow)."""
        near = self._near
        if near is not None:
            written = [op_key(o) for o in ops if o.ns.local_cache is not None and o.kind & WRITE]
            if written:
                near.invalidate(written)

    # -- flows ------------------------------------------------------------------------------------

    def _perform(self, request: Any) -> Any:
        """One step of a flow: its result on the sync engine, an awaitable (or a result) on the asyncio one."""
        kind = type(request)
        if kind is Send:
            if request.raw:
                return self._execute(request.op.args)
            # a flow's own reads and writes of near-cached keys (get_or_load's fill, its lock) keep the copies right
            return self._near_run(request.op) if request.op.ns.local_cache is not None and self._near else self.run(request.op)
        if kind is Batch:
            return self._send_batch(request.ops, request.transaction, keep_results=request.keep_results)
        if kind is Exec:
            return self._exec(request.commands, request.transaction)
        if kind is Call:
            return getattr(self.client, request.method)(*request.args)
        if kind is Load:
            return self._call_loader(request.loader)
        if kind is Sleep:
            return self._sleep(request.seconds)
        if kind is Flight:
            return self._flights.do(request.key, functools.partial(self._drive, request.flow), wait=request.wait,
                                    since=request.since)
        if kind is Scan:
            return self.client.scan_iter(match=request.pattern, count=request.page)
        if kind is ScanNext:
            return self._next_keys(request.cursor, request.size)
        raise TypeError(f"unknown flow request {request!r}")

    # Supplied by each engine: how to send, sleep, take keys from a scan and drive a flow.
    _is_async = False
    _sleep: Callable[[float], Any]
    _flights: Any

    def _call_loader(self, loader: Callable[[], Any]) -> Any:
        raise NotImplementedError

    def run(self, op: Op) -> Any:
        raise NotImplementedError

    def _execute(self, args: tuple) -> Any:
        raise NotImplementedError

    def _next_keys(self, cursor: Any, size: int) -> Any:
        raise NotImplementedError

    def _drive(self, flow: Flow) -> Any:
        raise NotImplementedError

    def _get_or_load(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _traced_get_or_load(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Any:
        raise NotImplementedError

    def _near_run(self, op: Op) -> Any:
        raise NotImplementedError

    def _exec(self, commands: list[tuple], transaction: bool) -> Any:
        """Send a batch through a client pipeline (the client resets it whatever happens); an awaitable of the
        replies on the asyncio engine."""
        pipe = self.client.pipeline(transaction=transaction)
        for args in commands:
            pipe.execute_command(*args)
        return pipe.execute(raise_on_error=False)

    def _cached_wrapper(self, fn: Callable, handle: Any, key_params: Callable[..., Mapping[str, Any]]) -> Callable:
        raise NotImplementedError


def _key_binder(fn: Callable, handle: Handle) -> Callable[..., Mapping[str, Any]]:
    """Map a call of ``fn`` to the namespace's key parameters: its parameters must be exactly those."""
    signature = inspect.signature(fn)
    names = set(handle.ns.template.params)
    given = {name for name, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if given != names:
        raise PolicyViolation(f"cached({handle.ns.name!r}): {fn.__qualname__} takes ({', '.join(sorted(given)) or 'nothing'}) "
                              f"but the key takes ({', '.join(sorted(names))}); pass params= to map the arguments")

    def bind(*args: Any, **kwargs: Any) -> Mapping[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    return bind


def resolve(policies: PolicySet | str | Iterable[str], target: str | None, client: Any,
            verify: bool | str) -> tuple[PolicySet, Any, ClientOptions]:
    """The policy set, the chosen Target (None with a caller's client) and the engine's settings for ``connect``."""
    from toolkit.policy import load

    if verify not in (True, False, "warn"):
        raise ConfigurationError(f"verify must be True, False or 'warn', got {brief(verify)}")
    if client is not None and not callable(getattr(client, "execute_command", None)):
        raise ConfigurationError(f"client must be a redis-py client (Redis, RedisCluster or their asyncio twins), "
                                 f"got {type(client).__name__}")
    policy = policies if isinstance(policies, PolicySet) else load(policies)
    if client is None:
        chosen = policy.target(target)
        return policy, chosen, chosen.client
    return policy, None, policy.target(target).client if target is not None else ClientOptions()
