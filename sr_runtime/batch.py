"""Files and folders -> upscaled files: a reader thread, the model in the calling thread, writer threads.

Upstream's PrefetchReader/IOConsumer, done properly: memory is bounded by the two queue sizes, every output is
written to a temp file in the target folder and renamed, a bad file is reported in one line and the others
still run, and Ctrl-C stops after the current file without leaving anything partial.
"""

from __future__ import annotations

import glob
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sr_runtime.errors import SrError
from sr_runtime.image import IMAGE_SUFFIXES, LoadedImage, read_image, write_image

_DONE = object()


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes."""

    src: Path
    """Input image."""
    dst: Path
    """Output image (its suffix is the format)."""
    auto_ext: bool = False
    """The format follows the input (``--ext auto``): an image with alpha is then written as png."""


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

    def summary(self) -> str:
        """``done 3, failed 1, skipped 0 in 2.1 s (1.52 MP/s)``."""
        rate = self.megapixels / self.seconds if self.seconds > 0 else 0.0
        text = (f"done {self.done}, failed {self.failed}, skipped {self.skipped} in {self.seconds:.1f} s "
                f"({rate:.2f} MP/s)")
        return text + (", interrupted" if self.interrupted else "")


# --------------------------------------------------------------------------- planning
def collect_inputs(inp: str | Path) -> list[Path]:
    """Image files named by ``inp``: a file, a folder (its images, sorted, not recursive) or a glob.

    Raises:
        SrError: nothing matches.
    """
    p = Path(inp)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SrError("no images in the folder", f"sr-run reads {', '.join(IMAGE_SUFFIXES)} files.", p)
        return files
    if glob.has_magic(str(inp)):
        files = sorted(Path(f) for f in glob.glob(str(inp), recursive=True) if Path(f).is_file())
        if not files:
            raise SrError("the pattern matches no files", "Check the pattern (quote it for the shell).", inp)
        return files
    raise SrError("input not found", "Give an image file, a folder or a glob pattern.", p)


def _norm_ext(suffix: str) -> str:
    e = suffix.lower().lstrip(".")
    return {"jpeg": "jpg", "tiff": "tif"}.get(e, e)


def plan_jobs(inputs: list[Path], out: str | Path, *, suffix: str = "out", ext: str = "auto",
              single_file: bool = False) -> list[Job]:
    """Map inputs to outputs (upstream naming: ``OUT/<stem>_<suffix>.<ext>``).

    Args:
        inputs: from :func:`collect_inputs`.
        out: a folder, or for a single input file a file name with an image suffix.
        suffix: appended to the stem (``""``: none).
        ext: ``auto`` (the input's format), or ``png``/``jpg``/``webp``/...
        single_file: IN named one file (then an OUT with an image suffix is the output file itself).

    Raises:
        SrError: an output would overwrite its input, or two inputs map to one output.
    """
    o = Path(out)
    as_file = single_file and len(inputs) == 1 and o.suffix.lower() in IMAGE_SUFFIXES and not o.is_dir()
    jobs: list[Job] = []
    seen: dict[Path, Path] = {}
    for src in inputs:
        if as_file:
            dst = o if ext == "auto" else o.with_suffix("." + _norm_ext(ext))
            auto = False
        else:
            e = _norm_ext(src.suffix) if ext == "auto" else _norm_ext(ext)
            dst = o / (f"{src.stem}_{suffix}.{e}" if suffix else f"{src.stem}.{e}")
            auto = ext == "auto"
        if dst.resolve() == src.resolve():
            raise SrError("the output would overwrite the input", "Use another OUT folder or a --suffix.", src)
        if dst.resolve() in seen:
            raise SrError(f"{seen[dst.resolve()].name} and {src.name} would both be written to {dst}",
                          "Use --ext to keep formats apart or rename one of them.", src)
        seen[dst.resolve()] = src
        jobs.append(Job(src, dst, auto))
    return jobs


# --------------------------------------------------------------------------- running
@dataclass
class _State:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    pixels: int = 0
    errors: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _StopFlag:
    """First Ctrl-C: finish the current file and stop; second: stop now (KeyboardInterrupt)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.event = threading.Event()
        self.say = say
        self._old = None

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame) -> None:  # noqa: ANN001
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()
        self.say("interrupted: stopping after the current file (Ctrl-C again to stop now)")

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def run_batch(
    jobs: list[Job],
    enhance: Callable[..., tuple],
    *,
    outscale: float | None = None,
    alpha_upsampler: str = "realesrgan",
    skip_existing: bool = False,
    max_pixels: int | None = None,
    quiet: bool = False,
    prefetch: int = 2,
    writers: int = 2,
    debug: bool = False,
    tile_progress: bool | None = None,
) -> BatchResult:
    """Upscale every job: decode ahead in a reader thread, run ``enhance`` here, encode in writer threads.

    Args:
        jobs: from :func:`plan_jobs`.
        enhance: ``enhance(img, outscale, alpha_upsampler, progress) -> (img, mode)``, e.g.
            :meth:`sr_runtime.api.Upscaler.enhance`.
        outscale, alpha_upsampler: passed to ``enhance``.
        skip_existing: skip jobs whose output exists.
        max_pixels: refuse larger inputs (per-file error).
        quiet: no progress bars and no notes.
        prefetch: decoded images waiting for the model (bounds memory).
        writers: encoder threads (and the bound of results waiting to be written).
        debug: let unexpected exceptions propagate (traceback) instead of one line per file.
        tile_progress: show a tile progress bar (default: for a single file).

    Returns:
        Counts, per-file error lines and timing. Failed files never leave output behind.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    st = _State()
    show = not quiet

    def say(msg: str) -> None:
        if show:
            tqdm.write(f"note: {msg}", file=sys.stderr)

    def fail(job: Job, exc: BaseException) -> None:
        if isinstance(exc, SrError):
            if exc.path is None:
                exc.path = str(job.src)
            line = exc.one_line()
        elif isinstance(exc, OSError):
            line = f"{job.src}: {exc.strerror or exc}. Check the path, its permissions and the free disk space."
        elif isinstance(exc, MemoryError):
            line = f"{job.src}: out of memory. Use a smaller --tile or --batch."
        else:
            line = f"{job.src}: internal error: {type(exc).__name__}: {exc}. Re-run with --debug and report it."
        line = " ".join(line.split())
        with st.lock:
            st.failed += 1
            st.errors.append(line)
        tqdm.write(f"error: {line}", file=sys.stderr)

    stop = threading.Event()
    readq: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    writeq: queue.Queue = queue.Queue(maxsize=max(1, writers))

    def reader() -> None:
        for job in jobs:
            if stop.is_set():
                break
            if skip_existing and job.dst.exists():
                item: tuple = (job, "skip")
            else:
                try:
                    item = (job, read_image(job.src, max_pixels))
                except BaseException as exc:  # noqa: BLE001 - reported per file in the main thread
                    item = (job, exc)
            while not stop.is_set():
                try:
                    readq.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
        while not stop.is_set():  # never block forever: the consumer may have stopped reading
            try:
                readq.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                continue

    def writer() -> None:
        while True:
            msg = writeq.get()
            if msg is _DONE:
                return
            job, img, mode, pixels = msg
            dst = job.dst
            if job.auto_ext and mode in ("RGBA", "LA") and dst.suffix.lower() in (".jpg", ".jpeg", ".bmp"):
                dst = dst.with_suffix(".png")  # upstream: images with alpha are saved as png
            try:
                for note in write_image(dst, img):
                    say(f"{dst}: {note}")
            except BaseException as exc:  # noqa: BLE001
                fail(job, exc)
                continue
            with st.lock:
                st.done += 1
                st.pixels += pixels
                st.outputs.append(dst)

    threads = [threading.Thread(target=reader, name="sr-reader", daemon=True)]
    threads += [threading.Thread(target=writer, name=f"sr-writer-{i}", daemon=True) for i in range(max(1, writers))]
    for t in threads:
        t.start()
    single = len(jobs) == 1
    want_tiles = show and (single if tile_progress is None else tile_progress)
    bar = tqdm(total=len(jobs), unit="file", disable=None if show and not single else True, file=sys.stderr)
    interrupted = False
    try:
        with _StopFlag(say) as flag:
            while True:
                item = readq.get()
                if item is _DONE:
                    break
                if flag.event.is_set():
                    interrupted = True
                    break
                job, got = item
                if isinstance(got, str):
                    st.skipped += 1
                    bar.update(1)
                    continue
                if isinstance(got, BaseException):
                    fail(job, got)
                    bar.update(1)
                    continue
                loaded: LoadedImage = got
                tbar = None

                def progress(done: int, total: int) -> None:
                    nonlocal tbar
                    if tbar is None:
                        tbar = tqdm(total=total, unit="tile", leave=False, disable=None, file=sys.stderr)
                    tbar.update(done - tbar.n)

                try:
                    out, mode = enhance(loaded.pixels, outscale, alpha_upsampler,
                                        progress if want_tiles else None)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001 - one bad file must not stop the batch
                    if debug and not isinstance(exc, SrError):
                        raise
                    fail(job, exc)
                    bar.update(1)
                    continue
                finally:
                    if tbar is not None:
                        tbar.close()
                del loaded
                writeq.put((job, out, mode, got.pixels.shape[0] * got.pixels.shape[1]))
                del out, got
                bar.update(1)
                if flag.event.is_set():
                    interrupted = True
                    break
    finally:
        stop.set()
        for _ in range(max(1, writers)):
            writeq.put(_DONE)  # writers finish what is queued: complete images, written atomically
        for t in threads[1:]:
            t.join()
        bar.close()
    return BatchResult(st.done, st.failed, st.skipped, time.perf_counter() - t0, st.pixels / 1e6,
                       tuple(st.errors), tuple(st.outputs), interrupted)


def default_writers() -> int:
    """Writer threads: 2, or 1 on a single core."""
    return 1 if (os.cpu_count() or 1) < 2 else 2
