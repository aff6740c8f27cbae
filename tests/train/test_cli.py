"""sr-train CLI: --dry-run prints the plan and writes nothing; bad keys give one line with the closest key."""

from __future__ import annotations

from click.testing import CliRunner

from sr_train.cli import main
from tests.train.trainutil import write_gt_folder


def _run(args):
    return CliRunner().invoke(main, args)


def test_dry_run_prints_plan_and_writes_nothing(tmp_path):
    gt = write_gt_folder(tmp_path / "gt")
    out = tmp_path / "run"
    res = _run(["--config", "tiny_cpu", "--set", f"datasets.train.dataroot_gt={gt}", "--output", str(out), "--dry-run"])
    assert res.exit_code == 0, res.output
    for needle in ("tiny_cpu (RealESRNetModel, x4)", "SRVGGNetCompact", "6 GT images", "3 iterations/epoch",
                   "dry run"):
        assert needle in res.output
    assert not out.exists()


def test_bad_key_one_line_with_closest(tmp_path):
    res = _run(["--config", "tiny_cpu", "--set", "train.total_itr=3"])
    assert res.exit_code != 0
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "train.total_itr" in lines[0] and "Did you mean 'train.total_iter'" in lines[0]
    assert "Traceback" not in res.output


def test_bad_key_in_file_names_file(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nnetwork_g: {type: SRVGGNetCompact, num_feat: 8}\ndatasets: {train: {dataroot_gt: .}}\n"
                   "train: {totl_iter: 3}\n")
    res = _run(["--config", str(cfg)])
    assert res.exit_code != 0
    assert str(cfg) in res.output and "Did you mean 'train.total_iter'" in res.output and "Traceback" not in res.output


def test_missing_data_folder_and_config(tmp_path):
    res = _run(["--config", "tiny_cpu", "--set", f"datasets.train.dataroot_gt={tmp_path / 'none'}", "--dry-run"])
    assert res.exit_code != 0 and res.output.startswith("error: ") and "Traceback" not in res.output
    res = _run(["--config", str(tmp_path / "nope.yaml")])
    assert res.exit_code != 0 and "config file not found" in res.output


def test_missing_vgg_weights_fails_at_start(tmp_path):
    gt = write_gt_folder(tmp_path / "gt")
    res = _run(["--config", "tiny_cpu", "--set", f"datasets.train.dataroot_gt={gt}", "--set",
                "model_type=RealESRGANModel", "--set", "network_d.num_feat=4", "--set", "train.optim_d.lr=1e-4",
                "--set", "train.gan_opt.loss_weight=0.1", "--set",
                f"train.perceptual_opt.vgg_weights={tmp_path / 'vgg19.pth'}", "--output", str(tmp_path / "o")])
    assert res.exit_code != 0
    assert "train.perceptual_opt.vgg_weights" in res.output and "not found" in res.output
    assert not (tmp_path / "o" / "models").exists()
