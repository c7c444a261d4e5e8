"""Hyper-parameter search: the search space, and real Ray Tune sweeps of real RecBole trials."""
import csv
import json
import math
import os
from pathlib import Path

import pytest
import yaml

from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.cli.commands import config_overrides
from recbole_microlens.tune import (
    load_tune_spec,
    model_settings,
    pin_trial_to,
    run_tune,
    search_domain,
)

DATASET = "microlens-sample"
METRICS = ["hit@10", "ndcg@10", "hit@20", "ndcg@20"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- the search space (no Ray cluster) ----------------------------------------------------------
@pytest.mark.parametrize("model, expected", [
    ("SASRec", {"hidden_size": 32, "inner_size": 128}),
    ("SASRecV", {"hidden_size": 32, "inner_size": 128}),  # inherits SASRec's keys
    ("GRU4Rec", {"embedding_size": 32}),
    ("NextItNet", {"embedding_size": 32}),
    ("BPR", {"embedding_size": 32}),  # RecBole's own models
])
def test_embedding_size_maps_to_each_models_keys(model, expected):
    settings = model_settings(model, {"embedding_size": 32, "learning_rate": 1e-3})
    assert settings == {"learning_rate": 1e-3, **expected}


def test_paper_grid_and_its_optional_batch_axis():
    spec = load_tune_spec("paper")
    assert spec.search_space == {
        "learning_rate": [1e-5, 5e-5, 1e-4, 5e-4, 1e-3],
        "embedding_size": [64, 128, 256, 512, 1024, 2048, 4096],
    }
    with_batch = load_tune_spec("paper", axes=["train_batch_size"])
    assert with_batch.search_space["train_batch_size"] == [64, 128, 256, 512, 1024, 2048]
    with pytest.raises(ValueError, match="no optional axes"):
        load_tune_spec("paper", axes=["dropout_prob"])


def test_yaml_axes_become_ray_domains(tmp_path):
    from ray.tune.search.sample import Categorical, Float

    path = tmp_path / "grid.yaml"
    path.write_text("search_space:\n  learning_rate: {loguniform: [1e-5, 1e-3]}\n"
                    "  n_layers: {choice: [1, 2]}\n  dilations: {grid_search: [[1, 2], [1, 4]]}\n"
                    "fixed: {epochs: 3}\nnum_samples: 4\n")
    spec = load_tune_spec(path)
    assert spec.name == "grid" and spec.fixed == {"epochs": 3} and spec.num_samples == 4
    assert isinstance(search_domain("learning_rate", spec.search_space["learning_rate"]), Float)
    assert isinstance(search_domain("n_layers", spec.search_space["n_layers"]), Categorical)
    assert search_domain("dilations", spec.search_space["dilations"]) == {
        "grid_search": [[1, 2], [1, 4]]}
    assert search_domain("learning_rate", [1e-4]) == {"grid_search": [1e-4]}


@pytest.mark.parametrize("bad, message", [
    ({"search_space": {"learning_rate": []}}, "non-empty list"),
    ({"search_space": {"learning_rate": {"normal": [0, 1]}}}, "non-empty list"),
    ({"search_space": {}}, "empty"),
    ({"search_space": {"learning_rate": [1e-3]}, "fixd": {}}, "unknown sections"),
])
def test_bad_tune_configs_fail_before_anything_runs(bad, message):
    with pytest.raises(ValueError, match=message):
        load_tune_spec(bad)


def test_command_line_overrides_are_typed_like_recbole():
    assert config_overrides(["--epochs=3", "--learning_rate=1e-3", "--show_progress=false",
                             "--dilations=[1, 4]", "--loss_type=CE"]) == {
        "epochs": 3, "learning_rate": 1e-3, "show_progress": False, "dilations": [1, 4],
        "loss_type": "CE"}
    with pytest.raises(ValueError, match="--key=value"):
        config_overrides(["--asha_typo"])


def test_a_trial_uses_its_cpus_and_only_its_gpus(monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "9")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    threads = torch.get_num_threads()
    try:
        assert pin_trial_to({"CPU": 2.0, "GPU": 0.5}, [3]) == {"gpu_id": "3", "use_gpu": True}
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3" and os.environ["OMP_NUM_THREADS"] == "2"
        assert torch.get_num_threads() == 2
        assert pin_trial_to({"CPU": 1.0}, []) == {"gpu_id": "", "use_gpu": False}
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # no GPU: nothing sees one, nothing waits
    finally:
        torch.set_num_threads(threads)


def test_the_command_line_has_the_tune_flags(capsys):
    from recbole_microlens.cli.commands import build_parser, main

    args = build_parser().parse_args([
        "tune", "--model", "GRU4Rec", "--dataset", DATASET, "--tune-config", "sample",
        "--gpus_per_trial", "0.5", "--asha", "--tune-axes", "train_batch_size"])
    assert (args.tune_config, args.gpus_per_trial, args.asha, args.tune_axes,
            args.max_concurrent, args.cpus_per_trial) == ("sample", 0.5, True,
                                                          "train_batch_size", 2, 1)
    assert main(["tune", "--model", "SASRec", "--dataset", DATASET, "--tune-config", "nope"]) == 2
    assert "no tune config 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("space, message", [
    ({"learning_rate": [1e-3, -0.001]}, "search_space.learning_rate: config learning_rate must "
                                         "be a positive number, got -0.001"),
    ({"learning_rate": {"loguniform": [-1, 1e-3]}}, "search_space.learning_rate"),
    ({"embedding_size": {"choice": [8, 0]}}, "embedding_size must be an integer >= 1, got 0"),
    ({"train_batch_size": {"randint": [0, 4]}}, "train_batch_size must be an integer >= 1"),
])
def test_values_out_of_range_in_the_search_space_fail_before_ray_starts(space, message,
                                                                         tmp_path, capsys):
    """The command line's range checks, on every value an axis can take (issue 22)."""
    import sys

    from recbole_microlens.cli.commands import main

    (tmp_path / "space.yaml").write_text(yaml.safe_dump({"search_space": space}))
    assert main(["tune", "--model", "SASRec", "--dataset", DATASET, "--tune-config",
                 str(tmp_path / "space.yaml"), "--tune-dir", str(tmp_path / "ray_results")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0]
    assert not (tmp_path / "ray_results").exists()
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


# -- real sweeps --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module (run_tune uses a Ray that is already running)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("tune")


def _sweep(workdir, tune_config, **options):
    options = {"max_concurrent": 2, "cpus_per_trial": 1, **options}
    return run_tune("SASRec", DATASET, tune_config,
                    config_dict={"data_path": str(workdir / "atomic_files")},
                    tune_dir=workdir / "ray_results", **options)


@pytest.fixture(scope="module")
def sample_sweep(ray_cluster, workdir):
    """properties/tune/sample.yaml: 2 learning rates x 2 embedding sizes, 2 epochs each."""
    return _sweep(workdir, "sample")


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_trial_has_a_row_and_only_the_chosen_one_shows_test_metrics(sample_sweep):
    rows = _csv_rows(sample_sweep.files["csv"])
    assert len(rows) == len(sample_sweep.trials) == 4
    assert {(float(r["learning_rate"]), int(r["embedding_size"])) for r in rows} == {
        (lr, size) for lr in (1e-3, 5e-3) for size in (8, 16)}
    chosen = sample_sweep.best["trial"]
    for row in rows:
        assert row["status"] == "completed" and row["error"] == ""
        assert all(math.isfinite(float(row[f"valid_{m}"])) for m in METRICS)
        assert all(row[f"test_{m}"] == "" for m in METRICS) == (row["trial"] != chosen)
        assert int(row["epochs"]) == 2 and float(row["wall_s"]) > 0
    chosen_row = next(row for row in rows if row["trial"] == chosen)
    assert all(math.isfinite(float(chosen_row[f"test_{m}"])) for m in METRICS)
    markdown = sample_sweep.files["markdown"].read_text()
    assert markdown.count("| trial_") == 4 and "Chosen:" in markdown
    assert "test_" not in markdown  # the table: valid metrics only
    assert markdown.count("its test metrics: hit@10 ") == 1


def test_the_chosen_trial_has_the_highest_valid_ndcg(sample_sweep):
    rows = _csv_rows(sample_sweep.files["csv"])
    highest = max(rows, key=lambda row: float(row["valid_ndcg@10"]))
    assert sample_sweep.best["trial"] == highest["trial"]


def test_best_config_is_a_yaml_that_mlconfig_accepts(sample_sweep, workdir):
    path = sample_sweep.files["best_config"]
    loaded = yaml.safe_load(path.read_text())
    best = sample_sweep.best
    size = best["embedding_size"]
    assert loaded["learning_rate"] == best["learning_rate"]
    assert loaded["hidden_size"] == size and loaded["inner_size"] == 4 * size
    assert loaded["epochs"] == 2  # the yaml's fixed settings travel with the swept values
    config = MLConfig("SASRec", DATASET, config_file_list=[str(path)])
    assert config["learning_rate"] == best["learning_rate"] and config["hidden_size"] == size
    assert Path(config["data_path"]) == workdir / "atomic_files" / DATASET


def test_each_trial_has_its_own_checkpoint_and_log(sample_sweep):
    checkpoints = [Path(row["checkpoint"]) for row in sample_sweep.trials]
    assert len(set(checkpoints)) == 4
    for row, checkpoint in zip(sample_sweep.trials, checkpoints):
        trial_dir = Path(row["trial_dir"])
        assert checkpoint.is_file() and checkpoint.parent == trial_dir / "saved"
        assert list((trial_dir / "saved").glob("*.pth")) == [checkpoint]
        assert len(list((trial_dir / "log").rglob("*.log"))) == 1


def test_validation_is_reported_every_epoch(sample_sweep):
    """Tune sees each epoch's valid NDCG@10 (what --asha acts on), then the final report."""
    for row in sample_sweep.trials:
        lines = (Path(row["trial_dir"]) / "result.json").read_text().splitlines()
        reports = [json.loads(line) for line in lines]
        assert [report["epoch"] for report in reports] == [1, 2, 2]
        assert [report.get("tested", False) for report in reports] == [False, False, True]
        assert "test_ndcg@10" not in reports[0] and "test_ndcg@10" not in reports[1]
        best_so_far = [report["valid_ndcg@10"] for report in reports]
        assert best_so_far[0] <= best_so_far[1] == best_so_far[2] == row["valid_ndcg@10"]


def test_heatmap_is_a_png(sample_sweep):
    data = sample_sweep.files["heatmap"].read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1024


def test_resume_of_a_finished_sweep_reruns_nothing(sample_sweep, workdir):
    resumed = _sweep(workdir, "sample", resume=True)
    assert resumed.experiment_dir == sample_sweep.experiment_dir
    assert [row["checkpoint"] for row in resumed.trials] == [
        row["checkpoint"] for row in sample_sweep.trials]
    assert resumed.best["trial"] == sample_sweep.best["trial"]


def test_a_new_sweep_never_overwrites_an_old_one(sample_sweep, workdir):
    with pytest.raises(FileExistsError, match="--resume"):
        _sweep(workdir, "sample")


#: SASRec's 2 attention heads cannot split 15 dimensions: a trial that passes every check made
#: before Ray starts and fails in the model
FAILING_SIZE = 15
HEADS_ERROR = "is not a multiple of the number of attention heads"


def test_failed_and_early_stopped_trials_are_reported_and_the_sweep_goes_on(ray_cluster, workdir):
    """One trial at a time, with ASHA (Ray's grid runs embedding_size fastest): lr 5e-3 completes;
    lr 1e-4 trails it after epoch 1 and is stopped; size 15 fails in the model. All are reported."""
    grid = {"search_space": {"learning_rate": [5e-3, 1e-4], "embedding_size": [16, FAILING_SIZE]},
            "fixed": {"epochs": 2}, "asha": {"grace_period": 1, "reduction_factor": 2}}
    result = _sweep(workdir, grid, asha=True, max_concurrent=1, name="asha")
    rows = {(row["learning_rate"], row["embedding_size"]): row for row in result.trials}
    assert rows[5e-3, 16]["status"] == "completed" and rows[5e-3, 16]["error"] is None
    assert rows[1e-4, 16]["status"] == "stopped early" and rows[1e-4, 16]["epochs"] == 1
    assert math.isnan(rows[1e-4, 16]["test_ndcg@10"])  # stopped before any test evaluation
    for lr in (5e-3, 1e-4):
        assert rows[lr, FAILING_SIZE]["status"] == "error"
        assert HEADS_ERROR in rows[lr, FAILING_SIZE]["error"]
    assert result.best["trial"] == rows[5e-3, 16]["trial"]
    assert HEADS_ERROR in result.files["markdown"].read_text()
    assert result.files["heatmap"].read_bytes()[:8] == PNG_MAGIC  # the failed cells show n/a


def test_a_sweep_in_which_no_trial_completes_exits_1(ray_cluster, workdir, capsys):
    from recbole_microlens.cli.commands import main

    (workdir / "setup.yaml").write_text(f"data_path: {workdir / 'atomic_files'}\n")
    (workdir / "failing.yaml").write_text(
        f"search_space: {{embedding_size: [{FAILING_SIZE}]}}\nfixed: {{epochs: 1}}\n")
    code = main(["tune", "--model", "SASRec", "--dataset", DATASET, "--tune-config",
                 str(workdir / "failing.yaml"), "--config-files", str(workdir / "setup.yaml"),
                 "--tune-dir", str(workdir / "ray_results"), "--cpus-per-trial", "1"])
    assert code == 1
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and "no trial of the sweep completed (1 of 1 failed" in error[0]
    assert HEADS_ERROR in error[0]


def test_heatmap_outlines_the_chosen_cell(tmp_path, monkeypatch):
    from matplotlib.patches import Rectangle

    from recbole_microlens.report import style
    from recbole_microlens.tune.outputs import choose_best, write_heatmap

    drawn = []
    monkeypatch.setattr(style, "save", lambda figure, path: drawn.append(figure) or path)
    rows = [{"trial": f"t{i}", "status": "completed", "learning_rate": lr, "embedding_size": size,
             "valid_ndcg@10": score}
            for i, (lr, size, score) in enumerate([(1e-4, 32, 0.003), (1e-3, 32, 0.008),
                                                   (1e-4, 64, 0.002), (1e-3, 64, 0.020)])]
    best = choose_best(rows)
    write_heatmap(tmp_path / "h.png", rows, ["learning_rate", "embedding_size"], "t", chosen=best)
    axes = drawn[0].axes[0]
    outlines = [p for p in axes.patches if isinstance(p, Rectangle) and not p.get_fill()]
    assert [(p.get_x() + 0.5, p.get_y() + 0.5) for p in outlines] == [(1.0, 1.0)]  # lr 1e-3, 64
    assert "chosen" in [text.get_text() for text in axes.texts]
