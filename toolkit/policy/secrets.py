"""Values read from the environment never reach output: it shows the ``${VAR}`` reference instead.

In the policy package, next to ``resolve_env``, because every package prints target fields:
the provisioner, the audit and the runtime client share these helpers.

A pull request may point a target field at a CI secret (``host: ${CI_TOKEN}``) and let CI run
``toolkit plan``; nothing that comes out (plan, audit, error lines, exception messages, logs) may
then hold the secret. ``resolve_env`` gives the value a client or an Azure call needs; this
module gives what may be printed:

- ``shown(field)``: a field as written, for plan documents and headers. A reference whose
  variable is set stays the reference; one whose variable is unset shows its ``:-default``,
  which is written in the policy and no secret.
- ``Redactor(target)``: for messages, ours and those of redis-py, the Azure SDK or MSAL (which
  quote host names, URLs and resource ids): every value the target's references resolve to,
  and every part a URL splits into, is replaced by the text written in the policy.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, unquote, urlsplit

from toolkit.errors import ConfigurationError, PolicyError, ToolkitError
from toolkit.policy.model import _ENV_REF, Target, default_assignment_name, resolve_env

__all__ = ["Redactor", "redact", "shown"]

_WHOLE_WORD_BELOW = 8
"""A shorter value is replaced only where it stands alone: a port 6379 inside a digest stays as it is."""


def shown(value: str | int | None) -> str | None:
    """``value`` as written in the policy, each ``${VAR}`` whose variable is set kept as it is."""
    if value is None:
        return None

    def keep(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        return default if name not in os.environ and default is not None else match.group(0)

    return _ENV_REF.sub(keep, str(value))


def _fields(target: Target) -> list[str | int | None]:
    """Every target field that may hold ``${VAR}`` (``env_or_string``/``env_or_integer``, an assignment's ``object_id`` and ``client_id``)."""
    a, z = target.auth, target.azure
    azure = [z.subscription, z.resource_group, z.cluster, z.database, z.location] if z is not None else []
    assignments = [f for p in target.instance.access_policy_assignments or () for f in (p.object_id, p.client_id)]
    return [target.url, target.host, target.port, target.ca_file, a.username, a.client_id, a.tenant_id, *azure, *assignments]


def _secret_variables(target: Target) -> list[str]:
    """Variables the client reads without a reference: the access key, a service principal's secret."""
    if target.auth.type == "access-key" and target.auth.env:
        return [target.auth.env]
    if target.auth.type == "entra-id" and target.auth.identity == "service-principal":
        return ["AZURE_CLIENT_SECRET"]
    return []


class Redactor:
    """``redactor(text)``: ``text`` with every value the target's references resolve to replaced by the reference.

    Built when a message is composed (it reads the environment then). Matching ignores letter
    case (URLs and DNS errors lowercase host names) and also catches the URL-quoted, repr and
    JSON spellings of each value, and the assignment name derived from an object id read from the
    environment (the id without its hyphens).
    """

    def __init__(self, target: Target | None):
        self._replacement: dict[str, str] = {}
        if target is not None:
            written = [str(f) for f in _fields(target) if f is not None and "${" in str(f)]
            for text in written:  # each variable's value -> its reference: the most precise
                for match in _ENV_REF.finditer(text):
                    self._add(os.environ.get(match.group(1)), match.group(0))
            for text in written:  # a whole field, and what a URL splits into -> the field as written
                try:
                    value = resolve_env(text, "") or ""
                except ConfigurationError:
                    continue
                self._add(value, shown(text) or "")
                if text == target.url:
                    self._add_url_parts(value, shown(text) or "")
            for p in target.instance.access_policy_assignments or ():  # the assignment name derived from a ${VAR} id
                if p.name is None and "${" in p.object_id:
                    try:
                        self._add(default_assignment_name(resolve_env(p.object_id, "") or ""), shown(p.object_id) or "")
                    except (ConfigurationError, ValueError):
                        pass
            for name in _secret_variables(target):
                self._add(os.environ.get(name), "${" + name + "}")
        alternatives = []
        for secret in sorted(self._replacement, key=len, reverse=True):
            body = re.escape(secret)
            if len(secret) < _WHOLE_WORD_BELOW:
                body = rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])"
            alternatives.append(body)
        self._pattern = re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None

    def _add(self, secret: str | None, replacement: str) -> None:
        if not secret or secret == replacement:
            return
        for spelling in (secret, quote(secret, safe=""), quote(secret), repr(secret)[1:-1], json.dumps(secret)[1:-1]):
            self._replacement.setdefault(spelling.lower(), replacement)

    def _add_url_parts(self, url: str, replacement: str) -> None:
        """A value that spans URL delimiters comes out in pieces: the host, the user, the port, the path."""
        try:
            parts = urlsplit(url)
            port = str(parts.port) if parts.port is not None else None
        except ValueError:
            port = None
            parts = urlsplit("")
        for piece in (parts.hostname, parts.username, unquote(parts.username or ""), port, parts.path.strip("/"),
                      unquote(parts.path).strip("/"), parts.query, parts.fragment):
            if piece and piece.lower() not in replacement.lower():
                self._add(piece, replacement)

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self._replacement.get(m.group(0).lower(), "***"), text)

    def holds(self, text: str) -> bool:
        return self._pattern is not None and self._pattern.search(text) is not None

    def exception(self, exc: BaseException) -> BaseException:
        """``exc`` itself when neither it nor its chain holds a value; else a copy with the message redacted and no chain."""
        chain: list[BaseException] = []
        e: BaseException | None = exc
        while e is not None and e not in chain:
            chain.append(e)
            e = e.__cause__ or (e.__context__ if not e.__suppress_context__ else None)
        if isinstance(exc, PolicyError) or not any(self.holds(str(e)) for e in chain):
            return exc
        text = self(str(exc))
        try:
            clean = type(exc)(text)
        except Exception:  # noqa: BLE001 - a type that takes other arguments: say what it was
            clean = ToolkitError(f"{type(exc).__name__}: {text}")
        if str(clean) != text:
            clean = ToolkitError(f"{type(exc).__name__}: {text}")
        clean.__cause__, clean.__suppress_context__ = None, True
        return clean

    @contextmanager
    def scrubbing(self) -> Iterator[None]:
        """Re-raise whatever escapes the block redacted (same type where it can be rebuilt from its message)."""
        try:
            yield
        except Exception as exc:
            clean = self.exception(exc)
            if clean is exc:
                raise
            raise clean from None


def redact(target: Target | None, text: str) -> str:
    """``Redactor(target)(text)``: for one message."""
    return Redactor(target)(text)
