"""The staged export as a library call: checkpoint -> checked ONNX (fp32/fp16), TensorRT engine, Triton entry.

``sr-export`` is a thin CLI around :func:`export`; a Python user gets the same files and the same parity check::

    from sr_export import ExportOptions, export

    result = export("realesr-animevideov3.pth", ExportOptions(output="out/", fp16=True))
    print(result.onnx, [r.line() for r in result.parity])

The stages, in order (each a small function or method below):

1. :func:`plan` -- options, paths, TensorRT flavour and GPU are checked; nothing slow, nothing written.
2. :func:`load_model` -- the checkpoint, blended with a second one when ``dni`` is given.
3. ``onnx`` -- fp32 ONNX, converted to fp16 when asked, into a hidden temp folder next to the output; or ``int8``
   -- the model quantized on calibration images into an int8 QDQ ONNX (:mod:`sr_export.int8`).
4. ``check`` -- parity of the ONNX with PyTorch (:class:`~sr_export.errors.ParityError`: nothing is written); for
   int8, its quality against the float model on held-out calibration crops (``min_psnr``).
5. ``engine`` -- TensorRT engine and sidecar from the checked ONNX, then its parity where a GPU can run it.
6. ``place`` -- the Triton entry (atomic by itself), then the ONNX, then the engine before its sidecar.

The temp folder is removed in every case, so a failure (bad input, parity, Ctrl-C) never leaves a partial or
unchecked file. Importing this module loads neither torch nor onnx; :func:`export` does.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sr_export.errors import ParityError
from sr_runtime import signals
from sr_runtime.errors import MissingExtraError, ModelFileError, SrError
from sr_runtime.fileio import clean_stale, temp_folder

if TYPE_CHECKING:
    from sr_runtime.compare import ParityReport
    from sr_runtime.info import ModelInfo

Say = Callable[[str], None]
"""Receives one progress line at a time (``click.echo`` in the CLI; a logger by default)."""

LOG = logging.getLogger("sr_export")
STAGING_PREFIX = ".sr-export-"
"""The hidden staging folder beside the output (locked while in use; a killed export's is removed by the next)."""


@dataclass(frozen=True)
class ExportOptions:
    """What to write and how (the ``sr-export`` flags; the defaults are the CLI's).

    Attributes:
        output: the ``.onnx`` file or a folder (``None``: ``./<model>[_fp16].onnx``); the engine goes next to it.
        dni: a second checkpoint of the same architecture to blend with (deep network interpolation).
        dni_weight: weight of the model in the blend, ``w*model + (1-w)*dni`` (``None``: 0.5).
        fp16: write an fp16 ONNX (weights and compute fp16, float32 I/O); the engine is fp16 too.
        trt: also build a TensorRT engine with its JSON sidecar.
        trt_flavor: ``auto``, ``tensorrt`` (builds on the target GPU) or ``rtx`` (builds without a GPU).
        tile: engine profile, largest tile in input pixels.
        tile_pad: engine profile, context pixels on each side of a tile.
        max_batch: engine profile and Triton ``max_batch_size``, most tiles per call.
        workspace_mib: TensorRT builder workspace limit.
        opset: ONNX opset (``None``: the exporter's default).
        exporter: ``torchscript`` or ``dynamo`` (``None``: :data:`sr_export.onnx.DEFAULT_EXPORTER`).
        triton_repo: also write a Triton model-repository entry ``triton_repo/<name>/``.
        check: compare every file with PyTorch before it is written.
        int8: write an int8 QDQ ONNX quantized on the images of ``calib`` (:mod:`sr_export.int8`).
        calib: folder of calibration images (model inputs, like the images to be upscaled); needs ``int8``.
        min_psnr: int8 quality gate, dB PSNR against the float model on held-out calibration crops.
    """

    output: str | Path | None = None
    dni: str | Path | None = None
    dni_weight: float | None = None
    fp16: bool = False
    trt: bool = False
    trt_flavor: Literal["auto", "tensorrt", "rtx"] = "auto"
    tile: int = 256
    tile_pad: int = 10
    max_batch: int = 4
    workspace_mib: int | None = None
    opset: int | None = None
    exporter: Literal["torchscript", "dynamo"] | None = None
    triton_repo: str | Path | None = None
    check: bool = True
    int8: bool = False
    calib: str | Path | None = None
    min_psnr: float = 40.0


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and measured.

    Attributes:
        onnx: the ONNX file.
        info: the metadata stored in it (and in the engine's sidecar).
        engine: the TensorRT engine, if one was built.
        sidecar: the engine's JSON sidecar, if an engine was built.
        triton_entry: the Triton entry folder, if one was written.
        written: every file written, in the order the CLI lists them.
        parity: every parity report (the ONNX's, then the engine's); empty with ``check=False``.
        engine_checked: whether the engine was run and compared (it needs a CUDA device).
    """

    onnx: Path
    info: ModelInfo
    engine: Path | None = None
    sidecar: Path | None = None
    triton_entry: Path | None = None
    written: tuple[Path, ...] = ()
    parity: tuple[ParityReport, ...] = ()
    engine_checked: bool = False


@dataclass(frozen=True)
class Target:
    """The checked plan of an export: what is read and where it goes (see :func:`plan`)."""

    model: Path
    """The checkpoint."""
    onnx: Path
    """The ONNX to write; the engine is ``onnx.with_suffix('.engine')``."""
    flavor: Any = None
    """The TensorRT flavour (:class:`sr_runtime.backends.trt.TrtFlavor`), or None without ``trt``."""


@dataclass(frozen=True)
class LoadedModel:
    """A generator ready for export (see :func:`load_model`)."""

    model: Any
    """The ``nn.Module`` (eval mode, CPU)."""
    spec: Any
    """Its :class:`~sr_train.archs.registry.ArchSpec`."""
    hparams: dict[str, Any]
    """Its hyperparameters."""
    fields: dict[str, Any] = field(default_factory=dict)
    """Extra ModelInfo fields: ``source_sha256``, ``name`` and, for a blend, ``dni``."""


# --------------------------------------------------------------------------------------------- 1. plan
def check_folder(folder: Path, what: str, path: Path, *, create: bool = False) -> None:
    """Raise a one-line error unless ``folder`` exists, is a folder and is writable; with ``create`` a missing
    folder is fine when the nearest existing parent is a writable folder (the export creates it)."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise SrError(f"{what} folder cannot be created: {parent} is a file, not a folder",
                              "Choose another output path.", path)
            break
    else:
        parent = Path.cwd()
    if not folder.exists() and not create:
        raise SrError(f"{what} folder {folder} does not exist", "Create it first or choose another path.", path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SrError(f"{what} folder {parent} is not writable", "Choose a folder you can write to.", path)


def _precision_suffix(options: ExportOptions) -> str:
    return "_fp16" if options.fp16 else "_int8" if options.int8 else ""


def output_path(model: Path, out: str | Path | None, suffix: str = "") -> Path:
    """The ONNX to write: ``out`` itself, ``out/<model><suffix>.onnx`` for a folder, or that name in the cwd."""
    stem = model.stem + suffix
    if out is None:
        return Path.cwd() / f"{stem}.onnx"
    p = Path(out)
    if p.is_dir() or os.fspath(out).endswith(("/", os.sep)):
        return p / f"{stem}.onnx"
    if p.suffix.lower() != ".onnx":
        raise SrError(f"output must be an .onnx file or a folder, got '{p.name}'",
                      "Name it like model.onnx; the engine is written next to it as model.engine.", p)
    return p


def _trt_flavor(options: ExportOptions) -> Any:
    """Import the TensorRT flavour and check the profile flags and the GPU before anything slow."""
    from sr_runtime.backends.trt import ShapeProfile, current_gpu, load_flavor

    flavor = load_flavor(options.trt_flavor)  # fails fast without the extra
    if options.triton_repo is not None and flavor.name == "rtx":
        raise SrError("Triton's tensorrt_plan platform loads TensorRT engines, not TensorRT-RTX ones",
                      "Use --trt-flavor tensorrt for Triton, or drop --trt to serve the ONNX.", options.triton_repo)
    ShapeProfile.from_tile(options.tile, options.tile_pad, options.max_batch)  # validate before the slow part
    if flavor.name == "tensorrt" and current_gpu() is None:
        raise SrError(f"{flavor.label} builds engines on the GPU that will run them, and no CUDA device was found",
                      "Build on the target machine, or use --trt-flavor rtx (builds without a GPU).")
    return flavor


def require_torch() -> None:
    """Raise the one-line "install the export extra" error on a runtime-only install (no torch).

    Raises:
        MissingExtraError: torch cannot be imported.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingExtraError("torch", "export", "sr-export") from None


def plan(model: str | Path, options: ExportOptions) -> Target:
    """Check the options and paths of an export without loading or writing anything.

    Raises:
        SrError: a bad option, output path or folder, no TensorRT extra or no GPU for ``tensorrt``
            (one line naming the file or flag and the fix), no torch (:class:`MissingExtraError`).
        ModelFileError: the checkpoint does not exist.
    """
    model = Path(model)
    if options.dni_weight is not None and options.dni is None:
        raise SrError("--dni-weight needs --dni OTHER.pth", "Pass the second checkpoint with --dni.")
    if not model.is_file():
        raise ModelFileError("file not found" if not model.exists() else "is not a file", "Check the path.", model)
    _check_int8(model, options)
    onnx_out = output_path(model, options.output, _precision_suffix(options))
    check_folder(onnx_out.parent, "output", onnx_out, create=True)
    repo = None if options.triton_repo is None else Path(options.triton_repo)
    if repo is not None:
        check_folder(repo.parent if not repo.exists() else repo, "Triton repository", repo)
    flavor = _trt_flavor(options) if options.trt else None
    require_torch()
    if options.max_batch < 1:
        raise SrError(f"--max-batch must be >= 1, got {options.max_batch}", "Pass --max-batch 1 or more.")
    return Target(model, onnx_out, flavor)


def _check_int8(model: Path, options: ExportOptions) -> None:
    """The int8 flags agree with each other and with the model (one line each)."""
    if not options.int8:
        if options.calib is not None:
            raise SrError("--calib is for --int8", "Add --int8, or drop --calib.")
        return
    if options.fp16:
        raise SrError("--int8 and --fp16 are two precisions; choose one",
                      "An int8 model keeps float32 input/output; drop --fp16.")
    if model.suffix.lower() == ".onnx":
        from sr_runtime.info import read_onnx_info

        try:
            prec = read_onnx_info(model).precision
        except SrError:
            prec = ""
        what = {"float16": "an fp16", "float32": "an fp32", "int8": "an int8"}.get(prec, "an")
        raise ModelFileError(f"int8 quantizes a float checkpoint, not {what} ONNX model",
                             "Pass the .pth/.safetensors it was exported from: sr-export MODEL.pth --int8 --calib "
                             "FOLDER.", model)
    if options.trt:
        raise SrError("--int8 writes a CPU model (uint8 activations with zero points); TensorRT takes only symmetric "
                      "int8 activations", "Use --fp16 --trt for TensorRT; run the int8 ONNX with OpenVINO or ONNX "
                      "Runtime (docs/int8.md).")
    if options.calib is None:
        raise SrError("--int8 needs --calib FOLDER: images like those you will upscale",
                      "Pass a folder of at least 5 images (one in five is held out to measure the quality).")


# --------------------------------------------------------------------------------------------- 2. load
def _blend(a: Any, model_path: Path, dni: str | Path, weight: float | None) -> LoadedModel:
    """Blend the loaded generator ``a`` with the checkpoint ``dni`` (same architecture and shapes)."""
    from sr_export.dni import interpolate
    from sr_train.checkpoint import build_from_state_dict, load_generator

    b = load_generator(dni)
    w = 0.5 if weight is None else float(weight)
    if a.spec.id != b.spec.id:
        first = next((k for k in a.state_dict if k not in b.state_dict), next(iter(a.state_dict)))
        raise ModelFileError(f"DNI needs one architecture: {model_path.name} is {a.spec.id}, this is {b.spec.id} "
                             f"(key '{first}' of the first model is missing here)",
                             "Blend two checkpoints of the same architecture and size.", dni)
    try:
        sd = interpolate(a.state_dict, b.state_dict, w)
    except ModelFileError as exc:
        exc.path = exc.path or str(dni)
        raise
    model, spec, hparams = build_from_state_dict(sd, dni, a.spec.id)
    fields = {"source_sha256": a.sha256, "name": f"{model_path.stem}_dni{w:g}",
              "dni": {"sources": [a.sha256, b.sha256], "names": [a.path.name, b.path.name], "weight": w}}
    return LoadedModel(model, spec, hparams, fields)


def load_model(model_path: str | Path, dni: str | Path | None = None, weight: float | None = None) -> LoadedModel:
    """Load a generator checkpoint, blended as ``weight*model + (1-weight)*dni`` when ``dni`` is given.

    Raises:
        ModelFileError: an unreadable checkpoint, or two that cannot be blended (names the first bad key).
    """
    from sr_train.checkpoint import load_generator

    model_path = Path(model_path)
    a = load_generator(model_path)
    if dni is None:
        return LoadedModel(a.model, a.spec, a.hparams, {"source_sha256": a.sha256, "name": model_path.stem})
    return _blend(a, model_path, dni, weight)


# ------------------------------------------------------------------------------------- 3-6. the stages
def check_parity(torch_model: Any, artifact: Path, label: str, say: Say) -> tuple[ParityReport, ...]:
    """Compare ``artifact`` with ``torch_model`` (:func:`sr_export.parity.check`) and report each figure.

    Raises:
        ParityError: a report is outside its tolerance (names ``label`` and the worst figures).
    """
    from sr_export import parity

    reports = tuple(parity.check(torch_model, artifact))
    for r in reports:
        say(f"  parity {r.line()}")
    bad = [r for r in reports if not r.passed]
    if bad:
        r = bad[0]
        tol = r.tol
        raise ParityError(
            f"{label} fails the parity check: {r.name} max_abs={r.max_abs:.3g} psnr={r.psnr:.1f} dB at {r.worst_index}"
            + (f" (tolerance max_abs<={tol.max_abs:g}, psnr>={tol.min_psnr:g})" if tol else ""),
            "Nothing was written. Check the checkpoint; --no-check skips the check.",
            reports=reports,
        )
    return reports


@dataclass(frozen=True)
class _Engine:
    path: Path
    sidecar: dict[str, Any]
    parity: tuple[ParityReport, ...] = ()
    checked: bool = False


@dataclass(frozen=True)
class _Stages:
    """One export in progress: every stage writes into ``tmpdir`` only, except :meth:`place`."""

    options: ExportOptions
    target: Target
    loaded: LoadedModel
    tmpdir: Path
    say: Say

    def onnx(self) -> tuple[Path, ModelInfo]:
        """3. Export the fp32 ONNX and, with ``fp16``, convert it; returns the artifact and its metadata."""
        from sr_export.onnx import DEFAULT_EXPORTER, export_onnx

        m = self.loaded
        t0 = time.perf_counter()
        fp32_path = self.tmpdir / "model_fp32.onnx"
        info = export_onnx(m.model, m.spec, m.hparams, fp32_path, self.options.opset, m.fields,
                           exporter=self.options.exporter or DEFAULT_EXPORTER)
        self.say(f"exported ONNX ({info.exporter}, opset {info.opset}) in {time.perf_counter() - t0:.1f} s")
        if not self.options.fp16:
            return fp32_path, info
        from sr_export.fp16 import convert_fp16

        artifact = self.tmpdir / "model_fp16.onnx"
        info = convert_fp16(fp32_path, artifact)
        self.say("converted to fp16 (weights and compute fp16, float32 input/output)")
        return artifact, info

    def int8(self) -> tuple[Path, ModelInfo, tuple[ParityReport, ...]]:
        """3'. Quantize on the calibration images and write the int8 QDQ ONNX; its quality against the float model
        is the check (:func:`sr_export.int8.export_int8` refuses a model below ``min_psnr``)."""
        from sr_export.int8 import export_int8
        from sr_export.onnx import DEFAULT_EXPORTER

        o = self.options
        t0 = time.perf_counter()
        r = export_int8(self.loaded, self.target.model, o.calib, self.tmpdir / "model_int8.onnx",  # type: ignore[arg-type]
                        min_psnr=o.min_psnr if o.check else None, opset=o.opset,
                        exporter=o.exporter or DEFAULT_EXPORTER, say=self.say)
        self.say(f"int8 ONNX written in {time.perf_counter() - t0:.1f} s")
        return r.path, r.info, (r.report,)

    def check(self, artifact: Path, label: str) -> tuple[ParityReport, ...]:
        """4. Parity of ``artifact`` with the PyTorch model (nothing with ``check=False``)."""
        if not self.options.check:
            return ()
        return check_parity(self.loaded.model, artifact, label, self.say)

    def engine(self, artifact: Path, info: ModelInfo) -> _Engine:
        """5. Build the engine (and its sidecar) from the checked ONNX, then check it where a GPU runs it."""
        from sr_runtime.backends.trt import (
            current_gpu,
            default_cache_dir,
            export_engine,
            profile_for,
            timing_cache_path,
        )

        o, flavor = self.options, self.target.flavor
        profile = profile_for(info, o.tile, o.tile_pad, o.max_batch)
        timing = None
        if flavor.name == "tensorrt":
            cache_dir = default_cache_dir()
            cache_dir.mkdir(parents=True, exist_ok=True)
            timing = timing_cache_path(cache_dir, flavor, current_gpu())
        t0 = time.perf_counter()
        path = self.tmpdir / "model.engine"
        sidecar = export_engine(artifact, path, profile, flavor=flavor.name, workspace_mib=o.workspace_mib,
                                timing_cache=timing)
        self.say(f"built {flavor.label} engine ({info.precision}, profile {profile.key()}, for compute capability "
                 f"{', '.join(sidecar['built_for']['compute_capabilities'])}) in {time.perf_counter() - t0:.1f} s")
        if not o.check:
            return _Engine(path, sidecar)
        if current_gpu() is None:
            self.say("  parity trt: skipped, no CUDA device here to run the engine (the ONNX above was checked)")
            return _Engine(path, sidecar)
        return _Engine(path, sidecar, self.check(path, self.target.onnx.with_suffix(".engine").name), True)

    def place(self, artifact: Path, info: ModelInfo, reports: tuple[ParityReport, ...],
              engine: _Engine | None) -> ExportResult:
        """6. Everything is checked: the Triton entry first, then the ONNX, then the engine before its sidecar
        (so that a sidecar never lacks its engine)."""
        o = self.options
        written: list[Path] = []
        entry = None
        if o.triton_repo is not None:
            from sr_export.triton import write_triton_entry

            served = engine.path if engine is not None else artifact
            entry = write_triton_entry(o.triton_repo, self.loaded.fields["name"] + _precision_suffix(o),
                                       served, info, max_batch_size=o.max_batch,
                                       sidecar=None if engine is None else engine.sidecar)
            written += [entry / "config.pbtxt", next((entry / "1").iterdir())]
        onnx_out = self.target.onnx
        os.replace(artifact, onnx_out)
        written.insert(0, onnx_out)
        if engine is None:
            return ExportResult(onnx_out, info, triton_entry=entry, written=tuple(written), parity=reports)
        from sr_runtime.backends.trt import sidecar_path

        engine_out = onnx_out.with_suffix(".engine")
        os.replace(engine.path, engine_out)
        os.replace(sidecar_path(engine.path), sidecar_path(engine_out))
        written[1:1] = [engine_out, sidecar_path(engine_out)]
        return ExportResult(onnx_out, info, engine_out, sidecar_path(engine_out), entry, tuple(written),
                            reports + engine.parity, engine.checked)


# --------------------------------------------------------------------------------------------- export
def export(model: str | Path, options: ExportOptions | None = None, *, say: Say | None = None) -> ExportResult:
    """Export a checkpoint (.pth, .safetensors, old ESRGAN layout) to ONNX and, if asked, TensorRT and Triton.

    Every file is checked against PyTorch (max abs error, PSNR) before it is written, unless
    ``options.check`` is False; on any failure nothing is written.

    Args:
        model: the checkpoint.
        options: what to write (default: a checked fp32 ONNX in the current folder).
        say: receives the progress lines (default: ``logging.getLogger("sr_export").info``).

    Returns:
        The files written and the parity reports.

    Raises:
        SrError: bad options or paths (see :func:`plan`), a missing extra, a failed engine build.
        ModelFileError: an unreadable checkpoint or an impossible DNI blend.
        ParityError: an artifact is outside the parity tolerance (its ``reports`` hold every figure).
    """
    options = options or ExportOptions()
    say = say or LOG.info
    target = plan(model, options)
    dni = options.dni
    weight = 0.5 if options.dni_weight is None else options.dni_weight
    say(f"loading {target.model}" + (f" + {dni} (DNI weight {weight:g})" if dni else ""))
    loaded = load_model(target.model, None if dni is None else str(dni), options.dni_weight)
    say(f"  {loaded.spec.id} x{loaded.spec.scale(loaded.hparams)} {loaded.hparams}")
    target.onnx.parent.mkdir(parents=True, exist_ok=True)  # as sr-run does for OUT
    for stale in clean_stale(target.onnx.parent, folder_prefixes=(STAGING_PREFIX,)):
        say(f"removed {stale.name}, left by an export that was killed")
    with temp_folder(target.onnx.parent, STAGING_PREFIX) as tmpdir:
        stages = _Stages(options, target, loaded, tmpdir, say)
        if options.int8:
            artifact, info, reports = stages.int8()
        else:
            artifact, info = stages.onnx()
            reports = stages.check(artifact, target.onnx.name)
        engine = stages.engine(artifact, info) if target.flavor is not None else None
        with signals.deferred():  # the files move into place together, or not at all
            return stages.place(artifact, info, reports, engine)
