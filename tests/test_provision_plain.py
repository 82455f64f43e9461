"""plan/apply on real redis-server processes: CONFIG GET/SET, persistence, clusters, the CLI end to end."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Iterator

import pytest
import redis

import tests.servers as servers
import toolkit
from tests.conftest import POLICIES
from tests.servers import RedisServer, start_redis
from tests.policytext import PAGE_NAMESPACE
from toolkit.cli import main
from toolkit.policy.published import POLICY_KEY
from toolkit.provision import apply_plan, compute_plan, open_backend, read_live
from toolkit.provision.state import EVICTION_TO_REDIS

PLAIN_TARGET = """
targets:
  box:
    provider: redis
    url: "redis://127.0.0.1:{port}/0"
    instance:
{instance}
"""


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server as redis-server starts by default (noeviction), stopped by pid."""
    server = start_redis(directory=tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


def box_policy(tmp_path: Path, port: int, instance: str, clustering: str = "NoCluster") -> toolkit.PolicySet:
    lines = [f"clustering_policy: {clustering}"] + instance.strip().splitlines()
    (tmp_path / "targets.yaml").write_text(PLAIN_TARGET.format(port=port, instance="\n".join(f"      {x}" for x in lines)))
    (tmp_path / "ns.yaml").write_text(PAGE_NAMESPACE)
    return toolkit.load(tmp_path)


def apply_box(policy: toolkit.PolicySet, messages: list[str] | None = None):
    target = policy.target("box")
    backend = open_backend(target)
    try:
        plan = compute_plan(policy, target, read_live(backend, target, publish=True))
        return apply_plan(plan, backend, policy, publish=True, progress=(messages if messages is not None else []).append)
    finally:
        backend.close()


def test_cli_plan_apply_plan_on_a_fresh_server(fresh_redis: RedisServer, monkeypatch, capsys) -> None:
    """The acceptance path: exit 2 with drift, apply fixes it, the next plan exits 0, a second apply writes nothing."""
    monkeypatch.setenv("TOOLKIT_LOCAL_PORT", str(fresh_redis.port))
    args = ["plan", str(POLICIES), "--target", "local", "--detailed-exitcode"]
    assert main(args) == 2
    out = capsys.readouterr().out
    assert '~ server.eviction_policy: "NoEviction" -> "AllKeysLRU"' in out and "+ policy.published_policy" in out

    assert main(["apply", str(POLICIES), "--target", "local"]) == 0
    captured = capsys.readouterr()
    assert "Apply complete: 1 instance change made, policy published." in captured.out
    assert "not persisted: the server runs without a config file" in captured.out
    assert "CONFIG SET maxmemory-policy 'allkeys-lru'" in captured.err
    client = redis.Redis(port=fresh_redis.port, decode_responses=True)
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    record = client.hgetall(POLICY_KEY)
    assert record["digest"] == toolkit.load(POLICIES).digest

    assert main(args) == 0
    assert "No changes." in capsys.readouterr().out
    assert main(["apply", str(POLICIES), "--target", "local"]) == 0
    assert "Apply complete: no changes." in capsys.readouterr().out
    assert client.hgetall(POLICY_KEY) == record  # publish() skipped the identical digest: applied_at unchanged
    client.close()


@pytest.mark.parametrize("policy_name", sorted(EVICTION_TO_REDIS))
def test_eviction_names_map_both_ways(fresh_redis: RedisServer, tmp_path: Path, policy_name: str) -> None:
    client = redis.Redis(port=fresh_redis.port, decode_responses=True)
    policy = box_policy(tmp_path, fresh_redis.port, f"eviction_policy: {policy_name}\npersistence: disabled")
    outcome = apply_box(policy)
    assert [c.setting for c in outcome.applied if c.resource == "server"] == (
        [] if policy_name == "NoEviction" else ["eviction_policy"])
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == EVICTION_TO_REDIS[policy_name]
    backend = open_backend(policy.target("box"))
    assert backend.read().settings.eviction_policy == policy_name
    backend.close()
    client.close()


@pytest.mark.parametrize("declared, expected", [
    ("{aof: 1s}", {"appendonly": "yes", "appendfsync": "everysec", "save": ""}),
    ("{aof: always}", {"appendonly": "yes", "appendfsync": "always", "save": ""}),
    ("{rdb: 1h}", {"appendonly": "no", "save": "3600 1"}),
    ("{rdb: 12h}", {"appendonly": "no", "save": "43200 1"}),
])
def test_persistence_applied_and_read_back(fresh_redis: RedisServer, tmp_path: Path, declared: str, expected: dict) -> None:
    client = redis.Redis(port=fresh_redis.port, decode_responses=True)
    client.config_set("save", "3600 1 300 100")  # something no policy names: shown verbatim, replaced by apply
    policy = box_policy(tmp_path, fresh_redis.port, f"eviction_policy: NoEviction\npersistence: {declared}")
    plan_before = compute_plan(policy, policy.target("box"), open_backend(policy.target("box")).read(), publish=False)
    assert plan_before.changes[0].before == {"rdb": "save 3600 1 300 100"}
    apply_box(policy)
    for name, value in expected.items():
        assert client.config_get(name)[name] == value
    backend = open_backend(policy.target("box"))
    assert compute_plan(policy, policy.target("box"), backend.read(), publish=False).changes == ()
    backend.close()
    client.config_set("appendonly", "no")  # an AOF server may take seconds to stop
    client.close()


def test_config_rewrite_persists_when_the_server_has_a_config_file(tmp_path: Path, monkeypatch) -> None:
    conf = tmp_path / "redis.conf"
    conf.write_text("maxmemory-policy noeviction\n")
    wrapper = tmp_path / "redis-server-with-conf"  # redis-server wants the config file as its first argument
    wrapper.write_text(f'#!/bin/sh\nexec {servers.REDIS_SERVER} {conf} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(servers, "REDIS_SERVER", str(wrapper))
    server = start_redis(directory=tmp_path / "data")
    try:
        policy = box_policy(tmp_path, server.port, "eviction_policy: VolatileTTL")
        outcome = apply_box(policy)
        assert any("persisted with CONFIG REWRITE" in n for n in outcome.notes)
        assert "maxmemory-policy volatile-ttl" in conf.read_text()
    finally:
        server.stop()


def test_every_cluster_node_is_read_and_changed(redis_cluster, tmp_path: Path) -> None:
    nodes = [redis.Redis(port=p, decode_responses=True) for p in redis_cluster.ports]
    try:
        nodes[1].config_set("maxmemory-policy", "allkeys-lfu")
        policy = box_policy(tmp_path, redis_cluster.ports[0], "eviction_policy: NoEviction", clustering="OSSCluster")
        target = policy.target("box")
        backend = open_backend(target)
        live = backend.read()
        backend.close()
        assert len(live.nodes) == 3 and "AllKeysLFU on 127.0.0.1:" in live.divergent["eviction_policy"]
        (change,) = compute_plan(policy, target, live, publish=False).changes
        assert change.setting == "eviction_policy" and change.action == "update"
        messages: list[str] = []
        outcome = apply_box(policy, messages)
        assert sum("CONFIG SET maxmemory-policy" in m for m in messages) == 3
        assert outcome.published
        assert [n.config_get("maxmemory-policy")["maxmemory-policy"] for n in nodes] == ["noeviction"] * 3
    finally:
        for n in nodes:
            n.config_set("maxmemory-policy", "noeviction")
            n.close()


def test_non_cluster_target_on_a_cluster_is_blocked(redis_cluster, tmp_path: Path, capsys) -> None:
    box_policy(tmp_path, redis_cluster.ports[0], "eviction_policy: NoEviction")
    assert main(["plan", str(tmp_path), "--target", "box", "--output", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (blocked,) = [c for c in doc["changes"] if c["action"] == "blocked"]
    assert blocked["setting"] == "clustering_policy" and "cluster-enabled" in blocked["reason"]
    assert doc["summary"]["refused"] is True


def test_unreachable_server_is_one_clear_line(tmp_path: Path, capsys) -> None:
    box_policy(tmp_path, servers.free_port(), "eviction_policy: NoEviction")
    assert main(["plan", str(tmp_path), "--target", "box"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the data plane of target box (redis://127.0.0.1:" in err and "Traceback" not in err


def test_apply_refuses_a_blocked_plan_and_changes_nothing(fresh_redis: RedisServer, tmp_path: Path, capsys) -> None:
    box_policy(tmp_path, fresh_redis.port, "eviction_policy: AllKeysLRU", clustering="EnterpriseCluster")
    assert main(["apply", str(tmp_path), "--target", "box"]) == 1
    assert "Apply refused: nothing was changed" in capsys.readouterr().out
    client = redis.Redis(port=fresh_redis.port, decode_responses=True)
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert not client.exists(POLICY_KEY)
    client.close()


def test_unknown_target_is_a_usage_line(capsys) -> None:
    assert main(["plan", str(POLICIES), "--target", "nope"]) == 1
    assert "no target 'nope'" in capsys.readouterr().err
