"""toolkit.testing, the pytest plugin for application teams, run with pytester in throwaway projects.

Each inner run is a pytest session of its own: unless a test points it at this session's server with
TOOLKIT_TEST_REDIS_URL, it starts (and must stop) its own redis-server from PATH.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import POLICIES, ROOT, _require_redis
from tests.servers import RedisServer

pytest_plugins = ["pytester"]

POLICY = """\
namespaces:
  user_name:
    key: "user:{user_id}:name"
    type: string
    tier: stable
    params:
      user_id:
        type: int
  views:
    key: "views:{page}"
    type: counter
    tier: volatile
  cart:
    key: "cart:{user_id}"
    type: hash
    tier: moderate
  settings:
    key: "settings:{name}"
    type: string
    tier: persistent
    reason: configuration read at start-up
targets:
  local:
    provider: redis
    url: "redis://127.0.0.1:6379/0"
    client:
      socket_timeout: 2s
"""

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


@pytest.fixture(autouse=True)
def _no_outer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner sessions must not see a TOOLKIT_TEST_REDIS_URL the developer set for this one."""
    for name in ("TOOLKIT_TEST_REDIS_URL", "TOOLKIT_TEST_REDIS_FLUSH", "TOOLKIT_TEST_REDIS_PASSWORD",
                 "PYTEST_XDIST_WORKER_COUNT", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A fresh application project: policies/ and a pytest.ini, no conftest."""
    _require_redis()
    pytester.mkdir("policies")
    (pytester.path / "policies" / "app.yaml").write_text(POLICY)
    pytester.makefile(".ini", pytest=INI)
    return pytester


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# -- installation -----------------------------------------------------------------------------------

def test_entry_point_is_registered_and_import_toolkit_does_not_load_pytest() -> None:
    plugins = {e.name: e.value for e in importlib.metadata.entry_points(group="pytest11")}
    assert plugins.get("toolkit") == "toolkit.testing"
    code = "import sys, toolkit, toolkit.aio, toolkit.audit; print(sorted(m for m in ('pytest', 'toolkit.testing') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_fresh_project_that_only_installs_the_package_gets_every_fixture(project: pytest.Pytester) -> None:
    """A subprocess: the plugin comes from the installed entry point, not from this session or a conftest."""
    project.makepyfile(test_app="""
        import pytest
        import redis
        from toolkit.testing import ToolkitRedis, assert_compliant

        def test_server(toolkit_redis, toolkit_redis_server):
            assert isinstance(toolkit_redis_server, ToolkitRedis) and toolkit_redis_server.pid
            assert toolkit_redis == toolkit_redis_server.url and toolkit_redis.startswith("redis://127.0.0.1:")
            redis.Redis.from_url(toolkit_redis).set("left:behind", "1")

        def test_clean_database_each_test(toolkit_redis_client):
            assert toolkit_redis_client.dbsize() == 0
            toolkit_redis_client.set("left:behind", "1")

        def test_policy(toolkit_policy):
            assert sorted(toolkit_policy.namespaces) == ["cart", "settings", "user_name", "views"]
            assert toolkit_policy.targets["local"].url == "redis://127.0.0.1:6379/0"  # as loaded

        def test_engine(toolkit_engine, toolkit_redis_client, toolkit_redis):
            assert toolkit_redis_client.dbsize() == 0
            assert toolkit_engine.policy.targets["local"].url == toolkit_redis  # retargeted at the test server
            toolkit_engine.namespace("user_name").set("Ada", user_id=1)
            assert toolkit_redis_client.get("user:1:name") == b"Ada"
            assert 0 < toolkit_redis_client.pttl("user:1:name") <= 3_600_000
            assert assert_compliant(toolkit_engine).scanned == 1

        @pytest.mark.asyncio
        async def test_async_engine(toolkit_async_engine, toolkit_redis_client):
            assert toolkit_redis_client.dbsize() == 0
            assert await toolkit_async_engine.namespace("views").incr(page="home") == 1
            assert toolkit_redis_client.get("views:home") == b"1"
            assert_compliant(toolkit_async_engine)

        @pytest.mark.asyncio(loop_scope="module")
        async def test_async_engine_in_a_module_loop(toolkit_async_engine):
            await toolkit_async_engine.namespace("cart").hset("7", "1", user_id=1)
            assert_compliant(toolkit_async_engine)
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error::pytest.PytestUnraisableExceptionWarning")
    result.assert_outcomes(passed=6)


# -- the server ----------------------------------------------------------------------------------

def test_the_server_the_plugin_started_is_stopped_after_a_failing_session(project: pytest.Pytester) -> None:
    project.makepyfile(test_pid="""
        def test_records_the_pid(toolkit_redis_server, pytestconfig):
            (pytestconfig.rootpath / "pid").write_text(f"{toolkit_redis_server.pid} {toolkit_redis_server.url}")

        def test_fails(toolkit_engine):
            assert False, "a failing test"
    """)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    pid, url = (project.path / "pid").read_text().split()
    assert not _alive(int(pid))
    import redis

    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_server_dies_with_a_killed_pytest(project: pytest.Pytester) -> None:
    """pytest killed with SIGKILL runs no teardown: the server still goes, by the parent-death signal."""
    project.makepyfile(test_hang="""
        import time

        def test_hangs(toolkit_redis_server, pytestconfig):
            (pytestconfig.rootpath / "pid").write_text(str(toolkit_redis_server.pid))
            time.sleep(120)
    """)
    pytest_process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=project.path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (project.path / "pid").exists() or not (project.path / "pid").read_text():
            assert time.monotonic() < deadline and pytest_process.poll() is None, "the inner test never started"
            time.sleep(0.05)
        pid = int((project.path / "pid").read_text())
        assert _alive(pid)
    finally:
        os.kill(pytest_process.pid, signal.SIGKILL)
        pytest_process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_skips_with_a_clear_message_without_redis_server_or_url(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    project.makepyfile(test_skip="""
        def test_engine(toolkit_engine):
            raise AssertionError("must not run")

        def test_url(toolkit_redis):
            raise AssertionError("must not run")

        def test_policy_needs_no_server(toolkit_policy):
            assert "cart" in toolkit_policy.namespaces

        def test_unrelated():
            pass
    """)
    result = project.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*no Redis for this test: install redis-server so that it is on PATH*"
                                 "TOOLKIT_TEST_REDIS_URL=redis://HOST:PORT/DB*"])


# -- TOOLKIT_TEST_REDIS_URL -------------------------------------------------------------------------

def test_the_url_is_used_and_left_empty(project: pytest.Pytester, redis_server: RedisServer,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/7"
    outer = redis.Redis.from_url(url)
    outer.flushdb()
    monkeypatch.setenv("TOOLKIT_TEST_REDIS_URL", url)
    project.makepyfile(test_url=f"""
        import redis
        from toolkit.testing import assert_compliant

        def test_uses_the_url(toolkit_redis, toolkit_redis_server, toolkit_engine):
            assert toolkit_redis == {url!r} and toolkit_redis_server.external and toolkit_redis_server.pid is None
            assert toolkit_redis_server.db == 7
            toolkit_engine.namespace("user_name").set("Ada", user_id=1)
            assert redis.Redis(port={redis_server.port}, db=7).get("user:1:name") == b"Ada"
            assert redis.Redis(port={redis_server.port}, db=0).get("user:1:name") is None

        def test_flushed_between_tests(toolkit_redis_client):
            assert toolkit_redis_client.dbsize() == 0
            toolkit_redis_client.set("x", "1")
    """)
    other = redis.Redis(port=redis_server.port, db=8)
    other.set("untouched", "1")  # another database of the same server: never flushed
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert outer.dbsize() == 0  # flushed at the end, so the next run finds it empty
    assert other.get("untouched") == b"1"
    other.flushdb()


@pytest.mark.parametrize(("url", "message"), [
    ("redis://127.0.0.1:{port}", "*TOOLKIT_TEST_REDIS_URL must name its database, e.g. redis://127.0.0.1:{port}/15*FLUSHES*"),
    ("redis://127.0.0.1:{port}/", "*TOOLKIT_TEST_REDIS_URL must name its database*"),
    ("redis://:secret@127.0.0.1:{port}/7", "*must not carry a password: put it in TOOLKIT_TEST_REDIS_PASSWORD*"),
    ("http://127.0.0.1:{port}/7", "*TOOLKIT_TEST_REDIS_URL must be redis://HOST[[]:PORT]/DB*"),
    ("redis://127.0.0.1:1/7", "*TOOLKIT_TEST_REDIS_URL: cannot use redis://127.0.0.1:1/7: ConnectionError*"),
])
def test_unsafe_or_unusable_urls_are_refused(project: pytest.Pytester, redis_server: RedisServer,
                                             monkeypatch: pytest.MonkeyPatch, url: str, message: str) -> None:
    monkeypatch.setenv("TOOLKIT_TEST_REDIS_URL", url.format(port=redis_server.port))
    project.makepyfile(test_refused="""
        def test_a(toolkit_engine):
            pass

        def test_b(toolkit_redis):
            pass
    """)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([message.format(port=redis_server.port)])
    assert "secret" not in result.stdout.str()


def test_a_database_holding_keys_is_flushed_only_when_allowed(project: pytest.Pytester, redis_server: RedisServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    url = f"redis://127.0.0.1:{redis_server.port}/9"
    outer = redis.Redis.from_url(url)
    outer.flushdb()
    outer.set("precious", "1")
    monkeypatch.setenv("TOOLKIT_TEST_REDIS_URL", url)
    project.makepyfile(test_db="""
        def test_a(toolkit_redis_client):
            assert toolkit_redis_client.dbsize() == 0
    """)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*database 9 holds 1 key, and every test flushes it. Point it at an empty database, "
                                 "or set TOOLKIT_TEST_REDIS_FLUSH=1*"])
    assert outer.get("precious") == b"1"
    monkeypatch.setenv("TOOLKIT_TEST_REDIS_FLUSH", "1")
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert outer.dbsize() == 0


def test_password_from_its_own_variable(project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.servers import start_redis

    server = start_redis("--requirepass", "s3cret-pw", directory=tmp_path / "auth")
    try:
        monkeypatch.setenv("TOOLKIT_TEST_REDIS_URL", f"redis://127.0.0.1:{server.port}/3")
        monkeypatch.setenv("TOOLKIT_TEST_REDIS_PASSWORD", "s3cret-pw")
        project.makepyfile(test_auth="""
            def test_a(toolkit_engine, toolkit_redis_client):
                toolkit_engine.namespace("views").incr(page="a")
                assert toolkit_redis_client.get("views:a") == b"1"
        """)
        project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    finally:
        server.stop()


# -- engines and targets ---------------------------------------------------------------------------

def test_async_engine_under_anyio_and_without_any_async_plugin(project: pytest.Pytester) -> None:
    project.makepyfile(test_async="""
        import pytest

        @pytest.mark.anyio
        async def test_anyio(toolkit_async_engine, toolkit_redis_client):
            assert toolkit_redis_client.dbsize() == 0
            await toolkit_async_engine.namespace("views").incr(page="a")
            assert toolkit_redis_client.get("views:a") == b"1"

        @pytest.mark.anyio
        async def test_anyio_flushed(toolkit_async_engine, toolkit_redis_client):
            assert toolkit_redis_client.dbsize() == 0
    """)
    project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio").assert_outcomes(passed=2)
    project.makepyfile(test_async="""
        async def test_async(toolkit_async_engine):
            pass
    """)
    result = project.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:anyio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*toolkit_async_engine needs an asyncio test runner: install pytest-asyncio*"])


def test_policies_and_target_from_the_ini_options(pytester: pytest.Pytester) -> None:
    _require_redis()
    shutil.copytree(POLICIES, pytester.path / "config" / "redis")
    pytester.makefile(".ini", pytest=INI + "toolkit_policies = config/redis\ntoolkit_target = local\n")
    pytester.makepyfile(test_ini="""
        def test_target(toolkit_engine, toolkit_redis):
            (target,) = toolkit_engine.policy.targets.values()
            assert target.name == "local" and target.provider == "redis" and target.url == toolkit_redis
            assert target.azure is None
            toolkit_engine.namespace("user_name").set("Ada", user_id=1001)
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.makefile(".ini", pytest=INI + "toolkit_policies = config/redis\ntoolkit_target = staging\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ini option toolkit_target = staging: no target 'staging' to keep (declared: local, production)*"])
    pytester.makefile(".ini", pytest=INI + "toolkit_policies = nowhere\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no policy files at */nowhere (set the ini option toolkit_policies*"])


def test_retarget(policies) -> None:
    from toolkit.testing import retarget

    one = retarget(policies, "redis://127.0.0.1:1234/2", keep="production")
    (target,) = one.targets.values()
    assert (target.name, target.provider, target.url, target.azure, target.auth.type) == (
        "production", "redis", "redis://127.0.0.1:1234/2", None, "none")
    assert target.client == policies.targets["production"].client
    assert one.digest == policies.digest and one.namespaces is policies.namespaces
    several = retarget(policies, "redis://127.0.0.1:1234/2", password_env="PW")
    assert list(several.targets) == ["test"] and several.targets["test"].auth.env == "PW"
    import toolkit

    with pytest.raises(toolkit.ConfigurationError, match="no target 'nope'"):
        retarget(policies, "redis://127.0.0.1:1234/2", keep="nope")


# -- compliance --------------------------------------------------------------------------------------

def test_assert_compliant_lists_the_violating_keys(redis_server: RedisServer, redis_client, tmp_path: Path) -> None:
    import toolkit
    from toolkit.testing import assert_compliant, format_violations

    (tmp_path / "app.yaml").write_text(POLICY)
    engine = toolkit.connect(str(tmp_path), client=redis_client)
    engine.namespace("user_name").set("Ada", user_id=1)
    assert assert_compliant(engine).compliant
    redis_client.set("user:2:name", "no ttl")
    redis_client.set("user:3:name", "too long", ex=10 * 86_400)
    redis_client.set("cart:4", "not a hash", ex=60)
    redis_client.set("settings:x", "1", ex=60)
    for i in range(7):
        redis_client.set(f"legacy:{i}", "1")
    redis_client.set("tmp", "1")
    with pytest.raises(AssertionError) as caught:
        assert_compliant(engine)
    message = str(caught.value)
    assert message.splitlines()[0] == "keys in Redis break the policy: 12 violations of the policy in 13 keys:"
    assert "  namespace user_name: missing_ttl (no TTL, the namespace's is 1h): 1 key: 'user:2:name'" in message
    assert "  namespace user_name: ttl_above_max (TTL above the stable tier's maximum 1d): 1 key: 'user:3:name'" in message
    assert "  namespace cart: wrong_type (not a Redis hash: found string (1)): 1 key: 'cart:4'" in message
    assert "  namespace settings: ttl_on_persistent (a TTL on a key of a persistent namespace): 1 key: 'settings:x'" in message
    assert "  unknown keys (in no namespace of the policy): 8" in message
    assert "    prefix 'legacy': 7 keys: 'legacy:" in message and ", ... (2 more)" in message
    assert "    prefix 'tmp': 1 key: 'tmp'" in message
    assert "user:1:name" not in message
    from toolkit.audit import run_audit

    assert format_violations(run_audit(engine.policy, redis_client)) in message
    assert_compliant(engine, match="user:1:*")


def test_assert_compliant_on_an_async_engine_made_without_the_fixture(redis_server: RedisServer, redis_client) -> None:
    import asyncio

    import redis.asyncio

    import toolkit.aio
    from toolkit.testing import assert_compliant

    async def scenario() -> None:
        client = redis.asyncio.Redis(port=redis_server.port)
        async with toolkit.aio.connect(str(POLICIES), client=client) as engine:
            with pytest.raises(TypeError, match="pass client="):
                assert_compliant(engine)
            assert_compliant(engine, client=redis_client)
        await client.aclose()

    asyncio.run(scenario())


STRICT_TESTS = """
    import pytest

    def test_compliant(toolkit_engine):
        toolkit_engine.namespace("user_name").set("Ada", user_id=1)

    def test_raw_set_without_ttl(toolkit_engine):
        toolkit_engine.client.set("user:2:name", "Bob")

    def test_wrong_ttl(toolkit_engine):
        toolkit_engine.client.set("user:3:name", "Cy", ex=7 * 86400)

    def test_key_outside_the_policy(toolkit_engine):
        toolkit_engine.client.set("scratch:1", "x")

    @pytest.mark.toolkit_strict(False)
    def test_opted_out(toolkit_engine):
        toolkit_engine.client.set("scratch:2", "x")

    def test_no_engine_fixture(toolkit_redis_client):
        toolkit_redis_client.set("scratch:3", "x")

    @pytest.mark.asyncio
    async def test_async_raw_write(toolkit_async_engine):
        await toolkit_async_engine.client.set("scratch:4", "x")

    @pytest.mark.asyncio
    async def test_async_compliant(toolkit_async_engine):
        await toolkit_async_engine.namespace("views").incr(page="home")
"""


def test_strict_mode_fails_the_tests_that_break_the_policy(project: pytest.Pytester) -> None:
    project.makefile(".ini", pytest=INI + "toolkit_strict = true\n")
    project.makepyfile(test_strict=STRICT_TESTS)
    result = project.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=4, failed=4)
    outcomes = {r.nodeid.split("::")[-1]: r.outcome for r in result.reprec.getreports("pytest_runtest_logreport")
                if r.when == "call"}
    assert outcomes == {"test_compliant": "passed", "test_raw_set_without_ttl": "failed", "test_wrong_ttl": "failed",
                        "test_key_outside_the_policy": "failed", "test_opted_out": "passed", "test_no_engine_fixture": "passed",
                        "test_async_raw_write": "failed", "test_async_compliant": "passed"}
    result.stdout.fnmatch_lines([
        "*test_raw_set_without_ttl*",
        "toolkit_strict: the keys this test left in Redis break the policy: 1 violation of the policy in 1 key:",
        "  namespace user_name: missing_ttl (no TTL, the namespace's is 1h): 1 key: 'user:2:name'",
    ])
    result.stdout.fnmatch_lines(["*namespace user_name: ttl_above_max (TTL above the stable tier's maximum 1d): 1 key: 'user:3:name'"])
    result.stdout.fnmatch_lines(["*prefix 'scratch': 1 key: 'scratch:1'", "*prefix 'scratch': 1 key: 'scratch:4'"])
    project.makefile(".ini", pytest=INI)  # strict off: the same tests all pass, unless marked
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=8)
    project.makepyfile(test_strict=STRICT_TESTS.replace("def test_raw_set_without_ttl", "@pytest.mark.toolkit_strict\n"
                                                                                         "    def test_raw_set_without_ttl"))
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=7, failed=1)


# -- the example ---------------------------------------------------------------------------------------

def test_the_example_application_test_passes(pytester: pytest.Pytester) -> None:
    """examples/app_test, as a team would run it: its own pytest.ini, policies and tests, the installed plugin."""
    _require_redis()
    example = ROOT / "examples" / "app_test"
    shutil.copytree(example, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error::pytest.PytestUnraisableExceptionWarning")
    result.assert_outcomes(passed=7)
    # strict mode is on there: a shortcut around the engine fails the test that took it
    tests = pytester.path / "tests" / "test_shop.py"
    tests.write_text(tests.read_text() + textwrap.dedent("""

        def test_shortcut(shop):
            shop.engine.client.set("shop:product:1", "{}")
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, failed=1)
    result.stdout.fnmatch_lines(["*namespace product: missing_ttl (no TTL, the namespace's is 15m): 1 key: 'shop:product:1'"])
