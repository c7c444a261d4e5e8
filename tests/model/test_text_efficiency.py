"""Top-k fine-tuning of a text encoder, cheaply and exactly: titles cut to their own length,
the trunk cache stored without padding, fused attention; each against the plain path."""
import numpy as np
import pytest
import torch

from recbole_microlens.data.stores.titles import TitleStore
from recbole_microlens.model.tower_cache import TokenTrunkCache, TrunkCache, token_rows
from tests.model.test_videorec import TINY_TEXT, assert_same, build, loss_and_grads, root  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")


def plain_and(trainer, model, batch, length_grouping=False, trunk_cache=None):
    """Loss and gradients on the plain path, then with the tower run as the switches say."""
    tower = model.item_tower
    tower.configure_runtime()
    plain = loss_and_grads(trainer, model, batch)
    tower.configure_runtime(length_grouping=length_grouping)
    tower.use_trunk_cache(trunk_cache)
    return plain, loss_and_grads(trainer, model, batch)


def test_titles_in_the_sample_have_several_lengths(root):
    """The checks below only mean something if titles differ in length and are padded."""
    _, model, *_ = build(root, finetune="full", trunk_cache=False, **TINY_TEXT)
    lengths = model.item_tower.inputs.lengths(torch.arange(1, model.item_tower.n_items))
    width = model.item_tower.inputs(torch.tensor([1]))["attention_mask"].shape[1]
    assert len(torch.unique(lengths)) >= 3 and int(lengths.max()) < width


def test_length_grouping_is_exact_and_pads_less(root):
    _, model, trainer, train, _, _ = build(root, finetune="full", trunk_cache=False, **TINY_TEXT)
    model.eval()  # dropout off: a deterministic comparison
    batch = next(iter(train))
    widths = []
    bert_block = model.item_tower.encoder.blocks[1]
    handle = bert_block.register_forward_hook(lambda m, args, out: widths.append(out[0].shape[1]))
    plain, grouped = plain_and(trainer, model, batch, length_grouping=True)
    handle.remove()
    assert_same(plain, grouped, atol=1e-5)
    full = model.item_tower.inputs(torch.tensor([1]))["attention_mask"].shape[1]
    n_plain = len(widths) // 2
    assert set(widths[:n_plain]) == {full}  # plain: every chunk padded to the store's length
    assert max(widths[n_plain:]) < full      # grouped: each chunk cut to its longest title


def test_token_trunk_cache_is_unpadded_and_exact(root):
    _, model, trainer, train, _, _ = build(root, finetune="top", trunk_cache=False, **TINY_TEXT)
    model.eval()
    batch = next(iter(train))
    tower = model.item_tower
    for dtype, atol in (("float32", 1e-5), ("float16", 5e-2)):
        trainer.config["trunk_cache_dtype"], trainer.config["trunk_cache"] = dtype, True
        trainer._prepare_trunk_cache(show_progress=False)
        cache = tower.runtime.trunk_cache
        assert isinstance(cache, TokenTrunkCache)
        all_lengths = tower.inputs.lengths(torch.arange(tower.n_items))
        assert cache.hidden.shape[0] == int(all_lengths.sum())  # real tokens only, no padding
        assert isinstance(cache.hidden, np.memmap)              # read by rows, never loaded whole
        plain, cached = plain_and(trainer, model, batch, length_grouping=True, trunk_cache=cache)
        assert_same(plain, cached, atol=atol)
        padded = plain_and(trainer, model, batch, length_grouping=False, trunk_cache=cache)[1]
        assert_same(plain, padded, atol=atol)  # the cache read back at the store's full width


def test_token_trunk_cache_rows_equal_the_live_trunk(root):
    _, model, trainer, *_ = build(root, finetune="top", trunk_cache=True, trunk_cache_dtype="float32",
                                  **TINY_TEXT)
    trainer._prepare_trunk_cache(show_progress=False)
    tower, ids = model.item_tower, torch.tensor([5, 0, 3, 3])
    with torch.no_grad():
        live, live_mask = tower.encoder.run_blocks(tower.inputs(ids, "cpu"), 0, tower.runtime.trunk_cache.start)
    hidden, mask = tower.runtime.trunk_cache.lookup(ids, "cpu", trim=False)
    assert hidden.shape == live.shape and torch.equal(mask, live_mask.long())
    real = mask.bool()
    assert torch.allclose(hidden[real], live[real], atol=1e-5)
    assert not hidden[~real].any()  # padding positions are zeros: masked, never stored
    trimmed, trimmed_mask = tower.runtime.trunk_cache.lookup(ids, "cpu", trim=True)
    assert trimmed.shape[1] == int(live_mask.sum(1).max()) < live.shape[1]
    assert torch.equal(trimmed, hidden[:, :trimmed.shape[1]])


def test_a_frozen_text_encoder_caches_its_pooled_vectors(root):
    """Frozen: the whole encoder, pool included, is the trunk, so the cache holds one vector per
    item (a token cache of the pool's output crashed the trunk-cache build)."""
    _, model, trainer, *_ = build(root, finetune="frozen", trunk_cache=True,
                                  trunk_cache_dtype="float32", **TINY_TEXT)
    trainer._prepare_trunk_cache(show_progress=False)
    tower, ids = model.item_tower, torch.tensor([5, 0, 3, 3])
    cache = tower.runtime.trunk_cache
    assert isinstance(cache, TrunkCache) and cache.start == tower.encoder.num_blocks
    with torch.no_grad():
        live = tower.encoder(tower.inputs(ids, "cpu"))
    assert torch.allclose(cache.lookup(ids, "cpu"), live, atol=1e-5)


def test_token_rows_lists_each_items_tokens_in_order():
    offsets = np.array([0, 2, 5, 6])  # item 0: rows 0-1, item 1: rows 2-4, item 2: row 5
    assert token_rows(offsets, np.array([2, 0, 1, 2])).tolist() == [5, 0, 1, 2, 3, 4, 5]


def test_fused_attention_matches_eager_attention(root):
    results = []
    for fused in (False, True):
        _, model, trainer, train, _, _ = build(root, finetune="full", trunk_cache=False,
                                               fused_attention=fused, **TINY_TEXT)
        model.eval()
        attention = type(model.item_tower.encoder.blocks[1].layer.attention.self).__name__
        assert ("Sdpa" in attention) == fused
        results.append(loss_and_grads(trainer, model, next(iter(train))))
    assert_same(*results, atol=1e-5)


def test_title_store_rejects_padding_before_a_real_token(root):
    _, model, *_ = build(root, finetune="full", trunk_cache=False, **TINY_TEXT)
    folder = model.item_tower.inputs.store.folder
    broken = root / "broken_titles"
    broken.mkdir(exist_ok=True)
    for path in folder.iterdir():
        if path.is_file():
            (broken / path.name).write_bytes(path.read_bytes())
    mask = np.load(folder / "attention_mask.npy").copy()
    mask[3, 0] = 0  # row 3: a padding slot before its real tokens
    np.save(broken / "attention_mask.npy", mask)
    with pytest.raises(ValueError, match=r"attention_mask\.npy: row 3 .*right-padded"):
        TitleStore.open(broken)
