"""plan/apply of Entra ID access policy assignments (``instance.access_policy_assignments``) on Azure Managed Redis.

Through the CLI and the real azure-mgmt-redisenterprise client against the loopback ARM emulator, as
tests/test_provision_azure.py does. Live assignments are matched to declared ones by ``user.objectId`` (the
data-plane user), never by name: the portal and Terraform name them by the hyphenated object id. Undeclared
ones are only shown unless ``--remove-undeclared-access``. ``--no-publish`` keeps the data plane out of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.arm_emulator import SUBSCRIPTION, ArmEmulator, spec_example
from tests.policytext import PAGE_NAMESPACE
from toolkit.cli import main

RG, CLUSTER = "rg-test", "cache1"
ORDERS = "6497c918-11ad-41e7-1b0f-7c518a87d0b0"
WORKER = "7497c918-11ad-41e7-1b0f-7c518a87d0b0"
STRANGER = "9997c918-11ad-41e7-1b0f-7c518a87d0b0"
CLIENT = "8497c918-11ad-41e7-1b0f-7c518a87d0b0"
SECRET_ID = "5d1a6c8e-0b7e-4f3a-9c2d-7e4b1a2f3c4d"
"""An object id only the environment holds: it must never be printed."""
TARGETS = """
targets:
  amr:
    provider: azure-managed-redis
    host: 127.0.0.1
{auth}    azure:
      subscription: {subscription}
      resource_group: {rg}
      cluster: {cluster}
      location: westeurope
    instance:
      sku: Balanced_B5
      public_network_access: false
      clustering_policy: OSSCluster
      eviction_policy: AllKeysLRU
{assignments}"""
ENTRA = "    auth: {type: entra-id, identity: managed-identity, client_id: " + CLIENT + "}\n"


def items(*entries: str) -> str:
    """An ``access_policy_assignments`` list; each entry is the YAML mapping body of one item (``object_id: ...``)."""
    if not entries:
        return "      access_policy_assignments: []\n"
    return "      access_policy_assignments:\n" + "".join(
        "        - " + "\n          ".join(entry.split("\n")) + "\n" for entry in entries)




class Policy:
    def __init__(self, directory: Path):
        self.directory = directory
        self.file = directory / "targets.yaml"

    def write(self, assignments: str = "", auth: str = "") -> Policy:
        (self.directory / "ns.yaml").write_text(PAGE_NAMESPACE)
        self.file.write_text(TARGETS.format(subscription=SUBSCRIPTION, rg=RG, cluster=CLUSTER, auth=auth,
                                            assignments=assignments))
        return self

    def run(self, *args: str) -> int:
        return main([args[0], str(self.directory), "--target", "amr", "--no-publish", *args[1:]])


@pytest.fixture
def amr(tmp_path: Path) -> Policy:
    return Policy(tmp_path)


def seed(arm: ArmEmulator, *, database: bool = True) -> None:
    """A cluster (and database) matching the policy's instance settings."""
    arm.add_cluster(RG, CLUSTER, hostName="127.0.0.1")
    if database:
        arm.add_database(RG, CLUSTER, evictionPolicy="AllKeysLRU")


def assignment_path(name: str) -> str:
    return f"{arm_db()}/accessPolicyAssignments/{name}"


def arm_db() -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Cache/redisEnterprise/{CLUSTER}/databases/default"


def live_assignments(arm: ArmEmulator) -> dict[str, tuple[str, str]]:
    """name -> (object id, access policy) of the database's assignments in the emulator."""
    return {body["name"]: (body["properties"]["user"]["objectId"], body["properties"]["accessPolicyName"])
            for body in arm.assignments.values()}


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


# -- create ------------------------------------------------------------------------------------------

def test_missing_assignments_are_planned_created_and_then_match(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    amr.write(items(f"object_id: {ORDERS}", f"object_id: {WORKER.upper()}\nname: worker\ndescription: nightly worker"))
    assert amr.run("plan", "--detailed-exitcode") == 2
    out = capsys.readouterr().out
    assert (f"  + access_policy_assignment.6497c91811ad41e71b0f7c518a87d0b0\n      object_id = \"{ORDERS}\"\n"
            f"      access_policy = \"default\"\n") in out
    assert f"  + access_policy_assignment.worker\n      object_id = \"{WORKER}\"\n" in out
    assert "Plan: 2 to create, 0 to update, 0 blocked, 0 errors." in out
    assert arm.writes() == []

    assert amr.run("apply") == 0
    captured = capsys.readouterr()
    example = spec_example("RedisEnterpriseAccessPolicyAssignmentCreateUpdate.json")["parameters"]["parameters"]
    assert arm.writes() == [
        ("PUT", assignment_path("6497c91811ad41e71b0f7c518a87d0b0"),
         {"properties": {"accessPolicyName": "default", "user": {"objectId": ORDERS}}}),
        ("PUT", assignment_path("worker"), {"properties": {"accessPolicyName": "default", "user": {"objectId": WORKER}}}),
    ]
    for _, _, body in arm.writes():  # the shape of the specification's own request example
        assert sorted(body) == sorted(example) and sorted(body["properties"]) == sorted(example["properties"])
        assert sorted(body["properties"]["user"]) == sorted(example["properties"]["user"])
    assert live_assignments(arm) == {"6497c91811ad41e71b0f7c518a87d0b0": (ORDERS, "default"), "worker": (WORKER, "default")}
    assert {b["properties"]["provisioningState"] for b in arm.assignments.values()} == {"Succeeded"}
    assert f"granted data access to {ORDERS} (assignment 6497c91811ad41e71b0f7c518a87d0b0)" in captured.out
    assert f"granted data access to {WORKER} (assignment worker)" in captured.out
    assert "Apply complete: 2 instance changes made." in captured.out
    assert f"creating access policy assignment worker (principal {WORKER}): Succeeded" in captured.err

    assert amr.run("plan", "--detailed-exitcode") == 0
    assert "No changes. The instance matches the policy." in capsys.readouterr().out


def test_an_assignment_named_by_the_portal_matches_by_object_id(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, ORDERS, ORDERS.upper())  # the portal's name: the hyphenated object id
    amr.write(items(f"object_id: {ORDERS}\nname: orders"))  # another name: only the object id counts
    assert amr.run("plan", "--detailed-exitcode") == 0
    out = capsys.readouterr().out
    assert "No changes." in out and "warning" not in out
    assert amr.run("apply") == 0
    assert arm.writes() == []


def test_a_new_database_gets_its_assignments_after_it(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm, database=False)
    amr.write(items(f"object_id: {ORDERS}"))
    assert amr.run("plan", "--detailed-exitcode") == 2
    out = capsys.readouterr().out
    assert out.index("  + database\n") < out.index("  + access_policy_assignment.6497c91811ad41e71b0f7c518a87d0b0\n")
    assert "note: created once the new database exists" in out
    assert not any(p.endswith("/accessPolicyAssignments") for _, p, _ in arm.requests)  # nothing to list yet

    assert amr.run("apply") == 0
    assert [(m, p.rsplit("/", 2)[-2:]) for m, p, _ in arm.writes()] == [
        ("PUT", ["databases", "default"]), ("PUT", ["accessPolicyAssignments", "6497c91811ad41e71b0f7c518a87d0b0"])]
    assert live_assignments(arm) == {"6497c91811ad41e71b0f7c518a87d0b0": (ORDERS, "default")}
    capsys.readouterr()
    assert amr.run("plan", "--detailed-exitcode") == 0


def test_another_access_policy_is_updated_under_the_live_name(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS, access_policy="reader")
    amr.write(items(f"object_id: {ORDERS}"))
    assert amr.run("plan", "--detailed-exitcode") == 2
    assert (f'  ~ access_policy_assignment.orders\n      object_id = "{ORDERS}"\n'
            f'      access_policy = "reader" -> "default"\n') in capsys.readouterr().out
    assert amr.run("apply") == 0
    assert arm.writes() == [("PUT", assignment_path("orders"),
                             {"properties": {"accessPolicyName": "default", "user": {"objectId": ORDERS}}})]
    assert live_assignments(arm) == {"orders": (ORDERS, "default")}
    assert f"changed the access policy of {ORDERS} to default (assignment orders)" in capsys.readouterr().out


# -- undeclared assignments --------------------------------------------------------------------------

def test_undeclared_assignments_are_warned_about_and_kept(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS)
    arm.add_access_policy_assignment(RG, CLUSTER, STRANGER, STRANGER)
    amr.write(items(f"object_id: {ORDERS}"))
    assert amr.run("plan", "--detailed-exitcode") == 0
    out = capsys.readouterr().out
    assert (f"warning: [undeclared-access-policy-assignment] 1 access policy assignment of the database is not declared "
            f"in access_policy_assignments: {STRANGER} (object id {STRANGER}); kept, with their data-plane access (plan and "
            f"apply with --remove-undeclared-access delete them)") in out
    assert "No changes." in out
    assert amr.run("apply") == 0
    assert arm.writes() == [] and set(live_assignments(arm)) == {"orders", STRANGER}


def test_remove_undeclared_access_deletes_them(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS)
    arm.add_access_policy_assignment(RG, CLUSTER, STRANGER, STRANGER)  # a portal-made name, hyphens and all
    amr.write(items(f"object_id: {ORDERS}"))
    assert amr.run("plan", "--detailed-exitcode", "--remove-undeclared-access") == 2
    out = capsys.readouterr().out
    assert "Symbols: ~ update in place, + create, - delete, ! blocked (not applied)" in out
    assert (f"  - access_policy_assignment.{STRANGER}\n      object_id = \"{STRANGER}\"\n      access_policy = \"default\"\n"
            f"      note: data-plane access loss: principal {STRANGER} can no longer connect with Entra ID\n") in out
    assert "Plan: 0 to create, 0 to update, 1 to delete, 0 blocked, 0 errors." in out
    assert "undeclared-access-policy-assignment" not in out  # planned for deletion instead

    assert amr.run("apply", "--remove-undeclared-access") == 0
    captured = capsys.readouterr()
    assert arm.writes() == [("DELETE", assignment_path(STRANGER), None)]
    assert set(live_assignments(arm)) == {"orders"}
    assert f"removed data access of {STRANGER} (assignment {STRANGER})" in captured.out
    assert f"deleting access policy assignment {STRANGER} (principal {STRANGER}): Succeeded" in captured.err
    assert amr.run("plan", "--detailed-exitcode", "--remove-undeclared-access") == 0


def test_an_empty_list_with_the_flag_deletes_every_assignment(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS)
    arm.add_access_policy_assignment(RG, CLUSTER, "worker", WORKER)
    amr.write(items())
    assert amr.run("plan", "--remove-undeclared-access") == 0
    out = capsys.readouterr().out
    assert out.count("access_policy_assignments is empty, so every assignment of the database is deleted") == 2
    assert amr.run("apply", "--remove-undeclared-access") == 0
    assert sorted(m for m, _, _ in arm.writes()) == ["DELETE", "DELETE"] and arm.assignments == {}


def test_without_the_field_assignments_are_not_managed(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS)
    amr.write()
    for flag in ((), ("--remove-undeclared-access",)):
        assert amr.run("plan", "--detailed-exitcode", *flag) == 0
        out = capsys.readouterr().out
        assert "No changes." in out and "access_policy_assignment" not in out and "warning" not in out
        assert amr.run("apply", *flag) == 0
    assert arm.writes() == [] and set(live_assignments(arm)) == {"orders"}


def test_a_saved_plan_applies_exactly_its_assignment_changes(arm: ArmEmulator, amr: Policy, tmp_path: Path, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, STRANGER, STRANGER)
    amr.write(items(f"object_id: {ORDERS}"))
    saved = str(tmp_path / "plan.json")
    assert amr.run("plan", "--remove-undeclared-access", "--out", saved) == 0
    assert main(["apply", saved]) == 0
    assert [m for m, _, _ in arm.writes()] == ["PUT", "DELETE"]
    assert live_assignments(arm) == {"6497c91811ad41e71b0f7c518a87d0b0": (ORDERS, "default")}

    arm.add_access_policy_assignment(RG, CLUSTER, "late", WORKER)  # the instance moved after the plan was made
    assert amr.run("plan", "--out", saved) == 0
    arm.add_access_policy_assignment(RG, CLUSTER, "later", STRANGER)
    capsys.readouterr()
    assert main(["apply", saved]) == 1
    assert "the live instance changed since the plan was made: access_policy_assignments" in capsys.readouterr().err


# -- ${VAR} object ids -------------------------------------------------------------------------------

def test_an_object_id_from_the_environment_is_used_but_never_printed(arm: ArmEmulator, amr: Policy, capsys,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_OBJECT_ID", SECRET_ID.upper())
    seed(arm)
    amr.write(items("object_id: ${APP_OBJECT_ID}"))
    hidden = (SECRET_ID, SECRET_ID.replace("-", ""))  # the value, and the assignment name derived from it

    def output(*args: str) -> str:
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err == ""
        amr.run(*args)
        captured = capsys.readouterr()
        assert not any(h in (captured.out + captured.err).lower() for h in hidden), captured
        return captured.out

    for fmt in ("text", "json", "markdown", "github"):
        text = output("plan", "--output", fmt)
        assert "${APP_OBJECT_ID}" in text
    assert '  + access_policy_assignment.${APP_OBJECT_ID}\n      object_id = "${APP_OBJECT_ID}"' in output("plan")

    text = output("apply")
    assert "granted data access to ${APP_OBJECT_ID} (assignment ${APP_OBJECT_ID})" in text
    assert live_assignments(arm) == {SECRET_ID.replace("-", ""): (SECRET_ID, "default")}

    assert "No changes." in output("plan")
    doc = json.loads(output("plan", "--output", "json"))
    assert doc["live"]["access_policy_assignments"] == [
        {"name": "${APP_OBJECT_ID}", "object_id": "${APP_OBJECT_ID}", "access_policy": "default"}]


def test_a_missing_variable_is_one_line_and_a_duplicate_after_resolving_is_refused(
        arm: ArmEmulator, amr: Policy, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(arm)
    monkeypatch.delenv("APP_OBJECT_ID", raising=False)
    amr.write(items(f"object_id: {ORDERS}", "object_id: ${APP_OBJECT_ID}"))
    assert amr.run("plan") == 1
    assert error_lines(capsys.readouterr().err) == [
        "toolkit plan: error: target amr: instance.access_policy_assignments[1]: environment variable APP_OBJECT_ID is "
        "not set"]

    monkeypatch.setenv("APP_OBJECT_ID", "not-a-guid-but-a-secret")
    assert amr.run("plan") == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert "'${APP_OBJECT_ID}' is not an Entra object id once resolved" in line and "secret" not in line

    monkeypatch.setenv("APP_OBJECT_ID", ORDERS.upper())
    assert amr.run("plan") == 1
    assert error_lines(capsys.readouterr().err) == [
        "toolkit plan: error: target amr: instance.access_policy_assignments[1]: object_id ${APP_OBJECT_ID} resolves to "
        "the object id of access_policy_assignments[0]: one assignment per principal"]
    assert arm.writes() == []


# -- errors ------------------------------------------------------------------------------------------

def test_a_failed_assignment_operation_is_one_clear_line(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    amr.write(items(f"object_id: {ORDERS}\nname: orders"))
    arm.operation_error = {"code": "InternalServerError", "message": "The assignment could not be propagated."}
    assert amr.run("apply") == 1
    err = capsys.readouterr().err
    assert error_lines(err) == [
        f"toolkit apply: error: Azure reports that creating access policy assignment orders (principal {ORDERS}) failed "
        f"(InternalServerError): The assignment could not be propagated."]
    assert "Traceback" not in err


def test_a_denied_list_is_one_clear_line(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    amr.write(items(f"object_id: {ORDERS}"))
    arm.inject("GET", "/accessPolicyAssignments", 403, "AuthorizationFailed")
    assert amr.run("plan") == 1
    (line,) = error_lines(capsys.readouterr().err)
    assert ("Azure denied listing the access policy assignments of database cache1/default (403 AuthorizationFailed)"
            in line)


def test_the_list_is_read_across_pages(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.assignment_page_size = 1
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS)
    arm.add_access_policy_assignment(RG, CLUSTER, "worker", WORKER)
    amr.write(items(f"object_id: {ORDERS}", f"object_id: {WORKER}"))
    assert amr.run("plan", "--detailed-exitcode") == 0
    assert sum(1 for _, p, _ in arm.requests if p.endswith("/accessPolicyAssignments")) == 2


# -- cross-check: entra-id-without-access ------------------------------------------------------------

@pytest.mark.parametrize("assignments, live, warned", [
    ("", False, "no principal can connect"),  # not managed, none live
    ("", True, None),  # not managed, some live: cannot tell, nothing said
    (items(f"object_id: {ORDERS}"), False, f"no declared access policy assignment names that client_id"),
    (items(f"object_id: {ORDERS}\nclient_id: {CLIENT.upper()}"), False, None),
    (items(f"object_id: {ORDERS}", f"object_id: {WORKER}\nclient_id: {STRANGER}"), False, "names that client_id"),
], ids=["none-at-all", "unmanaged-live", "no-client-id", "client-id-declared", "other-client-id"])
def test_entra_id_without_access(arm: ArmEmulator, amr: Policy, capsys, assignments: str, live: bool,
                                 warned: str | None) -> None:
    seed(arm)
    if live:
        arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS)
    amr.write(assignments, auth=ENTRA)
    assert amr.run("plan") == 0  # a warning, never a refusal
    found = [line for line in capsys.readouterr().out.splitlines() if "[entra-id-without-access]" in line]
    if warned is None:
        assert found == []
    else:
        (line,) = found
        assert line.startswith("warning: [entra-id-without-access] the target authenticates with Entra ID") and warned in line


def test_entra_id_with_every_assignment_removed_is_warned(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, "orders", ORDERS)
    amr.write(items(), auth=ENTRA)
    assert amr.run("plan") == 0
    assert "[entra-id-without-access]" in capsys.readouterr().out  # kept: no client id is declared
    assert amr.run("plan", "--remove-undeclared-access") == 0
    assert "will have no access policy assignment (none declared, none kept)" in capsys.readouterr().out


def test_access_key_targets_are_not_cross_checked(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    amr.write(auth="    auth: {type: access-key, env: REDIS_KEY}\n")
    amr.run("plan")
    assert "entra-id-without-access" not in capsys.readouterr().out


# -- output formats ----------------------------------------------------------------------------------

def test_json_markdown_and_github_outputs(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, STRANGER, STRANGER)
    amr.write(items(f"object_id: {WORKER}", f"object_id: {ORDERS}\nname: orders"))
    assert amr.run("plan", "--output", "json", "--remove-undeclared-access") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["live"]["access_policy_assignments"] == [
        {"name": STRANGER, "object_id": STRANGER, "access_policy": "default"}]
    assert doc["changes"] == [
        {"action": "create", "resource": "access_policy_assignment", "setting": "7497c91811ad41e71b0f7c518a87d0b0",
         "before": None, "after": {"object_id": WORKER, "access_policy": "default"}, "reason": None, "remedy": None,
         "note": None, "data_loss": False},
        {"action": "create", "resource": "access_policy_assignment", "setting": "orders", "before": None,
         "after": {"object_id": ORDERS, "access_policy": "default"}, "reason": None, "remedy": None, "note": None,
         "data_loss": False},
        {"action": "delete", "resource": "access_policy_assignment", "setting": STRANGER,
         "before": {"object_id": STRANGER, "access_policy": "default"}, "after": None, "reason": None, "remedy": None,
         "note": f"data-plane access loss: principal {STRANGER} can no longer connect with Entra ID", "data_loss": False},
    ]
    assert doc["summary"] == {"create": 2, "update": 0, "delete": 1, "blocked": 0, "errors": 0, "warnings": 0,
                              "changes_pending": True, "refused": False}

    assert amr.run("plan", "--output", "markdown", "--remove-undeclared-access") == 0
    md = capsys.readouterr().out
    assert (f"| `+` create | access_policy_assignment | orders | — | object_id=`\"{ORDERS}\"`, access_policy=`\"default\"` "
            f"|  |") in md
    assert (f"| `-` delete | access_policy_assignment | {STRANGER} | object_id=`\"{STRANGER}\"`, "
            f"access_policy=`\"default\"` | — | data-plane access loss: principal {STRANGER} can no longer connect with "
            f"Entra ID |") in md
    assert "**0 to create" not in md and "**2 to create, 0 to update, 1 to delete, 0 blocked, 0 errors**" in md

    assert amr.run("plan", "--output", "github", "--remove-undeclared-access") == 0
    lines = capsys.readouterr().out.splitlines()
    file = str(amr.file)
    text = amr.file.read_text().splitlines()
    orders_line = next(i for i, line in enumerate(text, 1) if f"object_id: {ORDERS}" in line)
    list_line = next(i for i, line in enumerate(text, 1) if "access_policy_assignments:" in line)
    assert any(line.startswith(f"::notice file={file},line={orders_line},") and "+ access_policy_assignment.orders" in line
               for line in lines)
    (delete,) = [line for line in lines if "access_policy_assignment." + STRANGER in line and line.startswith("::")]
    assert delete.startswith(f"::warning file={file},line={list_line},") and "title=toolkit plan amr%3A delete::" in delete
    assert "data-plane access loss" in delete


def test_the_undeclared_warning_is_located_on_the_list(arm: ArmEmulator, amr: Policy, capsys) -> None:
    seed(arm)
    arm.add_access_policy_assignment(RG, CLUSTER, STRANGER, STRANGER)
    amr.write(items(f"object_id: {ORDERS}"))
    assert amr.run("plan", "--output", "github") == 0
    list_line = next(i for i, line in enumerate(amr.file.read_text().splitlines(), 1) if "access_policy_assignments:" in line)
    (warning,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::warning")]
    assert f"line={list_line}," in warning and "[undeclared-access-policy-assignment]" in warning
