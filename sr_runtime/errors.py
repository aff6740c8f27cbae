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


@contextlib.contextmanager
def cli_errors(debug: bool = False) -> Iterator[None]:
    """Turn exceptions into the one-line CLI error style and an exit code.

    ``SrError`` -> ``error: <one line>`` and exit 1 (or the error's ``exit_code``); ``KeyboardInterrupt`` ->
    exit 130; any other exception -> a one-line internal error. With ``debug`` the exception propagates
    so the traceback is shown.
    """
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted. Nothing partial was left behind.", file=sys.stderr)
        raise SystemExit(130) from None
    except SrError as exc:
        if debug:
            raise
        print(f"error: {exc.one_line()}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        msg = exc.strerror or str(exc)
        print(f"error: {where}{msg}. Check the path, its permissions and the free disk space.", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: one line, never a traceback
        if debug:
            raise
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        print(f"error: internal error: {text}. Re-run with --debug and report the traceback.", file=sys.stderr)
        raise SystemExit(1) from None
