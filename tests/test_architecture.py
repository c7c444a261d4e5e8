"""The layering holds: no import circle, encoder types in a leaf, models free of feature
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


def test_the_checker_sees_imports_and_circles(tmp_path):
    assert "recbole_microlens.encoders.base" in imported_modules("recbole_microlens.encoders.video")
    assert "recbole_microlens.encoders.video" in imported_modules("recbole_microlens.encoders.registry")
    assert "recbole_microlens.data.stores.features" in imported_modules(
        "recbole_microlens.model.layers", everywhere=True)  # a lazy import, seen everywhere only
    assert "recbole_microlens.data.stores.features" not in imported_modules("recbole_microlens.model.layers")


def test_no_module_imports_itself_back_when_imported():
    assert import_circles() == []


def test_encoder_types_live_in_a_leaf_and_builders_never_import_the_table():
    encoders = "recbole_microlens.encoders"
    leaves = {f"{encoders}.checkpoints", f"{encoders}.weights"}  # file formats, weights sources
    # errors: the package's leaf of user-error types, which every layer raises
    assert imported_modules(f"{encoders}.base") <= leaves | {"recbole_microlens.errors"}
    for leaf in leaves:
        assert imported_modules(leaf, everywhere=True) <= leaves | {
            "recbole_microlens.errors", "recbole_microlens.io", "recbole_microlens.io"}
    for builder in ("video", "image", "text"):
        assert f"{encoders}.registry" not in imported_modules(f"{encoders}.{builder}", everywhere=True)


def test_models_never_import_feature_extraction():
    """Item feature loading belongs to the data layer (data/item_features.py)."""
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
