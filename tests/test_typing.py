"""The public API is typed for user code: mypy accepts correct calls and flags a typo.

Runs the real mypy (a test extra) on small files that use the toolkit as an application would.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

USER_CODE = """
import asyncio
import toolkit
import toolkit.aio

def sync_app() -> None:
    engine = toolkit.connect("policies", "local")
    users = engine.namespace("user")
    count: int | None = users.hset(mapping={"name": "Alice"}, user_id=1001)
    fields: dict[str, object] = users.hgetall(user_id=1001)
    with engine.pipeline() as p:
        p.namespace("user_name").get(user_id=1001)
    print(count, fields, p.results, engine.stats(), engine.health(), engine.invalidate("user_updated", user_id=1))

async def async_app() -> None:
    async with toolkit.aio.connect("policies", "local") as engine:
        views: int | None = await engine.namespace("page_views").incr(page="home")
        print(views, await engine.invalidate("user_updated", user_id=1))
"""


def mypy(tmp_path, code: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy", reason="mypy is a test extra: pip install -e '.[test]'")
    path = tmp_path / "app.py"
    path.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--python-version", "3.10",
                           "--follow-imports", "silent", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_user_code_type_checks_and_a_typo_is_an_error(tmp_path):
    clean = mypy(tmp_path, USER_CODE)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    typo = mypy(tmp_path, USER_CODE.replace("users.hset(", "users.hsett(").replace(".incr(", ".incrr(")
                + "\nasync def forgot() -> None:\n    engine = await toolkit.aio.connect('policies')\n"
                  "    engine.namespace('user').delete(user_id=1)\n")
    assert typo.returncode == 1
    assert '"AnyHandle" has no attribute "hsett"' in typo.stdout and '"AsyncAnyHandle" has no attribute "incrr"' in typo.stdout
    assert "unused-coroutine" in typo.stdout  # the forgotten await


def test_the_toolkit_ships_py_typed():
    assert (ROOT / "toolkit" / "py.typed").is_file()


def test_mypy_and_ruff_are_clean_on_the_toolkit():
    """The settings in pyproject.toml, on toolkit/: what a contributor's editor and CI see."""
    pytest.importorskip("mypy", reason="mypy is a test extra: pip install -e '.[test]'")
    checked = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stdout[-3000:]
    linted = subprocess.run([sys.executable, "-m", "ruff", "check", "toolkit"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert linted.returncode == 0, linted.stdout[-3000:]
