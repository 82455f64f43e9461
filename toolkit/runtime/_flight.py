"""Single-flight: concurrent callers of one key in this process share one call.

The two kinds of concurrency need two mechanisms (threads wait on an Event; tasks await a
shielded Task), behind one signature: ``do(key, start, wait=True, since=None)``, where
``start()`` runs the flow and ``wait=False`` gives ``BUSY`` at once when a call for the key is
already running. Both remember when each key's last call finished (``Recent``): a caller that
read the cache before that moment gets its value instead of loading a second time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from toolkit.runtime._flows import BUSY


class Recent:
    """Each key's last successful result and when it finished, for ``KEEP_S`` seconds at most.

    The race it closes lasts from a caller's cache read to its entering the flight: a round trip
    and some scheduling. Keeping results longer would only hold loaded values in memory for nothing.
    """

    KEEP_S = 1.0
    LIMIT = 4096

    def __init__(self) -> None:
        self._done: dict[str, tuple[float, Any]] = {}

    def since(self, key: str, since: float | None) -> tuple[bool, Any]:
        """(True, value) when a call of ``key`` finished after ``since``."""
        if since is None:
            return False, None
        done = self._done.get(key)
        return (True, done[1]) if done is not None and done[0] > since else (False, None)

    def record(self, key: str, value: Any) -> None:
        now = time.monotonic()
        done = self._done
        done.pop(key, None)
        done[key] = (now, value)
        while done:  # oldest first: drop what is too old to matter, and past LIMIT entries
            oldest = next(iter(done))
            if len(done) <= self.LIMIT and now - done[oldest][0] <= self.KEEP_S:
                break
            del done[oldest]


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class SingleFlight:
    """Threads: the first caller of a key runs ``start``, the others wait for its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._recent = Recent()

    def do(self, key: str, start: Callable[[], Any], *, wait: bool = True, since: float | None = None) -> Any:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                done, value = self._recent.since(key, since)
                if done:
                    return value
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            if not wait:
                return BUSY
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            flight.value = start()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
                if flight.error is None:
                    self._recent.record(key, flight.value)
            flight.done.set()
        return flight.value


class AsyncSingleFlight:
    """Tasks: the first caller of a key starts a Task running ``start()``; every caller awaits it shielded.

    A cancelled caller stops waiting but never cancels the shared Task, so the others still get
    the value and the flow still releases its Redis lock and stores what it loaded.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Future[Any]] = {}
        self._recent = Recent()

    async def do(self, key: str, start: Callable[[], Awaitable[Any]], *, wait: bool = True,
                 since: float | None = None) -> Any:
        task = self._tasks.get(key)
        if task is not None and task.get_loop() is not asyncio.get_running_loop():
            task = None  # left by another event loop (an engine shared across loops): not ours to await
        if task is None:
            done, value = self._recent.since(key, since)
            if done:
                return value
            task = asyncio.ensure_future(start())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        elif not wait:
            return BUSY
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Future[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is None:  # retrieved: no "never retrieved" warning
            self._recent.record(key, task.result())
