"""Invalidating one user's 5 keys among 1,000,000: SCAN rule, the seed's SCAN loop (COUNT 100), the index.

Before every measured invalidation the user's five keys are written again through the engine
(which also records them in the user's index), untimed, so each run deletes exactly five keys
from an otherwise unchanged keyspace.

The target is against the physical floor, not against the seed: whatever the client, a SCAN-based
invalidation waits for redis-server to execute its SCAN calls (about 0.4 s over a million keys,
whatever the COUNT), so the rule's wall time is compared with the time redis-server spent
executing them, read from INFO commandstats (``cmdstat_scan`` usec) before and after each timed
run on the bench's own server. The seed's loop spends about as long inside the server, so its
ratio to the rule is reported without a target.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import redis

from bench import _seed
from bench._context import KEYSPACE_FIELDS, KEYSPACE_POLICIES, Context
from bench._harness import Block, Check, Result, Sample, Variant, measure, timed
from toolkit.runtime._invalidate import SCAN_COUNT

INDEXED_PER_ROUND = 50
"""The indexed rule takes well under a millisecond: a round times this many users for a stable figure."""


SERVER_SCAN_LIMIT = 1.3
"""Target: the SCAN rule's wall time at most this many times redis-server's own time executing its SCANs."""


def _scan_stats(client: redis.Redis) -> tuple[int, int]:
    """(SCAN calls, microseconds redis-server spent executing them) since the server started or its last CONFIG RESETSTAT."""
    stats = client.info("commandstats").get("cmdstat_scan", {})
    return stats.get("calls", 0), stats.get("usec", 0)


def invalidation(ctx: Context) -> list[Result]:
    users = ctx.keyspace()
    engine = ctx.engine(KEYSPACE_POLICIES)
    handles = [engine.namespace(f"u_{f}") for f in KEYSPACE_FIELDS]
    server: dict[str, list[tuple[int, int, float]]] = {}
    """Per variant and round: SCAN calls and redis-server's microseconds in them, and the round's wall seconds."""

    def run(name: str, invalidate: Callable[[int], int], uids: list[int]) -> Block:
        def round_() -> Sample:
            for uid in uids:
                for h in handles:
                    h.set("x", user_id=uid)
            deleted: list[int] = []
            calls, usec = _scan_stats(ctx.client)
            sample = timed(lambda: deleted.extend(invalidate(uid) for uid in uids))
            calls_after, usec_after = _scan_stats(ctx.client)  # INFO is not a SCAN: the delta is the timed run's alone
            server.setdefault(name, []).append((calls_after - calls, usec_after - usec, sample.wall))
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
        calls = statistics.median(c for c, _, _ in server[name])
        usec = statistics.median(u for _, u, _ in server[name])
        scan.extra[f"{label}: SCAN calls / time inside redis-server"] = f"{calls:,.0f} / {usec / 1000:,.0f} ms"
    floor = statistics.median(wall / (usec / 1e6) for _, usec, wall in server["engine"])  # each round against its own SCANs
    scan.checks.append(Check("invalidation: engine rule (SCAN) / redis-server's time executing its SCANs", floor, "<=",
                             SERVER_SCAN_LIMIT, "x"))
    scan.extra["seed loop / engine rule (SCAN), no target"] = f"{scan.ratio('seed', 'engine'):.2f}x"
    speedup = scan.median_s("seed") / (indexed.median_s("indexed") / indexed.ops)
    indexed.checks.append(Check("invalidation: seed SCAN COUNT 100 loop / engine rule (index)", speedup, ">=", 1000.0, "x"))
    indexed.notes.append(f"median of {INDEXED_PER_ROUND} invalidations per round (different users)")
    scan.notes.append(f"engine SCAN COUNT {SCAN_COUNT}, the seed's COUNT 100; the keys have TTLs, as cache keys do")
    scan.notes.append("target: the rule's wall time over the time redis-server spent executing its SCANs (INFO commandstats "
                      "cmdstat_scan, same run), the floor no client can go under; the seed's loop is compared without a target")
    return [scan, indexed]
