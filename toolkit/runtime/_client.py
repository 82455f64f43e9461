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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import BlockingConnectionPool
from redis.retry import Retry

from toolkit.errors import ConfigurationError
from toolkit.policy.model import Target, resolve_env

if TYPE_CHECKING:
    from redis.auth.idp import IdentityProviderInterface
    from redis.auth.token_manager import TokenManagerConfig
    from redis.cluster import RedisCluster
    from redis.credentials import CredentialProvider

__all__ = ["build_client", "close_client", "is_cluster"]

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


def build_client(target: Target, *, identity_provider: "IdentityProviderInterface | None" = None,
                 token_manager_config: "TokenManagerConfig | None" = None) -> "redis.Redis | RedisCluster":
    """A redis-py client for ``target``; ConfigurationError when the target cannot work as written.

    ``identity_provider`` replaces the Azure identity of an ``entra-id`` target (tests, custom
    token sources). A standalone client connects lazily; a cluster client (``OSSCluster``) and
    ``clustering_policy: auto`` need the server at once, so they raise redis-py's own
    ``ConnectionError`` / ``AuthenticationError`` when it is unreachable or refuses the login.
    """
    endpoint = _endpoint(target)
    options = {**_connection_options(target), **_tls_options(target, endpoint),
               **_auth_options(target, endpoint, identity_provider, token_manager_config)}
    policy = target.instance.clustering_policy
    if policy == "OSSCluster":
        return _cluster_client(target, endpoint, options)
    client = _standalone_client(target, endpoint, options)
    if policy != "auto":
        return client
    try:
        cluster = _cluster_enabled(client)
    except BaseException:
        client.close()
        raise
    if not cluster:
        return client
    client.close()
    return _cluster_client(target, endpoint, options)


def is_cluster(client: Any) -> bool:
    """True for a ``RedisCluster``: keys then spread over slots and multi-key commands need one slot."""
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def close_client(client: Any) -> None:
    """Close a client built here, and stop its Entra ID token refresh.

    redis-py's ``close()`` leaves redis-entraid's token manager running, so a closed client
    would go on asking Azure for tokens; stopping it needs the provider's token manager.
    """
    if is_cluster(client):
        kwargs = client.nodes_manager.connection_kwargs
    else:
        kwargs = client.get_connection_kwargs()
    client.close()
    manager = getattr(kwargs.get("credential_provider"), "_token_mgr", None)
    if manager is not None:
        manager.stop()


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


def _auth_options(target: Target, endpoint: _Endpoint, identity_provider: "IdentityProviderInterface | None",
                  token_manager_config: "TokenManagerConfig | None") -> dict[str, Any]:
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


def _entra_provider(target: Target, identity_provider: "IdentityProviderInterface | None",
                    token_manager_config: "TokenManagerConfig | None") -> "CredentialProvider":
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

def _standalone_client(target: Target, endpoint: _Endpoint, options: dict[str, Any]) -> redis.Redis:
    """With ``max_connections`` a BlockingConnectionPool: a full pool makes callers wait ``pool_timeout``
    for a free connection instead of failing at once (which would read as an outage)."""
    client = redis.Redis(host=endpoint.host, port=endpoint.port, db=endpoint.db, retry=_no_retry(), **options)
    limit = target.client.max_connections
    if limit is None:
        return client
    unlimited = client.connection_pool  # built only to get redis-py's own connection class and arguments (TLS...)
    pool = BlockingConnectionPool(connection_class=unlimited.connection_class, max_connections=limit,
                                  timeout=target.client.pool_timeout_ms / 1000, **unlimited.connection_kwargs)
    client.close()
    return redis.Redis.from_pool(pool)


def _cluster_client(target: Target, endpoint: _Endpoint, options: dict[str, Any]) -> "RedisCluster":
    """RedisCluster retries at the cluster level (re-reading the topology); its node pools do not."""
    from redis.cluster import RedisCluster
    from redis.exceptions import RedisClusterException, RedisError

    where = f"target {target.name!r}"
    if endpoint.db != 0:
        raise ConfigurationError(f"{where}: a Redis Cluster has only database 0, not {endpoint.db}")
    # redis-py's cluster nodes take no health_check_interval (it would be dropped silently).
    node_options = {k: v for k, v in options.items() if k != "health_check_interval"}
    limit = target.client.max_connections
    if limit is not None:
        # Node pools are built from connection_pool_class only on the url path of RedisCluster.
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        node_options.update(url=f"{'rediss' if endpoint.tls else 'redis'}://{host}:{endpoint.port}", max_connections=limit,
                            connection_pool_class=functools.partial(BlockingConnectionPool,
                                                                    timeout=target.client.pool_timeout_ms / 1000))
    else:
        node_options.update(host=endpoint.host, port=endpoint.port)
    try:
        return RedisCluster(retry=_no_retry(), **node_options)
    except RedisClusterException as exc:
        if "Cluster mode is not enabled" in str(exc):
            raise ConfigurationError(f"{where}: clustering_policy {target.instance.clustering_policy} but "
                                     f"{endpoint.host}:{endpoint.port} is not a cluster node; use NoCluster "
                                     "or EnterpriseCluster (or auto)") from None
        if isinstance(exc.__cause__, RedisError):  # unreachable / wrong credentials: the same error as standalone
            raise exc.__cause__ from None
        raise


def _cluster_enabled(client: redis.Redis) -> bool:
    """``INFO cluster`` routes no key, so the plain client may ask any node (and is kept when it is no cluster)."""
    return bool(client.info("cluster").get("cluster_enabled"))
