"""One operation on one key: the command to send and how to read its reply.

Handles build Ops; a runner decides when they go out: the engine sends each at once, a
pipeline queues them and sends them together. One description, two ways of sending, so
immediate and pipelined calls can never drift apart.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol

from toolkit.policy.model import Namespace

OTHER, READ, WRITE = 0, 1, 2


class Op(NamedTuple):
    ns: Namespace
    args: tuple
    """The command and its arguments, as for ``client.execute_command``."""
    decode: Callable[[Any], Any] | None
    """Turns the raw reply into the caller's value (None: the reply as is)."""
    kind: int
    """READ counts hits and misses; WRITE is dropped (counted) when Redis is unreachable on fail-open."""
    fallback: Any = None
    """What a fail-open namespace returns when Redis is unreachable: a miss for reads."""


class Runner(Protocol):
    def run(self, op: Op) -> Any: ...
