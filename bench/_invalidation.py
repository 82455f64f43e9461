"""Invalidating one user's 5 keys among 1,000,000: SCAN rule, the seed's SCAN loop (COUNT 100), the index.

Before every measured invalidation the user's five keys are written again through the engine
(which also records them in the user's index), untimed, so each run deletes exactly five keys
from an otherwise unchanged keyspace. The server's own SCAN time (INFO commandstats) is
recorded too: it says how much of a SCAN-based invalidation no client can save.
"""

from __future__ import annotations

import statistics
from typing import Callable

import redis

from bench import _seed
from bench._context import KEYSPACE_FIELDS, KEYSPACE_POLICIES, Context
from bench._harness import Block, Check, Result, Sample, Variant, measure, timed
from toolkit.runtime._invalidate import SCAN_COUNT

INDEXED_PER_ROUND = 50
"""The indexed rule takes well under a millisecond: a round times this many users for a stable figure."""


def _scan_stats(client: redis.Redis) -> tuple[int, int]:
    """(SCAN calls, microseconds redis-server spent in them) since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats").get("cmdstat_scan", {})
    return stats.get("calls", 0), stats.get("usec", 0)


def invalidation(ctx: Context) -> list[Result]:
    users = ctx.keyspace()
    engine = ctx.engine(KEYSPACE_POLICIES)
    handles = [engine.namespace(f"u_{f}") for f in KEYSPACE_FIELDS]
    server: dict[str, list[tuple[int, int]]] = {}

    def run(name: str, invalidate: Callable[[int], int], uids: list[int]) -> Block:
        def round_() -> Sample:
            for uid in uids:
                for h in handles:
                    h.set("x", user_id=uid)
            deleted: list[int] = []
            ctx.client.config_resetstat()
            sample = timed(lambda: deleted.extend(invalidate(uid) for uid in uids))
            server.setdefault(name, []).append(_scan_stats(ctx.client))
            if deleted != [len(KEYSPACE_FIELDS)] * len(uids):
                raise RuntimeError(f"{name}: deleted {deleted} keys instead of {len(KEYSPACE_FIELDS)} per user")
            return sample
        return round_

    one = [users // 2 + 1]
    scan = measure("invalidation", f"invalidate one user's 5 keys among {ctx.client.dbsize():,} keys",
                   [Variant("engine", "engine rule (SCAN)", run("engine", lambda u: engine.invalidate("user_scan", user_id=u), one)),
                    Variant("seed", "seed SCAN COUNT 100 loop", run("seed", _seed.invalidate_user_cache, one))],
                   ops=1, unit="invalidation", rounds=ctx.sizes.slow_rounds, baseline="seed")
    many = [users // 3 + i for i in range(INDEXED_PER_ROUND)]
    indexed = measure("invalidation_indexed", "the same with the per-user index (index: user_id)",
                      [Variant("indexed", "engine rule (index)",
                               run("indexed", lambda u: engine.invalidate("user_indexed", user_id=u), many))],
                      ops=len(many), unit="invalidation", rounds=ctx.sizes.slow_rounds)
    for name, label in (("engine", "engine"), ("seed", "seed")):
        calls = statistics.median(c for c, _ in server[name])
        usec = statistics.median(u for _, u in server[name])
        scan.extra[f"{label}: SCAN calls / time inside redis-server"] = f"{calls:,.0f} / {usec / 1000:,.0f} ms"
    scan.check_ratio("engine", "seed", 5.0, speedup=True)
    speedup = scan.median_s("seed") / (indexed.median_s("indexed") / indexed.ops)
    indexed.checks.append(Check("invalidation: seed SCAN COUNT 100 loop / engine rule (index)", speedup, ">=", 1000.0, "x"))
    indexed.notes.append(f"median of {INDEXED_PER_ROUND} invalidations per round (different users)")
    scan.notes.append(f"engine SCAN COUNT {SCAN_COUNT}, the seed's COUNT 100; the keys have TTLs, as cache keys do")
    return [scan, indexed]
