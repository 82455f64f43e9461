"""``toolkit.testing``: a pytest plugin to test an application against its Redis policy with a real Redis.

Installed with the package and registered through the ``pytest11`` entry point: every pytest run
in an environment where ``redis-policy-toolkit`` is installed has these fixtures, with no conftest
and no configuration (pytest 8 or later):

``toolkit_redis`` (session)
    The URL of a real redis-server for the whole session: the one ``TOOLKIT_TEST_REDIS_URL`` names,
    or one the plugin starts from ``redis-server`` on ``PATH`` on a free loopback port (a temporary
    directory, no persistence) and stops by its pid when the session ends, however it ends. Neither
    available: the tests that use it are skipped, saying so.
``toolkit_redis_server`` (session)
    The same server as a ``ToolkitRedis``: url, database, and the pid of the server the plugin started.
``toolkit_redis_client``
    A blocking redis-py client (bytes, no decoding) on that database, to look at what the test wrote.
``toolkit_policy`` (session)
    The project's policy set as loaded from the ini option ``toolkit_policies`` (default ``policies``,
    relative to the pytest rootdir).
``toolkit_engine`` / ``toolkit_async_engine``
    A ``toolkit.Engine`` / ``toolkit.aio.AsyncEngine`` over that policy set, connected to the test
    server (see ``retarget``), closed after the test. The async one runs under pytest-asyncio (the
    test marked ``@pytest.mark.asyncio`` or ``asyncio_mode = auto``; the engine is made in the
    test's own event loop) or under anyio's pytest plugin (``@pytest.mark.anyio``, asyncio backend);
    with neither, the test errors, saying what to install.

Every test that uses any of the server fixtures starts on an empty database: it is flushed
(``FLUSHDB``, that database only) before the test's other fixtures run.

``assert_compliant(engine)`` audits the database (``toolkit.audit.run_audit``) and raises an
``AssertionError`` listing the keys that break the policy. With the ini option ``toolkit_strict = true``
the plugin does it after every passing test that used an engine fixture and fails the test when
something breaks the policy; ``@pytest.mark.toolkit_strict(False)`` turns it off for one test,
``@pytest.mark.toolkit_strict`` on.

Safety with ``TOOLKIT_TEST_REDIS_URL``: the named database is FLUSHED before every test. The URL must
therefore name its database (``redis://localhost:6379/15``; a URL without ``/N`` is refused), the
database must be empty when the session first uses it unless ``TOOLKIT_TEST_REDIS_FLUSH=1`` says
that its keys may be deleted, the server must not be a Redis Cluster, and the plugin never sends
``FLUSHALL``. The database is flushed once more when the session ends, so the next run finds it empty.
The password, if any, comes from ``TOOLKIT_TEST_REDIS_PASSWORD``, never from the URL.

``import toolkit`` does not import this module (nor pytest); pytest imports it as a plugin.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest

if TYPE_CHECKING:
    from toolkit.audit import AuditReport
    from toolkit.policy.model import PolicySet, Target
    from toolkit.runtime import AsyncEngine, Engine

__all__ = [
    "ENV_FLUSH", "ENV_PASSWORD", "ENV_URL", "SKIP_NO_REDIS", "ToolkitRedis", "assert_compliant", "format_violations",
    "retarget",
]

ENV_URL = "TOOLKIT_TEST_REDIS_URL"
"""A Redis the tests use instead of starting one: ``redis[s]://host[:port]/DB``; its database DB is flushed."""
ENV_FLUSH = "TOOLKIT_TEST_REDIS_FLUSH"
"""``1``: the database of ``TOOLKIT_TEST_REDIS_URL`` may hold keys when the session starts (they are deleted)."""
ENV_PASSWORD = "TOOLKIT_TEST_REDIS_PASSWORD"
"""The password of ``TOOLKIT_TEST_REDIS_URL`` (URLs carrying a password are refused)."""
SKIP_NO_REDIS = (f"toolkit.testing: no Redis for this test: install redis-server so that it is on PATH "
                 f"(e.g. apt-get install redis-server, brew install redis), or set {ENV_URL}=redis://HOST:PORT/DB "
                 f"(that database is flushed before every test)")
"""The skip reason of the tests using the server fixtures when there is neither."""

TEST_TARGET = "test"
"""The name of the synthetic target when the policy set has several targets and ``toolkit_target`` chooses none."""
ENGINE_FIXTURES = ("toolkit_engine", "toolkit_async_engine")
_EXAMPLES_SHOWN = 5


# -- public helpers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToolkitRedis:
    """The Redis of the test session (the ``toolkit_redis_server`` fixture)."""

    url: str
    """``redis://127.0.0.1:PORT/0`` for a server the plugin started, else ``TOOLKIT_TEST_REDIS_URL``."""
    db: int
    """The database every test starts with empty."""
    pid: int | None = None
    """The redis-server process the plugin started (stopped at the end of the session); None for an external one."""
    directory: Path | None = None
    """That server's working directory, with its ``redis.log``."""

    @property
    def external(self) -> bool:
        """True for ``TOOLKIT_TEST_REDIS_URL``, False for a server the plugin started."""
        return self.pid is None


def retarget(policy: PolicySet, url: str, *, keep: str | None = None, password_env: str | None = None) -> PolicySet:
    """``policy`` with its targets replaced by one ``provider: redis`` target on ``url``.

    The new target keeps the name and the ``client`` settings (timeouts, pool, breaker) of the target
    ``keep`` names, or of the only target when ``keep`` is None and there is one; otherwise it is a
    target named ``test`` with the default client settings. Nothing else of the old targets is kept
    (host, TLS settings, auth, Azure, instance), so an engine over the result cannot reach them.
    ``password_env`` names the environment variable holding the server's password (access-key auth).
    Keyspace rules, and so the policy digest, are unchanged.
    """
    from toolkit.errors import ConfigurationError

    if keep is not None:
        if keep not in policy.targets:
            raise ConfigurationError(f"no target {keep!r} to keep (declared: {', '.join(sorted(policy.targets)) or 'none'})")
        base: Target | None = policy.targets[keep]
    else:
        base = next(iter(policy.targets.values())) if len(policy.targets) == 1 else None
    target = _redis_target(url, base.name if base is not None else TEST_TARGET, password_env)
    if base is not None:
        target = dataclasses.replace(target, client=base.client)
    return dataclasses.replace(policy, targets=MappingProxyType({target.name: target}))


def format_violations(report: AuditReport) -> str:
    """The violations of an audit report, one line per namespace and kind with example keys; "" when compliant."""
    from toolkit.policy.durations import format_duration

    if report.compliant:
        return ""
    lines = [f"{report.violations} violation{'s' if report.violations != 1 else ''} of the policy "
             f"in {report.scanned} key{'s' if report.scanned != 1 else ''}:"]
    for ns in report.namespaces:
        for kind in ("missing_ttl", "ttl_above_max", "ttl_on_persistent", "wrong_type"):
            count = getattr(ns, kind)
            if not count:
                continue
            if kind == "missing_ttl":
                why = f"no TTL, the namespace's is {format_duration(ns.ttl_ms or 0)}"
            elif kind == "ttl_above_max":
                why = f"TTL above the {ns.tier} tier's maximum {format_duration(ns.tier_max_ms or 0)}"
            elif kind == "ttl_on_persistent":
                why = "a TTL on a key of a persistent namespace"
            else:
                found = ", ".join(f"{t} ({n})" for t, n in sorted(ns.found_types.items()))
                why = f"not a Redis {'string' if ns.type == 'counter' else ns.type}: found {found}"
            lines.append(f"  namespace {ns.name}: {kind} ({why}): {_keys(count, ns.examples.get(kind, ()))}")
    if report.unknown_keys:
        lines.append(f"  unknown keys (in no namespace of the policy): {report.unknown_keys}")
        for group in report.unknown:
            lines.append(f"    prefix {group.prefix!r}: {_keys(group.keys, group.examples)}")
    for left in report.leftovers:
        lines.append(f"  leftover keys of namespace {left.namespace} ({left.code} since policy {left.digest[:12]}): "
                     f"{_keys(left.keys, left.examples)}")
    return "\n".join(lines)


def assert_compliant(engine: Engine | AsyncEngine, *, client: Any = None, match: str | None = None) -> AuditReport:
    """Audit the keys in the engine's Redis database against its policy; AssertionError listing those that break it.

    ``client``: the blocking redis-py client to audit with. By default, a ``toolkit.Engine``'s own
    client, or for a ``toolkit_async_engine`` the plugin's client on the same database; an
    ``AsyncEngine`` made otherwise needs it. ``match`` restricts the audit to a SCAN glob. Returns
    the ``AuditReport`` when nothing breaks the policy. In an async test this call blocks the event
    loop for the audit (milliseconds for a test's keys).
    """
    __tracebackhide__ = True
    from toolkit.audit import run_audit

    if client is None:
        client = _AUDIT_CLIENTS.get(engine)
    if client is None:
        from toolkit.runtime import AsyncEngine

        if isinstance(engine, AsyncEngine):
            raise TypeError("assert_compliant: pass client=, a blocking redis-py client on the same database: "
                            "the audit cannot use an AsyncEngine's redis.asyncio client")
        client = engine.client
    report = run_audit(engine.policy, client, match=match)
    if not report.compliant:
        raise AssertionError("keys in Redis break the policy: " + format_violations(report))
    return report


# -- the plugin: options -------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("toolkit_policies", type="args", default=["policies"],
                  help="toolkit.testing: policy files or directories, relative to the rootdir (default: policies)")
    parser.addini("toolkit_target", type="string", default="",
                  help="toolkit.testing: the target whose name and client settings the test target keeps "
                       "(default: the only target, else a synthetic one)")
    parser.addini("toolkit_strict", type="bool", default=False,
                  help="toolkit.testing: audit the database after every test that used an engine fixture")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "toolkit_strict(on=True): audit the Redis database after this test "
                                       "(toolkit.testing), whatever the toolkit_strict ini option says")


# -- the plugin: the server ------------------------------------------------------------------------

@dataclass
class _Session:
    info: ToolkitRedis
    client: Any
    """A blocking redis-py client on the test database: flushing, auditing."""
    target: Target
    stop: Callable[[], None]


_SESSION = pytest.StashKey[_Session]()
_AUDIT_CLIENTS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""AsyncEngine made by the fixture -> the blocking client ``assert_compliant`` audits it with."""


@pytest.fixture(scope="session")
def toolkit_redis_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolkitRedis]:
    """The session's Redis: ``TOOLKIT_TEST_REDIS_URL``, or a redis-server started from PATH and stopped by pid."""
    url = os.environ.get(ENV_URL, "").strip()
    if url:
        session = _external(url)
    else:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip(SKIP_NO_REDIS)
        session = _started(executable, tmp_path_factory.mktemp("toolkit-redis", numbered=True))
    request.config.stash[_SESSION] = session
    try:
        yield session.info
    finally:
        del request.config.stash[_SESSION]
        session.stop()


@pytest.fixture(scope="session")
def toolkit_redis(toolkit_redis_server: ToolkitRedis) -> str:
    """The URL of the session's Redis (``redis://127.0.0.1:PORT/0`` or ``TOOLKIT_TEST_REDIS_URL``)."""
    return toolkit_redis_server.url


@pytest.fixture(autouse=True)
def _toolkit_clean_database(request: pytest.FixtureRequest) -> None:
    """Flush the test database before any other function fixture of a test that uses the server fixtures."""
    if "toolkit_redis_server" not in request.fixturenames:
        return
    request.getfixturevalue("toolkit_redis_server")
    request.config.stash[_SESSION].client.flushdb()


@pytest.fixture
def toolkit_redis_client(request: pytest.FixtureRequest, toolkit_redis_server: ToolkitRedis) -> Iterator[Any]:
    """A blocking redis-py client (bytes, no decoding) on the test database, empty when the test starts."""
    from toolkit.runtime import build_client, close_client

    client = build_client(request.config.stash[_SESSION].target)
    try:
        yield client
    finally:
        close_client(client)


# -- the plugin: policies and engines ----------------------------------------------------------------

@pytest.fixture(scope="session")
def toolkit_policy(pytestconfig: pytest.Config) -> Any:
    """The project's policy set (ini ``toolkit_policies``, default ``policies``, relative to the rootdir), as loaded."""
    import toolkit
    from toolkit.errors import ToolkitError

    paths = [str(pytestconfig.rootpath / p) for p in pytestconfig.getini("toolkit_policies")]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        pytest.fail(f"toolkit.testing: no policy files at {', '.join(missing)} (set the ini option toolkit_policies, "
                    f"relative to the rootdir {pytestconfig.rootpath})", pytrace=False)
    try:
        return toolkit.load(paths)
    except ToolkitError as exc:
        message = f"toolkit.testing: cannot load the policies {', '.join(paths)}:\n{exc}"
    pytest.fail(message, pytrace=False)  # outside the except: the policy's mistakes are printed once


@pytest.fixture(scope="session")
def _toolkit_test_policy(pytestconfig: pytest.Config, toolkit_policy: PolicySet, toolkit_redis_server: ToolkitRedis) -> Any:
    """``toolkit_policy`` retargeted at the session's Redis (see ``retarget``)."""
    from toolkit.errors import ToolkitError

    keep = pytestconfig.getini("toolkit_target") or None
    try:
        return retarget(toolkit_policy, toolkit_redis_server.url, keep=keep, password_env=_password_env())
    except ToolkitError as exc:
        pytest.fail(f"toolkit.testing: ini option toolkit_target = {keep}: {exc}", pytrace=False)


@pytest.fixture
def toolkit_engine(_toolkit_test_policy: PolicySet) -> Iterator[Engine]:
    """A ``toolkit.Engine`` over the project's policies on the test database (empty at the start), closed after the test."""
    import toolkit

    engine = toolkit.connect(_toolkit_test_policy)
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture
def toolkit_async_engine(request: pytest.FixtureRequest, _toolkit_test_policy: PolicySet) -> Any:
    """A ``toolkit.aio.AsyncEngine`` on the test database, made and closed in the test's event loop.

    Needs pytest-asyncio (the test marked ``asyncio``, or ``asyncio_mode = auto``) or anyio's plugin
    (the test marked ``anyio``, asyncio backend). ``_toolkit_test_policy`` is requested here so that the
    database is flushed first (the engine itself comes from an async fixture chosen at run time).
    """
    if "anyio_backend" in request.fixturenames:
        backend = request.getfixturevalue("anyio_backend")
        name = backend if isinstance(backend, str) else backend[0]
        if name != "asyncio":
            pytest.skip(f"toolkit_async_engine runs on asyncio (redis.asyncio), not on the anyio backend {name!r}")
        return request.getfixturevalue("_toolkit_async_engine_anyio")
    if _PYTEST_ASYNCIO is not None and request.config.pluginmanager.has_plugin("asyncio"):
        marker = request.node.get_closest_marker("asyncio")
        scope = (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope")) if marker is not None else None
        if scope is None:
            try:
                scope = request.config.getini("asyncio_default_test_loop_scope") or "function"
            except ValueError:  # a pytest-asyncio without that option
                scope = "function"
        return request.getfixturevalue(f"_toolkit_async_engine_{scope}_loop")
    pytest.fail("toolkit_async_engine needs an asyncio test runner: install pytest-asyncio and mark the test "
                "@pytest.mark.asyncio (or set asyncio_mode = auto), or use anyio's plugin and mark it @pytest.mark.anyio",
                pytrace=False)


@contextlib.asynccontextmanager
async def _async_engine(policy: PolicySet, session: _Session) -> AsyncIterator[AsyncEngine]:
    import toolkit.aio

    engine = await toolkit.aio.connect(policy)
    _AUDIT_CLIENTS[engine] = session.client
    try:
        yield engine
    finally:
        _AUDIT_CLIENTS.pop(engine, None)
        await engine.aclose()


@pytest.fixture
async def _toolkit_async_engine_anyio(request: pytest.FixtureRequest, _toolkit_test_policy: PolicySet) -> AsyncIterator[Any]:
    """The AsyncEngine for tests run by anyio's plugin (which runs this async fixture in the test's loop)."""
    async with _async_engine(_toolkit_test_policy, request.config.stash[_SESSION]) as engine:
        yield engine

try:
    _PYTEST_ASYNCIO: Any = importlib.import_module("pytest_asyncio")
except ImportError:
    _PYTEST_ASYNCIO = None
else:
    def _asyncio_fixture(loop_scope: str) -> Any:
        async def engine(request: pytest.FixtureRequest, _toolkit_test_policy: PolicySet) -> AsyncIterator[Any]:
            async with _async_engine(_toolkit_test_policy, request.config.stash[_SESSION]) as made:
                yield made

        name = f"_toolkit_async_engine_{loop_scope}_loop"
        engine.__name__ = engine.__qualname__ = name
        return _PYTEST_ASYNCIO.fixture(engine, loop_scope=loop_scope, name=name)

    for _scope in ("function", "class", "module", "package", "session"):
        globals()[f"_toolkit_async_engine_{_scope}_loop"] = _asyncio_fixture(_scope)


# -- the plugin: strict mode -----------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After a passing test that used an engine fixture, in strict mode: fail it when the database breaks the policy."""
    result = yield
    funcargs: dict[str, Any] = getattr(item, "funcargs", {})
    engine = next((funcargs[name] for name in ENGINE_FIXTURES if name in funcargs), None)
    if engine is not None and _strict(item):
        session = item.config.stash.get(_SESSION, None)
        if session is not None:
            from toolkit.audit import run_audit
            from toolkit.errors import ToolkitError

            try:
                report = run_audit(engine.policy, session.client)
            except ToolkitError as exc:
                pytest.fail(f"toolkit_strict: could not audit the test database: {exc}", pytrace=False)
            if not report.compliant:
                pytest.fail("toolkit_strict: the keys this test left in Redis break the policy: "
                            + format_violations(report), pytrace=False)
    return result


def _strict(item: pytest.Item) -> bool:
    marker = item.get_closest_marker("toolkit_strict")
    if marker is not None:
        return bool(marker.args[0]) if marker.args else bool(marker.kwargs.get("on", True))
    return bool(item.config.getini("toolkit_strict"))


# -- internals -----------------------------------------------------------------------------------

def _keys(count: int, examples: tuple[str, ...]) -> str:
    shown = examples[:_EXAMPLES_SHOWN]
    more = f", ... ({count - len(shown)} more)" if count > len(shown) else ""
    return f"{count} key{'s' if count != 1 else ''}: {', '.join(repr(k) for k in shown)}{more}"


def _password_env() -> str | None:
    return ENV_PASSWORD if os.environ.get(ENV_PASSWORD) else None


def _redis_target(url: str, name: str, password_env: str | None) -> Target:
    from toolkit.policy.model import Auth, Target

    auth = Auth(type="access-key", env=password_env) if password_env else Auth()
    return Target(name=name, provider="redis", url=url, auth=auth, description="the test Redis (toolkit.testing)")


def _check_url(url: str) -> int:
    """The database number of ``TOOLKIT_TEST_REDIS_URL``; pytest.fail when it is not safe to flush."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        pytest.fail(f"{ENV_URL} must be redis://HOST[:PORT]/DB or rediss://HOST[:PORT]/DB", pytrace=False)
    if parts.password is not None:
        pytest.fail(f"{ENV_URL} must not carry a password: put it in {ENV_PASSWORD}", pytrace=False)
    db = unquote(parts.path).strip("/")
    if not db.isdigit():
        pytest.fail(f"{ENV_URL} must name its database, e.g. redis://{parts.hostname}:{parts.port or 6379}/15: "
                    f"every test FLUSHES that database (FLUSHDB), so the plugin will not guess it", pytrace=False)
    if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") not in ("", "1"):
        pytest.fail(f"{ENV_URL} with pytest-xdist workers: they would flush each other's database; "
                    f"leave it unset so that each worker starts its own redis-server", pytrace=False)
    return int(db)


def _external(url: str) -> _Session:
    """``TOOLKIT_TEST_REDIS_URL``: checked (database named, reachable, standalone, empty unless allowed)."""
    from redis.exceptions import RedisError

    from toolkit.errors import ToolkitError
    from toolkit.runtime import build_client, close_client

    db = _check_url(url)
    try:
        target = _redis_target(url, TEST_TARGET, _password_env())
        client = build_client(target)
    except ToolkitError as exc:
        pytest.fail(f"{ENV_URL}: {exc}", pytrace=False)
    try:
        if client.info("cluster").get("cluster_enabled"):
            raise _Refused(f"{ENV_URL} names a Redis Cluster: the plugin needs a standalone server (databases to flush)")
        keys = client.dbsize()
        if keys and os.environ.get(ENV_FLUSH) != "1":
            raise _Refused(f"{ENV_URL}: database {db} holds {keys} key{'s' if keys != 1 else ''}, and every test flushes "
                           f"it. Point it at an empty database, or set {ENV_FLUSH}=1 to let the tests delete them")
    except RedisError as exc:
        close_client(client)
        pytest.fail(f"{ENV_URL}: cannot use {url}: {type(exc).__name__}: {exc}", pytrace=False)
    except _Refused as exc:
        close_client(client)
        pytest.fail(str(exc), pytrace=False)

    def stop() -> None:
        try:
            client.flushdb()  # leave the database empty for the next run
        except RedisError:
            pass
        finally:
            close_client(client)

    return _Session(ToolkitRedis(url, db), client, target, stop)


class _Refused(Exception):
    pass


def _started(executable: str, directory: Path) -> _Session:
    """A redis-server on a free loopback port in ``directory``, without persistence; stopped by pid."""
    from toolkit.runtime import build_client, close_client

    process = _RedisProcess.start(executable, directory)
    url = f"redis://127.0.0.1:{process.port}/0"
    try:
        target = _redis_target(url, TEST_TARGET, None)
        client = build_client(target)
    except BaseException:
        process.stop()
        raise

    def stop() -> None:
        try:
            close_client(client)
        finally:
            process.stop()

    return _Session(ToolkitRedis(url, 0, process.pid, directory), client, target, stop)


@dataclass
class _RedisProcess:
    """One redis-server child process, stopped by its own pid (SIGTERM, wait, SIGKILL), never by name."""

    process: subprocess.Popen[bytes] | None
    port: int
    pid: int

    @classmethod
    def start(cls, executable: str, directory: Path, timeout: float = 15.0) -> _RedisProcess:
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / "redis.log"
        last = ""
        for _ in range(5):  # another process may take the free port between our probe and redis-server's bind
            port = _free_port()
            cmd = [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory), "--save", "",
                   "--appendonly", "no", "--daemonize", "no", "--logfile", str(log)]
            process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True, preexec_fn=_die_with_parent())
            server = cls(process, port, process.pid)
            atexit.register(server.stop)  # a session torn down without fixture teardown still stops it
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        return server
                except OSError:
                    time.sleep(0.02)
            server.stop()
            last = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            if "Address already in use" not in last:
                break
        raise RuntimeError(f"toolkit.testing: {executable} did not start on 127.0.0.1 (log {log}):\n{last}")

    def stop(self) -> None:
        """SIGTERM, wait up to 5 s, then SIGKILL; reaped so that its pid is free. Idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        if process.poll() is not None:
            return
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            process.wait(timeout=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, what makes a child get SIGTERM when pytest dies (even by SIGKILL), so that no server outlives it.

    PR_SET_PDEATHSIG fires when the thread that started the child ends: fixtures run on pytest's main thread.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:  # runs in the child between fork and exec: nothing imported, nothing locked
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec
