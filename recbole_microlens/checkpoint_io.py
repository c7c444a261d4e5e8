"""Reading torch files safely, with errors that name the file and the format expected.

Only ``weights_only`` loading is allowed (a pickle can run code); an empty, truncated or foreign
file is a :class:`CheckpointError`, never a bare ``EOFError`` or ``KeyError`` from deep in torch.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

from recbole_microlens.errors import CheckpointError

TRAINER_FORMAT = ("a recbole-microlens checkpoint (a dict with 'state_dict', written by "
                  "torch.save and loadable with weights_only=True)")


def load_torch_file(path: str | os.PathLike, expected: str, map_location="cpu"):
    """``torch.load(path, weights_only=True)``; any failure names ``path`` and ``expected``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; expected {expected}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty; expected {expected}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" in str(error).lower():  # torch names the class or function it refused
            raise CheckpointError(
                f"refused to read {path}: it pickles objects other than tensors and plain "
                f"containers, and only weights_only loading is allowed; expected {expected}"
            ) from error
        raise CheckpointError(f"{path} is not a readable torch file (damaged, truncated or another "
                              f"format); expected {expected}") from error
    except Exception as error:  # torch reports damage as EOFError, KeyError, RuntimeError...
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise CheckpointError(f"{path} is not a readable torch file ({type(error).__name__}: "
                              f"{detail}); expected {expected}") from error


def load_trainer_checkpoint(path: str | os.PathLike, map_location="cpu",
                            required=("state_dict",)) -> dict:
    """A checkpoint our trainer wrote, with the entries ``required``."""
    checkpoint = load_torch_file(path, TRAINER_FORMAT, map_location)
    missing = [key for key in required if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} has no {missing}; expected {TRAINER_FORMAT}")
    return checkpoint
