"""``upscale_video``: a decode thread -> the model in the calling thread -> an encode thread.

::

    decode thread:  demux -> decode -> RGB (input matrix/range) -> decoded queue    (frames, audio packets)
    calling thread: decoded queue -> Upscaler.enhance_frames (same-shape batches) -> encode queue
    encode thread:  encode queue -> YUV (same matrix/range) -> encoder -> muxer; audio/subtitle packets copied

Both queues are bounded (``VideoOptions.queue_frames``), so memory does not grow with the video's length.
Audio and subtitle packets travel with the frames in demux order, so the muxer gets them in a deterministic
order. The output is written to a temp file in the target folder and renamed when complete
(:func:`sr_runtime.fileio.atomic_write`): an error or Ctrl-C leaves nothing at OUT. Every thread gives up
when the run stops (``_Pipe``), so none blocks forever.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from sr_runtime.batch import BatchResult, Job, error_line, note_writer
from sr_runtime.fileio import atomic_write
from sr_runtime.video import VideoError, require_av
from sr_runtime.video.color import Converter
from sr_runtime.video.encode import EncodeOptions, Muxer, OutputPlan, plan_output
from sr_runtime.video.probe import VideoInfo, probe

if TYPE_CHECKING:
    from sr_runtime.api import Upscaler

_DONE = object()
"""End of a queue."""
_BROKEN = "The file is damaged or truncated: check that it plays to the end, or re-download it, and run again."


@dataclass(frozen=True)
class VideoOptions:
    """How :func:`upscale_video` runs."""

    encode: EncodeOptions = field(default_factory=EncodeOptions)
    """Codec, CRF, preset, pixel format."""
    outscale: float | None = None
    """Final scale (None: the model's); the size is rounded down to the pixel format's chroma grid."""
    quiet: bool = False
    """No progress bar and no notes."""
    queue_frames: int = 8
    """Frames waiting in each queue (decoded, upscaled): bounds memory."""
    max_pixels: int | None = None
    """Refuse videos whose frames have more pixels than this."""


@dataclass(frozen=True)
class VideoResult:
    """One upscaled video."""

    src: Path
    """Input."""
    dst: Path
    """Output written."""
    frames: int
    """Frames written (= frames decoded)."""
    seconds: float
    """Wall time of the whole video (probe to rename)."""

    @property
    def fps(self) -> float:
        """Frames per second, end to end."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """The run stopped (an error elsewhere, Ctrl-C): leave the thread."""


class _Pipe:
    """A bounded queue whose ``put`` and ``get`` give up (raise :class:`_Stopped`) once ``stop`` is set."""

    def __init__(self, size: int, stop: threading.Event) -> None:
        self.q: queue.Queue = queue.Queue(maxsize=max(1, size))
        self.stop = stop

    def put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def get(self) -> Any:
        while not self.stop.is_set():
            try:
                return self.q.get(timeout=0.1)
            except queue.Empty:
                continue
        raise _Stopped


class _VideoRun:
    """One video through the three stages; :meth:`write` is the ``atomic_write`` callback."""

    def __init__(self, info: VideoInfo, plan: OutputPlan, up: Upscaler, options: VideoOptions) -> None:
        self.info, self.plan, self.up, self.options = info, plan, up, options
        self.stop = threading.Event()
        self.decoded = _Pipe(options.queue_frames, self.stop)
        self.encoded = _Pipe(options.queue_frames, self.stop)
        self.errors: list[BaseException] = []
        self.frames = 0
        self.repaired = 0

    def write(self, tmp: str) -> None:
        """Decode, upscale and encode into ``tmp``.

        Raises:
            VideoError: decoding or encoding failed; SrError: the model failed; KeyboardInterrupt.
        """
        av = require_av()
        inp = av.open(str(self.info.path), metadata_errors="ignore")
        out = None
        ok = False
        try:
            out = av.open(tmp, "w", format=self.plan.muxer)
            muxer = Muxer(out, inp, self.info, self.plan)
            threads = [threading.Thread(target=self._decode, args=(inp,), name="sr-video-decode", daemon=True),
                       threading.Thread(target=self._encode, args=(muxer,), name="sr-video-encode", daemon=True)]
            for t in threads:
                t.start()
            try:
                self._model_loop()
            except _Stopped:
                pass
            finally:
                if self.errors or sys.exc_info()[0] is not None:
                    self.stop.set()
                for t in threads:
                    t.join()
            if self.errors:
                raise self.errors[0]
            ok = True
        finally:
            _close(out, ok)
            inp.close()

    # ------------------------------------------------------------------ decode thread
    def _decode(self, inp: Any) -> None:
        try:
            self._demux(inp)
            self.decoded.put(_DONE)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            self._fail(exc)

    def _demux(self, inp: Any) -> None:
        import av

        info = self.info
        vs = inp.streams[info.index]
        vs.thread_type = "AUTO"
        wanted = [vs] + [inp.streams[s.index] for s in self.plan.streams if s.action != "drop"]
        conv = Converter(info.tags, self.plan.work_format)
        step = _frame_step(info)
        last: int | None = None
        n = 0
        try:
            for pkt in inp.demux(wanted):
                if pkt.stream.index != info.index:
                    if pkt.dts is not None or pkt.pts is not None:
                        self.decoded.put(("p", pkt))
                    continue
                for frame in pkt.decode():
                    pts = frame.pts
                    if pts is None:
                        pts = 0 if last is None else last + step
                    elif last is not None and pts <= last:
                        pts, self.repaired = last + 1, self.repaired + 1
                    last = pts
                    self.decoded.put(("v", conv.to_rgb(frame, info.width, info.height), pts, frame.duration))
                    n += 1
        except av.FFmpegError as exc:
            raise VideoError(f"decoding failed after {n} frames ({exc.strerror or exc})", _BROKEN,
                             info.path) from None

    # ------------------------------------------------------------------ calling thread
    def _model_loop(self) -> None:
        side: deque = deque()
        meta: deque = deque()

        def frames() -> Iterator[Any]:
            n = 0
            while (item := self.decoded.get()) is not _DONE:
                if item[0] == "p":
                    side.append((n, item))
                    continue
                meta.append(item[2:])
                n += 1
                yield item[1]

        bar = tqdm(total=self.info.frame_estimate, unit="frame", desc=self.info.path.name, leave=False,
                   disable=True if self.options.quiet else None, file=sys.stderr, dynamic_ncols=True)
        try:
            for out in self.up.enhance_frames(frames(), size=(self.plan.width, self.plan.height)):
                pts, duration = meta.popleft()
                self.encoded.put(("v", out, pts, duration))
                self.frames += 1
                while side and side[0][0] <= self.frames:
                    self.encoded.put(side.popleft()[1])
                bar.update(1)
            while side:
                self.encoded.put(side.popleft()[1])
            self.encoded.put(_DONE)
        finally:
            bar.close()

    # ------------------------------------------------------------------ encode thread
    def _encode(self, muxer: Muxer) -> None:
        import av

        try:
            while (item := self.encoded.get()) is not _DONE:
                if item[0] == "v":
                    muxer.video(item[1], item[2], item[3])
                else:
                    muxer.packet(item[1])
            muxer.finish()
        except _Stopped:
            return
        except av.FFmpegError as exc:
            self._fail(VideoError(f"encoding failed ({exc.strerror or exc})",
                                  "Try another --codec or --pix-fmt, or write .mkv.", self.info.path))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.errors.append(exc)
        self.stop.set()


def _frame_step(info: VideoInfo) -> int:
    """One frame's duration in the stream's time base (for frames without a timestamp)."""
    rate = info.rate or Fraction(25)
    return max(1, round(1 / (rate * info.time_base)))


def _close(container: Any, ok: bool) -> None:
    """Close the output; after a failure its errors are secondary (the temp file is removed anyway)."""
    if container is None:
        return
    if ok:
        container.close()
        return
    try:
        container.close()
    except Exception:  # noqa: BLE001, S110 - the first error is the one reported
        pass


def upscale_video(src: str | Path, dst: str | Path, up: Upscaler, options: VideoOptions | None = None,
                  note: Callable[[str], None] | None = None) -> VideoResult:
    """Upscale one video file into ``dst`` (a file; its suffix picks the container).

    Frame count, timestamps (variable frame rate included), frame rate, rotation and colour tags are kept;
    audio and subtitle streams are copied (re-encoded, with a note, where the container cannot hold them).

    Args:
        src: the input video.
        dst: the output file (written to a temp file beside it and renamed when complete).
        up: an open :class:`~sr_runtime.api.Upscaler` (its tile, pad and batch settings apply).
        options: codec and encoder flags, outscale, queues.
        note: where notes go (default: nowhere).

    Raises:
        MissingExtraError: PyAV is not installed.
        VideoError: the input cannot be read or decoded, or the output cannot be written as asked.
        SrError: the model failed. KeyboardInterrupt: nothing is left at ``dst``.
    """
    opts = options or VideoOptions()
    say = note or (lambda _msg: None)
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    info = probe(src)
    if opts.max_pixels and info.width * info.height > opts.max_pixels:
        raise VideoError(f"{info.width}x{info.height} frames exceed --max-pixels {opts.max_pixels}",
                         "Raise --max-pixels or downscale the video first.", src)
    plan = plan_output(info, dst, up.scale, opts.outscale, opts.encode)
    if not opts.quiet:
        for msg in plan.notes:
            say(f"{src}: {msg}")
    run = _VideoRun(info, plan, up, opts)
    av = require_av()
    try:
        atomic_write(dst, run.write)
    except av.FFmpegError as exc:
        raise VideoError(f"writing the video failed ({exc.strerror or exc})",
                         "Try another --codec or --pix-fmt, or write .mkv.", dst) from None
    if run.repaired and not opts.quiet:
        say(f"{src}: {run.repaired} frames had out-of-order timestamps; each was moved one tick later")
    return VideoResult(src, dst, run.frames, time.perf_counter() - t0)


def run_videos(jobs: list[Job], up: Upscaler, options: VideoOptions, *, skip_existing: bool = False,
               debug: bool = False) -> BatchResult:
    """Upscale video jobs one after the other; a bad file is reported in one line and the others still run.

    Ctrl-C (KeyboardInterrupt) is not caught: the video being written leaves nothing behind and the caller
    exits (130 in the CLI).
    """
    note = note_writer(options.quiet)
    t0 = time.perf_counter()
    done, failed, skipped, frames, errors, outputs = 0, 0, 0, 0, [], []
    for job in jobs:
        if skip_existing and job.dst.exists():
            skipped += 1
            continue
        try:
            res = upscale_video(job.src, job.dst, up, options, note)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - one bad file must not stop the others
            if debug:  # the traceback that "Re-run with --debug" promises, then the line
                tqdm.write("".join(traceback.format_exception(exc)).rstrip(), file=sys.stderr)
            errors.append(error_line(job.src, exc))
            tqdm.write(f"error: {errors[-1]}", file=sys.stderr)
            failed += 1
            continue
        done, frames = done + 1, frames + res.frames
        outputs.append(res.dst)
        if not options.quiet and len(jobs) > 1:
            note(f"{res.dst}: {res.frames} frames at {res.fps:.2f} frames/s")
    seconds = time.perf_counter() - t0
    return BatchResult(done, failed, skipped, seconds, 0.0, tuple(errors), tuple(outputs), frames=frames,
                       frame_seconds=seconds)
