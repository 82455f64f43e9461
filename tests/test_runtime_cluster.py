"""The engine on a real local Redis Cluster of three primaries (redis.cluster.RedisCluster)."""

from __future__ import annotations

import pytest

import toolkit


@pytest.fixture
def engine(engines, policies, cluster_client):
    engine = engines.connect(policies, client=cluster_client)
    assert engine.cluster
    return engine


def keys_per_primary(cluster_client) -> list[int]:
    return [node.redis_connection.dbsize() for node in cluster_client.get_primaries()]


def test_writes_of_every_type_land_on_every_primary_with_ttls(engine, cluster_client):
    for uid in range(60):
        engine.namespace("user_name").set(f"name-{uid}", user_id=uid)
        engine.namespace("user").hset(mapping={"name": f"n{uid}"}, user_id=uid)      # Lua, routed by its key
        engine.namespace("user_recent").lpush({"i": uid}, user_id=uid)
        engine.namespace("page_views").incr(page=f"p{uid}")
    assert sum(keys_per_primary(cluster_client)) == 240
    assert all(count > 0 for count in keys_per_primary(cluster_client))
    assert engine.namespace("user").hgetall(user_id=7) == {"name": "n7"}
    assert engine.namespace("page_views").get(page="p7") == 1
    for key in cluster_client.scan_iter(count=1000):
        assert cluster_client.pttl(key) > 0, key


def test_pipelines_and_batches_are_split_by_slot(engine, cluster_client):
    names = engine.namespace("user_name")
    assert names.mset([({"user_id": i}, f"n{i}") for i in range(50)]) is True  # 50 keys over many slots
    assert names.mget([{"user_id": i} for i in range(52)]) == [f"n{i}" for i in range(50)] + [None, None]
    with engine.pipeline() as p:
        for i in range(50):
            p.namespace("user").hset("k", "v", user_id=i)
            p.namespace("user_name").get(user_id=i)
    assert p.results[1::2] == [f"n{i}" for i in range(50)]
    assert all(cluster_client.pttl(f"user:{i}:name") > 0 and cluster_client.pttl(f"user:{i}") > 0 for i in range(50))


def test_cross_slot_transactions_are_refused_by_redis_not_silently_split(engine):
    from redis.exceptions import RedisClusterException

    with pytest.raises((RedisClusterException, toolkit.ToolkitError)):
        with engine.pipeline(transaction=True) as p:
            p.namespace("user_name").set("a", user_id=1)
            p.namespace("user_name").set("b", user_id=2)


def test_match_invalidation_scans_every_primary(engine, cluster_client):
    for suffix_ns in ("user_name", "user_email", "user_preferences", "user_profile"):
        for uid in (1001, 1002):
            value = {"v": 1} if suffix_ns == "user_profile" else "v"
            engine.namespace(suffix_ns).set(value, user_id=uid)
    slots = {cluster_client.keyslot(f"user:1001:{s}") for s in ("name", "email", "preferences", "profile")}
    owners = {cluster_client.nodes_manager.get_node_from_slot(slot).name for slot in slots}
    assert len(owners) >= 2, "the test needs the user's keys spread over several primaries"
    assert engine.invalidate("user_all", user_id=1001) == 4
    left = sorted(k.decode() for k in cluster_client.scan_iter(match="user:*"))
    assert left == ["user:1002:email", "user:1002:name", "user:1002:preferences", "user:1002:profile"]
    assert engine.invalidate("user_updated", user_id=1002) == 1   # profile; summary and dashboard were never written


def test_get_or_load_with_lock_on_a_cluster(engine, cluster_client):
    calls = []
    queries = engine.namespace("query_result")
    assert queries.get_or_load(lambda: calls.append(1) or ["r"], query_id="q1") == ["r"]
    assert queries.get_or_load(lambda: calls.append(1) or ["r"], query_id="q1") == ["r"]
    assert calls == [1]
    assert not list(cluster_client.scan_iter(match="__toolkit__:lock:*"))  # released by its owner


def test_a_small_pool_per_node_is_waited_for_on_a_cluster(engines, tmp_path, redis_cluster, cluster_client):
    """max_connections on a cluster target: every node's pool blocks (pool_timeout) instead of failing."""
    from tests.contract_policy import contract_policy, in_threads

    engine = engines.connect(contract_policy(tmp_path, f"""
targets:
  c:
    provider: redis
    url: "redis://127.0.0.1:{redis_cluster.ports[0]}"
    instance: {{clustering_policy: OSSCluster}}
    client: {{max_connections: 1}}
"""), "c")
    assert engine.cluster
    from redis.connection import BlockingConnectionPool

    if engines.kind == "sync":  # redis.asyncio's cluster nodes take no pool class: the engine waits for them instead
        pools = [node.redis_connection.connection_pool for node in engine.client.get_primaries()]
        assert all(isinstance(p, BlockingConnectionPool) and p.max_connections == 1 for p in pools)

    def worker(n: int) -> None:
        for i in range(30):
            engine.namespace("name").set("v", user_id=n * 100 + i)

    assert in_threads(10, worker) == []
    assert sum(keys_per_primary(cluster_client)) == 300
    stats = engine.stats()["name"]
    assert (stats["errors"], stats["pool_timeouts"], stats["dropped_writes"]) == (0, 0, 0)
    engine.close()
