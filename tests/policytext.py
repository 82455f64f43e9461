"""Small policy sets written by tests into their own temporary directories."""

from __future__ import annotations

import textwrap
from pathlib import Path

import toolkit

PAGE_NAMESPACE = """
namespaces:
  page:
    key: "page:{slug}"
    type: string
    tier: volatile
    ttl: 5m
"""
"""One cache namespace: enough for plan/apply cross-checks that need namespaces."""


def load_policy(directory: Path, *texts: str) -> toolkit.PolicySet:
    """Write each YAML text (dedented) as its own file in ``directory`` and load the set."""
    directory.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (directory / f"policy{i}.yaml").write_text(textwrap.dedent(text))
    return toolkit.load(directory)
