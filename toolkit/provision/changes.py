"""What a plan is made of: one ``Change`` per difference and one ``Finding`` per cross-check.

The bottom layer of the provisioner: providers build these from their own rules, the plan
collects them, the renderers print them. Nothing here knows a provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from toolkit.policy.model import InstancePolicy, Module, Persistence

UPDATE, CREATE, DELETE, BLOCKED = "update", "create", "delete", "blocked"
ERROR, WARNING = "error", "warning"
ACTIONS = (UPDATE, CREATE, DELETE, BLOCKED)


@dataclass(frozen=True)
class Change:
    """One difference. ``before``/``after`` are JSON-ready values (see ``state.to_json``)."""

    resource: str
    """``cluster``, ``database`` or ``access_policy_assignment`` (Azure), ``server`` (plain Redis), ``policy``."""
    setting: str
    """The instance setting (``""`` for a whole resource to create or delete; the assignment name for assignments)."""
    action: str
    before: object = None
    after: object = None
    reason: str = ""
    """For ``blocked``: why it cannot be done in place."""
    remedy: str = ""
    """For ``blocked``: what the user must do instead."""
    note: str = ""
    """For ``update``/``create``/``delete``: side effects worth knowing before applying."""
    data_loss: bool = False
    """True when the only way to reach the declared value loses the data (re-creating the resource)."""
    path: tuple[str | int, ...] = ()
    """Where the policy declares it (``("targets", NAME, "instance", ...)``); () derives it from ``setting``."""

    def as_dict(self) -> dict[str, object]:
        return {"action": self.action, "resource": self.resource, "setting": self.setting, "before": self.before,
                "after": self.after, "reason": self.reason or None, "remedy": self.remedy or None,
                "note": self.note or None, "data_loss": self.data_loss}


@dataclass(frozen=True)
class Finding:
    """A cross-check between the instance and the namespaces; an ``error`` blocks apply like a blocked change."""

    severity: str
    code: str
    message: str
    path: tuple[str | int, ...] = ()
    """Where in the policy documents the finding points (e.g. ``("namespaces", "sessions")``); () is the target."""

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "message": self.message}


def declared_items(declared: InstancePolicy, names: tuple[str, ...]) -> Iterator[tuple[str, object]]:
    """The settings of ``names`` the policy manages (declared, and not ``clustering_policy: auto``)."""
    for name in names:
        value = getattr(declared, name)
        if value is not None and not (name == "clustering_policy" and value == "auto"):
            yield name, value


def same(name: str, want: object, have: object) -> bool:
    """Whether the live value satisfies the declared one (module args count only where declared)."""
    if name == "modules":
        assert isinstance(want, tuple) and (have is None or isinstance(have, tuple))
        have_by_name = {m.name: m.args for m in have or ()}
        want_mods: tuple[Module, ...] = want
        return set(have_by_name) == {m.name for m in want_mods} and all(
            not m.args or m.args == have_by_name[m.name] for m in want_mods)
    return want == have


def persistence_note(want: object) -> str:
    if isinstance(want, Persistence) and want.aof is None and want.rdb is None:
        return "data will no longer survive a restart"
    return ""
