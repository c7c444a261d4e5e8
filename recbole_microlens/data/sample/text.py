"""The sample's raw text files, in the official formats and with their quirks (CRLF, quoting,
``# tag``, empty titles): pairs, titles, likes and views, tags and comments. Each writer gets
what the simulation drew and a numpy stream of its own."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from recbole_microlens.io import atomic_open

EMPTY_TITLE_SHARE = 0.03
COMMENT_SHARE = 0.1  # comments per interaction

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


def write_pairs_tsv(path: Path, interactions) -> None:
    """``user<TAB>item item ...`` with CRLF, users in id order, items chronological."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        for user, sequence in enumerate(interactions.sequences, start=1):
            handle.write(f"{user}\t{' '.join(map(str, sequence))}\r\n")


def write_pairs_csv(path: Path, interactions) -> None:
    """``user,item,timestamp`` (ms) in global time order, so users interleave as in a log."""
    users, items, times = interactions.flat()
    order = np.lexsort((users, times))  # stable per user: timestamps increase within a user
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("user,item,timestamp\n")
        handle.writelines(f"{users[i]},{items[i]},{times[i]}\n" for i in order)


def write_titles(path: Path, item_categories: list[str], rng: np.random.Generator) -> None:
    """50k style: ``item,title``, RFC-4180 minimal quoting, UTF-8, CRLF; a few empty titles."""
    n_items = len(item_categories)
    n_empty = max(1, int(round(EMPTY_TITLE_SHARE * n_items)))
    empty = set(rng.choice(n_items, size=n_empty, replace=False).tolist())
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["item", "title"])
        for item in range(n_items):
            category = item_categories[item]
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


def write_likes_and_views(path: Path, item_counts: np.ndarray, rng) -> None:
    """``item<TAB>likes<TAB>views``; views follow sample popularity, likes are a share of views."""
    noise = rng.lognormal(0.0, 0.6, size=len(item_counts))
    views = ((item_counts + 1) * 5_000 * noise).astype(np.int64) + rng.integers(0, 1_000,
                                                                               len(item_counts))
    likes = rng.binomial(views, rng.beta(2.0, 25.0, size=len(item_counts)))
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.writelines(f"{item}\t{like}\t{view}\n"
                          for item, (like, view) in enumerate(zip(likes, views), start=1))


def write_tags(path: Path, item_categories: list[str]) -> None:
    """Header ``video_id, tag`` (with the official space), then ``id,category`` per item."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("video_id, tag\n")
        handle.writelines(f"{item},{category}\n"
                          for item, category in enumerate(item_categories, start=1))


def write_comments(path: Path, interactions, item_categories: list[str], rng) -> int:
    """``userID<TAB>videoID<TAB>comment`` on a share of interactions, in time order."""
    users, items, times = interactions.flat()
    n_comments = max(1, int(round(COMMENT_SHARE * len(items))))
    chosen = rng.choice(len(items), size=n_comments, replace=False)
    chosen = chosen[np.argsort(times[chosen], kind="stable")]
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        for i in chosen:
            topic = _pick(CATEGORY_WORDS[item_categories[items[i] - 1]], rng)
            handle.write(f"{users[i]}\t{items[i]}\t{_pick(COMMENT_REACTIONS, rng)} {topic}\n")
    return n_comments


def _pick(options, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]
