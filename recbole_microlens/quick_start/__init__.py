"""Running a model: train and evaluate one run, or rebuild a trained one from its checkpoint
(RecBole's ``recbole.quick_start`` API, with our dataset, trainer and evaluation)."""
from recbole_microlens.quick_start.build import Run, build_run  # noqa: F401
from recbole_microlens.quick_start.quick_start import (  # noqa: F401
    objective_function, run, run_recbole_ml)
from recbole_microlens.quick_start.reload import load_data_and_model  # noqa: F401
