"""The data-plane side of provisioning: a Redis client for the target, and the published policy on it.

The runtime's ``build_client`` knows every way a target connects (TLS, access keys, Entra ID,
cluster); the provisioner uses it so that it reaches the instance exactly as applications do.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from toolkit.errors import ToolkitError
from toolkit.policy.model import Target
from toolkit.policy.published import read_published
from toolkit.policy.secrets import Redactor, shown

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/]*@")


def connect(target: Target) -> Any:
    """A redis-py client for ``target`` (standalone or cluster), exactly as applications get it.

    Its errors name the address (redis-py: "Error connecting to <host>:<port>"): they come out
    with the target's ``${VAR}`` values replaced by their references.
    """
    from toolkit.runtime import build_client

    with Redactor(target).scrubbing():
        return build_client(target)


def describe(target: Target) -> str:
    """Where the target's data plane is, for messages and PR comments: never a password, and
    ``${VAR}`` references as written, never the values they resolve to (see ``_redact.shown``)."""
    if target.url:
        url = shown(target.url) or ""
        try:
            if "${" not in url:
                parts = urlsplit(url)
                netloc = parts.hostname or ""
                netloc = f"[{netloc}]" if ":" in netloc else netloc
                return urlunsplit(parts._replace(netloc=f"{netloc}:{parts.port}" if parts.port else netloc))
        except ValueError:  # a port that is no number: build_client says so
            pass
        return _USERINFO.sub(r"\1", url)
    return f"{shown(target.host)}:{shown(target.port)}"


def unreachable(target: Target, exc: BaseException) -> ToolkitError:
    detail = Redactor(target)(" ".join(str(exc).split()) or type(exc).__name__)
    return ToolkitError(f"cannot reach the data plane of target {target.name} ({describe(target)}): {detail}")


def read_digest(client: Any) -> str | None:
    """The digest of the policy published on the instance, or None when none was ever applied."""
    record = read_published(client)
    return record.get("digest") if record else None

