"""``with engine.pipeline() as p:`` (``async with`` on the asyncio engine): operations of any
namespaces, one round trip, decoded results. One class for both engines: ``execute`` is a flow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from toolkit.errors import PipelineError
from toolkit.runtime._flows import Batch, Flow
from toolkit.runtime._handles import Handle, handle_for
from toolkit.runtime._ops import Op

if TYPE_CHECKING:
    from toolkit.runtime._core import EngineCore
    from toolkit.runtime._typing import AnyHandle


class Pipeline:
    """Queues Ops from handles (same methods as ``engine.namespace``) until ``execute``.

    Leaving the ``with`` block executes what is still queued; the decoded results are in
    ``results`` (and returned by ``execute``). A command that fails on a fail-open namespace
    gets its fallback (a miss, a dropped write) like an immediate call; one that fails on a
    fail-closed namespace leaves its exception in its place and ``PipelineError`` is raised
    once every reply was read. ``transaction=True`` wraps the batch in
    MULTI/EXEC (standalone Redis; on a cluster every key must share one slot).
    """

    queues = True
    """Handles taken from a pipeline queue their Ops: multi-step calls (get_or_load, mget) are refused there."""

    def __init__(self, engine: EngineCore, *, transaction: bool = False):
        self._engine = engine
        self._transaction = transaction
        self._ops: list[Op] = []
        self.run = self._ops.append
        """Queue an Op (the Runner protocol: handles call it instead of sending): the list's own append, no frame."""
        self._handles: dict[str, Handle] = {}
        self.results: list[Any] = []

    def namespace(self, name: str) -> AnyHandle:
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = handle_for(self._engine.policy.namespace(name), self, self._engine)
        return cast("AnyHandle", handle)

    def __len__(self) -> int:
        return len(self._ops)

    def execute(self) -> Any:
        """Send what is queued; PipelineError (with every result in order) when some commands failed.

        The list of results on the sync engine; an awaitable of it on the asyncio engine.
        """
        return self._engine._drive(self._execute())

    def _execute(self) -> Flow:
        ops = self._ops[:]
        self._ops.clear()  # the same list: ``run`` is its append
        try:
            self.results = yield Batch(ops, self._transaction, keep_results=True)
        except PipelineError as exc:
            self.results = exc.results
            raise
        return self.results

    def __enter__(self) -> Pipeline:
        if self._engine._is_async:
            raise TypeError("a pipeline of the asyncio engine is entered with 'async with'")
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and self._ops:
            self.execute()

    async def __aenter__(self) -> Pipeline:
        if not self._engine._is_async:
            raise TypeError("a pipeline of the sync engine is entered with 'with'")
        return self

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and self._ops:
            await self.execute()
