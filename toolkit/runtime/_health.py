"""What ``engine.health()`` reports, and the ``toolkit`` logger's lines about failures. No I/O here.

Log lines name the target, the namespace and the failure's reason, never a value, a key's
content or a secret. A failure that repeats is logged once, then summed up at most every
``LOG_EVERY_S`` seconds, so a full or unreachable Redis cannot flood the application's logs.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from toolkit.runtime._failures import AUTH, TABLE

LOG = logging.getLogger("toolkit")
LOG_EVERY_S = 10.0


class Health:
    def __init__(self, target: str | None):
        self.target = target
        self._last_error: tuple[str, str, float] | None = None
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str], list[float]] = {}  # [count, when]
        """(what, namespace, reason) -> [count not yet logged, when it was last logged]."""

    @property
    def _where(self) -> str:
        return f"target {self.target!r}" if self.target else "redis"

    def failed(self, namespace: str, reason: str, message: str, *, dropped: bool) -> None:
        """Record a failure that reached a caller's namespace, and log it unless it was logged just now."""
        now = time.monotonic()
        self._last_error = (reason, message, now)
        what = "write dropped" if dropped else "call failed"
        level = logging.ERROR if reason == AUTH else logging.WARNING
        self._log(level, (what, namespace, reason), now, lambda n: f"{self._where}: namespace {namespace!r}: "
                  f"{n} {what if n == 1 else what.replace('write', 'writes').replace('call', 'calls')}: {message}")

    def breaker_opened(self, message: str) -> None:
        LOG.warning("%s: circuit breaker open after repeated connection failures (%s); calls fail at once "
                    "until a probe succeeds", self._where, message)

    def breaker_closed(self) -> None:
        LOG.info("%s: circuit breaker closed: Redis answers again", self._where)

    def _log(self, level: int, slot: tuple[str, str, str], now: float, text: Any) -> None:
        with self._lock:
            pending = self._pending.get(slot)
            if pending is None:
                self._pending[slot] = [0.0, now]
                count = 1
            elif now - pending[1] >= LOG_EVERY_S:
                count = int(pending[0]) + 1
                pending[0], pending[1] = 0, now
            else:
                pending[0] += 1
                return
        LOG.log(level, "%s", text(count))

    def snapshot(self, breaker: str, last_ok: float | None) -> dict[str, Any]:
        """Plain data: the breaker's state, the last error (reason, message, when) and the last success."""
        offset = time.time() - time.monotonic()
        error = self._last_error
        healthy = breaker == "closed" and (error is None or (last_ok is not None and last_ok > error[2]))
        return {
            "target": self.target,
            "status": "ok" if healthy else ("down" if breaker != "closed" else "degraded"),
            "breaker": breaker,
            "last_error": None if error is None else {
                "reason": error[0], "message": error[1], "at": round(error[2] + offset, 3),
                "meaning": TABLE[error[0]].meaning},
            "last_success_at": None if last_ok is None else round(last_ok + offset, 3),
        }
