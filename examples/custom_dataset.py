"""A custom dataset: any interaction log written as a RecBole atomic ``.inter`` file in
``<data_path>/<name>/``, with its own defaults registered like the packaged dataset yaml.

    python examples/custom_dataset.py /tmp/work
"""
import random
import sys
from pathlib import Path

from recbole_microlens.config.configurator import register_dataset
from recbole_microlens.data.stores.atomic import seal

NAME = "toy-clicks"


def write_toy_clicks(data_path: Path, users: int = 120, items: int = 40, seed: int = 0) -> Path:
    """Each user walks a cycle of items with some noise: a learnable sequential pattern."""
    rng = random.Random(seed)
    folder = data_path / NAME
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(users):
        item = rng.randrange(items)
        for step in range(8):
            item = (item + 1) % items if rng.random() < 0.8 else rng.randrange(items)
            lines.append(f"u{user}\ti{item}\t{step}")
    (folder / f"{NAME}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    seal(folder, NAME, {"dataset": NAME, "source": __file__})  # complete: checksums recorded
    defaults = folder / f"{NAME}.yaml"
    defaults.write_text("MAX_ITEM_LIST_LENGTH: 5\nlearning_rate: 0.005\ntrain_batch_size: 32\n")
    register_dataset(NAME, defaults)
    return folder


def main(root: str) -> dict:
    from recbole_microlens.quick_start import run_recbole_ml

    write_toy_clicks(Path(root) / "atomic_files")
    return run_recbole_ml("SASRec", NAME, config_dict={
        "data_path": f"{root}/atomic_files", "checkpoint_dir": f"{root}/saved", "epochs": 3,
        "hidden_size": 16, "inner_size": 32, "show_progress": False})


if __name__ == "__main__":
    print(main(sys.argv[1])["test_result"])
