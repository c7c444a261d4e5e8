"""Raw MicroLens files -> RecBole atomic files, under the official protocol.

The protocol (drop users with fewer than ``min_user_inter`` interactions, keep each user's last
``keep_last``) is applied here, once, so that every model reads the same interactions; the
leave-one-out split itself stays RecBole's job. Popularity bins are counted on the training part
only (each user's items except the last two), as the paper counts popularity.

Warm-N (``warm``, paper Tables 8 and 10) first removes the items with fewer than N raw
interactions, then applies the protocol: items before users, as the paper orders them.
"""
from __future__ import annotations

import csv
import logging
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_microlens import __version__
from recbole_microlens.data.raw import readers as raw
from recbole_microlens.data.raw.readers import RawFiles, RawInteractions
from recbole_microlens.data.stores.atomic import building, check_dataset_name, seal
from recbole_microlens.io import atomic_open, sha256_file
from recbole_microlens.errors import ConfigError

logger = logging.getLogger(__name__)

HELD_OUT_PER_USER = 2  # leave-one-out: the last item is the test target, the one before validation
WRITE_ROWS = 1 << 20
WORD = re.compile(r"\w+")
PROTOCOL_NOTES = {
    "order": "timestamp, stable on file order",
    "split": "leave-one-out by time: last item test, second-to-last validation, rest training",
}
TIMESTAMP_CSV = "Unix epoch milliseconds"
TIMESTAMP_TSV = "position in the user's sequence (0, 1, 2, ...)"


def convert_dataset(
    raw_files: RawFiles,
    dataset: str,
    out_dir: str | os.PathLike,
    *,
    min_user_inter: int = 5,
    keep_last: int = 13,
    num_pop_bins: int = 10,
    skip_bad: bool = False,
    warm: int = 0,
) -> dict:
    """Convert one release into ``out_dir/<dataset>/``; returns the meta dict written beside it."""
    if min(min_user_inter, keep_last) <= HELD_OUT_PER_USER:
        raise ConfigError("min_user_inter and keep_last must leave a training item for every user")
    options = {"min_user_inter": min_user_inter, "keep_last": keep_last,
               "num_pop_bins": num_pop_bins, "skip_bad": skip_bad}
    check_dataset_name(dataset)
    target = Path(out_dir) / dataset
    row_counts: dict[str, Counter] = {}
    inter, cross_check = load_interactions(raw_files, skip_bad, row_counts)
    if not len(inter):
        raise raw.RawFormatError(f"no interactions in {raw_files.pairs_csv or raw_files.pairs_tsv}")
    kept, warm_report = apply_warm_protocol(inter, warm, min_user_inter, keep_last)
    if not len(kept):
        raise raw.RawFormatError(f"no interactions left after the protocol (warm={warm}, "
                                 f"min_user_inter={min_user_inter})")
    train = training_mask(kept)
    items = np.unique(kept.item)
    pop_bin = popularity_bins(kept.item[train], items, num_pop_bins)
    raw_features = item_features(raw_files, np.unique(inter.item), skip_bad, row_counts)
    features = raw_features.loc[items].assign(pop_bin=pop_bin)
    logger.info("the protocol keeps %d of %d interactions; writing %s",
                len(kept), len(inter), target)

    with building(out_dir, dataset) as folder:
        write_inter(folder / f"{dataset}.inter", kept)
        write_items(folder / f"{dataset}.item", features)
        if "title" in features:
            write_titles(folder / f"{dataset}.titles.csv", items, features["title"])
        if raw_files.users:
            write_users(folder / f"{dataset}.user", kept, raw_files.users, skip_bad, row_counts)
        meta = seal(folder, dataset, conversion_meta(
            dataset, options, raw_files, row_counts, inter=inter, kept=kept, train=train,
            pop_bin=pop_bin, cross_check=cross_check, warm_report=warm_report,
            raw_features=raw_features, items=items))
    return meta


def conversion_meta(dataset: str, options: dict, raw_files: RawFiles,
                    row_counts: dict[str, Counter], *, inter: RawInteractions,
                    kept: RawInteractions, train: np.ndarray, pop_bin: np.ndarray,
                    cross_check: dict | None, warm_report: dict | None,
                    raw_features, items: np.ndarray) -> dict:
    """What ``<dataset>.meta.json`` says: inputs, protocol, statistics before and after it,
    popularity bins, metadata coverage, and every skipped or repaired row by reason."""
    num_pop_bins = options["num_pop_bins"]
    return {
        "dataset": dataset,
        "converter": f"recbole_microlens {__version__}",
        "options": options,
        "protocol": {"min_user_inter": options["min_user_inter"],
                     "keep_last": options["keep_last"], **PROTOCOL_NOTES},
        "inputs": _describe_inputs(raw_files),
        "interactions_from": "pairs_csv" if raw_files.pairs_csv else "pairs_tsv",
        "timestamp": timestamp_unit(raw_files, row_counts),
        "pairs_cross_check": cross_check,
        "warm": warm_report,
        "statistics": {"raw": interaction_statistics(inter),
                       "protocol": protocol_statistics(kept, train)},
        "pop_bins": {"num_bins": num_pop_bins, "unseen_in_training_bin": num_pop_bins,
                     "items_per_bin": np.bincount(pop_bin, minlength=num_pop_bins + 1).tolist()},
        "item_features": feature_sources(raw_files),
        "metadata_coverage": metadata_coverage(raw_features, items),
        "row_counts": {name: {reason: n for reason, n in sorted(counts.items()) if n}
                       for name, counts in row_counts.items()},
    }


# --------------------------------------------------------------------------- interactions


def timestamp_unit(raw_files: RawFiles, row_counts: dict[str, Counter]) -> str:
    """The unit the timestamps were found in, and how many rows were scaled to it."""
    if not raw_files.pairs_csv:
        return TIMESTAMP_TSV
    scaled = row_counts["pairs_csv"].get(raw.SECONDS_SCALED, 0)
    return TIMESTAMP_CSV + (f" ({scaled} rows found in seconds, scaled to milliseconds)"
                            if scaled else "")


def load_interactions(raw_files: RawFiles, skip_bad: bool,
                      row_counts: dict[str, Counter]) -> tuple[RawInteractions, dict | None]:
    """The csv (real timestamps) wins over the tsv; with both, the tsv is a cross-check."""
    tsv = csv_ = None
    if raw_files.pairs_tsv:
        tsv, row_counts["pairs_tsv"] = raw.read_pairs_tsv(raw_files.pairs_tsv, skip_bad=skip_bad)
    if raw_files.pairs_csv:
        csv_, row_counts["pairs_csv"] = raw.read_pairs_csv(raw_files.pairs_csv, skip_bad=skip_bad)
    if tsv is None or csv_ is None:
        return (csv_ if csv_ is not None else tsv), None
    report = cross_check_pairs(tsv, csv_)
    if not report["agree"]:
        logger.warning(
            "pairs tsv and csv disagree (%d users only in tsv, %d only in csv, %d with a different "
            "sequence); using the csv. Example: %s", report["users_only_in_tsv"],
            report["users_only_in_csv"], report["users_with_different_sequence"], report["example"],
        )
    return csv_, report


def chronological(inter: RawInteractions) -> RawInteractions:
    """Grouped by user (ascending), each user's items by time; equal times keep file order."""
    return inter.take(np.lexsort((inter.timestamp, inter.user)))


def cross_check_pairs(tsv: RawInteractions, csv_: RawInteractions) -> dict:
    """Compare the user sets and each user's item order of the two pairs files."""
    tsv, csv_ = chronological(tsv), chronological(csv_)
    tsv_users, tsv_len = np.unique(tsv.user, return_counts=True)
    csv_users, csv_len = np.unique(csv_.user, return_counts=True)
    common = np.intersect1d(tsv_users, csv_users, assume_unique=True)
    same_length = common[tsv_len[np.isin(tsv_users, common)] == csv_len[np.isin(csv_users, common)]]
    tsv_rows, csv_rows = np.isin(tsv.user, same_length), np.isin(csv_.user, same_length)
    differs = tsv.item[tsv_rows] != csv_.item[csv_rows]
    different = np.union1d(np.setdiff1d(common, same_length),
                           np.unique(tsv.user[tsv_rows][differs]))
    report = {
        "agree": False,
        "users_only_in_tsv": int(np.setdiff1d(tsv_users, csv_users).size),
        "users_only_in_csv": int(np.setdiff1d(csv_users, tsv_users).size),
        "users_with_different_sequence": int(different.size),
        "example": None,
    }
    report["agree"] = not (report["users_only_in_tsv"] or report["users_only_in_csv"]
                           or different.size)
    if different.size:
        user = different[0]
        report["example"] = {"user": int(user),
                             "tsv_items": tsv.item[tsv.user == user][:20].tolist(),
                             "csv_items": csv_.item[csv_.user == user][:20].tolist()}
    elif not report["agree"]:
        only = np.setxor1d(tsv_users, csv_users)[0]
        report["example"] = {"user": int(only), "in": "tsv" if only in tsv_users else "csv"}
    return report


# --------------------------------------------------------------------------- protocol


def apply_protocol(inter: RawInteractions, min_user_inter: int, keep_last: int) -> RawInteractions:
    """Drop users with fewer than ``min_user_inter`` interactions; keep each user's last
    ``keep_last``.

    The result is grouped by user (ascending), each user's items in time order.
    """
    order = np.lexsort((inter.timestamp, inter.user))
    from_end, run_length = _positions_from_end(inter.user[order])
    kept_rows = (from_end < keep_last) & np.repeat(run_length >= min_user_inter, run_length)
    return inter.take(order[kept_rows])


def apply_warm_protocol(inter: RawInteractions, warm: int, min_user_inter: int,
                        keep_last: int) -> tuple[RawInteractions, dict]:
    """Warm-``warm``, then the protocol; returns the kept rows and what the warm filter did.

    One pass: the protocol may leave some items under ``warm`` (counted in the report). Repeating
    both filters until every item and user qualifies collapses the data instead: on MicroLens-50k
    Warm-20 would keep 182 of 19,099 items (6,254 in one pass) and Warm-200 none, far from the
    paper's Table 8, where Warm-20 scores like the regular setting.
    """
    cold = _items_below(inter.item, warm)
    warm_rows = inter.take(np.flatnonzero(~np.isin(inter.item, cold))) if cold.size else inter
    kept = apply_protocol(warm_rows, min_user_inter, keep_last)
    return kept, {"min_item_inter": warm, "items_removed": int(cold.size),
                  "interactions_removed": len(inter) - len(warm_rows),
                  "items_under_min_after_protocol": int(_items_below(kept.item, warm).size)}


def _items_below(items: np.ndarray, min_count: int) -> np.ndarray:
    """The distinct items occurring fewer than ``min_count`` times."""
    if min_count <= 0:
        return items[:0]
    values, counts = np.unique(items, return_counts=True)
    return values[counts < min_count]


def training_mask(inter: RawInteractions) -> np.ndarray:
    """Rows of the training part under leave-one-out: each user's items except the last two.

    ``inter`` must be grouped by user in time order, as :func:`apply_protocol` returns it.
    """
    from_end, _ = _positions_from_end(inter.user)
    return from_end >= HELD_OUT_PER_USER


def _positions_from_end(grouped_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For users grouped in runs: each row's distance from its run's end, and each run's length."""
    starts = np.flatnonzero(np.r_[True, grouped_users[1:] != grouped_users[:-1]])
    run_length = np.diff(np.r_[starts, len(grouped_users)])
    from_end = np.repeat(starts + run_length - 1, run_length)
    from_end -= np.arange(len(grouped_users))
    return from_end, run_length


def popularity_bins(train_items: np.ndarray, items: np.ndarray, num_bins: int) -> np.ndarray:
    """Bin per item of sorted ``items``: equal-count bins by training popularity, bin 0 the most
    popular; ties by item id; items never seen in training get bin ``num_bins``."""
    seen, counts = np.unique(train_items, return_counts=True)
    ranked = seen[np.lexsort((seen, -counts))]
    bins = np.full(len(items), num_bins, dtype=np.int64)
    bins[np.searchsorted(items, ranked)] = np.arange(len(ranked)) * num_bins // max(len(ranked), 1)
    return bins


def interaction_statistics(inter: RawInteractions) -> dict:
    """Users, items, interactions and the sequence length distribution."""
    _, lengths = np.unique(inter.user, return_counts=True)
    return {
        "users": int(lengths.size),
        "items": int(np.unique(inter.item).size),
        "interactions": len(inter),
        "sequence_length": {"min": int(lengths.min()), "median": float(np.median(lengths)),
                            "mean": round(float(lengths.mean()), 4), "max": int(lengths.max())},
    }


def protocol_statistics(kept: RawInteractions, train: np.ndarray) -> dict:
    """:func:`interaction_statistics` plus the size of the training part."""
    return {**interaction_statistics(kept), "training_interactions": int(train.sum()),
            "training_items": int(np.unique(kept.item[train]).size)}


# --------------------------------------------------------------------------- item features


def item_features(raw_files: RawFiles, items: np.ndarray, skip_bad: bool,
                  row_counts: dict[str, Counter]) -> pd.DataFrame:
    """One row per item of ``items``; a column per metadata file present (NaN where missing)."""
    frame = pd.DataFrame(index=pd.Index(items, name="item"))
    title_source = feature_sources(raw_files).get("title")
    if title_source:
        reader = raw.read_titles_csv if title_source == "titles" else raw.read_title_en
        titles, row_counts[title_source] = reader(getattr(raw_files, title_source),
                                                  skip_bad=skip_bad)
        frame["title"] = titles
    if raw_files.tags:
        tags, row_counts["tags"] = raw.read_tags(raw_files.tags, skip_bad=skip_bad)
        frame["tags"] = tags
    if raw_files.likes_views:
        likes_views, row_counts["likes_views"] = raw.read_likes_views(raw_files.likes_views,
                                                                      skip_bad=skip_bad)
        frame = frame.join(likes_views)
    if raw_files.comments:
        comments, row_counts["comments"] = raw.read_comment_counts(raw_files.comments,
                                                                   skip_bad=skip_bad)
        frame["comments"] = comments.reindex(items, fill_value=0).to_numpy()
    return frame


def feature_sources(raw_files: RawFiles) -> dict[str, str]:
    """Item feature -> the RawFiles field it is read from. The 50k ``titles`` (full titles) win
    over the 100k ``title_en`` (cut at the first comma upstream)."""
    present = raw_files.present()
    sources = {"title": next((f for f in ("titles", "title_en") if f in present), None),
               "tags": "tags", "likes": "likes_views", "views": "likes_views",
               "comments": "comments"}
    return {feature: field for feature, field in sources.items() if field in present}


def metadata_coverage(raw_features: pd.DataFrame, items: np.ndarray) -> dict:
    """Per metadata file: how many items of the raw pairs, and of the converted ``items``,
    it lacks."""
    coverage = {}
    for column in ("title", "tags", "likes"):
        if column in raw_features:
            missing = raw_features.index[raw_features[column].isna()].to_numpy()
            coverage[column] = {"raw_items_without": int(missing.size),
                                "items_without": int(np.isin(missing, items).sum())}
    return coverage


def title_tokens(title) -> str:
    """Lowercased word tokens joined by spaces: safe for RecBole's ``token_seq`` (no tabs,
    no quotes, which its CSV reader would choke on)."""
    return " ".join(WORD.findall(title.lower())) if isinstance(title, str) else ""


def as_token(value: str) -> str:
    """One value -> one RecBole token (``Food & Drink`` -> ``Food_Drink``)."""
    return "_".join(WORD.findall(value))


def tag_tokens(tags) -> str:
    """One lowercased token per category (``Food & Drink`` -> ``food_drink``), space-separated."""
    if not isinstance(tags, tuple):
        return ""
    return " ".join(filter(None, (as_token(tag.lower()) for tag in tags)))


# --------------------------------------------------------------------------- writers


def write_inter(path: Path, inter: RawInteractions) -> Path:
    """Rows formatted a million at a time: no Python object per interaction outlives its batch."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for start in range(0, len(inter), WRITE_ROWS):
            rows = slice(start, start + WRITE_ROWS)
            handle.write("".join(map("{}\t{}\t{}\n".format, inter.user[rows].tolist(),
                                     inter.item[rows].tolist(), inter.timestamp[rows].tolist())))
    return path


def write_items(path: Path, features: pd.DataFrame) -> Path:
    """``features`` indexed by item; a missing number is left empty (RecBole fills in the mean)."""
    table = pd.DataFrame({"item_id:token": features.index.astype(str)}, index=features.index)
    if "title" in features:
        table["title:token_seq"] = features["title"].map(title_tokens)
    if "tags" in features:
        table["tags:token_seq"] = features["tags"].map(tag_tokens)
    table["pop_bin:token"] = features["pop_bin"]
    for name in ("likes", "views", "comments"):
        if name in features:
            table[f"{name}:float"] = features[name].astype("Int64")
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        table.to_csv(handle, sep="\t", index=False, quoting=csv.QUOTE_NONE, lineterminator="\n")
    return path


def write_titles(path: Path, items: np.ndarray, titles: pd.Series) -> Path:
    """Untokenised titles for text encoders (RFC-4180); an item without a title gets ''."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(["item_id", "title"])
        writer.writerows(zip(items.tolist(), titles.fillna("").tolist()))
    return path


def write_users(path: Path, inter: RawInteractions, users_file: Path, skip_bad: bool,
                row_counts: dict[str, Counter]) -> Path:
    """One row per user of ``inter``; a gender the users file lacks stays empty (RecBole reads it
    as padding). Every user must be listed: RecBole drops the interactions of unlisted users."""
    genders, counts = raw.read_users(users_file, skip_bad=skip_bad)
    users = np.unique(inter.user)
    known = genders.reindex(users)
    counts["users_without_attributes"] += int(known.isna().sum())
    counts["rows_for_users_not_in_inter"] += int((~genders.index.isin(users)).sum())
    row_counts["users"] = counts
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("user_id:token\tgender:token\n")
        handle.writelines(f"{user}\t{as_token(gender) if isinstance(gender, str) else ''}\n"
                          for user, gender in known.items())
    return path


def _describe_inputs(raw_files: RawFiles) -> dict:
    """Name, path and sha256 of every input file (folders: path only), for provenance."""
    inputs = {}
    for field, path in raw_files.present().items():
        if field in raw.DIRECTORY_FIELDS:
            inputs[field] = {"path": str(path)}
        else:
            inputs[field] = {"name": path.name, "path": str(path), "sha256": sha256_file(path)}
    return inputs
