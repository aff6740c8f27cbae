"""SIGINT, SIGTERM and SIGHUP for the three CLIs, handled from the entry point's first line (stdlib only).

Each CLI module calls :func:`install_at_start` before any other import, so there is no window while click,
OpenCV, onnxruntime or torch load. Until the command's body starts (:func:`armed`, entered by
:func:`sr_runtime.errors.cli_errors`), a signal is only *recorded*: an exception raised in the middle of a
module-level import would escape as a traceback. At the boundary a recorded signal stops the command at once;
from then on each signal raises :class:`Interrupted` (a ``KeyboardInterrupt``, so every ``finally`` and every
``except KeyboardInterrupt`` of the toolkit handles SIGTERM exactly like Ctrl-C: temp files removed).

Two traps are closed here as well:

- C extensions may turn the ``KeyboardInterrupt`` raised inside their import into another exception
  (pybind11 reports any error during module init as ``ImportError``, so Ctrl-C while onnxruntime loads read
  "needs the 'onnxruntime' module"); the boundary reports any exception that follows a signal as the
  interruption, and :func:`check` re-raises a signal that code swallowed.
- Cleanup must not be cut short by a second signal: :func:`deferred` holds signals back (recording them) over
  a short critical section and raises afterwards.

Exit codes are ``128 + signal number``: 130 (SIGINT), 143 (SIGTERM), 129 (SIGHUP). A signal that was ignored
when the process started (``nohup``, background jobs of a non-interactive shell) stays ignored.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

HANDLED: tuple[int, ...] = tuple(
    s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)
"""The signals the CLIs handle (SIGHUP does not exist on Windows)."""


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal; ``exit_code`` is ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum
        self.exit_code = 128 + signum


def signal_name(signum: int) -> str:
    """``SIGINT``, ``SIGTERM``, ... (``signal N`` for an unknown number)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_code(signum: int) -> int:
    """The documented exit code for a signal: ``128 + signum`` (130 SIGINT, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + signum


class _State:
    """Process-wide: what was received, and what a signal does now."""

    def __init__(self) -> None:
        self.received: int | None = None
        """The first signal received since :func:`install` (or :func:`reset`)."""
        self.last: int | None = None
        """The latest signal received."""
        self.count = 0
        """Signals received so far."""
        self.absorbed = 0
        """Signals handled by a :func:`graceful` callback instead of an exception."""
        self.mode = "record"
        """``record`` (before the boundary, inside :func:`deferred`) or ``raise``."""
        self.graceful: Callable[[], None] | None = None
        """Inside :func:`graceful`: what the first SIGINT does instead of raising (then set to None)."""
        self.installed = False
        self.unraisable: Callable[[object], None] = sys.unraisablehook
        """The hook that :func:`_unraisable` hands everything else to."""


_STATE = _State()


def _handler(signum: int, frame: object) -> None:
    st = _STATE
    st.count += 1
    st.last = signum
    if st.received is None:
        st.received = signum
    if st.mode != "raise":
        return
    if st.graceful is not None and signum == signal.SIGINT:
        on_first, st.graceful = st.graceful, None
        st.absorbed += 1
        on_first()
        return
    raise Interrupted(signum)


def install() -> dict[int, object]:
    """Install the handlers in record mode; returns the previous handlers.

    Does nothing outside the main thread. A signal ignored at start (``SIG_IGN``) stays ignored.
    """
    old: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return old
    if sys.unraisablehook is not _unraisable:
        _STATE.unraisable = sys.unraisablehook
        sys.unraisablehook = _unraisable
    for sig in HANDLED:
        current = signal.getsignal(sig)
        if current is signal.SIG_IGN or current is _handler:
            continue
        old[sig] = signal.signal(sig, _handler)
    _STATE.installed = True
    return old


def _unraisable(info: object) -> None:
    """``sys.unraisablehook``: an :class:`Interrupted` raised where Python cannot propagate it (a weakref
    callback inside the import machinery, a ``__del__``) is not printed as "Exception ignored ..."; the signal
    is delivered again, to land in ordinary code a moment later. Anything else goes to the previous hook."""
    exc = getattr(info, "exc_value", None)
    if isinstance(exc, Interrupted):
        signal.raise_signal(exc.signum)
        return
    _STATE.unraisable(info)  # type: ignore[misc]


def install_at_start(module_name: str, command: str) -> None:
    """:func:`install` when this process was started to run ``command`` (the console script ``command``, or the
    module run with ``python -m``, ``module_name == "__main__"``); importing a CLI module elsewhere (tests, a
    library) changes no handler: :func:`armed` then installs them for the command's duration only."""
    argv0 = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    if module_name == "__main__" or argv0.removesuffix(".exe") == command:
        install()


def received() -> int | None:
    """The first signal received since :func:`install`, or None."""
    return _STATE.received


def check() -> None:
    """Raise :class:`Interrupted` if a signal was received (for code that may have swallowed it, e.g. an
    ``except ImportError`` around a C extension's import)."""
    st = _STATE
    if st.count > st.absorbed and st.last is not None and st.mode == "raise":
        raise Interrupted(st.last)


def reset() -> None:
    """Forget a received signal and go back to record mode (tests; a CLI called twice in one process)."""
    st = _STATE
    st.received, st.last, st.count, st.absorbed, st.mode, st.graceful = None, None, 0, 0, "record", None


@contextlib.contextmanager
def armed() -> Iterator[None]:
    """The command's body: a signal recorded before it stops the command at once; inside, signals raise.

    Without :func:`install` at start (a CLI's ``main`` called in-process) the handlers are installed for the
    body's duration and the previous ones restored afterwards.

    Raises:
        Interrupted: on entry if a signal arrived during start-up; inside, on each signal.
    """
    temporary = not _STATE.installed
    old = install() if temporary else {}
    _STATE.mode = "raise"
    try:
        check()
        yield
    finally:
        _STATE.mode = "record"
        if temporary:
            for sig, handler in old.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
            _STATE.installed = False
            reset()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold signals back over a short critical section (cleanup, a rename): they are recorded and raised
    when it ends. Without :func:`install` (library use) it changes nothing."""
    if not _STATE.installed or _STATE.mode != "raise":
        yield
        return
    before = _STATE.count
    _STATE.mode = "record"
    try:
        yield
    finally:
        _STATE.mode = "raise"
    if _STATE.count != before and _STATE.last is not None:
        raise Interrupted(_STATE.last)


@contextlib.contextmanager
def graceful(on_first_sigint: Callable[[], None]) -> Iterator[None]:
    """Inside, the first SIGINT calls ``on_first_sigint()`` instead of raising; a second SIGINT, and SIGTERM
    or SIGHUP at any time, raise :class:`Interrupted`.

    With :func:`install` in force (the CLIs) this only switches the handler's mode. In library use (a Python
    program calling ``run_batch``) it installs a SIGINT handler for its duration, in the main thread only,
    and restores the previous one.
    """
    if _STATE.installed:
        _STATE.graceful = on_first_sigint
        try:
            yield
        finally:
            _STATE.graceful = None
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stops = [0]

    def handler(signum: int, frame: object) -> None:
        stops[0] += 1
        if stops[0] > 1:
            raise KeyboardInterrupt
        on_first_sigint()

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
