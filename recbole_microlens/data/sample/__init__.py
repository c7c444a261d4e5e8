"""The embedded sample dataset, generated: interactions, videos, covers and titles."""
