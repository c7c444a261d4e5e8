"""The command line answers at once (issue 23): building the parser and every ``--help`` import
none of the ML stack, which commands load when they run."""
from tests.helpers import run_isolated

HEAVY = ("torch", "transformers", "pytorchvideo", "ray", "recbole")

# In one fresh interpreter: what ``import recbole_microlens.cli.commands`` loaded, then what each --help
# had loaded by its end (cumulative, so the first command that imports a module shows it).
PROBE = """
import contextlib, io, json, sys
HEAVY = %r
loaded = {}
import recbole_microlens.cli.commands as cli
loaded["import recbole_microlens.cli.commands"] = sorted(m for m in HEAVY if m in sys.modules)
commands = list(cli.build_parser()._subparsers._group_actions[0].choices)
for argv in [["--help"]] + [[command, "--help"] for command in commands]:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(argv)
    except SystemExit as exit_:  # argparse exits after --help
        assert exit_.code == 0, (argv, exit_.code)
    loaded[" ".join(argv)] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(loaded))
""" % (HEAVY,)


def test_the_cli_and_every_help_import_none_of_the_ml_stack():
    loaded = run_isolated(PROBE)
    assert {"import recbole_microlens.cli.commands", "--help", "recommend --help",
            "export-embeddings --help", "tune --help"} <= set(loaded)
    assert {step: modules for step, modules in loaded.items() if modules} == {}
