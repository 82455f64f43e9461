"""``engine.invalidate(rule, **params)``: delete what an invalidation rule names.

Exact keys (the rule's namespaces and key templates) go in one UNLINK. ``match`` templates
become SCAN globs whose parameter values are glob-escaped (and were already refused if they
held a glob character), so a value can never widen the match; matches are deleted in
batches as the scan goes. On a cluster, redis-py's ``scan_iter`` visits every primary and
``unlink`` splits its keys by slot. A rule with ``index:`` reads its entity's index set
instead of scanning: only keys written through the engine are in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from toolkit.errors import CacheUnavailable, PolicyViolation, brief
from toolkit.policy.model import InvalidationRule, PolicySet
from toolkit.policy.templates import Param, build_values
from toolkit.runtime import _scripts
from toolkit.runtime._failures import describe, reason_of
from toolkit.runtime._flows import Call, Flow, Scan, ScanNext
from toolkit.runtime._telemetry import Telemetry

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


def observed(flow: Flow, policy: PolicySet, name: str, telemetry: Telemetry) -> Flow:
    """``flow`` measured: its duration and keys deleted as metrics, a span when tracing. A call the policy refuses
    (an unknown rule, a bad parameter) is the caller's mistake, not an invalidation: not measured."""
    rule = policy.rules.get(name) if isinstance(name, str) else None
    if rule is None:
        return (yield from flow)  # raises PolicyViolation at once
    strategy = "index" if rule.index is not None else "scan" if rule.match else "exact"
    started, keys = time.perf_counter(), 0
    failed: bool | None = True
    with telemetry.invalidate_span(name, strategy) if telemetry.tracer is not None else nullcontext() as span:
        try:
            keys = yield from flow
            failed = False
        except PolicyViolation:
            failed = None
            raise
        finally:
            if failed is not None:
                telemetry.invalidated(name, keys, time.perf_counter() - started, failed)
        if span is not None:
            span.set_attribute("toolkit.invalidation.keys_deleted", keys)
    return keys


def invalidate_flow(policy: PolicySet, name: str, params: Mapping[str, Any],
                    dropped: Callable[[list[str] | None], None] | None = None) -> Flow:
    """Delete what a rule names: the flow both engines drive. Every value is checked before anything is sent.

    ``dropped`` hears the keys as they are deleted (None for an index's, which it cannot list): the engine's near
    cache drops its copies at once, so the process never reads back what it just invalidated."""
    rule = policy.rules.get(name) if isinstance(name, str) else None
    if rule is None:
        raise PolicyViolation(f"no invalidation rule {brief(name)} (known: {', '.join(sorted(policy.rules)) or 'none'})")
    missing = [p for p in rule.params if p not in params]
    extra = [brief(p, 40) for p in params if p not in rule.params]
    if missing or extra:
        raise PolicyViolation(f"rule {name!r} takes parameters ({', '.join(rule.params)}); "
                              f"missing: {', '.join(missing) or '-'}; unexpected: {', '.join(extra[:5]) or '-'}")
    exact, globs, index_key = rule_keys(policy, rule, params)
    deleted = 0
    try:
        if exact:
            deleted += yield Call("unlink", tuple(exact))
            if dropped is not None:
                dropped(exact)
        if index_key is not None:
            # O(keys of this entity): the index lists every key the engine wrote for this value.
            try:
                deleted += yield Call("evalsha", (_scripts.INDEX_DROP.sha, 1, index_key))
            except NoScriptError:
                deleted += yield Call("eval", (_scripts.INDEX_DROP.source, 1, index_key))
            if dropped is not None:
                dropped(None)
        for pattern in globs:
            cursor = yield Scan(pattern, SCAN_COUNT)
            while batch := (yield ScanNext(cursor, UNLINK_BATCH)):
                deleted += yield Call("unlink", tuple(batch))
                if dropped is not None:
                    dropped([k.decode("utf-8", "replace") if isinstance(k, bytes) else k for k in batch])
    except RedisError as exc:
        reason = reason_of(exc)
        if reason is None:
            raise
        raise CacheUnavailable(f"invalidation {name!r} failed [{reason}]: {describe(exc, reason)}; "
                               f"{deleted} keys were deleted before the failure", reason) from None
    return deleted
