"""Find secrets written into a policy file: they belong in environment variables or Entra ID.

Two signals: a field whose name says it holds a secret (password, token, access key...)
with a literal value, and a value that looks like a credential wherever it is (a URL with
a password, a JWT, an Azure access key, a private key block).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|access[_-]?key|api[_-]?key|primary[_-]?key|secondary[_-]?key|"
    r"credential|connection[_-]?string|private[_-]?key|sas)$",
    re.IGNORECASE,
)
_ENV_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
"""A secret-named field may only reference a variable, and without a ``:-default``."""
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]*:([^/@\s]+)@", re.IGNORECASE)
_LOOKS_SECRET = [
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), "a JSON Web Token"),
    (re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])"), "an Azure access key"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"(AccountKey|SharedAccessKey|password)=[^;\s]+", re.IGNORECASE), "a connection string with a key"),
]

ADVICE = "secrets never live in policy files: name an environment variable (auth: {type: access-key, env: NAME}) or use entra-id"


def find_secrets(data: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Yield (path, what) for every value that looks like a literal secret."""
    if isinstance(data, dict):
        for key, value in data.items():
            sub = path + (key,)
            if _SECRET_NAME.search(str(key)) and isinstance(value, (str, int)) and not isinstance(value, bool):
                if str(value) and not _ENV_ONLY.match(str(value)):
                    yield sub, f"field {key!r} holds a literal secret"
                    continue
            yield from find_secrets(value, sub)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from find_secrets(value, path + (i,))
    elif isinstance(data, str):
        match = _URL_PASSWORD.search(data)
        if match and not _ENV_ONLY.match(match.group(1)):
            yield path, "URL holds a password"
            return
        for pattern, what in _LOOKS_SECRET:
            if pattern.search(data):
                yield path, f"value looks like {what}"
                return
