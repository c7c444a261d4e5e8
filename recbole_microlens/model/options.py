"""Config keys that name an entry of a table (a tower, a similarity, a fusion)."""
from __future__ import annotations

from recbole_microlens.errors import ConfigError


def choose(config, key: str, table):
    """The entry of ``table`` that ``config[key]`` names, or a clear error naming the key and the
    choices. Tables are dicts (entry returned) or tuples (the name). The default is the yaml's:
    no fallback here, so the yaml's value is the one that runs."""
    name = config[key]
    if name not in table:
        raise ConfigError(f"{key} {name!r} is unknown; choose one of {sorted(table)}")
    return table[name] if isinstance(table, dict) else name
