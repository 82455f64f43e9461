"""Multi-step flows as generators: the policy decides each step, a driver performs it.

A flow (cache-aside, locks, invalidation, mset, verify) yields *requests* and receives their
results (or has their exception thrown in at the yield); it never does I/O itself. The sync
engine performs requests with blocking calls, the asyncio engine awaits them: one flow, two
drivers, as httpx's ``Auth.auth_flow`` is driven by ``sync_auth_flow`` and ``async_auth_flow``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

from toolkit.runtime._ops import Op

Flow = Generator[Any, Any, Any]


class Send(NamedTuple):
    """Send one Op through the failure table (the engine's ``run``); result: its decoded reply or fallback.

    ``raw=True``: send it once as it is; result: the raw reply, redis-py's errors thrown in.
    """

    op: Op
    raw: bool = False


class Batch(NamedTuple):
    """Send Ops in one round trip (the engine's ``_send_batch``); result: the list of replies."""

    ops: list[Op]
    transaction: bool = False
    keep_results: bool = False


class Call(NamedTuple):
    """Call a client method outside any namespace (invalidation, verify); redis-py's errors are thrown in."""

    method: str
    args: tuple = ()


class Scan(NamedTuple):
    """Start a SCAN over every primary; result: a cursor object for ``ScanNext``."""

    pattern: str
    page: int
    """SCAN's COUNT: keys the server looks at per step."""


class ScanNext(NamedTuple):
    """Up to ``size`` more keys of a scan; result: a list, empty when the scan is done."""

    cursor: Any
    size: int


class Exec(NamedTuple):
    """Send these commands in one round trip (MULTI/EXEC with ``transaction``); result: their replies, in
    order, an error reply as its ResponseError in place. A broken round trip raises."""

    commands: list[tuple]
    transaction: bool


class Sleep(NamedTuple):
    seconds: float


class Load(NamedTuple):
    """Call the user's loader; result: its value (awaited when it returns an awaitable)."""

    loader: Callable[[], Any]


class Flight(NamedTuple):
    """Run ``flow`` once for concurrent callers of ``key`` in this process; ``wait=False``: BUSY when one runs.

    ``since``: when the caller read the cache (``time.monotonic()``); a flight of the key that
    finished after that already has the value the caller missed, so it is returned, not loaded again.
    """

    key: str
    flow: Flow
    wait: bool = True
    since: float | None = None


BUSY = object()
"""What a ``Flight(wait=False)`` gets when another caller already runs the flow of that key."""


class Steps:
    """A flow being driven, as an iterator of its requests: the drivers' shared bookkeeping.

    ``for request in steps: perform it, then steps.reply = (result, None) or (None, error)``;
    once the flow returns, ``steps.value`` is its return value. An error is thrown into the
    flow at its ``yield``, so the flow's own ``try``/``finally`` (a lock release) runs.
    """

    __slots__ = ("flow", "reply", "value")

    def __init__(self, flow: Flow):
        self.flow = flow
        self.reply: tuple[Any, BaseException | None] = (None, None)
        self.value: Any = None

    def __iter__(self) -> Steps:
        return self

    def __next__(self) -> Any:
        value, error = self.reply
        try:
            return self.flow.throw(error) if error is not None else self.flow.send(value)
        except StopIteration as done:
            self.value = done.value
            raise StopIteration from None

