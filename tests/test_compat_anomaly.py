"""RecBole switches autograd anomaly detection on when its models are imported; compat turns it off."""
import subprocess
import sys

CHECK = "import torch; print(torch.is_anomaly_enabled())"


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_importing_recbole_models_turns_anomaly_detection_on():
    """Why the fix exists: a plain import of RecBole's model package (as any model build does)."""
    assert run(f"import recbole.model.sequential_recommender; {CHECK}") == "True"


def test_compat_apply_turns_it_off_after_recbole_models_are_imported():
    code = ("from recbole_microlens import compat; import recbole.model.sequential_recommender; "
            f"compat.apply(); {CHECK}")
    assert run(code) == "False"

