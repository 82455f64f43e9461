"""Diff findings as text (a terminal), JSON (pipelines), Markdown (a PR comment), GitHub annotations or JUnit XML
(CI test reports: a case per finding; breaking fails, breaking accepted with ``--allow`` is skipped, the rest pass).

The JSON document is a stable interface documented in docs/diff.md (``FORMAT_VERSION``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from toolkit import junit
from toolkit.diff._sources import Side
from toolkit.github_actions import annotation
from toolkit.policy.diff import BREAKING, INFO, WARNING, DiffFinding

FORMAT_VERSION = "1"
FORMATS = ("text", "json", "markdown", "github", "junit")
_LEVEL = {BREAKING: "error", WARNING: "warning", INFO: "notice"}


@dataclass(frozen=True)
class Located:
    finding: DiffFinding
    file: str | None
    line: int | None
    allowed: bool
    old_label: str = ""
    """For a finding located in OLD (a removal): OLD's name, so that its line is never read as NEW's."""

    @property
    def where(self) -> str:
        if self.file is None:
            return ""
        at = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{at} in {self.old_label}" if self.old_label else at


def locate(findings: Sequence[DiffFinding], old: Side, new: Side, allowed: frozenset[str]) -> list[Located]:
    out = []
    for f in findings:
        found = (old if f.side == "old" else new).where(f.path)
        out.append(Located(f, found[0] if found else None, found[1] if found else None, f.code in allowed,
                           old.label if f.side == "old" else ""))
    return out


def counts(located: Sequence[Located]) -> dict[str, int]:
    return {
        BREAKING: sum(1 for x in located if x.finding.severity == BREAKING and not x.allowed),
        WARNING: sum(1 for x in located if x.finding.severity == WARNING),
        INFO: sum(1 for x in located if x.finding.severity == INFO),
        "allowed": sum(1 for x in located if x.allowed),
    }


def render(located: Sequence[Located], old: Side, new: Side, fmt: str, exit_code: int) -> str:
    if fmt == "json":
        return json.dumps(as_dict(located, old, new, exit_code), indent=2) + "\n"
    if fmt == "markdown":
        return _markdown(located, old, new)
    if fmt == "junit":
        return _junit(located, old, new)
    text = _text(located, old, new)
    return _github(located, old) + text if fmt == "github" else text


def as_dict(located: Sequence[Located], old: Side, new: Side, exit_code: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION, "old": old.label, "new": new.label,
        "findings": [{**x.finding.as_dict(), "file": x.file, "line": x.line, "allowed": x.allowed} for x in located],
        "summary": counts(located), "exit_code": exit_code,
    }


def _summary(located: Sequence[Located]) -> str:
    n = counts(located)
    allowed = f" ({n['allowed']} allowed by --allow)" if n["allowed"] else ""
    return f"{n[BREAKING]} breaking, {n[WARNING]} warning{'s' if n[WARNING] != 1 else ''}, {n[INFO]} info{allowed}"


def _text(located: Sequence[Located], old: Side, new: Side) -> str:
    out = [f"Policy changes from {old.label} to {new.label}", ""]
    for x in located:
        f = x.finding
        tag = f"{f.severity}{' (allowed)' if x.allowed else ''}"
        out.append(f"{tag} [{f.code}] {f.subject}{f' ({x.where})' if x.where else ''}")
        out.append(f"    {f.message}")
        if f.remedy:
            out.append(f"    do: {f.remedy}")
    if located:
        out.append("")
    out.append(f"Diff: {_summary(located)}." if located else "No changes that affect live keys or running applications.")
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _markdown(located: Sequence[Located], old: Side, new: Side) -> str:
    n = counts(located)
    head = "**Breaking changes**" if n[BREAKING] else "No breaking changes"
    out = [f"### toolkit diff: `{old.label}` → `{new.label}`", "", f"{head}: {_summary(located)}.", ""]
    if located:
        out += ["| severity | code | what | where | what happens | what to do |", "|---|---|---|---|---|---|"]
        for x in located:
            f = x.finding
            sev = f"**{f.severity}**" if f.severity == BREAKING and not x.allowed else f.severity
            out.append(f"| {sev}{' (allowed)' if x.allowed else ''} | `{f.code}` | {_cell(f.subject)} | "
                       f"{_cell(x.where) or ' '} | {_cell(f.message)} | {_cell(f.remedy)} |")
    return "\n".join(out) + "\n"


def _github(located: Sequence[Located], old: Side) -> str:
    """Findings on NEW lines are annotated there; removals point at the old file as a whole (the line is OLD's)."""
    lines = []
    for x in located:
        f = x.finding
        level = "notice" if x.allowed else _LEVEL[f.severity]
        message = f"{f.message} {f.remedy}".strip()
        if f.side == "old" and x.line is not None:
            message += f" (line {x.line} in {old.label})"
        where: tuple[str, int | None, int | None] | None = None
        if x.file is not None:
            where = (x.file, None, None) if f.side == "old" else (x.file, x.line, None)
        lines.append(annotation(level, message, title=f"toolkit diff: {f.code} ({f.subject})", where=where))
    return "".join(line + "\n" for line in lines)


NO_CHANGE = "no changes that affect live keys or running applications"


def _junit(located: Sequence[Located], old: Side, new: Side) -> str:
    """A case per finding, named ``code subject``: breaking is a ``<failure>``, breaking but accepted with ``--allow``
    is ``<skipped>`` (shown, not failing), warnings and info pass with their message in ``<system-out>``. Without a
    finding, one passing case, so the suite is never empty. The summary line is the suite's ``<system-out>``."""
    cases = []
    for x in located:
        f = x.finding
        where = f" ({x.where}{f' in {old.label}' if f.side == 'old' else ''})" if x.where else ""
        lines = [f"{f.severity}{' (allowed)' if x.allowed else ''} [{f.code}] {f.subject}{where}", f.message]
        lines += [f"do: {f.remedy}"] if f.remedy else []
        file = x.file
        line = x.line if f.side == "new" else None  # a removal's line is OLD's: name the file only, as --output github
        name, headline = f"{f.code} {f.subject}", " ".join(f.message.split())
        if f.severity == BREAKING and not x.allowed:
            cases.append(junit.Case("toolkit.diff", name, junit.FAILURE, message=headline, type=f.code,
                                    details="\n".join(lines), file=file, line=line))
        elif x.allowed:
            cases.append(junit.Case("toolkit.diff", name, junit.SKIPPED, message=f"allowed by --allow: {headline}",
                                    details="\n".join(lines), file=file, line=line))
        else:
            cases.append(junit.Case("toolkit.diff", name, stdout="\n".join(lines), file=file, line=line))
    if not cases:
        cases.append(junit.Case("toolkit.diff", NO_CHANGE))
    n = counts(located)
    properties = {"old": old.label, "new": new.label, **{key: str(value) for key, value in n.items()}}
    summary = f"Diff: {_summary(located)}." if located else f"{NO_CHANGE[0].upper()}{NO_CHANGE[1:]}."
    return junit.document("toolkit diff", cases, properties=properties,
                          stdout=f"Policy changes from {old.label} to {new.label}\n{summary}")
