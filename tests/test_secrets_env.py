"""A value resolved from ``${VAR}`` is never printed: output shows the reference as written instead.

The threat: a pull request edits a policy file so that a target field references a CI secret
(``host: ${CI_SECRET}``, ``azure.subscription: ${AZURE_CLIENT_SECRET}``...) and CI runs
``toolkit plan``/``apply``/``audit``. Each test sets an environment variable to a recognizable
canary, runs the real command line in a fresh interpreter (or ``toolkit.connect`` in this one)
and looks for the canary, in any letter case (host names come back lowercased), in everything
that came out: stdout, stderr, exception messages, log records.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
import redis

import toolkit
from tests.arm_emulator import SUBSCRIPTION, ArmEmulator
from tests.conftest import ROOT
from tests.policytext import PAGE_NAMESPACE
from tests.servers import RedisServer, free_port

CANARY = "S3cr3t-canary-XYZ"
"""Valid as a host name, a resource name and a file name: it goes as far as each field lets it."""
KEY_CANARY = "K3y-canary-ABC"
"""An access key (``auth.env``): never printed either."""
_SCRUBBED_ENV = ("TOOLKIT_ARM_ENDPOINT", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_FEDERATED_TOKEN_FILE", "TOOLKIT_LOCAL_PORT")

_TOOLKIT = Path(sys.executable).with_name("toolkit")
_AZURE_MAIN = textwrap.dedent("""
    import sys, time
    import toolkit.provision.azure as azure

    class FakeCredential:  # the emulator does not check tokens
        def get_token(self, *scopes, **kwargs):
            from azure.core.credentials import AccessToken
            return AccessToken("fake-token", int(time.time()) + 3600)

    azure.default_credential = FakeCredential
    from toolkit.cli import main
    sys.exit(main(sys.argv[1:]))
""")
"""The real command line, with DefaultAzureCredential replaced by a stand-in (as tests/test_provision_azure.py does)."""


def run(args: list[str], env: dict[str, str], *, azure: bool = False) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    full_env = {**base, "PYTHONPATH": str(ROOT), **env}
    if azure:
        cmd = [sys.executable, "-c", _AZURE_MAIN, *args]
    elif _TOOLKIT.exists():
        cmd = [str(_TOOLKIT), *args]
    else:
        cmd = [sys.executable, "-m", "toolkit.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120)


def assert_hidden(done: subprocess.CompletedProcess[str], code: int, *canaries: str) -> None:
    output = done.stdout + done.stderr
    for canary in canaries or (CANARY,):
        assert canary.lower() not in output.lower(), f"{canary!r} printed:\n{output}"
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == code, output


def write_policy(directory: Path, target: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ns.yaml").write_text(PAGE_NAMESPACE)
    (directory / "targets.yaml").write_text("targets:\n  box:\n" + textwrap.indent(textwrap.dedent(target).strip(), "    ")
                                            + "\n")
    return directory


# -- plain Redis: plan, apply and audit in every output format ---------------------------------------

PLAIN_CASES = {
    # id: (target body, extra environment, exit code of plan/apply/audit)
    "host": ('provider: redis\nhost: "${TK_SECRET}"\nport: @PORT@', {}, 1),
    "url-host": ('provider: redis\nurl: "redis://${TK_SECRET}:@PORT@/0"', {}, 1),
    "url-db": ('provider: redis\nurl: "redis://127.0.0.1:@PORT@/${TK_SECRET}"', {}, 1),
    "cluster-host": ('provider: redis\nhost: "${TK_SECRET}"\nport: @PORT@\ninstance:\n  clustering_policy: OSSCluster', {}, 1),
    "auto-cluster-host": ('provider: redis\nhost: "${TK_SECRET}"\nport: @PORT@\ninstance:\n  clustering_policy: auto', {}, 1),
    "url-user": ('provider: redis\nurl: "redis://${TK_SECRET}@127.0.0.1:@PORT@/0"', {}, 0),
    "port": ('provider: redis\nhost: 127.0.0.1\nport: "${TK_SECRET}"', {}, 1),
    "ca-file": ('provider: redis\nurl: "redis://127.0.0.1:@PORT@/0"\ntls:\n  ca_file: "${TK_SECRET}"', {}, 1),
    "username": ('provider: redis\nurl: "redis://127.0.0.1:@PORT@/0"\n'
                 'auth:\n  type: access-key\n  env: TK_KEY\n  username: "${TK_SECRET}"', {"TK_KEY": KEY_CANARY}, 1),
    "tenant-and-client-id": ('provider: redis\nurl: "rediss://127.0.0.1:@PORT@/0"\nauth:\n  type: entra-id\n'
                             '  identity: service-principal\n  client_id: "${TK_SECRET}"\n  tenant_id: "${TK_SECRET}"',
                             {"AZURE_CLIENT_SECRET": KEY_CANARY}, 1),
}
COMMANDS = [("plan", "text"), ("plan", "json"), ("plan", "markdown"), ("apply", "text"), ("apply", "json"),
            ("audit", "text"), ("audit", "json")]


@pytest.fixture
def clean_server(redis_server: RedisServer, redis_client) -> RedisServer:
    """The session server, flushed (audit then finds nothing but what apply publishes)."""
    return redis_server


@pytest.mark.parametrize("case", sorted(PLAIN_CASES))
def test_plain_target_never_prints_a_resolved_value(case: str, clean_server: RedisServer, tmp_path: Path) -> None:
    body, env, code = PLAIN_CASES[case]
    policy = write_policy(tmp_path, body.replace("@PORT@", str(clean_server.port)))
    for command, output in COMMANDS:
        done = run([command, str(policy), "--target", "box", "--output", output], {"TK_SECRET": CANARY, **env})
        assert_hidden(done, code, CANARY, KEY_CANARY)


def test_unreachable_secret_port_is_not_printed(tmp_path: Path) -> None:
    secret_port = str(free_port())  # nothing listens there: redis-py's "Error 111 connecting to host:port"
    policy = write_policy(tmp_path, 'provider: redis\nhost: 127.0.0.1\nport: "${TK_SECRET}"')
    for command, output in COMMANDS:
        done = run([command, str(policy), "--target", "box", "--output", output], {"TK_SECRET": secret_port})
        assert_hidden(done, 1, secret_port)
        assert "${TK_SECRET}" in done.stderr  # the reference is what the reader sees


def test_the_reference_is_shown_in_place_of_the_value(clean_server: RedisServer, tmp_path: Path) -> None:
    policy = write_policy(tmp_path, 'provider: redis\nhost: "${TK_SECRET}"\nport: @PORT@'.replace("@PORT@", str(clean_server.port)))
    done = run(["plan", str(policy), "--target", "box"], {"TK_SECRET": CANARY})
    assert_hidden(done, 1)
    assert f"cannot reach the data plane of target box (${{TK_SECRET}}:{clean_server.port})" in done.stderr


def test_literal_values_and_unset_defaults_are_still_shown(clean_server: RedisServer, tmp_path: Path) -> None:
    """Only environment values are hidden: what the policy file itself says is no secret."""
    policy = write_policy(tmp_path, f'provider: redis\nurl: "redis://127.0.0.1:${{TK_UNSET_PORT:-{clean_server.port}}}/0"')
    done = run(["plan", str(policy), "--target", "box"], {})
    assert done.returncode == 0, done.stderr
    assert f"Target box (redis): redis://127.0.0.1:{clean_server.port}/0" in done.stdout


# -- Azure Managed Redis through the loopback ARM emulator -------------------------------------------

RG, CLUSTER = "rg-test", "cache1"


@pytest.fixture
def arm() -> Iterator[ArmEmulator]:
    emulator = ArmEmulator().start()
    try:
        yield emulator
    finally:
        emulator.stop()


def azure_body(server_port: int, **fields: str) -> str:
    azure = {"subscription": SUBSCRIPTION, "resource_group": RG, "cluster": CLUSTER, "location": "westeurope",
             **{k: v for k, v in fields.items() if k in ("subscription", "resource_group", "cluster", "database", "location")}}
    lines = ["provider: azure-managed-redis", f"host: \"{fields.get('host', '127.0.0.1')}\"",
             f"port: {fields['port']!r}" if "port" in fields else f"port: {server_port}", "tls: false", "azure:"]
    lines += [f'  {k}: "{v}"' for k, v in azure.items()]
    lines += ["instance:", "  clustering_policy: EnterpriseCluster", "  eviction_policy: AllKeysLRU", "  sku: Balanced_B5",
              "  public_network_access: false", "  persistence: disabled"]
    return "\n".join(lines)


def seed(arm: ArmEmulator, port: int, rg: str = RG, cluster: str = CLUSTER, **database: object) -> None:
    arm.add_cluster(rg, cluster, hostName="127.0.0.1")
    arm.add_database(rg, cluster, **{"clusteringPolicy": "EnterpriseCluster", "evictionPolicy": "AllKeysLRU",
                                     "port": port, **database})


AZURE_CASES = {
    # id: (the field holding the reference, is the instance seeded, exit code of plan, of apply)
    "subscription": ("subscription", True, 0, 0),
    "resource_group-missing": ("resource_group", True, 1, 1),
    "cluster-to-create": ("cluster", True, 0, 0),
    "database-to-create": ("database", True, 0, 0),
    "location-of-a-cluster-to-create": ("location", False, 0, 0),
    "host-unreachable": ("host", True, 0, 1),
}


@pytest.mark.parametrize("case", sorted(AZURE_CASES))
def test_azure_target_never_prints_a_resolved_value(case: str, arm: ArmEmulator, clean_server: RedisServer,
                                                    tmp_path: Path) -> None:
    field, seeded, plan_code, apply_code = AZURE_CASES[case]
    if seeded:
        seed(arm, clean_server.port)
    policy = write_policy(tmp_path, azure_body(clean_server.port, **{field: "${TK_SECRET}"}))
    env = {"TK_SECRET": CANARY, "TOOLKIT_ARM_ENDPOINT": arm.base_url}
    for output in ("text", "json", "markdown"):
        done = run(["plan", str(policy), "--target", "box", "--output", output], env, azure=True)
        assert_hidden(done, plan_code)
    done = run(["apply", str(policy), "--target", "box", "--output", "json"], env, azure=True)
    assert_hidden(done, apply_code)


def test_azure_secret_port_is_not_printed(arm: ArmEmulator, clean_server: RedisServer, tmp_path: Path) -> None:
    secret_port = str(free_port())
    seed(arm, clean_server.port)  # the database exists on another port: a blocked change, declared -> live
    policy = write_policy(tmp_path, azure_body(clean_server.port, port="${TK_SECRET}"))
    env = {"TK_SECRET": secret_port, "TOOLKIT_ARM_ENDPOINT": arm.base_url}
    for output in ("text", "json", "markdown"):
        done = run(["plan", str(policy), "--target", "box", "--output", output], env, azure=True)
        assert_hidden(done, 1, secret_port)
    arm.databases.clear()  # a database to create: its port is listed with the create
    for output in ("text", "json", "markdown"):
        done = run(["plan", str(policy), "--target", "box", "--output", output], env, azure=True)
        assert_hidden(done, 0, secret_port)


@pytest.mark.parametrize("status", [400, 403])
def test_azure_error_messages_echoing_the_request_are_scrubbed(status: int, arm: ArmEmulator, clean_server: RedisServer,
                                                               tmp_path: Path) -> None:
    """ARM's messages quote the request path, which holds the subscription and resource names."""
    seed(arm, clean_server.port)
    arm.inject("GET", "/redisEnterprise/", status, times=20)
    policy = write_policy(tmp_path, azure_body(clean_server.port, subscription="${TK_SECRET}"))
    done = run(["plan", str(policy), "--target", "box"], {"TK_SECRET": CANARY, "TOOLKIT_ARM_ENDPOINT": arm.base_url},
               azure=True)
    assert_hidden(done, 1)


# -- toolkit.connect: exception messages and log records ---------------------------------------------

def connect_target(tmp_path: Path, body: str, monkeypatch, value: str = CANARY, **env: str) -> toolkit.PolicySet:
    monkeypatch.setenv("TK_SECRET", value)
    for name, env_value in env.items():
        monkeypatch.setenv(name, env_value)
    for name in _SCRUBBED_ENV:
        if name not in env:
            monkeypatch.delenv(name, raising=False)
    return toolkit.load(write_policy(tmp_path, body))


def assert_not_in(canary: str, exc: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """Not in the exception, nor its chain (what a logged traceback prints), nor any record the toolkit logged.

    Third-party debug logging is out of reach: urllib3 (under MSAL) logs the URLs it requests,
    redis-py's cluster debug lines name the nodes; see test_msal_warns_with_the_tenant_in_the_url.
    """
    seen = [exc]
    while seen[-1].__cause__ is not None or (seen[-1].__context__ is not None and not seen[-1].__suppress_context__):
        seen.append(seen[-1].__cause__ or seen[-1].__context__)  # type: ignore[arg-type]
    for e in seen:
        assert canary.lower() not in f"{type(e).__name__}: {e}".lower(), f"{type(e).__name__}: {e}"
    for record in caplog.records:
        if record.name.startswith("toolkit") or (record.levelno >= logging.WARNING and not record.name.startswith("urllib3")):
            assert canary.lower() not in record.getMessage().lower(), f"{record.name}: {record.getMessage()}"


CONNECT_CASES = {
    # id: (target body, the environment value, exception type)
    "host-not-a-host-name": ('provider: redis\nhost: "${TK_SECRET}"', f"{CANARY}/x", toolkit.ConfigurationError),
    "port": ('provider: redis\nhost: 127.0.0.1\nport: "${TK_SECRET}"', CANARY, toolkit.ConfigurationError),
    "url-db": ('provider: redis\nurl: "redis://127.0.0.1:6379/${TK_SECRET}"', CANARY, toolkit.ConfigurationError),
    "url-host": ('provider: redis\nurl: "redis://${TK_SECRET}:6379/0"', f"{CANARY}!", toolkit.ConfigurationError),
    "ca-file": ('provider: redis\nurl: "rediss://127.0.0.1:6379/0"\ntls:\n  ca_file: "${TK_SECRET}"', CANARY,
                toolkit.ConfigurationError),
    "tenant": ('provider: redis\nurl: "rediss://127.0.0.1:6379/0"\nauth:\n  type: entra-id\n'
               '  identity: service-principal\n  client_id: app\n  tenant_id: "${TK_SECRET}"', CANARY,
               toolkit.ConfigurationError),
}


@pytest.mark.parametrize("case", sorted(CONNECT_CASES))
def test_connect_errors_never_hold_a_resolved_value(case: str, tmp_path: Path, monkeypatch, caplog) -> None:
    body, value, kind = CONNECT_CASES[case]
    policy = connect_target(tmp_path, body, monkeypatch, value, AZURE_CLIENT_SECRET=KEY_CANARY)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(kind) as caught:
        toolkit.connect(policy, "box")
    assert_not_in(CANARY, caught.value, caplog)
    assert_not_in(KEY_CANARY, caught.value, caplog)


_OTHER_RUNTIME = ("toolkit.runtime: the error is raised by code outside the functions this change may edit "
                  "(Engine.verify, the __cause__ of CacheUnavailable, build_client/_cluster_client/_cluster_enabled); "
                  "the CLI paths scrub it")


def test_connect_to_an_unreachable_secret_host_with_verify(tmp_path: Path, monkeypatch, caplog) -> None:
    """``verify=True`` reads the published policy at once: redis-py's "Error connecting to <host>"."""
    policy = connect_target(tmp_path, 'provider: redis\nhost: "${TK_SECRET}"\nport: 6379', monkeypatch)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as caught:
        toolkit.connect(policy, "box", verify=True)
    assert_not_in(CANARY, caught.value, caplog)


def test_connect_to_an_unreachable_secret_cluster_host(tmp_path: Path, monkeypatch, caplog) -> None:
    """A cluster client connects at once (build_client): redis-py's "Error connecting to <host>"."""
    policy = connect_target(tmp_path, 'provider: redis\nhost: "${TK_SECRET}"\nport: 6379\n'
                                      'instance:\n  clustering_policy: OSSCluster', monkeypatch)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(Exception) as caught:
        toolkit.connect(policy, "box")
    assert_not_in(CANARY, caught.value, caplog)


def test_a_secret_host_on_a_non_cluster_server(redis_server: RedisServer, tmp_path: Path, monkeypatch, caplog) -> None:
    """clustering_policy OSSCluster on a plain server: the ConfigurationError names the address."""
    policy = connect_target(tmp_path, f'provider: redis\nhost: "${{TK_SECRET}}"\nport: {redis_server.port}\n'
                                      'instance:\n  clustering_policy: OSSCluster', monkeypatch, value="127.0.0.1")
    with pytest.raises(toolkit.ConfigurationError) as caught:
        toolkit.connect(policy, "box")
    assert "127.0.0.1" not in str(caught.value) and "${TK_SECRET}" in str(caught.value)


def test_a_secret_host_that_is_no_cluster_node(clean_server: RedisServer, tmp_path: Path) -> None:
    """build_client's "<host>:<port> is not a cluster node" comes out with the reference in the CLI."""
    policy = write_policy(tmp_path, f'provider: redis\nhost: "${{TK_SECRET}}"\nport: {clean_server.port}\n'
                                    'instance:\n  clustering_policy: OSSCluster')
    for command, output in COMMANDS:
        done = run([command, str(policy), "--target", "box", "--output", output], {"TK_SECRET": "127.0.0.1"})
        assert_hidden(done, 1, "127.0.0.1")
        assert f"${{TK_SECRET}}:{clean_server.port} is not a cluster node" in done.stderr


@pytest.mark.xfail(strict=True, reason="urllib3, under MSAL, logs a WARNING with the URL it retries, tenant included; "
                                       "the toolkit does not filter third-party loggers")
def test_msal_warns_with_the_tenant_in_the_url(tmp_path: Path, monkeypatch, caplog) -> None:
    body, value, _ = CONNECT_CASES["tenant"]
    policy = connect_target(tmp_path, body, monkeypatch, value, AZURE_CLIENT_SECRET=KEY_CANARY)
    caplog.set_level(logging.WARNING)
    with pytest.raises(toolkit.ConfigurationError):
        toolkit.connect(policy, "box")
    assert not any(CANARY.lower() in r.getMessage().lower() for r in caplog.records)


def test_a_reachable_secret_host_is_shown_as_its_reference(clean_server: RedisServer, tmp_path: Path) -> None:
    """The instance is read, changed and audited: headers, node lists and JSON name ``${TK_SECRET}``."""
    policy = write_policy(tmp_path, f'provider: redis\nhost: "${{TK_SECRET}}"\nport: {clean_server.port}\n'
                                    'instance:\n  eviction_policy: AllKeysLRU')
    client = redis.Redis(port=clean_server.port)
    client.set("page:home", "x")  # the audit finds a violation: a key without TTL
    try:
        for command, output in COMMANDS:
            done = run([command, str(policy), "--target", "box", "--output", output], {"TK_SECRET": "127.0.0.1"})
            assert_hidden(done, 3 if command == "audit" else 0, "127.0.0.1")
            assert "${TK_SECRET}" in done.stdout
    finally:
        client.config_set("maxmemory-policy", "noeviction")  # redis-server's default, as the other tests expect
        client.close()


ODD = "S3cr3t canary/XYZ?#@:%41"
"""A value that URL syntax splits: each piece must stay hidden too."""


@pytest.mark.parametrize("case", ["host", "url-host", "url-db", "url-user", "port", "ca-file", "tenant-and-client-id"])
def test_values_that_urls_split_stay_hidden(case: str, clean_server: RedisServer, tmp_path: Path) -> None:
    body, env, _ = PLAIN_CASES[case]
    policy = write_policy(tmp_path, body.replace("@PORT@", str(clean_server.port)))
    for command in ("plan", "audit"):
        done = run([command, str(policy), "--target", "box"], {"TK_SECRET": ODD, **env})
        assert_hidden(done, 1, ODD, "S3cr3t", "%2541", KEY_CANARY)


@pytest.mark.parametrize("field", ["subscription", "resource_group", "cluster", "database", "location", "host", "port"])
def test_azure_values_that_urls_split_stay_hidden(field: str, arm: ArmEmulator, clean_server: RedisServer,
                                                  tmp_path: Path) -> None:
    seed(arm, clean_server.port)
    policy = write_policy(tmp_path, azure_body(clean_server.port, **{field: "${TK_SECRET}"}))
    for command in ("plan", "apply"):
        done = run([command, str(policy), "--target", "box", "--output", "json"],
                   {"TK_SECRET": ODD, "TOOLKIT_ARM_ENDPOINT": arm.base_url}, azure=True)
        output = done.stdout + done.stderr
        assert "S3cr3t".lower() not in output.lower() and "Traceback" not in output, output


def test_a_fail_closed_call_on_an_unreachable_secret_host(tmp_path: Path, monkeypatch, caplog) -> None:
    """CacheUnavailable itself names no host, but its __cause__ is redis-py's "Error connecting to <host>":
    an application's ``logger.exception`` prints the whole chain."""
    monkeypatch.setenv("TK_SECRET", CANARY)
    directory = write_policy(tmp_path, 'provider: redis\nhost: "${TK_SECRET}"\nport: 6379')
    (directory / "ns.yaml").write_text(PAGE_NAMESPACE + "    on_error: fail-closed\n")
    caplog.set_level(logging.DEBUG)
    engine = toolkit.connect(toolkit.load(directory), "box")
    try:
        with pytest.raises(toolkit.CacheUnavailable) as caught:
            engine.namespace("page").get(slug="x")
    finally:
        engine.close()
    assert_not_in(CANARY, caught.value, caplog)
