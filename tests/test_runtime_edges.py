"""Edge cases a review found: indexes that follow TTL changes, negative-cache markers, NOSCRIPT in
batches, a decoding client, and cluster batches with a node down."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

import toolkit
from tests.policytext import load_policy
from tests.servers import start_cluster

POLICY = """
namespaces:
  name:
    key: "user:{user_id}:name"
    type: string
    tier: stable
    ttl: 1h
  prefs:
    key: "user:{user_id}:prefs"
    type: hash
    tier: stable
    ttl: 1h
    cache_aside:
      negative_ttl: 30s
  doc:
    key: "doc:{doc_id}"
    type: string
    codec: json
    tier: stable
    cache_aside:
      negative_ttl: 30s
invalidation:
  user_all:
    match: "user:{user_id}:*"
    index: user_id
"""


@pytest.fixture
def engine(engines, tmp_path, redis_client):
    return engines.connect(load_policy(tmp_path, POLICY), client=redis_client)


def test_expire_on_an_indexed_key_extends_its_index(engine, redis_client):
    names = engine.namespace("name")
    names.set("bob", user_id=7)
    assert names.expire(86_400, user_id=7) is True
    assert redis_client.pttl("__toolkit__:idx:user_all:7") > 86_000_000  # the index outlives its member
    assert names.expire(7_200, user_id=404) is False                     # no key: the index is not touched
    assert not redis_client.exists("__toolkit__:idx:user_all:404")


def test_indexed_set_nx_reports_none_like_a_plain_one(engine, redis_client):
    """As redis-py: None when NX/XX prevented the write, whether the namespace is indexed (a script) or not."""
    names = engine.namespace("name")
    assert names.set("a", user_id=1, nx=True) is True
    assert names.set("b", user_id=1, nx=True) is None
    assert names.set("c", user_id=404, xx=True) is None
    assert names.get(user_id=1) == "a" and names.get(user_id=404) is None


def test_a_real_hash_write_replaces_a_cached_not_found(engine, redis_client):
    prefs = engine.namespace("prefs")
    assert prefs.get_or_load(lambda: None, user_id=3) is None          # "not found" cached for 30 s
    assert prefs.get_or_load(lambda: pytest.fail("cached"), user_id=3) is None
    prefs.hset("theme", "dark", user_id=3)
    assert prefs.hgetall(user_id=3) == {"theme": "dark"}
    assert prefs.get_or_load(lambda: pytest.fail("hit expected"), user_id=3) == {"theme": "dark"}


def test_scripts_missing_from_the_server_keep_a_batch_in_order(engine, redis_client):
    redis_client.script_flush()  # as after a restart or a failover
    with engine.pipeline() as p:
        p.namespace("prefs").hset("a", "1", user_id=5)
        p.namespace("prefs").delete(user_id=5)
        p.namespace("prefs").hset("b", "2", user_id=5)
    assert p.results == [1, 1, 1]
    assert redis_client.hgetall("user:5:prefs") == {b"b": b"2"}
    assert redis_client.pttl("user:5:prefs") > 0


def test_negative_markers_are_recognised_through_a_decoding_client(engines, tmp_path, redis_server):
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    engine = engines.connect(load_policy(tmp_path, POLICY), client=client)
    client.flushall()
    docs, prefs = engine.namespace("doc"), engine.namespace("prefs")
    for handle, params in ((docs, {"doc_id": "d1"}), (prefs, {"user_id": 9})):
        assert handle.get_or_load(lambda: None, **params) is None
        assert handle.get_or_load(lambda: pytest.fail("negative hit expected"), **params) is None
    assert docs.get(doc_id="d1") is None
    client.close()


def test_a_cluster_batch_with_a_node_down_fails_open(engines, tmp_path):
    cluster = start_cluster(tmp_path / "cluster")
    try:
        client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.ports[0], retry=Retry(NoBackoff(), 0),
                                            socket_connect_timeout=0.2, socket_timeout=0.5)
        engine = engines.connect(load_policy(tmp_path / "p", POLICY.split("invalidation:")[0]), client=client)
        names = engine.namespace("name")
        for uid in range(30):
            names.set(f"n{uid}", user_id=uid)
        cluster.nodes[1].kill()
        with engine.pipeline() as p:  # keys on the dead node and on the live ones
            for uid in range(30):
                p.namespace("name").get(user_id=uid)
        assert len(p.results) == 30 and None in p.results  # no exception: misses (redis-py may drop the whole batch)
        stats = engine.stats()["name"]
        assert stats["errors"] > 0
        client.close()
    finally:
        cluster.stop()
