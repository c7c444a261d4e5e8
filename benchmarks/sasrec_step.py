"""What the packed encoder and the mask-free loss save an ID SASRec training step.

    python benchmarks/sasrec_step.py --raw-dir ../shared/data/microlens-50k

Two changes, timed alone and together against the code before them (kept here as baselines):

* encoder: RecBole's ``TransformerEncoder`` over the whole [B, L] window, against
  ``model/packed_transformer.py``, which runs the position-wise layers on the filled positions
  only (about 4 of 10 on MicroLens-50k); tested equal at the filled positions;
* loss: the first in-batch loss compared every row's window with every candidate ([B, M, C]),
  gathered a [P, C] boolean mask and added the logQ and copy terms in separate passes;
  ``model/loss.py`` fuses the bias into the matmul (``addmm``) and writes -inf at the user's own
  items by index (P x M writes); tested equal to direct computations.

Same ID SASRec training steps (d=128, batch 512, SASRec's defaults: slot candidates, left padding,
MicroLens-50k windows), the four variants interleaved step by step; prints the median seconds
per step and each variant's speed-up over the baseline.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from anomaly_mode_step import step_arguments, timed_step, trainer_and_batches  # noqa: E402

from recbole_microlens.model import loss  # noqa: E402
from recbole_microlens.model.sequential_recommender import base, sasrec  # noqa: E402


def whole_window_encode(self, item_emb, item_seq, item_seq_len):
    """The baseline encoder: RecBole's TransformerEncoder over every position, padding included."""
    positions = torch.arange(item_seq.size(1), device=item_seq.device)
    hidden = self.dropout(self.layer_norm(item_emb + self.position_embedding(positions)))
    attention_mask = self.get_attention_mask(item_seq)
    return self.trm_encoder(hidden, attention_mask, output_all_encoded_layers=True)[-1]


def dense_mask_loss(hidden, targets, embed_items, log_popularity, user_items, candidates="unique"):
    """The baseline loss: a [B, C] membership test, gathered to a [P, C] mask, bias added apart."""
    labelled = targets > 0
    candidate_ids, labels, copies = loss.CANDIDATES[candidates](targets, labelled, user_items)
    positions = torch.arange(len(labels), device=labels.device)
    logits = hidden[labelled] @ embed_items(candidate_ids).T - log_popularity[candidate_ids]
    if candidates == "slots":
        log_copies = copies.to(logits.dtype).log()
        logits = (logits + log_copies).index_put((positions, labels), -log_copies[labels],
                                                 accumulate=True)
    row_of_position = torch.nonzero(labelled, as_tuple=True)[0]
    seen = (user_items.unsqueeze(2) == candidate_ids.view(1, 1, -1)).any(dim=1)  # [B, C]
    if candidates == "slots" and not seen[row_of_position, labels].all():
        raise ValueError("a label is missing from its own row of user_items")
    mask = seen[row_of_position]
    mask[positions, labels] = False
    return F.cross_entropy(logits.masked_fill(mask, float("-inf")), labels)


ENCODERS = {"whole window": whole_window_encode, "packed": sasrec.SASRec.encode}
LOSSES = {"dense mask": dense_mask_loss, "fused": loss.inbatch_logq_loss}
VARIANTS = [(encoder, loss_name) for encoder in ENCODERS for loss_name in LOSSES]


def use(encoder: str, loss_name: str):
    sasrec.SASRec.encode = ENCODERS[encoder]
    base.inbatch_logq_loss = LOSSES[loss_name]


def main():
    args = step_arguments(__doc__.split("\n")[0])
    trainer, batches = trainer_and_batches(args)
    model = trainer.model
    times: dict[tuple, list[float]] = {variant: [] for variant in VARIANTS}
    for variant in VARIANTS:  # warm-up
        use(*variant)
        timed_step(trainer, batches[0])
    for batch in batches[1:]:
        for variant in VARIANTS:
            use(*variant)
            times[variant].append(timed_step(trainer, batch))
    use("packed", "fused")
    filled = float(torch.tensor([(batch[model.ITEM_SEQ] > 0).float().mean().item()
                                 for batch in batches]).mean())
    print(f"{args.dataset}: ID SASRec d={args.dim}, batch {args.batch_size}, "
          f"{model.inbatch_candidates} candidates, {model.padding_side} padding, "
          f"{torch.get_num_threads()} threads, {filled:.0%} of positions filled, "
          f"median of {args.steps} steps each")
    baseline = statistics.median(times[VARIANTS[0]])
    print(f"{'encoder':14s} {'loss':12s} {'s/step':>8s} {'speed-up':>9s}")
    for (encoder, loss_name), values in times.items():
        seconds = statistics.median(values)
        print(f"{encoder:14s} {loss_name:12s} {seconds:8.3f} {baseline / seconds:8.2f}x")


if __name__ == "__main__":
    main()
