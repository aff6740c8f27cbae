"""Video for ``sr-run``: probe, decode, upscale and encode with PyAV (extra ``video``), torch-free.

- :mod:`~sr_runtime.video.probe`: ``is_video(path)`` (by probing, not by extension), ``probe(path) -> VideoInfo``.
- :mod:`~sr_runtime.video.color`: the input's colour tags and the RGB <-> YUV conversions that use them.
- :mod:`~sr_runtime.video.encode`: ``EncodeOptions``, the output plan (container, pixel format, what happens to
  each audio/subtitle stream) and the ``Muxer`` that the encode thread drives.
- :mod:`~sr_runtime.video.pipeline`: ``upscale_video(src, dst, upscaler, options)``: a decode thread, the model
  in the calling thread (:meth:`sr_runtime.api.Upscaler.enhance_frames`), an encode thread, bounded queues.

PyAV (``av``, FFmpeg's libraries in the wheel) is imported inside functions only: importing this package loads
neither ``av`` nor ``cv2``.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from sr_runtime.errors import MissingExtraError, SrError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
                  ".mpg", ".mpeg", ".ogv", ".3gp", ".y4m", ".mxf", ".nut", ".vob")
"""Suffixes that name a video even without PyAV (then the file gets the 'install the video extra' error)."""


class VideoError(SrError):
    """A video that cannot be read or written (broken, truncated, no frames, unknown codec, container)."""


def have_av() -> bool:
    """Whether PyAV is installed (without importing it)."""
    return importlib.util.find_spec("av") is not None


def require_av() -> ModuleType:
    """Import PyAV.

    Raises:
        MissingExtraError: PyAV is not installed (the hint names the ``video`` extra).
    """
    try:
        import av
    except ImportError:
        raise MissingExtraError("av", "video", "upscaling video") from None
    return av
