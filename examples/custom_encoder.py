"""A custom item encoder: a two-layer CNN over covers, registered beside the packaged ones so
``item_encoder: tiny-cnn`` (and ``extract-features --encoder tiny-cnn``) use it.

An encoder is a list of blocks whose last one pools to ``[N, out_dim]``; fine-tuning modes and
the trunk cache work on that list. ``CheckpointFormat`` says how to load its pre-trained weights.

    python examples/custom_encoder.py /tmp/work
"""
import sys

from torch import nn

from recbole_microlens.encoders import CheckpointFormat, EncoderSpec, InputSpec, register_encoder

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build_tiny_cnn(spec: InputSpec, overrides: dict):
    """``(blocks, out_dim)`` with random weights; ``overrides`` may set ``width``."""
    width = int(overrides.get("width", 16))
    blocks = [
        nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU()),
        nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU()),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),  # the pool: [N, width]
    ]
    return blocks, width


TINY_CNN = EncoderSpec(
    name="tiny-cnn", modality="image", builder=build_tiny_cnn,
    checkpoint_format=CheckpointFormat(expected="a state dict saved from this encoder's blocks"),
    input=InputSpec(size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD),
    description="example: 2 conv layers over 32x32 covers")

register_encoder(TINY_CNN)


def main(root: str) -> dict:
    from recbole_microlens.quick_start import run_recbole_ml

    return run_recbole_ml("SASRecV", "microlens-sample", config_dict={
        "data_path": f"{root}/atomic_files", "checkpoint_dir": f"{root}/saved", "epochs": 1,
        "item_modality": "image", "item_encoder": "tiny-cnn", "encoder_overrides": {"size": 32},
        "finetune": "full", "hidden_size": 16, "inner_size": 32, "show_progress": False})


if __name__ == "__main__":
    print(main(sys.argv[1])["test_result"])
