"""A result names the commit its code came from, and says when tracked files differ from it."""
import subprocess

from recbole_microlens.evaluator.results import package_versions, source_revision


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def read(package):
    source_revision.cache_clear()  # read once per process; each case here is a new state
    return source_revision(package)


def test_source_revision_is_the_commit_and_marks_modified_tracked_files(tmp_path):
    package = tmp_path / "package"
    package.mkdir()
    git(tmp_path, "init", "-q")
    (package / "module.py").write_text("A = 1\n")
    git(tmp_path, "add", "package/module.py")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = git(tmp_path, "rev-parse", "--short=12", "HEAD")
    assert read(package) == head
    (tmp_path / "untracked.txt").write_text("not code of the commit's\n")
    assert read(package) == head
    (package / "module.py").write_text("A = 2\n")
    assert read(package) == head + "+modified"


def test_a_package_installed_inside_another_repository_has_no_revision(tmp_path):
    """A site-packages inside some project's checkout must not report that project's commit."""
    git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("another project\n")
    git(tmp_path, "add", "README")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    installed = tmp_path / ".venv" / "site-packages" / "recbole_microlens"
    installed.mkdir(parents=True)
    assert read(installed) is None


def test_outside_a_checkout_there_is_no_revision(tmp_path):
    assert read(tmp_path / "package") is None
    assert "source" in package_versions()
