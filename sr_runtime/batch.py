"""Files and folders -> upscaled files: a reader thread, the model in the calling thread, writer threads.

Upstream's PrefetchReader/IOConsumer, done properly: memory is bounded by the two queue sizes, every output is
written to a temp file in the target folder and renamed, a bad file is reported in one line and the others
still run, and Ctrl-C stops after the current file without leaving anything partial.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from sr_runtime import signals
from sr_runtime.errors import SrError
from sr_runtime.image import IMAGE_SUFFIXES, LoadedImage, read_image, write_image
from sr_runtime.video import VIDEO_SUFFIXES
from sr_runtime.video.probe import is_video

if TYPE_CHECKING:
    from sr_runtime.bigimage import ImagePlanner


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes."""

    src: Path
    """Input image."""
    dst: Path
    """Output image (its suffix is the format)."""
    auto_ext: bool = False
    """The format follows the input (``--ext auto``): an image with alpha is then written as png."""
    video: bool = False
    """A video (found by probing, :func:`sr_runtime.video.probe.is_video`): upscaled frame by frame into a video."""


@dataclass(frozen=True)
class BatchResult:
    """What a batch did."""

    done: int
    """Files written."""
    failed: int
    """Files that failed (each reported in ``errors``)."""
    skipped: int
    """Files skipped because their output exists (``--skip-existing``)."""
    seconds: float
    """Wall time."""
    megapixels: float
    """Input megapixels processed."""
    errors: tuple[str, ...] = ()
    """One line per failed file."""
    outputs: tuple[Path, ...] = ()
    """Files written."""
    interrupted: bool = False
    """Stopped by Ctrl-C."""
    frames: int = 0
    """Video frames written."""
    frame_seconds: float = 0.0
    """Wall time spent on videos (part of ``seconds``)."""

    def summary(self) -> str:
        """``done 3, failed 1, skipped 0 in 2.1 s (1.52 input MP/s)``; with videos ``(..., 240 frames at 9.8
        frames/s)``. The rate counts input megapixels, as every speed figure of sr-deploy does."""
        rates = []
        if self.megapixels > 0 or not self.frames:
            image_s = self.seconds - self.frame_seconds
            rates.append(f"{self.megapixels / image_s if image_s > 0 else 0.0:.2f} input MP/s")
        if self.frames:
            fps = self.frames / self.frame_seconds if self.frame_seconds > 0 else 0.0
            rates.append(f"{self.frames} frames at {fps:.2f} frames/s")
        text = (f"done {self.done}, failed {self.failed}, skipped {self.skipped} in {self.seconds:.1f} s "
                f"({', '.join(rates)})")
        return text + (", interrupted" if self.interrupted else "")

    def __add__(self, other: BatchResult) -> BatchResult:
        """Two runs one after the other (images, then videos) as one result."""
        return BatchResult(self.done + other.done, self.failed + other.failed, self.skipped + other.skipped,
                           self.seconds + other.seconds, self.megapixels + other.megapixels,
                           self.errors + other.errors, self.outputs + other.outputs,
                           self.interrupted or other.interrupted, self.frames + other.frames,
                           self.frame_seconds + other.frame_seconds)


# --------------------------------------------------------------------------- planning
def collect_inputs(inp: str | Path) -> list[Path]:
    """Files named by ``inp``: a file, a folder (its entries with an image suffix, and its videos, sorted, not
    recursive) or a glob. Entries that are not regular files are kept: reading them fails with a line saying
    what they are. In a folder, files without an image suffix are probed (:func:`is_video`).

    Raises:
        SrError: nothing matches.
    """
    p = Path(inp)
    if p.is_file():
        return [p]
    if p.is_dir():
        # every entry named like an image, also a folder "x.png" or a broken link: each is reported and counted
        # as failed by the reader rather than skipped in silence; other files count when they probe as videos
        files = sorted(f for f in p.iterdir()
                       if f.suffix.lower() in IMAGE_SUFFIXES or (f.is_file() and is_video(f)))
        if not files:
            raise SrError("no images or videos in the folder",
                          f"sr-run reads {', '.join(IMAGE_SUFFIXES)} files and videos.", p)
        return files
    if glob.has_magic(str(inp)):
        files = sorted(Path(f) for f in glob.glob(str(inp), recursive=True)
                       if Path(f).is_file() or Path(f).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SrError("the pattern matches no files", "Check the pattern (quote it for the shell).", inp)
        return files
    raise SrError("input not found", "Give an image file, a folder or a glob pattern.", p)


def _real(p: Path) -> str:
    """The canonical path (``os.path.realpath`` does not raise on a symlink loop, ``Path.resolve`` does)."""
    return os.path.realpath(p)


def _norm_ext(suffix: str) -> str:
    e = suffix.lower().lstrip(".")
    return {"jpeg": "jpg", "tiff": "tif"}.get(e, e)


def plan_jobs(inputs: list[Path], out: str | Path, *, suffix: str = "out", ext: str = "auto",
              single_file: bool = False) -> list[Job]:
    """Map inputs to outputs (upstream naming: ``OUT/<stem>_<suffix>.<ext>``).

    Args:
        inputs: from :func:`collect_inputs`.
        out: a folder, or for a single input a file name (an image suffix for an image, a container
            suffix such as ``.mp4`` for a video).
        suffix: appended to the stem (``""``: none).
        ext: ``auto`` (the input's format), or ``png``/``jpg``/``webp``/...
        single_file: kept for callers of earlier versions; one input and an OUT with an image or video
            suffix (that is not an existing folder) always name the output file itself.

    Raises:
        SrError: OUT names a file (an image or video suffix, or an existing file) while there are several
            inputs; an output would overwrite its input; two inputs map to one output.
    """
    del single_file
    o = Path(out)
    names_file = o.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES and not o.is_dir()
    as_file = len(inputs) == 1 and names_file
    if not as_file and (names_file or (o.exists() and not o.is_dir())):
        what = "is an existing file" if o.exists() else f"has a file suffix ({o.suffix})"
        raise SrError(f"OUT {what}, but IN has {len(inputs)} file{'' if len(inputs) == 1 else 's'}",
                      "Give a folder as OUT (each output is written there as <name>_<suffix>.<ext>).", o)
    as_file = as_file and o.suffix.lower() in IMAGE_SUFFIXES
    jobs: list[Job] = []
    seen: dict[str, Path] = {}
    for src in inputs:
        job = (_video_job(src, o, suffix, len(inputs) == 1) if is_video(src)
               else _image_job(src, o, as_file, suffix, ext))
        claim_output(seen, src, job.dst, _real(src), _real(job.dst))
        jobs.append(job)
    return jobs


def claim_output(seen: dict[str, Any], src: Any, dst: Any, src_key: str, dst_key: str) -> None:
    """Record that ``src`` writes ``dst`` (``*_key``: their canonical names) in ``seen``.

    Raises:
        SrError: the output would overwrite its input, or another input already writes it.
    """
    if dst_key == src_key:
        raise SrError("the output would overwrite the input", "Use another OUT folder or a --suffix.", src)
    if dst_key in seen:
        raise SrError(f"{seen[dst_key].name} and {src.name} would both be written to {dst}",
                      "Use --ext to keep formats apart or rename one of them.", src)
    seen[dst_key] = src


def folder_job(src: PurePath, out: PurePath, *, suffix: str = "out", ext: str = "auto", video: bool = False) -> Job:
    """The job of ``src`` written into the folder ``out`` (``OUT/<stem>_<suffix>.<ext>``, a video in its own
    container): naming only, no check. ``src`` and ``out`` may be pure paths (a path inside a remote file system).
    """
    return _video_job(src, out, suffix, False) if video else _image_job(src, out, False, suffix, ext)


def output_path(job: Job, mode: str) -> PurePath:
    """Where an upscaled image of ``mode`` (``L``, ``LA``, ``RGB``, ``RGBA``) is written: ``job.dst``, or with
    ``--ext auto`` a png beside it when the image has alpha and the input's format has none (as upstream does)."""
    dst = job.dst
    if job.auto_ext and mode in ("RGBA", "LA") and dst.suffix.lower() in (".jpg", ".jpeg", ".bmp"):
        return dst.with_suffix(".png")
    return dst


def _image_job(src: Path, out: Path, as_file: bool, suffix: str, ext: str) -> Job:
    """An image's job: OUT itself (``as_file``) or ``OUT/<stem>_<suffix>.<ext>``."""
    if as_file:
        return Job(src, out if ext == "auto" else out.with_suffix("." + _norm_ext(ext)), False)
    e = _norm_ext(src.suffix) if ext == "auto" else _norm_ext(ext)
    return Job(src, out / (f"{src.stem}_{suffix}.{e}" if suffix else f"{src.stem}.{e}"), ext == "auto")


def _video_job(src: Path, out: Path, suffix: str, single: bool) -> Job:
    """A video's job: OUT itself when it names a file for a single input, else ``OUT/<stem>_<suffix>.<ext>``
    (the input's container, ``.mkv`` where nothing writes it).

    Raises:
        SrError: OUT names an image file.
    """
    from sr_runtime.video.encode import output_suffix

    if single and out.suffix and not out.is_dir():
        if out.suffix.lower() in IMAGE_SUFFIXES:
            raise SrError("a video is written as a video", "Name OUT .mp4, .mkv, .mov or .webm, or give a folder.",
                          src)
        return Job(src, out, video=True)
    e = output_suffix(src)
    return Job(src, out / (f"{src.stem}_{suffix}{e}" if suffix else f"{src.stem}{e}"), video=True)


def check_outputs(jobs: list[Job], out: str | Path, *, overwrite: bool = False, skip_existing: bool = False) -> None:
    """Refuse, before any model is loaded, outputs that cannot or must not be written.

    OUT named as a file (one input) must not exist unless ``overwrite`` (or ``skip_existing``, which then skips
    it); the output folder must be a folder, or creatable inside a writable one. Outputs inside an OUT folder
    are replaced as upstream does (``skip_existing`` keeps them).

    Raises:
        SrError: an existing OUT file, a path through a file, or a folder that is not writable.
    """
    if not jobs:
        return
    o = Path(out)
    if len(jobs) == 1 and jobs[0].dst.parent != o:  # OUT names the output file itself
        dst = jobs[0].dst
        if dst.is_dir():
            raise SrError("OUT is an existing folder with an image suffix", "Name another output file.", dst)
        if dst.exists() and not (overwrite or skip_existing):
            raise SrError("OUT exists", "Pass --overwrite to replace it (or --skip-existing to keep it).", dst)
    folder = jobs[0].dst.parent
    check_writable_folder(folder)


def check_writable_folder(folder: Path) -> None:
    """The folder exists and is writable, or can be created: its nearest existing parent is a writable folder.

    Raises:
        SrError: a path component is a file, or the folder (or its nearest existing parent) is not writable.
    """
    for parent in (folder, *folder.parents):
        if not parent.exists():
            continue
        if not parent.is_dir():
            raise SrError(f"cannot write into {folder}: {parent} is a file, not a folder",
                          "Choose another output path.", folder)
        if not os.access(parent, os.W_OK | os.X_OK):
            where = "" if parent == folder else f" (its parent {parent} is not writable)"
            raise SrError(f"the output folder is not writable{where}", "Choose a folder you can write to.", folder)
        return


# --------------------------------------------------------------------------- running
@dataclass(frozen=True)
class BatchOptions:
    """How :func:`run_batch` runs (the file-level options of ``sr-run``)."""

    outscale: float | None = None
    """Passed to ``enhance``: final scale (None: the model's)."""
    alpha_upsampler: str = "realesrgan"
    """Passed to ``enhance``: how the alpha channel is upscaled."""
    skip_existing: bool = False
    """Skip jobs whose output exists."""
    max_pixels: int | None = None
    """Refuse larger inputs (a per-file error)."""
    quiet: bool = False
    """No progress bars and no notes."""
    prefetch: int = 2
    """Decoded images waiting for the model (bounds memory)."""
    writers: int = 2
    """Encoder threads (and the bound of results waiting to be written)."""
    debug: bool = False
    """Print each failed file's traceback before its error line (the batch still goes on)."""
    tile_progress: bool | None = None
    """Show a tile progress bar (default: for a single file)."""
    background: tuple[int, int, int] = (255, 255, 255)
    """RGB colour that alpha is composited onto for formats without alpha (jpg, bmp)."""
    planner: ImagePlanner | None = None
    """Checks each image from its header (size, memory) and streams big png/tif outputs
    (:mod:`sr_runtime.bigimage`); None: every image is decoded and encoded whole."""


def error_line(src: str | Path, exc: BaseException) -> str:
    """The one-line report of a file that failed with ``exc`` (pure: prints and changes nothing).

    ``SrError`` keeps its own text (naming ``src`` when it names no file); ``OSError`` and ``MemoryError`` say
    what to check; anything else is an internal error that asks for a ``--debug`` run.
    """
    if isinstance(exc, SrError):
        line = exc.one_line() if exc.path is not None else f"{src}: {exc.one_line()}"
    elif isinstance(exc, OSError):
        line = f"{src}: {exc.strerror or exc}. Check the path, its permissions and the free disk space."
    elif isinstance(exc, MemoryError):
        line = f"{src}: out of memory. Use a smaller --tile or --batch."
    else:
        line = f"{src}: internal error: {type(exc).__name__}: {exc}. Re-run with --debug and report it."
    return " ".join(line.split())


def report_failure(line: str, trace: str = "") -> None:
    """Print a failed file's ``error:`` line on stderr, after its traceback when one is given (``--debug``: the
    traceback that "Re-run with --debug" promises), without breaking progress bars."""
    if trace:
        tqdm.write(trace.rstrip(), file=sys.stderr)
    tqdm.write(f"error: {line}", file=sys.stderr)


def note_writer(quiet: bool) -> Callable[[str], None]:
    """A function printing ``note: <msg>`` to stderr without breaking progress bars (nothing when ``quiet``)."""

    def note(msg: str) -> None:
        if not quiet:
            tqdm.write(f"note: {msg}", file=sys.stderr)

    return note


def run_batch(jobs: list[Job], enhance: Callable[..., tuple], options: BatchOptions | None = None,
              **changes: Any) -> BatchResult:
    """Upscale every job: decode ahead in a reader thread, run ``enhance`` here, encode in writer threads.

    Args:
        jobs: from :func:`plan_jobs`.
        enhance: ``enhance(img, outscale, alpha_upsampler, progress) -> (img, mode)``, e.g.
            :meth:`sr_runtime.api.Upscaler.enhance`.
        options: how to run (default: ``BatchOptions()``).
        **changes: fields of :class:`BatchOptions` to change, e.g. ``quiet=True``.

    Returns:
        Counts, per-file error lines and timing. Failed files never leave output behind.
    """
    opts = dataclasses.replace(options or BatchOptions(), **changes)
    return _Batch(jobs, enhance, opts).run()


_DONE = object()
"""End of a queue: no more jobs (read queue) or no more results (write queue)."""
_SKIP = object()
"""Read-queue payload of a job skipped because its output exists."""


@dataclass(frozen=True)
class _Upscaled:
    """A result on its way to a writer thread."""

    job: Job
    pixels: np.ndarray
    mode: str
    input_pixels: int


@dataclass
class _Tally:
    """What happened so far; the writer threads update it too, hence the lock."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    pixels: int = 0
    errors: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrote(self, dst: Path, input_pixels: int) -> None:
        with self.lock:
            self.done += 1
            self.pixels += input_pixels
            self.outputs.append(dst)

    def failure(self, line: str) -> None:
        with self.lock:
            self.failed += 1
            self.errors.append(line)

    def skip(self) -> None:
        with self.lock:
            self.skipped += 1


class _StopFlag:
    """First Ctrl-C: finish the current file and stop; second: stop now (KeyboardInterrupt). SIGTERM and SIGHUP
    stop now (see :func:`sr_runtime.signals.graceful`)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.event = threading.Event()
        self.say = say
        self._cm = signals.graceful(self._first)

    def __enter__(self) -> _StopFlag:
        self._cm.__enter__()
        return self

    def _first(self) -> None:
        self.event.set()
        self.say("interrupted: stopping after the current file (Ctrl-C again to stop now)")

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


class _TileBar:
    """The tile progress bar of one image, created on the first ``progress(done, total)`` call."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, unit="tile", leave=False, disable=None, file=sys.stderr)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Batch:
    """One batch run. Three kinds of thread and two bounded queues::

        reader thread:  job -> read_image -> read queue (size ``prefetch``)
        calling thread: read queue -> process(job) -> enhance -> write queue (size ``writers``)
        writer threads: write queue -> write_image (temp file + rename)

    Memory is bounded by the two queue sizes. The reader never blocks forever (it polls ``self.stop``, set when
    the calling thread leaves its loop for any reason); the writers finish every queued result and stop at one
    ``_DONE`` each, so an image is either written whole or not at all.
    """

    def __init__(self, jobs: list[Job], enhance: Callable[..., tuple], opts: BatchOptions) -> None:
        self.jobs = jobs
        self.enhance = enhance
        self.opts = opts
        self.say = note_writer(opts.quiet)
        self.tally = _Tally()
        self.stop = threading.Event()
        self.n_writers = max(1, opts.writers)
        self.readq: queue.Queue = queue.Queue(maxsize=max(1, opts.prefetch))
        self.writeq: queue.Queue = queue.Queue(maxsize=self.n_writers)
        single = len(jobs) == 1
        self.tile_progress = not opts.quiet and (single if opts.tile_progress is None else opts.tile_progress)
        self.file_bar = tqdm(total=len(jobs), unit="file", disable=None if not opts.quiet and not single else True,
                             file=sys.stderr)

    def run(self) -> BatchResult:
        """Start the threads, run the model loop in this thread, then let the writers finish."""
        t0 = time.perf_counter()
        threading.Thread(target=self.read_loop, name="sr-reader", daemon=True).start()
        writers = [threading.Thread(target=self.write_loop, name=f"sr-writer-{i}", daemon=True)
                   for i in range(self.n_writers)]
        for t in writers:
            t.start()
        try:
            with _StopFlag(self.say) as flag:
                interrupted = self.model_loop(flag.event)
        finally:
            self.stop.set()
            with signals.deferred():  # a signal now must not abandon a writer mid-file
                for _ in writers:
                    self.writeq.put(_DONE)  # after every queued result: complete images, written atomically
                for t in writers:
                    t.join()
            self.file_bar.close()
        t = self.tally
        return BatchResult(t.done, t.failed, t.skipped, time.perf_counter() - t0, t.pixels / 1e6, tuple(t.errors),
                           tuple(t.outputs), interrupted)

    # ------------------------------------------------------------------ reader thread
    def read_loop(self) -> None:
        """Decode the inputs in order into the read queue, then ``_DONE``; stop early when asked."""
        for job in self.jobs:
            if self.stop.is_set() or not self._offer((job, self._load(job))):
                return
        self._offer(_DONE)

    def _load(self, job: Job) -> object:
        """The decoded image, a streamed job's plan (read by the calling thread as it runs), ``_SKIP`` or the
        exception that refused or failed it."""
        if self.opts.skip_existing and job.dst.exists():
            return _SKIP
        try:
            if self.opts.planner is not None:
                plan = self.opts.planner.plan(job.src, lambda alpha: _norm_ext(output_path(job, "RGBA" if alpha else "RGB").suffix))
                if plan.stream:
                    return plan
            return read_image(job.src, self.opts.max_pixels)
        except BaseException as exc:  # noqa: BLE001 - reported per file by the calling thread
            return exc

    def _offer(self, item: object) -> bool:
        """Put ``item`` on the read queue unless the batch stops first (the consumer may have stopped reading)."""
        while not self.stop.is_set():
            try:
                self.readq.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    # ------------------------------------------------------------------ calling thread
    def model_loop(self, interrupt: threading.Event) -> bool:
        """Process decoded inputs until the reader is done; return True when stopped by a first Ctrl-C."""
        while True:
            item = self.readq.get()
            if item is _DONE:
                return False
            if interrupt.is_set():
                return True
            self.process(*item)
            del item  # the decoded image: memory stays bounded by the queue sizes
            self.file_bar.update(1)
            if interrupt.is_set():
                return True

    def process(self, job: Job, got: object) -> None:
        """One job: count a skip, report a read error, or upscale the image and queue it for a writer."""
        if got is _SKIP:
            self.tally.skip()
            return
        if isinstance(got, BaseException):
            self.fail(job, got)
            return
        if not isinstance(got, LoadedImage):  # a streamed job: read, upscaled and written band by band here
            self.stream(job, got)
            return
        image: LoadedImage = got
        done = self.attempt(job, lambda bar: self.enhance(image.pixels, self.opts.outscale,
                                                          self.opts.alpha_upsampler, bar))
        if done is not None:
            out, mode = done
            self.writeq.put(_Upscaled(job, out, mode, image.pixels.shape[0] * image.pixels.shape[1]))

    def attempt(self, job: Job, work: Callable[[Any], Any]) -> Any:
        """``work(tile_bar)`` with a tile progress bar (None when tile bars are off); a failure is reported for
        ``job`` and gives None, so one bad file does not stop the batch (Ctrl-C does)."""
        tiles = _TileBar()
        try:
            return work(tiles if self.tile_progress else None)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - one bad file must not stop the batch
            self.fail(job, exc)
            return None
        finally:
            tiles.close()

    def stream(self, job: Job, plan: Any) -> None:
        """A streamed job (:meth:`sr_runtime.bigimage.ImagePlanner.run_streamed`): the encoder runs in its own
        thread while the next bands are upscaled."""
        planner = self.opts.planner
        assert planner is not None and plan.header is not None
        dst = Path(output_path(job, "RGBA" if plan.header.channels in (2, 4) else "RGB"))
        for note in planner.notes(job.src, plan):
            self.say(note)
        notes = self.attempt(job, lambda bar: planner.run_streamed(job.src, dst, plan, bar))
        if notes is None:
            return
        for note in notes:
            self.say(f"{dst}: {note}")
        self.tally.wrote(dst, plan.header.pixels)

    def fail(self, job: Job, exc: BaseException) -> None:
        """Count and print a failed file (any thread)."""
        line = error_line(job.src, exc)
        self.tally.failure(line)
        report_failure(line, "".join(traceback.format_exception(exc)) if self.opts.debug else "")

    # ------------------------------------------------------------------ writer threads
    def write_loop(self) -> None:
        """Write queued results until ``_DONE``."""
        while (res := self.writeq.get()) is not _DONE:
            self._write(res)

    def _write(self, res: _Upscaled) -> None:
        dst = output_path(res.job, res.mode)
        try:
            for note in write_image(dst, res.pixels, background=self.opts.background):
                self.say(f"{dst}: {note}")
        except BaseException as exc:  # noqa: BLE001 - reported per file; the writer goes on
            self.fail(res.job, exc)
            return
        self.tally.wrote(dst, res.input_pixels)


def default_writers() -> int:
    """Writer threads: 2, or 1 on a single core."""
    return 1 if (os.cpu_count() or 1) < 2 else 2
