"""Cold start: a content model trained on the sample with some items held out embeds those items
from their videos with its trained encoder and recommends them."""
import csv
import shutil
from pathlib import Path

import pytest
import torch

from recbole_microlens.quick_start import load_data_and_model
from recbole_microlens.cli.commands import main
from recbole_microlens.data.stores.atomic import seal
from recbole_microlens.data.stores.decode import FrameSpec, decode_clip
from recbole_microlens.data.prepare import ensure_atomic_files
from recbole_microlens.serve.inference import InferenceError, embed_new_items, item_vectors, recommend
from recbole_microlens.quick_start import run_recbole_ml

SAMPLE, HELD_OUT_DATASET = "microlens-sample", "sample-heldout"
N_HELD_OUT = 4


def _sample(root: Path) -> Path:
    folder = root / SAMPLE
    ensure_atomic_files({"dataset": SAMPLE, "data_path": str(folder), "raw_data_path": None,
                         "warm": None})
    return folder


def _held_out_items(sample: Path) -> list[str]:
    """The first items whose video decodes completely."""
    tokens = [line.split("\t")[0] for line in
              (sample / f"{SAMPLE}.item").read_text().splitlines()[1:]]
    spec = FrameSpec(num_frames=5, interval=1, size=64)
    good = [t for t in tokens[:20] if decode_clip(sample / "raw" / "videos" / f"{t}.mp4",
                                                  spec).status == "ok"]
    return good[:N_HELD_OUT]


def _write_without(sample: Path, folder: Path, held_out: set[str]) -> None:
    """The sample's atomic files with every row of the held-out items removed."""
    folder.mkdir(parents=True)
    for suffix, column, sep in ((".inter", 1, "\t"), (".item", 0, "\t"), (".titles.csv", 0, ",")):
        lines = (sample / f"{SAMPLE}{suffix}").read_text(encoding="utf-8").splitlines()
        kept = [lines[0]] + [line for line in lines[1:] if line.split(sep)[column] not in held_out]
        (folder / f"{HELD_OUT_DATASET}{suffix}").write_text("\n".join(kept) + "\n", encoding="utf-8")
    (folder / "raw").symlink_to(sample / "raw")
    seal(folder, HELD_OUT_DATASET, {"dataset": HELD_OUT_DATASET, "converter": __name__})


@pytest.fixture(scope="module")
def cold_start(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("cold")
    sample = _sample(root / "atomic_files")
    held_out = _held_out_items(sample)
    assert len(held_out) == N_HELD_OUT
    _write_without(sample, root / "atomic_files" / HELD_OUT_DATASET, set(held_out))
    options = {"data_path": str(root / "atomic_files"), "checkpoint_dir": str(root / "saved"),
               "epochs": 1, "show_progress": False, "item_encoder": "x3d-xs",
               "encoder_overrides": {"size": 64}, "hidden_size": 16, "inner_size": 32,
               "train_batch_size": 64, "encoder_checkpoint": "random"}
    run_recbole_ml("SASRecV", HELD_OUT_DATASET, config_dict=options)
    checkpoint = next((root / "saved").glob("SASRecV-*.pth"))
    # new items: the held-out videos (and covers), plus a copy of a catalogue item's video
    new = root / "new-items"
    (new / "videos").mkdir(parents=True)
    for token in held_out:
        shutil.copy(sample / "raw" / "videos" / f"{token}.mp4", new / "videos")
    twin_of = (root / "atomic_files" / HELD_OUT_DATASET / f"{HELD_OUT_DATASET}.item"
               ).read_text().splitlines()[1].split("\t")[0]
    shutil.copy(sample / "raw" / "videos" / f"{twin_of}.mp4", new / "videos" / "twin.mp4")
    return checkpoint, held_out, new, twin_of


@pytest.fixture(scope="module")
def loaded(cold_start):
    return load_data_and_model(cold_start[0])


def test_new_items_are_embedded_with_the_trained_encoder(cold_start, loaded):
    checkpoint, held_out, new, twin_of = cold_start
    _, model, dataset, *_ = loaded
    assert not set(held_out) & set(dataset.field2token_id[dataset.iid_field])
    items = embed_new_items(model, dataset, new)
    assert sorted(items.tokens) == sorted(held_out + ["twin"])
    assert items.vectors.shape == (N_HELD_OUT + 1, 16)
    # the same video as a catalogue item gets exactly that item's trained vector
    catalogue = item_vectors(model)
    twin_id = dataset.field2token_id[dataset.iid_field][twin_of]
    torch.testing.assert_close(items.vectors[items.tokens.index("twin")], catalogue[twin_id],
                               rtol=1e-5, atol=1e-5)
    held_out_vectors = items.vectors[[items.tokens.index(t) for t in held_out]]
    assert torch.cdist(held_out_vectors, catalogue[1:]).min() > 1e-4  # new vectors, not copies


def test_recommend_only_new_items_encodes_each_catalogue_item_once(cold_start, loaded):
    import numpy as np

    _, held_out, new, _ = cold_start
    _, model, dataset, *_ = loaded
    items = embed_new_items(model, dataset, new)
    encoded_before = model.item_tower.items_encoded
    users = np.arange(1, dataset.user_num)
    rows = recommend(model, dataset, users, k=3, batch_size=64, new_items=items,
                     candidates="new")
    # every real item once (padding is never encoded), not once per user or batch
    assert model.item_tower.items_encoded - encoded_before == dataset.item_num - 1
    assert {row[2] for row in rows} <= set(held_out) | {"twin"}
    assert len(rows) == 3 * len(users) and len(users) > 300
    first = [row for row in rows if row[0] == rows[0][0]]
    assert [row[1] for row in first] == [1, 2, 3] and first[0][3] >= first[1][3] >= first[2][3]


def test_recommend_command_ranks_catalogue_and_new_items(cold_start, tmp_path):
    checkpoint, held_out, new, _ = cold_start
    # one ranking over old and new items, known items still masked
    mixed = tmp_path / "mixed.tsv"
    assert main(["recommend", "--checkpoint", str(checkpoint), "--all-users", "--topk", "50",
                 "--new-items", str(new), "--out", str(mixed)]) == 0
    with open(mixed, encoding="utf-8") as handle:
        ranked = list(csv.DictReader(handle, delimiter="\t"))
    tokens = {row["item_id"] for row in ranked}
    assert tokens & set(held_out) and len(tokens - set(held_out) - {"twin"}) > 10
    new_tokens = set(held_out) | {"twin"}
    assert {(row["item_id"] in new_tokens, row["source"]) for row in ranked} == {
        (False, "catalogue"), (True, "new")}


def test_models_without_an_encoder_refuse_new_items(cold_start, loaded, monkeypatch, tmp_path):
    import numpy as np

    _, _, new, _ = cold_start
    _, model, dataset, *_ = loaded
    with pytest.raises(InferenceError, match="needs new items"):
        recommend(model, dataset, np.array([1]), candidates="new")
    with pytest.raises(InferenceError, match="needs new items in .*videos"):
        embed_new_items(model, dataset, tmp_path)
    monkeypatch.setattr(model.item_tower, "encodes_content", False)  # as an ID tower says
    with pytest.raises(InferenceError, match="no content encoder"):
        embed_new_items(model, dataset, new)


def test_new_items_whose_media_cannot_be_read_are_marked_in_the_tsv(cold_start, tmp_path):
    """A truncated and an empty video: ranked from a fallback input, and the TSV says so (issue
    22); every row says where its item came from."""
    checkpoint, held_out, new, _ = cold_start
    folder = tmp_path / "new"
    shutil.copytree(new / "videos", folder / "videos")
    whole = (folder / "videos" / f"{held_out[0]}.mp4").read_bytes()
    (folder / "videos" / "truncated.mp4").write_bytes(whole[:256])
    (folder / "videos" / "empty.mp4").write_bytes(b"")
    out = tmp_path / "new.tsv"
    n_new = len(held_out) + 3  # the held-out items, the twin, the two broken ones
    assert main(["recommend", "--checkpoint", str(checkpoint), "--all-users", "--topk",
                 str(n_new), "--new-items", str(folder), "--candidates", "new", "--out",
                 str(out)]) == 0
    with open(out, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert list(rows[0]) == ["user_id", "rank", "item_id", "score", "source"]
    source = {row["item_id"]: row["source"] for row in rows}
    assert source == {**{token: "new" for token in [*held_out, "twin"]},
                      "truncated": "new-fallback", "empty": "new-fallback"}
