"""sr-export: checkpoint -> ONNX (fp32/fp16), TensorRT engine and Triton entry, each checked against PyTorch.

Everything is written into a hidden temp folder next to the output first and moved into place only after the
parity check passed, so a failure (bad input, parity, Ctrl-C) never leaves a partial or unchecked file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import click

from sr_runtime.errors import ModelFileError, ParityError, SrError, cli_errors

EXPORTERS = ("torchscript", "dynamo")


def _say(msg: str) -> None:
    click.echo(msg)


def _check_folder(folder: Path, what: str, path: Path) -> None:
    """Raise a one-line error unless ``folder`` exists, is a folder and is writable."""
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise SrError(f"{what} folder cannot be created: {parent} is a file, not a folder",
                              "Choose another output path.", path)
            break
    if not folder.exists():
        raise SrError(f"{what} folder {folder} does not exist", "Create it first or choose another path.", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SrError(f"{what} folder {folder} is not writable", "Choose a folder you can write to.", path)


def _output_path(model: Path, out: str | None, fp16: bool) -> Path:
    stem = model.stem + ("_fp16" if fp16 else "")
    if out is None:
        return Path.cwd() / f"{stem}.onnx"
    p = Path(out)
    if p.is_dir() or out.endswith(("/", os.sep)):
        return p / f"{stem}.onnx"
    if p.suffix.lower() != ".onnx":
        raise SrError(f"output must be an .onnx file or a folder, got '{p.name}'",
                      "Name it like model.onnx; the engine is written next to it as model.engine.", p)
    return p


def _load(model_path: Path, dni: str | None, weight: float | None):
    """Load the generator (blended with ``dni`` when given); returns (model, spec, hparams, info fields)."""
    from sr_export.dni import interpolate
    from sr_train.checkpoint import build_from_state_dict, load_generator

    a = load_generator(model_path)
    fields: dict = {"source_sha256": a.sha256, "name": model_path.stem}
    if dni is None:
        return a.model, a.spec, a.hparams, fields
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
    fields["dni"] = {"sources": [a.sha256, b.sha256], "names": [a.path.name, b.path.name], "weight": w}
    fields["name"] = f"{model_path.stem}_dni{w:g}"
    return model, spec, hparams, fields


def _report(reports, label: str) -> None:
    for r in reports:
        _say(f"  parity {r.line()}")
    bad = [r for r in reports if not r.passed]
    if bad:
        r = bad[0]
        tol = r.tol
        raise ParityError(
            f"{label} fails the parity check: {r.name} max_abs={r.max_abs:.3g} psnr={r.psnr:.1f} dB at {r.worst_index}"
            + (f" (tolerance max_abs<={tol.max_abs:g}, psnr>={tol.min_psnr:g})" if tol else ""),
            "Nothing was written. Check the checkpoint; --no-check skips the check.",
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", metavar="OUT",
              help="Output .onnx file or folder (default: ./<model>[_fp16].onnx). The engine goes next to it.")
@click.option("--dni", type=click.Path(dir_okay=False, path_type=Path), metavar="OTHER.pth",
              help="Blend MODEL with this checkpoint of the same architecture (deep network interpolation).")
@click.option("--dni-weight", type=click.FloatRange(0.0, 1.0), default=None, metavar="W",
              help="Weight of MODEL in the blend, W*MODEL + (1-W)*OTHER [default: 0.5]. With realesr-general-x4v3 "
                   "and its wdn twin this is upstream's denoise strength (-dn).")
@click.option("--fp16", is_flag=True, help="Write an fp16 ONNX (weights and compute fp16, float32 I/O); "
                                           "with --trt the engine is fp16 too.")
@click.option("--trt", is_flag=True, help="Also build a TensorRT engine (.engine + .engine.json sidecar).")
@click.option("--trt-flavor", type=click.Choice(["auto", "tensorrt", "rtx"]), default="auto", show_default=True,
              help="tensorrt: TensorRT 10/11 (builds on the target GPU); rtx: TensorRT for RTX (builds without "
                   "a GPU, runs on RTX Ampere+); auto: tensorrt if installed, else rtx.")
@click.option("--tile", type=int, default=256, show_default=True,
              help="Engine profile: largest tile in input pixels (sr-run --tile).")
@click.option("--tile-pad", type=int, default=10, show_default=True,
              help="Engine profile: context pixels on each side of a tile.")
@click.option("--max-batch", type=int, default=4, show_default=True,
              help="Engine profile and Triton max_batch_size: most tiles per call.")
@click.option("--workspace", type=int, default=None, metavar="MIB", help="TensorRT builder workspace limit in MiB.")
@click.option("--opset", type=int, default=None, metavar="N", help="ONNX opset [default: 17 torchscript, 18 dynamo].")
@click.option("--exporter", type=click.Choice(EXPORTERS), default=None,
              help="torch ONNX exporter [default: torchscript, see docs/export.md].")
@click.option("--triton", "triton_repo", type=click.Path(file_okay=False, path_type=Path), metavar="REPO_DIR",
              help="Also write a Triton model-repository entry REPO_DIR/<name>/ (model.plan with --trt).")
@click.option("--no-check", is_flag=True, help="Skip the parity check against PyTorch.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(model: Path, out: str | None, dni: Path | None, dni_weight: float | None, fp16: bool, trt: bool,
         trt_flavor: str, tile: int, tile_pad: int, max_batch: int, workspace: int | None, opset: int | None,
         exporter: str | None, triton_repo: Path | None, no_check: bool, debug: bool) -> None:
    """Export a Real-ESRGAN-family checkpoint (.pth, .safetensors, old ESRGAN layout) to ONNX and TensorRT.

    Every file is checked against PyTorch (max abs error, PSNR) on a test image and random input before it is
    written; a failure exits non-zero and writes nothing. The ONNX carries the model's metadata (scale,
    channels, padding), so sr-run needs no options to run it.

    \b
    Examples:
      sr-export RealESRGAN_x4plus.pth                      # -> ./RealESRGAN_x4plus.onnx
      sr-export realesr-animevideov3.pth --fp16 --trt      # fp16 ONNX + fp16 engine (+ sidecar)
      sr-export RealESRGAN_x4plus.pth --trt --trt-flavor rtx --tile 512 --max-batch 2
      sr-export realesr-animevideov3.pth --triton models/  # Triton entry models/realesr-animevideov3/
    \b
    Denoise strength (upstream inference_realesrgan.py -dn 0.7 with realesr-general-x4v3):
      sr-export realesr-general-x4v3.pth --dni realesr-general-wdn-x4v3.pth --dni-weight 0.7 -o general-dn0.7.onnx
      (0.7 x general + 0.3 x wdn; 1.0 = the plain general model, 0.0 = the weak-denoise wdn model)
    """
    with cli_errors(debug):
        _run(model, out, dni, dni_weight, fp16, trt, trt_flavor, tile, tile_pad, max_batch, workspace, opset,
             exporter, triton_repo, no_check)


def _run(model: Path, out: str | None, dni: Path | None, dni_weight: float | None, fp16: bool, trt: bool,
         trt_flavor: str, tile: int, tile_pad: int, max_batch: int, workspace: int | None, opset: int | None,
         exporter: str | None, triton_repo: Path | None, no_check: bool) -> None:
    t_start = time.perf_counter()
    if dni_weight is not None and dni is None:
        raise SrError("--dni-weight needs --dni OTHER.pth", "Pass the second checkpoint with --dni.")
    if not model.is_file():
        raise ModelFileError("file not found" if not model.exists() else "is not a file", "Check the path.", model)
    onnx_out = _output_path(model, out, fp16)
    _check_folder(onnx_out.parent, "output", onnx_out)
    if triton_repo is not None:
        _check_folder(triton_repo.parent if not triton_repo.exists() else triton_repo, "Triton repository",
                      triton_repo)
    flavor = None
    if trt:
        from sr_runtime.trt_build import load_flavor

        flavor = load_flavor(trt_flavor)  # type: ignore[arg-type]  # fails fast without the extra
        if triton_repo is not None and flavor.name == "rtx":
            raise SrError("Triton's tensorrt_plan platform loads TensorRT engines, not TensorRT-RTX ones",
                          "Use --trt-flavor tensorrt for Triton, or drop --trt to serve the ONNX.", triton_repo)
        from sr_runtime.trt_build import ShapeProfile, current_gpu

        ShapeProfile.from_tile(tile, tile_pad, max_batch)  # validate the flags before the slow part
        if flavor.name == "tensorrt" and current_gpu() is None:
            raise SrError(f"{flavor.label} builds engines on the GPU that will run them, and no CUDA device was found",
                          "Build on the target machine, or use --trt-flavor rtx (builds without a GPU).")
    if max_batch < 1:
        raise SrError(f"--max-batch must be >= 1, got {max_batch}", "Pass --max-batch 1 or more.")

    from sr_export import parity
    from sr_export.onnx import DEFAULT_EXPORTER, export_onnx

    exporter = exporter or DEFAULT_EXPORTER
    _say(f"loading {model}" + (f" + {dni} (DNI weight {0.5 if dni_weight is None else dni_weight:g})" if dni else ""))
    net, spec, hparams, fields = _load(model, str(dni) if dni else None, dni_weight)
    _say(f"  {spec.id} x{spec.scale(hparams)} {hparams}")

    tmpdir = Path(tempfile.mkdtemp(prefix=".sr-export-", dir=onnx_out.parent))
    try:
        t0 = time.perf_counter()
        fp32_path = tmpdir / "model_fp32.onnx"
        info = export_onnx(net, spec, hparams, fp32_path, opset, fields, exporter=exporter)  # type: ignore[arg-type]
        _say(f"exported ONNX ({info.exporter}, opset {info.opset}) in {time.perf_counter() - t0:.1f} s")
        artifact = fp32_path
        if fp16:
            from sr_export.fp16 import convert_fp16

            artifact = tmpdir / "model_fp16.onnx"
            info = convert_fp16(fp32_path, artifact)
            _say("converted to fp16 (weights and compute fp16, float32 input/output)")
        if not no_check:
            _report(parity.check(net, artifact), onnx_out.name)

        engine_tmp = sidecar = None
        if flavor is not None:
            from sr_export.profiles import profile_for
            from sr_export.trt import export_engine
            from sr_runtime.trt_build import current_gpu, default_cache_dir

            profile = profile_for(info, tile, tile_pad, max_batch)
            timing = None
            if flavor.name == "tensorrt":
                cache_dir = default_cache_dir()
                cache_dir.mkdir(parents=True, exist_ok=True)
                timing = cache_dir / f"timing-tensorrt-{flavor.version}.cache"
            t0 = time.perf_counter()
            engine_tmp = tmpdir / "model.engine"
            sidecar = export_engine(artifact, engine_tmp, profile, flavor=flavor.name, workspace_mib=workspace,
                                    timing_cache=timing)
            _say(f"built {flavor.label} engine ({info.precision}, profile {profile.key()}, for compute capability "
                 f"{', '.join(sidecar['built_for']['compute_capabilities'])}) in {time.perf_counter() - t0:.1f} s")
            if not no_check:
                if current_gpu() is None:
                    _say("  parity trt: skipped, no CUDA device here to run the engine (the ONNX above was checked)")
                else:
                    _report(parity.check(net, engine_tmp), onnx_out.with_suffix(".engine").name)

        # everything checked: the Triton entry (atomic by itself) first, then the outputs, engine before its
        # sidecar so that a sidecar never lacks its engine
        written: list[Path] = []
        if triton_repo is not None:
            from sr_export.triton import write_triton_entry

            served = engine_tmp if engine_tmp is not None else artifact
            entry = write_triton_entry(triton_repo, fields["name"] + ("_fp16" if fp16 else ""), served, info,
                                       max_batch_size=max_batch, sidecar=sidecar)
            written += [entry / "config.pbtxt", next((entry / "1").iterdir())]
        os.replace(artifact, onnx_out)
        written.insert(0, onnx_out)
        if engine_tmp is not None:
            from sr_runtime.trt_build import sidecar_path

            engine_out = onnx_out.with_suffix(".engine")
            os.replace(engine_tmp, engine_out)
            os.replace(sidecar_path(engine_tmp), sidecar_path(engine_out))
            written[1:1] = [engine_out, sidecar_path(engine_out)]
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    for p in written:
        size = p.stat().st_size
        _say(f"wrote {p} ({size / 1e6:.1f} MB)" if size >= 100_000 else f"wrote {p} ({size / 1e3:.1f} kB)")
    _say(f"done in {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":  # pragma: no cover
    main()
