"""Target -> redis.asyncio client and AsyncEngine, against the same real servers as test_client.py:
access key, TLS with a private CA, OSS cluster and ``auto``, Entra ID with the test identity provider."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import redis
from redis.exceptions import AuthenticationError

import toolkit
import toolkit.aio
from tests.contract_policy import CONTRACT
from tests.test_client import (  # noqa: F401 - the fixtures are shared by importing them
    FAST_REFRESH,
    auth_calls,
    certs,
    entra_setup,
    keyed_server,
    load_target,
    tls_cluster,
    tls_server,
)
from toolkit.runtime._client import aclose_client, build_async_client, is_cluster


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def use(target: Any, **kwargs: Any) -> tuple[Any, Any]:
    """Build the asyncio client of ``target``, PING it and return (client, the PING's reply); closed after."""
    client = await build_async_client(target, **kwargs)
    try:
        return client, await client.ping()
    finally:
        await aclose_client(client)


def test_access_key_right_and_wrong(tmp_path, keyed_server, monkeypatch):  # noqa: F811
    target = load_target(tmp_path, url=f"redis://127.0.0.1:{keyed_server.port}/0",
                         auth={"type": "access-key", "env": "TOOLKIT_TEST_KEY"})
    monkeypatch.setenv("TOOLKIT_TEST_KEY", "s3cret")
    client, pong = run(use(target))
    assert pong is True and type(client) is redis.asyncio.Redis
    monkeypatch.setenv("TOOLKIT_TEST_KEY", "wrong")
    with pytest.raises(AuthenticationError):
        run(use(target))


@pytest.mark.parametrize("how", ["tls-section", "rediss-url"])
def test_tls_with_a_private_ca(tmp_path, tls_server, certs, how):  # noqa: F811
    spec = ({"host": "127.0.0.1", "port": tls_server.port} if how == "tls-section"
            else {"url": f"rediss://localhost:{tls_server.port}/0"})
    assert run(use(load_target(tmp_path, **spec, tls={"ca_file": str(certs.ca)})))[1] is True


def test_oss_cluster_and_auto_give_an_asyncio_cluster_client(tmp_path, redis_cluster, redis_server):
    async def check() -> None:
        for port, policy, clustered in ((redis_cluster.ports[0], "OSSCluster", True), (redis_cluster.ports[1], "auto", True),
                                        (redis_server.port, "auto", False)):
            target = load_target(tmp_path, host="127.0.0.1", port=port, instance={"clustering_policy": policy})
            client = await build_async_client(target)
            try:
                assert is_cluster(client) == clustered
                assert await client.ping()
            finally:
                await aclose_client(client)

    run(check())


def test_oss_cluster_declared_for_a_standalone_server(tmp_path, redis_server):
    target = load_target(tmp_path, host="127.0.0.1", port=redis_server.port, instance={"clustering_policy": "OSSCluster"})
    with pytest.raises(toolkit.ConfigurationError, match="is not a cluster node"):
        run(build_async_client(target))


@pytest.mark.parametrize("kind", ["standalone", "cluster"])
def test_entra_id_through_the_async_engine(request, tmp_path, certs, kind, caplog):  # noqa: F811
    """The async path logs in as the token's oid, re-AUTHs on refresh, and stops refreshing once closed."""
    admins, mint, target = entra_setup(request, tmp_path, certs, kind)
    for admin in admins:
        admin.ping()  # the test's own admin connections open before the event loop runs
    mint.delay = 0.2  # like an HTTP request to Entra ID: it must never run on the event loop

    policy = toolkit.load(_policy_dir(tmp_path))  # loading files is the application's start-up, not a request

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.slow_callback_duration = 10.0  # connecting: redis-py builds its TLS contexts in the loop (CA file reads)
        client = await build_async_client(target, identity_provider=mint, token_manager_config=FAST_REFRESH)
        engine = toolkit.runtime.AsyncEngine(policy, client, owns_client=True)
        try:
            assert await client.acl_whoami() == mint.oid
            names = engine.namespace("name")
            for i in range(30):  # a connection to every primary
                assert await names.set(f"v{i}", user_id=i) is True
            loop.slow_callback_duration = 0.05  # from here on (token refreshes, commands) a step over 50 ms is logged
            before = [auth_calls(a) for a in admins]
            deadline = time.monotonic() + 15
            while not all(auth_calls(a) > n for a, n in zip(admins, before)):
                assert time.monotonic() < deadline, "no token refresh re-AUTHed every primary"
                await asyncio.sleep(0.1)
            assert [await names.get(user_id=i) for i in range(30)] == [f"v{i}" for i in range(30)]
            assert engine.stats()["name"]["errors"] == 0
        finally:
            await engine.aclose()  # also stops the token refresh
        issued = len(mint.issued)
        await asyncio.sleep(4)  # two refresh periods of these 4 s tokens
        # redis-py's asyncio chain cannot be cancelled, only disarmed: its next renewal is its last, and asks nobody.
        assert len(mint.issued) == issued

    try:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            asyncio.run(scenario(), debug=True)  # the token refresh included
        slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
        assert not slow, slow
    finally:
        mint.retire()
        for admin in admins:
            admin.close()


def _policy_dir(tmp_path: Any) -> Any:
    directory = tmp_path / "contract"
    directory.mkdir(exist_ok=True)
    (directory / "policy.yaml").write_text(CONTRACT)
    return directory
