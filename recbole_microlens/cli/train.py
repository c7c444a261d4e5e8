"""Train and evaluate a model on MicroLens under the official protocol.

    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample [--key=value ...]
    python run_recbole_ml.py --model=SASRec --dataset=microlens-sample --tune [--tune_config=sample]

Any other ``--key=value`` (or ``--key value``) is a config override, checked against the known
keys (with ``--tune`` every trial gets them). Bad input prints one line and exits 2; ``--debug``
shows the traceback. Ctrl-C or SIGTERM stops a run cleanly (exit 130/143) with one line giving
the command that resumes it (``--resume=<state file>``).
"""
import argparse
import shlex
import sys

from recbole_microlens.errors import exit_cleanly
from recbole_microlens.quick_start.quick_start import run
from recbole_microlens.trainer.resume import TrainingInterrupted, interruptible, signal_of, EXIT_STATUS
from recbole_microlens.cli.commands import config_overrides
from recbole_microlens.cli.tune import add_tune_arguments, run_tune_from_args, tune_exit_status


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--model", "-m", default="SASRec")
    parser.add_argument("--dataset", "-d", default="microlens-sample")
    parser.add_argument("--config_files", default=None, help="space-separated yaml files")
    parser.add_argument("--nproc", type=int, default=1, help="DDP processes (one GPU each; gloo on CPU)")
    parser.add_argument("--ip", default="localhost", help="DDP rendezvous address")
    parser.add_argument("--port", default="5678", help="DDP rendezvous port")
    parser.add_argument("--tune", action="store_true", help="hyper-parameter search with Ray Tune")
    parser.add_argument("--resume", metavar="STATE_FILE", nargs="?", const=True, default=False,
                        help="continue an interrupted run from its training state, "
                             "<checkpoint_dir>/resume/<Model>-<run_id>.pth "
                             "(same command otherwise); with --tune, no value: continue the "
                             "interrupted sweep in --tune_dir")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    add_tune_arguments(parser, resume_flag=False)
    argv = sys.argv[1:] if argv is None else argv
    args, overrides = parser.parse_known_args(argv)
    if args.tune and args.resume not in (True, False):
        parser.error("with --tune, --resume takes no value (it continues the sweep in --tune_dir)")
    if not args.tune and args.resume is True:
        parser.error("--resume needs the state file of the run to continue: --resume=STATE_FILE")
    try:
        with interruptible(), exit_cleanly(args.debug):
            config_files = args.config_files.split() if args.config_files else None
            config_dict = config_overrides(overrides)
            if args.tune:  # exit 1 when no trial completed
                return tune_exit_status(run_tune_from_args(args, config_files, config_dict))
            run(args.model, args.dataset, config_files, config_dict, nproc=args.nproc,
                ip=args.ip, port=args.port, resume=args.resume or None)
        return 0
    except TrainingInterrupted as stop:
        resume = (f"; resume with: {resume_command(argv, stop.state_file)}" if stop.state_file
                  else "; no training state was saved yet")
        print(f"{stop}{resume}", file=sys.stderr, flush=True)
        sys.exit(stop.exit_status)
    except BaseException as error:
        signum = signal_of(error)
        if signum is None:
            raise
        print("interrupted before training started", file=sys.stderr, flush=True)
        sys.exit(EXIT_STATUS[signum])


def resume_command(argv: list, state_file: str) -> str:
    """The command line that continues this run: the same arguments, ``--resume`` replaced."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--resume="):
            skip = False
            continue
        if arg == "--resume":
            skip = True
            continue
        kept.append(arg)
    return shlex.join(["python", sys.argv[0] or "run_recbole_ml.py", *kept,
                       f"--resume={state_file}"])


if __name__ == "__main__":
    sys.exit(main())
