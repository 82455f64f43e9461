"""The data-plane side of provisioning: a Redis client for the target, and the published policy on it.

The runtime's ``build_client`` knows every way a target connects (TLS, access keys, Entra ID,
cluster); the provisioner uses it so that it reaches the instance exactly as applications do.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from toolkit.errors import ConfigurationError, ToolkitError
from toolkit.policy.model import Target, resolve_env
from toolkit.policy.published import read_published


def connect(target: Target) -> Any:
    """A redis-py client for ``target`` (standalone or cluster), exactly as applications get it."""
    from toolkit.runtime._client import build_client

    return build_client(target)


def describe(target: Target) -> str:
    """Where the target's data plane is, for messages and PR comments: env references resolved, never a password."""
    try:
        if target.url:
            parts = urlsplit(resolve_env(target.url, "url") or "")
            netloc = parts.hostname or ""
            netloc = f"[{netloc}]" if ":" in netloc else netloc
            return urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))
        return f"{resolve_env(target.host, 'host')}:{resolve_env(target.port, 'port')}"
    except ConfigurationError:
        return target.url or f"{target.host}:{target.port}"


def unreachable(target: Target, exc: BaseException) -> ToolkitError:
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ToolkitError(f"cannot reach the data plane of target {target.name} ({describe(target)}): {detail}")


def read_digest(client: Any) -> str | None:
    """The digest of the policy published on the instance, or None when none was ever applied."""
    record = read_published(client)
    return record.get("digest") if record else None

