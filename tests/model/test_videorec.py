"""VideoRec: content towers trained end to end, and the trainer's exact speed-ups."""
import pytest
import torch

from recbole_microlens.data.sample.generate import generate_sample_raw
from recbole_microlens.encoders import ENCODERS
from recbole_microlens.model import get_model
from recbole_microlens.quick_start import run_recbole_ml
from recbole_microlens.trainer.trainer import MLTrainer
from tests.helpers import built_run, make_config

TINY_VIDEO = {"item_encoder": "r3d-r18", "encoder_overrides": {"size": 16},
              "encoder_checkpoint": "random"}
TINY_TEXT = {"item_encoder": "bert-tiny", "item_modality": "text"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videorec")
    generate_sample_raw(root / "raw", n_users=40, n_items=40, seed=3)
    return root


def build(root, model="SASRecV", **overrides):
    options = {"raw_data_path": str(root / "raw"), "train_batch_size": 8, "hidden_size": 16,
               "inner_size": 32, "embedding_size": 16, "encode_chunk_size": 16, **overrides}
    config = make_config(root / "atomic", "tinylens", model=model, **options)
    train, valid, test = built_run(config, model=False).splits
    torch.manual_seed(0)
    model = get_model(model)(config, train._dataset)
    return config, model, MLTrainer(config, model), train, valid, test


def loss_and_grads(trainer, model, batch):
    params = [p for p in model.parameters() if p.requires_grad]
    loss = trainer._step_loss(batch)
    return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)


def assert_same(a, b, atol=1e-6):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert torch.allclose(loss_a, loss_b, atol=atol), (loss_a, loss_b)
    for ga, gb in zip(grads_a, grads_b):
        if ga is None or gb is None:
            assert ga is None and gb is None
        else:
            assert torch.allclose(ga, gb, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("encoder", [TINY_TEXT, TINY_VIDEO], ids=["text", "video"])
def test_unique_item_encoding_is_exact_and_cheaper(root, encoder):
    _, model, trainer, train, _, _ = build(root, finetune="full", trunk_cache=False, **encoder)
    model.eval()  # dropout off; BatchNorm on running statistics (batch statistics would differ)
    batch = next(iter(train))
    tower = model.item_tower
    trainer.unique_items = False
    tower.items_encoded = 0
    naive = loss_and_grads(trainer, model, batch)
    naive_passes = tower.items_encoded
    trainer.unique_items = True
    tower.items_encoded = 0
    unique = loss_and_grads(trainer, model, batch)
    assert_same(naive, unique)
    ids = torch.cat([batch["item_id_list"].flatten(), batch["item_id"]])
    assert tower.items_encoded == len(torch.unique(ids[ids > 0]))
    assert naive_passes >= batch["item_id_list"].numel() > tower.items_encoded


def test_trunk_cache_float32_is_exact_float16_is_close(root):
    _, model, trainer, train, _, _ = build(root, finetune="top", trunk_cache=False, **TINY_VIDEO)
    model.eval()  # no dropout, BatchNorm on running statistics: a deterministic comparison
    batch = next(iter(train))
    plain = loss_and_grads(trainer, model, batch)
    for dtype, atol in (("float32", 1e-5), ("float16", 5e-2)):
        trainer.config["trunk_cache_dtype"] = dtype
        trainer.config["trunk_cache"] = True
        trainer._prepare_trunk_cache(show_progress=False)
        cached = loss_and_grads(trainer, model, batch)
        assert_same(plain, cached, atol=atol)
        model.item_tower.use_trunk_cache(None)
    trunk = model.item_tower.encoder.trainable_block_start
    assert 0 < trunk < model.item_tower.encoder.num_blocks


def test_trunk_cache_keeps_the_live_memory_layout(root):
    """Cached trunk outputs come back in the layout the live trunk produced (channels-last for
    clips): CPU convolutions are many times slower on another layout."""
    _, model, trainer, *_ = build(root, finetune="top", trunk_cache=True, **TINY_VIDEO)
    tower = model.item_tower
    ids = torch.tensor([1, 2, 3])
    with torch.no_grad():
        live = tower.encoder.run_blocks(tower.inputs(ids, "cpu"), 0, tower.encoder.trainable_block_start)
    trainer._prepare_trunk_cache(show_progress=False)
    cached = tower.runtime.trunk_cache.lookup(ids, "cpu")
    assert live.is_contiguous(memory_format=torch.channels_last_3d) and not live.is_contiguous()
    assert cached.stride() == live.stride()
    assert torch.allclose(cached, live, atol=1e-2)


def test_trunk_cache_trains_only_the_top(root):
    _, model, trainer, train, _, _ = build(root, finetune="top", **TINY_VIDEO)
    trainer._prepare_trunk_cache(show_progress=False)
    encoder = model.item_tower.encoder
    trunk_params = [p for b in encoder.blocks[: encoder.trainable_block_start] for p in b.parameters()]
    assert trunk_params and not any(p.requires_grad for p in trunk_params)
    before = [p.detach().clone() for p in encoder.parameters()]
    trainer._train_epoch(train, 0)
    changed = [not torch.equal(b, p) for b, p in zip(before, encoder.parameters())]
    assert any(changed)
    assert not any(c for c, p in zip(changed, encoder.parameters()) if not p.requires_grad)


def test_evaluation_encodes_every_item_once(root):
    _, model, trainer, _, valid, _ = build(root, **TINY_TEXT)
    tower = model.item_tower
    tower.items_encoded = 0
    with_table = trainer.evaluate(valid, load_best_model=False)
    assert tower.items_encoded == tower.n_items - 1  # every real item once, padding never
    model.eval()
    batch = next(iter(valid))[0]
    direct = model.full_sort_predict(batch)  # no table: encodes every item again
    from recbole_microlens.model.layers import item_table_once

    with torch.no_grad(), item_table_once(model):
        assert torch.allclose(model.full_sort_predict(batch), direct, atol=1e-5)
    assert {key for key in with_table if "@" in key} == {"hit@10", "ndcg@10", "hit@20", "ndcg@20"}
    assert all(isinstance(value, float) for value in with_table.values())  # RecBole's shape
    breakdowns = with_table.breakdowns  # a content tower reports its fallback targets beside
    assert breakdowns["fallback_targets"] >= 0 and set(breakdowns["real_content"]) == {
        "hit@10", "ndcg@10", "hit@20", "ndcg@20"}


def test_encoder_gets_its_own_learning_rate(root):
    _, model, trainer, *_ = build(root, learning_rate=1e-3, encoder_learning_rate=5e-5, **TINY_TEXT)
    groups = trainer.optimizer.param_groups
    assert [g["lr"] for g in groups] == [1e-3, 5e-5]
    encoder_ids = {id(p) for p in model.item_tower.encoder.parameters()}
    assert all(id(p) in encoder_ids for p in groups[1]["params"])


def seeded_loss_and_grads(trainer, model, batch, seed=1):
    """Loss and gradients with the RNG reset first: in train mode dropout draws the same masks."""
    torch.manual_seed(seed)
    return loss_and_grads(trainer, model, batch)


def test_checkpointing_keeps_the_loss_and_gradients(root, monkeypatch):
    from recbole_microlens.model import layers

    _, model, trainer, train, _, _ = build(root, finetune="full", trunk_cache=False, **TINY_TEXT)
    model.train()  # dropout on: checkpointing runs in training only, and must replay its masks
    batch = next(iter(train))
    reference = seeded_loss_and_grads(trainer, model, batch)
    assert not torch.allclose(reference[0], seeded_loss_and_grads(trainer, model, batch, seed=2)[0])
    checkpointed_blocks = []
    real_checkpoint = layers.checkpoint
    monkeypatch.setattr(layers, "checkpoint", lambda function, x, start, stop, **options: (
        checkpointed_blocks.append(start) or real_checkpoint(function, x, start, stop, **options)))
    model.item_tower.configure_runtime(checkpoint_blocks=True,
                                       length_grouping=model.item_tower.runtime.length_grouping)
    checkpointed = seeded_loss_and_grads(trainer, model, batch)
    encoder = model.item_tower.encoder
    assert set(checkpointed_blocks) == set(range(encoder.num_blocks))  # every block, recomputed
    assert_same(reference, checkpointed, atol=1e-5)
    assert sum(g is not None and bool(g.abs().sum()) for g in checkpointed[1]) > 5


BF16_STEP = """
import json, sys
from pathlib import Path
import torch
from recbole_microlens.precision import bf16_safe_kernels
from tests.model.test_videorec import TINY_TEXT, build, seeded_loss_and_grads

_, model, trainer, train, _, _ = build(Path(sys.argv[1]), finetune="full", trunk_cache=False,
                                       **TINY_TEXT)
model.train()
batch = next(iter(train))
losses = {}
for bf16 in (False, True):
    trainer.bf16 = bf16
    with bf16_safe_kernels(trainer.device, bf16):
        losses[str(bf16)] = seeded_loss_and_grads(trainer, model, batch)[0].item()
print(json.dumps(losses))
"""


def test_bf16_autocast_keeps_the_loss(root):
    """In its own interpreter: bf16 on CPU runs native kernels (see test_precision.py)."""
    from tests.helpers import run_isolated

    losses = run_isolated(BF16_STEP, root)
    assert abs(losses["True"] - losses["False"]) < 0.1


@pytest.mark.parametrize("model", ["SASRecV", "GRU4RecV", "NextItNetV"])
def test_videorec_models_run_end_to_end(root, model):
    result = run_recbole_ml(model, "tinylens", config_dict={
        "data_path": str(root / "atomic"), "raw_data_path": str(root / "raw"),
        "checkpoint_dir": str(root / "saved"), "epochs": 1, "show_progress": False,
        "train_batch_size": 16, "hidden_size": 16, "inner_size": 32, "embedding_size": 16,
        **TINY_VIDEO})
    assert 0.0 <= result["test"]["hit@10"] <= 1.0
    assert result["config"]["item_tower"] == "encoder"


class ChangedCover:
    """A cover store whose image at ``row`` is inverted (what a new cover file would give)."""

    def __init__(self, store, row: int):
        self.store, self.row = store, row

    def __getitem__(self, rows):
        images = self.store[rows].copy()
        images[rows == self.row] = 255 - images[rows == self.row]
        return images


def test_covers_as_items(root, monkeypatch):
    """An image tower encodes each item's cover from the cover store: inputs are that cover,
    normalised, at the encoder's size, and a changed cover changes that item's vector only."""
    _, model, *_ = build(root, item_modality="image", item_encoder="resnet18",
                         encoder_overrides={"size": 32})
    tower = model.item_tower.eval()
    store = tower.inputs.store
    assert store.folder.name == "covers_s32" and store.data.shape[1:] == (32, 32, 3)
    ids = torch.arange(1, 6)
    rows = tower.inputs.rows_by_id[ids].numpy()
    x = tower.inputs(ids, "cpu")
    assert x.shape == (5, 3, 32, 32)
    spec = tower.encoder.input
    pixels = x * torch.tensor(spec.std).view(1, 3, 1, 1) + torch.tensor(spec.mean).view(1, 3, 1, 1)
    stored = torch.from_numpy(store[rows]).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(pixels, stored, atol=1e-5, rtol=0)
    with torch.no_grad():
        before = tower(ids)
        monkeypatch.setattr(tower.inputs, "store", ChangedCover(store, rows[2]))
        after = tower(ids)
    changed = [not torch.allclose(a, b, atol=1e-6) for a, b in zip(before, after)]
    assert changed == [False, False, True, False, False]

    result = run_recbole_ml("SASRecV", "tinylens", config_dict={
        "data_path": str(root / "atomic"), "raw_data_path": str(root / "raw"),
        "checkpoint_dir": str(root / "saved"), "epochs": 1, "show_progress": False,
        "train_batch_size": 16, "hidden_size": 16, "inner_size": 32,
        "item_modality": "image", "item_encoder": "resnet18", "encoder_overrides": {"size": 32},
        "encoder_checkpoint": "random"})
    assert result["config"]["item_modality"] == "image"
    assert result["encoder_items_per_epoch"][0] > 0  # the trained tower encoded covers


def test_prepare_media_and_encoders_commands(root, capsys):
    from recbole_microlens.cli import commands as cli

    build(root, **TINY_TEXT)  # converts the raw files into root/atomic/tinylens
    code = cli.main(["prepare-media", "--dataset", "tinylens", "--data-path", str(root / "atomic"),
                     "--raw-dir", str(root / "raw"), "--size", "16", "--workers", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    media = root / "atomic" / "tinylens" / "media"
    assert (media / "frames_n5_i1_s16" / "meta.json").is_file()
    assert (media / "covers_s16" / "meta.json").is_file()
    assert "'missing': 1" in printed  # the sample's deliberately missing video is reported
    assert cli.main(["encoders"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["name", "kind", "weights"]
    assert [row.split()[:2] for row in rows] == [[name, spec.modality]
                                                 for name, spec in ENCODERS.items()]
    assert all(spec.weights.name in row and row.endswith(spec.description)
               for row, spec in zip(rows, ENCODERS.values()))
    assert cli.main(["prepare-media", "--dataset", "nothing", "--data-path", str(root)]) == 2
