"""sr-export: checkpoint -> ONNX (fp32/fp16), TensorRT engine and Triton entry, each checked against PyTorch.

The export itself is the library call :func:`sr_export.pipeline.export`; this module parses the flags, prints the
progress lines and the files written, and turns errors into one line and an exit code.
"""

from __future__ import annotations

from sr_runtime import signals  # first: Ctrl-C/SIGTERM are handled from here on, also while the rest loads

signals.install_at_start(__name__, "sr-export")

import time
from pathlib import Path

import click

from sr_export.pipeline import ExportOptions, ExportResult, export
from sr_runtime import __version__
from sr_runtime.errors import SrError, cli_errors

EXPORTERS = ("torchscript", "dynamo")
DEFAULTS = ExportOptions()
"""The flags' defaults are the library's."""


def _print_written(result: ExportResult) -> None:
    for p in result.written:
        size = p.stat().st_size
        click.echo(f"wrote {p} ({size / 1e6:.1f} MB)" if size >= 100_000 else f"wrote {p} ({size / 1e3:.1f} kB)")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "-V", "--version", prog_name="sr-export", message="%(prog)s (sr-deploy) %(version)s")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", metavar="OUT",
              help="Output .onnx file or folder, created if missing (default: ./<model>[_fp16].onnx). The engine "
                   "goes next to it.")
@click.option("--metadata", is_flag=True,
              help="MODEL is an ONNX made elsewhere (e.g. upstream's pytorch2onnx.py): write a copy with sr-deploy "
                   "metadata (default ./<model>_sr.onnx), checked against the original. No torch needed.")
@click.option("--scale", type=click.IntRange(1), default=None,
              help="With --metadata: the model's scale, checked against the probe.")
@click.option("--dni", type=click.Path(dir_okay=False, path_type=Path), metavar="OTHER.pth",
              help="Blend MODEL with this checkpoint of the same architecture (deep network interpolation).")
@click.option("--dni-weight", type=click.FloatRange(0.0, 1.0), default=None, metavar="W",
              help="Weight of MODEL in the blend, W*MODEL + (1-W)*OTHER [default: 0.5]. With realesr-general-x4v3 "
                   "and its wdn twin this is upstream's denoise strength (-dn).")
@click.option("--fp16", is_flag=True, help="Write an fp16 ONNX <model>_fp16.onnx (weights and compute fp16, float32 "
                                           "I/O), and only that file (export again without --fp16 for the fp32 one "
                                           "that sr-run --fp32 looks for); with --trt the engine is fp16 too.")
@click.option("--trt", is_flag=True, help="Also build a TensorRT engine (.engine + .engine.json sidecar).")
@click.option("--trt-flavor", type=click.Choice(["auto", "tensorrt", "rtx"]), default=DEFAULTS.trt_flavor,
              show_default=True,
              help="tensorrt: TensorRT 10/11 (builds on the target GPU); rtx: TensorRT for RTX (builds without "
                   "a GPU, runs on RTX Ampere+); auto: tensorrt if installed, else rtx.")
@click.option("--tile", type=int, default=DEFAULTS.tile, show_default=True,
              help="Engine profile: largest tile in input pixels (sr-run --tile).")
@click.option("--tile-pad", type=int, default=DEFAULTS.tile_pad, show_default=True,
              help="Engine profile: context pixels on each side of a tile.")
@click.option("--max-batch", type=int, default=DEFAULTS.max_batch, show_default=True,
              help="Engine profile and Triton max_batch_size: most tiles per call.")
@click.option("--workspace", type=int, default=None, metavar="MIB", help="TensorRT builder workspace limit in MiB.")
@click.option("--opset", type=int, default=None, metavar="N", help="ONNX opset [default: 17 torchscript, 18 dynamo].")
@click.option("--exporter", type=click.Choice(EXPORTERS), default=None,
              help="torch ONNX exporter [default: torchscript, see docs/export.md].")
@click.option("--triton", "triton_repo", type=click.Path(file_okay=False, path_type=Path), metavar="REPO_DIR",
              help="Also write a Triton model-repository entry REPO_DIR/<name>/ (model.plan with --trt).")
@click.option("--int8", is_flag=True, help="Write an int8 QDQ ONNX (-> <model>_int8.onnx) quantized on --calib images "
                                           "and refused below --min-psnr (docs/int8.md).")
@click.option("--calib", type=click.Path(path_type=Path), metavar="FOLDER",
              help="int8 calibration images: at least 5 like those you will upscale (every 5th is held out).")
@click.option("--min-psnr", type=float, default=DEFAULTS.min_psnr, show_default=True, metavar="DB",
              help="int8 quality gate: PSNR against the float model on the held-out crops.")
@click.option("--no-check", is_flag=True, help="Skip the parity check against PyTorch.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(model: Path, out: str | None, metadata: bool, scale: int | None, dni: Path | None, dni_weight: float | None,
         fp16: bool, trt: bool, trt_flavor: str, tile: int, tile_pad: int, max_batch: int, workspace: int | None,
         opset: int | None, exporter: str | None, triton_repo: Path | None, int8: bool, calib: Path | None,
         min_psnr: float, no_check: bool, debug: bool) -> None:
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
      sr-export realesr-animevideov3.pth --int8 --calib photos/  # -> realesr-animevideov3_int8.onnx
      sr-export --metadata RealESRGAN_x4plus_plain.onnx    # a foreign ONNX -> ./RealESRGAN_x4plus_plain_sr.onnx
    \b
    Denoise strength (upstream inference_realesrgan.py -dn 0.7 with realesr-general-x4v3):
      sr-export realesr-general-x4v3.pth --dni realesr-general-wdn-x4v3.pth --dni-weight 0.7 -o general-dn0.7.onnx
      (0.7 x general + 0.3 x wdn; 1.0 = the plain general model, 0.0 = the weak-denoise wdn model)
    """
    with cli_errors(debug):
        t_start = time.perf_counter()
        if metadata or (model.suffix.lower() == ".onnx" and not int8):  # an ONNX with --int8: the pipeline says why not
            _metadata(model, out, scale, metadata, no_check, set_flags=[name for name, on in (
                ("--dni", dni), ("--fp16", fp16), ("--trt", trt), ("--triton", triton_repo), ("--int8", int8)) if on])
            click.echo(f"done in {time.perf_counter() - t_start:.1f} s")
            return
        if scale is not None:
            raise SrError("--scale goes with --metadata", "A checkpoint knows its scale: drop --scale.")
        options = ExportOptions(  # click.Choice has checked trt_flavor and exporter
            output=out, dni=dni, dni_weight=dni_weight, fp16=fp16, trt=trt, trt_flavor=trt_flavor,  # type: ignore[arg-type]
            tile=tile, tile_pad=tile_pad, max_batch=max_batch, workspace_mib=workspace, opset=opset,
            exporter=exporter, triton_repo=triton_repo, check=not no_check,  # type: ignore[arg-type]
            int8=int8, calib=calib, min_psnr=min_psnr)
        _print_written(export(model, options, say=click.echo))
        click.echo(f"done in {time.perf_counter() - t_start:.1f} s")


def _metadata(model: Path, out: str | None, scale: int | None, asked: bool, no_check: bool,
              set_flags: list[str]) -> None:
    """``--metadata``: a copy of a foreign ONNX with sr-deploy metadata (:func:`sr_export.metadata.write_metadata`).

    Raises:
        SrError: an ONNX without ``--metadata``, or flags that need a checkpoint.
    """
    if not asked:
        raise SrError("this is an ONNX, not a checkpoint",
                      f"sr-export --metadata {model.name} writes a copy with sr-deploy metadata (sr-run runs it as it "
                      "is too).", model)
    if set_flags:
        raise SrError(f"--metadata writes metadata only; {', '.join(set_flags)} "
                      f"{'needs' if len(set_flags) == 1 else 'need'} a checkpoint",
                      "Run sr-export on the checkpoint for those.")
    from sr_export.metadata import write_metadata

    _print_written(write_metadata(model, out, scale=scale, check=not no_check, say=click.echo))


if __name__ == "__main__":  # pragma: no cover
    main()
