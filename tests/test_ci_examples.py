"""The example pipelines (examples/ci/) are valid YAML of the expected shape, hold no secrets, and every
``toolkit`` command they run works, in their order, with the exit codes they treat as success: run here
through ``toolkit.cli.main`` against a real redis-server declared as the pipelines' target."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from tests.servers import RedisServer
from toolkit.cli import main
from toolkit.policy.leaks import find_secrets
from toolkit.policy.published import POLICY_KEY

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / "examples" / "ci" / "github-actions.yml"
AZURE = ROOT / "examples" / "ci" / "azure-pipelines.yml"
DB = 9
"""The database the pipelines' target uses on the shared session server, away from other tests' keys."""
SCRIPT_KEYS = ("run", "script", "inlineScript")
AZURE_VARS = {"AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
              "AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000002",
              "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000003"}
"""Local values for the repository variables (``vars.X``)."""


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    """A job's steps; an Azure deployment job keeps them under strategy.runOnce.deploy."""
    if "steps" in job:
        return job["steps"]
    return job["strategy"]["runOnce"]["deploy"]["steps"]


# -- structure -----------------------------------------------------------------------------------

def test_github_workflow_structure() -> None:
    wf = load(GITHUB)
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on:` key as true
    assert set(on) == {"pull_request", "push"} and on["push"]["branches"] == ["main"]
    plan, apply = wf["jobs"]["plan"], wf["jobs"]["apply"]
    for job in (plan, apply):
        assert job["permissions"]["id-token"] == "write"
        logins = [s for s in job["steps"] if s.get("uses", "").startswith("azure/login@")]
        assert len(logins) == 1 and logins[0]["with"] == {
            "client-id": "${{ vars.AZURE_CLIENT_ID }}", "tenant-id": "${{ vars.AZURE_TENANT_ID }}",
            "subscription-id": "${{ vars.AZURE_SUBSCRIPTION_ID }}"}
        pythons = [s["with"]["python-version"] for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
        assert pythons == ["3.11"]
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), f"pin a major version: {step['uses']}"
    assert plan["permissions"]["pull-requests"] == "write"
    assert [s["with"] for s in plan["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")] == [
        {"name": "plan", "path": "plan.json"}]
    assert apply["needs"] == "plan" and apply["environment"] == "production"
    assert "push" in apply["if"] and "needs.plan.outputs.changes == 'true'" in apply["if"]
    uses = [s.get("uses", s.get("run", "")) for s in apply["steps"]]
    download = next(i for i, u in enumerate(uses) if u.startswith("actions/download-artifact@"))
    assert apply["steps"][download]["with"] == {"name": "plan"}
    assert uses.index("toolkit apply plan.json") > download
    scripts = "\n".join(s.get("run", "") for s in plan["steps"])
    assert "$GITHUB_STEP_SUMMARY" in scripts and "gh pr comment" in scripts and "--edit-last" in scripts


def test_azure_pipeline_structure() -> None:
    p = load(AZURE)
    assert p["trigger"]["branches"]["include"] == ["main"] and p["pr"]["branches"]["include"] == ["main"]
    plan_stage, apply_stage = p["stages"]
    assert (plan_stage["stage"], apply_stage["stage"], apply_stage["dependsOn"]) == ("Plan", "Apply", "Plan")
    plan_steps = steps(plan_stage["jobs"][0])
    assert [s["inputs"]["versionSpec"] for s in plan_steps if s.get("task") == "UsePythonVersion@0"] == ["3.11"]
    cli = [s for s in plan_steps if s.get("task") == "AzureCLI@2"]
    assert len(cli) == 1 and cli[0]["inputs"]["azureSubscription"] == "${{ variables.serviceConnection }}"
    assert cli[0]["name"] == "plan" and "##vso[task.uploadsummary]" in cli[0]["inputs"]["inlineScript"]
    assert [(s["publish"], s["artifact"]) for s in plan_steps if "publish" in s] == [("plan.json", "plan")]
    assert "refs/heads/main" in apply_stage["condition"] and "dependencies.Plan.outputs['plan.plan.changes']" in apply_stage["condition"]
    deployment = apply_stage["jobs"][0]
    assert deployment["deployment"] == "apply" and deployment["environment"] == "production"
    deploy = steps(deployment)
    assert {"download": "current", "artifact": "plan"} in deploy and {"checkout": "self"} in deploy
    apply_cli = [s for s in deploy if s.get("task") == "AzureCLI@2"]
    assert len(apply_cli) == 1 and apply_cli[0]["inputs"]["azureSubscription"] == "${{ variables.serviceConnection }}"


@pytest.mark.parametrize("path", [GITHUB, AZURE], ids=["github", "azure"])
def test_no_secrets(path: Path) -> None:
    text = path.read_text()
    assert "secrets." not in text and "$(System.AccessToken)" not in text
    assert not re.search(r"(?i)(password|passwd|client[-_]?secret|access[-_]?key|api[-_]?key)\s*[:=]", text)
    # allowed: the job's automatic, short-lived GITHUB_TOKEN, and permissions (`id-token: write`)
    data = load(path)
    leaks = [(p, what) for p, what in find_secrets(data)
             if _value(data, p) != "${{ github.token }}" and "permissions" not in p]
    assert leaks == []


def _value(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


# -- the commands, run ---------------------------------------------------------------------------

def scripts(node: Any) -> Iterator[str]:
    """Every ``run:``/``script:``/``inlineScript:`` block, in document order (the order the pipeline runs them)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SCRIPT_KEYS and isinstance(value, str):
                yield value
            else:
                yield from scripts(value)
    elif isinstance(node, list):
        for item in node:
            yield from scripts(item)


def toolkit_lines(script: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", script)  # line continuations
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("toolkit ")]


_VARIABLE = re.compile(r"\$\{\{\s*(?:vars|env|variables)\.([\w.]+)\s*\}\}|\$\(([\w.]+)\)|\$\{(\w+)\}|\$(\w+)")


def substitute(line: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        assert name in values, f"no local value for {match.group(0)} in {line!r}"
        return values[name]

    return _VARIABLE.sub(one, line)


def shell_words(line: str) -> tuple[list[str], str | None, str]:
    """(argv, file stdout is redirected to, what follows: '' or e.g. '|| code=$?')."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    argv, redirect = [], None
    for i, token in enumerate(tokens):
        if token in (">", ">>"):
            redirect, rest = tokens[i + 1], tokens[i + 2:]
            return argv, redirect, " ".join(rest)
        if token in ("||", "&&", "|", ";", "&"):
            return argv, None, " ".join(tokens[i:])
        argv.append(token)
    return argv, None, ""


def pipeline_commands(path: Path) -> list[tuple[str, str]]:
    """(toolkit command line, the whole script it is in), in run order."""
    return [(line, script) for script in scripts(load(path)) for line in toolkit_lines(script)]


def success_codes(argv: list[str], tail: str, script: str) -> set[int]:
    """The exit codes the pipeline lets pass: only plan --detailed-exitcode's 2 besides 0, and only where the
    script catches it (a bare exit 2 would fail a `bash -e` step) and treats 2 as success."""
    if argv[1] == "plan" and "--detailed-exitcode" in argv:
        assert tail == "|| code=$?", f"the script must catch plan's exit code: {argv} {tail}"
        assert '"$code" -eq 2' in script and ('"$code" -eq 0' in script or "code=$code" in script)
        return {0, 2}
    assert tail == "", f"{argv}: a failure must fail the step"
    return {0}


@pytest.fixture
def pipeline_server(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The session server as a fresh instance for the pipelines' target: noeviction, nothing published; restored after."""
    client = redis.Redis(port=redis_server.port, db=DB, decode_responses=True)
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", "noeviction")
    client.flushdb()
    try:
        yield client
    finally:
        client.config_set("maxmemory-policy", before)
        client.flushdb()
        client.close()


def project(tmp_path: Path, port: int, target: str) -> Path:
    """A repository checkout: policies/ declares the pipelines' target as the test's redis-server."""
    root = tmp_path / "repo"
    (root / "policies").mkdir(parents=True)
    (root / "policies" / "cache.yaml").write_text(
        "namespaces:\n"
        "  product_page:\n"
        "    key: \"product:{product_id}:page\"\n"
        "    type: string\n"
        "    tier: moderate\n"
    )
    (root / "policies" / "targets.yaml").write_text(
        f"targets:\n"
        f"  {target}:\n"
        f"    provider: redis\n"
        f"    url: \"redis://127.0.0.1:{port}/{DB}\"\n"
        f"    instance:\n"
        f"      eviction_policy: VolatileLRU\n"
    )
    # the base branch the diff reads (git:origin/main), then a pull request's change on top: a new namespace
    env = {**os.environ, "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid", "GIT_COMMITTER_NAME": "ci",
           "GIT_COMMITTER_EMAIL": "ci@example.invalid", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "base"],
                 ["update-ref", "refs/remotes/origin/main", "HEAD"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)
    with (root / "policies" / "cache.yaml").open("a") as f:
        f.write("  price:\n    key: \"price:{sku}\"\n    type: string\n    tier: volatile\n")
    return root


def local_values(path: Path, root: Path, workspace: Path) -> dict[str, str]:
    doc = load(path)
    values = dict(AZURE_VARS)
    values.update({str(k): str(v) for k, v in (doc.get("env") or {}).items()})  # GitHub: workflow env
    values.update({str(k): str(v) for k, v in (doc.get("variables") or {}).items()})  # Azure: pipeline variables
    values.update({"Pipeline.Workspace": str(workspace), "System.DefaultWorkingDirectory": str(root)})
    return values


@pytest.mark.parametrize("path", [GITHUB, AZURE], ids=["github", "azure"])
def test_pipeline_commands_run(path: Path, tmp_path: Path, pipeline_server: redis.Redis,
                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    values = local_values(path, tmp_path / "repo", tmp_path / "agent")
    target = values.get("TOOLKIT_TARGET") or values["toolkitTarget"]
    port = pipeline_server.connection_pool.connection_kwargs["port"]
    root = project(tmp_path, port, target)
    monkeypatch.chdir(root)
    commands = pipeline_commands(path)
    ran: list[tuple[str, int]] = []
    for line, script in commands:
        argv, redirect, tail = shell_words(substitute(line, values))
        assert argv[0] == "toolkit"
        try:
            code = main(argv[1:])
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code if isinstance(exc.code, int) else 1
        out, err = capsys.readouterr()
        if redirect is not None:
            (root / redirect).write_text(out)
        ran.append((argv[1], code))
        assert code in success_codes(argv, tail, script), f"{' '.join(argv)} exited {code}:\n{out}\n{err}"
        if argv[1] == "plan":
            assert "--out" in argv and (root / "plan.json").is_file(), "the saved plan (--out plan.json) was not written"
            if redirect is not None:
                assert (root / redirect).read_text().startswith(f"### toolkit plan: `{target}`")
            # the artifact: published from the plan job, downloaded by the apply job
            (tmp_path / "agent" / "plan").mkdir(parents=True, exist_ok=True)
            shutil.copy(root / "plan.json", tmp_path / "agent" / "plan" / "plan.json")
    # validate, plan (changes pending: the fresh server runs noeviction), diff (a namespace added: nothing
    # breaking), then apply of the saved plan
    assert ran == [("validate", 0), ("plan", 2), ("diff", 0), ("apply", 0)]
    assert pipeline_server.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert pipeline_server.exists(POLICY_KEY)
    assert main(["plan", "policies", "--target", target, "--detailed-exitcode"]) == 0  # nothing left to do
