"""``toolkit audit`` on 1,000,000 keys, and how long a concurrent client's PING waits meanwhile.

The audit runs as the command users run (a ``toolkit audit`` subprocess, timed from start to
exit, interpreter start-up included); a thread of this process PINGs the server every
millisecond on its own connection during it, and for as long again with no audit running, the
machine's own noise floor.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import threading
import time

import redis

from bench import _parser
from bench._context import KEYSPACE_POLICIES, Context
from bench._harness import Check, Result

PING_EVERY_S = 0.001


class Pinger(threading.Thread):
    """PING in a loop on a connection of its own; ``latencies_ms`` of every reply."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self._client = redis.Redis(host="127.0.0.1", port=port)
        self._client.ping()
        self._stop_event = threading.Event()
        self.latencies_ms: list[float] = []

    def run(self) -> None:
        ping, clock = self._client.ping, time.perf_counter
        while not self._stop_event.is_set():
            started = clock()
            ping()
            self.latencies_ms.append((clock() - started) * 1000)
            self._stop_event.wait(PING_EVERY_S)

    def finish(self) -> list[float]:
        self._stop_event.set()
        self.join()
        self._client.close()
        return self.latencies_ms


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 100 else max(values)


def _audit_once(ctx: Context) -> tuple[float, dict, list[float]]:
    """One ``toolkit audit`` run: wall seconds, its JSON report, the PING latencies meanwhile."""
    command = _parser.module_command("toolkit.cli", "audit", str(KEYSPACE_POLICIES), "--target", "bench", "--output", "json",
                                     hiredis=ctx.hiredis)
    pinger = Pinger(ctx.port)
    pinger.start()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "BENCH_REDIS_PORT": str(ctx.port)})
    seconds = time.perf_counter() - started
    latencies = pinger.finish()
    if done.returncode not in (0, 3):
        raise RuntimeError(f"toolkit audit exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return seconds, json.loads(done.stdout), latencies


def audit(ctx: Context) -> list[Result]:
    ctx.keyspace()
    walls, rates, worst, p99s = [], [], [], []
    report: dict = {}
    for _ in range(ctx.sizes.slow_rounds):
        seconds, report, latencies = _audit_once(ctx)
        walls.append(seconds)
        rates.append(report["scanned"] / report["elapsed_s"])
        worst.append(max(latencies))
        p99s.append(_p99(latencies))
    idle = Pinger(ctx.port)
    idle.start()
    time.sleep(min(statistics.median(walls), 5.0))
    idle_latencies = idle.finish()
    scanned = report["scanned"]
    result = Result("audit", f"toolkit audit of {scanned:,} keys, PING every {PING_EVERY_S * 1000:g} ms meanwhile",
                    scanned, "key", {"audit": walls}, {"audit": "toolkit audit (whole command)"})
    result.extra = {
        "walk only, keys/s (report elapsed_s)": round(statistics.median(rates)),
        "PING worst during audit, ms (median of rounds)": statistics.median(worst),
        "PING worst during audit, ms (all rounds)": max(worst),
        "PING p99 during audit, ms": statistics.median(p99s),
        "PING worst with no audit, ms": max(idle_latencies),
    }
    result.checks.append(Check("audit: keys/s (whole command)", result.ops_per_s("audit"), ">=", 100_000, "keys/s"))
    result.checks.append(Check("audit: worst concurrent PING (median of rounds)", statistics.median(worst), "<=", 10.0, "ms"))
    result.notes.append(f"audit report: compliant={report['compliant']}, nodes={report['nodes']}, "
                        f"{report['unknown']['keys']} unknown keys, {report['reserved_keys']} reserved keys")
    return [result]
