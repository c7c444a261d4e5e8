"""Training: the epoch loop and its costs (de-duplication, trunk caches, precision), the
checkpoint format, and resumable training state."""
