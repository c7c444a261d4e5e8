"""Encoder weights from local files, read safely and renamed onto our block layout.

Accepted files, whatever the encoder: a pytorchvideo ``.pyth`` (a torch file holding
``{"model_state": ...}``), a torchvision ``.pth`` state dict, a Hugging Face folder
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), or a bare ``.safetensors``.
Torch files are read with ``weights_only=True`` (no arbitrary pickle code runs) and
safetensors with ``safetensors.torch.load_file``; nothing is downloaded.

Each registry entry names the layout of its original weights (:class:`CheckpointFormat`): rules
that rename the original module names to our ``blocks.<i>.…`` names, and the keys of the
classification head we drop on purpose (reported as ignored, not as errors). Keys already in our
own layout (a fine-tuned encoder saved by us) load unchanged.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from recbole_microlens.io import load_torch_file
from recbole_microlens.errors import CheckpointError  # noqa: F401 (raised here, imported from here)

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Wrappers that training scripts put around the state dict (pytorchvideo/PySlowFast, Lightning).
STATE_DICT_ENTRIES = ("model_state", "state_dict")
# BatchNorm fills a missing counter itself; old checkpoints often lack it.
OPTIONAL_KEY_SUFFIXES = ("num_batches_tracked",)
MAX_KEYS_SHOWN = 20


@dataclass(frozen=True)
class KeyRule:
    """Renames a key whose start matches ``pattern`` to ``target`` + the rest of the key.

    ``target`` is a format string: ``{i}`` is the pattern's ``i`` group plus ``shift`` (original
    layer number -> our block number), ``{last}`` the index of the encoder's last (Pool) block,
    any other ``{name}`` the named group of that name.
    """

    pattern: str
    target: str
    shift: int = 0

    def rename(self, key: str, last: int) -> str | None:
        match = re.match(self.pattern, key)
        if match is None:
            return None
        groups = match.groupdict()
        if groups.get("i") is not None:
            groups["i"] = int(groups["i"]) + self.shift
        return self.target.format(last=last, **groups) + key[match.end():]


@dataclass(frozen=True)
class CheckpointFormat:
    """How an encoder's original weights are laid out.

    ``expected`` says what to point ``encoder_checkpoint`` at (for error messages); ``ignored``
    are regexes of original keys dropped on purpose (classification heads, decoders);
    ``resizable`` are suffixes of our keys holding a position table whose length (dim 1) depends
    on the clip length, linearly resampled when the checkpoint was trained on another length.
    """

    expected: str
    rules: tuple[KeyRule, ...] = ()
    ignored: tuple[str, ...] = ()
    resizable: tuple[str, ...] = ()


@dataclass
class LoadReport:
    """What a load did: how many tensors loaded, which keys were dropped or resampled."""

    path: Path
    loaded: int
    ignored: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)


def load_checkpoint(encoder: nn.Module, path: str | Path, fmt: CheckpointFormat) -> LoadReport:
    """Loads ``path`` into ``encoder`` (a module with ``blocks``); raises before touching any
    weight if a key is missing, unexpected or of the wrong shape."""
    path = Path(path)
    original = read_state_dict(path, fmt)
    own = encoder.state_dict()
    state, ignored, file_keys = rename_keys(original, fmt, own_keys=own.keys(), last=len(encoder.blocks) - 1)
    resized = _resample_position_tables(state, own, fmt.resizable)
    _check_fit(state, own, path, file_keys)
    encoder.load_state_dict(state, strict=True)
    return LoadReport(path=path, loaded=len(state), ignored=ignored, resized=resized)


def read_state_dict(path: Path, fmt: CheckpointFormat) -> dict[str, torch.Tensor]:
    """The tensors stored at ``path`` (file or Hugging Face folder), without running pickle code."""
    if not path.exists():
        raise CheckpointError(f"encoder checkpoint {path} does not exist; expected {fmt.expected}")
    if path.is_dir():
        path = _hf_weight_file(path)
    if path.suffix == ".safetensors":
        return load_file(path, device="cpu")
    return _read_torch_file(path)


def rename_keys(state: dict, fmt: CheckpointFormat, *, own_keys, last: int) -> tuple[dict, list[str], dict]:
    """``state`` under our names, the ignored original keys, and our name -> name in the file."""
    own_keys = set(own_keys)
    renamed, ignored, file_keys = {}, [], {}
    for key, tensor in state.items():
        our_key = key if key in own_keys else _apply_rules(key, fmt.rules, last)
        # dropped on purpose only where the encoder has no place for it (a logits head keeps
        # the classifier the features head drops)
        if our_key not in own_keys and any(re.search(pattern, key) for pattern in fmt.ignored):
            ignored.append(key)
            continue
        renamed[our_key] = tensor
        file_keys[our_key] = key
    return renamed, ignored, file_keys


def _apply_rules(key: str, rules: tuple[KeyRule, ...], last: int) -> str:
    """The first rule's renaming of ``key``, or ``key`` itself when no rule matches."""
    for rule in rules:
        renamed = rule.rename(key, last)
        if renamed is not None:
            return renamed
    return key


def _hf_weight_file(folder: Path) -> Path:
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(
        f"encoder checkpoint folder {folder} holds none of {' / '.join(HF_WEIGHT_FILES)} "
        "(a Hugging Face folder: config.json + model.safetensors or pytorch_model.bin)"
    )


def _read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    content = load_torch_file(path, "a state dict (name -> tensor), re-saved alone or as "
                                    ".safetensors if it pickles other objects")
    for entry in STATE_DICT_ENTRIES:
        if isinstance(content, dict) and isinstance(content.get(entry), dict):
            content = content[entry]
            break
    if not isinstance(content, dict) or not all(torch.is_tensor(v) for v in content.values()):
        raise CheckpointError(
            f"{path} is not a state dict (name -> tensor), nor a dict holding one under "
            f"{' or '.join(STATE_DICT_ENTRIES)}"
        )
    return content


def _resample_position_tables(state: dict, own: dict, suffixes: tuple[str, ...]) -> list[str]:
    """Linearly resamples ``[1, length, dim]`` position tables to the encoder's length."""
    resized = []
    for key, target in own.items():
        table = state.get(key)
        if not key.endswith(suffixes) or table is None or not _differs_in_length_only(table, target):
            continue
        resampled = F.interpolate(table.transpose(1, 2).float(), size=target.shape[1], mode="linear")
        state[key] = resampled.transpose(1, 2).to(table.dtype)
        resized.append(f"{key}: {tuple(table.shape)} -> {tuple(target.shape)}")
    return resized


def _differs_in_length_only(table: torch.Tensor, target: torch.Tensor) -> bool:
    same_rank_and_ends = table.dim() == target.dim() == 3 and table.shape[::2] == target.shape[::2]
    return same_rank_and_ends and table.shape[1] != target.shape[1]


def _check_fit(state: dict, own: dict, path: Path, file_keys: dict[str, str]) -> None:
    def named(key: str) -> str:
        return key if file_keys[key] == key else f"{file_keys[key]} (as {key})"

    missing = [k for k in own if k not in state and not k.endswith(OPTIONAL_KEY_SUFFIXES)]
    unexpected = [named(k) for k in state if k not in own]
    wrong_shape = [
        f"{named(k)}: checkpoint {tuple(state[k].shape)}, encoder {tuple(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    problems = [
        _describe(title, keys)
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{path} does not fit the encoder:\n" + "\n".join(problems))


def _describe(title: str, keys: list[str]) -> str:
    shown = "\n  ".join(keys[:MAX_KEYS_SHOWN])
    more = f"\n  ... and {len(keys) - MAX_KEYS_SHOWN} more" if len(keys) > MAX_KEYS_SHOWN else ""
    return f"{len(keys)} {title} key(s):\n  {shown}{more}"


def checkpoint_config(path: str | Path) -> dict:
    """The ``config.json`` of a Hugging Face folder (or beside a weights file); {} without one."""
    path = Path(path)
    config = (path if path.is_dir() else path.parent) / "config.json"
    if not config.is_file():
        return {}
    try:
        return json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{config} is not readable JSON ({error})") from error
