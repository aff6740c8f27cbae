"""ONNX models without sr-deploy metadata, and graphs that are not super-resolution models at all.

sr-export writes :class:`~sr_runtime.info.ModelInfo` into every ONNX it makes. A plain export of the same network
(upstream's ``scripts/pytorch2onnx.py``: ``torch.onnx.export`` of the net, fixed or dynamic shapes, no metadata)
carries none; sr-run then finds what it needs by looking at the graph's input and output and running it once:

- channels, element type, and fixed or dynamic shapes come from the graph (:class:`TensorSpec`);
- the scale comes from one small probe run (``1 x C x 16 x 24``, or the fixed input shape): the output must be
  ``C x 16s x 24s`` for one integer ``s >= 1``;
- the size multiple follows upstream ``RealESRGANer``'s mod-padding (4 for x1, 2 for x2, else 1) and the value
  range is upstream's [0, 1] (every official network);
- the receptive radius is unknown (0) at run time; :func:`measure_radius` measures it from the response to
  a one-pixel change, for ``sr-run --info`` and ``sr-export --metadata``.

:func:`check_graph` refuses, before any image is read, what cannot be an image-to-image model: a classifier
(``N x 1000`` output), other channel counts, or metadata whose scale the graph contradicts (a forged file).
Everything here takes plain callables and specs, so it serves every backend; ONNX Runtime is the one that uses
it today (:class:`sr_runtime.backends.ort.OrtBackend`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sr_runtime.errors import ModelFileError, SrError
from sr_runtime.info import PREFIX, ModelInfo

UNKNOWN_ARCH = "unknown"
"""``ModelInfo.arch`` of a model whose architecture is not recorded (a probed ONNX)."""
PROBE_SIZES: tuple[tuple[int, int], ...] = ((16, 24), (64, 64))
"""Probe input sizes for dynamic shapes, tried in order (multiples of 4, so pixel-unshuffle models run)."""
SR_HINT = "sr-run runs image super-resolution models: N x 3 x H x W in, N x 3 x sH x sW out."

Run = Callable[[np.ndarray], np.ndarray]
"""A model function: one float array ``(N, C, h, w)`` in, the model's output out."""


class NotSuperResolution(ModelFileError):
    """The model file is readable but is no image super-resolution model (or its metadata lies)."""


@dataclass(frozen=True)
class TensorSpec:
    """An input or output of a graph as the runtime sees it."""

    name: str
    """Tensor name."""
    shape: tuple[int | None, ...]
    """Dimensions; None where the dimension is dynamic (symbolic)."""
    dtype: str
    """``float32``, ``float16`` or the engine's own type text for anything else (``tensor(int64)``)."""

    @classmethod
    def from_ort(cls, arg: Any) -> TensorSpec:
        """From an ``onnxruntime.NodeArg`` (``name``, ``shape`` with ints or strings/None, ``type`` text)."""
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
        kind = {"tensor(float)": "float32", "tensor(float16)": "float16"}.get(str(arg.type), str(arg.type))
        return cls(str(arg.name), shape, kind)

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        """``(H, W)`` when both are fixed in a rank-4 tensor, else None."""
        if len(self.shape) == 4 and self.shape[2] is not None and self.shape[3] is not None:
            return int(self.shape[2]), int(self.shape[3])
        return None

    def text(self) -> str:
        """``[N, 3, H, W]`` with the symbolic dimensions named by letter."""
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


def has_metadata(props: Mapping[str, str]) -> bool:
    """True when ONNX ``metadata_props`` hold sr-deploy keys."""
    return any(k.startswith(PREFIX) for k in props)


def size_multiple_for(scale: int) -> int:
    """Upstream ``RealESRGANer``'s mod-padding: 4 for x1, 2 for x2, else 1 (pixel-unshuffle RRDBNet)."""
    return {1: 4, 2: 2}.get(int(scale), 1)


def check_graph(inp: TensorSpec, out: TensorSpec, info: ModelInfo | None, path: str | Path | None) -> None:
    """Refuse, from the graph's declared input and output alone, a model that is no image SR model.

    Args:
        inp, out: the graph's image input and output.
        info: the metadata the file carries (None: a foreign model); its channels and scale must agree with
            whatever the graph fixes.
        path: the model file, for the message.

    Raises:
        NotSuperResolution: wrong rank (a classifier's ``N x 1000`` output), non-float input, channel counts
            other than the metadata's (or than 3 without metadata), or a fixed output size that contradicts
            the scale.
    """
    if len(inp.shape) != 4:
        raise NotSuperResolution(f"not an image super-resolution model: its input {inp.name!r} has shape "
                                 f"{inp.text()}, not N x C x H x W", SR_HINT, path)
    if len(out.shape) != 4:
        guess = " (a classifier?)" if len(out.shape) == 2 else ""
        raise NotSuperResolution(f"not an image super-resolution model: its output {out.name!r} has shape "
                                 f"{out.text()}{guess}, not an N x C x H x W image", SR_HINT, path)
    if inp.dtype not in ("float32", "float16"):
        raise NotSuperResolution(f"the model's input {inp.name!r} is {inp.dtype}, not a float image", SR_HINT, path)
    want_in = info.in_channels if info is not None else 3
    want_out = info.out_channels if info is not None else want_in
    for spec, want, what in ((inp, want_in, "input"), (out, want_out, "output")):
        if spec.shape[1] is not None and spec.shape[1] != want:
            raise NotSuperResolution(f"the model's {what} has {spec.shape[1]} channels, expected {want}"
                                     + (" (its metadata says so)" if info is not None else ""), SR_HINT, path)
    if info is None:
        return
    for axis, side in ((2, "height"), (3, "width")):
        i, o = inp.shape[axis], out.shape[axis]
        if i is not None and o is not None and o != i * info.scale:
            raise NotSuperResolution(
                f"the metadata says x{info.scale}, but the graph maps an input {side} of {i} to {o}",
                "The metadata does not belong to this graph; re-export the model with sr-export.", path)


def check_scale(run: Run, inp: TensorSpec, info: ModelInfo, path: str | Path | None) -> None:
    """Run the model once on a tiny input and refuse it when the output contradicts the metadata's scale or
    channels (a forged file whose graph has dynamic shapes, which :func:`check_graph` cannot see).

    The input is ``8 x 8`` (a multiple of every size multiple), or the graph's fixed shape: a few milliseconds
    for the networks sr-deploy exports, about 0.1 s for a 23-block RRDBNet on two CPU cores.

    Raises:
        NotSuperResolution: the output is not ``C_out x 8s x 8s``, or the model does not run on the input.
    """
    m = max(1, info.size_multiple)
    hw = inp.fixed_hw or (-(-8 // m) * m,) * 2
    x = _probe_input(TensorSpec(inp.name, (1, info.in_channels, None, None), inp.dtype), hw)
    try:
        y = np.asarray(run(x))
    except Exception as exc:  # noqa: BLE001 - engines raise their own classes
        text = exc.message if isinstance(exc, SrError) else " ".join(str(exc).split())[:200]
        raise NotSuperResolution(f"the model does not run on a {'x'.join(map(str, x.shape))} input ({text})",
                                 "Re-export it with sr-export.", path) from None
    want = (1, info.out_channels, hw[0] * info.scale, hw[1] * info.scale)
    if tuple(y.shape) != want:
        raise NotSuperResolution(
            f"the metadata says x{info.scale}, but a {'x'.join(map(str, x.shape))} input gave "
            f"{'x'.join(map(str, y.shape))}",
            "The metadata does not belong to this graph; re-export the model with sr-export.", path)


def _probe_input(inp: TensorSpec, hw: tuple[int, int]) -> np.ndarray:
    n = inp.shape[0] or 1
    c = inp.shape[1] or 3
    rng = np.random.default_rng(0)
    x = rng.random((n, c, hw[0], hw[1]), dtype=np.float32)
    return x.astype(np.float16) if inp.dtype == "float16" else x


def _run_probe(run: Run, inp: TensorSpec, path: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Run the model on a probe input (the fixed shape, else :data:`PROBE_SIZES` in turn)."""
    sizes = (inp.fixed_hw,) if inp.fixed_hw is not None else PROBE_SIZES
    last = ""
    for hw in sizes:
        x = _probe_input(inp, hw)  # type: ignore[arg-type]
        try:
            return x, np.asarray(run(x))
        except SrError as exc:
            last = exc.message
        except Exception as exc:  # noqa: BLE001 - engines raise their own classes
            last = " ".join(str(exc).split())[:200]
    shape = "x".join(map(str, _probe_input(inp, sizes[-1]).shape))  # type: ignore[arg-type]
    raise NotSuperResolution(f"the model does not run on a {shape} probe input ({last})",
                             "Export it with dynamic height and width, or with sr-export from its checkpoint.", path)


def scale_from(x_shape: tuple[int, ...], y_shape: tuple[int, ...], path: str | Path | None) -> int:
    """The integer scale that maps a probe input shape to its output shape.

    Raises:
        NotSuperResolution: another rank or channel count, or no common integer scale >= 1.
    """
    n, c, h, w = x_shape
    txt = f"a {'x'.join(map(str, x_shape))} input gave {'x'.join(map(str, y_shape))}"
    if len(y_shape) != 4 or y_shape[0] != n or y_shape[1] != c:
        raise NotSuperResolution(f"not an image super-resolution model: {txt}", SR_HINT, path)
    oh, ow = y_shape[2], y_shape[3]
    if oh < h or oh % h or ow % w or oh // h != ow // w:
        raise NotSuperResolution(f"not an upscaling model: {txt} (no integer scale >= 1)", SR_HINT, path)
    return oh // h


def probe_model(run: Run, inp: TensorSpec, out: TensorSpec, path: str | Path | None,
                scale: int | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of a model without metadata, from its graph and one probe run.

    Args:
        run: the model function (float32 or float16 NCHW in, as ``inp`` declares).
        inp, out: the graph's input and output.
        path: the model file (for messages and the name).
        scale: the scale the caller expects (``--scale``); a different measured scale is an error.

    Returns:
        Scale, channels, io dtype, size multiple (upstream's mod-padding), range [0, 1], ``arch`` ``unknown``
        and receptive radius 0 (unknown); ``extra`` records ``probed`` and a fixed input shape.

    Raises:
        NotSuperResolution: see :func:`check_graph`; the probe fails, gives a non-finite output or no integer
            scale; a fixed input that is not square.
        SrError: the measured scale differs from ``scale``.
    """
    check_graph(inp, out, None, path)
    fixed = inp.fixed_hw
    if fixed is not None and fixed[0] != fixed[1]:
        raise NotSuperResolution(f"the model takes only {fixed[0]}x{fixed[1]} inputs (fixed, not square)",
                                 "Export it with dynamic height and width (dynamic_axes) or a square input.", path)
    x, y = _run_probe(run, inp, path)
    s = scale_from(x.shape, y.shape, path)
    if not np.isfinite(y).all():
        raise NotSuperResolution("the model gives NaN/Inf on a probe input", "The model is broken.", path)
    if scale is not None and int(scale) != s:
        raise SrError(f"--scale {scale} was given, but the model upscales x{s}",
                      f"Drop --scale or pass --scale {s}.", path)
    extra: dict[str, Any] = {"probed": True}
    if fixed is not None:
        extra["fixed_input"] = list(x.shape)
    return ModelInfo(arch=UNKNOWN_ARCH, scale=s, in_channels=x.shape[1], out_channels=y.shape[1],
                     size_multiple=size_multiple_for(s), io_dtype=inp.dtype,  # type: ignore[arg-type]
                     precision=inp.dtype, input_name=inp.name, output_name=out.name,  # type: ignore[arg-type]
                     name=Path(path).stem if path else "", extra=extra)


def _changed_radius(y0: np.ndarray, y1: np.ndarray, center: int, scale: int) -> tuple[int, bool]:
    """(largest input distance from ``center`` of a changed output pixel, whether the change reached the edge)."""
    changed = np.argwhere(np.any(y0 != y1, axis=(0, 1)))
    if changed.size == 0:
        return 0, False
    ys, xs = changed[:, 0] // scale, changed[:, 1] // scale
    side_out = y0.shape[2]
    edge = bool(changed.min() == 0 or changed[:, 0].max() == side_out - 1 or changed[:, 1].max() == y0.shape[3] - 1)
    return int(max(np.abs(ys - center).max(), np.abs(xs - center).max())), edge


def measure_radius(run: Run, info: ModelInfo, sides: tuple[int, ...] = (40, 96)) -> int | None:
    """The receptive radius seen from a one-pixel change: how far from it the output changes at all.

    The model runs twice per probe side on a seeded random image, once with its centre pixel changed; the
    farthest changed output pixel, in input pixels, is the radius; for a pixel-unshuffle model (size multiple
    ``m`` > 1) ``m - 1`` is added, since one pixel shows the reach of one position in its ``m`` x ``m`` block.
    A change that reaches the probe's edge means the radius is larger than the probe: the next side is tried,
    then None is returned.

    Args:
        run: the model function (float32 NCHW in [0, 1], e.g. a backend's ``run``).
        info: scale, channels, size multiple and a fixed input shape (``extra["fixed_input"]``) if any.
        sides: probe sides to try, smallest first (rounded up to the size multiple).

    Returns:
        The radius in input pixels, or None when it exceeds the largest probe.
    """
    fixed = (info.extra or {}).get("fixed_input")
    m = max(1, info.size_multiple)
    for side in ([int(fixed[2])] if fixed else [-(-s // m) * m for s in sides]):
        rng = np.random.default_rng(1)
        x = rng.random((1, info.in_channels, side, side), dtype=np.float32)
        c = side // 2
        x2 = x.copy()
        x2[:, :, c, c] = 1.0 - x2[:, :, c, c]
        r, edge = _changed_radius(np.asarray(run(x)), np.asarray(run(x2)), c, info.scale)
        if not edge:
            return r + m - 1
    return None
