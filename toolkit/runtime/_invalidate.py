"""``engine.invalidate(rule, **params)``: delete what an invalidation rule names.

Exact keys (the rule's namespaces and key templates) go in one UNLINK. ``match`` templates
become SCAN globs whose parameter values are glob-escaped (and were already refused if they
held a glob character), so a value can never widen the match; matches are deleted in
batches as the scan goes. On a cluster, redis-py's ``scan_iter`` visits every primary and
``unlink`` splits its keys by slot. A rule with ``index:`` reads its entity's index set
instead of scanning: only keys written through the engine are in it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from redis.exceptions import NoScriptError, RedisError

from toolkit.errors import CacheUnavailable, PolicyViolation
from toolkit.policy.model import InvalidationRule, PolicySet
from toolkit.policy.templates import Param, build_values
from toolkit.runtime import _scripts
from toolkit.runtime._failures import describe, reason_of

if TYPE_CHECKING:
    from toolkit.runtime._engine import Engine

SCAN_COUNT = 1000
"""Keys per SCAN step: large enough to need few round trips, small enough to keep each step short."""
UNLINK_BATCH = 500


def _param_specs(policy: PolicySet, rule: InvalidationRule) -> dict[str, Param]:
    """Parameter specs of a rule: its namespaces' (the loader checked they agree), else the set's shared ones."""
    specs: dict[str, Param] = {}
    for name in rule.namespaces:
        specs.update(policy.namespaces[name].params)
    for name in rule.params:
        specs.setdefault(name, policy.parameters.get(name) or Param(name))
    return specs


def rule_keys(policy: PolicySet, rule: InvalidationRule, params: Mapping[str, Any]) -> tuple[list[str], list[str], str | None]:
    """A rule's exact keys, its SCAN globs and its index set for these parameters; PolicyViolation if a value is unsafe.

    An indexed rule reads its entity's index instead of scanning, so it has no globs.
    """
    specs = _param_specs(policy, rule)
    what = f"rule {rule.name!r}"
    exact = [policy.namespaces[name].build_key(params) for name in rule.namespaces]
    exact += [t.render(build_values(t, specs, params, what), rule.hash_tag) for t in rule.keys]
    if rule.index is not None:
        return exact, [], rule.index_key(specs[rule.index].check(params[rule.index]))
    return exact, [t.render(build_values(t, specs, params, what), rule.hash_tag) for t in rule.match], None


def invalidate(engine: "Engine", name: str, params: Mapping[str, Any]) -> int:
    policy = engine.policy
    rule = policy.rules.get(name)
    if rule is None:
        raise PolicyViolation(f"no invalidation rule {name!r} (known: {', '.join(sorted(policy.rules)) or 'none'})")
    missing = [p for p in rule.params if p not in params]
    extra = [p for p in params if p not in rule.params]
    if missing or extra:
        raise PolicyViolation(f"rule {name!r} takes parameters ({', '.join(rule.params)}); "
                              f"missing: {', '.join(missing) or '-'}; unexpected: {', '.join(extra) or '-'}")
    exact, globs, index_key = rule_keys(policy, rule, params)  # every value is checked before anything is sent
    client = engine.client
    deleted = 0
    try:
        if exact:
            deleted += client.unlink(*exact)
        if index_key is not None:
            # O(keys of this entity): the index lists every key the engine wrote for this value.
            try:
                deleted += client.evalsha(_scripts.INDEX_DROP.sha, 1, index_key)
            except NoScriptError:
                deleted += client.eval(_scripts.INDEX_DROP.source, 1, index_key)
        for pattern in globs:
            batch: list[bytes] = []
            for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
                batch.append(key)
                if len(batch) >= UNLINK_BATCH:
                    deleted += client.unlink(*batch)
                    batch = []
            if batch:
                deleted += client.unlink(*batch)
    except RedisError as exc:
        reason = reason_of(exc)
        if reason is None:
            raise
        raise CacheUnavailable(f"invalidation {name!r} failed [{reason}]: {describe(exc, reason)}; "
                               f"{deleted} keys were deleted before the failure", reason) from None
    return deleted
