"""A circuit breaker around Redis: after N consecutive connection failures, stop waiting on timeouts.

While open, calls fail at once (fail-open namespaces then behave as a miss). After the
cool-down one caller is let through as a probe; its success closes the breaker. A probe
that never reports back (its call raised something else, its thread died) holds the probe
slot for one cool-down only, so the breaker can never stay open for good.
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
        self._probe_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        opened_at = self._opened_at  # read once: another thread may close the breaker meanwhile
        if opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - opened_at >= self.cooldown_s else "open"

    def allow(self) -> bool:
        """May a call go to Redis now? (Hot path: one attribute read while closed.)"""
        if self._opened_at is None:
            return True
        with self._lock:
            if self._opened_at is None:
                return True
            now = time.monotonic()
            if now - self._opened_at < self.cooldown_s:
                return False
            if self._probe_at is not None and now - self._probe_at < self.cooldown_s:
                return False  # a probe is out
            self._probe_at = now
            return True

    def success(self) -> bool:
        """Reset; True when this closed an open breaker (the engine logs the transition)."""
        if self._failures or self._opened_at is not None:
            with self._lock:
                was_open = self._opened_at is not None
                self._failures = 0
                self._opened_at = None
                self._probe_at = None
                return was_open
        return False

    def failure(self) -> bool:
        """Count a connection failure; True when this opened a closed breaker."""
        with self._lock:
            was_open = self._opened_at is not None
            self._failures += 1
            if self._probe_at is not None or self._failures >= self.threshold:
                self._opened_at = time.monotonic()
                self._probe_at = None
            return not was_open and self._opened_at is not None
