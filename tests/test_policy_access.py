"""``instance.access_policy_assignments``: which Entra ID principals may connect to an Azure Managed Redis database.

Each item becomes an ARM access policy assignment (``Microsoft.Cache/redisEnterprise/databases/
accessPolicyAssignments``, redisenterprise 2025-07-01): ``properties.user.objectId`` is the principal's object
id, ``properties.accessPolicyName`` the policy (the API: 'Only "default" policy is supported for now'), and the
assignment name must match ``^[A-Za-z0-9]{1,60}$``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import toolkit
from tests.policytext import PAGE_NAMESPACE, load_policy
from toolkit.errors import ConfigurationError
from toolkit.policy import AccessPolicyAssignment
from toolkit.policy.model import ACCESS_POLICY_ASSIGNMENT_NAME, default_assignment_name
from toolkit.policy.secrets import Redactor

ORDERS = "6497c918-11ad-41e7-1b0f-7c518a87d0b0"
WORKER = "7497c918-11ad-41e7-1b0f-7c518a87d0b0"
CLIENT = "8497c918-11ad-41e7-1b0f-7c518a87d0b0"
TARGET = """
targets:
  amr:
    provider: {provider}
    host: cache1.westeurope.redis.azure.net
    azure: {{subscription: sub, resource_group: rg, cluster: cache1}}
    instance:
      eviction_policy: AllKeysLRU
      access_policy_assignments:
{items}"""


def target(items: str, provider: str = "azure-managed-redis") -> str:
    """A target file whose ``access_policy_assignments`` list is ``items`` (YAML list lines, 8 spaces in)."""
    text = TARGET.format(provider=provider, items=items)
    return text.replace("    azure: {subscription: sub, resource_group: rg, cluster: cache1}\n", "") if provider == "redis" else text


def issues(tmp_path: Path, text: str) -> list[str]:
    """The located issues of a policy set of PAGE_NAMESPACE and ``text``, as ``LINE:COL: PATH: message``."""
    with pytest.raises(toolkit.PolicyError) as caught:
        load_policy(tmp_path, PAGE_NAMESPACE, text)
    return sorted(re.sub(r"^.*policy1\.yaml:", "", str(issue)) for issue in caught.value.issues)


# -- the model -----------------------------------------------------------------------------------------

def test_assignments_are_loaded_with_their_defaults(tmp_path: Path) -> None:
    policy = load_policy(tmp_path, PAGE_NAMESPACE, target(f"""\
        - object_id: {WORKER}
          name: worker
          description: the nightly worker's managed identity
          client_id: {CLIENT.upper()}
        - object_id: {ORDERS.upper()}
          description: orders API
        - object_id: ${{BILLING_OBJECT_ID}}
          access_policy: default
          client_id: ${{BILLING_CLIENT_ID}}
"""))
    assert policy.target("amr").instance.access_policy_assignments == (  # in policy order: [i] is the item written i-th
        AccessPolicyAssignment(WORKER, "default", "worker", "the nightly worker's managed identity", CLIENT),
        AccessPolicyAssignment(ORDERS, "default", "6497c91811ad41e71b0f7c518a87d0b0", "orders API"),
        AccessPolicyAssignment("${BILLING_OBJECT_ID}", "default", None, "", "${BILLING_CLIENT_ID}"),
    )


def test_undeclared_assignments_are_not_managed(tmp_path: Path) -> None:
    policy = load_policy(tmp_path, PAGE_NAMESPACE, target("        []\n"))
    assert policy.target("amr").instance.access_policy_assignments == ()
    text = TARGET.format(provider="azure-managed-redis", items="").replace("      access_policy_assignments:\n", "")
    assert load_policy(tmp_path / "none", PAGE_NAMESPACE, text).target("amr").instance.access_policy_assignments is None


def test_the_default_name_is_the_object_id_without_hyphens() -> None:
    name = default_assignment_name(ORDERS.upper())
    assert name == "6497c91811ad41e71b0f7c518a87d0b0" and len(name) == 32
    assert ACCESS_POLICY_ASSIGNMENT_NAME.fullmatch(name)
    assert AccessPolicyAssignment(ORDERS).name == name
    assert AccessPolicyAssignment(ORDERS, name="orders").name == "orders"
    assert AccessPolicyAssignment("${ID}").name is None
    with pytest.raises(ValueError, match="not an Entra object id"):
        default_assignment_name("6497c918")


def test_resolved_reads_the_environment_and_derives_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_OBJECT_ID", ORDERS.upper())
    assert AccessPolicyAssignment("${BILLING_OBJECT_ID}", description="billing").resolved("targets.amr") == \
        AccessPolicyAssignment(ORDERS, "default", "6497c91811ad41e71b0f7c518a87d0b0", "billing")
    assert AccessPolicyAssignment("${BILLING_OBJECT_ID}", name="billing").resolved("targets.amr").name == "billing"
    assert AccessPolicyAssignment(f"${{UNSET_OBJECT_ID:-{WORKER}}}").resolved("t").object_id == WORKER
    assert AccessPolicyAssignment(ORDERS).resolved("t") == AccessPolicyAssignment(ORDERS)


def test_resolved_refuses_a_missing_variable_or_a_value_that_is_no_guid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_OBJECT_ID", raising=False)
    with pytest.raises(ConfigurationError, match="UNSET_OBJECT_ID is not set"):
        AccessPolicyAssignment("${UNSET_OBJECT_ID}").resolved("targets.amr")
    monkeypatch.setenv("BAD_OBJECT_ID", "orders-api-client-secret")
    with pytest.raises(ConfigurationError) as bad:
        AccessPolicyAssignment("${BAD_OBJECT_ID}").resolved("targets.amr")
    assert "${BAD_OBJECT_ID}" in str(bad.value) and "is not an Entra object id" in str(bad.value)
    assert "orders-api-client-secret" not in str(bad.value)  # values read from the environment are never printed


def test_an_object_id_read_from_the_environment_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_OBJECT_ID", ORDERS)
    policy = load_policy(tmp_path, PAGE_NAMESPACE, target("        - object_id: ${BILLING_OBJECT_ID}\n"))
    assert Redactor(policy.target("amr"))(f"principal {ORDERS} has no access") == "principal ${BILLING_OBJECT_ID} has no access"


def test_assignments_do_not_change_the_keyspace_digest(tmp_path: Path) -> None:
    without = load_policy(tmp_path / "a", PAGE_NAMESPACE, TARGET.format(provider="azure-managed-redis", items="")
                          .replace("      access_policy_assignments:\n", ""))
    with_them = load_policy(tmp_path / "b", PAGE_NAMESPACE, target(f"        - object_id: {ORDERS}\n"))
    assert with_them.digest == without.digest
    assert "access_policy" not in str(with_them.document) and ORDERS not in str(with_them.document)


# -- located mistakes ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["6497c918-11ad-41e7-1b0f", "6497c91811ad41e71b0f7c518a87d0b0", "orders-api",
                                   "{6497c918-11ad-41e7-1b0f-7c518a87d0b0}", "${ID:-not-a-guid}", "$ID"])
def test_an_object_id_that_is_no_guid(tmp_path: Path, value: str) -> None:
    assert issues(tmp_path, target(f"        - object_id: '{value}'\n")) == [
        f"10:22: targets.amr.instance.access_policy_assignments[0].object_id: '{value}' is not an Entra object id "
        "(a GUID such as 6497c918-11ad-41e7-1b0f-7c518a87d0b0) or an ${ENV_VAR} reference"]


def test_an_item_without_object_id_or_with_an_unknown_field(tmp_path: Path) -> None:
    assert issues(tmp_path, target(f"        - name: orders\n        - object_id: {ORDERS}\n          objectId: x\n")) == [
        "10:11: targets.amr.instance.access_policy_assignments[0]: missing required field 'object_id'",
        "12:11: targets.amr.instance.access_policy_assignments[1].objectId: unknown field 'objectId'; did you mean "
        "'object_id'? (allowed: access_policy, client_id, description, name, object_id)",
    ]


def test_an_access_policy_other_than_default(tmp_path: Path) -> None:
    assert issues(tmp_path, target(f"        - object_id: {ORDERS}\n          access_policy: Data Owner\n")) == [
        "11:26: targets.amr.instance.access_policy_assignments[0].access_policy: 'Data Owner' is not an access policy "
        "name (letters, digits and inner hyphens)"]
    assert issues(tmp_path, target(f"        - object_id: {ORDERS}\n          access_policy: data-reader\n")) == [
        "11:26: targets.amr.instance.access_policy_assignments[0].access_policy: access policy 'data-reader' does not "
        "exist: Azure Managed Redis has only 'default' for now (its API: 'Only \"default\" policy is supported for now'); "
        "write default or leave access_policy out"]


@pytest.mark.parametrize("name", [ORDERS, "orders_api", "x" * 61, ""])
def test_a_name_outside_the_arm_pattern(tmp_path: Path, name: str) -> None:
    assert issues(tmp_path, target(f"        - object_id: {ORDERS}\n          name: '{name}'\n")) == [
        f"11:17: targets.amr.instance.access_policy_assignments[0].name: '{name}' is not an assignment name of 1 to 60 "
        "letters and digits (no hyphens)"]


def test_duplicate_object_ids_in_one_target(tmp_path: Path) -> None:
    assert issues(tmp_path, target(f"""\
        - object_id: {ORDERS}
        - object_id: {WORKER}
        - object_id: {ORDERS.upper()}
          name: other
        - object_id: ${{BILLING}}
        - object_id: ${{BILLING}}
""")) == [
        f"12:22: targets.amr.instance.access_policy_assignments[2].object_id: object id '{ORDERS.upper()}' is already "
        "assigned by access_policy_assignments[0] (line 10): one assignment per principal",
        "15:22: targets.amr.instance.access_policy_assignments[4].object_id: object id '${BILLING}' is already assigned "
        "by access_policy_assignments[3] (line 14): one assignment per principal",
    ]


def test_duplicate_names_in_one_target(tmp_path: Path) -> None:
    assert issues(tmp_path, target(f"""\
        - object_id: {ORDERS}
          name: Orders
        - object_id: {WORKER}
          name: orders
        - object_id: ${{BILLING}}
          name: 7497c91811ad41e71b0f7c518a87d0b0
        - object_id: 7497C918-11ad-41e7-1b0f-7c518a87d0b1
""")) == [
        "13:17: targets.amr.instance.access_policy_assignments[1].name: assignment name 'orders' is already used by "
        "access_policy_assignments[0] (line 10); names are unique within a database",
    ]
    assert issues(tmp_path / "derived", target(f"""\
        - object_id: ${{BILLING}}
          name: 6497c91811ad41e71b0f7c518a87d0b0
        - object_id: {ORDERS}
""")) == [
        "12:22: targets.amr.instance.access_policy_assignments[1].object_id: assignment name "
        "'6497c91811ad41e71b0f7c518a87d0b0' (derived from this object id) is already used by "
        "access_policy_assignments[0] (line 10); names are unique within a database",
    ]


def test_assignments_on_a_plain_redis_target_are_refused(tmp_path: Path) -> None:
    assert issues(tmp_path, target(f"        - object_id: {ORDERS}\n", provider="redis")) == [
        "8:7: targets.amr.instance.access_policy_assignments: access_policy_assignments is an Azure setting; a plain "
        "redis target manages only clustering_policy, eviction_policy, persistence"]


def test_assignments_on_azure_cache_for_redis_are_refused(tmp_path: Path) -> None:
    assert issues(tmp_path, target(f"        - object_id: {ORDERS}\n", provider="azure-cache-for-redis")) == [
        "9:7: targets.amr.instance.access_policy_assignments: access_policy_assignments applies to azure-managed-redis "
        "targets only: Azure Cache for Redis has other access policies (Data Owner, Data Contributor, Data Reader), which "
        "the toolkit does not manage"]


def test_a_client_id_is_a_guid_or_a_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert issues(tmp_path, target(f"        - object_id: {ORDERS}\n          client_id: orders-api\n")) == [
        "11:22: targets.amr.instance.access_policy_assignments[0].client_id: 'orders-api' is not an application (client) "
        "id (a GUID) or an ${ENV_VAR} reference"]
    monkeypatch.setenv("ORDERS_CLIENT_ID", WORKER)
    policy = load_policy(tmp_path / "ok", PAGE_NAMESPACE, target(f"        - object_id: {ORDERS}\n"
                                                                  "          client_id: ${ORDERS_CLIENT_ID}\n"))
    (item,) = policy.target("amr").instance.access_policy_assignments or ()
    assert item.client_id == "${ORDERS_CLIENT_ID}" and item.resolved("t").client_id == "${ORDERS_CLIENT_ID}"
    assert Redactor(policy.target("amr"))(f"client {WORKER}") == "client ${ORDERS_CLIENT_ID}"


def test_the_name_derived_from_a_referenced_object_id_is_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_OBJECT_ID", ORDERS.upper())
    policy = load_policy(tmp_path, PAGE_NAMESPACE, target("        - object_id: ${BILLING_OBJECT_ID}\n"))
    assert Redactor(policy.target("amr"))("accessPolicyAssignments/6497c91811ad41e71b0f7c518a87d0b0 failed") == \
        "accessPolicyAssignments/${BILLING_OBJECT_ID} failed"
