"""Indexed invalidation: a per-entity set of written keys, whose TTL only grows."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import toolkit
from toolkit.errors import ConfigurationError, PolicyError

POLICY = """
namespaces:
  name:
    key: "user:{user_id}:name"
    type: string
    tier: stable
    ttl: 6h
    TAG
  prefs:
    key: "user:{user_id}:prefs"
    type: hash
    tier: stable
    ttl: 1h
    TAG
  recent:
    key: "user:{user_id}:recent"
    type: list
    tier: volatile
    ttl: 2m
    TAG
  visits:
    key: "user:{user_id}:visits"
    type: counter
    tier: volatile
    ttl: 5m
    TAG
  card:
    key: "card:{user_id}"
    type: string
    tier: volatile
    TAG
invalidation:
  user_all:
    match: "user:{user_id}:*"
    index: user_id
    RULE_TAG
"""


def write_policy(directory: Path, tagged: bool) -> toolkit.PolicySet:
    tag = "hash_tag: user_id" if tagged else ""
    text = POLICY.replace("RULE_TAG", tag).replace("TAG", tag)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "p.yaml").write_text(textwrap.dedent(text))
    return toolkit.load(directory)


def write_entity(engine: toolkit.Engine, uid: int) -> None:
    engine.namespace("name").set("Alice", user_id=uid)          # 6 h: the longest-lived member, written first
    engine.namespace("prefs").hset("theme", "dark", user_id=uid)  # 1 h
    engine.namespace("recent").lpush("sku-1", user_id=uid)       # 2 min: must not shorten the index
    engine.namespace("visits").incr(user_id=uid)                 # 5 min
    engine.namespace("card").set("c", user_id=uid)               # not under user:{user_id}:*: not indexed


def test_index_records_writes_and_only_extends_its_ttl(engines, tmp_path, redis_client):
    policy = write_policy(tmp_path, tagged=False)
    assert policy.rules["user_all"].indexed == ("name", "prefs", "recent", "visits")
    engine = engines.connect(policy, client=redis_client)
    write_entity(engine, 1001)
    index = "__toolkit__:idx:user_all:1001"
    assert redis_client.smembers(index) == {b"user:1001:name", b"user:1001:prefs", b"user:1001:recent", b"user:1001:visits"}
    longest = redis_client.pttl("user:1001:name")
    assert redis_client.pttl(index) >= longest - 1000   # the short-TTL writes after it did not shorten it
    engine.namespace("recent").lpush("sku-2", user_id=1001)
    assert redis_client.pttl(index) >= longest - 1000


def test_indexed_invalidation_deletes_the_entity_without_scanning(engines, tmp_path, redis_client):
    engine = engines.connect(write_policy(tmp_path, tagged=False), client=redis_client)
    for uid in (1001, 1002, 10010):
        write_entity(engine, uid)
    for i in range(2000):
        redis_client.set(f"noise:{i}", 1, ex=60)
    scans_before = redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
    assert engine.invalidate("user_all", user_id=1001) == 4
    assert redis_client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0) == scans_before
    assert not redis_client.exists("user:1001:name", "user:1001:prefs", "user:1001:recent", "user:1001:visits",
                                   "__toolkit__:idx:user_all:1001")
    assert redis_client.exists("card:1001", "user:1002:name", "user:10010:name") == 3
    assert engine.invalidate("user_all", user_id=1001) == 0
    with pytest.raises(toolkit.PolicyViolation):
        engine.invalidate("user_all", user_id="*")


def test_index_on_a_cluster_shares_the_entity_slot(engines, tmp_path, cluster_client):
    engine = engines.connect(write_policy(tmp_path, tagged=True), client=cluster_client)
    write_entity(engine, 1001)
    write_entity(engine, 1002)
    slots = {cluster_client.keyslot(k) for k in ("user:{1001}:name", "user:{1001}:recent", "__toolkit__:idx:user_all:{1001}")}
    assert len(slots) == 1
    assert engine.invalidate("user_all", user_id=1001) == 4
    assert cluster_client.exists("user:{1002}:name", "user:{1002}:prefs", "card:{1001}") == 3
    assert not cluster_client.exists("user:{1001}:name", "__toolkit__:idx:user_all:{1001}")


def test_an_untagged_index_is_refused_on_a_cluster(engines, tmp_path, cluster_client):
    with pytest.raises(ConfigurationError, match="hash_tag: user_id"):
        engines.connect(write_policy(tmp_path, tagged=False), client=cluster_client)


@pytest.mark.parametrize("rule, message", [
    ("namespaces: [name]\n    index: user_id", "has none"),
    ("match: \"user:{user_id}:*\"\n    index: account", "not a parameter"),
    ("match: \"nothing:{user_id}:*\"\n    index: user_id", "cover no namespace"),
])
def test_index_mistakes_are_policy_errors(tmp_path, rule, message):
    text = textwrap.dedent(POLICY.replace("RULE_TAG", "").replace("TAG", ""))
    text = text.split("invalidation:")[0] + f"invalidation:\n  r:\n    {rule}\n"
    (tmp_path / "p.yaml").write_text(text)
    with pytest.raises(PolicyError, match=message):
        toolkit.load(tmp_path)
