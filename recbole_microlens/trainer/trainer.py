"""RecBole's Trainer with the official MicroLens evaluation and safe, weights-only checkpoints.

The trainer (not the models) owns how evaluation is run and what it costs: it computes every
item's vector once per evaluation, masks each user's history, and ranks the held-out item.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from recbole.trainer import Trainer
from torch.nn.parallel import DistributedDataParallel
from recbole.utils import set_color
from tqdm import tqdm

from recbole_microlens.trainer.checkpoint import run_record
from recbole_microlens.model.tower_cache import (
    attach_run_trunk_cache,
    item_id_fields,
    unique_items_table,
)
from recbole_microlens.data.recbole.dataset import HOLDOUT_BY_PHASE
from recbole_microlens.evaluator.ranking import (
    EvalResult,
    MLEvaluator,
    RankCollector,
    RankingReport,
    check_finite,
    mask_scores,
    target_ranks,
    top_items,
    with_breakdowns,
)
from recbole_microlens.io import load_trainer_checkpoint
from recbole_microlens.errors import CheckpointError, NonFiniteError
from recbole_microlens.io import atomic_open
from recbole_microlens.model.layers import content_tower, item_table_once, runtime_options
from recbole_microlens.model.options import choose
from recbole_microlens.trainer.resume import (
    restore_training_state,
    save_training_state,
    state_file_for,
    training_state,
)
from recbole_microlens.precision import bf16_safe_kernels

# Which parameters get the encoder's learning rate and weight decay.
ENCODER_GROUPS = ("encoder", "encoder+projection")


class MLTrainer(Trainer):
    def __init__(self, config, model):
        self.tower = content_tower(model)
        distributed = not config["single_spec"]
        config["single_spec"] = True  # RecBole's DDP wrapper assumes CUDA; ours is built below
        super().__init__(config, model)
        config["single_spec"] = not distributed
        # RecBole names it by the time to the second: concurrent runs would share one file
        self.saved_model_file = str(Path(self.checkpoint_dir) / f"{config['model']}-{config['run_id']}.pth")
        if distributed:
            self._wrap_distributed()
            self.saved_model_file = self._rank0_value(self.saved_model_file)
        self.epoch_seconds: list[float] = []
        self.trunk_cache_seconds = 0.0
        self.trunk_cache_prepared = False  # the run's trunk cache installed (or refused)
        self.epoch_items_encoded: list[int] = []
        self.valid_history: list[dict] = []
        self.valid_seconds: list[float] = []
        self.item_fields = item_id_fields(config)
        self.unique_items = bool(self.tower is not None and config["unique_item_encoding"] is not False)
        self.bf16 = bool(config["bf16"])
        self.state_file = state_file_for(self.saved_model_file)
        self.pending_state = None  # a training state to continue from (resume.py)
        self.save_state = False
        self.train_generator = None
        self.current_epoch = 0
        if self.tower is not None:
            self.tower.configure_runtime(**runtime_options(config))

    @staticmethod
    def _rank0_value(value):
        """Every process uses rank 0's value (e.g. the checkpoint name, which embeds a time)."""
        holder = [value]
        torch.distributed.broadcast_object_list(holder, src=0)
        return holder[0]

    def _wrap_distributed(self) -> None:
        """DDP as RecBole sets it up, on GPUs (one per process, SyncBatchNorm) or on CPU (gloo)."""
        if self.device.type == "cuda":
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            device_ids = [self.config["local_rank"]]
        else:
            device_ids = None
        self.distributed_model = DistributedDataParallel(self.model, device_ids=device_ids)

    def _build_optimizer(self, **kwargs):
        """A separate learning rate and weight decay for a content encoder (paper: 1e-4, text 5e-5)."""
        if self.tower is None or "params" in kwargs:
            return super()._build_optimizer(**kwargs)
        encoder_modules = [self.tower.encoder]
        if choose(self.config, "encoder_group", ENCODER_GROUPS) == "encoder+projection":
            encoder_modules.append(self.tower.projection)  # the reference code's grouping
        encoder_trainable = [p for module in encoder_modules for p in module.parameters()
                             if p.requires_grad]
        encoder_params = {id(p) for p in encoder_trainable}
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in trainable if id(p) not in encoder_params]}]
        if encoder_trainable:
            groups.append({
                "params": encoder_trainable,
                "lr": self.config["encoder_learning_rate"] or self.learning_rate,
                "weight_decay": self.config["encoder_weight_decay"]
                if self.config["encoder_weight_decay"] is not None else self.weight_decay,
            })
        return super()._build_optimizer(params=groups, **kwargs)

    # -- training -------------------------------------------------------------------------------
    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        """RecBole's fit, resumable: the state is saved before every epoch and once at the end
        (single process, ``saved``), and a pending state (:meth:`continue_from`) is restored
        first, so a resumed run continues exactly where the interrupted one was."""
        self._prepare_trunk_cache(show_progress)
        self.train_generator = getattr(train_data, "generator", None)
        self.save_state = saved and self.config["single_spec"]
        if self.pending_state is not None:
            finished = self.pending_state["finished"]
            restore_training_state(self, self.pending_state, self.train_generator)
            self.pending_state = None
            self.logger.info(f"Resumed {self.state_file} at epoch {self.start_epoch}")
            if finished:  # training had ended; only the test was left
                return self.best_valid_score, self.best_valid_result
        best = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        self._save_training_state(next_epoch=len(self.epoch_seconds), finished=True)
        return best

    def continue_from(self, state: dict) -> None:
        """Continue the run ``state`` (``resume.read_training_state``) was saved from."""
        self.pending_state = state

    def _save_training_state(self, next_epoch: int, finished: bool) -> None:
        if self.save_state:
            save_training_state(self.state_file, training_state(
                self, next_epoch, finished, self.train_generator))

    def _prepare_trunk_cache(self, show_progress: bool) -> None:
        """``finetune: top``: compute the frozen trunk's output per item once, train the top only."""
        self.trunk_cache_prepared = True
        if self.tower is None:
            return
        started = time.perf_counter()
        why_not = attach_run_trunk_cache(self.tower, self.config, progress=show_progress)
        if why_not and self.config["trunk_cache"]:
            self.logger.info(why_not)
        self.trunk_cache_seconds = time.perf_counter() - started

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._save_training_state(next_epoch=epoch_idx, finished=False)
        self.current_epoch = epoch_idx
        start = time.perf_counter()
        encoded_before = self.tower.items_encoded if self.tower is not None else 0
        with bf16_safe_kernels(self.device, self.bf16):  # forward and backward
            loss = super()._train_epoch(train_data, epoch_idx, loss_func or self._step_loss,
                                        show_progress)
        self.epoch_seconds.append(time.perf_counter() - start)
        if self.tower is not None:
            self.epoch_items_encoded.append(self.tower.items_encoded - encoded_before)
        return loss

    def _step_loss(self, interaction):
        """One step's loss; the trainer decides how items are encoded and in which precision."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if not self.unique_items:
                return self.model.calculate_loss(interaction)
            with self.tower.use_table(unique_items_table(self.tower, interaction, self.item_fields)):
                return self.model.calculate_loss(interaction)

    def _check_nan(self, loss):
        """RecBole's check, as a user error with what to try (a diverged run is not a bug)."""
        if torch.isnan(loss):
            raise NonFiniteError("training loss is nan: lower learning_rate (or "
                                 "encoder_learning_rate), or train without bf16")

    def _valid_epoch(self, valid_data, show_progress=False):
        started = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress)
        self.valid_seconds.append(time.perf_counter() - started)
        self.valid_history.append(with_breakdowns(result))
        return score, result

    # -- checkpoints (loadable with torch.load(weights_only=True); see checkpoint.py) ------------
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            **self.run_record_once(),
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

    def run_record_once(self) -> dict:
        """Plain data every checkpoint carries (config, data checksums), computed once."""
        if getattr(self, "run_record", None) is None:
            self.run_record = run_record(self.config)
        return self.run_record

    def resume_checkpoint(self, resume_file):
        checkpoint = load_trainer_checkpoint(resume_file, self.device,
                                             ("state_dict", "epoch", "cur_step", "optimizer"))
        self.saved_model_file = str(resume_file)
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def load_weights(self, model_file=None):
        if not self.config["single_spec"]:
            torch.distributed.barrier()  # rank 0 has finished writing the checkpoint
        path = model_file or self.saved_model_file
        checkpoint = load_trainer_checkpoint(path, self.device)
        try:
            self.model.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:  # another model's, or other sizes
            raise CheckpointError(f"{path} does not fit {self.config['model']}: "
                                  f"{' '.join(str(error).split())[:300]}") from error

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """Official protocol: full ranking, history masked, one held-out item per user, ties
        against the target; RecBole's metrics (evaluation.py)."""
        if not eval_data:
            return None
        if load_best_model:
            self.load_weights(model_file)
        if not self.trunk_cache_prepared:  # a reloaded run scores as its training run evaluated
            self._prepare_trunk_cache(show_progress)
        self.model.eval()
        dataset = eval_data._dataset
        holdout = dataset.eval_holdout
        split = "test" if holdout == HOLDOUT_BY_PHASE["test"] else "valid"
        collector = self._rank_users(eval_data, split, show_progress)
        report = RankingReport(self.config, collector, dataset.item_num, dataset.train_item_counts())
        result = EvalResult(report.metrics(), self._breakdowns(report, split))
        self.wandblogger.log_eval_metrics(result, head="eval")  # as stock RecBole's evaluate
        return result

    def _breakdowns(self, report: RankingReport, split: str) -> dict:
        """What a split reports beside its metrics (kept out of RecBole's flat result)."""
        breakdowns = {}
        if self.config["popularity_groups"] and split == "test":
            # a report on the final test only: validation selects on the overall metric
            breakdowns["by_popularity"] = report.by_popularity(self.config["popularity_groups"])
            breakdowns["unseen_targets"] = report.unseen_targets()
        fallback = self._fallback_items()
        if fallback is not None:
            breakdowns["fallback_targets"], breakdowns["real_content"] = report.over_items(fallback)
        return breakdowns

    def _rank_users(self, eval_data, split: str, show_progress: bool) -> RankCollector:
        dataset = eval_data._dataset
        sequences, holdout, uid_field = dataset.user_sequences, dataset.eval_holdout, dataset.uid_field
        evaluator = MLEvaluator(self.config)
        list_length = max(self.config["topk"]) if evaluator.needs_items() else 0
        collector = RankCollector()
        batches = tqdm(eval_data, desc=f"Evaluate {split}", ncols=100) if show_progress else eval_data
        with item_table_once(self.model):
            for interaction, _, target_rows, target_items in batches:
                interaction = interaction.to(self.device)
                scores = self.model.full_sort_predict(interaction).view(len(interaction), -1)
                check_finite(scores, self.config["model"], split)
                mask_rows, mask_items = sequences.history_mask_indices(interaction[uid_field], holdout)
                target_rows, target_items = target_rows.to(self.device), target_items.to(self.device)
                mask_scores(scores, mask_rows.to(self.device), mask_items.to(self.device),
                            target_rows, target_items)
                served = top_items(scores, list_length, target_rows) if list_length else None
                collector.add(target_ranks(scores, target_rows, target_items), target_items, served)
        if not self.config["single_spec"]:
            collector.gather()
        return collector

    def _fallback_items(self):
        """Per item id, whether a content tower sees a fallback instead of the item's media."""
        inputs = getattr(self.tower, "inputs", None)
        return inputs.fallback_items() if hasattr(inputs, "fallback_items") else None
