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
