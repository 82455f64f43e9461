"""``PolicySet.classify`` keys per second with 10 and with 1,000 namespaces.

The policy sets are generated: ten services, each namespace ``svc<k>:ent<i>:{id}`` with one or
two parameters and an optional literal suffix. Keys are drawn from every namespace, plus one
unknown key in ten (an unknown prefix, an unknown entity, a parameter of the wrong type), and
are bytes, as SCAN returns them to the audit.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import yaml

import toolkit
from bench._context import CLASSIFY_BLOCK, Context
from bench._harness import Check, Result, Variant, measure, timed

SERVICES = 10


def _template(i: int) -> str:
    base = f"svc{i % SERVICES}:ent{i}:"
    return (base + "{id}", base + "{id}:detail", base + "{tenant}:{id}")[i % 3]


def _policy(count: int, directory: Path) -> toolkit.PolicySet:
    namespaces = {f"ent{i}": {"key": _template(i), "type": "string", "tier": "volatile", "ttl": "5m",
                              "params": {"id": {"type": "int"}, "tenant": {"type": "slug", "max_length": 32}}
                              if i % 3 == 2 else {"id": {"type": "int"}}}
                  for i in range(count)}
    (directory / "generated.yaml").write_text(yaml.safe_dump({"version": 1, "namespaces": namespaces}))
    return toolkit.load(directory)


def _keys(count: int, n: int, rng: random.Random) -> tuple[list[bytes], int]:
    """``n`` keys of the generated set, about one in ten unknown; returns them and how many are unknown."""
    keys, unknown = [], 0
    for _ in range(n):
        i, uid = rng.randrange(count), rng.randrange(10_000_000)
        kind = rng.randrange(30)
        if kind == 0:
            key, unknown = f"legacy:{uid}:blob", unknown + 1
        elif kind == 1:
            key, unknown = f"svc{i % SERVICES}:ent{count + i}:{uid}", unknown + 1
        elif kind == 2:
            key, unknown = _template(i).replace("{id}", "not-a-number").replace("{tenant}", "acme"), unknown + 1
        else:
            key = _template(i).replace("{id}", str(uid)).replace("{tenant}", f"tenant-{uid % 97}")
        keys.append(key.encode())
    return keys, unknown


def classify(ctx: Context) -> list[Result]:
    rng = random.Random(7)
    rounds: dict[str, Variant] = {}
    notes = []
    for count in (10, 1_000):
        with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp:
            started = time.perf_counter()
            policy = _policy(count, Path(tmp))
            notes.append(f"loading {count} namespaces (schema, checks, classifier) took {time.perf_counter() - started:.2f} s")
        keys, unknown = _keys(count, CLASSIFY_BLOCK, rng)
        found = sum(policy.classify(k) is None for k in keys)
        if found != unknown:
            raise RuntimeError(f"classify with {count} namespaces left {found} keys unclassified, expected {unknown}")
        run = policy.classify
        rounds[f"ns{count}"] = Variant(f"ns{count}", f"{count:,} namespaces",
                                       lambda run=run, keys=keys: timed(lambda: [run(k) for k in keys]))
    result = measure("classify", "PolicySet.classify, keys per second", list(rounds.values()),
                     ops=CLASSIFY_BLOCK, blocks=ctx.sizes.classify_blocks, unit="key", rounds=ctx.sizes.rounds,
                     baseline="ns10")
    result.notes += notes
    result.notes.append("about 1 key in 10 is unknown (another prefix or entity, or a parameter of the wrong type)")
    result.check_ratio("ns1000", "ns10", 1.5)
    result.checks.append(Check("classify: keys/s with 1,000 namespaces", result.ops_per_s("ns1000"), ">=", 300_000, "keys/s"))
    return [result]
