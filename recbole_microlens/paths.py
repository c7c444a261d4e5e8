"""Where our yaml lives: ``properties/`` at the repository root in a checkout, and the copy
installed inside the package (``recbole_microlens/properties``) otherwise."""
from __future__ import annotations

from pathlib import Path
from recbole_microlens.errors import MissingInputError

_PACKAGE = Path(__file__).resolve().parent
CANDIDATES = (_PACKAGE.parent / "properties", _PACKAGE / "properties")


def properties_dir() -> Path:
    for candidate in CANDIDATES:
        if (candidate / "overall.yaml").is_file():
            return candidate
    raise MissingInputError(f"recbole-microlens properties not found in {[str(c) for c in CANDIDATES]}; "
                            "reinstall with `pip install .`")


def yaml_file(name_or_path, folder: str, what: str = "yaml") -> Path:
    """A yaml file given by path, or the name of one packaged under ``properties/<folder>/``."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = properties_dir() / folder / f"{name_or_path}.yaml"
    if packaged.is_file():
        return packaged
    known = sorted(p.stem for p in packaged.parent.glob("*.yaml"))
    raise MissingInputError(f"no {what} {str(name_or_path)!r}: not a file, and not one of "
                            f"the packaged ones {known}")


def overall_default(key: str):
    """``key``'s value in ``properties/overall.yaml``: the one default for code that runs without
    a Config (the encoder registry, the command line, plain-value data APIs), so that those and a
    training run never disagree."""
    import yaml

    with open(properties_dir() / "overall.yaml", encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)
    if key not in defaults:
        raise KeyError(f"{key!r} is not a key of {properties_dir() / 'overall.yaml'}")
    return defaults[key]
