"""The policy the runtime-contract tests share: each type and codec, fail-open and fail-closed."""

from __future__ import annotations

from pathlib import Path

import toolkit
from tests.policytext import load_policy

CONTRACT = """
parameters:
  user_id: {type: int}
namespaces:
  cart: {key: "cart:{user_id}", type: hash, tier: stable}
  cart_closed: {key: "cartc:{user_id}", type: hash, tier: stable, on_error: fail-closed}
  doc: {key: "doc:{user_id}", type: string, codec: json, tier: stable}
  doc_closed: {key: "docc:{user_id}", type: string, codec: json, tier: stable, on_error: fail-closed}
  blob: {key: "blob:{user_id}", type: string, codec: bytes, tier: stable}
  name: {key: "name:{user_id}", type: string, tier: stable}
  name_closed: {key: "namec:{user_id}", type: string, tier: stable, on_error: fail-closed}
  hits: {key: "hits:{user_id}", type: counter, tier: stable}
  hits_open: {key: "hitso:{user_id}", type: counter, tier: stable, on_error: fail-open}
  feed: {key: "feed:{user_id}", type: list, codec: json, tier: stable, max_length: 10}
  feed_closed: {key: "feedc:{user_id}", type: list, tier: stable, on_error: fail-closed}
"""


def contract_policy(directory: Path, target: str = "") -> toolkit.PolicySet:
    """The contract namespaces, plus a ``targets:`` section when ``target`` (YAML text) is given."""
    return load_policy(directory, CONTRACT, *([target] if target else []))
