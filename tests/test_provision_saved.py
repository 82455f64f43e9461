"""Saved plans: ``toolkit plan --out plan.json`` then ``toolkit apply plan.json`` applies exactly that plan, or
refuses (exit 1, nothing written) when the policy, the instance or the target moved since it was made.

Azure through the real SDK against the loopback ARM emulator, the published policy on the real
redis-server fixture; plain Redis on a redis-server of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import toolkit
from tests.arm_emulator import ArmEmulator
from tests.test_provision_azure import CLUSTER, RG, Policy, amr, seed  # noqa: F401 - amr is a fixture
from toolkit.cli import main
from toolkit.policy.published import POLICY_KEY


@pytest.fixture
def planned(arm: ArmEmulator, amr: Policy, tmp_path_factory, capsys) -> Path:  # noqa: F811
    """An instance that differs in one setting, and the saved plan that would fix it."""
    seed(arm, amr.port, evictionPolicy="VolatileLRU")
    out = tmp_path_factory.mktemp("ci") / "plan.json"
    assert amr.run("plan", "--out", str(out), "--detailed-exitcode") == 2
    captured = capsys.readouterr()
    assert f"saved the plan to {out}" in captured.err and out.exists()
    return out


def test_round_trip(arm: ArmEmulator, amr: Policy, planned: Path, redis_client, capsys) -> None:  # noqa: F811
    record = json.loads(planned.read_text())
    assert record["kind"] == "redis-policy-toolkit saved plan" and record["tool_version"] == toolkit.__version__
    assert record["target"] == "amr" and record["paths"] == [str(amr.directory)]
    assert record["policy_digest"] == toolkit.load(amr.directory).digest
    assert [(c["setting"], c["action"]) for c in record["plan"]["changes"]] == [
        ("eviction_policy", "update"), ("published_policy", "create")]
    assert len(record["live_fingerprint"]) == 64

    assert main(["apply", str(planned)]) == 0
    captured = capsys.readouterr()
    assert f"applying the saved plan {planned} (target amr)" in captured.err
    assert "Apply complete" in captured.out
    assert arm.database(RG, CLUSTER)["properties"]["evictionPolicy"] == "AllKeysLRU"
    assert redis_client.hget(POLICY_KEY, "digest") is not None
    assert amr.run("plan", "--detailed-exitcode") == 0
    assert "No changes." in capsys.readouterr().out
    # the same file again: the instance moved (it was applied), so the plan is stale and nothing is sent
    writes = len(arm.writes())
    assert main(["apply", str(planned)]) == 1
    assert "the live instance changed since the plan was made" in capsys.readouterr().err
    assert len(arm.writes()) == writes


def _refused(arm: ArmEmulator, planned: Path, capsys, *args: str) -> str:
    writes = len(arm.writes())
    assert main(["apply", str(planned), *args]) == 1
    err = capsys.readouterr().err
    assert len(arm.writes()) == writes, "a stale plan must change nothing"
    assert "Traceback" not in err
    return err


def test_stale_after_a_policy_edit(arm: ArmEmulator, amr: Policy, planned: Path, redis_client, capsys) -> None:  # noqa: F811
    ns = amr.directory / "ns.yaml"
    ns.write_text(ns.read_text().replace("ttl: 5m", "ttl: 4m"))
    err = _refused(arm, planned, capsys)
    assert "the policy files changed since the plan was made" in err
    assert redis_client.exists(POLICY_KEY) == 0


def test_stale_after_a_target_edit(arm: ArmEmulator, amr: Policy, planned: Path, capsys) -> None:  # noqa: F811
    targets = amr.directory / "targets.yaml"
    targets.write_text(targets.read_text().replace("persistence: disabled", "persistence: {aof: 1s}"))
    assert "the declaration of target amr changed since the plan was made" in _refused(arm, planned, capsys)


def test_stale_after_a_setting_changed_on_the_instance(arm: ArmEmulator, amr: Policy, planned: Path, capsys) -> None:  # noqa: F811
    arm.cluster(RG, CLUSTER)["properties"]["publicNetworkAccess"] = "Enabled"  # someone used the portal meanwhile
    err = _refused(arm, planned, capsys)
    assert 'the live instance changed since the plan was made: public_network_access (false -> true)' in err


def test_stale_after_the_policy_was_published_by_someone_else(arm: ArmEmulator, amr: Policy, planned: Path,  # noqa: F811
                                                               redis_client, capsys) -> None:
    redis_client.hset(POLICY_KEY, mapping={"digest": "f" * 64})
    assert "published_digest" in _refused(arm, planned, capsys)


def test_refused_for_another_target(arm: ArmEmulator, amr: Policy, planned: Path, capsys) -> None:  # noqa: F811
    assert "is for target amr, not other" in _refused(arm, planned, capsys, "--target", "other")


def test_stale_when_the_target_resolves_elsewhere(arm: ArmEmulator, amr: Policy, tmp_path_factory, monkeypatch,  # noqa: F811
                                                  capsys) -> None:
    """Same files, same settings, but ${AMR_CLUSTER} names another cluster in the apply job."""
    seed(arm, amr.port, evictionPolicy="VolatileLRU")
    arm.add_cluster(RG, "cache2", hostName="127.0.0.1")
    arm.add_database(RG, "cache2", **{**arm.database(RG, CLUSTER)["properties"]})
    targets = amr.directory / "targets.yaml"
    targets.write_text(targets.read_text().replace(f"cluster: {CLUSTER}", "cluster: ${AMR_CLUSTER}"))
    monkeypatch.setenv("AMR_CLUSTER", CLUSTER)
    out = tmp_path_factory.mktemp("ci") / "plan.json"
    assert amr.run("plan", "--out", str(out)) == 0
    assert "cache2" not in out.read_text() and "${AMR_CLUSTER}" in out.read_text()
    capsys.readouterr()
    monkeypatch.setenv("AMR_CLUSTER", "cache2")
    assert "or the target now resolves to another instance" in _refused(arm, out, capsys)


def test_other_tool_version_and_bad_files_are_refused(arm: ArmEmulator, amr: Policy, planned: Path, tmp_path,  # noqa: F811
                                                      capsys) -> None:
    record = json.loads(planned.read_text())
    record["tool_version"] = "0.0.1"
    planned.write_text(json.dumps(record))
    assert "was made by toolkit 0.0.1" in _refused(arm, planned, capsys)
    for content, message in (("{not json", "cannot be read as a saved plan"), ('{"format_version": "1"}', "is not a saved plan"),
                             (json.dumps({**record, "saved_format": "9"}), "format '9'"),
                             (json.dumps({k: v for k, v in record.items() if k != "live_fingerprint"}),
                              "incomplete saved plan")):
        planned.write_text(content)
        assert message in _refused(arm, planned, capsys)


def test_apply_options_are_fixed_in_the_plan(amr: Policy, planned: Path, capsys) -> None:  # noqa: F811
    assert main(["apply", str(planned), "--no-publish"]) == 2
    assert "fixed when the plan is made" in capsys.readouterr().err
    assert main(["apply", str(amr.directory)]) == 2
    assert "--target" in capsys.readouterr().err


def test_a_refused_plan_is_not_saved(arm: ArmEmulator, amr: Policy, tmp_path_factory, capsys) -> None:  # noqa: F811
    seed(arm, amr.port, clusteringPolicy="OSSCluster")  # the policy declares EnterpriseCluster: blocked
    out = tmp_path_factory.mktemp("ci") / "plan.json"
    assert amr.run("plan", "--out", str(out)) == 1
    assert "no saved plan written" in capsys.readouterr().err and not out.exists()


def test_no_publish_plan_applies_without_publishing(arm: ArmEmulator, amr: Policy, tmp_path_factory, redis_client,  # noqa: F811
                                                    capsys) -> None:
    seed(arm, amr.port, evictionPolicy="VolatileLRU")
    out = tmp_path_factory.mktemp("ci") / "plan.json"
    assert amr.run("plan", "--out", str(out), "--no-publish") == 0
    capsys.readouterr()
    assert main(["apply", str(out), "--output", "json"]) == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert result["status"] == "applied" and result["published"] is False
    assert redis_client.exists(POLICY_KEY) == 0


def test_plain_redis_round_trip(tmp_path: Path, redis_server, redis_client, capsys) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "t.yaml").write_text(f"""
targets:
  box:
    provider: redis
    host: 127.0.0.1
    port: {redis_server.port}
    instance:
      eviction_policy: AllKeysLRU
""")
    redis_client.config_set("maxmemory-policy", "noeviction")
    try:
        out = tmp_path / "plan.json"
        assert main(["plan", str(tmp_path / "p"), "--target", "box", "--out", str(out), "--no-publish"]) == 0
        assert main(["apply", str(out)]) == 0
        assert redis_client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        capsys.readouterr()
        assert main(["apply", str(out)]) == 1  # applied already: the server moved
        assert 'eviction_policy ("NoEviction" -> "AllKeysLRU")' in capsys.readouterr().err
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")
