"""The policy model: plain frozen dataclasses shared by the runtime, the provisioner and the audit.

Everything here is already checked by the loader; code that receives a PolicySet can trust
it. Durations are integer milliseconds. Target fields may still hold ``${ENV_VAR}``
references: they are resolved only where a value is used (``resolve_env``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from toolkit.errors import ConfigurationError, PolicyViolation, brief
from toolkit.policy.durations import format_duration
from toolkit.policy.templates import KeyTemplate, Param

if TYPE_CHECKING:
    from toolkit.policy.classify import Classifier

PERSISTENT = "persistent"
RESERVED_INDEX_PREFIX = "__toolkit__:idx:"
RESERVED_PARAM_NAMES = frozenset({
    "value", "values", "ttl", "nx", "xx", "mapping", "field", "fields", "start", "end", "count", "amount",
    "loader", "items", "params", "params_list",
})
"""Options of the engine's handle methods; a key parameter may not take one of these names."""
NAMESPACE_TYPES = ("string", "hash", "list", "counter")


@dataclass(frozen=True)
class Tier:
    """A TTL band; ``max_ms`` None means no upper bound (static)."""

    name: str
    min_ms: int
    max_ms: int | None
    default_ms: int
    description: str = ""

    def contains(self, ttl_ms: int) -> bool:
        return ttl_ms >= self.min_ms and (self.max_ms is None or ttl_ms <= self.max_ms)


BUILTIN_TIERS: Mapping[str, Tier] = MappingProxyType({
    "volatile": Tier("volatile", 60_000, 300_000, 300_000, "frequently changing data: 1-5 minutes"),
    "moderate": Tier("moderate", 900_000, 3_600_000, 1_800_000, "moderate change rate: 15-60 minutes"),
    "stable": Tier("stable", 3_600_000, 86_400_000, 3_600_000, "relatively stable data: 1-24 hours"),
    "static": Tier("static", 86_400_000, None, 86_400_000, "static reference data: 24 hours and more"),
})


@dataclass(frozen=True)
class CacheAside:
    """How ``get_or_load`` behaves for a namespace."""

    lock: bool = False
    lock_timeout_ms: int = 5_000
    wait_timeout_ms: int = 2_000
    early_refresh_beta: float | None = None
    negative_ttl_ms: int | None = None


@dataclass(frozen=True)
class LocalCache:
    """A near cache: reads served from process memory, kept coherent by Redis's invalidation messages."""

    max_entries: int = 10_000
    ttl_ms: int = 30_000


@dataclass(frozen=True)
class Namespace:
    """A family of keys sharing a template, a Redis type and a TTL policy."""

    name: str
    template: KeyTemplate
    type: str
    tier: str
    ttl_ms: int | None
    """None only for ``tier: persistent``: keys that must never expire."""
    tier_min_ms: int | None
    tier_max_ms: int | None
    jitter_ms: int = 0
    jitter_percent: int = 0
    codec: str = "text"
    max_length: int | None = None
    params: Mapping[str, Param] = field(default_factory=dict)
    hash_tag: str | None = None
    owner: str = ""
    description: str = ""
    reason: str = ""
    on_error: str = "fail-open"
    cache_aside: CacheAside = CacheAside()
    trace_params: bool = False
    """Record key parameter values on OpenTelemetry spans (off by default: they may be personal data)."""
    local_cache: LocalCache | None = None

    @property
    def literal_prefix(self) -> str:
        """The literal text every key starts with ("" when the key starts with a parameter)."""
        first = self.template.parts[0] if self.template.parts else ""
        return first if isinstance(first, str) else ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_build", self.template.builder(self.params, self.hash_tag, f"namespace {self.name!r}"))

    @property
    def expires(self) -> bool:
        return self.ttl_ms is not None

    @property
    def max_jitter_ms(self) -> int:
        """Largest random extra TTL added to a write."""
        if self.ttl_ms is None:
            return 0
        return self.jitter_ms or self.ttl_ms * self.jitter_percent // 100

    def key(self, **params: object) -> str:
        """Build a key from its parameters; PolicyViolation when one is missing, extra or unsafe."""
        return self._build(params)  # type: ignore[attr-defined]

    def build_key(self, params: Mapping[str, object]) -> str:
        """``key`` for a mapping of parameters (no keyword unpacking on the engine's hot path)."""
        return self._build(params)  # type: ignore[attr-defined]

    def check_ttl(self, ttl_ms: int) -> None:
        """Refuse an explicit TTL outside this namespace's tier."""
        if self.ttl_ms is None:
            raise PolicyViolation(f"namespace {self.name!r} is persistent: its keys take no TTL")
        low, high = self.tier_min_ms or 0, self.tier_max_ms
        if ttl_ms < low or (high is not None and ttl_ms > high):
            bound = f"{format_duration(low)} to {format_duration(high) if high is not None else 'no upper bound'}"
            raise PolicyViolation(f"namespace {self.name!r}: TTL {format_duration(ttl_ms)} is outside tier {self.tier!r} ({bound})")


@dataclass(frozen=True)
class InvalidationRule:
    """What to delete when something changes; every template of a rule uses the same ``params``."""

    name: str
    namespaces: tuple[str, ...]
    keys: tuple[KeyTemplate, ...]
    match: tuple[KeyTemplate, ...]
    params: tuple[str, ...]
    hash_tag: str | None = None
    description: str = ""
    index: str | None = None
    """Parameter whose value keys a per-entity set of written keys (see ``indexed``)."""
    indexed: tuple[str, ...] = ()
    """Namespaces whose keys the rule's ``match`` covers: their writes record keys in the index."""

    def index_key(self, value: str) -> str:
        """The set holding the keys written for one value of the indexed parameter (same slot when hash-tagged)."""
        tagged = "{" + value + "}" if self.hash_tag == self.index else value
        return f"{RESERVED_INDEX_PREFIX}{self.name}:{tagged}"


@dataclass(frozen=True)
class Auth:
    """How a client authenticates: ``none``, ``access-key`` (from ``env``) or ``entra-id``."""

    type: str = "none"
    env: str | None = None
    username: str | None = None
    identity: str = "default"
    client_id: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True)
class Persistence:
    """At most one of AOF (``1s``/``always``) or RDB (``1h``/``6h``/``12h``); both None means disabled."""

    aof: str | None = None
    rdb: str | None = None


@dataclass(frozen=True)
class Module:
    name: str
    args: str = ""


ENTRA_OBJECT_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""An Entra ID object id: a GUID (``fullmatch``). Version and variant bits are not checked (the ARM examples' ids lack them)."""
ACCESS_POLICY_ASSIGNMENT_NAME = re.compile(r"[A-Za-z0-9]{1,60}")
"""ARM's ``accessPolicyAssignmentName`` path parameter (redisenterprise 2025-07-01: ``^[A-Za-z0-9]{1,60}$``; ``fullmatch``)."""
ACCESS_POLICIES = ("default",)
"""Access policies Azure Managed Redis offers: the spec says 'Only "default" policy is supported for now'."""


def default_assignment_name(object_id: str) -> str:
    """The ARM assignment name for a principal when the policy names none: its object id without the hyphens,
    lowercase (32 hex digits), since the spec's name pattern ``^[A-Za-z0-9]{1,60}$`` takes no hyphen."""
    if not ENTRA_OBJECT_ID.fullmatch(object_id):
        raise ValueError(f"{object_id!r} is not an Entra object id (a GUID)")
    return object_id.replace("-", "").lower()


@dataclass(frozen=True)
class AccessPolicyAssignment:
    """An Entra ID access policy assignment on an Azure Managed Redis database (ARM
    ``Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments``): lets the principal with
    ``object_id`` authenticate to the data plane (user = object id, password = token) under ``access_policy``."""

    object_id: str
    """The principal's Entra object id, a lowercase GUID, or a ``${VAR}`` reference (see ``resolved``)."""
    access_policy: str = "default"
    name: str | None = None
    """The ARM assignment name. Left out: ``default_assignment_name(object_id)``, filled in here for a literal
    GUID; None only while ``object_id`` is a ``${VAR}`` reference (``resolved`` fills it in)."""
    description: str = ""
    client_id: str | None = None
    """The application (client) id of the same principal, a GUID or a ``${VAR}`` reference, as a target's
    ``auth.client_id`` names it: never sent to Azure, it lets plan tell that a target's Entra ID identity has an
    assignment (the data-plane user is the object id, which differs from the client id)."""

    def __post_init__(self) -> None:
        if self.name is None and ENTRA_OBJECT_ID.fullmatch(self.object_id):
            object.__setattr__(self, "name", default_assignment_name(self.object_id))

    def resolved(self, where: str) -> AccessPolicyAssignment:
        """This assignment with ``${VAR}`` in ``object_id`` resolved and the name derived; ConfigurationError
        when a variable is missing or its value is not a GUID. ``client_id`` is kept as written."""
        object_id = resolve_env(self.object_id, where) or ""
        if not ENTRA_OBJECT_ID.fullmatch(object_id):
            raise ConfigurationError(f"{where}: object_id {brief(self.object_id)} is not an Entra object id once resolved "
                                     "(a GUID such as 6497c918-11ad-41e7-1b0f-7c518a87d0b0)")
        return AccessPolicyAssignment(object_id.lower(), self.access_policy, self.name, self.description, self.client_id)


@dataclass(frozen=True)
class InstancePolicy:
    """Instance settings; None means "not declared" (policy) or "not reported" (live state)."""

    sku: str | None = None
    capacity: int | None = None
    high_availability: bool | None = None
    minimum_tls_version: str | None = None
    public_network_access: bool | None = None
    client_protocol: str | None = None
    clustering_policy: str | None = None
    eviction_policy: str | None = None
    persistence: Persistence | None = None
    modules: tuple[Module, ...] | None = None
    access_keys_authentication: bool | None = None
    geo_replication_group: str | None = None
    access_policy_assignments: tuple[AccessPolicyAssignment, ...] | None = None
    """Entra ID access policy assignments on the database (Azure Managed Redis), in policy order (so that index ``i``
    is ``access_policy_assignments[i]`` of the target as written)."""


@dataclass(frozen=True)
class AzureRef:
    subscription: str
    resource_group: str
    cluster: str
    database: str = "default"
    location: str | None = None


@dataclass(frozen=True)
class ClientOptions:
    """A target's ``client`` settings. The defaults suit a web service using Redis as a cache: a Redis
    that stops answering costs a fail-open call at most ``socket_timeout``, never seconds."""

    socket_timeout_ms: int = 500
    connect_timeout_ms: int = 500
    max_connections: int | None = None
    """None: a pool without limit; a number: callers wait up to ``pool_timeout`` for a free connection."""
    pool_timeout_ms: int = 500
    retries: int = 1
    """Resends of an idempotent command after a broken connection (never after a timeout)."""
    health_check_interval_ms: int = 0
    breaker_threshold: int = 3
    breaker_cooldown_ms: int = 1_000


@dataclass(frozen=True)
class Target:
    """A Redis instance. String fields may be ``${ENV_VAR}`` references (see ``resolve_env``)."""

    name: str
    provider: str
    url: str | None = None
    host: str | None = None
    port: int | str | None = None
    db: int = 0
    tls: bool = False
    ca_file: str | None = None
    check_hostname: bool = True
    auth: Auth = Auth()
    client: ClientOptions = ClientOptions()
    azure: AzureRef | None = None
    instance: InstancePolicy = InstancePolicy()
    description: str = ""


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve_env(value: str | int | None, where: str) -> str | None:
    """Replace ``${VAR}`` and ``${VAR:-default}``; a missing variable without default is a ConfigurationError."""
    if value is None:
        return None

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigurationError(f"{where}: environment variable {name} is not set")

    return _ENV_REF.sub(repl, str(value))


@dataclass(frozen=True)
class PolicySet:
    """A loaded, checked policy set."""

    tiers: Mapping[str, Tier]
    namespaces: Mapping[str, Namespace]
    rules: Mapping[str, InvalidationRule]
    targets: Mapping[str, Target]
    parameters: Mapping[str, Param]
    sources: tuple[str, ...]
    digest: str
    """sha256 of the canonical keyspace policy (tiers, namespaces, rules); targets excluded so that
    every environment applying the same files publishes the same digest."""
    document: Mapping[str, object]
    """The canonical, JSON-ready keyspace policy that ``digest`` covers and ``toolkit apply`` publishes."""
    classifier: Classifier = field(repr=False, compare=False, default=None)  # type: ignore[assignment]
    locations: Mapping[tuple[str | int, ...], tuple[int, int, int]] = field(
        repr=False, compare=False, default_factory=lambda: MappingProxyType({}))
    """Document path -> (index into ``sources``, 1-based line, column) of its key (of its value for list items);
    where the loader read each setting, for ``locate``. Not part of the digest or ``document``."""

    def locate(self, path: tuple[str | int, ...]) -> tuple[str, int, int] | None:
        """(file, line, col) of the deepest written node on ``path``, e.g. ``("targets", "prod", "instance",
        "eviction_policy")`` -> that key, or ``targets.prod.instance`` (then ``targets.prod``) when the setting is not
        written; None when not even the first part is (or the set was not loaded from files)."""
        probe = tuple(path)
        while probe:
            found = self.locations.get(probe)
            if found is not None:
                index, line, col = found
                return self.sources[index], line, col
            probe = probe[:-1]
        return None

    def namespace(self, name: str) -> Namespace:
        try:
            return self.namespaces[name]
        except KeyError:
            raise PolicyViolation(f"no namespace {brief(name)} in this policy set (known: {', '.join(sorted(self.namespaces))})") from None

    def target(self, name: str | None = None) -> Target:
        """The named target, or the only one when ``name`` is None."""
        if name is None:
            if len(self.targets) == 1:
                return next(iter(self.targets.values()))
            raise ConfigurationError(f"choose a target: {', '.join(sorted(self.targets)) or 'none declared'}")
        try:
            return self.targets[name]
        except KeyError:
            raise ConfigurationError(f"no target {name!r} (declared: {', '.join(sorted(self.targets)) or 'none'})") from None

    def classify(self, key: str | bytes) -> tuple[Namespace, dict[str, str]] | None:
        """Which namespace a live key belongs to and its parameters, or None: the inverse of ``Namespace.key``."""
        return self.classifier.classify(key)
