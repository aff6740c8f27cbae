"""Video benchmark (``make bench``, issue 13): frames/s of ``sr-run`` on a clip against upstream's method.

Usage::

    python -m benchmarks.video [--quick] [--threads N] [--repeats R] [--size 64x48] [--seconds 10] [--fps 12]
    # on a GPU: ours on ONNX Runtime CUDA (or --backend trt), upstream's torch on CUDA in fp16 as its CLI does
    python -m benchmarks.video --backend ort-cuda --torch-device cuda --half --size 640x360 --seconds 20

Contenders, each a fresh child process, run in interleaved rounds (noisy shared machine: best and spread):

- ``ours``: :func:`sr_runtime.video.pipeline.upscale_video` as ``sr-run clip.mp4 out.mp4`` runs it (decode
  thread -> :meth:`~sr_runtime.api.Upscaler.enhance_frames` on ONNX Runtime -> encode thread; tile auto,
  batch 4, libx264 CRF 18), audio copied.
- ``ours-model``: the same ``enhance_frames`` on frames decoded beforehand: the model-only frame rate. ``ours``
  over ``ours-model`` says how much of decode + encode is hidden behind inference (goal >= 95 %).
- ``upstream``: ``inference_realesrgan_video.py``'s method: a decoder process writes raw rgb24 frames to a pipe,
  the main process runs ``RealESRGANer.enhance`` per frame in torch eager (:class:`benchmarks.reference.Reference`,
  tile 0, pre_pad 0, fp32 on the CPU), an encoder process reads raw frames from a pipe. Upstream pipes to the
  ``ffmpeg`` program; there is none on this machine, so both pipe ends are PyAV in child processes
  (``--pipe-decode``/``--pipe-encode`` here) with the same x264 settings as ours, audio copied.
- ``upstream-model``: ``Reference.enhance`` per frame on frames decoded beforehand.

Model: the official realesr-animevideov3 (``../shared/data``), exported to ONNX with sr_export; without it
SRVGGNetCompact 64/16 x4 with random weights (the same network shape). The clip is generated with PyAV
(moving gradients, disks and text, an AAC track). Results: ``<out>/video.json`` and ``video.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sr_runtime.fileio import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".sr-cache" / "bench" / "video"
RESULTS = ROOT / "benchmarks" / "results"
OFFICIAL = ROOT.parent / "shared" / "data" / "realesr-animevideov3.pth"
CONTENDERS = ("ours", "ours-model", "upstream", "upstream-model")
CRF = 18
CHILD_TIMEOUT_S = 1800


# =========================================================================== inputs (child processes)
def make_clip(path: Path, width: int, height: int, fps: int, seconds: float) -> None:
    """A deterministic clip: moving colour gradients, disks and text, libx264 yuv420p BT.709, AAC audio."""
    import av
    import cv2
    import numpy as np

    n = round(fps * seconds)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.colorspace = v.codec_context.color_primaries = v.codec_context.color_trc = 1
        v.codec_context.color_range = 1
        v.options = {"crf": "16"}
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(n):
            img = np.stack([0.5 + 0.4 * np.sin(xx / (9 + 3 * c) + i / 7 + c) * np.cos(yy / (7 + 2 * c) - i / 11)
                            for c in range(3)], -1)
            img = (img * 255).astype(np.uint8)
            cv2.circle(img, (int(width / 2 + width / 3 * np.sin(i / 9)), height // 2), max(2, height // 6),
                       (230, 40, 40), -1)
            cv2.putText(img, f"{i:04d}", (2, height - 3), cv2.FONT_HERSHEY_SIMPLEX, height / 120, (250, 250, 250), 1)
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", src_color_range="JPEG", dst_color_range="MPEG")
            f.pts = i
            for p in v.encode(f):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        total = round(48000 * n / fps)
        for k in range(0, total, 1024):
            t = np.arange(k, min(total, k + 1024)) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    os.replace(tmp, path)


def _decoded_frames(clip: str) -> list[Any]:
    """The clip's frames as RGB arrays, converted as sr-run converts them."""
    import av

    from sr_runtime.video.color import Converter
    from sr_runtime.video.probe import probe

    info = probe(clip)
    conv = Converter(info.tags, "rgb24")
    with av.open(clip) as c:
        return [conv.to_rgb(f, info.width, info.height) for f in c.decode(video=0)]


# =========================================================================== workers (child processes)
def w_prepare(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """Export the model to ONNX and generate the clip (cached)."""
    cache = Path(args["cache"])
    cache.mkdir(parents=True, exist_ok=True)
    onnx = cache / "model.onnx"
    weights = cache / "model.pt"
    note = f"official {OFFICIAL.name}"
    if not (onnx.is_file() and weights.is_file()):
        import torch

        from sr_export.onnx import export_onnx
        from sr_train.archs import REGISTRY

        hp = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}
        spec = REGISTRY.get("SRVGGNetCompact")
        if OFFICIAL.is_file():
            from sr_train.checkpoint import load_generator

            g = load_generator(OFFICIAL)
            model, spec, hp = g.model, g.spec, g.hparams
        else:
            torch.manual_seed(0)
            model = spec.build(**hp).eval()
        torch.save({"arch": spec.id, "hparams": hp, "state": model.state_dict()}, weights)
        export_onnx(model, spec, hp, onnx)
    if not OFFICIAL.is_file():
        note = "SRVGGNetCompact 64/16 x4, random init (official checkpoint not found)"
    w, h = args["size"]
    clip = cache / f"clip_{w}x{h}_{args['fps']}fps_{args['seconds']}s.mp4"
    if not clip.is_file():
        make_clip(clip, w, h, args["fps"], args["seconds"])
    return {"onnx": str(onnx), "weights": str(weights), "clip": str(clip), "model_note": note}


def _upscaler(args: dict[str, Any], threads: int) -> Any:
    from sr_runtime.api import Upscaler

    return Upscaler(args["onnx"], tile="auto", tile_pad=10, pre_pad=0, batch=4, backend=args["backend"],
                    threads=threads)


def w_ours(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """``sr-run clip.mp4 out.mp4`` as a library call, after one warm-up frame."""
    import numpy as np

    from sr_runtime.video.encode import EncodeOptions
    from sr_runtime.video.pipeline import VideoOptions, upscale_video

    up = _upscaler(args, threads)
    w, h = args["size"]
    list(up.enhance_frames([np.zeros((h, w, 3), np.uint8)] * 4))
    t0 = time.perf_counter()
    res = upscale_video(args["clip"], args["out"], up,
                        VideoOptions(EncodeOptions(crf=CRF), quiet=True))
    return {"frames": res.frames, "seconds": time.perf_counter() - t0, "provider": up.provider}


def w_ours_model(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """``enhance_frames`` on frames decoded beforehand (no decode, no encode)."""
    frames = _decoded_frames(args["clip"])
    up = _upscaler(args, threads)
    list(up.enhance_frames(frames[:4]))
    t0 = time.perf_counter()
    n = sum(1 for _ in up.enhance_frames(frames))
    return {"frames": n, "seconds": time.perf_counter() - t0, "provider": up.provider}


def _reference(args: dict[str, Any], threads: int) -> Any:
    import torch

    from benchmarks.reference import Reference
    from sr_train.archs import REGISTRY

    torch.set_num_threads(threads)
    d = torch.load(args["weights"], map_location="cpu", weights_only=True)
    model = REGISTRY.get(d["arch"]).build(**d["hparams"]).eval()
    model.load_state_dict(d["state"])
    return Reference(model, d["hparams"].get("upscale", 4), tile=0, pre_pad=0, half=args["half"],
                     device=args["torch_device"])


def _child(*argv: str, **kw: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "benchmarks.video", *argv], cwd=ROOT, env=env, **kw)


def w_upstream(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """Decoder process -> pipe -> RealESRGANer per frame (torch eager) -> pipe -> encoder process."""
    import numpy as np

    ref = _reference(args, threads)
    w, h = args["size"]
    ref.enhance(np.zeros((h, w, 3), np.uint8))
    t0 = time.perf_counter()
    dec = _child("--pipe-decode", args["clip"], stdout=subprocess.PIPE)
    enc = _child("--pipe-encode", args["out"], str(w * 4), str(h * 4), str(args["fps"]), args["clip"],
                 stdin=subprocess.PIPE)
    n, size = 0, w * h * 3
    while True:
        raw = dec.stdout.read(size)
        if len(raw) < size:
            break
        img = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
        out, _ = ref.enhance(img)  # upstream feeds the pipe's rgb24 as is
        enc.stdin.write(out.tobytes())
        n += 1
    enc.stdin.close()
    if dec.wait() or enc.wait():
        raise RuntimeError(f"pipe process failed (decoder {dec.returncode}, encoder {enc.returncode})")
    return {"frames": n, "seconds": time.perf_counter() - t0, "provider": f"torch eager {args['torch_device']}"}


def w_upstream_model(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """``RealESRGANer.enhance`` per frame on frames decoded beforehand."""
    frames = _decoded_frames(args["clip"])
    ref = _reference(args, threads)
    ref.enhance(frames[0])
    t0 = time.perf_counter()
    for f in frames:
        ref.enhance(f)
    return {"frames": len(frames), "seconds": time.perf_counter() - t0,
            "provider": f"torch eager {args['torch_device']}"}


def pipe_decode(clip: str) -> int:
    """``ffmpeg -i clip -f rawvideo -pix_fmt rgb24 pipe:`` with PyAV: raw frames on stdout."""
    import av

    out = sys.stdout.buffer
    with av.open(clip) as c:
        c.streams.video[0].thread_type = "AUTO"
        for f in c.decode(video=0):
            out.write(f.to_ndarray(format="rgb24").tobytes())
    out.flush()
    return 0


def pipe_encode(dst: str, width: int, height: int, fps: int, audio_src: str) -> int:
    """``ffmpeg -f rawvideo -pix_fmt rgb24 -s WxH -r FPS -i pipe: -i SRC -map 0:v -map 1:a -c:a copy
    -c:v libx264 -crf 18 -pix_fmt yuv420p DST`` with PyAV (raw frames on stdin)."""
    import av
    import numpy as np

    src = av.open(audio_src)
    with av.open(dst, "w") as out:
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": str(CRF)}
        audio = {s.index: out.add_stream_from_template(s) for s in src.streams.audio}
        size = width * height * 3
        i = 0
        while len(raw := sys.stdin.buffer.read(size)) == size:
            f = av.VideoFrame.from_ndarray(np.frombuffer(raw, np.uint8).reshape(height, width, 3), format="rgb24")
            f.pts = i
            i += 1
            for p in v.encode(f.reformat(format="yuv420p")):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        for pkt in src.demux(*src.streams.audio):
            if pkt.dts is not None:
                pkt.stream = audio[pkt.stream.index]
                out.mux(pkt)
    src.close()
    return 0


WORKERS = {"prepare": w_prepare, "ours": w_ours, "ours-model": w_ours_model, "upstream": w_upstream,
           "upstream-model": w_upstream_model}


def worker_main(spec_json: str) -> int:
    spec = json.loads(spec_json)
    try:
        res = WORKERS[spec["worker"]](spec["args"], spec["threads"])
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        res = {"error": f"{type(exc).__name__}: {exc}"}
    Path(spec["result"]).write_text(json.dumps(res))
    return 1 if "error" in res else 0


# =========================================================================== parent
def run_child(worker: str, args: dict[str, Any], threads: int, cache: Path) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; its result plus wall time and CPU used by other processes."""
    from benchmarks.run import cpu_jiffies

    result = cache / f"{worker}.result.json"
    result.unlink(missing_ok=True)
    spec = {"worker": worker, "args": args, "threads": threads, "result": str(result)}
    env_threads = {k: str(threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    busy0, _ = cpu_jiffies()
    t0 = time.perf_counter()
    with open(cache / f"{worker}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "benchmarks.video", "--worker", json.dumps(spec)], cwd=ROOT,
                                env={**os.environ, **env_threads,
                                     "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                                 os.environ.get("PYTHONPATH")]))},
                                stdout=log, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    busy1, _ = cpu_jiffies()
    res = json.loads(result.read_text()) if result.is_file() else {"error": f"exit {status}, see {log.name}"}
    own = ru.ru_utime + ru.ru_stime
    res.update({"wall_s": wall, "foreign_cpu_s": max(0.0, busy1 - busy0 - own), "rss_peak_mb": ru.ru_maxrss / 1024})
    if "frames" in res and res.get("seconds"):
        res["fps"] = res["frames"] / res["seconds"]
    return res


def summarize(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Best, median and spread of frames/s per contender, and the per-round ratios (interleaved pairs)."""
    out: dict[str, Any] = {}
    for c in CONTENDERS:
        fps = [r[c]["fps"] for r in rounds if c in r and "fps" in r[c]]
        if fps:
            out[c] = {"best_fps": max(fps), "median_fps": statistics.median(fps), "min_fps": min(fps), "runs": fps}
    ratios = {"ours_vs_upstream": ("ours", "upstream"), "hidden_io": ("ours", "ours-model"),
              "model_ours_vs_upstream": ("ours-model", "upstream-model")}
    for name, (a, b) in ratios.items():
        per_round = [r[a]["fps"] / r[b]["fps"] for r in rounds if "fps" in r.get(a, {}) and "fps" in r.get(b, {})]
        if per_round:
            out[name] = {"best": max(per_round), "median": statistics.median(per_round), "min": min(per_round),
                         "per_round": per_round}
    return out


def write_markdown(data: dict[str, Any], path: Path) -> None:
    m, s = data["meta"], data["summary"]
    lines = [f"# Video benchmark ({m['date_utc']})", "",
             f"{m['cpu']['model']}, {m['cpu']['logical_cpus']} logical CPUs, {m['threads']} threads; load "
             f"{m['load_before']} -> {m['load_after']}. Clip {m['size'][0]}x{m['size'][1]}, {m['fps']} fps, "
             f"{m['seconds']} s ({m['frames']} frames) -> x4; model: {m['model_note']}; "
             f"{m['repeats']} interleaved rounds.", "",
             "| contender | best frames/s | median | min |", "|---|---|---|---|"]
    for c in CONTENDERS:
        if c in s:
            lines.append(f"| {c} | {s[c]['best_fps']:.3f} | {s[c]['median_fps']:.3f} | {s[c]['min_fps']:.3f} |")
    lines += ["", "| ratio (per round) | best | median | min |", "|---|---|---|---|"]
    for name in ("ours_vs_upstream", "hidden_io", "model_ours_vs_upstream"):
        if name in s:
            lines.append(f"| {name} | {s[name]['best']:.3f} | {s[name]['median']:.3f} | {s[name]['min']:.3f} |")
    lines += ["", "Upstream's pipes are PyAV in child processes (no ffmpeg program on this machine)."]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def run_bench(out_dir: Path, *, quick: bool = False, threads: int | None = None, repeats: int | None = None,
              size: tuple[int, int] | None = None, seconds: float | None = None, fps: int | None = None,
              backend: str = "auto", torch_device: str = "cpu", half: bool = False,
              cache: Path = CACHE, log: Any = print) -> dict[str, Any]:
    """Prepare, run the contenders in interleaved rounds, write ``video.json`` and ``video.md``."""
    from benchmarks.run import cpu_info, load_average, versions

    threads = threads or os.cpu_count() or 1
    size = size or ((32, 24) if quick else (64, 48))
    seconds = seconds or (2 if quick else 10)
    fps = fps or (6 if quick else 12)
    repeats = repeats or (1 if quick else 2)
    cache.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu_info(),
                            "versions": versions(), "threads": threads, "load_before": load_average(),
                            "size": size, "seconds": seconds, "fps": fps, "frames": round(seconds * fps),
                            "repeats": repeats, "backend": backend, "torch_device": torch_device, "half": half}
    prep = run_child("prepare", {"cache": str(cache), "size": size, "fps": fps, "seconds": seconds}, threads, cache)
    if "error" in prep:
        raise RuntimeError(f"video benchmark: preparing failed: {prep['error']}")
    meta["model_note"] = prep["model_note"]
    args = {**{k: prep[k] for k in ("onnx", "weights", "clip")}, "size": size, "fps": fps, "backend": backend,
            "torch_device": torch_device, "half": half}
    rounds = []
    for r in range(repeats):
        order = CONTENDERS if r % 2 == 0 else tuple(reversed(CONTENDERS))
        got = {}
        for c in order:
            got[c] = run_child(c, {**args, "out": str(cache / f"out_{c}.mp4")}, threads, cache)
            what = f"{got[c]['fps']:.3f} frames/s" if "fps" in got[c] else f"ERROR {got[c].get('error')}"
            log(f"video round {r + 1}/{repeats} {c}: {what} (other processes {got[c]['foreign_cpu_s']:.0f} CPU-s)")
        rounds.append(got)
    meta["load_after"] = load_average()
    data = {"meta": meta, "rounds": rounds, "summary": summarize(rounds)}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "video.json", json.dumps(data, indent=1).encode())
    write_markdown(data, out_dir / "video.md")
    log(f"wrote {out_dir / 'video.json'} and video.md")
    return data


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.video", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 2 s 32x24 clip, one round (smoke run)")
    ap.add_argument("--threads", type=int, default=None, help="threads for ORT and torch (default: all CPUs)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved rounds (default 2, 1 with --quick)")
    ap.add_argument("--size", type=_size, default=None, help="clip size WxH (default 64x48)")
    ap.add_argument("--seconds", type=float, default=None, help="clip length (default 10)")
    ap.add_argument("--fps", type=int, default=None, help="clip frame rate (default 12)")
    ap.add_argument("--backend", default="auto", help="sr-run backend: auto, ort, ort-cuda, trt")
    ap.add_argument("--torch-device", default="cpu", help="upstream's device (cuda on a GPU)")
    ap.add_argument("--half", action="store_true", help="upstream in fp16 (its default on a GPU)")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results[/quick])")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--pipe-decode", nargs=1, help=argparse.SUPPRESS)
    ap.add_argument("--pipe-encode", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker_main(a.worker)
    if a.pipe_decode:
        return pipe_decode(a.pipe_decode[0])
    if a.pipe_encode:
        dst, w, h, fps, src = a.pipe_encode
        return pipe_encode(dst, int(w), int(h), int(fps), src)
    out = a.out or (RESULTS / "quick" if a.quick else RESULTS)
    run_bench(out, quick=a.quick, threads=a.threads, repeats=a.repeats, size=a.size, seconds=a.seconds, fps=a.fps,
              backend=a.backend, torch_device=a.torch_device, half=a.half)
    return 0


if __name__ == "__main__":
    sys.exit(main())
