"""redis-policy-toolkit: govern Redis usage as code.

``toolkit.load`` reads a policy set; ``toolkit.connect`` gives an engine whose every read and
write goes through it. Importing this package loads neither redis-py's cluster code nor the
Azure SDK: they are imported by the code that needs them, when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from toolkit.errors import (  # noqa: E402
    CacheUnavailable,
    ConfigurationError,
    DataViolation,
    PipelineError,
    PolicyError,
    PolicyIssue,
    PolicyMismatch,
    PolicyViolation,
    ToolkitError,
)
from toolkit.policy import PolicySet, load  # noqa: E402

if TYPE_CHECKING:
    from toolkit.runtime import Engine

__all__ = [
    "CacheUnavailable", "ConfigurationError", "DataViolation", "Engine", "PipelineError", "PolicyError", "PolicyIssue",
    "PolicyMismatch", "PolicySet", "PolicyViolation", "ToolkitError", "__version__", "connect", "load",
]


def connect(policies: Any, target: str | None = None, *, client: Any = None, verify: bool = False) -> Engine:
    """Build an Engine enforcing ``policies`` (a PolicySet or a path) on ``target``, or on a caller's ``client``."""
    from toolkit.runtime import connect as _connect

    return _connect(policies, target, client=client, verify=verify)


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from toolkit.runtime import Engine

        return Engine
    raise AttributeError(f"module 'toolkit' has no attribute {name!r}")
