"""The provisioner against response bodies copied verbatim from the official specification's examples
(tests/azure_spec, Microsoft.Cache redisEnterprise 2025-07-01), including bodies that omit properties.

Each setting the plan reads is checked with a body that leaves it out: it must read as Azure's
documented default (``azure.OMITTED``), never as "unknown", or a plan would never settle (declared
true, read null) or would let a blocked change through (high availability on -> off).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import toolkit
from tests.arm_emulator import LRO_STYLES, ArmEmulator, FakeCredential, spec_example
from tests.policytext import PAGE_NAMESPACE
from toolkit.cli import main
from toolkit.policy.model import Module, Persistence
from toolkit.provision import compute_plan, open_backend
from toolkit.provision.plan import BLOCKED, UPDATE

RG, CLUSTER = "rg1", "cache1"  # the examples' own names
TARGET = """
targets:
  amr:
    provider: azure-managed-redis
    host: cache1.westus.something.azure.com
    auth: {{type: entra-id}}
    azure: {{subscription: e7b5a9d2-6b6a-4d2f-9143-20d9a10f5b8f, resource_group: rg1, cluster: cache1, location: westus}}
    instance:
{instance}
"""




def write(directory: Path, instance: str) -> Path:
    (directory / "ns.yaml").write_text(PAGE_NAMESPACE)
    body = "\n".join(f"      {line}" for line in instance.strip().splitlines())
    (directory / "targets.yaml").write_text(TARGET.format(instance=body))
    return directory


def plan_for(directory: Path, instance: str):
    policy = toolkit.load(write(directory, instance))
    target = policy.target("amr")
    backend = open_backend(target, credential=FakeCredential())
    try:
        live = backend.read()
    finally:
        backend.close()
    return compute_plan(policy, target, live, publish=False)


def run(directory: Path, *args: str) -> int:
    return main([args[0], str(directory), "--target", "amr", "--no-publish", *args[1:]])


def test_the_examples_are_verbatim_copies_with_their_omissions() -> None:
    """Guards the premise of this file: the stored examples are the spec's, and they do omit these."""
    cluster = spec_example("RedisEnterpriseUpdate.json")["responses"]["200"]["body"]
    assert "highAvailability" not in cluster["properties"] and cluster["sku"] == {"name": "EnterpriseFlash_F300", "capacity": 9}
    nocluster = spec_example("RedisEnterpriseDatabasesNoClusterCacheCreate.json")["responses"]["200"]["body"]
    assert not {"persistence", "modules", "geoReplication"} & set(nocluster["properties"])


# -- 1. what a response leaves out reads as Azure's default ----------------------------------------

def test_omitted_high_availability_reads_enabled_so_switching_it_off_is_blocked(arm: ArmEmulator, tmp_path: Path,
                                                                                capsys) -> None:
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, provisioningState="Succeeded", resourceState="Running")
    arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER)
    plan = plan_for(tmp_path, "high_availability: false")
    (change,) = plan.changes
    assert (change.setting, change.action, change.before, change.data_loss) == ("high_availability", BLOCKED, True, True)
    assert run(tmp_path, "apply") == 1 and arm.writes() == []
    capsys.readouterr()
    # declared true: the omitted value already is true, so the plan settles at once
    assert plan_for(tmp_path, "high_availability: true\nclustering_policy: auto").changes == ()
    assert run(tmp_path, "plan", "--detailed-exitcode") == 0, capsys.readouterr()


OMISSIONS = [
    # (example, property left out, instance declaration equal to Azure's default, what the live setting reads)
    ("RedisEnterpriseUpdate.json", "highAvailability", "high_availability: true", ("high_availability", True)),
    ("RedisEnterpriseUpdate.json", "minimumTlsVersion", 'minimum_tls_version: "1.2"', ("minimum_tls_version", "1.2")),
    ("RedisEnterpriseDatabasesGet.json", "clientProtocol", "client_protocol: Encrypted", ("client_protocol", "Encrypted")),
    ("RedisEnterpriseDatabasesGet.json", "clusteringPolicy", "clustering_policy: OSSCluster",
     ("clustering_policy", "OSSCluster")),
    ("RedisEnterpriseDatabasesGet.json", "evictionPolicy", "eviction_policy: VolatileLRU", ("eviction_policy", "VolatileLRU")),
    ("RedisEnterpriseDatabasesNoClusterCacheCreate.json", "persistence", "persistence: disabled",
     ("persistence", Persistence())),
    ("RedisEnterpriseDatabasesNoClusterCacheCreate.json", "modules", "modules: []", ("modules", ())),
]


@pytest.mark.parametrize("example, prop, declared, expected", OMISSIONS, ids=[o[1] for o in OMISSIONS])
def test_each_omitted_setting_reads_as_the_documented_default(arm: ArmEmulator, tmp_path: Path, example: str,
                                                             prop: str, declared: str, expected: tuple) -> None:
    cluster_example = example if example.startswith("RedisEnterpriseUpdate") else "RedisEnterpriseUpdate.json"
    arm.seed_example(cluster_example, RG, CLUSTER, omit=(prop,) if example == cluster_example else (),
                     provisioningState="Succeeded", resourceState="Running")
    database_example = "RedisEnterpriseDatabasesGet.json" if example == cluster_example else example
    omit = (prop,) if example == database_example and prop in spec_example(example)["responses"]["200"]["body"]["properties"] else ()
    body = arm.seed_example(database_example, RG, CLUSTER, omit=omit)
    assert prop not in (arm.cluster(RG, CLUSTER) if example == cluster_example else body)["properties"]
    extra = "\nclustering_policy: auto" if "clustering_policy" not in declared else ""
    plan = plan_for(tmp_path, declared + extra)
    name, value = expected
    assert getattr(plan.live.settings, name) == value
    assert [c for c in plan.changes if c.setting == name] == []


def test_omitted_public_network_access_is_unknown_and_declaring_it_is_blocked(arm: ArmEmulator, tmp_path: Path) -> None:
    """No default: the spec returns null "only for clusters created using an old API version which do not have this
    property and cannot be set"."""
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, omit=("publicNetworkAccess",),
                     provisioningState="Succeeded", resourceState="Running")
    arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER)
    plan = plan_for(tmp_path, "public_network_access: false\nclustering_policy: auto")
    assert plan.live.settings.public_network_access is None
    (change,) = plan.changes
    assert (change.setting, change.action, change.before, change.after) == ("public_network_access", BLOCKED, None, False)
    assert "cannot be set" in change.reason and plan.refused
    assert plan_for(tmp_path, "clustering_policy: auto").changes == ()  # not declared: nothing to say


def test_omitted_access_keys_authentication_is_unknown_not_disabled(arm: ArmEmulator, tmp_path: Path) -> None:
    """The spec's "default": "Disabled" is a request default (DatabaseCreateProperties): a database an older API made
    may leave the property out with its keys enabled, so an access-key target is not refused on a guess."""
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, provisioningState="Succeeded", resourceState="Running")
    arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER, omit=("accessKeysAuthentication",))
    write(tmp_path, "clustering_policy: auto")
    targets = tmp_path / "targets.yaml"
    targets.write_text(targets.read_text().replace("auth: {type: entra-id}", "auth: {type: access-key, env: AMR_KEY}"))
    policy = toolkit.load(tmp_path)
    backend = open_backend(policy.target("amr"), credential=FakeCredential())
    try:
        plan = compute_plan(policy, policy.target("amr"), backend.read(), publish=False)
    finally:
        backend.close()
    assert plan.live.settings.access_keys_authentication is None
    assert "access-key-disabled" not in [f.code for f in plan.findings]
    (change,) = plan_for(tmp_path, "clustering_policy: auto\naccess_keys_authentication: true").changes
    assert (change.setting, change.action, change.before, change.after) == ("access_keys_authentication", UPDATE, None, True)


def test_the_examples_read_as_written(arm: ArmEmulator, tmp_path: Path) -> None:
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER)
    arm.seed_example("RedisEnterpriseDatabasesCreate.json", RG, CLUSTER)
    live = plan_for(tmp_path, "clustering_policy: auto").live
    s = live.settings
    assert (s.sku, s.capacity, s.minimum_tls_version, s.public_network_access) == ("EnterpriseFlash_F300", 9, "1.2", True)
    assert (s.clustering_policy, s.eviction_policy, s.persistence) == ("EnterpriseCluster", "AllKeysLRU", Persistence(aof="1s"))
    assert s.modules == (Module("RediSearch"), Module("RedisBloom", "ERROR_RATE 0.00 INITIAL_SIZE 400"),
                         Module("RedisTimeSeries", "RETENTION_POLICY 20"))
    assert live.cluster_status is not None and live.cluster_status.busy  # the example is mid-update


# -- 2. a SKU change sends only what the new SKU takes ---------------------------------------------

def _patches(arm: ArmEmulator) -> list:
    return [body for method, path, body in arm.writes() if method == "PATCH" and path.endswith(f"/{CLUSTER}")]


def test_sku_change_out_of_enterprise_does_not_carry_capacity(arm: ArmEmulator, tmp_path: Path) -> None:
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, provisioningState="Succeeded", resourceState="Running")
    arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER)
    write(tmp_path, "sku: Balanced_B5\nclustering_policy: auto")
    assert run(tmp_path, "apply") == 0
    (patch,) = _patches(arm)
    assert patch["sku"] == {"name": "Balanced_B5"}
    assert arm.cluster(RG, CLUSTER)["sku"] == {"name": "Balanced_B5"}
    assert plan_for(tmp_path, "sku: Balanced_B5\nclustering_policy: auto").changes == ()


def test_sku_change_within_a_family_keeps_the_capacity(arm: ArmEmulator, tmp_path: Path) -> None:
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, provisioningState="Succeeded", resourceState="Running")
    arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER)
    write(tmp_path, "sku: EnterpriseFlash_F700\nclustering_policy: auto")
    assert run(tmp_path, "apply") == 0
    assert _patches(arm)[0]["sku"] == {"name": "EnterpriseFlash_F700", "capacity": 9}


def test_capacity_with_a_sku_that_does_not_use_it(arm: ArmEmulator, tmp_path: Path, capsys) -> None:
    """Declared with such a SKU: a located validation error; with a live SKU that does not use it: blocked."""
    write(tmp_path, "sku: Balanced_B5\ncapacity: 2")
    assert main(["validate", str(tmp_path)]) == 1
    assert "targets.amr.instance.capacity: capacity is only used with Enterprise and EnterpriseFlash SKUs" in capsys.readouterr().err
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, provisioningState="Succeeded", resourceState="Running",
                     )
    arm.cluster(RG, CLUSTER)["sku"] = {"name": "Balanced_B5"}
    arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER)
    (change,) = plan_for(tmp_path, "capacity: 4\nclustering_policy: auto").changes
    assert (change.setting, change.action) == ("capacity", BLOCKED) and "Balanced_B5" in change.reason


# -- 3. a failed long-running operation says which resource failed and why ----------------------

FAILURE = {"code": "ResourceOperationFailure", "message": "The operation failed on the cache nodes."}


@pytest.mark.parametrize("style", LRO_STYLES)
@pytest.mark.parametrize("resource", ["cluster", "database", "new cluster", "new database"])
def test_failed_operation_names_the_resource_and_azures_error(arm: ArmEmulator, tmp_path: Path, capsys, style: str,
                                                             resource: str) -> None:
    arm.lro = style
    arm.resource_groups.add(RG)
    if resource != "new cluster":
        arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, provisioningState="Succeeded", resourceState="Running")
    if resource in ("cluster", "database"):
        arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER)
    instance = {"cluster": "minimum_tls_version: '1.2'\npublic_network_access: false",
                "new cluster": "sku: Balanced_B5\npublic_network_access: false"}.get(resource, "eviction_policy: NoEviction")
    write(tmp_path, instance + "\nclustering_policy: auto")
    arm.operation_error = FAILURE
    assert run(tmp_path, "apply") == 1
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error:" in x]
    what = {"cluster": "updating cluster cache1", "database": "updating database cache1/default",
            "new cluster": "creating cluster cache1", "new database": "creating database cache1/default"}[resource]
    assert f"Azure reports that {what} failed (" in line, line
    if style == "provisioning-state":  # the resource says Failed and nothing more; the line says where to look
        assert "(provisioningState Failed): the resource ended Failed" in line and "activity log" in line
    else:
        assert line.endswith("failed (ResourceOperationFailure): The operation failed on the cache nodes."), line
    assert "invalid status" not in err.lower() and "Traceback" not in err


@pytest.mark.parametrize("style", LRO_STYLES)
def test_every_lro_style_succeeds(arm: ArmEmulator, tmp_path: Path, style: str) -> None:
    arm.lro = style
    arm.seed_example("RedisEnterpriseUpdate.json", RG, CLUSTER, provisioningState="Succeeded", resourceState="Running")
    arm.seed_example("RedisEnterpriseDatabasesGet.json", RG, CLUSTER)
    write(tmp_path, "eviction_policy: NoEviction\nclustering_policy: auto\nminimum_tls_version: '1.2'")
    assert run(tmp_path, "apply") == 0
    assert arm.database(RG, CLUSTER)["properties"]["evictionPolicy"] == "NoEviction"
    assert plan_for(tmp_path, "eviction_policy: NoEviction\nclustering_policy: auto").changes == ()


def test_examples_dir_has_readme() -> None:
    readme = Path(__file__).parent / "azure_spec" / "README.md"
    assert readme.exists() and "verbatim" in readme.read_text().lower()
    json.loads((Path(__file__).parent / "azure_spec" / "2025-07-01" / "redisenterprise.json").read_text())
