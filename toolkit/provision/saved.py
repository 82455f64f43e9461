"""Saved plans: ``toolkit plan --out plan.json`` then ``toolkit apply plan.json``, Terraform's contract.

A saved plan records what it was computed from: the policy (the keyspace digest and the target's
declaration), a fingerprint of the live instance as it was read, the target, the options and the
tool version. Applying it re-reads everything and refuses, before any write, when any of these
moved since the plan was made, so what a reviewer approved is exactly what runs. The file holds
the rendered plan (``${VAR}`` references, never their values); the resolved addresses enter the
fingerprint only as part of a hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import toolkit
from toolkit.errors import ToolkitError
from toolkit.policy.model import PolicySet, Target, resolve_env
from toolkit.provision.plan import Plan
from toolkit.provision.render import as_dict

KIND = "redis-policy-toolkit saved plan"
SAVED_FORMAT = "1"
_UNSTABLE = ("cluster_status", "database_status", "published_error", "redis_version")
"""Live facts that do not decide the plan: an Azure status or a patch-level Redis upgrade does not make it stale."""


class StalePlan(ToolkitError):
    """The saved plan no longer describes what apply would do; nothing was changed."""


@dataclass(frozen=True)
class SavedPlan:
    paths: tuple[str, ...]
    target: str
    publish: bool
    prune: bool
    tool_version: str
    policy_digest: str
    target_digest: str
    live_fingerprint: str
    document: dict[str, Any]
    """The plan as ``--output json`` renders it: what the reviewer saw."""
    file: str


def target_digest(target: Target) -> str:
    """The target's declaration as written (references, not values): any edit to it makes a plan stale."""
    return _sha(asdict(target))


def live_fingerprint(plan: Plan) -> str:
    """The live state the plan was computed against, plus where it was read (resolved, hashed only)."""
    live = {k: v for k, v in as_dict(plan)["live"].items() if k not in _UNSTABLE}
    return _sha({"live": live, "where": _resolved_address(plan.target)})


def _resolved_address(target: Target) -> list[str | None]:
    azure = target.azure
    values: list[str | int | None] = [target.url, target.host, target.port]
    if azure is not None:
        values += [azure.subscription, azure.resource_group, azure.cluster, azure.database]
    return [resolve_env(v, f"target {target.name}") for v in values]


def save(plan: Plan, policy: PolicySet, paths: list[str], file: str, *, publish: bool, prune: bool) -> None:
    """Write the saved plan to ``file`` atomically (a half-written plan must never be applied)."""
    record = {
        "kind": KIND, "saved_format": SAVED_FORMAT, "tool_version": toolkit.__version__,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "paths": list(paths), "target": plan.target.name, "publish": publish, "prune": prune,
        "policy_digest": policy.digest, "target_digest": target_digest(plan.target),
        "live_fingerprint": live_fingerprint(plan), "plan": as_dict(plan),
    }
    directory = os.path.dirname(os.path.abspath(file))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".toolkit-plan-", dir=directory)
        with os.fdopen(fd, "w") as out:
            json.dump(record, out, indent=2)
            out.write("\n")
        os.replace(tmp, file)
    except OSError as exc:
        raise ToolkitError(f"cannot write the saved plan to {file}: {exc.strerror or exc}") from None


def is_saved_plan(paths: list[str]) -> bool:
    """``toolkit apply plan.json``: one argument naming a .json file (policies are YAML)."""
    return len(paths) == 1 and paths[0].endswith(".json") and Path(paths[0]).is_file()


def read(file: str) -> SavedPlan:
    try:
        record = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ToolkitError(f"{file} cannot be read as a saved plan: {exc}") from None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise ToolkitError(f"{file} is not a saved plan (make one with: toolkit plan --target NAME --out {file})")
    if record.get("saved_format") != SAVED_FORMAT:
        raise ToolkitError(f"{file} is a saved plan of format {record.get('saved_format')!r}; this toolkit reads "
                           f"format {SAVED_FORMAT!r}: make the plan again")
    try:
        return SavedPlan(tuple(record["paths"]), record["target"], bool(record["publish"]), bool(record["prune"]),
                         record["tool_version"], record["policy_digest"], record["target_digest"],
                         record["live_fingerprint"], record["plan"], file)
    except (KeyError, TypeError) as exc:
        raise ToolkitError(f"{file} is an incomplete saved plan (missing {exc}): make the plan again") from None


def check_source(saved: SavedPlan, policy: PolicySet, target: Target) -> None:
    """Before reading the instance: the same tool and the same policy as when the plan was made."""
    if saved.tool_version != toolkit.__version__:
        raise StalePlan(f"the saved plan {saved.file} was made by toolkit {saved.tool_version}, this is "
                        f"{toolkit.__version__}: make the plan again with this version")
    if saved.policy_digest != policy.digest:
        raise StalePlan(f"the policy files changed since the plan was made (namespaces, tiers or rules: digest "
                        f"{saved.policy_digest[:12]} then, {policy.digest[:12]} now)")
    if saved.target_digest != target_digest(target):
        raise StalePlan(f"the declaration of target {target.name} changed since the plan was made")


def check_live(saved: SavedPlan, plan: Plan) -> None:
    """After reading the instance: it is as it was, and the plan computed now is the plan that was saved."""
    if saved.live_fingerprint != live_fingerprint(plan):
        was, now = saved.document.get("live") or {}, as_dict(plan)["live"]
        moved = _moved(was, now)
        raise StalePlan(f"the live instance changed since the plan was made"
                        f"{': ' + ', '.join(moved) if moved else ' (or the target now resolves to another instance)'}")
    if saved.document.get("changes") != as_dict(plan)["changes"]:
        raise StalePlan("the plan computed now differs from the saved one")


def _moved(was: dict[str, Any], now: dict[str, Any]) -> list[str]:
    moved = [k for k in sorted(set(was) | set(now)) if k not in _UNSTABLE and k != "settings" and was.get(k) != now.get(k)]
    settings_was, settings_now = was.get("settings") or {}, now.get("settings") or {}
    moved += [f"{k} ({json.dumps(settings_was.get(k))} -> {json.dumps(settings_now.get(k))})"
              for k in sorted(set(settings_was) | set(settings_now)) if settings_was.get(k) != settings_now.get(k)]
    return moved


def _sha(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()
