"""The data stage: raw MicroLens files and the embedded sample -> atomic files and per-item
stores -> RecBole datasets and loaders (:mod:`.prepare` is the front door)."""
