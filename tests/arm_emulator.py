"""A loopback Azure Resource Manager for Microsoft.Cache/redisEnterprise, driven by the real SDK in tests.

It answers the way ARM does (azure-rest-api-specs, redisenterprise 2025-07-01): GET of a cluster or
database, PUT (create: 201 + ``Azure-AsyncOperation``), PATCH (202 + ``Azure-AsyncOperation`` and
``Location``), an ``operationsStatus`` resource polled until ``Succeeded``, 404 with
``ResourceNotFound`` / ``ResourceGroupNotFound``, 409 for a create-only field or a clustering policy
that is not NoCluster, 400 for a create without its required fields. Faults (429 with Retry-After,
500, 403...) are queued with ``inject``; ``operation_error`` makes asynchronous operations end Failed. Every request is recorded so a test can tell whether
anything was written. The server runs on 127.0.0.1 in its own thread; ``stop()`` ends it.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
API_VERSION = "2025-07-01"
_CLUSTER = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Cache/redisEnterprise/([^/]+)$", re.I)
_DATABASE = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Cache/redisEnterprise/([^/]+)"
                       r"/databases/([^/]+)$", re.I)
_STATUS = re.compile(r"^/subscriptions/([^/]+)/providers/Microsoft\.Cache/locations/([^/]+)/operationsStatus/([^/]+)$", re.I)
_RESULT = re.compile(r"^/subscriptions/([^/]+)/providers/Microsoft\.Cache/locations/([^/]+)/operationResults/([^/]+)$", re.I)
LRO_STYLES = ("azure-async-operation", "location", "provisioning-state")
"""How an asynchronous operation is followed (ARM allows all three, azure-mgmt-core tries them in this order):
an ``Azure-AsyncOperation`` status resource; a ``Location`` URL answering 202 until done, then the result or the
error status; or no header at all, the client GETting the resource until its ``provisioningState`` is terminal."""
_CREATE_ONLY = ("port", "modules", "geoReplication")
_ASSIGNMENTS = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Cache/redisEnterprise/([^/]+)"
                          r"/databases/([^/]+)/accessPolicyAssignments$", re.I)
_ASSIGNMENT = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Cache/redisEnterprise/([^/]+)"
                         r"/databases/([^/]+)/accessPolicyAssignments/([^/]+)$", re.I)
ASSIGNMENT_NAME = re.compile(r"^[A-Za-z0-9]{1,60}$")
"""The spec's ``accessPolicyAssignmentName`` pattern (redisenterprise 2025-07-01)."""
ASSIGNMENT_TYPE = "Microsoft.Cache/redisEnterprise/accessPolicyAssignments"
"""``type`` as in the spec's RedisEnterpriseAccessPolicyAssignmentCreateUpdate.json example."""


@dataclass
class Fault:
    """An error answer given instead of the normal one to the next ``times`` matching requests."""

    method: str
    path_contains: str
    status: int
    code: str
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class _Operation:
    """A pending asynchronous operation: ``apply`` runs when its status turns Succeeded."""

    apply: Callable[[], None]
    polls_left: int
    resource: dict[str, Any]
    status: str = "InProgress"


class ArmEmulator:
    """ARM for one subscription: ``add_cluster``/``add_database`` seed state, ``requests`` logs every call."""

    def __init__(self, *, location: str = "westeurope", polls: int = 1, retry_after: str = "0.01",
                 lro: str = "azure-async-operation"):
        assert lro in LRO_STYLES, lro
        self.lro = lro
        """The LRO style of every PUT/PATCH (``LRO_STYLES``); tests may change it between requests."""
        self.location = location
        self.polls = polls
        """How many status polls answer InProgress before Succeeded."""
        self.retry_after = retry_after
        """Retry-After sent with 202s and InProgress polls (azure-core treats 0 as absent: keep it small, not 0)."""
        self.resource_groups: set[str] = {"rg-test"}
        self.clusters: dict[tuple[str, str], dict[str, Any]] = {}
        self.databases: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.assignments: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        """Access policy assignments by (rg, cluster, database, name), lowercase: see ``add_access_policy_assignment``."""
        self.assignment_page_size: int | None = None
        """When set, a list of assignments answers pages of this size linked by ``nextLink`` (ARM's paging)."""
        self.requests: list[tuple[str, str, Any]] = []
        self.faults: list[Fault] = []
        self.operation_error: dict[str, str] | None = None
        """When set ({"code", "message"}), asynchronous operations end Failed with it and change nothing."""
        self._operations: dict[str, _Operation] = {}
        self._by_resource: dict[int, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "ArmEmulator":
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                emulator._handle(self)

            do_PUT = do_PATCH = do_POST = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="arm-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "ArmEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state -------------------------------------------------------------------------------------

    def cluster_id(self, rg: str, name: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.Cache/redisEnterprise/{name}"

    def add_cluster(self, rg: str, name: str, *, sku: str = "Balanced_B5", **properties: Any) -> dict[str, Any]:
        """Seed a running cluster; ``properties`` override the ARM defaults (camelCase)."""
        body = {
            "id": self.cluster_id(rg, name), "name": name, "type": "Microsoft.Cache/redisEnterprise",
            "location": self.location, "sku": {"name": sku}, "kind": "v2", "tags": {},
            "properties": {"highAvailability": "Enabled", "minimumTlsVersion": "1.2", "publicNetworkAccess": "Disabled",
                           "hostName": f"{name}.{self.location}.redis.azure.net", "provisioningState": "Succeeded",
                           "resourceState": "Running", "redundancyMode": "ZR", "redisVersion": "7.4", **properties},
        }
        self.resource_groups.add(rg)
        self.clusters[(rg.lower(), name.lower())] = body
        return body

    def add_database(self, rg: str, cluster: str, name: str = "default", **properties: Any) -> dict[str, Any]:
        """Seed a running database; ``properties`` override the ARM defaults (camelCase)."""
        body = {
            "id": f"{self.cluster_id(rg, cluster)}/databases/{name}", "name": f"{cluster}/{name}",
            "type": "Microsoft.Cache/redisEnterprise/databases",
            "properties": {"clientProtocol": "Encrypted", "port": 10000, "clusteringPolicy": "OSSCluster",
                           "evictionPolicy": "VolatileLRU", "persistence": {"aofEnabled": False, "rdbEnabled": False},
                           "modules": [], "deferUpgrade": "NotDeferred", "accessKeysAuthentication": "Disabled",
                           "redisVersion": "7.4", "provisioningState": "Succeeded", "resourceState": "Running",
                           **properties},
        }
        self.databases[(rg.lower(), cluster.lower(), name.lower())] = body
        return body

    def seed_example(self, name: str, rg: str, cluster: str, *, status: str = "200", omit: tuple[str, ...] = (),
                     **properties: Any) -> dict[str, Any]:
        """Serve the response body of the specification's example ``name`` (tests/azure_spec, verbatim) as the live
        cluster or database ``cluster``/default in ``rg``; ``omit`` drops properties, ``properties`` override some."""
        body = copy.deepcopy(spec_example(name)["responses"][status]["body"])
        for prop in omit:
            body["properties"].pop(prop, None)
        body["properties"].update(properties)
        self.resource_groups.add(rg)
        if body["type"].lower() == "microsoft.cache/redisenterprise":
            self.clusters[(rg.lower(), cluster.lower())] = body
        else:
            self.databases[(rg.lower(), cluster.lower(), "default")] = body
        return body

    def database(self, rg: str, cluster: str, name: str = "default") -> dict[str, Any]:
        return self.databases[(rg.lower(), cluster.lower(), name.lower())]

    def cluster(self, rg: str, name: str) -> dict[str, Any]:
        return self.clusters[(rg.lower(), name.lower())]

    def inject(self, method: str, path_contains: str, status: int, code: str = "", *, times: int = 1,
               headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` requests whose path contains ``path_contains`` with an error."""
        self.faults.append(Fault(method.upper(), path_contains, status, code or f"Http{status}", headers or {}, times))

    def writes(self) -> list[tuple[str, str, Any]]:
        """The PUT/PATCH/POST/DELETE requests received so far."""
        return [r for r in self.requests if r[0] != "GET"]

    # -- request handling --------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append((h.command, url.path, body))
            status, headers, payload = self._route(h.command, url.path, url.query, body)
        data = json.dumps(payload).encode() if payload is not None else b""
        h.send_response(status)
        for name, value in headers.items():
            h.send_header(name, value)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _route(self, method: str, path: str, query: str, body: Any) -> tuple[int, dict[str, str], Any]:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.path_contains in path:
                fault.times -= 1
                return fault.status, fault.headers, _error(fault.code, f"injected {fault.status} for {method} {path}")
        if f"api-version={API_VERSION}" not in query and not (_STATUS.match(path) or _RESULT.match(path)):
            return 400, {}, _error("MissingApiVersionParameter", "The api-version query parameter is required.")
        if m := _STATUS.match(path):
            return self._status(m.group(3))
        if m := _RESULT.match(path):
            return self._result(m.group(3))
        if m := _ASSIGNMENTS.match(path):
            return self._assignment_list(method, path, query, *m.group(2, 3, 4))
        if m := _ASSIGNMENT.match(path):
            return self._assignment(method, *m.group(2, 3, 4, 5), body)
        if m := _DATABASE.match(path):
            return self._database(method, m.group(2), m.group(3), m.group(4), body)
        if m := _CLUSTER.match(path):
            return self._cluster(method, m.group(2), m.group(3), body)
        return 404, {}, _error("NotFound", f"no route for {method} {path}")

    def _missing_group(self, rg: str) -> tuple[int, dict[str, str], Any] | None:
        if rg.lower() not in {g.lower() for g in self.resource_groups}:
            return 404, {}, _error("ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        return None

    def _cluster(self, method: str, rg: str, name: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if missing := self._missing_group(rg):
            return missing
        key = (rg.lower(), name.lower())
        current = self.clusters.get(key)
        if method == "GET":
            if current is None:
                return 404, {}, _error("ResourceNotFound", f"The Resource 'Microsoft.Cache/redisEnterprise/{name}' under "
                                                           f"resource group '{rg}' was not found.")
            return 200, self._poll_resource(current), current
        if method == "PUT" and current is None:
            props = body.get("properties") or {}
            if not body.get("location") or not (body.get("sku") or {}).get("name") or "publicNetworkAccess" not in props:
                return 400, {}, _error("InvalidRequestBody", "location, sku.name and properties.publicNetworkAccess are required")
            created = self.add_cluster(rg, name, sku=body["sku"]["name"], **{**props, "provisioningState": "Creating"})
            created["location"] = body["location"]
            if "capacity" in body["sku"]:
                created["sku"]["capacity"] = body["sku"]["capacity"]

            def finish() -> None:
                created["properties"]["provisioningState"] = "Succeeded"
            return self._accepted(201, created, finish, created)
        if method == "PATCH" and current is not None:
            props = body.get("properties") or {}
            if props.get("highAvailability") == "Disabled" and current["properties"].get("highAvailability") == "Enabled":
                return 409, {}, _error("Conflict", "High availability cannot be disabled on an existing cluster.")
            return self._patch(current, props, top={k: body[k] for k in ("sku", "tags") if k in body})
        return 405, {}, _error("MethodNotAllowed", f"{method} is not supported here")

    def _database(self, method: str, rg: str, cluster: str, name: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if missing := self._missing_group(rg):
            return missing
        key = (rg.lower(), cluster.lower(), name.lower())
        current = self.databases.get(key)
        if (rg.lower(), cluster.lower()) not in self.clusters or (current is None and method != "PUT"):
            return 404, {}, _error("ResourceNotFound", f"The Resource 'Microsoft.Cache/redisEnterprise/{cluster}/databases/"
                                                       f"{name}' under resource group '{rg}' was not found.")
        if method == "GET":
            return 200, self._poll_resource(current), current
        props = (body or {}).get("properties") or {}
        if method == "PUT" and current is None:
            created = self.add_database(rg, cluster, name, **{**props, "provisioningState": "Creating"})

            def finish() -> None:
                created["properties"]["provisioningState"] = "Succeeded"
            return self._accepted(201, created, finish, created)
        if method == "PATCH":
            for prop in _CREATE_ONLY:
                if prop in props and props[prop] != current["properties"].get(prop):
                    return 409, {}, _error("Conflict", f"{prop} can only be set when the database is created.")
            policy = props.get("clusteringPolicy")
            if policy and policy != current["properties"]["clusteringPolicy"] and current["properties"]["clusteringPolicy"] != "NoCluster":
                return 409, {}, _error("Conflict", "The clustering policy can be updated only if the current value is NoCluster.")
            return self._patch(current, props)
        return 405, {}, _error("MethodNotAllowed", f"{method} is not supported here")

    def _patch(self, current: dict[str, Any], props: dict[str, Any], top: dict[str, Any] | None = None) -> tuple[int, dict[str, str], Any]:
        """PATCH: 202 now, the change lands when the operation's status turns Succeeded (as on ARM)."""
        current["properties"]["provisioningState"] = "Updating"
        changes = copy.deepcopy(props)
        top = copy.deepcopy(top or {})

        def finish() -> None:
            if "persistence" in changes:
                current["properties"]["persistence"] = {**current["properties"].get("persistence", {}), **changes.pop("persistence")}
            current["properties"].update(changes)
            current.update(top)
            current["properties"]["provisioningState"] = "Succeeded"
        return self._accepted(202, None, finish, current)

    def _accepted(self, status: int, payload: Any, finish: Callable[[], None], resource: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        op = f"op{next(self._ids)}"
        self._operations[op] = _Operation(finish, self.polls, resource)
        base = f"{self.base_url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Cache/locations/{self.location}"
        if self.lro == "location":  # a PUT (create) answers 200/201 only, with its body, per the specification
            headers = {"Location": f"{base}/operationResults/{op}", "Retry-After": self.retry_after}
            return (201, headers, copy.deepcopy(resource)) if status == 201 else (202, headers, None)
        if self.lro == "provisioning-state":
            self._by_resource[id(resource)] = op
            return (201 if status == 201 else 200), {"Retry-After": self.retry_after}, copy.deepcopy(resource)
        url = f"{base}/operationsStatus/{op}"
        headers = {"Azure-AsyncOperation": url, "Retry-After": self.retry_after}
        if status == 202:
            headers["Location"] = url
        return status, headers, payload

    def _advance(self, op: _Operation) -> str:
        """One poll of ``op``: InProgress while polls are left, then Failed (``operation_error``) or Succeeded."""
        if op.status == "InProgress":
            if op.polls_left > 0:
                op.polls_left -= 1
                return op.status
            if self.operation_error is not None:
                op.status = "Failed"
                op.resource["properties"]["provisioningState"] = "Failed"
                return op.status
            op.apply()
            op.status = "Succeeded"
        return op.status

    def _result(self, op_id: str) -> tuple[int, dict[str, str], Any]:
        """A ``Location`` URL: 202 while running; then the resource (200), or the operation's error as an error status."""
        op = self._operations.get(op_id)
        if op is None:
            return 404, {}, _error("ResourceNotFound", f"operation {op_id} not found")
        status = self._advance(op)
        if status == "InProgress":
            return 202, {"Location": f"{self.base_url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Cache/locations/"
                                     f"{self.location}/operationResults/{op_id}", "Retry-After": self.retry_after}, None
        if status == "Failed":
            assert self.operation_error is not None
            return 400, {}, {"error": self.operation_error}
        return 200, {}, op.resource

    def _poll_resource(self, resource: dict[str, Any]) -> dict[str, str]:
        """A GET of a resource whose operation is followed by its provisioningState moves that operation on
        (with a Retry-After while it runs, as ARM may send, so that clients do not wait their 30 s default)."""
        op_id = self._by_resource.get(id(resource))
        if op_id is None:
            return {}
        if self._advance(self._operations[op_id]) == "InProgress":
            return {"Retry-After": self.retry_after}
        del self._by_resource[id(resource)]
        return {}

    def _status(self, op_id: str) -> tuple[int, dict[str, str], Any]:
        op = self._operations.get(op_id)
        if op is None:
            return 404, {}, _error("ResourceNotFound", f"operation {op_id} not found")
        status = self._advance(op)
        if status == "InProgress":
            return 200, {"Retry-After": self.retry_after}, {"id": op_id, "name": op_id, "status": "InProgress"}
        if status == "Failed":
            return 200, {}, {"id": op_id, "name": op_id, "status": "Failed", "error": self.operation_error}
        return 200, {}, {"id": op_id, "name": op_id, "status": op.status}

    # -- access policy assignments (Entra ID data-plane users of a database) -------------------------
    #
    # Spec (redisenterprise 2025-07-01): PUT .../accessPolicyAssignments/{name} is an LRO answering 200/201
    # (final-state-via original-uri); DELETE answers 202 (Azure-AsyncOperation and Location) or 204
    # (final-state-via azure-async-operation); GET of the collection is pageable (nextLink). The name matches
    # ^[A-Za-z0-9]{1,60}$; the body's properties require accessPolicyName and user.

    def add_access_policy_assignment(self, rg: str, cluster: str, name: str, object_id: str, db: str = "default",
                                     access_policy: str = "default") -> dict[str, Any]:
        """Seed an assignment as ARM returns it. The name is not checked: the portal creates GUID names with
        hyphens, which the spec's pattern refuses (Azure/azure-cli#33444)."""
        body = {
            "id": f"{self.cluster_id(rg, cluster)}/databases/{db}/accessPolicyAssignments/{name}", "name": name,
            "type": ASSIGNMENT_TYPE,
            "properties": {"provisioningState": "Succeeded", "accessPolicyName": access_policy, "user": {"objectId": object_id}},
        }
        self.assignments[(rg.lower(), cluster.lower(), db.lower(), name.lower())] = body
        return body

    def access_policy_assignment(self, rg: str, cluster: str, name: str, db: str = "default") -> dict[str, Any] | None:
        return self.assignments.get((rg.lower(), cluster.lower(), db.lower(), name.lower()))

    def _database_missing(self, rg: str, cluster: str, db: str) -> tuple[int, dict[str, str], Any] | None:
        if missing := self._missing_group(rg):
            return missing
        if (rg.lower(), cluster.lower(), db.lower()) not in self.databases:
            return 404, {}, _error("ResourceNotFound", f"The Resource 'Microsoft.Cache/redisEnterprise/{cluster}/databases/"
                                                       f"{db}' under resource group '{rg}' was not found.")
        return None

    def _assignment_list(self, method: str, path: str, query: str, rg: str, cluster: str, db: str) -> tuple[int, dict[str, str], Any]:
        if method != "GET":
            return 405, {}, _error("MethodNotAllowed", f"{method} is not supported here")
        if missing := self._database_missing(rg, cluster, db):
            return missing
        prefix = (rg.lower(), cluster.lower(), db.lower())
        items = [body for key, body in self.assignments.items() if key[:3] == prefix]
        start = int(parse_qs(query).get("$skipToken", ["0"])[0])
        size = self.assignment_page_size or len(items) or 1
        page: dict[str, Any] = {"value": items[start:start + size]}
        if start + size < len(items):
            page["nextLink"] = f"{self.base_url}{path}?api-version={API_VERSION}&$skipToken={start + size}"
        return 200, {}, page

    def _assignment(self, method: str, rg: str, cluster: str, db: str, name: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if missing := self._database_missing(rg, cluster, db):
            return missing
        key = (rg.lower(), cluster.lower(), db.lower(), name.lower())
        current = self.assignments.get(key)
        if method == "GET":
            if current is None:
                return 404, {}, _error("ResourceNotFound", f"The Resource 'Microsoft.Cache/redisEnterprise/{cluster}/databases/"
                                                           f"{db}/accessPolicyAssignments/{name}' under resource group '{rg}' "
                                                           "was not found.")
            return 200, self._poll_resource(current), current
        if method == "DELETE":
            if current is None:
                return 204, {}, None  # ARM: deleting what does not exist succeeds with 204 No Content

            def remove() -> None:
                self.assignments.pop(key, None)
            current["properties"]["provisioningState"] = "Deleting"
            return self._spec_lro("azure-async-operation", 202, None, remove, current)
        if method != "PUT":
            return 405, {}, _error("MethodNotAllowed", f"{method} is not supported here")
        if not ASSIGNMENT_NAME.fullmatch(name):
            return 400, {}, _error("InvalidResourceName", f"The access policy assignment name '{name}' is invalid: it must "
                                                          "match ^[A-Za-z0-9]{1,60}$.")
        props = (body or {}).get("properties") or {}
        object_id = (props.get("user") or {}).get("objectId")
        policy = props.get("accessPolicyName")
        if not object_id or not policy:
            return 400, {}, _error("InvalidRequestBody", "properties.accessPolicyName and properties.user.objectId are required.")
        if policy != "default":
            return 400, {}, _error("InvalidRequestBody", f"Access policy '{policy}' does not exist: only 'default' is supported.")
        for other_key, other in self.assignments.items():
            if other_key[:3] == key[:3] and other_key != key and other["properties"]["user"]["objectId"].lower() == object_id.lower():
                return 409, {}, _error("Conflict", f"Object id '{object_id}' already has the access policy assignment "
                                                   f"'{other['name']}' on this database.")
        # the style of the other PUTs (``lro``), except a 202 Location, which this PUT never answers (200/201 only)
        style = "azure-async-operation" if self.lro == "location" else self.lro
        if current is None:
            created = self.add_access_policy_assignment(rg, cluster, name, object_id, db, policy)
            created["properties"]["provisioningState"] = "Creating"

            def created_done() -> None:
                created["properties"]["provisioningState"] = "Succeeded"
            return self._spec_lro(style, 201, created, created_done, created)
        current["properties"]["provisioningState"] = "Updating"

        def updated() -> None:
            current["properties"].update(accessPolicyName=policy, user={"objectId": object_id}, provisioningState="Succeeded")
        return self._spec_lro(style, 200, current, updated, current)

    def _spec_lro(self, style: str, status: int, payload: Any, finish: Callable[[], None],
                  resource: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """``_accepted`` in the LRO style the spec gives this operation, whatever ``lro`` other requests use."""
        saved, self.lro = self.lro, style  # requests are handled one at a time (under _lock)
        try:
            return self._accepted(status, copy.deepcopy(payload), finish, resource)
        finally:
            self.lro = saved


SPEC_EXAMPLES = Path(__file__).parent / "azure_spec" / API_VERSION / "examples"


def spec_example(name: str) -> dict[str, Any]:
    """An example file of the official specification (``RedisEnterpriseUpdate.json``...), as stored verbatim."""
    loaded: dict[str, Any] = json.loads((SPEC_EXAMPLES / name).read_text())
    return loaded


class FakeCredential:
    """Stands in for DefaultAzureCredential: the emulator does not check tokens."""

    def get_token(self, *scopes: str, **kwargs: object) -> Any:
        import time

        from azure.core.credentials import AccessToken

        return AccessToken("fake-token", int(time.time()) + 3600)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
