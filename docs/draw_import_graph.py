"""Draw the package's import graph by stage: one box per folder, rows by depth, every arrow down.

    python docs/draw_import_graph.py            # writes docs/import-graph.png

A folder's row is the length of the longest import chain below it, so a row only ever imports
from rows beneath it; an arrow that would point up (an import against the layering) is drawn
red, and the script exits 1, so the picture cannot hide one. Imports are read from the source
with ``ast`` (function-level imports included), the same way tests/test_architecture.py reads
them.
"""
from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

from recbole_microlens.report import style

PACKAGE = Path(__file__).resolve().parents[1] / "recbole_microlens"
BASE = "base layer"  # the top-level modules: errors, io, paths, processes, compat, precision


def folder_of(module: str) -> str:
    """``recbole_microlens.data.stores.titles`` -> ``data/stores``; top-level modules -> BASE."""
    parts = module.split(".")[1:]
    if parts == ["__main__"]:  # ``python -m recbole_microlens`` is the CLI
        return "cli"
    if parts[:1] == ["data"] and len(parts) > 1 and (PACKAGE / "data" / parts[1]).is_dir():
        return f"data/{parts[1]}"
    if parts and (PACKAGE / parts[0]).is_dir():
        return parts[0]
    return BASE


def module_imports() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE.name):
                found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith(PACKAGE.name)}
        graph[name] = found
    return graph


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    modules = set(graph)
    edges = defaultdict(set)
    for name, targets in graph.items():
        source = folder_of(name)
        edges[source]  # every folder appears, importing or not
        for target in targets & modules:
            if folder_of(target) != source:
                edges[source].add(folder_of(target))
    return dict(edges)


def depths(edges: dict[str, set[str]]) -> dict[str, int]:
    """Longest chain below each folder (a circle is reported, not followed)."""
    depth, open_ = {}, set()

    def visit(folder):
        if folder in depth:
            return depth[folder]
        if folder in open_:
            raise SystemExit(f"import circle through {folder}")
        open_.add(folder)
        depth[folder] = 1 + max((visit(t) for t in edges.get(folder, ())), default=-1)
        open_.discard(folder)
        return depth[folder]

    for folder in edges:
        visit(folder)
    return depth


def draw(edges: dict[str, set[str]], depth: dict[str, int], out: Path) -> int:
    rows = defaultdict(list)
    for folder in sorted(depth):
        rows[depth[folder]].append(folder)
    made, (axes,) = style.figure(11, 1.1 * (max(rows) + 1))
    where = {folder: ((i + 1) / (len(row) + 1), level)
             for level, row in rows.items() for i, folder in enumerate(row)}
    upward = 0
    for source, targets in edges.items():
        for target in targets:
            (x0, y0), (x1, y1) = where[source], where[target]
            bad = y1 >= y0
            upward += bad
            axes.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                          arrowprops={"arrowstyle": "->", "lw": 1.6 if bad else 0.6,
                                      "color": "red" if bad else "grey", "alpha": 0.9 if bad else 0.45})
    for folder, (x, y) in where.items():
        axes.text(x, y, folder, ha="center", va="center", fontsize=style.FONT["label"],
                  bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "black"})
    axes.set_ylim(-0.6, max(rows) + 0.6)
    axes.set_xlim(0, 1)
    axes.axis("off")
    style.title(made, "recbole_microlens: folders by stage (an arrow: imports from)")
    style.save(made, out)
    return upward


def main() -> int:
    edges = folder_graph(module_imports())
    out = Path(__file__).resolve().parent / "import-graph.png"
    upward = draw(edges, depths(edges), out)
    print(f"{out}: {len(edges)} folders, {sum(map(len, edges.values()))} folder imports, "
          f"{upward} against the layering")
    return 1 if upward else 0


if __name__ == "__main__":
    sys.exit(main())
