"""The history branch (diffperf.history.store): runs appended, never lost to a race, the user's checkout untouched."""

from __future__ import annotations

import subprocess

import historydata as hd
import pytest

from diffperf.cli import main
from diffperf.history import store
from diffperf.history.runs import load_runs

pytestmark = pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                                reason="needs git")


def git(directory, *args) -> str:
    return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def repository(path):
    path.mkdir()
    git(path, "init", "--quiet", "-b", "main")
    return path


def saved(tmp_path, name, seed, day=1):
    return hd.write(tmp_path / name, hd.standard_run(seed=seed, when=f"2026-11-{day:02d}T10:00:00+00:00"))


def test_runs_are_committed_to_their_own_branch_and_the_checkout_is_untouched(tmp_path):
    repo = repository(tmp_path / "repo")
    (repo / "work.txt").write_text("uncommitted work")
    first = store.append_runs([saved(tmp_path, "a.json", 0, day=1)], repo)
    second = store.append_runs([saved(tmp_path, "b.json", 1, day=2)], repo)
    files = git(repo, "ls-tree", "-r", "--name-only", store.BRANCH).splitlines()
    assert files == [first[0].path, second[0].path]
    assert first[0].path.startswith("runs/tiny/AMD-EPYC-cpu-2t/20261101T100000-1111111aaaaa")
    assert git(repo, "rev-parse", f"{store.BRANCH}~1") == first[0].commit  # appended, history kept
    assert git(repo, "status", "--porcelain") == "?? work.txt"  # no index change, no checkout, main unborn
    out = tmp_path / "checkout"
    git(repo, "worktree", "add", "--quiet", str(out), store.BRANCH)
    runs, _ = load_runs([out / "runs"])  # read back as a directory, as compare --history and trend read it
    assert sorted(run.label for run in runs) == sorted(path.rsplit("/", 1)[-1] for path in files)


def test_a_push_that_lost_the_race_is_retried_on_top_of_the_winner(tmp_path, monkeypatch):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", str(remote))
    clones = []
    for name in ("a", "b"):
        clone = repository(tmp_path / name)
        git(clone, "remote", "add", "origin", str(remote))
        clones.append(clone)
    store.append_runs([saved(tmp_path, "first.json", 0)], clones[0], remote="origin")
    stale = store._branch_tip(clones[1], store.BRANCH, "origin")
    winner = store.append_runs([saved(tmp_path, "winner.json", 1, day=2)], clones[0], remote="origin")

    tips = iter([stale])  # b read the branch before a's second push landed
    real = store._branch_tip
    monkeypatch.setattr(store, "_branch_tip", lambda *args: next(tips, None) or real(*args))
    late = store.append_runs([saved(tmp_path, "late.json", 2, day=3)], clones[1], remote="origin")
    assert git(remote, "rev-parse", f"{late[0].commit}~1") == winner[0].commit  # on top of the winner
    names = git(remote, "ls-tree", "-r", "--name-only", store.BRANCH).splitlines()
    assert len(names) == 3  # nothing lost


def test_the_command_appends_and_says_where(tmp_path, capsys):
    repo = repository(tmp_path / "repo")
    assert main(["store-runs", str(saved(tmp_path, "a.json", 0)), "--repo", str(repo)]) == 0
    assert "added runs/tiny/AMD-EPYC-cpu-2t/" in capsys.readouterr().out
    not_a_run = tmp_path / "x.json"
    not_a_run.write_text("{}")
    assert main(["store-runs", str(not_a_run), "--repo", str(repo)]) == 2
