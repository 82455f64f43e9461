"""The corpus of broken and edge-case policy files: every mistake located and explained.

Each file of ``policy_corpus/invalid`` starts with one ``# expect: LINE:COL: PATH: message``
comment per issue it must produce (``-`` for no path); the loader must report exactly those
issues, and ``toolkit validate`` must print each as ``FILE:LINE:COL: PATH: message`` and exit 1.
Files that cannot carry a comment (bad bytes, a megabyte of aliases) are generated here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import toolkit
from toolkit.cli import main
from toolkit.policy.yamlfile import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES

CORPUS = Path(__file__).parent / "policy_corpus"
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))
VALID = sorted((CORPUS / "valid").iterdir())
_EXPECT = re.compile(r"^# expect: (\d+):(\d+): (\S+): (.+)$")


def expectations(path: Path) -> list[tuple[int, int, str, str]]:
    """The leading ``# expect:`` lines of a corpus file as (line, col, path, message substring)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _EXPECT.match(line)
        if match is None:
            break
        line_no, col, where, message = match.groups()
        found.append((int(line_no), int(col), "" if where == "-" else where, message))
    return found


def prefix(file: Path | str, line: int, col: int, where: str) -> str:
    """How ``toolkit validate`` starts the line of one issue."""
    return f"{file}:{line}:{col}: {where}: " if where else f"{file}:{line}:{col}: "


def issues_of(path: Path) -> list[toolkit.PolicyIssue]:
    with pytest.raises(toolkit.PolicyError) as caught:
        toolkit.load(path)
    return caught.value.issues


def test_corpus_is_large_and_every_file_states_its_expectation() -> None:
    assert len(INVALID) >= 30
    assert [p.name for p in INVALID if not expectations(p)] == []


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_file_reports_exactly_its_expected_issues(path: Path) -> None:
    expected = expectations(path)
    issues = issues_of(path)
    lines = [str(issue) for issue in issues]
    unmatched = list(lines)
    for line, col, where, message in expected:
        start = prefix(path, line, col, where)
        hits = [text for text in unmatched if text.startswith(start) and message in text[len(start):]]
        assert hits, f"expected {start}...{message}... in:\n" + "\n".join(lines)
        unmatched.remove(hits[0])
    assert unmatched == [], "issues the file does not expect:\n" + "\n".join(unmatched)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_validate_prints_one_located_line_per_issue_and_exits_1(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    located = [line for line in err.splitlines() if re.match(rf"{re.escape(str(path))}:\d+:\d+: ", line)]
    assert len(located) == len(expectations(path))
    for line, col, where, _ in expectations(path):
        assert any(text.startswith(prefix(path, line, col, where)) for text in located)
    assert "Traceback" not in err


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_edge_case_loads(path: Path) -> None:
    policy = toolkit.load(path)
    assert policy.sources == (str(path),)


def test_valid_corpus_loads_as_one_set() -> None:
    policy = toolkit.load(CORPUS / "valid")
    assert len(policy.sources) == len(VALID)
    # A few facts the edge cases are about, read back from the model.
    assert policy.tiers["volatile"].min_ms == 120_000 and policy.tiers["volatile"].max_ms == 240_000
    at_max = policy.namespaces["quote_at_max"]
    assert at_max.ttl_ms + at_max.max_jitter_ms == policy.tiers["volatile"].max_ms
    weekly = policy.namespaces["report_weekly"]  # merged from report_daily, two fields overridden
    assert (weekly.template.source, weekly.ttl_ms, weekly.owner) == ("report:{report_id}:weekly", 86_400_000, "team-insights")
    assert weekly.params["report_id"].type == "uuid"
    assert policy.namespaces["rate_window"].ttl_ms == 1000 and policy.tiers["blink"].min_ms == 500
    assert policy.namespaces["invoice_sequence"].ttl_ms is None
    assert policy.rules["cart_everything"].indexed == ("cart_items",)
    assert policy.targets["west"].port == "${WEST_PORT:-6380}"  # resolved only when used


# -- files that cannot carry an expectation comment -------------------------------------------


def only_issue(path: Path) -> toolkit.PolicyIssue:
    issues = issues_of(path)
    assert len(issues) == 1, issues
    return issues[0]


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"namespaces:\n  menu:\n    description: caf\xe9\n")
    issue = only_issue(path)
    assert (issue.line, issue.col) == (3, 21)
    assert "not valid UTF-8 (byte 0xe9)" in issue.message


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_bytes(b"")
    assert "file is empty" in only_issue(path).message


def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    issue = only_issue(path)
    assert (issue.line, issue.col) == (1, 1)
    assert f"over the {MAX_FILE_BYTES}-byte limit" in issue.message


def test_file_of_exactly_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "padded.yaml"
    body = b"version: 1\n"
    path.write_bytes(body + b"#" * (MAX_FILE_BYTES - len(body)))
    assert toolkit.load(path).sources == (str(path),)


def test_megabyte_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """A file just under the size limit made of aliases: refused before anything is expanded."""
    path = tmp_path / "bomb.yaml"
    head = "base: &b {" + ", ".join(f"k{i}: [x, y, z]" for i in range(40)) + "}\n"
    aliases, size = [], len(head) + 10
    while size + 4 < MAX_FILE_BYTES:
        aliases.append("*b")
        size += 4
    path.write_text(head + "list: [" + ", ".join(aliases) + "]\n")
    assert MAX_FILE_BYTES - 16 < path.stat().st_size <= MAX_FILE_BYTES
    started = time.monotonic()
    issue = only_issue(path)
    elapsed = time.monotonic() - started
    assert (issue.path, issue.line) == ("list", 2)
    assert f"expands to more than {MAX_NODES} values" in issue.message
    assert elapsed < 2.0, f"took {elapsed:.2f}s"


def test_depth_limit_is_exact(tmp_path: Path) -> None:
    """Nesting up to MAX_DEPTH loads (as far as the YAML reader is concerned); one more level is refused."""
    ok, deep = tmp_path / "ok.yaml", tmp_path / "deep.yaml"
    ok.write_text("version: " + "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1) + "\n")
    deep.write_text("version: " + "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH + "\n")
    assert all("nesting" not in issue.message for issue in issues_of(ok))  # a schema error, not a refusal
    assert f"nesting deeper than {MAX_DEPTH} levels" in only_issue(deep).message
