"""The runtime's contract on values, arguments and errors, on a real redis-server.

A value reads the same on a miss and on a hit; empty is a value; arguments users pass are
accepted or refused before anything is sent; what another client left in Redis is a
DataViolation, never the caller's PolicyViolation; pipelines keep every result.
"""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import redis

import toolkit
import toolkit.errors
from tests.contract_policy import contract_policy
from toolkit.errors import DataViolation, PipelineError, PolicyViolation, ToolkitError


@pytest.fixture
def engine(engines, tmp_path, redis_client):
    with engines.connect(contract_policy(tmp_path), client=redis_client) as engine:
        yield engine


def sent(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


# -- 1. the same value on a miss and on a hit -------------------------------------------------------

@pytest.mark.parametrize(("namespace", "loaded", "read"), [
    ("cart", {"qty": 2, "price": 1.5, "name": "tea"}, {"qty": "2", "price": "1.5", "name": "tea"}),
    ("cart", {1: "one"}, {"1": "one"}),
    ("doc", {"tags": ("a", "b"), 7: None, "n": 2}, {"tags": ["a", "b"], "7": None, "n": 2}),
    ("doc", [], []),
    ("doc", "", ""),
    ("name", 42, "42"),
    ("name", "", ""),
    ("blob", bytearray(b"\x00\xff"), b"\x00\xff"),
])
def test_get_or_load_returns_on_the_miss_what_every_hit_returns(engine, namespace, loaded, read):
    handle = engine.namespace(namespace)
    calls = []
    first = handle.get_or_load(lambda: calls.append(1) or loaded, user_id=1)
    second = handle.get_or_load(lambda: calls.append(1) or loaded, user_id=1)
    assert first == second == read and type(first) is type(read)
    assert len(calls) == 1  # the second call was a hit
    plain = handle.hgetall(user_id=1) if namespace == "cart" else handle.get(user_id=1)
    assert plain == read


# -- 2. empty is a value ----------------------------------------------------------------------------

def test_an_empty_mapping_is_cached_and_read_back_empty(engine, redis_client):
    cart = engine.namespace("cart")
    loads = []
    assert cart.get_or_load(lambda: loads.append(1) or {}, user_id=1) == {}
    assert cart.get_or_load(lambda: loads.append(1) or {"x": 1}, user_id=1) == {}  # a hit: no second load
    assert loads == [1]
    assert cart.exists(user_id=1) == 1 and cart.exists(user_id=2) == 0  # cached empty vs missing
    assert cart.hgetall(user_id=1) == {} and cart.hget("x", user_id=1) is None
    assert 0 < cart.ttl(user_id=1) <= 3600
    stats = engine.stats()["cart"]
    assert (stats["hits"], stats["misses"]) == (2, 2)  # hits: the cached empty twice; misses: the first load, hget
    assert cart.hgetall(user_id=2) == {} and engine.stats()["cart"]["misses"] == 3  # a missing key is a miss
    cart.hset("item", "1", user_id=1)  # a real field replaces the marker
    assert cart.hgetall(user_id=1) == {"item": "1"}
    assert redis_client.hlen("cart:1") == 1


def test_a_cache_fill_replaces_the_whole_mapping(engine, redis_client):
    """A fill after unreadable data must not merge with the old fields: the stale ones are dropped."""
    redis_client.hset("cart:3", mapping={"bad": b"\xff", "stale": "x", "a": "0"})
    assert engine.namespace("cart").get_or_load(lambda: {"a": 9}, user_id=3) == {"a": "9"}
    assert redis_client.hgetall("cart:3") == {b"a": b"9"}
    assert engine.stats()["cart"]["data_errors"] == 1


# -- 3. arguments users pass ------------------------------------------------------------------------

@pytest.mark.parametrize("ttl", [3600, 3600.0, 3600.4, timedelta(hours=1), "1h", "3600s", "60m"])
def test_ttl_takes_seconds_timedelta_and_durations(engine, redis_client, ttl):
    engine.namespace("name").set("v", ttl=ttl, user_id=1)
    assert abs(redis_client.pttl("name:1") - 3_600_000) < 2_000


@pytest.mark.parametrize("ttl", [math.nan, math.inf, -math.inf, -1, 0, 0.0, -3600, "abc", "", "-5m", "1.5h", [3600], {},
                                 True, b"1h", "9" * 5000, 10**400, timedelta(seconds=-5)], ids=repr)
def test_bad_ttls_are_policy_violations_with_short_messages(engine, redis_client, ttl):
    before = sent(redis_client)
    for call in (lambda: engine.namespace("name").set("v", ttl=ttl, user_id=1),
                 lambda: engine.namespace("cart").hset("f", "v", ttl=ttl, user_id=1),
                 lambda: engine.namespace("name").expire(ttl, user_id=1)):
        with pytest.raises(PolicyViolation) as caught:
            call()
        assert len(str(caught.value)) < 200
    assert sent(redis_client) == before + 1


def test_an_int_parameter_addresses_one_key_per_entity(engine, redis_client):
    name = engine.namespace("name")
    name.set("a", user_id=7)
    assert name.get(user_id="7") == "a"
    assert name.key(user_id=7) == name.key(user_id="7") == "name:7"
    for other in ("007", "07", "+7", " 7", "7.0", 7.0, True, "-7", -7, "٧"):
        with pytest.raises(PolicyViolation):
            name.key(user_id=other)
    assert name.key(user_id=0) == name.key(user_id="0") == "name:0"


@pytest.mark.parametrize("call", [
    lambda e: e.namespace("name").set("lone \ud800 surrogate", user_id=1),
    lambda e: e.namespace("cart").hset("f", "\udfff", user_id=1),
    lambda e: e.namespace("cart").hset("\ud800", "v", user_id=1),
    lambda e: e.namespace("cart").hset(mapping={b"\xff\xfe": "v"}, user_id=1),
    lambda e: e.namespace("cart").hset(mapping={("a", "b"): "v"}, user_id=1),
    lambda e: e.namespace("cart").hset("\x00toolkit:empty\x00", "v", user_id=1),
    lambda e: e.namespace("doc").set(math.nan, user_id=1),
    lambda e: e.namespace("doc").set({"x": math.inf}, user_id=1),
    lambda e: e.namespace("doc").set(["\ud800"], user_id=1),
    lambda e: e.namespace("doc").set(object(), user_id=1),
    lambda e: e.namespace("feed").rpush({"x": -math.inf}, user_id=1),
    lambda e: e.namespace("blob").set("text is not bytes", user_id=1),
    lambda e: e.namespace("name").set(None, user_id=1),
    lambda e: e.namespace("cart").get_or_load(lambda: {"f": math.nan, "g": object()}, user_id=1),
    lambda e: e.namespace("doc").get_or_load(lambda: {"n": math.nan}, user_id=1),
])
def test_values_that_cannot_be_encoded_are_refused_before_sending(engine, redis_client, call):
    engine.namespace("name").exists(user_id=0)  # the engine's connection is open: its handshake is not counted
    before = sent(redis_client)
    with pytest.raises(PolicyViolation):
        call(engine)
    assert sent(redis_client) - before <= 2  # our INFO, and the cache read of get_or_load
    assert redis_client.dbsize() == 0


@pytest.mark.parametrize("call", [
    lambda e: e.namespace("feed").lrange("a", "b", user_id=1),
    lambda e: e.namespace("feed").lrange(0, 1.5, user_id=1),
    lambda e: e.namespace("feed").lpop(-1, user_id=1),
    lambda e: e.namespace("feed").rpop(0, user_id=1),
    lambda e: e.namespace("feed").rpop("2", user_id=1),
    lambda e: e.namespace("feed").lpush(user_id=1),
    lambda e: e.namespace("cart").hdel(user_id=1),
    lambda e: e.namespace("cart").hmget("abc", user_id=1),
    lambda e: e.namespace("cart").hmget([], user_id=1),
    lambda e: e.namespace("cart").hset(user_id=1),
    lambda e: e.namespace("cart").hset(mapping={}, user_id=1),
    lambda e: e.namespace("cart").hset(mapping=[("a", 1)], user_id=1),
    lambda e: e.namespace("name").mget([1, 2]),
    lambda e: e.namespace("name").mget({"user_id": 1}),
    lambda e: e.namespace("name").mset({"user_id": 1}),
    lambda e: e.namespace("name").mset([({"user_id": 1},)]),
    lambda e: e.namespace("name").set("v", nx=True, xx=True, user_id=1),
    lambda e: e.namespace("hits").incrby(2**63, user_id=1),
    lambda e: e.namespace("hits").incrby(1.0, user_id=1),
    lambda e: e.namespace("hits").decrby(-(2**63), user_id=1),
    lambda e: e.namespace("name").expire(None, user_id=1),
])
def test_misused_handle_arguments_are_policy_violations(engine, redis_client, call):
    before = sent(redis_client)
    with pytest.raises(PolicyViolation) as caught:
        call(engine)
    assert str(caught.value)
    assert sent(redis_client) == before + 1


# -- 4. one error taxonomy --------------------------------------------------------------------------

def test_every_public_exception_is_exported_from_toolkit():
    public = {name for name, value in vars(toolkit.errors).items()
              if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == "toolkit.errors"}
    assert public == {"ToolkitError", "PolicyError", "ConfigurationError", "PolicyViolation", "DataViolation",
                      "CacheUnavailable", "PipelineError", "PolicyMismatch"}
    for name in public:
        assert getattr(toolkit, name) is getattr(toolkit.errors, name) and name in toolkit.__all__
        assert issubclass(getattr(toolkit, name), ToolkitError)
    from toolkit.runtime import PolicyMismatch
    assert PolicyMismatch is toolkit.PolicyMismatch
    assert not issubclass(DataViolation, PolicyViolation)


def read(engine, namespace: str):
    """The plain read of a namespace's whole value."""
    handle = engine.namespace(namespace)
    kind = engine.policy.namespaces[namespace].type
    method = {"hash": "hgetall", "list": "lrange"}.get(kind, "get")
    return getattr(handle, method)(user_id=1)


FOREIGN = [  # what another client may leave under a namespace's key
    ("name", "name:1", lambda r: r.rpush("name:1", "a list")),
    ("name", "name:1", lambda r: r.set("name:1", b"\xff\xfe not utf-8")),
    ("doc", "doc:1", lambda r: r.set("doc:1", b"{not json")),
    ("cart", "cart:1", lambda r: r.set("cart:1", "a string")),
    ("cart", "cart:1", lambda r: r.hset("cart:1", "f", b"\xff")),
    ("feed", "feed:1", lambda r: r.rpush("feed:1", "{broken")),
]


@pytest.mark.parametrize(("namespace", "key", "write"), FOREIGN)
def test_foreign_data_reads_as_a_miss_on_fail_open_and_raises_on_fail_closed(engine, redis_client, namespace, key, write):
    write(redis_client)
    assert read(engine, namespace) in (None, {}, [])
    stats = engine.stats()[namespace]
    assert stats["data_errors"] == 1 and stats["hits"] == 0
    # the same bytes under the fail-closed twin namespace raise DataViolation, naming namespace and key
    closed = {"name": "name_closed", "doc": "doc_closed", "cart": "cart_closed", "feed": "feed_closed"}[namespace]
    closed_key = engine.namespace(closed).key(user_id=1)
    redis_client.copy(key, closed_key)
    if namespace == "feed":  # feed_closed is a text list: its items decode; make it wrong-typed instead
        redis_client.delete(closed_key)
        redis_client.set(closed_key, "x")
    with pytest.raises(DataViolation) as caught:
        read(engine, closed)
    assert (caught.value.namespace, caught.value.key) == (closed, closed_key)


@pytest.mark.parametrize(("namespace", "key", "write"), [f for f in FOREIGN if f[0] != "feed"])
def test_get_or_load_replaces_foreign_data_with_the_loaders_value(engine, redis_client, namespace, key, write):
    write(redis_client)
    handle = engine.namespace(namespace)
    value = {"cart": {"a": "1"}, "doc": {"ok": True}, "name": "fresh"}[namespace]
    assert handle.get_or_load(lambda: value, user_id=1) == value
    assert handle.get_or_load(lambda: pytest.fail("a hit expected"), user_id=1) == value
    assert redis_client.pttl(key) > 0


# -- 5. pipelines lose no results -------------------------------------------------------------------

def test_a_failed_command_leaves_the_others_results_in_order(engine, redis_client):
    redis_client.set("cartc:2", "a string where a hash belongs")
    redis_client.set("hits:3", "not a number")
    with pytest.raises(PipelineError) as caught:
        with engine.pipeline() as p:
            p.namespace("name").set("a", user_id=1)
            p.namespace("cart_closed").hgetall(user_id=2)
            p.namespace("name").get(user_id=1)
            p.namespace("hits").incr(user_id=3)
            p.namespace("hits").incr(user_id=4)
            p.namespace("cart").hgetall(user_id=2)
    error = caught.value
    assert sorted(error.errors) == [1, 3]
    assert isinstance(error.errors[1], DataViolation) and isinstance(error.errors[3], DataViolation)
    assert "#1" in str(error) and "#3" in str(error)
    assert p.results == error.results
    assert [r for i, r in enumerate(p.results) if i not in error.errors] == [True, "a", 1, {}]
    assert p.results[1] is error.errors[1]
    assert redis_client.get("hits:4") == b"1"  # the commands after the failure ran


# -- 8. scripts behave like the commands they replace: exact 64-bit integers ------------------------

def test_counters_are_exact_over_the_whole_64_bit_range(engine, redis_client):
    hits = engine.namespace("hits")
    redis_client.set("hits:1", 2**63 - 2)
    assert hits.incr(user_id=1) == 2**63 - 1
    assert hits.get(user_id=1) == 2**63 - 1
    with pytest.raises(DataViolation, match="overflow"):
        hits.incr(user_id=1)
    assert hits.incrby(2**53 + 1, user_id=2) == 2**53 + 1
    assert hits.incrby(2, user_id=2) == 2**53 + 3
    assert hits.decrby(2**63 - 1, user_id=3) == -(2**63 - 1)
    assert hits.decr(user_id=3) == -(2**63)
    with engine.pipeline() as p:
        p.namespace("hits").incrby(2**62, user_id=4)
        p.namespace("hits").incrby(2**62 - 1, user_id=4)
    assert p.results == [2**62, 2**63 - 1]


# -- found by a reviewer who read only the documents ------------------------------------------------

def test_messages_stay_short_whatever_the_caller_passes(engine):
    for call in (lambda: engine.namespace("x" * 300), lambda: engine.invalidate("r" * 300),
                 lambda: engine.namespace("name").key(user_id=1, **{"z" * 300: 1}),
                 lambda: engine.namespace("name").set(10**5000, user_id=1)):
        with pytest.raises(PolicyViolation) as caught:
            call()
        assert len(str(caught.value)) < 250, str(caught.value)


@pytest.mark.parametrize("stored", [b" 5", b"+5", b"05", b"1_000", str(2**64).encode(), b"5.0", b"abc"])
def test_a_counter_reads_only_what_incr_accepts(engine, redis_client, stored):
    redis_client.set("hits:1", stored)
    with pytest.raises(DataViolation, match="not an integer") as caught:
        engine.namespace("hits").get(user_id=1)
    assert "codec" not in str(caught.value)
    redis_client.set("hitso:1", stored)
    assert engine.namespace("hits_open").get(user_id=1) is None
    assert engine.stats()["hits_open"]["data_errors"] == 1


def test_errors_from_inside_scripts_do_not_show_lua_internals(engine, redis_client):
    redis_client.set("hits:1", 2**63 - 1)
    with pytest.raises(DataViolation) as caught:
        engine.namespace("hits").incr(user_id=1)
    assert "overflow" in str(caught.value) and "script" not in str(caught.value) and "@" not in str(caught.value)


def test_a_non_ascii_digit_is_not_called_a_leading_zero(engine):
    with pytest.raises(PolicyViolation, match="not of type int"):
        engine.namespace("name").key(user_id="\u0667")


def test_connect_and_pipeline_arguments_are_checked(engines, tmp_path, redis_client):
    policy = contract_policy(tmp_path)
    with pytest.raises(toolkit.ConfigurationError, match="verify"):
        engines.connect(policy, client=redis_client, verify="bogus")
    with pytest.raises(toolkit.ConfigurationError, match="redis-py client"):
        engines.connect(policy, client=object())
    engine = engines.connect(policy, client=redis_client)
    with pytest.raises(TypeError, match="transaction"):
        engine.pipeline(transaction="x")
    with pytest.raises(PolicyViolation, match="loader function"):
        engine.namespace("name").get_or_load(None, user_id=1)


def test_get_or_load_replaces_unreadable_data_on_a_fail_closed_namespace_too(engine, redis_client):
    redis_client.set("docc:1", b"{not json")
    assert engine.namespace("doc_closed").get_or_load(lambda: {"ok": 1}, user_id=1) == {"ok": 1}
    assert engine.namespace("doc_closed").get(user_id=1) == {"ok": 1}
    redis_client.set("cartc:1", "a string")
    assert engine.namespace("cart_closed").get_or_load(lambda: {"a": 1}, user_id=1) == {"a": "1"}
    with pytest.raises(DataViolation):  # a plain read of a fail-closed namespace still raises
        redis_client.set("docc:2", b"{not json")
        engine.namespace("doc_closed").get(user_id=2)


def test_threads_missing_together_load_each_key_once(engine, redis_client):
    """A caller whose miss raced with a finishing load gets that load's value instead of loading again."""
    import random
    import threading

    loads: list[int] = []
    lock = threading.Lock()

    def loader(i: int) -> str:
        with lock:
            loads.append(i)
        return f"v{i}"

    def worker(seed: int) -> None:
        order = list(range(50))
        random.Random(seed).shuffle(order)
        for i in order:
            assert engine.namespace("name").get_or_load(lambda i=i: loader(i), user_id=i) == f"v{i}"

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(loads) == list(range(50))


# -- the cached decorator (both engines) ------------------------------------------------------------

def test_the_cached_decorator_is_get_or_load_underneath(engine, redis_client):
    calls = []

    @engine.cached("doc")
    def load_doc(user_id):
        calls.append(user_id)
        return {"id": user_id, "tags": ("a", "b")}

    assert load_doc(3) == load_doc(user_id=3) == {"id": 3, "tags": ["a", "b"]}  # the codec's reading, hit or miss
    assert calls == [3] and load_doc.__name__ == "load_doc"
    assert 0 < redis_client.pttl("doc:3") <= 3_600_000  # the namespace's TTL decided
    assert engine.stats()["doc"]["hits"] == 1 and engine.stats()["doc"]["loads"] == 1

    @engine.cached("cart", params=lambda customer, currency="EUR": {"user_id": customer})
    def cart_of(customer, currency="EUR"):
        return {"currency": currency}

    assert cart_of(9) == {"currency": "EUR"} and cart_of(9, currency="USD") == {"currency": "EUR"}  # keyed by customer

    with pytest.raises(PolicyViolation, match="pass params="):
        engine.cached("doc")(lambda user_id, extra: None)
    with pytest.raises(PolicyViolation, match="only string and hash namespaces"):
        engine.cached("feed")


def test_the_sync_engine_refuses_coroutine_loaders(tmp_path, redis_client):
    engine = toolkit.connect(contract_policy(tmp_path), client=redis_client)

    async def fetch() -> str:
        return "x"

    with pytest.raises(PolicyViolation, match="plain functions"):
        engine.cached("name")(fetch)
    with pytest.raises(PolicyViolation, match="toolkit.aio"):
        engine.namespace("name").get_or_load(fetch, user_id=1)
    assert redis_client.get("name:1") is None


def test_recent_results_are_kept_only_briefly():
    """What single-flight remembers of finished loads is bounded in time and count: no loaded values piling up."""
    import time as clock

    from toolkit.runtime._flight import Recent

    recent = Recent()
    before = clock.monotonic()
    recent.record("a", "value")
    assert recent.since("a", before) == (True, "value") and recent.since("a", clock.monotonic()) == (False, None)
    recent._done["a"] = (clock.monotonic() - 2 * Recent.KEEP_S, "old")
    recent.record("b", "value")
    assert "a" not in recent._done
    for i in range(Recent.LIMIT + 10):
        recent.record(str(i), i)
    assert len(recent._done) == Recent.LIMIT
