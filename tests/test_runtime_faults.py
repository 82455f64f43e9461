"""The failure table on real faults: a full Redis, a replica, an ACL user, a wrong access key, a
stopped (SIGSTOP) server and a small connection pool. Every engine here is built by
``toolkit.connect`` from a target, with the default client settings unless a test says otherwise.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis

import toolkit
from tests.contract_policy import contract_policy, in_threads
from tests.servers import RedisServer, start_redis
from toolkit.errors import CacheUnavailable

CANARY = "canary-value-7f3a"


def target_yaml(port: int, *, auth: str = "", client: str = "") -> str:
    return f"""
targets:
  t:
    provider: redis
    url: "redis://127.0.0.1:{port}/0"
{auth}{client}"""


def connect(engines, tmp_path: Path, port: int, **target: str):
    return engines.connect(contract_policy(tmp_path / f"p{port}", target_yaml(port, **target)), "t")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """Servers a test starts, stopped by pid afterwards (SIGCONT first, in case one is stopped)."""
    started: list[RedisServer] = []
    yield started
    for server in started:
        if server.pid is not None:
            try:
                os.kill(server.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        server.stop()


def start(servers: list[RedisServer], tmp_path: Path, *args: str) -> RedisServer:
    server = start_redis(*args, directory=tmp_path / f"redis{len(servers)}")
    servers.append(server)
    return server


def assert_refused_writes(engine: toolkit.Engine, raw: redis.Redis, reason: str) -> None:
    """Fail-open writes are dropped and counted; fail-closed ones raise CacheUnavailable naming the reason."""
    writes = {
        "name": lambda: engine.namespace("name").set(CANARY, user_id=1),
        "cart": lambda: engine.namespace("cart").hset("f", CANARY, user_id=1),
        "hits_open": lambda: engine.namespace("hits_open").incr(user_id=1),
        "feed": lambda: engine.namespace("feed").rpush(CANARY, user_id=1),
    }
    for namespace, write in writes.items():
        assert write() is None, namespace
        stats = engine.stats()[namespace]
        assert (stats["refused"], stats["dropped_writes"], stats["errors"]) == (1, 1, 0), namespace
    assert not raw.exists("name:1", "cart:1", "hitso:1", "feed:1")
    loaded = engine.namespace("cart").get_or_load(lambda: {"qty": 2}, user_id=2)
    assert loaded == {"qty": "2"} and not raw.exists("cart:2")
    for call in (lambda: engine.namespace("name_closed").set("v", user_id=1),
                 lambda: engine.namespace("hits").incr(user_id=1),
                 lambda: engine.namespace("cart_closed").hset(mapping={"a": 1}, user_id=1)):
        with pytest.raises(CacheUnavailable, match=f"target 't'.*{reason}") as caught:
            call()
        assert caught.value.reason == reason
    assert engine.breaker_state == "closed"  # the server answered every time: no outage
    health = engine.health()
    assert health["last_error"]["reason"] == reason and health["breaker"] == "closed"


def test_a_full_redis_refuses_writes_scripts_included(engines, tmp_path, servers, caplog):
    server = start(servers, tmp_path, "--maxmemory", "3mb", "--maxmemory-policy", "noeviction")
    raw = redis.Redis(port=server.port)
    raw.set("name:5", "kept")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for i in range(10_000):
            raw.set(f"filler:{i}", b"x" * 10_000)
    engine = connect(engines, tmp_path, server.port)
    with caplog.at_level(logging.INFO, logger="toolkit"):
        assert_refused_writes(engine, raw, "oom")
        assert engine.namespace("name").get(user_id=5) == "kept"  # reads still work
        for i in range(200):  # a burst of dropped writes is logged once, not 200 times
            engine.namespace("name").set(CANARY, user_id=i + 10)
    assert engine.stats()["name"]["dropped_writes"] == 201
    dropped_lines = [r for r in caplog.records if "dropped" in r.getMessage() and "'name'" in r.getMessage()]
    assert 1 <= len(dropped_lines) <= 2
    assert "OOM" in dropped_lines[0].getMessage()
    assert CANARY not in caplog.text
    assert engine.namespace("name").delete(user_id=5) == 1  # DEL frees memory: allowed when full
    engine.close()


def test_a_replica_refuses_writes_as_readonly(engines, tmp_path, servers):
    primary = start(servers, tmp_path)
    replica = start(servers, tmp_path, "--replicaof", "127.0.0.1", str(primary.port))
    redis.Redis(port=primary.port).set("name:5", "from the primary")
    raw = redis.Redis(port=replica.port)
    deadline = time.monotonic() + 10
    while raw.get("name:5") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    engine = connect(engines, tmp_path, replica.port)
    assert engine.namespace("name").get(user_id=5) == "from the primary"
    assert_refused_writes(engine, raw, "readonly")
    engine.close()


def test_an_acl_user_without_write_rights_gets_noperm(engines, tmp_path, servers, monkeypatch):
    server = start(servers, tmp_path)
    raw = redis.Redis(port=server.port)
    raw.execute_command("ACL", "SETUSER", "reader", "on", ">reader-pass", "~*", "+@read", "+@connection", "+info")
    raw.set("name:5", "readable")
    monkeypatch.setenv("TOOLKIT_TEST_READER_KEY", "reader-pass")
    engine = connect(engines, tmp_path, server.port, auth="    auth: {type: access-key, env: TOOLKIT_TEST_READER_KEY, username: reader}\n")
    assert engine.namespace("name").get(user_id=5) == "readable"
    assert_refused_writes(engine, raw, "noperm")
    engine.close()


def test_a_wrong_access_key_is_never_silent(engines, tmp_path, servers, monkeypatch, caplog):
    server = start(servers, tmp_path, "--requirepass", "the-right-key")
    monkeypatch.setenv("TOOLKIT_TEST_KEY", "a-wrong-key-5e1")
    engine = connect(engines, tmp_path, server.port, auth="    auth: {type: access-key, env: TOOLKIT_TEST_KEY}\n")
    with caplog.at_level(logging.INFO, logger="toolkit"):
        assert engine.namespace("name").get(user_id=1) is None  # fail-open: a miss...
        assert engine.namespace("cart").get_or_load(lambda: {"a": 1}, user_id=1) == {"a": "1"}
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "target 't'" in errors[0].getMessage() and "credentials" in errors[0].getMessage()
    health = engine.health()  # ...but health() and the log say why
    assert health["status"] == "degraded" and health["last_error"]["reason"] == "auth"
    assert engine.stats()["name"]["refused"] == 1 and engine.breaker_state == "closed"
    with pytest.raises(CacheUnavailable, match=r"target 't'.*\[auth\].*credentials") as caught:
        engine.namespace("name_closed").get(user_id=1)
    assert caught.value.reason == "auth"
    for text in (caplog.text, str(caught.value), str(health)):
        assert "a-wrong-key-5e1" not in text and "the-right-key" not in text
    engine.close()


def test_a_hung_redis_costs_a_bounded_time_and_counts_nothing_twice(engines, tmp_path, servers, caplog):
    server = start(servers, tmp_path)
    raw = redis.Redis(port=server.port)
    engine = connect(engines, tmp_path, server.port)  # default client settings
    name, views = engine.namespace("name"), engine.namespace("hits_open")
    name.set("warm", user_id=1)  # a pooled connection, as in a running service
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        with caplog.at_level(logging.INFO, logger="toolkit"):
            started = time.monotonic()
            assert views.incr(user_id=9) is None  # a page view while Redis hangs: dropped, never resent
            first = time.monotonic() - started
            assert name.get(user_id=1) is None and name.get(user_id=1) is None  # the third timeout opens the breaker
            assert engine.breaker_state == "open"
            fast = []
            for _ in range(20):
                started = time.monotonic()
                assert name.get(user_id=1) is None
                fast.append(time.monotonic() - started)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    # Bounds with room for a loaded CI machine; the note reports the measured times.
    assert first < 1.5, first
    assert max(fast) < 0.1, fast
    assert engine.health()["status"] == "down" and engine.health()["last_error"]["reason"] in ("timeout", "breaker-open")
    assert any("circuit breaker open" in r.getMessage() for r in caplog.records)
    time.sleep(1.2)  # the breaker's cool-down; the resumed server has meanwhile read what was sent to it
    assert name.get(user_id=1) == "warm"
    assert int(raw.get("hitso:9") or 0) <= 1  # the INCR reached Redis at most once
    assert engine.breaker_state == "closed"
    engine.close()


def test_a_small_pool_is_waited_for_not_taken_for_an_outage(engines, tmp_path, servers):
    server = start(servers, tmp_path)
    engine = connect(engines, tmp_path, server.port, client="    client: {max_connections: 2}\n")

    def worker(n: int) -> None:
        for i in range(50):
            engine.namespace("name").set(f"v{n}-{i}", user_id=n * 1000 + i)
            engine.namespace("cart").hset("i", i, user_id=n * 1000 + i)

    assert in_threads(20, worker) == []
    raw = redis.Redis(port=server.port)
    assert raw.dbsize() == 2 * 20 * 50  # every write of a healthy Redis landed
    for namespace in ("name", "cart"):
        stats = engine.stats()[namespace]
        assert (stats["errors"], stats["pool_timeouts"], stats["dropped_writes"]) == (0, 0, 0)
    assert engine.breaker_state == "closed"
    assert len(raw.client_list()) <= 3  # the engine's two connections and ours
    engine.close()
