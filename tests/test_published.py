"""The published policy record on a real redis-server: the whole document, bounded, with one step of history."""

from __future__ import annotations

import json
from pathlib import Path

import toolkit
import toolkit.policy.published as published
from tests.policytext import PAGE_NAMESPACE
from toolkit.policy.published import POLICY_KEY, decode_document, encode_document, publish, read_published


def policy(directory: Path, ttl: str = "5m") -> toolkit.PolicySet:
    directory.mkdir(exist_ok=True)
    (directory / "ns.yaml").write_text(PAGE_NAMESPACE.replace("ttl: 5m", f"ttl: {ttl}"))
    return toolkit.load(directory)


def test_the_whole_document_is_published_and_reads_back(tmp_path: Path, redis_client) -> None:
    p = policy(tmp_path)
    assert publish(redis_client, p) is True
    record = read_published(redis_client)
    assert record is not None and record["digest"] == p.digest
    assert decode_document(record["document"]) == json.loads(json.dumps(dict(p.document)))
    assert "previous_digest" not in record
    assert publish(redis_client, p) is False  # same digest: nothing written


def test_replacing_a_policy_keeps_the_one_it_replaced(tmp_path: Path, redis_client) -> None:
    first = policy(tmp_path / "a")
    publish(redis_client, first, applied_by="ci@one")
    second = policy(tmp_path / "b", ttl="4m")
    assert publish(redis_client, second, applied_by="ci@two")
    record = read_published(redis_client)
    assert record is not None
    assert (record["digest"], record["applied_by"], record["previous_digest"]) == (second.digest, "ci@two", first.digest)
    assert decode_document(record["previous_document"]) == decode_document(encode_document(first.document)[0])
    assert record["previous_applied_at"]
    third = policy(tmp_path / "c", ttl="3m")
    publish(redis_client, third)
    record = read_published(redis_client)
    assert record is not None and record["previous_digest"] == second.digest  # one step of history, not a log


def test_large_documents_are_compressed_and_huge_ones_left_out(tmp_path: Path, redis_client, monkeypatch) -> None:
    p = policy(tmp_path)
    monkeypatch.setattr(published, "COMPRESS_ABOVE", 10)
    text, omitted = encode_document(p.document)
    assert text is not None and text.startswith("zlib:") and omitted is None
    assert decode_document(text) == json.loads(json.dumps(dict(p.document)))
    monkeypatch.setattr(published, "MAX_DOCUMENT_BYTES", 20)
    publish(redis_client, p)
    record = read_published(redis_client)
    assert record is not None and "document" not in record and "above the 20 bytes stored" in record["document_omitted"]


def test_records_of_older_versions_read_as_having_no_document(redis_client) -> None:
    redis_client.hset(POLICY_KEY, mapping={"digest": "a" * 64, "version": "0.0.9"})
    record = read_published(redis_client)
    assert record is not None and decode_document(record.get("document")) is None
    assert decode_document("zlib:not base64!") is None and decode_document("[1, 2]") is None
