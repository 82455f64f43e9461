"""Counters: exact totals under concurrent processes, and a window that starts once and is never extended."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import redis

import toolkit
from tests import workers
from tests.conftest import POLICIES

PROCESSES = 4
INCREMENTS = 5_000


def test_four_processes_count_exactly_and_the_window_is_set_once(engines, redis_client: redis.Redis, redis_server: Any):
    ctx = workers.context()
    barrier = ctx.Barrier(PROCESSES + 1)
    pipes, children = [], []
    params = {"page": "home"}
    for _ in range(PROCESSES):
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=workers.increment,
                            args=(str(POLICIES), redis_server.port, "page_views", params, INCREMENTS, barrier, send))
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)

    # Sample the window's PTTL while the increments run: it may only ever go down.
    ttls: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            ttl = redis_client.pttl("counter:page_views:home")
            if ttl >= 0:
                ttls.append(ttl)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    try:
        barrier.wait(timeout=30)
        sampler.start()
        highest = []
        for receive in pipes:
            assert receive.poll(60), "a worker did not finish"
            highest.append(receive.recv())
    finally:
        done.set()
        if sampler.is_alive():
            sampler.join(10)
        for child in children:
            child.join(10)
            if child.exitcode is None:
                child.kill()
                child.join()

    engine = engines.connect(POLICIES, client=redis_client)
    total = PROCESSES * INCREMENTS
    assert engine.namespace("page_views").get(**params) == total
    assert max(highest) == total  # the last increment anywhere saw the whole count
    assert len(ttls) >= 10, "too few samples to judge the window"
    assert all(later <= earlier for earlier, later in zip(ttls, ttls[1:])), "an increment extended the window"
    assert ttls[-1] < ttls[0] <= 24 * 3600 * 1000
    assert engine.namespace("page_views").pttl(**params) <= ttls[-1]


def test_window_starts_at_the_first_increment_and_restarts_after_expiry(engines, tmp_path: Path, redis_client: redis.Redis):
    (tmp_path / "p.yaml").write_text(textwrap.dedent("""
        tiers:
          short:
            min: 1s
            default: 2s
        namespaces:
          clicks:
            key: "clicks:{id}"
            type: counter
            tier: short
    """))
    engine = engines.connect(str(tmp_path), client=redis_client)
    clicks = engine.namespace("clicks")
    assert clicks.incr(id="a") == 1
    first = clicks.pttl(id="a")
    time.sleep(0.3)
    assert clicks.incrby(5, id="a") == 6
    assert clicks.decr(id="a") == 5
    assert clicks.pttl(id="a") <= first - 250  # still the first increment's window
    deadline = time.monotonic() + 5
    while clicks.get(id="a") is not None:
        assert time.monotonic() < deadline, "the window never closed"
        time.sleep(0.05)
    assert clicks.incr(id="a") == 1  # a new window, with a TTL of its own
    assert 0 < clicks.pttl(id="a") <= 2000
