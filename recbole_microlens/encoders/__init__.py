"""Item encoders (video, cover image, title) behind one block-list interface; see ``registry``."""
from recbole_microlens.encoders.checkpoints import CheckpointError, load_checkpoint
from recbole_microlens.encoders.registry import (
    ENCODERS,
    FINETUNE_MODES,
    EncoderSpec,
    InputSpec,
    ItemEncoder,
    build_encoder,
    list_encoders,
)

__all__ = [
    "ENCODERS",
    "FINETUNE_MODES",
    "CheckpointError",
    "EncoderSpec",
    "InputSpec",
    "ItemEncoder",
    "build_encoder",
    "list_encoders",
    "load_checkpoint",
]
