"""sr-train: Real-ESRGAN training from a YAML config."""

from __future__ import annotations

import click

from sr_runtime.errors import MissingExtraError, cli_errors


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingExtraError("torch", "train", "sr-train") from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", required=False, help="Training config (YAML).")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(config: str | None, debug: bool) -> None:
    """Train a Real-ESRGAN-family model.

    \b
    Examples:
      sr-train --config configs/x4.yaml
    """
    with cli_errors(debug):
        _require_torch()
        raise NotImplementedError("sr-train is not implemented yet")


if __name__ == "__main__":
    main()
