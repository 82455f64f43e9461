"""``python -m bench``: start a redis-server, run the workloads, print the tables, write bench/results.json.

    python -m bench                      # full run (several minutes)
    python -m bench --quick              # short run, well under two minutes
    python -m bench --only get,classify  # some workloads
    python -m bench --markdown           # print the README's tables instead of the text ones
    python -m bench --no-hiredis         # every client with redis-py's pure-Python parser, hiredis installed or not
    python -m bench --from bench/results.json --markdown   # render a saved run, run nothing
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import redis

from bench import (
    _async,
    _audit,
    _cache_aside,
    _classify,
    _invalidation,
    _machine,
    _near_cache,
    _parser,
    _reference,
    _report,
    _seed,
    _single,
)
from bench._context import FULL, QUICK, Context
from bench._harness import Result

WORKLOADS: dict[str, tuple[Callable[[Context], list[Result]], str]] = {
    "get": (_single.get, "GET: engine vs r.get"),
    "set": (_single.set_ttl, "SET with TTL: engine vs r.set(px=)"),
    "hgetall": (_single.hgetall, "HGETALL: engine vs r.hgetall"),
    "hset_ttl": (_single.hset_ttl, "hash write with TTL: engine vs MULTI HSET+PEXPIRE"),
    "incr": (_single.incr, "INCR: engine vs r.incr"),
    "pipeline": (_single.pipeline, "10,000 operations in one pipeline: engine vs redis-py"),
    "hash_vs_seed": (_single.hash_vs_seed, "atomic hash write vs the seed's HSET then EXPIRE"),
    "cache_aside": (_cache_aside.cache_aside, "get_or_load vs the seed, cashews, dogpile.cache"),
    "asyncio": (_async.asyncio_workloads, "AsyncEngine vs redis.asyncio and cashews: get, set, cache-aside hits, 100 tasks"),
    "near_cache": (_near_cache.near_cache, "near cache hit vs the seed and redis-py's cache; invalidation across processes"),
    "classify": (_classify.classify, "PolicySet.classify with 10 and 1,000 namespaces"),
    "invalidation": (_invalidation.invalidation, "one user's keys among 1,000,000: rule, seed loop, index"),
    "audit": (_audit.audit, "toolkit audit of 1,000,000 keys with a concurrent PING"),
    "reference": (_reference.reference, "redis-benchmark -c 1 -P 1 / -P 100"),
}
"""Run in this order: the keyspace workloads flush the database, so they come after the others."""
ROOT = Path(__file__).resolve().parent.parent


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="workloads:\n" + "\n".join(f"  {n:<13} {d}" for n, (_, d) in WORKLOADS.items()))
    parser.add_argument("--quick", action="store_true", help="fewer operations and rounds (well under two minutes)")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run only these workloads")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown (the README's format)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results.json", help="where to write the JSON results")
    parser.add_argument("--from", dest="load", type=Path, metavar="RESULTS", help="render a saved results file; run nothing")
    parser.add_argument("--otel", action="store_true",
                        help="configure the OpenTelemetry SDK first (a MeterProvider with a reader, a TracerProvider with a "
                             "batch processor and a discarding exporter): what instrumented engines cost")
    parser.add_argument("--no-hiredis", action="store_true",
                        help="every client of the run (sync, asyncio, the libraries', the audit subprocess's) uses redis-py's "
                             "pure-Python parser even when hiredis is installed")
    args = parser.parse_args(argv)
    if args.only:
        args.only = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in args.only if n not in WORKLOADS]
        if unknown:
            parser.error(f"unknown workload {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")
    return args


def run(args: argparse.Namespace) -> dict:
    """Start a server, run the chosen workloads, stop the server; the results document."""
    from tests.servers import start_redis  # the test suite's server helper (no pytest in it)

    if args.otel:
        _configure_otel()
    if args.no_hiredis:
        _parser.disable_hiredis()  # before any client: a connection keeps the parser it was built with
    hiredis = _parser.enabled()
    sizes = QUICK if args.quick else FULL
    names = [n for n in WORKLOADS if not args.only or n in args.only]  # keyspace workloads flush: keep the order
    server = start_redis("--maxmemory", "0")
    started = time.monotonic()
    try:
        client = redis.Redis(host="127.0.0.1", port=server.port)
        parsers = _parser.describe(client, server.port)
        _parser.check(parsers, hiredis)
        _seed.use(server.port)
        ctx = Context(server.port, sizes, args.quick, client, hiredis=hiredis)
        doc = {"format_version": "1", "command": " ".join(["python -m bench", *sys.argv[1:]]), "otel": args.otel,
               "hiredis": hiredis, "parsers": parsers,
               "mode": "quick" if args.quick else "full", "rounds": sizes.rounds,
               "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": _machine.describe(client), "workloads": {}, "workload_seconds": {}}
        for name in names:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            workload_started = time.monotonic()
            for result in WORKLOADS[name][0](ctx):
                doc["workloads"][result.name] = result.as_json()
            doc["workload_seconds"][name] = round(time.monotonic() - workload_started, 1)
        doc["machine"]["load_average_end"] = list(os.getloadavg())
        doc["duration_s"] = round(time.monotonic() - started, 1)
        checks = [c for w in doc["workloads"].values() for c in w["checks"]]
        doc["summary"] = {"targets": len(checks), "passed": sum(c["pass"] for c in checks),
                          "missed": [c["name"] for c in checks if not c["pass"]]}
        return doc
    finally:
        server.stop()


def _configure_otel() -> None:
    """The SDK as a service would run it: metrics read every 60 s, spans batched to an exporter (one that drops them)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    trace.set_tracer_provider(provider)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.load:
        doc = json.loads(args.load.read_text())
    else:
        doc = run(args)
        args.output.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"bench: {doc['duration_s']} s; results in {args.output}", file=sys.stderr)
    print(_report.markdown(doc) if args.markdown else _report.text(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
