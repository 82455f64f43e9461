"""``toolkit diff`` end to end: the corpus through the CLI, git:REF on a throwaway repository,
--against-target on a real redis-server after ``toolkit apply``, the outputs and exit codes, and
the audit telling keys left over from a published change from unknown ones."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from toolkit.cli import main

CORPUS = Path(__file__).parent / "diff_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
SESSION = """
namespaces:
  session:
    key: "{key}"
    type: string
    tier: volatile
    ttl: 5m
"""


def findings(out: str) -> Counter:
    return Counter((f["code"], f["severity"], f["subject"]) for f in json.loads(out)["findings"])


@pytest.mark.parametrize("case", CASES)
def test_corpus_through_the_cli(case: str, capsys) -> None:
    expected = json.loads((CORPUS / case / "expected.json").read_text())
    code = main(["diff", str(CORPUS / case / "old"), str(CORPUS / case / "new"), "--output", "json"])
    out = capsys.readouterr().out
    assert code == expected["exit"]
    document = json.loads(out)  # one JSON document, invalid sides included
    assert document["exit_code"] == code
    if code != 1:
        assert findings(out) == Counter((f["code"], f["severity"], f["subject"]) for f in expected["findings"])
    else:
        assert document["errors"] and document["findings"] == []


def test_allow_accepts_chosen_codes(capsys) -> None:
    old, new = str(CORPUS / "key_changed_literal" / "old"), str(CORPUS / "key_changed_literal" / "new")
    assert main(["diff", old, new]) == 3
    capsys.readouterr()
    assert main(["diff", old, new, "--allow", "key-changed", "--output", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["breaking"] == 0 and document["summary"]["allowed"] == 1
    assert [f["allowed"] for f in document["findings"]] == [True]
    assert main(["diff", old, new, "--allow", "no-such-code"]) == 2
    assert "unknown code no-such-code" in capsys.readouterr().err
    assert main(["diff"]) == 2 and main(["diff", "a", "b", "c"]) == 2


def test_outputs(capsys) -> None:
    old, new = str(CORPUS / "combined" / "old"), str(CORPUS / "combined" / "new")
    main(["diff", old, new, "--output", "markdown"])
    markdown = capsys.readouterr().out
    assert markdown.startswith("### toolkit diff:") and "| **breaking** | `key-changed` | namespace session |" in markdown
    main(["diff", old, new, "--output", "github"])
    github = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"::error file={new}/policy.yaml,line=") and "key-changed" in line for line in github)
    removed = [line for line in github if "rule-removed" in line]
    assert removed and removed[0].startswith(f"::error file={old}/policy.yaml,title=")  # OLD's file, no line of NEW's
    assert any(line.startswith("::notice ") for line in github) and "Diff: 4 breaking" in github[-1]
    main(["diff", old, new])
    assert "breaking [key-changed] namespace session (" in capsys.readouterr().out


# -- git:REF --------------------------------------------------------------------------------------

def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    """A repository whose main holds policies/ with session at sess:{id}; the working tree renamed the key."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "ns.yaml").write_text(SESSION.format(key="sess:{session_id}"))
    (tmp_path / "README").write_text("not a policy\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "v1")
    git(tmp_path, "update-ref", "refs/remotes/origin/main", "HEAD")
    (tmp_path / "policies" / "ns.yaml").write_text(SESSION.format(key="session:{session_id}"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_git_ref_against_the_working_tree(repo: Path, capsys) -> None:
    assert main(["diff", "git:origin/main", "--output", "json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["old"] == "git:origin/main" and document["new"] == "policies"
    (finding,) = document["findings"]
    assert (finding["code"], finding["file"], finding["line"]) == ("key-changed", "policies/ns.yaml", 4)
    # from a subdirectory, and with an explicit path at the ref
    os.chdir(repo / "policies")
    assert main(["diff", "git:origin/main:policies", "."]) == 3
    capsys.readouterr()


def test_git_ref_both_sides_and_removals_located_at_the_ref(repo: Path, capsys) -> None:
    git(repo, "commit", "-q", "-am", "v2")
    (repo / "policies" / "ns.yaml").write_text(SESSION.format(key="other:{session_id}").replace("  session:\n", "  other:\n"))
    git(repo, "commit", "-q", "-am", "v3")
    assert main(["diff", "git:HEAD~1", "git:HEAD", "--output", "json"]) == 3
    document = json.loads(capsys.readouterr().out)
    removed = next(f for f in document["findings"] if f["code"] == "namespace-removed")
    assert (removed["file"], removed["line"]) == ("policies/ns.yaml", 3)  # OLD's line, repository path


def test_bad_refs_and_invalid_sides_at_a_ref(repo: Path, capsys) -> None:
    assert main(["diff", "git:no-such-branch"]) == 1
    assert "'no-such-branch' is not a commit in this repository" in capsys.readouterr().err
    assert main(["diff", "git:"]) == 1
    (repo / "policies" / "ns.yaml").write_text(SESSION.format(key="sess:{session_id}").replace("volatile", "fleeting"))
    git(repo, "commit", "-q", "-am", "broken")
    (repo / "policies" / "ns.yaml").write_text(SESSION.format(key="sess:{session_id}"))  # the working tree is fine
    assert main(["diff", "git:HEAD", str(repo / "policies")]) == 1
    err = capsys.readouterr().err
    assert "git:HEAD:policies/ns.yaml:" in err and "unknown tier 'fleeting'" in err and "toolkit-diff-" not in err


def test_a_ref_without_the_policies_counts_everything_as_added(repo: Path, capsys) -> None:
    git(repo, "rm", "-q", "-r", "--cached", "policies")
    git(repo, "commit", "-q", "-m", "no policies")
    assert main(["diff", "git:HEAD", "--output", "json"]) == 0
    captured = capsys.readouterr()
    assert "no policy files under policies at HEAD" in captured.err
    assert [f["code"] for f in json.loads(captured.out)["findings"]] == ["namespace-added"]


def test_an_explicit_path_with_no_policy_at_the_ref_is_an_error(repo: Path, capsys) -> None:
    assert main(["diff", "git:HEAD:nope/", "policies"]) == 1
    assert "git:HEAD:nope/: no policy files under nope at HEAD" in capsys.readouterr().err


def test_when_both_sides_are_invalid_both_are_shown(tmp_path: Path, capsys) -> None:
    for side in ("old", "new"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "ns.yaml").write_text(SESSION.format(key="sess:{session_id}").replace("volatile", f"{side}_tier"))
    assert main(["diff", str(tmp_path / "old"), str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err
    assert "unknown tier 'old_tier'" in err and "unknown tier 'new_tier'" in err


def test_outside_a_repository(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "ns.yaml").write_text(SESSION.format(key="sess:{session_id}"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert main(["diff", "git:main"]) == 1
    assert "git rev-parse failed" in capsys.readouterr().err


# -- --against-target ----------------------------------------------------------------------------

def target_policy(directory: Path, port: int, key: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "ns.yaml").write_text(SESSION.format(key=key))
    (directory / "targets.yaml").write_text(f"targets:\n  local:\n    provider: redis\n    host: 127.0.0.1\n"
                                            f"    port: {port}\n")
    return directory


def test_against_the_policy_published_by_apply(tmp_path: Path, redis_server, redis_client, capsys) -> None:
    policies = target_policy(tmp_path / "p", redis_server.port, "sess:{session_id}")
    assert main(["apply", str(policies), "--target", "local"]) == 0
    capsys.readouterr()
    assert main(["diff", "--against-target", "local", str(policies)]) == 0
    assert "No changes" in capsys.readouterr().out
    target_policy(policies, redis_server.port, "session:{session_id}")
    assert main(["diff", "--against-target", "local", str(policies), "--output", "json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["old"].startswith("target local (applied ") and [f["code"] for f in document["findings"]] == ["key-changed"]
    assert main(["diff", "--against-target", "nope", str(policies)]) == 1
    assert main(["diff", "--against-target", "local", "a", "b"]) == 2


def test_against_a_target_with_an_older_record(tmp_path: Path, redis_server, redis_client, capsys) -> None:
    from toolkit.policy.published import POLICY_KEY

    policies = target_policy(tmp_path / "p", redis_server.port, "sess:{session_id}")
    assert main(["diff", "--against-target", "local", str(policies)]) == 1
    assert "nothing is published on target local: run toolkit apply first" in capsys.readouterr().err
    import toolkit

    digest = toolkit.load(policies).digest
    redis_client.hset(POLICY_KEY, mapping={"digest": digest, "version": "0.0.9"})  # an older toolkit: no document
    assert main(["diff", "--against-target", "local", str(policies)]) == 0
    assert "runs this very policy" in capsys.readouterr().err
    redis_client.hset(POLICY_KEY, "digest", "b" * 64)
    assert main(["diff", "--against-target", "local", str(policies)]) == 1
    assert "holds no document to compare" in capsys.readouterr().err


def test_audit_reports_keys_left_over_from_a_published_change(tmp_path: Path, redis_server, redis_client, capsys) -> None:
    policies = target_policy(tmp_path / "p", redis_server.port, "sess:{session_id}")
    assert main(["apply", str(policies), "--target", "local"]) == 0
    redis_client.set("sess:1", "a", px=60_000)
    redis_client.set("sess:2", "b", px=60_000)
    redis_client.set("stray:1", "c", px=60_000)
    target_policy(policies, redis_server.port, "session:{session_id}")
    assert main(["apply", str(policies), "--target", "local"]) == 0
    redis_client.set("session:1", "a", px=60_000)
    capsys.readouterr()
    assert main(["audit", str(policies), "--target", "local", "--output", "json"]) == 3
    report = json.loads(capsys.readouterr().out)
    (left,) = report["leftovers"]
    assert (left["namespace"], left["code"], left["keys"], left["examples"]) == ("session", "key-changed", 2,
                                                                                  ["sess:1", "sess:2"])
    assert report["unknown"]["keys"] == 1  # stray:1 matches no policy, old or new
    assert main(["audit", str(policies), "--target", "local"]) == 3
    text = capsys.readouterr().out
    assert "keys left over from an earlier policy: 2" in text and "[key-changed] of policy" in text
