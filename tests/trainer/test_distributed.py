"""DDP through RecBole's multi-process settings, on CPU (gloo): trains and ranks like one process."""
import json
import socket

import pytest
import torch
from recbole.utils import init_seed

from recbole_microlens.config.configurator import MLConfig
from recbole_microlens.data.prepare import ensure_atomic_files
from recbole_microlens.data.recbole.dataset import create_dataset
from recbole_microlens.data.recbole.loaders import data_preparation
from recbole_microlens.model import get_model
from recbole_microlens.quick_start import run
from recbole_microlens.trainer.trainer import MLTrainer
from tests.helpers import built_run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_result(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    options = {"data_path": str(root / "atomic_files"), "checkpoint_dir": str(root / "saved"),
               "epochs": 1, "show_progress": False, "hidden_size": 16, "inner_size": 32,
               "result_file": str(root / "ddp.json")}
    # prepare data once (epochs must be >= 1, so the sample is generated and converted directly)
    ensure_atomic_files(MLConfig("SASRec", "microlens-sample", None, dict(options)))
    result = run("SASRec", "microlens-sample", config_dict=options, nproc=2, ip="127.0.0.1",
                 port=free_port())
    return root, options, result


def test_two_processes_train_once_and_rank_0_reports(ddp_result):
    """Two ranks ran; rank 0 alone wrote the result file (what ``run`` returned) and the one
    checkpoint, and that checkpoint holds trained weights, not the seeded initial ones."""
    root, options, result = ddp_result
    assert result["config"]["world_size"] == 2 and result["config"]["single_spec"] is False
    on_disk = json.loads((root / "ddp.json").read_text())
    assert on_disk["test"] == result["test"] and on_disk["valid"] == result["valid"]
    assert on_disk["best_valid_score"] == result["best_valid_score"] > 0
    checkpoints = list((root / "saved").glob("SASRec-*.pth"))
    assert len(checkpoints) == 1
    trained = torch.load(checkpoints[0], weights_only=False)["state_dict"]
    config = MLConfig("SASRec", "microlens-sample", config_dict=options)
    train, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])  # as rank 0 seeds its model
    initial = get_model("SASRec")(config, train._dataset).state_dict()
    assert trained.keys() == initial.keys()
    assert any(not torch.equal(trained[name].cpu(), initial[name]) for name in initial)


def test_gathered_ranking_equals_single_process_ranking(ddp_result):
    """Re-evaluating rank 0's checkpoint in one process gives the DDP (gathered) test metrics."""
    root, options, result = ddp_result
    config = MLConfig("SASRec", "microlens-sample", config_dict=options)
    built = built_run(config, model=False)
    train, test = built.train_data, built.test_data
    trainer = MLTrainer(config, get_model("SASRec")(config, train._dataset))
    checkpoint = sorted((root / "saved").glob("SASRec-*.pth"))[-1]
    single = trainer.evaluate(test, load_best_model=True, model_file=str(checkpoint))
    assert single == pytest.approx(result["test"], abs=1e-6)


def _train_rank(rank: int, options: dict, port: int, out_dir) -> None:
    """One DDP process, built as ``run_recbole_ml`` builds it (``build_run``: each rank seeds
    its own initial weights): train, then save the rank's initial and final parameters."""
    from recbole_microlens.quick_start import build_run

    config = MLConfig("SASRec", "microlens-sample", None, {
        **options, "local_rank": rank, "world_size": 2, "nproc": 2, "ip": "127.0.0.1",
        "port": str(port), "offset": 0})
    built = build_run(config, quiet=True)
    train, model = built.train_data, built.model
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    MLTrainer(config, model).fit(train, None, saved=False)
    torch.save({"initial": initial, "final": model.state_dict(),
                "steps": len(train) * config["epochs"]}, out_dir / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_parameters_stay_equal_across_processes_after_optimizer_steps(ddp_result, tmp_path):
    """Each rank starts from its own weights and trains on its own shard; DDP's broadcast and
    gradient all-reduce must leave both with the very same parameters after every step."""
    _, options, _ = ddp_result
    options = {key: value for key, value in options.items() if key != "result_file"}
    options.update(epochs=2, train_batch_size=64)
    torch.multiprocessing.spawn(_train_rank, args=(options, free_port(), tmp_path), nprocs=2,
                                join=True)
    first, second = (torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1))
    names = list(first["final"])
    assert first["steps"] == second["steps"] >= 10  # several optimizer steps on each rank
    assert any(not torch.equal(first["initial"][n], second["initial"][n]) for n in names)
    # the seed rule (seed + local_rank): rank 0 starts from the single-process weights
    single = built_run(MLConfig("SASRec", "microlens-sample", None, dict(options))).model
    assert all(torch.equal(first["initial"][n], value) for n, value in single.state_dict().items())
    assert any(not torch.equal(first["final"][n], first["initial"][n]) for n in names)  # trained
    unequal = [n for n in names if not torch.equal(first["final"][n], second["final"][n])]
    assert unequal == []
