"""Target -> redis-py client, against real servers: plain, access key, TLS, cluster, Entra ID.

Targets come from small policy files loaded with ``toolkit.load``, so the schema and the
loader's provider defaults are exercised on the way. The Entra ID tests replace Azure with
an identity provider that mints short-lived JWTs and registers each one as an ACL password
of the user ``<oid>`` on every primary: the same contract Azure Managed Redis applies.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import redis
import yaml
from redis.auth.err import RequestTokenErr
from redis.auth.idp import IdentityProviderInterface
from redis.auth.token import JWToken
from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
from redis.cluster import RedisCluster
from redis.exceptions import AuthenticationError, MovedError

import toolkit
from tests.servers import Certificates, RedisServer, free_port, make_certificates, start_redis, start_tls_cluster, start_tls_redis
from toolkit.policy.model import Target
from toolkit.runtime import Engine
from toolkit.runtime._client import build_client, close_client, is_cluster


def load_target(tmp_path: Path, **spec: Any) -> Target:
    """Write ``targets: {t: spec}`` to a policy file and load it the way an application would."""
    path = tmp_path / f"targets-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump({"targets": {"t": {"provider": "redis", **spec}}}))
    return toolkit.load(path).target("t")


@pytest.fixture
def built() -> Iterator[list]:
    """Clients a test builds, closed after it whatever happens."""
    clients: list = []
    yield clients
    for client in clients:
        client.close()


def build(built: list, target: Target, **kwargs: Any) -> Any:
    client = build_client(target, **kwargs)
    built.append(client)
    return client


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Poll for a background event (a token refresh); the bound is generous, never a measurement."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- plain ---------------------------------------------------------------------------------------

def test_plain_url_gives_a_working_standalone_client(tmp_path, redis_server, built):
    client = build(built, load_target(tmp_path, url=f"redis://127.0.0.1:{redis_server.port}/3"))
    assert type(client) is redis.Redis and not is_cluster(client)
    client.set("client:plain", "v")
    assert redis.Redis(port=redis_server.port, db=3).get("client:plain") == b"v"  # the URL's database
    client.delete("client:plain")


def test_port_from_an_environment_default_and_from_the_environment(tmp_path, redis_server, built, monkeypatch):
    target = load_target(tmp_path, host="127.0.0.1", port=f"${{TOOLKIT_TEST_PORT:-{redis_server.port}}}")
    monkeypatch.delenv("TOOLKIT_TEST_PORT", raising=False)
    assert build(built, target).ping()
    other = start_redis(directory=tmp_path / "other")
    try:
        monkeypatch.setenv("TOOLKIT_TEST_PORT", str(other.port))
        client = build(built, target)
        client.set("client:where", "other")
        assert redis.Redis(port=other.port).get("client:where") == b"other"
    finally:
        other.stop()


def test_missing_environment_variable_names_the_variable_and_the_field(tmp_path, monkeypatch):
    monkeypatch.delenv("TOOLKIT_TEST_PORT", raising=False)
    target = load_target(tmp_path, url="redis://127.0.0.1:${TOOLKIT_TEST_PORT}/0")
    with pytest.raises(toolkit.ConfigurationError, match=r"target 't': url: environment variable TOOLKIT_TEST_PORT is not set"):
        build_client(target)


@pytest.mark.parametrize(("spec", "message"), [
    ({"url": "${TOOLKIT_TEST_URL}"}, "url must not carry a password"),
    ({"host": "${TOOLKIT_TEST_HOST}"}, "is not a host name"),
    ({"host": "127.0.0.1", "port": "${TOOLKIT_TEST_PORT:-70000}"}, "'70000' is not a port number"),
    ({"url": "redis://127.0.0.1:6379/0", "tls": {"ca_file": "/nonexistent/ca.crt"}}, "ca.crt': No such file"),
])
def test_unusable_targets_are_one_configuration_error(tmp_path, monkeypatch, spec, message):
    monkeypatch.setenv("TOOLKIT_TEST_URL", "redis://app:hunter2@127.0.0.1:6379/0")
    monkeypatch.setenv("TOOLKIT_TEST_HOST", "redis://127.0.0.1")
    with pytest.raises(toolkit.ConfigurationError, match=message) as caught:
        build_client(load_target(tmp_path, **spec))
    assert "hunter2" not in str(caught.value) and "\n" not in str(caught.value)


def test_client_settings_reach_redis_py(tmp_path, redis_server, built):
    target = load_target(tmp_path, url=f"redis://127.0.0.1:{redis_server.port}/0",
                         client={"socket_timeout": "1500ms", "connect_timeout": "1s", "retries": 7,
                                 "health_check_interval": "10s", "max_connections": 1})
    client = build(built, target)
    settings = client.get_connection_kwargs()
    assert (settings["socket_timeout"], settings["socket_connect_timeout"], settings["health_check_interval"]) == (1.5, 1.0, 10.0)
    assert client.get_retry().get_retries() == 0  # redis-py never resends: the engine resends idempotent commands only
    assert Engine(toolkit.load(next(tmp_path.glob("targets-*.yaml"))), client, target.client)._retries == 7
    held = client.connection_pool.get_connection()
    # The pool's bound is real: a second caller waits for the only connection, then gives up...
    with pytest.raises(redis.ConnectionError, match="No connection available"):
        client.ping()
    threading.Timer(0.1, client.connection_pool.release, (held,)).start()
    assert client.ping()  # ...or gets it when it is released while it waits


# -- access key ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis("--requirepass", "s3cret", directory=tmp_path_factory.mktemp("keyed"))
    yield server
    server.stop()


def test_access_key_from_the_environment(tmp_path, keyed_server, built, monkeypatch):
    target = load_target(tmp_path, url=f"redis://127.0.0.1:{keyed_server.port}/0",
                         auth={"type": "access-key", "env": "TOOLKIT_TEST_KEY"})
    monkeypatch.setenv("TOOLKIT_TEST_KEY", "s3cret")
    assert build(built, target).acl_whoami() == "default"
    monkeypatch.setenv("TOOLKIT_TEST_KEY", "wrong")
    with pytest.raises(AuthenticationError):
        build(built, target).ping()
    monkeypatch.delenv("TOOLKIT_TEST_KEY")
    with pytest.raises(toolkit.ConfigurationError, match="auth.env: environment variable TOOLKIT_TEST_KEY"):
        build_client(target)


def test_access_key_with_an_acl_username(tmp_path, keyed_server, built, monkeypatch):
    admin = redis.Redis(port=keyed_server.port, password="s3cret")
    admin.acl_setuser("reader", enabled=True, passwords=["+r3ad"], keys=["*"], categories=["+@all"])
    admin.close()
    monkeypatch.setenv("TOOLKIT_TEST_KEY", "r3ad")
    target = load_target(tmp_path, url=f"redis://127.0.0.1:{keyed_server.port}/0",
                         auth={"type": "access-key", "env": "TOOLKIT_TEST_KEY", "username": "reader"})
    assert build(built, target).acl_whoami() == "reader"


# -- TLS -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[RedisServer]:
    server = start_tls_redis(tmp_path_factory.mktemp("tls"), certs)
    yield server
    server.stop()


@pytest.mark.parametrize("how", ["tls-section", "rediss-url"])
def test_tls_with_a_private_ca(tmp_path, tls_server, certs, built, how):
    spec = ({"host": "127.0.0.1", "port": tls_server.port} if how == "tls-section"
            else {"url": f"rediss://localhost:{tls_server.port}/0"})
    assert build(built, load_target(tmp_path, **spec, tls={"ca_file": str(certs.ca)})).ping()


def test_tls_without_the_ca_fails_verification(tmp_path, tls_server, built):
    client = build(built, load_target(tmp_path, host="127.0.0.1", port=tls_server.port, tls=True, client={"retries": 0}))
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.ping()


# -- clusters ------------------------------------------------------------------------------------

def node_target(tmp_path: Path, port: int, clustering_policy: str) -> Target:
    return load_target(tmp_path, host="127.0.0.1", port=port, instance={"clustering_policy": clustering_policy})


def primaries_holding(client: RedisCluster, prefix: str) -> int:
    return sum(1 for node in client.get_primaries() if node.redis_connection.keys(f"{prefix}*"))


def test_oss_cluster_gets_a_cluster_client_that_uses_every_primary(tmp_path, redis_cluster, built):
    client = build(built, node_target(tmp_path, redis_cluster.ports[0], "OSSCluster"))
    assert is_cluster(client) and len(client.get_primaries()) == 3
    prefix = "client:oss:"
    client.mset_nonatomic({f"{prefix}{i}": i for i in range(30)})
    assert client.mget_nonatomic([f"{prefix}{i}" for i in range(30)]) == [str(i).encode() for i in range(30)]
    assert primaries_holding(client, prefix) == 3
    client.delete(*[f"{prefix}{i}" for i in range(30)])


def test_auto_asks_the_server(tmp_path, redis_cluster, redis_server, built):
    on_cluster = build(built, node_target(tmp_path, redis_cluster.ports[1], "auto"))
    on_server = build(built, node_target(tmp_path, redis_server.port, "auto"))
    assert is_cluster(on_cluster) and type(on_server) is redis.Redis
    on_cluster.mset_nonatomic({f"client:auto:{i}": i for i in range(10)})
    assert on_cluster.delete(*[f"client:auto:{i}" for i in range(10)]) == 10


def test_a_plain_client_on_a_cluster_node_is_redirected(tmp_path, redis_cluster, built):
    """What ``auto`` (or ``OSSCluster``) saves a caller from: keys on other primaries answer MOVED."""
    plain = build(built, node_target(tmp_path, redis_cluster.ports[0], "NoCluster"))
    with pytest.raises(MovedError):
        for i in range(20):
            plain.get(f"client:moved:{i}")


def test_unreachable_cluster_raises_redis_connection_error(tmp_path):
    """The same error type a standalone client raises on its first command, not RedisClusterException."""
    target = load_target(tmp_path, host="127.0.0.1", port=free_port(), instance={"clustering_policy": "OSSCluster"},
                         client={"retries": 0})
    with pytest.raises(redis.ConnectionError):
        build_client(target)


def test_oss_cluster_declared_for_a_standalone_server(tmp_path, redis_server):
    with pytest.raises(toolkit.ConfigurationError, match="is not a cluster node"):
        build_client(node_target(tmp_path, redis_server.port, "OSSCluster"))


# -- Entra ID ------------------------------------------------------------------------------------

class AclTokenMint(IdentityProviderInterface):
    """Stands in for Entra ID: each token is a JWT for ``oid`` that expires in 4 s.

    Before handing a token out it is ADDED as a password of ACL user ``oid`` on every primary
    (never replacing the others: redis-py asks twice on the first connect). ``retire`` makes
    every later request fail, which ends the token manager's refresh chain.
    """

    def __init__(self, admins: list[redis.Redis]):
        self.oid = f"app-{uuid.uuid4().hex[:8]}"
        self.admins = admins
        self.issued: list[str] = []
        self._retired = threading.Event()

    delay = 0.0
    """Seconds each token request takes, as an HTTP request to Entra ID would."""

    def request_token(self, force_refresh: bool = False) -> JWToken:
        if self._retired.is_set():
            raise RequestTokenErr("retired by the test")
        time.sleep(self.delay)
        token = jwt.encode({"oid": self.oid, "exp": int(time.time()) + 4}, "k" * 32, algorithm="HS256")
        for admin in self.admins:
            admin.acl_setuser(self.oid, enabled=True, passwords=[f"+{token}"], keys=["*"], channels=["*"], categories=["+@all"])
        self.issued.append(token)
        return JWToken(token)

    def revoke_all_but_last(self) -> None:
        for admin in self.admins:
            admin.acl_setuser(self.oid, enabled=True, passwords=[f"-{t}" for t in set(self.issued) - {self.issued[-1]}])

    def retire(self) -> None:
        self._retired.set()


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory, certs: Certificates):
    cluster = start_tls_cluster(tmp_path_factory.mktemp("tls-cluster"), certs)
    yield cluster
    cluster.stop()


def auth_calls(admin: redis.Redis) -> int:
    return admin.info("commandstats").get("cmdstat_auth", {}).get("calls", 0)


FAST_REFRESH = TokenManagerConfig(0.5, 0, 100, RetryPolicy(3, 10))
"""Refresh half-way through a 3-4 s token."""


def entra_setup(request: pytest.FixtureRequest, tmp_path: Path, certs: Certificates, kind: str,
                ) -> tuple[list[redis.Redis], AclTokenMint, Target]:
    """TLS servers (one, or the cluster's primaries), their admin clients, the token mint and an entra-id target."""
    servers = [request.getfixturevalue("tls_server")] if kind == "standalone" else request.getfixturevalue("tls_cluster").nodes
    admins = [redis.Redis(port=s.port, ssl=True, ssl_ca_certs=str(certs.ca)) for s in servers]
    for admin in admins:
        admin.config_resetstat()
    target = load_target(tmp_path, host="127.0.0.1", port=servers[0].port, tls={"ca_file": str(certs.ca)},
                         auth={"type": "entra-id"},
                         instance={"clustering_policy": "OSSCluster" if kind == "cluster" else "NoCluster"})
    return admins, AclTokenMint(admins), target


@pytest.mark.parametrize("kind", ["standalone", "cluster"])
def test_entra_id_token_is_used_refreshed_and_re_sent(request, tmp_path, certs, built, kind):
    """Login as the token's oid, re-AUTH on refresh, and reconnect with a current token once old ones are revoked."""
    admins, mint, target = entra_setup(request, tmp_path, certs, kind)
    built.extend(admins)
    client = build(built, target, identity_provider=mint, token_manager_config=FAST_REFRESH)
    try:
        assert is_cluster(client) == (kind == "cluster")
        assert client.acl_whoami() == mint.oid
        keys = {f"client:entra:{i}": str(i).encode() for i in range(30)}
        for key, value in keys.items():  # a connection to every primary
            client.set(key, value)
        assert all(any(c["user"] == mint.oid for c in a.client_list(_type="normal")) for a in admins)
        before = [auth_calls(a) for a in admins]  # logins are HELLO 3 AUTH; only a refresh sends AUTH

        wait_until(lambda: all(auth_calls(a) > n for a, n in zip(admins, before)),
                   "a token refresh to re-AUTH the connection to every primary")
        assert len(mint.issued) >= 3
        assert [client.get(k) for k in keys] == list(keys.values())

        mint.revoke_all_but_last()
        for admin in admins:
            admin.client_kill_filter(user=mint.oid)
        assert [client.get(k) for k in keys] == list(keys.values())  # new connections, current token
        assert client.delete(*keys) == len(keys)

        close_client(client)  # must also stop the token refresh (client.close() alone does not)
        issued = len(mint.issued)
        time.sleep(2.5)  # more than one refresh period of these 4 s tokens
        assert len(mint.issued) == issued
    finally:
        mint.retire()


def azure_target(tmp_path: Path, **auth: Any) -> Target:
    return load_target(tmp_path, provider="azure-managed-redis", host="cache.example.invalid",
                       auth={"type": "entra-id", **auth}, instance={"clustering_policy": "EnterpriseCluster"})


@pytest.mark.parametrize("auth", [
    {"identity": "default"},
    {"identity": "default", "tenant_id": "00000000-0000-0000-0000-000000000001", "client_id": "app-client"},
    {"identity": "managed-identity"},
    {"identity": "managed-identity", "client_id": "${TOOLKIT_TEST_CLIENT_ID}"},
])
def test_azure_identities_are_built_without_asking_azure(tmp_path, built, monkeypatch, auth):
    """Only construction: a token request needs Azure. Nothing is fetched until the first command."""
    from redis_entraid.cred_provider import EntraIdCredentialsProvider

    monkeypatch.setenv("TOOLKIT_TEST_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    client = build(built, azure_target(tmp_path, **auth))
    assert type(client) is redis.Redis
    settings = client.get_connection_kwargs()
    assert isinstance(settings["credential_provider"], EntraIdCredentialsProvider)
    assert (settings["port"], settings["ssl_check_hostname"]) == (10000, True)


def test_azure_identity_settings_must_be_present(tmp_path, monkeypatch):
    monkeypatch.delenv("TOOLKIT_TEST_CLIENT_ID", raising=False)
    with pytest.raises(toolkit.ConfigurationError, match="auth.client_id: environment variable TOOLKIT_TEST_CLIENT_ID"):
        build_client(azure_target(tmp_path, identity="managed-identity", client_id="${TOOLKIT_TEST_CLIENT_ID}"))
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    with pytest.raises(toolkit.ConfigurationError, match="environment variable AZURE_CLIENT_SECRET is not set"):
        build_client(azure_target(tmp_path, identity="service-principal"))


def test_identity_provider_only_for_entra_targets(tmp_path, redis_server):
    target = load_target(tmp_path, url=f"redis://127.0.0.1:{redis_server.port}/0")
    with pytest.raises(toolkit.ConfigurationError, match="identity_provider applies to entra-id targets"):
        build_client(target, identity_provider=AclTokenMint([]))
