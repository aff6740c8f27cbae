"""Training and validation datasets: GT folder + per-sample kernels (RealESRGANDataset), and GT/LQ pairs.

Every random choice of a sample comes from ``np.random.default_rng([seed, epoch, index])``: the same sample
is the same whatever the worker, rank or order it is loaded in, and nothing touches a global RNG. Call
``set_epoch`` before each epoch (with ``persistent_workers=True`` the workers keep their own copy, so leave
that off or the epoch will not reach them).

Images are returned as (3, H, W) float32 RGB tensors in [0, 1]; 8-bit and 16-bit files, gray and alpha
(dropped) are accepted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sr_runtime.errors import ImageError
from sr_train.config_schema import DataConfig
from sr_train.degradation.config import DegradationConfig
from sr_train.degradation.kernels import sample_kernels
from sr_train.errors import ConfigError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
"""File suffixes (case-insensitive) picked up when a folder is scanned."""


# ------------------------------------------------------------------------------------------------ files


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) float32 RGB in [0, 1].

    8-bit / 16-bit, gray (replicated) and BGRA (alpha dropped) files are accepted.

    Raises:
        ImageError: the file is missing or not a decodable image.
    """
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(
            f"cannot read ({exc.strerror or exc})", "Check the path and permissions.", path
        ) from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ImageError("not a readable image", "Remove or replace the file (or its meta_info line).", path)
    if img.dtype == np.uint8:
        out = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        out = img.astype(np.float32) / 65535.0
    elif img.dtype in (np.float32, np.float64):
        out = np.clip(img.astype(np.float32), 0.0, 1.0)
    else:
        raise ImageError(f"unsupported pixel type {img.dtype}", "Use 8-bit or 16-bit images.", path)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    elif out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        out = out[..., :3]
    elif out.shape[2] != 3:
        raise ImageError(f"{out.shape[2]} channels", "Use gray, RGB or RGBA images.", path)
    return np.ascontiguousarray(out[..., ::-1])


def _scan(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / f)
    return found


def _folder(value: str | None, key: str) -> Path:
    if value is None:
        raise ConfigError(f"{key} is not set", f"Set datasets.*.{key} to a folder of images.")
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"{key} folder not found", f"Check datasets.*.{key}.", path)
    if not path.is_dir():
        raise ConfigError(f"{key} is not a folder", f"Point datasets.*.{key} at a folder of images.", path)
    return path


def _meta_lines(meta: str) -> list[tuple[int, str]]:
    path = Path(meta).expanduser()
    if not path.is_file():
        raise ConfigError(
            "meta_info file not found", "Check datasets.*.meta_info or remove it to scan the folder.", path
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read meta_info ({exc})", "Write it as UTF-8 text, one path per line.", path
        ) from None
    lines = [(i + 1, s.strip()) for i, s in enumerate(text.splitlines())]
    lines = [(n, s) for n, s in lines if s and not s.startswith("#")]
    if not lines:
        raise ConfigError("meta_info lists no files", "Write one image path per line.", path)
    return lines


def _check_listed(paths: list[Path], meta: str, lines: list[tuple[int, str]]) -> None:
    for p, (n, _) in zip(paths, lines):
        if not p.is_file():
            raise ConfigError(
                f"line {n}: listed image not found: {p}",
                "Fix the line (paths are relative to the dataroot) or regenerate the list.",
                meta,
            )


def gt_paths(cfg: DataConfig) -> list[Path]:
    """The GT files of ``cfg``: meta_info entries joined to ``dataroot_gt``, else a sorted recursive scan.

    Raises:
        ConfigError: missing folder or list file, a listed file missing, or no images found.
    """
    root = _folder(str(cfg.dataroot_gt), "dataroot_gt")
    if cfg.meta_info:
        lines = _meta_lines(cfg.meta_info)
        paths = [root / s for _, s in lines]
        _check_listed(paths, cfg.meta_info, lines)
        return paths
    paths = _scan(root)
    if not paths:
        raise ConfigError(
            "no images found in dataroot_gt", f"Put {', '.join(IMAGE_EXTENSIONS[:4])}... files there.", root
        )
    return paths


def paired_paths(cfg: DataConfig) -> list[tuple[Path, Path]]:
    """(GT, LQ) file pairs: ``gt, lq`` meta_info lines, else GT files matched to LQ by ``filename_tmpl``.

    Raises:
        ConfigError: missing folders, list file or partner files.
    """
    gt_root = _folder(str(cfg.dataroot_gt), "dataroot_gt")
    lq_root = _folder(None if cfg.dataroot_lq is None else str(cfg.dataroot_lq), "dataroot_lq")
    pairs: list[tuple[Path, Path]] = []
    if cfg.meta_info:
        lines = _meta_lines(cfg.meta_info)
        for n, s in lines:
            parts = [p.strip() for p in s.split(",")]
            if len(parts) != 2 or not all(parts):
                raise ConfigError(
                    f"line {n}: expected 'gt_path, lq_path', got {s!r}", "One pair per line.", cfg.meta_info
                )
            pairs.append((gt_root / parts[0], lq_root / parts[1]))
        _check_listed([g for g, _ in pairs], cfg.meta_info, lines)
        _check_listed([q for _, q in pairs], cfg.meta_info, lines)
        return pairs
    gts = _scan(gt_root)
    if not gts:
        raise ConfigError("no images found in dataroot_gt", "Put the GT images there.", gt_root)
    for g in gts:
        rel = g.relative_to(gt_root)
        stem = cfg.filename_tmpl.format(g.stem)
        candidates = [lq_root / rel.parent / (stem + g.suffix)] + [
            lq_root / rel.parent / (stem + ext) for ext in IMAGE_EXTENSIONS if ext != g.suffix.lower()
        ]
        lq = next((c for c in candidates if c.is_file()), None)
        if lq is None:
            raise ConfigError(
                f"no LQ partner for {rel} (looked for {candidates[0]})",
                "Give the LQ file the same name (or set filename_tmpl, e.g. '{}x4').",
                lq_root,
            )
        pairs.append((g, lq))
    return pairs


# ------------------------------------------------------------------------------------------- transforms


def _flip_rot(imgs: list[np.ndarray], rng: np.random.Generator, hflip: bool, rot: bool) -> list[np.ndarray]:
    # upstream ``augment``: hflip, vflip and transpose, each with p=0.5, drawn in this order
    do_h = hflip and rng.uniform() < 0.5
    do_v = rot and rng.uniform() < 0.5
    do_t = rot and rng.uniform() < 0.5
    out = []
    for img in imgs:
        if do_h:
            img = img[:, ::-1]
        if do_v:
            img = img[::-1]
        if do_t:
            img = img.transpose(1, 0, 2)
        out.append(img)
    return out


def pad_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Reflect-pad (bottom / right, edge not repeated) to at least ``size`` and randomly crop to size x size.

    Upstream RealESRGANDataset with ``crop_pad_size``; offsets drawn from ``rng``.
    """
    h, w = img.shape[:2]
    if h < size or w < size:
        img = np.pad(img, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    if h > size or w > size:
        top = int(rng.integers(0, h - size + 1))
        left = int(rng.integers(0, w - size + 1))
        img = img[top : top + size, left : left + size]
    return img


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float32 array -> contiguous (3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))


# --------------------------------------------------------------------------------------------- datasets


class _SeededDataset(torch.utils.data.Dataset):
    def __init__(self, cfg: DataConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = int(seed)
        self.epoch = 0
        self._n = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch that enters every sample's RNG seed."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __len__(self) -> int:
        return self._n * self.cfg.dataset_enlarge_ratio


class GTFolderDataset(_SeededDataset):
    """GT images with per-sample blur kernels for the second-order degradation (upstream RealESRGANDataset).

    Per sample: read, flip (``use_hflip``) / rotate (``use_rot``), reflect-pad and random-crop to
    ``crop_pad_size``, then draw the three kernels.

    Args:
        cfg: the dataset section.
        deg: the degradation options (kernel part).
        seed: base seed.

    Raises:
        ConfigError: missing folder / meta_info / listed file, or no images.
    """

    def __init__(self, cfg: DataConfig, deg: DegradationConfig, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.deg = deg
        self.paths = gt_paths(cfg)
        self._n = len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return ``{"gt": (3, S, S) float32 RGB [0, 1], "kernel1", "kernel2", "sinc_kernel": (21, 21)
        float32, "gt_path": str}`` with S = ``crop_pad_size``."""
        path = self.paths[index % self._n]
        rng = self.rng(index)
        img = read_image_rgb(path)
        (img,) = _flip_rot([img], rng, self.cfg.use_hflip, self.cfg.use_rot)
        img = pad_crop(img, self.cfg.crop_pad_size, rng)
        k1, k2, k3 = sample_kernels(self.deg, rng)
        return {
            "gt": to_tensor(img),
            "kernel1": torch.from_numpy(k1),
            "kernel2": torch.from_numpy(k2),
            "sinc_kernel": torch.from_numpy(k3),
            "gt_path": str(path),
        }


class PairedDataset(_SeededDataset):
    """GT + LQ pairs (upstream RealESRGANPairedDataset / PairedImageDataset) for fine-tuning and validation.

    Training (``gt_size`` set): aligned random crop (LQ gt_size / scale, GT gt_size), then flips. Validation
    (``gt_size`` None): whole images, no flips. A GT up to ``scale - 1`` pixels larger than LQ x scale is
    cropped at the bottom / right (mod crop).

    Args:
        cfg: the dataset section (``dataroot_gt``, ``dataroot_lq``, optional ``meta_info``).
        scale: LQ -> GT factor.
        seed: base seed.

    Raises:
        ConfigError: missing folders, list file or partner files.
    """

    def __init__(self, cfg: DataConfig, scale: int = 4, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale: {scale!r} must be a positive integer")
        if cfg.gt_size is not None and cfg.gt_size % scale:
            raise ValueError(f"gt_size: {cfg.gt_size} must be a multiple of scale {scale}")
        self.scale = scale
        self.pairs = paired_paths(cfg)
        self._n = len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return ``{"gt": (3, H, W), "lq": (3, H / scale, W / scale)`` float32 RGB [0, 1] tensors,
        ``"gt_path", "lq_path": str}``."""
        gt_path, lq_path = self.pairs[index % self._n]
        rng = self.rng(index)
        gt, lq = read_image_rgb(gt_path), read_image_rgb(lq_path)
        s = self.scale
        (hq, wq), (hg, wg) = lq.shape[:2], gt.shape[:2]
        if not (hq * s <= hg < (hq + 1) * s and wq * s <= wg < (wq + 1) * s):
            raise ImageError(
                f"GT {wg}x{hg} is not {s}x its LQ {lq_path} ({wq}x{hq})",
                "Check dataroot_lq / the scale, or regenerate the LQ images.",
                gt_path,
            )
        gt = gt[: hq * s, : wq * s]
        size = self.cfg.gt_size
        if size is not None:
            lsize = size // s
            if hq < lsize or wq < lsize:
                raise ImageError(
                    f"LQ {wq}x{hq} is smaller than the crop {lsize}x{lsize}",
                    "Remove the pair or lower gt_size.",
                    lq_path,
                )
            top = int(rng.integers(0, hq - lsize + 1))
            left = int(rng.integers(0, wq - lsize + 1))
            lq = lq[top : top + lsize, left : left + lsize]
            gt = gt[top * s : top * s + size, left * s : left * s + size]
            gt, lq = _flip_rot([gt, lq], rng, self.cfg.use_hflip, self.cfg.use_rot)
        return {"gt": to_tensor(gt), "lq": to_tensor(lq), "gt_path": str(gt_path), "lq_path": str(lq_path)}
