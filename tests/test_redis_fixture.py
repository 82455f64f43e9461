"""The fixture itself: a real server that answers and is gone after stop()."""

import socket

from tests.servers import start_redis


def test_fixture_server_answers(redis_client):
    assert redis_client.ping() is True
    assert redis_client.info("server")["redis_version"]


def test_stop_frees_the_port(tmp_path):
    server = start_redis(directory=tmp_path)
    port, pid = server.port, server.pid
    server.stop()
    assert server.pid is None
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    try:
        import os
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive


def test_cluster_fixture_spreads_keys_over_three_primaries(cluster_client):
    for i in range(30):
        cluster_client.set(f"k:{i}", i)
    per_node = [n.redis_connection.dbsize() for n in cluster_client.get_primaries()]
    assert len(per_node) == 3 and sum(per_node) == 30 and all(per_node)


def test_tls_fixture_needs_the_ca(tmp_path):
    import redis
    import pytest
    from tests.servers import make_certificates, start_tls_redis

    certs = make_certificates(tmp_path / "certs")
    server = start_tls_redis(tmp_path / "tls", certs)
    try:
        ok = redis.Redis(host="127.0.0.1", port=server.port, ssl=True, ssl_ca_certs=str(certs.ca))
        assert ok.ping()
        ok.close()
        with pytest.raises(redis.ConnectionError):
            redis.Redis(host="127.0.0.1", port=server.port, ssl=True, retry=None).ping()
    finally:
        server.stop()
