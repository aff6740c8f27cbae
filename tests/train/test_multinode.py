"""The multi-node form of ``sr-train``: torchrun's c10d rendezvous (``--rdzv-backend c10d --rdzv-endpoint``) on the
CPU (gloo), as on a cluster, with every node on this machine.

- ``--nnodes 1 --nproc_per_node 2``: one agent, two ranks, meeting through the rendezvous endpoint;
- ``--nnodes 2 --nproc_per_node 1`` twice (slow): two agents started separately, as two machines would be; the
  weights equal the one-agent run's bit for bit (the same world size, seeds and data order).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.train.trainutil import write_gt_folder

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(gt: Path, out: Path, port: int, nnodes: int, nproc: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc_per_node", str(nproc),
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", "sr-test",
           "-m", "sr_train.cli", "--config", "tiny_cpu", "--no-progress", "--output", str(out),
           "--set", f"datasets.train.dataroot_gt={gt}", "--set", "train.total_iter=2", "--set", "train.batch_size=1"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(*procs: subprocess.Popen) -> list[tuple[int, str, str]]:
    out = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            p.kill()
            stdout, stderr = p.communicate()
        out.append((p.returncode, stdout, stderr))
    return out


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "models" / "net_g_2.pth", weights_only=True)["params"]


@pytest.fixture(scope="module")
def gt(tmp_path_factory) -> Path:
    return write_gt_folder(tmp_path_factory.mktemp("multinode") / "gt")


@pytest.fixture(scope="module")
def one_agent(gt, tmp_path_factory) -> Path:
    """``--nnodes 1 --nproc_per_node 2`` through the c10d endpoint; its output folder."""
    out = tmp_path_factory.mktemp("one") / "run"
    ((code, stdout, stderr),) = _finish(_torchrun(gt, out, _free_port(), 1, 2))
    assert code == 0, stderr[-3000:]
    assert stdout.count("done: 2 iterations") == 1  # rank 0 alone reports and writes the models
    return out


def test_rendezvous_one_node_two_processes(one_agent):
    states = one_agent / "training_states"
    assert sorted(p.name for p in states.iterdir()) == ["2.state", "2.state.rank1"]
    assert sorted(p.name for p in (one_agent / "models").iterdir()) == ["net_g_2.pth", "net_g_latest.pth"]


@pytest.mark.slow
def test_two_agents_as_two_nodes_equal_one_agent(gt, one_agent, tmp_path):
    rdzv = _free_port()
    results = _finish(_torchrun(gt, tmp_path / "two", rdzv, 2, 1), _torchrun(gt, tmp_path / "two", rdzv, 2, 1))
    assert [r[0] for r in results] == [0, 0], "\n".join(r[2][-2000:] for r in results)
    assert sum(r[1].count("done: 2 iterations") for r in results) == 1
    one, two = _weights(one_agent), _weights(tmp_path / "two")
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
