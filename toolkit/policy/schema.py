"""The JSON Schema of policy files: the single source of truth for their shape.

The file ships inside the package (``toolkit/policy/policy.schema.json``, the same bytes as
``schemas/policy.schema.json`` in the repository, which is what editors point at).

jsonschema's own messages are written for schema authors ("is not valid under any of the
given schemas"); this module turns each error into one line a policy author can act on,
located at the offending key or value.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from toolkit.errors import PolicyIssue
from toolkit.policy.durations import DurationTooLong, parse_duration
from toolkit.policy.yamlfile import Path_, YamlDocument, dotted

if TYPE_CHECKING:
    import jsonschema


def schema_text() -> str:
    return resources.files("toolkit.policy").joinpath("policy.schema.json").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(schema_text())


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    """Draft 2020-12 as editors apply it, plus what only the toolkit checks.

    - ``format: policy-duration`` (an annotation for editors) is asserted: at most MAX_DURATION_MS.
    - ``pattern`` follows ECMA-262 as the schema language says: ``$`` is the end of the text, where
      Python's ``re`` also lets a trailing newline through (``"10%\n"`` is no percentage).
    - a ``number`` is finite: ``.nan`` compares as neither above nor below any bound.
    """
    import jsonschema  # imported on first validation: `import toolkit` stays light for applications

    formats = jsonschema.FormatChecker(formats=())
    formats.checks("policy-duration", raises=DurationTooLong)(_duration_in_range)
    base = jsonschema.Draft202012Validator
    types = base.TYPE_CHECKER.redefine("number", _finite_number)
    validator = jsonschema.validators.extend(base, validators={"pattern": _ecma_pattern}, type_checker=types)
    return validator(_schema(), format_checker=formats)


def _duration_in_range(instance: object) -> bool:
    """Only the range: a value that is no duration at all is the ``oneOf`` next to the format's to report."""
    try:
        parse_duration(instance)
    except DurationTooLong:
        raise
    except ValueError:
        pass
    return True


def _finite_number(checker: object, instance: object) -> bool:
    if isinstance(instance, bool) or not isinstance(instance, (int, float)):
        return False
    return isinstance(instance, int) or math.isfinite(instance)


@cache
def _ecma(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern)


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    import jsonschema

    if validator.is_type(instance, "string") and not _ecma(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_KINDS = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer", "number": "a number",
          "boolean": "a boolean (true or false)", "null": "nothing"}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and abs(value) >= 10**18:  # 1.0e+308 read as a whole number: 309 digits say nothing
        return f"a {len(str(abs(value)))}-digit number"
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:30]!r}... ({len(value)} characters)"
    return repr(value)


def _or(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (the schema only uses ``#/$defs/name``)."""
    while "$ref" in schema:
        schema = _schema()["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _describe(schema: dict[str, Any]) -> str:
    """A noun phrase for what a (sub)schema accepts: its ``title``, or one derived from its keywords."""
    schema = _resolve(schema)
    if "title" in schema:
        return schema["title"]
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    if "oneOf" in schema or "anyOf" in schema:
        return _or([_describe(s) for s in (schema["oneOf"] if "oneOf" in schema else schema["anyOf"])])
    kind = schema.get("type", "")
    if kind == "object":
        props = schema.get("properties", {})
        fields = []
        for name in schema.get("required", []):
            spec = _resolve(props.get(name, {}))
            if "const" in spec:
                fields.append(f"{name}: {spec['const']}")
            elif "enum" in spec:
                fields.append(f"{name}: {_or(list(map(str, spec['enum'])))}")
            else:
                fields.append(name)
        return "a mapping with " + " and ".join(fields) if fields else "a mapping"
    if kind in ("integer", "number"):
        low, high = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")
        if low is not None and high is not None:
            return f"{_KINDS[kind]} from {low} to {high}"
        return f"{_KINDS[kind]} of at least {low}" if low is not None else _KINDS[kind]
    return _KINDS.get(kind, "a value")


def _fit(errors: list[jsonschema.ValidationError]) -> int:
    """How well the value fits one alternative that it fails: 0 wrong kind, 1 missing fields, 2 wrong details."""
    level = 2
    for error in errors:
        here = not error.relative_path
        if here and error.validator in ("type", "const", "enum"):
            return 0
        if list(error.relative_path) == ["type"] and error.validator == "const":
            return 0  # the discriminator ("type: access-key") names another alternative
        if here and error.validator in ("oneOf", "anyOf") and error.context:
            if max(_fit(group) for group in _branches(error).values()) == 0:
                return 0
        if here and error.validator == "required":
            level = 1
    return level


def _branches(error: jsonschema.ValidationError) -> dict[int, list[jsonschema.ValidationError]]:
    groups: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context or []:
        groups.setdefault(sub.relative_schema_path[0], []).append(sub)
    return groups


_Leaf = tuple["jsonschema.ValidationError", "str | None", Path_]
"""An error to report, the summary message that replaces jsonschema's own (if any) and a sub-path to point at."""


def _leaves(error: jsonschema.ValidationError) -> list[_Leaf]:
    """For a failed oneOf/anyOf: the errors of the one alternative the value was meant to be, or one summary.

    Scalars always get the summary ("expected a duration such as 90s..., got '5x'"); a mapping or list
    gets the precise errors of the alternative it resembles (the auth with ``type: access-key`` that
    lacks ``env``), so that the message names the field to fix.
    """
    groups = _branches(error) if error.validator in ("oneOf", "anyOf") else {}
    if not groups:  # not an alternative, or valid under several alternatives of a oneOf: keep the error
        return [(error, None, ())]
    if not isinstance(error.instance, (dict, list)):
        in_range = [subs for subs in groups.values() if all(sub.validator == "format" for sub in subs)]
        if len(in_range) == 1:  # the right kind of value, only too large (a jitter of 99999d): say that
            return [leaf for sub in in_range[0] for leaf in _leaves(sub)]
        return [(error, f"expected {_describe(error.schema)}, got {_kind_of(error.instance)}", ())]
    fits = {index: _fit(subs) for index, subs in groups.items()}
    best = max(fits.values())
    chosen = [index for index, level in fits.items() if level == best]
    if best > 0 and len(chosen) == 1:
        return [leaf for sub in groups[chosen[0]] for leaf in _leaves(sub)]
    if all(sub.validator == "required" and not sub.relative_path for subs in groups.values() for sub in subs):
        fields = [name for option in error.validator_value for name in option.get("required", [])]
        how = "at least one" if error.validator == "anyOf" else "exactly one"
        return [(error, f"needs {how} of {', '.join(fields)}", ())]
    tags = [str(t) for o in error.validator_value if (t := _resolve(o).get("properties", {}).get("type", {}).get("const"))]
    tag = error.instance.get("type") if isinstance(error.instance, dict) else None
    if tags and tag is not None and tag not in tags:  # ``type`` picks the alternative: point at it
        return [(error, f"{tag!r} is not one of {', '.join(tags)}{_suggest(tag, tags)}", ("type",))]
    return [(error, f"expected {_describe(error.schema)}", ())]


def _choices(schema: dict[str, Any]) -> str:
    """`` (string, hash, list or counter)`` when a missing field has a fixed set of values."""
    enum = _resolve(schema).get("enum")
    return f" ({_or([str(v) for v in enum])})" if enum else ""


def _suggest(word: Any, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _quote(value: Any, choices: list[str]) -> str:
    """``minimum_tls_version: 1.2`` is the number 1.2 to YAML: point at the choice it was meant to be."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for choice in choices:
            try:
                if float(choice) == value:
                    return f"; quote it: '{choice}'"
            except (ValueError, OverflowError):
                continue
    return ""


def _message(error: jsonschema.ValidationError, name_error: bool) -> str:
    v, value = error.validator, error.instance
    if name_error:
        if v == "not":
            return f"{value!r} is reserved (the tier of keys that never expire) and cannot be declared"
        return f"{value!r} is not a valid name: use lowercase letters, digits and _, starting with a letter (at most 63)"
    if v == "enum":
        choices = [str(c) for c in error.validator_value]
        return f"{_kind_of(value)} is not one of {', '.join(choices)}{_quote(value, choices) or _suggest(value, choices)}"
    if v == "const":
        return f"must be {json.dumps(error.validator_value)}, got {_kind_of(value)}"
    if v == "type":
        return f"expected {_KINDS.get(str(error.validator_value), error.validator_value)}, got {_kind_of(value)}"
    if v in ("minItems", "minLength", "minProperties") and error.validator_value == 1:
        return "must not be empty"
    if v == "format" and error.cause is not None:
        return str(error.cause)
    if v in ("minimum", "maximum", "exclusiveMinimum"):
        bound = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "above"}[v]
        return f"must be {bound} {error.validator_value}, got {_kind_of(value)}"
    if v == "maxLength":
        return f"is longer than {error.validator_value} characters"
    if v == "pattern":
        if "title" in error.schema:
            return f"{value!r} is not {error.schema['title']}"
        return f"{value!r} does not match the pattern {error.validator_value}"
    return error.message


_BOUNDS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}


def validate_document(doc: YamlDocument) -> tuple[list[PolicyIssue], set[Path_]]:
    """Every schema violation of one file, located at the offending key or value.

    Also returns the paths of the top-level entries (``("namespaces", "user")``, or a whole
    section) that hold a violation, so that the loader can still check everything else.
    """
    issues: list[PolicyIssue] = []
    broken: set[Path_] = set()
    leaves = [leaf for top in _validator().iter_errors(doc.data) for leaf in _leaves(top)]
    mistyped = {tuple(e.absolute_path) for e, summary, _ in leaves if summary is None and e.validator == "type"}
    for error, summary, sub in leaves:
        path = tuple(error.absolute_path) + sub
        if error.validator in _BOUNDS and path in mistyped:
            continue  # "expected an integer, got 15.5" says it all; "must be at most 15" would be noise
        name_error = "propertyNames" in error.absolute_schema_path
        if name_error:
            located = [(path + (error.instance,), True, _message(error, True))]
        elif summary is not None:
            located = [(path, False, summary)]
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties", {}))
            located = [(path + (extra,), True, f"unknown field {extra!r}{_suggest(extra, allowed)} (allowed: {', '.join(allowed)})")
                       for extra in sorted(set(error.instance) - set(allowed))]
        elif error.validator == "required" and isinstance(error.instance, dict):
            props = error.schema.get("properties", {})
            located = [(path, True, f"missing required field {name!r}{_choices(props.get(name, {}))}")
                       for name in error.validator_value if name not in error.instance]
        else:
            located = [(path, False, _message(error, False))]
        for where, at_key, message in located:
            line, col = doc.position(where, key=at_key)
            issues.append(PolicyIssue(doc.file, line, col, dotted(where), message))
            broken.add(where[:2])
    return sorted(set(issues)), broken
