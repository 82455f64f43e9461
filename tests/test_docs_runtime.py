"""docs/runtime.md names exactly what the runtime has: handle methods, errors, counters, reasons, settings."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import toolkit.errors
from toolkit.policy.model import ClientOptions
from toolkit.runtime._failures import TABLE
from toolkit.runtime._handles import _HANDLES, Handle
from toolkit.runtime._stats import COUNTERS

DOC = (Path(__file__).resolve().parent.parent / "docs" / "runtime.md").read_text()
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    """The text of a ``## title`` / ``### title`` section, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#)", DOC + "\n#", re.S | re.M)
    assert match, title
    return match.group(1)


def documented_methods(title: str) -> set[str]:
    return set(re.findall(r"^\| `(\w+)\(", section(title), re.M))


def test_every_handle_method_is_documented_in_its_types_table():
    common = {name for name in vars(Handle) if not name.startswith("_") and callable(getattr(Handle, name))}
    assert documented_methods("Every namespace") == common
    for type_name, cls in _HANDLES.items():
        table = documented_methods(f"`type: {type_name}`")
        text = section(f"`type: {type_name}`")
        named = table | set(re.findall(r"`(\w+)`", text))
        assert cls.commands <= named, (type_name, cls.commands - named)
        assert table <= cls.commands, (type_name, table - cls.commands)


def test_the_error_tree_lists_every_public_exception():
    tree = section("Errors")
    exceptions = {name for name, value in vars(toolkit.errors).items()
                  if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == "toolkit.errors"}
    assert set(re.findall(r"[├└]── (\w+)", tree)) | {"ToolkitError"} == exceptions


def test_the_failure_table_has_every_reason_with_its_counter():
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| [^|]+ \| `(\w+)` \|", section("The failure table"), re.M))
    assert rows == {reason: entry.counter for reason, entry in TABLE.items()}


def test_the_stats_table_has_every_counter():
    assert re.findall(r"^\| `(\w+)` \|", section("Stats"), re.M) == list(COUNTERS)


def test_the_client_settings_table_has_every_setting_and_its_default():
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+?) \|", section("Client settings (`targets.<name>.client`)"), re.M))
    defaults = ClientOptions()
    for f in dataclasses.fields(ClientOptions):
        name = f.name.removesuffix("_ms")
        assert name in rows, name
        value = getattr(defaults, f.name)
        shown = rows[name].strip("`")
        if value is None:
            assert shown == "no limit"
        elif f.name.endswith("_ms"):
            assert shown in (f"{value}ms", f"{value // 1000}s", str(value // 1000)), (name, shown)
        else:
            assert shown == str(value), (name, shown)


def test_the_readme_links_the_runtime_reference():
    assert "docs/runtime.md" in README
