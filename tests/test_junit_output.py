"""``--output junit``: JUnit XML on stdout for ``validate``, ``diff`` and ``audit`` (a real redis-server), parsed back
with ElementTree: the structure CI reporters expect, counts that match the cases, names, messages, escaping."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

import toolkit
from tests.servers import free_port
from tests.test_audit import EXPECTED, EXPECTED_UNKNOWN, FIXABLE, UNFIXABLE, seed_mixed, write_policy
from toolkit.cli import main
from toolkit.junit import ERROR, FAILURE, PASSED, SKIPPED, Case, clean, document, error_document

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "tests" / "policy_corpus" / "valid"
INVALID = ROOT / "tests" / "policy_corpus" / "invalid"
DIFFS = ROOT / "tests" / "diff_corpus"
ODD = 'odd <&"> \'quoted\''


def parse(text: str) -> ET.Element:
    """The whole of ``text`` is one well-formed JUnit document whose counts agree with its cases."""
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n') and text.endswith("\n")
    assert text.isascii()  # non-ASCII as character references: safe whatever stdout's encoding
    root = ET.fromstring(text)  # raises on anything but exactly one document
    assert root.tag == "testsuites"
    (suite,) = root
    assert suite.tag == "testsuite" and suite.get("name") == root.get("name")
    kinds = Counter(outcome(case) for case in suite.iter("testcase"))
    for element in (root, suite):
        assert element.get("tests") == str(sum(kinds.values())) != "0"
        assert element.get("failures") == str(kinds[FAILURE])
        assert element.get("errors") == str(kinds[ERROR])
        assert element.get("skipped") == str(kinds[SKIPPED])
        assert float(element.get("time", "x")) >= 0
    for child in suite:
        assert child.tag in ("properties", "testcase", "system-out")
    for case in suite.iter("testcase"):
        assert case.get("classname") and case.get("name") and float(case.get("time", "x")) >= 0
        assert {c.tag for c in case} <= {FAILURE, ERROR, SKIPPED, "system-out"}
        if case.get("line") is not None:
            assert case.get("file") and int(case.get("line", "x")) >= 1
    return root


def outcome(case: ET.Element) -> str:
    found = [c.tag for c in case if c.tag in (FAILURE, ERROR, SKIPPED)]
    assert len(found) <= 1
    return found[0] if found else PASSED


def cases(root: ET.Element) -> dict[str, ET.Element]:
    found = {case.get("name", ""): case for case in root.iter("testcase")}
    assert len(found) == len(list(root.iter("testcase")))  # names are unique
    return found


def outcomes(root: ET.Element) -> dict[str, str]:
    return {name: outcome(case) for name, case in cases(root).items()}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, ET.Element, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, parse(out), err


# -- the document ---------------------------------------------------------------------------------

def test_document_escapes_and_counts() -> None:
    message = 'bad <&"> value\nsecond line'
    root = parse(document(f"suite {ODD}", [
        Case("c.x", "passes", stdout="out é"),
        Case("c.x", f"fails {ODD}", FAILURE, message=message, type="t<&>", details=f"{message}\nkey\x01\x1b\udcff\ufffe",
             file="dir, a&b/f.yaml", line=3),
        Case("c.x", "errs", ERROR, message="could not run"),
        Case("c.x", "skips", SKIPPED, message="allowed"),
    ], time=1.5, properties={"k<": 'v&"'}, stdout="suite out"))
    suite = root[0]
    assert root.get("name") == suite.get("name") == f"suite {ODD}" and suite.get("time") == "1.500"
    assert [(p.get("name"), p.get("value")) for p in suite.iter("property")] == [("k<", 'v&"')]
    assert outcomes(root) == {"passes": PASSED, f"fails {ODD}": FAILURE, "errs": ERROR, "skips": SKIPPED}
    failing = cases(root)[f"fails {ODD}"]
    failure = failing.find(FAILURE)
    assert failure is not None and failure.get("message") == message and failure.get("type") == "t<&>"
    assert failure.text == f"{message}\nkey\\x01\\x1b\\udcff\\ufffe"  # XML 1.0 cannot hold these: escaped, not dropped
    assert (failing.get("file"), failing.get("line")) == ("dir, a&b/f.yaml", "3")
    assert cases(root)["passes"].findtext("system-out") == "out é"
    assert suite.findtext("system-out") == "suite out"
    assert clean("tab\tnew\nline\r é \U0001f600") == "tab\tnew\nline\r é \U0001f600"
    with pytest.raises(ValueError):
        Case("c", "n", "broken")


def test_error_document() -> None:
    root = parse(error_document("toolkit x", "toolkit.x", "boom <&\"", file="f.yaml", line=2))
    (case,) = root.iter("testcase")
    assert outcome(case) == ERROR and case.find(ERROR).get("message") == 'boom <&"'  # type: ignore[union-attr]


# -- toolkit validate -----------------------------------------------------------------------------

def test_validate_valid_files_pass(capsys: pytest.CaptureFixture[str]) -> None:
    code, root, err = run(capsys, "validate", "--output", "junit", str(VALID))
    assert code == 0 and err == ""
    files = sorted(str(p) for p in VALID.iterdir() if p.suffix in (".yaml", ".yml"))
    assert sorted(outcomes(root)) == files and set(outcomes(root).values()) == {PASSED}
    assert {c.get("classname") for c in root.iter("testcase")} == {"toolkit.validate"}
    assert all(c.get("file") == c.get("name") for c in root.iter("testcase"))
    assert root.get("name") == "toolkit validate"


def test_validate_a_failure_per_file_with_mistakes(capsys: pytest.CaptureFixture[str]) -> None:
    first, second, good = INVALID / "tier_max_below_min.yaml", INVALID / "bad_duration.yaml", VALID / "hash_tags.yaml"
    code, root, err = run(capsys, "validate", "--output", "junit", str(first), str(second), str(good))
    assert code == 1
    assert outcomes(root) == {str(first): FAILURE, str(second): FAILURE, str(good): PASSED}
    case = cases(root)[str(first)]
    failure = case.find(FAILURE)
    assert failure is not None and failure.get("type") == "PolicyError"
    assert failure.get("message") == "tiers.hourly.max: max 1h is below min 2h"
    assert failure.text == f"{first}:6:10: tiers.hourly.max: max 1h is below min 2h"
    assert (case.get("file"), case.get("line")) == (str(first), "6")
    assert f"{first}:6:10: tiers.hourly.max" in err  # the job's log still shows the mistakes


def test_validate_several_mistakes_in_one_file_and_odd_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / 'a&b<c">'
    odd.mkdir()
    policy = odd / "t.yaml"
    policy.write_text('tiers:\n  hourly: {min: 2h, max: 1h, default: 1h}\nnamespaces:\n  "x<&>":\n'
                      '    key: "x:{id}"\n    type: string\n    tier: volatile\n    ttl: 5 minutes\n')
    code, root, _ = run(capsys, "validate", "--output", "junit", str(odd))
    assert code == 1
    (case,) = root.iter("testcase")
    failure = case.find(FAILURE)
    assert case.get("name") == str(policy) and failure is not None
    lines = (failure.text or "").splitlines()
    assert len(lines) >= 2 and all(line.startswith(f"{policy}:") for line in lines)
    assert failure.get("message", "").endswith(f" (and {len(lines) - 1} more)")
    assert any("x<&>" in line for line in lines)


def test_validate_unlocated_failures_are_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, root, err = run(capsys, "validate", "--output", "junit", "")
    assert code == 2 and outcomes(root) == {"toolkit validate": ERROR}
    assert "an empty PATH argument" in root.iter(ERROR).__next__().get("message", "")
    assert "an empty PATH argument" in err

    def broken(paths: object) -> None:
        raise RuntimeError('boom <&"\n100%')

    monkeypatch.setattr(toolkit, "load", broken)
    code, root, _ = run(capsys, "validate", "--output", "junit", "policies")
    assert code == 1 and outcomes(root) == {"toolkit validate": ERROR}
    assert next(root.iter(ERROR)).get("message") == 'internal error (please report it): RuntimeError: boom <&" 100%'


def test_validate_missing_path_is_a_failing_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    code, root, _ = run(capsys, "validate", "--output", "junit", str(missing), str(VALID / "hash_tags.yaml"))
    assert code == 1 and outcomes(root) == {str(VALID / "hash_tags.yaml"): PASSED, str(missing): FAILURE}


# -- toolkit diff ---------------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(p.name for p in DIFFS.iterdir() if p.is_dir()))
def test_diff_corpus(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    expected = json.loads((DIFFS / case / "expected.json").read_text())
    code, root, _ = run(capsys, "diff", str(DIFFS / case / "old"), str(DIFFS / case / "new"), "--output", "junit")
    assert code == expected["exit"]
    if code == 1:
        assert outcomes(root) == {"toolkit diff": ERROR}
        error = next(root.iter(ERROR))
        assert error.get("type") == "PolicyError" and error.get("message", "").startswith("invalid policy: ")
        return
    want = {f"{f['code']} {f['subject']}": FAILURE if f["severity"] == "breaking" else PASSED for f in expected["findings"]}
    assert outcomes(root) == (want or {"no changes that affect live keys or running applications": PASSED})
    assert {c.get("classname") for c in root.iter("testcase")} == {"toolkit.diff"}
    for f in expected["findings"]:
        found = cases(root)[f"{f['code']} {f['subject']}"]
        if f["severity"] == "breaking":
            assert found.find(FAILURE).get("type") == f["code"]  # type: ignore[union-attr]
        else:
            assert found.findtext("system-out", "").startswith(f"{f['severity']} [{f['code']}] {f['subject']}")


def test_diff_locations_and_allowed_codes(capsys: pytest.CaptureFixture[str]) -> None:
    old, new = DIFFS / "combined" / "old", DIFFS / "combined" / "new"
    code, root, _ = run(capsys, "diff", str(old), str(new), "--output", "junit", "--allow", "rule-removed")
    assert code == 3
    found = cases(root)
    key = found["key-changed namespace session"]
    assert key.get("file") == f"{new}/policy.yaml" and int(key.get("line", "0")) > 0
    failure = key.find(FAILURE)
    assert failure is not None and "'sess:{session_id}' -> 'session:{session_id}'" in failure.get("message", "")
    assert "\ndo: " in (failure.text or "")
    removed = found["rule-removed rule catalog_refreshed"]  # OLD's file, without a line of NEW's
    assert removed.get("file") == f"{old}/policy.yaml" and removed.get("line") is None
    skipped = removed.find(SKIPPED)
    assert skipped is not None and skipped.get("message", "").startswith("allowed by --allow: Rule catalog_refreshed")
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props == {"old": str(old), "new": str(new), "breaking": "3", "warning": "2", "info": "2", "allowed": "1"}

    code, root, _ = run(capsys, "diff", str(DIFFS / "key_changed_literal" / "old"), str(DIFFS / "key_changed_literal" / "new"),
                        "--output", "junit", "--allow", "key-changed")
    assert code == 0 and list(outcomes(root).values()) == [SKIPPED]


def test_diff_unreadable_side_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, root, err = run(capsys, "diff", str(tmp_path / "missing<&>"), str(DIFFS / "identical" / "new"), "--output", "junit")
    assert code == 1 and outcomes(root) == {"toolkit diff": ERROR}
    assert str(tmp_path / "missing<&>") in next(root.iter(ERROR)).get("message", "")
    assert "no such file or directory" in err


# -- toolkit audit --------------------------------------------------------------------------------

@pytest.fixture
def policy_dir(tmp_path: Path, redis_server) -> Path:
    return write_policy(tmp_path / "policies", redis_server.port)


def audit(capsys: pytest.CaptureFixture[str], policy_dir: Path, *extra: str) -> tuple[int, ET.Element, str]:
    return run(capsys, "audit", str(policy_dir), "--target", "local", "--output", "junit", *extra)


def test_audit_violations(redis_client, policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_mixed(redis_client)
    redis_client.set('weird:<&">\x01', "x")
    code, root, err = audit(capsys, policy_dir)
    assert code == 3 and err == ""
    violating = {name for name, (_, missing, above, persistent, wrong, _) in EXPECTED.items() if missing + above + persistent + wrong}
    assert outcomes(root) == {**{name: FAILURE if name in violating else PASSED for name in EXPECTED}, "unknown keys": FAILURE}
    assert {c.get("classname") for c in root.iter("testcase")} == {"toolkit.audit.local"}

    profile = cases(root)["profile"]
    assert profile.get("file") == str(policy_dir / "audit.yaml") and int(profile.get("line", "0")) > 1
    failure = profile.find(FAILURE)
    assert failure is not None and failure.get("type") == "policy_violation"
    assert failure.get("message") == ("7 violations in 13 keys: 3 no TTL, 2 TTL above tier max, 2 wrong Redis type")
    details = failure.text or ""
    assert "no TTL: 3, e.g. " in details and "profile:5" in details and "wrong Redis type: 2 (found: hash 2)" in details
    assert "TTL below tier min (not a violation): 1" in details
    assert cases(root)["feed"].findtext("system-out", "").startswith("feed: list, tier volatile")

    unknown = cases(root)["unknown keys"].find(FAILURE)
    assert unknown is not None
    assert unknown.get("message") == f"{sum(EXPECTED_UNKNOWN.values()) + 1} keys in no namespace, under 6 prefixes"
    assert 'weird: 1 key, e.g. weird:<&">\\x01' in (unknown.text or "")  # a control character, escaped
    assert "bin:\\xff\\xfe" in (unknown.text or "")

    suite = root[0]
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["target"] == "local" and props["scanned"] == "39" and props["cluster"] == "false"
    assert props["outstanding"] == props["violations"] == str(FIXABLE + UNFIXABLE + 1)
    text = suite.findtext("system-out", "")
    assert text.startswith("audit of target local:") and text.rstrip().endswith("violations")


def test_audit_compliant(redis_client, policy_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    redis_client.set("profile:1", "x", px=3_600_000)
    redis_client.set("config:dark-mode", "on")
    code, root, _ = audit(capsys, policy_dir)
    assert code == 0
    assert outcomes(root) == {**{name: PASSED for name in EXPECTED}, "unknown keys": PASSED}
    assert cases(root)["profile"].findtext("system-out", "").startswith("profile: string, tier stable")
    assert cases(root)["cart"].find("system-out") is None  # no key: nothing to say
    assert root[0].findtext("system-out", "").rstrip().endswith("compliant")


@pytest.mark.parametrize("dry_run", [False, True])
def test_audit_fix_ttl(redis_client, policy_dir: Path, capsys: pytest.CaptureFixture[str], dry_run: bool) -> None:
    seed_mixed(redis_client)
    code, root, _ = audit(capsys, policy_dir, "--fix-ttl", *(["--dry-run"] if dry_run else []))
    assert code == 3  # wrong types, a TTL on a persistent key and unknown keys remain
    found = outcomes(root)
    if dry_run:
        assert found["views"] == FAILURE
        assert "would set a TTL on 2 keys" in (cases(root)["views"].find(FAILURE).text or "")  # type: ignore[union-attr]
        assert "fix-ttl (dry run, nothing written):" in root[0].findtext("system-out", "")
    else:
        assert (found["profile"], found["cart"], found["views"], found["config"]) == (FAILURE, FAILURE, PASSED, FAILURE)
        assert "set a TTL on 2 keys" in cases(root)["views"].findtext("system-out", "")
        assert cases(root)["profile"].find(FAILURE).get("message") == (  # type: ignore[union-attr]
            "2 violations in 13 keys: 3 no TTL, 2 TTL above tier max, 2 wrong Redis type; 5 fixed by --fix-ttl")
        assert "fix-ttl:" in root[0].findtext("system-out", "")


def test_audit_leftovers(tmp_path: Path, redis_server, redis_client, capsys: pytest.CaptureFixture[str]) -> None:
    policies = tmp_path / "p"
    policies.mkdir()
    namespace = 'namespaces:\n  session:\n    key: "{key}"\n    type: string\n    tier: volatile\n    ttl: 5m\n'
    (policies / "targets.yaml").write_text(f"targets:\n  local:\n    provider: redis\n    host: 127.0.0.1\n"
                                           f"    port: {redis_server.port}\n")
    (policies / "ns.yaml").write_text(namespace.format(key="sess:{session_id}"))
    assert main(["apply", str(policies), "--target", "local"]) == 0
    redis_client.set("sess:1", "a", px=60_000)
    redis_client.set("sess:2", "b", px=60_000)
    (policies / "ns.yaml").write_text(namespace.format(key="session:{session_id}"))
    assert main(["apply", str(policies), "--target", "local"]) == 0
    redis_client.set("session:1", "a", px=60_000)
    capsys.readouterr()
    code, root, _ = audit(capsys, policies)
    assert code == 3
    found = outcomes(root)
    (leftover,) = [name for name in found if name.startswith("leftover ")]
    assert leftover.startswith("leftover session [key-changed] of policy ")
    assert found == {"session": PASSED, "unknown keys": PASSED, leftover: FAILURE}
    failure = cases(root)[leftover].find(FAILURE)
    assert failure is not None and failure.get("type") == "leftover"
    assert failure.get("message", "").startswith("2 keys left over from namespace session of policy ")
    assert (failure.text or "").endswith("e.g. sess:1, sess:2")


def test_audit_could_not_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    closed = write_policy(tmp_path / "closed", free_port())
    code, root, err = audit(capsys, closed)
    assert code == 1 and outcomes(root) == {"toolkit audit": ERROR}
    assert next(root.iter(ERROR)).get("message", "").startswith("target local: ") and "toolkit audit: error:" in err

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "t.yaml").write_text("tiers:\n  hourly: {min: 2h, max: 1h, default: 1h}\n")
    code, root, err = audit(capsys, broken)
    assert code == 1 and outcomes(root) == {"toolkit audit": ERROR}
    error = next(root.iter(ERROR))
    assert error.get("type") == "PolicyError" and cases(root)["toolkit audit"].get("file") == str(broken / "t.yaml")
    assert error.get("message") == f"invalid policy: 1 mistake, first {broken / 't.yaml'}:2:26: tiers.hourly.max: max 1h is below min 2h"
    assert "tiers.hourly.max" in err


def test_junit_is_offered_where_documented(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["plan", "--output", "junit", "--target", "x"])
    assert "invalid choice: 'junit'" in capsys.readouterr().err


def test_a_bug_still_ends_in_a_report(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import toolkit.audit.command

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("boom <&\"")

    monkeypatch.setattr(toolkit.audit.command, "run", broken)
    code, root, err = run(capsys, "audit", "--output", "junit")
    assert code == 1 and outcomes(root) == {"toolkit audit": ERROR}
    assert next(root.iter(ERROR)).get("message") == 'internal error (please report it): RuntimeError: boom <&"'
    assert "internal error" in err
    with pytest.raises(RuntimeError):  # the other formats are unchanged
        main(["audit"])
