"""Train and evaluate a model on MicroLens under the official protocol.

    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample [--key=value ...]
    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample --tune [--tune_config=sample]

Any other ``--key=value`` (or ``--key value``) is a config override, checked against the known
keys (with ``--tune`` every trial gets them). Bad input prints one line and exits 2; ``--debug``
shows the traceback.
"""
import argparse
import sys

from recbole_microlens.errors import exit_cleanly
from recbole_microlens.quick_start import run
from recbole_microlens.cli import config_overrides
from recbole_microlens.tune_cli import add_tune_arguments, run_tune_from_args, tune_exit_status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--model", "-m", default="SASRec")
    parser.add_argument("--dataset", "-d", default="microlens-sample")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--nproc", type=int, default=1, help="DDP processes (one GPU each; gloo on CPU)")
    parser.add_argument("--ip", default="localhost", help="DDP rendezvous address")
    parser.add_argument("--port", default="5678", help="DDP rendezvous port")
    parser.add_argument("--tune", action="store_true", help="hyper-parameter search with Ray Tune")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    add_tune_arguments(parser)
    args, overrides = parser.parse_known_args(argv)
    with exit_cleanly(args.debug):
        config_files = args.config_files.split() if args.config_files else None
        config_dict = config_overrides(overrides)
        if args.tune:  # exit 1 when no trial completed
            return tune_exit_status(run_tune_from_args(args, config_files, config_dict))
        run(args.model, args.dataset, config_files, config_dict, nproc=args.nproc, ip=args.ip,
            port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
