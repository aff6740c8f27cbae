"""sr-run: upscale images with an exported model (torch-free)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sr_runtime.errors import SrError, cli_errors

_TILE_HELP = "Tile size in input pixels, 0 for the whole image, or 'auto' (largest that fits --max-memory)."


def _parse_tile(value: str) -> int | str:
    v = str(value).strip().lower()
    if v == "auto":
        return "auto"
    try:
        t = int(v)
    except ValueError:
        raise SrError(f"bad --tile '{value}'", "Use a number of pixels, 0 for no tiling, or auto.") from None
    if t < 0:
        raise SrError(f"bad --tile {t}", "Use a positive number, 0 for no tiling, or auto.")
    return t


def print_info(model: str) -> None:
    """Print a model's metadata and the execution providers available here."""
    from sr_runtime.backends import ENGINE_SUFFIXES
    from sr_runtime.backends.base import MODEL_SUFFIXES_TORCH
    from sr_runtime.backends.ort import available_providers, export_first_error, read_onnx_info
    from sr_runtime.errors import ModelFileError
    from sr_runtime.info import ModelInfo

    p = Path(model)
    if p.suffix.lower() in MODEL_SUFFIXES_TORCH:
        raise export_first_error(p)
    extra: dict = {}
    if p.suffix.lower() in ENGINE_SUFFIXES:
        side = p.with_name(p.name + ".json")
        if not p.is_file() or not side.is_file():
            raise ModelFileError("engine or its sidecar .json not found", "Rebuild it with sr-export --trt.", p)
        try:
            d = json.loads(side.read_text())
            info = ModelInfo.from_dict(d["model"], side)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"unreadable sidecar ({exc})", "Rebuild it with sr-export --trt.", side) from None
        extra = {k: d[k] for k in ("flavor", "trt_version", "built_for", "profile") if k in d}
    else:
        info = read_onnx_info(p)
    click.echo(f"model: {p}")
    for k, v in info.to_dict().items():
        if v in ({}, "", None) and k not in ("arch", "scale"):
            continue
        click.echo(f"  {k}: {json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")
    for k, v in extra.items():
        click.echo(f"  engine.{k}: {json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")
    click.echo(f"  safe --tile-pad: >= {info.receptive_radius} (receptive radius; tiled == whole image)")
    provs = available_providers()
    click.echo(f"onnxruntime providers: {', '.join(provs) if provs else 'onnxruntime not installed'}")
    trt = []
    for mod in ("tensorrt", "tensorrt_rtx"):
        try:
            m = __import__(mod)
            trt.append(f"{mod} {getattr(m, '__version__', '?')}")
        except Exception:  # noqa: BLE001 - only reporting what is importable
            pass
    click.echo(f"tensorrt: {', '.join(trt) if trt else 'not installed'}")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inp", metavar="IN", required=False)
@click.argument("out", metavar="OUT", required=False)
@click.option("-m", "--model", type=click.Path(dir_okay=False), default=None,
              help="Exported model (.onnx, .engine/.plan). Default: the shipped default model.")
@click.option("-s", "--outscale", type=float, default=None,
              help="Final scale; another value than the model's is a Lanczos resize afterwards.")
@click.option("-t", "--tile", default="auto", show_default=True, help=_TILE_HELP)
@click.option("--tile-pad", type=click.IntRange(0), default=10, show_default=True,
              help="Context pixels around each tile (exact when >= the model's receptive radius, see --info).")
@click.option("--pre-pad", type=click.IntRange(0), default=0, show_default=True,
              help="Reflect padding at the bottom/right edges, cropped afterwards.")
@click.option("-b", "--batch", type=click.IntRange(1), default=4, show_default=True, help="Tiles per model call.")
@click.option("--backend", type=click.Choice(["auto", "ort", "ort-cuda", "trt"]), default="auto", show_default=True,
              help="auto: TensorRT for engines, ONNX Runtime (CUDA if usable, else CPU) for .onnx.")
@click.option("--fp16/--fp32", "fp16", default=None,
              help="Precision comes from the model file (sr-export --fp16 writes x_fp16.onnx); --fp32 with an "
                   "fp16 model uses its fp32 sibling x.onnx. Default: the file's own precision.")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads for ONNX Runtime.")
@click.option("--alpha-upsampler", type=click.Choice(["model", "realesrgan", "bicubic", "lanczos"]),
              default="model", show_default=True, help="How the alpha channel is upscaled ('realesrgan' = model).")
@click.option("--ext", type=click.Choice(["auto", "png", "jpg", "webp", "tif", "bmp"]), default="auto",
              show_default=True, help="Output format; auto keeps the input's (png for images with alpha).")
@click.option("--suffix", default="out", show_default=True, help="Appended to output names in a folder ('' for none).")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output exists.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse inputs with more pixels than this.")
@click.option("--max-memory", default=None, help="Memory budget for --tile auto (e.g. 4G). Default: 1/4 of free RAM.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars, notes or summary.")
@click.option("--info", "info_model", metavar="MODEL", default=None,
              help="Print a model's metadata and the available providers, then exit.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(inp, out, model, outscale, tile, tile_pad, pre_pad, batch, backend, fp16, threads, alpha_upsampler,
         ext, suffix, skip_existing, max_pixels, max_memory, quiet, info_model, debug) -> None:
    """Upscale images with an exported super-resolution model.

    IN is an image, a folder or a glob ('photos/*.jpg'); OUT is a folder, or a file name for one image.

    \b
    Examples:
      sr-run photo.jpg photo_x4.png
      sr-run photos/ out/ --model model.onnx
      sr-run big.tif out/ --tile auto --max-memory 2G
      sr-run --info model.onnx
    """
    if info_model is None and (not inp or not out):
        raise click.UsageError("IN and OUT are required (or --info MODEL)")
    with cli_errors(debug):
        if info_model is not None:
            print_info(info_model)
            return
        result = _run(inp, out, model, outscale, _parse_tile(tile), tile_pad, pre_pad, batch, backend, fp16,
                      threads, alpha_upsampler, ext, suffix, skip_existing, max_pixels, max_memory, quiet, debug)
        if not quiet:
            click.echo(result.summary())
        if result.interrupted:
            raise SystemExit(130)
        if result.failed:
            raise SystemExit(1)


def _run(inp, out, model, outscale, tile, tile_pad, pre_pad, batch, backend, fp16, threads, alpha_upsampler,
         ext, suffix, skip_existing, max_pixels, max_memory, quiet, debug):
    from tqdm import tqdm

    from sr_runtime.api import Upscaler, _fp32_sibling, default_model_path
    from sr_runtime.backends.ort import read_onnx_info
    from sr_runtime.batch import collect_inputs, default_writers, plan_jobs, run_batch

    inputs = collect_inputs(inp)
    jobs = plan_jobs(inputs, out, suffix=suffix, ext=ext, single_file=Path(inp).is_file())
    path = Path(model) if model else default_model_path()

    def note(msg: str) -> None:
        if not quiet:
            tqdm.write(f"note: {msg}", file=sys.stderr)

    if path.suffix.lower() == ".onnx" and path.is_file() and fp16 is not None:
        info = read_onnx_info(path)
        if fp16 is False and info.precision == "float16":
            sib = _fp32_sibling(path)
            if sib is None:
                raise SrError("--fp32 was asked but the model is fp16",
                              "Pass the fp32 .onnx with --model (sr-export writes both).", path)
            note(f"--fp32: using {sib}")
            path = sib
        elif fp16 and info.precision == "float32":
            note("--fp16: this model is fp32 and precision comes from the file; export an fp16 one with "
                 "sr-export --fp16")
    up = Upscaler(path, tile, tile_pad, pre_pad, batch=batch, backend=backend, threads=threads,
                  fp16=bool(fp16), max_memory=max_memory, notify=note)
    with up:
        if not quiet:
            note(f"{path.name}: {up.info.arch} x{up.scale} on {up.provider}")
            if isinstance(tile, int) and tile > 0 and tile_pad < up.info.receptive_radius:
                note(f"--tile-pad {tile_pad} is below the model's receptive radius {up.info.receptive_radius}: "
                     "tile seams are possible")
        return run_batch(jobs, up.enhance, outscale=outscale, alpha_upsampler=alpha_upsampler,
                         skip_existing=skip_existing, max_pixels=max_pixels, quiet=quiet,
                         writers=default_writers(), debug=debug)


if __name__ == "__main__":
    main()
