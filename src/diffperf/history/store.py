"""A history that does not expire: saved runs appended to a git branch kept for data.

As github-action-benchmark keeps its results in a branch (``gh-pages``), each run is committed to a
branch (``perf-history`` by default) that holds nothing but runs, one file per run under
``runs/<profile>/<machine>/``. A run is only ever *added*, so two pushes that race never conflict:
the one that loses the race fetches, puts its commit on top of the winner's and pushes again
(:data:`ATTEMPTS` times). Reading it back is a checkout of the branch (``git worktree add``, or
``actions/checkout`` with ``ref: perf-history``) given to ``compare --history``, ``trend`` or
``report --history`` as a directory.

Everything is done with git's plumbing and a temporary index: the user's checkout, index and
current branch are never touched.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from diffperf.history.runs import HistoryError, Run, load_run

ATTEMPTS = 5
BRANCH = "perf-history"


@dataclass(frozen=True)
class Stored:
    """Where a run went: its path on the branch, and the commit that added it."""

    path: str
    commit: str


def run_path(run: Run) -> str:
    """``runs/<profile>/<machine>/<date>-<commit>-<label>``: one folder per profile and machine, runs by date."""
    machine = _slug(f"{run.machine.device}-{run.machine.device_type or 'plain'}"
                    + (f"-{run.machine.threads}t" if run.machine.threads else ""))
    when = run.when.strftime("%Y%m%dT%H%M%S") if run.when else "undated"
    return f"runs/{_slug(run.machine.profile)}/{machine}/{when}-{(run.commit or 'nocommit')[:12]}-{Path(run.source).name}"


def append_runs(paths: list[str | Path], repo: str | Path = ".", branch: str = BRANCH, remote: str | None = None,
                message: str | None = None) -> list[Stored]:
    """Commit the runs in ``paths`` to ``branch`` of the git repository ``repo`` (the branch is made, holding
    only runs, if it does not exist), and push it to ``remote`` when given, retrying when another push got
    there first.

    :class:`HistoryError` (one line) for a file that is not a run, a git that fails, or a race lost
    :data:`ATTEMPTS` times.
    """
    runs = [(Path(path), load_run(path)) for path in paths]
    repo = Path(repo)
    message = message or f"history: {len(runs)} run(s)"
    blobs = [(run_path(run), _git(repo, "hash-object", "-w", str(source))) for source, run in runs]
    with tempfile.TemporaryDirectory(prefix="diffperf-history-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}  # never the user's index or work tree
        for _ in range(ATTEMPTS):
            base = _branch_tip(repo, branch, remote)
            _git(repo, "read-tree", *([base] if base else ["--empty"]), env=index)
            for path, blob in blobs:
                _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
            tree = _git(repo, "write-tree", env=index)
            commit = _git(repo, "-c", "user.name=diffperf", "-c", "user.email=diffperf@localhost", "commit-tree",
                          tree, *(["-p", base] if base else []), "-m", message)
            if _publish(repo, branch, remote, base, commit):
                return [Stored(path, commit) for path, _ in blobs]
    raise HistoryError(f"could not add the runs to {branch}: {ATTEMPTS} other pushes got there first; try again")


def _branch_tip(repo: Path, branch: str, remote: str | None) -> str | None:
    """The commit the branch is at now (fetched from ``remote`` first), or None for a branch not made yet."""
    if remote is not None:
        fetched = _git(repo, "fetch", "--quiet", remote, f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}",
                       check=False)
        ref = f"refs/remotes/{remote}/{branch}" if fetched is not None else None
    else:
        ref = f"refs/heads/{branch}"
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False) if ref else None


def _publish(repo: Path, branch: str, remote: str | None, base: str | None, commit: str) -> bool:
    """Move the branch to ``commit`` only if it is still at ``base``; False when another writer moved it first."""
    if remote is not None:  # a push that is not a fast-forward is refused: someone else's run got there first
        return _git(repo, "push", "--quiet", remote, f"{commit}:refs/heads/{branch}", check=False) is not None
    # update-ref with the old value is a compare-and-swap: it fails if the branch moved meanwhile
    old = base or "0" * 40
    return _git(repo, "update-ref", f"refs/heads/{branch}", commit, old, check=False) is not None


def _git(directory: Path, *args: str, check: bool = True, env: dict | None = None) -> str | None:
    """Run git; its output (stripped), or None when it failed and ``check`` is False."""
    if shutil.which("git") is None:
        raise HistoryError("git is not installed: the history branch needs it")
    result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, check=False,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        if not check:
            return None
        error = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise HistoryError(f"git {args[0]} failed in {directory}: {error}")
    return result.stdout.strip()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unknown"
