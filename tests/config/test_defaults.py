"""The yaml is the only source of defaults: no module reads a key a yaml under ``properties/``
defines and then falls back to a literal of its own (``config[k] or 64``), because such a
fallback silently shadows the yaml and, once the two disagree, nobody can tell which value ran.

The detector parses every module with ``ast``. It knows three shapes, each on a config read
(``config[...]``, ``self.config[...]``, ``config.get(...)``, or a local name assigned from one):

* ``config["k"] or <literal>``
* ``config.get("k", <literal>)``
* ``config["k"] if ... else <literal>`` (and ``<literal> if ... else config["k"]``)

A literal is a constant, a container or arithmetic of constants, or a module constant assigned
one; None and empty containers are not defaults (they mean what the yaml's ``~`` means). The
helper ``choose(config, key, table)`` has no default argument any more, for the same reason.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from recbole_microlens.config.check import CONFIG_YAML_FOLDERS
from recbole_microlens.paths import properties_dir

PACKAGE = Path(__file__).resolve().parents[2] / "recbole_microlens"


# --------------------------------------------------------------------------- the detector


def yaml_keys() -> set[str]:
    """Every top-level key of our config yaml (the folders the configurator reads layers from)."""
    keys: set[str] = set()
    for folder in CONFIG_YAML_FOLDERS:
        for path in sorted((properties_dir() / folder).glob("*.yaml")):
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            keys |= set(loaded) if isinstance(loaded, dict) else set()
    return keys


def _is_config(node: ast.AST) -> bool:
    """``config``, ``cfg``, ``self.config``, ``run.config``, ``final_config_dict``..."""
    if isinstance(node, ast.Name):
        return "config" in node.id or node.id == "cfg"
    if isinstance(node, ast.Attribute):
        return "config" in node.attr
    return False


def _read_key(node: ast.AST) -> str | None:
    """The key of ``config["k"]`` or ``config.get("k")`` (one argument), else None."""
    if isinstance(node, ast.Subscript) and _is_config(node.value):
        key = node.slice
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and node.func.attr == "get" and _is_config(node.func.value) and len(node.args) == 1):
        key = node.args[0]
    else:
        return None
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


def _literal_value(node: ast.AST, constants: dict):
    """The value of a literal (``64``, ``"sum"``, ``[64]``, ``4 * 16``, or a module constant
    assigned one), else ``_NOT_LITERAL``."""
    if isinstance(node, ast.Name):
        return constants.get(node.id, _NOT_LITERAL)
    if isinstance(node, ast.BinOp):
        left, right = (_literal_value(side, constants) for side in (node.left, node.right))
        return 0 if _NOT_LITERAL not in (left, right) else _NOT_LITERAL  # its value is no matter
    try:
        return ast.literal_eval(node)
    except ValueError:
        return _NOT_LITERAL


_NOT_LITERAL = object()


def _is_default(node: ast.AST, constants: dict) -> bool:
    """A literal that says something: None and empty containers mean what a yaml ``~`` means
    (nothing), so ``config["k"] or {}`` shadows no value of the yaml."""
    value = _literal_value(node, constants)
    if value is _NOT_LITERAL or value is None:
        return False
    return not (isinstance(value, (list, tuple, dict, set, frozenset)) and not value)


def _module_constants(tree: ast.Module) -> dict:
    """Module-level ``NAME = <literal>``: ``size or DEFAULT_SIZE`` is a literal fallback too."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            value = _literal_value(node.value, {})
            if value is not _NOT_LITERAL:
                constants[node.targets[0].id] = value
    return constants


class _Fallbacks(ast.NodeVisitor):
    """Collects ``(line, key, shape)`` for each fallback to a literal on a config read; a local
    name assigned straight from a config read (``top = config["k"]``) counts as that read."""

    def __init__(self, constants: dict):
        self.found: list[tuple[int, str, str]] = []
        self.aliases: dict[str, str] = {}
        self.constants = constants

    def is_default(self, node: ast.AST) -> bool:
        return _is_default(node, self.constants)

    def key_of(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        return _read_key(node)

    def visit_FunctionDef(self, node):
        outer, self.aliases = self.aliases, {}
        self.generic_visit(node)
        self.aliases = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Assign(self, node):
        key = _read_key(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                if key is None:
                    self.aliases.pop(target.id, None)
                else:
                    self.aliases[target.id] = key
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        if isinstance(node.op, ast.Or):
            key = self.key_of(node.values[0])
            if key and any(self.is_default(value) for value in node.values[1:]):
                self.found.append((node.lineno, key, "or"))
        self.generic_visit(node)

    def visit_Call(self, node):
        if (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and _is_config(node.func.value) and len(node.args) == 2
                and isinstance(node.args[0], ast.Constant) and self.is_default(node.args[1])):
            self.found.append((node.lineno, node.args[0].value, "get"))
        self.generic_visit(node)

    def visit_IfExp(self, node):
        for read, other in ((node.body, node.orelse), (node.orelse, node.body)):
            key = self.key_of(read)
            if key and self.is_default(other):
                self.found.append((node.lineno, key, "if-else"))
        self.generic_visit(node)


def literal_fallbacks(source: str, keys: set[str]) -> list[tuple[int, str, str]]:
    """``(line, key, shape)`` of every fallback in ``source`` to a literal for a key in ``keys``."""
    tree = ast.parse(source)
    visitor = _Fallbacks(_module_constants(tree))
    visitor.visit(tree)
    return [finding for finding in visitor.found if finding[1] in keys]


# --------------------------------------------------------------------------- the package

# The fallbacks that are no default: (module, key) -> why the literal is right.
NOT_DEFAULTS = {
    ("data/prepare.py", "warm"):
        "warm: ~ means 'no level requested, nothing to check' (check_stored_warm); converting "
        "raw files for such a run is the Regular protocol, level 0",
    ("report/tables.py", "item_tower"):
        "reads the config stored in a result file: a model without an item tower (LightGCN...) "
        "stores no item_tower and is reported as an ID model",
}


def package_fallbacks() -> dict[tuple[str, str], list[str]]:
    """(module relative to the package, key) -> ``"line (shape)"`` of each fallback found."""
    keys = yaml_keys()
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for line, key, shape in literal_fallbacks(path.read_text(encoding="utf-8"), keys):
            found.setdefault((module, key), []).append(f"{line} ({shape})")
    return found


def test_no_module_shadows_a_yaml_default():
    found = {where: lines for where, lines in package_fallbacks().items()
             if where not in NOT_DEFAULTS}
    assert not found, "read these keys plainly, the yaml holds their default:\n" + "\n".join(
        f"{module}:{', '.join(lines)}: {key}" for (module, key), lines in sorted(found.items()))


def test_every_listed_exception_is_still_there():
    assert set(NOT_DEFAULTS) <= set(package_fallbacks())


# --------------------------------------------------------------------------- the detector catches


@pytest.mark.parametrize("snippet, shape", [
    ("size = config['encode_chunk_size'] or 64", "or"),
    ("size = self.config['encode_chunk_size'] or 64", "or"),
    ("size = config.get('encode_chunk_size') or 64", "or"),
    ("names = list(config['encode_chunk_size'] or [64])", "or"),
    ("SIZE = 64\nsize = config['encode_chunk_size'] or SIZE", "or"),
    ("SIZE = 64\nsize = SIZE if config['encode_chunk_size'] is None else config['encode_chunk_size']",
     "if-else"),
    ("size = config.get('encode_chunk_size', 64)", "get"),
    ("size = config['encode_chunk_size'] if config['encode_chunk_size'] else 64", "if-else"),
    ("size = 64 if config['encode_chunk_size'] is None else config['encode_chunk_size']",
     "if-else"),
    ("def f(config):\n    size = config['encode_chunk_size']\n    return 64 if size is None else size",
     "if-else"),
    ("def f(config):\n    size = config['encode_chunk_size']\n    return size or 4 * 16", "or"),
])
def test_the_detector_catches_each_shape(snippet, shape):
    found = literal_fallbacks(snippet, {"encode_chunk_size"})
    assert [(key, kind) for _, key, kind in found] == [("encode_chunk_size", shape)]


@pytest.mark.parametrize("snippet", [
    "size = config['encode_chunk_size']",                       # read plainly
    "lr = config['encoder_learning_rate'] or self.learning_rate",  # a fallback to another value
    "size = config['not_a_yaml_key'] or 64",                    # a key no yaml defines
    "size = config.get('not_a_yaml_key', 64)",
    "def f(config, size):\n    size = config['not_a_yaml_key']\n    return size or 64",
    "size = other['encode_chunk_size'] or 64",                  # not a config
    "names = list(config['encode_chunk_size'] or [])",          # nothing, as the yaml's ~
    "path = config['encode_chunk_size'] or None",
    "size = config['encode_chunk_size'] if on else None",       # not applicable, no default
])
def test_the_detector_ignores_plain_reads_and_other_keys(snippet):
    assert literal_fallbacks(snippet, {"encode_chunk_size", "encoder_learning_rate"}) == []


def test_the_yaml_keys_are_the_config_layers():
    keys = yaml_keys()
    assert {"encode_chunk_size", "hidden_size", "fusion", "inner_size"} <= keys
    assert "search_space" not in keys and "rows" not in keys  # tune/ and reference/ are not config


# --------------------------------------------------------------------------- one title length


def test_a_text_runs_title_tensors_have_the_yaml_length(tmp_path):
    """title_max_length (overall.yaml) sizes the titles a run feeds its text encoder; the registry
    and the command line default to the same key."""
    import torch

    from recbole_microlens.cli.commands import build_parser
    from recbole_microlens.data.stores.item_inputs import ItemSource
    from recbole_microlens.encoders.factory import EncoderChoice, build_encoder_inputs
    from recbole_microlens.encoders.registry import encoder_spec
    from recbole_microlens.paths import overall_default
    from tests.helpers import make_config, write_inter_file

    folder = write_inter_file(tmp_path, "tiny", {"u1": ["1", "2", "3"], "u2": ["2", "3", "1"]})
    (folder / "tiny.item").write_text("item_id:token\n1\n2\n3\n")
    long_title = "the best speedrun of the year part two " * 12  # 96 words: cut to the length
    (folder / "tiny.titles.csv").write_text(f"item_id,title\n1,{long_title}\n2,a cat\n3,noodles\n")
    config = make_config(tmp_path, "tiny", "SASRecV", item_encoder="bert-tiny",
                         item_modality="text")
    inputs = build_encoder_inputs(EncoderChoice.from_config(config), ["[PAD]", "1", "2", "3"],
                                  ItemSource.from_config(config))
    titles = inputs(torch.tensor([1, 2]))
    assert titles["input_ids"].shape == (2, config["title_max_length"])
    assert titles["attention_mask"][0].sum() == config["title_max_length"]  # the long one, cut
    assert config["title_max_length"] == overall_default("title_max_length") == 64
    assert encoder_spec("bert-tiny").input.max_tokens == 64
    prepare = build_parser().parse_args(["prepare-media", "--dataset", "tiny"])
    assert prepare.title_max_length == 64


def test_an_encoder_override_of_the_title_length_that_disagrees_is_refused():
    from recbole_microlens.encoders.factory import check_title_length
    from recbole_microlens.errors import ConfigError

    check_title_length({}, 64)
    check_title_length({"max_tokens": 16}, 16)
    with pytest.raises(ConfigError, match="title_max_length"):
        check_title_length({"max_tokens": 16}, 64)
