"""The one git-commit lookup (tsdiff.provenance) that tracked runs and benchmarks share."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tsdiff import provenance
from tsdiff.provenance import git_commit

ROOT = Path(__file__).resolve().parents[1]


def _in_checkout() -> bool:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, check=False)
    except OSError:
        return False
    return r.returncode == 0


@pytest.mark.skipif(not _in_checkout(), reason="not a git checkout")
def test_full_and_short_commit_of_the_checkout():
    full = git_commit()
    assert re.fullmatch(r"[0-9a-f]{40}", full)
    short = git_commit(short=True)
    assert 4 <= len(short) < 40 and full.startswith(short)
    # "+changes" only when tracked files under the given paths differ from the commit
    tracked = ROOT / "tsdiff" / "provenance.py"
    mark = git_commit(short=True, changes_in=[tracked])
    assert mark in (short, short + "+changes")


@pytest.mark.skipif(not _in_checkout(), reason="not a git checkout")
def test_changes_in_marks_a_tracked_file_that_differs(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "0")
    (repo / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "1")
    monkeypatch.setattr(provenance, "_SOURCE", repo)
    head = git_commit(short=True)
    (repo / "untracked.py").write_text("")
    assert git_commit(short=True, changes_in=[repo]) == head  # untracked files do not count
    (repo / "a.py").write_text("x = 2\n")
    assert git_commit(short=True, changes_in=[repo]) == head + "+changes"
    assert git_commit(short=True, changes_in=[repo / "untracked.py"]) == head


def test_without_git_or_outside_a_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "_SOURCE", tmp_path)  # no repository here
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit() == git_commit(short=True, changes_in=[tmp_path]) == "unknown"
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable at all
    assert git_commit() == "unknown"


def test_registry_and_benchmarks_use_the_one_lookup():
    """No other module runs git itself: the registry's tag and the benchmarks' records
    come from tsdiff.provenance.git_commit."""
    from tsdiff import registry

    assert registry.git_commit is git_commit
    runs_git = []
    for folder in ("tsdiff", "benchmarks", "services", "pipelines"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            if f.name != "provenance.py" and re.search(r"""["']git["'],""", f.read_text()):
                runs_git.append(str(f.relative_to(ROOT)))
    assert not runs_git
