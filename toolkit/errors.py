"""The toolkit's public exceptions, in one module importable without pulling in Redis or Azure.

::

    ToolkitError                 base of every error the toolkit raises on purpose
    ├── PolicyError              policy files could not be loaded (``issues``: every located mistake)
    ├── ConfigurationError       a target cannot be used as written (missing variable, bad CA file...)
    ├── PolicyViolation          the caller's mistake: a call the policy refuses; nothing was sent
    ├── DataViolation            what Redis holds breaks the policy (wrong type, undecodable value)
    ├── CacheUnavailable         Redis cannot serve a fail-closed call (``reason`` says why)
    ├── PipelineError            some commands of a pipeline failed (``results``, ``errors``)
    └── PolicyMismatch           ``verify``: the instance runs another policy than the local files
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class PolicyIssue:
    """One located mistake in a policy file: rendered as ``FILE:LINE:COL: PATH: message``."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "col": self.col, "path": self.path, "message": self.message}


def brief(value: object, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, for messages: a bad argument may be huge, or personal data."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ToolkitError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class PolicyError(ToolkitError):
    """A policy set could not be loaded; ``issues`` lists every mistake found, not just the first."""

    def __init__(self, issues: list[PolicyIssue]):
        self.issues = sorted(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class PolicyViolation(ToolkitError):
    """A call would break the policy (wrong type, bad parameter, TTL outside its tier): nothing was sent."""


class DataViolation(ToolkitError):
    """The key holds data its namespace cannot read: another Redis type, or bytes its codec cannot decode.

    Written by another client or an older policy; ``toolkit audit`` finds such keys. Fail-open
    reads count it (``data_errors``) and read a miss instead of raising.
    """

    def __init__(self, namespace: str, key: str, reason: str):
        self.namespace = namespace
        self.key = key
        self.reason = reason
        super().__init__(f"namespace {namespace!r}, key {key!r}: {reason}")


class CacheUnavailable(ToolkitError):
    """Redis cannot serve a ``fail-closed`` call; ``reason`` is one of the failure table's reasons.

    ``unreachable``, ``timeout``, ``breaker-open``, ``pool-exhausted``, ``auth``, ``oom``,
    ``readonly``, ``noperm``, ``busy``.
    """

    def __init__(self, message: str, reason: str = "unreachable"):
        self.reason = reason
        super().__init__(message)


class PipelineError(ToolkitError):
    """Some queued commands failed; the others' results are kept.

    ``results`` holds every position in order, with the exception object in place of each
    failed command; ``errors`` maps each failed position to its exception.
    """

    def __init__(self, results: list[Any], errors: dict[int, BaseException]):
        self.results = results
        self.errors = errors
        shown = "; ".join(f"#{i}: {type(e).__name__}: {e}" for i, e in list(errors.items())[:3])
        more = f"; and {len(errors) - 3} more" if len(errors) > 3 else ""
        super().__init__(f"{len(errors)} of {len(results)} pipelined commands failed ({shown}{more})")


class ConfigurationError(ToolkitError):
    """A target cannot be used as written here: missing environment variable, unreadable CA file..."""


class PolicyMismatch(ToolkitError):
    """``connect(..., verify=True)``: the instance runs under another policy than the local files."""
