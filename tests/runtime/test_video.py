"""sr-run on videos (issue 13): clips generated here with PyAV, a few tiny frames each.

Frame count, rate, size, timestamps (VFR), audio, subtitles, rotation and colour tags are kept; output frames
equal the image path on the decoded frames (bit for bit with a lossless codec, a luma PSNR bound with x264);
colours do not shift (known-colour clips through a nearest-neighbour model); Ctrl-C and bad inputs leave
nothing behind and say what to do in one line.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

av = pytest.importorskip("av", reason="the video extra (PyAV) is not installed")

from sr_runtime import api  # noqa: E402
from sr_runtime.api import Upscaler  # noqa: E402
from sr_runtime.batch import collect_inputs, plan_jobs  # noqa: E402
from sr_runtime.cli import main  # noqa: E402
from sr_runtime.errors import MissingExtraError  # noqa: E402
from sr_runtime.video import VideoError  # noqa: E402
from sr_runtime.video.encode import EncodeOptions  # noqa: E402
from sr_runtime.video.pipeline import VideoOptions, upscale_video  # noqa: E402
from sr_runtime.video.probe import is_video, probe  # noqa: E402
from tests.runtime.fakes import FakeBackend  # noqa: E402

SR = Path(__file__).resolve().parents[1] / "data" / "SRVGGNetCompact.onnx"
"""Tiny x4 model committed for torch-free runs."""
BT709, SMPTE170M, BT2020 = 1, 6, 9


def frames_rgb(n: int, w: int, h: int, seed: int = 0, depth: int = 8) -> list[np.ndarray]:
    """Smooth moving colour gradients (a codec keeps them well)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    top = 255 if depth == 8 else 65535
    out = []
    for i in range(n):
        a = rng.uniform(0.2, 0.8, 3)
        img = np.stack([(np.sin(xx / 5 + i + a[0] * 6) + 1) / 2, (np.cos(yy / 4 - i) + 1) / 2,
                        (np.sin((xx + yy) / 7 + a[2]) + 1) / 2], axis=-1)
        out.append(np.rint(img * top).astype(np.uint8 if depth == 8 else np.uint16))
    return out


def make_clip(path: Path, *, n: int = 5, size: tuple[int, int] = (32, 24), codec: str = "libx264",
              pix_fmt: str = "yuv420p", rate: int = 10, pts: list[int] | None = None,
              time_base: Fraction | None = None, audio: bool = True, subtitle: bool = False,
              tags: tuple[int, int] | None = (BT709, 1), rotation: int | None = None,
              rgb: list[np.ndarray] | None = None, fmt: str | None = None) -> list[np.ndarray]:
    """Write a clip; returns the RGB frames given to the encoder. ``tags``: (matrix, range) or None."""
    w, h = size
    deep = "10" in pix_fmt or "48" in pix_fmt or "16" in pix_fmt
    frames = rgb if rgb is not None else frames_rgb(n, w, h, depth=16 if deep else 8)
    work = "rgb48le" if frames[0].dtype == np.uint16 else "rgb24"
    tb = time_base or Fraction(1, rate)
    with av.open(str(path), "w", format=fmt) as out:
        v = out.add_stream(codec, rate=rate)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        v.time_base = tb
        v.codec_context.time_base = tb
        if tags:
            v.codec_context.colorspace, v.codec_context.color_range = tags
            v.codec_context.color_primaries = v.codec_context.color_trc = tags[0]
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = out.add_stream("aac", rate=8000) if audio else None
        if a is not None:
            a.layout = "mono"
        s = out.add_mux_stream("subrip") if subtitle else None
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format=work)
            if tags and not pix_fmt.startswith(("rgb", "gbr", "bgr")):
                f = f.reformat(format=pix_fmt, dst_colorspace={1: "ITU709", 6: "SMPTE170M", 9: "BT2020"}[tags[0]],
                               src_color_range=2, dst_color_range=tags[1])
            f.pts = pts[i] if pts else i * round(1 / (rate * tb))
            f.time_base = tb
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        if a is not None:
            total = round(8000 * len(frames) / rate)
            for k in range(0, total, 1024):
                t = np.arange(k, min(total, k + 1024)) / 8000
                af = av.AudioFrame.from_ndarray((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                                format="fltp", layout="mono")
                af.sample_rate, af.pts = 8000, k
                for p in a.encode(af):
                    out.mux(p)
            for p in a.encode():
                out.mux(p)
        if s is not None:
            pk = av.Packet(b"Hello")
            pk.pts = pk.dts = 0
            pk.duration, pk.time_base, pk.stream = 300, Fraction(1, 1000), s
            out.mux(pk)
    return frames


def decode(path: Path, fmt: str = "rgb24") -> tuple[list[np.ndarray], list[int]]:
    """Decoded frames (converted with the stream's own tags, as sr-run does) and their timestamps."""
    from sr_runtime.video.color import Converter

    info = probe(path)
    conv = Converter(info.tags, fmt)
    frames, pts = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(conv.to_rgb(f, f.width, f.height))
            pts.append(f.pts)
    return frames, pts


def planes(path: Path) -> list[list[np.ndarray]]:
    """Each decoded frame's planes as arrays (no conversion)."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            dt = np.uint16 if "10" in f.format.name else np.uint8
            out.append([np.frombuffer(p, dt).reshape(p.height, -1)[:, :p.width] for p in f.planes])
    return out


def packets(path: Path, kind: str) -> list[tuple[float, float, bytes]]:
    with av.open(str(path)) as c:
        return [(float(p.pts * p.time_base), float(p.duration * p.time_base), bytes(p))
                for p in c.demux() if p.stream.type == kind and p.size]


def psnr(a: np.ndarray, b: np.ndarray, top: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(top * top / mse)


def luma(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64)
    return 0.2126 * x[..., 0] + 0.7152 * x[..., 1] + 0.0722 * x[..., 2]


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture
def fake_up():
    """An Upscaler over a nearest-neighbour x2 fake backend (output known exactly)."""
    with Upscaler(FakeBackend(scale=2), tile=0, pre_pad=0, batch=3) as up:
        yield up


# --------------------------------------------------------------------------- the faithful output
def test_default_codec_keeps_count_rate_size_audio_tags_rotation(tmp_path):
    src = tmp_path / "clip.mp4"
    make_clip(src, n=6, rotation=90)
    r = invoke(src, tmp_path / "out.mp4", "--model", SR)
    assert r.exit_code == 0, r.stderr
    assert "6 frames at" in r.stdout and "frames/s" in r.stdout
    a, b = probe(src), probe(tmp_path / "out.mp4")
    assert (b.width, b.height) == (a.width * 4, a.height * 4) and b.codec == "h264" and b.pix_fmt == "yuv420p"
    assert b.frames == a.frames == 6 and b.rate == a.rate == 10
    assert b.tags == a.tags and b.tags.matrix == BT709 and not b.matrix_guessed
    assert b.rotation == a.rotation == 90 and b.display_matrix == a.display_matrix
    assert packets(src, "audio") == packets(tmp_path / "out.mp4", "audio")  # copied, not re-encoded
    # the image path on the decoded frames, against the decoded output: luma PSNR bound (x264 at CRF 18)
    dec, pts_in = decode(src)
    got, pts_out = decode(tmp_path / "out.mp4")
    assert pts_in == pts_out and len(got) == 6
    with Upscaler(SR, tile=0, pre_pad=0) as up:
        for f, g in zip(dec, got):
            want = up.enhance(np.ascontiguousarray(f[..., ::-1]))[0][..., ::-1]
            assert psnr(luma(want), luma(g)) > 38
    assert leftovers(tmp_path) == ["clip.mp4", "out.mp4"]


@pytest.mark.parametrize(("codec", "pix_fmt", "container"), [("png", "rgb24", "mov"), ("png", "rgb48be", "mov"),
                                                              ("ffv1", "bgr0", "mkv")])
def test_lossless_output_equals_the_image_path_bit_for_bit(tmp_path, codec, pix_fmt, container):
    src = tmp_path / f"clip.{container}"
    make_clip(src, n=4, codec=codec, pix_fmt=pix_fmt, tags=None, audio=False)
    dst = tmp_path / f"out.{container}"
    r = invoke(src, dst, "--model", SR, "--codec", codec, "--batch", "3")
    assert r.exit_code == 0, r.stderr
    assert probe(dst).pix_fmt == pix_fmt  # the input's format, which the codec takes
    fmt = "rgb48le" if "48" in pix_fmt else "rgb24"
    dec, _ = decode(src, fmt)
    got, _ = decode(dst, fmt)
    assert len(got) == len(dec) == 4
    with Upscaler(SR, tile=0, pre_pad=0) as up:
        for f, g in zip(dec, got):
            want = up.enhance(np.ascontiguousarray(f[..., ::-1]))[0][..., ::-1]
            assert want.dtype == g.dtype and np.array_equal(want, g)


def test_variable_frame_rate_timestamps_are_kept(tmp_path, fake_up):
    src = tmp_path / "vfr.mkv"
    stamps = [0, 40, 120, 130, 400, 1000]
    make_clip(src, n=6, codec="ffv1", pix_fmt="yuv420p", time_base=Fraction(1, 1000), pts=stamps)
    dst = tmp_path / "vfr_out.mkv"
    res = upscale_video(src, dst, fake_up, VideoOptions(EncodeOptions(codec="libx264"), quiet=True))
    assert res.frames == 6
    assert decode(dst)[1] == decode(src)[1] == stamps
    assert [t for t, _, _ in packets(src, "audio")] == [t for t, _, _ in packets(dst, "audio")]


@pytest.mark.parametrize(("matrix", "rng", "pix_fmt"), [(BT709, 1, "yuv420p"), (SMPTE170M, 2, "yuv444p"),
                                                         (BT2020, 1, "yuv420p10le")])
def test_colours_do_not_shift(tmp_path, fake_up, matrix, rng, pix_fmt):
    """Flat saturated patches through an exact x2 nearest model: the output's YUV planes equal the input's
    (upsampled) within rounding; a conversion with another matrix or range would move them by 10+ levels."""
    patches = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (30, 200, 230), (128, 128, 128)]
    deep = "10" in pix_fmt
    img = np.zeros((16, 48, 3), np.uint16 if deep else np.uint8)
    for i, c in enumerate(patches):
        img[:, i * 8:(i + 1) * 8] = np.array(c) * (257 if deep else 1)
    src = tmp_path / "colours.mkv"
    make_clip(src, codec="ffv1", pix_fmt=pix_fmt, tags=(matrix, rng), rgb=[img, img], size=(48, 16), audio=False)
    dst = tmp_path / "colours_out.mkv"
    upscale_video(src, dst, fake_up, VideoOptions(EncodeOptions(codec="ffv1"), quiet=True))
    a, b = probe(src), probe(dst)
    assert b.pix_fmt == pix_fmt and b.tags == a.tags and (b.tags.matrix, b.tags.range) == (matrix, rng)
    for pin, pout in zip(planes(src)[0], planes(dst)[0]):
        up2 = np.repeat(np.repeat(pin, 2, 0), 2, 1)
        inner = (slice(2, -2), slice(2, -2))  # chroma siting at patch edges aside
        diff = np.abs(up2.astype(int) - pout.astype(int))
        # flat patch interiors: the planes come back within rounding (4 levels of 1023 for 10-bit)
        assert np.median(diff[inner]) <= (4 if deep else 1), (pix_fmt, diff.max())


def test_ten_bit_in_ten_bit_out(tmp_path, fake_up):
    src = tmp_path / "deep.mp4"
    make_clip(src, n=3, pix_fmt="yuv420p10le", audio=False)
    dst = tmp_path / "deep_out.mp4"
    upscale_video(src, dst, fake_up, VideoOptions(quiet=True))
    assert probe(dst).pix_fmt == "yuv420p10le" and probe(dst).bits == 10
    dec, _ = decode(src, "rgb48le")
    got, _ = decode(dst, "rgb48le")
    assert got[0].dtype == np.uint16
    for f, g in zip(dec, got):  # x264 at CRF 18 on a 4:2:0 clip: ~42 dB
        assert psnr(luma(np.repeat(np.repeat(f, 2, 0), 2, 1)), luma(g), 65535.0) > 40
    assert any(np.any(pl[0] % 4) for pl in planes(dst))  # 10-bit values, not 8-bit ones shifted


def test_outscale_odd_sizes_round_to_the_chroma_grid(tmp_path, fake_up):
    src = tmp_path / "c.mp4"
    make_clip(src, n=2, size=(32, 24), audio=False)
    dst = tmp_path / "c_out.mp4"
    upscale_video(src, dst, fake_up, VideoOptions(outscale=1.53, quiet=True))
    assert (probe(dst).width, probe(dst).height) == (48, 36)  # int(32*1.53)=48, int(24*1.53)=36 (even)
    upscale_video(src, dst, fake_up, VideoOptions(outscale=1.55, quiet=True))
    assert (probe(dst).width, probe(dst).height) == (48, 36)  # 49x37 rounded down to even for yuv420p


def test_subtitles_copied_or_converted_and_audio_reencoded(tmp_path, fake_up):
    src = tmp_path / "subs.mkv"
    make_clip(src, n=3, codec="ffv1", subtitle=True)
    notes: list[str] = []
    upscale_video(src, tmp_path / "a.mkv", fake_up, VideoOptions(), note=notes.append)
    assert [s.kind for s in probe(tmp_path / "a.mkv").others] == ["audio", "subtitle"] and not notes
    upscale_video(src, tmp_path / "b.mp4", fake_up, VideoOptions(), note=notes.append)
    assert [(s.kind, s.codec) for s in probe(tmp_path / "b.mp4").others] == [("audio", "aac"),
                                                                           ("subtitle", "mov_text")]
    assert any("converted to mov_text" in n for n in notes)
    # webm holds neither aac nor h264: the audio is re-encoded (a note), the video codec is an error
    with pytest.raises(VideoError, match="cannot hold h264"):
        upscale_video(src, tmp_path / "c.webm", fake_up, VideoOptions())
    upscale_video(src, tmp_path / "c.webm", fake_up, VideoOptions(EncodeOptions(codec="libvpx-vp9")),
                  note=notes.append)
    assert [(s.kind, s.codec) for s in probe(tmp_path / "c.webm").others] == [("audio", "opus"),
                                                                            ("subtitle", "webvtt")]
    assert any("re-encoded to opus" in n for n in notes)
    audio_in, audio_out = packets(src, "audio"), packets(tmp_path / "c.webm", "audio")
    assert abs(sum(d for _, d, _ in audio_in) - sum(d for _, d, _ in audio_out)) < 0.05  # same length


# --------------------------------------------------------------------------- the iterator API
def test_enhance_frames_equals_enhance_and_batches_whole_frames():
    be = FakeBackend(scale=2)
    frames = frames_rgb(5, 12, 10) + frames_rgb(2, 8, 6, seed=1)
    with Upscaler(be, tile=0, pre_pad=0, batch=3) as up:
        outs = list(up.enhance_frames(iter(frames)))
        assert [c[0] for c in be.calls] == [3, 2, 2]  # same-shape frames stacked, up to batch per call
        for f, o in zip(frames, outs):
            assert np.array_equal(o, up.enhance(np.ascontiguousarray(f[..., ::-1]))[0][..., ::-1])
        bgr = list(up.enhance_frames([f[..., ::-1] for f in frames], order="bgr", size=(30, 20)))
        assert all(o.shape == (20, 30, 3) for o in bgr)


def test_enhance_frames_tiles_frames_larger_than_the_tile():
    be = FakeBackend(scale=2)
    frames = frames_rgb(2, 40, 30)
    with Upscaler(be, tile=16, tile_pad=2, pre_pad=0, batch=4) as up:
        outs = list(up.enhance_frames(frames))
        assert all(c[2] < 30 for c in be.calls)  # tiles, not whole frames
        for f, o in zip(frames, outs):
            assert np.array_equal(o, np.repeat(np.repeat(f, 2, 0), 2, 1))


# --------------------------------------------------------------------------- inputs and outputs
def test_folder_of_videos_and_images_and_probing(tmp_path, image_files):
    d = tmp_path / "mixed"
    d.mkdir()
    make_clip(d / "a.mp4", n=2, audio=False)
    make_clip(d / "noext", n=2, audio=False, fmt="matroska")  # a video without a suffix: found by probing
    os.link(image_files["rgb"], d / "pic.png")
    (d / "notes.txt").write_text("not a video\n" * 20)
    assert is_video(d / "noext") and is_video(d / "a.mp4")
    assert not is_video(d / "notes.txt") and not is_video(d / "pic.png")
    jobs = plan_jobs(collect_inputs(d), tmp_path / "o")
    assert [(j.src.name, j.dst.name, j.video) for j in jobs] == [
        ("a.mp4", "a_out.mp4", True), ("noext", "noext_out.mkv", True), ("pic.png", "pic_out.png", False)]
    r = invoke(d, tmp_path / "o", "--model", SR)
    assert r.exit_code == 0, r.stderr
    assert leftovers(tmp_path / "o") == ["a_out.mp4", "noext_out.mkv", "pic_out.png"]
    assert "done 3" in r.stdout and "4 frames at" in r.stdout


def test_interrupt_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "in" / "clip.mp4"
    src.parent.mkdir()
    make_clip(src, n=6)
    calls = []

    def boom(x):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.repeat(np.repeat(x, 2, 2), 2, 3)

    monkeypatch.setattr(api, "open_backend", lambda *a, **k: FakeBackend(boom, scale=2))
    r = invoke(src, tmp_path / "out" / "clip.mp4", "--model", SR, "--batch", "1")
    assert r.exit_code == 130 and "interrupted" in r.stderr
    assert leftovers(tmp_path / "out") == []  # no output, no temp file


def _truncated(tmp_path: Path) -> Path:
    src = tmp_path / "full.mp4"
    make_clip(src, n=4)
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return bad


def _zero_frames(tmp_path: Path) -> Path:
    """A video stream without a single packet, beside an audio track."""
    p = tmp_path / "empty.mkv"
    with av.open(str(p), "w") as out:
        v = out.add_stream("ffv1", rate=10)
        v.width, v.height, v.pix_fmt = 16, 16, "yuv420p"
        a = out.add_stream("aac", rate=8000)
        a.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        for pk in [*a.encode(af), *a.encode()]:
            out.mux(pk)
    return p


def _unknown_codec(tmp_path: Path) -> Path:
    src = tmp_path / "ok.mkv"
    make_clip(src, n=2, codec="ffv1", audio=False)
    p = tmp_path / "unknown.mkv"
    p.write_bytes(src.read_bytes().replace(b"FFV1", b"ZZZ9"))  # a FourCC no decoder knows
    return p


def _garbage(tmp_path: Path) -> Path:
    p = tmp_path / "garbage.mp4"
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    return p


@pytest.mark.parametrize(("make", "extra", "expect"), [
    (_truncated, (), "damaged, truncated or not a video"),
    (_garbage, (), "damaged, truncated or not a video"),
    (_zero_frames, (), "the video has no frames"),
    (_unknown_codec, (), "unknown video codec"),
    (lambda p: make_clip(p / "s.mkv", n=2, codec="ffv1", subtitle=True) and p / "s.mkv", ("--suffix", "x"),
     None),
])
def test_bad_inputs_one_line_and_nothing_written(tmp_path, make, extra, expect):
    src = make(tmp_path)
    out = tmp_path / "out"
    r = invoke(src, out / "o.avi" if expect is None else out / "o.mp4", "--model", SR, *extra)
    assert r.exit_code == 1
    line = error_line(r)
    assert line.startswith(f"error: {src}: ")
    assert (expect or "avi container cannot hold subtitle stream #2 (subrip). Write the output as .mkv") in line
    assert leftovers(out) == []


@pytest.mark.parametrize(("flags", "expect"), [
    (("--codec", "nope"), "unknown video encoder 'nope'"),
    (("--codec", "aac"), "'aac' is not a video encoder"),
    (("--pix-fmt", "yuv411p"), "libx264 cannot encode --pix-fmt yuv411p"),
    (("--codec", "ffv1", "--preset", "slow"), "ffv1 has no --preset"),
])
def test_bad_encoder_flags(tmp_path, flags, expect):
    src = tmp_path / "c.mp4"
    make_clip(src, n=2, audio=False)
    r = invoke(src, tmp_path / "out" / "o.mkv", "--model", SR, *flags)
    assert r.exit_code == 1 and expect in error_line(r)
    assert leftovers(tmp_path / "out") == []


def test_video_to_an_image_name_is_refused(tmp_path):
    src = tmp_path / "c.mp4"
    make_clip(src, n=2, audio=False)
    r = invoke(src, tmp_path / "o.png", "--model", SR)
    assert r.exit_code == 1 and "a video is written as a video" in error_line(r)


def test_without_pyav_the_error_names_the_extra(monkeypatch, tmp_path):
    import sys

    from sr_runtime.video import require_av

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'sr-deploy\[video\]'"):
        require_av()
