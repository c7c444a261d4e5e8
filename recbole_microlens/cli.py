"""``recbole-microlens`` command line: one subparser and one small function per subcommand."""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from recbole_microlens.data.convert import convert_dataset
from recbole_microlens.data.raw import RawFilesError, RawFormatError, detect_raw_files

# ``--pairs-tsv`` -> RawFiles.pairs_tsv, and so on: explicit files that win over detection.
FILE_OPTIONS = ("pairs_tsv", "pairs_csv", "titles", "title_en", "likes_views", "tags", "comments",
                "users")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recbole-microlens",
                                     description="MicroLens benchmark tools for RecBole.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_convert(commands)
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
    parser.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    overrides = {field: getattr(args, field) for field in FILE_OPTIONS}
    try:
        meta = convert_dataset(detect_raw_files(args.raw_dir, **overrides), args.dataset, args.out,
                               min_user_inter=args.min_user_inter, keep_last=args.keep_last,
                               num_pop_bins=args.num_pop_bins, skip_bad=args.skip_bad)
    except (RawFilesError, RawFormatError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(statistics_table(meta))
    print(f"wrote {args.out / args.dataset} in {time.perf_counter() - started:.1f} s")
    return 0


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
