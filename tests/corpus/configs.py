"""Training-config cases for ``sr-train``: YAML bombs (in a known key's value, an unknown key, ``--set``),
python tags that would run code, deep nesting, non-UTF-8 bytes, a list instead of a mapping."""

from __future__ import annotations

from pathlib import Path

from tests.corpus import Case

BASE = """name: corpus
model_type: RealESRNetModel
scale: 4
network_g: {{type: SRVGGNetCompact, num_feat: 8, num_conv: 2, upscale: 4, act_type: prelu}}
datasets:
  train: {{dataroot_gt: {gt}, gt_size: 32, crop_pad_size: 48}}
train:
  total_iter: {total_iter}
  batch_size: 2
  device: cpu
{extra}"""


def bomb(levels: int = 9, width: int = 9) -> str:
    """A YAML "billion laughs" flow sequence: ``width ** levels`` strings once expanded (9**9 = 387 million),
    a few hundred bytes as text. Usable as a value (``key: <bomb>``) or in ``--set key=<bomb>``."""
    parts = ["&a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        parts.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "[" + ", ".join(parts) + "]"


def config_text(gt: str = "gt", total_iter: str = "4", extra: str = "") -> str:
    """A small valid config (the test fills in its GT folder), with one value or extra text replaced."""
    return BASE.format(gt=gt, total_iter=total_iter, extra=extra)


def build(d: Path) -> list[Case]:
    """Write the config cases into ``d``; ``extra["marker"]`` is what a python tag would create."""
    d.mkdir(parents=True, exist_ok=True)
    marker = d / "PWNED"
    files = {
        "bomb_known_key.yaml": (config_text(total_iter=bomb()), r"train\.total_iter",
                                "billion laughs as the value of train.total_iter"),
        "bomb_unknown_key.yaml": (config_text(extra=f"trian: {bomb()}\n"), r"unknown key",
                                  "billion laughs under a misspelt key"),
        "python_tag.yaml": (config_text(extra=f"x: !!python/object/apply:os.system ['touch {marker}']\n"),
                            r"invalid YAML", "a python/object/apply tag (safe_load refuses it)"),
        "deep.yaml": ("a: " + "[" * 50_000 + "]" * 50_000 + "\n", r"(invalid YAML|too deep|nest)",
                      "50000 nested lists"),
        "list.yaml": ("- a\n- b\n", r"not a YAML mapping", "a list at the top"),
    }
    cases = []
    for name, (text, message, what) in files.items():
        (d / name).write_text(text, encoding="utf-8")
        cases.append(Case(name, "config", d / name, "error", message, what=what, extra={"marker": marker}))
    (d / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    cases.append(Case("binary.yaml", "config", d / "binary.yaml", "error", r"cannot read the config",
                      what="bytes that are not UTF-8"))
    return cases
