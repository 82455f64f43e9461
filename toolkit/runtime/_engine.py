"""The Engine: sends Ops through redis-py, applies each namespace's failure policy, keeps stats."""

from __future__ import annotations

import threading
import warnings
from typing import Any, Callable, Iterable

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from toolkit.errors import CacheUnavailable, ConfigurationError, PolicyViolation, ToolkitError
from toolkit.policy.model import ClientOptions, Namespace, PolicySet
from toolkit.policy.published import read_published
from toolkit.runtime import _scripts
from toolkit.runtime._breaker import CircuitBreaker
from toolkit.runtime._client import close_client, is_cluster
from toolkit.runtime._handles import Handle, handle_for
from toolkit.runtime._ops import READ, WRITE, Op
from toolkit.runtime._stats import Stats

UNAVAILABLE: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError)
"""Errors that mean "Redis cannot be reached" (cluster-down errors are added when the cluster module loads)."""
try:
    from redis.exceptions import ClusterDownError, MasterDownError

    UNAVAILABLE += (ClusterDownError, MasterDownError)
except ImportError:  # older redis-py
    pass


class PolicyMismatch(ToolkitError):
    """``verify=True``: the instance runs under another policy than the local files."""


def _wrong_type(exc: ResponseError) -> PolicyViolation | None:
    """WRONGTYPE means the key holds another type than its namespace declares: a policy violation in the data."""
    if "WRONGTYPE" not in str(exc):
        return None
    return PolicyViolation(f"the key holds another Redis type than its namespace declares ({exc}); "
                           "'toolkit audit' lists such keys")


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

    def __init__(self, policy: PolicySet, client: Any, options: ClientOptions = ClientOptions(), *, owns_client: bool = False):
        from toolkit.runtime._cache_aside import CacheAside

        self.policy = policy
        self.client = client
        self.cluster = is_cluster(client)
        self._owns_client = owns_client
        self._breaker = CircuitBreaker(options.breaker_threshold, options.breaker_cooldown_ms / 1000)
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
        return self._breaker.state

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
            return self._unavailable(op, None)
        try:
            try:
                raw = self.client.execute_command(*op.args)
            except NoScriptError:
                raw = self.client.execute_command("EVAL", _scripts.ALL[op.args[1]].source, *op.args[2:])
        except UNAVAILABLE as exc:
            breaker.failure()
            return self._unavailable(op, exc)
        except ResponseError as exc:
            breaker.success()  # the server answered: it is reachable
            raise _wrong_type(exc) or exc
        if breaker._failures or breaker._opened_at is not None:
            breaker.success()
        if op.kind == READ:
            next(self._read_counters[op.ns.name][not raw and raw != b""])
        return raw if op.decode is None else op.decode(raw)

    def _unavailable(self, op: Op, exc: BaseException | None) -> Any:
        """Apply the namespace's on_error policy to an Op that could not reach Redis."""
        ns = op.ns
        self._stats.add(ns.name, "errors")
        if ns.on_error == "fail-closed":
            reason = f"{type(exc).__name__}: {exc}" if exc is not None else "circuit breaker open after repeated connection failures"
            raise CacheUnavailable(f"namespace {ns.name!r} is fail-closed and Redis is unavailable ({reason})") from exc
        if op.kind == WRITE:
            self._stats.add(ns.name, "dropped_writes")
        elif op.kind == READ:
            self._stats.add(ns.name, "misses")
        return op.fallback

    def _send_batch(self, ops: list[Op], transaction: bool) -> list[Any]:
        """Send Ops in one round trip (split by slot on a cluster), then decode each reply.

        Scripts go as EVAL with their source here: a NOSCRIPT reply in the middle of a batch
        (after a restart or failover) could only be retried out of order, and inside MULTI it
        would abort the whole transaction.
        """
        if not ops:
            return []
        if not self._breaker.allow():
            return [self._unavailable(op, None) for op in ops]
        pipe = self.client.pipeline(transaction=transaction)
        for op in ops:
            if op.args[0] == "EVALSHA":
                pipe.execute_command("EVAL", _scripts.ALL[op.args[1]].source, *op.args[2:])
            else:
                pipe.execute_command(*op.args)
        try:
            raws = pipe.execute(raise_on_error=False)
        except UNAVAILABLE as exc:
            self._breaker.failure()
            return [self._unavailable(op, exc) for op in ops]
        finally:
            pipe.reset()
        # A cluster pipeline reports a node it cannot reach per command instead of raising.
        if any(isinstance(raw, UNAVAILABLE) for raw in raws):
            self._breaker.failure()
        else:
            self._breaker.success()
        results = []
        first_error: BaseException | None = None
        for op, raw in zip(ops, raws):
            if isinstance(raw, UNAVAILABLE):
                results.append(self._unavailable(op, raw))
                continue
            if isinstance(raw, Exception):
                first_error = first_error or raw
                results.append(raw)
                continue
            if op.kind == READ:
                next(self._read_counters[op.ns.name][not raw and raw != b""])
            results.append(raw if op.decode is None else op.decode(raw))
        if first_error is not None:
            raise (_wrong_type(first_error) if isinstance(first_error, ResponseError) else None) or first_error
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
        options = chosen.client
        client = build_client(chosen)
    elif target is not None:
        options = policy.target(target).client
    engine = Engine(policy, client, options, owns_client=owns)
    if verify:
        engine.verify(raise_on_mismatch=verify != "warn")
    return engine
