"""Read one policy file as plain YAML, keeping where every value came from.

PyYAML alone is not enough for policy files: it keeps the last of two duplicate keys
silently, constructs arbitrary Python objects for ``!!python/...`` tags with the full
loader, and expands alias bombs until memory runs out. This reader composes the node
graph from the C parser's events, noting every tag written in the file, measures what the
graph would expand to (aliases share nodes, so that costs at most MAX_NODES steps), then
builds plain dicts, lists and scalars itself, refusing any tag: a hostile file fails in
milliseconds.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolkit.errors import PolicyIssue

MAX_FILE_BYTES = 1024 * 1024
"""Larger files are refused before parsing: a policy file is a few kilobytes."""
MAX_NODES = 200_000
"""Nodes a file may expand to once aliases are resolved (an alias bomb expands to billions)."""
MAX_DEPTH = 64
"""Nesting depth: policy documents are at most five or six levels deep."""

_Y = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_Y + "str", _Y + "int", _Y + "float", _Y + "bool", _Y + "null", _Y + "timestamp"}
_TEXT_TAGS = {_Y + "str", _Y + "timestamp", _Y + "merge", _Y + "value"}
"""Implicit tags whose value is read as the text written: dates, and a lone ``<<`` or ``=`` used as a value."""
_scalars = yaml.constructor.SafeConstructor()
_LARGEST_FLOAT = int(sys.float_info.max)

if getattr(yaml, "__with_libyaml__", False):
    from yaml.cyaml import CParser as _Events
else:  # pragma: no cover - PyYAML without libyaml
    class _Events(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str):
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)

Path_ = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """A parsed file: its data and the position (1-based line, column) of every value and key."""

    file: str
    data: dict[str, Any]
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Where ``path`` is written; falls back to the closest written ancestor."""
        table = self.keys if key else self.values
        probe = tuple(path)
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return (1, 1)

    def issue(self, path: Path_, message: str, *, key: bool = False) -> PolicyIssue:
        line, col = self.position(path, key=key)
        return PolicyIssue(self.file, line, col, dotted(path), message)


def dotted(path: Path_) -> str:
    """``("namespaces", "user", "ttl")`` -> ``namespaces.user.ttl``; list indices as ``[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str, path: Path_ = ()):
        self.mark = mark
        self.message = message
        self.path = path


def _shown_tag(tag: str) -> str:
    return "!!" + tag[len(_Y):] if tag.startswith(_Y) else tag


class _Composer(yaml.composer.Composer, _Events, yaml.resolver.Resolver):
    """libyaml's events composed by PyYAML's composer, which (unlike libyaml's) can tell a tag written in the
    file from one YAML inferred: ``!!float 5`` and ``5.0`` make the same node, and only one is refused.

    It also stops at MAX_DEPTH, before Python's recursion limit, with the path of the node.
    """

    def __init__(self, text: str):
        _Events.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.written_tags: dict[int, str] = {}
        """id(node) -> the tag written on it, for every node that has one."""
        self.trail: list[str | int] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        part = index if isinstance(index, int) or index is None else (str(index.value) if isinstance(index, yaml.ScalarNode) else "?")
        if part is not None:
            self.trail.append(part)
        if len(self.trail) > MAX_DEPTH:
            raise _Refused(event.start_mark, f"nesting deeper than {MAX_DEPTH} levels; refused", tuple(self.trail))
        node = super().compose_node(parent, index)
        tag = getattr(event, "tag", None)  # an alias event has none: its node was noted where it is anchored
        if tag is not None:
            self.written_tags.setdefault(id(node), tag)
        if part is not None:
            self.trail.pop()
        return node


def _compose(text: str) -> tuple[list[yaml.Node], dict[int, str]]:
    """Every document's root node, and the tags written in the file."""
    composer = _Composer(text)
    try:
        nodes = []
        while composer.check_node():
            nodes.append(composer.get_node())
        return nodes, composer.written_tags
    finally:
        composer.dispose()


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _number(node: yaml.ScalarNode, path: Path_) -> Any:
    """A plain bool, int or float scalar; a float that is a whole number is read as that integer.

    ``ttl: 90.0`` and ``port: 6379.0`` then mean what they say, and the digest does not depend on
    how a number was written. YAML 1.1 spellings that Python cannot read (``0x_``) are refused here,
    as are integers no float can hold: no JSON tool reads them, and Python cannot even print one
    of 5000 digits (``0x`` and 5000 ``f`` make one).
    """
    shown = repr(node.value) if len(node.value) <= 40 else f"{node.value[:20]!r}... ({len(node.value)} characters)"
    try:
        value = _scalars.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, KeyError, OverflowError):
        raise _Refused(node.start_mark, f"cannot read {shown} as a number; quote it if it is text", path) from None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, int) and abs(value) > _LARGEST_FLOAT:
        raise _Refused(node.start_mark, f"{shown} is too large a number (above 1.8e308, the largest a float holds)", path)
    return value


def _children(node: yaml.Node) -> Iterator[tuple[str | int, yaml.Node]]:
    """A node's children with the path part leading to each (merge keys count as children too)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield (str(key.value) if isinstance(key, yaml.ScalarNode) else "?"), value
    elif isinstance(node, yaml.SequenceNode):
        yield from enumerate(node.value)


def _check_size(root: yaml.MappingNode) -> None:
    """Refuse a graph that nests too deep or expands past MAX_NODES, before building anything.

    Aliases share node objects, so each distinct node's expanded size is computed once and the
    walk stops as soon as a node's running total passes the limit: at most MAX_NODES steps, so a
    megabyte of aliases is refused in milliseconds instead of being expanded. The node reported
    is the smallest one found over the limit.
    """
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    open_: set[int] = set()
    trail: list[str | int] = []

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = sizes.get(id(node))
        if known is None:
            if id(node) in open_:
                raise _Refused(node.start_mark, "an alias here refers to a node that contains it (a recursive structure); refused",
                               tuple(trail))
            if depth > MAX_DEPTH:
                raise _Refused(node.start_mark, f"nesting deeper than {MAX_DEPTH} levels; refused", tuple(trail))
            open_.add(id(node))
            count, height = 1, 0
            for part, child in _children(node):
                trail.append(part)
                child_count, child_height = measure(child, depth + 1)
                trail.pop()
                count, height = count + child_count, max(height, child_height + 1)
                if count > MAX_NODES:
                    raise _Refused(node.start_mark, f"expands to more than {MAX_NODES} values once aliases are resolved "
                                         "(an alias bomb?); refused", tuple(trail))
            open_.discard(id(node))
            known = sizes[id(node)] = (count, height)
        if depth + known[1] > MAX_DEPTH:
            raise _Refused(node.start_mark, f"nesting deeper than {MAX_DEPTH} levels once aliases are resolved; refused",
                           tuple(trail))
        return known

    measure(root, 0)


class _Builder:
    """Turns a composed node graph into plain data, recording positions and refusing what is not plain YAML.

    Runs after ``_check_size``, so its recursion is bounded.
    """

    def __init__(self, doc: YamlDocument, written_tags: dict[int, str]):
        self.doc = doc
        self.written_tags = written_tags
        self.issues: list[PolicyIssue] = []
        self.built: set[int] = set()
        """Mappings already built once: an anchor merged or aliased again reports its duplicates only once."""

    def _plain(self, node: yaml.Node, path: Path_) -> None:
        """Refuse any tag written in the file, the standard ones too (``!!float 5``, ``!!str``, ``!!binary``, ``!env``)."""
        tag = self.written_tags.get(id(node))
        if tag is not None:
            raise _Refused(node.start_mark, f"tag {_shown_tag(tag)} is not allowed: policy files are plain YAML (no tags)", path)

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.values.setdefault(path, _pos(node))
        self._plain(node, path)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        if node.tag in _TEXT_TAGS:
            return node.value  # dates stay text: no policy field is a date
        if node.tag == _Y + "null":
            return None
        return _number(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        self._plain(node, path)
        first_time = id(node) not in self.built
        self.built.add(id(node))
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _Y + "merge":
                merged.update(self._merge_sources(value_node, path))
                continue
            self._plain(key_node, path + ((str(key_node.value),) if isinstance(key_node, yaml.ScalarNode) else ()))
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS | _TEXT_TAGS:
                raise _Refused(key_node.start_mark, "mapping keys must be plain scalars", path)
            key = str(key_node.value)
            if key in result:
                line, col = self.doc.keys[path + (key,)]
                if first_time:
                    self.issues.append(
                        PolicyIssue(self.doc.file, *_pos(key_node), dotted(path + (key,)),
                                    f"duplicate key {key!r} (first defined at line {line}); YAML would silently keep the last one")
                    )
                continue
            self.doc.keys[path + (key,)] = _pos(key_node)
            result[key] = self.build(value_node, path + (key,))
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def _merge_sources(self, node: yaml.Node, path: Path_) -> dict[str, Any]:
        self._plain(node, path)
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise _Refused(source.start_mark, "'<<' merges only mappings", path)
            for key, value in self._mapping(source, path).items():
                merged.setdefault(key, value)
        return merged


def read_policy_file(path: Path) -> tuple[YamlDocument | None, list[PolicyIssue]]:
    """Parse ``path``; return the document (or None) and every issue found while reading it."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return None, [PolicyIssue(name, 1, 1, "", f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for a policy file; refused")]
        raw = path.read_bytes()
    except OSError as exc:
        return None, [PolicyIssue(name, 1, 1, "", f"cannot read file: {exc.strerror or exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [PolicyIssue(name, line, col, "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); policy files must be UTF-8")]
    doc = YamlDocument(name, {})
    try:
        nodes, written_tags = _compose(text)
    except _Refused as exc:
        return None, [_refusal(name, exc)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = exc.problem or exc.context or "cannot parse"
        if exc.problem and exc.context and exc.context_mark:  # e.g. "... while scanning a quoted scalar" (where it began)
            reason += f" {exc.context} started at line {exc.context_mark.line + 1} column {exc.context_mark.column + 1}"
        return None, [PolicyIssue(name, line, col, "", f"invalid YAML: {reason}")]
    except yaml.YAMLError as exc:
        return None, [PolicyIssue(name, 1, 1, "", f"invalid YAML: {exc}")]
    if not nodes or all(n is None for n in nodes):
        return None, [PolicyIssue(name, 1, 1, "", "file is empty: a policy file is a mapping with tiers, namespaces, invalidation or targets")]
    if len(nodes) > 1:
        return None, [PolicyIssue(name, *_pos(nodes[1]), "", "more than one YAML document in a file; put each in its own file")]
    root = nodes[0]
    if not isinstance(root, yaml.MappingNode):
        got = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        return None, [PolicyIssue(name, *_pos(root), "", f"top level must be a mapping (tiers, namespaces, invalidation, targets), got {got}")]
    builder = _Builder(doc, written_tags)
    try:
        _check_size(root)
        doc.data = builder.build(root, ())
    except _Refused as exc:
        return None, builder.issues + [_refusal(name, exc)]
    return doc, builder.issues


def _refusal(name: str, exc: _Refused) -> PolicyIssue:
    line, col = (exc.mark.line + 1, exc.mark.column + 1) if exc.mark is not None else (1, 1)
    return PolicyIssue(name, line, col, dotted(exc.path), exc.message)
