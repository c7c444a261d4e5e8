"""Every entry point: ``recbole-microlens <command>`` (:mod:`.commands`), training
(:mod:`.train`, behind ``run_recbole_ml.py``), sweeps (:mod:`.tune`) and serving (:mod:`.serve`).
Commands import the ML stack only when they run, and each has one error boundary."""
from recbole_microlens.cli.commands import config_overrides, main  # noqa: F401
