"""The sync Engine: the policy core (``_core``) driven with blocking redis-py calls."""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

from redis.exceptions import NoScriptError, RedisError, ResponseError

from toolkit.errors import PolicyMismatch, PolicyViolation
from toolkit.policy.model import PolicySet
from toolkit.policy.secrets import Redactor
from toolkit.runtime import _scripts
from toolkit.runtime._core import EngineCore, resolve
from toolkit.runtime._failures import BREAKER_OPEN
from toolkit.runtime._flight import SingleFlight
from toolkit.runtime._flows import Flow, Steps
from toolkit.runtime._handles import Handle
from toolkit.runtime._near import MISSING, NEAR_READS
from toolkit.runtime._ops import Op
from toolkit.runtime._typing import AnyHandle

__all__ = ["Engine", "PolicyMismatch", "connect"]


class Engine(EngineCore):
    """Every read and write of an application, through its policy set.

    Get one with ``toolkit.connect``; take handles with ``engine.namespace(name)``.
    Thread-safe: share one Engine (and its connection pool) across threads.
    """

    _sleep = staticmethod(time.sleep)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._flights = SingleFlight()

    def namespace(self, name: str) -> AnyHandle:
        """The handle of a namespace: its type's methods (cached: cheap to call on every request)."""
        return cast(AnyHandle, self._handle(name))

    def close(self) -> None:
        """Close the client if the engine built it (a caller's client is left to the caller)."""
        self._telemetry.close()
        if self._tracker is not None:
            self._tracker.stop()
        if self._owns_client:
            from toolkit.runtime._client import close_client

            close_client(self.client)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------------

    def run(self, op: Op) -> Any:
        """Send one Op now and return its decoded reply (the Runner protocol of handles): the hot path."""
        breaker = self._breaker
        if breaker._opened_at is not None and not breaker.allow():
            return self._fail(op, BREAKER_OPEN, None)
        try:
            raw = self._execute(op.args)
        except RedisError as exc:
            return self._drive(self._resend_flow(op, exc))
        return self._answer(op, raw)

    def _near_run(self, op: Op) -> Any:
        """``run`` for near-cached namespaces: reads answered from process memory when a copy is there."""
        near = self._near
        assert near is not None
        args = op.args
        if args[0] in NEAR_READS:
            raw = near.get(op.ns.name, args[1], args)
            if raw is not MISSING:
                return self._reply(op, raw)
            return self._drive(self._near_fill(op))
        try:
            return self.run(op)
        finally:
            self._near_written((op,))

    def _exec(self, commands: list[tuple], transaction: bool) -> Any:
        """A batch on one standalone connection, written and read here: a redis-py pipeline spends more per
        command than the policy layer does (its queue, options and per-reply bookkeeping). The same wire
        bytes and the client's own reply callbacks; transactions and clusters go through redis-py."""
        client = self.client
        if transaction or self.cluster or getattr(client, "connection", None) is not None:
            return super()._exec(commands, transaction)
        pool = client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(connection.pack_commands(commands))
            callbacks = client.response_callbacks
            replies: list[Any] = []
            append = replies.append
            for args in commands:
                try:
                    raw = connection.read_response()
                except ResponseError as exc:
                    append(exc)
                    continue
                callback = callbacks.get(args[0])
                append(raw if callback is None else callback(raw))
            return replies
        except BaseException:
            connection.disconnect()  # replies may be left unread: this socket cannot serve anyone else
            raise
        finally:
            pool.release(connection)

    def _execute(self, args: tuple) -> Any:
        try:
            return self.client.execute_command(*args)
        except NoScriptError:  # the server lost its script cache (restart, failover): send the source once
            return self.client.execute_command("EVAL", _scripts.ALL[args[1]].source, *args[2:])

    def _get_or_load(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Any:
        cache = self._cache_aside
        read = cache.plain_read(handle, params)
        if read is None:
            return self._drive(cache.get_or_load(handle, loader, params))
        found, value = handle._runner.run(read.op)  # the engine, or its near cache for local_cache namespaces
        return cache.hit(handle, value) if found else self._perform(cache.miss(handle, loader, params, read))

    def _traced_get_or_load(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Any:
        """``_get_or_load`` in a span (the engine uses it instead when a TracerProvider is configured)."""
        with self._telemetry.get_or_load_span(handle, params):
            return Engine._get_or_load(self, handle, loader, params)

    def _call_loader(self, loader: Callable[[], Any]) -> Any:
        return _refuse_awaitables(loader())

    def _next_keys(self, cursor: Iterator[Any], size: int) -> list[Any]:
        return list(itertools.islice(cursor, size))

    def _drive(self, flow: Flow) -> Any:
        """Perform a flow's requests one by one with blocking calls until it returns."""
        steps = Steps(flow)
        for request in steps:
            steps.reply = self._attempt(request)
        return steps.value

    def _attempt(self, request: Any) -> tuple[Any, BaseException | None]:
        try:
            return self._perform(request), None
        except BaseException as exc:  # noqa: BLE001 - thrown into the flow: its finally blocks (a lock release) still run
            return None, exc

    def _cached_wrapper(self, fn: Callable, handle: Any, key_params: Callable[..., Mapping[str, Any]]) -> Callable:
        def cached(*args: Any, **kwargs: Any) -> Any:
            return handle.get_or_load(functools.partial(fn, *args, **kwargs), **key_params(*args, **kwargs))

        return cached


def connect(policies: PolicySet | str | Iterable[str], target: str | None = None, *, client: Any = None,
            verify: bool | str = False) -> Engine:
    """An Engine for ``policies`` on ``target`` (built with redis-py) or on the caller's ``client``.

    ``verify=True`` raises PolicyMismatch when the instance was applied with other policy files;
    ``verify="warn"`` only warns.
    """
    policy, chosen, options = resolve(policies, target, client, verify)
    redactor = Redactor(chosen)
    if chosen is not None:
        from toolkit.runtime._client import build_client

        with redactor.scrubbing():  # a cluster client connects at once: its errors name the host
            client = build_client(chosen)
    engine = Engine(policy, client, options, owns_client=chosen is not None, target=chosen.name if chosen else target)
    if verify:
        try:
            with redactor.scrubbing():
                engine.verify(raise_on_mismatch=verify != "warn")
        except BaseException:
            engine.close()  # the client it built (a caller's own is left open)
            raise
    return engine


def _refuse_awaitables(value: Any) -> Any:
    """A coroutine from a loader on the sync engine would be cached as an object: refuse it, clearly."""
    if hasattr(value, "__await__"):
        close = getattr(value, "close", None)
        if close is not None:
            close()
        raise PolicyViolation("the sync engine cannot await a loader: use toolkit.aio.connect for async def loaders")
    return value
