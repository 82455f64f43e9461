"""A circuit breaker around Redis: after N consecutive connection failures, stop waiting on timeouts.

While open, calls fail at once (fail-open namespaces then behave as a miss). After the
cool-down one caller is let through as a probe; its success closes the breaker.
"""

from __future__ import annotations

import threading
import time


class CircuitBreaker:
    def __init__(self, threshold: int = 3, cooldown_s: float = 1.0):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self._opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        """May a call go to Redis now? (Hot path: one attribute read while closed.)"""
        if self._opened_at is None:
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or time.monotonic() - self._opened_at < self.cooldown_s:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        if self._failures or self._opened_at is not None:
            with self._lock:
                self._failures = 0
                self._opened_at = None
                self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                self._opened_at = time.monotonic()
                self._probing = False
