"""``toolkit audit``: which live keys break the policy, and TTL fixes that never delete anything.

``run_audit`` walks the whole keyspace (every primary of an OSS cluster) with SCAN and
short server-side steps, classifies each key with ``PolicySet.classify`` and returns an
``AuditReport``. ``fix_ttl`` does the same walk and, page by page, gives keys without TTL
their namespace's TTL and shortens TTLs above the tier maximum.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from toolkit.audit._model import (
    FORMAT_VERSION,
    AuditReport,
    Change,
    FixReport,
    Leftover,
    MemoryEstimate,
    NamespaceFix,
    NamespaceReport,
    PolicyStatus,
    PrefixGroup,
)
from toolkit.errors import ToolkitError
from toolkit.policy.model import PolicySet

if TYPE_CHECKING:
    from toolkit.audit._fix import Fixer

__all__ = [
    "FORMAT_VERSION", "AuditError", "AuditReport", "Change", "FixReport", "Leftover", "MemoryEstimate", "NamespaceFix",
    "NamespaceReport", "PolicyStatus", "PrefixGroup", "fix_ttl", "run_audit",
]

Progress = Callable[[int, float], None]
"""Called after each page with (keys scanned so far, seconds elapsed)."""


class AuditError(ToolkitError):
    """The audit could not run to the end: connection refused or lost, command refused."""


def run_audit(policy: PolicySet, client: Any, *, target: str = "", match: str | None = None,
              sample_memory: int = 0, progress: Progress | None = None) -> AuditReport:
    """Walk ``client``'s keyspace (a redis-py ``Redis`` or ``RedisCluster``) and report it against ``policy``.

    ``match`` restricts the walk to a SCAN glob; ``sample_memory`` is the number of keys per
    namespace whose MEMORY USAGE is measured and extrapolated (0: none).
    """
    return _audit(policy, client, target, match, sample_memory, progress, None)


def fix_ttl(policy: PolicySet, client: Any, *, target: str = "", match: str | None = None, sample_memory: int = 0,
            dry_run: bool = False, progress: Progress | None = None, rng: random.Random | None = None) -> AuditReport:
    """``run_audit`` that also sets missing TTLs and clamps TTLs above the tier max; ``report.fix`` says what changed.

    Keys of the wrong type, persistent keys with a TTL and unknown keys are reported, never touched.
    """
    from toolkit.audit._fix import Fixer

    return _audit(policy, client, target, match, sample_memory, progress, Fixer(client, dry_run, rng))


def _audit(policy: PolicySet, client: Any, target: str, match: str | None, sample_memory: int,
           progress: Progress | None, fixer: Fixer | None) -> AuditReport:
    from redis.exceptions import RedisError

    from toolkit.audit._scan import Walker, memory_usage
    from toolkit.audit._tally import Tally, history
    from toolkit.policy.published import read_published
    from toolkit.policy.secrets import Redactor

    redact = Redactor(policy.targets.get(target))  # node addresses and errors show ${VAR} references, not values
    started = time.monotonic()
    try:
        record = read_published(client)  # first: earlier policies tell leftover keys from unknown ones
        tally = Tally(policy, sample_memory, fixing=fixer is not None, history=history(policy, record))
        walker = Walker(client, match)
        for page in walker:
            candidates = tally.add(page)
            if fixer is not None and candidates:
                fixer.apply(candidates)
            if progress is not None:
                progress(tally.scanned, time.monotonic() - started)
        measured: dict[str, tuple[int, int]] = {}
        for name, keys in tally.samples().items():
            sizes = [n for n in memory_usage(client, keys) if n is not None]
            if sizes:
                measured[name] = (len(sizes), sum(sizes))
        published = record
    except RedisError as exc:
        raise AuditError(redact(f"target {target or '?'}: {type(exc).__name__}: {exc}")) from redact.exception(exc)

    def memory_of(name: str, keys: int) -> MemoryEstimate | None:
        if name not in measured:
            return None
        sampled, total = measured[name]
        return MemoryEstimate(sampled, total, round(total * keys / sampled))

    if published is not None:
        published = {k: published[k] for k in ("digest", "version", "applied_at", "applied_by") if k in published}
    return AuditReport(
        target=target, cluster=walker.cluster, nodes={redact(n): s for n, s in walker.strategies.items()}, match=match,
        scanned=tally.scanned, vanished=tally.vanished, elapsed_s=time.monotonic() - started,
        policy=PolicyStatus(policy.digest, published), namespaces=tally.namespace_reports(memory_of),
        unknown_keys=tally.unknown_keys, unknown=tally.prefix_groups(), reserved_keys=tally.reserved,
        fix=fixer.report() if fixer is not None else None, leftovers=tally.leftovers(),
    )
