"""compute_plan on its own: how each difference is classified and which cross-checks fire (no I/O here)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.policytext import PAGE_NAMESPACE
import toolkit
from toolkit.policy.model import InstancePolicy, Module, Persistence, PolicySet
from toolkit.provision.plan import BLOCKED, CREATE, ERROR, UPDATE, WARNING, compute_plan, effective
from toolkit.provision.state import LiveState, persistence_from_redis, persistence_to_redis, to_json

PERSISTENT_NS = """
  ledger:
    key: "ledger:{account}"
    type: counter
    tier: persistent
    reason: balances are the source of truth here
"""
AZURE_TARGET = """
targets:
  amr:
    provider: azure-managed-redis
    host: cache1.westeurope.redis.azure.net
    auth: {type: AUTH}
    azure: {subscription: sub, resource_group: rg, cluster: cache1, location: westeurope}
    instance:
INSTANCE"""
ACCESS_KEY = "access-key, env: AMR_KEY"
ENTRA = "entra-id"

LIVE = InstancePolicy(sku="Balanced_B5", high_availability=True, minimum_tls_version="1.2", public_network_access=False,
                      client_protocol="Encrypted", clustering_policy="EnterpriseCluster", eviction_policy="VolatileLRU",
                      persistence=Persistence(), modules=(), access_keys_authentication=False)


def load(tmp_path: Path, instance: str, *, namespaces: str = PAGE_NAMESPACE, auth: str = ENTRA) -> PolicySet:
    (tmp_path / "ns.yaml").write_text(namespaces)
    body = "\n".join(f"      {line}" for line in instance.strip().splitlines()) or "      {}"
    (tmp_path / "targets.yaml").write_text(AZURE_TARGET.replace("INSTANCE", body).replace("AUTH", auth))
    return toolkit.load(tmp_path)


def azure_live(**settings: object) -> LiveState:
    return LiveState("azure-managed-redis", "/subscriptions/sub/.../databases/default", replace(LIVE, **settings),
                     host_name="cache1.westeurope.redis.azure.net", port=10000)


def plan_of(policy: PolicySet, live: LiveState, target: str = "amr"):
    return compute_plan(policy, policy.target(target), live, publish=False)


def test_matching_instance_gives_an_empty_plan(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\neviction_policy: VolatileLRU\nsku: Balanced_B5")
    plan = plan_of(policy, azure_live())
    assert plan.changes == () and not plan.refused and plan.findings == ()


def test_eviction_difference_is_an_in_place_update(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\neviction_policy: AllKeysLRU")
    (change,) = plan_of(policy, azure_live()).changes
    assert (change.resource, change.setting, change.action, change.before, change.after) == (
        "database", "eviction_policy", UPDATE, "VolatileLRU", "AllKeysLRU")


@pytest.mark.parametrize("live_policy", ["OSSCluster", "EnterpriseCluster"])
def test_clustering_policy_change_is_blocked_unless_from_nocluster(tmp_path: Path, live_policy: str) -> None:
    wanted = "EnterpriseCluster" if live_policy == "OSSCluster" else "OSSCluster"
    policy = load(tmp_path, f"clustering_policy: {wanted}")
    (change,) = plan_of(policy, azure_live(clustering_policy=live_policy)).changes
    assert change.action == BLOCKED and change.data_loss
    assert "only from NoCluster" in change.reason and "loses all its data" in change.reason
    assert f"declare clustering_policy: {live_policy}" in change.remedy


def test_clustering_policy_from_nocluster_is_an_update(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: OSSCluster")
    (change,) = plan_of(policy, azure_live(clustering_policy="NoCluster")).changes
    assert change.action == UPDATE and "cluster-aware client" in change.note


@pytest.mark.parametrize("instance, live, setting", [
    ("clustering_policy: EnterpriseCluster\nmodules: [RedisJSON]", {}, "modules"),
    ("clustering_policy: EnterpriseCluster\ngeo_replication_group: eu", {}, "geo_replication_group"),
])
def test_create_only_settings_are_blocked(tmp_path: Path, instance: str, live: dict, setting: str) -> None:
    policy = load(tmp_path, instance)
    (change,) = plan_of(policy, azure_live(**live)).changes
    assert (change.setting, change.action, change.data_loss) == (setting, BLOCKED, True)
    assert "only when the database is created" in change.reason


def test_port_is_create_only(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster")
    live = replace(azure_live(), port=10001)
    (change,) = plan_of(policy, live).changes
    assert (change.setting, change.action, change.before, change.after) == ("port", BLOCKED, 10001, 10000)
    assert change.remedy == "set the target's port to 10001"


def test_module_args_only_compared_when_declared(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\neviction_policy: NoEviction\nmodules: [RediSearch]")
    live = azure_live(eviction_policy="NoEviction", modules=(Module("RediSearch", "MAXSEARCHRESULTS 10000"),))
    assert plan_of(policy, live).changes == ()


def test_high_availability_can_be_switched_on_but_not_off(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\nhigh_availability: false")
    (off,) = plan_of(policy, azure_live()).changes
    assert off.action == BLOCKED and "cannot be switched off" in off.reason
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\nhigh_availability: true")
    (on,) = plan_of(policy, azure_live(high_availability=False)).changes
    assert on.action == UPDATE and on.resource == "cluster"


def test_missing_cluster_is_created_when_the_target_declares_what_creation_needs(tmp_path: Path) -> None:
    policy = load(tmp_path, "sku: Balanced_B5\npublic_network_access: false\nclustering_policy: EnterpriseCluster")
    live = LiveState("azure-managed-redis", "x", InstancePolicy(), cluster_exists=False, database_exists=False)
    cluster, database = plan_of(policy, live).changes
    assert (cluster.resource, cluster.action) == ("cluster", CREATE)
    assert cluster.after == {"location": "westeurope", "sku": "Balanced_B5", "public_network_access": False}
    assert (database.resource, database.action) == ("database", CREATE)
    assert database.after == {"clustering_policy": "EnterpriseCluster", "port": 10000}
    assert "access keys" in database.note


def test_missing_cluster_without_sku_says_what_is_missing(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster")
    live = LiveState("azure-managed-redis", "x", InstancePolicy(), cluster_exists=False, database_exists=False)
    plan = plan_of(policy, live)
    (blocked,) = plan.blocked
    assert blocked.resource == "cluster" and plan.refused
    assert "instance.sku, instance.public_network_access" in blocked.reason


def test_missing_database_only(tmp_path: Path) -> None:
    policy = load(tmp_path, "eviction_policy: AllKeysLRU")
    live = LiveState("azure-managed-redis", "x", LIVE, database_exists=False)
    (database,) = plan_of(policy, live).changes
    assert database.action == CREATE and "OSSCluster, which can never be changed" in database.note
    # Azure's create defaults count in the cross-checks: OSSCluster undeclared means a non-cluster client.
    assert effective(policy.target("amr"), live).clustering_policy == "OSSCluster"
    assert [f.code for f in plan_of(policy, live).errors] == ["oss-cluster-needs-cluster-client"]


def _codes(plan, severity: str) -> list[str]:
    return [f.code for f in plan.findings if f.severity == severity]


def test_persistent_namespace_under_volatile_eviction_warns(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster", namespaces=PAGE_NAMESPACE + PERSISTENT_NS)
    plan = plan_of(policy, azure_live())
    assert _codes(plan, WARNING) == ["persistent-under-volatile-eviction"] and not plan.refused
    assert "ledger" in plan.findings[0].message


def test_persistent_namespace_under_allkeys_eviction_blocks(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\neviction_policy: AllKeysLFU",
                  namespaces=PAGE_NAMESPACE + PERSISTENT_NS)
    plan = plan_of(policy, azure_live())
    assert _codes(plan, ERROR) == ["persistent-may-be-evicted"] and plan.refused


def test_cache_namespaces_under_noeviction_warn(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\neviction_policy: NoEviction")
    assert _codes(plan_of(policy, azure_live()), WARNING) == ["cache-under-noeviction"]


def test_access_key_auth_with_access_keys_disabled_blocks(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster", auth=ACCESS_KEY)
    assert _codes(plan_of(policy, azure_live()), ERROR) == ["access-key-disabled"]
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\naccess_keys_authentication: true", auth=ACCESS_KEY)
    plan = plan_of(policy, azure_live())
    assert _codes(plan, ERROR) == [] and [c.setting for c in plan.changes] == ["access_keys_authentication"]


def test_redisearch_requirements_are_a_warning_quoting_the_sources_that_disagree(tmp_path: Path) -> None:
    """Microsoft's documentation requires EnterpriseCluster + NoEviction; the 2025-07-01 specification's examples
    run RediSearch with OSSCluster and AllKeysLRU. Sources that disagree make a warning that quotes both."""
    live = azure_live(modules=(Module("RediSearch"),))
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\nmodules: [RediSearch]")
    plan = plan_of(policy, live)
    assert _codes(plan, ERROR) == [] and _codes(plan, WARNING) == ["redisearch-requirements"]
    (finding,) = plan.findings
    assert "with eviction_policy VolatileLRU:" in finding.message and "clustering_policy" not in finding.message.split(":")[0]
    assert '"The RediSearch module requires use of the Enterprise clustering policy and the NoEviction eviction policy"' \
        in finding.message
    assert "RedisEnterpriseDatabasesGet.json with OSSCluster and AllKeysLRU" in finding.message
    assert finding.path == ("targets", "amr", "instance", "modules")
    policy = load(tmp_path, "clustering_policy: OSSCluster\nmodules: [RediSearch]\neviction_policy: NoEviction")
    plan = plan_of(policy, replace(live, settings=replace(live.settings, clustering_policy="OSSCluster")))
    (finding,) = [f for f in plan.findings if f.code == "redisearch-requirements"]
    assert finding.message.startswith("RediSearch with clustering_policy OSSCluster:")
    assert "\"OSS clustering policy can't be used with the RediSearch module\"" in finding.message
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster\nmodules: [RediSearch]\neviction_policy: NoEviction")
    assert "redisearch-requirements" not in _codes(plan_of(policy, live), WARNING)


def test_oss_cluster_needs_a_declared_cluster_client(tmp_path: Path) -> None:
    policy = load(tmp_path, "eviction_policy: VolatileLRU")
    assert _codes(plan_of(policy, azure_live(clustering_policy="OSSCluster")), ERROR) == ["oss-cluster-needs-cluster-client"]
    policy = load(tmp_path, "clustering_policy: auto")
    assert plan_of(policy, azure_live(clustering_policy="OSSCluster")).findings == ()


def test_host_mismatch_and_busy_resource_warn(tmp_path: Path) -> None:
    from toolkit.provision.state import ArmStatus

    policy = load(tmp_path, "clustering_policy: EnterpriseCluster")
    live = replace(azure_live(), host_name="other.westeurope.redis.azure.net", cluster_status=ArmStatus("Updating", "Running"))
    assert sorted(_codes(plan_of(policy, live), WARNING)) == ["host-mismatch", "operation-in-progress"]


def test_published_policy_is_part_of_the_plan(tmp_path: Path) -> None:
    policy = load(tmp_path, "clustering_policy: EnterpriseCluster")
    target = policy.target("amr")
    missing = compute_plan(policy, target, azure_live()).changes
    assert [(c.resource, c.action, c.after) for c in missing] == [("policy", CREATE, policy.digest)]
    old = compute_plan(policy, target, replace(azure_live(), published_digest="0" * 64)).changes
    assert [(c.action, c.before) for c in old] == [(UPDATE, "0" * 64)]
    assert compute_plan(policy, target, replace(azure_live(), published_digest=policy.digest)).changes == ()
    unread = compute_plan(policy, target, replace(azure_live(), published_error="cannot reach it"))
    assert unread.changes == () and _codes(unread, WARNING) == ["published-policy-unread"]


def test_plain_redis_rules(policies: PolicySet) -> None:
    target = policies.target("local")
    live = LiveState("redis", "redis://127.0.0.1:6379/0",
                     InstancePolicy(clustering_policy="OSSCluster", eviction_policy="AllKeysLRU", persistence=Persistence()))
    (change,) = compute_plan(policies, target, live, publish=False).changes
    assert change.action == BLOCKED and "cluster-enabled" in change.reason
    enterprise = replace(target, instance=replace(target.instance, clustering_policy="EnterpriseCluster"))
    (change,) = compute_plan(policies, enterprise, replace(live, settings=replace(live.settings, clustering_policy="NoCluster")),
                             publish=False).changes
    assert change.action == BLOCKED and "Azure proxy" in change.reason


def test_plain_cluster_nodes_that_disagree_are_an_update(policies: PolicySet) -> None:
    target = policies.target("local")
    live = LiveState("redis", "x", InstancePolicy(clustering_policy="NoCluster", eviction_policy="AllKeysLRU",
                                                  persistence=Persistence()),
                     divergent={"eviction_policy": "AllKeysLRU on a:1; NoEviction on b:2"})
    (change,) = compute_plan(policies, target, live, publish=False).changes
    assert (change.action, change.before) == (UPDATE, "AllKeysLRU on a:1; NoEviction on b:2")


@pytest.mark.parametrize("persistence, config", [
    (Persistence(), [("appendonly", "no"), ("save", "")]),
    (Persistence(aof="1s"), [("appendfsync", "everysec"), ("appendonly", "yes"), ("save", "")]),
    (Persistence(aof="always"), [("appendfsync", "always"), ("appendonly", "yes"), ("save", "")]),
    (Persistence(rdb="6h"), [("appendonly", "no"), ("save", "21600 1")]),
])
def test_persistence_maps_to_config_and_back(persistence: Persistence, config: list) -> None:
    assert persistence_to_redis(persistence) == config
    values = dict(config)
    assert persistence_from_redis(values["appendonly"], values.get("appendfsync", "everysec"), values["save"]) == persistence


def test_unnamed_redis_persistence_is_shown_verbatim() -> None:
    p = persistence_from_redis("yes", "no", "3600 1 300 100")
    assert to_json(p) == {"aof": "appendfsync no", "rdb": "save 3600 1 300 100"}
