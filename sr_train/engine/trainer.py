"""The training loop: data -> degradation -> pool -> step -> EMA, validation cadence, checkpoints and exact resume.

Output folder layout (upstream BasicSR names)::

    <output>/config.yaml                     the resolved config of the run
    <output>/metrics.jsonl                   one JSON object per log line / validation
    <output>/models/net_g_<iter>.pth         generator, official layout {"params", "params_ema"}
    <output>/models/net_g_latest.pth         the final generator
    <output>/models/net_d_<iter>.pth         discriminator {"params"} (RealESRGAN stage)
    <output>/training_states/<iter>.state   optimizers, schedulers, EMA, RNG states, pool: exact resume

Every file is written to a temp file in its folder and renamed (``atomic_write``); the training state is written
last, so a state file on disk means its iteration is complete. Only the newest ``logger.keep_last`` of each kind
are kept.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr_runtime.errors import ModelFileError
from sr_runtime.fileio import clean_stale
from sr_train.archs import REGISTRY
from sr_train.checkpoint import atomic_write, save_checkpoint
from sr_train.config import to_dict
from sr_train.config_schema import TrainConfig
from sr_train.ema import ModelEma
from sr_train.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    select_device,
    unwrap,
    wrap_ddp,
)
from sr_train.errors import ConfigError

LOG = logging.getLogger("sr_train")
STATE_FORMAT = "sr_train.state/1"
_STATE_RE = re.compile(r"^(\d+)\.state$")
_NET_RE = re.compile(r"^net_([gd])_(\d+)\.pth$")


class ResumableSampler(torch.utils.data.Sampler):
    """DistributedSampler order (seeded by ``seed + epoch``, split over ranks) that can start mid-epoch.

    Args:
        n: dataset length.
        batch_size: per-rank batch; the epoch holds ``len(self) // batch_size`` full batches.
        seed, rank, world_size: as for ``DistributedSampler``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True) -> None:
        from torch.utils.data import DistributedSampler

        self._inner = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                         drop_last=False)
        self.batch_size = batch_size
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch's permutation and how many leading batches to skip (when resuming)."""
        self._inner.set_epoch(epoch)
        self.skip_batches = skip_batches

    @property
    def batches_per_epoch(self) -> int:
        return len(self._inner) // self.batch_size

    def __iter__(self) -> Iterator[int]:
        n = self.batches_per_epoch * self.batch_size
        return itertools.islice(iter(self._inner), self.skip_batches * self.batch_size, n)

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.skip_batches) * self.batch_size


def list_states(states_dir: Path) -> list[tuple[int, Path]]:
    """Training states in a folder as ``(iteration, path)``, newest first."""
    if not states_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in states_dir.iterdir() if (m := _STATE_RE.match(p.name))]
    return sorted(found, reverse=True)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training state (weights-only) and check its format.

    Raises:
        ModelFileError: missing, corrupt or not a training state.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError("training state not found", "Pass --resume auto or an existing .state file.", p)
    try:
        st = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is "corrupt" to the user
        raise ModelFileError(f"cannot read the training state ({type(exc).__name__})",
                             "The file is corrupt; resume from an older state.", p) from None
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise ModelFileError("not an sr-train training state", "Pass a training_states/<iter>.state file.", p)
    return st


def find_resume_state(output_dir: Path) -> Path | None:
    """The newest training state under ``output_dir/training_states`` that loads, or None."""
    for _, p in list_states(output_dir / "training_states"):
        try:
            load_state(p)
        except ModelFileError as exc:
            LOG.warning("skipping %s", exc.one_line())
            continue
        return p
    return None


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    st: dict[str, Any] = {"torch_cpu": torch.get_rng_state(), "degradation": gen.get_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


class Trainer:
    """Train one stage from a validated config.

    Args:
        cfg: the training config.
        output_dir: run folder (created).
        resume: ``None`` (fresh, or ``cfg.path.resume``), ``"auto"`` (newest complete state in ``output_dir``,
            fresh start when there is none) or a ``.state`` path.
        dist: the process-group info (single process by default).
        progress: show a tqdm progress bar on rank 0.
    """

    def __init__(self, cfg: TrainConfig, output_dir: str | Path, resume: str | None = None,
                 dist: DistInfo | None = None, progress: bool = True) -> None:
        self.cfg = cfg
        self.out = Path(output_dir)
        self.dist = dist or DistInfo()
        self.device = select_device(cfg.train.device, self.dist.local_rank)
        self.resume = resume if resume is not None else cfg.path.resume
        self.progress = progress
        self.iter = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self._built = False
        self.resumed_from: Path | None = None

    # ------------------------------------------------------------------------------------------ building
    def build(self) -> Trainer:
        """Validate data and weights, build networks, losses and optimizers; restore a state if resuming."""
        from sr_train.data import GTFolderDataset, PairedDataset
        from sr_train.degradation.pipeline import SecondOrderDegradation
        from sr_train.degradation.pool import TrainingPairPool

        cfg, t = self.cfg, self.cfg.train
        if t.use_amp and self.device.type != "cuda":
            LOG.warning("train.use_amp is ignored on %s (mixed precision runs on CUDA only)", self.device)
        self.train_set = GTFolderDataset(cfg.datasets.train, cfg.degradation, seed=t.seed)
        need = cfg.batch_size * self.dist.world_size
        if len(self.train_set) < need:
            raise ConfigError(
                f"datasets.train has {len(self.train_set)} images, fewer than batch_size x processes = {need}",
                "Add images or lower train.batch_size.", cfg.datasets.train.dataroot_gt,
            )
        self.val_set = PairedDataset(cfg.datasets.val, scale=cfg.scale, seed=t.seed) if (cfg.datasets.val is not None and cfg.val) else None
        self.sampler = ResumableSampler(len(self.train_set), cfg.batch_size, t.seed, self.dist.rank, self.dist.world_size,
                                        shuffle=cfg.datasets.train.use_shuffle)
        self.loader = torch.utils.data.DataLoader(
            self.train_set, batch_size=cfg.batch_size, sampler=self.sampler, num_workers=cfg.num_worker,
            drop_last=True, pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(t.seed), persistent_workers=False,
        )
        self.degrade = SecondOrderDegradation(cfg.degradation, scale=cfg.scale, gt_size=cfg.datasets.train.gt_size)
        self.gen = torch.Generator(device=self.device).manual_seed(t.seed * 1000 + self.dist.rank)
        self.pool = TrainingPairPool(t.queue_size, generator=self.gen) if t.queue_size else None

        self.spec = REGISTRY.get(cfg.network_g.type)
        self.hparams = cfg.network_g.resolved()
        with torch.random.fork_rng(devices=[]):  # deterministic init without touching the caller's RNG
            torch.manual_seed(t.seed)
            net_g = self.spec.build(**self.hparams)
            net_d = None
            if cfg.is_gan and cfg.network_d is not None:
                from sr_train.archs.discriminator import UNetDiscriminatorSN

                d = cfg.network_d
                net_d = UNetDiscriminatorSN(d.num_in_ch, d.num_feat, d.skip_connection)
        if cfg.path.pretrain_network_g:
            self._load_pretrained(net_g, cfg.path.pretrain_network_g, cfg.path.param_key_g, cfg.path.strict_load_g,
                                  "path.pretrain_network_g")
        if net_d is not None and cfg.path.pretrain_network_d:
            self._load_pretrained(net_d, cfg.path.pretrain_network_d, "params", True, "path.pretrain_network_d")
        teacher = None
        if cfg.qat is not None:
            from sr_train.qat import prepare_student

            if not cfg.path.pretrain_network_g:
                raise ConfigError("path.pretrain_network_g is required with qat (the float model to quantize)",
                                  "Pass --set path.pretrain_network_g=MODEL.pth.")
            teacher = prepare_student(net_g, cfg.qat)
        net_g.to(self.device).train()
        self.ema = ModelEma(net_g, t.ema_decay) if t.ema_decay > 0 else None
        self.net_g = wrap_ddp(net_g, self.dist, self.device)
        if cfg.is_gan:
            from sr_train.engine.esrgan import RealESRGANStep

            net_d = net_d.to(self.device).train()
            self.net_d = wrap_ddp(net_d, self.dist, self.device)
            self.step = RealESRGANStep(cfg, self.net_g, self.net_d, self.device)
        elif teacher is not None:
            from sr_train.qat import QatStep

            self.net_d = None
            self.step = QatStep(cfg, self.net_g, self.device, teacher)
        else:
            from sr_train.engine.esrnet import RealESRNetStep

            self.net_d = None
            self.step = RealESRNetStep(cfg, self.net_g, self.device)
        self._built = True
        if self.resume:
            path = self._resume_path()
            if path is None:
                LOG.info("resume auto: no training state in %s, starting from iteration 0", self.out)
            else:
                self._restore(load_state(path), path)
        return self

    def _resume_path(self) -> Path | None:
        """The state to resume from, as rank 0 chose it: every rank resumes from the same iteration or none runs.

        Raises:
            ModelFileError: rank 0's state is missing on this rank's machine (``--output`` not on shared storage).
        """
        if self.resume != "auto":
            return Path(self.resume)
        found = find_resume_state(self.out) if self.dist.is_main else None
        chosen = broadcast_object(self.dist, None if found is None else str(found))
        if chosen is None:
            return None
        path = Path(chosen)
        if not path.is_file():
            raise ModelFileError(f"rank {self.dist.rank}: rank 0 resumes from this training state, missing here",
                                 "Put --output on storage every machine shares (docs/train.md).", path)
        return path

    def _load_pretrained(self, net: nn.Module, path: str, key: str, strict: bool, cfg_key: str) -> None:
        from sr_train.checkpoint import read_state_dict

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{cfg_key}: file not found", "Point it to a checkpoint (e.g. a RealESRNet net_g_*.pth).", p)
        sd, _ = read_state_dict(p, key)
        own = net.state_dict()
        if strict:
            missing = [k for k in own if k not in sd]
            extra = [k for k in sd if k not in own]
            if missing or extra:
                what = f"key '{missing[0]}' is missing" if missing else f"unexpected key '{extra[0]}'"
                raise ModelFileError(f"{cfg_key}: {what}", "Use a checkpoint of the same network_g, or strict_load_g: false.", p)
        for k, v in own.items():
            if k in sd and tuple(sd[k].shape) != tuple(v.shape):
                raise ModelFileError(f"{cfg_key}: key '{k}' has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}",
                                     "Use a checkpoint of the same network_g hyperparameters.", p)
        net.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=strict)
        LOG.info("loaded %s from %s", cfg_key, p)

    # ------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly from the current iteration (rank-local parts of this rank)."""
        st: dict[str, Any] = {
            "format": STATE_FORMAT,
            "iter": self.iter,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.dist.world_size,
            "network_g": to_dict(self.cfg.network_g),
            "model_type": self.cfg.model_type,
            "params": unwrap(self.net_g).state_dict(),
            "params_ema": self.ema.state_dict() if self.ema else None,
            "step": self.step.state_dict(),
        }
        st.update(self._local_state())
        return st

    def _local_state(self) -> dict[str, Any]:
        return {"rng": _rng_state(self.gen), "pool": self._pool_state()}

    def _pool_state(self) -> dict[str, Any] | None:
        if self.pool is None:
            return None
        st = dict(self.pool.state_dict())
        for k in ("queue_lq", "queue_gt"):  # 8-bit data: store as uint8 when that round-trips exactly (4x smaller)
            q = st.get(k)
            if q is not None:
                q8 = (q * 255.0).round().clamp(0, 255).to(torch.uint8)
                st[k] = q8.cpu() if torch.equal(q8.float() / 255.0, q) else q.cpu()
        return st

    def _load_pool(self, st: dict[str, Any]) -> None:
        st = dict(st)
        for k in ("queue_lq", "queue_gt"):
            q = st.get(k)
            if q is not None:
                st[k] = (q.float() / 255.0 if q.dtype == torch.uint8 else q).to(self.device)
        self.pool.load_state_dict(st)

    def _restore(self, st: dict[str, Any], path: Path) -> None:
        if st.get("network_g") != to_dict(self.cfg.network_g) or st.get("model_type") != self.cfg.model_type:
            raise ConfigError(
                f"the training state was written for {st.get('model_type')} {st.get('network_g')}, "
                f"not {self.cfg.model_type} {to_dict(self.cfg.network_g)}",
                "Resume with the config the run started with, or start a new --output folder.", path,
            )
        unwrap(self.net_g).load_state_dict(st["params"], strict=True)
        if self.ema is not None and st.get("params_ema") is not None:
            self.ema.load_state_dict(st["params_ema"])
        self.step.load_state_dict(st["step"])
        self.iter, self.epoch, self.batch_in_epoch = int(st["iter"]), int(st["epoch"]), int(st["batch_in_epoch"])
        local = st
        if self.dist.rank > 0:
            rank_file = path.with_name(f"{path.name}.rank{self.dist.rank}")
            local = load_state(rank_file) if rank_file.is_file() else None
        if local is not None and int(st.get("world_size", 1)) == self.dist.world_size:
            rng = local["rng"]
            torch.set_rng_state(rng["torch_cpu"])
            self.gen.set_state(rng["degradation"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            if self.pool is not None and local.get("pool") is not None:
                self._load_pool(local["pool"])
        else:
            LOG.warning("rank %d: no rank-local state for this world size; degradation RNG reseeded, pool empty",
                        self.dist.rank)
            self.gen.manual_seed(self.cfg.train.seed * 1000 + self.dist.rank + 7919 * self.iter)
        self.resumed_from = path
        LOG.info("resumed from %s at iteration %d", path, self.iter)

    # ------------------------------------------------------------------------------------------ saving
    def save(self) -> None:
        """Write the generator (+ discriminator) and the training state of the current iteration; prune old ones."""
        it = self.iter
        models, states = self.out / "models", self.out / "training_states"
        local_name = states / f"{it}.state.rank{self.dist.rank}"
        if self.dist.rank > 0:
            atomic_write(local_name, lambda tmp: torch.save({"format": STATE_FORMAT, **self._local_state()}, tmp))
        barrier(self.dist)
        if self.dist.is_main:
            save_checkpoint(models / f"net_g_{it}.pth", **self._generator_params())
            for name, net in self.step.extra_nets().items():
                sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
                atomic_write(models / f"{name}_{it}.pth", lambda tmp, sd=sd: torch.save({"params": sd}, tmp))
            st = self.state_dict()
            atomic_write(states / f"{it}.state", lambda tmp: torch.save(st, tmp))
            self._prune(models, states)
        barrier(self.dist)

    def _prune(self, models: Path, states: Path) -> None:
        keep = self.cfg.logger.keep_last
        for _, p in list_states(states)[keep:]:
            p.unlink(missing_ok=True)
            for extra in states.glob(f"{p.name}.rank*"):
                extra.unlink(missing_ok=True)
        by_kind: dict[str, list[tuple[int, Path]]] = {}
        for p in models.glob("net_*_*.pth"):
            if m := _NET_RE.match(p.name):
                by_kind.setdefault(m.group(1), []).append((int(m.group(2)), p))
        for items in by_kind.values():
            for _, p in sorted(items, reverse=True)[keep:]:
                p.unlink(missing_ok=True)

    def save_final(self) -> Path:
        """Copy the newest generator to ``models/net_g_latest.pth`` (rank 0)."""
        path = self.out / "models" / "net_g_latest.pth"
        if self.dist.is_main:
            save_checkpoint(path, **self._generator_params())
        return path

    def _generator_params(self) -> dict[str, Any]:
        """``save_checkpoint`` arguments: params (+ EMA); a QAT student's quantizers go to the ``int8`` entry."""
        params = unwrap(self.net_g).state_dict()
        if self.cfg.qat is None:
            return {"params": params, "params_ema": self.ema.state_dict() if self.ema else None}
        from sr_train.qat import split_state

        params, entry = split_state(params, self.cfg.qat, self.cfg.path.pretrain_network_g)
        return {"params": params, "extra": {"int8": entry}}

    # ------------------------------------------------------------------------------------------ loop
    def _batches(self) -> Iterator[dict[str, Any]]:
        while True:
            self.sampler.set_epoch(self.epoch, self.batch_in_epoch)
            self.train_set.set_epoch(self.epoch)
            for batch in self.loader:
                self.batch_in_epoch += 1
                yield batch
            self.epoch += 1
            self.batch_in_epoch = 0

    @torch.no_grad()
    def make_pair(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Degrade a GT batch and pass it through the pool: ``(lq, gt, gt_usm)`` on the device."""
        from sr_train.degradation.ops import usm_sharp

        dev = self.device
        nb = dev.type == "cuda"
        gt = batch["gt"].to(dev, non_blocking=nb)
        k1 = batch["kernel1"].to(dev, non_blocking=nb)
        k2 = batch["kernel2"].to(dev, non_blocking=nb)
        sinc = batch["sinc_kernel"].to(dev, non_blocking=nb)
        lq, gt_usm, gt = self.degrade(gt, k1, k2, sinc, self.gen, return_gt=True)
        if self.pool is None:
            return lq, gt, gt_usm
        # upstream pools (lq, gt) and sharpens the pooled GT again
        lq, gt = self.pool(lq, gt)
        return lq.contiguous(), gt, usm_sharp(gt)

    def fit(self) -> dict[str, Any]:
        """Train until ``train.total_iter``; returns the last logged metrics."""
        if not self._built:
            self.build()
        cfg, t = self.cfg, self.cfg.train
        main = self.dist.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            for folder in (self.out, self.out / "models", self.out / "training_states"):
                clean_stale(folder)  # temp files of a killed run (never a live one: they are locked)
            _write_yaml(self.out / "config.yaml", to_dict(cfg))
        metrics_path = self.out / "metrics.jsonl"
        bar = None
        if main and self.progress:
            from tqdm import tqdm

            bar = tqdm(total=t.total_iter, initial=self.iter, desc=cfg.name, unit="it", dynamic_ncols=True)
        last: dict[str, Any] = {}
        sums: dict[str, torch.Tensor] = {}
        count = 0
        t0, it0 = time.perf_counter(), self.iter
        batches = self._batches()
        try:
            while self.iter < t.total_iter:
                batch = next(batches)
                lq, gt, gt_usm = self.make_pair(batch)
                self.iter += 1
                losses = self.step.optimize(self.iter, lq, gt, gt_usm)
                if self.ema is not None:
                    self.ema.update(unwrap(self.net_g))
                self.step.step_schedulers()
                for k, v in losses.items():
                    sums[k] = sums[k] + v if k in sums else v.clone()
                count += 1
                if bar is not None:
                    bar.update(1)
                done = self.iter == t.total_iter
                if self.iter % cfg.logger.print_freq == 0 or done:
                    now = time.perf_counter()
                    its = (self.iter - it0) / max(now - t0, 1e-9)
                    vals = all_reduce_mean(self.dist, {k: float(v) / count for k, v in sums.items()})
                    last = {"iter": self.iter, "epoch": self.epoch, "lr": self.step.lr(), **vals,
                            "it_s": its, "eta_s": (t.total_iter - self.iter) / its if its > 0 else math.inf}
                    sums, count, t0, it0 = {}, 0, now, self.iter
                    if main:
                        _append_jsonl(metrics_path, last)
                        msg = " ".join(f"{k}={v:.4g}" for k, v in vals.items())
                        if bar is not None:
                            bar.set_postfix_str(f"{msg} {its:.2f}it/s")
                        LOG.info("iter %d/%d lr %.3g %s | %.2f it/s | eta %s", self.iter, t.total_iter,
                                 last["lr"], msg, its, _fmt_eta(last["eta_s"]))
                if self.iter % cfg.logger.save_checkpoint_freq == 0 or done:
                    self.save()
                if cfg.val is not None and self.val_set is not None and (self.iter % cfg.val.val_freq == 0 or done):
                    self.run_validation(metrics_path)
        finally:
            if bar is not None:
                bar.close()
        self.save_final()
        barrier(self.dist)
        return last

    def run_validation(self, metrics_path: Path | None = None) -> dict[str, float] | None:
        """PSNR-Y/SSIM-Y of the EMA generator (or the generator) on ``datasets.val``; rank 0 only."""
        from sr_train.validate import validate

        res = None
        if self.dist.is_main and self.val_set is not None:
            net = self.ema.module if self.ema is not None else unwrap(self.net_g)
            val = self.cfg.val
            save_dir = self.out / "visualization" / str(self.iter) if (val and val.save_img) else None
            res = validate(net, self.val_set, self.cfg.scale, self.device, self.spec.size_multiple(self.hparams),
                           val.max_images if val else None, save_dir)
            rec = {"iter": self.iter, "val_psnr_y": res["psnr_y"], "val_ssim_y": res["ssim_y"], "val_n": res["n"]}
            if metrics_path is not None:
                _append_jsonl(metrics_path, rec)
            LOG.info("validation iter %d: PSNR-Y %.3f dB, SSIM-Y %.4f (%d images)", self.iter, res["psnr_y"],
                     res["ssim_y"], res["n"])
        barrier(self.dist)
        return res

    # ------------------------------------------------------------------------------------------ plan
    def _loss_summary(self) -> str:
        t = self.cfg.train
        parts = []
        if t.pixel_opt:
            parts.append(f"L1 x{t.pixel_opt.loss_weight:g}")
        if self.cfg.is_gan and t.perceptual_opt:
            src = t.perceptual_opt.vgg_weights or "RANDOM VGG19 (allow_random_init)"
            parts.append(f"perceptual x{t.perceptual_opt.perceptual_weight:g} ({src})")
        if self.cfg.is_gan and t.gan_opt:
            parts.append(f"GAN x{t.gan_opt.loss_weight:g} (net_d_iters {t.net_d_iters}, init {t.net_d_init_iters})")
        return ", ".join(parts)

    def plan(self) -> str:
        """A human-readable summary of what :meth:`fit` would do (``--dry-run``)."""
        cfg, t = self.cfg, self.cfg.train

        def nparams(m: nn.Module) -> str:
            return f"{sum(p.numel() for p in m.parameters()) / 1e6:.3f}M params"

        lines = [
            f"run:        {cfg.name} ({cfg.model_type}, x{cfg.scale})",
            f"output:     {self.out}",
            f"device:     {self.device} x {self.dist.world_size} process(es)"
            + (", amp fp16" if t.use_amp and self.device.type == "cuda" else ""),
            f"network_g:  {self.spec.id} {self.hparams} ({nparams(unwrap(self.net_g))})",
        ]
        if self.net_d is not None:
            lines.append(f"network_d:  UNetDiscriminatorSN ({nparams(unwrap(self.net_d))})")
        if cfg.path.pretrain_network_g:
            lines.append(f"pretrain:   {cfg.path.pretrain_network_g} [{cfg.path.param_key_g}]")
        ds = cfg.datasets.train
        per_epoch = self.sampler.batches_per_epoch
        lines += [
            f"data:       {len(self.train_set)} GT images in {ds.dataroot_gt}, gt_size {ds.gt_size}, "
            f"batch {cfg.batch_size}/process, {per_epoch} iterations/epoch, queue {t.queue_size}",
            f"losses:     {self._loss_summary()}",
            f"optimizer:  Adam lr {t.optim_g.lr:g} betas {tuple(t.optim_g.betas)}; MultiStepLR "
            f"{list(t.scheduler.milestones)} x{t.scheduler.gamma:g}; EMA {t.ema_decay:g}",
            f"schedule:   {t.total_iter} iterations from {self.iter}; log every {cfg.logger.print_freq}, "
            f"checkpoint every {cfg.logger.save_checkpoint_freq} (keep {cfg.logger.keep_last})",
        ]
        if self.val_set is not None and cfg.val is not None:
            lines.append(f"validation: {len(self.val_set)} pairs every {cfg.val.val_freq} iterations (PSNR/SSIM Y)")
        if self.resumed_from:
            lines.append(f"resume:     {self.resumed_from} (iteration {self.iter})")
        return "\n".join(lines)


def _fmt_eta(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _append_jsonl(path: Path, rec: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, default=float) + "\n")


def _write_yaml(path: Path, data: Any) -> None:
    import yaml

    atomic_write(path, lambda tmp: Path(tmp).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8"))
