"""Keep what image codecs write to stderr (libpng, libtiff, OpenCV's logger) out of the terminal.

libpng prints ``libpng error: ...``/``libpng warning: ...`` and OpenCV logs ``[ERROR:0@0.39] global
grfmt_tiff.cpp:117 TIFF_Error ...`` straight to file descriptor 2 from C code, so neither ``sys.stderr`` nor
``contextlib.redirect_stderr`` can catch them. :func:`captured_codec_messages` points fd 2 at a temp file for the
duration of one decode (a lock serialises it: fd 2 is process-wide), then sorts what was written: the codec's
lines are handed to the caller (who puts the gist into the file's one error line, or drops them when the decode
worked) and anything else, such as a line another thread printed meanwhile, is written back to the real stderr
unchanged. Cost: about 30 microseconds per decode (measured in docs/errors.md).

A line that another thread writes through ``sys.stderr`` while fd 2 points elsewhere could still be split
(Python writes the text and its newline in two calls) or, if its write is in flight when fd 2 is restored, be
lost. sr-run therefore runs inside :func:`python_stderr_apart`: Python's ``sys.stderr`` writes to its own
duplicate of fd 2, so only C code ever writes to the descriptor that is swapped.

Reading headers first (:mod:`sr_runtime.imageheader`) refuses oversized and malformed headers before a codec
sees them, but truncated or corrupt pixel data is only found by decoding, and that is where libpng speaks.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator

_LOCK = threading.Lock()

CODEC_LINE = re.compile(
    r"^(libpng (warning|error)|\[ ?(WARN|ERROR|INFO|DEBUG|FATAL)[:\]]|Corrupt JPEG|Premature end of JPEG|"
    r"Invalid JPEG|Not a JPEG|Unsupported JPEG|Unsupported marker|Bogus |JPEG datastream|Warning: unknown JFIF|"
    r"Huffman table|Quantization table|Invalid SOS|Inconsistent progression|Improper call to JPEG|"
    r"Wrong JPEG library|TIFF|OpenJPEG|libwebp|OpenCV\()")
"""Lines that codecs (or OpenCV's logger) print."""

_OPENCV_LOG = re.compile(r"^\[ ?[A-Z]+:[^\]]*\]\s+\S+\s+\S+:\d+\s+\S+\s+")
_CV_ERROR = re.compile(r"error: \([-\d]+:[^)]*\)\s*(.*?)(?: in function .*)?$")


@contextlib.contextmanager
def captured_codec_messages() -> Iterator[list[str]]:
    """Capture C-level writes to fd 2 while the block runs; yields a list filled with the codec's lines when
    the block ends (other lines go back to stderr).

    Falls back to doing nothing when fd 2 cannot be duplicated (no stderr at all).
    """
    lines: list[str] = []
    with _LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        sink = tempfile.TemporaryFile()
        try:
            # no sys.stderr.flush() here: it would push another thread's half-written line out in two parts
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                lines.extend(_sort(sink.read()))
        finally:
            os.close(saved)
            sink.close()


def _sort(data: bytes) -> list[str]:
    """Codec lines of ``data``; the rest is written back to fd 2 as it was."""
    if not data:
        return []
    codec: list[str] = []
    other: list[str] = []
    last_was_codec = False
    for line in data.decode("utf-8", "replace").splitlines(keepends=True):
        # a blank line belongs to the codec message before it (OpenCV's end with one); alone, it may be the end
        # of a line another thread began before the capture
        last_was_codec = bool(CODEC_LINE.match(line)) if line.strip() else last_was_codec
        (codec if last_was_codec else other).append(line)
    if other:
        with contextlib.suppress(OSError):
            os.write(2, "".join(other).encode("utf-8", "replace"))
    return [s for s in (c.strip() for c in codec) if s]


def gist(lines: list[str], limit: int = 120) -> str:
    """The most telling codec message, shortened for an error line (``""`` when there is none).

    ``[ERROR:0@0.39] global grfmt_tiff.cpp:117 TIFF_Error TIFFReadDirectory: Failed ...`` ->
    ``TIFFReadDirectory: Failed ...``; an OpenCV ``error: (-2:Unspecified error) X in function 'f'`` -> ``X``.
    """
    if not lines:
        return ""
    errors = [s for s in lines if "error" in s.lower()]
    text = _OPENCV_LOG.sub("", (errors or lines)[-1])
    m = _CV_ERROR.search(text)
    if m and m.group(1):
        text = m.group(1)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


@contextlib.contextmanager
def python_stderr_apart() -> Iterator[None]:
    """Point ``sys.stderr`` at a duplicate of fd 2 for the block (then fd 2 carries C-level output only).

    Does nothing when ``sys.stderr`` is not the process's fd 2 (a test runner's capture, no stderr).
    """
    import io
    import sys

    old = sys.stderr
    try:
        fd = old.fileno() if old is not None else -1
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd != 2:
        yield
        return
    old.flush()
    dup = os.dup(2)
    new = io.TextIOWrapper(io.FileIO(dup, "w"), encoding=old.encoding, errors=old.errors,
                           line_buffering=old.line_buffering, write_through=True)
    sys.stderr = new
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            new.flush()
        sys.stderr = old
        new.close()
