"""Shared fixtures: a real redis-server per session, a clean database per test."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import REDIS_SERVER, RedisCluster, RedisServer, start_cluster, start_redis

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


def _require_redis() -> None:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed: run .ci/run, which installs it (apt-get install -y redis-server)")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server on a free loopback port for the whole session, stopped by pid."""
    _require_redis()
    server = start_redis(directory=tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer):
    """A redis-py client on the session server, database flushed before the test."""
    import redis

    client = redis.Redis(port=redis_server.port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def policies():
    import toolkit

    return toolkit.load(POLICIES)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A real local Redis Cluster of three primaries for the whole session, stopped by pid."""
    _require_redis()
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_client(redis_cluster: RedisCluster):
    """A RedisCluster client on the session cluster, every primary flushed before the test."""
    from redis.cluster import RedisCluster as Client

    client = Client(host="127.0.0.1", port=redis_cluster.ports[0])
    client.flushall(target_nodes=Client.PRIMARIES)
    yield client
    client.close()


@pytest.fixture(params=("sync", "async"))
def engines(request: pytest.FixtureRequest):
    """The engine under test: each test that takes this fixture runs against Engine and AsyncEngine."""
    from tests.engines import Engines

    kinds = Engines(request.param)
    yield kinds
    kinds.close()


@pytest.fixture
def arm(monkeypatch: pytest.MonkeyPatch):
    """The loopback ARM emulator, with the provisioner pointed at it (TOOLKIT_ARM_ENDPOINT) and a stand-in credential."""
    import toolkit.provision.azure as azure_backend
    from tests.arm_emulator import ArmEmulator, FakeCredential

    emulator = ArmEmulator().start()
    monkeypatch.setenv("TOOLKIT_ARM_ENDPOINT", emulator.base_url)
    monkeypatch.setattr(azure_backend, "default_credential", FakeCredential)
    try:
        yield emulator
    finally:
        emulator.stop()
