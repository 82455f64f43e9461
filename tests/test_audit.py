"""``toolkit audit`` on a real redis-server: exact counts for a seeded keyspace, TTL fixes, the CLI."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
import redis

import toolkit
from toolkit.audit import AuditReport, fix_ttl, run_audit
from toolkit.audit._fix import Fixer
from toolkit.audit._tally import Candidate
from toolkit.audit.command import run as run_command
from toolkit.cli import main
from toolkit.policy.published import POLICY_KEY, publish

H, M, S = 3_600_000, 60_000, 1000

POLICY = """
version: 1
tiers:
  short:
    min: 10s
    max: 2m
    default: 30s
namespaces:
  profile:
    key: "profile:{id}"
    type: string
    tier: stable
    ttl: 1h
    jitter: 10m
    params: {id: {type: int}}
  cart:
    key: "cart:{id}"
    type: hash
    tier: moderate
    ttl: 30m
    params: {id: {type: int}}
  views:
    key: "views:{page}"
    type: counter
    tier: short
    ttl: 90s
    jitter: 10%
    params: {page: {type: slug}}
  feed:
    key: "feed:{id}"
    type: list
    tier: volatile
    ttl: 2m
    params: {id: {type: int}}
  config:
    key: "config:{name}"
    type: string
    tier: persistent
    reason: Feature switches, written by the deploy pipeline and never expiring.
    params: {name: {type: slug}}
targets:
  local:
    provider: redis
    url: "redis://127.0.0.1:@PORT@/0"
    instance:
      clustering_policy: @CLUSTERING@
"""


def write_policy(directory: Path, port: int, clustering: str = "NoCluster") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "audit.yaml").write_text(POLICY.replace("@PORT@", str(port)).replace("@CLUSTERING@", clustering))
    return directory


@pytest.fixture
def policy_dir(tmp_path: Path, redis_server) -> Path:
    return write_policy(tmp_path / "policies", redis_server.port)


@pytest.fixture
def policy(policy_dir: Path) -> toolkit.PolicySet:
    return toolkit.load(policy_dir)


# -- the seeded keyspace -------------------------------------------------------------------------

EXPECTED = {  # namespace: (keys, missing_ttl, ttl_above_max, ttl_on_persistent, wrong_type, ttl_below_min)
    "profile": (13, 3, 2, 0, 2, 1),
    "cart": (7, 2, 0, 0, 1, 0),
    "views": (5, 2, 0, 0, 0, 0),
    "feed": (2, 0, 0, 0, 0, 0),
    "config": (3, 0, 0, 1, 0, 0),
}
EXPECTED_UNKNOWN = {"legacy": 4, "profile": 1, "tmp": 1, "nocolon": 1, "bin": 1}
FIXABLE = 3 + 2 + 2 + 2  # missing TTLs (profile, cart, views) and profile TTLs above the tier max
UNFIXABLE = 2 + 1 + 1 + sum(EXPECTED_UNKNOWN.values())  # wrong types, a TTL on a persistent key, unknown keys


def seed_mixed(client) -> None:
    """Every kind of finding, with the counts of EXPECTED and EXPECTED_UNKNOWN."""
    p = client.pipeline(transaction=False)
    for i in range(5):
        p.set(f"profile:{i}", "x", px=H + (i + 1) * M)  # compliant
    for i in range(5, 8):
        p.set(f"profile:{i}", "x")  # no TTL
    for i in range(8, 10):
        p.set(f"profile:{i}", "x", px=48 * H)  # above the stable tier's 24 h
    p.set("profile:10", "x", px=30 * M)  # below the tier min: reported, not a violation
    p.hset("profile:11", "a", "1")  # wrong type, no TTL: must stay untouched
    p.hset("profile:12", "a", "1")
    p.pexpire("profile:12", H)  # wrong type with a fine TTL
    for i in range(4):
        p.hset(f"cart:{i}", "item", "1")
        p.pexpire(f"cart:{i}", 30 * M)
    for i in range(4, 6):
        p.hset(f"cart:{i}", "item", "1")  # no TTL
    p.set("cart:6", "x", px=30 * M)  # wrong type
    for page in ("home", "search", "cart"):
        p.set(f"views:{page}", 5, px=90 * S)
    for page in ("about", "help"):
        p.set(f"views:{page}", 5)  # no TTL
    p.rpush("feed:1", "a", "b")
    p.pexpire("feed:1", 2 * M)
    p.rpush("feed:2", "a")
    p.pexpire("feed:2", 90 * S)
    p.set("config:dark-mode", "on")
    p.set("config:beta", "off")
    p.set("config:banner", "x", px=H)  # a TTL on a persistent key
    for i in range(4):
        p.set(f"legacy:{i}", "v")
    p.set("profile:abc", "x", px=H)  # the profile prefix, but not an int id: no namespace
    p.set("tmp:a:b", "x")
    p.set("nocolon", "x")
    p.set(b"bin:\xff\xfe", "x")
    p.execute()


def assert_counts(report: AuditReport, expected: dict = EXPECTED, unknown: dict = EXPECTED_UNKNOWN) -> None:
    found = {ns.name: (ns.keys, ns.missing_ttl, ns.ttl_above_max, ns.ttl_on_persistent, ns.wrong_type, ns.ttl_below_min)
             for ns in report.namespaces}
    assert found == expected
    assert {g.prefix: g.keys for g in report.unknown} == unknown
    assert report.unknown_keys == sum(unknown.values())


def test_seeded_keyspace_gives_exact_counts(redis_client, policy):
    seed_mixed(redis_client)
    report = run_audit(policy, redis_client, target="local")
    assert_counts(report)
    assert report.scanned == redis_client.dbsize() == 38
    assert report.vanished == 0 and report.reserved_keys == 0
    assert report.violations == FIXABLE + UNFIXABLE and not report.compliant
    assert not report.cluster and list(report.nodes.values()) == ["lua"]
    profile = next(ns for ns in report.namespaces if ns.name == "profile")
    assert sorted(profile.examples["missing_ttl"]) == ["profile:5", "profile:6", "profile:7"]
    assert sorted(profile.examples["wrong_type"]) == ["profile:11", "profile:12"]
    assert profile.found_types == {"hash": 2}
    assert "bin:\\xff\\xfe" in next(g for g in report.unknown if g.prefix == "bin").examples
    assert report.policy.published is None and not report.policy.matches


def test_fix_ttl_fixes_what_it_may_and_touches_nothing_else(redis_client, policy):
    seed_mixed(redis_client)
    before = {k: redis_client.dump(k) for k in redis_client.scan_iter()}
    report = fix_ttl(policy, redis_client, target="local", rng=random.Random(1))
    assert report.fix is not None and not report.fix.dry_run
    fixes = {n.namespace: (n.ttl_set, n.ttl_clamped, n.declined) for n in report.fix.namespaces}
    assert fixes == {"profile": (3, 2, 0), "cart": (2, 0, 0), "views": (2, 0, 0)}
    assert report.fix.fixed == FIXABLE and report.outstanding == UNFIXABLE

    for key in ("profile:5", "profile:6", "profile:7", "profile:8", "profile:9"):
        assert H - 5 * S <= redis_client.pttl(key) <= H + 10 * M  # ttl + jitter, as a fresh write
    for key in ("cart:4", "cart:5"):
        assert 30 * M - 5 * S <= redis_client.pttl(key) <= 30 * M
    for key in ("views:about", "views:help"):
        assert 90 * S - 5 * S <= redis_client.pttl(key) <= 99 * S
    assert redis_client.pttl("profile:11") == -1  # wrong type: reported, not touched
    assert 0 < redis_client.pttl("config:banner") <= H  # a TTL on a persistent key is not removed
    assert {k: redis_client.dump(k) for k in redis_client.scan_iter()} == before  # no value rewritten or deleted

    again = run_audit(policy, redis_client, target="local")
    assert sum(ns.missing_ttl + ns.ttl_above_max for ns in again.namespaces) == 0
    assert again.violations == UNFIXABLE


def test_dry_run_writes_nothing(redis_client, policy):
    seed_mixed(redis_client)
    report = fix_ttl(policy, redis_client, dry_run=True)
    assert report.fix is not None and report.fix.dry_run and report.fix.fixed == 0
    assert {n.namespace: n.ttl_set + n.ttl_clamped for n in report.fix.namespaces} == {"profile": 5, "cart": 2, "views": 2}
    assert report.outstanding == report.violations == FIXABLE + UNFIXABLE
    assert redis_client.pttl("profile:5") == -1 and redis_client.pttl("profile:8") > 24 * H
    assert_counts(run_audit(policy, redis_client))


def seed_fixable(client, n: int = 600) -> None:
    """Compliant keys plus keys without TTL and TTLs above the max: everything --fix-ttl can repair (several pages)."""
    p = client.pipeline(transaction=False)
    for i in range(n):
        kind = i % 4
        if kind == 0:
            p.set(f"profile:{i}", "x", px=H + M)
        elif kind == 1:
            p.set(f"profile:{i}", "x")
        elif kind == 2:
            p.set(f"profile:{i}", "x", px=30 * H)
        else:
            p.hset(f"cart:{i}", "item", "1")
    p.execute()


def test_fix_then_a_clean_audit_exits_0(redis_client, policy_dir, capsys):
    seed_fixable(redis_client)
    assert main(["audit", str(policy_dir), "--target", "local"]) == 3
    assert main(["audit", str(policy_dir), "--target", "local", "--fix-ttl", "--dry-run"]) == 3
    assert redis_client.pttl("profile:1") == -1
    capsys.readouterr()
    assert main(["audit", str(policy_dir), "--target", "local", "--fix-ttl"]) == 0
    out = capsys.readouterr().out
    assert "profile: set a TTL on 150 keys; clamped 150 TTLs" in out and "cart: set a TTL on 150 keys" in out
    assert main(["audit", str(policy_dir), "--target", "local", "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["compliant"] and doc["violations"] == 0 and doc["scanned"] == 600


# -- the race with concurrent writers ------------------------------------------------------------

def test_fix_never_lengthens_or_replaces_a_ttl_set_meanwhile(redis_client, policy):
    profile = policy.namespace("profile")
    redis_client.set("profile:1", "x")
    redis_client.set("profile:2", "x", px=48 * H)
    candidates = [Candidate(profile, b"profile:1", None), Candidate(profile, b"profile:2", 48 * H)]
    redis_client.pexpire("profile:1", 20 * S)  # a writer gave it a TTL after the walk saw none
    redis_client.pexpire("profile:2", 10 * S)  # a writer shortened it after the walk saw 48 h
    fixer = Fixer(redis_client, dry_run=False)
    fixer.apply(candidates)
    (ns,) = fixer.report().namespaces
    assert (ns.ttl_set, ns.ttl_clamped, ns.declined) == (0, 0, 2)
    assert [c.applied for c in ns.examples] == [False, False]
    assert redis_client.pttl("profile:1") <= 20 * S and redis_client.pttl("profile:2") <= 10 * S


# -- the published policy, --match, memory ---------------------------------------------------------

def test_published_policy_is_reported_and_its_key_is_not_unknown(redis_client, policy, tmp_path, redis_server):
    publish(redis_client, policy)
    redis_client.set("profile:1", "x", px=H)
    report = run_audit(policy, redis_client)
    assert report.compliant and report.reserved_keys == 1 and report.unknown_keys == 0
    assert report.policy.matches and report.policy.published["digest"] == policy.digest
    other = tmp_path / "other"
    write_policy(other, redis_server.port)
    (other / "audit.yaml").write_text((other / "audit.yaml").read_text().replace("ttl: 2m", "ttl: 3m"))
    changed = toolkit.load(other)
    mismatch = run_audit(changed, redis_client)
    assert not mismatch.policy.matches and mismatch.policy.local_digest == changed.digest
    assert mismatch.compliant  # a different published policy is shown, it is not a key violation
    assert redis_client.exists(POLICY_KEY)


def test_match_restricts_the_walk(redis_client, policy):
    seed_mixed(redis_client)
    report = run_audit(policy, redis_client, match="cart:*")
    assert report.scanned == 7 and report.match == "cart:*"
    assert_counts(report, {**{n: (0, 0, 0, 0, 0, 0) for n in EXPECTED}, "cart": EXPECTED["cart"]}, {})


def test_memory_is_sampled_and_extrapolated(redis_client, policy):
    seed_fixable(redis_client, 400)
    report = run_audit(policy, redis_client, sample_memory=7)
    profile = next(ns for ns in report.namespaces if ns.name == "profile")
    assert profile.keys == 300 and profile.memory is not None and profile.memory.sampled == 7
    assert profile.memory.estimated_bytes == round(profile.memory.sampled_bytes * 300 / 7) > 0
    assert next(ns for ns in report.namespaces if ns.name == "feed").memory is None
    assert all(ns.memory is None for ns in run_audit(policy, redis_client).namespaces)


# -- how keys are probed -------------------------------------------------------------------------

def test_script_cache_flushed_mid_walk_reloads_and_counts_stay_exact(redis_client, policy):
    seed_fixable(redis_client, 2000)
    redis_client.config_resetstat()
    flushed = []

    def flush_once(scanned: int, elapsed: float) -> None:
        if not flushed:
            redis_client.script_flush()
            flushed.append(scanned)

    report = run_audit(policy, redis_client, progress=flush_once)
    assert flushed and report.scanned == 2000 and list(report.nodes.values()) == ["lua"]
    assert redis_client.info("errorstats")["errorstat_NOSCRIPT"]["count"] == 1
    assert {ns.name: ns.keys for ns in report.namespaces if ns.keys} == {"profile": 1500, "cart": 500}


def test_pipelined_probes_where_scripts_are_refused(redis_client, redis_server, policy):
    seed_mixed(redis_client)
    redis_client.acl_setuser("auditor", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-@scripting"])
    try:
        restricted = redis.Redis(port=redis_server.port, username="auditor", password="pw")
        report = run_audit(policy, restricted)
        restricted.close()
    finally:
        redis_client.acl_deluser("auditor")
    assert list(report.nodes.values()) == ["pipeline"]
    assert_counts(report)


# -- the command ---------------------------------------------------------------------------------

class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal(redis_client, policy_dir):
    seed_fixable(redis_client, 40)
    quiet, tty, out = io.StringIO(), _Tty(), io.StringIO()
    assert run_command([str(policy_dir)], "local", stdout=out, stderr=quiet) == 3
    assert quiet.getvalue() == "" and "violations" in out.getvalue()
    assert run_command([str(policy_dir)], "local", stdout=io.StringIO(), stderr=tty) == 3
    assert "40 keys scanned" in tty.getvalue() and "keys/s" in tty.getvalue()


def test_text_report(redis_client, policy_dir, capsys):
    seed_mixed(redis_client)
    assert main(["audit", str(policy_dir), "--target", "local", "--sample-memory", "0"]) == 3
    out = capsys.readouterr().out
    assert "scanned 38 keys in " in out and "standalone 127.0.0.1:" in out and "(lua)" in out
    assert "policy: no policy published on the instance" in out
    row = next(line.split() for line in out.splitlines() if line.startswith("profile "))
    assert row[:3] == ["profile", "string", "stable"] and row[4:11] == ["13", "3", "2", "0", "2", "1", "-"]
    assert "  profile: wrong Redis type (found: hash 2): profile:11, profile:12" in out
    assert "  config: TTL on a persistent key: config:banner" in out
    assert "keys in no namespace: 8 under 5 prefixes" in out
    assert out.rstrip().endswith(f"{FIXABLE + UNFIXABLE} violations")


def test_json_document(redis_client, policy_dir, capsys):
    seed_mixed(redis_client)
    assert main(["audit", str(policy_dir), "--target", "local", "--output", "json", "--sample-memory", "2"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["format_version"] == "1" and doc["target"] == "local" and doc["cluster"] is False
    assert doc["scanned"] == 38 and doc["violations"] == FIXABLE + UNFIXABLE and not doc["compliant"]
    assert doc["namespaces"]["profile"]["violations"] == {"missing_ttl": 3, "ttl_above_max": 2, "ttl_on_persistent": 0,
                                                          "wrong_type": 2}
    assert doc["namespaces"]["profile"]["memory"]["sampled"] == 2
    assert doc["unknown"]["keys"] == 8
    assert (doc["unknown"]["prefixes"][0]["prefix"], doc["unknown"]["prefixes"][0]["keys"]) == ("legacy", 4)
    assert sorted(doc["unknown"]["prefixes"][0]["examples"]) == ["legacy:0", "legacy:1", "legacy:2", "legacy:3"]
    assert doc["policy"]["published"] is None and doc["fix"] is None


def test_repository_policies_with_toolkit_local_port(redis_client, redis_server, monkeypatch, capsys):
    from tests.conftest import POLICIES

    monkeypatch.setenv("TOOLKIT_LOCAL_PORT", str(redis_server.port))
    redis_client.set("user:1001:name", "Ada", px=6 * H)
    redis_client.set("session:abc123", "x")
    assert main(["audit", str(POLICIES), "--target", "local"]) == 3
    assert "session" in capsys.readouterr().out
    assert main(["audit", str(POLICIES), "--target", "local", "--fix-ttl"]) == 0
    assert 0 < redis_client.pttl("session:abc123") <= 60 * S


def test_unreachable_server_exits_1_with_one_line(tmp_path, capsys):
    from tests.servers import free_port

    directory = write_policy(tmp_path / "p", free_port())
    (directory / "audit.yaml").write_text((directory / "audit.yaml").read_text() + "    client:\n      retries: 0\n")
    assert main(["audit", str(directory), "--target", "local"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("toolkit audit: error: target local: ConnectionError")


def test_usage_errors(policy_dir, capsys):
    assert main(["audit", str(policy_dir), "--dry-run"]) == 2
    with pytest.raises(SystemExit) as exit_:
        main(["audit", str(policy_dir), "--sample-memory", "-1"])
    assert exit_.value.code == 2
    assert main(["audit", str(policy_dir), "--target", "nope"]) == 1
    assert "no target 'nope'" in capsys.readouterr().err
