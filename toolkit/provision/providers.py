"""The providers: each one module that owns its rules (what changes in place, what is blocked and
why, what the instance defaults to) and its backend (how to read and write, how errors read).

Terraform's split: providers decide, the core (``plan``) only compares and renders. A new provider
is one module exposing ``PROVIDER`` plus one line in ``_MODULES``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from toolkit.errors import ConfigurationError
from toolkit.policy.model import InstancePolicy, Target
from toolkit.provision.changes import Change, Finding
from toolkit.provision.state import LiveState

_MODULES = {"azure-managed-redis": "toolkit.provision.azure", "redis": "toolkit.provision.plain"}


class Backend(Protocol):
    """The I/O half of a provider, bound to one target."""

    def read(self) -> LiveState: ...

    def apply(self, live: LiveState, changes: Sequence[Change], progress: Callable[[str], None]) -> list[str]:
        """Make ``changes`` (computed against ``live``); return notes for the user."""

    @property
    def data_client(self) -> Any: ...

    def close(self) -> None: ...


class Provider(Protocol):
    """The rules half of a provider: no I/O, no SDK import."""

    name: str

    def changes(self, target: Target, live: LiveState, *, prune: bool) -> Iterable[Change]:
        """Every difference between ``target.instance`` and ``live``, classified (``prune``: undeclared
        sub-resources such as access policy assignments are planned for deletion, not only shown)."""

    def effective(self, target: Target, live: LiveState) -> InstancePolicy:
        """The instance once applied: declared values win, then live ones, then the provider's defaults."""

    def findings(self, target: Target, live: LiveState, effective: InstancePolicy, *, prune: bool = False) -> Iterable[Finding]:
        """Cross-checks only this provider knows (the core adds the namespace ones); ``prune`` as for ``changes``."""

    def backend(self, target: Target, **options: Any) -> Backend: ...


def provider(name: str) -> Provider:
    """The provider for a target's ``provider`` name; a name without one (azure-cache-for-redis) is a ConfigurationError."""
    module = _MODULES.get(name)
    if module is None:
        raise ConfigurationError(f"plan and apply manage {' and '.join(_MODULES)} targets; {name} settings are managed "
                                 f"in the Azure portal or with azure-mgmt-redis")
    found: Provider = importlib.import_module(module).PROVIDER
    return found
