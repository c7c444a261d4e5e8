"""Where our packaged yaml lives, in a source checkout and when installed."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_SOURCE_PROPERTIES = Path(__file__).resolve().parent.parent / "properties"


def properties_dir() -> Path:
    """The ``properties/`` folder: the repository's in a checkout, the packaged copy otherwise."""
    if (_SOURCE_PROPERTIES / "overall.yaml").is_file():
        return _SOURCE_PROPERTIES
    return Path(str(resources.files("recbole_microlens.properties")))
