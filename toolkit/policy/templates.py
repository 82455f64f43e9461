"""Key templates: parsing ``user:{user_id}:profile``, building keys safely, and globs for SCAN.

A parameter value can never contain ``:``, glob characters, braces, whitespace, control or
invisible (zero-width, bidi) characters, whatever its declared type. That single rule is what makes keys safe by
construction: a value cannot reach into another namespace (``:``), widen a SCAN match
(``*``), or move a key to another cluster slot (``{``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

from toolkit.errors import PolicyViolation, brief

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_CONTROL = r"\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
"""C0 and C1 controls and the invisible format characters (zero-width, bidi overrides) that make two keys look alike."""
_FORBIDDEN = re.compile(rf"[:*?\[\]\\{{}}\s{_CONTROL}]")
_BAD_KEY_LITERAL = re.compile(rf"[*?\[\]\\\s{_CONTROL}]")
_BAD_GLOB_LITERAL = re.compile(rf"[\s{_CONTROL}]")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_TYPE_CHARS = {"str": rf"[^:*?\[\]\\{{}}\s{_CONTROL}]", "int": r"[0-9]", "slug": r"[a-z0-9_-]"}
_UUID_REGEX = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass(frozen=True)
class Param:
    """What one key parameter accepts."""

    name: str
    type: str = "str"
    pattern: str | None = None
    max_length: int = 128

    def __post_init__(self) -> None:
        # One compiled regex answers "is this a valid value" in a single match on the hot path.
        object.__setattr__(self, "_valid", re.compile(self.regex()).fullmatch)
        object.__setattr__(self, "_pattern", re.compile(self.pattern).fullmatch if self.pattern else None)
        object.__setattr__(self, "_digits_ok", self.type != "uuid")

    def check(self, value: object) -> str:
        """Return the value as key text, or raise PolicyViolation saying why it cannot be part of a key."""
        if type(value) is int and value >= 0 and self._digits_ok:  # type: ignore[attr-defined]
            text = str(value)  # digits: valid for str, int and slug types; only the length and a pattern remain
            if len(text) <= self.max_length and (self._pattern is None or self._pattern(text) is not None):  # type: ignore[attr-defined]
                return text
            raise PolicyViolation(self._explain(text))
        if type(value) is str:
            text = value
        elif type(value) is int or (isinstance(value, (str, int)) and not isinstance(value, bool)) or isinstance(value, UUID):
            text = str(value)
        else:
            raise PolicyViolation(f"parameter {self.name!r}: expected text or an integer, got {type(value).__name__}")
        if self._valid(text) is not None and (self._pattern is None or self._pattern(text) is not None):  # type: ignore[attr-defined]
            return text
        raise PolicyViolation(self._explain(text))

    def _explain(self, text: str) -> str:
        if not text:
            return f"parameter {self.name!r}: empty value"
        if len(text) > self.max_length:
            return f"parameter {self.name!r}: {len(text)} characters, over its max_length {self.max_length}"
        bad = _FORBIDDEN.search(text)
        if bad:
            return (f"parameter {self.name!r}: value {brief(text)} contains {bad.group()!r}; key parameters may not contain "
                    "':', glob characters (* ? [ ] \\), braces, whitespace, control or invisible characters")
        if self._pattern is not None and self._valid(text) is not None:  # type: ignore[attr-defined]
            return f"parameter {self.name!r}: value {brief(text)} does not match pattern {self.pattern!r}"
        if self.type == "int" and text.isascii() and text.isdigit():
            return f"parameter {self.name!r}: value {text!r} is not canonical: write {str(int(text))!r} (no leading zeros)"
        return f"parameter {self.name!r}: value {brief(text)} is not of type {self.type}"

    def regex(self) -> str:
        """A regular expression (no groups) for this type's values, used by classify.

        A ``pattern`` is not folded in: classify checks it on the captured value.
        """
        if self.type == "uuid":
            return _UUID_REGEX
        if self.type == "int":  # canonical digits only: 7 and "7" are one entity, "007" would be a second key for it
            return f"(?:0|[1-9][0-9]{{0,{self.max_length - 1}}})"
        return f"{_TYPE_CHARS[self.type]}{{1,{self.max_length}}}"


@dataclass(frozen=True)
class KeyTemplate:
    """A parsed template: alternating literal text and parameter names.

    ``parts`` holds literals as ``str`` and placeholders as 1-tuples ``(name,)``.
    ``glob`` templates (invalidation ``match``) may hold ``*``/``?`` in their literal text.
    """

    source: str
    parts: tuple[str | tuple[str], ...]
    params: tuple[str, ...]
    glob: bool = False

    def render(self, values: Mapping[str, str], hash_tag: str | None = None) -> str:
        """Join checked parameter values (already key text) into a key or glob."""
        out = []
        for part in self.parts:
            if isinstance(part, tuple):
                value = values[part[0]]
                if self.glob:
                    value = glob_escape(value)
                out.append("{" + value + "}" if part[0] == hash_tag else value)
            else:
                out.append(part)
        return "".join(out)

    def builder(self, specs: Mapping[str, Param], hash_tag: str | None, what: str) -> Callable[[Mapping[str, object]], str]:
        """A fast ``params -> key`` function: the engine calls it on every operation."""
        names = self.params
        checks = [(specs[n].check, n) for n in names]
        pieces: list[str | int] = []
        for part in self.parts:
            if isinstance(part, tuple):
                index = names.index(part[0])
                if part[0] == hash_tag:
                    pieces.extend(["{", index, "}"])
                else:
                    pieces.append(index)
            else:
                pieces.append(part)
        expected = set(names)

        def build(given: Mapping[str, object]) -> str:
            if given.keys() != expected:
                build_values(self, specs, given, what)  # raises with the missing/unexpected names
            values = [check(given[name]) for check, name in checks]
            return "".join(values[p] if type(p) is int else p for p in pieces)  # type: ignore[misc]

        if len(names) == 1:
            # The common shape "prefix{param}suffix": one check, one concatenation.
            (check, name), = checks
            prefix = "".join(p for p in pieces[: pieces.index(0)] if type(p) is str)
            suffix = "".join(p for p in pieces[pieces.index(0) + 1:] if type(p) is str)

            def build_one(given: Mapping[str, object]) -> str:
                if len(given) != 1 or name not in given:
                    build_values(self, specs, given, what)
                return prefix + check(given[name]) + suffix

            return build_one
        return build

    def segments(self) -> list[list[str | tuple[str]]]:
        """Split the template at ':' into segments of parts; parameters never span a ':'."""
        segs: list[list[str | tuple[str]]] = [[]]
        for part in self.parts:
            if isinstance(part, tuple):
                segs[-1].append(part)
                continue
            pieces = part.split(":")
            for i, piece in enumerate(pieces):
                if i:
                    segs.append([])
                if piece:
                    segs[-1].append(piece)
        return segs


def parse_template(source: str, *, glob: bool = False) -> KeyTemplate:
    """Parse a key (or glob) template; raise ValueError naming the first problem."""
    parts: list[str | tuple[str]] = []
    params: list[str] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(source):
        literal = source[pos:match.start()]
        if literal:
            parts.append(literal)
        name = match.group(1)
        if not _IDENT.match(name):
            raise ValueError(f"placeholder {{{name}}} is not a parameter name (lowercase letters, digits, _)")
        if name in params:
            raise ValueError(f"parameter {name!r} appears twice")
        if parts and isinstance(parts[-1], tuple):
            raise ValueError(f"placeholders {{{parts[-1][0]}}} and {{{name}}} touch: separate them with literal text")
        parts.append((name,))
        params.append(name)
        pos = match.end()
    if source[pos:]:
        parts.append(source[pos:])
    for part in parts:
        if isinstance(part, tuple):
            continue
        if "{" in part or "}" in part:
            raise ValueError("unbalanced or literal brace: braces only mark {param} placeholders (use 'hash_tag' for Redis hash tags)")
        if (_BAD_GLOB_LITERAL if glob else _BAD_KEY_LITERAL).search(part):
            raise ValueError(f"literal text {part!r} contains a character not allowed in keys (whitespace, control or glob characters)")
    if not glob and not params and not parts:
        raise ValueError("empty template")
    return KeyTemplate(source, tuple(parts), tuple(params), glob)


def glob_escape(text: str) -> str:
    """Escape Redis glob specials so a value matches only itself inside a SCAN MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def build_values(template: KeyTemplate, specs: Mapping[str, Param], given: Mapping[str, object], what: str) -> dict[str, str]:
    """Check that ``given`` holds exactly the template's parameters, each valid; return their key text."""
    missing = [p for p in template.params if p not in given]
    extra = [p for p in given if p not in template.params]
    if missing or extra:
        detail = []
        if missing:
            detail.append("missing " + ", ".join(missing))
        if extra:
            cut = [str(e) if len(str(e)) <= 40 else str(e)[:37] + "..." for e in extra[:5]]  # a name may be any length
            detail.append("unexpected " + ", ".join(cut) + (", ..." if len(extra) > 5 else ""))
        raise PolicyViolation(f"{what} takes parameters ({', '.join(template.params) or 'none'}): {'; '.join(detail)}")
    return {name: specs[name].check(given[name]) for name in template.params}
