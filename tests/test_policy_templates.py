"""Keys from parameters are safe by construction: ``Namespace.key`` refuses any value that could
reach into another namespace, widen a SCAN, move a key to another cluster slot or hide in it."""

from __future__ import annotations

import re
import uuid

import pytest

import toolkit
from toolkit.policy import KeyTemplate, Param, glob_escape
from toolkit.policy.templates import parse_template

POLICY = """\
namespaces:
  profile:
    key: "user:{user_id}:profile"
    type: string
    tier: moderate
  order:
    key: "order:{order_id}"
    type: string
    tier: moderate
    params:
      order_id: {type: int, max_length: 6}
  device:
    key: "device:{device_id}"
    type: hash
    tier: stable
    params:
      device_id: {type: uuid}
  article:
    key: "article:{slug}:v{version}"
    type: string
    tier: stable
    params:
      slug: {type: slug, max_length: 20}
      version: {type: int}
  session:
    key: "session:{session_id}"
    type: string
    tier: volatile
    params:
      session_id: {pattern: "[A-Za-z0-9]{8}"}
  cart:
    key: "cart:{user_id}:items"
    type: list
    tier: moderate
    hash_tag: user_id
"""


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> toolkit.PolicySet:
    path = tmp_path_factory.mktemp("templates") / "p.yaml"
    path.write_text(POLICY, encoding="utf-8")
    return toolkit.load(path)


def test_keys_from_valid_parameters(policy: toolkit.PolicySet) -> None:
    ns = policy.namespaces
    assert ns["profile"].key(user_id=1001) == "user:1001:profile"
    assert ns["profile"].key(user_id="Alice.Smith@example") == "user:Alice.Smith@example:profile"
    assert ns["profile"].key(user_id="Zoë") == "user:Zoë:profile"
    assert ns["order"].key(order_id="42") == ns["order"].key(order_id=42) == "order:42"
    with pytest.raises(toolkit.PolicyViolation, match="not canonical: write '42'"):  # one key per entity, never two
        ns["order"].key(order_id="000042")
    assert ns["device"].key(device_id="0f8fad5b-d9cb-469f-a165-70867728950e") == "device:0f8fad5b-d9cb-469f-a165-70867728950e"
    assert ns["device"].key(device_id=uuid.UUID("0F8FAD5B-D9CB-469F-A165-70867728950E")) == "device:0f8fad5b-d9cb-469f-a165-70867728950e"
    assert ns["article"].key(slug="redis-7_release", version=3) == "article:redis-7_release:v3"
    assert ns["session"].key(session_id="Ab12Cd34") == "session:Ab12Cd34"
    assert ns["cart"].key(user_id=1001) == "cart:{1001}:items"
    assert ns["profile"].build_key({"user_id": 7}) == "user:7:profile"


@pytest.mark.parametrize("value, why", [
    ("", "empty value"),
    ("1001:admin", "contains ':'"),
    ("*", "contains '*'"),
    ("user?", "contains '?'"),
    ("[ab]", "contains '['"),
    ("a]", "contains ']'"),
    ("back\\slash", "contains '\\\\'"),
    ("{1001}", "contains '{'"),
    ("x}", "contains '}'"),
    ("two words", "contains ' '"),
    ("tab\there", "contains '\\t'"),
    ("line\nbreak", "contains '\\n'"),
    ("nul\x00", "contains '\\x00'"),
    ("del\x7f", "contains '\\x7f'"),
    ("c1\x9b", "contains '\\x9b'"),
    ("no\u00a0break", "contains '\\xa0'"),
    ("zero\u200bwidth", "contains '\\u200b'"),
    ("bidi\u202eoverride", "contains '\\u202e'"),
    ("x" * 129, "129 characters, over its max_length 128"),
])
def test_unsafe_values_are_refused(policy: toolkit.PolicySet, value: str, why: str) -> None:
    with pytest.raises(toolkit.PolicyViolation, match=f"parameter 'user_id': .*{re.escape(why)}"):
        policy.namespaces["profile"].key(user_id=value)


@pytest.mark.parametrize("name, params, why", [
    ("order", {"order_id": "12a"}, "value '12a' is not of type int"),
    ("order", {"order_id": -1}, "value '-1' is not of type int"),
    ("order", {"order_id": 1234567}, "7 characters, over its max_length 6"),
    ("device", {"device_id": "0F8FAD5B-D9CB-469F-A165-70867728950E"}, "is not of type uuid"),
    ("device", {"device_id": "0f8fad5b"}, "is not of type uuid"),
    ("article", {"slug": "Redis", "version": 1}, "value 'Redis' is not of type slug"),
    ("article", {"slug": "a.b", "version": 1}, "value 'a.b' is not of type slug"),
    ("session", {"session_id": "short"}, "value 'short' does not match pattern '[A-Za-z0-9]{8}'"),
    ("session", {"session_id": "Ab12Cd34x"}, "does not match pattern"),
])
def test_typed_parameters(policy: toolkit.PolicySet, name: str, params: dict, why: str) -> None:
    with pytest.raises(toolkit.PolicyViolation, match=re.escape(why)):
        policy.namespaces[name].key(**params)


@pytest.mark.parametrize("value", [True, None, 1.5, b"1001", ["1001"], object()])
def test_values_must_be_text_or_integers(policy: toolkit.PolicySet, value: object) -> None:
    with pytest.raises(toolkit.PolicyViolation, match="expected text or an integer, got"):
        policy.namespaces["profile"].key(user_id=value)


def test_missing_and_unexpected_parameters(policy: toolkit.PolicySet) -> None:
    article = policy.namespaces["article"]
    with pytest.raises(toolkit.PolicyViolation, match=r"namespace 'article' takes parameters \(slug, version\): missing version"):
        article.key(slug="a")
    with pytest.raises(toolkit.PolicyViolation, match="unexpected lang"):
        article.key(slug="a", version=1, lang="en")
    with pytest.raises(toolkit.PolicyViolation, match="missing user_id; unexpected uid"):
        policy.namespaces["profile"].key(uid=1)


def test_a_hash_tag_cannot_be_forged_through_a_value(policy: toolkit.PolicySet) -> None:
    """Only the hash_tag parameter is braced, and no value can add braces of its own."""
    cart = policy.namespaces["cart"]
    assert cart.key(user_id="a-b") == "cart:{a-b}:items"
    with pytest.raises(toolkit.PolicyViolation):
        cart.key(user_id="x}:{y")
    assert "{" not in policy.namespaces["profile"].key(user_id=1)


@pytest.mark.parametrize("source, error", [
    ("user:{{user_id}}", "unbalanced or literal brace"),
    ("user:{user_id", "unbalanced or literal brace"),
    ("user:user_id}", "unbalanced or literal brace"),
    ("user:{User}", "placeholder {User} is not a parameter name"),
    ("user:{}", "placeholder {} is not a parameter name"),
    ("a:{x}:{x}", "parameter 'x' appears twice"),
    ("a:{x}{y}", "placeholders {x} and {y} touch"),
    ("a b:{x}", "not allowed in keys"),
    ("a*:{x}", "not allowed in keys"),
    ("", "empty template"),
])
def test_bad_templates(source: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        parse_template(source)


def test_glob_templates_allow_wildcards_in_literal_text_only() -> None:
    glob = parse_template("user:{user_id}:*", glob=True)
    assert glob.glob and glob.params == ("user_id",)
    assert glob.render({"user_id": "a*b?"}) == "user:a\\*b\\?:*"
    assert glob.render({"user_id": "7"}, hash_tag="user_id") == "user:{7}:*"
    with pytest.raises(ValueError, match=re.escape("placeholder {*} is not a parameter name")):
        parse_template("user:{x}:{*}", glob=True)


def test_glob_escape() -> None:
    assert glob_escape("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    assert glob_escape("plain") == "plain"


def test_template_segments_split_at_colons() -> None:
    template = parse_template("a:b{x}c:{y}")
    assert isinstance(template, KeyTemplate)
    assert template.segments() == [["a"], ["b", ("x",), "c"], [("y",)]]


def test_param_regex_and_check_agree() -> None:
    """classify's regex accepts exactly what check accepts (a pattern aside, which classify checks separately)."""
    for param in (Param("s"), Param("i", "int", max_length=4), Param("u", "uuid"), Param("g", "slug", max_length=5)):
        for value in ("abc", "1234", "12345", "0", "007", "0123", "a-b_c", "0f8fad5b-d9cb-469f-a165-70867728950e", "x:y", "",
                      "A B"):
            try:
                param.check(value)
                accepted = True
            except toolkit.PolicyViolation:
                accepted = False
            assert accepted == (re.fullmatch(param.regex(), value) is not None), (param, value)
