"""``toolkit.policy.diff.compare``: the I/O-free engine of ``toolkit diff``.

The corpus ``diff_corpus/<case>/`` holds ``old/`` and ``new/`` policy directories and ``expected.json``
(``exit``: what the CLI returns, 0 nothing breaking, 3 breaking, 1 a side that fails validation;
``findings``: code, severity and subject of every finding, as a multiset). Every case with two valid
sides must give exactly its findings; the unit tests below check messages, paths, order and the
documents read back from JSON (as the published policy is).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import toolkit
from tests.policytext import load_policy
from toolkit.policy.diff import BREAKING, CODES, INFO, SEVERITIES, WARNING, DiffFinding, compare

CORPUS = Path(__file__).parent / "diff_corpus"
CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir())
BRIEF_CODES = {
    "namespace-removed": BREAKING, "key-changed": BREAKING, "type-changed": BREAKING, "codec-changed": BREAKING,
    "param-narrowed": BREAKING, "rule-removed": BREAKING, "rule-params-changed": BREAKING,
    "persistent-to-expiring": WARNING, "expiring-to-persistent": WARNING, "index-added": WARNING, "ttl-changed": WARNING,
    "tier-changed": WARNING, "on-error-changed": WARNING,
    "namespace-added": INFO, "rule-added": INFO, "target-changed": INFO,
}


def expected(case: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((case / "expected.json").read_text())
    return data


VALID = [c for c in CASES if expected(c)["exit"] != 1]
INVALID = [c for c in CASES if expected(c)["exit"] == 1]


def triples(findings: list[DiffFinding]) -> Counter[tuple[str, str, str]]:
    return Counter((f.code, f.severity, f.subject) for f in findings)


def diff_case(case: Path) -> tuple[toolkit.PolicySet, toolkit.PolicySet, list[DiffFinding]]:
    old, new = toolkit.load(case / "old"), toolkit.load(case / "new")
    return old, new, compare(old.document, new.document, old_targets=old.targets, new_targets=new.targets)


def by_code(findings: list[DiffFinding], code: str, subject: str | None = None) -> DiffFinding:
    found = [f for f in findings if f.code == code and (subject is None or f.subject == subject)]
    assert len(found) == 1, findings
    return found[0]


# -- the corpus ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_corpus_case_gives_exactly_its_findings(case: Path) -> None:
    want = expected(case)
    _, _, findings = diff_case(case)
    assert triples(findings) == Counter((f["code"], f["severity"], f["subject"]) for f in want["findings"])
    assert want["exit"] == (3 if any(f.severity == BREAKING for f in findings) else 0)


@pytest.mark.parametrize("case", INVALID, ids=[c.name for c in INVALID])
def test_invalid_case_has_a_side_that_fails_validation(case: Path) -> None:
    assert expected(case)["findings"] == []
    failing = []
    for side in ("old", "new"):
        try:
            toolkit.load(case / side)
        except toolkit.PolicyError as exc:
            assert exc.issues
            failing.append(side)
    assert len(failing) == 1, failing
    assert case.name.endswith(failing[0])  # invalid_old / invalid_new


def test_corpus_covers_every_code_and_the_required_shapes() -> None:
    seen = Counter(f["code"] for c in CASES for f in expected(c)["findings"])
    assert set(CODES) <= set(seen), set(CODES) - set(seen)
    assert {c.name for c in INVALID} == {"invalid_old", "invalid_new"}
    quiet = [c.name for c in VALID if not expected(c)["findings"]]
    assert {"identical", "cosmetic_only", "files_split", "key_order"} <= set(quiet)
    assert any(len({f["code"] for f in expected(c)["findings"]}) >= 5 for c in CASES)  # several combined
    for case in CASES:
        for f in expected(case)["findings"]:
            assert CODES[f["code"]][0] == f["severity"], (case.name, f)


def test_codes_of_the_issue_have_their_severity() -> None:
    assert {code: CODES[code][0] for code in BRIEF_CODES} == BRIEF_CODES
    assert {severity for severity, _ in CODES.values()} == set(SEVERITIES)


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_every_path_resolves_on_its_side(case: Path) -> None:
    old, new, findings = diff_case(case)
    for f in findings:
        assert f.side in ("old", "new")
        side = old if f.side == "old" else new
        found = side.locate(f.path)
        assert found is not None, f
        assert Path(found[0]).is_relative_to(case / f.side), (f, found)
        section, name = f.path[0], f.path[1]
        if f.code in ("namespace-removed", "rule-removed", "target-removed"):
            assert f.side == "old"
        elif section in ("namespaces", "invalidation"):
            assert f.side == "new"
            assert name in new.document[str(section)]  # type: ignore[operator]
        assert side.locations.get(f.path[:2]) is not None, f  # the subject itself is written on that side


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_documents_read_back_from_json_compare_the_same(case: Path) -> None:
    old, new, findings = diff_case(case)

    def published(document: Mapping[str, object], **options: Any) -> Any:
        return json.loads(json.dumps(dict(document), **options))

    for options in ({}, {"sort_keys": True, "separators": (",", ":")}):  # the second as toolkit apply publishes it
        again = compare(published(old.document, **options), published(new.document, **options),
                        old_targets=old.targets, new_targets=new.targets)
        assert again == findings


@pytest.mark.parametrize("case", VALID, ids=[c.name for c in VALID])
def test_a_document_compared_with_itself_gives_nothing(case: Path) -> None:
    for side in ("old", "new"):
        policy = toolkit.load(case / side)
        assert compare(policy.document, policy.document, old_targets=policy.targets, new_targets=policy.targets) == []
        assert compare(policy.document, json.loads(json.dumps(dict(policy.document), sort_keys=True))) == []


def test_the_example_policies_compared_with_themselves_give_nothing() -> None:
    policy = toolkit.load(Path(__file__).parent.parent / "policies")
    assert compare(policy.document, policy.document, old_targets=policy.targets, new_targets=policy.targets) == []


# -- order and determinism ----------------------------------------------------------------------


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same document with every mapping's keys in another order."""
    if isinstance(value, Mapping):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def test_findings_are_sorted_and_deterministic() -> None:
    old, new, findings = diff_case(CORPUS / "combined")
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    keys = [(rank[f.severity], f.subject, f.code) for f in findings]
    assert keys == sorted(keys)
    assert [f.severity for f in findings][0] == BREAKING and findings[-1].severity == INFO
    rng = random.Random(12)
    for _ in range(5):
        assert compare(shuffled(old.document, rng), shuffled(new.document, rng),
                       old_targets=old.targets, new_targets=new.targets) == findings


def test_targets_are_compared_only_when_both_sides_have_them() -> None:
    old, new, findings = diff_case(CORPUS / "targets")
    assert {f.code for f in findings} == {"target-changed", "target-added", "target-removed"}
    assert compare(old.document, new.document) == []
    assert compare(old.document, new.document, old_targets=old.targets) == []
    assert compare(old.document, new.document, new_targets=new.targets) == []


def test_as_dict_is_json_ready() -> None:
    _, _, findings = diff_case(CORPUS / "combined")
    for f in findings:
        data = f.as_dict()
        assert set(data) == {"code", "severity", "subject", "message", "remedy", "side", "path"}
        assert data["path"] == list(f.path)
        assert json.loads(json.dumps(data)) == data
        assert f.message and f.remedy


# -- messages -----------------------------------------------------------------------------------


def test_rename_that_looks_alike_says_so_on_both_sides() -> None:
    _, _, findings = diff_case(CORPUS / "rename_alike")
    removed = by_code(findings, "namespace-removed")
    added = by_code(findings, "namespace-added")
    assert "looks like a rename of sessions to user_sessions" in removed.message
    assert "looks like a rename from sessions" in added.message
    for f in (removed, added):
        assert "every live key of sessions is orphaned" in f.message
        assert "'sess:{session_id}'" in f.message
    assert "looks like a rename of session_ended to user_session_ended" in by_code(findings, "rule-removed").message
    assert "looks like a rename from session_ended" in by_code(findings, "rule-added").message


def test_rename_that_does_not_look_alike_says_nothing_of_a_rename() -> None:
    _, _, findings = diff_case(CORPUS / "rename_unlike")
    assert len(findings) == 4
    assert not any("rename" in f.message for f in findings)


def test_rename_with_the_same_key_template_keeps_the_keys() -> None:
    _, _, findings = diff_case(CORPUS / "rename_same_keys")
    removed = by_code(findings, "namespace-removed")
    assert removed.severity == BREAKING  # code that names the old namespace still breaks
    assert "looks like a rename of prefs to user_preferences" in removed.message
    assert "carry over" in removed.message and "orphaned" not in removed.message
    assert "looks like a rename from prefs" in by_code(findings, "namespace-added").message


def test_key_changed_says_old_and_new_template() -> None:
    _, _, findings = diff_case(CORPUS / "key_changed_literal")
    f = by_code(findings, "key-changed")
    assert "'sess:{session_id}' -> 'session:{session_id}'" in f.message
    assert "orphaned" in f.message and "cold" in f.message
    assert f.path == ("namespaces", "session", "key") and f.side == "new"


def test_key_changed_names_hash_tag_and_parameter_order() -> None:
    _, _, tagged = diff_case(CORPUS / "key_changed_hash_tag")
    assert "hash_tag none -> customer_id" in by_code(tagged, "key-changed").message
    assert by_code(tagged, "key-changed").path == ("namespaces", "cart", "hash_tag")
    _, _, order = diff_case(CORPUS / "key_changed_param_order")
    assert "parameter order (user_id, page -> page, user_id)" in by_code(order, "key-changed").message


def test_key_changed_by_a_parameter_rename_keeps_the_keys() -> None:
    _, _, findings = diff_case(CORPUS / "key_changed_param_renamed")
    f = by_code(findings, "key-changed")
    assert "id -> user_id" in f.message and "keys themselves are unchanged" in f.message


def test_persistent_data_left_behind_is_said_to_stay_forever() -> None:
    _, _, removed = diff_case(CORPUS / "namespace_removed_persistent")
    f = by_code(removed, "namespace-removed")
    assert "forever" in f.message and "delete" in f.remedy and "toolkit audit" in f.remedy
    assert f.side == "old" and f.path == ("namespaces", "invoice_sequence")
    _, _, moved = diff_case(CORPUS / "key_changed_persistent")
    f = by_code(moved, "key-changed")
    assert "forever" in f.message and "Migrate" in f.remedy
    _, _, expiring = diff_case(CORPUS / "namespace_removed")
    f = by_code(expiring, "namespace-removed")
    assert "forever" not in f.message and "until they expire, at most 30m" in f.message


def test_persistent_to_expiring_suggests_fix_ttl() -> None:
    _, _, findings = diff_case(CORPUS / "persistent_to_expiring")
    f = by_code(findings, "persistent-to-expiring")
    assert "toolkit audit --fix-ttl" in f.remedy and "no TTL" in f.message


def test_type_change_with_new_keys_is_only_a_key_change() -> None:
    _, _, findings = diff_case(CORPUS / "key_and_type_changed")
    assert [f.code for f in findings] == ["key-changed"]
    _, _, same_keys = diff_case(CORPUS / "type_changed")
    assert "WRONGTYPE" in by_code(same_keys, "type-changed", "namespace user").message


def test_target_changes_show_declarations_never_resolved_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGING_HOST", "secret-staging.internal")
    monkeypatch.setenv("CACHE_HOST", "secret-cache.internal")
    _, _, findings = diff_case(CORPUS / "targets")
    f = by_code(findings, "target-changed")
    assert "'${STAGING_HOST}' -> '${CACHE_HOST}'" in f.message
    assert "socket_timeout 500ms -> 1s" in f.message and "eviction_policy 'AllKeysLRU' -> 'VolatileLRU'" in f.message
    assert "secret" not in f.message and "description" not in f.message
    assert f.path == ("targets", "staging", "host")


def test_index_added_says_old_keys_are_not_indexed() -> None:
    _, _, findings = diff_case(CORPUS / "index_added")
    f = by_code(findings, "index-added")
    assert "not in the index" in f.message and f.path == ("invalidation", "cart_everything", "index")


def test_shared_parameter_points_at_the_parameters_section() -> None:
    _, _, findings = diff_case(CORPUS / "shared_parameter_narrowed")
    assert {f.path for f in findings} == {("parameters", "user_id", "type")}


# -- similarity and widening, on small policies ---------------------------------------------------


def namespaces_yaml(entries: dict[str, tuple[str, str, str]]) -> str:
    """namespaces: name -> (key, type, codec)."""
    lines = ["namespaces:"]
    for name, (key, ns_type, codec) in entries.items():
        lines += [f"  {name}:", f'    key: "{key}"', f"    type: {ns_type}", f"    codec: {codec}", "    tier: volatile"]
    return "\n".join(lines) + "\n"


def diff_texts(tmp_path: Path, old: str, new: str) -> list[DiffFinding]:
    a, b = load_policy(tmp_path / "old", old), load_policy(tmp_path / "new", new)
    return compare(a.document, b.document, old_targets=a.targets, new_targets=b.targets)


@pytest.mark.parametrize(("old", "new", "alike"), [
    (("sess:{id}", "string", "text"), ("session:{id}", "string", "text"), True),
    (("feed:{user}:{page}", "list", "json"), ("feed:{page}:{user}", "list", "json"), True),   # order only
    (("sess:{id}", "string", "text"), ("session:{id}", "hash", "text"), False),             # another type
    (("sess:{id}", "string", "text"), ("session:{id}", "string", "json"), False),           # another codec
    (("sess:{id}", "string", "text"), ("session:{sid}", "string", "text"), False),          # another parameter
    (("config:flags", "hash", "text"), ("config:feature_flags", "hash", "text"), True),     # no parameter, alike text
    (("config:flags", "hash", "text"), ("motd:today", "hash", "text"), False),              # no parameter, unlike text
])
def test_similarity_rule(tmp_path: Path, old: tuple[str, str, str], new: tuple[str, str, str], alike: bool) -> None:
    findings = diff_texts(tmp_path, namespaces_yaml({"before": old}), namespaces_yaml({"after": new}))
    assert [f.code for f in findings] == ["namespace-removed", "namespace-added"]
    assert ("looks like a rename of before to after" in findings[0].message) is alike
    assert ("looks like a rename from before" in findings[1].message) is alike


def test_the_most_alike_pair_wins(tmp_path: Path) -> None:
    old = namespaces_yaml({"user_name": ("user:{id}:name", "string", "text"), "user_mail": ("user:{id}:mail", "string", "text")})
    new = namespaces_yaml({"account_mail": ("account:{id}:mail", "string", "text"),
                           "account_name": ("account:{id}:name", "string", "text")})
    findings = diff_texts(tmp_path, old, new)
    text = " ".join(f.message for f in findings)
    assert "rename of user_name to account_name" in text and "rename of user_mail to account_mail" in text


@pytest.mark.parametrize(("old", "new", "code"), [
    ("type: int", "type: str", "param-widened"),
    ("type: int", "type: slug", "param-widened"),
    ("type: slug", "type: str", "param-widened"),
    ("type: uuid", "type: slug", "param-widened"),
    ("type: uuid", "type: str", "param-widened"),
    ("{pattern: '[a-z]+'}", "{}", "param-widened"),
    ("{max_length: 10}", "{max_length: 20}", "param-widened"),
    ("type: str", "type: int", "param-narrowed"),
    ("type: str", "type: slug", "param-narrowed"),
    ("type: str", "type: uuid", "param-narrowed"),
    ("type: slug", "type: int", "param-narrowed"),
    ("type: int", "type: uuid", "param-narrowed"),
    ("type: uuid", "type: int", "param-narrowed"),
    ("{}", "{pattern: '[a-z]+'}", "param-narrowed"),
    ("{pattern: '[a-z]+'}", "{pattern: '[a-z0-9]+'}", "param-narrowed"),          # any pattern change
    ("{max_length: 20}", "{max_length: 10}", "param-narrowed"),
    ("type: uuid", "{type: str, max_length: 20}", "param-narrowed"),              # shorter than a uuid
    ("{type: int, max_length: 20}", "{type: str, max_length: 10}", "param-narrowed"),  # wider type, shorter
    ("{type: uuid, max_length: 20}", "{type: uuid, max_length: 40}", None),       # a uuid's length is fixed
])
def test_widening_rule(tmp_path: Path, old: str, new: str, code: str | None) -> None:
    def policy(spec: str) -> str:
        spec = spec if spec.startswith("{") else "{" + spec + "}"
        return f'namespaces:\n  item:\n    key: "item:{{p}}"\n    type: string\n    tier: volatile\n    params:\n      p: {spec}\n'

    findings = diff_texts(tmp_path, policy(old), policy(new))
    assert [f.code for f in findings] == ([code] if code else [])
    if code == "param-narrowed":
        assert findings[0].severity == BREAKING
    elif code:
        assert findings[0].severity == INFO


def test_a_renamed_parameter_in_a_rule_template_is_not_a_narrower_rule(tmp_path: Path) -> None:
    """``match: p:{uid}`` -> ``p:{user}`` with the parameter renamed: the callers break (rule-params-changed), the keys
    the rule deletes do not change, so no rule-narrowed / rule-extended."""
    def write(name: str, param: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "p.yaml").write_text(
            "namespaces:\n"
            f"  prof:\n    key: \"p:{{{param}}}\"\n    type: string\n    tier: volatile\n"
            f"invalidation:\n  r1:\n    match: \"p:{{{param}}}\"\n")
        return d

    old, new = toolkit.load(write("old", "uid")), toolkit.load(write("new", "user"))
    codes = [f.code for f in compare(old.document, new.document)]
    assert "rule-params-changed" in codes and "rule-narrowed" not in codes and "rule-extended" not in codes
