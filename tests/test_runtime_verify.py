"""connect(..., verify=True) against the policy record that 'toolkit apply' publishes."""

from __future__ import annotations

import textwrap
import warnings

import pytest

import toolkit
from toolkit.policy.published import POLICY_KEY, publish, read_published
from toolkit.runtime import PolicyMismatch


def test_verify_passes_after_publish_and_fails_after_a_policy_change(engines, policies, redis_client, tmp_path):
    with pytest.raises(PolicyMismatch, match="no policy was published"):
        engines.connect(policies, client=redis_client, verify=True)
    assert publish(redis_client, policies, applied_by="ci@test") is True
    assert publish(redis_client, policies, applied_by="ci@test") is False  # same digest: nothing written
    record = read_published(redis_client)
    assert record["digest"] == policies.digest and record["applied_by"] == "ci@test"
    assert redis_client.ttl(POLICY_KEY) == -1
    assert engines.connect(policies, client=redis_client, verify=True).verify()

    changed = tmp_path / "policies"
    changed.mkdir()
    for source in policies.sources:
        text = open(source).read()
        (changed / source.split("/")[-1]).write_text(text.replace("ttl: 6h", "ttl: 7h"))
    other = toolkit.load(changed)
    assert other.digest != policies.digest
    with pytest.raises(PolicyMismatch, match=policies.digest[:12]):
        engines.connect(other, client=redis_client, verify=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine = engines.connect(other, client=redis_client, verify="warn")
    assert engine is not None and any("runs policy" in str(w.message) for w in caught)


def test_digest_ignores_targets_and_comments(policies, tmp_path):
    for source in policies.sources:
        text = open(source).read()
        if "targets:" in text:
            text = text.replace("eviction_policy: AllKeysLRU", "eviction_policy: AllKeysLFU")
        (tmp_path / source.split("/")[-1]).write_text("# reformatted\n" + textwrap.dedent(text))
    assert toolkit.load(tmp_path).digest == policies.digest
