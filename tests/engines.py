"""Both engines behind one test API, so that each behaviour test runs against the sync Engine and
the AsyncEngine alike (parametrized through the ``engine_kind`` fixture, never copied).

``Blocking`` drives an AsyncEngine from sync test code: every coroutine runs on one event loop
in a background thread (so threads of a test still make concurrent tasks on that loop). It is
a test harness only: it forwards calls and awaits what comes back, and adds no behaviour.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from typing import Any, Callable, Iterable

import redis
import redis.asyncio

import toolkit
import toolkit.aio
from toolkit.policy.model import ClientOptions, PolicySet
from toolkit.runtime import AsyncEngine, Engine

KINDS = ("sync", "async")


class Loop:
    """One event loop in a daemon thread; ``run(coro)`` waits for its result from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, awaitable: Any) -> Any:
        async def wrapped() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class _Handle:
    def __init__(self, loop: Loop, handle: Any):
        self._loop, self._handle = loop, handle

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._handle, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return self._loop.run(result) if inspect.isawaitable(result) else result

        return call

    def __repr__(self) -> str:
        return repr(self._handle)


class _Pipeline:
    def __init__(self, loop: Loop, pipeline: Any):
        self._loop, self._pipeline = loop, pipeline

    def namespace(self, name: str) -> Any:
        return self._pipeline.namespace(name)  # queuing sends nothing: the handle's methods return None

    @property
    def results(self) -> list[Any]:
        return self._pipeline.results

    def execute(self) -> list[Any]:
        return self._loop.run(self._pipeline.execute())

    def __len__(self) -> int:
        return len(self._pipeline)

    def __enter__(self) -> "_Pipeline":
        self._loop.run(self._pipeline.__aenter__())
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self._loop.run(self._pipeline.__aexit__(exc_type, *rest))


class Blocking:
    """An AsyncEngine with the sync Engine's calling convention, for tests."""

    def __init__(self, loop: Loop, engine: AsyncEngine):
        self._loop, self.engine = loop, engine

    def namespace(self, name: str) -> _Handle:
        return _Handle(self._loop, self.engine.namespace(name))

    def pipeline(self, **kwargs: Any) -> _Pipeline:
        return _Pipeline(self._loop, self.engine.pipeline(**kwargs))

    def invalidate(self, rule: str, **params: Any) -> int:
        return self._loop.run(self.engine.invalidate(rule, **params))

    def verify(self, **kwargs: Any) -> bool:
        return self._loop.run(self.engine.verify(**kwargs))

    def cached(self, namespace: str, **kwargs: Any) -> Callable[[Callable], Callable]:
        """Takes a plain function as the sync engine's does: it becomes an ``async def`` for the engine."""
        decorate = self.engine.cached(namespace, **kwargs)

        def wrap(fn: Callable) -> Callable:
            @functools.wraps(fn)
            async def as_coroutine(*args: Any, **kw: Any) -> Any:
                return fn(*args, **kw)

            cached = decorate(as_coroutine)
            return functools.wraps(fn)(lambda *args, **kw: self._loop.run(cached(*args, **kw)))

        return wrap

    def close(self) -> None:
        self._loop.run(self.engine.aclose())

    def __enter__(self) -> "Blocking":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:  # policy, client, cluster, stats, health, breaker_state, _cache_aside...
        return getattr(self.engine, name)


def async_twin(client: Any) -> Any:
    """A ``redis.asyncio`` client to the same server as a test's blocking client (standalone or cluster)."""
    from redis.cluster import RedisCluster

    if not isinstance(client, (redis.Redis, RedisCluster)):
        return client  # not a client at all: the engine's own check is under test
    if isinstance(client, RedisCluster):
        from redis.asyncio.cluster import RedisCluster as AsyncCluster

        node = client.get_default_node()
        return AsyncCluster(host=node.host, port=node.port)
    kwargs = client.connection_pool.connection_kwargs
    keep = ("host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout", "retry",
            "decode_responses")
    return redis.asyncio.Redis(**{k: v for k, v in kwargs.items() if k in keep})


class Engines:
    """What a test gets from the ``engines`` fixture: ``connect`` and ``build`` for its kind of engine."""

    def __init__(self, kind: str):
        self.kind = kind
        self._loop: Loop | None = Loop() if kind == "async" else None
        self._opened: list[Any] = []

    def connect(self, policies: PolicySet | str | Iterable[str], target: str | None = None, *, client: Any = None,
                verify: bool | str = False) -> Any:
        """``toolkit.connect`` or ``toolkit.aio.connect`` (a blocking client is replaced by its asyncio twin)."""
        if self._loop is None:
            engine = toolkit.connect(policies, target, client=client, verify=verify)
        else:
            twin = async_twin(client) if client is not None else None
            opened = self._loop.run(toolkit.aio.connect(policies, target, client=twin, verify=verify))
            engine = Blocking(self._loop, opened)
            if twin is not None:
                self._opened.append(twin)
        self._opened.append(engine)
        return engine

    def build(self, policy: PolicySet, client: Any, options: ClientOptions = ClientOptions()) -> Any:
        """``Engine(policy, client, options)`` or ``AsyncEngine`` on the client's asyncio twin."""
        if self._loop is None:
            return Engine(policy, client, options)
        twin = async_twin(client)
        self._opened.append(twin)
        engine = Blocking(self._loop, AsyncEngine(policy, twin, options))
        return engine

    def close(self) -> None:
        for opened in reversed(self._opened):
            try:
                if isinstance(opened, (Engine, Blocking)):
                    opened.close()
                elif self._loop is not None:
                    self._loop.run(opened.aclose())
            except Exception:  # noqa: BLE001 - a server the test stopped on purpose
                pass
        if self._loop is not None:
            self._loop.stop()
