"""Config loading: shipped configs validate; unknown keys, bad types and ranges name the file, key and fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from sr_train.config import CONFIG_DIR, apply_overrides, from_dict, from_yaml, to_dict
from sr_train.config_coerce import coerce, short_repr
from sr_train.config_schema import TrainConfig
from sr_train.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

SHIPPED = ["x4", "x4_net", "x4_compact", "x4_compact_net", "tiny_cpu"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name):
    cfg = from_yaml(name)
    assert isinstance(cfg, TrainConfig)
    assert cfg.scale == 4
    # the YAML written into a run folder reads back to the same config
    assert from_yaml(CONFIG_DIR / f"{name}.yaml") == cfg


def test_x4_upstream_figures():
    cfg = from_yaml("x4")
    t = cfg.train
    assert cfg.is_gan and cfg.network_g.type == "RRDBNet" and cfg.network_d is not None
    assert cfg.network_g.resolved()["num_block"] == 23
    assert t.optim_g.lr == t.optim_d.lr == 1e-4 and t.optim_g.betas == (0.9, 0.99)
    assert t.total_iter == 400_000 and t.ema_decay == 0.999 and t.queue_size == 180
    assert dict(t.perceptual_opt.layer_weights) == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1, "conv4_4": 1,
                                                     "conv5_4": 1}
    assert t.gan_opt.loss_weight == 0.1 and cfg.batch_size == 12
    net = from_yaml("x4_net")
    assert not net.is_gan and net.train.optim_g.lr == 2e-4 and net.train.total_iter == 1_000_000


def _write(tmp_path, mutate):
    data = yaml.safe_load((CONFIG_DIR / "tiny_cpu.yaml").read_text())
    mutate(data)
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    "mutate, needles",
    [
        (lambda d: d["train"].__setitem__("ema_decy", 0.5), ["unknown key 'train.ema_decy'", "train.ema_decay"]),
        (lambda d: d.__setitem__("sacle", 4), ["unknown key 'sacle'", "'scale'"]),
        (lambda d: d["datasets"]["train"].__setitem__("gt_sze", 8), ["datasets.train.gt_sze", "datasets.train.gt_size"]),
        (lambda d: d["network_g"].__setitem__("num_fet", 8), ["network_g.num_fet", "network_g.num_feat"]),
        (lambda d: d["network_g"].__setitem__("type", "RRDBNett"), ["RRDBNett", "RRDBNet"]),
        (lambda d: d.setdefault("degradation", {}).__setitem__("noise_rang", [1, 2]), ["degradation.noise_range"]),
        (lambda d: d["train"].__setitem__("total_iter", "many"), ["'train.total_iter' must be an integer"]),
        (lambda d: d["train"].__setitem__("total_iter", 0), ["'train.total_iter' must be >= 1"]),
        (lambda d: d["train"].__setitem__("ema_decay", 1.5), ["'train.ema_decay' must be <= 1"]),
        (lambda d: d["train"]["optim_g"].__setitem__("betas", [0.9]), ["'train.optim_g.betas' must have 2 values"]),
        (lambda d: d["train"].__setitem__("queue_size", 5), ["train.queue_size", "multiple"]),
        (lambda d: d.__setitem__("model_type", "RealESRGANModel"), ["network_d", "required"]),
        (lambda d: d.__setitem__("scale", 2), ["'scale' is 2", "network_g has scale 4"]),
        (lambda d: d["train"].__setitem__("device", "gpu"), ["train.device"]),
    ],
)
def test_bad_config_names_file_key_and_fix(tmp_path, mutate, needles):
    p = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        from_yaml(p)
    line = err.value.one_line()
    assert str(p) in line and "\n" not in line
    for n in needles:
        assert n in line, line


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="x4_net"):
        from_yaml("x4_nett")  # closest shipped name
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        from_yaml(bad)


def test_overrides_parse_by_field_type():
    cfg = from_yaml("tiny_cpu")
    new = apply_overrides(cfg, [
        "train.total_iter=10", "train.optim_g.lr=1e-3", "train.optim_g.betas=[0.5, 0.9]", "train.use_amp=true",
        "network_g.num_feat=16", "path.pretrain_network_g=a b.pth", "datasets.train.dataroot_gt=/x/y",
        "degradation.noise_range=[1, 5]", "name=123", "path.resume=~",
    ])
    assert new.train.total_iter == 10 and new.train.optim_g.lr == 1e-3 and new.train.optim_g.betas == (0.5, 0.9)
    assert new.train.use_amp is True and new.network_g.hparams["num_feat"] == 16
    assert new.path.pretrain_network_g == "a b.pth" and new.datasets.train.dataroot_gt == "/x/y"
    assert new.degradation.noise_range == (1.0, 5.0) and new.name == "123" and new.path.resume is None
    assert cfg.train.total_iter == 4  # frozen original untouched
    # a --set override can add an optional section
    gan = apply_overrides(cfg, ["model_type=RealESRGANModel", "network_d.num_feat=8", "train.optim_d.lr=1e-4",
                                "train.gan_opt.loss_weight=0.1"])
    assert gan.is_gan and gan.network_d.num_feat == 8


@pytest.mark.parametrize(
    "item, needle",
    [
        ("train.total_itr=3", "Did you mean 'train.total_iter'"),
        ("train.total_iter=abc", "must be an integer"),
        ("train.use_amp=maybe", "true or false"),
        ("network_g.num_fet=3", "network_g.num_feat"),
        ("total_iter", "key=value"),
        ("train.total_iter.x=1", "no sub-keys"),
        ("__import__('os')=1", "unknown key"),
    ],
)
def test_bad_overrides(item, needle):
    with pytest.raises(ConfigError) as err:
        apply_overrides(from_yaml("tiny_cpu"), [item])
    assert needle in err.value.one_line()


def test_to_dict_round_trip():
    cfg = from_yaml("x4")
    assert from_dict(yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


def test_parsing_every_shipped_config_imports_no_torch():
    """Config parsing, --set and to_dict run without torch (the trainer and the datasets import it)."""
    code = (
        "import sys\n"
        "from sr_train.config import CONFIG_DIR, apply_overrides, from_yaml, to_dict\n"
        "names = sorted(CONFIG_DIR.glob('*.yaml'))\n"
        "for p in names:\n"
        "    to_dict(apply_overrides(from_yaml(p), ['train.total_iter=5']))\n"
        "assert 'torch' not in sys.modules, 'parsing a config imported torch'\n"
        "print(len(names))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert int(r.stdout) == len(list(CONFIG_DIR.glob("*.yaml"))) >= len(SHIPPED)


def _laughs(depth: int = 6) -> str:
    """A YAML "billion laughs" value: 9**depth strings through aliases (a few hundred bytes of text)."""
    levels = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, depth)]
    return "[" + ", ".join(levels) + "]"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d, v: d.__setitem__("name", v),
        lambda d, v: d.__setitem__("model_type", v),
        lambda d, v: d.__setitem__("network_g", v),
        lambda d, v: d["network_g"].__setitem__("type", v),
        lambda d, v: d["network_g"].__setitem__("num_feat", v),
        lambda d, v: d["datasets"]["train"].__setitem__("io_backend", {"type": v}),
        lambda d, v: d["train"].__setitem__("device", v),
        lambda d, v: d["train"]["optim_g"].__setitem__("lr", v),
        lambda d, v: d.setdefault("degradation", {}).__setitem__("kernel_list", v),
    ],
)
def test_error_messages_never_expand_a_yaml_bomb(mutate):
    bomb = yaml.safe_load(_laughs())  # shared lists: cheap to hold, ~4 MB as text
    data = yaml.safe_load((CONFIG_DIR / "tiny_cpu.yaml").read_text())
    mutate(data, bomb)
    with pytest.raises(ConfigError) as err:
        from_dict(data, "bomb.yaml")
    line = err.value.one_line()
    assert len(line) < 400 and "\n" not in line, line


def test_overrides_never_expand_a_yaml_bomb():
    with pytest.raises(ConfigError) as err:
        apply_overrides(from_yaml("tiny_cpu"), [f"train.total_iter={_laughs()}"])
    assert len(err.value.one_line()) < 400


def test_short_repr_caps():
    assert short_repr("gpu") == "'gpu'" and short_repr(1.5) == "1.5"
    assert len(short_repr("x" * 10_000)) <= 80 and len(short_repr(list(range(10_000)))) <= 80


@pytest.mark.parametrize(
    "value, tp, expected",
    [
        ("5e3", int, 5000),  # PyYAML reads 5e3 as a string
        (5000.0, int, 5000),
        ("1e-4", float, 1e-4),
        (3, float, 3.0),
        (123, str, "123"),
        ([1, "2"], tuple[int, ...], (1, 2)),
        ([0.5, 1], tuple[float, float], (0.5, 1.0)),
        (None, int | None, None),
        ("b", Literal["a", "b"], "b"),
        ({"x": "1e-4"}, dict[str, float], {"x": 1e-4}),
        ({"k": [1]}, Any, {"k": [1]}),
    ],
)
def test_coerce_by_kind(value, tp, expected):
    assert coerce(value, tp, "k") == expected


@pytest.mark.parametrize(
    "value, tp, needle",
    [
        (1, bool, "must be true or false, got 1"),
        ("yes", bool, "must be true or false"),
        (2.5, int, "must be an integer, got 2.5"),
        (True, int, "must be an integer"),
        (True, str, "must be a string"),
        (10**400, float, "must be a number"),
        ([1], tuple[float, float], "must have 2 values, got 1"),
        ("c", Literal["a", "b"], "must be one of a, b"),
        ([1], dict[str, float], "must be a mapping"),
        (None, int, "must be an integer, got None"),
    ],
)
def test_coerce_errors_name_the_key(value, tp, needle):
    with pytest.raises(ConfigError) as err:
        coerce(value, tp, "sec.k")
    assert err.value.message.startswith("'sec.k") and needle in err.value.message


def test_network_type_must_be_a_name():
    data = yaml.safe_load((CONFIG_DIR / "tiny_cpu.yaml").read_text())
    data["network_g"]["type"] = ["RRDBNet"]
    with pytest.raises(ConfigError, match="not a known architecture"):
        from_dict(data)
