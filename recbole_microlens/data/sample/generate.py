"""The embedded ``microlens-sample``: a small synthetic MicroLens in the official raw formats.

Nothing is downloaded or copied: every file is generated from a seed, so the whole pipeline
(converter, training, video/cover/title encoders) can run on 2 CPU cores in minutes, and tests can
rely on byte-identical outputs. The data carries a learnable signal on purpose: users prefer a
category, consecutive items follow category transitions and per-item "follower" items, and covers,
videos and titles all reflect the item's category, so sequential and content models beat
popularity on it.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbole_microlens.data.sample import text as sample_text
from recbole_microlens.data.sample.media import COVERS_DIR, VIDEOS_DIR, write_media
from recbole_microlens.io import atomic_open, write_json_atomic
from recbole_microlens.errors import ConfigError, ExistingOutputError

PREFIX = "MicroLens-sample"
PAIRS_TSV = f"{PREFIX}_pairs.tsv"
PAIRS_CSV = f"{PREFIX}_pairs.csv"
TITLES_CSV = f"{PREFIX}_titles.csv"
LIKES_AND_VIEWS = f"{PREFIX}_likes_and_views.txt"
TAGS_CSV = "tags_to_summary.csv"
COMMENTS = f"{PREFIX}_comment_en.txt"
MANIFEST = "sample_manifest.json"
MARKER = "SAMPLE_OK"
GENERATOR_VERSION = 1

# --- the simulated world -------------------------------------------------------------------
CATEGORIES = ("food", "gaming", "anime", "pets", "sports", "music", "beauty", "travel")
CATEGORY_SHARES = np.array([0.18, 0.16, 0.14, 0.12, 0.12, 0.10, 0.10, 0.08])
ZIPF_EXPONENT = 1.1
FOLLOWERS_PER_ITEM = 3
FOLLOW_PROB = 0.45  # next item is one of the previous item's followers
PREFERRED_PROB = 0.25  # otherwise: back to the user's preferred category
SUCCESSOR_PROB = 0.6  # otherwise: the previous category's successor (rest: any category)
MIN_SESSION, MAX_SESSION = 5, 20
SESSION_GEOMETRIC_P = 0.22
SHORT_USER_SHARE = 0.03  # users below the protocol's 5-interaction cut
START_MS = 1_651_363_200_000  # 2022-05-01 UTC
USER_START_SPREAD_MS = 30 * 24 * 3600 * 1000
MIN_GAP_MS = 3_000
SHORT_GAP_MEAN_MS = 15 * 60 * 1000
LONG_GAP_MEAN_MS = 24 * 3600 * 1000
LONG_GAP_PROB = 0.15

# One numpy stream per concern, so e.g. with_media never changes the interaction files.
RNG_STREAMS = {"items": 0, "users": 1, "times": 2, "titles": 3,
               "engagement": 4, "comments": 5, "media": 6}


@dataclass(frozen=True)
class ItemWorld:
    """The hidden structure behind the interactions: what makes the sample learnable."""

    category: np.ndarray  # (n_items,) category index per item (0-based items)
    popularity: np.ndarray  # (n_items,) Zipf-like weights, sum 1
    successor: np.ndarray  # (n_categories,) the category that usually comes next
    followers: tuple[np.ndarray, ...]  # per item: items that often come right after it


@dataclass(frozen=True)
class UserSequences:
    """Per-user chronological item ids (1-based) and their millisecond timestamps."""

    sequences: list[np.ndarray]
    timestamps: list[np.ndarray]

    @property
    def count(self) -> int:
        return sum(len(sequence) for sequence in self.sequences)

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Parallel (users, items, timestamps) arrays, users 1-based, in per-user order."""
        users = np.repeat(np.arange(1, len(self.sequences) + 1),
                          [len(sequence) for sequence in self.sequences])
        return users, np.concatenate(self.sequences), np.concatenate(self.timestamps)


# ============================================================================ public API ===


def generate_sample_raw(
    raw_dir: str | os.PathLike,
    *,
    n_users: int = 400,
    n_items: int = 300,
    seed: int = 2024,
    with_media: bool = True,
    video_seconds: float = 2.0,
) -> dict:
    """(Re)generate the whole sample into ``raw_dir`` and return its manifest.

    Everything is written into a temp dir beside ``raw_dir`` and renamed into place at the end,
    so an interrupted run never leaves a half-written sample behind.
    """
    _check_params(n_users, n_items, video_seconds)
    params = dict(n_users=n_users, n_items=n_items, seed=seed, with_media=with_media,
                  video_seconds=video_seconds)
    raw_dir = Path(raw_dir)
    if raw_dir.exists():
        _refuse_foreign_dir(raw_dir)
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f".{raw_dir.name}.", suffix=".tmp", dir=raw_dir.parent))
    work_dir.chmod(0o755)  # mkdtemp makes it private; the published sample is an ordinary dir
    try:
        manifest = _write_sample(work_dir, params)
        _publish(work_dir, raw_dir)
    except BaseException:
        shutil.rmtree(work_dir, ignore_errors=True)
        raise
    return manifest


def ensure_sample_raw(raw_dir: str | os.PathLike, **kw) -> dict:
    """Return the existing sample's manifest, generating it only if missing or made differently."""
    bound = inspect.signature(generate_sample_raw).bind(raw_dir, **kw)
    bound.apply_defaults()
    wanted = {name: value for name, value in bound.arguments.items() if name != "raw_dir"}
    existing = read_sample_manifest(raw_dir)
    if (existing is not None and existing["params"] == wanted
            and existing["generator_version"] == GENERATOR_VERSION):
        return existing
    return generate_sample_raw(raw_dir, **kw)


def read_sample_manifest(raw_dir: str | os.PathLike) -> dict | None:
    """The manifest of a complete sample in ``raw_dir``, or None if there is none."""
    raw_dir = Path(raw_dir)
    if not (raw_dir / MARKER).is_file():
        return None
    return json.loads((raw_dir / MANIFEST).read_text(encoding="utf-8"))


# ===================================================================== orchestration ===


def _check_params(n_users: int, n_items: int, video_seconds: float) -> None:
    if n_users < 1:
        raise ConfigError(f"n_users must be >= 1, got {n_users}")
    if n_items < 2 * MAX_SESSION:
        raise ConfigError(f"n_items must be >= {2 * MAX_SESSION} so sessions need not repeat items")
    if video_seconds <= 0:
        raise ConfigError(f"video_seconds must be > 0, got {video_seconds}")


def _write_sample(out_dir: Path, params: dict) -> dict:
    """Write every file of the sample into ``out_dir``; the marker goes last."""
    seed, n_items = params["seed"], params["n_items"]
    world = _build_item_world(n_items, _rng(seed, "items"))
    interactions = _simulate_interactions(params["n_users"], world, seed)
    item_counts = _item_counts(interactions, n_items)

    item_categories = [CATEGORIES[category] for category in world.category]
    sample_text.write_pairs_tsv(out_dir / PAIRS_TSV, interactions)
    sample_text.write_pairs_csv(out_dir / PAIRS_CSV, interactions)
    sample_text.write_titles(out_dir / TITLES_CSV, item_categories, _rng(seed, "titles"))
    sample_text.write_likes_and_views(out_dir / LIKES_AND_VIEWS, item_counts,
                                      _rng(seed, "engagement"))
    sample_text.write_tags(out_dir / TAGS_CSV, item_categories)
    n_comments = sample_text.write_comments(out_dir / COMMENTS, interactions, item_categories,
                                            _rng(seed, "comments"))

    manifest = {
        "dataset": "microlens-sample",
        "generator_version": GENERATOR_VERSION,
        "params": params,
        "n_interactions": interactions.count,
        "n_interacted_items": int((item_counts > 0).sum()),
        "n_users_below_5": sum(len(s) < MIN_SESSION for s in interactions.sequences),
        "n_comments": n_comments,
        "categories": list(CATEGORIES),
        "files": [PAIRS_TSV, PAIRS_CSV, TITLES_CSV, LIKES_AND_VIEWS, TAGS_CSV, COMMENTS,
                  MANIFEST, MARKER],
        "media": None,
        "truncated_video_item": None,
        "missing_video_item": None,
    }
    if params["with_media"]:
        media = write_media(out_dir, world.category, item_counts, params["video_seconds"],
                            _rng(seed, "media"))
        manifest.update(media=media, truncated_video_item=media["truncated_video_item"],
                        missing_video_item=media["missing_video_item"],
                        files=manifest["files"] + [f"{COVERS_DIR}/", f"{VIDEOS_DIR}/"])
    write_json_atomic(out_dir / MANIFEST, manifest)
    with atomic_open(out_dir / MARKER, "w", encoding="utf-8") as handle:
        handle.write(f"microlens-sample generator v{GENERATOR_VERSION}\n")
    return manifest


def _publish(work_dir: Path, raw_dir: Path) -> None:
    """Rename the finished sample into place, replacing an earlier one (checked to be ours)."""
    if raw_dir.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{raw_dir.name}.", suffix=".old",
                                        dir=raw_dir.parent))
        os.replace(raw_dir, retired / raw_dir.name)
        os.replace(work_dir, raw_dir)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(work_dir, raw_dir)


def _refuse_foreign_dir(raw_dir: Path) -> None:
    """Only an empty dir or one we generated may be replaced: a wrong path must not wipe data."""
    ours = (raw_dir / MARKER).exists() or (raw_dir / MANIFEST).exists()
    if not ours and any(raw_dir.iterdir()):
        raise ExistingOutputError(f"{raw_dir} exists and is not a microlens-sample directory")


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, RNG_STREAMS[stream]])


# ====================================================================== interactions ===


def _build_item_world(n_items: int, rng: np.random.Generator) -> ItemWorld:
    """Categories, Zipf popularity, a category cycle, and follower items per item."""
    n_categories = len(CATEGORIES)
    rest = rng.choice(n_categories, size=n_items - n_categories, p=CATEGORY_SHARES)
    category = rng.permutation(np.concatenate([np.arange(n_categories), rest]))  # none empty
    ranks = rng.permutation(n_items) + 1
    popularity = ranks.astype(np.float64) ** -ZIPF_EXPONENT
    popularity /= popularity.sum()
    cycle = rng.permutation(n_categories)
    successor = np.empty(n_categories, dtype=np.int64)
    successor[cycle] = np.roll(cycle, -1)
    followers = tuple(
        _draw_followers(successor[category[item]], category, popularity, rng)
        for item in range(n_items)
    )
    return ItemWorld(category, popularity, successor, followers)


def _draw_followers(next_category: int, category: np.ndarray, popularity: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """A few items of the successor category, flattened popularity so not all share the top."""
    candidates = np.flatnonzero(category == next_category)
    weights = np.sqrt(popularity[candidates])
    size = min(FOLLOWERS_PER_ITEM, len(candidates))
    return rng.choice(candidates, size=size, replace=False, p=weights / weights.sum())


def _simulate_interactions(n_users: int, world: ItemWorld, seed: int) -> UserSequences:
    user_rng = _rng(seed, "users")
    lengths = _session_lengths(n_users, user_rng)
    preferred = user_rng.choice(len(CATEGORIES), size=n_users, p=CATEGORY_SHARES)
    sequences = [
        _simulate_session(int(length), int(pref), world, user_rng) + 1  # 1-based ids
        for length, pref in zip(lengths, preferred)
    ]
    return UserSequences(sequences, _timestamps(lengths, _rng(seed, "times")))


def _session_lengths(n_users: int, rng: np.random.Generator) -> np.ndarray:
    """Skewed lengths in [5, 20] (most users short, like MicroLens), plus ~3% users below 5."""
    extra = np.minimum(rng.geometric(SESSION_GEOMETRIC_P, size=n_users) - 1,
                       MAX_SESSION - MIN_SESSION)
    lengths = MIN_SESSION + extra
    n_short = int(round(SHORT_USER_SHARE * n_users))
    short_users = rng.choice(n_users, size=n_short, replace=False)
    lengths[short_users] = rng.integers(1, MIN_SESSION, size=n_short)
    return lengths


def _simulate_session(length: int, preferred: int, world: ItemWorld, rng) -> np.ndarray:
    """One user's items (0-based, never repeated): followers, preference, category transitions."""
    seen = np.zeros(len(world.category), dtype=bool)
    items: list[int] = []
    for _ in range(length):
        item = _follow_previous(items, seen, world, rng) if items else None
        if item is None:
            previous_category = world.category[items[-1]] if items else None
            next_category = _next_category(previous_category, preferred, world, rng)
            item = _draw_unseen_item(next_category, seen, world, rng)
        seen[item] = True
        items.append(item)
    return np.array(items, dtype=np.int64)


def _follow_previous(items, seen, world, rng) -> int | None:
    if rng.random() >= FOLLOW_PROB:
        return None
    candidates = [f for f in world.followers[items[-1]] if not seen[f]]
    return int(candidates[rng.integers(len(candidates))]) if candidates else None


def _next_category(previous_category, preferred: int, world: ItemWorld, rng) -> int:
    if previous_category is None or rng.random() < PREFERRED_PROB:
        return preferred
    if rng.random() < SUCCESSOR_PROB:
        return int(world.successor[previous_category])
    return int(rng.integers(len(CATEGORIES)))


def _draw_unseen_item(category: int, seen, world: ItemWorld, rng) -> int:
    """Popularity-weighted within the category; any unseen item once the category is used up."""
    weights = world.popularity * ~seen
    in_category = weights * (world.category == category)
    if in_category.sum() > 0:
        weights = in_category
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def _timestamps(lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Users start at different times over a month; gaps are minutes, sometimes days."""
    starts = START_MS + rng.integers(0, USER_START_SPREAD_MS, size=len(lengths))
    result = []
    for start, length in zip(starts, lengths):
        long_gap = rng.random(length) < LONG_GAP_PROB
        gaps = np.where(long_gap, rng.exponential(LONG_GAP_MEAN_MS, length),
                        rng.exponential(SHORT_GAP_MEAN_MS, length))
        gaps = MIN_GAP_MS + gaps.astype(np.int64)
        gaps[0] = 0
        result.append(start + np.cumsum(gaps))
    return result


def _item_counts(interactions: UserSequences, n_items: int) -> np.ndarray:
    """UserSequences per item, indexed by 0-based item."""
    return np.bincount(interactions.flat()[1] - 1, minlength=n_items)
