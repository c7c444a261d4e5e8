"""``python -m recbole_microlens …`` is the ``recbole-microlens`` command."""
import sys

from recbole_microlens.cli.commands import main

sys.exit(main())
