"""Strict, safe configuration: every key must be one somebody defines, every command-line value
is read as a literal (never ``eval``'ed), and the values that would fail deep inside torch are
checked up front, with the key's name in the message.

The known keys are not a list kept here: they are the keys of RecBole's yaml defaults and of
ours (``properties/``), so a key added to a yaml file is known at once. Keys of a user-defined
model are declared with ``extra_config_keys: [key, ...]``.
"""
from __future__ import annotations

import ast
import difflib
import math
from functools import lru_cache
from pathlib import Path

import yaml

from recbole_microlens.errors import ConfigError
from recbole_microlens.paths import properties_dir

# Keys no yaml defines because the run sets them (DDP, the model and dataset names).
RUNTIME_KEYS = frozenset({"model", "dataset", "local_rank", "world_size", "nproc", "ip", "port",
                          "offset", "config_files"})
# Our yaml folders that hold config layers or files (tune/ holds search spaces, reference/ the
# paper's numbers).
CONFIG_YAML_FOLDERS = (".", "model", "dataset", "profile")
EXTRA_KEYS = "extra_config_keys"
# A value for one of these keys (or for a key whose default is a string) stays the string it was
# typed as (``--result_file=id.json``, ``--gpu_id=0,1``).
PATH_SUFFIXES = ("_path", "_file", "_dir", "_checkpoint", "_address")


# --------------------------------------------------------------------------- known keys


def _yaml_keys(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=yaml.FullLoader)
    return loaded if isinstance(loaded, dict) else {}


@lru_cache(maxsize=1)
def known_defaults() -> dict:
    """Every key RecBole's or our yaml files define, with a default seen for it."""
    import recbole

    recbole_props = Path(recbole.__file__).resolve().parent / "properties"
    files = sorted(recbole_props.rglob("*.yaml"))
    ours = properties_dir()
    files += [path for folder in CONFIG_YAML_FOLDERS for path in sorted((ours / folder).glob("*.yaml"))]
    defaults: dict = {}
    for path in files:
        if path.name in ("url.yaml", "kg_url.yaml"):  # download tables, not config layers
            continue
        for key, value in _yaml_keys(path).items():
            if defaults.get(key) is None:
                defaults[key] = value
    for key in RUNTIME_KEYS:
        defaults.setdefault(key, None)
    return defaults


def closest_key(key: str, known) -> str | None:
    matches = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(key: str, known, where: str) -> str:
    guess = closest_key(key, known)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return (f"unknown config key {key!r} in {where}{hint} (keys of your own model: declare "
            f"them with {EXTRA_KEYS}: [{key}])")


def check_known_keys(keys, where: str, known=None, extra=()) -> None:
    """Raise :class:`ConfigError` for the first key of ``keys`` nobody defines."""
    known = set(known_defaults() if known is None else known) | set(extra or ())
    for key in keys:
        if key not in known:
            raise ConfigError(unknown_key_message(key, known, where))


# --------------------------------------------------------------------------- command line


def parse_overrides(args: list[str]) -> dict:
    """``--key=value`` or ``--key value`` arguments -> config values.

    Values are Python literals (``ast.literal_eval``) or ``true``/``false``/``none``, else strings;
    a path-like key's value always stays a string. Anything else is a :class:`ConfigError`.
    """
    overrides: dict = {}
    position = 0
    while position < len(args):
        arg = args[position]
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"unexpected argument {arg!r}: config overrides look like "
                              f"--key=value or --key value")
        key, sep, text = arg[2:].partition("=")
        if not sep:
            if position + 1 == len(args) or args[position + 1].startswith("--"):
                raise ConfigError(f"--{key} needs a value: config overrides look like "
                                  f"--key=value or --key value")
            text = args[position + 1]
            position += 1
        if key in overrides and overrides[key] != typed_value(key, text):
            raise ConfigError(f"--{key} is given twice with different values")
        overrides[key] = typed_value(key, text)
        position += 1
    return overrides


def keeps_string(key: str) -> bool:
    return key.endswith(PATH_SUFFIXES) or isinstance(known_defaults().get(key), str)


def typed_value(key: str, text: str):
    """The value of ``--key=text``: a literal, never evaluated code; paths stay strings."""
    if keeps_string(key):
        return None if text.lower() in ("none", "~") else text
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", "~"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


# --------------------------------------------------------------------------- value ranges


def check_ranges(config: dict) -> None:
    """epochs >= 1, every size >= 1, learning rates positive numbers (key named in the error)."""
    for key, value in config.items():
        if not isinstance(key, str):
            continue
        if key == "epochs":
            _require_int(key, value, allow_none=False)
        elif key.endswith("_size"):
            for item in value if isinstance(value, (list, tuple)) else [value]:
                _require_int(key, item, allow_none=True)
        elif key.endswith("learning_rate"):
            _require_positive_number(key, value, allow_none=key != "learning_rate")


def _require_int(key: str, value, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"config {key} must be an integer >= 1, got {value!r}")


def _require_positive_number(key: str, value, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value <= 0):
        raise ConfigError(f"config {key} must be a positive number, got {value!r}")


# --------------------------------------------------------------------------- RecBole's switches

#: RecBole switches that would pickle (and later unpickle, i.e. run) a dataset or its loaders;
#: here datasets and loaders are rebuilt each run from the checksummed atomic files instead
PICKLE_SWITCHES = {
    "save_dataset": "save_dataset is not supported: the dataset is rebuilt from its checksummed "
                    "atomic files each run (RecBole's saved dataset is a pickle, which loading "
                    "would run); set save_dataset: False",
    "save_dataloaders": "save_dataloaders is not supported: loaders are rebuilt from the atomic "
                        "files each run (set save_dataloaders: False)",
    "dataset_save_path": "dataset_save_path is not supported: a saved RecBole dataset is a "
                         "pickle; datasets are rebuilt from their atomic files (unset it)",
    "dataloaders_save_path": "dataloaders_save_path is not supported: saved RecBole loaders are "
                             "a pickle; loaders are rebuilt from the atomic files (unset it)",
}


def check_switches(config: dict) -> None:
    """RecBole's switches do what they say here or are refused in one line, never ignored:
    the pickle caches are refused; ``log_wandb`` needs wandb (then the trainer logs train/*,
    valid/* and eval/* as stock RecBole does)."""
    for key, message in PICKLE_SWITCHES.items():
        if config.get(key):
            raise ConfigError(message)
    if config.get("log_wandb"):
        import importlib.util

        if importlib.util.find_spec("wandb") is None:
            raise ConfigError("log_wandb is True but the wandb package is not installed: "
                              "pip install wandb (or set log_wandb: False)")
