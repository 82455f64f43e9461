"""GitHub Actions workflow commands (``--output github``): annotations that GitHub shows on the run and on the
pull request's diff, at the file and line they name.

https://docs.github.com/actions/reference/workflow-commands-for-github-actions
"""

from __future__ import annotations

LEVELS = ("error", "warning", "notice")


def escape_data(text: str) -> str:
    """The message part: ``%``, CR and LF escaped, as the runner's ``toCommandValue`` does."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (``file=``, ``title=``): also ``:`` and ``,``, which would end it."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, *, title: str | None = None,
               where: tuple[str, int | None, int | None] | None = None) -> str:
    """One line ``::error file=F,line=L,col=C,title=T::message``; without ``where`` the annotation names no file,
    without a line it annotates the whole file."""
    if level not in LEVELS:
        raise ValueError(f"annotation level must be one of {', '.join(LEVELS)}, not {level!r}")
    props = []
    if where is not None:
        file, line, col = where
        props.append(f"file={escape_property(file)}")
        props += [f"line={int(line)}"] if line is not None else []
        props += [f"col={int(col)}"] if line is not None and col is not None else []
    if title:
        props.append(f"title={escape_property(title)}")
    return f"::{level}{' ' + ','.join(props) if props else ''}::{escape_data(message)}"
