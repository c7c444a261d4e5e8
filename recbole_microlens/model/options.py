"""Config keys that name an entry of a table (a tower, a similarity, a fusion)."""
from __future__ import annotations

from recbole_microlens.errors import ConfigError


def choose(config, key: str, table, default=None):
    """The entry of ``table`` that ``config[key]`` names (``default`` when unset), or a clear
    error naming the key and the choices. Tables are dicts (entry returned) or tuples (the name)."""
    name = config[key] if config[key] is not None else default
    if name not in table:
        raise ConfigError(f"{key} {name!r} is unknown; choose one of {sorted(table)}")
    return table[name] if isinstance(table, dict) else name
