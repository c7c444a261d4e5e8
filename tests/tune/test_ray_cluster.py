"""Multi-machine use, on one machine: a real `ray start --head` on 127.0.0.1, the sample sweep
joined to it with --ray_address from another process, then that head (and only it) stopped."""
import csv
import math
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import checkout_env, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_cli() -> list[str]:
    return [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head of 2 CPUs in its own temp dir and ports; terminating its blocking `ray start`
    stops exactly the processes it started (never `ray stop`, which ends every Ray on the host)."""
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # short: Ray's socket paths
    env = checkout_env()
    log = open(tmp_path / "ray-head.log", "w")
    head = subprocess.Popen(
        _ray_cli() + ["start", "--head", "--block", "--node-ip-address=127.0.0.1",
                      f"--port={port}", "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
                      f"--ray-client-server-port={_free_port()}",
                      f"--dashboard-agent-listen-port={_free_port()}", f"--temp-dir={temp_dir}",
                      "--disable-usage-stats"],
        env={**env, "PYTHONUNBUFFERED": "1"},  # its "started" line reaches the log at once
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        _wait_until_up(head, address, env, tmp_path / "ray-head.log")
        yield address, env
    finally:
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, 9)  # the head's own process group only
            head.wait()
        log.close()


def _wait_until_up(head, address: str, env: dict, log: Path) -> None:
    """Events, not a deadline: the head's "Ray runtime started." line, then a status that lists
    its CPUs; the wait fails as soon as the head exits."""
    def head_exited():
        """ray start --head exited"""
        if head.poll() is None:
            return False
        pytest.fail(f"ray start --head exited {head.returncode}:\n{log.read_text()[-2000:]}")

    def cpus_listed() -> bool:
        status = subprocess.run(_ray_cli() + ["status", f"--address={address}"], env=env,
                                capture_output=True, text=True)
        return status.returncode == 0 and "CPU" in status.stdout

    wait_for(lambda: "Ray runtime started" in log.read_text(), failed=head_exited)
    wait_for(cpus_listed, failed=head_exited, poll=1)


def test_sample_sweep_on_a_real_local_ray_head(ray_head, tmp_path):
    address, env = ray_head
    tune_dir = tmp_path / "ray_results"
    sweep = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_ml.py"), "--model=SASRec",
         "--dataset=microlens-sample", "--tune", "--tune_config=sample", f"--ray_address={address}",
         "--cpus_per_trial=1", "--max_concurrent=2", f"--tune_dir={tune_dir}",
         f"--data_path={tmp_path / 'atomic_files'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    csv_files = list(tune_dir.rglob("trials.csv"))
    assert len(csv_files) == 1
    with open(csv_files[0], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and {row["status"] for row in rows} == {"completed"}
    assert all(math.isfinite(float(row["valid_ndcg@10"])) for row in rows)
    assert "Chosen:" in sweep.stdout
