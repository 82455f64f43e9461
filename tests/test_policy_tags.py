"""YAML tags: policy files are plain YAML, so every tag written in a file is refused, the standard
ones included, with the one message the README quotes; untagged values keep their plain meaning."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import toolkit

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "namespaces:\n  feed:\n    key: 'feed:{{id}}'\n    type: string\n    tier: volatile\n    ttl: {ttl}\n"
REFUSED = "is not allowed: policy files are plain YAML (no tags)"


def only_issue(tmp_path: Path, text: str) -> toolkit.PolicyIssue:
    path = tmp_path / "tags.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(toolkit.PolicyError) as caught:
        toolkit.load(path)
    assert len(caught.value.issues) == 1, caught.value.issues
    return caught.value.issues[0]


@pytest.mark.parametrize("value, shown", [
    ("!!float 5", "!!float"),  # the issue's example: not read as 5, refused
    ("!!float '5'", "!!float"),
    ("!!int '5'", "!!int"),
    ("!!int 5", "!!int"),  # even where the tag changes nothing
    ("!!str 5", "!!str"),
    ("!!str 2m", "!!str"),
    ("!!bool true", "!!bool"),
    ("!!bool maybe", "!!bool"),  # PyYAML itself raises KeyError on this one
    ("!!null ''", "!!null"),
    ("!!binary aGk=", "!!binary"),
    ("!!timestamp 2024-01-01", "!!timestamp"),
    ("!!set {a, b}", "!!set"),
    ("!!omap [a: 1]", "!!omap"),
    ("!!map {a: 1}", "!!map"),
    ("!!seq [1]", "!!seq"),
    ("!foo x", "!foo"),
    ("!env TTL", "!env"),
    ("! 5", "!"),
    ("!<tag:yaml.org,2002:str> 2m", "!!str"),
    ("!<tag:example.com,2024:ttl> 2m", "tag:example.com,2024:ttl"),
    ("!!python/object/apply:os.system [id]", "!!python/object/apply:os.system"),
    ("!!python/name:os.system ''", "!!python/name:os.system"),
])
def test_every_tag_is_refused_where_it_is_written(tmp_path: Path, value: str, shown: str) -> None:
    issue = only_issue(tmp_path, NAMESPACE.format(ttl=value))
    assert (issue.line, issue.col, issue.path, issue.message) == (6, 10, "namespaces.feed.ttl", f"tag {shown} {REFUSED}")


@pytest.mark.parametrize("text, line, col, path, shown", [
    ("namespaces:\n  feed:\n    !!str key: 'feed:{id}'\n    type: string\n    tier: volatile\n", 3, 5, "namespaces.feed.key", "!!str"),
    ("!!map\nnamespaces: {}\n", 1, 1, "", "!!map"),
    ("--- !!map\nnamespaces: {}\n", 1, 5, "", "!!map"),
    ("%TAG !t! tag:example.com,2024:\n---\nnamespaces: !t!ns {}\n", 3, 13, "namespaces", "tag:example.com,2024:ns"),
    # Written on an anchored node (which starts at its anchor), reported there once, whether aliased or merged elsewhere.
    ("base: &b !!float 120\nnamespaces:\n  feed: {key: 'feed:{id}', type: string, tier: volatile, ttl: *b}\n", 1, 7, "base",
     "!!float"),
    ("defaults: &d !!map {type: string, tier: volatile}\nnamespaces:\n  feed: {<<: *d, key: 'feed:{id}'}\n", 1, 11, "defaults",
     "!!map"),
    ("namespaces:\n  feed:\n    <<: !!seq []\n    key: 'feed:{id}'\n", 3, 9, "namespaces.feed", "!!seq"),
])
def test_tags_on_keys_documents_anchors_and_merges(tmp_path: Path, text: str, line: int, col: int, path: str, shown: str) -> None:
    issue = only_issue(tmp_path, text)
    assert (issue.line, issue.col, issue.path, issue.message) == (line, col, path, f"tag {shown} {REFUSED}")


def test_the_readme_quotes_the_refusal() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"namespaces.NAME.ttl: tag !!float {REFUSED}" in readme
    listed = re.search(r"\*\*Plain YAML only\*\*(.*?)\n- ", readme, re.S)
    assert listed is not None
    for tag in ("!!str", "!!int", "!!float", "!!bool", "!!null", "!!binary", "!!timestamp", "!!set", "!!omap", "!env"):
        assert f"`{tag}`" in listed.group(1), tag


def test_untagged_values_keep_their_plain_meaning(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("namespaces:\n  feed:\n    key: 'feed:{id}'\n    type: string\n    tier: volatile\n    ttl: 120.0\n"
                    "    owner: 2024-01-01\n    description: '!!float 5'\n", encoding="utf-8")
    ns = toolkit.load(path).namespaces["feed"]
    assert (ns.ttl_ms, ns.owner, ns.description) == (120_000, "2024-01-01", "!!float 5")  # a date stays text, quoted tags are text


@pytest.mark.parametrize("value, message", [
    ("0x_", "cannot read '0x_' as a number; quote it if it is text"),
    ("0b_", "cannot read '0b_' as a number; quote it if it is text"),
    ("9" * 5000, "cannot read '99999999999999999999'... (5000 characters) as a number; quote it if it is text"),
    ("0x" + "f" * 5000, "'0xffffffffffffffffff'... (5002 characters) is too large a number (above 1.8e308, the largest a float holds)"),
    ("9" * 310, "'99999999999999999999'... (310 characters) is too large a number (above 1.8e308, the largest a float holds)"),
])
def test_numbers_python_cannot_hold_are_located(tmp_path: Path, value: str, message: str) -> None:
    issue = only_issue(tmp_path, NAMESPACE.format(ttl=value))
    assert (issue.line, issue.col, issue.path, issue.message) == (6, 10, "namespaces.feed.ttl", message)
