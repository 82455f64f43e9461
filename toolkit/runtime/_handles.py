"""Typed namespace handles: redis-py's method names, the key's parameters as keyword arguments.

Each method checks what the policy says (parameters, TTL inside the tier, value codec)
and builds an Op before anything is sent; a violation raises PolicyViolation and nothing
reaches Redis. Writes always carry the namespace TTL (with jitter) in the same atomic step.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from toolkit.errors import PolicyViolation
from toolkit.policy.model import Namespace
from toolkit.runtime import _args, _scripts
from toolkit.runtime._codecs import CODECS
from toolkit.runtime._flows import Batch, Flow
from toolkit.runtime._ops import ONCE, OTHER, READ, WRITE, Op, Runner, op

_new = tuple.__new__

if TYPE_CHECKING:
    from toolkit.runtime._core import EngineCore as Engine

NEGATIVE = b"\x00toolkit:none\x00"
"""Stored instead of a value when a loader returned None and the namespace caches negatives."""
_NEGATIVES = (NEGATIVE, NEGATIVE.decode())
"""The sentinel as a bytes client and as a ``decode_responses=True`` client return it."""
EMPTY = b"\x00toolkit:empty\x00"
"""The only field of a hash that caches a loader's empty mapping (Redis has no empty hashes)."""
_INT64_LOW, _INT64_HIGH = _args.INT64
_COUNTER_SHA = _scripts.COUNTER_INCR.sha
_WRITE_ONCE = WRITE | ONCE
_MARKERS: dict[Any, Any] = {NEGATIVE: None, NEGATIVE.decode(): None, EMPTY: {}, EMPTY.decode(): {}}


def _bool(raw: Any) -> bool:
    return bool(raw)


def _bool_or_none(raw: Any) -> bool | None:
    """SET NX/XX: None when the condition prevented the write (redis-py's nil), else True."""
    return None if raw is None else bool(raw)


_COUNTER_VALUE = re.compile(rb"-?(?:0|[1-9][0-9]{0,18})")


def _counter_or_none(raw: Any) -> int | None:
    """A counter as INCRBY reads it: canonical digits in the signed 64-bit range, else a data failure."""
    if raw is None:
        return None
    data = raw.encode() if isinstance(raw, str) else raw
    if _COUNTER_VALUE.fullmatch(data) is None or not _args.INT64[0] <= int(data) <= _args.INT64[1]:
        raise ValueError("the value is not an integer in the signed 64-bit range")
    return int(data)


def _int(raw: Any) -> int:
    return int(raw)


def _get_or_load(handle: Handle, loader: Callable[[], Any], params: dict[str, Any]) -> Any:
    engine = handle._immediate("get_or_load")
    if not callable(loader):
        raise PolicyViolation(f"get_or_load on {handle.ns.name!r} takes a loader function, got {type(loader).__name__}")
    return engine._get_or_load(handle, loader, params)


def _all_set(ops: list[Op], transaction: bool) -> Flow:
    """mset: one batch, True when every SET landed."""
    return all((yield Batch(ops, transaction)))


class Handle:
    """Methods every namespace has: delete, exists, ttl, pttl, expire, persist."""

    type_name = ""
    commands: frozenset[str] = frozenset()
    __slots__ = ("ns", "_runner", "_build", "_encode", "_decode", "_roundtrip", "_engine", "_indexes", "_jitter")

    def __init__(self, ns: Namespace, runner: Runner, engine: Engine):
        self.ns = ns
        self._runner = runner
        self._engine = engine
        self._build = ns.build_key
        self._indexes = engine._indexes.get(ns.name, ())
        self._jitter = ns.max_jitter_ms  # a property: computed once, not on every write
        codec = CODECS[ns.codec]
        self._encode = codec.encode
        self._decode = codec.decode
        self._roundtrip = codec.roundtrip

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.ns.name!r} {self.ns.template.source!r}>"

    if not TYPE_CHECKING:  # type checkers see every method through _typing.AnyHandle, and a typo as an error

        def __getattr__(self, name: str) -> Any:
            owners = [cls.type_name for cls in _HANDLES.values() if name in cls.commands]
            if owners:
                allowed = sorted(type(self).commands | _COMMON)
                raise PolicyViolation(f"namespace {self.ns.name!r} is a {self.ns.type}: {name} is a {' and '.join(owners)} "
                                      f"command (allowed here: {', '.join(allowed)})")
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    # Cache-aside hooks (see _cache_aside.py), defined by the types that have get_or_load (string, hash).
    _read_command = ""

    def _cached(self, raw: Any) -> tuple[bool, Any]:
        raise NotImplementedError

    def _store(self, key: str, params: Mapping[str, Any], value: Any, ttl_ms: int) -> tuple[Op, Any]:
        raise NotImplementedError

    def key(self, **params: Any) -> str:
        """The key these parameters address (checked, but nothing is sent)."""
        return self._build(params)

    def _ttl_ms(self, ttl: object) -> int:
        """The TTL of a write: an explicit one (checked against the tier) or the namespace's, plus jitter."""
        ns = self.ns
        if ttl is not None:
            return _args.ttl_ms(ns, ttl)
        if ns.ttl_ms is None:
            return 0
        spread = self._jitter
        return ns.ttl_ms + int(random.random() * (spread + 1)) if spread else ns.ttl_ms

    def delete(self, **params: Any) -> int:
        """DEL; a write: when Redis is unreachable on fail-open it is dropped and counted as such."""
        return self._runner.run(op(self.ns, ("DEL", self._build(params)), None, WRITE, 0))

    def exists(self, **params: Any) -> int:
        return self._runner.run(op(self.ns, ("EXISTS", self._build(params)), None, OTHER, 0))

    def ttl(self, **params: Any) -> int:
        return self._runner.run(op(self.ns, ("TTL", self._build(params)), None, OTHER, -2))

    def pttl(self, **params: Any) -> int:
        return self._runner.run(op(self.ns, ("PTTL", self._build(params)), None, OTHER, -2))

    def expire(self, ttl: float | timedelta | str, **params: Any) -> bool:
        """Set the TTL of an existing key; it must be inside the namespace's tier. False when the key is missing."""
        if ttl is None:
            raise PolicyViolation(f"expire on {self.ns.name!r} needs a ttl")
        return self._set_ttl(self._build(params), params, self._ttl_ms(ttl))

    def persist(self, **params: Any) -> bool:
        """Only for ``tier: persistent`` namespaces: removing the TTL of a key that must expire is refused."""
        if self.ns.expires:
            raise PolicyViolation(f"namespace {self.ns.name!r} (tier {self.ns.tier}) must expire: persist is refused")
        return self._set_ttl(self._build(params), params, 0)

    def _set_ttl(self, key: str, params: Mapping[str, Any], ttl_ms: int) -> bool:
        """PEXPIRE (or PERSIST for 0); through a script when the key's index must follow its new TTL."""
        if self._indexes:
            keys = [key, *self._index_keys(params)]
            args: tuple = ("EVALSHA", _scripts.KEY_TTL.sha, len(keys), *keys, ttl_ms)
        else:
            args = ("PEXPIRE", key, ttl_ms) if ttl_ms else ("PERSIST", key)
        return self._runner.run(op(self.ns, args, _bool, WRITE, False))

    def _immediate(self, method: str) -> Engine:
        """The engine, for calls that take several steps and so cannot be queued in a pipeline."""
        if getattr(self._runner, "queues", False):
            raise PolicyViolation(f"{method} cannot be queued in a pipeline: call it on engine.namespace({self.ns.name!r})")
        return self._engine

    def _read(self, args: tuple, decode: Callable[[Any], Any] | None, fallback: Any = None) -> Any:
        return self._runner.run(_new(Op, (self.ns, args, decode, READ, fallback)))

    def _index_keys(self, params: Mapping[str, Any]) -> list[str]:
        """Index sets this write must join (rules with ``index:`` covering the namespace)."""
        return [rule.index_key(spec.check(params[spec.name])) for rule, spec in self._indexes]

    def _script_op(self, script: _scripts.Script, key: str, params: Mapping[str, Any], *argv: Any,
                   kind: int = WRITE, decode: Callable[[Any], Any] | None = None) -> Op:
        if not self._indexes:
            return op(self.ns, ("EVALSHA", script.sha, 1, key, *argv), decode, kind, None)
        keys = [key, *self._index_keys(params)]
        return op(self.ns, ("EVALSHA", script.sha, len(keys), *keys, *argv), decode, kind, None)


class StringHandle(Handle):
    type_name = "string"
    commands = frozenset({"get", "set", "mget", "mset", "get_or_load"})
    __slots__ = ()

    def _decode_value(self, raw: Any) -> Any:
        if raw is None or raw in _NEGATIVES:
            return None
        return self._decode(raw)

    def get(self, **params: Any) -> Any:
        # op() inlined: this is the hottest call of all, immediate and pipelined
        return self._runner.run(_new(Op, (self.ns, ("GET", self._build(params)), self._decode_value, READ, None)))

    # Cache-aside hooks (see _cache_aside.py): how a cached entry is read, recognised and stored.
    _read_command = "GET"

    def _cached(self, raw: Any) -> tuple[bool, Any]:
        if raw is None:
            return False, None
        return True, (None if raw in _NEGATIVES else self._decode(raw))

    def _store(self, key: str, params: Mapping[str, Any], value: Any, ttl_ms: int) -> tuple[Op, Any]:
        """The Op that caches a loader's value, and that value as a later hit will read it."""
        if value is None:
            return self._set_op(key, params, NEGATIVE, ttl_ms, ()), None
        data, read = self._roundtrip(value)
        return self._set_op(key, params, data, ttl_ms, ()), read

    def _set_op(self, key: str, params: Mapping[str, Any], data: bytes, ttl_ms: int, flags: tuple) -> Op:
        """SET with its TTL in the same command; through a script when the key must join an index.

        SET NX/XX is not resent after a broken connection: a second NX would report "not set".
        """
        options: tuple = ("PX", ttl_ms, *flags) if ttl_ms else flags
        kind, decode = (WRITE | ONCE, _bool_or_none) if flags else (WRITE, _bool)
        if self._indexes:
            keys = [key, *self._index_keys(params)]
            return op(self.ns, ("EVALSHA", _scripts.STRING_SET.sha, len(keys), *keys, data, *options), decode, kind, None)
        return op(self.ns, ("SET", key, data, *options), decode, kind, None)

    def set(self, value: Any, /, *, ttl: float | timedelta | str | None = None, nx: bool = False, xx: bool = False,
            **params: Any) -> bool | None:
        """SET with the TTL in the same command (PX); ``nx``/``xx`` as in redis-py (None when not set)."""
        if nx and xx:
            raise PolicyViolation(f"set on {self.ns.name!r}: nx and xx exclude each other")
        flags = ("NX",) * bool(nx) + ("XX",) * bool(xx)
        return self._runner.run(self._set_op(self._build(params), params, self._encode(value), self._ttl_ms(ttl), flags))

    def mget(self, params_list: Iterable[Mapping[str, Any]]) -> list[Any]:
        """Values of several keys of this namespace, in order (split by slot on a cluster)."""
        keys = [self._build(p) for p in _args.params_list(self.ns, params_list, "mget")]
        ns, decode = self.ns, self._decode_value
        return self._immediate("mget")._send_batch([op(ns, ("GET", k), decode, READ, None) for k in keys], False)

    def mset(self, items: Iterable[tuple[Mapping[str, Any], Any]], *, ttl: float | timedelta | str | None = None) -> bool:
        """Several keys at once, each with its TTL (MSET has none: SET PX per key, in one transaction)."""
        engine = self._immediate("mset")
        pairs = list(items) if not isinstance(items, Mapping) else None
        if pairs is None or any(not isinstance(p, tuple) or len(p) != 2 for p in pairs):
            raise PolicyViolation(f"mset on {self.ns.name!r} takes (params, value) pairs, e.g. [({{'user_id': 1}}, 'Alice')]")
        params_list = _args.params_list(self.ns, [p for p, _ in pairs], "mset")
        ops = [self._set_op(self._build(p), p, self._encode(v), self._ttl_ms(ttl), ()) for p, (_, v) in zip(params_list, pairs)]
        return engine._drive(_all_set(ops, not engine.cluster))

    def get_or_load(self, loader: Callable[[], Any], **params: Any) -> Any:
        """Cache-aside: the cached value, or the loader's as the codec reads it back (stored with the namespace TTL)."""
        return _get_or_load(self, loader, params)


class HashHandle(Handle):
    type_name = "hash"
    commands = frozenset({"hget", "hset", "hmget", "hgetall", "hdel", "get_or_load"})
    __slots__ = ()

    def _decode_mapping(self, raw: Any) -> dict[str, Any] | None:
        if not raw:
            return {}
        if len(raw) == 1:  # the markers of a cached "not found" or empty mapping are always a hash's only field
            (only,) = raw
            if only in _MARKERS:
                return _MARKERS[only]
        decode = self._decode
        try:
            return {k.decode(): decode(v) for k, v in raw.items()}
        except AttributeError:  # a client with decode_responses=True already returns str field names
            return {k: decode(v) for k, v in raw.items()}

    def _decode_value(self, raw: Any) -> Any:
        return None if raw is None else self._decode(raw)

    def hget(self, field: str, /, **params: Any) -> Any:
        return self._read(("HGET", self._build(params), _args.field(self.ns, field)), self._decode_value)

    def hmget(self, fields: Iterable[str], /, **params: Any) -> list[Any]:
        names = _args.fields(self.ns, fields, "hmget")
        decode = self._decode_value
        return self._read(("HMGET", self._build(params), *names), lambda raw: [decode(v) for v in raw], [None] * len(names))

    def hgetall(self, **params: Any) -> dict[str, Any]:
        return self._read(("HGETALL", self._build(params)), self._decode_mapping, {})

    _read_command = "HGETALL"

    def _cached(self, raw: Any) -> tuple[bool, Any]:
        if not raw:
            return False, None
        return True, self._decode_mapping(raw)

    def _store(self, key: str, params: Mapping[str, Any], value: Mapping[str, Any] | None, ttl_ms: int) -> tuple[Op, Any]:
        """The Op that caches a loader's mapping (None and {} included), and the mapping as a hit will read it."""
        if value is None:
            pairs: list[Any] = [NEGATIVE, b"1"]
            read: dict[str, Any] | None = None
        elif isinstance(value, Mapping):
            pairs, read = [], {}
            for f, v in value.items():
                name = _args.field(self.ns, f)
                data, read[name] = self._roundtrip(v)
                pairs += [name, data]
            pairs = pairs or [EMPTY, b"1"]
        else:
            raise PolicyViolation(f"the loader of hash namespace {self.ns.name!r} must return a mapping or None, "
                                  f"got {type(value).__name__}")
        return self._script_op(_scripts.HASH_WRITE, key, params, ttl_ms, 1, *pairs), read

    def hset(self, field: str | None = None, value: Any = None, /, *, mapping: Mapping[str, Any] | None = None,
             ttl: float | timedelta | str | None = None, **params: Any) -> int | None:
        """HSET and the namespace TTL in one atomic step; returns the number of new fields."""
        pairs: list[Any] = []
        encode, ns = self._encode, self.ns
        if field is not None:
            pairs += [_args.field(ns, field), encode(value)]
        if mapping is not None:
            if not isinstance(mapping, Mapping):
                raise PolicyViolation(f"hset on {ns.name!r}: mapping must be a mapping of field -> value, got {type(mapping).__name__}")
            for f, v in mapping.items():
                pairs += [_args.field(ns, f), encode(v)]
        if not pairs:
            raise PolicyViolation(f"hset on {ns.name!r} needs a field and value or a non-empty mapping")
        return self._runner.run(self._script_op(_scripts.HASH_WRITE, self._build(params), params, self._ttl_ms(ttl), 0, *pairs))

    def hdel(self, *fields: str, **params: Any) -> int:
        """HDEL; returns how many of the fields existed."""
        names = _args.fields(self.ns, fields, "hdel")
        return self._runner.run(op(self.ns, ("HDEL", self._build(params), *names), None, WRITE, 0))

    def get_or_load(self, loader: Callable[[], Mapping[str, Any] | None], **params: Any) -> dict[str, Any] | None:
        """Cache-aside for a whole hash: the loader returns a mapping ({} is cached as empty) or None."""
        return _get_or_load(self, loader, params)


class ListHandle(Handle):
    type_name = "list"
    commands = frozenset({"lpush", "rpush", "lpop", "rpop", "lrange", "llen"})
    __slots__ = ()

    def _push(self, command: str, values: tuple, params: dict[str, Any], ttl: object) -> int | None:
        """Not resent after a broken connection: a second push would add the values twice."""
        if not values:
            raise PolicyViolation(f"{command.lower()} on {self.ns.name!r} needs at least one value")
        encode = self._encode
        return self._runner.run(self._script_op(_scripts.LIST_PUSH, self._build(params), params, command, self._ttl_ms(ttl),
                                                self.ns.max_length or 0, *[encode(v) for v in values], kind=WRITE | ONCE))

    def lpush(self, *values: Any, ttl: float | timedelta | str | None = None, **params: Any) -> int | None:
        """Push to the head, trim to ``max_length``, refresh the TTL: one atomic step. Returns the length."""
        return self._push("LPUSH", values, params, ttl)

    def rpush(self, *values: Any, ttl: float | timedelta | str | None = None, **params: Any) -> int | None:
        """Push to the tail, trim to the newest ``max_length``, refresh the TTL: one atomic step. Returns the length."""
        return self._push("RPUSH", values, params, ttl)

    def _pop(self, command: str, count: int | None, params: dict[str, Any]) -> Any:
        """Not resent after a broken connection: a second pop would remove another item."""
        decode = self._decode
        if count is None:
            return self._runner.run(op(self.ns, (command, self._build(params)), lambda r: None if r is None else decode(r),
                                       WRITE | ONCE, None))
        count = _args.integer(self.ns, command.lower(), "count", count, 1)
        return self._runner.run(op(self.ns, (command, self._build(params), count),
                                   lambda r: [] if r is None else [decode(v) for v in r], WRITE | ONCE, []))

    def lpop(self, count: int | None = None, **params: Any) -> Any:
        """The head item (None when empty), or a list of up to ``count`` items."""
        return self._pop("LPOP", count, params)

    def rpop(self, count: int | None = None, **params: Any) -> Any:
        """The tail item (None when empty), or a list of up to ``count`` items."""
        return self._pop("RPOP", count, params)

    def lrange(self, start: int = 0, end: int = -1, **params: Any) -> list[Any]:
        """Items from ``start`` to ``end`` inclusive (negative indexes count from the tail), as LRANGE."""
        start = _args.integer(self.ns, "lrange", "start", start)
        end = _args.integer(self.ns, "lrange", "end", end)
        decode = self._decode
        return self._read(("LRANGE", self._build(params), start, end), lambda raw: [decode(v) for v in raw], [])

    def llen(self, **params: Any) -> int:
        return self._runner.run(op(self.ns, ("LLEN", self._build(params)), None, OTHER, 0))


class CounterHandle(Handle):
    type_name = "counter"
    commands = frozenset({"incr", "decr", "incrby", "decrby", "get"})
    __slots__ = ()

    def get(self, **params: Any) -> int | None:
        return self._read(("GET", self._build(params)), _counter_or_none)

    def incrby(self, amount: int = 1, **params: Any) -> int | None:
        """INCRBY, exact over the signed 64-bit range; the window TTL is set by the first increment only.

        Never resent after a broken connection or a timeout: a page view is never counted twice.
        """
        if type(amount) is not int or not _INT64_LOW <= amount <= _INT64_HIGH:
            amount = _args.integer(self.ns, "incrby", "amount", amount)
        if self._indexes:
            return self._runner.run(self._script_op(_scripts.COUNTER_INCR, self._build(params), params, amount,
                                                    self._ttl_ms(None), kind=WRITE | ONCE, decode=_int))
        # The common case built inline: this is the hot path of page-view counters.
        return self._runner.run(op(self.ns, ("EVALSHA", _COUNTER_SHA, 1, self._build(params), amount, self._ttl_ms(None)),
                                   _int, _WRITE_ONCE, None))

    incr = incrby  # the same method: no second call and keyword repacking on the hot path

    def decrby(self, amount: int = 1, **params: Any) -> int | None:
        """DECRBY: ``incrby(-amount)``."""
        return self.incrby(-_args.integer(self.ns, "decrby", "amount", amount, -_INT64_HIGH), **params)

    decr = decrby


_COMMON = frozenset(n for n in vars(Handle) if not n.startswith("_") and callable(getattr(Handle, n)))
_HANDLES: dict[str, type[Handle]] = {"string": StringHandle, "hash": HashHandle, "list": ListHandle, "counter": CounterHandle}


def handle_for(ns: Namespace, runner: Runner, engine: Engine) -> Handle:
    return _HANDLES[ns.type](ns, runner, engine)
