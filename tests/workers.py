"""Child-process entry points of the robustness tests (a module, so "forkserver" can import them).

Every child builds its own redis-py client and Engine after it starts: nothing that holds a
socket or a thread crosses the process boundary. Children report to the test through a
one-way Pipe, never through a lock-based primitive, so SIGKILLing a child can never leave a
lock held that the test then waits on.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import time
from multiprocessing.context import BaseContext
from multiprocessing.synchronize import Barrier
from typing import Any

import redis

import toolkit

GENERATION = 1_000_000
"""Entity ids of writer ``g`` are ``(g + 1) * GENERATION + i``: the test reads who wrote a key from its id."""
SHARED = 0
"""The entity id every writer also updates (existing-key paths: list trimming, a counter past its first increment)."""
READY_AFTER = 25
"""Rounds a writer completes before it tells the test it may be killed: a floor on what each one wrote, even on a slow machine."""


def context() -> BaseContext:
    """Forkserver: children fork from a process that already imported toolkit, so each starts in milliseconds."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["toolkit.runtime", "tests.workers"])
    return ctx


def _engine(policy_dir: str, port: int, kind: str = "sync") -> Any:
    """The sync Engine, or an AsyncEngine driven through the tests' harness (tests/engines.py)."""
    if kind == "async":
        from tests.engines import Engines

        return Engines("async").connect(policy_dir, client=redis.Redis(port=port))
    return toolkit.connect(policy_dir, client=redis.Redis(port=port))


def atomic_writer(policy_dir: str, port: int, kind: str, generation: int, ready: multiprocessing.connection.Connection) -> None:
    """Write every kind of key through the engine, as fast as it can, until SIGKILLed.

    Covers SET PX, the hash / list / counter / indexed-string scripts, get_or_load under the
    Redis lock (string) and the whole-hash refill, a pipeline and a transactional mset. Signals
    ``ready`` after READY_AFTER rounds, then goes on until the kill.
    """
    engine = _engine(policy_dir, port, kind)
    blob, record, recent = engine.namespace("blob"), engine.namespace("record"), engine.namespace("recent")
    hits, plain = engine.namespace("hits"), engine.namespace("plain")
    i = 0
    while True:
        uid = (generation + 1) * GENERATION + i
        blob.set(f"v{i}", id=uid)
        record.hset(mapping={"a": i, "b": generation}, id=uid)
        recent.lpush(i, i + 1, i + 2, id=uid)
        recent.rpush(i, id=SHARED)
        hits.incr(id=uid)
        hits.incr(id=SHARED)
        blob.get_or_load(lambda: f"loaded {i}", id=uid + GENERATION // 2)
        record.get_or_load(lambda: {"loaded": i}, id=uid + GENERATION // 2)
        with engine.pipeline() as p:
            p.namespace("plain").set(i, id=uid)
            p.namespace("hits").incrby(2, id=uid + GENERATION // 2)
            p.namespace("recent").lpush(i, id=uid + GENERATION // 2)
        plain.mset([({"id": uid + GENERATION // 2}, i), ({"id": uid + GENERATION // 2 + 1}, i)])
        if i == READY_AFTER - 1:
            ready.send_bytes(b"ready")
        i += 1


def nonatomic_writer(port: int, generation: int, ready: multiprocessing.connection.Connection) -> None:
    """The control: HSET, then PEXPIRE in a second round trip, as naive code does, until SIGKILLed."""
    client = redis.Redis(port=port, db=1)
    i = 0
    while True:
        key = f"ctl:{generation}:{i}"
        client.hset(key, mapping={"a": i, "b": generation})
        client.pexpire(key, 300_000)
        if i == READY_AFTER - 1:
            ready.send_bytes(b"ready")
        i += 1


def load_once(policy_dir: str, port: int, namespace: str, params: dict[str, Any], loader_ms: int, barrier: Barrier,
              results: multiprocessing.connection.Connection) -> None:
    """get_or_load one cold key, all processes at once; the loader counts its runs in Redis."""
    engine = _engine(policy_dir, port)
    counter = redis.Redis(port=port, db=1)

    def loader() -> str:
        counter.incr("loader_runs")
        time.sleep(loader_ms / 1000)
        return f"loaded by {os.getpid()}"

    barrier.wait(timeout=30)
    results.send(engine.namespace(namespace).get_or_load(loader, **params))


def hold_lock_and_hang(policy_dir: str, port: int, namespace: str, params: dict[str, Any],
                       started: multiprocessing.connection.Connection) -> None:
    """Take the namespace's load lock on a cold key, then hang in the loader (the test SIGKILLs us there)."""
    engine = _engine(policy_dir, port)

    def loader() -> str:
        started.send_bytes(b"loading")
        time.sleep(3600)
        return "never"

    engine.namespace(namespace).get_or_load(loader, **params)


def increment(policy_dir: str, port: int, namespace: str, params: dict[str, Any], times: int, barrier: Barrier,
              results: multiprocessing.connection.Connection) -> None:
    """``times`` increments of one counter through the engine; reports the largest value it saw."""
    engine = _engine(policy_dir, port)
    counter = engine.namespace(namespace)
    barrier.wait(timeout=30)
    highest = 0
    for _ in range(times):
        highest = max(highest, counter.incr(**params))
    results.send(highest)
