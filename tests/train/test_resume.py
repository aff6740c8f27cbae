"""Exact resume: a run killed with SIGKILL mid-training continues from its last saved iteration, and its weights
equal an uninterrupted run's at the same iteration (bit for bit, params and params_ema)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sr_train.engine.trainer import list_states, load_state
from tests.train.trainutil import write_gt_folder

ROOT = Path(__file__).resolve().parents[2]


def _cmd(gt: Path, out: Path, total: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sr_train.cli", "--config", "tiny_cpu", "--no-progress", "--output", str(out),
            "--set", f"datasets.train.dataroot_gt={gt}", "--set", f"train.total_iter={total}",
            "--set", "logger.save_checkpoint_freq=2", "--set", "logger.keep_last=1000",
            "--set", "logger.print_freq=1000", *extra]


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def _weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_equal(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert set(wa) == set(wb) == {"params", "params_ema"}
    for key in wa:
        for k in wa[key]:
            assert torch.equal(wa[key][k], wb[key][k]), f"{key}.{k} differs between {a} and {b}"


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    gt = write_gt_folder(tmp_path / "gt")
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(gt, killed, 100_000), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    states = killed / "training_states"
    deadline = time.monotonic() + 120
    try:
        while not (states / "4.state").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no training state after 120 s"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # every state on disk is complete (a kill during a write leaves only a hidden .tmp)
    saved = list_states(states)
    for _, p in saved:
        load_state(p)
    last = saved[0][0]
    assert last >= 4 and last % 2 == 0
    target = last + 2

    # resume to two iterations past the last saved state
    res = subprocess.run(_cmd(gt, killed, target, "--resume", "auto"), cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"resumed from {states / f'{last}.state'} at iteration {last}" in res.stderr

    # the uninterrupted reference
    ref = tmp_path / "ref"
    res = subprocess.run(_cmd(gt, ref, target), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]

    _assert_equal(killed / "models" / f"net_g_{last}.pth", ref / "models" / f"net_g_{last}.pth")
    _assert_equal(killed / "models" / f"net_g_{target}.pth", ref / "models" / f"net_g_{target}.pth")
    sa, sb = load_state(states / f"{target}.state"), load_state(ref / "training_states" / f"{target}.state")
    assert sa["epoch"] == sb["epoch"] and sa["batch_in_epoch"] == sb["batch_in_epoch"]
    assert torch.equal(sa["rng"]["degradation"], sb["rng"]["degradation"])
    assert torch.equal(sa["pool"]["queue_gt"], sb["pool"]["queue_gt"])


def test_resume_auto_follows_rank_0(tmp_path, monkeypatch):
    """Under torchrun every rank resumes from rank 0's choice; a rank that lacks that state stops in one line."""
    from types import SimpleNamespace

    from sr_runtime.errors import ModelFileError
    from sr_train.engine import trainer as tr
    from sr_train.engine.distributed import DistInfo

    state = tmp_path / "training_states" / "8.state"
    state.parent.mkdir()
    state.write_bytes(b"x")
    monkeypatch.setattr(tr, "find_resume_state", lambda out: pytest.fail("only rank 0 looks"))
    monkeypatch.setattr(tr, "broadcast_object", lambda info, obj: str(state))
    rank1 = SimpleNamespace(resume="auto", out=tmp_path, dist=DistInfo(rank=1, world_size=2, backend="gloo"))
    assert tr.Trainer._resume_path(rank1) == state
    state.unlink()
    with pytest.raises(ModelFileError, match="rank 1: rank 0 resumes from this training state"):
        tr.Trainer._resume_path(rank1)
    monkeypatch.setattr(tr, "broadcast_object", lambda info, obj: None)
    assert tr.Trainer._resume_path(rank1) is None
