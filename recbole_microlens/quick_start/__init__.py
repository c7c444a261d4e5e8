"""Running a model: train and evaluate one run, or rebuild a trained one from its checkpoint
(RecBole's ``recbole.quick_start`` API, with our dataset, trainer and evaluation)."""
from recbole_microlens.quick_start.quick_start import (  # noqa: F401
    load_data_and_model, objective_function, run, run_recbole_ml)
