"""SIGKILL a writer at random moments, many times: no policy key is ever left without its TTL.

The engine writes a value and its TTL in one atomic step (SET PX, or one Lua script), so a
writer killed between any two instructions leaves either nothing or a key that expires. The
control kills a naive two-step writer (HSET, then PEXPIRE) the same way and does find keys
without TTL, which shows the harness really lands kills between round trips.
"""

from __future__ import annotations

import random
import signal
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest
import redis

import toolkit
from tests import workers
from toolkit.policy.published import RESERVED_PREFIX

KILLS = 40
CONTROL_KILLS = 30

POLICY = """
parameters:
  id:
    type: int
namespaces:
  blob:
    key: "e:{id}:blob"
    type: string
    tier: volatile
    ttl: 4m
    jitter: 30s
    cache_aside:
      lock: true
  record:
    key: "e:{id}:record"
    type: hash
    tier: volatile
    ttl: 4m
    jitter: 10%
  recent:
    key: "e:{id}:recent"
    type: list
    tier: volatile
    ttl: 4m
    jitter: 30s
    max_length: 2
  hits:
    key: "e:{id}:hits"
    type: counter
    tier: volatile
    ttl: 4m
    jitter: 30s
  plain:
    key: "plain:{id}"
    type: string
    tier: volatile
    ttl: 4m
    jitter: 30s
invalidation:
  entity_all:
    match: "e:{id}:*"
    index: id
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(textwrap.dedent(POLICY))
    return tmp_path


def kill_at_random(target: Callable[..., None], args: tuple, kills: int, max_delay: float, rng: random.Random) -> None:
    """Start ``target`` ``kills`` times; once it has written its first rounds, SIGKILL it after a random delay."""
    ctx = workers.context()
    for generation in range(kills):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=target, args=(*args, generation, send), daemon=True)
        child.start()
        send.close()
        try:
            assert receive.poll(30), "the writer did not start writing"
            assert receive.recv_bytes() == b"ready"
            time.sleep(rng.uniform(0, max_delay))
        finally:
            child.kill()
            child.join(10)
            receive.close()
        # Killed while still writing: an exit of its own (an error) would make the kill meaningless.
        assert child.exitcode == -signal.SIGKILL


def ttls(client: redis.Redis) -> dict[bytes, int]:
    """Every key of the client's database and its PTTL (-1: no TTL)."""
    keys = list(client.scan_iter(count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
    return dict(zip(keys, pipe.execute()))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sigkilled_engine_writer_never_leaves_a_policy_key_without_ttl(policy_dir: Path, redis_client: redis.Redis,
                                                                       redis_server: Any, kind: str) -> None:
    rng = random.Random()
    kill_at_random(workers.atomic_writer, (str(policy_dir), redis_server.port, kind), KILLS, 0.15, rng)

    policy = toolkit.load(policy_dir)
    found = ttls(redis_client)
    without_ttl = [key for key, ttl in found.items() if ttl == -1]
    assert without_ttl == [], f"{len(without_ttl)} of {len(found)} keys have no TTL, e.g. {without_ttl[:5]}"

    by_type: Counter[str] = Counter()
    generations: dict[str, set[int]] = {name: set() for name in policy.namespaces}
    reserved: Counter[str] = Counter()
    for key in found:
        classified = policy.classify(key)
        if classified is None:
            assert key.startswith(RESERVED_PREFIX.encode()), f"a key no namespace declares: {key!r}"
            reserved[key.decode().split(":")[1]] += 1
            continue
        ns, params = classified
        by_type[ns.type] += 1
        generations[ns.name].add(int(params["id"]) // workers.GENERATION - 1)
    # Not vacuous: thousands of keys of every type (a writer makes at least two of each per round),
    # written by every one of the killed writers.
    assert min(by_type[t] for t in ("string", "hash", "list", "counter")) >= 2 * KILLS * workers.READY_AFTER, by_type
    for name, seen in generations.items():
        assert set(range(KILLS)) <= seen, f"{name}: writers {sorted(set(range(KILLS)) - seen)} wrote nothing"
    assert reserved["idx"] >= 2 * KILLS * workers.READY_AFTER, reserved  # the index sets of rule entity_all expire too

    engine = toolkit.connect(policy, client=redis_client)
    shared = {"id": workers.SHARED}
    assert engine.namespace("recent").llen(**shared) == 2  # trimmed to max_length on every push
    assert engine.namespace("hits").get(**shared) >= 2 * KILLS


def test_the_harness_catches_a_two_step_writer(redis_client: redis.Redis, redis_server: Any) -> None:
    """The control: HSET then PEXPIRE in two round trips, killed the same way, leaves keys without TTL."""
    kill_at_random(workers.nonatomic_writer, (redis_server.port,), CONTROL_KILLS, 0.05, random.Random())
    found = ttls(redis.Redis(port=redis_server.port, db=1))
    without_ttl = sum(ttl == -1 for ttl in found.values())
    assert len(found) >= CONTROL_KILLS * workers.READY_AFTER
    # About one kill in two lands between the two round trips; 0 of 30 would have odds of ~1e-9.
    assert without_ttl >= 1, f"0 of {len(found)} keys without TTL after {CONTROL_KILLS} kills"
