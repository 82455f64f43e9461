"""``with engine.pipeline() as p:``: operations of any namespaces, one round trip, decoded results."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolkit.errors import PipelineError
from toolkit.runtime._handles import Handle, handle_for
from toolkit.runtime._ops import Op

if TYPE_CHECKING:
    from toolkit.runtime._engine import Engine


class Pipeline:
    """Queues Ops from handles (same methods as ``engine.namespace``) until ``execute``.

    Leaving the ``with`` block executes what is still queued; the decoded results are in
    ``results`` (and returned by ``execute``). A command that fails on a fail-open namespace
    gets its fallback (a miss, a dropped write) like an immediate call; one that fails on a
    fail-closed namespace leaves its exception in its place and ``PipelineError`` is raised
    once every reply was read. ``transaction=True`` wraps the batch in
    MULTI/EXEC (standalone Redis; on a cluster every key must share one slot).
    """

    def __init__(self, engine: "Engine", *, transaction: bool = False):
        self._engine = engine
        self._transaction = transaction
        self._ops: list[Op] = []
        self._handles: dict[str, Handle] = {}
        self.results: list[Any] = []

    def namespace(self, name: str) -> Handle:
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = handle_for(self._engine.policy.namespace(name), self, self._engine)
        return handle

    def run(self, op: Op) -> None:
        """Queue (the Runner protocol): handles call this instead of sending."""
        self._ops.append(op)

    def __len__(self) -> int:
        return len(self._ops)

    def execute(self) -> list[Any]:
        """Send what is queued; PipelineError (with every result in order) when some commands failed."""
        ops, self._ops = self._ops, []
        try:
            self.results = self._engine._send_batch(ops, self._transaction, keep_results=True)
        except PipelineError as exc:
            self.results = exc.results
            raise
        return self.results

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and self._ops:
            self.execute()
