"""The documented ways to extend (docs/EXTENDING.md), each by running its example."""
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest
import torch

from recbole_microlens import model

from recbole_microlens.config import configurator as config
from recbole_microlens.quick_start import load_data_and_model
from recbole_microlens.encoders import registry
from recbole_microlens.model import get_model
from recbole_microlens.model.sequential_recommender import SASRec

from tests.helpers import checkout_env


@pytest.fixture(autouse=True)
def registries():
    """Registrations are process-wide: each test's are undone, so other tests see the packaged
    registries only."""
    saved = [(table, dict(table)) for table in (registry.ENCODERS, model.MODELS,
                                                  config.DATASET_LAYERS)]
    yield
    for table, content in saved:
        table.clear()
        table.update(content)


def example(name: str):
    """Import (again) an example module, which registers what it defines."""
    name = f"examples.{name}"
    if name in sys.modules:
        return importlib.reload(sys.modules[name])
    return importlib.import_module(name)


def test_a_registered_sasrec_subclass_trains_and_reloads(tmp_path, one_thread):
    custom_model = example("custom_model")
    result = custom_model.main(str(tmp_path))
    assert result["model"] == "TemperedSASRec"
    assert set(result["test_result"]) == {"hit@10", "ndcg@10", "hit@20", "ndcg@20"}
    assert result["config"]["n_layers"] == 2  # SASRec's yaml, inherited
    checkpoint = next((tmp_path / "saved").glob("TemperedSASRec-*.pth"))
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    assert type(model) is custom_model.TemperedSASRec and model.temperature == 0.5
    interaction = next(iter(test_data))[0]
    with torch.no_grad():
        tempered = model.full_sort_predict(interaction)
        plain = SASRec.full_sort_predict(model, interaction)
    torch.testing.assert_close(tempered, plain / 0.5)
    from recbole_microlens.serve.inference import InferenceError, user_vectors

    with pytest.raises(InferenceError, match="TemperedSASRec has no user vectors"):
        user_vectors(model, dataset, np.array([1, 2]))  # its scores are q . v / T, not q . v


def test_models_resolve_by_dotted_path_and_unknown_names_say_how_to_register():
    assert "TemperedSASRec" not in model.MODELS
    resolved = get_model("examples.custom_model.TemperedSASRec")
    assert resolved.__name__ == "TemperedSASRec" and issubclass(resolved, SASRec)
    assert model.MODELS["TemperedSASRec"] is resolved
    with pytest.raises(ValueError, match="register_model") as error:
        get_model("MySASRec")
    assert "lightgbm" not in str(error.value)  # RecBole's optional libraries stay out of it
    with pytest.raises(ValueError, match="cannot be imported"):
        get_model("examples.nowhere.Model")
    with pytest.raises(ValueError, match="'os.path.join' is not a model class"):
        get_model("os.path.join")  # what a checkpoint or --model names must be a model class


def test_a_checkpoint_naming_no_importable_model_class_is_refused_in_one_line(tmp_path):
    from recbole_microlens.errors import CheckpointError
    from recbole_microlens.quick_start.reload import checkpoint_model_class

    for recorded in ("os.path.join", "nowhere.Model", "__main__.Mine"):
        with pytest.raises(CheckpointError, match="model 'Mine' is unknown here"):
            checkpoint_model_class({"model": "Mine", "model_class": recorded}, tmp_path / "x.pth")
    assert checkpoint_model_class({"model": "SASRec"}, "old.pth") is SASRec  # older checkpoints


def test_a_custom_dataset_with_registered_defaults(tmp_path, one_thread):
    result = example("custom_dataset").main(str(tmp_path))
    assert result["dataset"] == "toy-clicks" and result["n_users"] == 120
    assert result["config"]["MAX_ITEM_LIST_LENGTH"] == 5  # from the registered yaml
    assert result["config"]["learning_rate"] == 0.005
    assert result["epochs_run"] == 3
    assert 0.0 <= result["test"]["hit@10"] <= 1.0


def test_a_registered_encoder_trains_as_an_item_tower(tmp_path, one_thread, capsys):
    from recbole_microlens.cli.commands import main

    result = example("custom_encoder").main(str(tmp_path))
    assert result["config"]["item_encoder"] == "tiny-cnn"
    assert result["encoder_items_per_epoch"][0] > 0
    store = tmp_path / "atomic_files" / "microlens-sample" / "media" / "covers_s32"
    assert (store / "meta.json").is_file()  # covers decoded at the encoder's 32 px
    assert main(["encoders", "--modality", "image"]) == 0
    assert "tiny-cnn" in capsys.readouterr().out


# ----------------------------------------------- a new encoder row, a new sequential model ---
MEAN_POOL_MODULE = '''
"""MeanPool: the user at each position is the running mean of the item vectors so far."""
from torch import nn

from recbole_microlens.model.sequential_recommender.base import MLSequentialRecommender, VideoRec


class MeanPool(MLSequentialRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.initializer_range = config["initializer_range"]
        self.mix = nn.Linear(self.item_dim, self.item_dim)
        self.init_weights()

    def encode(self, item_emb, item_seq, item_seq_len):
        present = (item_seq != 0).unsqueeze(-1).to(item_emb.dtype)
        return self.mix((item_emb * present).cumsum(1) / present.cumsum(1).clamp(min=1))


class MeanPoolV(VideoRec, MeanPool):
    """MeanPool over a content encoder trained end to end (VideoRec.yaml's defaults)."""
'''
MEAN_POOL_YAML = "hidden_size: 12\ninitializer_range: 0.02\nmean_pool_note: one yaml\n"


@pytest.fixture
def new_model_package(tmp_path, monkeypatch):
    """One model file and one yaml beside it, nothing else: importable as ``meanpool_models``."""
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "meanpool_models.py").write_text(MEAN_POOL_MODULE)
    (folder / "MeanPool.yaml").write_text(MEAN_POOL_YAML)
    monkeypatch.syspath_prepend(str(folder))
    yield "meanpool_models"
    sys.modules.pop("meanpool_models", None)


@pytest.fixture(scope="module")
def tiny_raw(tmp_path_factory):
    from recbole_microlens.data.sample.generate import generate_sample_raw

    raw = tmp_path_factory.mktemp("extending") / "raw"
    generate_sample_raw(raw, n_users=40, n_items=40, seed=3)
    return raw


def train_one_epoch(model_name, root, raw, **options):
    from recbole_microlens.quick_start import run_recbole_ml

    return run_recbole_ml(model_name, "tinylens", config_dict={
        "data_path": str(root / "atomic"), "raw_data_path": str(raw),
        "checkpoint_dir": str(root / "saved"), "epochs": 1, "show_progress": False,
        "train_batch_size": 16, "eval_batch_size": 64, **options})


def test_a_new_sequential_model_is_one_file_and_one_yaml(new_model_package, tmp_path, tiny_raw,
                                                         one_thread):
    result = train_one_epoch(f"{new_model_package}.MeanPool", tmp_path, tiny_raw)
    assert result["config"]["hidden_size"] == 12 and result["config"]["mean_pool_note"] == "one yaml"
    assert result["config"]["item_tower"] in (None, "id")
    assert 0.0 <= result["test"]["hit@10"] <= 1.0 and result["epochs_run"] == 1


def test_a_new_video_encoder_is_one_registry_row(new_model_package, tmp_path, tiny_raw, one_thread):
    """A row reusing the r3d-r18 builder at 2 frames of 16 px, trained under the new model's
    VideoRec variant (whose defaults come from VideoRec.yaml by the lineage rule)."""
    from recbole_microlens.encoders import EncoderSpec, InputSpec, register_encoder, video

    register_encoder(EncoderSpec(
        "r3d-r18-2f", "video", video.build_r3d_r18, video.TORCHVISION_R3D_FORMAT,
        InputSpec(frames=2, size=16, mean=(0.43, 0.39, 0.38), std=(0.23, 0.22, 0.22)),
        "r3d_18 over 2 frames of 16 px (a test row)"))
    result = train_one_epoch(f"{new_model_package}.MeanPoolV", tmp_path, tiny_raw,
                             item_encoder="r3d-r18-2f", encoder_checkpoint="random")
    assert result["config"]["item_tower"] == "encoder"  # VideoRec.yaml
    assert result["config"]["finetune"] == "top" and result["config"]["hidden_size"] == 12
    assert result["encoder_items_per_epoch"][0] > 0
    frames = tmp_path / "atomic" / "tinylens" / "media" / "frames_n2_i1_s16"
    assert (frames / "meta.json").is_file()  # the row's input spec decided the frame store
    assert 0.0 <= result["test"]["hit@10"] <= 1.0


@pytest.mark.parametrize("name", ["SASRecV", "GRU4RecV", "NextItNetV"])
def test_videorec_variants_read_the_one_shared_layer(name):
    from recbole_microlens.config.configurator import _yaml_layers
    from recbole_microlens.model.sequential_recommender.base import VideoRec

    model_class = get_model(name)
    layers = [layer.name for layer in _yaml_layers(model_class, "tinylens")]
    assert issubclass(model_class, VideoRec)
    assert layers[-2:] == [f"{name[:-1]}.yaml", "VideoRec.yaml"]


# ------------------------------------------- docs/EXTENDING.md's LSTM, trained and served ---
DOC = Path(__file__).resolve().parents[2] / "docs" / "EXTENDING.md"
REPO = DOC.parents[1]


def doc_block(after: str, language: str) -> str:
    """The first ``language`` code block of docs/EXTENDING.md after the text ``after``."""
    text = DOC.read_text(encoding="utf-8")
    return re.search(rf"```{language}\n(.*?)```", text[text.index(after):], re.S).group(1)


def test_the_documented_lstm_model_trains_and_is_served_with_no_extra_code(tmp_path):
    """The doc's file, saved where it says, and its shell lines run as they stand (in a fresh
    shell: nothing imports lstmrec but the checkpoint's recorded class path)."""
    (tmp_path / "my_models").mkdir()
    (tmp_path / "my_models" / "lstmrec.py").write_text(doc_block("Save this as", "python"))
    (tmp_path / "run_recbole_ml.py").symlink_to(REPO / "run_recbole_ml.py")  # a checkout's root
    script = doc_block("Train it, then serve its checkpoint", "bash")
    env = checkout_env(OMP_NUM_THREADS="1",
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = next((tmp_path / "saved").glob("LSTMRec-*.pth"))
    assert torch.load(checkpoint, weights_only=True)["model_class"] == "lstmrec.LSTMRec"
    header = done.stdout.index("user_id\trank\titem_id\tscore")
    rows = [line.split("\t") for line in done.stdout[header:].splitlines()[1:11]]
    assert [(user, int(rank)) for user, rank, _, _ in rows] == \
        [(user, rank) for user in ("2", "17") for rank in range(1, 6)]
    items = np.load(checkpoint.with_name(checkpoint.stem + ".items.npy"))
    users = np.load(checkpoint.with_name(checkpoint.stem + ".users.npy"))
    meta = json.loads(checkpoint.with_name(checkpoint.stem + ".users.json").read_text())
    assert items.shape[1] == users.shape[1] == 32  # the doc's hidden_size default
    assert meta["model"] == "LSTMRec" and {"2", "17"} <= set(meta["row_tokens"])


def test_an_installed_plugin_names_its_model_by_entry_point(tmp_path, monkeypatch):
    """What ``pip install`` leaves for a package declaring the group: a dist-info folder with
    entry_points.txt; ``--model=LSTMRec`` then resolves by name."""
    (tmp_path / "my_models").mkdir()
    (tmp_path / "my_models" / "__init__.py").write_text("")
    (tmp_path / "my_models" / "lstmrec.py").write_text(doc_block("Save this as", "python"))
    info = tmp_path / "my_models-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-models\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[recbole_microlens.models]\nLSTMRec = my_models.lstmrec:LSTMRec\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        resolved = get_model("LSTMRec")
        assert resolved.__module__ == "my_models.lstmrec" and model.MODELS["LSTMRec"] is resolved
    finally:
        for name in ("my_models", "my_models.lstmrec"):
            sys.modules.pop(name, None)
