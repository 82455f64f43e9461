"""``toolkit audit`` on a real local OSS Redis Cluster of three primaries: every primary is walked."""

from __future__ import annotations

import json
import random

from redis.cluster import RedisCluster

import toolkit
from tests.test_audit import EXPECTED, FIXABLE, H, UNFIXABLE, assert_counts, seed_fixable, seed_mixed, write_policy
from toolkit.audit import fix_ttl, run_audit
from toolkit.cli import main
from toolkit.policy.published import publish


def test_every_primary_is_walked_with_exact_counts(cluster_client, redis_cluster, tmp_path):
    policy = toolkit.load(write_policy(tmp_path, redis_cluster.ports[0], "OSSCluster"))
    seed_mixed(cluster_client)
    publish(cluster_client, policy)
    report = run_audit(policy, cluster_client, target="local", sample_memory=3)
    assert report.cluster and len(report.nodes) == 3 and set(report.nodes.values()) == {"lua"}
    per_node = [n.redis_connection.dbsize() for n in cluster_client.get_primaries()]
    assert all(per_node) and report.scanned == sum(per_node) == 39
    assert_counts(report)
    assert report.reserved_keys == 1 and report.policy.matches
    assert report.violations == FIXABLE + UNFIXABLE
    profile = next(ns for ns in report.namespaces if ns.name == "profile")
    assert profile.memory is not None and profile.memory.sampled == 3 and profile.memory.estimated_bytes > 0


def test_fix_ttl_on_a_cluster(cluster_client, redis_cluster, tmp_path):
    policy = toolkit.load(write_policy(tmp_path, redis_cluster.ports[0], "OSSCluster"))
    seed_mixed(cluster_client)
    report = fix_ttl(policy, cluster_client, rng=random.Random(2))
    assert report.fix is not None and report.fix.fixed == FIXABLE and report.outstanding == UNFIXABLE
    assert cluster_client.pttl("profile:11") == -1  # wrong type: untouched
    assert H - 5_000 <= cluster_client.pttl("profile:5") <= H + 600_000
    assert run_audit(policy, cluster_client).violations == UNFIXABLE


def test_cli_fix_then_clean_audit_on_a_cluster(cluster_client, redis_cluster, tmp_path, capsys):
    directory = write_policy(tmp_path, redis_cluster.ports[0], "OSSCluster")
    seed_fixable(cluster_client, 900)
    assert main(["audit", str(directory), "--target", "local"]) == 3
    assert main(["audit", str(directory), "--target", "local", "--fix-ttl"]) == 0
    capsys.readouterr()
    assert main(["audit", str(directory), "--target", "local", "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cluster"] and len(doc["nodes"]) == 3 and doc["scanned"] == 900 and doc["compliant"]


def test_pipelined_probes_on_a_cluster_where_scripts_are_refused(cluster_client, redis_cluster, tmp_path):
    policy = toolkit.load(write_policy(tmp_path, redis_cluster.ports[0], "OSSCluster"))
    seed_mixed(cluster_client)
    nodes = [n.redis_connection for n in cluster_client.get_primaries()]
    for node in nodes:
        node.acl_setuser("auditor", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-@scripting"])
    try:
        restricted = RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0], username="auditor", password="pw")
        report = run_audit(policy, restricted)
        restricted.close()
    finally:
        for node in nodes:
            node.acl_deluser("auditor")
    assert set(report.nodes.values()) == {"pipeline"} and len(report.nodes) == 3
    assert_counts(report, EXPECTED)
