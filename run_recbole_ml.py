"""Train and evaluate a model on MicroLens under the official protocol.

    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample [--key=value ...]
    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample --tune [--tune_config=sample]

Any other ``--key=value`` is a config override (RecBole reads them from the command line; with
``--tune`` every trial gets them).
"""
import argparse

from recbole_microlens.quick_start import run
from recbole_microlens.tune import add_tune_arguments, config_overrides, run_tune_from_args


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", "-m", default="SASRec")
    parser.add_argument("--dataset", "-d", default="microlens-sample")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--nproc", type=int, default=1, help="DDP processes (one GPU each; gloo on CPU)")
    parser.add_argument("--ip", default="localhost", help="DDP rendezvous address")
    parser.add_argument("--port", default="5678", help="DDP rendezvous port")
    parser.add_argument("--tune", action="store_true", help="hyper-parameter search with Ray Tune")
    add_tune_arguments(parser)
    args, overrides = parser.parse_known_args()
    config_files = args.config_files.split() if args.config_files else None
    if args.tune:
        run_tune_from_args(args, config_files, config_overrides(overrides))
        return
    run(args.model, args.dataset, config_files, nproc=args.nproc, ip=args.ip, port=args.port)


if __name__ == "__main__":
    main()
