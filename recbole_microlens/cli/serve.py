"""``recbole-microlens evaluate``, ``recommend`` and ``export-embeddings``: a checkpoint in;
metrics, TSV or .npy out.

The ML stack (torch, RecBole) is imported when a command runs, not when the parser is built:
``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from recbole_microlens.errors import ConfigError
from recbole_microlens.io import require_file_path


#: ``--user-vectors`` given without a file: named after the items file
USERS_DEFAULT = Path("<items file>.users.npy")


def add_commands(commands) -> None:
    _add_evaluate(commands)
    _add_recommend(commands)
    _add_export_embeddings(commands)


def _checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path, metavar="PATH",
                        help="a .pth written by run_recbole_ml.py (saved/<Model>-*.pth)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda or cuda:N (RecBole's use_gpu / gpu_id; default: cpu)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the check that the atomic files are those the model trained on")
    parser.add_argument("--data-path", type=Path, metavar="DIR",
                        help="root of converted datasets, when the dataset has moved since "
                             "training (default: where it was)")
    parser.add_argument("--verbose", action="store_true",
                        help="log the rebuilt run's configuration and dataset (stderr)")


def _add_evaluate(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="a trained checkpoint's valid and test metrics, re-derived from the file",
        description="Rebuild the run a checkpoint was trained in (its dataset, splits and "
                    "protocol, checked against the atomic files' checksums) and evaluate its "
                    "weights: the numbers the training run reported, reproduced from the file "
                    "alone. A content tower reads the run's trunk cache as training did; "
                    "--live-trunk computes the frozen trunk in full precision instead, to see "
                    "what the cache's rounding moves.")
    _checkpoint_arguments(parser)
    parser.add_argument("--splits", nargs="+", choices=("valid", "test"), default=["valid", "test"],
                        help="which splits (default: both)")
    parser.add_argument("--live-trunk", action="store_true",
                        help="no trunk cache: run the frozen encoder blocks live, in fp32")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the metrics, with the checkpoint's sha256 (atomically)")
    parser.set_defaults(run=run_evaluate)


def _add_recommend(commands) -> None:
    parser = commands.add_parser(
        "recommend", help="top-k items per user from a trained checkpoint (TSV)",
        description="Rank every item for each user with a trained model, mask the items the user "
                    "already interacted with, and write TSV `user_id rank item_id score` with the "
                    "dataset's own tokens. With --new-items DIR a content model (item_tower: "
                    "encoder) also embeds the items of DIR that are not in the dataset (videos/, "
                    "covers/ or titles.csv) and ranks them with the catalogue (cold start); a "
                    "fifth column, source, says catalogue, new, or new-fallback (a new item whose "
                    "media could not be read, ranked from a fallback input). A user listed twice "
                    "is served once.")
    _checkpoint_arguments(parser)
    users = parser.add_mutually_exclusive_group(required=True)
    users.add_argument("--users", nargs="+", metavar="U", help="user tokens")
    users.add_argument("--users-file", type=Path, metavar="F", help="one user token per line")
    users.add_argument("--all-users", action="store_true", help="every user of the dataset")
    parser.add_argument("--topk", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--out", type=Path, metavar="FILE", help="TSV file (default: stdout)")
    parser.add_argument("--batch-size", type=int, default=2048, help="users per matrix product")
    parser.add_argument("--new-items", type=Path, metavar="DIR",
                        help="cold start: a folder of items not in the dataset")
    parser.add_argument("--candidates", choices=("all", "new"), default="all",
                        help="with --new-items: rank catalogue and new items (all) or only the "
                             "new ones (new)")
    parser.set_defaults(run=run_recommend)


def device_settings(device: str) -> dict:
    """``--device`` as RecBole's own keys (RecBole derives ``device`` from them); a GPU that is
    not there is an error, not a silent run on CPU."""
    if device == "cpu":
        return {"use_gpu": False}
    if device != "cuda" and not device.startswith("cuda:"):
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    index = device.partition(":")[2] or "0"
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not index.isdigit() or int(index) >= visible:
        raise ConfigError(f"--device {device}: {visible} CUDA devices are visible here"
                          + ("" if index.isdigit() else f" ({index!r} is not a device number)"))
    return {"use_gpu": True, "gpu_id": index}


def load_checkpoint_run(args: argparse.Namespace, **overrides):
    """``load_data_and_model`` with the command's device, data path, checks and verbosity."""
    from recbole_microlens.quick_start.reload import load_data_and_model

    return load_data_and_model(args.checkpoint, {**device_settings(args.device), **overrides},
                               verify=not args.no_verify, data_path=args.data_path,
                               quiet=not args.verbose)


def run_evaluate(args: argparse.Namespace) -> int:
    from recbole_microlens.evaluator.ranking import with_breakdowns
    from recbole_microlens.evaluator.results import metrics_table
    from recbole_microlens.io import sha256_file, write_json_atomic
    from recbole_microlens.trainer.trainer import MLTrainer

    if args.json is not None:
        require_file_path(args.json, "--json")
    started = time.perf_counter()
    config, model, _, _, valid_data, test_data = load_checkpoint_run(
        args, **({"trunk_cache": False} if args.live_trunk else {}))
    trainer = MLTrainer(config, model)
    splits = {"valid": valid_data, "test": test_data}
    metrics = {split: with_breakdowns(trainer.evaluate(splits[split], load_best_model=False))
               for split in args.splits}
    print(f"\n{config['model']} on {config['dataset']} from {args.checkpoint}"
          f"{' (live trunk)' if args.live_trunk else ''}\n{metrics_table(metrics)}\n")
    if args.json is not None:
        write_json_atomic(args.json, {"checkpoint": str(args.checkpoint),
                                      "checkpoint_sha256": sha256_file(args.checkpoint),
                                      "live_trunk": args.live_trunk, **metrics})
    print(f"evaluated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def run_recommend(args: argparse.Namespace) -> int:
    from recbole_microlens.serve import inference

    started = time.perf_counter()
    if args.out is not None:
        require_file_path(args.out, "--out")
    _, model, dataset, *_ = load_checkpoint_run(args)
    if args.all_users:
        users = list(range(1, dataset.user_num))
    else:
        named = (inference.read_users_file(args.users_file) if args.users_file
                 else [(token, "--users") for token in args.users])
        users = inference.user_ids(dataset, named)
    new_items = (inference.embed_new_items(model, dataset, args.new_items)
                 if args.new_items else None)
    rows = inference.recommend(model, dataset, _as_array(users), args.topk, args.batch_size,
                               new_items, args.candidates)
    inference.write_recommendations(rows, args.out, sources=new_items is not None)
    if args.out:
        print(f"wrote {len(rows)} rows to {args.out} in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
    return 0


def _as_array(users):
    import numpy as np

    return np.asarray(users, dtype=np.int64)


def _add_export_embeddings(commands) -> None:
    parser = commands.add_parser(
        "export-embeddings", help="a trained model's item vectors (.npy) with their tokens",
        description="Write the trained item tower's vector of every item as a float32 .npy (row i "
                    "= the i-th token listed in the .json written beside it).")
    _checkpoint_arguments(parser)
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="output .npy (default: <checkpoint stem>.items.npy beside it)")
    parser.add_argument("--user-vectors", type=Path, nargs="?", const=USERS_DEFAULT,
                        metavar="FILE",
                        help="also write every user's query vector (a sequential model's state "
                             "after the user's history; its dot product with the item vectors "
                             "is recommend's score) to FILE (default: the items file's name "
                             "with .users.npy) and its tokens to FILE's .json")
    parser.set_defaults(run=run_export_embeddings)


def run_export_embeddings(args: argparse.Namespace) -> int:
    from recbole_microlens.serve.inference import export_embeddings

    out = args.out or args.checkpoint.with_name(args.checkpoint.stem + ".items.npy")
    users_out = args.user_vectors
    if users_out == USERS_DEFAULT:
        users_out = out.with_name(out.stem.removesuffix(".items") + ".users.npy")
    require_file_path(out, "--out")
    if users_out is not None:
        require_file_path(Path(users_out), "--user-vectors")
    _, model, dataset, *_ = load_checkpoint_run(args)
    meta = export_embeddings(model, dataset, out, {"checkpoint": str(args.checkpoint.resolve())},
                             users_out)
    print(f"wrote {out} {tuple(meta['shape'])} and {out.with_suffix('.json')}")
    if users_out is not None:
        print(f"wrote {users_out} {tuple(meta['users']['shape'])} and "
              f"{users_out.with_suffix('.json')}")
    return 0
