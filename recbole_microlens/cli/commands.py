"""``recbole-microlens`` command line: one subparser and one small function per subcommand."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from recbole_microlens.data.raw.convert import convert_dataset
from recbole_microlens.data.raw.readers import detect_raw_files
from recbole_microlens.errors import MissingInputError, exit_cleanly
from recbole_microlens.paths import overall_default
from recbole_microlens.cli.serve import add_commands as add_inference_commands
from recbole_microlens.cli.tune import add_tune_arguments, run_tune_from_args, tune_exit_status

# ``--pairs-tsv`` -> RawFiles.pairs_tsv, and so on: explicit files that win over detection.
FILE_OPTIONS = ("pairs_tsv", "pairs_csv", "titles", "title_en", "likes_views", "tags", "comments",
                "users")


def main(argv: list[str] | None = None) -> int:
    """The one error boundary of every subcommand: a user error prints one line and returns 2,
    anything else is a bug and keeps its traceback; ``--debug`` (anywhere) shows every traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    if overrides and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(overrides)}")
    args.overrides = overrides
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with exit_cleanly(debug):
            return args.run(args)
    except SystemExit as exit_:
        return exit_.code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recbole-microlens",
                                     description="MicroLens benchmark tools for RecBole. "
                                                 "--debug (anywhere) shows tracebacks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_convert(commands)
    _add_prepare_media(commands)
    _add_encoders(commands)
    _add_fetch_weights(commands)
    _add_tune(commands)
    _add_sweep(commands)
    _add_report(commands)
    _add_extract_features(commands)
    add_inference_commands(commands)  # recommend, export-embeddings
    return parser


def _add_convert(commands) -> None:
    parser = commands.add_parser(
        "convert", help="raw MicroLens files -> RecBole atomic files",
        description="Convert a raw MicroLens release into RecBole atomic files under the official "
                    "protocol (drop users with < 5 interactions, keep each user's last 13).")
    parser.add_argument("--raw-dir", required=True, type=Path, help="folder of the raw release")
    parser.add_argument("--dataset", required=True, help="dataset name (folder and file stem)")
    parser.add_argument("--out", type=Path, default=Path("atomic_files"),
                        help="output root (default: atomic_files)")
    for field in FILE_OPTIONS:
        parser.add_argument(f"--{field.replace('_', '-')}", type=Path, metavar="FILE",
                            help=f"{field.replace('_', ' ')} file, instead of the detected one")
    parser.add_argument("--min-user-inter", type=int, default=5,
                        help="drop users with fewer interactions (default 5)")
    parser.add_argument("--keep-last", type=int, default=13,
                        help="keep each user's last N interactions (default 13)")
    parser.add_argument("--num-pop-bins", type=int, default=10,
                        help="popularity bins counted on the training part (default 10)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip and count malformed lines instead of failing")
    parser.add_argument("--warm", type=int, default=0, metavar="N",
                        help="Warm-N: first remove items with fewer than N interactions "
                             "(paper: 20, 50, 200; default 0, none); name the dataset per level")
    parser.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    overrides = {field: getattr(args, field) for field in FILE_OPTIONS}
    meta = convert_dataset(detect_raw_files(args.raw_dir, **overrides), args.dataset, args.out,
                           min_user_inter=args.min_user_inter, keep_last=args.keep_last,
                           num_pop_bins=args.num_pop_bins, skip_bad=args.skip_bad, warm=args.warm)
    print(statistics_table(meta))
    if args.warm:
        print(f"warm-{args.warm}: {meta['warm']}")
    print(f"wrote {args.out / args.dataset} in {time.perf_counter() - started:.1f} s")
    return 0


def _add_prepare_media(commands) -> None:
    parser = commands.add_parser(
        "prepare-media", help="decode videos, covers and titles into per-dataset stores",
        description="Build the uint8 frame and cover stores and the tokenised title store of a "
                    "converted dataset (training builds them on first use too).")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-path", type=Path, default=Path("atomic_files"),
                        help="root of converted datasets (default: atomic_files)")
    parser.add_argument("--raw-dir", type=Path, help="raw folder with videos/ and covers/ "
                        "(default: <data-path>/<dataset>/raw)")
    parser.add_argument("--frames", type=int, default=5, help="frames per clip (default 5)")
    parser.add_argument("--interval", type=int, default=overall_default("frame_interval"),
                        help="frame interval (default: frame_interval of overall.yaml, %(default)s)")
    parser.add_argument("--size", type=int, default=224, help="frame and cover size (default 224)")
    parser.add_argument("--tokenizer", type=Path, help="local tokenizer folder for titles "
                        "(default: a WordPiece trained on the titles)")
    parser.add_argument("--title-max-length", type=int, default=overall_default("title_max_length"),
                        help="tokens per title (default: title_max_length of overall.yaml, %(default)s)")
    parser.add_argument("--workers", type=int, default=overall_default("media_workers"),
                        help="decoding processes (default: media_workers of overall.yaml, %(default)s)")
    parser.set_defaults(run=run_prepare_media)


def run_prepare_media(args: argparse.Namespace) -> int:
    from recbole_microlens.data.stores.media import FrameSpec, prepare_media
    from recbole_microlens.data.stores.titles import prepare_titles

    dataset_dir = args.data_path / args.dataset
    if not (dataset_dir / f"{args.dataset}.inter").is_file():
        raise MissingInputError(f"no atomic files in {dataset_dir}; run `recbole-microlens "
                                "convert` first")
    spec = FrameSpec(num_frames=args.frames, interval=args.interval, size=args.size)
    reports = prepare_media(dataset_dir, args.raw_dir or dataset_dir / "raw", frames=spec,
                            covers_size=args.size, workers=args.workers)
    for kind, report in reports.items():
        print(f"{kind:<7} {report.folder}: {report.counts} ({report.seconds:.1f} s)")
    if (dataset_dir / f"{args.dataset}.titles.csv").is_file():
        print(f"titles  {prepare_titles(dataset_dir, args.tokenizer, max_length=args.title_max_length)}")
    return 0


def _add_encoders(commands) -> None:
    parser = commands.add_parser(
        "encoders", help="list the item encoders, their pre-trained weights and cache state",
        description="Each encoder: modality, upstream weights (source, file or hub id, size), "
                    "whether they are cached here, and what it is.")
    parser.add_argument("--modality", choices=("video", "image", "text"))
    parser.set_defaults(run=run_encoders)


def run_encoders(args: argparse.Namespace) -> int:
    from recbole_microlens.encoders import ENCODERS, list_encoders
    from recbole_microlens.encoders.weights import is_cached

    print(f"{'name':<15} {'kind':<6} {'weights':<50} {'MB':>5}  {'cached':<6}  description")
    for name in list_encoders(args.modality):
        spec, weights = ENCODERS[name], ENCODERS[name].weights
        source = f"{weights.kind}: {weights.name}" if weights else "none"
        size = f"{weights.size_mb:.0f}" if weights else "-"
        cached = ("yes" if is_cached(weights) else "no") if weights else "-"
        print(f"{name:<15} {spec.modality:<6} {source:<50} {size:>5}  {cached:<6}  "
              f"{spec.description}")
    return 0


def _add_fetch_weights(commands) -> None:
    parser = commands.add_parser(
        "fetch-weights", help="fill the weights caches ahead of time (clusters without internet)",
        description="Download each encoder's pre-trained weights into the cache training reads "
                    "(torch.hub's $TORCH_HOME/hub/checkpoints, or the model hub's cache under "
                    "HF_HOME), or with --from DIR copy files downloaded elsewhere into it.")
    parser.add_argument("encoders", nargs="+", metavar="NAME",
                        help="names from `recbole-microlens encoders`, hub ids (ORG/NAME), or 'all'")
    parser.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                        help="import instead of downloading: a folder holding the upstream files "
                             "(e.g. X3D_XS.pyth) or hub cache folders (models--ORG--NAME)")
    parser.set_defaults(run=run_fetch_weights)


def run_fetch_weights(args: argparse.Namespace) -> int:
    from recbole_microlens.encoders import ENCODERS, encoder_spec
    from recbole_microlens.encoders.weights import HUB_ID, fill_cache, named_hub_id

    names = list(ENCODERS) if args.encoders == ["all"] else args.encoders
    for name in names:
        source = (named_hub_id(name) if name not in ENCODERS and HUB_ID.match(name)
                  else encoder_spec(name).weights)
        print(f"{name:<15} {fill_cache(name, source, args.from_dir)}")
    return 0


def _add_tune(commands) -> None:
    parser = commands.add_parser(
        "tune", help="hyper-parameter search with Ray Tune",
        description="Sweep a tune yaml (properties/tune/) with one Ray trial per grid point; "
                    "choose on valid NDCG@10, then read the chosen trial's test metrics.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--config-files", nargs="+", type=Path, metavar="FILE",
                        help="yaml files every trial reads")
    add_tune_arguments(parser)
    parser.set_defaults(run=run_tune_command)


def run_tune_command(args: argparse.Namespace) -> int:
    """Exit 0 when a trial was chosen, 1 when none completed, 2 when the sweep cannot start."""
    return tune_exit_status(run_tune_from_args(args, config_files=args.config_files))


def statistics_table(meta: dict) -> str:
    """Raw vs protocol statistics, then every skipped or repaired row count."""
    raw, kept = meta["statistics"]["raw"], meta["statistics"]["protocol"]
    rows = [("", "raw", "protocol")]
    rows += [(key, f"{raw[key]:,}", f"{kept[key]:,}") for key in ("users", "items", "interactions")]
    rows.append(("training interactions", "", f"{kept['training_interactions']:,}"))
    rows += [(f"sequence length {key}", f"{raw['sequence_length'][key]:g}",
              f"{kept['sequence_length'][key]:g}") for key in ("min", "median", "mean", "max")]
    width = max(len(label) for label, _, _ in rows)
    lines = [f"{label:<{width}}  {before:>12}  {after:>12}" for label, before, after in rows]
    for source, counts in meta["row_counts"].items():
        lines += [f"{source}: {reason} = {count:,}" for reason, count in counts.items()]
    check = meta["pairs_cross_check"]
    if check and not check["agree"]:
        lines.append(f"WARNING pairs tsv and csv disagree: {check}")
    return "\n".join(lines)


def _add_extract_features(commands) -> None:
    parser = commands.add_parser(
        "extract-features", help="frozen encoder -> one feature row per item (VIDRec inputs)",
        description="Run a frozen encoder over every item's frames, cover or title and write a "
                    ".npy matrix whose row i is the i-th item token of <dataset>.item, with a JSON "
                    "beside it (encoder, checkpoint sha256, input, row tokens). Resumable: a rerun "
                    "computes only the missing rows. Models read it with --features_file.")
    parser.add_argument("--dataset", required=True, help="dataset name (folder and file stem)")
    parser.add_argument("--data-path", type=Path, default=Path("atomic_files"),
                        help="root of converted datasets (default: atomic_files)")
    parser.add_argument("--raw-dir", type=Path,
                        help="raw release with videos/ and covers/ (default: <dataset folder>/raw)")
    parser.add_argument("--encoder", default="videomae-b",
                        help="registered encoder (default: videomae-b, the paper's VIDRec encoder)")
    parser.add_argument("--encoder-checkpoint", default="pretrained", metavar="WEIGHTS",
                        help="pretrained (default: the encoder's upstream weights, from or into "
                             "their cache), random, a local file or folder, a hub id or a URL")
    parser.add_argument("--tokenizer-path", type=Path, metavar="DIR",
                        help="text encoders: tokenizer folder (default: the checkpoint folder)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: the encoder's)")
    parser.add_argument("--frame-interval", type=int, default=overall_default("frame_interval"),
                        help="frame interval (default: frame_interval of overall.yaml, %(default)s)")
    parser.add_argument("--size", type=int,
                        help="frame/cover side in pixels (default: the encoder's)")
    parser.add_argument("--batch-size", type=int, default=64, help="items per forward (default 64)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--out", type=Path,
                        help="output .npy (default: <dataset folder>/features/<encoder>.npy)")
    parser.set_defaults(run=run_extract_features)


def run_extract_features(args: argparse.Namespace) -> int:
    from recbole_microlens.encoders.extract import extract_features

    started = time.perf_counter()
    overrides = {key: value for key, value in (("frames", args.frames), ("size", args.size))
                 if value is not None}
    report = extract_features(args.data_path, args.dataset, args.encoder,
                              checkpoint=args.encoder_checkpoint, raw_dir=args.raw_dir,
                              out=args.out, batch_size=args.batch_size, overrides=overrides,
                              frame_interval=args.frame_interval,
                              tokenizer_path=args.tokenizer_path, device=args.device)
    print(f"wrote {report.path} ({report.rows} rows, {report.rows_computed} computed now) "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


def _add_sweep(commands) -> None:
    parser = commands.add_parser(
        "sweep", help="train a backbone with each item encoder x fine-tuning mode",
        allow_abbrev=False,  # --key=value overrides must never be read as a prefix of ours
        description="Train MODEL with every encoder in every fine-tuning mode, one after the "
                    "other, each writing its result JSON to --out; then print them as a table "
                    "(Table 6's layout). Extra --key=value arguments are config overrides for "
                    "every run. An existing result file is kept (resume) unless --rerun.")
    parser.add_argument("--model", required=True, help="a content backbone, e.g. SASRecV")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--encoders", required=True, nargs="+", metavar="NAME",
                        help="names from `recbole-microlens encoders`")
    parser.add_argument("--finetune", nargs="+", default=["top"], metavar="MODE",
                        help="frozen, top and/or full (default: top)")
    parser.add_argument("--out", type=Path, default=Path("results/sweep"),
                        help="folder of the result files (default: results/sweep)")
    parser.add_argument("--config-files", nargs="+", type=Path, metavar="FILE",
                        help="yaml files every run reads")
    parser.add_argument("--rerun", action="store_true", help="replace existing result files")
    parser.set_defaults(run=run_sweep, takes_overrides=True)


def run_sweep(args: argparse.Namespace) -> int:
    from recbole_microlens.studies.recipes import run_encoder_sweep

    overrides = config_overrides(args.overrides)
    files = [str(path) for path in args.config_files or []] or None
    paths, table = run_encoder_sweep(args.model, args.dataset, args.encoders, args.finetune,
                                     args.out, config_file_list=files, config_dict=overrides,
                                     rerun=args.rerun)
    print(f"\n{table}\n\n{len(paths)} result files in {args.out}; table: {args.out / 'sweep.md'}")
    return 0


def config_overrides(args: list[str]) -> dict:
    """``--key=value`` (or ``--key value``) arguments as config values: literals, never eval'ed."""
    from recbole_microlens.config.check import parse_overrides

    return parse_overrides(args)


def _add_report(commands) -> None:
    parser = commands.add_parser(
        "report", help="result JSONs -> Markdown table (Table 2 layout) and PNG plots",
        description="Turn result files (or folders of them) into report.md and PNGs: the Table 2 "
                    "layout, test HR@10 by popularity group with ratios to a baseline (Figure 6) "
                    "when the results have the breakdown, and an encoder sweep when they differ "
                    "by encoder or fine-tuning mode.")
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULT",
                        help="result JSON files, or folders of them")
    parser.add_argument("--out", type=Path, default=Path("report"),
                        help="output folder (default: report)")
    parser.add_argument("--reference", metavar="FILE",
                        help="paper numbers to overlay: a yaml file, or a packaged name "
                             "(paper_table2)")
    parser.add_argument("--baseline", metavar="LABEL",
                        help="the run popularity-group ratios divide by, by its label in the "
                             "table (default: the first plain-ID run)")
    parser.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from recbole_microlens.report import write_report

    files = write_report(args.results, args.out, reference=args.reference, baseline=args.baseline)
    print(files["report"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(path) for path in files.values()))
    return 0
