"""What VideoRec training costs on MicroLens-50k interactions, and what the trainer saves.

    python -m benchmarks.videorec_efficiency --raw-dir DIR

Frames are generated (uint8, one memory-mapped store, as the media pipeline writes them) for
every item, and SASRecV with a small video encoder (`--encoder`, `--size`) trains on the real
interaction sequences. On the same training batches, in one process, it times:

* naive:   every occurrence of an item is encoded, padding included (the reference code);
* unique:  each distinct item of a step encoded once, padding never;
* cached:  unique + the frozen trunk's output cached per item (finetune: top);
* ID SASRec at the same sizes, as the reference.

Encoder item passes are counted for the whole epoch; seconds per epoch are the mean step time
over `--steps` steps (after one warm-up step) times the number of steps in an epoch (the naive
epoch takes hours on CPU).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from tabulate import tabulate

from benchmarks.common import DATASET, OUT, ROOT, prepared_data
from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.data.stores.item_inputs import ItemInputs, clips_to_tensor
from recbole_microlens.encoders import ENCODERS, build_encoder
from recbole_microlens.model import get_model
from recbole_microlens.model.layers import EncoderItemTower
from recbole_microlens.trainer.trainer import MLTrainer


class GeneratedFrames:
    """A uint8 frame store [rows, T, S, S, 3] of generated clips; row = internal item id."""

    def __init__(self, path: Path, n_rows: int, frames: int, size: int, seed: int = 0):
        shape = (n_rows, frames, size, size, 3)
        if not path.is_file() or path.stat().st_size != int(np.prod(shape)):
            data = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), "w+", np.uint8, shape)
            rng = np.random.default_rng(seed)
            for start in range(0, n_rows, 1024):
                stop = min(start + 1024, n_rows)
                data[start:stop] = rng.integers(0, 256, (stop - start,) + shape[1:], dtype=np.uint8)
            data.flush()
            path.with_suffix(".tmp.npy").rename(path)
        self.data = np.load(path, mmap_mode="r")
        self.folder = path

    def rows_for(self, tokens):
        return np.arange(len(tokens))

    def __getitem__(self, rows):
        return np.asarray(self.data[rows])


def build_config(args, model: str) -> MLConfig:
    return MLConfig(model, DATASET, config_dict={
        "data_path": str(OUT / "atomic_files"), "checkpoint_dir": str(OUT / "saved"),
        "hidden_size": args.dim, "inner_size": 4 * args.dim, "train_batch_size": args.batch_size,
        "show_progress": False, "item_encoder": args.encoder, "finetune": "top",
        "finetune_top_blocks": args.top_blocks, "encoder_overrides": {"size": args.size},
        "encode_chunk_size": 512, "trunk_cache_dtype": "float16",
    })


def make_videorec(args, config, dataset):
    """SASRecV whose tower reads the generated frame store (no video decoding in the loop)."""
    spec = ENCODERS[args.encoder].input
    frames_file = OUT / f"generated_frames_{dataset.item_num}_{spec.frames}x{args.size}.npy"
    store = GeneratedFrames(frames_file, dataset.item_num, spec.frames, args.size)
    input_spec = type(spec)(frames=spec.frames, size=args.size, mean=spec.mean, std=spec.std)
    inputs = ItemInputs(store, list(dataset.field2id_token[dataset.iid_field]), clips_to_tensor(input_spec))
    torch.manual_seed(0)
    config["item_tower"] = "id"  # build the recommender; its tower is replaced just below
    model = get_model("SASRec")(config, dataset)
    config["item_tower"] = "encoder"
    encoder = build_encoder(args.encoder, overrides={"size": args.size}).set_finetune("top", args.top_blocks)
    model.item_tower = EncoderItemTower(dataset.item_num, args.dim, encoder, inputs, chunk_size=512)
    return model


def train_step(trainer, batch) -> None:
    trainer.optimizer.zero_grad()
    trainer._step_loss(batch).backward()
    trainer.optimizer.step()


def time_steps(trainer, batches, warmup) -> float:
    """Mean seconds per training step over ``batches``, after one untimed warm-up step."""
    trainer.model.train()
    train_step(trainer, warmup)
    started = time.perf_counter()
    for batch in batches:
        train_step(trainer, batch)
    return (time.perf_counter() - started) / len(batches)


def passes_per_epoch(train, unique: bool) -> int:
    """Encoder item passes in one epoch (counted from the batches, without running the encoder)."""
    total = 0
    for batch in train:
        ids = torch.cat([batch["item_id_list"].flatten(), batch["item_id"]])
        if unique:
            total += int((torch.unique(ids) > 0).sum())
        else:
            labelled = torch.unique(torch.cat([batch["item_id_list"][:, 1:].flatten(), batch["item_id"]]))
            total += batch["item_id_list"].numel() + int((labelled > 0).sum())
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--encoder", default="x3d-xs")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top-blocks", type=int, default=1,
                        help="encoder blocks that train besides the head (0: the head alone)")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())

    id_config = build_config(args, "SASRec")
    id_config["raw_data_path"] = str(args.raw_dir)
    train, _, _ = prepared_data(id_config)
    batches = [b for b, _ in zip(train, range(args.steps + 1))]
    warmup, batches = batches[0], batches[1:]
    steps_per_epoch = len(train)

    torch.manual_seed(0)
    id_trainer = MLTrainer(id_config, get_model("SASRec")(id_config, train._dataset))
    id_step = time_steps(id_trainer, batches, warmup)

    config = build_config(args, "SASRecV")
    model = make_videorec(args, config, train._dataset)
    trainer = MLTrainer(config, model)
    rows = {}
    for name, unique, cached in (("naive", False, False), ("unique", True, False), ("unique + trunk cache", True, True)):
        trainer.unique_items = unique
        build_seconds = 0.0
        if cached:
            started = time.perf_counter()
            trainer._prepare_trunk_cache(show_progress=True)
            build_seconds = time.perf_counter() - started
        step = time_steps(trainer, batches, warmup)
        before = model.item_tower.items_encoded
        with torch.no_grad():  # count the passes of these steps (no timing, no update)
            for batch in batches:
                trainer._step_loss(batch)
        counted = model.item_tower.items_encoded - before
        assert counted == passes_per_epoch(batches, unique), (name, counted)  # the formula is right
        rows[name] = {"step": step, "build": build_seconds, "passes": passes_per_epoch(train, unique)}
    naive = rows["naive"]
    table = [["ID SASRec (reference)", 0, id_step * steps_per_epoch, "", 1.0, 0.0]]
    for name, r in rows.items():
        table.append([name, r["passes"], r["step"] * steps_per_epoch, naive["step"] / r["step"],
                      r["step"] / id_step, r["build"]])
    headers = ["path", "encoder item passes / epoch", "s / epoch", "speed-up vs naive",
               "x ID epoch", "one-off build s"]
    print(f"\nSASRecV + {args.encoder} at {args.size}px, 5 frames, dim {args.dim}, batch {args.batch_size}, "
          f"{steps_per_epoch} steps/epoch, step times averaged over {args.steps} steps "
          f"(top-{args.top_blocks}; trunk: blocks[:{model.item_tower.encoder.trainable_block_start}] of "
          f"{model.item_tower.encoder.num_blocks}; cache {model.item_tower.runtime.trunk_cache.bytes_per_item} B/item)")
    print(tabulate(table, headers=headers, tablefmt="github", floatfmt=".2f"))
    (OUT / "videorec_efficiency.json").write_text(json.dumps({"rows": rows, "id_step": id_step}, indent=2))


if __name__ == "__main__":
    main()
