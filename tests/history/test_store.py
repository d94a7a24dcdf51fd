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


def undated(tmp_path, folder, seed):
    """A run saved without a date or a commit (``folder/run.json``)."""
    document = hd.standard_run(seed=seed)
    del document["datetime"]
    document["commit_info"] = {}
    (tmp_path / folder).mkdir()
    return hd.write(tmp_path / folder / "run.json", document)


def test_runs_without_a_date_or_a_commit_each_get_a_path_of_their_own(tmp_path, capsys):
    repo = repository(tmp_path / "repo")
    runs = [undated(tmp_path, "h1", 0), undated(tmp_path, "h2", 1)]
    assert main(["store-runs", *map(str, runs), "--repo", str(repo)]) == 0
    files = git(repo, "ls-tree", "-r", "--name-only", store.BRANCH).splitlines()
    stored = {git(repo, "rev-parse", f"{store.BRANCH}:{path}") for path in files}
    assert stored == {git(repo, "hash-object", str(run)) for run in runs}  # both kept, neither lost
    assert capsys.readouterr().out.count("added ") == 2


def test_a_run_stored_again_is_said_to_be_there_and_makes_no_commit(tmp_path, capsys):
    repo = repository(tmp_path / "repo")
    run = saved(tmp_path, "a.json", 0)
    (stored,) = store.append_runs([run], repo)
    copy = tmp_path / "copy-of-a.json"
    copy.write_text(run.read_text())
    capsys.readouterr()
    assert main(["store-runs", str(run), str(copy), "--repo", str(repo)]) == 0
    assert git(repo, "rev-parse", store.BRANCH) == stored.commit  # no commit
    assert capsys.readouterr().out.splitlines() == [f"{run}: already in {store.BRANCH} as {stored.path}: not added again",
                                f"{copy}: already in {store.BRANCH} as {stored.path}: not added again"]


def test_the_branch_checked_out_is_refused_in_one_line(tmp_path, capsys):
    repo = repository(tmp_path / "repo")
    (repo / "work.txt").write_text("committed work")
    git(repo, "add", "work.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "--quiet", "-m", "work")
    tip = git(repo, "rev-parse", "main")
    assert main(["store-runs", str(saved(tmp_path, "a.json", 0)), "--repo", str(repo), "--branch", "main"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--branch main is checked out in" in error and "perf-history" in error
    assert git(repo, "rev-parse", "main") == tip and git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("option, message", [
    (["--remote", "nosuchremote"], "--remote nosuchremote: no such remote in "),
    (["--branch", "bad..name"], "--branch 'bad..name' is not a valid git branch name"),
    (["--branch", "has space"], "--branch 'has space' is not a valid git branch name"),
])
def test_a_bad_remote_or_branch_name_is_named_before_anything_is_written(tmp_path, capsys, option, message):
    repo = repository(tmp_path / "repo")
    assert main(["store-runs", str(saved(tmp_path, "a.json", 0)), "--repo", str(repo), *option]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error and "got there first" not in error
    assert git(repo, "for-each-ref") == ""


def test_a_push_refused_for_another_reason_than_a_race_says_why(tmp_path, capsys):
    remote = repository(tmp_path / "remote")  # not bare, with the history branch checked out: pushes to it refused
    git(remote, "checkout", "--quiet", "-b", store.BRANCH)
    git(remote, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "--quiet", "--allow-empty", "-m", "x")
    clone = repository(tmp_path / "clone")
    git(clone, "remote", "add", "origin", str(remote))
    assert main(["store-runs", str(saved(tmp_path, "a.json", 0)), "--repo", str(clone), "--remote", "origin"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "got there first" not in error and "checked out" in error


def test_run_paths_are_taken_from_the_current_directory_not_the_repo(tmp_path, monkeypatch, capsys):
    repo = repository(tmp_path / "repo")
    run = saved(tmp_path, "good.json", 0)
    monkeypatch.chdir(tmp_path)
    assert main(["store-runs", "good.json", "--repo", "repo"]) == 0, capsys.readouterr().err
    (path,) = git(repo, "ls-tree", "-r", "--name-only", store.BRANCH).splitlines()
    assert git(repo, "show", f"{store.BRANCH}:{path}") == run.read_text()


def test_a_run_with_a_planted_slowdown_is_refused_unless_allowed(tmp_path, capsys):
    repo = repository(tmp_path / "repo")
    document = hd.standard_run()
    document["machine_info"]["diffperf"]["planted_slowdowns"] = {"distilled": 0.5}  # as such a run writes it
    planted = hd.write(tmp_path / "planted.json", document)
    assert main(["store-runs", str(saved(tmp_path, "a.json", 1)), str(planted), "--repo", str(repo)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{planted} was run with --perf-plant-slowdown distilled=0.5" in error
    assert "--allow-planted" in error and git(repo, "for-each-ref") == ""  # nothing stored
    assert main(["store-runs", str(planted), "--repo", str(repo), "--allow-planted"]) == 0
    assert "added runs/tiny/" in capsys.readouterr().out
