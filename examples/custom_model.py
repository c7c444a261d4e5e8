"""A custom model: SASRec whose scores are divided by a temperature (config key
``score_temperature``). Registered by name, so ``--model=TemperedSASRec`` and reloading its
checkpoints find it once this module is imported (or use ``--model=examples.custom_model.TemperedSASRec``).

    python examples/custom_model.py /tmp/work
"""
import sys

from recbole_microlens.model import register_model
from recbole_microlens.model.sequential_recommender import SASRec


@register_model
class TemperedSASRec(SASRec):
    """SASRec with ``score = q . v / score_temperature`` (inherits SASRec's yaml and loss)."""

    #: the keys this model adds, with their defaults (so ``--score_temperature=...`` is known)
    config_defaults = {"score_temperature": 1.0}

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.temperature = float(config["score_temperature"])

    def full_sort_predict(self, interaction):
        return super().full_sort_predict(interaction) / self.temperature


def main(root: str) -> dict:
    from recbole_microlens.quick_start import run_recbole_ml

    return run_recbole_ml("TemperedSASRec", "microlens-sample", config_dict={
        "data_path": f"{root}/atomic_files", "checkpoint_dir": f"{root}/saved", "epochs": 1,
        "score_temperature": 0.5, "hidden_size": 16, "inner_size": 32, "show_progress": False})


if __name__ == "__main__":
    print(main(sys.argv[1])["test_result"])
