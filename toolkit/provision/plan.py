"""The plan: every difference between a target's declared instance and the live one, classified.

Computed first (here, no I/O), rendered second (``render``), executed third (``apply``). The
provider of the target decides what a difference means (``providers``: in place, create, or
blocked with the reason and what to do instead); this core collects the provider's changes, adds
the published policy record and the cross-checks between the instance and the namespaces.
Nothing that would lose data is ever an ``update``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from toolkit.policy.model import InstancePolicy, PolicySet, Target
from toolkit.provision.changes import BLOCKED, CREATE, DELETE, ERROR, UPDATE, WARNING, Change, Finding
from toolkit.provision.providers import provider
from toolkit.provision.state import LiveState

__all__ = ["BLOCKED", "CREATE", "DELETE", "ERROR", "UPDATE", "WARNING", "Change", "Finding", "Plan", "compute_plan",
           "effective"]


@dataclass(frozen=True)
class Plan:
    target: Target
    policy_digest: str
    live: LiveState
    changes: tuple[Change, ...]
    findings: tuple[Finding, ...]
    prune: bool = False
    """Undeclared sub-resources (access policy assignments) are planned for deletion (``--remove-undeclared-access``)."""

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


def compute_plan(policy: PolicySet, target: Target, live: LiveState, *, publish: bool = True,
                 prune: bool = False) -> Plan:
    """Compare ``target.instance`` (and the published policy, when ``publish``) with ``live``.

    ``prune``: sub-resources the policy does not declare (Azure access policy assignments) are
    planned for deletion instead of only being shown.
    """
    rules = provider(target.provider)
    changes = list(rules.changes(target, live, prune=prune))
    if publish and live.published_error is None and live.published_digest != policy.digest:
        changes.append(Change("policy", "published_policy", UPDATE if live.published_digest else CREATE,
                              live.published_digest, policy.digest))
    eff = rules.effective(target, live)
    findings = [*rules.findings(target, live, eff, prune=prune), *_namespace_findings(policy, target, eff)]
    if publish and live.published_error:
        findings.append(Finding(WARNING, "published-policy-unread",
                                f"the published policy could not be read: {live.published_error}"))
    return Plan(target, policy.digest, live, tuple(changes), tuple(findings), prune)


def effective(target: Target, live: LiveState) -> InstancePolicy:
    """What the instance will be once applied (the target's provider fills in what is neither declared nor live)."""
    return provider(target.provider).effective(target, live)


def _namespace_findings(policy: PolicySet, target: Target, eff: InstancePolicy) -> Iterator[Finding]:
    """Cross-checks between the instance and the namespaces, the same for every provider."""
    eviction = eff.eviction_policy or ""
    persistent = sorted(n.name for n in policy.namespaces.values() if not n.expires)
    caches = sorted(n.name for n in policy.namespaces.values() if n.expires)
    at_eviction = ("targets", target.name, "instance", "eviction_policy")
    if persistent and eviction.startswith("Volatile"):
        yield Finding(WARNING, "persistent-under-volatile-eviction",
                      f"persistent namespaces ({', '.join(persistent)}) keep keys without TTL, which {eviction} never "
                      f"evicts: if they fill the memory, writes fail with OOM once no expiring key is left to evict",
                      at_eviction)
    if persistent and eviction.startswith("AllKeys"):
        yield Finding(ERROR, "persistent-may-be-evicted",
                      f"persistent namespaces ({', '.join(persistent)}) must never lose keys, but {eviction} evicts "
                      f"any key when memory is full: use a Volatile* policy or NoEviction", at_eviction)
    if caches and eviction == "NoEviction":
        yield Finding(WARNING, "cache-under-noeviction",
                      f"{len(caches)} cache namespaces ({_first(caches)}) run under NoEviction: when memory is full, "
                      f"writes fail with OOM instead of evicting old entries (keep it only if RediSearch needs it)",
                      at_eviction)
    if eff.clustering_policy == "OSSCluster" and target.instance.clustering_policy is None:
        yield Finding(ERROR, "oss-cluster-needs-cluster-client",
                      "the instance uses OSSCluster but the target does not declare clustering_policy, so "
                      "applications get a non-cluster client that fails with MOVED: declare clustering_policy: "
                      "OSSCluster (or auto)", ("targets", target.name, "instance"))


def _first(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
