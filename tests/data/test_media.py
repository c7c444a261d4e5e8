"""Frame and cover stores: frame choice, exact pixels, broken media, resuming, parallel builds."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import av
import numpy as np
import pytest
from PIL import Image, ImageOps

from recbole_microlens.data.stores.artefact import partial_path
from recbole_microlens.data.stores.decode import FALLBACK, FrameRowDecoder, decode_clip, select_frame_indices
from recbole_microlens.data.stores.media import (
    FrameSpec, MediaStore, build_cover_store, build_frame_store, prepare_media, read_item_tokens,
)
from recbole_microlens.data.stores.build import build_row_store
from recbole_microlens.data.sample.generate import generate_sample_raw

SPEC = FrameSpec(num_frames=5, interval=2, size=48)
N_ITEMS = 40


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    raw = tmp_path_factory.mktemp("media") / "raw"
    manifest = generate_sample_raw(raw, n_users=20, n_items=N_ITEMS, seed=7)
    return {"raw": raw, "videos": raw / "videos", "covers": raw / "covers",
            "tokens": [str(item) for item in range(1, N_ITEMS + 1)],
            "truncated": str(manifest["truncated_video_item"]),
            "missing": str(manifest["missing_video_item"])}


@pytest.fixture(scope="module")
def serial(sample, tmp_path_factory):
    """The reference build: one process, covers as fallback."""
    root = tmp_path_factory.mktemp("serial")
    report = build_frame_store(sample["videos"], sample["tokens"], root, SPEC,
                               covers_dir=sample["covers"], workers=1, progress=False)
    return report


def read_bytes(folder, name="frames.u8"):
    return (folder / name).read_bytes()


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def square(frame: av.VideoFrame, size: int) -> np.ndarray:
    """The documented resize, written out: shorter side to ``size`` by swscale, centre crop."""
    scale = size / min(frame.width, frame.height)
    width, height = round(frame.width * scale), round(frame.height * scale)
    pixels = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="BILINEAR")
    top, left = (height - size) // 2, (width - size) // 2
    return pixels[top:top + size, left:left + size]


def decodable_frames(path) -> list[av.VideoFrame]:
    """Every frame PyAV decodes from the start, up to the first damaged packet (then flushed)."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        try:
            for packet in container.demux(stream):
                frames.extend(packet.decode())
        except av.error.FFmpegError:
            frames.extend(stream.codec_context.decode(None))
    return frames


def cover_pixels(path, size):
    with Image.open(path) as image:
        return np.asarray(ImageOps.fit(image.convert("RGB"), (size, size),
                                       method=Image.Resampling.BILINEAR))


def write_noise_video(path, n_frames=60, fps=12, gop=10):
    """An H.264 clip with a keyframe every ``gop`` frames and B-frames: seeking matters."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = 96, 64, "yuv420p", gop
        for index in range(n_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8),
                                               format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


# ------------------------------------------------------------------------ frame choice ---


@pytest.mark.parametrize("n_total, num_frames, interval, expected", [
    (10, 5, 1, [2, 3, 4, 5, 6]),
    (9, 5, 1, [2, 3, 4, 5, 6]),
    (60, 3, 5, [24, 29, 34]),
    (100, 5, 25, [0, 24, 49, 74, 99]),
    (3, 5, 1, [0, 0, 1, 2, 2]),
    (2, 4, 1, [0, 0, 1, 1]),
    (1, 5, 1, [0, 0, 0, 0, 0]),
    (12, 5, 5, [0, 0, 5, 10, 11]),
])
def test_frames_are_centred_on_the_middle_and_padded_at_the_ends(n_total, num_frames, interval,
                                                                 expected):
    assert select_frame_indices(n_total, num_frames, interval) == expected


def test_a_video_without_frames_has_no_selection():
    with pytest.raises(ValueError):
        select_frame_indices(0)


def test_spec_names_its_folder_and_rejects_nonsense():
    assert FrameSpec().dirname == "frames_n5_i1_s224"
    assert FrameSpec().row_shape == (5, 224, 224, 3)
    with pytest.raises(ValueError):
        FrameSpec(num_frames=0)


# ------------------------------------------------------------------------------ pixels ---


def test_store_is_one_uint8_memmap_with_a_padding_row(serial):
    store = MediaStore.open(serial.folder)
    shape = (N_ITEMS + 1, *SPEC.row_shape)
    assert isinstance(store.data, np.memmap) and store.data.dtype == np.uint8
    assert store.data.shape == shape and len(store) == N_ITEMS + 1
    assert (serial.folder / "frames.u8").stat().st_size == np.prod(shape)
    assert store.spec == SPEC and store.status[0] == "padding" and not store[0].any()
    assert serial.folder.name == "frames_n5_i2_s48"


def test_stored_frames_equal_a_direct_pyav_decode(sample, serial):
    """Also a partial video: its row is the same rule applied to the frames that decode."""
    store = MediaStore.open(serial.folder)
    status = dict(zip(store.tokens, store.status))
    checked = 0
    for token in sample["tokens"]:
        if status[token] in ("missing", "undecodable"):
            continue
        frames = decodable_frames(sample["videos"] / f"{token}.mp4")
        indices = select_frame_indices(len(frames), SPEC.num_frames, SPEC.interval)
        expected = np.stack([square(frames[i], SPEC.size) for i in indices])
        np.testing.assert_array_equal(store[store.rows_for([token])[0]], expected)
        checked += 1
    assert checked == N_ITEMS - 1 - (status[sample["truncated"]] == "undecodable")


def test_seeking_changes_the_cost_not_the_pixels(tmp_path):
    video = write_noise_video(tmp_path / "long.mp4")
    frames = decodable_frames(video)
    for spec in (FrameSpec(5, 1, 32), FrameSpec(3, 5, 32), FrameSpec(1, 1, 32),
                 FrameSpec(9, 7, 32)):
        seeking = decode_clip(video, spec, seek=True)
        from_start = decode_clip(video, spec, seek=False)
        indices = select_frame_indices(len(frames), spec.num_frames, spec.interval)
        expected = np.stack([square(frames[i], spec.size) for i in indices])
        assert seeking.status == from_start.status == "ok"
        np.testing.assert_array_equal(seeking.pixels, expected)
        np.testing.assert_array_equal(from_start.pixels, expected)
    five = FrameSpec(5, 1, 32)
    assert decode_clip(video, five, seek=False).frames_decoded == 32  # frames 0..31
    assert decode_clip(video, five, seek=True).frames_decoded <= 5 + 10  # from a keyframe <= 27


# ------------------------------------------------------------------------ broken media ---


def test_truncated_and_missing_videos_are_flagged_counted_and_show_their_cover(sample, serial):
    store = MediaStore.open(serial.folder)
    meta = read_json(serial.folder / "meta.json")
    truncated, missing = sample["truncated"], sample["missing"]
    status = dict(zip(store.tokens, store.status))
    assert status[truncated] in ("partial", "undecodable") and status[missing] == "missing"
    assert meta["problems"] == {truncated: status[truncated], missing: "missing"}
    assert meta["counts"]["ok"] == N_ITEMS - 2 and sum(meta["counts"].values()) == N_ITEMS
    assert meta["counts"]["missing"] == 1 and serial.counts == meta["counts"]
    assert serial.problems == meta["problems"]
    cover = cover_pixels(sample["covers"] / f"{missing}.jpg", SPEC.size)
    np.testing.assert_array_equal(store[store.rows_for([missing])[0]], np.stack([cover] * 5))
    if status[truncated] == "undecodable":
        cover = cover_pixels(sample["covers"] / f"{truncated}.jpg", SPEC.size)
        np.testing.assert_array_equal(store[store.rows_for([truncated])[0]], np.stack([cover] * 5))


def test_without_covers_broken_videos_are_grey(sample, tmp_path):
    tokens = [sample["truncated"], sample["missing"]]
    report = build_frame_store(sample["videos"], tokens, tmp_path, SPEC, workers=1, progress=False)
    store = MediaStore.open(report.folder)
    without_frames = [row for row in (1, 2) if store.status[row] in ("missing", "undecodable")]
    assert 2 in without_frames and (store[without_frames] == 128).all()


def test_a_partial_video_keeps_the_frames_that_decode(tmp_path):
    video = write_noise_video(tmp_path / "cut.mp4")
    os.truncate(video, int(video.stat().st_size * 0.3))
    frames = decodable_frames(video)
    assert 0 < len(frames) < 30  # the wanted middle frames are gone
    clip = decode_clip(video, FrameSpec(5, 1, 32))
    indices = select_frame_indices(len(frames), 5, 1)
    assert clip.status == "partial"
    np.testing.assert_array_equal(clip.pixels, np.stack([square(frames[i], 32) for i in indices]))


def test_garbage_file_is_undecodable(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 100)
    assert decode_clip(tmp_path / "junk.mp4", SPEC).status == "undecodable"
    assert decode_clip(tmp_path / "absent.mp4", SPEC).status == "missing"


# ---------------------------------------------------------------- resuming and reusing ---


def test_an_interrupted_build_resumes_with_only_the_missing_rows(sample, serial, tmp_path):
    first = build_frame_store(sample["videos"], sample["tokens"], tmp_path, SPEC,
                              covers_dir=sample["covers"], workers=1, progress=False, max_items=7)
    assert not first.complete and first.rows_decoded == 7
    assert not (first.folder / "meta.json").exists()
    with pytest.raises(FileNotFoundError):
        MediaStore.open(first.folder)
    second = build_frame_store(sample["videos"], sample["tokens"], tmp_path, SPEC,
                               covers_dir=sample["covers"], workers=1, progress=False)
    assert second.complete and second.rows_decoded == N_ITEMS - 7
    assert read_bytes(second.folder) == read_bytes(serial.folder)
    assert read_json(second.folder / "index.json") == read_json(serial.folder / "index.json")
    assert read_json(second.folder / "meta.json")["rows_done_before_this_run"] == 7


def test_after_a_crash_only_rows_not_vouched_for_are_decoded_again(sample, serial, tmp_path):
    """A killed build leaves pixels written after the last status checkpoint unvouched (in the
    store's partial folder, where the next build resumes)."""
    folder = shutil.copytree(serial.folder, partial_path(tmp_path / serial.folder.name))
    (folder / "meta.json").unlink()
    lost = [3, 10, 20]
    status = np.load(folder / "status.npy")
    status[lost] = 0
    np.save(folder / "status.npy", status)
    data = np.memmap(folder / "frames.u8", dtype=np.uint8, mode="r+",
                     shape=(N_ITEMS + 1, *SPEC.row_shape))
    data[lost] = 0
    data.flush()
    del data
    report = build_frame_store(sample["videos"], sample["tokens"], tmp_path, SPEC,
                               covers_dir=sample["covers"], workers=1, progress=False)
    assert report.rows_decoded == len(lost) and report.complete
    assert read_bytes(report.folder) == read_bytes(serial.folder) and not folder.exists()


@dataclass(frozen=True)
class DyingDecoder:
    """Decodes like the real one, but the worker process dies on one item (OOM-kill alike)."""

    inner: FrameRowDecoder
    fatal_token: str

    def __call__(self, token):
        if token == self.fatal_token:
            os._exit(1)
        return self.inner(token)


def test_a_killed_worker_loses_nothing_that_was_recorded(sample, serial, tmp_path):
    inner = FrameRowDecoder(sample["videos"], SPEC, sample["covers"])
    with pytest.raises(BrokenProcessPool):
        build_row_store(SPEC, DyingDecoder(inner, "30"), sample["tokens"], tmp_path, workers=2,
                        progress=False, max_items=None, checkpoint_every=1, sources={},
                        fallback=FALLBACK)
    partial = partial_path(tmp_path / SPEC.dirname)
    recorded = int((np.load(partial / "status.npy")[1:] != 0).sum())
    assert 0 < recorded < N_ITEMS and not (tmp_path / SPEC.dirname).exists()
    report = build_frame_store(sample["videos"], sample["tokens"], tmp_path, SPEC,
                               covers_dir=sample["covers"], workers=2, progress=False)
    assert report.rows_decoded == N_ITEMS - recorded and report.complete
    assert read_bytes(report.folder) == read_bytes(serial.folder)


def test_a_complete_store_is_not_rebuilt(sample, serial):
    before = (serial.folder / "frames.u8").stat().st_mtime_ns
    again = build_frame_store(sample["videos"], sample["tokens"], serial.folder.parent, SPEC,
                              covers_dir=sample["covers"], workers=1, progress=False)
    assert again.reused and again.rows_decoded == 0 and again.counts == serial.counts
    assert (serial.folder / "frames.u8").stat().st_mtime_ns == before


def test_a_complete_store_serves_any_subset_of_its_items(sample, serial):
    subset = sample["tokens"][9::-1]
    report = build_frame_store(sample["videos"], subset, serial.folder.parent, SPEC, workers=1,
                               progress=False)
    assert report.reused and report.folder == serial.folder
    store = MediaStore.open(report.folder)
    assert store.rows_for(subset).tolist() == list(range(10, 0, -1))


def test_a_store_for_other_items_is_rebuilt_from_scratch(sample, tmp_path):
    tokens = sample["tokens"]
    build_frame_store(sample["videos"], tokens[:5], tmp_path, SPEC, workers=1, progress=False,
                      max_items=2)
    report = build_frame_store(sample["videos"], tokens[:9], tmp_path, SPEC, workers=1,
                               progress=False)
    assert report.rows_decoded == 9 and len(MediaStore.open(report.folder)) == 10


def test_concurrent_builders_of_one_store_wait_and_reuse(sample, serial, tmp_path):
    def build():
        return build_frame_store(sample["videos"], sample["tokens"], tmp_path, SPEC,
                                 covers_dir=sample["covers"], workers=1, progress=False)

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: build(), range(2)))
    assert sorted(report.rows_decoded for report in reports) == [0, N_ITEMS]
    assert sorted(report.reused for report in reports) == [False, True]
    assert read_bytes(reports[0].folder) == read_bytes(serial.folder)


def test_two_workers_build_the_same_store_as_one(sample, serial, tmp_path):
    report = build_frame_store(sample["videos"], sample["tokens"], tmp_path, SPEC,
                               covers_dir=sample["covers"], workers=2, progress=False)
    assert report.complete and report.rows_decoded == N_ITEMS
    assert read_bytes(report.folder) == read_bytes(serial.folder)
    assert read_json(report.folder / "index.json") == read_json(serial.folder / "index.json")


# ------------------------------------------------------------------------------ reading ---


def test_media_store_indexes_by_token_and_pickles_light(serial):
    store = MediaStore.open(serial.folder)
    rows = store.rows_for(["[PAD]", "5", 1])
    assert rows.tolist() == [0, 5, 1]
    batch = store[rows]
    assert batch.shape == (3, *SPEC.row_shape) and batch.dtype == np.uint8
    assert not isinstance(batch, np.memmap)  # a batch is an ordinary in-memory array
    with pytest.raises(KeyError):
        store.rows_for(["5", "no-such-item"])
    clone = pickle.loads(pickle.dumps(store))
    assert len(pickle.dumps(store)) < 1000
    np.testing.assert_array_equal(clone[rows], batch)


# ------------------------------------------------------------------------------- covers ---


def test_cover_store_holds_resized_covers(sample, tmp_path):
    report = build_cover_store(sample["covers"], sample["tokens"], tmp_path, size=48, workers=1,
                               progress=False)
    store = MediaStore.open(report.folder)
    assert report.folder.name == "covers_s48" and store.data.shape == (N_ITEMS + 1, 48, 48, 3)
    assert report.counts["ok"] == N_ITEMS and store.data.dtype == np.uint8
    np.testing.assert_array_equal(store[store.rows_for(["7"])[0]],
                                  cover_pixels(sample["covers"] / "7.jpg", 48))


def test_missing_and_broken_covers_are_grey_and_counted(sample, tmp_path):
    covers = tmp_path / "covers"
    covers.mkdir()
    shutil.copy(sample["covers"] / "1.jpg", covers / "1.jpg")
    (covers / "2.jpg").write_bytes(b"\xff\xd8 broken")
    report = build_cover_store(covers, ["1", "2", "3"], tmp_path, size=16, workers=1,
                               progress=False)
    store = MediaStore.open(report.folder)
    assert store.status.tolist() == ["padding", "ok", "undecodable", "missing"]
    assert report.problems == {"2": "undecodable", "3": "missing"}
    assert (store[[2, 3]] == 128).all()


# ----------------------------------------------------------------------------- datasets ---


def test_prepare_media_builds_both_stores_for_the_dataset_items(sample, tmp_path):
    dataset_dir = tmp_path / "ml-tiny"
    dataset_dir.mkdir()
    (dataset_dir / "ml-tiny.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n1\t3\t0\n1\t1\t1\n2\t3\t2\n2\t5\t3\n")
    reports = prepare_media(dataset_dir, sample["raw"], frames=SPEC, covers_size=16, workers=1,
                            progress=False)
    assert set(reports) == {"frames", "covers"}
    for report in reports.values():
        assert report.folder.parent == dataset_dir / "media"
        assert MediaStore.open(report.folder).tokens == ["[PAD]", "3", "1", "5"]


def test_item_tokens_come_from_the_item_file_first(tmp_path):
    dataset_dir = tmp_path / "ds"
    dataset_dir.mkdir()
    (dataset_dir / "ds.inter").write_text("user_id:token\titem_id:token\n1\t9\n")
    assert read_item_tokens(dataset_dir) == ["9"]
    (dataset_dir / "ds.item").write_text("item_id:token\ttitle:token_seq\n4\ta b\n2\t\n")
    assert read_item_tokens(dataset_dir) == ["4", "2"]
