"""Aggregation: classify each probed key and count what breaks the policy, page by page.

Memory stays bounded whatever the keyspace size: counters, a few example keys per kind,
a fixed-size uniform sample per namespace (reservoir sampling) for MEMORY USAGE, and at
most ``PREFIX_GROUPS`` prefixes for keys of no namespace.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from toolkit.audit._model import Leftover, MemoryEstimate, NamespaceReport, PrefixGroup
from toolkit.audit._scan import TYPE_CODES, TYPE_NAMES, Page
from toolkit.policy.classify import Classifier
from toolkit.policy.model import Namespace, PolicySet
from toolkit.policy.published import RESERVED_PREFIX, decode_document, namespaces_from_document

EXAMPLES = 5
LEFT_BEHIND = ("namespace-removed", "key-changed")
"""The diff codes after which a namespace's old keys no longer match any current namespace."""
PREFIX_GROUPS = 10_000
OTHER_PREFIXES = "*"
_RESERVED = RESERVED_PREFIX.encode()
_REDIS_TYPE = {"string": "string", "counter": "string", "hash": "hash", "list": "list"}


def display(key: bytes) -> str:
    """Key text for reports: binary keys stay readable and unambiguous."""
    return key.decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Candidate:
    """A key ``--fix-ttl`` may give a TTL: ``before_ms`` None when it has none, else its TTL above the tier max."""

    namespace: Namespace
    key: bytes
    before_ms: int | None


class _NamespaceTally:
    __slots__ = ("ns", "code", "expires", "max", "min", "keys", "missing_ttl", "ttl_above_max", "ttl_on_persistent",
                 "wrong_type", "ttl_below_min", "found_types", "examples", "samples")

    def __init__(self, ns: Namespace):
        self.ns = ns
        self.code = TYPE_CODES[_REDIS_TYPE[ns.type]]
        self.expires = ns.ttl_ms is not None
        self.max = ns.tier_max_ms
        self.min = ns.tier_min_ms or 0
        self.keys = self.missing_ttl = self.ttl_above_max = self.ttl_on_persistent = 0
        self.wrong_type = self.ttl_below_min = 0
        self.found_types: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}
        self.samples: list[bytes] = []

    def example(self, kind: str, key: bytes) -> None:
        """Keep the first few keys of a kind (the report sorts them, SCAN order being arbitrary)."""
        found = self.examples.setdefault(kind, [])
        if len(found) < EXAMPLES:
            found.append(display(key))

    def report(self, memory: MemoryEstimate | None) -> NamespaceReport:
        ns = self.ns
        return NamespaceReport(
            name=ns.name, type=ns.type, tier=ns.tier, ttl_ms=ns.ttl_ms, tier_min_ms=ns.tier_min_ms,
            tier_max_ms=ns.tier_max_ms, keys=self.keys, missing_ttl=self.missing_ttl,
            ttl_above_max=self.ttl_above_max, ttl_on_persistent=self.ttl_on_persistent, wrong_type=self.wrong_type,
            ttl_below_min=self.ttl_below_min, found_types=dict(sorted(self.found_types.items())),
            examples={kind: tuple(sorted(keys)) for kind, keys in sorted(self.examples.items())}, memory=memory,
        )


@dataclass(frozen=True)
class History:
    """A policy published before the current files: its namespaces that the current policy no longer has as they were,
    and the ``toolkit diff`` code of each change."""

    digest: str
    applied_at: str
    classifier: Classifier
    codes: Mapping[str, str]


def history(policy: PolicySet, record: Mapping[str, str] | None) -> list[History]:
    """The published documents that differ from ``policy`` (the one on the instance, then the one it replaced),
    reduced to the namespaces a breaking change left behind."""
    from toolkit.policy.diff import compare

    found: list[History] = []
    if record is None:
        return found
    for prefix in ("", "previous_"):
        digest = record.get(f"{prefix}digest") or ""
        document = decode_document(record.get(f"{prefix}document"))
        if document is None or digest == policy.digest or any(h.digest == digest for h in found):
            continue
        codes: dict[str, str] = {}
        for f in compare(document, policy.document):
            kind, _, name = f.subject.partition(" ")
            if kind == "namespace" and f.code in LEFT_BEHIND:
                codes.setdefault(name, f.code)
        gone = [ns for ns in namespaces_from_document(document) if ns.name in codes]
        if gone:
            found.append(History(digest, record.get(f"{prefix}applied_at", ""), Classifier(gone), codes))
    return found


class Tally:
    """Counts per namespace and per unknown prefix; when ``fixing``, ``add`` returns the keys a TTL fix applies to."""

    def __init__(self, policy: PolicySet, sample_memory: int = 0, fixing: bool = False,
                 rng: random.Random | None = None, history: Sequence[History] = ()):
        self._classify: Callable = policy.classify
        self._history = history
        self._leftovers: dict[tuple[int, str], list] = {}
        self._fixing = fixing
        self._namespaces = {name: _NamespaceTally(ns) for name, ns in sorted(policy.namespaces.items())}
        self._sample_size = sample_memory
        self._random = (rng or random.Random()).random
        self.scanned = self.vanished = self.reserved = self.unknown_keys = 0
        self._prefixes: dict[bytes, list] = {}

    def add(self, page: Page) -> list[Candidate]:
        """Classify and count one page (the hot loop of the audit: keep it flat)."""
        classify, namespaces, candidates = self._classify, self._namespaces, []
        sample_size, rand, fixing = self._sample_size, self._random, self._fixing
        self.scanned += len(page.keys)
        for key, code, pttl in zip(page.keys, page.codes, page.pttls):
            if pttl == -2 or code == "-":
                self.vanished += 1
                continue
            hit = classify(key)
            if hit is None:
                self._unknown(key)
                continue
            t = namespaces[hit[0].name]
            t.keys += 1
            if sample_size:
                if len(t.samples) < sample_size:
                    t.samples.append(key)
                else:
                    slot = int(rand() * t.keys)
                    if slot < sample_size:
                        t.samples[slot] = key
            if code != t.code:
                t.wrong_type += 1
                t.found_types[TYPE_NAMES[code]] += 1
                t.example("wrong_type", key)
            elif pttl == -1:
                if t.expires:
                    t.missing_ttl += 1
                    t.example("missing_ttl", key)
                    if fixing:
                        candidates.append(Candidate(t.ns, key, None))
            elif not t.expires:
                t.ttl_on_persistent += 1
                t.example("ttl_on_persistent", key)
            elif t.max is not None and pttl > t.max:
                t.ttl_above_max += 1
                t.example("ttl_above_max", key)
                if fixing:
                    candidates.append(Candidate(t.ns, key, pttl))
            elif pttl < t.min:
                t.ttl_below_min += 1
                t.example("ttl_below_min", key)
        return candidates

    def _unknown(self, key: bytes) -> None:
        if key.startswith(_RESERVED):
            self.reserved += 1
            return
        for i, past in enumerate(self._history):
            hit = past.classifier.classify(key)
            if hit is not None:
                left = self._leftovers.setdefault((i, hit[0].name), [0, []])
                left[0] += 1
                if len(left[1]) < EXAMPLES:
                    left[1].append(display(key))
                return
        self.unknown_keys += 1
        prefix = key.split(b":", 1)[0]
        group = self._prefixes.get(prefix)
        if group is None:
            if len(self._prefixes) >= PREFIX_GROUPS:
                prefix = OTHER_PREFIXES.encode()
                group = self._prefixes.get(prefix)
            if group is None:
                group = self._prefixes[prefix] = [0, []]
        group[0] += 1
        if len(group[1]) < EXAMPLES:
            group[1].append(display(key))

    def samples(self) -> dict[str, list[bytes]]:
        """The sampled keys of each namespace, for MEMORY USAGE."""
        return {name: t.samples for name, t in self._namespaces.items() if t.samples}

    def namespace_reports(self, memory_of: Callable[[str, int], MemoryEstimate | None]) -> tuple[NamespaceReport, ...]:
        return tuple(t.report(memory_of(name, t.keys)) for name, t in self._namespaces.items())

    def leftovers(self) -> tuple[Leftover, ...]:
        found = []
        for (i, name), (count, examples) in sorted(self._leftovers.items()):
            past = self._history[i]
            found.append(Leftover(name, past.digest, past.applied_at, past.codes.get(name, "namespace-removed"), count,
                                  tuple(sorted(examples))))
        return tuple(found)

    def prefix_groups(self) -> tuple[PrefixGroup, ...]:
        groups: Iterable[tuple[bytes, list]] = sorted(self._prefixes.items(), key=lambda item: (-item[1][0], item[0]))
        return tuple(PrefixGroup(display(prefix), count, tuple(sorted(examples))) for prefix, (count, examples) in groups)
