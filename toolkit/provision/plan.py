"""The plan: every difference between a target's declared instance and the live one, classified.

Computed first (here, no I/O), rendered second (``render``), executed third (``apply``). A change
is an in-place ``update``, a ``create`` of a missing resource, or ``blocked`` with the reason and
what to do instead. Nothing that would lose data is ever an ``update``: changing the clustering
policy (except from NoCluster), modules, geo-replication or the port means re-creating the
database, which is exactly the change terraform-provider-azurerm #31722 hides inside an update.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

from toolkit.errors import ConfigurationError
from toolkit.policy.model import InstancePolicy, Module, Persistence, PolicySet, Target, resolve_env
from toolkit.policy.secrets import shown
from toolkit.provision.state import LiveState, to_json

UPDATE, CREATE, BLOCKED = "update", "create", "blocked"
ERROR, WARNING = "error", "warning"
AZURE, REDIS = "azure-managed-redis", "redis"

CLUSTER_FIELDS = ("sku", "capacity", "high_availability", "minimum_tls_version", "public_network_access")
DATABASE_FIELDS = ("client_protocol", "clustering_policy", "eviction_policy", "persistence", "modules",
                   "access_keys_authentication", "geo_replication_group")
PLAIN_FIELDS = ("clustering_policy", "eviction_policy", "persistence")
_RECREATE = ("export the data (az redisenterprise database export), delete the database yourself, run apply to create "
             "it again with the new setting, then import the data")


@dataclass(frozen=True)
class Change:
    """One difference. ``before``/``after`` are JSON-ready values (see ``state.to_json``)."""

    resource: str
    """``cluster``, ``database`` (Azure), ``server`` (plain Redis) or ``policy`` (the published record)."""
    setting: str
    action: str
    before: object = None
    after: object = None
    reason: str = ""
    """For ``blocked``: why it cannot be done in place."""
    remedy: str = ""
    """For ``blocked``: what the user must do instead."""
    note: str = ""
    """For ``update``/``create``: side effects worth knowing before applying."""
    data_loss: bool = False
    """True when the only way to reach the declared value loses the data (re-creating the resource)."""

    def as_dict(self) -> dict[str, object]:
        return {"action": self.action, "resource": self.resource, "setting": self.setting, "before": self.before,
                "after": self.after, "reason": self.reason or None, "remedy": self.remedy or None,
                "note": self.note or None, "data_loss": self.data_loss}


@dataclass(frozen=True)
class Finding:
    """A cross-check between the instance and the namespaces; an ``error`` blocks apply like a blocked change."""

    severity: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class Plan:
    target: Target
    policy_digest: str
    live: LiveState
    changes: tuple[Change, ...]
    findings: tuple[Finding, ...]

    @property
    def pending(self) -> tuple[Change, ...]:
        """The changes apply would make."""
        return tuple(c for c in self.changes if c.action != BLOCKED)

    @property
    def blocked(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == BLOCKED)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)

    @property
    def refused(self) -> bool:
        """True when apply must not run: a blocked change or an error finding."""
        return bool(self.blocked or self.errors)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


def compute_plan(policy: PolicySet, target: Target, live: LiveState, *, publish: bool = True) -> Plan:
    """Compare ``target.instance`` (and the published policy, when ``publish``) with ``live``."""
    declared = target.instance
    if target.provider == AZURE:
        changes = list(_azure_changes(target, declared, live))
    else:
        changes = list(_plain_changes(declared, live))
    if publish and live.published_error is None and live.published_digest != policy.digest:
        changes.append(Change("policy", "published_policy", UPDATE if live.published_digest else CREATE,
                              live.published_digest, policy.digest))
    return Plan(target, policy.digest, live, tuple(changes), tuple(_findings(policy, target, live, publish)))


# -- differences ---------------------------------------------------------------------------------

def _declared_items(declared: InstancePolicy, names: tuple[str, ...]) -> Iterator[tuple[str, object]]:
    for name in names:
        value = getattr(declared, name)
        if value is not None and not (name == "clustering_policy" and value == "auto"):
            yield name, value


def _same(name: str, want: object, have: object) -> bool:
    if name == "modules":
        # Both sides are InstancePolicy.modules: a tuple of Module, and only the live one may be None.
        assert isinstance(want, tuple) and (have is None or isinstance(have, tuple))
        have_by_name = {m.name: m.args for m in have or ()}
        want_mods: tuple[Module, ...] = want
        return set(have_by_name) == {m.name for m in want_mods} and all(
            not m.args or m.args == have_by_name[m.name] for m in want_mods)
    return want == have


def _azure_changes(target: Target, declared: InstancePolicy, live: LiveState) -> Iterator[Change]:
    if not live.cluster_exists:
        yield _create_cluster(target, declared)
    if not live.database_exists:
        yield _create_database(target, declared)
    for name, want in _declared_items(declared, CLUSTER_FIELDS + DATABASE_FIELDS):
        resource = "cluster" if name in CLUSTER_FIELDS else "database"
        if not (live.cluster_exists if resource == "cluster" else live.database_exists):
            continue  # the create change carries it
        have = getattr(live.settings, name)
        if not _same(name, want, have):
            yield _azure_change(resource, name, have, want)
    port = declared_port(target)
    if live.database_exists and port is not None and live.port is not None and port != live.port:
        yield Change("database", "port", BLOCKED, live.port, _shown_port(target, port),
                     reason="the port is chosen when the database is created (Azure Managed Redis accepts only 10000)",
                     remedy=f"set the target's port to {live.port}", data_loss=True)


def _azure_change(resource: str, name: str, have: object, want: object) -> Change:
    before, after = to_json(have), to_json(want)
    if name == "high_availability" and have is True and want is False:
        return Change(resource, name, BLOCKED, before, after, data_loss=True,
                      reason="high availability cannot be switched off on an existing cluster",
                      remedy="keep high_availability: true, or create a new cluster without it and migrate the data")
    if name == "clustering_policy" and have != "NoCluster":
        return Change(resource, name, BLOCKED, before, after, data_loss=True,
                      reason=f"the clustering policy can change only from NoCluster: going from {have} to {want} means "
                             f"deleting and re-creating the database, which loses all its data",
                      remedy=f"declare clustering_policy: {have} (or auto), or {_RECREATE}")
    if name in ("modules", "geo_replication_group"):
        label = "modules" if name == "modules" else "the geo-replication group"
        return Change(resource, name, BLOCKED, before, after, data_loss=True,
                      reason=f"{label} can be chosen only when the database is created",
                      remedy=f"declare {name}: {_show(before)} to match the instance, or {_RECREATE}")
    return Change(resource, name, UPDATE, before, after, note=_update_note(name, have, want))


def _update_note(name: str, have: object, want: object) -> str:
    if name in ("sku", "capacity"):
        return "scales the cluster in place; Azure refuses a size it cannot scale to (that would need a new cluster)"
    if name == "access_keys_authentication" and want is False:
        return "disabling access keys ends every connection that authenticated with one"
    if name == "public_network_access" and want is False:
        return "clients outside a private endpoint lose access"
    if name == "client_protocol":
        return "clients must switch TLS at the same time (the target's tls setting)"
    if name == "persistence" and isinstance(want, Persistence) and want.aof is None and want.rdb is None:
        return "data will no longer survive a restart"
    if name == "clustering_policy":
        return "from NoCluster; OSSCluster then needs a cluster-aware client" if want == "OSSCluster" else "from NoCluster"
    return ""


def _plain_changes(declared: InstancePolicy, live: LiveState) -> Iterator[Change]:
    for name, want in _declared_items(declared, PLAIN_FIELDS):
        have = getattr(live.settings, name)
        if _same(name, want, have) and name not in live.divergent:
            continue
        before = live.divergent.get(name) or to_json(have)
        after = to_json(want)
        if name == "clustering_policy":
            if want == "EnterpriseCluster":
                yield Change("server", name, BLOCKED, before, after, reason="EnterpriseCluster is an Azure proxy; "
                             "a plain Redis server is either a cluster (OSSCluster) or not (NoCluster)",
                             remedy=f"declare clustering_policy: {have} (or auto)")
            else:
                yield Change("server", name, BLOCKED, before, after, data_loss=True,
                             reason="cluster mode (cluster-enabled) is fixed when redis-server starts",
                             remedy=f"declare clustering_policy: {have} (or auto), or rebuild the deployment "
                                    f"{'with' if want == 'OSSCluster' else 'without'} --cluster-enabled yes and reload the data")
        else:
            yield Change("server", name, UPDATE, before, after, note=_update_note(name, have, want))


def _create_cluster(target: Target, declared: InstancePolicy) -> Change:
    assert target.azure is not None
    location = _resolved(target.azure.location, f"target {target.name}: azure.location")
    missing = [label for label, value in (("azure.location", location), ("instance.sku", declared.sku),
                                          ("instance.public_network_access", declared.public_network_access))
               if value is None]
    after = {"location": shown(target.azure.location) if location is not None else None,
             **{n: to_json(v) for n, v in _declared_items(declared, CLUSTER_FIELDS)}}
    if missing:
        return Change("cluster", "", BLOCKED, None, after,
                      reason=f"cluster {target.azure.cluster!r} does not exist and cannot be created: "
                             f"the target does not declare {', '.join(missing)}",
                      remedy=f"declare {', '.join(missing)} in target {target.name!r}, or point azure.cluster at an "
                             f"existing cluster")
    return Change("cluster", "", CREATE, None, after, note="a new cluster takes several minutes to provision")


def _create_database(target: Target, declared: InstancePolicy) -> Change:
    after: dict[str, object] = {n: to_json(v) for n, v in _declared_items(declared, DATABASE_FIELDS)}
    port = declared_port(target)
    if port is not None:
        after["port"] = _shown_port(target, port)
    notes = []
    if "clustering_policy" not in after:
        notes.append("clustering_policy is not declared: Azure uses OSSCluster, which can never be changed afterwards")
    if "access_keys_authentication" not in after:
        notes.append("access_keys_authentication is not declared: Azure disables access keys")
    return Change("database", "", CREATE, None, after, note="; ".join(notes))


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


# -- cross-checks between the instance and the namespaces ----------------------------------------

def effective(target: Target, live: LiveState) -> InstancePolicy:
    """What the instance will be once applied: declared values win, the rest is live (Azure defaults if missing)."""
    declared, have = target.instance, live.settings
    gone = set(CLUSTER_FIELDS if not live.cluster_exists else ()) | set(DATABASE_FIELDS if not live.database_exists else ())
    values = {}
    for f in fields(InstancePolicy):
        want = getattr(declared, f.name)
        values[f.name] = want if want is not None and want != "auto" else (None if f.name in gone else getattr(have, f.name))
    if target.provider == AZURE and not live.database_exists:
        values = {**{"clustering_policy": "OSSCluster", "eviction_policy": "VolatileLRU",
                     "access_keys_authentication": False},
                  **{k: v for k, v in values.items() if v is not None}}
    return InstancePolicy(**values)


def _findings(policy: PolicySet, target: Target, live: LiveState, publish: bool) -> Iterator[Finding]:
    eff = effective(target, live)
    eviction = eff.eviction_policy or ""
    persistent = sorted(n.name for n in policy.namespaces.values() if not n.expires)
    caches = sorted(n.name for n in policy.namespaces.values() if n.expires)
    if persistent and eviction.startswith("Volatile"):
        yield Finding(WARNING, "persistent-under-volatile-eviction",
                      f"persistent namespaces ({', '.join(persistent)}) keep keys without TTL, which {eviction} never "
                      f"evicts: if they fill the memory, writes fail with OOM once no expiring key is left to evict")
    if persistent and eviction.startswith("AllKeys"):
        yield Finding(ERROR, "persistent-may-be-evicted",
                      f"persistent namespaces ({', '.join(persistent)}) must never lose keys, but {eviction} evicts "
                      f"any key when memory is full: use a Volatile* policy or NoEviction")
    if caches and eviction == "NoEviction":
        yield Finding(WARNING, "cache-under-noeviction",
                      f"{len(caches)} cache namespaces ({_first(caches)}) run under NoEviction: when memory is full, "
                      f"writes fail with OOM instead of evicting old entries (keep it only if RediSearch needs it)")
    if target.auth.type == "access-key" and target.provider == AZURE and eff.access_keys_authentication is False:
        yield Finding(ERROR, "access-key-disabled",
                      "the target authenticates with an access key but access_keys_authentication is disabled: "
                      "declare access_keys_authentication: true, or switch the target's auth to entra-id")
    if any(m.name == "RediSearch" for m in eff.modules or ()) and (
            eff.clustering_policy != "EnterpriseCluster" or eviction != "NoEviction"):
        yield Finding(ERROR, "redisearch-requirements",
                      f"RediSearch needs clustering_policy EnterpriseCluster and eviction_policy NoEviction "
                      f"(here {eff.clustering_policy} and {eviction or 'unknown'}); Azure refuses anything else")
    if eff.clustering_policy == "OSSCluster" and target.instance.clustering_policy is None:
        yield Finding(ERROR, "oss-cluster-needs-cluster-client",
                      "the instance uses OSSCluster but the target does not declare clustering_policy, so "
                      "applications get a non-cluster client that fails with MOVED: declare clustering_policy: "
                      "OSSCluster (or auto)")
    for name, how in sorted(live.divergent.items()):
        if getattr(target.instance, name) is None:
            yield Finding(WARNING, "nodes-disagree", f"the cluster's nodes disagree on {name}: {how}")
    for resource, status in (("cluster", live.cluster_status), ("database", live.database_status)):
        if status is not None and status.busy:
            yield Finding(WARNING, "operation-in-progress",
                          f"the {resource} is {status.provisioning}: Azure refuses changes (409) until it finishes")
    host = _resolved(target.host, f"target {target.name}: host")
    if host and live.host_name and host.lower() != live.host_name.lower():
        yield Finding(WARNING, "host-mismatch",
                      f"the target connects to {shown(target.host)} but this cluster's host name is {live.host_name}")
    if publish and live.published_error:
        yield Finding(WARNING, "published-policy-unread", f"the published policy could not be read: {live.published_error}")


def _first(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
