"""Pre-trained weights through the ecosystem's caches: every registry row names its upstream
weights, ``encoder_checkpoint: pretrained`` (or a hub id, or a URL) loads them from torch.hub's
or the model hub's cache, and what is missing is one clear error. The real loading code runs
against caches these tests seed (a ``TORCH_HOME`` holding a generated checkpoint in upstream's
format under upstream's file name, an ``HF_HOME`` in the hub's layout); the network's absence
(``HF_HUB_OFFLINE=1``) and the cache locations are environment variables, nothing is mocked."""
import logging
import sys

import pytest
import torch
from pytorchvideo.models import hub
from torchvision.models import get_weight

from recbole_microlens.cli import commands as cli
from recbole_microlens.data.stores.item_inputs import (
    ItemSource,
    items_without_content,
    require_content,
    resolve_tokenizer,
)
from recbole_microlens.encoders import ENCODERS, build_encoder
from recbole_microlens.encoders.formats import checkpoint_config
from recbole_microlens.encoders.weights import (
    HUB_ID,
    KINDS,
    CheckpointError,
    WeightsUnavailable,
    file_sha256,
    is_cached,
    resolve_weights,
)
from tests.helpers import seed_hub_cache, seed_torch_hub, tiny_bert_folder

pytestmark = pytest.mark.usefixtures("one_thread")

X3D_URL = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_XS.pyth"
TITLES = ["a cat video", "the best recipe", "running in the rain", "music for a road trip"]


@pytest.fixture
def caches(monkeypatch, tmp_path):
    """Empty torch.hub and model-hub caches, and no network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture(scope="module")
def x3d_xs():
    torch.manual_seed(0)
    return hub.x3d_xs(pretrained=False).eval()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("bert"), TITLES)


def _hub_function(builder):
    """The pytorchvideo hub function a registry builder wraps (None for other builders)."""
    code, closure = getattr(builder, "__code__", None), getattr(builder, "__closure__", None)
    if code is None or closure is None:
        return None
    return dict(zip(code.co_freevars, (cell.cell_contents for cell in closure))).get("hub_model")


@pytest.mark.parametrize("name", list(ENCODERS))
def test_every_encoder_names_its_upstream_weights(name):
    spec = ENCODERS[name]
    weights = spec.weights
    assert weights.kind in KINDS and weights.size_mb > 0 and weights.name and weights.detail
    hub_model = _hub_function(spec.builder)
    if hub_model is not None:  # the URL pytorchvideo's own hub function fetches
        upstream = sys.modules[hub_model.__module__].checkpoint_paths[hub_model.__name__]
        assert (weights.kind, weights.location) == ("model zoo", upstream)
        assert weights.file_name == upstream.rsplit("/", 1)[1] and "/kinetics/" in upstream
        assert spec.logits_head
    elif weights.kind == "torchvision":  # the enum's URL, published size and hash
        enum = get_weight(weights.detail.split()[-1])
        assert weights.location == enum.url and weights.size_mb == enum.meta["_file_size"]
        assert weights.file_name == f"{enum.url.rsplit('/', 1)[1]}"
        assert weights.sha256_prefix and weights.file_name.endswith(f"-{weights.sha256_prefix}.pth")
    else:
        assert weights.kind == "hub" and HUB_ID.match(weights.location)


def test_the_pytorchvideo_family_is_the_model_zoo():
    zoo = [name for name, spec in ENCODERS.items() if spec.weights.kind == "model zoo"]
    assert len(zoo) == 13 and "slowfast-r50" in zoo and "r3d-r18" not in zoo


def test_pretrained_reads_the_model_zoo_file_pytorchvideo_itself_reads(caches, x3d_xs, caplog):
    path = seed_torch_hub(caches / "torch", "X3D_XS.pyth", x3d_xs.state_dict())
    with caplog.at_level(logging.INFO):
        encoder = build_encoder("x3d-xs", checkpoint="pretrained")
    upstream = x3d_xs.state_dict()
    ours = encoder.state_dict()
    assert all(torch.equal(ours[key], upstream[key]) for key in ours)  # same names, same tensors
    assert len(ours) == len(upstream) - 2  # all but the classifier (features head)
    assert encoder.pretrained
    log = caplog.text
    assert "model zoo X3D_XS.pyth" in log and str(path) in log and file_sha256(path)[:12] in log
    # pytorchvideo's own hub function finds the same file in the same cache, offline
    theirs = hub.x3d_xs(pretrained=True)
    assert torch.equal(theirs.blocks[1].res_blocks[0].branch2.conv_a.weight,
                       encoder.blocks[1].res_blocks[0].branch2.conv_a.weight)


def test_a_checkpoint_url_reads_the_same_cache(caches, x3d_xs):
    path = seed_torch_hub(caches / "torch", "X3D_XS.pyth", x3d_xs.state_dict())
    weights = resolve_weights("x3d-xs", X3D_URL, None)
    assert weights.path == path and weights.origin == "model zoo X3D_XS.pyth"


def test_offline_without_the_file_is_one_error_naming_file_url_cache_and_opt_out(caches):
    with pytest.raises(WeightsUnavailable) as raised:
        build_encoder("x3d-xs", checkpoint="pretrained")
    message = str(raised.value)
    assert "\n" not in message
    for part in ("X3D_XS.pyth", X3D_URL, str(caches / "torch" / "hub" / "checkpoints" / "X3D_XS.pyth"),
                 "HF_HUB_OFFLINE", "encoder_checkpoint: random", "fetch-weights x3d-xs"):
        assert part in message


def test_a_torchvision_file_that_fails_the_published_hash_is_refused(caches):
    seed = caches / "torch" / "hub" / "checkpoints" / "r3d_18-b3b3357e.pth"
    seed.parent.mkdir(parents=True)
    torch.save({"stem.0.weight": torch.zeros(1)}, seed)
    with pytest.raises(CheckpointError, match="does not start with the published b3b3357e"):
        build_encoder("r3d-r18", checkpoint="pretrained")


def test_pretrained_text_weights_come_from_the_hub_cache_with_their_tokenizer(caches, tiny_bert):
    snapshot = seed_hub_cache(caches / "hf", "prajjwal1/bert-tiny", tiny_bert)
    weights = resolve_weights("bert-tiny", "pretrained", ENCODERS["bert-tiny"].weights)
    assert weights.path == snapshot and weights.origin == "hub prajjwal1/bert-tiny"
    assert resolve_tokenizer(weights.path, None) == str(snapshot)
    vocab_size = checkpoint_config(weights.path)["vocab_size"]
    encoder = build_encoder("bert-tiny", checkpoint=weights, overrides={"vocab_size": vocab_size})
    saved = torch.nn.Embedding(vocab_size, 128)
    from safetensors.torch import load_file
    saved.weight.data = load_file(tiny_bert / "model.safetensors")["embeddings.word_embeddings.weight"]
    assert torch.equal(encoder.blocks[0].embeddings.word_embeddings.weight, saved.weight)


def test_a_hub_id_given_directly_is_a_snapshot_with_its_tokenizer(caches, tiny_bert):
    """Was: 'checkpoint sentence-transformers/all-MiniLM-L6-v2 has no tokenizer'."""
    snapshot = seed_hub_cache(caches / "hf", "my-lab/title-bert", tiny_bert)
    weights = resolve_weights("minilm", "my-lab/title-bert", ENCODERS["minilm"].weights)
    assert weights.path == snapshot
    assert resolve_tokenizer(weights.path, None) == str(snapshot)


def test_a_hub_id_not_cached_offline_is_one_error_naming_it(caches):
    with pytest.raises(WeightsUnavailable) as raised:
        resolve_weights("minilm", "sentence-transformers/all-MiniLM-L6-v2", None)
    message = str(raised.value)
    assert "hub id sentence-transformers/all-MiniLM-L6-v2" in message
    assert "HF_HUB_OFFLINE" in message and "encoder_checkpoint: random" in message
    assert "fetch-weights sentence-transformers/all-MiniLM-L6-v2" in message
    assert str(caches / "hf" / "hub") in message
    # the row's own hub id: its size is known
    with pytest.raises(WeightsUnavailable, match="about 91 MB"):
        resolve_weights("minilm", "sentence-transformers/all-MiniLM-L6-v2",
                        ENCODERS["minilm"].weights)


def test_random_is_explicit_and_said(caches, caplog):
    with caplog.at_level(logging.INFO):
        encoder = build_encoder("x3d-xs", checkpoint="random")
    assert not encoder.pretrained and "x3d-xs: random weights" in caplog.text


def test_a_frozen_random_trunk_is_a_warning(caches, x3d_xs, caplog):
    with caplog.at_level(logging.WARNING):
        build_encoder("x3d-xs", checkpoint="random").set_finetune("full")
    assert "random" not in caplog.text  # everything trains: random weights are a choice
    with caplog.at_level(logging.WARNING):
        build_encoder("x3d-xs", checkpoint="random").set_finetune("top")
    assert "x3d-xs: its random weights stay fixed in blocks[:4]" in caplog.text
    caplog.clear()
    seed_torch_hub(caches / "torch", "X3D_XS.pyth", x3d_xs.state_dict())
    with caplog.at_level(logging.WARNING):
        build_encoder("x3d-xs", checkpoint="pretrained").set_finetune("top")
    assert "random" not in caplog.text


def test_the_logits_head_is_the_hub_models_own_output(caches, x3d_xs):
    """The reference code's head: the Kinetics-400 classifier output, as the hub model gives it
    (X3D: softmax), equal to pytorchvideo's at the input the checkpoint was trained on."""
    seed_torch_hub(caches / "torch", "X3D_XS.pyth", x3d_xs.state_dict())
    encoder = build_encoder("x3d-xs", checkpoint="pretrained", head="logits").eval()
    assert encoder.out_dim == 400
    clip = torch.randn(2, 3, 4, 160, 160)  # X3D-XS: 4 frames at 160 px
    with torch.no_grad():
        assert torch.allclose(encoder(clip), x3d_xs(clip), atol=1e-6)


def test_the_slowfast_classifier_moves_to_our_pool_block(caches):
    torch.manual_seed(0)
    upstream = hub.slowfast_r50(pretrained=False)
    seed_torch_hub(caches / "torch", "SLOWFAST_8x8_R50.pyth", upstream.state_dict())
    encoder = build_encoder("slowfast-r50", checkpoint="pretrained", head="logits")
    assert encoder.out_dim == 400 and len(encoder.blocks) == 6
    assert torch.equal(encoder.blocks[5].proj.weight, upstream.blocks[6].proj.weight)
    features = build_encoder("slowfast-r50", checkpoint="pretrained")
    assert features.out_dim == 2304 and features.blocks[5].proj is None


def test_encoders_without_a_classifier_keep_their_features(caches, caplog):
    with caplog.at_level(logging.INFO):
        encoder = build_encoder("r3d-r18", checkpoint="random", head="logits")
    assert encoder.out_dim == 512 and "no classifier head kept here" in caplog.text
    with pytest.raises(ValueError, match="encoder_head 'logit' is unknown"):
        build_encoder("r3d-r18", checkpoint="random", head="logit")


def _raw_items(root, videos=(), covers=(), titles=None):
    dataset = root / "data"
    (root / "raw" / "videos").mkdir(parents=True)
    (root / "raw" / "covers").mkdir()
    for token in videos:
        (root / "raw" / "videos" / f"{token}.mp4").write_bytes(b"")
    for token in covers:
        (root / "raw" / "covers" / f"{token}.jpg").write_bytes(b"")
    dataset.mkdir()
    if titles is not None:
        rows = "".join(f"{token},{title}\n" for token, title in titles.items())
        (dataset / "data.titles.csv").write_text("item_id,title\n" + rows)
    return ItemSource(dataset, root / "raw")


def test_items_without_content_are_counted_from_the_files(tmp_path):
    tokens = ["[PAD]", "1", "2", "3", "4"]
    source = _raw_items(tmp_path, videos=["1"], covers=["2"], titles={"1": "a", "2": " ", "3": "b"})
    assert items_without_content(tokens, "video", source) == 2  # 3 and 4: a grey clip
    assert items_without_content(tokens, "image", source) == 3
    assert items_without_content(tokens, "text", source) == 2  # an empty and a missing title


def test_a_content_model_over_mostly_missing_content_stops(tmp_path, caplog):
    tokens = ["[PAD]", "1", "2", "3", "4"]
    source = _raw_items(tmp_path, videos=["1"])
    with pytest.raises(ValueError, match="3 of 4 items have no video or cover.*allow_missing_content"):
        require_content(tokens, "video", source)
    with caplog.at_level(logging.WARNING):
        require_content(tokens, "video", source, allowed=True)
    assert "3 of 4 items" in caplog.text
    require_content(tokens[:3], "video", source)  # 1 of 2 missing: at the threshold, a warning


def test_fetch_weights_imports_a_file_downloaded_elsewhere(caches, x3d_xs, capsys):
    elsewhere = caches / "downloads"
    original = seed_torch_hub(elsewhere, "X3D_XS.pyth", x3d_xs.state_dict())
    assert not is_cached(ENCODERS["x3d-xs"].weights)
    assert cli.main(["fetch-weights", "x3d-xs", "--from", str(elsewhere)]) == 0
    cached = caches / "torch" / "hub" / "checkpoints" / "X3D_XS.pyth"
    assert cached.read_bytes() == original.read_bytes() and str(cached) in capsys.readouterr().out
    assert cli.main(["encoders", "--modality", "video"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "model zoo: X3D_XS.pyth" in rows["x3d-xs"] and " yes " in rows["x3d-xs"]
    assert " no " in rows["x3d-s"]


def test_fetch_weights_refuses_a_file_that_fails_the_published_hash(caches, capsys):
    elsewhere = caches / "downloads"
    elsewhere.mkdir()
    torch.save({"stem.0.weight": torch.zeros(1)}, elsewhere / "r3d_18-b3b3357e.pth")
    assert cli.main(["fetch-weights", "r3d-r18", "--from", str(elsewhere)]) == 2
    assert "published b3b3357e" in capsys.readouterr().err
    assert not (caches / "torch" / "hub" / "checkpoints" / "r3d_18-b3b3357e.pth").exists()


def test_fetch_weights_imports_a_hub_cache_folder(caches, tiny_bert, capsys):
    other_machine = caches / "other"
    seed_hub_cache(other_machine, "prajjwal1/bert-tiny", tiny_bert)
    assert cli.main(["fetch-weights", "bert-tiny", "--from", str(other_machine)]) == 0
    assert is_cached(ENCODERS["bert-tiny"].weights)
    assert cli.main(["fetch-weights", "bert-small"]) == 2  # offline, nothing to import
    assert "hub id prajjwal1/bert-small" in capsys.readouterr().err
    seed_hub_cache(other_machine, "my-lab/title-bert", tiny_bert)  # a hub id no row names
    assert cli.main(["fetch-weights", "my-lab/title-bert", "--from", str(other_machine)]) == 0
    snapshot = resolve_weights("minilm", "my-lab/title-bert", None).path
    assert snapshot.parents[1] == caches / "hf" / "hub" / "models--my-lab--title-bert"
