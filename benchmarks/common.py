"""What the benchmark scripts share: where they write, the one-off conversion of a raw release,
the ID-model runner (one model per process, a result reused only if trained alike) and the
RecBole data a script times its steps on.

Run from the repository root (see ``benchmarks/__init__.py``):

    python -m benchmarks.cf_baselines_50k --raw-dir DIR
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"  # converted data, result files, checkpoints (git-ignored)
DATASET = "microlens-50k"
SAMPLE = "microlens-sample"
METRICS = ["hit@10", "ndcg@10", "hit@20", "ndcg@20"]
HEADERS = ["HR@10", "NDCG@10", "HR@20", "NDCG@20"]  # the paper's names (one positive: Recall = HR)

# where things are read and written, how the run is shown or placed: not how it trains
NOT_TRAINING = {"data_path", "checkpoint_dir", "result_file", "device", "gpu_id", "use_gpu",
                "worker", "show_progress", "state", "run_id", "log_wandb", "wandb_project",
                "dataset_save_path", "dataloaders_save_path", "local_rank", "world_size",
                "nproc", "offset", "ip", "port", "single_spec"}


# --------------------------------------------------------------- processes and data ---
def module_command(script: str, *args: str) -> list[str]:
    """The command that runs ``benchmarks/<script>.py`` as a module: run from the repository
    root, it measures this checkout's code whether or not the package is also installed."""
    return [sys.executable, "-m", f"benchmarks.{script}", *args]


def run_module(script: str, *args: str) -> None:
    """Run a benchmark script (usually its own ``--_child`` mode) in a fresh process, so peak
    memory and timings are that run's own."""
    subprocess.run(module_command(script, *args), check=True, cwd=ROOT)


def convert_once(raw_dir: Path, dataset: str = DATASET) -> dict:
    """Convert the raw release into ``benchmarks/out/atomic_files`` unless a complete dataset
    folder is there already; returns its ``meta.json``."""
    from recbole_microlens.data.raw.convert import convert_dataset
    from recbole_microlens.data.raw.readers import detect_raw_files
    from recbole_microlens.data.stores.atomic import dataset_problem

    folder = OUT / "atomic_files" / dataset
    if dataset_problem(folder, dataset) is not None:  # absent, or incomplete
        convert_dataset(detect_raw_files(raw_dir), dataset, OUT / "atomic_files")
    return json.loads((folder / f"{dataset}.meta.json").read_text())


def prepare_dataset(dataset: str, raw_dir: Path) -> None:
    """Convert the raw release once; the embedded sample is generated on first use instead."""
    if dataset != SAMPLE:
        convert_once(raw_dir, dataset)


def prepared_data(config):
    """(train, valid, test) loaders of this project's dataset for ``config``, built as a run
    builds them (:func:`build_run`, seeded, without a model): the scripts that time single
    steps take their batches from here."""
    from recbole_microlens.quick_start.build import build_run

    return build_run(config, quiet=True, with_model=False).splits


# -------------------------------------------------------------------- result reuse ---
def resolved_config(model: str, dataset: str, config_files, settings: dict) -> dict:
    """The config a run would resolve to now, as the plain JSON its result file stores."""
    from recbole_microlens.config.configurator import MLConfig
    from recbole_microlens.evaluator.results import jsonable_config

    config = MLConfig(model, dataset, list(config_files or []) or None, dict(settings))
    return json.loads(json.dumps(jsonable_config(config)))


def differences(stored: dict, wanted: dict) -> list[str]:
    """The training keys whose values differ. A key the stored config lacks was added to the
    project after that run, as a switch whose default keeps the behaviour the run had: skipped.
    A stored key the current config lacks counts as a difference."""
    keys = set(stored) - NOT_TRAINING
    return sorted(key for key in keys if stored.get(key) != wanted.get(key))


def trained_alike(result_file: Path, model: str, dataset: str, config_files, settings: dict) -> bool:
    """True when ``result_file`` exists and was trained with the whole config this run would use
    (comparing only the keys a script passes would publish an old default's numbers under a new
    default's name)."""
    if not result_file.is_file():
        return False
    stored = json.loads(result_file.read_text()).get("config") or {}
    changed = differences(stored, resolved_config(model, dataset, config_files, settings))
    if changed:
        print(f"{result_file.name}: trained with other settings ({', '.join(changed[:6])}"
              f"{', ...' if len(changed) > 6 else ''}): not reused")
    return not changed


# ---------------------------------------------------------- the ID-model runner ---
def id_baseline_settings(args) -> dict:
    """What every ID-baseline run shares (CPU-feasible sizes, the same for all models)."""
    return {
        "data_path": str(OUT / "atomic_files"),
        "checkpoint_dir": str(OUT / "saved"),
        "epochs": args.epochs,
        "stopping_step": args.epochs,  # fixed epoch budget: comparable seconds per epoch
        "learning_rate": args.lr,
        "train_batch_size": args.batch_size,
        "eval_batch_size": 2048,
        "hidden_size": args.dim,
        "inner_size": 4 * args.dim,
        "embedding_size": args.dim,
        "show_progress": False,
        "seed": 2024,
    }


def shared_settings(args, dataset: str) -> dict:
    """The ID-baseline settings, plus the MLP size of the CF towers and how often to validate
    (``--eval-step``, default once after the last epoch: one full ranking by NFM or DeepFM costs
    minutes on a CPU, and every model then reports its final epoch)."""
    settings = {**id_baseline_settings(args), "mlp_hidden_size": [args.dim], "dataset": dataset,
                "eval_step": args.eval_step or args.epochs}
    if args.stopping_step:
        settings["stopping_step"] = args.stopping_step
    return settings


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the scripts that train through ``in_subprocess``."""
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k",
                        help="the folder holding the raw MicroLens files")
    parser.add_argument("--dataset", default="microlens-50k")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--eval-step", type=int, default=None,
                        help="validate every N epochs (default: only after the last one)")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--stopping-step", type=int, default=None,
                        help="early stopping after N validations without a better valid score "
                             "(default: the whole --epochs budget)")
    parser.add_argument("--rerun", action="store_true",
                        help="train again models whose result file has the same settings")


def reusable(result_file: Path, model: str, settings: dict) -> bool:
    """An earlier result trained with exactly the config these settings resolve to now."""
    settings = dict(settings)
    return trained_alike(result_file, model, settings.pop("dataset"), None, settings)


def run_model(model: str, settings: dict, result_file: Path) -> None:
    """Train one row; its run id is its result file's name, so a row stopped for any reason
    (a kill, the end of a session) continues from its last epoch when run again."""
    from recbole_microlens.quick_start import run_recbole_ml
    from recbole_microlens.trainer.resume import state_file_for

    settings = {**settings, "result_file": str(result_file), "run_id": result_file.stem}
    checkpoint_dir = ROOT / settings.get("checkpoint_dir", "saved")
    state = state_file_for(checkpoint_dir / f"{model}-{settings['run_id']}.pth")
    if state.is_file():
        print(f"{model}: resuming {result_file.stem} from {state}", flush=True)
    run_recbole_ml(model, settings.pop("dataset"), config_dict=settings,
                   resume=state if state.is_file() else None)


def in_subprocess(model: str, settings: dict, result_file: Path, rerun: bool = True) -> dict:
    """One model per process, so peak memory and timings are its own; with ``rerun`` False, a
    result file from the same settings is read instead."""
    if not rerun and reusable(result_file, model, settings):
        print(f"{model}: reusing {result_file}")
        return json.loads(result_file.read_text())
    run_module("common", model, json.dumps(settings), str(result_file))
    return json.loads(result_file.read_text())


def test_metrics(result: dict) -> list[float]:
    """A result file's test HR@10, NDCG@10, HR@20, NDCG@20."""
    test = {key.lower(): value for key, value in result["test"].items()}
    return [test[metric] for metric in METRICS]


test_metrics.__test__ = False  # a helper, not a test, if a test module imports it


if __name__ == "__main__":  # in_subprocess's child: MODEL SETTINGS_JSON RESULT_FILE
    model, settings, result = sys.argv[1:4]
    run_model(model, json.loads(settings), Path(result))
