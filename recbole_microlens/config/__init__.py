"""Configuration: our yaml layered over RecBole's, strict key checking, dataset registration.

Light on import (the CLI checks keys without the ML stack): the RecBole-backed names load on
first use."""
_LAZY = {"MLConfig", "register_dataset", "resolve_config_files"}


def __getattr__(name):
    if name in _LAZY:
        from recbole_microlens.config import configurator

        return getattr(configurator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
