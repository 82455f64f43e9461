"""Audit reports as text (for people), JSON (for pipelines; shape documented in the README) or JUnit XML (for CI
test reports: a case per namespace, one for unknown keys, one per leftover group)."""

from __future__ import annotations

import json

from toolkit import junit
from toolkit.audit._model import VIOLATIONS, AuditReport, FixReport, NamespaceFix, NamespaceReport
from toolkit.policy.durations import format_duration
from toolkit.policy.model import PolicySet

FORMATS = ("text", "json", "junit")
TOP_PREFIXES = 20
_KIND_LABEL = {"missing_ttl": "no TTL", "ttl_above_max": "TTL above tier max",
               "ttl_on_persistent": "TTL on a persistent key", "wrong_type": "wrong Redis type",
               "ttl_below_min": "TTL below tier min (not a violation)"}


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def render(report: AuditReport, fmt: str, policy: PolicySet | None = None) -> str:
    """``policy`` (the audited files) gives the JUnit cases of namespaces their file and line."""
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2) + "\n"
    if fmt == "junit":
        return _junit(report, policy)
    return _text(report)


def approx_ms(ms: int | None) -> str:
    """A remaining TTL in one readable unit (``22345678`` -> ``6.2h``); None -> ``none``."""
    if ms is None:
        return "none"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            return f"{ms / size:.1f}".removesuffix(".0") + unit
    return f"{ms}ms"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _tier(ns: NamespaceReport) -> str:
    if ns.ttl_ms is None:
        return f"{ns.tier} (no TTL)"
    high = format_duration(ns.tier_max_ms) if ns.tier_max_ms is not None else "..."
    return f"{ns.tier} ({format_duration(ns.tier_min_ms or 0)}-{high})"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


def _text(report: AuditReport) -> str:
    out: list[str] = []
    where = ", ".join(f"{node} ({strategy})" for node, strategy in report.nodes.items())
    rate = report.scanned / report.elapsed_s if report.elapsed_s > 0 else 0
    out.append(f"audit of target {report.target or '?'}: {'cluster' if report.cluster else 'standalone'} {where}")
    reserved = f" ({report.reserved_keys:,} reserved for the toolkit)" if report.reserved_keys else ""
    out.append(f"scanned {_n(report.scanned, 'key')}{f' matching {report.match!r}' if report.match else ''}{reserved} "
               f"in {report.elapsed_s:.1f}s ({rate:,.0f} keys/s); {report.vanished:,} vanished before being probed")
    out.append(_policy_line(report))
    out.append("")

    present = [ns for ns in report.namespaces if ns.keys]
    rows = [["namespace", "type", "tier", "keys", "no TTL", "TTL>max", "TTL on persistent", "wrong type", "TTL<min",
             "memory (est.)"]]
    for ns in present:
        rows.append([ns.name, ns.type, _tier(ns), f"{ns.keys:,}", f"{ns.missing_ttl:,}", f"{ns.ttl_above_max:,}",
                     f"{ns.ttl_on_persistent:,}", f"{ns.wrong_type:,}", f"{ns.ttl_below_min:,}",
                     _bytes(ns.memory.estimated_bytes) if ns.memory else "-"])
    out.extend(_table(rows) if present else ["no key of any namespace"])
    empty = len(report.namespaces) - len(present)
    if empty:
        out.append(f"({empty} namespace{'s' if empty != 1 else ''} without keys: "
                   f"{', '.join(ns.name for ns in report.namespaces if not ns.keys)})")

    offenders = [ns for ns in present if ns.violations or ns.ttl_below_min]
    if offenders:
        out.append("")
        out.append("examples:")
        for ns in offenders:
            for kind, keys in ns.examples.items():
                extra = f" (found: {', '.join(f'{t} {n:,}' for t, n in ns.found_types.items())})" if kind == "wrong_type" else ""
                out.append(f"  {ns.name}: {_KIND_LABEL[kind]}{extra}: {', '.join(keys)}")

    if report.unknown_keys:
        out.append("")
        prefixes = f"{len(report.unknown):,} prefix{'' if len(report.unknown) == 1 else 'es'}"
        out.append(f"keys in no namespace: {report.unknown_keys:,} under {prefixes}")
        for group in report.unknown[:TOP_PREFIXES]:
            out.append(f"  {group.prefix:<24} {group.keys:>12,}   e.g. {', '.join(group.examples)}")
        if len(report.unknown) > TOP_PREFIXES:
            out.append(f"  ... {len(report.unknown) - TOP_PREFIXES:,} more prefixes (all of them in --output json)")
    if report.leftovers:
        out.append("")
        out.append(f"keys left over from an earlier policy: {sum(x.keys for x in report.leftovers):,} "
                   f"(they match no current namespace; delete them, or wait until they expire)")
        for x in report.leftovers:
            out.append(f"  {x.namespace:<24} {x.keys:>12,}   [{x.code}] of policy {x.digest[:12]} "
                       f"(applied {x.applied_at or '?'}), e.g. {', '.join(x.examples)}")
    if report.fix is not None:
        out.append("")
        out.extend(_fix_lines(report.fix))
    out.append("")
    out.append(_verdict(report))
    return "\n".join(out) + "\n"


def _policy_line(report: AuditReport) -> str:
    local = report.policy.local_digest[:12]
    published = report.policy.published
    if published is None:
        return f"policy: no policy published on the instance (run toolkit apply); local files {local}"
    applied = f"{published.get('digest', '?')[:12]} (applied {published.get('applied_at', '?')} by {published.get('applied_by', '?')})"
    if report.policy.matches:
        return f"policy: instance runs {applied}, same as the local files"
    return f"policy: instance runs {applied}, the local files are {local}: DIFFERENT"


def _fix_lines(fix: FixReport) -> list[str]:
    head = "fix-ttl (dry run, nothing written):" if fix.dry_run else "fix-ttl:"
    if not fix.namespaces:
        return [f"{head} nothing to fix"]
    lines = [head]
    verb_set, verb_clamp = ("would set", "would clamp") if fix.dry_run else ("set", "clamped")
    for ns in fix.namespaces:
        parts = []
        if ns.ttl_set:
            parts.append(f"{verb_set} a TTL on {_n(ns.ttl_set, 'key')}")
        if ns.ttl_clamped:
            parts.append(f"{verb_clamp} {_n(ns.ttl_clamped, 'TTL')}")
        if ns.declined:
            parts.append(f"{ns.declined:,} declined (the key changed meanwhile)")
        lines.append(f"  {ns.namespace}: {'; '.join(parts)}")
        for c in ns.examples:
            status = "" if c.applied or fix.dry_run else " (declined)"
            lines.append(f"    {c.key}: {approx_ms(c.before_ms)} -> {approx_ms(c.ttl_ms)}{status}")
    return lines


def _junit(report: AuditReport, policy: PolicySet | None) -> str:
    """Each case fails while violations are outstanding (found, minus what ``--fix-ttl`` fixed), so the suite has
    failures exactly when the exit code is 3; the whole text report is the suite's ``<system-out>``."""
    classname = f"toolkit.audit.{report.target or 'default'}"
    fixes = {n.namespace: n for n in report.fix.namespaces} if report.fix is not None else {}
    cases = [_namespace_case(classname, ns, fixes.get(ns.name), report.fix, policy) for ns in report.namespaces]
    if report.unknown_keys:
        prefixes = f"{len(report.unknown):,} prefix{'' if len(report.unknown) == 1 else 'es'}"
        cases.append(junit.Case(classname, "unknown keys", junit.FAILURE, type="unknown_keys",
                                message=f"{_n(report.unknown_keys, 'key')} in no namespace, under {prefixes}",
                                details="\n".join(f"{g.prefix}: {_n(g.keys, 'key')}, e.g. {', '.join(g.examples)}"
                                                  for g in report.unknown)))
    else:
        cases.append(junit.Case(classname, "unknown keys"))
    for x in report.leftovers:
        name = f"leftover {x.namespace} [{x.code}] of policy {x.digest[:12]}"
        what = (f"{_n(x.keys, 'key')} left over from namespace {x.namespace} of policy {x.digest[:12]} (applied "
                f"{x.applied_at or '?'}), removed or changed since ({x.code}): delete them, or wait until they expire")
        cases.append(junit.Case(classname, name, junit.FAILURE if x.keys else junit.PASSED, type="leftover",
                                message=what if x.keys else "", details=f"{what}\ne.g. {', '.join(x.examples)}" if x.keys else ""))
    published = report.policy.published
    properties = {"target": report.target, "cluster": str(report.cluster).lower(), "nodes": ", ".join(report.nodes),
                  "match": report.match or "", "scanned": str(report.scanned), "violations": str(report.violations),
                  "outstanding": str(report.outstanding), "local_digest": report.policy.local_digest,
                  "published_digest": (published or {}).get("digest", "")}
    return junit.document("toolkit audit", cases, time=report.elapsed_s, properties=properties, stdout=_text(report))


def _namespace_case(classname: str, ns: NamespaceReport, fix: NamespaceFix | None, fix_report: FixReport | None,
                    policy: PolicySet | None) -> junit.Case:
    fixed = fix.ttl_set + fix.ttl_clamped if fix is not None and fix_report is not None and not fix_report.dry_run else 0
    outstanding = ns.violations - fixed
    lines = [f"{ns.name}: {ns.type}, tier {_tier(ns)}, {_n(ns.keys, 'key')}"
             + (f", ~{_bytes(ns.memory.estimated_bytes)} (est.)" if ns.memory else "")]
    for kind in (*VIOLATIONS, "ttl_below_min"):
        count: int = getattr(ns, kind)
        if count:
            extra = f" (found: {', '.join(f'{t} {n:,}' for t, n in ns.found_types.items())})" if kind == "wrong_type" else ""
            examples = ns.examples.get(kind, ())
            lines.append(f"{_KIND_LABEL[kind]}: {count:,}{extra}" + (f", e.g. {', '.join(examples)}" if examples else ""))
    if fix is not None and fix_report is not None:
        fix_lines = [line.strip() for line in _fix_lines(FixReport(fix_report.dry_run, (fix,)))[1:]]
        head = "fix-ttl (dry run)" if fix_report.dry_run else "fix-ttl"
        lines += [f"{head}: {fix_lines[0].removeprefix(f'{ns.name}: ')}", *fix_lines[1:]]
    where = policy.locate(("namespaces", ns.name)) if policy is not None else None
    file, line = (where[0], where[1]) if where else (None, None)
    if outstanding <= 0:
        return junit.Case(classname, ns.name, stdout="\n".join(lines) if ns.keys else "", file=file, line=line)
    counts = ", ".join(f"{getattr(ns, kind):,} {_KIND_LABEL[kind]}" for kind in VIOLATIONS if getattr(ns, kind))
    fixed_note = f"; {fixed:,} fixed by --fix-ttl" if fixed else ""
    return junit.Case(classname, ns.name, junit.FAILURE, type="policy_violation", file=file, line=line,
                      message=f"{_n(outstanding, 'violation')} in {_n(ns.keys, 'key')}: {counts}{fixed_note}",
                      details="\n".join(lines))


def _verdict(report: AuditReport) -> str:
    if report.compliant:
        fixed = f" after fixing {report.fix.fixed:,}" if report.fix and report.fix.fixed else ""
        return f"compliant{fixed}"
    found = _n(report.violations, "violation")
    if report.fix and report.fix.fixed:
        return f"{found}, {report.fix.fixed:,} fixed, {report.outstanding:,} left"
    return found
