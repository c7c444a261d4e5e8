"""Per-dataset artefacts built once and read many times (atomic files, frames, covers, titles,
frozen features), each complete or absent and built under a lock."""
