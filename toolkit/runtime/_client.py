"""A policy ``Target`` -> a redis-py client (``redis.Redis`` or ``redis.cluster.RedisCluster``).

Everything connection-related stays redis-py's own machinery (pool, ``Retry``, timeouts,
TLS, credential providers); this module only translates the policy's words into its
arguments and turns what cannot work into one ``ConfigurationError`` line. ``${VAR}``
references are resolved here, when a client is built, so a policy file stays the same
in every environment. Secrets (access keys, client secrets) never appear in a message.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import BlockingConnectionPool
from redis.retry import Retry

from toolkit.errors import ConfigurationError
from toolkit.policy.model import Target, resolve_env
from toolkit.runtime._flows import Flow, Steps

if TYPE_CHECKING:
    from redis.auth.idp import IdentityProviderInterface
    from redis.auth.token_manager import TokenManagerConfig
    from redis.cluster import RedisCluster
    from redis.credentials import CredentialProvider

__all__ = ["aclose_client", "build_async_client", "build_client", "close_client", "is_cluster"]

_ENTRA_SCOPE = "https://redis.azure.com/.default"
_ENTRA_RESOURCE = "https://redis.azure.com/"
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]-]+$")


@dataclass(frozen=True)
class _Endpoint:
    """Where to connect, with every ``${VAR}`` resolved."""

    host: str
    port: int
    db: int
    tls: bool
    username: str | None


ASYNC_DEFAULT_MAX_CONNECTIONS = 100
"""redis.asyncio's own default, kept; what changes is that a task waits for a free connection."""


@dataclass(frozen=True)
class _Kit:
    """redis-py's classes for one kind of client: blocking, or ``redis.asyncio``."""

    redis: Any
    cluster: Any
    blocking_pool: Any
    is_async: bool


def _kit(asyncio: bool) -> _Kit:
    if asyncio:
        import redis.asyncio as aredis
        from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

        return _Kit(aredis.Redis, AsyncRedisCluster, aredis.BlockingConnectionPool, True)
    from redis.cluster import RedisCluster

    return _Kit(redis.Redis, RedisCluster, BlockingConnectionPool, False)


def build_client(target: Target, *, identity_provider: IdentityProviderInterface | None = None,
                 token_manager_config: TokenManagerConfig | None = None) -> redis.Redis | RedisCluster:
    """A redis-py client for ``target``; ConfigurationError when the target cannot work as written.

    ``identity_provider`` replaces the Azure identity of an ``entra-id`` target (tests, custom
    token sources). A standalone client connects lazily; a cluster client (``OSSCluster``) and
    ``clustering_policy: auto`` need the server at once, so they raise redis-py's own
    ``ConnectionError`` / ``AuthenticationError`` when it is unreachable or refuses the login.
    """
    steps = Steps(_build(target, _kit(False), identity_provider, token_manager_config))
    for result in steps:  # the blocking calls already ran inside the flow: their results come back as they are
        steps.reply = (result, None)
    return steps.value


async def build_async_client(target: Target, *, identity_provider: IdentityProviderInterface | None = None,
                             token_manager_config: TokenManagerConfig | None = None) -> Any:
    """``build_client`` for ``redis.asyncio``: a ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``."""
    if target.auth.type == "entra-id":  # importing redis-entraid and MSAL takes about 0.1 s: not on the event loop
        import asyncio

        await asyncio.to_thread(_import_entra)
    steps = Steps(_build(target, _kit(True), identity_provider, token_manager_config))
    for awaitable in steps:
        try:
            steps.reply = (await awaitable, None)
        except BaseException as exc:  # noqa: BLE001 - thrown into the flow, which closes what it opened
            steps.reply = (None, exc)
    return steps.value


def _import_entra() -> None:
    import redis_entraid.cred_provider  # noqa: F401
    import redis_entraid.identity_provider  # noqa: F401


def _build(target: Target, kit: _Kit, identity_provider: IdentityProviderInterface | None,
           token_manager_config: TokenManagerConfig | None) -> Flow:
    """Both builders' one flow: it yields what the asyncio builder must await (the blocking one gets results)."""
    endpoint = _endpoint(target)
    options = {**_connection_options(target), **_tls_options(target, endpoint),
               **_auth_options(target, endpoint, identity_provider, token_manager_config)}
    if kit.is_async and "credential_provider" in options:
        import asyncio

        from toolkit.runtime._tokens import prefetch_tokens

        tokens = prefetch_tokens(options["credential_provider"])
        if tokens is not None:  # redis-py would ask Entra ID on the event loop: the first token comes from a thread
            yield asyncio.to_thread(tokens.prime)
    policy = target.instance.clustering_policy
    if policy == "OSSCluster":
        return (yield from _cluster_client(target, endpoint, options, kit))
    client = _standalone_client(target, endpoint, options, kit)
    if policy != "auto":
        return client
    try:
        # INFO cluster routes no key, so the plain client may ask any node (and is kept when it is no cluster).
        cluster = bool((yield client.info("cluster")).get("cluster_enabled"))
    except BaseException:
        yield _close(client, kit)
        raise
    if not cluster:
        return client
    yield _close(client, kit)
    return (yield from _cluster_client(target, endpoint, options, kit))


def _close(client: Any, kit: _Kit) -> Any:
    return client.aclose() if kit.is_async else client.close()


def is_cluster(client: Any) -> bool:
    """True for a ``RedisCluster`` (either kind): keys then spread over slots and multi-key commands need one slot."""
    from redis.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        return True
    aio = sys.modules.get("redis.asyncio.cluster")  # loaded by whoever built an asyncio cluster client
    return aio is not None and isinstance(client, aio.RedisCluster)


def _token_manager(client: Any) -> Any:
    """redis-entraid's token manager of a client built here, if any.

    redis-py's ``close()`` leaves it running, so a closed client would go on asking Azure for
    tokens; stopping it needs the provider's token manager.
    """
    manager = getattr(client, "nodes_manager", None)
    kwargs = manager.connection_kwargs if manager is not None else client.get_connection_kwargs()
    return getattr(kwargs.get("credential_provider"), "_token_mgr", None)


def _stop_refresh(manager: Any) -> None:
    """Stop a token manager's refresh chain.

    ``stop()`` cancels the blocking chain's timer; the asyncio chain (``start_async``) does not keep
    the handle of its next ``call_later``, so it is disarmed instead: its next renewal gets the old
    token from the stopped PrefetchedTokens (no request to Azure) and, with no listener callback,
    ends the chain.
    """
    if manager is None:
        return
    manager.stop()
    from toolkit.runtime._tokens import PrefetchedTokens

    if isinstance(getattr(manager, "_idp", None), PrefetchedTokens):
        manager._idp.stop()
    listener = getattr(manager, "_listener", None)
    if listener is not None:
        listener.on_next = None


def close_client(client: Any) -> None:
    """Close a client built here, and stop its Entra ID token refresh."""
    manager = _token_manager(client)
    client.close()
    _stop_refresh(manager)


async def aclose_client(client: Any) -> None:
    """``close_client`` for an asyncio client."""
    manager = _token_manager(client)
    await client.aclose()
    _stop_refresh(manager)


# -- where ---------------------------------------------------------------------------------------

def _endpoint(target: Target) -> _Endpoint:
    where = f"target {target.name!r}"
    if target.url is not None:
        return _parse_url(resolve_env(target.url, f"{where}: url") or "", target, where)
    host = resolve_env(target.host, f"{where}: host")
    if not host or not _HOST.match(host):
        from toolkit.policy.secrets import redact

        raise ConfigurationError(redact(target, f"{where}: host {host!r} is not a host name or IP address"))
    return _Endpoint(host, _port(resolve_env(target.port, f"{where}: port"), f"{where}: port", target), target.db,
                     target.tls, None)


def _parse_url(url: str, target: Target, where: str) -> _Endpoint:
    """``redis[s]://[user@]host[:port][/db]``; never echoes the URL, which may hold a secret, nor a value from ``${VAR}``."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigurationError(f"{where}: url must start with redis:// or rediss://")
    if parts.password is not None:
        raise ConfigurationError(f"{where}: url must not carry a password; declare auth (access-key) instead")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{where}: url takes no ?options; use the target's client settings")
    if not parts.hostname or not _HOST.match(parts.hostname):
        raise ConfigurationError(f"{where}: url has no valid host")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError(f"{where}: url port is not a number from 1 to 65535") from None
    db_text = unquote(parts.path).strip("/")
    if db_text and not db_text.isdigit():
        from toolkit.policy.secrets import redact

        raise ConfigurationError(redact(target, f"{where}: url path {db_text!r} is not a database number"))
    return _Endpoint(parts.hostname, _port(port or 6379, f"{where}: url port", target), int(db_text) if db_text else target.db,
                     target.tls or parts.scheme == "rediss", unquote(parts.username) if parts.username else None)


def _port(value: str | int | None, where: str, target: Target | None = None) -> int:
    """``target``: whose ``${VAR}`` values the message shows as their references."""
    text = str(value if value is not None else 6379)
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        from toolkit.policy.secrets import redact

        raise ConfigurationError(redact(target, f"{where}: {text!r} is not a port number from 1 to 65535"))
    return int(text)


# -- how -----------------------------------------------------------------------------------------

def _connection_options(target: Target) -> dict[str, Any]:
    c = target.client
    return {
        "socket_timeout": c.socket_timeout_ms / 1000,
        "socket_connect_timeout": c.connect_timeout_ms / 1000,
        "health_check_interval": c.health_check_interval_ms / 1000,
    }


def _no_retry() -> Retry:
    """redis-py resends any command after a connection error, INCRBY included; the engine resends only
    idempotent ones (``client.retries`` times, never after a timeout), so the client itself never does."""
    return Retry(NoBackoff(), 0)


def _tls_options(target: Target, endpoint: _Endpoint) -> dict[str, Any]:
    if not endpoint.tls:
        return {}
    options: dict[str, Any] = {"ssl": True, "ssl_check_hostname": target.check_hostname}
    ca_file = resolve_env(target.ca_file, f"target {target.name!r}: tls.ca_file")
    if ca_file is not None:
        try:  # load it now: a wrong path would otherwise surface as a connection error on first use
            ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            from toolkit.policy.secrets import redact

            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a PEM CA certificate file"
            raise ConfigurationError(redact(target, f"target {target.name!r}: tls.ca_file {ca_file!r}: {reason}")) from None
        options["ssl_ca_certs"] = ca_file
    return options


def _auth_options(target: Target, endpoint: _Endpoint, identity_provider: IdentityProviderInterface | None,
                  token_manager_config: TokenManagerConfig | None) -> dict[str, Any]:
    auth, where = target.auth, f"target {target.name!r}: auth"
    if identity_provider is not None and auth.type != "entra-id":
        raise ConfigurationError(f"{where}: an identity_provider applies to entra-id targets, this one uses {auth.type}")
    if auth.type == "access-key":
        password = os.environ.get(auth.env or "")
        if not password:
            raise ConfigurationError(f"{where}.env: environment variable {auth.env} (the access key) is not set")
        username = resolve_env(auth.username, f"{where}.username") or endpoint.username
        return {"password": password, **({"username": username} if username else {})}
    if auth.type == "entra-id":
        return {"credential_provider": _entra_provider(target, identity_provider, token_manager_config)}
    return {}


def _entra_provider(target: Target, identity_provider: IdentityProviderInterface | None,
                    token_manager_config: TokenManagerConfig | None) -> CredentialProvider:
    """A fresh provider per client: redis-entraid re-AUTHs only the client that registered last."""
    from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
    from redis_entraid import cred_provider as entra

    # Refresh at 70 % of a token's life; retry a failed token request 3 times, 100 ms apart.
    config = token_manager_config or TokenManagerConfig(0.7, 0, 100, RetryPolicy(3, 100))
    if identity_provider is not None:
        return entra.EntraIdCredentialsProvider(identity_provider, config)
    auth, where = target.auth, f"target {target.name!r}: auth"
    client_id = _non_empty(resolve_env(auth.client_id, f"{where}.client_id"), f"{where}.client_id")
    tenant_id = _non_empty(resolve_env(auth.tenant_id, f"{where}.tenant_id"), f"{where}.tenant_id")
    secret = ""
    if auth.identity == "service-principal":
        client_id = client_id or _required_env("AZURE_CLIENT_ID", f"{where} (service-principal client id)")
        tenant_id = tenant_id or _required_env("AZURE_TENANT_ID", f"{where} (service-principal tenant)")
        secret = _required_env("AZURE_CLIENT_SECRET", f"{where} (service-principal secret)")
    if tenant_id is not None and not re.fullmatch(r"[A-Za-z0-9.-]+", tenant_id):
        from toolkit.policy.secrets import redact

        # MSAL puts the tenant in a URL path: '/', '?' or '#' in it would split it past any redaction
        raise ConfigurationError(redact(target, f"{where}.tenant_id {tenant_id!r} is not a tenant id "
                                                "(a GUID or a domain name)"))
    try:
        if auth.identity == "managed-identity":
            from redis_entraid.identity_provider import ManagedIdentityIdType, ManagedIdentityType

            if client_id is None:
                return entra.create_from_managed_identity(ManagedIdentityType.SYSTEM_ASSIGNED, _ENTRA_RESOURCE,
                                                          token_manager_config=config)
            return entra.create_from_managed_identity(ManagedIdentityType.USER_ASSIGNED, _ENTRA_RESOURCE,
                                                      id_type=ManagedIdentityIdType.CLIENT_ID, id_value=client_id,
                                                      token_manager_config=config)
        if auth.identity == "service-principal":  # MSAL fetches the tenant's OpenID configuration right here
            return entra.create_from_service_principal(client_id, secret, tenant_id, token_manager_config=config)
        app_kwargs = {"managed_identity_client_id": client_id} if client_id else {}
        return entra.create_from_default_azure_credential((_ENTRA_SCOPE,), tenant_id=tenant_id, app_kwargs=app_kwargs,
                                                          token_manager_config=config)
    except Exception as exc:  # noqa: BLE001 - azure-identity, MSAL and requests raise many types; one line each
        from toolkit.policy.secrets import redact

        detail = (str(exc).splitlines() or [""])[0]
        detail = detail.replace(secret, "***") if secret else detail
        detail = redact(target, detail)[:200]  # MSAL's URLs hold the tenant; cut only once nothing is left to hide
        raise ConfigurationError(f"{where}: cannot set up the Entra ID {auth.identity} identity: "
                                 f"{type(exc).__name__}: {detail}") from None


def _non_empty(value: str | None, where: str) -> str | None:
    if value == "":
        raise ConfigurationError(f"{where} is empty")
    return value


def _required_env(name: str, where: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(f"{where}: environment variable {name} is not set")
    return value


# -- which client --------------------------------------------------------------------------------

def _standalone_client(target: Target, endpoint: _Endpoint, options: dict[str, Any], kit: _Kit) -> Any:
    """With ``max_connections`` a BlockingConnectionPool: a full pool makes callers wait ``pool_timeout``
    for a free connection instead of failing at once (which would read as an outage). An asyncio
    client always gets one: redis.asyncio's own pool stops at 100 connections and then fails at once."""
    client = kit.redis(host=endpoint.host, port=endpoint.port, db=endpoint.db, retry=_no_retry(), **options)
    limit = target.client.max_connections or (ASYNC_DEFAULT_MAX_CONNECTIONS if kit.is_async else None)
    if limit is None:
        return client
    unlimited = client.connection_pool  # built only for redis-py's own connection class and arguments (TLS...)
    pool = kit.blocking_pool(connection_class=unlimited.connection_class, max_connections=limit,
                             timeout=target.client.pool_timeout_ms / 1000, **unlimited.connection_kwargs)
    # Not from_pool(): the credential provider must be given too, or an Entra ID token refresh would
    # not re-AUTH the pool's connections (redis-py registers that listener only for the provider it is handed).
    pooled = kit.redis(connection_pool=pool, credential_provider=options.get("credential_provider"))
    pooled.auto_close_connection_pool = True  # the pool is ours: closing the client closes it
    return pooled


def _cluster_client(target: Target, endpoint: _Endpoint, options: dict[str, Any], kit: _Kit) -> Flow:
    """RedisCluster retries at the cluster level (re-reading the topology); its node pools do not.

    The blocking client connects in its constructor, the asyncio one in ``initialize()`` (yielded).
    The asyncio cluster's nodes take no pool class: a full node fails at once and the engine waits
    ``pool_timeout`` for it by resending (nothing was sent).
    """
    from redis.exceptions import RedisClusterException, RedisError

    where = f"target {target.name!r}"
    if endpoint.db != 0:
        raise ConfigurationError(f"{where}: a Redis Cluster has only database 0, not {endpoint.db}")
    # redis-py's cluster nodes take no health_check_interval (it would be dropped silently).
    node_options = {k: v for k, v in options.items() if k != "health_check_interval"}
    limit = target.client.max_connections
    if limit is not None and not kit.is_async:
        # Node pools are built from connection_pool_class only on the url path of RedisCluster.
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        node_options.update(url=f"{'rediss' if endpoint.tls else 'redis'}://{host}:{endpoint.port}", max_connections=limit,
                            connection_pool_class=functools.partial(kit.blocking_pool,
                                                                    timeout=target.client.pool_timeout_ms / 1000))
    else:
        node_options.update(host=endpoint.host, port=endpoint.port, **({"max_connections": limit} if limit else {}))
    try:
        client = kit.cluster(retry=_no_retry(), **node_options)
        if kit.is_async:
            try:
                yield client.initialize()
            except BaseException:
                yield client.aclose()
                raise
        return client
    except RedisClusterException as exc:
        if "Cluster mode is not enabled" in str(exc):
            raise ConfigurationError(f"{where}: clustering_policy {target.instance.clustering_policy} but "
                                     f"{endpoint.host}:{endpoint.port} is not a cluster node; use NoCluster "
                                     "or EnterpriseCluster (or auto)") from None
        if isinstance(exc.__cause__, RedisError):  # unreachable / wrong credentials: the same error as standalone
            raise exc.__cause__ from None
        raise
