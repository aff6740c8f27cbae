"""The upstream inference algorithm, re-implemented as the benchmark baseline (PyTorch eager).

:class:`Reference` follows ``realesrgan.utils.RealESRGANer`` (Real-ESRGAN 0.3.0) step by step: float32
conversion with the ``max > 256`` 16-bit heuristic, BGR -> RGB, reflect ``pre_pad`` on the right and bottom,
the mod pad for scales 1 and 2, then either the whole image in one forward or ``tile_process``: a grid of
``tile`` x ``tile`` input tiles, each cut with ``tile_pad`` context (clipped at the border), run **one at a
time**, its core pasted into a zero-initialised float32 tensor of the full output size; then the paddings
are cropped, the output clamped to [0, 1], RGB -> BGR and rounded to uint8 (uint16 for 16-bit input).
Deviations, all without effect on speed or output: no per-tile ``print``, a tile error is raised instead of
printed and ignored (upstream would then paste the previous tile), and the model is passed in rather than
loaded from a file. :func:`reference_folder` is ``inference_realesrgan.py``'s loop over a folder (read,
enhance, write, one image after the other).

This module imports torch at import time: it is a benchmark, never imported by the packages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class Reference:
    """RealESRGANer's ``enhance`` on the CPU, fp32, with the model given.

    Args:
        model: a generator mapping ``(1, 3, H, W)`` RGB in [0, 1] to ``(1, 3, H*scale, W*scale)``.
        scale: the model's upscaling factor.
        tile: tile size in input pixels; 0 runs the whole image in one forward (upstream's default).
        tile_pad: context pixels around each tile (upstream default 10).
        pre_pad: reflect padding on the right and bottom before the model (RealESRGANer's default 10;
            ``inference_realesrgan.py`` passes 0 unless ``--pre_pad`` is given).
        half: run in float16 (upstream's CLI default on GPU; slow or unsupported on most CPUs).
        device: torch device.
    """

    def __init__(self, model: nn.Module, scale: int, tile: int = 0, tile_pad: int = 10, pre_pad: int = 10,
                 half: bool = False, device: str | torch.device = "cpu") -> None:
        self.scale = scale
        self.tile_size = tile
        self.tile_pad = tile_pad
        self.pre_pad = pre_pad
        self.mod_scale: int | None = None
        self.half = half
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        if half:
            self.model = self.model.half()
        self.model_seconds = 0.0
        """Seconds spent inside ``model(...)`` since the last :meth:`reset_timers` (the rest is overhead)."""
        self.model_calls = 0
        """Forward calls since the last :meth:`reset_timers`."""
        self.model_pixels = 0
        """Input pixels (N x h x w) through the model since the last :meth:`reset_timers`."""

    def reset_timers(self) -> None:
        """Zero the model counters (seconds, calls, pixels)."""
        self.model_seconds, self.model_calls, self.model_pixels = 0.0, 0, 0

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        with torch.no_grad():
            y = self.model(x)
        self.model_seconds += time.perf_counter() - t0
        self.model_calls += 1
        self.model_pixels += int(x.shape[0]) * int(x.shape[-2]) * int(x.shape[-1])
        return y

    # ---------------------------------------------------------------- RealESRGANer, step by step
    def pre_process(self, img: np.ndarray) -> None:
        """``(H, W, 3)`` float32 RGB in [0, 1] -> ``self.img`` ``(1, 3, H', W')`` padded tensor."""
        t = torch.from_numpy(np.transpose(img, (2, 0, 1))).float()
        self.img = t.unsqueeze(0).to(self.device)
        if self.half:
            self.img = self.img.half()
        if self.pre_pad != 0:
            self.img = F.pad(self.img, (0, self.pre_pad, 0, self.pre_pad), "reflect")
        if self.scale == 2:
            self.mod_scale = 2
        elif self.scale == 1:
            self.mod_scale = 4
        if self.mod_scale is not None:
            self.mod_pad_h, self.mod_pad_w = 0, 0
            _, _, h, w = self.img.size()
            if h % self.mod_scale != 0:
                self.mod_pad_h = self.mod_scale - h % self.mod_scale
            if w % self.mod_scale != 0:
                self.mod_pad_w = self.mod_scale - w % self.mod_scale
            self.img = F.pad(self.img, (0, self.mod_pad_w, 0, self.mod_pad_h), "reflect")

    def process(self) -> None:
        """The whole padded image in one forward."""
        self.output = self._forward(self.img)

    def tile_process(self) -> None:
        """Upstream ``tile_process``: one tile at a time into a float32 full-size output."""
        batch, channel, height, width = self.img.shape
        output_shape = (batch, channel, height * self.scale, width * self.scale)
        self.output = self.img.new_zeros(output_shape)
        tiles_x = math.ceil(width / self.tile_size)
        tiles_y = math.ceil(height / self.tile_size)
        for y in range(tiles_y):
            for x in range(tiles_x):
                ofs_x = x * self.tile_size
                ofs_y = y * self.tile_size
                input_start_x = ofs_x
                input_end_x = min(ofs_x + self.tile_size, width)
                input_start_y = ofs_y
                input_end_y = min(ofs_y + self.tile_size, height)
                input_start_x_pad = max(input_start_x - self.tile_pad, 0)
                input_end_x_pad = min(input_end_x + self.tile_pad, width)
                input_start_y_pad = max(input_start_y - self.tile_pad, 0)
                input_end_y_pad = min(input_end_y + self.tile_pad, height)
                input_tile_width = input_end_x - input_start_x
                input_tile_height = input_end_y - input_start_y
                input_tile = self.img[:, :, input_start_y_pad:input_end_y_pad, input_start_x_pad:input_end_x_pad]
                output_tile = self._forward(input_tile)
                output_start_x = input_start_x * self.scale
                output_end_x = input_end_x * self.scale
                output_start_y = input_start_y * self.scale
                output_end_y = input_end_y * self.scale
                output_start_x_tile = (input_start_x - input_start_x_pad) * self.scale
                output_end_x_tile = output_start_x_tile + input_tile_width * self.scale
                output_start_y_tile = (input_start_y - input_start_y_pad) * self.scale
                output_end_y_tile = output_start_y_tile + input_tile_height * self.scale
                self.output[:, :, output_start_y:output_end_y, output_start_x:output_end_x] = output_tile[
                    :, :, output_start_y_tile:output_end_y_tile, output_start_x_tile:output_end_x_tile]

    def post_process(self) -> torch.Tensor:
        """Crop the mod pad and the pre pad (times scale) from ``self.output``."""
        if self.mod_scale is not None:
            _, _, h, w = self.output.size()
            self.output = self.output[:, :, 0:h - self.mod_pad_h * self.scale, 0:w - self.mod_pad_w * self.scale]
        if self.pre_pad != 0:
            _, _, h, w = self.output.size()
            self.output = self.output[:, :, 0:h - self.pre_pad * self.scale, 0:w - self.pre_pad * self.scale]
        return self.output

    def _run(self, img: np.ndarray) -> np.ndarray:
        self.pre_process(img)
        if self.tile_size > 0:
            self.tile_process()
        else:
            self.process()
        out = self.post_process()
        out = out.data.squeeze().float().cpu().clamp_(0, 1).numpy()
        return np.transpose(out[[2, 1, 0], :, :], (1, 2, 0))

    @torch.no_grad()
    def enhance(self, img: np.ndarray, outscale: float | None = None,
                alpha_upsampler: str = "realesrgan") -> tuple[np.ndarray, str]:
        """Upscale an OpenCV image as RealESRGANer does.

        Args:
            img: ``(H, W)`` gray, ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA, uint8 or uint16.
            outscale: final scale (Lanczos resize when it differs from the model's scale).
            alpha_upsampler: ``realesrgan`` (alpha through the network) or anything else (bilinear).

        Returns:
            ``(output, mode)``: the image in the input's layout and bit depth (uint8 or uint16, BGR(A)),
            and ``L``, ``RGB`` or ``RGBA``.
        """
        h_input, w_input = img.shape[0:2]
        img = img.astype(np.float32)
        max_range = 65535 if np.max(img) > 256 else 255
        img = img / max_range
        if img.ndim == 2:
            img_mode = "L"
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        elif img.shape[2] == 4:
            img_mode = "RGBA"
            alpha = img[:, :, 3]
            img = img[:, :, 0:3]
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            if alpha_upsampler == "realesrgan":
                alpha = cv2.cvtColor(alpha, cv2.COLOR_GRAY2RGB)
        else:
            img_mode = "RGB"
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

        output_img = self._run(img)
        if img_mode == "L":
            output_img = cv2.cvtColor(output_img, cv2.COLOR_BGR2GRAY)

        if img_mode == "RGBA":
            if alpha_upsampler == "realesrgan":
                output_alpha = cv2.cvtColor(self._run(alpha), cv2.COLOR_BGR2GRAY)
            else:
                h, w = alpha.shape[0:2]
                output_alpha = cv2.resize(alpha, (w * self.scale, h * self.scale), interpolation=cv2.INTER_LINEAR)
            output_img = cv2.cvtColor(output_img, cv2.COLOR_BGR2BGRA)
            output_img[:, :, 3] = output_alpha

        if max_range == 65535:
            output = (output_img * 65535.0).round().astype(np.uint16)
        else:
            output = (output_img * 255.0).round().astype(np.uint8)
        if outscale is not None and outscale != float(self.scale):
            output = cv2.resize(output, (int(w_input * outscale), int(h_input * outscale)),
                                interpolation=cv2.INTER_LANCZOS4)
        return output, img_mode


def reference_folder(ref: Reference, files: Iterable[str | Path], out_dir: str | Path,
                     suffix: str = "out") -> list[Path]:
    """``inference_realesrgan.py``'s loop: for each file read (IMREAD_UNCHANGED), enhance, write PNG.

    Returns:
        The written paths (``<out_dir>/<stem>_<suffix>.png``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        output, _ = ref.enhance(img, outscale=ref.scale)
        save = out_dir / f"{Path(path).stem}_{suffix}.png"
        cv2.imwrite(str(save), output)
        written.append(save)
    return written
