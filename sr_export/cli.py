"""sr-export: checkpoint -> ONNX (and TensorRT) with a parity check."""

from __future__ import annotations

import click

from sr_runtime.errors import cli_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(model: str, debug: bool) -> None:
    """Export a Real-ESRGAN-family checkpoint to ONNX / TensorRT.

    \b
    Examples:
      sr-export RealESRGAN_x4plus.pth
    """
    with cli_errors(debug):
        raise NotImplementedError("sr-export is not implemented yet")


if __name__ == "__main__":
    main()
