"""``PolicySet.locate``: where a document path is written, for annotations that point at the line to change."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

import toolkit

TARGETS = """\
# a comment, so that lines are not trivially 1
targets:
  prod:
    provider: redis
    url: "redis://127.0.0.1:6379/0"
    instance:
      eviction_policy: VolatileLRU
      persistence: {aof: 1s}
  bare:
    provider: redis
    host: 127.0.0.1
"""
CATALOG = """\
tiers:
  hourly: {min: 1h, default: 1h}
namespaces:
  page:
    key: "page:{id}"
    type: string
    tier: hourly
"""
MORE = """\
namespaces:
  cart:
    key: "cart:{id}"
    type: list
    tier: volatile
invalidation:
  carts:
    namespaces:
      - cart
      - page
"""


@pytest.fixture
def policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> toolkit.PolicySet:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a_targets.yaml").write_text(TARGETS)
    (tmp_path / "policies" / "b_catalog.yaml").write_text(CATALOG)
    (tmp_path / "policies" / "c_more.yml").write_text(MORE)
    monkeypatch.chdir(tmp_path)
    return toolkit.load("policies")


def test_a_written_setting_is_its_key(policy: toolkit.PolicySet) -> None:
    targets = "policies/a_targets.yaml"
    assert policy.locate(("targets", "prod", "instance", "eviction_policy")) == (targets, 7, 7)
    assert policy.locate(("targets", "prod", "instance")) == (targets, 6, 5)
    assert policy.locate(("targets", "prod")) == (targets, 3, 3)
    assert policy.locate(("targets", "prod", "instance", "persistence", "aof")) == (targets, 8, 21)  # flow mapping
    assert policy.locate(("namespaces", "page", "tier")) == ("policies/b_catalog.yaml", 7, 5)
    assert policy.locate(("invalidation", "carts", "namespaces", 1)) == ("policies/c_more.yml", 10, 9)  # a list item


def test_a_setting_not_written_falls_back_to_the_closest_written_parent(policy: toolkit.PolicySet) -> None:
    targets = "policies/a_targets.yaml"
    assert policy.locate(("targets", "prod", "instance", "clustering_policy")) == (targets, 6, 5)
    assert policy.locate(("targets", "bare", "instance", "eviction_policy")) == (targets, 9, 3)
    assert policy.locate(("targets", "bare", "port")) == (targets, 9, 3)
    assert policy.locate(("targets", "gone", "instance")) == (targets, 2, 1)


def test_a_section_in_several_files_points_at_the_first(policy: toolkit.PolicySet) -> None:
    assert policy.locate(("namespaces",)) == ("policies/b_catalog.yaml", 3, 1)
    assert policy.locate(("namespaces", "cart")) == ("policies/c_more.yml", 2, 3)


def test_nothing_written_is_none(policy: toolkit.PolicySet) -> None:
    assert policy.locate(()) is None
    assert policy.locate(("parameters", "user_id")) is None


def test_lines_agree_with_validate(tmp_path: Path) -> None:
    """The line locate gives is the line a validate error on the same key names."""
    (tmp_path / "t.yaml").write_text(TARGETS.replace("VolatileLRU", "Sometimes"))
    with pytest.raises(toolkit.PolicyError) as caught:
        toolkit.load(tmp_path)
    (issue,) = caught.value.issues
    assert issue.path == "targets.prod.instance.eviction_policy"
    (tmp_path / "t.yaml").write_text(TARGETS)
    file, line, _ = toolkit.load(tmp_path).locate(("targets", "prod", "instance", "eviction_policy")) or ("", 0, 0)
    assert (file, line) == (issue.file, issue.line)


def test_merge_keys_point_at_the_anchor(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "targets:\n"
        "  a: &base\n"
        "    provider: redis\n"
        "    host: 127.0.0.1\n"
        "    instance: {eviction_policy: VolatileLRU}\n"
        "  b:\n"
        "    <<: *base\n"
        "    port: 6380\n"
    )
    policy = toolkit.load(tmp_path)
    assert policy.locate(("targets", "b", "port"))[1:] == (8, 5)  # type: ignore[index]
    assert policy.locate(("targets", "b", "instance", "eviction_policy"))[1:] == (5, 16)  # type: ignore[index]


def test_locations_are_no_part_of_the_policy(policy: toolkit.PolicySet, tmp_path: Path) -> None:
    """Moving a setting to another line changes neither the digest nor equality; repr stays short."""
    assert "locations" not in repr(policy)
    assert dataclasses.replace(policy, locations=MappingProxyType({})) == policy
    assert "locations" not in policy.document
    (tmp_path / "policies" / "b_catalog.yaml").write_text("\n\n# moved down\n" + CATALOG)
    moved = toolkit.load("policies")
    assert moved.digest == policy.digest and moved == policy
    assert moved.locate(("namespaces", "page"))[1] == policy.locate(("namespaces", "page"))[1] + 3  # type: ignore[index]


def test_a_policy_set_built_without_files_locates_nothing(policy: toolkit.PolicySet) -> None:
    bare = dataclasses.replace(policy, locations=MappingProxyType({}))
    assert bare.locate(("targets", "prod")) is None
