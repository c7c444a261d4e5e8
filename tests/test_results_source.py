"""A result names the commit its code came from, and says when tracked files differ from it."""
import subprocess

from recbole_microlens.results import package_versions, source_revision


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_source_revision_is_the_commit_and_marks_modified_tracked_files(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "module.py").write_text("A = 1\n")
    git(tmp_path, "add", "module.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(tmp_path, "rev-parse", "--short=12", "HEAD")
    assert source_revision(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("not code of the commit's\n")
    assert source_revision(tmp_path) == head
    (tmp_path / "module.py").write_text("A = 2\n")
    assert source_revision(tmp_path) == head + "+modified"


def test_outside_a_checkout_there_is_no_revision(tmp_path):
    assert source_revision(tmp_path) is None
    assert "source" in package_versions()
