"""Resumable training: the whole state of a run between two epochs, saved and restored exactly.

A run writes ``<checkpoint_dir>/resume/<Model>-<run_id>.pth`` atomically before every epoch (and
once more when training ends; removed when the run completes): weights, optimizer, scheduler (if the trainer has one), early
stopping's counters and best-so-far, the per-epoch histories, and every random stream training
draws from (torch, CUDA, numpy, Python, the training loader's shuffling generator). Restoring it
into a freshly built run and continuing gives exactly the numbers the uninterrupted run gives.
Everything is plain data and tensors, so the file loads with ``torch.load(weights_only=True)``.

Interrupts: SIGINT (Ctrl-C) and SIGTERM stop a run cleanly with :class:`TrainingInterrupted`,
which names the state file; the entry point prints the command that resumes it.
"""
from __future__ import annotations

import contextlib
import random
import signal
import threading
from pathlib import Path

import numpy as np
import torch

from recbole_microlens.trainer.checkpoint import PROCESS_KEYS, plain
from recbole_microlens.io import load_trainer_checkpoint
from recbole_microlens.errors import CheckpointError
from recbole_microlens.evaluator.ranking import EvalResult
from recbole_microlens.io import atomic_open
from recbole_microlens.paths import overall_default

STATE_FORMAT = 1
#: settings that may differ between the interrupted run and the one that resumes it
VOLATILE_KEYS = frozenset(PROCESS_KEYS) | {"run_id", "show_progress", "state", "data_path"}
#: keys whose yaml default went from ``~`` to the value a ``~`` ran with (title_max_length: ~ cut
#: titles to the text encoders' 64 tokens): a state saved with ``~`` matches that default
FORMER_UNSET_DEFAULTS = ("title_max_length",)
#: the trainer's per-epoch records, restored so that the result file covers the whole run
HISTORIES = ("epoch_seconds", "valid_seconds", "valid_history", "epoch_items_encoded",
             "train_loss_dict")
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(Exception):
    """Training stopped by a signal; ``state_file`` holds the state to resume from."""

    def __init__(self, signum: int, state_file: str | None, epoch: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name} during epoch {epoch}")
        self.signum, self.state_file, self.epoch = signum, state_file, epoch

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 1)


class _Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that ``except Exception`` cannot swallow it."""


def state_file_for(best_model_file: str | Path) -> Path:
    """``saved/SASRec-<run_id>.pth`` -> ``saved/resume/SASRec-<run_id>.pth``: a folder of its
    own, so that ``saved/*.pth`` still lists model checkpoints only."""
    path = Path(best_model_file)
    return path.parent / "resume" / path.name


# -- random streams ------------------------------------------------------------------------------
def random_states(train_generator: torch.Generator | None) -> dict:
    """Every random stream a training epoch draws from, as tensors and plain lists."""
    version, python_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if train_generator is not None:
        states["train_loader"] = train_generator.get_state()
    return states


def restore_random_states(states: dict, train_generator: torch.Generator | None) -> None:
    torch.set_rng_state(states["torch"])
    numpy_state = states["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"],
                         numpy_state["cached_gaussian"]))
    python_state = states["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if train_generator is not None and "train_loader" in states:
        train_generator.set_state(states["train_loader"])


# -- the state file ------------------------------------------------------------------------------
def training_state(trainer, next_epoch: int, finished: bool, train_generator) -> dict:
    """What ``trainer`` needs to continue at ``next_epoch`` (``finished``: go straight to test)."""
    scheduler = getattr(trainer, "scheduler", None)
    return {
        "format": "recbole-microlens training state",
        "state_format": STATE_FORMAT,
        **trainer.run_record_once(),
        "run_id": trainer.config["run_id"],
        "best_model_file": str(trainer.saved_model_file),
        "next_epoch": next_epoch,
        "finished": finished,
        "cur_step": trainer.cur_step,
        "best_valid_score": float(trainer.best_valid_score),
        "best_valid_result": plain(trainer.best_valid_result),
        "best_valid_breakdowns": plain(getattr(trainer.best_valid_result, "breakdowns", {})),
        "histories": {name: plain(getattr(trainer, name)) for name in HISTORIES},
        "state_dict": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "random": random_states(train_generator),
    }


def save_training_state(path: str | Path, state: dict) -> None:
    """Atomically: an interrupt while writing leaves the previous state file intact."""
    with _signals_deferred(), atomic_open(path, "wb") as handle:
        torch.save(state, handle)


def read_training_state(path: str | Path) -> dict:
    state = load_trainer_checkpoint(path, "cpu", ("state_dict",))
    if state.get("format") != "recbole-microlens training state":
        raise CheckpointError(
            f"{path} is a model checkpoint, not a training state; --resume takes "
            f"{state_file_for(path)}, written every epoch while the run trains")
    if state.get("state_format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: training state format {state.get('state_format')} "
                              f"(this version reads {STATE_FORMAT})")
    return state


def check_same_run(state: dict, config, path) -> None:
    """Resuming under other settings would silently mix two runs: refuse, naming the keys."""
    from recbole_microlens.evaluator.results import jsonable_config

    if (state["model"], state["dataset"]) != (config["model"], config["dataset"]):
        raise CheckpointError(f"{path} is a {state['model']} run on {state['dataset']}, not "
                              f"{config['model']} on {config['dataset']}")
    now = plain(jsonable_config(config))
    before = state["config"]
    # a key the state lacks came with a newer version of the project, whose default keeps the
    # behaviour the run had: the run continues under it
    differing = sorted(key for key in before
                       if key not in VOLATILE_KEYS and not _same_setting(key, before[key], now.get(key)))
    if differing:
        shown = ", ".join(f"{key}: {before.get(key)!r} -> {now.get(key)!r}" for key in differing[:5])
        raise CheckpointError(f"{path} was trained with other settings ({shown}); resume with "
                              "the command that started it")


def _same_setting(key: str, before, now) -> bool:
    if before is None and key in FORMER_UNSET_DEFAULTS:
        return now == overall_default(key)
    return now == before


def restore_training_state(trainer, state: dict, train_generator) -> None:
    trainer.model.load_state_dict(state["state_dict"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if state["scheduler"] is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.start_epoch = state["next_epoch"]
    trainer.cur_step = state["cur_step"]
    trainer.best_valid_score = state["best_valid_score"]
    if state["best_valid_result"] is not None:
        trainer.best_valid_result = EvalResult(state["best_valid_result"],
                                               state["best_valid_breakdowns"])
    for name, value in state["histories"].items():
        setattr(trainer, name, value)
    trainer.train_loss_dict = {int(epoch): loss for epoch, loss in trainer.train_loss_dict.items()}
    restore_random_states(state["random"], train_generator)


# -- signals -------------------------------------------------------------------------------------
@contextlib.contextmanager
def interruptible():
    """SIGTERM raises in the main thread like Ctrl-C does, for the duration of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM while the state file is written; deliver them right after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    handlers = {signum: signal.getsignal(signum) for signum in EXIT_STATUS}
    for signum in handlers:
        signal.signal(signum, lambda received, frame: pending.append(received))
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for signum in pending[:1]:
            signal.raise_signal(signum)


def signal_of(error: BaseException) -> int | None:
    """The signal behind an interrupt, or None for any other exception."""
    if isinstance(error, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(error, _Terminated):
        return signal.SIGTERM
    return None
