"""The layering holds: stages as folders importing only downward, no import circle, encoder types in a leaf, models free of feature
extraction, read from the source so that a new import that breaks it fails here."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "recbole_microlens"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(name: str, *, everywhere: bool = False) -> set[str]:
    """Package modules ``name`` imports when it is imported (module level, ``if`` and ``try``
    blocks included, ``if TYPE_CHECKING`` too), or anywhere in it (``everywhere``: function
    bodies as well)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = ast.walk(tree) if everywhere else _run_on_import(tree.body)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, path, node)
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                      for a in node.names}
    return {module for module in found if module in MODULES and module != name}


def _run_on_import(body):
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            blocks = [node.body, node.orelse, getattr(node, "finalbody", [])]
            blocks += [handler.body for handler in getattr(node, "handlers", [])]
            for block in blocks:
                yield from _run_on_import(block)


def _absolute(name: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join(package + ([node.module] if node.module else []))


def import_circles() -> list[list[str]]:
    graph = {name: imported_modules(name) for name in MODULES}
    state, circles = {}, []

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                circles.append(trail[trail.index(target):] + [target])
            elif target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return circles


#: The stages, top to bottom: a module imports only from its own stage or a stage below.
STAGES = [
    ["cli", "__main__"],
    ["studies", "tune"],
    ["quick_start"],
    ["serve"],
    ["trainer"],
    ["evaluator", "report"],
    ["config"],
    ["model"],
    ["encoders"],
    ["data.recbole"],
    ["data.prepare"],
    ["data.raw", "data.sample"],
    ["data.stores"],
    ["data", "errors", "io", "paths", "processes", "compat", "precision", ""],  # the base layer
]
BASE_MODULES = {"__init__", "__main__", "errors", "io", "paths", "processes", "compat", "precision"}


def stage_of(module: str) -> int:
    """The index in STAGES of the longest stage name that contains ``module``."""
    relative = module.removeprefix("recbole_microlens").lstrip(".")
    best = None
    for index, names in enumerate(STAGES):
        for name in names:
            if relative == name or relative.startswith(f"{name}.") or name == "" == relative:
                if best is None or len(name) > best[1]:
                    best = (index, len(name))
    if best is None:
        raise AssertionError(f"{module} belongs to no stage of STAGES")
    return best[0]


def upward_imports(modules=MODULES) -> list[str]:
    return sorted(f"{name} -> {target}" for name in modules
                  for target in imported_modules(name, everywhere=True)
                  if stage_of(target) < stage_of(name))


def test_every_module_belongs_to_a_stage_and_imports_only_downward():
    assert {stage_of(name) for name in MODULES} == set(range(len(STAGES)))  # no empty stage
    assert upward_imports() == []


def test_the_top_level_holds_only_the_base_layer():
    top_modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert top_modules <= BASE_MODULES, top_modules - BASE_MODULES
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert folders == {"cli", "studies", "tune", "quick_start", "serve", "trainer", "evaluator",
                       "report", "config", "model", "encoders", "data"}


def test_no_module_imports_itself_back_when_imported():
    assert import_circles() == []


def test_encoder_types_live_in_a_leaf_and_builders_never_import_the_table():
    encoders = "recbole_microlens.encoders"
    leaves = {f"{encoders}.formats", f"{encoders}.weights"}  # file formats, weights sources
    # errors: the package's leaf of user-error types, which every layer raises
    assert imported_modules(f"{encoders}.base") <= leaves | {"recbole_microlens.errors"}
    for leaf in leaves:
        assert imported_modules(leaf, everywhere=True) <= leaves | {
            "recbole_microlens.errors", "recbole_microlens.io"}
    for builder in ("video", "image", "text"):
        assert f"{encoders}.registry" not in imported_modules(f"{encoders}.{builder}", everywhere=True)


def test_models_never_import_feature_extraction():
    """Item feature loading belongs to the data layer (data/stores/features.py)."""
    models = [name for name in MODULES if name.startswith("recbole_microlens.model")]
    assert len(models) > 10
    offenders = {name for name in models
                 if "recbole_microlens.encoders.extract" in imported_modules(name, everywhere=True)}
    assert offenders == set()


def test_general_models_that_recbole_calls_sequential_are_explained():
    from recbole.utils import ModelType

    from recbole_microlens.model import general_recommender

    sequential = {name for name in general_recommender.__all__
                  if getattr(general_recommender, name).type == ModelType.SEQUENTIAL}
    assert sequential == {"YouTubeID", "YouTubeIDV", "NFM", "DeepFM"}
    explanation = general_recommender.__doc__.split("Sequential by RecBole's type")[1]
    assert all(name in explanation for name in sequential)


def test_serving_imports_nothing_from_the_trainer():
    """Serving a trained model needs the model and its tower, never the training loop."""
    serving = [name for name in MODULES if name.startswith("recbole_microlens.serve")]
    assert serving
    imports = {target for name in serving for target in imported_modules(name, everywhere=True)}
    assert "recbole_microlens.model.layers" in imports  # the check sees serve's imports
    assert {target for target in imports if target.startswith("recbole_microlens.trainer")} == set()


#: a content tower's runtime state, changed only by the tower's own methods
TOWER_RUNTIME = {"runtime", "_runtime"}


def runtime_assignments(tree: ast.AST) -> list[int]:
    """Lines that set a tower's runtime from outside: ``x.runtime = ...``,
    ``x.runtime.field = ...`` (``_runtime`` alike, augmented too) or ``setattr(x.runtime, ...)``."""
    def sets_runtime(target) -> bool:
        if isinstance(target, (ast.Tuple, ast.List)):
            return any(map(sets_runtime, target.elts))
        return isinstance(target, ast.Attribute) and (
            target.attr in TOWER_RUNTIME
            or isinstance(target.value, ast.Attribute) and target.value.attr in TOWER_RUNTIME)

    lines = []
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
        if any(map(sets_runtime, targets)):
            lines.append(node.lineno)
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr"
              and node.args and isinstance(node.args[0], ast.Attribute)
              and node.args[0].attr in TOWER_RUNTIME):
            lines.append(node.lineno)
    return lines


def test_runtime_assignments_are_found():
    found = runtime_assignments(ast.parse(
        "t.runtime = r\nt.runtime.trunk_cache = None\nt._runtime.length_grouping, x = 1, 2\n"
        "setattr(t.runtime, 'checkpoint_blocks', True)\nt.runtime.trunk_cache.lookup(i)\n"
        "cache = t.runtime.trunk_cache\nt.configure_runtime(length_grouping=True)\n"))
    assert found == [1, 2, 3, 4]


def test_only_the_model_sets_the_towers_runtime_state():
    """The trainer, serving, benchmarks and tests change a tower's runtime through its methods
    (``configure_runtime``, ``use_trunk_cache``, ``reading``), never by assignment."""
    outside = [path for path in PACKAGE.rglob("*.py") if "model" not in path.relative_to(PACKAGE).parts]
    tests = PACKAGE.parent / "tests"  # the model's own tests (tests/model/) may try the read-only guard
    outside += [path for path in tests.rglob("*.py") if "model" not in path.relative_to(tests).parts]
    outside += list((PACKAGE.parent / "benchmarks").glob("*.py"))
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}" for path in outside
                 for line in runtime_assignments(ast.parse(path.read_text(encoding="utf-8")))]
    assert offenders == []


# Tests about the package as a whole (layering, packaging, RecBole compatibility, the docs) sit at
# the top of tests/; every other test file sits in the folder of the stage it tests.
WHOLE_PACKAGE_TESTS = {"test_architecture", "test_packaging", "test_compat", "test_compat_scipy",
                       "test_docs"}


def test_tests_mirror_the_packages():
    tests = Path(__file__).resolve().parent
    stages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")} | {"benchmarks"}
    top = {path.stem for path in tests.glob("test_*.py")}
    assert top == WHOLE_PACKAGE_TESTS
    folders = {path.parent.relative_to(tests).parts[0] for path in tests.glob("*/**/test_*.py")}
    assert folders <= stages, f"test folders naming no stage: {sorted(folders - stages)}"
    names = [path.stem for path in tests.rglob("test_*.py")]
    assert len(names) == len(set(names)), "test module names must stay unique (pytest's rootdir import)"
