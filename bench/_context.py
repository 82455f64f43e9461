"""What every workload shares: the server, one redis-py client, engines, sizes and the 1M-key keyspace."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

import toolkit

HERE = Path(__file__).resolve().parent
RUNTIME_POLICIES = HERE / "policies" / "runtime"
KEYSPACE_POLICIES = HERE / "policies" / "keyspace"
KEYSPACE_FIELDS = ("name", "email", "age", "profile", "prefs")
"""Five keys per user, as the keyspace policy declares them."""

# Writes user:<id>:<field> for ids ARGV[1] .. ARGV[2]-1, every field with its namespace's TTL
# (so the audit finds a compliant keyspace): a million keys in seconds, not a million round trips.
_FILL = """
local fields = {name=21600000, email=21600000, age=21600000, profile=1800000, prefs=3600000}
for id = tonumber(ARGV[1]), tonumber(ARGV[2]) - 1 do
  for f, ttl in pairs(fields) do
    redis.call('SET', 'user:' .. id .. ':' .. f, 'x', 'PX', ttl)
  end
end
return 0
"""


@dataclass(frozen=True)
class Sizes:
    rounds: int
    blocks: int
    """Blocks per round of a single-key or cache-aside workload, each of BLOCK_OPS operations."""
    pipelines: int
    """Pipelines of PIPELINE_OPS operations per round."""
    classify_blocks: int
    """Blocks of CLASSIFY_BLOCK keys per round."""
    slow_rounds: int
    """Rounds of the workloads that take seconds each (the 1M-key keyspace, redis-benchmark): fewer in a quick run."""


KEYSPACE_KEYS = 1_000_000
BLOCK_OPS = 1_000
PIPELINE_OPS = 10_000
CLASSIFY_BLOCK = 10_000
FULL = Sizes(rounds=5, blocks=20, pipelines=5, classify_blocks=20, slow_rounds=5)
QUICK = Sizes(rounds=3, blocks=2, pipelines=1, classify_blocks=2, slow_rounds=1)


@dataclass
class Context:
    port: int
    sizes: Sizes
    quick: bool
    client: redis.Redis
    """Raw redis-py (bytes): the baseline's client, and the engines' too, so both share one pool."""
    hiredis: bool = True
    """Whether the run's clients parse with hiredis (False: ``--no-hiredis`` or hiredis not installed)."""
    _engines: dict[Path, Any] = field(default_factory=dict)
    _keyspace_loaded: bool = False

    def engine(self, policies: Path = RUNTIME_POLICIES) -> toolkit.Engine:
        """An engine over the shared client (built once per policy directory)."""
        if policies not in self._engines:
            self._engines[policies] = toolkit.connect(toolkit.load(policies), client=self.client)
        return self._engines[policies]

    def keyspace(self) -> int:
        """Fill the database with KEYSPACE_KEYS user:<id>:<field> keys (once); returns the user count."""
        users = KEYSPACE_KEYS // len(KEYSPACE_FIELDS)
        if not self._keyspace_loaded:
            self.client.flushdb()
            step = 20_000
            for start in range(0, users, step):
                self.client.eval(_FILL, 0, start, min(start + step, users))
            self._keyspace_loaded = True
        return users
