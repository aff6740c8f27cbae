"""`torchrun --nproc_per_node 2` on the CPU (gloo): the GAN stage trains, rank 0 alone writes the checkpoints,
every rank writes its local state, and a DDP resume reproduces the uninterrupted weights exactly.
(About 15 s on 2 idle cores, so not marked slow.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from tests.train.trainutil import write_gt_folder

ROOT = Path(__file__).resolve().parents[2]


def _torchrun(gt: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sr_train.cli", "--config", "tiny_cpu", "--no-progress", "--output", str(out),
           "--set", f"datasets.train.dataroot_gt={gt}", "--set", "train.total_iter=4", "--set", "train.batch_size=1",
           "--set", "train.queue_size=2", "--set", "model_type=RealESRGANModel", "--set", "network_d.num_feat=4",
           "--set", "train.optim_d.lr=1e-4", "--set", "train.gan_opt.loss_weight=0.1",
           "--set", "train.perceptual_opt.allow_random_init=true",
           "--set", "train.perceptual_opt.layer_weights={conv1_2: 0.1, conv2_2: 0.1}", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_two_cpu_processes_and_exact_resume(tmp_path):
    gt = write_gt_folder(tmp_path / "gt")
    full = tmp_path / "full"
    res = _torchrun(gt, full)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "done: 4 iterations" in res.stdout and res.stdout.count("done:") == 1  # rank 0 only
    states = full / "training_states"
    assert sorted(p.name for p in states.iterdir()) == ["2.state", "2.state.rank1", "4.state", "4.state.rank1"]
    from sr_train.checkpoint import load_generator

    assert load_generator(full / "models" / "net_g_4.pth").spec.id == "SRVGGNetCompact"

    resumed = tmp_path / "resumed"
    (resumed / "training_states").mkdir(parents=True)
    for name in ("2.state", "2.state.rank1"):
        shutil.copy(states / name, resumed / "training_states" / name)
    res = _torchrun(gt, resumed, "--resume", "auto")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "at iteration 2" in res.stderr
    for name in ("net_g_4.pth", "net_d_4.pth"):
        a = torch.load(full / "models" / name, weights_only=True)
        b = torch.load(resumed / "models" / name, weights_only=True)
        for key in a:
            for k in a[key]:
                assert torch.equal(a[key][k], b[key][k]), f"{name} {key}.{k}"
