"""The audit's results: frozen dataclasses, and their JSON shape (``FORMAT_VERSION``).

Violations are what breaks the policy and decides the exit code: a key that should expire
and has no TTL, a remaining TTL above its tier's maximum, a TTL on a persistent key, a key
of the wrong Redis type, a key that belongs to no namespace. A remaining TTL below the
tier's minimum is reported but is not a violation: every TTL decays below the minimum
before it expires, so it cannot tell a short write from an old key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = "1"
"""Bumped only when a JSON field changes meaning or disappears; new fields keep the version."""

VIOLATIONS = ("missing_ttl", "ttl_above_max", "ttl_on_persistent", "wrong_type")
"""Per-namespace violation kinds, in report order."""


@dataclass(frozen=True)
class MemoryEstimate:
    """MEMORY USAGE of ``sampled`` keys, extrapolated to the namespace's key count."""

    sampled: int
    sampled_bytes: int
    estimated_bytes: int


@dataclass(frozen=True)
class NamespaceReport:
    """What the walk found for one namespace."""

    name: str
    type: str
    tier: str
    ttl_ms: int | None
    tier_min_ms: int | None
    tier_max_ms: int | None
    keys: int
    missing_ttl: int
    ttl_above_max: int
    ttl_on_persistent: int
    wrong_type: int
    ttl_below_min: int
    found_types: Mapping[str, int]
    """Redis types found on the wrong-type keys, with counts."""
    examples: Mapping[str, tuple[str, ...]]
    """A few keys per violation kind (and ``ttl_below_min``)."""
    memory: MemoryEstimate | None = None

    @property
    def violations(self) -> int:
        return self.missing_ttl + self.ttl_above_max + self.ttl_on_persistent + self.wrong_type

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type, "tier": self.tier, "ttl_ms": self.ttl_ms,
            "tier_min_ms": self.tier_min_ms, "tier_max_ms": self.tier_max_ms, "keys": self.keys,
            "violations": {kind: getattr(self, kind) for kind in VIOLATIONS},
            "ttl_below_min": self.ttl_below_min, "found_types": dict(self.found_types),
            "examples": {kind: list(keys) for kind, keys in self.examples.items()},
            "memory": None if self.memory is None else {
                "sampled": self.memory.sampled, "sampled_bytes": self.memory.sampled_bytes,
                "estimated_bytes": self.memory.estimated_bytes},
        }


@dataclass(frozen=True)
class PrefixGroup:
    """Keys of no namespace sharing a leading prefix (the text before the first ':')."""

    prefix: str
    keys: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class Leftover:
    """Keys of no current namespace that a previously published policy's namespace builds: left over from a
    change ``toolkit diff`` reports as ``code`` (``namespace-removed``, ``key-changed``...)."""

    namespace: str
    digest: str
    """The published policy (digest) whose namespace builds these keys."""
    applied_at: str
    code: str
    keys: int
    examples: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "policy_digest": self.digest, "applied_at": self.applied_at,
                "code": self.code, "keys": self.keys, "examples": list(self.examples)}


@dataclass(frozen=True)
class PolicyStatus:
    """The policy published on the instance (``toolkit apply``) against the local files."""

    local_digest: str
    published: Mapping[str, str] | None
    """digest, version, applied_at, applied_by of the instance's record; None when nothing was applied."""

    @property
    def matches(self) -> bool:
        return self.published is not None and self.published.get("digest") == self.local_digest


@dataclass(frozen=True)
class Change:
    """One TTL write of ``--fix-ttl``: ``before_ms`` None means the key had no TTL."""

    key: str
    before_ms: int | None
    ttl_ms: int
    applied: bool
    """False when dry-run, or when the server declined (NX/LT: a concurrent writer got there first)."""


@dataclass(frozen=True)
class NamespaceFix:
    namespace: str
    ttl_set: int
    """Keys without TTL that got one (PEXPIRE NX)."""
    ttl_clamped: int
    """Keys whose TTL above the tier max was shortened (PEXPIRE LT)."""
    declined: int
    """Writes the server declined because the key changed meanwhile."""
    examples: tuple[Change, ...]


@dataclass(frozen=True)
class FixReport:
    dry_run: bool
    namespaces: tuple[NamespaceFix, ...]

    @property
    def fixed(self) -> int:
        """Violations resolved by this run (none in a dry run)."""
        return 0 if self.dry_run else sum(n.ttl_set + n.ttl_clamped for n in self.namespaces)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "fixed": self.fixed, "namespaces": {
            n.namespace: {"ttl_set": n.ttl_set, "ttl_clamped": n.ttl_clamped, "declined": n.declined,
                          "examples": [{"key": c.key, "before_ms": c.before_ms, "ttl_ms": c.ttl_ms, "applied": c.applied}
                                       for c in n.examples]}
            for n in self.namespaces}}


@dataclass(frozen=True)
class AuditReport:
    """One walk of a live keyspace against a policy set."""

    target: str
    cluster: bool
    nodes: Mapping[str, str]
    """Each server walked (host:port) -> how its keys were probed: ``lua`` or ``pipeline``."""
    match: str | None
    scanned: int
    """Keys SCAN returned, including ``vanished`` ones (expired or deleted before they were probed)."""
    vanished: int
    elapsed_s: float
    policy: PolicyStatus
    namespaces: tuple[NamespaceReport, ...]
    unknown_keys: int
    unknown: tuple[PrefixGroup, ...]
    """Most frequent prefixes first; prefixes beyond the tracking limit are folded into ``"*"``."""
    reserved_keys: int
    """Keys under the toolkit's reserved prefix (``__toolkit__:``): the published policy and the like."""
    fix: FixReport | None = field(default=None)
    leftovers: tuple[Leftover, ...] = ()
    """Keys of no current namespace that an earlier published policy's namespace builds (not in ``unknown``)."""

    @property
    def violations(self) -> int:
        return sum(n.violations for n in self.namespaces) + self.unknown_keys + sum(x.keys for x in self.leftovers)

    @property
    def outstanding(self) -> int:
        """Violations still in the keyspace after this run (a fix resolves some; a dry run none)."""
        return self.violations - (self.fix.fixed if self.fix else 0)

    @property
    def compliant(self) -> bool:
        return self.outstanding == 0

    def as_dict(self) -> dict[str, Any]:
        published = self.policy.published
        return {
            "format_version": FORMAT_VERSION,
            "target": self.target,
            "cluster": self.cluster,
            "nodes": dict(self.nodes),
            "match": self.match,
            "scanned": self.scanned,
            "vanished": self.vanished,
            "elapsed_s": round(self.elapsed_s, 3),
            "policy": {
                "local_digest": self.policy.local_digest,
                "published": None if published is None else dict(published),
                "matches": self.policy.matches,
            },
            "namespaces": {n.name: n.as_dict() for n in self.namespaces},
            "unknown": {"keys": self.unknown_keys, "prefixes": [
                {"prefix": g.prefix, "keys": g.keys, "examples": list(g.examples)} for g in self.unknown]},
            "leftovers": [x.as_dict() for x in self.leftovers],
            "reserved_keys": self.reserved_keys,
            "violations": self.violations,
            "outstanding": self.outstanding,
            "compliant": self.compliant,
            "fix": None if self.fix is None else self.fix.as_dict(),
        }
