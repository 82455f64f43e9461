"""What a reader found on a live instance, and the name maps between the policy and plain Redis.

Settings land in the policy's own ``InstancePolicy`` so that plan compares like with like; the
facts nobody declares (host name, version, provisioning state...) live in ``LiveState``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from toolkit.policy.model import AccessPolicyAssignment, InstancePolicy, Module, Persistence

EVICTION_TO_REDIS: Mapping[str, str] = MappingProxyType({
    "AllKeysLFU": "allkeys-lfu", "AllKeysLRU": "allkeys-lru", "AllKeysRandom": "allkeys-random",
    "VolatileLRU": "volatile-lru", "VolatileLFU": "volatile-lfu", "VolatileTTL": "volatile-ttl",
    "VolatileRandom": "volatile-random", "NoEviction": "noeviction",
})
EVICTION_FROM_REDIS: Mapping[str, str] = MappingProxyType({v: k for k, v in EVICTION_TO_REDIS.items()})
AOF_TO_FSYNC: Mapping[str, str] = MappingProxyType({"1s": "everysec", "always": "always"})
RDB_TO_SAVE: Mapping[str, str] = MappingProxyType({"1h": "3600 1", "6h": "21600 1", "12h": "43200 1"})


@dataclass(frozen=True)
class ArmStatus:
    """ARM's view of one resource: ``provisioning`` (Succeeded, Updating...) and ``resource`` (Running...)."""

    provisioning: str | None = None
    resource: str | None = None

    @property
    def busy(self) -> bool:
        return self.provisioning is not None and self.provisioning.lower() not in ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class LiveState:
    """One read of an instance. ``settings`` uses None for what the instance does not report."""

    provider: str
    where: str
    """The ARM id of the database, or the Redis address: what the plan talks about."""
    settings: InstancePolicy = InstancePolicy()
    cluster_exists: bool = True
    database_exists: bool = True
    host_name: str | None = None
    port: int | None = None
    redis_version: str | None = None
    cluster_status: ArmStatus | None = None
    database_status: ArmStatus | None = None
    config_file: str | None = None
    """Plain Redis: the server's config file ("" when it runs without one, so CONFIG REWRITE cannot persist)."""
    nodes: tuple[str, ...] = ()
    divergent: Mapping[str, str] = field(default_factory=dict)
    """Plain Redis cluster: setting -> how the nodes disagree (every node is compared, not just the first)."""
    published_digest: str | None = None
    published_error: str | None = None
    """Why the published policy could not be read (the data plane was unreachable), or None."""
    access_policy_assignments: tuple[AccessPolicyAssignment, ...] | None = None
    """Azure: the database's Entra ID access policy assignments as listed (name, lowercase object id, access
    policy), sorted by name; None when not read (no database, or a provider without them)."""


def eviction_from_redis(raw: str) -> str:
    """``allkeys-lru`` -> ``AllKeysLRU``; an unknown name is kept as is so the plan shows it."""
    return EVICTION_FROM_REDIS.get(raw, raw)


def persistence_from_redis(appendonly: str, appendfsync: str, save: str) -> Persistence:
    """Map CONFIG values to the policy's Persistence; settings it cannot name are kept verbatim."""
    aof = None
    if appendonly == "yes":
        aof = next((k for k, v in AOF_TO_FSYNC.items() if v == appendfsync), f"appendfsync {appendfsync}")
    save = " ".join(save.split())
    rdb = next((k for k, v in RDB_TO_SAVE.items() if v == save), f"save {save}") if save else None
    return Persistence(aof=aof, rdb=rdb)


def persistence_to_redis(p: Persistence) -> list[tuple[str, str]]:
    """CONFIG SET pairs, in an order that never runs AOF with a stale fsync setting."""
    pairs: list[tuple[str, str]] = []
    if p.aof is not None:
        pairs.append(("appendfsync", AOF_TO_FSYNC[p.aof]))
    pairs.append(("appendonly", "yes" if p.aof is not None else "no"))
    pairs.append(("save", RDB_TO_SAVE[p.rdb] if p.rdb is not None else ""))
    return pairs


def to_json(value: object) -> object:
    """A setting as it appears in plans (JSON output included): Persistence and modules flattened."""
    if isinstance(value, Persistence):
        if value.aof is None and value.rdb is None:
            return "disabled"
        return {k: v for k, v in (("aof", value.aof), ("rdb", value.rdb)) if v is not None}
    if isinstance(value, tuple) and all(isinstance(m, Module) for m in value):
        return [m.name if not m.args else {"name": m.name, "args": m.args} for m in value]
    return value
