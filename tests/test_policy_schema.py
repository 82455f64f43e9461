"""The JSON Schema is the single source of truth of the policy language: valid, shipped, used
by editors and by the loader, and documented field by field in the README."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from toolkit.cli import main
from toolkit.policy.schema import schema_text

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_FILE = ROOT / "schemas" / "policy.schema.json"
SHIPPED = ROOT / "toolkit" / "policy" / "policy.schema.json"
EXAMPLES = sorted((ROOT / "policies").glob("*.yaml"))
VALID_CORPUS = sorted((ROOT / "tests" / "policy_corpus" / "valid").iterdir())
EDITOR_COMMENT = "# yaml-language-server: $schema=../schemas/policy.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_shipped_copy_is_the_repository_schema() -> None:
    assert SHIPPED.is_symlink()
    assert SHIPPED.resolve() == SCHEMA_FILE.resolve()
    assert schema_text() == SCHEMA_FILE.read_text(encoding="utf-8")


def test_toolkit_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    out, err = capsys.readouterr()
    assert out == SCHEMA_FILE.read_text(encoding="utf-8") and err == ""


def test_there_are_example_policies() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_starts_with_the_editor_schema_comment(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == EDITOR_COMMENT


@pytest.mark.parametrize("path", EXAMPLES + VALID_CORPUS, ids=[p.name for p in EXAMPLES + VALID_CORPUS])
def test_file_validates_against_the_schema_with_jsonschema_alone(path: Path, schema: dict[str, Any]) -> None:
    """What an editor or another tool sees: the schema alone accepts every valid file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


def property_names(node: Any) -> Iterator[str]:
    """Every property name the schema defines, at any depth (namespaces, auth, cache_aside, instance...)."""
    if isinstance(node, dict):
        for name in node.get("properties", {}):
            yield name
        for value in node.values():
            yield from property_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from property_names(value)


def readme_reference() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Policy reference\n(.*?)(?=^## )", text + "\n## end", re.S | re.M)
    assert match, "README.md has no '## Policy reference' section"
    return match.group(1)


def test_readme_reference_documents_every_schema_property(schema: dict[str, Any]) -> None:
    reference = readme_reference()
    names = sorted(set(property_names(schema)))
    assert len(names) > 60
    assert [name for name in names if f"`{name}`" not in reference] == []


def test_readme_reference_documents_the_yaml_limits() -> None:
    from toolkit.policy.yamlfile import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

    reference = readme_reference().replace(",", "").replace("\u202f", "").replace(" ", "")
    assert "1MiB" in reference and MAX_FILE_BYTES == 1024 * 1024
    assert str(MAX_NODES) in reference and str(MAX_DEPTH) in reference


def test_readme_reference_lists_every_enum_value(schema: dict[str, Any]) -> None:
    """Enumerated choices (types, codecs, providers, eviction policies...) are spelled out too."""
    reference = readme_reference()

    def enums(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            yield from (str(v) for v in node.get("enum", []))
            for value in node.values():
                yield from enums(value)
        elif isinstance(node, list):
            for value in node:
                yield from enums(value)

    assert sorted({value for value in enums(schema) if value not in reference}) == []
