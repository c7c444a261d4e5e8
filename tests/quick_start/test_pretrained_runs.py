"""Training runs that start from pre-trained weights, through the command line as a user runs
them: a model-zoo checkpoint from a seeded ``TORCH_HOME``, a title encoder given by hub id from
a seeded ``HF_HOME`` (offline), each an exit-2 one-liner when the cache is empty, checked before
any data work; the reference profile's logits head; a trained model reloads without the
pre-trained files."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pytorchvideo.models import hub

from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.data.sample.generate import ensure_sample_raw
from recbole_microlens.data.stores.titles import read_titles
from recbole_microlens.model import get_model
from tests.helpers import built_run, checkout_env, seed_hub_cache, seed_torch_hub, tiny_bert_folder

REPO = Path(__file__).resolve().parents[2]
SAMPLE = ["--model=SASRecV", "--dataset=microlens-sample", "--epochs=1", "--show_progress=false",
          "--hidden_size=16", "--inner_size=32"]
VIDEO = ["--item_encoder=x3d-xs", "--encoder_checkpoint=pretrained"]
HUB_ID = "my-lab/title-bert"
TEXT = ["--item_modality=text", "--item_encoder=bert-tiny", f"--encoder_checkpoint={HUB_ID}"]


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """A TORCH_HOME with X3D_XS.pyth (generated, in pytorchvideo's format) and an HF_HOME with a
    small BERT and its tokenizer under HUB_ID, in the hub's layout."""
    root = tmp_path_factory.mktemp("caches")
    torch.manual_seed(0)
    seed_torch_hub(root / "torch", "X3D_XS.pyth", hub.x3d_xs(pretrained=False).state_dict())
    raw = root / "sample-raw"
    ensure_sample_raw(raw)
    titles = read_titles(next(raw.glob("*titles*.csv"))).values()
    seed_hub_cache(root / "hf", HUB_ID, tiny_bert_folder(root / "bert", titles))
    return root


def run_cli(cwd: Path, args: list[str], torch_home: Path, hf_home: Path):
    env = checkout_env(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TORCH_HOME=str(torch_home),
                       HF_HOME=str(hf_home))
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, str(REPO / "run_recbole_ml.py"), *SAMPLE, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def error_lines(done) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("error: ")]


def test_a_model_zoo_checkpoint_trains_and_is_named_in_the_log(caches, tmp_path):
    done = run_cli(tmp_path / "run", VIDEO, caches / "torch", caches / "hf")
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    assert "x3d-xs: loaded" in log and "model zoo X3D_XS.pyth" in log
    assert "random" not in log.split("x3d-xs: loaded")[1].splitlines()[0]
    # a trained model reloads without the pre-trained file: its own state dict holds the weights
    from recbole_microlens.quick_start import load_data_and_model

    checkpoint = next((tmp_path / "run" / "saved").glob("SASRecV-*.pth"))
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(tmp_path / "empty")
    try:
        os.chdir(tmp_path / "run")
        config, model, *_ = load_data_and_model(checkpoint)
    finally:
        os.chdir(REPO)
        os.environ.pop("TORCH_HOME") if previous is None else os.environ.update(TORCH_HOME=previous)
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    key = "item_tower.encoder.blocks.5.pool.post_conv.weight"
    assert torch.equal(model.state_dict()[key], saved[key])
    assert config["encoder_checkpoint"] == "trained"


def test_an_empty_torch_cache_stops_before_any_data_work(tmp_path):
    done = run_cli(tmp_path / "run", VIDEO, tmp_path / "empty-torch", tmp_path / "empty-hf")
    assert done.returncode == 2
    (line,) = error_lines(done)
    assert "X3D_XS.pyth" in line and "encoder_checkpoint: random" in line
    assert str(tmp_path / "empty-torch" / "hub" / "checkpoints" / "X3D_XS.pyth") in line
    assert not (tmp_path / "run" / "atomic_files").exists()  # nothing generated or converted


def test_a_hub_id_trains_a_title_encoder_with_its_tokenizer_offline(caches, tmp_path):
    done = run_cli(tmp_path / "run", TEXT, caches / "torch", caches / "hf")
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    assert f"bert-tiny: loaded" in log and f"hub {HUB_ID}" in log
    titles = tmp_path / "run" / "atomic_files" / "microlens-sample" / "media"
    assert any(path.name.startswith("titles_") for path in titles.iterdir())


def test_an_empty_hub_cache_is_one_error_naming_the_id(tmp_path):
    done = run_cli(tmp_path / "run", TEXT, tmp_path / "empty-torch", tmp_path / "empty-hf")
    assert done.returncode == 2
    (line,) = error_lines(done)
    assert f"hub id {HUB_ID}" in line and "HF_HUB_OFFLINE" in line


def test_the_reference_profile_projects_kinetics_logits(caches, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("TORCH_HOME", str(caches / "torch"))
    config = MLConfig("SASRecV", "microlens-sample", ["reference"], {
        "data_path": str(tmp_path / "atomic_files"), "checkpoint_dir": str(tmp_path / "saved"),
        "item_encoder": "x3d-xs", "encoder_checkpoint": "pretrained", "show_progress": False,
        "hidden_size": 16, "inner_size": 32})
    assert config["encoder_head"] == "logits"
    train, _, _ = built_run(config, model=False).splits
    tower = get_model("SASRecV")(config, train._dataset).item_tower
    upstream = torch.load(caches / "torch" / "hub" / "checkpoints" / "X3D_XS.pyth",
                          weights_only=True)["model_state"]
    assert tower.projection.in_features == 400 and isinstance(tower.activation, torch.nn.GELU)
    assert torch.equal(tower.encoder.blocks[-1].proj.weight, upstream["blocks.5.proj.weight"])
    assert tower.encoder.blocks[-1].proj.weight.requires_grad  # the head trains, as upstream
