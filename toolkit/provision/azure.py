"""Azure Managed Redis through azure-mgmt-redisenterprise: read the cluster and database, create or update them;
read, create, update and (only with ``prune``) delete the database's Entra ID access policy assignments.

The Azure SDK is imported here only, and only when a backend is built, so that ``import toolkit``
stays light. Every Azure failure becomes one clear line (a ToolkitError), never a traceback; the
SDK's own retry policy already waits out 429 (honouring Retry-After) and transient 5xx first.

``TOOLKIT_ARM_ENDPOINT`` points the client at another Resource Manager (a sovereign cloud, or a
loopback emulator in tests). Plain http is accepted only on a loopback address.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from toolkit.errors import ConfigurationError, ToolkitError
from toolkit.policy.model import AccessPolicyAssignment, InstancePolicy, Module, Persistence, Target, resolve_env
from toolkit.policy.secrets import Redactor, shown
from toolkit.provision.changes import (
    BLOCKED,
    CREATE,
    DELETE,
    ERROR,
    UPDATE,
    WARNING,
    Change,
    Finding,
    declared_items,
    persistence_note,
    same,
)
from toolkit.provision.state import ArmStatus, LiveState, to_json

ARM_ENDPOINT_ENV = "TOOLKIT_ARM_ENDPOINT"
DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
PROGRESS_EVERY_S = 15.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def default_credential() -> Any:
    """DefaultAzureCredential: environment, workload identity (pipelines), managed identity, az login..."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def arm_endpoint(explicit: str | None = None) -> str:
    """The Resource Manager URL: ``explicit``, else ``$TOOLKIT_ARM_ENDPOINT``, else the public cloud."""
    endpoint = (explicit or os.environ.get(ARM_ENDPOINT_ENV) or DEFAULT_ARM_ENDPOINT).rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return endpoint
    raise ConfigurationError(f"{ARM_ENDPOINT_ENV}={endpoint!r}: use an https:// URL (plain http only on a loopback "
                             f"address, for an emulator)")


def _enabled(value: bool | None) -> str | None:
    return None if value is None else ("Enabled" if value else "Disabled")


def _flag(value: str | None) -> bool | None:
    return None if value is None else str(value).lower() == "enabled"


def _azure_error(exc: Any) -> tuple[str, str]:
    """Azure's error code and message from an HttpResponseError: the ``error`` of an error body or of a
    Failed operation status, or the provisioningState of a resource that ended Failed; the SDK's words last."""
    error = getattr(exc, "error", None)
    code, message = getattr(error, "code", None), getattr(error, "message", None)
    if not code:
        try:
            body = exc.response.json() if exc.response is not None else None
        except ValueError:
            body = None
        if isinstance(body, dict):
            err, props = body.get("error"), body.get("properties")
            if isinstance(err, dict) and err.get("code"):
                code, message = err.get("code"), err.get("message")
            elif isinstance(props, dict) and props.get("provisioningState"):
                state = props["provisioningState"]
                code = f"provisioningState {state}"
                message = f"the resource ended {state}" + (
                    f" (resourceState {props['resourceState']})" if props.get("resourceState") else "") + (
                    "; Azure gave no error detail: see the resource's activity log")
            elif body.get("status"):
                code = f"status {body['status']}"
    return str(code or exc.reason or "error"), _one_line(message or exc.message)


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- rules (no I/O) ------------------------------------------------------------------------------

CLUSTER_FIELDS = ("sku", "capacity", "high_availability", "minimum_tls_version", "public_network_access")
DATABASE_FIELDS = ("client_protocol", "clustering_policy", "eviction_policy", "persistence", "modules",
                   "access_keys_authentication", "geo_replication_group")
CAPACITY_FAMILIES = ("Enterprise", "EnterpriseFlash")
"""SKU families that take ``sku.capacity``; the 2025-07-01 spec: "Capacity is only used with Enterprise and
EnterpriseFlash SKUs" (Sku.capacity in redisenterprise.json)."""
OBSOLETE_TLS = ("1.0", "1.1")
_RECREATE = ("export the data (az redisenterprise database export), delete the database yourself, run apply to create "
             "it again with the new setting, then import the data")

OMITTED: dict[str, object] = {
    "high_availability": True,
    "minimum_tls_version": "1.2",
    "client_protocol": "Encrypted",
    "clustering_policy": "OSSCluster",
    "eviction_policy": "VolatileLRU",
    "persistence": Persistence(),
    "modules": (),
}
"""What a 2025-07-01 response that leaves a setting out means, from redisenterprise.json (and its examples):
- ``highAvailability``: "Enabled by default. If highAvailability is disabled, the data set is not replicated."
- ``minimumTlsVersion``: "TLS 1.0 and TLS 1.1 are now completely obsolete -- you cannot use them", so 1.2.
- ``clientProtocol``: "Default is TLS-encrypted." ``clusteringPolicy``: "default is OSSCluster".
- ``evictionPolicy``: "Default is VolatileLRU". ``persistence``: absent means neither AOF nor RDB.
- ``modules``: absent means none.
``publicNetworkAccess`` has no default: "null is returned only for clusters created using an old API
version which do not have this property and cannot be set", so it reads as not reported, and declaring
it there is blocked. ``accessKeysAuthentication`` has a default for requests only ("default": "Disabled"
in DatabaseCreateProperties, not in the response's DatabaseProperties): a database created by an older
API version may leave it out with keys enabled, so omitted reads as not reported. ``sku.capacity`` and
``geoReplication`` absent mean none."""
CREATED: dict[str, object] = {**OMITTED, "access_keys_authentication": False}
"""What a database this plan creates gets for what the policy leaves out (accessKeysAuthentication's create default)."""


def _family(sku: str | None) -> str | None:
    return sku.split("_", 1)[0] if sku else None


def capacity_used(sku: str | None) -> bool:
    """Whether ``sku`` takes a capacity (Enterprise_E10 yes, Balanced_B5 no); an unknown sku: assume yes."""
    return sku is None or _family(sku) in CAPACITY_FAMILIES


class AzureProvider:
    """Azure's rules: what changes in place, what needs a new resource (blocked), what a new one defaults to."""

    name = "azure-managed-redis"

    def changes(self, target: Target, live: LiveState, *, prune: bool) -> Iterator[Change]:
        declared = target.instance
        if not live.cluster_exists:
            yield self._create_cluster(target, declared)
        if not live.database_exists:
            yield self._create_database(target, declared)
        sku = declared.sku or live.settings.sku
        for name, want in declared_items(declared, CLUSTER_FIELDS + DATABASE_FIELDS):
            resource = "cluster" if name in CLUSTER_FIELDS else "database"
            if not (live.cluster_exists if resource == "cluster" else live.database_exists):
                continue  # the create change carries it
            have = getattr(live.settings, name)
            if name == "public_network_access" and have is None:
                yield Change(resource, name, BLOCKED, None, to_json(want),
                             reason="the cluster reports no publicNetworkAccess: the API returns null \"only for clusters "
                                    "created using an old API version which do not have this property and cannot be "
                                    "set\"", remedy="remove public_network_access from the target's instance policy, "
                                                     "or create a new cluster with it")
            elif name == "capacity" and not capacity_used(sku):
                yield Change(resource, name, BLOCKED, to_json(have), want,
                             reason=f"capacity is used only with Enterprise and EnterpriseFlash SKUs; the cluster's "
                                    f"SKU is {sku}", remedy="remove capacity from the instance policy")
            elif not same(name, want, have):
                yield self._change(resource, name, have, want)
        port = declared_port(target)
        if live.database_exists and port is not None and live.port is not None and port != live.port:
            yield Change("database", "port", BLOCKED, live.port, _shown_port(target, port),
                         reason="the port is chosen when the database is created (Azure Managed Redis accepts only 10000)",
                         remedy=f"set the target's port to {live.port}", data_loss=True)
        yield from (op.change for op in assignment_operations(target, live, prune=prune))

    @staticmethod
    def _change(resource: str, name: str, have: object, want: object) -> Change:
        before, after = to_json(have), to_json(want)
        if name == "high_availability" and have is True and want is False:
            return Change(resource, name, BLOCKED, before, after, data_loss=True,
                          reason="high availability cannot be switched off on an existing cluster",
                          remedy="keep high_availability: true, or create a new cluster without it and migrate the data")
        if name == "clustering_policy" and have != "NoCluster":
            return Change(resource, name, BLOCKED, before, after, data_loss=True,
                          reason=f"the clustering policy can change only from NoCluster: going from {have} to {want} "
                                 f"means deleting and re-creating the database, which loses all its data",
                          remedy=f"declare clustering_policy: {have} (or auto), or {_RECREATE}")
        if name in ("modules", "geo_replication_group"):
            label = "modules" if name == "modules" else "the geo-replication group"
            return Change(resource, name, BLOCKED, before, after, data_loss=True,
                          reason=f"{label} can be chosen only when the database is created",
                          remedy=f"declare {name}: {_show(before)} to match the instance, or {_RECREATE}")
        return Change(resource, name, UPDATE, before, after, note=_update_note(name, have, want))

    @staticmethod
    def _create_cluster(target: Target, declared: InstancePolicy) -> Change:
        assert target.azure is not None
        location = _resolved(target.azure.location, f"target {target.name}: azure.location")
        missing = [label for label, value in (("azure.location", location), ("instance.sku", declared.sku),
                                              ("instance.public_network_access", declared.public_network_access))
                   if value is None]
        after = {"location": shown(target.azure.location) if location is not None else None,
                 **{n: to_json(v) for n, v in declared_items(declared, CLUSTER_FIELDS)}}
        if missing:
            return Change("cluster", "", BLOCKED, None, after,
                          reason=f"cluster {target.azure.cluster!r} does not exist and cannot be created: "
                                 f"the target does not declare {', '.join(missing)}",
                          remedy=f"declare {', '.join(missing)} in target {target.name!r}, or point azure.cluster at an "
                                 f"existing cluster")
        return Change("cluster", "", CREATE, None, after, note="a new cluster takes several minutes to provision")

    @staticmethod
    def _create_database(target: Target, declared: InstancePolicy) -> Change:
        after: dict[str, object] = {n: to_json(v) for n, v in declared_items(declared, DATABASE_FIELDS)}
        port = declared_port(target)
        if port is not None:
            after["port"] = _shown_port(target, port)
        notes = []
        if "clustering_policy" not in after:
            notes.append("clustering_policy is not declared: Azure uses OSSCluster, which can never be changed afterwards")
        if "access_keys_authentication" not in after:
            notes.append("access_keys_authentication is not declared: Azure disables access keys")
        return Change("database", "", CREATE, None, after, note="; ".join(notes))

    def effective(self, target: Target, live: LiveState) -> InstancePolicy:
        declared, have = target.instance, live.settings
        gone = set(CLUSTER_FIELDS if not live.cluster_exists else ()) | set(DATABASE_FIELDS if not live.database_exists else ())
        values: dict[str, Any] = {}
        for f in fields(InstancePolicy):
            want = getattr(declared, f.name)
            if want is not None and want != "auto":
                values[f.name] = want
            elif f.name in gone:  # created now: Azure's default for what the policy leaves out
                values[f.name] = CREATED.get(f.name)
            else:
                values[f.name] = getattr(have, f.name)
        return InstancePolicy(**values)

    def findings(self, target: Target, live: LiveState, effective: InstancePolicy, *, prune: bool = False) -> Iterator[Finding]:
        at = ("targets", target.name)
        if target.auth.type == "access-key" and effective.access_keys_authentication is False:
            yield Finding(ERROR, "access-key-disabled",
                          "the target authenticates with an access key but access_keys_authentication is disabled: "
                          "declare access_keys_authentication: true, or switch the target's auth to entra-id", at + ("auth",))
        yield from _redisearch(target, effective)
        if effective.minimum_tls_version in OBSOLETE_TLS:
            yield Finding(WARNING, "obsolete-tls",
                          f"the cluster allows TLS {effective.minimum_tls_version}, which the 2025-07-01 API calls "
                          f"\"completely obsolete\": declare minimum_tls_version: \"1.2\"", at + ("instance",))
        for resource, status in (("cluster", live.cluster_status), ("database", live.database_status)):
            if status is not None and status.busy:
                yield Finding(WARNING, "operation-in-progress",
                              f"the {resource} is {status.provisioning}: Azure refuses changes (409) until it finishes", at)
        host = _resolved(target.host, f"target {target.name}: host")
        if host and live.host_name and host.lower() != live.host_name.lower():
            yield Finding(WARNING, "host-mismatch",
                          f"the target connects to {shown(target.host)} but this cluster's host name is {live.host_name}",
                          at + ("host",))
        yield from _assignment_findings(target, live, prune)

    def backend(self, target: Target, **options: Any) -> AzureBackend:
        return AzureBackend(target, **options)


REDISEARCH_DOCS = (
    "Microsoft's Azure Managed Redis documentation (learn.microsoft.com/azure/redis/redis-modules, 2025-05-18) says "
    "\"The RediSearch module requires use of the Enterprise clustering policy and the NoEviction eviction policy\", "
    "and architecture#cluster-policies \"OSS clustering policy can't be used with the RediSearch module\""
)
REDISEARCH_EXAMPLES = (
    "the 2025-07-01 REST API specification's own examples disagree (RedisEnterpriseDatabasesCreate.json runs "
    "RediSearch with EnterpriseCluster and AllKeysLRU, RedisEnterpriseDatabasesGet.json with OSSCluster and "
    "AllKeysLRU) and its schema states no such rule"
)


def _redisearch(target: Target, eff: InstancePolicy) -> Iterator[Finding]:
    """RediSearch's requirements, as Microsoft documents them. The specification's examples contradict the
    documentation (see REDISEARCH_EXAMPLES), so a mismatch is a warning quoting both, not an error: the
    service decides. Sources: MicrosoftDocs/azure-docs articles/redis/redis-modules.md and architecture.md
    (ms.date 05/18/2025); azure-rest-api-specs redisenterprise 2025-07-01 examples."""
    if not any(m.name == "RediSearch" for m in eff.modules or ()):
        return
    wrong = [f"clustering_policy {eff.clustering_policy}" for _ in [0] if eff.clustering_policy != "EnterpriseCluster"]
    wrong += [f"eviction_policy {eff.eviction_policy}" for _ in [0] if eff.eviction_policy != "NoEviction"]
    if wrong:
        yield Finding(WARNING, "redisearch-requirements",
                      f"RediSearch with {' and '.join(wrong)}: {REDISEARCH_DOCS}; {REDISEARCH_EXAMPLES}. Declare "
                      f"clustering_policy: EnterpriseCluster and eviction_policy: NoEviction to follow the documentation",
                      ("targets", target.name, "instance", "modules"))


# -- access policy assignments (rules, no I/O) ----------------------------------------------------

ASSIGNMENT = "access_policy_assignment"
"""``Change.resource`` of an Entra ID access policy assignment; its ``setting`` is the assignment's name."""
UNDECLARED_FLAG = "--remove-undeclared-access"


@dataclass(frozen=True)
class AssignmentOperation:
    """One assignment change as planned (``change``, ``${VAR}`` values shown as references) and what apply sends:
    the ARM name, the object id and the access policy, resolved."""

    change: Change
    name: str
    object_id: str
    access_policy: str


def declared_assignments(target: Target) -> tuple[AccessPolicyAssignment, ...] | None:
    """The target's assignments with ``${VAR}`` resolved, in policy order; None when it does not declare the field
    (assignments not managed). ConfigurationError, one line without any value read from the environment, for a
    variable that is missing or not a GUID, and for two entries that resolve to the same object id or name."""
    written = target.instance.access_policy_assignments
    if written is None:
        return None
    resolved: list[AccessPolicyAssignment] = []
    for i, item in enumerate(written):
        where = f"target {target.name}: instance.access_policy_assignments[{i}]"
        a = item.resolved(where)
        for j, other in enumerate(resolved):
            if other.object_id == a.object_id:
                raise ConfigurationError(f"{where}: object_id {shown(item.object_id)} resolves to the object id of "
                                         f"access_policy_assignments[{j}]: one assignment per principal")
            if (other.name or "").lower() == (a.name or "").lower():
                name = repr(item.name) if item.name else f"derived from {shown(item.object_id)}"
                raise ConfigurationError(f"{where}: its assignment name ({name}) is the name of "
                                         f"access_policy_assignments[{j}]: names are unique within a database")
        resolved.append(a)
    return tuple(resolved)


def _shown_assignment(redact: Redactor, a: AccessPolicyAssignment) -> dict[str, object]:
    return {"object_id": redact(a.object_id), "access_policy": a.access_policy}


def assignment_operations(target: Target, live: LiveState, *, prune: bool) -> list[AssignmentOperation]:
    """What makes the database's assignments match the declared ones, creates and updates first (in policy order),
    then, with ``prune``, deletes. Live assignments are matched by object id (case-insensitive), never by name: the
    portal and Terraform name them by the hyphenated object id, the toolkit by default without hyphens."""
    declared = declared_assignments(target)
    if declared is None or (live.database_exists and live.access_policy_assignments is None):
        return []  # not managed, or not read
    redact = Redactor(target)
    have = live.access_policy_assignments or ()
    by_id = {a.object_id.lower(): a for a in have}
    at: tuple[str | int, ...] = ("targets", target.name, "instance", "access_policy_assignments")
    ops: list[AssignmentOperation] = []
    for i, want in enumerate(declared):
        assert want.name is not None  # resolved() derives it
        after = _shown_assignment(redact, want)
        found = by_id.get(want.object_id)
        if found is None:
            note = "created once the new database exists" if not live.database_exists else ""
            ops.append(AssignmentOperation(Change(ASSIGNMENT, redact(want.name), CREATE, None, after, note=note, path=at + (i,)),
                                           want.name, want.object_id, want.access_policy))
        elif found.access_policy.lower() != want.access_policy.lower():
            assert found.name is not None
            ops.append(AssignmentOperation(Change(ASSIGNMENT, redact(found.name), UPDATE, _shown_assignment(redact, found),
                                                  after, path=at + (i,)), found.name, want.object_id, want.access_policy))
    if prune:
        wanted = {a.object_id for a in declared}
        everything = "; access_policy_assignments is empty, so every assignment of the database is deleted" if not declared else ""
        for extra in have:
            if extra.object_id.lower() not in wanted:
                assert extra.name is not None
                note = (f"data-plane access loss: principal {redact(extra.object_id)} can no longer connect with Entra ID"
                        f"{everything}")
                ops.append(AssignmentOperation(Change(ASSIGNMENT, redact(extra.name), DELETE, _shown_assignment(redact, extra),
                                                      None, note=note, path=at), extra.name, extra.object_id,
                                               extra.access_policy))
    return ops


def _assignment_findings(target: Target, live: LiveState, prune: bool) -> Iterator[Finding]:
    """``undeclared-access-policy-assignment`` (kept, without ``prune``) and ``entra-id-without-access``."""
    declared = declared_assignments(target)
    have = live.access_policy_assignments
    redact = Redactor(target)
    at: tuple[str | int, ...] = ("targets", target.name, "instance", "access_policy_assignments")
    kept: tuple[AccessPolicyAssignment, ...] | None = have if live.database_exists else ()
    """What the database has besides the declared ones once applied (None: unknown)."""
    if declared is not None and have:
        wanted = {a.object_id for a in declared}
        undeclared = [a for a in have if a.object_id.lower() not in wanted]
        kept = () if prune else tuple(undeclared)
        if undeclared and not prune:  # with prune they are planned for deletion instead
            listed = ", ".join(f"{redact(a.name or '')} (object id {redact(a.object_id)})" for a in undeclared)
            yield Finding(WARNING, "undeclared-access-policy-assignment",
                          f"{len(undeclared)} access policy assignment{'s' if len(undeclared) != 1 else ''} of the database "
                          f"{'are' if len(undeclared) != 1 else 'is'} not declared in access_policy_assignments: {listed}; "
                          f"kept, with their data-plane access (plan and apply with {UNDECLARED_FLAG} delete "
                          f"them)", at)
    if target.auth.type != "entra-id":
        return
    if kept is not None and not (declared or kept):
        yield Finding(WARNING, "entra-id-without-access",
                      "the target authenticates with Entra ID but the database will have no access policy assignment "
                      "(none declared, none kept), so no principal can connect: declare the identity's object id in "
                      "instance.access_policy_assignments", at if declared is not None else ("targets", target.name, "auth"))
        return
    client_id = _resolved(target.auth.client_id, f"target {target.name}: auth.client_id")
    if declared is None or not client_id:
        return  # assignments not managed, or no client id to look for
    if not any((_resolved(a.client_id, "") or "").lower() == client_id.lower() for a in declared):
        yield Finding(WARNING, "entra-id-without-access",
                      f"the target authenticates with Entra ID as client id {shown(target.auth.client_id)} but no declared "
                      f"access policy assignment names that client_id: declare the principal's object id (not its client "
                      f"id) with client_id: {shown(target.auth.client_id)}, or add client_id to its assignment", at)


def _update_note(name: str, have: object, want: object) -> str:
    if name in ("sku", "capacity"):
        return "scales the cluster in place; Azure refuses a size it cannot scale to (that would need a new cluster)"
    if name == "access_keys_authentication" and want is False:
        return "disabling access keys ends every connection that authenticated with one"
    if name == "public_network_access" and want is False:
        return "clients outside a private endpoint lose access"
    if name == "client_protocol":
        return "clients must switch TLS at the same time (the target's tls setting)"
    if name == "clustering_policy":
        return "from NoCluster; OSSCluster then needs a cluster-aware client" if want == "OSSCluster" else "from NoCluster"
    return persistence_note(want) if name == "persistence" else ""


def _resolved(value: str | int | None, where: str) -> str | None:
    try:
        return resolve_env(value, where)
    except ConfigurationError:
        return None


def declared_port(target: Target) -> int | None:
    port = _resolved(target.port, f"target {target.name}: port")
    return int(port) if port and port.isdigit() else None


def _shown_port(target: Target, port: int) -> int | str:
    """The declared port as a plan shows it: the number when the policy says it, else the ``${VAR}`` reference."""
    written = shown(target.port)
    return port if written == str(port) else written or ""


def _show(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


class AzureBackend:
    """The provisioner's view of an ``azure-managed-redis`` target: one cluster and its database."""

    def __init__(self, target: Target, *, credential: Any = None, endpoint: str | None = None, **client_options: Any):
        """``client_options`` go to RedisEnterpriseManagementClient (tests: polling_interval=0, retry_total...)."""
        if target.azure is None:
            raise ConfigurationError(f"target {target.name}: an azure-managed-redis target needs an 'azure' section "
                                     f"(subscription, resource_group, cluster) to be planned or applied")
        where = f"target {target.name}: azure"
        self.target = target
        self._redact = Redactor(target)
        """Every message (ours, and ARM's, which quotes resource ids) shows ``${VAR}`` references, not their values."""
        self.subscription = resolve_env(target.azure.subscription, f"{where}.subscription") or ""
        self.resource_group = resolve_env(target.azure.resource_group, f"{where}.resource_group") or ""
        self.cluster_name = resolve_env(target.azure.cluster, f"{where}.cluster") or ""
        self.database_name = resolve_env(target.azure.database, f"{where}.database") or "default"
        self.endpoint = arm_endpoint(endpoint)
        self._call: dict[str, Any] = {"enforce_https": False} if self.endpoint.startswith("http:") else {}
        from azure.mgmt.redisenterprise import RedisEnterpriseManagementClient

        self.client = RedisEnterpriseManagementClient(credential or default_credential(), self.subscription,
                                                      base_url=self.endpoint, **client_options)
        self._data_client: Any = None

    @property
    def where(self) -> str:
        """The database's ARM id as the policy writes it (``${VAR}`` references unresolved), for plans."""
        azure = self.target.azure
        assert azure is not None
        return (f"/subscriptions/{shown(azure.subscription)}/resourceGroups/{shown(azure.resource_group)}/providers/"
                f"Microsoft.Cache/redisEnterprise/{shown(azure.cluster)}/databases/{shown(azure.database) or 'default'}")

    # -- errors --------------------------------------------------------------------------------

    @contextmanager
    def _arm(self, what: str, *, operation: bool = False) -> Iterator[None]:
        """Translate Azure SDK errors into one line that says what failed and what to do.

        ``operation``: the error came while following a long-running operation, so it is the
        operation's own failure, whichever way it was followed (its status resource, its
        ``Location``, or the resource's provisioningState)."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ServiceRequestError

        try:
            yield
        except ClientAuthenticationError as exc:
            raise ToolkitError(self._redact(
                f"Azure authentication failed while {what}: {_azure_error(exc)[1]} (sign the pipeline in: workload identity, "
                f"AZURE_CLIENT_ID/AZURE_TENANT_ID, managed identity or az login)")) from None
        except HttpResponseError as exc:
            raise ToolkitError(self._redact(self._http_error(what, exc, operation))) from None
        except ServiceRequestError as exc:
            raise ToolkitError(self._redact(f"cannot reach Azure Resource Manager at {self.endpoint} while {what}: "
                                            f"{_one_line(exc.message)}")) from None
        except AzureError as exc:
            raise ToolkitError(self._redact(f"Azure error while {what}: {_one_line(exc.message)}")) from None

    def _http_error(self, what: str, exc: Any, operation: bool = False) -> str:
        status = exc.status_code
        code, message = _azure_error(exc)
        head = f"{status} {code}"
        if operation and status != 429 or status is None or status < 400:
            return f"Azure reports that {what} failed ({code}): {message}"
        if status == 403:
            return (f"Azure denied {what} ({head}): {message}; the pipeline identity needs read and write access to "
                    f"Microsoft.Cache/redisEnterprise in resource group {self.resource_group}")
        if status == 404 and code == "ResourceGroupNotFound":
            return (f"resource group {self.resource_group} does not exist in subscription {self.subscription} "
                    f"({head}); create it first: the toolkit creates only the cluster and its database")
        if status == 404:
            return f"Azure found nothing while {what} ({head}): {message}"
        if status == 409:
            return (f"Azure refused {what} ({head}): {message}; another operation may still be running on the resource, "
                    f"or the setting cannot change in place")
        if status == 429:
            after = exc.response.headers.get("Retry-After") if exc.response is not None else None
            return (f"Azure throttled {what} ({head}) and the retries ran out; "
                    f"{f'Azure asks to wait {after} s' if after else 'wait a minute'} and run it again")
        if status is not None and status >= 500:
            return f"Azure failed {what} ({head}): {message}; it was retried and still failed, try again later"
        return f"Azure rejected {what} ({head}): {message}"

    def _get(self, call: Callable[..., Any], what: str, *args: str) -> Any:
        """GET a resource; None when it does not exist (but a missing resource group is an error)."""
        from azure.core.exceptions import ResourceNotFoundError

        with self._arm(what):
            try:
                return call(self.resource_group, *args, **self._call)
            except ResourceNotFoundError as exc:
                if getattr(exc.error, "code", None) == "ResourceGroupNotFound":
                    raise
                return None

    # -- read ----------------------------------------------------------------------------------

    def read(self) -> LiveState:
        cluster = self._get(self.client.redis_enterprise.get, f"reading cluster {self.cluster_name}", self.cluster_name)
        database = None
        if cluster is not None:
            database = self._get(self.client.databases.get, f"reading database {self.database_name}",
                                 self.cluster_name, self.database_name)
        live = self._live(cluster, database)
        if database is None:
            return live
        with self._arm(f"listing the access policy assignments of database {self.cluster_name}/{self.database_name}"):
            found = list(self.client.access_policy_assignment.list(self.resource_group, self.cluster_name,
                                                                    self.database_name, **self._call))
        assignments = tuple(sorted((AccessPolicyAssignment(
            str(a.user.object_id if a.user is not None and a.user.object_id else "").lower(),
            str(a.access_policy_name or ""), str(a.name or "")) for a in found), key=lambda a: (a.name or "").lower()))
        return replace(live, access_policy_assignments=assignments)

    def _live(self, cluster: Any, database: Any) -> LiveState:
        c: dict[str, Any] = {}
        if cluster is not None:
            c = dict(sku=cluster.sku.name if cluster.sku else None, capacity=cluster.sku.capacity if cluster.sku else None,
                     high_availability=_flag(cluster.high_availability), minimum_tls_version=cluster.minimum_tls_version,
                     public_network_access=_flag(cluster.public_network_access))
        d: dict[str, Any] = {}
        if database is not None:
            p = database.persistence
            d = dict(client_protocol=database.client_protocol, clustering_policy=database.clustering_policy,
                     eviction_policy=database.eviction_policy,
                     persistence=Persistence(aof=p.aof_frequency if p and p.aof_enabled else None,
                                             rdb=p.rdb_frequency if p and p.rdb_enabled else None),
                     modules=tuple(sorted((Module(m.name, m.args or "") for m in database.modules or ()),
                                          key=lambda m: m.name)),
                     access_keys_authentication=_flag(database.access_keys_authentication),
                     geo_replication_group=database.geo_replication.group_nickname if database.geo_replication else None)
        values: dict[str, Any] = {k: (str(v) if isinstance(v, str) else v) for k, v in {**c, **d}.items()}
        settings = InstancePolicy(**{k: OMITTED.get(k) if v is None else v for k, v in values.items()})  # type: ignore[arg-type]
        return LiveState(
            provider="azure-managed-redis", where=self.where, settings=settings,
            cluster_exists=cluster is not None, database_exists=database is not None,
            host_name=cluster.host_name if cluster is not None else None,
            port=database.port if database is not None else None,
            redis_version=(database.redis_version if database is not None else None) or (
                cluster.redis_version if cluster is not None else None),
            cluster_status=ArmStatus(cluster.provisioning_state, cluster.resource_state) if cluster is not None else None,
            database_status=ArmStatus(database.provisioning_state, database.resource_state) if database is not None else None,
        )

    # -- write ---------------------------------------------------------------------------------

    def apply(self, live_state: LiveState, changes: Sequence[Change], progress: Callable[[str], None]) -> list[str]:
        """Create or update the cluster, then the database, then create, update or delete access policy assignments,
        following each long-running operation to its end."""
        from azure.mgmt.redisenterprise import models

        declared, live = self.target.instance, live_state.settings
        cluster_changes = [c for c in changes if c.resource == "cluster"]
        database_changes = [c for c in changes if c.resource == "database"]
        notes: list[str] = []
        if any(c.action == CREATE for c in cluster_changes):
            assert self.target.azure is not None
            location = resolve_env(self.target.azure.location, f"target {self.target.name}: azure.location")
            assert location is not None  # plan blocks creating a cluster whose target declares no location
            new_cluster = models.Cluster(location=location, **self._cluster_fields(models, declared, CLUSTER_FIELDS, live))
            self._follow(lambda: self.client.redis_enterprise.begin_create(self.resource_group, self.cluster_name,
                                                                           new_cluster, **self._call),
                         f"creating cluster {self.cluster_name}", progress)
            notes.append(self._redact(f"created cluster {self.cluster_name}"))
        elif cluster_changes:
            names = [c.setting for c in cluster_changes]
            cluster_update = models.ClusterUpdate(**self._cluster_fields(models, declared, names, live))
            self._follow(lambda: self.client.redis_enterprise.begin_update(self.resource_group, self.cluster_name,
                                                                           cluster_update, **self._call),
                         f"updating cluster {self.cluster_name}", progress)
        if any(c.action == CREATE for c in database_changes):
            fields = self._database_fields(models, declared, DATABASE_FIELDS)
            port = declared_port(self.target)
            new_database = models.Database(port=port, **fields)
            self._follow(lambda: self.client.databases.begin_create(self.resource_group, self.cluster_name,
                                                                    self.database_name, new_database, **self._call),
                         f"creating database {self.cluster_name}/{self.database_name}", progress)
            notes.append(self._redact(f"created database {self.cluster_name}/{self.database_name}"))
        elif database_changes:
            names = [c.setting for c in database_changes]
            database_update = models.DatabaseUpdate(**self._database_fields(models, declared, names))
            self._follow(lambda: self.client.databases.begin_update(self.resource_group, self.cluster_name,
                                                                    self.database_name, database_update, **self._call),
                         f"updating database {self.cluster_name}/{self.database_name}", progress)
        notes.extend(self._apply_assignments(models, live_state, [c for c in changes if c.resource == ASSIGNMENT], progress))
        return notes

    def _apply_assignments(self, models: Any, live_state: LiveState, changes: Sequence[Change],
                           progress: Callable[[str], None]) -> list[str]:
        """PUT (create or update) then DELETE the assignments of ``changes``, each followed to its end. The values
        sent are resolved again from the target (a plan shows ``${VAR}`` references, not values)."""
        if not changes:
            return []
        ops = [op for op in assignment_operations(self.target, live_state, prune=any(c.action == DELETE for c in changes))
               if op.change in changes]
        if len(ops) != len(changes):
            raise ToolkitError("the access policy assignment changes of the plan no longer follow from the target and the "
                               "live instance; nothing more was changed: make the plan again")
        calls = self.client.access_policy_assignment
        args = (self.resource_group, self.cluster_name, self.database_name)
        notes: list[str] = []
        for op in ops:
            label = f"access policy assignment {op.name} (principal {op.object_id})"
            if op.change.action == DELETE:
                self._follow(partial(calls.begin_delete, *args, op.name, **self._call), f"deleting {label}", progress)
                notes.append(self._redact(f"removed data access of {op.object_id} (assignment {op.name})"))
                continue
            body = models.AccessPolicyAssignment(
                access_policy_name=op.access_policy, user=models.AccessPolicyAssignmentPropertiesUser(object_id=op.object_id))
            verb = "creating" if op.change.action == CREATE else "updating"
            self._follow(partial(calls.begin_create_update, *args, op.name, body, **self._call), f"{verb} {label}", progress)
            notes.append(self._redact(f"granted data access to {op.object_id} (assignment {op.name})" if op.change.action == CREATE
                                      else f"changed the access policy of {op.object_id} to {op.access_policy} "
                                           f"(assignment {op.name})"))
        return notes

    @staticmethod
    def _cluster_fields(models: Any, declared: InstancePolicy, names: Sequence[str], live: InstancePolicy) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if "sku" in names or "capacity" in names:
            sku = declared.sku or live.sku
            capacity = declared.capacity
            if capacity is None and _family(sku) == _family(live.sku):
                capacity = live.capacity  # the same family counts capacity alike; another one must declare its own
            fields["sku"] = models.Sku(name=sku, capacity=capacity if capacity_used(sku) else None)
        if "high_availability" in names:
            fields["high_availability"] = _enabled(declared.high_availability)
        if "minimum_tls_version" in names:
            fields["minimum_tls_version"] = declared.minimum_tls_version
        if "public_network_access" in names:
            fields["public_network_access"] = _enabled(declared.public_network_access)
        return fields

    @staticmethod
    def _database_fields(models: Any, declared: InstancePolicy, names: Sequence[str]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name in ("client_protocol", "eviction_policy"):
            if name in names:
                fields[name] = getattr(declared, name)
        if "clustering_policy" in names and declared.clustering_policy != "auto":
            fields["clustering_policy"] = declared.clustering_policy
        if "persistence" in names and declared.persistence is not None:
            p = declared.persistence
            fields["persistence"] = models.Persistence(aof_enabled=p.aof is not None, aof_frequency=p.aof,
                                                       rdb_enabled=p.rdb is not None, rdb_frequency=p.rdb)
        if "access_keys_authentication" in names:
            fields["access_keys_authentication"] = _enabled(declared.access_keys_authentication)
        if "modules" in names and declared.modules is not None:
            fields["modules"] = [models.Module(name=m.name, args=m.args or None) for m in declared.modules]
        if "geo_replication_group" in names and declared.geo_replication_group is not None:
            fields["geo_replication"] = models.DatabasePropertiesGeoReplication(group_nickname=declared.geo_replication_group)
        return fields

    def _follow(self, begin: Callable[[], Any], what: str, progress: Callable[[str], None]) -> None:
        """Start a long-running operation and wait for its end, reporting on stderr so a pipeline log shows it is alive."""
        started = time.monotonic()
        what = self._redact(what)
        progress(f"{what}: started")
        with self._arm(what):
            poller = begin()
        with self._arm(what, operation=True):
            while not poller.done():
                poller.wait(timeout=PROGRESS_EVERY_S)
                if not poller.done():
                    progress(f"{what}: {poller.status()} after {time.monotonic() - started:.0f}s")
            poller.result()
        progress(f"{what}: {poller.status()} after {time.monotonic() - started:.0f}s")

    # -- data plane ----------------------------------------------------------------------------

    @property
    def data_client(self) -> Any:
        from toolkit.provision import _dataplane

        if self._data_client is None:
            self._data_client = _dataplane.connect(self.target)
        return self._data_client

    def close(self) -> None:
        if self._data_client is not None:
            self._data_client.close()
            self._data_client = None
        self.client.close()


PROVIDER = AzureProvider()
