"""Small builders shared by tests: hand-made atomic datasets and configs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.data.stores.atomic import seal


def write_inter_file(root: Path, dataset: str, sequences: dict) -> Path:
    """``sequences``: user token -> item tokens in time order."""
    folder = Path(root) / dataset
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user, items in sequences.items():
        lines += [f"{user}\t{item}\t{t}" for t, item in enumerate(items)]
    (folder / f"{dataset}.inter").write_text("\n".join(lines) + "\n")
    seal(folder, dataset, {"dataset": dataset, "converter": "tests/helpers.py"})
    return folder


def make_config(root: Path, dataset: str, model: str = "SASRec", **overrides) -> MLConfig:
    options = {
        "data_path": str(root),
        "show_progress": False,
        "checkpoint_dir": str(Path(root) / "saved"),
        "hidden_size": 8,
        "inner_size": 16,
        "embedding_size": 8,
        "train_batch_size": 4,
        "eval_batch_size": 16,
        # content models train random encoders here (tests that load weights seed a cache)
        "encoder_checkpoint": "random",
    }
    options.update(overrides)
    return MLConfig(model=model, dataset=dataset, config_dict=options)


def built_run(config: MLConfig, model: bool = True):
    """The run ``config`` describes, built as training and reloading build it
    (:func:`~recbole_microlens.quick_start.build.build_run`: seeded, dataset, splits and, with
    ``model``, the model), without a log file."""
    from recbole_microlens.quick_start.build import build_run

    return build_run(config, quiet=True, with_model=model)


REPO = Path(__file__).resolve().parent.parent


def checkout_env(**extra: str) -> dict:
    """The environment of a child interpreter that runs this checkout's code: the repository
    first on PYTHONPATH, the caller's PYTHONPATH kept after it (packages installed beside
    site-packages, as the wheels a GPU machine carries), then ``extra``."""
    kept = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *kept]), **extra}


def run_isolated(script: str, *args: str, timeout: float = 600) -> dict:
    """Run ``script`` in a fresh interpreter (one thread, this checkout's code) and return the
    JSON of its last stdout line: a native crash (bf16 kernels, new ops) fails one test, not the
    suite."""
    env = checkout_env(OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def wait_for(condition, *, failed=None, guard: float = 900, poll: float = 0.02,
             describe=None) -> None:
    """Wait for an event (``condition()`` true), never for an amount of time: fail at once when
    ``failed()`` says it cannot come any more (the process that would make it has exited).
    ``guard`` only keeps a hung test from hanging the suite; nothing should come near it.
    ``describe()`` says what is wrong when it does."""
    import time

    deadline = time.monotonic() + guard
    while not condition():
        if failed is not None and failed():
            raise AssertionError(f"gave up waiting: {failed.__doc__ or 'the event cannot come'}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no event after the {guard:.0f} s guard"
                                 + (f": {describe()}" if describe else ""))
        time.sleep(poll)


def waits_for_a_lock(pid: int) -> bool:
    """Whether process ``pid`` is blocked on a file lock (``flock``), from ``/proc/locks``."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 4] == str(pid):
            return True
    return False
# --------------------------------------------------------------------------- weights caches


def seed_torch_hub(torch_home: Path, file_name: str, state: dict) -> Path:
    """``state`` saved as pytorchvideo publishes its checkpoints (``{"model_state": ...}``) under
    the upstream ``file_name`` in torch.hub's cache of ``TORCH_HOME``."""
    import torch

    path = Path(torch_home) / "hub" / "checkpoints" / file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": state, "model_arch": None}, path)
    return path


def seed_hub_cache(hf_home: Path, repo_id: str, folder: Path,
                   revision: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """The files of ``folder`` in the model hub's cache layout under ``HF_HOME``: content in
    ``blobs/<sha256>``, ``snapshots/<revision>/<file>`` linking to it, ``refs/main`` naming it."""
    import hashlib
    import os

    repo = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for file in sorted(Path(folder).iterdir()):
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.write_bytes(file.read_bytes())
        os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def tiny_bert_folder(folder: Path, titles) -> Path:
    """A generated BERT of bert-tiny's shape and a WordPiece trained on ``titles``, saved as a
    hub repository holds them (config.json, model.safetensors, tokenizer files)."""
    import torch
    from transformers import BertConfig, BertModel

    from recbole_microlens.data.stores.titles import train_wordpiece
    from recbole_microlens.encoders.text import BERT_TINY

    tokenizer = train_wordpiece(titles, vocab_size=200)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(**BERT_TINY, vocab_size=len(tokenizer))
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return Path(folder)
