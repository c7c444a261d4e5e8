"""Video encoders (Table 6 of the paper) as ordered blocks ending in a pooling block.

Every builder returns ``(blocks, out_dim)``; input clips are ``[N, 3, T, H, W]``. pytorchvideo's
hub functions are called with ``pretrained=False``, so each architecture is exactly the one its
Kinetics-400 checkpoint was trained with, then the classification head is swapped for a block
that returns the penultimate features (``encoder_head: logits`` keeps the classifier behind that
pooling: the reference code's Kinetics-400 outputs, see :class:`PoolHead`).

How each family takes the protocol's 5 frames:

* CNNs (R3D, C2D, I3D, Slow, CSN, R(2+1)D, X3D): convolutions take any clip length; only the
  heads' fixed average-pool kernels (sized for 8-32 frames at 224: X3D's fails with "input image
  (T:5 H:7 W:7) smaller than kernel size") did not. They become global averages, which equal
  the original kernels at the original input. X3D keeps its learned head projection.
  C2D and I3D max-pool time by 2 after stage 1, so they need at least 2 frames.
* SlowFast: the fast pathway sees every frame, the slow one every ``alpha``-th (frames 0 and 4 of
  5), which keeps the fast-to-slow fusion (temporal stride ``alpha``) aligned for any clip length.
* MViT and VideoMAE: one token spans 2 frames, so an odd clip is padded by repeating its last
  frame (5 -> 6 frames, 3 temporal tokens) and the model is built for that length (MViT's learned
  temporal position table is resampled when a 16- or 32-frame checkpoint is loaded).
"""
from __future__ import annotations

from typing import Callable

import torch
from pytorchvideo.models.net import MultiPathWayWithFuse
from torch import nn
from torchvision.models.video import r3d_18
from transformers import VideoMAEConfig, VideoMAEModel

from recbole_microlens.encoders.base import Blocks, Builder, InputSpec
from recbole_microlens.encoders.formats import CheckpointFormat, KeyRule


# Tokens of MViT and VideoMAE span this many frames.
TUBELET_FRAMES = 2

PYTORCHVIDEO_FORMAT = CheckpointFormat(
    expected="a pytorchvideo .pyth file (torch file holding {'model_state': state_dict})",
    # The classifier: loaded into a logits head (the pool block), else dropped.
    rules=(KeyRule(r"^blocks\.\d+\.proj\.", "blocks.{last}.proj."),),
    ignored=(r"^blocks\.\d+\.proj\.",),
)
MVIT_FORMAT = CheckpointFormat(
    expected="a pytorchvideo .pyth file (torch file holding {'model_state': state_dict})",
    rules=(
        KeyRule(r"^(?P<name>patch_embed|cls_positional_encoding)\.", "blocks.0.{name}."),
        KeyRule(r"^blocks\.(?P<i>\d+)\.", "blocks.{i}.block.", shift=1),
        KeyRule(r"^norm_embed\.", "blocks.{last}.norm."),
        KeyRule(r"^head\.proj\.", "blocks.{last}.proj."),
    ),
    ignored=(r"^head\.",),
    resizable=("pos_embed_temporal",),
)
TORCHVISION_R3D_FORMAT = CheckpointFormat(
    expected="a torchvision .pth state dict (torchvision.models.video.r3d_18)",
    rules=(KeyRule(r"^stem\.", "blocks.0."), KeyRule(r"^layer(?P<i>\d)\.", "blocks.{i}.")),
    ignored=(r"^fc\.",),
)
VIDEOMAE_FORMAT = CheckpointFormat(
    expected="a Hugging Face folder of VideoMAEForVideoClassification "
    "(config.json + model.safetensors or pytorch_model.bin)",
    rules=(
        KeyRule(r"^(videomae\.)?embeddings\.", "blocks.0.embeddings."),
        KeyRule(r"^(videomae\.)?encoder\.layer\.(?P<i>\d+)\.", "blocks.{i}.", shift=1),
        KeyRule(r"^fc_norm\.", "blocks.{last}.norm."),
    ),
    ignored=(r"^classifier\.",),
)


def pad_frames(clip: torch.Tensor, frames: int) -> torch.Tensor:
    """Repeats the last frame of ``[N, C, T, H, W]`` until it has ``frames`` frames."""
    missing = frames - clip.shape[2]
    if missing <= 0:
        return clip
    return torch.cat([clip, clip[:, :, -1:].expand(-1, -1, missing, -1, -1)], dim=2)


def tubelet_frames(frames: int) -> int:
    """The clip length a 2-frame-token model is built for: ``frames`` rounded up to even."""
    return -(-frames // TUBELET_FRAMES) * TUBELET_FRAMES


class PoolHead(nn.Module):
    """A last (pooling) block that may keep the upstream classifier (dropout, ``proj``, its
    activation, named as upstream): it then returns the classifier's output, e.g. the
    Kinetics-400 logits the reference code projects (``encoder_head: logits``)."""

    def __init__(self):
        super().__init__()
        self.dropout = self.proj = self.activation = None

    def keep_classifier(self, head: nn.Module) -> PoolHead:
        self.dropout, self.proj, self.activation = head.dropout, head.proj, head.activation
        return self

    @property
    def out_dim(self) -> int | None:
        return None if self.proj is None else self.proj.out_features

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            return features
        for layer in (self.dropout, self.proj, self.activation):
            if layer is not None:
                features = layer(features)
        return features


class SpatiotemporalMeanPool(PoolHead):
    """``[N, C, T, H, W] -> [N, C]``: the heads' fixed-kernel average, for any clip size."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.classify(clip.mean(dim=(2, 3, 4)))


class X3DHeadPool(PoolHead):
    """X3D's learned head without its classifier: 1x1x1 conv, BN, ReLU, global pool (the
    Kinetics kernel made adaptive), 1x1x1 conv to 2048, ReLU. Named ``pool`` as upstream."""

    def __init__(self, projected_pool: nn.Module):
        super().__init__()
        projected_pool.pool = nn.AdaptiveAvgPool3d(1)
        self.pool = projected_pool

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(features).flatten(1))


class SlowFastStem(nn.Module):
    """SlowFast's first block, fed one clip: the slow pathway takes every ``alpha``-th frame,
    the fast one all frames. Keeps upstream's child names so checkpoints load unchanged."""

    def __init__(self, stem: MultiPathWayWithFuse, alpha: int):
        super().__init__()
        self.multipathway_blocks = stem.multipathway_blocks
        self.multipathway_fusion = stem.multipathway_fusion
        self.alpha = alpha

    def forward(self, clip: torch.Tensor) -> list[torch.Tensor]:
        pathways = [clip[:, :, :: self.alpha], clip]
        pathways = [block(x) for block, x in zip(self.multipathway_blocks, pathways)]
        return self.multipathway_fusion(pathways)


class SlowFastPool(PoolHead):
    """``[slow, fast] -> [N, C_slow + C_fast]``: each pathway averaged, then concatenated."""

    def forward(self, pathways: list[torch.Tensor]) -> torch.Tensor:
        return self.classify(torch.cat([x.mean(dim=(2, 3, 4)) for x in pathways], dim=1))


class MViTEmbed(nn.Module):
    """Clip -> tokens: pads to the even length the model was built for, patchifies, adds the
    class token and position tables."""

    def __init__(self, mvit: nn.Module, frames: int):
        super().__init__()
        self.patch_embed = mvit.patch_embed
        self.cls_positional_encoding = mvit.cls_positional_encoding
        self.pos_drop = mvit.pos_drop
        self.norm_patch_embed = mvit.norm_patch_embed
        self.frames = frames

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        tokens = self.cls_positional_encoding(self.patch_embed(pad_frames(clip, self.frames)))
        for optional in (self.pos_drop, self.norm_patch_embed):
            if optional is not None:
                tokens = optional(tokens)
        return tokens


class MViTBlock(nn.Module):
    """One multiscale block at its token grid ``thw``, fixed by the build-time input size, so
    blocks pass plain token tensors."""

    def __init__(self, block: nn.Module, thw: list[int]):
        super().__init__()
        self.block = block
        self.thw = thw

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.block(tokens, list(self.thw))[0]


class ClassTokenPool(PoolHead):
    """Final norm, then the class token: the feature MViT's own classifier reads."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.classify(self.norm(tokens)[:, 0])


class VideoMAEEmbed(nn.Module):
    """Clip ``[N, C, T, H, W]`` -> tubelet tokens, padded to the even length built for."""

    def __init__(self, embeddings: nn.Module, frames: int):
        super().__init__()
        self.embeddings = embeddings
        self.frames = frames

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.embeddings(pad_frames(clip, self.frames).transpose(1, 2), None)


class MeanTokenPool(nn.Module):
    """Mean of all tokens, then a norm: VideoMAE's ``use_mean_pooling`` + ``fc_norm`` feature."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(tokens.mean(dim=1))


def _split_head(overrides: dict) -> tuple[bool, dict]:
    """(whether the builder override ``head`` asks for the logits head, the other overrides)."""
    rest = dict(overrides)
    return rest.pop("head", "features") == "logits", rest


def _pool_head(pool: PoolHead, head: nn.Module, logits: bool) -> tuple[PoolHead, int]:
    """``pool``, keeping the upstream classifier ``head`` for a logits head; and its output size."""
    if logits:
        pool.keep_classifier(head)
    return pool, pool.out_dim or head.proj.in_features


def pytorchvideo_cnn(hub_model: Callable[..., nn.Module]) -> Builder:
    """Builder for a pytorchvideo ResNet-style net: its blocks with the head made a mean pool."""

    def build(spec_input: InputSpec, overrides: dict) -> Blocks:
        logits, overrides = _split_head(overrides)
        *trunk, head = hub_model(pretrained=False, **overrides).blocks
        pool, out_dim = _pool_head(SpatiotemporalMeanPool(), head, logits)
        return [*trunk, pool], out_dim

    return build


def pytorchvideo_x3d(hub_model: Callable[..., nn.Module]) -> Builder:
    """Builder for an X3D size: the learned head kept, its pooling global."""

    def build(spec_input: InputSpec, overrides: dict) -> Blocks:
        logits, overrides = _split_head(overrides)
        *trunk, head = hub_model(pretrained=False, **overrides).blocks
        pool, out_dim = _pool_head(X3DHeadPool(head.pool), head, logits)
        return [*trunk, pool], out_dim

    return build


def pytorchvideo_slowfast(hub_model: Callable[..., nn.Module]) -> Builder:
    """Builder for a SlowFast depth: one-clip stem, the four fused stages, a two-pathway pool."""

    def build(spec_input: InputSpec, overrides: dict) -> Blocks:
        logits, overrides = _split_head(overrides)
        stem, *stages, _pool_concat, head = hub_model(pretrained=False, **overrides).blocks
        for stage in stages:
            stage.inplace = False  # in place, a stage would overwrite a cached trunk output
        alpha = stem.multipathway_fusion.conv_fast_to_slow.stride[0]
        pool, out_dim = _pool_head(SlowFastPool(), head, logits)
        return [SlowFastStem(stem, alpha), *stages, pool], out_dim

    return build


def pytorchvideo_mvit(hub_model: Callable[..., nn.Module]) -> Builder:
    """Builder for an MViT-B: built for the (padded) clip length and frame size of the input."""

    def build(spec_input: InputSpec, overrides: dict) -> Blocks:
        logits, overrides = _split_head(overrides)
        frames = tubelet_frames(spec_input.frames)
        settings = {"temporal_size": frames, "spatial_size": spec_input.size, **overrides}
        mvit = hub_model(pretrained=False, **settings)
        thw = list(mvit.cls_positional_encoding.patch_embed_shape)
        blocks = [MViTEmbed(mvit, frames)]
        for block in mvit.blocks:
            blocks.append(MViTBlock(block, thw))
            thw = _pooled_grid(thw, block.attn.pool_q)
        pool = ClassTokenPool(mvit.norm_embed)
        if logits:
            pool.keep_classifier(mvit.head)
        blocks.append(pool)
        return blocks, pool.out_dim or mvit.norm_embed.normalized_shape[0]

    return build


def _pooled_grid(thw: list[int], pool: nn.Module | None) -> list[int]:
    """The token grid after a block's query pooling (a strided conv or pool, or none)."""
    if pool is None:
        return thw
    sizes = [_per_dim(size) for size in (pool.kernel_size, pool.stride, pool.padding)]
    return [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(thw, *sizes)]


def _per_dim(size: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(size) if isinstance(size, (tuple, list)) else (size,) * 3


def build_r3d_r18(spec_input: InputSpec, overrides: dict) -> Blocks:
    """torchvision's R3D-18 (pytorchvideo's ``create_resnet`` has no depth 18)."""
    net = r3d_18(weights=None, **overrides)
    layers = [net.stem, net.layer1, net.layer2, net.layer3, net.layer4]
    return [*layers, SpatiotemporalMeanPool()], net.fc.in_features


def build_videomae_b(spec_input: InputSpec, overrides: dict) -> Blocks:
    """VideoMAE ViT-B/16 with mean pooling, built for the (padded) clip length and frame size."""
    frames = tubelet_frames(spec_input.frames)
    settings = {"num_frames": frames, "image_size": spec_input.size, "use_mean_pooling": True}
    config = VideoMAEConfig(**{**settings, **overrides})
    model = VideoMAEModel(config)
    # VideoMAEForVideoClassification's fc_norm uses LayerNorm's default eps, not the config's.
    pool = MeanTokenPool(nn.LayerNorm(config.hidden_size))
    return [VideoMAEEmbed(model.embeddings, frames), *model.encoder.layer, pool], config.hidden_size

