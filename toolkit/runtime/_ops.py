"""One operation on one key: the command to send and how to read its reply.

Handles build Ops; a runner decides when they go out: the engine sends each at once, a
pipeline queues them and sends them together. One description, two ways of sending, so
immediate and pipelined calls can never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from toolkit.policy.model import Namespace

OTHER, READ, WRITE = 0, 1, 2
ONCE = 4
"""Flag on a kind: the command is not idempotent (INCRBY, pushes, pops, SET NX), so it is never
resent after it may have reached the server: a timeout must not count a page view twice."""
DATA_MISS = 8
"""Flag on a kind: a data failure reads as a miss even on a fail-closed namespace (the cache-aside
read: ``get_or_load`` then replaces the unreadable value with the loader's)."""


class Op(NamedTuple):
    ns: Namespace
    args: tuple
    """The command and its arguments, as for ``client.execute_command``."""
    decode: Callable[[Any], Any] | None
    """Turns the raw reply into the caller's value (None: the reply as is)."""
    kind: int
    """READ counts hits and misses; WRITE is dropped (counted) when Redis fails on fail-open; ``| ONCE``: never resent."""
    fallback: Any = None
    """What a fail-open namespace returns when Redis is unreachable: a miss for reads."""


def op(ns: Namespace, args: tuple, decode: Callable[[Any], Any] | None, kind: int, fallback: Any = None) -> Op:
    """Build an Op without NamedTuple's Python-level ``__new__`` (a third of the engine's per-call cost)."""
    return _new(Op, (ns, args, decode, kind, fallback))


_new = tuple.__new__


def op_key(o: Op) -> str:
    """The key an Op addresses, for messages (scripts carry it after the sha and the key count)."""
    args = o.args
    key = args[3] if args[0] in ("EVALSHA", "EVAL") else args[1]
    return key.decode(errors="backslashreplace") if isinstance(key, bytes) else str(key)


class Runner(Protocol):
    def run(self, op: Op) -> Any: ...
