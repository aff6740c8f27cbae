"""The bad-input corpus (tests/corpus) through every command, case by case, against the contract:

one line on stderr naming the file and what to do, no traceback unless ``--debug``, the documented exit code
(docs/errors.md), nothing partial at the output, the other files still processed. Commands run as their console
scripts in fresh processes wherever exit codes, signals or stderr matter; the many checkpoint and config cases
run in-process through click's runner (one subprocess each checks the same path end to end).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.corpus import Case, build_corpus, by_kind
from tests.corpus.configs import bomb
from tests.corpus.harness import (
    FileWatch,
    assert_contract,
    catches,
    finish,
    has_mapped,
    leftovers,
    run,
    start,
    wait_for,
)
from tests.corpus.models import TINY_ONNX

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="uses /proc, inotify or mount namespaces (Linux)")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> list[Case]:
    """The whole corpus, under a folder whose name is not ASCII and has a space."""
    return build_corpus(tmp_path_factory.mktemp("корпус 写真"))


@pytest.fixture(scope="session")
def model() -> Path:
    """The tiny x4 model every sr-run case uses."""
    return TINY_ONNX


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


def _line_for(errors: list[str], case: Case) -> list[str]:
    return [e for e in errors if e.startswith(f"{case.path}: ")]


# ---------------------------------------------------------------------------------------------- images
def test_image_folder_one_run(corpus, model, tmp_path):
    """Every image case in one folder run: each bad file is one line, every good one is written whole."""
    cases = by_kind(corpus, "image")
    out = tmp_path / "вывод 出力"
    r = run("sr-run", [cases[0].path.parent, out, "--model", model, "--tile", "0"], memory_mb=3000)
    assert_contract(r, 1)
    errors = r.errors()
    bad = [c for c in cases if c.expect == "error"]
    good = [c for c in cases if c.expect == "ok"]
    for c in bad:
        lines = _line_for(errors, c)
        assert len(lines) == 1, f"{c.name}: expected one line for {c.path}, got {lines}\nall: {errors}"
        assert re.search(c.message, lines[0]), f"{c.name}: {lines[0]!r} !~ {c.message!r}"
        assert not (out / f"{c.path.stem}_out{c.path.suffix}").exists(), f"{c.name}: output for a failed input"
    assert len(errors) == len(bad), errors
    for c in good:
        written = out / f"{c.path.stem}_out{c.path.suffix}"
        assert written.is_file(), f"{c.name}: {written} missing"
        img = cv2.imdecode(np.fromfile(written, np.uint8), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == c.shape and str(img.dtype) == c.dtype, (c.name, img.shape)
    assert f"done {len(good)}, failed {len(bad)}" in r.stdout
    assert leftovers(out) == []


def test_debug_shows_each_traceback_and_goes_on(corpus, model, tmp_path):
    cases = {c.name: c for c in by_kind(corpus, "image")}
    src = tmp_path / "in"
    src.mkdir()
    for name in ("text as .png", "header 100000x100000", "rgb"):
        shutil.copy(cases[name].path, src / cases[name].path.name)
    r = run("sr-run", [src, tmp_path / "out", "--model", model, "--debug", "-q"])
    assert r.rc == 1
    assert r.stderr.count("Traceback (most recent call last)") == 2, r.stderr
    assert len(r.errors()) == 2 and (tmp_path / "out" / "rgb_out.png").exists()


@linux_only
@pytest.mark.parametrize("case_name", ["decompression bomb", "30000x30000"])
@pytest.mark.parametrize("flags", [["--max-memory", "1G", "--ext", "jpg"], ["--max-pixels", "1000000"]],
                         ids=["memory", "max-pixels"])
def test_gigapixel_header_refused_before_decode(corpus, model, tmp_path, case_name, flags):
    """Refused from the header: no decode (a 2 GB address-space cap would fail one), seconds not minutes.
    The memory case names its budget (``--max-memory``, so that the answer does not depend on the machine) and
    a jpg output (encoded whole: a png/tif output of this size is streamed in bands instead, issue 12)."""
    case = next(c for c in corpus if c.name == case_name)
    r = run("sr-run", [case.path, tmp_path / "out", "--model", model, *flags], memory_mb=2000, timeout=60)
    assert_contract(r, 1)
    (line,) = r.errors()
    w = h = case.path.stem == "bomb" and 32768 or 30000
    assert line.startswith(f"{case.path}: ") and f"{w}x{h}" in line, line
    assert ("--max-pixels 1000000" in line) if "--max-pixels" in flags else re.search(r"GiB.*--max-memory", line), line
    assert r.seconds < 30, r.seconds
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------------------- models
def _three_images(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    for i in range(3):
        cv2.imwrite(str(src / f"a{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    return src


@pytest.mark.parametrize("flag", ["--model", "--info"])
@pytest.mark.parametrize("case", [pytest.param(n, id=n) for n in (
    "truncated ONNX", "zero-byte ONNX", "text as .onnx", "classifier, forged x4", "x2 graph, forged x4",
    "foreign ONNX", "external data, relative", "external data, absolute", "external data, symlink",
    "engine without sidecar", "checkpoint as model", "missing model", "unknown suffix")])
def test_model_files(corpus, tmp_path, flag, case):
    c = next(x for x in by_kind(corpus, "model") if x.name == case)
    out = tmp_path / "out"
    args = ["--info", c.path] if flag == "--info" else [_three_images(tmp_path), out, "--model", c.path, "-q"]
    secret = c.extra.get("secret")
    watch = FileWatch(secret) if secret is not None and LINUX else None
    if watch is not None:
        watch.__enter__()
    try:
        r = run("sr-run", args)
        if watch is not None:
            assert not watch.touched(), f"{secret} was opened through {c.path}"
    finally:
        if watch is not None:
            watch.__exit__()
    if c.extra.get("runs"):  # a foreign ONNX: probed, then it runs (and --info describes it)
        assert_contract(r, 0)
        assert flag == "--info" or len(list(out.iterdir())) == 3
        return
    if flag == "--info" and c.extra.get("info_may_succeed") and r.rc == 0:
        assert_contract(r, 0)
        return
    assert_contract(r, 1)
    errors = r.errors()
    assert len(errors) == 1, f"expected one line (the model refused up front), got {errors}"
    assert errors[0].startswith(f"{c.path}: ") and re.search(c.message, errors[0]), errors[0]
    assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------------------------- checkpoints, configs
def _export_in_process(path: Path, out: Path):
    from click.testing import CliRunner

    from sr_export.cli import main

    return CliRunner().invoke(main, [str(path), "-o", str(out) + os.sep])


def test_checkpoints_through_sr_export(corpus, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    out.mkdir()
    for c in by_kind(corpus, "checkpoint"):
        r = _export_in_process(c.path, out)
        assert r.exit_code == 1, (c.name, r.output)
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {c.path}: "), (c.name, r.stderr)
        assert re.search(c.message, err[0]), (c.name, err[0])
        assert "Traceback" not in r.output
        if "marker" in c.extra:
            assert not c.extra["marker"].exists(), f"{c.name}: the pickle payload ran"
    assert list(out.iterdir()) == []


def test_hostile_pickle_subprocess_and_as_pretrained_weights(corpus, tmp_path):
    pytest.importorskip("torch")
    c = next(x for x in corpus if x.name == "pickle payload (torch zip)")
    r = run("sr-export", [c.path, "-o", f"{tmp_path}{os.sep}"])
    assert_contract(r, 1)
    assert len(r.errors()) == 1 and "refused" in r.errors()[0]
    gt = _three_images(tmp_path)
    r = run("sr-train", ["--config", "tiny_cpu", "--dry-run", "--output", tmp_path / "run",
                         "--set", f"datasets.train.dataroot_gt={gt}", "--set", f"path.pretrain_network_g={c.path}"])
    assert_contract(r, 1)
    assert len(r.errors()) == 1 and r.errors()[0].startswith(f"{c.path}: refused")
    assert not c.extra["marker"].exists()


def _train_in_process(args: list[str]):
    from click.testing import CliRunner

    from sr_train.cli import main

    return CliRunner().invoke(main, args)


def test_configs_through_sr_train(corpus, tmp_path):
    pytest.importorskip("torch")
    for c in by_kind(corpus, "config"):
        t0 = time.perf_counter()
        r = _train_in_process(["--config", str(c.path), "--dry-run", "--output", str(tmp_path / "run")])
        assert r.exit_code == 1, (c.name, r.output[-500:])
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {c.path}: "), (c.name, r.stderr[-500:])
        assert re.search(c.message, err[0]) and len(err[0]) < 400, (c.name, err[0][:400])
        assert time.perf_counter() - t0 < 20, f"{c.name} took {time.perf_counter() - t0:.0f} s"
        assert not c.extra.get("marker", Path("/nonexistent")).exists()


def test_yaml_bomb_in_a_known_key_and_in_set_subprocess(corpus, tmp_path):
    """The issue's 2.3 GB case, end to end under a 3 GB address-space cap: one short line within seconds."""
    pytest.importorskip("torch")
    c = next(x for x in corpus if x.name == "bomb_known_key.yaml")
    for args in (["--config", c.path], ["--config", "tiny_cpu", "--set", f"train.total_iter={bomb()}"]):
        r = run("sr-train", [*args, "--dry-run", "--output", tmp_path / "run"], memory_mb=3000, timeout=60)
        assert_contract(r, 1)
        (line,) = r.errors()
        assert "train.total_iter" in line and len(line) < 400 and r.seconds < 30, line[:400]


# ------------------------------------------------------------------------------------- output locations
def test_input_equals_output(corpus, model, tmp_path):
    src = tmp_path / "rgb.png"
    shutil.copy(next(c for c in corpus if c.name == "rgb").path, src)
    before = src.read_bytes()
    r = run("sr-run", [src, src, "--model", model])
    assert_contract(r, 1)
    assert "overwrite the input" in r.errors()[0] and src.read_bytes() == before


def test_out_is_an_existing_file_found_before_the_model(tmp_path):
    """Found before any model is opened: with a model that does not exist the error is still about OUT."""
    out = tmp_path / "out.txt"
    out.write_text("keep me")
    r = run("sr-run", [_three_images(tmp_path), out, "--model", tmp_path / "missing.onnx"])
    assert_contract(r, 1)
    (line,) = r.errors()
    assert str(out) in line and "missing.onnx" not in line, line
    assert out.read_text() == "keep me"


def test_full_disk_rlimit(corpus, model, tmp_path):
    """RLIMIT_FSIZE: writes past 16 kB fail (EFBIG). The big output fails in one line, the small one is
    written, nothing partial is left."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(next(c for c in corpus if c.name == "rgb").path, src / "big.png")
    shutil.copy(next(c for c in corpus if c.name == "1x1").path, src / "small.png")
    out = tmp_path / "out"
    r = run("sr-run", [src, out, "--model", model, "-q"], file_kb=16)
    assert_contract(r, 1)
    (line,) = r.errors()
    assert line.startswith(f"{out / 'big_out.png'}: ") and "too large" in line.lower(), line
    assert sorted(p.name for p in out.iterdir()) == ["small_out.png"]


def _in_namespace(script: str) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script + ' && exec "$@"', "sh"]


def _namespace_ok() -> str | None:
    if not LINUX or shutil.which("unshare") is None:
        return "needs Linux and unshare"
    r = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                       capture_output=True)
    return None if r.returncode == 0 else "no mount namespaces here (needs root or user namespaces)"


@pytest.mark.parametrize("how", ["read-only", "tmpfs full"])
def test_read_only_and_full_file_systems(corpus, model, tmp_path, how):
    """A real read-only mount and a real 64 kB tmpfs, each in a private mount namespace."""
    reason = _namespace_ok()
    if reason:
        pytest.skip(reason)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    opts = "ro,size=64k" if how == "read-only" else "size=64k"
    src = tmp_path / "in"
    src.mkdir()
    for name in ("rgb", "1x1", "gray16"):
        c = next(x for x in corpus if x.name == name)
        shutil.copy(c.path, src / c.path.name)
    big = cv2.imread(str(src / "rgb.png"))
    cv2.imwrite(str(src / "rgb.png"), cv2.resize(big, (128, 96)))  # > 64 kB at x4
    r = run("sr-run", [src, mnt, "--model", model, "-q"],
            prefix=_in_namespace(f"mount -t tmpfs -o {opts} tmpfs '{mnt}'"))
    assert_contract(r, 1)
    errors = r.errors()
    if how == "read-only":  # one line up front, or one per file: each names where and why
        assert errors and all(re.search(r"(not writable|Read-only file system)", e) for e in errors), errors
    else:  # the small outputs fit, the big one does not
        assert errors == [f"{mnt / 'rgb_out.png'}: cannot write (No space left on device). Check the folder's "
                          "permissions and the free disk space."], errors


# ---------------------------------------------------------------------------------------------- signals
def _images(tmp_path: Path, n: int, side: int) -> Path:
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(src / f"img{i}.png"), rng.integers(0, 255, (side, side, 3), np.uint8))
    return src


def _outputs_whole(out: Path, side: int) -> list[str]:
    names = []
    for p in sorted(out.glob("*.png")) if out.exists() else []:
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.shape == (side * 4, side * 4, 3), f"{p} is partial"
        names.append(p.name)
    return names


WHEN = {
    "handlers installed": lambda p: catches(p.pid, signal.SIGTERM),
    # the CPU engine sr-run's auto picks: onnxruntime, or OpenVINO where installed
    "onnxruntime loading": lambda p: has_mapped(p.pid, "onnxruntime_pybind11_state") or has_mapped(p.pid, "_pyopenvino"),
}


@linux_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("when,delay", [("handlers installed", 0.0), ("handlers installed", 0.05),
                                        ("onnxruntime loading", 0.0), ("onnxruntime loading", 0.1)])
def test_sr_run_signal_at_start_up(model, tmp_path, sig, when, delay):
    """From the CLI's first line on (found by its handler in /proc) and while onnxruntime's library is being
    mapped: one line, 128 + signum, nothing partial written; never ignored (the issue's "exit 0, outputs written")."""
    out = tmp_path / "out"
    # enough work (about 3 s here) that the signal usually lands mid-run; on a loaded CI machine it once landed
    # after the 12th of 12 images: then every output is there, and the exit code still shows it was handled
    n = 48
    t0 = time.perf_counter()
    p = start("sr-run", [_images(tmp_path, n, 128), out, "--model", model, "-q", "--tile", "16"])
    wait_for(lambda: WHEN[when](p) or p.poll() is not None, p, what=when)
    time.sleep(delay)
    p.send_signal(sig)
    r = finish(p, t0)
    if r.rc == 0:
        pytest.fail(f"the signal was ignored: exit 0 after {r.seconds:.2f} s")
    assert_contract(r, 128 + sig)
    assert r.errors() == [f"{'interrupted' if sig == signal.SIGINT else 'stopped by SIGTERM'}. "
                          "Nothing partial was left behind."]
    done = _outputs_whole(out, 128)
    assert set(done) == {f"img{i}_out.png" for i in range(len(done))}  # in order, each whole
    assert leftovers(out) == []


@linux_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sr_run_signal_mid_write(model, tmp_path, sig):
    """Sent as soon as the first output (or its temp file) appears: SIGTERM stops at once, Ctrl-C after the
    current file; every output present is whole, no temp file is left."""
    src = _images(tmp_path, 6, 192)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    p = start("sr-run", [src, out, "--model", model, "-q", "--tile", "0"])
    wait_for(lambda: out.exists() and any(out.iterdir()), p, what="the first output")
    p.send_signal(sig)
    r = finish(p, t0)
    assert_contract(r, 128 + sig)
    written = _outputs_whole(out, 192)
    assert 1 <= len(written) < 6 and leftovers(out) == [], (written, leftovers(out))


@linux_only
def test_sr_run_sigkill_mid_write_then_rerun(model, tmp_path):
    src = _images(tmp_path, 6, 192)
    out = tmp_path / "out"
    p = start("sr-run", [src, out, "--model", model, "-q", "--tile", "0"])
    wait_for(lambda: out.exists() and any(n.name.endswith(".tmp") for n in out.iterdir()), p, what="a temp file")
    p.kill()
    p.communicate()
    _outputs_whole(out, 192)  # what is there under a final name is whole
    stale = [out / n for n in leftovers(out)]
    for s in stale:
        os.utime(s, (time.time() - 60,) * 2)  # as left by a run killed a minute ago
    r = run("sr-run", [src, out, "--model", model, "-q", "--tile", "0"])
    assert_contract(r, 0)
    assert len(_outputs_whole(out, 192)) == 6 and leftovers(out) == []


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from sr_train.archs import REGISTRY
    from tests.conftest import TINY_HPARAMS

    torch.manual_seed(0)
    net = REGISTRY.get("SRVGGNetCompact").build(**TINY_HPARAMS["SRVGGNetCompact"])
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save({"params": net.state_dict()}, path)
    return path


def _staging(folder: Path, name: str = "") -> Callable:
    def seen() -> bool:
        return any(d.name.startswith(".sr-export-") and (not name or (d / name).exists()) for d in folder.iterdir())
    return seen


@linux_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sr_export_signal_just_after_the_onnx_is_written(tiny_checkpoint, tmp_path, sig):
    """The issue's case: "needs the 'onnxruntime' module" or a BufferError line depending on timing. Now the
    interruption itself, whatever was loading, and the staging folder is gone."""
    out = tmp_path / "out"
    out.mkdir()
    t0 = time.perf_counter()
    p = start("sr-export", [tiny_checkpoint, "-o", f"{out}{os.sep}"])
    wait_for(_staging(out, "model_fp32.onnx"), p, what="the ONNX in the staging folder")
    p.send_signal(sig)
    r = finish(p, t0)
    assert_contract(r, 128 + sig)
    assert r.errors()[-1].endswith("Nothing partial was left behind.") and len(r.errors()) == 1, r.errors()
    assert list(out.iterdir()) == []


@linux_only
def test_sr_export_sigkill_then_next_export_cleans_up(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = start("sr-export", [tiny_checkpoint, "-o", f"{out}{os.sep}"])
    wait_for(_staging(out, "model_fp32.onnx"), p, what="the ONNX in the staging folder")
    p.kill()
    p.communicate()
    stale = [d for d in out.iterdir()]
    assert len(stale) == 1 and stale[0].name.startswith(".sr-export-")  # nothing under a final name
    os.utime(stale[0], (time.time() - 60,) * 2)
    r = run("sr-export", [tiny_checkpoint, "-o", f"{out}{os.sep}"])
    assert_contract(r, 0) if not r.stderr.strip() else None
    assert r.rc == 0, r.stderr[-2000:]
    assert [d.name for d in out.iterdir()] == ["tiny.onnx"] and f"removed {stale[0].name}" in r.stdout


@linux_only
def test_sr_train_sigkill_then_resume(tmp_path):
    """Killed while it writes: whatever is under a final name loads; the next run resumes and cleans up."""
    pytest.importorskip("torch")
    import torch

    gt = _images(tmp_path, 4, 64)
    run_dir = tmp_path / "run"
    args = ["--config", "tiny_cpu", "--no-progress", "--output", run_dir, "--set", f"datasets.train.dataroot_gt={gt}",
            "--set", "logger.save_checkpoint_freq=1", "--set", "logger.keep_last=1000"]
    p = start("sr-train", [*args, "--set", "train.total_iter=100000"])
    states = run_dir / "training_states"

    def writing() -> bool:
        return states.exists() and (any(n.name.endswith(".tmp") for n in states.iterdir())
                                    or len(list(states.glob("*.state"))) >= 3)

    wait_for(writing, p, timeout=120, what="a training state being written")
    p.kill()
    p.communicate()
    for f in [*states.glob("*.state"), *(run_dir / "models").glob("*.pth")]:
        torch.load(f, map_location="cpu", weights_only=True)  # whole, never partial
    for s in [run_dir / n for n in leftovers(run_dir)]:
        os.utime(s, (time.time() - 60,) * 2)
    last = max((int(f.stem) for f in states.glob("*.state")), default=0)
    r = run("sr-train", [*args, "--set", f"train.total_iter={last + 1}", "--resume", "auto"], timeout=180)
    assert r.rc == 0, r.stderr[-2000:]
    assert leftovers(run_dir) == [] and (states / f"{last + 1}.state").exists()


@linux_only
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sr_train_signal_mid_training(tmp_path, sig):
    """Stops within a step with the one line and 130/143; every saved file loads, no temp file is left."""
    torch = pytest.importorskip("torch")
    gt = _images(tmp_path, 4, 64)
    run_dir = tmp_path / "run"
    t0 = time.perf_counter()
    p = start("sr-train", ["--config", "tiny_cpu", "--no-progress", "--output", run_dir,
                           "--set", f"datasets.train.dataroot_gt={gt}", "--set", "train.total_iter=100000",
                           "--set", "logger.save_checkpoint_freq=1", "--set", "logger.keep_last=1000"])
    states = run_dir / "training_states"
    wait_for(lambda: states.exists() and any(states.glob("*.state")), p, timeout=120, what="a training state")
    p.send_signal(sig)
    r = finish(p, t0)
    assert r.rc == 128 + sig and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.errors() == [f"{'interrupted' if sig == signal.SIGINT else 'stopped by SIGTERM'}. "
                          "Nothing partial was left behind."]
    for f in [*states.glob("*.state"), *(run_dir / "models").glob("*.pth")]:
        torch.load(f, map_location="cpu", weights_only=True)
    assert leftovers(run_dir) == []
