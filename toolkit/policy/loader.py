"""``toolkit.load``: read a policy set, check it against the schema and the semantic rules, build the model.

Every check runs on every file and all issues are reported together, so one
``toolkit validate`` run shows a pull request everything that is wrong with it.
"""

from __future__ import annotations

import difflib
import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from toolkit.errors import PolicyError, PolicyIssue
from toolkit.policy.classify import Classifier
from toolkit.policy.durations import format_duration, parse_duration
from toolkit.policy.leaks import ADVICE, find_secrets
from toolkit.policy.model import (
    ACCESS_POLICIES,
    BUILTIN_TIERS,
    ENTRA_OBJECT_ID,
    PERSISTENT,
    RESERVED_PARAM_NAMES,
    AccessPolicyAssignment,
    Auth,
    AzureRef,
    CacheAside,
    ClientOptions,
    InstancePolicy,
    InvalidationRule,
    LocalCache,
    Module,
    Namespace,
    Persistence,
    PolicySet,
    Target,
    Tier,
)
from toolkit.policy.published import RESERVED_PREFIX
from toolkit.policy.schema import validate_document
from toolkit.policy.templates import KeyTemplate, Param, parse_template
from toolkit.policy.yamlfile import YamlDocument, read_policy_file

SECTIONS = ("parameters", "tiers", "namespaces", "invalidation", "targets")
_ENV_REF = re.compile(r"\$\{")
_PROVIDER_DEFAULTS = {"azure-managed-redis": (10000, True), "azure-cache-for-redis": (6380, True), "redis": (None, False)}
_PLAIN_REDIS_INSTANCE_FIELDS = {"eviction_policy", "persistence", "clustering_policy"}


@dataclass
class _Entry:
    """One named item of a section, with the file it came from."""

    name: str
    data: Any
    doc: YamlDocument
    path: tuple


def policy_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[PolicyIssue]]:
    """Expand directories into their ``*.yaml``/``*.yml`` files (sorted, recursive).

    Whatever a path turns out to be (missing, unreadable, a FIFO that would block a read forever),
    it is an issue located at the path, never an exception.
    """
    files: list[Path] = []
    issues: list[PolicyIssue] = []
    for raw in paths:
        path = Path(raw)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
            issues.append(PolicyIssue(str(path), 1, 1, "", "no such file or directory" if missing else f"cannot read: {exc.strerror or exc}"))
            continue
        if stat.S_ISDIR(mode):
            before = len(issues)
            found = _policy_files_under(path, issues)
            if not found and len(issues) == before:
                issues.append(PolicyIssue(str(path), 1, 1, "", "directory holds no .yaml or .yml policy files"))
            files.extend(found)
        elif stat.S_ISREG(mode):
            files.append(path)
        else:
            issues.append(PolicyIssue(str(path), 1, 1, "", "not a regular file or a directory; refused"))
    return files, issues


def _policy_files_under(directory: Path, issues: list[PolicyIssue]) -> list[Path]:
    """Regular ``*.yaml``/``*.yml`` files below ``directory``; an unreadable subdirectory is an issue, not a silent gap."""
    def unreadable(exc: OSError) -> None:
        issues.append(PolicyIssue(str(exc.filename or directory), 1, 1, "", f"cannot read directory: {exc.strerror or exc}"))

    found = []
    for folder, _, names in os.walk(directory, onerror=unreadable):
        for name in names:
            path = Path(folder, name)
            if path.suffix in (".yaml", ".yml") and path.is_file():
                found.append(path)
    return sorted(found)


def load(paths: str | Path | Iterable[str | Path] = "policies") -> PolicySet:
    """Load and check a policy set from files and/or directories; raise PolicyError listing every issue."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files, issues = policy_files(paths)
    docs: list[tuple[YamlDocument, set[tuple]]] = []
    for file in files:
        doc, file_issues = read_policy_file(file)
        issues.extend(file_issues)
        if doc is None:
            continue
        schema_issues, broken = validate_document(doc)
        issues.extend(schema_issues)
        issues.extend(doc.issue(path, f"{what}: {ADVICE}") for path, what in find_secrets(doc.data))
        issues.extend(_interpolation_outside_targets(doc))
        docs.append((doc, broken))
    builder = _Builder(docs)
    policy = builder.build()
    issues.extend(builder.issues)
    if issues:
        raise PolicyError(list(set(issues)))  # an anchor merged twice would report its mistakes twice
    return policy


def _interpolation_outside_targets(doc: YamlDocument) -> list[PolicyIssue]:
    found = []

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, path + (i,))
        elif isinstance(value, str) and _ENV_REF.search(value):
            found.append(doc.issue(path, "${...} interpolation is allowed in targets only: write the value itself"))

    for section, value in doc.data.items():
        if section != "targets":
            walk(value, (section,))
    return found


class _Builder:
    """Builds the model from parsed documents, collecting semantic issues.

    Entries with a schema violation (``broken``) are left out of the model but keep their
    name, so the rest of the set is still checked without follow-on errors such as an
    "unknown namespace" for a namespace that is merely misspelt inside.
    """

    def __init__(self, docs: list[tuple[YamlDocument, set[tuple]]]):
        self.docs = docs
        self.issues: list[PolicyIssue] = []
        self.skipped: dict[str, set[str]] = {section: set() for section in SECTIONS}

    def error(self, entry: _Entry, sub: tuple, message: str, *, key: bool = False) -> None:
        self.issues.append(entry.doc.issue(entry.path + sub, message, key=key))

    def entries(self, section: str) -> list[_Entry]:
        """The section's items across files; a name defined twice is an issue at its second definition."""
        seen: dict[str, _Entry] = {}
        for doc, broken in self.docs:
            items = doc.data.get(section) or {}
            if (section,) in broken or not isinstance(items, dict):
                continue
            for name, data in items.items():
                entry = _Entry(name, data, doc, (section, name))
                first = seen.get(name)
                if first is not None:
                    line, _ = first.doc.position(first.path, key=True)
                    self.error(entry, (), f"{section} {name!r} is already defined in {first.doc.file}:{line}; "
                                          "names are unique across the policy set", key=True)
                    continue
                seen[name] = entry
                if entry.path in broken:
                    self.skipped[section].add(name)
        return [entry for name, entry in seen.items() if name not in self.skipped[section]]

    def above_zero(self, entry: _Entry, data: dict, sub: tuple, field_: str, why: str) -> None:
        """Refuse a zero duration where Redis or redis-py cannot take one (``-0.0`` is read as 0 too)."""
        if field_ in data and parse_duration(data[field_]) == 0:
            self.error(entry, sub + (field_,), f"{field_} must be above zero: {why}")

    def param(self, entry: _Entry, sub: tuple, name: str, spec: dict) -> Param | None:
        """A key parameter's spec; None (and an issue) when its pattern is not a regular expression."""
        pattern = spec.get("pattern")
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                self.error(entry, sub + ("pattern",), f"pattern {pattern!r} is not a valid regular expression: {exc}")
                return None
        return Param(name, spec.get("type", "str"), pattern, spec.get("max_length", 128))

    def build(self) -> PolicySet:
        parameters = {e.name: p for e in self.entries("parameters") if (p := self.param(e, (), e.name, e.data))}
        tiers = self.tiers()
        namespaces = {}
        ns_entries = {}
        for entry in self.entries("namespaces"):
            ns = self.namespace(entry, tiers, parameters)
            if ns is not None:
                namespaces[ns.name] = ns
                ns_entries[ns.name] = entry
        self.overlaps(namespaces, ns_entries)
        rules = {}
        for entry in self.entries("invalidation"):
            rule = self.rule(entry, namespaces, parameters)
            if rule is not None:
                rules[rule.name] = rule
        targets = {}
        for entry in self.entries("targets"):
            target = self.target(entry)
            if target is not None:
                targets[target.name] = target
        document = _canonical(tiers, namespaces, rules, parameters)
        digest = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        return PolicySet(
            tiers=MappingProxyType(tiers), namespaces=MappingProxyType(namespaces), rules=MappingProxyType(rules),
            targets=MappingProxyType(targets), parameters=MappingProxyType(parameters),
            sources=tuple(d.file for d, _ in self.docs), digest=digest, document=MappingProxyType(document),
            classifier=Classifier(namespaces.values()), locations=_locations(self.docs),
        )

    # -- tiers ---------------------------------------------------------------------------------

    def tiers(self) -> dict[str, Tier]:
        tiers = dict(BUILTIN_TIERS)
        for entry in self.entries("tiers"):
            low = parse_duration(entry.data["min"])
            high = parse_duration(entry.data["max"]) if "max" in entry.data else None
            default = parse_duration(entry.data["default"])
            ok = True
            if low <= 0:
                self.error(entry, ("min",), "a tier's minimum TTL must be above zero (use tier: persistent for keys that never expire)")
                ok = False
            if high is not None and high < low:
                self.error(entry, ("max",), f"max {format_duration(high)} is below min {format_duration(low)}")
                ok = False
            elif default < low or (high is not None and default > high):
                self.error(entry, ("default",), f"default {format_duration(default)} is outside the tier's own bounds "
                                                f"({format_duration(low)} to {format_duration(high) if high is not None else 'no upper bound'})")
                ok = False
            builtin = BUILTIN_TIERS.get(entry.name)
            if builtin is not None and ok:
                if low < builtin.min_ms:
                    wider: tuple[str, str] | None = ("min", f"min {format_duration(low)} is below")
                elif builtin.max_ms is not None and (high is None or high > builtin.max_ms):
                    wider = ("max", "no max is above" if high is None else f"max {format_duration(high)} is above")
                else:
                    wider = None
                if wider is not None:
                    self.error(entry, (wider[0],) if wider[0] in entry.data else (), f"built-in tier {entry.name!r} can only be narrowed, "
                               f"not widened: {wider[1]} its bounds ({_bounds(builtin)}); declare a tier with another name instead")
                    ok = False
            if ok:
                tiers[entry.name] = Tier(entry.name, low, high, default, entry.data.get("description", ""))
        return tiers

    # -- namespaces ----------------------------------------------------------------------------

    def namespace(self, entry: _Entry, tiers: dict[str, Tier], parameters: dict[str, Param]) -> Namespace | None:
        d = entry.data
        try:
            template = parse_template(d["key"])
        except ValueError as exc:
            self.error(entry, ("key",), f"bad key template {d['key']!r}: {exc}")
            return None
        for name in template.params:
            if name in RESERVED_PARAM_NAMES:
                self.error(entry, ("key",), f"parameter name {name!r} is reserved (it is an option of the engine's "
                                            f"handle methods: {', '.join(sorted(RESERVED_PARAM_NAMES))}); rename it")
        own: dict[str, Param | None] = {name: self.param(entry, ("params", name), name, spec)
                                        for name, spec in (d.get("params") or {}).items()}
        for name in own:
            if name not in template.params:
                self.error(entry, ("params", name), f"parameter {name!r} is not used in key template {d['key']!r}: "
                                                    f"add {{{name}}} to the template or remove this entry", key=True)
        if any(own.get(name) is None and name in own for name in template.params):
            return None
        params = {name: own.get(name) or parameters.get(name) or Param(name) for name in template.params}
        hash_tag = d.get("hash_tag")
        if hash_tag is not None and hash_tag not in template.params:
            self.error(entry, ("hash_tag",), f"hash_tag {hash_tag!r} is not a parameter of key template {d['key']!r} "
                                             f"(its parameters: {', '.join(template.params) or 'none'})")
        if _reaches_reserved(template, params, hash_tag):
            self.error(entry, ("key",), f"key template {d['key']!r} can build keys under {RESERVED_PREFIX!r}, which is "
                                        "reserved for the toolkit; start it with literal text such as 'app:'")
        ns_type = d["type"]
        if "max_length" in d and ns_type != "list":
            self.error(entry, ("max_length",), f"max_length applies to lists only, not to type {ns_type}; remove it")
        if ns_type == "counter" and d.get("codec", "text") != "text":
            self.error(entry, ("codec",), "counters hold integers: codec does not apply; remove it")
        tier_name = d["tier"]
        ttl_ms: int | None = None
        tier_min = tier_max = None
        if tier_name == PERSISTENT:
            if not d.get("reason"):
                self.error(entry, ("tier",), "a persistent namespace needs a 'reason' saying why its keys never expire")
            for field_ in ("ttl", "jitter"):
                if field_ in d:
                    self.error(entry, (field_,), f"a persistent namespace takes no {field_}: its keys never expire; remove it")
        elif tier_name not in tiers:
            if tier_name not in self.skipped["tiers"]:
                known = sorted(tiers) + [PERSISTENT]
                self.error(entry, ("tier",), f"unknown tier {tier_name!r} (known: {', '.join(known)}){_suggest(tier_name, known)}")
            return None
        else:
            tier = tiers[tier_name]
            tier_min, tier_max = tier.min_ms, tier.max_ms
            ttl_ms = parse_duration(d["ttl"]) if "ttl" in d else tier.default_ms
            if not tier.contains(ttl_ms):
                self.error(entry, ("ttl",), f"ttl {format_duration(ttl_ms)} is outside tier {tier_name!r} ({_bounds(tier)}); "
                                            "choose a ttl inside it or another tier")
        jitter_ms, jitter_pct = 0, 0
        if "jitter" in d and ttl_ms is not None:
            raw = d["jitter"]
            if isinstance(raw, str) and raw.endswith("%"):
                jitter_pct = int(raw[:-1])
            else:
                jitter_ms = parse_duration(raw)
            spread = jitter_ms or ttl_ms * jitter_pct // 100
            if tier_max is not None and ttl_ms + spread > tier_max:
                self.error(entry, ("jitter",), f"ttl {format_duration(ttl_ms)} + jitter up to {format_duration(spread)} can reach "
                                               f"{format_duration(ttl_ms + spread)}, above the max of tier {tier_name!r} "
                                               f"({format_duration(tier_max)}); lower the ttl or the jitter")
        cache = d.get("cache_aside") or {}
        self.above_zero(entry, cache, ("cache_aside",), "lock_timeout", "a lock that expires at once locks nothing")
        beta = cache.get("early_refresh")
        negative = parse_duration(cache["negative_ttl"]) if "negative_ttl" in cache else None
        if negative is not None and (ttl_ms is None or negative > ttl_ms):
            self.error(entry, ("cache_aside", "negative_ttl"), "negative_ttl must not exceed the namespace's ttl"
                       + (f" ({format_duration(ttl_ms)})" if ttl_ms is not None else " (a persistent namespace has none)"))
        local = self.local_cache(entry, d, ns_type, ttl_ms)
        return Namespace(
            name=entry.name, template=template, type=ns_type, tier=tier_name, ttl_ms=ttl_ms, local_cache=local,
            tier_min_ms=tier_min, tier_max_ms=tier_max, jitter_ms=jitter_ms, jitter_percent=jitter_pct,
            codec=d.get("codec", "text"), max_length=d.get("max_length"), params=MappingProxyType(params),
            hash_tag=hash_tag, owner=d.get("owner", ""), description=d.get("description", ""), reason=d.get("reason", ""),
            on_error=d.get("on_error", "fail-closed" if ns_type == "counter" else "fail-open"),
            trace_params=d.get("trace_params", False),
            cache_aside=CacheAside(
                lock=bool(cache.get("lock", False)),
                lock_timeout_ms=parse_duration(cache.get("lock_timeout", "5s")),
                wait_timeout_ms=parse_duration(cache.get("wait_timeout", "2s")),
                early_refresh_beta=(1.0 if beta is True else None if beta in (None, False) else float(beta)),
                negative_ttl_ms=negative,
            ),
        )

    def local_cache(self, entry: _Entry, d: dict, ns_type: str, ttl_ms: int | None) -> LocalCache | None:
        """``local_cache``: string and hash namespaces only, a local TTL above zero and at most the namespace's."""
        raw = d.get("local_cache")
        if raw is None:
            return None
        if ns_type not in ("string", "hash"):
            why = "a counter changes on every write, so a local copy would be stale at once" if ns_type == "counter" else \
                "lists are read in ranges the near cache does not keep"
            self.error(entry, ("local_cache",), f"local_cache is for string and hash namespaces: {why}", key=True)
            return None
        default_ttl = min(30_000, ttl_ms) if ttl_ms is not None else 30_000
        local_ttl = parse_duration(raw["ttl"]) if "ttl" in raw else default_ttl
        if local_ttl <= 0:
            self.error(entry, ("local_cache", "ttl"), "a local copy that expires at once caches nothing")
            return None
        if ttl_ms is not None and local_ttl > ttl_ms:
            self.error(entry, ("local_cache", "ttl"), f"the local ttl {format_duration(local_ttl)} is above the namespace's "
                                                      f"ttl ({format_duration(ttl_ms)}): a local copy must not outlive the key")
            return None
        return LocalCache(max_entries=raw.get("max_entries", 10_000), ttl_ms=local_ttl)

    def overlaps(self, namespaces: dict[str, Namespace], entries: dict[str, _Entry]) -> None:
        """Two templates that can produce the same key would make ownership and classification ambiguous."""
        by_length: dict[int, list[Namespace]] = {}
        for ns in namespaces.values():
            by_length.setdefault(len(ns.template.segments()), []).append(ns)
        for group in by_length.values():
            for i, a in enumerate(group):
                for b in group[i + 1:]:
                    if _may_overlap(a, b):
                        self.error(entries[b.name], ("key",),
                                   f"key template {b.template.source!r} can match the same keys as namespace {a.name!r} "
                                   f"({a.template.source!r}); make a literal part differ")

    # -- invalidation --------------------------------------------------------------------------

    def rule(self, entry: _Entry, namespaces: dict[str, Namespace], parameters: dict[str, Param]) -> InvalidationRule | None:
        d = entry.data
        users: list[tuple[str, tuple, dict[str, Param]]] = []  # (what, where, params used)
        ok = True
        for i, name in enumerate(d.get("namespaces", [])):
            ns = namespaces.get(name)
            if ns is None:
                if name not in self.skipped["namespaces"]:
                    self.error(entry, ("namespaces", i), f"unknown namespace {name!r}{_suggest(name, list(namespaces))}")
                ok = False
                continue
            users.append((f"namespace {name!r}", ("namespaces", i), dict(ns.params)))
        templates: dict[str, list[KeyTemplate]] = {"keys": [], "match": []}
        for field_ in ("keys", "match"):
            raw = d.get(field_)
            sources = [raw] if isinstance(raw, str) else list(raw or [])
            for i, source in enumerate(sources):
                where = (field_,) if isinstance(raw, str) else (field_, i)
                try:
                    template = parse_template(source, glob=(field_ == "match"))
                except ValueError as exc:
                    self.error(entry, where, f"bad template {source!r}: {exc}")
                    ok = False
                    continue
                templates[field_].append(template)
                specs = {p: parameters.get(p) or Param(p) for p in template.params}
                users.append((f"{field_} {source!r}", where, specs))
                if _reaches_reserved(template, specs, d.get("hash_tag")):
                    self.error(entry, where, f"{field_} template {source!r} can reach keys under {RESERVED_PREFIX!r}, "
                                             "which is reserved for the toolkit; start it with literal text such as 'app:'")
        hash_tag = d.get("hash_tag")
        if not ok:
            return None
        names = {frozenset(p) for _, _, p in users}
        if len(names) > 1:
            listing = "; ".join(f"{what} uses ({', '.join(p) or 'none'})" for what, _, p in users)
            self.error(entry, users[-1][1], f"templates disagree on parameters: {listing}; every namespace and template "
                                            "of a rule must take the same parameters")
            return None
        params = tuple(users[0][2]) if users else ()
        for name in params:
            kinds = {(p[name].type, p[name].pattern) for _, _, p in users}
            if len(kinds) > 1:
                listing = "; ".join(f"{what} takes {_param_kind(p[name])}" for what, _, p in users)
                self.error(entry, (), f"templates disagree on the type of parameter {name!r}: {listing}", key=True)
                return None
        if hash_tag is not None and hash_tag not in params:
            self.error(entry, ("hash_tag",), f"hash_tag {hash_tag!r} is not a parameter of this rule")
        index = d.get("index")
        indexed: tuple[str, ...] = ()
        if index is not None:
            indexed = self.indexed_namespaces(entry, index, params, templates["match"], hash_tag, namespaces)
        return InvalidationRule(entry.name, tuple(d.get("namespaces", [])), tuple(templates["keys"]),
                                tuple(templates["match"]), params, hash_tag, d.get("description", ""), index, indexed)

    def indexed_namespaces(self, entry: _Entry, index: str, params: tuple[str, ...], match: list[KeyTemplate],
                           hash_tag: str | None, namespaces: dict[str, Namespace]) -> tuple[str, ...]:
        """The namespaces an indexed rule covers: those whose every key its ``match`` globs can match."""
        if index not in params:
            self.error(entry, ("index",), f"index {index!r} is not a parameter of this rule ({', '.join(params) or 'none'})")
            return ()
        if not match:
            self.error(entry, ("index",), "an index replaces the SCAN of 'match' templates: this rule has none")
            return ()
        covered = tuple(sorted(ns.name for ns in namespaces.values() if any(_glob_covers(t, ns, hash_tag) for t in match)))
        if not covered:
            self.error(entry, ("index",), "the rule's match templates cover no namespace: nothing would be indexed")
        for name in covered:
            if namespaces[name].hash_tag != hash_tag:
                self.error(entry, ("index",), f"namespace {name!r} uses hash_tag {namespaces[name].hash_tag!r} but the rule "
                                              f"{hash_tag!r}: an entity's keys and its index must share one cluster slot")
        return covered

    # -- targets -------------------------------------------------------------------------------

    def access_policy_assignments(self, entry: _Entry, provider: str, items: list[dict[str, Any]]) -> None:
        """Entra ID access policy assignments: Azure Managed Redis only, the 'default' policy, unique object ids and names."""
        sub = ("instance", "access_policy_assignments")
        if provider == "azure-cache-for-redis":
            self.error(entry, sub, "access_policy_assignments applies to azure-managed-redis targets only: Azure Cache for "
                                   "Redis has other access policies (Data Owner, Data Contributor, Data Reader), which the "
                                   "toolkit does not manage", key=True)
            return
        if provider != "azure-managed-redis":
            return  # a plain redis target: refused with the other Azure settings
        object_ids: dict[str, int] = {}
        names: dict[str, int] = {}
        for i, item in enumerate(items):
            policy = item.get("access_policy", "default")
            if policy not in ACCESS_POLICIES:
                self.error(entry, sub + (i, "access_policy"), f"access policy {policy!r} does not exist: Azure Managed "
                           "Redis has only 'default' for now (its API: 'Only \"default\" policy is supported for now'); "
                           "write default or leave access_policy out")
            object_id = item["object_id"]
            key = object_id.lower() if ENTRA_OBJECT_ID.fullmatch(object_id) else object_id
            if key in object_ids:
                self.error(entry, sub + (i, "object_id"), f"object id {object_id!r} is already assigned by "
                           f"{self.item(entry, sub, object_ids[key])}: one assignment per principal")
                continue
            object_ids[key] = i
            name = item.get("name") or AccessPolicyAssignment(object_id).name
            if name is None:
                continue  # derived from a ${VAR} reference once resolved
            if name.lower() in names:
                where, how = ((i, "name"), "") if "name" in item else ((i, "object_id"), " (derived from this object id)")
                self.error(entry, sub + where, f"assignment name {name!r}{how} is already used by "
                           f"{self.item(entry, sub, names[name.lower()])}; names are unique within a database")
                continue
            names[name.lower()] = i

    @staticmethod
    def item(entry: _Entry, sub: tuple, index: int) -> str:
        """``access_policy_assignments[0] (line 9)``: a list item of the entry, for messages."""
        return f"{sub[-1]}[{index}] (line {entry.doc.position(entry.path + sub + (index,))[0]})"

    def instance_rules(self, entry: _Entry, inst: dict) -> None:
        """Rules of the Azure API (2025-07-01 redisenterprise.json) that the schema cannot say with a reason."""
        if inst.get("minimum_tls_version") in ("1.0", "1.1"):
            self.error(entry, ("instance", "minimum_tls_version"),
                       f"TLS {inst['minimum_tls_version']} is obsolete: the Azure API (2025-07-01) says \"TLS 1.0 and TLS 1.1 "
                       f"are now completely obsolete -- you cannot use them\"; declare \"1.2\"")
        sku = inst.get("sku")
        if "capacity" in inst and sku and sku.split("_", 1)[0] not in ("Enterprise", "EnterpriseFlash"):
            self.error(entry, ("instance", "capacity"),
                       f"capacity is only used with Enterprise and EnterpriseFlash SKUs (the Azure API), not {sku}: "
                       f"remove it, the SKU name alone sets the size", key=True)

    def target(self, entry: _Entry) -> Target | None:
        d = entry.data
        provider = d["provider"]
        default_port, default_tls = _PROVIDER_DEFAULTS[provider]
        if provider == "redis":
            if not d.get("url") and not d.get("host"):
                self.error(entry, (), "a redis target needs 'url' or 'host'", key=True)
            if "azure" in d:
                self.error(entry, ("azure",), "'azure' applies to azure-managed-redis and azure-cache-for-redis targets only", key=True)
            for field_ in sorted(set(d.get("instance") or {}) - _PLAIN_REDIS_INSTANCE_FIELDS):
                self.error(entry, ("instance", field_), f"{field_} is an Azure setting; a plain redis target manages only "
                                                        f"{', '.join(sorted(_PLAIN_REDIS_INSTANCE_FIELDS))}", key=True)
        elif "url" in d:
            self.error(entry, ("url",), f"a {provider} target takes host and port, not url", key=True)
        self.instance_rules(entry, d.get("instance") or {})
        if "access_policy_assignments" in (d.get("instance") or {}):
            self.access_policy_assignments(entry, provider, d["instance"]["access_policy_assignments"])
        url = d.get("url")
        if url is not None and not url.startswith("${") and not re.match(r"^rediss?://", url):
            self.error(entry, ("url",), "url must start with redis:// or rediss://")
        tls_raw = d.get("tls", default_tls or bool(url and url.startswith("rediss://")))
        tls_conf = tls_raw if isinstance(tls_raw, dict) else {}
        auth_raw = d.get("auth", "none")
        if auth_raw == "none":
            auth = Auth()
        else:
            auth = Auth(type=auth_raw["type"], env=auth_raw.get("env"), username=auth_raw.get("username"),
                        identity=auth_raw.get("identity", "default"), client_id=auth_raw.get("client_id"),
                        tenant_id=auth_raw.get("tenant_id"))
        if auth.type == "entra-id" and not (tls_raw is not False):
            self.error(entry, ("auth",), "Microsoft Entra ID authentication requires TLS: remove 'tls: false'")
        c = d.get("client") or {}
        for field_ in ("socket_timeout", "connect_timeout"):
            self.above_zero(entry, c, ("client",), field_, "redis-py would make the socket non-blocking and fail every call")
        self.above_zero(entry, c, ("client",), "pool_timeout", "a caller could never wait for a free connection")
        default = ClientOptions()  # one place for the defaults: the model's

        def ms(name: str, fallback: int) -> int:
            return parse_duration(c[name]) if name in c else fallback

        client = ClientOptions(
            socket_timeout_ms=ms("socket_timeout", default.socket_timeout_ms),
            connect_timeout_ms=ms("connect_timeout", default.connect_timeout_ms),
            max_connections=c.get("max_connections"), pool_timeout_ms=ms("pool_timeout", default.pool_timeout_ms),
            retries=c.get("retries", default.retries),
            health_check_interval_ms=ms("health_check_interval", default.health_check_interval_ms),
            breaker_threshold=c.get("breaker_threshold", default.breaker_threshold),
            breaker_cooldown_ms=ms("breaker_cooldown", default.breaker_cooldown_ms),
        )
        a = d.get("azure")
        azure = AzureRef(a["subscription"], a["resource_group"], a["cluster"], a.get("database", "default"),
                         a.get("location")) if a else None
        return Target(
            name=entry.name, provider=provider, url=url, host=d.get("host"), port=d.get("port", default_port),
            db=d.get("db", 0), tls=tls_raw is not False, ca_file=tls_conf.get("ca_file"),
            check_hostname=tls_conf.get("check_hostname", True), auth=auth, client=client, azure=azure,
            instance=_instance(d.get("instance") or {}), description=d.get("description", ""),
        )


def _locations(docs: list[tuple[YamlDocument, set[tuple]]]) -> MappingProxyType[tuple, tuple[int, int, int]]:
    """``PolicySet.locations``: every written path -> (file index, line, col) of its key, or of its value when it has
    no key (a list item); a section written in several files points at the first."""
    index: dict[tuple, tuple[int, int, int]] = {}
    for i, (doc, _) in enumerate(docs):
        for path, (line, col) in doc.values.items():
            if path:
                index.setdefault(path, (i, *doc.keys.get(path, (line, col))))
    return MappingProxyType(index)


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _reaches_reserved(template: KeyTemplate, params: Mapping[str, Param], hash_tag: str | None) -> bool:
    """Can the template (a key or a glob) produce a key under ``__toolkit__:``?

    Parameters never contain ':', so only the first segment matters: it must be able to
    render as exactly ``__toolkit__`` or, in a glob, as a prefix of it followed by a wildcard.
    Conservative for parameters: their type decides, a ``pattern`` is not consulted.
    """
    reserved = RESERVED_PREFIX.rstrip(":")
    regex = []
    for part in template.segments()[0]:
        if isinstance(part, tuple):
            body = f"(?:{params[part[0]].regex()})"
            regex.append(r"\{" + body + r"\}" if part[0] == hash_tag else body)
            continue
        wildcard = re.search(r"[*?\[]", part) if template.glob else None
        if wildcard is None:
            regex.append(re.escape(part))
            continue
        regex.append(re.escape(part[:wildcard.start()]))
        prefix = re.compile("".join(regex))
        return any(prefix.fullmatch(reserved[:i]) for i in range(len(reserved) + 1))
    return re.fullmatch("".join(regex), reserved) is not None


def _param_kind(param: Param) -> str:
    return param.type + (f" matching {param.pattern!r}" if param.pattern else "")


def _bounds(tier: Tier) -> str:
    high = format_duration(tier.max_ms) if tier.max_ms is not None else "no upper bound"
    return f"{format_duration(tier.min_ms)} to {high}"


def _instance(d: dict) -> InstancePolicy:
    persistence = None
    if "persistence" in d:
        raw = d["persistence"]
        persistence = Persistence() if raw == "disabled" else Persistence(aof=raw.get("aof"), rdb=raw.get("rdb"))
    modules = None
    if "modules" in d:
        modules = tuple(sorted((Module(m) if isinstance(m, str) else Module(m["name"], m.get("args", "")) for m in d["modules"]),
                               key=lambda m: m.name))
    assignments = None
    if "access_policy_assignments" in d:
        assignments = tuple(AccessPolicyAssignment(  # policy order: index i is access_policy_assignments[i]
            _guid_lower(a["object_id"]), a.get("access_policy", "default"), a.get("name"), a.get("description", ""),
            _guid_lower(a["client_id"]) if "client_id" in a else None) for a in d["access_policy_assignments"])
    return InstancePolicy(
        sku=d.get("sku"), capacity=d.get("capacity"), high_availability=d.get("high_availability"),
        minimum_tls_version=d.get("minimum_tls_version"), public_network_access=d.get("public_network_access"),
        client_protocol=d.get("client_protocol"), clustering_policy=d.get("clustering_policy"),
        eviction_policy=d.get("eviction_policy"), persistence=persistence, modules=modules,
        access_keys_authentication=d.get("access_keys_authentication"), geo_replication_group=d.get("geo_replication_group"),
        access_policy_assignments=assignments,
    )


def _guid_lower(value: str) -> str:
    """A literal GUID lowercased (Entra ids ignore case); a ``${VAR}`` reference as written."""
    return value.lower() if ENTRA_OBJECT_ID.fullmatch(value) else value


def _segment_shape(segment: list) -> tuple[str, str, bool]:
    """(literal prefix, literal suffix, has a parameter) of one template segment."""
    if all(isinstance(p, str) for p in segment):
        text = "".join(segment)
        return text, text, False
    prefix = segment[0] if isinstance(segment[0], str) else ""
    suffix = segment[-1] if isinstance(segment[-1], str) else ""
    return prefix, suffix, True


def _may_overlap(a: Namespace, b: Namespace) -> bool:
    """Conservative: False only when some segment provably differs (parameters never contain ':')."""
    for seg_a, seg_b in zip(a.template.segments(), b.template.segments()):
        pa, sa, va = _segment_shape(seg_a)
        pb, sb, vb = _segment_shape(seg_b)
        tagged_a = any(isinstance(p, tuple) and p[0] == a.hash_tag for p in seg_a)
        tagged_b = any(isinstance(p, tuple) and p[0] == b.hash_tag for p in seg_b)
        if not va and not vb:
            if pa != pb:
                return False
            continue
        if not va or not vb:
            literal, seg, ns, tagged = (pa, seg_b, b, tagged_b) if not va else (pb, seg_a, a, tagged_a)
            if not _segment_accepts(seg, ns, literal):
                return False
            continue
        if tagged_a != tagged_b:
            return False
        if not (pa.startswith(pb) or pb.startswith(pa)) or not (sa.endswith(sb) or sb.endswith(sa)):
            return False
        if not _chars_possible(seg_a, seg_b, b) or not _chars_possible(seg_b, seg_a, a):
            return False
    return True


def _chars_possible(segment: list, other: list, other_ns: Namespace) -> bool:
    """Can ``other`` produce every literal character of ``segment``? If not, the two never render alike.

    ``order:{id}.json`` and ``order:{id}`` with an int ``id`` differ: no int value holds a '.'.
    """
    literals = "".join(p for p in other if isinstance(p, str))
    params = [other_ns.params[p[0]] for p in other if isinstance(p, tuple)]
    for ch in set("".join(p for p in segment if isinstance(p, str))):
        if ch not in literals and not any(_holds(param, ch) for param in params):
            return False
    return True


def _holds(param: Param, ch: str) -> bool:
    """Can some value of ``param`` contain the character ``ch``?"""
    if param.type == "uuid":
        return ch in "0123456789abcdef-"
    return re.fullmatch(param.regex(), ch) is not None


def _segment_accepts(segment: list, ns: Namespace, literal: str) -> bool:
    parts = []
    for part in segment:
        if isinstance(part, tuple):
            body = f"(?:{ns.params[part[0]].regex()})"
            parts.append(r"\{" + body + r"\}" if part[0] == ns.hash_tag else body)
        else:
            parts.append(re.escape(part))
    return re.fullmatch("".join(parts), literal) is not None


def _glob_covers(glob: KeyTemplate, ns: Namespace, hash_tag: str | None) -> bool:
    """Does the glob (its parameters bound to the namespace's own) match every key of the namespace?

    Both templates are rendered with each parameter as an opaque marker; the glob's wildcards
    must then match the namespace's rendering, markers included.
    """
    marker = {p: f"\x01{p}\x02" for p in set(ns.template.params) | set(glob.params)}
    if not set(glob.params) <= set(ns.template.params):
        return False
    rendered = ns.template.render(marker, ns.hash_tag)
    regex = []
    for part in glob.parts:
        if isinstance(part, tuple):
            value = marker[part[0]]
            regex.append(re.escape("{" + value + "}" if part[0] == hash_tag else value))
            continue
        i = 0
        while i < len(part):
            ch = part[i]
            if ch == "*":
                regex.append(".*")
            elif ch == "?":
                regex.append(".")
            elif ch == "\\" and i + 1 < len(part):
                i += 1
                regex.append(re.escape(part[i]))
            elif ch == "[":
                end = part.find("]", i + 1)
                regex.append(part[i:end + 1] if end > i else re.escape(ch))
                i = end if end > i else i
            else:
                regex.append(re.escape(ch))
            i += 1
    return re.fullmatch("".join(regex), rendered, re.DOTALL) is not None


def _canonical(tiers: dict[str, Tier], namespaces: dict[str, Namespace], rules: dict[str, InvalidationRule],
               parameters: dict[str, Param]) -> dict[str, Any]:
    """The keyspace policy as plain JSON data: what the digest covers and what apply publishes."""
    def param(p: Param) -> dict[str, Any]:
        return {"type": p.type, "pattern": p.pattern, "max_length": p.max_length}

    return {
        "version": 1,
        "tiers": {n: {"min_ms": t.min_ms, "max_ms": t.max_ms, "default_ms": t.default_ms} for n, t in sorted(tiers.items())},
        "namespaces": {
            n: {"key": ns.template.source, "type": ns.type, "tier": ns.tier, "ttl_ms": ns.ttl_ms,
                "tier_min_ms": ns.tier_min_ms, "tier_max_ms": ns.tier_max_ms, "jitter_ms": ns.max_jitter_ms,
                "codec": ns.codec, "max_length": ns.max_length, "hash_tag": ns.hash_tag, "on_error": ns.on_error,
                "params": {p: param(spec) for p, spec in ns.params.items()}, "owner": ns.owner}
            for n, ns in sorted(namespaces.items())
        },
        "invalidation": {
            n: {"namespaces": list(r.namespaces), "keys": [t.source for t in r.keys], "match": [t.source for t in r.match],
                "params": list(r.params), "hash_tag": r.hash_tag, "index": r.index}
            for n, r in sorted(rules.items())
        },
        "parameters": {n: param(p) for n, p in sorted(parameters.items())},
    }
