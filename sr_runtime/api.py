"""Python API mirroring upstream ``RealESRGANer``: ``Upscaler(model).enhance(img) -> (img, mode)``.

Thread safety: :meth:`Upscaler.enhance` keeps no per-call state on the object and the backends serialize
their ``run`` calls, so one ``Upscaler`` may be shared by several threads (the calls then take turns on the
engine). The CLI calls it from its main thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from sr_runtime.backends import BackendName, open_backend
from sr_runtime.backends.base import Backend
from sr_runtime.errors import ImageError, ModelFileError, SrError
from sr_runtime.image import Mode, image_mode, read_image
from sr_runtime.info import MODEL_SUFFIXES_TORCH, ModelInfo
from sr_runtime.memory import auto_tile, default_budget, parse_memory
from sr_runtime.tiling import (
    MIN_TILE,
    ModelFn,
    TilePlan,
    TileSettings,
    default_pad,
    max_core,
    padded_rows,
    padding,
    plan_bands,
    run_band,
    run_tiled,
    run_tiled_many,
    with_fp32_redo,
)
from sr_runtime.tta import with_tta

AlphaUpsampler = Literal["model", "realesrgan", "bicubic", "lanczos", "linear"]
ALPHA_UPSAMPLERS: tuple[str, ...] = ("model", "realesrgan", "bicubic", "lanczos", "linear")
"""``realesrgan`` is upstream's name for ``model`` (the alpha plane goes through the network); ``linear`` is what
upstream's ``enhance`` does for any other value (``None`` included): a bilinear ``cv2.resize``."""
_ALPHA_INTERP = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4, "linear": cv2.INTER_LINEAR}

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.onnx"
"""The shipped default model (package data)."""



class RowSource(Protocol):
    """An image whose rows are read on demand (:meth:`Upscaler.enhance_rows`); calls come top to bottom, each
    ``y0`` at least the previous one's (the readers of :mod:`sr_runtime.stream` may forget earlier rows)."""

    height: int
    width: int
    channels: int
    """1 (gray), 2 (gray+alpha), 3 (BGR) or 4 (BGRA)."""

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``[y0, y1)`` in OpenCV layout, uint8 or uint16."""
        ...


_GRAY = (np.float32(0.299), np.float32(0.587), np.float32(0.114))  # cv2 RGB2GRAY weights


def default_model_path() -> Path:
    """The shipped default model.

    Raises:
        ModelFileError: no default model is shipped in this installation.
    """
    if not DEFAULT_MODEL.is_file():
        raise ModelFileError(
            "no default model is shipped yet",
            "Pass --model PATH to an .onnx or .engine file exported with sr-export.",
        )
    return DEFAULT_MODEL


def _fp32_sibling(path: Path) -> Path | None:
    """``x_fp16.onnx`` / ``x.fp16.onnx`` / ``x-fp16.onnx`` -> ``x.onnx`` if it exists."""
    stem = path.stem
    for tag in ("_fp16", ".fp16", "-fp16"):
        if stem.endswith(tag):
            cand = path.with_name(stem[: -len(tag)] + path.suffix)
            if cand.is_file():
                return cand
    return None


class Upscaler:
    """Upscale OpenCV images with an exported model, tiled, batched and torch-free.

    Args:
        model_path: an ``.onnx`` (from sr-export, or probed when it has no metadata), an ``.engine``, a
            ``.pth``/``.safetensors`` checkpoint (exported once), an open :class:`Backend`, or None for the
            shipped default model.
        tile: core tile size in input pixels, ``0`` for the whole image, or ``"auto"`` (the largest tile
            whose estimated memory fits ``max_memory``).
        tile_pad: context around each tile; tiled output equals whole-image output when it is at least the
            model's ``receptive_radius`` (see ``info``). None: :func:`~sr_runtime.tiling.default_pad`, the
            radius where it is cheap (SRVGGNetCompact), else upstream's 10.
        pre_pad: reflect padding at the bottom/right, cropped afterwards (upstream semantics).
        batch: tiles per backend call.
        backend: ``auto``, ``ort``, ``ort-cuda`` or ``trt`` (see :func:`sr_runtime.backends.open_backend`).
        threads: CPU threads for ONNX Runtime.
        fp16: passed to the backend (ONNX Runtime's TensorRT provider); otherwise precision comes from the
            file: an fp16 ONNX (``sr-export --fp16``) runs in fp16, and so does an engine built from it.
        max_memory: budget for ``tile="auto"`` in bytes or as text (``"4G"``); default a quarter of the RAM.
        fp32_model: an fp32 model (path or open Backend) used to redo tiles whose reduced-precision output
            is NaN/Inf; default ``x.onnx`` next to ``x_fp16.onnx``.
        notify: where one-time messages go (fp32 redo, smaller tile, format notes); default the logger.
        scale: the model's scale as the caller knows it (upstream's ``scale``): an ONNX without sr-deploy
            metadata is probed and must upscale by this; a model with metadata must say this.
        half: upstream's name for ``fp16`` (``RealESRGANer(half=...)``); precision still comes from the file.
        tta: test-time augmentation (ncnn's ``-x``): the mean of the model over the 8 flips/rotations of each
            tile (:mod:`sr_runtime.tta`), 8 times the work.

    Upstream's call ``RealESRGANer(scale=4, model_path="x.pth", tile=0, tile_pad=10, pre_pad=10, half=False)``
    works as it is (its keywords are these), and so does its positional order ``Upscaler(4, "x.onnx")``: an
    integer first argument is the scale and the second the model. A ``.pth``/``.safetensors`` model is
    exported to ONNX once, checked, and cached (:mod:`sr_runtime.pth_model`, needs the ``export`` extra).

    Raises:
        ModelFileError, MissingExtraError, SrError: see :func:`open_backend`.
        TypeError: upstream's positional order with more than two positional arguments.
    """

    def __init__(
        self,
        model_path: str | Path | Backend | int | None = None,
        tile: int | Literal["auto"] = 0,
        tile_pad: int | None = 10,
        pre_pad: int = 10,
        *,
        batch: int = 1,
        backend: BackendName = "auto",
        threads: int | None = None,
        fp16: bool = False,
        max_memory: int | str | None = None,
        fp32_model: str | Path | Backend | None = None,
        notify: Callable[[str], None] | None = None,
        scale: int | None = None,
        half: bool | None = None,
        tta: bool = False,
    ) -> None:
        model_path, tile, scale = _upstream_order(model_path, tile, tile_pad, pre_pad, scale)
        fp16 = bool(half) if half is not None else fp16
        if tile != "auto" and (not isinstance(tile, int) or tile < 0):
            raise SrError(f"bad tile '{tile}'", "Use a tile size in pixels, 0 for no tiling, or 'auto'.")
        if (tile_pad is not None and tile_pad < 0) or pre_pad < 0 or batch < 1:
            raise SrError("tile_pad and pre_pad must be >= 0 and batch >= 1")
        self.tile, self.pre_pad, self.batch = tile, int(pre_pad), int(batch)
        self.notify = notify
        self.max_memory = parse_memory(max_memory) if isinstance(max_memory, str) else max_memory
        if isinstance(model_path, (str, Path)) or model_path is None:
            self.model_path: Path | None = Path(model_path) if model_path is not None else default_model_path()
            if self.model_path.suffix.lower() in MODEL_SUFFIXES_TORCH:
                from sr_runtime.pth_model import exported_onnx

                self.model_path = exported_onnx(self.model_path, notify)
            profile_tile = tile if isinstance(tile, int) and tile > 0 else 256
            self.backend: Backend = open_backend(self.model_path, backend, threads, fp16, tile=profile_tile,
                                                 tile_pad=tile_pad, batch=self.batch, scale=scale)
        else:
            self.model_path, self.backend = None, model_path
        self.info: ModelInfo = self.backend.info
        self.tile_pad: int = default_pad(self.info) if tile_pad is None else int(tile_pad)
        """Context around each tile (the model's default when None was given)."""
        self.scale: int = self.info.scale
        self._backend_name, self._threads = backend, threads
        self._reduced = self.backend.reduced_precision
        self._fallback: Backend | None = None
        self._fp32_model: Path | None = None
        if isinstance(fp32_model, (str, Path)):
            self._fp32_model = Path(fp32_model)
        elif fp32_model is not None:
            self._fallback = fp32_model
        self.tta = bool(tta)
        if self.tta:
            _check_tta(self.backend)
        self._lock = threading.Lock()
        self._said: set[str] = set()

    @property
    def half(self) -> bool:
        """Upstream's attribute: whether the model computes in reduced precision (fp16)."""
        return self._reduced

    # ------------------------------------------------------------------ backends
    @property
    def provider(self) -> str:
        """What runs the model (e.g. ``CPUExecutionProvider``)."""
        return self.backend.provider

    def _fallback_fn(self) -> ModelFn | None:
        """A callable that opens an fp32 backend on first use, or None when there is none."""
        if not self._reduced:
            return None
        if self._fallback is not None:
            return self._fallback.run
        path = self._fp32_model
        if path is None and self.model_path is not None:
            if self.model_path.suffix.lower() == ".onnx" and self.info.precision == "float32" \
                    and self.info.io_dtype == "float32":
                path = self.model_path  # an fp16 engine built from this fp32 ONNX
            else:
                path = _fp32_sibling(self.model_path)
        if path is None:
            return None

        def run(x: np.ndarray) -> np.ndarray:
            with self._lock:
                if self._fallback is None:
                    # an engine's fp32 redo runs on ONNX Runtime: no second engine build for a rare event
                    name = "auto" if self._backend_name == "trt" and path.suffix == ".onnx" else self._backend_name
                    self._fallback = open_backend(path, name, self._threads, False)  # type: ignore[arg-type]
            return self._fallback.run(x)

        return run

    def close(self) -> None:
        """Release the backend(s)."""
        self.backend.close()
        if self._fallback is not None:
            self._fallback.close()

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ inference
    def _engine_limits(self) -> tuple[int | None, int]:
        """(largest tile, largest batch) an engine's shape profile allows; (None, batch) without a profile."""
        mx = self.backend.max_shape
        if not mx:
            return None, self.batch
        m = max(1, self.info.size_multiple)
        max_tile = max_core(min(int(mx[2]), int(mx[3])), self.tile_pad, m)
        if max_tile < m:
            raise SrError(f"the engine takes tiles up to {mx[2]}x{mx[3]}, too small for --tile-pad {self.tile_pad}",
                          "Lower --tile-pad or rebuild the engine for larger tiles.")
        return max_tile, max(1, min(self.batch, int(mx[0])))

    def _say(self, msg: str, key: str | None = None) -> None:
        """Send a note to ``notify`` once per distinct ``key`` (default: the message)."""
        key = msg if key is None else key
        if self.notify is not None and key not in self._said:
            self._said.add(key)
            self.notify(msg)

    def _tile_for(self, h: int, w: int, max_tile: int | None, batch: int, reserved: int = 0, row_bytes: int = 0,
                  budget: int | None = None, quiet: bool = False) -> int:
        if self.backend.window_shapes == "fixed" and max_tile is not None:
            return max_tile  # one window shape only: every window is exactly the model's input
        if self.tile != "auto":
            tile = int(self.tile)
            if max_tile is not None and (tile == 0 or tile > max_tile):
                if tile:
                    self._say(f"the engine's profile limits the tile to {max_tile}")
                tile = max_tile
            return tile
        if self.max_memory:  # the whole job's budget: the tiles get what the image data leaves
            budget = self.max_memory - reserved
        elif budget is None:
            budget = default_budget(self.backend.free_memory())
        tile = auto_tile(self.info, h + self.pre_pad, w + self.pre_pad, pad=self.tile_pad, batch=batch,
                         budget=max(1, budget), min_tile=MIN_TILE, max_tile=max_tile, row_bytes=row_bytes)
        if not quiet:
            self._say(f"--tile auto: {f'tile {tile}' if tile else 'whole image'} for {w}x{h} "
                      f"(memory budget {max(1, budget) / 2**20:.0f} MB)", key=f"tile auto {tile} {w}x{h}")
        return tile

    def plan(self, h: int, w: int, reserved: int = 0, *, row_bytes: int = 0, budget: int | None = None,
             quiet: bool = False) -> tuple[int, int]:
        """The ``(tile, batch)`` used for an ``h`` x ``w`` image (``tile`` 0: whole image).

        For ``tile="auto"``: ``reserved`` is what the caller holds for the image data (input, output), taken off
        ``max_memory`` when that is set; ``row_bytes`` is memory per window row that grows with the width (a
        streamed output's bands, :func:`sr_runtime.memory.auto_tile`); ``budget`` replaces the default budget
        (a quarter of the free memory) when ``max_memory`` is not set. ``quiet``: no notes (an estimate).
        """
        max_tile, batch = self._engine_limits()
        tile = self._tile_for(h, w, max_tile, batch, reserved, row_bytes, budget, quiet)
        if 0 < tile < self.tile_pad and not quiet:
            side = tile + 2 * self.tile_pad
            self._say(f"--tile-pad {self.tile_pad} is larger than the tile {tile}: each window computes "
                      f"{side * side / tile / tile:.0f}x its tile's pixels; use a larger --tile")
        return tile, batch

    def _settings(self, tile: int, batch: int) -> TileSettings:
        return TileSettings(scale=self.scale, tile=tile, pad=self.tile_pad, batch=batch, pre_pad=self.pre_pad,
                            size_multiple=self.info.size_multiple, windows=self.backend.window_shapes)

    def enhance(
        self,
        img: np.ndarray,
        outscale: float | None = None,
        alpha_upsampler: AlphaUpsampler | None = "realesrgan",
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[np.ndarray, Mode]:
        """Upscale one OpenCV image (upstream's ``RealESRGANer.enhance``, same arguments and return value).

        Args:
            img: ``(H, W)`` gray, ``(H, W, 2)`` gray+alpha, ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA. uint8 and
                uint16 keep their dtype (the dtype decides the range, never the values). A float array follows
                upstream's rule: values up to 256 are 8-bit (divided by 255, output uint8), a maximum above
                256 means 16-bit (divided by 65535, output uint16).
            outscale: final scale; when it differs from the model's, the output is resized with Lanczos.
            alpha_upsampler: ``model`` (alias ``realesrgan``: the alpha plane goes through the network as a
                gray image), ``bicubic``, ``lanczos``, or ``None``/``linear`` (upstream's cv2 bilinear resize).
            progress: ``progress(done_tiles, total_tiles)`` for the color pass.

        Returns:
            ``(output, mode)``: same layout as the input, ``H*outscale x W*outscale``, uint8 or uint16 (``mode`` is
            ``L``, ``LA``, ``RGB`` or ``RGBA``).

        Raises:
            TypeError: ``img`` is not a numpy array (a path: read it first, or use :func:`upscale`).
            ImageError: unsupported dtype or shape, or an unknown alpha upsampler.
            OutOfMemory, SrError: from the backend and tiler.
        """
        img, out_dtype = _check_image(img, alpha_upsampler)
        mode = image_mode(img)
        self._check_rgb_model()
        out = self._upscale(img, mode, alpha_upsampler or "linear", out_dtype, progress)
        return _resize(out, mode, self.scale, outscale), mode

    def _check_rgb_model(self) -> None:
        if self.info.in_channels != 3 or self.info.out_channels != 3:
            raise SrError(f"the model maps {self.info.in_channels} to {self.info.out_channels} channels",
                          "sr-run upscales RGB models (3 in, 3 out).")

    def enhance_frames(
        self,
        frames: Iterable[np.ndarray],
        outscale: float | None = None,
        *,
        order: Literal["rgb", "bgr"] = "rgb",
        size: tuple[int, int] | None = None,
    ) -> Iterator[np.ndarray]:
        """Upscale a stream of colour frames (a video), yielding each output frame in order.

        Consecutive frames of one shape and dtype are stacked, up to ``batch`` per backend call, when a whole
        frame fits the memory budget (``tile`` 0 or ``"auto"``); larger frames go through the tiler one by one.
        Each output equals ``enhance(frame)`` for the same frame (the backends compute batch items
        independently). Frames are pulled lazily: at most ``batch`` are held at a time.

        Args:
            frames: ``(H, W, 3)`` uint8 or uint16 arrays (e.g. PyAV's ``frame.to_ndarray(format="rgb24")``).
            outscale: final scale as in :meth:`enhance` (Lanczos from the model's scale).
            order: channel order of ``frames`` (and of the outputs): ``rgb`` (PyAV) or ``bgr`` (OpenCV).
            size: exact output ``(width, height)``, overriding ``outscale`` (e.g. even sizes for 4:2:0 video).

        Yields:
            ``(H', W', 3)`` arrays of the input dtype, in the input order.

        Raises:
            ImageError: a frame that is not ``(H, W, 3)`` uint8/uint16; SrError, OutOfMemory: as :meth:`enhance`.
        """
        self._check_rgb_model()
        group: list[np.ndarray] = []
        limit = 1
        for frame in frames:
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype not in (np.uint8, np.uint16):
                raise ImageError(f"frames must be (H, W, 3) uint8 or uint16, got {frame.shape} {frame.dtype}")
            if group and (frame.shape != group[0].shape or frame.dtype != group[0].dtype):
                yield from self._frames(group, outscale, order, size)
                group = []
            if not group:
                limit = self.plan(*frame.shape[:2])[1]
            group.append(frame if order == "rgb" else frame[..., ::-1])
            if len(group) >= limit:
                yield from self._frames(group, outscale, order, size)
                group = []
        if group:
            yield from self._frames(group, outscale, order, size)

    def _frames(self, group: list[np.ndarray], outscale: float | None, order: str,
                size: tuple[int, int] | None) -> Iterator[np.ndarray]:
        """The upscaled RGB ``group`` (one shape), resized and in ``order``."""
        tile, batch = self.plan(*group[0].shape[:2])
        fn, fallback = self._model_fns()
        if fallback is not None:
            fn = with_fp32_redo(fn, fallback, self.notify)
        for out in run_tiled_many(group, fn, self._settings(tile, batch), notify=self.notify):
            if size is not None and (out.shape[1], out.shape[0]) != tuple(size):
                out = cv2.resize(out, tuple(size), interpolation=cv2.INTER_LANCZOS4)
            elif size is None:
                out = _resize(out, "RGB", self.scale, outscale)
            yield out if order == "rgb" else np.ascontiguousarray(out[..., ::-1])

    def _model_fns(self) -> tuple[ModelFn, ModelFn | None]:
        """The model function and its fp32 fallback (None without one), both averaged over flips with ``tta``."""
        fn: ModelFn = self.backend.run
        fallback = self._fallback_fn()
        if self.tta:
            return with_tta(fn), with_tta(fallback)  # type: ignore[return-value]
        return fn, fallback

    def _upscale(self, img: np.ndarray, mode: Mode, alpha_upsampler: str, out_dtype: np.dtype,
                 progress: Callable[[int, int], None] | None) -> np.ndarray:
        """The model's output for every plane of ``img`` (colour, then alpha), in the input's layout."""
        h, w = img.shape[:2]
        s = self.scale
        out = np.empty((h * s, w * s) + (() if mode == "L" else (img.shape[2],)), out_dtype)
        settings = self._settings(*self.plan(h, w, reserved=img.nbytes + out.nbytes))

        def run(src: np.ndarray, fn: ModelFn, dst: np.ndarray, prog: Callable[[int, int], None] | None) -> None:
            run_tiled(src, fn, settings, out=dst, progress=prog, notify=self.notify)

        self._passes(img, mode, alpha_upsampler, out, run, progress)
        if mode in ("RGBA", "LA") and alpha_upsampler not in ("model", "realesrgan"):
            out[..., -1] = _resize_plane(img[..., -1], (w * s, h * s), _ALPHA_INTERP[alpha_upsampler], out_dtype)
        return out

    def _passes(self, img: np.ndarray, mode: Mode, alpha_upsampler: str, out: np.ndarray,
                run: Callable[..., None], progress: Callable[[int, int], None] | None) -> None:
        """Colour, then (``alpha_upsampler`` model) alpha through ``run(src, fn, dst, progress)``: the planes of
        ``img`` as RGB views, the model functions (gray ones for gray planes) and the matching views of ``out``."""
        fn, fallback = self._model_fns()
        color = fn if fallback is None else with_fp32_redo(fn, fallback, self.notify)
        gray = _gray(fn) if fallback is None else with_fp32_redo(_gray(fn), _gray(fallback), self.notify)
        if mode == "RGB":
            run(img[..., ::-1], color, out[..., ::-1], progress)
        elif mode == "RGBA":
            run(img[..., 2::-1], color, out[..., 2::-1], progress)
        elif mode == "L":
            run(_as_rgb(img), gray, out[..., None], progress)
        else:  # LA
            run(_as_rgb(img[..., 0]), gray, out[..., 0:1], progress)
        if mode in ("RGBA", "LA") and alpha_upsampler in ("model", "realesrgan"):
            run(_as_rgb(img[..., -1]), gray, out[..., -1:], None)

    def enhance_rows(self, source: RowSource, alpha_upsampler: AlphaUpsampler = "realesrgan",
                     progress: Callable[[int, int], None] | None = None, *,
                     tiles: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
        """Upscale an image band by band, reading only the input rows each band needs (a streamed output).

        Yields the output rows top to bottom, one row of tiles at a time; together they equal
        ``enhance(whole image)[0]`` (the same tiles; only the grouping of tiles into model calls differs). Each
        yielded array is the caller's. No outscale here: the output is at the model's scale.

        Args:
            source: the input rows (:class:`RowSource`, e.g. :mod:`sr_runtime.stream`'s readers).
            alpha_upsampler: ``model`` (alias ``realesrgan``); the resizing ones need the whole alpha plane.
            progress: ``progress(done_tiles, total_tiles)`` over both passes.
            tiles: the ``(tile, batch)`` to use (default :meth:`plan` of the image's size).

        Raises:
            ImageError: a resizing ``alpha_upsampler`` for an image with alpha; as :meth:`enhance` otherwise.
        """
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[source.channels]
        if mode in ("RGBA", "LA") and alpha_upsampler not in ("model", "realesrgan"):
            raise ImageError(f"a streamed image takes --alpha-upsampler model, not {alpha_upsampler}")
        self._check_rgb_model()
        h, w, s = source.height, source.width, self.scale
        settings = self._settings(*(tiles or self.plan(h, w)))
        ph, pw = padding(h, w, settings.pre_pad, settings.size_multiple)
        bands = [b for b in plan_bands(h + ph, w + pw, settings) if b.core0 < h]  # not pre-pad only
        passes = 2 if mode in ("RGBA", "LA") else 1
        total, done = sum(len(b) for b in bands) * passes, 0
        for band in bands:
            pixels = padded_rows(source.rows, h, w, settings, band.y0, band.y1)
            out = np.empty(((min(band.y1, h) - band.y0) * s, w * s) + pixels.shape[2:], pixels.dtype)

            sub = band.plan

            def run(src: np.ndarray, fn: ModelFn, dst: np.ndarray, prog: Callable[[int, int], None] | None,
                    sub: TilePlan = sub, base: int = done) -> None:
                shifted = None if prog is None else (lambda d, _t: prog(base + d, total))
                run_band(src, sub, fn, settings, dst, shifted)

            self._passes(pixels, mode, "model", out, run, progress)  # type: ignore[arg-type]
            done += len(band) * passes
            yield out[(band.core0 - band.y0) * s:(min(band.core1, h) - band.y0) * s]


def _check_image(img: np.ndarray, alpha_upsampler: str | None) -> tuple[np.ndarray, np.dtype]:
    """Refuse what :meth:`Upscaler.enhance` cannot take; returns the image to run and the output dtype.

    ``(H, W, 1)`` becomes ``(H, W)``; a float image becomes float32 in [0, 1] by upstream's rule (a maximum
    above 256: 16-bit range and a uint16 output, else 8-bit and uint8).

    Raises:
        TypeError: ``img`` is not a numpy array.
        ImageError: an unknown alpha upsampler or a pixel type other than uint8/uint16/float.
    """
    if not isinstance(img, np.ndarray):
        hint = (" (a path: read it with cv2.imread(path, cv2.IMREAD_UNCHANGED), or call sr_runtime.upscale(path))"
                if isinstance(img, (str, Path)) else "")
        raise TypeError(f"enhance takes an OpenCV image (a numpy array), got {type(img).__name__}{hint}")
    if alpha_upsampler is not None and alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise ImageError(f"unknown alpha upsampler '{alpha_upsampler}'",
                         f"Use one of: {', '.join(ALPHA_UPSAMPLERS)} (or None).")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.dtype in (np.uint8, np.uint16):
        return img, img.dtype
    if not np.issubdtype(img.dtype, np.floating):
        raise ImageError(f"unsupported pixel type {img.dtype}", "Pass a uint8, uint16 or float OpenCV image.")
    sixteen = img.size > 0 and float(np.max(img)) > 256  # upstream's rule
    top = np.float32(65535.0 if sixteen else 255.0)
    return (img.astype(np.float32) / top), np.dtype(np.uint16 if sixteen else np.uint8)


def _resize_plane(plane: np.ndarray, size: tuple[int, int], interp: int, out_dtype: np.dtype) -> np.ndarray:
    """``cv2.resize`` of one plane into ``out_dtype`` (a float plane in [0, 1] is scaled and rounded)."""
    r = cv2.resize(np.ascontiguousarray(plane), size, interpolation=interp)
    if r.dtype == out_dtype:
        return r
    return np.round(np.clip(r, 0.0, 1.0) * np.iinfo(out_dtype).max).astype(out_dtype)


def _check_tta(backend: Backend) -> None:
    """TTA turns windows by 90 degrees: a fixed-shape model must take square windows.

    Raises:
        SrError: a fixed, non-square input shape.
    """
    mx = backend.max_shape
    if backend.window_shapes == "fixed" and mx is not None and mx[2] != mx[3]:
        raise SrError(f"--tta turns tiles by 90 degrees, and this model takes only {mx[2]}x{mx[3]} windows",
                      "Use a model with dynamic or square input shapes, or drop --tta.")


def _upstream_order(model_path: object, tile: object, tile_pad: int, pre_pad: int,
                    scale: int | None) -> tuple[object, object, int | None]:
    """``Upscaler(4, "x.onnx")`` as ``RealESRGANer(scale, model_path)``: ``(model_path, tile, scale)``.

    Raises:
        TypeError: upstream's order with more positional arguments than its two, or a scale given twice.
    """
    if not isinstance(model_path, int) or isinstance(model_path, bool):
        return model_path, tile, scale
    if scale is not None:
        raise TypeError("Upscaler(scale, model_path): the scale was given twice")
    if tile_pad != 10 or pre_pad != 10:
        raise TypeError("Upscaler(scale, model_path, ...) in upstream's order takes two positional arguments; "
                        "pass the rest as keywords (tile=, tile_pad=, pre_pad=, half=)")
    path = None if isinstance(tile, int) and not isinstance(tile, bool) and tile == 0 else tile
    return path, 0, model_path


def _gray(f: ModelFn | None) -> ModelFn | None:
    """A model function whose output is the gray value of ``f``'s RGB output (None stays None)."""
    if f is None:
        return None

    def g(x: np.ndarray) -> np.ndarray:
        # clamp then RGB -> gray in float, as upstream does before quantising
        y = np.clip(f(x), 0.0, 1.0)
        return (_GRAY[0] * y[:, 0:1] + _GRAY[1] * y[:, 1:2] + _GRAY[2] * y[:, 2:3]).astype(np.float32)

    return g


def _as_rgb(plane: np.ndarray) -> np.ndarray:
    """An ``(H, W)`` plane as an ``(H, W, 3)`` view."""
    return np.broadcast_to(plane[..., None], plane.shape + (3,))


def _resize(out: np.ndarray, mode: Mode, scale: int, outscale: float | None) -> np.ndarray:
    """Lanczos from the model's scale to ``outscale`` (unchanged when None or equal).

    Raises:
        SrError: a non-positive ``outscale``.
    """
    if outscale is None or float(outscale) == float(scale):
        return out
    if outscale <= 0:
        raise SrError(f"bad outscale {outscale}", "Use a positive scale.")
    h, w = out.shape[0] // scale, out.shape[1] // scale
    size = (max(1, int(w * outscale)), max(1, int(h * outscale)))
    out = cv2.resize(out, size, interpolation=cv2.INTER_LANCZOS4)
    if mode == "LA" and out.ndim == 2:
        out = out[..., None]
    return out


def open_model(model_path: str | Path | None = None, **kwargs: object) -> Upscaler:
    """Open a model for upscaling: ``Upscaler(model_path, **kwargs)`` (None: the shipped default model)."""
    return Upscaler(model_path, **kwargs)  # type: ignore[arg-type]


def upscale(img: np.ndarray | str | Path, model_path: str | Path | None = None, outscale: float | None = None,
            **kwargs: object) -> np.ndarray:
    """One-shot: upscale an OpenCV array or an image file and return the OpenCV array.

    Args:
        img: an OpenCV array (see :meth:`Upscaler.enhance`) or a path to an image file.
        model_path: exported model (None: the shipped default).
        outscale: final scale (None: the model's).
        **kwargs: :class:`Upscaler` options (``tile``, ``tile_pad``, ``backend``, ...).
    """
    pixels = read_image(img).pixels if isinstance(img, (str, Path)) else img
    with open_model(model_path, **kwargs) as up:
        return up.enhance(pixels, outscale)[0]
