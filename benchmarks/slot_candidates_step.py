"""What scoring slot candidates as distinct items plus log(copies) saves a training step, against
scoring every slot (``inbatch_candidates: slots``, the reference code's candidates).

    python benchmarks/slot_candidates_step.py --raw-dir ../shared/data/microlens-50k

Times the same ID SASRec training steps (d=128, batch 512, left padding, MicroLens-50k windows)
three ways, interleaved: slot candidates as the first implementation scored them, one logit per
filled slot of the batch ([P, S] logits, the label found against every slot; kept here as the
baseline), slot candidates as distinct items with ``log(copies)`` added ([P, C] logits,
``model/loss.py``; tested equal in loss and gradients), and unique candidates. Prints the median
seconds per step and the ratios.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from anomaly_mode_step import step_arguments, timed_step, trainer_and_batches  # noqa: E402

from recbole_microlens.model import loss  # noqa: E402


def every_slot_candidates(targets, labelled, user_items):
    """The baseline: one candidate per filled slot, the label found against every slot."""
    filled = user_items > 0
    candidates = user_items[filled]
    slot_rows = torch.nonzero(filled, as_tuple=True)[0]
    rows = torch.nonzero(labelled, as_tuple=True)[0]
    own_slot = (slot_rows.unsqueeze(0) == rows.unsqueeze(1)) & (
        candidates.unsqueeze(0) == targets[labelled].unsqueeze(1))
    return candidates, own_slot.to(torch.uint8).argmax(dim=1), torch.ones_like(candidates)


# name -> (candidate function, the loss's mode that runs it)
VARIANTS = {
    "slots, every slot a logit": (every_slot_candidates, "unique"),
    "slots, counted distinct items": (loss.slot_candidates, "slots"),
    "unique": (loss.unique_candidates, "unique"),
}


def main():
    args = step_arguments(__doc__.split("\n")[0])
    trainer, batches = trainer_and_batches(args, padding_side="left")
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    timed_step(trainer, batches[0])  # warm-up
    for batch in batches[1:]:
        for name, (function, mode) in VARIANTS.items():
            # the baseline's slots carry no copies: run it through the loss's plain path
            loss.CANDIDATES[mode] = function
            trainer.model.inbatch_candidates = mode
            times[name].append(timed_step(trainer, batch))
            loss.CANDIDATES.update(unique=loss.unique_candidates, slots=loss.slot_candidates)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.dataset}: ID SASRec d={args.dim}, batch {args.batch_size}, left padding, "
          f"{torch.get_num_threads()} threads, median of {args.steps} steps each")
    for name, seconds in median.items():
        print(f"{name:32s} {seconds:.3f} s/step")
    every, counted = median["slots, every slot a logit"], median["slots, counted distinct items"]
    print(f"every slot / counted: {every / counted:.2f}x; "
          f"counted slots / unique: {counted / median['unique']:.2f}x")


if __name__ == "__main__":
    main()
