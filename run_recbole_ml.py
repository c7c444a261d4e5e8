"""Train and evaluate a model on MicroLens under the official protocol.

    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample [--key=value ...]
    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample --tune [--tune_config=sample]

The command itself lives in :mod:`recbole_microlens.cli.train` (``--help`` lists its options).
"""
import sys

from recbole_microlens.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
