"""The documented ways to extend (docs/EXTENDING.md), each by running its example."""
import importlib
import sys

import pytest
import torch

from recbole_microlens import config, model
from recbole_microlens.checkpoint import load_data_and_model
from recbole_microlens.encoders import registry
from recbole_microlens.model import get_model
from recbole_microlens.model.sequential_recommender import SASRec


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


def test_a_custom_dataset_with_registered_defaults(tmp_path, one_thread):
    result = example("custom_dataset").main(str(tmp_path))
    assert result["dataset"] == "toy-clicks" and result["n_users"] == 120
    assert result["config"]["MAX_ITEM_LIST_LENGTH"] == 5  # from the registered yaml
    assert result["config"]["learning_rate"] == 0.005
    assert result["epochs_run"] == 3
    assert 0.0 <= result["test"]["hit@10"] <= 1.0


def test_a_registered_encoder_trains_as_an_item_tower(tmp_path, one_thread, capsys):
    from recbole_microlens.cli import main

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
    from recbole_microlens.data.sample import generate_sample_raw

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
    from recbole_microlens.config import _yaml_layers
    from recbole_microlens.model.sequential_recommender.base import VideoRec

    model_class = get_model(name)
    layers = [layer.name for layer in _yaml_layers(model_class, "tinylens")]
    assert issubclass(model_class, VideoRec)
    assert layers[-2:] == [f"{name[:-1]}.yaml", "VideoRec.yaml"]
