"""The tiny config trains 2 CPU steps (ESRNet and ESRGAN) and writes checkpoints that load_generator and
export_onnx accept; training states are weights-only loadable; keep_last prunes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sr_train.checkpoint import load_generator
from sr_train.config import apply_overrides, from_yaml
from sr_train.engine.trainer import Trainer, find_resume_state, list_states, load_state
from tests.train.trainutil import tiny_overrides, write_gt_folder, write_paired_folders


def _cfg(tmp_path, *extra):
    gt = write_gt_folder(tmp_path / "gt")
    return apply_overrides(from_yaml("tiny_cpu"), tiny_overrides(gt) + list(extra))


def test_esrnet_two_steps_checkpoint_loads_and_exports(tmp_path):
    vgt, vlq = write_paired_folders(tmp_path)
    cfg = _cfg(tmp_path, "train.total_iter=2", "logger.save_checkpoint_freq=1", "logger.keep_last=1",
               f"datasets.val.dataroot_gt={vgt}", f"datasets.val.dataroot_lq={vlq}", "datasets.val.gt_size=~",
               "datasets.val.type=PairedImageDataset", "val.val_freq=2")
    out = tmp_path / "run"
    trainer = Trainer(cfg, out, progress=False)
    last = trainer.fit()
    assert trainer.iter == 2 and last["iter"] == 2 and np.isfinite(last["l_g_pix"])

    # keep_last=1: only iteration 2 remains
    assert [i for i, _ in list_states(out / "training_states")] == [2]
    assert sorted(p.name for p in (out / "models").glob("*.pth")) == ["net_g_2.pth", "net_g_latest.pth"]
    assert not list(out.rglob("*.tmp"))

    loaded = load_generator(out / "models" / "net_g_2.pth")
    assert loaded.spec.id == "SRVGGNetCompact" and loaded.source_key == "params_ema"
    assert loaded.hparams["num_feat"] == 8 and loaded.hparams["num_conv"] == 2
    raw = torch.load(out / "models" / "net_g_2.pth", weights_only=True)
    assert set(raw) == {"params", "params_ema"}

    st = load_state(find_resume_state(out))
    assert st["iter"] == 2 and "optimizers" in st["step"] and st["pool"]["queue_lq"].dtype == torch.uint8

    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in lines if "l_g_pix" in r] == [1, 2]
    val = [r for r in lines if "val_psnr_y" in r]
    assert len(val) == 1 and val[0]["val_n"] == 2 and 5 < val[0]["val_psnr_y"] < 60

    pytest.importorskip("onnx")
    from sr_export.onnx import export_onnx

    info = export_onnx(loaded.model, loaded.spec, loaded.hparams, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").stat().st_size > 0 and info.scale == 4

    # and the sr-export command line accepts the checkpoint as written
    from click.testing import CliRunner

    from sr_export.cli import main as export_main

    res = CliRunner().invoke(export_main, [str(out / "models" / "net_g_latest.pth"), "-o", str(tmp_path / "c.onnx"),
                                           "--no-check"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c.onnx").stat().st_size > 0


def test_esrgan_two_steps_random_vgg(tmp_path, caplog):
    cfg = _cfg(tmp_path, "model_type=RealESRGANModel", "train.total_iter=2", "network_d.num_feat=4",
               "train.optim_d.lr=1e-4", "train.gan_opt.loss_weight=0.1",
               "train.perceptual_opt.allow_random_init=true",
               "train.perceptual_opt.layer_weights={conv1_2: 0.1, conv2_2: 0.1}")
    out = tmp_path / "gan"
    with caplog.at_level("WARNING", logger="sr_train"):
        last = Trainer(cfg, out, progress=False).fit()
    assert "RANDOMLY INITIALISED VGG19" in caplog.text
    for k in ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake"):
        assert np.isfinite(last[k]), k
    assert load_generator(out / "models" / "net_g_latest.pth").spec.id == "SRVGGNetCompact"
    d = torch.load(out / "models" / "net_d_2.pth", weights_only=True)
    assert "conv1.weight_orig" in d["params"]


def test_esrgan_starts_from_esrnet_checkpoint(tmp_path):
    net_out = tmp_path / "net"
    cfg = _cfg(tmp_path, "train.total_iter=1")
    Trainer(cfg, net_out, progress=False).fit()
    ckpt = net_out / "models" / "net_g_latest.pth"
    gan = apply_overrides(cfg, ["model_type=RealESRGANModel", "network_d.num_feat=4", "train.optim_d.lr=1e-4",
                                "train.gan_opt.loss_weight=0.1", f"path.pretrain_network_g={ckpt}"])
    tr = Trainer(gan, tmp_path / "gan", progress=False).build()
    ref = torch.load(ckpt, weights_only=True)["params_ema"]
    for k, v in tr.net_g.state_dict().items():
        assert torch.equal(v, ref[k]), k
    bad = apply_overrides(gan, ["network_g.num_feat=16"])
    from sr_runtime.errors import ModelFileError

    with pytest.raises(ModelFileError, match="path.pretrain_network_g"):
        Trainer(bad, tmp_path / "bad", progress=False).build()
