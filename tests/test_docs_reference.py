"""README.md, docs/provision.md and docs/diff.md stay in step with the code: every cross-check code with its
severity, every default read from an Azure response, every CLI option, every diff code with its severity, the
documents' fields, and every relative link (and anchor) between the pages."""

from __future__ import annotations

import argparse
import io
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from toolkit.audit._model import Leftover
from toolkit.audit._tally import LEFT_BEHIND
from toolkit.cli import build_parser
from toolkit.diff import run as run_diff
from toolkit.policy import published
from toolkit.policy.diff import BREAKING, CODES
from toolkit.policy.loader import load
from toolkit.policy.model import InstancePolicy, Persistence
from toolkit.provision import saved
from toolkit.provision.apply import Outcome
from toolkit.provision.azure import OMITTED, REDISEARCH_DOCS, REDISEARCH_EXAMPLES
from toolkit.provision.changes import ERROR, WARNING, Finding
from toolkit.provision.plan import compute_plan
from toolkit.provision.render import as_dict
from toolkit.provision.state import LiveState, to_json

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PROVISION = ROOT / "docs" / "provision.md"
DIFF = ROOT / "docs" / "diff.md"
SPEC = ROOT / "tests" / "azure_spec" / "2025-07-01"
CORPUS = ROOT / "tests" / "diff_corpus"
PAGES = {"plan": PROVISION, "apply": PROVISION, "diff": DIFF}


# -- reading Markdown ---------------------------------------------------------------------------------------------

def without_code(text: str) -> str:
    """The text with fenced code blocks blanked out (spaces: offsets unchanged), so ``#`` in code is no heading."""
    out, fenced = [], False
    for line in text.split("\n"):
        fence = line.lstrip().startswith("```")
        out.append(" " * len(line) if fenced or fence else line)
        fenced = fenced != fence
    return "\n".join(out)


def section(path: Path, title: str) -> str:
    """The text of the heading ``title`` (any level), up to the next heading of the same or a higher level."""
    text = path.read_text(encoding="utf-8")
    bare = without_code(text)
    found = re.search(rf"^(#+) {re.escape(title)}\n", bare, re.M)
    assert found, f"{path.name} has no heading {title!r}"
    level = len(found.group(1))
    after = re.search(rf"^#{{1,{level}}} ", bare[found.end():], re.M)
    return text[found.end(): found.end() + after.start() if after else len(text)]


def rows(text: str) -> dict[str, list[str]]:
    """Table rows whose first cell is one backticked name: name -> the other cells (stripped)."""
    out = {}
    for line in text.split("\n"):
        match = re.match(r"^\| `([^`]+)` \|(.*)\|\s*$", line)
        if match:
            out[match.group(1)] = [cell.strip() for cell in re.split(r"(?<!\\)\|", match.group(2))]
    return out


def json_block(text: str) -> dict[str, Any]:
    match = re.search(r"```json\n(.*?)\n```", text, re.S)
    assert match, "no ```json block"
    document: dict[str, Any] = json.loads(match.group(1))
    return document


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: code spans and links keep their text, punctuation goes, spaces become -."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#+ (.+?)\s*$", without_code(path.read_text(encoding="utf-8")), re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


# -- docs/provision.md -----------------------------------------------------------------------------------------

FINDING = re.compile(r"Finding\(\s*(ERROR|WARNING)\s*,\s*\"([a-z][a-z0-9-]*)\"")


def finding_codes() -> dict[str, str]:
    """Every ``Finding(ERROR|WARNING, "code", ...)`` written in toolkit/provision/*.py: code -> severity."""
    severity = {"ERROR": ERROR, "WARNING": WARNING}
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "toolkit" / "provision").glob("*.py")):
        for level, code in FINDING.findall(path.read_text(encoding="utf-8")):
            found.setdefault(code, set()).add(severity[level])
    assert all(len(levels) == 1 for levels in found.values()), found
    return {code: levels.pop() for code, levels in found.items()}


def test_the_source_scan_finds_the_cross_checks():
    codes = finding_codes()
    assert len(codes) >= 13
    assert {"persistent-may-be-evicted", "redisearch-requirements", "published-policy-unread", "nodes-disagree",
            "entra-id-without-access"} <= set(codes)


def test_every_cross_check_code_is_in_the_table_with_its_severity():
    table = {code: cells[0] for code, cells in rows(section(PROVISION, "Cross-checks")).items()}
    assert table == finding_codes()


def test_redisearch_requirements_is_a_warning_that_cites_both_sources():
    assert finding_codes()["redisearch-requirements"] == WARNING
    text = section(PROVISION, "Cross-checks")
    for source in ("learn.microsoft.com/azure/redis/redis-modules", "learn.microsoft.com/azure/redis/architecture",
                   "RedisEnterpriseDatabasesCreate.json", "RedisEnterpriseDatabasesGet.json"):
        assert source in text, source
        assert source.removeprefix("learn.microsoft.com/azure/redis/") in REDISEARCH_DOCS + REDISEARCH_EXAMPLES, source
    # what the page says the examples do
    for example, clustering in (("RedisEnterpriseDatabasesCreate.json", "EnterpriseCluster"),
                                ("RedisEnterpriseDatabasesGet.json", "OSSCluster")):
        body = json.loads((SPEC / "examples" / example).read_text())
        props = [r["body"]["properties"] for r in body["responses"].values() if "body" in r][0]
        assert "RediSearch" in [m["name"] for m in props["modules"]]
        assert (props["clusteringPolicy"], props["evictionPolicy"]) == (clustering, "AllKeysLRU")
        assert f"`{clustering}` and `AllKeysLRU`" in text


def _shown(value: object) -> str:
    value = to_json(value)
    return value if isinstance(value, str) else json.dumps(value)


def test_every_default_read_is_in_the_defaults_table():
    table = rows(section(PROVISION, "Defaults read"))
    settings = {f.name for f in fields(InstancePolicy)}
    assert set(table) <= settings, set(table) - settings
    for name, value in OMITTED.items():
        assert name in table, name
        assert table[name][1] == f"`{_shown(value)}`", (name, table[name][1])
    for name in set(table) - set(OMITTED):  # what has no default reads as null
        assert table[name][1].startswith("null"), (name, table[name][1])


def _descriptions(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["description"]] if isinstance(node.get("description"), str) else []
        return own + [d for v in node.values() for d in _descriptions(v)]
    if isinstance(node, list):
        return [d for v in node for d in _descriptions(v)]
    return []


def test_the_defaults_table_quotes_the_specification_verbatim():
    spec = "\n".join(_descriptions(json.loads((SPEC / "redisenterprise.json").read_text())))
    quotes = []
    for name, cells in rows(section(PROVISION, "Defaults read")).items():
        said = re.sub(r"`[^`]*`", "", cells[2])
        quotes += [(name, q) for q in re.findall(r"\"([^\"]+)\"", said)]
    assert len(quotes) >= len(OMITTED)
    assert [(name, q) for name, q in quotes if q not in spec] == []


def _local_plan() -> tuple[Any, Any]:
    policy = load([str(ROOT / "policies")])
    live = LiveState(provider="redis", where="redis://127.0.0.1:6379/0", settings=InstancePolicy(
        eviction_policy="NoEviction", persistence=Persistence(), clustering_policy="NoCluster"))
    return policy, compute_plan(policy, policy.target("local"), live)


def test_the_json_example_has_the_fields_of_the_document():
    text = section(PROVISION, "JSON output")
    example = json_block(text)
    policy, plan = _local_plan()
    document = as_dict(plan)
    assert set(example) == set(document)
    assert set(example["live"]) == set(document["live"])
    assert set(example["summary"]) == set(document["summary"])
    assert all(set(c) == set(document["changes"][0]) for c in example["changes"])
    assert set(example["findings"][0]) == set(Finding(WARNING, "x", "y").as_dict())
    result = as_dict(plan, Outcome(plan, "applied"))["result"]
    bullet = re.search(r"^- `result` \(apply\):(.*?)(?=^- |\Z)", text, re.S | re.M)
    assert bullet and all(f"`{key}`" in bullet.group(1) for key in result), result


def test_the_saved_plan_table_lists_every_field_of_the_file(tmp_path: Path):
    policy, plan = _local_plan()
    file = tmp_path / "plan.json"
    saved.save(plan, policy, ["policies"], str(file), publish=True, prune=False)
    record = json.loads(file.read_text())
    table = section(PROVISION, "Saved plans")
    listed = {name for line in table.split("\n") if line.startswith("| `")
              for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    assert listed >= set(record), set(record) - listed
    assert f"`{saved.KIND}`" in table and f"format `{saved.SAVED_FORMAT}`" in table


# -- the CLI ---------------------------------------------------------------------------------------------------

def _subcommand(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found: argparse.ArgumentParser = sub.choices[name]
    return found


def _options(name: str) -> list[argparse.Action]:
    return [a for a in _subcommand(name)._actions if a.option_strings and "--help" not in a.option_strings]


def _readme_cli_rows(name: str) -> str:
    return "\n".join(line for line in section(README, "CLI").split("\n") if line.startswith(f"| `toolkit {name} "))


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_option_is_documented_in_its_page_and_the_cli_table(name: str):
    page = PAGES[name].read_text(encoding="utf-8")
    table = _readme_cli_rows(name)
    assert table, f"the README's CLI table has no row for toolkit {name}"
    options = _options(name)
    assert options
    def named(word: str, text: str) -> bool:  # --out is not --output
        return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None

    for action in options:
        for option in action.option_strings:
            assert named(option, page), (name, option, PAGES[name].name)
            assert named(option, table), (name, option, "README CLI table")
        for choice in action.choices or ():
            assert named(str(choice), page), (name, action.dest, choice, PAGES[name].name)
            assert named(str(choice), table), (name, action.dest, choice, "README CLI table")


# -- docs/diff.md ----------------------------------------------------------------------------------------------

def test_every_diff_code_is_in_the_table_with_its_severity():
    table = {code: cells[0] for code, cells in rows(section(DIFF, "Codes")).items()}
    assert table == {code: severity for code, (severity, _) in CODES.items()}


def test_the_readme_names_exactly_the_breaking_codes():
    text = section(README, "toolkit diff")
    match = re.search(r"Breaking codes \(exit 3\):(.*?);", text, re.S)
    assert match
    assert set(re.findall(r"`([a-z-]+)`", match.group(1))) == {c for c, (s, _) in CODES.items() if s == BREAKING}


def test_the_diff_json_example_has_the_fields_of_the_document():
    text = section(DIFF, "Outputs")
    example = json_block(text)
    out = io.StringIO()
    case = CORPUS / "key_changed_literal"
    code = run_diff([str(case / "old"), str(case / "new")], output="json", stdout=out, stderr=io.StringIO())
    document = json.loads(out.getvalue())
    assert code == document["exit_code"] == 3
    assert set(example) == set(document)
    assert set(example["findings"][0]) == set(document["findings"][0])
    assert set(example["summary"]) == set(document["summary"])
    invalid = io.StringIO()
    bad = CORPUS / "invalid_new"
    assert run_diff([str(bad / "old"), str(bad / "new")], output="json", stdout=invalid, stderr=io.StringIO()) == 1
    line = re.search(r"^- Invalid input prints (.*)$", text, re.M)
    assert line and all(f'"{key}"' in line.group(1) for key in json.loads(invalid.getvalue())), "invalid-input document"


def test_the_exit_codes_of_diff():
    from toolkit.diff.command import EXIT_BREAKING, EXIT_INVALID, EXIT_OK

    table = dict(re.findall(r"^\| (\d+) \| (.*) \|$", section(DIFF, "Exit codes"), re.M))
    assert set(table) == {str(EXIT_OK), str(EXIT_INVALID), "2", str(EXIT_BREAKING)}
    assert table[str(EXIT_BREAKING)].startswith("breaking") and table[str(EXIT_INVALID)].startswith("invalid input")
    exit_row = next(line for line in section(README, "Exit codes").split("\n") if line.startswith("| 3 |"))
    assert "`diff`" in exit_row


def test_the_published_record_is_documented_field_by_field(monkeypatch: pytest.MonkeyPatch):
    policy = load([str(ROOT / "policies")])
    written: dict[str, str] = {}

    class Pipe:
        def __enter__(self) -> Pipe:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def delete(self, key: str) -> None:
            pass

        def hset(self, key: str, mapping: dict[str, str]) -> None:
            written.update(mapping)

        def execute(self) -> None:
            pass

    class Client:
        def hgetall(self, key: str) -> dict[bytes, bytes]:
            return {b"digest": b"0" * 64, b"applied_at": b"2025-01-01T00:00:00Z", b"document": b"{}"}

        def pipeline(self, transaction: bool) -> Pipe:
            return Pipe()

    assert published.publish(Client(), policy, "ci@runner")
    monkeypatch.setattr(published, "MAX_DOCUMENT_BYTES", 1)
    omitted = published.published_fields(policy, "ci@runner")
    text = section(DIFF, "`--against-target NAME`: the published record")
    listed = {name for line in text.split("\n") if line.startswith("| `")
              for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])}
    assert "previous_document" in written and "document_omitted" in omitted
    assert set(written) | set(omitted) <= listed, (set(written) | set(omitted)) - listed


def test_the_published_sizes_are_the_codes():
    text = section(DIFF, "`--against-target NAME`: the published record")
    assert f"past {published.COMPRESS_ABOVE // 1024} KiB of text" in text
    assert f"past {published.MAX_DOCUMENT_BYTES // 1024} KiB after compression" in text
    assert f"`{published._ZLIB}`" in text


def test_audit_leftovers_are_documented():
    text = section(DIFF, "Audit leftovers")
    for code in LEFT_BEHIND:
        assert f"`{code}`" in text, code
    keys = Leftover("ns", "d", "t", "key-changed", 1, ("k",)).as_dict()
    assert all(f'"{key}"' in text for key in keys), keys
    readme_example = json_block(section(README, "toolkit audit"))
    assert [set(x) for x in readme_example["leftovers"]] == [set(keys)]


# -- links -----------------------------------------------------------------------------------------------------

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", without_code(path.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_links_the_reference_pages():
    links = relative_links(README)
    for page in ("docs/provision.md", "docs/diff.md", "docs/runtime.md"):
        assert any(link.split("#")[0] == page for link in links), page


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file_and_anchor_that_exist(document: Path):
    links = relative_links(document)
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        file = (document.parent / target).resolve() if target else document
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading with anchor #{anchor} in {file.relative_to(ROOT)}")
    assert broken == []
