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
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sr_train.data import DataConfig
from sr_train.degradation.config import DegradationConfig
from sr_train.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
"""Shipped configs (package data); ``sr-train --config x4`` resolves names here."""

MODEL_TYPES = ("RealESRNetModel", "RealESRGANModel")

VGG19_LAYERS = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)  # fmt: skip
"""BasicSR's VGG19 layer names, in the order of torchvision's ``vgg19().features`` indices."""


class _FieldError(ConfigError):
    """A bad value for one field, raised in ``__post_init__``; the loader adds the key path and the file."""

    def __init__(self, key: str, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.key = key


def _f(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
       le: float | None = None, factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with an optional numeric range (checked by :func:`_check_ranges`)."""
    meta = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le)) if v is not None}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _check_ranges(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None or not f.metadata:
            continue
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if "ge" in f.metadata and v < f.metadata["ge"]:
                raise _FieldError(f.name, f"must be >= {f.metadata['ge']:g}, got {v!r}")
            if "gt" in f.metadata and v <= f.metadata["gt"]:
                raise _FieldError(f.name, f"must be > {f.metadata['gt']:g}, got {v!r}")
            if "le" in f.metadata and v > f.metadata["le"]:
                raise _FieldError(f.name, f"must be <= {f.metadata['le']:g}, got {v!r}")


class _Checked:
    def __post_init__(self) -> None:
        _check_ranges(self)
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks; raise :class:`_FieldError`."""


@dataclass(frozen=True)
class NetworkConfig:
    """``network_g``: an architecture id from the registry plus its constructor hyperparameters."""

    type: str
    """Architecture id (official class name): ``RRDBNet`` or ``SRVGGNetCompact``."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Constructor keyword arguments (validated against the architecture's defaults); missing ones default."""

    def resolved(self) -> dict[str, Any]:
        """All hyperparameters: the architecture's defaults updated with ``hparams``."""
        from sr_train.archs import REGISTRY

        return {**REGISTRY.get(self.type).defaults, **self.hparams}


@dataclass(frozen=True)
class DiscriminatorConfig(_Checked):
    """``network_d``: UNetDiscriminatorSN (RealESRGAN stage only)."""

    type: Literal["UNetDiscriminatorSN"] = "UNetDiscriminatorSN"
    """The only discriminator upstream Real-ESRGAN uses."""
    num_in_ch: int = _f(3, ge=1)
    """Input channels."""
    num_feat: int = _f(64, ge=1)
    """Base feature width."""
    skip_connection: bool = True
    """U-Net skip additions."""


@dataclass(frozen=True)
class PathConfig(_Checked):
    """``path``: starting weights."""

    pretrain_network_g: str | None = None
    """Generator checkpoint to start from (e.g. the RealESRNet checkpoint for the GAN stage)."""
    param_key_g: Literal["params_ema", "params"] = "params_ema"
    """Which entry of ``pretrain_network_g`` to load (falls back to the other one when absent)."""
    strict_load_g: bool = True
    """Require every key and shape to match."""
    pretrain_network_d: str | None = None
    """Discriminator checkpoint to start from (``{"params": ...}`` or a bare state dict)."""
    resume: str | None = None
    """``auto`` (newest complete training state in the output folder) or a ``.state`` path."""


@dataclass(frozen=True)
class DatasetsConfig:
    """``datasets``: the training GT folder and an optional paired validation set."""

    train: DataConfig
    """GT-folder training set."""
    val: DataConfig | None = None
    """Paired (GT + LQ) validation set; ``gt_size: ~`` for whole images."""


@dataclass(frozen=True)
class OptimConfig(_Checked):
    """``optim_g`` / ``optim_d``."""

    type: Literal["Adam"] = "Adam"
    """Optimizer (upstream uses Adam)."""
    lr: float = _f(2e-4, gt=0)
    """Learning rate."""
    weight_decay: float = _f(0.0, ge=0)
    """L2 weight decay."""
    betas: tuple[float, float] = _f((0.9, 0.99), ge=0, le=1)
    """Adam betas."""


@dataclass(frozen=True)
class SchedulerConfig(_Checked):
    """``scheduler``: MultiStepLR."""

    type: Literal["MultiStepLR"] = "MultiStepLR"
    """Scheduler type (upstream uses MultiStepLR)."""
    milestones: tuple[int, ...] = _f((1_000_000,), ge=1)
    """Iterations at which the learning rate is multiplied by ``gamma``."""
    gamma: float = _f(0.5, gt=0, le=1)
    """Decay factor."""


@dataclass(frozen=True)
class PixelLossConfig(_Checked):
    """``pixel_opt``: L1 loss."""

    type: Literal["L1Loss"] = "L1Loss"
    """Pixel loss type."""
    loss_weight: float = _f(1.0, ge=0)
    """Weight in the generator loss."""
    reduction: Literal["mean", "sum"] = "mean"
    """Reduction over pixels."""


def _default_layer_weights() -> dict[str, float]:
    return {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


@dataclass(frozen=True)
class PerceptualLossConfig(_Checked):
    """``perceptual_opt``: VGG19 features before ReLU, L1 criterion (upstream layer weights)."""

    type: Literal["PerceptualLoss"] = "PerceptualLoss"
    """Loss type."""
    layer_weights: dict[str, float] = _f(factory=_default_layer_weights)
    """VGG19 layer name -> weight (``conv1_2``, ``conv2_2``, ``conv3_4``, ``conv4_4``, ``conv5_4`` upstream)."""
    vgg_type: Literal["vgg19"] = "vgg19"
    """Only VGG19 is provided."""
    use_input_norm: bool = True
    """Normalise input with the ImageNet mean/std."""
    range_norm: bool = False
    """Map input from [-1, 1] to [0, 1] first."""
    perceptual_weight: float = _f(1.0, ge=0)
    """Weight of the perceptual term."""
    style_weight: float = _f(0.0, ge=0, le=0)
    """Style (Gram) loss weight; upstream Real-ESRGAN uses 0 and only 0 is supported."""
    criterion: Literal["l1", "l2", "fro"] = "l1"
    """Feature distance."""
    vgg_weights: str | None = None
    """Local file with torchvision ``vgg19`` ImageNet weights (``features.N.weight`` keys)."""
    allow_random_init: bool = False
    """Tests only: with no ``vgg_weights``, use a randomly initialised VGG (logs a warning)."""

    def _validate(self) -> None:
        for name, w in self.layer_weights.items():
            if name not in VGG19_LAYERS:
                close = difflib.get_close_matches(name, VGG19_LAYERS, n=1)
                raise _FieldError(
                    f"layer_weights.{name}", "is not a VGG19 layer",
                    f"Did you mean '{close[0]}'?" if close else "Use conv1_2, conv2_2, conv3_4, conv4_4, conv5_4.",
                )
            if w < 0:
                raise _FieldError(f"layer_weights.{name}", f"must be >= 0, got {w!r}")
        if not self.layer_weights:
            raise _FieldError("layer_weights", "is empty", "Give at least one VGG19 layer and its weight.")


@dataclass(frozen=True)
class GANLossConfig(_Checked):
    """``gan_opt``: vanilla (BCE-with-logits) GAN loss."""

    type: Literal["GANLoss"] = "GANLoss"
    """Loss type."""
    gan_type: Literal["vanilla"] = "vanilla"
    """Upstream Real-ESRGAN uses the vanilla GAN loss."""
    real_label_val: float = 1.0
    """Target for real."""
    fake_label_val: float = 0.0
    """Target for fake."""
    loss_weight: float = _f(0.1, ge=0)
    """Weight of the generator's adversarial term (the discriminator loss is unweighted)."""


@dataclass(frozen=True)
class TrainSection(_Checked):
    """``train``: optimisation, losses, batch, seeds and device."""

    total_iter: int = _f(1_000_000, ge=1)
    """Iterations to train."""
    batch_size: int | None = _f(None, ge=1)
    """Samples per iteration per process; ``~`` takes ``datasets.train.batch_size_per_gpu`` (upstream's key)."""
    num_worker: int | None = _f(None, ge=0)
    """DataLoader workers per process; ``~`` takes ``datasets.train.num_worker_per_gpu``."""
    seed: int = _f(0, ge=0)
    """Base seed (upstream ``manual_seed``); rank r uses seed + r for its degradation generator."""
    device: str = "auto"
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    use_amp: bool = False
    """Mixed precision (torch.autocast fp16 + GradScaler) on CUDA; ignored with a warning on the CPU."""
    queue_size: int = _f(180, ge=0)
    """Training-pair pool size (0 disables it); a multiple of ``batch_size``."""
    l1_gt_usm: bool = True
    """Use the USM-sharpened GT for the L1 target (upstream ``gt_usm`` / ``l1_gt_usm``)."""
    percep_gt_usm: bool = True
    """Use the USM-sharpened GT for the perceptual target."""
    gan_gt_usm: bool = False
    """Use the USM-sharpened GT as the discriminator's real sample."""
    ema_decay: float = _f(0.999, ge=0, le=1)
    """Generator EMA decay (0 disables the EMA; the checkpoint then holds only ``params``)."""
    optim_g: OptimConfig = _f(factory=OptimConfig)
    """Generator optimizer."""
    optim_d: OptimConfig | None = None
    """Discriminator optimizer (RealESRGAN stage)."""
    scheduler: SchedulerConfig = _f(factory=SchedulerConfig)
    """MultiStepLR, applied to every optimizer."""
    pixel_opt: PixelLossConfig | None = _f(factory=PixelLossConfig)
    """L1 pixel loss (``~`` disables it)."""
    perceptual_opt: PerceptualLossConfig | None = None
    """Perceptual loss (RealESRGAN stage)."""
    gan_opt: GANLossConfig | None = None
    """GAN loss (RealESRGAN stage)."""
    net_d_iters: int = _f(1, ge=1)
    """Update G every ``net_d_iters`` iterations (D every iteration), as upstream."""
    net_d_init_iters: int = _f(0, ge=0)
    """Iterations at the start during which only D is trained."""

    def _validate(self) -> None:
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise _FieldError("device", f"must be auto, cpu, cuda or cuda:N, got {dev!r}")
        if list(self.scheduler.milestones) != sorted(self.scheduler.milestones):
            raise _FieldError("scheduler.milestones", "must be increasing")


@dataclass(frozen=True)
class ValConfig(_Checked):
    """``val``: validation cadence (needs ``datasets.val``)."""

    val_freq: int = _f(5000, ge=1)
    """Validate every N iterations (and at the end)."""
    save_img: bool = False
    """Write the validation outputs as PNG under ``<output>/visualization/<iter>/``."""
    max_images: int | None = _f(None, ge=1)
    """Validate on the first N pairs only."""


@dataclass(frozen=True)
class LoggerConfig(_Checked):
    """``logger``: console/JSONL cadence and checkpoints."""

    print_freq: int = _f(100, ge=1)
    """Log losses, it/s and ETA every N iterations."""
    save_checkpoint_freq: int = _f(5000, ge=1)
    """Write ``models/net_g_<iter>.pth`` and ``training_states/<iter>.state`` every N iterations (and at the end)."""
    keep_last: int = _f(3, ge=1)
    """Keep the newest K checkpoints and training states; older ones are deleted."""


@dataclass(frozen=True)
class TrainConfig(_Checked):
    """The whole training configuration."""

    name: str
    """Run name; the default output folder is ``experiments/<name>``."""
    network_g: NetworkConfig
    """Generator."""
    datasets: DatasetsConfig
    """Training and validation data."""
    model_type: Literal["RealESRNetModel", "RealESRGANModel"] = "RealESRNetModel"
    """Stage: RealESRNet (L1 only) or RealESRGAN (L1 + perceptual + GAN)."""
    scale: int = _f(4, ge=1, le=4)
    """Upscaling factor; must equal the generator's."""
    network_d: DiscriminatorConfig | None = None
    """Discriminator (RealESRGAN stage)."""
    path: PathConfig = _f(factory=PathConfig)
    """Starting weights."""
    degradation: DegradationConfig = _f(factory=DegradationConfig)
    """Second-order degradation."""
    train: TrainSection = _f(factory=TrainSection)
    """Optimisation."""
    val: ValConfig | None = None
    """Validation cadence."""
    logger: LoggerConfig = _f(factory=LoggerConfig)
    """Logging and checkpoints."""

    @property
    def batch_size(self) -> int:
        """Per-process batch: ``train.batch_size``, else ``datasets.train.batch_size_per_gpu``."""
        return self.train.batch_size or self.datasets.train.batch_size_per_gpu

    @property
    def num_worker(self) -> int:
        """Per-process DataLoader workers: ``train.num_worker``, else ``datasets.train.num_worker_per_gpu``."""
        nw = self.train.num_worker
        return self.datasets.train.num_worker_per_gpu if nw is None else nw

    @property
    def is_gan(self) -> bool:
        """True for the RealESRGAN stage."""
        return self.model_type == "RealESRGANModel"

    def _validate(self) -> None:
        from sr_train.archs import REGISTRY

        spec = REGISTRY.get(self.network_g.type)
        net_scale = spec.scale(self.network_g.resolved())
        if net_scale != self.scale:
            raise _FieldError("scale", f"is {self.scale} but network_g has scale {net_scale}",
                              "Make scale and the generator's scale/upscale agree.")
        if self.is_gan:
            t = self.train
            for key, value in (("network_d", self.network_d), ("train.optim_d", t.optim_d),
                               ("train.gan_opt", t.gan_opt)):
                if value is None:
                    raise _FieldError(key, "is required for model_type RealESRGANModel",
                                      f"Add a '{key}' section (see the shipped x4.yaml).")
        elif self.train.pixel_opt is None:
            raise _FieldError("train.pixel_opt", "is required for model_type RealESRNetModel",
                              "Add train.pixel_opt: {type: L1Loss, loss_weight: 1.0}.")
        q, b = self.train.queue_size, self.batch_size
        if q and q % b:
            raise _FieldError("train.queue_size", f"{q} is not a multiple of the batch size {b}",
                              "Set train.queue_size to a multiple of train.batch_size (or 0 to disable the pool).")
        if self.datasets.train.gt_size is None or self.datasets.train.gt_size % self.scale:
            raise _FieldError("datasets.train.gt_size", f"must be a multiple of scale {self.scale}, "
                              f"got {self.datasets.train.gt_size!r}")
        if self.datasets.train.crop_pad_size % self.scale:
            raise _FieldError("datasets.train.crop_pad_size", f"must be a multiple of scale {self.scale}, "
                              f"got {self.datasets.train.crop_pad_size}")
        if self.val is not None and self.datasets.val is None:
            raise _FieldError("val", "is set but datasets.val is missing",
                              "Add datasets.val (dataroot_gt + dataroot_lq) or remove the val section.")


# --------------------------------------------------------------------------------------------- loading


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _closest(key: str, options: Sequence[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.5)
    if close:
        return f"Did you mean '{prefix}{close[0]}'?"
    return f"Valid keys under '{prefix.rstrip('.') or 'top level'}': {', '.join(options)}." if options else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0])}"
        return f"a list of {len(args)} {_type_name(args[0]) if len(set(args)) == 1 else 'values'}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to ``tp`` or raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"'{key}' must be {_type_name(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise bad
        last: ConfigError | None = None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as exc:
                last = exc
        raise last or bad
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        hint = f"Did you mean '{close[0]}'?" if close else f"Choose one of: {', '.join(map(str, choices))}."
        raise ConfigError(f"'{key}' must be one of {', '.join(map(str, choices))}, got {value!r}", hint)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise bad
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"'{key}' must have {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (list, Sequence):
        if not isinstance(value, (list, tuple)):
            raise bad
        (a,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, a, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise bad
        ka, va = typing.get_args(tp) or (str, Any)
        return {_coerce(k, ka, key): _coerce(v, va, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad
        return _build(tp, value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # YAML `5e3` / `!!float 5e3`
            return int(value)
        if isinstance(value, str):
            try:
                f = float(value)
            except ValueError:
                raise bad from None
            if f.is_integer():
                return int(f)
        raise bad
    if tp is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # PyYAML reads `1e-4` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise bad


def _network(value: Any, key: str) -> NetworkConfig:
    from sr_train.archs import REGISTRY

    if isinstance(value, NetworkConfig):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"'{key}' must be a mapping with 'type' and hyperparameters, got {value!r}")
    data = dict(value)
    arch = data.pop("type", None)
    if arch is None:
        raise ConfigError(f"'{key}.type' is missing", f"Set it to one of: {', '.join(REGISTRY.ids())}.")
    if arch not in REGISTRY:
        raise ConfigError(f"'{key}.type' is '{arch}', not a known architecture",
                          _closest(str(arch), REGISTRY.ids()).replace("Valid keys", "Known architectures"))
    defaults = REGISTRY.get(arch).defaults
    hp: dict[str, Any] = {}
    for k, v in data.items():
        if k not in defaults:
            raise ConfigError(f"unknown key '{key}.{k}' for {arch}", _closest(str(k), ["type", *defaults], f"{key}."))
        d = defaults[k]
        tp = bool if isinstance(d, bool) else int if isinstance(d, int) else float if isinstance(d, float) else str
        hp[k] = _coerce(v, tp, f"{key}.{k}")
        if tp is int and hp[k] < 1:
            raise ConfigError(f"'{key}.{k}' must be >= 1, got {hp[k]!r}")
    return NetworkConfig(arch, hp)


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, validating every key; ``where`` is the key path prefix."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"'{where or 'top level'}' must be a mapping, got {type(data).__name__}")
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    prefix = f"{where}." if where else ""
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        if k not in names:
            raise ConfigError(f"unknown key '{prefix}{k}'", _closest(str(k), names, prefix))
        tp = hints[k]
        if tp is NetworkConfig:
            kwargs[k] = _network(v, prefix + k)
        elif v is None and typing.get_origin(tp) not in (typing.Union, types.UnionType) and dataclasses.is_dataclass(tp):
            raise ConfigError(f"'{prefix}{k}' must be a mapping, got null")
        else:
            kwargs[k] = _coerce(v, tp, prefix + k)
    for f in dataclasses.fields(cls):
        if f.init and f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"required key '{prefix}{f.name}' is missing", f"Add '{prefix}{f.name}'.")
    try:
        return cls(**kwargs)
    except _FieldError as exc:
        raise ConfigError(f"'{prefix}{exc.key}' {exc.message}", exc.hint) from None
    except ConfigError as exc:
        msg = exc.message if not where or where in exc.message else f"{where}: {exc.message}"
        raise ConfigError(msg, exc.hint) from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None


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
        return _build(TrainConfig, data, "")
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
        raise ConfigError(f"invalid YAML{where}", "Fix the syntax (indentation, colons, quotes).", p) from None
    if not isinstance(data, Mapping):
        raise ConfigError("the config is not a YAML mapping", "Start from a shipped config such as x4.yaml.", p)
    return from_dict(data, p)


def to_dict(cfg: Any) -> Any:
    """Plain, YAML-safe representation of a config (tuples become lists)."""
    if isinstance(cfg, NetworkConfig):
        return {"type": cfg.type, **cfg.hparams}
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.init}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def _parse_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(cfg: TrainConfig, overrides: Sequence[str], source: str | Path | None = None) -> TrainConfig:
    # errors after overrides name "--set" (the key path says which value); ``source`` names an empty override list
    """Return ``cfg`` with ``key.path=value`` overrides applied and the result re-validated.

    Values are parsed as YAML scalars/lists (``10``, ``1e-4``, ``true``, ``[0.9, 0.99]``, ``~``) and then
    checked against the field's type, exactly like values in the file; nothing is evaluated.

    Raises:
        ConfigError: malformed item, unknown key (with the closest valid key) or a bad value.
    """
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set '{item}' is not key=value", "Write it as --set train.total_iter=10.")
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set '{item}' has an empty key", "Write it as --set train.total_iter=10.")
        node: Any = data
        cls: Any = TrainConfig
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            path = ".".join(parts[: i + 1])
            if cls is NetworkConfig:
                from sr_train.archs import REGISTRY

                valid = ["type", *REGISTRY.get(node["type"]).defaults]
            elif dataclasses.is_dataclass(cls):
                valid = [f.name for f in dataclasses.fields(cls) if f.init]
            elif isinstance(node, Mapping):
                valid = list(node)
                if not last:
                    raise ConfigError(f"--set: unknown key '{path}'", _closest(part, valid, path[: -len(part)]))
            else:
                raise ConfigError(f"--set: '{'.'.join(parts[:i])}' has no sub-keys")
            if part not in valid and not (isinstance(node, Mapping) and not dataclasses.is_dataclass(cls)
                                          and cls is not NetworkConfig and last):
                raise ConfigError(f"--set: unknown key '{path}'", _closest(part, valid, path[: -len(part)]))
            if last:
                is_str = _field_is_str(cls, part) and raw.strip() not in ("~", "null", "None")
                value = raw if is_str else _parse_scalar(raw)
                node[part] = value
            else:
                tp = _type_hints(cls)[part] if dataclasses.is_dataclass(cls) else None
                tp = _unwrap_optional(tp)
                if node.get(part) is None:
                    node[part] = {}
                node, cls = node[part], tp
    return from_dict(data, "--set" if overrides else source)


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _field_is_str(cls: Any, name: str) -> bool:
    if not dataclasses.is_dataclass(cls) or cls is NetworkConfig:
        return False
    tp = _unwrap_optional(_type_hints(cls).get(name))
    return tp is str


__all__ = [
    "DataConfig", "DatasetsConfig", "DegradationConfig", "DiscriminatorConfig", "GANLossConfig", "LoggerConfig",
    "NetworkConfig", "OptimConfig", "PathConfig", "PerceptualLossConfig", "PixelLossConfig", "SchedulerConfig",
    "TrainConfig", "TrainSection", "ValConfig", "MODEL_TYPES", "VGG19_LAYERS", "apply_overrides", "from_dict",
    "from_yaml", "resolve_config_path", "to_dict",
]
