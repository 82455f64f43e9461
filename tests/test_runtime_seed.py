"""Every scenario of the seed document, through the engine, on a real redis-server.

Each test performs what the seed does with raw redis-py and checks the same observable
result in Redis (same keys, same values), plus what the policy adds: a TTL inside the
namespace's tier on every key.
"""

from __future__ import annotations

import pytest

import toolkit
from toolkit.policy.durations import parse_duration


@pytest.fixture
def engine(engines, policies, redis_client):
    with engines.connect(policies, client=redis_client) as engine:
        yield engine


def assert_ttl_in_tier(redis_client, policies, key: str) -> None:
    ns, _ = policies.classify(key)
    pttl = redis_client.pttl(key)
    assert ns.tier_min_ms - 1000 <= pttl <= ns.tier_max_ms, (key, pttl)


def test_set_and_get_a_string(engine, redis_client, policies):
    names = engine.namespace("user_name")
    assert names.set("Alice Smith", user_id=1001) is True
    assert names.get(user_id=1001) == "Alice Smith"
    assert redis_client.get("user:1001:name") == b"Alice Smith"
    assert_ttl_in_tier(redis_client, policies, "user:1001:name")


def test_hash_profile_fields_and_whole(engine, redis_client, policies):
    users = engine.namespace("user")
    assert users.hset(mapping={"name": "Alice Smith", "email": "alice@example.com", "age": "28"}, user_id=1001) == 3
    assert users.hget("name", user_id=1001) == "Alice Smith"
    assert users.hgetall(user_id=1001) == {"name": "Alice Smith", "email": "alice@example.com", "age": "28"}
    assert redis_client.hgetall("user:1001") == {b"name": b"Alice Smith", b"email": b"alice@example.com", b"age": b"28"}
    assert_ttl_in_tier(redis_client, policies, "user:1001")


def test_multi_field_user_keys_mset_mget_keep_ttls(engine, redis_client, policies):
    """The seed's MSET of user:1001:name/email/age (three namespaces), atomically and with TTLs."""
    with engine.pipeline(transaction=True) as p:
        p.namespace("user_name").set("Alice Smith", user_id=1001)
        p.namespace("user_email").set("alice@example.com", user_id=1001)
        p.namespace("user_age").set("28", user_id=1001)
    assert p.results == [True, True, True]
    with engine.pipeline() as p:
        p.namespace("user_name").get(user_id=1001)
        p.namespace("user_email").get(user_id=1001)
        p.namespace("user_age").get(user_id=1001)
    assert p.results == ["Alice Smith", "alice@example.com", "28"]
    assert redis_client.mget("user:1001:name", "user:1001:email", "user:1001:age") == [b"Alice Smith", b"alice@example.com", b"28"]
    for key in ("user:1001:name", "user:1001:email", "user:1001:age"):
        assert_ttl_in_tier(redis_client, policies, key)
    # Within one namespace, mset/mget are the handle's own batch calls; MSET has no TTL, these keys do.
    names = engine.namespace("user_name")
    assert names.mset([({"user_id": 1002}, "Bob Jones"), ({"user_id": 1003}, "Carol White")]) is True
    assert names.mget([{"user_id": 1001}, {"user_id": 1002}, {"user_id": 1003}, {"user_id": 9999}]) == [
        "Alice Smith", "Bob Jones", "Carol White", None]
    assert_ttl_in_tier(redis_client, policies, "user:1003:name")


def test_pipeline_over_several_hashes(engine):
    users = engine.namespace("user")
    users.hset(mapping={"name": "Alice Smith"}, user_id=1001)
    users.hset(mapping={"name": "Bob Jones"}, user_id=1002)
    with engine.pipeline() as p:
        p.namespace("user").hgetall(user_id=1001)
        p.namespace("user").hgetall(user_id=1002)
    assert p.results == [{"name": "Alice Smith"}, {"name": "Bob Jones"}]
    with engine.pipeline() as p:
        for uid in (1001, 1002, 1003):
            p.namespace("user").hget("name", user_id=uid)
    assert p.results == ["Alice Smith", "Bob Jones", None]


def test_exists_and_delete(engine, redis_client):
    names, emails = engine.namespace("user_name"), engine.namespace("user_email")
    names.set("Alice Smith", user_id=1001)
    emails.set("alice@example.com", user_id=1001)
    assert names.exists(user_id=1001) == 1
    with engine.pipeline() as p:
        p.namespace("user_name").exists(user_id=1001)
        p.namespace("user_email").exists(user_id=1001)
        p.namespace("user_name").exists(user_id=9999)
    assert sum(p.results) == 2
    assert names.delete(user_id=1001) == 1
    assert names.delete(user_id=1001) == 0
    assert redis_client.exists("user:1001:name", "user:1001:email") == 1


def test_session_of_60_seconds(engine, redis_client):
    sessions = engine.namespace("session")
    sessions.set("user_data", session_id="abc123")
    assert redis_client.get("session:abc123") == b"user_data"
    assert 55_000 < redis_client.pttl("session:abc123") <= 60_000


def test_temporary_value_of_5_seconds(engine, redis_client):
    temp = engine.namespace("temp")
    temp.set("temporary_value", name="data")
    assert redis_client.get("temp:data") == b"temporary_value"
    assert 4_000 < redis_client.pttl("temp:data") <= 5_000


def test_preferences_expire_and_ttl_checks(engine, redis_client):
    prefs = engine.namespace("user_preferences")
    prefs.set("dark_mode", user_id=1002)
    assert 3_500 < prefs.ttl(user_id=1002) <= 3_600
    assert prefs.expire(7200, user_id=1002) is True
    assert 7_100 < redis_client.ttl("user:1002:preferences") <= 7_200
    assert prefs.pttl(user_id=1002) > 7_000_000
    with pytest.raises(toolkit.PolicyViolation, match="must expire"):
        prefs.persist(user_id=1002)  # the seed's r.persist would make a cache key immortal
    with pytest.raises(toolkit.PolicyViolation, match="outside tier"):
        prefs.expire(60, user_id=1002)
    assert redis_client.ttl("user:1002:preferences") > 7_000
    assert prefs.ttl(user_id=9999) == -2


def test_cached_query_results_and_product_details(engine, redis_client):
    calls = []

    def get_product_details() -> str:
        calls.append(1)
        return "Product: Laptop, Price: $999"

    products = engine.namespace("product")
    assert products.get_or_load(get_product_details, product_id=12345) == "Product: Laptop, Price: $999"
    assert products.get_or_load(get_product_details, product_id=12345) == "Product: Laptop, Price: $999"
    assert len(calls) == 1
    assert 595 <= redis_client.ttl("product:12345") <= 600
    queries = engine.namespace("query_result")
    rows = queries.get_or_load(lambda: [{"id": 1}, {"id": 2}], query_id="top-products")
    assert rows == [{"id": 1}, {"id": 2}]
    assert 295 <= redis_client.ttl("query:top-products") <= 300


def test_invalidation_on_user_update(engine, redis_client):
    for ns in ("user_profile", "user_summary", "dashboard_user"):
        engine.namespace(ns).set({"cached": ns}, user_id=1001)
        engine.namespace(ns).set({"cached": ns}, user_id=1002)
    assert engine.invalidate("user_updated", user_id=1001) == 3
    assert redis_client.exists("user:1001:profile", "user:1001:summary", "dashboard:user:1001") == 0
    assert redis_client.exists("user:1002:profile", "user:1002:summary", "dashboard:user:1002") == 3
    assert engine.invalidate("user_updated", user_id=1001) == 0


def test_cache_aside_user_data(engine, redis_client):
    def fetch_from_database(user_id: int) -> str:
        return f"User data for {user_id}"

    data = engine.namespace("user_data")
    assert data.get_or_load(lambda: fetch_from_database(1001), user_id=1001) == "User data for 1001"
    assert redis_client.get("user:1001:data") == b"User data for 1001"
    assert 3_500 < redis_client.ttl("user:1001:data") <= 3_600 + 300
    stats = engine.stats()["user_data"]
    assert (stats["misses"], stats["loads"]) == (1, 1)
    assert data.get_or_load(lambda: pytest.fail("must be a hit"), user_id=1001) == "User data for 1001"
    assert engine.stats()["user_data"]["hits"] == 1


def test_pattern_invalidation_of_all_user_keys(engine, redis_client):
    engine.namespace("user_name").set("Alice", user_id=1001)
    engine.namespace("user_email").set("a@example.com", user_id=1001)
    engine.namespace("user_preferences").set("dark_mode", user_id=1001)
    engine.namespace("user_recent").lpush("item-1", user_id=1001)
    engine.namespace("user").hset(mapping={"name": "Alice"}, user_id=1001)   # user:1001 has no ':' after the id
    engine.namespace("user_name").set("Bob", user_id=1002)
    engine.namespace("user_name").set("Someone", user_id=10010)              # user:10010:* must survive user 1001
    for i in range(3000):                                                     # many keys: SCAN takes several steps
        redis_client.set(f"noise:{i}", i, ex=60)
    assert engine.invalidate("user_all", user_id=1001) == 4
    remaining = sorted(k.decode() for k in redis_client.scan_iter(match="user:*"))
    assert remaining == ["user:1001", "user:10010:name", "user:1002:name"]


def test_page_view_counter_and_recent_list_and_dashboard(engine, redis_client):
    views = engine.namespace("page_views")
    assert [views.incr(page="home") for _ in range(3)] == [1, 2, 3]
    assert views.incrby(10, page="home") == 13
    assert views.decr(page="home") == 12
    assert views.get(page="home") == 12
    recent = engine.namespace("user_recent")
    for i in range(25):
        recent.lpush({"sku": i}, user_id=7)
    assert recent.llen(user_id=7) == 20                       # max_length trims on every push
    assert recent.lrange(0, 1, user_id=7) == [{"sku": 24}, {"sku": 23}]
    assert recent.rpop(user_id=7) == {"sku": 5}
    engine.namespace("dashboard_user").set({"tiles": ["sales"]}, user_id=7)
    for key in redis_client.scan_iter():
        ns, _ = engine.policy.classify(key)
        assert redis_client.pttl(key) > 0, key
        assert redis_client.pttl(key) <= ns.tier_max_ms


def test_every_write_kind_sets_a_ttl_inside_the_tier(engine, redis_client, policies):
    """Sweep: one write per namespace; every key ends with a TTL within its namespace's ttl + jitter."""
    samples = {"string": lambda h, p: h.set("v" if h.ns.codec != "json" else {"v": 1}, **p),
               "hash": lambda h, p: h.hset("f", "v", **p),
               "list": lambda h, p: h.rpush("v" if h.ns.codec != "json" else {"v": 1}, **p),
               "counter": lambda h, p: h.incr(**p)}
    for name, ns in policies.namespaces.items():
        params = {p: ("42" if spec.type in ("int", "str") else "x-1") for p, spec in ns.params.items()}
        if "session_id" in params:
            params["session_id"] = "abcdef12"
        samples[ns.type](engine.namespace(name), params)
        key = ns.key(**params)
        pttl = redis_client.pttl(key)
        assert ns.ttl_ms - 1000 <= pttl <= ns.ttl_ms + ns.max_jitter_ms, (name, pttl)
        assert parse_duration(1) <= pttl
