"""What the runtime-contract tests share: a policy with each type and codec, fail-open and
fail-closed, and a way to run one function in many threads at once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

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
  locked: {key: "locked:{user_id}", type: string, tier: stable, cache_aside: {lock: true, lock_timeout: 5s, wait_timeout: 2s}}
"""


def contract_policy(directory: Path, target: str = "") -> toolkit.PolicySet:
    """The contract namespaces, plus a ``targets:`` section when ``target`` (YAML text) is given."""
    return load_policy(directory, CONTRACT, *([target] if target else []))


def in_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(n)`` for n in range(count), each in its own thread; return what they raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - returned to the test, which asserts on it
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
