"""The embedded microlens-sample: deterministic, in the official raw formats, and learnable."""
from __future__ import annotations

import csv
import filecmp
import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from recbole_microlens.data.sample import generate as sample

from recbole_microlens.data.sample import media as sample_media

from recbole_microlens.data.sample import text as sample_text
from recbole_microlens.data.sample.generate import ensure_sample_raw, generate_sample_raw

SMALL = dict(n_users=120, n_items=60, seed=7, video_seconds=1.0)
DATA_FILES = (sample.PAIRS_TSV, sample.PAIRS_CSV, sample.TITLES_CSV, sample.LIKES_AND_VIEWS,
              sample.TAGS_CSV, sample.COMMENTS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two same-seed runs with media, plus a no-media run and a different-seed run."""
    root = tmp_path_factory.mktemp("samples")
    return {
        "a": (root / "a", generate_sample_raw(root / "a", **SMALL)),
        "b": (root / "b", generate_sample_raw(root / "b", **SMALL)),
        "no_media": (root / "c", generate_sample_raw(root / "c", **{**SMALL, "with_media": False})),
        # only its text files and a cover are compared: short videos are enough
        "other_seed": (root / "d", generate_sample_raw(root / "d", **{**SMALL, "seed": 8,
                                                                        "video_seconds": 0.25})),
    }


@pytest.fixture(scope="module")
def raw(runs):
    return runs["a"][0]


@pytest.fixture(scope="module")
def manifest(runs):
    return runs["a"][1]


@pytest.fixture(scope="module")
def sequences(raw):
    return read_tsv_sequences(raw / sample.PAIRS_TSV)


def read_tsv_sequences(path: Path) -> dict[int, list[int]]:
    result = {}
    for line in path.read_bytes().decode("utf-8").split("\r\n")[:-1]:
        user, items = line.split("\t")
        result[int(user)] = [int(item) for item in items.split(" ")]
    return result


def relative_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def intact_videos(manifest: dict) -> dict[str, int]:
    """Expected frame counts of the videos that are neither truncated nor missing."""
    broken = {str(manifest["truncated_video_item"]), str(manifest["missing_video_item"])}
    return {item: n for item, n in manifest["media"]["video_frames"].items() if item not in broken}


def decode_video(path: Path) -> tuple[str, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return stream.codec_context.name, frames


# ------------------------------------------------------------------------ determinism ---


def test_same_seed_gives_byte_identical_files_media_included(runs):
    (dir_a, manifest_a), (dir_b, manifest_b) = runs["a"], runs["b"]
    files = relative_files(dir_a)
    assert files == relative_files(dir_b)
    assert any(f.endswith(".mp4") for f in files) and any(f.endswith(".jpg") for f in files)
    _, mismatch, errors = filecmp.cmpfiles(dir_a, dir_b, files, shallow=False)
    assert mismatch == [] and errors == []
    assert manifest_a == manifest_b


def test_same_seed_gives_identical_decoded_frames(runs, manifest):
    item = next(iter(intact_videos(manifest)))
    _, frames_a = decode_video(runs["a"][0] / "videos" / f"{item}.mp4")
    _, frames_b = decode_video(runs["b"][0] / "videos" / f"{item}.mp4")
    assert len(frames_a) == len(frames_b) > 0
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b))


def test_different_seed_gives_different_data(runs):
    dir_a, dir_d = runs["a"][0], runs["other_seed"][0]
    for name in DATA_FILES + ("covers/1.jpg",):
        assert (dir_a / name).read_bytes() != (dir_d / name).read_bytes(), name


def test_media_flag_does_not_change_text_files(runs):
    dir_a, dir_c = runs["a"][0], runs["no_media"][0]
    _, mismatch, errors = filecmp.cmpfiles(dir_a, dir_c, DATA_FILES, shallow=False)
    assert mismatch == [] and errors == []
    assert not (dir_c / "covers").exists() and not (dir_c / "videos").exists()
    assert runs["no_media"][1]["truncated_video_item"] is None


# ------------------------------------------------------------------------ interactions ---


def test_pairs_tsv_has_the_official_layout(raw):
    data = (raw / sample.PAIRS_TSV).read_bytes()
    assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n")
    lines = data.decode("utf-8").split("\r\n")[:-1]
    assert len(lines) == SMALL["n_users"]
    for user, line in enumerate(lines, start=1):
        assert re.fullmatch(rf"{user}\t\d+( \d+)*", line), line
    items = {int(i) for line in lines for i in line.split("\t")[1].split(" ")}
    assert min(items) >= 1 and max(items) <= SMALL["n_items"]


def test_pairs_csv_is_the_tsv_with_ms_timestamps_interleaved_in_time(raw, sequences):
    with open(raw / sample.PAIRS_CSV, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        assert next(reader) == ["user", "item", "timestamp"]
        rows = [tuple(map(int, row)) for row in reader]
    per_user: dict[int, list[tuple[int, int]]] = {}
    for user, item, timestamp in rows:
        per_user.setdefault(user, []).append((item, timestamp))
    assert {u: [i for i, _ in v] for u, v in per_user.items()} == sequences
    for events in per_user.values():
        times = [t for _, t in events]
        assert all(a < b for a, b in zip(times, times[1:]))
    timestamps = np.array([t for _, _, t in rows])
    assert 1.5e12 < timestamps.min() and timestamps.max() < 2e12  # 2017..2033 in milliseconds
    assert np.all(np.diff(timestamps) >= 0)
    users = np.array([u for u, _, _ in rows])
    block_starts = users[np.r_[True, np.diff(users) != 0]]
    interleaved = np.bincount(block_starts) > 1  # a user's events split by other users' events
    assert interleaved.sum() > len(sequences) // 2


def test_no_item_repeats_within_a_user(sequences):
    assert all(len(items) == len(set(items)) for items in sequences.values())


def test_session_lengths_and_users_below_five(sequences, manifest):
    lengths = np.array([len(items) for items in sequences.values()])
    short = lengths < 5
    assert short.sum() == manifest["n_users_below_5"] == round(0.03 * SMALL["n_users"])
    assert lengths.min() >= 1 and lengths.max() <= 20
    assert np.median(lengths[~short]) < 10  # skewed towards short sessions, like MicroLens


def test_sequences_carry_a_signal_that_beats_popularity(tmp_path):
    generate_sample_raw(tmp_path / "s", with_media=False)
    sequences = [s[-13:] for s in read_tsv_sequences(tmp_path / "s" / sample.PAIRS_TSV).values()
                 if len(s) >= 5]
    popularity = np.zeros(301)
    transitions = np.zeros((301, 301))
    for items in sequences:
        np.add.at(popularity, items[:-1], 1)
        np.add.at(transitions, (items[:-2], items[1:-1]), 1)

    def hit_rate_at_10(scores_of):
        hits = 0
        for items in sequences:
            scores = scores_of(items[:-1])
            scores[0] = scores[items[:-1]] = -np.inf
            hits += items[-1] in np.argsort(-scores)[:10]
        return hits / len(sequences)

    popular = hit_rate_at_10(lambda history: popularity.copy())
    markov = hit_rate_at_10(lambda history: transitions[history[-1]] * 1e3 + popularity)
    assert markov > 1.5 * popular


# ------------------------------------------------------------------------- item files ---


def test_titles_csv_round_trips_with_commas_quotes_and_hashtags(raw):
    data = (raw / sample.TITLES_CSV).read_bytes()
    assert data.startswith(b"item,title\r\n") and data.count(b"\n") == data.count(b"\r\n")
    assert b'""' in data  # an embedded quote, doubled as RFC 4180 says
    with open(raw / sample.TITLES_CSV, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [int(item) for item, _ in rows] == list(range(1, SMALL["n_items"] + 1))
    titles = [title for _, title in rows]
    assert any("," in t for t in titles) and any('"' in t for t in titles)
    assert sum("#" in t for t in titles) > len(titles) // 2
    assert 1 <= sum(t == "" for t in titles) <= 0.1 * len(titles)


def test_tags_file_has_the_spaced_header_and_one_category_per_item(raw):
    lines = (raw / sample.TAGS_CSV).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "video_id, tag"
    rows = [line.split(",") for line in lines[1:]]
    assert [int(item) for item, _ in rows] == list(range(1, SMALL["n_items"] + 1))
    assert {tag for _, tag in rows} == set(sample.CATEGORIES)


def test_likes_and_views_follow_popularity(raw, sequences):
    rows = [tuple(map(int, line.split("\t")))
            for line in (raw / sample.LIKES_AND_VIEWS).read_text(encoding="utf-8").splitlines()]
    items, likes, views = map(np.array, zip(*rows))
    assert list(items) == list(range(1, SMALL["n_items"] + 1))
    assert np.all((0 <= likes) & (likes <= views))
    counts = np.bincount(np.concatenate(list(sequences.values())), minlength=len(items) + 1)[1:]
    rank_correlation = np.corrcoef(np.argsort(np.argsort(views)), np.argsort(np.argsort(counts)))
    assert rank_correlation[0, 1] > 0.5


def test_comments_are_three_tab_fields_on_real_interactions(raw, sequences, manifest):
    lines = (raw / sample.COMMENTS).read_text(encoding="utf-8").splitlines()
    assert len(lines) == manifest["n_comments"] == round(0.1 * manifest["n_interactions"])
    for line in lines:
        user, item, text = line.split("\t")
        assert int(item) in sequences[int(user)] and text.strip()


# ------------------------------------------------------------------------------ media ---


def test_covers_are_16_9_jpegs_whose_colour_tells_the_category(raw):
    categories = [line.split(",")[1]
                  for line in (raw / sample.TAGS_CSV).read_text(encoding="utf-8").splitlines()[1:]]
    palette = sample_media.CATEGORY_COLOURS / np.linalg.norm(sample_media.CATEGORY_COLOURS, axis=1,
                                                       keepdims=True)
    correct = 0
    for item, category in enumerate(categories, start=1):
        with Image.open(raw / "covers" / f"{item}.jpg") as image:
            assert image.format == "JPEG" and image.size == (160, 90)
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3)
        colour = np.median(pixels, axis=0)
        correct += sample.CATEGORIES[np.argmax(palette @ colour)] == category
    assert correct / len(categories) > 0.8


def test_videos_are_h264_with_the_expected_frames_and_motion(raw, manifest):
    media = manifest["media"]
    assert media["video_codec"] == "h264"
    fps, seconds = media["video_fps"], SMALL["video_seconds"]
    for item, n_frames in intact_videos(manifest).items():
        codec, frames = decode_video(raw / "videos" / f"{item}.mp4")
        assert codec == "h264" and len(frames) == n_frames
        assert 0.5 * seconds * fps - 1 <= n_frames <= 1.5 * seconds * fps + 1
        assert frames[0].shape == (72, 128, 3)
        assert not np.array_equal(frames[0], frames[-1])


def test_one_video_is_truncated_and_one_is_missing(raw, manifest):
    truncated, missing = manifest["truncated_video_item"], manifest["missing_video_item"]
    assert truncated != missing
    assert not (raw / "videos" / f"{missing}.mp4").exists()
    assert (raw / "covers" / f"{missing}.jpg").exists()
    expected = manifest["media"]["video_frames"][str(truncated)]
    try:
        _, frames = decode_video(raw / "videos" / f"{truncated}.mp4")
    except av.error.FFmpegError:
        return
    assert len(frames) < expected


def test_manifest_and_marker_are_written(raw, manifest):
    assert (raw / sample.MARKER).is_file()
    assert sample.read_sample_manifest(raw) == manifest
    assert manifest["media"]["n_videos"] == len(list((raw / "videos").glob("*.mp4")))


# -------------------------------------------------------------------- generate/ensure ---


def test_ensure_reuses_a_complete_sample_and_regenerates_otherwise(tmp_path):
    raw_dir = tmp_path / "raw"
    tiny = dict(n_users=30, n_items=40, with_media=False)
    first = ensure_sample_raw(raw_dir, **tiny)
    (raw_dir / "sentinel").write_text("kept")
    assert ensure_sample_raw(raw_dir, **tiny) == first
    assert (raw_dir / "sentinel").exists()

    (raw_dir / sample.MARKER).unlink()
    assert ensure_sample_raw(raw_dir, **tiny) == first
    assert not (raw_dir / "sentinel").exists() and (raw_dir / sample.MARKER).exists()

    (raw_dir / "sentinel").write_text("kept")
    assert ensure_sample_raw(raw_dir, **{**tiny, "seed": 1})["params"]["seed"] == 1
    assert not (raw_dir / "sentinel").exists()


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sample_text, "write_comments", fail)
    with pytest.raises(KeyboardInterrupt):
        generate_sample_raw(tmp_path / "raw", n_users=30, n_items=40, with_media=False)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_directory_it_did_not_make(tmp_path):
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    (raw_dir / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError):
        generate_sample_raw(raw_dir, n_users=30, n_items=40, with_media=False)
    assert (raw_dir / "thesis.tex").read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def test_rejects_too_few_items(tmp_path):
    with pytest.raises(ValueError):
        generate_sample_raw(tmp_path / "raw", n_items=10, with_media=False)


def test_falls_back_to_mpeg4_with_a_warning_when_no_h264_encoder(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_media, "H264_ENCODERS", ("no-such-encoder",))
    with pytest.warns(UserWarning, match="mpeg4"):
        manifest = generate_sample_raw(tmp_path / "raw", n_users=20, n_items=40, video_seconds=0.5)
    assert manifest["media"]["video_codec"] == "mpeg4"
    item, n_frames = next(iter(intact_videos(manifest).items()))
    codec, frames = decode_video(tmp_path / "raw" / "videos" / f"{item}.mp4")
    assert codec == "mpeg4" and len(frames) == n_frames
