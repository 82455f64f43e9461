"""plan/apply for Azure Managed Redis: the real SDK and HTTP pipeline against the loopback ARM emulator.

Only the credential is a stand-in (and ``enforce_https`` is lifted for the loopback endpoint, as
the provisioner does for any http://127.0.0.1 endpoint). The data plane is the real redis-server
fixture, so publishing the policy is real too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import toolkit
import toolkit.provision.azure as azure_backend
from tests.arm_emulator import SUBSCRIPTION, ArmEmulator, FakeCredential
from tests.conftest import ROOT
from tests.policytext import PAGE_NAMESPACE
from toolkit.cli import main
from toolkit.errors import ConfigurationError, ToolkitError
from toolkit.policy.published import POLICY_KEY
from toolkit.provision import open_backend

RG, CLUSTER = "rg-test", "cache1"
TARGETS = """
targets:
  amr:
    provider: azure-managed-redis
    host: 127.0.0.1
    port: {port}
    tls: false
    azure:
      subscription: {subscription}
      resource_group: {rg}
      cluster: {cluster}
{location}    instance:
      clustering_policy: {clustering}
      eviction_policy: AllKeysLRU
      sku: Balanced_B5
      high_availability: true
      public_network_access: false
      persistence: disabled
"""




@pytest.fixture
def amr(tmp_path: Path, redis_server, redis_client) -> "Policy":
    return Policy(tmp_path, redis_server.port)


class Policy:
    """A policy directory with target ``amr`` whose data plane is the real redis-server fixture."""

    def __init__(self, directory: Path, port: int):
        self.directory, self.port = directory, port
        self.write()

    def write(self, *, clustering: str = "EnterpriseCluster", location: bool = True) -> "Policy":
        (self.directory / "ns.yaml").write_text(PAGE_NAMESPACE)
        (self.directory / "targets.yaml").write_text(TARGETS.format(
            port=self.port, subscription=SUBSCRIPTION, rg=RG, cluster=CLUSTER, clustering=clustering,
            location="      location: westeurope\n" if location else ""))
        return self

    def run(self, *args: str) -> int:
        return main([args[0], str(self.directory), "--target", "amr", *args[1:]])


def seed(arm: ArmEmulator, port: int, **database: object) -> None:
    """A cluster and database that match the policy except for what ``database`` overrides."""
    arm.add_cluster(RG, CLUSTER, hostName="127.0.0.1")
    arm.add_database(RG, CLUSTER, **{"clusteringPolicy": "EnterpriseCluster", "evictionPolicy": "AllKeysLRU",
                                     "port": port, **database})


def status_polls(arm: ArmEmulator) -> int:
    return sum(1 for method, path, _ in arm.requests if method == "GET" and "/operationsStatus/" in path)


def test_no_drift(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm, amr.port)
    assert amr.run("apply") == 0  # publishes the policy: the instance itself already matched
    assert arm.writes() == []
    capsys.readouterr()
    assert amr.run("plan", "--detailed-exitcode") == 0
    assert "No changes. The instance matches the policy." in capsys.readouterr().out


def test_eviction_change_applied_through_a_polled_202(arm: ArmEmulator, amr: Policy, redis_client, capsys) -> None:
    seed(arm, amr.port, evictionPolicy="VolatileLRU")
    assert amr.run("plan", "--detailed-exitcode") == 2
    assert '~ database.eviction_policy: "VolatileLRU" -> "AllKeysLRU"' in capsys.readouterr().out

    assert amr.run("apply") == 0
    captured = capsys.readouterr()
    assert arm.writes() == [("PATCH", f"{arm.cluster_id(RG, CLUSTER)}/databases/default",
                             {"properties": {"evictionPolicy": "AllKeysLRU"}})]
    assert status_polls(arm) == 2  # InProgress, then Succeeded
    assert arm.database(RG, CLUSTER)["properties"]["evictionPolicy"] == "AllKeysLRU"
    assert "updating database cache1/default: Succeeded" in captured.err
    assert "Apply complete: 1 instance change made, policy published." in captured.out
    assert redis_client.hget(POLICY_KEY, "digest").decode() == toolkit.load(amr.directory).digest

    assert amr.run("plan", "--detailed-exitcode") == 0


def test_second_apply_changes_nothing(arm: ArmEmulator, amr: Policy, redis_client, capsys) -> None:
    seed(arm, amr.port, evictionPolicy="NoEviction")
    assert amr.run("apply") == 0
    writes, record = len(arm.writes()), redis_client.hgetall(POLICY_KEY)
    capsys.readouterr()
    assert amr.run("apply", "--output", "json") == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert result == {"status": "no-changes", "applied": [], "published": False, "notes": []}
    assert len(arm.writes()) == writes
    assert redis_client.hgetall(POLICY_KEY) == record


def test_clustering_policy_change_from_oss_is_blocked(arm: ArmEmulator, amr: Policy, redis_client, capsys) -> None:
    seed(arm, amr.port, clusteringPolicy="OSSCluster", evictionPolicy="VolatileLRU")
    assert amr.run("plan") == 1
    out = capsys.readouterr().out
    assert '! database.clustering_policy: "OSSCluster" -> "EnterpriseCluster"' in out
    assert "blocked: the clustering policy can change only from NoCluster" in out
    assert "instead: declare clustering_policy: OSSCluster (or auto)" in out
    assert amr.run("apply") == 1
    assert "Apply refused: nothing was changed" in capsys.readouterr().out
    assert arm.writes() == [] and not redis_client.exists(POLICY_KEY)  # the eviction update was not applied either


def test_clustering_policy_from_nocluster_is_updated(arm: ArmEmulator, amr: Policy) -> None:
    seed(arm, amr.port, clusteringPolicy="NoCluster")
    assert amr.run("apply") == 0
    assert arm.database(RG, CLUSTER)["properties"]["clusteringPolicy"] == "EnterpriseCluster"


def test_missing_cluster_and_database_are_created(arm: ArmEmulator, amr: Policy, capsys) -> None:
    assert amr.run("plan", "--detailed-exitcode") == 2
    out = capsys.readouterr().out
    assert "+ cluster\n" in out and '      location = "westeurope"' in out and "+ database\n" in out
    assert amr.run("apply") == 0
    put_cluster, put_database = [w for w in arm.writes()]
    assert put_cluster[0] == "PUT" and put_cluster[2] == {
        "location": "westeurope", "sku": {"name": "Balanced_B5"},
        "properties": {"highAvailability": "Enabled", "publicNetworkAccess": "Disabled"}}
    assert put_database[0] == "PUT" and put_database[2]["properties"] == {
        "port": amr.port, "clusteringPolicy": "EnterpriseCluster", "evictionPolicy": "AllKeysLRU",
        "persistence": {"aofEnabled": False, "rdbEnabled": False}}
    assert arm.cluster(RG, CLUSTER)["properties"]["provisioningState"] == "Succeeded"
    assert "created cluster cache1" in capsys.readouterr().out
    assert amr.run("plan", "--detailed-exitcode") == 0


def test_creation_without_a_location_says_what_is_missing(arm: ArmEmulator, amr: Policy, capsys) -> None:
    amr.write(location=False)
    assert amr.run("plan") == 1
    assert "cannot be created: the target does not declare azure.location" in capsys.readouterr().out
    assert arm.writes() == []


def test_throttling_is_retried_after_retry_after(arm: ArmEmulator, amr: Policy) -> None:
    seed(arm, amr.port)
    arm.inject("GET", "/databases/default", 429, "TooManyRequests", times=2, headers={"Retry-After": "0.01"})
    assert amr.run("plan", "--detailed-exitcode", "--no-publish") == 0
    assert sum(1 for m, p, _ in arm.requests if p.endswith("/databases/default")) == 3


def test_throttling_that_persists_is_one_line(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm, amr.port)
    arm.inject("GET", f"/redisEnterprise/{CLUSTER}", 429, "TooManyRequests", times=50, headers={"Retry-After": "0.01"})
    assert amr.run("plan") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"toolkit plan: error: Azure throttled reading cluster {CLUSTER} (429 TooManyRequests) and the "
                       f"retries ran out; Azure asks to wait 0.01 s and run it again")


def test_a_500_then_success(arm: ArmEmulator, amr: Policy) -> None:
    seed(arm, amr.port)
    arm.inject("GET", f"/redisEnterprise/{CLUSTER}", 500, "InternalServerError")
    assert amr.run("plan", "--detailed-exitcode", "--no-publish") == 0


@pytest.mark.parametrize("method, status, code, expected", [
    ("GET", 403, "AuthorizationFailed", "Azure denied reading cluster cache1 (403 AuthorizationFailed)"),
    ("GET", 401, "InvalidAuthenticationToken", "Azure authentication failed while reading cluster cache1"),
    ("PATCH", 409, "Conflict", "Azure refused updating database cache1/default (409 Conflict)"),
])
def test_azure_errors_are_one_clear_line(arm: ArmEmulator, amr: Policy, capsys, method: str, status: int, code: str,
                                         expected: str) -> None:
    seed(arm, amr.port, evictionPolicy="NoEviction")
    arm.inject(method, f"/redisEnterprise/{CLUSTER}", status, code)
    assert amr.run("apply", "--no-publish") == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert expected in line and "Traceback" not in line


def test_failed_operation_is_one_clear_line(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm, amr.port, evictionPolicy="NoEviction")
    arm.operation_error = {"code": "InternalServerError", "message": "The operation failed on the cache nodes."}
    assert amr.run("apply", "--no-publish") == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "error:" in x]
    assert line.endswith("error: Azure reports that updating database cache1/default failed (InternalServerError): "
                         "The operation failed on the cache nodes.")


def test_create_only_update_refused_by_azure_is_one_line(arm: ArmEmulator, amr: Policy) -> None:
    """Plan never sends such a PATCH; if one got through, ARM's 409 would still be one clear error."""
    from dataclasses import replace

    from toolkit.policy.model import Module
    from toolkit.provision.plan import UPDATE, Change, compute_plan

    seed(arm, amr.port)
    policy = toolkit.load(amr.directory)
    target = policy.target("amr")
    target = replace(target, instance=replace(target.instance, modules=(Module("RedisJSON"),)))
    backend = open_backend(target, credential=FakeCredential())
    plan = compute_plan(policy, target, backend.read(), publish=False)
    with pytest.raises(ToolkitError, match=r"\(409 Conflict\): modules can only be set when the database is created"):
        backend.apply(plan.live, [Change("database", "modules", UPDATE, [], ["RedisJSON"])], lambda message: None)
    backend.close()
    assert arm.database(RG, CLUSTER)["properties"]["modules"] == []


def test_missing_resource_group(arm: ArmEmulator, amr: Policy, capsys) -> None:
    arm.resource_groups.clear()
    assert amr.run("plan") == 1
    assert f"resource group {RG} does not exist in subscription {SUBSCRIPTION}" in capsys.readouterr().err


def test_server_errors_without_retries(arm: ArmEmulator, amr: Policy) -> None:
    seed(arm, amr.port)
    arm.inject("GET", f"/redisEnterprise/{CLUSTER}", 503, "ServiceUnavailable")
    backend = open_backend(toolkit.load(amr.directory).target("amr"), credential=FakeCredential(), retry_total=0)
    with pytest.raises(ToolkitError, match=r"Azure failed reading cluster cache1 \(503 ServiceUnavailable\)"):
        backend.read()
    backend.close()


def test_unreachable_data_plane_fails_apply_unless_no_publish(arm: ArmEmulator, amr: Policy, capsys) -> None:
    from tests.servers import free_port

    seed(arm, amr.port, evictionPolicy="NoEviction")
    amr.port = free_port()
    arm.database(RG, CLUSTER)["properties"]["port"] = amr.port
    amr.write()
    assert amr.run("plan") == 0
    assert "warning: [published-policy-unread]" in capsys.readouterr().out
    assert amr.run("apply") == 1
    assert "nothing was changed (use --no-publish" in capsys.readouterr().err
    assert arm.writes() == []
    assert amr.run("apply", "--no-publish") == 0
    assert arm.database(RG, CLUSTER)["properties"]["evictionPolicy"] == "AllKeysLRU"


def test_output_formats(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm, amr.port, evictionPolicy="VolatileLRU", clusteringPolicy="OSSCluster")
    assert amr.run("plan", "--output", "json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["format_version"] == "1" and doc["command"] == "plan" and doc["result"] is None
    assert set(doc) == {"format_version", "command", "target", "policy_digest", "live", "changes", "findings", "summary",
                        "result"}
    assert doc["target"] == {"name": "amr", "provider": "azure-managed-redis",
                             "where": f"{arm.cluster_id(RG, CLUSTER)}/databases/default"}
    assert doc["live"]["settings"]["clustering_policy"] == "OSSCluster"
    assert doc["live"]["database_status"] == {"provisioning_state": "Succeeded", "resource_state": "Running"}
    by_setting = {c["setting"]: c for c in doc["changes"]}
    assert by_setting["eviction_policy"] == {
        "action": "update", "resource": "database", "setting": "eviction_policy", "before": "VolatileLRU",
        "after": "AllKeysLRU", "reason": None, "remedy": None, "note": None, "data_loss": False}
    assert by_setting["clustering_policy"]["action"] == "blocked" and by_setting["clustering_policy"]["data_loss"]
    assert doc["summary"] == {"create": 1, "update": 1, "delete": 0, "blocked": 1, "errors": 0, "warnings": 0,
                              "changes_pending": True, "refused": True}

    assert amr.run("plan", "--output", "markdown") == 1
    md = capsys.readouterr().out
    assert md.startswith("### toolkit plan: `amr` (azure-managed-redis)")
    assert "| `~` update | database | eviction_policy | `\"VolatileLRU\"` | `\"AllKeysLRU\"` |" in md
    assert "| `!` blocked | database | clustering_policy |" in md and "**Data loss** if forced." in md

    assert amr.run("plan", "--output", "text") == 1
    text = capsys.readouterr().out
    assert "Plan: 1 to create, 1 to update, 1 blocked, 0 errors." in text


def test_apply_json_reports_what_was_applied(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm, amr.port, evictionPolicy="VolatileLRU")
    assert amr.run("apply", "--output", "json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["command"] == "apply" and doc["result"]["status"] == "applied" and doc["result"]["published"] is True
    assert [c["setting"] for c in doc["result"]["applied"]] == ["eviction_policy", "published_policy"]


def test_arm_endpoint_must_be_https_or_loopback() -> None:
    assert azure_backend.arm_endpoint("https://management.usgovcloudapi.net/") == "https://management.usgovcloudapi.net"
    assert azure_backend.arm_endpoint("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(ConfigurationError, match="use an https:// URL"):
        azure_backend.arm_endpoint("http://management.example.com")


def test_import_toolkit_does_not_import_the_azure_sdk() -> None:
    code = ("import sys, toolkit, toolkit.provision, toolkit.cli; "
            "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('azure', 'redis'))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "azure" not in out
