"""Small builders shared by tests: hand-made atomic datasets and configs."""
from __future__ import annotations

from pathlib import Path

from recbole_microlens.config import MLConfig
from recbole_microlens.data.dataset_folder import seal


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

    from recbole_microlens.data.text import train_wordpiece
    from recbole_microlens.encoders.text import BERT_TINY

    tokenizer = train_wordpiece(titles, vocab_size=200)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(**BERT_TINY, vocab_size=len(tokenizer))
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    return Path(folder)
