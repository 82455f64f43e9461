"""``toolkit validate`` as a pull-request check sees it: silence and exit 0, or one located line
per mistake and exit 1; usage errors exit 2; never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import toolkit
from toolkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "tests" / "policy_corpus" / "invalid"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The real command line, in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "toolkit.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_example_policies_validate_silently() -> None:
    done = run("validate", "policies/")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_default_path_is_policies_in_the_current_directory() -> None:
    done = run("validate")
    assert (done.returncode, done.stderr) == (0, "")


def test_errors_of_every_path_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = INVALID / "tier_max_below_min.yaml", INVALID / "bad_duration.yaml"
    assert main(["validate", str(first), str(ROOT / "policies"), str(second)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{second}:8:10: namespaces.search_results.ttl: expected a duration")
    assert lines[1] == f"{first}:6:10: tiers.hourly.max: max 1h is below min 2h"


def test_json_output_when_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--output", "json", str(ROOT / "policies")]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    policy = toolkit.load(ROOT / "policies")
    assert err == ""
    assert doc == {
        "valid": True, "errors": [], "files": list(policy.sources), "digest": policy.digest,
        "namespaces": sorted(policy.namespaces), "invalidation": sorted(policy.rules), "targets": sorted(policy.targets),
    }
    assert len(doc["digest"]) == 64 and "user_profile" in doc["namespaces"]


def test_json_output_when_invalid(capsys: pytest.CaptureFixture[str]) -> None:
    path = INVALID / "secret_password_field.yaml"
    assert main(["validate", str(path), "--output", "json"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    doc = json.loads(out)
    assert doc["valid"] is False and set(doc) == {"valid", "errors"}
    assert [(e["line"], e["col"], e["path"]) for e in doc["errors"]] == [(8, 5, "targets.local.password"),
                                                                          (8, 15, "targets.local.password")]
    assert all(set(e) == {"file", "line", "col", "path", "message"} and e["file"] == str(path) for e in doc["errors"])


def test_directory_without_policy_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("not a policy")
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"{tmp_path}:1:1: directory holds no .yaml or .yml policy files\n"


def test_missing_path_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    done = run("validate", str(missing))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"{missing}:1:1: no such file or directory\n")


@pytest.mark.parametrize("args", [["validate", "--colour"], ["validate", "--output", "yaml"], ["valdate"], [],
                                  ["validate", "--output", "json", "--colour"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    """Found by argparse before it knows the output format: usage text, even after ``--output json``."""
    done = run(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert "usage: toolkit" in done.stderr and "error:" in done.stderr and "Traceback" not in done.stderr


# -- --output json: one JSON document on stdout, whatever happens ---------------------------------------------


def json_run(*args: str, code: str | None = None) -> tuple[int, dict, str]:
    """``toolkit validate --output json ARGS`` in a fresh interpreter: exit code, the whole stdout parsed, stderr."""
    done = run("validate", "--output", "json", *args) if code is None else subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=60)
    try:
        return done.returncode, json.loads(done.stdout), done.stderr
    except ValueError:
        pytest.fail(f"stdout is not one JSON document:\n{done.stdout}\nstderr:\n{done.stderr}")


def _file(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        (tmp_path / name).write_bytes(data)
        return tmp_path / name
    return make


def _empty_directory(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _fifo(tmp_path: Path) -> Path:
    """Reading it would block until a writer comes: it must be refused, not read."""
    os.mkfifo(tmp_path / "pipe.yaml")
    return tmp_path / "pipe.yaml"


def _unreadable(tmp_path: Path) -> Path:
    """A .yaml whose read fails even for root: a link to /proc/self/mem (offset 0 is never mapped: EIO)."""
    if not Path("/proc/self/mem").exists():
        pytest.skip("needs Linux /proc")
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "ok.yaml").write_text("version: 1\n")
    (folder / "mem.yaml").symlink_to("/proc/self/mem")
    return folder


SCENARIOS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "missing path": (lambda tmp_path: tmp_path / "nope.yaml", "no such file or directory"),
    "empty directory": (_empty_directory, "directory holds no .yaml or .yml policy files"),
    "not UTF-8": (_file("latin1.yaml", b"version: caf\xe9\n"), "not valid UTF-8 (byte 0xe9)"),
    "unreadable file": (_unreadable, "cannot read file: Input/output error"),
    "FIFO": (_fifo, "not a regular file or a directory; refused"),
    "tagged float": (_file("tag.yaml", b"version: !!float 1\n"), "tag !!float is not allowed"),
    "huge float": (_file("port.yaml", b"targets:\n  t: {provider: redis, host: h, port: 1.0e+308}\n"),
                   "expected a port number from 1 to 65535"),
    "float durations that used to crash": (_file("tier.yaml", b"tiers:\n  brief: {min: 60.0, max: 1.5, default: 90.0}\n"),
                                           "expected a duration such as"),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_json_output_is_one_document_whatever_the_input(tmp_path: Path, scenario: str) -> None:
    make, message = SCENARIOS[scenario]
    path = make(tmp_path)
    code, doc, err = json_run(str(path))
    assert (code, err, doc["valid"], set(doc)) == (1, "", False, {"valid", "errors"})
    assert all(set(e) == {"file", "line", "col", "path", "message"} and e["file"].startswith(str(path)) for e in doc["errors"])
    assert any(message in e["message"] for e in doc["errors"]), doc["errors"]


def test_an_empty_path_argument_is_a_usage_error(tmp_path: Path) -> None:
    """``toolkit validate "$POLICY_DIR"`` with the variable unset must not validate every YAML file of the checkout."""
    code, doc, err = json_run("")
    assert (code, err) == (2, "")
    assert doc == {"valid": False, "errors": [], "error": "an empty PATH argument (an unset variable?); name a file or directory"}
    done = run("validate", str(ROOT / "policies"), "")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "toolkit validate: error: an empty PATH argument (an unset variable?); name a file or directory\n"


# A real internal failure, no mock: the file nests 60 levels (allowed), so reading it recurses past a limit of 50 frames.
CRASH = "import sys; from toolkit.cli import main; sys.setrecursionlimit(50); sys.exit(main(['validate', *sys.argv[1:]]))"


def test_an_internal_error_is_still_one_json_document(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("version: " + "[" * 60 + "1" + "]" * 60 + "\n")
    code, doc, err = json_run("--output", "json", str(deep), code=CRASH)
    assert (code, err, doc["valid"], doc["errors"]) == (1, "", False, [])
    assert doc["error"].startswith("internal error (please report it): RecursionError: ")
    done = subprocess.run([sys.executable, "-c", CRASH, str(deep)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("toolkit validate: error: internal error (please report it): RecursionError: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "usage: toolkit validate" in out and "--output" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"toolkit {toolkit.__version__}\n"


def test_hostile_files_never_produce_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bytes.yaml").write_bytes(b"\x00\xff\xfe garbage")
    (tmp_path / "tag.yaml").write_text("namespaces: !!python/object/new:os.system [echo pwned]\n")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    (tmp_path / "key.yaml").write_text("? [a, b]\n: c\n")
    (tmp_path / "pattern.yaml").write_text("parameters:\n  p: {pattern: '(unclosed'}\n")
    done = run("validate", str(tmp_path))
    assert done.returncode == 1 and "pwned" not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    files = sorted(line.split(":")[0] for line in done.stderr.splitlines())
    assert files == sorted(str(p) for p in tmp_path.iterdir())


def test_import_toolkit_is_light() -> None:
    """Importing the package loads neither the Azure SDK, redis-py nor jsonschema: they load when used."""
    code = ("import sys, toolkit; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('azure', 'redis', 'redis_entraid', 'msal', 'jsonschema')); print(','.join(bad))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "", "")
