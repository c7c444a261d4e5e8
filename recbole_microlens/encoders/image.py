"""Image (cover) encoders of Table 3/7 as ordered blocks ending in a pooling block.

Every builder returns ``(blocks, out_dim)``; inputs are ``[N, 3, H, W]``. Architectures come
from torchvision (``weights=None``) and transformers (a config object), never from a hub.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models import resnet18, swin_t
from transformers import ViTMAEConfig, ViTMAEModel

from recbole_microlens.encoders.base import Blocks, InputSpec
from recbole_microlens.encoders.formats import CheckpointFormat, KeyRule


TORCHVISION_RESNET_FORMAT = CheckpointFormat(
    expected="a torchvision .pth state dict (torchvision.models.resnet18)",
    rules=(
        KeyRule(r"^(?P<name>conv1|bn1)\.", "blocks.0.{name}."),
        KeyRule(r"^layer(?P<i>\d)\.", "blocks.{i}."),
    ),
    ignored=(r"^fc\.",),
)
TORCHVISION_SWIN_FORMAT = CheckpointFormat(
    expected="a torchvision .pth state dict (torchvision.models.swin_t)",
    rules=(KeyRule(r"^features\.(?P<i>\d+)\.", "blocks.{i}."), KeyRule(r"^norm\.", "blocks.{last}.norm.")),
    ignored=(r"^head\.",),
)
VITMAE_FORMAT = CheckpointFormat(
    expected="a Hugging Face folder of ViTMAEModel or ViTMAEForPreTraining "
    "(config.json + model.safetensors or pytorch_model.bin)",
    rules=(
        KeyRule(r"^(vit\.)?embeddings\.", "blocks.0.embeddings."),
        KeyRule(r"^(vit\.)?encoder\.layer\.(?P<i>\d+)\.", "blocks.{i}.", shift=1),
        KeyRule(r"^(vit\.)?layernorm\.", "blocks.{last}.norm."),
    ),
    ignored=(r"^decoder\.",),
)


class SpatialMeanPool(nn.Module):
    """``[N, C, H, W] -> [N, C]``: ResNet's global average pool."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3))


class ChannelsLastNormPool(nn.Module):
    """Swin's head without its classifier: norm over channels of ``[N, H, W, C]``, then mean."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.norm(features).mean(dim=(1, 2))


class ViTMAEEmbed(nn.Module):
    """Images -> class + patch tokens with nothing masked (mask ratio 0) and the patches kept in
    order, so the features are deterministic."""

    def __init__(self, embeddings: nn.Module):
        super().__init__()
        self.embeddings = embeddings

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n_patches = self.embeddings.patch_embeddings.num_patches
        in_order = torch.arange(n_patches, device=images.device, dtype=images.dtype)
        return self.embeddings(images, noise=in_order.expand(images.shape[0], -1))[0]


class PatchMeanPool(nn.Module):
    """Final norm, then the mean of the patch tokens (class token left out): the global-pool
    feature MAE is fine-tuned with."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(tokens)[:, 1:].mean(dim=1)


def build_resnet18(spec_input: InputSpec, overrides: dict) -> Blocks:
    """torchvision ResNet18: stem, four stages, global average pool."""
    net = resnet18(weights=None, **overrides)
    stem = nn.Sequential(OrderedDict(conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool))
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    return [stem, *stages, SpatialMeanPool()], net.fc.in_features


def build_swin_t(spec_input: InputSpec, overrides: dict) -> Blocks:
    """torchvision Swin-T: patch embedding, four stages with patch merging between them (each
    its own block), final norm and average pool."""
    net = swin_t(weights=None, **overrides)
    return [*net.features, ChannelsLastNormPool(net.norm)], net.head.in_features


def build_mae_base(spec_input: InputSpec, overrides: dict) -> Blocks:
    """transformers ViTMAEModel (ViT-B/16) with mask ratio 0, as a feature extractor."""
    settings = {"mask_ratio": 0.0, "image_size": spec_input.size}
    config = ViTMAEConfig(**{**settings, **overrides})
    model = ViTMAEModel(config)
    blocks = [ViTMAEEmbed(model.embeddings), *model.encoder.layer, PatchMeanPool(model.layernorm)]
    return blocks, config.hidden_size
