"""``toolkit diff OLD [NEW]`` and ``toolkit diff --against-target NAME [NEW]``: what the CLI calls.

Exit codes: 0 nothing breaking (or only codes accepted with ``--allow``); 1 invalid input (a side
that fails validation, a bad git ref, nothing published on the target); 3 breaking findings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TextIO

from toolkit.diff._render import counts, locate, render
from toolkit.diff._sources import GIT_PREFIX, Side, SideError, files_side, git_side, published_side
from toolkit.errors import PolicyError
from toolkit.github_actions import annotation
from toolkit.junit import error_document
from toolkit.policy.diff import BREAKING, compare

EXIT_OK, EXIT_INVALID, EXIT_BREAKING = 0, 1, 3
DEFAULT_PATHS = ["policies"]


@contextmanager
def _side(spec: str, default_paths: list[str]) -> Iterator[Side]:
    if spec.startswith(GIT_PREFIX):
        with git_side(spec, default_paths) as side:
            yield side
    else:
        yield files_side([spec])


def run(sides: list[str], *, against_target: str | None = None, output: str = "text",
        allow: Iterable[str] = (), stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Compare the two sides and print the findings; return the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    new_spec = (sides[0] if against_target else sides[1]) if len(sides) > (0 if against_target else 1) else None
    new_paths = [new_spec] if new_spec and not new_spec.startswith(GIT_PREFIX) else DEFAULT_PATHS
    try:
        with ExitStack() as stack:
            try:
                new = stack.enter_context(_side(new_spec or DEFAULT_PATHS[0], DEFAULT_PATHS))
            except PolicyError as exc:  # OLD's mistakes too, when it has any: one run shows them all
                issues = list(exc.issues)
                if not against_target:
                    try:
                        stack.enter_context(_side(sides[0], new_paths))
                    except PolicyError as old_exc:
                        issues = list(old_exc.issues) + issues
                    except SideError:
                        pass
                raise PolicyError(issues) from None
            if against_target:
                if new.policy is None:
                    raise SideError("--against-target compares the target's published policy with policy files; "
                                    "NEW has none")
                old = published_side(new.policy, against_target)
            else:
                old = stack.enter_context(_side(sides[0], new_paths))
            for side in (old, new):
                if side.note:
                    print(f"toolkit diff: {side.note}", file=err)
            findings = compare(old.document, new.document, old_targets=old.targets, new_targets=new.targets)
            located = locate(findings, old, new, frozenset(allow))
            code = EXIT_BREAKING if counts(located)[BREAKING] else EXIT_OK
            out.write(render(located, old, new, output, code))
            return code
    except PolicyError as exc:
        return _invalid(out, err, output, [str(i) for i in exc.issues], [i.as_dict() for i in exc.issues])
    except SideError as exc:
        return _invalid(out, err, output, [f"toolkit diff: error: {exc}"], [], str(exc), kind="SideError")


def _invalid(out: TextIO, err: TextIO, output: str, lines: list[str], issues: list[dict[str, object]],
             error: str | None = None, kind: str = "PolicyError") -> int:
    """Invalid input: the located issues (or the one error) on stderr; with --output json, one document on stdout;
    with --output junit, one ``<error>`` case listing them."""
    if output == "json":
        out.write(json.dumps({"format_version": "1", "findings": [], "errors": issues, "error": error,
                              "exit_code": EXIT_INVALID}, indent=2) + "\n")
    elif output == "github":
        for issue in issues:
            where = (str(issue["file"]), int(str(issue["line"])), int(str(issue["col"])))
            out.write(annotation("error", f"{issue['path']}: {issue['message']}" if issue["path"] else str(issue["message"]),
                                 title="toolkit diff", where=where) + "\n")
        if error:
            out.write(annotation("error", error, title="toolkit diff") + "\n")
    elif output == "junit":
        first = issues[0] if issues else None
        message = error or f"invalid policy: {len(issues)} mistake{'' if len(issues) == 1 else 's'}, first {lines[0]}"
        out.write(error_document("toolkit diff", "toolkit.diff", " ".join(message.split()), "\n".join(lines), type=kind,
                                 file=str(first["file"]) if first else None,
                                 line=int(str(first["line"])) if first else None))
    for line in lines:
        print(line, file=err)
    return EXIT_INVALID
