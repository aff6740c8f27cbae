"""Prepare the training GT folder of the default model from the photos bundled in the scikit-image wheel.

Nothing is downloaded from image hosts: the photos ship inside the ``scikit-image`` wheel
(``skimage/data/*``). The script reads them from (in this order) ``--wheel PATH``, an installed
``skimage`` package, or a wheel fetched with ``pip download --no-deps scikit-image==0.26.0`` (a package
registry, cached under ``--cache``). scikit-image is not a dependency of sr-deploy.

Output (``--out``, default ``runs/default_data``, git-ignored)::

    train/<name>_s<scale>_<nnn>.png   multi-scale GT sub-images of the TRAIN photos only (BGR, 8-bit, 3 ch)
    heldout/<name>.png                the held-out photos, untouched (never cropped into train/)
    meta_info.txt                     train/ file names, one a line (upstream meta_info style)
    manifest.json                     sources, licences, sha256 of every source file, the split, settings

The sub-images follow upstream Real-ESRGAN's ``generate_multiscale_DF2K.py`` (Lanczos downscales of each
photo) and BasicSR's ``extract_subimages.py`` (sliding ``crop_size`` windows with ``step``; a last window
flush with the right/bottom edge when more than ``thresh_size`` pixels would be left over). Two deviations,
both because our photos are few and of very different sizes: near-flat windows (black sky, retina
background) are skipped, and each photo contributes at most ``--max-per-photo`` windows.

Usage::

    python scripts/prepare_default_data.py [--out runs/default_data] [--wheel scikit_image-...whl]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from sr_runtime.fileio import atomic_write_bytes  # noqa: E402

SKIMAGE_VERSION = "0.26.0"


@dataclass(frozen=True)
class Photo:
    """One photo shipped in the scikit-image wheel."""

    file: str
    """File name under ``skimage/data/``."""
    licence: str
    """Licence as stated in the ``skimage.data`` docstring of the loader."""
    credit: str
    """Author / source as stated there."""


TRAIN: tuple[Photo, ...] = (
    Photo("astronaut.png", "public domain", "NASA Great Images database (Eileen Collins)"),
    Photo("rocket.jpg", "public domain", "SpaceX (DSCOVR launch on Falcon 9)"),
    Photo("retina.jpg", "CC0 1.0", "Wikimedia Commons, Fundus photograph of normal left eye (Häggström)"),
    Photo("ihc.png", "no known copyright restrictions", "Center for Microscopy And Molecular Imaging"),
    Photo("camera.png", "CC0", "Lav Varshney (gray)"),
    Photo("brick.png", "CC0", "CC0Textures Bricks25 (gray)"),
    Photo("grass.png", "CC0", "linolafett on DeviantArt, Grass-01 (gray)"),
    Photo("gravel.png", "CC0", "CC0Textures Gravel04 (gray)"),
    Photo("coins.png", "no known copyright restrictions", "Greek coins, Brooklyn Museum via skimage (gray)"),
)
"""Training photos: only those whose loader docstring states CC0 / public domain / no known restrictions."""

HELDOUT: tuple[Photo, ...] = (
    Photo("coffee.png", "CC0", "Rachel Michetti (Pikolo Espresso Bar)"),
    Photo("chelsea.png", "CC0", "Stefan van der Walt (Chelsea the cat)"),
)
"""Held-out photos: used only by the quality report and the demo; never cropped into train/."""

EXCLUDED: dict[str, str] = {
    "motorcycle_left.png": "Middlebury 2014 stereo data: no licence stated in skimage.data",
    "motorcycle_right.png": "Middlebury 2014 stereo data: no licence stated in skimage.data",
    "moon.png": "no licence stated in skimage.data",
    "page.png": "no licence stated in skimage.data",
    "color.png": "synthetic colour wheel, no licence stated",
    "logo.png": "logo with alpha, not a photo",
    "clock_motion.png": "deliberately motion-blurred (a bad GT)",
    "cell.png": "fluorescence microscopy, near-binary",
    "horse.png": "binary silhouette",
    "hubble_deep_field.jpg": "public domain, but a star field whose faint point sources look like the noise the "
    "default model must remove (dropping it: +0.05 dB on clean inputs in a 1000-iteration pilot)",
    "text.png": "synthetic shapes, 172 px tall (smaller than a sub-image)",
}
"""Bundled images not used, and why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch_wheel(cache: Path) -> Path:
    """Return a cached scikit-image wheel, fetching it with ``pip download`` (PyPI) when absent."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"scikit_image-{SKIMAGE_VERSION}-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"scikit-image=={SKIMAGE_VERSION}", "-d", str(cache)]
        print("fetching the scikit-image wheel (photos only, not installed):", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        found = sorted(cache.glob(f"scikit_image-{SKIMAGE_VERSION}-*.whl"))
    if not found:
        raise SystemExit(f"error: {cache}: no scikit-image {SKIMAGE_VERSION} wheel. Pass --wheel PATH.")
    return found[0]


class PhotoSource:
    """Reads ``skimage/data/<file>`` bytes from a wheel (zip) or an installed package folder."""

    def __init__(self, wheel: Path | None, cache: Path) -> None:
        self._zip: zipfile.ZipFile | None = None
        self._dir: Path | None = None
        if wheel is None:
            try:
                import skimage

                self._dir = Path(skimage.__file__).parent / "data"
                self.origin = f"installed scikit-image {skimage.__version__} ({self._dir})"
            except ImportError:
                wheel = _fetch_wheel(cache)
        if wheel is not None:
            self._zip = zipfile.ZipFile(wheel)
            self.origin = f"wheel {wheel.name}"

    def read(self, name: str) -> bytes:
        """Raw bytes of ``skimage/data/<name>``."""
        if self._zip is not None:
            return self._zip.read(f"skimage/data/{name}")
        assert self._dir is not None
        return (self._dir / name).read_bytes()


def decode_bgr(data: bytes, name: str) -> np.ndarray:
    """Decode to ``(H, W, 3)`` uint8 BGR (gray photos are replicated to 3 channels)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"error: skimage/data/{name}: cannot decode the image. Use an intact wheel.")
    return img


def resize_lanczos(img: np.ndarray, scale: float) -> np.ndarray:
    """Downscale like upstream ``generate_multiscale_DF2K.py`` (PIL LANCZOS; cv2 INTER_LANCZOS4 here)."""
    if scale == 1.0:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_LANCZOS4)


def window_starts(size: int, crop: int, step: int, thresh: int) -> list[int]:
    """Sliding-window starts as BasicSR ``extract_subimages.worker``."""
    starts = list(range(0, size - crop + 1, step))
    if size - (starts[-1] + crop) > thresh:
        starts.append(size - crop)
    return starts


def write_png(path: Path, img: np.ndarray) -> None:
    """Write a PNG atomically (``sr_runtime.fileio``: temp file in the same folder, then ``os.replace``)."""
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise SystemExit(f"error: {path}: PNG encoding failed.")
    atomic_write_bytes(path, buf.tobytes())


def prepare(out: Path, source: PhotoSource, scales: list[float], crop: int, step: int, thresh: int,
            min_std: float = 0.0, max_per_photo: int = 0) -> dict:
    """Write train/, heldout/, meta_info.txt and manifest.json under ``out``; return the manifest."""
    train_names = {p.file for p in TRAIN}
    held_names = {p.file for p in HELDOUT}
    if train_names & held_names:  # a code invariant, not user input
        raise SystemExit(f"error: the split overlaps: {sorted(train_names & held_names)}")
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "heldout").mkdir(parents=True, exist_ok=True)
    manifest: dict = {"source": source.origin, "scales": scales, "crop_size": crop, "step": step,
                      "thresh_size": thresh,
                      "min_std": min_std, "max_per_photo": max_per_photo, "train": [], "heldout": [], "excluded": EXCLUDED}
    subimages: list[str] = []
    for photo in TRAIN:
        data = source.read(photo.file)
        img = decode_bgr(data, photo.file)
        stem = Path(photo.file).stem
        windows: list[tuple[str, np.ndarray]] = []
        n_flat = 0
        for s in scales:
            scaled = resize_lanczos(img, s)
            h, w = scaled.shape[:2]
            if min(h, w) < crop:
                continue
            idx = 0
            for y in window_starts(h, crop, step, thresh):
                for x in window_starts(w, crop, step, thresh):
                    sub = np.ascontiguousarray(scaled[y:y + crop, x:x + crop])
                    idx += 1
                    if float(cv2.cvtColor(sub, cv2.COLOR_BGR2GRAY).std()) < min_std:
                        n_flat += 1
                        continue
                    windows.append((f"{stem}_s{int(round(s * 100)):03d}_{idx - 1:03d}.png", sub))
        if max_per_photo and len(windows) > max_per_photo:  # evenly spaced over scales and positions
            keep = np.linspace(0, len(windows) - 1, max_per_photo).round().astype(int)
            windows = [windows[i] for i in sorted(set(keep.tolist()))]
        for name, sub in windows:
            write_png(out / "train" / name, sub)
            subimages.append(name)
        n_photo = len(windows)
        manifest["train"].append({"file": photo.file, "licence": photo.licence, "credit": photo.credit,
                                  "sha256": _sha256(data), "shape": list(img.shape), "subimages": n_photo, "flat_skipped": n_flat})
        print(f"train   {photo.file:24s} {img.shape[1]}x{img.shape[0]} -> {n_photo} sub-images"
              f" ({n_flat} flat skipped)", flush=True)
    for photo in HELDOUT:
        data = source.read(photo.file)
        img = decode_bgr(data, photo.file)
        write_png(out / "heldout" / f"{Path(photo.file).stem}.png", img)
        manifest["heldout"].append({"file": photo.file, "licence": photo.licence, "credit": photo.credit,
                                    "sha256": _sha256(data), "shape": list(img.shape)})
        print(f"heldout {photo.file:24s} {img.shape[1]}x{img.shape[0]}", flush=True)
    keep = set(subimages)
    for stale in (out / "train").glob("*.png"):  # after writing: a running training never sees a gap
        if stale.name not in keep:
            stale.unlink()
    atomic_write_bytes(out / "meta_info.txt", "".join(f"{n}\n" for n in subimages).encode())
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    print(f"{len(subimages)} GT sub-images in {out / 'train'}; held out: {', '.join(sorted(held_names))}")
    return manifest


def bilinear_residual_init(num_feat: int, num_conv: int, scale: int = 4, seed: int = 0) -> dict:
    """SRVGGNetCompact weights whose output starts as bilinear upscaling instead of nearest (needs torch).

    SRVGGNetCompact adds its residual to the nearest-upsampled input, so from a random init its output is
    blocky and it takes thousands of CPU iterations to learn plain interpolation (measured: still below
    bicubic after 4000 iterations). Here feature channels 0-2 of every conv but the last carry the input
    unchanged (centre tap 1; inputs are >= 0, so PReLU passes them), and the last conv maps them to
    ``bilinear - nearest`` for each of the ``scale**2`` sub-pixel positions (3x3 taps suffice for bilinear).
    All other weights keep the default random init; the last conv's random part is scaled by 0.1.

    Returns:
        An official-key state dict (CPU float32 tensors).
    """
    import torch

    from sr_train.archs import REGISTRY

    torch.manual_seed(seed)
    model = REGISTRY.get("SRVGGNetCompact").build(num_feat=num_feat, num_conv=num_conv, upscale=scale,
                                                   act_type="prelu")
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    convs = [k for k in sd if k.endswith(".weight") and sd[k].ndim == 4]
    with torch.no_grad():
        for k in convs[:-1]:
            w, b = sd[k], sd[k[: -len("weight")] + "bias"]
            w[:3], b[:3] = 0.0, 0.0
            for c in range(3):
                w[c, c, 1, 1] = 1.0
        w, b = sd[convs[-1]], sd[convs[-1][: -len("weight")] + "bias"]
        w *= 0.1
        w[:, :3], b[:] = 0.0, 0.0

        def taps(t: float) -> np.ndarray:  # 1-D bilinear weights on LR pixels (-1, 0, +1) at offset t
            return np.array([-t, 1 + t, 0.0]) if t < 0 else np.array([0.0, 1 - t, t])

        for c in range(3):
            for i in range(scale):
                for j in range(scale):
                    k2 = np.outer(taps((i + 0.5) / scale - 0.5), taps((j + 0.5) / scale - 0.5))
                    k2[1, 1] -= 1.0  # the network adds the nearest-upsampled input itself
                    w[c * scale * scale + i * scale + j, c] = torch.from_numpy(k2).float()
    return sd


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/default_data"), help="output folder")
    ap.add_argument("--wheel", type=Path, default=None, help="scikit-image wheel to read the photos from")
    ap.add_argument("--cache", type=Path, default=Path("runs/cache"), help="where a fetched wheel is kept")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.75, 0.5, 1 / 3],
                    help="Lanczos downscales per photo (upstream: 1, 0.75, 0.5, 1/3)")
    ap.add_argument("--crop-size", type=int, default=192, help="sub-image size (upstream 400 for gt_size 256)")
    ap.add_argument("--step", type=int, default=96, help="sliding-window step (upstream 200)")
    ap.add_argument("--thresh-size", type=int, default=0, help="min leftover for an extra edge window")
    ap.add_argument("--min-std", type=float, default=8.0,
                    help="skip near-flat sub-images (gray std below this, 8-bit levels); upstream keeps all")
    ap.add_argument("--max-per-photo", type=int, default=80,
                    help="cap per photo (evenly spaced) so big photos do not dominate; 0 = no cap")
    ap.add_argument("--init-checkpoint", type=Path, default=None,
                    help="also write the bilinear-residual start weights (official layout; needs torch) here")
    ap.add_argument("--init-arch", type=int, nargs=2, default=[48, 16], metavar=("NUM_FEAT", "NUM_CONV"),
                    help="SRVGGNetCompact size of --init-checkpoint (x4)")
    args = ap.parse_args(argv)
    if args.init_checkpoint is not None:
        from sr_train.checkpoint import save_checkpoint

        save_checkpoint(args.init_checkpoint, params=bilinear_residual_init(*args.init_arch))
        print(f"wrote start weights {args.init_checkpoint} (SRVGGNetCompact {args.init_arch}, bilinear residual)")
    if args.wheel is not None and not args.wheel.is_file():
        print(f"error: {args.wheel}: file not found. Pass a scikit-image wheel or omit --wheel.", file=sys.stderr)
        return 2
    prepare(args.out, PhotoSource(args.wheel, args.cache), args.scales, args.crop_size, args.step, args.thresh_size,
            args.min_std, args.max_per_photo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
