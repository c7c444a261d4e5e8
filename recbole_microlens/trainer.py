"""RecBole's Trainer with the official MicroLens evaluation and safe, weights-only checkpoints.

The trainer (not the models) owns how evaluation is run and what it costs: it computes every
item's vector once per evaluation, masks each user's history, and ranks the held-out item.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color
from tqdm import tqdm

from recbole_microlens import compat
from recbole_microlens.evaluation import RankCollector, mask_scores, metrics_from_ranks, target_ranks
from recbole_microlens.io import atomic_open


@contextmanager
def item_table_once(model):
    """During evaluation, every ``item_tower.all_items()`` returns one precomputed table."""
    tower = getattr(model, "item_tower", None)
    if tower is None:
        yield
        return
    table = tower.all_items().detach()
    original = tower.all_items
    tower.all_items = lambda: table
    try:
        yield
    finally:
        tower.all_items = original


class MLTrainer(Trainer):
    def __init__(self, config, model):
        super().__init__(config, model)
        self.epoch_seconds: list[float] = []
        self.valid_history: list[dict] = []

    # -- training -------------------------------------------------------------------------------
    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
        self.epoch_seconds.append(time.perf_counter() - start)
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress)
        self.valid_history.append(dict(result))
        return score, result

    # -- checkpoints (loadable with torch.load(weights_only=True)) --------------------------------
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "model": self.config["model"],
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        with atomic_open(path, "wb") as handle:
            torch.save(state, handle)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def resume_checkpoint(self, resume_file):
        checkpoint = compat.torch_load(resume_file, map_location=self.device)
        self.saved_model_file = str(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def load_weights(self, model_file=None):
        checkpoint = compat.torch_load(model_file or self.saved_model_file, map_location=self.device)
        self.model.load_state_dict(checkpoint["state_dict"])

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """Official protocol: full ranking, history masked, one held-out item per user."""
        if not eval_data:
            return None
        if load_best_model:
            self.load_weights(model_file)
        self.model.eval()
        dataset = eval_data._dataset
        sequences, holdout = dataset.user_sequences, dataset.eval_holdout
        uid_field = dataset.uid_field
        collector = RankCollector()
        batches = tqdm(eval_data, desc="Evaluate", ncols=100) if show_progress else eval_data
        with item_table_once(self.model):
            for interaction, _, target_rows, target_items in batches:
                interaction = interaction.to(self.device)
                scores = self.model.full_sort_predict(interaction).view(len(interaction), -1)
                mask_rows, mask_items = sequences.history_mask_indices(interaction[uid_field], holdout)
                target_rows, target_items = target_rows.to(self.device), target_items.to(self.device)
                mask_scores(scores, mask_rows.to(self.device), mask_items.to(self.device),
                            target_rows, target_items)
                collector.add(target_ranks(scores, target_rows, target_items))
        return metrics_from_ranks(collector.ranks, self.config["topk"], self.config["metrics"])
