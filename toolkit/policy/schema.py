"""The JSON Schema of policy files: the single source of truth for their shape.

The file ships inside the package (``toolkit/policy/policy.schema.json``, the same bytes as
``schemas/policy.schema.json`` in the repository, which is what editors point at).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
import jsonschema

from toolkit.errors import PolicyIssue
from toolkit.policy.yamlfile import YamlDocument, dotted


def schema_text() -> str:
    return resources.files("toolkit.policy").joinpath("policy.schema.json").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads(schema_text()))


def _leaf_errors(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """For oneOf/anyOf failures, the most specific sub-errors: "expected a duration" beats "not valid under any"."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        deepest = max(len(e.absolute_path) for e in error.context)
        if deepest > len(error.absolute_path):
            best = [e for e in error.context if len(e.absolute_path) == deepest]
            return [leaf for e in best for leaf in _leaf_errors(e)]
    return [error]


def _message(error: jsonschema.ValidationError) -> str:
    v = error.validator
    if v == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown field {', '.join(map(repr, extra))}{hint}"
    if v == "required":
        return error.message.replace("is a required property", "is required")
    if v == "enum":
        return f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if v == "pattern" and "ms|s|m|h|d" in str(error.validator_value):
        return f"{error.instance!r} is not a duration (500ms, 90s, 5m, 1h, 1d or integer seconds)"
    if v == "oneOf" and isinstance(error.schema, dict) and any("$ref" in s and "duration" in s["$ref"] for s in error.schema.get("oneOf", [])):
        return f"{error.instance!r} is not a duration (500ms, 90s, 5m, 1h, 1d or integer seconds) or a percentage"
    if v == "propertyNames" or (v == "pattern" and error.validator_value.startswith("^[a-z][a-z0-9_]")):
        return f"{error.instance!r} is not a valid name (lowercase letters, digits and _, starting with a letter)"
    return error.message


def validate_document(doc: YamlDocument) -> list[PolicyIssue]:
    """Every schema violation of one file, located at the offending key or value."""
    issues: list[PolicyIssue] = []
    for top in _validator().iter_errors(doc.data):
        for error in _leaf_errors(top):
            path = tuple(error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                allowed = set(error.schema.get("properties", {}))
                for extra in sorted(set(error.instance) - allowed):
                    line, col = doc.position(path + (extra,), key=True)
                    issues.append(PolicyIssue(doc.file, line, col, dotted(path + (extra,)), _message(error)))
                continue
            if error.validator == "propertyNames":
                name = error.instance
                line, col = doc.position(path + (name,), key=True)
                issues.append(PolicyIssue(doc.file, line, col, dotted(path + (name,)), _message(error)))
                continue
            line, col = doc.position(path)
            issues.append(PolicyIssue(doc.file, line, col, dotted(path), _message(error)))
    return sorted(set(issues))
