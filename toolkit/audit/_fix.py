"""``--fix-ttl``: give keys their namespace's TTL, with writes that can never lengthen or remove one.

A key without TTL gets ``PEXPIRE key ttl+jitter NX`` (only if it still has none), a TTL
above the tier maximum gets ``PEXPIRE key ttl+jitter LT`` (only if that shortens it). The
value is what a fresh write through the engine would set, jitter included, so keys fixed
together do not all expire in the same second. Values are never read, rewritten or deleted.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from toolkit.audit._model import Change, FixReport, NamespaceFix
from toolkit.audit._tally import EXAMPLES, Candidate, display


class Fixer:
    """Sends the TTL writes for each page's candidates and counts what the server accepted."""

    def __init__(self, router: Any, dry_run: bool, rng: random.Random | None = None):
        self._router = router
        self.dry_run = dry_run
        self._rng = rng or random.Random()
        self._counts: dict[str, list[int]] = {}
        self._examples: dict[str, list[Change]] = {}

    def apply(self, candidates: Sequence[Candidate]) -> None:
        if not candidates:
            return
        ttls = [c.namespace.ttl_ms + self._rng.randint(0, c.namespace.max_jitter_ms) for c in candidates]  # type: ignore[operator]
        if self.dry_run:
            accepted: list[Any] = [False] * len(candidates)
        else:
            pipe = self._router.pipeline(transaction=False)
            for c, ttl in zip(candidates, ttls):
                pipe.pexpire(c.key, ttl, nx=c.before_ms is None, lt=c.before_ms is not None)
            accepted = pipe.execute()
        for c, ttl, ok in zip(candidates, ttls, accepted):
            counts = self._counts.setdefault(c.namespace.name, [0, 0, 0])
            if self.dry_run or ok:
                counts[0 if c.before_ms is None else 1] += 1
            else:
                counts[2] += 1
            examples = self._examples.setdefault(c.namespace.name, [])
            if len(examples) < EXAMPLES:
                examples.append(Change(display(c.key), c.before_ms, ttl, bool(ok)))

    def report(self) -> FixReport:
        return FixReport(self.dry_run, tuple(
            NamespaceFix(name, set_, clamped, declined, tuple(self._examples[name]))
            for name, (set_, clamped, declined) in sorted(self._counts.items())))
