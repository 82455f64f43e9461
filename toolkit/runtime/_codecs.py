"""Per-namespace value codecs: ``text``, ``bytes`` and ``json`` coexist on one client.

The seed switches ``decode_responses`` for a whole connection; here the client always
returns bytes and each namespace decodes its own values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from toolkit.errors import PolicyViolation


def _text_encode(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value).encode()
    raise PolicyViolation(f"codec text stores str (or numbers), got {type(value).__name__}")


def _text_decode(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _bytes_encode(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise PolicyViolation(f"codec bytes stores bytes, got {type(value).__name__}")


def _bytes_decode(raw: bytes | str) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode()


def _json_encode(value: Any) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise PolicyViolation(f"codec json cannot store this value: {exc}") from None


def _json_decode(raw: bytes | str) -> Any:
    return json.loads(raw)


@dataclass(frozen=True)
class Codec:
    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes | str], Any]


CODECS = {
    "text": Codec("text", _text_encode, _text_decode),
    "bytes": Codec("bytes", _bytes_encode, _bytes_decode),
    "json": Codec("json", _json_encode, _json_decode),
}
