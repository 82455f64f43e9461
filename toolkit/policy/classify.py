"""Key -> namespace classification with a compiled segment trie.

Parameters never contain ':', so a key splits at ':' into segments that line up with its
template's segments. The trie indexes literal segments in dicts; only segments holding a
parameter cost a regex match. Lookup cost depends on the key's length, not on how many
namespaces exist, which keeps ``toolkit audit`` fast with 1,000 namespaces.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.policy.model import Namespace
    from toolkit.policy.templates import Param


class _Node:
    __slots__ = ("literal", "patterns", "leaf")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.patterns: list[tuple[re.Pattern[str], tuple[str, ...], _Node]] = []
        self.leaf: Namespace | None = None


def _segment_regex(segment: list[str | tuple[str]], ns: Namespace) -> tuple[str, tuple[str, ...]]:
    parts, names = [], []
    for part in segment:
        if isinstance(part, tuple):
            name = part[0]
            spec = ns.params[name]
            body = f"({spec.regex()})"
            parts.append(r"\{" + body + r"\}" if name == ns.hash_tag else body)
            names.append(name)
        else:
            parts.append(re.escape(part))
    return "".join(parts), tuple(names)


class Classifier:
    """Maps live keys back to their namespace and parameters."""

    def __init__(self, namespaces: Iterable[Namespace]):
        self._roots: dict[int, _Node] = {}
        self._checked: dict[str, tuple[Param, ...]] = {}
        for ns in namespaces:
            self._add(ns)

    def _add(self, ns: Namespace) -> None:
        segments = ns.template.segments()
        node = self._roots.setdefault(len(segments), _Node())
        for segment in segments:
            literal = [p for p in segment if isinstance(p, str)]
            if len(literal) == len(segment):
                node = node.literal.setdefault("".join(literal), _Node())
                continue
            regex, names = _segment_regex(segment, ns)
            compiled = re.compile(regex)
            for existing, existing_names, child in node.patterns:
                if existing.pattern == regex and existing_names == names:
                    node = child
                    break
            else:
                child = _Node()
                node.patterns.append((compiled, names, child))
                node = child
        node.leaf = ns
        # A parameter's own pattern is not in the trie's regex: it is checked on the captured value.
        self._checked[ns.name] = tuple(p for p in ns.params.values() if p.pattern)

    def classify(self, key: str | bytes) -> tuple[Namespace, dict[str, str]] | None:
        if isinstance(key, bytes):
            try:
                key = key.decode("utf-8")
            except UnicodeDecodeError:
                return None
        segments = key.split(":")
        root = self._roots.get(len(segments))
        if root is None:
            return None
        # The first choice at every segment (its literal child, else the first matching pattern)
        # is the path _walk tries first: when it ends at a leaf, it is _walk's answer, found without
        # recursion. Only a dead end needs the backtracking walk.
        node = root
        params: dict[str, str] = {}
        for segment in segments:
            child = node.literal.get(segment)
            if child is None:
                for regex, names, pattern_child in node.patterns:
                    m = regex.fullmatch(segment)
                    if m is not None:
                        params.update(zip(names, m.groups()))
                        child = pattern_child
                        break
                else:
                    break
            node = child
        else:
            if node.leaf is not None:
                return self._with_patterns(node.leaf, params)
        found = self._walk(root, segments, 0, [])
        return None if found is None else self._with_patterns(found[0], dict(found[1]))

    def _with_patterns(self, ns: Namespace, params: dict[str, str]) -> tuple[Namespace, dict[str, str]] | None:
        """The parameters' own ``pattern``s are not in the trie: check them on the captured values."""
        for spec in self._checked[ns.name]:
            if spec._pattern(params[spec.name]) is None:  # type: ignore[attr-defined]
                return None
        return ns, params

    def _walk(self, node: _Node, segments: list[str], i: int,
              captured: list[tuple[str, str]]) -> tuple[Namespace, list[tuple[str, str]]] | None:
        if i == len(segments):
            return (node.leaf, captured) if node.leaf is not None else None
        segment = segments[i]
        child = node.literal.get(segment)
        if child is not None:
            found = self._walk(child, segments, i + 1, captured)
            if found is not None:
                return found
        for regex, names, child in node.patterns:
            m = regex.fullmatch(segment)
            if m is None:
                continue
            found = self._walk(child, segments, i + 1, captured + list(zip(names, m.groups())))
            if found is not None:
                return found
        return None
