"""``recbole-microlens evaluate`` and reloads of content towers: a checkpoint alone reproduces
the metrics its training run reported, because a reload reads the run's (fp16) trunk cache as
training and validation did; ``--live-trunk`` shows what that rounding moves."""
import json

import pytest
import torch

from recbole_microlens.cli.commands import main
from recbole_microlens.io import sha256_file
from recbole_microlens.quick_start import load_data_and_model, run_recbole_ml
from recbole_microlens.trainer.trainer import MLTrainer

METRICS = ("hit@10", "ndcg@10", "hit@20", "ndcg@20")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_thread):
    """SASRecV over titles, the top block of a small BERT fine-tuned, 2 epochs on the sample,
    with the default fp16 trunk cache: (result, checkpoint)."""
    root = tmp_path_factory.mktemp("evaluate")
    options = {"data_path": str(root / "atomic_files"), "checkpoint_dir": str(root / "saved"),
               "epochs": 2, "show_progress": False, "hidden_size": 16, "inner_size": 32,
               "item_modality": "text", "item_encoder": "bert-tiny", "finetune": "top",
               "encoder_checkpoint": "random", "popularity_groups": 3}
    result = run_recbole_ml("SASRecV", "microlens-sample", config_dict=options)
    assert result["seconds"]["trunk_cache"] > 0  # the run trained over a trunk cache
    return result, next((root / "saved").glob("SASRecV-*.pth"))


def metrics(values: dict) -> dict:
    return {name: values[name] for name in METRICS}


def test_evaluate_reproduces_the_training_runs_metrics(trained, tmp_path, capsys):
    result, checkpoint = trained
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["checkpoint_sha256"] == sha256_file(checkpoint)
    for split in ("valid", "test"):
        assert metrics(written[split]) == metrics(result[split]), split
    assert written["test"]["by_popularity"] == json.loads(json.dumps(result["test"]["by_popularity"]))
    assert written["test"]["real_content"] == dict(result["test"]["real_content"])
    test_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| test "))
    assert test_row.split("|")[2].strip() == f"{result['test']['hit@10']:.4f}"


def test_a_reload_scores_through_the_runs_trunk_cache(trained):
    """The bug this fixes: a reloaded top-k tower ran its frozen trunk live in fp32, while the
    run trained, selected and reported through the fp16 cache, so a reload's metrics, scores
    and recommendations were not the reported model's."""
    result, checkpoint = trained
    config, model, _, _, valid_data, test_data = load_data_and_model(checkpoint, quiet=True)
    tower = model.item_tower
    assert tower.runtime.trunk_cache is not None and tower.runtime.length_grouping
    assert config["checkpoint_dir"] == str(checkpoint.parent)  # the run's own cache, reused
    assert len(list((checkpoint.parent / "trunk_cache" / "microlens-sample").glob("[!.]*"))) == 1
    cached = tower.all_items().detach()
    assert metrics(MLTrainer(config, model).evaluate(test_data, load_best_model=False)) == \
        metrics(result["test"])
    tower.use_trunk_cache(None)  # the frozen blocks run live: the same model up to fp16 rounding
    live = tower.all_items().detach()
    gap = (live - cached).abs().max().item()
    assert 0 < gap < 1e-2 * live.abs().max().item()


def test_live_trunk_evaluates_without_the_cache(trained, tmp_path):
    result, checkpoint = trained
    out = tmp_path / "live.json"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--live-trunk", "--splits", "test",
                 "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["live_trunk"] is True and "valid" not in written
    for name in METRICS:  # the same model: close to, not necessarily equal to, the cached run
        assert written["test"][name] == pytest.approx(result["test"][name], abs=0.02)


def test_a_broken_checkpoint_scores_nothing(trained, tmp_path):
    """A tower whose projection outputs zeros gives every item the same score: tie-safe ranking
    puts the target behind its ties, so the command reports 0, not chance."""
    _, checkpoint = trained
    state = torch.load(checkpoint, weights_only=True)
    for key in ("item_tower.projection.weight", "item_tower.projection.bias"):
        state["state_dict"][key] = torch.zeros_like(state["state_dict"][key])
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    out = tmp_path / "broken.json"
    assert main(["evaluate", "--checkpoint", str(broken), "--splits", "test", "--json", str(out)]) == 0
    assert all(json.loads(out.read_text())["test"][name] == 0 for name in METRICS)

