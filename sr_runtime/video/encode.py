"""The output side: container and pixel format choice, what happens to each stream, and the ``Muxer``.

``plan_output`` decides everything before a frame is decoded (so a bad ``--codec`` or a container that cannot
hold a stream fails at once, naming the file); ``Muxer`` then runs in the encode thread: it owns the output
container, encodes the upscaled frames with the input's timestamps, and copies (or, where the container
cannot hold them, re-encodes) the audio and subtitle packets.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from sr_runtime.video import VideoError
from sr_runtime.video.color import (
    RANGE_FULL,
    RANGE_LIMITED,
    SPC_RGB,
    ColorTags,
    Converter,
    format_bits,
    guess_matrix,
)
from sr_runtime.video.probe import VideoInfo

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18
"""The CRF where the codec takes one and ``--crf`` is not given (visually lossless for x264/x265)."""

_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".avi": "avi",
           ".ts": "mpegts", ".mts": "mpegts", ".m2ts": "mpegts", ".flv": "flv", ".nut": "nut", ".ogv": "ogg",
           ".3gp": "3gp", ".mxf": "mxf", ".y4m": "yuv4mpegpipe", ".wmv": "asf", ".mpg": "mpeg", ".mpeg": "mpeg",
           ".vob": "vob"}
"""Output suffix -> FFmpeg muxer (others are looked up in the muxers' extension lists)."""
_TEXT_SUBTITLES = ("mov_text", "webvtt", "subrip", "ass")
"""Text subtitle codecs a subtitle stream is converted to where the container cannot hold it, first held wins."""
_CODEC_HINT = "Use libx264 (default), libx265, libvpx-vp9, libsvtav1, ffv1 or png."


@dataclass(frozen=True)
class EncodeOptions:
    """The encoder flags of ``sr-run`` for videos."""

    codec: str = DEFAULT_CODEC
    """FFmpeg encoder name (``--codec``)."""
    crf: int | None = None
    """Constant rate factor (``--crf``); None: 18 where the codec takes one."""
    preset: str | None = None
    """Encoder preset (``--preset``, e.g. ``slow``); None: the encoder's default."""
    pix_fmt: str | None = None
    """Output pixel format (``--pix-fmt``); None: the input's when the codec can, else yuv420p (10-bit kept)."""


@dataclass(frozen=True)
class StreamPlan:
    """What happens to one audio/subtitle/data stream."""

    index: int
    """Input stream index."""
    kind: str
    """``audio``, ``subtitle``, ``data`` or ``attachment``."""
    action: str
    """``copy`` (packets as they are), ``encode`` (re-encoded to ``codec``) or ``drop``."""
    codec: str = ""
    """The target codec of ``encode``."""


@dataclass(frozen=True)
class OutputPlan:
    """Everything about the output, decided before decoding."""

    muxer: str
    """FFmpeg muxer name."""
    codec: str
    """Video encoder."""
    pix_fmt: str
    """Output pixel format."""
    width: int
    """Output width."""
    height: int
    """Output height."""
    work_format: str
    """RGB format the model sees: ``rgb24`` or ``rgb48le``."""
    tags: ColorTags
    """Output colour tags (the input's; RGB output: matrix rgb, full range)."""
    options: dict[str, str]
    """Encoder options (crf, preset)."""
    bit_rate: int | None
    """Set to 0 for CRF-only encoders (libvpx); None leaves the default."""
    streams: tuple[StreamPlan, ...]
    """Audio/subtitle/data streams."""
    notes: tuple[str, ...] = field(default=())
    """What the user should know (re-encoded audio, dropped alpha, 8-bit output, guessed matrix)."""


def muxer_for(path: str | Path) -> str:
    """The FFmpeg muxer for an output file name.

    Raises:
        VideoError: no muxer writes this suffix.
    """
    import av

    suffix = Path(path).suffix.lower()
    if suffix in _MUXERS:
        return _MUXERS[suffix]
    ext = suffix.lstrip(".")
    if ext:
        for name in sorted(av.formats_available):
            try:
                fmt = av.format.ContainerFormat(name, "w")
            except ValueError:
                continue
            if ext in fmt.extensions:
                return name
    raise VideoError(f"no video container is known for '{suffix or Path(path).name}'",
                     "Name the output .mp4, .mkv, .mov or .webm.", path)


def output_suffix(src: Path) -> str:
    """The output suffix for a video written into a folder: the input's, or ``.mkv`` if nothing writes it."""
    if src.suffix.lower() in _MUXERS:
        return src.suffix.lower()
    try:
        muxer_for(src)
        return src.suffix.lower()
    except (VideoError, ImportError):
        return ".mkv"


def _encoder(name: str) -> Any:
    import av

    try:
        codec = av.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        raise VideoError(f"unknown video encoder '{name}'", _CODEC_HINT) from None
    if codec.type != "video":
        raise VideoError(f"'{name}' is not a video encoder", _CODEC_HINT)
    return codec


def _usable(name: str) -> bool:
    import av

    f = av.VideoFormat(name)
    return not (f.has_palette or f.is_bayer or f.is_bit_stream or any(c.is_alpha for c in f.components))


def _layout(name: str) -> tuple[bool, int, int]:
    """(rgb, horizontal chroma factor, vertical chroma factor) of a pixel format."""
    import av

    f = av.VideoFormat(name)
    if f.is_rgb or len(f.components) < 3:
        return f.is_rgb, 1, 1
    return False, 16 // max(1, f.chroma_width(16)), 16 // max(1, f.chroma_height(16))


def pick_pix_fmt(info: VideoInfo, codec: str, requested: str | None) -> tuple[str, list[str]]:
    """The output pixel format and notes: the input's when the codec takes it, else the closest one with the
    same bit depth when deeper than 8 bits, else yuv420p.

    Raises:
        VideoError: an unknown encoder, or ``requested`` is not one of its formats.
    """
    formats = [f.name for f in (_encoder(codec).video_formats or [])]
    if requested:
        if formats and requested not in formats:
            raise VideoError(f"{codec} cannot encode --pix-fmt {requested}",
                             f"Use one of: {', '.join(formats)}.")
        return requested, []
    if not formats or (info.pix_fmt in formats and _usable(info.pix_fmt)):
        return info.pix_fmt, []
    notes = ["the alpha plane is dropped (the model upscales colour)"] if info.alpha else []
    want = _layout(info.pix_fmt)
    ok = [f for f in formats if _usable(f)]

    def rank(name: str) -> tuple[int, int, int]:
        import av

        bits = format_bits(av.VideoFormat(name))
        return (abs(bits - info.bits), int(_layout(name) != want), int(name != "yuv420p"))

    if info.bits > 8:
        deep = [f for f in ok if format_bits(__import__("av").VideoFormat(f)) > 8]
        if deep:
            return min(deep, key=rank), notes
        notes.append(f"{codec} has no format deeper than 8 bits: the output is 8-bit")
    if "yuv420p" in ok:
        return "yuv420p", notes
    if not ok:
        raise VideoError(f"{codec} takes no colour format sr-run can write", _CODEC_HINT)
    return min(ok, key=rank), notes


def output_tags(info: VideoInfo, pix_fmt: str) -> ColorTags:
    """The output's colour tags: the input's; an RGB input written as YUV gets the matrix players assume."""
    rgb_out, _, _ = _layout(pix_fmt)
    t = info.tags
    if rgb_out:
        return ColorTags(SPC_RGB, RANGE_FULL, t.primaries, t.trc)
    if info.rgb:
        return ColorTags(guess_matrix(info.width, info.height), RANGE_LIMITED, t.primaries, t.trc)
    rng = RANGE_FULL if pix_fmt.startswith("yuvj") else t.range
    return ColorTags(t.matrix, rng, t.primaries, t.trc)


def output_size(info: VideoInfo, scale: int, outscale: float | None, pix_fmt: str) -> tuple[int, int, list[str]]:
    """``(width, height, notes)``: the model's scale or ``outscale``, rounded down to the chroma grid."""
    f = float(outscale) if outscale else float(scale)
    if f <= 0:
        raise VideoError(f"bad outscale {outscale}", "Use a positive scale.")
    w, h = max(1, int(info.width * f)), max(1, int(info.height * f))
    _, cx, cy = _layout(pix_fmt)
    w2, h2 = max(cx, w - w % cx), max(cy, h - h % cy)
    notes = [f"output size {w}x{h} rounded to {w2}x{h2} for {pix_fmt}"] if (w2, h2) != (w, h) else []
    return w2, h2, notes


def _codec_options(codec: str, opts: EncodeOptions) -> tuple[dict[str, str], int | None, list[str]]:
    """Encoder options from ``--crf``/``--preset`` (those the encoder has)."""
    import av

    names = {o.name for o in av.CodecContext.create(codec, "w").supported_options.private}
    out: dict[str, str] = {}
    notes: list[str] = []
    bit_rate = None
    if "crf" in names:
        out["crf"] = str(DEFAULT_CRF if opts.crf is None else opts.crf)
        if codec.startswith("libvpx"):
            bit_rate = 0  # constant quality: libvpx needs b=0 beside crf
    elif opts.crf is not None:
        notes.append(f"{codec} has no --crf; it is ignored")
    if opts.preset:
        if "preset" not in names:
            raise VideoError(f"{codec} has no --preset", "Leave --preset out for this codec.")
        out["preset"] = opts.preset
    return out, bit_rate, notes


def _stream_plans(info: VideoInfo, muxer: str) -> tuple[list[StreamPlan], list[str]]:
    """Copy every stream the container holds; re-encode audio (and text subtitles) it cannot; else fail.

    Raises:
        VideoError: a subtitle stream the container cannot hold in any form.
    """
    import av

    with av.open(io.BytesIO(), "w", format=muxer) as probe:
        supported, audio = probe.supported_codecs, probe.default_audio_codec
    subs = next((c for c in _TEXT_SUBTITLES if c in supported), "")
    plans: list[StreamPlan] = []
    notes: list[str] = []
    for o in info.others:
        if o.codec and o.codec in supported:
            plans.append(StreamPlan(o.index, o.kind, "copy"))
        elif o.kind == "audio" and audio not in ("", "none"):
            plans.append(StreamPlan(o.index, o.kind, "encode", audio))
            notes.append(f"audio stream #{o.index} ({o.codec}) re-encoded to {audio}: {muxer} cannot hold "
                         f"{o.codec}; write .mkv to keep it as it is")
        elif o.kind == "subtitle" and subs and _text_subtitle(o.codec):
            plans.append(StreamPlan(o.index, o.kind, "encode", subs))
            notes.append(f"subtitle stream #{o.index} ({o.codec}) converted to {subs}: {muxer} cannot hold "
                         f"{o.codec}; write .mkv to keep it as it is")
        elif o.kind in ("data", "attachment"):
            plans.append(StreamPlan(o.index, o.kind, "drop"))
            notes.append(f"{o.kind} stream #{o.index} ({o.codec or 'unknown'}) dropped: {muxer} cannot hold it")
        else:
            raise VideoError(f"the {muxer} container cannot hold {o.kind} stream #{o.index} ({o.codec or 'unknown'})",
                             "Write the output as .mkv, which holds every stream.", info.path)
    return plans, notes


def _text_subtitle(codec: str) -> bool:
    import av

    try:
        return bool(av.Codec(codec, "r").text_sub)
    except Exception:  # noqa: BLE001 - unknown codec: not convertible
        return False


def plan_output(info: VideoInfo, dst: Path, scale: int, outscale: float | None, opts: EncodeOptions) -> OutputPlan:
    """Decide the output: muxer, codec and options, pixel format, size, colour tags, streams.

    Raises:
        VideoError: unknown encoder or container, a pixel format or stream the output cannot hold, the video
            codec does not fit the container.
    """
    import av

    muxer = muxer_for(dst)
    pix_fmt, notes = pick_pix_fmt(info, opts.codec, opts.pix_fmt)
    canonical = _encoder(opts.codec).canonical_name
    with av.open(io.BytesIO(), "w", format=muxer) as probe:
        if canonical not in probe.supported_codecs:
            raise VideoError(f"the {muxer} container cannot hold {canonical} video (--codec {opts.codec})",
                             "Pick another --codec or write .mkv.", dst)
    width, height, size_notes = output_size(info, scale, outscale, pix_fmt)
    options, bit_rate, opt_notes = _codec_options(opts.codec, opts)
    streams, stream_notes = _stream_plans(info, muxer)
    if info.matrix_guessed and not _layout(pix_fmt)[0]:
        notes.append(f"no colour matrix tag: read as {info.tags.describe()} (what players assume for "
                     f"{info.width}x{info.height}) and tagged so in the output")
    deep = info.bits > 8 or format_bits(av.VideoFormat(pix_fmt)) > 8
    return OutputPlan(muxer, opts.codec, pix_fmt, width, height, "rgb48le" if deep else "rgb24",
                      output_tags(info, pix_fmt), options, bit_rate, tuple(streams),
                      tuple(notes + size_notes + opt_notes + stream_notes))


class Muxer:
    """The output container, driven from one thread (the encode thread).

    Args:
        out: the open PyAV output container.
        inp: the open input container (its stream objects are the copy templates and audio decoders).
        info: the probed input.
        plan: from :func:`plan_output`.
    """

    def __init__(self, out: Any, inp: Any, info: VideoInfo, plan: OutputPlan) -> None:
        self.out, self.plan = out, plan
        v = out.add_stream(plan.codec, rate=info.rate or Fraction(25))
        v.width, v.height, v.pix_fmt = plan.width, plan.height, plan.pix_fmt
        v.time_base = info.time_base
        cc = v.codec_context
        cc.time_base = info.time_base
        t = plan.tags
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = t.matrix, t.range, t.primaries, t.trc
        if plan.bit_rate is not None:
            cc.bit_rate = plan.bit_rate
        v.options = dict(plan.options)
        if info.display_matrix:
            v.set_display_matrix(list(info.display_matrix))
        self.video_stream = v
        self.time_base = info.time_base
        self.convert = Converter(plan.tags, plan.work_format)
        self.copies: dict[int, Any] = {}
        self.encodes: dict[int, _Reencode] = {}
        for sp in plan.streams:
            ist = inp.streams[sp.index]
            if sp.action == "copy":
                self.copies[sp.index] = out.add_stream_from_template(ist)
            elif sp.action == "encode":
                self.encodes[sp.index] = _Reencode(out, ist, sp.codec)

    def video(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        """Encode one upscaled RGB frame with the input's timestamp (in the input's time base)."""
        frame = self.convert.from_rgb(rgb, self.plan.pix_fmt)
        frame.pts, frame.time_base = pts, self.time_base
        if duration:
            frame.duration = duration
        for pkt in self.video_stream.encode(frame):
            self.out.mux(pkt)

    def packet(self, pkt: Any) -> None:
        """Copy (or re-encode) one audio/subtitle packet of the input."""
        idx = pkt.stream.index
        if idx in self.copies:
            pkt.stream = self.copies[idx]
            self.out.mux(pkt)
        elif idx in self.encodes:
            self.encodes[idx].packet(pkt)

    def finish(self) -> None:
        """Flush the encoders (the container is closed by its owner)."""
        for pkt in self.video_stream.encode(None):
            self.out.mux(pkt)
        for r in self.encodes.values():
            r.finish()


class _Reencode:
    """One audio (or text subtitle) stream decoded and re-encoded for a container that cannot hold it."""

    def __init__(self, out: Any, ist: Any, codec: str) -> None:
        import av

        self.out, self.ist = out, ist
        self.kind = ist.type
        if self.kind == "audio":
            self.ost = out.add_stream(codec, rate=ist.codec_context.sample_rate)
            self.ost.layout = ist.codec_context.layout
            self.resampler = av.AudioResampler(format=self.ost.format, layout=self.ost.layout,
                                               rate=self.ost.rate)
        else:
            self.ost = out.add_stream(codec)
            ist.codec_context.open()  # the decoder makes the ASS header the encoder needs
            header = ist.codec_context.subtitle_header
            if header:
                self.ost.codec_context.subtitle_header = header
            self.ost.time_base = ist.time_base

    def packet(self, pkt: Any) -> None:
        if self.kind == "audio":
            for frame in self.ist.codec_context.decode(pkt):
                self._encode(self.resampler.resample(frame))
            return
        subs = self.ist.codec_context.decode2(pkt)
        if subs is not None:
            out = self.ost.codec_context.encode_subtitle(subs)
            out.stream, out.time_base = self.ost, pkt.time_base
            out.pts, out.dts, out.duration = pkt.pts, pkt.pts, pkt.duration
            self.out.mux(out)

    def _encode(self, frames: list[Any]) -> None:
        for f in frames:
            f.pts = None  # the encoder counts samples: no gaps from the input's packet timing
            for p in self.ost.encode(f):
                self.out.mux(p)

    def finish(self) -> None:
        if self.kind == "audio":
            self._encode(self.resampler.resample(None))
            for p in self.ost.encode(None):
                self.out.mux(p)
