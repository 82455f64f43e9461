"""The asyncio engine: the same policy core (``_core``) and flows, driven with ``redis.asyncio``.

Handles are the sync engine's own classes: a handle method builds its Op and returns
``engine.run(op)``, which here is a coroutine, so ``await users.hset(...)`` is all it takes.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from typing import Any, cast

from redis.exceptions import NoScriptError, RedisError

from toolkit.policy.model import PolicySet
from toolkit.policy.secrets import Redactor
from toolkit.runtime import _scripts
from toolkit.runtime._core import EngineCore, resolve
from toolkit.runtime._failures import BREAKER_OPEN
from toolkit.runtime._flight import AsyncSingleFlight
from toolkit.runtime._flows import Flow, Steps
from toolkit.runtime._handles import Handle
from toolkit.runtime._near import MISSING, NEAR_READS
from toolkit.runtime._ops import Op
from toolkit.runtime._typing import AsyncAnyHandle

__all__ = ["AsyncEngine", "connect"]


class AsyncEngine(EngineCore):
    """``Engine`` for asyncio applications: the same handles, methods, exceptions, failure table and stats,
    every call awaited. Get one with ``await toolkit.aio.connect(...)`` (or ``async with``).

    One engine per event loop: its connections belong to the loop that first used them.
    """

    _is_async = True
    _sleep = staticmethod(asyncio.sleep)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._flights = AsyncSingleFlight()

    def namespace(self, name: str) -> AsyncAnyHandle:
        """The handle of a namespace: its type's methods, each awaited (cached: cheap to call on every request)."""
        return cast(AsyncAnyHandle, self._handle(name))

    async def aclose(self) -> None:
        """Close the client if the engine built it (a caller's client is left to the caller)."""
        self._telemetry.close()
        if self._tracker is not None:
            await asyncio.to_thread(self._tracker.stop)  # joins its threads: never on the event loop
        if self._owns_client:
            from toolkit.runtime._client import aclose_client

            await aclose_client(self.client)

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sending ---------------------------------------------------------------------------------

    async def run(self, op: Op) -> Any:
        """Send one Op and return its decoded reply (the Runner protocol of handles): the hot path."""
        breaker = self._breaker
        if breaker._opened_at is not None and not breaker.allow():
            return self._fail(op, BREAKER_OPEN, None)
        try:
            try:  # _execute, inlined: one coroutine less per call
                raw = await self.client.execute_command(*op.args)
            except NoScriptError:
                raw = await self.client.execute_command("EVAL", _scripts.ALL[op.args[1]].source, *op.args[2:])
        except RedisError as exc:
            return await self._drive(self._resend_flow(op, exc))
        return self._answer(op, raw)

    async def _near_run(self, op: Op) -> Any:
        """``run`` for near-cached namespaces: reads answered from process memory when a copy is there."""
        near = self._near
        assert near is not None
        args = op.args
        if args[0] in NEAR_READS:
            raw = near.get(op.ns.name, args[1], args)
            if raw is not MISSING:
                return self._reply(op, raw)
            return await self._drive(self._near_fill(op))
        try:
            return await self.run(op)
        finally:
            self._near_written((op,))

    async def _execute(self, args: tuple) -> Any:
        try:
            return await self.client.execute_command(*args)
        except NoScriptError:  # the server lost its script cache (restart, failover): send the source once
            return await self.client.execute_command("EVAL", _scripts.ALL[args[1]].source, *args[2:])

    async def _call_loader(self, loader: Callable[[], Any]) -> Any:
        """A coroutine function is awaited on the loop; a plain function runs in a worker thread (it may block,
        as a database driver does), and what it returns is awaited when it is awaitable (``lambda: fetch(id)``)."""
        if inspect.iscoroutinefunction(loader):
            return await loader()
        value = await asyncio.to_thread(loader)
        return await value if inspect.isawaitable(value) else value

    async def _next_keys(self, cursor: Any, size: int) -> list[Any]:
        keys = []
        async for key in cursor:
            keys.append(key)
            if len(keys) >= size:
                break
        return keys

    async def _drive(self, flow: Flow) -> Any:
        """Perform a flow's requests, awaiting each, until it returns."""
        steps = Steps(flow)
        for request in steps:
            steps.reply = await self._attempt(request)
        return steps.value

    async def _attempt(self, request: Any) -> tuple[Any, BaseException | None]:
        try:
            result = self._perform(request)
            return (await result if inspect.isawaitable(result) else result), None
        except BaseException as exc:  # noqa: BLE001 - thrown into the flow: its finally blocks (a lock release) still run
            return None, exc

    async def _get_or_load(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Any:
        cache = self._cache_aside
        read = cache.plain_read(handle, params)
        if read is None:
            return await self._drive(cache.get_or_load(handle, loader, params))
        found, value = await handle._runner.run(read.op)  # the engine, or its near cache for local_cache namespaces
        return cache.hit(handle, value) if found else await self._perform(cache.miss(handle, loader, params, read))

    async def _traced_get_or_load(self, handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Any:
        """``_get_or_load`` in a span (the engine uses it instead when a TracerProvider is configured)."""
        with self._telemetry.get_or_load_span(handle, params):
            return await AsyncEngine._get_or_load(self, handle, loader, params)

    def _cached_wrapper(self, fn: Callable, handle: Any, key_params: Callable[..., Mapping[str, Any]]) -> Callable:
        async def cached(*args: Any, **kwargs: Any) -> Any:
            return await handle.get_or_load(functools.partial(fn, *args, **kwargs), **key_params(*args, **kwargs))

        return cached


class _Connecting:
    """What ``toolkit.aio.connect`` returns: awaitable (``engine = await connect(...)``) and an async
    context manager (``async with connect(...) as engine:``, closed on the way out)."""

    def __init__(self, opening: Callable[[], Awaitable[AsyncEngine]]):
        self._opening = opening
        self._engine: AsyncEngine | None = None

    def __await__(self) -> Generator[Any, None, AsyncEngine]:
        return self._opening().__await__()

    async def __aenter__(self) -> AsyncEngine:
        self._engine = await self._opening()
        return self._engine

    async def __aexit__(self, *exc: object) -> None:
        if self._engine is not None:
            await self._engine.aclose()


def connect(policies: PolicySet | str | Iterable[str], target: str | None = None, *, client: Any = None,
            verify: bool | str = False) -> _Connecting:
    """An AsyncEngine for ``policies`` on ``target`` (built with ``redis.asyncio``) or on the caller's
    asyncio ``client``: ``engine = await toolkit.aio.connect(...)`` or ``async with toolkit.aio.connect(...)``.

    Same arguments, rules and errors as ``toolkit.connect``.
    """

    async def opening() -> AsyncEngine:
        policy, chosen, options = resolve(policies, target, client, verify)
        redactor = Redactor(chosen)
        built = client
        if chosen is not None:
            from toolkit.runtime._client import build_async_client

            with redactor.scrubbing():  # a cluster client connects at once: its errors name the host
                built = await build_async_client(chosen)
        engine = AsyncEngine(policy, built, options, owns_client=chosen is not None, target=chosen.name if chosen else target)
        if verify:
            try:
                with redactor.scrubbing():
                    await engine.verify(raise_on_mismatch=verify != "warn")
            except BaseException:
                await engine.aclose()
                raise
        return engine

    return _Connecting(opening)
