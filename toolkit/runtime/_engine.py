"""The Engine: sends Ops through redis-py, applies the failure table (``_failures``), keeps stats."""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any, Callable, Iterable

from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import NoScriptError, RedisError

from toolkit.errors import ConfigurationError, DataViolation, PipelineError, PolicyMismatch, ToolkitError
from toolkit.policy.model import ClientOptions, Namespace, PolicySet
from toolkit.policy.published import read_published
from toolkit.policy.secrets import Redactor
from toolkit.runtime import _scripts
from toolkit.runtime._breaker import CircuitBreaker
from toolkit.runtime._client import close_client, is_cluster
from toolkit.runtime._failures import BREAKER_OPEN, DATA, TABLE, describe, reason_of, unavailable
from toolkit.runtime._handles import Handle, handle_for
from toolkit.runtime._health import Health
from toolkit.runtime._ops import ONCE, READ, WRITE, Op, op_key
from toolkit.runtime._stats import Stats

__all__ = ["Engine", "PolicyMismatch", "connect"]

_UNDECODABLE = (ValueError, TypeError, UnicodeDecodeError)
"""What a codec raises on bytes it cannot read (json.JSONDecodeError is a ValueError)."""
_monotonic = time.monotonic


def _data_violation(o: Op, exc: BaseException) -> DataViolation:
    if isinstance(exc, DataViolation):
        return exc
    if isinstance(exc, RedisError):
        detail = str(exc).splitlines()[0][:160]
        if "WRONGTYPE" in detail:
            detail = f"the key holds another Redis type than {o.ns.type} ({detail})"
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


class Engine:
    """Every read and write of an application, through its policy set.

    Get one with ``toolkit.connect``; take handles with ``engine.namespace(name)``.
    Thread-safe: share one Engine (and its connection pool) across threads.
    """

    def __init__(self, policy: PolicySet, client: Any, options: ClientOptions = ClientOptions(), *, owns_client: bool = False,
                 target: str | None = None):
        from toolkit.runtime._cache_aside import CacheAside

        self.policy = policy
        self.client = client
        self.cluster = is_cluster(client)
        self._owns_client = owns_client
        self._breaker = CircuitBreaker(options.breaker_threshold, options.breaker_cooldown_ms / 1000)
        self._retries = options.retries
        self._backoff = ExponentialWithJitterBackoff(cap=1.0, base=0.02)
        self._health = Health(target)
        self._last_ok: float | None = None
        """``time.monotonic()`` of the last call Redis answered: set on every success, read by ``health()``."""
        self._stats = Stats(list(policy.namespaces))
        # (hits, misses) counters per namespace, indexed by "was it a miss" on the hot path.
        self._read_counters = {n: (self._stats.counter(n, "hits"), self._stats.counter(n, "misses")) for n in policy.namespaces}
        self._handles: dict[str, Handle] = {}
        self._handles_lock = threading.Lock()
        self._cache_aside = CacheAside(self)
        self._indexes = _index_plan(policy, self.cluster)
        decoding = getattr(client, "get_connection_kwargs", lambda: {})().get("decode_responses", False)
        if decoding and any(ns.codec == "bytes" for ns in policy.namespaces.values()):
            raise ConfigurationError("the client decodes responses (decode_responses=True) but namespaces with codec "
                                     "bytes need raw bytes: pass a client without decode_responses")

    # -- public API ------------------------------------------------------------------------------

    def namespace(self, name: str) -> Handle:
        """The typed handle of a namespace (cached: cheap to call on every request)."""
        handle = self._handles.get(name)
        if handle is None:
            with self._handles_lock:
                handle = self._handles.get(name) or handle_for(self.policy.namespace(name), self, self)
                self._handles[name] = handle
        return handle

    def pipeline(self, *, transaction: bool = False) -> "Pipeline":
        """Queue operations of any namespaces and send them in one round trip (see Pipeline)."""
        from toolkit.runtime._pipeline import Pipeline

        return Pipeline(self, transaction=transaction)

    def invalidate(self, rule: str, **params: Any) -> int:
        """Run an invalidation rule; returns how many keys were deleted. Raises CacheUnavailable if Redis is down."""
        from toolkit.runtime._invalidate import invalidate

        return invalidate(self, rule, params)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per-namespace hits, misses, loads, errors and dropped writes since the engine was built."""
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
        return self._health.snapshot(self._breaker.state, self._last_ok)

    def verify(self, *, raise_on_mismatch: bool = True) -> bool:
        """Compare the local policy digest with the one ``toolkit apply`` published on the instance."""
        published = read_published(self.client)
        if published is not None and published.get("digest") == self.policy.digest:
            return True
        if published is None:
            message = "no policy was published on this instance: run 'toolkit apply' for it"
        else:
            message = (f"the instance runs policy {published.get('digest', '?')[:12]} (applied {published.get('applied_at', '?')} "
                       f"by {published.get('applied_by', '?')}), the local files are {self.policy.digest[:12]}")
        if raise_on_mismatch:
            raise PolicyMismatch(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return False

    def close(self) -> None:
        """Close the client if the engine built it (a caller's client is left to the caller)."""
        if self._owns_client:
            close_client(self.client)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------------

    def run(self, op: Op) -> Any:
        """Send one Op now and return its decoded reply (the Runner protocol of handles).

        This is the hot path of every engine call: checks are inlined attribute reads.
        """
        breaker = self._breaker
        if breaker._opened_at is not None and not breaker.allow():
            return self._fail(op, BREAKER_OPEN, None)
        try:
            try:
                raw = self.client.execute_command(*op.args)
            except NoScriptError:
                raw = self.client.execute_command("EVAL", _scripts.ALL[op.args[1]].source, *op.args[2:])
        except RedisError as exc:
            return self._recover(op, exc)
        if breaker._failures or breaker._opened_at is not None:
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

    def _recover(self, op: Op, exc: RedisError) -> Any:
        """A failed send: resend an idempotent Op after a broken connection, else apply the failure table."""
        reason = reason_of(exc)
        if reason is None:
            raise exc  # not a failure the table knows (a bug in a command): never hidden
        attempt = 0
        while TABLE[reason].resend and not op.kind & ONCE and attempt < self._retries:
            time.sleep(self._backoff.compute(attempt))
            attempt += 1
            try:
                raw = self.client.execute_command(*op.args)
            except NoScriptError:
                return self.run(op)
            except RedisError as again:
                exc, reason = again, reason_of(again)
                if reason is None:
                    raise
                continue
            self._answered()
            self._last_ok = _monotonic()
            return self._reply(op, raw)
        return self._fail(op, reason, exc)

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
        if reason == DATA:
            exc = _data_violation(op, exc) if exc is not None else exc
        stats.add(ns.name, TABLE[reason].counter)
        closed = ns.on_error == "fail-closed"
        dropped = bool(op.kind & WRITE) and not closed
        self._health.failed(ns.name, reason, describe(exc, reason), dropped=dropped)
        if closed:
            return None, unavailable(ns.name, reason, exc, self._health.target)
        if dropped:
            stats.add(ns.name, "dropped_writes")
        elif op.kind == READ:
            stats.add(ns.name, "misses")
        return op.fallback, None

    def _send_batch(self, ops: list[Op], transaction: bool, *, keep_results: bool = False) -> list[Any]:
        """Send Ops in one round trip (split by slot on a cluster), then decode each reply.

        Each failed command goes through the failure table on its own. What a fail-closed
        command (or an unknown server error) leaves is raised after every reply was read:
        ``keep_results`` (pipelines) raises PipelineError with all results in order, else the
        first error. A batch is never resent: it may hold commands that are not idempotent.

        Scripts go as EVAL with their source here: a NOSCRIPT reply in the middle of a batch
        (after a restart or failover) could only be retried out of order, and inside MULTI it
        would abort the whole transaction.
        """
        if not ops:
            return []
        if not self._breaker.allow():
            return self._settle(ops, [(BREAKER_OPEN, None)] * len(ops))
        pipe = self.client.pipeline(transaction=transaction)
        for o in ops:
            if o.args[0] == "EVALSHA":
                pipe.execute_command("EVAL", _scripts.ALL[o.args[1]].source, *o.args[2:])
            else:
                pipe.execute_command(*o.args)
        try:
            raws = pipe.execute(raise_on_error=False)
        except RedisError as exc:
            reason = reason_of(exc)
            if reason is None:
                raise
            outage = TABLE[reason].outage
            if outage:
                self._outage(reason, exc)
            elif outage is False:
                self._answered()
            return self._settle(ops, [(reason, exc)] * len(ops))
        finally:
            pipe.reset()
        self._last_ok = _monotonic()
        failures = {i: (reason_of(raw), raw) for i, raw in enumerate(raws) if isinstance(raw, Exception)}
        if any(reason is not None and TABLE[reason].outage for reason, _ in failures.values()):
            # A cluster pipeline reports a node it cannot reach per command instead of raising.
            reason, exc = next((r, e) for r, e in failures.values() if r is not None and TABLE[r].outage)
            self._outage(reason, exc)
        else:
            self._answered()
        results: list[Any] = []
        errors: dict[int, BaseException] = {}
        for i, (o, raw) in enumerate(zip(ops, raws)):
            failure = failures.get(i)
            if failure is None:
                try:
                    value = self._reply(o, raw)
                except DataViolation as exc:  # a fail-closed value its codec cannot read: kept in its place
                    errors[i] = value = exc
            elif failure[0] is None:
                errors[i] = value = failure[1]
            else:
                value, error = self._absorb(o, failure[0], failure[1])
                if error is not None:
                    errors[i] = value = error
            results.append(value)
        if errors:
            if keep_results:
                raise PipelineError(results, errors)
            raise next(iter(errors.values()))
        return results

    def _settle(self, ops: list[Op], failures: list[tuple[str, BaseException | None]]) -> list[Any]:
        """A batch that failed as a whole: fallbacks for fail-open Ops; the first fail-closed error is raised."""
        results = []
        first: ToolkitError | None = None
        for o, (reason, exc) in zip(ops, failures):
            value, error = self._absorb(o, reason, exc)
            first = first or error
            results.append(value)
        if first is not None:
            raise first
        return results

    def _multi(self, ns: Namespace, commands: list[tuple], decode: Callable[[Any], Any] | None, kind: int,
               fallback: Any, *, atomic: bool) -> list[Any]:
        """Several commands of one namespace in one round trip; ``atomic`` as a transaction where Redis allows it."""
        ops = [Op(ns, c, decode, kind, fallback) for c in commands]
        return self._send_batch(ops, transaction=atomic and not self.cluster)


def connect(policies: PolicySet | str | Iterable[str], target: str | None = None, *, client: Any = None,
            verify: bool | str = False) -> Engine:
    """An Engine for ``policies`` on ``target`` (built with redis-py) or on the caller's ``client``.

    ``verify=True`` raises PolicyMismatch when the instance was applied with other policy files;
    ``verify="warn"`` only warns.
    """
    from toolkit.policy import load

    policy = policies if isinstance(policies, PolicySet) else load(policies)
    options = ClientOptions()
    owns = client is None
    if client is None:
        from toolkit.runtime._client import build_client

        chosen = policy.target(target)
        options, target = chosen.client, chosen.name
        with Redactor(chosen).scrubbing():  # a cluster client connects at once: its errors name the host
            client = build_client(chosen)
    elif target is not None:
        options = policy.target(target).client
    engine = Engine(policy, client, options, owns_client=owns, target=target)
    if verify:
        with Redactor(policy.target(target) if target is not None else None).scrubbing():
            engine.verify(raise_on_mismatch=verify != "warn")
    return engine
