"""The ``toolkit`` command: a thin layer that parses arguments and calls the package.

Exit codes (also in the README):
  0  success: policy valid, no changes, audit compliant
  1  error: invalid policy, blocked change, connection or Azure error
  2  usage error (bad arguments); ``plan --detailed-exitcode``: changes pending
  3  ``audit``: violations found; ``diff``: breaking changes found
User mistakes are reported as one clear line each, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

import toolkit
from toolkit.errors import PolicyError, PolicyIssue, ToolkitError
from toolkit.github_actions import annotation
from toolkit.junit import error_document

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_VIOLATIONS = 0, 1, 2, 3


def _cmd_validate(args: argparse.Namespace) -> int:
    """With ``--output json``, every outcome is one JSON document on stdout, a bug included: CI parses it blindly."""
    as_json = args.output == "json"
    started = time.monotonic()
    if any(not str(path) for path in args.paths):  # Path("") is ".": an unset $POLICY_DIR would validate the whole tree
        return _validate_failed(args.output, EXIT_USAGE, "an empty PATH argument (an unset variable?); name a file or directory")
    try:
        policy = toolkit.load(args.paths)
    except PolicyError as exc:
        if as_json:
            print(json.dumps({"valid": False, "errors": [i.as_dict() for i in exc.issues]}, indent=2))
        elif args.output == "github":  # one annotation per mistake, on the pull request's diff at FILE:LINE
            for issue in exc.issues:
                print(annotation("error", f"{issue.path}: {issue.message}" if issue.path else issue.message,
                                 title="toolkit validate", where=(issue.file, issue.line, issue.col)))
        elif args.output == "junit":  # a failing case per file with mistakes, a passing one per other file
            _print_validate_junit(args.paths, exc.issues, time.monotonic() - started)
            for issue in exc.issues:  # stdout is the report file: the job's log still shows the mistakes
                print(issue, file=sys.stderr)
        else:
            for issue in exc.issues:  # one line per mistake and nothing else: editors and CI annotate them as they are
                print(issue, file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return _validate_failed(args.output, 130, "interrupted")
    except Exception as exc:  # noqa: BLE001 - a bug still ends in one line (or one JSON document), never a traceback
        return _validate_failed(args.output, EXIT_ERROR, f"internal error (please report it): {type(exc).__name__}: {exc}")
    if as_json:
        print(json.dumps({
            "valid": True, "errors": [], "files": list(policy.sources), "digest": policy.digest,
            "namespaces": sorted(policy.namespaces), "invalidation": sorted(policy.rules), "targets": sorted(policy.targets),
        }, indent=2))
    elif args.output == "junit":
        _print_validate_junit(policy.sources, [], time.monotonic() - started)
    return EXIT_OK


def _print_validate_junit(files: Sequence[str], issues: Sequence[PolicyIssue], elapsed_s: float) -> None:
    """One case per policy file, named by its path: a ``<failure>`` listing its mistakes, or passing. ``files`` are
    the loaded files, or the PATH arguments (expanded again here) when loading failed."""
    from toolkit.junit import FAILURE, Case, document
    from toolkit.policy.loader import policy_files

    names = list(files) if not issues else [str(f) for f in policy_files(files)[0]]
    by_file: dict[str, list[PolicyIssue]] = {}
    for issue in issues:
        by_file.setdefault(issue.file, []).append(issue)
    names += [name for name in by_file if name not in names]
    cases = []
    for name in names:
        found = by_file.get(name, [])
        if not found:
            cases.append(Case("toolkit.validate", name, file=name))
            continue
        first = f"{found[0].path}: {found[0].message}" if found[0].path else found[0].message
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        cases.append(Case("toolkit.validate", name, FAILURE, message=" ".join(f"{first}{more}".split()),
                          type="PolicyError", details="\n".join(str(i) for i in found), file=name, line=found[0].line))
    sys.stdout.write(document("toolkit validate", cases, time=elapsed_s))


def _validate_failed(output: str, code: int, message: str) -> int:
    """A failure that is no located policy mistake: ``error`` in the JSON document, an annotation naming no file,
    or one line on stderr."""
    message = " ".join(message.split())
    if output == "json":
        print(json.dumps({"valid": False, "errors": [], "error": message}, indent=2))
    elif output == "github":
        print(annotation("error", message, title="toolkit validate"))
    elif output == "junit":
        sys.stdout.write(error_document("toolkit validate", "toolkit.validate", message))
        print(f"toolkit validate: error: {message}", file=sys.stderr)
    else:
        print(f"toolkit validate: error: {message}", file=sys.stderr)
    return code


def _cmd_schema(args: argparse.Namespace) -> int:
    from toolkit.policy.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def _cmd_provision(args: argparse.Namespace) -> int:
    from toolkit.provision.command import run
    from toolkit.provision.saved import is_saved_plan

    saved = args.paths if args.command == "apply" and is_saved_plan(args.paths) else None
    if saved and (args.no_publish or args.remove_undeclared_access):
        return _usage(args, "--no-publish and --remove-undeclared-access are fixed when the plan is made; "
                            "give them to 'toolkit plan --out'")
    if not saved and args.target is None:
        return _usage(args, "the following arguments are required: --target (or, for apply, a saved plan file)")
    return run(args.command, args.paths, args.target, output=args.output, publish=not args.no_publish,
               prune=args.remove_undeclared_access, detailed_exitcode=getattr(args, "detailed_exitcode", False),
               out_file=getattr(args, "out", None), saved_plan=saved[0] if saved else None)


def _usage(args: argparse.Namespace, message: str) -> int:
    print(f"toolkit {args.command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _cmd_audit(args: argparse.Namespace) -> int:
    from toolkit.audit.command import run

    if args.dry_run and not args.fix_ttl:
        print("toolkit audit: error: --dry-run goes with --fix-ttl", file=sys.stderr)
        return EXIT_USAGE
    return run(args.paths, args.target, output=args.output, match=args.match, sample_memory=args.sample_memory,
               fix=args.fix_ttl, dry_run=args.dry_run)


def _cmd_diff(args: argparse.Namespace) -> int:
    from toolkit.diff import run
    from toolkit.policy.diff import CODES

    most = 1 if args.against_target else 2
    if not (0 if args.against_target else 1) <= len(args.sides) <= most:
        return _usage(args, "give OLD [NEW], or --against-target NAME [NEW]" if len(args.sides) > most or args.against_target
                      else "give OLD (a directory, a file, or git:REF) and optionally NEW (default policies/)")
    allow = [code.strip() for group in args.allow for code in group.split(",") if code.strip()]
    unknown = sorted(set(allow) - set(CODES))
    if unknown:
        return _usage(args, f"--allow: unknown code {', '.join(unknown)} (codes: {', '.join(CODES)})")
    return run(args.sides, against_target=args.against_target, output=args.output, allow=allow)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of keys, got {text!r}")
    return int(text)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's default exits 2 too; keep its wording, add a hint
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="toolkit", description="Govern Redis usage as code: validate policies, plan and apply "
                                                 "them to instances, audit live keyspaces.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {toolkit.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("validate", help="check policy files; print every error as FILE:LINE:COL: PATH: message")
    p.add_argument("paths", nargs="*", default=["policies"], metavar="PATH", help="files or directories (default: policies/)")
    p.add_argument("--output", choices=("text", "json", "github", "junit"), default="text",
                   help="github: each mistake as a GitHub Actions ::error annotation on stdout; junit: JUnit XML on "
                        "stdout, a test case per policy file")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("schema", help="print the policy JSON Schema (draft 2020-12)")
    p.set_defaults(func=_cmd_schema)

    for name, what in (("plan", "show how the live instance differs from the target's policy"),
                       ("apply", "make the live instance match the target's policy where that is safe; publish the policy")):
        p = sub.add_parser(name, help=what)
        p.add_argument("paths", nargs="*", default=["policies"], metavar="PATH",
                       help="files or directories (default: policies/)" + ("; or one saved plan file (plan.json) "
                                                                          "made by 'toolkit plan --out'" if name == "apply" else ""))
        p.add_argument("--target", metavar="NAME", help="the target (instance) to read and change" + (
            " (with a saved plan: taken from it; if given, it must match)" if name == "apply" else " (required)"))
        p.add_argument("--output", choices=("text", "json", "markdown", "github"), default="text",
                       help="github: GitHub Actions annotations for each change and finding, then the text plan")
        p.add_argument("--no-publish", action="store_true", help="leave the published policy record alone")
        p.add_argument("--remove-undeclared-access", action="store_true",
                       help="delete Entra ID access policy assignments the policy does not declare (their principals "
                            "lose data-plane access); without it they are only shown")
        if name == "plan":
            p.add_argument("--detailed-exitcode", action="store_true", help="exit 2 when changes are pending")
            p.add_argument("--out", metavar="FILE", help="also write the plan to FILE (JSON) for 'toolkit apply FILE', "
                                                         "which applies exactly it or refuses if anything moved")
        p.set_defaults(func=_cmd_provision)

    p = sub.add_parser("diff", help="compare two versions of the policy: the changes that break live keys or running "
                                    "applications (exit 3), before they merge")
    p.add_argument("sides", nargs="*", metavar="SIDE",
                   help="OLD [NEW]: each a policy directory or file, or git:REF (the same paths at a git revision, "
                        "e.g. git:origin/main) or git:REF:PATH; NEW defaults to policies/")
    p.add_argument("--against-target", metavar="NAME",
                   help="OLD is the policy toolkit apply published on target NAME (declared in NEW)")
    p.add_argument("--output", choices=("text", "json", "markdown", "github", "junit"), default="text",
                   help="junit: JUnit XML on stdout, a test case per finding (breaking: failure, allowed: skipped)")
    p.add_argument("--allow", action="append", default=[], metavar="CODE[,CODE]",
                   help="accept these codes (a planned migration): still shown, but they do not make the exit code 3")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("audit", help="scan a live keyspace for keys that break the policy; --fix-ttl gives missing TTLs")
    p.add_argument("paths", nargs="*", default=["policies"], metavar="PATH", help="files or directories (default: policies/)")
    p.add_argument("--target", metavar="NAME", help="the target (instance) to scan (may be left out when only one is declared)")
    p.add_argument("--output", choices=("text", "json", "junit"), default="text",
                   help="junit: JUnit XML on stdout, a test case per namespace, unknown keys and leftover group")
    p.add_argument("--match", metavar="GLOB", help="only keys matching this SCAN pattern")
    p.add_argument("--sample-memory", type=_count, default=10, metavar="N",
                   help="MEMORY USAGE of N sampled keys per namespace, extrapolated (default 10, 0: off)")
    p.add_argument("--fix-ttl", action="store_true", help="set missing TTLs (PEXPIRE NX) and clamp TTLs above the tier "
                                                          "max (PEXPIRE LT); never deletes or rewrites a value")
    p.add_argument("--dry-run", action="store_true", help="with --fix-ttl: show the changes without writing")
    p.set_defaults(func=_cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except PolicyError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
            if getattr(args, "output", None) == "github":
                print(annotation("error", f"{issue.path}: {issue.message}" if issue.path else issue.message,
                                 title=f"toolkit {args.command}", where=(issue.file, issue.line, issue.col)))
        if getattr(args, "output", None) == "junit" and exc.issues:  # the report file says why there is no result
            first = exc.issues[0]
            sys.stdout.write(error_document(
                f"toolkit {args.command}", f"toolkit.{args.command}", f"invalid policy: {_mistakes(len(exc.issues))}, "
                f"first {first}", "\n".join(str(i) for i in exc.issues), type="PolicyError", file=first.file, line=first.line))
        return EXIT_ERROR
    except ToolkitError as exc:
        print(f"toolkit {args.command}: error: {exc}", file=sys.stderr)
        if getattr(args, "output", None) == "github":
            print(annotation("error", str(exc), title=f"toolkit {args.command}"))
        if getattr(args, "output", None) == "junit":
            sys.stdout.write(error_document(f"toolkit {args.command}", f"toolkit.{args.command}", " ".join(str(exc).split()),
                                            str(exc), type=type(exc).__name__))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"toolkit {args.command}: interrupted", file=sys.stderr)
        if getattr(args, "output", None) == "junit":
            sys.stdout.write(error_document(f"toolkit {args.command}", f"toolkit.{args.command}", "interrupted"))
        return 130
    except Exception as exc:
        if getattr(args, "output", None) != "junit":
            raise
        message = f"internal error (please report it): {type(exc).__name__}: {' '.join(str(exc).split())}"
        print(f"toolkit {args.command}: error: {message}", file=sys.stderr)  # a bug still ends in a report file
        sys.stdout.write(error_document(f"toolkit {args.command}", f"toolkit.{args.command}", message, type=type(exc).__name__))
        return EXIT_ERROR


def _mistakes(n: int) -> str:
    return f"{n} mistake{'' if n == 1 else 's'}"


if __name__ == "__main__":
    sys.exit(main())
