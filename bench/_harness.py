"""Measuring: interleaved rounds, medians, ratios and the targets they are checked against.

Every workload compares the engine with its baselines in the same process, against the same
server. Rounds interleave the variants (and rotate their order) so that drift of a busy
machine hits all of them alike; medians, not means, so that one stalled round does not decide.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator

Round = Callable[[], float]
"""One round of a variant: runs its operations and returns the elapsed seconds it measured."""


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The garbage collector off while timing (as timeit does), for every variant alike."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn`` takes."""
    with _gc_paused():
        started = time.perf_counter()
        fn()
        return time.perf_counter() - started


def timed_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[Any]]) -> float:
    """Seconds ``await fn()`` takes, timed inside ``loop`` (the loop's start-up is not measured)."""
    async def measured() -> float:
        with _gc_paused():
            started = time.perf_counter()
            await fn()
            return time.perf_counter() - started

    return loop.run_until_complete(measured())


@dataclass(frozen=True)
class Variant:
    """One way of doing the workload's operations: the engine's, or a baseline's."""

    name: str
    label: str
    run: Round


@dataclass(frozen=True)
class Check:
    """A target: ``value op limit`` (e.g. engine/raw <= 1.05, keys/s >= 300,000)."""

    name: str
    value: float
    op: str
    limit: float
    unit: str

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "op": self.op, "limit": self.limit, "unit": self.unit,
                "pass": self.passed}


@dataclass
class Result:
    """What one workload measured: seconds per round of each variant, the checks, notes."""

    name: str
    title: str
    ops: int
    """Operations per round (per-op figures divide the round's time by this)."""
    unit: str
    rounds: dict[str, list[float]]
    labels: dict[str, str]
    baseline: str | None = None
    """The variant the others are compared with in the table ('x baseline' column)."""
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def median_s(self, variant: str) -> float:
        return statistics.median(self.rounds[variant])

    def per_op_us(self, variant: str) -> float:
        return self.median_s(variant) / self.ops * 1e6

    def ops_per_s(self, variant: str) -> float:
        return self.ops / self.median_s(variant)

    def ratio(self, variant: str, baseline: str) -> float:
        """Median time of ``variant`` over median time of ``baseline`` (< 1: faster)."""
        return self.median_s(variant) / self.median_s(baseline)

    def check_ratio(self, variant: str, baseline: str, limit: float, *, speedup: bool = False) -> None:
        """Target ``variant/baseline <= limit``, or with ``speedup`` ``baseline/variant >= limit``."""
        if speedup:
            self.checks.append(Check(f"{self.name}: {self.labels[baseline]} / {self.labels[variant]}",
                                     self.ratio(baseline, variant), ">=", limit, "x"))
        else:
            self.checks.append(Check(f"{self.name}: {self.labels[variant]} / {self.labels[baseline]}",
                                     self.ratio(variant, baseline), "<=", limit, "x"))

    def as_json(self) -> dict[str, Any]:
        variants = {}
        for name, seconds in self.rounds.items():
            variants[name] = {
                "label": self.labels[name], "rounds_s": seconds, "median_s": self.median_s(name),
                "per_op_us": self.per_op_us(name), "ops_per_s": self.ops_per_s(name),
                "ratio_to_baseline": None if self.baseline is None else self.ratio(name, self.baseline),
            }
        return {"title": self.title, "ops_per_round": self.ops, "unit": self.unit, "baseline": self.baseline,
                "variants": variants, "checks": [c.as_json() for c in self.checks], "notes": self.notes,
                "extra": self.extra}


def measure(name: str, title: str, variants: list[Variant], *, ops: int, rounds: int, unit: str = "op",
            baseline: str | None = None, setup: Callable[[], None] | None = None) -> Result:
    """Run every variant ``rounds`` times, interleaved, rotating which goes first; ``setup`` before each run."""
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(rounds):
        shift = r % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            if setup is not None:
                setup()
            times[variant.name].append(variant.run())
    return Result(name, title, ops, unit, times, {v.name: v.label for v in variants},
                  baseline=baseline or (variants[-1].name if len(variants) > 1 else None))
