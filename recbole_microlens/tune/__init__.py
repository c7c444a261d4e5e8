"""Hyper-parameter search with Ray Tune: ``run_tune(model, dataset, tune_config) -> TuneResult``.

Each grid point is one trial in its own Ray worker, on the CPUs and GPU ids Ray assigned to it,
with its own checkpoint folder and log inside its trial directory. Trials report valid NDCG@10
after every epoch (so ``--asha`` can stop poor ones early), select on the valid NDCG@10 of their
best epoch, and finish with a test evaluation of their own best checkpoint; the sweep chooses on
valid metrics only and reads the chosen trial's test metrics afterwards.

The search space is yaml (``properties/tune/*.yaml``); any config key can be an axis::

    search_space:
      learning_rate: [1.0e-4, 1.0e-3]        # a list is a grid
      embedding_size: [64, 128]              # the paper's embedding size, in each model's keys
      dropout_prob: {uniform: [0.1, 0.3]}    # or sampled: choice, uniform, loguniform, randint
      dilations: {grid_search: [[1, 2], [1, 4]]}   # a grid of list values
    optional_space: {train_batch_size: [...]}  # swept only when named in --tune_axes
    fixed: {epochs: 50}                      # settings every trial shares
    num_samples: 1                           # repeats of the grid (draws, for sampled axes)
    asha: {grace_period: 5}                  # ASHAScheduler options for --asha

One module per concern: ``space`` (the yaml and its axes), ``trial`` (one Ray worker),
``driver`` (Ray and the sweep), ``outputs`` (tables, yaml, heatmap); the command-line flags are
in :mod:`recbole_microlens.cli.tune`. Ray, torch, recbole and matplotlib are imported inside the
functions that use them, so the ``recbole-microlens`` command line stays fast.
"""
from recbole_microlens.tune.driver import DEFAULT_TUNE_DIR, TuneResult, resolve_setup, run_tune
from recbole_microlens.tune.space import (
    EMBEDDING_SIZE, SELECTION, TuneSpec, embedding_size_keys, load_tune_spec, model_settings,
    packaged_tune_configs, search_domain,
)
from recbole_microlens.tune.trial import pin_trial_to

__all__ = ["DEFAULT_TUNE_DIR", "EMBEDDING_SIZE", "SELECTION", "TuneResult", "TuneSpec",
           "embedding_size_keys", "load_tune_spec", "model_settings", "packaged_tune_configs",
           "pin_trial_to", "resolve_setup", "run_tune", "search_domain"]
