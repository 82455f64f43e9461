"""Fuzzing the policy loader: whatever a policy file holds, ``toolkit.load`` returns a PolicySet or
raises PolicyError with located issues, quickly; never another exception, never a hang.

Each case copies the example policies into a temporary directory and mutates one or two files
with seeded random edits: lines deleted, duplicated, swapped or re-indented; values replaced by
floats, huge or negative numbers, ``.inf``/``.nan``, empty strings, lists, mappings, unicode,
control characters, ``${VAR}``, tags; anchors and aliases inserted; files truncated; bytes
flipped. A case depends only on (seed, case number), so a failure names both, and
``python -m tests.test_policy_fuzz CASE [SEED]`` writes that case's files out again to debug it.
Set POLICY_FUZZ_SEED to explore other inputs than the fixed seed CI runs.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import sys
import tempfile
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import toolkit
from toolkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
POLICIES = {p.name: p.read_bytes() for p in sorted((ROOT / "policies").glob("*.yaml"))}
SEED = int(os.environ.get("POLICY_FUZZ_SEED", "20240917"))
BATCHES, CASES_PER_BATCH = 8, 50
LOAD_LIMIT_S = 2.0

_FLOATS = ["90.0", "1.5", "1.0e+308", "-1.0e+308", "-0.0", "0.0", "1e400", "1.0e+400", ".inf", "-.inf", ".nan", ".NaN",
           "6379.0", "10.0", "0.1", "3.0e+2", "1_000.0"]
_NUMBERS = ["-1", "-3600", "0", "1", "65536", "99999999999999999999999", str(2**63), str(2**64 + 1), "0b_", "0x_", "0x1F",
            "017", "1:30", "190:20:30", "1_000", "+12", "0o17", "1e3", "9" * 300, "-" + "9" * 400, "9" * 5000,
            "0x" + "f" * 5000, "1" + "0" * 309 + ".0", "1:" * 200 + "1"]
_TEXT = ['""', "''", "' '", '"90s\\n"', '"10%\\n"', '"5 minutes"', "99999999999999999d", "9" * 30 + "ms", "5000000h",
         '"\\u0000"', '"a\\tb"', '"\\u0007bell"', '"\\x7f"', '"\\u202etxet"', "\u043a\u043b\u044e\u0447", "\U0001f511",
         "e\u0301", "\u200b", '"line\\nbreak"', "${VAR}", "${VAR:-6380}", "'${A}${B}'", "${", "x" * 3000, "'{id}'",
         "'user:{user_id}:*'", "'__toolkit__:x'", "persistent", "volatile", "redis", "none", "=", "<<", "~", "null", "true",
         "yes", "off", "2020-01-01", "2020-01-01T00:00:00Z", "'*'", "'[a-'", "'(unclosed'", "\"rediss://u:p@h\""]
_TEMPLATES = ["'{user_id}'", "'a:{id}{x}'", "'a:{id}:{id}'", "'{a}:{b}:{c}'", "'x:{}'", "'x:{0}'", "'ns:{ID}'", "'a\\\\*'",
              "'{__toolkit__}'", "'__toolkit__:{id}'", "'__toolk*'", "'user:[a-'", "'user:[z-a]:*'", "'user:?'", "'*:*'",
              "'user:{user_id}:profile'", "'user:me:profile'", "'(a+)+$'", "'a{99999}'", "'[^:]+'", "'\\d+'"]
_STRUCTURES = ["[]", "{}", "[a, 1, null]", "{a: 1}", "[[[[1]]]]", "{min: 1m, default: 1m}", "[1m, 2m]", "{type: int}",
               "{provider: redis}", "[" * 80 + "]" * 80, "{a: {b: {c: {d: 1}}}}"]
_TAGS = ["!!float 5", "!!float '5'", "!!int '5'", "!!int abc", "!!str 5", "!!bool maybe", "!!bool true", "!!null ''",
         "!!binary aGk=", "!!timestamp 2020-01-01", "!!set {a, b}", "!!omap [a: 1]", "!foo x", "! 5", "!!map {a: 1}",
         "!!seq [1]", "!!python/object/apply:os.system [id]", "!<tag:yaml.org,2002:str> x", "!env REDIS_URL"]
VALUES = _FLOATS + _NUMBERS + _TEXT + _TEMPLATES + _STRUCTURES + _TAGS
KEYS = ["ttl", "jitter", "tier", "type", "key", "min", "max", "default", "port", "db", "max_length", "params", "<<", "? [a]",
        "'1'", "1", "null", "true", "colour", "persistent", "version", "__proto__", "\u043a\u043b\u044e\u0447", "'x:y'", "a b"]
_SCALAR_LINE = re.compile(r"^(\s*(?:- )?[^\s:#][^:#]*:)[ \t]+(\S.*)$")
_KEY_LINE = re.compile(r"^(\s*(?:- )?)([^\s:#][^:#]*)(:.*)$")


@dataclass
class Case:
    seed: int
    number: int
    files: dict[str, bytes]
    edits: list[str] = field(default_factory=list)

    def label(self) -> str:
        return f"seed {self.seed} case {self.number} ({'; '.join(self.edits)})"


# -- mutations: each edits a file's lines (or bytes) and returns a short description -------------------------


def _line(rng: random.Random, lines: list[str], pattern: re.Pattern[str] | None = None) -> int | None:
    choices = [i for i, text in enumerate(lines) if pattern is None or pattern.match(text)]
    return rng.choice(choices) if choices else None


def delete_line(rng: random.Random, lines: list[str]) -> str:
    i = _line(rng, lines)
    if i is None:
        return "delete nothing"
    del lines[i]
    return f"delete line {i + 1}"


def duplicate_line(rng: random.Random, lines: list[str]) -> str:
    i = _line(rng, lines)
    if i is None:
        return "duplicate nothing"
    lines.insert(rng.randint(0, len(lines)), lines[i])
    return f"duplicate line {i + 1}"


def swap_lines(rng: random.Random, lines: list[str]) -> str:
    if len(lines) < 2:
        return "swap nothing"
    i = rng.randrange(len(lines) - 1)
    j = i + 1 if rng.random() < 0.6 else rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return f"swap lines {i + 1} and {j + 1}"


def reindent(rng: random.Random, lines: list[str]) -> str:
    i = _line(rng, lines)
    if i is None:
        return "reindent nothing"
    body = lines[i].lstrip(" ")
    indent = rng.choice(["", " ", "  ", "   ", "      ", "\t", " \t", " " * 40])
    lines[i] = indent + body
    return f"indent line {i + 1} by {indent!r}"


def _replace(rng: random.Random, lines: list[str], pattern: re.Pattern[str], choices: list[str], what: str) -> str:
    """Replace one group of a random line matching ``pattern``: the value (group 2 of _SCALAR_LINE) or the key."""
    i = _line(rng, lines, pattern)
    if i is None:
        return f"replace no {what}"
    match = pattern.match(lines[i])
    assert match is not None
    new = rng.choice(choices)
    lines[i] = f"{match.group(1)} {new}" if what == "value" else f"{match.group(1)}{new}{match.group(3)}"
    return f"line {i + 1} {what} -> {new[:40]!r}"


def replace_value(rng: random.Random, lines: list[str]) -> str:
    return _replace(rng, lines, _SCALAR_LINE, VALUES, "value")


def replace_key(rng: random.Random, lines: list[str]) -> str:
    return _replace(rng, lines, _KEY_LINE, KEYS, "key")


def add_anchor_and_alias(rng: random.Random, lines: list[str]) -> str:
    i = _line(rng, lines, _SCALAR_LINE)
    j = _line(rng, lines, _SCALAR_LINE)
    if i is None or j is None:
        return "no anchor"
    first, second = _SCALAR_LINE.match(lines[i]), _SCALAR_LINE.match(lines[j])
    assert first is not None and second is not None
    lines[i] = f"{first.group(1)} &fz {first.group(2)}"
    alias = rng.choice(["*fz", "*fz", "*missing", "&fz *fz", "[*fz, *fz]", "{<<: *fz}"])
    lines[j] = f"{second.group(1)} {alias}"
    if rng.random() < 0.3:  # a merge key next to the alias, merging a scalar or the mapping it sits in
        indent = len(lines[j]) - len(lines[j].lstrip())
        lines.insert(j + 1, " " * indent + "<<: *fz")
    return f"anchor line {i + 1}, alias {alias!r} at line {j + 1}"


def insert_junk(rng: random.Random, lines: list[str]) -> str:
    i = _line(rng, lines)
    if i is None:
        return "insert nothing"
    junk = rng.choice([":", "- ", "{", "[", "]", "}", '"', "'", "#", "|", ">", "%", "@", "`", "&", "*", "!", "? ", ",",
                       "---", "...", "\t", "\x00", "\x1b", "\ufeff", "\u2028", "\r", "\\", "%YAML 1.1", "%TAG ! tag:x,2000:"])
    at = rng.randint(0, len(lines[i]))
    lines[i] = lines[i][:at] + junk + lines[i][at:]
    return f"insert {junk!r} at line {i + 1} column {at + 1}"


def add_document(rng: random.Random, lines: list[str]) -> str:
    at = rng.randint(0, len(lines))
    lines.insert(at, rng.choice(["---", "...", "--- !!map", "--- |"]))
    return f"document marker at line {at + 1}"


def replace_section(rng: random.Random, lines: list[str]) -> str:
    i = _line(rng, lines, re.compile(r"^[a-z]+:\s*$"))
    if i is None:
        return "replace no section"
    value = rng.choice(VALUES)
    lines[i] = lines[i].rstrip() + " " + value
    return f"section at line {i + 1} -> {value[:40]!r}"


LINE_EDITS = [delete_line, duplicate_line, swap_lines, reindent, replace_value, replace_value, replace_value, replace_key,
              add_anchor_and_alias, insert_junk, add_document, replace_section]


def truncate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    at = rng.randint(0, len(data))
    return data[:at], f"truncate at byte {at}"


def flip_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    raw = bytearray(data)
    spots = sorted(rng.sample(range(len(raw)), min(len(raw), rng.randint(1, 4)))) if raw else []
    for spot in spots:
        raw[spot] ^= 1 << rng.randrange(8)
    return bytes(raw), f"flip bits at bytes {spots}"


BYTE_EDITS = [truncate, flip_bytes]


def make_case(seed: int, number: int) -> Case:
    """The files of one case: the example policies, one or two of them mutated."""
    rng = random.Random(f"{seed}:{number}")
    case = Case(seed, number, dict(POLICIES))
    for name in rng.sample(sorted(POLICIES), rng.choice([1, 1, 1, 2])):
        data = case.files[name]
        lines = data.decode("utf-8").split("\n")
        for _ in range(rng.choice([1, 1, 1, 2, 3, 4])):  # often one edit, so that many sets get past the schema
            edit = rng.choice(LINE_EDITS)
            case.edits.append(f"{name}: {edit(rng, lines)}")
        data = "\n".join(lines).encode("utf-8", "surrogatepass")
        if rng.random() < 0.2:
            data, what = rng.choice(BYTE_EDITS)(rng, data)
            case.edits.append(f"{name}: {what}")
        case.files[name] = data
    return case


def write_case(case: Case, directory: Path) -> None:
    for name, data in case.files.items():
        (directory / name).write_bytes(data)


def check_case(case: Case, directory: Path) -> tuple[str | None, bool]:
    """(None when the loader behaved, otherwise what went wrong with the case's label; whether the set loaded)."""
    write_case(case, directory)
    started = time.perf_counter()
    try:
        policy = toolkit.load(directory)
    except toolkit.PolicyError as exc:
        elapsed = time.perf_counter() - started
        loaded = False
        if not exc.issues:
            return f"{case.label()}: PolicyError without issues", loaded
        names = {str(directory / name) for name in case.files}
        unlocated = [str(i) for i in exc.issues if i.file not in names or i.line < 1 or i.col < 1 or not i.message]
        if unlocated:
            return f"{case.label()}: issues not located in a policy file: {unlocated[:3]}", loaded
    except Exception:  # noqa: BLE001 - any other exception is the bug this test looks for
        return f"{case.label()}: crashed\n{traceback.format_exc(limit=-4)}", False
    else:
        elapsed, loaded = time.perf_counter() - started, True
        problem = _check_model(policy)
        if problem:
            return f"{case.label()}: loaded an invalid PolicySet: {problem}", loaded
    if elapsed > LOAD_LIMIT_S:
        return f"{case.label()}: load took {elapsed:.2f}s (limit {LOAD_LIMIT_S}s)", loaded
    return None, loaded


def _check_model(policy: toolkit.PolicySet) -> str | None:
    """What a loaded set promises its users, beyond being a PolicySet."""
    if not isinstance(policy, toolkit.PolicySet) or not re.fullmatch(r"[0-9a-f]{64}", policy.digest):
        return "not a PolicySet with a digest"
    try:
        json.dumps(dict(policy.document), allow_nan=False)  # what apply publishes: plain, finite JSON
    except ValueError as exc:
        return f"document is not plain JSON: {exc}"
    for ns in policy.namespaces.values():
        if ns.ttl_ms is not None and not (isinstance(ns.ttl_ms, int) and policy.tiers[ns.tier].contains(ns.ttl_ms)):
            return f"namespace {ns.name}: ttl {ns.ttl_ms!r} outside tier {ns.tier}"
        if ns.max_length is not None and type(ns.max_length) is not int:
            return f"namespace {ns.name}: max_length {ns.max_length!r} is not an int"
    for target in policy.targets.values():
        if not (target.port is None or type(target.port) is int or isinstance(target.port, str)):
            return f"target {target.name}: port {target.port!r}"
    return None


def check_cli(case: Case, directory: Path) -> str | None:
    """``toolkit validate --output json`` on the same files: one JSON document, exit 0 or 1."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["validate", "--output", "json", str(directory)])
    try:
        doc = json.loads(out.getvalue())
    except ValueError:
        return f"{case.label()}: validate --output json printed no JSON document:\n{out.getvalue()[:500]}{err.getvalue()[:500]}"
    if code not in (0, 1) or doc.get("valid") is not (code == 0):
        return f"{case.label()}: validate exited {code} with valid={doc.get('valid')!r}"
    return None


def test_the_cases_differ_and_reproduce() -> None:
    """A case is a function of (seed, number): the same files every time, and different cases differ."""
    assert make_case(SEED, 3).files == make_case(SEED, 3).files
    assert len({tuple(sorted(make_case(SEED, n).files.items())) for n in range(20)}) == 20


@pytest.mark.parametrize("batch", range(BATCHES))
def test_loader_never_crashes_on_mutated_policies(batch: int, tmp_path: Path) -> None:
    failures = []
    refused = 0
    for number in range(batch * CASES_PER_BATCH, (batch + 1) * CASES_PER_BATCH):
        case = make_case(SEED, number)
        directory = tmp_path / f"case{number}"
        directory.mkdir()
        problem, loaded = check_case(case, directory)
        if problem is None and number % 5 == 0:
            problem = check_cli(case, directory)
        if problem is not None:
            failures.append(problem)
        refused += not loaded
    assert not failures, (f"{len(failures)} failing case(s); rerun one with python -m tests.test_policy_fuzz CASE {SEED}\n"
                          + "\n\n".join(failures))
    assert refused > CASES_PER_BATCH // 2, f"seed {SEED} batch {batch}: only {refused} cases refused: the mutations are too tame"


if __name__ == "__main__":  # python -m tests.test_policy_fuzz CASE [SEED]: write one case out and load it
    number, seed = int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else SEED
    case = make_case(seed, number)
    out_dir = Path(tempfile.mkdtemp(prefix=f"fuzz-{seed}-{number}-"))
    write_case(case, out_dir)
    print(case.label(), out_dir, sep="\n")
    print(check_case(case, out_dir)[0] or "ok")
