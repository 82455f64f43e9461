"""Single-key operations and 10,000-operation pipelines: engine vs raw redis-py; atomic hash write vs the seed's.

Both sides start from the same input, an integer id, and build the key from it (the raw side
with an f-string, as the seed does), so the difference is the policy layer: parameter check,
Op, breaker, stats and the codec.
"""

from __future__ import annotations

from collections.abc import Callable

from bench import _seed
from bench._context import BLOCK_OPS, PIPELINE_OPS, Context
from bench._harness import Block, Result, Variant, measure, timed

KEYS = BLOCK_OPS
"""Distinct keys: a block of a single-key workload touches each once."""
VALUE = b"v" * 64
FIELDS = {"name": b"Alice Smith", "email": b"alice@example.com", "age": b"28"}
TTL_MS = 3_600_000
IDS = list(range(KEYS))


def _block(call: Callable[[int], object]) -> Block:
    """A block: ``call`` once per id, timed."""
    return lambda: timed(lambda: [call(i) for i in IDS])


def _prepare(ctx: Context) -> None:
    """The keys GET and HGETALL read (written once, through the engine)."""
    engine = ctx.engine()
    with engine.pipeline() as p:
        for i in range(KEYS):
            p.namespace("b_str").set(VALUE, id=i)
            p.namespace("b_hash").hset(mapping=FIELDS, id=i)


def _single(ctx: Context, name: str, title: str, engine_call: Callable[[int], object],
            raw_call: Callable[[int], object], raw_label: str) -> Result:
    result = measure(name, title, [Variant("engine", "engine", _block(engine_call)), Variant("raw", raw_label, _block(raw_call))],
                     ops=KEYS, blocks=ctx.sizes.blocks, rounds=ctx.sizes.rounds, baseline="raw")
    result.check_ratio("engine", "raw", 1.05)
    return result


def get(ctx: Context) -> list[Result]:
    _prepare(ctx)
    handle, r = ctx.engine().namespace("b_str"), ctx.client
    engine_get, raw_get = handle.get, r.get
    return [_single(ctx, "get", "GET one key", lambda i: engine_get(id=i), lambda i: raw_get(f"bench:str:{i}"),
                    "redis-py r.get")]


def set_ttl(ctx: Context) -> list[Result]:
    handle, r = ctx.engine().namespace("b_str"), ctx.client
    engine_set, raw_set = handle.set, r.set
    return [_single(ctx, "set", "SET one key with TTL", lambda i: engine_set(VALUE, id=i),
                    lambda i: raw_set(f"bench:str:{i}", VALUE, px=TTL_MS), "redis-py r.set(px=)")]


def hgetall(ctx: Context) -> list[Result]:
    _prepare(ctx)
    handle, r = ctx.engine().namespace("b_hash"), ctx.client
    engine_hgetall, raw_hgetall = handle.hgetall, r.hgetall
    return [_single(ctx, "hgetall", "HGETALL a 3-field hash", lambda i: engine_hgetall(id=i),
                    lambda i: raw_hgetall(f"bench:hash:{i}"), "redis-py r.hgetall")]


def _raw_hash_write(r, key: str) -> None:
    """What the engine's atomic hash write does, by hand: HSET and PEXPIRE in one MULTI/EXEC."""
    pipe = r.pipeline(transaction=True)
    pipe.hset(key, mapping=FIELDS)
    pipe.pexpire(key, TTL_MS)
    pipe.execute()


def hset_ttl(ctx: Context) -> list[Result]:
    handle, r = ctx.engine().namespace("b_hash"), ctx.client
    engine_hset = handle.hset
    result = _single(ctx, "hset_ttl", "hash write with TTL, atomic", lambda i: engine_hset(mapping=FIELDS, id=i),
                     lambda i: _raw_hash_write(r, f"bench:hash:{i}"), "redis-py MULTI HSET+PEXPIRE")
    result.notes.append("engine: one EVALSHA (HSET + PEXPIRE in Lua); raw: a transaction pipeline, one round trip")
    return [result]


def incr(ctx: Context) -> list[Result]:
    handle, r = ctx.engine().namespace("b_counter"), ctx.client
    engine_incr, raw_incr = handle.incr, r.incr
    result = _single(ctx, "incr", "INCR a counter", lambda i: engine_incr(id=i), lambda i: raw_incr(f"bench:ctr:{i}"),
                     "redis-py r.incr")
    result.notes.append("engine: one EVALSHA that also starts the counter's TTL window; raw r.incr sets no TTL")
    return [result]


def hash_vs_seed(ctx: Context) -> list[Result]:
    handle = ctx.engine().namespace("b_hash")
    engine_hset = handle.hset
    seed_write = _seed.hset_then_expire
    result = measure("hash_vs_seed", "hash write with TTL: atomic vs the seed's HSET then EXPIRE",
                     [Variant("engine", "engine", _block(lambda i: engine_hset(mapping=FIELDS, id=i))),
                      Variant("seed", "seed HSET; EXPIRE", _block(lambda i: seed_write(f"bench:hash:{i}", FIELDS)))],
                     ops=KEYS, blocks=ctx.sizes.blocks, rounds=ctx.sizes.rounds, baseline="seed")
    result.check_ratio("engine", "seed", 0.75)
    return [result]


# -- pipelines ----------------------------------------------------------------------------------

def _engine_pipeline_ops(ctx: Context, kinds: tuple[str, ...], n: int) -> Callable[[], object]:
    engine = ctx.engine()

    def run() -> object:
        with engine.pipeline() as p:
            s, h, c = p.namespace("b_str"), p.namespace("b_hash"), p.namespace("b_counter")
            calls = {"get": lambda i: s.get(id=i), "set": lambda i: s.set(VALUE, id=i),
                     "hgetall": lambda i: h.hgetall(id=i), "hset_ttl": lambda i: h.hset(mapping=FIELDS, id=i),
                     "incr": lambda i: c.incr(id=i)}
            ops = [calls[k] for k in kinds]
            for i in range(n):
                ops[i % len(ops)](i % KEYS)
        return p.results
    return run


def _raw_pipeline_ops(ctx: Context, kinds: tuple[str, ...], n: int) -> Callable[[], object]:
    r = ctx.client

    def run() -> object:
        p = r.pipeline(transaction=False)
        calls = {"get": lambda i: p.get(f"bench:str:{i}"), "set": lambda i: p.set(f"bench:str:{i}", VALUE, px=TTL_MS),
                 "hgetall": lambda i: p.hgetall(f"bench:hash:{i}"),
                 "hset_ttl": lambda i: (p.hset(f"bench:hash:{i}", mapping=FIELDS), p.pexpire(f"bench:hash:{i}", TTL_MS)),
                 "incr": lambda i: p.incr(f"bench:ctr:{i}")}
        ops = [calls[k] for k in kinds]
        for i in range(n):
            ops[i % len(ops)](i % KEYS)
        return p.execute()
    return run


def _pipeline(ctx: Context, name: str, title: str, kinds: tuple[str, ...], target: float = 1.25) -> Result:
    engine_run, raw_run = _engine_pipeline_ops(ctx, kinds, PIPELINE_OPS), _raw_pipeline_ops(ctx, kinds, PIPELINE_OPS)
    result = measure(name, title, [Variant("engine", "engine pipeline", lambda: timed(engine_run)),
                                   Variant("raw", "redis-py pipeline", lambda: timed(raw_run))],
                     ops=PIPELINE_OPS, blocks=ctx.sizes.pipelines, rounds=ctx.sizes.rounds, baseline="raw")
    result.check_ratio("engine", "raw", target)
    return result


def pipeline(ctx: Context) -> list[Result]:
    _prepare(ctx)
    mixed = _pipeline(ctx, "pipeline_mixed", "10,000 ops in one pipeline: GET, SET, HGETALL, hash write, INCR in turn",
                      ("get", "set", "hgetall", "hset_ttl", "incr"))
    mixed.notes.append("raw pipeline: the hash write is HSET + PEXPIRE (two commands, not atomic), INCR sets no TTL")
    return [_pipeline(ctx, "pipeline_get", "10,000 GETs in one pipeline", ("get",), target=1.10),
            _pipeline(ctx, "pipeline_set", "10,000 SETs with TTL in one pipeline", ("set",)),
            mixed]
