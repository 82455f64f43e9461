"""The applied policy, published on the instance itself under one reserved key.

``toolkit apply`` writes it; ``toolkit.connect(..., verify=True)`` and ``toolkit audit`` read it
to tell which policy the instance runs under. It is a hash (digest, version, applied_at,
applied_by, sources, document) without TTL; namespaces may not use the reserved prefix.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from toolkit import __version__
from toolkit.policy.model import PolicySet

RESERVED_PREFIX = "__toolkit__:"
POLICY_KEY = RESERVED_PREFIX + "policy"


def who() -> str:
    """Who applies: the pipeline's identity if there is one, else user@host."""
    for var in ("TOOLKIT_APPLIED_BY", "GITHUB_ACTOR", "BUILD_REQUESTEDFOR", "USER"):
        if os.environ.get(var):
            return f"{os.environ[var]}@{socket.gethostname()}"
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - getpass raises a bare Exception-derived error without a passwd entry
        return f"unknown@{socket.gethostname()}"


def published_fields(policy: PolicySet, applied_by: str | None = None) -> dict[str, str]:
    return {
        "digest": policy.digest,
        "version": __version__,
        "applied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "applied_by": applied_by or who(),
        "sources": json.dumps([os.path.basename(s) for s in policy.sources]),
        "document": json.dumps(dict(policy.document), sort_keys=True, separators=(",", ":")),
    }


def publish(client: Any, policy: PolicySet, applied_by: str | None = None) -> bool:
    """Write the policy record unless the same digest is already there; True when it wrote."""
    current = client.hget(POLICY_KEY, "digest")
    if current is not None and (current.decode() if isinstance(current, bytes) else current) == policy.digest:
        return False
    client.hset(POLICY_KEY, mapping=published_fields(policy, applied_by))
    return True


def read_published(client: Any) -> Mapping[str, str] | None:
    """The published record as text fields, or None when nothing was ever applied."""
    return decode_published(client.hgetall(POLICY_KEY))


def decode_published(raw: Mapping[Any, Any] | None) -> Mapping[str, str] | None:
    """HGETALL's reply of the record as text fields (None when empty): for clients that read it themselves."""
    if not raw:
        return None
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()}
