"""Numbers and durations written as floats or out of range: a whole float is the integer it
stands for, anything else is one located issue, and no value (``1.0e+308``, ``.inf``, ``.nan``,
``-0.0``, 5000 digits) ever escapes as another exception or overflows downstream."""

from __future__ import annotations

from pathlib import Path

import pytest

import toolkit
from toolkit.policy.durations import MAX_DURATION_MS, DurationTooLong, parse_duration

TOO_LONG = "longer than the maximum duration, 36500d (100 years)"

# One file using every field that takes a number or a duration; {name} marks the value a test replaces.
POLICY = """\
tiers:
  brief: {{min: {min}, max: {max}, default: {default}}}
namespaces:
  feed:
    key: "feed:{{id}}"
    type: list
    tier: stable
    ttl: {ttl}
    jitter: {jitter}
    max_length: {max_length}
    params:
      id: {{type: int, max_length: {param_max_length}}}
    cache_aside:
      lock: true
      lock_timeout: {lock_timeout}
      wait_timeout: {wait_timeout}
      early_refresh: {early_refresh}
      negative_ttl: {negative_ttl}
targets:
  cache:
    provider: azure-managed-redis
    host: cache.example.net
    port: {port}
    db: {db}
    client:
      socket_timeout: {socket_timeout}
      connect_timeout: {connect_timeout}
      max_connections: {max_connections}
      retries: {retries}
      health_check_interval: {health_check_interval}
      breaker_threshold: {breaker_threshold}
      breaker_cooldown: {breaker_cooldown}
    azure: {{subscription: s, resource_group: g, cluster: c}}
    instance: {{capacity: {capacity}, minimum_tls_version: {minimum_tls_version}}}
"""
INTEGERS = dict(min=60, max=600, default=120, ttl=7200, jitter=60, max_length=100, param_max_length=32, lock_timeout=5,
                wait_timeout=2, early_refresh=2, negative_ttl=30, port=10000, db=0, socket_timeout=5, connect_timeout=2,
                max_connections=50, retries=3, health_check_interval=0, breaker_threshold=3, breaker_cooldown=1, capacity=2,
                minimum_tls_version="'1.2'")
PATHS = {
    "min": "tiers.brief.min", "ttl": "namespaces.feed.ttl", "jitter": "namespaces.feed.jitter",
    "max_length": "namespaces.feed.max_length", "param_max_length": "namespaces.feed.params.id.max_length",
    "lock_timeout": "namespaces.feed.cache_aside.lock_timeout", "early_refresh": "namespaces.feed.cache_aside.early_refresh",
    "port": "targets.cache.port", "db": "targets.cache.db", "socket_timeout": "targets.cache.client.socket_timeout",
    "max_connections": "targets.cache.client.max_connections", "capacity": "targets.cache.instance.capacity",
    "minimum_tls_version": "targets.cache.instance.minimum_tls_version",
}


def where(field: str) -> tuple[int, int]:
    """Line and column of a field's value in POLICY."""
    text = POLICY.format(**{**INTEGERS, field: "\x00"})
    before = text[:text.index("\x00")]
    return before.count("\n") + 1, len(before) - before.rfind("\n")


def write(directory: Path, **values: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "numbers.yaml"
    path.write_text(POLICY.format(**{**INTEGERS, **values}), encoding="utf-8")
    return path


def issues(path: Path) -> list[str]:
    with pytest.raises(toolkit.PolicyError) as caught:
        toolkit.load(path)
    return [str(issue) for issue in caught.value.issues]


def test_whole_floats_are_the_integers_they_stand_for(tmp_path: Path) -> None:
    as_floats = {name: (f"{value}.0" if isinstance(value, int) else value) for name, value in INTEGERS.items()}
    as_floats.update(ttl="7.2e+3", health_check_interval="-0.0", early_refresh="1.5")
    policy = toolkit.load(write(tmp_path / "floats", **as_floats))
    ns, target = policy.namespaces["feed"], policy.targets["cache"]
    assert (policy.tiers["brief"].min_ms, policy.tiers["brief"].max_ms, policy.tiers["brief"].default_ms) == (60_000, 600_000, 120_000)
    assert (ns.ttl_ms, ns.max_jitter_ms, ns.max_length, ns.params["id"].max_length) == (7_200_000, 60_000, 100, 32)
    assert (ns.cache_aside.lock_timeout_ms, ns.cache_aside.wait_timeout_ms, ns.cache_aside.negative_ttl_ms) == (5000, 2000, 30_000)
    assert ns.cache_aside.early_refresh_beta == 1.5  # the one field that takes a fraction
    assert (target.port, target.db, target.client.max_connections, target.client.retries) == (10000, 0, 50, 3)
    assert (target.client.socket_timeout_ms, target.client.health_check_interval_ms, target.client.breaker_threshold) == (5000, 0, 3)
    assert target.instance.capacity == 2
    for value in (ns.max_length, target.port, target.db, target.client.max_connections, target.instance.capacity):
        assert type(value) is int  # not 100.0: redis-py, Lua and the Azure SDK get what an integer would give them
    assert policy.digest == toolkit.load(write(tmp_path / "ints")).digest  # the same keyspace policy, however written


@pytest.mark.parametrize("field, value, message", [
    ("ttl", "1.5", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got 1.5"),
    ("ttl", ".inf", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got inf"),
    ("ttl", "-.inf", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got -inf"),
    ("ttl", ".nan", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got nan"),
    ("ttl", "1.0e+400", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got inf"),
    ("ttl", "1e400", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got '1e400'"),  # YAML 1.1: text
    ("ttl", "-90.0", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got -90"),
    ("ttl", "1.0e+308", TOO_LONG),
    ("ttl", "3153600001", TOO_LONG),
    ("ttl", "36501d", TOO_LONG),
    ("ttl", "9" * 300, TOO_LONG),
    ("ttl", "9" * 5000 + "s", TOO_LONG),  # more digits than Python turns into an int: refused before int()
    ("min", "0.5", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got 0.5"),
    ("min", "-0.0", "a tier's minimum TTL must be above zero"),
    ("jitter", "1.0e+308", TOO_LONG),
    ("jitter", "99999999999d", TOO_LONG),
    ("jitter", "0.5", "expected a duration such as 90s or a percentage of the ttl such as 10%, got 0.5"),
    ("jitter", '"10%\\n"', "expected a duration such as 90s or a percentage of the ttl such as 10%, got '10%\\n'"),
    ("lock_timeout", "-0.0", "lock_timeout must be above zero: a lock that expires at once locks nothing"),
    ("socket_timeout", "0.0", "socket_timeout must be above zero: redis-py would make the socket non-blocking"),
    ("socket_timeout", ".nan", "expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got nan"),
    ("max_length", "10.5", "expected an integer, got 10.5"),
    ("max_length", "1.0e+308", "must be at most 2147483647, got a 309-digit number"),
    ("max_length", "-0.0", "must be at least 1, got 0"),
    ("param_max_length", "1.0e+308", "must be at most 512, got a 309-digit number"),
    ("param_max_length", ".inf", "expected an integer, got inf"),
    ("port", "6379.5", "expected a port number from 1 to 65535 or an ${ENV_VAR} or ${ENV_VAR:-6380} reference, got 6379.5"),
    ("port", "1.0e+308", "expected a port number from 1 to 65535 or an ${ENV_VAR} or ${ENV_VAR:-6380} reference, got a 309-digit number"),
    ("port", "-0.0", "expected a port number from 1 to 65535 or an ${ENV_VAR} or ${ENV_VAR:-6380} reference, got 0"),
    ("db", ".nan", "expected an integer, got nan"),
    ("db", "15.0000001", "expected an integer, got 15.0000001"),
    ("max_connections", "99999999999999999999999", "must be at most 2147483647, got a 23-digit number"),
    ("capacity", "2.5", "expected an integer, got 2.5"),
    ("early_refresh", ".nan", "expected a boolean (true or false) or a beta factor above 0 and at most 100, got nan"),
    ("early_refresh", ".inf", "expected a boolean (true or false) or a beta factor above 0 and at most 100, got inf"),
    ("early_refresh", "-0.0", "expected a boolean (true or false) or a beta factor above 0 and at most 100, got 0"),
    ("minimum_tls_version", "1.2", "1.2 is not one of 1.0, 1.1, 1.2; quote it: '1.2'"),
    ("minimum_tls_version", "1.0", "1 is not one of 1.0, 1.1, 1.2; quote it: '1.0'"),
])
def test_other_numbers_are_one_located_issue(tmp_path: Path, field: str, value: str, message: str) -> None:
    path = write(tmp_path, **{field: value})
    line, col = where(field)
    found = issues(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{line}:{col}: {PATHS[field]}: ") and message in found[0], found[0]


def test_duration_bounds_are_exact(tmp_path: Path) -> None:
    at_max = tmp_path / "max.yaml"
    at_max.write_text("namespaces:\n  archive:\n    key: 'archive:{id}'\n    type: string\n    tier: static\n"
                      "    ttl: 3153600000000ms\n")
    assert toolkit.load(at_max).namespaces["archive"].ttl_ms == MAX_DURATION_MS == 36_500 * 86_400_000
    at_max.write_text(at_max.read_text().replace("3153600000000ms", "3153600000001ms"))
    assert issues(at_max) == [f"{at_max}:6:10: namespaces.archive.ttl: {TOO_LONG}"]


@pytest.mark.parametrize("value, ms", [
    (90, 90_000), (90.0, 90_000), (-0.0, 0), (0.0, 0), (1e3, 1_000_000), ("90s", 90_000), ("0000090s", 90_000),
    (3_153_600_000, MAX_DURATION_MS), ("36500d", MAX_DURATION_MS),
])
def test_parse_duration_takes_whole_floats(value: object, ms: int) -> None:
    assert parse_duration(value) == ms


@pytest.mark.parametrize("value", [1.5, float("inf"), float("-inf"), float("nan"), -1.0, "1.5s", "٣s", True])
def test_parse_duration_refuses_what_is_no_duration(value: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert not isinstance(caught.value, DurationTooLong)


@pytest.mark.parametrize("value", [1e308, 10**400, 3_153_600_001, "36501d", "9" * 5000 + "ms", "3153600000001ms"])
def test_parse_duration_refuses_what_is_too_long(value: object) -> None:
    with pytest.raises(DurationTooLong, match="36500d"):
        parse_duration(value)
