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
