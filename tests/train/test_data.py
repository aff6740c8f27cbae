"""Datasets: GT folder with per-sample kernels, paired GT/LQ folders, seeding, and the errors on bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sr_runtime.errors import ImageError, SrError
from sr_train.config_schema import DataConfig
from sr_train.data import GTFolderDataset, PairedDataset, read_image_rgb
from sr_train.degradation.config import DegradationConfig
from sr_train.errors import ConfigError

DEG = DegradationConfig()


@pytest.fixture
def gt_folder(tmp_path: Path, rgb_image) -> Path:
    """Five small GT images: colour 8-bit, gray, 16-bit, BGRA, and one in a sub-folder."""
    root = tmp_path / "gt"
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "a.png"), rgb_image(40, 52, seed=1))
    cv2.imwrite(str(root / "b_gray.png"), rgb_image(30, 30, seed=2, channels=1))
    cv2.imwrite(str(root / "c16.png"), rgb_image(36, 36, seed=3, dtype=np.uint16))
    cv2.imwrite(str(root / "d_alpha.png"), rgb_image(33, 41, seed=4, channels=4))
    cv2.imwrite(str(root / "sub" / "e.jpg"), rgb_image(48, 48, seed=5))
    (root / "notes.txt").write_text("not an image")
    return root


def _cfg(root: Path, **kw) -> DataConfig:
    return DataConfig(dataroot_gt=str(root), **{"gt_size": 16, "crop_pad_size": 32, **kw})


def test_gt_dataset_items(gt_folder: Path) -> None:
    ds = GTFolderDataset(_cfg(gt_folder), DEG, seed=0)
    names = [p.relative_to(gt_folder).as_posix() for p in ds.paths]
    assert names == ["a.png", "b_gray.png", "c16.png", "d_alpha.png", "sub/e.jpg"]  # recursive, sorted
    assert len(ds) == 5
    for i in range(len(ds)):
        item = ds[i]
        assert item["gt"].shape == (3, 32, 32) and item["gt"].dtype == torch.float32
        assert 0 <= item["gt"].min() and item["gt"].max() <= 1
        for key in ("kernel1", "kernel2", "sinc_kernel"):
            assert item[key].shape == (21, 21) and item[key].dtype == torch.float32
            assert abs(float(item[key].sum()) - 1) < 1e-5
        assert item["gt_path"] == str(ds.paths[i])
    gray = ds[1]["gt"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_images_are_rgb_and_scaled_by_bit_depth(tmp_path: Path) -> None:
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in OpenCV's BGR
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    rgb = read_image_rgb(tmp_path / "blue.png")
    assert rgb.dtype == np.float32 and rgb[..., 2].min() == 1.0 and rgb[..., :2].max() == 0.0
    cv2.imwrite(str(tmp_path / "w16.png"), np.full((4, 4, 3), 65535, np.uint16))
    assert read_image_rgb(tmp_path / "w16.png").min() == 1.0


def test_same_seed_epoch_index_gives_same_sample(gt_folder: Path) -> None:
    cfg = _cfg(gt_folder, use_rot=True)
    a, b = GTFolderDataset(cfg, DEG, seed=3), GTFolderDataset(cfg, DEG, seed=3)
    for i in (0, 4):
        x, y = a[i], b[i]
        assert all(torch.equal(x[k], y[k]) for k in ("gt", "kernel1", "kernel2", "sinc_kernel"))
    a.set_epoch(1)
    assert not torch.equal(a[0]["kernel1"], b[0]["kernel1"])
    assert not torch.equal(GTFolderDataset(cfg, DEG, seed=4)[0]["kernel1"], b[0]["kernel1"])


def test_workers_give_the_same_batches_as_the_main_process(gt_folder: Path) -> None:
    ds = GTFolderDataset(_cfg(gt_folder), DEG, seed=1)
    ds.set_epoch(2)

    def batches(workers: int) -> list[dict]:
        return list(torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers))

    for x, y in zip(batches(0), batches(2)):
        assert torch.equal(x["gt"], y["gt"]) and torch.equal(x["kernel2"], y["kernel2"])


def test_meta_info_selects_files_and_enlarge_ratio_repeats(gt_folder: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta.txt"
    meta.write_text("# comment\nsub/e.jpg\n\na.png\n")
    ds = GTFolderDataset(_cfg(gt_folder, meta_info=str(meta), dataset_enlarge_ratio=3), DEG)
    assert [p.name for p in ds.paths] == ["e.jpg", "a.png"] and len(ds) == 6
    assert ds[5]["gt_path"] == str(gt_folder / "a.png")


def test_small_images_are_reflect_padded(tmp_path: Path, rgb_image) -> None:
    (tmp_path / "gt").mkdir()
    img = rgb_image(10, 12, seed=0)
    cv2.imwrite(str(tmp_path / "gt" / "tiny.png"), img)
    item = GTFolderDataset(_cfg(tmp_path / "gt", use_hflip=False), DEG)[0]
    gt = item["gt"].permute(1, 2, 0).numpy()[..., ::-1]
    expected = np.pad(img.astype(np.float32) / 255, ((0, 22), (0, 20), (0, 0)), mode="reflect")
    np.testing.assert_allclose(gt, expected, atol=1e-6)


@pytest.mark.parametrize(
    "setup, match",
    [
        ("missing", "dataroot_gt folder not found"),
        ("file", "dataroot_gt is not a folder"),
        ("empty", "no images found"),
        ("meta_missing", "meta_info file not found"),
        ("meta_bad_line", "line 2: listed image not found"),
    ],
)
def test_bad_folders_raise_config_error_with_the_path(
    tmp_path: Path, gt_folder: Path, setup: str, match: str
) -> None:
    root, meta = gt_folder, None
    if setup == "missing":
        root = tmp_path / "nope"
    elif setup == "file":
        root = gt_folder / "a.png"
    elif setup == "empty":
        root = tmp_path / "empty"
        root.mkdir()
    elif setup == "meta_missing":
        meta = str(tmp_path / "meta_nope.txt")
    else:
        meta = str(tmp_path / "meta.txt")
        Path(meta).write_text("a.png\nmissing.png\n")
    with pytest.raises(ConfigError, match=match) as info:
        GTFolderDataset(_cfg(root, meta_info=meta), DEG)
    line = info.value.one_line()
    assert str(meta or root) in line and "\n" not in line and info.value.hint


def test_corrupt_image_raises_image_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "gt").mkdir()
    bad = tmp_path / "gt" / "bad.png"
    bad.write_bytes(b"\x89PNG not really")
    ds = GTFolderDataset(_cfg(tmp_path / "gt"), DEG)
    with pytest.raises(ImageError) as info:
        ds[0]
    assert str(bad) in str(info.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"gt_size": 64, "crop_pad_size": 32}, "crop_pad_size"),
        ({"gt_size": 0}, "gt_size"),
        ({"io_backend": {"type": "lmdb"}}, "io_backend"),
        ({"filename_tmpl": "x4"}, "filename_tmpl"),
        ({"type": "ImageNet"}, "type"),
        ({"batch_size_per_gpu": 0}, "batch_size_per_gpu"),
    ],
)
def test_data_config_rejects_bad_values(tmp_path: Path, kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        DataConfig(dataroot_gt=str(tmp_path), **kwargs)


# --------------------------------------------------------------------------------------------- paired


@pytest.fixture
def paired(tmp_path: Path, rgb_image) -> tuple[Path, Path]:
    gt, lq = tmp_path / "hr", tmp_path / "lr"
    gt.mkdir()
    lq.mkdir()
    for i, (h, w) in enumerate(((48, 40), (34, 33))):  # the second is not a multiple of 4: mod crop
        img = rgb_image(h, w, seed=i)
        cv2.imwrite(str(gt / f"{i}.png"), img)
        small = cv2.resize(img[: h // 4 * 4, : w // 4 * 4], (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(lq / f"{i}x4.png"), small)
    return gt, lq


def test_paired_training_crop_is_aligned(paired: tuple[Path, Path]) -> None:
    gt, lq = paired
    cfg = DataConfig(str(gt), dataroot_lq=str(lq), filename_tmpl="{}x4", gt_size=16, type="PairedImageDataset",
                     use_rot=True)  # fmt: skip
    ds = PairedDataset(cfg, scale=4, seed=0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["gt"].shape == (3, 16, 16) and item["lq"].shape == (3, 4, 4)
        hr = item["gt"].permute(1, 2, 0).numpy()
        down = cv2.resize(hr, (4, 4), interpolation=cv2.INTER_AREA)
        # LQ files were made by area-downscaling the GT, so an aligned crop matches up to 8-bit rounding
        assert np.abs(down - item["lq"].permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6
        again = ds[i]
        assert torch.equal(again["gt"], item["gt"]) and torch.equal(again["lq"], item["lq"])


def test_paired_validation_returns_whole_images(paired: tuple[Path, Path], tmp_path: Path) -> None:
    gt, lq = paired
    meta = tmp_path / "pairs.txt"
    meta.write_text("1.png, 1x4.png\n0.png, 0x4.png\n")
    ds = PairedDataset(DataConfig(str(gt), dataroot_lq=str(lq), meta_info=str(meta), gt_size=None), scale=4)
    a, b = ds[0], ds[1]
    assert a["gt"].shape == (3, 32, 32) and a["lq"].shape == (3, 8, 8)  # 34x33 GT mod-cropped
    assert b["gt"].shape == (3, 48, 40) and b["lq"].shape == (3, 12, 10)
    assert a["lq_path"].endswith("1x4.png")


def test_paired_errors(paired: tuple[Path, Path], tmp_path: Path) -> None:
    gt, lq = paired
    with pytest.raises(ConfigError, match="no LQ partner for 0.png") as info:
        PairedDataset(DataConfig(str(gt), dataroot_lq=str(lq), gt_size=None), scale=4)  # no filename_tmpl
    assert str(lq) in info.value.one_line()
    with pytest.raises(ConfigError, match="dataroot_lq is not set"):
        PairedDataset(DataConfig(str(gt), gt_size=None), scale=4)
    ds = PairedDataset(DataConfig(str(gt), dataroot_lq=str(lq), filename_tmpl="{}x4", gt_size=None), scale=2)
    with pytest.raises(SrError, match="is not 2x its LQ"):
        ds[0]
