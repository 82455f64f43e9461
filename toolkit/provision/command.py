"""``toolkit plan`` and ``toolkit apply``: what the CLI calls once it has parsed the arguments.

Exit codes: 0 success or no changes; 1 error, blocked change or error finding, a stale saved plan;
2 changes pending (``plan --detailed-exitcode`` only). Progress goes to stderr, the document to stdout, so
``toolkit plan --output json > plan.json`` stays valid JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from toolkit.policy.loader import load
from toolkit.policy.secrets import Redactor
from toolkit.provision import saved as saved_plans
from toolkit.provision.apply import REFUSED, apply_plan, open_backend, read_live
from toolkit.provision.plan import compute_plan
from toolkit.provision.render import render, text_outcome

EXIT_OK, EXIT_ERROR, EXIT_PENDING = 0, 1, 2


def run(command: str, paths: Iterable[str], target_name: str | None, *, output: str = "text",
        detailed_exitcode: bool = False, publish: bool = True, prune: bool = False, out_file: str | None = None,
        saved_plan: str | None = None, credential: Any = None, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> int:
    """Load the policy, read the target, plan, and for ``apply`` execute; return the exit code.

    ``out_file`` (plan): also write a saved plan there. ``saved_plan`` (apply): apply that file's plan,
    with its policy paths, target and options, or refuse when anything it was made from moved.
    """
    out, err = stdout or sys.stdout, stderr or sys.stderr

    def progress(message: str) -> None:
        print(f"toolkit {command}: {message}", file=err, flush=True)

    saved = saved_plans.read(saved_plan) if saved_plan else None
    if saved is not None:
        if target_name is not None and target_name != saved.target:
            raise saved_plans.StalePlan(f"the saved plan {saved.file} is for target {saved.target}, not {target_name}")
        paths, target_name, publish, prune = saved.paths, saved.target, saved.publish, saved.prune
        progress(f"applying the saved plan {saved.file} (target {saved.target})")
    policy = load(list(paths))
    target = policy.target(target_name)
    if saved is not None:
        saved_plans.check_source(saved, policy, target)
    # The backends redact what they say; this catches what slips past them (redis-py, Azure SDK).
    with Redactor(target).scrubbing():
        backend = open_backend(target, credential=credential)
        try:
            progress(f"reading target {target.name} ({target.provider})")
            plan = compute_plan(policy, target, read_live(backend, target, publish=publish), publish=publish, prune=prune)
            if saved is not None:
                saved_plans.check_live(saved, plan)
            if command == "plan":
                out.write(render(plan, output, policy=policy))
                if plan.refused:
                    if out_file:
                        progress(f"no saved plan written to {out_file}: apply would refuse this plan")
                    return EXIT_ERROR
                if out_file:
                    saved_plans.save(plan, policy, list(paths), out_file, publish=publish, prune=prune)
                    progress(f"saved the plan to {out_file}; apply exactly this plan with: toolkit apply {out_file}")
                return EXIT_PENDING if detailed_exitcode and plan.pending else EXIT_OK
            if output == "text":
                out.write(render(plan, "text"))
                out.flush()
            outcome = apply_plan(plan, backend, policy, publish=publish, progress=progress)
            out.write(text_outcome(outcome) if output == "text" else render(plan, output, outcome, policy=policy))
            return EXIT_ERROR if outcome.status == REFUSED else EXIT_OK
        finally:
            backend.close()
