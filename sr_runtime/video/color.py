"""Colour tags of a video and the RGB <-> YUV conversions that use them (PyAV's swscale, no colour shift).

A decoded frame is converted to RGB with the input's own matrix and range (``VideoFrame.reformat`` with
``src_colorspace``/``src_color_range``), the model works on RGB, and the output is converted back with the same
matrix and range and tagged like the input (matrix, range, primaries, transfer). Untagged YUV gets the matrix
players assume (BT.709 from 720p/1280 wide up, BT.601 below); the output is then tagged with it, so a player
does not guess BT.709 for the larger output of an SD input. 8-bit sources run as ``rgb24`` (uint8), deeper
ones as ``rgb48le`` (uint16), so 10-bit in is 10-bit out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sr_runtime.video import VideoError

# AVColorSpace values (libavutil/pixfmt.h)
SPC_RGB, SPC_BT709, SPC_UNSPECIFIED, SPC_FCC, SPC_BT470BG, SPC_SMPTE170M, SPC_SMPTE240M = 0, 1, 2, 4, 5, 6, 7
SPC_BT2020_NCL, SPC_BT2020_CL = 9, 10
RANGE_UNSPECIFIED, RANGE_LIMITED, RANGE_FULL = 0, 1, 2
UNSPECIFIED = 2
"""AVCOL_PRI_UNSPECIFIED and AVCOL_TRC_UNSPECIFIED."""

_SWS_MATRIX = {SPC_BT709: "ITU709", SPC_FCC: "FCC", SPC_BT470BG: "ITU601", SPC_SMPTE170M: "SMPTE170M",
               SPC_SMPTE240M: "SMPTE240M", SPC_BT2020_NCL: "BT2020", SPC_BT2020_CL: "BT2020"}
"""AVColorSpace -> swscale's coefficient set (PyAV ``Colorspace`` names)."""
MATRIX_NAMES = {SPC_RGB: "rgb", SPC_BT709: "bt709", SPC_UNSPECIFIED: "unspecified", SPC_FCC: "fcc",
                SPC_BT470BG: "bt470bg", SPC_SMPTE170M: "smpte170m", SPC_SMPTE240M: "smpte240m",
                SPC_BT2020_NCL: "bt2020nc", SPC_BT2020_CL: "bt2020c"}


@dataclass(frozen=True)
class ColorTags:
    """A stream's colour description (FFmpeg's enum values: AVColorSpace, AVColorRange, ...)."""

    matrix: int = SPC_UNSPECIFIED
    """YUV <-> RGB matrix (AVColorSpace; 0 = RGB)."""
    range: int = RANGE_UNSPECIFIED
    """1 limited (tv), 2 full (pc)."""
    primaries: int = UNSPECIFIED
    """AVColorPrimaries (kept as a tag, never converted)."""
    trc: int = UNSPECIFIED
    """AVColorTransferCharacteristic (kept as a tag, never converted)."""

    def describe(self) -> str:
        """``bt709/tv`` for notes."""
        rng = {RANGE_LIMITED: "tv", RANGE_FULL: "pc"}.get(self.range, "unspecified")
        return f"{MATRIX_NAMES.get(self.matrix, str(self.matrix))}/{rng}"


def _tag(frame_value: Any, stream_value: Any, unspecified: int) -> int:
    """The frame's tag when it has one, else the stream's, else ``unspecified``."""
    for v in (frame_value, stream_value):
        if v is not None and int(v) != unspecified:
            return int(v)
    return unspecified


def is_rgb_format(fmt: Any) -> bool:
    """An RGB pixel format (no matrix): gbrp, rgb24, bgr0, rgb48be, ... (``fmt``: a PyAV VideoFormat)."""
    return bool(fmt.is_rgb)


def format_bits(fmt: Any) -> int:
    """Bits of the first component of a PyAV VideoFormat (8 for yuv420p, 10 for yuv420p10le)."""
    comps = list(fmt.components)
    return int(comps[0].bits) if comps else 8


def input_tags(frame: Any, codec_context: Any, matrix_guess: int) -> ColorTags:
    """The colour tags of a decoded ``frame`` (falling back to the stream's codec context).

    Args:
        frame: the first decoded PyAV VideoFrame.
        codec_context: its stream's codec context (tags from the container/codec parameters).
        matrix_guess: the matrix for untagged YUV (see :func:`guess_matrix`).
    """
    fmt = frame.format
    if is_rgb_format(fmt):
        return ColorTags(SPC_RGB, RANGE_FULL, _tag(frame.color_primaries, codec_context.color_primaries, UNSPECIFIED),
                         _tag(frame.color_trc, codec_context.color_trc, UNSPECIFIED))
    matrix = _tag(frame.colorspace, codec_context.colorspace, SPC_UNSPECIFIED)
    rng = _tag(frame.color_range, codec_context.color_range, RANGE_UNSPECIFIED)
    if rng == RANGE_UNSPECIFIED:
        rng = RANGE_FULL if fmt.name.startswith("yuvj") else RANGE_LIMITED
    return ColorTags(matrix if matrix != SPC_UNSPECIFIED else matrix_guess, rng,
                     _tag(frame.color_primaries, codec_context.color_primaries, UNSPECIFIED),
                     _tag(frame.color_trc, codec_context.color_trc, UNSPECIFIED))


def guess_matrix(width: int, height: int) -> int:
    """What players assume for untagged YUV: BT.709 for HD (>= 1280 wide or > 576 high), else BT.601."""
    return SPC_BT709 if width >= 1280 or height > 576 else SPC_SMPTE170M


def sws_matrix(matrix: int) -> str:
    """swscale's coefficient set for an AVColorSpace.

    Raises:
        VideoError: a matrix swscale cannot convert (YCgCo, ICtCp, chroma-derived).
    """
    if matrix not in _SWS_MATRIX:
        raise VideoError(f"colour matrix {MATRIX_NAMES.get(matrix, matrix)} is not supported",
                         "Convert the video to BT.709 or BT.601 first.")
    return _SWS_MATRIX[matrix]


def _flags() -> Any:
    from av.video.reformatter import Interpolation

    # bicubic chroma, accurate rounding, full chroma interpolation: 51 dB RGB -> 4:2:0 -> RGB round trip on a
    # smooth picture, against 35 dB with PyAV's default (bilinear) flags
    return Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


class Converter:
    """RGB <-> the video's pixel format with its matrix and range; one per thread (it owns a swscale context).

    Args:
        tags: the input's tags (the decode side) or the output's (the encode side).
        work_format: ``rgb24`` (uint8 frames) or ``rgb48le`` (uint16 frames).
    """

    def __init__(self, tags: ColorTags, work_format: str) -> None:
        from av.video.reformatter import VideoReformatter

        self.tags, self.work_format = tags, work_format
        self._sws = VideoReformatter()
        self._flags = _flags()
        self._matrix = None if tags.matrix == SPC_RGB else sws_matrix(tags.matrix)

    def to_rgb(self, frame: Any, width: int, height: int) -> np.ndarray:
        """A decoded frame as ``(height, width, 3)`` RGB (resized if the stream changed size mid-way)."""
        kw: dict[str, Any] = {}
        if self._matrix is not None and not is_rgb_format(frame.format):
            kw = {"src_colorspace": self._matrix, "dst_colorspace": self._matrix,
                  "src_color_range": self.tags.range, "dst_color_range": RANGE_FULL}
        out = self._sws.reformat(frame, width=width, height=height, format=self.work_format,
                                 interpolation=self._flags, **kw)
        return out.to_ndarray()

    def from_rgb(self, rgb: np.ndarray, pix_fmt: str) -> Any:
        """An RGB array as a frame of ``pix_fmt``, tagged with this converter's tags."""
        import av

        frame = av.VideoFrame.from_ndarray(rgb, format=self.work_format)
        kw: dict[str, Any] = {}
        if self._matrix is not None:
            kw = {"src_colorspace": self._matrix, "dst_colorspace": self._matrix,
                  "src_color_range": RANGE_FULL, "dst_color_range": self.tags.range}
        out = self._sws.reformat(frame, format=pix_fmt, interpolation=self._flags, **kw)
        out.colorspace, out.color_range = self.tags.matrix, self.tags.range
        out.color_primaries, out.color_trc = self.tags.primaries, self.tags.trc
        return out
