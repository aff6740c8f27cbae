"""The shared one-line CLI error style of all three commands."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from sr_runtime.errors import MissingExtraError, ModelFileError, SrError, cli_errors


def _cmd(exc: BaseException):
    @click.command()
    @click.option("--debug", is_flag=True)
    def cmd(debug: bool) -> None:
        with cli_errors(debug):
            raise exc

    return cmd


@pytest.mark.parametrize(
    ("exc", "code", "expected"),
    [
        (ModelFileError("file is empty (0 bytes)", "Copy it again.", "m.pth"),
         1, "error: m.pth: file is empty (0 bytes). Copy it again.\n"),
        (MissingExtraError("tensorrt", "trt", "--trt"), 1,
         "error: --trt needs the 'tensorrt' module. Install it with: pip install 'sr-deploy[trt]'\n"),
        (KeyboardInterrupt(), 130, None),
        (FileNotFoundError(2, "No such file or directory", "x.png"), 1, None),
        (ZeroDivisionError("boom"), 1, None),
    ],
)
def test_one_line_errors(exc, code, expected):
    result = CliRunner().invoke(_cmd(exc), [])
    assert result.exit_code == code
    err = result.stderr
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    if expected:
        assert err == expected


def test_debug_shows_the_exception():
    result = CliRunner().invoke(_cmd(SrError("bad")), ["--debug"])
    assert result.exit_code == 1 and isinstance(result.exception, SrError)


@pytest.mark.parametrize("module", ["sr_train.cli", "sr_export.cli", "sr_runtime.cli"])
def test_help_has_examples(module):
    import importlib

    result = CliRunner().invoke(importlib.import_module(module).main, ["--help"])
    assert result.exit_code == 0 and "Example" in result.output and "--debug" in result.output
