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
    """Where a run went: the file given, its path on the branch, and the commit that added it; ``added`` is False
    for a run that was on the branch already, or given twice (``commit`` is then the branch's tip)."""

    source: str
    path: str
    commit: str
    added: bool = True


def run_path(run: Run, blob: str) -> str:
    """``runs/<profile>/<machine>/<date>-<commit>-<content>-<file name>``: one folder per profile and machine, runs
    by date; ``<content>``, the start of the file's git blob id, keeps apart runs of one date, commit and file name
    (runs saved without either)."""
    machine = _slug(f"{run.machine.device}-{run.machine.device_type or 'plain'}"
                    + (f"-{run.machine.threads}t" if run.machine.threads else ""))
    when = run.when.strftime("%Y%m%dT%H%M%S") if run.when else "undated"
    return (f"runs/{_slug(run.machine.profile)}/{machine}/{when}-{(run.commit or 'nocommit')[:12]}-{blob[:8]}-"
            f"{Path(run.source).name}")


def append_runs(paths: list[str | Path], repo: str | Path = ".", branch: str = BRANCH, remote: str | None = None,
                message: str | None = None, allow_planted: bool = False) -> list[Stored]:
    """Commit the runs in ``paths`` (relative to the current directory, whatever ``repo`` is) to ``branch`` of the
    git repository ``repo`` (the branch is made, holding only runs, if it does not exist), and push it to
    ``remote`` when given, retrying when another push got there first. A run whose content is on the branch
    already, under any name, is not added again; when no run is new, nothing is committed or pushed.

    :class:`HistoryError` (one line), before anything is written, for a file that is not a run, a run made with
    a planted slowdown or planted memory (unless ``allow_planted``), a branch name git refuses, the branch
    checked out in ``repo`` (without ``remote``: moving it would change the files of that checkout) or a remote
    ``repo`` does not have; then for a git that fails, or a race lost :data:`ATTEMPTS` times.
    """
    runs = [load_run(path) for path in paths]
    planted_run = next((run for run in runs if run.planted), None)
    if planted_run is not None and not allow_planted:
        raise HistoryError(f"{planted_run.source} was run with {planted_run.planted.text()}: a history holds what the "
                           "code measures; store runs made without it, or give --allow-planted to store it anyway")
    repo = Path(repo)
    _check_target(repo, branch, remote)
    blobs = [_git(repo, "hash-object", "-w", str(Path(run.source).absolute())) for run in runs]
    with tempfile.TemporaryDirectory(prefix="diffperf-history-") as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}  # never the user's index or work tree
        for _ in range(ATTEMPTS):
            base = _branch_tip(repo, branch, remote)
            on_branch = _blob_paths(repo, base)
            entries = []  # (run, blob, path, added)
            for run, blob in zip(runs, blobs):
                added = blob not in on_branch
                if added:
                    on_branch[blob] = run_path(run, blob)
                entries.append((run, blob, on_branch[blob], added))
            new = [(blob, path) for _, blob, path, added in entries if added]
            if not new:
                return [Stored(run.source, path, base, False) for run, _, path, _ in entries]
            _git(repo, "read-tree", *([base] if base else ["--empty"]), env=index)
            for blob, path in new:
                _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
            tree = _git(repo, "write-tree", env=index)
            commit = _git(repo, "-c", "user.name=diffperf", "-c", "user.email=diffperf@localhost", "commit-tree",
                          tree, *(["-p", base] if base else []), "-m", message or f"history: {len(new)} run(s)")
            if _publish(repo, branch, remote, base, commit):
                return [Stored(run.source, path, commit, added) for run, _, path, added in entries]
    raise HistoryError(f"could not add the runs to {branch}: {ATTEMPTS} other pushes got there first; try again")


def _check_target(repo: Path, branch: str, remote: str | None) -> None:
    """:class:`HistoryError` for a ``repo`` that is not a git repository, a ``branch`` name git refuses, a
    ``remote`` ``repo`` does not have, or (without ``remote``) a ``branch`` checked out in one of its work trees."""
    if _git(repo, "rev-parse", "--git-dir", check=False) is None:
        raise HistoryError(f"--repo {repo} is not a git repository: give the repository whose branch keeps the runs")
    if _git(repo, "check-ref-format", f"refs/heads/{branch}", check=False) is None:
        raise HistoryError(f"--branch {branch!r} is not a valid git branch name (git check-ref-format): give a name "
                           f"such as {BRANCH}")
    if remote is not None:
        remotes = _git(repo, "remote").splitlines()
        if remote not in remotes:
            raise HistoryError(f"--remote {remote}: no such remote in {repo} (its remotes: "
                               f"{', '.join(remotes) or 'none'}): give one of them, or add it with git remote add")
        return  # only the remote's branch moves
    worktrees = _git(repo, "worktree", "list", "--porcelain").splitlines()
    if f"branch refs/heads/{branch}" in worktrees:
        raise HistoryError(f"--branch {branch} is checked out in {repo}: adding runs to it would change the files "
                           f"of that checkout; give a branch that holds only runs (default {BRANCH})")


def _blob_paths(repo: Path, commit: str | None) -> dict[str, str]:
    """The files of ``commit`` (none for None) by their blob id: where each content is stored already."""
    if commit is None:
        return {}
    found = {}
    for entry in filter(None, _git(repo, "ls-tree", "-r", "-z", commit).split("\0")):  # "<mode> blob <id>\t<path>"
        details, path = entry.split("\t", 1)
        found.setdefault(details.split()[2], path)
    return found


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
    """Move the branch to ``commit`` only if it is still at ``base``; False when another writer moved it first.
    :class:`HistoryError` when git refuses for another reason (the branch has not moved: no race happened)."""
    try:
        if remote is not None:  # a push that is not a fast-forward is refused: someone else's run got there first
            _git(repo, "push", "--quiet", remote, f"{commit}:refs/heads/{branch}")
        else:  # update-ref with the old value is a compare-and-swap: it fails if the branch moved meanwhile
            _git(repo, "update-ref", f"refs/heads/{branch}", commit, base or "0" * 40)
    except HistoryError:
        if _branch_tip(repo, branch, remote) != base:
            return False
        raise
    return True


def _git(directory: Path, *args: str, check: bool = True, env: dict | None = None) -> str | None:
    """Run git; its output (stripped), or None when it failed and ``check`` is False."""
    if shutil.which("git") is None:
        raise HistoryError("git is not installed: the history branch needs it")
    result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, check=False,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        if not check:
            return None
        lines = result.stderr.strip().splitlines() or ["no output"]
        # a refused push says why on its rejected ref's line, and ends with a line that does not
        error = next((line.strip() for line in lines if "rejected]" in line), lines[-1])
        raise HistoryError(f"git {args[0]} failed in {directory}: {error}")
    return result.stdout.strip()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unknown"
