"""sr-run: upscale images with an exported model (torch-free)."""

from __future__ import annotations

import click

from sr_runtime.errors import cli_errors


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1)
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(inputs: tuple[str, ...], debug: bool) -> None:
    """Upscale images with an exported super-resolution model.

    \b
    Examples:
      sr-run photo.jpg photo_x4.png
      sr-run photos/ out/ --tile 256
    """
    with cli_errors(debug):
        raise NotImplementedError("sr-run is not implemented yet")


if __name__ == "__main__":
    main()
