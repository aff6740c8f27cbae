"""Running the three CLIs the way a user does (their console scripts, in fresh processes) and checking the
contract: one line per error on stderr, no traceback, the documented exit code, nothing partial left."""

from __future__ import annotations

import ctypes
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LINE = re.compile(r"^(error|note): ")
"""What the CLIs print on stderr (one line each); everything else there breaks the contract."""


def command(name: str) -> list[str]:
    """The console script ``name`` (``sr-run``) next to this Python, else ``python -m <its module>``."""
    script = BIN / name
    if script.exists():
        return [str(script)]
    module = {"sr-run": "sr_runtime.cli", "sr-export": "sr_export.cli", "sr-train": "sr_train.cli"}[name]
    return [sys.executable, "-m", module]


def env() -> dict[str, str]:
    """A quiet, single-threaded environment with the repository importable."""
    e = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "COLUMNS"):
        e.pop(k, None)
    return e


@dataclass(frozen=True)
class Result:
    """A finished command."""

    rc: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mb: float

    @property
    def lines(self) -> list[str]:
        """Non-empty stderr lines."""
        return [s for s in self.stderr.splitlines() if s.strip()]

    def errors(self) -> list[str]:
        """The ``error: ...`` lines, without the prefix."""
        return [s[len("error: "):] for s in self.lines if s.startswith("error: ")]


def limits(memory_mb: int | None = None, file_kb: int | None = None) -> Callable[[], None] | None:
    """A ``preexec_fn`` setting RLIMIT_AS (a safety net against a decode that would allocate gigabytes) and
    RLIMIT_FSIZE (a disk that is full after ``file_kb``)."""
    if memory_mb is None and file_kb is None:
        return None

    def apply() -> None:
        if memory_mb is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        if file_kb is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_kb << 10, file_kb << 10))

    return apply


def start(name: str, args: Sequence[str], *, memory_mb: int | None = None, file_kb: int | None = None,
          cwd: Path | None = None, prefix: Sequence[str] = ()) -> subprocess.Popen:
    """Start a CLI (stdin closed, stdout/stderr piped)."""
    return subprocess.Popen([*prefix, *command(name), *map(str, args)], cwd=cwd or ROOT, env=env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=limits(memory_mb, file_kb))


def finish(proc: subprocess.Popen, t0: float, timeout: float = 120) -> Result:
    """Wait for ``proc`` (killing it after ``timeout``) and collect its output and peak RSS."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout} s: {err.decode(errors='replace')[-2000:]}") from None
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far: a bound
    return Result(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"),
                  time.perf_counter() - t0, rss)


def run(name: str, args: Sequence[str], timeout: float = 120, **kw) -> Result:
    """Run a CLI to the end."""
    t0 = time.perf_counter()
    return finish(start(name, args, **kw), t0, timeout)


def assert_contract(r: Result, rc: int | tuple[int, ...]) -> None:
    """Exit code as documented; stderr only ``error:``/``note:`` lines; never a traceback or a codec's line."""
    codes = rc if isinstance(rc, tuple) else (rc,)
    assert r.rc in codes, f"exit {r.rc}, expected {codes}; stderr:\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    stray = [s for s in r.lines if not LINE.match(s)]
    assert not stray, f"stderr lines outside the contract: {stray[:5]}"


def leftovers(folder: Path) -> list[str]:
    """Temp files and staging folders in ``folder`` (recursively)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*")
                  if p.name.endswith(".tmp") or p.name.startswith(".sr-export-"))


# ------------------------------------------------------------------------------------ signals and files
def wait_for(cond: Callable[[], bool], proc: subprocess.Popen, timeout: float = 60, what: str = "") -> None:
    """Poll ``cond`` every millisecond until true; fail if ``proc`` ends first or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}: {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (``SigCgt`` in /proc, Linux)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    m = re.search(r"^SigCgt:\s*([0-9a-f]+)", text, re.M)
    return bool(m) and bool(int(m.group(1), 16) >> (signum - 1) & 1)


def has_mapped(pid: int, fragment: str) -> bool:
    """Whether a shared library whose path contains ``fragment`` is mapped into ``pid`` (it is being imported)."""
    try:
        return fragment in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


class FileWatch:
    """inotify on one file (Linux): did anyone open or read it? Use as a context manager."""

    IN_ACCESS, IN_OPEN = 0x1, 0x20

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> FileWatch:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, str(self.path).encode(),
                                                 self.IN_ACCESS | self.IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), "inotify failed")
        return self

    def touched(self) -> bool:
        """Any open/read since the watch started."""
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
