"""The physical reference: what redis-benchmark (C, no policy layer) gets from the same server."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess

from bench._context import Context
from bench._harness import Result

REDIS_BENCHMARK = shutil.which("redis-benchmark")


def _requests_per_s(port: int, pipeline: int, requests: int) -> dict[str, float]:
    """GET and SET requests per second with one connection and ``pipeline`` requests in flight."""
    out = subprocess.run([REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", "1", "-P", str(pipeline),
                          "-n", str(requests), "-t", "get,set", "--csv"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows = [row for row in csv.reader(io.StringIO(out)) if row and row[0] in ("GET", "SET")]
    return {row[0]: float(row[1]) for row in rows}


def reference(ctx: Context) -> list[Result]:
    if REDIS_BENCHMARK is None:
        return [Result("reference", "redis-benchmark", 1, "request", {}, {},
                       notes=["redis-benchmark not found (Debian: apt-get install redis-tools)"])]
    results = []
    for pipeline, requests in ((1, 10_000 if ctx.quick else 50_000), (100, 100_000 if ctx.quick else 1_000_000)):
        rates: dict[str, list[float]] = {"GET": [], "SET": []}
        for _ in range(ctx.sizes.slow_rounds):
            for command, rate in _requests_per_s(ctx.port, pipeline, requests).items():
                rates[command].append(rate)
        # Stored as seconds per round of `requests`, so the table reads like the other workloads.
        rounds = {c.lower(): [requests / r for r in rs] for c, rs in rates.items()}
        result = Result(f"reference_p{pipeline}", f"redis-benchmark -c 1 -P {pipeline} (C client, no policy layer)",
                        requests, "request", rounds, {"get": "GET", "set": "SET"}, baseline=None)
        result.notes.append("a reference for the client-side cost, not a target")
        results.append(result)
    return results
