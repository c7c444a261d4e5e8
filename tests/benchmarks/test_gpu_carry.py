"""benchmarks/gpu_carry.py: what travels to a GPU machine is what the run there needs.

The machines hold no RecBole, pytorchvideo or PyAV and reach no hub; the title rows' call carries
MiniLM in float16 and no PyAV (both together pass the 64 MiB a call may carry)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks import gpu_carry
from tests.helpers import checkout_env

ROOT = Path(__file__).resolve().parents[2]


def test_every_carried_wheel_is_pinned_at_the_tested_version():
    pins = gpu_carry.pinned([*gpu_carry.PURE_PYTHON, gpu_carry.PYAV])
    constraints = (ROOT / "constraints.txt").read_text().splitlines()
    assert len(pins) == len(gpu_carry.PURE_PYTHON) + 1
    assert all(pin in constraints for pin in pins)
    with pytest.raises(SystemExit, match="no-such-package"):
        gpu_carry.pinned(["recbole", "no-such-package"])


def test_minilm_survives_the_float16_trip(tmp_path):
    pytest.importorskip(gpu_carry.MINILM_PACKAGE)
    from transformers import AutoModel, AutoTokenizer

    from recbole_microlens.data.stores.titles import minilm_folder

    gpu_carry.minilm_float16(tmp_path / "part")
    carried = tmp_path / "part" / gpu_carry.MINILM_PACKAGE / "model"
    assert not (carried / "model.safetensors").exists()  # only the float16 file travels
    real_size = (minilm_folder() / "model.safetensors").stat().st_size
    assert (carried / "model.float16.safetensors").stat().st_size < 0.51 * real_size

    restored = gpu_carry.unpack_minilm(tmp_path / "part", tmp_path / "site")
    tokenizer = AutoTokenizer.from_pretrained(restored)
    titles = ["a cat jumps into a box", "cooking noodles at midnight", "city lights timelapse"]
    batch = tokenizer(titles, padding=True, return_tensors="pt")
    with torch.no_grad():
        real = AutoModel.from_pretrained(minilm_folder()).eval()(**batch).last_hidden_state
        trip = AutoModel.from_pretrained(restored).eval()(**batch).last_hidden_state
    assert trip.dtype == torch.float32
    assert not torch.equal(real, trip)  # float16 rounding did happen ...
    cosine = torch.nn.functional.cosine_similarity(real, trip, dim=-1)
    assert cosine.min() > 0.9999  # ... and changes no token's vector beyond it


def test_the_id_and_title_paths_import_no_pyav(tmp_path):
    """The title rows' call carries no PyAV: converting MicroLens and building a title SASRecV
    must run with ``import av`` failing."""
    from recbole_microlens.data.sample.generate import generate_sample_raw

    raw = tmp_path / "raw"
    generate_sample_raw(raw, n_users=40, n_items=40, seed=3, with_media=False)
    script = f"""
import sys
sys.modules["av"] = None  # any `import av` now raises ImportError
import benchmarks.title_content_50k
from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.data.raw.convert import convert_dataset
from recbole_microlens.data.raw.readers import detect_raw_files
from recbole_microlens.model import get_model
from recbole_microlens.quick_start.build import build_run

convert_dataset(detect_raw_files({str(raw)!r}), "tinylens", {str(tmp_path / "atomic")!r})
config = MLConfig("SASRecV", "tinylens", config_dict={{
    "data_path": {str(tmp_path / "atomic")!r}, "checkpoint_dir": {str(tmp_path / "saved")!r},
    "item_tower": "encoder", "item_modality": "text", "item_encoder": "minilm",
    "encoder_checkpoint": "random", "hidden_size": 8, "inner_size": 16, "embedding_size": 8,
    "title_max_length": 8}})
run = build_run(config, quiet=True)
print(type(run.model).__name__, "av" in sys.modules and sys.modules["av"] is not None)
"""
    env = checkout_env(OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["SASRecV", "False"]
