"""Reading a target and executing its plan: updates and creates, a verifying re-read, then the published policy.

Nothing is deleted but the Azure access policy assignments the policy does not declare, and only with
``--remove-undeclared-access`` (``prune``). A plan with a blocked change or an error finding is not executed at
all, so a pipeline never ends up half way between two policies because of a known problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from toolkit.errors import ConfigurationError, ToolkitError
from toolkit.policy.model import PolicySet, Target
from toolkit.policy.published import publish as publish_policy
from toolkit.provision import _dataplane
from toolkit.provision.changes import DELETE, Change
from toolkit.provision.plan import Plan, compute_plan
from toolkit.provision.providers import Backend, provider
from toolkit.provision.state import LiveState

APPLIED, NO_CHANGES, REFUSED = "applied", "no-changes", "refused"


def open_backend(target: Target, *, credential: Any = None, **azure_options: Any) -> Backend:
    """The backend of ``target``'s provider; ``credential``/``azure_options`` matter to Azure targets only
    (other providers ignore them)."""
    try:
        rules = provider(target.provider)
    except ConfigurationError as exc:
        raise ConfigurationError(f"target {target.name}: {exc}") from None
    return rules.backend(target, credential=credential, **azure_options)


def _data_plane_errors() -> tuple[type[BaseException], ...]:
    import redis
    from redis.auth.err import RequestTokenErr, TokenRenewalErr

    return ToolkitError, redis.RedisError, OSError, RequestTokenErr, TokenRenewalErr


def read_live(backend: Backend, target: Target, *, publish: bool) -> LiveState:
    """Read the instance and, when ``publish``, the policy published on it (unreachable -> noted, not fatal)."""
    live = backend.read()
    if not publish or not live.database_exists:
        return live
    try:
        return replace(live, published_digest=_dataplane.read_digest(backend.data_client))
    except _data_plane_errors() as exc:
        return replace(live, published_error=str(_dataplane.unreachable(target, exc)))


@dataclass(frozen=True)
class Outcome:
    """What apply did: ``status`` is applied, no-changes or refused."""

    plan: Plan
    status: str
    applied: tuple[Change, ...] = ()
    published: bool = False
    notes: tuple[str, ...] = ()


def apply_plan(plan: Plan, backend: Backend, policy: PolicySet, *, publish: bool,
               progress: Callable[[str], None]) -> Outcome:
    """Execute ``plan``; raise ToolkitError if the instance does not match afterwards or publishing fails."""
    if plan.refused:
        return Outcome(plan, REFUSED)
    if publish and plan.live.published_error:
        raise ToolkitError(f"{plan.live.published_error}; nothing was changed (use --no-publish to change the instance "
                           f"without recording the policy on it)")
    changes = tuple(c for c in plan.pending if c.resource != "policy")
    notes: list[str] = []
    if changes:
        notes.extend(backend.apply(plan.live, changes, progress))
        progress("verifying: reading the instance again")
        left = compute_plan(policy, plan.target, backend.read(), publish=False, prune=plan.prune).pending
        if left:
            raise ToolkitError("apply finished but the instance still differs: " + "; ".join(
                f"{c.resource} {c.setting or '(missing)'} is {c.before}, " + ("still there" if c.action == DELETE else
                                                                           f"declared {c.after}") for c in left))
    published = False
    if publish:
        try:
            published = publish_policy(backend.data_client, policy)
        except _data_plane_errors() as exc:
            done = "the instance changes were applied, but " if changes else ""
            raise ToolkitError(f"{done}publishing the policy failed: {_dataplane.unreachable(plan.target, exc)} "
                               f"(use --no-publish when the pipeline cannot reach the data plane)") from None
        if published:
            notes.append(f"published policy {policy.digest[:12]} under the reserved key")
    applied = changes + tuple(c for c in plan.pending if c.resource == "policy" and published)
    return Outcome(plan, APPLIED if applied else NO_CHANGES, applied, published, tuple(notes))
