"""Plain Redis (local or self-hosted): read with CONFIG GET / INFO, change with CONFIG SET.

A Redis Cluster is read and changed on every node, since each node has its own configuration.
Changes are persisted with CONFIG REWRITE when the server has a config file; otherwise apply
says that they last only until the server restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.policy.model import InstancePolicy, Target
from toolkit.policy.secrets import Redactor
from toolkit.provision import _dataplane
from toolkit.provision.changes import BLOCKED, UPDATE, WARNING, Change, Finding, declared_items, persistence_note, same
from toolkit.provision.state import (
    EVICTION_TO_REDIS,
    LiveState,
    eviction_from_redis,
    persistence_from_redis,
    persistence_to_redis,
    to_json,
)

MANAGED = ("clustering_policy", "eviction_policy", "persistence")


class PlainProvider:
    """The rules for ``provider: redis``: eviction and persistence change with CONFIG SET, cluster mode never."""

    name = "redis"

    def changes(self, target: Target, live: LiveState, *, prune: bool) -> Iterator[Change]:
        for name, want in declared_items(target.instance, MANAGED):
            have = getattr(live.settings, name)
            if same(name, want, have) and name not in live.divergent:
                continue
            before = live.divergent.get(name) or to_json(have)
            after = to_json(want)
            if name != "clustering_policy":
                yield Change("server", name, UPDATE, before, after, note=persistence_note(want) if name == "persistence" else "")
            elif want == "EnterpriseCluster":
                yield Change("server", name, BLOCKED, before, after, reason="EnterpriseCluster is an Azure proxy; "
                             "a plain Redis server is either a cluster (OSSCluster) or not (NoCluster)",
                             remedy=f"declare clustering_policy: {have} (or auto)")
            else:
                yield Change("server", name, BLOCKED, before, after, data_loss=True,
                             reason="cluster mode (cluster-enabled) is fixed when redis-server starts",
                             remedy=f"declare clustering_policy: {have} (or auto), or rebuild the deployment "
                                    f"{'with' if want == 'OSSCluster' else 'without'} --cluster-enabled yes and reload the data")

    def effective(self, target: Target, live: LiveState) -> InstancePolicy:
        declared, have = target.instance, live.settings
        return InstancePolicy(**{f.name: getattr(declared, f.name) if getattr(declared, f.name) not in (None, "auto")
                                 else getattr(have, f.name) for f in fields(InstancePolicy)})

    def findings(self, target: Target, live: LiveState, effective: InstancePolicy, *, prune: bool = False) -> Iterator[Finding]:
        for name, how in sorted(live.divergent.items()):
            if getattr(target.instance, name) is None:
                yield Finding(WARNING, "nodes-disagree", f"the cluster's nodes disagree on {name}: {how}",
                              ("targets", target.name))

    def backend(self, target: Target, **options: Any) -> PlainBackend:
        """``options`` (an Azure credential...) do not apply to a plain server."""
        return PlainBackend(target)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PlainBackend:
    """The provisioner's view of a ``provider: redis`` target."""

    def __init__(self, target: Target):
        self.target = target
        self._client: Any = None
        self._redact = Redactor(target)

    @contextmanager
    def _redis(self, what: str) -> Iterator[None]:
        """Turn redis-py errors into one clear line (the target's ``${VAR}`` values shown as their references)."""
        import redis

        try:
            yield
        except redis.AuthenticationError as exc:
            message = f"target {self.target.name}: authentication failed while {what}: {exc}"
            raise ToolkitError(self._redact(message)) from None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise _dataplane.unreachable(self.target, exc) from None
        except redis.RedisError as exc:
            raise ToolkitError(self._redact(f"target {self.target.name}: the server refused {what}: {exc}")) from None

    @property
    def data_client(self) -> Any:
        """The client applications use (it also publishes the policy)."""
        if self._client is None:
            self._client = _dataplane.connect(self.target)
        return self._client

    def _nodes(self) -> list[tuple[str, Any]]:
        """(address, client) for every node: one for a standalone server. Addresses are for output: redacted."""
        if hasattr(self.data_client, "get_nodes"):
            return sorted(((self._redact(n.name), n.redis_connection) for n in self.data_client.get_nodes()),
                          key=lambda n: n[0])
        return [(_dataplane.describe(self.target), self.data_client)]

    def read(self) -> LiveState:
        with self._redis("reading its configuration (CONFIG GET, INFO)"):
            nodes = self._nodes()
            per_node = [(addr, self._read_node(node)) for addr, node in nodes]
            server = nodes[0][1].info("server")
        first = per_node[0][1]
        divergent = {}
        for name in ("eviction_policy", "persistence", "clustering_policy"):
            values = {addr: to_json(getattr(settings, name)) for addr, settings in per_node}
            if len({repr(v) for v in values.values()}) > 1:
                divergent[name] = "; ".join(f"{v} on {addr}" for addr, v in values.items())
        return LiveState(
            provider="redis", where=_dataplane.describe(self.target), settings=first,
            redis_version=_text(server.get("redis_version", "")) or None, port=server.get("tcp_port"),
            config_file=_text(server.get("config_file", "")), nodes=tuple(addr for addr, _ in per_node),
            divergent=divergent,
        )

    @staticmethod
    def _read_node(node: Any) -> InstancePolicy:
        def get(name: str) -> str:
            return _text(next(iter(node.config_get(name).values()), ""))

        cluster = node.info("cluster").get("cluster_enabled", 0)
        return InstancePolicy(
            eviction_policy=eviction_from_redis(get("maxmemory-policy")),
            persistence=persistence_from_redis(get("appendonly"), get("appendfsync"), get("save")),
            clustering_policy="OSSCluster" if int(cluster) else "NoCluster",
        )

    def apply(self, live: LiveState, changes: Sequence[Change], progress: Callable[[str], None]) -> list[str]:
        """CONFIG SET the changed settings on every node, then try to persist them; returns notes for the user."""
        declared = self.target.instance
        pairs: list[tuple[str, str]] = []
        for change in changes:
            if change.setting == "eviction_policy":
                pairs.append(("maxmemory-policy", EVICTION_TO_REDIS[declared.eviction_policy or ""]))
            elif change.setting == "persistence" and declared.persistence is not None:
                pairs.extend(persistence_to_redis(declared.persistence))
            else:  # plan never makes anything else an update on plain Redis
                raise ToolkitError(f"cannot apply {change.setting} to a plain Redis server")
        notes = []
        with self._redis("CONFIG SET"):
            for addr, node in self._nodes():
                for name, value in pairs:
                    node.config_set(name, value)
                    progress(f"{addr}: CONFIG SET {name} {value!r}")
                notes.append(self._persist(addr, node))
        return notes

    @staticmethod
    def _persist(addr: str, node: Any) -> str:
        import redis

        if not _text(node.info("server").get("config_file", "")):
            return (f"{addr}: not persisted: the server runs without a config file, so these settings last until it "
                    f"restarts (start it with a config file, or set them in its command line)")
        try:
            node.config_rewrite()
        except redis.ResponseError as exc:
            return f"{addr}: not persisted: CONFIG REWRITE failed ({exc}); the settings last until the server restarts"
        return f"{addr}: persisted with CONFIG REWRITE"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


PROVIDER = PlainProvider()
