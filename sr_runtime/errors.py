"""One exception hierarchy for the whole toolkit, and the one-line CLI error style.

Every error a user can cause is an :class:`SrError` carrying *what* went wrong, *which file* and *what to do*
(the ``hint``). The CLIs print it as ``error: <file>: <what went wrong>. <what to do>`` and exit non-zero;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn


class SrError(Exception):
    """A user-facing error: one line, naming the file and the fix.

    Args:
        message: what went wrong, without a trailing period.
        hint: what to do about it (a full sentence), or "".
        path: the file or folder concerned, if any.
    """

    exit_code: int = 1

    def __init__(self, message: str, hint: str = "", path: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = None if path is None else str(path)

    def one_line(self) -> str:
        """Return ``<file>: <message>. <hint>`` folded onto a single line."""
        text = self.message.rstrip(". ")
        if self.path:
            text = f"{self.path}: {text}"
        text += "."
        if self.hint:
            text += " " + self.hint.strip()
        return " ".join(text.split())

    def __str__(self) -> str:
        return self.one_line()


class ModelFileError(SrError):
    """A checkpoint, ONNX or engine file that cannot be used (corrupt, wrong kind, unknown architecture)."""


class EngineMismatchError(SrError):
    """A TensorRT engine built for another GPU or TensorRT version."""


class MissingExtraError(SrError):
    """An optional dependency is not installed; the hint names the extra."""

    def __init__(self, module: str, extra: str, purpose: str = "") -> None:
        what = f"{purpose} needs the '{module}' module" if purpose else f"the '{module}' module is not installed"
        super().__init__(what, f"Install it with: pip install 'sr-deploy[{extra}]'")
        self.module = module
        self.extra = extra


class ImageError(SrError):
    """An image that cannot be read or written."""


class OutOfMemory(SrError):
    """A backend ran out of (device) memory; the tiler reacts by halving the tile."""


EXIT_OK = 0
"""Everything was done."""
EXIT_ERROR = 1
"""An error: a bad file, model, option value or path (one line per error on stderr)."""
EXIT_USAGE = 2
"""Wrong usage: an unknown flag, a missing argument, a value outside a flag's range (click's own message)."""
EXIT_SIGINT = 130
"""Stopped by Ctrl-C (SIGINT); ``128 + signal number`` for every signal (SIGTERM 143, SIGHUP 129)."""
EXIT_SIGTERM = 143
"""Stopped by SIGTERM (``kill``, ``docker stop``, a job scheduler)."""
EXIT_PIPE = 141
"""The reader of stdout went away (``sr-run --info m.onnx | head -1``): no message, as with SIGPIPE."""


def _stopped(exc: BaseException, debug: bool) -> NoReturn:
    """Report an interruption (a signal, or an exception that a signal caused) and exit 128 + signum."""
    from sr_runtime import signals

    signum = getattr(exc, "signum", None) or signals.received() or 2
    if debug:
        import traceback

        traceback.print_exception(exc)
    what = "interrupted" if signum == 2 else f"stopped by {signals.signal_name(signum)}"
    print(f"error: {what}. Nothing partial was left behind.", file=sys.stderr)
    raise SystemExit(signals.exit_code(signum)) from None


def _closed_stdout() -> NoReturn:
    """stdout's reader is gone: exit quietly (Python's own flush at exit would print a second error)."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(EXIT_PIPE) from None


def _one_line(exc: Exception) -> str:
    """The CLI line of an exception that reached the boundary (``SrError``, ``OSError``, ``MemoryError``, other)."""
    if isinstance(exc, SrError):
        return exc.one_line()
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        msg = exc.strerror or str(exc)
        return f"{where}{msg}. Check the path, its permissions and the free disk space."
    if isinstance(exc, MemoryError):
        return "out of memory. Use a smaller --tile or --batch, or free memory."
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return f"internal error: {text}. Re-run with --debug and report the traceback."


@contextlib.contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn exceptions into the one-line CLI error style and an exit code (see ``docs/errors.md``).

    ``SrError`` -> ``error: <one line>`` and exit 1 (or the error's ``exit_code``); ``OSError`` and
    ``MemoryError`` -> one line saying what to check, exit 1; a signal (``KeyboardInterrupt``,
    :class:`sr_runtime.signals.Interrupted`), or any exception raised after one (a C extension may turn it into
    ``ImportError``) -> exit ``128 + signum`` (130 Ctrl-C, 143 SIGTERM); anything else -> a one-line internal
    error, exit 1. With ``debug`` the traceback is printed as well (errors propagate; interruptions still exit
    with their code). The body runs inside :func:`sr_runtime.signals.armed`.
    """
    from sr_runtime import signals

    try:
        with signals.armed():
            yield
            signals.check()  # a signal that something swallowed (the command may have finished its work)
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:
        _stopped(exc, debug)
    except BrokenPipeError:
        _closed_stdout()
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line, never a traceback
        if signals.received() is not None:
            _stopped(exc, debug)
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        raise SystemExit(getattr(exc, "exit_code", EXIT_ERROR) if isinstance(exc, SrError) else EXIT_ERROR) from None
