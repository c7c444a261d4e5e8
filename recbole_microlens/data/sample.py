"""The embedded ``microlens-sample``: a small synthetic MicroLens in the official raw formats.

Nothing is downloaded or copied: every file is generated from a seed, so the whole pipeline
(converter, training, video/cover/title encoders) can run on 2 CPU cores in minutes, and tests can
rely on byte-identical outputs. The data carries a learnable signal on purpose: users prefer a
category, consecutive items follow category transitions and per-item "follower" items, and covers,
videos and titles all reflect the item's category, so sequential and content models beat
popularity on it.
"""
from __future__ import annotations

import csv
import inspect
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

from recbole_microlens.io import atomic_open, write_json_atomic

PREFIX = "MicroLens-sample"
PAIRS_TSV = f"{PREFIX}_pairs.tsv"
PAIRS_CSV = f"{PREFIX}_pairs.csv"
TITLES_CSV = f"{PREFIX}_titles.csv"
LIKES_AND_VIEWS = f"{PREFIX}_likes_and_views.txt"
TAGS_CSV = "tags_to_summary.csv"
COMMENTS = f"{PREFIX}_comment_en.txt"
MANIFEST = "sample_manifest.json"
MARKER = "SAMPLE_OK"
COVERS_DIR = "covers"
VIDEOS_DIR = "videos"
GENERATOR_VERSION = 1

# --- the simulated world -------------------------------------------------------------------
CATEGORIES = ("food", "gaming", "anime", "pets", "sports", "music", "beauty", "travel")
CATEGORY_SHARES = np.array([0.18, 0.16, 0.14, 0.12, 0.12, 0.10, 0.10, 0.08])
CATEGORY_COLOURS = np.array(
    [[230, 120, 40], [60, 200, 90], [235, 90, 180], [170, 120, 70],
     [40, 110, 230], [150, 60, 220], [240, 200, 60], [40, 200, 210]],
    dtype=np.float64,
)
ZIPF_EXPONENT = 1.1
FOLLOWERS_PER_ITEM = 3
FOLLOW_PROB = 0.45  # next item is one of the previous item's followers
PREFERRED_PROB = 0.25  # otherwise: back to the user's preferred category
SUCCESSOR_PROB = 0.6  # otherwise: the previous category's successor (rest: any category)
MIN_SESSION, MAX_SESSION = 5, 20
SESSION_GEOMETRIC_P = 0.22
SHORT_USER_SHARE = 0.03  # users below the protocol's 5-interaction cut
EMPTY_TITLE_SHARE = 0.03
COMMENT_SHARE = 0.1  # comments per interaction
START_MS = 1_651_363_200_000  # 2022-05-01 UTC
USER_START_SPREAD_MS = 30 * 24 * 3600 * 1000
MIN_GAP_MS = 3_000
SHORT_GAP_MEAN_MS = 15 * 60 * 1000
LONG_GAP_MEAN_MS = 24 * 3600 * 1000
LONG_GAP_PROB = 0.15

# --- media ---------------------------------------------------------------------------------
COVER_SIZE = (160, 90)  # width, height: 16:9 like the official 640x360
VIDEO_SIZE = (128, 72)
VIDEO_FPS = 12
VIDEO_LENGTH_RANGE = (0.5, 1.5)  # per-item factor on video_seconds
H264_ENCODERS = ("libx264", "h264", "libopenh264")
FALLBACK_ENCODER = "mpeg4"

# One numpy stream per concern, so e.g. with_media never changes the interaction files.
RNG_STREAMS = {"items": 0, "users": 1, "times": 2, "titles": 3,
               "engagement": 4, "comments": 5, "media": 6}

# --- vocabulary for titles and comments ----------------------------------------------------
CATEGORY_WORDS = {
    "food": ("noodles", "dumplings", "hotpot", "street food", "spicy duck", "bread", "cake"),
    "gaming": ("boss fight", "speedrun", "ranked match", "new patch", "combo", "noob team"),
    "anime": ("episode", "cosplay", "fan art", "opening song", "villain", "manga panel"),
    "pets": ("kitten", "puppy", "hamster", "parrot", "lazy cat", "golden retriever"),
    "sports": ("dunk", "penalty kick", "marathon", "workout", "skateboard trick", "match point"),
    "music": ("guitar cover", "live show", "drum solo", "karaoke", "piano", "new single"),
    "beauty": ("makeup", "skincare", "hairstyle", "outfit", "nail art", "lipstick"),
    "travel": ("mountain", "old town", "night market", "beach", "road trip", "café"),
}
CATEGORY_HASHTAGS = {
    "food": ("food", "homemade food", "foodie"),
    "gaming": ("game", "gamer", "game stars plan"),
    "anime": ("anime", "cartoon", "cartoon commentary"),
    "pets": ("pets", "cute pets", "meow"),
    "sports": ("sports", "fitness", "NBA"),
    "music": ("music", "cover song", "live"),
    "beauty": ("beauty", "makeup tutorial", "OOTD"),
    "travel": ("travel", "vlog", "wanderlust"),
}
ADJECTIVES = ("amazing", "super hot", "crazy", "tiny", "the best", "unbelievable", "funny",
              "real", "naïve", "epic")
CLAUSES = ("you won't believe the ending", "part 2", "brothers look at this", "really fun",
           "watch till the end", "don't try this at home", "I did it again", "so satisfying")
EXTRAS = ("😂", "— full version", "¡wow!", "100%", "rest assured")
COMMENT_REACTIONS = ("so cute", "first!", "I laughed so hard, again", 'this is "art"',
                     "where is this?", "more please", "same here", "legend", "not bad, not bad",
                     "who is watching in 2022")


@dataclass(frozen=True)
class ItemWorld:
    """The hidden structure behind the interactions: what makes the sample learnable."""

    category: np.ndarray  # (n_items,) category index per item (0-based items)
    popularity: np.ndarray  # (n_items,) Zipf-like weights, sum 1
    successor: np.ndarray  # (n_categories,) the category that usually comes next
    followers: tuple[np.ndarray, ...]  # per item: items that often come right after it


@dataclass(frozen=True)
class Interactions:
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


@dataclass(frozen=True)
class ItemLook:
    """How one item's cover and video look: category colour plus item-specific pattern."""

    base_colour: np.ndarray  # (3,) category colour with a small item jitter
    accent_colour: np.ndarray  # (3,)
    stripe_angle: float
    stripe_frequency: float
    stripe_phase: float
    disc_radius: float
    disc_start: np.ndarray  # (2,) x, y in [0, 1]
    disc_velocity: np.ndarray  # (2,) per second; direction set by the category


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
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    if n_items < 2 * MAX_SESSION:
        raise ValueError(f"n_items must be >= {2 * MAX_SESSION} so sessions need not repeat items")
    if video_seconds <= 0:
        raise ValueError(f"video_seconds must be > 0, got {video_seconds}")


def _write_sample(out_dir: Path, params: dict) -> dict:
    """Write every file of the sample into ``out_dir``; the marker goes last."""
    seed, n_items = params["seed"], params["n_items"]
    world = _build_item_world(n_items, _rng(seed, "items"))
    interactions = _simulate_interactions(params["n_users"], world, seed)
    item_counts = _item_counts(interactions, n_items)

    _write_pairs_tsv(out_dir / PAIRS_TSV, interactions)
    _write_pairs_csv(out_dir / PAIRS_CSV, interactions)
    _write_titles(out_dir / TITLES_CSV, world, _rng(seed, "titles"))
    _write_likes_and_views(out_dir / LIKES_AND_VIEWS, item_counts, _rng(seed, "engagement"))
    _write_tags(out_dir / TAGS_CSV, world)
    n_comments = _write_comments(out_dir / COMMENTS, interactions, world, _rng(seed, "comments"))

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
        media = _write_media(out_dir, world, item_counts, params["video_seconds"],
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
        raise FileExistsError(f"{raw_dir} exists and is not a microlens-sample directory")


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


def _simulate_interactions(n_users: int, world: ItemWorld, seed: int) -> Interactions:
    user_rng = _rng(seed, "users")
    lengths = _session_lengths(n_users, user_rng)
    preferred = user_rng.choice(len(CATEGORIES), size=n_users, p=CATEGORY_SHARES)
    sequences = [
        _simulate_session(int(length), int(pref), world, user_rng) + 1  # 1-based ids
        for length, pref in zip(lengths, preferred)
    ]
    return Interactions(sequences, _timestamps(lengths, _rng(seed, "times")))


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


def _item_counts(interactions: Interactions, n_items: int) -> np.ndarray:
    """Interactions per item, indexed by 0-based item."""
    return np.bincount(interactions.flat()[1] - 1, minlength=n_items)


# ======================================================================== text files ===


def _write_pairs_tsv(path: Path, interactions: Interactions) -> None:
    """``user<TAB>item item ...`` with CRLF, users in id order, items chronological."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        for user, sequence in enumerate(interactions.sequences, start=1):
            handle.write(f"{user}\t{' '.join(map(str, sequence))}\r\n")


def _write_pairs_csv(path: Path, interactions: Interactions) -> None:
    """``user,item,timestamp`` (ms) in global time order, so users interleave as in a log."""
    users, items, times = interactions.flat()
    order = np.lexsort((users, times))  # stable per user: timestamps increase within a user
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("user,item,timestamp\n")
        handle.writelines(f"{users[i]},{items[i]},{times[i]}\n" for i in order)


def _write_titles(path: Path, world: ItemWorld, rng: np.random.Generator) -> None:
    """50k style: ``item,title``, RFC-4180 minimal quoting, UTF-8, CRLF; a few empty titles."""
    n_items = len(world.category)
    n_empty = max(1, int(round(EMPTY_TITLE_SHARE * n_items)))
    empty = set(rng.choice(n_items, size=n_empty, replace=False).tolist())
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["item", "title"])
        for item in range(n_items):
            category = CATEGORIES[world.category[item]]
            title = "" if item in empty else _make_title(category, rng)
            writer.writerow([item + 1, title])


def _make_title(category: str, rng: np.random.Generator) -> str:
    """Category words plus the quirks of real titles: commas, quotes, ``#tag`` and ``# tag``."""
    words = CATEGORY_WORDS[category]
    text = f"{_pick(ADJECTIVES, rng)} {_pick(words, rng)}"
    if rng.random() < 0.2:
        text += f' the "{_pick(words, rng)}" challenge'
    if rng.random() < 0.4:
        text += f", {_pick(CLAUSES, rng)}"
    if rng.random() < 0.1:
        text += f" {_pick(EXTRAS, rng)}"
    for tag in rng.choice(CATEGORY_HASHTAGS[category], size=rng.integers(1, 3), replace=False):
        text += f" #{tag}" if rng.random() < 0.5 else f" # {tag}"
    return text


def _write_likes_and_views(path: Path, item_counts: np.ndarray, rng) -> None:
    """``item<TAB>likes<TAB>views``; views follow sample popularity, likes are a share of views."""
    noise = rng.lognormal(0.0, 0.6, size=len(item_counts))
    views = ((item_counts + 1) * 5_000 * noise).astype(np.int64) + rng.integers(0, 1_000,
                                                                               len(item_counts))
    likes = rng.binomial(views, rng.beta(2.0, 25.0, size=len(item_counts)))
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.writelines(f"{item}\t{like}\t{view}\n"
                          for item, (like, view) in enumerate(zip(likes, views), start=1))


def _write_tags(path: Path, world: ItemWorld) -> None:
    """Header ``video_id, tag`` (with the official space), then ``id,category`` per item."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("video_id, tag\n")
        handle.writelines(f"{item},{CATEGORIES[c]}\n"
                          for item, c in enumerate(world.category, start=1))


def _write_comments(path: Path, interactions: Interactions, world: ItemWorld, rng) -> int:
    """``userID<TAB>videoID<TAB>comment`` on a share of interactions, in time order."""
    users, items, times = interactions.flat()
    n_comments = max(1, int(round(COMMENT_SHARE * len(items))))
    chosen = rng.choice(len(items), size=n_comments, replace=False)
    chosen = chosen[np.argsort(times[chosen], kind="stable")]
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        for i in chosen:
            topic = _pick(CATEGORY_WORDS[CATEGORIES[world.category[items[i] - 1]]], rng)
            handle.write(f"{users[i]}\t{items[i]}\t{_pick(COMMENT_REACTIONS, rng)} {topic}\n")
    return n_comments


def _pick(options, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


# ============================================================================= media ===


def _write_media(out_dir: Path, world: ItemWorld, item_counts, video_seconds: float, rng) -> dict:
    """Covers for every item, videos for all but one; one video deliberately truncated."""
    n_items = len(world.category)
    looks = _item_looks(world, rng)
    lengths = video_seconds * rng.uniform(*VIDEO_LENGTH_RANGE, size=n_items)
    n_frames = np.maximum(1, np.round(lengths * VIDEO_FPS)).astype(int)
    truncated, missing = (rng.choice(np.flatnonzero(item_counts > 0), size=2, replace=False) + 1)
    encoder = _video_encoder_name()
    (out_dir / COVERS_DIR).mkdir()
    (out_dir / VIDEOS_DIR).mkdir()
    for item, look, frames in zip(range(1, n_items + 1), looks, n_frames):
        _write_cover(out_dir / COVERS_DIR / f"{item}.jpg", look)
        if item != missing:
            _write_video(out_dir / VIDEOS_DIR / f"{item}.mp4", look, int(frames), encoder)
    _truncate_to_half(out_dir / VIDEOS_DIR / f"{truncated}.mp4")
    return {
        "cover_size": list(COVER_SIZE),
        "video_size": list(VIDEO_SIZE),
        "video_fps": VIDEO_FPS,
        "video_codec": _codec_name(encoder),
        "n_covers": n_items,
        "n_videos": n_items - 1,
        "video_frames": {str(item): int(n) for item, n in enumerate(n_frames, start=1)
                         if item != missing},
        "truncated_video_item": int(truncated),
        "missing_video_item": int(missing),
    }


def _item_looks(world: ItemWorld, rng: np.random.Generator) -> list[ItemLook]:
    """Draw every item's look at once; the category sets colour and motion direction."""
    n = len(world.category)
    n_categories = len(CATEGORIES)
    base = np.clip(CATEGORY_COLOURS[world.category] + rng.normal(0, 12, (n, 3)), 0, 255)
    direction = 2 * np.pi * world.category / n_categories + rng.normal(0, 0.2, n)
    speed = rng.uniform(0.2, 0.5, n)
    velocity = np.stack([np.cos(direction), np.sin(direction)], axis=1) * speed[:, None]
    accent = rng.uniform(0, 255, (n, 3))
    angle = rng.uniform(0, np.pi, n)
    frequency = rng.uniform(2, 8, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    radius = rng.uniform(0.08, 0.2, n)
    start = rng.uniform(0, 1, (n, 2))
    return [ItemLook(base[i], accent[i], angle[i], frequency[i], phase[i], radius[i],
                     start[i], velocity[i]) for i in range(n)]


def _render(look: ItemLook, seconds: np.ndarray, width: int, height: int) -> np.ndarray:
    """RGB uint8 frames (T, H, W, 3): drifting stripes in the item colour plus a moving disc."""
    t = seconds[:, None, None]
    y, x = np.mgrid[0:height, 0:width] / width  # same aspect for every size
    along = x * np.cos(look.stripe_angle) + y * np.sin(look.stripe_angle)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * look.stripe_frequency * along + look.stripe_phase
                                 + np.pi * t)
    frames = look.base_colour * (0.55 + 0.45 * stripes)[..., None]
    aspect = height / width
    centre_x = (look.disc_start[0] + look.disc_velocity[0] * t) % 1.0
    centre_y = ((look.disc_start[1] + look.disc_velocity[1] * t) % 1.0) * aspect
    disc = (x - centre_x) ** 2 + (y - centre_y) ** 2 < look.disc_radius ** 2
    frames[disc] = look.accent_colour
    return np.clip(frames, 0, 255).astype(np.uint8)


def _write_cover(path: Path, look: ItemLook) -> None:
    frame = _render(look, np.array([0.5]), *COVER_SIZE)[0]
    Image.fromarray(frame).save(path, format="JPEG", quality=90)


def _write_video(path: Path, look: ItemLook, n_frames: int, encoder: str) -> None:
    """A small yuv420p mp4; single-threaded and bitexact so two runs give identical bytes."""
    frames = _render(look, np.arange(n_frames) / VIDEO_FPS, *VIDEO_SIZE)
    options = {"preset": "veryfast"} if encoder == "libx264" else {}
    with av.open(str(path), "w", format="mp4",
                 options={"movflags": "+faststart", "fflags": "+bitexact"}) as container:
        stream = container.add_stream(encoder, rate=VIDEO_FPS, options=options)
        stream.width, stream.height = VIDEO_SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _video_encoder_name() -> str:
    """The first H.264 encoder this PyAV build has; mpeg4 (with a warning) only if none."""
    for name in H264_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except ValueError:  # unknown, or known only as a decoder
            continue
        return name
    warnings.warn("no H.264 encoder in this PyAV build; sample videos use mpeg4", stacklevel=2)
    return FALLBACK_ENCODER


def _codec_name(encoder: str) -> str:
    return "h264" if encoder in H264_ENCODERS else encoder


def _truncate_to_half(path: Path) -> None:
    """A partial download: header and index intact (faststart), the second half of data gone."""
    os.truncate(path, path.stat().st_size // 2)
