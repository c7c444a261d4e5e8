"""The scripts behind every published figure (results/*.md), and what they share (common.py).

Run a script from the repository root, as a module:

    python -m benchmarks.train_microlens50k --raw-dir DIR

The repository root then comes first on the import path, so this checkout's ``recbole_microlens`` is
measured even where an older copy is installed, and this package is found before pyarrow's own
top-level ``benchmarks`` package (pyarrow 17 installs one into site-packages). Running the file
itself works the same with the root on the path: ``PYTHONPATH=. python benchmarks/NAME.py``.
"""
