"""Training configuration: YAML -> typed, frozen dataclasses, every key validated at start-up.

Key names are the ones upstream Real-ESRGAN/BasicSR users know (``network_g``, ``total_iter``, ``ema_decay``,
``pixel_opt``, ``perceptual_opt``, ``gan_opt``, ``gt_size``, ``queue_size`` ...). The layout::

    name: my_run
    model_type: RealESRGANModel          # or RealESRNetModel
    scale: 4
    network_g: {type: RRDBNet, num_feat: 64, num_block: 23, num_grow_ch: 32}
    network_d: {type: UNetDiscriminatorSN, num_feat: 64, skip_connection: true}
    path: {pretrain_network_g: ~, param_key_g: params_ema, strict_load_g: true}
    datasets:
      train: {dataroot_gt: datasets/DF2K, meta_info: ~, gt_size: 256, ...}     # DataConfig
      val: {dataroot_gt: ..., dataroot_lq: ..., gt_size: ~}                    # optional
    degradation: {resize_prob: [0.2, 0.7, 0.1], noise_range: [1, 30], ...}   # DegradationConfig
    train: {total_iter: 400000, batch_size: 12, optim_g: {lr: 1e-4}, ...}
    val: {val_freq: 5000}
    logger: {print_freq: 100, save_checkpoint_freq: 5000, keep_last: 3}

An unknown key is a :class:`~sr_train.errors.ConfigError` naming the file, the key and the closest valid key;
wrong types and out-of-range values likewise. ``apply_overrides(cfg, ["train.total_iter=10"])`` parses each value
against the field's type (YAML scalars/lists, never ``eval``).

This module reads files and applies ``--set``; the sections are dataclasses in :mod:`sr_train.config_schema`,
and the generic YAML -> dataclass rules live in :mod:`sr_train.config_coerce`. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sr_train.config_coerce import build, closest_hint, field_names, field_type, to_plain
from sr_train.config_schema import TrainConfig
from sr_train.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""Shipped configs (package data); ``sr-train --config x4`` resolves names here."""


def resolve_config_path(name_or_path: str | Path) -> Path:
    """Return the file for a path, or for the name of a shipped config (``x4``, ``x4.yaml``, ``tiny_cpu``)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    stem = p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml"
    shipped = CONFIG_DIR / stem
    if len(p.parts) == 1 and shipped.exists():
        return shipped
    names = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml"))
    close = difflib.get_close_matches(p.stem, names, n=1)
    hint = f"Did you mean the shipped config '{close[0]}'?" if close else f"Shipped configs: {', '.join(names)}."
    raise ConfigError("config file not found", hint, p)


def from_dict(data: Mapping[str, Any], source: str | Path | None = None) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a mapping; errors name ``source``."""
    try:
        return build(TrainConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(exc.message, exc.hint, source) from None


def from_yaml(path: str | Path) -> TrainConfig:
    """Read, validate and return a training config.

    Args:
        path: a YAML file, or the name of a shipped config (``x4``, ``x4_net``, ``tiny_cpu`` ...).

    Raises:
        ConfigError: missing file, bad YAML, unknown key (with the closest valid key), wrong type or range.
    """
    try:
        import yaml
    except ImportError:
        from sr_runtime.errors import MissingExtraError

        raise MissingExtraError("yaml", "train", "reading training configs") from None
    p = resolve_config_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config ({exc})", "Check the path and that it is a UTF-8 YAML file.", p) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in str(exc.problem):
            raise ConfigError(f"invalid YAML{where}: {' '.join(str(exc.problem).split())[:120]}",
                              "Configs are plain data: remove the !!tag (nothing in a config is ever run).",
                              p) from None
        raise ConfigError(f"invalid YAML{where}", "Fix the syntax (indentation, colons, quotes).", p) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", "A config is a few levels of mappings.", p) from None
    if not isinstance(data, Mapping):
        raise ConfigError("the config is not a YAML mapping", "Start from a shipped config such as x4.yaml.", p)
    return from_dict(_beside_config(data, p.parent), p)


DATA_PATH_KEYS = ("dataroot_gt", "dataroot_lq", "meta_info")
"""Dataset keys holding paths (see :func:`_beside_config`)."""


def _beside_config(data: Mapping[str, Any], folder: Path) -> Mapping[str, Any]:
    """Relative dataset paths are relative to the current folder, as upstream's; one that does not exist there
    but does beside the config file is taken from there (so ``tiny_cpu`` finds the images shipped with it)."""
    sections = data.get("datasets")
    if not isinstance(sections, Mapping):
        return data
    fixed = {}
    for name, section in sections.items():
        if isinstance(section, Mapping):
            section = {k: (str(folder / v) if k in DATA_PATH_KEYS and isinstance(v, str) and v
                           and not Path(v).is_absolute() and not Path(v).exists() and (folder / v).exists() else v)
                       for k, v in section.items()}
        fixed[name] = section
    return {**data, "datasets": fixed}


def to_dict(cfg: Any) -> Any:
    """Plain, YAML-safe representation of a config (tuples become lists); :func:`from_dict` reads it back."""
    return to_plain(cfg)


_SET_EXAMPLE = "Write it as --set train.total_iter=10."


def apply_overrides(cfg: TrainConfig, overrides: Sequence[str], source: str | Path | None = None) -> TrainConfig:
    """Return ``cfg`` with ``key.path=value`` overrides applied and the result re-validated.

    Values are parsed as YAML scalars/lists (``10``, ``1e-4``, ``true``, ``[0.9, 0.99]``, ``~``) and then
    checked against the field's type, exactly like values in the file; nothing is evaluated. A string field
    takes the text as it is (``name=123``, ``path.pretrain_network_g=a b.pth``). Errors after overrides name
    ``--set`` (the key path says which value); ``source`` is named when there are none.

    Raises:
        ConfigError: malformed item, unknown key (with the closest valid key) or a bad value.
    """
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' is not key=value", _SET_EXAMPLE)
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set '{item}' has an empty key", _SET_EXAMPLE)
        _set_value(data, parts, raw)
    return from_dict(data, "--set" if overrides else source)


def _set_value(data: dict[str, Any], parts: list[str], raw: str) -> None:
    """Set ``data[parts[0]][parts[1]]...`` to ``raw`` parsed for the field's type, checking each key on the way."""
    node: Any = data
    cls: Any = TrainConfig
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        _check_key(node, cls, parts[: i + 1], last)
        if last:
            is_str = field_type(cls, part) is str and raw.strip() not in ("~", "null", "None")
            node[part] = raw if is_str else _parse_scalar(raw)
            return
        if node.get(part) is None:
            node[part] = {}  # a --set may add an optional section
        node, cls = node[part], field_type(cls, part)


def _check_key(node: Any, cls: Any, path: list[str], last: bool) -> None:
    """``path[-1]`` must be a key of the section ``node`` (of type ``cls``); free mappings take new keys last."""
    part, where = path[-1], ".".join(path)
    if not isinstance(node, Mapping):
        raise ConfigError(f"--set: '{'.'.join(path[:-1])}' has no sub-keys")
    valid = field_names(cls, node)
    if valid is None:  # a free mapping (e.g. layer_weights): any key, but only as the last part
        if last:
            return
        valid = list(node)
    elif part in valid:
        return
    raise ConfigError(f"--set: unknown key '{where}'", closest_hint(part, valid, where[: -len(part)]))


def _parse_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


__all__ = ["CONFIG_DIR", "apply_overrides", "from_dict", "from_yaml", "resolve_config_path", "to_dict"]
