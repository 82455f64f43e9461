"""The asyncio engine against raw ``redis.asyncio`` and cashews, side by side in one event loop.

Both sides share one ``redis.asyncio`` client (the engine wraps it, as the sync workloads wrap
the baseline's redis-py client), start from an integer id and build the key; each block is
timed inside the loop. ``async_concurrent_hits`` runs 100 tasks at once, each doing cache hits,
so the loop's scheduling and the connection pool are part of what is measured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio

import toolkit
from bench import _parser, _seed
from bench._cache_aside import MISSING_EXTRA, _Cashews
from bench._context import BLOCK_OPS, RUNTIME_POLICIES, Context
from bench._harness import Result, Variant, measure, timed_async
from bench._single import TTL_MS, VALUE
from toolkit.runtime import AsyncEngine

TASKS = 100
"""Concurrent tasks of the concurrency workload; each does BLOCK_OPS // TASKS hits per block."""
IDS = list(range(BLOCK_OPS))
fetch_from_database = _seed.fetch_from_database


async def _raw_get_user_data(r: Any, user_id: int) -> Any:
    """The seed's get_user_data, written for redis.asyncio as an application would."""
    key = f"user:{user_id}:data"
    cached = await r.get(key)
    if cached is not None:
        return cached.decode()
    value = fetch_from_database(user_id)
    await r.set(key, value, ex=3600)
    return value


class _Loop:
    """The event loop all asyncio variants run in, with the engine and the raw client on it."""

    def __init__(self, ctx: Context):
        self.loop = asyncio.new_event_loop()
        self.client = redis.asyncio.Redis(port=ctx.port)
        self.engine = AsyncEngine(toolkit.load(RUNTIME_POLICIES), self.client)

    def block(self, call: Callable[[int], Awaitable[Any]]) -> Callable[[], Any]:
        """One block: ``await call(i)`` for every id, one after the other."""
        async def calls() -> None:
            for i in IDS:
                await call(i)
        return lambda: timed_async(self.loop, calls)

    def concurrent(self, call: Callable[[int], Awaitable[Any]]) -> Callable[[], Any]:
        """One block: TASKS tasks at once, each awaiting ``call`` on its share of the ids."""
        share = len(IDS) // TASKS

        async def task(t: int) -> None:
            for i in IDS[t * share:(t + 1) * share]:
                await call(i)

        async def calls() -> None:
            await asyncio.gather(*[task(t) for t in range(TASKS)])
        return lambda: timed_async(self.loop, calls)

    def parser(self) -> str:
        """The parser class of a connection of the shared client's pool (hiredis or redis-py's own)."""
        pool = self.client.connection_pool
        conn = self.loop.run_until_complete(pool.get_connection())
        try:
            return type(conn._parser).__name__
        finally:
            self.loop.run_until_complete(pool.release(conn))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def _pair(ctx: Context, name: str, title: str, engine: Callable[[], Any], raw: Callable[[], Any], raw_label: str,
          limit: float) -> Result:
    result = measure(name, title, [Variant("engine", "async engine", engine), Variant("raw", raw_label, raw)],
                     ops=BLOCK_OPS, blocks=ctx.sizes.blocks, rounds=ctx.sizes.rounds, baseline="raw")
    result.check_ratio("engine", "raw", limit)
    return result


def asyncio_workloads(ctx: Context) -> list[Result]:
    aio = _Loop(ctx)
    r, engine = aio.client, aio.engine
    strings, data = engine.namespace("b_str"), engine.namespace("user_data")
    try:
        async def fill() -> None:
            for i in IDS:
                await strings.set(VALUE, id=i)

        aio.loop.run_until_complete(fill())
        _parser.check({"asyncio_parser": aio.parser()}, ctx.hiredis)  # --no-hiredis reached this client too
        get = _pair(ctx, "async_get", "asyncio GET one key", aio.block(lambda i: strings.get(id=i)),
                    aio.block(lambda i: r.get(f"bench:str:{i}")), "redis.asyncio r.get", 1.05)
        set_ = _pair(ctx, "async_set", "asyncio SET one key with TTL", aio.block(lambda i: strings.set(VALUE, id=i)),
                     aio.block(lambda i: r.set(f"bench:str:{i}", VALUE, px=TTL_MS)), "redis.asyncio r.set(px=)", 1.05)

        async def load(i: int) -> Any:
            return await data.get_or_load(lambda: fetch_from_database(i), user_id=i)

        variants = [Variant("engine", "async engine get_or_load", aio.block(load)),
                    Variant("raw", "redis.asyncio, the seed's code", aio.block(lambda i: _raw_get_user_data(r, i)))]
        notes = []
        cashews = None
        try:
            cashews = _Cashews(ctx.port)
            variants.append(Variant("cashews", "cashews", lambda: cashews.round(cashews.plain, IDS)))
        except ImportError:
            notes.append(MISSING_EXTRA)
        for v in variants:
            v.run()  # fill the entries: the measured rounds are hits
        hit = measure("async_cache_aside_hit", "asyncio cache-aside hit", variants, ops=BLOCK_OPS, blocks=ctx.sizes.blocks,
                      rounds=ctx.sizes.rounds, baseline="raw")
        hit.notes += notes + ["cashews in its own event loop, timed inside it, as in cache_aside_hit"]
        if cashews is not None:
            hit.check_ratio("engine", "cashews", 0.6)
            cashews.close()
        concurrent = measure("async_concurrent_hits", f"{TASKS} concurrent tasks doing cache hits",
                             [Variant("engine", "async engine get_or_load", aio.concurrent(load)),
                              Variant("raw", "redis.asyncio, the seed's code", aio.concurrent(lambda i: _raw_get_user_data(r, i)))],
                             ops=BLOCK_OPS, blocks=ctx.sizes.blocks, rounds=ctx.sizes.rounds, baseline="raw")
        concurrent.check_ratio("engine", "raw", 0.95, speedup=True)
        concurrent.notes.append("the target is throughput: raw's time / the engine's time >= 0.95")
        return [get, set_, hit, concurrent]
    finally:
        aio.close()
