"""sr-train: Real-ESRGAN training from a YAML config.

``sr-train --config x4.yaml [--set train.total_iter=10 ...] [--resume auto|PATH] [--output DIR] [--dry-run]``.
Multi-process: ``torchrun --nproc_per_node N -m sr_train.cli --config x4.yaml`` (NCCL on GPUs, gloo on the CPU).
"""

from __future__ import annotations

from sr_runtime import signals  # first: Ctrl-C/SIGTERM are handled from here on, also while the rest loads

signals.install_at_start(__name__, "sr-train")

import logging
import sys

import click

from sr_runtime import __version__
from sr_runtime.errors import MissingExtraError, cli_errors


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MissingExtraError("torch", "train", "sr-train") from None


def _setup_logging(main: bool, debug: bool) -> None:
    log = logging.getLogger("sr_train")
    log.setLevel(logging.DEBUG if debug else logging.INFO if main else logging.WARNING)
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(h)
    log.propagate = False


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="sr-train", message="%(prog)s (sr-deploy) %(version)s")
@click.option("--config", "config", required=True, metavar="YAML",
              help="Training config: a YAML path or a shipped name (x4, x4_net, x4_compact, x4_compact_net, tiny_cpu, qat).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value, e.g. --set train.total_iter=1000 (repeatable; parsed by the field's type).")
@click.option("--resume", default=None, metavar="auto|PATH",
              help="Continue from the newest complete training state in the output folder (auto) or a .state file.")
@click.option("--output", "output", default=None, type=click.Path(file_okay=False),
              help="Run folder [default: experiments/<name>].")
@click.option("--dry-run", is_flag=True, help="Validate config and data, build the models, print the plan, exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def main(config: str, overrides: tuple[str, ...], resume: str | None, output: str | None, dry_run: bool,
         no_progress: bool, debug: bool) -> None:
    """Train a Real-ESRGAN-family model (RealESRNet or RealESRGAN stage) from a folder of GT images.

    \b
    Examples:
      sr-train --config tiny_cpu                  # seconds, on 4 crops shipped with it: try the whole path
      sr-train --config x4_net.yaml --set datasets.train.dataroot_gt=data/hr
      sr-train --config x4.yaml --set path.pretrain_network_g=experiments/x4_net/models/net_g_latest.pth
      sr-train --config x4.yaml --resume auto
      torchrun --nproc_per_node 4 -m sr_train.cli --config x4.yaml
    """
    with cli_errors(debug):
        _require_torch()
        from pathlib import Path

        from sr_train.config import apply_overrides, from_yaml, resolve_config_path
        from sr_train.engine.distributed import cleanup, env_dist, init_distributed, select_device
        from sr_train.engine.trainer import Trainer

        rank, _, local_rank = env_dist()
        _setup_logging(rank == 0, debug)
        path = resolve_config_path(config)
        cfg = from_yaml(path)
        if overrides:
            cfg = apply_overrides(cfg, list(overrides), path)
        out = Path(output) if output else Path("experiments") / cfg.name
        device = select_device(cfg.train.device, local_rank)
        dist = init_distributed(device)
        try:
            trainer = Trainer(cfg, out, resume=resume, dist=dist, progress=not no_progress and not dry_run)
            trainer.build()
            if dry_run:
                if dist.is_main:
                    trainer.make_pair(next(iter(trainer.loader)))  # data and degradation work end to end
                    click.echo(trainer.plan())
                    click.echo("dry run: config, data and models are valid; nothing was trained or written.")
                return
            last = trainer.fit()
            if dist.is_main:
                click.echo(f"done: {trainer.iter} iterations; generator: {out / 'models' / 'net_g_latest.pth'}"
                           + (f"; last log {last}" if debug else ""))
        finally:
            cleanup(dist)


if __name__ == "__main__":
    main()
