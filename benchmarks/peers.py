"""CPU peers of sr-run, re-implemented the way they run our ONNX (benchmark baselines, never imported by packages).

:class:`VsMlrtOv` is vs-mlrt's ``Backend.OV_CPU`` (AmusementClub/vs-mlrt, ``scripts/vsmlrt.py`` + ``vsov``):
the ONNX's input is fixed to one tile shape (``tilesize`` = the whole frame, or tile + 2 x overlap), the model is
compiled once on ``CPU`` with ``NUM_STREAMS=1``, ``INFERENCE_NUM_THREADS`` (0: all), ``ENABLE_CPU_PINNING=YES``
and ``INFERENCE_PRECISION_HINT=f32`` (its defaults: ``fp16=False``, ``bf16=False``), and each frame is cut into
same-shape tiles stepping by ``tilesize - 2 x overlap``, the last one shifted inwards to end at the border; each
tile runs synchronously on one infer request and its output is pasted without ``overlap`` x scale pixels on every
side that is not a border. Frames are float32 planar RGB in [0, 1]; the output is clamped and rounded to 8 bits
as imwri writes it. In VapourSynth a frame's decode, filter and encode overlap on worker threads; the folder run
here gives the model the calling thread and decodes/encodes on two others (:func:`vsmlrt_folder`).

chaiNNer's way (spandrel + torch eager + its auto-split tiling) is not here: spandrel 0.4.2 requires torchvision,
which this project does not install (docs/benchmarks.md).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np


class VsMlrtOv:
    """vs-mlrt's OV_CPU on one frame size.

    Args:
        onnx: the ONNX file (dynamic height and width; vs-mlrt fixes them to ``tilesize`` before compiling).
        frame: ``(height, width)`` of the frames.
        scale: the model's scale.
        tile: tile core in input pixels, 0 for the whole frame (vs-mlrt: ``tilesize = tile + 2 * overlap``).
        overlap: context on each side (``overlap``; sr-run's ``tile_pad``).
        threads: ``INFERENCE_NUM_THREADS``.
    """

    def __init__(self, onnx: str | Path, frame: tuple[int, int], scale: int, tile: int = 0, overlap: int = 0,
                 threads: int = 0) -> None:
        from sr_runtime.backends.openvino import import_openvino

        ov = import_openvino()  # vs-mlrt's plugin is C++: no Python converter or telemetry import either
        h, w = frame
        self.scale = scale
        self.overlap = overlap if tile else 0
        self.tile = (min(tile + 2 * overlap, h), min(tile + 2 * overlap, w)) if tile else (h, w)
        core = ov.Core()
        model = core.read_model(str(onnx))
        model.reshape({0: [1, 3, *self.tile]})
        config = {"NUM_STREAMS": 1, "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": "YES",
                  "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.model_seconds = 0.0
        self.model_pixels = 0
        self.model_calls = 0
        self.provider = f"OpenVINO {ov.get_version().split('-')[0]} CPU, static {self.tile[0]}x{self.tile[1]}, f32"

    def reset_timers(self) -> None:
        """Zero the model counters."""
        self.model_seconds, self.model_pixels, self.model_calls = 0.0, 0, 0

    def _starts(self, size: int, tile: int) -> Iterator[int]:
        step, x = tile - 2 * self.overlap, 0
        while True:
            yield x
            if x + tile >= size:
                return
            x = min(x + step, size - tile)

    def enhance(self, bgr: np.ndarray) -> np.ndarray:
        """One ``(H, W, 3)`` uint8 BGR frame -> ``(H*s, W*s, 3)`` uint8 BGR."""
        import time

        h, w = bgr.shape[:2]
        s, o = self.scale, self.overlap
        th, tw = self.tile
        planar = np.ascontiguousarray(bgr[..., ::-1].transpose(2, 0, 1), dtype=np.float32) / np.float32(255)
        out = np.empty((3, h * s, w * s), np.float32)
        for y in self._starts(h, th):
            for x in self._starts(w, tw):
                t0 = time.perf_counter()
                self.request.infer({0: planar[None, :, y:y + th, x:x + tw]})
                tile_out = self.request.get_output_tensor(0).data[0]
                self.model_seconds += time.perf_counter() - t0
                self.model_pixels += th * tw
                self.model_calls += 1
                y0, x0 = (o if y else 0), (o if x else 0)
                y1, x1 = th - (o if y + th < h else 0), tw - (o if x + tw < w else 0)
                out[:, (y + y0) * s:(y + y1) * s, (x + x0) * s:(x + x1) * s] = tile_out[:, y0 * s:y1 * s,
                                                                                       x0 * s:x1 * s]
        np.clip(out, 0.0, 1.0, out=out)
        return np.rint(out.transpose(1, 2, 0)[..., ::-1] * np.float32(255)).astype(np.uint8)


def vsmlrt_folder(onnx: str | Path, files: list[Path], out_dir: str | Path, scale: int, threads: int,
                  tile: int = 0, overlap: int = 0) -> dict[str, Any]:
    """A folder of same-size frames through :class:`VsMlrtOv`, as a VapourSynth script with imwri would run it:
    compiled once for the frame size, frames decoded ahead and encoded behind on worker threads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
    peer = VsMlrtOv(onnx, first.shape[:2], scale, tile, overlap, threads)
    frames: queue.Queue = queue.Queue(maxsize=2)

    def read() -> None:
        for f in files:
            frames.put((f, cv2.imread(str(f), cv2.IMREAD_COLOR)))
        frames.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with ThreadPoolExecutor(max_workers=1) as writer:
        while (item := frames.get()) is not None:
            f, img = item
            writer.submit(cv2.imwrite, str(out / f"{f.stem}_out.png"), peer.enhance(img))
    reader.join()
    return {"model_seconds": peer.model_seconds, "executed_pixels": peer.model_pixels, "provider": peer.provider}
