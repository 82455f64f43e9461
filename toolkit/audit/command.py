"""``toolkit audit``: what the CLI calls once it has parsed the arguments.

Exit codes: 0 compliant (after ``--fix-ttl``: nothing left to fix by hand), 1 could not run
(policy error, connection, command refused), 3 violations found. The report goes to stdout;
progress goes to stderr, and only when stderr is a terminal, so pipelines get clean output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TextIO

from toolkit.audit import AuditError, fix_ttl, run_audit
from toolkit.audit._render import render
from toolkit.policy.loader import load

EXIT_OK, EXIT_VIOLATIONS = 0, 3


class TerminalProgress:
    """Keys scanned, rate and elapsed time on one rewritten stderr line, at most five times a second."""

    def __init__(self, stream: TextIO, interval_s: float = 0.2):
        self._stream = stream
        self._interval = interval_s
        self._next = 0.0
        self._shown = False

    def __call__(self, scanned: int, elapsed_s: float) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        rate = scanned / elapsed_s if elapsed_s > 0 else 0.0
        minutes, seconds = divmod(int(elapsed_s), 60)
        self._stream.write(f"\r\x1b[2Kaudit: {scanned:,} keys scanned, {rate:,.0f} keys/s, {minutes}:{seconds:02d} elapsed")
        self._stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()


def run(paths: Iterable[str], target_name: str | None, *, output: str = "text", match: str | None = None,
        sample_memory: int = 0, fix: bool = False, dry_run: bool = False,
        stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Load the policy, connect to the target, walk its keyspace (fixing TTLs if asked), print the report."""
    from redis.exceptions import RedisError

    from toolkit.policy.secrets import Redactor
    from toolkit.runtime import build_client, close_client

    out, err = stdout or sys.stdout, stderr or sys.stderr
    policy = load(list(paths))
    target = policy.target(target_name)
    progress = TerminalProgress(err) if err.isatty() else None
    redact = Redactor(target)  # messages show the target's ${VAR} references, never their values
    try:
        with redact.scrubbing():
            client = build_client(target)
    except RedisError as exc:  # a cluster client connects at once
        raise AuditError(redact(f"target {target.name}: {type(exc).__name__}: {exc}")) from redact.exception(exc)
    try:
        if fix:
            report = fix_ttl(policy, client, target=target.name, match=match, sample_memory=sample_memory,
                             dry_run=dry_run, progress=progress)
        else:
            report = run_audit(policy, client, target=target.name, match=match, sample_memory=sample_memory,
                               progress=progress)
    finally:
        if progress is not None:
            progress.finish()
        close_client(client)
    out.write(render(report, output, policy))
    return EXIT_OK if report.compliant else EXIT_VIOLATIONS
