"""Where our yaml lives: ``properties/`` at the repository root in a checkout, and the copy
installed inside the package (``recbole_microlens/properties``) otherwise."""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
CANDIDATES = (_PACKAGE.parent / "properties", _PACKAGE / "properties")


def properties_dir() -> Path:
    for candidate in CANDIDATES:
        if (candidate / "overall.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"recbole-microlens properties not found in {[str(c) for c in CANDIDATES]}; "
                            "reinstall with `pip install .`")
