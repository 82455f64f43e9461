"""Cache-aside under pressure: single-flight, the cross-process lock, failures, negatives, early refresh.

Loaders count their runs in this process (threads) or in Redis (processes), so "the loader
ran once" is a count, never an inference from timing.
"""

from __future__ import annotations

import signal
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

import toolkit
from tests import workers
from tests.conftest import POLICIES
from toolkit.runtime._cache_aside import LOCK_PREFIX

POLICY = """
tiers:
  short:
    min: 1s
    max: 30s
    default: 10s
parameters:
  id:
    type: int
namespaces:
  fresh:
    key: "fresh:{id}"
    type: string
    tier: short
    ttl: 1s
    cache_aside:
      early_refresh: 100
  maybe:
    key: "maybe:{id}"
    type: string
    tier: short
    cache_aside:
      negative_ttl: 1s
  guarded:
    key: "guarded:{id}"
    type: string
    tier: short
    cache_aside:
      lock: true
      lock_timeout: 10s
      wait_timeout: 300ms
"""


@pytest.fixture
def engine(engines, policies, redis_client):
    with engines.connect(policies, client=redis_client) as engine:
        yield engine


@pytest.fixture
def short(engines, tmp_path: Path, redis_client: redis.Redis):
    """An engine on the short-TTL policy above."""
    (tmp_path / "p.yaml").write_text(textwrap.dedent(POLICY))
    with engines.connect(str(tmp_path), client=redis_client) as engine:
        yield engine


def run_threads(count: int, target: Any) -> None:
    barrier = threading.Barrier(count)

    def start() -> None:
        barrier.wait()
        target()

    threads = [threading.Thread(target=start) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


@pytest.mark.parametrize("namespace, params", [("product", {"product_id": 1}), ("query_result", {"query_id": "q1"})])
def test_fifty_threads_on_a_cold_key_load_once(engine, namespace: str, params: dict[str, Any]):
    runs: list[int] = []
    results: list[Any] = []

    def loader() -> str:
        runs.append(1)
        time.sleep(0.2)
        return "value"

    run_threads(50, lambda: results.append(engine.namespace(namespace).get_or_load(loader, **params)))
    assert results == ["value"] * 50
    assert len(runs) == 1
    stats = engine.stats()[namespace]
    assert stats["loads"] == 1 and stats["hits"] + stats["misses"] == 50
    assert stats["lock_waits"] == 0  # in one process, single-flight alone keeps the others off Redis's lock


def load_in_four_processes(port: int, namespace: str, params: dict[str, Any]) -> tuple[list[Any], int]:
    """Four processes get_or_load one cold key at the same moment; their values and the loader's run count."""
    ctx = workers.context()
    barrier = ctx.Barrier(4)
    pipes, children = [], []
    for _ in range(4):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=workers.load_once, args=(str(POLICIES), port, namespace, params, 300, barrier, send))
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    try:
        values = []
        for receive in pipes:
            assert receive.poll(30), "a worker did not answer"
            values.append(receive.recv())
    finally:
        for child in children:
            child.join(10)
            if child.exitcode is None:
                child.kill()
                child.join()
    return values, int(redis.Redis(port=port, db=1).get("loader_runs") or 0)


def test_lock_makes_four_processes_load_once(engines, redis_client: redis.Redis, redis_server: Any):
    values, runs = load_in_four_processes(redis_server.port, "query_result", {"query_id": "q1"})
    assert runs == 1
    assert len(set(values)) == 1 and values[0].startswith("loaded by ")
    assert engines.connect(POLICIES, client=redis_client).namespace("query_result").get(query_id="q1") == values[0]
    assert not redis_client.exists(LOCK_PREFIX + "query:q1")  # released by its owner


def test_without_the_lock_four_processes_each_load(redis_client: redis.Redis, redis_server: Any):
    """The control for the test above: 'product' has no lock, so the processes' loads overlap."""
    values, runs = load_in_four_processes(redis_server.port, "product", {"product_id": 1})
    assert runs >= 2 and len(set(values)) >= 2


def test_a_crashed_lock_owner_delays_others_by_wait_timeout_only(short, redis_client: redis.Redis, redis_server: Any,
                                                                   tmp_path: Path):
    ctx = workers.context()
    receive, send = ctx.Pipe(duplex=False)
    owner = ctx.Process(target=workers.hold_lock_and_hang, args=(str(tmp_path), redis_server.port, "guarded", {"id": 1}, send))
    owner.start()
    send.close()
    try:
        assert receive.poll(30) and receive.recv_bytes() == b"loading"
    finally:
        owner.kill()
        owner.join(10)
    assert owner.exitcode == -signal.SIGKILL
    assert redis_client.exists(LOCK_PREFIX + "guarded:1")  # the dead owner's lock lives on (lock_timeout 10s)

    assert short.namespace("guarded").get_or_load(lambda: "mine", id=1) == "mine"
    stats = short.stats()["guarded"]
    assert (stats["lock_waits"], stats["loads"]) == (1, 1)
    assert short.namespace("guarded").get(id=1) == "mine"


def test_loader_exceptions_reach_every_waiter_and_are_not_cached(engine, redis_client: redis.Redis):
    queries = engine.namespace("query_result")
    runs: list[int] = []
    errors: list[BaseException] = []

    def failing() -> Any:
        runs.append(1)
        time.sleep(0.1)
        raise RuntimeError("database down")

    def call() -> None:
        try:
            queries.get_or_load(failing, query_id="q1")
        except RuntimeError as exc:
            errors.append(exc)

    run_threads(10, call)
    assert len(runs) == 1 and len(errors) == 10
    assert redis_client.keys("*") == []  # neither the failure nor the lock stays behind
    assert queries.get_or_load(lambda: runs.append(1) or ["row"], query_id="q1") == ["row"]
    assert len(runs) == 2
    stats = engine.stats()["query_result"]
    assert (stats["load_errors"], stats["loads"]) == (1, 1)


def test_none_is_cached_for_negative_ttl_only(engine, short, redis_client: redis.Redis):
    runs: list[int] = []

    def absent() -> None:
        runs.append(1)

    data = engine.namespace("user_data")  # negative_ttl: 30s
    assert data.get_or_load(absent, user_id=7) is None
    assert data.get_or_load(absent, user_id=7) is None
    assert len(runs) == 1
    assert 0 < redis_client.pttl("user:7:data") <= 30_000
    assert data.get(user_id=7) is None  # a cached negative reads as None, not as the marker

    products = engine.namespace("product")  # no negative_ttl: None is not stored
    assert products.get_or_load(absent, product_id=7) is None
    assert products.get_or_load(absent, product_id=7) is None
    assert len(runs) == 3 and not redis_client.exists("product:7")

    maybe = short.namespace("maybe")  # negative_ttl: 1s, then the loader runs again
    assert maybe.get_or_load(absent, id=1) is None
    assert 0 < redis_client.pttl("maybe:1") <= 1000
    before = len(runs)
    deadline = time.monotonic() + 5
    while len(runs) == before:
        assert time.monotonic() < deadline, "the negative entry did not expire"
        assert maybe.get_or_load(absent, id=1) is None
        time.sleep(0.05)


def test_early_refresh_reloads_before_expiry(short, redis_client: redis.Redis):
    """TTL 1s, beta 100, a 10 ms loader: XFetch refreshes long before expiry, so no reader misses."""
    fresh = short.namespace("fresh")
    version = iter(range(1, 1_000_000))

    def loader() -> str:
        time.sleep(0.01)
        return str(next(version))

    seen: list[int] = []
    deadline = time.monotonic() + 10
    while short.stats()["fresh"]["loads"] < 5:
        assert time.monotonic() < deadline, "no early refresh happened"
        seen.append(int(fresh.get_or_load(loader, id=1)))
        time.sleep(0.01)
    stats = short.stats()["fresh"]
    assert stats["early_refreshes"] >= 4
    assert stats["misses"] == 1  # only the very first call: the key never expired under the readers
    assert seen == sorted(seen) and seen[-1] == 5
    assert redis_client.pttl("fresh:1") > 0
