"""``toolkit diff``: the policy changes that break running applications, found before they merge.

The comparison itself is policy logic without I/O (``toolkit.policy.diff``); this package reads
the two sides (a directory, ``git:REF``, or the policy published on an instance), renders the
findings and decides the exit code.
"""

from toolkit.diff.command import EXIT_BREAKING, run

__all__ = ["EXIT_BREAKING", "run"]
