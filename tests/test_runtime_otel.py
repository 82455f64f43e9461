"""OpenTelemetry metrics and spans of both engines, read with the SDK's in-memory reader and exporter.

Each scenario runs in a fresh interpreter: OpenTelemetry's global providers can be set once per
process, and the rest of the suite must not run traced. The data plane is a real redis-server
of the test's own, so that the outage is real too (SIGSTOP, then SIGCONT).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import ROOT
from tests.servers import RedisServer, start_redis

pytest.importorskip("opentelemetry.sdk", reason="the otel test extra: pip install -e '.[test]'")

POLICY = """
namespaces:
  page:
    key: "page:{page_id}"
    type: string
    tier: volatile
    ttl: 5m
  profile:
    key: "profile:{user_id}"
    type: string
    tier: volatile
    ttl: 5m
    trace_params: true
  locked:
    key: "locked:{item}"
    type: string
    tier: volatile
    ttl: 5m
    cache_aside: {lock: true, wait_timeout: 1s}
invalidation:
  page_changed:
    namespaces: [page]
  all_pages:
    match: "page:*"
targets:
  local:
    provider: redis
    host: 127.0.0.1
    port: {port}
    client: {socket_timeout: 200ms, connect_timeout: 200ms, breaker_threshold: 2, breaker_cooldown: 300ms}
"""
PRELUDE = """
import json, os, signal, sys, time
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
import toolkit, toolkit.aio
policy = toolkit.load(sys.argv[1])
PID = int(sys.argv[2])
out = {}

def collect():
    found = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    value = {"count": p.count, "sum": p.sum} if hasattr(p, "count") else p.value
                    found.setdefault(m.name, []).append({"attributes": dict(p.attributes), "value": value, "unit": m.unit})
    return found

def spans():
    return [{"name": s.name, "attributes": dict(s.attributes), "span_id": s.context.span_id,
             "parent": s.parent.span_id if s.parent else None, "status": s.status.status_code.name}
            for s in exporter.get_finished_spans()]
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = start_redis(directory=tmp_path / "redis")
    try:
        yield s
    finally:
        s.stop()


def run(server: RedisServer, tmp_path: Path, body: str) -> dict[str, Any]:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "p.yaml").write_text(POLICY.replace("{port}", str(server.port)))
    script = PRELUDE + textwrap.dedent(body) + "\nprint(json.dumps(out))\n"
    assert server.process is not None
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "policies"), str(server.process.pid)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def points(metrics: dict[str, Any], name: str, **attributes: str) -> list[Any]:
    return [p["value"] for p in metrics.get(name, []) if all(p["attributes"].get(k) == v for k, v in attributes.items())]


SCRIPTED = """
engine = toolkit.connect(policy, "local")
pages = engine.namespace("page")
tracer = trace.get_tracer("app")
def load_page():
    with tracer.start_as_current_span("db.query"):
        return "html"
with tracer.start_as_current_span("request"):
    pages.get_or_load(load_page, page_id=1)   # miss, load
pages.get_or_load(load_page, page_id=1)       # hit
pages.get_or_load(load_page, page_id=1)       # hit
pages.get(page_id=2)                          # miss (a plain read)
def failing():
    raise ValueError("db down")
try:
    pages.get_or_load(failing, page_id=3)
except ValueError:
    pass
engine.namespace("profile").get_or_load(lambda: "p", user_id=42)
pages.set("x", page_id=7)
out["invalidated"] = engine.invalidate("page_changed", page_id=1)
out["scanned"] = engine.invalidate("all_pages")
try:
    engine.invalidate("no_such_rule")
except toolkit.PolicyViolation:
    pass
out["stats"] = engine.stats()["page"]
out["metrics"] = collect()
out["spans"] = spans()
"""


def test_sync_engine_metrics_for_a_scripted_workload(server: RedisServer, tmp_path: Path) -> None:
    result = run(server, tmp_path, SCRIPTED)
    m, page = result["metrics"], {"toolkit.namespace": "page", "toolkit.target": "local"}
    assert points(m, "toolkit.cache.hits", **page) == [2]
    assert points(m, "toolkit.cache.misses", **page) == [3]  # get_or_load 1 and 3, get of page 2
    assert points(m, "toolkit.cache.loads", **page) == [1]
    assert points(m, "toolkit.cache.load_errors", **page) == [1]
    assert points(m, "toolkit.cache.dropped_writes", **page) == [0]
    assert points(m, "toolkit.cache.errors", **page, **{"error.type": "unavailable"}) == [0]
    assert points(m, "toolkit.cache.loads", **{"toolkit.namespace": "profile"}) == [1]
    durations = points(m, "toolkit.cache.load.duration", **page)
    assert sorted(d["count"] for d in durations) == [1, 1] and all(d["sum"] >= 0 for d in durations)  # one ok, one failed
    assert [p["attributes"].get("error.type") for p in m["toolkit.cache.load.duration"]
            if p["attributes"]["toolkit.namespace"] == "page"].count("loader") == 1
    assert result["invalidated"] == 1 and result["scanned"] == 1
    assert points(m, "toolkit.invalidation.keys", **{"toolkit.rule": "page_changed"}) == [1]
    assert points(m, "toolkit.invalidation.keys", **{"toolkit.rule": "all_pages"}) == [1]
    assert [d["count"] for d in points(m, "toolkit.invalidation.duration", **{"toolkit.rule": "page_changed"})] == [1]
    assert "no_such_rule" not in json.dumps(m)  # a refused call is no invalidation
    assert points(m, "toolkit.breaker.open", **{"toolkit.target": "local"}) == [0]
    units = {p["unit"] for name in ("toolkit.cache.load.duration", "toolkit.invalidation.duration") for p in m[name]}
    assert units == {"s"}
    assert {p["unit"] for p in m["toolkit.cache.hits"]} == {"{hit}"}
    assert result["stats"]["hits"] == 2 and result["stats"]["loads"] == 1  # the same numbers as stats()


def test_sync_engine_spans(server: RedisServer, tmp_path: Path) -> None:
    spans = run(server, tmp_path, SCRIPTED)["spans"]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        by_name.setdefault(s["name"], []).append(s)
    (request,) = by_name["request"]
    first, hit1, hit2, failed = by_name["get_or_load page"]
    assert first["parent"] == request["span_id"]  # parented to the caller's current span
    (query,) = by_name["db.query"]
    assert query["parent"] == first["span_id"]  # the loader's database call appears under it
    assert first["attributes"] == {"toolkit.namespace": "page", "toolkit.target": "local", "db.system.name": "redis",
                                   "toolkit.cache.hit": False, "toolkit.cache.loaded": True}
    assert hit1["attributes"]["toolkit.cache.hit"] is True and "toolkit.cache.loaded" not in hit1["attributes"]
    assert hit2["attributes"] == hit1["attributes"]
    assert failed["status"] == "ERROR" and "toolkit.cache.loaded" not in failed["attributes"]
    assert not any(k.startswith("toolkit.param.") for s in by_name["get_or_load page"] for k in s["attributes"])
    (profile,) = by_name["get_or_load profile"]
    assert profile["attributes"]["toolkit.param.user_id"] == "42"  # the namespace opted in
    (exact,) = by_name["invalidate page_changed"]
    assert exact["attributes"]["toolkit.invalidation.keys_deleted"] == 1
    assert exact["attributes"]["toolkit.invalidation.strategy"] == "exact"
    assert by_name["invalidate all_pages"][0]["attributes"]["toolkit.invalidation.strategy"] == "scan"
    assert request["attributes"] == {}  # nothing of ours lands on the application's own span


def test_a_lock_wait_is_on_the_span(server: RedisServer, tmp_path: Path) -> None:
    """Another process holds the fill lock for 100 ms: this caller waits, then loads itself."""
    result = run(server, tmp_path, """
    engine = toolkit.connect(policy, "local")
    engine.client.set("__toolkit__:lock:locked:5", "other-process", px=100)
    out["value"] = engine.namespace("locked").get_or_load(lambda: "v", item=5)
    out["spans"] = spans()
    """)
    (span,) = result["spans"]
    assert result["value"] == "v" and span["name"] == "get_or_load locked"
    assert span["attributes"]["toolkit.cache.lock_waited"] is True and span["attributes"]["toolkit.cache.loaded"] is True


def test_breaker_gauge_flips_during_an_outage(server: RedisServer, tmp_path: Path) -> None:
    result = run(server, tmp_path, """
    engine = toolkit.connect(policy, "local")
    pages = engine.namespace("page")
    pages.get(page_id=1)
    out["before"] = collect()
    os.kill(PID, signal.SIGSTOP)
    try:
        for _ in range(3):
            pages.get(page_id=1)  # fail-open: misses, until the breaker opens
        out["during"] = collect()
    finally:
        os.kill(PID, signal.SIGCONT)
    time.sleep(0.4)  # the cool-down: the next call is a probe
    pages.get(page_id=1)
    out["after"] = collect()
    engine.close()
    out["closed"] = collect()
    """)
    gauge = "toolkit.breaker.open"
    assert [p["value"] for p in result["before"][gauge]] == [0]
    assert [p["value"] for p in result["during"][gauge]] == [1]
    assert [p["value"] for p in result["after"][gauge]] == [0]
    assert points(result["during"], "toolkit.cache.errors", **{"error.type": "unavailable", "toolkit.namespace": "page"}) == [3]
    assert gauge not in result["closed"] or result["closed"][gauge] == []  # a closed engine is no longer observed
    assert points(result["closed"], "toolkit.cache.errors", **{"error.type": "unavailable", "toolkit.namespace": "page"}) == [3]


def test_async_engine_metrics_and_spans(server: RedisServer, tmp_path: Path) -> None:
    result = run(server, tmp_path, """
    import asyncio
    async def main():
        tracer = trace.get_tracer("app")
        async with toolkit.aio.connect(policy, "local") as engine:
            pages = engine.namespace("page")
            async def load():
                with tracer.start_as_current_span("db.query"):
                    await asyncio.sleep(0)
                    return "html"
            with tracer.start_as_current_span("request"):
                await pages.get_or_load(load, page_id=1)
            await pages.get_or_load(load, page_id=1)
            out["invalidated"] = await engine.invalidate("page_changed", page_id=1)
    asyncio.run(main())
    out["metrics"] = collect()
    out["spans"] = spans()
    """)
    m, page = result["metrics"], {"toolkit.namespace": "page", "toolkit.target": "local"}
    assert points(m, "toolkit.cache.hits", **page) == [1] and points(m, "toolkit.cache.misses", **page) == [1]
    assert points(m, "toolkit.cache.loads", **page) == [1]
    assert [d["count"] for d in points(m, "toolkit.cache.load.duration", **page)] == [1]
    assert points(m, "toolkit.invalidation.keys", **{"toolkit.rule": "page_changed"}) == [1]
    by_name = {s["name"]: s for s in result["spans"]}
    first = next(s for s in result["spans"] if s["name"] == "get_or_load page")
    assert first["parent"] == by_name["request"]["span_id"] and by_name["db.query"]["parent"] == first["span_id"]
    assert first["attributes"]["toolkit.cache.loaded"] is True


def test_without_a_tracer_provider_no_span_and_no_annotation(server: RedisServer, tmp_path: Path) -> None:
    """An engine built before any TracerProvider never traces (its hot path tests one attribute), and the
    flows' annotations never reach an application's span."""
    result = run(server, tmp_path, """
    from toolkit.runtime import _telemetry
    engine = toolkit.connect(policy, "local")  # the SDK provider is set: this one traces
    out["traced"] = engine._telemetry.tracer is not None
    _telemetry._configured_tracer = lambda: None
    plain = toolkit.connect(policy, "local")
    out["plain"] = plain._telemetry.tracer is None and "_get_or_load" not in vars(plain)
    with trace.get_tracer("app").start_as_current_span("request"):
        plain.namespace("page").get_or_load(lambda: "x", page_id=9)
    out["spans"] = spans()
    """)
    assert result["traced"] and result["plain"]
    assert [s["name"] for s in result["spans"]] == ["request"] and result["spans"][0]["attributes"] == {}


def test_without_opentelemetry_installed(tmp_path: Path, redis_server: RedisServer) -> None:
    """The extra is optional: with the API missing, engines work and nothing is observed."""
    (tmp_path / "p.yaml").write_text(POLICY.replace("{port}", str(redis_server.port)))
    script = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError("blocked")
    sys.meta_path.insert(0, Block())
    import toolkit
    engine = toolkit.connect(toolkit.load(sys.argv[1]), "local")
    engine.namespace("page").get_or_load(lambda: "x", page_id=1)
    assert engine._telemetry.tracer is None and engine._telemetry._instruments is None
    assert "opentelemetry" not in sys.modules
    print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "p.yaml")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
