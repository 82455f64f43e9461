"""Redis unreachable: fail-open is a miss that never raises, fail-closed raises, a breaker stops the waiting.

Every test talks to a real endpoint: a redis-server it stops, kills and restarts on the same
port, a port nobody listens on (refused at once), or a "black hole" socket that accepts
connections and never answers (every command waits out its timeout).
"""

from __future__ import annotations

import socket
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

import toolkit
from tests.servers import REDIS_SERVER, RedisServer, start_redis
from toolkit.errors import CacheUnavailable, PipelineError
from toolkit.policy.model import ClientOptions
from toolkit.runtime import Engine
from toolkit.runtime._breaker import CircuitBreaker


def fast_client(port: int, *, timeout: float = 0.5, retries: int = 1) -> redis.Redis:
    """A client that gives up quickly, as a latency-sensitive application configures it."""
    backoff = ExponentialBackoff(cap=0.05, base=0.01) if retries else NoBackoff()
    return redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=timeout, retry=Retry(backoff, retries))


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; a generous bound, so failing it means "never", not "slow"."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.02)


class BlackHole:
    """A TCP port whose kernel accepts connections that nobody ever answers."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.setblocking(False)
        self.port: int = self._sock.getsockname()[1]
        self._accepted: list[socket.socket] = []

    def connections(self) -> int:
        """Connections opened so far (each completed its handshake in the kernel's accept queue)."""
        while True:
            try:
                self._accepted.append(self._sock.accept()[0])
            except BlockingIOError:
                return len(self._accepted)

    def close(self) -> None:
        for conn in self._accepted:
            conn.close()
        self._sock.close()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, which it may stop, kill and restart; stopped by pid at the end."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed")
    server = start_redis(directory=tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections are refused at once, and no server can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


def test_unreachable_fail_open_namespaces_miss_and_drop_writes(engines, policies, refusing_port: int):
    engine = engines.build(policies, fast_client(refusing_port), ClientOptions(breaker_threshold=3, breaker_cooldown_ms=60_000))
    session, data = engine.namespace("session"), engine.namespace("user_data")
    assert session.get(session_id="abcdef") is None
    assert session.set("v", session_id="abcdef") is None
    loads: list[int] = []
    for _ in range(2):  # nothing is cached, so every call loads
        assert data.get_or_load(lambda: loads.append(1) or "row", user_id=1) == "row"
    assert engine.namespace("user").hgetall(user_id=1) == {}
    assert engine.namespace("user").get_or_load(lambda: {"name": "n"}, user_id=1) == {"name": "n"}
    assert engine.namespace("user").hset("name", "x", user_id=1) is None
    assert engine.namespace("user_recent").lrange(user_id=1) == []
    assert engine.namespace("user_recent").lpush({"id": 1}, user_id=1) is None
    assert engine.namespace("user_recent").delete(user_id=1) == 0  # a dropped delete is a dropped write
    with engine.pipeline() as p:
        p.namespace("session").set("v", session_id="abcdef")
        p.namespace("session").get(session_id="abcdef")
    assert p.results == [None, None]
    assert len(loads) == 2

    stats = engine.stats()
    session_stats = stats["session"]
    assert (session_stats["hits"], session_stats["misses"], session_stats["errors"], session_stats["dropped_writes"]) == (0, 2, 4, 2)
    assert (stats["user_data"]["misses"], stats["user_data"]["loads"], stats["user_data"]["dropped_writes"]) == (2, 2, 2)
    assert stats["user"]["dropped_writes"] == 2 and stats["user"]["loads"] == 1
    assert (stats["user_recent"]["errors"], stats["user_recent"]["dropped_writes"]) == (3, 2)
    assert engine.breaker_state == "open"


def test_unreachable_fail_closed_raises(engines, policies, refusing_port: int):
    engine = engines.build(policies, fast_client(refusing_port))
    views = engine.namespace("page_views")  # counters are fail-closed unless they say otherwise
    with pytest.raises(CacheUnavailable, match="page_views"):
        views.incr(page="home")
    with pytest.raises(CacheUnavailable):
        views.get(page="home")
    with pytest.raises(PipelineError) as caught:  # the fail-open write's fallback is kept in its place
        with engine.pipeline() as p:
            p.namespace("session").set("v", session_id="abcdef")
            p.namespace("page_views").incr(page="home")
    assert p.results[0] is None and isinstance(p.results[1], CacheUnavailable) and list(caught.value.errors) == [1]
    with pytest.raises(CacheUnavailable):
        engine.invalidate("user_all", user_id=1)  # deleting nothing must not pass for success
    assert engine.stats()["page_views"]["errors"] == 3


def test_on_error_overrides_the_type_default(engines, tmp_path: Path, refusing_port: int):
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""
        namespaces:
          strict:
            key: "strict:{id}"
            type: string
            tier: volatile
            on_error: fail-closed
          tally:
            key: "tally:{id}"
            type: counter
            tier: volatile
            on_error: fail-open
    """))
    engine = engines.build(toolkit.load(tmp_path), fast_client(refusing_port))
    loads: list[int] = []
    with pytest.raises(CacheUnavailable, match="strict"):
        engine.namespace("strict").get_or_load(lambda: loads.append(1) or "v", id="a")
    assert loads == []  # a fail-closed namespace does not quietly serve uncached loads
    with pytest.raises(CacheUnavailable):
        engine.namespace("strict").set("v", id="a")
    assert engine.namespace("tally").incr(id="a") is None
    assert engine.namespace("tally").get(id="a") is None


def test_open_breaker_stops_waiting_on_timeouts(engines, policies, black_hole: BlackHole):
    engine = engines.build(policies, fast_client(black_hole.port, timeout=0.2, retries=0),
                    ClientOptions(breaker_threshold=3, breaker_cooldown_ms=60_000))
    names = engine.namespace("user_name")
    for _ in range(3):
        assert names.get(user_id=1) is None  # each waits out the socket timeout
    assert engine.breaker_state == "open"
    opened = black_hole.connections()
    assert opened >= 3

    started = time.monotonic()
    for _ in range(50):
        assert names.get(user_id=1) is None
        assert names.set("n", user_id=1) is None
        assert engine.namespace("user").get_or_load(lambda: {"name": "n"}, user_id=1) == {"name": "n"}
    # None of the 150 calls touched the network, so together they are refused far quicker than the
    # 30 s they would have waited (a generous bound: five socket timeouts).
    assert black_hole.connections() == opened
    assert time.monotonic() - started < 1.0
    assert engine.stats()["user_name"]["errors"] == 103


def test_half_open_breaker_lets_one_probe_through(engines, policies, black_hole: BlackHole):
    engine = engines.build(policies, fast_client(black_hole.port, timeout=0.2, retries=0),
                    ClientOptions(breaker_threshold=3, breaker_cooldown_ms=300))
    names = engine.namespace("user_name")
    for _ in range(3):
        names.get(user_id=1)
    opened = black_hole.connections()
    wait_until(lambda: engine.breaker_state == "half-open", 5, "cool-down")

    callers = 8
    barrier = threading.Barrier(callers)
    results: list[Any] = []

    def call() -> None:
        barrier.wait()
        results.append(names.get(user_id=1))

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [None] * callers
    assert black_hole.connections() == opened + 1  # one probe; the others were refused while it waited
    assert engine.breaker_state == "open"  # the probe timed out: open again for another cool-down


@pytest.mark.parametrize("built_by", ["caller", "target"])
def test_redis_killed_and_restarted_mid_run(engines, policies, own_server: RedisServer, monkeypatch: pytest.MonkeyPatch,
                                            built_by: str):
    """Four threads keep calling while redis-server is SIGKILLed and restarted on the same port.

    Once with the caller's quick-to-give-up client, once with the client and breaker settings of
    the ``local`` target (redis-py retries with backoff, a one-second cool-down).
    """
    server = own_server
    raw = redis.Redis(port=server.port)
    if built_by == "caller":
        engine = engines.build(policies, fast_client(server.port), ClientOptions(breaker_threshold=3, breaker_cooldown_ms=200))
    else:
        monkeypatch.setenv("TOOLKIT_LOCAL_PORT", str(server.port))
        engine = engines.connect(policies, "local")
    stop = threading.Event()
    failures: list[BaseException] = []
    rounds = [0] * 4

    def work(worker: int) -> None:
        data, user, session = engine.namespace("user_data"), engine.namespace("user"), engine.namespace("session")
        recent, i = engine.namespace("user_recent"), 0
        while not stop.is_set():
            uid = i % 20
            try:
                assert data.get_or_load(lambda: f"row {uid}", user_id=uid) == f"row {uid}"
                assert user.get_or_load(lambda: {"name": f"n{uid}"}, user_id=uid) == {"name": f"n{uid}"}
                session.set(f"s{i}", session_id=f"worker{worker}")
                assert session.get(session_id=f"worker{worker}") in (None, f"s{i}")
                recent.lpush({"item": i}, user_id=uid)
                with engine.pipeline() as p:
                    p.namespace("user_name").set(f"n{i}", user_id=100 + worker)
                    p.namespace("user_name").get(user_id=100 + worker)
                assert p.results[1] in (None, f"n{i}")
            except Exception as exc:  # the point of fail-open: there must be none
                failures.append(exc)
            i += 1
            rounds[worker] += 1

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: raw.dbsize() > 40, 10, "writes before the kill")
        server.kill()
        down = sum(rounds), engine.stats()["user_data"]["loads"]
        views, states = engine.namespace("page_views"), set()
        for _ in range(40):  # about a second of outage
            with pytest.raises(CacheUnavailable):
                views.incr(page="home")
            states.add(engine.breaker_state)
            time.sleep(0.025)
        assert sum(rounds) > down[0] and engine.stats()["user_data"]["loads"] > down[1]  # served from the loader
        outage = engine.stats()

        server.start()
        wait_until(lambda: raw.dbsize() > 40 and engine.breaker_state == "closed", 5, "recovery after the restart")
        assert views.incr(page="home") == 1
        wait_until(lambda: engine.stats()["user_data"]["hits"] > outage["user_data"]["hits"], 5, "cache hits again")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        engine.close()
    assert failures == []
    assert "open" in states
    for name in ("user_data", "user", "session", "user_recent", "user_name"):
        assert outage[name]["errors"] > 0 and outage[name]["dropped_writes"] > 0, (name, outage[name])
    assert outage["page_views"]["errors"] == 40


def test_a_probe_answered_with_an_error_does_not_wedge_the_breaker(engines, policies, own_server: RedisServer):
    server = own_server
    engine = engines.build(policies, fast_client(server.port), ClientOptions(breaker_threshold=1, breaker_cooldown_ms=100))
    names = engine.namespace("user_name")
    server.stop()
    assert names.get(user_id=1) is None
    assert engine.breaker_state == "open"
    server.start()
    redis.Redis(port=server.port).set("user:1", "a string where the policy says hash")
    wait_until(lambda: engine.breaker_state == "half-open", 5, "cool-down")
    # The probe: the server answers, with WRONGTYPE: a data failure (a miss), and proof that Redis is back.
    assert engine.namespace("user").hgetall(user_id=1) == {}
    assert engine.breaker_state == "closed"
    assert engine.stats()["user"]["data_errors"] == 1


def test_a_probe_that_never_reports_back_does_not_wedge_the_breaker():
    """A probe thread may die of anything (a framework's timeout, an interrupt): the next one goes after a cool-down."""
    breaker = CircuitBreaker(threshold=1, cooldown_s=0.05)
    breaker.failure()
    assert not breaker.allow()
    wait_until(lambda: breaker.state == "half-open", 5, "cool-down")
    assert breaker.allow()  # the probe, which never calls success() or failure()
    assert not breaker.allow()  # one probe at a time
    wait_until(breaker.allow, 5, "a new probe")
    breaker.success()
    assert breaker.state == "closed" and breaker.allow()
