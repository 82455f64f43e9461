"""The ARM emulator's access policy assignments, driven through the real azure-mgmt-redisenterprise client.

What it must reproduce (azure-rest-api-specs redisenterprise 2025-07-01, ``AccessPolicyAssignment_*``): PUT
answering 200/201, followed to its end (final-state-via original-uri); DELETE answering 202 with
``Azure-AsyncOperation`` and ``Location`` (final-state-via azure-async-operation) or 204; a pageable list;
names matching ``^[A-Za-z0-9]{1,60}$``; ``properties.accessPolicyName`` and ``properties.user`` required.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.arm_emulator import API_VERSION, ASSIGNMENT_TYPE, SUBSCRIPTION, ArmEmulator, FakeCredential

RG, CLUSTER = "rg-test", "cache1"
OBJECT_ID = "6497c918-11ad-41e7-1b0f-7c518a87d0b0"
OTHER_ID = "7497c918-11ad-41e7-1b0f-7c518a87d0b0"
CALL = {"enforce_https": False}  # the loopback emulator speaks http; the provisioner passes the same per call
DB_PATH = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Cache/redisEnterprise/{CLUSTER}/databases/default"


@pytest.fixture
def arm() -> Iterator[ArmEmulator]:
    emulator = ArmEmulator().start()
    emulator.add_cluster(RG, CLUSTER)
    emulator.add_database(RG, CLUSTER)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def client(arm: ArmEmulator) -> Any:
    from azure.mgmt.redisenterprise import RedisEnterpriseManagementClient

    return RedisEnterpriseManagementClient(FakeCredential(), SUBSCRIPTION, base_url=arm.base_url,
                                           retry_total=0, polling_interval=0)


def assignment(object_id: str | None = OBJECT_ID, policy: str | None = "default") -> Any:
    from azure.mgmt.redisenterprise import models

    return models.AccessPolicyAssignment(access_policy_name=policy,
                                         user=models.AccessPolicyAssignmentPropertiesUser(object_id=object_id))


def polls(arm: ArmEmulator) -> int:
    return sum(1 for method, path, _ in arm.requests if method == "GET" and "/operationsStatus/" in path)


def test_list_is_one_page_of_the_database_s_assignments(arm: ArmEmulator, client: Any) -> None:
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", OBJECT_ID)
    arm.add_access_policy_assignment(RG, CLUSTER, "76e670c5-eaf4-4674-8a48-2def9d37929c", OTHER_ID)  # a portal-made name
    arm.add_database(RG, CLUSTER, "other")
    arm.add_access_policy_assignment(RG, CLUSTER, "elsewhere", OBJECT_ID, db="other")

    found = list(client.access_policy_assignment.list(RG, CLUSTER, "default", **CALL))

    assert sorted((a.name, a.user.object_id, a.access_policy_name, a.provisioning_state) for a in found) == [
        ("76e670c5-eaf4-4674-8a48-2def9d37929c", OTHER_ID, "default", "Succeeded"),
        ("orders", OBJECT_ID, "default", "Succeeded")]
    assert {a.type for a in found} == {ASSIGNMENT_TYPE}
    assert [a.id for a in found if a.name == "orders"] == [f"{DB_PATH}/accessPolicyAssignments/orders"]
    assert [(m, p) for m, p, _ in arm.requests] == [("GET", f"{DB_PATH}/accessPolicyAssignments")]


def test_list_without_assignments_and_in_pages(arm: ArmEmulator, client: Any) -> None:
    assert list(client.access_policy_assignment.list(RG, CLUSTER, "default", **CALL)) == []
    for i in range(5):
        arm.add_access_policy_assignment(RG, CLUSTER, f"app{i}", f"{i}497c918-11ad-41e7-1b0f-7c518a87d0b0")
    arm.assignment_page_size = 2
    names = [a.name for a in client.access_policy_assignment.list(RG, CLUSTER, "default", **CALL)]
    assert names == ["app0", "app1", "app2", "app3", "app4"]
    assert sum(1 for m, p, _ in arm.requests if p.endswith("/accessPolicyAssignments")) == 1 + 3  # the empty list, 3 pages


def test_get(arm: ArmEmulator, client: Any) -> None:
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", OBJECT_ID)
    got = client.access_policy_assignment.get(RG, CLUSTER, "default", "ORDERS", **CALL)  # ARM names ignore case
    assert (got.name, got.type, got.user.object_id, got.access_policy_name, got.provisioning_state) == (
        "orders", ASSIGNMENT_TYPE, OBJECT_ID, "default", "Succeeded")


def test_create_is_followed_to_its_end(arm: ArmEmulator, client: Any) -> None:
    arm.polls = 2
    poller = client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi", assignment(), **CALL)
    assert arm.access_policy_assignment(RG, CLUSTER, "ordersapi")["properties"]["provisioningState"] == "Creating"
    result = poller.result()

    assert (result.name, result.user.object_id, result.access_policy_name, result.provisioning_state) == (
        "ordersapi", OBJECT_ID, "default", "Succeeded")
    put = [(m, p, b) for m, p, b in arm.requests if m == "PUT"]
    assert put == [("PUT", f"{DB_PATH}/accessPolicyAssignments/ordersapi",
                    {"properties": {"accessPolicyName": "default", "user": {"objectId": OBJECT_ID}}})]
    assert polls(arm) == 3  # two InProgress, then Succeeded; then the final GET of the original URI
    assert arm.requests[-1][:2] == ("GET", f"{DB_PATH}/accessPolicyAssignments/ordersapi")


def test_update_answers_200_and_changes_the_assignment(arm: ArmEmulator, client: Any) -> None:
    arm.add_access_policy_assignment(RG, CLUSTER, "ordersapi", OBJECT_ID)
    result = client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi",
                                                                 assignment(OTHER_ID), **CALL).result()
    assert (result.user.object_id, result.provisioning_state) == (OTHER_ID, "Succeeded")
    assert arm.access_policy_assignment(RG, CLUSTER, "ordersapi")["properties"]["user"] == {"objectId": OTHER_ID}


@pytest.mark.parametrize("style", ["azure-async-operation", "provisioning-state", "location"])
def test_create_in_each_lro_style(arm: ArmEmulator, client: Any, style: str) -> None:
    """The spec lets this PUT answer only 200/201: under ``lro = "location"`` it keeps Azure-AsyncOperation."""
    arm.lro = style
    result = client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi", assignment(),
                                                                 **CALL).result()
    assert result.provisioning_state == "Succeeded"


def test_failed_creation_ends_failed(arm: ArmEmulator, client: Any) -> None:
    arm.operation_error = {"code": "InternalServerError", "message": "boom"}
    with pytest.raises(HttpResponseError, match="boom"):
        client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi", assignment(), **CALL).result()
    assert arm.access_policy_assignment(RG, CLUSTER, "ordersapi")["properties"]["provisioningState"] == "Failed"


def test_delete_is_a_202_followed_to_its_end(arm: ArmEmulator, client: Any) -> None:
    arm.add_access_policy_assignment(RG, CLUSTER, "ordersapi", OBJECT_ID)
    poller = client.access_policy_assignment.begin_delete(RG, CLUSTER, "default", "ordersapi", **CALL)
    assert arm.access_policy_assignment(RG, CLUSTER, "ordersapi")["properties"]["provisioningState"] == "Deleting"
    assert poller.result() is None
    assert arm.access_policy_assignment(RG, CLUSTER, "ordersapi") is None
    assert arm.requests[0][0] == "DELETE" and polls(arm) == len(arm.requests) - 1 == 2  # InProgress, Succeeded; no final GET
    with pytest.raises(ResourceNotFoundError):
        client.access_policy_assignment.get(RG, CLUSTER, "default", "ordersapi", **CALL)


def test_delete_of_a_missing_assignment_is_a_204(arm: ArmEmulator, client: Any) -> None:
    assert client.access_policy_assignment.begin_delete(RG, CLUSTER, "default", "nothere", **CALL).result() is None
    assert [m for m, _, _ in arm.requests] == ["DELETE"]


def test_missing_assignment_database_or_group_is_a_404(arm: ArmEmulator, client: Any) -> None:
    ops = client.access_policy_assignment
    with pytest.raises(ResourceNotFoundError) as missing:
        ops.get(RG, CLUSTER, "default", "nothere", **CALL)
    assert missing.value.error.code == "ResourceNotFound" and "accessPolicyAssignments/nothere" in str(missing.value)
    with pytest.raises(ResourceNotFoundError) as no_db:
        list(ops.list(RG, CLUSTER, "nodb", **CALL))
    assert no_db.value.error.code == "ResourceNotFound" and "databases/nodb" in str(no_db.value)
    for call in (lambda: ops.get(RG, "nocluster", "default", "orders", **CALL),
                 lambda: ops.begin_create_update(RG, CLUSTER, "nodb", "orders", assignment(), **CALL),
                 lambda: ops.begin_delete(RG, CLUSTER, "nodb", "orders", **CALL)):
        with pytest.raises(ResourceNotFoundError):
            call()
    with pytest.raises(ResourceNotFoundError) as no_group:
        ops.get("rg-missing", CLUSTER, "default", "orders", **CALL)
    assert no_group.value.error.code == "ResourceGroupNotFound"
    assert arm.assignments == {}


@pytest.mark.parametrize("name", [OBJECT_ID, "orders_api", "x" * 61])
def test_a_name_outside_the_spec_pattern_is_a_400(arm: ArmEmulator, client: Any, name: str) -> None:
    with pytest.raises(HttpResponseError) as bad:
        client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", name, assignment(), **CALL)
    assert bad.value.status_code == 400 and bad.value.error.code == "InvalidResourceName"
    assert arm.assignments == {}


@pytest.mark.parametrize("body", [assignment(object_id=None), assignment(policy=None),
                                  {"properties": {"accessPolicyName": "default"}}, {}],
                         ids=["no-object-id", "no-policy", "no-user", "empty"])
def test_a_body_without_its_required_fields_is_a_400(arm: ArmEmulator, client: Any, body: Any) -> None:
    with pytest.raises(HttpResponseError) as bad:
        client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi", body, **CALL)
    assert bad.value.status_code == 400 and bad.value.error.code == "InvalidRequestBody"
    assert arm.assignments == {}


def test_an_unknown_access_policy_is_a_400(arm: ArmEmulator, client: Any) -> None:
    with pytest.raises(HttpResponseError) as bad:
        client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi", assignment(policy="reader"),
                                                            **CALL)
    assert bad.value.status_code == 400 and "only 'default'" in str(bad.value)


def test_a_second_assignment_for_one_principal_is_refused(arm: ArmEmulator, client: Any) -> None:
    arm.add_access_policy_assignment(RG, CLUSTER, OBJECT_ID, OBJECT_ID)  # as Terraform and the portal name it
    with pytest.raises(ResourceExistsError) as conflict:
        client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi",
                                                            assignment(OBJECT_ID.upper()), **CALL)
    assert conflict.value.status_code == 409 and OBJECT_ID in str(conflict.value)


def test_read_only_fields_of_a_put_body_are_ignored(arm: ArmEmulator, client: Any) -> None:
    import json

    import requests

    body = {"id": "/elsewhere", "name": "other", "type": "Other/type",
            "properties": {"provisioningState": "Failed", "accessPolicyName": "default", "user": {"objectId": OBJECT_ID}}}
    answer = requests.put(f"{arm.base_url}{DB_PATH}/accessPolicyAssignments/ordersapi?api-version={API_VERSION}",
                          data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=5)
    assert answer.status_code == 201 and "Azure-AsyncOperation" in answer.headers
    created = answer.json()
    assert (created["id"], created["name"], created["type"], created["properties"]["provisioningState"]) == (
        f"{DB_PATH}/accessPolicyAssignments/ordersapi", "ordersapi", ASSIGNMENT_TYPE, "Creating")


def test_delete_answers_202_with_both_polling_headers(arm: ArmEmulator) -> None:
    import requests

    arm.add_access_policy_assignment(RG, CLUSTER, "ordersapi", OBJECT_ID)
    answer = requests.delete(f"{arm.base_url}{DB_PATH}/accessPolicyAssignments/ordersapi?api-version={API_VERSION}", timeout=5)
    assert answer.status_code == 202 and answer.content == b""
    assert "/operationsStatus/" in answer.headers["Azure-AsyncOperation"] and "Location" in answer.headers


def test_the_emulator_follows_the_vendored_specification(arm: ArmEmulator, client: Any) -> None:
    """Name pattern, required fields, status codes and body shapes: as in tests/azure_spec (redisenterprise 2025-07-01)."""
    import json
    from pathlib import Path

    from tests.arm_emulator import ASSIGNMENT_NAME

    spec_dir = Path(__file__).parent / "azure_spec" / "2025-07-01"
    spec = json.loads((spec_dir / "redisenterprise.json").read_text())
    assert spec["parameters"]["AccessPolicyAssignmentNameParameter"]["pattern"] == ASSIGNMENT_NAME.pattern
    assert sorted(spec["definitions"]["AccessPolicyAssignmentProperties"]["required"]) == ["accessPolicyName", "user"]
    item = next(v for k, v in spec["paths"].items() if k.endswith("/accessPolicyAssignments/{accessPolicyAssignmentName}"))
    assert (sorted(item["put"]["responses"]), item["put"]["x-ms-long-running-operation-options"]["final-state-via"]) == (
        ["200", "201", "default"], "original-uri")
    assert (sorted(item["delete"]["responses"]), item["delete"]["x-ms-long-running-operation-options"]["final-state-via"]) == (
        ["202", "204", "default"], "azure-async-operation")

    example = json.loads((spec_dir / "examples" / "RedisEnterpriseAccessPolicyAssignmentCreateUpdate.json").read_text())
    client.access_policy_assignment.begin_create_update(RG, CLUSTER, "default", "ordersapi", assignment(), **CALL).result()
    body = arm.access_policy_assignment(RG, CLUSTER, "ordersapi")
    for status in ("200", "201"):
        shown = example["responses"][status]["body"]
        assert sorted(body) == sorted(shown) and sorted(body["properties"]) == sorted(shown["properties"])
        assert body["type"] == shown["type"] and body["properties"]["accessPolicyName"] == shown["properties"]["accessPolicyName"]
    listed = json.loads((spec_dir / "examples" / "RedisEnterpriseAccessPolicyAssignmentsList.json").read_text())
    assert sorted(listed["responses"]["200"]["body"]) == ["value"]  # one page, no nextLink: as the emulator answers
