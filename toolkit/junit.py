"""JUnit XML (``--output junit``): results as test cases that CI systems collect and show as test failures.

The common Jenkins/Ant shape that GitHub test reporters, Azure Pipelines (``PublishTestResults@2``, format
JUnit) and GitLab (``artifacts:reports:junit``) read: one ``<testsuites>`` holding one ``<testsuite>``, each
``<testcase>`` passing, or holding one ``<failure>`` (a policy problem), ``<error>`` (the check could not run)
or ``<skipped>``. The counts on both elements are those of the cases. Text is escaped by ElementTree;
characters XML 1.0 cannot carry at all (control characters of a Redis key, lone surrogates) are written as
``\\xNN`` / ``\\uNNNN``, and everything beyond ASCII as character references, so the document is well formed
whatever the terminal's encoding.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

PASSED, FAILURE, ERROR, SKIPPED = "passed", "failure", "error", "skipped"
OUTCOMES = (PASSED, FAILURE, ERROR, SKIPPED)

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold written as a Python escape (``\\x01``, ``\\udcff``)."""
    return _NOT_XML.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


@dataclass(frozen=True)
class Case:
    """One ``<testcase>``: ``outcome`` is one of ``OUTCOMES``; ``message`` is the one-line headline reporters show,
    ``details`` the element's text; ``stdout`` goes to ``<system-out>``."""

    classname: str
    name: str
    outcome: str = PASSED
    message: str = ""
    type: str = ""
    details: str = ""
    stdout: str = ""
    file: str | None = None
    line: int | None = None
    time: float = 0.0

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {self.outcome!r}")


def _time(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


def _counts(cases: Sequence[Case], time: float) -> dict[str, str]:
    return {"tests": str(len(cases)), "failures": str(sum(c.outcome == FAILURE for c in cases)),
            "errors": str(sum(c.outcome == ERROR for c in cases)), "skipped": str(sum(c.outcome == SKIPPED for c in cases)),
            "time": _time(time)}


def _text(parent: ET.Element, tag: str, text: str, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: clean(v) for k, v in attrs.items()})
    if text:
        element.text = clean(text)
    return element


def document(suite: str, cases: Iterable[Case], *, time: float = 0.0,
             properties: Mapping[str, str] | None = None, stdout: str = "") -> str:
    """The whole XML document (declaration included, ends with a newline) for one suite named ``suite``."""
    cases = list(cases)
    root = ET.Element("testsuites", {"name": clean(suite), **_counts(cases, time)})
    element = ET.SubElement(root, "testsuite", {"name": clean(suite), **_counts(cases, time)})
    if properties:
        props = ET.SubElement(element, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", {"name": clean(key), "value": clean(value)})
    for case in cases:
        attrs = {"classname": clean(case.classname), "name": clean(case.name), "time": _time(case.time)}
        if case.file:
            attrs["file"] = clean(case.file)
            if case.line is not None:
                attrs["line"] = str(int(case.line))
        testcase = ET.SubElement(element, "testcase", attrs)
        if case.outcome != PASSED:
            extra = {"type": case.type} if case.type and case.outcome != SKIPPED else {}
            _text(testcase, case.outcome, case.details, message=case.message, **extra)
        if case.stdout:
            _text(testcase, "system-out", case.stdout)
    if stdout:
        _text(element, "system-out", stdout)
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode").encode("ascii", "xmlcharrefreplace").decode("ascii")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{text}\n'


def error_document(suite: str, classname: str, message: str, details: str = "", *, type: str = "error",
                   file: str | None = None, line: int | None = None) -> str:
    """A suite of one ``<error>`` case named ``suite``: the command could not run (invalid input, a bug...)."""
    return document(suite, [Case(classname, suite, ERROR, message=message, type=type, details=details or message,
                                 file=file, line=line)])
