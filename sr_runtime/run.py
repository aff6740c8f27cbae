"""sr-run as a library call: ``upscale_files(IN, OUT, RunOptions(...))`` upscales a file, a folder or a glob.

The CLI (:mod:`sr_runtime.cli`) only turns flags into a :class:`RunOptions`; a Python user gets the same
behaviour without click: output naming, ``--fp32`` switching to the fp32 sibling of an fp16 model, notes on
stderr, one error line per bad file, Ctrl-C handling, a :class:`~sr_runtime.batch.BatchResult` back::

    from sr_runtime.run import RunOptions, upscale_files

    result = upscale_files("photos/", "out/", RunOptions(model="model.onnx", tile=256, quiet=True))
    print(result.summary())
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sr_runtime.batch import (
    BatchOptions,
    BatchResult,
    Job,
    check_outputs,
    collect_inputs,
    default_writers,
    note_writer,
    plan_jobs,
    run_batch,
)
from sr_runtime.errors import SrError

if TYPE_CHECKING:
    from sr_runtime.api import Upscaler
    from sr_runtime.video.pipeline import VideoOptions


@dataclass(frozen=True)
class RunOptions:
    """Everything ``sr-run`` takes besides IN and OUT (one field per flag; the defaults are the CLI's)."""

    model: str | Path | None = None
    """Exported model (``.onnx``, ``.engine``/``.plan``) or a checkpoint (``.pth``, ``.safetensors``: exported on
    first use, :mod:`sr_runtime.pth_model`); a folder with ``model_name``: where to look it up (ncnn's ``-m``);
    None: ``model_name``, else the shipped default model."""
    model_name: str | None = None
    """A model looked up by name in the models folders (``-n``, :mod:`sr_runtime.model_names`)."""
    models_dir: str | Path | None = None
    """The first models folder ``model_name`` is looked up in (``--models-dir``)."""
    scale: int | None = None
    """The model's scale, for an ONNX without metadata whose scale a probe run cannot find (``--scale``)."""
    tta: bool = False
    """Test-time augmentation: the mean over the 8 flips/rotations (ncnn's ``-x``; 8 times the work)."""
    outscale: float | None = None
    """Final scale; another value than the model's is a Lanczos resize afterwards. None: the model's."""
    tile: int | Literal["auto"] = "auto"
    """Tile size in input pixels, 0 for the whole image, or ``"auto"`` (largest that fits ``max_memory``)."""
    tile_pad: int | None = None
    """Context pixels around each tile (exact when >= the model's receptive radius). None: the radius where it
    is cheap (SRVGGNetCompact), else upstream's 10 (:func:`sr_runtime.tiling.default_pad`)."""
    pre_pad: int = 0
    """Reflect padding at the bottom/right edges, cropped afterwards."""
    batch: int = 4
    """Tiles per model call."""
    backend: str = "auto"
    """``auto``, ``ort``, ``ort-cuda``, ``trt`` or ``triton`` (then ``model`` names the model on the server)."""
    triton_url: str | None = None
    """Triton's HTTP endpoint for ``backend="triton"`` (None: ``localhost:8000``); given alone it selects it."""
    fp16: bool | None = None
    """None: the model file's own precision; False with an fp16 ``.onnx``: use its fp32 sibling ``x.onnx``."""
    threads: int | None = None
    """CPU threads for ONNX Runtime."""
    alpha_upsampler: str = "model"
    """How the alpha channel is upscaled: ``model`` (= ``realesrgan``), ``bicubic``, ``lanczos`` or ``linear``."""
    ext: str = "auto"
    """Output format; ``auto`` keeps the input's (png for images with alpha)."""
    background: str = "white"
    """Colour under transparent pixels when a jpg/bmp output cannot keep alpha: a name (white, black, gray),
    ``#rrggbb`` or ``r,g,b``."""
    suffix: str = "out"
    """Appended to output names in a folder (``""``: none)."""
    skip_existing: bool = False
    """Skip inputs whose output exists."""
    overwrite: bool = False
    """Replace an existing OUT file (OUT named as a file); without it an existing one is refused up front."""
    max_pixels: int | None = None
    """Refuse inputs with more pixels than this (a per-file error)."""
    max_memory: int | str | None = None
    """Memory budget for ``tile="auto"`` (bytes or text such as ``"4G"``). None: 1/4 of the free RAM."""
    stream: str = "auto"
    """Write png/tif outputs band by band as tiles finish: ``auto`` (big outputs, or ones that do not fit
    memory whole), ``on`` (whenever the options allow), ``off`` (:mod:`sr_runtime.bigimage`)."""
    quiet: bool = False
    """No progress bars and no notes."""
    debug: bool = False
    """Print the traceback of each failed file before its error line (other files still run)."""
    codec: str = "libx264"
    """Video encoder (videos only)."""
    crf: int | None = None
    """Video constant rate factor; None: 18 where the codec takes one."""
    preset: str | None = None
    """Video encoder preset (e.g. ``slow``); None: the encoder's default."""
    pix_fmt: str | None = None
    """Video pixel format; None: the input's when the codec can, else yuv420p (10-bit kept where it can)."""

    def video_options(self) -> VideoOptions:
        """The video part, for :func:`sr_runtime.video.pipeline.upscale_video`."""
        from sr_runtime.video.encode import EncodeOptions
        from sr_runtime.video.pipeline import VideoOptions

        return VideoOptions(EncodeOptions(self.codec, self.crf, self.preset, self.pix_fmt), outscale=self.outscale,
                            quiet=self.quiet, max_pixels=self.max_pixels)

    def check(self) -> None:
        """Refuse option values that would only fail once per file after the model ran.

        Raises:
            SrError: a non-positive or non-finite ``outscale``.
        """
        if self.outscale is not None and not (math.isfinite(self.outscale) and self.outscale > 0):
            raise SrError(f"bad --outscale {self.outscale:g}",
                          "Use a positive scale such as 2 or 3.5 (omit it for the model's own scale).")
        if self.scale is not None and self.scale < 1:
            raise SrError(f"bad --scale {self.scale}", "Give the model's own scale: 1, 2, 3, 4 or 8.")
        parse_color(self.background)

    def batch_options(self) -> BatchOptions:
        """The file-level part, for :func:`sr_runtime.batch.run_batch`."""
        return BatchOptions(outscale=self.outscale, alpha_upsampler=self.alpha_upsampler,
                            skip_existing=self.skip_existing, max_pixels=self.max_pixels, quiet=self.quiet,
                            writers=default_writers(), debug=self.debug, background=parse_color(self.background))


COLORS = {"white": (255, 255, 255), "black": (0, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128)}
"""Colour names ``--background`` takes (besides ``#rrggbb`` and ``r,g,b``)."""


def parse_color(text: str) -> tuple[int, int, int]:
    """``white``, ``#ff8000``, ``#f80`` or ``255,128,0`` -> ``(r, g, b)`` in 0..255.

    Raises:
        SrError: anything else.
    """
    t = text.strip().lower()
    if t in COLORS:
        return COLORS[t]
    try:
        if t.startswith("#") and len(t) in (4, 7):
            digits = t[1:] if len(t) == 7 else "".join(c * 2 for c in t[1:])
            return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
        parts = [int(v) for v in t.split(",")]
        if len(parts) == 3 and all(0 <= v <= 255 for v in parts):
            return parts[0], parts[1], parts[2]
    except ValueError:
        pass
    raise SrError(f"bad --background '{text}'", f"Use {', '.join(COLORS)}, #rrggbb or r,g,b (0-255).")


def upscale_files(inp: str | Path, out: str | Path, options: RunOptions | None = None) -> BatchResult:
    """Upscale ``inp`` (an image, a folder or a glob) into ``out`` (a folder, or a file name for one image).

    Everything that does not need the model is checked before it loads: the options, the inputs, OUT against
    the number of inputs, an existing OUT file (refused unless ``overwrite``) and a writable output folder.

    Raises:
        SrError: nothing to do (no inputs, clashing outputs), a bad option or output path, or the model cannot
            be used; errors of single files are reported in the result instead (``failed``, ``errors``).
    """
    opts = options or RunOptions()
    jobs = prepare_jobs(inp, out, opts)
    note = note_writer(opts.quiet)
    path = model_file(opts, note)
    with open_upscaler(path, opts, note) as up:
        if not opts.quiet:
            demo = "" if opts.model or opts.model_name else " (the small shipped demo model; -m for an official one)"
            note(f"{path.name}: {up.info.arch} x{up.scale} on {up.provider}{demo}")
            radius = up.info.receptive_radius
            if isinstance(opts.tile, int) and opts.tile > 0 and up.tile_pad < radius:
                note(f"--tile-pad {up.tile_pad} is below the model's receptive radius {radius}: "
                     "tile seams are possible")
        return _run_jobs(jobs, up, opts)


def prepare_jobs(inp: str | Path, out: str | Path, opts: RunOptions) -> list[Job]:
    """The jobs of a run, checked before any model loads: the options, the inputs, OUT against the number of
    inputs and an existing OUT file; temp files that a killed run left for these outputs are removed.

    Raises:
        SrError: a bad option, no inputs, clashing outputs or an output path that cannot be written.
    """
    opts.check()
    jobs = plan_jobs(collect_inputs(inp), out, suffix=opts.suffix, ext=opts.ext)
    check_outputs(jobs, out, overwrite=opts.overwrite, skip_existing=opts.skip_existing)
    clean_stale_outputs(jobs)
    return jobs


def open_upscaler(path: Path, opts: RunOptions, note: Callable[[str], None] | None = None) -> Upscaler:
    """The :class:`~sr_runtime.api.Upscaler` that ``sr-run`` runs ``path`` with (tile, pad, batch, backend,
    threads, precision and memory budget from ``opts``).

    Raises:
        ModelFileError, MissingExtraError, SrError: see :func:`sr_runtime.backends.open_backend`.
    """
    from sr_runtime.api import Upscaler

    if opts.backend == "triton" or (opts.triton_url and opts.backend == "auto"):
        from sr_runtime.backends.triton import TritonBackend

        model: Path | TritonBackend = TritonBackend(opts.triton_url, triton_model_name(opts.model))
    else:
        model = path
    return Upscaler(model, opts.tile, opts.tile_pad, opts.pre_pad, batch=opts.batch, backend=opts.backend,
                    threads=opts.threads, fp16=bool(opts.fp16), max_memory=opts.max_memory, notify=note,
                    scale=opts.scale, tta=opts.tta)


def triton_model_name(model: str | Path | None) -> str:
    """The model's name on a Triton server: ``--model NAME``, or the stem of a model file named instead.

    Raises:
        SrError: no ``--model``.
    """
    if not model:
        raise SrError("--backend triton needs the model's name on the server",
                      "Pass it with -m NAME (sr-export --triton names it after the checkpoint).")
    p = Path(model)
    return p.stem if p.suffix.lower() in (".onnx", ".plan", ".engine") else str(model)


def _run_jobs(jobs: list[Job], up: Upscaler, opts: RunOptions) -> BatchResult:
    """Images through :func:`run_batch`, then videos through :func:`~sr_runtime.video.pipeline.run_videos`."""
    images = [j for j in jobs if not j.video]
    videos = [j for j in jobs if j.video]
    result = None
    if images or not videos:
        from sr_runtime.bigimage import ImagePlanner

        planner = ImagePlanner(up, outscale=opts.outscale, alpha_upsampler=opts.alpha_upsampler,
                               max_pixels=opts.max_pixels, stream=opts.stream)  # type: ignore[arg-type]
        result = run_batch(images, up.enhance, opts.batch_options(), planner=planner)
    if videos and not (result and result.interrupted):
        from sr_runtime.video.pipeline import run_videos

        done = run_videos(videos, up, opts.video_options(), skip_existing=opts.skip_existing, debug=opts.debug)
        result = done if result is None else result + done
    return result


def clean_stale_outputs(jobs: list[Job]) -> None:
    """Remove temp files that a killed run left for these outputs (``.<name>.<random>.tmp``, unlocked)."""
    from sr_runtime.fileio import clean_stale

    names: dict[Path, set[str]] = {}
    for job in jobs:
        names.setdefault(job.dst.parent, set()).update({job.dst.name, job.dst.with_suffix(".png").name})
    for folder, these in names.items():
        clean_stale(folder, tuple(sorted(these)))


def model_file(opts: RunOptions, note: Callable[[str], None]) -> Path:
    """The model file to open: ``opts.model``, the model named ``opts.model_name`` or the shipped default (a
    checkpoint is exported once, :mod:`sr_runtime.pth_model`); ``fp16=False`` with an fp16 ``.onnx`` switches to its fp32 sibling (precision otherwise comes from the
    file, with a note when asked otherwise).

    Raises:
        SrError: ``fp16=False`` for an fp16 model without an fp32 sibling; no default model is shipped; no model
            of that name; a folder as the model without a name.
    """
    from sr_runtime.api import _fp32_sibling
    from sr_runtime.info import MODEL_SUFFIXES_TORCH, ModelInfo, read_onnx_metadata
    from sr_runtime.probe import has_metadata

    path = _named_model(opts)
    if path.suffix.lower() in MODEL_SUFFIXES_TORCH:  # exported here once, so --ray's actors get the ONNX
        from sr_runtime.pth_model import exported_onnx

        return exported_onnx(path, note)
    if opts.fp16 is None or path.suffix.lower() != ".onnx" or not path.is_file():
        return path
    props = read_onnx_metadata(path)
    if not has_metadata(props):
        return path  # a foreign ONNX: its precision is whatever its graph computes in
    precision = ModelInfo.from_metadata_props(props, path).precision
    if opts.fp16 is False and precision == "float16":
        sibling = _fp32_sibling(path)
        if sibling is None:
            raise SrError("--fp32 was asked but the model is fp16 and has no fp32 sibling (x.onnx next to "
                          "x_fp16.onnx)", "sr-export --fp16 writes only the fp16 file: export the fp32 one with "
                          "sr-export CHECKPOINT (without --fp16) and pass it with --model, or drop --fp32.", path)
        note(f"--fp32: using {sibling}")
        return sibling
    if opts.fp16 and precision == "float32":
        note("--fp16: this model is fp32 and precision comes from the file; export an fp16 one with sr-export --fp16")
    return path


def _named_model(opts: RunOptions) -> Path:
    """``opts.model``, or the model ``opts.model_name`` looked up in the models folders (``opts.model`` may be
    the first folder, as ncnn's ``-m DIR -n NAME``), or the shipped default.

    Raises:
        SrError, ModelFileError: a file and a name both given, a folder without a name, no such name.
    """
    from sr_runtime.api import default_model_path
    from sr_runtime.errors import ModelFileError
    from sr_runtime.model_names import find_model

    model = Path(opts.model) if opts.model else None
    if opts.model_name:
        if model is not None and not model.is_dir():
            raise SrError("--model FILE and -n NAME both choose a model",
                          "Give one of them (with -n, --models-dir DIR or -m DIR says where to look).")
        return find_model(opts.model_name, model or opts.models_dir)
    if model is not None and model.is_dir():
        raise ModelFileError("is a folder, not a model file",
                             "Give a model file, or add -n NAME to take that model from this folder.", model)
    return model or default_model_path()
