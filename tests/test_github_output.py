"""``--output github``: GitHub Actions workflow commands that annotate the pull request at the line to change,
for ``toolkit validate`` and for ``toolkit plan`` / ``apply`` (annotations first, then the text plan)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

import toolkit
from tests.servers import RedisServer
from toolkit.cli import main
from toolkit.github_actions import annotation, escape_data, escape_property
from toolkit.provision import compute_plan, open_backend, read_live, render
from toolkit.provision.plan import BLOCKED, CREATE, ERROR, UPDATE, WARNING, Change, Finding, Plan
from toolkit.provision.render import change_path, finding_path

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "tests" / "policy_corpus" / "invalid"


# -- workflow commands ---------------------------------------------------------------------------

def test_escaping() -> None:
    assert escape_data("100% sure\r\nnext: a,b") == "100%25 sure%0D%0Anext: a,b"
    assert escape_property("dir,x/a:b%.yaml\n") == "dir%2Cx/a%3Ab%25.yaml%0A"


def test_annotation_lines() -> None:
    assert annotation("error", "a: b", title="toolkit validate", where=("p/f.yaml", 3, 7)) == (
        "::error file=p/f.yaml,line=3,col=7,title=toolkit validate::a: b")
    assert annotation("notice", "m") == "::notice::m"
    assert annotation("warning", "line1\nline2", title="t: x") == "::warning title=t%3A x::line1%0Aline2"
    with pytest.raises(ValueError):
        annotation("debug", "m")


# -- toolkit validate ----------------------------------------------------------------------------

def test_validate_annotates_each_mistake(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = INVALID / "tier_max_below_min.yaml", INVALID / "bad_duration.yaml"
    assert main(["validate", "--output", "github", str(first), str(second)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"::error file={second},line=8,col=10,title=toolkit validate::namespaces.search_results.ttl: ")
    assert lines[1] == f"::error file={first},line=6,col=10,title=toolkit validate::tiers.hourly.max: max 1h is below min 2h"


def test_validate_escapes_file_names_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / "a,b:c%"
    odd.mkdir()
    (odd / "t.yaml").write_text("tiers:\n  hourly: {min: 2h, max: 1h, default: 1h}\n")
    assert main(["validate", "--output", "github", str(odd)]) == 1
    out = capsys.readouterr().out
    shown = str(odd).replace("%", "%25").replace(":", "%3A").replace(",", "%2C")
    assert out == f"::error file={shown}/t.yaml,line=2,col=26,title=toolkit validate::tiers.hourly.max: max 1h is below min 2h\n"


def test_validate_valid_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--output", "github", str(ROOT / "policies")]) == 0
    assert capsys.readouterr() == ("", "")


def test_validate_unlocated_failures(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--output", "github", ""]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("::error title=toolkit validate::an empty PATH argument (an unset variable?); name a file or directory\n", "")

    def broken(paths: object) -> None:
        raise RuntimeError("boom,\n100%")

    monkeypatch.setattr(toolkit, "load", broken)
    assert main(["validate", "--output", "github", "policies"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("::error title=toolkit validate::internal error (please report it): RuntimeError: boom, 100%25\n", "")


def test_validate_usage_errors_stay_usage_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["validate", "--output", "gitlab"])
    assert stopped.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and "invalid choice: 'gitlab'" in err and "github" in err


# -- toolkit plan / apply ------------------------------------------------------------------------

TARGETS = """\
targets:
  box:
    provider: redis
    url: "redis://127.0.0.1:{port}/9"
    instance:
      clustering_policy: EnterpriseCluster
      eviction_policy: AllKeysRandom
namespaces:
  keep:
    key: "keep:{{id}}"
    type: string
    tier: persistent
    reason: "kept for ever"
"""


@pytest.fixture
def project(tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """policies/ with a target on the session server that plans a blocked change and an error; nothing is applied."""
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "box.yaml").write_text(TARGETS.format(port=redis_server.port))
    monkeypatch.chdir(tmp_path)
    if redis.Redis(port=redis_server.port).config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-random":
        pytest.skip("the session server already runs allkeys-random")
    return tmp_path


def plan_of(policy: toolkit.PolicySet) -> Plan:
    target = policy.target("box")
    backend = open_backend(target)
    try:
        return compute_plan(policy, target, read_live(backend, target, publish=False), publish=False)
    finally:
        backend.close()


def test_change_and_finding_paths() -> None:
    assert change_path("t", Change("server", "eviction_policy", UPDATE)) == ("targets", "t", "instance", "eviction_policy")
    assert change_path("t", Change("database", "port", BLOCKED)) == ("targets", "t", "port")
    assert change_path("t", Change("cluster", "", CREATE)) == ("targets", "t", "instance")
    assert change_path("t", Change("policy", "published_policy", CREATE)) == ("targets", "t")
    assert finding_path("t", Finding(ERROR, "c", "m", ("namespaces", "keep"))) == ("namespaces", "keep")
    assert finding_path("t", Finding(WARNING, "c", "m")) == ("targets", "t")
    assert finding_path("t", SimpleNamespace(severity=WARNING, code="c", message="m")) == ("targets", "t")  # type: ignore[arg-type]


def test_render_github_annotations_then_text(project: Path) -> None:
    policy = toolkit.load("policies")
    plan = dataclasses.replace(plan_of(policy), changes=(
        Change("server", "eviction_policy", UPDATE, "NoEviction", "AllKeysRandom", note="takes effect at once"),
        Change("server", "clustering_policy", BLOCKED, "NoCluster", "EnterpriseCluster", reason="no proxy", remedy="declare NoCluster"),
        Change("database", "port", BLOCKED, 10000, 6380, reason="fixed, 100%"),
        Change("cluster", "", CREATE, None, {"sku": "Balanced_B5"}),
        Change("policy", "published_policy", CREATE, None, "0123456789abcdef"),
    ), findings=(
        Finding(ERROR, "persistent-may-be-evicted", "keys: lost", ("namespaces", "keep")),
        Finding(WARNING, "nodes-disagree", "a, b"),
        SimpleNamespace(severity=WARNING, code="old-finding", message="without a path"),
    ))
    text = render(plan, "github", policy=policy)
    f = "file=policies/box.yaml"
    title = "title=toolkit plan box%3A"
    assert text.splitlines()[:8] == [
        f'::notice {f},line=7,col=7,{title} update::~ server.eviction_policy: "NoEviction" -> "AllKeysRandom"%0Anote: takes effect at once',
        f'::error {f},line=6,col=7,{title} blocked::! server.clustering_policy: "NoCluster" -> "EnterpriseCluster"'
        '%0Ablocked: no proxy%0Ainstead: declare NoCluster',
        f"::error {f},line=2,col=3,{title} blocked::! database.port: 10000 -> 6380%0Ablocked: fixed, 100%25",
        f'::notice {f},line=5,col=5,{title} create::+ cluster (created with sku = "Balanced_B5")',
        f"::notice {f},line=2,col=3,{title} create::+ policy.published_policy: (none) -> 0123456789ab",
        f"::error {f},line=9,col=3,{title} persistent-may-be-evicted::[persistent-may-be-evicted] keys: lost",
        f"::warning {f},line=2,col=3,{title} nodes-disagree::[nodes-disagree] a, b",
        f"::warning {f},line=2,col=3,{title} old-finding::[old-finding] without a path",
    ]
    assert text.split("\n", 8)[8] == render(plan, "text")
    unlocated = render(plan, "github")  # no policy: annotations name no file
    assert "file=" not in unlocated and unlocated.startswith(f'::notice {title} update::~ server.eviction_policy')


def test_cli_plan_github_exit_code_and_text(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "policies", "--target", "box", "--output", "github", "--no-publish"]) == 1
    out = capsys.readouterr().out
    annotations = [line for line in out.splitlines() if line.startswith("::")]
    assert [a.split(" ", 1)[0] for a in annotations] == ["::error", "::notice", "::error"]
    assert "blocked::! server.clustering_policy" in annotations[0] and "[persistent-may-be-evicted]" in annotations[2]
    assert out.splitlines()[len(annotations)] == "Target box (redis): redis://127.0.0.1:{}/9".format(
        toolkit.load("policies").target("box").url.split(":")[-1].split("/")[0])
    assert out.rstrip().endswith("Apply will refuse to run until the blocked changes and errors are resolved.")


def test_cli_plan_github_names_files(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Needs command.py to pass ``policy=policy`` to render."""
    assert main(["plan", "policies", "--target", "box", "--output", "github", "--no-publish"]) == 1
    annotations = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::")]
    policy = toolkit.load("policies")
    (finding,) = plan_of(policy).findings  # persistent-may-be-evicted, wherever plan points it
    where = policy.locate(finding_path("box", finding))
    assert where is not None and where[0] == "policies/box.yaml"
    assert [a.split(",title=")[0] for a in annotations] == [
        "::error file=policies/box.yaml,line=6,col=7", "::notice file=policies/box.yaml,line=7,col=7",
        f"::error file=policies/box.yaml,line={where[1]},col={where[2]}"]


def test_cli_apply_github_refused_changes_nothing(project: Path, redis_server: RedisServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    before = redis.Redis(port=redis_server.port).config_get("maxmemory-policy")
    assert main(["apply", "policies", "--target", "box", "--output", "github", "--no-publish"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("::error ") and "title=toolkit apply box%3A blocked::" in out
    assert out.rstrip().endswith("Apply refused: nothing was changed (see the blocked changes and errors above).")
    assert redis.Redis(port=redis_server.port).config_get("maxmemory-policy") == before


def test_cli_plan_github_invalid_policy_is_annotated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "t.yaml").write_text("tiers:\n  hourly: {min: 2h, max: 1h, default: 1h}\n")
    assert main(["plan", "policies", "--target", "box", "--output", "github"]) == 1
    out, err = capsys.readouterr()
    assert out == "::error file=policies/t.yaml,line=2,col=26,title=toolkit plan::tiers.hourly.max: max 1h is below min 2h\n"
    assert err == "policies/t.yaml:2:26: tiers.hourly.max: max 1h is below min 2h\n"
    (tmp_path / "policies" / "t.yaml").write_text("tiers:\n  hourly: {min: 1h, default: 1h}\n")
    assert main(["plan", "policies", "--target", "box", "--output", "github"]) == 1
    out, err = capsys.readouterr()
    assert out == "::error title=toolkit plan::no target 'box' (declared: none)\n"
    assert err == "toolkit plan: error: no target 'box' (declared: none)\n"
