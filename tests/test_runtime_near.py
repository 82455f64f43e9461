"""The near cache (``local_cache``) on real servers: hits from process memory, coherence through Redis's own
invalidation messages (another process, redis-cli, a race), flushes when the feed or the server goes, the
TTL and LRU bounds, the fallback when a server refuses tracking, and a 3-primary cluster."""

from __future__ import annotations

import bisect
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import redis

import toolkit
from tests.conftest import ROOT
from tests.servers import RedisServer, start_redis

POLICY = """
namespaces:
  page:
    key: "page:{id}"
    type: string
    tier: volatile
    ttl: 5m
    local_cache: {max_entries: 3, ttl: 30s}
  user:
    key: "user:{id}"
    type: hash
    tier: volatile
    ttl: 5m
    local_cache: {}
  plain:
    key: "plain:{id}"
    type: string
    tier: volatile
targets:
  local:
    provider: redis
    host: 127.0.0.1
    port: PORT
    client: {socket_timeout: 300ms, connect_timeout: 300ms}
"""


def load(tmp_path: Path, port: int) -> toolkit.PolicySet:
    (tmp_path / "near.yaml").write_text(POLICY.replace("PORT", str(port)))
    return toolkit.load(tmp_path / "near.yaml")


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.005)


def ready(engine: Any) -> bool:
    return bool(eventually(lambda: engine.health().get("near_cache") == "ready"))


@pytest.fixture
def server(tmp_path: Path):
    s = start_redis(directory=tmp_path / "redis")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def near(engines, server: RedisServer, tmp_path: Path):
    engine = engines.connect(load(tmp_path, server.port), "local")
    assert ready(engine)
    return engine


def settle() -> None:
    """Let the invalidations of writes made just before pass: a read they overtake is (rightly) not kept."""
    time.sleep(0.05)


def local_hits(engine: Any, ns: str = "page") -> int:
    return engine.stats()[ns]["local_hits"]


# -- hits and bounds (both engines) ----------------------------------------------------------------

def test_reads_are_answered_from_process_memory(near, server: RedisServer) -> None:
    raw = redis.Redis(port=server.port)
    raw.set("page:1", "hello", px=60_000)
    settle()
    pages = near.namespace("page")
    assert pages.get(id=1) == "hello"  # from Redis, kept
    assert [pages.get(id=1) for _ in range(5)] == ["hello"] * 5
    assert local_hits(near) == 5 and near.stats()["page"]["hits"] == 6
    assert near.namespace("plain").get(id=1) is None and near.stats()["plain"]["local_hits"] == 0  # not near-cached
    raw.hset("user:7", mapping={"a": "1", "b": "2"})
    settle()
    users = near.namespace("user")
    first = users.hgetall(id=7)
    first["a"] = "mutated by the caller"
    assert users.hgetall(id=7) == {"a": "1", "b": "2"}  # a fresh value on every hit: callers never share one
    assert users.hget("b", id=7) == "2" and users.hget("b", id=7) == "2"
    assert local_hits(near, "user") == 2
    assert near.namespace("page").get(id=404) is None and near.namespace("page").get(id=404) is None
    assert local_hits(near) == 6  # a missing key is kept too: its creation is announced like any write


def test_get_or_load_hits_locally(near) -> None:
    pages = near.namespace("page")
    calls = []

    def load() -> str:
        calls.append(1)
        return "loaded"

    assert pages.get_or_load(load, id=2) == "loaded"
    settle()  # the invalidation of its own SET
    assert eventually(lambda: pages.get_or_load(load, id=2) == "loaded" and local_hits(near) > 0)
    before = local_hits(near)
    assert pages.get_or_load(load, id=2) == "loaded" and local_hits(near) == before + 1 and calls == [1]


def test_a_write_through_the_engine_is_read_back_at_once(near) -> None:
    pages = near.namespace("page")
    pages.set("v1", id=3)
    assert eventually(lambda: pages.get(id=3) == "v1" and local_hits(near) > 0)
    pages.set("v2", id=3)
    assert pages.get(id=3) == "v2"  # the local copy went with the write, before any message arrived
    with near.pipeline() as p:
        p.namespace("page").set("v3", id=3)
    assert pages.get(id=3) == "v3"
    near.namespace("user").hset(mapping={"x": 1}, id=4)
    assert near.namespace("user").hgetall(id=4) == {"x": "1"}


def test_a_copy_never_outlives_the_key(near, server: RedisServer) -> None:
    raw = redis.Redis(port=server.port)
    raw.set("page:5", "short-lived", px=400)
    settle()
    pages = near.namespace("page")
    assert pages.get(id=5) == "short-lived" and pages.get(id=5) == "short-lived"
    time.sleep(0.4)
    assert pages.get(id=5) is None  # the copy expired with the key's PTTL, not after the local 30 s


def test_lru_bound(near, server: RedisServer) -> None:
    raw = redis.Redis(port=server.port)
    pages = near.namespace("page")
    for i in range(6):
        raw.set(f"page:{i}", str(i), px=60_000)
    time.sleep(0.05)  # let the writes' invalidations pass
    evicted = near.stats()["page"]["local_evictions"]
    for i in range(6):
        pages.get(id=i)
    assert near._near.size("page") == 3  # max_entries
    assert near.stats()["page"]["local_evictions"] - evicted == 3
    hits = local_hits(near)
    assert [pages.get(id=i) for i in (3, 4, 5)] == ["3", "4", "5"] and local_hits(near) == hits + 3


# -- coherence ----------------------------------------------------------------------------------------

READER = textwrap.dedent("""
    import sys, time, toolkit
    engine = toolkit.connect(toolkit.load(sys.argv[1]), "local")
    deadline = time.monotonic() + 5
    while engine.health().get("near_cache") != "ready" and time.monotonic() < deadline:
        time.sleep(0.005)
    pages = engine.namespace("page")
    pages.get(id=1); pages.get(id=1)
    print("cached", pages.get(id=1), engine.stats()["page"]["local_hits"], flush=True)
    sys.stdin.readline()  # the test wrote meanwhile
    started = time.monotonic()
    while pages.get(id=1) != "new" and time.monotonic() - started < 5:
        time.sleep(0.001)
    print("seen", pages.get(id=1), round((time.monotonic() - started) * 1000, 1), flush=True)
    engine.close()
""")


@pytest.mark.parametrize("writer", ["redis-cli", "another process"])
def test_a_write_by_anyone_evicts_the_copy_in_every_process(writer: str, server: RedisServer, tmp_path: Path) -> None:
    policy = load(tmp_path, server.port)
    raw = redis.Redis(port=server.port)
    raw.set("page:1", "old", px=60_000)
    settle()
    readers = [subprocess.Popen([sys.executable, "-c", READER, str(tmp_path / "near.yaml")], cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
    engine = toolkit.connect(policy, "local")
    try:
        assert ready(engine)
        pages = engine.namespace("page")
        assert pages.get(id=1) == "old" and pages.get(id=1) == "old" and local_hits(engine) == 1
        for r in readers:
            assert r.stdout is not None
            assert r.stdout.readline().split() == ["cached", "old", "2"]
        if writer == "redis-cli":
            cli = shutil.which("redis-cli")
            if cli is None:
                pytest.skip("redis-cli is not installed")
            subprocess.run([cli, "-p", str(server.port), "SET", "page:1", "new"], check=True, capture_output=True)
        else:
            subprocess.run([sys.executable, "-c", f"import redis; redis.Redis(port={server.port}).set('page:1', 'new')"],
                           check=True)
        for r in readers:
            assert r.stdin is not None and r.stdout is not None
            r.stdin.write("go\n")
            r.stdin.flush()
            seen = r.stdout.readline().split()
            assert seen[:2] == ["seen", "new"], seen
        assert eventually(lambda: pages.get(id=1) == "new", 2.0)
    finally:
        engine.close()
        for r in readers:
            r.kill()
            r.wait()


def test_readers_never_keep_an_older_value_than_an_acknowledged_write(server: RedisServer, tmp_path: Path) -> None:
    """Four reader threads hammer one key while another connection rewrites it 300 times. Exact, whatever the load:
    a read that starts after this process handled the invalidation of version N must return N or later (the
    wall-clock delay between a write and its invalidation is the bench's to measure)."""
    engine = toolkit.connect(load(tmp_path, server.port), "local")
    writer = redis.Redis(port=server.port)
    assert ready(engine)
    writer.set("page:9", "0", px=60_000)
    settle()
    near = engine._near
    handled: list[float] = []  # when this process handled the invalidation of version i + 1
    invalidate = near.invalidate

    def spy(keys: Any) -> None:
        invalidate(list(keys))
        handled.append(time.monotonic())

    near.invalidate = spy  # the feed calls it for every message: one per SET of page:9
    pages = engine.namespace("page")
    stale: list[tuple[int, int]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            started = time.monotonic()
            value = pages.get(id=9)
            floor = bisect.bisect_right(handled, started)  # versions whose invalidation was handled before the read
            if int(value) < floor:
                stale.append((int(value), floor))

    threads = [threading.Thread(target=read) for _ in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the writer and the feed get the GIL back soon
    for t in threads:
        t.start()
    try:
        for version in range(1, 301):
            writer.set("page:9", str(version), px=60_000)
            time.sleep(0.003)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(switch)
    assert eventually(lambda: pages.get(id=9) == "300" and len(handled) == 300, 2.0), (pages.get(id=9), len(handled))
    hits = local_hits(engine)
    engine.close()
    assert stale == [], stale[:5]
    assert hits > 300  # readers were served locally between writes: fills and invalidations did race


# -- the feed breaks -------------------------------------------------------------------------------------

def test_killing_the_invalidation_connection_flushes_then_it_comes_back(near, server: RedisServer) -> None:
    raw = redis.Redis(port=server.port)
    raw.set("page:1", "a", px=60_000)
    settle()
    pages = near.namespace("page")
    assert pages.get(id=1) == "a" and pages.get(id=1) == "a"
    tracking = [c for c in raw.client_list() if "t" in c["flags"] and "B" in c["flags"]]
    assert len(tracking) == 1  # one BCAST tracking connection for a standalone server
    raw.client_kill_filter(_id=tracking[0]["id"])
    assert eventually(lambda: near._near.size("page") == 0, 3.0)  # flushed before anything is served again
    assert ready(near)  # and subscribed again
    raw.set("page:1", "b", px=60_000)
    assert eventually(lambda: pages.get(id=1) == "b", 2.0)
    assert pages.get(id=1) == "b"


def test_kill_and_restart_of_the_server_flushes(server: RedisServer, tmp_path: Path) -> None:
    engine = toolkit.connect(load(tmp_path, server.port), "local")
    try:
        assert ready(engine)
        redis.Redis(port=server.port).set("page:1", "before the crash", px=60_000)
        settle()
        pages = engine.namespace("page")
        assert pages.get(id=1) == "before the crash" and pages.get(id=1) == "before the crash"
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        assert eventually(lambda: engine.health()["near_cache"] != "ready", 3.0)
        assert pages.get(id=1) is None  # a fail-open miss: the copy went with the feed
        server.start()  # the same port, an empty dataset
        assert ready(engine)
        assert pages.get(id=1) is None
        redis.Redis(port=server.port).set("page:1", "after", px=60_000)
        assert eventually(lambda: pages.get(id=1) == "after", 2.0)
    finally:
        engine.close()


def test_a_hung_server_is_noticed_and_copies_dropped(server: RedisServer, tmp_path: Path) -> None:
    engine = toolkit.connect(load(tmp_path, server.port), "local")
    try:
        assert ready(engine)
        redis.Redis(port=server.port).set("page:1", "x", px=60_000)
        pages = engine.namespace("page")
        assert pages.get(id=1) == "x"
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            assert eventually(lambda: engine.health()["near_cache"] != "ready", 4.0)  # its PING went unanswered
            assert engine._near.size("page") == 0
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert ready(engine)
    finally:
        engine.close()


def test_a_server_that_refuses_tracking_leaves_the_namespaces_working(server: RedisServer, tmp_path: Path,
                                                                      caplog) -> None:
    raw = redis.Redis(port=server.port)
    raw.acl_setuser("app", enabled=True, passwords=["+app-pw"], keys=["*"], commands=["+@all", "-client|tracking"])
    client = redis.Redis(port=server.port, username="app", password="app-pw")
    with caplog.at_level("WARNING", logger="toolkit"):
        engine = toolkit.connect(load(tmp_path, server.port), client=client)
        try:
            assert eventually(lambda: engine.health()["near_cache"].startswith("unavailable"), 3.0)
            pages = engine.namespace("page")
            pages.set("works", id=1)
            assert pages.get(id=1) == "works" and pages.get(id=1) == "works"
            assert local_hits(engine) == 0
        finally:
            engine.close()
            client.close()
    refused = [r for r in caplog.records if "near cache disabled" in r.getMessage()]
    assert len(refused) == 1 and "no permissions to run the 'client|tracking' command" in refused[0].getMessage()


def test_closing_the_engine_stops_its_feed(server: RedisServer, tmp_path: Path) -> None:
    engine = toolkit.connect(load(tmp_path, server.port), "local")
    assert ready(engine)
    raw = redis.Redis(port=server.port)
    assert any("t" in c["flags"] for c in raw.client_list())
    engine.close()
    assert eventually(lambda: not any("t" in c["flags"] for c in raw.client_list()), 3.0)
    assert not [t for t in threading.enumerate() if t.name.startswith("toolkit-tracking")]


# -- a cluster --------------------------------------------------------------------------------------------

def test_cluster_one_feed_per_primary(redis_cluster, cluster_client, tmp_path: Path) -> None:
    from redis.cluster import RedisCluster

    policy = load(tmp_path, redis_cluster.ports[0])
    engine = toolkit.connect(policy, client=RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0]))
    try:
        assert ready(engine)
        pages = engine.namespace("page")
        ids = range(3)  # max_entries 3
        for i in ids:
            cluster_client.set(f"page:{i}", "old", px=60_000)
        time.sleep(0.05)
        owners = {cluster_client.get_node_from_key(f"page:{i}").name for i in ids}
        assert len(owners) >= 2  # the keys live on different primaries
        for i in ids:
            assert pages.get(id=i) == "old"
        hits = local_hits(engine)
        assert [pages.get(id=i) for i in ids] == ["old"] * 3 and local_hits(engine) == hits + 3
        for i in ids:
            cluster_client.set(f"page:{i}", "new", px=60_000)
        assert eventually(lambda: [pages.get(id=i) for i in ids] == ["new"] * 3, 2.0)
    finally:
        engine.close()
    assert eventually(lambda: not [t for t in threading.enumerate() if t.name.startswith("toolkit-tracking")], 3.0)


def test_policy_rules(tmp_path: Path) -> None:
    from toolkit.errors import PolicyError

    bad = POLICY.replace("local_cache: {max_entries: 3, ttl: 30s}", "local_cache: {ttl: 6m}").replace("PORT", "6379")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(PolicyError, match=r"namespaces\.page\.local_cache\.ttl: the local ttl 6m is above the namespace's"):
        toolkit.load(tmp_path / "bad.yaml")
    counter = "namespaces:\n  hits:\n    key: 'hits:{id}'\n    type: counter\n    tier: volatile\n    local_cache: {}\n"
    (tmp_path / "bad.yaml").write_text(counter)
    with pytest.raises(PolicyError, match="local_cache is for string and hash namespaces"):
        toolkit.load(tmp_path / "bad.yaml")
    (tmp_path / "ok.yaml").write_text(POLICY.replace("PORT", "6379"))
    ns = toolkit.load(tmp_path / "ok.yaml").namespaces
    assert ns["user"].local_cache is not None and ns["user"].local_cache.ttl_ms == 30_000
    assert ns["page"].literal_prefix == "page:"
    from toolkit.runtime._near import prefixes

    assert prefixes(["user:", "user:profile:", "page:"]) == ["page:", "user:"] and prefixes(["a:", ""]) == []


# -- found in review ------------------------------------------------------------------------------------

def test_invalidate_drops_the_processs_own_copies_at_once(server: RedisServer, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("invalidation:\n  page_changed:\n    namespaces: [page]\n"
                                         "  all_pages:\n    match: 'page:*'\n")
    (tmp_path / "near.yaml").write_text(POLICY.replace("PORT", str(server.port)))
    engine = toolkit.connect(toolkit.load(tmp_path), "local")
    try:
        assert ready(engine)
        raw = redis.Redis(port=server.port)
        pages = engine.namespace("page")
        for rule, params in (("page_changed", {"id": 1}), ("all_pages", {})):
            for _ in range(20):
                raw.set("page:1", "old", px=60_000)
                settle()
                assert pages.get(id=1) == "old" and pages.get(id=1) == "old"
                engine.invalidate(rule, **params)
                assert pages.get(id=1) is None, rule  # never the copy, whatever the push's timing
    finally:
        engine.close()


FORKED = textwrap.dedent("""
    import os, sys, time, redis, toolkit
    engine = toolkit.connect(toolkit.load(sys.argv[1]), "local")
    while engine.health()["near_cache"] != "ready":
        time.sleep(0.005)
    raw = redis.Redis(port=int(sys.argv[2]))
    raw.set("page:1", "old", px=60_000)
    time.sleep(0.05)
    pages = engine.namespace("page")
    pages.get(id=1); pages.get(id=1)
    pid = os.fork()
    if pid == 0:
        raw.set("page:1", "new", px=60_000)
        deadline = time.monotonic() + 3
        while pages.get(id=1) != "new" and time.monotonic() < deadline:
            time.sleep(0.01)
        seen = pages.get(id=1)
        while engine.health()["near_cache"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0 if seen == "new" and engine.health()["near_cache"] == "ready" else 1)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), "parent", pages.get(id=1), engine.health()["near_cache"])
    engine.close()
""")


def test_a_forked_child_starts_a_feed_of_its_own(server: RedisServer, tmp_path: Path) -> None:
    """gunicorn --preload, Celery prefork: the child must not serve the parent's copies without a feed."""
    load(tmp_path, server.port)
    done = subprocess.run([sys.executable, "-c", FORKED, str(tmp_path / "near.yaml"), str(server.port)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["child", "0", "parent", "new", "ready"], done.stdout


def test_an_engine_that_fails_to_build_leaves_no_feed(server: RedisServer, tmp_path: Path) -> None:
    from toolkit.errors import ConfigurationError

    bytes_ns = POLICY.replace("type: string\n    tier: volatile\n    ttl: 5m\n    local_cache: {max_entries: 3, ttl: 30s}",
                              "type: string\n    codec: bytes\n    tier: volatile\n    ttl: 5m\n    local_cache: {}")
    (tmp_path / "near.yaml").write_text(bytes_ns.replace("PORT", str(server.port)))
    policy = toolkit.load(tmp_path / "near.yaml")
    client = redis.Redis(port=server.port, decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses"):
        toolkit.connect(policy, client=client)
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name.startswith("toolkit-tracking")]
    assert not any("t" in c["flags"] for c in redis.Redis(port=server.port).client_list())


def test_the_asyncio_engine_on_a_callers_asyncio_client(server: RedisServer, tmp_path: Path) -> None:
    import asyncio

    import redis.asyncio

    import toolkit.aio

    async def main() -> tuple[str, int]:
        client = redis.asyncio.Redis(port=server.port)
        engine = await toolkit.aio.connect(load(tmp_path, server.port), client=client)
        try:
            deadline = time.monotonic() + 5
            while engine.health()["near_cache"] != "ready" and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await engine.namespace("page").set("x", id=1)
            await asyncio.sleep(0.05)
            pages = engine.namespace("page")
            await pages.get(id=1)
            await pages.get(id=1)
            return engine.health()["near_cache"], engine.stats()["page"]["local_hits"]
        finally:
            await engine.aclose()
            await client.aclose()

    state, hits = asyncio.run(main())
    assert state == "ready" and hits >= 1
