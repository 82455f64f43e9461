"""The toolkit's public exceptions, importable without pulling in Redis or Azure."""

from __future__ import annotations

from dataclasses import dataclass


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


class ToolkitError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class PolicyError(ToolkitError):
    """A policy set could not be loaded; ``issues`` lists every mistake found, not just the first."""

    def __init__(self, issues: list[PolicyIssue]):
        self.issues = sorted(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class PolicyViolation(ToolkitError):
    """A call would break the policy (wrong type, bad parameter, TTL outside its tier): nothing was sent."""


class CacheUnavailable(ToolkitError):
    """Redis could not be reached for a ``fail-closed`` namespace (or the circuit breaker is open)."""


class ConfigurationError(ToolkitError):
    """A target cannot be used as written here: missing environment variable, unreadable CA file..."""
