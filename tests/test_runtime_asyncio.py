"""What only the asyncio engine has to get right: tasks sharing one load, cancellation, the event loop.

Real redis-server (the session fixture); each test runs its own event loop with asyncio.run.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest
import redis
import redis.asyncio

import toolkit.aio
from tests.contract_policy import contract_policy
from toolkit.errors import PolicyViolation


def run(coro: Any, *, debug: bool = False) -> Any:
    return asyncio.run(coro, debug=debug)


@pytest.fixture
def policy(tmp_path, redis_server, redis_client):
    return contract_policy(tmp_path, f'targets:\n  t:\n    provider: redis\n    url: "redis://127.0.0.1:{redis_server.port}/0"\n')


@pytest.mark.parametrize("namespace", ["name", "locked", "cart"])
def test_a_thousand_tasks_on_one_cold_key_load_once(policy, redis_client, namespace):
    loads = []

    async def loader() -> Any:
        loads.append(1)
        await asyncio.sleep(0.05)
        return {"v": 1} if namespace == "cart" else "value"

    async def main() -> list[Any]:
        async with toolkit.aio.connect(policy, "t") as engine:
            handle = engine.namespace(namespace)
            return await asyncio.gather(*[handle.get_or_load(loader, user_id=1) for _ in range(1000)])

    results = run(main())
    assert len(loads) == 1
    assert all(r == results[0] for r in results) and results[0] in ("value", {"v": "1"})
    assert not redis_client.keys("__toolkit__:lock:*")


@pytest.mark.parametrize("cancel", ["waiters", "leader", "everyone"])
def test_cancelled_callers_neither_cancel_the_shared_load_nor_leave_the_lock(policy, redis_client, cancel):
    loads, finished = [], asyncio.Event

    async def main() -> list[Any]:
        done = finished()

        async def loader() -> str:
            loads.append(1)
            await asyncio.sleep(0.2)
            done.set()
            return "loaded"

        async with toolkit.aio.connect(policy, "t") as engine:
            handle = engine.namespace("locked")
            tasks = [asyncio.ensure_future(handle.get_or_load(loader, user_id=7)) for _ in range(10)]
            await asyncio.sleep(0.05)  # the load is under way, the lock taken
            assert redis_client.exists("__toolkit__:lock:locked:7")
            doomed = {"waiters": tasks[1:6], "leader": tasks[:1], "everyone": tasks}[cancel]
            for task in doomed:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.wait_for(done.wait(), 2)  # the shared load finished anyway
            for _ in range(50):
                if redis_client.get("locked:7") is not None:
                    break
                await asyncio.sleep(0.01)
            again = await handle.get_or_load(loader, user_id=7)  # a hit: stored by the load nobody waited for
            assert again == "loaded"
            return results

    results = run(main())
    assert len(loads) == 1
    cancelled = [isinstance(r, asyncio.CancelledError) for r in results]
    assert cancelled.count(True) == {"waiters": 5, "leader": 1, "everyone": 10}[cancel]
    assert all(r == "loaded" for r, c in zip(results, cancelled) if not c)
    assert redis_client.get("locked:7") == b"loaded"
    assert not redis_client.exists("__toolkit__:lock:locked:7")


def test_nothing_blocks_the_event_loop(policy, redis_client, caplog):
    """asyncio debug mode flags any callback over 50 ms: a blocking call in toolkit code would show here."""

    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = 0.05
        async with toolkit.aio.connect(policy, "t") as engine:
            for i in range(200):
                await engine.namespace("name").set(f"v{i}", user_id=i)
                await engine.namespace("cart").hset(mapping={"a": i}, user_id=i)
                await engine.namespace("feed").rpush({"i": i}, user_id=i)
                await engine.namespace("hits_open").incr(user_id=i)
            await asyncio.gather(*[engine.namespace("locked").get_or_load(lambda: "x", user_id=i) for i in range(50)])
            async with engine.pipeline() as p:
                for i in range(500):
                    p.namespace("name").get(user_id=i)
            assert len(p.results) == 500
            assert await engine.namespace("name").mget([{"user_id": i} for i in range(300)])
            assert await engine.verify(raise_on_mismatch=False) is False

    gc.collect()
    gc.disable()  # a collection of the test session's heap is not a blocking call of ours
    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            with pytest.warns(RuntimeWarning, match="no policy was published"):
                run(main(), debug=True)
    finally:
        gc.enable()
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert not slow, slow  # the workload itself is all toolkit calls: any slow step is the toolkit's


def test_the_decorator_takes_coroutine_functions_on_the_async_engine(policy):
    calls = []

    async def main() -> None:
        async with toolkit.aio.connect(policy, "t") as engine:
            @engine.cached("doc")
            async def load_doc(user_id: int) -> dict:
                calls.append(user_id)
                return {"id": user_id, "tags": ("a",)}

            assert await load_doc(5) == {"id": 5, "tags": ["a"]}  # as the json codec reads it back
            assert await load_doc(user_id=5) == {"id": 5, "tags": ["a"]}
            assert calls == [5] and load_doc.__name__ == "load_doc"
            with pytest.raises(PolicyViolation, match="coroutine functions"):
                engine.cached("doc")(lambda user_id: None)

    run(main())


def test_connect_is_awaitable_and_a_context_manager(policy, redis_server):
    async def main() -> None:
        engine = await toolkit.aio.connect(policy, "t")
        assert isinstance(engine, toolkit.aio.AsyncEngine)
        assert await engine.namespace("name").set("a", user_id=1) is True
        await engine.aclose()
        async with toolkit.aio.connect(policy, "t") as engine:
            assert await engine.namespace("name").get(user_id=1) == "a"
            with pytest.raises(TypeError, match="async with"):
                with engine.pipeline():
                    pass

    run(main())
    assert redis.Redis(port=redis_server.port).get("name:1") == b"a"


def test_each_engine_takes_its_own_kind_of_client(policy, redis_server):
    import toolkit

    async_client = redis.asyncio.Redis(port=redis_server.port)
    with pytest.raises(toolkit.ConfigurationError, match="toolkit.aio.connect"):
        toolkit.connect(policy, client=async_client)
    blocking = redis.Redis(port=redis_server.port)
    async def opening() -> None:
        await toolkit.aio.connect(policy, client=blocking)

    with pytest.raises(toolkit.ConfigurationError, match="toolkit.connect"):
        run(opening())
    blocking.close()
    run(async_client.aclose())


def test_connection_errors_name_no_host(tmp_path, caplog):
    """asyncio's own message is "Connect call failed ('127.0.0.1', port)": only the OS's words are shown."""
    import socket

    import toolkit
    from tests.contract_policy import contract_policy

    with socket.socket() as reserved:  # bound, never listening: connections are refused
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
        policy = contract_policy(tmp_path, f'targets:\n  t:\n    provider: redis\n    url: "redis://127.0.0.1:{port}/0"\n')

        async def main() -> str:
            async with toolkit.aio.connect(policy, "t") as engine:
                assert await engine.namespace("name").get(user_id=1) is None
                with pytest.raises(toolkit.CacheUnavailable) as caught:
                    await engine.namespace("name_closed").get(user_id=1)
                return str(caught.value) + str(engine.health())

        with caplog.at_level(logging.INFO, logger="toolkit"):
            shown = run(main())
    for text in (shown, caplog.text):
        assert str(port) not in text and "127.0.0.1" not in text
    assert "Connection refused" in shown
