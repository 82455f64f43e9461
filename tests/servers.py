"""Real servers for the tests: redis-server processes on free loopback ports, stopped by pid.

Every server a test starts is registered here and stopped by its own pid (SIGTERM, then
SIGKILL), never by name, so a developer's own Redis on this machine is left alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def free_port() -> int:
    """A loopback port nobody listens on right now (and its +10000 cluster-bus port too)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free loopback port")


@dataclass
class RedisServer:
    """One redis-server process started by a test."""

    port: int
    directory: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 10.0) -> "RedisServer":
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        port_args = ["--port", "0", "--tls-port", str(self.port)] if self.tls else ["--port", str(self.port)]
        cmd = [REDIS_SERVER, *port_args, "--bind", "127.0.0.1", "--dir", str(self.directory), "--save", "",
               "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"), *self.args]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited with {self.process.returncode}:\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        """Stop this server by pid: SIGTERM, then SIGKILL if it lingers; reap it."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> "RedisServer":
        self.stop()
        return self.start()


def start_redis(*args: str, port: int | None = None, directory: Path | None = None, tls: bool = False) -> RedisServer:
    """Start a redis-server on a free loopback port with extra ``args``; the caller must ``stop()`` it."""
    directory = directory or Path(tempfile.mkdtemp(prefix="toolkit-redis-"))
    return RedisServer(port or free_port(), directory, list(args), tls=tls).start()


@dataclass
class RedisCluster:
    """A real local Redis Cluster of ``len(nodes)`` primaries (no replicas)."""

    nodes: list[RedisServer]

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, primaries: int = 3, extra: tuple[str, ...] = (), cli_auth: tuple[str, ...] = (),
                  tls: bool = False) -> RedisCluster:
    """Start ``primaries`` cluster-enabled nodes, join them with ``redis-cli --cluster create``, wait for ok."""
    nodes: list[RedisServer] = []
    try:
        for i in range(primaries):
            d = directory / f"node{i}"
            nodes.append(start_redis("--cluster-enabled", "yes", "--cluster-config-file", str(d / "nodes.conf"),
                                     "--cluster-node-timeout", "2000", *extra, directory=d, tls=tls))
        cmd = [REDIS_CLI, *cli_auth, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
               "--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = []
            for n in nodes:
                out = subprocess.run([REDIS_CLI, *cli_auth, "-p", str(n.port), "cluster", "info"],
                                     capture_output=True, text=True, timeout=5).stdout
                states.append("cluster_state:ok" in out)
            if all(states):
                return RedisCluster(nodes)
            time.sleep(0.1)
        raise RuntimeError("cluster did not reach cluster_state:ok within 20 s")
    except BaseException:
        for n in nodes:
            n.stop()
        raise


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    d = directory.resolve()

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=toolkit-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return Certificates(d / "ca.crt", d / "server.crt", d / "server.key")


def _tls_args(certs: Certificates) -> tuple[str, ...]:
    return ("--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key),
            "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "no")


def start_tls_redis(directory: Path, certs: Certificates, *args: str) -> RedisServer:
    """A redis-server that speaks TLS only, on a free loopback port."""
    return start_redis(*_tls_args(certs), *args, directory=directory, tls=True)


def start_tls_cluster(directory: Path, certs: Certificates) -> RedisCluster:
    """A 3-primary cluster that speaks TLS only, clients and cluster bus alike (as Azure's OSS cluster does)."""
    return start_cluster(directory, extra=(*_tls_args(certs), "--tls-cluster", "yes"),
                         cli_auth=("--tls", "--cacert", str(certs.ca)), tls=True)
