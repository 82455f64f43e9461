"""What the engine refuses, and what it guarantees, on a real redis-server."""

from __future__ import annotations

import pytest
import redis

import toolkit
from tests.policytext import load_policy
from toolkit.errors import ConfigurationError, PolicyViolation

INJECTIONS = ["*", "1*", "?", "[a-z]", "1]", "\\", "1\\*", "{1}", "{", "}", "1:name", ":", "1\r\nFLUSHALL", "a b",
              "\n", "", "1\x00", "user:*"]


@pytest.fixture
def engine(engines, policies, redis_client):
    with engines.connect(policies, client=redis_client) as engine:
        yield engine


def commands_sent(client: redis.Redis) -> int:
    """Total commands the server has processed (INFO itself included, so compare deltas)."""
    return int(client.info("stats")["total_commands_processed"])


def test_violations_raise_before_anything_is_sent(engine, redis_client):
    names = engine.namespace("user_name")
    calls = [
        lambda: names.hset("f", "v", user_id=1),                 # wrong type for the namespace
        lambda: engine.namespace("page_views").lpush("x", page="home"),
        lambda: names.get(),                                    # missing parameter
        lambda: names.get(user_id=1, extra=2),                  # unexpected parameter
        lambda: names.get(user_id="abc"),                       # user_id is an int parameter
        lambda: names.set("x", ttl=5, user_id=1),               # TTL below the stable tier
        lambda: names.set("x", ttl=90_000, user_id=1),          # TTL above it
        lambda: names.persist(user_id=1),                       # the namespace must expire
        lambda: names.set({"not": "text"}, user_id=1),          # codec text
        lambda: engine.namespace("user_profile").set({1, 2}, user_id=1),  # not JSON-serialisable
        lambda: engine.namespace("page_views").incrby("3", page="home"),
        lambda: engine.namespace("nope"),
        lambda: engine.invalidate("user_all", user_id="*"),
        lambda: engine.invalidate("user_all"),
        lambda: engine.invalidate("no_such_rule", user_id=1),
    ]
    before = commands_sent(redis_client)
    for call in calls:
        with pytest.raises(PolicyViolation):
            call()
    assert commands_sent(redis_client) == before + 1  # only our own INFO


def test_wrong_type_message_names_the_right_methods(engine):
    with pytest.raises(PolicyViolation, match=r"'user' is a hash: get is a string and counter command .*hgetall"):
        engine.namespace("user").get(user_id=1)
    with pytest.raises(PolicyViolation, match=r"get_or_load is a string and hash command \(allowed here: .*delete.*rpush"):
        engine.namespace("user_recent").get_or_load(lambda: [], user_id=1)


def test_invalidate_with_a_glob_value_raises_and_deletes_nothing(engine, redis_client):
    for uid in (1, 2, 3):
        engine.namespace("user_name").set("n", user_id=uid)
    for value in INJECTIONS:
        with pytest.raises(PolicyViolation):
            engine.invalidate("user_all", user_id=value)
    assert redis_client.dbsize() == 3


@pytest.mark.parametrize("value", INJECTIONS)
def test_injected_parameters_never_touch_a_foreign_key(engine, redis_client, value):
    """str-typed parameters accept arbitrary text, minus what could reach another key or widen a glob."""
    redis_client.set("session:victim", "secret", ex=60)
    redis_client.set("session:victim:x", "secret", ex=60)
    sessions = engine.namespace("session")
    with pytest.raises(PolicyViolation):
        sessions.set("attacker", session_id=value)
    with pytest.raises(PolicyViolation):
        sessions.get(session_id=value)
    with pytest.raises(PolicyViolation):
        sessions.delete(session_id=value)
    assert redis_client.get("session:victim") == b"secret"
    assert redis_client.dbsize() == 2


def test_hash_tag_keys_share_a_slot_and_classify_back(engines, tmp_path, redis_client):
    policy = load_policy(tmp_path, """
        namespaces:
          profile:
            key: "user:{user_id}:profile"
            type: string
            tier: moderate
            hash_tag: user_id
          cart:
            key: "cart:{user_id}:items"
            type: list
            tier: moderate
            hash_tag: user_id
    """)
    engine = engines.connect(policy, client=redis_client)
    engine.namespace("profile").set("p", user_id="1001")
    engine.namespace("cart").rpush("sku-1", user_id="1001")
    assert sorted(redis_client.keys()) == [b"cart:{1001}:items", b"user:{1001}:profile"]
    from redis.crc import key_slot

    assert key_slot(b"user:{1001}:profile") == key_slot(b"cart:{1001}:items") != key_slot(b"user:1001:profile")
    assert policy.classify("user:{1001}:profile")[0].name == "profile"
    assert policy.classify("user:1001:profile") is None  # the untagged form belongs to no namespace


def test_codecs_coexist_on_one_client(engines, tmp_path, redis_client):
    policy = load_policy(tmp_path, """
        namespaces:
          avatar:
            key: "avatar:{user_id}"
            type: string
            codec: bytes
            tier: stable
          label:
            key: "label:{user_id}"
            type: string
            codec: text
            tier: stable
          doc:
            key: "doc:{user_id}"
            type: hash
            codec: json
            tier: stable
    """)
    engine = engines.connect(policy, client=redis_client)
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    engine.namespace("avatar").set(png, user_id=1)
    engine.namespace("label").set("Zoë", user_id=1)
    engine.namespace("doc").hset(mapping={"a": [1, 2], "b": {"c": None}}, user_id=1)
    assert engine.namespace("avatar").get(user_id=1) == png
    assert engine.namespace("label").get(user_id=1) == "Zoë"
    assert engine.namespace("doc").hgetall(user_id=1) == {"a": [1, 2], "b": {"c": None}}
    with pytest.raises(PolicyViolation):
        engine.namespace("avatar").set("text is not bytes", user_id=1)
    decoding = redis.Redis(port=redis_client.connection_pool.connection_kwargs["port"], decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses"):
        engines.connect(policy, client=decoding)
    decoding.close()


def test_a_key_of_the_wrong_type_reads_as_a_miss_on_fail_open(engine, redis_client):
    """What Redis holds against the policy is not the caller's mistake: counted, read as a miss, never raised."""
    redis_client.rpush("user:5:name", "not a string")
    assert engine.namespace("user_name").get(user_id=5) is None
    with engine.pipeline() as p:
        p.namespace("user_name").get(user_id=5)
        p.namespace("user_name").set("kept", user_id=6)
    assert p.results == [None, True]
    stats = engine.stats()["user_name"]
    assert (stats["data_errors"], stats["misses"], stats["hits"]) == (2, 2, 0)


def test_persistent_namespace_takes_no_ttl(engines, tmp_path, redis_client):
    policy = load_policy(tmp_path, """
        namespaces:
          flags:
            key: "flags:{name}"
            type: hash
            tier: persistent
            reason: Feature flags are the source of truth, written by the admin service.
    """)
    flags = engines.connect(policy, client=redis_client).namespace("flags")
    flags.hset("enabled", "1", name="checkout")
    assert redis_client.pttl("flags:checkout") == -1
    assert flags.persist(name="checkout") is False  # already persistent: allowed, nothing to do
    with pytest.raises(PolicyViolation, match="persistent"):
        flags.expire(60, name="checkout")


def test_pipeline_returns_decoded_results_in_one_round_trip(engine, redis_client):
    engine.namespace("user").hset(mapping={"name": "A"}, user_id=1)
    engine.namespace("user_profile").set({"bio": "hi"}, user_id=1)
    before = int(redis_client.info("clients")["connected_clients"])
    with engine.pipeline() as p:
        p.namespace("user").hgetall(user_id=1)
        p.namespace("user_profile").get(user_id=1)
        p.namespace("page_views").incr(page="p")
        p.namespace("user_recent").lpush({"x": 1}, user_id=1)
        p.namespace("user_name").get(user_id=404)
        assert len(p) == 5 and p.results == []
    assert p.results == [{"name": "A"}, {"bio": "hi"}, 1, 1, None]
    assert int(redis_client.info("clients")["connected_clients"]) == before
    with pytest.raises(PolicyViolation, match="pipeline"):
        with engine.pipeline() as p:
            p.namespace("user_data").get_or_load(lambda: "x", user_id=1)


def test_stats_count_hits_and_misses(engine):
    names = engine.namespace("user_name")
    names.get(user_id=1)
    names.set("A", user_id=1)
    names.get(user_id=1)
    stats = engine.stats()["user_name"]
    assert (stats["hits"], stats["misses"], stats["errors"]) == (1, 1, 0)


def test_a_decoding_client_serves_text_and_json_namespaces(engines, policies, redis_server, redis_client):
    """The caller's client is used as is: decode_responses=True is fine when no namespace stores bytes."""
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    engine = engines.connect(policies, client=client)
    engine.namespace("user").hset(mapping={"name": "Zoë"}, user_id=1)
    engine.namespace("user_profile").set({"bio": "hi"}, user_id=1)
    assert engine.namespace("user").hgetall(user_id=1) == {"name": "Zoë"}
    assert engine.namespace("user_profile").get(user_id=1) == {"bio": "hi"}
    client.close()
