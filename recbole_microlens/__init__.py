"""recbole-microlens: MicroLens as a first-class RecBole benchmark."""

__version__ = "0.1.0"
