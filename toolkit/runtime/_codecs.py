"""Per-namespace value codecs: ``text``, ``bytes`` and ``json`` coexist on one client.

The seed switches ``decode_responses`` for a whole connection; here the client always
returns bytes and each namespace decodes its own values. What a codec reads back is what the
caller gets, on a hit and (through ``roundtrip``) on a miss alike: ``text`` returns ``str``
(a stored number reads back as its digits), ``bytes`` returns ``bytes``, ``json`` returns what
``json.loads`` gives (tuples read back as lists, non-str dict keys as str).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from toolkit.errors import PolicyViolation


def _text_encode(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            return value.encode()
        except UnicodeEncodeError:
            raise PolicyViolation("codec text cannot store this str: it holds a lone surrogate, not UTF-8 text") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return str(value).encode()
        except ValueError:  # an int past Python's digit limit for str()
            raise PolicyViolation("codec text cannot store this number: too many digits") from None
    raise PolicyViolation(f"codec text stores str (or numbers, read back as str), got {type(value).__name__}")


def _text_decode(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _bytes_encode(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise PolicyViolation(f"codec bytes stores bytes, got {type(value).__name__}")


def _bytes_decode(raw: bytes | str) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode()


def _json_encode(value: Any) -> bytes:
    """Strict JSON: NaN and infinities are refused (other languages' parsers reject them)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError:
        raise PolicyViolation("codec json cannot store this value: a str holds a lone surrogate, not UTF-8 text") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise PolicyViolation(f"codec json cannot store this value: {str(exc)[:120]}") from None


def _json_decode(raw: bytes | str) -> Any:
    return json.loads(raw)


@dataclass(frozen=True)
class Codec:
    name: str
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes | str], Any]

    def roundtrip(self, value: Any) -> tuple[bytes, Any]:
        """The bytes to store and the value a later read returns: a miss answers what a hit will."""
        data = self.encode(value)
        return data, self.decode(data)


CODECS = {
    "text": Codec("text", _text_encode, _text_decode),
    "bytes": Codec("bytes", _bytes_encode, _bytes_decode),
    "json": Codec("json", _json_encode, _json_decode),
}
