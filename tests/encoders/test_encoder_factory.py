"""One factory of item encoders and their inputs, one tokenizer rule: a trained text tower and
``extract-features`` build the same encoder over the same title store, and a pre-trained text
checkpoint without its tokenizer is refused by both unless ``tokenizer_path`` is given."""
import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from recbole_microlens.data.recbole.dataset import create_dataset
from recbole_microlens.data.stores.item_inputs import resolve_tokenizer
from recbole_microlens.data.sample.generate import generate_sample_raw
from recbole_microlens.data.stores.titles import read_titles, train_wordpiece
from recbole_microlens.encoders.factory import EncoderChoice
from recbole_microlens.encoders.text import BERT_TINY
from recbole_microlens.encoders.extract import extract_features
from recbole_microlens.model import get_model
from tests.helpers import built_run, make_config

DATASET = "toklens"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A generated dataset, a weights-only BERT folder and a tokenizer folder of its own."""
    root = tmp_path_factory.mktemp("factory")
    generate_sample_raw(root / "raw", n_users=30, n_items=40, seed=5)
    torch.manual_seed(0)
    BertModel(BertConfig(**BERT_TINY), add_pooling_layer=False).save_pretrained(root / "bert")
    titles = read_titles(next((root / "raw").glob("*titles*.csv")))
    train_wordpiece(titles.values(), vocab_size=200).save_pretrained(root / "tokenizer")
    return root


def features(root, **options):
    return extract_features(root / "atomic", DATASET, "bert-tiny", checkpoint=root / "bert",
                            raw_dir=root / "raw", batch_size=8, progress=False, **options)


def text_model(root, **options):
    options = {"raw_data_path": str(root / "raw"), "item_encoder": "bert-tiny",
               "item_modality": "text", "hidden_size": 16, "inner_size": 32,
               "encoder_checkpoint": str(root / "bert"), **options}
    config = make_config(root / "atomic", DATASET, model="SASRecV", **options)
    train, _, _ = built_run(config, model=False).splits
    return get_model("SASRecV")(config, train._dataset)


def test_the_tokenizer_rule():
    assert resolve_tokenizer(None, None) is None  # random weights: a WordPiece of the titles
    assert resolve_tokenizer("/any/checkpoint", "/my/tokenizer") == "/my/tokenizer"


def test_a_checkpoint_folder_with_its_tokenizer_reads_it(root, tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert resolve_tokenizer(tmp_path, None) == str(tmp_path)
    with pytest.raises(ValueError, match="beside a weights file"):
        resolve_tokenizer(root / "bert" / "model.safetensors", None)


def test_extract_features_refuses_a_weights_only_text_checkpoint_without_tokenizer_path(root):
    with pytest.raises(ValueError, match=r"bert has no tokenizer .*tokenizer_path"):
        features(root)
    report = features(root, tokenizer_path=root / "tokenizer")
    meta = json.loads(report.path.with_suffix(".json").read_text())
    assert report.complete and meta["input"]["tokenizer"] == str(root / "tokenizer")


def test_a_text_tower_refuses_it_too_and_encodes_as_extract_features_does(root):
    with pytest.raises(ValueError, match=r"bert has no tokenizer .*tokenizer_path"):
        text_model(root)  # before: a WordPiece trained on the titles fed the BERT's embeddings
    report = features(root, tokenizer_path=root / "tokenizer")
    tower = text_model(root, tokenizer_path=str(root / "tokenizer")).item_tower
    assert tower.inputs.store.meta["tokenizer"] == str(root / "tokenizer")
    embeddings = tower.encoder.blocks[0].embeddings.word_embeddings
    assert embeddings.num_embeddings == BERT_TINY.get("vocab_size", 30522)  # the checkpoint's
    ids = torch.arange(1, tower.n_items)
    with torch.no_grad():
        live = tower.encoder.eval()(tower.inputs(ids, "cpu")).numpy()
    item_tokens = tower_item_tokens(root)
    rows = json.loads(report.path.with_suffix(".json").read_text())["row_tokens"]
    stored = np.load(report.path)[[rows.index(token) for token in item_tokens[1:]]]
    np.testing.assert_allclose(stored, live, atol=1e-5)


def tower_item_tokens(root) -> list[str]:
    config = make_config(root / "atomic", DATASET, model="SASRec")
    dataset = create_dataset(config)
    return list(dataset.field2id_token[dataset.iid_field])


def test_an_unknown_encoder_or_a_wrong_modality_is_refused_in_one_place(root):
    with pytest.raises(ValueError, match="item_encoder 'bert-huge' is unknown"):
        EncoderChoice("bert-huge")
    with pytest.raises(ValueError, match="item_encoder bert-tiny encodes text, not item_modality video"):
        text_model(root, tokenizer_path=str(root / "tokenizer"), item_modality="video")
