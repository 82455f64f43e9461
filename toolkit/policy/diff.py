"""``toolkit diff``'s engine: compare two canonical policy documents, I/O-free.

``compare(old, new)`` takes two canonical keyspace documents (``PolicySet.document``, or the document
``toolkit apply`` published on an instance, read back from JSON) and returns the changes that matter
to live keys and running applications, each with a stable code, a severity, what happens and what to
do. Targets (not part of the document) are compared when both sides have them.

Severities: ``breaking`` (the CLI exits 3), ``warning`` and ``info``; ``CODES`` lists every code.
Nothing cosmetic is reported (``owner``, ``description``, comments, file layout, key order), and a
pair of identical documents gives ``[]``.

**Renames.** The document has no notion of a rename: a renamed namespace or rule is one removed and
one added. A removed namespace X and an added namespace Y *look alike* when they have the same Redis
type, the same codec and the same parameter names (in any order, so their key templates differ in
literal text, parameter order or hash tag only); two namespaces without any parameter must also have
key templates at least half alike (``difflib`` ratio >= 0.5). When several pairs qualify, the pairs
with the most similar key templates are taken first (each namespace in one pair at most; ties by
name). A removed rule and an added rule look alike when they take the same parameters and share at
least one namespace (after mapping the namespace renames found above), ``keys`` or ``match`` template.
Both findings of an alike pair then say "looks like a rename of X to Y" / "from X" and that every live
key of X is orphaned, except when X and Y build the very same keys (same template and hash tag): then
the keys carry over and only the code naming X breaks (still ``namespace-removed``).

**Widening.** A parameter change is *widening* (``param-widened``, info) when every value the old spec
accepted is still accepted: the type moves up ``int -> slug -> str`` or ``uuid -> slug -> str``
(``int`` and ``uuid`` values are slugs, slugs are safe text), a ``pattern`` is removed, or
``max_length`` is raised (a ``uuid`` is always 36 characters, so a ``uuid`` parameter's
``max_length`` does not matter, and ``uuid -> str`` needs a ``max_length`` of at least 36). Anything
else is *narrowing* (``param-narrowed``, breaking): another type change, a ``pattern`` added or
changed (whether one regular expression accepts all another does is not decided: any change counts),
``max_length`` lowered (a mix of both is narrowing). A parameter of the shared ``parameters`` section is
reported on each namespace that uses it, and on rules whose templates take it without a namespace.

**Other choices.** A key change that moves the keys (anything but a pure parameter rename) makes a type
or codec change of the same namespace moot (the old values never meet the new code): only
``key-changed`` is reported. A persistence change (``persistent-to-expiring``, ``expiring-to-persistent``)
stands for the tier and ttl change it implies. A jitter given as a percentage that follows a ttl change
is part of ``ttl-changed``. A tier's new bounds are one finding per tier (``tier-narrowed`` warning,
``tier-widened`` info), only while some namespace keeps using it. A rule that stops deleting a
namespace (that still exists), a ``keys``/``match`` template or changes its ``hash_tag`` is
``rule-narrowed`` (warning: it stays callable, unlike ``rule-removed``). ``owner``, descriptions,
``reason`` and ``cache_aside`` (absent from the document) give nothing. Targets are compared as
declared (``${VAR}`` never resolved), descriptions excepted; a removed target is a warning (whatever
names it fails), an added one info.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

from toolkit.policy.durations import format_duration
from toolkit.policy.model import BUILTIN_TIERS, PERSISTENT, Module, Persistence, Target
from toolkit.policy.templates import parse_template

BREAKING, WARNING, INFO = "breaking", "warning", "info"
SEVERITIES = (BREAKING, WARNING, INFO)
_RANK = {s: i for i, s in enumerate(SEVERITIES)}

CODES: Mapping[str, tuple[str, str]] = {
    "namespace-removed": (BREAKING, "a namespace is gone: its live keys are left behind, code that names it fails"),
    "key-changed": (BREAKING, "a key template (literal text, parameters, their order) or hash_tag changed: old keys are orphaned"),
    "type-changed": (BREAKING, "a namespace's Redis type changed: old keys answer WRONGTYPE to the new code"),
    "codec-changed": (BREAKING, "a namespace's codec changed: the new code cannot read the old values"),
    "param-narrowed": (BREAKING, "a key parameter accepts less (type, pattern, max_length): live keys or callers may not fit"),
    "rule-removed": (BREAKING, "an invalidation rule is gone: callers fail, stale data stays"),
    "rule-params-changed": (BREAKING, "an invalidation rule takes other parameters: callers pass the old ones"),
    "persistent-to-expiring": (WARNING, "a persistent namespace now expires: existing keys keep no TTL until fixed"),
    "expiring-to-persistent": (WARNING, "an expiring namespace is now persistent: existing keys still expire"),
    "index-added": (WARNING, "a rule gained (or changed) its index: keys written before are not in it"),
    "ttl-changed": (WARNING, "a namespace's ttl changed: existing keys keep the TTL they were written with"),
    "tier-changed": (WARNING, "a namespace moved to another tier: explicit TTLs and the audit use the new bounds"),
    "on-error-changed": (WARNING, "a namespace's on_error changed: what callers get when Redis fails"),
    "tier-narrowed": (WARNING, "a used tier's bounds narrowed: explicit TTLs outside them are refused"),
    "max-length-lowered": (WARNING, "a list namespace's max_length was lowered or added: lists are trimmed on their next push"),
    "rule-narrowed": (WARNING, "an invalidation rule deletes less (a namespace, template or hash_tag changed): stale data stays"),
    "target-removed": (WARNING, "a target is gone: applications and pipelines that name it fail"),
    "namespace-added": (INFO, "a new namespace: it starts empty"),
    "rule-added": (INFO, "a new invalidation rule"),
    "target-changed": (INFO, "a target's connection or instance declaration changed"),
    "target-added": (INFO, "a new target"),
    "param-widened": (INFO, "a key parameter accepts more: existing keys and callers stay valid"),
    "jitter-changed": (INFO, "a namespace's jitter changed: new writes only"),
    "max-length-raised": (INFO, "a list namespace's max_length was raised or removed"),
    "tier-widened": (INFO, "a used tier's bounds widened"),
    "rule-extended": (INFO, "an invalidation rule deletes more"),
    "index-removed": (INFO, "a rule lost its index: invalidation scans again"),
}
"""Every code ``compare`` can return: (severity, one-line summary)."""


@dataclass(frozen=True)
class DiffFinding:
    """One change between two policy documents that matters to live keys or running applications."""

    code: str
    """Stable code (a key of ``CODES``)."""
    severity: str
    """``breaking``, ``warning`` or ``info``."""
    subject: str
    """What changed: ``namespace sessions``, ``rule user_changed``, ``target production``, ``tier moderate``."""
    message: str
    """What changed and what happens to live keys and running applications."""
    remedy: str
    """What to do."""
    side: str
    """``new`` or ``old``: which side's policy files ``path`` points into (``old`` for removals)."""
    path: tuple[str | int, ...]
    """Document path in that side's policy files (``PolicySet.locate`` resolves it)."""

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "subject": self.subject, "message": self.message,
                "remedy": self.remedy, "side": self.side, "path": list(self.path)}


def compare(old: Mapping[str, Any], new: Mapping[str, Any], *,
            old_targets: Mapping[str, Target] | None = None, new_targets: Mapping[str, Target] | None = None
            ) -> list[DiffFinding]:
    """The findings from ``old`` to ``new`` (canonical policy documents), sorted by severity, subject, code.

    Targets are compared only when both sides have them (a published document has none).
    """
    old_ns, new_ns = _namespaces(old), _namespaces(new)
    findings: list[DiffFinding] = []
    renames = _pair_namespaces(old_ns, new_ns)
    findings += _namespace_changes(old_ns, new_ns, renames)
    findings += _tier_changes(old_ns, new_ns)
    findings += _param_changes(old, new, old_ns, new_ns)
    findings += _rule_changes(old, new, old_ns, new_ns, renames)
    if old_targets is not None and new_targets is not None:
        findings += _target_changes(old_targets, new_targets)
    return sorted(findings, key=_order)


def _order(f: DiffFinding) -> tuple[object, ...]:
    return (_RANK.get(f.severity, len(_RANK)), f.subject, f.code, tuple(str(p) for p in f.path), f.message)


# -- reading a document -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ns:
    name: str
    key: str
    type: str
    tier: str
    ttl_ms: int | None
    jitter_ms: int
    tier_min_ms: int | None
    tier_max_ms: int | None
    codec: str
    max_length: int | None
    hash_tag: str | None
    on_error: str
    params: Mapping[str, Mapping[str, Any]]
    order: tuple[str, ...]
    """Parameter names in key template order."""
    shape: tuple[object, ...]
    """The template with parameters anonymised: literal text, ``"{}"`` for a parameter, ``"{{}}"`` for the hash tag."""

    @property
    def persistent(self) -> bool:
        return self.ttl_ms is None or self.tier == PERSISTENT

    @property
    def lifetime(self) -> str:
        """How long an old key can live: its ttl plus jitter."""
        return format_duration((self.ttl_ms or 0) + self.jitter_ms)

    @property
    def keys(self) -> str:
        """The key template as the reader knows it, with the hash tag when there is one."""
        return repr(self.key) + (f" (hash_tag {self.hash_tag})" if self.hash_tag else "")


def _section(document: Mapping[str, Any], name: str) -> Mapping[str, Mapping[str, Any]]:
    raw = document.get(name)
    return raw if isinstance(raw, Mapping) else {}


def _namespaces(document: Mapping[str, Any]) -> dict[str, _Ns]:
    out = {}
    for name, d in _section(document, "namespaces").items():
        key = str(d.get("key", ""))
        hash_tag = d.get("hash_tag")
        params = d.get("params") or {}
        try:
            template = parse_template(key)
            order = template.params
            shape: tuple[object, ...] = tuple(p if isinstance(p, str) else ("{{}}" if p[0] == hash_tag else "{}")
                                              for p in template.parts)
        except ValueError:  # not a template this version reads (a document published by another one): compare the text
            order, shape = tuple(params), (key,)
        ns_type = str(d.get("type", ""))
        out[name] = _Ns(
            name=name, key=key, type=ns_type, tier=str(d.get("tier", "")), ttl_ms=d.get("ttl_ms"),
            jitter_ms=int(d.get("jitter_ms") or 0), tier_min_ms=d.get("tier_min_ms"), tier_max_ms=d.get("tier_max_ms"),
            codec=str(d.get("codec") or "text"), max_length=d.get("max_length"), hash_tag=hash_tag,
            on_error=str(d.get("on_error") or ("fail-closed" if ns_type == "counter" else "fail-open")),
            params={p: _spec(params.get(p)) for p in order}, order=order, shape=shape,
        )
    return out


_DEFAULT_SPEC: Mapping[str, Any] = {"type": "str", "pattern": None, "max_length": 128}


def _spec(raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        return _DEFAULT_SPEC
    return {"type": raw.get("type") or "str", "pattern": raw.get("pattern"), "max_length": raw.get("max_length") or 128}


# -- namespaces ---------------------------------------------------------------------------------


def _alike(a: _Ns, b: _Ns) -> float | None:
    """How alike a removed and an added namespace are (key template ratio), or None when they do not look alike."""
    if a.type != b.type or a.codec != b.codec or set(a.order) != set(b.order):
        return None
    ratio = difflib.SequenceMatcher(None, a.key, b.key).ratio()
    if not a.order and ratio < 0.5:
        return None
    return ratio


def _pair_namespaces(old: Mapping[str, _Ns], new: Mapping[str, _Ns]) -> dict[str, str]:
    """Removed name -> added name, for the pairs that look like renames."""
    removed = [old[n] for n in sorted(set(old) - set(new))]
    added = [new[n] for n in sorted(set(new) - set(old))]
    return _greedy((score, a.name, b.name) for a in removed for b in added if (score := _alike(a, b)) is not None)


def _greedy(candidates: Iterable[tuple[float, str, str]]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    taken: set[str] = set()
    for _, a, b in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if a not in pairs and b not in taken:
            pairs[a] = b
            taken.add(b)
    return pairs


def _orphaned(ns: _Ns) -> str:
    """What becomes of the live keys of ``ns`` once nothing reads or writes them (a clause about "they")."""
    if ns.persistent:
        return "they never expire: their data stays in Redis forever, holding memory, unless someone deletes it"
    return f"they stay until they expire, at most {ns.lifetime} after their last write"


def _namespace_changes(old: Mapping[str, _Ns], new: Mapping[str, _Ns], renames: Mapping[str, str]) -> list[DiffFinding]:
    out: list[DiffFinding] = []
    reverse = {b: a for a, b in renames.items()}
    for name in sorted(set(old) - set(new)):
        out.append(_removed(old[name], new.get(renames.get(name, "")), [n for n in new.values() if n.name not in old]))
    for name in sorted(set(new) - set(old)):
        out.append(_added(new[name], old.get(reverse.get(name, "")), [o for o in old.values() if o.name not in new]))
    for name in sorted(set(old) & set(new)):
        out += _namespace_changed(old[name], new[name])
    return out


def _same_keys(a: _Ns, b: _Ns) -> bool:
    return a.key == b.key and a.hash_tag == b.hash_tag


def _removed(ns: _Ns, renamed: _Ns | None, added: Sequence[_Ns]) -> DiffFinding:
    subject, path = f"namespace {ns.name}", ("namespaces", ns.name)
    fails = f"code that still names {ns.name!r} gets PolicyViolation (no such namespace)"
    audit = "toolkit audit lists them as keys in no namespace"
    if renamed is not None and _same_keys(ns, renamed):
        return _finding("namespace-removed", subject, "old", path,
                        f"Namespace {ns.name} was removed; it looks like a rename of {ns.name} to {renamed.name}, which builds the "
                        f"same keys ({ns.keys}): the live keys carry over to {renamed.name}, but {fails}.",
                        f"Deploy the rename with every use of {ns.name!r} changed to {renamed.name!r}; nothing to do for the keys.")
    if renamed is not None:
        message = (f"Namespace {ns.name} was removed; it looks like a rename of {ns.name} to {renamed.name} (key {ns.keys} -> "
                   f"{renamed.keys}): every live key of {ns.name} is orphaned ({_orphaned(ns)}) and {renamed.name} starts "
                   f"cold (every read a miss).")
        remedy = (f"Change every use of {ns.name!r} to {renamed.name!r}; "
                  + (f"copy the data to the new keys before the deploy or it is lost to the application, and delete the old "
                     f"keys afterwards ({audit})." if ns.persistent else
                     "expect the cold start, or keep the old key template to keep the cache warm."))
        return _finding("namespace-removed", subject, "old", path, message, remedy)
    shared = [a for a in added if _same_keys(ns, a)]
    clash = (f" Added namespace {shared[0].name} builds the same keys with type {shared[0].type} and codec {shared[0].codec}: "
             f"those live keys meet the new code." if shared and (shared[0].type, shared[0].codec) != (ns.type, ns.codec) else "")
    message = (f"Namespace {ns.name} ({ns.type}, key {ns.keys}) was removed: {fails}, and nothing reads, writes or "
               f"invalidates its live keys any more; {_orphaned(ns)}.{clash}")
    if ns.persistent:
        remedy = (f"Make sure no deployed code uses {ns.name!r}, then delete its keys ({audit}), or keep the namespace "
                  f"if the data is still needed.")
    else:
        remedy = f"Make sure no deployed code uses {ns.name!r}; the old keys go away by themselves."
    return _finding("namespace-removed", subject, "old", path, message, remedy)


def _added(ns: _Ns, renamed_from: _Ns | None, removed: Sequence[_Ns]) -> DiffFinding:
    subject, path = f"namespace {ns.name}", ("namespaces", ns.name)
    lifetime = "persistent" if ns.persistent else f"tier {ns.tier}, ttl {format_duration(ns.ttl_ms or 0)}"
    what = f"Namespace {ns.name} ({ns.type}, key {ns.keys}, {lifetime}) was added"
    if renamed_from is not None and _same_keys(renamed_from, ns):
        return _finding("namespace-added", subject, "new", path,
                        f"{what}; it looks like a rename from {renamed_from.name}, which built the same keys: the live keys "
                        f"carry over.", f"Change every use of {renamed_from.name!r} to {ns.name!r}.")
    if renamed_from is not None:
        return _finding("namespace-added", subject, "new", path,
                        f"{what}; it looks like a rename from {renamed_from.name} (key {renamed_from.keys}): it starts empty, "
                        f"and every live key of {renamed_from.name} is orphaned ({_orphaned(renamed_from)}).",
                        f"Expect a cold start of {ns.name}"
                        + (f"; copy {renamed_from.name}'s persistent data to the new keys before the deploy." if renamed_from.persistent
                           else "."))
    shared = [r for r in removed if _same_keys(r, ns) and (r.type, r.codec) != (ns.type, ns.codec)]
    if shared:
        r = shared[0]
        return _finding("namespace-added", subject, "new", path,
                        f"{what}; it builds the same keys as removed namespace {r.name}, which held type {r.type} with codec "
                        f"{r.codec}: those live keys answer the new code with WRONGTYPE or undecodable values (DataViolation) "
                        f"until they {'are deleted (they never expire)' if r.persistent else 'expire'}.",
                        f"Delete {r.name}'s keys when deploying, or give {ns.name} another key template.")
    return _finding("namespace-added", subject, "new", path, f"{what}: it starts empty; nothing existing changes.", "Nothing to do.")


_REDIS_TYPE = {"string": "string", "counter": "string", "hash": "hash", "list": "list"}
_DECODE = {
    ("text", "json"): "decodes them as JSON: most text fails (DataViolation) and text such as '42' silently becomes a number",
    ("bytes", "json"): "decodes them as JSON: most bytes fail (DataViolation)",
    ("json", "text"): "returns them as raw JSON text instead of the objects the code expects",
    ("bytes", "text"): "decodes them as UTF-8: binary values fail (DataViolation)",
    ("text", "bytes"): "returns them as bytes instead of str",
    ("json", "bytes"): "returns them as raw JSON bytes instead of the objects the code expects",
}


def _namespace_changed(o: _Ns, n: _Ns) -> list[DiffFinding]:
    out: list[DiffFinding] = []
    subject = f"namespace {o.name}"
    base = ("namespaces", n.name)
    gone = "forever (they never expire) unless deleted" if o.persistent else f"until they expire (at most {o.lifetime})"

    moved = not _same_keys(o, n) and not _renamed_only(o, n)
    if not _same_keys(o, n):
        out.append(_key_changed(o, n, subject))

    # Once the keys move, the old values never meet the new code: a type or codec change is part of the cold start.
    if o.type != n.type and not moved:
        if n.type == "counter" and o.type == "string":
            effect = (f"both are Redis strings, so there is no WRONGTYPE, but the new code's reads and increments of the old "
                      f"values that are not integers are DataViolations {gone}, and during a rolling deploy old instances "
                      f"read the counters as {o.codec} values")
        elif o.type == "counter" and n.type == "string":
            effect = (f"both are Redis strings, so there is no WRONGTYPE, but the new code reads the old counters' digits as "
                      f"{n.codec} values, and during a rolling deploy old instances' increments of the new values fail "
                      f"(DataViolation: not an integer)")
        else:
            effect = (f"the live keys hold Redis {_REDIS_TYPE.get(o.type, o.type)} values: the new code's commands on them "
                      f"answer WRONGTYPE (a DataViolation: a miss or a dropped write on fail-open, an error on fail-closed) "
                      f"{gone}, and during a rolling deploy old instances meet the new keys the same way")
        out.append(_finding("type-changed", subject, "new", base + ("type",), f"Type {o.type} -> {n.type}: {effect}.",
                            "Give the new type a new key template (or namespace) so old and new keys never meet, or delete "
                            "the namespace's keys when deploying."))

    if o.codec != n.codec and "counter" not in (o.type, n.type) and not moved:
        read = _DECODE.get((o.codec, n.codec), f"decodes them as {n.codec}")
        out.append(_finding("codec-changed", subject, "new", base + ("codec",),
                            f"Codec {o.codec} -> {n.codec}: the old values stay {gone}, and the new code {read}; during a "
                            f"rolling deploy old instances read the new values as {o.codec}.",
                            "Change the key template together with the codec so the new code starts cold instead of failing, "
                            "or delete the namespace's keys when deploying."))

    if o.persistent and not n.persistent:
        out.append(_finding("persistent-to-expiring", subject, "new", base + ("tier",),
                            f"Tier persistent -> {n.tier} (ttl {format_duration(n.ttl_ms or 0)}): keys written from now on "
                            f"expire, but the existing keys keep no TTL (the audit reports them as missing_ttl) until they are "
                            f"rewritten or fixed.",
                            "After deploying, run `toolkit audit --fix-ttl` to give the existing keys their TTL."))
    elif n.persistent and not o.persistent:
        out.append(_finding("expiring-to-persistent", subject, "new", base + ("tier",),
                            f"Tier {o.tier} -> persistent: the existing keys keep the TTL they were written with and still "
                            f"expire (within {o.lifetime}) unless a write replaces it (SET does; HSET, RPUSH and INCRBY keep "
                            f"it), so data the application now treats as permanent can vanish; the audit reports them as "
                            f"ttl_on_persistent.",
                            "If the existing data must stay, PERSIST its keys after deploying (`toolkit audit` lists them); "
                            "make sure the instance's eviction policy cannot evict them (`toolkit plan` checks it)."))
    elif not o.persistent:
        if o.tier != n.tier:
            out.append(_finding("tier-changed", subject, "new", base + ("tier",),
                                f"Tier {o.tier} ({_bounds(o.tier_min_ms, o.tier_max_ms)}) -> {n.tier} "
                                f"({_bounds(n.tier_min_ms, n.tier_max_ms)}): explicit TTLs callers pass (ttl=, expire) must fit "
                                f"the new bounds or get PolicyViolation, and the audit judges live keys against the new maximum.",
                                "Check the code that passes explicit TTLs for this namespace; after deploying, "
                                "`toolkit audit --fix-ttl` clamps TTLs above the new maximum."))
        if o.ttl_ms != n.ttl_ms:
            old_ttl, new_ttl = format_duration(o.ttl_ms or 0), format_duration(n.ttl_ms or 0)
            shorter = (n.ttl_ms or 0) < (o.ttl_ms or 0)
            out.append(_finding("ttl-changed", subject, "new", base + ("ttl",),
                                f"TTL {old_ttl} -> {new_ttl}: new writes get {new_ttl}, the existing keys keep the TTL they were "
                                f"written with (up to {o.lifetime})"
                                + (", so data may be served for longer than the new ttl allows until they expire."
                                   if shorter else "; memory use grows as keys live longer."),
                                ("If the shorter TTL matters for correctness, invalidate or delete the namespace's keys after "
                                 "deploying; otherwise nothing to do." if shorter else
                                 "Check that the instance has memory for the longer-lived keys.")))
        proportional = o.ttl_ms != n.ttl_ms and o.jitter_ms * (n.ttl_ms or 0) == n.jitter_ms * (o.ttl_ms or 0)
        if o.jitter_ms != n.jitter_ms and not proportional:  # a percentage jitter follows the ttl: part of ttl-changed
            out.append(_finding("jitter-changed", subject, "new", base + ("jitter",),
                                f"Jitter {_jitter(o.jitter_ms)} -> {_jitter(n.jitter_ms)}: only new writes get the new random "
                                f"extra TTL; existing keys are unchanged.", "Nothing to do."))

    if o.on_error != n.on_error:
        if n.on_error == "fail-closed":
            effect = ("when Redis fails (unreachable, timeout, breaker open, refused) or holds bad data, calls now raise "
                      "CacheUnavailable or DataViolation instead of returning a miss or dropping the write: callers without a "
                      "handler fail")
        else:
            effect = ("when Redis fails, calls now return a miss and drop writes silently instead of raising: code that relied on "
                      "the exception (a counter used as a rate limit or quota, for instance) now proceeds as if nothing was stored")
        out.append(_finding("on-error-changed", subject, "new", base + ("on_error",), f"on_error {o.on_error} -> {n.on_error}: {effect}.",
                            "Check the callers' error handling for this namespace before deploying."))

    if o.type == n.type == "list" and o.max_length != n.max_length:
        if n.max_length is not None and (o.max_length is None or n.max_length < o.max_length):
            out.append(_finding("max-length-lowered", subject, "new", base + ("max_length",),
                                f"max_length {o.max_length if o.max_length is not None else 'none'} -> {n.max_length}: existing "
                                f"lists keep their items until their next push, which trims them to {n.max_length}: the items "
                                f"beyond are dropped.", f"Make sure no reader needs more than {n.max_length} items."))
        else:
            out.append(_finding("max-length-raised", subject, "new", base + ("max_length",),
                                f"max_length {o.max_length} -> {n.max_length if n.max_length is not None else 'none'}: lists "
                                f"can grow longer from now on; memory use grows.", "Nothing to do."))
    return out


def _jitter(ms: int) -> str:
    return f"up to {format_duration(ms)}" if ms else "none"


def _renamed_only(o: _Ns, n: _Ns) -> bool:
    """Same literal text, placeholders (and hash tag) in the same places, only parameter names changed: the same
    values build the same keys. A parameter that moved to another place does not count (its values move too)."""
    return o.shape == n.shape and all(b == a or b not in o.order for a, b in zip(o.order, n.order))


def _key_changed(o: _Ns, n: _Ns, subject: str) -> DiffFinding:
    path: tuple[str | int, ...] = ("namespaces", n.name, "hash_tag" if o.key == n.key and n.hash_tag else "key")
    what = []
    if o.key != n.key:
        what.append(f"key template {o.key!r} -> {n.key!r}")
    if o.hash_tag != n.hash_tag:
        what.append(f"hash_tag {o.hash_tag or 'none'} -> {n.hash_tag or 'none'}")
    change = "; ".join(what)
    if _renamed_only(o, n):
        renamed = ", ".join(f"{a} -> {b}" for a, b in zip(o.order, n.order) if a != b)
        return _finding("key-changed", subject, "new", path,
                        f"Key changed ({change}): parameters renamed ({renamed}); the keys themselves are unchanged, but "
                        f"callers that pass the old names get PolicyViolation (missing or unexpected parameter).",
                        "Update every call to pass the new parameter names in the same deploy.")
    facts = []
    literals = [p for p in o.shape if p not in ("{}", "{{}}")], [p for p in n.shape if p not in ("{}", "{{}}")]
    if literals[0] != literals[1]:
        facts.append("literal text")
    if set(o.order) != set(n.order):
        gone, more = [p for p in o.order if p not in n.order], [p for p in n.order if p not in o.order]
        facts.append("parameters" + (f" removed {', '.join(gone)}" if gone else "") + (" and" if gone and more else "")
                     + (f" added {', '.join(more)}" if more else ""))
    elif o.order != n.order:
        facts.append(f"parameter order ({', '.join(o.order)} -> {', '.join(n.order)})")
    if o.hash_tag != n.hash_tag:
        facts.append("hash tag")
    if o.persistent:
        left = ("the old keys are persistent: their data stays behind under the old keys forever, unseen by the new code, "
                "which starts without it")
        remedy = ("Migrate the data (copy each old key to its new key) before the new code goes live, then delete the old keys "
                  "(`toolkit audit` lists them as keys in no namespace); or keep the old key template.")
    else:
        left = (f"the old keys are orphaned until they expire (at most {o.lifetime}) and the cache starts cold: every read "
                f"misses and loads from the source at once")
        remedy = ("Plan the cold start (deploy off-peak, warm the cache)." if (o.type, o.codec) != (n.type, n.codec) else
                  "Keep the old key template, or plan the cold start (deploy off-peak, warm the cache).")
    callers = " Callers must pass the new parameters." if set(o.order) != set(n.order) else ""
    if o.type != n.type or o.codec != n.codec:
        callers += (f" The type or codec changes too ({o.type}/{o.codec} -> {n.type}/{n.codec}): the new keys never meet "
                    f"the old values.")
    return _finding("key-changed", subject, "new", path,
                    f"Key changed ({change}; {', '.join(facts) or 'template'} changed): {left}.{callers}", remedy)


def _bounds(low: int | None, high: int | None) -> str:
    if low is None:
        return "no bounds"
    return f"{format_duration(low)} to {format_duration(high) if high is not None else 'no upper bound'}"


def _tier_changes(old: Mapping[str, _Ns], new: Mapping[str, _Ns]) -> list[DiffFinding]:
    """A tier whose bounds changed, as the namespaces that keep using it see it (one finding per tier)."""
    users: dict[str, list[tuple[_Ns, _Ns]]] = {}
    for name in sorted(set(old) & set(new)):
        o, n = old[name], new[name]
        if o.tier == n.tier and not o.persistent and not n.persistent and (o.tier_min_ms, o.tier_max_ms) != (n.tier_min_ms, n.tier_max_ms):
            users.setdefault(n.tier, []).append((o, n))
    out = []
    for tier, pairs in sorted(users.items()):
        o, n = pairs[0]
        names = ", ".join(p[1].name for p in pairs)
        lo_o, lo_n = o.tier_min_ms or 0, n.tier_min_ms or 0
        narrowed = lo_n > lo_o or (n.tier_max_ms is not None and (o.tier_max_ms is None or n.tier_max_ms < o.tier_max_ms))
        builtin = BUILTIN_TIERS.get(tier)
        declared = builtin is None or (builtin.min_ms, builtin.max_ms) != (n.tier_min_ms, n.tier_max_ms)
        field = "min" if lo_o != lo_n else "max"
        path: tuple[str | int, ...] = ("tiers", tier, field) if declared else ("namespaces", n.name, "tier")
        change = f"Tier {tier} {_bounds(o.tier_min_ms, o.tier_max_ms)} -> {_bounds(n.tier_min_ms, n.tier_max_ms)} (used by {names})"
        if narrowed:
            out.append(_finding("tier-narrowed", f"tier {tier}", "new", path,
                                f"{change}: explicit TTLs callers pass outside the new bounds (ttl=, expire) get PolicyViolation, "
                                f"and the audit reports live keys above the new maximum as ttl_above_max.",
                                "Check the code that passes explicit TTLs; after deploying, `toolkit audit --fix-ttl` clamps "
                                "TTLs above the new maximum."))
        else:
            out.append(_finding("tier-widened", f"tier {tier}", "new", path,
                                f"{change}: explicit TTLs may now range wider; existing keys are unchanged.", "Nothing to do."))
    return out


# -- parameters -----------------------------------------------------------------------------------

_WIDER = {("int", "slug"), ("int", "str"), ("slug", "str"), ("uuid", "slug"), ("uuid", "str")}
"""(old type, new type) pairs where the new type accepts every value of the old one."""
_UUID_LENGTH = 36


def _param_delta(o: Mapping[str, Any], n: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(narrowing changes, widening changes) between two parameter specs, each as (field, what changed)."""
    narrow: list[tuple[str, str]] = []
    wide: list[tuple[str, str]] = []
    if o["type"] != n["type"]:
        (wide if (o["type"], n["type"]) in _WIDER else narrow).append(("type", f"type {o['type']} -> {n['type']}"))
    if o["pattern"] != n["pattern"]:
        if n["pattern"] is None:
            wide.append(("pattern", f"pattern {o['pattern']!r} removed"))
        elif o["pattern"] is None:
            narrow.append(("pattern", f"pattern {n['pattern']!r} added"))
        else:
            narrow.append(("pattern", f"pattern {o['pattern']!r} -> {n['pattern']!r}"))
    if n["type"] != "uuid":  # a uuid is 36 characters whatever its max_length
        if o["type"] == "uuid":
            if n["max_length"] < _UUID_LENGTH:
                narrow.append(("max_length", f"max_length {n['max_length']} is below a uuid's {_UUID_LENGTH} characters"))
        elif n["max_length"] < o["max_length"]:
            narrow.append(("max_length", f"max_length {o['max_length']} -> {n['max_length']}"))
        elif n["max_length"] > o["max_length"]:
            wide.append(("max_length", f"max_length {o['max_length']} -> {n['max_length']}"))
    return narrow, wide


def _param_changes(old_doc: Mapping[str, Any], new_doc: Mapping[str, Any],
                   old: Mapping[str, _Ns], new: Mapping[str, _Ns]) -> list[DiffFinding]:
    out = []
    old_shared, new_shared = _section(old_doc, "parameters"), _section(new_doc, "parameters")
    for name in sorted(set(old) & set(new)):
        o, n = old[name], new[name]
        for param in n.order:
            if param not in o.params:
                continue
            narrow, wide = _param_delta(o.params[param], n.params[param])
            if not narrow and not wide:
                continue
            field = (narrow or wide)[0][0]
            shared = (param in new_shared and _spec(new_shared[param]) == n.params[param]
                      and param in old_shared and _spec(old_shared[param]) == o.params[param])
            path: tuple[str | int, ...] = (("parameters", param, field) if shared
                                           else ("namespaces", name, "params", param, field))
            out.append(_param_finding(f"namespace {name}", param, narrow, wide, path, "live keys"))
    # Rules that take their parameters' types from the shared section (keys/match templates only).
    for name, (o_rule, n_rule) in sorted(_common_rules(old_doc, new_doc).items()):
        if o_rule.get("namespaces") or n_rule.get("namespaces"):
            continue  # their types are the namespaces', reported there
        for param in n_rule.get("params") or []:
            if param not in (o_rule.get("params") or []):
                continue
            narrow, wide = _param_delta(_spec(old_shared.get(param)), _spec(new_shared.get(param)))
            if narrow or wide:
                field = (narrow or wide)[0][0]
                path = ("parameters", param, field) if param in new_shared else ("invalidation", name)
                out.append(_param_finding(f"rule {name}", param, narrow, wide, path, "keys it deletes"))
    return out


def _param_finding(subject: str, param: str, narrow: list[tuple[str, str]], wide: list[tuple[str, str]],
                   path: tuple[str | int, ...], what: str) -> DiffFinding:
    changes = "; ".join(text for _, text in narrow + wide)
    if narrow:
        return _finding("param-narrowed", subject, "new", path,
                        f"Parameter {param} accepts less ({changes}): {what} built from values the new spec refuses can no "
                        f"longer be built or classified (the audit counts them as keys in no namespace, orphaned until they "
                        f"expire), and callers passing such values get PolicyViolation.",
                        f"Check that every live value and every caller satisfies the new spec of {param} (`toolkit audit` "
                        f"after deploying shows keys it no longer classifies), or keep the old spec.")
    return _finding("param-widened", subject, "new", path,
                    f"Parameter {param} accepts more ({changes}): existing keys and callers stay valid; during a rolling "
                    f"deploy old instances still refuse the newly accepted values.", "Nothing to do.")


# -- invalidation rules -----------------------------------------------------------------------------


def _rules(document: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    return _section(document, "invalidation")


def _common_rules(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Mapping[str, Any], Mapping[str, Any]]]:
    o, n = _rules(old), _rules(new)
    return {name: (o[name], n[name]) for name in set(o) & set(n)}


def _list(rule: Mapping[str, Any], field: str) -> list[str]:
    raw = rule.get(field) or []
    return [raw] if isinstance(raw, str) else [str(x) for x in raw]


def _rule_field(rule: Mapping[str, Any]) -> str | None:
    """The first of a rule's namespaces/keys/match it writes: where its parameters come from."""
    return next((f for f in ("namespaces", "keys", "match") if _list(rule, f)), None)


def _rule_alike(o: Mapping[str, Any], n: Mapping[str, Any], renames: Mapping[str, str]) -> float | None:
    if set(_list(o, "params")) != set(_list(n, "params")):
        return None
    o_ns = {renames.get(x, x) for x in _list(o, "namespaces")}
    common = len(o_ns & set(_list(n, "namespaces"))) + len(set(_list(o, "keys")) & set(_list(n, "keys"))) \
        + len(set(_list(o, "match")) & set(_list(n, "match")))
    total = len(o_ns | set(_list(n, "namespaces"))) + len(set(_list(o, "keys")) | set(_list(n, "keys"))) \
        + len(set(_list(o, "match")) | set(_list(n, "match")))
    return common / total if common else None


def _rule_changes(old_doc: Mapping[str, Any], new_doc: Mapping[str, Any], old_ns: Mapping[str, _Ns],
                  new_ns: Mapping[str, _Ns], renames: Mapping[str, str]) -> list[DiffFinding]:
    old, new = _rules(old_doc), _rules(new_doc)
    removed, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
    pairs = _greedy((score, a, b) for a in removed for b in added if (score := _rule_alike(old[a], new[b], renames)) is not None)
    reverse = {b: a for a, b in pairs.items()}
    out = []
    for name in removed:
        out.append(_rule_removed(name, old[name], pairs.get(name), old_ns))
    for name in added:
        rule = new[name]
        params = ", ".join(_list(rule, "params")) or "none"
        if name in reverse:
            was = reverse[name]
            indexed = (" Its index starts empty (index sets are named after the rule): keys written before are not deleted by "
                       "it until they expire." if rule.get("index") else "")
            out.append(_finding("rule-added", f"rule {name}", "new", ("invalidation", name),
                                f"Rule {name} (parameters {params}) was added; it looks like a rename from {was}: calls to "
                                f"invalidate({was!r}) must become invalidate({name!r}).{indexed}",
                                f"Change every invalidate({was!r}) to invalidate({name!r}) in the same deploy."))
        else:
            out.append(_finding("rule-added", f"rule {name}", "new", ("invalidation", name),
                                f"Rule {name} (parameters {params}) was added: nothing calls it yet; existing data is unchanged.",
                                "Nothing to do."))
    for name in sorted(set(old) & set(new)):
        out += _rule_changed(name, old[name], new[name], old_ns, new_ns)
    return out


def _rule_removed(name: str, rule: Mapping[str, Any], renamed: str | None, old_ns: Mapping[str, _Ns]) -> DiffFinding:
    covers = ", ".join(_list(rule, "namespaces") + [repr(t) for t in _list(rule, "keys") + _list(rule, "match")])
    forever = any(old_ns[x].persistent for x in _list(rule, "namespaces") if x in old_ns)
    stale = "stale data stays in Redis " + ("(forever for its persistent namespaces)" if forever else "until it expires")
    if renamed is not None:
        return _finding("rule-removed", f"rule {name}", "old", ("invalidation", name),
                        f"Rule {name} was removed; it looks like a rename of {name} to {renamed}: calls to invalidate({name!r}) "
                        f"get PolicyViolation (no such rule) until they are changed, and where the application relied on them, "
                        f"{stale}.",
                        f"Change every invalidate({name!r}) to invalidate({renamed!r}) in the same deploy.")
    return _finding("rule-removed", f"rule {name}", "old", ("invalidation", name),
                    f"Rule {name} (deleting {covers or 'nothing'}) was removed: calls to invalidate({name!r}) get PolicyViolation "
                    f"(no such rule), and where the application relied on it, {stale}.",
                    f"Remove every invalidate({name!r}) call first, and make sure the data it deleted is invalidated another "
                    f"way or may be stale until it expires.")


def _shape(template: str) -> str:
    """A key or glob template with its parameter names left out: ``p:{uid}`` and ``p:{user}`` build the same keys."""
    return re.sub(r"\{[^{}]*\}", "{}", template)


def _rule_changed(name: str, o: Mapping[str, Any], n: Mapping[str, Any], old_ns: Mapping[str, _Ns],
                  new_ns: Mapping[str, _Ns]) -> list[DiffFinding]:
    out = []
    subject, base = f"rule {name}", ("invalidation", name)
    o_params, n_params = _list(o, "params"), _list(n, "params")
    if set(o_params) != set(n_params):
        where = _rule_field(n)
        out.append(_finding("rule-params-changed", subject, "new", base + ((where,) if where else ()),
                            f"Rule {name} takes parameters ({', '.join(o_params) or 'none'}) -> ({', '.join(n_params) or 'none'}): "
                            f"callers of invalidate({name!r}) that pass the old parameters get PolicyViolation, so nothing is "
                            f"invalidated and stale data stays.",
                            f"Change every invalidate({name!r}, ...) call to pass {', '.join(n_params) or 'no parameters'} in the "
                            f"same deploy."))
    lost: list[str] = []
    gained: list[str] = []
    first: str | None = None
    for field in ("namespaces", "keys", "match"):
        before, after = _list(o, field), _list(n, field)
        if field == "namespaces":
            minus = [x for x in before if x not in after and x in new_ns]
            plus = [x for x in after if x not in before and x in old_ns]
        else:  # a renamed parameter builds the same keys: compare the templates' shapes
            before_shapes, after_shapes = {_shape(x) for x in before}, {_shape(x) for x in after}
            minus = [x for x in before if _shape(x) not in after_shapes]
            plus = [x for x in after if _shape(x) not in before_shapes]
        label = "namespace" if field == "namespaces" else f"{field} template"
        lost += [f"{label} {x if field == 'namespaces' else repr(x)}" for x in minus]
        gained += [f"{label} {x if field == 'namespaces' else repr(x)}" for x in plus]
        if (minus or plus) and first is None:
            first = field
    if o.get("hash_tag") != n.get("hash_tag") and (_list(o, "keys") or _list(o, "match")):
        lost.append(f"hash_tag {o.get('hash_tag') or 'none'} -> {n.get('hash_tag') or 'none'} (its keys and match templates "
                    f"now build other keys)")
        first = first or "hash_tag"
    path = base + ((first,) if first else ())
    indexed = (" The rule is indexed: keys written before the change that it now covers are not in its index and are not "
               "deleted until they expire." if n.get("index") and gained else "")
    if lost:
        out.append(_finding("rule-narrowed", subject, "new", path,
                            f"Rule {name} no longer deletes: {'; '.join(lost)}"
                            + (f" (and now deletes: {'; '.join(gained)})" if gained else "")
                            + f": where the application relied on it, that data stays stale until it expires.{indexed}",
                            "Make sure that data is invalidated another way, or that staleness until expiry is acceptable."))
    elif gained:
        out.append(_finding("rule-extended", subject, "new", path,
                            f"Rule {name} now also deletes: {'; '.join(gained)}.{indexed}", "Nothing to do."))
    o_index, n_index = o.get("index"), n.get("index")
    if n_index is not None and o_index != n_index:
        how = f"index {o_index} -> {n_index}" if o_index else f"index {n_index} added"
        out.append(_finding("index-added", subject, "new", base + ("index",),
                            f"Rule {name}: {how}: invalidate now deletes the keys its index lists instead of scanning, and keys "
                            f"written before the deploy are not in the index: they are not deleted by it and stay stale until "
                            f"they expire.",
                            "After deploying, run one SCAN-based cleanup of the covered namespaces (or wait one ttl) before "
                            "relying on the index; or accept staleness until the old keys expire."))
    elif o_index is not None and n_index is None:
        out.append(_finding("index-removed", subject, "new", base,
                            f"Rule {name}: index {o_index} removed: invalidate goes back to a SCAN over its match templates "
                            f"(O(keyspace) instead of O(keys of the entity)); the old index sets expire with the keys they list.",
                            "Check that a SCAN per invalidation is affordable on this keyspace."))
    return out


# -- targets ----------------------------------------------------------------------------------------

_TLS_FIELDS = {"ca_file": ("tls", "ca_file"), "check_hostname": ("tls", "check_hostname")}
_COSMETIC = {"name", "description"}
_SECTIONS = {"auth", "client", "azure", "instance"}


def _yaml_name(field: str) -> str:
    return field[:-3] if field.endswith("_ms") else field


def _fmt(field: str, value: object) -> str:
    if value is None:
        return "not declared"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and field.endswith("_ms"):
        return format_duration(value)
    if isinstance(value, Persistence):
        return "disabled" if value.aof is None and value.rdb is None else (f"aof {value.aof}" if value.aof else f"rdb {value.rdb}")
    if isinstance(value, Module):
        return value.name + (f" ({value.args})" if value.args else "")
    if isinstance(value, tuple):
        return "[" + ", ".join(_fmt("", v) for v in value) + "]"
    if is_dataclass(value) and not isinstance(value, type):
        parts = [f"{f.name}={_fmt(f.name, getattr(value, f.name))}" for f in fields(value)
                 if f.name not in _COSMETIC and getattr(value, f.name) not in (None, "")]
        return "{" + ", ".join(parts) + "}"
    return repr(value) if isinstance(value, str) else str(value)


def _declaration_changes(old: object, new: object, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    """(YAML path under the target, "what: old -> new") for every field that differs; descriptions are cosmetic."""
    out = []
    for f in fields(old):  # type: ignore[arg-type]
        if f.name in _COSMETIC:
            continue
        a, b = getattr(old, f.name), getattr(new, f.name)
        if a == b:
            continue
        if not prefix and f.name in _SECTIONS and a is not None and b is not None:
            out += _declaration_changes(a, b, (f.name,))
            continue
        path = _TLS_FIELDS.get(f.name, (_yaml_name(f.name),)) if not prefix else prefix + (_yaml_name(f.name),)
        if isinstance(a, tuple) and isinstance(b, tuple) and [_fmt(f.name, x) for x in a] == [_fmt(f.name, x) for x in b]:
            continue  # differ only in descriptions
        out.append((path, f"{'.'.join(path)} {_fmt(f.name, a)} -> {_fmt(f.name, b)}"))
    return out


def _target_changes(old: Mapping[str, Target], new: Mapping[str, Target]) -> list[DiffFinding]:
    out = []
    for name in sorted(set(old) - set(new)):
        out.append(_finding("target-removed", f"target {name}", "old", ("targets", name),
                            f"Target {name} ({old[name].provider}) was removed: applications and pipelines that name it "
                            f"(toolkit.connect(..., {name!r}), --target {name}) fail with ConfigurationError; the instance itself "
                            f"is untouched.", f"Make sure nothing connects to or deploys with target {name!r} any more."))
    for name in sorted(set(new) - set(old)):
        out.append(_finding("target-added", f"target {name}", "new", ("targets", name),
                            f"Target {name} ({new[name].provider}) was added.",
                            f"Run `toolkit plan --target {name}` to see what apply would create or change."))
    for name in sorted(set(old) & set(new)):
        changes = _declaration_changes(old[name], new[name], ())
        if not changes:
            continue
        instance = any(path[0] == "instance" for path, _ in changes)
        connection = any(path[0] != "instance" for path, _ in changes)
        remedy = []
        if instance:
            remedy.append(f"run `toolkit plan --target {name}` to see what apply would change on the instance")
        if connection:
            remedy.append("applications use the new connection settings once redeployed")
        out.append(_finding("target-changed", f"target {name}", "new", ("targets", name) + changes[0][0],
                            f"Target {name}: {'; '.join(text for _, text in changes)} (declarations as written; ${{VAR}} "
                            f"references are not resolved).", "; ".join(remedy).capitalize() + "."))
    return out


def _finding(code: str, subject: str, side: str, path: tuple[str | int, ...], message: str, remedy: str) -> DiffFinding:
    return DiffFinding(code, CODES[code][0], subject, message, remedy, side, path)
