"""``sr-run IN OUT --ray``: many files upscaled on a Ray cluster (Ray Data), with the local run's rules.

::

    driver:        plan the jobs (sr_runtime.run's naming and checks) -> one row per file
    Ray tasks:     read + decode each image (a video passes through: it is one item, never split by frame)
    actor pool:    one Upscaler per actor (any backend, the local tiler) -> upscale -> atomic write
    driver:        tally the result rows: one error line per failed file, a BatchResult, the exit code

Each actor holds one :class:`~sr_runtime.api.Upscaler` opened exactly as ``sr-run`` opens it
(:func:`sr_runtime.run.open_upscaler`), so tiles, batches, backends and the fp32 redo are the local path's; the
model files travel through Ray's object store and are kept once per node in a content-addressed cache folder.
Outputs are written by the actor that made them (no round trip through the driver), atomically
(:mod:`sr_runtime.scale.locations`). A failed file is a result row, never an exception: the run goes on.

Without an address a local Ray is started (``num_cpus`` limited) and shut down afterwards; with one the
command joins that cluster and leaves it running. Ray and pyarrow (extra ``ray``) are imported lazily.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from sr_runtime import signals
from sr_runtime.batch import (
    BatchResult,
    Job,
    check_writable_folder,
    claim_output,
    error_line,
    folder_job,
    note_writer,
    output_path,
    report_failure,
)
from sr_runtime.errors import MissingExtraError, SrError
from sr_runtime.image import (
    IMAGE_SUFFIXES,
    LoadedImage,
    decode_image,
    encode_image,
    prepare_for_format,
    read_image,
)
from sr_runtime.run import RunOptions, clean_stale_outputs, model_file, open_upscaler, prepare_jobs
from sr_runtime.scale.locations import (
    LIST_SUFFIXES,
    Location,
    exists,
    fetch_file,
    is_folder,
    is_uri,
    list_folder,
    make_folder,
    put_file,
    read_bytes,
    read_list,
    write_bytes,
)
from sr_runtime.video import VIDEO_SUFFIXES


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide ``sr-run --ray`` runs (the ``--ray-*``, ``--workers`` and ``--gpus-per-worker`` flags)."""

    address: str | None = None
    """A running cluster: ``auto``, ``HOST:6379`` or ``ray://HOST:10001``; None: start a local Ray for this run
    (or use the one this process already started)."""
    workers: int | None = None
    """Actors in the pool, each holding one model. None: one per ``gpus_per_worker`` GPUs of the cluster, or
    without GPUs one per CPU that the readers leave (at least 1); the pool then grows from 1 as work queues up."""
    gpus_per_worker: float = 0.0
    """GPUs each actor reserves (0: CPU actors; 1: one GPU each; 0.5: two actors share a GPU)."""
    num_cpus: int | None = None
    """CPUs of a local Ray (None: all of this machine's); ignored with ``address``."""

    def check(self) -> None:
        """Raises: SrError: a worker count below 1 or a negative GPU share."""
        if self.workers is not None and self.workers < 1:
            raise SrError(f"bad --workers {self.workers}", "Use 1 or more.")
        if self.gpus_per_worker < 0:
            raise SrError(f"bad --gpus-per-worker {self.gpus_per_worker:g}", "Use 0 (CPU) or a positive share.")


# --------------------------------------------------------------------------- planning (driver)
def _row(src: Location, dst: Location, video: bool = False, auto_ext: bool = False) -> dict[str, Any]:
    """One job as a Ray Data row: plain strings and flags (no pickled objects in the dataset)."""
    return {"src_key": src.key, "src": src.path, "dst_key": dst.key, "dst": dst.path, "video": video,
            "auto_ext": auto_ext}


def _loc(row: dict[str, Any], which: str) -> Location:
    return Location(row[f"{which}_key"], row[which])


def _is_list_file(inp: str) -> bool:
    return Path(inp).suffix.lower() in LIST_SUFFIXES and (is_uri(inp) or Path(inp).is_file())


def plan_rows(inp: str | Path, out: str | Path, opts: RunOptions) -> list[dict[str, Any]]:
    """The jobs of a Ray run, checked before Ray starts.

    A local IN (file, folder or glob) written to a local OUT is planned by :func:`sr_runtime.run.prepare_jobs`,
    exactly as without ``--ray``. A list file, a URI on either side, or a local IN written to a URI OUT is
    planned here with the same naming (``OUT/<stem>_<suffix>.<ext>``) into the folder OUT.

    Raises:
        SrError: as :func:`~sr_runtime.run.prepare_jobs`; a remote IN that is missing or empty.
    """
    inp, out = os.fspath(inp), os.fspath(out)
    if not is_uri(inp) and not is_uri(out) and not _is_list_file(inp):
        return [_row(Location("", os.path.abspath(j.src)), Location("", os.path.abspath(j.dst)), j.video,
                     j.auto_ext) for j in prepare_jobs(inp, out, opts)]
    opts.check()
    folder = Location.parse(out) if is_uri(out) else Location("", os.path.abspath(out))
    _check_output_folder(folder)
    rows: list[dict[str, Any]] = []
    seen: dict[str, Location] = {}
    for src in _sources(inp):
        video = _probe_video(src) if src.local else PurePosixPath(src.path).suffix.lower() in VIDEO_SUFFIXES
        job = folder_job(PurePosixPath(src.name), PurePosixPath(), suffix=opts.suffix, ext=opts.ext, video=video)
        dst = folder.child(job.dst.name)
        claim_output(seen, src, dst, str(src), str(dst))
        rows.append(_row(src, dst, video, job.auto_ext))
    if folder.local:
        clean_stale_outputs([Job(Path(r["src"]), Path(r["dst"])) for r in rows])
    return rows


def _probe_video(src: Location) -> bool:
    from sr_runtime.video.probe import is_video

    return is_video(src.path)


def _sources(inp: str) -> list[Location]:
    """The inputs of a list file, a remote folder, a remote file, or a local file, folder or glob."""
    if _is_list_file(inp):
        return read_list(Location.parse(inp))
    if not is_uri(inp):
        from sr_runtime.batch import collect_inputs

        return [Location("", os.path.abspath(p)) for p in collect_inputs(inp)]
    loc = Location.parse(inp)
    if is_folder(loc):
        found = list_folder(loc, IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        if not found:
            raise SrError("no images or videos in the folder",
                          f"sr-run reads {', '.join(IMAGE_SUFFIXES)} files and videos.", loc)
        return found
    if not exists(loc):
        raise SrError("input not found", "Give an image, a folder (prefix) or a list file.", loc)
    return [loc]


def _check_output_folder(folder: Location) -> None:
    if not folder.local:
        make_folder(folder)
        return
    if os.path.exists(folder.path) and not os.path.isdir(folder.path):
        raise SrError("OUT is a file, not a folder", "Give a folder as OUT with a list file or a URI.", folder)
    check_writable_folder(Path(folder.path))


def _split_existing(rows: list[dict[str, Any]], skip_existing: bool) -> tuple[list[dict[str, Any]], int]:
    """``--skip-existing``: the rows whose output is not there yet, and how many were skipped."""
    if not skip_existing:
        return rows, 0
    todo = [r for r in rows if not exists(_loc(r, "dst"))]
    return todo, len(rows) - len(todo)


# --------------------------------------------------------------------------- the model files (driver -> actors)
def model_files(path: Path) -> dict[str, bytes]:
    """The files an actor needs to open ``path`` as the driver would: the model, an engine's sidecar
    ``<engine>.json`` and an fp16 model's fp32 sibling (the NaN-tile redo), by name."""
    from sr_runtime.api import _fp32_sibling

    files = [path, path.with_name(path.name + ".json"), _fp32_sibling(path)]
    return {p.name: p.read_bytes() for p in files if p is not None and p.is_file()}


def model_cache_dir() -> Path:
    """Where actors keep the model files they were sent: ``$SR_DEPLOY_CACHE/models``, else
    ``$XDG_CACHE_HOME/sr-deploy/models``, else ``~/.cache/sr-deploy/models`` (one folder per content hash)."""
    env = os.environ.get("SR_DEPLOY_CACHE")
    if env:
        return Path(env) / "models"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sr-deploy" / "models"


def materialize(files: dict[str, bytes], name: str) -> Path:
    """Write the model files into this node's cache folder (once per content) and return the model's path."""
    from sr_runtime.fileio import atomic_write_bytes

    digest = hashlib.sha256()
    for n in sorted(files):
        digest.update(n.encode() + b"\0" + hashlib.sha256(files[n]).digest())
    folder = model_cache_dir() / digest.hexdigest()[:16]
    for n, data in files.items():
        p = folder / n
        if not (p.is_file() and p.stat().st_size == len(data)):
            atomic_write_bytes(p, data)
    return folder / name


# --------------------------------------------------------------------------- Ray tasks: read and decode
def read_row(row: dict[str, Any], max_pixels: int | None = None, debug: bool = False) -> dict[str, Any]:
    """Decode one image (a Ray task): the pixels as raw bytes with shape and dtype, or the file's error line.
    Videos pass through undecoded (the actor reads them with the video pipeline)."""
    out = {**row, "data": b"", "shape": [], "dtype": "", "error": "", "trace": ""}
    if row["video"]:
        return out
    src = _loc(row, "src")
    try:
        img = read_image(src.path, max_pixels) if src.local else _decode(src, max_pixels)
    except Exception as exc:  # noqa: BLE001 - reported per file by the driver
        out.update(error=error_line(src, exc), trace="".join(traceback.format_exception(exc)) if debug else "")
        return out
    pixels = np.ascontiguousarray(img.pixels)
    out.update(data=pixels.tobytes(), shape=list(pixels.shape), dtype=pixels.dtype.str)
    return out


def _decode(src: Location, max_pixels: int | None) -> LoadedImage:
    """Decode a remote image; its errors name the URI (a ``Path`` would fold ``s3://`` into ``s3:/``)."""
    try:
        return decode_image(read_bytes(src), src.name, max_pixels)
    except SrError as exc:
        exc.path = str(src)
        raise


# --------------------------------------------------------------------------- the actor: upscale and write
class UpscaleWorker:
    """A Ray Data callable class: one per actor, holding one Upscaler; ``__call__`` handles one row.

    A model that cannot be opened here does not kill the actor (Ray would retry it and print its traceback):
    every row then carries the model's error, and the driver stops the run with that one line.
    """

    def __init__(self, model: list, name: str, options: RunOptions, origin: str) -> None:
        import ray

        self.opts = options
        self.up = None
        self.model_error = ""
        path = materialize(ray.get(model[0]), name)
        try:
            self.up = open_upscaler(path, options)
        except SrError as exc:  # named as the driver knows it, not by this node's cache folder
            here = str(path.parent)
            where = exc.path.replace(here, origin) if exc.path else None
            self.model_error = json.dumps([exc.message.replace(here, origin), exc.hint, where])

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        src, dst = _loc(row, "src"), _loc(row, "dst")
        result = {"src": str(src), "output": "", "status": "failed", "error": row["error"], "trace": row["trace"],
                  "notes": "", "pixels": 0, "frames": 0, "seconds": 0.0, "model_error": self.model_error}
        if row["error"] or self.model_error:
            return result
        t0 = time.perf_counter()
        try:
            if row["video"]:
                result.update(self._video(src, dst))
            else:
                result.update(self._image(row, dst))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            result.update(error=error_line(src, exc),
                          trace="".join(traceback.format_exception(exc)) if self.opts.debug else "")
            return result
        result.update(status="done", seconds=time.perf_counter() - t0)
        return result

    def _image(self, row: dict[str, Any], dst: Location) -> dict[str, Any]:
        shape = tuple(int(v) for v in row["shape"])
        pixels = np.frombuffer(row["data"], dtype=np.dtype(row["dtype"])).reshape(shape)
        out, mode = self.up.enhance(pixels, self.opts.outscale, self.opts.alpha_upsampler)
        job = Job(PurePosixPath(row["src"]), PurePosixPath(dst.name), bool(row["auto_ext"]))
        final = dst.with_name(output_path(job, mode).name)
        notes = _write_image(final, out)
        return {"output": str(final), "notes": "\n".join(f"{final}: {n}" for n in notes), "pixels": shape[0] * shape[1]}

    def _video(self, src: Location, dst: Location) -> dict[str, Any]:
        from sr_runtime.video.pipeline import upscale_video

        vopts = dataclasses.replace(self.opts.video_options(), quiet=True)
        if src.local and dst.local:
            return {"output": dst.path, "frames": upscale_video(src.path, dst.path, self.up, vopts).frames}
        with tempfile.TemporaryDirectory(prefix="sr-ray-video-") as tmp:
            local_src = Path(src.path) if src.local else Path(tmp) / f"in{PurePosixPath(src.path).suffix}"
            if not src.local:
                fetch_file(src, local_src)
            local_dst = Path(dst.path) if dst.local else Path(tmp) / dst.name
            frames = upscale_video(local_src, local_dst, self.up, vopts).frames
            if not dst.local:
                put_file(local_dst, dst)
        return {"output": str(dst), "frames": frames}


def _write_image(dst: Location, img: np.ndarray) -> list[str]:
    """Encode and write atomically (local: :func:`sr_runtime.image.write_image`); returns the format notes."""
    if dst.local:
        from sr_runtime.image import write_image

        return write_image(dst.path, img)
    img, notes = prepare_for_format(img, PurePosixPath(dst.path).suffix)
    write_bytes(dst, encode_image(img, PurePosixPath(dst.path).suffix))
    return notes


# --------------------------------------------------------------------------- the run (driver)
def _require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the extra installs ray[data]; a bare ray lacks pandas/pyarrow
    except ImportError:
        raise MissingExtraError("ray", "ray", "sr-run --ray") from None
    return ray


@contextlib.contextmanager
def ray_session(ropts: RayOptions, quiet: bool = False) -> Iterator[Any]:
    """Ray for one run: the running one of this process, the cluster at ``ropts.address``, or a local one
    started here (``num_cpus`` limited) and shut down on the way out, also on Ctrl-C.

    Ray's ``init`` installs its own SIGTERM handler (``sys.exit``); the previous handlers are put back, so
    SIGTERM and Ctrl-C stop the command with the documented exit codes.

    Raises:
        MissingExtraError: Ray is not installed. SrError: no cluster at ``address``.
    """
    ray = _require_ray()
    started = not ray.is_initialized()
    if started:
        _init(ray, ropts, quiet)
    try:
        yield ray
    finally:
        if started:
            with signals.deferred():
                ray.shutdown()


def _init(ray: Any, ropts: RayOptions, quiet: bool) -> None:
    main = threading.current_thread() is threading.main_thread()
    saved = {s: signal.getsignal(s) for s in signals.HANDLED} if main else {}
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": not quiet,
                              "logging_level": logging.ERROR if quiet else logging.INFO}
    try:
        if ropts.address:
            ray.init(address=ropts.address, **kwargs)
        else:
            ray.init(num_cpus=ropts.num_cpus or os.cpu_count() or 1, **kwargs)
    except ConnectionError as exc:
        raise SrError(f"no Ray cluster at {ropts.address} ({' '.join(str(exc).split())[:200]})",
                      "Start one with 'ray start --head', or omit --ray-address for a local Ray.") from None
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


def _pool(ray: Any, ropts: RayOptions, cpus_per_worker: float) -> Any:
    """The actor pool: ``workers`` actors, or a pool growing from 1 up to what the cluster holds."""
    if ropts.workers:
        return ray.data.ActorPoolStrategy(size=ropts.workers)
    res = ray.cluster_resources()
    if ropts.gpus_per_worker > 0:
        most = int(res.get("GPU", 0) // ropts.gpus_per_worker)
        if most < 1:
            raise SrError(f"the Ray cluster has {res.get('GPU', 0):g} GPUs, --gpus-per-worker asks "
                          f"{ropts.gpus_per_worker:g}", "Lower --gpus-per-worker, or run CPU actors (0).")
    else:
        # one CPU stays free for the read tasks: actors holding every CPU would starve the stage that feeds them
        most = int(max(1.0, res.get("CPU", 1) - 1) // cpus_per_worker)
    return ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, most))


def _dataset(ray: Any, rows: list[dict[str, Any]], opts: RunOptions, ropts: RayOptions, path: Path) -> Any:
    """rows -> read tasks -> the actor pool."""
    cpus = float(opts.threads or 1)
    model = [ray.put(model_files(path))]  # in a list: Ray passes the reference, each actor gets it once
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    # with CPU actors Ray Data fuses the reads into them (same resources); GPU actors keep them apart
    ds = ds.map(read_row, fn_kwargs={"max_pixels": opts.max_pixels, "debug": opts.debug})
    return ds.map(UpscaleWorker, fn_constructor_kwargs={"model": model, "name": path.name, "options": opts,
                                                        "origin": str(path.parent)},
                  compute=_pool(ray, ropts, cpus), num_cpus=cpus, num_gpus=ropts.gpus_per_worker or None)


class _Tally:
    """Result rows as they arrive -> one BatchResult; failed files and notes printed at once."""

    def __init__(self, opts: RunOptions, skipped: int) -> None:
        self.opts, self.note = opts, note_writer(opts.quiet)
        self.done = self.failed = self.pixels = self.frames = 0
        self.busy = {"image": 0.0, "video": 0.0}
        """Actor seconds per kind: the wall time is split by them for the MP/s and frames/s of the summary."""
        self.skipped = skipped
        self.errors: list[str] = []
        self.outputs: list[Path] = []

    def add(self, row: dict[str, Any]) -> None:
        """Count one result row.

        Raises:
            SrError: the actors cannot open the model (the run stops, as a local run does before any file).
        """
        if row["model_error"]:
            raise SrError(*json.loads(row["model_error"]))
        if row["status"] != "done":
            self.failed += 1
            self.errors.append(row["error"])
            report_failure(row["error"], row["trace"])
            return
        self.done += 1
        self.pixels += int(row["pixels"])
        self.frames += int(row["frames"])
        self.busy["video" if int(row["frames"]) else "image"] += float(row["seconds"])
        self.outputs.append(Path(row["output"]))
        for n in filter(None, row["notes"].split("\n")):
            self.note(n)

    def result(self, seconds: float) -> BatchResult:
        total = sum(self.busy.values())
        frame_seconds = seconds * self.busy["video"] / total if total > 0 else 0.0
        return BatchResult(self.done, self.failed, self.skipped, seconds, self.pixels / 1e6, tuple(self.errors),
                           tuple(self.outputs), frames=self.frames, frame_seconds=frame_seconds)


def upscale_files_ray(inp: str | Path, out: str | Path, options: RunOptions | None = None,
                      ray_options: RayOptions | None = None) -> BatchResult:
    """:func:`sr_runtime.run.upscale_files` on Ray: the same naming, checks, ``--skip-existing``, error lines and
    atomic writes, with decoding in Ray tasks and the model in an actor pool.

    Args:
        inp: an image, a folder, a glob, a list file (``.txt``/``.lst``, one path or URI a line) or a URI that
            pyarrow reads (``s3://bucket/photos/``).
        out: a folder or a URI folder (a single local input may also name the output file, as without Ray).
        options: the ``sr-run`` options (``threads`` = CPUs each actor reserves and ONNX Runtime uses; default 1).
        ray_options: cluster address, workers, GPUs per worker.

    Returns:
        The counts, error lines and outputs, as for a local run.

    Raises:
        SrError: nothing to do, a bad option or path, no cluster, or the model cannot be opened by the actors;
            errors of single files are in the result.
    """
    opts = options or RunOptions()
    ropts = ray_options or RayOptions()
    ropts.check()
    rows = plan_rows(inp, out, opts)
    todo, skipped = _split_existing(rows, opts.skip_existing)
    path = model_file(opts, note_writer(opts.quiet))
    tally = _Tally(opts, skipped)
    t0 = time.perf_counter()
    if todo:
        with ray_session(ropts, opts.quiet) as ray:
            _quiet_ray_data(ray, opts.quiet)
            try:
                for row in _dataset(ray, todo, opts, ropts, path).iter_rows():
                    tally.add(row)
            except ray.exceptions.RayError as exc:
                raise _ray_failure(exc) from None
    return tally.result(time.perf_counter() - t0)


def _quiet_ray_data(ray: Any, quiet: bool) -> None:
    """Ray Data's own progress bars, unless ``quiet``."""
    ctx = ray.data.DataContext.get_current()
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx.enable_progress_bars = not quiet


def _ray_failure(exc: BaseException) -> SrError:
    """The one-line error for a Ray failure that no file owns: an actor that cannot open the model (its
    :class:`SrError` is passed on as it is), a lost node, a dead cluster."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, SrError):
            return cur
        cur = getattr(cur, "cause", None) or cur.__cause__ or cur.__context__
    text = " ".join(str(exc).split())
    return SrError(f"the Ray run failed ({type(exc).__name__}: {text[:300]})",
                   "Re-run with --debug; 'ray status' shows the cluster.")
