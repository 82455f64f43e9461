"""``PolicySet.classify`` is the inverse of ``Namespace.key``.

Properties, checked with seeded random parameter values (reproducible, no extra dependency):
every key a namespace builds classifies back to that namespace and those parameters, hash-tagged
keys included; whatever classify accepts rebuilds to the very same key, so no key is ever
attributed to the wrong namespace.
"""

from __future__ import annotations

import random
import string
import uuid
from pathlib import Path

import pytest

import toolkit
from toolkit.policy import Namespace, Param

ROOT = Path(__file__).resolve().parent.parent
SETS = {"policies": ROOT / "policies", "valid corpus": ROOT / "tests" / "policy_corpus" / "valid"}
ROUNDS = 40
_TEXT = string.ascii_letters + string.digits + "-_.@+=,;!~'\"<>/|&%$#éßΩ中"
_PATTERNS = {
    "[A-Za-z0-9_-]{6,64}": lambda rng: "".join(rng.choice(string.ascii_letters + string.digits + "_-") for _ in range(rng.randint(6, 64))),
    "20[0-9]{2}": lambda rng: f"20{rng.randrange(100):02d}",
}
"""Value generators for the ``pattern``s the example sets use (a new pattern fails loudly below)."""


def random_value(param: Param, rng: random.Random) -> str:
    """A value ``param`` accepts, as the text classify gives back."""
    if param.pattern is not None:
        return _PATTERNS[param.pattern](rng)
    if param.type == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if param.type == "int":  # canonical digits: no leading zero
        return str(rng.randrange(10 ** rng.randint(1, min(param.max_length, 24))))
    alphabet = {"slug": string.ascii_lowercase + string.digits + "_-", "str": _TEXT}[param.type]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, min(param.max_length, 24))))


@pytest.fixture(scope="module", params=sorted(SETS))
def policy(request: pytest.FixtureRequest) -> toolkit.PolicySet:
    return toolkit.load(SETS[request.param])


def test_every_pattern_has_a_generator(policy: toolkit.PolicySet) -> None:
    patterns = {p.pattern for ns in policy.namespaces.values() for p in ns.params.values() if p.pattern}
    assert patterns <= set(_PATTERNS)


def test_classify_inverts_key_for_every_namespace(policy: toolkit.PolicySet) -> None:
    rng = random.Random(20240607)
    for ns in policy.namespaces.values():
        for _ in range(ROUNDS):
            params = {name: random_value(spec, rng) for name, spec in ns.params.items()}
            key = ns.key(**params)
            assert policy.classify(key) == (ns, params), key
            assert policy.classify(key.encode()) == (ns, params), key


def test_integer_parameters_come_back_as_text(policy: toolkit.PolicySet) -> None:
    for ns in policy.namespaces.values():
        if all(spec.type == "int" and spec.pattern is None for spec in ns.params.values()) and ns.params:
            params = {name: 1001 for name in ns.params}
            assert policy.classify(ns.key(**params)) == (ns, {name: "1001" for name in ns.params})


def mutations(key: str, rng: random.Random) -> list[str]:
    """Keys near a real one: a segment dropped, added, changed or braced; wildcards; the reserved prefix."""
    segments = key.split(":")
    i = rng.randrange(len(segments))
    return [
        ":".join(segments[:i] + segments[i + 1:]),
        ":".join(segments[:i] + ["extra"] + segments[i:]),
        ":".join(segments[:i] + ["{" + segments[i] + "}"] + segments[i + 1:]),
        ":".join(segments[:i] + [segments[i].strip("{}") + "x"] + segments[i + 1:]),
        key.replace(segments[i], segments[i] + "*", 1),
        key + ":",
        ":" + key,
        "__toolkit__:" + key,
        key.upper(),
        key[:-1],
    ]


def test_whatever_classify_accepts_rebuilds_the_same_key(policy: toolkit.PolicySet) -> None:
    rng = random.Random(7)
    seen_none = 0
    for ns in policy.namespaces.values():
        for _ in range(ROUNDS // 4):
            key = ns.key(**{name: random_value(spec, rng) for name, spec in ns.params.items()})
            for candidate in mutations(key, rng):
                found = policy.classify(candidate)
                if found is None:
                    seen_none += 1
                    continue
                owner, params = found
                assert owner.key(**params) == candidate, (key, candidate, owner.name)
    assert seen_none > 0  # the mutations do produce foreign keys


@pytest.mark.parametrize("key", [
    "", ":", "user", "user:", "user::name", "user:1001:unknown", "user:abc:name", "user:-1:name", "user:{1001}:name",
    "__toolkit__:policy", "__toolkit__:lock:user:1001:profile", "session:abc", "session:has space",
    "query:Not-A-Slug", "temp:x*", "product:12:34", "dashboard:user:", "counter:page_views:home:extra",
])
def test_foreign_and_malformed_keys_are_not_classified(key: str) -> None:
    policy = toolkit.load(SETS["policies"])
    assert policy.classify(key) is None


def test_keys_that_are_not_utf8_are_not_classified() -> None:
    assert toolkit.load(SETS["policies"]).classify(b"user:\xff:name") is None


def test_hash_tagged_and_untagged_twins_are_told_apart() -> None:
    policy = toolkit.load(SETS["valid corpus"])
    assert policy.classify("cart:{42}") == (policy.namespaces["cart"], {"customer_id": "42"})
    assert policy.classify("cart:42") == (policy.namespaces["cart_legacy"], {"customer_id": "42"})
    assert policy.classify("cart:{42}:items") == (policy.namespaces["cart_items"], {"customer_id": "42"})
    assert policy.classify("cart:42:items") is None  # cart_items is always tagged
    assert policy.classify("cart:{4}2}") is None


def test_pattern_is_checked_on_the_captured_value() -> None:
    policy = toolkit.load(SETS["valid corpus"])
    assert policy.classify("seq:invoice:2024") == (policy.namespaces["invoice_sequence"], {"year": "2024"})
    assert policy.classify("seq:invoice:1999") is None


def test_a_literal_segment_and_a_parameter_that_cannot_hold_it(tmp_path: Path) -> None:
    """``user:me:profile`` and ``user:{user_id}:profile`` coexist when user_id is an int: classify picks the literal."""
    path = tmp_path / "p.yaml"
    path.write_text("""\
namespaces:
  my_profile: {key: "user:me:profile", type: string, tier: moderate}
  user_profile: {key: "user:{user_id}:profile", type: string, tier: moderate, params: {user_id: {type: int}}}
  user_kind: {key: "user:{user_id}x:profile", type: string, tier: moderate, params: {user_id: {type: int}}}
""")
    policy = toolkit.load(path)
    mine: Namespace = policy.namespaces["my_profile"]
    assert policy.classify("user:me:profile") == (mine, {})
    assert policy.classify("user:12:profile") == (policy.namespaces["user_profile"], {"user_id": "12"})
    assert policy.classify("user:12x:profile") == (policy.namespaces["user_kind"], {"user_id": "12"})
