"""The near cache's invalidation feed: one RESP3 connection per primary in ``CLIENT TRACKING ON BCAST`` mode.

Why this mode. Broadcasting (BCAST) with the near-cached namespaces' literal key prefixes makes
the server announce every write to a matching key, whoever wrote it and on whichever connection
it was read: the engine's pooled connections stay untracked and ordinary. RESP3 brings the
invalidations as push messages on the tracking connection itself, so there is no second
connection and no ``REDIRECT``: Redis Software (what Azure Managed Redis runs) refuses
``REDIRECT`` and RESP2 client-side caching altogether. On a cluster, tracking is per node: one
connection per primary, and a change of the primaries flushes everything and starts over.

The feed runs in threads of its own for both engines (the asyncio engine too: a blocking socket
read in a thread never stalls its event loop). Whatever breaks it (the connection drops, a
PING goes unanswered for ``socket_timeout``, the primaries change) flushes every local copy
before anything is served again; a server that refuses tracking (``CLIENT TRACKING`` unknown or
denied, no RESP3) leaves the namespaces working without the local layer, logged once.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from toolkit.runtime._near import NearCache

log = logging.getLogger("toolkit")
IDLE_PING_S = 1.0
"""An idle feed is probed this often: a hung server is noticed within this plus the socket timeout."""
TOPOLOGY_CHECK_S = 1.0
RETRY_MAX_S = 1.0

Node = tuple[str, Callable[[], Any]]


def _sync_class(connection_class: type) -> type:
    """The blocking redis-py connection class for a (possibly asyncio) one."""
    import redis.connection as sync

    name = connection_class.__name__
    return getattr(sync, name, sync.Connection) if connection_class.__module__.startswith("redis.asyncio") else connection_class


def _factory(connection_class: type, kwargs: dict[str, Any]) -> Callable[[], Any]:
    cls = _sync_class(connection_class)
    accepted: set[str] = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is not None:
            accepted |= set(inspect.signature(init).parameters)
    options = {k: v for k, v in kwargs.items() if k in accepted}
    if connection_class.__module__.startswith("redis.asyncio"):
        # asyncio-only parts of an asyncio client's settings would make a blocking connection call coroutines
        for name in ("retry", "redis_connect_func", "connect_func"):
            options.pop(name, None)
    options["protocol"] = 3
    return lambda: cls(**options)


def nodes(client: Any) -> list[Node]:
    """(name, a function making a tracking connection) for each primary of ``client`` (sync or asyncio)."""
    primaries = getattr(client, "get_primaries", None)
    if primaries is None:
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        return [(f"{kwargs.get('host', '')}:{kwargs.get('port', '')}", _factory(pool.connection_class, kwargs))]
    found = []
    for node in primaries():
        connection = getattr(node, "redis_connection", None)
        if connection is not None and hasattr(connection, "connection_pool") and hasattr(connection.connection_pool,
                                                                                           "connection_kwargs"):
            pool = connection.connection_pool  # a blocking cluster's node client
            found.append((node.name, _factory(pool.connection_class, dict(pool.connection_kwargs))))
        else:  # an asyncio cluster node
            kwargs = {**node.connection_kwargs, "host": node.host, "port": node.port}
            found.append((node.name, _factory(node.connection_class, kwargs)))
    return sorted(found)


class _NoPrimaries(Exception):
    """The client knows no primary yet: try again."""


_TRACKERS: weakref.WeakSet[Tracker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for tracker in list(_TRACKERS):
        tracker._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Tracker:
    """Keeps ``near`` fed with invalidations from every primary of ``client``; ``stop`` ends it."""

    def __init__(self, near: NearCache, client: Any, prefixes: list[str], *, socket_timeout: float):
        self._near = near
        self._client = client
        self._prefixes = prefixes
        self._socket_timeout = socket_timeout
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._broken = threading.Event()
        self.state = "connecting"
        """``connecting``, ``ready``, ``reconnecting``, ``unavailable: <why>`` or ``closed`` (for health())."""
        self._thread = threading.Thread(target=self._run, name="toolkit-tracking", daemon=True)
        _TRACKERS.add(self)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._lock:  # serialized with the supervisor's "ready": a closed engine never serves a copy
            self._near.flush(ready=False)
        self._broken.set()
        self._close()
        self.state = "closed"
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _after_fork(self) -> None:
        """In a forked child: the feed's threads did not come along, its sockets are the parent's. Drop every copy
        and start a feed of the child's own (the parent's sockets are left alone: closing them would cut the parent's)."""
        self._near.flush(ready=False)
        self._lock = threading.Lock()
        self._connections = []
        self._broken = threading.Event()
        if not self._stop.is_set():
            self.state = "connecting"
            self._thread = threading.Thread(target=self._run, name="toolkit-tracking", daemon=True)
            self._thread.start()

    # -- the supervisor: connect everywhere, watch, start over -------------------------------------

    def _run(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            try:
                names = self._subscribe()
            except ResponseError as exc:  # the server answered no: tracking is not for this deployment
                self._give_up(f"the server refused CLIENT TRACKING ({' '.join(str(exc).split())[:200]})")
                return
            except (RedisError, OSError, _NoPrimaries):
                self._near.flush(ready=False)
                self.state = "reconnecting"
                self._close()
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            except Exception as exc:  # noqa: BLE001 - a client the feed cannot copy: say so, never die silently
                self._give_up(f"cannot open a tracking connection from this client ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]})")
                return
            delay = 0.05
            broken = self._broken = threading.Event()
            readers = [threading.Thread(target=self._read, args=(c, broken), name="toolkit-tracking-read", daemon=True)
                       for c in self._connections]
            with self._lock:
                if self._stop.is_set():
                    break
                self._near.flush(ready=True)  # from here on every write is announced: copies may be kept
                self.state = "ready"
            for reader in readers:
                reader.start()
            while not self._stop.is_set() and not broken.wait(TOPOLOGY_CHECK_S):
                if self._topology() != names:
                    log.info("near cache: the primaries changed; flushed, subscribing again")
                    break
            broken.set()  # first: a reader between two socket calls must not reconnect an untracked socket
            self._near.flush(ready=False)
            if not self._stop.is_set():
                self.state = "reconnecting"
            self._close()
            for reader in readers:
                reader.join(self._socket_timeout + IDLE_PING_S)

    def _give_up(self, why: str) -> None:
        self._near.flush(ready=False)
        self.state = f"unavailable: {why}"
        log.warning("near cache disabled: %s; the namespaces with local_cache read Redis directly", why)
        self._close()

    def _topology(self) -> list[str]:
        try:
            return [name for name, _ in nodes(self._client)]
        except Exception:  # noqa: BLE001 - a client that cannot say: keep what we have
            return []

    def _subscribe(self) -> list[str]:
        found = nodes(self._client)
        if not found:  # a cluster client that has not met its nodes yet: nothing would be covered
            raise _NoPrimaries()
        prefix_args: list[str] = [a for p in self._prefixes for a in ("PREFIX", p)]
        for _, make in found:
            connection = make()
            with self._lock:
                self._connections.append(connection)
            connection.socket_timeout = self._socket_timeout
            connection.connect()
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", *prefix_args)
            connection.read_response()
            connection._parser.set_invalidation_push_handler(self._on_push)
        return [name for name, _ in found]

    def _close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.disconnect()
            except Exception:  # noqa: BLE001 - closing a broken socket
                pass

    # -- a reader per primary -------------------------------------------------------------------------

    def _read(self, connection: Any, broken: threading.Event) -> None:
        try:
            while not broken.is_set() and not self._stop.is_set():
                if not connection._sock:  # closed by the supervisor: never let redis-py reconnect it untracked
                    break
                if connection.can_read(timeout=IDLE_PING_S):
                    connection.read_response(push_request=True)
                else:  # idle: is the server still there? (invalidations that arrive first are handled on the way)
                    connection.send_command("PING")
                    connection.read_response()
        except Exception:  # noqa: BLE001 - any failure of the feed means copies can no longer be trusted
            pass
        finally:
            if not broken.is_set():  # this round's feed broke here (a later round's readiness is not ours to end)
                broken.set()
                self._near.flush(ready=False)

    def _on_push(self, message: Any) -> None:
        if not message or (message[0] not in (b"invalidate", "invalidate")):
            return
        keys = message[1]
        if keys is None:  # FLUSHDB/FLUSHALL: every key is gone
            self._near.flush(ready=None)
        else:
            self._near.invalidate(k.decode("utf-8", "replace") if isinstance(k, bytes) else k for k in keys)
