"""``toolkit.load``: the whole policy set is checked and every issue reported at once.

Single-file mistakes live in the corpus (``test_policy_corpus``); the tests here cover what
spans files or concerns the loader's API: names unique across files, a broken file not
hiding the others, schema errors not hiding semantic ones, env references, the digest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import toolkit
from toolkit.errors import ConfigurationError
from toolkit.policy import BUILTIN_TIERS, resolve_env
from toolkit.policy.durations import format_duration, parse_duration

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "policy_corpus" / "invalid"

# Every check the policy language promises, and the corpus file(s) that prove it.
CHECKS = {
    "ttl outside its tier": ["ttl_outside_tier", "ttl_below_tier"],
    "unknown tier": ["unknown_tier"],
    "a name defined twice in one YAML mapping": ["duplicate_namespace_in_mapping", "duplicate_field_in_mapping",
                                                 "duplicate_key_in_merged_anchor"],
    "two key templates that can match the same key": ["overlapping_templates", "overlapping_literal_and_parameter"],
    "a rule naming an unknown namespace": ["rule_unknown_namespace"],
    "a rule whose templates disagree on parameters": ["rule_params_disagree", "rule_param_types_disagree"],
    "a literal secret": ["secret_url_password", "secret_in_description", "secret_access_key", "secret_token",
                         "secret_password_field"],
    "an empty or non-mapping file": ["empty_mapping_file", "not_a_mapping", "section_not_a_mapping"],
    "alias bombs": ["alias_bomb", "recursive_alias", "too_deep"],
    "anything but plain YAML": ["python_tag", "custom_tag", "multiple_documents", "invalid_yaml"],
    "${ENV} outside targets": ["interpolation_outside_targets"],
    "durations": ["bad_duration"],
    "persistent tier requires a reason": ["persistent_without_reason", "persistent_with_ttl", "persistent_tier_declared"],
    "built-in tiers can be narrowed, not widened": ["widened_builtin_tier"],
    "jitter keeps ttl within the tier": ["jitter_exceeds_tier"],
    "hash_tag must be a template parameter": ["hash_tag_not_a_parameter"],
    "literal braces in templates": ["literal_braces_in_template"],
    "reserved __toolkit__ prefix": ["reserved_prefix", "leading_parameter_reaches_reserved", "rule_match_reaches_reserved_keys"],
}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_every_promised_check_has_corpus_files(check: str) -> None:
    missing = [name for name in CHECKS[check] if not (CORPUS / f"{name}.yaml").is_file()]
    assert missing == []


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_issues(*paths: Path) -> list[str]:
    with pytest.raises(toolkit.PolicyError) as caught:
        toolkit.load(list(paths))
    return [str(issue) for issue in caught.value.issues]


NAMESPACE = """\
namespaces:
  {name}:
    key: "{key}"
    type: string
    tier: volatile
"""


def test_name_defined_in_two_files_is_reported_at_the_second(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", NAMESPACE.format(name="session", key="session:{session_id}"))
    second = write(tmp_path, "b.yaml", "# the same name, another team\n" + NAMESPACE.format(name="session", key="sess:{id}"))
    assert load_issues(tmp_path) == [
        f"{second}:3:3: namespaces.session: namespaces 'session' is already defined in {first}:2; "
        "names are unique across the policy set"
    ]


@pytest.mark.parametrize("section, body", [
    ("tiers", "tiers:\n  hourly: {min: 1h, default: 1h}\n"),
    ("targets", "targets:\n  local: {provider: redis, host: localhost}\n"),
    ("parameters", "parameters:\n  user_id: {type: int}\n"),
    ("invalidation", "invalidation:\n  flush: {match: 'app:*'}\n"),
])
def test_every_section_has_unique_names_across_files(tmp_path: Path, section: str, body: str) -> None:
    write(tmp_path, "a.yaml", body)
    second = write(tmp_path, "b.yaml", body)
    name = body.splitlines()[1].split(":")[0].strip()
    assert load_issues(tmp_path) == [f"{second}:2:3: {section}.{name}: {section} {name!r} is already defined in "
                                     f"{tmp_path / 'a.yaml'}:2; names are unique across the policy set"]


def test_a_broken_file_does_not_hide_the_others(tmp_path: Path) -> None:
    unreadable = tmp_path / "a.yaml"
    unreadable.write_bytes(b"namespaces: \xff\n")
    schema = write(tmp_path, "b.yaml", "namespaces:\n  cart:\n    key: 'cart:{id}'\n    type: sett\n    tier: volatile\n")
    semantic = write(tmp_path, "c.yaml", NAMESPACE.format(name="quote", key="quote:{id}").replace("volatile", "volatil"))
    issues = load_issues(tmp_path)
    assert [line.split(": ")[0] for line in issues] == [f"{unreadable}:1:13", f"{schema}:4:11", f"{semantic}:5:11"]


def test_schema_errors_do_not_hide_semantic_errors_or_cause_follow_on_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """\
tiers:
  hourly: {min: 1h, default: soon}
namespaces:
  report:
    key: "report:{id}"
    type: string
    tier: hourly
  profile:
    key: "profile:{id}"
    type: string
    tier: moderate
    ttl: 3h
    colour: blue
  cart:
    key: "cart:{id}"
    type: string
    tier: volatile
    ttl: 10m
invalidation:
  refresh:
    namespaces: [profile, basket]
""")
    assert load_issues(path) == [
        f"{path}:2:30: tiers.hourly.default: expected a duration such as 500ms, 90s, 5m, 1h, 1d or integer seconds, got 'soon'",
        f"{path}:13:5: namespaces.profile.colour: unknown field 'colour' (allowed: cache_aside, codec, description, hash_tag, "
        "jitter, key, local_cache, max_length, on_error, owner, params, reason, tier, trace_params, ttl, type)",
        # The broken tier and namespace are left out without "unknown tier 'hourly'" or "unknown namespace 'profile'";
        # the mistakes next to them are still found.
        f"{path}:18:10: namespaces.cart.ttl: ttl 10m is outside tier 'volatile' (1m to 5m); choose a ttl inside it or another tier",
        f"{path}:21:27: invalidation.refresh.namespaces[1]: unknown namespace 'basket'",
    ]


def test_policy_error_lists_issues_sorted_with_their_parts(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", NAMESPACE.format(name="b", key="b:{id}").replace("volatile", "nope")
                 + NAMESPACE.format(name="a", key="a:{id}").replace("namespaces:\n", "").replace("type: string", "type: set"))
    with pytest.raises(toolkit.PolicyError) as caught:
        toolkit.load(path)
    issues = caught.value.issues
    assert [(i.line, i.col, i.path) for i in issues] == [(5, 11, "namespaces.b.tier"), (8, 11, "namespaces.a.type")]
    assert all(isinstance(i, toolkit.PolicyIssue) and i.file == str(path) for i in issues)
    assert str(caught.value) == "\n".join(map(str, issues))
    assert issues[0].as_dict() == {"file": str(path), "line": 5, "col": 11, "path": "namespaces.b.tier",
                                   "message": issues[0].message}


def test_load_takes_a_path_a_string_or_several(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", NAMESPACE.format(name="a", key="a:{id}"))
    b = write(tmp_path, "b.yml", NAMESPACE.format(name="b", key="b:{id}"))
    assert set(toolkit.load(a).namespaces) == {"a"}
    assert set(toolkit.load(str(tmp_path)).namespaces) == {"a", "b"}
    assert toolkit.load([b, a]).sources == (str(b), str(a))


def test_example_policies_load() -> None:
    policy = toolkit.load(ROOT / "policies")
    assert {"local", "production"} <= set(policy.targets)
    assert policy.namespaces["user_profile"].ttl_ms == 30 * 60_000
    assert policy.tiers["ephemeral"].default_ms == 5000


def test_builtin_tier_narrowed_to_its_own_bounds_is_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "tiers:\n  static: {min: 1d, default: 7d}\n  stable: {min: 1h, max: 24h, default: 2h}\n")
    policy = toolkit.load(path)
    assert policy.tiers["static"].max_ms is None and policy.tiers["static"].default_ms == 7 * 86_400_000
    assert policy.tiers["stable"].default_ms == 7_200_000
    assert BUILTIN_TIERS["stable"].default_ms == 3_600_000  # the built-in table itself is untouched


def test_removing_a_builtin_tiers_upper_bound_is_widening(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", "tiers:\n  moderate: {min: 15m, default: 30m}\n")
    assert load_issues(path) == [f"{path}:2:13: tiers.moderate: built-in tier 'moderate' can only be narrowed, not widened: "
                                 "no max is above its bounds (15m to 1h); declare a tier with another name instead"]


def test_env_references_are_resolved_when_used_not_when_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOOLKIT_TEST_HOST", raising=False)
    path = write(tmp_path, "t.yaml", "targets:\n  t:\n    provider: redis\n    host: '${TOOLKIT_TEST_HOST}'\n"
                                     "    port: '${TOOLKIT_TEST_PORT:-6390}'\n")
    target = toolkit.load(path).targets["t"]  # a missing variable is no validation error
    with pytest.raises(ConfigurationError, match="targets.t.host: environment variable TOOLKIT_TEST_HOST is not set"):
        resolve_env(target.host, "targets.t.host")
    assert resolve_env(target.port, "targets.t.port") == "6390"
    monkeypatch.setenv("TOOLKIT_TEST_HOST", "cache.internal")
    monkeypatch.setenv("TOOLKIT_TEST_PORT", "7000")
    assert resolve_env(target.host, "h") == "cache.internal"
    assert resolve_env(target.port, "p") == "7000"
    assert resolve_env("redis://${TOOLKIT_TEST_HOST}:${TOOLKIT_TEST_PORT}/0", "url") == "redis://cache.internal:7000/0"
    assert resolve_env(None, "x") is None


@pytest.mark.parametrize("text, ms", [
    ("500ms", 500), ("90s", 90_000), ("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000), (120, 120_000), (0, 0),
])
def test_duration_forms(text: object, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["5 minutes", "1.5h", "-1s", "1w", "", True, None, 1.5, -3])
def test_durations_that_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("ms, text", [(500, "500ms"), (90_000, "90s"), (3_600_000, "1h"), (5_400_000, "90m"), (172_800_000, "2d")])
def test_durations_are_shown_in_their_largest_exact_unit(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_digest_covers_the_keyspace_policy_not_targets_or_file_layout(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    ns_a, ns_b = NAMESPACE.format(name="a", key="a:{id}"), NAMESPACE.format(name="b", key="b:{id}")
    write(one, "all.yaml", ns_a + ns_b.replace("namespaces:\n", "") + "targets:\n  t: {provider: redis, host: h1}\n")
    write(two, "a.yaml", ns_a)
    write(two, "b.yaml", ns_b + "targets:\n  t: {provider: redis, host: h2}\n")
    assert toolkit.load(one).digest == toolkit.load(two).digest
    write(two, "b.yaml", ns_b.replace("volatile", "moderate"))
    assert toolkit.load(one).digest != toolkit.load(two).digest
