"""The walkthrough in examples/ runs end to end against a real redis-server."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_seed_walkthrough_runs_every_scenario(redis_server, redis_client):
    env = dict(os.environ, TOOLKIT_LOCAL_PORT=str(redis_server.port))
    done = subprocess.run([sys.executable, "examples/seed_walkthrough.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "keys without TTL written by the walkthrough: 0" in done.stdout
    assert done.stdout.count("refused before anything was sent") == 2
    assert done.stdout.count("\n== ") == 19  # 17 scenarios shown, 2 refused
    for key in redis_client.scan_iter():
        assert redis_client.pttl(key) > 0, key
