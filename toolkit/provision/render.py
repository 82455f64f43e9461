"""Plans and apply outcomes as text (like ``terraform plan``), JSON (for pipelines), Markdown (PR comments) or
GitHub Actions annotations followed by the text (``github``).

The JSON document is a stable interface, documented in docs/provision.md; ``FORMAT_VERSION`` changes
only when a field changes meaning or disappears (new fields may be added within a version).
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from toolkit.github_actions import annotation
from toolkit.policy.model import PolicySet, Target
from toolkit.policy.secrets import Redactor
from toolkit.provision.apply import Outcome
from toolkit.provision.plan import BLOCKED, CREATE, DELETE, ERROR, UPDATE, WARNING, Change, Finding, Plan
from toolkit.provision.state import ArmStatus, LiveState, to_json

FORMAT_VERSION = "1"
FORMATS = ("text", "json", "markdown", "github")
_SYMBOL = {UPDATE: "~", CREATE: "+", DELETE: "-", BLOCKED: "!"}
_ASSIGNMENT = "access_policy_assignment"
"""``Change.resource`` of an Azure access policy assignment: ``setting`` is its name, ``before``/``after`` are
``{"object_id", "access_policy"}`` (None for a create's ``before`` and a delete's ``after``)."""


def render(plan: Plan, fmt: str, outcome: Outcome | None = None, *, policy: PolicySet | None = None) -> str:
    """The whole document: the plan, and what apply did when ``outcome`` is given.

    ``policy`` (the loaded set the plan was computed from) lets ``github`` annotations name the file and line of
    each setting; without it they name none.
    """
    if fmt == "json":
        return json.dumps(as_dict(plan, outcome), indent=2, sort_keys=False) + "\n"
    if fmt == "markdown":
        return _markdown(plan, outcome)
    text = _text_plan(plan) + (_text_outcome(outcome) if outcome else "")
    if fmt == "github":
        return _github(plan, outcome, policy) + text
    return text


# -- JSON ----------------------------------------------------------------------------------------

def as_dict(plan: Plan, outcome: Outcome | None = None) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "command": "apply" if outcome else "plan",
        "target": {"name": plan.target.name, "provider": plan.target.provider, "where": plan.live.where},
        "policy_digest": plan.policy_digest,
        "live": _live(plan.live, plan.target),
        "changes": [c.as_dict() for c in plan.changes],
        "findings": [f.as_dict() for f in plan.findings],
        "summary": {"create": plan.count(CREATE), "update": plan.count(UPDATE), "delete": plan.count(DELETE),
                    "blocked": plan.count(BLOCKED),
                    "errors": len(plan.errors), "warnings": len(plan.findings) - len(plan.errors),
                    "changes_pending": bool(plan.pending), "refused": plan.refused},
        "result": None if outcome is None else {
            "status": outcome.status, "applied": [c.as_dict() for c in outcome.applied],
            "published": outcome.published, "notes": list(outcome.notes)},
    }


def _status(status: ArmStatus | None) -> dict[str, str | None] | None:
    return None if status is None else {"provisioning_state": status.provisioning, "resource_state": status.resource}


def _live(live: LiveState, target: Target | None = None) -> dict[str, Any]:
    settings = {f.name: to_json(getattr(live.settings, f.name)) for f in fields(live.settings)
                if getattr(live.settings, f.name) is not None}
    redact = Redactor(target)  # a live principal may be one a ${VAR} names: the plan shows the reference
    assignments = None if live.access_policy_assignments is None else [
        {"name": redact(a.name or ""), "object_id": redact(a.object_id), "access_policy": a.access_policy}
        for a in live.access_policy_assignments]
    return {
        "cluster_exists": live.cluster_exists, "database_exists": live.database_exists, "settings": settings,
        "host_name": live.host_name, "port": live.port, "redis_version": live.redis_version,
        "cluster_status": _status(live.cluster_status), "database_status": _status(live.database_status),
        "nodes": list(live.nodes), "config_file": live.config_file,
        "published_digest": live.published_digest, "published_error": live.published_error,
        "access_policy_assignments": assignments,
    }


# -- text ----------------------------------------------------------------------------------------

def _value(value: object, setting: str = "") -> str:
    if value is None:
        return "(none)"
    if setting == "published_policy" and isinstance(value, str):
        return value[:12]
    return json.dumps(value)


def _name(c: Change) -> str:
    return f"{c.resource}.{c.setting}" if c.setting else c.resource


def _created_with(c: Change) -> dict[str, object]:
    """The settings a whole-resource change lists: plan builds its ``after`` as a mapping."""
    assert c.after is None or isinstance(c.after, dict)
    return c.after or {}


def _whole(c: Change) -> bool:
    """A whole resource created or deleted (a cluster, a database, an assignment): shown with its settings."""
    return not c.setting or (c.resource == _ASSIGNMENT and c.action in (CREATE, DELETE))


def _listed(c: Change) -> dict[str, object]:
    """The settings a whole-resource change lists: what it is created with, or what is deleted."""
    value = c.before if c.action == DELETE else c.after
    assert value is None or isinstance(value, dict)
    return value or {}


def _text_change(c: Change) -> list[str]:
    if _whole(c):  # a whole resource to create or delete: list its settings
        lines = [f"  {_SYMBOL[c.action]} {_name(c)}"] + [f"      {k} = {_value(v)}" for k, v in _listed(c).items()]
    elif c.resource == _ASSIGNMENT and isinstance(c.before, dict) and isinstance(c.after, dict):  # field by field
        before, after = c.before, c.after
        lines = [f"  {_SYMBOL[c.action]} {_name(c)}"] + [
            f"      {k} = {_value(before.get(k))}" + ("" if before.get(k) == v else f" -> {_value(v)}") for k, v in after.items()]
    else:
        lines = [f"  {_SYMBOL[c.action]} {_name(c)}: {_value(c.before, c.setting)} -> {_value(c.after, c.setting)}"]
    if c.reason:
        lines.append(f"      blocked: {c.reason}")
    if c.remedy:
        lines.append(f"      instead: {c.remedy}")
    if c.note:
        lines.append(f"      note: {c.note}")
    return lines


def _summary(plan: Plan) -> str:
    deleted = f"{plan.count(DELETE)} to delete, " if plan.count(DELETE) else ""
    return (f"{plan.count(CREATE)} to create, {plan.count(UPDATE)} to update, {deleted}{plan.count(BLOCKED)} blocked, "
            f"{len(plan.errors)} error{'s' if len(plan.errors) != 1 else ''}")


def _text_plan(plan: Plan) -> str:
    live = plan.live
    facts = [f"Redis {live.redis_version}" if live.redis_version else "",
             f"host {live.host_name}" if live.host_name else "",
             f"{len(live.nodes)} nodes" if len(live.nodes) > 1 else ""]
    out = [f"Target {plan.target.name} ({plan.target.provider}): {live.where}"]
    if any(facts):
        out.append("  live: " + ", ".join(f for f in facts if f))
    out.append("")
    if plan.changes:
        out.append("Symbols: ~ update in place, + create, " + ("- delete, " if plan.count(DELETE) else "") +
                   "! blocked (not applied)")
        out.append("")
        for change in plan.changes:
            out.extend(_text_change(change))
        out.append("")
    for finding in plan.findings:
        out.append(f"{finding.severity}: [{finding.code}] {finding.message}")
    if plan.findings:
        out.append("")
    if not plan.changes and not plan.errors:
        out.append("No changes. The instance matches the policy.")
    else:
        out.append(f"Plan: {_summary(plan)}.")
        if plan.refused:
            out.append("Apply will refuse to run until the blocked changes and errors are resolved.")
    return "\n".join(out) + "\n"


def _text_outcome(outcome: Outcome) -> str:
    out = [""]
    out.extend(f"  {note}" for note in outcome.notes)
    if outcome.status == "refused":
        out.append("Apply refused: nothing was changed (see the blocked changes and errors above).")
    elif outcome.status == "no-changes":
        out.append("Apply complete: no changes.")
    else:
        made = sum(1 for c in outcome.applied if c.resource != "policy")
        out.append(f"Apply complete: {made} instance change{'s' if made != 1 else ''} made"
                   f"{', policy published' if outcome.published else ''}.")
    return "\n".join(out) + "\n"


def text_outcome(outcome: Outcome) -> str:
    """Only what apply did: the text plan was already printed before it ran."""
    return _text_outcome(outcome)


# -- Markdown ------------------------------------------------------------------------------------

def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_value(value: object, setting: str = "") -> str:
    return "—" if value is None else f"`{_cell(_value(value, setting))}`"


def _md_pairs(value: object) -> str:
    if not isinstance(value, dict):
        return _md_value(value)
    return ", ".join(f"{k}=`{_cell(_value(v))}`" for k, v in value.items())


def _markdown(plan: Plan, outcome: Outcome | None) -> str:
    word = "apply" if outcome else "plan"
    out = [f"### toolkit {word}: `{plan.target.name}` ({plan.target.provider})", ""]
    if not plan.changes and not plan.errors:
        out.append("**No changes.** The instance matches the policy.")
    else:
        out.append(f"**{_summary(plan)}**" + (" — apply will refuse to run" if plan.refused else ""))
    out.append("")
    out.append(f"Policy digest `{plan.policy_digest[:12]}` · `{_cell(plan.live.where)}`")
    if plan.changes:
        out += ["", "| | resource | setting | live | declared | details |", "|---|---|---|---|---|---|"]
        for c in plan.changes:
            declared = c.after if c.setting else ", ".join(f"{k}={_value(v)}" for k, v in _created_with(c).items())
            if c.resource == _ASSIGNMENT:  # one cell per side: object_id=..., access_policy=...
                out.append(f"| `{_SYMBOL[c.action]}` {c.action} | {c.resource} | {_cell(c.setting)} | {_md_pairs(c.before)} | "
                           f"{_md_pairs(c.after)} | {_cell(c.note)} |")
                continue
            details = " ".join(p for p in (
                f"**Blocked:** {c.reason}." if c.reason else "", f"**Instead:** {c.remedy}." if c.remedy else "",
                "**Data loss** if forced." if c.data_loss and c.action == BLOCKED else "", c.note) if p)
            out.append(f"| `{_SYMBOL[c.action]}` {c.action} | {c.resource} | {c.setting or '(new)'} | "
                       f"{_md_value(c.before, c.setting)} | "
                       f"{_md_value(declared, c.setting) if c.setting else _cell(declared)} | {_cell(details)} |")
    if plan.findings:
        out += ["", "**Cross-checks**", ""]
        out += [f"- **{f.severity}** `{f.code}`: {_cell(f.message)}" for f in plan.findings]
    if outcome is not None:
        out += ["", f"**Result: {outcome.status}**" + (", policy published" if outcome.published else "")]
        out += [f"- {_cell(n)}" for n in outcome.notes]
    return "\n".join(out) + "\n"



# -- GitHub Actions annotations ------------------------------------------------------------------

def change_path(target_name: str, c: Change) -> tuple[str | int, ...]:
    """Where a change's setting is declared: its own ``path`` when it has one (an access policy assignment: its
    list item, or the list for a delete), else ``targets.NAME.instance.SETTING`` (``targets.NAME.port``); a whole
    resource to create points at ``targets.NAME.instance``, the published policy record at the target."""
    if c.path:
        return c.path
    if c.resource == "policy":
        return ("targets", target_name)
    if c.setting == "port":
        return ("targets", target_name, "port")
    return ("targets", target_name, "instance") + ((c.setting,) if c.setting else ())


def finding_path(target_name: str, f: Finding) -> tuple[str | int, ...]:
    """A finding's own document path; () (or none, on older findings) is the target entry."""
    return tuple(getattr(f, "path", ()) or ()) or ("targets", target_name)


def _change_message(c: Change) -> str:
    if not _whole(c):
        head = f"{_SYMBOL[c.action]} {_name(c)}: {_value(c.before, c.setting)} -> {_value(c.after, c.setting)}"
    else:
        listed = ", ".join(f"{k} = {_value(v)}" for k, v in _listed(c).items())
        how = "deleted" if c.action == DELETE else "created with"
        head = f"{_SYMBOL[c.action]} {_name(c)}" + (f" ({how} {listed})" if listed else "")
    return "\n".join(p for p in (head, f"blocked: {c.reason}" if c.reason else "", f"instead: {c.remedy}" if c.remedy else "",
                                   f"note: {c.note}" if c.note else "") if p)


def _github(plan: Plan, outcome: Outcome | None, policy: PolicySet | None) -> str:
    """One annotation per change and finding: blocked changes and errors as ``::error``, deletes and warnings as
    ``::warning``, pending updates and creates as ``::notice``."""
    name = plan.target.name
    title = f"toolkit {'apply' if outcome else 'plan'} {name}"

    def where(path: tuple[str | int, ...]) -> tuple[str, int, int] | None:
        return policy.locate(path) if policy is not None else None

    lines = []
    for c in plan.changes:
        level = "error" if c.action == BLOCKED else "warning" if c.action == DELETE else "notice"
        lines.append(annotation(level, _change_message(c), title=f"{title}: {c.action}", where=where(change_path(name, c))))
    for f in plan.findings:
        level = "error" if f.severity == ERROR else "warning" if f.severity == WARNING else "notice"
        lines.append(annotation(level, f"[{f.code}] {f.message}", title=f"{title}: {f.code}", where=where(finding_path(name, f))))
    return "".join(line + "\n" for line in lines)
