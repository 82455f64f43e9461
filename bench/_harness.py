"""Measuring: interleaved rounds, medians, ratios and the targets they are checked against.

Every workload compares the engine with its baselines in the same process, against the same
server. The variants alternate in short blocks (and rotate their order) so that drift of a busy
machine hits all of them alike; medians of rounds, not means, so that one stalled round does
not decide.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class Sample(NamedTuple):
    """Seconds one block took: on the wall clock, and of this process's CPU (client-side work).

    On a busy machine the wall time of a round trip swings with the scheduler; the client's CPU
    time does not, so it shows the policy layer's own cost even when the wall clock is noisy.
    """

    wall: float
    cpu: float


Block = Callable[[], Sample]
"""One block of a variant: runs its operations and returns what it measured."""


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The garbage collector off while timing (as timeit does), for every variant alike."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def timed(fn: Callable[[], Any]) -> Sample:
    """What ``fn`` takes."""
    with _gc_paused():
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return Sample(time.perf_counter() - wall, time.process_time() - cpu)


def timed_async(loop: asyncio.AbstractEventLoop, fn: Callable[[], Awaitable[Any]]) -> Sample:
    """What ``await fn()`` takes, timed inside ``loop`` (the loop's start-up is not measured)."""
    async def measured() -> Sample:
        with _gc_paused():
            wall, cpu = time.perf_counter(), time.process_time()
            await fn()
            return Sample(time.perf_counter() - wall, time.process_time() - cpu)

    return loop.run_until_complete(measured())


@dataclass(frozen=True)
class Variant:
    """One way of doing the workload's operations: the engine's, or a baseline's."""

    name: str
    label: str
    run: Block


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
    cpu: dict[str, list[float]] = field(default_factory=dict)
    """Client CPU seconds per round, for the variants measured in this process."""
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def median_s(self, variant: str) -> float:
        return statistics.median(self.rounds[variant])

    def per_op_us(self, variant: str) -> float:
        return self.median_s(variant) / self.ops * 1e6

    def ops_per_s(self, variant: str) -> float:
        return self.ops / self.median_s(variant)

    def cpu_per_op_us(self, variant: str) -> float | None:
        return statistics.median(self.cpu[variant]) / self.ops * 1e6 if variant in self.cpu else None

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
                "cpu_rounds_s": self.cpu.get(name), "cpu_per_op_us": self.cpu_per_op_us(name),
                "ratio_to_baseline": None if self.baseline is None else self.ratio(name, self.baseline),
            }
        return {"title": self.title, "ops_per_round": self.ops, "unit": self.unit, "baseline": self.baseline,
                "variants": variants, "checks": [c.as_json() for c in self.checks], "notes": self.notes,
                "extra": self.extra}


def measure(name: str, title: str, variants: list[Variant], *, ops: int, rounds: int, blocks: int = 1,
            unit: str = "op", baseline: str | None = None) -> Result:
    """Run ``rounds`` rounds of ``blocks`` blocks; ``Variant.run`` does one block of ``ops`` operations.

    Within a round the variants alternate block by block (who goes first rotates), so a busy
    spell of the machine lands on all of them alike; a round's time is the sum of its blocks.
    """
    walls: dict[str, list[float]] = {v.name: [] for v in variants}
    cpus: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(rounds):
        wall, cpu = dict.fromkeys(walls, 0.0), dict.fromkeys(walls, 0.0)
        for b in range(blocks):
            shift = (r * blocks + b) % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                sample = variant.run()
                wall[variant.name] += sample.wall
                cpu[variant.name] += sample.cpu
        for variant_name in walls:
            walls[variant_name].append(wall[variant_name])
            cpus[variant_name].append(cpu[variant_name])
    return Result(name, title, ops * blocks, unit, walls, {v.name: v.label for v in variants},
                  baseline=baseline or (variants[-1].name if len(variants) > 1 else None), cpu=cpus)
