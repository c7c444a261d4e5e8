"""setup.py declares every package the code imports, with ranges the pinned stack satisfies."""
import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _setup_lists() -> dict[str, list[str]]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.List)}


def _name(text: str) -> str:
    return Requirement(text).name.lower().replace("_", "-")


def _imported_modules(folder: Path) -> set[str]:
    modules = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"recbole_microlens"}


def test_every_imported_package_is_declared():
    declared = {_name(r) for r in _setup_lists()["INSTALL_REQUIRES"]}
    owners = metadata.packages_distributions()
    undeclared = {}
    for module in _imported_modules(ROOT / "recbole_microlens"):
        distributions = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        if not distributions & declared:
            undeclared[module] = sorted(distributions)
    assert undeclared == {}


def test_the_pinned_stack_satisfies_the_declared_ranges():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[_name(line)] = next(iter(requirement.specifier)).version
    lists = _setup_lists()
    for text in lists["INSTALL_REQUIRES"] + lists["MINILM"] + lists["HYPEROPT"]:
        requirement = Requirement(text)
        assert _name(text) in pins, f"{text} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[_name(text)], prereleases=True), \
            f"constraints.txt pins {_name(text)}=={pins[_name(text)]}, outside {text}"
    for name, version in pins.items():  # the pins are what the suite runs on
        if name in ("torch", "recbole", "ray", "numpy", "pandas", "transformers"):
            assert metadata.version(name) == version


def test_child_interpreters_keep_packages_installed_on_pythonpath(tmp_path, monkeypatch):
    """A GPU machine installs the carried wheels into a folder on PYTHONPATH; the tests' child
    interpreters replaced PYTHONPATH with the checkout and lost them (RecBole not found)."""
    from tests.helpers import REPO, run_isolated

    (tmp_path / "carried_package.py").write_text("NAME = 'carried'\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    script = ("import json, carried_package, recbole_microlens, pathlib; "
              "print(json.dumps([carried_package.NAME, str(pathlib.Path("
              "recbole_microlens.__file__).parents[1])]))")
    assert run_isolated(script) == ["carried", str(REPO)]  # both: the checkout first
