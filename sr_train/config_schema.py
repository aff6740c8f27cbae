"""The training configuration schema: frozen dataclasses, one per YAML section (upstream key names).

Loading, ``--set`` overrides and the layout of a config file are in :mod:`sr_train.config`; the generic YAML ->
dataclass rules (types, ranges, key hints) in :mod:`sr_train.config_coerce`. Importing this module needs no
torch: a config is parsed and validated without it (the trainer and the datasets import torch).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sr_train.archs import REGISTRY
from sr_train.config_coerce import Checked, FieldError, closest_hint, coerce, ranged, short_repr
from sr_train.degradation.config import DegradationConfig
from sr_train.errors import ConfigError

MODEL_TYPES = ("RealESRNetModel", "RealESRGANModel")

VGG19_LAYERS = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4", "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4", "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5",
)  # fmt: skip
"""BasicSR's VGG19 layer names, in the order of torchvision's ``vgg19().features`` indices."""


@dataclass(frozen=True)
class NetworkConfig:
    """``network_g``: an architecture id from the registry plus its constructor hyperparameters."""

    type: str
    """Architecture id (official class name): ``RRDBNet`` or ``SRVGGNetCompact``."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Constructor keyword arguments (validated against the architecture's defaults); missing ones default."""

    def resolved(self) -> dict[str, Any]:
        """All hyperparameters: the architecture's defaults updated with ``hparams``."""
        return {**REGISTRY.get(self.type).defaults, **self.hparams}

    @classmethod
    def from_yaml_value(cls, value: Any, key: str) -> NetworkConfig:
        """``{type: RRDBNet, num_block: 6}``: the type must be registered and each key one of its hyperparameters,
        typed like its default (ints >= 1).

        Raises:
            ConfigError: naming ``key``, with the closest architecture or hyperparameter.
        """
        if isinstance(value, NetworkConfig):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' must be a mapping with 'type' and hyperparameters, got {short_repr(value)}")
        data = dict(value)
        arch = data.pop("type", None)
        if arch is None:
            raise ConfigError(f"'{key}.type' is missing", f"Set it to one of: {', '.join(REGISTRY.ids())}.")
        if not isinstance(arch, Hashable) or arch not in REGISTRY:
            name = str(arch) if isinstance(arch, (str, int, float)) else short_repr(arch)
            close = difflib.get_close_matches(name, REGISTRY.ids(), n=1, cutoff=0.5)
            hint = f"Did you mean '{close[0]}'?" if close else f"Known architectures: {', '.join(REGISTRY.ids())}."
            raise ConfigError(f"'{key}.type' is {short_repr(name)}, not a known architecture", hint)
        defaults = REGISTRY.get(arch).defaults
        hparams: dict[str, Any] = {}
        for k, v in data.items():
            if k not in defaults:
                raise ConfigError(f"unknown key '{key}.{k}' for {arch}", closest_hint(str(k), ["type", *defaults], f"{key}."))
            d = defaults[k]
            tp = bool if isinstance(d, bool) else int if isinstance(d, int) else float if isinstance(d, float) else str
            hparams[k] = coerce(v, tp, f"{key}.{k}")
            if tp is int and hparams[k] < 1:
                raise ConfigError(f"'{key}.{k}' must be >= 1, got {hparams[k]!r}")
        return cls(arch, hparams)

    @classmethod
    def config_keys(cls, value: Mapping[str, Any]) -> list[str]:
        """Valid keys of the mapping ``value``: ``type`` and the hyperparameters of its architecture."""
        return ["type", *REGISTRY.get(value["type"]).defaults]

    def to_yaml_value(self) -> dict[str, Any]:
        """The YAML form: ``{type: ..., **hparams}``."""
        return {"type": self.type, **self.hparams}


@dataclass(frozen=True)
class DiscriminatorConfig(Checked):
    """``network_d``: UNetDiscriminatorSN (RealESRGAN stage only)."""

    type: Literal["UNetDiscriminatorSN"] = "UNetDiscriminatorSN"
    """The only discriminator upstream Real-ESRGAN uses."""
    num_in_ch: int = ranged(3, ge=1)
    """Input channels."""
    num_feat: int = ranged(64, ge=1)
    """Base feature width."""
    skip_connection: bool = True
    """U-Net skip additions."""


@dataclass(frozen=True)
class PathConfig(Checked):
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
class DataConfig:
    """One dataset section (upstream ``datasets.train`` / ``datasets.val`` key names).

    Kernel options, which upstream also keeps in this section, belong to
    :class:`~sr_train.degradation.config.DegradationConfig`. Invalid values raise ``ValueError`` starting
    with the field name; missing folders are reported when a dataset is built (:class:`ConfigError`).
    """

    dataroot_gt: str
    """Folder of ground-truth images."""
    meta_info: str | None = None
    """Optional list file: one GT path (relative to ``dataroot_gt``) per line; for paired sets
    ``gt_path, lq_path`` per line. Without it the folder is scanned recursively (sorted)."""
    dataroot_lq: str | None = None
    """Folder of LQ images (paired datasets only)."""
    filename_tmpl: str = "{}"
    """LQ file name from the GT stem when pairing folders, e.g. ``{}x4``."""
    gt_size: int | None = 256
    """Training crop of the GT (LQ crop = gt_size / scale). ``None``: whole images, no flips (validation)."""
    use_hflip: bool = True
    """Random horizontal flips."""
    use_rot: bool = False
    """Random vertical flips and 90-degree rotations."""
    crop_pad_size: int = 400
    """GT-folder dataset: images are reflect-padded / randomly cropped to this square before degradation
    (upstream hard-codes 400); must be >= gt_size and a multiple of the scale."""
    name: str = "train"
    """Display name."""
    type: Literal["RealESRGANDataset", "RealESRGANPairedDataset", "PairedImageDataset"] = "RealESRGANDataset"
    """Upstream dataset class name: which dataset reads this section."""
    io_backend: dict[str, Any] | None = None
    """Accepted for upstream configs; only ``{type: disk}``."""
    dataset_enlarge_ratio: int = 1
    """Repeat the file list this many times per epoch."""
    batch_size_per_gpu: int = 12
    """For the trainer's DataLoader."""
    num_worker_per_gpu: int = 4
    """For the trainer's DataLoader."""
    use_shuffle: bool = True
    """For the trainer's DataLoader / sampler."""

    def __post_init__(self) -> None:
        if not isinstance(self.dataroot_gt, (str, os.PathLike)) or not str(self.dataroot_gt):
            raise ValueError(f"dataroot_gt: {short_repr(self.dataroot_gt)} must be a folder path")
        if self.gt_size is not None and (not _is_int(self.gt_size) or self.gt_size < 1):
            raise ValueError(f"gt_size: {short_repr(self.gt_size)} must be a positive integer or null")
        if not _is_int(self.crop_pad_size) or self.crop_pad_size < 1:
            raise ValueError(f"crop_pad_size: {short_repr(self.crop_pad_size)} must be a positive integer")
        if (
            self.type == "RealESRGANDataset"
            and self.gt_size is not None
            and self.crop_pad_size < self.gt_size
        ):
            raise ValueError(f"crop_pad_size: {self.crop_pad_size} must be >= gt_size {self.gt_size}")
        if "{}" not in self.filename_tmpl:
            raise ValueError(f"filename_tmpl: {short_repr(self.filename_tmpl)} must contain '{{}}'")
        if self.io_backend not in (None, {"type": "disk"}):
            raise ValueError(
                f"io_backend: {short_repr(self.io_backend)} is not supported; only {{type: disk}} (lmdb is not)"
            )
        for name in ("dataset_enlarge_ratio", "batch_size_per_gpu"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"{name}: {short_repr(getattr(self, name))} must be a positive integer")
        if not _is_int(self.num_worker_per_gpu) or self.num_worker_per_gpu < 0:
            raise ValueError(f"num_worker_per_gpu: {short_repr(self.num_worker_per_gpu)} must be an integer >= 0")
        if self.type not in ("RealESRGANDataset", "RealESRGANPairedDataset", "PairedImageDataset"):
            raise ValueError(
                f"type: {short_repr(self.type)} must be RealESRGANDataset, RealESRGANPairedDataset or PairedImageDataset"
            )


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class DatasetsConfig:
    """``datasets``: the training GT folder and an optional paired validation set."""

    train: DataConfig
    """GT-folder training set."""
    val: DataConfig | None = None
    """Paired (GT + LQ) validation set; ``gt_size: ~`` for whole images."""


@dataclass(frozen=True)
class OptimConfig(Checked):
    """``optim_g`` / ``optim_d``."""

    type: Literal["Adam"] = "Adam"
    """Optimizer (upstream uses Adam)."""
    lr: float = ranged(2e-4, gt=0)
    """Learning rate."""
    weight_decay: float = ranged(0.0, ge=0)
    """L2 weight decay."""
    betas: tuple[float, float] = ranged((0.9, 0.99), ge=0, le=1)
    """Adam betas."""


@dataclass(frozen=True)
class SchedulerConfig(Checked):
    """``scheduler``: MultiStepLR."""

    type: Literal["MultiStepLR"] = "MultiStepLR"
    """Scheduler type (upstream uses MultiStepLR)."""
    milestones: tuple[int, ...] = ranged((1_000_000,), ge=1)
    """Iterations at which the learning rate is multiplied by ``gamma``."""
    gamma: float = ranged(0.5, gt=0, le=1)
    """Decay factor."""


@dataclass(frozen=True)
class PixelLossConfig(Checked):
    """``pixel_opt``: L1 loss."""

    type: Literal["L1Loss"] = "L1Loss"
    """Pixel loss type."""
    loss_weight: float = ranged(1.0, ge=0)
    """Weight in the generator loss."""
    reduction: Literal["mean", "sum"] = "mean"
    """Reduction over pixels."""


def _default_layer_weights() -> dict[str, float]:
    return {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}


@dataclass(frozen=True)
class PerceptualLossConfig(Checked):
    """``perceptual_opt``: VGG19 features before ReLU, L1 criterion (upstream layer weights)."""

    type: Literal["PerceptualLoss"] = "PerceptualLoss"
    """Loss type."""
    layer_weights: dict[str, float] = ranged(factory=_default_layer_weights)
    """VGG19 layer name -> weight (``conv1_2``, ``conv2_2``, ``conv3_4``, ``conv4_4``, ``conv5_4`` upstream)."""
    vgg_type: Literal["vgg19"] = "vgg19"
    """Only VGG19 is provided."""
    use_input_norm: bool = True
    """Normalise input with the ImageNet mean/std."""
    range_norm: bool = False
    """Map input from [-1, 1] to [0, 1] first."""
    perceptual_weight: float = ranged(1.0, ge=0)
    """Weight of the perceptual term."""
    style_weight: float = ranged(0.0, ge=0, le=0)
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
                raise FieldError(
                    f"layer_weights.{name}", "is not a VGG19 layer",
                    f"Did you mean '{close[0]}'?" if close else "Use conv1_2, conv2_2, conv3_4, conv4_4, conv5_4.",
                )
            if w < 0:
                raise FieldError(f"layer_weights.{name}", f"must be >= 0, got {w!r}")
        if not self.layer_weights:
            raise FieldError("layer_weights", "is empty", "Give at least one VGG19 layer and its weight.")


@dataclass(frozen=True)
class GANLossConfig(Checked):
    """``gan_opt``: vanilla (BCE-with-logits) GAN loss."""

    type: Literal["GANLoss"] = "GANLoss"
    """Loss type."""
    gan_type: Literal["vanilla"] = "vanilla"
    """Upstream Real-ESRGAN uses the vanilla GAN loss."""
    real_label_val: float = 1.0
    """Target for real."""
    fake_label_val: float = 0.0
    """Target for fake."""
    loss_weight: float = ranged(0.1, ge=0)
    """Weight of the generator's adversarial term (the discriminator loss is unweighted)."""


@dataclass(frozen=True)
class TrainSection(Checked):
    """``train``: optimisation, losses, batch, seeds and device."""

    total_iter: int = ranged(1_000_000, ge=1)
    """Iterations to train."""
    batch_size: int | None = ranged(None, ge=1)
    """Samples per iteration per process; ``~`` takes ``datasets.train.batch_size_per_gpu`` (upstream's key)."""
    num_worker: int | None = ranged(None, ge=0)
    """DataLoader workers per process; ``~`` takes ``datasets.train.num_worker_per_gpu``."""
    seed: int = ranged(0, ge=0)
    """Base seed (upstream ``manual_seed``); rank r uses seed + r for its degradation generator."""
    device: str = "auto"
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    use_amp: bool = False
    """Mixed precision (torch.autocast fp16 + GradScaler) on CUDA; ignored with a warning on the CPU."""
    queue_size: int = ranged(180, ge=0)
    """Training-pair pool size (0 disables it); a multiple of ``batch_size``."""
    l1_gt_usm: bool = True
    """Use the USM-sharpened GT for the L1 target (upstream ``gt_usm`` / ``l1_gt_usm``)."""
    percep_gt_usm: bool = True
    """Use the USM-sharpened GT for the perceptual target."""
    gan_gt_usm: bool = False
    """Use the USM-sharpened GT as the discriminator's real sample."""
    ema_decay: float = ranged(0.999, ge=0, le=1)
    """Generator EMA decay (0 disables the EMA; the checkpoint then holds only ``params``)."""
    optim_g: OptimConfig = ranged(factory=OptimConfig)
    """Generator optimizer."""
    optim_d: OptimConfig | None = None
    """Discriminator optimizer (RealESRGAN stage)."""
    scheduler: SchedulerConfig = ranged(factory=SchedulerConfig)
    """MultiStepLR, applied to every optimizer."""
    pixel_opt: PixelLossConfig | None = ranged(factory=PixelLossConfig)
    """L1 pixel loss (``~`` disables it)."""
    perceptual_opt: PerceptualLossConfig | None = None
    """Perceptual loss (RealESRGAN stage)."""
    gan_opt: GANLossConfig | None = None
    """GAN loss (RealESRGAN stage)."""
    net_d_iters: int = ranged(1, ge=1)
    """Update G every ``net_d_iters`` iterations (D every iteration), as upstream."""
    net_d_init_iters: int = ranged(0, ge=0)
    """Iterations at the start during which only D is trained."""

    def _validate(self) -> None:
        dev = self.device
        if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            raise FieldError("device", f"must be auto, cpu, cuda or cuda:N, got {dev!r}")
        if list(self.scheduler.milestones) != sorted(self.scheduler.milestones):
            raise FieldError("scheduler.milestones", "must be increasing")


@dataclass(frozen=True)
class ValConfig(Checked):
    """``val``: validation cadence (needs ``datasets.val``)."""

    val_freq: int = ranged(5000, ge=1)
    """Validate every N iterations (and at the end)."""
    save_img: bool = False
    """Write the validation outputs as PNG under ``<output>/visualization/<iter>/``."""
    max_images: int | None = ranged(None, ge=1)
    """Validate on the first N pairs only."""


@dataclass(frozen=True)
class LoggerConfig(Checked):
    """``logger``: console/JSONL cadence and checkpoints."""

    print_freq: int = ranged(100, ge=1)
    """Log losses, it/s and ETA every N iterations."""
    save_checkpoint_freq: int = ranged(5000, ge=1)
    """Write ``models/net_g_<iter>.pth`` and ``training_states/<iter>.state`` every N iterations (and at the end)."""
    keep_last: int = ranged(3, ge=1)
    """Keep the newest K checkpoints and training states; older ones are deleted."""


@dataclass(frozen=True)
class QatConfig(Checked):
    """``qat``: quantization-aware fine-tuning for int8 (sr_train/qat.py; docs/int8.md). Needs
    ``path.pretrain_network_g`` (the float model, also the teacher), ``model_type: RealESRNetModel`` and
    ``train.ema_decay: 0``."""

    target: Literal["teacher", "gt"] = "teacher"
    """L1 to the float teacher's output on the same input, or to the ground truth."""
    fp32_convs: tuple[int, ...] = (-1,)
    """Convs left in float (module order, negative from the end), as ``sr-export --int8``."""
    equalize: bool = True
    """Equalize channels across conv -> activation -> conv before calibrating (the float function is kept)."""
    ranges: Literal["minmax", "percentile", "mse"] = "mse"
    """Activation range estimation at the first batch."""


@dataclass(frozen=True)
class TrainConfig(Checked):
    """The whole training configuration."""

    name: str
    """Run name; the default output folder is ``experiments/<name>``."""
    network_g: NetworkConfig
    """Generator."""
    datasets: DatasetsConfig
    """Training and validation data."""
    model_type: Literal["RealESRNetModel", "RealESRGANModel"] = "RealESRNetModel"
    """Stage: RealESRNet (L1 only) or RealESRGAN (L1 + perceptual + GAN)."""
    scale: int = ranged(4, ge=1, le=4)
    """Upscaling factor; must equal the generator's."""
    network_d: DiscriminatorConfig | None = None
    """Discriminator (RealESRGAN stage)."""
    path: PathConfig = ranged(factory=PathConfig)
    """Starting weights."""
    degradation: DegradationConfig = ranged(factory=DegradationConfig)
    """Second-order degradation."""
    train: TrainSection = ranged(factory=TrainSection)
    """Optimisation."""
    val: ValConfig | None = None
    """Validation cadence."""
    logger: LoggerConfig = ranged(factory=LoggerConfig)
    """Logging and checkpoints."""
    qat: QatConfig | None = None
    """Quantization-aware fine-tuning for int8 (the shipped ``qat`` config)."""

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
        spec = REGISTRY.get(self.network_g.type)
        net_scale = spec.scale(self.network_g.resolved())
        if net_scale != self.scale:
            raise FieldError("scale", f"is {self.scale} but network_g has scale {net_scale}",
                              "Make scale and the generator's scale/upscale agree.")
        if self.is_gan:
            t = self.train
            for key, value in (("network_d", self.network_d), ("train.optim_d", t.optim_d),
                               ("train.gan_opt", t.gan_opt)):
                if value is None:
                    raise FieldError(key, "is required for model_type RealESRGANModel",
                                      f"Add a '{key}' section (see the shipped x4.yaml).")
        elif self.train.pixel_opt is None:
            raise FieldError("train.pixel_opt", "is required for model_type RealESRNetModel",
                              "Add train.pixel_opt: {type: L1Loss, loss_weight: 1.0}.")
        q, b = self.train.queue_size, self.batch_size
        if q and q % b:
            raise FieldError("train.queue_size", f"{q} is not a multiple of the batch size {b}",
                              "Set train.queue_size to a multiple of train.batch_size (or 0 to disable the pool).")
        if self.datasets.train.gt_size is None or self.datasets.train.gt_size % self.scale:
            raise FieldError("datasets.train.gt_size", f"must be a multiple of scale {self.scale}, "
                              f"got {self.datasets.train.gt_size!r}")
        if self.datasets.train.crop_pad_size % self.scale:
            raise FieldError("datasets.train.crop_pad_size", f"must be a multiple of scale {self.scale}, "
                              f"got {self.datasets.train.crop_pad_size}")
        if self.qat is not None:
            self._validate_qat()
        if self.val is not None and self.datasets.val is None:
            raise FieldError("val", "is set but datasets.val is missing",
                              "Add datasets.val (dataroot_gt + dataroot_lq) or remove the val section.")


    def _validate_qat(self) -> None:
        if self.is_gan:
            raise FieldError("qat", "fine-tunes with L1 only (model_type RealESRNetModel)",
                              "Set model_type: RealESRNetModel, or remove the qat section.")
        if self.train.ema_decay:
            raise FieldError("train.ema_decay", "must be 0 with qat (the EMA would average away from the int8 "
                              "grid)", "Set train.ema_decay: 0.")


__all__ = [
    "DataConfig", "DatasetsConfig", "DegradationConfig", "DiscriminatorConfig", "GANLossConfig", "LoggerConfig",
    "NetworkConfig", "OptimConfig", "PathConfig", "PerceptualLossConfig", "PixelLossConfig", "QatConfig",
    "SchedulerConfig",
    "TrainConfig", "TrainSection", "ValConfig", "MODEL_TYPES", "VGG19_LAYERS",
]
