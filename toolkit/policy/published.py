"""The applied policy, published on the instance itself under one reserved key.

``toolkit apply`` writes it; ``toolkit.connect(..., verify=True)`` and ``toolkit audit`` read it
to tell which policy the instance runs under, ``toolkit diff --against-target`` to compare with it.
It is a hash (digest, version, applied_at, applied_by, sources, document) without TTL; namespaces
may not use the reserved prefix. ``document`` is the whole canonical policy (compact JSON, or
zlib+base64 past ``COMPRESS_ABOVE``; left out past ``MAX_DOCUMENT_BYTES``, with
``document_omitted`` saying why). When a new policy replaces another, the record keeps the one it
replaced as ``previous_digest``/``previous_applied_at``/``previous_document``: the audit reports
keys left over from that change. Records written by older versions hold no document; readers
treat it as unknown, never as an error.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import socket
import time
import zlib
from collections.abc import Mapping
from typing import Any

from toolkit import __version__
from toolkit.policy.model import Namespace, PolicySet
from toolkit.policy.templates import Param, parse_template

RESERVED_PREFIX = "__toolkit__:"
POLICY_KEY = RESERVED_PREFIX + "policy"
COMPRESS_ABOVE = 16 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024
"""Bound on the stored document (after compression): the record stays a small hash on a cache."""
_ZLIB = "zlib:"


def who() -> str:
    """Who applies: the pipeline's identity if there is one, else user@host."""
    for var in ("TOOLKIT_APPLIED_BY", "GITHUB_ACTOR", "BUILD_REQUESTEDFOR", "USER"):
        if os.environ.get(var):
            return f"{os.environ[var]}@{socket.gethostname()}"
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - getpass raises a bare Exception-derived error without a passwd entry
        return f"unknown@{socket.gethostname()}"


def encode_document(document: Mapping[str, object]) -> tuple[str | None, str | None]:
    """(stored text, None), or (None, why it was left out)."""
    text = json.dumps(dict(document), sort_keys=True, separators=(",", ":"))
    if len(text) > COMPRESS_ABOVE:
        text = _ZLIB + base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    if len(text) > MAX_DOCUMENT_BYTES:
        return None, f"the document is {len(text):,} bytes compressed, above the {MAX_DOCUMENT_BYTES:,} bytes stored"
    return text, None


def decode_document(text: str | None) -> dict[str, Any] | None:
    """The document a record's ``document``/``previous_document`` field holds, or None (absent or unreadable)."""
    if not text:
        return None
    try:
        raw = zlib.decompress(base64.b64decode(text[len(_ZLIB):])).decode() if text.startswith(_ZLIB) else text
        document = json.loads(raw)
    except (ValueError, zlib.error):
        return None
    return document if isinstance(document, dict) else None


def published_fields(policy: PolicySet, applied_by: str | None = None) -> dict[str, str]:
    document, omitted = encode_document(policy.document)
    return {
        "digest": policy.digest,
        "version": __version__,
        "applied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "applied_by": applied_by or who(),
        "sources": json.dumps([os.path.basename(s) for s in policy.sources]),
        **({"document": document} if document is not None else {"document_omitted": omitted or ""}),
    }


def publish(client: Any, policy: PolicySet, applied_by: str | None = None) -> bool:
    """Write the policy record unless the same digest is already there; True when it wrote.

    The record it replaces becomes the ``previous_*`` fields (one step of history), in the same
    MULTI/EXEC as the new fields, so that a reader never sees the new digest with an old document.
    """
    current = decode_published(client.hgetall(POLICY_KEY))
    if current is not None and current.get("digest") == policy.digest:
        return False
    fields = published_fields(policy, applied_by)
    if current is not None:
        fields["previous_digest"] = current.get("digest", "")
        fields["previous_applied_at"] = current.get("applied_at", "")
        if current.get("document"):
            fields["previous_document"] = current["document"]
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(POLICY_KEY)
        pipe.hset(POLICY_KEY, mapping=fields)
        pipe.execute()
    return True


def namespaces_from_document(document: Mapping[str, Any]) -> list[Namespace]:
    """The namespaces of a published document, enough to classify keys (``Classifier``): templates and
    parameter specs. Entries this version cannot read (a newer document) are skipped, not fatal."""
    found = []
    for name, ns in (document.get("namespaces") or {}).items():
        try:
            params = {p: Param(p, spec.get("type", "str"), spec.get("pattern"), spec.get("max_length", 128))
                      for p, spec in (ns.get("params") or {}).items()}
            found.append(Namespace(name, parse_template(ns["key"]), ns.get("type", "string"), ns.get("tier", ""),
                                   ns.get("ttl_ms"), ns.get("tier_min_ms"), ns.get("tier_max_ms"), codec=ns.get("codec") or "text",
                                   params=params, hash_tag=ns.get("hash_tag")))
        except Exception:  # noqa: BLE001 - a document from another version: what cannot be rebuilt is left out
            continue
    return found


def read_published(client: Any) -> Mapping[str, str] | None:
    """The published record as text fields, or None when nothing was ever applied."""
    return decode_published(client.hgetall(POLICY_KEY))


def decode_published(raw: Mapping[Any, Any] | None) -> Mapping[str, str] | None:
    """HGETALL's reply of the record as text fields (None when empty): for clients that read it themselves."""
    if not raw:
        return None
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
