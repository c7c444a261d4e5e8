"""Train and evaluate a model on MicroLens under the official protocol.

    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample [--key=value ...]

Any other ``--key=value`` is a config override (RecBole reads them from the command line).
"""
import argparse

from recbole_microlens.quick_start import run_recbole_ml


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", "-m", default="SASRec")
    parser.add_argument("--dataset", "-d", default="microlens-sample")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    args, _ = parser.parse_known_args()
    config_files = args.config_files.split() if args.config_files else None
    run_recbole_ml(model=args.model, dataset=args.dataset, config_file_list=config_files)


if __name__ == "__main__":
    main()
