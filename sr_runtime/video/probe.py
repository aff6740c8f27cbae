"""What a video file holds: ``probe(path) -> VideoInfo`` (decodes the first frame) and ``is_video(path)``."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from sr_runtime.image import IMAGE_SUFFIXES
from sr_runtime.video import VIDEO_SUFFIXES, VideoError, have_av, require_av
from sr_runtime.video.color import ColorTags, format_bits, guess_matrix, input_tags, is_rgb_format

_NOT_VIDEO_DEMUXERS = ("tty", "image2", "gif", "apng", "webp", "bin", "idf", "adf", "xbin", "lavfi")
"""Demuxers that open images or text, not videos (``*_pipe`` ones too): a single picture stays an image."""


@dataclass(frozen=True)
class OtherStream:
    """An audio, subtitle, data or attachment stream of the input."""

    index: int
    """Stream index in the input."""
    kind: str
    """``audio``, ``subtitle``, ``data`` or ``attachment``."""
    codec: str
    """Codec name (``aac``, ``subrip``, ...); ``""`` when FFmpeg does not know it."""


@dataclass(frozen=True)
class VideoInfo:
    """The input video: its main video stream (from the first decoded frame) and the other streams."""

    path: Path
    """The file."""
    container: str
    """Demuxer name (``mov,mp4,m4a,3gp,3g2,mj2``, ``matroska,webm``, ...)."""
    index: int
    """Index of the video stream."""
    codec: str
    """Its codec (``h264``)."""
    width: int
    """Frame width (stored, before any rotation)."""
    height: int
    """Frame height."""
    pix_fmt: str
    """Decoded pixel format (``yuv420p``, ``yuv420p10le``, ``rgb24``, ...)."""
    bits: int
    """Bits per component (8, 10, 12, 16)."""
    rgb: bool
    """An RGB pixel format (no YUV matrix)."""
    alpha: bool
    """The pixel format has an alpha plane (dropped: the model upscales colour)."""
    rate: Fraction | None
    """Average frame rate (None when unknown)."""
    time_base: Fraction
    """The stream's time base: timestamps are copied in it."""
    frames: int
    """Frame count the container declares (0: unknown)."""
    duration: float | None
    """Seconds, when known."""
    tags: ColorTags
    """Colour tags (untagged YUV: the guessed matrix, see ``matrix_guessed``)."""
    matrix_guessed: bool
    """The input had no matrix tag; ``tags.matrix`` is what players assume for its size."""
    display_matrix: tuple[int, ...] | None
    """The 3x3 display matrix (rotation/flip) as 9 int32, or None."""
    rotation: int
    """Rotation in degrees that the display matrix asks for (0 without one)."""
    others: tuple[OtherStream, ...]
    """Audio, subtitle, data and attachment streams, in input order."""

    @property
    def frame_estimate(self) -> int | None:
        """Frames expected (declared, else duration x rate), for the progress bar; None when unknown."""
        if self.frames > 0:
            return self.frames
        if self.duration and self.rate:
            return max(1, round(self.duration * float(self.rate)))
        return None


def _is_image_demuxer(name: str) -> bool:
    return name.endswith("_pipe") or any(n in _NOT_VIDEO_DEMUXERS for n in name.split(","))


def _video_stream(container: Any) -> Any | None:
    """The first video stream that is not an attached picture (cover art)."""
    for s in container.streams.video:
        if not (int(s.disposition) & 0x400):  # AV_DISPOSITION_ATTACHED_PIC
            return s
    return None


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is a video, by probing its content with PyAV (not by its name alone).

    Image suffixes (``.png``, ``.jpg``, ...) are images. Other files are opened with PyAV: a video stream in a
    video container (or more than one frame in an image one) makes a video. A file PyAV cannot open is a video
    when its suffix says so (it then gets a clear error from the video path). Without PyAV, the suffix decides.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return False
    if not have_av():
        return suffix in VIDEO_SUFFIXES
    import av

    try:
        with av.open(str(p), metadata_errors="ignore") as c:
            s = _video_stream(c)
            if s is None:
                return False
            return not _is_image_demuxer(c.format.name) or (s.frames or 0) > 1
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return suffix in VIDEO_SUFFIXES


def display_matrix(frame: Any) -> tuple[int, ...] | None:
    """The frame's display matrix side data as 9 int32 (None without one)."""
    for sd in frame.side_data:
        if str(sd.type).rsplit(".", 1)[-1].upper() == "DISPLAYMATRIX":
            raw = bytes(sd)
            if len(raw) >= 36:
                return tuple(struct.unpack("<9i", raw[:36]))
    return None


def _first_frame(container: Any, stream: Any, path: Path) -> Any:
    """Decode the first frame of ``stream``.

    Raises:
        VideoError: no frame decodes (zero frames, a damaged or truncated file).
    """
    import av

    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise VideoError(f"cannot decode the video ({exc.strerror or exc})",
                         "The file is damaged or truncated: re-download it or repair it "
                         "(e.g. remux it with a video editor) and run again.", path) from None
    raise VideoError("the video has no frames", "Check that the file is complete and holds a video.", path)


def probe(path: str | Path) -> VideoInfo:
    """Open a video, check its video stream can be decoded, and describe it.

    Raises:
        MissingExtraError: PyAV is not installed.
        VideoError: not readable, no video stream, unknown codec, no frame decodes.
    """
    av = require_av()
    p = Path(path)
    try:
        c = av.open(str(p), metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise VideoError(f"not a readable video ({exc.strerror or exc})",
                         "The file is damaged, truncated or not a video: check it plays, or re-download it.",
                         p) from None
    with c:
        s = _video_stream(c)
        if s is None:
            raise VideoError("no video stream", "Give a video file (or an image).", p)
        if s.codec_context is None or s.codec_context.codec is None:
            raise VideoError("unknown video codec", "Re-encode it to H.264, H.265, VP9 or AV1 first.", p)
        s.thread_type = "AUTO"
        frame = _first_frame(c, s, p)
        fmt = frame.format
        guess = guess_matrix(frame.width, frame.height)
        tags = input_tags(frame, s.codec_context, guess)
        cc = s.codec_context
        guessed = not is_rgb_format(fmt) and _untagged(frame.colorspace, cc.colorspace)
        dm = display_matrix(frame)
        others = tuple(OtherStream(o.index, o.type, _codec_name(o)) for o in c.streams
                       if o.index != s.index and o.type in ("audio", "subtitle", "data", "attachment"))
        duration = float(s.duration * s.time_base) if s.duration else (c.duration / 1e6 if c.duration else None)
        return VideoInfo(
            path=p, container=c.format.name, index=s.index, codec=cc.name, width=frame.width,
            height=frame.height, pix_fmt=fmt.name, bits=format_bits(fmt), rgb=is_rgb_format(fmt),
            alpha=any(comp.is_alpha for comp in fmt.components), rate=s.average_rate or s.guessed_rate,
            time_base=s.time_base or Fraction(1, 90000), frames=int(s.frames or 0), duration=duration, tags=tags,
            matrix_guessed=guessed, display_matrix=dm, rotation=int(frame.rotation) if dm else 0, others=others)


def _untagged(frame_value: Any, stream_value: Any) -> bool:
    return all(v is None or int(v) == 2 for v in (frame_value, stream_value))


def _codec_name(stream: Any) -> str:
    """The codec's canonical name (``subrip``, not the decoder's ``srt``): what muxers list."""
    cc = stream.codec_context
    try:
        return cc.codec.canonical_name if cc is not None else stream.codec.canonical_name
    except AttributeError:  # no codec FFmpeg knows (data, attachments)
        return ""
