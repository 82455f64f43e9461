"""Cache-aside hit and miss: ``get_or_load`` vs the seed's ``get_user_data``, cashews and dogpile.cache.

cashews and dogpile.cache are set up as their documentation shows (a decorator on the loading
function, the Redis backend on the same server, the documented TTL options) and store under
keys of their own. cashews is async-only: it runs under one asyncio event loop of its own and
is timed inside it. The plain comparison uses namespaces without lock and without early
refresh, as the seed has neither; the lock and early-refresh variants are reported apart.
Without the ``bench`` extra (``pip install -e '.[bench]'``) only the engine and the seed run.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from bench import _seed
from bench._context import BLOCK_OPS, Context
from bench._harness import Result, Sample, Variant, measure, timed, timed_async

TTL_S = 3_600
fetch_from_database = _seed.fetch_from_database
_fresh = itertools.count(10_000_000)
"""Ids never read before, so that every call of a miss round misses."""
MISSING_EXTRA = "cashews / dogpile.cache not installed (pip install -e '.[bench]'): compared with the seed only"


class _Cashews:
    """cashews' decorator API on its own Cache (no client-side cache, the default) and event loop."""

    def __init__(self, port: int):
        from cashews import Cache

        self.cache = Cache()
        self.cache.setup(f"redis://127.0.0.1:{port}/0")
        self.loop = asyncio.new_event_loop()
        self.plain = self._define(self.cache(ttl=TTL_S, key="cashews:user:{user_id}:data"))
        self.locked = self._define(self.cache(ttl=TTL_S, key="cashews:locked:user:{user_id}:data", lock=True))
        self.early = self._define(self.cache.early(ttl=TTL_S, key="cashews:early:user:{user_id}:data"))

    @staticmethod
    def _define(decorator: Callable) -> Callable:
        @decorator
        async def get_user_data(user_id: int) -> str:
            return fetch_from_database(user_id)
        return get_user_data

    def round(self, fn: Callable, ids: list[int]) -> Sample:
        async def calls() -> None:
            for i in ids:
                await fn(i)
        return timed_async(self.loop, calls)

    def close(self) -> None:
        self.loop.run_until_complete(self.cache.close())
        self.loop.close()


def _dogpile(port: int, namespace: str, **lock: Any) -> Callable[[int], Any]:
    """dogpile.cache's Redis backend and ``cache_on_arguments``, as in its documentation."""
    from dogpile.cache import make_region

    region = make_region().configure("dogpile.cache.redis", expiration_time=TTL_S, arguments={
        "host": "127.0.0.1", "port": port, "db": 0, "redis_expiration_time": TTL_S * 2, **lock})

    @region.cache_on_arguments(namespace=namespace)
    def get_user_data(user_id: int) -> str:
        return fetch_from_database(user_id)
    return get_user_data


class _Contenders:
    """The implementations compared, each as ``name -> (label, one timed round over a list of ids)``."""

    def __init__(self, ctx: Context):
        engine = ctx.engine()
        self.notes: list[str] = []
        self.calls: dict[str, tuple[str, Callable[[list[int]], Sample]]] = {}
        for name, namespace, label in (("engine", "user_data", "engine get_or_load"),
                                       ("engine_lock", "user_data_locked", "engine get_or_load, lock"),
                                       ("engine_early", "user_data_early", "engine get_or_load, early_refresh")):
            load = engine.namespace(namespace).get_or_load
            self.calls[name] = (label, self._sync(lambda i, load=load: load(lambda: fetch_from_database(i), user_id=i)))
        self.calls["seed"] = ("seed get_user_data", self._sync(_seed.get_user_data))
        self._cashews: _Cashews | None = None
        try:
            self._cashews = _Cashews(ctx.port)
        except ImportError:
            self.notes.append(MISSING_EXTRA)
            return
        cashews = self._cashews
        for name, label, fn in (("cashews", "cashews", cashews.plain), ("cashews_lock", "cashews lock=True", cashews.locked),
                                ("cashews_early", "cashews early", cashews.early)):
            self.calls[name] = (f"{label} (asyncio)", lambda ids, fn=fn: cashews.round(fn, ids))
        self.calls["dogpile"] = ("dogpile.cache", self._sync(_dogpile(ctx.port, "dogpile")))
        self.calls["dogpile_lock"] = ("dogpile.cache distributed_lock", self._sync(
            _dogpile(ctx.port, "dogpile_locked", distributed_lock=True, thread_local_lock=False)))
        self.notes.append("cashews runs under asyncio (its own event loop, timed inside it); client_side off and no "
                          "pickle secret (its defaults)")

    @staticmethod
    def _sync(call: Callable[[int], Any]) -> Callable[[list[int]], Sample]:
        return lambda ids: timed(lambda: [call(i) for i in ids])

    def variants(self, names: tuple[str, ...], ids: Callable[[], list[int]]) -> list[Variant]:
        return [Variant(n, self.calls[n][0], lambda run=self.calls[n][1]: run(ids())) for n in names if n in self.calls]

    def close(self) -> None:
        if self._cashews is not None:
            self._cashews.close()


def _hit(ctx: Context, c: _Contenders, name: str, title: str, names: tuple[str, ...], blocks: int) -> Result:
    ids = list(range(BLOCK_OPS))
    variants = c.variants(names, lambda: ids)
    for v in variants:
        v.run()  # fills the entries (and warms every library) before the measured rounds
    return measure(name, title, variants, ops=BLOCK_OPS, blocks=blocks, rounds=ctx.sizes.rounds, baseline="seed")


def _miss(ctx: Context, c: _Contenders, name: str, title: str, names: tuple[str, ...], blocks: int) -> Result:
    return measure(name, title, c.variants(names, lambda: [next(_fresh) for _ in range(BLOCK_OPS)]),
                   ops=BLOCK_OPS, blocks=blocks, rounds=ctx.sizes.rounds, baseline="seed")


def cache_aside(ctx: Context) -> list[Result]:
    c = _Contenders(ctx)
    full, variant_blocks = ctx.sizes.blocks, max(1, ctx.sizes.blocks // 4)  # the variants without a target: shorter
    try:
        hit = _hit(ctx, c, "cache_aside_hit", "cache-aside hit (no lock, no early refresh)",
                   ("engine", "cashews", "dogpile", "seed"), full)
        hit.notes += c.notes
        hit.check_ratio("engine", "seed", 1.05)
        for other in ("cashews", "dogpile"):
            if other in hit.rounds:
                hit.check_ratio("engine", other, 1.0)
        miss = _miss(ctx, c, "cache_aside_miss", "cache-aside miss: GET, load, SET with TTL (no target)",
                     ("engine", "cashews", "dogpile", "seed"), variant_blocks)
        early = _hit(ctx, c, "cache_aside_hit_early", "cache-aside hit with early refresh (no target)",
                     ("engine_early", "cashews_early", "seed"), variant_blocks)
        early.notes.append("engine early_refresh: GET + PTTL in one round trip per hit (XFetch needs the remaining TTL)")
        locked = _miss(ctx, c, "cache_aside_miss_lock", "cache-aside miss with a Redis lock (no target)",
                       ("engine_lock", "cashews_lock", "dogpile_lock", "seed"), variant_blocks)
        locked.notes.append("engine lock: GET, SET NX PX, GET again, load, SET PX, release script: 5 round trips, the seed's 2")
        return [hit, miss, early, locked]
    finally:
        c.close()
