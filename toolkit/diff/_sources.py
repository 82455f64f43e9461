"""The two sides of a diff: policy files on disk, the same paths at a git ref, or the policy an instance runs.

``git:REF`` reads the files with the ``git`` command (``ls-tree`` and ``cat-file``) into a private
temporary directory, so that the loader checks them exactly as it checks a working tree; the
locations it reports are then shown as the repository paths at that ref.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit.errors import PolicyError, ToolkitError
from toolkit.policy.loader import load
from toolkit.policy.model import PolicySet, Target

GIT_PREFIX = "git:"
_GIT_TIMEOUT_S = 60


class SideError(ToolkitError):
    """A side cannot be read (a bad git ref, no git, nothing published): invalid input, exit 1."""


@dataclass(frozen=True)
class Side:
    label: str
    """How the side is named in the output: ``policies``, ``git:origin/main``, ``target production``."""
    document: Mapping[str, Any]
    targets: Mapping[str, Target] | None = None
    policy: PolicySet | None = None
    """The loaded files, for locations (None for a published document)."""
    shown_path: Callable[[str], str] = field(default=lambda path: path)
    """A location's file as the user knows it (the repository path for a git side)."""
    note: str = ""

    def where(self, path: tuple[str | int, ...]) -> tuple[str, int] | None:
        """(file, line) where ``path`` is written on this side."""
        if self.policy is None or not path:
            return None
        found = self.policy.locate(path)
        return None if found is None else (self.shown_path(found[0]), found[1])


def files_side(paths: list[str]) -> Side:
    """Policy files or directories as they are on disk (PolicyError if they do not validate)."""
    policy = load(paths)
    return Side(" ".join(paths), policy.document, policy.targets, policy)


@contextmanager
def git_side(spec: str, default_paths: list[str]) -> Iterator[Side]:
    """``git:REF`` (the ``default_paths``, relative to the working directory, at REF) or ``git:REF:PATH`` (PATH
    from the repository's root, as in ``git show REF:PATH``); the temporary copy lives as long as the side."""
    ref, _, path = spec[len(GIT_PREFIX):].partition(":")
    if not ref:
        raise SideError(f"{spec}: name a git revision, e.g. git:origin/main or git:HEAD~1")
    paths = [path] if path else default_paths
    top = _git("rev-parse", "--show-toplevel").strip()
    if not _git_ok("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=top):
        raise SideError(f"{spec}: {ref!r} is not a commit in this repository (fetch it first, e.g. git fetch origin main)")
    # git:REF:PATH names PATH as git does (from the repository's root); the default paths are the other side's
    rel = [os.path.normpath(path)] if path else [os.path.relpath(os.path.abspath(p), top) for p in paths]
    if any(r.startswith("..") for r in rel):
        raise SideError(f"{spec}: {', '.join(paths)} is outside the git repository at {top}")
    listed = _git("ls-tree", "-r", "-z", "--name-only", ref, "--", *rel, cwd=top).split("\0")
    files = [f for f in listed if f.endswith((".yaml", ".yml"))]
    tmp = tempfile.mkdtemp(prefix="toolkit-diff-")
    try:
        for name in files:
            target = Path(tmp, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git_bytes("cat-file", "blob", f"{ref}:{name}", cwd=top))
        label = f"{GIT_PREFIX}{ref}" + (f":{path}" if path else "")
        if not files and path:  # named explicitly: a typo must not pass a breaking-change check
            raise SideError(f"{spec}: no policy files under {rel[0]} at {ref}")
        if not files:
            yield Side(label, {}, {}, None, note=f"{label}: no policy files under {', '.join(rel)} at {ref}; "
                                                  f"everything in the new side counts as added")
            return
        prefix = tmp.rstrip("/") + "/"

        def shown(p: str) -> str:
            return f"{label}:{p[len(prefix):]}" if p.startswith(prefix) else p
        try:
            policy = load([str(Path(tmp, r)) for r in rel if Path(tmp, r).exists()])
        except PolicyError as exc:  # located in the repository at REF, not in our temporary copy
            raise PolicyError([replace(i, file=shown(i.file)) for i in exc.issues]) from None
        yield Side(label, policy.document, policy.targets, policy, shown_path=lambda p: p[len(prefix):] if p.startswith(prefix) else p)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_git(args: tuple[str, ...], cwd: str | None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=_GIT_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise SideError("git:REF needs the git command, which is not installed here") from None
    except subprocess.TimeoutExpired:
        raise SideError(f"git {args[0]} did not answer within {_GIT_TIMEOUT_S} s") from None


def _git_bytes(*args: str, cwd: str | None = None) -> bytes:
    done = _run_git(args, cwd)
    if done.returncode != 0:
        detail = " ".join(done.stderr.decode(errors="replace").split()) or f"exit {done.returncode}"
        raise SideError(f"git {args[0]} failed: {detail}")
    return done.stdout


def _git(*args: str, cwd: str | None = None) -> str:
    return _git_bytes(*args, cwd=cwd).decode()


def _git_ok(*args: str, cwd: str | None = None) -> bool:
    return _run_git(args, cwd).returncode == 0


def published_side(new: PolicySet, target_name: str) -> Side:
    """The policy ``toolkit apply`` published on the target's instance (read through the data plane)."""
    from redis.exceptions import RedisError

    from toolkit.policy.published import decode_document, read_published
    from toolkit.policy.secrets import Redactor
    from toolkit.runtime import build_client, close_client

    target = new.target(target_name)
    redact = Redactor(target)
    try:
        with redact.scrubbing():
            client = build_client(target)
            try:
                record = read_published(client)
            finally:
                close_client(client)
    except (RedisError, OSError) as exc:
        raise SideError(redact(f"cannot read the published policy of target {target.name}: {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())}")) from None
    label = f"target {target.name}"
    if record is None:
        raise SideError(f"nothing is published on target {target.name}: run toolkit apply first (it publishes the policy)")
    digest = record.get("digest", "")
    document = decode_document(record.get("document"))
    if document is None:
        if digest == new.digest:
            return Side(label, new.document, note=f"{label} runs this very policy (digest {digest[:12]})")
        why = record.get("document_omitted") or (f"it was applied by toolkit {record.get('version', '?')}, which published "
                                                 f"only the digest")
        raise SideError(f"the policy published on target {target.name} (digest {digest[:12]}) differs from the new one "
                        f"but holds no document to compare: {why}; apply once with this version to publish it")
    return Side(f"{label} (applied {record.get('applied_at', '?')} by {record.get('applied_by', '?')})", document,
                note="" if digest else f"{label}: the record has no digest")
