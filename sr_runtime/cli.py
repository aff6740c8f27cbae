"""sr-run: upscale images with an exported model (torch-free)."""

from __future__ import annotations

from sr_runtime import signals  # first: Ctrl-C/SIGTERM are handled from here on, also while the rest loads

signals.install_at_start(__name__, "sr-run")

import json
import signal
from pathlib import Path

import click

from sr_runtime import __version__
from sr_runtime.errors import SrError, cli_errors

_TILE_HELP = "Tile size in input pixels, 0 for the whole image, or 'auto' (largest that fits --max-memory)."


class UpstreamOption(click.Option):
    """An option that also takes upstream's underscore spelling (``--tile_pad``), accepted but not listed in
    ``--help`` (docs/upstream.md maps every upstream flag)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.shown = [o for o in self.opts if not (o.startswith("--") and "_" in o)]

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        every = self.opts
        self.opts = self.shown
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = every


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
    from sr_runtime.backends.ort import available_providers
    from sr_runtime.errors import ModelFileError
    from sr_runtime.info import MODEL_SUFFIXES_TORCH, ModelInfo
    from sr_runtime.tiling import default_pad

    p = Path(model)
    if p.suffix.lower() in MODEL_SUFFIXES_TORCH:
        from sr_runtime.pth_model import exported_onnx

        p = exported_onnx(p, lambda line: click.echo(f"note: {line}", err=True))
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
        info = _onnx_info(p)
    click.echo(f"model: {p}")
    for k, v in info.to_dict().items():
        if v in ({}, "", None) and k not in ("arch", "scale"):
            continue
        click.echo(f"  {k}: {json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")
    for k, v in extra.items():
        click.echo(f"  engine.{k}: {json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}")
    if info.extra.get("probed"):
        click.echo("  no sr-deploy metadata: scale and channels found by a probe run; receptive radius unknown "
                   "(sr-export --metadata MODEL.onnx measures it and writes a copy with metadata)")
    else:
        click.echo(f"  safe --tile-pad: >= {info.receptive_radius} (receptive radius; tiled == whole image); "
                   f"default here: {default_pad(info)}")
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
    _print_cpu_backends()


def _print_cpu_backends() -> None:
    """OpenVINO's version and what this CPU reports to it, and what --backend auto runs an .onnx on."""
    from sr_runtime.backends import auto_choice
    from sr_runtime.backends.openvino import cpu_report, reduced_precision_for

    ov = cpu_report()
    if ov:
        click.echo(f"openvino: {ov['version']}; CPU '{ov['device']}' reports {', '.join(ov['capabilities'])} "
                   f"(--fp16 computes in {reduced_precision_for(ov['capabilities'])}, else f32)")
    else:
        click.echo("openvino: not installed (pip install 'sr-deploy[openvino]')")
    click.echo(f"--backend auto runs .onnx on: {auto_choice()}")


def _onnx_info(path: Path):
    """The metadata of an ONNX file, or what a probe run finds for a model without it."""
    from sr_runtime.info import ModelInfo, read_onnx_metadata
    from sr_runtime.probe import has_metadata

    props = read_onnx_metadata(path)
    if has_metadata(props):
        return ModelInfo.from_metadata_props(props, path)
    from sr_runtime.backends.ort import OrtBackend

    with OrtBackend(path, "cpu") as be:
        return be.info


def _ray_flags(flags: dict) -> dict | None:
    """Take the Ray flags out of ``flags``: None without ``--ray``, else the :class:`RayOptions` fields.

    Raises:
        click.UsageError: a Ray flag without ``--ray``.
    """
    use_ray = flags.pop("use_ray")
    ray = {"address": flags.pop("ray_address"), "workers": flags.pop("workers"),
           "gpus_per_worker": flags.pop("gpus_per_worker")}
    if not use_ray:
        given = {"address": "--ray-address", "workers": "--workers", "gpus_per_worker": "--gpus-per-worker"}
        if any(ray.values()):
            raise click.UsageError(f"{', '.join(given[k] for k, v in ray.items() if v)} needs --ray")
        return None
    return ray


def _run(inp: str, out: str, options, ray: dict | None):
    """``upscale_files``, or with ``--ray`` ``upscale_files_ray``."""
    if ray is None:
        from sr_runtime.run import upscale_files

        return upscale_files(inp, out, options)
    from sr_runtime.scale.ray_batch import RayOptions, upscale_files_ray

    return upscale_files_ray(inp, out, options, RayOptions(**ray))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="sr-run", message="%(prog)s (sr-deploy) %(version)s")
@click.argument("inp", metavar="IN", required=False)
@click.argument("out", metavar="OUT", required=False)
@click.option("-i", "--input", "inp_opt", metavar="IN", default=None, help="IN as an option (upstream's and ncnn's -i).")
@click.option("-o", "--output", "out_opt", metavar="OUT", default=None, help="OUT as an option (-o).")
@click.option("-m", "--model", "--model_path", cls=UpstreamOption, type=click.Path(), default=None,
              help="Model: .onnx, .engine/.plan, or a .pth/.safetensors checkpoint (exported once and cached; needs "
                   "the export extra). Default: the shipped demo model (see below).")
@click.option("-n", "--name", "--model_name", "model_name", cls=UpstreamOption, metavar="NAME", default=None,
              help="A model by name from the models folders (--models-dir, $SR_DEPLOY_MODELS, ./weights, "
                   "~/.local/share/sr-deploy/models), e.g. -n RealESRGAN_x4plus.")
@click.option("--models-dir", type=click.Path(file_okay=False), default=None, help="First folder -n looks in.")
@click.option("--list-models", is_flag=True, help="List the models that -n finds, then exit.")
@click.option("-s", "--outscale", type=float, default=None,
              help="Final scale; another value than the model's is a Lanczos resize afterwards.")
@click.option("--scale", type=click.IntRange(1), default=None,
              help="The model's own scale, for an ONNX without metadata whose scale a probe cannot find.")
@click.option("-t", "--tile", default="auto", show_default=True, help=_TILE_HELP)
@click.option("--tile-pad", "--tile_pad", cls=UpstreamOption, type=click.IntRange(0), default=None,
              help="Context pixels around each tile (exact when >= the model's receptive radius, see --info). "
                   "Default: the radius when it is at most 40 (SRVGGNetCompact: num_conv + 2), else 10.")
@click.option("--pre-pad", "--pre_pad", cls=UpstreamOption, type=click.IntRange(0), default=0, show_default=True,
              help="Reflect padding at the bottom/right edges, cropped afterwards.")
@click.option("-x", "--tta", is_flag=True,
              help="Test-time augmentation (ncnn's -x): mean over 8 flips/rotations, 8x slower, slightly better.")
@click.option("-b", "--batch", type=click.IntRange(1), default=4, show_default=True, help="Tiles per model call.")
@click.option("--backend", type=click.Choice(["auto", "ort", "openvino", "ort-cuda", "trt", "triton"]), default="auto",
              show_default=True, help="auto: TensorRT for engines; for .onnx ONNX Runtime CUDA if usable, else the "
                                      "fastest CPU backend installed (OpenVINO, else ONNX Runtime); triton: a Triton "
                                      "server runs model -m NAME (tiles cut here).")
@click.option("--triton-url", default=None, metavar="HOST:PORT",
              help="Triton's HTTP endpoint for --backend triton (default localhost:8000).")
@click.option("--fp16/--fp32", "fp16", default=None,
              help="Precision comes from the model file (sr-export --fp16 writes x_fp16.onnx); --fp32 with an "
                   "fp16 model uses its fp32 sibling x.onnx when there is one. Default: the file's own precision.")
@click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads for ONNX Runtime.")
@click.option("--alpha-upsampler", "--alpha_upsampler", cls=UpstreamOption,
              type=click.Choice(["model", "realesrgan", "bicubic", "lanczos", "linear"]),
              default="model", show_default=True, help="How the alpha channel is upscaled ('realesrgan' = model).")
@click.option("-f", "--ext", type=click.Choice(["auto", "png", "jpg", "webp", "tif", "bmp"]), default="auto",
              show_default=True, help="Output format; auto keeps the input's (png for images with alpha).")
@click.option("--background", default="white", show_default=True,
              help="Colour under transparent pixels for jpg/bmp output (name, #rrggbb or r,g,b).")
@click.option("--suffix", default="out", show_default=True, help="Appended to output names in a folder ('' for none).")
@click.option("--skip-existing", is_flag=True, help="Skip inputs whose output exists.")
@click.option("--overwrite", is_flag=True, help="Replace OUT when it names an existing file (refused otherwise).")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse inputs with more pixels than this.")
@click.option("--max-memory", default=None,
              help="Memory budget of one image (e.g. 4G): bigger jobs are refused, --tile auto fits its tiles in it. "
                   "Default: the free RAM (tiles: 1/4 of it).")
@click.option("--stream", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Write png/tif outputs in bands as tiles finish (auto: big images).")
@click.option("--codec", default="libx264", show_default=True,
              help="Video encoder (e.g. libx265, libvpx-vp9, libsvtav1, ffv1, png).")
@click.option("--crf", type=click.IntRange(0, 63), default=None,
              help="Video quality, lower is better. Default: 18 where the codec takes a CRF.")
@click.option("--preset", default=None, help="Video encoder preset (e.g. slow for libx264/libx265).")
@click.option("--pix-fmt", default=None,
              help="Video pixel format. Default: the input's when the codec can, else yuv420p (10-bit stays 10-bit).")
@click.option("--ray", "use_ray", is_flag=True,
              help="Run on Ray (extra 'ray'): decoding in tasks, the model in an actor pool; IN and OUT may be "
                   "s3:// or gs:// URIs, IN a list file (.txt).")
@click.option("--ray-address", default=None, metavar="auto|ADDR",
              help="With --ray: a running cluster (default: a local Ray started and stopped by this run).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="With --ray: actors, each holding one model (default: as many as the cluster holds).")
@click.option("--gpus-per-worker", type=click.FloatRange(0), default=0.0,
              help="With --ray: GPUs each actor reserves (0: CPU; 0.5: two actors share a GPU).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars, notes or summary.")
@click.option("--info", "info_model", metavar="MODEL", default=None,
              help="Print a model's metadata and the available providers, then exit.")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(inp: str | None, out: str | None, inp_opt: str | None, out_opt: str | None, tile: str,
         info_model: str | None, list_models: bool, debug: bool, **flags) -> None:
    """Upscale images and videos with an exported super-resolution model.

    IN is an image, a video, a folder or a glob ('photos/*.jpg'); OUT is a folder, or a file name for one
    input (-i IN / -o OUT work too). Videos keep their frames, timing, sound and colours (extra 'video':
    pip install 'sr-deploy[video]').

    Without --model the shipped default model runs: a small demo model (0.36 M parameters) that is much weaker
    than the official ones; for real work download an official checkpoint (github.com/xinntao/Real-ESRGAN
    releases) and pass it: sr-run IN OUT -m RealESRGAN_x4plus.pth (exported once; or sr-export it first).

    \b
    Examples:
      sr-run photo.jpg photo_x4.png
      sr-run -i inputs -o results -m RealESRGAN_x4plus.pth --tile_pad 10
      sr-run clip.mp4 clip_x4.mp4 --crf 16
      sr-run photos/ out/ -n realesr-animevideov3 -x -f png
      sr-run big.tif out/ --tile auto --max-memory 2G
      sr-run s3://bucket/photos/ s3://bucket/x4/ --ray --ray-address auto --gpus-per-worker 1
      sr-run photos/ out/ --backend triton --triton-url localhost:8000 -m realesr-general-x4v3
      sr-run --info model.onnx
    """
    if not list_models and info_model is None:
        inp, out = _in_out(inp, out, inp_opt, out_opt)
    ray = _ray_flags(flags)
    with cli_errors(debug):
        if list_models:
            print_models(flags["models_dir"])
            return
        if info_model is not None:
            print_info(info_model)
            return
        from sr_runtime.codec_messages import python_stderr_apart
        from sr_runtime.run import RunOptions

        with python_stderr_apart():  # codecs' C-level stderr is captured per decode; ours stays whole
            result = _run(inp, out, RunOptions(tile=_parse_tile(tile), debug=debug, **flags), ray)
        if not flags["quiet"]:
            click.echo(result.summary())
        if result.interrupted:  # the first Ctrl-C let the current file finish: now say so, exit 130
            raise signals.Interrupted(signal.SIGINT)
        if result.failed:
            raise SystemExit(1)


def _in_out(inp: str | None, out: str | None, inp_opt: str | None, out_opt: str | None) -> tuple[str, str]:
    """IN and OUT from the positionals and ``-i``/``-o``: the positionals fill what the options leave open.

    Raises:
        click.UsageError: one missing, or given twice.
    """
    given = [a for a in (inp, out) if a is not None]
    need = [inp_opt is None, out_opt is None]
    if len(given) > sum(need):
        raise click.UsageError("IN or OUT given twice (as an argument and as -i/-o)")
    fill = iter(given)
    inp_v = inp_opt if inp_opt is not None else next(fill, None)
    out_v = out_opt if out_opt is not None else next(fill, None)
    if not inp_v or not out_v:
        raise click.UsageError("IN and OUT are required (or -i IN -o OUT, --info MODEL, --list-models)")
    return inp_v, out_v


def print_models(models_dir: str | None) -> None:
    """Print every models folder ``-n`` looks in, in order, with the models found there."""
    from sr_runtime.api import DEFAULT_MODEL
    from sr_runtime.model_names import list_models

    for folder, found in list_models(models_dir):
        state = "" if folder.is_dir() else " (does not exist)"
        click.echo(f"{folder}{state}")
        for m in found:
            click.echo(f"  {m.name:<32} {m.path.name}")
    click.echo(f"default (no --model, no -n): {DEFAULT_MODEL} (a small demo model)")


if __name__ == "__main__":
    main()
