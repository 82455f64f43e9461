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
